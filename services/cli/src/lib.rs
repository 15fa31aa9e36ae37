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
mod guard;
mod health;
pub mod output;
mod permission;
mod task;
mod template;
mod token;
mod when;
mod whoami;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::client::ClientArgs;
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
    /// Output format.
    #[arg(
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
    /// Ask the executor's safety guard about statements (JSON array on stdin), offline.
    Guard(guard::GuardArgs),
    /// Report the health of every service at the endpoint.
    Health,
    /// Show who the server thinks you are.
    Whoami,
    /// Plan shadow-table changes directly against a database, without any service.
    Plan(shadowsync_schema::cli::PlanArgs),
    /// Permissions to create shadow-table sync tasks: apply, list, grant, revoke.
    #[command(subcommand)]
    Permission(permission::PermissionCommand),
    /// Shadow-table sync tasks: submit, list, show, abort, again, approve, reject, logs.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Manage approval process templates and their priority order.
    #[command(subcommand)]
    Template(template::TemplateCommand),
    /// Mint a token for another user from the embedded server's secret (embedded mode only).
    Token(token::TokenArgs),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error status.
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Status(#[from] tonic::Status),
    /// Set-up problems: no token, a bad endpoint, an unwritable output.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Plan(#[from] shadowsync_schema::SchemaError),
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
            Command::Guard(_) => "guard",
            Command::Health => "health",
            Command::Whoami => "whoami",
            Command::Plan(_) => "plan",
            Command::Permission(_) => "permission",
            Command::Task(_) => "task",
            Command::Template(_) => "template",
            Command::Token(_) => "token",
        }
    }
}

/// Runs one command; the exit code says whether what was asked for holds (e.g. every service
/// healthy).
pub async fn run(cli: Cli) -> Result<ExitCode, CliError> {
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
        Command::Health => health::run(&cli.client, cli.output, &mut stdout).await,
        Command::Whoami => whoami::run(&cli.client, cli.output, &mut stdout).await,
        Command::Task(command) => task::run(&cli.client, &command, cli.output, &mut stdout).await,
        Command::Template(command) => {
            template::run(&cli.client, &command, cli.output, &mut stdout).await
        }
        Command::Token(args) => token::run(&cli.client, &args, &mut stdout),
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
