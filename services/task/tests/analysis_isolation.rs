//! Isolation through the real gRPC API (task + analysis services, MariaDB): a shadow never
//! references a production table. A partial range pulls in the parents whose shadows are
//! missing; skipping a parent skips, and lists, the tables that would reference it; undo
//! restores them; the preview never references production at any point.

mod support;

use std::time::Duration;

use shadowsync_proto::common::v1::{Dialect, SyncRange, TableAnalysisResult};
use shadowsync_proto::task::v1::*;
use shadowsync_task::TaskConfig;
use support::{Client, MariaDb, Services};
use tonic::Code;

async fn start(services: &Services, target: &MariaDb, tables: &[&str]) -> (Client, String) {
    let mut admin = services.client("root", &["admin"]).await;
    let connection = admin
        .create_connection(CreateConnectionRequest {
            connection: Some(ConnectionSpec {
                name: "shop".into(),
                dialect: Dialect::Mariadb as i32,
                host: "127.0.0.1".into(),
                port: 3306,
                username: "root".into(),
                environment: "test".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create connection")
        .into_inner()
        .connection
        .expect("connection");
    let mut alice = services.client("alice", &[]).await;
    let started = alice
        .start_analysis(StartAnalysisRequest {
            connection_id: connection.id,
            database: target.database.clone(),
            range: SyncRange::Partial as i32,
            tables: tables.iter().map(|t| (*t).to_owned()).collect(),
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner()
        .analysis
        .expect("analysis");
    for _ in 0..600 {
        let analysis = header(&mut alice, &started.id).await;
        if analysis.status == AnalysisStatus::Succeeded as i32 {
            return (alice, started.id);
        }
        assert!(
            matches!(
                AnalysisStatus::try_from(analysis.status),
                Ok(AnalysisStatus::Pending | AnalysisStatus::Running)
            ),
            "{analysis:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the analysis did not finish");
}

async fn header(client: &mut Client, id: &str) -> Analysis {
    client
        .get_analysis(GetAnalysisRequest {
            analysis_id: id.into(),
            omit_tables: true,
            ..Default::default()
        })
        .await
        .expect("get analysis")
        .into_inner()
        .analysis
        .expect("analysis")
}

async fn rows(client: &mut Client, id: &str) -> Vec<AnalysisTable> {
    client
        .get_analysis(GetAnalysisRequest {
            analysis_id: id.into(),
            ..Default::default()
        })
        .await
        .expect("rows")
        .into_inner()
        .tables
}

fn row<'r>(rows: &'r [AnalysisTable], source: &str) -> &'r AnalysisTable {
    rows.iter()
        .find(|row| row.source_table == source)
        .unwrap_or_else(|| panic!("no row {source} in {rows:#?}"))
}

/// The whole preview, and the first page's token when there is more than one page.
async fn preview(client: &mut Client, id: &str) -> (String, String) {
    let mut script = String::new();
    let mut token = String::new();
    let mut first_token = String::new();
    loop {
        let page = client
            .get_sql_preview(GetSqlPreviewRequest {
                analysis_id: id.into(),
                page_size: 1,
                page_token: token.clone(),
            })
            .await
            .expect("preview")
            .into_inner();
        for statement in &page.statements {
            script.push_str(&statement.sql);
            script.push_str(";\n");
        }
        if page.next_page_token.is_empty() {
            return (script, first_token);
        }
        if first_token.is_empty() {
            first_token.clone_from(&page.next_page_token);
        }
        token = page.next_page_token;
    }
}

/// Every `REFERENCES` in the script names a shadow.
fn assert_references_only_shadows(script: &str) {
    assert_eq!(
        script.matches("REFERENCES ").count(),
        script.matches("REFERENCES `_test_").count(),
        "the preview references production:\n{script}"
    );
}

fn skip(id: &str, tables: &[&str], skipped: bool) -> SetTablesSkippedRequest {
    SetTablesSkippedRequest {
        analysis_id: id.into(),
        source_tables: tables.iter().map(|t| (*t).to_owned()).collect(),
        skipped,
        ..Default::default()
    }
}

fn names(rows: &[AnalysisTable]) -> Vec<&str> {
    let mut names: Vec<&str> = rows.iter().map(|row| row.source_table.as_str()).collect();
    names.sort_unstable();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_a_required_parent_cascades_and_undo_restores() {
    let target = MariaDb::empty().await;
    target
        .execute(
            "CREATE TABLE customers (id INT PRIMARY KEY);\n\
             CREATE TABLE orders (id INT PRIMARY KEY, customer INT, KEY kc (customer), \
               CONSTRAINT fk_customer FOREIGN KEY (customer) REFERENCES customers (id) \
               ON DELETE RESTRICT);\n\
             CREATE TABLE order_lines (id INT PRIMARY KEY, order_id INT, KEY ko (order_id), \
               FOREIGN KEY (order_id) REFERENCES orders (id));\n\
             CREATE TABLE notes (id INT PRIMARY KEY)",
        )
        .await;
    let services = Services::start(TaskConfig::default()).await;
    let (mut alice, id) = start(&services, &target, &["order_lines", "notes"]).await;

    // The parents of the partial range join it: their shadows are required.
    let all = rows(&mut alice, &id).await;
    assert_eq!(all.len(), 4, "{all:#?}");
    for (name, reason) in [
        ("orders", "required by `order_lines`"),
        ("customers", "required by `orders`"),
    ] {
        let parent = row(&all, name);
        assert_eq!(parent.result, TableAnalysisResult::Create as i32);
        assert_eq!(parent.reason, reason);
        assert_eq!(parent.tab, AnalysisTab::Synced as i32);
    }
    let (original, original_token) = preview(&mut alice, &id).await;
    assert!(
        original.contains("REFERENCES `_test_customers`"),
        "{original}"
    );
    assert_references_only_shadows(&original);
    let original_etag = header(&mut alice, &id).await.preview_etag;

    // Skip `customers`: `orders` and (through it) `order_lines` are skipped with it and listed.
    let skipped = alice
        .set_tables_skipped(SetTablesSkippedRequest {
            expected_preview_etag: original_etag.clone(),
            ..skip(&id, &["customers"], true)
        })
        .await
        .expect("skip")
        .into_inner();
    assert_eq!(names(&skipped.cascaded_tables), ["order_lines", "orders"]);
    for cascaded in &skipped.cascaded_tables {
        assert!(cascaded.skipped);
        assert_eq!(cascaded.tab, AnalysisTab::Unsynced as i32);
        assert_eq!(cascaded.statement_count, 0);
    }
    assert_eq!(
        row(&skipped.cascaded_tables, "orders").reason,
        "skipped with `customers`: its shadow would reference production `customers`"
    );
    assert_eq!(
        names(&skipped.changed_tables),
        ["customers", "order_lines", "orders"]
    );
    let header_after = skipped.analysis.expect("header");
    assert_eq!(header_after.synced_count, 1, "only notes is left");
    let (during, _) = preview(&mut alice, &id).await;
    assert_eq!(during.matches(";\n").count(), 1, "{during}");
    assert!(during.contains("`_test_notes`"));
    assert_references_only_shadows(&during);

    // The cascade changed the preview: the old etag and the old page token are refused.
    let stale = alice
        .set_tables_skipped(SetTablesSkippedRequest {
            expected_preview_etag: original_etag,
            ..skip(&id, &["notes"], true)
        })
        .await
        .expect_err("stale etag");
    assert_eq!(stale.code(), Code::FailedPrecondition);
    let stale_page = alice
        .get_sql_preview(GetSqlPreviewRequest {
            analysis_id: id.clone(),
            page_size: 1,
            page_token: original_token,
        })
        .await
        .expect_err("stale page token");
    assert_eq!(stale_page.code(), Code::FailedPrecondition);

    // A table skipped with its parent cannot come back alone: it would reference production.
    let alone = alice
        .set_tables_skipped(skip(&id, &["orders"], false))
        .await
        .expect_err("un-skip a cascaded table");
    assert_eq!(alone.code(), Code::InvalidArgument);
    assert!(
        alone.message().contains("source_tables") && alone.message().contains("customers"),
        "{alone:?}"
    );
    let (unchanged, _) = preview(&mut alice, &id).await;
    assert_eq!(unchanged, during);

    // Undo restores them all, and the preview is the original one again.
    let undone = alice
        .set_tables_skipped(skip(&id, &["customers"], false))
        .await
        .expect("undo")
        .into_inner();
    assert_eq!(names(&undone.cascaded_tables), ["order_lines", "orders"]);
    assert!(undone.cascaded_tables.iter().all(|row| !row.skipped));
    let restored = rows(&mut alice, &id).await;
    assert_eq!(
        row(&restored, "customers").reason,
        "required by `orders`",
        "the reason comes back too"
    );
    assert_eq!(row(&restored, "orders").reason, "required by `order_lines`");
    assert_eq!(header(&mut alice, &id).await.synced_count, 4);
    let (after, _) = preview(&mut alice, &id).await;
    assert_eq!(after, original);

    // A cascaded table the user then skips by name stays skipped when the parent comes back.
    alice
        .set_tables_skipped(skip(&id, &["customers"], true))
        .await
        .expect("skip again");
    let promoted = alice
        .set_tables_skipped(skip(&id, &["order_lines"], true))
        .await
        .expect("skip a cascaded table by name")
        .into_inner();
    assert!(row(&promoted.changed_tables, "order_lines").skipped);
    let back = alice
        .set_tables_skipped(skip(&id, &["customers"], false))
        .await
        .expect("undo the parent")
        .into_inner();
    assert_eq!(names(&back.cascaded_tables), ["orders"]);
    let rows_now = rows(&mut alice, &id).await;
    assert!(row(&rows_now, "order_lines").skipped);
    assert!(!row(&rows_now, "orders").skipped);
    let (last, _) = preview(&mut alice, &id).await;
    assert!(!last.contains("`_test_order_lines`"), "{last}");
    assert_references_only_shadows(&last);

    services.api.runner().expect("runner").idle().await;
    target.drop_all().await;
}
