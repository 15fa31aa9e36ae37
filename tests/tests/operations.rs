//! What only separate services can show: two executors sharing the execute queue in template
//! priority order, each service restarted mid-journey with nothing lost, and an executor stopped
//! as Kubernetes stops it, handing its task back after its grace.

use std::collections::BTreeMap;
use std::time::Duration;

use shadowsync_proto::approval::v1::*;
use shadowsync_proto::task::v1::*;
use shadowsync_system_tests::api::{self, PATIENCE, Team, User, kinds};
use shadowsync_system_tests::cluster::{Cluster, ClusterOptions};
use shadowsync_system_tests::journey::approval::create_template;
use shadowsync_system_tests::target::{self, MariaDb, Reader};

fn auto_approve() -> TemplateNode {
    TemplateNode {
        name: "auto".into(),
        auto_approve: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_executors_share_the_queue_in_priority_order() {
    let mut cluster = Cluster::start_with(ClusterOptions::executors(0)).await;
    let endpoints = cluster.endpoints();
    let mut team = Team::new(&endpoints).await;
    // Two connections to the same server: the first template (rank 1) matches one of them, the
    // second (rank 2) the other, so their tasks differ only in priority.
    let routine = team.admin.add_connection("test").await;
    team.admin.grant("alice", &routine).await;
    let urgent = team.connection.clone();
    create_template(&mut team.admin, "urgent", &urgent, vec![auto_approve()]).await;
    create_template(&mut team.admin, "routine", &routine, vec![auto_approve()]).await;

    let db = MariaDb::create("ss_sys_priority").await;
    db.exec(
        "CREATE TABLE u1 (id INT PRIMARY KEY, v INT); CREATE TABLE _test_u1 (id INT PRIMARY KEY);\n\
         CREATE TABLE u2 (id INT PRIMARY KEY, v INT); CREATE TABLE _test_u2 (id INT PRIMARY KEY);\n\
         CREATE TABLE u3 (id INT PRIMARY KEY, v INT); CREATE TABLE _test_u3 (id INT PRIMARY KEY);\n\
         CREATE TABLE r1 (id INT PRIMARY KEY); CREATE TABLE r2 (id INT PRIMARY KEY);\n\
         CREATE TABLE r3 (id INT PRIMARY KEY)",
    )
    .await;
    // The routine tasks are queued first; priority must still put the urgent ones ahead.
    let mut priorities = BTreeMap::new();
    for (connection, table) in [
        (&routine, "r1"),
        (&routine, "r2"),
        (&routine, "r3"),
        (&urgent, "u1"),
        (&urgent, "u2"),
        (&urgent, "u3"),
    ] {
        let task = team
            .alice
            .submit_tables(connection, &db.name, &[table])
            .await;
        team.alice.wait_dispatched(task.id).await;
        let task = team.alice.get_task(task.id).await.task.expect("task");
        priorities.insert(task.id, (table, task.priority));
    }
    let urgent_ids: Vec<i64> = priorities
        .iter()
        .filter(|(_, (table, _))| table.starts_with('u'))
        .map(|(id, _)| *id)
        .collect();
    for (table, priority) in priorities.values() {
        let expected = if table.starts_with('u') { 10 } else { 9 };
        assert_eq!(*priority, expected, "{table}");
    }
    cluster.wait_execute_queue_ready(6).await;

    // Every urgent ALTER waits for a reader's metadata lock, so each executor stays on the
    // first task it claims: what is executing then shows who took what.
    let reader = Reader::hold(&db, &["_test_u1", "_test_u2", "_test_u3"]).await;
    cluster.add_executors(2).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let executing = loop {
        let mut executing = Vec::new();
        for id in priorities.keys() {
            let task = team.alice.get_task(*id).await.task.expect("task");
            if api::status(&task) == TaskStatus::Executing {
                executing.push(*id);
            }
        }
        if executing.len() >= 2 {
            break executing;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "two executors never ran two tasks at once: {executing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Two tasks at once (each executor runs one at a time), both urgent although the routine
    // ones were queued first, and no routine task claimed.
    assert_eq!(executing.len(), 2, "{executing:?}");
    assert!(
        executing.iter().all(|id| urgent_ids.contains(id)),
        "{executing:?} {priorities:?}"
    );
    let mut executors = Vec::new();
    for id in &executing {
        let timeline = team.alice.timeline(*id).await;
        let started = timeline
            .iter()
            .find(|entry| entry.kind == TimelineEntryKind::ExecutionStarted as i32)
            .expect("started");
        executors.push(started.executor_id.clone());
    }
    assert_ne!(executors[0], executors[1], "one executor ran both");
    for (id, (table, _)) in &priorities {
        if table.starts_with('r') {
            let timeline = kinds(&team.alice.timeline(*id).await);
            assert!(!timeline.contains(&TimelineEntryKind::ExecutionStarted));
        }
    }

    reader.release().await;
    for (id, (table, _)) in &priorities {
        team.alice
            .wait_status(*id, TaskStatus::ExecutionSucceeded)
            .await;
        target::assert_in_sync(&db, table, &format!("_test_{table}")).await;
        let timeline = kinds(&team.alice.timeline(*id).await);
        let claims = timeline
            .iter()
            .filter(|kind| **kind == TimelineEntryKind::ExecutionStarted)
            .count();
        assert_eq!(claims, 1, "task {id} claimed {claims} times");
    }
    db.drop_database().await;
}

/// Approves task `id`'s approval directly at the approval service.
async fn approve_at_approval_service(user: &mut User, approval_id: &str) {
    user.approval
        .approve(ApproveRequest {
            approval_id: approval_id.to_string(),
            comment: "approved while the task service was down".into(),
            ..Default::default()
        })
        .await
        .expect("approve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_restarts_mid_journey_with_nothing_lost() {
    let mut cluster = Cluster::start().await;
    let endpoints = cluster.endpoints();
    let mut team = Team::new(&endpoints).await;
    let db = MariaDb::create("ss_sys_restart").await;
    db.exec(
        "CREATE TABLE t1 (id INT PRIMARY KEY); CREATE TABLE t2 (id INT PRIMARY KEY);\n\
         CREATE TABLE t3 (id INT PRIMARY KEY); CREATE TABLE t4 (id INT PRIMARY KEY)",
    )
    .await;
    let connection = team.connection.clone();

    // Analysis service: stateless, so a restart only has to serve the next analysis.
    cluster.analysis.restart();
    cluster.analysis.wait_serving().await;
    let first = team
        .alice
        .submit_tables(&connection, &db.name, &["t1"])
        .await;

    // Task service down while the approval is decided: the decision waits on the broker.
    cluster.task.kill();
    approve_at_approval_service(&mut team.bob, &first.approval_id).await;
    cluster.task.restart();
    cluster.task.wait_serving().await;
    team.alice
        .wait_status(first.id, TaskStatus::ExecutionSucceeded)
        .await;
    target::assert_in_sync(&db, "t1", "_test_t1").await;

    // Approval service restarted while a task waits for approval: the request is still there.
    let second = team
        .alice
        .submit_tables(&connection, &db.name, &["t2"])
        .await;
    cluster.approval.kill();
    cluster.approval.restart();
    cluster.approval.wait_serving().await;
    let waiting = team.alice.get_task(second.id).await.task.expect("task");
    assert_eq!(api::status(&waiting), TaskStatus::Approving);
    team.bob.approve(second.id).await;
    team.alice
        .wait_status(second.id, TaskStatus::ExecutionSucceeded)
        .await;
    target::assert_in_sync(&db, "t2", "_test_t2").await;

    // No executor while a task is dispatched: the message waits on the queue.
    cluster.executors[0].kill();
    let third = team
        .alice
        .submit_tables(&connection, &db.name, &["t3"])
        .await;
    team.bob.approve(third.id).await;
    team.alice.wait_dispatched(third.id).await;
    let waiting = team.alice.get_task(third.id).await.task.expect("task");
    assert_eq!(api::status(&waiting), TaskStatus::WaitForExecution);
    cluster.executors[0].restart();
    cluster.executors[0].wait_serving().await;
    team.alice
        .wait_status(third.id, TaskStatus::ExecutionSucceeded)
        .await;
    target::assert_in_sync(&db, "t3", "_test_t3").await;

    // Task service restarted while approving, then the journey goes on through it.
    let fourth = team
        .alice
        .submit_tables(&connection, &db.name, &["t4"])
        .await;
    cluster.task.restart();
    cluster.task.wait_serving().await;
    let waiting = team.alice.get_task(fourth.id).await.task.expect("task");
    assert_eq!(api::status(&waiting), TaskStatus::Approving);
    team.bob.approve(fourth.id).await;
    team.alice
        .wait_status(fourth.id, TaskStatus::ExecutionSucceeded)
        .await;
    target::assert_in_sync(&db, "t4", "_test_t4").await;

    // Task service killed while an executor is mid-statement (held by a reader's metadata
    // lock): the executor's reports wait for it to come back, well within the lease.
    let reader = Reader::hold(&db, &["_test_t1"]).await;
    db.exec("ALTER TABLE t1 ADD COLUMN v INT").await;
    let fifth = team
        .alice
        .submit_tables(&connection, &db.name, &["t1"])
        .await;
    team.bob.approve(fifth.id).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !target::is_waiting_for_metadata_lock(&db).await {
        assert!(tokio::time::Instant::now() < deadline, "ALTER never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.task.kill();
    reader.release().await;
    cluster.task.restart();
    cluster.task.wait_serving().await;
    team.alice
        .wait_status(fifth.id, TaskStatus::ExecutionSucceeded)
        .await;
    target::assert_in_sync(&db, "t1", "_test_t1").await;
    let outcomes = team.alice.table_outcomes(fifth.id).await;
    assert_eq!(
        outcomes,
        vec![("t1".to_string(), TableExecutionStatus::Succeeded)]
    );

    // Every task ran exactly once.
    for task in [&first, &second, &third, &fourth, &fifth] {
        let timeline = kinds(&team.alice.timeline(task.id).await);
        let claims = timeline
            .iter()
            .filter(|kind| **kind == TimelineEntryKind::ExecutionStarted)
            .count();
        assert_eq!(claims, 1, "task {} claimed {claims} times", task.id);
    }
    db.drop_database().await;
}

/// Log entries of statements started on `table`.
fn statements_started(logs: &[TaskLogEntry], table: &str) -> usize {
    logs.iter()
        .filter(|entry| {
            entry.table == table
                && entry.message.starts_with("statement ")
                && entry.message.contains(" started: ")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_killed_mid_statement_is_replaced_once_its_lease_lapses() {
    // A short lease: what is tested is that it lapses, not how long it lasts.
    let mut cluster = Cluster::start_with(ClusterOptions {
        execution_lease_seconds: 6,
        ..ClusterOptions::default()
    })
    .await;
    let mut team = Team::new(&cluster.endpoints()).await;
    let db = MariaDb::create("ss_sys_crash").await;
    db.exec(
        "CREATE TABLE a_first (id INT PRIMARY KEY);\n\
         CREATE TABLE b_held (id INT PRIMARY KEY, v INT, w INT);\n\
         CREATE TABLE _test_b_held (id INT PRIMARY KEY);\n\
         CREATE TABLE c_last (id INT PRIMARY KEY)",
    )
    .await;
    // The ALTER of `_test_b_held` waits for this reader's metadata lock: the executor is
    // reliably mid-statement when it is killed.
    let reader = Reader::hold(&db, &["_test_b_held"]).await;
    let id = team.submit_approved(&db.name, ErrorStrategy::Abort).await;
    team.alice
        .wait_task(id, "b_held running", |task| {
            task.progress.as_ref().is_some_and(|p| p.tables_done >= 1)
        })
        .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !target::is_waiting_for_metadata_lock(&db).await {
        assert!(tokio::time::Instant::now() < deadline, "ALTER never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.executors[0].kill();
    cluster.add_executor().await;
    reader.release().await;

    // The task service notices the lapsed lease and re-dispatches; the new executor resumes
    // after the recorded table and finds or puts the held one in its target state.
    team.alice
        .wait_status(id, TaskStatus::ExecutionSucceeded)
        .await;
    for table in ["a_first", "b_held", "c_last"] {
        target::assert_in_sync(&db, table, &format!("_test_{table}")).await;
    }
    let outcomes: BTreeMap<String, TableExecutionStatus> =
        team.alice.table_outcomes(id).await.into_iter().collect();
    assert_eq!(outcomes["a_first"], TableExecutionStatus::Succeeded);
    assert!(
        matches!(
            outcomes["b_held"],
            TableExecutionStatus::Succeeded | TableExecutionStatus::AlreadyInSync
        ),
        "{outcomes:?}"
    );
    assert_eq!(outcomes["c_last"], TableExecutionStatus::Succeeded);
    let timeline = team.alice.timeline(id).await;
    let executors: Vec<&str> = timeline
        .iter()
        .filter(|entry| entry.kind == TimelineEntryKind::ExecutionStarted as i32)
        .map(|entry| entry.executor_id.as_str())
        .collect();
    assert_eq!(executors.len(), 2, "{timeline:#?}");
    assert_ne!(executors[0], executors[1]);
    assert!(kinds(&timeline).contains(&TimelineEntryKind::LeaseLapsed));
    let logs = team.alice.logs(id, LogLevelFilter::All).await;
    assert_eq!(statements_started(&logs, "a_first"), 1, "{logs:#?}");
    assert_eq!(statements_started(&logs, "c_last"), 1, "{logs:#?}");
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_executor_hands_its_task_back_after_its_grace_and_another_finishes_it() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        execution_lease_seconds: 6,
        shutdown_grace_seconds: 1,
        ..ClusterOptions::default()
    })
    .await;
    let mut team = Team::new(&cluster.endpoints()).await;
    let db = MariaDb::create("ss_sys_stop").await;
    db.exec(
        "CREATE TABLE a_held (id INT PRIMARY KEY, v INT);\n\
         CREATE TABLE _test_a_held (id INT PRIMARY KEY);\n\
         CREATE TABLE b_next (id INT PRIMARY KEY)",
    )
    .await;
    let reader = Reader::hold(&db, &["_test_a_held"]).await;
    let id = team.submit_approved(&db.name, ErrorStrategy::Abort).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !target::is_waiting_for_metadata_lock(&db).await {
        assert!(tokio::time::Instant::now() < deadline, "ALTER never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SIGTERM, as Kubernetes sends it; the held statement outlasts the 1 s grace (by 3 s, so
    // that a slow start of the shutdown cannot make it look shorter).
    let mut executor = cluster.executors.remove(0);
    let stopped = tokio::task::spawn_blocking(move || {
        executor.stop(Duration::from_secs(60));
        executor
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    reader.release().await;
    let _stopped = stopped.await.expect("executor stopped");

    // The statement in flight finished and was recorded; `b_next` was handed back untouched.
    let outcomes: BTreeMap<String, TableExecutionStatus> =
        team.alice.table_outcomes(id).await.into_iter().collect();
    assert_eq!(
        outcomes["a_held"],
        TableExecutionStatus::Succeeded,
        "{outcomes:?}"
    );
    assert_ne!(
        outcomes["b_next"],
        TableExecutionStatus::Succeeded,
        "{outcomes:?}"
    );
    assert!(target::show_create(&db, "_test_b_next").await.is_none());
    let task = team.alice.get_task(id).await.task.expect("task");
    assert!(!api::is_final(api::status(&task)), "{task:?}");
    let logs = team.alice.logs(id, LogLevelFilter::All).await;
    assert!(
        logs.iter().any(|entry| entry.level == LogLevel::Warn as i32
            && entry.message.contains("handed back between statements")),
        "{logs:#?}"
    );

    cluster.add_executor().await;
    team.alice
        .wait_status(id, TaskStatus::ExecutionSucceeded)
        .await;
    for table in ["a_held", "b_next"] {
        target::assert_in_sync(&db, table, &format!("_test_{table}")).await;
    }
    let logs = team.alice.logs(id, LogLevelFilter::All).await;
    assert_eq!(statements_started(&logs, "a_held"), 1, "{logs:#?}");
    assert_eq!(statements_started(&logs, "b_next"), 1, "{logs:#?}");
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_service_killed_right_after_a_decision_loses_nothing() {
    let mut cluster = Cluster::start().await;
    let mut team = Team::new(&cluster.endpoints()).await;
    let db = MariaDb::create("ss_sys_decided").await;
    let tables = ["d1", "d2", "d3", "d4", "d5"];
    for table in tables {
        db.exec(&format!("CREATE TABLE {table} (id INT PRIMARY KEY)"))
            .await;
    }
    let connection = team.connection.clone();
    // Each round races the kill against the decision's outbox relay and the executor's claim
    // (which asks the approval service while the task still shows APPROVING): whichever wins,
    // the task must execute.
    for table in tables {
        let task = team
            .alice
            .submit_tables(&connection, &db.name, &[table])
            .await;
        team.bob.approve(task.id).await;
        cluster.approval.kill();
        cluster.approval.restart();
        cluster.approval.wait_serving().await;
        team.alice
            .wait_status(task.id, TaskStatus::ExecutionSucceeded)
            .await;
        target::assert_in_sync(&db, table, &format!("_test_{table}")).await;
    }
    db.drop_database().await;
}
