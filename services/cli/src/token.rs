//! `shadowctl token --user U --roles r1,r2`: mints a token for another user from the embedded
//! server's signing secret, so one person can play requester and approver on a laptop.
//!
//! It works only where the secret file is readable (the embedded mode's data directory): a
//! production deployment verifies RS256 tokens and keeps no secret a client could read.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use shadowsync_common::auth::{Identity, TokenIssuer};
use shadowsync_common::secret::Secret;

use crate::CliError;
use crate::client::ClientArgs;
use crate::output;
use crate::when::parse_duration;

/// Flags of `shadowctl token`.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The token's subject (user id).
    #[arg(long)]
    pub user: String,
    /// Comma-separated roles, e.g. admin,dba.
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Lifetime, e.g. 30m, 8h, 7d.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub ttl: Duration,
}

pub fn run(
    client: &ClientArgs,
    args: &TokenArgs,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let user = args.user.trim();
    if user.is_empty() {
        return Err(CliError::Usage("--user: must not be empty".into()));
    }
    let path = client.data_dir.join("jwt.secret");
    let secret = std::fs::read_to_string(&path).map_err(|_| {
        CliError::Usage(format!(
            "cannot read {}: `token` works only next to an embedded server (shadowsync serve all)",
            path.display()
        ))
    })?;
    let roles: Vec<&str> = args
        .roles
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .collect();
    let token = TokenIssuer::hs256(&Secret::new(secret.trim().to_string()), "shadowsync")
        .issue(&Identity::user(user, &roles), args.ttl);
    output::write_all(out, format!("{}\n", token.expose()).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
