//! The analysis journey through real tonic servers (task + analysis) against MariaDB with the
//! sakila corpus schema: some shadows missing, some differing, some equal.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use shadowsync_proto::common::v1::{Dialect, SyncRange, TableAnalysisResult};
use shadowsync_proto::task::v1::*;
use shadowsync_task::TaskConfig;
use support::{Client, MariaDb, Services};
use tonic::Code;

async fn connection(admin: &mut Client, name: &str) -> Connection {
    admin
        .create_connection(CreateConnectionRequest {
            connection: Some(ConnectionSpec {
                name: name.into(),
                dialect: Dialect::Mariadb as i32,
                host: "127.0.0.1".into(),
                port: 3306,
                username: "root".into(),
                password: String::new(),
                environment: "test".into(),
                options: Default::default(),
            }),
            request_id: String::new(),
        })
        .await
        .expect("create connection")
        .into_inner()
        .connection
        .expect("connection")
}

async fn wait_until_done(client: &mut Client, id: &str) -> Analysis {
    for _ in 0..600 {
        let analysis = client
            .get_analysis(GetAnalysisRequest {
                analysis_id: id.into(),
                omit_tables: true,
                ..Default::default()
            })
            .await
            .expect("get analysis")
            .into_inner()
            .analysis
            .expect("analysis");
        let status = AnalysisStatus::try_from(analysis.status).expect("status");
        if !matches!(status, AnalysisStatus::Pending | AnalysisStatus::Running) {
            return analysis;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("analysis {id} did not finish");
}

async fn all_rows(client: &mut Client, id: &str, tab: AnalysisTab) -> Vec<AnalysisTable> {
    let mut rows = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .get_analysis(GetAnalysisRequest {
                analysis_id: id.into(),
                tab: tab as i32,
                page_size: 5,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        rows.extend(page.tables);
        if page.next_page_token.is_empty() {
            return rows;
        }
        token = page.next_page_token;
    }
}

/// The whole preview, paged, as the script text.
async fn preview(client: &mut Client, id: &str) -> (String, String) {
    let mut script = String::new();
    let mut token = String::new();
    let mut expected_index = 0;
    loop {
        let page = client
            .get_sql_preview(GetSqlPreviewRequest {
                analysis_id: id.into(),
                page_size: 4,
                page_token: token.clone(),
            })
            .await
            .expect("preview")
            .into_inner();
        for statement in &page.statements {
            assert_eq!(statement.index, expected_index);
            expected_index += 1;
            script.push_str(&statement.sql);
            script.push_str(";\n");
        }
        if page.next_page_token.is_empty() {
            return (script, page.preview_etag);
        }
        token = page.next_page_token;
    }
}

/// The non-skipped tables' change statements, in plan (script) order.
async fn script_from_tables(client: &mut Client, id: &str) -> String {
    let mut statements = BTreeMap::new();
    for row in all_rows(client, id, AnalysisTab::Synced).await {
        let table = client
            .get_analysis_table(GetAnalysisTableRequest {
                analysis_id: id.into(),
                table: Some(get_analysis_table_request::Table::TableId(row.id.clone())),
            })
            .await
            .expect("table")
            .into_inner();
        let joined: Vec<&str> = table.statements.iter().map(|s| s.sql.as_str()).collect();
        if !joined.is_empty() {
            assert_eq!(table.change_sql, format!("{};", joined.join(";\n")));
        }
        for statement in table.statements {
            statements.insert(statement.script_index, statement.sql);
        }
    }
    statements.values().map(|sql| format!("{sql};\n")).collect()
}

fn by_source(rows: &[AnalysisTable]) -> BTreeMap<&str, &AnalysisTable> {
    rows.iter()
        .map(|row| (row.source_table.as_str(), row))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sakila_analysis_skip_undo_and_preview() {
    let target = MariaDb::corpus("sakila").await;
    // Equal shadows, differing shadows; the rest are missing.
    target
        .execute(
            "CREATE TABLE `_test_actor` LIKE `actor`;\n\
             CREATE TABLE `_test_category` LIKE `category`;\n\
             CREATE TABLE `_test_country` LIKE `country`;\n\
             ALTER TABLE `_test_country` DROP COLUMN `last_update`;\n\
             CREATE TABLE `_test_language` LIKE `language`;\n\
             ALTER TABLE `_test_language` ADD COLUMN `extra` INT NULL",
        )
        .await;
    let services = Services::start(TaskConfig::default()).await;
    let mut admin = services.client("root", &["admin"]).await;
    let mut alice = services.client("alice", &[]).await;
    let mut bob = services.client("bob", &[]).await;
    let connection = connection(&mut admin, "sakila").await;

    let started = alice
        .start_analysis(StartAnalysisRequest {
            connection_id: connection.id.clone(),
            database: target.database.clone(),
            range: SyncRange::All as i32,
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner()
        .analysis
        .expect("analysis");
    assert!(matches!(
        AnalysisStatus::try_from(started.status),
        Ok(AnalysisStatus::Pending | AnalysisStatus::Running)
    ));
    let done = wait_until_done(&mut alice, &started.id).await;
    assert_eq!(
        done.status,
        AnalysisStatus::Succeeded as i32,
        "{:?}",
        done.failure
    );
    assert_eq!(done.progress_percent, 100);
    assert_eq!(done.tables_total, 16);
    assert_eq!(done.tables_done, 16);
    assert_eq!(
        (done.create_count, done.update_count, done.no_action_count),
        (12, 2, 2)
    );

    // Others cannot see it.
    let hidden = bob
        .get_analysis(GetAnalysisRequest {
            analysis_id: started.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);

    let rows = all_rows(&mut alice, &started.id, AnalysisTab::Unspecified).await;
    let rows_by_source = by_source(&rows);
    let result = |name: &str| TableAnalysisResult::try_from(rows_by_source[name].result).unwrap();
    assert_eq!(result("actor"), TableAnalysisResult::NoAction);
    assert_eq!(result("category"), TableAnalysisResult::NoAction);
    assert_eq!(result("country"), TableAnalysisResult::Update);
    assert_eq!(result("language"), TableAnalysisResult::Update);
    assert_eq!(result("city"), TableAnalysisResult::Create);
    assert_eq!(rows_by_source["city"].shadow_table, "_test_city");
    let synced = all_rows(&mut alice, &started.id, AnalysisTab::Synced).await;
    assert_eq!(synced.len(), 14);
    let filtered = alice
        .get_analysis(GetAnalysisRequest {
            analysis_id: started.id.clone(),
            table_contains: "FILM_".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        filtered.total_size, 3,
        "film_actor, film_category, film_text"
    );

    let (original, original_etag) = preview(&mut alice, &started.id).await;
    assert!(!original.is_empty());
    assert_eq!(original, script_from_tables(&mut alice, &started.id).await);

    // NO_ACTION rows cannot be skipped.
    let refused = alice
        .set_tables_skipped(SetTablesSkippedRequest {
            analysis_id: started.id.clone(),
            source_tables: vec!["actor".into()],
            skipped: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    // Skip `city`: `address` (its child) would reference production `city`, so it is skipped
    // with it, and so is everything that would then reference `address`, transitively.
    let skipped = alice
        .set_tables_skipped(SetTablesSkippedRequest {
            analysis_id: started.id.clone(),
            source_tables: vec!["city".into()],
            skipped: true,
            expected_preview_etag: original_etag.clone(),
            ..Default::default()
        })
        .await
        .expect("skip")
        .into_inner();
    let header = skipped.analysis.expect("header");
    assert_ne!(header.preview_etag, original_etag);
    let cascade = [
        "address",
        "customer",
        "inventory",
        "payment",
        "rental",
        "staff",
        "store",
    ];
    let mut cascaded: Vec<&str> = skipped
        .cascaded_tables
        .iter()
        .map(|row| row.source_table.as_str())
        .collect();
    cascaded.sort_unstable();
    assert_eq!(cascaded, cascade);
    assert_eq!(header.synced_count, 14 - 1 - 7);
    let changed = by_source(&skipped.changed_tables);
    assert!(changed["city"].skipped);
    assert_eq!(changed["city"].tab, AnalysisTab::Unsynced as i32);
    for name in cascade {
        assert!(changed[name].skipped, "{name}");
        assert_eq!(changed[name].tab, AnalysisTab::Unsynced as i32);
        assert!(!changed[name].replanned, "{name}");
    }
    assert_eq!(
        changed["address"].reason,
        "skipped with `city`: its shadow would reference production `city`"
    );
    let address = alice
        .get_analysis_table(GetAnalysisTableRequest {
            analysis_id: started.id.clone(),
            table: Some(get_analysis_table_request::Table::SourceTable(
                "address".into(),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(address.change_sql, "", "a skipped table runs nothing");
    let city = alice
        .get_analysis_table(GetAnalysisTableRequest {
            analysis_id: started.id.clone(),
            table: Some(get_analysis_table_request::Table::SourceTable(
                "city".into(),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(city.change_sql, "");
    assert_eq!(
        city.table.unwrap().result,
        TableAnalysisResult::Create as i32
    );

    let (after_skip, skip_etag) = preview(&mut alice, &started.id).await;
    assert_eq!(skip_etag, header.preview_etag);
    assert!(!after_skip.contains("`_test_city`"));
    // The preview never references production: every key points at a shadow.
    assert!(after_skip.contains("REFERENCES "));
    assert_eq!(
        after_skip.matches("REFERENCES ").count(),
        after_skip.matches("REFERENCES `_test_").count(),
        "{after_skip}"
    );
    assert_eq!(
        after_skip,
        script_from_tables(&mut alice, &started.id).await
    );

    // A stale etag is refused, and so is a page token of the old preview.
    let stale = alice
        .set_tables_skipped(SetTablesSkippedRequest {
            analysis_id: started.id.clone(),
            source_tables: vec!["film".into()],
            skipped: true,
            expected_preview_etag: original_etag.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);

    // Undo: the preview is the original script again.
    let undone = alice
        .set_tables_skipped(SetTablesSkippedRequest {
            analysis_id: started.id.clone(),
            source_tables: vec!["city".into()],
            skipped: false,
            ..Default::default()
        })
        .await
        .expect("undo")
        .into_inner();
    assert_eq!(undone.analysis.unwrap().synced_count, 14);
    let mut restored: Vec<&str> = undone
        .cascaded_tables
        .iter()
        .map(|row| row.source_table.as_str())
        .collect();
    restored.sort_unstable();
    assert_eq!(restored, cascade);
    assert!(undone.cascaded_tables.iter().all(|row| !row.skipped));
    let (after_undo, _) = preview(&mut alice, &started.id).await;
    assert_eq!(after_undo, original);
    assert_eq!(
        after_undo,
        script_from_tables(&mut alice, &started.id).await
    );

    services.api.runner().expect("runner").idle().await;
    target.drop_all().await;
}
