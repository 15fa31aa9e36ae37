//! Building a [`Plan`] from a [`Catalog`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::hazard::{self, RiskLevel};
use super::isolation;
use super::names::{NameAllocator, dependency_order};
use super::table::{Work, analyse, orphan};
use super::{AnalysisRequest, Plan, PlannedStatement, StatementRef, SyncResult, TablePlan};
use crate::catalog::{Catalog, SyncRange};
use crate::diff::{self, Step, TableChange};
use crate::error::{Result, SchemaError};
use crate::fingerprint::fingerprint_normalized;
use crate::model::{ForeignKey, Table};
use crate::render;

/// Analyses every table of `request.range` in `catalog` and orders the change script.
///
/// Fails with [`SchemaError::UnknownTables`] when a partial range names tables that are not
/// base tables of the database. Tables that cannot be synced are reported in the plan
/// (`SOURCE_MISSING`/`UNSUPPORTED` with a reason), not as errors.
pub fn plan(catalog: &Catalog, request: &AnalysisRequest) -> Result<Plan> {
    let naming = &request.naming;
    let context = &catalog.server;
    let sources = catalog
        .resolve_sources(&request.range, naming)
        .map_err(|tables| SchemaError::UnknownTables {
            database: catalog.database.clone(),
            tables,
        })?;
    let base_tables = catalog.base_table_index();

    let mut work: Vec<Work<'_>> = sources
        .iter()
        .map(|s| analyse(catalog, &base_tables, s, request))
        .collect();
    // A shadow never references a non-shadow object: pull in the parents whose shadows are
    // missing, then skip with a skipped parent (or refuse) what would still reference one.
    isolation::add_required_parents(catalog, &base_tables, request, &mut work);
    let skipped = isolation::settle(catalog, &base_tables, request, &mut work);

    // Whose shadow will exist once the script has run: existing ones, and those it creates.
    // `settle` guarantees every same-database parent of a planned table is one of them.
    let parent_shadow = |parent: &str| naming.shadow_name(parent).ok();

    // Constraint names in use anywhere we looked; new shadow constraints avoid all of them.
    let mut fk_names = NameAllocator::new(catalog.tables.values().flat_map(|t| {
        t.model
            .iter()
            .flat_map(|table| table.foreign_keys.iter().map(|fk| fk.name.clone()))
            .collect::<Vec<_>>()
    }));
    let mut check_names = NameAllocator::new(catalog.tables.values().flat_map(|t| {
        t.model
            .iter()
            .flat_map(|table| table.checks.iter().map(|c| c.name.clone()))
            .collect::<Vec<_>>()
    }));

    for item in &mut work {
        let (Some(source), Some(shadow_name)) = (&item.source, &item.plan.shadow) else {
            continue;
        };
        if !item.plan.result.needs_sync() {
            continue;
        }
        let mut desired = Table::clone(source);
        desired.name = shadow_name.clone();
        // An existing constraint lends its name to one desired constraint only: two equal
        // definitions (two CHECKs with one expression) must not both take it, or the ALTER
        // that adds the second fails on a duplicate name. The diff pairs them in this order.
        let mut claimed_fks: Vec<bool> =
            vec![false; item.shadow.as_ref().map_or(0, |s| s.foreign_keys.len())];
        for fk in &mut desired.foreign_keys {
            // Other databases' parents made the table UNSUPPORTED (see `isolation`).
            if let Some(target) = parent_shadow(&fk.referenced_table) {
                fk.referenced_table = target;
                fk.referenced_schema = None;
            }
            let existing = item.shadow.as_ref().and_then(|shadow| {
                let position = shadow
                    .foreign_keys
                    .iter()
                    .enumerate()
                    .position(|(i, old)| !claimed_fks[i] && diff::same_foreign_key(old, fk))?;
                claimed_fks[position] = true;
                shadow.foreign_keys.get(position)
            });
            fk.name = match existing {
                Some(old) => old.name.clone(),
                None => fk_names.allocate(naming, &fk.name),
            };
        }
        let mut claimed_checks: Vec<bool> =
            vec![false; item.shadow.as_ref().map_or(0, |s| s.checks.len())];
        for check in &mut desired.checks {
            let existing = item.shadow.as_ref().and_then(|shadow| {
                let position = shadow.checks.iter().enumerate().position(|(i, old)| {
                    !claimed_checks[i] && old.expression == check.expression
                })?;
                claimed_checks[position] = true;
                shadow.checks.get(position)
            });
            check.name = match existing {
                Some(old) => old.name.clone(),
                None => check_names.allocate(naming, &check.name),
            };
        }
        item.desired = Some(desired);
    }

    // Orphan shadows are never touched, so a change their foreign keys forbid (dropping or
    // retyping a column they reference: errors 1829/1833) is not planned; the table says why.
    let orphans = catalog.orphan_shadows(naming);
    for item in &mut work {
        let (Some(shadow), Some(desired)) = (&item.shadow, &item.desired) else {
            continue;
        };
        if let Some(reason) = blocked_by_orphan(catalog, &orphans, shadow, desired) {
            item.plan.result = SyncResult::Unsupported;
            item.plan.reason = Some(reason);
            item.desired = None;
        }
    }

    // A shadow whose foreign key references a column another shadow is about to change must
    // drop that key first (servers refuse the change while it exists) and add it back after:
    // the drop runs before everything else, the re-add with the child's own statements.
    let mut changed_by_shadow: HashMap<String, Vec<String>> = HashMap::new();
    for item in &work {
        if skipped.contains(&context.table_key(&item.plan.source)) {
            continue;
        }
        if let (Some(shadow), Some(desired)) = (&item.shadow, &item.desired) {
            let changed = diff::key_blocking_columns(shadow, desired);
            if !changed.is_empty() {
                changed_by_shadow.insert(context.table_key(&shadow.name), changed);
            }
        }
    }
    let mut pre_drops: HashMap<usize, Vec<ForeignKey>> = HashMap::new();
    // (parent shadow, skipped child source): the child's key blocks the parent's change.
    let mut blocked: Vec<(String, String)> = Vec::new();
    for (i, item) in work.iter_mut().enumerate() {
        let is_skipped = skipped.contains(&context.table_key(&item.plan.source));
        if item.desired.is_none() {
            continue;
        }
        let Some(shadow) = &mut item.shadow else {
            continue;
        };
        let own = context.table_key(&shadow.name);
        let (dropped, kept): (Vec<ForeignKey>, Vec<ForeignKey>) =
            shadow.foreign_keys.iter().cloned().partition(|fk| {
                let parent = context.table_key(&fk.referenced_table);
                parent != own
                    && changed_by_shadow.get(&parent).is_some_and(|changed| {
                        fk.referenced_columns
                            .iter()
                            .any(|c| changed.contains(&c.to_lowercase()))
                    })
            });
        if is_skipped {
            // A skipped table is never touched, so its key stays and the parent's ALTER will
            // be refused: say so on the parent rather than hide it.
            let source = item.plan.source.clone();
            blocked.extend(
                dropped
                    .iter()
                    .map(|fk| (context.table_key(&fk.referenced_table), source.clone())),
            );
        } else if !dropped.is_empty() {
            shadow.to_mut().foreign_keys = kept;
            pre_drops.insert(i, dropped);
        }
    }
    for (parent, child) in blocked {
        if let Some(item) = work.iter_mut().find(|item| {
            item.plan
                .shadow
                .as_deref()
                .is_some_and(|shadow| context.table_key(shadow) == parent)
        }) {
            item.plan.reason = Some(format!(
                "the skipped table {child}'s shadow has a foreign key on columns this change \
                 alters; the ALTER will be refused unless {child} is synced too"
            ));
        }
    }

    // Dependency order among the tables that change.
    let changing: HashMap<String, usize> = work
        .iter()
        .enumerate()
        .filter(|(_, item)| {
            item.desired.is_some() && !skipped.contains(&context.table_key(&item.plan.source))
        })
        .filter_map(|(i, item)| Some((context.table_key(item.plan.shadow.as_ref()?), i)))
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (shadow_key, &i) in &changing {
        let deps = edges.entry(shadow_key.clone()).or_default();
        if let Some(desired) = &work[i].desired {
            for fk in &desired.foreign_keys {
                let parent = context.table_key(&fk.referenced_table);
                if parent != *shadow_key && changing.contains_key(&parent) {
                    deps.insert(parent);
                }
            }
        }
    }
    let order = dependency_order(&edges);
    let source_names: Vec<String> = work.iter().map(|item| item.plan.source.clone()).collect();
    let position: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(p, key)| (key.as_str(), p))
        .collect();

    let mut pre_refs = Vec::new();
    let mut ordered = Vec::new();
    let mut deferred_refs = Vec::new();
    for shadow_key in &order {
        let Some(&i) = changing.get(shadow_key) else {
            continue;
        };
        let my_position = position.get(shadow_key.as_str()).copied().unwrap_or(0);
        let ready = |fk: &ForeignKey| {
            let parent = context.table_key(&fk.referenced_table);
            match position.get(parent.as_str()) {
                Some(&p) => p <= my_position,
                None => true,
            }
        };
        let item = &mut work[i];
        let Some(desired) = &item.desired else {
            continue;
        };
        let change = match &item.shadow {
            None => diff::create(desired, context.flavor, &ready),
            Some(shadow) => diff::alter(shadow, desired, context.flavor, &ready),
        };
        item.plan.depends_on = edges
            .get(shadow_key)
            .into_iter()
            .flatten()
            .filter_map(|parent| changing.get(parent))
            .map(|&p| source_names[p].clone())
            .collect();
        let TableChange { steps, deferred } = change;
        let mut statements = Vec::new();
        if let (Some(dropped), Some(shadow)) = (pre_drops.get(&i), &item.shadow) {
            let clauses: Vec<String> = dropped
                .iter()
                .map(|fk| format!("DROP FOREIGN KEY {}", render::quote_identifier(&fk.name)))
                .collect();
            // Dropping foreign keys is metadata-only: no hazard.
            statements.push(statement(
                None,
                &Step {
                    sql: format!(
                        "ALTER TABLE {} {}",
                        render::quote_identifier(&shadow.name),
                        clauses.join(", ")
                    ),
                    after: Table::clone(shadow),
                    separate_reason: None,
                },
            ));
            pre_refs.push(StatementRef {
                table: i,
                statement: 0,
            });
        }
        let first_own = statements.len();
        let mut before: Option<&Table> = item.shadow.as_deref();
        for step in &steps {
            statements.push(statement(before, step));
            before = Some(&step.after);
        }
        let deferred_statement = deferred.as_ref().map(|step| statement(before, step));
        if statements.is_empty() && deferred_statement.is_none() {
            item.plan.result = SyncResult::NoAction;
            item.plan.target_fingerprint = item.plan.shadow_fingerprint.clone();
            continue;
        }
        for index in first_own..statements.len() {
            ordered.push(StatementRef {
                table: i,
                statement: index,
            });
        }
        if let Some(statement) = deferred_statement {
            deferred_refs.push(StatementRef {
                table: i,
                statement: statements.len(),
            });
            statements.push(statement);
        }
        // The last statement leaves the shadow in its target state.
        item.plan.target_fingerprint = statements
            .last()
            .map(|statement| statement.expected_fingerprint_after.clone());
        item.plan.risk = statements
            .iter()
            .map(|statement| RiskLevel::of(&statement.hazards))
            .max()
            .unwrap_or_default();
        item.plan.statements = statements;
    }
    ordered.extend(deferred_refs);
    pre_refs.extend(ordered);
    let ordered = pre_refs;

    for item in &mut work {
        if item.plan.result.needs_sync() && skipped.contains(&context.table_key(&item.plan.source))
        {
            item.plan.skipped = true;
        }
    }
    let mut tables: Vec<TablePlan> = work.into_iter().map(|item| item.plan).collect();
    if request.range == SyncRange::All {
        // Listed after the sources (statement references index the sources' rows).
        let fold = |name: &str| context.table_key(name);
        tables.extend(orphans.iter().filter_map(|shadow| {
            let source = naming.strip_affix(shadow, fold)?;
            Some(orphan(catalog, shadow, source))
        }));
    }
    Ok(Plan {
        database: catalog.database.clone(),
        naming: naming.clone(),
        tables,
        order: ordered,
    })
}

/// Why `shadow` cannot become `desired` while an orphan shadow's foreign key references it, if
/// it cannot: the change drops or retypes a referenced column.
fn blocked_by_orphan(
    catalog: &Catalog,
    orphans: &[String],
    shadow: &Table,
    desired: &Table,
) -> Option<String> {
    let context = &catalog.server;
    let mut forbidden = diff::key_blocking_columns(shadow, desired);
    forbidden.extend(
        shadow
            .columns
            .iter()
            .filter(|column| desired.column(&column.name).is_none())
            .map(|column| column.name.to_lowercase()),
    );
    if forbidden.is_empty() {
        return None;
    }
    let own = context.table_key(&shadow.name);
    let database = context.table_key(&catalog.database);
    for orphan in orphans {
        let Some(Ok(model)) = catalog.table(orphan).map(|table| &table.model) else {
            continue;
        };
        for fk in &model.foreign_keys {
            let same_database = fk
                .referenced_schema
                .as_deref()
                .is_none_or(|schema| context.table_key(schema) == database);
            if !same_database || context.table_key(&fk.referenced_table) != own {
                continue;
            }
            if let Some(column) = fk
                .referenced_columns
                .iter()
                .find(|column| forbidden.contains(&column.to_lowercase()))
            {
                return Some(format!(
                    "column `{column}` cannot be dropped or changed: foreign key `{}` of the \
                     orphan shadow `{orphan}` (whose source does not exist, so it is never \
                     touched) references it; drop that key or table, then analyse again",
                    fk.name
                ));
            }
        }
    }
    None
}

/// The planned form of `step`, which runs on a shadow whose model is `before` (`None` when the
/// statement creates it).
fn statement(before: Option<&Table>, step: &Step) -> PlannedStatement {
    PlannedStatement {
        sql: step.sql.clone(),
        expected_fingerprint_after: fingerprint_normalized(&step.after),
        hazards: hazard::hazards(before, &step.after),
        separate_reason: step.separate_reason.clone(),
    }
}
