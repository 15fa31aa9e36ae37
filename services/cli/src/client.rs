//! Where the server is and who the caller is.
//!
//! The endpoint comes from `--endpoint`, `SHADOWSYNC_ENDPOINT`, the context (`--context`,
//! `SHADOWSYNC_CONTEXT` or the current one; see [`crate::context`]), the embedded server's
//! `endpoint` file in the data directory, or `http://127.0.0.1:50051`. The token comes from
//! `--token`, `SHADOWSYNC_TOKEN`, the context's token file or command, or the embedded mode's
//! `admin.token`; the CA and the server name from their flag, variable or the context. Tokens
//! never need to be typed into argv: the variable, files and commands keep them out of process
//! lists.

use std::path::PathBuf;

use shadowsync_common::grpc::Channel;
use shadowsync_common::grpc::{self, AuthenticatedChannel};
use shadowsync_common::secret::Secret;

use crate::CliError;
use crate::context::{self, Context, Contexts};

/// Default endpoint of `shadowsync serve all`.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:50051";

/// Connection flags shared by every command.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct ClientArgs {
    /// Server URL, e.g. http://127.0.0.1:50051.
    #[arg(long, global = true, env = "SHADOWSYNC_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Bearer token (prefer SHADOWSYNC_TOKEN, which stays out of process lists).
    #[arg(long, global = true, env = "SHADOWSYNC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data directory of an embedded server, for its endpoint and admin token.
    #[arg(
        long,
        global = true,
        env = "SHADOWSYNC_DATA_DIR",
        default_value = ".shadowsync"
    )]
    pub data_dir: PathBuf,
    /// CA bundle (PEM) that signed the server's certificate: needed for https:// endpoints.
    #[arg(long, global = true, env = "SHADOWSYNC_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Name the server's certificate must carry, when it differs from the endpoint's host (e.g.
    /// shadowsync-task.shadowsync.svc through `kubectl port-forward`).
    #[arg(
        long,
        global = true,
        env = "SHADOWSYNC_TLS_SERVER_NAME",
        value_name = "NAME"
    )]
    pub tls_server_name: Option<String>,
    /// Use this context instead of the current one (`shadowctl context list`).
    #[arg(long, global = true, env = "SHADOWSYNC_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,
}

/// The endpoint to call and where it came from (told when the server cannot be reached).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedEndpoint {
    /// With a scheme: `127.0.0.1:50051` is taken as `http://127.0.0.1:50051`.
    pub url: String,
    /// `--endpoint`, `SHADOWSYNC_ENDPOINT`, the endpoint file's path, or the default with the
    /// file that was looked for.
    pub origin: String,
}

impl ClientArgs {
    /// The endpoint to call: `--endpoint` > `SHADOWSYNC_ENDPOINT` > the data directory's
    /// `endpoint` file > the default.
    pub fn endpoint(&self) -> Result<ResolvedEndpoint, CliError> {
        let context = self.selected_context()?;
        Ok(self.endpoint_with(context.as_ref()))
    }

    /// The context in force: `--context`/`SHADOWSYNC_CONTEXT`, else the current one.
    ///
    /// Fails when the contexts file cannot be read or the named context does not exist.
    pub fn selected_context(&self) -> Result<Option<(String, Context)>, CliError> {
        let Some(dir) = context::config_dir() else {
            return match &self.context {
                Some(name) => Err(CliError::Usage(format!(
                    "--context {name}: no configuration directory (set HOME or \
                     SHADOWSYNC_CONFIG_DIR)"
                ))),
                None => Ok(None),
            };
        };
        let contexts = Contexts::load(&dir)?;
        Ok(contexts
            .select(self.context.as_deref())?
            .map(|(name, context)| (name.to_string(), context.clone())))
    }

    fn endpoint_with(&self, context: Option<&(String, Context)>) -> ResolvedEndpoint {
        if let Some(endpoint) = &self.endpoint {
            // clap fills the field from either; the environment wins the name only when the
            // flag is absent, i.e. when the values agree.
            let origin = match std::env::var("SHADOWSYNC_ENDPOINT") {
                Ok(value) if &value == endpoint && !flag_given("--endpoint") => {
                    "SHADOWSYNC_ENDPOINT"
                }
                _ => "--endpoint",
            };
            return ResolvedEndpoint {
                url: with_scheme(endpoint.trim()),
                origin: origin.to_string(),
            };
        }
        if let Some((name, context)) = context {
            return ResolvedEndpoint {
                url: with_scheme(context.endpoint.trim()),
                origin: format!("context {name}"),
            };
        }
        let file = self.data_dir.join("endpoint");
        match std::fs::read_to_string(&file)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
        {
            Some(endpoint) => ResolvedEndpoint {
                url: with_scheme(&endpoint),
                origin: file.display().to_string(),
            },
            None => ResolvedEndpoint {
                url: DEFAULT_ENDPOINT.to_string(),
                origin: format!(
                    "the default: no --endpoint, no SHADOWSYNC_ENDPOINT, no {}",
                    file.display()
                ),
            },
        }
    }

    /// The caller's token.
    ///
    /// Fails when none is given and the data directory holds no admin token.
    pub fn token(&self) -> Result<Secret<String>, CliError> {
        if let Some(token) = &self.token {
            return Ok(Secret::new(token.trim().to_string()));
        }
        if let Some((name, context)) = self.selected_context()?
            && let Some(token) = context.token(&name)?
        {
            return Ok(Secret::new(token));
        }
        let path = self.data_dir.join("admin.token");
        std::fs::read_to_string(&path)
            .map(|token| Secret::new(token.trim().to_string()))
            .map_err(|_| {
                CliError::Denied(format!(
                    "no token: pass --token, set SHADOWSYNC_TOKEN, or run next to an embedded server ({} not found)",
                    path.display()
                ))
            })
    }

    /// A channel without credentials (health needs none); TLS for https:// endpoints.
    ///
    /// Fails when the endpoint is malformed, or is https:// without `--ca` (the client trusts
    /// no system roots: a cluster's services carry certificates of its own CA).
    pub fn channel(&self) -> Result<Channel, CliError> {
        let context = self.selected_context()?;
        let endpoint = self.endpoint_with(context.as_ref()).url;
        let context = context.map(|(_, context)| context);
        let ca = self
            .ca
            .clone()
            .or_else(|| context.as_ref().and_then(|c| c.ca.clone()));
        let tls_server_name = self
            .tls_server_name
            .clone()
            .or_else(|| context.as_ref().and_then(|c| c.tls_server_name.clone()));
        let tls = if endpoint.starts_with("https://") {
            let path = ca.as_ref().ok_or_else(|| {
                CliError::Usage(format!(
                    "{endpoint} uses TLS: pass --ca (or set SHADOWSYNC_CA) with the CA that \
                     signed the server's certificate"
                ))
            })?;
            let ca = std::fs::read(path)
                .map_err(|e| CliError::Usage(format!("--ca {}: {e}", path.display())))?;
            Some(grpc::ClientTls {
                ca: Some(ca),
                identity: None,
                domain: tls_server_name,
            })
        } else {
            None
        };
        grpc::channel(&endpoint, tls.as_ref()).map_err(|e| CliError::Usage(e.to_string()))
    }

    /// A channel that presents the caller's token.
    pub fn authenticated(&self) -> Result<AuthenticatedChannel, CliError> {
        let token = self.token()?;
        Ok(grpc::authenticated(self.channel()?, &token)?)
    }
}

/// `host:port` without a scheme means plaintext gRPC, as `serve all` listens by default; any
/// scheme given is kept (and refused later if it is not http or https).
fn with_scheme(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// Whether the command line itself carries `flag` (as `--flag VALUE` or `--flag=VALUE`).
fn flag_given(flag: &str) -> bool {
    std::env::args().any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_without_a_scheme_is_plaintext_grpc() {
        assert_eq!(with_scheme("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(with_scheme("localhost:50051"), "http://localhost:50051");
        assert_eq!(with_scheme("https://task:8443"), "https://task:8443");
    }

    #[test]
    fn without_anything_the_default_names_the_file_it_looked_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = ClientArgs {
            endpoint: None,
            token: None,
            data_dir: dir.path().join(".shadowsync"),
            ca: None,
            tls_server_name: None,
            context: None,
        };
        let resolved = args.endpoint_with(None);
        assert_eq!(resolved.url, DEFAULT_ENDPOINT);
        assert!(
            resolved.origin.contains("the default"),
            "{}",
            resolved.origin
        );
        assert!(
            resolved.origin.contains(".shadowsync"),
            "{}",
            resolved.origin
        );

        std::fs::create_dir(dir.path().join(".shadowsync")).expect("mkdir");
        std::fs::write(dir.path().join(".shadowsync/endpoint"), "127.0.0.1:6000\n").expect("write");
        let resolved = args.endpoint_with(None);
        assert_eq!(resolved.url, "http://127.0.0.1:6000");

        let context = Context {
            endpoint: "shadowsync.example.com:443".into(),
            ..Context::default()
        };
        let resolved = args.endpoint_with(Some(&("prod".into(), context)));
        assert_eq!(resolved.url, "http://shadowsync.example.com:443");
        assert_eq!(resolved.origin, "context prod");
    }
}
