//! The metadata store connection every stateful service uses.
//!
//! One code path for both backends: services write portable SQL (`$1`-style parameters, which
//! SQLite binds by number too; `RETURNING`; `ON CONFLICT`; integers, text and blobs only, times as
//! microseconds since the Unix epoch) against a [`Database`], and branch on [`Backend`] only where
//! the engines truly differ (`FOR UPDATE SKIP LOCKED` exists only on PostgreSQL, where several
//! replicas compete; SQLite has one writer).
//!
//! - PostgreSQL (production): each service lives in its own schema of a shared server
//!   (`search_path` is set on every connection), so no service reads another's tables.
//! - SQLite (embedded mode): one file per service under the data directory, in WAL mode with
//!   foreign keys on and a busy timeout, so concurrent writers wait instead of failing.
//!
//! Migrations are per service and per backend (`migrations/postgres`, `migrations/sqlite`),
//! embedded with `sqlx::migrate!` and run at start-up by [`Database::migrate`]. Tests open
//! throw-away stores with `shadowsync_common::testing::TestDatabase`.

/// Where tests found the throw-away stores before they moved to [`crate::testing`].
#[cfg(any(test, feature = "test-support"))]
pub use crate::testing::db as testing;

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor as _};

/// Which engine is behind a [`Database`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Why the store could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported engine (the message never repeats the URL: it may hold a
    /// password).
    #[error("database.url must start with postgres:// or sqlite://")]
    UnsupportedUrl,
    #[error("invalid schema name {0:?}: use lowercase letters, digits and '_'")]
    SchemaName(String),
    #[error("cannot connect to the metadata store: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migrating the metadata store failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The store's recorded migrations are not the ones this build needs (a service started with
    /// `database.auto_migrate=false` before `shadowsync migrate` ran, or against a diverged
    /// history).
    #[error("the {schema} store's schema is not current: {reason}")]
    SchemaNotCurrent { schema: String, reason: String },
    #[error("cannot create {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The highest migration version a store has recorded and the one a build needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    pub applied: Option<i64>,
    pub needed: Option<i64>,
}

/// A service's migrations for each backend.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    pub postgres: &'static Migrator,
    pub sqlite: &'static Migrator,
}

/// A pool on the service's own schema or file.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    schema: String,
}

impl Database {
    /// A pool on `url` (`postgres://…` or `sqlite://…`) that connects on first use. On
    /// PostgreSQL, `schema` becomes every connection's `search_path` ([`Database::migrate`]
    /// creates it).
    ///
    /// Fails only on an unsupported or malformed URL or an invalid schema name.
    pub async fn connect(url: &str, schema: &str) -> Result<Self, DbError> {
        install_default_drivers();
        if !schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || schema.is_empty()
        {
            return Err(DbError::SchemaName(schema.to_string()));
        }
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(DbError::UnsupportedUrl);
        };
        // While PostgreSQL cannot be reached the pool retries connecting until the acquire
        // timeout, and every call waits that long before it can answer UNAVAILABLE: keep it
        // short. (A wait that long for a free connection means the service is overloaded,
        // which is UNAVAILABLE too.) SQLite is a local file that is never away; its writers
        // queue behind one lock, so it keeps a longer wait.
        let acquire_timeout = match backend {
            Backend::Postgres => Duration::from_secs(3),
            Backend::Sqlite => Duration::from_secs(10),
        };
        let options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .acquire_timeout(acquire_timeout);
        // Connections are made on first use, so a service starts (and reports NOT_SERVING)
        // while its store is still unreachable; `migrate` is the first real use.
        let pool = match backend {
            Backend::Postgres => {
                // A search path naming a schema that does not exist yet is accepted; `migrate`
                // creates the schema before anything else touches it.
                let set_path = format!("SET search_path TO \"{schema}\"");
                options
                    .after_connect(move |connection, _| {
                        let set_path = sqlx::AssertSqlSafe(set_path.clone());
                        Box::pin(async move {
                            connection.execute(set_path).await?;
                            Ok(())
                        })
                    })
                    .connect_lazy(url)
                    .map_err(DbError::Connect)?
            }
            Backend::Sqlite => options
                .after_connect(|connection, _| {
                    Box::pin(async move {
                        connection
                            .execute(
                                "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                                 PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL",
                            )
                            .await?;
                        Ok(())
                    })
                })
                .connect_lazy(url)
                .map_err(DbError::Connect)?,
        };
        Ok(Self {
            pool,
            backend,
            schema: schema.to_string(),
        })
    }

    /// Whether the store answers now (for health reporting).
    ///
    /// Fails when it does not.
    pub async fn check_ready(&self) -> Result<(), DbError> {
        self.pool
            .execute("SELECT 1")
            .await
            .map(drop)
            .map_err(DbError::Connect)
    }

    /// Opens (creating if needed) `<data_dir>/<service>.sqlite`: the embedded mode's store.
    ///
    /// Fails when the directory cannot be created or the file opened.
    pub async fn embedded(data_dir: &Path, service: &str) -> Result<Self, DbError> {
        std::fs::create_dir_all(data_dir).map_err(|source| DbError::Io {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(format!("{service}.sqlite"));
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display()), service).await
    }

    /// Creates the service's schema (PostgreSQL) and applies its pending migrations: the first
    /// real use of the store, retried by the server until the store is reachable.
    ///
    /// Fails when the store is unreachable, a migration fails, or the recorded history does not
    /// match the embedded one.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), DbError> {
        let migrator = match self.backend {
            Backend::Postgres => {
                self.pool
                    .execute(sqlx::AssertSqlSafe(format!(
                        "CREATE SCHEMA IF NOT EXISTS \"{}\"",
                        self.schema
                    )))
                    .await
                    .map_err(DbError::Connect)?;
                migrations.postgres
            }
            Backend::Sqlite => migrations.sqlite,
        };
        migrator.run(&self.pool).await.map_err(DbError::Migrate)
    }

    /// Compares the migrations recorded in the store with `migrations`, changing nothing: how a
    /// service that may not migrate (`database.auto_migrate=false`) learns whether
    /// `shadowsync migrate` has brought the schema to what it needs.
    ///
    /// Migrations recorded in the store that this build does not know are accepted: they come
    /// from a newer release (this one was rolled back), and every release's migrations only add,
    /// so the older code still finds everything it uses.
    ///
    /// Fails with [`DbError::SchemaNotCurrent`] when a migration this build needs is missing,
    /// failed half-way, or was recorded with a different checksum; with [`DbError::Connect`] when
    /// the store does not answer.
    pub async fn require_current(&self, migrations: &Migrations) -> Result<SchemaVersion, DbError> {
        let migrator = self.migrator(migrations);
        let applied = self.recorded_migrations().await?;
        let needed: Vec<_> = migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .collect();
        let version = SchemaVersion {
            applied: applied.iter().map(|(v, _, _)| *v).max(),
            needed: needed.iter().map(|m| m.version).max(),
        };
        let not_current = |reason: String| DbError::SchemaNotCurrent {
            schema: self.schema.clone(),
            reason,
        };
        if let Some((v, _, _)) = applied.iter().find(|(_, _, success)| !success) {
            return Err(not_current(format!(
                "migration {v} failed part-way; fix it and run `shadowsync migrate`"
            )));
        }
        let mut missing = Vec::new();
        for migration in &needed {
            match applied.iter().find(|(v, _, _)| *v == migration.version) {
                None => missing.push(format!("{} {}", migration.version, migration.description)),
                Some((_, checksum, _)) if checksum.as_slice() != &*migration.checksum => {
                    return Err(not_current(format!(
                        "migration {} was recorded with a different checksum: the store's \
                         history diverged from this build's",
                        migration.version
                    )));
                }
                Some(_) => {}
            }
        }
        if !missing.is_empty() {
            return Err(not_current(format!(
                "{} migration(s) pending ({}); run `shadowsync migrate`",
                missing.len(),
                missing.join(", ")
            )));
        }
        Ok(version)
    }

    /// The highest migration the store has recorded (`None` on a new store), and the highest
    /// this build has.
    ///
    /// Fails when the store does not answer.
    pub async fn schema_version(&self, migrations: &Migrations) -> Result<SchemaVersion, DbError> {
        let applied = self.recorded_migrations().await?;
        Ok(SchemaVersion {
            applied: applied.iter().map(|(v, _, _)| *v).max(),
            needed: self.migrator(migrations).iter().map(|m| m.version).max(),
        })
    }

    fn migrator(&self, migrations: &Migrations) -> &'static Migrator {
        match self.backend {
            Backend::Postgres => migrations.postgres,
            Backend::Sqlite => migrations.sqlite,
        }
    }

    /// `(version, checksum, success)` of every migration the store recorded, without creating
    /// the history table when it is missing (a new store has recorded none).
    async fn recorded_migrations(&self) -> Result<Vec<(i64, Vec<u8>, bool)>, DbError> {
        let exists_sql = match self.backend {
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
        };
        let exists: i64 = sqlx::query_scalar(exists_sql)
            .fetch_one(&self.pool)
            .await
            .map_err(DbError::Connect)?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        sqlx::query_as::<_, (i64, Vec<u8>, bool)>(
            "SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::Connect)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a transaction that may write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`, waiting up to the busy timeout): a deferred transaction that reads
    /// and then writes fails with `SQLITE_BUSY_SNAPSHOT` (517, "database is locked") whenever
    /// another connection committed in between, and the busy timeout cannot help it.
    ///
    /// Fails when no connection can be had or the lock is not granted in time.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Postgres => self.pool.begin().await,
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection (at shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
