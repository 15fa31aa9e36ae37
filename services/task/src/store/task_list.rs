//! ListTasks: filters AND together, keyset paging on (sort key, id) so pages neither repeat nor
//! skip tasks while new ones arrive, and visibility in SQL (admins all; others their own tasks
//! and those naming them on an approval node).

use std::collections::{HashMap, HashSet};

use shadowsync_common::clock::Micros;
use shadowsync_proto::task::v1::{TaskProgress, TaskStatus};
use sqlx::Row;

use super::SqlStore;
use super::lifecycle::{TASK_COLUMNS, TaskRecord, decode_task, status_name};
use super::task_reads::tally;

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
    pub statuses: Vec<TaskStatus>,
    pub created_after: Option<Micros>,
    pub created_before: Option<Micros>,
    pub sort: TaskSort,
    pub descending: bool,
    /// The last row of the previous page: (sort key, id).
    pub after: Option<(i64, i64)>,
    pub limit: i64,
}

#[derive(Clone)]
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
            // The window applies inside the lookup too, on the principals' copy of the
            // creation time (index `task_principals_created`), so it reads only the caller's
            // tasks in the window. Measured against a correlated EXISTS on PostgreSQL 15 with a
            // million tasks (examples/list_tasks_bench.rs): this IN form was faster each time.
            let mut window = String::new();
            if let Some(after) = query.created_after {
                let p = next(Bind::Int(after), &mut binds);
                window.push_str(&format!(" AND created_at >= {p}"));
            }
            if let Some(before) = query.created_before {
                let p = next(Bind::Int(before), &mut binds);
                window.push_str(&format!(" AND created_at < {p}"));
            }
            conditions.push(format!(
                "(creator = {me} OR id IN (SELECT task_id FROM task_principals \
                 WHERE principal IN ({}){window}))",
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
            conditions.push(format!("database_name_lower LIKE {p} ESCAPE '\\'"));
        }
        if !query.creator_pattern.is_empty() {
            let p = next(Bind::Text(query.creator_pattern.clone()), &mut binds);
            let q = next(Bind::Text(query.creator_pattern.clone()), &mut binds);
            conditions.push(format!(
                "(creator_lower LIKE {p} ESCAPE '\\' OR creator_name_lower LIKE {q} ESCAPE '\\')"
            ));
        }
        if let Some(after) = query.created_after {
            let p = next(Bind::Int(after), &mut binds);
            conditions.push(format!("created_at >= {p}"));
        }
        if let Some(before) = query.created_before {
            let p = next(Bind::Int(before), &mut binds);
            conditions.push(format!("created_at < {p}"));
        }
        // The status filter comes last, with the same placeholders in the count and the page
        // but not always the same column: by name for the count (an index-only scan of
        // `tasks_status_created`); for a page sorted by status, by `status_rank`, so
        // `tasks_rank` (status_rank, id) both filters and orders it (by name the planner walked
        // that index filtering: 2.6 s for one status of a million tasks).
        let mut count_binds = binds.clone();
        let mut filtered = conditions.join(" AND ");
        let mut page_filtered = filtered.clone();
        if !query.statuses.is_empty() {
            let by_rank = query.sort == TaskSort::Status;
            let mut list = Vec::new();
            for status in &query.statuses {
                let name = Bind::Text(status_name(*status).to_owned());
                count_binds.push(name.clone());
                let bind = if by_rank {
                    Bind::Int(i64::from(*status as i32))
                } else {
                    name
                };
                list.push(next(bind, &mut binds));
            }
            let list = list.join(", ");
            filtered.push_str(&format!(" AND status IN ({list})"));
            let column = if by_rank { "status_rank" } else { "status" };
            page_filtered.push_str(&format!(" AND {column} IN ({list})"));
        }
        let column = query.sort.column();
        let (op, direction) = if query.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let mut page_conditions = page_filtered;
        if let Some((key, id)) = query.after {
            // A row-value comparison, which both backends turn into an index range; the
            // equivalent `a < k OR (a = k AND id < i)` is only a filter, so a deep page walked
            // every row before it.
            let k = next(Bind::Int(key), &mut binds);
            let i = next(Bind::Int(id), &mut binds);
            page_conditions.push_str(&format!(" AND ({column}, id) {op} ({k}, {i})"));
        }
        let limit = next(Bind::Int(query.limit), &mut binds);
        let select = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE {page_conditions} \
             ORDER BY {column} {direction}, id {direction} LIMIT {limit}"
        );
        let count = format!("SELECT COUNT(*) FROM tasks WHERE {filtered}");

        let mut total_query = sqlx::query(sqlx::AssertSqlSafe(count));
        for bind in &count_binds {
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

impl SqlStore {
    /// Execution progress of each of `task_ids` (one query for a whole page, not one per task).
    pub async fn progress_of(
        &self,
        task_ids: &[i64],
    ) -> Result<HashMap<i64, TaskProgress>, sqlx::Error> {
        let mut progress: HashMap<i64, TaskProgress> = task_ids
            .iter()
            .map(|id| (*id, TaskProgress::default()))
            .collect();
        if task_ids.is_empty() {
            return Ok(progress);
        }
        let sql = format!(
            "SELECT task_id, status, COUNT(*) FROM task_tables WHERE synced = 1 \
             AND task_id IN ({}) GROUP BY task_id, status",
            placeholders(1, task_ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in task_ids {
            query = query.bind(*id);
        }
        for row in query.fetch_all(self.database().pool()).await? {
            let id: i64 = row.try_get(0)?;
            tally(
                progress.entry(id).or_default(),
                row.try_get(1)?,
                row.try_get(2)?,
            );
        }
        Ok(progress)
    }

    /// Which of `task_ids` name one of `principals` on their current approval node.
    pub async fn current_principal_of(
        &self,
        task_ids: &[i64],
        principals: &[String],
    ) -> Result<HashSet<i64>, sqlx::Error> {
        if task_ids.is_empty() || principals.is_empty() {
            return Ok(HashSet::new());
        }
        let sql = format!(
            "SELECT DISTINCT task_id FROM task_principals WHERE is_current = 1 \
             AND task_id IN ({}) AND principal IN ({})",
            placeholders(1, task_ids.len()),
            placeholders(task_ids.len() + 1, principals.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in task_ids {
            query = query.bind(*id);
        }
        for principal in principals {
            query = query.bind(principal.clone());
        }
        query
            .fetch_all(self.database().pool())
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect()
    }
}

/// `$first, $first+1, …` for `count` bind parameters.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sort key of `task` for `sort`.
pub fn sort_key(task: &TaskRecord, sort: TaskSort) -> i64 {
    match sort {
        TaskSort::Id => task.id,
        TaskSort::Created => task.created_at,
        TaskSort::Status => i64::from(task.status as i32),
    }
}
