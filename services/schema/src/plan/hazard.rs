//! Hazards of a planned statement and the risk level of a table, from the models before and
//! after the statement and MariaDB's documented online-DDL rules for InnoDB (10.4 and later):
//!
//! - `ALGORITHM=INSTANT`/`NOCOPY` (no hazard): adding, dropping or reordering columns, extending a
//!   `VARCHAR` within its length-byte class, making a column nullable, changing a default or a
//!   comment, dropping an index or a foreign key, renaming.
//! - `INPLACE` with a rebuild (`TABLE_REBUILD`, writes go on): a primary key change, `NULL` to
//!   `NOT NULL`, `ROW_FORMAT`/`KEY_BLOCK_SIZE`, the first `FULLTEXT` index.
//! - `COPY` (`TABLE_REBUILD` and `BLOCKS_WRITES`: the copy holds `LOCK=SHARED`): any other
//!   type, charset or collation change, a stored generated column, `AUTO_INCREMENT` added, an
//!   engine change, every change of a non-InnoDB table, re-partitioning, adding a `CHECK`
//!   (validated by copying) and adding a foreign key with `foreign_key_checks` on.
//! - `FULLTEXT`/`SPATIAL` index builds take `LOCK=SHARED` (`BLOCKS_WRITES`).
//!
//! `CREATE TABLE` makes an empty table: no hazard.

use serde::{Deserialize, Serialize};

use crate::model::{Column, IndexKind, PartitionMethod, Table};

/// What a statement does to the table besides changing its definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HazardKind {
    /// The table is copied (`ALGORITHM=COPY`) or rebuilt in place: time and space grow with
    /// its size.
    TableRebuild,
    /// The statement needs `LOCK=SHARED` or stronger: writes wait until it ends.
    BlocksWrites,
    /// A column, partition or table of the shadow is dropped with the test data it holds.
    DeletesData,
    /// An index is built from the table's rows.
    IndexBuild,
    /// Adding a foreign key scans the child's rows to validate them.
    FkValidation,
}

impl HazardKind {
    /// The name used in SQL comments and on the wire (`TABLE_REBUILD`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TableRebuild => "TABLE_REBUILD",
            Self::BlocksWrites => "BLOCKS_WRITES",
            Self::DeletesData => "DELETES_DATA",
            Self::IndexBuild => "INDEX_BUILD",
            Self::FkValidation => "FK_VALIDATION",
        }
    }
}

/// One hazard of a statement, with a one-line explanation of its cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hazard {
    pub kind: HazardKind,
    pub explanation: String,
}

/// How much a table's statements can disturb the shadow and its users; ordered, so the
/// highest of several is their `max`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RiskLevel {
    /// No hazard: metadata-only or instant changes, or a new table.
    #[default]
    Low,
    /// Rebuilds, index builds or validations that let writes go on, or short write blocks.
    Medium,
    /// Test data is deleted, or the whole table is copied while writes wait.
    High,
}

impl RiskLevel {
    /// `LOW`, `MEDIUM` or `HIGH`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
        }
    }

    /// The risk of one statement with these hazards.
    pub fn of(hazards: &[Hazard]) -> Self {
        let has = |kind| hazards.iter().any(|hazard| hazard.kind == kind);
        if has(HazardKind::DeletesData)
            || (has(HazardKind::TableRebuild) && has(HazardKind::BlocksWrites))
        {
            Self::High
        } else if hazards.is_empty() {
            Self::Low
        } else {
            Self::Medium
        }
    }
}

/// Collects reasons per kind; one hazard per kind, its reasons joined.
#[derive(Default)]
struct Findings(Vec<(HazardKind, Vec<String>)>);

impl Findings {
    fn add(&mut self, kind: HazardKind, reason: impl Into<String>) {
        let reason = reason.into();
        match self.0.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, reasons)) => {
                if !reasons.contains(&reason) {
                    reasons.push(reason);
                }
            }
            None => self.0.push((kind, vec![reason])),
        }
    }

    /// A copy rebuilds the table and blocks writes for as long as it runs.
    fn copy(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        self.add(
            HazardKind::TableRebuild,
            format!("{reason} (ALGORITHM=COPY)"),
        );
        self.add(
            HazardKind::BlocksWrites,
            format!("{reason} copies the table under LOCK=SHARED"),
        );
    }

    fn into_hazards(mut self) -> Vec<Hazard> {
        self.0.sort_by_key(|(kind, _)| *kind);
        self.0
            .into_iter()
            .map(|(kind, reasons)| Hazard {
                kind,
                explanation: reasons.join("; "),
            })
            .collect()
    }
}

/// The hazards of the statement that takes the shadow from `before` to `after` (`before` is
/// `None` for `CREATE TABLE`).
pub fn hazards(before: Option<&Table>, after: &Table) -> Vec<Hazard> {
    let Some(before) = before else {
        return Vec::new();
    };
    let mut found = Findings::default();
    let key = |name: &str| name.to_lowercase();
    let innodb = |table: &Table| {
        table
            .options
            .engine
            .as_deref()
            .is_none_or(|engine| engine.eq_ignore_ascii_case("InnoDB"))
    };
    if before.options.engine != after.options.engine {
        found.copy("changing the engine");
    }

    // Columns.
    for column in &before.columns {
        if after.column(&column.name).is_none() {
            found.add(
                HazardKind::DeletesData,
                format!("drops column `{}` and its data", column.name),
            );
        }
    }
    for column in &after.columns {
        match before.column(&column.name) {
            None => {
                if column
                    .generated
                    .as_ref()
                    .is_some_and(|g| g.storage == crate::model::GeneratedStorage::Stored)
                {
                    found.copy(format!(
                        "adding the stored generated column `{}`",
                        column.name
                    ));
                } else if column.auto_increment {
                    found.copy(format!(
                        "adding the AUTO_INCREMENT column `{}`",
                        column.name
                    ));
                }
            }
            Some(old) => column_change(&mut found, old, column),
        }
    }

    // Keys.
    if before.primary_key != after.primary_key {
        found.add(
            HazardKind::TableRebuild,
            "changing the primary key rebuilds the table (clustered index)",
        );
        if after.primary_key.is_some() {
            found.add(HazardKind::IndexBuild, "builds the primary key");
        }
    }
    let had_fulltext = before
        .indexes
        .iter()
        .any(|index| index.kind == IndexKind::Fulltext);
    for index in &after.indexes {
        let unchanged = before
            .indexes
            .iter()
            .any(|old| key(&old.name) == key(&index.name) && old == index);
        if unchanged {
            continue;
        }
        found.add(
            HazardKind::IndexBuild,
            format!("builds index `{}` from the table's rows", index.name),
        );
        if matches!(index.kind, IndexKind::Fulltext | IndexKind::Spatial) {
            found.add(
                HazardKind::BlocksWrites,
                format!(
                    "a FULLTEXT/SPATIAL index (`{}`) is built under LOCK=SHARED",
                    index.name
                ),
            );
            if index.kind == IndexKind::Fulltext && !had_fulltext {
                found.add(
                    HazardKind::TableRebuild,
                    "the first FULLTEXT index adds a hidden FTS_DOC_ID column (rebuild)",
                );
            }
        }
    }
    let added_fks: Vec<_> = after
        .foreign_keys
        .iter()
        .filter(|fk| {
            !before
                .foreign_keys
                .iter()
                .any(|old| old.name.eq_ignore_ascii_case(&fk.name) && old == *fk)
        })
        .collect();
    for fk in &added_fks {
        found.add(
            HazardKind::FkValidation,
            format!(
                "adding foreign key `{}` checks every row against `{}`",
                fk.name, fk.referenced_table
            ),
        );
    }
    if !added_fks.is_empty() {
        found.copy("adding a foreign key with foreign_key_checks on");
    }
    let added_check = after.checks.iter().any(|check| {
        !before
            .checks
            .iter()
            .any(|old| old.expression == check.expression)
    });
    if added_check {
        found.copy("adding a CHECK constraint validates the rows by copying");
    }

    // Options.
    let (old, new) = (&before.options, &after.options);
    if old.row_format != new.row_format
        || old.other.get("KEY_BLOCK_SIZE") != new.other.get("KEY_BLOCK_SIZE")
    {
        found.add(
            HazardKind::TableRebuild,
            "a new ROW_FORMAT or KEY_BLOCK_SIZE rebuilds the table",
        );
    }
    if (old.charset != new.charset || old.collation != new.collation) && !innodb(after) {
        found.copy("changing the default charset of a non-InnoDB table");
    }

    partition_change(&mut found, before, after);

    if !innodb(before) || !innodb(after) {
        let changed = structure_changed(before, after);
        if changed {
            found.copy(format!(
                "a {} table is altered by copying",
                after.options.engine.as_deref().unwrap_or("non-InnoDB")
            ));
        }
    }
    found.into_hazards()
}

fn structure_changed(before: &Table, after: &Table) -> bool {
    let mut a = crate::fingerprint::canonical(before);
    let mut b = crate::fingerprint::canonical(after);
    // Comments are metadata on every engine.
    a.options.comment.clear();
    b.options.comment.clear();
    a != b
}

fn column_change(found: &mut Findings, old: &Column, new: &Column) {
    let name = &new.name;
    let generated = |c: &Column| c.generated.clone();
    if generated(old) != generated(new) {
        let stored = |c: &Column| {
            c.generated
                .as_ref()
                .is_some_and(|g| g.storage == crate::model::GeneratedStorage::Stored)
        };
        if stored(old) != stored(new) || stored(new) {
            found.copy(format!("changing the stored expression of `{name}`"));
            if old.generated.is_none() {
                found.add(
                    HazardKind::DeletesData,
                    format!("`{name}` becomes generated: its stored values are replaced"),
                );
            }
        }
    }
    let type_changed = old.data_type != new.data_type
        || old.charset != new.charset
        || old.collation != new.collation;
    if type_changed && !instant_varchar_extension(old, new) {
        found.copy(format!("changing the type of `{name}`"));
    }
    if old.nullable && !new.nullable {
        found.add(
            HazardKind::TableRebuild,
            format!("`{name}` becomes NOT NULL: the table is rebuilt in place to check it"),
        );
    }
    if new.auto_increment && !old.auto_increment {
        found.copy(format!("adding AUTO_INCREMENT to `{name}`"));
    }
}

/// A `VARCHAR` that only grows, keeping its charset and collation, and stays in the same
/// length-byte class (≤ 255 bytes or more) is changed instantly.
fn instant_varchar_extension(old: &Column, new: &Column) -> bool {
    let (a, b) = (&old.data_type, &new.data_type);
    if a.name != "varchar" || b.name != "varchar" {
        return false;
    }
    if old.charset != new.charset || old.collation != new.collation {
        return false;
    }
    let (Some(&from), Some(&to)) = (a.params.first(), b.params.first()) else {
        return false;
    };
    let bytes_per_char = match old.charset.as_deref().unwrap_or("utf8mb4") {
        "latin1" | "ascii" | "binary" => 1,
        "utf8mb3" | "utf8" => 3,
        "ucs2" => 2,
        _ => 4,
    };
    to >= from && ((to * bytes_per_char <= 255) == (from * bytes_per_char <= 255))
}

fn partition_change(found: &mut Findings, before: &Table, after: &Table) {
    if before.partitioning == after.partitioning {
        return;
    }
    let (Some(old), Some(new)) = (&before.partitioning, &after.partitioning) else {
        found.copy("partitioning or un-partitioning the table");
        return;
    };
    let same_function = old.method == new.method
        && old.linear == new.linear
        && old.expression == new.expression
        && old.key_algorithm == new.key_algorithm
        && old.subpartitioning == new.subpartitioning;
    if !same_function {
        found.copy("re-partitioning the table");
        return;
    }
    if matches!(old.method, PartitionMethod::Hash | PartitionMethod::Key) {
        found.copy("changing the number of HASH/KEY partitions redistributes every row");
        return;
    }
    let appended = new.partitions.starts_with(&old.partitions);
    if appended {
        // ADD PARTITION for RANGE/LIST creates empty partitions.
        return;
    }
    // DROP PARTITION (the new list is the old one minus some partitions) deletes their rows;
    // anything else rewrites partitions, keeping every row (a row that fits no new partition
    // fails the statement instead).
    let mut remaining = new.partitions.iter().peekable();
    let mut dropped = Vec::new();
    for partition in &old.partitions {
        if remaining.peek() == Some(&partition) {
            remaining.next();
        } else {
            dropped.push(partition.name.as_str());
        }
    }
    if remaining.peek().is_none() {
        for name in dropped {
            found.add(
                HazardKind::DeletesData,
                format!("drops partition `{name}` and the rows it holds"),
            );
        }
        return;
    }
    found.add(
        HazardKind::TableRebuild,
        "rewriting partitions copies their rows (REORGANIZE PARTITION or PARTITION BY)",
    );
    found.add(
        HazardKind::BlocksWrites,
        "rewriting partitions blocks writes while it copies",
    );
}
