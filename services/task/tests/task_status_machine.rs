//! The task status machine through real tonic servers, for the transitions a
//! request drives: approval decisions, execution outcomes, abort in every non-final state, and
//! the illegal requests that must be refused (FAILED_PRECONDITION, or ABORTED "lease lost" for
//! a stale lease, as `execution.proto` specifies). The time-driven transitions are in
//! `task_expiry.rs`.

mod support;

use shadowsync_proto::approval::v1::{ApprovalStatus, CancelApprovalRequest, ListApprovalsRequest};
use shadowsync_proto::task::v1::*;
use support::fixture::{Fixture, kinds, lease_token, status, table_statuses};
use tonic::Code;

use TableExecutionStatus as Table;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_decisions_move_the_task() {
    let mut f = Fixture::new().await;

    // APPROVING → WAIT_FOR_EXECUTION, with the approver and comment on the timeline.
    let approved = f.approving().await;
    let waiting = f.approve(approved.id).await.expect("approve");
    assert_eq!(status(&waiting), TaskStatus::WaitForExecution);
    assert_eq!(waiting.attempt, 1, "the first dispatch is attempt 1");
    assert!(
        waiting.approval_wait.is_none(),
        "no one is awaited any more"
    );
    let again = f.approve(approved.id).await.expect_err("approve twice");
    assert_eq!(again.code(), Code::FailedPrecondition);
    let late_reject = f.reject(approved.id).await.expect_err("reject approved");
    assert_eq!(late_reject.code(), Code::FailedPrecondition);

    // APPROVING → REJECTED, final: no decision, abort or claim changes it.
    let rejected = f.approving().await;
    let task = f.reject(rejected.id).await.expect("reject");
    assert_eq!(status(&task), TaskStatus::Rejected);
    assert!(task.finish_time.is_some());
    assert!(
        !task.allowed_actions.contains(&(TaskAction::Abort as i32)),
        "{:?}",
        task.allowed_actions
    );
    let detail = f.get(rejected.id).await;
    let entry = detail
        .timeline
        .iter()
        .find(|e| e.kind == TimelineEntryKind::Rejected as i32)
        .expect("rejected entry");
    assert_eq!(entry.comment, "not today");
    assert_eq!(
        entry.actor.as_ref().map(|a| a.subject.as_str()),
        Some("root-admin")
    );
    for refused in [
        f.approve(rejected.id).await.expect_err("approve rejected"),
        f.reject(rejected.id).await.expect_err("reject rejected"),
        f.abort(rejected.id).await.expect_err("abort rejected"),
    ] {
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    }
    assert_eq!(
        f.claim_outcome(rejected.id, 1, "e1").await,
        claim_execution_response::Outcome::Refused(ClaimRefusalReason::TaskFinal as i32)
    );
    assert_eq!(f.status_of(rejected.id).await, TaskStatus::Rejected);
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_ends_succeeded_or_failed_by_its_table_results() {
    let mut f = Fixture::new().await;

    // WAIT_FOR_EXECUTION → EXECUTING → EXECUTION_SUCCEEDED (ALREADY_IN_SYNC counts as success).
    let ok = f.waiting().await;
    let granted = f.claim(ok.id, 1, "e1").await;
    assert_eq!(f.status_of(ok.id).await, TaskStatus::Executing);
    f.report(
        ok.id,
        1,
        &granted,
        &[Table::Succeeded, Table::AlreadyInSync],
    )
    .await
    .expect("report");
    let done = f
        .complete(
            ok.id,
            1,
            &lease_token(&granted),
            ExecutionOutcome::Succeeded,
        )
        .await
        .expect("complete");
    assert_eq!(done, TaskStatus::ExecutionSucceeded);

    // EXECUTING → EXECUTION_FAILED: the first table failed and, with the ABORT strategy, the
    // rest never ran. Claiming it "succeeded" is refused: the outcome follows the results.
    let failing = f.waiting().await;
    let granted = f.claim(failing.id, 1, "e1").await;
    let lease = lease_token(&granted);
    f.report(failing.id, 1, &granted, &[Table::Failed])
        .await
        .expect("report");
    let disagree = f
        .complete(failing.id, 1, &lease, ExecutionOutcome::Succeeded)
        .await
        .expect_err("success with a failed table");
    assert_eq!(disagree.code(), Code::FailedPrecondition);
    let done = f
        .complete(failing.id, 1, &lease, ExecutionOutcome::Failed)
        .await
        .expect("complete");
    assert_eq!(done, TaskStatus::ExecutionFailed);
    assert_eq!(
        table_statuses(&mut f.alice, failing.id).await,
        vec![Table::Failed, Table::NotRun]
    );
    let detail = f.get(failing.id).await;
    assert!(kinds(&detail.timeline).contains(&TimelineEntryKind::Failed));
    let finished = detail.task.expect("task");
    assert_eq!(finished.progress.expect("progress").tables_failed, 1);

    // Final: the lease is gone, a different outcome is refused, abort and claim too.
    let heartbeat = f
        .heartbeat(failing.id, 1, &lease)
        .await
        .expect_err("heartbeat after the end");
    assert_eq!(heartbeat.code(), Code::Aborted);
    let changed = f
        .complete(failing.id, 1, &lease, ExecutionOutcome::Cancelled)
        .await
        .expect_err("another outcome");
    assert_eq!(changed.code(), Code::Aborted);
    let repeated = f
        .complete(failing.id, 1, &lease, ExecutionOutcome::Failed)
        .await
        .expect("the same completion again is a no-op");
    assert_eq!(repeated, TaskStatus::ExecutionFailed);
    let abort = f.abort(failing.id).await.expect_err("abort failed task");
    assert_eq!(abort.code(), Code::FailedPrecondition);
    assert_eq!(
        f.claim_outcome(failing.id, 1, "e2").await,
        claim_execution_response::Outcome::Refused(ClaimRefusalReason::TaskFinal as i32)
    );

    // The list shows each task as its detail does (progress and actions are read per page).
    let listed = f
        .alice
        .list_tasks(ListTasksRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.total_size, 2);
    for task in listed.tasks {
        let detail = f.get(task.id).await.task.expect("task");
        assert_eq!(task.progress, detail.progress);
        assert_eq!(task.allowed_actions, detail.allowed_actions);
    }
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_cancels_every_non_final_state() {
    let mut f = Fixture::new().await;

    // SUBMITTING: cancelled at once; once the approval service is back no request is made.
    let analysis_id = f.analysis().await;
    f.services.approval_proxy.cut().await;
    let submitting = f.submit(&analysis_id, "away").await;
    assert_eq!(status(&submitting), TaskStatus::Submitting);
    let cancelled = f.abort(submitting.id).await.expect("abort submitting");
    assert_eq!(status(&cancelled), TaskStatus::Cancelled);
    f.services.approval_proxy.restore();
    let tasks = f.services.api.tasks().expect("configured").clone();
    tasks.sweep().await.expect("sweep");
    assert_eq!(f.status_of(submitting.id).await, TaskStatus::Cancelled);
    let requests = f
        .services
        .approval_client("root-admin", &["admin"])
        .list_approvals(ListApprovalsRequest {
            request_types: vec!["shadow_table_sync".into()],
            ..Default::default()
        })
        .await
        .expect("approvals")
        .into_inner();
    assert_eq!(requests.total_size, 0, "no orphan approval request");

    // APPROVING: cancelled, and so is its approval request.
    let approving = f.approving().await;
    let cancelled = f.abort(approving.id).await.expect("abort approving");
    assert_eq!(status(&cancelled), TaskStatus::Cancelled);
    assert_eq!(
        f.approval_of(&approving).await.status,
        ApprovalStatus::Cancelled as i32
    );
    let approve = f
        .approve(approving.id)
        .await
        .expect_err("approve cancelled");
    assert_eq!(approve.code(), Code::FailedPrecondition);

    // WAIT_FOR_EXECUTION: cancelled; a delivery of its dispatch is refused at claim.
    let waiting = f.waiting().await;
    let cancelled = f.abort(waiting.id).await.expect("abort waiting");
    assert_eq!(status(&cancelled), TaskStatus::Cancelled);
    assert_eq!(
        f.claim_outcome(waiting.id, 1, "e1").await,
        claim_execution_response::Outcome::Refused(ClaimRefusalReason::TaskFinal as i32)
    );
    assert_eq!(
        table_statuses(&mut f.alice, waiting.id).await,
        vec![Table::NotRun, Table::NotRun]
    );

    // EXECUTING: the abort is requested; the executor learns it on its next call, stops
    // between statements and completes CANCELLED.
    let executing = f.waiting().await;
    let granted = f.claim(executing.id, 1, "e1").await;
    let lease = lease_token(&granted);
    let requested = f.abort(executing.id).await.expect("abort executing");
    assert_eq!(status(&requested), TaskStatus::Executing);
    assert!(requested.abort_requested);
    assert!(
        f.abort(executing.id)
            .await
            .expect("abort again")
            .abort_requested,
        "a repeated abort is a no-op"
    );
    let beat = f.heartbeat(executing.id, 1, &lease).await.expect("beat");
    assert!(beat.abort_requested);
    let answers = f
        .report(executing.id, 1, &granted, &[Table::Succeeded])
        .await
        .expect("report");
    assert!(answers[0].abort_requested);
    let done = f
        .complete(executing.id, 1, &lease, ExecutionOutcome::Cancelled)
        .await
        .expect("complete");
    assert_eq!(done, TaskStatus::Cancelled);
    assert_eq!(
        table_statuses(&mut f.alice, executing.id).await,
        vec![Table::Succeeded, Table::NotRun]
    );
    let timeline = kinds(&f.get(executing.id).await.timeline);
    let requested_at = timeline
        .iter()
        .position(|k| *k == TimelineEntryKind::AbortRequested)
        .expect("abort requested entry");
    let cancelled_at = timeline
        .iter()
        .position(|k| *k == TimelineEntryKind::Cancelled)
        .expect("cancelled entry");
    assert!(requested_at < cancelled_at, "{timeline:?}");
    let late = f.abort(executing.id).await.expect_err("abort cancelled");
    assert_eq!(late.code(), Code::FailedPrecondition);
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_requests_are_refused() {
    let mut f = Fixture::new().await;

    // The same analysis under another request id: already submitted.
    let analysis_id = f.analysis().await;
    let first = f.submit(&analysis_id, "one").await;
    let twice = f
        .alice
        .submit_task(SubmitTaskRequest {
            analysis_id: analysis_id.clone(),
            execution_mode: ExecutionMode::Immediate as i32,
            error_strategy: ErrorStrategy::Abort as i32,
            request_id: "two".into(),
            ..Default::default()
        })
        .await
        .expect_err("second submission");
    assert_eq!(twice.code(), Code::FailedPrecondition);

    // Claiming a task still awaiting approval is refused (nothing runs unapproved).
    assert_eq!(
        f.claim_outcome(first.id, 1, "e1").await,
        claim_execution_response::Outcome::Refused(ClaimRefusalReason::NotApproved as i32)
    );
    assert_eq!(f.status_of(first.id).await, TaskStatus::Approving);

    // Someone who may neither see nor abort it: NOT_FOUND, so ids do not leak.
    let mut carol = f.services.client("carol", &["dev"]).await;
    let hidden = carol
        .abort_task(AbortTaskRequest {
            task_id: first.id,
            ..Default::default()
        })
        .await
        .expect_err("carol aborts");
    assert_eq!(hidden.code(), Code::NotFound);

    // A forged or stale lease token is refused for every fenced call; the real one works.
    f.approve(first.id).await.expect("approve");
    let granted = f.claim(first.id, 1, "e1").await;
    let lease = lease_token(&granted);
    let stale = format!("{lease}-stale");
    let table = granted.tables[0]
        .plan
        .as_ref()
        .expect("plan")
        .source_table
        .clone();
    let mut executor = f.executor();
    let report = executor
        .report_table_result(ReportTableResultRequest {
            task_id: first.id,
            attempt: 1,
            lease_token: stale.clone(),
            source_table: table.clone(),
            status: Table::Succeeded as i32,
            ..Default::default()
        })
        .await
        .expect_err("stale report");
    assert_eq!(report.code(), Code::Aborted);
    let complete = f
        .complete(first.id, 1, &stale, ExecutionOutcome::Succeeded)
        .await
        .expect_err("stale complete");
    assert_eq!(complete.code(), Code::Aborted);
    let logs = executor
        .append_logs(AppendLogsRequest {
            task_id: first.id,
            attempt: 1,
            lease_token: stale,
            entries: Vec::new(),
        })
        .await
        .expect_err("stale logs");
    assert_eq!(logs.code(), Code::Aborted);
    // The right token for another attempt is stale too.
    let other_attempt = f
        .heartbeat(first.id, 2, &lease)
        .await
        .expect_err("wrong attempt");
    assert_eq!(other_attempt.code(), Code::Aborted);
    // An older attempt cannot claim.
    assert_eq!(
        f.claim_outcome(first.id, 0, "e2").await,
        claim_execution_response::Outcome::Refused(ClaimRefusalReason::StaleAttempt as i32)
    );
    // None of the refused calls changed anything.
    assert_eq!(
        table_statuses(&mut f.alice, first.id).await,
        vec![Table::Pending, Table::Pending]
    );
    f.heartbeat(first.id, 1, &lease).await.expect("live lease");
    // A table that is not a synced table of the task, and a RUNNING→PENDING regression.
    let unknown = executor
        .report_table_result(ReportTableResultRequest {
            task_id: first.id,
            attempt: 1,
            lease_token: lease.clone(),
            source_table: "no_such_table".into(),
            status: Table::Succeeded as i32,
            ..Default::default()
        })
        .await
        .expect_err("unknown table");
    assert_eq!(unknown.code(), Code::InvalidArgument);
    let pending = executor
        .report_table_result(ReportTableResultRequest {
            task_id: first.id,
            attempt: 1,
            lease_token: lease.clone(),
            source_table: table,
            status: Table::Pending as i32,
            ..Default::default()
        })
        .await
        .expect_err("pending is not reportable");
    assert_eq!(pending.code(), Code::InvalidArgument);
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_approval_cancels_the_task() {
    let mut f = Fixture::new().await;
    f.services.follow_events().await;
    let task = f.approving().await;
    // Cancelled at the approval service, not through the task service: the task learns it
    // from the event (confirmed with the approval service) and ends as a user's abort does.
    f.services
        .approval_client("root-admin", &["admin"])
        .cancel_approval(CancelApprovalRequest {
            approval_id: task.approval_id.clone(),
            reason: "withdrawn".into(),
            request_id: String::new(),
        })
        .await
        .expect("cancel approval");
    f.services
        .approval
        .relay()
        .relay_due()
        .await
        .expect("relay");
    f.wait_for_status(task.id, TaskStatus::Cancelled).await;
    assert!(kinds(&f.get(task.id).await.timeline).contains(&TimelineEntryKind::Cancelled));
    assert_eq!(
        table_statuses(&mut f.alice, task.id).await,
        vec![Table::NotRun, Table::NotRun]
    );
    assert_eq!(
        f.claim_outcome(task.id, 1, "e1").await,
        claim_execution_response::Outcome::Refused(ClaimRefusalReason::TaskFinal as i32)
    );
    f.database.drop_all().await;
}
