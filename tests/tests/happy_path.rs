//! Issue 7's first must-show on separate services over PostgreSQL + RabbitMQ + MariaDB: a task
//! with CREATE and UPDATE tables (and an unchanged one) is analysed, submitted, approved by
//! another user and executed to EXECUTION_SUCCEEDED, after which every shadow equals its source
//! and a new analysis finds nothing to do.

use shadowsync_proto::common::v1::TableAnalysisResult;
use shadowsync_proto::task::v1::*;
use shadowsync_system_tests::api::{self, kinds};
use shadowsync_system_tests::cluster::Cluster;
use shadowsync_system_tests::target::{self, MariaDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_update_tables_are_synced_through_the_separate_services() {
    let cluster = Cluster::start().await;
    let endpoints = cluster.endpoints();
    let mut admin = endpoints.user("root-admin", &["admin"]);
    let mut alice = endpoints.user("alice", &["dev"]);
    let mut bob = endpoints.user("bob", &["admin"]);

    let db = MariaDb::create("ss_sys_happy").await;
    db.exec(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, total DECIMAL(10,2) NOT NULL, \
           note VARCHAR(40) DEFAULT 'none', KEY by_total (total));\n\
         CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(80) NOT NULL, \
           email VARCHAR(120), UNIQUE KEY by_email (email));\n\
         CREATE TABLE _test_customers (id BIGINT PRIMARY KEY, name VARCHAR(40));\n\
         CREATE TABLE items (id INT PRIMARY KEY, sku CHAR(8) NOT NULL);\n\
         CREATE TABLE _test_items (id INT PRIMARY KEY, sku CHAR(8) NOT NULL)",
    )
    .await;

    let connection = admin.add_connection("test").await;
    admin.grant("alice", &connection).await;
    let analysis = alice.analyse(&connection, &db.name).await;
    assert_eq!(
        (
            analysis.create_count,
            analysis.update_count,
            analysis.no_action_count
        ),
        (1, 1, 1),
        "{analysis:?}"
    );
    let results: Vec<(String, String, TableAnalysisResult)> = alice
        .analysis_tables(&analysis.id)
        .await
        .into_iter()
        .map(|row| {
            let result = TableAnalysisResult::try_from(row.result).expect("result");
            (row.source_table, row.shadow_table, result)
        })
        .collect();
    for expected in [
        ("orders", "_test_orders", TableAnalysisResult::Create),
        ("customers", "_test_customers", TableAnalysisResult::Update),
        ("items", "_test_items", TableAnalysisResult::NoAction),
    ] {
        let expected = (expected.0.to_string(), expected.1.to_string(), expected.2);
        assert!(
            results.contains(&expected),
            "{expected:?} not in {results:?}"
        );
    }

    let task = alice.submit(&analysis.id, ErrorStrategy::Abort).await;
    assert_eq!(api::status(&task), TaskStatus::Approving);
    assert_eq!(task.tables_to_sync_count, 2);
    // Nothing runs before the approval: the shadow is still missing.
    assert!(target::show_create(&db, "_test_orders").await.is_none());

    bob.approve(task.id).await;
    let done = alice
        .wait_status(task.id, TaskStatus::ExecutionSucceeded)
        .await;
    let progress = done.progress.expect("progress");
    assert_eq!((progress.tables_total, progress.tables_succeeded), (2, 2));

    target::assert_in_sync(&db, "orders", "_test_orders").await;
    target::assert_in_sync(&db, "customers", "_test_customers").await;
    target::assert_in_sync(&db, "items", "_test_items").await;
    let mut outcomes = alice.table_outcomes(task.id).await;
    outcomes.sort();
    assert_eq!(
        outcomes,
        vec![
            ("customers".to_string(), TableExecutionStatus::Succeeded),
            ("orders".to_string(), TableExecutionStatus::Succeeded),
        ]
    );

    // The process timeline tells the whole story in order, the dispatch (exactly once) before
    // the claim it led to, whichever the task service heard of first.
    let timeline = kinds(&alice.timeline(task.id).await);
    assert_eq!(
        timeline
            .iter()
            .filter(|k| **k == TimelineEntryKind::Dispatched)
            .count(),
        1,
        "{timeline:?}"
    );
    let order = [
        TimelineEntryKind::Initiated,
        TimelineEntryKind::Approved,
        TimelineEntryKind::Dispatched,
        TimelineEntryKind::ExecutionStarted,
        TimelineEntryKind::TableFinished,
        TimelineEntryKind::Succeeded,
    ];
    let positions: Vec<Option<usize>> = order
        .iter()
        .map(|kind| timeline.iter().position(|k| k == kind))
        .collect();
    assert!(
        positions.iter().all(Option::is_some) && positions.is_sorted(),
        "{timeline:?}"
    );

    // Nothing worth an alert: in particular no shadow off its planned fingerprint.
    let alerts = alice.logs(task.id, LogLevelFilter::Alert).await;
    assert!(alerts.is_empty(), "{alerts:#?}");

    // The oracle: analysing again finds every shadow equal to its source.
    let again = alice.analyse(&connection, &db.name).await;
    assert_eq!(
        (
            again.create_count,
            again.update_count,
            again.no_action_count
        ),
        (0, 0, 3),
        "{again:?}"
    );
    db.drop_database().await;
}
