//! The analysis journey: start (validated, nothing stored when rejected), a
//! background [`runner::Runner`] that calls the analysis service and writes rows in batches,
//! reads (header, paged rows, one table, the SQL preview), skips with re-planning, and retry.

pub mod pickers;
pub mod read;
pub mod runner;
pub mod skip;
pub mod start;
pub mod view;

use std::sync::Arc;

use shadowsync_common::auth::Identity;
use shadowsync_common::clock::Clock;
use shadowsync_proto::analysis::v1::AnalyzeRequest;
use shadowsync_proto::common::v1::{ConnectionDetails, ShadowNaming};
use shadowsync_proto::task::v1::Analysis;

use crate::config::TaskConfig;
use crate::connections::Connections;
use crate::error::{Result, TaskError};
use crate::peers::{AnalysisClient, PermissionChecker};
use crate::store::{AnalysisRecord, TaskStore, status};

pub use runner::Runner;

/// The analysis use cases.
#[derive(Clone)]
pub struct Analyses {
    store: Arc<dyn TaskStore>,
    connections: Connections,
    analysis: AnalysisClient,
    permissions: Arc<dyn PermissionChecker>,
    clock: Arc<dyn Clock>,
    config: TaskConfig,
    runner: Runner,
}

impl Analyses {
    pub fn new(
        store: Arc<dyn TaskStore>,
        connections: Connections,
        analysis: AnalysisClient,
        permissions: Arc<dyn PermissionChecker>,
        clock: Arc<dyn Clock>,
        config: TaskConfig,
    ) -> Self {
        let runner = Runner::new(
            store.clone(),
            connections.clone(),
            analysis.clone(),
            clock.clone(),
            config,
        );
        Self {
            store,
            connections,
            analysis,
            permissions,
            clock,
            config,
            runner,
        }
    }

    /// The background runner (lease recovery and expiry run on it).
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// The caller's analysis. Others' analyses are NOT_FOUND, like missing ones, so ids do not
    /// leak.
    async fn owned(&self, caller: &Identity, id: &str) -> Result<AnalysisRecord> {
        match self.store.get_analysis(id).await? {
            Some(record) if record.creator == caller.subject => Ok(record),
            _ => Err(TaskError::NotFound(format!("analysis {id} not found"))),
        }
    }

    async fn header(&self, record: &AnalysisRecord) -> Result<Analysis> {
        let counts = self.store.row_counts(&record.id).await?;
        Ok(view::analysis(record, &counts))
    }

    /// `RetryAnalysis`: a FAILED analysis runs again under the same id.
    ///
    /// Fails with NOT_FOUND, or FAILED_PRECONDITION unless it is FAILED.
    pub async fn retry(&self, caller: &Identity, id: &str) -> Result<Analysis> {
        let record = self.owned(caller, id).await?;
        if record.status != status::FAILED
            || !self.store.retry_analysis(id, self.clock.now()).await?
        {
            return Err(TaskError::FailedPrecondition(format!(
                "analysis {id} is not FAILED"
            )));
        }
        self.runner.spawn(id.to_owned());
        let record = self.owned(caller, id).await?;
        self.header(&record).await
    }
}

/// The analysis service request for a stored analysis.
pub(crate) fn analyze_request(
    record: &AnalysisRecord,
    details: ConnectionDetails,
    skipped_tables: Vec<String>,
    max_tables: u32,
) -> AnalyzeRequest {
    AnalyzeRequest {
        analysis_id: record.id.clone(),
        connection: Some(details),
        database: record.database.clone(),
        range: i32::try_from(record.range).unwrap_or(0),
        tables: record.requested_tables.clone(),
        naming: Some(ShadowNaming {
            mode: i32::try_from(record.naming_mode).unwrap_or(0),
            affix: record.affix.clone(),
        }),
        skipped_tables,
        also_synced_tables: Vec::new(),
        max_tables,
    }
}
