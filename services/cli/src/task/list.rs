//! `shadowctl task list`: filters, sort and paging of `ListTasks`.

use std::io::Write;

use chrono::{DateTime, Utc};
use shadowsync_proto::common::v1::SortDirection;
use shadowsync_proto::task::v1::{
    ListTasksRequest, ListTasksResponse, Task, TaskScope, TaskSortField, TaskStatus, TaskType,
};

use super::render::{actions, connection_label};
use super::{Client, status_name};
use crate::CliError;
use crate::output::{self, OutputFormat, proto_json};
use crate::when;

/// Page size of `--all-pages` when none is given: the server's maximum, for fewest round trips.
const ALL_PAGES_SIZE: i32 = 500;

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  shadowctl task list
  shadowctl task list --scope mine --status executing,execution_failed --since 7d
  shadowctl task list --connection prod-orders --all-pages -o json | jq '.tasks[].id'")]
pub struct ListArgs {
    /// Only tasks on these connections (name or id; repeat or comma-separate).
    #[arg(long, value_name = "ID", value_delimiter = ',')]
    pub connection: Vec<String>,
    /// Only databases whose name contains TEXT (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub database: Option<String>,
    /// Only creators whose user id or name contains TEXT (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub creator: Option<String>,
    /// Only these statuses: approving, rejected, approval_expired, wait_for_execution,
    /// wait_for_execution_expired, executing, execution_succeeded, execution_failed,
    /// execution_expired, cancelled (repeat or comma-separate).
    #[arg(long, value_name = "S", value_delimiter = ',', value_parser = parse_status)]
    pub status: Vec<TaskStatus>,
    /// Only this task type.
    #[arg(long = "type", value_enum)]
    pub task_type: Option<TypeArg>,
    /// Created at or after TIME (RFC 3339, or a duration ago such as 7d).
    #[arg(long, value_name = "TIME", value_parser = when::parse_past)]
    pub since: Option<DateTime<Utc>>,
    /// Created before TIME (RFC 3339, or a duration ago such as 1d).
    #[arg(long, value_name = "TIME", value_parser = when::parse_past)]
    pub until: Option<DateTime<Utc>>,
    /// Which tasks to consider before the filters.
    #[arg(long, value_enum, default_value_t = ScopeArg::All)]
    pub scope: ScopeArg,
    /// Sort field.
    #[arg(long, value_enum, default_value_t = SortArg::Created)]
    pub sort: SortArg,
    /// Sort ascending.
    #[arg(long, conflicts_with = "desc")]
    pub asc: bool,
    /// Sort descending (the default).
    #[arg(long)]
    pub desc: bool,
    /// Tasks per page (the server's default is 20; at most 500).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=500))]
    pub page_size: Option<i32>,
    /// Continue where a previous page ended (with the same filters).
    #[arg(long, value_name = "T")]
    pub page_token: Option<String>,
    /// Follow the page tokens and list every matching task.
    #[arg(long)]
    pub all_pages: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TypeArg {
    #[value(name = "shadow_table_sync", alias = "shadow-table-sync")]
    ShadowTableSync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScopeArg {
    /// Every task you may see (admins: all).
    All,
    /// Tasks you created.
    Mine,
    /// Tasks waiting for your approval.
    AwaitingMe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortArg {
    Id,
    Created,
    Status,
}

/// `--status` values: the `TaskStatus` names without `TASK_STATUS_`, in any case, `-` or `_`.
pub fn parse_status(text: &str) -> Result<TaskStatus, String> {
    let name = text.trim().to_uppercase().replace('-', "_");
    let name = name.strip_prefix("TASK_STATUS_").unwrap_or(&name);
    match TaskStatus::from_str_name(&format!("TASK_STATUS_{name}")) {
        Some(status) if listed(status) => Ok(status),
        _ => {
            let known: Vec<String> = (1..)
                .map_while(|n| TaskStatus::try_from(n).ok())
                .filter(|s| listed(*s))
                .map(|s| {
                    s.as_str_name()
                        .trim_start_matches("TASK_STATUS_")
                        .to_lowercase()
                })
                .collect();
            Err(format!(
                "unknown status; expected one of {}",
                known.join(", ")
            ))
        }
    }
}

/// SUBMITTING tasks are never listed, so filtering on it could only ever find nothing.
fn listed(status: TaskStatus) -> bool {
    !matches!(status, TaskStatus::Unspecified | TaskStatus::Submitting)
}

pub async fn run(
    client: &mut Client,
    out: &mut dyn Write,
    format: OutputFormat,
    args: &ListArgs,
) -> Result<(), CliError> {
    let mut connection_ids = Vec::new();
    for name_or_id in &args.connection {
        // A value that names no connection is passed on as an id: a task may outlive its
        // connection, and the server answers for unknown ids.
        let id = match crate::connection::resolve(client, name_or_id).await {
            Ok(connection) => connection.id,
            Err(_) => name_or_id.clone(),
        };
        connection_ids.push(id);
    }
    let mut request = list_request(args, connection_ids);
    let mut all = ListTasksResponse::default();
    loop {
        let page = client.list_tasks(request.clone()).await?.into_inner();
        all.tasks.extend(page.tasks);
        all.total_size = page.total_size;
        all.next_page_token = page.next_page_token;
        if !args.all_pages || all.next_page_token.is_empty() {
            break;
        }
        request.page_token = all.next_page_token.clone();
    }
    match format {
        OutputFormat::Json => output::json(out, &proto_json(&all)?),
        OutputFormat::Table => {
            output::table(
                out,
                &HEADERS,
                &all.tasks.iter().map(row).collect::<Vec<_>>(),
            )?;
            // On stderr so the table on stdout stays clean for pipes.
            eprintln!("{}", footer(&all));
            Ok(())
        }
    }
}

fn list_request(args: &ListArgs, connection_ids: Vec<String>) -> ListTasksRequest {
    let scope = match args.scope {
        ScopeArg::All => TaskScope::Unspecified,
        ScopeArg::Mine => TaskScope::CreatedByMe,
        ScopeArg::AwaitingMe => TaskScope::AwaitingMyApproval,
    };
    let sort_field = match args.sort {
        SortArg::Id => TaskSortField::Id,
        SortArg::Created => TaskSortField::CreateTime,
        SortArg::Status => TaskSortField::Status,
    };
    let sort_direction = if args.asc {
        SortDirection::Ascending
    } else {
        SortDirection::Descending
    };
    let task_type = match args.task_type {
        Some(TypeArg::ShadowTableSync) => TaskType::ShadowTableSync,
        None => TaskType::Unspecified,
    };
    let page_size = match (args.page_size, args.all_pages) {
        (Some(size), _) => size,
        (None, true) => ALL_PAGES_SIZE,
        // 0 asks for the server's default.
        (None, false) => 0,
    };
    ListTasksRequest {
        scope: scope as i32,
        connection_ids,
        database_contains: args.database.clone().unwrap_or_default(),
        creator_contains: args.creator.clone().unwrap_or_default(),
        statuses: args.status.iter().map(|s| *s as i32).collect(),
        r#type: task_type as i32,
        // Unset bounds leave the server's default window (the last 48 hours) in force.
        create_time_after: args.since.map(when::timestamp),
        create_time_before: args.until.map(when::timestamp),
        sort_field: sort_field as i32,
        sort_direction: sort_direction as i32,
        page_size,
        page_token: args.page_token.clone().unwrap_or_default(),
    }
}

const HEADERS: [&str; 8] = [
    "ID",
    "STATUS",
    "CONNECTION",
    "DATABASE",
    "CREATOR",
    "AGE",
    "APPROVAL",
    "ACTIONS",
];

fn row(task: &Task) -> Vec<String> {
    vec![
        task.id.to_string(),
        status_name(task.status),
        connection_label(task),
        task.database.clone(),
        task.creator
            .as_ref()
            .map(|c| c.subject.clone())
            .unwrap_or_default(),
        task.create_time.map(output::age).unwrap_or_default(),
        // The full id is in `task show` and the JSON; any 8-character prefix is unique enough
        // to find it there.
        task.approval_id.chars().take(8).collect(),
        actions(task),
    ]
}

fn footer(page: &ListTasksResponse) -> String {
    let mut text = format!("{} of {} tasks", page.tasks.len(), page.total_size);
    if !page.next_page_token.is_empty() {
        text.push_str(&format!(
            "; next page: --page-token {}",
            page.next_page_token
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use shadowsync_proto::common::v1::Actor;
    use shadowsync_proto::task::v1::TaskAction;

    use super::*;
    use crate::task::TaskCommand;
    use crate::{Cli, Command};

    fn parse(args: &[&str]) -> Result<ListArgs, clap::Error> {
        let cli = Cli::try_parse_from(["shadowctl", "task", "list"].iter().chain(args))?;
        match cli.command {
            Command::Task(TaskCommand::List(args)) => Ok(args),
            other => panic!("not task list: {other:?}"),
        }
    }

    fn request(args: &[&str]) -> ListTasksRequest {
        list_request(&parse(args).expect("parse"), Vec::new())
    }

    #[test]
    fn statuses_by_short_name_in_any_case() {
        assert_eq!(parse_status("approving"), Ok(TaskStatus::Approving));
        assert_eq!(
            parse_status("Wait_For_Execution"),
            Ok(TaskStatus::WaitForExecution)
        );
        assert_eq!(
            parse_status("execution-succeeded"),
            Ok(TaskStatus::ExecutionSucceeded)
        );
        assert_eq!(
            parse_status("TASK_STATUS_CANCELLED"),
            Ok(TaskStatus::Cancelled)
        );
    }

    #[test]
    fn unknown_statuses_list_the_known_ones() {
        let error = parse_status("done").expect_err("done");
        assert!(error.contains("approving, rejected"), "{error}");
        assert!(error.contains("cancelled"), "{error}");
        assert!(!error.contains("submitting"), "{error}");
        assert!(parse_status("unspecified").is_err());
        assert!(parse_status("submitting").is_err());
        assert!(parse_status("").is_err());
    }

    #[test]
    fn statuses_repeat_or_comma_separate() {
        let request = request(&["--status", "approving,executing", "--status", "cancelled"]);
        assert_eq!(
            request.statuses,
            [
                TaskStatus::Approving as i32,
                TaskStatus::Executing as i32,
                TaskStatus::Cancelled as i32
            ]
        );
        let error = parse(&["--status", "done"]).expect_err("done");
        assert!(
            error
                .to_string()
                .contains("invalid value 'done' for '--status <S>'"),
            "{error}"
        );
    }

    #[test]
    fn defaults_send_no_window_and_sort_newest_first() {
        let request = request(&[]);
        assert_eq!(request.create_time_after, None);
        assert_eq!(request.create_time_before, None);
        assert_eq!(request.sort_field, TaskSortField::CreateTime as i32);
        assert_eq!(request.sort_direction, SortDirection::Descending as i32);
        assert_eq!(request.scope, TaskScope::Unspecified as i32);
        assert_eq!(request.r#type, TaskType::Unspecified as i32);
        assert_eq!(request.page_size, 0);
        assert_eq!(request.page_token, "");
    }

    #[test]
    fn filters_map_to_the_request() {
        let request = request(&[
            "--database",
            "shop",
            "--creator",
            "ali",
            "--type",
            "shadow_table_sync",
            "--since",
            "2026-11-01T00:00:00Z",
            "--until",
            "2026-11-02T00:00:00Z",
            "--scope",
            "awaiting-me",
            "--sort",
            "id",
            "--asc",
            "--page-size",
            "50",
            "--page-token",
            "abc",
        ]);
        assert_eq!(request.database_contains, "shop");
        assert_eq!(request.creator_contains, "ali");
        assert_eq!(request.r#type, TaskType::ShadowTableSync as i32);
        assert_eq!(
            request.create_time_after.map(|t| t.seconds),
            Some(1_793_491_200)
        );
        assert_eq!(
            request.create_time_before.map(|t| t.seconds),
            Some(1_793_577_600)
        );
        assert_eq!(request.scope, TaskScope::AwaitingMyApproval as i32);
        assert_eq!(request.sort_field, TaskSortField::Id as i32);
        assert_eq!(request.sort_direction, SortDirection::Ascending as i32);
        assert_eq!(request.page_size, 50);
        assert_eq!(request.page_token, "abc");
    }

    #[test]
    fn since_a_duration_is_that_long_ago() {
        let before = Utc::now().timestamp();
        let request = request(&["--since", "2h"]);
        let after = request.create_time_after.map(|t| t.seconds).unwrap_or(0);
        assert!((before - 7_200..=Utc::now().timestamp() - 7_200).contains(&after));
    }

    #[test]
    fn all_pages_asks_for_big_pages() {
        assert_eq!(request(&["--all-pages"]).page_size, ALL_PAGES_SIZE);
        assert_eq!(request(&["--all-pages", "--page-size", "7"]).page_size, 7);
    }

    #[test]
    fn contradictory_or_out_of_range_flags_are_refused() {
        assert!(parse(&["--asc", "--desc"]).is_err());
        assert!(parse(&["--page-size", "0"]).is_err());
        assert!(parse(&["--page-size", "501"]).is_err());
        assert!(parse(&["--scope", "everyone"]).is_err());
        assert!(parse(&["--since", "yesterday"]).is_err());
    }

    #[test]
    fn a_task_as_a_row() {
        let task = Task {
            id: 42,
            status: TaskStatus::Approving as i32,
            connection_id: "c-1".into(),
            connection_name: "prod".into(),
            database: "shop".into(),
            creator: Some(Actor {
                subject: "alice".into(),
                ..Default::default()
            }),
            approval_id: "ap-9".into(),
            allowed_actions: vec![
                TaskAction::View as i32,
                TaskAction::Abort as i32,
                TaskAction::InitiateAgain as i32,
            ],
            ..Default::default()
        };
        assert_eq!(
            row(&task),
            [
                "42",
                "TASK_STATUS_APPROVING",
                "prod",
                "shop",
                "alice",
                "",
                "ap-9",
                "TASK_ACTION_VIEW,TASK_ACTION_ABORT,TASK_ACTION_INITIATE_AGAIN"
            ]
        );
    }

    #[test]
    fn the_footer_gives_the_total_and_the_next_token() {
        let mut page = ListTasksResponse {
            tasks: vec![Task::default(); 2],
            next_page_token: "t2".into(),
            total_size: 5,
        };
        assert_eq!(footer(&page), "2 of 5 tasks; next page: --page-token t2");
        page.next_page_token.clear();
        assert_eq!(footer(&page), "2 of 5 tasks");
    }
}
