//! Tasks under contention and partial failure: concurrent aborts and an approval racing on one
//! task (the compare-and-set holds), and a submission while the approval service is unreachable
//! (the task appears once, exactly, when it is back).

mod support;

use std::time::Duration;

use futures::StreamExt;
use shadowsync_common::auth::{Identity, ServiceIdentity};
use shadowsync_proto::task::v1::*;
use support::Client;
use support::fixture::{Fixture, kinds, status};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_aborts_and_approvals_compare_and_set() {
    let mut f = Fixture::new().await;
    let analysis_id = f.analysis().await;
    let task = f.submit(&analysis_id, "").await;
    let (mut a, mut b) = (f.alice.clone(), f.admin.clone());
    let abort = |client: &mut Client| {
        let mut client = client.clone();
        async move {
            client
                .abort_task(AbortTaskRequest {
                    task_id: task.id,
                    comment: "race".into(),
                    request_id: String::new(),
                })
                .await
        }
    };
    let approve = async move {
        b.approve_task(ApproveTaskRequest {
            task_id: task.id,
            comment: "race".into(),
            request_id: String::new(),
        })
        .await
    };
    let (first, second, approval) = tokio::join!(abort(&mut a), abort(&mut f.alice), approve);
    let aborts_ok = [first.is_ok(), second.is_ok()]
        .iter()
        .filter(|ok| **ok)
        .count();
    let final_task = f.get(task.id).await.task.expect("task");
    // Whichever order the three ran in, the task ends CANCELLED: an approval first leaves a
    // waiting task that the aborts then cancel; aborts first make the approval refused.
    assert_eq!(status(&final_task), TaskStatus::Cancelled);
    assert!(aborts_ok >= 1, "one abort won");
    for outcome in [&first, &second] {
        if let Err(error) = outcome {
            assert_eq!(error.code(), Code::FailedPrecondition);
        }
    }
    if let Err(error) = &approval {
        assert!(
            matches!(error.code(), Code::FailedPrecondition),
            "{error:?}"
        );
    }
    // Exactly one CANCELLED entry however the race went.
    let cancelled = kinds(&f.get(task.id).await.timeline)
        .into_iter()
        .filter(|k| *k == TimelineEntryKind::Cancelled)
        .count();
    assert_eq!(cancelled, 1);
    // The approval request was cancelled too (or had been decided before the abort).
    let approvals = f.services.approval_client("root-admin", &["admin"]);
    let mut approvals = approvals;
    let request = approvals
        .get_approval(shadowsync_proto::approval::v1::GetApprovalRequest {
            key: Some(
                shadowsync_proto::approval::v1::get_approval_request::Key::ApprovalId(
                    final_task.approval_id.clone(),
                ),
            ),
        })
        .await
        .expect("approval")
        .into_inner()
        .approval
        .expect("approval");
    assert_ne!(
        request.status,
        shadowsync_proto::approval::v1::ApprovalStatus::Pending as i32
    );
    // A claim of a cancelled task is refused.
    let mut executor = f
        .services
        .execution_client(&Identity::service(ServiceIdentity::Executor));
    let claimed = executor
        .claim_execution(ClaimExecutionRequest {
            task_id: task.id,
            attempt: 1,
            executor_id: "e1".into(),
            plan_page_size: 0,
        })
        .await
        .expect("claim")
        .into_inner()
        .outcome;
    assert_eq!(
        claimed,
        Some(claim_execution_response::Outcome::Refused(
            ClaimRefusalReason::TaskFinal as i32
        ))
    );
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_survives_the_approval_service_being_away() {
    let mut f = Fixture::new().await;
    let analysis_id = f.analysis().await;
    f.services.approval_proxy.cut().await;
    let task = f.submit(&analysis_id, "req-away").await;
    assert_eq!(status(&task), TaskStatus::Submitting);
    // Hidden while SUBMITTING.
    let listed = f
        .alice
        .list_tasks(ListTasksRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.total_size, 0);
    // A retry while still away returns the same task.
    assert_eq!(f.submit(&analysis_id, "req-away").await.id, task.id);
    f.services.approval_proxy.restore();
    let api = f.services.api.clone();
    let tasks = api.tasks().expect("configured");
    tasks.sweep().await.expect("sweep");
    let mut visible = None;
    for _ in 0..100 {
        let current = f.get(task.id).await.task.expect("task");
        if status(&current) == TaskStatus::Approving {
            visible = Some(current);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        tasks.sweep().await.expect("sweep");
    }
    let visible = visible.expect("the task became APPROVING");
    assert!(!visible.approval_id.is_empty());
    let listed = f
        .alice
        .list_tasks(ListTasksRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.total_size, 1);
    assert_eq!(listed.tasks[0].id, task.id);
    // Exactly one approval request exists for it.
    let approvals = f
        .services
        .approval_client("root-admin", &["admin"])
        .list_approvals(shadowsync_proto::approval::v1::ListApprovalsRequest {
            request_types: vec!["shadow_table_sync".into()],
            ..Default::default()
        })
        .await
        .expect("approvals")
        .into_inner();
    assert_eq!(approvals.total_size, 1);
    // The download streams the whole log in order.
    let mut stream = f
        .alice
        .download_task_logs(DownloadTaskLogsRequest {
            task_id: task.id,
            ..Default::default()
        })
        .await
        .expect("download")
        .into_inner();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        text.push_str(&chunk.expect("chunk").text);
    }
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.contains("INFO submitted by alice")),
        "{text}"
    );
    f.database.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_approvals_and_claims_take_effect_once() {
    let mut f = Fixture::new().await;
    let task = f.approving().await;
    // Two administrators approve at once: the node needs one approval, so one decision counts
    // and the other is refused as the task is no longer waiting.
    let mut second_admin = f.services.client("other-admin", &["admin"]).await;
    let mut first_admin = f.admin.clone();
    let approve = |client: &mut Client| {
        let mut client = client.clone();
        async move {
            client
                .approve_task(ApproveTaskRequest {
                    task_id: task.id,
                    comment: "race".into(),
                    request_id: String::new(),
                })
                .await
        }
    };
    let (a, b) = tokio::join!(approve(&mut first_admin), approve(&mut second_admin));
    let won = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert!(won >= 1, "{a:?} {b:?}");
    for outcome in [&a, &b] {
        if let Err(error) = outcome {
            assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
        }
    }
    let detail = f.get(task.id).await;
    assert_eq!(
        status(&detail.task.expect("task")),
        TaskStatus::WaitForExecution
    );
    let approvals = kinds(&detail.timeline)
        .into_iter()
        .filter(|k| *k == TimelineEntryKind::Approved)
        .count();
    assert_eq!(approvals, 1, "one decision recorded");

    // Two executors claim the same delivery at once: exactly one gets the lease.
    let claim = |executor_id: &'static str| {
        let mut executor = f.executor();
        async move {
            executor
                .claim_execution(ClaimExecutionRequest {
                    task_id: task.id,
                    attempt: 1,
                    executor_id: executor_id.into(),
                    plan_page_size: 0,
                })
                .await
                .expect("claim")
                .into_inner()
                .outcome
                .expect("outcome")
        }
    };
    let (one, two) = tokio::join!(claim("e1"), claim("e2"));
    let granted = [&one, &two]
        .iter()
        .filter(|o| matches!(o, claim_execution_response::Outcome::Granted(_)))
        .count();
    assert_eq!(granted, 1, "{one:?} {two:?}");
    let refused = Some(claim_execution_response::Outcome::Refused(
        ClaimRefusalReason::LeaseHeld as i32,
    ));
    assert!(
        [Some(one), Some(two)].contains(&refused),
        "the loser sees the lease held"
    );
    let started = kinds(&f.get(task.id).await.timeline)
        .into_iter()
        .filter(|k| *k == TimelineEntryKind::ExecutionStarted)
        .count();
    assert_eq!(started, 1);
    f.database.drop_all().await;
}
