//! `InMemoryTaskServiceDouble`: a test double of the task service's `TaskExecutionService`
//! (the real one is another issue), enforcing the contract's rules so the engine and the worker
//! are tested against them: claims refused for final, aborted, stale or leased tasks, the same
//! lease for the same (task, attempt, executor), fencing by lease token and expiry, idempotent
//! table reports (a changed final status is refused), logs deduplicated on their sequence, and
//! completion that must agree with the recorded results. Plans are paged (small pages).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use shadowsync_common::clock::{Clock, micros};
use shadowsync_proto::task::v1::{
    ClaimRefusalReason, ErrorStrategy, ExecutionOutcome, TableExecutionStatus,
};

use crate::backend::{
    BackendError, BackendResult, ClaimOutcome, ClaimedTask, DatabaseTarget, ExecutionBackend,
    HeartbeatReply, Lease, LeaseRef, LogEntry, PlanPage, PlanTable, TableReport,
};

/// Something the double does when a table's final report arrives (to script aborts and lost
/// leases at exact points).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFinalReport {
    RequestAbort,
    StealLease,
    /// Record the report, then answer only after this long.
    AnswerAfter(Duration),
}

#[derive(Debug)]
pub struct TaskRecord {
    pub target: DatabaseTarget,
    pub error_strategy: ErrorStrategy,
    pub tables: Vec<PlanTable>,
    pub attempt: u32,
    pub final_outcome: Option<ExecutionOutcome>,
    lease: Option<(String, String, u32, i64)>, // token, executor, attempt, expires
    pub results: BTreeMap<String, TableReport>,
    pub reports: Vec<TableReport>,
    pub abort_requested: bool,
    pub logs: Vec<LogEntry>,
    seen_sequences: BTreeSet<(u32, u64)>,
    pub grants: u32,
    pub heartbeats: u32,
    hooks: BTreeMap<String, OnFinalReport>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct InMemoryTaskServiceDouble {
    tasks: Mutex<BTreeMap<i64, TaskRecord>>,
    clock: Arc<dyn Clock>,
    pub lease_duration: Duration,
    pub heartbeat_interval: Duration,
    pub page_size: usize,
    /// Claims answered UNAVAILABLE before the service "recovers".
    pub unavailable_claims: std::sync::atomic::AtomicU32,
    /// Claims answered INTERNAL (an unexpected failure of the task service) before it recovers.
    pub internal_claims: std::sync::atomic::AtomicU32,
    /// Table reports answered UNAVAILABLE (the task service's store away) before it recovers.
    pub unavailable_reports: std::sync::atomic::AtomicU32,
}

impl InMemoryTaskServiceDouble {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            tasks: Mutex::new(BTreeMap::new()),
            clock,
            lease_duration: Duration::from_secs(30),
            heartbeat_interval: Duration::from_millis(200),
            page_size: 2,
            unavailable_claims: std::sync::atomic::AtomicU32::new(0),
            internal_claims: std::sync::atomic::AtomicU32::new(0),
            unavailable_reports: std::sync::atomic::AtomicU32::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<i64, TaskRecord>> {
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a task waiting for execution.
    pub fn add_task(
        &self,
        task_id: i64,
        target: DatabaseTarget,
        error_strategy: ErrorStrategy,
        tables: Vec<PlanTable>,
    ) {
        self.lock().insert(
            task_id,
            TaskRecord {
                target,
                error_strategy,
                tables,
                attempt: 1,
                final_outcome: None,
                lease: None,
                results: BTreeMap::new(),
                reports: Vec::new(),
                abort_requested: false,
                logs: Vec::new(),
                seen_sequences: BTreeSet::new(),
                grants: 0,
                heartbeats: 0,
                hooks: BTreeMap::new(),
            },
        );
    }

    /// Scripts `action` for when `source`'s final report arrives.
    pub fn on_final_report(&self, task_id: i64, source: &str, action: OnFinalReport) {
        if let Some(task) = self.lock().get_mut(&task_id) {
            task.hooks.insert(source.to_owned(), action);
        }
    }

    /// A user asks to abort the task.
    pub fn request_abort(&self, task_id: i64) {
        if let Some(task) = self.lock().get_mut(&task_id) {
            task.abort_requested = true;
        }
    }

    /// What the sweeper does to a lapsed lease: the next attempt may claim.
    pub fn expire_lease_and_redispatch(&self, task_id: i64) -> u32 {
        let mut tasks = self.lock();
        let Some(task) = tasks.get_mut(&task_id) else {
            return 0;
        };
        task.lease = None;
        task.attempt += 1;
        task.attempt
    }

    /// Records a table result as an earlier (crashed) attempt would have.
    pub fn record(&self, task_id: i64, report: TableReport) {
        if let Some(task) = self.lock().get_mut(&task_id) {
            task.results.insert(report.source_table.clone(), report);
        }
    }

    /// Reads a task's record.
    pub fn with_task<T>(&self, task_id: i64, read: impl FnOnce(&TaskRecord) -> T) -> Option<T> {
        self.lock().get(&task_id).map(read)
    }

    fn fenced<'a>(
        &self,
        tasks: &'a mut BTreeMap<i64, TaskRecord>,
        lease: &LeaseRef,
    ) -> BackendResult<&'a mut TaskRecord> {
        let now = self.clock.now();
        let task = tasks
            .get_mut(&lease.task_id)
            .ok_or(BackendError::NotFound)?;
        match &task.lease {
            Some((token, _, attempt, expires))
                if *token == lease.token && *attempt == lease.attempt && *expires > now =>
            {
                Ok(task)
            }
            _ => Err(BackendError::LeaseLost),
        }
    }

    /// The rules of `ReportTableResult`; returns the abort flag and a scripted delay.
    fn record_report(
        &self,
        lease: &LeaseRef,
        report: &TableReport,
    ) -> BackendResult<(bool, Option<Duration>)> {
        let mut tasks = self.lock();
        let task = self.fenced(&mut tasks, lease)?;
        if let Some(recorded) = task.results.get(&report.source_table)
            && is_final(recorded.status)
        {
            if recorded.status == report.status {
                return Ok((task.abort_requested, None));
            }
            return Err(BackendError::Rejected(format!(
                "FAILED_PRECONDITION: {} already {:?}",
                report.source_table, recorded.status
            )));
        }
        task.results
            .insert(report.source_table.clone(), report.clone());
        task.reports.push(report.clone());
        let mut delay = None;
        if is_final(report.status) {
            match task.hooks.remove(&report.source_table) {
                Some(OnFinalReport::RequestAbort) => task.abort_requested = true,
                Some(OnFinalReport::StealLease) => task.lease = None,
                Some(OnFinalReport::AnswerAfter(pause)) => delay = Some(pause),
                None => {}
            }
        }
        Ok((task.abort_requested, delay))
    }

    fn plan_tables(task: &TaskRecord) -> Vec<PlanTable> {
        task.tables
            .iter()
            .map(|table| {
                let mut table = table.clone();
                table.recorded_status = task
                    .results
                    .get(&table.source)
                    .map_or(TableExecutionStatus::Pending, |r| r.status);
                table
            })
            .collect()
    }
}

fn is_final(status: TableExecutionStatus) -> bool {
    !matches!(
        status,
        TableExecutionStatus::Pending
            | TableExecutionStatus::Running
            | TableExecutionStatus::Unspecified
    )
}

#[async_trait]
impl ExecutionBackend for InMemoryTaskServiceDouble {
    async fn claim(
        &self,
        task_id: i64,
        attempt: u32,
        executor_id: &str,
    ) -> BackendResult<ClaimOutcome> {
        use std::sync::atomic::Ordering;
        if self
            .unavailable_claims
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(BackendError::Unavailable("approval service down".into()));
        }
        if self
            .internal_claims
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(BackendError::Rejected("Internal: internal error".into()));
        }
        let now = self.clock.now();
        let mut tasks = self.lock();
        let task = tasks.get_mut(&task_id).ok_or(BackendError::NotFound)?;
        if task.final_outcome.is_some() {
            return Ok(ClaimOutcome::Refused(ClaimRefusalReason::TaskFinal));
        }
        if attempt < task.attempt {
            return Ok(ClaimOutcome::Refused(ClaimRefusalReason::StaleAttempt));
        }
        if task.abort_requested && task.results.is_empty() {
            task.final_outcome = Some(ExecutionOutcome::Cancelled);
            return Ok(ClaimOutcome::Refused(ClaimRefusalReason::Aborted));
        }
        let token = match &task.lease {
            Some((token, executor, lease_attempt, expires)) if *expires > now => {
                if executor == executor_id && *lease_attempt == attempt {
                    token.clone()
                } else {
                    return Ok(ClaimOutcome::Refused(ClaimRefusalReason::LeaseHeld));
                }
            }
            _ => uuid::Uuid::new_v4().to_string(),
        };
        let expires = now + micros(self.lease_duration);
        task.attempt = attempt;
        task.lease = Some((token.clone(), executor_id.to_owned(), attempt, expires));
        task.grants += 1;
        let tables = Self::plan_tables(task);
        let first: Vec<PlanTable> = tables.iter().take(self.page_size).cloned().collect();
        let next = if tables.len() > first.len() {
            first.len().to_string()
        } else {
            String::new()
        };
        Ok(ClaimOutcome::Granted(Box::new(ClaimedTask {
            lease: Lease {
                lease: LeaseRef {
                    task_id,
                    attempt,
                    token,
                },
                expire_time: expires,
                heartbeat_interval: self.heartbeat_interval,
            },
            connection_id: String::new(),
            target: task.target.clone(),
            error_strategy: task.error_strategy,
            scheduled_at: None,
            plan_table_count: u32::try_from(tables.len()).unwrap_or(u32::MAX),
            tables: first,
            plan_next_page_token: next,
            script_sha256: "0123abcd".into(),
            naming: Some(shadowsync_schema::ShadowNaming::default()),
        })))
    }

    async fn plan_page(&self, lease: &LeaseRef, page_token: &str) -> BackendResult<PlanPage> {
        let mut tasks = self.lock();
        let task = self.fenced(&mut tasks, lease)?;
        let offset: usize = page_token
            .parse()
            .map_err(|_| BackendError::Rejected("INVALID_ARGUMENT: page_token".into()))?;
        let tables = Self::plan_tables(task);
        let page: Vec<PlanTable> = tables
            .iter()
            .skip(offset)
            .take(self.page_size)
            .cloned()
            .collect();
        let end = offset + page.len();
        Ok(PlanPage {
            tables: page,
            next_page_token: if end < tables.len() {
                end.to_string()
            } else {
                String::new()
            },
        })
    }

    async fn heartbeat(
        &self,
        lease: &LeaseRef,
        _current_table: &str,
    ) -> BackendResult<HeartbeatReply> {
        let expires = self.clock.now() + micros(self.lease_duration);
        let mut tasks = self.lock();
        let task = self.fenced(&mut tasks, lease)?;
        task.heartbeats += 1;
        if let Some(held) = &mut task.lease {
            held.3 = expires;
        }
        Ok(HeartbeatReply {
            lease_expire_time: expires,
            abort_requested: task.abort_requested,
        })
    }

    async fn report_table(&self, lease: &LeaseRef, report: &TableReport) -> BackendResult<bool> {
        if self
            .unavailable_reports
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok()
        {
            return Err(BackendError::Unavailable(
                "metadata store unavailable".into(),
            ));
        }
        let (abort_requested, delay) = self.record_report(lease, report)?;
        if let Some(delay) = delay {
            // A slow answer, outside the lock: lets a test act while the executor waits.
            tokio::time::sleep(delay).await;
        }
        Ok(abort_requested)
    }

    async fn append_logs(&self, lease: &LeaseRef, entries: &[LogEntry]) -> BackendResult<()> {
        let mut tasks = self.lock();
        let task = self.fenced(&mut tasks, lease)?;
        for entry in entries {
            if task
                .seen_sequences
                .insert((lease.attempt, entry.client_sequence))
            {
                task.logs.push(entry.clone());
            }
        }
        Ok(())
    }

    async fn complete(
        &self,
        lease: &LeaseRef,
        outcome: ExecutionOutcome,
        _message: &str,
    ) -> BackendResult<()> {
        let mut tasks = self.lock();
        let task = self.fenced(&mut tasks, lease)?;
        let failed = task
            .results
            .values()
            .any(|r| r.status == TableExecutionStatus::Failed);
        let expected = if task.abort_requested && outcome == ExecutionOutcome::Cancelled {
            ExecutionOutcome::Cancelled
        } else if failed {
            ExecutionOutcome::Failed
        } else {
            ExecutionOutcome::Succeeded
        };
        if outcome != expected {
            return Err(BackendError::Rejected(format!(
                "FAILED_PRECONDITION: outcome {outcome:?} disagrees with the results ({expected:?})"
            )));
        }
        for table in task.tables.clone() {
            task.results
                .entry(table.source.clone())
                .or_insert_with(|| TableReport {
                    source_table: table.source,
                    status: TableExecutionStatus::NotRun,
                    statements_done: 0,
                    error_code: String::new(),
                    error_message: String::new(),
                    start_time: None,
                    end_time: None,
                    observed_shadow_fingerprint: String::new(),
                });
        }
        task.final_outcome = Some(outcome);
        task.lease = None;
        Ok(())
    }
}
