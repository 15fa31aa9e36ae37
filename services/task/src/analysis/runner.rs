//! The background runner: executes analyses under a lease in the metadata store, so exactly one
//! replica writes an analysis' rows, and an analysis whose replica died never stays RUNNING.
//!
//! - A run claims the lease (PENDING → RUNNING), calls `AnalysisService.Analyze`, writes each
//!   streamed batch of tables in one transaction fenced by the lease, renews the lease at a
//!   third of its length, and completes or records the failure. Memory stays bounded by one
//!   batch (the analysis service sends ≤ 512 KiB messages and waits on flow control).
//! - [`Runner::sweep`] marks RUNNING analyses whose lease lapsed FAILED (`WORKER_LOST`,
//!   retryable), picks up PENDING analyses no runner claimed (a replica died between accepting
//!   and claiming), and expires unsubmitted analyses past their retention.

use shadowsync_common::logged::logged;
use std::sync::Arc;

use shadowsync_common::clock::{Clock, micros};
use shadowsync_proto::analysis::v1::analyze_response::Event;
use shadowsync_proto::common::v1::AnalysisFailureReason;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::{analyze_request, view};
use crate::config::TaskConfig;
use crate::connections::Connections;
use crate::error::TaskError;
use crate::peers::AnalysisClient;
use crate::store::analyses::Progress;
use crate::store::{FailureRecord, ReplannedTable, TaskStore};

/// Runs analyses in the background; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn TaskStore>,
    connections: Connections,
    analysis: AnalysisClient,
    clock: Arc<dyn Clock>,
    config: TaskConfig,
    /// Identifies this replica's runs in lease rows.
    replica: String,
    runs: TaskTracker,
    shutdown: CancellationToken,
}

enum Outcome {
    Done,
    LostLease,
    Failed(FailureRecord),
}

/// Whether retrying without changing anything may help.
fn retryable(reason: AnalysisFailureReason) -> bool {
    matches!(
        reason,
        AnalysisFailureReason::Unreachable
            | AnalysisFailureReason::WorkerLost
            | AnalysisFailureReason::Internal
    )
}

fn failure(reason: AnalysisFailureReason, message: impl Into<String>) -> FailureRecord {
    FailureRecord {
        reason: reason as i64,
        message: message.into(),
        retryable: retryable(reason),
    }
}

fn from_status(status: &tonic::Status) -> FailureRecord {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => failure(
            AnalysisFailureReason::Internal,
            "the analysis service is unavailable; retry",
        ),
        _ => failure(
            AnalysisFailureReason::Internal,
            format!("the analysis service failed ({:?})", status.code()),
        ),
    }
}

impl Runner {
    pub fn new(
        store: Arc<dyn TaskStore>,
        connections: Connections,
        analysis: AnalysisClient,
        clock: Arc<dyn Clock>,
        config: TaskConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                connections,
                analysis,
                clock,
                config,
                replica: uuid::Uuid::new_v4().simple().to_string(),
                runs: TaskTracker::new(),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// Runs analysis `id` in the background if it is still PENDING.
    pub fn spawn(&self, id: String) {
        let runner = self.clone();
        // The run continues the trace of the call that started it.
        self.inner
            .runs
            .spawn(tracing::Instrument::in_current_span(async move {
                runner.run(&id).await
            }));
    }

    /// Claims and runs one analysis to its end (or until shutdown).
    pub async fn run(&self, id: &str) {
        let inner = &self.inner;
        let owner = format!("{}/{}", inner.replica, uuid::Uuid::new_v4().simple());
        let now = inner.clock.now();
        let lease = micros(inner.config.runner_lease);
        match inner
            .store
            .claim_analysis(id, &owner, now, now + lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                error!(analysis_id = %id, error = %e, "cannot claim analysis");
                return;
            }
        }
        let outcome = tokio::select! {
            outcome = self.execute(id, &owner) => outcome,
            () = inner.shutdown.cancelled() => Ok(Outcome::Failed(failure(
                AnalysisFailureReason::WorkerLost,
                "the service stopped during the analysis; retry",
            ))),
        };
        let failed = match outcome {
            Ok(Outcome::Done) => {
                info!(analysis_id = %id, "analysis succeeded");
                return;
            }
            Ok(Outcome::LostLease) => {
                warn!(analysis_id = %id, "analysis lease lost; stopping");
                return;
            }
            Ok(Outcome::Failed(failed)) => failed,
            Err(e) => {
                error!(analysis_id = %id, error = %e, "analysis run failed");
                failure(AnalysisFailureReason::Internal, "internal error; retry")
            }
        };
        warn!(analysis_id = %id, reason = failed.reason, message = %logged(&failed.message), "analysis failed");
        if let Err(e) = inner
            .store
            .fail_analysis(id, Some(&owner), &failed, inner.clock.now())
            .await
        {
            error!(analysis_id = %id, error = %e, "cannot record analysis failure");
        }
    }

    async fn execute(&self, id: &str, owner: &str) -> Result<Outcome, TaskError> {
        let inner = &self.inner;
        let Some(record) = inner.store.get_analysis(id).await? else {
            return Ok(Outcome::LostLease);
        };
        let details = match inner.connections.details(&record.connection_id).await {
            Ok((_, details)) => details,
            Err(TaskError::NotFound(_)) => {
                return Ok(Outcome::Failed(FailureRecord {
                    reason: AnalysisFailureReason::Internal as i64,
                    message: "the connection was deleted".into(),
                    retryable: false,
                }));
            }
            Err(e) => return Err(e),
        };
        let skips = record.initial_skips.clone();
        let request = analyze_request(&record, details, skips, inner.config.max_tables);
        let mut stream = match inner.analysis.clone().analyze(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return Ok(Outcome::Failed(from_status(&status))),
        };
        let lease = micros(inner.config.runner_lease);
        let mut renew = tokio::time::interval(inner.config.runner_lease / 3);
        let mut progress = Progress::default();
        loop {
            let message = tokio::select! {
                _ = renew.tick() => {
                    let now = inner.clock.now();
                    if !inner.store.record_progress(id, owner, progress, now, now + lease).await? {
                        return Ok(Outcome::LostLease);
                    }
                    continue;
                }
                message = stream.message() => message,
            };
            let event = match message {
                Ok(Some(response)) => response.event,
                Ok(None) => {
                    return Ok(Outcome::Failed(failure(
                        AnalysisFailureReason::Internal,
                        "the analysis ended without a result; retry",
                    )));
                }
                Err(status) => return Ok(Outcome::Failed(from_status(&status))),
            };
            let now = inner.clock.now();
            match event {
                Some(Event::Progress(report)) => {
                    progress.tables_total = i64::from(report.tables_total);
                    // Introspection is most of the work: 0–90 %; writing rows the rest.
                    if report.tables_total > 0 {
                        progress.percent = (i64::from(report.tables_done) * 90
                            / i64::from(report.tables_total))
                        .clamp(progress.percent, 90);
                    }
                    if !inner
                        .store
                        .record_progress(id, owner, progress, now, now + lease)
                        .await?
                    {
                        return Ok(Outcome::LostLease);
                    }
                }
                Some(Event::Tables(batch)) => {
                    let mut rows: Vec<ReplannedTable> =
                        batch.tables.into_iter().map(view::analyzed).collect();
                    // A skipped row the user did not name was skipped with its parent.
                    for table in &mut rows {
                        table.row.cascaded = table.row.skipped
                            && !record.initial_skips.contains(&table.row.source_table);
                    }
                    progress.tables_done += i64::try_from(rows.len()).unwrap_or(0);
                    progress.tables_total = progress.tables_total.max(progress.tables_done);
                    progress.percent =
                        90 + progress.tables_done * 10 / progress.tables_total.max(1);
                    progress.percent = progress.percent.min(99);
                    if !inner
                        .store
                        .write_rows(id, owner, &rows, progress, now, now + lease)
                        .await?
                    {
                        return Ok(Outcome::LostLease);
                    }
                }
                Some(Event::Summary(summary)) => {
                    return Ok(
                        if inner
                            .store
                            .complete_analysis(id, owner, &summary.server_version, now)
                            .await?
                        {
                            Outcome::Done
                        } else {
                            Outcome::LostLease
                        },
                    );
                }
                Some(Event::Failure(failed)) => {
                    let reason = AnalysisFailureReason::try_from(failed.reason)
                        .unwrap_or(AnalysisFailureReason::Internal);
                    return Ok(Outcome::Failed(failure(reason, failed.message)));
                }
                None => {}
            }
        }
    }

    /// One pass of recovery and expiry (see the module doc). Errors are logged; the next pass
    /// tries again.
    pub async fn sweep(&self) {
        let inner = &self.inner;
        let now = inner.clock.now();
        let lost = failure(
            AnalysisFailureReason::WorkerLost,
            "the replica running the analysis stopped; retry",
        );
        match inner.store.fail_lapsed_analyses(now, &lost).await {
            Ok(ids) => {
                for id in ids {
                    warn!(analysis_id = %id, "analysis runner lost; marked failed");
                }
            }
            Err(e) => error!(error = %e, "cannot recover lost analyses"),
        }
        let before = now - micros(inner.config.runner_lease);
        match inner.store.stranded_analyses(before).await {
            Ok(ids) => {
                for id in ids {
                    info!(analysis_id = %id, "picking up a pending analysis");
                    self.spawn(id);
                }
            }
            Err(e) => error!(error = %e, "cannot list pending analyses"),
        }
        // Idempotency keys are kept 24 hours.
        let day = micros(std::time::Duration::from_secs(24 * 3600));
        if let Err(e) = inner.store.forget_before(now - day).await {
            error!(error = %e, "cannot forget old request ids");
        }
        match inner.store.expire_analyses(now).await {
            Ok(0) => {}
            Ok(count) => info!(count, "analyses expired"),
            Err(e) => error!(error = %e, "cannot expire analyses"),
        }
    }

    /// Sweeps every `sweep_interval` until `shutdown`, then stops running analyses (each is
    /// marked FAILED, retryable) and waits for them.
    pub async fn run_background(&self, shutdown: impl std::future::Future<Output = ()>) {
        let mut ticker = tokio::time::interval(self.inner.config.sweep_interval);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.sweep().await,
                () = &mut shutdown => break,
            }
        }
        self.inner.shutdown.cancel();
        self.inner.runs.close();
        self.inner.runs.wait().await;
    }

    /// Waits until every analysis spawned so far has finished (tests, shutdown).
    pub async fn idle(&self) {
        self.inner.runs.close();
        self.inner.runs.wait().await;
        self.inner.runs.reopen();
    }
}
