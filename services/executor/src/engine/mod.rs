//! The execution engine: runs one claimed plan against the target database, independent of the
//! queue.
//!
//! [`execute`] fetches every plan page, starts the heartbeat, reads the fingerprints of every
//! source and shadow it may touch in one batched introspection, then runs the statements in
//! global `script_index` order (which may interleave tables). Before a table's first statement
//! it decides where the table starts ([`resume::decide`]: drift, already in sync, or the
//! statement after the last one whose result is present); before every statement it checks the
//! shutdown signal, the lease and a user's abort, and the statement goes through the
//! [`SafetyGuard`]. A table's outcome is reported as soon as it is known.
//!
//! With `table_parallelism` above 1, the tables still to run are split into *lanes*: groups
//! linked by foreign keys (the plan's `depends_on`, and the keys the shadows hold now) stay in
//! one lane, in script order on one connection, because DDL on key-linked tables in parallel
//! can fail or livelock the server. Independent lanes run at once, each on its
//! own connection, at most `table_parallelism` of them. ABORT holds across lanes: the first
//! failure stops every lane before its next statement, and what did not finish is NOT_RUN.
//!
//! A statement that fails while the shadow is already exactly in the state the plan expects
//! after it counts as applied (WARN): the same statement of an earlier attempt, orphaned on the
//! server when that attempt's connection was cut, may land just before it.
//!
//! Layout: `mod.rs` the run as a whole, `lanes` the split into lanes and each lane's loop,
//! `steps` one table's steps, [`resume`] the drift and resume decision, `database` the target
//! connection, `log` the buffered task log, `calls` retries and fencing of task-service calls.

mod calls;
mod database;
mod lanes;
mod log;
pub mod resume;
mod steps;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use shadowsync_common::clock::Clock;
use shadowsync_common::text::counted;
use shadowsync_proto::task::v1::{ErrorStrategy, ExecutionOutcome, TableExecutionStatus};
use shadowsync_schema::TableObservation;
use tokio_util::sync::CancellationToken;

use crate::backend::{ClaimedTask, ExecutionBackend, LeaseRef, PlanTable};
use crate::guard::SafetyGuard;
use crate::lease::{LeaseCheck, LeaseKeeper, LeaseWatch};

use calls::call;
pub use database::{StatementError, TargetDatabase};
use log::TaskLog;

/// What the engine needs besides the claim.
#[derive(Debug, Clone)]
pub struct EngineContext {
    pub backend: Arc<dyn ExecutionBackend>,
    pub clock: Arc<dyn Clock>,
    /// Cancelled at shutdown: the engine stops before its next statement and hands the task back
    /// (the lease lapses and the task service re-dispatches it; the next attempt resumes).
    pub stop: CancellationToken,
    /// Lanes of independent tables run at once, one connection each
    /// (`executor.table_parallelism`); 1 runs the whole plan in script order on one connection.
    pub table_parallelism: usize,
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionEnd {
    /// Completed with this outcome; the task service recorded it.
    Completed(ExecutionOutcome),
    /// The lease was lost: another executor owns the task now. Nothing more was written.
    LeaseLost,
    /// Stopped for shutdown between statements, without completing.
    HandedBack,
    /// Stopped because the database connection or the task service failed; the lease lapses and
    /// a later attempt resumes by fingerprints.
    Interrupted(String),
}

/// Why a run stops early (internal).
#[derive(Debug)]
enum Stop {
    LeaseLost,
    HandedBack,
    Interrupted(String),
    /// Another lane stopped the run for one of the reasons above.
    Halted,
}

/// Where one table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableState {
    /// Not reached yet.
    Waiting,
    /// Started: statements from `next` on remain.
    Running,
    /// Its outcome is recorded.
    Final(TableExecutionStatus),
}

#[derive(Debug)]
struct TableRun {
    plan: PlanTable,
    state: TableState,
    /// Index of the next statement to run.
    next: usize,
    start_time: Option<i64>,
    /// The table's span, from its start to its outcome (its statements are its children;
    /// lanes interleave tables, so it is held here rather than entered).
    span: tracing::Span,
}

/// Runs a claimed task to its end (see the module documentation).
#[tracing::instrument(skip_all, fields(task_id = claim.lease.lease.task_id, attempt = claim.lease.lease.attempt))]
pub async fn execute(context: &EngineContext, claim: ClaimedTask) -> ExecutionEnd {
    let lease_ref = claim.lease.lease.clone();
    let watch = LeaseWatch::new(claim.lease.expire_time, context.clock.clone());
    let _keeper = LeaseKeeper::start(context.backend.clone(), &claim.lease, watch.clone());
    let log = TaskLog::new(
        context.backend.clone(),
        lease_ref.clone(),
        context.clock.clone(),
    );
    let mut run = Run {
        context: context.clone(),
        lease: lease_ref,
        watch,
        log,
        strategy: claim.error_strategy,
        guard: SafetyGuard::new(claim.target.database.clone(), Vec::new()),
        failed_under_abort: AtomicBool::new(false),
        cancelled: AtomicBool::new(false),
        handed_back: AtomicBool::new(false),
        halt: CancellationToken::new(),
    };
    match run.run(claim).await {
        Ok(outcome) => ExecutionEnd::Completed(outcome),
        Err(Stop::LeaseLost) => ExecutionEnd::LeaseLost,
        Err(stop) => {
            // Best effort: the lines explaining why are worth sending.
            let _ = run.log.flush().await;
            match stop {
                Stop::HandedBack => ExecutionEnd::HandedBack,
                Stop::Interrupted(reason) => ExecutionEnd::Interrupted(reason),
                Stop::LeaseLost => ExecutionEnd::LeaseLost,
                Stop::Halted => ExecutionEnd::Interrupted("stopped by another lane".into()),
            }
        }
    }
}

/// What every lane of one run shares.
struct Run {
    context: EngineContext,
    lease: LeaseRef,
    watch: LeaseWatch,
    log: TaskLog,
    strategy: ErrorStrategy,
    guard: SafetyGuard,
    /// A table failed under ABORT: every lane stops before its next statement.
    failed_under_abort: AtomicBool,
    /// A lane saw a user's abort.
    cancelled: AtomicBool,
    /// A lane stopped for the shutdown.
    handed_back: AtomicBool,
    /// Cancelled when a lane stops the run early (lease lost, shutdown, interruption).
    halt: CancellationToken,
}

impl Run {
    async fn run(&mut self, claim: ClaimedTask) -> Result<ExecutionOutcome, Stop> {
        let plan = self.fetch_plan(&claim).await?;
        self.guard = SafetyGuard::new(
            claim.target.database.clone(),
            plan.iter().map(|table| table.shadow.clone()),
        );
        if let Some(naming) = claim.naming.clone() {
            // A shadow child may reference a parent's shadow that this plan does not touch.
            self.guard = self.guard.clone().with_naming(naming);
        }
        let tables: Vec<TableRun> = plan
            .into_iter()
            .map(|plan| TableRun {
                state: match plan.recorded_status {
                    TableExecutionStatus::Succeeded
                    | TableExecutionStatus::AlreadyInSync
                    | TableExecutionStatus::Failed
                    | TableExecutionStatus::NotRun => TableState::Final(plan.recorded_status),
                    _ => TableState::Waiting,
                },
                plan,
                next: 0,
                start_time: None,
                span: tracing::Span::none(),
            })
            .collect();
        let table_count = u64::try_from(tables.len()).unwrap_or(u64::MAX);
        self.log.info(
            "",
            format!(
                "execution attempt {} started: {}, script sha256 {}",
                self.lease.attempt,
                counted(table_count, "table"),
                claim.script_sha256
            ),
        );
        let database = match TargetDatabase::connect(&claim.target).await {
            Ok(database) => database,
            Err(message) => {
                self.log.error("", message.clone());
                return Err(Stop::Interrupted(message));
            }
        };
        let observed = match self.observe(&database, &tables).await {
            Ok(observed) => observed,
            Err(stop) => {
                database.close().await;
                return Err(stop);
            }
        };
        if self.strategy == ErrorStrategy::Abort
            && tables
                .iter()
                .any(|t| t.state == TableState::Final(TableExecutionStatus::Failed))
        {
            self.failed_under_abort.store(true, Ordering::SeqCst);
        }
        let (mut tables, waiting): (Vec<TableRun>, Vec<TableRun>) = tables
            .into_iter()
            .partition(|table| matches!(table.state, TableState::Final(_)));
        let lanes = lanes::split(waiting, &observed, self.context.table_parallelism);
        let (ran, result) = self.run_lanes(database, lanes, &observed).await;
        tables.extend(ran);
        tables.sort_by_key(|table| table.plan.ordinal);
        result?;
        let cancelled = self.cancelled.load(Ordering::SeqCst)
            || self.watch.check() == LeaseCheck::AbortRequested;
        self.mark_rest_not_run(&mut tables, cancelled).await?;
        self.complete(&tables, cancelled).await
    }

    /// Between statements: shutdown, another lane's stop, lease and abort, in that order.
    fn checkpoint(&self) -> Result<LeaseCheck, Stop> {
        if self.context.stop.is_cancelled() {
            self.log_handback();
            return Err(Stop::HandedBack);
        }
        if self.halt.is_cancelled() {
            return Err(Stop::Halted);
        }
        Ok(self.watch.check())
    }

    fn log_handback(&self) {
        // Every lane reaches its checkpoint with the shutdown seen: say it once.
        if self.handed_back.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::info!(
            task_id = self.lease.task_id,
            "shutting down: task handed back between statements"
        );
        self.log.warn(
            "",
            "the executor is shutting down: the task is handed back between statements and \
             resumes once its lease lapses",
        );
    }

    async fn fetch_plan(&self, claim: &ClaimedTask) -> Result<Vec<PlanTable>, Stop> {
        let mut tables = claim.tables.clone();
        let mut token = claim.plan_next_page_token.clone();
        while !token.is_empty() {
            let backend = self.context.backend.clone();
            let lease = self.lease.clone();
            let page_token = token.clone();
            let page = call(&self.watch, || {
                let backend = backend.clone();
                let lease = lease.clone();
                let page_token = page_token.clone();
                async move { backend.plan_page(&lease, &page_token).await }
            })
            .await?;
            tables.extend(page.tables);
            token = page.next_page_token;
        }
        tables.sort_by_key(|table| table.ordinal);
        Ok(tables)
    }

    /// Fingerprints of the sources and shadows still to run, and the keys the shadows hold.
    async fn observe(
        &self,
        database: &TargetDatabase,
        tables: &[TableRun],
    ) -> Result<BTreeMap<String, TableObservation>, Stop> {
        let mut names = Vec::new();
        for table in tables {
            if table.state == TableState::Waiting {
                names.push(table.plan.source.clone());
                if !table.plan.shadow.is_empty() {
                    names.push(table.plan.shadow.clone());
                }
            }
        }
        database.observe(&names).await.map_err(|message| {
            self.log.error("", message.clone());
            Stop::Interrupted(message)
        })
    }

    async fn complete(
        &self,
        tables: &[TableRun],
        cancelled: bool,
    ) -> Result<ExecutionOutcome, Stop> {
        let failed = tables
            .iter()
            .filter(|t| t.state == TableState::Final(TableExecutionStatus::Failed))
            .count();
        let table_count = u64::try_from(tables.len()).unwrap_or(u64::MAX);
        let outcome = if cancelled {
            ExecutionOutcome::Cancelled
        } else if failed > 0 {
            ExecutionOutcome::Failed
        } else {
            ExecutionOutcome::Succeeded
        };
        let message = match outcome {
            ExecutionOutcome::Cancelled => "aborted by a user".to_owned(),
            ExecutionOutcome::Failed => {
                format!("{failed} of {} failed", counted(table_count, "table"))
            }
            _ => format!("{} in sync", counted(table_count, "table")),
        };
        self.log.info("", format!("execution finished: {message}"));
        self.log.flush().await.map_err(|_| Stop::LeaseLost)?;
        let backend = self.context.backend.clone();
        let lease = self.lease.clone();
        call(&self.watch, || {
            let backend = backend.clone();
            let lease = lease.clone();
            let message = message.clone();
            async move { backend.complete(&lease, outcome, &message).await }
        })
        .await?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod crash_tests;

#[cfg(test)]
mod resume_tests;

#[cfg(test)]
mod cut_tests;

#[cfg(test)]
mod parallel_tests;

#[cfg(test)]
mod session_tests;
