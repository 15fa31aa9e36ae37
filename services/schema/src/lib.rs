//! The shadowsync schema engine (DESIGN.md §5): decides what each shadow table needs.
//!
//! # Flow
//! 1. [`Introspector::introspect`] reads a [`Catalog`]: server flavour and defaults, the list of
//!    base tables, and the canonical DDL (`SHOW CREATE TABLE`, batched) of only the requested
//!    sources and their shadows, parsed into the [`model`].
//! 2. [`plan()`] normalizes source and shadow, diffs them and returns a [`Plan`]: one
//!    [`TablePlan`] per source (`CREATE`/`UPDATE`/`NO_ACTION`/`SOURCE_MISSING`/`UNSUPPORTED`,
//!    DDL, statements, fingerprints) and the execution order of every statement.
//! 3. The executor re-reads tables with [`Introspector::read_tables`] and compares
//!    [`fingerprint()`]s with the plan's to detect drift and resume after a crash.
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
//! # Layout
//! - [`model`]: the dialect-neutral table model (serde, for gRPC/JSON).
//! - `parse`: tokenizer and recursive-descent parser for `SHOW CREATE TABLE` output.
//! - [`normalize`]: removes spelling differences (quoted defaults, display widths, inherited
//!   charsets, the JSON alias...); [`fingerprint`]: stable SHA-256 of the normalized model.
//! - [`naming`]: prefix/suffix rules and the identifier limit.
//! - [`render`]: model → DDL, every identifier quoted; [`diff`]: one table's ALTER steps.
//! - [`plan`](mod@plan): per-table results, constraint names, dependency order, skips.
//! - [`introspect`]: batched, counted reads over sqlx; [`catalog`]: what it returns.
//! - [`cli`]: the `shadowctl plan` command as a library.

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

pub use catalog::{Catalog, CatalogTable, SyncRange};
pub use error::{Result, SchemaError};
pub use fingerprint::fingerprint;
pub use introspect::{IntrospectOptions, IntrospectStats, Introspector};
pub use model::Table;
pub use naming::{Affix, ShadowNaming};
pub use normalize::{ServerContext, normalize};
pub use parse::parse_create_table;
pub use plan::{
    AnalysisRequest, Plan, PlannedStatement, StatementRef, SyncResult, TablePlan, plan,
};
pub use render::Flavor;
