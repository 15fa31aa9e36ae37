//! `shadowsync serve task|approval|analysis|executor|all`, `shadowsync migrate` and
//! `shadowsync credentials …`.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use shadowsync_common::config::ConfigLoader;
use shadowsync_common::telemetry::{self, TelemetryConfig};
use shadowsync_server::{Role, embedded};

#[derive(Debug, Parser)]
#[command(
    name = "shadowsync",
    version,
    about = "Keeps shadow tables in sync with their source tables"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve one service, or all of them (`all` with no configuration is the embedded mode).
    Serve {
        role: Role,
        /// TOML configuration file (layered under SHADOWSYNC_* variables and flags).
        #[arg(long, env = "SHADOWSYNC_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address, e.g. 127.0.0.1:50051 (port 0 picks a free port).
        #[arg(long)]
        listen: Option<String>,
        /// Data directory of the embedded mode.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Any configuration key, e.g. --set queue.prefix=dev. (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Bring the task and approval stores' schemas (on database.url) up to date, then exit.
    ///
    /// Services started with database.auto_migrate=false wait, NOT_SERVING, until this has run.
    /// Migrations are forward-only: rolling a release back leaves its migrations in place.
    Migrate {
        /// TOML configuration file (layered under SHADOWSYNC_* variables and flags).
        #[arg(long, env = "SHADOWSYNC_CONFIG")]
        config: Option<PathBuf>,
        /// Any configuration key, e.g. --set database.url=postgres://… (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// How long to wait for the database to answer before giving up, e.g. 90s or 2m.
        #[arg(long, default_value = "60s", value_parser = parse_seconds)]
        wait: std::time::Duration,
    },
    /// Create a cluster's keys, service tokens and encryption key, or a person's token.
    #[command(subcommand)]
    Credentials(shadowsync_server::credentials::CredentialsCommand),
}

/// `90`, `90s`, `2m`: the few duration forms a Job's arguments need.
fn parse_seconds(value: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = match value.strip_suffix('m') {
        Some(minutes) => (minutes, 60),
        None => (value.strip_suffix('s').unwrap_or(value), 1),
    };
    number
        .parse::<u64>()
        .map(|n| std::time::Duration::from_secs(n.saturating_mul(unit)))
        .map_err(|_| format!("expected seconds or minutes such as 90s or 2m, found {value:?}"))
}

/// Layers defaults, the file, `SHADOWSYNC_*` variables and flags into one configuration.
fn load_config(
    file: Option<&PathBuf>,
    set: &[String],
    flags: &[(&str, Option<String>)],
) -> anyhow::Result<shadowsync_common::config::Config> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut loader = ConfigLoader::new();
    if let Some(path) = file {
        loader = loader.file(path);
    }
    let mut loader = loader.env(&env).flags(set.iter().map(String::as_str));
    for (key, value) in flags {
        loader = loader.flag(key, value.clone());
    }
    Ok(loader.load()?)
}

/// Telemetry for `shadowsync-<service>`, with the standard `OTEL_*` variables honoured.
fn telemetry_config(
    service: &str,
    config: &shadowsync_common::config::Config,
) -> anyhow::Result<TelemetryConfig> {
    let env: HashMap<String, String> = std::env::vars().collect();
    Ok(TelemetryConfig::from_config(
        &format!("shadowsync-{service}"),
        config,
        &env,
    )?)
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve {
            role,
            config,
            listen,
            data_dir,
            set,
        } => {
            let config = load_config(
                config.as_ref(),
                &set,
                &[
                    ("listen", listen),
                    ("data_dir", data_dir.map(|p| p.display().to_string())),
                ],
            )?;
            serve(role, config)
        }
        Command::Migrate { config, set, wait } => {
            let config = load_config(config.as_ref(), &set, &[])?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(async move {
                let _telemetry = telemetry::init(&telemetry_config("migrate", &config)?)?;
                for migrated in shadowsync_server::migrate::migrate(&config, wait).await? {
                    println!("{migrated}");
                }
                Ok(())
            })
        }
        Command::Credentials(command) => Ok(shadowsync_server::credentials::run(
            &command,
            &mut std::io::stdout().lock(),
        )?),
    }
}

fn serve(role: Role, mut config: shadowsync_common::config::Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let service = format!("{role:?}").to_lowercase();
        let _telemetry = telemetry::init(&telemetry_config(&service, &config)?)?;
        let embedded_mode = shadowsync_server::is_embedded(role, &config);
        // Held until the server stops: the data directory's lock lives in it.
        let _embedded = if embedded_mode {
            let files = embedded::prepare(&mut config)?;
            tracing::info!(token = %files.admin_token.display(), "embedded mode: admin token written");
            Some(files)
        } else {
            None
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        if embedded_mode {
            embedded::write_endpoint(&config.data_dir, address, config.tls.is_some())?;
        }
        shadowsync_server::run(role, config, listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// Completes on ctrl-c or SIGTERM (what Kubernetes sends before killing a pod).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested: draining in-flight requests");
}
