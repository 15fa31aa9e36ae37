//! The shadowsync approval service: process templates and their priority order,
//! approval requests and decisions, permission grants, and dispatch to the executors.
//!
//! # Entry points (what the server wires)
//! - [`MIGRATIONS`] and [`prepare`]: run the migrations (the outbox table among them) and seed the
//!   builtin fallback template and the priority order on first start.
//! - [`ApprovalApi::new`]`(`[`ApprovalDeps`]`)`: the gRPC handlers; [`add_routes`] mounts them
//!   behind the identity interceptor.
//! - [`run_background`]: the outbox relay (events, and `ExecuteTask` dispatches when due) and the
//!   expiry sweeper, until shutdown.
//!
//! # Who may submit what
//! `shadow_table_sync` only `svc:task` (binding the task id and the SQL's SHA-256, on behalf of
//! the person); `permission_apply` only through `ApplyPermission`; any other request type
//! (`feature_flag_change`, …) any authenticated user or service: the approval service is
//! general, and the owning service learns the outcome from `approval.*.<type>` events.
//!
//! # Separation of duties
//! Fixed for every template and node mode (ANY, ALL, QUORUM): the requester never decides on
//! their own request (`PERMISSION_DENIED`), and one person's decision counts once per request:
//! whoever decided at one node gets `FAILED_PRECONDITION` at every other. When that leaves a
//! node nobody can pass (every named user left has decided, and no role is named that someone
//! new could fill), the request is neither auto-approved nor failed: it waits until it expires
//! (or is rejected or cancelled), its candidates ("waiting for") list nobody, the refusal says
//! so, and the service logs a WARN when a request reaches such a node. Candidates never list
//! people who can no longer decide, and `PENDING_FOR_ME` leaves out requests the caller decided.
//!
//! # What callers learn
//! A request the caller may not see answers exactly as one that does not exist (`NOT_FOUND`,
//! "approval not found", naming nothing). Only the configured service identities (`svc:task`,
//! `svc:approval`, `svc:analysis`, `svc:executor`, compared exactly) submit on someone's behalf
//! or check someone else's permission; any other subject starting with `svc:` is a person.
//!
//! # Layout
//! - `model`: domain types; `convert`: proto ↔ domain at the edge;
//! - `template`: validation, the builtin, matching (globs, AND/OR) and ranks;
//! - `decision`: the node state machine (ANY/ALL/QUORUM, separation of duties, auto-approve);
//! - `store/`: portable SQL with compare-and-set transitions and a conformance suite;
//! - `service/`: the use cases, each one transaction with its outbox messages;
//! - `events`, `dispatch`: outbox messages; `sweeper`: expiry; `grpc`: adapters and watch.

pub mod convert;
pub mod decision;
pub mod dispatch;
pub mod error;
pub mod events;
mod grpc;
pub mod model;
pub mod service;
pub mod store;
pub mod sweeper;
pub mod template;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use shadowsync_common::auth::AuthLayer;
use shadowsync_common::clock::Clock;
use shadowsync_common::db::Database;
use shadowsync_common::outbox::OutboxRelay;
use shadowsync_common::queue::MessageQueue;
use shadowsync_proto::approval::v1::approval_service_server::ApprovalServiceServer;
use tonic::service::RoutesBuilder;

use crate::service::Service;
use crate::store::Store;

pub use store::MIGRATIONS;

/// What the approval service needs.
#[derive(Clone)]
pub struct ApprovalDeps {
    /// The service's own store (schema `approval`, or `approval.sqlite`).
    pub db: Database,
    /// Where the outbox relay publishes dispatches and events.
    pub queue: Arc<dyn MessageQueue>,
    pub clock: Arc<dyn Clock>,
}

/// Migrates the store (the outbox table among its migrations) and seeds the builtin template and the priority
/// order (idempotent; safe with several replicas).
///
/// Fails when the store is unreachable or a migration fails.
pub async fn prepare(db: &Database, clock: &dyn Clock) -> Result<(), error::ApprovalError> {
    db.migrate(&MIGRATIONS).await?;
    seed(db, clock).await
}

/// Checks, changing no schema, that the store holds every migration this build needs, then
/// seeds the built-in template: the start-up step of a service that may not migrate
/// (`database.auto_migrate=false`).
///
/// Fails with the store's `SchemaNotCurrent` until `shadowsync migrate` has run.
pub async fn prepare_without_migrating(
    db: &Database,
    clock: &dyn Clock,
) -> Result<(), error::ApprovalError> {
    db.require_current(&MIGRATIONS).await?;
    seed(db, clock).await
}

async fn seed(db: &Database, clock: &dyn Clock) -> Result<(), error::ApprovalError> {
    Store::new(db.clone())
        .seed(&service::templates::builtin_template(), clock.now())
        .await
}

/// The approval service's gRPC handlers and background work. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ApprovalApi {
    service: Service,
    relay: OutboxRelay,
}

impl ApprovalApi {
    /// Handlers over `deps`; call [`prepare`] first.
    pub fn new(deps: ApprovalDeps) -> Self {
        let relay = OutboxRelay::new(deps.db.clone(), deps.queue, deps.clock.clone());
        let service = Service::new(Store::new(deps.db), deps.clock, relay.waker());
        Self { service, relay }
    }

    /// The use cases, for in-process callers and tests.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The outbox relay, e.g. to publish due rows at once in tests.
    pub fn relay(&self) -> &OutboxRelay {
        &self.relay
    }
}

/// How often the expiry sweeper runs.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Runs the outbox relay and the expiry sweeper until `shutdown` completes.
pub async fn run_background(api: ApprovalApi, shutdown: impl Future<Output = ()> + Send + 'static) {
    let (stop, _) = tokio::sync::watch::channel(false);
    let stopped = |mut receiver: tokio::sync::watch::Receiver<bool>| async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    };
    let relay = api.relay.clone().run(stopped(stop.subscribe()));
    let sweeper = sweeper::run(
        api.service.clone(),
        SWEEP_INTERVAL,
        stopped(stop.subscribe()),
    );
    let signal = async move {
        shutdown.await;
        stop.send_replace(true);
    };
    tokio::join!(relay, sweeper, signal);
}

/// Adds `ApprovalService` behind `auth`.
pub fn add_routes(routes: &mut RoutesBuilder, api: ApprovalApi, auth: AuthLayer) {
    routes.add_service(auth.wrap(ApprovalServiceServer::new(api)));
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
            include_str!("../migrations/postgres/0002_outbox.sql")
        ));
        assert!(migration_matches(
            Backend::Sqlite,
            include_str!("../migrations/sqlite/0002_outbox.sql")
        ));
        assert!(!migration_matches(
            Backend::Sqlite,
            include_str!("../migrations/postgres/0002_outbox.sql")
        ));
    }
}
