//! The target database as the engine sees it: one dedicated connection for the DDL (so every
//! statement of a task runs in one session, one after another) and the schema engine's
//! introspector for fingerprints. Every connection, the introspector's included, is pinned to
//! [`SESSION_SQL_MODE`](shadowsync_schema::SESSION_SQL_MODE) and verified before use, whatever
//! the server's global mode: the guard read the statements under that mode, so the session must
//! read them the same way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shadowsync_common::cleartext_gate::CleartextGate;
use shadowsync_common::target::TargetOptions;

use shadowsync_schema::{
    IntrospectOptions, Introspector, TableObservation, pin_session, pinned_pool,
    without_driver_sql_mode,
};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use crate::backend::DatabaseTarget;

/// The default MySQL-family port, for `port = 0`.
const DEFAULT_PORT: u16 = 3306;
/// How long to wait for a target that does not answer, unless `connect-timeout` says.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a statement failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementError {
    /// The server refused it: its error number (e.g. `1050`) and message. The table fails.
    Database { code: String, message: String },
    /// The connection broke: the statement may or may not have run. The engine stops without
    /// recording anything, so the lease lapses and the next attempt decides by fingerprints.
    Connection(String),
}

/// A session pinned to [`SESSION_SQL_MODE`](shadowsync_schema::SESSION_SQL_MODE), the mode the
/// guard read the statements under.
async fn open(options: &MySqlConnectOptions, timeout: Duration) -> Result<MySqlConnection, String> {
    let mut connection = tokio::time::timeout(timeout, options.connect())
        .await
        .map_err(|_| format!("cannot connect to the target database within {timeout:?}"))?
        .map_err(|error| format!("cannot connect to the target database: {error}"))?;
    if let Err(error) = pin_session(&mut connection).await {
        let _ = connection.close().await;
        return Err(format!("cannot pin the session's sql_mode: {error}"));
    }
    Ok(connection)
}

/// A connection to the task's database.
pub struct TargetDatabase {
    database: String,
    connection: MySqlConnection,
    introspector: Introspector,
    options: MySqlConnectOptions,
    timeout: Duration,
    /// Every connection (the DDL sessions', the introspector's) goes through it, so a server
    /// asking for the password in clear never gets it; it lives as long as any session does.
    _gate: Arc<Option<CleartextGate>>,
}

impl std::fmt::Debug for TargetDatabase {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TargetDatabase")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl TargetDatabase {
    /// Connects to `target`. Fails with the driver's message (never the password).
    pub async fn connect(target: &DatabaseTarget) -> Result<Self, String> {
        let port = if target.port == 0 {
            DEFAULT_PORT
        } else {
            target.port
        };
        // sqlx's own sql_mode additions are off: `open` and the pool pin the whole mode.
        let mut options = without_driver_sql_mode(MySqlConnectOptions::new())
            .host(&target.host)
            .port(port)
            .username(&target.username)
            .database(&target.database)
            // Statement texts go to the task log already, with their durations.
            .disable_statement_logging();
        // An empty password means none (sending an empty one is a different login).
        if !target.password.expose().is_empty() {
            options = options.password(target.password.expose());
        }
        let parsed = TargetOptions::parse(&target.options)
            .map_err(|error| format!("invalid connection option {error}"))?;
        let options = parsed.apply(options);
        let timeout = parsed.connect_timeout_or(DEFAULT_CONNECT_TIMEOUT);
        let (options, gate) = CleartextGate::protect(options)
            .map_err(|error| format!("cannot open the cleartext gate: {error}"))?;
        let connection = open(&options, timeout).await?;
        // A target that went away must fail a read as soon as a connection attempt would, not
        // after the pool's default 30 s of retries: the run then stops and hands the task on.
        let pool = pinned_pool(MySqlPoolOptions::new())
            .max_connections(1)
            .acquire_timeout(timeout)
            .test_before_acquire(false)
            .connect_lazy_with(options.clone());
        let introspector = Introspector::with_pool(
            pool,
            IntrospectOptions {
                batch_size: 250,
                parallelism: 1,
            },
        );
        Ok(Self {
            database: target.database.clone(),
            connection,
            introspector,
            options,
            timeout,
            _gate: Arc::new(gate),
        })
    }

    /// Another session on the same database, for a parallel lane: its own connection for the
    /// DDL, the same introspector.
    pub async fn open_session(&self) -> Result<Self, String> {
        Ok(Self {
            database: self.database.clone(),
            connection: open(&self.options, self.timeout).await?,
            introspector: self.introspector.clone(),
            options: self.options.clone(),
            timeout: self.timeout,
            _gate: Arc::clone(&self._gate),
        })
    }

    /// Runs one statement (already checked by the guard); returns how long it took.
    pub async fn run(&mut self, sql: &str) -> Result<Duration, StatementError> {
        let started = Instant::now();
        match sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&mut self.connection)
            .await
        {
            Ok(_) => Ok(started.elapsed()),
            Err(sqlx::Error::Database(error)) => {
                let code = error
                    .try_downcast_ref::<MySqlDatabaseError>()
                    .map(|mysql| mysql.number().to_string())
                    .or_else(|| error.code().map(|code| code.into_owned()))
                    .unwrap_or_default();
                Err(StatementError::Database {
                    code,
                    message: error.message().to_owned(),
                })
            }
            Err(error) => Err(StatementError::Connection(error.to_string())),
        }
    }

    /// The current fingerprints of `names` (`None`: missing or unreadable), in one batched
    /// introspection. Fails with the driver's message.
    pub async fn fingerprints(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, Option<String>>, String> {
        self.introspector
            .fingerprints(&self.database, names)
            .await
            .map_err(|error| format!("cannot read the tables: {error}"))
    }

    /// [`TargetDatabase::fingerprints`] plus the requested tables each one's foreign keys
    /// reference now.
    pub async fn observe(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, TableObservation>, String> {
        self.introspector
            .observe(&self.database, names)
            .await
            .map_err(|error| format!("cannot read the tables: {error}"))
    }

    /// The DDL session, for tests that question it.
    #[cfg(test)]
    pub fn connection(&mut self) -> &mut MySqlConnection {
        &mut self.connection
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        let _ = self.connection.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that asks for the password in clear (up front or by a switch), or under its own
    /// key over plain text, never gets it from an executor: the connection fails instead.
    #[tokio::test]
    async fn the_executor_never_sends_a_password_in_clear() {
        use shadowsync_common::secret::Secret;
        use shadowsync_common::testing::fake_mysql::{CleartextAsk, FakeMySql};
        for ask in [
            CleartextAsk::Greeting,
            CleartextAsk::AuthSwitch,
            CleartextAsk::FullAuth,
        ] {
            let fake = FakeMySql::start(ask).await;
            let target = DatabaseTarget {
                host: fake.addr.ip().to_string(),
                port: fake.addr.port(),
                username: "app".into(),
                password: Secret::new("executor-Secret-17".into()),
                database: "shop".into(),
                options: [("ssl-mode".to_string(), "DISABLED".to_string())].into(),
            };
            let error = TargetDatabase::connect(&target)
                .await
                .expect_err("a server asking for the password in clear is refused");
            assert!(
                !fake.saw("executor-Secret-17"),
                "{ask:?}: password sent in clear"
            );
            assert!(
                ["cleartext", "unencrypted"]
                    .iter()
                    .any(|why| error.contains(why)),
                "{ask:?}: {error}"
            );
        }
    }
}
