//! `shadowctl context add|use|list|rm`: named clusters, kubectl-style, so a person who works
//! against several deployments does not retype endpoints, CAs and tokens.
//!
//! Contexts live in `contexts.toml` in the user's configuration directory
//! (`$SHADOWSYNC_CONFIG_DIR`, else `$XDG_CONFIG_HOME/shadowsync`, else
//! `~/.config/shadowsync`), written with mode 0600. A context holds no token itself: it names a
//! file that holds one, or a command that prints one (a company's login tool, an OIDC helper),
//! so a token never sits in the configuration.
//!
//! Precedence, for each of endpoint, CA, server name and token: the flag, then the environment
//! variable, then the context (`--context`, `SHADOWSYNC_CONTEXT`, or the current one), then the
//! embedded server's `.shadowsync/` directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::CliError;
use crate::client::ClientArgs;
use crate::output::{self, OutputFormat};

/// The file, inside the configuration directory.
const FILE: &str = "contexts.toml";

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ContextCommand {
    /// Add (or replace) a context, and make it current with --use.
    #[command(after_help = "\
Examples:
  shadowctl context add prod --endpoint https://shadowsync.example.com:443 --ca prod-ca.crt \\
    --token-command 'company-login token --audience shadowsync' --use
  shadowctl context add staging --endpoint https://127.0.0.1:50051 --ca ca.crt \\
    --tls-server-name shadowsync-task.shadowsync.svc --token-file ~/.shadowsync-staging.token")]
    Add(AddArgs),
    /// Make a context the current one.
    #[command(after_help = "\
Example:
  shadowctl context use staging")]
    Use {
        /// The context's name.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List contexts; the current one is marked with `*`.
    List,
    /// Remove a context.
    #[command(after_help = "\
Example:
  shadowctl context rm staging")]
    Rm {
        /// The context's name.
        #[arg(value_name = "NAME")]
        name: String,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    /// The context's name. Its endpoint, CA and server name are the global --endpoint (required),
    /// --ca and --tls-server-name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// A file holding the bearer token (read at each call, so a refreshed file is picked up).
    #[arg(long, value_name = "FILE", conflicts_with = "token_command")]
    pub token_file: Option<PathBuf>,
    /// A command that prints the bearer token on stdout (run with `sh -c` at each call).
    #[arg(long, value_name = "CMD")]
    pub token_command: Option<String>,
    /// Also make it the current context.
    #[arg(long = "use")]
    pub make_current: bool,
}

/// One cluster: where it is and how to get a token for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_command: Option<String>,
}

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contexts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// The configuration directory: `$SHADOWSYNC_CONFIG_DIR`, `$XDG_CONFIG_HOME/shadowsync` or
/// `~/.config/shadowsync`; `None` when none can be found (no HOME).
pub fn config_dir() -> Option<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = env("SHADOWSYNC_CONFIG_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = env("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(dir).join("shadowsync"));
    }
    env("HOME").map(|home| PathBuf::from(home).join(".config").join("shadowsync"))
}

impl Contexts {
    /// The contexts in `dir`; none when the file does not exist.
    ///
    /// Fails when the file exists but cannot be read or parsed.
    pub fn load(dir: &Path) -> Result<Self, CliError> {
        let path = dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| CliError::Usage(format!("{}: {e}", path.display()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(CliError::Failure(format!(
                "cannot read {}: {error}",
                path.display()
            ))),
        }
    }

    /// Writes the file readable by its owner only (it names token files and commands), through
    /// a temporary file so a crash never leaves half of it.
    pub fn save(&self, dir: &Path) -> Result<(), CliError> {
        let failed = |path: &Path, e: std::io::Error| {
            CliError::Failure(format!("cannot write {}: {e}", path.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| failed(dir, e))?;
        let text = toml::to_string(self)
            .map_err(|e| CliError::Failure(format!("cannot encode the contexts: {e}")))?;
        let path = dir.join(FILE);
        let part = dir.join(format!("{FILE}.part"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&part)
            .map_err(|e| failed(&part, e))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(|e| failed(&part, e))?;
        std::fs::rename(&part, &path).map_err(|e| failed(&path, e))
    }

    /// The context `name` names, or the current one when `name` is `None`; `None` when there
    /// is no current context.
    ///
    /// Fails when `name` names no context (with the closest names).
    pub fn select(&self, name: Option<&str>) -> Result<Option<(&str, &Context)>, CliError> {
        let Some(name) = name.or(self.current.as_deref()) else {
            return Ok(None);
        };
        match self.contexts.get_key_value(name) {
            Some((name, context)) => Ok(Some((name.as_str(), context))),
            None => Err(self.unknown(name)),
        }
    }

    fn unknown(&self, name: &str) -> CliError {
        let close = crate::suggest::closest(name, self.contexts.keys().map(String::as_str));
        CliError::NotFound(format!(
            "no context named {name:?}{}",
            crate::suggest::hint(&close)
        ))
    }
}

impl Context {
    /// The token the context leads to: the token file's contents, or what the token command
    /// prints. `None` when the context names neither.
    ///
    /// Fails when the file cannot be read or the command fails or prints nothing; the token
    /// itself never appears in an error.
    pub fn token(&self, name: &str) -> Result<Option<String>, CliError> {
        if let Some(path) = &self.token_file {
            let token = std::fs::read_to_string(path).map_err(|e| {
                CliError::Denied(format!(
                    "context {name}: cannot read the token file {}: {e}",
                    path.display()
                ))
            })?;
            return non_empty(token, name).map(Some);
        }
        if let Some(command) = &self.token_command {
            let output = std::process::Command::new("sh")
                .args(["-c", command])
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| {
                    CliError::Denied(format!("context {name}: cannot run the token command: {e}"))
                })?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let last = stderr.lines().last().unwrap_or("").trim();
                return Err(CliError::Denied(format!(
                    "context {name}: the token command failed ({}){}",
                    output.status,
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!(": {last}")
                    }
                )));
            }
            return non_empty(String::from_utf8_lossy(&output.stdout).into_owned(), name).map(Some);
        }
        Ok(None)
    }
}

fn non_empty(token: String, name: &str) -> Result<String, CliError> {
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(CliError::Denied(format!(
            "context {name}: the token source gave an empty token"
        )));
    }
    Ok(token)
}

fn require_dir() -> Result<PathBuf, CliError> {
    config_dir().ok_or_else(|| {
        CliError::Usage(
            "no configuration directory: set SHADOWSYNC_CONFIG_DIR, XDG_CONFIG_HOME or HOME".into(),
        )
    })
}

pub fn run(
    client: &ClientArgs,
    command: &ContextCommand,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let dir = require_dir()?;
    let mut contexts = Contexts::load(&dir)?;
    match command {
        ContextCommand::Add(args) => {
            // A relative CA or token file would break as soon as the command runs elsewhere.
            let absolute = |path: &PathBuf| {
                std::path::absolute(path)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
            };
            let endpoint = client
                .endpoint
                .as_deref()
                .map(str::trim)
                .filter(|endpoint| !endpoint.is_empty())
                .ok_or_else(|| {
                    CliError::Usage("--endpoint: required: the context's server URL".into())
                })?;
            let context = Context {
                endpoint: endpoint.to_string(),
                ca: client.ca.as_ref().map(absolute).transpose()?,
                tls_server_name: client.tls_server_name.clone(),
                token_file: args.token_file.as_ref().map(absolute).transpose()?,
                token_command: args.token_command.clone(),
            };
            contexts.contexts.insert(args.name.clone(), context);
            if args.make_current || contexts.current.is_none() {
                contexts.current = Some(args.name.clone());
            }
            contexts.save(&dir)?;
        }
        ContextCommand::Use { name } => {
            if !contexts.contexts.contains_key(name) {
                return Err(contexts.unknown(name));
            }
            contexts.current = Some(name.clone());
            contexts.save(&dir)?;
        }
        ContextCommand::Rm { name } => {
            if contexts.contexts.remove(name).is_none() {
                return Err(contexts.unknown(name));
            }
            if contexts.current.as_deref() == Some(name.as_str()) {
                contexts.current = None;
            }
            contexts.save(&dir)?;
        }
        ContextCommand::List => {}
    }
    print(out, format, &contexts)?;
    Ok(ExitCode::SUCCESS)
}

/// The contexts as a table (current marked `*`), or as JSON (the file's structure).
fn print(out: &mut dyn Write, format: OutputFormat, contexts: &Contexts) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        let value = serde_json::to_value(contexts)
            .map_err(|e| CliError::Failure(format!("cannot encode the contexts: {e}")))?;
        return output::json(out, &value);
    }
    let rows: Vec<Vec<String>> = contexts
        .contexts
        .iter()
        .map(|(name, context)| {
            let current = contexts.current.as_deref() == Some(name.as_str());
            let token = match (&context.token_file, &context.token_command) {
                (Some(file), _) => format!("file {}", file.display()),
                (None, Some(command)) => format!("command {command}"),
                (None, None) => String::new(),
            };
            vec![
                if current { "*" } else { "" }.to_string(),
                name.clone(),
                context.endpoint.clone(),
                token,
            ]
        })
        .collect();
    output::table(out, &["CURRENT", "NAME", "ENDPOINT", "TOKEN"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(endpoint: &str) -> Context {
        Context {
            endpoint: endpoint.into(),
            ..Context::default()
        }
    }

    #[test]
    fn saved_privately_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("shadowsync");
        let mut contexts = Contexts::default();
        contexts
            .contexts
            .insert("prod".into(), context("https://prod:443"));
        contexts.current = Some("prod".into());
        contexts.save(&config).expect("save");
        let mode = std::fs::metadata(config.join(FILE))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Contexts::load(&config).expect("load"), contexts);
        assert_eq!(
            Contexts::load(&dir.path().join("absent")).expect("load"),
            Contexts::default()
        );
    }

    #[test]
    fn selection_by_name_or_current_and_a_misspelt_name() {
        let mut contexts = Contexts::default();
        contexts.contexts.insert("prod".into(), context("a"));
        contexts.contexts.insert("staging".into(), context("b"));
        assert!(contexts.select(None).expect("none").is_none());
        contexts.current = Some("prod".into());
        assert_eq!(
            contexts.select(None).expect("current").map(|c| c.0),
            Some("prod")
        );
        assert_eq!(
            contexts
                .select(Some("staging"))
                .expect("named")
                .map(|c| c.0),
            Some("staging")
        );
        let error = contexts.select(Some("stagign")).expect_err("misspelt");
        assert!(
            error.to_string().contains("did you mean `staging`?"),
            "{error}"
        );
    }

    #[test]
    fn tokens_from_a_file_or_a_command_never_in_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "secret-token\n").expect("write");
        let from_file = Context {
            token_file: Some(file),
            ..context("e")
        };
        assert_eq!(
            from_file.token("c").expect("token").as_deref(),
            Some("secret-token")
        );
        let from_command = Context {
            token_command: Some("echo minted-token".into()),
            ..context("e")
        };
        assert_eq!(
            from_command.token("c").expect("token").as_deref(),
            Some("minted-token")
        );
        let failing = Context {
            token_command: Some("echo leaked-token; echo 'login expired' >&2; exit 3".into()),
            ..context("e")
        };
        let error = failing.token("c").expect_err("fails").to_string();
        assert!(error.contains("login expired"), "{error}");
        assert!(!error.contains("leaked-token"), "{error}");
        assert_eq!(context("e").token("c").expect("none"), None);
    }
}
