//! `shadowctl task show ID [--process] [--settings]`: basic information, the process timeline,
//! and the settings (tables with their results, the SQL script).

use std::io::Write;

use shadowsync_proto::task::v1::{
    GetTaskRequest, ListTaskStatementsRequest, ListTaskTablesRequest, ListTaskTimelineRequest,
    ScriptStatement, Task, TaskTable, TimelineEntry,
};

use super::Client;
use super::render::{script, table_row, task_fields, timeline_row};
use crate::CliError;
use crate::output::{self, OutputFormat, proto_json};

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  shadowctl task show 42
  shadowctl task show 42 --process --settings")]
pub struct ShowArgs {
    /// The task id.
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Also the process timeline (initiated, approvals, dispatch, execution, completion).
    #[arg(long)]
    pub process: bool,
    /// Also the settings: the tables with their results, and the SQL script.
    #[arg(long)]
    pub settings: bool,
}

/// What `task show` prints: the task, and the parts that were asked for.
#[derive(Debug, Default)]
pub struct Details {
    pub task: Task,
    pub timeline: Option<Vec<TimelineEntry>>,
    pub tables: Option<Vec<TaskTable>>,
    pub statements: Option<Vec<ScriptStatement>>,
}

impl Details {
    /// Only the basic information.
    pub fn task(task: Task) -> Self {
        Self {
            task,
            ..Self::default()
        }
    }
}

pub async fn run(
    client: &mut Client,
    out: &mut dyn Write,
    format: OutputFormat,
    args: &ShowArgs,
) -> Result<(), CliError> {
    let response = client
        .get_task(GetTaskRequest { task_id: args.id })
        .await?
        .into_inner();
    let mut details = Details::task(response.task.unwrap_or_default());
    if args.process {
        details.timeline = Some(if response.timeline_truncated {
            whole_timeline(client, args.id).await?
        } else {
            response.timeline
        });
    }
    if args.settings {
        details.tables = Some(all_tables(client, args.id).await?);
        details.statements = Some(all_statements(client, args.id).await?);
    }
    print(out, format, &details)
}

async fn whole_timeline(client: &mut Client, task_id: i64) -> Result<Vec<TimelineEntry>, CliError> {
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_task_timeline(ListTaskTimelineRequest {
                task_id,
                page_size: 1_000,
                page_token,
            })
            .await?
            .into_inner();
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            return Ok(entries);
        }
        page_token = page.next_page_token;
    }
}

async fn all_tables(client: &mut Client, task_id: i64) -> Result<Vec<TaskTable>, CliError> {
    let mut tables = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_task_tables(ListTaskTablesRequest {
                task_id,
                page_size: 1_000,
                page_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        tables.extend(page.tables);
        if page.next_page_token.is_empty() {
            return Ok(tables);
        }
        page_token = page.next_page_token;
    }
}

async fn all_statements(
    client: &mut Client,
    task_id: i64,
) -> Result<Vec<ScriptStatement>, CliError> {
    let mut statements = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_task_statements(ListTaskStatementsRequest {
                task_id,
                page_size: 5_000,
                page_token,
            })
            .await?
            .into_inner();
        statements.extend(page.statements);
        if page.next_page_token.is_empty() {
            return Ok(statements);
        }
        page_token = page.next_page_token;
    }
}

/// Prints the details: labelled fields and tables for people, one JSON object
/// `{task, timeline?, tables?, statements?}` for scripts.
pub fn print(out: &mut dyn Write, format: OutputFormat, details: &Details) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        return output::json(out, &details_json(details)?);
    }
    output::fields(out, &task_fields(&details.task))?;
    if let Some(timeline) = &details.timeline {
        output::write_all(out, b"\n-- process\n")?;
        let rows: Vec<Vec<String>> = timeline.iter().map(timeline_row).collect();
        output::table(out, &["SEQ", "TIME", "KIND", "ACTOR", "DETAIL"], &rows)?;
    }
    if let Some(tables) = &details.tables {
        output::write_all(out, b"\n-- tables\n")?;
        let rows: Vec<Vec<String>> = tables.iter().map(table_row).collect();
        output::table(
            out,
            &[
                "ORDINAL",
                "SOURCE",
                "SHADOW",
                "RESULT",
                "TAB",
                "STATUS",
                "STATEMENTS",
                "ERROR",
            ],
            &rows,
        )?;
    }
    if let Some(statements) = &details.statements {
        output::write_all(out, b"\n-- SQL script\n")?;
        output::write_all(out, script(statements).as_bytes())?;
    }
    Ok(())
}

fn details_json(details: &Details) -> Result<serde_json::Value, CliError> {
    fn array<M: prost::Message + prost::Name>(
        messages: &[M],
    ) -> Result<serde_json::Value, CliError> {
        Ok(serde_json::Value::Array(
            messages.iter().map(proto_json).collect::<Result<_, _>>()?,
        ))
    }
    let mut object = serde_json::Map::new();
    object.insert("task".into(), proto_json(&details.task)?);
    if let Some(timeline) = &details.timeline {
        object.insert("timeline".into(), array(timeline)?);
    }
    if let Some(tables) = &details.tables {
        object.insert("tables".into(), array(tables)?);
    }
    if let Some(statements) = &details.statements {
        object.insert("statements".into(), array(statements)?);
    }
    Ok(serde_json::Value::Object(object))
}

#[cfg(test)]
mod tests {
    use shadowsync_proto::task::v1::TimelineEntryKind;

    use super::*;
    use crate::task::render::tests::{entry, task};

    #[test]
    fn json_holds_only_the_parts_asked_for() {
        let mut details = Details::task(task());
        let value = details_json(&details).expect("json");
        let keys: Vec<&String> = value.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["task"]);
        assert_eq!(value["task"]["id"], "42");
        assert_eq!(value["task"]["status"], "TASK_STATUS_APPROVING");

        details.timeline = Some(vec![entry(TimelineEntryKind::Initiated)]);
        details.statements = Some(vec![]);
        let value = details_json(&details).expect("json");
        assert_eq!(
            value["timeline"][0]["kind"],
            "TIMELINE_ENTRY_KIND_INITIATED"
        );
        assert_eq!(value["statements"], serde_json::json!([]));
        assert!(value.get("tables").is_none());
    }

    #[test]
    fn printed_as_fields_then_sections() {
        let details = Details {
            timeline: Some(vec![entry(TimelineEntryKind::Initiated)]),
            tables: Some(vec![]),
            statements: Some(vec![ScriptStatement {
                sql: "SELECT 1".into(),
                ..Default::default()
            }]),
            ..Details::task(task())
        };
        let mut out = Vec::new();
        print(&mut out, OutputFormat::Table, &details).expect("print");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.starts_with("id               42\nstatus           TASK_STATUS_APPROVING\n"),
            "{text}"
        );
        assert!(text.contains("\n-- process\nSEQ  TIME  KIND                           ACTOR         DETAIL\n7          TIMELINE_ENTRY_KIND_INITIATED  svc:executor\n"), "{text}");
        assert!(text.contains("\n-- tables\nORDINAL  SOURCE"), "{text}");
        assert!(text.ends_with("\n-- SQL script\nSELECT 1;\n"), "{text}");
    }
}
