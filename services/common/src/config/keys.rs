//! The one list of configuration keys, their defaults, and how each is parsed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use base64::Engine as _;

use super::{
    AuthConfig, Config, ConfigError, Endpoints, ExecutorConfig, IdentityProviderConfig, LogFormat,
    Origin, QueueConfig, TaskSettings, TlsConfig,
};
use crate::secret::Secret;

/// More connections per task than this would only contend for the target's metadata locks.
const MAX_TABLE_PARALLELISM: usize = 16;

/// One configuration key.
#[derive(Debug)]
pub struct Key {
    /// Dotted name, as written in the TOML file and `--set`.
    pub name: &'static str,
    /// Built-in default, if any.
    pub default: Option<&'static str>,
    /// One line for `--help` and the documentation.
    pub help: &'static str,
}

impl Key {
    /// `SHADOWSYNC_` + the name upper-cased with dots as underscores.
    pub fn env_var(&self) -> String {
        format!("SHADOWSYNC_{}", self.name.replace('.', "_").to_uppercase())
    }
}

const fn key(name: &'static str, default: Option<&'static str>, help: &'static str) -> Key {
    Key {
        name,
        default,
        help,
    }
}

/// Every key the services read.
pub const KEYS: &[Key] = &[
    key(
        "listen",
        Some("127.0.0.1:50051"),
        "gRPC listen address (port 0 picks a free one)",
    ),
    key(
        "health.listen",
        None,
        "also serve grpc.health.v1 in plaintext here (e.g. 0.0.0.0:8081), for probes that cannot \
         speak TLS",
    ),
    key(
        "data_dir",
        Some(".shadowsync"),
        "directory for embedded-mode files",
    ),
    key("log.format", Some("pretty"), "pretty or json"),
    key(
        "log.filter",
        Some("info"),
        "tracing filter directives, e.g. info,shadowsync_task=debug",
    ),
    key(
        "otlp.endpoint",
        None,
        "OTLP/gRPC endpoint for traces and metrics",
    ),
    key(
        "metrics.listen",
        None,
        "HTTP address serving Prometheus metrics at /metrics, e.g. 0.0.0.0:9464 (off when unset)",
    ),
    key("auth.hs256_secret", None, "HS256 token signing secret"),
    key(
        "auth.rs256_public_keys",
        None,
        "comma-separated PEM files of accepted RS256 keys",
    ),
    key(
        "auth.audience",
        Some("shadowsync"),
        "the aud every token must carry",
    ),
    key(
        "auth.service_token",
        None,
        "token this service presents to the others",
    ),
    key(
        "auth.jwks_file",
        None,
        "JWK Set file of local RS256 keys (from shadowsync credentials generate); they verify \
         service tokens",
    ),
    key(
        "auth.jwks_url",
        None,
        "the identity provider's JWK Set URL (https; http only on loopback); its tokens identify \
         people, never services",
    ),
    key(
        "auth.issuer",
        None,
        "the iss the identity provider's tokens carry (required with auth.jwks_url)",
    ),
    key(
        "auth.roles_claim",
        None,
        "the identity provider's claim holding a person's groups, e.g. groups",
    ),
    key(
        "auth.role_map",
        None,
        "comma-separated claim value=role pairs, e.g. platform-admins=admin; unmapped values \
         give no role",
    ),
    key("tls.cert", None, "PEM certificate chain; enables gRPC TLS"),
    key("tls.key", None, "PEM private key for tls.cert"),
    key(
        "tls.peer_ca",
        None,
        "PEM CA bundle that signs the other services' certificates (for https:// endpoints.*)",
    ),
    key(
        "tls.client_ca",
        None,
        "PEM CA bundle; requires client certificates (mTLS)",
    ),
    key(
        "database.url",
        None,
        "metadata store: postgres://… or sqlite://…",
    ),
    key(
        "database.auto_migrate",
        Some("true"),
        "apply the store's migrations at start-up; when false (the Helm chart's setting) the \
         service waits, NOT_SERVING, until `shadowsync migrate` has brought the schema up to date",
    ),
    key(
        "queue.url",
        None,
        "AMQP URL; the in-process queue when absent",
    ),
    key(
        "queue.tls_ca",
        None,
        "PEM CA bundle that signs the broker's certificate (for amqps:// URLs)",
    ),
    key(
        "queue.prefix",
        Some(""),
        "prefix of every queue and exchange name",
    ),
    key(
        "endpoints.task",
        None,
        "task service URL when not in this process",
    ),
    key(
        "endpoints.approval",
        None,
        "approval service URL when not in this process",
    ),
    key(
        "endpoints.analysis",
        None,
        "analysis service URL when not in this process",
    ),
    key(
        "encryption.key",
        None,
        "base64 32-byte AES-256-GCM key for passwords at rest",
    ),
    key(
        "task.execution_lease_seconds",
        Some("30"),
        "seconds an executor's lease lasts unrenewed (how soon a dead executor's task moves on)",
    ),
    key(
        "executor.prefetch",
        Some("1"),
        "unacknowledged deliveries per executor",
    ),
    key(
        "executor.concurrency",
        Some("1"),
        "tasks an executor runs at once",
    ),
    key(
        "executor.table_parallelism",
        Some("1"),
        "tables not linked by foreign keys that one task alters at once, one connection each",
    ),
    key(
        "executor.shutdown_grace_seconds",
        Some("20"),
        "seconds a stopping executor lets running tasks finish before handing them back between \
         statements (keep it under the pod's termination grace period)",
    ),
];

type Raw = BTreeMap<&'static str, (String, Origin)>;

struct Reader<'a> {
    raw: &'a Raw,
}

impl Reader<'_> {
    fn get(&self, key: &'static str) -> Option<(&str, &Origin)> {
        self.raw
            .get(key)
            .map(|(value, origin)| (value.trim(), origin))
            .filter(|(value, _)| !value.is_empty())
    }

    fn invalid(&self, key: &'static str, reason: impl Into<String>) -> ConfigError {
        let origin = self
            .raw
            .get(key)
            .map_or(Origin::Default, |(_, origin)| origin.clone());
        ConfigError::Invalid {
            key,
            origin,
            reason: reason.into(),
        }
    }

    fn string(&self, key: &'static str) -> Option<String> {
        self.get(key).map(|(value, _)| value.to_string())
    }

    fn secret(&self, key: &'static str) -> Option<Secret<String>> {
        // Secrets are not trimmed: a trailing space may be part of one.
        self.raw
            .get(key)
            .filter(|(value, _)| !value.is_empty())
            .map(|(value, _)| Secret::new(value.clone()))
    }

    fn parsed<T: FromStr>(&self, key: &'static str) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.get(key)
            .map(|(value, _)| {
                value
                    .parse::<T>()
                    .map_err(|e| self.invalid(key, e.to_string()))
            })
            .transpose()
    }

    fn required<T: FromStr>(&self, key: &'static str) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.parsed(key)?
            .ok_or_else(|| self.invalid(key, "a value is required"))
    }

    fn url(&self, key: &'static str, schemes: &[&str]) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.string(key) else {
            return Ok(None);
        };
        let scheme = value.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some(scheme) if schemes.contains(&scheme) => Ok(Some(value)),
            // The value may hold credentials: the message names the schemes, never the value.
            _ => Err(self.invalid(
                key,
                format!(
                    "expected a URL starting with {}",
                    schemes.join("://, ") + "://"
                ),
            )),
        }
    }
}

pub(super) fn parse(raw: &Raw) -> Result<Config, ConfigError> {
    let r = Reader { raw };
    let listen: SocketAddr = r.required("listen")?;
    let data_dir: PathBuf = r.required("data_dir")?;
    let health_listen: Option<SocketAddr> = r.parsed("health.listen")?;
    let log_format = match r.string("log.format").as_deref() {
        Some("pretty") | None => LogFormat::Pretty,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(r.invalid(
                "log.format",
                format!("expected pretty or json, found {other:?}"),
            ));
        }
    };
    let log_filter = r.string("log.filter").unwrap_or_else(|| "info".into());
    tracing_subscriber::EnvFilter::try_new(&log_filter)
        .map_err(|e| r.invalid("log.filter", e.to_string()))?;

    let mut auth = AuthConfig {
        hs256_secret: r.secret("auth.hs256_secret"),
        rs256_public_keys: r
            .string("auth.rs256_public_keys")
            .map(|list| list.split(',').map(|p| PathBuf::from(p.trim())).collect())
            .unwrap_or_default(),
        audience: r.required("auth.audience")?,
        service_token: r.secret("auth.service_token"),
        jwks_file: r.parsed("auth.jwks_file")?,
        identity_provider: None,
    };
    if let Some(secret) = &auth.hs256_secret
        && secret.expose().len() < 32
    {
        return Err(r.invalid("auth.hs256_secret", "must be at least 32 characters"));
    }
    auth.identity_provider = identity_provider(&r)?;

    let tls = match (
        r.parsed::<PathBuf>("tls.cert")?,
        r.parsed::<PathBuf>("tls.key")?,
    ) {
        (Some(cert), Some(key)) => Some(TlsConfig {
            cert,
            key,
            client_ca: r.parsed("tls.client_ca")?,
        }),
        (None, None) => {
            if r.get("tls.client_ca").is_some() {
                return Err(r.invalid("tls.client_ca", "needs tls.cert and tls.key"));
            }
            None
        }
        (Some(_), None) => return Err(r.invalid("tls.key", "required when tls.cert is set")),
        (None, Some(_)) => return Err(r.invalid("tls.cert", "required when tls.key is set")),
    };

    let database_url = r
        .url("database.url", &["postgres", "postgresql", "sqlite"])?
        .map(Secret::new);
    let database_auto_migrate = match r.string("database.auto_migrate").as_deref() {
        Some("true") | None => true,
        Some("false") => false,
        Some(other) => {
            return Err(r.invalid(
                "database.auto_migrate",
                format!("expected true or false, found {other:?}"),
            ));
        }
    };
    let queue = QueueConfig {
        url: r.url("queue.url", &["amqp", "amqps"])?.map(Secret::new),
        prefix: r.string("queue.prefix").unwrap_or_default(),
        tls_ca: r.parsed("queue.tls_ca")?,
    };
    if !queue
        .prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(r.invalid(
            "queue.prefix",
            "only letters, digits, '.', '-' and '_' are allowed",
        ));
    }
    let endpoints = Endpoints {
        task: r.url("endpoints.task", &["http", "https"])?,
        approval: r.url("endpoints.approval", &["http", "https"])?,
        analysis: r.url("endpoints.analysis", &["http", "https"])?,
        peer_ca: r.parsed("tls.peer_ca")?,
    };
    if endpoints.peer_ca.is_none() {
        // tonic has no system roots here (rustls with ring only): an https:// peer needs the CA
        // that signed it, and finding out at the first call would leave the service half-wired.
        for (key, url) in [
            ("endpoints.task", &endpoints.task),
            ("endpoints.approval", &endpoints.approval),
            ("endpoints.analysis", &endpoints.analysis),
        ] {
            if url.as_deref().is_some_and(|u| u.starts_with("https://")) {
                return Err(r.invalid(key, "an https:// endpoint needs tls.peer_ca"));
            }
        }
    }

    let encryption_key = match r.secret("encryption.key") {
        None => None,
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.expose().trim())
                .map_err(|_| r.invalid("encryption.key", "not valid base64"))?;
            if bytes.len() != 32 {
                return Err(r.invalid(
                    "encryption.key",
                    format!("must decode to 32 bytes, found {}", bytes.len()),
                ));
            }
            Some(Secret::new(bytes))
        }
    };

    let lease: u64 = r.required("task.execution_lease_seconds")?;
    if !(3..=3600).contains(&lease) {
        return Err(r.invalid(
            "task.execution_lease_seconds",
            "must be from 3 to 3600 (heartbeats come at a third of it)",
        ));
    }
    let prefetch: u16 = r.required("executor.prefetch")?;
    if prefetch == 0 {
        return Err(r.invalid("executor.prefetch", "must be at least 1"));
    }
    let concurrency: usize = r.required("executor.concurrency")?;
    if concurrency == 0 {
        return Err(r.invalid("executor.concurrency", "must be at least 1"));
    }
    let table_parallelism: usize = r.required("executor.table_parallelism")?;
    if !(1..=MAX_TABLE_PARALLELISM).contains(&table_parallelism) {
        return Err(r.invalid(
            "executor.table_parallelism",
            format!("must be from 1 to {MAX_TABLE_PARALLELISM}"),
        ));
    }
    let shutdown_grace: u64 = r.required("executor.shutdown_grace_seconds")?;
    if shutdown_grace > 3600 {
        return Err(r.invalid("executor.shutdown_grace_seconds", "must be from 0 to 3600"));
    }

    Ok(Config {
        listen,
        health_listen,
        data_dir,
        log_format,
        log_filter,
        otlp_endpoint: r.url("otlp.endpoint", &["http", "https"])?,
        metrics_listen: r
            .string("metrics.listen")
            .map(|address| {
                address
                    .parse::<SocketAddr>()
                    .map_err(|e| r.invalid("metrics.listen", format!("{address:?}: {e}")))
            })
            .transpose()?,
        auth,
        tls,
        database_url,
        database_auto_migrate,
        queue,
        endpoints,
        encryption_key,
        task: TaskSettings {
            execution_lease: std::time::Duration::from_secs(lease),
        },
        executor: ExecutorConfig {
            prefetch,
            concurrency,
            table_parallelism,
            shutdown_grace: std::time::Duration::from_secs(shutdown_grace),
        },
    })
}

/// The `auth.jwks_url` group: all of it or none of it.
fn identity_provider(r: &Reader<'_>) -> Result<Option<IdentityProviderConfig>, ConfigError> {
    let Some(jwks_url) = r.string("auth.jwks_url") else {
        for key in ["auth.issuer", "auth.roles_claim", "auth.role_map"] {
            if r.get(key).is_some() {
                return Err(r.invalid(key, "needs auth.jwks_url (the identity provider)"));
            }
        }
        return Ok(None);
    };
    let acceptable = jwks_url
        .parse::<http::Uri>()
        .is_ok_and(|url| crate::auth::is_acceptable_jwks_url(&url));
    if !acceptable {
        // The URL is not repeated: it may carry a tenant's token.
        return Err(r.invalid(
            "auth.jwks_url",
            "expected an https:// URL (http:// only for 127.0.0.1, [::1] or localhost)",
        ));
    }
    let issuer = r.string("auth.issuer").ok_or_else(|| {
        r.invalid(
            "auth.issuer",
            "required with auth.jwks_url: the iss the identity provider's tokens carry",
        )
    })?;
    let roles_claim = r.string("auth.roles_claim");
    let mut role_map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(list) = r.string("auth.role_map") {
        if roles_claim.is_none() {
            return Err(r.invalid("auth.role_map", "needs auth.roles_claim"));
        }
        for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((value, role)) = pair.rsplit_once('=') else {
                return Err(r.invalid(
                    "auth.role_map",
                    format!("expected value=role, found {pair:?}"),
                ));
            };
            let (value, role) = (value.trim(), role.trim());
            if value.is_empty() || role.is_empty() || role.chars().any(char::is_whitespace) {
                return Err(r.invalid(
                    "auth.role_map",
                    format!("expected value=role with a role without spaces, found {pair:?}"),
                ));
            }
            let roles = role_map.entry(value.to_string()).or_default();
            if !roles.iter().any(|known| known == role) {
                roles.push(role.to_string());
            }
        }
    }
    Ok(Some(IdentityProviderConfig {
        jwks_url,
        issuer,
        roles_claim,
        role_map,
    }))
}
