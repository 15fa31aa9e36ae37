//! Lighter DDL on the real MariaDB: partition maintenance instead of re-partitioning when the
//! partitioning function is unchanged, one ALTER per table, and a stated reason whenever a
//! table needs more than one statement. Every plan converges with foreign-key checks on.

// A missing table or row is a failed test: say so loudly.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shadowsync_schema::{HazardKind, ShadowNaming, SyncRange};

const RANGE: &str =
    "(id int NOT NULL, y int NOT NULL, v int, PRIMARY KEY (id, y)) PARTITION BY RANGE (y)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_added_dropped_reorganized_and_coalesced_in_place() {
    let db = TestDb::new().await;
    let naming = ShadowNaming::default();
    let pairs: &[(&str, &str, &str, &str)] = &[
        (
            "added",
            "(PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (20), PARTITION p2 VALUES LESS THAN (30))",
            "(PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (20))",
            "ADD PARTITION (PARTITION `p2` VALUES LESS THAN (30))",
        ),
        (
            "dropped",
            "(PARTITION p0 VALUES LESS THAN (10), PARTITION p2 VALUES LESS THAN (30))",
            "(PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (20), PARTITION p2 VALUES LESS THAN (30))",
            "DROP PARTITION `p1`",
        ),
        (
            "split",
            "(PARTITION p0 VALUES LESS THAN (10), PARTITION p1a VALUES LESS THAN (15), PARTITION p1 VALUES LESS THAN (20), PARTITION pm VALUES LESS THAN MAXVALUE)",
            "(PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (20), PARTITION pm VALUES LESS THAN MAXVALUE)",
            "REORGANIZE PARTITION `p1` INTO (PARTITION `p1a` VALUES LESS THAN (15), PARTITION `p1` VALUES LESS THAN (20))",
        ),
        (
            "extended",
            "(PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE)",
            "(PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (20))",
            "REORGANIZE PARTITION `p1` INTO (PARTITION `p1` VALUES LESS THAN MAXVALUE)",
        ),
    ];
    for (name, source, shadow, _) in pairs {
        db.exec(&format!(
            "CREATE TABLE `{name}` {RANGE} {source}; CREATE TABLE `_test_{name}` {RANGE} {shadow}"
        ))
        .await;
    }
    db.exec(
        "CREATE TABLE hashed (id int PRIMARY KEY) PARTITION BY HASH (id) PARTITIONS 6;
         CREATE TABLE _test_hashed (id int PRIMARY KEY) PARTITION BY HASH (id) PARTITIONS 4;
         CREATE TABLE keyed (id int PRIMARY KEY) PARTITION BY KEY (id) PARTITIONS 2;
         CREATE TABLE _test_keyed (id int PRIMARY KEY) PARTITION BY KEY (id) PARTITIONS 5;
         INSERT INTO _test_split VALUES (1, 5, 0), (2, 12, 0), (3, 17, 0), (4, 99, 0)",
    )
    .await;
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    let only = |source: &str| {
        let statements = &plan.table(source).unwrap().statements;
        assert_eq!(statements.len(), 1, "{source}: {statements:#?}");
        statements[0].sql.clone()
    };
    for (name, _, _, clause) in pairs {
        assert_eq!(only(name), format!("ALTER TABLE `_test_{name}` {clause}"));
    }
    assert_eq!(
        only("hashed"),
        "ALTER TABLE `_test_hashed` ADD PARTITION PARTITIONS 2"
    );
    assert_eq!(
        only("keyed"),
        "ALTER TABLE `_test_keyed` COALESCE PARTITION 3"
    );
    let kinds = |source: &str| -> Vec<HazardKind> {
        plan.table(source).unwrap().statements[0]
            .hazards
            .iter()
            .map(|hazard| hazard.kind)
            .collect()
    };
    assert_eq!(kinds("added"), []);
    assert_eq!(kinds("dropped"), [HazardKind::DeletesData]);
    assert_eq!(
        kinds("split"),
        [HazardKind::TableRebuild, HazardKind::BlocksWrites]
    );
    db.apply(&plan).await;
    assert_all_no_action(&db.plan(SyncRange::All, &naming, &[]).await);
    db.assert_shadows_match(&naming).await;
    // Reorganizing kept the test rows.
    let rows = db
        .query_string("SELECT CAST(COUNT(*) AS CHAR) FROM `_test_split`", 0)
        .await;
    assert_eq!(rows, "4");
}

/// Partition maintenance must be alone in its ALTER TABLE: with an instant change beside it,
/// two statements, the second saying why; with a change that copies the table anyway, one
/// statement that re-partitions in that same copy (never two rebuilds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_maintenance_beside_other_changes() {
    let db = TestDb::new().await;
    let naming = ShadowNaming::default();
    let source = "(PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (20))";
    let shadow = "(PARTITION p0 VALUES LESS THAN (10))";
    db.exec(&format!(
        "CREATE TABLE instant {RANGE} {source};
         CREATE TABLE _test_instant (id int NOT NULL, y int NOT NULL, v int COMMENT 'old', PRIMARY KEY (id, y)) PARTITION BY RANGE (y) {shadow};
         CREATE TABLE copying {RANGE} {source};
         CREATE TABLE _test_copying (id int NOT NULL, y int NOT NULL, v bigint, PRIMARY KEY (id, y)) PARTITION BY RANGE (y) {shadow}"
    ))
    .await;
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    let instant = &plan.table("instant").unwrap().statements;
    assert_eq!(instant.len(), 2, "{instant:#?}");
    assert!(instant[0].sql.contains("CHANGE COLUMN `v`"));
    assert!(instant[0].separate_reason.is_none());
    assert!(
        instant[1]
            .sql
            .ends_with("ADD PARTITION (PARTITION `p1` VALUES LESS THAN (20))")
    );
    assert!(
        instant[1]
            .separate_reason
            .as_deref()
            .is_some_and(|reason| reason.contains("only alone")),
        "{instant:#?}"
    );
    let copying = &plan.table("copying").unwrap().statements;
    assert_eq!(copying.len(), 1, "{copying:#?}");
    assert!(
        copying[0].sql.contains("PARTITION BY RANGE"),
        "{copying:#?}"
    );
    let rebuilds = copying[0]
        .hazards
        .iter()
        .filter(|hazard| hazard.kind == HazardKind::TableRebuild)
        .count();
    assert_eq!(rebuilds, 1);
    db.apply(&plan).await;
    assert_all_no_action(&db.plan(SyncRange::All, &naming, &[]).await);
    db.assert_shadows_match(&naming).await;
}

/// A foreign key replaced by another (a new name) goes into the same ALTER as the drop of the
/// old one, and a column change beside a key it does not concern leaves the key alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_foreign_key_shares_the_tables_one_alter() {
    let db = TestDb::new().await;
    let naming = ShadowNaming::default();
    db.exec(
        "CREATE TABLE p (id bigint PRIMARY KEY, code int, UNIQUE KEY uc (code));
         CREATE TABLE _test_p (id bigint PRIMARY KEY, code int, UNIQUE KEY uc (code));
         CREATE TABLE swapped (id int PRIMARY KEY, a bigint, KEY ka (a), FOREIGN KEY (a) REFERENCES p (id) ON DELETE CASCADE);
         CREATE TABLE _test_swapped (id int PRIMARY KEY, a bigint, KEY ka (a), FOREIGN KEY (a) REFERENCES _test_p (id));
         CREATE TABLE retyped (id int PRIMARY KEY, c int, v bigint, KEY kc (c), FOREIGN KEY (c) REFERENCES p (code));
         CREATE TABLE _test_retyped (id int PRIMARY KEY, c int, v int, KEY kc (c), FOREIGN KEY (c) REFERENCES _test_p (code))",
    )
    .await;
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    let swapped = &plan.table("swapped").unwrap().statements;
    assert_eq!(swapped.len(), 1, "{swapped:#?}");
    assert!(swapped[0].sql.contains("DROP FOREIGN KEY"));
    assert!(swapped[0].sql.contains("ON DELETE CASCADE"));
    let retyped = &plan.table("retyped").unwrap().statements;
    assert_eq!(retyped.len(), 1, "{retyped:#?}");
    assert!(!retyped[0].sql.contains("FOREIGN KEY"), "{retyped:#?}");
    db.apply(&plan).await;
    assert_all_no_action(&db.plan(SyncRange::All, &naming, &[]).await);
    db.assert_shadows_match(&naming).await;
}
