//! Peak memory of the task service during a large analysis (not part of the default run).
//!
//! The analysis service (which holds the whole catalog while it plans) runs in a child process,
//! so this process' peak RSS (`VmHWM`) is the task service's (plus the test's client); the
//! child's own baseline and peak are read from `/proc/<child pid>/status` while it still runs:
//!
//! ```text
//! SS_MEMORY_TABLES=1000 [SS_TEST_STORE=postgres] cargo test -p shadowsync-task --test memory -- --ignored --nocapture thousand_tables
//! ```

mod support;

use std::io::BufRead as _;
use std::time::{Duration, Instant};

use shadowsync_common::secret::Secret;
use shadowsync_proto::common::v1::{Dialect, SyncRange};
use shadowsync_proto::task::v1::*;
use shadowsync_task::TaskConfig;
use sqlx::Executor as _;
use support::{MariaDb, Services};

const CHILD_SECRET: &str = "SS_MEMORY_CHILD_SECRET";

/// Peak and current resident set of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    memory_of("self")
}

/// Peak and current resident set of process `pid` (`self` or a number), in KiB (0 if unknown).
fn memory_of(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The child: serves the analysis service until its stdin closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started by thousand_tables_peak_memory"]
async fn analysis_service_child() {
    let Ok(secret) = std::env::var(CHILD_SECRET) else {
        return;
    };
    let (auth, _) = support::auth_with(Secret::new(secret));
    let mut routes = tonic::service::RoutesBuilder::default();
    shadowsync_analysis::add_routes(
        &mut routes,
        shadowsync_analysis::AnalysisApi::default(),
        auth,
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let address = support::serve(routes, async move {
        let _ = stopped.await;
    })
    .await;
    println!("ANALYSIS_ADDRESS={address}");
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await
    .expect("stdin");
    let _ = stop.send(());
}

async fn create_tables(target: &MariaDb, count: usize) {
    let mut root = support::mariadb_root().await;
    root.execute(sqlx::AssertSqlSafe(format!("USE `{}`", target.database)))
        .await
        .expect("use");
    let mut batch = Vec::new();
    for i in 0..count {
        let parent = if i % 10 == 9 {
            format!(
                ", KEY `k_parent` (`parent_id`), CONSTRAINT `fk_t{i}` FOREIGN KEY (`parent_id`) REFERENCES `t{:04}` (`id`)",
                i - 1
            )
        } else {
            String::new()
        };
        batch.push(format!(
            "CREATE TABLE `t{i:04}` (`id` BIGINT NOT NULL AUTO_INCREMENT, `parent_id` BIGINT NULL, \
             `name` VARCHAR(100) NOT NULL DEFAULT '', `amount` DECIMAL(12,2) NOT NULL DEFAULT 0, \
             `status` ENUM('new','paid','shipped') NOT NULL DEFAULT 'new', `note` TEXT, \
             `created_at` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (`id`), \
             KEY `k_name` (`name`, `status`){parent}) ENGINE=InnoDB COMMENT 'table {i}'"
        ));
        match i % 3 {
            0 => batch.push(format!("CREATE TABLE `_test_t{i:04}` LIKE `t{i:04}`")),
            1 => {
                batch.push(format!("CREATE TABLE `_test_t{i:04}` LIKE `t{i:04}`"));
                batch.push(format!("ALTER TABLE `_test_t{i:04}` DROP COLUMN `note`"));
            }
            _ => {}
        }
        if batch.len() >= 60 || i + 1 == count {
            root.execute(sqlx::AssertSqlSafe(std::mem::take(&mut batch).join(";")))
                .await
                .expect("create tables");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it explicitly (see the module doc)"]
async fn thousand_tables_peak_memory() {
    let tables: usize = std::env::var("SS_MEMORY_TABLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let target = MariaDb::empty().await;
    create_tables(&target, tables).await;

    let secret = format!("secret-{}", uuid::Uuid::new_v4());
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "analysis_service_child",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_SECRET, &secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("child");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("ANALYSIS_ADDRESS=").map(str::to_owned))
        .expect("child address")
        .parse()
        .expect("address");
    // Keep draining the child's output so it never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));

    let services =
        Services::start_external(TaskConfig::default(), Secret::new(secret), address).await;
    let mut admin = services.client("root", &["admin"]).await;
    let mut alice = services.client("alice", &[]).await;
    let connection = admin
        .create_connection(CreateConnectionRequest {
            connection: Some(ConnectionSpec {
                name: "big".into(),
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
    let child_pid = child.id().to_string();
    let (_, baseline) = memory_kib();
    let (_, child_baseline) = memory_of(&child_pid);
    let started_at = Instant::now();
    let analysis = alice
        .start_analysis(StartAnalysisRequest {
            connection_id: connection.id,
            database: target.database.clone(),
            range: SyncRange::All as i32,
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner()
        .analysis
        .expect("analysis");
    let done = loop {
        let header = alice
            .get_analysis(GetAnalysisRequest {
                analysis_id: analysis.id.clone(),
                omit_tables: true,
                ..Default::default()
            })
            .await
            .expect("poll")
            .into_inner()
            .analysis
            .expect("analysis");
        if header.status != AnalysisStatus::Pending as i32
            && header.status != AnalysisStatus::Running as i32
        {
            break header;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let elapsed = started_at.elapsed();
    let (peak, current) = memory_kib();
    // Read before the child is told to stop: its peak over the whole analysis.
    let (child_peak, child_current) = memory_of(&child_pid);
    assert_eq!(
        done.status,
        AnalysisStatus::Succeeded as i32,
        "{:?}",
        done.failure
    );
    assert_eq!(done.tables_total as usize, tables);
    let stored: (i64,) = sqlx::query_as(
        "SELECT COALESCE(SUM(LENGTH(source_ddl) + LENGTH(shadow_ddl)), 0) FROM analysis_tables",
    )
    .fetch_one(services.db.pool())
    .await
    .expect("stored");
    println!(
        "tables={tables} create={} update={} no_action={} elapsed={:.1}s preview={} statements / {} bytes, \
         stored DDL={} KiB; task-side RSS before={} KiB, peak={} KiB (+{} KiB), after={} KiB; \
         analysis-side RSS before={} KiB, peak={} KiB (+{} KiB), after={} KiB",
        done.create_count,
        done.update_count,
        done.no_action_count,
        elapsed.as_secs_f64(),
        done.preview_statement_count,
        done.preview_size_bytes,
        stored.0 / 1024,
        baseline,
        peak,
        peak.saturating_sub(baseline),
        current,
        child_baseline,
        child_peak,
        child_peak.saturating_sub(child_baseline),
        child_current,
    );
    assert!(
        child_peak > 0,
        "the analysis child's /proc status was not readable"
    );
    drop(child.stdin.take());
    let _ = child.wait();
    target.drop_all().await;
}
