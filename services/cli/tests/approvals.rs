//! `shadowctl template|permission|approval` through the embedded approval service.

mod support;

use support::*;

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
    // The GetPriority response, as the API returns it.
    assert!(entries["version"].is_string(), "{entries}");
    let names: Vec<&str> = entries["entries"]
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
    let approval_id = approval["approval"]["id"]
        .as_str()
        .expect("approval id")
        .to_string();

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
    let grant = &grants["permissions"].as_array().expect("array")[0];
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
