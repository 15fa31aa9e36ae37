//! Analyses: lease, rows, re-plans, recovery and expiry.

use shadowsync_common::db::Database;

use crate::store::analyses::{AnalysisRepository, Progress};
use crate::store::rows::AnalysisRowRepository;
use crate::store::*;

const SECOND: i64 = 1_000_000;

fn analysis(id: &str) -> AnalysisRecord {
    AnalysisRecord {
        id: id.into(),
        connection_id: "c1".into(),
        connection_name: "main".into(),
        database: "shop".into(),
        range: 2,
        requested_tables: vec!["orders".into(), "customers".into()],
        naming_mode: 1,
        affix: "_test_".into(),
        status: status::PENDING,
        tables_done: 0,
        tables_total: 0,
        progress_percent: 0,
        failure: None,
        server_version: String::new(),
        creator: "alice".into(),
        created_at: 100 * SECOND,
        updated_at: 100 * SECOND,
        expire_at: 1_000 * SECOND,
        task_id: 0,
        preview: PreviewSummary::default(),
        previous_analysis_id: String::new(),
        initial_skips: Vec::new(),
        attempt: 0,
    }
}

/// `customers` (CREATE, 1 statement), `orders` (UPDATE, 2 statements, one deferred to the end),
/// `notes` (NO_ACTION).
fn planned_tables() -> Vec<ReplannedTable> {
    let table =
        |row_no: i64, source: &str, result: i64, statements: &[(i64, &str)]| ReplannedTable {
            row: TableRow {
                row_no,
                ordinal: row_no,
                source_table: source.into(),
                shadow_table: format!("_test_{source}"),
                result,
                original_result: result,
                reason: String::new(),
                source_ddl: format!("CREATE TABLE `{source}` (id int)"),
                statement_count: statements.len() as i64,
                ..TableRow::default()
            },
            statements: statements
                .iter()
                .enumerate()
                .map(|(i, (script_index, sql))| StatementRow {
                    script_index: *script_index,
                    row_no,
                    statement_index: i as i64,
                    sql: (*sql).into(),
                    expected_fingerprint_after: format!("fp{script_index}"),
                })
                .collect(),
        };
    vec![
        table(
            0,
            "customers",
            result::CREATE,
            &[(0, "CREATE TABLE `_test_customers` (id int)")],
        ),
        table(
            1,
            "orders",
            result::UPDATE,
            &[
                (1, "ALTER TABLE `_test_orders` ADD x int"),
                (2, "ALTER TABLE `_test_orders` ADD FOREIGN KEY"),
            ],
        ),
        table(2, "notes", result::NO_ACTION, &[]),
    ]
}

pub(super) async fn analysis_runs_under_a_lease_and_completes(db: Database) {
    let store = SqlStore::new(db);
    store.insert_analysis(&analysis("a1")).await.unwrap();
    assert!(
        store
            .claim_analysis("a1", "runner-1", 110 * SECOND, 140 * SECOND)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_analysis("a1", "runner-2", 110 * SECOND, 140 * SECOND)
            .await
            .unwrap()
    );
    let progress = Progress {
        tables_done: 3,
        tables_total: 3,
        percent: 95,
    };
    let tables = planned_tables();
    // A runner without the lease writes nothing.
    assert!(
        !store
            .write_rows(
                "a1",
                "runner-2",
                &tables,
                progress,
                120 * SECOND,
                150 * SECOND
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .write_rows(
                "a1",
                "runner-1",
                &tables,
                progress,
                120 * SECOND,
                150 * SECOND
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .complete_analysis("a1", "runner-1", "10.11.6-MariaDB", 130 * SECOND)
            .await
            .unwrap()
    );
    let done = store.get_analysis("a1").await.unwrap().unwrap();
    assert_eq!(done.status, status::SUCCEEDED);
    assert_eq!(done.attempt, 1);
    assert_eq!(done.progress_percent, 100);
    assert_eq!(done.requested_tables, ["orders", "customers"]);
    assert_eq!(done.preview.statement_count, 3);
    assert_eq!(done.preview.sha256.len(), 64);
    let counts = store.row_counts("a1").await.unwrap();
    assert_eq!(
        counts,
        RowCounts {
            total: 3,
            synced: 2,
            create: 1,
            update: 1,
            no_action: 1,
            unsyncable: 0
        }
    );
    let script = store.script_page("a1", 0, 10).await.unwrap();
    assert_eq!(
        script.iter().map(|l| l.script_index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(script[0].source_table, "customers");
    assert_eq!(store.script_page("a1", 2, 10).await.unwrap().len(), 1);
    let statements = store.row_statements("a1", 1).await.unwrap();
    assert_eq!(statements.len(), 2);
    assert_eq!(statements[1].expected_fingerprint_after, "fp2");
    let by_name = store.get_row("a1", None, "orders").await.unwrap().unwrap();
    assert_eq!(
        store.get_row("a1", Some(by_name.row_no), "").await.unwrap(),
        Some(by_name)
    );
}

pub(super) async fn rows_list_by_tab_and_name(db: Database) {
    let store = SqlStore::new(db);
    store.insert_analysis(&analysis("a1")).await.unwrap();
    store.claim_analysis("a1", "r", 0, i64::MAX).await.unwrap();
    store
        .write_rows(
            "a1",
            "r",
            &planned_tables(),
            Progress::default(),
            0,
            i64::MAX,
        )
        .await
        .unwrap();
    let page = |tab, contains: &str, offset, limit| RowFilter {
        tab,
        table_contains: contains.into(),
        offset,
        limit,
    };
    let (synced, total) = store
        .list_rows("a1", &page(Tab::Synced, "", 0, 10))
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(synced[0].source_table, "customers");
    let (unsynced, _) = store
        .list_rows("a1", &page(Tab::Unsynced, "", 0, 10))
        .await
        .unwrap();
    assert_eq!(
        unsynced
            .iter()
            .map(|r| r.source_table.as_str())
            .collect::<Vec<_>>(),
        ["notes"]
    );
    let (second, total) = store
        .list_rows("a1", &page(Tab::Both, "", 1, 1))
        .await
        .unwrap();
    assert_eq!((second[0].source_table.as_str(), total), ("orders", 3));
    let (found, total) = store
        .list_rows("a1", &page(Tab::Both, "TEST_ORD", 0, 10))
        .await
        .unwrap();
    assert_eq!((found.len(), total), (1, 1));
}

/// Analysis `a1` completed with [`planned_tables`]; its preview.
async fn completed_with_planned_tables(store: &SqlStore) -> PreviewSummary {
    store.insert_analysis(&analysis("a1")).await.unwrap();
    store.claim_analysis("a1", "r", 0, i64::MAX).await.unwrap();
    store
        .write_rows(
            "a1",
            "r",
            &planned_tables(),
            Progress::default(),
            0,
            i64::MAX,
        )
        .await
        .unwrap();
    store.complete_analysis("a1", "r", "v", 1).await.unwrap();
    store.get_analysis("a1").await.unwrap().unwrap().preview
}

pub(super) async fn replan_moves_rows_and_changes_the_preview(db: Database) {
    let store = SqlStore::new(db);
    let before = completed_with_planned_tables(&store).await;

    // Skip `customers`: its statements go, `orders` is re-planned to reference the source.
    let mut writer = store.begin_replan("a1", &[0], true).await.unwrap();
    let mut tables = planned_tables();
    tables[0].statements.clear();
    tables[1].statements[0].script_index = 0;
    tables[1].statements[1].script_index = 1;
    tables[1].statements[1].sql = "ALTER TABLE `_test_orders` ADD FOREIGN KEY (source)".into();
    assert!(writer.apply(&tables[0]).await.unwrap().is_some());
    let replanned = writer.apply(&tables[1]).await.unwrap().unwrap();
    assert!(replanned.row.replanned && !replanned.cascade_changed);
    assert!(writer.apply(&tables[2]).await.unwrap().is_none());
    let after = writer.commit(&before.etag, 2).await.unwrap().unwrap();
    assert_ne!(after.etag, before.etag);
    assert_eq!(after.statement_count, 2);
    assert_eq!(store.skipped_tables("a1").await.unwrap(), ["customers"]);
    let skipped = store.get_row("a1", Some(0), "").await.unwrap().unwrap();
    assert!(skipped.skipped && !skipped.replanned);
    assert_eq!(skipped.result, result::CREATE);
    assert_eq!(store.row_counts("a1").await.unwrap().synced, 1);
    let script = store.script_page("a1", 0, 10).await.unwrap();
    assert_eq!(script.len(), 2);
    assert!(script.iter().all(|l| l.source_table == "orders"));

    // A writer that started from the old etag loses: nothing it did is kept.
    let mut stale = store.begin_replan("a1", &[0], false).await.unwrap();
    stale.apply(&planned_tables()[0]).await.unwrap();
    assert!(stale.commit(&before.etag, 3).await.unwrap().is_none());
    assert!(
        store
            .get_row("a1", Some(0), "")
            .await
            .unwrap()
            .unwrap()
            .skipped
    );

    // Undo: the same plan again has the same etag and hash (both are its plan digest).
    let mut undo = store.begin_replan("a1", &[0], false).await.unwrap();
    for table in planned_tables() {
        undo.apply(&table).await.unwrap();
    }
    let undone = undo.commit(&after.etag, 4).await.unwrap().unwrap();
    assert_eq!(
        (&undone.etag, &undone.sha256),
        (&before.etag, &before.sha256)
    );
    assert_eq!(undone.etag, undone.sha256);
}

/// A row the engine reports skipped without the user naming it is stored as skipped *with* its
/// parent: it is not one of the user's skips, and the undo's re-plan restores it.
pub(super) async fn replan_skips_and_restores_rows_with_their_parent(db: Database) {
    let store = SqlStore::new(db);
    let before = completed_with_planned_tables(&store).await;

    // Skip `customers`: the engine skips `orders` with it.
    let mut writer = store.begin_replan("a1", &[0], true).await.unwrap();
    let mut tables = planned_tables();
    for table in &mut tables[..2] {
        table.statements.clear();
        table.row.skipped = true;
    }
    tables[1].row.reason = "skipped with `customers`".into();
    let customers = writer.apply(&tables[0]).await.unwrap().unwrap();
    assert!(!customers.cascade_changed && !customers.row.cascaded);
    let orders = writer.apply(&tables[1]).await.unwrap().unwrap();
    assert!(orders.cascade_changed && orders.row.cascaded && orders.row.skipped);
    assert!(!orders.row.replanned);
    let skipped = writer.commit(&before.etag, 2).await.unwrap().unwrap();
    assert_eq!(skipped.statement_count, 0);
    assert_eq!(store.skipped_tables("a1").await.unwrap(), ["customers"]);
    let orders = store.get_row("a1", Some(1), "").await.unwrap().unwrap();
    assert!(orders.skipped && orders.cascaded && !orders.is_synced());
    assert_eq!(orders.reason, "skipped with `customers`");
    assert_eq!(store.row_counts("a1").await.unwrap().synced, 0);
    assert!(store.script_page("a1", 0, 10).await.unwrap().is_empty());

    // Undo: both back, with the original plan and preview.
    let mut writer = store.begin_replan("a1", &[0], false).await.unwrap();
    let tables = planned_tables();
    assert!(writer.apply(&tables[0]).await.unwrap().is_some());
    let orders = writer.apply(&tables[1]).await.unwrap().unwrap();
    assert!(orders.cascade_changed && !orders.row.skipped && !orders.row.cascaded);
    let restored = writer.commit(&skipped.etag, 3).await.unwrap().unwrap();
    assert_eq!(restored.sha256, before.sha256);
    assert!(store.skipped_tables("a1").await.unwrap().is_empty());
    assert_eq!(store.row_counts("a1").await.unwrap().synced, 2);
}

pub(super) async fn lost_runners_fail_and_failed_analyses_retry(db: Database) {
    let store = SqlStore::new(db);
    store.insert_analysis(&analysis("a1")).await.unwrap();
    store.insert_analysis(&analysis("a2")).await.unwrap();
    store
        .claim_analysis("a1", "dead", 110 * SECOND, 140 * SECOND)
        .await
        .unwrap();
    store
        .write_rows(
            "a1",
            "dead",
            &planned_tables(),
            Progress::default(),
            0,
            140 * SECOND,
        )
        .await
        .unwrap();
    assert_eq!(store.stranded_analyses(101 * SECOND).await.unwrap(), ["a2"]);
    let failure = FailureRecord {
        reason: 5,
        message: "the runner was lost".into(),
        retryable: true,
    };
    assert!(
        store
            .fail_lapsed_analyses(139 * SECOND, &failure)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .fail_lapsed_analyses(141 * SECOND, &failure)
            .await
            .unwrap(),
        ["a1"]
    );
    // The dead runner, back from a pause, cannot write.
    assert!(
        !store
            .record_progress(
                "a1",
                "dead",
                Progress::default(),
                142 * SECOND,
                200 * SECOND
            )
            .await
            .unwrap()
    );
    let failed = store.get_analysis("a1").await.unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.failure),
        (status::FAILED, Some(failure))
    );
    assert!(store.retry_analysis("a1", 150 * SECOND).await.unwrap());
    assert!(!store.retry_analysis("a1", 150 * SECOND).await.unwrap());
    let retried = store.get_analysis("a1").await.unwrap().unwrap();
    assert_eq!((retried.status, retried.failure), (status::PENDING, None));
    assert_eq!(store.row_counts("a1").await.unwrap().total, 0);
}

pub(super) async fn unsubmitted_analyses_expire(db: Database) {
    let store = SqlStore::new(db);
    store.insert_analysis(&analysis("a1")).await.unwrap();
    store.claim_analysis("a1", "r", 0, i64::MAX).await.unwrap();
    store
        .write_rows(
            "a1",
            "r",
            &planned_tables(),
            Progress::default(),
            0,
            i64::MAX,
        )
        .await
        .unwrap();
    store.complete_analysis("a1", "r", "v", 1).await.unwrap();
    assert_eq!(store.expire_analyses(999 * SECOND).await.unwrap(), 0);
    assert_eq!(store.expire_analyses(1_000 * SECOND).await.unwrap(), 1);
    assert_eq!(
        store.get_analysis("a1").await.unwrap().unwrap().status,
        status::EXPIRED
    );
    assert_eq!(store.row_counts("a1").await.unwrap().total, 0);
    assert_eq!(store.expire_analyses(2_000 * SECOND).await.unwrap(), 0);
}
