//! What the `shadowctl` tests share: an embedded server in this process (the token and
//! endpoint are found in its data directory, as a newcomer's shadowctl finds them), running the
//! binary, and the local MariaDB.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use shadowsync_common::config::ConfigLoader;
use shadowsync_server::{Role, embedded};

pub struct Embedded {
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Embedded {
    /// Starts `serve all` on the embedded defaults on a free port, as `shadowsync` would, and
    /// waits until it is SERVING.
    pub fn start() -> Self {
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
        let server = Self {
            dir,
            stop: Some(stop),
            thread: Some(thread),
        };
        // Calls before the stores are migrated are answered UNAVAILABLE, as they should be;
        // the tests start once the server reports SERVING, as a script would wait for it.
        wait_healthy(server.data_dir());
        server
    }

    pub fn data_dir(&self) -> &Path {
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

pub fn shadowctl(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shadowctl"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("SHADOWSYNC_TOKEN")
        .env_remove("SHADOWSYNC_ENDPOINT")
        .env_remove("SHADOWSYNC_CONTEXT")
        // A context of the user running the tests must not redirect them.
        .env("SHADOWSYNC_CONFIG_DIR", data_dir.join("no-contexts"))
        .output()
        .expect("run shadowctl")
}

/// shadowctl as the holder of `token`, next to the embedded server in `data_dir`.
pub fn as_user(data_dir: &Path, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shadowctl"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("SHADOWSYNC_TOKEN", token)
        .env_remove("SHADOWSYNC_ENDPOINT")
        .env_remove("SHADOWSYNC_CONTEXT")
        .env("SHADOWSYNC_CONFIG_DIR", data_dir.join("no-contexts"))
        .output()
        .expect("run shadowctl")
}

/// `output`, after asserting the command succeeded (showing what it printed when not).
pub fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn wait_healthy(data_dir: &Path) {
    for _ in 0..100 {
        if shadowctl(data_dir, &["health"]).status.success() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("embedded server never became healthy");
}

/// Runs SQL on the local MariaDB with the `mariadb` client.
pub fn mariadb(sql: &str) {
    run_mariadb(&[], sql);
}

/// Runs one query on the local MariaDB and returns its rows as tab-separated text (no header).
pub fn mariadb_query(sql: &str) -> String {
    run_mariadb(&["-N"], sql)
}

/// The `mariadb` client's output for `sql`, failing the test when it fails.
fn run_mariadb(options: &[&str], sql: &str) -> String {
    let output = Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root"])
        .args(options)
        .args(["-e", sql])
        .output()
        .expect("run mariadb");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
