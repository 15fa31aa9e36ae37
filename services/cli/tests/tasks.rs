//! `shadowctl task …` beyond the quickstart's happy path, through the embedded server: list
//! filters, settings, rejection, initiate again (skips carried over), scheduled execution,
//! abort and aborting twice, and the log views (alert, grep, download).

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use support::*;

#[test]
fn reject_again_schedule_abort_and_read_the_logs() {
    let database = format!("ss_cli_tasks_{}", std::process::id());
    mariadb(&format!(
        "DROP DATABASE IF EXISTS `{database}`; CREATE DATABASE `{database}`; USE `{database}`;
         CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL);
         CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(10,2));
         CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);"
    ));
    let server = Embedded::start();
    let dir = server.data_dir();
    wait_healthy(dir);
    ok(shadowctl(
        dir,
        &["connection", "add", "local", "--user", "root"],
    ));
    let bob = token(dir, "bob");

    let first = json(ok(shadowctl(
        dir,
        &[
            "--output",
            "json",
            "analysis",
            "start",
            "--connection",
            "local",
            "--database",
            &database,
            "--all",
            "--wait",
        ],
    )));
    let first = first["analysis"]["id"]
        .as_str()
        .expect("analysis id")
        .to_string();
    ok(shadowctl(dir, &["analysis", "skip", &first, "notes"]));
    let submitted = json(ok(shadowctl(
        dir,
        &[
            "--output",
            "json",
            "task",
            "submit",
            &first,
            "--on-error",
            "continue",
            "--remarks",
            "first try",
        ],
    )));
    let rejected_id = id_of(&submitted);
    assert_eq!(
        submitted["task"]["errorStrategy"],
        "ERROR_STRATEGY_CONTINUE"
    );

    // The list's filters: status and creator match it, another creator does not.
    let listed = list(dir, &["--status", "approving", "--creator", "adm"]);
    assert_eq!(ids(&listed), vec![rejected_id.clone()], "{listed}");
    assert!(ids(&list(dir, &["--creator", "nobody"])).is_empty());
    assert!(ids(&list(dir, &["--database", "no_such_db"])).is_empty());

    let settings = stdout(&ok(shadowctl(
        dir,
        &["task", "show", &rejected_id, "--settings"],
    )));
    assert!(
        settings.contains("CREATE TABLE `_test_customers`") && settings.contains("notes"),
        "{settings}"
    );

    let rejected = json(ok(as_user(
        dir,
        &bob,
        &[
            "--output",
            "json",
            "task",
            "reject",
            &rejected_id,
            "--comment",
            "not on a Friday",
        ],
    )));
    assert_eq!(rejected["task"]["status"], "TASK_STATUS_REJECTED");

    // Initiate again: a fresh analysis with the same settings, the skip carried over.
    let again = json(ok(shadowctl(
        dir,
        &["--output", "json", "task", "again", &rejected_id, "--wait"],
    )));
    let second = again["analysis"]["id"]
        .as_str()
        .expect("analysis id")
        .to_string();
    assert_ne!(second, first);
    wait_for(|| {
        let shown = json(ok(shadowctl(
            dir,
            &["--output", "json", "analysis", "show", &second],
        )));
        shown["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .any(|t| t["sourceTable"] == "notes" && t["skipped"] == true)
    });

    // Scheduled an hour ahead, approved, then aborted while it waits; a second abort is refused.
    let scheduled = json(ok(shadowctl(
        dir,
        &["--output", "json", "task", "submit", &second, "--at", "1h"],
    )));
    let scheduled_id = id_of(&scheduled);
    assert_eq!(
        scheduled["task"]["executionMode"],
        "EXECUTION_MODE_SCHEDULED"
    );
    ok(as_user(
        dir,
        &bob,
        &["task", "approve", &scheduled_id, "--comment", "later"],
    ));
    wait_for(|| status(dir, &scheduled_id) == "TASK_STATUS_WAIT_FOR_EXECUTION");
    ok(shadowctl(dir, &["task", "abort", &scheduled_id]));
    assert_eq!(status(dir, &scheduled_id), "TASK_STATUS_CANCELLED");
    let twice = shadowctl(dir, &["task", "abort", &scheduled_id]);
    assert!(!twice.status.success());
    let error = String::from_utf8_lossy(&twice.stderr);
    assert!(
        error.contains("FAILED_PRECONDITION") || error.contains("FailedPrecondition"),
        "{error}"
    );
    assert_eq!(error.trim().lines().count(), 1, "one clear line: {error}");
    let tables = mariadb_query(&format!("SHOW TABLES FROM `{database}`"));
    assert!(!tables.contains("_test_"), "nothing ran: {tables}");

    // Logs: everything, the alerts only, a search, and a download equal to the listing.
    let all = stdout(&ok(shadowctl(dir, &["task", "logs", &scheduled_id])));
    assert!(all.contains("aborted by admin"), "{all}");
    let alert = stdout(&ok(shadowctl(
        dir,
        &["task", "logs", &scheduled_id, "--alert"],
    )));
    assert!(
        alert
            .lines()
            .all(|l| l.contains(" WARN ") || l.contains(" ERROR ")),
        "{alert}"
    );
    assert!(alert.lines().count() < all.lines().count(), "{alert}");
    let grep = stdout(&ok(shadowctl(
        dir,
        &["task", "logs", &scheduled_id, "--grep", "APPROVED BY BOB"],
    )));
    assert_eq!(grep.lines().count(), 1, "{grep}");
    let file = dir.join("task.log");
    ok(shadowctl(
        dir,
        &[
            "task",
            "logs",
            &scheduled_id,
            "--download",
            file.to_str().expect("utf-8 path"),
        ],
    ));
    // The download is the server's rendering (UTC, microseconds); the listing shows local
    // time: the same lines in the same order after the time.
    let without_time = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| {
                l.split_once(' ')
                    .map_or(l, |(_, rest)| rest)
                    .trim_end()
                    .to_string()
            })
            .collect()
    };
    let downloaded = std::fs::read_to_string(&file).expect("downloaded");
    assert_eq!(without_time(&downloaded), without_time(&all));
    mariadb(&format!("DROP DATABASE `{database}`"));
}

fn json(output: Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).expect("json output")
}

fn id_of(task: &serde_json::Value) -> String {
    task["task"]["id"].as_str().expect("task id").to_string()
}

fn token(dir: &Path, user: &str) -> String {
    let minted = ok(shadowctl(
        dir,
        &["token", "--user", user, "--roles", "admin"],
    ));
    stdout(&minted).trim().to_string()
}

fn list(dir: &Path, filters: &[&str]) -> serde_json::Value {
    let mut args = vec!["--output", "json", "task", "list"];
    args.extend_from_slice(filters);
    json(ok(shadowctl(dir, &args)))
}

fn ids(listed: &serde_json::Value) -> Vec<String> {
    let tasks = listed
        .get("tasks")
        .and_then(|t| t.as_array())
        .cloned()
        .unwrap_or_default();
    tasks
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_string())
        .collect()
}

fn status(dir: &Path, id: &str) -> String {
    let shown = json(ok(shadowctl(
        dir,
        &["--output", "json", "task", "show", id],
    )));
    shown["task"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("condition not reached in 10 s");
}
