//! A throw-away MariaDB database for one test, on the shared server at
//! `SHADOWSYNC_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`, what
//! `deploy/dev/services.sh` provides). Dropped by [`MariaDb::drop_database`], or on `Drop` when a
//! test fails first, so the shared server keeps nothing.

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Connection as _, Executor as _, MySqlPool};

/// The MariaDB server tests use.
pub fn mysql_url() -> String {
    std::env::var("SHADOWSYNC_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_string())
}

/// A database named `<prefix>_<random>` with a small pool on it.
#[derive(Debug)]
pub struct MariaDb {
    pub name: String,
    pub pool: MySqlPool,
    dropped: bool,
}

impl MariaDb {
    /// Creates the database (utf8mb4).
    ///
    /// # Panics
    /// When the server cannot be reached: the test cannot run without it.
    pub async fn create(prefix: &str) -> Self {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let url = mysql_url();
        let mut admin = sqlx::MySqlConnection::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("test MariaDB at {url} unreachable: {e}"));
        admin
            .execute(AssertSqlSafe(format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
            )))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = admin.close().await;
        let options = url
            .parse::<MySqlConnectOptions>()
            .expect("SHADOWSYNC_TEST_MYSQL_URL parses")
            .database(&name);
        let pool = MySqlPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .expect("connect to the test database");
        Self {
            name,
            pool,
            dropped: false,
        }
    }

    /// Runs `sql` (one or more statements) in this database.
    ///
    /// # Panics
    /// When a statement fails, naming the statement.
    pub async fn exec(&self, sql: &str) {
        let mut connection = self.pool.acquire().await.expect("a connection");
        connection
            .execute(AssertSqlSafe(sql.to_owned()))
            .await
            .unwrap_or_else(|e| panic!("{e}\nwhile running:\n{sql}"));
    }

    /// Closes the pool and drops the database.
    pub async fn drop_database(mut self) {
        self.pool.close().await;
        drop_now(&self.name).await;
        self.dropped = true;
    }
}

async fn drop_now(name: &str) {
    if let Ok(mut admin) = sqlx::MySqlConnection::connect(&mysql_url()).await {
        let _ = admin
            .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`")))
            .await;
        let _ = admin.close().await;
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Drop runs inside the test's runtime, which cannot be blocked on: drop the database
        // from a thread with its own small runtime.
        let name = self.name.clone();
        let dropper = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(drop_now(&name));
            }
        });
        let _ = dropper.join();
    }
}
