//! The task service's metadata store: repository traits and their one portable SQL
//! implementation ([`SqlStore`], PostgreSQL and SQLite through `sqlx::Any`).
//!
//! - [`connections`]: registered target databases (password as ciphertext only);
//! - [`analyses`]: analysis headers, the runner's lease, expiry;
//! - [`rows`]: per-table rows and the change statements in script order;
//! - [`plan_digests`]: the plan digest of a stored preview or task (what approvals bind);
//! - [`replan`]: applying a re-plan after skips;
//! - [`request_ids`]: idempotency keys of retried calls;
//! - [`tasks`]: a connection's unfinished tasks, for the delete check.
//!
//! Times are microseconds since the epoch; booleans are 0/1 integers; every integer is 64-bit
//! on both engines so one decoding path serves both.

pub mod analyses;
pub mod connections;
pub mod lifecycle;
pub mod plan_digests;
pub mod records;
pub mod replan;
pub mod request_ids;
pub mod rows;
pub mod submission;
pub mod task_list;
pub mod task_reads;
pub mod tasks;

use shadowsync_common::db::Database;

pub use records::*;

/// The SQL implementation of every repository trait.
#[derive(Debug, Clone)]
pub struct SqlStore {
    db: Database,
}

impl SqlStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }
}

/// True when `error` is a unique-constraint violation (a name clash), on either engine.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// `%needle%` for `LIKE … ESCAPE '\'`, lower-cased, with the wildcards in `needle` escaped.
pub(crate) fn like_pattern(needle: &str) -> String {
    let mut pattern = String::from("%");
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod conformance;

/// Every repository the task service uses, as one object.
pub trait TaskStore:
    connections::ConnectionRepository
    + analyses::AnalysisRepository
    + rows::AnalysisRowRepository
    + request_ids::RequestIdRepository
    + tasks::TaskRepository
{
}

impl<T> TaskStore for T where
    T: connections::ConnectionRepository
        + analyses::AnalysisRepository
        + rows::AnalysisRowRepository
        + request_ids::RequestIdRepository
        + tasks::TaskRepository
{
}
