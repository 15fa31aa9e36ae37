//! The analysis service through a real tonic server against MariaDB: only `svc:task` may call
//! it, listings filter and page, and `Analyze` streams bounded messages ending in one summary or
//! failure.

#![allow(clippy::unwrap_used)] // test helpers: a failed set-up step should just panic

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use shadowsync_analysis::{AnalysisApi, AnalysisConfig, add_routes};
use shadowsync_common::auth::{
    AuthLayer, Authenticator, BearerToken, Identity, ServiceIdentity, TokenIssuer,
};
use shadowsync_common::config::AuthConfig;
use shadowsync_common::grpc::Channel;
use shadowsync_common::secret::Secret;
use shadowsync_proto::analysis::v1::analysis_service_client::AnalysisServiceClient;
use shadowsync_proto::analysis::v1::analyze_response::Event;
use shadowsync_proto::analysis::v1::*;
use shadowsync_proto::common::v1::{
    AnalysisFailureReason, ConnectionDetails, Dialect, SyncRange, TableAnalysisResult,
};
use sqlx::{Connection as _, Executor as _};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;

const ROOT: &str = "mysql://root@127.0.0.1:3306";

type Client = AnalysisServiceClient<InterceptedService<Channel, BearerToken>>;

async fn start(config: AnalysisConfig) -> (Client, Client) {
    let secret = Secret::new(format!("secret-{}", uuid::Uuid::new_v4()));
    let auth = AuthConfig {
        hs256_secret: Some(secret.clone()),
        rs256_public_keys: Vec::new(),
        audience: "test".into(),
        service_token: None,
        ..AuthConfig::default()
    };
    let interceptor = AuthLayer::new(Arc::new(Authenticator::from_config(&auth).unwrap()));
    let mut routes = tonic::service::RoutesBuilder::default();
    add_routes(&mut routes, AnalysisApi::new(config), interceptor);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes.routes())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let issuer = TokenIssuer::hs256(&secret, "test");
    let client = |identity: Identity| {
        let token = issuer.issue(&identity, Duration::from_secs(600));
        let channel = shadowsync_common::grpc::channel(&format!("http://{address}"), None).unwrap();
        AnalysisServiceClient::new(shadowsync_common::grpc::authenticated(channel, &token).unwrap())
    };
    (
        client(Identity::service(ServiceIdentity::Task)),
        client(Identity::user("alice", &["admin"])),
    )
}

fn details(port: u32) -> ConnectionDetails {
    ConnectionDetails {
        connection_id: "c1".into(),
        dialect: Dialect::Mariadb as i32,
        host: "127.0.0.1".into(),
        port,
        username: "root".into(),
        password: String::new(),
        options: [("connect-timeout".to_string(), "1s".to_string())].into(),
    }
}

struct Target(String);

impl Target {
    async fn new(statements: &[&str]) -> Self {
        let name = format!("ss_analysis_{}", uuid::Uuid::new_v4().simple());
        let mut root = sqlx::MySqlConnection::connect(ROOT).await.unwrap();
        root.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
            .await
            .unwrap();
        root.execute(sqlx::AssertSqlSafe(format!("USE `{name}`")))
            .await
            .unwrap();
        for statement in statements {
            root.execute(sqlx::AssertSqlSafe(statement.to_string()))
                .await
                .unwrap();
        }
        Self(name)
    }

    async fn drop_all(&self) {
        let mut root = sqlx::MySqlConnection::connect(ROOT).await.unwrap();
        let _ = root
            .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE `{}`", self.0)))
            .await;
    }
}

async fn analyze(client: &mut Client, request: AnalyzeRequest) -> Vec<AnalyzeResponse> {
    let mut stream = client.analyze(request).await.unwrap().into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        messages.push(message);
    }
    messages
}

#[tokio::test]
async fn only_the_task_service_may_call() {
    let (_, mut person) = start(AnalysisConfig::default()).await;
    let status = person
        .list_databases(ListDatabasesRequest {
            connection: Some(details(3306)),
            name_contains: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = person
        .analyze(AnalyzeRequest {
            connection: Some(details(3306)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn listings_filter_and_page() {
    let target = Target::new(&[
        "CREATE TABLE orders (id INT PRIMARY KEY) COMMENT 'the orders'",
        "CREATE TABLE order_items (id INT PRIMARY KEY) ENGINE=Aria",
        "CREATE TABLE customers (id INT PRIMARY KEY)",
        "CREATE VIEW v_orders AS SELECT id FROM orders",
    ])
    .await;
    let (mut task, _) = start(AnalysisConfig::default()).await;
    let databases = task
        .list_databases(ListDatabasesRequest {
            connection: Some(details(3306)),
            name_contains: target.0.to_uppercase(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(databases.databases, std::slice::from_ref(&target.0));

    let first = task
        .list_tables(ListTablesRequest {
            connection: Some(details(3306)),
            database: target.0.clone(),
            name_contains: "ORDER".into(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.total_size, 2, "views are not base tables");
    assert_eq!(first.tables[0].name, "order_items");
    assert_eq!(first.tables[0].engine, "Aria");
    let second = task
        .list_tables(ListTablesRequest {
            connection: Some(details(3306)),
            database: target.0.clone(),
            name_contains: "ORDER".into(),
            page_size: 1,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.tables[0].name, "orders");
    assert_eq!(second.tables[0].comment, "the orders");
    assert!(second.next_page_token.is_empty());

    let missing = task
        .list_tables(ListTablesRequest {
            connection: Some(details(3306)),
            database: "ss_analysis_no_such_database".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let unreachable = task
        .list_tables(ListTablesRequest {
            connection: Some(details(1)),
            database: target.0.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unreachable.code(), Code::Unavailable);
    target.drop_all().await;
}

#[tokio::test]
async fn analyze_streams_plans_and_ends_with_one_summary_or_failure() {
    let target = Target::new(&[
        "CREATE TABLE parent (id INT PRIMARY KEY)",
        "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, FOREIGN KEY (parent_id) REFERENCES parent (id))",
        "CREATE TABLE same (id INT PRIMARY KEY)",
        "CREATE TABLE _test_same (id INT PRIMARY KEY)",
    ])
    .await;
    let (mut task, _) = start(AnalysisConfig {
        max_tables: 3,
        ..Default::default()
    })
    .await;
    let request = AnalyzeRequest {
        analysis_id: "a1".into(),
        connection: Some(details(3306)),
        database: target.0.clone(),
        range: SyncRange::All as i32,
        ..Default::default()
    };
    let messages = analyze(&mut task, request.clone()).await;
    assert!(messages.iter().all(|m| m.encoded_len() < 1024 * 1024));
    let tables: Vec<AnalyzedTable> = messages
        .iter()
        .filter_map(|m| match &m.event {
            Some(Event::Tables(batch)) => Some(batch.tables.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let names: Vec<&str> = tables
        .iter()
        .map(|t| t.plan.as_ref().unwrap().source_table.as_str())
        .collect();
    assert_eq!(
        names,
        ["parent", "child", "same"],
        "plan order: parents first"
    );
    let ordinals: Vec<u32> = tables
        .iter()
        .map(|t| t.plan.as_ref().unwrap().ordinal)
        .collect();
    assert_eq!(ordinals, [0, 1, 2]);
    let child = tables[1].plan.as_ref().unwrap();
    assert!(
        child.statements[0]
            .sql
            .contains("REFERENCES `_test_parent`")
    );
    assert_eq!(child.depends_on, ["parent"]);
    assert_eq!(
        tables[2].plan.as_ref().unwrap().result,
        TableAnalysisResult::NoAction as i32
    );
    match &messages.last().unwrap().event {
        Some(Event::Summary(summary)) => {
            assert_eq!(
                (
                    summary.tables_total,
                    summary.create_count,
                    summary.no_action_count
                ),
                (3, 2, 1)
            );
            assert!(summary.server_version.contains("MariaDB"));
        }
        other => panic!("expected a summary, got {other:?}"),
    }

    // Skipping the parent skips the child with it: its shadow would reference production.
    let skipped = analyze(
        &mut task,
        AnalyzeRequest {
            skipped_tables: vec!["parent".into()],
            ..request.clone()
        },
    )
    .await;
    let child = skipped
        .iter()
        .filter_map(|m| match &m.event {
            Some(Event::Tables(batch)) => Some(batch.tables.clone()),
            _ => None,
        })
        .flatten()
        .find(|t| t.plan.as_ref().unwrap().source_table == "child")
        .unwrap();
    assert!(child.skipped);
    assert_eq!(
        child.reason,
        "skipped with `parent`: its shadow would reference production `parent`"
    );
    assert!(child.plan.unwrap().statements.is_empty());

    // Over the maximum, and a missing database: failures as data.
    let too_many = analyze(
        &mut task,
        AnalyzeRequest {
            max_tables: 2,
            ..request.clone()
        },
    )
    .await;
    match &too_many.last().unwrap().event {
        Some(Event::Failure(failure)) => {
            assert_eq!(failure.reason, AnalysisFailureReason::TooManyTables as i32)
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let missing = analyze(
        &mut task,
        AnalyzeRequest {
            database: "ss_analysis_no_such_database".into(),
            ..request.clone()
        },
    )
    .await;
    match &missing.last().unwrap().event {
        Some(Event::Failure(failure)) => {
            assert_eq!(
                failure.reason,
                AnalysisFailureReason::DatabaseNotFound as i32
            )
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let bad = task
        .analyze(AnalyzeRequest {
            range: SyncRange::Partial as i32,
            ..request
        })
        .await;
    // Bad input is reported as an RPC error, on the call or as the stream's first item.
    let code = match bad {
        Err(status) => status.code(),
        Ok(response) => response.into_inner().message().await.unwrap_err().code(),
    };
    assert_eq!(code, Code::InvalidArgument);
    target.drop_all().await;
}
