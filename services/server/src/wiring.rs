//! Builds each service of a role from its dependencies: start-up steps for readiness, gRPC
//! routes, and background work (outbox relays, sweepers) started once the steps succeeded and
//! stopped at shutdown.

use std::sync::Arc;

use futures::future::BoxFuture;
use shadowsync_common::auth::AuthInterceptor;
use shadowsync_common::clock::Clock;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::RoutesBuilder;

use crate::deps::Dependencies;
use crate::readiness::Readiness;
use crate::{Role, ServerError};

/// Background work of the wired services.
pub struct Background {
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Background {
    /// Asks every background loop to stop and waits for them (in-flight work finishes).
    pub async fn stop(self) {
        self.stop.send_replace(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Wires the services of `role` into `routes` and `readiness`.
///
/// Fails when a stateful service's dependency was not opened (a wiring bug, reported rather
/// than panicking).
pub fn wire(
    role: Role,
    deps: &Dependencies,
    clock: Arc<dyn Clock>,
    auth: &AuthInterceptor,
    readiness: &mut Readiness,
    routes: &mut RoutesBuilder,
) -> Result<Background, ServerError> {
    let (stop, _) = watch::channel(false);
    let mut starters: Vec<BoxFuture<'static, ()>> = Vec::new();
    let stopped = |mut receiver: watch::Receiver<bool>| async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    };

    if role.includes(Role::Task) {
        shadowsync_task::add_routes(routes, shadowsync_task::TaskApi::default(), auth.clone());
    }
    if role.includes(Role::Approval) {
        let missing =
            || ServerError::Dependency("approval service wired without its store or queue".into());
        let db = deps.approval_db.clone().ok_or_else(missing)?;
        let queue = deps.queue.clone().ok_or_else(missing)?;
        let api = shadowsync_approval::ApprovalApi::new(shadowsync_approval::ApprovalDeps {
            db: db.clone(),
            queue,
            clock: clock.clone(),
        });
        let step_clock = clock.clone();
        readiness.step(
            "approval store",
            Box::new(move || {
                let db = db.clone();
                let clock = step_clock.clone();
                Box::pin(async move {
                    shadowsync_approval::prepare(&db, clock.as_ref())
                        .await
                        .map_err(|e| e.to_string())
                })
            }),
        );
        starters.push(Box::pin(shadowsync_approval::run_background(
            api.clone(),
            stopped(stop.subscribe()),
        )));
        shadowsync_approval::add_routes(routes, api, auth.clone());
    }
    if role.includes(Role::Analysis) {
        shadowsync_analysis::add_routes(
            routes,
            shadowsync_analysis::AnalysisApi::default(),
            auth.clone(),
        );
    }

    // Background work starts only once the stores are migrated and seeded.
    let prepared = readiness.prepared();
    let mut tasks = Vec::new();
    for starter in starters {
        let mut prepared = prepared.clone();
        let mut stopping = stop.subscribe();
        tasks.push(tokio::spawn(async move {
            // The watch guards are dropped inside each branch: they must not live across awaits.
            let ready = tokio::select! {
                ready = async { prepared.wait_for(|ready| *ready).await.is_ok() } => ready,
                () = async { let _ = stopping.wait_for(|stop| *stop).await; } => false,
            };
            if ready {
                starter.await;
            }
        }));
    }
    Ok(Background { tasks, stop })
}
