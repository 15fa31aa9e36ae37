//! Issue 7's execution must-shows on separate services over PostgreSQL + RabbitMQ + MariaDB:
//! the error strategies with a table that really fails, drift of a source or a shadow between
//! analysis and execution, and one execute message delivered twice to two executors.

use std::time::Duration;

use shadowsync_proto::task::v1::*;
use shadowsync_system_tests::api::{Team, kinds};
use shadowsync_system_tests::cluster::{Cluster, ClusterOptions};
use shadowsync_system_tests::target::{self, MariaDb};

use TableExecutionStatus::{Failed, NotRun, Succeeded};

/// Three tables in plan order; the middle one's ALTER fails on the server: the source has a
/// unique key its shadow lacks, and the shadow holds duplicates, so adding the key is refused
/// (1062) although the shadow is exactly in its analysed state.
const THREE_TABLES: &str = "\
    CREATE TABLE a_first (id INT PRIMARY KEY, v INT);\n\
    CREATE TABLE b_dupes (id INT PRIMARY KEY, email VARCHAR(64), UNIQUE KEY by_email (email));\n\
    CREATE TABLE _test_b_dupes (id INT PRIMARY KEY, email VARCHAR(64));\n\
    INSERT INTO _test_b_dupes VALUES (1, 'same'), (2, 'same');\n\
    CREATE TABLE c_last (id INT PRIMARY KEY, w VARCHAR(10))";

fn outcome(table: &str, status: TableExecutionStatus) -> (String, TableExecutionStatus) {
    (table.to_string(), status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_stops_at_the_failing_table_and_continue_goes_on() {
    let cluster = Cluster::start().await;
    let mut team = Team::new(&cluster.endpoints()).await;
    let abort_db = MariaDb::create("ss_sys_abort").await;
    let continue_db = MariaDb::create("ss_sys_continue").await;
    abort_db.exec(THREE_TABLES).await;
    continue_db.exec(THREE_TABLES).await;

    let abort = team
        .submit_approved(&abort_db.name, ErrorStrategy::Abort)
        .await;
    let cont = team
        .submit_approved(&continue_db.name, ErrorStrategy::Continue)
        .await;

    team.alice
        .wait_status(abort, TaskStatus::ExecutionFailed)
        .await;
    assert_eq!(
        team.alice.table_outcomes(abort).await,
        vec![
            outcome("a_first", Succeeded),
            outcome("b_dupes", Failed),
            outcome("c_last", NotRun)
        ]
    );
    target::assert_in_sync(&abort_db, "a_first", "_test_a_first").await;
    assert!(
        target::show_create(&abort_db, "_test_c_last")
            .await
            .is_none()
    );

    team.alice
        .wait_status(cont, TaskStatus::ExecutionFailed)
        .await;
    assert_eq!(
        team.alice.table_outcomes(cont).await,
        vec![
            outcome("a_first", Succeeded),
            outcome("b_dupes", Failed),
            outcome("c_last", Succeeded)
        ]
    );
    target::assert_in_sync(&continue_db, "c_last", "_test_c_last").await;

    // The failure carries the database's own error, in the table row and as an ERROR log.
    for task in [abort, cont] {
        let failed = team
            .alice
            .task_tables(task)
            .await
            .into_iter()
            .find(|table| table.source_table == "b_dupes")
            .expect("b_dupes row");
        assert_eq!(failed.error_code, "1062", "{failed:?}");
        let alerts = team.alice.logs(task, LogLevelFilter::Alert).await;
        assert!(
            alerts
                .iter()
                .any(|entry| entry.level == LogLevel::Error as i32
                    && entry.table == "b_dupes"
                    && entry.message.contains("1062")),
            "{alerts:#?}"
        );
    }
    abort_db.drop_database().await;
    continue_db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_between_analysis_and_execution_fails_only_the_drifted_tables() {
    let cluster = Cluster::start().await;
    let mut team = Team::new(&cluster.endpoints()).await;
    let db = MariaDb::create("ss_sys_drift").await;
    db.exec(
        "CREATE TABLE orders (id INT PRIMARY KEY, total INT);\n\
         CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20), tier INT);\n\
         CREATE TABLE _test_customers (id INT PRIMARY KEY, name VARCHAR(20));\n\
         CREATE TABLE steady (id INT PRIMARY KEY)",
    )
    .await;

    let analysis = team.alice.analyse(&team.connection, &db.name).await;
    let task = team
        .alice
        .submit(&analysis.id, ErrorStrategy::Continue)
        .await;
    // Underneath the approved plan: a source changes, and a shadow moves to a third state.
    db.exec("ALTER TABLE orders ADD COLUMN extra INT").await;
    db.exec("ALTER TABLE _test_customers ADD COLUMN odd INT")
        .await;
    team.bob.approve(task.id).await;
    team.alice
        .wait_status(task.id, TaskStatus::ExecutionFailed)
        .await;

    let tables = team.alice.task_tables(task.id).await;
    let row = |name: &str| {
        tables
            .iter()
            .find(|table| table.source_table == name)
            .unwrap_or_else(|| panic!("{name} row"))
    };
    assert_eq!(row("orders").status, Failed as i32);
    assert!(
        row("orders")
            .error_message
            .contains("source table changed since analysis; initiate the task again"),
        "{:?}",
        row("orders")
    );
    assert_eq!(row("customers").status, Failed as i32);
    assert!(
        row("customers")
            .error_message
            .contains("initiate the task again"),
        "{:?}",
        row("customers")
    );
    assert_eq!(row("steady").status, Succeeded as i32);
    // Nothing was applied to the drifted tables.
    assert!(target::show_create(&db, "_test_orders").await.is_none());
    let shadow = target::show_create(&db, "_test_customers")
        .await
        .expect("shadow");
    assert!(
        shadow.contains("`odd`") && !shadow.contains("`tier`"),
        "{shadow}"
    );
    let alerts = team.alice.logs(task.id, LogLevelFilter::Alert).await;
    assert!(
        alerts.iter().any(|entry| entry.table == "orders"
            && entry
                .message
                .contains("source table changed since analysis")),
        "{alerts:#?}"
    );
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_twice_to_two_executors_is_executed_once() {
    let mut cluster = Cluster::start_with(ClusterOptions::executors(0)).await;
    let mut team = Team::new(&cluster.endpoints()).await;
    let db = MariaDb::create("ss_sys_twice").await;
    db.exec(
        "CREATE TABLE orders (id INT PRIMARY KEY, total INT);\n\
         CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20), tier INT, KEY by_tier (tier));\n\
         CREATE TABLE _test_customers (id INT PRIMARY KEY, name VARCHAR(10))",
    )
    .await;
    let id = team.submit_approved(&db.name, ErrorStrategy::Abort).await;
    // With no executor running, the dispatched message waits on the queue...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !kinds(&team.alice.timeline(id).await).contains(&TimelineEntryKind::Dispatched) {
        assert!(tokio::time::Instant::now() < deadline, "never dispatched");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let priority =
        u8::try_from(team.alice.get_task(id).await.task.expect("task").priority).expect("priority");
    assert!((1..=10).contains(&priority), "priority {priority}");
    // ...and the broker delivers a copy of it too (at-least-once delivery, or a re-publish).
    cluster.publish_execute(id, 1, priority).await;
    cluster.wait_execute_queue_ready(2).await;

    cluster.add_executors(2).await;
    team.alice
        .wait_status(id, TaskStatus::ExecutionSucceeded)
        .await;
    target::assert_in_sync(&db, "orders", "_test_orders").await;
    target::assert_in_sync(&db, "customers", "_test_customers").await;

    // Stopping the executors gracefully hands back any delivery still held: an empty queue
    // afterwards proves both copies were taken and settled.
    for executor in &mut cluster.executors {
        executor.stop(Duration::from_secs(40));
    }
    assert_eq!(cluster.execute_queue_ready().await, 0);

    // One claim, one execution, and every statement ran once.
    let claims = team.alice.logs(id, LogLevelFilter::All).await;
    let claimed = claims
        .iter()
        .filter(|entry| entry.message.contains(" claimed by "))
        .count();
    assert_eq!(claimed, 1, "{claims:#?}");
    let timeline = kinds(&team.alice.timeline(id).await);
    let started = timeline
        .iter()
        .filter(|kind| **kind == TimelineEntryKind::ExecutionStarted)
        .count();
    assert_eq!(started, 1, "{timeline:?}");
    let statements = team
        .alice
        .get_task(id)
        .await
        .task
        .expect("task")
        .statement_count;
    let logs = team.alice.logs(id, LogLevelFilter::All).await;
    let ran = logs
        .iter()
        .filter(|entry| {
            entry.message.starts_with("statement ") && entry.message.contains(" started: ")
        })
        .count();
    assert_eq!(ran, statements as usize, "{logs:#?}");
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_tampered_with_in_the_task_store_never_reaches_the_target() {
    use sqlx::Connection as _;

    let mut cluster = Cluster::start_with(ClusterOptions::executors(0)).await;
    let mut team = Team::new(&cluster.endpoints()).await;
    let db = MariaDb::create("ss_sys_tamper").await;
    db.exec(
        "CREATE TABLE orders (id INT PRIMARY KEY, total INT);\n\
         INSERT INTO orders VALUES (1, 10);\n\
         CREATE TABLE t1 (id INT PRIMARY KEY); CREATE TABLE t2 (id INT PRIMARY KEY);\n\
         CREATE TABLE t3 (id INT PRIMARY KEY); CREATE TABLE t4 (id INT PRIMARY KEY)",
    )
    .await;
    let orders_before = target::show_create(&db, "orders").await;
    let connection = team.connection.clone();
    let analysis_tables = ["t1", "t2", "t3", "t4"];
    // CONTINUE, so that every tampered statement reaches the executor's guard.
    let submitted = team
        .alice
        .submit_tables_with(
            &connection,
            &db.name,
            &analysis_tables,
            ErrorStrategy::Continue,
        )
        .await;
    assert_eq!(submitted.statement_count, 4);
    let id = submitted.id;
    team.bob.approve(id).await;
    team.alice.wait_dispatched(id).await;

    // Someone with write access to the task store (not the approval's) swaps the approved
    // statements after the approval: the claim hashes the statements it would serve and finds
    // they are not what was approved (the executor's own guard, the second line, is tested
    // statement by statement in services/executor).
    let tampered = [
        "DROP TABLE `orders`",
        "ALTER TABLE `orders` ADD COLUMN `x` int",
        "INSERT INTO `orders` VALUES (2, 20)",
        "CREATE TABLE `_test_t4` (`id` int NOT NULL, PRIMARY KEY (`id`)); DROP TABLE `orders`",
    ];
    let mut store = sqlx::PgConnection::connect(cluster.store_url())
        .await
        .expect("task store");
    for (index, sql) in tampered.iter().enumerate() {
        let changed = sqlx::query(
            "UPDATE task.task_statements SET sql_text = $1 WHERE task_id = $2 AND script_index = $3",
        )
        .bind(*sql)
        .bind(id)
        .bind(i64::try_from(index).expect("index"))
        .execute(&mut store)
        .await
        .expect("tamper")
        .rows_affected();
        assert_eq!(changed, 1);
    }
    let _ = store.close().await;

    cluster.add_executor().await;
    team.alice
        .wait_status(id, TaskStatus::ExecutionFailed)
        .await;
    let outcomes = team.alice.table_outcomes(id).await;
    assert!(
        outcomes.iter().all(|(_, status)| *status == NotRun),
        "{outcomes:?}"
    );
    assert_eq!(target::show_create(&db, "orders").await, orders_before);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(rows, 1);
    for table in analysis_tables {
        let shadow = format!("_test_{table}");
        assert!(
            target::show_create(&db, &shadow).await.is_none(),
            "{shadow}"
        );
    }
    let timeline = team.alice.timeline(id).await;
    assert!(
        !kinds(&timeline).contains(&TimelineEntryKind::ExecutionStarted),
        "{timeline:#?}"
    );
    let logs = team.alice.logs(id, LogLevelFilter::All).await;
    let explained = timeline
        .iter()
        .map(|entry| entry.comment.as_str())
        .chain(logs.iter().map(|entry| entry.message.as_str()))
        .any(|text| text.contains("does not match this task's script"));
    assert!(explained, "{timeline:#?}\n{logs:#?}");
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_execute_messages_are_dead_lettered_and_the_executor_goes_on() {
    use shadowsync_common::queue::Message;

    let mut cluster = Cluster::start_with(ClusterOptions::executors(0)).await;
    let mut team = Team::new(&cluster.endpoints()).await;
    let db = MariaDb::create("ss_sys_poison").await;
    db.exec("CREATE TABLE orders (id INT PRIMARY KEY)").await;
    // Queued ahead of a real task: a payload that is no ExecuteTask, and one naming no task.
    cluster
        .publish_raw(&Message::new(
            "shadowsync.common.v1.ExecuteTask",
            vec![0xff_u8, 0xff, 0xff, 0xff],
        ))
        .await;
    cluster.publish_execute(987_654_321, 1, 10).await;
    let id = team.submit_approved(&db.name, ErrorStrategy::Abort).await;
    cluster.wait_execute_queue_ready(3).await;

    cluster.add_executor().await;
    team.alice
        .wait_status(id, TaskStatus::ExecutionSucceeded)
        .await;
    target::assert_in_sync(&db, "orders", "_test_orders").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while cluster.dead_letters().await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bad messages not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cluster.dead_letters().await, 2);
    assert_eq!(cluster.execute_queue_ready().await, 0);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_swapped_for_another_valid_one_after_approval_never_runs() {
    use sqlx::Connection as _;

    let mut cluster = Cluster::start_with(ClusterOptions::executors(0)).await;
    let mut team = Team::new(&cluster.endpoints()).await;
    let db = MariaDb::create("ss_sys_swap").await;
    db.exec("CREATE TABLE t1 (id INT PRIMARY KEY)").await;
    let id = team.submit_approved(&db.name, ErrorStrategy::Abort).await;
    team.alice.wait_dispatched(id).await;
    // A statement the guard accepts (a CREATE of this task's shadow) but nobody approved.
    let mut store = sqlx::PgConnection::connect(cluster.store_url())
        .await
        .expect("task store");
    sqlx::query("UPDATE task.task_statements SET sql_text = $1 WHERE task_id = $2")
        .bind("CREATE TABLE `_test_t1` (`id` int NOT NULL, `evil` int, PRIMARY KEY (`id`))")
        .bind(id)
        .execute(&mut store)
        .await
        .expect("tamper");
    let _ = store.close().await;

    cluster.add_executor().await;
    let task = team
        .alice
        .wait_task(id, "a final status", |task| {
            shadowsync_system_tests::api::is_final(shadowsync_system_tests::api::status(task))
        })
        .await;
    assert_ne!(
        shadowsync_system_tests::api::status(&task),
        TaskStatus::ExecutionSucceeded
    );
    // The approval binds the exact script: what it did not approve never runs.
    assert!(
        target::show_create(&db, "_test_t1").await.is_none(),
        "an unapproved statement ran"
    );
    db.drop_database().await;
}
