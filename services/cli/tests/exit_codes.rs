//! Exit statuses scripts can trust (`shadowctl help exit-codes`): one per failure class, and
//! `task wait` / `task logs --follow` exiting by the task's outcome.

mod support;

use std::process::{Command, Output};

use support::*;

/// Exit statuses, as `shadowctl help exit-codes` documents them.
const USAGE: i32 = 2;
const NOT_FOUND: i32 = 3;
const DENIED: i32 = 4;
const UNAVAILABLE: i32 = 5;
const CONFLICT: i32 = 6;
const TIMEOUT: i32 = 7;
const UNSUCCESSFUL: i32 = 8;

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).expect("json output")
}

#[test]
fn each_failure_class_has_its_own_exit_status() {
    let server = Embedded::start();
    let dir = server.data_dir();

    let bad_flag = shadowctl(dir, &["task", "show", "not-a-number"]);
    assert_eq!(code(&bad_flag), USAGE, "{}", stderr(&bad_flag));
    let bad_value = shadowctl(dir, &["task", "list", "--page-token", "garbage"]);
    assert_eq!(code(&bad_value), USAGE, "{}", stderr(&bad_value));
    assert!(
        stderr(&bad_value).starts_with("error: INVALID_ARGUMENT: "),
        "{}",
        stderr(&bad_value)
    );

    let missing = shadowctl(dir, &["task", "show", "987654"]);
    assert_eq!(code(&missing), NOT_FOUND, "{}", stderr(&missing));
    let no_connection = shadowctl(dir, &["connection", "show", "nowhere"]);
    assert_eq!(
        code(&no_connection),
        NOT_FOUND,
        "{}",
        stderr(&no_connection)
    );

    let bad_token = shadowctl(dir, &["whoami", "--token", "not-a-token"]);
    assert_eq!(code(&bad_token), DENIED, "{}", stderr(&bad_token));
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let no_token = shadowctl(elsewhere.path(), &["whoami"]);
    assert_eq!(code(&no_token), DENIED, "{}", stderr(&no_token));

    let help = ok(shadowctl(dir, &["help", "exit-codes"]));
    for status in [
        USAGE,
        NOT_FOUND,
        DENIED,
        UNAVAILABLE,
        CONFLICT,
        TIMEOUT,
        UNSUCCESSFUL,
    ] {
        assert!(
            stdout(&help).contains(&format!("\n  {status}  ")),
            "{status} is not explained:\n{}",
            stdout(&help)
        );
    }
}

/// A server that cannot be reached is "retry later" (5), and the message names the endpoint
/// tried and where it came from; an endpoint without a scheme is plain gRPC.
#[test]
fn an_unreachable_server_names_the_endpoint_and_its_origin() {
    // Nothing listens on a port this test just bound and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let flagged = shadowctl(
        dir.path(),
        &["--endpoint", &format!("127.0.0.1:{port}"), "health"],
    );
    assert_eq!(code(&flagged), UNAVAILABLE, "{}", stderr(&flagged));
    let text = stderr(&flagged);
    assert!(
        text.contains(&format!("server http://127.0.0.1:{port}, from --endpoint")),
        "{text}"
    );
    assert!(
        text.starts_with("error: UNAVAILABLE: ") && text.contains("Connection refused"),
        "the cause, not a bare `UNKNOWN: transport error`: {text}"
    );

    let from_env = Command::new(env!("CARGO_BIN_EXE_shadowctl"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("health")
        .env("SHADOWSYNC_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .output()
        .expect("run shadowctl");
    assert_eq!(code(&from_env), UNAVAILABLE);
    assert!(
        stderr(&from_env).contains("from SHADOWSYNC_ENDPOINT"),
        "{}",
        stderr(&from_env)
    );

    std::fs::write(dir.path().join("endpoint"), format!("127.0.0.1:{port}\n")).expect("write");
    let from_file = shadowctl(dir.path(), &["health"]);
    assert_eq!(code(&from_file), UNAVAILABLE);
    let file = dir.path().join("endpoint");
    assert!(
        stderr(&from_file).contains(&format!("from {}", file.display())),
        "{}",
        stderr(&from_file)
    );
}

#[test]
fn task_wait_and_follow_exit_by_the_outcome() {
    let database = format!("ss_cli_wait_{}", std::process::id());
    mariadb(&format!(
        "DROP DATABASE IF EXISTS `{database}`; CREATE DATABASE `{database}`; USE `{database}`;
         CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL);
         CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);"
    ));
    let server = Embedded::start();
    let dir = server.data_dir();
    ok(shadowctl(
        dir,
        &["connection", "add", "local", "--user", "root"],
    ));
    let bob = stdout(&ok(shadowctl(
        dir,
        &["token", "--user", "bob", "--roles", "admin"],
    )))
    .trim()
    .to_string();
    let submit = |tables: &str| -> String {
        let analysis = json(&ok(shadowctl(
            dir,
            &[
                "-o",
                "json",
                "analysis",
                "start",
                "--connection",
                "local",
                "--database",
                &database,
                "--tables",
                tables,
                "--wait",
            ],
        )));
        let analysis = analysis["analysis"]["id"]
            .as_str()
            .expect("analysis id")
            .to_string();
        let task = json(&ok(shadowctl(
            dir,
            &["-o", "json", "task", "submit", &analysis],
        )));
        task["task"]["id"].as_str().expect("task id").to_string()
    };

    // Cancelled: 8, and the task is printed as it ended.
    let cancelled = submit("customers");
    let waited = shadowctl(dir, &["task", "wait", &cancelled, "--timeout", "1s"]);
    assert_eq!(
        code(&waited),
        TIMEOUT,
        "still APPROVING: {}",
        stderr(&waited)
    );
    assert!(stderr(&waited).contains("APPROVING"), "{}", stderr(&waited));
    ok(shadowctl(dir, &["task", "abort", &cancelled]));
    let waited = shadowctl(dir, &["-o", "json", "task", "wait", &cancelled]);
    assert_eq!(code(&waited), UNSUCCESSFUL, "{}", stderr(&waited));
    assert_eq!(json(&waited)["task"]["status"], "TASK_STATUS_CANCELLED");
    // Aborting a final task does not fit its state.
    let again = shadowctl(dir, &["task", "abort", &cancelled]);
    assert_eq!(code(&again), CONFLICT, "{}", stderr(&again));

    // Succeeded: 0, from wait and from logs --follow.
    let succeeded = submit("customers");
    ok(as_user(
        dir,
        &bob,
        &["task", "approve", &succeeded, "--comment", "ok"],
    ));
    let waited = ok(shadowctl(
        dir,
        &["-o", "json", "task", "wait", &succeeded, "--timeout", "2m"],
    ));
    assert_eq!(
        json(&waited)["task"]["status"],
        "TASK_STATUS_EXECUTION_SUCCEEDED"
    );
    ok(shadowctl(dir, &["task", "logs", &succeeded, "--follow"]));

    // Failed: the shadow the plan creates appears before the executor gets there.
    let failed = submit("notes");
    mariadb(&format!(
        "CREATE TABLE `{database}`.`_test_notes` (id INT PRIMARY KEY, other INT)"
    ));
    ok(as_user(
        dir,
        &bob,
        &["task", "approve", &failed, "--comment", "ok"],
    ));
    let waited = shadowctl(dir, &["-o", "json", "task", "wait", &failed]);
    assert_eq!(code(&waited), UNSUCCESSFUL, "{}", stderr(&waited));
    assert_eq!(
        json(&waited)["task"]["status"],
        "TASK_STATUS_EXECUTION_FAILED"
    );
    let followed = shadowctl(dir, &["task", "logs", &failed, "--follow"]);
    assert_eq!(code(&followed), UNSUCCESSFUL, "{}", stderr(&followed));

    mariadb(&format!("DROP DATABASE `{database}`"));
}
