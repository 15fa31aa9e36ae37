//! Builds each service of a role from its dependencies: start-up steps for readiness, gRPC
//! routes, and background work (outbox relays, sweepers) started once the steps succeeded and
//! stopped at shutdown.

use std::sync::Arc;

use futures::future::BoxFuture;
use shadowsync_common::auth::AuthLayer;
use shadowsync_common::clock::Clock;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::RoutesBuilder;

use std::net::SocketAddr;

use shadowsync_common::auth::{ServiceCredentials, ServiceIdentity};
use shadowsync_common::config::Config;
use shadowsync_common::grpc;
use shadowsync_task::peers::{self, GrpcPermissionChecker, PeerCredentials};

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
#[allow(clippy::too_many_arguments)]
pub fn wire(
    role: Role,
    config: &Config,
    local_address: SocketAddr,
    deps: &Dependencies,
    clock: Arc<dyn Clock>,
    auth: &AuthLayer,
    readiness: &mut Readiness,
    routes: &mut RoutesBuilder,
) -> Result<Background, ServerError> {
    let (stop, _) = watch::channel(false);
    let mut starters: Vec<BoxFuture<'static, ()>> = Vec::new();
    let stopped = |mut receiver: watch::Receiver<bool>| async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    };

    if role.includes(Role::Task) {
        let api = task_api(role, config, local_address, deps, clock.clone())?;
        let db = deps.task_db.clone().ok_or_else(|| {
            ServerError::Dependency("task service wired without its store".into())
        })?;
        let migrate = config.database_auto_migrate;
        readiness.step(
            "task store",
            Box::new(move || {
                let db = db.clone();
                Box::pin(async move {
                    if migrate {
                        shadowsync_task::prepare(&db).await
                    } else {
                        shadowsync_task::require_schema(&db).await
                    }
                    .map_err(|e| e.to_string())
                })
            }),
        );
        let background = api.clone();
        let stopping = stopped(stop.subscribe());
        starters.push(Box::pin(async move {
            shadowsync_task::run_background(&background, stopping).await;
        }));
        shadowsync_task::add_routes(routes, api, auth.clone());
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
        let migrate = config.database_auto_migrate;
        readiness.step(
            "approval store",
            Box::new(move || {
                let db = db.clone();
                let clock = step_clock.clone();
                Box::pin(async move {
                    if migrate {
                        shadowsync_approval::prepare(&db, clock.as_ref()).await
                    } else {
                        shadowsync_approval::prepare_without_migrating(&db, clock.as_ref()).await
                    }
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
            shadowsync_analysis::AnalysisApi::new(shadowsync_analysis::AnalysisConfig::default()),
            auth.clone(),
        );
    }

    if role.includes(Role::Executor) {
        let deps = executor_deps(role, config, local_address, deps, clock.clone())?;
        let stopping = stop.subscribe();
        starters.push(Box::pin(async move {
            // The worker fails only when it cannot subscribe (the broker is down at start):
            // retry until it can or until shutdown, while health reports the queue.
            loop {
                match shadowsync_executor::run(deps.clone(), stopped(stopping.clone())).await {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(error = %error, "executor cannot subscribe yet; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        if *stopping.borrow() {
                            return;
                        }
                    }
                }
            }
        }));
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

/// Where a peer service is: its configured endpoint, or this process when it runs that service
/// too (`serve all`).
fn peer_endpoint(
    role: Role,
    peer: Role,
    configured: Option<&String>,
    key: &str,
    local_address: SocketAddr,
) -> Result<String, ServerError> {
    match configured {
        Some(endpoint) => Ok(endpoint.clone()),
        None if role.includes(peer) => Ok(format!("http://{local_address}")),
        None => Err(ServerError::Dependency(format!(
            "{key} is required: this role calls that service"
        ))),
    }
}

/// A lazily connecting channel to a peer: TLS, verified against `tls.peer_ca`, for `https://`
/// endpoints (configuration refuses an `https://` endpoint without that CA).
fn peer_channel(config: &Config, endpoint: &str) -> Result<grpc::Channel, ServerError> {
    let tls = match &config.endpoints.peer_ca {
        Some(path) if endpoint.starts_with("https://") => Some(grpc::ClientTls {
            ca: Some(std::fs::read(path).map_err(|e| {
                ServerError::Dependency(format!("tls.peer_ca {}: {e}", path.display()))
            })?),
            ..grpc::ClientTls::default()
        }),
        _ => None,
    };
    Ok(grpc::channel(endpoint, tls.as_ref())?)
}

/// The task service with its peers (analysis, and approval for permission checks) reached over
/// gRPC as `svc:task`.
fn task_api(
    role: Role,
    config: &Config,
    local_address: SocketAddr,
    deps: &Dependencies,
    clock: Arc<dyn Clock>,
) -> Result<shadowsync_task::TaskApi, ServerError> {
    let db = deps
        .task_db
        .clone()
        .ok_or_else(|| ServerError::Dependency("task service wired without its store".into()))?;
    let encryption_key = config.encryption_key.clone().ok_or_else(|| {
        ServerError::Dependency(
            "encryption.key is required: connection passwords are encrypted at rest".into(),
        )
    })?;
    let credentials = PeerCredentials::Service(ServiceCredentials::from_config(
        &config.auth,
        ServiceIdentity::Task,
    )?);
    let analysis = peer_endpoint(
        role,
        Role::Analysis,
        config.endpoints.analysis.as_ref(),
        "endpoints.analysis",
        local_address,
    )?;
    let approval = peer_endpoint(
        role,
        Role::Approval,
        config.endpoints.approval.as_ref(),
        "endpoints.approval",
        local_address,
    )?;
    let deps = shadowsync_task::TaskDeps {
        db,
        clock,
        encryption_key,
        analysis: peers::analysis_client(peer_channel(config, &analysis)?, credentials.clone()),
        permissions: Arc::new(GrpcPermissionChecker::new(
            peer_channel(config, &approval)?,
            credentials.clone(),
        )),
        approvals: peers::Approvals::new(peer_channel(config, &approval)?, credentials),
        queue: deps.queue.clone(),
        config: shadowsync_task::TaskConfig {
            execution_lease: config.task.execution_lease,
            ..shadowsync_task::TaskConfig::default()
        },
    };
    shadowsync_task::TaskApi::new(deps)
        .map_err(|e| ServerError::Dependency(format!("encryption.key: {e}")))
}

/// The executor worker, calling the task service's execution API as `svc:executor`.
fn executor_deps(
    role: Role,
    config: &Config,
    local_address: SocketAddr,
    deps: &Dependencies,
    clock: Arc<dyn Clock>,
) -> Result<shadowsync_executor::ExecutorDeps, ServerError> {
    let queue = deps
        .queue
        .clone()
        .ok_or_else(|| ServerError::Dependency("executor wired without the queue".into()))?;
    let task = peer_endpoint(
        role,
        Role::Task,
        config.endpoints.task.as_ref(),
        "endpoints.task",
        local_address,
    )?;
    let credentials = ServiceCredentials::from_config(&config.auth, ServiceIdentity::Executor)?;
    let channel = grpc::as_service(peer_channel(config, &task)?, credentials);
    Ok(shadowsync_executor::ExecutorDeps {
        queue,
        backend: Arc::new(shadowsync_executor::grpc_backend::GrpcExecutionBackend::new(channel)),
        clock,
        // Unique per process: a restarted executor must not inherit its predecessor's leases.
        executor_id: format!("executor-{}", uuid::Uuid::new_v4().simple()),
        prefetch: config.executor.prefetch,
        concurrency: config.executor.concurrency,
        table_parallelism: config.executor.table_parallelism,
        shutdown_grace: config.executor.shutdown_grace,
    })
}
