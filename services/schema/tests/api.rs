//! Public API behaviour against MariaDB: round trips grow as N / batch, partial ranges read only
//! what they need, bad input gives typed errors and no output, the plan CLI's formats.

mod common;

use common::*;
use shadowsync_schema::cli::{OutputFormat, PlanArgs, run_plan};
use shadowsync_schema::{IntrospectOptions, SchemaError, ShadowNaming, SyncRange, SyncResult};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_grow_with_batches_not_tables() {
    let db = TestDb::new().await;
    let mut ddl = String::new();
    for i in 0..500 {
        ddl.push_str(&format!(
            "CREATE TABLE t{i:03} (id int PRIMARY KEY, v varchar(10)) ENGINE=MyISAM;"
        ));
    }
    // Half the shadows exist: they are read too, in the same batches.
    for i in (0..500).step_by(2) {
        ddl.push_str(&format!(
            "CREATE TABLE _test_t{i:03} (id int PRIMARY KEY) ENGINE=MyISAM;"
        ));
    }
    db.exec(&ddl).await;
    let naming = ShadowNaming::default();
    let options = IntrospectOptions {
        batch_size: 100,
        parallelism: 2,
    };

    let introspector = db.introspector(options);
    let small: Vec<String> = (0..10).map(|i| format!("t{i:03}")).collect();
    let mut calls = 0;
    let (catalog, stats) = introspector
        .introspect(
            &db.name,
            &SyncRange::Partial(small),
            &naming,
            &mut |_, _| calls += 1,
        )
        .await
        .unwrap();
    // One round trip for server facts and the table list, one batch for 10 sources + 5 shadows.
    assert_eq!(stats.round_trips, 2);
    assert_eq!(
        catalog.tables.len(),
        15,
        "only the requested sources and their shadows"
    );
    assert_eq!(calls, 1);

    let introspector = db.introspector(options);
    let (catalog, stats) = introspector
        .introspect(&db.name, &SyncRange::All, &naming, &mut |_, _| {})
        .await
        .unwrap();
    // 750 tables in batches of 100: 8 batches + 1.
    assert_eq!(catalog.tables.len(), 750);
    assert_eq!(stats.round_trips, 9);
    assert_eq!(introspector.round_trips(), 9);
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    assert_eq!(plan.tables.len(), 500);
    assert_eq!(
        plan.tables
            .iter()
            .filter(|t| t.result == SyncResult::Create)
            .count(),
        250
    );
}

#[tokio::test]
async fn bad_input_is_a_typed_error() {
    let db = TestDb::new().await;
    db.exec("CREATE TABLE orders (id int PRIMARY KEY); CREATE VIEW v AS SELECT 1 AS x")
        .await;
    assert!(matches!(
        ShadowNaming::prefix(Some("bad-affix")),
        Err(SchemaError::InvalidAffix { .. })
    ));
    let naming = ShadowNaming::default();
    let introspector = db.introspector(IntrospectOptions::default());
    let unknown = introspector
        .introspect(
            &db.name,
            &SyncRange::Partial(vec!["orders".into(), "nope".into(), "v".into()]),
            &naming,
            &mut |_, _| {},
        )
        .await
        .unwrap_err();
    match unknown {
        SchemaError::UnknownTables { tables, .. } => assert_eq!(tables, vec!["nope", "v"]),
        other => panic!("unexpected {other}"),
    }
    let missing = introspector
        .introspect(
            "ss_schema_does_not_exist",
            &SyncRange::All,
            &naming,
            &mut |_, _| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(missing, SchemaError::DatabaseNotFound(_)),
        "{missing}"
    );

    // A source whose shadow name would pass 64 characters is UNSUPPORTED with the reason.
    let long = "x".repeat(60);
    db.exec(&format!("CREATE TABLE {long} (id int)")).await;
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    let table = plan.table(&long).unwrap();
    assert_eq!(table.result, SyncResult::Unsupported);
    assert!(table.reason.as_deref().unwrap().contains("limit of 64"));
}

fn args(db: &str, format: OutputFormat) -> PlanArgs {
    PlanArgs {
        url: URL.into(),
        database: db.into(),
        prefix: None,
        suffix: None,
        tables: Vec::new(),
        format,
    }
}

#[tokio::test]
async fn cli_formats_and_errors() {
    let db = TestDb::new().await;
    db.exec(
        "CREATE TABLE parent (id int PRIMARY KEY);
         CREATE TABLE child (id int PRIMARY KEY, p int, KEY kp (p), FOREIGN KEY (p) REFERENCES parent (id));
         CREATE TABLE same (id int PRIMARY KEY); CREATE TABLE same_t (id int NOT NULL, PRIMARY KEY (id))",
    )
    .await;

    let mut sql_args = args(&db.name, OutputFormat::Sql);
    sql_args.suffix = Some("_t".into());
    let mut out = Vec::new();
    run_plan(&sql_args, None, &mut out).await.unwrap();
    let sql = String::from_utf8(out).unwrap();
    assert!(sql.starts_with("CREATE TABLE `parent_t`"), "{sql}");
    assert!(sql.contains("REFERENCES `parent_t`"));
    assert!(sql.ends_with(";\n"));
    assert_eq!(sql.matches(";\n").count(), 2, "only the change SQL: {sql}");

    let mut out = Vec::new();
    run_plan(&args(&db.name, OutputFormat::Text), None, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.lines().next().unwrap().starts_with("SOURCE"));
    assert!(text.contains("CREATE"), "{text}");

    let mut out = Vec::new();
    run_plan(&args(&db.name, OutputFormat::Json), None, &mut out)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["tables"].as_array().unwrap().len(), 4);

    // Errors: nothing written.
    let mut bad = args(&db.name, OutputFormat::Sql);
    bad.prefix = Some("no spaces".into());
    let mut out = Vec::new();
    assert!(matches!(
        run_plan(&bad, None, &mut out).await,
        Err(SchemaError::InvalidAffix { .. })
    ));
    let mut bad = args(&db.name, OutputFormat::Sql);
    bad.tables = vec!["child".into(), "ghost".into()];
    assert!(matches!(
        run_plan(&bad, None, &mut out).await,
        Err(SchemaError::UnknownTables { .. })
    ));
    let bad = args("ss_schema_missing_db", OutputFormat::Sql);
    assert!(matches!(
        run_plan(&bad, None, &mut out).await,
        Err(SchemaError::DatabaseNotFound(_))
    ));
    let mut bad = args(&db.name, OutputFormat::Sql);
    bad.url = "mysql://root@127.0.0.1:1".into();
    assert!(matches!(
        run_plan(&bad, None, &mut out).await,
        Err(SchemaError::Database(_))
    ));
    let mut bad = args(&db.name, OutputFormat::Sql);
    bad.url = "postgres://x".into();
    assert!(matches!(
        run_plan(&bad, None, &mut out).await,
        Err(SchemaError::InvalidArgument { .. })
    ));
    // The password from the environment is used when the URL has none (root has none here, so
    // a wrong one proves it is sent).
    let wrong = run_plan(
        &args(&db.name, OutputFormat::Sql),
        Some("wrong".into()),
        &mut out,
    )
    .await;
    assert!(matches!(wrong, Err(SchemaError::Database(_))), "{wrong:?}");
    assert!(out.is_empty());
}

/// The executor's view: after each statement the shadow has the fingerprint the plan promised,
/// and the source's fingerprint is what the plan recorded.
#[tokio::test]
async fn statement_fingerprints_track_the_shadow() {
    let db = TestDb::new().await;
    db.exec(
        "CREATE TABLE p (id int PRIMARY KEY, code int, UNIQUE KEY uc (code));
         CREATE TABLE _test_p (id int PRIMARY KEY, code int, UNIQUE KEY uc (code));
         CREATE TABLE c (id int PRIMARY KEY, r int, KEY kr (r), FOREIGN KEY (r) REFERENCES p (code) ON DELETE CASCADE) ENGINE=InnoDB;
         CREATE TABLE _test_c (id int PRIMARY KEY, r int, x int, KEY kr (r), FOREIGN KEY (r) REFERENCES _test_p (id)) ENGINE=Aria;
         CREATE TABLE n (id int PRIMARY KEY, r int, KEY kr (r), FOREIGN KEY (r) REFERENCES p (id))",
    )
    .await;
    let naming = ShadowNaming::default();
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    let introspector = db.introspector(IntrospectOptions::default());
    let names: Vec<String> = vec!["c".into(), "_test_c".into(), "_test_n".into()];
    let before = introspector.fingerprints(&db.name, &names).await.unwrap();
    let c = plan.table("c").unwrap();
    assert_eq!(c.result, SyncResult::Update);
    assert!(c.statements.len() >= 2, "{:#?}", c.statements);
    assert_eq!(before["c"], c.source_fingerprint);
    assert_eq!(before["_test_c"], c.shadow_fingerprint);
    assert_eq!(before["_test_n"], None);

    let mut conn = db.pool.acquire().await.unwrap();
    use sqlx::Executor as _;
    for (table, statement) in plan.statements() {
        conn.execute(sqlx::AssertSqlSafe(statement.sql.clone()))
            .await
            .unwrap();
        let shadow = table.shadow.clone().unwrap();
        let now = introspector
            .fingerprints(&db.name, std::slice::from_ref(&shadow))
            .await
            .unwrap();
        assert_eq!(
            now[&shadow].as_deref(),
            Some(statement.expected_fingerprint_after.as_str()),
            "after {}",
            statement.sql
        );
    }
    let after = introspector.fingerprints(&db.name, &names).await.unwrap();
    assert_eq!(after["_test_c"], c.target_fingerprint);
    assert_eq!(
        after["_test_n"],
        plan.table("n").unwrap().target_fingerprint
    );
}

/// What the executor reads to keep key-linked tables out of parallel lanes: the requested
/// tables each table's keys reference now (keys to tables not asked about are left out).
#[tokio::test]
async fn observe_reports_the_requested_tables_each_key_references() {
    let db = TestDb::new().await;
    db.exec(
        "CREATE TABLE p (id int PRIMARY KEY);
         CREATE TABLE _test_p (id int PRIMARY KEY);
         CREATE TABLE _test_c (id int PRIMARY KEY, r int, s int, KEY kr (r), KEY ks (s),
           FOREIGN KEY (r) REFERENCES _test_p (id), FOREIGN KEY (s) REFERENCES p (id));
         CREATE TABLE _test_d (id int PRIMARY KEY)",
    )
    .await;
    let introspector = db.introspector(IntrospectOptions::default());
    let names: Vec<String> = ["_test_c", "_test_p", "_test_d", "_test_missing"]
        .map(String::from)
        .to_vec();
    let observed = introspector.observe(&db.name, &names).await.unwrap();
    // `p` was not asked about, so only the shadow parent is named.
    assert_eq!(observed["_test_c"].references, ["_test_p"]);
    assert!(observed["_test_c"].fingerprint.is_some());
    assert!(observed["_test_d"].references.is_empty());
    assert_eq!(
        observed["_test_missing"],
        shadowsync_schema::TableObservation::default()
    );
}
