//! One JSON dialect: every command's `--output json` is the proto3 JSON of the response message
//! the gRPC API returns, checked by parsing it as that message (unknown fields refused) and
//! printing it back unchanged.

mod support;

use std::process::Output;

use prost::{Message, Name};
use shadowsync_proto::approval::v1 as approval;
use shadowsync_proto::json::{from_json, to_json};
use shadowsync_proto::task::v1 as task;
use support::*;

/// Parses `output` as `M` and asserts the canonical proto3 JSON of what was parsed is exactly
/// what was printed: no other field names, casing, enum spelling or extra keys.
fn message<M: Message + Name + Default>(output: &Output) -> M {
    assert!(
        output.status.success(),
        "{}{}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let parsed: M = from_json(printed.clone())
        .unwrap_or_else(|e| panic!("not a {}: {e}\n{printed}", M::full_name()));
    assert_eq!(
        to_json(&parsed).expect("to json"),
        printed,
        "{} printed in another dialect",
        M::full_name()
    );
    parsed
}

#[test]
fn every_command_prints_its_response_message() {
    let database = format!("ss_cli_json_{}", std::process::id());
    mariadb(&format!(
        "DROP DATABASE IF EXISTS `{database}`; CREATE DATABASE `{database}`; USE `{database}`;
         CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL);
         CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT,
           FOREIGN KEY (customer_id) REFERENCES customers (id));"
    ));
    let server = Embedded::start();
    let dir = server.data_dir();
    let json = |args: &[&str]| {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        shadowctl(dir, &all)
    };

    message::<task::GetIdentityResponse>(&json(&["whoami"]));
    let added: task::GetConnectionResponse =
        message(&json(&["connection", "add", "local", "--user", "root"]));
    assert_eq!(added.connection.map(|c| c.name).as_deref(), Some("local"));
    let listed: task::ListConnectionsResponse = message(&json(&["connection", "list"]));
    assert_eq!(listed.connections.len(), 1);
    message::<task::GetConnectionResponse>(&json(&["connection", "show", "local"]));
    message::<task::TestConnectionResponse>(&json(&["connection", "test", "local"]));

    let started: task::GetAnalysisResponse = message(&json(&[
        "analysis",
        "start",
        "--connection",
        "local",
        "--database",
        &database,
        "--all",
        "--wait",
    ]));
    assert_eq!(started.tables.len(), 2, "every page's tables");
    let id = started.analysis.expect("analysis").id;
    message::<task::GetAnalysisResponse>(&json(&["analysis", "show", &id]));
    message::<task::GetAnalysisTableResponse>(&json(&["analysis", "table", &id, "orders"]));
    let skipped: task::SetTablesSkippedResponse =
        message(&json(&["analysis", "skip", &id, "customers"]));
    assert_eq!(
        skipped.cascaded_tables.len(),
        1,
        "orders goes with customers"
    );
    message::<task::SetTablesSkippedResponse>(&json(&["analysis", "unskip", &id, "customers"]));
    let preview: task::GetSqlPreviewResponse = message(&json(&["analysis", "preview", &id]));
    assert!(!preview.statements.is_empty());

    let submitted: task::SubmitTaskResponse = message(&json(&["task", "submit", &id]));
    let task_id = submitted.task.expect("task").id.to_string();
    message::<task::ListTasksResponse>(&json(&["task", "list"]));
    message::<task::GetTaskResponse>(&json(&["task", "show", &task_id]));
    message::<approval::ListApprovalsResponse>(&json(&["approval", "list", "--mine"]));
    let aborted: task::AbortTaskResponse = message(&json(&["task", "abort", &task_id]));
    assert_eq!(
        aborted.task.map(|t| t.status),
        Some(task::TaskStatus::Cancelled as i32)
    );
    let waited = json(&["task", "wait", &task_id]);
    let value: serde_json::Value = serde_json::from_slice(&waited.stdout).expect("JSON");
    from_json::<task::GetTaskResponse>(value).expect("task wait prints the task");

    message::<approval::ListTemplatesResponse>(&json(&["template", "list"]));
    message::<approval::GetPriorityResponse>(&json(&["template", "priority"]));
    message::<approval::ListPermissionsResponse>(&json(&["permission", "list"]));

    // Log lines: one TaskLogEntry per line.
    let logs = json(&["task", "logs", &task_id]);
    let text = stdout(&logs);
    assert!(!text.is_empty());
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        from_json::<task::TaskLogEntry>(value).expect("a TaskLogEntry");
    }
    mariadb(&format!("DROP DATABASE `{database}`"));
}
