//! The embedded mode's data directory.
//!
//! `shadowsync serve all` with no configuration keeps everything under one directory
//! (`./.shadowsync/` by default): the HS256 signing secret, generated once, and a bootstrap admin
//! token, minted at every start, both readable by the owner only. `shadowctl` finds the token
//! there, so a newcomer needs no set-up.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use rand::RngCore as _;
use shadowsync_common::auth::{ADMIN_ROLE, Identity, TokenIssuer};
use shadowsync_common::config::Config;
use shadowsync_common::secret::Secret;

use crate::ServerError;

/// File holding the HS256 signing secret.
pub const SECRET_FILE: &str = "jwt.secret";
/// File holding the AES-256-GCM key for connection passwords at rest (base64); generated once,
/// since losing it makes the stored passwords unreadable.
pub const ENCRYPTION_KEY_FILE: &str = "encryption.key";
/// File holding the bootstrap admin token that `shadowctl` picks up.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// File a running server holds an exclusive lock on, so a second server on the same directory
/// stops before it rewrites the token or the endpoint the first one's clients use.
pub const LOCK_FILE: &str = "server.lock";
/// Subject of the bootstrap administrator.
pub const ADMIN_SUBJECT: &str = "admin";
/// How long the bootstrap token stays valid; it is re-minted at every start.
const ADMIN_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// What [`prepare`] wrote, and the data directory's lock: keep it for as long as the server
/// runs (dropping it lets another server take the directory).
#[derive(Debug)]
pub struct EmbeddedFiles {
    pub admin_token: PathBuf,
    _lock: std::fs::File,
}

/// Creates the data directory, loads or generates the signing secret into `config`, and writes
/// a fresh admin token.
///
/// Fails when the directory or its files cannot be created or read.
pub fn prepare(config: &mut Config) -> Result<EmbeddedFiles, ServerError> {
    let dir = config.data_dir.clone();
    let io_error = |path: &Path, error: std::io::Error| ServerError::DataDir {
        path: path.display().to_string(),
        reason: error.to_string(),
    };
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io_error(&dir, e))?;
    let lock = lock_data_dir(&dir)?;
    // Nobody runs `shadowsync migrate` for a single process on local files.
    config.database_auto_migrate = true;

    if config.auth.hs256_secret.is_none() {
        let path = dir.join(SECRET_FILE);
        let secret = match std::fs::read_to_string(&path) {
            Ok(existing) if existing.trim().len() >= 32 => existing.trim().to_string(),
            Ok(_) | Err(_) => {
                let mut bytes = [0_u8; 48];
                rand::rng().fill_bytes(&mut bytes);
                let generated = base64::engine::general_purpose::STANDARD.encode(bytes);
                write_private(&path, &generated).map_err(|e| io_error(&path, e))?;
                generated
            }
        };
        config.auth.hs256_secret = Some(Secret::new(secret));
    }

    if config.encryption_key.is_none() {
        let path = dir.join(ENCRYPTION_KEY_FILE);
        let existing = std::fs::read_to_string(&path).ok().and_then(|text| {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()
                .filter(|key| key.len() == 32)
        });
        let key = match existing {
            Some(key) => key,
            None => {
                let mut key = vec![0_u8; 32];
                rand::rng().fill_bytes(&mut key);
                let encoded = base64::engine::general_purpose::STANDARD.encode(&key);
                write_private(&path, &encoded).map_err(|e| io_error(&path, e))?;
                key
            }
        };
        config.encryption_key = Some(Secret::new(key));
    }

    let admin_token = dir.join(ADMIN_TOKEN_FILE);
    if let Some(secret) = &config.auth.hs256_secret {
        let issuer = TokenIssuer::hs256(secret, &config.auth.audience);
        let token = issuer.issue(
            &Identity::user(ADMIN_SUBJECT, &[ADMIN_ROLE]),
            ADMIN_TOKEN_TTL,
        );
        write_private(&admin_token, token.expose()).map_err(|e| io_error(&admin_token, e))?;
    }
    Ok(EmbeddedFiles {
        admin_token,
        _lock: lock,
    })
}

/// Takes the data directory's lock, before anything in it is written. Fails when another server
/// holds it (the lock ends with that process, however it ends).
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, ServerError> {
    let path = dir.join(LOCK_FILE);
    let failed = |reason: String| ServerError::DataDir {
        path: dir.display().to_string(),
        reason,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| failed(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {
            // The holder's PID, for the message a second server gives.
            let mut holder = &file;
            holder
                .set_len(0)
                .and_then(|()| holder.write_all(std::process::id().to_string().as_bytes()))
                .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = std::fs::read_to_string(&path)
                .ok()
                .map(|text| text.trim().to_string())
                .filter(|pid| !pid.is_empty())
                .map_or_else(String::new, |pid| format!(" (PID {pid})"));
            let endpoint = std::fs::read_to_string(dir.join(ENDPOINT_FILE))
                .ok()
                .map(|text| text.trim().to_string())
                .filter(|endpoint| !endpoint.is_empty())
                .map_or_else(String::new, |endpoint| format!(", serving {endpoint}"));
            Err(failed(format!(
                "another shadowsync server{pid} is using this data directory{endpoint}; \
                 use that one (shadowctl finds it here), stop it, or give this one another \
                 --data-dir"
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(failed(format!("cannot lock {}: {e}", path.display())))
        }
    }
}

/// File holding the embedded server's endpoint (`http://127.0.0.1:PORT`), which `shadowctl`
/// uses when no `--endpoint` is given; written after binding, so port 0 works.
pub const ENDPOINT_FILE: &str = "endpoint";

/// Records where the embedded server listens.
///
/// Fails when the file cannot be written.
pub fn write_endpoint(
    data_dir: &Path,
    address: std::net::SocketAddr,
    tls: bool,
) -> Result<(), ServerError> {
    let path = data_dir.join(ENDPOINT_FILE);
    let scheme = if tls { "https" } else { "http" };
    write_private(&path, &format!("{scheme}://{address}")).map_err(|e| ServerError::DataDir {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Writes `contents` to a file only its owner can read, replacing any earlier file.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies only at creation; an older file may have looser permissions.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowsync_common::auth::Authenticator;
    use shadowsync_common::config::ConfigLoader;

    #[test]
    fn generates_a_secret_once_and_a_private_admin_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let load = || {
            ConfigLoader::new()
                .flag("data_dir", Some(data_dir.display().to_string()))
                .load()
                .expect("config")
        };
        let mut config = load();
        let files = prepare(&mut config).expect("prepare");
        let first_secret = config.auth.hs256_secret.clone().expect("secret");

        let mode = std::fs::metadata(&files.admin_token)
            .expect("token")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(data_dir.join(SECRET_FILE))
            .expect("secret")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let token = std::fs::read_to_string(&files.admin_token).expect("read");
        let authenticator = Authenticator::from_config(&config.auth).expect("auth");
        let identity = futures::executor::block_on(authenticator.verify(token.trim()))
            .expect("token verifies");
        assert!(identity.is_admin());

        let mut again = load();
        drop(files);
        prepare(&mut again).expect("second start");
        assert_eq!(
            again.auth.hs256_secret,
            Some(first_secret),
            "the secret survives restarts"
        );
    }

    #[test]
    fn a_second_server_on_the_same_directory_stops_before_writing_anything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let load = || {
            ConfigLoader::new()
                .flag("data_dir", Some(data_dir.display().to_string()))
                .load()
                .expect("config")
        };
        let running = prepare(&mut load()).expect("first server");
        let token = std::fs::read_to_string(&running.admin_token).expect("token");

        write_endpoint(
            &data_dir,
            "127.0.0.1:50999".parse().expect("address"),
            false,
        )
        .expect("endpoint");
        let error = prepare(&mut load()).expect_err("the directory is in use");
        let message = error.to_string();
        assert!(message.contains("another shadowsync server"), "{message}");
        assert!(
            message.contains(&format!("PID {}", std::process::id())),
            "names the running server: {message}"
        );
        assert!(
            message.contains("http://127.0.0.1:50999"),
            "names its endpoint: {message}"
        );
        assert_eq!(
            std::fs::read_to_string(data_dir.join(ENDPOINT_FILE)).expect("endpoint"),
            "http://127.0.0.1:50999\n",
            "the running server's endpoint is untouched"
        );
        assert_eq!(
            std::fs::read_to_string(&running.admin_token).expect("token"),
            token,
            "the running server's token is untouched"
        );

        // Once the first server is gone, the directory is free again.
        drop(running);
        prepare(&mut load()).expect("a later start");
    }
}
