//! The target database of one request: connection details → a small sqlx pool, and database
//! errors → the failure reasons the contract names.

use std::time::Duration;

use shadowsync_common::cleartext_gate::{UNREACHABLE, gated_lazy_pool};
use shadowsync_common::target::TargetOptions;
use shadowsync_proto::common::v1::{AnalysisFailureReason, ConnectionDetails, Dialect};
use shadowsync_schema::{IntrospectOptions, Introspector, SchemaError};
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlPoolOptions};

use crate::error::AnalysisError;

/// Driver options a connection may carry (the task service refuses others at creation).
pub use shadowsync_common::target::KNOWN_OPTIONS;

/// How long to wait for a target database that does not answer, unless `connect-timeout` says.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A lazily connecting pool on the target server, sized for introspection.
///
/// Fails with `INVALID_ARGUMENT` for missing details or unknown options, and with an
/// unsupported-dialect failure for PostgreSQL.
pub fn connect(
    details: Option<&ConnectionDetails>,
    options: IntrospectOptions,
) -> Result<(MySqlPool, Introspector), AnalysisError> {
    let details = details
        .ok_or_else(|| AnalysisError::invalid("connection", "connection details are required"))?;
    match Dialect::try_from(details.dialect) {
        Ok(Dialect::Mysql | Dialect::Mariadb | Dialect::OceanbaseMysql) => {}
        Ok(Dialect::Postgresql) => {
            return Err(AnalysisError::Target {
                reason: AnalysisFailureReason::UnsupportedDialect,
                message: "the schema engine does not support PostgreSQL yet".into(),
            });
        }
        _ => {
            return Err(AnalysisError::invalid(
                "connection.dialect",
                "a dialect is required",
            ));
        }
    }
    if details.host.is_empty() {
        return Err(AnalysisError::invalid(
            "connection.host",
            "a host is required",
        ));
    }
    let mut connect = MySqlConnectOptions::new()
        .host(&details.host)
        .port(
            u16::try_from(details.port)
                .ok()
                .filter(|p| *p != 0)
                .unwrap_or(3306),
        )
        .username(&details.username);
    // An empty password means none: sqlx would otherwise send an (empty) auth response, which
    // MySQL reads as "using password: YES".
    if !details.password.is_empty() {
        connect = connect.password(&details.password);
    }
    let target = TargetOptions::parse(&details.options).map_err(|error| {
        AnalysisError::invalid(format!("connection.options.{}", error.option), error.reason)
    })?;
    let connect = target.apply(connect);
    let timeout = target.connect_timeout_or(DEFAULT_CONNECT_TIMEOUT);
    // Every connection runs under the executor's sql_mode: `SHOW CREATE TABLE` then prints what
    // the executor's guard and session read (`'it\'s'`, backticked names).
    let connect = shadowsync_schema::without_driver_sql_mode(connect);
    let pool_options = shadowsync_schema::pinned_pool(MySqlPoolOptions::new())
        .max_connections(u32::try_from(options.parallelism.max(1)).unwrap_or(1))
        .acquire_timeout(timeout)
        // A ping before every acquire would be a hidden round trip per batch.
        .test_before_acquire(false);
    let pool = gated_lazy_pool(pool_options, connect)
        .map_err(|e| AnalysisError::Internal(format!("cleartext gate: {e}")))?;
    let introspector = Introspector::with_pool(pool.clone(), options);
    Ok((pool, introspector))
}

/// What went wrong on the target side, in the contract's terms.
pub fn classify(error: &SchemaError) -> (AnalysisFailureReason, String) {
    match error {
        SchemaError::DatabaseNotFound(_) => {
            (AnalysisFailureReason::DatabaseNotFound, error.to_string())
        }
        SchemaError::Database(database) => classify_sqlx(database),
        other => (AnalysisFailureReason::Internal, other.to_string()),
    }
}

/// A sqlx error as a failure reason and a message safe to show (the database's own words; MySQL
/// never echoes a password).
pub fn classify_sqlx(error: &sqlx::Error) -> (AnalysisFailureReason, String) {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => (
            AnalysisFailureReason::Unreachable,
            format!("the database cannot be reached: {error}"),
        ),
        sqlx::Error::Database(database) => {
            let number = database
                .try_downcast_ref::<MySqlDatabaseError>()
                .map(MySqlDatabaseError::number);
            match number {
                // The cleartext gate could not reach the server.
                Some(UNREACHABLE) => (
                    AnalysisFailureReason::Unreachable,
                    format!("the database cannot be reached: {}", database.message()),
                ),
                // Access denied (credentials, database, command, table).
                Some(1044 | 1045 | 1142 | 1143 | 1227 | 1698) => (
                    AnalysisFailureReason::AccessDenied,
                    database.message().to_owned(),
                ),
                Some(1049) => (
                    AnalysisFailureReason::DatabaseNotFound,
                    database.message().to_owned(),
                ),
                _ => (
                    AnalysisFailureReason::Internal,
                    database.message().to_owned(),
                ),
            }
        }
        other => (AnalysisFailureReason::Internal, other.to_string()),
    }
}

/// The server's error code for `TestConnection`-style reports: the MySQL error number, or
/// `connect` when the server was not reached.
pub fn error_code(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(database)
            if database
                .try_downcast_ref::<MySqlDatabaseError>()
                .is_some_and(|e| e.number() == UNREACHABLE) =>
        {
            "connect".into()
        }
        sqlx::Error::Database(database) => database
            .try_downcast_ref::<MySqlDatabaseError>()
            .map_or_else(
                || database.code().unwrap_or_default().into_owned(),
                |e| e.number().to_string(),
            ),
        _ => "connect".into(),
    }
}

#[cfg(test)]
mod tests {
    use shadowsync_common::testing::{CleartextAsk, FakeMySql};

    use super::*;

    /// A server that asks for the password in clear (up front or by a switch) or under its own key
    /// over plain text never gets it.
    #[tokio::test]
    async fn the_analysis_never_sends_a_password_in_clear() {
        for ask in [
            CleartextAsk::Greeting,
            CleartextAsk::AuthSwitch,
            CleartextAsk::FullAuth,
        ] {
            let fake = FakeMySql::start(ask).await;
            let details = ConnectionDetails {
                dialect: Dialect::Mariadb as i32,
                host: fake.addr.ip().to_string(),
                port: u32::from(fake.addr.port()),
                username: "app".into(),
                password: "analysis-Secret-41".into(),
                options: [("ssl-mode".to_string(), "DISABLED".to_string())].into(),
                ..Default::default()
            };
            let (pool, _) = connect(Some(&details), IntrospectOptions::default()).expect("pool");
            let error = pool
                .acquire()
                .await
                .expect_err("a cleartext server is refused");
            // Through a switch the client gets as far as its first answer; a greeting that asks is
            // refused before the client says anything.
            if let CleartextAsk::AuthSwitch = ask {
                assert!(
                    !fake.received().is_empty(),
                    "{ask:?}: the client never answered"
                );
            }
            assert!(
                !fake.saw("analysis-Secret-41"),
                "{ask:?}: password sent in clear"
            );
            let refused = ["cleartext", "unencrypted"];
            assert!(
                refused.iter().any(|why| error.to_string().contains(why)),
                "{ask:?}: {error}"
            );
            pool.close().await;
        }
    }
}
