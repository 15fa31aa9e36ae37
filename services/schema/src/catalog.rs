//! What introspection hands to planning: the database's table list and the tables read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Table;
use crate::naming::ShadowNaming;
use crate::normalize::ServerContext;

/// The tables a request covers: every source table, or an explicit list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRange {
    /// Every base table whose name does not match the shadow naming rule (a table that matches
    /// it is a shadow, never a source, even when its source no longer exists).
    All,
    /// These source tables (each must be a base table of the database).
    Partial(Vec<String>),
}

/// One table read with `SHOW CREATE TABLE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogTable {
    pub name: String,
    /// The server's DDL, verbatim.
    pub ddl: String,
    /// The parsed and normalized model (see [`crate::normalize()`]), or why the DDL could not be
    /// parsed. Only the normalized form is kept: it is what planning needs, and keeping the raw
    /// parse too would double the memory of a large catalog.
    pub model: Result<Table, String>,
    /// [`crate::fingerprint()`] of the table, when it parsed.
    pub fingerprint: Option<String>,
}

impl CatalogTable {
    /// Parses, normalizes and fingerprints `ddl` (done while reading, so it overlaps the next
    /// fetch).
    pub fn read(name: String, ddl: String, context: &ServerContext) -> Self {
        let model = crate::parse::parse_create_table(&ddl)
            .map(|table| crate::normalize::normalize(&table, context))
            .map_err(|e| e.to_string());
        let fingerprint = model
            .as_ref()
            .ok()
            .map(crate::fingerprint::fingerprint_normalized);
        Self {
            name,
            ddl,
            model,
            fingerprint,
        }
    }
}

/// A database as far as one analysis needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    pub database: String,
    pub server: ServerContext,
    /// Every base table of the database (cheap to list; used for shadow existence and *All*).
    pub base_tables: Vec<String>,
    /// The tables read, by [`ServerContext::table_key`]: the requested sources and their shadows.
    pub tables: BTreeMap<String, CatalogTable>,
}

impl Catalog {
    /// True if `name` is a base table of the database.
    pub fn has_base_table(&self, name: &str) -> bool {
        let key = self.server.table_key(name);
        self.base_tables
            .iter()
            .any(|table| self.server.table_key(table) == key)
    }

    /// The base table's name as the server spells it.
    pub fn base_table_name(&self, name: &str) -> Option<&str> {
        let key = self.server.table_key(name);
        self.base_tables
            .iter()
            .find(|table| self.server.table_key(table) == key)
            .map(String::as_str)
    }

    /// Base tables by [`ServerContext::table_key`], for repeated look-ups.
    pub fn base_table_index(&self) -> std::collections::HashMap<String, &str> {
        self.base_tables
            .iter()
            .map(|table| (self.server.table_key(table), table.as_str()))
            .collect()
    }

    /// The table read under `name`, if any.
    pub fn table(&self, name: &str) -> Option<&CatalogTable> {
        self.tables.get(&self.server.table_key(name))
    }

    /// Inserts a table read from the server.
    pub fn insert(&mut self, table: CatalogTable) {
        self.tables
            .insert(self.server.table_key(&table.name), table);
    }

    /// Orphan shadows: base tables whose names match the naming rule while the table they
    /// would be the shadow of does not exist, sorted. They are never sources and never
    /// touched; the plan lists them as `SOURCE_MISSING`.
    pub fn orphan_shadows(&self, naming: &ShadowNaming) -> Vec<String> {
        let index = self.base_table_index();
        let fold = |name: &str| self.server.table_key(name);
        let mut orphans: Vec<String> = self
            .base_tables
            .iter()
            .filter(|table| {
                naming
                    .source_of(table, fold)
                    .is_some_and(|source| !index.contains_key(&source))
            })
            .cloned()
            .collect();
        orphans.sort();
        orphans
    }

    /// The source tables `range` names, in a stable order; for [`SyncRange::Partial`], the
    /// names that are not base tables are returned as the error.
    pub fn resolve_sources(
        &self,
        range: &SyncRange,
        naming: &ShadowNaming,
    ) -> Result<Vec<String>, Vec<String>> {
        match range {
            SyncRange::All => {
                let fold = |name: &str| self.server.table_key(name);
                let mut sources: Vec<String> = self
                    .base_tables
                    .iter()
                    .filter(|table| naming.source_of(table, fold).is_none())
                    .cloned()
                    .collect();
                sources.sort();
                Ok(sources)
            }
            SyncRange::Partial(names) => {
                let index = self.base_table_index();
                let mut sources: Vec<String> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                let mut unknown = Vec::new();
                for name in names {
                    match index.get(&self.server.table_key(name)) {
                        Some(found) => {
                            if seen.insert(*found) {
                                sources.push((*found).to_owned());
                            }
                        }
                        None => unknown.push(name.clone()),
                    }
                }
                if unknown.is_empty() {
                    Ok(sources)
                } else {
                    Err(unknown)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(lower_case_table_names: u32, tables: &[&str]) -> Catalog {
        let mut server = ServerContext::mariadb_default();
        server.lower_case_table_names = lower_case_table_names;
        Catalog {
            database: "db".into(),
            server,
            base_tables: tables.iter().map(|t| (*t).to_owned()).collect(),
            tables: BTreeMap::new(),
        }
    }

    #[test]
    fn a_table_matching_the_naming_rule_is_never_a_source() {
        let naming = ShadowNaming::default();
        let catalog = catalog(0, &["orders", "_test_orders", "_test_lonely", "items"]);
        let sources = catalog.resolve_sources(&SyncRange::All, &naming).unwrap();
        // `_test_lonely` shadows nothing that exists: an orphan shadow, still not a source.
        assert_eq!(sources, vec!["items", "orders"]);
        assert_eq!(catalog.orphan_shadows(&naming), vec!["_test_lonely"]);
    }

    #[test]
    fn case_sensitivity_follows_lower_case_table_names() {
        let naming = ShadowNaming::default();
        let sensitive = catalog(0, &["Orders", "_test_orders"]);
        assert_eq!(
            sensitive.resolve_sources(&SyncRange::All, &naming).unwrap(),
            vec!["Orders"]
        );
        // Case-sensitive names: `_test_orders` is the orphan shadow of a missing `orders`.
        assert_eq!(sensitive.orphan_shadows(&naming), vec!["_test_orders"]);
        assert!(
            sensitive
                .resolve_sources(&SyncRange::Partial(vec!["orders".into()]), &naming)
                .is_err()
        );
        let insensitive = catalog(1, &["Orders", "_TEST_orders"]);
        assert_eq!(
            insensitive
                .resolve_sources(&SyncRange::All, &naming)
                .unwrap(),
            vec!["Orders"]
        );
        assert_eq!(
            insensitive
                .resolve_sources(&SyncRange::Partial(vec!["ORDERS".into()]), &naming)
                .unwrap(),
            vec!["Orders"]
        );
    }
}
