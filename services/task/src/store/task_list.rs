//! ListTasks: filters AND together, keyset paging on (sort key, id) so pages neither repeat nor
//! skip tasks while new ones arrive, and visibility in SQL (admins all; others their own tasks
//! and those naming them on an approval node).

use shadowsync_common::clock::Micros;
use sqlx::Row;

use super::SqlStore;
use super::lifecycle::{TASK_COLUMNS, TaskRecord, decode_task};

/// Sort key of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSort {
    Id,
    Created,
    Status,
}

impl TaskSort {
    fn column(self) -> &'static str {
        match self {
            TaskSort::Id => "id",
            TaskSort::Created => "created_at",
            TaskSort::Status => "status_rank",
        }
    }
}

/// What ListTasks asks for, validated.
#[derive(Debug, Clone)]
pub struct TaskQuery {
    /// `None` for admins (everything); otherwise the caller's subject and principals.
    pub viewer: Option<(String, Vec<String>)>,
    pub created_by: Option<String>,
    /// Only tasks whose current node names one of these principals (and not created by
    /// `not_creator`).
    pub awaiting: Option<(Vec<String>, String)>,
    pub connection_ids: Vec<String>,
    /// Lower-cased `LIKE` patterns.
    pub database_pattern: String,
    pub creator_pattern: String,
    pub statuses: Vec<String>,
    pub created_after: Option<Micros>,
    pub created_before: Option<Micros>,
    pub sort: TaskSort,
    pub descending: bool,
    /// The last row of the previous page: (sort key, id).
    pub after: Option<(i64, i64)>,
    pub limit: i64,
}

enum Bind {
    Int(i64),
    Text(String),
}

impl SqlStore {
    /// One page of tasks and the total matching.
    pub async fn list_tasks(
        &self,
        query: &TaskQuery,
    ) -> Result<(Vec<TaskRecord>, i64), sqlx::Error> {
        let mut binds: Vec<Bind> = Vec::new();
        let next = |bind: Bind, binds: &mut Vec<Bind>| {
            binds.push(bind);
            format!("${}", binds.len())
        };
        let mut conditions = vec!["status <> 'SUBMITTING'".to_owned()];
        if let Some((subject, principals)) = &query.viewer {
            let me = next(Bind::Text(subject.clone()), &mut binds);
            let list: Vec<String> = principals
                .iter()
                .map(|p| next(Bind::Text(p.clone()), &mut binds))
                .collect();
            conditions.push(format!(
                "(creator = {me} OR id IN (SELECT task_id FROM task_principals \
                 WHERE principal IN ({})))",
                list.join(", ")
            ));
        }
        if let Some(creator) = &query.created_by {
            let me = next(Bind::Text(creator.clone()), &mut binds);
            conditions.push(format!("creator = {me}"));
        }
        if let Some((principals, not_creator)) = &query.awaiting {
            let list: Vec<String> = principals
                .iter()
                .map(|p| next(Bind::Text(p.clone()), &mut binds))
                .collect();
            let me = next(Bind::Text(not_creator.clone()), &mut binds);
            conditions.push(format!(
                "status = 'APPROVING' AND creator <> {me} AND id IN (SELECT task_id FROM \
                 task_principals WHERE is_current = 1 AND principal IN ({}))",
                list.join(", ")
            ));
        }
        if !query.connection_ids.is_empty() {
            let list: Vec<String> = query
                .connection_ids
                .iter()
                .map(|c| next(Bind::Text(c.clone()), &mut binds))
                .collect();
            conditions.push(format!("connection_id IN ({})", list.join(", ")));
        }
        if !query.database_pattern.is_empty() {
            let p = next(Bind::Text(query.database_pattern.clone()), &mut binds);
            conditions.push(format!("LOWER(database_name) LIKE {p} ESCAPE '\\'"));
        }
        if !query.creator_pattern.is_empty() {
            let p = next(Bind::Text(query.creator_pattern.clone()), &mut binds);
            let q = next(Bind::Text(query.creator_pattern.clone()), &mut binds);
            conditions.push(format!(
                "(LOWER(creator) LIKE {p} ESCAPE '\\' OR LOWER(creator_name) LIKE {q} ESCAPE '\\')"
            ));
        }
        if !query.statuses.is_empty() {
            let list: Vec<String> = query
                .statuses
                .iter()
                .map(|s| next(Bind::Text(s.clone()), &mut binds))
                .collect();
            conditions.push(format!("status IN ({})", list.join(", ")));
        }
        if let Some(after) = query.created_after {
            let p = next(Bind::Int(after), &mut binds);
            conditions.push(format!("created_at >= {p}"));
        }
        if let Some(before) = query.created_before {
            let p = next(Bind::Int(before), &mut binds);
            conditions.push(format!("created_at < {p}"));
        }
        let filtered = conditions.join(" AND ");
        let count_binds = binds.len();
        let column = query.sort.column();
        let (op, direction) = if query.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let mut page_conditions = filtered.clone();
        if let Some((key, id)) = query.after {
            let k1 = next(Bind::Int(key), &mut binds);
            let k2 = next(Bind::Int(key), &mut binds);
            let i = next(Bind::Int(id), &mut binds);
            page_conditions.push_str(&format!(
                " AND ({column} {op} {k1} OR ({column} = {k2} AND id {op} {i}))"
            ));
        }
        let limit = next(Bind::Int(query.limit), &mut binds);
        let select = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE {page_conditions} \
             ORDER BY {column} {direction}, id {direction} LIMIT {limit}"
        );
        let count = format!("SELECT COUNT(*) FROM tasks WHERE {filtered}");

        let mut total_query = sqlx::query(sqlx::AssertSqlSafe(count));
        for bind in &binds[..count_binds] {
            total_query = match bind {
                Bind::Int(v) => total_query.bind(*v),
                Bind::Text(v) => total_query.bind(v.clone()),
            };
        }
        let total: i64 = total_query
            .fetch_one(self.database().pool())
            .await?
            .try_get(0)?;
        let mut page_query = sqlx::query(sqlx::AssertSqlSafe(select));
        for bind in &binds {
            page_query = match bind {
                Bind::Int(v) => page_query.bind(*v),
                Bind::Text(v) => page_query.bind(v.clone()),
            };
        }
        let rows = page_query.fetch_all(self.database().pool()).await?;
        let tasks = rows.iter().map(decode_task).collect::<Result<_, _>>()?;
        Ok((tasks, total))
    }
}

/// The sort key of `task` for `sort`.
pub fn sort_key(task: &TaskRecord, sort: TaskSort) -> i64 {
    match sort {
        TaskSort::Id => task.id,
        TaskSort::Created => task.created_at,
        TaskSort::Status => i64::from(task.status as i32),
    }
}
