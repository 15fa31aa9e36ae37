//! Hazards on the real MariaDB: for each kind, a statement that has it and one that does not;
//! the risk level each table gets; the SQL preview's comments. Every plan is then applied with
//! foreign-key checks on and converges.

// A missing table or row is a failed test: say so loudly.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shadowsync_schema::{HazardKind, Plan, RiskLevel, ShadowNaming, SyncRange, SyncResult};

/// Source and shadow pairs, by the source's name.
const PAIRS: &[(&str, &str, &str)] = &[
    // Retyping a column copies the table.
    (
        "retype",
        "(id int PRIMARY KEY, v bigint)",
        "(id int PRIMARY KEY, v int)",
    ),
    // A comment is metadata only.
    (
        "comment",
        "(id int PRIMARY KEY, v int COMMENT 'new')",
        "(id int PRIMARY KEY, v int)",
    ),
    // NULL to NOT NULL rebuilds in place, writes go on.
    (
        "not_null",
        "(id int PRIMARY KEY, v int NOT NULL)",
        "(id int PRIMARY KEY, v int)",
    ),
    // Adding a nullable column is instant.
    (
        "add_column",
        "(id int PRIMARY KEY, v int, w int)",
        "(id int PRIMARY KEY, v int)",
    ),
    // Dropping a column drops its test data.
    (
        "drop_column",
        "(id int PRIMARY KEY)",
        "(id int PRIMARY KEY, v int)",
    ),
    // An index to build.
    (
        "add_index",
        "(id int PRIMARY KEY, v int, KEY kv (v))",
        "(id int PRIMARY KEY, v int)",
    ),
    // Dropping an index builds nothing.
    (
        "drop_index",
        "(id int PRIMARY KEY, v int)",
        "(id int PRIMARY KEY, v int, KEY kv (v))",
    ),
    // Adding a foreign key validates the rows (and copies the table with checks on).
    (
        "add_fk",
        "(id int PRIMARY KEY, p int, KEY kp (p), FOREIGN KEY (p) REFERENCES par (id))",
        "(id int PRIMARY KEY, p int, KEY kp (p))",
    ),
    // Dropping one validates nothing.
    (
        "drop_fk",
        "(id int PRIMARY KEY, p int, KEY kp (p))",
        "(id int PRIMARY KEY, p int, KEY kp (p), FOREIGN KEY (p) REFERENCES _test_par (id))",
    ),
    // A FULLTEXT index is built under LOCK=SHARED.
    (
        "fulltext",
        "(id int PRIMARY KEY, body text, FULLTEXT KEY fb (body))",
        "(id int PRIMARY KEY, body text)",
    ),
    // Dropping a RANGE partition drops its rows.
    (
        "drop_partition",
        "(id int PRIMARY KEY) PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (10))",
        "(id int PRIMARY KEY) PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (20))",
    ),
    // Adding one moves no rows.
    (
        "add_partition",
        "(id int PRIMARY KEY) PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (20))",
        "(id int PRIMARY KEY) PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (10))",
    ),
];

async fn plan_pairs() -> (TestDb, Plan, ShadowNaming) {
    let db = TestDb::new().await;
    let naming = ShadowNaming::default();
    db.exec("CREATE TABLE par (id int PRIMARY KEY); CREATE TABLE _test_par (id int PRIMARY KEY)")
        .await;
    for (name, source, shadow) in PAIRS {
        db.exec(&format!(
            "CREATE TABLE `{name}` {source}; CREATE TABLE `_test_{name}` {shadow}"
        ))
        .await;
    }
    db.exec("CREATE TABLE missing (id int PRIMARY KEY, v int, KEY kv (v))")
        .await;
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    (db, plan, naming)
}

fn kinds(plan: &Plan, source: &str) -> Vec<HazardKind> {
    let table = plan.table(source).unwrap();
    assert!(
        table.result.needs_sync(),
        "{source}: {:?} {:?}",
        table.result,
        table.reason
    );
    let mut kinds: Vec<HazardKind> = table
        .statements
        .iter()
        .flat_map(|statement| statement.hazards.iter().map(|hazard| hazard.kind))
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

fn risk(plan: &Plan, source: &str) -> RiskLevel {
    plan.table(source).unwrap().risk
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hazard_with_a_statement_that_has_it_and_one_that_does_not() {
    use HazardKind::*;
    let (db, plan, naming) = plan_pairs().await;

    // TABLE_REBUILD and BLOCKS_WRITES: a copy; an in-place rebuild lets writes go on.
    assert_eq!(kinds(&plan, "retype"), [TableRebuild, BlocksWrites]);
    assert_eq!(kinds(&plan, "not_null"), [TableRebuild]);
    assert_eq!(kinds(&plan, "comment"), []);
    assert_eq!(kinds(&plan, "add_column"), []);
    // DELETES_DATA.
    assert_eq!(kinds(&plan, "drop_column"), [DeletesData]);
    assert_eq!(kinds(&plan, "drop_partition"), [DeletesData]);
    assert_eq!(kinds(&plan, "add_partition"), []);
    // INDEX_BUILD, and FULLTEXT's shared lock and first-index rebuild.
    assert_eq!(kinds(&plan, "add_index"), [IndexBuild]);
    assert_eq!(kinds(&plan, "drop_index"), []);
    assert_eq!(
        kinds(&plan, "fulltext"),
        [TableRebuild, BlocksWrites, IndexBuild]
    );
    // FK_VALIDATION (with checks on, adding a key copies the table).
    assert_eq!(
        kinds(&plan, "add_fk"),
        [TableRebuild, BlocksWrites, FkValidation]
    );
    assert_eq!(kinds(&plan, "drop_fk"), []);
    // A new table has no hazard.
    assert_eq!(plan.table("missing").unwrap().result, SyncResult::Create);
    assert_eq!(kinds(&plan, "missing"), []);

    // Every hazard explains itself on one line.
    for (_, statement) in plan.statements() {
        for hazard in &statement.hazards {
            assert!(!hazard.explanation.is_empty() && !hazard.explanation.contains('\n'));
        }
    }

    // Risk: HIGH for deleted data or a copy that blocks writes, MEDIUM for other hazards,
    // LOW without.
    assert_eq!(risk(&plan, "drop_column"), RiskLevel::High);
    assert_eq!(risk(&plan, "retype"), RiskLevel::High);
    assert_eq!(risk(&plan, "add_index"), RiskLevel::Medium);
    assert_eq!(risk(&plan, "not_null"), RiskLevel::Medium);
    assert_eq!(risk(&plan, "comment"), RiskLevel::Low);
    assert_eq!(risk(&plan, "missing"), RiskLevel::Low);
    assert_eq!(plan.risk(), RiskLevel::High);

    db.apply(&plan).await;
    assert_all_no_action(&db.plan(SyncRange::All, &naming, &[]).await);
    db.assert_shadows_match(&naming).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_comments_hazards_and_the_script_stays_sql() {
    let (_db, plan, _) = plan_pairs().await;
    let script = plan.sql_script();
    assert!(!script.contains("--"), "{script}");
    let preview = plan.sql_preview();
    // The same statements, in the same order, once the comment lines are removed.
    let statements: String = preview
        .lines()
        .filter(|line| !line.starts_with("-- "))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(statements, script);
    let drop = preview
        .find("ALTER TABLE `_test_drop_column` DROP COLUMN `v`")
        .unwrap();
    let comment = preview
        .find("-- hazard DELETES_DATA: drops column `v` and its data\n")
        .unwrap();
    assert!(comment < drop, "{preview}");
    assert!(
        preview.contains("-- _test_drop_column: risk HIGH\n"),
        "{preview}"
    );
}
