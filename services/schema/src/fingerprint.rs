//! Structural fingerprints: a stable SHA-256 of a table's normalized model.
//!
//! The fingerprint leaves out what is not structure: the table name, the
//! `AUTO_INCREMENT` counter, the names of foreign keys and CHECK constraints, and the order in
//! which secondary indexes, foreign keys and checks are listed. Foreign-key *targets* stay in:
//! a shadow that references a source parent is in a different state from one that references
//! the parent's shadow, and the executor must be able to tell them apart.

use sha2::{Digest, Sha256};

use crate::model::Table;
use crate::normalize::{ServerContext, normalize};

/// The canonical form two structurally equal tables share (see the module documentation).
/// `table` must already be normalized.
pub fn canonical(table: &Table) -> Table {
    let mut table = table.clone();
    table.name.clear();
    table.options.auto_increment = None;
    for foreign_key in &mut table.foreign_keys {
        foreign_key.name.clear();
    }
    for check in &mut table.checks {
        check.name.clear();
    }
    table.indexes.sort_by_key(|index| index.name.to_lowercase());
    // Names were cleared above, so this orders by definition.
    table.foreign_keys.sort();
    table.checks.sort_by(|a, b| a.expression.cmp(&b.expression));
    table
}

/// Hex SHA-256 of an already normalized table's canonical form.
pub fn fingerprint_normalized(table: &Table) -> String {
    let canonical = canonical(table);
    // Serialising a struct is deterministic (field order, BTreeMap for free-form options).
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// Fingerprint of a table as parsed from the server: normalizes it first.
pub fn fingerprint(table: &Table, context: &ServerContext) -> String {
    fingerprint_normalized(&normalize(table, context))
}
