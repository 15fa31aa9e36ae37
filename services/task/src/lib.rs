//! The shadowsync task service: connections, analyses, tasks with their timeline and logs, and
//! the execution API the executors call (docs/architecture.md §1–§2).
//!
//! # Entry points (what the `shadowsync` server wires)
//! - [`prepare`] applies [`MIGRATIONS`] and creates the outbox table, before serving;
//! - [`TaskApi::new`] from [`TaskDeps`] (store, clock, the 32-byte encryption key, the analysis
//!   service client, the permission checker, [`TaskConfig`]); `TaskApi::default()` is an
//!   unconfigured API that answers `GetIdentity` and UNAVAILABLE for everything else;
//! - [`add_routes`] mounts `TaskService` and `TaskExecutionService` behind the interceptor;
//! - [`run_background`] recovers analyses whose runner died (lease lapsed → FAILED
//!   `WORKER_LOST`, retryable), picks up unclaimed PENDING ones, and expires unsubmitted ones,
//!   until `shutdown`.
//!
//! # Layout
//! - [`store`]: repository traits and their portable SQL implementation (PostgreSQL, SQLite),
//!   with one conformance suite;
//! - [`connections`]: connection use cases, password sealing ([`crypto`]), `TestConnection`;
//! - [`analysis`]: start/validation, the background runner, reads, skips with re-planning;
//! - [`peers`]: the analysis client and the [`peers::PermissionChecker`] (approval service);
//! - [`grpc`]: thin adapters; [`error`]: the error enum and its `Status` mapping;
//!   [`page`]: page tokens; [`idempotency`]: `request_id` handling.

pub mod analysis;
pub mod config;
pub mod connections;
pub mod crypto;
pub mod error;
pub mod execution;
pub mod grpc;
pub mod idempotency;
pub mod limits;
pub mod page;
pub mod peers;
pub mod status_gauge;
pub mod store;
pub mod tasks;

use std::sync::Arc;

use shadowsync_common::auth::{AuthLayer, Identity};
use shadowsync_common::clock::Clock;
use shadowsync_common::db::{Database, DbError, Migrations};
use shadowsync_common::secret::Secret;
use shadowsync_proto::common::v1::Actor;
use shadowsync_proto::task::v1::task_execution_service_server::TaskExecutionServiceServer;
use shadowsync_proto::task::v1::task_service_server::TaskServiceServer;
use tonic::Status;
use tonic::service::RoutesBuilder;

pub use config::TaskConfig;
pub use crypto::CipherError;

use crate::analysis::Analyses;
use crate::connections::Connections;
use crate::peers::{AnalysisClient, Approvals, PermissionChecker};
use crate::store::SqlStore;
use crate::tasks::Tasks;
use shadowsync_common::outbox::OutboxRelay;
use shadowsync_common::queue::MessageQueue;

/// The task service's migrations (PostgreSQL and SQLite).
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &sqlx::migrate!("migrations/postgres"),
    sqlite: &sqlx::migrate!("migrations/sqlite"),
};

/// Applies the migrations (the outbox table among them): run once at start-up, before serving,
/// by the embedded mode and by services allowed to migrate (`database.auto_migrate`), and by
/// `shadowsync migrate`.
///
/// Fails when the store is unreachable or a migration fails.
pub async fn prepare(db: &Database) -> Result<(), DbError> {
    db.migrate(&MIGRATIONS).await
}

/// Checks, changing nothing, that the store holds every migration this build needs: the
/// start-up step of a service that may not migrate (`database.auto_migrate=false`).
///
/// Fails with [`DbError::SchemaNotCurrent`] until `shadowsync migrate` has run.
pub async fn require_schema(db: &Database) -> Result<(), DbError> {
    db.require_current(&MIGRATIONS).await.map(drop)
}

/// What the task service needs, passed in explicitly.
pub struct TaskDeps {
    pub db: Database,
    pub clock: Arc<dyn Clock>,
    /// AES-256-GCM key for connection passwords (`encryption_key`, 32 bytes).
    pub encryption_key: Secret<Vec<u8>>,
    pub analysis: AnalysisClient,
    pub permissions: Arc<dyn PermissionChecker>,
    /// The approval service (approval requests, their state, decisions).
    pub approvals: Approvals,
    /// Where the task outbox (events, re-dispatches) is published and approval events are
    /// consumed; `None` runs without either (tests of the synchronous API).
    pub queue: Option<Arc<dyn MessageQueue>>,
    pub config: TaskConfig,
}

struct Core {
    connections: Connections,
    analyses: Analyses,
    tasks: Tasks,
    relay: Option<OutboxRelay>,
}

/// The task service's gRPC handlers.
#[derive(Clone, Default)]
pub struct TaskApi {
    core: Option<Arc<Core>>,
}

impl std::fmt::Debug for TaskApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskApi")
            .field("configured", &self.core.is_some())
            .finish()
    }
}

impl TaskApi {
    /// A configured API.
    ///
    /// Fails when the encryption key is not 32 bytes.
    pub fn new(deps: TaskDeps) -> Result<Self, CipherError> {
        let cipher = crypto::PasswordCipher::new(&deps.encryption_key)?;
        let sql = SqlStore::new(deps.db.clone());
        let store: Arc<dyn store::TaskStore> = Arc::new(sql.clone());
        let connections = Connections::new(store.clone(), cipher, deps.clock.clone());
        let analyses = Analyses::new(
            store,
            connections.clone(),
            deps.analysis,
            deps.permissions.clone(),
            deps.clock.clone(),
            deps.config,
        );
        let relay = deps
            .queue
            .clone()
            .map(|queue| OutboxRelay::new(deps.db, queue, deps.clock.clone()));
        let tasks = Tasks {
            store: sql,
            approvals: deps.approvals,
            permissions: deps.permissions,
            clock: deps.clock,
            config: deps.config,
            analyses: analyses.clone(),
            connections: connections.clone(),
            queue: deps.queue,
        };
        Ok(Self {
            core: Some(Arc::new(Core {
                connections,
                analyses,
                tasks,
                relay,
            })),
        })
    }

    fn core(&self) -> Result<&Core, Status> {
        self.core
            .as_deref()
            .ok_or_else(|| Status::unavailable("the task service is not configured"))
    }

    /// The task use cases (tests drive the sweepers through it).
    pub fn tasks(&self) -> Option<&Tasks> {
        self.core.as_deref().map(|core| &core.tasks)
    }

    /// The task outbox relay, e.g. to publish due rows at once in tests.
    pub fn relay(&self) -> Option<&OutboxRelay> {
        self.core.as_deref().and_then(|core| core.relay.as_ref())
    }

    /// The analysis runner (tests wait on it; `run_background` drives it).
    pub fn runner(&self) -> Option<&analysis::Runner> {
        self.core.as_deref().map(|core| core.analyses.runner())
    }
}

/// Runs the task service's background loops until `shutdown` (see the crate doc); returns at
/// once for an unconfigured API.
pub async fn run_background(api: &TaskApi, shutdown: impl std::future::Future<Output = ()>) {
    let Some(core) = api.core.clone() else {
        return;
    };
    let (stop, _) = tokio::sync::watch::channel(false);
    let stopped = |mut receiver: tokio::sync::watch::Receiver<bool>| async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    };
    let runner = core
        .analyses
        .runner()
        .run_background(stopped(stop.subscribe()));
    let events = core.tasks.consume_events(stopped(stop.subscribe()));
    let relay = async {
        if let Some(relay) = core.relay.clone() {
            relay.run(stopped(stop.subscribe())).await;
        }
    };
    let sweeper = async {
        let mut stopping = stop.subscribe();
        loop {
            if let Err(error) = core.tasks.sweep().await {
                tracing::warn!(%error, "task sweep failed; retrying");
            }
            tokio::select! {
                () = tokio::time::sleep(core.tasks.config.task_sweep_interval) => {}
                _ = stopping.wait_for(|stop| *stop) => return,
            }
        }
    };
    let gauge = status_gauge::run(
        core.tasks.store.database().clone(),
        stopped(stop.subscribe()),
    );
    let signal = async {
        shutdown.await;
        let _ = stop.send(true);
    };
    tokio::join!(runner, events, relay, sweeper, gauge, signal);
}

/// The wire form of a verified identity.
pub fn actor(identity: &Identity) -> Actor {
    Actor {
        subject: identity.subject.clone(),
        display_name: identity.name.clone(),
        roles: identity.roles.clone(),
    }
}

/// Adds `TaskService` and `TaskExecutionService`, each behind `auth`.
pub fn add_routes(routes: &mut RoutesBuilder, api: TaskApi, auth: AuthLayer) {
    routes.add_service(auth.wrap(TaskServiceServer::new(api.clone())));
    routes.add_service(auth.wrap(TaskExecutionServiceServer::new(api)));
}

#[cfg(test)]
mod outbox_migration {
    use shadowsync_common::db::Backend;
    use shadowsync_common::outbox::migration_matches;

    /// The outbox code's SQL and this service's copy of its table must not drift apart.
    #[test]
    fn the_outbox_migrations_create_the_table_the_outbox_code_uses() {
        assert!(migration_matches(
            Backend::Postgres,
            include_str!("../migrations/postgres/0008_outbox.sql")
        ));
        assert!(migration_matches(
            Backend::Sqlite,
            include_str!("../migrations/sqlite/0008_outbox.sql")
        ));
        assert!(!migration_matches(
            Backend::Sqlite,
            include_str!("../migrations/postgres/0008_outbox.sql")
        ));
    }
}
