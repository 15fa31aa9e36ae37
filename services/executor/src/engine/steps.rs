//! One table's steps: start (drift check and resume point), each statement, the end, a failure,
//! and the reports that record them.

use std::collections::BTreeMap;

use shadowsync_proto::task::v1::{ErrorStrategy, TableExecutionStatus};

use crate::backend::TableReport;
use crate::guard::GUARD_REFUSED_CODE;

use super::calls::call;
use super::resume::{
    SHADOW_DRIFT_CODE, SOURCE_DRIFT_CODE, SOURCE_DRIFT_MESSAGE, TableStart, decide,
};
use super::{Run, StatementError, Stop, TableState};

impl Run {
    /// Decides where table `t` starts from the fingerprints read at the beginning of the run,
    /// and records the decision (RUNNING, ALREADY_IN_SYNC or FAILED).
    pub(super) async fn start_table(
        &mut self,
        t: usize,
        fingerprints: &BTreeMap<String, Option<String>>,
    ) -> Result<(), Stop> {
        let plan = &self.tables[t].plan;
        let source = fingerprints.get(&plan.source).cloned().flatten();
        let shadow = fingerprints.get(&plan.shadow).cloned().flatten();
        let count = plan.statements.len();
        let name = plan.source.clone();
        let mut decision = decide(plan, source.as_deref(), shadow.as_deref());
        if matches!(decision, TableStart::From(next) if next >= count) {
            decision = TableStart::AlreadyInSync;
        }
        self.tables[t].start_time = Some(self.context.clock.now());
        match decision {
            TableStart::SourceDrift { expected, found } => {
                let found = found.unwrap_or_else(|| "(missing)".into());
                self.log.warn(
                    &name,
                    format!("{SOURCE_DRIFT_MESSAGE} (analysed {expected}, now {found})"),
                );
                self.fail_table(t, SOURCE_DRIFT_CODE, SOURCE_DRIFT_MESSAGE, shadow)
                    .await
            }
            TableStart::ShadowDrift {
                analysed,
                target,
                found,
            } => {
                let message = format!(
                    "shadow table is neither in its analysed state ({analysed}) nor in its target \
                     state ({target}): found {}; initiate the task again",
                    found.as_deref().unwrap_or("(missing)")
                );
                self.log.warn(&name, message.clone());
                self.fail_table(t, SHADOW_DRIFT_CODE, &message, shadow)
                    .await
            }
            TableStart::AlreadyInSync => {
                self.log.warn(
                    &name,
                    "shadow table already in its target state: nothing to run",
                );
                self.tables[t].next = count;
                self.report(t, TableExecutionStatus::AlreadyInSync, "", "", shadow)
                    .await
            }
            TableStart::From(next) => {
                if next > 0 {
                    self.log.warn(
                        &name,
                        format!(
                            "resuming: statements 1 to {next} of {count} already applied \
                             (their result is present)"
                        ),
                    );
                }
                self.tables[t].state = TableState::Running;
                self.tables[t].next = next;
                self.report(t, TableExecutionStatus::Running, "", "", None)
                    .await
            }
        }
    }

    /// Runs statement `s` of table `t`; returns false when it failed (the table is recorded
    /// FAILED).
    pub(super) async fn run_statement(&mut self, t: usize, s: usize) -> Result<bool, Stop> {
        let table = &self.tables[t].plan;
        let name = table.source.clone();
        let count = table.statements.len();
        let Some(statement) = table.statements.get(s) else {
            return Ok(true);
        };
        let sql = statement.sql.clone();
        let position = s + 1;
        if let Err(refusal) = self.guard.check(&sql) {
            self.log.error(
                &name,
                format!("statement {position}/{count} refused: {refusal}: {sql}"),
            );
            self.fail_table(t, GUARD_REFUSED_CODE, refusal.reason(), None)
                .await?;
            return Ok(false);
        }
        self.log.info(
            &name,
            format!("statement {position}/{count} started: {sql}"),
        );
        let database = self
            .database
            .as_mut()
            .ok_or_else(|| Stop::Interrupted("no database connection".into()))?;
        let started = std::time::Instant::now();
        match database.run(&sql).await {
            Ok(duration) => {
                self.log.info(
                    &name,
                    format!(
                        "statement {position}/{count} finished in {} ms",
                        duration.as_millis()
                    ),
                );
                self.tables[t].next = s + 1;
                // Progress is visible as it happens (a long task's log is not held back until
                // its table ends), and the lines survive a crash before the table's report.
                self.log.flush().await.map_err(|_| Stop::LeaseLost)?;
                Ok(true)
            }
            Err(StatementError::Database { code, message }) if self.result_present(t, s).await => {
                // The same statement of an earlier attempt, orphaned on the server when that
                // attempt's connection was cut, landed first: its result is what this one
                // would have made (e.g. 1060 duplicate column), so the table goes on.
                self.log.warn(
                    &name,
                    format!(
                        "statement {position}/{count} failed after {} ms (error {code}: \
                         {message}), but the shadow already holds its result (an earlier \
                         attempt's statement landed): taken as applied",
                        started.elapsed().as_millis()
                    ),
                );
                self.tables[t].next = s + 1;
                self.log.flush().await.map_err(|_| Stop::LeaseLost)?;
                Ok(true)
            }
            Err(StatementError::Database { code, message }) => {
                self.log.error(
                    &name,
                    format!(
                        "statement {position}/{count} failed after {} ms: error {code}: {message}",
                        started.elapsed().as_millis()
                    ),
                );
                self.fail_table(t, &code, &message, None).await?;
                Ok(false)
            }
            Err(StatementError::Connection(message)) => {
                self.log.error(
                    &name,
                    format!(
                        "statement {position}/{count}: lost the database connection ({message}); \
                         a later attempt resumes from the shadow's state"
                    ),
                );
                Err(Stop::Interrupted(message))
            }
        }
    }

    /// Whether the shadow of table `t` is now exactly in the state the plan expects after its
    /// statement `s` (read after that statement failed).
    async fn result_present(&self, t: usize, s: usize) -> bool {
        let plan = &self.tables[t].plan;
        let Some(expected) = plan
            .statements
            .get(s)
            .map(|statement| statement.expected_fingerprint_after.as_str())
            .filter(|expected| !expected.is_empty())
        else {
            return false;
        };
        let Some(database) = &self.database else {
            return false;
        };
        database
            .fingerprints(std::slice::from_ref(&plan.shadow))
            .await
            .ok()
            .and_then(|mut read| read.remove(&plan.shadow).flatten())
            .is_some_and(|observed| observed == expected)
    }

    /// Records table `t` SUCCEEDED after its last statement, with the shadow's fingerprint.
    pub(super) async fn finish_table(&mut self, t: usize) -> Result<(), Stop> {
        let shadow = self.tables[t].plan.shadow.clone();
        let name = self.tables[t].plan.source.clone();
        let observed = match &self.database {
            Some(database) => database
                .fingerprints(std::slice::from_ref(&shadow))
                .await
                .ok()
                .and_then(|mut read| read.remove(&shadow).flatten()),
            None => None,
        };
        if observed.as_deref() != Some(self.tables[t].plan.target_fingerprint.as_str()) {
            self.log.warn(
                &name,
                format!(
                    "shadow fingerprint after the last statement is {}, the plan expected {}",
                    observed.as_deref().unwrap_or("(unreadable)"),
                    self.tables[t].plan.target_fingerprint
                ),
            );
        }
        self.log.info(&name, "shadow table in sync");
        self.report(t, TableExecutionStatus::Succeeded, "", "", observed)
            .await
    }

    /// Records table `t` FAILED; with CONTINUE its remaining statements are skipped.
    pub(super) async fn fail_table(
        &mut self,
        t: usize,
        code: &str,
        message: &str,
        observed: Option<String>,
    ) -> Result<(), Stop> {
        let remaining = self.tables[t]
            .plan
            .statements
            .len()
            .saturating_sub(self.tables[t].next);
        if self.strategy == ErrorStrategy::Continue && remaining > 0 {
            let name = self.tables[t].plan.source.clone();
            self.log.warn(
                &name,
                format!("{remaining} statements of this table not run"),
            );
        }
        self.report(t, TableExecutionStatus::Failed, code, message, observed)
            .await
    }

    /// Records NOT_RUN for every table without an outcome (ABORT after a failure, a user's
    /// abort).
    pub(super) async fn mark_rest_not_run(&mut self, cancelled: bool) -> Result<(), Stop> {
        for t in 0..self.tables.len() {
            if matches!(self.tables[t].state, TableState::Final(_)) {
                continue;
            }
            let name = self.tables[t].plan.source.clone();
            let why = if cancelled {
                "not run: the task was aborted"
            } else {
                "not run: the task stopped after a failure (error strategy ABORT)"
            };
            self.log.warn(&name, why);
            self.report(t, TableExecutionStatus::NotRun, "", "", None)
                .await?;
        }
        Ok(())
    }

    /// Sends one table report and records its state; notes a user's abort.
    async fn report(
        &mut self,
        t: usize,
        status: TableExecutionStatus,
        code: &str,
        message: &str,
        observed: Option<String>,
    ) -> Result<(), Stop> {
        let now = self.context.clock.now();
        let table = &self.tables[t];
        let is_final = status != TableExecutionStatus::Running;
        let report = TableReport {
            source_table: table.plan.source.clone(),
            status,
            statements_done: u32::try_from(table.next).unwrap_or(u32::MAX),
            error_code: code.to_owned(),
            error_message: message.to_owned(),
            start_time: table.start_time,
            end_time: is_final.then_some(now),
            observed_shadow_fingerprint: observed.unwrap_or_default(),
        };
        self.tables[t].state = if is_final {
            TableState::Final(status)
        } else {
            TableState::Running
        };
        let backend = self.context.backend.clone();
        let lease = self.lease.clone();
        let abort_requested = call(&self.watch, || {
            let backend = backend.clone();
            let lease = lease.clone();
            let report = report.clone();
            async move { backend.report_table(&lease, &report).await }
        })
        .await?;
        if abort_requested {
            self.watch.mark_abort_requested();
        }
        if is_final {
            self.log.flush().await.map_err(|_| Stop::LeaseLost)?;
        }
        Ok(())
    }
}
