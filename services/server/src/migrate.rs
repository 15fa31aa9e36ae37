//! `shadowsync migrate`: brings the task and approval stores' schemas up to date and exits.
//!
//! In a cluster this runs once per release (the Helm chart's pre-install/pre-upgrade Job) while
//! the services run with `database.auto_migrate=false` and wait, NOT_SERVING, until the schema
//! they need is there. Replicas never race to migrate, and a migration that fails stops the
//! release instead of crash-looping every pod. The migrator holds PostgreSQL's advisory lock, so
//! two Jobs started at once apply each migration once.

use std::time::{Duration, Instant};

use shadowsync_common::config::Config;
use shadowsync_common::db::{Database, DbError, Migrations, SchemaVersion};

use crate::ServerError;

/// What `migrate` did to one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// `task` or `approval` (the PostgreSQL schema of that service's store).
    pub store: &'static str,
    pub before: SchemaVersion,
    pub after: SchemaVersion,
}

impl std::fmt::Display for Migrated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = |v: Option<i64>| v.map_or_else(|| "empty".to_string(), |v| v.to_string());
        if self.before.applied == self.after.applied {
            write!(
                f,
                "{} store: at migration {}, nothing to apply",
                self.store,
                version(self.after.applied)
            )
        } else {
            write!(
                f,
                "{} store: migrated from {} to {}",
                self.store,
                version(self.before.applied),
                version(self.after.applied)
            )
        }
    }
}

/// The stateful services' stores, in the order they are migrated.
const STORES: [(&str, Migrations); 2] = [
    ("task", shadowsync_task::MIGRATIONS),
    ("approval", shadowsync_approval::MIGRATIONS),
];

/// Migrates every store on `database.url`, waiting up to `wait` for the database to answer
/// (a Job often starts beside the database it migrates).
///
/// Fails when `database.url` is not set, the database does not answer within `wait`, or a
/// migration fails; stores migrated before the failure stay migrated (each migration is its
/// own transaction, recorded as it commits).
pub async fn migrate(config: &Config, wait: Duration) -> Result<Vec<Migrated>, ServerError> {
    let url = config.database_url.as_ref().ok_or_else(|| {
        ServerError::Dependency(
            "database.url is not set: `shadowsync migrate` migrates the stores the services \
             share (the embedded mode migrates its own files when it starts)"
                .into(),
        )
    })?;
    let deadline = Instant::now() + wait;
    let mut done = Vec::new();
    for (store, migrations) in STORES {
        let failed = |e: DbError| ServerError::Dependency(format!("{store} store: {e}"));
        let db = Database::connect(url.expose(), store)
            .await
            .map_err(failed)?;
        let before = loop {
            match db.schema_version(&migrations).await {
                Ok(version) => break version,
                Err(DbError::Connect(error)) if Instant::now() < deadline => {
                    tracing::warn!(store, error = %error, "database not answering yet; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(error) => return Err(failed(error)),
            }
        };
        db.migrate(&migrations).await.map_err(failed)?;
        let after = db.require_current(&migrations).await.map_err(failed)?;
        db.close().await;
        let migrated = Migrated {
            store,
            before,
            after,
        };
        tracing::info!(store, "{migrated}");
        done.push(migrated);
    }
    Ok(done)
}
