//! `shadowctl`: every public RPC of shadowsync as a command a person would guess.
//!
//! - [`client`]: where the server is and who the caller is (flags, environment, the embedded
//!   mode's data directory);
//! - [`output`]: aligned tables for people, JSON for scripts;
//! - `when`: time arguments (RFC 3339 or a duration ago / from now);
//! - one module per command group (`health`, `whoami`, `token`, `analysis`, `task`, …; `plan`
//!   runs the schema engine directly).
//!
//! Errors print as one line naming the gRPC code, and the exit status is non-zero.

mod analysis;
mod approval;
pub mod client;
mod connection;
mod context;
pub mod exit;
mod guard;
mod health;
pub mod output;
mod permission;
mod progress;
mod suggest;
mod task;
mod template;
mod token;
mod when;
mod whoami;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::client::ClientArgs;
pub use crate::exit::Exit;
use crate::output::OutputFormat;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "shadowctl",
    version,
    about = "The shadowsync command-line client"
)]
pub struct Cli {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Output format: aligned tables for people, or the API's messages as proto3 JSON.
    #[arg(
        short = 'o',
        long,
        global = true,
        value_enum,
        default_value_t = OutputFormat::Table,
        help_heading = "Global options"
    )]
    pub output: OutputFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse a database's tables against their shadows, skip tables, preview the SQL.
    #[command(subcommand)]
    Analysis(analysis::AnalysisCommand),
    /// Approval requests: list, show, approve, reject, cancel.
    #[command(subcommand)]
    Approval(approval::ApprovalCommand),
    /// Manage database connections.
    #[command(subcommand)]
    Connection(connection::ConnectionCommand),
    /// Named clusters (endpoint, CA, token source): add, use, list, rm.
    #[command(subcommand)]
    Context(context::ContextCommand),
    /// Ask the executor's safety guard about statements (JSON array on stdin), offline.
    Guard(guard::GuardArgs),
    /// Report the health of every service at the endpoint.
    Health,
    /// Show who the server thinks you are.
    Whoami,
    /// Plan shadow-table changes directly against a database, without any service.
    #[command(after_help = "\
The password, when the user has one, comes from SHADOWSYNC_DB_PASSWORD.

Examples:
  shadowctl plan --url mysql://root@127.0.0.1:3306 --database shop --prefix _test_ --format sql
  SHADOWSYNC_DB_PASSWORD=... shadowctl plan --url mysql://ro@db:3306 --database shop --format json")]
    Plan(shadowsync_schema::cli::PlanArgs),
    /// Permissions to create shadow-table sync tasks: apply, list, grant, revoke.
    #[command(subcommand)]
    Permission(permission::PermissionCommand),
    /// Shadow-table sync tasks: submit, list, show, abort, again, approve, reject, logs, wait.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Manage approval process templates and their priority order.
    #[command(subcommand)]
    Template(template::TemplateCommand),
    /// Mint a token for another user from the embedded server's secret (embedded mode only).
    Token(token::TokenArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    #[command(after_help = "\
Examples:
  source <(shadowctl completion bash)
  shadowctl completion zsh > \"${fpath[1]}/_shadowctl\"
  shadowctl completion fish > ~/.config/fish/completions/shadowctl.fish")]
    Completion {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// What shadowctl's exit statuses mean (also `shadowctl help exit-codes`).
    #[command(name = "exit-codes", long_about = exit::HELP)]
    ExitCodes,
}

/// Why a command failed; [`CliError::exit`] is the exit status it gives.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error status.
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Status(#[from] tonic::Status),
    /// The server could not be reached (or answered UNAVAILABLE): which endpoint was tried and
    /// where that endpoint came from, so a wrong one is easy to see.
    #[error("{}: {} (server {endpoint}, from {origin})", code_name(.status.code()), transport_message(.status))]
    Unreachable {
        status: tonic::Status,
        endpoint: String,
        origin: String,
    },
    /// A wrong flag, argument or value, found before any call.
    #[error("{0}")]
    Usage(String),
    /// What was named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// No identity to call with.
    #[error("{0}")]
    Denied(String),
    /// Anything else: an output that cannot be written, a file that cannot be read.
    #[error("{0}")]
    Failure(String),
    #[error(transparent)]
    Plan(#[from] shadowsync_schema::SchemaError),
}

impl CliError {
    /// The exit status this failure gives (`shadowctl help exit-codes`).
    pub fn exit(&self) -> Exit {
        use shadowsync_schema::SchemaError;
        match self {
            Self::Status(status) | Self::Unreachable { status, .. } => Exit::of_code(status.code()),
            Self::Usage(_) => Exit::Usage,
            Self::NotFound(_) => Exit::NotFound,
            Self::Denied(_) => Exit::Denied,
            Self::Failure(_) => Exit::Failure,
            Self::Plan(error) => match error {
                SchemaError::InvalidAffix { .. } | SchemaError::InvalidArgument { .. } => {
                    Exit::Usage
                }
                SchemaError::UnknownTables { .. } | SchemaError::DatabaseNotFound(_) => {
                    Exit::NotFound
                }
                SchemaError::Database(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut) => {
                    Exit::Unavailable
                }
                _ => Exit::Failure,
            },
        }
    }
}

/// A transport failure's message with its causes (`tcp connect error: Connection refused`):
/// tonic's own message alone (`tcp connect error`) does not say what went wrong.
fn transport_message(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        let part = error.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = error.source();
    }
    text
}

/// The canonical upper-case name of a gRPC code (`UNAUTHENTICATED`), as people search for it.
pub fn code_name(code: tonic::Code) -> String {
    let debug = format!("{code:?}");
    let mut name = String::new();
    for (index, c) in debug.chars().enumerate() {
        if c.is_uppercase() && index > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

impl Cli {
    /// The command's first word (`task`, `health`, …), as traces name it (never its arguments,
    /// which may hold a token).
    pub fn command_name(&self) -> &'static str {
        match self.command {
            Command::Analysis(_) => "analysis",
            Command::Approval(_) => "approval",
            Command::Connection(_) => "connection",
            Command::Context(_) => "context",
            Command::Guard(_) => "guard",
            Command::Health => "health",
            Command::Whoami => "whoami",
            Command::Plan(_) => "plan",
            Command::Permission(_) => "permission",
            Command::Task(_) => "task",
            Command::Template(_) => "template",
            Command::Token(_) => "token",
            Command::Completion { .. } => "completion",
            Command::ExitCodes => "exit-codes",
        }
    }
}

/// Runs one command; the exit code says whether what was asked for holds (e.g. every service
/// healthy).
pub async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let client = cli.client.clone();
    dispatch(cli).await.map_err(|error| match error {
        CliError::Status(status) if status.code() == tonic::Code::Unavailable => {
            match client.endpoint() {
                Ok(endpoint) => CliError::Unreachable {
                    status,
                    endpoint: endpoint.url,
                    origin: endpoint.origin,
                },
                Err(_) => CliError::Status(status),
            }
        }
        other => other,
    })
}

async fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Analysis(command) => {
            analysis::run(&cli.client, &command, cli.output, &mut stdout).await
        }
        Command::Approval(command) => {
            approval::run(&cli.client, &command, cli.output, &mut stdout).await
        }
        Command::Permission(command) => {
            permission::run(&cli.client, &command, cli.output, &mut stdout).await
        }
        Command::Connection(command) => {
            connection::run(&cli.client, &command, cli.output, &mut stdout).await
        }
        Command::Context(command) => context::run(&cli.client, &command, cli.output, &mut stdout),
        Command::Health => health::run(&cli.client, cli.output, &mut stdout).await,
        Command::Whoami => whoami::run(&cli.client, cli.output, &mut stdout).await,
        Command::Task(command) => task::run(&cli.client, &command, cli.output, &mut stdout).await,
        Command::Template(command) => {
            template::run(&cli.client, &command, cli.output, &mut stdout).await
        }
        Command::Token(args) => token::run(&cli.client, &args, cli.output, &mut stdout),
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "shadowctl", &mut script);
            output::write_all(&mut stdout, &script)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ExitCodes => {
            output::write_all(&mut stdout, format!("{}\n", exit::HELP).as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Guard(args) => guard::run(
            &args,
            &mut std::io::stdin().lock(),
            &mut stdout,
            &mut std::io::stderr().lock(),
        ),
        Command::Plan(args) => {
            let password = std::env::var("SHADOWSYNC_DB_PASSWORD").ok();
            // The plan is rendered whole before anything is printed, so a failure leaves no
            // partial output on stdout.
            let mut buffer = Vec::new();
            // Through the cleartext gate: the password never goes out in clear.
            shadowsync_schema::cli::run_plan_with(
                &args,
                password,
                shadowsync_common::cleartext_gate::gated_lazy_pool,
                &mut buffer,
            )
            .await?;
            output::write_all(&mut stdout, &buffer)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    /// Flags clap adds itself, described by clap.
    fn is_builtin(arg: &clap::Arg) -> bool {
        matches!(arg.get_id().as_str(), "help" | "version")
    }

    fn walk(command: &clap::Command, path: &str, problems: &mut Vec<String>) {
        for arg in command.get_arguments().filter(|arg| !is_builtin(arg)) {
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                problems.push(format!("{path} {}: no description", arg.get_id()));
            }
        }
        let is_leaf = command.get_subcommands().next().is_none();
        let takes_arguments = command
            .get_arguments()
            .any(|arg| !is_builtin(arg) && !arg.is_global_set());
        if is_leaf && takes_arguments {
            let after = command
                .get_after_help()
                .or(command.get_after_long_help())
                .map(ToString::to_string)
                .unwrap_or_default();
            if !after.contains("Example") {
                problems.push(format!("{path}: no example in its help"));
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), problems);
        }
    }

    #[test]
    fn every_flag_is_described_and_every_command_with_arguments_has_an_example() {
        let mut problems = Vec::new();
        walk(&Cli::command(), "shadowctl", &mut problems);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
