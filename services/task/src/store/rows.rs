//! Per-table rows of an analysis and its change statements: batch writes by the runner (fenced
//! by the lease), the tab/paged listing, the preview in script order, and re-plans.

use async_trait::async_trait;
use futures::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};

use shadowsync_common::clock::Micros;

use super::analyses::Progress;
pub use super::replan::ReplanWriter;
use super::{
    PreviewSummary, ReplannedTable, RowCounts, RowFilter, ScriptLine, SqlStore, StatementRow, Tab,
    TableRow, like_pattern, result, status,
};

/// Rows and statements of analyses.
#[async_trait]
pub trait AnalysisRowRepository: Send + Sync {
    /// Inserts a batch of rows with their statements and records progress, in one transaction.
    /// False (nothing written) when `owner` no longer holds the lease.
    async fn write_rows(
        &self,
        analysis_id: &str,
        owner: &str,
        tables: &[ReplannedTable],
        progress: Progress,
        now: Micros,
        lease_until: Micros,
    ) -> Result<bool, sqlx::Error>;
    async fn row_counts(&self, analysis_id: &str) -> Result<RowCounts, sqlx::Error>;
    /// One page in plan order, and the number of rows matching the filter.
    async fn list_rows(
        &self,
        analysis_id: &str,
        filter: &RowFilter,
    ) -> Result<(Vec<TableRow>, i64), sqlx::Error>;
    /// A row by id or, when `row_no` is `None`, by source name.
    async fn get_row(
        &self,
        analysis_id: &str,
        row_no: Option<i64>,
        source_table: &str,
    ) -> Result<Option<TableRow>, sqlx::Error>;
    /// A row's statements in order.
    async fn row_statements(
        &self,
        analysis_id: &str,
        row_no: i64,
    ) -> Result<Vec<StatementRow>, sqlx::Error>;
    /// Statements of non-skipped rows from script position `from`, at most `limit`.
    async fn script_page(
        &self,
        analysis_id: &str,
        from: i64,
        limit: i64,
    ) -> Result<Vec<ScriptLine>, sqlx::Error>;
    /// Source names of the rows the user skipped (not those skipped with them).
    async fn skipped_tables(&self, analysis_id: &str) -> Result<Vec<String>, sqlx::Error>;
    /// Starts a re-plan: marks `row_nos` skipped (or not) and returns the writer that replaces
    /// each table's plan. Nothing is visible until [`ReplanWriter::commit`].
    async fn begin_replan(
        &self,
        analysis_id: &str,
        row_nos: &[i64],
        skipped: bool,
    ) -> Result<Box<dyn ReplanWriter>, sqlx::Error>;
}

pub(super) const ROW_COLUMNS: &str = "row_no, ordinal, source_table, shadow_table, result, original_result, \
    skipped, replanned, reason, source_ddl, shadow_ddl, source_fingerprint, shadow_fingerprint, \
    target_fingerprint, depends_on, statement_count";

/// Values of the `skipped` column: 0 not skipped, 1 skipped by the user (what
/// [`AnalysisRowRepository::skipped_tables`] lists and re-plans send), 2 skipped with a skipped
/// parent (see [`TableRow::cascaded`]).
pub(super) mod skip_code {
    use super::TableRow;

    pub const BY_USER: i64 = 1;
    pub const CASCADED: i64 = 2;

    pub fn of(row: &TableRow) -> i64 {
        match (row.skipped, row.cascaded) {
            (false, _) => 0,
            (true, false) => BY_USER,
            (true, true) => CASCADED,
        }
    }
}

/// Synced tab: CREATE/UPDATE rows not skipped.
const SYNCED: &str = "(result IN (1, 2) AND skipped = 0)";

pub(super) fn decode_row(row: &AnyRow) -> Result<TableRow, sqlx::Error> {
    let depends_on: String = row.try_get("depends_on")?;
    let skipped: i64 = row.try_get("skipped")?;
    Ok(TableRow {
        row_no: row.try_get("row_no")?,
        ordinal: row.try_get("ordinal")?,
        source_table: row.try_get("source_table")?,
        shadow_table: row.try_get("shadow_table")?,
        result: row.try_get("result")?,
        original_result: row.try_get("original_result")?,
        skipped: skipped != 0,
        cascaded: skipped == skip_code::CASCADED,
        replanned: row.try_get::<i64, _>("replanned")? != 0,
        reason: row.try_get("reason")?,
        source_ddl: row.try_get("source_ddl")?,
        shadow_ddl: row.try_get("shadow_ddl")?,
        source_fingerprint: row.try_get("source_fingerprint")?,
        shadow_fingerprint: row.try_get("shadow_fingerprint")?,
        target_fingerprint: row.try_get("target_fingerprint")?,
        depends_on: depends_on
            .split('\n')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        statement_count: row.try_get("statement_count")?,
    })
}

pub(super) async fn insert_statements(
    connection: &mut AnyConnection,
    analysis_id: &str,
    statements: &[StatementRow],
) -> Result<(), sqlx::Error> {
    for statement in statements {
        sqlx::query(
            "INSERT INTO analysis_statements (analysis_id, script_index, row_no, \
             statement_index, sql_text, expected_fingerprint_after) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(analysis_id)
        .bind(statement.script_index)
        .bind(statement.row_no)
        .bind(statement.statement_index)
        .bind(&statement.sql)
        .bind(&statement.expected_fingerprint_after)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Removes every row and statement of an analysis (retry, expiry).
pub(super) async fn delete_rows(
    tx: &mut Transaction<'static, Any>,
    analysis_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM analysis_statements WHERE analysis_id = $1")
        .bind(analysis_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM analysis_tables WHERE analysis_id = $1")
        .bind(analysis_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

const SCRIPT_SQL: &str = "SELECT s.script_index, t.source_table, t.shadow_table, s.sql_text \
    FROM analysis_statements s JOIN analysis_tables t \
    ON t.analysis_id = s.analysis_id AND t.row_no = s.row_no \
    WHERE s.analysis_id = $1 AND t.skipped = 0 AND s.script_index >= $2 \
    ORDER BY s.script_index LIMIT $3";

/// The preview's size, read in script order without holding it whole, and its
/// [`PlanDigest`](shadowsync_common::plan_digest::PlanDigest) (execution terms absent), which
/// is both its hash and its etag: any change to what would run changes the etag, and the same
/// plan (a skip undone) has the same etag again.
pub(super) async fn compute_preview(
    tx: &mut Transaction<'static, Any>,
    analysis_id: &str,
) -> Result<PreviewSummary, sqlx::Error> {
    let mut count = 0i64;
    let mut size = 0i64;
    {
        let mut rows = sqlx::query(SCRIPT_SQL)
            .bind(analysis_id)
            .bind(0i64)
            .bind(i64::MAX)
            .fetch(&mut **tx);
        while let Some(row) = rows.try_next().await? {
            let sql: String = row.try_get(3)?;
            count += 1;
            size += i64::try_from(sql.len()).unwrap_or(i64::MAX) + 2;
        }
    }
    let digest = super::plan_digests::analysis_preview_digest(tx, analysis_id).await?;
    Ok(PreviewSummary {
        etag: digest.clone(),
        statement_count: count,
        size_bytes: size,
        sha256: digest,
    })
}

#[async_trait]
impl AnalysisRowRepository for SqlStore {
    async fn write_rows(
        &self,
        analysis_id: &str,
        owner: &str,
        tables: &[ReplannedTable],
        progress: Progress,
        now: Micros,
        lease_until: Micros,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        // The fence first: a runner that lost its lease writes nothing.
        let fenced = sqlx::query(
            "UPDATE analyses SET tables_done = $3, tables_total = $4, progress_percent = $5, \
             lease_until = $6, updated_at = $7 \
             WHERE id = $1 AND lease_owner = $2 AND status = $8",
        )
        .bind(analysis_id)
        .bind(owner)
        .bind(progress.tables_done)
        .bind(progress.tables_total)
        .bind(progress.percent)
        .bind(lease_until)
        .bind(now)
        .bind(status::RUNNING)
        .execute(&mut *tx)
        .await?;
        if fenced.rows_affected() != 1 {
            return Ok(false);
        }
        for table in tables {
            let row = &table.row;
            sqlx::query(
                "INSERT INTO analysis_tables (analysis_id, row_no, ordinal, source_table, \
                 shadow_table, result, original_result, skipped, replanned, reason, source_ddl, \
                 shadow_ddl, source_fingerprint, shadow_fingerprint, target_fingerprint, \
                 depends_on, statement_count) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            )
            .bind(analysis_id)
            .bind(row.row_no)
            .bind(row.ordinal)
            .bind(&row.source_table)
            .bind(&row.shadow_table)
            .bind(row.result)
            .bind(row.original_result)
            .bind(skip_code::of(row))
            .bind(i64::from(row.replanned))
            .bind(&row.reason)
            .bind(&row.source_ddl)
            .bind(&row.shadow_ddl)
            .bind(&row.source_fingerprint)
            .bind(&row.shadow_fingerprint)
            .bind(&row.target_fingerprint)
            .bind(row.depends_on.join("\n"))
            .bind(row.statement_count)
            .execute(&mut *tx)
            .await?;
            insert_statements(&mut tx, analysis_id, &table.statements).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn row_counts(&self, analysis_id: &str) -> Result<RowCounts, sqlx::Error> {
        let sql = format!(
            "SELECT COUNT(*), \
             COALESCE(SUM(CASE WHEN {SYNCED} THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN result = {c} THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN result = {u} THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN result = {n} THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN result IN ({m}, {x}) THEN 1 ELSE 0 END), 0) \
             FROM analysis_tables WHERE analysis_id = $1",
            c = result::CREATE,
            u = result::UPDATE,
            n = result::NO_ACTION,
            m = result::SOURCE_MISSING,
            x = result::UNSUPPORTED,
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(analysis_id)
            .fetch_one(self.db.pool())
            .await?;
        Ok(RowCounts {
            total: row.try_get(0)?,
            synced: row.try_get(1)?,
            create: row.try_get(2)?,
            update: row.try_get(3)?,
            no_action: row.try_get(4)?,
            unsyncable: row.try_get(5)?,
        })
    }

    async fn list_rows(
        &self,
        analysis_id: &str,
        filter: &RowFilter,
    ) -> Result<(Vec<TableRow>, i64), sqlx::Error> {
        let tab = match filter.tab {
            Tab::Both => String::new(),
            Tab::Synced => format!(" AND {SYNCED}"),
            Tab::Unsynced => format!(" AND NOT {SYNCED}"),
        };
        let clause = format!(
            "analysis_id = $1{tab} AND (LOWER(source_table) LIKE $2 ESCAPE '\\' \
             OR LOWER(shadow_table) LIKE $2 ESCAPE '\\')"
        );
        let pattern = like_pattern(&filter.table_contains);
        let page_sql = format!(
            "SELECT {ROW_COLUMNS} FROM analysis_tables WHERE {clause} \
             ORDER BY ordinal, row_no LIMIT $3 OFFSET $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(page_sql))
            .bind(analysis_id)
            .bind(&pattern)
            .bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(self.db.pool())
            .await?;
        let count_sql = format!("SELECT COUNT(*) FROM analysis_tables WHERE {clause}");
        let total: i64 = sqlx::query(sqlx::AssertSqlSafe(count_sql))
            .bind(analysis_id)
            .bind(&pattern)
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)?;
        let rows = rows.iter().map(decode_row).collect::<Result<Vec<_>, _>>()?;
        Ok((rows, total))
    }

    async fn get_row(
        &self,
        analysis_id: &str,
        row_no: Option<i64>,
        source_table: &str,
    ) -> Result<Option<TableRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM analysis_tables WHERE analysis_id = $1 \
             AND (row_no = $2 OR ($2 < 0 AND source_table = $3))"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(analysis_id)
            .bind(row_no.unwrap_or(-1))
            .bind(source_table)
            .fetch_optional(self.db.pool())
            .await?
            .as_ref()
            .map(decode_row)
            .transpose()
    }

    async fn row_statements(
        &self,
        analysis_id: &str,
        row_no: i64,
    ) -> Result<Vec<StatementRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT script_index, row_no, statement_index, sql_text, expected_fingerprint_after \
             FROM analysis_statements WHERE analysis_id = $1 AND row_no = $2 \
             ORDER BY statement_index",
        )
        .bind(analysis_id)
        .bind(row_no)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StatementRow {
                    script_index: row.try_get(0)?,
                    row_no: row.try_get(1)?,
                    statement_index: row.try_get(2)?,
                    sql: row.try_get(3)?,
                    expected_fingerprint_after: row.try_get(4)?,
                })
            })
            .collect()
    }

    async fn script_page(
        &self,
        analysis_id: &str,
        from: i64,
        limit: i64,
    ) -> Result<Vec<ScriptLine>, sqlx::Error> {
        let rows = sqlx::query(SCRIPT_SQL)
            .bind(analysis_id)
            .bind(from)
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ScriptLine {
                    script_index: row.try_get(0)?,
                    source_table: row.try_get(1)?,
                    shadow_table: row.try_get(2)?,
                    sql: row.try_get(3)?,
                })
            })
            .collect()
    }

    async fn skipped_tables(&self, analysis_id: &str) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT source_table FROM analysis_tables WHERE analysis_id = $1 AND skipped = 1 \
             ORDER BY ordinal",
        )
        .bind(analysis_id)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(|row| row.try_get(0)).collect()
    }

    async fn begin_replan(
        &self,
        analysis_id: &str,
        row_nos: &[i64],
        skipped: bool,
    ) -> Result<Box<dyn ReplanWriter>, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        for row_no in row_nos {
            sqlx::query(
                "UPDATE analysis_tables SET skipped = $3, replanned = 0 \
                 WHERE analysis_id = $1 AND row_no = $2",
            )
            .bind(analysis_id)
            .bind(row_no)
            .bind(i64::from(skipped))
            .execute(&mut *tx)
            .await?;
        }
        Ok(Box::new(super::replan::SqlReplan {
            tx,
            analysis_id: analysis_id.to_owned(),
            named: row_nos.to_vec(),
        }))
    }
}
