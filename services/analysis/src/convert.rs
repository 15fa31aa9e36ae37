//! Engine ↔ wire: naming and range from a request, and a [`Plan`] as [`AnalyzedTable`]s in plan
//! order with script positions.

use std::collections::HashMap;

use shadowsync_proto::analysis::v1::AnalyzedTable;
use shadowsync_proto::common::v1 as wire;
use shadowsync_schema::{Plan, ShadowNaming, SyncResult};

use crate::error::AnalysisError;

/// The naming rule of a request (UNSPECIFIED reads as PREFIX; an empty affix as the default).
///
/// Fails with `INVALID_ARGUMENT` naming `naming.affix`.
pub fn naming(naming: Option<&wire::ShadowNaming>) -> Result<ShadowNaming, AnalysisError> {
    let (mode, affix) = naming.map_or((0, ""), |n| (n.mode, n.affix.as_str()));
    let affix = (!affix.is_empty()).then_some(affix);
    let built = if mode == wire::ShadowNamingMode::Suffix as i32 {
        ShadowNaming::suffix(affix)
    } else {
        ShadowNaming::prefix(affix)
    };
    built.map_err(|e| AnalysisError::invalid("naming.affix", e.to_string()))
}

fn result(result: SyncResult) -> wire::TableAnalysisResult {
    match result {
        SyncResult::Create => wire::TableAnalysisResult::Create,
        SyncResult::Update => wire::TableAnalysisResult::Update,
        SyncResult::NoAction => wire::TableAnalysisResult::NoAction,
        SyncResult::SourceMissing => wire::TableAnalysisResult::SourceMissing,
        SyncResult::Unsupported => wire::TableAnalysisResult::Unsupported,
    }
}

/// Every table of `plan` in plan order: tables by the script position of their first statement,
/// then tables without statements by source name. Consumes the plan so its DDL texts move
/// instead of being copied.
pub fn analyzed_tables(plan: Plan) -> Vec<AnalyzedTable> {
    // script position of (table, statement)
    let mut positions: HashMap<(usize, usize), u32> = HashMap::with_capacity(plan.order.len());
    for (index, reference) in plan.order.iter().enumerate() {
        positions.insert(
            (reference.table, reference.statement),
            u32::try_from(index).unwrap_or(u32::MAX),
        );
    }
    let mut tables: Vec<(Option<u32>, AnalyzedTable)> = plan
        .tables
        .into_iter()
        .enumerate()
        .map(|(t, table)| {
            let statements: Vec<wire::PlannedStatement> = table
                .statements
                .into_iter()
                .enumerate()
                .filter_map(|(s, statement)| {
                    Some(wire::PlannedStatement {
                        index: u32::try_from(s).ok()?,
                        sql: statement.sql,
                        expected_fingerprint_after: statement.expected_fingerprint_after,
                        script_index: *positions.get(&(t, s))?,
                    })
                })
                .collect();
            let first = statements.iter().map(|s| s.script_index).min();
            let plan = wire::TablePlan {
                ordinal: 0,
                source_table: table.source,
                shadow_table: table.shadow.unwrap_or_default(),
                result: result(table.result) as i32,
                fingerprints: Some(wire::TableFingerprints {
                    source: table.source_fingerprint.unwrap_or_default(),
                    shadow: table.shadow_fingerprint.unwrap_or_default(),
                    target: table.target_fingerprint.unwrap_or_default(),
                }),
                statements,
                depends_on: table.depends_on,
            };
            let analyzed = AnalyzedTable {
                plan: Some(plan),
                reason: table.reason.unwrap_or_default(),
                skipped: table.skipped,
                source_ddl: table.source_ddl.unwrap_or_default(),
                shadow_ddl: table.shadow_ddl.unwrap_or_default(),
            };
            (first, analyzed)
        })
        .collect();
    tables.sort_by(|(a, x), (b, y)| {
        let name = |t: &AnalyzedTable| t.plan.as_ref().map(|p| p.source_table.clone());
        match (a, b) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => name(x).cmp(&name(y)),
        }
    });
    tables
        .into_iter()
        .enumerate()
        .map(|(ordinal, (_, mut table))| {
            if let Some(plan) = table.plan.as_mut() {
                plan.ordinal = u32::try_from(ordinal).unwrap_or(u32::MAX);
            }
            table
        })
        .collect()
}

/// A SOURCE_MISSING row for a PARTIAL name that is not a base table.
pub fn source_missing(name: &str, naming: &ShadowNaming, ordinal: u32) -> AnalyzedTable {
    AnalyzedTable {
        plan: Some(wire::TablePlan {
            ordinal,
            source_table: name.to_owned(),
            shadow_table: naming.shadow_name(name).unwrap_or_default(),
            result: wire::TableAnalysisResult::SourceMissing as i32,
            fingerprints: Some(wire::TableFingerprints::default()),
            statements: Vec::new(),
            depends_on: Vec::new(),
        }),
        reason: format!("source table `{name}` does not exist"),
        skipped: false,
        source_ddl: String::new(),
        shadow_ddl: String::new(),
    }
}
