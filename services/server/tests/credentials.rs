//! `shadowsync credentials`: the files `generate` writes (names, modes, contents), the tokens it
//! and `token` mint verified by the real `Authenticator` against the written `jwks.json`, the
//! refusals (existing files, service subjects, long lifetimes) and a key rotation end to end.
//! Keys are 2048 bits here to keep the debug build quick; the default is 3072.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use shadowsync_common::auth::jwks::rsa_thumbprint;
use shadowsync_common::auth::{Authenticator, Identity, ServiceIdentity};
use shadowsync_common::config::{AuthConfig, ConfigLoader};
use shadowsync_server::credentials::{
    self, CredentialsError, ENCRYPTION_KEY_FILE, GenerateArgs, JWKS_FILE, SIGNING_KEY_FILE,
    TokenArgs, service_token_file,
};
use tonic::Status;

fn generate_args(out: &Path) -> GenerateArgs {
    GenerateArgs {
        out: out.to_path_buf(),
        rotate_from: None,
        audience: "shadowsync".into(),
        issuer: "shadowsync".into(),
        ttl: Duration::from_secs(365 * 86_400),
        bits: 2048,
        force: false,
    }
}

fn token_args(key: &Path, subject: &str, roles: &[&str]) -> TokenArgs {
    TokenArgs {
        key: key.to_path_buf(),
        subject: subject.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        name: None,
        ttl: Duration::from_secs(8 * 3600),
        audience: "shadowsync".into(),
        issuer: "shadowsync".into(),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// A verifier that trusts exactly the keys of `jwks`, as a service with `auth.jwks_file` does.
fn verifier(jwks: &Path) -> Authenticator {
    Authenticator::from_config(&AuthConfig {
        jwks_file: Some(jwks.to_path_buf()),
        ..AuthConfig::default()
    })
    .unwrap()
}

fn verify(verifier: &Authenticator, token: &str) -> Result<Identity, Status> {
    futures::executor::block_on(verifier.verify(token.trim()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn payload(token: &str) -> serde_json::Value {
    let part = token.trim().split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

fn all_files() -> Vec<String> {
    let mut names = vec![SIGNING_KEY_FILE.to_string(), JWKS_FILE.to_string()];
    names.extend(ServiceIdentity::ALL.into_iter().map(service_token_file));
    names.push(ENCRYPTION_KEY_FILE.to_string());
    names
}

#[test]
fn generate_writes_every_file_with_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cluster").join("credentials");
    let written = credentials::generate(&generate_args(&out)).expect("generate");
    let expected: Vec<PathBuf> = all_files().iter().map(|name| out.join(name)).collect();
    assert_eq!(written, expected);
    assert_eq!(
        all_files(),
        [
            "jwt-signing-key.pem",
            "jwks.json",
            "svc-task.token",
            "svc-approval.token",
            "svc-analysis.token",
            "svc-executor.token",
            "encryption.key"
        ]
    );
    assert_eq!(mode(&out), 0o700);
    for name in all_files() {
        let expected = if name == JWKS_FILE { 0o644 } else { 0o600 };
        assert_eq!(mode(&out.join(&name)), expected, "{name}");
    }
    let entries = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(entries, all_files().len(), "no temporary file left behind");

    let pem = read(&out.join(SIGNING_KEY_FILE));
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "PKCS#8");

    let jwks: serde_json::Value = serde_json::from_str(&read(&out.join(JWKS_FILE))).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["use"].as_str(),
            key["alg"].as_str()
        ),
        (Some("RSA"), Some("sig"), Some("RS256"))
    );
    assert_eq!(
        key["kid"].as_str().unwrap(),
        rsa_thumbprint(key["n"].as_str().unwrap(), key["e"].as_str().unwrap())
    );
    assert_eq!(key["e"], "AQAB");
    assert!(key.get("d").is_none(), "no private member is published");
    let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key["n"].as_str().unwrap())
        .unwrap();
    assert_eq!(modulus.len(), 256, "2048 bits");

    // `encryption.key` is what the configuration key accepts.
    let encoded = read(&out.join(ENCRYPTION_KEY_FILE));
    let config = ConfigLoader::new()
        .flags([format!("encryption.key={encoded}").as_str()])
        .load()
        .expect("encryption.key loads");
    assert_eq!(config.encryption_key.unwrap().expose().len(), 32);
}

#[test]
fn service_tokens_verify_as_their_services_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("creds");
    credentials::generate(&generate_args(&out)).expect("generate");
    let verifier = verifier(&out.join(JWKS_FILE));
    let jwks: serde_json::Value = serde_json::from_str(&read(&out.join(JWKS_FILE))).unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap();
    for service in ServiceIdentity::ALL {
        let token = read(&out.join(service_token_file(service)));
        assert!(
            !token.ends_with('\n'),
            "no newline for an environment variable"
        );
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(kid));
        let identity = verify(&verifier, &token).expect("verifies");
        assert_eq!(identity.service_identity(), Some(service));
        assert_eq!(identity.roles, ["service"]);
        let claims = payload(&token);
        assert_eq!(claims["sub"], service.subject());
        assert_eq!(claims["aud"], "shadowsync");
        assert_eq!(claims["iss"], "shadowsync");
        let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
        assert_eq!(lifetime, 365 * 86_400);
        assert!(claims["iat"].as_u64().unwrap() <= now());
    }
    // A service configured for another audience refuses them.
    let other = Authenticator::from_config(&AuthConfig {
        jwks_file: Some(out.join(JWKS_FILE)),
        audience: "elsewhere".into(),
        ..AuthConfig::default()
    })
    .unwrap();
    let token = read(&out.join(service_token_file(ServiceIdentity::Executor)));
    assert_eq!(
        verify(&other, &token).unwrap_err().message(),
        "token audience not accepted"
    );
}

#[test]
fn existing_files_are_kept_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("creds");
    credentials::generate(&generate_args(&out)).expect("first");
    let before: Vec<String> = all_files().iter().map(|n| read(&out.join(n))).collect();
    match credentials::generate(&generate_args(&out)) {
        Err(CredentialsError::Exists { path }) => assert_eq!(path, out.join(SIGNING_KEY_FILE)),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let after: Vec<String> = all_files().iter().map(|n| read(&out.join(n))).collect();
    assert_eq!(before, after, "nothing was touched");

    // One leftover file is enough to refuse, before anything else is written.
    let partial = dir.path().join("partial");
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join(ENCRYPTION_KEY_FILE), "keep me").unwrap();
    assert!(matches!(
        credentials::generate(&generate_args(&partial)),
        Err(CredentialsError::Exists { .. })
    ));
    assert_eq!(std::fs::read_dir(&partial).unwrap().count(), 1);

    let forced = GenerateArgs {
        force: true,
        ..generate_args(&out)
    };
    credentials::generate(&forced).expect("forced");
    assert_ne!(read(&out.join(SIGNING_KEY_FILE)), before[0], "a new key");
    assert_eq!(mode(&out.join(SIGNING_KEY_FILE)), 0o600);
}

#[test]
fn person_tokens_verify_with_their_roles_and_refuse_services_and_long_lifetimes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("creds");
    credentials::generate(&generate_args(&out)).expect("generate");
    let key = out.join(SIGNING_KEY_FILE);
    let verifier = verifier(&out.join(JWKS_FILE));

    let token = credentials::person_token(&TokenArgs {
        name: Some("Alice Admin".into()),
        ..token_args(&key, "alice", &["admin", " dba ", ""])
    })
    .expect("token");
    let identity = verify(&verifier, token.expose()).expect("verifies");
    assert_eq!(identity.subject, "alice");
    assert_eq!(identity.name, "Alice Admin");
    assert_eq!(identity.roles, ["admin", "dba"]);
    assert!(identity.is_admin() && !identity.is_any_service());
    let lifetime = identity.expires_at.unwrap() - now();
    assert!((8 * 3600 - 60..=8 * 3600).contains(&lifetime), "{lifetime}");

    for subject in [
        "svc:executor",
        "svc:task",
        "SVC:task",
        " svc:anything",
        "svc:",
        "",
    ] {
        match credentials::person_token(&token_args(&key, subject, &["admin"])) {
            Err(CredentialsError::Usage(message)) => {
                assert!(message.starts_with("--subject"), "{message}")
            }
            other => panic!(
                "{subject:?}: expected a refusal, got {:?}",
                other.map(|_| ())
            ),
        }
    }
    for (ttl, accepted) in [
        (Duration::from_secs(30 * 86_400), true),
        (Duration::from_secs(30 * 86_400 + 1), false),
        (Duration::from_secs(365 * 86_400), false),
        (Duration::ZERO, false),
    ] {
        let result = credentials::person_token(&TokenArgs {
            ttl,
            ..token_args(&key, "alice", &["admin"])
        });
        assert_eq!(result.is_ok(), accepted, "{ttl:?}");
    }
    // A key that is not one.
    let bogus = dir.path().join("bogus.pem");
    std::fs::write(
        &bogus,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let error = credentials::person_token(&token_args(&bogus, "alice", &[])).unwrap_err();
    assert!(
        error.to_string().contains("not an RSA private key"),
        "{error}"
    );
    assert!(!error.to_string().contains("AAAA"), "{error}");
}

#[test]
fn a_rotation_publishes_both_keys_then_retires_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    let new = dir.path().join("new");
    credentials::generate(&generate_args(&old)).expect("old");
    credentials::generate(&GenerateArgs {
        rotate_from: Some(old.clone()),
        ..generate_args(&new)
    })
    .expect("rotation");
    let executor = service_token_file(ServiceIdentity::Executor);
    let old_token = read(&old.join(&executor));
    let new_token = read(&new.join(&executor));

    // Step 1: the new set holds both keys, so services that load it accept both tokens.
    let both = verifier(&new.join(JWKS_FILE));
    for token in [&old_token, &new_token] {
        let identity = verify(&both, token).expect("both verify");
        assert_eq!(identity.service_identity(), Some(ServiceIdentity::Executor));
    }
    let jwks: serde_json::Value = serde_json::from_str(&read(&new.join(JWKS_FILE))).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(
        read(&new.join(ENCRYPTION_KEY_FILE)),
        read(&old.join(ENCRYPTION_KEY_FILE)),
        "stored passwords stay readable"
    );
    // The old set alone does not know the new key.
    assert!(verify(&verifier(&old.join(JWKS_FILE)), &new_token).is_err());

    // Last step: publish the new key alone; old tokens stop working.
    let mut printed = Vec::new();
    credentials::run(
        &credentials::CredentialsCommand::Jwks(credentials::JwksArgs {
            key: new.join(SIGNING_KEY_FILE),
        }),
        &mut printed,
    )
    .expect("jwks");
    let retired = dir.path().join("retired.json");
    std::fs::write(&retired, printed).unwrap();
    let only_new = verifier(&retired);
    verify(&only_new, &new_token).expect("the new key");
    assert_eq!(
        verify(&only_new, &old_token).unwrap_err().message(),
        "token signing key not known"
    );

    // No rotation without the encryption key that sealed the stored passwords.
    std::fs::remove_file(old.join(ENCRYPTION_KEY_FILE)).unwrap();
    let error = credentials::generate(&GenerateArgs {
        rotate_from: Some(old.clone()),
        ..generate_args(&dir.path().join("third"))
    })
    .unwrap_err();
    assert!(error.to_string().contains("encryption.key"), "{error}");
    assert!(!dir.path().join("third").exists(), "refused before writing");
}

#[test]
fn the_binary_mints_with_the_documented_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("creds");
    let binary = env!("CARGO_BIN_EXE_shadowsync");
    let generated = Command::new(binary)
        .args(["credentials", "generate", "--out"])
        .arg(&out)
        .args(["--bits", "2048", "--ttl", "90d"])
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
    let key = out.join(SIGNING_KEY_FILE);
    let minted = Command::new(binary)
        .args(["credentials", "token", "--key"])
        .arg(&key)
        .args([
            "--subject",
            "alice",
            "--role",
            "admin",
            "--role",
            "dba",
            "--ttl",
            "8h",
        ])
        .output()
        .unwrap();
    assert!(minted.status.success(), "{minted:?}");
    let token = String::from_utf8(minted.stdout).unwrap();
    let identity = verify(&verifier(&out.join(JWKS_FILE)), &token).expect("verifies");
    assert_eq!(
        (identity.subject.as_str(), identity.roles.len()),
        ("alice", 2)
    );

    let refused = Command::new(binary)
        .args(["credentials", "token", "--key"])
        .arg(&key)
        .args(["--subject", "svc:executor"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty(), "no token printed");
    let again = Command::new(binary)
        .args(["credentials", "generate", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}
