//! The `shadowsync` server: serves one service, or all four in one process.
//!
//! - [`run`] mounts the chosen services behind the identity layer, with health (open to
//!   all, NOT_SERVING until dependencies answer) and reflection (v1 and v1alpha), then serves until
//!   the shutdown future completes and drains in-flight RPCs;
//! - [`credentials`] creates a cluster's keys, service tokens and encryption key;
//! - [`embedded`] prepares the embedded mode's data directory (signing secret, admin token);
//! - [`readiness`] probes dependencies and drives the health status.
//!
//! `main.rs` only parses flags, loads configuration, starts telemetry and binds.

pub mod credentials;
pub mod deps;
pub mod embedded;
pub mod migrate;
pub mod readiness;
pub mod wiring;

use std::future::Future;
use std::sync::Arc;

use shadowsync_common::auth::{AuthLayer, Authenticator};
use shadowsync_common::clock::{Clock, SystemClock};
use shadowsync_common::config::Config;
use shadowsync_common::grpc;
use shadowsync_common::telemetry;
use tokio::net::TcpListener;
use tonic::service::RoutesBuilder;

/// Which services a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Task,
    Approval,
    Analysis,
    Executor,
    /// All four in one process on one port; with no database or queue configured, the embedded
    /// mode.
    All,
}

impl Role {
    /// The gRPC services this role serves (health reports each of them).
    pub fn services(self) -> &'static [&'static str] {
        use shadowsync_proto::{
            ANALYSIS_SERVICE, APPROVAL_SERVICE, TASK_EXECUTION_SERVICE, TASK_SERVICE,
        };
        match self {
            Role::Task => &[TASK_SERVICE, TASK_EXECUTION_SERVICE],
            Role::Approval => &[APPROVAL_SERVICE],
            Role::Analysis => &[ANALYSIS_SERVICE],
            Role::Executor => &[],
            Role::All => shadowsync_proto::SERVICE_NAMES,
        }
    }

    /// The role's name as the command line spells it (`task`, …, `all`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Task => "task",
            Role::Approval => "approval",
            Role::Analysis => "analysis",
            Role::Executor => "executor",
            Role::All => "all",
        }
    }

    /// True when this role runs `other`'s service.
    pub fn includes(self, other: Role) -> bool {
        self == Role::All || self == other
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Auth(#[from] shadowsync_common::auth::AuthSetupError),
    #[error(transparent)]
    Grpc(#[from] grpc::GrpcError),
    #[error("{0}")]
    Dependency(String),
    #[error("embedded data directory {path}: {reason}")]
    DataDir { path: String, reason: String },
}

/// True when `serve all` runs on the embedded defaults (SQLite and the in-process queue).
pub fn is_embedded(role: Role, config: &Config) -> bool {
    role == Role::All && config.database_url.is_none() && config.queue.url.is_none()
}

/// Serves `role` on `listener` until `shutdown` completes, and Prometheus metrics on
/// `metrics.listen` when it is set.
///
/// In embedded mode, call [`embedded::prepare`] first so the configuration carries the signing
/// secret. Fails when no token verification key is configured, TLS files are unreadable, the
/// metrics address cannot be bound, or the transport fails.
pub async fn run(
    role: Role,
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let metrics = match config.metrics_listen {
        Some(address) => Some(TcpListener::bind(address).await.map_err(|e| {
            ServerError::Dependency(format!("metrics.listen: cannot listen on {address}: {e}"))
        })?),
        None => None,
    };
    run_with_metrics(role, config, listener, metrics, shutdown).await
}

/// [`run`], serving Prometheus metrics on `metrics` (already bound) instead of binding
/// `metrics.listen`.
///
/// Fails like [`run`].
pub async fn run_with_metrics(
    role: Role,
    config: Config,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let authenticator = Arc::new(Authenticator::from_config(&config.auth)?);
    // The identity provider's keys, fetched now and kept fresh until the server stops.
    let _key_refresh = authenticator.refresh_periodically();

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let mut readiness = readiness::Readiness::new(health_reporter, role.services());
    // Reflection needs no store, so only the services' own calls wait for start-up.
    let ungated = AuthLayer::new(authenticator);
    let auth = ungated.clone().gated(readiness.prepared());
    let deps = deps::Dependencies::open(role, &config).await?;
    deps.add_probes(role, &config, &mut readiness);

    let (reflection_v1, reflection_v1alpha) =
        grpc::reflection(&[shadowsync_proto::FILE_DESCRIPTOR_SET])?;

    let mut routes = RoutesBuilder::default();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let local_address = listener
        .local_addr()
        .map_err(|e| ServerError::Dependency(e.to_string()))?;
    let background = wiring::wire(
        role,
        &config,
        local_address,
        &deps,
        clock,
        &auth,
        &mut readiness,
        &mut routes,
    )?;
    readiness.mark_not_serving().await;
    let readiness_task = tokio::spawn(readiness.run());

    // Health is the one service reachable without a token (load balancers and kubelets probe it).
    routes.add_service(health_service.clone());
    routes.add_service(ungated.wrap(reflection_v1));
    routes.add_service(ungated.wrap(reflection_v1alpha));

    // Health alone, in plaintext, for probes that cannot speak TLS: it reveals nothing but the
    // serving status, which every unauthenticated caller of the main port may read anyway.
    let health_server = match config.health_listen {
        Some(address) => {
            let listener = TcpListener::bind(address)
                .await
                .map_err(|e| ServerError::Dependency(format!("health.listen {address}: {e}")))?;
            let router = grpc::server_builder(None)?.add_service(health_service.clone());
            Some(tokio::spawn(grpc::serve(
                router,
                listener,
                std::future::pending::<()>(),
            )))
        }
        None => None,
    };
    let router = grpc::server_builder(config.tls.as_ref())?.add_routes(routes.routes());
    let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_address = match metrics {
        Some(metrics) => {
            let address = metrics
                .local_addr()
                .map_err(|e| ServerError::Dependency(format!("metrics.listen: {e}")))?;
            tokio::spawn(telemetry::prometheus::serve(metrics, async {
                let _ = metrics_stopped.await;
            }));
            address.to_string()
        }
        None => "off".to_string(),
    };
    // Start-up succeeded: from here on the port answers (NOT_SERVING until the stores are ready).
    tracing::info!(
        role = role.name(),
        address = %local_address,
        tls = config.tls.is_some(),
        metrics = %metrics_address,
        "listening"
    );
    let served = grpc::serve(router, listener, shutdown).await;
    let _ = metrics_stop.send(());
    readiness_task.abort();
    if let Some(health_server) = health_server {
        health_server.abort();
    }
    background.stop().await;
    if let Some(queue) = &deps.queue {
        queue.close().await;
    }
    tracing::info!("stopped");
    Ok(served?)
}
