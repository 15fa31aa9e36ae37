//! `shadowctl token` as a process: it mints people only (no `svc:*` subject) and caps the
//! lifetime at 30 days. A data directory holding just the signing secret stands in for the
//! embedded server's: the refusals must hold where minting would otherwise work.

use std::path::Path;
use std::process::{Command, Output};

use shadowsync_common::auth::Authenticator;
use shadowsync_common::config::AuthConfig;
use shadowsync_common::secret::Secret;

const SECRET: &str = "token-test-secret-token-test-secret-0123";

fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("jwt.secret"), format!("{SECRET}\n")).expect("secret");
    dir
}

fn shadowctl(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shadowctl"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("token")
        .args(args)
        .env_remove("SHADOWSYNC_TOKEN")
        .env_remove("SHADOWSYNC_ENDPOINT")
        .output()
        .expect("run shadowctl")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the CLI's bad-input convention: exit 2 (usage, `shadowctl help exit-codes`),
/// nothing on stdout, one `error: <flag>: …` line on stderr; returns that line.
fn refused(output: &Output, flag: &str) -> String {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(output.stdout.is_empty(), "no token is printed");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with(&format!("error: {flag}: ")), "{text}");
    text
}

/// The expiry minus now of a minted token, in seconds, as the server verifies it.
fn lifetime(output: &Output) -> u64 {
    assert!(output.status.success(), "{}", stderr(output));
    let token = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let verifier = Authenticator::from_config(&AuthConfig {
        hs256_secret: Some(Secret::new(SECRET.to_string())),
        rs256_public_keys: Vec::new(),
        audience: "shadowsync".into(),
        service_token: None,
        ..AuthConfig::default()
    })
    .expect("verifier");
    // Verification is async (an identity provider's keys may need fetching); an HS256 token
    // needs no I/O, so a current-thread runtime is enough.
    let identity = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(verifier.verify(&token))
        .expect("a valid token");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    identity.expires_at.expect("exp") - now
}

#[test]
fn service_subjects_are_refused() {
    let dir = data_dir();
    for user in [
        "svc:task",
        "svc:executor",
        "svc:anything",
        "svc:",
        "SVC:task",
        "Svc:Approval",
        " svc:task ",
    ] {
        let output = shadowctl(dir.path(), &["--user", user, "--roles", "admin"]);
        let text = refused(&output, "--user");
        assert!(text.contains("svc:*"), "{user:?}: {text}");
        assert!(text.contains("people only"), "{user:?}: {text}");
    }
    // A person whose name merely contains `svc` is a person.
    for user in ["svcadmin", "alice-svc:task", "bob"] {
        let output = shadowctl(dir.path(), &["--user", user]);
        assert!(output.status.success(), "{user:?}: {}", stderr(&output));
    }
}

#[test]
fn lifetimes_are_capped_at_thirty_days() {
    let dir = data_dir();
    for ttl in ["31d", "30d1s", "5w", "721h", "99999999d"] {
        let output = shadowctl(dir.path(), &["--user", "bob", "--ttl", ttl]);
        let text = refused(&output, "--ttl");
        assert!(text.contains("at most 30d"), "{ttl}: {text}");
    }
    let zero = shadowctl(dir.path(), &["--user", "bob", "--ttl", "0s"]);
    refused(&zero, "--ttl");

    let thirty_days = 30 * 24 * 3600;
    let longest = lifetime(&shadowctl(dir.path(), &["--user", "bob", "--ttl", "30d"]));
    assert!(
        (thirty_days - 60..=thirty_days).contains(&longest),
        "{longest}"
    );
    let default = lifetime(&shadowctl(dir.path(), &["--user", "bob"]));
    assert!((24 * 3600 - 60..=24 * 3600).contains(&default), "{default}");
}
