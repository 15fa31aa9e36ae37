//! The runner lease: an analysis whose replica died is marked FAILED (retryable) and can be
//! retried; a PENDING analysis no runner claimed is picked up by another replica's sweep.

mod support;

use std::time::Duration;

use shadowsync_common::clock::{Clock as _, SystemClock};
use shadowsync_proto::common::v1::{AnalysisFailureReason, Dialect, SyncRange};
use shadowsync_proto::task::v1::*;
use shadowsync_task::TaskConfig;
use shadowsync_task::store::analyses::AnalysisRepository as _;
use shadowsync_task::store::{AnalysisRecord, PreviewSummary, SqlStore, status};
use support::{Client, MariaDb, Services};

const MINUTE: i64 = 60_000_000;

fn record(connection_id: &str, database: &str, at: i64) -> AnalysisRecord {
    AnalysisRecord {
        id: uuid::Uuid::new_v4().to_string(),
        connection_id: connection_id.into(),
        connection_name: "main".into(),
        database: database.into(),
        range: SyncRange::All as i64,
        requested_tables: Vec::new(),
        naming_mode: 1,
        affix: "_test_".into(),
        status: status::PENDING,
        tables_done: 0,
        tables_total: 0,
        progress_percent: 0,
        failure: None,
        server_version: String::new(),
        creator: "alice".into(),
        created_at: at,
        updated_at: at,
        expire_at: at + 10_000 * MINUTE,
        task_id: 0,
        preview: PreviewSummary::default(),
        previous_analysis_id: String::new(),
        initial_skips: Vec::new(),
        attempt: 0,
    }
}

async fn header(client: &mut Client, id: &str) -> Analysis {
    client
        .get_analysis(GetAnalysisRequest {
            analysis_id: id.into(),
            omit_tables: true,
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner()
        .analysis
        .expect("analysis")
}

async fn wait(client: &mut Client, id: &str) -> Analysis {
    for _ in 0..300 {
        let analysis = header(client, id).await;
        if analysis.status != AnalysisStatus::Pending as i32
            && analysis.status != AnalysisStatus::Running as i32
        {
            return analysis;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("analysis {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_runners_fail_retryably_and_stranded_analyses_are_picked_up() {
    let target = MariaDb::empty().await;
    target
        .execute("CREATE TABLE a (id INT PRIMARY KEY);\nCREATE TABLE b (id INT PRIMARY KEY)")
        .await;
    let services = Services::start(TaskConfig::default()).await;
    let mut admin = services.client("root", &["admin"]).await;
    let mut alice = services.client("alice", &[]).await;
    let connection = admin
        .create_connection(CreateConnectionRequest {
            connection: Some(ConnectionSpec {
                name: "main".into(),
                dialect: Dialect::Mariadb as i32,
                host: "127.0.0.1".into(),
                username: "root".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("connection")
        .into_inner()
        .connection
        .expect("connection");
    let store = SqlStore::new(services.db.clone());
    let now = SystemClock.now();
    let runner = services.api.runner().expect("runner");

    // A replica claimed this one and died: its lease lapsed a minute ago.
    let orphan = record(&connection.id, &target.database, now - 5 * MINUTE);
    store.insert_analysis(&orphan).await.expect("insert");
    assert!(
        store
            .claim_analysis(&orphan.id, "dead-replica", now - 3 * MINUTE, now - MINUTE)
            .await
            .expect("claim")
    );
    // A replica accepted this one and died before claiming it.
    let stranded = record(&connection.id, &target.database, now - 5 * MINUTE);
    store.insert_analysis(&stranded).await.expect("insert");
    assert_eq!(
        header(&mut alice, &orphan.id).await.status,
        AnalysisStatus::Running as i32
    );

    runner.sweep().await;

    let failed = header(&mut alice, &orphan.id).await;
    assert_eq!(failed.status, AnalysisStatus::Failed as i32);
    let failure = failed.failure.expect("failure");
    assert_eq!(failure.reason, AnalysisFailureReason::WorkerLost as i32);
    assert!(failure.retryable);
    let picked_up = wait(&mut alice, &stranded.id).await;
    assert_eq!(
        picked_up.status,
        AnalysisStatus::Succeeded as i32,
        "{:?}",
        picked_up.failure
    );
    assert_eq!(picked_up.create_count, 2);

    alice
        .retry_analysis(RetryAnalysisRequest {
            analysis_id: orphan.id.clone(),
        })
        .await
        .expect("retry");
    let retried = wait(&mut alice, &orphan.id).await;
    assert_eq!(
        retried.status,
        AnalysisStatus::Succeeded as i32,
        "{:?}",
        retried.failure
    );
    assert!(retried.failure.is_none());
    target.drop_all().await;
}
