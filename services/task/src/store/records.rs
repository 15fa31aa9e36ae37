//! What the repositories store and return: plain records, free of protobuf and SQL.

use std::collections::BTreeMap;

use shadowsync_common::clock::Micros;

/// A stored connection. `password_ciphertext` is what [`crate::crypto::PasswordCipher`] sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub id: String,
    pub name: String,
    /// `shadowsync.common.v1.Dialect` value.
    pub dialect: i32,
    pub host: String,
    pub port: u32,
    pub username: String,
    pub password_ciphertext: Option<Vec<u8>>,
    pub environment: String,
    pub options: BTreeMap<String, String>,
    pub creator: String,
    pub created_at: Micros,
    pub updated_at: Micros,
}

// Hand-written so the ciphertext never reaches a log either.
impl std::fmt::Debug for ConnectionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password_set", &self.password_ciphertext.is_some())
            .finish_non_exhaustive()
    }
}

/// Filter and page of `ListConnections`.
#[derive(Debug, Clone, Default)]
pub struct ConnectionFilter {
    pub name_contains: String,
    pub environments: Vec<String>,
    pub offset: i64,
    pub limit: i64,
}

/// Analysis status, as stored (the values of `shadowsync.task.v1.AnalysisStatus`).
pub mod status {
    pub const PENDING: i64 = 1;
    pub const RUNNING: i64 = 2;
    pub const SUCCEEDED: i64 = 3;
    pub const FAILED: i64 = 4;
    pub const SUBMITTED: i64 = 5;
    pub const EXPIRED: i64 = 6;
}

/// Table results, as stored (the values of `shadowsync.common.v1.TableAnalysisResult`).
pub mod result {
    pub const CREATE: i64 = 1;
    pub const UPDATE: i64 = 2;
    pub const NO_ACTION: i64 = 3;
    pub const SOURCE_MISSING: i64 = 4;
    pub const UNSUPPORTED: i64 = 5;
}

/// Why an analysis failed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailureRecord {
    /// `shadowsync.common.v1.AnalysisFailureReason` value.
    pub reason: i64,
    pub message: String,
    pub retryable: bool,
}

/// An analysis header (its rows live in [`TableRow`] / [`StatementRow`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisRecord {
    pub id: String,
    pub connection_id: String,
    pub connection_name: String,
    pub database: String,
    /// `shadowsync.common.v1.SyncRange` value.
    pub range: i64,
    /// The PARTIAL list, as requested.
    pub requested_tables: Vec<String>,
    /// `shadowsync.common.v1.ShadowNamingMode` value (never UNSPECIFIED once stored).
    pub naming_mode: i64,
    pub affix: String,
    pub status: i64,
    pub tables_done: i64,
    pub tables_total: i64,
    pub progress_percent: i64,
    pub failure: Option<FailureRecord>,
    pub server_version: String,
    pub creator: String,
    pub created_at: Micros,
    pub updated_at: Micros,
    pub expire_at: Micros,
    pub task_id: i64,
    pub preview: PreviewSummary,
    pub previous_analysis_id: String,
    pub attempt: i64,
    /// Source tables to plan as skipped from the start (Initiate Again carries them over).
    pub initial_skips: Vec<String>,
}

/// The current SQL preview's identity and size.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PreviewSummary {
    pub etag: String,
    pub statement_count: i64,
    pub size_bytes: i64,
    pub sha256: String,
}

/// Counts over an analysis' rows, for the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RowCounts {
    pub total: i64,
    pub synced: i64,
    pub create: i64,
    pub update: i64,
    pub no_action: i64,
    pub unsyncable: i64,
}

/// One analysed source table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableRow {
    /// Stable id within the analysis.
    pub row_no: i64,
    /// Position in the latest plan.
    pub ordinal: i64,
    pub source_table: String,
    pub shadow_table: String,
    pub result: i64,
    pub original_result: i64,
    pub skipped: bool,
    /// Skipped with a skipped parent, not by the user (stored as `skipped = 2`): its shadow would
    /// reference a production table. Un-skipping the parent restores it.
    pub cascaded: bool,
    pub replanned: bool,
    pub reason: String,
    pub source_ddl: String,
    pub shadow_ddl: String,
    pub source_fingerprint: String,
    pub shadow_fingerprint: String,
    pub target_fingerprint: String,
    pub depends_on: Vec<String>,
    pub statement_count: i64,
}

impl TableRow {
    /// On the Synchronized Tables tab.
    pub fn is_synced(&self) -> bool {
        matches!(self.result, result::CREATE | result::UPDATE) && !self.skipped
    }
}

/// One statement of the change script.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatementRow {
    /// Position in the whole script of the latest plan.
    pub script_index: i64,
    pub row_no: i64,
    /// Position within its table's statements.
    pub statement_index: i64,
    pub sql: String,
    pub expected_fingerprint_after: String,
}

/// A statement of the preview, with its table's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptLine {
    pub script_index: i64,
    pub source_table: String,
    pub shadow_table: String,
    pub sql: String,
}

/// Which tab of an analysis' rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    #[default]
    Both,
    Synced,
    Unsynced,
}

/// Filter and page over an analysis' rows.
#[derive(Debug, Clone, Default)]
pub struct RowFilter {
    pub tab: Tab,
    pub table_contains: String,
    pub offset: i64,
    pub limit: i64,
}

/// A table's new plan after a re-plan (matched to its row by source name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplannedTable {
    pub row: TableRow,
    pub statements: Vec<StatementRow>,
}
