//! The shadowsync schema engine: decides what each shadow table needs.
//!
//! # Flow
//! 1. [`Introspector::introspect`] reads a [`Catalog`]: server flavour and defaults, the list of
//!    base tables, and the canonical DDL (`SHOW CREATE TABLE`, batched) of only the requested
//!    sources and their shadows, parsed into the [`model`].
//! 2. [`plan()`] normalizes source and shadow, diffs them and returns a [`Plan`]: one
//!    [`TablePlan`] per source (`CREATE`/`UPDATE`/`NO_ACTION`/`SOURCE_MISSING`/`UNSUPPORTED`,
//!    DDL, statements with their [`Hazard`]s, the table's [`RiskLevel`], fingerprints), one
//!    `SOURCE_MISSING` row per orphan shadow, and the execution order of every statement.
//! 3. The executor re-reads tables with [`Introspector::fingerprints`] (two round trips) and
//!    compares them with the plan's: the source's with `source_fingerprint` (drift), the
//!    shadow's with `shadow_fingerprint` (untouched), each statement's
//!    `expected_fingerprint_after` (resume after the last one that ran) and
//!    `target_fingerprint` (already done).
//!
//! # Contract for whoever runs a plan
//! Statements run one at a time, in [`Plan::order`], in one session whose default database is
//! the plan's database, pinned to [`SESSION_SQL_MODE`] (as the introspection's sessions are, so
//! the DDL means there what it meant when read), with `foreign_key_checks` **on**: parents are
//! created before children, foreign keys closing a cycle are added by trailing `ALTER TABLE`s,
//! so no statement needs checks off (MariaDB 10.11 can read an FK added with checks off back
//! differently). Never run two tables' statements in parallel: MariaDB can livelock dropping
//! FK-linked tables at once.
//! Statements never use `CREATE TABLE ... LIKE`, never copy the `AUTO_INCREMENT` counter and
//! quote every identifier.
//!
//! # Progress
//! [`Introspector::introspect`] calls `progress(read, total)` after every batch; planning itself
//! is CPU-only and fast (milliseconds per hundred tables), so callers stream per-table results
//! from the returned [`Plan`] (run it under `spawn_blocking` for very large schemas).
//!
//! ```no_run
//! # async fn example(options: sqlx::mysql::MySqlConnectOptions) -> shadowsync_schema::Result<()> {
//! use shadowsync_schema::*;
//! let introspector = Introspector::connect_lazy(options, IntrospectOptions::default());
//! let naming = ShadowNaming::prefix(None)?;
//! let (catalog, _stats) = introspector
//!     .introspect("shop", &SyncRange::All, &naming, &mut |_read, _total| {})
//!     .await?;
//! let request = AnalysisRequest { range: SyncRange::All, naming, skipped: Default::default() };
//! let plan = plan(&catalog, &request)?;
//! print!("{}", plan.sql_script());
//! # Ok(()) }
//! ```
//!
//! # Known limits
//! - Partition maintenance covers RANGE/LIST partitions listed one by one and HASH/KEY
//!   `PARTITIONS n` without subpartitions; other partition changes re-partition the whole
//!   table. A column rename (other than a case-only one) is a drop plus an add.
//! - An orphan shadow blocks a change of the shadow it references when the change drops or
//!   retypes a referenced column; dropping the index its key uses is not foreseen.
//! - New FK/CHECK names avoid the names of the tables read (the range's sources and shadows),
//!   not of every table in the schema (that would need information_schema scans that open
//!   every table).
//! - A parent outside a partial range whose shadow already exists is referenced as that shadow
//!   is, not re-read: if that shadow lacks the referenced key, adding the foreign key is refused
//!   at execution (sync the parent too).
//! - MySQL 8 and OceanBase output is covered by parser/normalizer unit tests on recorded texts;
//!   only MariaDB is exercised end to end.
//!
//! # Layout
//! - [`model`]: the dialect-neutral table model (serde, for gRPC/JSON).
//! - `parse`: tokenizer and recursive-descent parser for `SHOW CREATE TABLE` output.
//! - [`normalize`](mod@normalize): removes spelling differences (quoted defaults, display widths, inherited
//!   charsets, the JSON alias...); [`fingerprint`](mod@fingerprint): stable SHA-256 of the normalized model.
//! - [`naming`]: prefix/suffix rules and the identifier limit.
//! - [`render`]: model → DDL, every identifier quoted; [`diff`]: one table's ALTER steps.
//! - [`plan`](mod@plan): per-table results, constraint names, dependency order, skips, and
//!   isolation (a shadow never references a non-shadow object: missing parent shadows join the
//!   plan "required by" their child, skips cascade to children, tables needing another
//!   production object, such as a sequence in a `DEFAULT` or a parent in another database, are
//!   `UNSUPPORTED`).
//! - [`introspect`]: batched, counted reads over sqlx; [`catalog`]: what it returns.
//! - [`cli`]: the `shadowctl plan` command as a library.
//! - [`session`]: the one `sql_mode` every session on a target runs under, pinned and verified.

pub mod catalog;
pub mod cli;
pub mod diff;
pub mod error;
pub mod fingerprint;
pub mod introspect;
pub mod model;
pub mod naming;
pub mod normalize;
mod parse;
pub mod plan;
pub mod render;
pub mod session;

pub use catalog::{Catalog, CatalogTable, SyncRange};
pub use error::{Result, SchemaError};
pub use fingerprint::fingerprint;
pub use introspect::{IntrospectOptions, IntrospectStats, Introspector, TableObservation};
pub use model::Table;
pub use naming::{Affix, ShadowNaming};
pub use normalize::{ServerContext, normalize};
pub use parse::parse_create_table;
pub use plan::{
    AnalysisRequest, Hazard, HazardKind, Plan, PlannedStatement, RiskLevel, StatementRef,
    SyncResult, TablePlan, plan,
};
pub use render::Flavor;
pub use session::{
    SESSION_CHARACTER_SET, SESSION_SQL_MODE, pin_session, pinned_pool, without_driver_sql_mode,
};
