//! Connections repository.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::tasks::unfinished_condition;
use super::{ConnectionFilter, ConnectionRecord, SqlStore, is_unique_violation, like_pattern};

/// Why a connection write failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionWriteError {
    #[error("a connection with this name already exists")]
    NameTaken,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// What [`ConnectionRepository::delete_connection`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    /// Kept: this many unfinished tasks use the connection.
    InUse(i64),
}

/// Stored connections.
#[async_trait]
pub trait ConnectionRepository: Send + Sync {
    /// Fails with [`ConnectionWriteError::NameTaken`] when the name is used.
    async fn insert_connection(
        &self,
        record: &ConnectionRecord,
    ) -> Result<(), ConnectionWriteError>;
    async fn get_connection(&self, id: &str) -> Result<Option<ConnectionRecord>, sqlx::Error>;
    /// One page sorted by name, and the number matching the filter.
    async fn list_connections(
        &self,
        filter: &ConnectionFilter,
    ) -> Result<(Vec<ConnectionRecord>, i64), sqlx::Error>;
    /// Replaces every field but id, creator and creation time. False when the id is unknown.
    async fn update_connection(
        &self,
        record: &ConnectionRecord,
    ) -> Result<bool, ConnectionWriteError>;
    /// Deletes the connection unless unfinished tasks use it. The check and the delete run in
    /// one transaction holding the connection's row lock; a task insert takes the same lock
    /// first (see migration `0002_tasks`), so no task slips in between.
    async fn delete_connection(&self, id: &str) -> Result<DeleteOutcome, sqlx::Error>;
}

const COLUMNS: &str = "id, name, dialect, host, port, username, password_ciphertext, environment, \
    options, creator, created_at, updated_at";

fn decode(row: &AnyRow) -> Result<ConnectionRecord, sqlx::Error> {
    let options: String = row.try_get("options")?;
    Ok(ConnectionRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        dialect: i32::try_from(row.try_get::<i64, _>("dialect")?).unwrap_or_default(),
        host: row.try_get("host")?,
        port: u32::try_from(row.try_get::<i64, _>("port")?).unwrap_or_default(),
        username: row.try_get("username")?,
        password_ciphertext: row.try_get("password_ciphertext")?,
        environment: row.try_get("environment")?,
        options: serde_json::from_str(&options).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        creator: row.try_get("creator")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn options_json(record: &ConnectionRecord) -> Result<String, sqlx::Error> {
    serde_json::to_string(&record.options).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

fn write_error(error: sqlx::Error) -> ConnectionWriteError {
    if is_unique_violation(&error) {
        ConnectionWriteError::NameTaken
    } else {
        ConnectionWriteError::Store(error)
    }
}

#[async_trait]
impl ConnectionRepository for SqlStore {
    async fn insert_connection(
        &self,
        record: &ConnectionRecord,
    ) -> Result<(), ConnectionWriteError> {
        sqlx::query(
            "INSERT INTO connections (id, name, dialect, host, port, username, \
             password_ciphertext, environment, options, creator, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&record.id)
        .bind(&record.name)
        .bind(i64::from(record.dialect))
        .bind(&record.host)
        .bind(i64::from(record.port))
        .bind(&record.username)
        .bind(record.password_ciphertext.clone())
        .bind(&record.environment)
        .bind(options_json(record)?)
        .bind(&record.creator)
        .bind(record.created_at)
        .bind(record.updated_at)
        .execute(self.db.pool())
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn get_connection(&self, id: &str) -> Result<Option<ConnectionRecord>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM connections WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    async fn list_connections(
        &self,
        filter: &ConnectionFilter,
    ) -> Result<(Vec<ConnectionRecord>, i64), sqlx::Error> {
        // The environment list is small (labels), so it is bound as individual parameters.
        let mut conditions = vec!["LOWER(name) LIKE $1 ESCAPE '\\'".to_string()];
        if !filter.environments.is_empty() {
            let placeholders: Vec<String> = (0..filter.environments.len())
                .map(|i| format!("${}", i + 2))
                .collect();
            conditions.push(format!("environment IN ({})", placeholders.join(", ")));
        }
        let clause = conditions.join(" AND ");
        let next = filter.environments.len() + 2;
        let page_sql = format!(
            "SELECT {COLUMNS} FROM connections WHERE {clause} ORDER BY name, id \
             LIMIT ${next} OFFSET ${}",
            next + 1
        );
        let count_sql = format!("SELECT COUNT(*) FROM connections WHERE {clause}");
        let pattern = like_pattern(&filter.name_contains);
        let mut page = sqlx::query(sqlx::AssertSqlSafe(page_sql)).bind(pattern.clone());
        let mut count = sqlx::query(sqlx::AssertSqlSafe(count_sql)).bind(pattern);
        for environment in &filter.environments {
            page = page.bind(environment.clone());
            count = count.bind(environment.clone());
        }
        let rows = page
            .bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(self.db.pool())
            .await?;
        let total: i64 = count.fetch_one(self.db.pool()).await?.try_get(0)?;
        let records = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        Ok((records, total))
    }

    async fn update_connection(
        &self,
        record: &ConnectionRecord,
    ) -> Result<bool, ConnectionWriteError> {
        let done = sqlx::query(
            "UPDATE connections SET name = $2, dialect = $3, host = $4, port = $5, \
             username = $6, password_ciphertext = $7, environment = $8, options = $9, \
             updated_at = $10 WHERE id = $1",
        )
        .bind(&record.id)
        .bind(&record.name)
        .bind(i64::from(record.dialect))
        .bind(&record.host)
        .bind(i64::from(record.port))
        .bind(&record.username)
        .bind(record.password_ciphertext.clone())
        .bind(&record.environment)
        .bind(options_json(record)?)
        .bind(record.updated_at)
        .execute(self.db.pool())
        .await
        .map_err(write_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_connection(&self, id: &str) -> Result<DeleteOutcome, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        // A no-op write: the row lock (PostgreSQL) or the write lock (SQLite) that task inserts
        // also take, held until commit or rollback.
        let locked = sqlx::query("UPDATE connections SET updated_at = updated_at WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() == 0 {
            return Ok(DeleteOutcome::NotFound);
        }
        let count_sql = format!(
            "SELECT COUNT(*) FROM tasks WHERE connection_id = $1 AND {}",
            unfinished_condition()
        );
        let unfinished: i64 = sqlx::query(sqlx::AssertSqlSafe(count_sql))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if unfinished > 0 {
            return Ok(DeleteOutcome::InUse(unfinished));
        }
        sqlx::query("DELETE FROM connections WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DeleteOutcome::Deleted)
    }
}
