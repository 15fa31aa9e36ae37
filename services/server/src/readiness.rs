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

/// How long a probe may take: a dependency that does not answer within it is down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often dependencies are probed while serving, so an outage turns health NOT_SERVING
/// within about `SERVING_PROBE_EVERY + PROBE_TIMEOUT`.
const SERVING_PROBE_EVERY: Duration = Duration::from_secs(1);
/// How often they are probed while not serving, so health recovers promptly.
const NOT_SERVING_PROBE_EVERY: Duration = Duration::from_millis(250);
/// While a dependency stays unreachable, how often that is logged again.
const STILL_UNREACHABLE_EVERY: Duration = Duration::from_secs(60);

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

    /// Checks the dependency, failing when it does not answer within [`PROBE_TIMEOUT`].
    async fn check(&self) -> Result<(), String> {
        tokio::time::timeout(PROBE_TIMEOUT, self.check_untimed())
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {PROBE_TIMEOUT:?}")))
    }

    async fn check_untimed(&self) -> Result<(), String> {
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
        // The failing dependency and reason last logged, and when: an outage is logged when it
        // starts or changes, then once a minute, not on every probe.
        let mut logged: Option<(&'static str, String, tokio::time::Instant)> = None;
        loop {
            let mut failure = None;
            for probe in &self.probes {
                if let Err(reason) = probe.check().await {
                    failure = Some((probe.name(), reason));
                    break;
                }
            }
            match failure {
                None => {
                    if !serving {
                        self.set(ServingStatus::Serving).await;
                        tracing::info!("dependencies reachable: serving");
                        serving = true;
                    }
                    logged = None;
                }
                Some((dependency, reason)) => {
                    if serving {
                        self.set(ServingStatus::NotServing).await;
                        serving = false;
                    }
                    let repeat = logged.as_ref().is_some_and(|(name, last, at)| {
                        *name == dependency
                            && *last == reason
                            && at.elapsed() < STILL_UNREACHABLE_EVERY
                    });
                    if !repeat {
                        tracing::warn!(dependency, reason = %reason, "dependency unreachable: not serving");
                        logged = Some((dependency, reason, tokio::time::Instant::now()));
                    }
                }
            }
            let pause = if serving {
                SERVING_PROBE_EVERY
            } else {
                NOT_SERVING_PROBE_EVERY
            };
            tokio::time::sleep(pause).await;
        }
    }
}
