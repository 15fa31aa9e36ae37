//! The [`PlanDigest`] of what the store holds: an analysis's previewed plan (its etag and
//! preview hash, execution terms absent) and a task's frozen plan with its strategy and schedule
//! (the hash its approval binds, recomputed at every claim). Each reads exactly the tables and
//! statements that are served, in the order they are served, one table at a time.

use futures::TryStreamExt as _;
use shadowsync_common::plan_digest::{DigestStatement, DigestTable, ExecutionTerms, PlanDigest};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{SqlStore, result};

/// The synced tables of an analysis (CREATE/UPDATE, not skipped) in plan order with their
/// statements, one row per statement (or one row without a statement).
const ANALYSIS_PLAN_SQL: &str = "SELECT t.ordinal, t.source_table, t.shadow_table, \
    t.source_fingerprint, t.shadow_fingerprint, t.target_fingerprint, t.depends_on, \
    s.script_index, s.sql_text, s.expected_fingerprint_after, t.row_no \
    FROM analysis_tables t LEFT JOIN analysis_statements s \
    ON s.analysis_id = t.analysis_id AND s.row_no = t.row_no \
    WHERE t.analysis_id = $1 AND t.result IN ($2, $3) AND t.skipped = 0 \
    ORDER BY t.ordinal, t.row_no, s.statement_index, s.script_index";

/// The synced tables of a task in the order `plan_tables` serves them, with their statements in
/// the order it serves those.
const TASK_PLAN_SQL: &str = "SELECT t.ordinal, t.source_table, t.shadow_table, \
    t.source_fingerprint, t.shadow_fingerprint, t.target_fingerprint, t.depends_on, \
    s.script_index, s.sql_text, s.expected_fingerprint_after \
    FROM task_tables t LEFT JOIN task_statements s \
    ON s.task_id = t.task_id AND s.ordinal = t.ordinal \
    WHERE t.task_id = $1 AND t.synced = 1 \
    ORDER BY t.ordinal, s.statement_index, s.script_index";

/// One table's columns and its statements' columns, collected from the joined rows.
#[derive(Default)]
struct TableBuffer {
    /// (ordinal, row key) of the table being collected.
    key: Option<(i64, i64)>,
    source: String,
    shadow: String,
    fingerprints: [String; 3],
    depends_on: Vec<String>,
    statements: Vec<(i64, String, String)>,
}

impl TableBuffer {
    fn flush(&mut self, digest: &mut PlanDigest) {
        if self.key.take().is_none() {
            return;
        }
        let statements: Vec<DigestStatement<'_>> = self
            .statements
            .iter()
            .map(|(script_index, sql, after)| DigestStatement {
                script_index: *script_index,
                sql,
                expected_fingerprint_after: after,
            })
            .collect();
        digest.table(
            &DigestTable {
                source_table: &self.source,
                shadow_table: &self.shadow,
                source_fingerprint: &self.fingerprints[0],
                shadow_fingerprint: &self.fingerprints[1],
                target_fingerprint: &self.fingerprints[2],
                depends_on: &self.depends_on,
            },
            &statements,
        );
        self.statements.clear();
    }

    /// Adds one joined row; `key` tells rows of the same table apart.
    fn add(
        &mut self,
        digest: &mut PlanDigest,
        key: (i64, i64),
        row: &AnyRow,
    ) -> Result<(), sqlx::Error> {
        if self.key != Some(key) {
            self.flush(digest);
            self.key = Some(key);
            self.source = row.try_get(1)?;
            self.shadow = row.try_get(2)?;
            self.fingerprints = [row.try_get(3)?, row.try_get(4)?, row.try_get(5)?];
            // Decoded as `task_reads::decode_table` decodes it for the executor.
            let depends_on: String = row.try_get(6)?;
            self.depends_on = depends_on
                .split('\n')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(script_index) = row.try_get::<Option<i64>, _>(7)? {
            self.statements
                .push((script_index, row.try_get(8)?, row.try_get(9)?));
        }
        Ok(())
    }
}

/// The preview digest of analysis `analysis_id` (its connection and database, the synced
/// tables, no execution terms): the preview's etag and hash.
pub(super) async fn analysis_preview_digest(
    connection: &mut AnyConnection,
    analysis_id: &str,
) -> Result<String, sqlx::Error> {
    let header = sqlx::query("SELECT connection_id, database_name FROM analyses WHERE id = $1")
        .bind(analysis_id)
        .fetch_one(&mut *connection)
        .await?;
    let connection_id: String = header.try_get(0)?;
    let database: String = header.try_get(1)?;
    let mut digest = PlanDigest::new(&connection_id, &database);
    let mut buffer = TableBuffer::default();
    let mut rows = sqlx::query(ANALYSIS_PLAN_SQL)
        .bind(analysis_id)
        .bind(result::CREATE)
        .bind(result::UPDATE)
        .fetch(&mut *connection);
    while let Some(row) = rows.try_next().await? {
        let key = (row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(10)?);
        buffer.add(&mut digest, key, &row)?;
    }
    buffer.flush(&mut digest);
    Ok(digest.finish(None))
}

/// A task's plan as stored now, hashed up to its execution terms.
pub struct TaskPlanDigest {
    /// The encoding version the task's approved hash was made under (1: the old
    /// statements-only hash, which is never accepted).
    pub version: i64,
    plan: PlanDigest,
    terms: ExecutionTerms,
}

impl TaskPlanDigest {
    /// The digest of the plan alone, as its analysis preview was hashed.
    pub fn previewed(&self) -> String {
        self.plan.clone().finish(None)
    }

    /// The digest with the task's strategy and schedule: what its approval must have bound.
    pub fn approved(self) -> String {
        self.plan.finish(Some(self.terms))
    }
}

/// Task `task_id` as stored now: connection, database, the synced tables and statements it
/// would serve an executor, its error strategy and schedule. `None` when the task does not
/// exist.
pub(super) async fn task_plan(
    connection: &mut AnyConnection,
    task_id: i64,
) -> Result<Option<TaskPlanDigest>, sqlx::Error> {
    let Some(header) = sqlx::query(
        "SELECT connection_id, database_name, error_strategy, scheduled_at, plan_digest_version \
         FROM tasks WHERE id = $1",
    )
    .bind(task_id)
    .fetch_optional(&mut *connection)
    .await?
    else {
        return Ok(None);
    };
    let connection_id: String = header.try_get(0)?;
    let database: String = header.try_get(1)?;
    let error_strategy: i64 = header.try_get(2)?;
    let terms = ExecutionTerms {
        // A number out of range (only a tampered row holds one) is hashed as i32::MIN, which
        // no approved plan has.
        error_strategy: i32::try_from(error_strategy).unwrap_or(i32::MIN),
        scheduled_at: header.try_get(3)?,
    };
    let version: i64 = header.try_get(4)?;
    let mut plan = PlanDigest::new(&connection_id, &database);
    let mut buffer = TableBuffer::default();
    let mut rows = sqlx::query(TASK_PLAN_SQL)
        .bind(task_id)
        .fetch(&mut *connection);
    while let Some(row) = rows.try_next().await? {
        let key = (row.try_get::<i64, _>(0)?, 0);
        buffer.add(&mut plan, key, &row)?;
    }
    buffer.flush(&mut plan);
    Ok(Some(TaskPlanDigest {
        version,
        plan,
        terms,
    }))
}

impl SqlStore {
    /// Task `task_id`'s plan as stored now (see [`TaskPlanDigest`]): what a claim checks
    /// against the approved hash, so a plan changed in the store after approval never reaches
    /// an executor.
    pub async fn task_plan_digest(
        &self,
        task_id: i64,
    ) -> Result<Option<TaskPlanDigest>, sqlx::Error> {
        let mut connection = self.database().pool().acquire().await?;
        task_plan(&mut connection, task_id).await
    }
}
