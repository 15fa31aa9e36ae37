//! What the executor needs from the task service (`TaskExecutionService`, execution.proto),
//! as a transport-free trait: the engine and the worker are written against it, the gRPC client
//! implements it ([`crate::grpc_backend`]), and tests use an in-memory double that enforces the
//! same rules (leases, fencing, idempotent reports, refusing finished tasks).

use std::time::Duration;

use async_trait::async_trait;
use shadowsync_common::clock::Micros;
use shadowsync_common::secret::Secret;
use shadowsync_proto::task::v1::{
    ClaimRefusalReason, ErrorStrategy, ExecutionOutcome, LogLevel, TableExecutionStatus,
};
use shadowsync_schema::ShadowNaming;

/// Which attempt of which task, with the lease token every call after the claim carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRef {
    pub task_id: i64,
    pub attempt: u32,
    /// Opaque; fences a stale executor out.
    pub token: String,
}

/// A granted lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub lease: LeaseRef,
    /// The lease lapses at this time unless renewed.
    pub expire_time: Micros,
    /// How often to renew it (about a third of the lease's length).
    pub heartbeat_interval: Duration,
}

/// Where the DDL runs. The password never reaches a log (`Secret`).
#[derive(Debug, Clone)]
pub struct DatabaseTarget {
    pub host: String,
    /// 0 means 3306.
    pub port: u16,
    pub username: String,
    pub password: Secret<String>,
    /// The database (schema) the task may change.
    pub database: String,
    /// Driver options: `ssl-mode` (DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY)
    /// and `connect-timeout` (`10s`, `500ms`); the task service refuses others at creation.
    pub options: std::collections::BTreeMap<String, String>,
}

/// One planned statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanStatement {
    /// 0-based position within its table.
    pub index: u32,
    pub sql: String,
    /// The shadow's fingerprint once it has run (empty when unknown).
    pub expected_fingerprint_after: String,
    /// 0-based position in the whole script: the execution order.
    pub script_index: u32,
}

/// One table of a claimed plan, with what earlier attempts recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanTable {
    pub ordinal: u32,
    pub source: String,
    pub shadow: String,
    pub source_fingerprint: String,
    /// Empty when the shadow did not exist at analysis time.
    pub shadow_fingerprint: String,
    pub target_fingerprint: String,
    pub statements: Vec<PlanStatement>,
    pub depends_on: Vec<String>,
    /// PENDING, RUNNING (an earlier attempt started it) or a final status (skip it).
    pub recorded_status: TableExecutionStatus,
}

/// A granted claim.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub lease: Lease,
    pub target: DatabaseTarget,
    pub error_strategy: ErrorStrategy,
    /// The first page of the plan.
    pub tables: Vec<PlanTable>,
    /// Empty when `tables` is the whole plan.
    pub plan_next_page_token: String,
    pub plan_table_count: u32,
    pub script_sha256: String,
    /// The task's shadow naming rule, for the safety guard's foreign-key check (`None` from a
    /// task service that does not send it: the plan's shadow tables only).
    pub naming: Option<ShadowNaming>,
}

/// What a claim returns: a lease, or a normal refusal (ack the message, do nothing).
#[derive(Debug, Clone)]
pub enum ClaimOutcome {
    Granted(Box<ClaimedTask>),
    Refused(ClaimRefusalReason),
}

/// One page of a plan.
#[derive(Debug, Clone)]
pub struct PlanPage {
    pub tables: Vec<PlanTable>,
    pub next_page_token: String,
}

/// The task service's answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub lease_expire_time: Micros,
    pub abort_requested: bool,
}

/// One table's status, reported when it starts and when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub source_table: String,
    pub status: TableExecutionStatus,
    pub statements_done: u32,
    /// A database error number (`1050`) or `guard_refused`, `source_drift`, `shadow_drift`.
    pub error_code: String,
    pub error_message: String,
    pub start_time: Option<Micros>,
    pub end_time: Option<Micros>,
    pub observed_shadow_fingerprint: String,
}

/// One task log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Increasing per (task, attempt); the task service deduplicates on it.
    pub client_sequence: u64,
    pub time: Micros,
    pub level: LogLevel,
    pub message: String,
    /// The source table, or empty.
    pub table: String,
}

/// How a call to the task service failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The task does not exist: the message is poison (dead-letter it).
    #[error("task not found")]
    NotFound,
    /// ABORTED: this executor's lease is gone. Stop before the next statement, do not retry.
    #[error("lease lost")]
    LeaseLost,
    /// The task service or one of its dependencies cannot be reached; retry later.
    #[error("task service unavailable: {0}")]
    Unavailable(String),
    /// Any other refusal (FAILED_PRECONDITION, INVALID_ARGUMENT, INTERNAL…): not retryable.
    #[error("task service refused the call: {0}")]
    Rejected(String),
}

/// Result of a call to the task service.
pub type BackendResult<T> = Result<T, BackendError>;

/// The executor's side of `TaskExecutionService`. Every call after the claim is fenced by the
/// lease; every call is idempotent, so [`BackendError::Unavailable`] may be retried.
#[async_trait]
pub trait ExecutionBackend: std::fmt::Debug + Send + Sync + 'static {
    /// Claims `attempt` of `task_id` for `executor_id`. Fails with
    /// [`BackendError::NotFound`] for an unknown task.
    async fn claim(
        &self,
        task_id: i64,
        attempt: u32,
        executor_id: &str,
    ) -> BackendResult<ClaimOutcome>;

    /// The plan page after `page_token`.
    async fn plan_page(&self, lease: &LeaseRef, page_token: &str) -> BackendResult<PlanPage>;

    /// Renews the lease; says whether a user asked to abort.
    async fn heartbeat(
        &self,
        lease: &LeaseRef,
        current_table: &str,
    ) -> BackendResult<HeartbeatReply>;

    /// Records a table's status; returns whether a user asked to abort.
    async fn report_table(&self, lease: &LeaseRef, report: &TableReport) -> BackendResult<bool>;

    /// Appends log lines (at most 1,000 per call).
    async fn append_logs(&self, lease: &LeaseRef, entries: &[LogEntry]) -> BackendResult<()>;

    /// Ends the execution with `outcome` and releases the lease.
    async fn complete(
        &self,
        lease: &LeaseRef,
        outcome: ExecutionOutcome,
        message: &str,
    ) -> BackendResult<()>;
}
