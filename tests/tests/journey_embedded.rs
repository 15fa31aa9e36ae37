//! Issue 8's journey on the embedded mode (`serve all` on SQLite and the in-process queue) with
//! a MariaDB target: each scenario of [`shadowsync_system_tests::journey`] on an embedded
//! server of its own.

use shadowsync_system_tests::cluster::Embedded;
use shadowsync_system_tests::journey::{abort, access, approval, expiry, follow};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_application() {
    let server = Embedded::start().await;
    access::permission_application(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_results_skips_and_logs() {
    let server = Embedded::start().await;
    access::analysis_results_skips_and_logs(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_node_template() {
    let server = Embedded::start().await;
    approval::two_node_template(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_and_initiate_again() {
    let server = Embedded::start().await;
    approval::rejection_and_initiate_again(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_execution() {
    let server = Embedded::start().await;
    approval::scheduled_execution(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_before_execution() {
    let server = Embedded::start().await;
    abort::abort_before_execution(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_while_executing() {
    let server = Embedded::start().await;
    abort::abort_while_executing(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiate_again_links_the_previous_analysis() {
    let server = Embedded::start().await;
    approval::initiate_again_links_the_previous_analysis(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expirations() {
    let server = Embedded::start().await;
    expiry::expirations(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_list() {
    let server = Embedded::start().await;
    follow::task_list(&server.endpoints()).await;
}

/// The embedded mode keeps everything (stores and the in-process queue) in SQLite under its
/// data directory: a crash while one task awaits approval and another waits for its scheduled
/// time loses neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_nothing() {
    use shadowsync_proto::task::v1::*;
    use shadowsync_system_tests::journey::timestamp_in;
    use shadowsync_system_tests::target::{self, MariaDb};

    let mut server = Embedded::start().await;
    let mut team = shadowsync_system_tests::api::Team::new(&server.endpoints()).await;
    let db = MariaDb::create("ss_sys_embedded_crash").await;
    db.exec("CREATE TABLE t1 (id INT PRIMARY KEY); CREATE TABLE t2 (id INT PRIMARY KEY)")
        .await;
    let connection = team.connection.clone();
    let approving = team
        .alice
        .submit_tables(&connection, &db.name, &["t1"])
        .await;
    let started = team
        .alice
        .task
        .start_analysis(StartAnalysisRequest {
            connection_id: connection.clone(),
            database: db.name.clone(),
            range: shadowsync_proto::common::v1::SyncRange::Partial as i32,
            tables: vec!["t2".into()],
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner()
        .analysis
        .expect("analysis");
    team.alice.wait_analysis(&started.id).await;
    // Far enough ahead that the crash comes while it waits, even on a slow machine.
    let at = timestamp_in(std::time::Duration::from_secs(8), false);
    let scheduled = team
        .alice
        .submit_with(SubmitTaskRequest {
            analysis_id: started.id.clone(),
            execution_mode: ExecutionMode::Scheduled as i32,
            scheduled_time: Some(at),
            error_strategy: ErrorStrategy::Abort as i32,
            ..Default::default()
        })
        .await;
    team.bob.approve(scheduled.id).await;
    team.alice
        .wait_status(scheduled.id, TaskStatus::WaitForExecution)
        .await;

    server.node.kill();
    server.node.restart();
    server.node.wait_serving().await;
    team.alice
        .wait_status(scheduled.id, TaskStatus::ExecutionSucceeded)
        .await;
    target::assert_in_sync(&db, "t2", "_test_t2").await;
    team.bob.approve(approving.id).await;
    team.alice
        .wait_status(approving.id, TaskStatus::ExecutionSucceeded)
        .await;
    target::assert_in_sync(&db, "t1", "_test_t1").await;
    db.drop_database().await;
}
