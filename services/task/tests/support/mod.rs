//! Test harness: the analysis and task services on real tonic servers (127.0.0.1:0), a metadata
//! store per test, tokens minted with `TokenIssuer`, and throw-away MariaDB databases.

#![allow(dead_code)]

pub mod fixture;
pub mod rows;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shadowsync_common::auth::{
    AuthLayer, Authenticator, BearerToken, Identity, ServiceIdentity, TokenIssuer,
};
use shadowsync_common::clock::{Clock, SystemClock};
use shadowsync_common::config::AuthConfig;
use shadowsync_common::db::Database;
use shadowsync_common::db::testing::TestDatabase;
use shadowsync_common::grpc::Channel;
use shadowsync_common::queue::{InProcessQueue, MessageQueue, Topology};
use shadowsync_common::secret::Secret;
use shadowsync_common::testing::TcpProxy;
use shadowsync_proto::approval::v1::approval_service_client::ApprovalServiceClient;
use shadowsync_proto::task::v1::task_execution_service_client::TaskExecutionServiceClient;
use shadowsync_proto::task::v1::task_service_client::TaskServiceClient;
use shadowsync_task::peers::testing::FixedPermissions;
use shadowsync_task::peers::{Approvals, PeerCredentials, PermissionChecker, analysis_client};
use shadowsync_task::{TaskApi, TaskConfig, TaskDeps};
use sqlx::Connection as _;
use sqlx::Executor as _;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

pub const AUDIENCE: &str = "shadowsync-test";
pub const MARIADB_ROOT: &str = "mysql://root@127.0.0.1:3306";

pub type Client = TaskServiceClient<InterceptedService<Channel, BearerToken>>;

pub struct Services {
    pub task_address: SocketAddr,
    pub analysis_address: SocketAddr,
    pub approval_address: SocketAddr,
    pub api: TaskApi,
    pub approval: shadowsync_approval::ApprovalApi,
    pub queue: Arc<dyn MessageQueue>,
    /// The task service reaches the approval service through this proxy (cut it to take the
    /// approval service away from the task service only).
    pub approval_proxy: TcpProxy,
    pub db: Database,
    /// The clock both services read (a `ManualClock` in the time-driven tests).
    pub clock: Arc<dyn Clock>,
    /// Background loops started by the test (the event consumer), ended with the services.
    background: Vec<tokio::task::AbortHandle>,
    _approval_store: TestDatabase,
    issuer: TokenIssuer,
    _store: TestDatabase,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub fn auth() -> (AuthLayer, TokenIssuer) {
    auth_with(Secret::new(format!("secret-{}", uuid::Uuid::new_v4())))
}

/// Verifier and issuer over one HS256 secret (shared with a child process in the memory test).
pub fn auth_with(secret: Secret<String>) -> (AuthLayer, TokenIssuer) {
    let config = AuthConfig {
        hs256_secret: Some(secret.clone()),
        rs256_public_keys: Vec::new(),
        audience: AUDIENCE.to_owned(),
        service_token: None,
        ..AuthConfig::default()
    };
    let authenticator = Authenticator::from_config(&config).expect("authenticator");
    (
        AuthLayer::new(Arc::new(authenticator)),
        TokenIssuer::hs256(&secret, AUDIENCE),
    )
}

pub async fn serve(
    routes: RoutesBuilder,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let router = Server::builder().add_routes(routes.routes());
    tokio::spawn(async move {
        let _ = router
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
            .await;
    });
    address
}

impl Services {
    /// Both services on a fresh SQLite store, `alice` allowed to analyse.
    pub async fn start(config: TaskConfig) -> Self {
        Self::start_with(config, Arc::new(FixedPermissions::allowing(&["alice"]))).await
    }

    pub async fn start_with(config: TaskConfig, permissions: Arc<dyn PermissionChecker>) -> Self {
        let secret = Secret::new(format!("secret-{}", uuid::Uuid::new_v4()));
        Self::start_inner(
            config,
            Some(permissions),
            auth_with(secret),
            None,
            Arc::new(SystemClock),
        )
        .await
    }

    /// As [`Services::start`], with people's tokens also coming from `provider` (the services'
    /// own tokens stay HS256, minted by [`Services::token`]).
    pub async fn start_with_identity_provider(
        config: TaskConfig,
        provider: shadowsync_common::config::IdentityProviderConfig,
    ) -> Self {
        let secret = Secret::new(format!("secret-{}", uuid::Uuid::new_v4()));
        let authenticator = Authenticator::from_config(&AuthConfig {
            hs256_secret: Some(secret.clone()),
            audience: AUDIENCE.to_owned(),
            identity_provider: Some(provider),
            ..AuthConfig::default()
        })
        .expect("authenticator");
        Self::start_inner(
            config,
            Some(Arc::new(FixedPermissions::allowing(&["alice"]))),
            (
                AuthLayer::new(Arc::new(authenticator)),
                TokenIssuer::hs256(&secret, AUDIENCE),
            ),
            None,
            Arc::new(SystemClock),
        )
        .await
    }

    /// Every service real: permissions come from the approval service's grants.
    pub async fn start_real(config: TaskConfig) -> Self {
        Self::start_real_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Services::start_real`], with both the task and the approval service reading `clock`
    /// (expirations and leases are then driven by moving a `ManualClock`, never by sleeping).
    pub async fn start_real_with_clock(config: TaskConfig, clock: Arc<dyn Clock>) -> Self {
        let secret = Secret::new(format!("secret-{}", uuid::Uuid::new_v4()));
        Self::start_inner(config, None, auth_with(secret), None, clock).await
    }

    /// The task service only, calling an analysis service that runs elsewhere and trusts
    /// tokens signed with `secret`.
    pub async fn start_external(
        config: TaskConfig,
        secret: Secret<String>,
        analysis_address: SocketAddr,
    ) -> Self {
        let permissions: Arc<dyn PermissionChecker> =
            Arc::new(FixedPermissions::allowing(&["alice"]));
        Self::start_inner(
            config,
            Some(permissions),
            auth_with(secret),
            Some(analysis_address),
            Arc::new(SystemClock),
        )
        .await
    }

    async fn start_inner(
        config: TaskConfig,
        permissions: Option<Arc<dyn PermissionChecker>>,
        (auth, issuer): (AuthLayer, TokenIssuer),
        external: Option<SocketAddr>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = futures::future::FutureExt::shared(async move {
            let _ = stopped.await;
        });

        let analysis_address = match external {
            Some(address) => address,
            None => {
                let mut routes = RoutesBuilder::default();
                shadowsync_analysis::add_routes(
                    &mut routes,
                    shadowsync_analysis::AnalysisApi::default(),
                    auth.clone(),
                );
                serve(routes, stopped.clone()).await
            }
        };

        // SQLite by default; `SS_TEST_STORE=postgres` runs the same tests on PostgreSQL.
        let store = if std::env::var("SS_TEST_STORE").as_deref() == Ok("postgres") {
            TestDatabase::postgres().await
        } else {
            TestDatabase::sqlite()
        };
        let db = Database::connect(&store.url, "task").await.expect("store");
        shadowsync_task::prepare(&db).await.expect("prepare");
        let channel = shadowsync_common::grpc::channel(&format!("http://{analysis_address}"), None)
            .expect("channel");
        let task_token = issuer.issue(
            &Identity::service(ServiceIdentity::Task),
            Duration::from_secs(3600),
        );
        let credentials = PeerCredentials::Token(BearerToken::new(&task_token).expect("token"));

        // The real approval service, on its own store, sharing an in-process queue.
        let queue: Arc<dyn MessageQueue> = Arc::new(
            InProcessQueue::in_memory(Topology::new("test."))
                .await
                .expect("queue"),
        );
        let approval_store = if std::env::var("SS_TEST_STORE").as_deref() == Ok("postgres") {
            TestDatabase::postgres().await
        } else {
            TestDatabase::sqlite()
        };
        let approval_db = Database::connect(&approval_store.url, "approval")
            .await
            .expect("approval store");
        shadowsync_approval::prepare(&approval_db, clock.as_ref())
            .await
            .expect("prepare approval");
        let approval = shadowsync_approval::ApprovalApi::new(shadowsync_approval::ApprovalDeps {
            db: approval_db,
            queue: queue.clone(),
            clock: clock.clone(),
        });
        let mut routes = RoutesBuilder::default();
        shadowsync_approval::add_routes(&mut routes, approval.clone(), auth.clone());
        let approval_address = serve(routes, stopped.clone()).await;
        let approval_proxy = TcpProxy::start(approval_address).await;
        let approval_channel =
            shadowsync_common::grpc::channel(&format!("http://{}", approval_proxy.address()), None)
                .expect("channel");
        let permissions = match permissions {
            Some(permissions) => permissions,
            None => Arc::new(shadowsync_task::peers::GrpcPermissionChecker::new(
                approval_channel.clone(),
                credentials.clone(),
            )),
        };
        let mut key = vec![0u8; 32];
        rand_bytes(&mut key);
        let api = TaskApi::new(TaskDeps {
            db: db.clone(),
            clock: clock.clone(),
            encryption_key: Secret::new(key),
            analysis: analysis_client(channel, credentials.clone()),
            permissions,
            approvals: Approvals::new(approval_channel, credentials),
            queue: Some(queue.clone()),
            config,
        })
        .expect("api");
        let mut routes = RoutesBuilder::default();
        shadowsync_task::add_routes(&mut routes, api.clone(), auth);
        let task_address = serve(routes, stopped).await;
        Self {
            task_address,
            analysis_address,
            approval_address,
            api,
            approval,
            queue,
            approval_proxy,
            _approval_store: approval_store,
            db,
            clock,
            background: Vec::new(),
            issuer,
            _store: store,
            _shutdown: stop,
        }
    }

    /// Starts the task service's consumer of approval and dispatch events; its subscription
    /// exists when this returns, so events published afterwards reach it.
    pub async fn follow_events(&mut self) {
        self.queue
            .declare_subscription(
                shadowsync_task::tasks::sweep::SUBSCRIPTION,
                &[
                    "approval.*.shadow_table_sync",
                    shadowsync_proto::routing::EXECUTION_DISPATCHED,
                ],
            )
            .await
            .expect("subscription");
        let api = self.api.clone();
        let consumer = tokio::spawn(async move {
            if let Some(tasks) = api.tasks() {
                tasks.consume_events(futures::future::pending::<()>()).await;
            }
        });
        self.background.push(consumer.abort_handle());
    }

    pub fn token(&self, identity: &Identity) -> Secret<String> {
        self.issuer.issue(identity, Duration::from_secs(3600))
    }

    /// A client of the task service as `subject` with `roles`.
    pub async fn client(&self, subject: &str, roles: &[&str]) -> Client {
        let channel =
            shadowsync_common::grpc::channel(&format!("http://{}", self.task_address), None)
                .expect("channel");
        let token = self.token(&Identity::user(subject, roles));
        TaskServiceClient::new(
            shadowsync_common::grpc::authenticated(channel, &token).expect("auth"),
        )
    }

    /// A client of the approval service (directly, not through the proxy).
    pub fn approval_client(
        &self,
        subject: &str,
        roles: &[&str],
    ) -> ApprovalServiceClient<InterceptedService<Channel, BearerToken>> {
        let channel =
            shadowsync_common::grpc::channel(&format!("http://{}", self.approval_address), None)
                .expect("channel");
        let token = self.token(&Identity::user(subject, roles));
        ApprovalServiceClient::new(
            shadowsync_common::grpc::authenticated(channel, &token).expect("auth"),
        )
    }

    /// A client of the execution API as `identity`.
    pub fn execution_client(
        &self,
        identity: &Identity,
    ) -> TaskExecutionServiceClient<InterceptedService<Channel, BearerToken>> {
        let channel =
            shadowsync_common::grpc::channel(&format!("http://{}", self.task_address), None)
                .expect("channel");
        let token = self.token(identity);
        TaskExecutionServiceClient::new(
            shadowsync_common::grpc::authenticated(channel, &token).expect("auth"),
        )
    }

    pub async fn count(&self, table: &str) -> i64 {
        let row: (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(self.db.pool())
                .await
                .expect("count");
        row.0
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

fn rand_bytes(buffer: &mut [u8]) {
    use ring::rand::SecureRandom as _;
    ring::rand::SystemRandom::new()
        .fill(buffer)
        .expect("random");
}

/// A MariaDB database (and optionally a user with a password) that is dropped at the end.
pub struct MariaDb {
    pub database: String,
    pub user: Option<(String, String)>,
}

pub async fn mariadb_root() -> sqlx::MySqlConnection {
    sqlx::MySqlConnection::connect(MARIADB_ROOT)
        .await
        .expect("MariaDB at 127.0.0.1:3306")
}

impl MariaDb {
    /// An empty database named `ss_task_<random>`.
    pub async fn empty() -> Self {
        let database = format!("ss_task_{}", uuid::Uuid::new_v4().simple());
        let mut root = mariadb_root().await;
        root.execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{database}` CHARACTER SET utf8mb4"
        )))
        .await
        .expect("create database");
        Self {
            database,
            user: None,
        }
    }

    /// A database loaded from the corpus with `load.sh`.
    pub async fn corpus(schema: &str) -> Self {
        let database = format!("ss_task_{}", uuid::Uuid::new_v4().simple());
        let status = tokio::process::Command::new("/work/shared/corpus/load.sh")
            .args(["mysql", schema, &database, MARIADB_ROOT])
            .env("LOAD_QUIET", "1")
            .status()
            .await
            .expect("load.sh");
        assert!(status.success(), "loading {schema} failed");
        Self {
            database,
            user: None,
        }
    }

    /// Adds a user with a password and every privilege on the database.
    pub async fn with_user(mut self) -> Self {
        let user = format!("ss_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let password = format!("Pw-{}-x", uuid::Uuid::new_v4().simple());
        let mut root = mariadb_root().await;
        for host in ["%", "localhost", "127.0.0.1"] {
            root.execute(sqlx::AssertSqlSafe(format!(
                "CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'"
            )))
            .await
            .expect("create user");
            root.execute(sqlx::AssertSqlSafe(format!(
                "GRANT ALL ON `{}`.* TO '{user}'@'{host}'",
                self.database
            )))
            .await
            .expect("grant");
        }
        self.user = Some((user, password));
        self
    }

    pub async fn execute(&self, sql: &str) {
        let mut root = mariadb_root().await;
        root.execute(sqlx::AssertSqlSafe(format!("USE `{}`", self.database)))
            .await
            .expect("use");
        for statement in sql.split(";\n").filter(|s| !s.trim().is_empty()) {
            root.execute(sqlx::AssertSqlSafe(statement.to_owned()))
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }

    pub async fn drop_all(&self) {
        let mut root = mariadb_root().await;
        let _ = root
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS `{}`",
                self.database
            )))
            .await;
        if let Some((user, _)) = &self.user {
            for host in ["%", "localhost", "127.0.0.1"] {
                let _ = root
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP USER IF EXISTS '{user}'@'{host}'"
                    )))
                    .await;
            }
        }
    }
}
