use std::collections::HashMap;
use std::io::Write as _;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn toml_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(text.as_bytes()).expect("write");
    file
}

/// Asserts that `flag` stops loading with a message naming `key` and containing `why`.
fn assert_refused(flag: &str, key: &str, why: &str) {
    let message = ConfigLoader::new()
        .flags([flag])
        .load()
        .expect_err("must fail")
        .to_string();
    assert!(
        message.contains(&format!("`{key}`")) && message.contains(why),
        "{message}"
    );
}

#[test]
fn defaults_are_the_embedded_mode() {
    let config = ConfigLoader::new().load().expect("defaults load");
    assert_eq!(config.listen, "127.0.0.1:50051".parse().expect("addr"));
    assert_eq!(config.data_dir, PathBuf::from(".shadowsync"));
    assert!(config.database_url.is_none());
    assert!(config.queue.url.is_none());
    assert_eq!(config.auth.audience, "shadowsync");
    assert_eq!(config.executor.prefetch, 1);
    assert_eq!(config.executor.table_parallelism, 1);
    assert_eq!(config.task.execution_lease.as_secs(), 30);
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let file = toml_file(
        "listen = \"0.0.0.0:7000\"\n[queue]\nprefix = \"from-file.\"\n[log]\nformat = \"json\"\n",
    );
    let config = ConfigLoader::new()
        .file(file.path())
        .env(&env(&[
            ("SHADOWSYNC_LISTEN", "0.0.0.0:7001"),
            ("SHADOWSYNC_QUEUE_PREFIX", "from-env."),
            ("UNRELATED", "ignored"),
        ]))
        .flags(["queue.prefix=from-flag."])
        .load()
        .expect("loads");
    assert_eq!(config.listen, "0.0.0.0:7001".parse().expect("addr"));
    assert_eq!(config.queue.prefix, "from-flag.");
    assert_eq!(
        config.log_format,
        LogFormat::Json,
        "file value kept where nothing overrides it"
    );
}

#[test]
fn a_bad_value_names_the_key_and_its_origin() {
    let error = ConfigLoader::new()
        .env(&env(&[("SHADOWSYNC_LISTEN", "not-an-address")]))
        .load()
        .expect_err("must fail");
    let message = error.to_string();
    assert!(message.contains("`listen`"), "{message}");
    assert!(message.contains("SHADOWSYNC_LISTEN"), "{message}");

    let file = toml_file("[executor]\nprefetch = 0\n");
    let message = ConfigLoader::new()
        .file(file.path())
        .load()
        .expect_err("must fail")
        .to_string();
    assert!(message.contains("`executor.prefetch`"), "{message}");
    assert!(
        message.contains(&file.path().display().to_string()),
        "{message}"
    );

    for bad in ["0", "17"] {
        let message = ConfigLoader::new()
            .env(&env(&[("SHADOWSYNC_EXECUTOR_TABLE_PARALLELISM", bad)]))
            .load()
            .expect_err("must fail")
            .to_string();
        assert!(
            message.contains("`executor.table_parallelism`") && message.contains("1 to 16"),
            "{message}"
        );
    }
    let config = ConfigLoader::new()
        .env(&env(&[("SHADOWSYNC_EXECUTOR_TABLE_PARALLELISM", "4")]))
        .load()
        .unwrap();
    assert_eq!(config.executor.table_parallelism, 4);

    assert_eq!(config.executor.shutdown_grace.as_secs(), 20);
    let config = ConfigLoader::new()
        .flags(["executor.shutdown_grace_seconds=0"])
        .load()
        .unwrap();
    assert!(config.executor.shutdown_grace.is_zero());
    assert_refused(
        "executor.shutdown_grace_seconds=3601",
        "executor.shutdown_grace_seconds",
        "0 to 3600",
    );

    // Heartbeats come at a third of the lease: under 3 s they would spin.
    assert_refused(
        "task.execution_lease_seconds=2",
        "task.execution_lease_seconds",
        "3 to 3600",
    );
}

#[test]
fn unknown_keys_and_malformed_files_are_refused() {
    let file = toml_file("[queue]\nprefx = \"typo\"\n");
    let message = ConfigLoader::new()
        .file(file.path())
        .load()
        .expect_err("must fail")
        .to_string();
    assert!(message.contains("queue.prefx"), "{message}");

    let file = toml_file("listen = ");
    assert!(matches!(
        ConfigLoader::new().file(file.path()).load(),
        Err(ConfigError::File { .. })
    ));
    assert!(matches!(
        ConfigLoader::new().flags(["no-equals-sign"]).load(),
        Err(ConfigError::Flag(_))
    ));
}

#[test]
fn secrets_are_validated_without_being_echoed() {
    let message = ConfigLoader::new()
        .env(&env(&[(
            "SHADOWSYNC_QUEUE_URL",
            "http://guest:hunter2@host",
        )]))
        .load()
        .expect_err("wrong scheme")
        .to_string();
    assert!(message.contains("queue.url"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let message = ConfigLoader::new()
        .env(&env(&[("SHADOWSYNC_ENCRYPTION_KEY", "c2hvcnQ=")]))
        .load()
        .expect_err("short key")
        .to_string();
    assert!(message.contains("32 bytes"), "{message}");

    let config = ConfigLoader::new()
        .env(&env(&[(
            "SHADOWSYNC_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )]))
        .load()
        .expect("valid key");
    assert_eq!(config.encryption_key.expect("set").expose().len(), 32);
}

#[test]
fn tls_needs_both_halves() {
    let message = ConfigLoader::new()
        .flags(["tls.cert=/tmp/cert.pem"])
        .load()
        .expect_err("no key")
        .to_string();
    assert!(message.contains("tls.key"), "{message}");
}

#[test]
fn every_key_has_a_distinct_env_var() {
    let mut vars: Vec<String> = KEYS.iter().map(|k| k.env_var()).collect();
    vars.sort();
    vars.dedup();
    assert_eq!(vars.len(), KEYS.len());
    assert!(vars.contains(&"SHADOWSYNC_AUTH_HS256_SECRET".to_string()));
}

#[test]
fn auto_migrate_is_on_unless_switched_off_in_so_many_words() {
    assert!(
        ConfigLoader::new()
            .load()
            .expect("defaults")
            .database_auto_migrate
    );
    let off = ConfigLoader::new()
        .env(&env(&[("SHADOWSYNC_DATABASE_AUTO_MIGRATE", "false")]))
        .load()
        .expect("loads");
    assert!(!off.database_auto_migrate);
    // A near miss must not silently leave migrations on (or off).
    assert_refused(
        "database.auto_migrate=no",
        "database.auto_migrate",
        "true or false",
    );
    assert_refused(
        "database.auto_migrate=False",
        "database.auto_migrate",
        "true or false",
    );
}

#[test]
fn an_https_peer_needs_the_ca_that_signed_it() {
    assert_refused(
        "endpoints.task=https://task:50051",
        "endpoints.task",
        "needs tls.peer_ca",
    );
    let config = ConfigLoader::new()
        .flags([
            "endpoints.analysis=https://analysis:50051",
            "tls.peer_ca=/etc/shadowsync/tls/ca.crt",
        ])
        .load()
        .expect("loads");
    assert_eq!(
        config.endpoints.peer_ca,
        Some(PathBuf::from("/etc/shadowsync/tls/ca.crt"))
    );
    // Plain http peers need no CA.
    ConfigLoader::new()
        .flags(["endpoints.task=http://task:50051"])
        .load()
        .expect("loads");
}

#[test]
fn the_identity_provider_keys_load_together() {
    let config = ConfigLoader::new()
        .env(&env(&[
            (
                "SHADOWSYNC_AUTH_JWKS_URL",
                "https://idp.example.com/realms/corp/protocol/openid-connect/certs",
            ),
            (
                "SHADOWSYNC_AUTH_ISSUER",
                "https://idp.example.com/realms/corp",
            ),
            ("SHADOWSYNC_AUTH_ROLES_CLAIM", "groups"),
            (
                "SHADOWSYNC_AUTH_ROLE_MAP",
                "platform-admins=admin, dba-leads=dba-approver,platform-admins=dba-approver,\
                 platform-admins=admin",
            ),
            (
                "SHADOWSYNC_AUTH_JWKS_FILE",
                "/etc/shadowsync/jwks/jwks.json",
            ),
        ]))
        .load()
        .expect("loads");
    let provider = config.auth.identity_provider.expect("an identity provider");
    assert_eq!(provider.issuer, "https://idp.example.com/realms/corp");
    assert_eq!(provider.roles_claim.as_deref(), Some("groups"));
    assert_eq!(
        provider.role_map,
        BTreeMap::from([
            ("dba-leads".to_string(), vec!["dba-approver".to_string()]),
            (
                "platform-admins".to_string(),
                vec!["admin".to_string(), "dba-approver".to_string()]
            ),
        ])
    );
    assert_eq!(
        config.auth.jwks_file,
        Some(PathBuf::from("/etc/shadowsync/jwks/jwks.json"))
    );
    let plain = ConfigLoader::new().load().expect("defaults");
    assert!(plain.auth.identity_provider.is_none());
    assert!(plain.auth.jwks_file.is_none());
}

#[test]
fn identity_provider_mistakes_name_their_key() {
    let url = "auth.jwks_url=https://idp.example.com/certs";
    let with_url = |flag: &str, key: &str, why: &str| {
        let message = ConfigLoader::new()
            .flags([url, "auth.issuer=https://idp.example.com", flag])
            .load()
            .expect_err("must fail")
            .to_string();
        assert!(
            message.contains(&format!("`{key}`")) && message.contains(why),
            "{message}"
        );
    };
    assert_refused(
        "auth.issuer=https://idp",
        "auth.issuer",
        "needs auth.jwks_url",
    );
    assert_refused(
        "auth.roles_claim=groups",
        "auth.roles_claim",
        "needs auth.jwks_url",
    );
    assert_refused(
        "auth.role_map=a=admin",
        "auth.role_map",
        "needs auth.jwks_url",
    );
    assert_refused(url, "auth.issuer", "required with auth.jwks_url");
    with_url(
        "auth.role_map=a=admin",
        "auth.role_map",
        "needs auth.roles_claim",
    );
    for bad in ["admins", "=admin", "admins=", "admins=super admin"] {
        let message = ConfigLoader::new()
            .flags([
                url,
                "auth.issuer=https://idp.example.com",
                "auth.roles_claim=groups",
                &format!("auth.role_map=ok=admin,{bad}"),
            ])
            .load()
            .expect_err("must fail")
            .to_string();
        assert!(
            message.contains("`auth.role_map`") && message.contains("value=role"),
            "{bad}: {message}"
        );
    }
    for insecure in [
        "http://idp.example.com/certs",
        "http://10.1.2.3/certs",
        "ftp://127.0.0.1/certs",
        "idp.example.com/certs",
        "https:///certs",
    ] {
        let message = ConfigLoader::new()
            .flags([
                &format!("auth.jwks_url={insecure}") as &str,
                "auth.issuer=https://idp.example.com",
            ])
            .load()
            .expect_err("must fail")
            .to_string();
        assert!(
            message.contains("`auth.jwks_url`") && message.contains("https://"),
            "{insecure}: {message}"
        );
        assert!(
            !message.contains(insecure),
            "the value is not echoed: {message}"
        );
    }
    for loopback in ["http://127.0.0.1:8080/certs", "http://[::1]:8080/certs"] {
        ConfigLoader::new()
            .flags([
                &format!("auth.jwks_url={loopback}") as &str,
                "auth.issuer=https://idp.example.com",
            ])
            .load()
            .unwrap_or_else(|e| panic!("{loopback}: {e}"));
    }
}

#[test]
fn metrics_listen_is_off_by_default_and_parsed_when_set() {
    let config = ConfigLoader::new().load().expect("defaults load");
    assert_eq!(config.metrics_listen, None);
    let config = ConfigLoader::new()
        .env(&env(&[("SHADOWSYNC_METRICS_LISTEN", "0.0.0.0:9464")]))
        .load()
        .expect("loads");
    assert_eq!(
        config.metrics_listen,
        Some("0.0.0.0:9464".parse().expect("addr"))
    );
    assert_refused("metrics.listen=localhost", "metrics.listen", "localhost");
}
