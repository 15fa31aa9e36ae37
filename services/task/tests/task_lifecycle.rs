//! The task lifecycle through real tonic servers: task, analysis and approval services, the
//! in-process queue, and MariaDB. Submission behind the builtin admin approval, the status
//! machine with its compare-and-set, the executor API with leases and fencing, logs, and a
//! submission while the approval service is unreachable.

mod support;

use std::time::Duration;

use futures::StreamExt;
use shadowsync_common::auth::{Identity, ServiceIdentity};
use shadowsync_proto::approval::v1::GrantPermissionRequest;
use shadowsync_proto::common::v1::{Dialect, SyncRange};
use shadowsync_proto::task::v1::*;
use shadowsync_task::TaskConfig;
use support::{Client, MariaDb, Services};
use tonic::Code;

struct Fixture {
    services: Services,
    alice: Client,
    admin: Client,
    database: MariaDb,
    connection_id: String,
}

impl Fixture {
    async fn new() -> Self {
        let services = Services::start_real(TaskConfig::default()).await;
        let mut admin = services.client("root-admin", &["admin"]).await;
        let alice = services.client("alice", &["dev"]).await;
        let database = MariaDb::empty().await;
        database
            .execute(
                "CREATE TABLE orders (id BIGINT PRIMARY KEY, total DECIMAL(10,2) NOT NULL);\n\
                 CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(40))",
            )
            .await;
        let connection = admin
            .create_connection(CreateConnectionRequest {
                connection: Some(ConnectionSpec {
                    name: format!("conn-{}", uuid::Uuid::new_v4().simple()),
                    dialect: Dialect::Mariadb as i32,
                    host: "127.0.0.1".into(),
                    port: 3306,
                    username: "root".into(),
                    password: String::new(),
                    environment: "test".into(),
                    options: Default::default(),
                }),
                request_id: String::new(),
            })
            .await
            .expect("connection")
            .into_inner()
            .connection
            .expect("connection");
        services
            .approval_client("root-admin", &["admin"])
            .grant_permission(GrantPermissionRequest {
                user: "alice".into(),
                task_type: "shadow_table_sync".into(),
                connection_id: connection.id.clone(),
                database: String::new(),
                reason: "test".into(),
                duration: None,
                request_id: String::new(),
            })
            .await
            .expect("grant");
        Self {
            services,
            alice,
            admin,
            database,
            connection_id: connection.id,
        }
    }

    /// A SUCCEEDED analysis of the whole database by alice.
    async fn analysis(&mut self) -> String {
        let analysis = self
            .alice
            .start_analysis(StartAnalysisRequest {
                connection_id: self.connection_id.clone(),
                database: self.database.database.clone(),
                range: SyncRange::All as i32,
                ..Default::default()
            })
            .await
            .expect("start")
            .into_inner()
            .analysis
            .expect("analysis");
        for _ in 0..300 {
            let current = self
                .alice
                .get_analysis(GetAnalysisRequest {
                    analysis_id: analysis.id.clone(),
                    omit_tables: true,
                    ..Default::default()
                })
                .await
                .expect("get")
                .into_inner()
                .analysis
                .expect("analysis");
            if current.status == AnalysisStatus::Succeeded as i32 {
                return analysis.id;
            }
            assert!(
                matches!(
                    AnalysisStatus::try_from(current.status),
                    Ok(AnalysisStatus::Pending | AnalysisStatus::Running)
                ),
                "analysis ended {:?}",
                current.status
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("analysis did not finish");
    }

    async fn submit(&mut self, analysis_id: &str, request_id: &str) -> Task {
        self.alice
            .submit_task(SubmitTaskRequest {
                analysis_id: analysis_id.into(),
                execution_mode: ExecutionMode::Immediate as i32,
                error_strategy: ErrorStrategy::Abort as i32,
                remarks: "first sync".into(),
                request_id: request_id.into(),
                ..Default::default()
            })
            .await
            .expect("submit")
            .into_inner()
            .task
            .expect("task")
    }

    async fn get(&mut self, id: i64) -> GetTaskResponse {
        self.alice
            .get_task(GetTaskRequest { task_id: id })
            .await
            .expect("get task")
            .into_inner()
    }
}

fn status(task: &Task) -> TaskStatus {
    TaskStatus::try_from(task.status).expect("status")
}

fn kinds(timeline: &[TimelineEntry]) -> Vec<TimelineEntryKind> {
    timeline
        .iter()
        .map(|e| TimelineEntryKind::try_from(e.kind).expect("kind"))
        .collect()
}

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
    use sha2::Digest as _;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(script.as_bytes())),
        finished.script_sha256
    );
    f.database.drop_all().await;
}

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
