//! `TestConnection`: open one session on the target and read its version, reporting the
//! database's own error when it refuses.

use std::time::{Duration, Instant};

use shadowsync_common::cleartext_gate::{CleartextGate, UNREACHABLE};
use shadowsync_common::secret::Secret;
use shadowsync_common::target::TargetOptions;
use shadowsync_proto::task::v1::TestConnectionResponse;
use sqlx::Connection as _;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError};

/// What a probe needs. The password stays wrapped until it is handed to the driver.
pub struct ProbeTarget {
    pub host: String,
    pub port: u32,
    pub username: String,
    pub password: Secret<String>,
    /// Parsed by the caller: an invalid option is INVALID_ARGUMENT before any probe.
    pub options: TargetOptions,
}

/// How long a probe waits for a silent server, unless the connection's `connect-timeout` says.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects and runs `SELECT VERSION()`. Never fails: a refusal is a normal `ok = false`
/// answer with the database's code and message.
pub async fn probe(target: ProbeTarget) -> TestConnectionResponse {
    let started = Instant::now();
    let mut options = MySqlConnectOptions::new()
        .host(&target.host)
        .port(u16::try_from(target.port).unwrap_or(3306))
        .username(&target.username);
    // An empty password means none (sqlx would send an empty auth response otherwise).
    if !target.password.expose().is_empty() {
        options = options.password(target.password.expose());
    }
    let options = target.options.apply(options);
    let timeout = target.options.connect_timeout_or(PROBE_TIMEOUT);
    let attempt = async {
        // Held until the probe ends; see `CleartextGate` for why the password needs it.
        let (options, _gate) = CleartextGate::protect(options)?;
        let mut connection = MySqlConnection::connect_with(&options).await?;
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&mut connection)
            .await?;
        let _ = connection.close().await;
        Ok::<_, sqlx::Error>(version)
    };
    let outcome = tokio::time::timeout(timeout, attempt).await;
    let latency = started.elapsed();
    let mut response = TestConnectionResponse {
        latency: Some(prost_types::Duration {
            seconds: i64::try_from(latency.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(latency.subsec_nanos()).unwrap_or(0),
        }),
        ..Default::default()
    };
    match outcome {
        Ok(Ok(version)) => {
            response.ok = true;
            response.server_version = version;
        }
        Ok(Err(error)) => {
            let (code, message) = describe(&error);
            response.error_code = code;
            response.error_message = message;
        }
        Err(_) => {
            response.error_code = "connect".into();
            response.error_message = format!("no answer within {timeout:?}");
        }
    }
    response
}

/// The server's error number and message, or `connect` and the network error. MySQL's own
/// messages never contain the password (at most "using password: YES").
fn describe(error: &sqlx::Error) -> (String, String) {
    match error {
        sqlx::Error::Database(database)
            if database
                .try_downcast_ref::<MySqlDatabaseError>()
                .is_some_and(|e| e.number() == UNREACHABLE) =>
        {
            ("connect".into(), database.message().to_owned())
        }
        sqlx::Error::Database(database) => {
            let code = database
                .try_downcast_ref::<MySqlDatabaseError>()
                .map_or_else(
                    || database.code().unwrap_or_default().into_owned(),
                    |e| e.number().to_string(),
                );
            (code, database.message().to_owned())
        }
        sqlx::Error::Io(io) => ("connect".into(), io.to_string()),
        sqlx::Error::Tls(tls) => ("tls".into(), tls.to_string()),
        other => ("connect".into(), other.to_string()),
    }
}
