//! Isolation: a shadow never references a non-shadow object.
//!
//! Three rules, applied before any diff:
//! - a table whose definition needs another production object (a parent in another database, a
//!   sequence in a `DEFAULT`) is `UNSUPPORTED` ([`production_object`]);
//! - a synced table whose parent's shadow neither exists nor is in the plan pulls that parent
//!   in, result `CREATE`, reason "required by `child`" ([`add_required_parents`]);
//! - a table whose parent's shadow will not exist after all (the parent is skipped, or cannot
//!   have a shadow) is skipped with it, or `UNSUPPORTED` ([`settle`]).
//!
//! After these, every same-database foreign key of a planned table can point at its parent's
//! shadow.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::table::{Work, analyse};
use super::{AnalysisRequest, SyncResult};
use crate::catalog::Catalog;
use crate::model::{DefaultValue, IndexTarget, Table};
use crate::parse::lexer::{TokenKind, tokenize};

/// Why `table` cannot have a shadow because its definition reaches another production object of
/// the server, if it does.
pub(super) fn production_object(table: &Table, catalog: &Catalog) -> Option<String> {
    let context = &catalog.server;
    let database = context.table_key(&catalog.database);
    if let Some(fk) = table.foreign_keys.iter().find(|fk| {
        fk.referenced_schema
            .as_deref()
            .is_some_and(|schema| context.table_key(schema) != database)
    }) {
        return Some(format!(
            "foreign key `{}` references `{}`.`{}` in another database: its shadow would \
             reference a production table (a shadow never references a non-shadow object)",
            fk.name,
            fk.referenced_schema.as_deref().unwrap_or_default(),
            fk.referenced_table
        ));
    }
    for column in &table.columns {
        let default = match &column.default {
            Some(DefaultValue::Expression(expression)) => Some(expression.as_str()),
            _ => None,
        };
        let expressions = default
            .into_iter()
            .map(|e| ("DEFAULT", e))
            .chain(
                column
                    .generated
                    .iter()
                    .map(|g| ("generated expression", g.expression.as_str())),
            )
            .chain(column.check.iter().map(|c| ("CHECK", c.as_str())));
        for (clause, expression) in expressions {
            if let Some(function) = sequence_function(expression) {
                return Some(format!(
                    "column `{}`'s {clause} uses the sequence function {function}: shadow \
                     inserts would use a production sequence (a shadow never references a \
                     non-shadow object)",
                    column.name
                ));
            }
        }
    }
    let other_expressions = table
        .checks
        .iter()
        .map(|check| check.expression.as_str())
        .chain(
            table
                .primary_key
                .iter()
                .chain(&table.indexes)
                .flat_map(|index| &index.parts)
                .filter_map(|part| match &part.target {
                    IndexTarget::Expression(expression) => Some(expression.as_str()),
                    IndexTarget::Column(_) => None,
                }),
        );
    for expression in other_expressions {
        if let Some(function) = sequence_function(expression) {
            return Some(format!(
                "an expression of the table uses the sequence function {function}: its shadow \
                 would use a production sequence (a shadow never references a non-shadow object)"
            ));
        }
    }
    None
}

/// The sequence function an expression calls, if any: `nextval(`, `lastval(`, `setval(`,
/// `currval(`, `NEXT VALUE FOR`, `PREVIOUS VALUE FOR`, or Oracle mode's `seq.nextval` /
/// `seq.currval`. Strings and quoted names do not count. An expression the lexer cannot read is
/// searched as plain text, so a doubt refuses rather than lets a sequence through.
pub(super) fn sequence_function(expression: &str) -> Option<String> {
    const CALLS: [&str; 4] = ["nextval", "lastval", "setval", "currval"];
    let Ok(tokens) = tokenize(expression) else {
        let lower = expression.to_lowercase();
        return CALLS
            .iter()
            .chain(&["next value for", "previous value for"])
            .find(|needle| lower.contains(*needle))
            .map(|needle| (*needle).to_owned());
    };
    let word = |i: usize| match tokens.get(i).map(|t| &t.kind) {
        Some(TokenKind::Word(word)) => Some(word.to_lowercase()),
        _ => None,
    };
    let symbol = |i: usize, wanted: char| matches!(tokens.get(i).map(|t| &t.kind), Some(TokenKind::Symbol(c)) if *c == wanted);
    for i in 0..tokens.len() {
        let Some(current) = word(i) else { continue };
        if CALLS.contains(&current.as_str()) && symbol(i + 1, '(') {
            return Some(format!("{current}()"));
        }
        if (current == "nextval" || current == "currval") && i > 0 && symbol(i - 1, '.') {
            return Some(format!(".{current}"));
        }
        if (current == "next" || current == "previous")
            && word(i + 1).as_deref() == Some("value")
            && word(i + 2).as_deref() == Some("for")
        {
            return Some(format!("{} VALUE FOR", current.to_uppercase()));
        }
    }
    None
}

/// Same-database parents `table`'s foreign keys reference, other than itself.
fn parents<'t>(table: &'t Table, catalog: &Catalog) -> impl Iterator<Item = &'t str> {
    let context = &catalog.server;
    let database = context.table_key(&catalog.database);
    let own = context.table_key(&table.name);
    table
        .foreign_keys
        .iter()
        .filter(move |fk| {
            fk.referenced_schema
                .as_deref()
                .is_none_or(|schema| context.table_key(schema) == database)
        })
        .map(|fk| fk.referenced_table.as_str())
        .filter(move |parent| context.table_key(parent) != own)
}

/// Adds to `work` every parent (transitively) whose shadow neither exists nor is planned, with
/// the reason "required by `child`". The parents are found from the sources' definitions alone,
/// whatever is skipped, so that skipping or un-skipping never changes the list of tables.
pub(super) fn add_required_parents<'a>(
    catalog: &'a Catalog,
    base_tables: &HashMap<String, &str>,
    request: &AnalysisRequest,
    work: &mut Vec<Work<'a>>,
) {
    let context = &catalog.server;
    let mut index: HashMap<String, usize> = work
        .iter()
        .enumerate()
        .map(|(i, item)| (context.table_key(&item.plan.source), i))
        .collect();
    let first_added = work.len();
    let mut required_by: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut next = 0;
    while next < work.len() {
        let child = work[next].plan.source.clone();
        let wanted: Vec<String> = work[next]
            .source
            .as_deref()
            .map(|source| parents(source, catalog).map(str::to_owned).collect())
            .unwrap_or_default();
        next += 1;
        for parent in wanted {
            let shadow_exists = request
                .naming
                .shadow_name(&parent)
                .is_ok_and(|shadow| base_tables.contains_key(&context.table_key(&shadow)));
            if shadow_exists {
                continue;
            }
            let key = context.table_key(&parent);
            let position = match index.get(&key) {
                Some(&position) => position,
                // Not a base table: `settle` makes the child UNSUPPORTED.
                None if !base_tables.contains_key(&key) => continue,
                None => {
                    let name = base_tables.get(&key).copied().unwrap_or(parent.as_str());
                    work.push(analyse(catalog, base_tables, name, request));
                    index.insert(key, work.len() - 1);
                    work.len() - 1
                }
            };
            if position >= first_added {
                let children = required_by.entry(position).or_default();
                if !children.contains(&child) {
                    children.push(child.clone());
                }
            }
        }
    }
    for (position, children) in required_by {
        let plan = &mut work[position].plan;
        let required = format!(
            "required by {}",
            children
                .iter()
                .map(|child| format!("`{child}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        plan.reason = Some(match plan.reason.take() {
            // Its own reason (UNSUPPORTED, SOURCE_MISSING) matters more; say both.
            Some(own) => format!("{own} ({required})"),
            None => required,
        });
    }
}

/// Settles which tables are skipped (the user's skips and, transitively, every table whose
/// shadow would otherwise reference a production parent) and makes `UNSUPPORTED` the tables
/// whose parent cannot have a shadow at all. Returns the keys of every skipped table.
pub(super) fn settle(
    catalog: &Catalog,
    base_tables: &HashMap<String, &str>,
    request: &AnalysisRequest,
    work: &mut [Work<'_>],
) -> HashSet<String> {
    let context = &catalog.server;
    let index: HashMap<String, usize> = work
        .iter()
        .enumerate()
        .map(|(i, item)| (context.table_key(&item.plan.source), i))
        .collect();
    let explicit: HashSet<String> = request
        .skipped
        .iter()
        .map(|name| context.table_key(name))
        .collect();
    let mut skipped: HashSet<usize> = work
        .iter()
        .enumerate()
        .filter(|(_, item)| {
            item.plan.result.needs_sync()
                && explicit.contains(&context.table_key(&item.plan.source))
        })
        .map(|(i, _)| i)
        .collect();
    // Each pass settles at least one more table or ends: at most one pass per table.
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..work.len() {
            if !work[i].plan.result.needs_sync() {
                continue;
            }
            let Some(source) = work[i].source.as_deref() else {
                continue;
            };
            let mut verdict: Option<Verdict> = None;
            for parent in parents(source, catalog) {
                let shadow = match request.naming.shadow_name(parent) {
                    Ok(shadow) => shadow,
                    Err(reason) => {
                        verdict = Some(Verdict::Unsupported(format!(
                            "its parent `{parent}` cannot have a shadow ({reason}), and a shadow \
                             never references a non-shadow table"
                        )));
                        break;
                    }
                };
                if base_tables.contains_key(&context.table_key(&shadow)) {
                    continue;
                }
                let Some(&j) = index.get(&context.table_key(parent)) else {
                    verdict = Some(Verdict::Unsupported(format!(
                        "its foreign key references `{parent}`, which is not a base table of \
                         `{}`",
                        catalog.database
                    )));
                    break;
                };
                let parent_plan = &work[j].plan;
                if !parent_plan.result.needs_sync() {
                    verdict = Some(Verdict::Unsupported(format!(
                        "its parent `{parent}` cannot have a shadow ({}), and a shadow never \
                         references a non-shadow table",
                        parent_plan.reason.as_deref().unwrap_or("no reason given")
                    )));
                    break;
                }
                if skipped.contains(&j) && !skipped.contains(&i) && verdict.is_none() {
                    verdict = Some(Verdict::SkippedWith(parent.to_owned()));
                }
            }
            let plan = &mut work[i].plan;
            match verdict {
                None => {}
                Some(Verdict::Unsupported(reason)) => {
                    plan.result = SyncResult::Unsupported;
                    plan.reason = Some(reason);
                    skipped.remove(&i);
                    changed = true;
                }
                Some(Verdict::SkippedWith(parent)) => {
                    plan.reason = Some(format!(
                        "skipped with `{parent}`: its shadow would reference production `{parent}`"
                    ));
                    skipped.insert(i);
                    changed = true;
                }
            }
        }
    }
    skipped
        .into_iter()
        .map(|i| context.table_key(&work[i].plan.source))
        .collect()
}

enum Verdict {
    Unsupported(String),
    SkippedWith(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_functions_are_found_outside_strings() {
        for expression in [
            "nextval(`db`.`s1`)",
            "NEXTVAL(s1)",
            "lastval(`db`.`s1`)",
            "setval(`db`.`s1`,5,1,0)",
            "next value for s1",
            "PREVIOUS VALUE FOR `s1`",
            "`s1`.nextval",
            "1 + nextval (s1)",
        ] {
            assert!(sequence_function(expression).is_some(), "{expression}");
        }
        for expression in [
            "'nextval(s1)'",
            "`nextval`",
            "concat('next value for ', `a`)",
            "current_timestamp()",
            "`nextval` + 1",
        ] {
            assert_eq!(sequence_function(expression), None, "{expression}");
        }
        // Unreadable text is searched as plain text: a doubt refuses.
        assert!(sequence_function("nextval(s1) '").is_some());
    }
}
