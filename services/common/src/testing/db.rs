//! Throw-away stores for tests: a uniquely named PostgreSQL database on the shared server, or a
//! SQLite file in a temporary directory. Each test gets its own, so tests never share rows.
//!
//! The PostgreSQL server is `SHADOWSYNC_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, what `deploy/dev/services.sh` provides); the
//! database is dropped when the [`TestDatabase`] is dropped.
//!
//! A conformance suite runs each test body against both backends:
//!
//! ```ignore
//! async fn creates_and_reads(db: Database) { /* … */ }
//! shadowsync_common::conformance!(creates_and_reads, MIGRATIONS);
//! ```

use sqlx::{Connection as _, Executor as _};

use crate::db::{Backend, Database, Migrations};

/// The PostgreSQL maintenance URL tests create their databases from.
pub fn postgres_admin_url() -> String {
    std::env::var("SHADOWSYNC_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// URL of the test database itself.
    pub url: String,
    backend: Backend,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A fresh PostgreSQL database named `ss_test_<random>`.
    ///
    /// # Panics
    /// When the test server cannot be reached: the test cannot run without it.
    pub async fn postgres() -> Self {
        let admin = postgres_admin_url();
        let name = format!("ss_test_{}", uuid::Uuid::new_v4().simple());
        let mut connection = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("test PostgreSQL at {admin} unreachable: {e}"));
        connection
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = connection.close().await;
        let (base, _) = admin.rsplit_once('/').unwrap_or((admin.as_str(), ""));
        Self {
            url: format!("{base}/{name}"),
            backend: Backend::Postgres,
            postgres_name: Some(name),
            _dir: None,
        }
    }

    /// A fresh SQLite file in a temporary directory.
    ///
    /// # Panics
    /// When no temporary directory can be created.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary directory: {e}"));
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("test.sqlite").display()
        );
        Self {
            url,
            backend: Backend::Sqlite,
            postgres_name: None,
            _dir: Some(dir),
        }
    }

    /// A fresh database of `backend`.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self::postgres().await,
            Backend::Sqlite => Self::sqlite(),
        }
    }

    /// Connects with `schema` as the service schema and applies `migrations`.
    ///
    /// # Panics
    /// When connecting or migrating fails.
    pub async fn open(&self, schema: &str, migrations: &Migrations) -> Database {
        let database = Database::connect(&self.url, schema)
            .await
            .unwrap_or_else(|e| panic!("cannot open {:?} test database: {e}", self.backend));
        database
            .migrate(migrations)
            .await
            .unwrap_or_else(|e| panic!("cannot migrate {:?} test database: {e}", self.backend));
        database
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on: drop the database
        // from a thread with its own small runtime.
        let admin = postgres_admin_url();
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut connection) = sqlx::PgConnection::connect(&admin).await {
                    let _ = connection
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .await;
                    let _ = connection.close().await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// Runs `async fn $test(db: Database)` once per backend, each on a fresh, migrated store:
/// the conformance suite every repository passes on PostgreSQL and SQLite alike.
#[macro_export]
macro_rules! conformance {
    ($schema:expr, $migrations:expr; $($test:ident),+ $(,)?) => {
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $test() {
                    let store = $crate::testing::TestDatabase::postgres().await;
                    let db = store.open($schema, &$migrations).await;
                    super::$test(db.clone()).await;
                    db.close().await;
                }
            )+
        }
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $test() {
                    let store = $crate::testing::TestDatabase::sqlite();
                    let db = store.open($schema, &$migrations).await;
                    super::$test(db.clone()).await;
                    db.close().await;
                }
            )+
        }
    };
}
