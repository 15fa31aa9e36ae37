//! Health follows dependencies: a process reports NOT_SERVING until its start-up steps (store
//! migrations) have succeeded and every dependency answers, and goes back to NOT_SERVING when one
//! stops answering, so Kubernetes routes traffic only to replicas that can do their work.
//!
//! Start-up steps are retried until they succeed: a service started before its database keeps
//! serving health (NOT_SERVING) and becomes SERVING once the database is up, instead of crashing.

use shadowsync_common::telemetry::metrics::{KeyValue, metrics};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use shadowsync_common::db::Database;
use shadowsync_common::queue::MessageQueue;
use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// A dependency checked on every readiness pass.
pub enum Probe {
    Database(&'static str, Database),
    Queue(Arc<dyn MessageQueue>),
    /// The embedded mode's data directory must exist and be writable.
    DataDir(PathBuf),
}

impl Probe {
    fn name(&self) -> &'static str {
        match self {
            Probe::Database(name, _) => name,
            Probe::Queue(_) => "queue",
            Probe::DataDir(_) => "data directory",
        }
    }

    async fn check(&self) -> Result<(), String> {
        match self {
            Probe::Database(_, db) => db.check_ready().await.map_err(|e| e.to_string()),
            Probe::Queue(queue) => queue.check_ready().await.map_err(|e| e.to_string()),
            Probe::DataDir(path) => tokio::fs::write(path.join(".health"), b"ok")
                .await
                .map_err(|e| format!("{}: {e}", path.display())),
        }
    }
}

/// A start-up step, retried until it succeeds (e.g. migrating a service's store).
pub type Step = Box<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Runs start-up steps, then probes dependencies, driving the health status.
pub struct Readiness {
    steps: Vec<(&'static str, Step)>,
    probes: Vec<Probe>,
    services: Vec<&'static str>,
    reporter: HealthReporter,
    prepared: watch::Sender<bool>,
}

impl Readiness {
    pub fn new(reporter: HealthReporter, services: &[&'static str]) -> Self {
        Self {
            steps: Vec::new(),
            probes: Vec::new(),
            services: services.to_vec(),
            reporter,
            prepared: watch::channel(false).0,
        }
    }

    /// Adds a start-up step.
    pub fn step(&mut self, name: &'static str, step: Step) {
        self.steps.push((name, step));
    }

    /// Adds a dependency probe.
    pub fn probe(&mut self, probe: Probe) {
        self.probes.push(probe);
    }

    /// Becomes `true` once every start-up step succeeded; background work waits for it.
    pub fn prepared(&self) -> watch::Receiver<bool> {
        self.prepared.subscribe()
    }

    async fn set(&self, status: ServingStatus) {
        let serving = u64::from(status == ServingStatus::Serving);
        let gauge = &metrics().health_serving;
        self.reporter.set_service_status("", status).await;
        gauge.record(serving, &[KeyValue::new("grpc.health.service", "")]);
        for service in &self.services {
            self.reporter.set_service_status(*service, status).await;
            gauge.record(serving, &[KeyValue::new("grpc.health.service", *service)]);
        }
    }

    /// Reports NOT_SERVING for the process and every service; call before serving.
    pub async fn mark_not_serving(&self) {
        self.set(ServingStatus::NotServing).await;
    }

    /// Runs the steps, then probes forever. Cancelled by aborting its task.
    pub async fn run(self) {
        for (name, step) in &self.steps {
            let mut pause = Duration::from_millis(200);
            while let Err(reason) = step().await {
                tracing::warn!(step = name, reason = %reason, "start-up step failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
        self.prepared.send_replace(true);

        let mut serving = false;
        loop {
            let mut failure = None;
            for probe in &self.probes {
                if let Err(reason) = probe.check().await {
                    failure = Some((probe.name(), reason));
                    break;
                }
            }
            match failure {
                None if !serving => {
                    self.set(ServingStatus::Serving).await;
                    tracing::info!("dependencies reachable: serving");
                    serving = true;
                }
                None => {}
                Some((dependency, reason)) => {
                    if serving {
                        self.set(ServingStatus::NotServing).await;
                        serving = false;
                    }
                    tracing::warn!(dependency, reason = %reason, "dependency unreachable: not serving");
                }
            }
            let pause = if serving { 5_000 } else { 250 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}
