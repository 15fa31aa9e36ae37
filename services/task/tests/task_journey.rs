//! A task's whole journey through real tonic servers (task, analysis and approval services, the
//! in-process queue, MariaDB): submission behind the builtin admin approval, idempotent retries,
//! visibility, the executor API with leases and fencing, completion, the process timeline, logs
//! and the approved script.

mod support;

use shadowsync_common::auth::{Identity, ServiceIdentity};
use shadowsync_proto::task::v1::*;
use support::fixture::{Fixture, kinds, status};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_approve_execute_complete() {
    let mut f = Fixture::new().await;
    let analysis_id = f.analysis().await;
    let task = f.submit(&analysis_id, "req-1").await;
    assert_eq!(status(&task), TaskStatus::Approving);
    assert_eq!(task.tables_to_sync_count, 2);
    assert!(!task.approval_id.is_empty());
    assert!(!task.script_sha256.is_empty());
    // A retry with the same request id is the same task; another id is refused.
    assert_eq!(f.submit(&analysis_id, "req-1").await.id, task.id);
    let again = f
        .alice
        .submit_task(SubmitTaskRequest {
            analysis_id: analysis_id.clone(),
            execution_mode: ExecutionMode::Immediate as i32,
            error_strategy: ErrorStrategy::Abort as i32,
            request_id: "req-2".into(),
            ..Default::default()
        })
        .await
        .expect_err("second submission");
    assert_eq!(again.code(), Code::FailedPrecondition);

    // The admin sees it awaiting approval with the actions to take; alice cannot approve.
    let listed = f
        .admin
        .list_tasks(ListTasksRequest {
            scope: TaskScope::AwaitingMyApproval as i32,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.total_size, 1);
    // The approvers recorded for visibility carry the task's creation time, which non-admin
    // listings bound by the window (a store detail no API shows for the builtin template,
    // whose approvers are admins and see everything anyway).
    let stamped: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT p.created_at, t.created_at FROM task_principals p \
         JOIN tasks t ON t.id = p.task_id WHERE p.task_id = $1",
    )
    .bind(task.id)
    .fetch_all(f.services.db.pool())
    .await
    .expect("principals");
    assert!(!stamped.is_empty());
    assert!(stamped.iter().all(|(copy, created)| copy == created));
    // The substring filters match what submission stored, in any case.
    let filtered = f
        .alice
        .list_tasks(ListTasksRequest {
            creator_contains: "ALIC".into(),
            database_contains: f.database.database.to_uppercase(),
            ..Default::default()
        })
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(
        filtered.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![task.id]
    );
    assert!(
        listed.tasks[0]
            .allowed_actions
            .contains(&(TaskAction::Approve as i32))
    );
    let own = f
        .alice
        .approve_task(ApproveTaskRequest {
            task_id: task.id,
            comment: "me".into(),
            request_id: String::new(),
        })
        .await
        .expect_err("self approval");
    assert_eq!(own.code(), Code::PermissionDenied);
    let mut carol = f.services.client("carol", &["dev"]).await;
    let hidden = carol
        .get_task(GetTaskRequest { task_id: task.id })
        .await
        .expect_err("carol");
    assert_eq!(hidden.code(), Code::NotFound);

    let approved = f
        .admin
        .approve_task(ApproveTaskRequest {
            task_id: task.id,
            comment: "ship it".into(),
            request_id: String::new(),
        })
        .await
        .expect("approve")
        .into_inner()
        .task
        .expect("task");
    assert_eq!(status(&approved), TaskStatus::WaitForExecution);

    // The executor API: only svc:executor, then claim, lease held, heartbeat, results.
    let mut intruder = f
        .services
        .execution_client(&Identity::user("alice", &["admin"]));
    let refused = intruder
        .claim_execution(ClaimExecutionRequest {
            task_id: task.id,
            attempt: 1,
            executor_id: "x".into(),
            plan_page_size: 0,
        })
        .await
        .expect_err("not an executor");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let mut executor = f
        .services
        .execution_client(&Identity::service(ServiceIdentity::Executor));
    let claim = |executor_id: &str| ClaimExecutionRequest {
        task_id: task.id,
        attempt: 1,
        executor_id: executor_id.into(),
        plan_page_size: 1,
    };
    let granted = match executor
        .claim_execution(claim("e1"))
        .await
        .expect("claim")
        .into_inner()
        .outcome
    {
        Some(claim_execution_response::Outcome::Granted(granted)) => granted,
        other => panic!("claim refused: {other:?}"),
    };
    assert_eq!(granted.plan_table_count, 2);
    assert_eq!(granted.tables.len(), 1);
    assert!(!granted.plan_next_page_token.is_empty());
    assert_eq!(granted.database, f.database.database);
    // The task's naming rule, for the executor's guard (foreign keys to shadows only).
    let naming = granted
        .naming
        .clone()
        .expect("the claim carries the naming rule");
    assert_eq!(
        (naming.mode, naming.affix.as_str()),
        (
            shadowsync_proto::common::v1::ShadowNamingMode::Prefix as i32,
            "_test_"
        )
    );
    let lease = granted.lease.expect("lease");
    let other = executor
        .claim_execution(claim("e2"))
        .await
        .expect("claim")
        .into_inner()
        .outcome;
    assert_eq!(
        other,
        Some(claim_execution_response::Outcome::Refused(
            ClaimRefusalReason::LeaseHeld as i32
        ))
    );
    let stale = executor
        .heartbeat(HeartbeatRequest {
            task_id: task.id,
            attempt: 1,
            lease_token: "forged".into(),
            current_table: String::new(),
        })
        .await
        .expect_err("forged lease");
    assert_eq!(stale.code(), Code::Aborted);
    let rest = executor
        .get_execution_plan(GetExecutionPlanRequest {
            task_id: task.id,
            attempt: 1,
            lease_token: lease.lease_token.clone(),
            page_size: 10,
            page_token: granted.plan_next_page_token.clone(),
        })
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(rest.tables.len(), 1);
    let mut tables: Vec<_> = granted.tables.iter().chain(rest.tables.iter()).collect();
    tables.sort_by_key(|t| t.plan.as_ref().map(|p| p.ordinal));
    let logs = AppendLogsRequest {
        task_id: task.id,
        attempt: 1,
        lease_token: lease.lease_token.clone(),
        entries: vec![
            ExecutionLogEntry {
                client_sequence: 1,
                time: None,
                level: LogLevel::Info as i32,
                message: "statement started".into(),
                table: "orders".into(),
            },
            ExecutionLogEntry {
                client_sequence: 2,
                time: None,
                level: LogLevel::Warn as i32,
                message: "Shadow DRIFT noticed".into(),
                table: "orders".into(),
            },
        ],
    };
    let first = executor
        .append_logs(logs.clone())
        .await
        .expect("logs")
        .into_inner();
    let retry = executor.append_logs(logs).await.expect("logs").into_inner();
    assert_eq!((first.accepted, retry.accepted), (2, 0));
    for table in &tables {
        let source = table.plan.as_ref().expect("plan").source_table.clone();
        for state in [
            TableExecutionStatus::Running,
            TableExecutionStatus::Succeeded,
        ] {
            executor
                .report_table_result(ReportTableResultRequest {
                    task_id: task.id,
                    attempt: 1,
                    lease_token: lease.lease_token.clone(),
                    source_table: source.clone(),
                    status: state as i32,
                    statements_done: 1,
                    ..Default::default()
                })
                .await
                .expect("report");
        }
        let changed = executor
            .report_table_result(ReportTableResultRequest {
                task_id: task.id,
                attempt: 1,
                lease_token: lease.lease_token.clone(),
                source_table: source,
                status: TableExecutionStatus::Failed as i32,
                ..Default::default()
            })
            .await
            .expect_err("final result changed");
        assert_eq!(changed.code(), Code::FailedPrecondition);
    }
    let wrong = executor
        .complete_execution(CompleteExecutionRequest {
            task_id: task.id,
            attempt: 1,
            lease_token: lease.lease_token.clone(),
            outcome: ExecutionOutcome::Failed as i32,
            message: String::new(),
        })
        .await
        .expect_err("disagreeing outcome");
    assert_eq!(wrong.code(), Code::FailedPrecondition);
    let complete = CompleteExecutionRequest {
        task_id: task.id,
        attempt: 1,
        lease_token: lease.lease_token.clone(),
        outcome: ExecutionOutcome::Succeeded as i32,
        message: "2 tables".into(),
    };
    let done = executor
        .complete_execution(complete.clone())
        .await
        .expect("complete");
    assert_eq!(
        done.into_inner().status,
        TaskStatus::ExecutionSucceeded as i32
    );
    let repeated = executor.complete_execution(complete).await.expect("repeat");
    assert_eq!(
        repeated.into_inner().status,
        TaskStatus::ExecutionSucceeded as i32
    );

    let detail = f.get(task.id).await;
    let finished = detail.task.expect("task");
    assert_eq!(status(&finished), TaskStatus::ExecutionSucceeded);
    let progress = finished.progress.expect("progress");
    assert_eq!(
        (
            progress.tables_done,
            progress.tables_total,
            progress.percent
        ),
        (2, 2, 100)
    );
    assert!(
        finished
            .allowed_actions
            .contains(&(TaskAction::InitiateAgain as i32))
    );
    let timeline = kinds(&detail.timeline);
    for expected in [
        TimelineEntryKind::Initiated,
        TimelineEntryKind::ApprovalRequested,
        TimelineEntryKind::Approved,
        TimelineEntryKind::ExecutionStarted,
        TimelineEntryKind::TableFinished,
        TimelineEntryKind::Succeeded,
    ] {
        assert!(
            timeline.contains(&expected),
            "{expected:?} missing from {timeline:?}"
        );
    }
    let approved_by = detail
        .timeline
        .iter()
        .find(|e| e.kind == TimelineEntryKind::Approved as i32)
        .expect("approved entry");
    assert_eq!(
        approved_by.actor.as_ref().map(|a| a.subject.as_str()),
        Some("root-admin")
    );
    assert_eq!(approved_by.comment, "ship it");

    // Aborting a finished task is refused.
    let late = f
        .alice
        .abort_task(AbortTaskRequest {
            task_id: task.id,
            comment: "too late".into(),
            request_id: String::new(),
        })
        .await
        .expect_err("abort finished");
    assert_eq!(late.code(), Code::FailedPrecondition);

    // Logs: ALERT keeps WARN/ERROR; search is case-insensitive; task-service lines are there.
    let all = f
        .alice
        .list_task_logs(ListTaskLogsRequest {
            task_id: task.id,
            ..Default::default()
        })
        .await
        .expect("logs")
        .into_inner();
    assert!(
        all.entries
            .iter()
            .any(|e| e.message.starts_with("submitted by alice"))
    );
    assert!(
        all.entries
            .iter()
            .any(|e| e.message.contains("approved by root-admin"))
    );
    let alert = f
        .alice
        .list_task_logs(ListTaskLogsRequest {
            task_id: task.id,
            level_filter: LogLevelFilter::Alert as i32,
            ..Default::default()
        })
        .await
        .expect("alert")
        .into_inner();
    assert!(!alert.entries.is_empty());
    assert!(
        alert
            .entries
            .iter()
            .all(|e| e.level >= LogLevel::Warn as i32)
    );
    let found = f
        .alice
        .list_task_logs(ListTaskLogsRequest {
            task_id: task.id,
            search: "drift".into(),
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner();
    assert_eq!(found.total_size, 1);
    assert_eq!(found.entries[0].table, "orders");

    let statements = f
        .alice
        .list_task_statements(ListTaskStatementsRequest {
            task_id: task.id,
            ..Default::default()
        })
        .await
        .expect("statements")
        .into_inner();
    let script: String = statements
        .statements
        .iter()
        .map(|s| format!("{};\n", s.sql))
        .collect();
    // The approved hash is the plan digest (tables, order, strategy, schedule), which the
    // approval bound; no longer the hash of the statements' text.
    use sha2::Digest as _;
    assert_ne!(
        hex::encode(sha2::Sha256::digest(script.as_bytes())),
        finished.script_sha256
    );
    assert_eq!(
        f.approval_of(&finished).await.payload_sha256,
        finished.script_sha256
    );
    f.database.drop_all().await;
}
