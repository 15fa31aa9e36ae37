//! Templates and the priority order. Updates and deletes compare the version; the priority order
//! is one row replaced as a whole under its version.

use shadowsync_common::clock::Micros;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Store, Tx, flag, from_json, to_json};
use crate::error::{ApprovalError, Result, is_unique_violation};
use crate::model::{PriorityOrder, Template};

const COLUMNS: &str = "id, name, description, enabled, builtin, definition, version, creator, \
                       create_time, update_time";

fn template_from_row(row: &AnyRow) -> Result<Template> {
    Ok(Template {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        builtin: row.try_get::<i64, _>("builtin")? != 0,
        definition: from_json(&row.try_get::<String, _>("definition")?)?,
        version: row.try_get("version")?,
        creator: row.try_get("creator")?,
        create_time: row.try_get("create_time")?,
        update_time: row.try_get("update_time")?,
    })
}

fn duplicate_name(error: sqlx::Error, name: &str) -> ApprovalError {
    if is_unique_violation(&error) {
        ApprovalError::AlreadyExists(format!("a template named {name:?} exists"))
    } else {
        error.into()
    }
}

/// Inserts a template (version 1).
///
/// Fails with `AlreadyExists` for a duplicate name.
pub async fn insert_template(tx: &mut Tx, template: &Template) -> Result<()> {
    sqlx::query(
        "INSERT INTO templates (id, name, description, enabled, builtin, definition, version, \
         creator, create_time, update_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&template.id)
    .bind(&template.name)
    .bind(&template.description)
    .bind(flag(template.enabled))
    .bind(flag(template.builtin))
    .bind(to_json(&template.definition)?)
    .bind(template.version)
    .bind(&template.creator)
    .bind(template.create_time)
    .bind(template.update_time)
    .execute(&mut *tx)
    .await
    .map_err(|e| duplicate_name(e, &template.name))?;
    Ok(())
}

/// Replaces a template's writable fields if its version is still `expected_version`; the
/// version becomes `expected_version + 1`.
///
/// Fails with `Conflict` when the version moved (or the template is gone), `AlreadyExists` for
/// a duplicate name.
pub async fn update_template(
    tx: &mut Tx,
    template: &Template,
    expected_version: i64,
) -> Result<()> {
    let updated = sqlx::query(
        "UPDATE templates SET name = $1, description = $2, enabled = $3, definition = $4, \
         version = $5, update_time = $6 WHERE id = $7 AND version = $8",
    )
    .bind(&template.name)
    .bind(&template.description)
    .bind(flag(template.enabled))
    .bind(to_json(&template.definition)?)
    .bind(expected_version + 1)
    .bind(template.update_time)
    .bind(&template.id)
    .bind(expected_version)
    .execute(&mut *tx)
    .await
    .map_err(|e| duplicate_name(e, &template.name))?;
    if updated.rows_affected() == 1 {
        Ok(())
    } else {
        Err(ApprovalError::Conflict)
    }
}

/// Deletes a non-builtin template at `expected_version`.
///
/// Fails with `Conflict` when the version moved, the template is gone or builtin.
pub async fn delete_template(tx: &mut Tx, id: &str, expected_version: i64) -> Result<()> {
    let deleted =
        sqlx::query("DELETE FROM templates WHERE id = $1 AND version = $2 AND builtin = 0")
            .bind(id)
            .bind(expected_version)
            .execute(&mut *tx)
            .await?;
    if deleted.rows_affected() == 1 {
        Ok(())
    } else {
        Err(ApprovalError::Conflict)
    }
}

/// The priority order inside a transaction.
///
/// Fails when the store fails or the row is missing (not seeded).
pub async fn priority_in(tx: &mut Tx) -> Result<PriorityOrder> {
    let row = sqlx::query("SELECT template_ids, version FROM priority_order WHERE id = 1")
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApprovalError::Corrupt("priority order not seeded".into()))?;
    Ok(PriorityOrder {
        template_ids: from_json(&row.try_get::<String, _>("template_ids")?)?,
        version: row.try_get("version")?,
    })
}

/// Replaces the order if its version is still `expected_version`.
///
/// Fails with `Conflict` when it moved.
pub async fn set_priority(
    tx: &mut Tx,
    template_ids: &[String],
    expected_version: i64,
) -> Result<i64> {
    let updated = sqlx::query(
        "UPDATE priority_order SET template_ids = $1, version = $2 WHERE id = 1 AND version = $3",
    )
    .bind(to_json(&template_ids)?)
    .bind(expected_version + 1)
    .bind(expected_version)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 1 {
        Ok(expected_version + 1)
    } else {
        Err(ApprovalError::Conflict)
    }
}

/// Every template inside a transaction (there are few).
pub async fn all_templates_in(tx: &mut Tx) -> Result<Vec<Template>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM templates"
    )))
    .fetch_all(&mut *tx)
    .await?;
    rows.iter().map(template_from_row).collect()
}

/// One template inside a transaction.
pub async fn template_in(tx: &mut Tx, id: &str) -> Result<Option<Template>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM templates WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    row.as_ref().map(template_from_row).transpose()
}

impl Store {
    /// Creates the builtin template and the priority order row on first start; a no-op later
    /// (and when two replicas race: the loser's insert conflicts and is ignored).
    ///
    /// Fails when the store fails.
    pub async fn seed(&self, builtin: &Template, now: Micros) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO priority_order (id, template_ids, version) VALUES (1, '[]', 1) \
             ON CONFLICT (id) DO NOTHING",
        )
        .execute(&mut *tx)
        .await?;
        let exists = sqlx::query("SELECT id FROM templates WHERE builtin = 1")
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            let builtin = Template {
                create_time: now,
                update_time: now,
                ..builtin.clone()
            };
            insert_template(&mut tx, &builtin).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every template and the priority order, read together.
    pub async fn templates_and_priority(&self) -> Result<(Vec<Template>, PriorityOrder)> {
        let mut tx = self.begin().await?;
        let templates = all_templates_in(&mut tx).await?;
        let order = priority_in(&mut tx).await?;
        tx.commit().await?;
        Ok((templates, order))
    }

    /// One template.
    pub async fn template(&self, id: &str) -> Result<Option<Template>> {
        let mut tx = self.begin().await?;
        let template = template_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(template)
    }
}
