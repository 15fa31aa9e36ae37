//! `shadowsync credentials`: what a cluster needs to start, and a person's first token.
//!
//! - `generate --out DIR` writes, for `kubectl create secret generic --from-file`:
//!   [`SIGNING_KEY_FILE`] (the RS256 private key, PKCS#8 PEM, mode 0600: it signs the tokens
//!   below and no service needs it), [`JWKS_FILE`] (its public key as a JWK Set, for
//!   `auth.jwks_file`), one token per service identity ([`service_token_file`], for
//!   `auth.service_token`) and [`ENCRYPTION_KEY_FILE`] (for `encryption.key`). With
//!   `--rotate-from OLD` the JWK Set also holds OLD's keys and the encryption key is OLD's, so
//!   the new key can be published before anything uses it and stored passwords stay readable.
//! - `token --key FILE --subject S --role R` prints a person's RS256 token signed with that key:
//!   how a platform team without an identity provider mints its first administrator.
//! - `jwks --key FILE` prints the JWK Set of that key alone: the last step of a rotation.
//!
//! RSA keys are generated with the `rsa` crate (ring cannot generate them); tokens are signed by
//! jsonwebtoken on ring. The `rsa` crate's private-key operations are not constant-time
//! (RUSTSEC-2023-0071), which is why it only generates keys here and never signs.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use rand::RngCore as _;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use shadowsync_common::auth::jwks::{JwkSetDocument, RsaJwk};
use shadowsync_common::auth::{Identity, ServiceIdentity, TokenIssuer};
use shadowsync_common::secret::Secret;

/// The RS256 private key.
pub const SIGNING_KEY_FILE: &str = "jwt-signing-key.pem";
/// The public keys as a JWK Set.
pub const JWKS_FILE: &str = "jwks.json";
/// The base64 32-byte key sealing connection passwords.
pub const ENCRYPTION_KEY_FILE: &str = "encryption.key";
/// The longest lifetime `token` mints, as `shadowctl token`: 30 days.
pub const MAX_PERSON_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// `svc-task.token` and the like: the token file of a service identity.
pub fn service_token_file(service: ServiceIdentity) -> String {
    let name = service.subject().trim_start_matches("svc:");
    format!("svc-{name}.token")
}

/// Why a credentials command failed. Messages name files and flags, never key material.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path} exists; pass --force to overwrite")]
    Exists { path: PathBuf },
    #[error("{0}")]
    Key(String),
}

fn file_error(path: &Path, error: impl std::fmt::Display) -> CredentialsError {
    CredentialsError::File {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

/// `shadowsync credentials …`.
#[derive(Debug, clap::Subcommand)]
pub enum CredentialsCommand {
    /// Create a cluster's RS256 signing key, its JWK Set, a token per service identity and the
    /// encryption key, as files for `kubectl create secret generic --from-file`.
    Generate(GenerateArgs),
    /// Print a person's RS256 token signed with a key `generate` made.
    Token(TokenArgs),
    /// Print the JWK Set of a signing key alone (the last step of a key rotation).
    Jwks(JwksArgs),
}

/// Flags of `credentials generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Directory to write into (created with mode 0700).
    #[arg(long)]
    pub out: PathBuf,
    /// A previous `generate` directory: its keys stay in the new JWK Set and its encryption key
    /// is kept (key rotation).
    #[arg(long, value_name = "OLD_DIR")]
    pub rotate_from: Option<PathBuf>,
    /// The `aud` of the service tokens (the services' `auth.audience`).
    #[arg(long, default_value = "shadowsync")]
    pub audience: String,
    /// The `iss` of the service tokens.
    #[arg(long, default_value = "shadowsync")]
    pub issuer: String,
    /// Lifetime of the service tokens, e.g. 90d, 365d.
    #[arg(long, default_value = "365d", value_parser = parse_duration)]
    pub ttl: Duration,
    /// RSA key size in bits.
    #[arg(long, default_value = "3072", value_parser = parse_bits)]
    pub bits: usize,
    /// Overwrite files that exist.
    #[arg(long)]
    pub force: bool,
}

/// Flags of `credentials token`.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The signing key (`jwt-signing-key.pem` from `generate`).
    #[arg(long)]
    pub key: PathBuf,
    /// The person's id; never a service identity (svc:*).
    #[arg(long)]
    pub subject: String,
    /// A role, e.g. admin (repeatable).
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// Display name; the subject when absent.
    #[arg(long)]
    pub name: Option<String>,
    /// Lifetime, e.g. 30m, 8h, 7d; at most 30d.
    #[arg(long, default_value = "8h", value_parser = parse_duration)]
    pub ttl: Duration,
    #[arg(long, default_value = "shadowsync")]
    pub audience: String,
    #[arg(long, default_value = "shadowsync")]
    pub issuer: String,
}

/// Flags of `credentials jwks`.
#[derive(Debug, Clone, clap::Args)]
pub struct JwksArgs {
    /// The signing key whose public half to publish.
    #[arg(long)]
    pub key: PathBuf,
}

/// Runs a credentials command, writing what it prints to `out`.
///
/// Fails on a usage mistake, an unreadable or existing file, or a key that is not RSA.
pub fn run(
    command: &CredentialsCommand,
    out: &mut dyn std::io::Write,
) -> Result<(), CredentialsError> {
    match command {
        CredentialsCommand::Generate(args) => {
            let written = generate(args)?;
            for path in written {
                writeln!(out, "wrote {}", path.display())
                    .map_err(|e| file_error(Path::new("stdout"), e))?;
            }
            Ok(())
        }
        CredentialsCommand::Token(args) => {
            let token = person_token(args)?;
            writeln!(out, "{}", token.expose()).map_err(|e| file_error(Path::new("stdout"), e))
        }
        CredentialsCommand::Jwks(args) => {
            let key = SigningKey::read(&args.key)?;
            let mut set = JwkSetDocument::default();
            set.add(&key.jwk);
            out.write_all(set.to_json().as_bytes())
                .map_err(|e| file_error(Path::new("stdout"), e))
        }
    }
}

/// An RS256 private key and its public JWK.
struct SigningKey {
    pem: Secret<Vec<u8>>,
    jwk: RsaJwk,
}

impl SigningKey {
    fn generate(bits: usize) -> Result<Self, CredentialsError> {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
            .map_err(|e| CredentialsError::Key(format!("cannot generate an RSA key: {e}")))?;
        let pem = private
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| CredentialsError::Key(format!("cannot encode the key: {e}")))?;
        Ok(Self {
            jwk: RsaJwk::rs256(&private.n().to_bytes_be(), &private.e().to_bytes_be()),
            pem: Secret::new(pem.as_bytes().to_vec()),
        })
    }

    fn read(path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(&text)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(&text))
            .map_err(|_| file_error(path, "not an RSA private key in PEM (PKCS#8 or PKCS#1)"))?;
        Ok(Self {
            jwk: RsaJwk::rs256(&private.n().to_bytes_be(), &private.e().to_bytes_be()),
            pem: Secret::new(text.into_bytes()),
        })
    }

    fn issuer(&self, audience: &str, issuer: &str) -> Result<TokenIssuer, CredentialsError> {
        TokenIssuer::rs256(&self.pem, &self.jwk.kid, audience, issuer)
            .map_err(|e| CredentialsError::Key(e.to_string()))
    }
}

/// One file to write: its name, bytes and mode.
struct Output {
    name: String,
    contents: Secret<Vec<u8>>,
    mode: u32,
}

/// `credentials generate`: returns the files written.
pub fn generate(args: &GenerateArgs) -> Result<Vec<PathBuf>, CredentialsError> {
    if args.ttl.is_zero() {
        return Err(CredentialsError::Usage(
            "--ttl: must be longer than 0s".into(),
        ));
    }
    // Everything that can be refused is refused before a key is made or a file written.
    let (mut jwks, encryption_key) = match &args.rotate_from {
        Some(old) => previous(old)?,
        None => (JwkSetDocument::default(), None),
    };
    let mut names = vec![SIGNING_KEY_FILE.to_string(), JWKS_FILE.to_string()];
    names.extend(ServiceIdentity::ALL.into_iter().map(service_token_file));
    names.push(ENCRYPTION_KEY_FILE.to_string());
    if !args.force {
        for name in &names {
            let path = args.out.join(name);
            if path.exists() {
                return Err(CredentialsError::Exists { path });
            }
        }
    }

    let key = SigningKey::generate(args.bits)?;
    jwks.add(&key.jwk);
    let issuer = key.issuer(&args.audience, &args.issuer)?;
    let mut outputs = vec![
        Output {
            name: SIGNING_KEY_FILE.into(),
            contents: key.pem.clone(),
            mode: 0o600,
        },
        Output {
            name: JWKS_FILE.into(),
            contents: Secret::new(jwks.to_json().into_bytes()),
            mode: 0o644,
        },
    ];
    for service in ServiceIdentity::ALL {
        let token = issuer
            .try_issue(&Identity::service(service), args.ttl)
            .map_err(|e| CredentialsError::Key(e.to_string()))?;
        outputs.push(Output {
            name: service_token_file(service),
            contents: Secret::new(token.expose().as_bytes().to_vec()),
            mode: 0o600,
        });
    }
    let encryption_key = encryption_key.unwrap_or_else(|| {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Secret::new(base64::engine::general_purpose::STANDARD.encode(bytes))
    });
    outputs.push(Output {
        name: ENCRYPTION_KEY_FILE.into(),
        contents: Secret::new(encryption_key.expose().as_bytes().to_vec()),
        mode: 0o600,
    });

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.out)
        .map_err(|e| file_error(&args.out, e))?;
    let mut written = Vec::new();
    for output in outputs {
        written.push(write_file(&args.out, &output, args.force)?);
    }
    Ok(written)
}

/// The JWK Set and encryption key of a previous `generate` directory.
fn previous(old: &Path) -> Result<(JwkSetDocument, Option<Secret<String>>), CredentialsError> {
    let jwks_path = old.join(JWKS_FILE);
    let bytes = std::fs::read(&jwks_path).map_err(|e| file_error(&jwks_path, e))?;
    let jwks = JwkSetDocument::parse(&bytes).map_err(|e| file_error(&jwks_path, e))?;
    let key_path = old.join(ENCRYPTION_KEY_FILE);
    // Stored connection passwords are sealed with this key: a rotation that replaced it would
    // make them unreadable, so there is no rotation without it.
    let encoded = std::fs::read_to_string(&key_path).map_err(|e| {
        file_error(
            &key_path,
            format!("{e} (the encryption key sealing stored passwords must carry over)"),
        )
    })?;
    let valid = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .is_ok_and(|bytes| bytes.len() == 32);
    if !valid {
        return Err(file_error(&key_path, "not base64 of 32 bytes"));
    }
    Ok((jwks, Some(Secret::new(encoded.trim().to_string()))))
}

/// Writes `output` into `dir` through a temporary file renamed into place, so a reader never
/// sees half a key and the mode is right from the first byte.
fn write_file(dir: &Path, output: &Output, force: bool) -> Result<PathBuf, CredentialsError> {
    let path = dir.join(&output.name);
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| file_error(dir, e))?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(output.mode))
        .map_err(|e| file_error(&path, e))?;
    file.write_all(output.contents.expose())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| file_error(&path, e))?;
    let persisted = if force {
        file.persist(&path).map(|_| ())
    } else {
        file.persist_noclobber(&path).map(|_| ())
    };
    persisted.map_err(|e| match e.error.kind() {
        std::io::ErrorKind::AlreadyExists => CredentialsError::Exists { path: path.clone() },
        _ => file_error(&path, e.error),
    })?;
    Ok(path)
}

/// `credentials token`: a person's token, checked as `shadowctl token` checks its own.
pub fn person_token(args: &TokenArgs) -> Result<Secret<String>, CredentialsError> {
    let subject = args.subject.trim();
    if subject.is_empty() {
        return Err(CredentialsError::Usage(
            "--subject: must not be empty".into(),
        ));
    }
    // Wider than "is a service" (any case, any name after `svc:`): service tokens come from
    // `generate` only, and no person needs a subject that reads like a service's.
    if subject
        .get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("svc:"))
    {
        return Err(CredentialsError::Usage(format!(
            "--subject: {subject:?} is a service identity (svc:*); `credentials token` mints \
             tokens for people only (service tokens come from `credentials generate`)"
        )));
    }
    if args.ttl > MAX_PERSON_TTL {
        return Err(CredentialsError::Usage(
            "--ttl: at most 30d (30 days); mint a new token when it expires".into(),
        ));
    }
    if args.ttl.is_zero() {
        return Err(CredentialsError::Usage(
            "--ttl: must be longer than 0s".into(),
        ));
    }
    let key = SigningKey::read(&args.key)?;
    let roles: Vec<&str> = args
        .roles
        .iter()
        .map(|role| role.trim())
        .filter(|role| !role.is_empty())
        .collect();
    let mut identity = Identity::user(subject, &roles);
    if let Some(name) = &args.name {
        identity.name = name.clone();
    }
    key.issuer(&args.audience, &args.issuer)?
        .try_issue(&identity, args.ttl)
        .map_err(|e| CredentialsError::Key(e.to_string()))
}

fn parse_bits(text: &str) -> Result<usize, String> {
    match text.trim() {
        "2048" => Ok(2048),
        "3072" => Ok(3072),
        "4096" => Ok(4096),
        _ => Err("expected 2048, 3072 or 4096".into()),
    }
}

/// A lifetime such as `90s`, `30m`, `8h`, `7d` or `52w`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if seconds_per_unit > 0 => n
            .checked_mul(seconds_per_unit)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text} is too long")),
        _ => Err(format!(
            "expected a duration such as 90s, 30m, 8h, 7d or 52w, found {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(
            parse_duration("365d"),
            Ok(Duration::from_secs(365 * 86_400))
        );
        assert_eq!(parse_duration(" 90s "), Ok(Duration::from_secs(90)));
        for bad in [
            "",
            "8",
            "h",
            "8x",
            "-1d",
            "1.5h",
            "8 h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn service_token_files_are_named_after_the_services() {
        let names: Vec<_> = ServiceIdentity::ALL
            .into_iter()
            .map(service_token_file)
            .collect();
        assert_eq!(
            names,
            [
                "svc-task.token",
                "svc-approval.token",
                "svc-analysis.token",
                "svc-executor.token"
            ]
        );
    }
}
