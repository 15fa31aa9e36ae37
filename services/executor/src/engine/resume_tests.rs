//! Resume after a crash, on the real MariaDB: a table whose shadow needs three ALTERs, with
//! the state a dead executor left behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shadowsync_proto::task::v1::{ErrorStrategy, ExecutionOutcome, TableExecutionStatus};

use super::tests::{Harness, TASK};
use super::*;
use crate::backend::{ClaimOutcome, PlanStatement, TableReport};
use crate::testing::TestDb;

/// A table whose shadow needs three ALTERs, with each step's fingerprint measured on a scratch
/// copy (fingerprints leave the table name out).
pub(super) async fn three_alters(db: &TestDb) -> PlanTable {
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, a int, b varchar(5), c date);\
         CREATE TABLE _test_t (id int PRIMARY KEY); CREATE TABLE scratch (id int PRIMARY KEY);",
    )
    .await;
    let shadow_fingerprint = db.fingerprint("_test_t").await.unwrap();
    let mut statements = Vec::new();
    for (i, column) in ["`a` int", "`b` varchar(5)", "`c` date"].iter().enumerate() {
        db.exec(&format!("ALTER TABLE scratch ADD COLUMN {column}"))
            .await;
        statements.push(PlanStatement {
            index: i as u32,
            sql: format!("ALTER TABLE `_test_t` ADD COLUMN {column}"),
            expected_fingerprint_after: db.fingerprint("scratch").await.unwrap(),
            script_index: i as u32,
        });
    }
    db.exec("DROP TABLE scratch").await;
    let source_fingerprint = db.fingerprint("t").await.unwrap();
    assert_eq!(statements[2].expected_fingerprint_after, source_fingerprint);
    PlanTable {
        ordinal: 0,
        source: "t".into(),
        shadow: "_test_t".into(),
        target_fingerprint: source_fingerprint.clone(),
        source_fingerprint,
        shadow_fingerprint,
        statements,
        depends_on: vec![],
        recorded_status: TableExecutionStatus::Pending,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_crash_mid_table_runs_only_the_rest() {
    let h = Harness::new("").await;
    let table = three_alters(&h.db).await;
    // Attempt 1 started the table and ran its first ALTER, then died.
    h.db.exec(&table.statements[0].sql).await;
    h.add(ErrorStrategy::Abort, vec![table]);
    let ClaimOutcome::Granted(_) = h.service.claim(TASK, 1, "executor-dead").await.unwrap() else {
        panic!("refused")
    };
    h.service.record(
        TASK,
        TableReport {
            source_table: "t".into(),
            status: TableExecutionStatus::Running,
            statements_done: 0,
            error_code: String::new(),
            error_message: String::new(),
            start_time: None,
            end_time: None,
            observed_shadow_fingerprint: String::new(),
        },
    );
    // The lease lapses; the sweeper re-dispatches attempt 2.
    let attempt = h.service.expire_lease_and_redispatch(TASK);
    let end = h.run(attempt, "executor-b").await;
    assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Succeeded));
    assert_eq!(h.status("t"), Some(TableExecutionStatus::Succeeded));
    h.assert_in_sync("t").await;
    let logs = h.logs();
    assert!(
        logs.iter()
            .any(|l| l.contains("resuming: statements 1 to 1 of 3")),
        "{logs:#?}"
    );
    assert!(
        !logs.iter().any(|l| l.contains("statement 1/3 started")),
        "{logs:#?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("statement 2/3 started")),
        "{logs:#?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("statement 3/3 started")),
        "{logs:#?}"
    );
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_last_statement_is_already_in_sync() {
    let h = Harness::new("").await;
    let table = three_alters(&h.db).await;
    for statement in &table.statements {
        h.db.exec(&statement.sql).await;
    }
    h.add(ErrorStrategy::Abort, vec![table]);
    let end = h.run(1, "executor-a").await;
    assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Succeeded));
    assert_eq!(h.status("t"), Some(TableExecutionStatus::AlreadyInSync));
    assert!(!h.logs().iter().any(|l| l.contains("statement 1/3 started")));
    h.db.drop_database().await;
}
