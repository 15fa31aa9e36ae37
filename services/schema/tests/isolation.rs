//! Isolation on real MariaDB: a shadow never references a non-shadow object.
//! After every plan is applied, information_schema proves that no shadow's foreign key
//! references a table that is not a shadow.

mod common;

use common::*;
use shadowsync_common::testing::MariaDb;
use shadowsync_schema::{Plan, ShadowNaming, SyncRange, SyncResult};
use sqlx::Row as _;

/// Every foreign key of every shadow in `db`, as (shadow, referenced schema, referenced table),
/// read from information_schema (not from the engine's own parser).
async fn shadow_references(db: &TestDb, naming: &ShadowNaming) -> Vec<(String, String, String)> {
    let rows = sqlx::query(
        "SELECT k.TABLE_NAME, k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME \
         FROM information_schema.REFERENTIAL_CONSTRAINTS r \
         JOIN information_schema.KEY_COLUMN_USAGE k \
           ON k.CONSTRAINT_SCHEMA = r.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = r.CONSTRAINT_NAME \
          AND k.TABLE_NAME = r.TABLE_NAME \
         WHERE r.CONSTRAINT_SCHEMA = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL",
    )
    .bind(&db.name)
    .fetch_all(&db.pool)
    .await
    .expect("information_schema");
    let mut out: Vec<(String, String, String)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .filter(|(table, _, _): &(String, String, String)| {
            naming.source_of(table, str::to_owned).is_some()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Asserts that no shadow references a table outside its database or a table that is not a
/// shadow under `naming`.
async fn assert_no_shadow_references_production(db: &TestDb, naming: &ShadowNaming) {
    for (shadow, schema, parent) in shadow_references(db, naming).await {
        assert_eq!(
            schema, db.name,
            "{shadow} references {schema}.{parent} in another database"
        );
        assert!(
            naming.source_of(&parent, str::to_owned).is_some(),
            "{shadow} references production table {parent}"
        );
    }
}

fn table<'p>(plan: &'p Plan, source: &str) -> &'p shadowsync_schema::TablePlan {
    plan.table(source)
        .unwrap_or_else(|| panic!("{source} is not in the plan: {:#?}", results(plan)))
}

const SHOP: &str = "CREATE TABLE regions (id int PRIMARY KEY) ENGINE=InnoDB;
    CREATE TABLE customers (id int PRIMARY KEY, region int, KEY kr (region),
      CONSTRAINT fk_region FOREIGN KEY (region) REFERENCES regions (id)) ENGINE=InnoDB;
    CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, KEY kc (customer),
      CONSTRAINT fk_customer FOREIGN KEY (customer) REFERENCES customers (id) ON DELETE RESTRICT)
      ENGINE=InnoDB;
    CREATE TABLE order_items (id int PRIMARY KEY, order_id int, KEY ko (order_id),
      CONSTRAINT fk_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE)
      ENGINE=InnoDB";

/// Partial Tables with only a child: the parents' shadows (transitively) join the plan as
/// CREATE "required by ...", and the child's shadow references the parent's shadow.
#[tokio::test]
async fn a_partial_child_pulls_in_its_parents_shadows() {
    let db = TestDb::new().await;
    db.exec(SHOP).await;
    let naming = ShadowNaming::default();
    let range = SyncRange::Partial(vec!["orders".into()]);
    let plan = db.plan(range.clone(), &naming, &[]).await;
    assert_eq!(table(&plan, "orders").result, SyncResult::Create);
    let customers = table(&plan, "customers");
    assert_eq!(customers.result, SyncResult::Create);
    assert_eq!(customers.reason.as_deref(), Some("required by `orders`"));
    let regions = table(&plan, "regions");
    assert_eq!(regions.result, SyncResult::Create);
    assert_eq!(regions.reason.as_deref(), Some("required by `customers`"));
    assert!(
        plan.table("order_items").is_none(),
        "children are not pulled in"
    );
    let script = plan.sql_script();
    assert!(script.contains("REFERENCES `_test_customers`"), "{script}");
    assert!(!script.contains("REFERENCES `customers`"), "{script}");
    // Parents first, so every statement runs as shown.
    assert!(script.find("`_test_regions`") < script.find("`_test_customers`"));
    assert!(script.find("TABLE `_test_customers`") < script.find("TABLE `_test_orders`"));

    db.apply(&plan).await;
    assert_eq!(
        shadow_references(&db, &naming).await,
        vec![
            (
                "_test_customers".into(),
                db.name.clone(),
                "_test_regions".into()
            ),
            (
                "_test_orders".into(),
                db.name.clone(),
                "_test_customers".into()
            ),
        ]
    );
    assert_all_no_action(&db.plan(range, &naming, &[]).await);
    assert_no_shadow_references_production(&db, &naming).await;
}

/// A shadow child whose key points at production (what skipping a parent produced before)
/// gets an UPDATE that repoints it, and its missing parent shadow is created first.
#[tokio::test]
async fn an_existing_shadow_key_to_production_is_repointed() {
    let db = TestDb::new().await;
    db.exec(SHOP).await;
    db.exec(
        "CREATE TABLE _test_regions (id int PRIMARY KEY);
         CREATE TABLE _test_orders (id int PRIMARY KEY, customer int NOT NULL, KEY kc (customer),
           CONSTRAINT _test_fk_customer FOREIGN KEY (customer) REFERENCES customers (id)
           ON DELETE RESTRICT) ENGINE=InnoDB",
    )
    .await;
    let naming = ShadowNaming::default();
    let range = SyncRange::Partial(vec!["orders".into()]);
    let plan = db.plan(range.clone(), &naming, &[]).await;
    let orders = table(&plan, "orders");
    assert_eq!(
        orders.result,
        SyncResult::Update,
        "{:#?}",
        orders.statements
    );
    assert!(
        orders.statements[0]
            .sql
            .contains("DROP FOREIGN KEY `_test_fk_customer`"),
        "{:#?}",
        orders.statements
    );
    assert_eq!(table(&plan, "customers").result, SyncResult::Create);
    // `regions` has its shadow: it is referenced, not planned.
    assert!(plan.table("regions").is_none());
    db.apply(&plan).await;
    assert_no_shadow_references_production(&db, &naming).await;
    assert_all_no_action(&db.plan(range, &naming, &[]).await);
    let all = db.plan(SyncRange::All, &naming, &[]).await;
    assert_eq!(table(&all, "orders").result, SyncResult::NoAction);
    assert_eq!(table(&all, "customers").result, SyncResult::NoAction);

    // The same with every table in range: an UPDATE, then NO_ACTION for all.
    let db = TestDb::new().await;
    db.exec(SHOP).await;
    db.exec(
        "CREATE TABLE _test_order_items (id int PRIMARY KEY, order_id int, KEY ko (order_id),
           CONSTRAINT x FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE)",
    )
    .await;
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    assert_eq!(table(&plan, "order_items").result, SyncResult::Update);
    db.apply(&plan).await;
    assert_no_shadow_references_production(&db, &naming).await;
    assert_all_no_action(&db.plan(SyncRange::All, &naming, &[]).await);
    db.assert_shadows_match(&naming).await;
}

/// Skipping a parent skips its children (transitively) with the reason; un-skipping restores
/// them; the script of either never references production.
#[tokio::test]
async fn skipping_a_parent_skips_the_tables_that_would_reference_it() {
    let db = TestDb::new().await;
    db.exec(SHOP).await;
    let naming = ShadowNaming::default();
    let plan = db.plan(SyncRange::All, &naming, &["customers"]).await;
    for skipped in ["customers", "orders", "order_items"] {
        let row = table(&plan, skipped);
        assert!(row.skipped, "{skipped} should be skipped");
        assert_eq!(row.result, SyncResult::Create);
        assert!(row.statements.is_empty());
    }
    assert_eq!(
        table(&plan, "orders").reason.as_deref(),
        Some("skipped with `customers`: its shadow would reference production `customers`")
    );
    assert_eq!(
        table(&plan, "order_items").reason.as_deref(),
        Some("skipped with `orders`: its shadow would reference production `orders`")
    );
    assert!(!table(&plan, "regions").skipped, "parents are not skipped");
    db.apply(&plan).await;
    assert_no_shadow_references_production(&db, &naming).await;

    let restored = db.plan(SyncRange::All, &naming, &[]).await;
    for name in ["customers", "orders", "order_items"] {
        let row = table(&restored, name);
        assert!(!row.skipped, "{name} is restored");
        assert_eq!(row.result, SyncResult::Create);
        assert_eq!(row.reason, None);
    }
    db.apply(&restored).await;
    assert_no_shadow_references_production(&db, &naming).await;
    assert_all_no_action(&db.plan(SyncRange::All, &naming, &[]).await);
}

/// A parent in another database: the child is UNSUPPORTED, and so is whatever references it.
#[tokio::test]
async fn a_parent_in_another_database_makes_the_child_unsupported() {
    let db = TestDb::new().await;
    let other = MariaDb::create("ss_schema_other").await;
    other
        .exec("CREATE TABLE accounts (id int PRIMARY KEY) ENGINE=InnoDB")
        .await;
    db.exec(&format!(
        "CREATE TABLE wallets (id int PRIMARY KEY, account int, KEY ka (account),
           CONSTRAINT fk_account FOREIGN KEY (account) REFERENCES `{}`.accounts (id));
         CREATE TABLE payments (id int PRIMARY KEY, wallet int, KEY kw (wallet),
           FOREIGN KEY (wallet) REFERENCES wallets (id));
         CREATE TABLE plain (id int PRIMARY KEY)",
        other.name
    ))
    .await;
    let naming = ShadowNaming::default();
    for (range, plain) in [
        (SyncRange::All, SyncResult::Create),
        (
            SyncRange::Partial(vec!["payments".into(), "plain".into()]),
            SyncResult::NoAction,
        ),
    ] {
        let plan = db.plan(range, &naming, &[]).await;
        let wallets = table(&plan, "wallets");
        assert_eq!(wallets.result, SyncResult::Unsupported);
        let reason = wallets.reason.as_deref().unwrap();
        assert!(
            reason.contains("another database") && reason.contains(&other.name),
            "{reason}"
        );
        let payments = table(&plan, "payments");
        assert_eq!(payments.result, SyncResult::Unsupported);
        assert!(
            payments
                .reason
                .as_deref()
                .unwrap()
                .contains("its parent `wallets` cannot have a shadow"),
            "{:?}",
            payments.reason
        );
        assert_eq!(table(&plan, "plain").result, plain);
        db.apply(&plan).await;
        assert_no_shadow_references_production(&db, &naming).await;
    }
    // `wallets` references `other`: the server refuses to drop `other` while it does.
    db.exec("DROP TABLE payments, wallets").await;
    other.drop_database().await;
}

/// A sequence in a DEFAULT (`NEXTVAL`, `NEXT VALUE FOR`, `LASTVAL`, `PREVIOUS VALUE FOR`,
/// `SETVAL`): shadow inserts would use the production sequence, so the table is UNSUPPORTED.
#[tokio::test]
async fn a_sequence_in_a_default_makes_the_table_unsupported() {
    let db = TestDb::new().await;
    db.exec(
        "CREATE SEQUENCE order_numbers;
         CREATE TABLE by_function (id int DEFAULT (NEXTVAL(order_numbers)) PRIMARY KEY);
         CREATE TABLE by_standard (id int DEFAULT NEXT VALUE FOR order_numbers PRIMARY KEY);
         CREATE TABLE by_lastval (id int PRIMARY KEY, last int DEFAULT (LASTVAL(order_numbers)));
         CREATE TABLE by_previous (id int PRIMARY KEY,
           last int DEFAULT PREVIOUS VALUE FOR order_numbers);
         CREATE TABLE by_setval (id int PRIMARY KEY, v int DEFAULT (SETVAL(order_numbers, 5)));
         CREATE TABLE order_lines (id int PRIMARY KEY, parent int, KEY kp (parent),
           FOREIGN KEY (parent) REFERENCES by_function (id));
         CREATE TABLE quoted (id int PRIMARY KEY, note varchar(40) DEFAULT 'nextval(order_numbers)')",
    )
    .await;
    let naming = ShadowNaming::default();
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    // How the server prints it: `nextval(`db`.`seq`)`, qualified by the database.
    let ddl = table(&plan, "by_standard").source_ddl.clone().unwrap();
    assert!(
        ddl.contains(&format!("DEFAULT nextval(`{}`.`order_numbers`)", db.name)),
        "{ddl}"
    );
    for name in [
        "by_function",
        "by_standard",
        "by_lastval",
        "by_previous",
        "by_setval",
    ] {
        let row = table(&plan, name);
        assert_eq!(row.result, SyncResult::Unsupported, "{name}");
        let reason = row.reason.as_deref().unwrap();
        assert!(reason.contains("production sequence"), "{name}: {reason}");
    }
    assert_eq!(table(&plan, "order_lines").result, SyncResult::Unsupported);
    assert_eq!(table(&plan, "quoted").result, SyncResult::Create);
    db.apply(&plan).await;
    assert_no_shadow_references_production(&db, &naming).await;
    assert_all_no_action(
        &db.plan(SyncRange::Partial(vec!["quoted".into()]), &naming, &[])
            .await,
    );

    // A partial range naming a child of such a table: UNSUPPORTED, nothing created.
    let plan = db
        .plan(SyncRange::Partial(vec!["order_lines".into()]), &naming, &[])
        .await;
    assert_eq!(table(&plan, "order_lines").result, SyncResult::Unsupported);
    assert!(plan.order.is_empty());
}

/// A cycle reached through a partial range: the other table's shadow joins, and the key closing
/// the cycle is added after both exist (foreign_key_checks stay on).
#[tokio::test]
async fn a_cycle_through_a_required_parent_runs_as_shown() {
    let db = TestDb::new().await;
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, b_id int, KEY kb (b_id));
         CREATE TABLE b (id int PRIMARY KEY, a_id int, KEY ka (a_id),
           CONSTRAINT fk_b_a FOREIGN KEY (a_id) REFERENCES a (id));
         ALTER TABLE a ADD CONSTRAINT fk_a_b FOREIGN KEY (b_id) REFERENCES b (id)",
    )
    .await;
    let naming = ShadowNaming::Suffix(shadowsync_schema::Affix::new("_t").unwrap());
    let range = SyncRange::Partial(vec!["a".into()]);
    let plan = db.plan(range.clone(), &naming, &[]).await;
    assert_eq!(table(&plan, "b").reason.as_deref(), Some("required by `a`"));
    let script = plan.sql_script();
    // FK names carry the affix.
    assert!(script.contains("CONSTRAINT `fk_b_a_t`"), "{script}");
    assert!(script.contains("CONSTRAINT `fk_a_b_t`"), "{script}");
    db.apply(&plan).await;
    assert_no_shadow_references_production(&db, &naming).await;
    assert_all_no_action(&db.plan(range, &naming, &[]).await);
    db.assert_shadows_match(&naming).await;
}

/// `shadowctl plan` (no server) follows the same rules: a partial range's SQL creates the
/// parents' shadows first and never references production; the text report gives the reasons.
#[tokio::test]
async fn the_plan_command_follows_the_same_rules() {
    use shadowsync_schema::cli::{OutputFormat, PlanArgs, run_plan};
    let db = TestDb::new().await;
    db.exec(SHOP).await;
    db.exec("CREATE SEQUENCE s; CREATE TABLE numbered (id int DEFAULT NEXT VALUE FOR s)")
        .await;
    let args = |format| PlanArgs {
        url: URL.into(),
        database: db.name.clone(),
        prefix: None,
        suffix: None,
        tables: vec!["order_items".into(), "numbered".into()],
        format,
    };
    let mut out = Vec::new();
    run_plan(&args(OutputFormat::Sql), None, &mut out)
        .await
        .unwrap();
    let sql = String::from_utf8(out).unwrap();
    assert!(sql.starts_with("CREATE TABLE `_test_regions`"), "{sql}");
    assert_eq!(sql.matches("CREATE TABLE").count(), 4, "{sql}");
    assert_eq!(
        sql.matches("REFERENCES ").count(),
        sql.matches("REFERENCES `_test_").count(),
        "{sql}"
    );
    let mut out = Vec::new();
    run_plan(&args(OutputFormat::Text), None, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("required by `order_items`"), "{text}");
    assert!(text.contains("production sequence"), "{text}");
    // The SQL runs as shown.
    let plan = db
        .plan(
            SyncRange::Partial(vec!["order_items".into(), "numbered".into()]),
            &ShadowNaming::default(),
            &[],
        )
        .await;
    assert_eq!(plan.sql_script(), sql);
    db.apply(&plan).await;
    assert_no_shadow_references_production(&db, &ShadowNaming::default()).await;
}
