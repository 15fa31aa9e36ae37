//! The part of planning that looks at one source table and its shadow alone.

use std::borrow::Cow;
use std::collections::HashMap;

use super::{AnalysisRequest, SyncResult, TablePlan};
use crate::catalog::{Catalog, CatalogTable};
use crate::fingerprint::fingerprint_normalized;
use crate::model::Table;

/// One table while the plan is being built.
pub(super) struct Work<'a> {
    pub plan: TablePlan,
    /// Normalized models, borrowed from the catalog's cache when it has them.
    pub source: Option<Cow<'a, Table>>,
    pub shadow: Option<Cow<'a, Table>>,
    pub desired: Option<Table>,
}

/// Reads one source and its shadow from the catalog and settles what can be settled without
/// looking at other tables.
pub(super) fn analyse<'a>(
    catalog: &'a Catalog,
    base_tables: &HashMap<String, &str>,
    source_name: &str,
    request: &AnalysisRequest,
) -> Work<'a> {
    let context = &catalog.server;
    let mut item = Work {
        plan: TablePlan {
            source: source_name.to_owned(),
            shadow: None,
            result: SyncResult::Unsupported,
            reason: None,
            skipped: false,
            source_ddl: None,
            shadow_ddl: None,
            statements: Vec::new(),
            source_fingerprint: None,
            shadow_fingerprint: None,
            target_fingerprint: None,
            depends_on: Vec::new(),
            risk: Default::default(),
        },
        source: None,
        shadow: None,
        desired: None,
    };
    let plan = &mut item.plan;
    let fold = |name: &str| context.table_key(name);
    if let Some(source) = request.naming.strip_affix(source_name, fold) {
        // A table matching the naming rule is a shadow, never a source.
        if base_tables.contains_key(&context.table_key(source)) {
            plan.reason = Some(format!(
                "`{source_name}` matches the shadow naming rule: it is the shadow of `{source}`, \
                 never a source"
            ));
            return item;
        }
        item.plan = orphan(catalog, source_name, source);
        return item;
    }
    match request.naming.shadow_name(source_name) {
        Ok(shadow) => plan.shadow = Some(shadow),
        Err(reason) => {
            plan.reason = Some(reason);
            return item;
        }
    }
    let Some(source) = catalog.table(source_name) else {
        plan.result = SyncResult::SourceMissing;
        plan.reason = Some("the source table no longer exists".into());
        return item;
    };
    plan.source_ddl = Some(source.ddl.clone());
    plan.source_fingerprint = source.fingerprint.clone();
    let source = match read_model(source) {
        Ok(table) => table,
        Err(error) => {
            plan.reason = Some(format!("cannot read the source DDL: {error}"));
            return item;
        }
    };
    if plan.source_fingerprint.is_none() {
        plan.source_fingerprint = Some(fingerprint_normalized(&source));
    }
    if let Some(reason) = reaches_outside(&source) {
        // The executor's guard refuses such statements: say so up front.
        plan.reason = Some(reason);
        return item;
    }
    if let Some(reason) = super::isolation::production_object(&source, catalog) {
        plan.reason = Some(reason);
        return item;
    }
    item.source = Some(source);
    let shadow_name = plan.shadow.clone().unwrap_or_default();
    if !base_tables.contains_key(&context.table_key(&shadow_name)) {
        plan.result = SyncResult::Create;
        return item;
    }
    let Some(shadow) = catalog.table(&shadow_name) else {
        plan.reason = Some("the shadow table exists but could not be read".into());
        return item;
    };
    plan.shadow_ddl = Some(shadow.ddl.clone());
    let cached_fingerprint = shadow.fingerprint.clone();
    match read_model(shadow) {
        Ok(shadow) => {
            plan.shadow_fingerprint =
                cached_fingerprint.or_else(|| Some(fingerprint_normalized(&shadow)));
            plan.shadow = Some(shadow.name.clone());
            item.shadow = Some(shadow);
            plan.result = SyncResult::Update;
        }
        Err(error) => plan.reason = Some(format!("cannot read the shadow DDL: {error}")),
    }
    item
}

/// The row of an orphan shadow: a table matching the naming rule whose source `source` does
/// not exist. It is listed so the user sees it, and never touched.
pub(super) fn orphan(catalog: &Catalog, shadow_name: &str, source: &str) -> TablePlan {
    let shadow = catalog.table(shadow_name);
    TablePlan {
        source: source.to_owned(),
        shadow: Some(shadow_name.to_owned()),
        result: SyncResult::SourceMissing,
        reason: Some(format!(
            "the source table `{source}` does not exist: `{shadow_name}` is an orphan shadow, \
             left untouched"
        )),
        skipped: false,
        source_ddl: None,
        shadow_ddl: shadow.map(|table| table.ddl.clone()),
        statements: Vec::new(),
        source_fingerprint: None,
        shadow_fingerprint: shadow.and_then(|table| table.fingerprint.clone()),
        target_fingerprint: None,
        depends_on: Vec::new(),
        risk: Default::default(),
    }
}

/// Why a table cannot get a shadow because its definition reaches outside the database
/// (remote engines, connection strings, data directories), if it does.
fn reaches_outside(table: &Table) -> Option<String> {
    let engine = table.options.engine.as_deref().unwrap_or_default();
    if ["CONNECT", "FEDERATED", "FEDERATEDX", "SPIDER"]
        .iter()
        .any(|remote| engine.eq_ignore_ascii_case(remote))
    {
        return Some(format!(
            "engine {engine} reaches outside the database; its shadow is not created"
        ));
    }
    let outside = ["CONNECTION", "DATA DIRECTORY", "INDEX DIRECTORY"];
    let partition_options = table.partitioning.iter().flat_map(|p| {
        p.partitions.iter().flat_map(|part| {
            part.extra
                .iter()
                .chain(part.subpartitions.iter().flat_map(|sub| sub.extra.iter()))
        })
    });
    table
        .options
        .other
        .keys()
        .chain(partition_options)
        .find(|option| {
            outside
                .iter()
                .any(|o| option.to_ascii_uppercase().starts_with(o))
        })
        .map(|option| {
            let name = option.split(" =").next().unwrap_or(option);
            format!("table option {name} reaches outside the database; its shadow is not created")
        })
}

/// The normalized model introspection cached for a table, borrowed.
fn read_model(table: &CatalogTable) -> Result<Cow<'_, Table>, String> {
    table
        .model
        .as_ref()
        .map(Cow::Borrowed)
        .map_err(Clone::clone)
}
