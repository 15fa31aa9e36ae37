//! What the executor needs from the task service (`TaskExecutionService`, execution.proto),
//! as a transport-free trait: the engine and the worker are written against it, the gRPC client
//! implements it ([`crate::grpc_backend`]), and tests use an in-memory double that enforces the
//! same rules (leases, fencing, idempotent reports, refusing finished tasks).

use std::time::Duration;

use async_trait::async_trait;
use shadowsync_common::clock::Micros;
use shadowsync_common::plan_digest::{DigestStatement, DigestTable, ExecutionTerms, PlanDigest};
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
    /// The task service's id of the target connection (part of the plan digest).
    pub connection_id: String,
    pub target: DatabaseTarget,
    pub error_strategy: ErrorStrategy,
    /// When the approved plan was scheduled to run; `None`: immediately.
    pub scheduled_at: Option<Micros>,
    /// The first page of the plan.
    pub tables: Vec<PlanTable>,
    /// Empty when `tables` is the whole plan.
    pub plan_next_page_token: String,
    pub plan_table_count: u32,
    /// The approved plan digest ([`shadowsync_common::plan_digest`]).
    pub script_sha256: String,
    /// The task's shadow naming rule, for the safety guard's foreign-key check (`None` from a
    /// task service that does not send it: the plan's shadow tables only).
    pub naming: Option<ShadowNaming>,
}

impl ClaimedTask {
    /// The plan digest of what this claim carries (`tables` must be the whole plan), computed
    /// as the task service computed the approved one.
    pub fn plan_digest(&self) -> String {
        let mut tables: Vec<&PlanTable> = self.tables.iter().collect();
        // Plan order, as the task service hashed it and as the engine runs it.
        tables.sort_by_key(|table| table.ordinal);
        let mut digest = PlanDigest::new(&self.connection_id, &self.target.database);
        for table in tables {
            let statements: Vec<DigestStatement<'_>> = table
                .statements
                .iter()
                .map(|statement| DigestStatement {
                    script_index: i64::from(statement.script_index),
                    sql: &statement.sql,
                    expected_fingerprint_after: &statement.expected_fingerprint_after,
                })
                .collect();
            digest.table(
                &DigestTable {
                    source_table: &table.source,
                    shadow_table: &table.shadow,
                    source_fingerprint: &table.source_fingerprint,
                    shadow_fingerprint: &table.shadow_fingerprint,
                    target_fingerprint: &table.target_fingerprint,
                    depends_on: &table.depends_on,
                },
                &statements,
            );
        }
        digest.finish(Some(ExecutionTerms {
            error_strategy: self.error_strategy as i32,
            scheduled_at: self.scheduled_at,
        }))
    }

    /// Fails, naming both digests, unless the whole plan received hashes to the approved
    /// digest: defence in depth behind the task service's check at claim, against a plan
    /// changed between the store and this executor.
    pub fn verify_plan(&self) -> Result<(), String> {
        let received = self.plan_digest();
        if received == self.script_sha256 {
            Ok(())
        } else {
            Err(format!(
                "the plan received does not match the approved plan (digest {received}, \
                 approved {}); nothing was run",
                self.script_sha256
            ))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(ordinal: u32, source: &str, sql: &str, script_index: u32) -> PlanTable {
        PlanTable {
            ordinal,
            source: source.into(),
            shadow: format!("_test_{source}"),
            source_fingerprint: "s".into(),
            shadow_fingerprint: String::new(),
            target_fingerprint: "t".into(),
            statements: vec![PlanStatement {
                index: 0,
                sql: sql.into(),
                expected_fingerprint_after: "t".into(),
                script_index,
            }],
            depends_on: Vec::new(),
            recorded_status: TableExecutionStatus::Pending,
        }
    }

    fn claim(tables: Vec<PlanTable>, script_sha256: &str) -> ClaimedTask {
        ClaimedTask {
            lease: Lease {
                lease: LeaseRef {
                    task_id: 1,
                    attempt: 1,
                    token: "t".into(),
                },
                expire_time: 0,
                heartbeat_interval: Duration::from_secs(1),
            },
            connection_id: "c1".into(),
            target: DatabaseTarget {
                host: "h".into(),
                port: 0,
                username: "u".into(),
                password: Secret::new("p".into()),
                database: "shop".into(),
                options: Default::default(),
            },
            error_strategy: ErrorStrategy::Abort,
            scheduled_at: None,
            tables,
            plan_next_page_token: String::new(),
            plan_table_count: 2,
            script_sha256: script_sha256.into(),
            naming: None,
        }
    }

    #[test]
    fn the_plan_is_hashed_in_plan_order_whatever_order_the_pages_came_in() {
        let a = table(0, "a", "CREATE TABLE `_test_a` (id int)", 0);
        let b = table(1, "b", "CREATE TABLE `_test_b` (id int)", 1);
        let approved = claim(vec![a.clone(), b.clone()], "").plan_digest();
        let received = claim(vec![b, a], &approved);
        assert_eq!(received.verify_plan(), Ok(()));
    }

    type Change = Box<dyn Fn(&mut ClaimedTask)>;

    #[test]
    fn a_plan_that_differs_from_the_approved_digest_is_refused() {
        let a = table(0, "a", "CREATE TABLE `_test_a` (id int)", 0);
        let approved = claim(vec![a.clone()], "").plan_digest();
        let changes: [(&str, Change); 5] = [
            (
                "strategy",
                Box::new(|c| c.error_strategy = ErrorStrategy::Continue),
            ),
            ("schedule", Box::new(|c| c.scheduled_at = Some(1))),
            ("database", Box::new(|c| c.target.database = "prod".into())),
            ("shadow", Box::new(|c| c.tables[0].shadow = "a".into())),
            (
                "statement",
                Box::new(|c| c.tables[0].statements[0].sql.push_str(";\nDROP TABLE a")),
            ),
        ];
        for (what, change) in changes {
            let mut received = claim(vec![a.clone()], &approved);
            change(&mut received);
            let refusal = received.verify_plan().expect_err(what);
            assert!(refusal.contains(&approved), "{what}: {refusal}");
        }
    }
}
