//! The transition table walked pair by pair on the real store (SQLite and PostgreSQL): for every
//! (from, to) of the task statuses, a task stored in `from` is asked to become `to` through the
//! lifecycle function that makes that move. A legal move reaches `to` with its `task.<to>`
//! event (and, for an ending, every table NOT_RUN, its timeline entry and its log line); any
//! other is FAILED_PRECONDITION and, even committed, leaves the task, its tables, timeline, log
//! and outbox as they were. That each legal move is driven by the public API or a sweeper is
//! shown by `task_status_machine.rs`, `task_expiry.rs` and `task_endings.rs`.

mod support;

use shadowsync_common::clock::Micros;
use shadowsync_common::db::Database;
use shadowsync_common::db::testing::TestDatabase;
use shadowsync_proto::task::v1::{LogLevel, TableExecutionStatus, TaskStatus};
use shadowsync_task::error::TaskError;
use shadowsync_task::store::SqlStore;
use shadowsync_task::store::lifecycle::{TaskTx, is_final};
use shadowsync_task::tasks::lifecycle::{self, CancelledBy, FailedBy, is_legal};
use sqlx::Row as _;
use support::rows::{TaskRow, insert};

use TaskStatus::*;

const STATUSES: [TaskStatus; 11] = [
    Submitting,
    Approving,
    WaitForExecution,
    Executing,
    Rejected,
    ApprovalExpired,
    WaitForExecutionExpired,
    ExecutionSucceeded,
    ExecutionFailed,
    ExecutionExpired,
    Cancelled,
];

/// The expiry `expire` applies to a task in `from`, if any.
fn expiry_of(from: TaskStatus) -> Option<TaskStatus> {
    match from {
        Submitting | Approving => Some(ApprovalExpired),
        WaitForExecution => Some(WaitForExecutionExpired),
        Executing => Some(ExecutionExpired),
        _ => None,
    }
}

/// Asks the locked task to become `to` through the function that makes that move.
async fn move_to(tx: &mut TaskTx, to: TaskStatus) -> Result<(), TaskError> {
    match to {
        Approving | WaitForExecution | Executing | Submitting | Unspecified => {
            lifecycle::advance(tx, to, Vec::new(), None, "").await
        }
        ExecutionSucceeded => lifecycle::succeed(tx, None, "done").await,
        ExecutionFailed => lifecycle::fail(tx, FailedBy::Executor, None, "broke").await,
        Cancelled => {
            let by = CancelledBy::TaskService {
                reason: "stop".into(),
                line: (LogLevel::Warn, "stop".into()),
            };
            lifecycle::cancel(tx, by, None, Vec::new()).await
        }
        Rejected => lifecycle::reject(tx, Vec::new(), "no").await,
        ApprovalExpired | WaitForExecutionExpired | ExecutionExpired => {
            lifecycle::expire(tx, Vec::new()).await
        }
    }
}

/// What a move may change: the task's status and update time, its tables, timeline, log and
/// the outbox.
#[derive(Debug, PartialEq)]
struct Snapshot {
    status: String,
    updated_at: Micros,
    tables: Vec<i64>,
    timeline: i64,
    log: i64,
    outbox: i64,
}

async fn snapshot(db: &Database, id: i64) -> Snapshot {
    let pool = db.pool();
    let task = sqlx::query("SELECT status, updated_at FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("task");
    let tables = sqlx::query("SELECT status FROM task_tables WHERE task_id = $1 ORDER BY ordinal")
        .bind(id)
        .fetch_all(pool)
        .await
        .expect("tables")
        .iter()
        .map(|row| row.get::<i64, _>(0))
        .collect();
    let count = |sql: &'static str| async move {
        sqlx::query(sql)
            .bind(id)
            .fetch_one(pool)
            .await
            .expect(sql)
            .get::<i64, _>(0)
    };
    Snapshot {
        status: task.get(0),
        updated_at: task.get(1),
        tables,
        timeline: count("SELECT COUNT(*) FROM task_timeline WHERE task_id = $1").await,
        log: count("SELECT COUNT(*) FROM task_logs WHERE task_id = $1").await,
        outbox: sqlx::query("SELECT COUNT(*) FROM outbox")
            .fetch_one(pool)
            .await
            .expect("outbox")
            .get::<i64, _>(0),
    }
}

/// Two synced tables, one RUNNING and one PENDING, and one not synced.
async fn add_tables(db: &Database, id: i64) {
    for (ordinal, status, synced) in [
        (0, TableExecutionStatus::Running, 1),
        (1, TableExecutionStatus::Pending, 1),
        (2, TableExecutionStatus::Pending, 0),
    ] {
        sqlx::query(
            "INSERT INTO task_tables (task_id, ordinal, source_table, shadow_table, result, \
             synced, skipped, reason, source_fingerprint, shadow_fingerprint, \
             target_fingerprint, depends_on, statements_total, status) \
             VALUES ($1, $2, $3, $3, 0, $4, 0, '', '', '', '', '', 1, $5)",
        )
        .bind(id)
        .bind(ordinal)
        .bind(format!("t{ordinal}"))
        .bind(synced)
        .bind(i64::from(status as i32))
        .execute(db.pool())
        .await
        .expect("table");
    }
}

async fn walk(store: TestDatabase) {
    let db = Database::connect(&store.url, "task").await.expect("store");
    shadowsync_task::prepare(&db).await.expect("prepare");
    let tasks = SqlStore::new(db.clone());
    let now: Micros = 1_800_000_000_000_000;
    for from in STATUSES {
        for to in STATUSES {
            let id = insert(&db, &[TaskRow::new("alice", from, now)]).await[0];
            add_tables(&db, id).await;
            let before = snapshot(&db, id).await;
            let mut tx = TaskTx::begin(&tasks, id, now + 1)
                .await
                .expect("begin")
                .expect("task");
            let result = move_to(&mut tx, to).await;
            tx.commit().await.expect("commit");
            let after = snapshot(&db, id).await;
            let pair = format!("{from:?} -> {to:?}");
            // `expire` picks the expiry of the task's status: asking it for another one is
            // not an attempt at this pair.
            if matches!(
                to,
                ApprovalExpired | WaitForExecutionExpired | ExecutionExpired
            ) && expiry_of(from).is_some_and(|expiry| expiry != to)
            {
                assert!(!is_legal(from, to), "{pair}");
                continue;
            }
            if !is_legal(from, to) {
                match result {
                    Err(TaskError::FailedPrecondition(_)) => {}
                    other => panic!("{pair}: {other:?}"),
                }
                assert_eq!(before, after, "{pair} changed something");
                continue;
            }
            result.unwrap_or_else(|error| panic!("{pair}: {error}"));
            assert_eq!(
                after.status,
                shadowsync_task::store::lifecycle::status_name(to),
                "{pair}"
            );
            assert_eq!(
                after.outbox,
                before.outbox + 1,
                "{pair}: one task.<to> event"
            );
            if is_final(to) {
                let not_run = i64::from(TableExecutionStatus::NotRun as i32);
                let pending = i64::from(TableExecutionStatus::Pending as i32);
                assert_eq!(after.tables, vec![not_run, not_run, pending], "{pair}");
                // A rejection's entry and line are the decision's, written with it.
                let written = i64::from(to != Rejected);
                assert_eq!(after.timeline, before.timeline + written, "{pair}");
                assert_eq!(after.log, before.log + written, "{pair}");
            } else {
                assert_eq!(after.tables, before.tables, "{pair}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pair_on_sqlite() {
    walk(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pair_on_postgres() {
    walk(TestDatabase::postgres().await).await;
}
