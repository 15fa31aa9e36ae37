//! Where the server is and who the caller is.
//!
//! The endpoint comes from `--endpoint`, `SHADOWSYNC_ENDPOINT`, the embedded server's
//! `endpoint` file in the data directory, or `http://127.0.0.1:50051`. The token comes from
//! `--token`, `SHADOWSYNC_TOKEN`, or the embedded mode's `admin.token`. Tokens never need to be
//! typed into argv: the environment variable and the file keep them out of process lists.

use std::path::PathBuf;

use shadowsync_common::grpc::Channel;
use shadowsync_common::grpc::{self, AuthenticatedChannel};
use shadowsync_common::secret::Secret;

use crate::CliError;

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
}

impl ClientArgs {
    /// The endpoint to call.
    pub fn endpoint(&self) -> String {
        if let Some(endpoint) = &self.endpoint {
            return endpoint.clone();
        }
        std::fs::read_to_string(self.data_dir.join("endpoint"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
    }

    /// The caller's token.
    ///
    /// Fails when none is given and the data directory holds no admin token.
    pub fn token(&self) -> Result<Secret<String>, CliError> {
        if let Some(token) = &self.token {
            return Ok(Secret::new(token.trim().to_string()));
        }
        let path = self.data_dir.join("admin.token");
        std::fs::read_to_string(&path)
            .map(|token| Secret::new(token.trim().to_string()))
            .map_err(|_| {
                CliError::Usage(format!(
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
        let endpoint = self.endpoint();
        let tls = if endpoint.starts_with("https://") {
            let path = self.ca.as_ref().ok_or_else(|| {
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
                domain: self.tls_server_name.clone(),
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
