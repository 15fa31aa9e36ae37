//! One hand-written case per class of divergence the oracle once found, on the real MariaDB with
//! foreign-key checks on: each plan converges in one run (the shadows read back as their
//! sources, by the server's own text and by the model) and a second analysis is all NO_ACTION.

// A missing table or row is a failed test: say so loudly.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shadowsync_schema::{Plan, ShadowNaming, SyncRange, SyncResult};

/// Applies `plan`, then checks convergence: a second analysis is all NO_ACTION and every
/// shadow reads back as its source.
async fn converge(db: &TestDb, plan: &Plan, naming: &ShadowNaming) {
    db.apply(plan).await;
    assert_all_no_action(&without_orphans(db.plan(SyncRange::All, naming, &[]).await));
    db.assert_shadows_match(naming).await;
}

/// The plan without its orphan-shadow rows (listed, never acted on).
fn without_orphans(mut plan: Plan) -> Plan {
    plan.tables
        .retain(|table| table.result != SyncResult::SourceMissing);
    plan
}

fn result(plan: &Plan, source: &str) -> SyncResult {
    plan.table(source)
        .unwrap_or_else(|| panic!("{source} not in the plan"))
        .result
}

/// MariaDB prints an explicit `NO ACTION`, and prints nothing for both the default and
/// `RESTRICT`: a shadow must carry the rule the source shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_referential_actions_read_back_as_the_source_shows_them() {
    let db = TestDb::new().await;
    let naming = ShadowNaming::default();
    db.exec(
        "CREATE TABLE p (id int PRIMARY KEY);
         CREATE TABLE _test_p (id int PRIMARY KEY);
         CREATE TABLE c (id int PRIMARY KEY, a int, b int, r int, m int,
           KEY ka (a), KEY kb (b), KEY kr (r), KEY km (m),
           FOREIGN KEY (a) REFERENCES p (id),
           FOREIGN KEY (b) REFERENCES p (id) ON DELETE NO ACTION ON UPDATE NO ACTION,
           FOREIGN KEY (r) REFERENCES p (id) ON DELETE RESTRICT ON UPDATE RESTRICT,
           FOREIGN KEY (m) REFERENCES p (id) ON DELETE NO ACTION ON UPDATE CASCADE);
         CREATE TABLE d (id int PRIMARY KEY, b int, KEY kb (b),
           FOREIGN KEY (b) REFERENCES p (id) ON DELETE NO ACTION);
         CREATE TABLE _test_d (id int PRIMARY KEY, b int, KEY kb (b),
           FOREIGN KEY (b) REFERENCES _test_p (id));
         CREATE TABLE e (id int PRIMARY KEY, b int, KEY kb (b),
           FOREIGN KEY (b) REFERENCES p (id));
         CREATE TABLE _test_e (id int PRIMARY KEY, b int, KEY kb (b),
           FOREIGN KEY (b) REFERENCES _test_p (id) ON UPDATE NO ACTION);
         CREATE TABLE f (id int PRIMARY KEY, b int, KEY kb (b),
           FOREIGN KEY (b) REFERENCES p (id) ON DELETE RESTRICT);
         CREATE TABLE _test_f (id int PRIMARY KEY, b int, KEY kb (b),
           FOREIGN KEY (b) REFERENCES _test_p (id))",
    )
    .await;
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    assert_eq!(result(&plan, "c"), SyncResult::Create);
    // Explicit NO ACTION differs from the default, in both directions.
    assert_eq!(result(&plan, "d"), SyncResult::Update);
    assert_eq!(result(&plan, "e"), SyncResult::Update);
    // RESTRICT reads back as the default: nothing to do.
    assert_eq!(result(&plan, "f"), SyncResult::NoAction);
    let script = plan.sql_script();
    assert!(
        script.contains("ON DELETE NO ACTION ON UPDATE NO ACTION"),
        "{script}"
    );
    converge(&db, &plan, &naming).await;
    let shadow = db.query_string("SHOW CREATE TABLE `_test_d`", 1).await;
    assert!(shadow.contains("ON DELETE NO ACTION"), "{shadow}");
}

/// A table matching the naming rule is a shadow: an orphan (its source is gone) is listed as
/// SOURCE_MISSING, never shadowed (`_test__test_bigdata`) and never altered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_shadows_are_listed_and_never_touched() {
    let db = TestDb::new().await;
    let naming = ShadowNaming::default();
    db.exec(
        "CREATE TABLE p (id int PRIMARY KEY, note varchar(10));
         CREATE TABLE _test_p (id int PRIMARY KEY);
         CREATE TABLE _test_bigdata (id int PRIMARY KEY, p int, KEY kp (p),
           CONSTRAINT orphan_fk FOREIGN KEY (p) REFERENCES _test_p (id))",
    )
    .await;
    let orphan_before = db
        .query_string("SHOW CREATE TABLE `_test_bigdata`", 1)
        .await;
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    let orphan = plan.table("bigdata").expect("the orphan is listed");
    assert_eq!(orphan.result, SyncResult::SourceMissing);
    assert_eq!(orphan.shadow.as_deref(), Some("_test_bigdata"));
    assert!(orphan.statements.is_empty());
    assert!(orphan.reason.as_deref().unwrap_or("").contains("orphan"));
    assert!(plan.table("_test_bigdata").is_none(), "never a source");
    let script = plan.sql_script();
    assert!(!script.contains("_test_bigdata"), "{script}");
    assert_eq!(result(&plan, "p"), SyncResult::Update);
    // Named explicitly, it is still not a source.
    let partial = db
        .plan(
            SyncRange::Partial(vec!["_test_bigdata".into()]),
            &naming,
            &[],
        )
        .await;
    assert_eq!(partial.tables[0].result, SyncResult::SourceMissing);
    assert!(partial.order.is_empty());

    converge(&db, &plan, &naming).await;
    let tables = db
        .query_string(
            &format!(
                "SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = '{}'",
                db.name
            ),
            0,
        )
        .await;
    let mut tables: Vec<&str> = tables.split(',').collect();
    tables.sort_unstable();
    assert_eq!(tables, ["_test_bigdata", "_test_p", "p"]);
    let orphan_after = db
        .query_string("SHOW CREATE TABLE `_test_bigdata`", 1)
        .await;
    assert_eq!(orphan_before, orphan_after);
}

/// A column whose name differs from the source's only in case is renamed to the source's
/// spelling (the servers compare names case-insensitively but print them as written).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_names_differing_only_in_case_are_renamed() {
    let db = TestDb::new().await;
    let naming = ShadowNaming::default();
    db.exec(
        "CREATE TABLE p (id int PRIMARY KEY);
         CREATE TABLE _test_p (id int PRIMARY KEY);
         CREATE TABLE t (id int PRIMARY KEY, name varchar(10), pid int, KEY kn (name),
           KEY kp (pid), FOREIGN KEY (pid) REFERENCES p (id));
         CREATE TABLE _test_t (id int PRIMARY KEY, Name varchar(10), PID int, KEY kn (Name),
           KEY kp (PID), FOREIGN KEY (PID) REFERENCES _test_p (id))",
    )
    .await;
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    assert_eq!(result(&plan, "t"), SyncResult::Update);
    let statements = &plan.table("t").unwrap().statements;
    assert_eq!(statements.len(), 1, "{statements:#?}");
    assert!(
        statements[0].sql.contains("CHANGE COLUMN `Name` `name`"),
        "{statements:#?}"
    );
    converge(&db, &plan, &naming).await;
}

/// Unnamed foreign keys changed on the source (rule, columns, the index serving them): the
/// shadow's keys and the indexes serving them converge in one run, with no index left under
/// a generated name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_foreign_key_indexes_converge_in_one_run() {
    let db = TestDb::new().await;
    let naming = ShadowNaming::default();
    db.exec(
        "CREATE TABLE p (id int PRIMARY KEY, code int, UNIQUE KEY uc (code));
         CREATE TABLE _test_p (id int PRIMARY KEY, code int, UNIQUE KEY uc (code));
         CREATE TABLE a (id int PRIMARY KEY, x int, y int, FOREIGN KEY (x) REFERENCES p (id));
         CREATE TABLE b (id int PRIMARY KEY, x int, y int, CONSTRAINT fkb FOREIGN KEY (y) REFERENCES p (id));
         CREATE TABLE c (id int NOT NULL, x int NOT NULL, PRIMARY KEY (id), FOREIGN KEY (id) REFERENCES p (id));
         CREATE TABLE d (id int PRIMARY KEY, x int, FOREIGN KEY (x) REFERENCES p (code) ON DELETE CASCADE);
         CREATE TABLE _test_a (id int PRIMARY KEY, x int, y int, FOREIGN KEY (y) REFERENCES _test_p (id));
         CREATE TABLE _test_b (id int PRIMARY KEY, x int, y int, CONSTRAINT _test_fkb FOREIGN KEY (x) REFERENCES _test_p (id));
         CREATE TABLE _test_c (id int NOT NULL, x int NOT NULL, PRIMARY KEY (x, id), FOREIGN KEY (id) REFERENCES _test_p (id));
         CREATE TABLE _test_d (id int PRIMARY KEY, x int, FOREIGN KEY (x) REFERENCES _test_p (id))",
    )
    .await;
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    for table in ["a", "b", "c", "d"] {
        assert_eq!(result(&plan, table), SyncResult::Update, "{table}");
    }
    converge(&db, &plan, &naming).await;
}

/// Two CHECK constraints with one expression (and names that only fit the identifier limit
/// once shortened) get distinct shadow names, unique in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_stay_unique_and_within_the_limit() {
    let db = TestDb::new().await;
    let naming = ShadowNaming::default();
    let long = "c".repeat(62);
    db.exec(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, a int,
           CONSTRAINT chk_one CHECK (a > 0), CONSTRAINT chk_two CHECK (a > 0),
           CONSTRAINT `{long}` CHECK (a < 100));
         CREATE TABLE _test_t (id int PRIMARY KEY, a int, CONSTRAINT _test_chk_one CHECK (a > 0));
         CREATE TABLE u (id int PRIMARY KEY, a int,
           CONSTRAINT chk_one CHECK (a > 0), CONSTRAINT `{long}` CHECK (a < 100))"
    ))
    .await;
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    assert_eq!(result(&plan, "t"), SyncResult::Update);
    assert_eq!(result(&plan, "u"), SyncResult::Create);
    converge(&db, &plan, &naming).await;
    let names = db
        .query_string(
            &format!(
                "SELECT GROUP_CONCAT(CONSTRAINT_NAME ORDER BY CONSTRAINT_NAME SEPARATOR ' ') \
                 FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = '{}' \
                 AND CONSTRAINT_TYPE = 'CHECK' AND TABLE_NAME LIKE '\\_test\\_%'",
                db.name
            ),
            0,
        )
        .await;
    let names: Vec<&str> = names.split(' ').collect();
    assert_eq!(names.len(), 5, "{names:?}");
    let unique: std::collections::BTreeSet<String> =
        names.iter().map(|n| n.to_lowercase()).collect();
    assert_eq!(unique.len(), 5, "{names:?}");
    assert!(names.iter().all(|n| n.chars().count() <= 64), "{names:?}");
}

/// A referenced column changes in a way the server allows while foreign keys use it (comment,
/// default, nullability): the in-sync child shadows get no statement. A change it refuses even
/// with `foreign_key_checks = 0` (a type change: error 1833 on MariaDB 10.11) still needs the
/// child's key dropped and re-added; every key then reads back as the source's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_sync_shadows_get_no_statement_when_a_referenced_column_changes() {
    let db = TestDb::new().await;
    let naming = ShadowNaming::default();
    db.exec(
        "CREATE TABLE p (id int NOT NULL COMMENT 'new', code varchar(20) DEFAULT 'x',
           PRIMARY KEY (id), UNIQUE KEY uc (code));
         CREATE TABLE _test_p (id int NOT NULL, code varchar(20) NOT NULL,
           PRIMARY KEY (id), UNIQUE KEY uc (code));
         CREATE TABLE c (id int PRIMARY KEY, p int, KEY kp (p),
           FOREIGN KEY (p) REFERENCES p (id) ON UPDATE NO ACTION);
         CREATE TABLE _test_c (id int PRIMARY KEY, p int, KEY kp (p),
           FOREIGN KEY (p) REFERENCES _test_p (id) ON UPDATE NO ACTION);
         CREATE TABLE d (id int PRIMARY KEY, code varchar(20), KEY kc (code),
           FOREIGN KEY (code) REFERENCES p (code) ON DELETE SET NULL);
         CREATE TABLE _test_d (id int PRIMARY KEY, code varchar(20), KEY kc (code),
           FOREIGN KEY (code) REFERENCES _test_p (code) ON DELETE SET NULL)",
    )
    .await;
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    assert_eq!(result(&plan, "p"), SyncResult::Update);
    assert_eq!(result(&plan, "c"), SyncResult::NoAction);
    assert_eq!(result(&plan, "d"), SyncResult::NoAction);
    assert_eq!(plan.order.len(), 1, "{}", plan.sql_script());
    converge(&db, &plan, &naming).await;
}

/// An orphan shadow's foreign key needs a column the source dropped: the table's reason names
/// the orphan and no failing statement is planned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_blocking_a_column_drop_is_the_tables_reason() {
    let db = TestDb::new().await;
    let naming = ShadowNaming::default();
    db.exec(
        "CREATE TABLE p (id int PRIMARY KEY);
         CREATE TABLE _test_p (id int PRIMARY KEY, code int, UNIQUE KEY uc (code));
         CREATE TABLE _test_gone (id int PRIMARY KEY, code int, KEY kc (code),
           CONSTRAINT gone_fk FOREIGN KEY (code) REFERENCES _test_p (code));
         CREATE TABLE q (id int PRIMARY KEY, v int);
         CREATE TABLE _test_q (id int PRIMARY KEY)",
    )
    .await;
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    let parent = plan.table("p").unwrap();
    assert_eq!(parent.result, SyncResult::Unsupported);
    assert!(parent.statements.is_empty());
    let reason = parent.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("`_test_gone`") && reason.contains("`code`"),
        "{reason}"
    );
    assert_eq!(result(&plan, "gone"), SyncResult::SourceMissing);
    // The rest of the plan runs.
    assert_eq!(result(&plan, "q"), SyncResult::Update);
    db.apply(&plan).await;
    let again = db.plan(SyncRange::All, &naming, &[]).await;
    assert_eq!(result(&again, "q"), SyncResult::NoAction);
    assert_eq!(result(&again, "p"), SyncResult::Unsupported);
}
