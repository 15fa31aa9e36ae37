//! `shadowctl context`: named clusters with their endpoint and token source, and the
//! precedence flag > environment > context > embedded directory.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::*;

/// shadowctl run from a directory that is not an embedded server's, with its own configuration
/// directory.
fn elsewhere(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shadowctl"))
        .arg("--data-dir")
        .arg(config.join("not-a-server"))
        .args(args)
        .env_remove("SHADOWSYNC_TOKEN")
        .env_remove("SHADOWSYNC_ENDPOINT")
        .env_remove("SHADOWSYNC_CONTEXT")
        .env("SHADOWSYNC_CONFIG_DIR", config)
        .output()
        .expect("run shadowctl")
}

#[test]
fn contexts_reach_a_server_with_a_token_file_or_command() {
    let server = Embedded::start();
    let endpoint = std::fs::read_to_string(server.data_dir().join("endpoint"))
        .expect("endpoint")
        .trim()
        .to_string();
    let token_file = server.data_dir().join("admin.token");
    let config = tempfile::tempdir().expect("tempdir");
    let config = config.path();

    // Nothing configured: nowhere to go, and the error says where it looked.
    let lost = elsewhere(config, &["whoami"]);
    assert!(!lost.status.success());

    ok(elsewhere(
        config,
        &[
            "context",
            "add",
            "local",
            "--endpoint",
            &endpoint,
            "--token-file",
            token_file.to_str().expect("UTF-8"),
        ],
    ));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(config.join("contexts.toml"))
            .expect("contexts file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let me = ok(elsewhere(config, &["-o", "json", "whoami"]));
    let me: serde_json::Value = serde_json::from_slice(&me.stdout).expect("json");
    assert_eq!(
        me["caller"]["subject"], "admin",
        "the first context is current"
    );

    // A token command, as a company's login tool would print it.
    let command = format!("cat '{}'", token_file.display());
    ok(elsewhere(
        config,
        &[
            "context",
            "add",
            "by-command",
            "--endpoint",
            &endpoint,
            "--token-command",
            &command,
            "--use",
        ],
    ));
    let listed = stdout(&ok(elsewhere(config, &["context", "list"])));
    assert!(
        listed
            .lines()
            .any(|line| line.starts_with('*') && line.contains("by-command")),
        "{listed}"
    );
    ok(elsewhere(config, &["whoami"]));

    // The flag beats the context: a dead endpoint given on the command line is the one tried.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let flagged = elsewhere(
        config,
        &["--endpoint", &format!("127.0.0.1:{port}"), "whoami"],
    );
    assert_eq!(flagged.status.code(), Some(5));
    assert!(
        String::from_utf8_lossy(&flagged.stderr).contains("from --endpoint"),
        "{}",
        String::from_utf8_lossy(&flagged.stderr)
    );

    // A failing token command is a denial naming the context, never a token.
    ok(elsewhere(
        config,
        &[
            "context",
            "add",
            "broken",
            "--endpoint",
            &endpoint,
            "--token-command",
            "echo 'not logged in' >&2; exit 1",
        ],
    ));
    let denied = elsewhere(config, &["--context", "broken", "whoami"]);
    assert_eq!(denied.status.code(), Some(4));
    let text = String::from_utf8_lossy(&denied.stderr);
    assert!(
        text.contains("context broken") && text.contains("not logged in"),
        "{text}"
    );

    let misspelt = elsewhere(config, &["--context", "locla", "whoami"]);
    assert_eq!(misspelt.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&misspelt.stderr).contains("did you mean `local`?"),
        "{}",
        String::from_utf8_lossy(&misspelt.stderr)
    );

    ok(elsewhere(config, &["context", "use", "local"]));
    ok(elsewhere(config, &["context", "rm", "by-command"]));
    let listed = stdout(&ok(elsewhere(config, &["context", "list"])));
    assert!(!listed.contains("by-command"), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with('*') && l.contains("local")),
        "{listed}"
    );
}
