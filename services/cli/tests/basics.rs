//! `shadowctl` basics against an embedded server: health, whoami, tokens, and errors as one
//! line with the gRPC code.

mod support;

use support::*;

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
    // The GetIdentity response, as the API returns it.
    assert_eq!(value["caller"]["subject"], "admin");
    assert_eq!(value["admin"], true);
    assert!(value["tokenExpireTime"].is_string(), "{value}");

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
    assert_eq!(value["caller"]["subject"], "bob");
    assert_eq!(
        value["caller"]["roles"],
        serde_json::json!(["dba", "approver"])
    );
    assert_eq!(value.get("admin"), None, "false is omitted in proto3 JSON");

    let elsewhere = tempfile::tempdir().expect("tempdir");
    let refused = shadowctl(elsewhere.path(), &["token", "--user", "bob"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("embedded"));
}

/// A cluster's services speak TLS with certificates of its own CA, and shadowctl trusts no
/// system roots: an https:// endpoint without `--ca` is a usage error saying what to pass.
#[test]
fn an_https_endpoint_without_a_ca_says_to_pass_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = shadowctl(dir.path(), &["--endpoint", "https://127.0.0.1:9", "health"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--ca") && stderr.contains("SHADOWSYNC_CA"),
        "{stderr}"
    );
    let missing = dir.path().join("missing.crt");
    let output = shadowctl(
        dir.path(),
        &[
            "--endpoint",
            "https://127.0.0.1:9",
            "--ca",
            missing.to_str().expect("UTF-8"),
            "health",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing.crt"), "{stderr}");
}
