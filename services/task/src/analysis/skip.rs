//! `SetTablesSkipped`: move CREATE/UPDATE rows between the tabs and re-plan through the analysis
//! service with the new skip set, so every dependant's SQL and the preview stay valid to run.
//!
//! A shadow never references a production table: skipping a table also skips
//! every table whose shadow would then reference it (the engine decides, transitively; the rows
//! are stored as skipped *with* their parent and listed in `cascaded_tables`), and un-skipping it
//! restores them. A table skipped with its parent cannot be un-skipped on its own: un-skip the
//! parent.
//!
//! The whole range is re-planned (the contract's simpler alternative): the engine needs the
//! full picture to know which parents' shadows will exist. The new plans are streamed into one
//! transaction that commits only if the preview etag is still the one this change started from.

use std::collections::BTreeSet;

use shadowsync_common::auth::Identity;
use shadowsync_common::logged::logged;
use shadowsync_proto::analysis::v1::analyze_response::Event;
use shadowsync_proto::task::v1::{SetTablesSkippedRequest, SetTablesSkippedResponse};
use tracing::{info, instrument};

use super::{Analyses, analyze_request, view};
use crate::error::{Result, TaskError, from_peer};
use crate::store::rows::ReplanWriter;
use crate::store::{TableRow, result, status};

/// Most tables one call may name.
const MAX_NAMED: usize = 1_000;

impl Analyses {
    /// Skips (or un-skips) tables and re-plans dependants.
    ///
    /// Fails with NOT_FOUND (analysis or table), INVALID_ARGUMENT naming a table that cannot be
    /// skipped, FAILED_PRECONDITION when the analysis is not SUCCEEDED or the etag is stale,
    /// UNAVAILABLE when the analysis service or target cannot re-plan now.
    #[instrument(skip_all, fields(caller = %logged(&caller.subject), analysis_id = %logged(&request.analysis_id)), err(Display, level = "info"))]
    pub async fn set_skipped(
        &self,
        caller: &Identity,
        request: &SetTablesSkippedRequest,
    ) -> Result<SetTablesSkippedResponse> {
        let record = self.owned(caller, &request.analysis_id).await?;
        if record.status != status::SUCCEEDED {
            return Err(TaskError::FailedPrecondition(format!(
                "analysis {} is not SUCCEEDED",
                record.id
            )));
        }
        if !request.expected_preview_etag.is_empty()
            && request.expected_preview_etag != record.preview.etag
        {
            return Err(TaskError::FailedPrecondition(
                "expected_preview_etag is stale; reload the analysis".into(),
            ));
        }
        let named = request.table_ids.len() + request.source_tables.len();
        if named == 0 || named > MAX_NAMED {
            return Err(TaskError::invalid(
                "table_ids",
                format!("name 1–{MAX_NAMED} tables (table_ids and source_tables together)"),
            ));
        }
        let named = self.named_rows(&record.id, request).await?;
        if !request.skipped
            && let Some((row, field)) = named.iter().find(|(row, _)| row.cascaded)
        {
            return Err(TaskError::invalid(
                *field,
                format!(
                    "table {} is {}; un-skip that table instead",
                    row.source_table, row.reason
                ),
            ));
        }
        let rows: Vec<TableRow> = named.into_iter().map(|(row, _)| row).collect();
        // Skipping a row that was skipped with its parent makes it the user's own skip, so
        // that un-skipping the parent leaves it skipped.
        let changing: Vec<&TableRow> = rows
            .iter()
            .filter(|r| r.skipped != request.skipped || (request.skipped && r.cascaded))
            .collect();
        if changing.is_empty() {
            return Ok(SetTablesSkippedResponse {
                analysis: Some(self.header(&record).await?),
                changed_tables: rows.iter().map(view::table).collect(),
                cascaded_tables: Vec::new(),
            });
        }
        let mut skip_set: BTreeSet<String> = self
            .store
            .skipped_tables(&record.id)
            .await?
            .into_iter()
            .collect();
        for row in &changing {
            if request.skipped {
                skip_set.insert(row.source_table.clone());
            } else {
                skip_set.remove(&row.source_table);
            }
        }
        let row_nos: Vec<i64> = changing.iter().map(|r| r.row_no).collect();
        let (_, details) = self.connections.details(&record.connection_id).await?;
        let analyze = analyze_request(
            &record,
            details,
            skip_set.into_iter().collect(),
            self.config.max_tables,
        );
        let mut stream = self
            .analysis
            .clone()
            .analyze(analyze)
            .await
            .map_err(|status| from_peer("analysis", &status))?
            .into_inner();
        // The transaction starts with the first tables, after the (slow) introspection.
        let mut writer: Option<Box<dyn ReplanWriter>> = None;
        let mut replanned: Vec<TableRow> = Vec::new();
        let mut cascaded: Vec<TableRow> = Vec::new();
        loop {
            let message = stream
                .message()
                .await
                .map_err(|status| from_peer("analysis", &status))?
                .ok_or_else(|| TaskError::Unavailable("the re-plan ended early; retry".into()))?;
            match message.event {
                Some(Event::Tables(batch)) => {
                    if writer.is_none() {
                        writer = Some(
                            self.store
                                .begin_replan(&record.id, &row_nos, request.skipped)
                                .await?,
                        );
                    }
                    if let Some(writer) = writer.as_mut() {
                        for table in batch.tables {
                            let Some(applied) = writer.apply(&view::analyzed(table)).await? else {
                                continue;
                            };
                            if row_nos.contains(&applied.row.row_no) {
                                continue;
                            }
                            if applied.cascade_changed {
                                cascaded.push(applied.row);
                            } else if applied.row.replanned {
                                replanned.push(applied.row);
                            }
                        }
                    }
                }
                Some(Event::Summary(_)) => break,
                Some(Event::Failure(failure)) => {
                    return Err(TaskError::Unavailable(format!(
                        "the tables cannot be re-planned now: {}",
                        failure.message
                    )));
                }
                Some(Event::Progress(_)) | None => {}
            }
        }
        let writer = match writer {
            Some(writer) => writer,
            None => {
                self.store
                    .begin_replan(&record.id, &row_nos, request.skipped)
                    .await?
            }
        };
        if writer
            .commit(&record.preview.etag, self.clock.now())
            .await?
            .is_none()
        {
            return Err(TaskError::FailedPrecondition(
                "the analysis changed meanwhile; reload it and try again".into(),
            ));
        }
        info!(
            tables = row_nos.len(),
            skipped = request.skipped,
            replanned = replanned.len(),
            cascaded = cascaded.len(),
            "skips changed"
        );
        let record = self.owned(caller, &record.id).await?;
        let mut changed = Vec::with_capacity(row_nos.len() + replanned.len() + cascaded.len());
        for row_no in &row_nos {
            if let Some(row) = self.store.get_row(&record.id, Some(*row_no), "").await? {
                changed.push(view::table(&row));
            }
        }
        changed.extend(replanned.iter().map(view::table));
        let cascaded_tables: Vec<_> = cascaded.iter().map(view::table).collect();
        changed.extend(cascaded_tables.iter().cloned());
        Ok(SetTablesSkippedResponse {
            analysis: Some(self.header(&record).await?),
            changed_tables: changed,
            cascaded_tables,
        })
    }

    /// The rows a request names, with the field that named each; each must exist and be
    /// CREATE/UPDATE.
    async fn named_rows(
        &self,
        analysis_id: &str,
        request: &SetTablesSkippedRequest,
    ) -> Result<Vec<(TableRow, &'static str)>> {
        let mut rows: Vec<(TableRow, &'static str)> = Vec::new();
        let by_id = request
            .table_ids
            .iter()
            .map(|id| (Some(id.as_str()), "", "table_ids"));
        let by_name = request
            .source_tables
            .iter()
            .map(|n| (None, n.as_str(), "source_tables"));
        for (id, name, field) in by_id.chain(by_name) {
            let row = match id {
                Some(id) => match id.parse::<i64>() {
                    Ok(row_no) => self.store.get_row(analysis_id, Some(row_no), "").await?,
                    Err(_) => None,
                },
                None => self.store.get_row(analysis_id, None, name).await?,
            };
            let row = row.ok_or_else(|| {
                TaskError::NotFound(format!("{field}: table {} not found", id.unwrap_or(name)))
            })?;
            if !matches!(row.result, result::CREATE | result::UPDATE) {
                return Err(TaskError::invalid(
                    field,
                    format!(
                        "table {} has nothing to sync and cannot be skipped",
                        row.source_table
                    ),
                ));
            }
            if !rows.iter().any(|(r, _)| r.row_no == row.row_no) {
                rows.push((row, field));
            }
        }
        Ok(rows)
    }
}
