//! Freezing an analysis into a task (SubmitTask): one transaction that locks the connection,
//! inserts the task as hidden `SUBMITTING`, copies the rows and the script, hashes the frozen
//! plan, and marks the analysis submitted, or does nothing.

use shadowsync_common::clock::Micros;
use shadowsync_common::plan_digest::PLAN_DIGEST_VERSION;
use shadowsync_proto::task::v1::{TableExecutionStatus, TaskStatus};
use sqlx::Row;

use super::lifecycle::{TaskRecord, status_name};
use super::{SqlStore, result, status};

/// Why a submission stored nothing.
#[derive(Debug)]
pub enum SubmitRefused {
    /// The connection was deleted meanwhile.
    ConnectionGone,
    /// The analysis is no longer SUCCEEDED (submitted concurrently, or expired).
    AnalysisMoved,
    /// The plan frozen from the analysis is not the one its preview showed (the stored plan
    /// changed after the preview was computed, or the preview predates the plan digest).
    PreviewChanged,
}

impl SqlStore {
    /// Stores `task` (its id is assigned) from its analysis; returns the new id. The frozen
    /// plan must hash to `previewed` (the analysis's preview digest): then the task's
    /// `script_sha256`, the hash its approval binds, is its plan digest with its strategy and
    /// schedule (`task.script_sha256` is ignored).
    pub async fn insert_task(
        &self,
        task: &TaskRecord,
        previewed: &str,
        now: Micros,
    ) -> Result<Result<i64, SubmitRefused>, sqlx::Error> {
        let mut tx = self.database().begin().await?;
        let locked = sqlx::query("UPDATE connections SET updated_at = updated_at WHERE id = $1")
            .bind(&task.connection_id)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() != 1 {
            return Ok(Err(SubmitRefused::ConnectionGone));
        }
        let row = sqlx::query(
            "INSERT INTO tasks (analysis_id, connection_id, database_name, status, creator, \
             created_at, updated_at, task_type, status_rank, connection_name, environment, \
             execution_mode, scheduled_at, error_strategy, remarks, creator_name, creator_roles, \
             sync_range, requested_tables, naming_mode, affix, script_sha256, submit_request_id, \
             submit_parameters_sha256, submit_next_at, permission_pending, database_name_lower, \
             creator_lower, creator_name_lower) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, 'shadow_table_sync', $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $6, $23, $24, $25, $26) \
             RETURNING id",
        )
        .bind(&task.analysis_id)
        .bind(&task.connection_id)
        .bind(&task.database)
        .bind(status_name(TaskStatus::Submitting))
        .bind(&task.creator)
        .bind(now)
        .bind(i64::from(TaskStatus::Submitting as i32))
        .bind(&task.connection_name)
        .bind(&task.environment)
        .bind(i64::from(task.execution_mode))
        .bind(task.scheduled_at)
        .bind(i64::from(task.error_strategy))
        .bind(&task.remarks)
        .bind(&task.creator_name)
        .bind(task.creator_roles.join("\n"))
        .bind(task.range)
        .bind(task.requested_tables.join("\n"))
        .bind(task.naming_mode)
        .bind(&task.affix)
        .bind(&task.script_sha256)
        .bind(&task.submit_request_id)
        .bind(&task.submit_parameters_sha256)
        .bind(i64::from(task.permission_pending))
        // Lowered here, by Unicode rules, for ListTasks' case-insensitive filters (SQLite's
        // LOWER() folds only ASCII).
        .bind(task.database.to_lowercase())
        .bind(task.creator.to_lowercase())
        .bind(task.creator_name.to_lowercase())
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get(0)?;
        let moved = sqlx::query(
            "UPDATE analyses SET status = $1, task_id = $2, updated_at = $3 \
             WHERE id = $4 AND status = $5",
        )
        .bind(status::SUBMITTED)
        .bind(id)
        .bind(now)
        .bind(&task.analysis_id)
        .bind(status::SUCCEEDED)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(Err(SubmitRefused::AnalysisMoved));
        }
        let synced = format!(
            "(t.result IN ({c}, {u}) AND t.skipped = 0)",
            c = result::CREATE,
            u = result::UPDATE
        );
        let copy_tables = format!(
            "INSERT INTO task_tables (task_id, ordinal, source_table, shadow_table, result, synced, \
             skipped, reason, source_fingerprint, shadow_fingerprint, target_fingerprint, \
             depends_on, statements_total, status) \
             SELECT $1, t.ordinal, t.source_table, t.shadow_table, t.result, \
             CASE WHEN {synced} THEN 1 ELSE 0 END, t.skipped, t.reason, t.source_fingerprint, \
             t.shadow_fingerprint, t.target_fingerprint, t.depends_on, \
             CASE WHEN {synced} THEN t.statement_count ELSE 0 END, \
             CASE WHEN {synced} THEN {pending} ELSE 0 END \
             FROM analysis_tables t WHERE t.analysis_id = $2",
            pending = TableExecutionStatus::Pending as i32,
        );
        sqlx::query(sqlx::AssertSqlSafe(copy_tables))
            .bind(id)
            .bind(&task.analysis_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO task_statements (task_id, script_index, ordinal, statement_index, \
             sql_text, expected_fingerprint_after) \
             SELECT $1, s.script_index, t.ordinal, s.statement_index, s.sql_text, \
             s.expected_fingerprint_after \
             FROM analysis_statements s JOIN analysis_tables t \
             ON t.analysis_id = s.analysis_id AND t.row_no = s.row_no \
             WHERE s.analysis_id = $2 AND t.skipped = 0",
        )
        .bind(id)
        .bind(&task.analysis_id)
        .execute(&mut *tx)
        .await?;
        let counts = sqlx::query(
            "SELECT CAST(COALESCE(SUM(synced), 0) AS BIGINT), \
             CAST(COALESCE(SUM(1 - synced), 0) AS BIGINT), \
             CAST(COALESCE(SUM(statements_total), 0) AS BIGINT) \
             FROM task_tables WHERE task_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE tasks SET tables_to_sync = $2, tables_not_synced = $3, statement_count = $4 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(counts.try_get::<i64, _>(0)?)
        .bind(counts.try_get::<i64, _>(1)?)
        .bind(counts.try_get::<i64, _>(2)?)
        .execute(&mut *tx)
        .await?;
        let plan = super::plan_digests::task_plan(&mut tx, id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        if plan.previewed() != previewed {
            // Dropping the transaction stores nothing.
            return Ok(Err(SubmitRefused::PreviewChanged));
        }
        sqlx::query("UPDATE tasks SET script_sha256 = $2, plan_digest_version = $3 WHERE id = $1")
            .bind(id)
            .bind(plan.approved())
            .bind(PLAN_DIGEST_VERSION)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(id))
    }
}
