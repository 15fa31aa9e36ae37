//! Plans: per-table results and the ordered change script.

mod build;
pub mod hazard;
mod isolation;
mod names;
mod table;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use build::plan;
pub use hazard::{Hazard, HazardKind, RiskLevel};

use crate::catalog::SyncRange;
use crate::naming::ShadowNaming;

/// What the caller asks to analyse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisRequest {
    pub range: SyncRange,
    pub naming: ShadowNaming,
    /// Source tables the user skipped: their shadows are neither created nor altered. A table
    /// whose parent's shadow will then not exist is skipped with it (a shadow never references
    /// a production table); its reason says so.
    pub skipped: BTreeSet<String>,
}

/// The outcome for one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncResult {
    /// The shadow is missing; the statements create it.
    Create,
    /// The shadow exists and differs; the statements alter it.
    Update,
    /// The shadow exists with the same structure.
    NoAction,
    /// The source table is gone (dropped after it was listed).
    SourceMissing,
    /// The table cannot be synced; `reason` says why.
    Unsupported,
}

impl SyncResult {
    /// Results that carry change statements.
    pub fn needs_sync(self) -> bool {
        matches!(self, Self::Create | Self::Update)
    }
}

/// One statement with the shadow's fingerprint once it has run (the executor resumes by it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStatement {
    pub sql: String,
    pub expected_fingerprint_after: String,
    /// What running it does to the shadow besides changing its definition (empty for
    /// `CREATE TABLE`), one entry per kind, in [`HazardKind`] order.
    #[serde(default)]
    pub hazards: Vec<Hazard>,
    /// Why this statement is not merged into the table's previous one (`None` for a table's
    /// first statement).
    #[serde(default)]
    pub separate_reason: Option<String>,
}

/// The analysis of one source table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablePlan {
    pub source: String,
    /// `None` when no shadow name is possible (see `reason`).
    pub shadow: Option<String>,
    pub result: SyncResult,
    pub reason: Option<String>,
    /// True when the user skipped this table, or it is skipped with a skipped parent (its
    /// reason then says "skipped with ..."): it keeps its result but runs nothing.
    pub skipped: bool,
    pub source_ddl: Option<String>,
    pub shadow_ddl: Option<String>,
    /// This table's statements in execution order (see [`Plan::order`] for the interleaving).
    pub statements: Vec<PlannedStatement>,
    pub source_fingerprint: Option<String>,
    /// The shadow's fingerprint at analysis time (`None` when missing).
    pub shadow_fingerprint: Option<String>,
    /// The shadow's fingerprint once every statement has run.
    pub target_fingerprint: Option<String>,
    /// Source tables whose shadows this table's foreign keys reference and that change in this
    /// plan: they run first.
    pub depends_on: Vec<String>,
    /// The highest risk of this table's statements (`LOW` when it has none).
    #[serde(default)]
    pub risk: RiskLevel,
}

/// A reference to `tables[table].statements[statement]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementRef {
    pub table: usize,
    pub statement: usize,
}

/// The analysis of a whole request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub database: String,
    pub naming: ShadowNaming,
    /// One entry per source table: sorted by name for *All*, in request order for a partial
    /// range.
    pub tables: Vec<TablePlan>,
    /// Every statement to run, in execution order. Parents come before children; foreign keys
    /// closing a dependency cycle are added at the end.
    pub order: Vec<StatementRef>,
}

impl Plan {
    /// The change script's statements in execution order.
    pub fn statements(&self) -> impl Iterator<Item = (&TablePlan, &PlannedStatement)> {
        self.order.iter().filter_map(|reference| {
            let table = self.tables.get(reference.table)?;
            Some((table, table.statements.get(reference.statement)?))
        })
    }

    /// The script as text: each statement followed by `;` and a newline.
    pub fn sql_script(&self) -> String {
        let mut script = String::new();
        for (_, statement) in self.statements() {
            script.push_str(&statement.sql);
            script.push_str(";\n");
        }
        script
    }

    /// The script for a person to read: each statement preceded by `--` comment lines naming
    /// its table's risk on the table's first statement, why it is a separate statement when
    /// it is, and each of its hazards. The statements are exactly [`Self::sql_script`]'s.
    pub fn sql_preview(&self) -> String {
        let mut script = String::new();
        for (table, statement) in self.statements() {
            let first = table
                .statements
                .first()
                .is_some_and(|s| std::ptr::eq(s, statement));
            if first {
                script.push_str(&format!(
                    "-- {}: risk {}\n",
                    table.shadow.as_deref().unwrap_or(&table.source),
                    table.risk.as_str()
                ));
            }
            if let Some(reason) = &statement.separate_reason {
                script.push_str(&format!("-- separate statement: {}\n", one_line(reason)));
            }
            for hazard in &statement.hazards {
                script.push_str(&format!(
                    "-- hazard {}: {}\n",
                    hazard.kind.as_str(),
                    one_line(&hazard.explanation)
                ));
            }
            script.push_str(&statement.sql);
            script.push_str(";\n");
        }
        script
    }

    /// The highest risk of the tables that run statements (skipped ones do not).
    pub fn risk(&self) -> RiskLevel {
        self.tables
            .iter()
            .filter(|table| !table.skipped && table.result.needs_sync())
            .map(|table| table.risk)
            .max()
            .unwrap_or_default()
    }

    /// The plan for `source`, if it is in the range.
    pub fn table(&self, source: &str) -> Option<&TablePlan> {
        self.tables.iter().find(|table| table.source == source)
    }
}

/// Text kept on one comment line: line breaks (which would end the comment) become spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
