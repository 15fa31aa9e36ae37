//! Clients as the services' users hold them, and the journey's steps, each
//! polling under a timeout where the system works in the background.

use std::time::Duration;

use shadowsync_common::auth::{Identity, TokenIssuer};
use shadowsync_common::grpc::{self, AuthenticatedChannel, ClientTls};
use shadowsync_common::secret::Secret;
use shadowsync_proto::approval::v1::GrantPermissionRequest;
use shadowsync_proto::approval::v1::approval_service_client::ApprovalServiceClient;
use shadowsync_proto::common::v1::{Dialect, SyncRange};
use shadowsync_proto::task::v1::task_service_client::TaskServiceClient;
use shadowsync_proto::task::v1::*;

pub type TaskClient = TaskServiceClient<AuthenticatedChannel>;
pub type ApprovalClient = ApprovalServiceClient<AuthenticatedChannel>;

/// How long background work (analysis, approval events, dispatch, execution) may take before a
/// test gives up. Generous for 2 busy cores; a passing test never waits for it.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Mints a token every service trusts for an identity.
pub type Minter = std::sync::Arc<dyn Fn(&Identity) -> Secret<String> + Send + Sync>;

/// Where the public APIs are, how to reach them (TLS), and how to mint tokens they trust.
#[derive(Clone)]
pub struct Endpoints {
    task: String,
    approval: String,
    mint: Minter,
    tls: Option<ClientTls>,
}

impl Endpoints {
    /// Plaintext endpoints trusting tokens from `issuer`.
    pub fn new(task: String, approval: String, issuer: TokenIssuer) -> Self {
        let mint: Minter = std::sync::Arc::new(move |identity: &Identity| {
            issuer.issue(identity, Duration::from_secs(3600))
        });
        Self::with(task, approval, mint, None)
    }

    /// Endpoints with any token minter, over TLS when `tls` is given.
    pub fn with(task: String, approval: String, mint: Minter, tls: Option<ClientTls>) -> Self {
        Self {
            task,
            approval,
            mint,
            tls,
        }
    }

    /// Clients acting as `subject` with `roles` (`admin` for an administrator).
    pub fn user(&self, subject: &str, roles: &[&str]) -> User {
        let token = (self.mint)(&Identity::user(subject, roles));
        let connect = |url: &str| {
            let channel = grpc::channel(url, self.tls.as_ref()).expect("channel");
            grpc::authenticated(channel, &token).expect("token header")
        };
        User {
            name: subject.to_string(),
            task: TaskServiceClient::new(connect(&self.task)),
            approval: ApprovalServiceClient::new(connect(&self.approval)),
        }
    }
}

/// One person's clients of the task and approval services.
#[derive(Clone)]
pub struct User {
    pub name: String,
    pub task: TaskClient,
    pub approval: ApprovalClient,
}

/// A task status, decoded.
pub fn status(task: &Task) -> TaskStatus {
    TaskStatus::try_from(task.status).expect("known task status")
}

/// True for the statuses a task never leaves.
pub fn is_final(status: TaskStatus) -> bool {
    !matches!(
        status,
        TaskStatus::Unspecified
            | TaskStatus::Submitting
            | TaskStatus::Approving
            | TaskStatus::WaitForExecution
            | TaskStatus::Executing
    )
}

impl User {
    /// Registers a MariaDB connection to the test server (admin only) and returns its id.
    pub async fn add_connection(&mut self, environment: &str) -> String {
        let (host, port) = crate::target::host_and_port();
        self.task
            .create_connection(CreateConnectionRequest {
                connection: Some(ConnectionSpec {
                    name: format!("conn-{}", uuid::Uuid::new_v4().simple()),
                    dialect: Dialect::Mariadb as i32,
                    host,
                    port,
                    username: crate::target::user(),
                    password: crate::target::password(),
                    environment: environment.to_string(),
                    options: Default::default(),
                }),
                request_id: String::new(),
            })
            .await
            .expect("create connection")
            .into_inner()
            .connection
            .expect("connection")
            .id
    }

    /// Grants `user` the shadow-table-sync permission on a whole connection (admin only).
    pub async fn grant(&mut self, user: &str, connection_id: &str) {
        self.approval
            .grant_permission(GrantPermissionRequest {
                user: user.to_string(),
                task_type: "shadow_table_sync".into(),
                connection_id: connection_id.to_string(),
                reason: "system test".into(),
                ..Default::default()
            })
            .await
            .expect("grant permission");
    }

    /// Starts an analysis of all tables of `database` (default naming) and waits until it
    /// SUCCEEDED.
    pub async fn analyse(&mut self, connection_id: &str, database: &str) -> Analysis {
        let started = self
            .task
            .start_analysis(StartAnalysisRequest {
                connection_id: connection_id.to_string(),
                database: database.to_string(),
                range: SyncRange::All as i32,
                ..Default::default()
            })
            .await
            .expect("start analysis")
            .into_inner()
            .analysis
            .expect("analysis");
        self.wait_analysis(&started.id).await
    }

    /// Waits until analysis `id` SUCCEEDED.
    ///
    /// # Panics
    /// When it fails or takes longer than [`PATIENCE`].
    pub async fn wait_analysis(&mut self, id: &str) -> Analysis {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let analysis = self
                .task
                .get_analysis(GetAnalysisRequest {
                    analysis_id: id.to_string(),
                    omit_tables: true,
                    ..Default::default()
                })
                .await
                .expect("get analysis")
                .into_inner()
                .analysis
                .expect("analysis");
            match AnalysisStatus::try_from(analysis.status) {
                Ok(AnalysisStatus::Succeeded) => return analysis,
                Ok(AnalysisStatus::Pending | AnalysisStatus::Running) => {}
                other => panic!("analysis {id} ended {other:?}: {:?}", analysis.failure),
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "analysis {id} did not finish"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Analyses `tables` of `database` on `connection` (PARTIAL range) and submits the result
    /// for immediate execution with the ABORT strategy.
    pub async fn submit_tables(
        &mut self,
        connection_id: &str,
        database: &str,
        tables: &[&str],
    ) -> Task {
        self.submit_tables_with(connection_id, database, tables, ErrorStrategy::Abort)
            .await
    }

    /// [`User::submit_tables`] with the given error strategy.
    pub async fn submit_tables_with(
        &mut self,
        connection_id: &str,
        database: &str,
        tables: &[&str],
        strategy: ErrorStrategy,
    ) -> Task {
        let started = self
            .task
            .start_analysis(StartAnalysisRequest {
                connection_id: connection_id.to_string(),
                database: database.to_string(),
                range: SyncRange::Partial as i32,
                tables: tables.iter().map(|table| table.to_string()).collect(),
                ..Default::default()
            })
            .await
            .expect("start analysis")
            .into_inner()
            .analysis
            .expect("analysis");
        self.wait_analysis(&started.id).await;
        self.submit(&started.id, strategy).await
    }

    /// Waits until task `id`'s timeline shows its dispatch to the execute queue.
    pub async fn wait_dispatched(&mut self, id: i64) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !kinds(&self.timeline(id).await).contains(&TimelineEntryKind::Dispatched) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "task {id} never dispatched"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every row of an analysis (both tabs), in plan order.
    pub async fn analysis_tables(&mut self, id: &str) -> Vec<AnalysisTable> {
        self.task
            .get_analysis(GetAnalysisRequest {
                analysis_id: id.to_string(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("get analysis tables")
            .into_inner()
            .tables
    }

    /// Submits an analysis for immediate execution with `strategy`.
    pub async fn submit(&mut self, analysis_id: &str, strategy: ErrorStrategy) -> Task {
        self.submit_with(SubmitTaskRequest {
            analysis_id: analysis_id.to_string(),
            execution_mode: ExecutionMode::Immediate as i32,
            error_strategy: strategy as i32,
            remarks: "system test".into(),
            ..Default::default()
        })
        .await
    }

    pub async fn submit_with(&mut self, request: SubmitTaskRequest) -> Task {
        self.task
            .submit_task(request)
            .await
            .expect("submit task")
            .into_inner()
            .task
            .expect("task")
    }

    pub async fn get_task(&mut self, id: i64) -> GetTaskResponse {
        self.task
            .get_task(GetTaskRequest { task_id: id })
            .await
            .expect("get task")
            .into_inner()
    }

    /// Approves task `id`'s current approval node as this user.
    pub async fn approve(&mut self, id: i64) -> Task {
        self.task
            .approve_task(ApproveTaskRequest {
                task_id: id,
                comment: format!("approved by {}", self.name),
                request_id: String::new(),
            })
            .await
            .unwrap_or_else(|status| panic!("{} cannot approve task {id}: {status:?}", self.name))
            .into_inner()
            .task
            .expect("task")
    }

    /// Polls task `id` until `done` holds.
    ///
    /// # Panics
    /// After [`PATIENCE`], showing the last state seen.
    pub async fn wait_task(&mut self, id: i64, what: &str, done: impl Fn(&Task) -> bool) -> Task {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let task = self.get_task(id).await.task.expect("task");
            if done(&task) {
                return task;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "task {id} never got {what}; last seen {:?} {task:?}",
                status(&task)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until task `id` is in `expected`.
    ///
    /// # Panics
    /// When it reaches another final status first, or after [`PATIENCE`].
    pub async fn wait_status(&mut self, id: i64, expected: TaskStatus) -> Task {
        let task = self
            .wait_task(id, &format!("{expected:?}"), |task| {
                status(task) == expected || is_final(status(task))
            })
            .await;
        if status(&task) != expected {
            let timeline = self.timeline(id).await;
            let logs = self.logs(id, LogLevelFilter::All).await;
            panic!(
                "task {id} ended {:?}, not {expected:?}\ntimeline: {timeline:#?}\nlogs: {logs:#?}",
                status(&task)
            );
        }
        task
    }

    /// Every table of task `id` (to sync and not synced), in plan order.
    pub async fn task_tables(&mut self, id: i64) -> Vec<TaskTable> {
        self.task
            .list_task_tables(ListTaskTablesRequest {
                task_id: id,
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("list task tables")
            .into_inner()
            .tables
    }

    /// The execution status of each synced table, by source table name.
    pub async fn table_outcomes(&mut self, id: i64) -> Vec<(String, TableExecutionStatus)> {
        self.task_tables(id)
            .await
            .into_iter()
            .filter(|table| table.synced)
            .map(|table| {
                let status = TableExecutionStatus::try_from(table.status).expect("table status");
                (table.source_table, status)
            })
            .collect()
    }

    /// Task `id`'s whole process timeline.
    pub async fn timeline(&mut self, id: i64) -> Vec<TimelineEntry> {
        self.task
            .list_task_timeline(ListTaskTimelineRequest {
                task_id: id,
                page_size: 1000,
                page_token: String::new(),
            })
            .await
            .expect("timeline")
            .into_inner()
            .entries
    }

    /// Task `id`'s log (first 1,000 entries), filtered by level.
    pub async fn logs(&mut self, id: i64, filter: LogLevelFilter) -> Vec<TaskLogEntry> {
        self.task
            .list_task_logs(ListTaskLogsRequest {
                task_id: id,
                level_filter: filter as i32,
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("task logs")
            .into_inner()
            .entries
    }
}

/// The kinds of a timeline, decoded.
pub fn kinds(timeline: &[TimelineEntry]) -> Vec<TimelineEntryKind> {
    timeline
        .iter()
        .map(|entry| TimelineEntryKind::try_from(entry.kind).expect("timeline kind"))
        .collect()
}

/// The people of most journeys: an administrator who registered a MariaDB connection, `alice`
/// (a developer granted shadow-table sync on it) and `bob` (an administrator, so the builtin
/// template lets him approve alice's tasks).
pub struct Team {
    pub admin: User,
    pub alice: User,
    pub bob: User,
    pub connection: String,
}

impl Team {
    pub async fn new(endpoints: &Endpoints) -> Self {
        let mut admin = endpoints.user("root-admin", &["admin"]);
        let connection = admin.add_connection("test").await;
        admin.grant("alice", &connection).await;
        Self {
            admin,
            alice: endpoints.user("alice", &["dev"]),
            bob: endpoints.user("bob", &["admin"]),
            connection,
        }
    }

    /// Alice analyses `database`, submits it with `strategy`, and bob approves it; returns the
    /// task id.
    pub async fn submit_approved(&mut self, database: &str, strategy: ErrorStrategy) -> i64 {
        let analysis = self.alice.analyse(&self.connection, database).await;
        let task = self.alice.submit(&analysis.id, strategy).await;
        self.bob.approve(task.id).await;
        task.id
    }
}

/// Polls `done` every 20 ms until it holds.
///
/// # Panics
/// After [`PATIENCE`], naming `what`.
pub async fn until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
