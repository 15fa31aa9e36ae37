//! Analysis headers: creation, the runner's lease (every runner write is fenced by it),
//! completion, failure, retry, lost-runner recovery and expiry.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use shadowsync_common::clock::Micros;

use super::{AnalysisRecord, FailureRecord, PreviewSummary, SqlStore, status};

/// Progress as the runner reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub tables_done: i64,
    pub tables_total: i64,
    pub percent: i64,
}

/// Analysis headers and the runner lease.
#[async_trait]
pub trait AnalysisRepository: Send + Sync {
    async fn insert_analysis(&self, record: &AnalysisRecord) -> Result<(), sqlx::Error>;
    async fn get_analysis(&self, id: &str) -> Result<Option<AnalysisRecord>, sqlx::Error>;
    /// Takes the runner lease of a PENDING analysis (RUNNING, attempt + 1). False when it is not
    /// PENDING (another runner has it, or it finished).
    async fn claim_analysis(
        &self,
        id: &str,
        owner: &str,
        now: Micros,
        lease_until: Micros,
    ) -> Result<bool, sqlx::Error>;
    /// Records progress and renews the lease. False when `owner` no longer holds it.
    async fn record_progress(
        &self,
        id: &str,
        owner: &str,
        progress: Progress,
        now: Micros,
        lease_until: Micros,
    ) -> Result<bool, sqlx::Error>;
    /// RUNNING → SUCCEEDED with the preview summary, releasing the lease. False when `owner`
    /// no longer holds it.
    async fn complete_analysis(
        &self,
        id: &str,
        owner: &str,
        server_version: &str,
        now: Micros,
    ) -> Result<bool, sqlx::Error>;
    /// PENDING/RUNNING → FAILED. With `owner`, only while it holds the lease.
    async fn fail_analysis(
        &self,
        id: &str,
        owner: Option<&str>,
        failure: &FailureRecord,
        now: Micros,
    ) -> Result<bool, sqlx::Error>;
    /// FAILED → PENDING, its partial rows removed. False unless FAILED.
    async fn retry_analysis(&self, id: &str, now: Micros) -> Result<bool, sqlx::Error>;
    /// RUNNING analyses whose lease lapsed before `now` become FAILED with `failure` (the
    /// runner died); returns their ids. A runner renewing at the same moment either renews
    /// first (and is left alone) or finds its lease gone.
    async fn fail_lapsed_analyses(
        &self,
        now: Micros,
        failure: &FailureRecord,
    ) -> Result<Vec<String>, sqlx::Error>;
    /// PENDING analyses created before `before` that no runner picked up.
    async fn stranded_analyses(&self, before: Micros) -> Result<Vec<String>, sqlx::Error>;
    /// Unsubmitted analyses past their expiry become EXPIRED and lose their rows. Returns how
    /// many expired.
    async fn expire_analyses(&self, now: Micros) -> Result<u64, sqlx::Error>;
}

const COLUMNS: &str = "id, connection_id, connection_name, database_name, sync_range, \
    requested_tables, naming_mode, affix, status, tables_done, tables_total, progress_percent, \
    failure_reason, failure_message, failure_retryable, server_version, creator, created_at, \
    updated_at, expire_at, task_id, preview_etag, preview_statement_count, preview_size_bytes, \
    preview_sha256, previous_analysis_id, attempt, initial_skips";

fn decode(row: &AnyRow) -> Result<AnalysisRecord, sqlx::Error> {
    let requested: String = row.try_get("requested_tables")?;
    let initial_skips: String = row.try_get("initial_skips")?;
    let failure_reason: i64 = row.try_get("failure_reason")?;
    Ok(AnalysisRecord {
        id: row.try_get("id")?,
        connection_id: row.try_get("connection_id")?,
        connection_name: row.try_get("connection_name")?,
        database: row.try_get("database_name")?,
        range: row.try_get("sync_range")?,
        requested_tables: serde_json::from_str(&requested)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        naming_mode: row.try_get("naming_mode")?,
        affix: row.try_get("affix")?,
        status: row.try_get("status")?,
        tables_done: row.try_get("tables_done")?,
        tables_total: row.try_get("tables_total")?,
        progress_percent: row.try_get("progress_percent")?,
        failure: (failure_reason != 0)
            .then(|| -> Result<FailureRecord, sqlx::Error> {
                Ok(FailureRecord {
                    reason: failure_reason,
                    message: row.try_get("failure_message")?,
                    retryable: row.try_get::<i64, _>("failure_retryable")? != 0,
                })
            })
            .transpose()?,
        server_version: row.try_get("server_version")?,
        creator: row.try_get("creator")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        expire_at: row.try_get("expire_at")?,
        task_id: row.try_get("task_id")?,
        preview: PreviewSummary {
            etag: row.try_get("preview_etag")?,
            statement_count: row.try_get("preview_statement_count")?,
            size_bytes: row.try_get("preview_size_bytes")?,
            sha256: row.try_get("preview_sha256")?,
        },
        previous_analysis_id: row.try_get("previous_analysis_id")?,
        attempt: row.try_get("attempt")?,
        initial_skips: serde_json::from_str(&initial_skips)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    })
}

#[async_trait]
impl AnalysisRepository for SqlStore {
    async fn insert_analysis(&self, record: &AnalysisRecord) -> Result<(), sqlx::Error> {
        let requested = serde_json::to_string(&record.requested_tables)
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let initial_skips = serde_json::to_string(&record.initial_skips)
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query(
            "INSERT INTO analyses (id, connection_id, connection_name, database_name, \
             sync_range, requested_tables, requested_table_count, naming_mode, affix, status, \
             creator, created_at, updated_at, expire_at, previous_analysis_id, initial_skips) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&record.id)
        .bind(&record.connection_id)
        .bind(&record.connection_name)
        .bind(&record.database)
        .bind(record.range)
        .bind(requested)
        .bind(i64::try_from(record.requested_tables.len()).unwrap_or(i64::MAX))
        .bind(record.naming_mode)
        .bind(&record.affix)
        .bind(record.status)
        .bind(&record.creator)
        .bind(record.created_at)
        .bind(record.updated_at)
        .bind(record.expire_at)
        .bind(&record.previous_analysis_id)
        .bind(initial_skips)
        .execute(self.db.pool())
        .await
        .map(drop)
    }

    async fn get_analysis(&self, id: &str) -> Result<Option<AnalysisRecord>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM analyses WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    async fn claim_analysis(
        &self,
        id: &str,
        owner: &str,
        now: Micros,
        lease_until: Micros,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE analyses SET status = $2, lease_owner = $3, lease_until = $4, \
             attempt = attempt + 1, updated_at = $5 WHERE id = $1 AND status = $6",
        )
        .bind(id)
        .bind(status::RUNNING)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(status::PENDING)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_progress(
        &self,
        id: &str,
        owner: &str,
        progress: Progress,
        now: Micros,
        lease_until: Micros,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE analyses SET tables_done = $3, tables_total = $4, progress_percent = $5, \
             lease_until = $6, updated_at = $7 \
             WHERE id = $1 AND lease_owner = $2 AND status = $8",
        )
        .bind(id)
        .bind(owner)
        .bind(progress.tables_done)
        .bind(progress.tables_total)
        .bind(progress.percent)
        .bind(lease_until)
        .bind(now)
        .bind(status::RUNNING)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete_analysis(
        &self,
        id: &str,
        owner: &str,
        server_version: &str,
        now: Micros,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let preview = super::rows::compute_preview(&mut tx, id).await?;
        let done = sqlx::query(
            "UPDATE analyses SET status = $3, progress_percent = 100, tables_done = tables_total, \
             server_version = $4, preview_etag = $5, preview_statement_count = $6, \
             preview_size_bytes = $7, preview_sha256 = $8, lease_owner = NULL, \
             lease_until = NULL, updated_at = $9 \
             WHERE id = $1 AND lease_owner = $2 AND status = $10",
        )
        .bind(id)
        .bind(owner)
        .bind(status::SUCCEEDED)
        .bind(server_version)
        .bind(&preview.etag)
        .bind(preview.statement_count)
        .bind(preview.size_bytes)
        .bind(&preview.sha256)
        .bind(now)
        .bind(status::RUNNING)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn fail_analysis(
        &self,
        id: &str,
        owner: Option<&str>,
        failure: &FailureRecord,
        now: Micros,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE analyses SET status = $2, failure_reason = $3, failure_message = $4, \
             failure_retryable = $5, lease_owner = NULL, lease_until = NULL, updated_at = $6 \
             WHERE id = $1 AND status IN ($7, $8) AND ($9 = '' OR lease_owner = $9)",
        )
        .bind(id)
        .bind(status::FAILED)
        .bind(failure.reason)
        .bind(&failure.message)
        .bind(i64::from(failure.retryable))
        .bind(now)
        .bind(status::PENDING)
        .bind(status::RUNNING)
        .bind(owner.unwrap_or_default())
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn retry_analysis(&self, id: &str, now: Micros) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let done = sqlx::query(
            "UPDATE analyses SET status = $2, failure_reason = 0, failure_message = '', \
             failure_retryable = 0, tables_done = 0, tables_total = 0, progress_percent = 0, \
             updated_at = $3 WHERE id = $1 AND status = $4",
        )
        .bind(id)
        .bind(status::PENDING)
        .bind(now)
        .bind(status::FAILED)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        super::rows::delete_rows(&mut tx, id).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn fail_lapsed_analyses(
        &self,
        now: Micros,
        failure: &FailureRecord,
    ) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query(
            "UPDATE analyses SET status = $1, failure_reason = $2, failure_message = $3, \
             failure_retryable = $4, lease_owner = NULL, lease_until = NULL, updated_at = $5 \
             WHERE status = $6 AND lease_until < $5 RETURNING id",
        )
        .bind(status::FAILED)
        .bind(failure.reason)
        .bind(&failure.message)
        .bind(i64::from(failure.retryable))
        .bind(now)
        .bind(status::RUNNING)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(|row| row.try_get(0)).collect()
    }

    async fn stranded_analyses(&self, before: Micros) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query("SELECT id FROM analyses WHERE status = $1 AND updated_at < $2")
            .bind(status::PENDING)
            .bind(before)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(|row| row.try_get(0)).collect()
    }

    async fn expire_analyses(&self, now: Micros) -> Result<u64, sqlx::Error> {
        let rows =
            sqlx::query("SELECT id FROM analyses WHERE expire_at <= $1 AND status NOT IN ($2, $3)")
                .bind(now)
                .bind(status::SUBMITTED)
                .bind(status::EXPIRED)
                .fetch_all(self.db.pool())
                .await?;
        let mut expired = 0;
        for row in rows {
            let id: String = row.try_get(0)?;
            let mut tx = self.db.begin().await?;
            let done = sqlx::query(
                "UPDATE analyses SET status = $2, lease_owner = NULL, lease_until = NULL, \
                 updated_at = $3 WHERE id = $1 AND status NOT IN ($4, $2)",
            )
            .bind(&id)
            .bind(status::EXPIRED)
            .bind(now)
            .bind(status::SUBMITTED)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                super::rows::delete_rows(&mut tx, &id).await?;
                expired += 1;
            }
            tx.commit().await?;
        }
        Ok(expired)
    }
}
