//! Task rows written straight into the task store, for listing tests that need many tasks
//! with chosen creators, statuses and creation times (submitting each through an analysis
//! would take minutes). Only what ListTasks reads is set; what the tests check goes through the
//! gRPC API.

use shadowsync_common::clock::Micros;
use shadowsync_common::db::Database;
use shadowsync_proto::task::v1::TaskStatus;

/// One task to insert.
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub connection_id: String,
    pub database: String,
    pub creator: String,
    pub creator_name: String,
    pub status: TaskStatus,
    pub created_at: Micros,
    /// `user:<subject>` / `role:<role>` candidates of the current approval node.
    pub current_principals: Vec<String>,
    /// Candidates of earlier nodes (they keep seeing the task).
    pub past_principals: Vec<String>,
}

impl TaskRow {
    pub fn new(creator: &str, status: TaskStatus, created_at: Micros) -> Self {
        Self {
            connection_id: "conn-1".into(),
            database: "shop".into(),
            creator: creator.into(),
            creator_name: String::new(),
            status,
            created_at,
            current_principals: Vec::new(),
            past_principals: Vec::new(),
        }
    }
}

/// The stored status name (`APPROVING` for `TASK_STATUS_APPROVING`).
pub fn status_name(status: TaskStatus) -> &'static str {
    shadowsync_task::store::lifecycle::status_name(status)
}

/// Inserts `rows` in one transaction; returns their ids in order.
pub async fn insert(db: &Database, rows: &[TaskRow]) -> Vec<i64> {
    let mut tx = db.pool().begin().await.expect("begin");
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        let inserted: (i64,) = sqlx::query_as(
            "INSERT INTO tasks (analysis_id, connection_id, connection_name, database_name, \
             status, status_rank, creator, creator_name, created_at, updated_at, \
             database_name_lower, creator_lower, creator_name_lower) \
             VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11) RETURNING id",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&row.connection_id)
        .bind(&row.database)
        .bind(status_name(row.status))
        .bind(i64::from(row.status as i32))
        .bind(&row.creator)
        .bind(&row.creator_name)
        .bind(row.created_at)
        // As the task service stores them at submission.
        .bind(row.database.to_lowercase())
        .bind(row.creator.to_lowercase())
        .bind(row.creator_name.to_lowercase())
        .fetch_one(&mut *tx)
        .await
        .expect("insert task");
        for (principals, current) in [(&row.current_principals, 1i64), (&row.past_principals, 0)] {
            for principal in principals {
                sqlx::query(
                    "INSERT INTO task_principals (task_id, principal, is_current, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(inserted.0)
                .bind(principal)
                .bind(current)
                .bind(row.created_at)
                .execute(&mut *tx)
                .await
                .expect("insert principal");
            }
        }
        ids.push(inserted.0);
    }
    tx.commit().await.expect("commit");
    ids
}
