//! `shadowctl token --user U --roles r1,r2`: mints a token for another user from the embedded
//! server's signing secret, so one person can play requester and approver on a laptop.
//!
//! It works only where the secret file is readable (the embedded mode's data directory): a
//! production deployment verifies RS256 tokens and keeps no secret a client could read.
//!
//! It mints people only: a `svc:` subject (in any case) is refused, since the services' own
//! identities are minted by the services themselves (or `shadowsync credentials generate`), and
//! a person's token that looks like a service's only confuses whoever reads an audit trail. The
//! lifetime is capped at [`MAX_TTL`] so a forgotten token does not stay valid for ever.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use shadowsync_common::auth::{Identity, TokenIssuer};
use shadowsync_common::secret::Secret;

use crate::CliError;
use crate::client::ClientArgs;
use crate::output::{self, OutputFormat};
use crate::when::parse_duration;

/// The longest lifetime `token` mints: 30 days.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Flags of `shadowctl token`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Prints the token alone on stdout; with --output json, {\"token\": \"...\"}.

Examples:
  export SHADOWSYNC_TOKEN=$(shadowctl token --user bob --roles admin)
  shadowctl token --user carol --roles dba,approver --ttl 8h")]
pub struct TokenArgs {
    /// The token's subject (user id).
    #[arg(long)]
    pub user: String,
    /// Comma-separated roles, e.g. admin,dba.
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Lifetime, e.g. 30m, 8h, 7d; at most 30d.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub ttl: Duration,
}

pub fn run(
    client: &ClientArgs,
    args: &TokenArgs,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let user = args.user.trim();
    if user.is_empty() {
        return Err(CliError::Usage("--user: must not be empty".into()));
    }
    // Checked before the secret is read, so a bad request fails the same way everywhere. This
    // refusal is deliberately wider than "is a service" (any case, any name after `svc:`): no
    // person needs a subject that looks like a service's.
    if user.to_ascii_lowercase().starts_with("svc:") {
        return Err(CliError::Usage(format!(
            "--user: {user:?} is a service identity (svc:*); `token` mints tokens for people only"
        )));
    }
    if args.ttl > MAX_TTL {
        return Err(CliError::Usage(
            "--ttl: at most 30d (30 days); mint a new token when it expires".into(),
        ));
    }
    if args.ttl.is_zero() {
        return Err(CliError::Usage("--ttl: must be longer than 0s".into()));
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
    match format {
        OutputFormat::Json => output::json(out, &serde_json::json!({ "token": token.expose() }))?,
        OutputFormat::Table => output::write_all(out, format!("{}\n", token.expose()).as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
