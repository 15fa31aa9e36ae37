//! Health follows dependencies: a service reports NOT_SERVING until every dependency it needs
//! answers, and goes back to NOT_SERVING when one stops answering, so Kubernetes routes traffic
//! only to replicas that can do their work.

use std::path::PathBuf;
use std::time::Duration;

use shadowsync_common::config::Config;
use sqlx::Executor as _;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

enum Probe {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
    /// The embedded mode's data directory must exist and be writable.
    DataDir(PathBuf),
    /// The broker's TCP port; the queue's own readiness replaces this once services hold a queue.
    Tcp(String),
    /// A dependency whose configuration cannot work; reported until fixed.
    Broken(String),
}

impl Probe {
    fn name(&self) -> &'static str {
        match self {
            Probe::Postgres(_) | Probe::Sqlite(_) => "database",
            Probe::DataDir(_) => "data directory",
            Probe::Tcp(_) => "queue",
            Probe::Broken(_) => "configuration",
        }
    }

    async fn check(&self) -> Result<(), String> {
        match self {
            Probe::Postgres(pool) => pool
                .execute("SELECT 1")
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Probe::Sqlite(pool) => pool
                .execute("SELECT 1")
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Probe::DataDir(path) => {
                let probe = path.join(".health");
                tokio::fs::write(&probe, b"ok")
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            Probe::Tcp(address) => {
                match tokio::time::timeout(
                    Duration::from_secs(2),
                    tokio::net::TcpStream::connect(address),
                )
                .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(format!("{address}: {error}")),
                    Err(_) => Err(format!("{address}: timed out")),
                }
            }
            Probe::Broken(reason) => Err(reason.clone()),
        }
    }
}

/// Probes dependencies and sets the health status of the process and each of its services.
pub struct Readiness {
    probes: Vec<Probe>,
    services: Vec<&'static str>,
    reporter: HealthReporter,
}

impl Readiness {
    /// The probes `config` implies: the metadata database, the broker, or the data directory.
    pub fn from_config(
        config: &Config,
        services: &[&'static str],
        reporter: HealthReporter,
    ) -> Self {
        let mut probes = Vec::new();
        match &config.database_url {
            Some(url) if url.expose().starts_with("sqlite") => {
                probes.push(
                    match pool_options::<sqlx::Sqlite>().connect_lazy(url.expose()) {
                        Ok(pool) => Probe::Sqlite(pool),
                        Err(_) => Probe::Broken("database.url is not a valid SQLite URL".into()),
                    },
                );
            }
            Some(url) => probes.push(
                match pool_options::<sqlx::Postgres>().connect_lazy(url.expose()) {
                    Ok(pool) => Probe::Postgres(pool),
                    Err(_) => Probe::Broken("database.url is not a valid PostgreSQL URL".into()),
                },
            ),
            None => probes.push(Probe::DataDir(config.data_dir.clone())),
        }
        if let Some(url) = &config.queue.url {
            probes.push(match amqp_address(url.expose()) {
                Some(address) => Probe::Tcp(address),
                None => Probe::Broken("queue.url has no host".into()),
            });
        }
        Self {
            probes,
            services: services.to_vec(),
            reporter,
        }
    }

    async fn set(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        for service in &self.services {
            self.reporter.set_service_status(*service, status).await;
        }
    }

    /// Reports NOT_SERVING for the process and every service; call before serving.
    pub async fn mark_not_serving(&self) {
        self.set(ServingStatus::NotServing).await;
    }

    /// Probes forever, updating health on every change. Cancelled by aborting its task.
    pub async fn run(self) {
        let mut serving = false;
        loop {
            let mut failure = None;
            for probe in &self.probes {
                if let Err(reason) = probe.check().await {
                    failure = Some((probe.name(), reason));
                    break;
                }
            }
            match (&failure, serving) {
                (None, false) => {
                    self.set(ServingStatus::Serving).await;
                    tracing::info!("dependencies reachable: serving");
                    serving = true;
                }
                (Some((dependency, reason)), _) => {
                    if serving {
                        self.set(ServingStatus::NotServing).await;
                        serving = false;
                    }
                    tracing::warn!(dependency, reason = %reason, "dependency unreachable: not serving");
                }
                (None, true) => {}
            }
            let pause = if serving { 5 } else { 1 };
            tokio::time::sleep(Duration::from_secs(pause)).await;
        }
    }
}

/// A one-connection pool that fails fast: a probe must not hang on a dead server.
fn pool_options<DB: sqlx::Database>() -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
}

/// `host:port` of an AMQP URL, without its credentials.
fn amqp_address(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if host_port.is_empty() {
        return None;
    }
    if host_port.contains(':') && !host_port.ends_with(']') {
        Some(host_port.to_string())
    } else {
        let port = if scheme == "amqps" { 5671 } else { 5672 };
        Some(format!("{host_port}:{port}"))
    }
}

#[cfg(test)]
mod tests {
    use super::amqp_address;

    #[test]
    fn amqp_addresses_drop_credentials() {
        assert_eq!(
            amqp_address("amqp://guest:guest@127.0.0.1:5672/%2f").as_deref(),
            Some("127.0.0.1:5672")
        );
        assert_eq!(
            amqp_address("amqps://rabbit.internal/vhost").as_deref(),
            Some("rabbit.internal:5671")
        );
        assert_eq!(amqp_address("amqp://"), None);
    }
}
