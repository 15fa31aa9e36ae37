//! `shadowctl`, the command-line client of shadowsync.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser as _;
use shadowsync_common::telemetry;
use tracing::Instrument as _;

fn main() -> ExitCode {
    let cli = shadowsync_cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let env: HashMap<String, String> = std::env::vars().collect();
    let command = cli.command_name();
    let outcome = runtime.block_on(async move {
        // Traced only when an OTLP endpoint is configured: then the command is one trace, whose
        // context every call carries to the services.
        let telemetry = match telemetry::init_for_client("shadowctl", &env) {
            Ok(telemetry) => telemetry,
            Err(error) => {
                eprintln!("warning: telemetry off: {error}");
                None
            }
        };
        let span = telemetry::client_root_span(command, &env);
        let outcome = shadowsync_cli::run(cli).instrument(span).await;
        drop(telemetry);
        outcome
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit().code()
        }
    }
}
