//! Permission grants, the applications behind `permission_apply` requests, and the idempotency
//! keys of mutating RPCs.

use shadowsync_common::clock::Micros;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{QueryBuilder, Store, Tx};
use crate::error::{ApprovalError, Result, is_unique_violation};
use crate::model::{Permission, PermissionApplication};

const COLUMNS: &str = "id, grantee, task_type, connection_id, database_name, reason, granted_by, \
    approval_id, grant_time, expire_time, revoke_time, revoked_by";

/// Filters of `ListPermissions`.
#[derive(Debug, Clone, Default)]
pub struct PermissionFilter {
    pub grantee: Option<String>,
    pub connection_id: Option<String>,
    pub task_type: Option<String>,
    /// Only grants active at this time (`None`: every grant).
    pub active_at: Option<Micros>,
    /// Grants after this id (ids are UUIDv7, so they sort by grant time).
    pub after: Option<String>,
    pub limit: i64,
}

fn permission_from_row(row: &AnyRow) -> Result<Permission> {
    Ok(Permission {
        id: row.try_get("id")?,
        grantee: row.try_get("grantee")?,
        task_type: row.try_get("task_type")?,
        connection_id: row.try_get("connection_id")?,
        database: row.try_get("database_name")?,
        reason: row.try_get("reason")?,
        granted_by: row.try_get("granted_by")?,
        approval_id: row.try_get("approval_id")?,
        grant_time: row.try_get("grant_time")?,
        expire_time: row.try_get("expire_time")?,
        revoke_time: row.try_get("revoke_time")?,
        revoked_by: row.try_get("revoked_by")?,
    })
}

/// Records a grant. `request_key` makes a direct grant idempotent.
///
/// Fails with `AlreadyExists` when the approval already granted, or the key was used.
pub async fn insert_permission(
    tx: &mut Tx,
    p: &Permission,
    request_key: Option<&str>,
) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO permissions ({COLUMNS}, revoke_reason, request_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '', $13)"
    )))
    .bind(&p.id)
    .bind(&p.grantee)
    .bind(&p.task_type)
    .bind(&p.connection_id)
    .bind(&p.database)
    .bind(&p.reason)
    .bind(&p.granted_by)
    .bind(p.approval_id.clone())
    .bind(p.grant_time)
    .bind(p.expire_time)
    .bind(p.revoke_time)
    .bind(&p.revoked_by)
    .bind(request_key.map(str::to_string))
    .execute(&mut *tx)
    .await
    .map_err(|error| {
        if is_unique_violation(&error) {
            ApprovalError::AlreadyExists("permission already granted".into())
        } else {
            error.into()
        }
    })?;
    Ok(())
}

/// A grant by id.
pub async fn permission_in(tx: &mut Tx, id: &str) -> Result<Option<Permission>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM permissions WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    row.as_ref().map(permission_from_row).transpose()
}

/// The grant recorded under a direct grant's idempotency key.
pub async fn permission_by_key(tx: &mut Tx, request_key: &str) -> Result<Option<Permission>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM permissions WHERE request_key = $1"
    )))
    .bind(request_key)
    .fetch_optional(&mut *tx)
    .await?;
    row.as_ref().map(permission_from_row).transpose()
}

/// Revokes a grant that is not revoked yet (compare-and-set).
///
/// Fails with `Conflict` when it was already revoked.
pub async fn revoke(tx: &mut Tx, id: &str, by: &str, reason: &str, now: Micros) -> Result<()> {
    let updated = sqlx::query(
        "UPDATE permissions SET revoke_time = $1, revoked_by = $2, revoke_reason = $3 \
         WHERE id = $4 AND revoke_time IS NULL",
    )
    .bind(now)
    .bind(by)
    .bind(reason)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 1 {
        Ok(())
    } else {
        Err(ApprovalError::Conflict)
    }
}

/// Stores what a `permission_apply` request asks for.
pub async fn insert_application(
    tx: &mut Tx,
    approval_id: &str,
    a: &PermissionApplication,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO permission_applications (approval_id, task_type, connection_id, \
         database_name, reason, duration) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(approval_id)
    .bind(&a.task_type)
    .bind(&a.connection_id)
    .bind(&a.database)
    .bind(&a.reason)
    .bind(a.duration)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What a `permission_apply` request asks for.
pub async fn application_in(
    tx: &mut Tx,
    approval_id: &str,
) -> Result<Option<PermissionApplication>> {
    let row = sqlx::query(
        "SELECT task_type, connection_id, database_name, reason, duration \
         FROM permission_applications WHERE approval_id = $1",
    )
    .bind(approval_id)
    .fetch_optional(&mut *tx)
    .await?;
    row.map(|row| {
        Ok(PermissionApplication {
            task_type: row.try_get("task_type")?,
            connection_id: row.try_get("connection_id")?,
            database: row.try_get("database_name")?,
            reason: row.try_get("reason")?,
            duration: row.try_get("duration")?,
        })
    })
    .transpose()
}

/// Looks up an idempotency key: `(fingerprint, result id)` of the first call with it.
pub async fn request_key(
    tx: &mut Tx,
    caller: &str,
    rpc: &str,
    request_id: &str,
) -> Result<Option<(String, String)>> {
    let row = sqlx::query(
        "SELECT fingerprint, result_id FROM request_keys \
         WHERE caller = $1 AND rpc = $2 AND request_id = $3",
    )
    .bind(caller)
    .bind(rpc)
    .bind(request_id)
    .fetch_optional(&mut *tx)
    .await?;
    row.map(|r| Ok((r.try_get("fingerprint")?, r.try_get("result_id")?)))
        .transpose()
}

/// Records an idempotency key in the change's transaction.
///
/// Fails with `Conflict` when a concurrent call with the same key committed first.
pub async fn insert_request_key(
    tx: &mut Tx,
    key: (&str, &str, &str),
    fingerprint: &str,
    result_id: &str,
    now: Micros,
) -> Result<()> {
    let (caller, rpc, request_id) = key;
    sqlx::query(
        "INSERT INTO request_keys (caller, rpc, request_id, fingerprint, result_id, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(caller)
    .bind(rpc)
    .bind(request_id)
    .bind(fingerprint)
    .bind(result_id)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            ApprovalError::Conflict
        } else {
            e.into()
        }
    })?;
    Ok(())
}

impl Store {
    /// Grants of `grantee` for `task_type` on `connection_id` active at `now`.
    pub async fn active_grants(
        &self,
        grantee: &str,
        task_type: &str,
        connection_id: &str,
        now: Micros,
    ) -> Result<Vec<Permission>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM permissions WHERE grantee = $1 AND task_type = $2 \
             AND connection_id = $3 AND revoke_time IS NULL \
             AND (expire_time IS NULL OR expire_time > $4)"
        )))
        .bind(grantee)
        .bind(task_type)
        .bind(connection_id)
        .bind(now)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(permission_from_row).collect()
    }

    /// One page of grants and the total matching.
    pub async fn list_permissions(
        &self,
        filter: &PermissionFilter,
    ) -> Result<(Vec<Permission>, i64)> {
        let mut q = QueryBuilder::default();
        let mut conditions = vec!["TRUE".to_string()];
        if let Some(grantee) = &filter.grantee {
            conditions.push(format!("grantee = {}", q.text(grantee.clone())));
        }
        if let Some(connection) = &filter.connection_id {
            conditions.push(format!("connection_id = {}", q.text(connection.clone())));
        }
        if let Some(task_type) = &filter.task_type {
            conditions.push(format!("task_type = {}", q.text(task_type.clone())));
        }
        if let Some(now) = filter.active_at {
            let now = q.int(now);
            conditions.push(format!(
                "revoke_time IS NULL AND (expire_time IS NULL OR expire_time > {now})"
            ));
        }
        let base = conditions.join(" AND ");
        let total: i64 = q
            .query(format!(
                "SELECT COUNT(*) AS n FROM permissions WHERE {base}"
            ))
            .fetch_one(self.db().pool())
            .await?
            .try_get("n")?;
        let mut page = base;
        if let Some(after) = &filter.after {
            page = format!("{page} AND id > {}", q.text(after.clone()));
        }
        let limit = q.int(filter.limit);
        let rows = q
            .query(format!(
                "SELECT {COLUMNS} FROM permissions WHERE {page} ORDER BY id LIMIT {limit}"
            ))
            .fetch_all(self.db().pool())
            .await?;
        let grants = rows
            .iter()
            .map(permission_from_row)
            .collect::<Result<_>>()?;
        Ok((grants, total))
    }

    /// Forgets idempotency keys older than `before` (kept 24 h).
    pub async fn purge_request_keys(&self, before: Micros) -> Result<u64> {
        let deleted = sqlx::query("DELETE FROM request_keys WHERE create_time < $1")
            .bind(before)
            .execute(self.db().pool())
            .await?;
        Ok(deleted.rows_affected())
    }
}
