//! Layered configuration: defaults → optional TOML file → `SHADOWSYNC_*`
//! environment variables → command-line `--set key=value` flags.
//!
//! Every setting has one dotted key (`auth.hs256_secret`); its environment variable is the key
//! upper-cased with dots as underscores behind `SHADOWSYNC_` (`SHADOWSYNC_AUTH_HS256_SECRET`), which
//! is what the Helm chart sets. All layers are collected as raw strings first and parsed once, so
//! an error always names the key and the layer it came from, and start-up stops there.
//!
//! The environment is passed in as a map: tests never touch the process environment.

mod keys;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::secret::Secret;
pub use keys::KEYS;

/// Where a raw value came from; printed in errors so an operator knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The TOML file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
    /// A `--set` command-line flag.
    Flag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the default"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag => f.write_str("a command-line flag"),
        }
    }
}

/// Why configuration could not be loaded. Every variant names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read or parsed.
    #[error("cannot read configuration file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// A key no setting answers to (a typo in a file or flag).
    #[error("unknown configuration key `{key}` (from {origin})")]
    UnknownKey { key: String, origin: Origin },
    /// A value that does not parse or is out of range.
    #[error("invalid configuration `{key}` (from {origin}): {reason}")]
    Invalid {
        key: &'static str,
        origin: Origin,
        reason: String,
    },
    /// A `--set` flag without `=`.
    #[error("invalid flag `--set {0}`: expected key=value")]
    Flag(String),
}

/// Log output shape: pretty for people, JSON for a cluster's log collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// How services verify bearer tokens.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Shared HS256 signing secret; generated into the data directory in embedded mode.
    pub hs256_secret: Option<Secret<String>>,
    /// PEM files holding RS256 public keys accepted for verification.
    pub rs256_public_keys: Vec<PathBuf>,
    /// The `aud` every token must carry.
    pub audience: String,
    /// A token this service presents to the others; when absent and an HS256 secret is
    /// configured, the service mints its own short-lived tokens.
    pub service_token: Option<Secret<String>>,
    /// A JWK Set file of local RS256 keys (what `shadowsync credentials generate` writes): they
    /// verify service tokens and tokens minted by `shadowsync credentials token`.
    pub jwks_file: Option<PathBuf>,
    /// The company's identity provider, whose tokens identify people (never services).
    pub identity_provider: Option<IdentityProviderConfig>,
}

impl Default for AuthConfig {
    /// No keys at all, and the default audience: a base for struct-update syntax.
    fn default() -> Self {
        Self {
            hs256_secret: None,
            rs256_public_keys: Vec::new(),
            audience: "shadowsync".into(),
            service_token: None,
            jwks_file: None,
            identity_provider: None,
        }
    }
}

/// Where people's tokens come from and how their roles are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProviderConfig {
    /// The provider's JWK Set: https, or http on loopback only.
    pub jwks_url: String,
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The claim holding the person's groups (a string or an array of strings); `None`: people
    /// get no roles.
    pub roles_claim: Option<String>,
    /// Claim value → the roles it grants. Values not listed grant nothing.
    pub role_map: BTreeMap<String, Vec<String>>,
}

/// gRPC TLS: on when a certificate and key are configured; mutual when a client CA is too.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// The message queue; the in-process queue is used when no URL is configured.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub url: Option<Secret<String>>,
    /// Prefix of every queue and exchange name, so tests and tenants never collide.
    pub prefix: String,
    /// CA bundle that signs the broker's certificate, for `amqps://` (`queue.tls_ca`).
    pub tls_ca: Option<PathBuf>,
}

/// Where the services reach each other; `None` means "in this process" (`serve all`).
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub task: Option<String>,
    pub approval: Option<String>,
    pub analysis: Option<String>,
    /// CA bundle that signs the peers' certificates (`tls.peer_ca`), needed for `https://`.
    pub peer_ca: Option<PathBuf>,
}

/// Task service settings.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// How long an executor's lease lasts without a heartbeat (heartbeats come at a third of
    /// it): the longest a task waits for another executor after its executor died.
    pub execution_lease: std::time::Duration,
}

/// Executor worker settings.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    pub prefetch: u16,
    pub concurrency: usize,
    /// Lanes of independent tables a task runs at once (1: none in parallel).
    pub table_parallelism: usize,
    /// How long a stopping executor lets its running tasks finish; after it, they stop between
    /// statements and are handed back (0: at once).
    pub shutdown_grace: std::time::Duration,
}

/// The validated configuration of one process.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where grpc.health.v1 is also served without TLS (`health.listen`): kubelet's gRPC
    /// probes cannot speak TLS, and a TCP probe cannot tell SERVING from NOT_SERVING.
    pub health_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub otlp_endpoint: Option<String>,
    /// Where Prometheus scrapes `/metrics` (`metrics.listen`); not served when unset.
    pub metrics_listen: Option<SocketAddr>,
    pub auth: AuthConfig,
    pub tls: Option<TlsConfig>,
    /// Metadata store URL (`postgres://…` or `sqlite://…`); SQLite under the data directory
    /// when absent.
    pub database_url: Option<Secret<String>>,
    /// Whether the services migrate their stores at start-up (`database.auto_migrate`); when
    /// not, they wait NOT_SERVING for `shadowsync migrate`. The embedded mode always migrates.
    pub database_auto_migrate: bool,
    pub queue: QueueConfig,
    pub endpoints: Endpoints,
    /// AES-256-GCM key for connection passwords at rest (32 bytes, base64 in configuration).
    pub encryption_key: Option<Secret<Vec<u8>>>,
    pub task: TaskSettings,
    pub executor: ExecutorConfig,
}

/// Collects the layers, then parses them into a [`Config`].
#[derive(Debug, Default)]
pub struct ConfigLoader {
    raw: BTreeMap<&'static str, (String, Origin)>,
    errors: Vec<ConfigError>,
}

impl ConfigLoader {
    /// Starts from the built-in defaults.
    pub fn new() -> Self {
        let mut raw = BTreeMap::new();
        for key in KEYS {
            if let Some(default) = key.default {
                raw.insert(key.name, (default.to_string(), Origin::Default));
            }
        }
        Self {
            raw,
            errors: Vec::new(),
        }
    }

    /// Layers a TOML file over what is loaded so far.
    pub fn file(mut self, path: &Path) -> Self {
        match read_toml(path) {
            Ok(values) => {
                for (key, value) in values {
                    self.set(&key, value, Origin::File(path.to_path_buf()));
                }
            }
            Err(error) => self.errors.push(error),
        }
        self
    }

    /// Layers the `SHADOWSYNC_*` variables of `env` (other variables are ignored).
    pub fn env(mut self, env: &HashMap<String, String>) -> Self {
        for key in KEYS {
            let var = key.env_var();
            if let Some(value) = env.get(&var) {
                self.raw.insert(key.name, (value.clone(), Origin::Env(var)));
            }
        }
        self
    }

    /// Layers `key=value` flags.
    pub fn flags<'a>(mut self, flags: impl IntoIterator<Item = &'a str>) -> Self {
        for flag in flags {
            match flag.split_once('=') {
                Some((key, value)) => self.set(key.trim(), value.to_string(), Origin::Flag),
                None => self.errors.push(ConfigError::Flag(flag.to_string())),
            }
        }
        self
    }

    /// Sets one key from a typed command-line flag such as `--listen`.
    pub fn flag(mut self, key: &str, value: Option<String>) -> Self {
        if let Some(value) = value {
            self.set(key, value, Origin::Flag);
        }
        self
    }

    fn set(&mut self, key: &str, value: String, origin: Origin) {
        match KEYS.iter().find(|known| known.name == key) {
            Some(known) => {
                self.raw.insert(known.name, (value, origin));
            }
            None => self.errors.push(ConfigError::UnknownKey {
                key: key.to_string(),
                origin,
            }),
        }
    }

    /// Parses and validates every layer.
    ///
    /// Fails with the first problem found: an unreadable file, an unknown key, or a value that
    /// does not parse, each naming the key and where it came from.
    pub fn load(mut self) -> Result<Config, ConfigError> {
        if !self.errors.is_empty() {
            return Err(self.errors.remove(0));
        }
        keys::parse(&self.raw)
    }
}

fn read_toml(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_error(e.to_string()))?;
    let mut out = Vec::new();
    flatten("", &table, &mut out).map_err(file_error)?;
    Ok(out)
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&key, inner, out)?,
            toml::Value::String(s) => out.push((key, s.clone())),
            toml::Value::Integer(i) => out.push((key, i.to_string())),
            toml::Value::Boolean(b) => out.push((key, b.to_string())),
            toml::Value::Float(f) => out.push((key, f.to_string())),
            toml::Value::Array(items) => {
                let mut parts = Vec::new();
                for item in items {
                    match item {
                        toml::Value::String(s) => parts.push(s.clone()),
                        other => return Err(format!("`{key}`: expected strings, found {other}")),
                    }
                }
                out.push((key, parts.join(",")));
            }
            toml::Value::Datetime(_) => return Err(format!("`{key}`: dates are not settings")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
