//! Idempotency keys: a mutating call's `request_id`, scoped to (caller, rpc),
//! remembered with a hash of the parameters and the resource it created, for 24 hours.

use async_trait::async_trait;
use sqlx::Row;

use shadowsync_common::clock::Micros;

use super::{SqlStore, is_unique_violation};

/// What a key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remembered {
    /// The key is new and now reserved for `resource_id`.
    Reserved,
    /// The same call was made before and created this resource.
    Same(String),
    /// The key was used with other parameters.
    Different,
}

/// Stored idempotency keys.
#[async_trait]
pub trait RequestIdRepository: Send + Sync {
    /// Reserves the key for `resource_id`, or says what it was used for.
    async fn remember(
        &self,
        key: &RequestKey<'_>,
        resource_id: &str,
        now: Micros,
    ) -> Result<Remembered, sqlx::Error>;
    /// Releases a reservation whose call failed, so a retry can succeed.
    async fn forget(&self, key: &RequestKey<'_>) -> Result<(), sqlx::Error>;
    /// Removes keys created before `before`. Returns how many.
    async fn forget_before(&self, before: Micros) -> Result<u64, sqlx::Error>;
}

/// One call's key.
#[derive(Debug, Clone, Copy)]
pub struct RequestKey<'a> {
    pub caller: &'a str,
    pub rpc: &'a str,
    pub request_id: &'a str,
    /// Hex SHA-256 of the call's parameters (without the request id).
    pub parameters_sha256: &'a str,
}

#[async_trait]
impl RequestIdRepository for SqlStore {
    async fn remember(
        &self,
        key: &RequestKey<'_>,
        resource_id: &str,
        now: Micros,
    ) -> Result<Remembered, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO request_ids (caller, rpc, request_id, parameters_sha256, resource_id, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key.caller)
        .bind(key.rpc)
        .bind(key.request_id)
        .bind(key.parameters_sha256)
        .bind(resource_id)
        .bind(now)
        .execute(self.db.pool())
        .await;
        match inserted {
            Ok(_) => return Ok(Remembered::Reserved),
            Err(error) if is_unique_violation(&error) => {}
            Err(error) => return Err(error),
        }
        let row = sqlx::query(
            "SELECT parameters_sha256, resource_id FROM request_ids \
             WHERE caller = $1 AND rpc = $2 AND request_id = $3",
        )
        .bind(key.caller)
        .bind(key.rpc)
        .bind(key.request_id)
        .fetch_one(self.db.pool())
        .await?;
        let hash: String = row.try_get(0)?;
        Ok(if hash == key.parameters_sha256 {
            Remembered::Same(row.try_get(1)?)
        } else {
            Remembered::Different
        })
    }

    async fn forget(&self, key: &RequestKey<'_>) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM request_ids WHERE caller = $1 AND rpc = $2 AND request_id = $3")
            .bind(key.caller)
            .bind(key.rpc)
            .bind(key.request_id)
            .execute(self.db.pool())
            .await
            .map(drop)
    }

    async fn forget_before(&self, before: Micros) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM request_ids WHERE created_at < $1")
            .bind(before)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
