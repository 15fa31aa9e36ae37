//! The task store cut mid-run through a TCP proxy in front of the shared PostgreSQL (the server
//! itself is never stopped): while it cannot be reached every use case fails UNAVAILABLE (which
//! an executor hands back and a client retries), never INTERNAL (which strands work), and the
//! same pool serves again once it is back. A call fails within seconds, not after a long wait.

use std::time::{Duration, Instant};

use shadowsync_common::db::Database;
use shadowsync_common::db::testing::TestDatabase;
use shadowsync_common::testing::TcpProxy;
use shadowsync_task::error::TaskError;
use shadowsync_task::store::SqlStore;
use tonic::{Code, Status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_is_unavailable_and_serves_again_once_back() {
    let store = TestDatabase::postgres().await;
    let (_, rest) = store.url.split_once("://").expect("scheme");
    let (authority, path) = rest.split_once('/').expect("path");
    let (user, host) = authority.rsplit_once('@').expect("user");
    let target = tokio::net::lookup_host(host)
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let mut proxy = TcpProxy::start(target).await;
    let url = format!("postgres://{user}@{}/{path}", proxy.address());
    let db = Database::connect(&url, "task").await.expect("store");
    shadowsync_task::prepare(&db).await.expect("prepare");
    let tasks = SqlStore::new(db);
    assert!(tasks.get_task(1).await.expect("read").is_none());

    proxy.cut().await;
    let started = Instant::now();
    let error = tasks.get_task(1).await.expect_err("store away");
    let status = Status::from(TaskError::from(error));
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        !status.message().contains("127.0.0.1"),
        "no detail of the store reaches the client: {status:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a call fails fast, not after a long connect wait: {:?}",
        started.elapsed()
    );

    proxy.restore();
    let back = Instant::now();
    loop {
        match tasks.get_task(1).await {
            Ok(_) => break,
            Err(error) => {
                assert!(
                    back.elapsed() < Duration::from_secs(10),
                    "still failing 10 s after the store came back: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
