//! The plan digest: the one hash that binds what an approval allows to run. The analysis preview's etag, the approval's payload hash, the
//! claim's check in the task service and the executor's own check all come from [`PlanDigest`],
//! so a plan changed anywhere between preview and execution no longer matches what was approved.
//!
//! # Encoding (version 2)
//!
//! SHA-256 (lower-case hex) over this byte string, each part in this order:
//!
//! - `field(b"shadowsync.plan-digest.v2")`: the version tag;
//! - `field(connection_id)`, `field(database)`;
//! - for each synced table, in plan order: the byte `0x01`, then `field(source_table)`,
//!   `field(shadow_table)`, `field(source_fingerprint)`, `field(shadow_fingerprint)`,
//!   `field(target_fingerprint)`, `count(depends_on)` and `field(name)` for each, then
//!   `count(statements)` and, for each statement in the table's order, `int(script_index)`,
//!   `field(sql)`, `field(expected_fingerprint_after)`;
//! - the byte `0x00`: no more tables;
//! - the execution terms: the byte `0x00` when they are absent (an analysis preview, before the
//!   strategy and the time are chosen), or the byte `0x01`, `int(error_strategy)` (its
//!   `shadowsync.task.v1.ErrorStrategy` number) and the schedule: `0x00` for immediate
//!   execution, or `0x01` and `int(scheduled_at)` (microseconds since the Unix epoch).
//!
//! where `field(b)` is the length of `b` in bytes as a big-endian `u64` followed by `b` (UTF-8
//! for text), `count(n)` is `n` as a big-endian `u64`, and `int(i)` is `i` as a big-endian
//! `i64`. Every variable-length part is length-prefixed and every list count-prefixed or
//! terminated by a marker, so no two plans share an encoding: a statement cannot be split in
//! two, or moved to another table, or a table reordered, without changing the bytes.
//!
//! Beyond the names and statements, the table fields hashed are the ones an executor acts on:
//! `script_index` is the execution order, the fingerprints decide whether a table is skipped as
//! already in sync or resumed mid-way, and `depends_on` decides which tables may run in
//! parallel. Version 1 (each statement followed by `;\n`, concatenated) bound none of this; a
//! version 1 hash is never accepted.

use sha2::{Digest, Sha256};

use crate::clock::Micros;

/// The version tag at the head of every encoding.
pub const PLAN_DIGEST_TAG: &[u8] = b"shadowsync.plan-digest.v2";

/// The version of the encoding [`PlanDigest`] produces, as stored beside a task's hash.
pub const PLAN_DIGEST_VERSION: i64 = 2;

/// One synced table's terms, apart from its statements.
#[derive(Debug, Clone, Copy)]
pub struct DigestTable<'a> {
    pub source_table: &'a str,
    pub shadow_table: &'a str,
    pub source_fingerprint: &'a str,
    pub shadow_fingerprint: &'a str,
    pub target_fingerprint: &'a str,
    /// Source names, in the plan's order.
    pub depends_on: &'a [String],
}

/// One statement, in its table's order.
#[derive(Debug, Clone, Copy)]
pub struct DigestStatement<'a> {
    /// Position in the whole script: the execution order.
    pub script_index: i64,
    pub sql: &'a str,
    pub expected_fingerprint_after: &'a str,
}

/// What is chosen at submission: how errors are handled and when the plan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionTerms {
    /// The `shadowsync.task.v1.ErrorStrategy` number.
    pub error_strategy: i32,
    /// `None`: immediately once approved.
    pub scheduled_at: Option<Micros>,
}

/// Builds the digest of one plan, table by table, so a large plan is never held whole. See the
/// module documentation for the encoding.
#[derive(Clone)]
pub struct PlanDigest {
    hasher: Sha256,
    /// The bytes hashed, kept in unit tests to check the encoding itself.
    #[cfg(test)]
    encoding: Vec<u8>,
}

impl std::fmt::Debug for PlanDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanDigest").finish_non_exhaustive()
    }
}

impl PlanDigest {
    /// Starts the digest of a plan on `database` through connection `connection_id`.
    pub fn new(connection_id: &str, database: &str) -> Self {
        let mut digest = Self {
            hasher: Sha256::new(),
            #[cfg(test)]
            encoding: Vec::new(),
        };
        digest.field(PLAN_DIGEST_TAG);
        digest.field(connection_id.as_bytes());
        digest.field(database.as_bytes());
        digest
    }

    /// Adds the next table of the plan with its statements.
    pub fn table(&mut self, table: &DigestTable<'_>, statements: &[DigestStatement<'_>]) {
        self.update(&[1]);
        for text in [
            table.source_table,
            table.shadow_table,
            table.source_fingerprint,
            table.shadow_fingerprint,
            table.target_fingerprint,
        ] {
            self.field(text.as_bytes());
        }
        self.count(table.depends_on.len());
        for parent in table.depends_on {
            self.field(parent.as_bytes());
        }
        self.count(statements.len());
        for statement in statements {
            self.int(statement.script_index);
            self.field(statement.sql.as_bytes());
            self.field(statement.expected_fingerprint_after.as_bytes());
        }
    }

    /// Ends the plan and returns the hex SHA-256. `terms` is `None` for an analysis preview,
    /// whose strategy and time are not chosen yet; a task's approved hash always has them.
    pub fn finish(mut self, terms: Option<ExecutionTerms>) -> String {
        self.end(terms);
        hex::encode(self.hasher.finalize())
    }

    fn end(&mut self, terms: Option<ExecutionTerms>) {
        self.update(&[0]);
        match terms {
            None => self.update(&[0]),
            Some(terms) => {
                self.update(&[1]);
                self.int(i64::from(terms.error_strategy));
                match terms.scheduled_at {
                    None => self.update(&[0]),
                    Some(at) => {
                        self.update(&[1]);
                        self.int(at);
                    }
                }
            }
        }
    }

    /// The bytes [`PlanDigest::finish`] would hash.
    #[cfg(test)]
    fn encoding(mut self, terms: Option<ExecutionTerms>) -> Vec<u8> {
        self.end(terms);
        self.encoding
    }

    fn field(&mut self, bytes: &[u8]) {
        self.count(bytes.len());
        self.update(bytes);
    }

    fn count(&mut self, n: usize) {
        // usize is at most 64 bits on every supported target.
        self.update(&u64::try_from(n).unwrap_or(u64::MAX).to_be_bytes());
    }

    fn int(&mut self, i: i64) {
        self.update(&i.to_be_bytes());
    }

    fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        #[cfg(test)]
        self.encoding.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests;
