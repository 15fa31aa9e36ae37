//! Diff of one shadow table against its desired state, as ordered DDL steps.
//!
//! Both sides are normalized models of the same server. The desired model is the source under
//! the shadow's name with foreign keys already pointing where they should and new constraint
//! names already chosen (see `plan`). The output is as few statements as MySQL-family servers
//! accept: one `ALTER TABLE` holding every change, plus a separate statement, whose
//! [`Step::separate_reason`] says why, only for partition maintenance (MariaDB runs it alone),
//! a foreign key dropped and re-added under the same name, option resets after an engine
//! change, or a foreign key whose parent is not ready yet (dependency cycles).

use std::collections::HashMap;

use crate::model::{Column, ForeignKey, GeneratedStorage, Index, IndexTarget, Table};
use crate::render::{self, Flavor, quote_identifier};

mod options;
mod partition;
use options::option_changes;

/// One statement and the shadow's model once it has run.
#[derive(Debug, Clone)]
pub struct Step {
    pub sql: String,
    pub after: Table,
    /// Why this statement is not part of the table's previous one (`None` for the first).
    pub separate_reason: Option<String>,
}

/// The statements that take a shadow to its desired state.
#[derive(Debug, Clone, Default)]
pub struct TableChange {
    /// Run in order, as soon as the table's turn comes.
    pub steps: Vec<Step>,
    /// Foreign keys whose parent is not ready at the table's turn; run after every table's
    /// main steps.
    pub deferred: Option<Step>,
}

/// `CREATE TABLE` for a missing shadow. `ready(fk)` says whether the parent of `fk` exists when
/// the statement runs; the others are added by a deferred `ALTER TABLE`.
pub fn create(desired: &Table, flavor: Flavor, ready: &dyn Fn(&ForeignKey) -> bool) -> TableChange {
    let (now, later): (Vec<ForeignKey>, Vec<ForeignKey>) = desired
        .foreign_keys
        .iter()
        .cloned()
        .partition(|fk| ready(fk));
    let mut first = desired.clone();
    first.foreign_keys = now;
    let steps = vec![Step {
        sql: render::create_table(&first, flavor),
        after: first,
        separate_reason: None,
    }];
    let deferred = add_foreign_keys(&desired.name, &later, desired, CYCLE_REASON);
    TableChange { steps, deferred }
}

/// Why foreign keys whose parent is not ready are added by a later statement.
const CYCLE_REASON: &str =
    "the foreign keys' parent shadows are created or changed later (a dependency cycle)";

fn add_foreign_keys(
    table: &str,
    foreign_keys: &[ForeignKey],
    after: &Table,
    reason: &str,
) -> Option<Step> {
    if foreign_keys.is_empty() {
        return None;
    }
    let clauses: Vec<String> = foreign_keys
        .iter()
        .map(|fk| format!("ADD {}", render::foreign_key(fk)))
        .collect();
    Some(Step {
        sql: format!(
            "ALTER TABLE {} {}",
            quote_identifier(table),
            clauses.join(", ")
        ),
        after: after.clone(),
        separate_reason: Some(reason.to_owned()),
    })
}

fn key(name: &str) -> String {
    name.to_lowercase()
}

/// Equal definitions, names spelt alike (the servers match names case-insensitively, but print
/// them as written, so a case-only difference is a difference).
fn same_column(a: &Column, b: &Column) -> bool {
    // Destructured so that a new field cannot be forgotten here.
    let Column {
        name,
        data_type,
        charset,
        collation,
        nullable,
        default,
        auto_increment,
        on_update,
        generated,
        comment,
        invisible,
        check,
        extra,
    } = a;
    // Exact spelling: a column whose name differs only in case is renamed to the source's.
    *name == b.name
        && *data_type == b.data_type
        && *charset == b.charset
        && *collation == b.collation
        && *nullable == b.nullable
        && *default == b.default
        && *auto_increment == b.auto_increment
        && *on_update == b.on_update
        && *generated == b.generated
        && *comment == b.comment
        && *invisible == b.invisible
        && *check == b.check
        && *extra == b.extra
}

/// Lower-case names of the columns both tables have whose change a foreign key on them
/// forbids while it exists: MariaDB 10.11 refuses any change of type, length, charset or
/// collation of a column a foreign key uses, at either end (error 1832/1833), even with
/// `foreign_key_checks = 0`, and cannot drop and re-add it in place (storage switches). Other
/// changes (comment, default, nullability, a case-only rename) run with the key in place.
pub(crate) fn key_blocking_columns(current: &Table, desired: &Table) -> Vec<String> {
    desired
        .columns
        .iter()
        .filter(|column| {
            current.column(&column.name).is_some_and(|old| {
                old.data_type != column.data_type
                    || old.charset != column.charset
                    || old.collation != column.collation
                    || needs_recreate(old, column)
            })
        })
        .map(|column| key(&column.name))
        .collect()
}

/// Lower-case names of the columns that become NOT NULL (an `ON ... SET NULL` key on them
/// must go first: the server refuses the change while it exists).
fn made_not_null(current: &Table, desired: &Table) -> Vec<String> {
    desired
        .columns
        .iter()
        .filter(|column| {
            !column.nullable && current.column(&column.name).is_some_and(|old| old.nullable)
        })
        .map(|column| key(&column.name))
        .collect()
}

/// MariaDB cannot switch a generated column's storage (or make a column generated) in place.
fn needs_recreate(current: &Column, desired: &Column) -> bool {
    let storage = |c: &Column| c.generated.as_ref().map(|g| g.storage);
    storage(current) != storage(desired)
        || (storage(desired) == Some(GeneratedStorage::Stored)
            && current.generated != desired.generated)
}

/// Equal foreign keys but for their names. Column names compare by exact spelling: a key keeps
/// the spelling it was declared with when a column's case is renamed (MariaDB 10.11 prints
/// the old spelling), so only a key declared again reads back as the source's.
pub(crate) fn same_foreign_key(a: &ForeignKey, b: &ForeignKey) -> bool {
    a.columns == b.columns
        && a.referenced_schema == b.referenced_schema
        && a.referenced_table == b.referenced_table
        && a.referenced_columns == b.referenced_columns
        && a.on_delete == b.on_delete
        && a.on_update == b.on_update
}

fn index_uses(index: &Index, columns: &[String]) -> bool {
    index.parts.iter().any(|part| match &part.target {
        IndexTarget::Column(name) => columns.contains(&key(name)),
        // An expression may use any column; rebuilding it is always safe.
        IndexTarget::Expression(_) => !columns.is_empty(),
    })
}

/// Equal indexes, column names compared case-insensitively: renaming a column's case renames
/// it in every index, so such an index need not be rebuilt.
fn same_index(a: &Index, b: &Index) -> bool {
    let fold = |index: &Index| {
        let mut index = index.clone();
        for part in &mut index.parts {
            if let IndexTarget::Column(name) = &mut part.target {
                *name = key(name);
            }
        }
        index
    };
    fold(a) == fold(b)
}

/// True when `index`'s leading columns are `columns`, in order: InnoDB would use it for a
/// foreign key on them.
fn serves(index: &Index, columns: &[String]) -> bool {
    index.parts.len() >= columns.len()
        && index.parts.iter().zip(columns).all(|(part, column)| {
            matches!(&part.target, IndexTarget::Column(name) if key(name) == key(column))
                && part.prefix_length.is_none()
        })
}

/// The longest common subsequence of two name lists (columns that need not move).
fn stable_columns(current: &[String], desired: &[String]) -> Vec<String> {
    let (n, m) = (current.len(), desired.len());
    let mut table = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i][j] = if current[i] == desired[j] {
                table[i + 1][j + 1] + 1
            } else {
                table[i + 1][j].max(table[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n && j < m {
        if current[i] == desired[j] {
            out.push(current[i].clone());
            i += 1;
            j += 1;
        } else if table[i + 1][j] >= table[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// `ALTER TABLE` steps taking `current` to `desired` (both normalized, same name); empty when
/// they are structurally equal.
pub fn alter(
    current: &Table,
    desired: &Table,
    flavor: Flavor,
    ready: &dyn Fn(&ForeignKey) -> bool,
) -> TableChange {
    let mut clauses: Vec<String> = Vec::new();
    let current_columns: HashMap<String, &Column> =
        current.columns.iter().map(|c| (key(&c.name), c)).collect();
    let desired_keys: Vec<String> = desired.columns.iter().map(|c| key(&c.name)).collect();

    // Columns whose change a foreign key on them forbids (such keys are rebuilt around it).
    let blocking_columns = key_blocking_columns(current, desired);
    let not_null_columns = made_not_null(current, desired);
    let recreated: Vec<String> = desired
        .columns
        .iter()
        .filter(|column| {
            current_columns
                .get(&key(&column.name))
                .is_some_and(|old| needs_recreate(old, column))
        })
        .map(|column| key(&column.name))
        .collect();

    // Foreign keys: matched by definition, never by name.
    let mut unmatched_current: Vec<&ForeignKey> = current.foreign_keys.iter().collect();
    let mut kept_fks = Vec::new();
    let mut added_fks = Vec::new();
    for fk in &desired.foreign_keys {
        // A server refuses to change a column an FK uses (either end, for a self-reference)
        // while the FK exists: such FKs are dropped and added back around the change.
        let self_reference = key(&fk.referenced_table) == key(&desired.name);
        let sets_null = [&fk.on_delete, &fk.on_update]
            .iter()
            .any(|rule| rule.as_deref() == Some("SET NULL"));
        let touches_change = fk.columns.iter().any(|c| {
            blocking_columns.contains(&key(c)) || (sets_null && not_null_columns.contains(&key(c)))
        }) || (self_reference
            && fk
                .referenced_columns
                .iter()
                .any(|c| blocking_columns.contains(&key(c))));
        match unmatched_current
            .iter()
            .position(|old| same_foreign_key(old, fk))
            .filter(|_| !touches_change)
        {
            Some(position) => {
                // Kept under its current name; its column names read back as the desired ones
                // (a case-only rename renames them in the key too).
                let mut kept = fk.clone();
                kept.name
                    .clone_from(&unmatched_current.remove(position).name);
                kept_fks.push(kept);
            }
            None => added_fks.push(fk.clone()),
        }
    }
    let dropped_fks: Vec<&ForeignKey> = unmatched_current;
    for fk in &dropped_fks {
        clauses.push(format!("DROP FOREIGN KEY {}", quote_identifier(&fk.name)));
    }

    // Checks: matched by expression.
    let mut unmatched_checks: Vec<_> = current.checks.iter().collect();
    let mut added_checks = Vec::new();
    let mut kept_checks = Vec::new();
    for check in &desired.checks {
        match unmatched_checks
            .iter()
            .position(|old| old.expression == check.expression)
        {
            Some(position) => kept_checks.push(unmatched_checks.remove(position).clone()),
            None => added_checks.push(check.clone()),
        }
    }
    for check in &unmatched_checks {
        clauses.push(format!("DROP CONSTRAINT {}", quote_identifier(&check.name)));
    }

    // An index InnoDB created by itself for a foreign key is replaced, under the new key's
    // name, whenever a key on the same columns is added; SHOW CREATE TABLE does not tell such
    // an index from a declared one. So an existing index that will serve an added key is
    // declared again in the same statement (adding a key copies the table anyway), and keeps
    // the source's name.
    let refreshed: Vec<String> = current
        .indexes
        .iter()
        .filter(|index| added_fks.iter().any(|fk| serves(index, &fk.columns)))
        .map(|index| key(&index.name))
        .collect();

    // Indexes: matched by name; a changed index, or one on a recreated column, is rebuilt.
    let desired_indexes: HashMap<String, &Index> =
        desired.indexes.iter().map(|i| (key(&i.name), i)).collect();
    let current_indexes: HashMap<String, &Index> =
        current.indexes.iter().map(|i| (key(&i.name), i)).collect();
    for index in &current.indexes {
        let rebuild = match desired_indexes.get(&key(&index.name)) {
            Some(wanted) => {
                !same_index(wanted, index)
                    || index_uses(index, &recreated)
                    || refreshed.contains(&key(&index.name))
            }
            None => true,
        };
        if rebuild {
            clauses.push(format!("DROP INDEX {}", quote_identifier(&index.name)));
        }
    }
    let primary_changed = match (&current.primary_key, &desired.primary_key) {
        (Some(old), Some(new)) => !same_index(old, new),
        (None, None) => false,
        _ => true,
    } || current
        .primary_key
        .as_ref()
        .is_some_and(|pk| index_uses(pk, &recreated));
    if primary_changed && current.primary_key.is_some() {
        clauses.push("DROP PRIMARY KEY".into());
    }

    // Columns: drops, then adds and changes in desired order with positions where needed.
    for column in &current.columns {
        let name = key(&column.name);
        if !desired_keys.contains(&name) || recreated.contains(&name) {
            clauses.push(format!("DROP COLUMN {}", quote_identifier(&column.name)));
        }
    }
    let kept_current: Vec<String> = current
        .columns
        .iter()
        .map(|c| key(&c.name))
        .filter(|name| desired_keys.contains(name) && !recreated.contains(name))
        .collect();
    let kept_desired: Vec<String> = desired_keys
        .iter()
        .filter(|name| kept_current.contains(name))
        .cloned()
        .collect();
    let stable = stable_columns(&kept_current, &kept_desired);
    let mut previous: Option<&Column> = None;
    for column in &desired.columns {
        let name = key(&column.name);
        let position = match previous {
            None => " FIRST".to_owned(),
            Some(prev) => format!(" AFTER {}", quote_identifier(&prev.name)),
        };
        match current_columns.get(&name) {
            Some(old) if !recreated.contains(&name) => {
                let moved = !stable.contains(&name);
                if moved || !same_column(old, column) {
                    let position = if moved { position.as_str() } else { "" };
                    clauses.push(format!(
                        "CHANGE COLUMN {} {}{position}",
                        quote_identifier(&old.name),
                        render::column(column)
                    ));
                }
            }
            _ => clauses.push(format!("ADD COLUMN {}{position}", render::column(column))),
        }
        previous = Some(column);
    }

    if primary_changed && let Some(pk) = &desired.primary_key {
        clauses.push(format!("ADD {}", render::index(pk, flavor)));
    }
    for index in &desired.indexes {
        let rebuild = match current_indexes.get(&key(&index.name)) {
            Some(old) => {
                !same_index(old, index)
                    || index_uses(old, &recreated)
                    || refreshed.contains(&key(&index.name))
            }
            None => true,
        };
        if rebuild {
            clauses.push(format!("ADD {}", render::index(index, flavor)));
        }
    }
    for check in &added_checks {
        clauses.push(format!("ADD {}", render::check(check)));
    }
    let (options, resets) = option_changes(current, desired);
    clauses.extend(options);
    // A server keeps engine-specific options across an engine change and ignores their reset in
    // the same statement (MariaDB: Aria's PAGE_CHECKSUM on MyISAM), so resets follow separately.
    let engine_changed = current.options.engine != desired.options.engine;
    let separate_resets = engine_changed && !resets.is_empty();
    if !separate_resets {
        clauses.extend(resets.iter().map(|(key, value)| format!("{key}={value}")));
    }

    // Foreign keys to add now go into the same statement unless some were dropped in it.
    let (ready_fks, deferred_fks): (Vec<ForeignKey>, Vec<ForeignKey>) =
        added_fks.into_iter().partition(|fk| ready(fk));
    // A key dropped and added under the same name cannot share a statement (the server checks
    // the new name before dropping the old); different names can, and do.
    let separate_fk_step = ready_fks.iter().any(|fk| {
        dropped_fks
            .iter()
            .any(|old| old.name.eq_ignore_ascii_case(&fk.name))
    });
    if !separate_fk_step {
        for fk in &ready_fks {
            clauses.push(format!("ADD {}", render::foreign_key(fk)));
        }
    }

    // Partition maintenance (ADD/DROP/REORGANIZE/COALESCE PARTITION) is lighter than
    // re-partitioning but MariaDB accepts it only alone in its ALTER TABLE; when the other
    // changes copy the table anyway, the full clause rides along in that one copy instead.
    let mut partition_clause = String::new();
    let mut partition_step: Option<String> = None;
    if current.partitioning != desired.partitioning {
        let light = match (&current.partitioning, &desired.partitioning) {
            (Some(old), Some(new)) => partition::maintenance(old, new),
            _ => None,
        };
        let mut probe = desired.clone();
        probe.partitioning = current.partitioning.clone();
        probe.foreign_keys = kept_fks.clone();
        let others_rebuild = !clauses.is_empty()
            && crate::plan::hazard::hazards(Some(current), &probe)
                .iter()
                .any(|h| h.kind == crate::plan::hazard::HazardKind::TableRebuild);
        match light {
            Some(maintenance) if !others_rebuild => partition_step = Some(maintenance),
            _ => {
                partition_clause = match &desired.partitioning {
                    Some(partitioning) => render::partitioning(partitioning),
                    None => "REMOVE PARTITIONING".into(),
                }
            }
        }
    }

    // The model after each step: names of kept constraints stay as the shadow has them.
    let mut target = desired.clone();
    target.foreign_keys = kept_fks.clone();
    target.foreign_keys.extend(ready_fks.iter().cloned());
    target.foreign_keys.extend(deferred_fks.iter().cloned());
    target.checks = kept_checks;
    target.checks.extend(added_checks);
    let mut after_main = target.clone();
    after_main.foreign_keys = kept_fks.clone();
    if separate_resets {
        for (key, _) in &resets {
            if let Some(value) = current.options.other.get(key) {
                after_main.options.other.insert(key.clone(), value.clone());
            }
        }
    }
    if !separate_fk_step {
        after_main.foreign_keys.extend(ready_fks.iter().cloned());
    }

    let mut change = TableChange::default();
    let reason =
        |change: &TableChange, why: &str| (!change.steps.is_empty()).then(|| why.to_owned());
    if !clauses.is_empty() || !partition_clause.is_empty() {
        let mut sql = format!("ALTER TABLE {}", quote_identifier(&desired.name));
        if !clauses.is_empty() {
            sql.push(' ');
            sql.push_str(&clauses.join(", "));
        }
        if !partition_clause.is_empty() {
            sql.push('\n');
            sql.push_str(&partition_clause);
        }
        let mut after = after_main.clone();
        if partition_step.is_some() {
            after.partitioning = current.partitioning.clone();
        }
        change.steps.push(Step {
            sql,
            after,
            separate_reason: None,
        });
    }
    if let Some(maintenance) = partition_step {
        let separate_reason = reason(
            &change,
            "MariaDB runs ADD/DROP/REORGANIZE/COALESCE PARTITION only alone in an ALTER TABLE",
        );
        change.steps.push(Step {
            sql: format!(
                "ALTER TABLE {} {maintenance}",
                quote_identifier(&desired.name)
            ),
            after: after_main.clone(),
            separate_reason,
        });
    }
    if separate_resets {
        let sql = resets
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" ");
        after_main.options.other = target.options.other.clone();
        let separate_reason = reason(
            &change,
            "after an engine change the server keeps the old engine's options and ignores \
             their reset in the same statement",
        );
        change.steps.push(Step {
            sql: format!("ALTER TABLE {} {sql}", quote_identifier(&desired.name)),
            after: after_main.clone(),
            separate_reason,
        });
    }
    if separate_fk_step {
        let mut after = after_main.clone();
        after.foreign_keys.extend(ready_fks.iter().cloned());
        let why = "a foreign key dropped and added in one copying ALTER TABLE is refused: the \
                   old key is dropped first";
        if let Some(mut step) = add_foreign_keys(&desired.name, &ready_fks, &after, why) {
            step.separate_reason = reason(&change, why);
            change.steps.push(step);
        }
    }
    change.deferred = add_foreign_keys(&desired.name, &deferred_fks, &target, CYCLE_REASON);
    change
}
