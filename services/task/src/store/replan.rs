//! Re-plans after a skip or an undo: each table's new plan replaces the stored one inside one
//! transaction, which commits only if the preview is still the one the change started from.
//!
//! The user's skips are set by [`super::rows::AnalysisRowRepository::begin_replan`] and kept;
//! every other row takes the engine's word on whether it is skipped with a skipped parent (a
//! shadow never references a production table), so a cascade and its undo land in the same
//! transaction as the skip that caused them.

use async_trait::async_trait;
use sqlx::{Any, Row, Transaction};

use shadowsync_common::clock::Micros;

use super::rows::{ROW_COLUMNS, compute_preview, decode_row, insert_statements, skip_code};
use super::{PreviewSummary, ReplannedTable, StatementRow, TableRow, status};

/// A stored row a re-plan changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedRow {
    /// The row as stored now.
    pub row: TableRow,
    /// True when the row was skipped with a parent, or restored with it, by this re-plan.
    pub cascade_changed: bool,
}

/// Applies one re-plan in one transaction.
#[async_trait]
pub trait ReplanWriter: Send {
    /// Replaces the plan of the table with `table.row.source_table`; a row the user did not skip
    /// takes `table.row.skipped` as "skipped with its parent". Returns the stored row when its
    /// statements or that skip changed (`None` when unchanged or unknown).
    async fn apply(&mut self, table: &ReplannedTable) -> Result<Option<AppliedRow>, sqlx::Error>;
    /// Recomputes the preview and commits, if the analysis is still SUCCEEDED with preview
    /// `expected_etag`; otherwise rolls back and returns `None`.
    async fn commit(
        self: Box<Self>,
        expected_etag: &str,
        now: Micros,
    ) -> Result<Option<PreviewSummary>, sqlx::Error>;
}

pub(super) struct SqlReplan {
    pub(super) tx: Transaction<'static, Any>,
    pub(super) analysis_id: String,
    /// The rows the user skipped or un-skipped: their own change is not a "re-plan".
    pub(super) named: Vec<i64>,
}

#[async_trait]
impl ReplanWriter for SqlReplan {
    async fn apply(&mut self, table: &ReplannedTable) -> Result<Option<AppliedRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM analysis_tables WHERE analysis_id = $1 AND source_table = $2"
        );
        let Some(stored) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&self.analysis_id)
            .bind(&table.row.source_table)
            .fetch_optional(&mut *self.tx)
            .await?
        else {
            return Ok(None);
        };
        let mut stored = decode_row(&stored)?;
        let old: Vec<String> = sqlx::query(
            "SELECT sql_text FROM analysis_statements WHERE analysis_id = $1 AND row_no = $2 \
             ORDER BY statement_index",
        )
        .bind(&self.analysis_id)
        .bind(stored.row_no)
        .fetch_all(&mut *self.tx)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
        let new: Vec<&str> = table.statements.iter().map(|s| s.sql.as_str()).collect();
        let changed = old.iter().map(String::as_str).ne(new.iter().copied());
        let by_user = stored.skipped && !stored.cascaded;
        let cascaded = !by_user && table.row.skipped;
        let cascade_changed = cascaded != stored.cascaded;
        // A row skipped or restored with its parent is explained by its reason, not "re-planned".
        let replanned = (stored.replanned || changed)
            && !self.named.contains(&stored.row_no)
            && !cascaded
            && !cascade_changed;
        let skip = if by_user {
            skip_code::BY_USER
        } else if cascaded {
            skip_code::CASCADED
        } else {
            0
        };
        sqlx::query(
            "UPDATE analysis_tables SET ordinal = $3, result = $4, reason = $5, \
             target_fingerprint = $6, depends_on = $7, statement_count = $8, replanned = $9, \
             skipped = $10 WHERE analysis_id = $1 AND row_no = $2",
        )
        .bind(&self.analysis_id)
        .bind(stored.row_no)
        .bind(table.row.ordinal)
        .bind(table.row.result)
        .bind(&table.row.reason)
        .bind(&table.row.target_fingerprint)
        .bind(table.row.depends_on.join("\n"))
        .bind(table.row.statement_count)
        .bind(i64::from(replanned))
        .bind(skip)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("DELETE FROM analysis_statements WHERE analysis_id = $1 AND row_no = $2")
            .bind(&self.analysis_id)
            .bind(stored.row_no)
            .execute(&mut *self.tx)
            .await?;
        let statements: Vec<StatementRow> = table
            .statements
            .iter()
            .map(|s| StatementRow {
                row_no: stored.row_no,
                ..s.clone()
            })
            .collect();
        insert_statements(&mut self.tx, &self.analysis_id, &statements).await?;
        if !changed && !cascade_changed {
            return Ok(None);
        }
        stored.ordinal = table.row.ordinal;
        stored.result = table.row.result;
        stored.reason.clone_from(&table.row.reason);
        stored.statement_count = table.row.statement_count;
        stored.replanned = replanned;
        stored.skipped = skip != 0;
        stored.cascaded = cascaded;
        Ok(Some(AppliedRow {
            row: stored,
            cascade_changed,
        }))
    }

    async fn commit(
        mut self: Box<Self>,
        expected_etag: &str,
        now: Micros,
    ) -> Result<Option<PreviewSummary>, sqlx::Error> {
        let preview = compute_preview(&mut self.tx, &self.analysis_id).await?;
        let done = sqlx::query(
            "UPDATE analyses SET preview_etag = $2, preview_statement_count = $3, \
             preview_size_bytes = $4, preview_sha256 = $5, updated_at = $6 \
             WHERE id = $1 AND status = $7 AND preview_etag = $8",
        )
        .bind(&self.analysis_id)
        .bind(&preview.etag)
        .bind(preview.statement_count)
        .bind(preview.size_bytes)
        .bind(&preview.sha256)
        .bind(now)
        .bind(status::SUCCEEDED)
        .bind(expected_etag)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        self.tx.commit().await?;
        Ok(Some(preview))
    }
}
