//! `shadowctl` against an embedded server in this process: the token and endpoint are found in
//! the data directory, health and whoami answer, and errors are one line with the gRPC code.

use std::path::Path;
use std::process::{Command, Output};

use shadowsync_common::config::ConfigLoader;
use shadowsync_server::{Role, embedded};

struct Embedded {
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Embedded {
    /// Starts `serve all` on the embedded defaults on a free port, as `shadowsync` would.
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().to_path_buf();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async move {
                let mut config = ConfigLoader::new()
                    .flags(
                        [
                            "listen=127.0.0.1:0".to_string(),
                            format!("data_dir={}", data_dir.display()),
                        ]
                        .iter()
                        .map(String::as_str),
                    )
                    .load()
                    .expect("config");
                assert!(shadowsync_server::is_embedded(Role::All, &config));
                embedded::prepare(&mut config).expect("prepare");
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .expect("bind");
                let address = listener.local_addr().expect("address");
                embedded::write_endpoint(&config.data_dir, address, false).expect("endpoint file");
                ready_tx.send(()).expect("ready");
                shadowsync_server::run(Role::All, config, listener, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
            });
        });
        ready_rx.recv().expect("server started");
        Self {
            dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn shadowctl(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shadowctl"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("SHADOWSYNC_TOKEN")
        .env_remove("SHADOWSYNC_ENDPOINT")
        .output()
        .expect("run shadowctl")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn health_reports_every_service_serving() {
    let server = Embedded::start();
    // Readiness probes run once a second at first; give them a moment.
    let mut output = shadowctl(server.data_dir(), &["health"]);
    for _ in 0..50 {
        if output.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        output = shadowctl(server.data_dir(), &["health"]);
    }
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = stdout(&output);
    for service in shadowsync_proto::SERVICE_NAMES {
        assert!(
            text.lines()
                .any(|line| line.starts_with(service) && line.ends_with("SERVING")),
            "{text}"
        );
    }

    let json = shadowctl(server.data_dir(), &["health", "--output", "json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(value["healthy"], true);
    assert_eq!(
        value["services"].as_array().map(Vec::len),
        Some(shadowsync_proto::SERVICE_NAMES.len() + 1)
    );
}

#[test]
fn whoami_uses_the_embedded_admin_token() {
    let server = Embedded::start();
    let output = shadowctl(server.data_dir(), &["whoami", "--output", "json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(value["subject"], "admin");
    assert_eq!(value["admin"], true);

    let table = stdout(&shadowctl(server.data_dir(), &["whoami"]));
    assert!(table.starts_with("SUBJECT"), "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|line| line.starts_with("admin ")),
        "{table}"
    );
}

#[test]
fn a_bad_token_is_one_line_with_the_code_and_a_failure_exit() {
    let server = Embedded::start();
    let output = shadowctl(server.data_dir(), &["whoami", "--token", "not-a-token"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: UNAUTHENTICATED: "), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn no_token_anywhere_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = shadowctl(dir.path(), &["whoami"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no token"), "{stderr}");
}

#[test]
fn token_mints_identities_the_server_accepts() {
    let server = Embedded::start();
    let output = shadowctl(
        server.data_dir(),
        &["token", "--user", "bob", "--roles", "dba,approver"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = stdout(&output).trim().to_string();
    let whoami = shadowctl(
        server.data_dir(),
        &["whoami", "--output", "json", "--token", &token],
    );
    let value: serde_json::Value = serde_json::from_slice(&whoami.stdout).expect("json");
    assert_eq!(value["subject"], "bob");
    assert_eq!(value["roles"], serde_json::json!(["dba", "approver"]));
    assert_eq!(value["admin"], false);

    let elsewhere = tempfile::tempdir().expect("tempdir");
    let refused = shadowctl(elsewhere.path(), &["token", "--user", "bob"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("embedded"));
}

fn wait_healthy(data_dir: &Path) {
    for _ in 0..100 {
        if shadowctl(data_dir, &["health"]).status.success() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("embedded server never became healthy");
}

#[test]
fn templates_and_their_priority_from_yaml_files() {
    let server = Embedded::start();
    wait_healthy(server.data_dir());
    let list = stdout(&shadowctl(server.data_dir(), &["template", "list"]));
    assert_eq!(
        list.lines().count(),
        2,
        "header and the built-in fallback: {list}"
    );

    let file = server.data_dir().join("prod.yaml");
    std::fs::write(
        &file,
        "name: prod-dba\nenabled: true\nmatchRule:\n  requestTypes: [shadow_table_sync]\n  environments: [prod]\nnodes:\n  - name: dba\n    approverRoles: [dba]\n    mode: APPROVAL_MODE_ANY\n",
    )
    .expect("write template");
    let created = shadowctl(
        server.data_dir(),
        &["template", "create", "-f", file.to_str().expect("utf8")],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let priority = shadowctl(
        server.data_dir(),
        &["template", "priority", "--output", "json"],
    );
    let entries: serde_json::Value = serde_json::from_slice(&priority.stdout).expect("json");
    let names: Vec<&str> = entries
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["templateName"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{entries}");
    assert_eq!(
        names[0], "prod-dba",
        "a new template ranks above the fallback: {entries}"
    );

    let bad = server.data_dir().join("bad.json");
    std::fs::write(&bad, r#"{"name": "x", "nodes": [{"name": "empty"}]}"#).expect("write");
    let refused = shadowctl(
        server.data_dir(),
        &["template", "create", "-f", bad.to_str().expect("utf8")],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).starts_with("error: INVALID_ARGUMENT"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let removed = shadowctl(server.data_dir(), &["template", "rm", "prod-dba"]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let list = stdout(&shadowctl(server.data_dir(), &["template", "list"]));
    assert_eq!(list.lines().count(), 2, "{list}");
}

#[test]
fn permission_application_goes_through_approval() {
    let server = Embedded::start();
    wait_healthy(server.data_dir());
    let mint = |user: &str, roles: &str| {
        let output = shadowctl(
            server.data_dir(),
            &["token", "--user", user, "--roles", roles],
        );
        stdout(&output).trim().to_string()
    };
    let alice = mint("alice", "dev");

    let applied = shadowctl(
        server.data_dir(),
        &[
            "--token",
            &alice,
            "--output",
            "json",
            "permission",
            "apply",
            "--connection",
            "conn-1",
            "--database",
            "shop",
            "--reason",
            "load test",
        ],
    );
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let approval: serde_json::Value = serde_json::from_slice(&applied.stdout).expect("json");
    let approval_id = approval["id"].as_str().expect("approval id").to_string();

    // The requester never approves their own request.
    let own = shadowctl(
        server.data_dir(),
        &[
            "--token",
            &alice,
            "approval",
            "approve",
            &approval_id,
            "--comment",
            "me",
        ],
    );
    assert!(!own.status.success());
    assert!(
        String::from_utf8_lossy(&own.stderr).starts_with("error: PERMISSION_DENIED"),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );

    // The admin sees it waiting and approves it.
    let pending = stdout(&shadowctl(
        server.data_dir(),
        &["approval", "list", "--pending"],
    ));
    assert!(pending.contains(&approval_id), "{pending}");
    let approved = shadowctl(
        server.data_dir(),
        &["approval", "approve", &approval_id, "--comment", "ok"],
    );
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    assert!(
        stdout(&approved).contains("APPROVED"),
        "{}",
        stdout(&approved)
    );

    let granted = shadowctl(
        server.data_dir(),
        &["--output", "json", "permission", "list", "--user", "alice"],
    );
    let grants: serde_json::Value = serde_json::from_slice(&granted.stdout).expect("json");
    let grant = &grants.as_array().expect("array")[0];
    assert_eq!(grant["connectionId"], "conn-1");
    assert_eq!(grant["database"], "shop");
    assert_eq!(grant["status"], "PERMISSION_STATUS_ACTIVE");

    let id = grant["id"].as_str().expect("id");
    let revoked = shadowctl(
        server.data_dir(),
        &["permission", "revoke", id, "--reason", "done"],
    );
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert!(stdout(&revoked).contains("REVOKED"), "{}", stdout(&revoked));
}

#[test]
fn connections_are_added_tested_listed_and_removed() {
    let server = Embedded::start();
    wait_healthy(server.data_dir());
    let added = shadowctl(
        server.data_dir(),
        &[
            "connection",
            "add",
            "local",
            "--dialect",
            "mariadb",
            "--host",
            "127.0.0.1",
            "--port",
            "3306",
            "--user",
            "root",
            "--environment",
            "dev",
        ],
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );

    let tested = shadowctl(server.data_dir(), &["connection", "test", "local"]);
    assert!(
        tested.status.success(),
        "{}{}",
        stdout(&tested),
        String::from_utf8_lossy(&tested.stderr)
    );
    assert!(stdout(&tested).starts_with("ok: "), "{}", stdout(&tested));

    let listed = shadowctl(
        server.data_dir(),
        &["--output", "json", "connection", "list"],
    );
    let connections: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(connections[0]["name"], "local");
    assert!(connections[0].get("password").is_none(), "{connections}");

    let table = stdout(&shadowctl(
        server.data_dir(),
        &["connection", "show", "local"],
    ));
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("local ")),
        "{table}"
    );

    let removed = shadowctl(server.data_dir(), &["connection", "rm", "local"]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let listed = stdout(&shadowctl(server.data_dir(), &["connection", "list"]));
    assert_eq!(listed.lines().count(), 1, "{listed}");
}

/// Runs SQL on the local MariaDB with the `mariadb` client.
fn mariadb(sql: &str) {
    let output = Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e", sql])
        .output()
        .expect("run mariadb");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn analysis_skip_and_preview_through_the_embedded_server() {
    let database = format!("ss_cli_{}", std::process::id());
    mariadb(&format!(
        "DROP DATABASE IF EXISTS `{database}`; CREATE DATABASE `{database}`; USE `{database}`;
         CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL);
         CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, total DECIMAL(10,2) DEFAULT 0,
           CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id));
         CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);
         CREATE TABLE _test_notes (id INT PRIMARY KEY, body TEXT);"
    ));
    let server = Embedded::start();
    wait_healthy(server.data_dir());
    let dir = server.data_dir();
    assert!(
        shadowctl(dir, &["connection", "add", "local", "--user", "root"])
            .status
            .success()
    );

    let started = shadowctl(
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
    );
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let analysis: serde_json::Value = serde_json::from_slice(&started.stdout).expect("json");
    assert_eq!(
        analysis["status"], "ANALYSIS_STATUS_SUCCEEDED",
        "{analysis}"
    );
    let id = analysis["id"].as_str().expect("id").to_string();
    let result_of = |value: &serde_json::Value, table: &str| {
        value["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["sourceTable"] == table)
            .map(|t| t["result"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(
        result_of(&analysis, "customers").as_deref(),
        Some("TABLE_ANALYSIS_RESULT_CREATE")
    );
    assert_eq!(
        result_of(&analysis, "orders").as_deref(),
        Some("TABLE_ANALYSIS_RESULT_CREATE")
    );
    assert_eq!(
        result_of(&analysis, "notes").as_deref(),
        Some("TABLE_ANALYSIS_RESULT_NO_ACTION")
    );
    assert_eq!(
        result_of(&analysis, "_test_notes"),
        None,
        "a shadow is not a source"
    );

    let preview = stdout(&shadowctl(dir, &["analysis", "preview", &id]));
    assert!(
        preview.contains("CREATE TABLE `_test_customers`"),
        "{preview}"
    );
    assert!(
        preview.contains("REFERENCES `_test_customers`"),
        "the child references the parent's shadow: {preview}"
    );

    // Skipping the parent re-plans the child to reference the source parent.
    let skipped = shadowctl(dir, &["analysis", "skip", &id, "customers"]);
    assert!(
        skipped.status.success(),
        "{}",
        String::from_utf8_lossy(&skipped.stderr)
    );
    let preview = stdout(&shadowctl(dir, &["analysis", "preview", &id]));
    assert!(
        !preview.contains("CREATE TABLE `_test_customers`"),
        "{preview}"
    );
    assert!(preview.contains("REFERENCES `customers`"), "{preview}");
    let unsynced = stdout(&shadowctl(
        dir,
        &["analysis", "show", &id, "--tab", "unsynced"],
    ));
    assert!(
        unsynced
            .lines()
            .any(|l| l.starts_with("customers ") && l.contains("skipped")),
        "{unsynced}"
    );

    let unskipped = shadowctl(dir, &["analysis", "unskip", &id, "customers"]);
    assert!(unskipped.status.success());
    let preview = stdout(&shadowctl(dir, &["analysis", "preview", &id]));
    assert!(
        preview.contains("REFERENCES `_test_customers`"),
        "{preview}"
    );

    let table = stdout(&shadowctl(dir, &["analysis", "table", &id, "orders"]));
    assert!(
        table.contains("-- source DDL") && table.contains("(no shadow table)"),
        "{table}"
    );
    mariadb(&format!("DROP DATABASE `{database}`"));
}

#[test]
fn plan_prints_only_the_change_sql_and_fails_cleanly() {
    let database = format!("ss_cli_plan_{}", std::process::id());
    mariadb(&format!(
        "DROP DATABASE IF EXISTS `{database}`; CREATE DATABASE `{database}`; USE `{database}`;
         CREATE TABLE items (id INT PRIMARY KEY, label VARCHAR(20) DEFAULT 'x');
         CREATE TABLE items_t (id INT PRIMARY KEY);"
    ));
    let nowhere = tempfile::tempdir().expect("tempdir");
    let url = "mysql://root@127.0.0.1:3306";
    let output = shadowctl(
        nowhere.path(),
        &[
            "plan",
            "--url",
            url,
            "--database",
            &database,
            "--suffix",
            "_t",
            "--format",
            "sql",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sql = stdout(&output);
    assert!(
        !sql.is_empty() && sql.lines().all(|line| line.ends_with(';')),
        "{sql}"
    );
    assert!(sql.starts_with("ALTER TABLE `items_t`"), "{sql}");

    let missing = shadowctl(
        nowhere.path(),
        &[
            "plan",
            "--url",
            url,
            "--database",
            "ss_no_such_db_here",
            "--format",
            "sql",
        ],
    );
    assert!(!missing.status.success());
    assert!(missing.stdout.is_empty(), "nothing partial on stdout");
    let both = shadowctl(
        nowhere.path(),
        &[
            "plan",
            "--url",
            url,
            "--database",
            &database,
            "--prefix",
            "a",
            "--suffix",
            "b",
        ],
    );
    assert!(!both.status.success());
    mariadb(&format!("DROP DATABASE `{database}`"));
}
