//! No false refusals: every statement the schema engine writes for the real-world corpus
//! (/work/shared/corpus/mysql, every shadow missing) and for the generated feature cases of the
//! schema crate (shadows missing and mutated: `CREATE` and `ALTER`) passes the executor's safety
//! guard, built as the executor builds it (the plan's shadows and the task's naming rule).
//! Introspection runs on the pinned session, so the DDL is what the executor's session reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// The schema crate's feature cases, shared as data (`equivalents` plan no statements).
#[allow(dead_code)]
#[path = "../../schema/tests/generated/cases.rs"]
mod cases;

use std::collections::BTreeSet;
use std::process::Command;

use shadowsync_common::testing::MariaDb;
use shadowsync_common::testing::mariadb::mysql_url;
use shadowsync_executor::guard::SafetyGuard;
use shadowsync_schema::render::quote_identifier;
use shadowsync_schema::{
    Affix, AnalysisRequest, IntrospectOptions, Introspector, Plan, ShadowNaming, SyncRange,
    SyncResult,
};

const CORPUS: &str = "/work/shared/corpus";

async fn plan(db: &MariaDb, naming: &ShadowNaming) -> Plan {
    let introspector =
        Introspector::connect_lazy(mysql_url().parse().unwrap(), IntrospectOptions::default());
    let (catalog, _) = introspector
        .introspect(&db.name, &SyncRange::All, naming, &mut |_, _| {})
        .await
        .unwrap();
    shadowsync_schema::plan(
        &catalog,
        &AnalysisRequest {
            range: SyncRange::All,
            naming: naming.clone(),
            skipped: BTreeSet::new(),
        },
    )
    .unwrap()
}

/// The refusals of the executor's guard over the plan's statements, and how many it checked.
fn refusals(plan: &Plan, database: &str, naming: &ShadowNaming) -> (Vec<String>, usize) {
    let guard = SafetyGuard::new(
        database,
        plan.tables.iter().filter_map(|table| table.shadow.clone()),
    )
    .with_naming(naming.clone());
    let mut refused = Vec::new();
    let mut checked = 0;
    for (table, statement) in plan.statements() {
        checked += 1;
        // As the executor checks it: the statement must change its own table's shadow.
        let shadow = table.shadow.as_deref().unwrap_or_default();
        if let Err(refusal) = guard.check_for(&statement.sql, shadow) {
            refused.push(format!(
                "{}: {}\n{}",
                table.source,
                refusal.reason(),
                statement.sql
            ));
        }
    }
    (refused, checked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_rendered_for_the_corpus_passes_the_guard() {
    let prefix = ShadowNaming::default();
    let suffix = ShadowNaming::Suffix(Affix::new("_t").unwrap());
    let mut total = 0;
    for (name, naming) in [
        ("cacti", &prefix),
        ("chinook", &suffix),
        ("employees", &prefix),
        ("employees_partitioned", &prefix),
        ("guacamole", &suffix),
        ("mediawiki", &prefix),
        ("opencart", &prefix),
        ("prestashop", &suffix),
        ("roundcube", &prefix),
        ("sakila", &prefix),
        ("zabbix", &suffix),
    ] {
        let db = MariaDb::create("ss_guard_corpus").await;
        let load = Command::new(format!("{CORPUS}/load.sh"))
            .args(["mysql", name, &db.name, &mysql_url()])
            .env("LOAD_QUIET", "1")
            .output()
            .expect("run load.sh");
        assert!(
            load.status.success(),
            "load {name}: {}",
            String::from_utf8_lossy(&load.stderr)
        );
        let plan = plan(&db, naming).await;
        assert!(
            plan.tables.iter().all(|t| t.result == SyncResult::Create),
            "{name}"
        );
        let (refused, checked) = refusals(&plan, &db.name, naming);
        assert!(checked > 0, "{name}: no statements");
        assert!(
            refused.is_empty(),
            "{name}: {} of {checked} refused:\n{}",
            refused.len(),
            refused.join("\n\n")
        );
        total += checked;
        db.drop_database().await;
    }
    assert!(total > 500, "only {total} statements checked");
}

fn fill(template: &str, table: &str, parent: &str, source_parent: &str) -> String {
    template
        .replace("{ps}", &quote_identifier(source_parent))
        .replace("{p}", &quote_identifier(parent))
        .replace("{n}", table)
        .replace("{t}", &quote_identifier(table))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_rendered_for_the_generated_cases_passes_the_guard() {
    // As the schema crate's generated test sets them up: each case's source with its shadow
    // missing and mutated, children referencing a parent whose shadow is in sync (so outside
    // the plan: allowed through the naming rule only).
    let db = MariaDb::create("ss_guard_generated").await;
    let naming = ShadowNaming::default();
    let shadow = |name: &str| naming.shadow_name(name).unwrap();
    let mut setup = vec![
        fill(cases::PARENT, "parent_a", "", ""),
        fill(cases::PARENT, &shadow("parent_a"), "", ""),
    ];
    for (index, case) in cases::CASES.iter().enumerate() {
        let source = format!("c{index}_miss");
        setup.push(fill(case.source, &source, "parent_a", "parent_a"));
        for (k, ddl) in case.mutations.iter().enumerate() {
            let source = format!("c{index}_mut{k}");
            setup.push(fill(case.source, &source, "parent_a", "parent_a"));
            setup.push(fill(ddl, &shadow(&source), &shadow("parent_a"), "parent_a"));
        }
    }
    // Literals MariaDB prints back with `\'` (an earlier guard refused them all): a
    // table to create and a shadow to alter.
    let quotes = "CREATE TABLE {t} (id int PRIMARY KEY, v varchar(20) DEFAULT 'it''s',\
        w varchar(40) AS (concat(v, '''s \\\\ end')) VIRTUAL,\
        d varchar(40) DEFAULT (concat('a''b', id)),\
        CONSTRAINT {n}_v CHECK (v <> 'it''s; DROP TABLE parent_a; -- '))";
    setup.push(fill(quotes, "quotes_miss", "", ""));
    setup.push(fill(quotes, "quotes_mut", "", ""));
    setup.push(fill(
        "CREATE TABLE {t} (id int PRIMARY KEY)",
        &shadow("quotes_mut"),
        "",
        "",
    ));
    for statement in &setup {
        db.exec(statement).await;
    }
    let plan = plan(&db, &naming).await;
    let escaped = plan
        .statements()
        .filter(|(_, statement)| statement.sql.contains(r"'it\'s"))
        .count();
    assert!(escaped >= 2, "{escaped} statements with an escaped quote");
    let results: BTreeSet<SyncResult> = plan.tables.iter().map(|t| t.result).collect();
    assert!(
        results.contains(&SyncResult::Create) && results.contains(&SyncResult::Update),
        "{results:?}"
    );
    let (refused, checked) = refusals(&plan, &db.name, &naming);
    assert!(checked > 50, "only {checked} statements");
    assert!(
        refused.is_empty(),
        "{} of {checked} refused:\n{}",
        refused.len(),
        refused.join("\n\n")
    );
    db.drop_database().await;
}
