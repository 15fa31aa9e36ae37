//! `shadowctl`, the command-line client of shadowsync.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = shadowsync_cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(shadowsync_cli::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
