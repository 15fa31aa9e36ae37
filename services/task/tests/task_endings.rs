//! The ways a task ends that no client request drives directly, each checked for everything an
//! ending leaves behind: the final status, every synced table final (NOT_RUN when the task
//! stopped before it), and the timeline entry saying why.
//! - the creator's permission is gone by the time the submitter requests approval: CANCELLED;
//! - an abort found at claim (the executor that held the lease stopped answering before it
//!   could stop between statements): CANCELLED, not granted.

mod support;

use std::time::Duration;

use shadowsync_proto::approval::v1::RevokePermissionRequest;
use shadowsync_proto::task::v1::*;
use support::fixture::{Fixture, kinds, status, table_statuses};

use TableExecutionStatus as Table;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_whose_creator_lost_the_permission_is_cancelled_with_its_tables_not_run() {
    let mut f = Fixture::new().await;
    let analysis_id = f.analysis().await;
    // With the approval service away the permission cannot be checked at submission: the task
    // waits as SUBMITTING and the submitter checks it before requesting approval.
    f.services.approval_proxy.cut().await;
    let task = f.submit(&analysis_id, "away").await;
    assert_eq!(status(&task), TaskStatus::Submitting);
    f.services
        .approval_client("root-admin", &["admin"])
        .revoke_permission(RevokePermissionRequest {
            permission_id: f.permission_id.clone(),
            reason: "moved team".into(),
        })
        .await
        .expect("revoke");
    f.services.approval_proxy.restore();

    let tasks = f.services.api.tasks().expect("configured").clone();
    tasks.advance_submission(task.id).await.expect("advance");

    assert_eq!(f.status_of(task.id).await, TaskStatus::Cancelled);
    assert_eq!(
        table_statuses(&mut f.alice, task.id).await,
        vec![Table::NotRun, Table::NotRun],
        "a cancelled task's tables never run"
    );
    let detail = f.get(task.id).await;
    let entry = detail
        .timeline
        .iter()
        .find(|e| e.kind == TimelineEntryKind::Cancelled as i32)
        .expect("cancelled entry");
    assert!(entry.comment.contains("permission"), "{entry:?}");
    assert!(detail.task.expect("task").finish_time.is_some());
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_found_at_claim_cancels_the_task_on_its_timeline() {
    let mut f = Fixture::with_manual_clock().await;
    let task = f.waiting().await;
    f.claim(task.id, 1, "e1").await;
    // The abort is requested while e1 runs; e1 stops answering before it learns of it.
    let requested = f.abort(task.id).await.expect("abort");
    assert!(requested.abort_requested);
    f.advance(Duration::from_secs(31));

    // The re-dispatched attempt reaches an executor before the lease sweeper runs.
    assert_eq!(
        f.claim_outcome(task.id, 2, "e2").await,
        claim_execution_response::Outcome::Refused(ClaimRefusalReason::Aborted as i32)
    );
    assert_eq!(f.status_of(task.id).await, TaskStatus::Cancelled);
    assert_eq!(
        table_statuses(&mut f.alice, task.id).await,
        vec![Table::NotRun, Table::NotRun]
    );
    let timeline = kinds(&f.get(task.id).await.timeline);
    let requested_at = timeline
        .iter()
        .position(|k| *k == TimelineEntryKind::AbortRequested)
        .expect("abort requested entry");
    let cancelled_at = timeline
        .iter()
        .position(|k| *k == TimelineEntryKind::Cancelled)
        .expect("cancelled entry");
    assert!(requested_at < cancelled_at, "{timeline:?}");
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_recorded_on_a_waiting_task_is_applied_at_claim() {
    let mut f = Fixture::new().await;
    let task = f.waiting().await;
    // The public API cancels a waiting task at once; a row left waiting with the abort flag set
    // (written by an earlier release) is cancelled by the claim that finds it.
    sqlx::query("UPDATE tasks SET abort_requested = 1 WHERE id = $1")
        .bind(task.id)
        .execute(f.services.db.pool())
        .await
        .expect("flag");

    assert_eq!(
        f.claim_outcome(task.id, 1, "e1").await,
        claim_execution_response::Outcome::Refused(ClaimRefusalReason::Aborted as i32)
    );
    assert_eq!(f.status_of(task.id).await, TaskStatus::Cancelled);
    assert_eq!(
        table_statuses(&mut f.alice, task.id).await,
        vec![Table::NotRun, Table::NotRun]
    );
    assert!(kinds(&f.get(task.id).await.timeline).contains(&TimelineEntryKind::Cancelled));
    f.database.drop_all().await;
}
