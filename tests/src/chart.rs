//! The Helm chart (`helm/shadowsync`) as tests see it: rendered by `helm template` with chosen
//! values and parsed into objects, and its containers started as local processes
//! ([`Pods`]) with the command, arguments and environment the rendered manifests give them.
//!
//! `helm` is the pinned binary `deploy/dev/tools.sh` installs (`SHADOWSYNC_HELM`, which
//! `deploy/dev/test.sh` sets; else the tools cache).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

/// The release name and namespace every test renders with.
pub const RELEASE: &str = "shadowsync";
pub const NAMESPACE: &str = "shadowsync";

/// The helm binary.
///
/// # Panics
/// When it is not installed, saying how to install it.
pub fn helm() -> PathBuf {
    let path = std::env::var_os("SHADOWSYNC_HELM")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".cache/shadowsync-tools/bin/helm"))
        })
        .expect("SHADOWSYNC_HELM or HOME");
    assert!(
        path.is_file(),
        "helm not found at {}: run deploy/dev/tools.sh (deploy/dev/test.sh does)",
        path.display()
    );
    path
}

/// The repository's root.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the repository")
        .to_path_buf()
}

pub fn chart_dir() -> PathBuf {
    repository().join("helm/shadowsync")
}

/// A rendered release: every object of every document.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub objects: Vec<Value>,
}

/// `helm template` with `args` (e.g. `["--set", "tls.enabled=false"]`, `["-f", path]`).
///
/// Fails with helm's error output when the chart refuses the values.
pub fn try_render(args: &[&str]) -> Result<Rendered, String> {
    let output = Command::new(helm())
        .args(["template", RELEASE])
        .arg(chart_dir())
        .args(["--namespace", NAMESPACE])
        .args(args)
        .output()
        .expect("helm runs");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let text = String::from_utf8(output.stdout).expect("UTF-8 manifests");
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document).expect("valid YAML");
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(Rendered { objects })
}

/// [`try_render`], which must succeed.
///
/// # Panics
/// When helm refuses, with its message.
pub fn render(args: &[&str]) -> Rendered {
    try_render(args).unwrap_or_else(|error| panic!("helm template {args:?} failed: {error}"))
}

/// `value[a][b]…`, or Null.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |v, key| &v[*key])
}

/// A string field, or "".
pub fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    at(value, path).as_str().unwrap_or("")
}

impl Rendered {
    /// Objects of `kind`.
    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|o| text(o, &["kind"]) == kind)
            .collect()
    }

    /// The object of `kind` named `name`.
    ///
    /// # Panics
    /// When there is none.
    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name)
            .unwrap_or_else(|| panic!("no {kind} {name} in the rendered chart"))
    }

    pub fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| text(o, &["kind"]) == kind && text(o, &["metadata", "name"]) == name)
    }

    /// Every pod template (Deployments, Jobs) and bare Pod spec, by owner name.
    pub fn pod_specs(&self) -> Vec<(String, &Value)> {
        let mut specs = Vec::new();
        for object in &self.objects {
            let name = text(object, &["metadata", "name"]).to_string();
            match text(object, &["kind"]) {
                "Deployment" | "Job" => {
                    specs.push((name, at(object, &["spec", "template", "spec"])))
                }
                "Pod" => specs.push((name, at(object, &["spec"]))),
                _ => {}
            }
        }
        specs
    }

    /// A ConfigMap's data.
    pub fn config_map(&self, name: &str) -> BTreeMap<String, String> {
        string_map(at(self.get("ConfigMap", name), &["data"]))
    }
}

/// A YAML mapping of strings.
pub fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap_or_default().to_string(),
                        match v {
                            Value::String(s) => s.clone(),
                            other => serde_yaml_ng::to_string(other)
                                .unwrap_or_default()
                                .trim()
                                .to_string(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A sequence, or empty.
pub fn list(value: &Value) -> &[Value] {
    value.as_sequence().map(Vec::as_slice).unwrap_or_default()
}

/// What a cluster would supply that the manifests only name: Secrets' contents, and each
/// Service's address.
pub struct Cluster {
    /// Secret name → key → bytes, as `kubectl create secret generic --from-file` makes them.
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Service DNS name (`shadowsync-task.shadowsync.svc`) → the address its pod listens on.
    pub services: BTreeMap<String, std::net::Ipv4Addr>,
    /// Where `shadowsync` and `shadowctl` are (the image's /usr/local/bin).
    pub bin: PathBuf,
}

/// One rendered container running as a local process. Killed when dropped.
pub struct Pod {
    pub name: String,
    pub ip: std::net::Ipv4Addr,
    pub spec: Value,
    child: std::process::Child,
    log: PathBuf,
    _root: tempfile::TempDir,
}

impl Cluster {
    /// The binaries of this build, next to the test executable's directory (`target/debug`).
    ///
    /// # Panics
    /// When they were not built (run the workspace's tests, which build every binary).
    pub fn binaries() -> PathBuf {
        let exe = std::env::current_exe().expect("test executable");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps")
            .to_path_buf();
        for binary in ["shadowsync", "shadowctl"] {
            assert!(
                dir.join(binary).is_file(),
                "{binary} not built in {}: run `cargo test --workspace` (or build it first)",
                dir.display()
            );
        }
        dir
    }

    /// Starts the first container of the pod `spec` (a Pod's spec or a pod template's), as the
    /// kubelet would: the image's entrypoint (`shadowsync`) or the container's `command`, its
    /// `args`, and exactly the environment its `envFrom` ConfigMaps and `env` entries give,
    /// with Secret references resolved from [`Cluster::secrets`]. Nothing of the test's own
    /// environment is passed on.
    ///
    /// Kubernetes' part is emulated, and only that: the pod gets its own address `ip` (a
    /// listener on `0.0.0.0:port` binds `ip:port`), Service names resolve to their pods'
    /// addresses, and each volume is a directory under a private root (a path under a
    /// `mountPath` is re-rooted there).
    ///
    /// # Panics
    /// When the manifests reference a ConfigMap, Secret or key that does not exist: a wrong
    /// name in the chart fails here, as the pod would fail to start in a cluster.
    pub fn start(
        &self,
        rendered: &Rendered,
        name: &str,
        spec: &Value,
        ip: std::net::Ipv4Addr,
    ) -> Pod {
        let root = tempfile::tempdir().expect("pod root");
        let container = &list(&spec["containers"])[0];

        // Volumes: a directory each; Secret volumes hold their items.
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for mount in list(&container["volumeMounts"]) {
            let volume_name = text(mount, &["name"]);
            let mount_path = text(mount, &["mountPath"]).to_string();
            let volume = list(&spec["volumes"])
                .iter()
                .find(|v| text(v, &["name"]) == volume_name)
                .unwrap_or_else(|| {
                    panic!("{name}: volume {volume_name} is mounted but not defined")
                });
            let dir = root.path().join(mount_path.trim_start_matches('/'));
            std::fs::create_dir_all(&dir).expect("volume directory");
            if !volume["secret"].is_null() {
                let secret = self.secret(name, text(volume, &["secret", "secretName"]));
                for item in list(&volume["secret"]["items"]) {
                    let key = text(item, &["key"]);
                    let bytes = secret.get(key).unwrap_or_else(|| {
                        panic!(
                            "{name}: volume {volume_name} wants key {key}, which the Secret lacks"
                        )
                    });
                    std::fs::write(dir.join(text(item, &["path"])), bytes).expect("secret file");
                }
            }
            mounts.push((mount_path, dir));
        }

        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for source in list(&container["envFrom"]) {
            let map = text(source, &["configMapRef", "name"]);
            let data = rendered.find("ConfigMap", map).unwrap_or_else(|| {
                panic!("{name}: envFrom names ConfigMap {map}, which is not rendered")
            });
            env.extend(string_map(&data["data"]));
        }
        for entry in list(&container["env"]) {
            let variable = text(entry, &["name"]).to_string();
            let value = if let Some(value) = entry["value"].as_str() {
                value.to_string()
            } else {
                let reference = &entry["valueFrom"]["secretKeyRef"];
                let secret = self.secret(name, text(reference, &["name"]));
                let key = text(reference, &["key"]);
                let bytes = secret.get(key).unwrap_or_else(|| {
                    panic!("{name}: {variable} wants key {key} of a Secret that lacks it")
                });
                String::from_utf8(bytes.clone()).expect("UTF-8 secret")
            };
            env.insert(variable, value);
        }
        for value in env.values_mut() {
            *value = self.as_in_pod(value, ip, &mounts);
        }

        let (program, args) = {
            let command: Vec<String> = list(&container["command"])
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            let args: Vec<String> = list(&container["args"])
                .iter()
                .filter_map(|v| v.as_str().map(|a| self.as_in_pod(a, ip, &mounts)))
                .collect();
            match command.split_first() {
                Some((program, rest)) => (program.clone(), [rest.to_vec(), args].concat()),
                None => ("shadowsync".to_string(), args),
            }
        };
        let log = root.path().join("container.log");
        let output = std::fs::File::create(&log).expect("log file");
        let child = Command::new(self.bin.join(&program))
            .args(&args)
            .env_clear()
            .envs(&env)
            .stdout(output.try_clone().expect("log"))
            .stderr(output)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {program}: {e}"));
        Pod {
            name: name.to_string(),
            ip,
            spec: spec.clone(),
            child,
            log,
            _root: root,
        }
    }

    fn secret(&self, pod: &str, name: &str) -> &BTreeMap<String, Vec<u8>> {
        self.secrets
            .get(name)
            .unwrap_or_else(|| panic!("{pod}: Secret {name} is referenced but does not exist"))
    }

    /// A value as the process sees it inside the emulated pod.
    fn as_in_pod(
        &self,
        value: &str,
        ip: std::net::Ipv4Addr,
        mounts: &[(String, PathBuf)],
    ) -> String {
        let mut value = value.replace("0.0.0.0:", &format!("{ip}:"));
        for (name, address) in &self.services {
            value = value.replace(name.as_str(), &address.to_string());
        }
        for (mount, dir) in mounts {
            if let Some(rest) = value.strip_prefix(mount.as_str()) {
                value = format!("{}{rest}", dir.display());
            }
        }
        value
    }
}

impl Pod {
    /// The process's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit, up to `patience`.
    ///
    /// # Panics
    /// When it is still running then, with its output.
    pub fn wait(&mut self, patience: std::time::Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} still running after {patience:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Panics, with the output, when the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait") {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }

    /// The first container's readiness probe, as `(kind, port)` with the port resolved.
    pub fn readiness_probe(&self) -> (String, u16) {
        let container = &list(&self.spec["containers"])[0];
        let probe = &container["readinessProbe"];
        let (kind, port) = if !probe["grpc"].is_null() {
            ("grpc", &probe["grpc"]["port"])
        } else {
            ("tcpSocket", &probe["tcpSocket"]["port"])
        };
        let port = match port {
            Value::Number(n) => n.as_u64().expect("port"),
            Value::String(name) => list(&container["ports"])
                .iter()
                .find(|p| text(p, &["name"]) == name)
                .and_then(|p| p["containerPort"].as_u64())
                .unwrap_or_else(|| {
                    panic!(
                        "{}: probe names port {name}, which is not declared",
                        self.name
                    )
                }),
            other => panic!("{}: probe port {other:?}", self.name),
        };
        (kind.to_string(), u16::try_from(port).expect("port"))
    }

    /// Stops the process as the kubelet does: SIGTERM, then SIGKILL after the grace period.
    pub fn terminate(&mut self, grace: std::time::Duration) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
