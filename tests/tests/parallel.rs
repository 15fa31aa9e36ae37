//! `executor.table_parallelism` through the whole system (PostgreSQL + RabbitMQ + MariaDB):
//! while one shadow's ALTER waits on a reader's metadata lock, the tables of the other lanes
//! reach SUCCEEDED; tables linked by a key wait their turn in one lane.

use std::time::Duration;

use shadowsync_proto::task::v1::*;
use shadowsync_system_tests::api::Team;
use shadowsync_system_tests::cluster::{Cluster, ClusterOptions};
use shadowsync_system_tests::target::{self, MariaDb, Reader};

use TableExecutionStatus::{Running, Succeeded};

const TABLES: &str = "\
    CREATE TABLE held (id INT PRIMARY KEY, v INT);\n\
    CREATE TABLE _test_held (id INT PRIMARY KEY);\n\
    CREATE TABLE free_one (id INT PRIMARY KEY, w VARCHAR(10));\n\
    CREATE TABLE free_two (id INT PRIMARY KEY, d DATE);\n\
    CREATE TABLE parent (id INT PRIMARY KEY, code INT);\n\
    CREATE TABLE _test_parent (id INT PRIMARY KEY);\n\
    CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, KEY by_parent (parent_id),\n\
      CONSTRAINT fk_child FOREIGN KEY (parent_id) REFERENCES parent (id))";

fn status_of(outcomes: &[(String, TableExecutionStatus)], table: &str) -> TableExecutionStatus {
    outcomes
        .iter()
        .find(|(name, _)| name == table)
        .map(|(_, status)| *status)
        .unwrap_or(TableExecutionStatus::Unspecified)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_tables_finish_while_one_lane_is_held() {
    let cluster = Cluster::start_with(ClusterOptions {
        table_parallelism: 3,
        ..ClusterOptions::default()
    })
    .await;
    let mut team = Team::new(&cluster.endpoints()).await;
    let db = MariaDb::create("ss_sys_parallel").await;
    db.exec(TABLES).await;

    // Two readers hold `held`'s and `parent`'s shadows: their ALTERs wait mid-statement.
    let reader = Reader::hold(&db, &["_test_held", "_test_parent"]).await;
    let id = team.submit_approved(&db.name, ErrorStrategy::Abort).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let outcomes = team.alice.table_outcomes(id).await;
        let free = ["free_one", "free_two"]
            .iter()
            .all(|table| status_of(&outcomes, table) == Succeeded);
        if free && status_of(&outcomes, "held") == Running {
            // `child` references `parent`'s shadow: it waits in `parent`'s lane.
            assert_eq!(status_of(&outcomes, "parent"), Running, "{outcomes:?}");
            assert_ne!(status_of(&outcomes, "child"), Running, "{outcomes:?}");
            assert_ne!(status_of(&outcomes, "child"), Succeeded, "{outcomes:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the free tables never finished while `held` waited: {outcomes:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reader.release().await;

    team.alice
        .wait_status(id, TaskStatus::ExecutionSucceeded)
        .await;
    for table in ["held", "free_one", "free_two", "parent"] {
        target::assert_in_sync(&db, table, &format!("_test_{table}")).await;
    }
    let child = target::show_create(&db, "_test_child")
        .await
        .expect("child shadow");
    assert!(child.contains("REFERENCES `_test_parent`"), "{child}");
    let logs = team.alice.logs(id, LogLevelFilter::All).await;
    assert!(
        logs.iter()
            .any(|entry| entry.message == "4 independent lanes of tables, 3 at once"),
        "{logs:#?}"
    );
    db.drop_database().await;
}
