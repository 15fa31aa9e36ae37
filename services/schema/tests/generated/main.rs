//! Generated fidelity test: every feature case with its shadow missing, identical, written
//! differently (must be NO_ACTION with no SQL) and mutated (must be UPDATE); the plan applied
//! with foreign_key_checks on makes every shadow equal its source and a re-analysis is all
//! NO_ACTION. Also: a foreign-key cycle, and re-planning with skips.

mod cases;
#[path = "../common/mod.rs"]
mod common;

use cases::{CASES, PARENT};
use common::*;
use shadowsync_schema::render::quote_identifier;
use shadowsync_schema::{ShadowNaming, SyncRange, SyncResult};

fn fill(template: &str, table: &str, parent: &str, source_parent: &str) -> String {
    template
        .replace("{ps}", &quote_identifier(source_parent))
        .replace("{p}", &quote_identifier(parent))
        .replace("{n}", table)
        .replace("{t}", &quote_identifier(table))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_features_missing_identical_and_mutated() {
    let db = TestDb::new().await;
    let naming = ShadowNaming::default();
    let shadow = |name: &str| naming.shadow_name(name).unwrap();
    let mut setup = vec![
        fill(PARENT, "parent_a", "", ""),
        fill(PARENT, &shadow("parent_a"), "", ""),
    ];
    let mut expected = vec![("parent_a".to_owned(), SyncResult::NoAction)];
    for copy in 0..2 {
        for (index, case) in CASES.iter().enumerate() {
            let base = format!("g{copy}_c{index}");
            let mut add = |variant: String, shadow_ddl: Option<&str>, result: SyncResult| {
                let source = format!("{base}_{variant}");
                setup.push(fill(case.source, &source, "parent_a", "parent_a"));
                if let Some(ddl) = shadow_ddl {
                    let shadow_name = shadow(&source);
                    setup.push(fill(ddl, &shadow_name, &shadow("parent_a"), "parent_a"));
                }
                expected.push((source, result));
            };
            add("miss".into(), None, SyncResult::Create);
            add("same".into(), Some(case.source), SyncResult::NoAction);
            for (k, ddl) in case.equivalents.iter().enumerate() {
                add(format!("eq{k}"), Some(ddl), SyncResult::NoAction);
            }
            for (k, ddl) in case.mutations.iter().enumerate() {
                add(format!("mut{k}"), Some(ddl), SyncResult::Update);
            }
        }
    }
    for statement in &setup {
        db.exec(statement).await;
    }
    let tables = setup.len();
    assert!(tables >= 200, "only {tables} tables");

    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    expected.sort();
    let mut actual = results(&plan);
    actual.sort();
    let mismatches: Vec<String> = expected
        .iter()
        .zip(&actual)
        .filter(|(e, a)| e != a)
        .map(|(e, a)| {
            let table = plan.table(&a.0).unwrap();
            format!(
                "{}: expected {:?}, got {:?} {:?}\n{}\n--- shadow:\n{}\n--- sql:\n{:#?}",
                e.0,
                e.1,
                a.1,
                table.reason,
                table.source_ddl.as_deref().unwrap_or(""),
                table.shadow_ddl.as_deref().unwrap_or(""),
                table.statements
            )
        })
        .collect();
    assert_eq!(expected.len(), actual.len());
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
    for table in &plan.tables {
        if table.result == SyncResult::Update {
            assert!(
                table.statements.len() <= 2,
                "{}: {:#?}",
                table.source,
                table.statements
            );
        }
    }

    db.apply(&plan).await;
    let again = db.plan(SyncRange::All, &naming, &[]).await;
    assert_all_no_action(&again);
    db.assert_shadows_match(&naming).await;
    // The fingerprints the plan promised are what the shadows now have.
    for table in &plan.tables {
        let after = again.table(&table.source).unwrap();
        assert_eq!(
            table.target_fingerprint, after.shadow_fingerprint,
            "{}",
            table.source
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_key_cycles_and_skips() {
    let db = TestDb::new().await;
    let naming = ShadowNaming::suffix(Some("_sh")).unwrap();
    db.exec(
        "CREATE TABLE cyc_a (id int PRIMARY KEY, b_id int, KEY kb (b_id));
         CREATE TABLE cyc_b (id int PRIMARY KEY, a_id int, KEY ka (a_id), FOREIGN KEY (a_id) REFERENCES cyc_a (id));
         ALTER TABLE cyc_a ADD FOREIGN KEY (b_id) REFERENCES cyc_b (id);
         CREATE TABLE root (id int PRIMARY KEY);
         CREATE TABLE child (id int PRIMARY KEY, r int, KEY kr (r), FOREIGN KEY (r) REFERENCES root (id));
         CREATE TABLE grandchild (id int PRIMARY KEY, c int, KEY kc (c), FOREIGN KEY (c) REFERENCES child (id))",
    )
    .await;

    // Skipping `child`: its shadow will not exist, so grandchild (whose shadow would reference
    // production `child`) is skipped with it.
    let skipped = db.plan(SyncRange::All, &naming, &["child"]).await;
    let child = skipped.table("child").unwrap();
    assert!(child.skipped && child.statements.is_empty());
    let grandchild = skipped.table("grandchild").unwrap();
    assert!(grandchild.skipped && grandchild.statements.is_empty());
    assert_eq!(
        grandchild.reason.as_deref(),
        Some("skipped with `child`: its shadow would reference production `child`")
    );
    assert!(!skipped.sql_script().contains("`child_sh`"));
    assert!(!skipped.sql_script().contains("REFERENCES `child`"));

    // Without skips: parents first, the cycle closed by a deferred ALTER.
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    let script = plan.sql_script();
    let position = |needle: &str| {
        script
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} in {script}"))
    };
    assert!(position("CREATE TABLE `root_sh`") < position("CREATE TABLE `child_sh`"));
    assert!(position("CREATE TABLE `child_sh`") < position("CREATE TABLE `grandchild_sh`"));
    assert!(script.contains("REFERENCES `child_sh`"));
    let cycle_alters = plan
        .statements()
        .filter(|(_, s)| s.sql.starts_with("ALTER TABLE"))
        .count();
    assert_eq!(cycle_alters, 1, "{script}");
    db.apply(&plan).await;
    assert_all_no_action(&db.plan(SyncRange::All, &naming, &[]).await);
    db.assert_shadows_match(&naming).await;

    // A shadow child that references the source parent while the parent's shadow exists is
    // re-pointed at the shadow.
    db.exec("CREATE TABLE orphan (id int PRIMARY KEY, r int, KEY kr (r), FOREIGN KEY (r) REFERENCES root (id));
             CREATE TABLE orphan_sh (id int PRIMARY KEY, r int, KEY kr (r), FOREIGN KEY (r) REFERENCES root (id))").await;
    let plan = db
        .plan(SyncRange::Partial(vec!["orphan".into()]), &naming, &[])
        .await;
    assert_eq!(plan.tables[0].result, SyncResult::Update);
    assert!(plan.sql_script().contains("REFERENCES `root_sh`"));
    db.apply(&plan).await;
    assert_all_no_action(&db.plan(SyncRange::All, &naming, &[]).await);
}

/// A parent's shadow changes the type of columns that existing child shadows reference (which
/// MariaDB refuses while a key uses them, even with checks off): the children's keys are
/// dropped first and added back after the parent's ALTER (with checks on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_referenced_column_drops_and_restores_child_keys() {
    let db = TestDb::new().await;
    let naming = ShadowNaming::default();
    db.exec(
        "CREATE TABLE p (id bigint NOT NULL, code varchar(20) NOT NULL, PRIMARY KEY (id), UNIQUE KEY uc (code));
         CREATE TABLE c (id int PRIMARY KEY, p bigint, KEY kp (p), FOREIGN KEY (p) REFERENCES p (id));
         CREATE TABLE d (id int PRIMARY KEY, code varchar(20), KEY kc (code), FOREIGN KEY (code) REFERENCES p (code));
         CREATE TABLE s (id bigint PRIMARY KEY, up bigint, KEY ku (up), FOREIGN KEY (up) REFERENCES s (id));
         CREATE TABLE _test_p (id int NOT NULL, code varchar(10) NOT NULL COMMENT 'old', PRIMARY KEY (id), UNIQUE KEY uc (code));
         CREATE TABLE _test_c (id int PRIMARY KEY, p int, KEY kp (p), FOREIGN KEY (p) REFERENCES _test_p (id));
         CREATE TABLE _test_d (id int PRIMARY KEY, code varchar(20), KEY kc (code), FOREIGN KEY (code) REFERENCES _test_p (code));
         CREATE TABLE _test_s (id int PRIMARY KEY, up int, KEY ku (up), FOREIGN KEY (up) REFERENCES _test_s (id))",
    )
    .await;
    // Skipping a child whose key blocks the parent's change is reported on the parent.
    let skipped = db.plan(SyncRange::All, &naming, &["c"]).await;
    let reason = skipped
        .table("p")
        .unwrap()
        .reason
        .clone()
        .unwrap_or_default();
    assert!(reason.contains("skipped table c"), "{reason}");

    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    for table in ["c", "d", "p", "s"] {
        assert_eq!(
            plan.table(table).unwrap().result,
            SyncResult::Update,
            "{table}"
        );
    }
    let script = plan.sql_script();
    let first_parent_change = script.find("ALTER TABLE `_test_p`").unwrap();
    assert!(
        script
            .find("ALTER TABLE `_test_c` DROP FOREIGN KEY")
            .unwrap()
            < first_parent_change
    );
    assert!(
        script
            .find("ALTER TABLE `_test_d` DROP FOREIGN KEY")
            .unwrap()
            < first_parent_change
    );
    db.apply(&plan).await;
    assert_all_no_action(&db.plan(SyncRange::All, &naming, &[]).await);
    db.assert_shadows_match(&naming).await;
}
