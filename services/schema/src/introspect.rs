//! Introspection over sqlx: cheap in round trips and in server work.
//!
//! One round trip reads the server version, `lower_case_table_names`, the database's default
//! charset/collation, the collation table and the list of base tables (none of these opens a
//! table). Then `SHOW CREATE TABLE` is sent for the needed tables only — the requested sources,
//! their existing shadows, orphan shadows, and the parents whose shadows are missing — as
//! multi-statement batches over a small pool, so round trips grow as N / batch size. Every
//! query sent is counted (see [`Introspector::round_trips`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::Instrument as _;

use futures::{StreamExt, TryStreamExt};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{AssertSqlSafe, Either, Row};

use crate::catalog::{Catalog, CatalogTable, SyncRange};
use crate::error::{Result, SchemaError};
use crate::naming::ShadowNaming;
use crate::normalize::ServerContext;
use crate::render::{Flavor, quote_identifier};

/// Batching knobs.
#[derive(Debug, Clone, Copy)]
pub struct IntrospectOptions {
    /// `SHOW CREATE TABLE` statements per round trip.
    pub batch_size: usize,
    /// Batches in flight at once (one connection each).
    pub parallelism: usize,
}

impl Default for IntrospectOptions {
    fn default() -> Self {
        Self {
            batch_size: 250,
            parallelism: 2,
        }
    }
}

/// Where the time went, for the benchmark and for logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct IntrospectStats {
    pub round_trips: u64,
    pub tables_read: usize,
    /// Wall time of the whole introspection, parsing included.
    pub wall_time: Duration,
    /// CPU time spent parsing, normalizing and fingerprinting, summed over batches (it overlaps
    /// the fetching of later batches, so it is not part of the wall time one to one).
    pub parse_time: Duration,
}

/// One table as [`Introspector::observe`] found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableObservation {
    /// `None` when the table does not exist or cannot be parsed.
    pub fingerprint: Option<String>,
    /// The requested names this table's foreign keys reference (same database only).
    pub references: Vec<String>,
}

/// Reads catalogs from one MySQL-family server.
#[derive(Debug, Clone)]
pub struct Introspector {
    pool: MySqlPool,
    options: IntrospectOptions,
    round_trips: Arc<AtomicU64>,
}

impl Introspector {
    /// Opens a small pool (no connection is made until the first query), every connection
    /// pinned to [`crate::SESSION_SQL_MODE`] so `SHOW CREATE TABLE` prints what the executor's
    /// session and guard read.
    pub fn connect_lazy(connect: MySqlConnectOptions, options: IntrospectOptions) -> Self {
        let pool = crate::session::pinned_pool(MySqlPoolOptions::new())
            .max_connections(options.parallelism.max(1) as u32)
            // A ping before every acquire would be a hidden round trip per batch.
            .test_before_acquire(false)
            .connect_lazy_with(crate::session::without_driver_sql_mode(connect));
        Self::with_pool(pool, options)
    }

    /// Uses an existing pool (whose connections the caller pins with
    /// [`crate::session::pinned_pool`]).
    pub fn with_pool(pool: MySqlPool, options: IntrospectOptions) -> Self {
        Self {
            pool,
            options,
            round_trips: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queries sent to the server so far (each is one network round trip; connection set-up,
    /// done once per pooled connection, is not counted).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Reads what normalization needs and the list of base tables, in one round trip.
    ///
    /// Fails with [`SchemaError::DatabaseNotFound`] when the database does not exist.
    pub async fn server_context(&self, database: &str) -> Result<(ServerContext, Vec<String>)> {
        self.read_server(database, true).await
    }

    /// [`Self::server_context`] without the table list (cheaper on large databases).
    async fn read_server(
        &self,
        database: &str,
        list_tables: bool,
    ) -> Result<(ServerContext, Vec<String>)> {
        let literal = string_literal(database)?;
        let mut sql = format!(
            "SELECT VERSION(), CAST(@@lower_case_table_names AS CHAR), DEFAULT_CHARACTER_SET_NAME, \
             DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {literal};\
             SELECT COLLATION_NAME, CHARACTER_SET_NAME, IS_DEFAULT FROM information_schema.COLLATIONS"
        );
        if list_tables {
            // Only name and type: MariaDB and MySQL answer this without opening the tables.
            sql.push_str(&format!(
                ";SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {literal} \
                 AND TABLE_TYPE = 'BASE TABLE'"
            ));
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let results: Vec<Either<_, MySqlRow>> = sqlx::raw_sql(AssertSqlSafe(sql))
            .fetch_many(&self.pool)
            .try_collect()
            .await?;
        let mut sets: Vec<Vec<MySqlRow>> = vec![Vec::new()];
        for item in results {
            match item {
                Either::Left(_) => sets.push(Vec::new()),
                Either::Right(row) => {
                    if let Some(set) = sets.last_mut() {
                        set.push(row);
                    }
                }
            }
        }
        let mut sets = sets.into_iter();
        let schema_rows = sets.next().unwrap_or_default();
        let Some(schema) = schema_rows.first() else {
            return Err(SchemaError::DatabaseNotFound(database.to_owned()));
        };
        let version = text(schema, 0)?;
        let flavor = if version.contains("MariaDB") {
            Flavor::MariaDb
        } else if version.contains("OceanBase") {
            Flavor::OceanBase
        } else {
            Flavor::MySql
        };
        let lower_case_table_names = text(schema, 1)?.parse().unwrap_or(0);
        let mut context = ServerContext {
            flavor,
            version,
            lower_case_table_names,
            database_charset: text(schema, 2)?,
            database_collation: text(schema, 3)?,
            default_collations: BTreeMap::new(),
            collation_charsets: BTreeMap::new(),
        };
        for row in sets.next().unwrap_or_default() {
            let collation = text(&row, 0)?;
            let charset = text(&row, 1).unwrap_or_default();
            if charset.is_empty() {
                continue;
            }
            if text(&row, 2)
                .unwrap_or_default()
                .eq_ignore_ascii_case("yes")
            {
                context
                    .default_collations
                    .insert(charset.clone(), collation.clone());
            }
            context.collation_charsets.insert(collation, charset);
        }
        let mut tables = Vec::new();
        for row in sets.next().unwrap_or_default() {
            tables.push(text(&row, 0)?);
        }
        tables.sort();
        Ok((context, tables))
    }

    /// Reads and parses the tables of a request: the sources in `range` and their shadows, and
    /// (transitively) the parents of those sources whose shadows do not exist.
    ///
    /// Fails when the database is missing, when a partial range names unknown tables, or on a
    /// database error. `progress(read, total)` is called after each batch.
    pub async fn introspect(
        &self,
        database: &str,
        range: &SyncRange,
        naming: &ShadowNaming,
        progress: &mut (dyn FnMut(usize, usize) + Send),
    ) -> Result<(Catalog, IntrospectStats)> {
        let started = Instant::now();
        let before = self.round_trips();
        let (server, base_tables) = self.server_context(database).await?;
        let mut catalog = Catalog {
            database: database.to_owned(),
            server,
            base_tables,
            tables: BTreeMap::new(),
        };
        let sources = catalog.resolve_sources(range, naming).map_err(|tables| {
            SchemaError::UnknownTables {
                database: database.to_owned(),
                tables,
            }
        })?;
        let index = catalog.base_table_index();
        let mut needed: Vec<String> = Vec::with_capacity(sources.len() * 2);
        for source in &sources {
            needed.push(source.clone());
            if let Ok(shadow) = naming.shadow_name(source)
                && let Some(found) = index.get(&catalog.server.table_key(&shadow))
            {
                needed.push((*found).to_owned());
            }
        }
        // Orphan shadows are never touched, but their foreign keys can forbid a change of the
        // shadow they reference and their constraint names are taken: read them too (few).
        for orphan in catalog.orphan_shadows(naming) {
            let key = catalog.server.table_key(&orphan);
            if !needed
                .iter()
                .any(|name| catalog.server.table_key(name) == key)
            {
                needed.push(orphan);
            }
        }
        let mut stats = IntrospectStats::default();
        let mut tables = self
            .read_tables(database, &needed, &catalog.server, &mut stats, progress)
            .await?;
        // Parents whose shadows are missing join the plan (a shadow never references a
        // non-shadow table): read them too, level by level (one batch per level, and only for a
        // partial range; *All* has read every source already).
        let mut all_read: Vec<CatalogTable> = Vec::new();
        let mut read: std::collections::HashSet<String> = needed
            .iter()
            .map(|name| catalog.server.table_key(name))
            .collect();
        loop {
            let mut parents: Vec<String> = Vec::new();
            let fold = |name: &str| catalog.server.table_key(name);
            for table in &tables {
                let Ok(model) = &table.model else { continue };
                if naming.source_of(&table.name, fold).is_some() {
                    // A shadow's parents are shadows: nothing to pull in.
                    continue;
                }
                for fk in &model.foreign_keys {
                    let same_database = fk.referenced_schema.as_deref().is_none_or(|schema| {
                        catalog.server.table_key(schema) == catalog.server.table_key(database)
                    });
                    let key = catalog.server.table_key(&fk.referenced_table);
                    let Some(found) = index.get(&key).filter(|_| same_database) else {
                        continue;
                    };
                    let shadow_exists = naming
                        .shadow_name(found)
                        .is_ok_and(|shadow| index.contains_key(&catalog.server.table_key(&shadow)));
                    if !shadow_exists && read.insert(key) {
                        parents.push((*found).to_owned());
                    }
                }
            }
            all_read.append(&mut tables);
            if parents.is_empty() {
                break;
            }
            tables = self
                .read_tables(
                    database,
                    &parents,
                    &catalog.server,
                    &mut stats,
                    &mut |_, _| {},
                )
                .await?;
        }
        for table in all_read {
            catalog.insert(table);
        }
        stats.round_trips = self.round_trips() - before;
        stats.wall_time = started.elapsed();
        Ok((catalog, stats))
    }

    /// The current fingerprint of each of `names` (`None` when the table does not exist or
    /// cannot be parsed): what the executor compares with the plan's fingerprints to detect
    /// drift and to resume. Two round trips.
    ///
    /// Fails when the database is missing or on a database error.
    pub async fn fingerprints(
        &self,
        database: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, Option<String>>> {
        Ok(self
            .observe(database, names)
            .await?
            .into_iter()
            .map(|(name, observed)| (name, observed.fingerprint))
            .collect())
    }

    /// [`Introspector::fingerprints`], plus which of `names` each table's foreign keys
    /// reference now: the executor keeps tables linked by a key out of parallel lanes, also when
    /// the plan drops that key (a child's key must go before its parent changes).
    ///
    /// Fails when the database is missing or on a database error.
    pub async fn observe(
        &self,
        database: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, TableObservation>> {
        let (context, _) = self.read_server(database, false).await?;
        let mut stats = IntrospectStats::default();
        let tables = self
            .read_tables(database, names, &context, &mut stats, &mut |_, _| {})
            .await?;
        let requested: BTreeMap<String, &String> = names
            .iter()
            .map(|name| (context.table_key(name), name))
            .collect();
        let same_database = |schema: &Option<String>| {
            schema
                .as_deref()
                .is_none_or(|schema| context.table_key(schema) == context.table_key(database))
        };
        let mut read: BTreeMap<String, TableObservation> = tables
            .into_iter()
            .map(|table| {
                let references = table
                    .model
                    .as_ref()
                    .map(|model| {
                        model
                            .foreign_keys
                            .iter()
                            .filter(|fk| same_database(&fk.referenced_schema))
                            .filter_map(|fk| {
                                requested.get(&context.table_key(&fk.referenced_table))
                            })
                            .map(|name| (*name).clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let observed = TableObservation {
                    fingerprint: table.fingerprint,
                    references,
                };
                (context.table_key(&table.name), observed)
            })
            .collect();
        Ok(names
            .iter()
            .map(|name| {
                let observed = read.remove(&context.table_key(name)).unwrap_or_default();
                (name.clone(), observed)
            })
            .collect())
    }

    /// `SHOW CREATE TABLE` for `names`, batched, parsed, normalized and fingerprinted under
    /// `context`. Tables that no longer exist are left out (the caller reports them as
    /// missing). Each batch runs in its own task, so parsing one batch overlaps fetching the
    /// next. Used by the executor to re-read a source and its shadow before touching them.
    ///
    /// Fails on a database error.
    pub async fn read_tables(
        &self,
        database: &str,
        names: &[String],
        context: &ServerContext,
        stats: &mut IntrospectStats,
        progress: &mut (dyn FnMut(usize, usize) + Send),
    ) -> Result<Vec<CatalogTable>> {
        let batch_size = self.options.batch_size.max(1);
        let context = Arc::new(context.clone());
        let batches: Vec<Vec<String>> = names.chunks(batch_size).map(<[String]>::to_vec).collect();
        let mut stream = futures::stream::iter(batches)
            .map(|batch| {
                let pool = self.pool.clone();
                let round_trips = Arc::clone(&self.round_trips);
                let database = database.to_owned();
                let context = Arc::clone(&context);
                // One span per batch: one round trip, then parsing (the spawned task carries
                // it, since it would otherwise lose the caller's).
                let span = tracing::info_span!(
                    "introspection batch",
                    db.operation.name = "SHOW CREATE TABLE",
                    db.operation.batch.size = batch.len(),
                );
                tokio::spawn(
                    async move {
                        let rows = fetch_batch(&pool, &round_trips, &database, &batch).await?;
                        let started = Instant::now();
                        let tables: Vec<CatalogTable> = rows
                            .into_iter()
                            .map(|(name, ddl)| CatalogTable::read(name, ddl, &context))
                            .collect();
                        Ok::<_, SchemaError>((tables, started.elapsed()))
                    }
                    .instrument(span),
                )
            })
            .buffered(self.options.parallelism.max(1));
        let mut tables = Vec::with_capacity(names.len());
        while let Some(batch) = stream.next().await {
            let (batch, parse_time) = batch.map_err(|e| SchemaError::InvalidArgument {
                field: "introspection".into(),
                message: format!("batch task failed: {e}"),
            })??;
            stats.parse_time += parse_time;
            tables.extend(batch);
            progress(tables.len(), names.len());
        }
        stats.tables_read += tables.len();
        Ok(tables)
    }
}

/// One multi-statement round trip; on failure (a table dropped meanwhile), the batch is
/// retried one table at a time so one missing table does not fail the analysis.
async fn fetch_batch(
    pool: &MySqlPool,
    round_trips: &AtomicU64,
    database: &str,
    names: &[String],
) -> Result<Vec<(String, String)>> {
    let statements: Vec<String> = names
        .iter()
        .map(|name| show_create(database, name))
        .collect();
    round_trips.fetch_add(1, Ordering::Relaxed);
    let rows: std::result::Result<Vec<MySqlRow>, sqlx::Error> =
        sqlx::raw_sql(AssertSqlSafe(statements.join(";")))
            .fetch(pool)
            .try_collect()
            .await;
    match rows {
        Ok(rows) => rows
            .iter()
            .map(|row| Ok((text(row, 0)?, text(row, 1)?)))
            .collect(),
        Err(error) if is_missing_table(&error) => {
            let mut out = Vec::new();
            for statement in statements {
                round_trips.fetch_add(1, Ordering::Relaxed);
                match sqlx::raw_sql(AssertSqlSafe(statement))
                    .fetch_optional(pool)
                    .await
                {
                    Ok(Some(row)) => out.push((text(&row, 0)?, text(&row, 1)?)),
                    Ok(None) => {}
                    Err(error) if is_missing_table(&error) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Ok(out)
        }
        Err(error) => Err(error.into()),
    }
}

fn show_create(database: &str, table: &str) -> String {
    format!(
        "SHOW CREATE TABLE {}.{}",
        quote_identifier(database),
        quote_identifier(table)
    )
}

fn is_missing_table(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42S02")
}

/// A column as text, whatever the server typed it as (some versions send binary strings).
fn text(row: &MySqlRow, index: usize) -> Result<String> {
    if let Ok(value) = row.try_get::<Option<String>, _>(index) {
        return Ok(value.unwrap_or_default());
    }
    let bytes: Option<Vec<u8>> = row.try_get(index)?;
    Ok(String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned())
}

/// A string literal safe under every `sql_mode` (a backslash would mean different things with
/// and without `NO_BACKSLASH_ESCAPES`, so names containing one are refused).
fn string_literal(value: &str) -> Result<String> {
    if value.contains('\\') || value.contains('\0') {
        return Err(SchemaError::InvalidArgument {
            field: "database".into(),
            message: "database names with a backslash or NUL are not supported".into(),
        });
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}
