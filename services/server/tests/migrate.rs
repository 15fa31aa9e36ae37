//! `shadowsync migrate` and `database.auto_migrate=false`, on the shared PostgreSQL: a service
//! that may not migrate never touches the schema and stays NOT_SERVING, saying why, until
//! `migrate` has run; then it serves. The command itself: exit codes and output.

use std::process::Command;
use std::time::Duration;

use shadowsync_common::config::{Config, ConfigLoader};
use shadowsync_common::db::{Database, DbError};
use shadowsync_common::testing::TestDatabase;
use shadowsync_server::{Role, run};
use sqlx::Executor as _;
use tokio::sync::oneshot;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const SECRET: &str = "test-secret-test-secret-test-secret";

fn config(db: &TestDatabase, dir: &tempfile::TempDir, extra: &[&str]) -> Config {
    let url = format!("database.url={}", db.url);
    let data_dir = format!("data_dir={}", dir.path().display());
    let secret = format!("auth.hs256_secret={SECRET}");
    let mut flags = vec![
        "listen=127.0.0.1:0",
        url.as_str(),
        data_dir.as_str(),
        secret.as_str(),
        "encryption.key=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ];
    flags.extend_from_slice(extra);
    ConfigLoader::new().flags(flags).load().expect("config")
}

async fn health(address: std::net::SocketAddr) -> ServingStatus {
    let channel =
        shadowsync_common::grpc::channel(&format!("http://{address}"), None).expect("channel");
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers");
    ServingStatus::try_from(response.into_inner().status).expect("status")
}

/// Tables the task service's schema holds (0 when the schema does not exist).
async fn task_tables(db: &TestDatabase) -> i64 {
    let store = Database::connect(&db.url, "probe").await.expect("connect");
    let count = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'task'",
    )
    .fetch_one(store.pool())
    .await
    .expect("count");
    store.close().await;
    count
}

#[tokio::test]
async fn a_service_that_may_not_migrate_waits_not_serving_until_migrate_has_run() {
    let db = TestDatabase::postgres().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // The peers are never called: only start-up and health matter here.
    let config = config(
        &db,
        &dir,
        &[
            "database.auto_migrate=false",
            "endpoints.analysis=http://127.0.0.1:9",
            "endpoints.approval=http://127.0.0.1:9",
        ],
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(run(Role::Task, config.clone(), listener, async {
        let _ = stopped.await;
    }));

    // Several start-up passes go by (they retry within a second): none may migrate.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(health(address).await, ServingStatus::NotServing);
    assert_eq!(task_tables(&db).await, 0, "the service created no table");

    let migrated = shadowsync_server::migrate::migrate(&config, Duration::from_secs(10))
        .await
        .expect("migrate");
    let stores: Vec<_> = migrated.iter().map(|m| m.store).collect();
    assert_eq!(stores, ["task", "approval"]);
    for store in &migrated {
        assert_eq!(store.before.applied, None, "{store}");
        assert_eq!(store.after.applied, store.after.needed, "{store}");
        assert!(store.after.applied.is_some(), "{store}");
    }
    assert!(task_tables(&db).await > 0);

    let mut serving = false;
    for _ in 0..100 {
        if health(address).await == ServingStatus::Serving {
            serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(serving, "serving once the schema is current");

    // A second run applies nothing and says so.
    let again = shadowsync_server::migrate::migrate(&config, Duration::from_secs(10))
        .await
        .expect("migrate again");
    for store in &again {
        assert_eq!(store.before, store.after);
        assert!(store.to_string().contains("nothing to apply"), "{store}");
    }

    let _ = stop.send(());
    server
        .await
        .expect("server task")
        .expect("server stops cleanly");
}

#[tokio::test]
async fn require_current_names_pending_and_diverged_migrations_and_accepts_newer_ones() {
    let db = TestDatabase::postgres().await;
    let store = Database::connect(&db.url, "task").await.expect("connect");
    let migrations = shadowsync_task::MIGRATIONS;

    let error = store.require_current(&migrations).await.expect_err("empty");
    let message = error.to_string();
    assert!(
        matches!(error, DbError::SchemaNotCurrent { .. }),
        "{message}"
    );
    assert!(message.contains("run `shadowsync migrate`"), "{message}");
    assert!(message.contains("1 connections and analyses"), "{message}");

    store.migrate(&migrations).await.expect("migrate");
    let version = store.require_current(&migrations).await.expect("current");
    assert_eq!(version.applied, version.needed);

    // A migration from a newer release (this one was rolled back) is accepted.
    store
        .pool()
        .execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (99990101000000, 'from a newer release', TRUE, '\\x00', 1)",
        )
        .await
        .expect("record a newer migration");
    store
        .require_current(&migrations)
        .await
        .expect("a newer schema still serves an older build");

    // A recorded migration whose text differs from this build's is a diverged history.
    store
        .pool()
        .execute("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = 2")
        .await
        .expect("tamper");
    let message = store
        .require_current(&migrations)
        .await
        .expect_err("diverged")
        .to_string();
    assert!(
        message.contains("migration 2") && message.contains("diverged"),
        "{message}"
    );

    // So is one that failed half-way.
    store
        .pool()
        .execute("UPDATE _sqlx_migrations SET success = FALSE WHERE version = 3")
        .await
        .expect("tamper");
    let message = store
        .require_current(&migrations)
        .await
        .expect_err("failed")
        .to_string();
    assert!(message.contains("failed part-way"), "{message}");
    store.close().await;
}

#[test]
fn the_command_exits_non_zero_with_the_reason_and_zero_when_done() {
    let binary = env!("CARGO_BIN_EXE_shadowsync");
    let output = Command::new(binary)
        .arg("migrate")
        .env_remove("SHADOWSYNC_DATABASE_URL")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("database.url is not set"), "{stderr}");

    // An unreachable database: the reason, after the bounded wait.
    let output = Command::new(binary)
        .args([
            "migrate",
            "--wait",
            "1s",
            "--set",
            "database.url=postgres://nobody@127.0.0.1:1/nothing",
        ])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("task store"), "{stderr}");
    assert!(
        !stderr.contains("nobody@"),
        "the URL may hold a password: {stderr}"
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(TestDatabase::postgres());
    let output = Command::new(binary)
        .args(["migrate", "--set", &format!("database.url={}", db.url)])
        .env("SHADOWSYNC_LOG_FORMAT", "json")
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("task store: migrated from empty to "),
        "{stdout}"
    );
    assert!(
        stdout.contains("approval store: migrated from empty to "),
        "{stdout}"
    );
    drop(db);
}

/// Rollback safety (README, "Deploy on Kubernetes"): a release's migrations only add, so the
/// previous release still runs on the schema after `helm rollback`. A migration that drops,
/// renames or retypes, or adds a NOT NULL column without a default, breaks that promise.
#[test]
fn migrations_after_the_first_only_add() {
    for (store, migrations) in [
        ("task", shadowsync_task::MIGRATIONS),
        ("approval", shadowsync_approval::MIGRATIONS),
    ] {
        for migrator in [migrations.postgres, migrations.sqlite] {
            for migration in migrator.iter().filter(|m| m.version > 1) {
                let sql: String = migration
                    .sql
                    .as_str()
                    .lines()
                    .filter(|line| !line.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n")
                    .to_uppercase();
                for forbidden in [
                    "DROP TABLE",
                    "DROP COLUMN",
                    "RENAME",
                    "ALTER COLUMN",
                    "TRUNCATE",
                ] {
                    assert!(
                        !sql.contains(forbidden),
                        "{store} migration {} {}: {forbidden}",
                        migration.version,
                        migration.description
                    );
                }
                for statement in sql.split(';').filter(|s| s.contains("ADD COLUMN")) {
                    assert!(
                        !statement.contains("NOT NULL") || statement.contains("DEFAULT"),
                        "{store} migration {}: {statement}",
                        migration.version
                    );
                }
            }
        }
    }
}
