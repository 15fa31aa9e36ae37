//! `shadowctl connection|analysis|plan` through the embedded task and analysis services, on the
//! local MariaDB.

mod support;

use support::*;

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
    // The ListConnections response, as the API returns it.
    let first = &connections["connections"][0];
    assert_eq!(first["name"], "local");
    assert!(first.get("password").is_none(), "{connections}");

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
        analysis["analysis"]["status"], "ANALYSIS_STATUS_SUCCEEDED",
        "{analysis}"
    );
    let id = analysis["analysis"]["id"].as_str().expect("id").to_string();
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

    // Skipping the parent skips the child with it (its shadow would reference production
    // `customers`), and says so.
    let skipped = shadowctl(dir, &["analysis", "skip", &id, "customers"]);
    assert!(
        skipped.status.success(),
        "{}",
        String::from_utf8_lossy(&skipped.stderr)
    );
    let said = String::from_utf8_lossy(&skipped.stdout);
    assert!(
        said.lines()
            .next()
            .is_some_and(|l| l.starts_with("skipped with customers: orders")),
        "{said}"
    );
    let preview = stdout(&shadowctl(dir, &["analysis", "preview", &id]));
    assert!(
        !preview.contains("CREATE TABLE `_test_customers`"),
        "{preview}"
    );
    assert!(!preview.contains("REFERENCES"), "{preview}");
    // Un-skipping the child alone would reference production: refused.
    let alone = shadowctl(dir, &["analysis", "unskip", &id, "orders"]);
    assert!(!alone.status.success());
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("customers"),
        "{}",
        String::from_utf8_lossy(&alone.stderr)
    );
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

    let unskipped = shadowctl(
        dir,
        &["--output", "json", "analysis", "unskip", &id, "customers"],
    );
    assert!(unskipped.status.success());
    let undone: serde_json::Value = serde_json::from_slice(&unskipped.stdout).expect("json");
    assert_eq!(
        undone["cascadedTables"][0]["sourceTable"], "orders",
        "{undone}"
    );
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

/// `shadowctl plan` never sends the password in clear, even to a server that asks for it.
#[test]
fn plan_never_sends_the_password_in_clear() {
    use shadowsync_common::testing::{CleartextAsk, FakeMySql};
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for ask in [CleartextAsk::Greeting, CleartextAsk::AuthSwitch] {
        let fake = runtime.block_on(FakeMySql::start(ask));
        let nowhere = tempfile::tempdir().expect("tempdir");
        let url = format!("mysql://app@127.0.0.1:{}", fake.addr.port());
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_shadowctl"))
            .arg("--data-dir")
            .arg(nowhere.path())
            .args(["plan", "--url", &url, "--database", "shop"])
            .env("SHADOWSYNC_DB_PASSWORD", "plan-Secret-77")
            .output()
            .expect("run shadowctl");
        assert!(!output.status.success(), "{ask:?}");
        assert!(
            !fake.saw("plan-Secret-77"),
            "{ask:?}: password sent in clear"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("cleartext"), "{ask:?}: {stderr}");
    }
}
