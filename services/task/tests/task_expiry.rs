//! The time-driven transitions of the task lifecycle (docs/architecture.md §2), on a manual clock shared by the task and the
//! approval service (the builtin template's expirations: 24 h each; the executor lease: 30 s by
//! default):
//! APPROVAL_EXPIRED (decided by the approval service, learnt from its event), the task
//! service's own WAIT_FOR_EXECUTION_EXPIRED and EXECUTION_EXPIRED sweepers, and a lapsed lease
//! re-dispatched as the next attempt. Time moves only when a test moves it.

mod support;

use std::time::Duration;

use futures::StreamExt;
use shadowsync_common::clock::{Clock as _, from_timestamp};
use shadowsync_proto::common::v1::ExecuteTask;
use shadowsync_proto::task::v1::*;
use shadowsync_task::TaskConfig;
use support::fixture::{Fixture, kinds, lease_token, status, table_statuses};
use tonic::Code;

use TableExecutionStatus as Table;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_approval_ends_the_task() {
    let mut f = Fixture::with_manual_clock().await;
    f.services.follow_events().await;
    let task = f.approving().await;
    let approval = shadowsync_approval::sweeper::sweep_once;

    f.advance(23 * HOUR);
    assert_eq!(
        approval(f.services.approval.service())
            .await
            .expect("sweep"),
        0
    );
    f.advance(2 * HOUR);
    assert_eq!(
        approval(f.services.approval.service())
            .await
            .expect("sweep"),
        1
    );
    // The approval service announces it; the task service confirms it and applies it.
    f.services
        .approval
        .relay()
        .relay_due()
        .await
        .expect("relay");
    f.wait_for_status(task.id, TaskStatus::ApprovalExpired)
        .await;

    let detail = f.get(task.id).await;
    assert!(kinds(&detail.timeline).contains(&TimelineEntryKind::ApprovalExpired));
    let expired = detail.task.expect("task");
    assert!(expired.finish_time.is_some());
    assert!(expired.approval_wait.is_none());
    let late = f.approve(task.id).await.expect_err("approve expired");
    assert_eq!(late.code(), Code::FailedPrecondition);
    let abort = f.abort(task.id).await.expect_err("abort expired");
    assert_eq!(abort.code(), Code::FailedPrecondition);
    let errors = f
        .alice
        .list_task_logs(ListTaskLogsRequest {
            task_id: task.id,
            level_filter: LogLevelFilter::Alert as i32,
            ..Default::default()
        })
        .await
        .expect("logs")
        .into_inner();
    assert!(
        errors.entries.iter().any(|e| e.message.contains("expired")),
        "{:?}",
        errors.entries
    );
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unclaimed_task_expires_after_the_wait_expiration() {
    let mut f = Fixture::with_manual_clock().await;
    let task = f.waiting().await;
    let tasks = f.services.api.tasks().expect("configured").clone();

    f.advance(23 * HOUR);
    tasks.sweep().await.expect("sweep");
    assert_eq!(f.status_of(task.id).await, TaskStatus::WaitForExecution);
    f.advance(2 * HOUR);
    tasks.sweep().await.expect("sweep");
    let detail = f.get(task.id).await;
    let expired = detail.task.expect("task");
    assert_eq!(status(&expired), TaskStatus::WaitForExecutionExpired);
    assert!(kinds(&detail.timeline).contains(&TimelineEntryKind::WaitForExecutionExpired));
    assert_eq!(
        table_statuses(&mut f.alice, task.id).await,
        vec![Table::NotRun, Table::NotRun]
    );
    // A dispatch delivered now is refused; nothing runs.
    assert_eq!(
        f.claim_outcome(task.id, 1, "e1").await,
        claim_execution_response::Outcome::Refused(ClaimRefusalReason::TaskFinal as i32)
    );
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_past_its_deadline_expires() {
    let mut f = Fixture::with_manual_clock().await;
    let task = f.waiting().await;
    let tasks = f.services.api.tasks().expect("configured").clone();
    let granted = f.claim(task.id, 1, "e1").await;
    let lease = lease_token(&granted);
    f.report(task.id, 1, &granted, &[Table::Succeeded])
        .await
        .expect("report");

    f.advance(25 * HOUR);
    tasks.sweep().await.expect("sweep");
    let detail = f.get(task.id).await;
    assert_eq!(
        status(&detail.task.expect("task")),
        TaskStatus::ExecutionExpired
    );
    let timeline = kinds(&detail.timeline);
    assert!(timeline.contains(&TimelineEntryKind::ExecutionExpired));
    assert!(
        !timeline.contains(&TimelineEntryKind::LeaseLapsed),
        "an expired execution is not re-dispatched: {timeline:?}"
    );
    assert_eq!(
        table_statuses(&mut f.alice, task.id).await,
        vec![Table::Succeeded, Table::NotRun]
    );
    // The executor's lease went with it.
    let beat = f
        .heartbeat(task.id, 1, &lease)
        .await
        .expect_err("beat after expiry");
    assert_eq!(beat.code(), Code::Aborted);
    let complete = f
        .complete(task.id, 1, &lease, ExecutionOutcome::Succeeded)
        .await
        .expect_err("complete after expiry");
    assert_eq!(complete.code(), Code::Aborted);
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_is_dispatched_again_as_the_next_attempt() {
    let mut f = Fixture::with_manual_clock().await;
    let task = f.waiting().await;
    let tasks = f.services.api.tasks().expect("configured").clone();
    let granted = f.claim(task.id, 1, "e1").await;
    let first = lease_token(&granted);
    f.report(task.id, 1, &granted, &[Table::Succeeded])
        .await
        .expect("report");

    // Heartbeats keep the lease: 20 s, beat, 25 s later it still holds.
    f.advance(Duration::from_secs(20));
    f.heartbeat(task.id, 1, &first).await.expect("beat");
    f.advance(Duration::from_secs(25));
    tasks.sweep().await.expect("sweep");
    let held = f.get(task.id).await.task.expect("task");
    assert_eq!((status(&held), held.attempt), (TaskStatus::Executing, 1));

    // Silence past the lease: re-dispatched as attempt 2 with the same priority.
    let execute = f.services.queue.topology().execute_queue();
    let mut deliveries = f
        .services
        .queue
        .consume(&execute, 1)
        .await
        .expect("consume");
    f.advance(Duration::from_secs(10));
    tasks.sweep().await.expect("sweep");
    let detail = f.get(task.id).await;
    let lapsed = detail.task.expect("task");
    assert_eq!(
        (status(&lapsed), lapsed.attempt),
        (TaskStatus::Executing, 2)
    );
    let entry = detail
        .timeline
        .iter()
        .find(|e| e.kind == TimelineEntryKind::LeaseLapsed as i32)
        .expect("lease lapsed entry");
    assert_eq!((entry.attempt, entry.executor_id.as_str()), (1, "e1"));
    f.services
        .api
        .relay()
        .expect("relay")
        .relay_due()
        .await
        .expect("relay");
    let message = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
        .await
        .expect("a dispatch")
        .expect("stream")
        .expect("delivery");
    let dispatched: ExecuteTask = message.message().decode_protobuf().expect("ExecuteTask");
    assert_eq!((dispatched.task_id, dispatched.attempt), (task.id, 2));
    assert_eq!(dispatched.priority, lapsed.priority);
    assert!(dispatched.priority >= 1);
    message.ack().await.expect("ack");

    // The first executor is fenced off; its attempt can no longer claim.
    let beat = f
        .heartbeat(task.id, 1, &first)
        .await
        .expect_err("old lease");
    assert_eq!(beat.code(), Code::Aborted);
    assert_eq!(
        f.claim_outcome(task.id, 1, "e1").await,
        claim_execution_response::Outcome::Refused(ClaimRefusalReason::StaleAttempt as i32)
    );
    // Attempt 2 resumes from what attempt 1 recorded and finishes.
    let second = f.claim(task.id, 2, "e2").await;
    assert_eq!(
        second.tables[0].recorded_status,
        Table::Succeeded as i32,
        "the plan carries the recorded result"
    );
    let remaining = ClaimedExecution {
        tables: second.tables[1..].to_vec(),
        ..second.clone()
    };
    f.report(task.id, 2, &remaining, &[Table::Succeeded])
        .await
        .expect("report");
    let done = f
        .complete(
            task.id,
            2,
            &lease_token(&second),
            ExecutionOutcome::Succeeded,
        )
        .await
        .expect("complete");
    assert_eq!(done, TaskStatus::ExecutionSucceeded);
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_lasts_as_configured_and_heartbeats_come_at_a_third_of_it() {
    let mut f = Fixture::with_manual_clock_and(TaskConfig {
        execution_lease: Duration::from_secs(6),
        ..TaskConfig::default()
    })
    .await;
    let task = f.waiting().await;
    let tasks = f.services.api.tasks().expect("configured").clone();
    let claimed_at = f.clock.as_ref().expect("manual clock").now();
    let granted = f.claim(task.id, 1, "e1").await;
    let lease = granted.lease.clone().expect("lease");
    let expires = from_timestamp(&lease.lease_expire_time.expect("expiry"));
    assert_eq!(expires - claimed_at, 6_000_000);
    assert_eq!(
        lease.heartbeat_interval,
        Some(prost_types::Duration {
            seconds: 2,
            nanos: 0
        })
    );

    // A beat at 4 s carries it 6 s further; 10 s without one ends it.
    f.advance(Duration::from_secs(4));
    f.heartbeat(task.id, 1, &lease_token(&granted))
        .await
        .expect("beat");
    f.advance(Duration::from_secs(5));
    tasks.sweep().await.expect("sweep");
    assert_eq!(f.get(task.id).await.task.expect("task").attempt, 1);
    f.advance(Duration::from_secs(2));
    tasks.sweep().await.expect("sweep");
    let lapsed = f.get(task.id).await.task.expect("task");
    assert_eq!(
        (status(&lapsed), lapsed.attempt),
        (TaskStatus::Executing, 2)
    );
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_task_whose_executor_went_silent_ends_cancelled() {
    let mut f = Fixture::with_manual_clock().await;
    let task = f.waiting().await;
    let tasks = f.services.api.tasks().expect("configured").clone();
    let granted = f.claim(task.id, 1, "e1").await;
    let requested = f.abort(task.id).await.expect("abort");
    assert_eq!(status(&requested), TaskStatus::Executing);

    f.advance(Duration::from_secs(31));
    tasks.sweep().await.expect("sweep");
    let cancelled = f.get(task.id).await.task.expect("task");
    assert_eq!(status(&cancelled), TaskStatus::Cancelled);
    assert_eq!(
        cancelled.attempt, 1,
        "an aborted task is not dispatched again"
    );
    assert_eq!(
        table_statuses(&mut f.alice, task.id).await,
        vec![Table::NotRun, Table::NotRun]
    );
    let beat = f
        .heartbeat(task.id, 1, &lease_token(&granted))
        .await
        .expect_err("old lease");
    assert_eq!(beat.code(), Code::Aborted);
    f.database.drop_all().await;
}
