//! ListTasks at scale: fills a throw-away PostgreSQL database (127.0.0.1:5432, dropped at the
//! end) with 1,000,000 tasks spread over 50 connections, 2,000 creators, every visible status
//! and a year of creation times, serves the task service on 127.0.0.1:0, and times ListTasks
//! through the gRPC API, printing p50/p99 per query. Not a test and not part of CI:
//!
//! ```text
//! CARGO_TARGET_DIR=… cargo run -p shadowsync-task --example list_tasks_bench [--release] [-- TASKS]
//! ```
//!
//! The PostgreSQL server is `SHADOWSYNC_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). `LIST_TASKS_BENCH_KEEP=1` keeps the database
//! (its URL is printed) for EXPLAIN.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shadowsync_common::auth::{
    AuthLayer, Authenticator, BearerToken, Identity, ServiceIdentity, TokenIssuer,
};
use shadowsync_common::clock::{Clock, SystemClock, to_timestamp};
use shadowsync_common::config::AuthConfig;
use shadowsync_common::db::Database;
use shadowsync_common::db::testing::TestDatabase;
use shadowsync_common::grpc::Channel;
use shadowsync_common::secret::Secret;
use shadowsync_proto::task::v1::task_service_client::TaskServiceClient;
use shadowsync_proto::task::v1::{ListTasksRequest, TaskStatus};
use shadowsync_task::peers::testing::FixedPermissions;
use shadowsync_task::peers::{Approvals, PeerCredentials, analysis_client};
use shadowsync_task::{TaskApi, TaskConfig, TaskDeps};
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

const AUDIENCE: &str = "shadowsync-bench";
const YEAR_MICROS: i64 = 365 * 24 * 3600 * 1_000_000;
/// Timed calls per query (after a few warm-up calls).
const RUNS: usize = 30;

type Client = TaskServiceClient<InterceptedService<Channel, BearerToken>>;

/// Fills `tasks` rows in one statement per batch. Creation times run a year back from `now` in
/// id order (ids increase with time, as they do in production); statuses are skewed the way a
/// real history is (mostly finished); every task names one of 200 approvers on its approval
/// node (current while APPROVING) and one in twenty also the `dba` role.
async fn fill(db: &Database, tasks: i64, now: i64) {
    let started = Instant::now();
    let batch = 100_000;
    let mut from = 1;
    while from <= tasks {
        let to = (from + batch - 1).min(tasks);
        sqlx::query(
            "INSERT INTO tasks (analysis_id, connection_id, connection_name, environment, \
             database_name, status, status_rank, creator, creator_name, created_at, updated_at, \
             finished_at, database_name_lower, creator_lower, creator_name_lower) \
             SELECT 'analysis-' || g, 'conn-' || (g % 50), 'connection ' || (g % 50), 'prod', \
             'db_' || (g % 500), s.name, s.rank, 'user-' || (g % 2000), 'User ' || (g % 2000), \
             $3 - ($4 - g) * ($5 / $4), $3 - ($4 - g) * ($5 / $4), NULL, 'db_' || (g % 500), \
             'user-' || (g % 2000), 'user ' || (g % 2000) \
             FROM generate_series($1::BIGINT, $2::BIGINT) AS g \
             CROSS JOIN LATERAL (SELECT CASE \
               WHEN (g * 7919) % 100 < 60 THEN 'EXECUTION_SUCCEEDED' \
               WHEN (g * 7919) % 100 < 70 THEN 'EXECUTION_FAILED' \
               WHEN (g * 7919) % 100 < 78 THEN 'CANCELLED' \
               WHEN (g * 7919) % 100 < 84 THEN 'REJECTED' \
               WHEN (g * 7919) % 100 < 87 THEN 'APPROVAL_EXPIRED' \
               WHEN (g * 7919) % 100 < 89 THEN 'WAIT_FOR_EXECUTION_EXPIRED' \
               WHEN (g * 7919) % 100 < 90 THEN 'EXECUTION_EXPIRED' \
               WHEN (g * 7919) % 100 < 94 THEN 'APPROVING' \
               WHEN (g * 7919) % 100 < 97 THEN 'WAIT_FOR_EXECUTION' \
               ELSE 'EXECUTING' END AS name) AS n \
             CROSS JOIN LATERAL (SELECT n.name, CASE n.name \
               WHEN 'APPROVING' THEN 2 WHEN 'REJECTED' THEN 3 WHEN 'APPROVAL_EXPIRED' THEN 4 \
               WHEN 'WAIT_FOR_EXECUTION' THEN 5 WHEN 'WAIT_FOR_EXECUTION_EXPIRED' THEN 6 \
               WHEN 'EXECUTING' THEN 7 WHEN 'EXECUTION_SUCCEEDED' THEN 8 \
               WHEN 'EXECUTION_FAILED' THEN 9 WHEN 'EXECUTION_EXPIRED' THEN 10 ELSE 11 END \
               AS rank) AS s",
        )
        .bind(from)
        .bind(to)
        .bind(now)
        .bind(tasks)
        .bind(YEAR_MICROS)
        .execute(db.pool())
        .await
        .expect("insert tasks");
        sqlx::query(
            "INSERT INTO task_principals (task_id, principal, is_current, created_at) \
             SELECT id, 'user:approver-' || (id % 200), \
             CASE WHEN status = 'APPROVING' THEN 1 ELSE 0 END, created_at \
             FROM tasks WHERE id BETWEEN $1 AND $2 \
             UNION ALL \
             SELECT id, 'role:dba', CASE WHEN status = 'APPROVING' THEN 1 ELSE 0 END, created_at \
             FROM tasks WHERE id BETWEEN $1 AND $2 AND id % 20 = 0",
        )
        .bind(from)
        .bind(to)
        .execute(db.pool())
        .await
        .expect("insert principals");
        from = to + 1;
    }
    // What autovacuum does after a bulk load in production: statistics for the planner and
    // the visibility map that lets counts run as index-only scans.
    sqlx::query("VACUUM ANALYZE")
        .execute(db.pool())
        .await
        .expect("analyze");
    println!(
        "filled {tasks} tasks in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Serves the task API; returns the address with TCP_NODELAY, the production-path address and
/// the token issuer.
async fn serve(
    db: Database,
    secret: &Secret<String>,
) -> (std::net::SocketAddr, std::net::SocketAddr, TokenIssuer) {
    let config = AuthConfig {
        hs256_secret: Some(secret.clone()),
        rs256_public_keys: Vec::new(),
        audience: AUDIENCE.to_owned(),
        service_token: None,
        ..AuthConfig::default()
    };
    let auth = AuthLayer::new(Arc::new(
        Authenticator::from_config(&config).expect("authenticator"),
    ));
    let issuer = TokenIssuer::hs256(secret, AUDIENCE);
    let token = issuer.issue(
        &Identity::service(ServiceIdentity::Task),
        Duration::from_secs(3600),
    );
    let credentials = PeerCredentials::Token(BearerToken::new(&token).expect("token"));
    // ListTasks never calls the peers: channels to a closed port are enough.
    let nowhere =
        shadowsync_common::grpc::channel("http://127.0.0.1:9", None).expect("peer channel");
    let api = TaskApi::new(TaskDeps {
        db,
        clock: Arc::new(SystemClock),
        encryption_key: Secret::new(vec![7u8; 32]),
        analysis: analysis_client(nowhere.clone(), credentials.clone()),
        permissions: Arc::new(FixedPermissions::allowing(&[])),
        approvals: Approvals::new(nowhere, credentials),
        queue: None,
        config: TaskConfig::default(),
    })
    .expect("api");
    // Two servers over the same API: one with TCP_NODELAY on its accepted connections, which
    // measures the service and its store; one through `shadowsync_common::grpc::serve`, the
    // production path, whose incoming stream leaves Nagle on (tonic ignores `tcp_nodelay` for
    // `serve_with_incoming*`), so a response spanning several writes waits for the client's
    // delayed ACK (~40 ms on Linux).
    let mut routes = RoutesBuilder::default();
    shadowsync_task::add_routes(&mut routes, api, auth);
    let routes = routes.routes();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let nodelay = listener.local_addr().expect("address");
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(
        Server::builder()
            .add_routes(routes.clone())
            .serve_with_incoming(incoming),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let production = listener.local_addr().expect("address");
    let router = shadowsync_common::grpc::server_builder(None)
        .expect("server builder")
        .add_routes(routes);
    tokio::spawn(shadowsync_common::grpc::serve(
        router,
        listener,
        std::future::pending::<()>(),
    ));
    (nodelay, production, issuer)
}

async fn client(address: std::net::SocketAddr, issuer: &TokenIssuer, who: &Identity) -> Client {
    let channel =
        shadowsync_common::grpc::channel(&format!("http://{address}"), None).expect("channel");
    let token = issuer.issue(who, Duration::from_secs(3600));
    TaskServiceClient::new(shadowsync_common::grpc::authenticated(channel, &token).expect("auth"))
}

/// Times `RUNS` calls of `request` and prints p50/p99 with the page and total seen.
async fn time(name: &str, client: &mut Client, request: ListTasksRequest) {
    let mut samples = Vec::with_capacity(RUNS);
    let mut shape = (0, 0);
    for run in 0..RUNS + 3 {
        let started = Instant::now();
        let page = client
            .list_tasks(request.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .into_inner();
        let elapsed = started.elapsed();
        shape = (page.tasks.len(), page.total_size);
        if run >= 3 {
            samples.push(elapsed);
        }
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[index].as_secs_f64() * 1_000.0
    };
    println!(
        "{name:<48} p50 {:>8.2} ms  p99 {:>8.2} ms  ({} rows, total_size {})",
        at(0.50),
        at(0.99),
        shape.0,
        shape.1
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tasks: i64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |n| n.parse().expect("TASKS is a number"));
    let store = TestDatabase::postgres().await;
    let db = Database::connect(&store.url, "task").await.expect("store");
    shadowsync_task::prepare(&db).await.expect("prepare");
    let now = SystemClock.now();
    fill(&db, tasks, now).await;

    let secret = Secret::new(format!("bench-{}", uuid::Uuid::new_v4()));
    let (address, production, issuer) = serve(db.clone(), &secret).await;
    let mut admin = client(address, &issuer, &Identity::user("root", &["admin"])).await;
    let mut admin_via_production =
        client(production, &issuer, &Identity::user("root", &["admin"])).await;
    let mut user = client(address, &issuer, &Identity::user("user-7", &["dev"])).await;
    let mut approver = client(address, &issuer, &Identity::user("approver-3", &["dba"])).await;
    let all_time = ListTasksRequest {
        create_time_after: Some(to_timestamp(now - 2 * YEAR_MICROS)),
        ..Default::default()
    };

    time(
        "admin, first page (48 h), production serve path",
        &mut admin_via_production,
        ListTasksRequest::default(),
    )
    .await;
    time(
        "admin, first page (48 h default)",
        &mut admin,
        ListTasksRequest::default(),
    )
    .await;
    time("admin, first page, all time", &mut admin, all_time.clone()).await;
    // A token 10,000 rows deep.
    let mut deep = ListTasksRequest {
        page_size: 500,
        ..all_time.clone()
    };
    for _ in 0..20 {
        let page = admin
            .list_tasks(deep.clone())
            .await
            .expect("page")
            .into_inner();
        deep.page_token = page.next_page_token;
    }
    time(
        "admin, page 10,001-10,020 via token, all time",
        &mut admin,
        ListTasksRequest {
            page_size: 20,
            ..deep.clone()
        },
    )
    .await;
    let failed = ListTasksRequest {
        statuses: vec![TaskStatus::ExecutionFailed as i32],
        ..Default::default()
    };
    time(
        "admin, status EXECUTION_FAILED (48 h)",
        &mut admin,
        failed.clone(),
    )
    .await;
    time(
        "admin, status EXECUTION_FAILED, all time",
        &mut admin,
        ListTasksRequest { ..failed.clone() }.with_window(&all_time),
    )
    .await;
    time(
        "admin, status APPROVING, sort by status, all time",
        &mut admin,
        ListTasksRequest {
            statuses: vec![TaskStatus::Approving as i32],
            sort_field: shadowsync_proto::task::v1::TaskSortField::Status as i32,
            ..all_time.clone()
        },
    )
    .await;
    let creator = ListTasksRequest {
        creator_contains: "user-12".into(),
        ..Default::default()
    };
    time(
        "admin, creator contains \"user-12\" (48 h)",
        &mut admin,
        creator.clone(),
    )
    .await;
    time(
        "admin, creator contains \"user-12\", all time",
        &mut admin,
        creator.with_window(&all_time),
    )
    .await;
    time(
        "user-7 (non-admin), 48 h",
        &mut user,
        ListTasksRequest::default(),
    )
    .await;
    time("user-7 (non-admin), all time", &mut user, all_time.clone()).await;
    time(
        "approver-3 + role dba, 48 h",
        &mut approver,
        ListTasksRequest::default(),
    )
    .await;
    time(
        "approver-3 + role dba, all time",
        &mut approver,
        all_time.clone(),
    )
    .await;
    drop(db);
    if std::env::var_os("LIST_TASKS_BENCH_KEEP").is_some() {
        // For EXPLAIN afterwards; drop it by hand (`DROP DATABASE … WITH (FORCE)`).
        println!("kept the benchmark database: {}", store.url);
        std::mem::forget(store);
    } else {
        drop(store);
        println!("dropped the benchmark database");
    }
}

trait WithWindow {
    fn with_window(self, window: &ListTasksRequest) -> Self;
}

impl WithWindow for ListTasksRequest {
    fn with_window(self, window: &ListTasksRequest) -> Self {
        ListTasksRequest {
            create_time_after: window.create_time_after,
            create_time_before: window.create_time_before,
            ..self
        }
    }
}
