//! A task's row and every change to it, inside one transaction ([`TaskTx`]): the task row is
//! locked first (a no-op write, which is a row lock on PostgreSQL and the write lock on SQLite,
//! so a read-then-write never races), then status changes are compare-and-set, and the timeline
//! entry, the log line and the `task.<status>` outbox event are written in the same transaction.

use prost::Message as _;
use shadowsync_common::clock::{Micros, to_timestamp};
use shadowsync_common::outbox;
use shadowsync_common::queue::{Destination, Message};
use shadowsync_common::telemetry::metrics::{KeyValue, metrics};
use shadowsync_proto::common::v1::Actor;
use shadowsync_proto::task::v1::{
    ApprovalWait, LogLevel, TaskEvent, TaskStatus, TaskType, TimelineEntry, TimelineEntryKind,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::SqlStore;

/// `APPROVING` for [`TaskStatus::Approving`]: the stored form and the `task.<status>` suffix
/// (lower-cased).
pub fn status_name(status: TaskStatus) -> &'static str {
    status
        .as_str_name()
        .strip_prefix("TASK_STATUS_")
        .unwrap_or("UNSPECIFIED")
}

/// The stored form back; UNSPECIFIED for anything unknown.
pub fn parse_status(name: &str) -> TaskStatus {
    TaskStatus::from_str_name(&format!("TASK_STATUS_{name}")).unwrap_or(TaskStatus::Unspecified)
}

/// Whether a task in `status` never changes again.
pub fn is_final(status: TaskStatus) -> bool {
    matches!(
        status,
        TaskStatus::Rejected
            | TaskStatus::ApprovalExpired
            | TaskStatus::WaitForExecutionExpired
            | TaskStatus::ExecutionSucceeded
            | TaskStatus::ExecutionFailed
            | TaskStatus::ExecutionExpired
            | TaskStatus::Cancelled
    )
}

/// A stored task.
#[derive(Debug, Clone, Default)]
pub struct TaskRecord {
    pub id: i64,
    pub analysis_id: String,
    pub connection_id: String,
    pub connection_name: String,
    pub environment: String,
    pub database: String,
    pub status: TaskStatus,
    pub creator: String,
    pub creator_name: String,
    pub creator_roles: Vec<String>,
    pub created_at: Micros,
    pub updated_at: Micros,
    pub finished_at: Option<Micros>,
    pub execution_mode: i32,
    pub scheduled_at: Option<Micros>,
    pub error_strategy: i32,
    pub remarks: String,
    pub range: i64,
    pub requested_tables: Vec<String>,
    pub naming_mode: i64,
    pub affix: String,
    pub tables_to_sync: i64,
    pub tables_not_synced: i64,
    pub statement_count: i64,
    pub script_sha256: String,
    pub submit_request_id: String,
    pub submit_parameters_sha256: String,
    pub submit_attempts: i64,
    pub permission_pending: bool,
    pub approval_id: String,
    pub approval_version: i64,
    pub approval_decisions: i64,
    pub approval_wait: Option<ApprovalWait>,
    pub approval_cancel_pending: bool,
    pub priority: i64,
    pub wait_expiration: Micros,
    pub execution_expiration: Micros,
    pub due_at: Option<Micros>,
    pub attempt: i64,
    pub dispatched_attempt: i64,
    pub lease_token: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Micros>,
    pub started_at: Option<Micros>,
    pub execution_deadline: Option<Micros>,
    pub abort_requested: bool,
}

impl TaskRecord {
    /// The creator as an actor (for the approval request and events).
    pub fn creator_actor(&self) -> Actor {
        Actor {
            subject: self.creator.clone(),
            display_name: self.creator_name.clone(),
            roles: self.creator_roles.clone(),
        }
    }
}

pub(crate) const TASK_COLUMNS: &str = "id, analysis_id, connection_id, connection_name, \
    environment, database_name, status, creator, creator_name, creator_roles, created_at, \
    updated_at, finished_at, execution_mode, scheduled_at, error_strategy, remarks, sync_range, \
    requested_tables, naming_mode, affix, tables_to_sync, tables_not_synced, statement_count, \
    script_sha256, submit_request_id, submit_parameters_sha256, submit_attempts, \
    permission_pending, approval_id, approval_version, approval_decisions, approval_wait, \
    approval_cancel_pending, priority, wait_expiration, execution_expiration, due_at, attempt, \
    dispatched_attempt, lease_token, lease_owner, lease_until, started_at, execution_deadline, \
    abort_requested";

fn split_list(text: String) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_owned).collect()
    }
}

/// One row selected with [`TASK_COLUMNS`].
pub(crate) fn decode_task(row: &AnyRow) -> Result<TaskRecord, sqlx::Error> {
    let wait: Option<Vec<u8>> = row.try_get("approval_wait")?;
    let as_i32 = |value: i64| i32::try_from(value).unwrap_or(0);
    Ok(TaskRecord {
        id: row.try_get("id")?,
        analysis_id: row.try_get("analysis_id")?,
        connection_id: row.try_get("connection_id")?,
        connection_name: row.try_get("connection_name")?,
        environment: row.try_get("environment")?,
        database: row.try_get("database_name")?,
        status: parse_status(&row.try_get::<String, _>("status")?),
        creator: row.try_get("creator")?,
        creator_name: row.try_get("creator_name")?,
        creator_roles: split_list(row.try_get("creator_roles")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
        execution_mode: as_i32(row.try_get("execution_mode")?),
        scheduled_at: row.try_get("scheduled_at")?,
        error_strategy: as_i32(row.try_get("error_strategy")?),
        remarks: row.try_get("remarks")?,
        range: row.try_get("sync_range")?,
        requested_tables: split_list(row.try_get("requested_tables")?),
        naming_mode: row.try_get("naming_mode")?,
        affix: row.try_get("affix")?,
        tables_to_sync: row.try_get("tables_to_sync")?,
        tables_not_synced: row.try_get("tables_not_synced")?,
        statement_count: row.try_get("statement_count")?,
        script_sha256: row.try_get("script_sha256")?,
        submit_request_id: row.try_get("submit_request_id")?,
        submit_parameters_sha256: row.try_get("submit_parameters_sha256")?,
        submit_attempts: row.try_get("submit_attempts")?,
        permission_pending: row.try_get::<i64, _>("permission_pending")? != 0,
        approval_id: row.try_get("approval_id")?,
        approval_version: row.try_get("approval_version")?,
        approval_decisions: row.try_get("approval_decisions")?,
        approval_wait: wait.and_then(|bytes| ApprovalWait::decode(bytes.as_slice()).ok()),
        approval_cancel_pending: row.try_get::<i64, _>("approval_cancel_pending")? != 0,
        priority: row.try_get("priority")?,
        wait_expiration: row.try_get("wait_expiration")?,
        execution_expiration: row.try_get("execution_expiration")?,
        due_at: row.try_get("due_at")?,
        attempt: row.try_get("attempt")?,
        dispatched_attempt: row.try_get("dispatched_attempt")?,
        lease_token: row.try_get("lease_token")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get("lease_until")?,
        started_at: row.try_get("started_at")?,
        execution_deadline: row.try_get("execution_deadline")?,
        abort_requested: row.try_get::<i64, _>("abort_requested")? != 0,
    })
}

/// A value for [`TaskTx::update`].
#[derive(Debug, Clone)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(Some(value))
    }
}
impl From<Option<i64>> for Value {
    fn from(value: Option<i64>) -> Self {
        Value::Int(value)
    }
}
impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Int(Some(i64::from(value)))
    }
}
impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(Some(value.to_owned()))
    }
}
impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(Some(value))
    }
}
impl From<Option<String>> for Value {
    fn from(value: Option<String>) -> Self {
        Value::Text(value)
    }
}

/// Column assignments for [`TaskTx::update`]; column names are constants of this crate.
pub type Changes = Vec<(&'static str, Value)>;

/// A transaction on one locked task.
pub struct TaskTx {
    tx: Transaction<'static, Any>,
    pub task: TaskRecord,
    now: Micros,
    events: Vec<TaskEvent>,
}

impl TaskTx {
    /// Begins, locks and reads task `id`; `None` when it does not exist.
    pub async fn begin(
        store: &SqlStore,
        id: i64,
        now: Micros,
    ) -> Result<Option<Self>, sqlx::Error> {
        let mut tx = store.database().begin().await?;
        let locked = sqlx::query("UPDATE tasks SET timeline_seq = timeline_seq WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() != 1 {
            return Ok(None);
        }
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        Ok(Some(Self {
            tx,
            task: decode_task(&row)?,
            now,
            events: Vec::new(),
        }))
    }

    pub fn now(&self) -> Micros {
        self.now
    }

    pub fn connection(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    /// Sets columns of the locked task (and `updated_at`), then re-reads it.
    pub async fn update(&mut self, changes: Changes) -> Result<(), sqlx::Error> {
        let mut sets = vec!["updated_at = $2".to_owned()];
        for (index, (column, _)) in changes.iter().enumerate() {
            sets.push(format!("{column} = ${}", index + 3));
        }
        let sql = format!("UPDATE tasks SET {} WHERE id = $1", sets.join(", "));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.task.id)
            .bind(self.now);
        for (_, value) in changes {
            query = match value {
                Value::Int(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::Bytes(v) => query.bind(v),
            };
        }
        query.execute(&mut *self.tx).await?;
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.task.id)
            .fetch_one(&mut *self.tx)
            .await?;
        self.task = decode_task(&row)?;
        Ok(())
    }

    /// Moves the task to `to` (with `changes`), and queues `task.<to>` with `actor` and
    /// `comment`. Only `tasks::lifecycle` calls it, having checked the move is legal from the
    /// locked row's status.
    pub(crate) async fn transition(
        &mut self,
        to: TaskStatus,
        mut changes: Changes,
        actor: Option<Actor>,
        comment: &str,
    ) -> Result<(), sqlx::Error> {
        let previous = self.task.status;
        changes.push(("status", status_name(to).into()));
        changes.push(("status_rank", i64::from(to as i32).into()));
        if is_final(to) {
            changes.push(("finished_at", Value::Int(Some(self.now))));
            changes.push(("lease_until", Value::Int(None)));
        }
        self.update(changes).await?;
        if to != TaskStatus::Submitting {
            self.events.push(TaskEvent {
                event_id: uuid::Uuid::now_v7().to_string(),
                occur_time: Some(to_timestamp(self.now)),
                task_id: self.task.id,
                r#type: TaskType::ShadowTableSync as i32,
                status: to as i32,
                previous_status: previous as i32,
                actor,
                comment: comment.to_owned(),
                connection_id: self.task.connection_id.clone(),
                database: self.task.database.clone(),
                creator: self.task.creator.clone(),
                approval_id: self.task.approval_id.clone(),
                attempt: u32::try_from(self.task.attempt).unwrap_or(0),
            });
        }
        Ok(())
    }

    /// Appends a timeline entry (its sequence and, when unset, its time are filled in).
    pub async fn timeline(&mut self, mut entry: TimelineEntry) -> Result<(), sqlx::Error> {
        let row = sqlx::query(
            "UPDATE tasks SET timeline_seq = timeline_seq + 1 WHERE id = $1 RETURNING timeline_seq",
        )
        .bind(self.task.id)
        .fetch_one(&mut *self.tx)
        .await?;
        let sequence: i64 = row.try_get(0)?;
        entry.sequence = u64::try_from(sequence).unwrap_or(0);
        if entry.time.is_none() {
            entry.time = Some(to_timestamp(self.now));
        }
        sqlx::query(
            "INSERT INTO task_timeline (task_id, sequence, kind, entry) VALUES ($1, $2, $3, $4)",
        )
        .bind(self.task.id)
        .bind(sequence)
        .bind(i64::from(entry.kind))
        .bind(entry.encode_to_vec())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// A timeline entry of `kind` by `actor` with `comment`.
    pub async fn note(
        &mut self,
        kind: TimelineEntryKind,
        actor: Option<Actor>,
        comment: &str,
    ) -> Result<(), sqlx::Error> {
        self.timeline(TimelineEntry {
            kind: kind as i32,
            actor,
            comment: comment.to_owned(),
            ..TimelineEntry::default()
        })
        .await
    }

    /// Records that `attempt` was dispatched (at `time`, or now): `dispatched_attempt`, the
    /// DISPATCHED timeline entry and the log line. Called by whichever comes first, the
    /// dispatch event or the claim it led to; the caller checks the attempt is new.
    pub async fn record_dispatch(
        &mut self,
        attempt: u32,
        time: Option<prost_types::Timestamp>,
        priority: i64,
    ) -> Result<(), sqlx::Error> {
        self.update(vec![("dispatched_attempt", i64::from(attempt).into())])
            .await?;
        self.timeline(TimelineEntry {
            kind: TimelineEntryKind::Dispatched as i32,
            time,
            attempt,
            ..TimelineEntry::default()
        })
        .await?;
        self.log(
            LogLevel::Info,
            &format!("dispatched attempt {attempt} (priority {priority})"),
        )
        .await
    }

    /// Appends a task-service line to the task log.
    pub async fn log(&mut self, level: LogLevel, message: &str) -> Result<(), sqlx::Error> {
        let lines = [LogLine {
            time: self.now,
            level: level as i64,
            message: message.to_owned(),
            table: String::new(),
            attempt: 0,
            origin: "task".to_owned(),
            client_sequence: None,
        }];
        append_logs(&mut self.tx, self.task.id, &lines)
            .await
            .map(drop)
    }

    /// Commits, with the queued events in the outbox.
    pub async fn commit(mut self) -> Result<TaskRecord, sqlx::Error> {
        let reached: Vec<&'static str> = self
            .events
            .iter()
            .map(|event| {
                status_name(TaskStatus::try_from(event.status).unwrap_or(TaskStatus::Unspecified))
            })
            .collect();
        for event in std::mem::take(&mut self.events) {
            let status = TaskStatus::try_from(event.status).unwrap_or(TaskStatus::Unspecified);
            let routing_key = format!("task.{}", status_name(status).to_lowercase());
            let message = Message::from_protobuf(&event).with_id(event.event_id.clone());
            outbox::enqueue(
                &mut self.tx,
                &Destination::event(routing_key),
                &message,
                self.now,
                self.now,
            )
            .await?;
        }
        self.tx.commit().await?;
        for status in &reached {
            metrics()
                .task_transitions
                .add(1, &[KeyValue::new("shadowsync.task.status", *status)]);
        }
        if !reached.is_empty() {
            crate::status_gauge::STATUS_CHANGED.notify_one();
        }
        Ok(self.task)
    }
}

/// Work a sweeper finds due ([`SqlStore::due_tasks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueWork {
    /// SUBMITTING tasks whose approval request is due another try.
    SubmissionRetry,
    /// Cancelled tasks whose approval is still to be cancelled (due at once).
    ApprovalCancellation,
    /// EXECUTING tasks past their execution deadline.
    ExecutionExpiry,
    /// WAIT_FOR_EXECUTION tasks not claimed within the wait expiration after their due time.
    WaitExpiry,
    /// EXECUTING tasks whose executor's lease lapsed.
    LapsedLease,
}

/// One line for the task log.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub time: Micros,
    pub level: i64,
    pub message: String,
    pub table: String,
    pub attempt: i64,
    pub origin: String,
    /// Set for executor lines: the key a retried batch is deduplicated on.
    pub client_sequence: Option<i64>,
}

/// Appends lines under the task's lock (the caller holds it), skipping executor lines already
/// stored; returns how many were stored.
pub async fn append_logs(
    connection: &mut sqlx::AnyConnection,
    task_id: i64,
    lines: &[LogLine],
) -> Result<u32, sqlx::Error> {
    let mut stored = 0u32;
    for line in lines {
        if let Some(client_sequence) = line.client_sequence {
            let exists = sqlx::query(
                "SELECT 1 FROM task_logs WHERE task_id = $1 AND attempt = $2 \
                 AND client_sequence = $3",
            )
            .bind(task_id)
            .bind(line.attempt)
            .bind(client_sequence)
            .fetch_optional(&mut *connection)
            .await?;
            if exists.is_some() {
                continue;
            }
        }
        let row =
            sqlx::query("UPDATE tasks SET log_seq = log_seq + 1 WHERE id = $1 RETURNING log_seq")
                .bind(task_id)
                .fetch_one(&mut *connection)
                .await?;
        let sequence: i64 = row.try_get(0)?;
        sqlx::query(
            "INSERT INTO task_logs (task_id, sequence, logged_at, level, message, message_lower, \
             table_name, attempt, origin, client_sequence) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(task_id)
        .bind(sequence)
        .bind(line.time)
        .bind(line.level)
        .bind(&line.message)
        .bind(line.message.to_lowercase())
        .bind(&line.table)
        .bind(line.attempt)
        .bind(&line.origin)
        .bind(line.client_sequence)
        .execute(&mut *connection)
        .await?;
        stored += 1;
    }
    Ok(stored)
}

impl SqlStore {
    /// Task `id`, unlocked.
    pub async fn get_task(&self, id: i64) -> Result<Option<TaskRecord>, sqlx::Error> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.database().pool())
            .await?
            .map(|row| decode_task(&row))
            .transpose()
    }

    /// The task submitted from `analysis_id`.
    pub async fn task_of_analysis(
        &self,
        analysis_id: &str,
    ) -> Result<Option<TaskRecord>, sqlx::Error> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE analysis_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(analysis_id)
            .fetch_optional(self.database().pool())
            .await?
            .map(|row| decode_task(&row))
            .transpose()
    }

    /// Ids of up to `limit` tasks with `work` due at `now`, lowest first (the sweepers).
    pub async fn due_tasks(
        &self,
        work: DueWork,
        now: Micros,
        limit: i64,
    ) -> Result<Vec<i64>, sqlx::Error> {
        let query = match work {
            DueWork::SubmissionRetry => sqlx::query(
                "SELECT id FROM tasks WHERE status = 'SUBMITTING' AND submit_next_at <= $1 \
                 ORDER BY id LIMIT $2",
            )
            .bind(now),
            DueWork::ApprovalCancellation => sqlx::query(
                "SELECT id FROM tasks WHERE approval_cancel_pending = 1 ORDER BY id LIMIT $1",
            ),
            DueWork::ExecutionExpiry => sqlx::query(
                "SELECT id FROM tasks WHERE status = 'EXECUTING' AND execution_deadline < $1 \
                 ORDER BY id LIMIT $2",
            )
            .bind(now),
            DueWork::WaitExpiry => sqlx::query(
                "SELECT id FROM tasks WHERE status = 'WAIT_FOR_EXECUTION' \
                 AND due_at + wait_expiration < $1 ORDER BY id LIMIT $2",
            )
            .bind(now),
            DueWork::LapsedLease => sqlx::query(
                "SELECT id FROM tasks WHERE status = 'EXECUTING' AND lease_until < $1 \
                 ORDER BY id LIMIT $2",
            )
            .bind(now),
        };
        let rows = query.bind(limit).fetch_all(self.database().pool()).await?;
        rows.iter().map(|row| row.try_get(0)).collect()
    }

    /// Whether `principals` (`user:x`, `role:y`) include one recorded for the task.
    pub async fn is_principal(
        &self,
        task_id: i64,
        principals: &[String],
        current_only: bool,
    ) -> Result<bool, sqlx::Error> {
        for principal in principals {
            let row = sqlx::query(
                "SELECT is_current FROM task_principals WHERE task_id = $1 AND principal = $2",
            )
            .bind(task_id)
            .bind(principal)
            .fetch_optional(self.database().pool())
            .await?;
            if let Some(row) = row
                && (!current_only || row.try_get::<i64, _>(0)? == 1)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Records the current node's candidates as the task's current principals (earlier nodes' stay,
/// not current, so past approvers keep seeing the task).
pub async fn set_principals(
    connection: &mut sqlx::AnyConnection,
    task_id: i64,
    current: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE task_principals SET is_current = 0 WHERE task_id = $1")
        .bind(task_id)
        .execute(&mut *connection)
        .await?;
    for principal in current {
        sqlx::query(
            "INSERT INTO task_principals (task_id, principal, is_current, created_at) \
             SELECT $1, $2, 1, created_at FROM tasks WHERE id = $1 \
             ON CONFLICT (task_id, principal) DO UPDATE SET is_current = 1",
        )
        .bind(task_id)
        .bind(principal)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// `user:<subject>` and `role:<role>` for an identity.
pub fn principals_of(subject: &str, roles: &[String]) -> Vec<String> {
    std::iter::once(format!("user:{subject}"))
        .chain(roles.iter().map(|role| format!("role:{role}")))
        .collect()
}
