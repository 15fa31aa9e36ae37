//! `shadowctl task submit|list|show|abort|again|approve|reject|logs`: shadow-table sync tasks
//! from submission to follow-up.
//!
//! - this file: the commands, and the mutations (submit, abort, again, approve, reject);
//! - [`list`]: the task list, its filters and paging;
//! - [`show`]: one task's basic information, process timeline and settings, fetched and
//!   printed;
//! - [`render`]: a task, its timeline entries and tables as fields and rows;
//! - [`logs`]: printing, following and downloading a task's log.

mod list;
mod logs;
mod render;
mod show;
mod wait;

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use shadowsync_proto::common::v1::{ShadowNaming, ShadowNamingMode, SyncRange};
use shadowsync_proto::task::v1::task_service_client::TaskServiceClient;
use shadowsync_proto::task::v1::{
    AbortTaskRequest, ApproveTaskRequest, ErrorStrategy, ExecutionMode, InitiateAgainRequest,
    RejectTaskRequest, SubmitTaskRequest, TaskStatus,
};

use crate::CliError;
use crate::client::ClientArgs;
use crate::output::{OutputFormat, enum_name, request_id};
use crate::when;

type Client = TaskServiceClient<shadowsync_common::grpc::AuthenticatedChannel>;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum TaskCommand {
    /// Submit a finished analysis as a task, for approval and then execution.
    Submit(SubmitArgs),
    /// List the tasks you may see (default: created in the last 48 hours, newest first).
    List(list::ListArgs),
    /// Show a task's basic information, and on request its process and settings.
    Show(show::ShowArgs),
    /// Abort a task that is not final.
    #[command(after_help = "\
Example:
  shadowctl task abort 42 --comment 'wrong database'")]
    Abort {
        /// The task id.
        #[arg(value_name = "ID")]
        id: i64,
        /// Why (recorded in the timeline and the log).
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Analyse again with the task's parameters and skips, ready to submit as a new task.
    Again(AgainArgs),
    /// Approve the task at its current approval node.
    #[command(after_help = "\
Example:
  shadowctl task approve 42 --comment 'looks right'")]
    Approve {
        /// The task id.
        #[arg(value_name = "ID")]
        id: i64,
        /// Why (required; recorded in the timeline).
        #[arg(long)]
        comment: String,
    },
    /// Reject the task.
    #[command(after_help = "\
Example:
  shadowctl task reject 42 --comment 'drops a column the tests need'")]
    Reject {
        /// The task id.
        #[arg(value_name = "ID")]
        id: i64,
        /// Why (required; recorded in the timeline).
        #[arg(long)]
        comment: String,
    },
    /// Print a task's log, follow it while the task runs, or download it to a file.
    Logs(logs::LogsArgs),
    /// Wait until a task is final; the exit status says how it ended.
    Wait(wait::WaitArgs),
}

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  shadowctl task submit 5f0c2a9e-1b7d-4c36-9a51-2d8e6f4b7a10 --remarks 'first sync'
  shadowctl task submit 5f0c2a9e-1b7d-4c36-9a51-2d8e6f4b7a10 --at 2h --on-error continue")]
pub struct SubmitArgs {
    /// The analysis id (it must have succeeded).
    #[arg(value_name = "ANALYSIS")]
    pub analysis: String,
    /// Execute on schedule at TIME (RFC 3339, or a duration from now such as 2h); immediately
    /// after approval when omitted.
    #[arg(long, value_name = "TIME", value_parser = when::parse_future)]
    pub at: Option<DateTime<Utc>>,
    /// What to do when a statement fails: abort the task, or skip the table's remaining
    /// statements and continue.
    #[arg(long, value_enum, default_value_t = OnErrorArg::Abort)]
    pub on_error: OnErrorArg,
    /// Remarks shown to approvers (up to 2,000 characters).
    #[arg(long, default_value = "")]
    pub remarks: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnErrorArg {
    /// Stop at the first failing statement; the remaining tables are not run.
    Abort,
    /// Skip the failing table's remaining statements and go on.
    Continue,
}

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  shadowctl task again 42 --wait
  shadowctl task again 42 --database shop_staging --discard-skips")]
pub struct AgainArgs {
    /// The task id.
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Another database (default: the task's).
    #[arg(long)]
    pub database: Option<String>,
    /// Another connection, by name or id (default: the task's).
    #[arg(long)]
    pub connection: Option<String>,
    /// Only these tables (comma-separated), replacing the task's list.
    #[arg(long, value_delimiter = ',', conflicts_with = "all")]
    pub tables: Vec<String>,
    /// Every table of the database.
    #[arg(long)]
    pub all: bool,
    /// Shadow name = AFFIX + table, replacing the task's naming rule.
    #[arg(long, value_name = "AFFIX", conflicts_with = "suffix")]
    pub prefix: Option<String>,
    /// Shadow name = table + AFFIX, replacing the task's naming rule.
    #[arg(long, value_name = "AFFIX")]
    pub suffix: Option<String>,
    /// Do not re-apply the task's skips.
    #[arg(long)]
    pub discard_skips: bool,
    /// Wait until the analysis finishes (a progress bar on a terminal).
    #[arg(long)]
    pub wait: bool,
}

pub async fn run(
    client_args: &ClientArgs,
    command: &TaskCommand,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let mut client = TaskServiceClient::new(client_args.authenticated()?);
    let task = match command {
        TaskCommand::Submit(args) => {
            client
                .submit_task(submit_request(args))
                .await?
                .into_inner()
                .task
        }
        TaskCommand::List(args) => {
            list::run(&mut client, out, format, args).await?;
            return Ok(ExitCode::SUCCESS);
        }
        TaskCommand::Show(args) => {
            show::run(&mut client, out, format, args).await?;
            return Ok(ExitCode::SUCCESS);
        }
        TaskCommand::Abort { id, comment } => {
            client
                .abort_task(AbortTaskRequest {
                    task_id: *id,
                    comment: comment.clone(),
                    request_id: request_id(),
                })
                .await?
                .into_inner()
                .task
        }
        TaskCommand::Again(args) => {
            let connection_id = match &args.connection {
                Some(name_or_id) => Some(
                    crate::connection::resolve(&mut client, name_or_id)
                        .await?
                        .id,
                ),
                None => None,
            };
            let analysis = client
                .initiate_again(again_request(args, connection_id))
                .await?
                .into_inner()
                .analysis
                .unwrap_or_default();
            return crate::analysis::report_started(&mut client, out, format, analysis, args.wait)
                .await;
        }
        TaskCommand::Approve { id, comment } => {
            client
                .approve_task(ApproveTaskRequest {
                    task_id: *id,
                    comment: comment.clone(),
                    request_id: request_id(),
                })
                .await?
                .into_inner()
                .task
        }
        TaskCommand::Reject { id, comment } => {
            client
                .reject_task(RejectTaskRequest {
                    task_id: *id,
                    comment: comment.clone(),
                    request_id: request_id(),
                })
                .await?
                .into_inner()
                .task
        }
        TaskCommand::Logs(args) => return logs::run(&mut client, out, format, args).await,
        TaskCommand::Wait(args) => return wait::run(&mut client, out, format, args).await,
    };
    show::print(out, format, &show::Details::task(task.unwrap_or_default()))?;
    Ok(ExitCode::SUCCESS)
}

fn submit_request(args: &SubmitArgs) -> SubmitTaskRequest {
    let (execution_mode, scheduled_time) = match args.at {
        Some(at) => (ExecutionMode::Scheduled, Some(when::timestamp(at))),
        None => (ExecutionMode::Immediate, None),
    };
    let error_strategy = match args.on_error {
        OnErrorArg::Abort => ErrorStrategy::Abort,
        OnErrorArg::Continue => ErrorStrategy::Continue,
    };
    SubmitTaskRequest {
        analysis_id: args.analysis.clone(),
        execution_mode: execution_mode as i32,
        scheduled_time,
        error_strategy: error_strategy as i32,
        remarks: args.remarks.clone(),
        request_id: request_id(),
    }
}

/// Unset flags stay unset so the server keeps the original task's values.
fn again_request(args: &AgainArgs, connection_id: Option<String>) -> InitiateAgainRequest {
    let range = if args.all {
        Some(SyncRange::All as i32)
    } else if !args.tables.is_empty() {
        Some(SyncRange::Partial as i32)
    } else {
        None
    };
    let naming = match (&args.prefix, &args.suffix) {
        (Some(prefix), _) => Some(ShadowNaming {
            mode: ShadowNamingMode::Prefix as i32,
            affix: prefix.clone(),
        }),
        (None, Some(suffix)) => Some(ShadowNaming {
            mode: ShadowNamingMode::Suffix as i32,
            affix: suffix.clone(),
        }),
        (None, None) => None,
    };
    InitiateAgainRequest {
        task_id: args.id,
        connection_id,
        database: args.database.clone(),
        range,
        replace_tables: !args.tables.is_empty(),
        tables: args.tables.clone(),
        naming,
        discard_skips: args.discard_skips,
        request_id: request_id(),
    }
}

/// Statuses after which a task never changes again.
fn is_final(status: i32) -> bool {
    matches!(
        TaskStatus::try_from(status),
        Ok(TaskStatus::ExecutionSucceeded
            | TaskStatus::ExecutionFailed
            | TaskStatus::ExecutionExpired
            | TaskStatus::Cancelled
            | TaskStatus::Rejected
            | TaskStatus::ApprovalExpired
            | TaskStatus::WaitForExecutionExpired)
    )
}

/// The exit status of a task that reached `status`, a final one: only EXECUTION_SUCCEEDED is
/// success.
fn outcome(status: i32) -> crate::Exit {
    if status == TaskStatus::ExecutionSucceeded as i32 {
        crate::Exit::Success
    } else {
        crate::Exit::Unsuccessful
    }
}

/// `TASK_STATUS_EXECUTING`, as the list, the details and JSON show a task's status.
fn status_name(status: i32) -> String {
    enum_name(
        status,
        TaskStatus::try_from(status).ok().map(|s| s.as_str_name()),
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Command};

    fn parse(args: &[&str]) -> Result<TaskCommand, clap::Error> {
        let cli = Cli::try_parse_from(["shadowctl", "task"].iter().chain(args))?;
        match cli.command {
            Command::Task(command) => Ok(command),
            other => panic!("not a task command: {other:?}"),
        }
    }

    fn submit(args: &[&str]) -> SubmitTaskRequest {
        match parse(args).expect("parse") {
            TaskCommand::Submit(args) => submit_request(&args),
            other => panic!("not submit: {other:?}"),
        }
    }

    fn again(args: &[&str]) -> InitiateAgainRequest {
        match parse(args).expect("parse") {
            TaskCommand::Again(args) => again_request(&args, None),
            other => panic!("not again: {other:?}"),
        }
    }

    #[test]
    fn submit_without_at_is_immediate_and_aborts_on_error() {
        let request = submit(&["submit", "an-1"]);
        assert_eq!(request.analysis_id, "an-1");
        assert_eq!(request.execution_mode, ExecutionMode::Immediate as i32);
        assert_eq!(request.scheduled_time, None);
        assert_eq!(request.error_strategy, ErrorStrategy::Abort as i32);
        assert!(request.request_id.starts_with("shadowctl-"));
    }

    #[test]
    fn submit_at_a_time_is_scheduled() {
        let request = submit(&[
            "submit",
            "an-1",
            "--at",
            "2026-11-24T15:00:00+08:00",
            "--on-error",
            "continue",
            "--remarks",
            "for the load test",
        ]);
        assert_eq!(request.execution_mode, ExecutionMode::Scheduled as i32);
        assert_eq!(
            request.scheduled_time.map(|t| t.seconds),
            Some(1_795_503_600)
        );
        assert_eq!(request.error_strategy, ErrorStrategy::Continue as i32);
        assert_eq!(request.remarks, "for the load test");
    }

    #[test]
    fn submit_at_a_duration_is_that_long_from_now() {
        let before = Utc::now().timestamp();
        let request = submit(&["submit", "an-1", "--at", "1h30m"]);
        let at = request.scheduled_time.map(|t| t.seconds).unwrap_or(0);
        assert!((before + 5_400..=Utc::now().timestamp() + 5_400).contains(&at));
    }

    #[test]
    fn a_bad_time_is_a_clap_error_naming_the_flag() {
        let error = parse(&["submit", "an-1", "--at", "5x"]).expect_err("5x");
        let text = error.to_string();
        assert!(
            text.contains("invalid value '5x' for '--at <TIME>'"),
            "{text}"
        );
    }

    #[test]
    fn again_leaves_unset_overrides_unset() {
        let request = again(&["again", "42"]);
        assert_eq!(request.task_id, 42);
        assert_eq!(request.database, None);
        assert_eq!(request.range, None);
        assert!(!request.replace_tables);
        assert_eq!(request.naming, None);
        assert!(!request.discard_skips);
    }

    #[test]
    fn again_with_tables_replaces_the_list_and_the_naming() {
        let request = again(&[
            "again",
            "42",
            "--database",
            "shop",
            "--tables",
            "orders,items",
            "--suffix",
            "_t",
            "--discard-skips",
        ]);
        assert_eq!(request.database.as_deref(), Some("shop"));
        assert_eq!(request.range, Some(SyncRange::Partial as i32));
        assert!(request.replace_tables);
        assert_eq!(request.tables, ["orders", "items"]);
        assert_eq!(
            request.naming,
            Some(ShadowNaming {
                mode: ShadowNamingMode::Suffix as i32,
                affix: "_t".into()
            })
        );
        assert!(request.discard_skips);
        assert_eq!(
            again(&["again", "42", "--all"]).range,
            Some(SyncRange::All as i32)
        );
    }

    #[test]
    fn again_refuses_contradictions() {
        assert!(parse(&["again", "1", "--all", "--tables", "a"]).is_err());
        assert!(parse(&["again", "1", "--prefix", "p_", "--suffix", "_s"]).is_err());
    }

    #[test]
    fn approve_and_reject_need_a_comment() {
        assert!(parse(&["approve", "1"]).is_err());
        assert!(parse(&["reject", "1"]).is_err());
        assert!(parse(&["approve", "1", "--comment", "ok"]).is_ok());
    }

    #[test]
    fn final_statuses() {
        let finals: Vec<TaskStatus> = (0..=11)
            .filter_map(|n| TaskStatus::try_from(n).ok())
            .filter(|s| is_final(*s as i32))
            .collect();
        assert_eq!(
            finals,
            [
                TaskStatus::Rejected,
                TaskStatus::ApprovalExpired,
                TaskStatus::WaitForExecutionExpired,
                TaskStatus::ExecutionSucceeded,
                TaskStatus::ExecutionFailed,
                TaskStatus::ExecutionExpired,
                TaskStatus::Cancelled,
            ]
        );
    }

    #[test]
    fn unknown_enum_values_show_their_number() {
        assert_eq!(
            status_name(TaskStatus::Executing as i32),
            "TASK_STATUS_EXECUTING"
        );
        assert_eq!(status_name(99), "99");
    }
}
