//! Reads of a task's frozen settings, results, timeline and log, each paged by key.

use prost::Message as _;
use shadowsync_common::clock::to_timestamp;
use shadowsync_proto::common::v1::{PlannedStatement, TableFingerprints, TablePlan};
use shadowsync_proto::task::v1::{
    ScriptStatement, TableExecutionStatus, TaskLogEntry, TaskProgress, TaskTable, TimelineEntry,
};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::SqlStore;

const TABLE_COLUMNS: &str = "ordinal, source_table, shadow_table, result, synced, skipped, \
    reason, source_fingerprint, shadow_fingerprint, target_fingerprint, depends_on, \
    statements_total, status, statements_done, error_code, error_message, started_at, ended_at, \
    attempt";

fn count(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// Adds `tables` synced tables in table status `status` to `progress` (and its percentage).
pub(crate) fn tally(progress: &mut TaskProgress, status: i64, tables: i64) {
    let n = count(tables);
    progress.tables_total += n;
    let final_count = match TableExecutionStatus::try_from(i32::try_from(status).unwrap_or(0)) {
        Ok(TableExecutionStatus::Succeeded) => Some(&mut progress.tables_succeeded),
        Ok(TableExecutionStatus::AlreadyInSync) => Some(&mut progress.tables_already_in_sync),
        Ok(TableExecutionStatus::Failed) => Some(&mut progress.tables_failed),
        Ok(TableExecutionStatus::NotRun) => Some(&mut progress.tables_not_run),
        _ => None,
    };
    if let Some(final_count) = final_count {
        *final_count += n;
        progress.tables_done += n;
    }
    progress.percent = (progress.tables_done * 100)
        .checked_div(progress.tables_total)
        .unwrap_or(0);
}

/// A task table with what is needed to build its execution plan.
#[derive(Debug, Clone)]
pub struct TaskTableRow {
    pub view: TaskTable,
    pub fingerprints: TableFingerprints,
    pub depends_on: Vec<String>,
    /// Skipped with its parent (its shadow would have referenced production), not by a person:
    /// Initiate Again restores it with the parent instead of keeping it skipped.
    pub cascaded: bool,
}

fn decode_table(row: &AnyRow) -> Result<TaskTableRow, sqlx::Error> {
    let depends_on: String = row.try_get("depends_on")?;
    let skipped: i64 = row.try_get("skipped")?;
    Ok(TaskTableRow {
        cascaded: skipped == super::rows::skip_code::CASCADED,
        view: TaskTable {
            ordinal: count(row.try_get("ordinal")?),
            source_table: row.try_get("source_table")?,
            shadow_table: row.try_get("shadow_table")?,
            analysis_result: i32::try_from(row.try_get::<i64, _>("result")?).unwrap_or(0),
            synced: row.try_get::<i64, _>("synced")? != 0,
            skipped: skipped != 0,
            reason: row.try_get("reason")?,
            status: i32::try_from(row.try_get::<i64, _>("status")?).unwrap_or(0),
            statements_total: count(row.try_get("statements_total")?),
            statements_done: count(row.try_get("statements_done")?),
            error_code: row.try_get("error_code")?,
            error_message: row.try_get("error_message")?,
            start_time: row
                .try_get::<Option<i64>, _>("started_at")?
                .map(to_timestamp),
            end_time: row.try_get::<Option<i64>, _>("ended_at")?.map(to_timestamp),
            attempt: count(row.try_get("attempt")?),
        },
        fingerprints: TableFingerprints {
            source: row.try_get("source_fingerprint")?,
            shadow: row.try_get("shadow_fingerprint")?,
            target: row.try_get("target_fingerprint")?,
        },
        depends_on: depends_on
            .split('\n')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Filter of [`SqlStore::task_tables`].
#[derive(Debug, Clone, Default)]
pub struct TaskTableFilter {
    /// `Some(true)`: tables to sync; `Some(false)`: not synced.
    pub synced: Option<bool>,
    pub statuses: Vec<i32>,
    /// Lower-cased `LIKE` pattern, or empty.
    pub pattern: String,
    /// Tables with an ordinal greater than this.
    pub after_ordinal: i64,
    pub limit: i64,
}

impl SqlStore {
    /// Execution progress over the synced tables.
    pub async fn progress(&self, task_id: i64) -> Result<TaskProgress, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) FROM task_tables WHERE task_id = $1 AND synced = 1 \
             GROUP BY status",
        )
        .bind(task_id)
        .fetch_all(self.database().pool())
        .await?;
        let mut progress = TaskProgress::default();
        for row in rows {
            tally(&mut progress, row.try_get(0)?, row.try_get(1)?);
        }
        Ok(progress)
    }

    /// One page of a task's tables in plan order, and the total matching the filter.
    pub async fn task_tables(
        &self,
        task_id: i64,
        filter: &TaskTableFilter,
    ) -> Result<(Vec<TaskTableRow>, i64), sqlx::Error> {
        let mut condition = String::from("task_id = $1");
        if let Some(synced) = filter.synced {
            condition.push_str(&format!(" AND synced = {}", i64::from(synced)));
        }
        if !filter.statuses.is_empty() {
            let list: Vec<String> = filter.statuses.iter().map(i32::to_string).collect();
            condition.push_str(&format!(" AND status IN ({})", list.join(", ")));
        }
        if !filter.pattern.is_empty() {
            condition.push_str(
                " AND (LOWER(source_table) LIKE $2 ESCAPE '\\' OR LOWER(shadow_table) LIKE $2 ESCAPE '\\')",
            );
        } else {
            condition.push_str(" AND $2 = $2");
        }
        let total: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM task_tables WHERE {condition}"
        )))
        .bind(task_id)
        .bind(&filter.pattern)
        .fetch_one(self.database().pool())
        .await?
        .try_get(0)?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TABLE_COLUMNS} FROM task_tables WHERE {condition} AND ordinal > $3 \
             ORDER BY ordinal LIMIT $4"
        )))
        .bind(task_id)
        .bind(&filter.pattern)
        .bind(filter.after_ordinal)
        .bind(filter.limit)
        .fetch_all(self.database().pool())
        .await?;
        let tables = rows.iter().map(decode_table).collect::<Result<_, _>>()?;
        Ok((tables, total))
    }

    /// One page of the script from `from_index`, with the table names.
    pub async fn task_statements(
        &self,
        task_id: i64,
        from_index: i64,
        limit: i64,
    ) -> Result<Vec<ScriptStatement>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT s.script_index, t.source_table, t.shadow_table, s.sql_text \
             FROM task_statements s JOIN task_tables t \
             ON t.task_id = s.task_id AND t.ordinal = s.ordinal \
             WHERE s.task_id = $1 AND s.script_index >= $2 ORDER BY s.script_index LIMIT $3",
        )
        .bind(task_id)
        .bind(from_index)
        .bind(limit)
        .fetch_all(self.database().pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ScriptStatement {
                    index: count(row.try_get(0)?),
                    source_table: row.try_get(1)?,
                    shadow_table: row.try_get(2)?,
                    sql: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// The plans of a page of synced tables (statements included), for the executor.
    pub async fn plan_tables(
        &self,
        task_id: i64,
        after_ordinal: i64,
        limit: i64,
    ) -> Result<(Vec<(TablePlan, TaskTable)>, i64), sqlx::Error> {
        let filter = TaskTableFilter {
            synced: Some(true),
            after_ordinal,
            limit,
            ..TaskTableFilter::default()
        };
        let (rows, total) = self.task_tables(task_id, &filter).await?;
        let mut plans = Vec::with_capacity(rows.len());
        for row in rows {
            let statements = sqlx::query(
                "SELECT statement_index, sql_text, expected_fingerprint_after, script_index \
                 FROM task_statements WHERE task_id = $1 AND ordinal = $2 \
                 ORDER BY statement_index, script_index",
            )
            .bind(task_id)
            .bind(i64::from(row.view.ordinal))
            .fetch_all(self.database().pool())
            .await?
            .iter()
            .map(|s| {
                Ok(PlannedStatement {
                    index: count(s.try_get(0)?),
                    sql: s.try_get(1)?,
                    expected_fingerprint_after: s.try_get(2)?,
                    script_index: count(s.try_get(3)?),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let plan = TablePlan {
                ordinal: row.view.ordinal,
                source_table: row.view.source_table.clone(),
                shadow_table: row.view.shadow_table.clone(),
                result: row.view.analysis_result,
                fingerprints: Some(row.fingerprints.clone()),
                statements,
                depends_on: row.depends_on.clone(),
            };
            plans.push((plan, row.view));
        }
        Ok((plans, total))
    }

    /// Timeline entries after `after_sequence`, and the total.
    pub async fn timeline(
        &self,
        task_id: i64,
        after_sequence: i64,
        limit: i64,
    ) -> Result<(Vec<TimelineEntry>, i64), sqlx::Error> {
        let total: i64 = sqlx::query("SELECT COUNT(*) FROM task_timeline WHERE task_id = $1")
            .bind(task_id)
            .fetch_one(self.database().pool())
            .await?
            .try_get(0)?;
        let rows = sqlx::query(
            "SELECT entry FROM task_timeline WHERE task_id = $1 AND sequence > $2 \
             ORDER BY sequence LIMIT $3",
        )
        .bind(task_id)
        .bind(after_sequence)
        .bind(limit)
        .fetch_all(self.database().pool())
        .await?;
        let entries = rows
            .iter()
            .map(|row| {
                let bytes: Vec<u8> = row.try_get(0)?;
                TimelineEntry::decode(bytes.as_slice()).map_err(|e| sqlx::Error::Decode(e.into()))
            })
            .collect::<Result<_, _>>()?;
        Ok((entries, total))
    }

    /// Log lines after `after_sequence` at `min_level` or above whose lower-cased message is
    /// `LIKE pattern` (empty: all), and, when `total_after` is set, how many match after that
    /// sequence (the listing's own lower bound, not the page's, so every page reports the same
    /// total).
    pub async fn logs(
        &self,
        task_id: i64,
        min_level: i64,
        pattern: &str,
        after_sequence: i64,
        limit: i64,
        total_after: Option<i64>,
    ) -> Result<(Vec<TaskLogEntry>, i64), sqlx::Error> {
        let search = if pattern.is_empty() {
            "$3 = $3"
        } else {
            "message_lower LIKE $3 ESCAPE '\\'"
        };
        let total = if let Some(total_after) = total_after {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM task_logs WHERE task_id = $1 AND level >= $2 AND {search} \
                 AND sequence > $4"
            )))
            .bind(task_id)
            .bind(min_level)
            .bind(pattern)
            .bind(total_after)
            .fetch_one(self.database().pool())
            .await?
            .try_get(0)?
        } else {
            0
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT sequence, logged_at, level, message, table_name, attempt, origin \
             FROM task_logs WHERE task_id = $1 AND level >= $2 AND {search} AND sequence > $4 \
             ORDER BY sequence LIMIT $5"
        )))
        .bind(task_id)
        .bind(min_level)
        .bind(pattern)
        .bind(after_sequence)
        .bind(limit)
        .fetch_all(self.database().pool())
        .await?;
        let entries = rows
            .iter()
            .map(|row| {
                Ok(TaskLogEntry {
                    sequence: u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0),
                    time: Some(to_timestamp(row.try_get(1)?)),
                    level: i32::try_from(row.try_get::<i64, _>(2)?).unwrap_or(0),
                    message: row.try_get(3)?,
                    table: row.try_get(4)?,
                    attempt: count(row.try_get(5)?),
                    origin: row.try_get(6)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok((entries, total))
    }
}
