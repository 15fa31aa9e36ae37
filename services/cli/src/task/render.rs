//! Tasks, timeline entries and task tables as the fields and rows people read.

use shadowsync_proto::common::v1::TableAnalysisResult;
use shadowsync_proto::task::v1::{
    ErrorStrategy, ExecutionMode, ScriptStatement, TableExecutionStatus, Task, TaskAction,
    TaskTable, TaskType, TimelineEntry, TimelineEntryKind,
};

use super::status_name;
use crate::output::enum_name;
use crate::output::local_time;

/// The connection as the list shows it: its name, or its id when the name is unknown.
pub fn connection_label(task: &Task) -> String {
    if task.connection_name.is_empty() {
        task.connection_id.clone()
    } else {
        task.connection_name.clone()
    }
}

/// `view,abort`: what the caller may do now.
pub fn actions(task: &Task) -> String {
    task.allowed_actions
        .iter()
        .map(|action| {
            enum_name(
                *action,
                TaskAction::try_from(*action).ok().map(|a| a.as_str_name()),
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub fn task_fields(task: &Task) -> Vec<(&'static str, String)> {
    let execution = match ExecutionMode::try_from(task.execution_mode) {
        Ok(ExecutionMode::Scheduled) => format!(
            "scheduled at {}",
            task.scheduled_time.map(local_time).unwrap_or_default()
        ),
        Ok(ExecutionMode::Immediate) => "immediate".into(),
        _ => task.execution_mode.to_string(),
    };
    let on_error = match ErrorStrategy::try_from(task.error_strategy) {
        Ok(ErrorStrategy::Abort) => "abort".into(),
        Ok(ErrorStrategy::Continue) => "continue".into(),
        _ => task.error_strategy.to_string(),
    };
    let connection = if task.connection_name.is_empty() {
        task.connection_id.clone()
    } else {
        format!("{} ({})", task.connection_name, task.connection_id)
    };
    let creator = task
        .creator
        .as_ref()
        .map(|c| {
            if c.display_name.is_empty() || c.display_name == c.subject {
                c.subject.clone()
            } else {
                format!("{} ({})", c.subject, c.display_name)
            }
        })
        .unwrap_or_default();
    let priority = if task.priority == 0 {
        "not set until the approval matches a template".into()
    } else {
        task.priority.to_string()
    };
    let mut fields = vec![
        ("id", task.id.to_string()),
        ("status", status_name(task.status)),
        (
            "type",
            enum_name(
                task.r#type,
                TaskType::try_from(task.r#type)
                    .ok()
                    .map(|t| t.as_str_name()),
            ),
        ),
        ("connection", connection),
        ("database", task.database.clone()),
        ("execution", execution),
        ("on error", on_error),
        ("remarks", task.remarks.clone()),
        ("creator", creator),
        (
            "created",
            task.create_time.map(local_time).unwrap_or_default(),
        ),
    ];
    if let Some(finished) = task.finish_time {
        fields.push(("finished", local_time(finished)));
    }
    fields.push(("approval", task.approval_id.clone()));
    if let Some(wait) = &task.approval_wait {
        // People count nodes from 1; the API's index is 0-based.
        let mut text = format!("node {}", u64::from(wait.node_index) + 1);
        if !wait.node_name.is_empty() {
            text.push_str(&format!(" {:?}", wait.node_name));
        }
        text.push_str(&candidates(&wait.candidate_users, &wait.candidate_roles));
        if let Some(deadline) = wait.deadline {
            text.push_str(&format!(" until {}", local_time(deadline)));
        }
        fields.push(("waiting for", text));
    }
    fields.extend([
        ("priority", priority),
        ("progress", progress(task)),
        (
            "abort requested",
            if task.abort_requested { "yes" } else { "no" }.into(),
        ),
        (
            "settings",
            format!(
                "{} to sync, {} not synced, {}",
                shadowsync_common::text::counted(u64::from(task.tables_to_sync_count), "table"),
                task.tables_not_synced_count,
                shadowsync_common::text::counted(u64::from(task.statement_count), "statement")
            ),
        ),
        ("analysis", task.analysis_id.clone()),
        ("actions", actions(task)),
    ]);
    fields
}

/// `3/10 tables (30%): 2 succeeded, 1 failed`, counting only what happened.
fn progress(task: &Task) -> String {
    let p = task.progress.unwrap_or_default();
    let mut text = format!(
        "{}/{} tables ({}%)",
        p.tables_done, p.tables_total, p.percent
    );
    let outcomes: Vec<String> = [
        (p.tables_succeeded, "succeeded"),
        (p.tables_already_in_sync, "already in sync"),
        (p.tables_failed, "failed"),
        (p.tables_not_run, "not run"),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, what)| format!("{count} {what}"))
    .collect();
    if !outcomes.is_empty() {
        text.push_str(": ");
        text.push_str(&outcomes.join(", "));
    }
    text
}

/// ` alice, role:dba` (with its leading space), or nothing.
fn candidates(users: &[String], roles: &[String]) -> String {
    let names: Vec<String> = users
        .iter()
        .cloned()
        .chain(roles.iter().map(|r| format!("role:{r}")))
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" {}", names.join(", "))
    }
}

/// Table cells stay on one line, or the columns lose their alignment.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn table_status_name(status: i32) -> String {
    enum_name(
        status,
        TableExecutionStatus::try_from(status)
            .ok()
            .map(|s| s.as_str_name()),
    )
}

pub fn timeline_row(entry: &TimelineEntry) -> Vec<String> {
    let kind = TimelineEntryKind::try_from(entry.kind).ok();
    vec![
        entry.sequence.to_string(),
        entry.time.map(local_time).unwrap_or_default(),
        enum_name(entry.kind, kind.map(|k| k.as_str_name())),
        entry
            .actor
            .as_ref()
            .map(|a| a.subject.clone())
            .unwrap_or_default(),
        timeline_detail(entry, kind),
    ]
}

/// Whichever of the entry's fields apply to its kind, comment last.
fn timeline_detail(entry: &TimelineEntry, kind: Option<TimelineEntryKind>) -> String {
    use TimelineEntryKind as K;
    let mut parts = Vec::new();
    let about_a_node = matches!(
        kind,
        Some(
            K::ApprovalPending
                | K::Approved
                | K::AutoApproved
                | K::Rejected
                | K::NodeAdvanced
                | K::ApprovalExpired
        )
    );
    if about_a_node || !entry.node_name.is_empty() {
        let mut node = format!("node {}", u64::from(entry.node_index) + 1);
        if !entry.node_name.is_empty() {
            node.push_str(&format!(" {:?}", entry.node_name));
        }
        parts.push(node);
    }
    let who = candidates(&entry.candidate_users, &entry.candidate_roles);
    if !who.is_empty() || entry.deadline.is_some() {
        let mut wait = format!("waiting for{who}");
        if let Some(deadline) = entry.deadline {
            wait.push_str(&format!(" until {}", local_time(deadline)));
        }
        parts.push(wait);
    }
    if entry.attempt > 0 {
        let mut attempt = format!("attempt {}", entry.attempt);
        if !entry.executor_id.is_empty() {
            attempt.push_str(&format!(" on {}", entry.executor_id));
        }
        parts.push(attempt);
    }
    if !entry.table.is_empty() {
        parts.push(format!(
            "{} {}",
            entry.table,
            table_status_name(entry.table_status)
        ));
    }
    if !entry.comment.is_empty() {
        parts.push(one_line(&entry.comment));
    }
    parts.join("; ")
}

pub fn table_row(table: &TaskTable) -> Vec<String> {
    // Which tab of the analysis the table was on: "synced" alone read as an outcome beside a
    // FAILED status.
    let synced = if table.synced {
        "synchronized"
    } else if table.skipped {
        "skipped"
    } else {
        "unsynchronized"
    };
    let (status, statements) = if table.synced {
        (
            table_status_name(table.status),
            format!("{}/{}", table.statements_done, table.statements_total),
        )
    } else {
        (String::new(), String::new())
    };
    // Unsynced rows have no error; their reason says why they cannot be synced.
    let error = match (table.error_code.is_empty(), table.error_message.is_empty()) {
        (true, true) => one_line(&table.reason),
        (true, false) => one_line(&table.error_message),
        (false, true) => table.error_code.clone(),
        (false, false) => format!("{}: {}", table.error_code, one_line(&table.error_message)),
    };
    vec![
        table.ordinal.to_string(),
        table.source_table.clone(),
        table.shadow_table.clone(),
        enum_name(
            table.analysis_result,
            TableAnalysisResult::try_from(table.analysis_result)
                .ok()
                .map(|r| r.as_str_name()),
        ),
        synced.into(),
        status,
        statements,
        error,
    ]
}

/// Each statement followed by `;` and a newline: the approved script, as a reader runs it. The
/// approval binds more than this text (`Task.script_sha256` is the plan digest: tables, order,
/// strategy and schedule too).
pub fn script(statements: &[ScriptStatement]) -> String {
    let mut text = String::new();
    for statement in statements {
        text.push_str(&statement.sql);
        text.push_str(";\n");
    }
    text
}

#[cfg(test)]
pub(super) mod tests {
    use prost_types::Timestamp;
    use shadowsync_proto::common::v1::Actor;
    use shadowsync_proto::task::v1::{ApprovalWait, TaskProgress, TaskStatus};

    use super::*;

    fn at(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    pub fn task() -> Task {
        Task {
            id: 42,
            r#type: TaskType::ShadowTableSync as i32,
            status: TaskStatus::Approving as i32,
            connection_id: "c-1".into(),
            connection_name: "prod".into(),
            database: "shop".into(),
            execution_mode: ExecutionMode::Scheduled as i32,
            scheduled_time: at(1_795_503_600),
            error_strategy: ErrorStrategy::Continue as i32,
            remarks: "load test".into(),
            creator: Some(Actor {
                subject: "alice".into(),
                display_name: "Alice".into(),
                roles: vec![],
            }),
            create_time: at(1_795_400_000),
            approval_id: "ap-9".into(),
            approval_wait: Some(ApprovalWait {
                node_index: 0,
                node_name: "DBA review".into(),
                candidate_users: vec!["bob".into()],
                candidate_roles: vec!["dba".into()],
                deadline: at(1_795_486_400),
            }),
            progress: Some(TaskProgress {
                tables_total: 10,
                tables_done: 3,
                tables_succeeded: 2,
                tables_failed: 1,
                percent: 30,
                ..Default::default()
            }),
            abort_requested: true,
            ..Default::default()
        }
    }

    fn field(task: &Task, label: &str) -> String {
        task_fields(task)
            .into_iter()
            .find(|(l, _)| *l == label)
            .map(|(_, value)| value)
            .unwrap_or_else(|| panic!("no {label} field"))
    }

    #[test]
    fn basic_information() {
        let task = task();
        assert_eq!(field(&task, "id"), "42");
        assert_eq!(field(&task, "status"), "TASK_STATUS_APPROVING");
        assert_eq!(field(&task, "type"), "TASK_TYPE_SHADOW_TABLE_SYNC");
        assert_eq!(field(&task, "connection"), "prod (c-1)");
        assert_eq!(field(&task, "database"), "shop");
        assert_eq!(
            field(&task, "execution"),
            format!(
                "scheduled at {}",
                local_time(Timestamp {
                    seconds: 1_795_503_600,
                    nanos: 0
                })
            )
        );
        assert_eq!(field(&task, "on error"), "continue");
        assert_eq!(field(&task, "remarks"), "load test");
        assert_eq!(field(&task, "creator"), "alice (Alice)");
        assert_eq!(field(&task, "approval"), "ap-9");
        assert!(
            field(&task, "waiting for").starts_with("node 1 \"DBA review\" bob, role:dba until ")
        );
        assert_eq!(
            field(&task, "progress"),
            "3/10 tables (30%): 2 succeeded, 1 failed"
        );
        assert_eq!(field(&task, "abort requested"), "yes");
        assert!(
            task_fields(&task)
                .iter()
                .all(|(label, _)| *label != "finished")
        );
    }

    #[test]
    fn an_immediate_task_before_matching() {
        let task = Task {
            execution_mode: ExecutionMode::Immediate as i32,
            error_strategy: ErrorStrategy::Abort as i32,
            connection_id: "c-1".into(),
            ..Task::default()
        };
        assert_eq!(field(&task, "execution"), "immediate");
        assert_eq!(field(&task, "on error"), "abort");
        assert_eq!(field(&task, "connection"), "c-1");
        assert_eq!(field(&task, "progress"), "0/0 tables (0%)");
        assert!(field(&task, "priority").starts_with("not set"));
        assert_eq!(field(&task, "abort requested"), "no");
    }

    pub fn entry(kind: TimelineEntryKind) -> TimelineEntry {
        TimelineEntry {
            sequence: 7,
            kind: kind as i32,
            actor: Some(Actor {
                subject: "svc:executor".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn timeline_details_show_what_applies() {
        let approved = TimelineEntry {
            node_index: 1,
            node_name: "owner".into(),
            comment: "looks\ngood".into(),
            ..entry(TimelineEntryKind::Approved)
        };
        let row = timeline_row(&approved);
        assert_eq!(row[0], "7");
        assert_eq!(row[2], "TIMELINE_ENTRY_KIND_APPROVED");
        assert_eq!(row[3], "svc:executor");
        assert_eq!(row[4], "node 2 \"owner\"; looks good");

        let pending = TimelineEntry {
            candidate_users: vec!["bob".into()],
            candidate_roles: vec!["dba".into()],
            deadline: at(0),
            ..entry(TimelineEntryKind::ApprovalPending)
        };
        assert_eq!(
            timeline_row(&pending)[4],
            format!(
                "node 1; waiting for bob, role:dba until {}",
                local_time(Timestamp::default())
            )
        );

        let started = TimelineEntry {
            attempt: 2,
            executor_id: "exec-1".into(),
            ..entry(TimelineEntryKind::ExecutionStarted)
        };
        assert_eq!(timeline_row(&started)[4], "attempt 2 on exec-1");

        let finished = TimelineEntry {
            attempt: 2,
            table: "orders".into(),
            table_status: TableExecutionStatus::Failed as i32,
            comment: "1146: no such table".into(),
            ..entry(TimelineEntryKind::TableFinished)
        };
        assert_eq!(
            timeline_row(&finished)[4],
            "attempt 2; orders TABLE_EXECUTION_STATUS_FAILED; 1146: no such table"
        );

        let initiated = TimelineEntry {
            actor: None,
            ..entry(TimelineEntryKind::Initiated)
        };
        assert_eq!(
            timeline_row(&initiated)[2..],
            ["TIMELINE_ENTRY_KIND_INITIATED", "", ""]
        );
    }

    #[test]
    fn table_rows() {
        let failed = TaskTable {
            ordinal: 3,
            source_table: "orders".into(),
            shadow_table: "_test_orders".into(),
            analysis_result: TableAnalysisResult::Update as i32,
            synced: true,
            status: TableExecutionStatus::Failed as i32,
            statements_total: 4,
            statements_done: 1,
            error_code: "1054".into(),
            error_message: "Unknown column".into(),
            ..Default::default()
        };
        assert_eq!(
            table_row(&failed),
            [
                "3",
                "orders",
                "_test_orders",
                "TABLE_ANALYSIS_RESULT_UPDATE",
                "synchronized",
                "TABLE_EXECUTION_STATUS_FAILED",
                "1/4",
                "1054: Unknown column"
            ]
        );
        let skipped = TaskTable {
            ordinal: 4,
            source_table: "items".into(),
            shadow_table: "_test_items".into(),
            analysis_result: TableAnalysisResult::Create as i32,
            skipped: true,
            ..Default::default()
        };
        assert_eq!(
            table_row(&skipped),
            [
                "4",
                "items",
                "_test_items",
                "TABLE_ANALYSIS_RESULT_CREATE",
                "skipped",
                "",
                "",
                ""
            ]
        );
        let unsupported = TaskTable {
            analysis_result: TableAnalysisResult::Unsupported as i32,
            reason: "shadow name too long".into(),
            ..Default::default()
        };
        assert_eq!(
            table_row(&unsupported)[3..],
            [
                "TABLE_ANALYSIS_RESULT_UNSUPPORTED",
                "unsynchronized",
                "",
                "",
                "shadow name too long"
            ]
        );
    }

    #[test]
    fn the_script_ends_each_statement_with_a_semicolon() {
        let statement = |sql: &str| ScriptStatement {
            sql: sql.into(),
            ..Default::default()
        };
        assert_eq!(
            script(&[
                statement("CREATE TABLE a (id INT)"),
                statement("ALTER TABLE b ADD c INT")
            ]),
            "CREATE TABLE a (id INT);\nALTER TABLE b ADD c INT;\n"
        );
    }
}
