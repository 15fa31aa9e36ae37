//! One table's steps, run by its lane on the lane's connection: start (drift check and resume
//! point), each statement, the end. Failures, NOT_RUN and the reports that record them belong
//! to the run, which every lane shares.

use shadowsync_common::telemetry::metrics::{KeyValue, metrics};
use shadowsync_proto::task::v1::{ErrorStrategy, TableExecutionStatus};
use tracing::Instrument as _;

use crate::backend::{BackendError, TableReport};
use crate::guard::GUARD_REFUSED_CODE;

use super::calls::call;
use super::lanes::Lane;
use super::resume::{
    SHADOW_DRIFT_CODE, SOURCE_DRIFT_CODE, SOURCE_DRIFT_MESSAGE, TableStart, decide,
};
use super::{Run, StatementError, Stop, TableRun, TableState};

impl Lane<'_> {
    /// Decides where `table` starts from the fingerprints read at the beginning of the run,
    /// and records the decision (RUNNING, ALREADY_IN_SYNC or FAILED).
    pub(super) async fn start_table(&self, table: &mut TableRun) -> Result<(), Stop> {
        let run = self.run;
        let plan = &table.plan;
        let fingerprint = |name: &str| {
            self.observed
                .get(name)
                .and_then(|observed| observed.fingerprint.clone())
        };
        let source = fingerprint(&plan.source);
        let shadow = fingerprint(&plan.shadow);
        let count = plan.statements.len();
        let name = plan.source.clone();
        let mut decision = decide(plan, source.as_deref(), shadow.as_deref());
        if matches!(decision, TableStart::From(next) if next >= count) {
            decision = TableStart::AlreadyInSync;
        }
        table.start_time = Some(run.context.clock.now());
        table.span = tracing::info_span!(
            "execute table",
            otel.name = %format!("execute table {}", plan.shadow),
            shadowsync.table.source = %plan.source,
            db.collection.name = %plan.shadow,
            shadowsync.table.statements = count,
            shadowsync.table.status = tracing::field::Empty,
        );
        match decision {
            TableStart::SourceDrift { expected, found } => {
                let found = found.unwrap_or_else(|| "(missing)".into());
                run.log.warn(
                    &name,
                    format!("{SOURCE_DRIFT_MESSAGE} (analysed {expected}, now {found})"),
                );
                run.fail_table(table, SOURCE_DRIFT_CODE, SOURCE_DRIFT_MESSAGE, shadow)
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
                run.log.warn(&name, message.clone());
                run.fail_table(table, SHADOW_DRIFT_CODE, &message, shadow)
                    .await
            }
            TableStart::AlreadyInSync => {
                run.log.warn(
                    &name,
                    "shadow table already in its target state: nothing to run",
                );
                table.next = count;
                run.report(table, TableExecutionStatus::AlreadyInSync, "", "", shadow)
                    .await
            }
            TableStart::From(next) => {
                if next > 0 {
                    run.log.warn(
                        &name,
                        format!(
                            "resuming: statements 1 to {next} of {count} already applied \
                             (their result is present)"
                        ),
                    );
                }
                table.state = TableState::Running;
                table.next = next;
                run.report(table, TableExecutionStatus::Running, "", "", None)
                    .await
            }
        }
    }

    /// Runs statement `s` of `table`; returns false when it failed (the table is recorded
    /// FAILED).
    pub(super) async fn run_statement(
        &mut self,
        table: &mut TableRun,
        s: usize,
    ) -> Result<bool, Stop> {
        let run = self.run;
        let name = table.plan.source.clone();
        let count = table.plan.statements.len();
        let Some(statement) = table.plan.statements.get(s) else {
            return Ok(true);
        };
        let sql = statement.sql.clone();
        let position = s + 1;
        if let Err(refusal) = run.guard.check_for(&sql, &table.plan.shadow) {
            run.log.error(
                &name,
                format!("statement {position}/{count} refused: {refusal}: {sql}"),
            );
            run.fail_table(table, GUARD_REFUSED_CODE, refusal.reason(), None)
                .await?;
            return Ok(false);
        }
        run.log.info(
            &name,
            format!("statement {position}/{count} started: {sql}"),
        );
        // Durable before the statement is sent: if this executor dies mid-statement, the task
        // log still says what was running. Nothing is sent while the log cannot record it.
        run.log.flush_durably().await.map_err(|error| match error {
            BackendError::LeaseLost => Stop::LeaseLost,
            other => Stop::Interrupted(format!("the task log cannot be written: {other}")),
        })?;
        let started = std::time::Instant::now();
        let span = statement_span(&table.span, &table.plan.shadow, &sql, position);
        let result = self.database.run(&sql).instrument(span.clone()).await;
        record_statement(&span, &sql, started.elapsed(), &result);
        match result {
            Ok(duration) => {
                run.log.info(
                    &name,
                    format!(
                        "statement {position}/{count} finished in {} ms",
                        duration.as_millis()
                    ),
                );
                table.next = s + 1;
                // Progress is visible as it happens (a long task's log is not held back until
                // its table ends), and the lines survive a crash before the table's report.
                run.log.flush().await.map_err(|_| Stop::LeaseLost)?;
                Ok(true)
            }
            Err(StatementError::Database { code, message })
                if self.result_present(table, s).await =>
            {
                // The same statement of an earlier attempt, orphaned on the server when that
                // attempt's connection was cut, landed first: its result is what this one
                // would have made (e.g. 1060 duplicate column), so the table goes on.
                run.log.warn(
                    &name,
                    format!(
                        "statement {position}/{count} failed after {} ms (error {code}: \
                         {message}), but the shadow already holds its result (an earlier \
                         attempt's statement landed): taken as applied",
                        started.elapsed().as_millis()
                    ),
                );
                table.next = s + 1;
                run.log.flush().await.map_err(|_| Stop::LeaseLost)?;
                Ok(true)
            }
            Err(StatementError::Database { code, message }) => {
                run.log.error(
                    &name,
                    format!(
                        "statement {position}/{count} failed after {} ms: error {code}: {message}",
                        started.elapsed().as_millis()
                    ),
                );
                run.fail_table(table, &code, &message, None).await?;
                Ok(false)
            }
            Err(StatementError::Connection(message)) => {
                run.log.error(
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

    /// Whether the shadow of `table` is now exactly in the state the plan expects after its
    /// statement `s` (read after that statement failed).
    async fn result_present(&self, table: &TableRun, s: usize) -> bool {
        let plan = &table.plan;
        let Some(expected) = plan
            .statements
            .get(s)
            .map(|statement| statement.expected_fingerprint_after.as_str())
            .filter(|expected| !expected.is_empty())
        else {
            return false;
        };
        self.database
            .fingerprints(std::slice::from_ref(&plan.shadow))
            .await
            .ok()
            .and_then(|mut read| read.remove(&plan.shadow).flatten())
            .is_some_and(|observed| observed == expected)
    }

    /// Records `table` SUCCEEDED after its last statement, with the shadow's fingerprint.
    pub(super) async fn finish_table(&self, table: &mut TableRun) -> Result<(), Stop> {
        let run = self.run;
        let shadow = table.plan.shadow.clone();
        let name = table.plan.source.clone();
        let observed = self
            .database
            .fingerprints(std::slice::from_ref(&shadow))
            .await
            .ok()
            .and_then(|mut read| read.remove(&shadow).flatten());
        if observed.as_deref() != Some(table.plan.target_fingerprint.as_str()) {
            run.log.warn(
                &name,
                format!(
                    "shadow fingerprint after the last statement is {}, the plan expected {}",
                    observed.as_deref().unwrap_or("(unreadable)"),
                    table.plan.target_fingerprint
                ),
            );
        }
        run.log.info(&name, "shadow table in sync");
        run.report(table, TableExecutionStatus::Succeeded, "", "", observed)
            .await
    }
}

impl Run {
    /// Records `table` FAILED; with CONTINUE its remaining statements are skipped.
    pub(super) async fn fail_table(
        &self,
        table: &mut TableRun,
        code: &str,
        message: &str,
        observed: Option<String>,
    ) -> Result<(), Stop> {
        let remaining = table.plan.statements.len().saturating_sub(table.next);
        if self.strategy == ErrorStrategy::Continue && remaining > 0 {
            self.log.warn(
                &table.plan.source,
                format!("{remaining} statements of this table not run"),
            );
        }
        self.report(table, TableExecutionStatus::Failed, code, message, observed)
            .await
    }

    /// Records NOT_RUN for every table without an outcome (ABORT after a failure, a user's
    /// abort). A table stopped part-way says how far it got.
    pub(super) async fn mark_rest_not_run(
        &self,
        tables: &mut [TableRun],
        cancelled: bool,
    ) -> Result<(), Stop> {
        for table in tables {
            if matches!(table.state, TableState::Final(_)) {
                continue;
            }
            let why = if cancelled {
                "not run: the task was aborted"
            } else {
                "not run: the task stopped after a failure (error strategy ABORT)"
            };
            let count = table.plan.statements.len();
            let message = if table.state == TableState::Running && table.next > 0 {
                format!("{why}, after statement {} of {count}", table.next)
            } else {
                why.to_owned()
            };
            self.log.warn(&table.plan.source, message);
            self.report(table, TableExecutionStatus::NotRun, "", "", None)
                .await?;
        }
        Ok(())
    }

    /// Sends one table report and records its state; notes a user's abort.
    async fn report(
        &self,
        table: &mut TableRun,
        status: TableExecutionStatus,
        code: &str,
        message: &str,
        observed: Option<String>,
    ) -> Result<(), Stop> {
        let now = self.context.clock.now();
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
        if is_final {
            let status_name = status
                .as_str_name()
                .strip_prefix("TABLE_EXECUTION_STATUS_")
                .unwrap_or("UNSPECIFIED");
            table.span.record("shadowsync.table.status", status_name);
            // The table's outcome is known: its span ends here.
            table.span = tracing::Span::none();
            metrics()
                .execution_tables
                .add(1, &[KeyValue::new("shadowsync.table.status", status_name)]);
        }
        table.state = if is_final {
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

/// Statement text beyond this many bytes is cut from span attributes (a table's CREATE can be
/// long; the task log keeps it whole).
const STATEMENT_TEXT_LIMIT: usize = 1024;

/// `CREATE TABLE` / `ALTER TABLE`: the statement's first two words (the guard admits no other).
fn operation_name(sql: &str) -> String {
    sql.split_whitespace()
        .take(2)
        .map(str::to_ascii_uppercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A statement's CLIENT span under its table's, with the database semantic conventions. The
/// text is DDL the guard admitted (no credentials travel in it), cut to a bounded length.
fn statement_span(
    table: &tracing::Span,
    shadow: &str,
    sql: &str,
    position: usize,
) -> tracing::Span {
    let mut text = sql;
    if text.len() > STATEMENT_TEXT_LIMIT {
        let mut end = STATEMENT_TEXT_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text = &text[..end];
    }
    let operation = operation_name(sql);
    tracing::info_span!(
        parent: table,
        "db statement",
        otel.name = %format!("{operation} {shadow}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        db.system.name = "mysql",
        db.operation.name = %operation,
        db.collection.name = %shadow,
        db.query.text = %text,
        db.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        shadowsync.statement.position = position,
    )
}

/// Records the statement's outcome on its span and in the metrics.
fn record_statement(
    span: &tracing::Span,
    sql: &str,
    elapsed: std::time::Duration,
    result: &Result<std::time::Duration, StatementError>,
) {
    let operation = operation_name(sql);
    let mut attributes = vec![
        KeyValue::new("db.system.name", "mysql"),
        KeyValue::new("db.operation.name", operation),
    ];
    match result {
        Ok(_) => {}
        Err(StatementError::Database { code, .. }) => {
            span.record("db.response.status_code", code.as_str());
            span.record("error.type", code.as_str());
            span.record("otel.status_code", "ERROR");
            attributes.push(KeyValue::new("error.type", code.clone()));
            metrics().statement_failures.add(
                1,
                &[
                    KeyValue::new("db.system.name", "mysql"),
                    KeyValue::new("db.response.status_code", code.clone()),
                ],
            );
        }
        Err(StatementError::Connection(_)) => {
            span.record("error.type", "connection");
            span.record("otel.status_code", "ERROR");
            attributes.push(KeyValue::new("error.type", "connection"));
            metrics().statement_failures.add(
                1,
                &[
                    KeyValue::new("db.system.name", "mysql"),
                    KeyValue::new("db.response.status_code", "connection"),
                ],
            );
        }
    }
    metrics()
        .statement_duration
        .record(elapsed.as_secs_f64(), &attributes);
}
