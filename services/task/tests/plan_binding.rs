//! The approved hash binds the plan: a task's plan changed in the store
//! after approval (a statement split at `;\n`, a statement moved to another table, two tables
//! swapped, the error strategy flipped, the schedule moved, a shadow renamed, or the strategy
//! flipped with the task's own hash rewritten to match) is refused at claim and the task fails;
//! the untouched task is granted, and the grant hashes, as an executor recomputes it, to the
//! approved digest. A task approved under the old hash fails at claim, and a plan changed after
//! its preview is not submitted. Through the real store (SQLite, or PostgreSQL with
//! `SS_TEST_STORE=postgres`), the real approval service and a real MariaDB source.

mod support;

use std::future::Future;

use shadowsync_common::clock::from_timestamp;
use shadowsync_common::db::Database;
use shadowsync_common::plan_digest::{DigestStatement, DigestTable, ExecutionTerms, PlanDigest};
use shadowsync_proto::task::v1::*;
use shadowsync_task::store::SqlStore;
use sqlx::Executor as _;
use sqlx::Row as _;
use support::fixture::{Fixture, status};
use tonic::Code;

/// A fixture whose source also has a column named `a;\nb`: its CREATE statement contains the
/// old hash's separator.
async fn fixture() -> Fixture {
    let f = Fixture::new().await;
    let mut root = support::mariadb_root().await;
    root.execute(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE `{}`.notes (id BIGINT PRIMARY KEY, `a;\nb` INT)",
        f.database.database
    )))
    .await
    .expect("notes");
    f
}

/// A value bound to a tampering statement.
enum Bind<'a> {
    Int(i64),
    Text(&'a str),
}

async fn run(db: &Database, sql: &str, binds: &[Bind<'_>]) {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for bind in binds {
        query = match bind {
            Bind::Int(i) => query.bind(*i),
            Bind::Text(text) => query.bind(text.to_string()),
        };
    }
    query.execute(db.pool()).await.expect(sql);
}

/// (script_index, ordinal, statement_index, sql) of every statement of task `id`.
async fn statements(db: &Database, id: i64) -> Vec<(i64, i64, i64, String)> {
    sqlx::query(
        "SELECT script_index, ordinal, statement_index, sql_text FROM task_statements \
         WHERE task_id = $1 ORDER BY script_index",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await
    .expect("statements")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

/// Ordinal of the synced table `source` of task `id`.
async fn ordinal(db: &Database, id: i64, source: &str) -> i64 {
    sqlx::query("SELECT ordinal FROM task_tables WHERE task_id = $1 AND source_table = $2")
        .bind(id)
        .bind(source)
        .fetch_one(db.pool())
        .await
        .expect("ordinal")
        .get(0)
}

/// Approves a fresh task, applies `tamper` to the store, claims, and expects the refusal and
/// the failed task with a message naming why.
async fn assert_refused_after<F, Fut>(f: &mut Fixture, what: &str, tamper: F)
where
    F: FnOnce(Database, i64) -> Fut,
    Fut: Future<Output = ()>,
{
    let task = f.waiting().await;
    tamper(f.services.db.clone(), task.id).await;
    let outcome = f.claim_outcome(task.id, task.attempt, "e1").await;
    assert_eq!(
        outcome,
        claim_execution_response::Outcome::Refused(ClaimRefusalReason::ApprovalMismatch as i32),
        "{what}: a tampered plan was granted"
    );
    let detail = f.get(task.id).await;
    assert_eq!(
        status(detail.task.as_ref().expect("task")),
        TaskStatus::ExecutionFailed,
        "{what}"
    );
    let failed = detail
        .timeline
        .iter()
        .find(|e| e.kind == TimelineEntryKind::Failed as i32)
        .expect("failed entry");
    assert!(
        failed
            .comment
            .contains("does not match this task's script: its plan"),
        "{what}: {}",
        failed.comment
    );
}

/// The plan digest of a grant, as an executor recomputes it from what it received.
fn granted_digest(granted: &ClaimedExecution) -> String {
    let connection = granted.connection.as_ref().expect("connection");
    let mut digest = PlanDigest::new(&connection.connection_id, &granted.database);
    let mut tables: Vec<_> = granted
        .tables
        .iter()
        .map(|t| t.plan.as_ref().expect("plan"))
        .collect();
    tables.sort_by_key(|t| t.ordinal);
    for table in tables {
        let fingerprints = table.fingerprints.clone().unwrap_or_default();
        let statements: Vec<_> = table
            .statements
            .iter()
            .map(|s| DigestStatement {
                script_index: i64::from(s.script_index),
                sql: &s.sql,
                expected_fingerprint_after: &s.expected_fingerprint_after,
            })
            .collect();
        digest.table(
            &DigestTable {
                source_table: &table.source_table,
                shadow_table: &table.shadow_table,
                source_fingerprint: &fingerprints.source,
                shadow_fingerprint: &fingerprints.shadow,
                target_fingerprint: &fingerprints.target,
                depends_on: &table.depends_on,
            },
            &statements,
        );
    }
    digest.finish(Some(ExecutionTerms {
        error_strategy: granted.error_strategy,
        scheduled_at: granted.scheduled_time.as_ref().map(from_timestamp),
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_changed_after_approval_is_refused_at_claim() {
    let mut f = fixture().await;

    // Untouched: granted, and the grant hashes to what was approved.
    let task = f.waiting().await;
    let plan = statements(&f.services.db, task.id).await;
    assert!(
        plan.iter().any(|s| s.3.contains(";\n")),
        "the fixture needs a statement containing ;\\n: {plan:?}"
    );
    let granted = f.claim(task.id, task.attempt, "e1").await;
    assert_eq!(granted.plan_table_count, 3);
    assert_eq!(granted.script_sha256, task.script_sha256);
    assert_eq!(granted_digest(&granted), task.script_sha256);
    assert_eq!(
        f.approval_of(&task).await.payload_sha256,
        task.script_sha256
    );

    // (a) The statement containing `;\n` split into two, adjacent in script order: the old
    // hash (each statement followed by `;\n`) did not change.
    assert_refused_after(&mut f, "split statement", |db, id| async move {
        let plan = statements(&db, id).await;
        let (script_index, ordinal, statement_index, sql) = plan
            .into_iter()
            .find(|s| s.3.contains(";\n"))
            .expect("a statement with ;\\n");
        let (head, tail) = sql.split_once(";\n").expect("separator");
        let (task, after) = (Bind::Int(id), Bind::Int(script_index));
        // Make room after it (two steps: the primary key holds at every row).
        run(
            &db,
            "UPDATE task_statements SET script_index = script_index + 1000000 \
             WHERE task_id = $1 AND script_index > $2",
            &[Bind::Int(id), Bind::Int(script_index)],
        )
        .await;
        run(
            &db,
            "UPDATE task_statements SET script_index = script_index - 999999 \
             WHERE task_id = $1 AND script_index > 1000000",
            &[Bind::Int(id)],
        )
        .await;
        run(
            &db,
            "UPDATE task_statements SET statement_index = statement_index + 1 \
             WHERE task_id = $1 AND ordinal = $2 \
             AND statement_index > $3",
            &[
                Bind::Int(id),
                Bind::Int(ordinal),
                Bind::Int(statement_index),
            ],
        )
        .await;
        run(
            &db,
            "UPDATE task_statements SET sql_text = $3 \
             WHERE task_id = $1 AND script_index = $2",
            &[task, after, Bind::Text(head)],
        )
        .await;
        run(
            &db,
            "INSERT INTO task_statements (task_id, script_index, ordinal, statement_index, \
             sql_text, expected_fingerprint_after) VALUES ($1, \
             $2, $3, $4, $5, '')",
            &[
                Bind::Int(id),
                Bind::Int(script_index + 1),
                Bind::Int(ordinal),
                Bind::Int(statement_index + 1),
                Bind::Text(tail),
            ],
        )
        .await;
        let split = statements(&db, id).await;
        let old_script = |plan: &[(i64, i64, i64, String)]| {
            plan.iter()
                .map(|s| format!("{};\n", s.3))
                .collect::<String>()
        };
        assert_eq!(split.len(), 4, "{split:?}");
        assert!(old_script(&split).contains(&format!("{sql};\n")));
    })
    .await;

    // (b) A statement moved to another table.
    assert_refused_after(&mut f, "statement moved", |db, id| async move {
        let items = ordinal(&db, id, "items").await;
        let orders = ordinal(&db, id, "orders").await;
        run(
            &db,
            "UPDATE task_statements SET ordinal = $3, statement_index = 1 \
             WHERE task_id = $1 AND ordinal = $2",
            &[Bind::Int(id), Bind::Int(items), Bind::Int(orders)],
        )
        .await;
    })
    .await;

    // (c) Two tables swapped in plan order (their statements with them).
    assert_refused_after(&mut f, "tables swapped", |db, id| async move {
        let a = ordinal(&db, id, "items").await;
        let b = ordinal(&db, id, "orders").await;
        for table in ["task_tables", "task_statements"] {
            for (from, to) in [(a, -1), (b, a), (-1, b)] {
                run(
                    &db,
                    &format!(
                        "UPDATE {table} SET ordinal = $3 \
                         WHERE task_id = $1 AND ordinal = $2"
                    ),
                    &[Bind::Int(id), Bind::Int(from), Bind::Int(to)],
                )
                .await;
            }
        }
    })
    .await;

    // (d) ABORT flipped to CONTINUE.
    assert_refused_after(&mut f, "strategy flipped", |db, id| async move {
        run(
            &db,
            "UPDATE tasks SET error_strategy = $2 WHERE id = $1",
            &[Bind::Int(id), Bind::Int(ErrorStrategy::Continue as i64)],
        )
        .await;
    })
    .await;

    // (e) The schedule moved.
    assert_refused_after(&mut f, "schedule moved", |db, id| async move {
        run(
            &db,
            "UPDATE tasks SET scheduled_at = 1700000000000000 WHERE id = $1",
            &[Bind::Int(id)],
        )
        .await;
    })
    .await;

    // (f) A shadow renamed: here to its production source.
    assert_refused_after(&mut f, "shadow renamed", |db, id| async move {
        run(
            &db,
            "UPDATE task_tables SET shadow_table = source_table \
             WHERE task_id = $1 AND source_table = 'orders'",
            &[Bind::Int(id)],
        )
        .await;
    })
    .await;
    // (g) The strategy flipped and the task's own hash rewritten to match: the approval service
    // still holds the hash it approved.
    assert_refused_after(&mut f, "strategy and hash rewritten", |db, id| async move {
        run(
            &db,
            "UPDATE tasks SET error_strategy = $2 WHERE id = $1",
            &[Bind::Int(id), Bind::Int(ErrorStrategy::Continue as i64)],
        )
        .await;
        let rewritten = SqlStore::new(db.clone())
            .task_plan_digest(id)
            .await
            .expect("digest")
            .expect("task")
            .approved();
        run(
            &db,
            "UPDATE tasks SET script_sha256 = $2 WHERE id = $1",
            &[Bind::Int(id), Bind::Text(&rewritten)],
        )
        .await;
    })
    .await;
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_approved_under_the_old_hash_fails_at_claim() {
    let mut f = Fixture::new().await;
    let task = f.waiting().await;
    // As a task stored before the migration: version 1, whatever its hash.
    run(
        &f.services.db,
        "UPDATE tasks SET plan_digest_version = 1 WHERE id = $1",
        &[Bind::Int(task.id)],
    )
    .await;
    let outcome = f.claim_outcome(task.id, task.attempt, "e1").await;
    assert_eq!(
        outcome,
        claim_execution_response::Outcome::Refused(ClaimRefusalReason::ApprovalMismatch as i32)
    );
    let detail = f.get(task.id).await;
    assert_eq!(
        status(detail.task.as_ref().expect("task")),
        TaskStatus::ExecutionFailed
    );
    assert!(
        detail
            .timeline
            .iter()
            .any(|e| e.kind == TimelineEntryKind::Failed as i32
                && e.comment.contains("older plan format; initiate again")),
        "{:?}",
        detail.timeline
    );
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_changed_after_its_preview_is_not_submitted() {
    let mut f = Fixture::new().await;
    let analysis_id = f.analysis().await;
    run(
        &f.services.db,
        "UPDATE analysis_statements SET sql_text = sql_text || ' COMMENT ''x''' \
         WHERE analysis_id = $1",
        &[Bind::Text(&analysis_id)],
    )
    .await;
    let refused = f
        .alice
        .submit_task(SubmitTaskRequest {
            analysis_id: analysis_id.clone(),
            execution_mode: ExecutionMode::Immediate as i32,
            error_strategy: ErrorStrategy::Abort as i32,
            ..Default::default()
        })
        .await
        .expect_err("a plan that is not the previewed one");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("no longer matches its preview"),
        "{refused:?}"
    );
    assert_eq!(f.services.count("tasks").await, 0);
    f.database.drop_all().await;
}
