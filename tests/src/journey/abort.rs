//! Abort at each stage: while approving (the approval is cancelled), while waiting for a
//! scheduled execution, and while executing (the running statement finishes, the rest is
//! NOT_RUN, the task ends CANCELLED).

use std::time::Duration;

use shadowsync_proto::approval::v1::*;
use shadowsync_proto::task::v1::*;
use tonic::Code;

use super::timestamp_in;
use crate::api::{self, Endpoints, PATIENCE, Team, User};
use crate::target::{self, MariaDb};

async fn abort(user: &mut User, id: i64) -> Task {
    user.task
        .abort_task(AbortTaskRequest {
            task_id: id,
            comment: "changed my mind".into(),
            request_id: String::new(),
        })
        .await
        .expect("abort")
        .into_inner()
        .task
        .expect("task")
}

/// Aborting while approving cancels the approval; while waiting for a scheduled execution it
/// never runs; a final task cannot be aborted again, and only its creator or an admin may abort.
pub async fn abort_before_execution(endpoints: &Endpoints) {
    let mut team = Team::new(endpoints).await;
    let db = MariaDb::create("ss_sys_abort_early").await;
    db.exec("CREATE TABLE orders (id INT PRIMARY KEY)").await;

    let analysis = team.alice.analyse(&team.connection, &db.name).await;
    let approving = team.alice.submit(&analysis.id, ErrorStrategy::Abort).await;
    let mut mallory = endpoints.user("mallory", &["dev"]);
    let refused = mallory
        .task
        .abort_task(AbortTaskRequest {
            task_id: approving.id,
            ..Default::default()
        })
        .await
        .expect_err("not hers");
    assert!(
        matches!(refused.code(), Code::PermissionDenied | Code::NotFound),
        "{refused:?}"
    );
    let cancelled = abort(&mut team.alice, approving.id).await;
    assert_eq!(api::status(&cancelled), TaskStatus::Cancelled);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let approval = team
            .admin
            .approval
            .get_approval(GetApprovalRequest {
                key: Some(get_approval_request::Key::ApprovalId(
                    approving.approval_id.clone(),
                )),
            })
            .await
            .expect("approval")
            .into_inner()
            .approval
            .expect("approval");
        if approval.status == ApprovalStatus::Cancelled as i32 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "approval never cancelled: {approval:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = team
        .alice
        .task
        .abort_task(AbortTaskRequest {
            task_id: approving.id,
            ..Default::default()
        })
        .await
        .expect_err("final");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");

    // Waiting: approved, scheduled an hour ahead.
    let fresh = team
        .alice
        .task
        .initiate_again(InitiateAgainRequest {
            task_id: approving.id,
            ..Default::default()
        })
        .await
        .expect("initiate again")
        .into_inner()
        .analysis
        .expect("analysis");
    team.alice.wait_analysis(&fresh.id).await;
    let waiting = team
        .alice
        .submit_with(SubmitTaskRequest {
            analysis_id: fresh.id.clone(),
            execution_mode: ExecutionMode::Scheduled as i32,
            scheduled_time: Some(timestamp_in(Duration::from_secs(3600), false)),
            error_strategy: ErrorStrategy::Abort as i32,
            ..Default::default()
        })
        .await;
    team.bob.approve(waiting.id).await;
    team.alice
        .wait_status(waiting.id, TaskStatus::WaitForExecution)
        .await;
    let cancelled = abort(&mut team.admin, waiting.id).await;
    assert_eq!(api::status(&cancelled), TaskStatus::Cancelled);
    let timeline = api::kinds(&team.alice.timeline(waiting.id).await);
    assert!(
        timeline.contains(&TimelineEntryKind::Cancelled),
        "{timeline:?}"
    );
    assert!(!timeline.contains(&TimelineEntryKind::ExecutionStarted));
    assert!(target::show_create(&db, "_test_orders").await.is_none());
    db.drop_database().await;
}

/// Aborting while a statement runs: the statement (held up by another session's open
/// transaction on the shadow) finishes, the next table is NOT_RUN, the task ends CANCELLED.
pub async fn abort_while_executing(endpoints: &Endpoints) {
    let mut team = Team::new(endpoints).await;
    let db = MariaDb::create("ss_sys_abort_exec").await;
    db.exec(
        "CREATE TABLE a_first (id INT PRIMARY KEY);\n\
         CREATE TABLE b_held (id INT PRIMARY KEY, v INT);\n\
         CREATE TABLE _test_b_held (id INT PRIMARY KEY);\n\
         CREATE TABLE c_last (id INT PRIMARY KEY)",
    )
    .await;
    // A reader's open transaction holds a metadata lock the ALTER of `_test_b_held` must wait
    // for: the task is reliably mid-statement when the abort comes.
    let reader = target::Reader::hold(&db, &["_test_b_held"]).await;

    let id = team.submit_approved(&db.name, ErrorStrategy::Abort).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !target::is_waiting_for_metadata_lock(&db).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ALTER never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let aborting = abort(&mut team.alice, id).await;
    assert_eq!(api::status(&aborting), TaskStatus::Executing);
    assert!(aborting.abort_requested);

    reader.release().await;
    team.alice.wait_status(id, TaskStatus::Cancelled).await;
    let outcomes = team.alice.table_outcomes(id).await;
    assert_eq!(
        outcomes,
        vec![
            ("a_first".to_string(), TableExecutionStatus::Succeeded),
            ("b_held".to_string(), TableExecutionStatus::Succeeded),
            ("c_last".to_string(), TableExecutionStatus::NotRun),
        ]
    );
    // DDL is not transactional: the statement that was running completed; nothing after it ran.
    target::assert_in_sync(&db, "b_held", "_test_b_held").await;
    assert!(target::show_create(&db, "_test_c_last").await.is_none());
    let timeline = api::kinds(&team.alice.timeline(id).await);
    assert!(
        timeline.contains(&TimelineEntryKind::AbortRequested)
            && timeline.contains(&TimelineEntryKind::Cancelled),
        "{timeline:?}"
    );
    db.drop_database().await;
}
