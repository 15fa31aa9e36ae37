//! Tasks repository: a connection's unfinished tasks (for the delete check), and the rules every
//! task insert follows.
//!
//! Inserting a task must, in the same transaction and before the insert, lock its connection
//! with `UPDATE connections SET updated_at = updated_at WHERE id = $1` and refuse the task
//! (connection NOT_FOUND) when no row was updated. [`super::connections`]' delete takes the same
//! lock, so a task and a delete of its connection are serialised either way round.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlStore;

/// The statuses a task never leaves (DESIGN §3). Every other status, including the hidden
/// `SUBMITTING`, is unfinished.
pub const FINAL_STATUSES: [&str; 7] = [
    "EXECUTION_SUCCEEDED",
    "EXECUTION_FAILED",
    "CANCELLED",
    "REJECTED",
    "APPROVAL_EXPIRED",
    "WAIT_FOR_EXECUTION_EXPIRED",
    "EXECUTION_EXPIRED",
];

/// `status NOT IN ('EXECUTION_SUCCEEDED', …)`: constants only, no caller input.
pub(crate) fn unfinished_condition() -> String {
    let quoted: Vec<String> = FINAL_STATUSES.iter().map(|s| format!("'{s}'")).collect();
    format!("status NOT IN ({})", quoted.join(", "))
}

/// Stored tasks.
#[async_trait]
pub trait TaskRepository: Send + Sync {
    /// How many tasks on `connection_id` are not in a final status (hidden `SUBMITTING` ones
    /// included).
    async fn count_unfinished_tasks(&self, connection_id: &str) -> Result<i64, sqlx::Error>;
}

#[async_trait]
impl TaskRepository for SqlStore {
    async fn count_unfinished_tasks(&self, connection_id: &str) -> Result<i64, sqlx::Error> {
        let sql = format!(
            "SELECT COUNT(*) FROM tasks WHERE connection_id = $1 AND {}",
            unfinished_condition()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(connection_id)
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)
    }
}
