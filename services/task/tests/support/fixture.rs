//! A task-service fixture on top of [`Services`]: the real approval service (alice granted
//! `shadow_table_sync` on one MariaDB connection, the builtin admin approval), a small source
//! database, and helpers that drive a task through the public API (submit, decide, claim,
//! report, complete) so each test reads as the transitions it checks.

use std::sync::Arc;
use std::time::Duration;

use shadowsync_common::auth::{BearerToken, Identity, ServiceIdentity};
use shadowsync_common::clock::{Clock, ManualClock, SystemClock};
use shadowsync_common::grpc::Channel;
use shadowsync_proto::approval::v1::{
    GetApprovalRequest, GrantPermissionRequest, get_approval_request,
};
use shadowsync_proto::common::v1::{Dialect, SyncRange};
use shadowsync_proto::task::v1::task_execution_service_client::TaskExecutionServiceClient;
use shadowsync_proto::task::v1::*;
use shadowsync_task::TaskConfig;
use tonic::service::interceptor::InterceptedService;

use super::{Client, MariaDb, Services};

pub type Executor = TaskExecutionServiceClient<InterceptedService<Channel, BearerToken>>;

pub struct Fixture {
    pub services: Services,
    pub alice: Client,
    pub admin: Client,
    pub database: MariaDb,
    pub connection_id: String,
    /// Alice's `shadow_table_sync` grant on the connection (revoke it to take her permission).
    pub permission_id: String,
    /// Set when the fixture runs on a manual clock.
    pub clock: Option<ManualClock>,
    submissions: u32,
}

impl Fixture {
    /// On the system clock.
    pub async fn new() -> Self {
        Self::start(None, TaskConfig::default()).await
    }

    /// On a manual clock starting at the current time (tokens are checked against the system
    /// clock, so the manual one only ever moves forward from now).
    pub async fn with_manual_clock() -> Self {
        Self::with_manual_clock_and(TaskConfig::default()).await
    }

    /// [`Fixture::with_manual_clock`] with `config`.
    pub async fn with_manual_clock_and(config: TaskConfig) -> Self {
        let clock = ManualClock::new(SystemClock.now());
        Self::start(Some(clock), config).await
    }

    async fn start(clock: Option<ManualClock>, config: TaskConfig) -> Self {
        let shared: Arc<dyn Clock> = match &clock {
            Some(clock) => Arc::new(clock.clone()),
            None => Arc::new(SystemClock),
        };
        let services = Services::start_real_with_clock(config, shared).await;
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
        let permission_id = services
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
            .expect("grant")
            .into_inner()
            .permission
            .expect("permission")
            .id;
        Self {
            services,
            alice,
            admin,
            database,
            connection_id: connection.id,
            permission_id,
            clock,
            submissions: 0,
        }
    }

    /// Moves the manual clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.as_ref().expect("a manual clock").advance(by);
    }

    /// A SUCCEEDED analysis of the whole database by alice.
    pub async fn analysis(&mut self) -> String {
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
        self.wait_for_analysis(&analysis.id).await;
        analysis.id
    }

    /// Waits until the analysis `id` has SUCCEEDED (panics if it ends otherwise).
    pub async fn wait_for_analysis(&mut self, id: &str) {
        // The analysis runs in the background on real MariaDB; poll its status (this waits for
        // work, not for time to pass).
        for _ in 0..300 {
            let current = self
                .alice
                .get_analysis(GetAnalysisRequest {
                    analysis_id: id.into(),
                    omit_tables: true,
                    ..Default::default()
                })
                .await
                .expect("get")
                .into_inner()
                .analysis
                .expect("analysis");
            if current.status == AnalysisStatus::Succeeded as i32 {
                return;
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

    pub async fn submit(&mut self, analysis_id: &str, request_id: &str) -> Task {
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

    /// A fresh analysis submitted as a task, APPROVING.
    pub async fn approving(&mut self) -> Task {
        let analysis_id = self.analysis().await;
        self.submissions += 1;
        let task = self
            .submit(&analysis_id, &format!("req-{}", self.submissions))
            .await;
        assert_eq!(status(&task), TaskStatus::Approving);
        task
    }

    /// A fresh task approved by the admin: WAIT_FOR_EXECUTION.
    pub async fn waiting(&mut self) -> Task {
        let task = self.approving().await;
        let approved = self.approve(task.id).await.expect("approve");
        assert_eq!(status(&approved), TaskStatus::WaitForExecution);
        approved
    }

    pub async fn approve(&mut self, id: i64) -> Result<Task, tonic::Status> {
        self.admin
            .approve_task(ApproveTaskRequest {
                task_id: id,
                comment: "ship it".into(),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().task.expect("task"))
    }

    pub async fn reject(&mut self, id: i64) -> Result<Task, tonic::Status> {
        self.admin
            .reject_task(RejectTaskRequest {
                task_id: id,
                comment: "not today".into(),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().task.expect("task"))
    }

    /// Alice aborts her task.
    pub async fn abort(&mut self, id: i64) -> Result<Task, tonic::Status> {
        self.alice
            .abort_task(AbortTaskRequest {
                task_id: id,
                comment: "stop".into(),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().task.expect("task"))
    }

    pub async fn get(&mut self, id: i64) -> GetTaskResponse {
        self.alice
            .get_task(GetTaskRequest { task_id: id })
            .await
            .expect("get task")
            .into_inner()
    }

    pub async fn status_of(&mut self, id: i64) -> TaskStatus {
        status(&self.get(id).await.task.expect("task"))
    }

    /// Polls until the task reaches `expected`: the event consumer applies events in the
    /// background, so this waits for work to finish, not for time to pass.
    pub async fn wait_for_status(&mut self, id: i64, expected: TaskStatus) {
        for _ in 0..100 {
            if self.status_of(id).await == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("task {id} never became {expected:?}");
    }

    /// A client of the execution API as `svc:executor`.
    pub fn executor(&self) -> Executor {
        self.services
            .execution_client(&Identity::service(ServiceIdentity::Executor))
    }

    pub async fn claim_outcome(
        &self,
        id: i64,
        attempt: u32,
        executor_id: &str,
    ) -> claim_execution_response::Outcome {
        self.executor()
            .claim_execution(ClaimExecutionRequest {
                task_id: id,
                attempt,
                executor_id: executor_id.into(),
                plan_page_size: 0,
            })
            .await
            .expect("claim")
            .into_inner()
            .outcome
            .expect("outcome")
    }

    /// Claims `attempt` of task `id` and returns the grant (the whole plan fits one page).
    pub async fn claim(&self, id: i64, attempt: u32, executor_id: &str) -> ClaimedExecution {
        match self.claim_outcome(id, attempt, executor_id).await {
            claim_execution_response::Outcome::Granted(granted) => granted,
            other => panic!("claim refused: {other:?}"),
        }
    }

    /// Reports `state` for each of the claimed tables.
    pub async fn report(
        &self,
        id: i64,
        attempt: u32,
        granted: &ClaimedExecution,
        states: &[TableExecutionStatus],
    ) -> Result<Vec<ReportTableResultResponse>, tonic::Status> {
        let lease = lease_token(granted);
        let mut executor = self.executor();
        let mut answers = Vec::new();
        for (table, state) in granted.tables.iter().zip(states) {
            let source = table.plan.as_ref().expect("plan").source_table.clone();
            let answer = executor
                .report_table_result(ReportTableResultRequest {
                    task_id: id,
                    attempt,
                    lease_token: lease.clone(),
                    source_table: source,
                    status: *state as i32,
                    statements_done: 1,
                    ..Default::default()
                })
                .await?;
            answers.push(answer.into_inner());
        }
        Ok(answers)
    }

    pub async fn complete(
        &self,
        id: i64,
        attempt: u32,
        lease_token: &str,
        outcome: ExecutionOutcome,
    ) -> Result<TaskStatus, tonic::Status> {
        let answer = self
            .executor()
            .complete_execution(CompleteExecutionRequest {
                task_id: id,
                attempt,
                lease_token: lease_token.into(),
                outcome: outcome as i32,
                message: String::new(),
            })
            .await?;
        Ok(TaskStatus::try_from(answer.into_inner().status).expect("status"))
    }

    pub async fn heartbeat(
        &self,
        id: i64,
        attempt: u32,
        lease_token: &str,
    ) -> Result<HeartbeatResponse, tonic::Status> {
        self.executor()
            .heartbeat(HeartbeatRequest {
                task_id: id,
                attempt,
                lease_token: lease_token.into(),
                current_table: String::new(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// The approval request of `task`, as the approval service has it.
    pub async fn approval_of(&self, task: &Task) -> shadowsync_proto::approval::v1::Approval {
        self.services
            .approval_client("root-admin", &["admin"])
            .get_approval(GetApprovalRequest {
                key: Some(get_approval_request::Key::ApprovalId(
                    task.approval_id.clone(),
                )),
            })
            .await
            .expect("approval")
            .into_inner()
            .approval
            .expect("approval")
    }
}

pub fn lease_token(granted: &ClaimedExecution) -> String {
    granted.lease.as_ref().expect("lease").lease_token.clone()
}

pub fn status(task: &Task) -> TaskStatus {
    TaskStatus::try_from(task.status).expect("status")
}

pub fn kinds(timeline: &[TimelineEntry]) -> Vec<TimelineEntryKind> {
    timeline
        .iter()
        .map(|e| TimelineEntryKind::try_from(e.kind).expect("kind"))
        .collect()
}

/// Per-table statuses of a task's synced tables, in plan order.
pub async fn table_statuses(client: &mut Client, id: i64) -> Vec<TableExecutionStatus> {
    client
        .list_task_tables(ListTaskTablesRequest {
            task_id: id,
            tab: AnalysisTab::Synced as i32,
            ..Default::default()
        })
        .await
        .expect("tables")
        .into_inner()
        .tables
        .iter()
        .map(|t| TableExecutionStatus::try_from(t.status).expect("table status"))
        .collect()
}
