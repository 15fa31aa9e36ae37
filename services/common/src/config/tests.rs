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
