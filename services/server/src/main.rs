//! `shadowsync serve task|approval|analysis|executor|all`.

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
}

fn main() -> anyhow::Result<()> {
    let Command::Serve {
        role,
        config,
        listen,
        data_dir,
        set,
    } = Cli::parse().command;

    let env: HashMap<String, String> = std::env::vars().collect();
    let mut loader = ConfigLoader::new();
    if let Some(path) = &config {
        loader = loader.file(path);
    }
    let mut config = loader
        .env(&env)
        .flags(set.iter().map(String::as_str))
        .flag("listen", listen)
        .flag("data_dir", data_dir.map(|p| p.display().to_string()))
        .load()?;

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let _telemetry = telemetry::init(&TelemetryConfig::from_config(
            &format!("shadowsync-{}", role.name()),
            &config,
            &env,
        )?)?;
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
