//! The approval store: portable SQL over [`Database`] (PostgreSQL or SQLite), one module per
//! aggregate. Functions that take part in a state change take the caller's transaction
//! (`&mut AnyConnection`), so the change, its node and candidate rows and its outbox messages
//! commit together. Every state transition is a compare-and-set on the row's version.

mod approval_list;
pub mod approvals;
pub mod permissions;
pub mod templates;
#[cfg(test)]
mod tests;

pub use approval_list::{ApprovalFilter, ApprovalPage, ListScope};
pub use approvals::ApprovalTransition;
pub use permissions::PermissionFilter;

use shadowsync_common::db::{Database, Migrations};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use crate::error::{ApprovalError, Result};

/// The approval service's migrations.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
};
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// The store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Starts a transaction.
    ///
    /// On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`): a deferred transaction
    /// that reads and then writes fails with SQLITE_BUSY, without waiting, when another writer
    /// got there first; an immediate one waits its turn under the busy timeout instead.
    ///
    /// Fails when the store is unreachable.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(self.db.begin().await?)
    }
}

/// A connection inside a transaction, as the store's functions take it.
pub type Tx = AnyConnection;

fn flag(value: bool) -> i64 {
    i64::from(value)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    Ok(serde_json::to_string(value)?)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    Ok(serde_json::from_str(text)?)
}

fn get_u32(row: &AnyRow, column: &str) -> Result<u32> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).map_err(|_| ApprovalError::Corrupt(format!("{column} = {value}")))
}

/// One bind value of a query built at run time.
#[derive(Debug, Clone)]
enum Bind {
    Text(String),
    Int(i64),
}

/// A query assembled from optional filters, with `$n` placeholders numbered as they are added.
#[derive(Debug, Default)]
struct QueryBuilder {
    binds: Vec<Bind>,
}

impl QueryBuilder {
    fn text(&mut self, value: impl Into<String>) -> String {
        self.binds.push(Bind::Text(value.into()));
        format!("${}", self.binds.len())
    }

    fn int(&mut self, value: i64) -> String {
        self.binds.push(Bind::Int(value));
        format!("${}", self.binds.len())
    }

    /// `$a, $b, …` for a non-empty list of texts.
    fn texts(&mut self, values: &[String]) -> String {
        values
            .iter()
            .map(|v| self.text(v.clone()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The statement with every value bound. Only placeholders reach the SQL text; values are
    /// always bound.
    fn query(
        &self,
        sql: String,
    ) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for bind in &self.binds {
            query = match bind {
                Bind::Text(value) => query.bind(value.clone()),
                Bind::Int(value) => query.bind(*value),
            };
        }
        query
    }
}
