//! `StartAnalysis` rejections through real servers: each names its field and
//! stores nothing; a target that fails later is reported as a retryable failure.

mod support;

use std::sync::Arc;
use std::time::Duration;

use shadowsync_proto::common::v1::{AnalysisFailureReason, Dialect, ShadowNaming, SyncRange};
use shadowsync_proto::task::v1::*;
use shadowsync_task::TaskConfig;
use shadowsync_task::peers::testing::UnavailablePermissions;
use support::{Client, MariaDb, Services};
use tonic::Code;

async fn connection(admin: &mut Client, port: u32) -> String {
    admin
        .create_connection(CreateConnectionRequest {
            connection: Some(ConnectionSpec {
                name: format!("target-{port}"),
                dialect: Dialect::Mariadb as i32,
                host: "127.0.0.1".into(),
                port,
                username: "root".into(),
                // Keeps the unreachable case short: sqlx retries a refused connection until then.
                options: [("connect-timeout".to_string(), "1s".to_string())].into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create")
        .into_inner()
        .connection
        .expect("connection")
        .id
}

fn request(connection_id: &str, database: &str) -> StartAnalysisRequest {
    StartAnalysisRequest {
        connection_id: connection_id.into(),
        database: database.into(),
        range: SyncRange::Partial as i32,
        tables: vec!["a".into(), "b".into()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_name_the_field_and_store_nothing() {
    let target = MariaDb::empty().await;
    target
        .execute("CREATE TABLE a (id INT PRIMARY KEY);\nCREATE TABLE b (id INT PRIMARY KEY);\nCREATE TABLE c (id INT)")
        .await;
    let config = TaskConfig {
        max_tables: 2,
        ..TaskConfig::default()
    };
    let services = Services::start(config).await;
    let mut admin = services.client("root", &["admin"]).await;
    let mut alice = services.client("alice", &[]).await;
    let mut bob = services.client("bob", &[]).await;
    let id = connection(&mut admin, 3306).await;
    let db = target.database.as_str();

    let cases: Vec<(StartAnalysisRequest, Code, &str)> = vec![
        (request("", db), Code::InvalidArgument, "connection_id"),
        (
            request("no-such-connection", db),
            Code::NotFound,
            "connection_id",
        ),
        (request(&id, ""), Code::InvalidArgument, "database"),
        (
            request(&id, "ss_task_missing_database"),
            Code::NotFound,
            "database",
        ),
        (
            StartAnalysisRequest {
                tables: vec![],
                ..request(&id, db)
            },
            Code::InvalidArgument,
            "tables",
        ),
        (
            StartAnalysisRequest {
                range: 0,
                ..request(&id, db)
            },
            Code::InvalidArgument,
            "range",
        ),
        (
            StartAnalysisRequest {
                naming: Some(ShadowNaming {
                    mode: 1,
                    affix: "bad-affix".into(),
                }),
                ..request(&id, db)
            },
            Code::InvalidArgument,
            "naming.affix",
        ),
        (
            StartAnalysisRequest {
                tables: vec!["a".into(), "b".into(), "c".into()],
                ..request(&id, db)
            },
            Code::InvalidArgument,
            "tables",
        ),
        (
            StartAnalysisRequest {
                range: SyncRange::All as i32,
                tables: vec![],
                ..request(&id, db)
            },
            Code::InvalidArgument,
            "range",
        ),
    ];
    for (request, code, field) in cases {
        let status = alice.start_analysis(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), code, "{request:?}: {status:?}");
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }
    let denied = bob.start_analysis(request(&id, db)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(services.count("analyses").await, 0);

    // A PARTIAL list naming a missing table is analysed: the row says SOURCE_MISSING.
    let started = alice
        .start_analysis(StartAnalysisRequest {
            tables: vec!["a".into(), "zz".into()],
            ..request(&id, db)
        })
        .await
        .expect("start")
        .into_inner()
        .analysis
        .expect("analysis");
    let done = wait(&mut alice, &started.id).await;
    assert_eq!(
        done.status,
        AnalysisStatus::Succeeded as i32,
        "{:?}",
        done.failure
    );
    assert_eq!((done.create_count, done.unsyncable_count), (1, 1));

    // A retried StartAnalysis (same request_id, same parameters) gets the same analysis; the
    // same id with other parameters is refused.
    let keyed = StartAnalysisRequest {
        request_id: "retry-1".into(),
        ..request(&id, db)
    };
    let first = alice
        .start_analysis(keyed.clone())
        .await
        .expect("first")
        .into_inner();
    let again = alice
        .start_analysis(keyed.clone())
        .await
        .expect("again")
        .into_inner();
    assert_eq!(first.analysis.unwrap().id, again.analysis.unwrap().id);
    let reused = alice
        .start_analysis(StartAnalysisRequest {
            tables: vec!["a".into()],
            ..keyed
        })
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert!(reused.message().starts_with("request_id"));
    assert_eq!(services.count("analyses").await, 2);
    services.api.runner().expect("runner").idle().await;
    target.drop_all().await;
}

async fn wait(client: &mut Client, id: &str) -> Analysis {
    for _ in 0..300 {
        let analysis = client
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
        if !matches!(
            AnalysisStatus::try_from(analysis.status),
            Ok(AnalysisStatus::Pending | AnalysisStatus::Running)
        ) {
            return analysis;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("analysis {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_target_fails_retryably_and_retry_runs_again() {
    let services = Services::start(TaskConfig::default()).await;
    let mut admin = services.client("root", &["admin"]).await;
    let mut alice = services.client("alice", &[]).await;
    // Nothing listens on port 1.
    let id = connection(&mut admin, 1).await;
    let started = alice
        .start_analysis(request(&id, "shop"))
        .await
        .expect("start")
        .into_inner()
        .analysis
        .expect("analysis");
    let failed = wait(&mut alice, &started.id).await;
    assert_eq!(failed.status, AnalysisStatus::Failed as i32);
    let failure = failed.failure.expect("failure");
    assert_eq!(
        failure.reason,
        AnalysisFailureReason::Unreachable as i32,
        "{failure:?}"
    );
    assert!(failure.retryable);

    let retried = alice
        .retry_analysis(RetryAnalysisRequest {
            analysis_id: started.id.clone(),
        })
        .await
        .expect("retry")
        .into_inner()
        .analysis
        .expect("analysis");
    assert_eq!(retried.id, started.id);
    assert_eq!(
        wait(&mut alice, &started.id).await.status,
        AnalysisStatus::Failed as i32
    );
    let bob = services.client("bob", &[]).await;
    let status = { bob }
        .retry_analysis(RetryAnalysisRequest {
            analysis_id: started.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_service_down_is_unavailable() {
    let services =
        Services::start_with(TaskConfig::default(), Arc::new(UnavailablePermissions)).await;
    let mut admin = services.client("root", &["admin"]).await;
    let mut alice = services.client("alice", &[]).await;
    let id = connection(&mut admin, 3306).await;
    let status = alice
        .start_analysis(request(&id, "shop"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(services.count("analyses").await, 0);
}
