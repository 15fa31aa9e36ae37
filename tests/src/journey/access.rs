//! Permission and analysis: applying for and receiving a grant, every analysis result kind,
//! skip and undo with the SQL preview following, a submission without the skipped table, and
//! the task's logs (filtered, searched, downloaded).

use futures::StreamExt as _;
use shadowsync_proto::approval::v1::*;
use shadowsync_proto::common::v1::{SyncRange, TableAnalysisResult};
use shadowsync_proto::task::v1::*;
use tonic::Code;

use crate::api::{Endpoints, Team};
use crate::target::{self, MariaDb};

/// A developer without a grant is refused; she applies, an administrator approves the
/// `permission_apply` request, the grant is recorded against that approval, and she can
/// analyse.
pub async fn permission_application(endpoints: &Endpoints) {
    let mut team = Team::new(endpoints).await;
    let db = MariaDb::create("ss_sys_perm").await;
    db.exec("CREATE TABLE orders (id INT PRIMARY KEY)").await;
    let mut carol = endpoints.user("carol", &["dev"]);
    let start = StartAnalysisRequest {
        connection_id: team.connection.clone(),
        database: db.name.clone(),
        range: SyncRange::All as i32,
        ..Default::default()
    };
    let refused = carol
        .task
        .start_analysis(start.clone())
        .await
        .expect_err("no grant yet");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    let application = carol
        .approval
        .apply_permission(ApplyPermissionRequest {
            task_type: "shadow_table_sync".into(),
            connection_id: team.connection.clone(),
            database: db.name.clone(),
            reason: "load tests of the orders service".into(),
            duration: None,
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("apply")
        .into_inner()
        .approval
        .expect("approval");
    assert_eq!(application.request_type, "permission_apply");
    assert_eq!(application.status, ApprovalStatus::Pending as i32);
    // The applicant cannot approve her own application.
    let own = carol
        .approval
        .approve(ApproveRequest {
            approval_id: application.id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("self-approval");
    assert_eq!(own.code(), Code::PermissionDenied, "{own:?}");
    let decided = team
        .bob
        .approval
        .approve(ApproveRequest {
            approval_id: application.id.clone(),
            comment: "ok".into(),
            ..Default::default()
        })
        .await
        .expect("approve application")
        .into_inner()
        .approval
        .expect("approval");
    assert_eq!(decided.status, ApprovalStatus::Approved as i32);

    let grants = carol
        .approval
        .list_permissions(ListPermissionsRequest::default())
        .await
        .expect("list permissions")
        .into_inner()
        .permissions;
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0].approval_id, application.id);
    assert_eq!(grants[0].database, db.name);
    assert_eq!(grants[0].status, PermissionStatus::Active as i32);

    let analysis = carol
        .task
        .start_analysis(start)
        .await
        .expect("granted")
        .into_inner()
        .analysis
        .expect("analysis");
    let analysis = carol.wait_analysis(&analysis.id).await;
    assert_eq!(analysis.create_count, 1);
    // The direct grant (Team) and the application both show to the administrator.
    let all = team
        .admin
        .approval
        .list_permissions(ListPermissionsRequest {
            connection_id: team.connection.clone(),
            ..Default::default()
        })
        .await
        .expect("list all")
        .into_inner();
    assert_eq!(all.total_size, 2, "{all:?}");
    db.drop_database().await;
}

/// A 60-character name: its `_test_` shadow would exceed MariaDB's 64-character limit.
const LONG_NAME: &str = "a_table_whose_name_is_long_enough_that_its_shadow_is_too_long";

/// A partial analysis with every result kind; skip and undo move rows between the tabs and
/// the preview follows; the task runs without the skipped table; its logs can be filtered,
/// searched and downloaded.
pub async fn analysis_results_skips_and_logs(endpoints: &Endpoints) {
    let mut team = Team::new(endpoints).await;
    let db = MariaDb::create("ss_sys_kinds").await;
    db.exec(&format!(
        "CREATE TABLE orders (id INT PRIMARY KEY, total INT);\n\
         CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20), tier INT);\n\
         CREATE TABLE _test_customers (id INT PRIMARY KEY, name VARCHAR(20));\n\
         CREATE TABLE items (id INT PRIMARY KEY);\n\
         CREATE TABLE _test_items (id INT PRIMARY KEY);\n\
         CREATE TABLE {LONG_NAME} (id INT PRIMARY KEY)"
    ))
    .await;
    assert_eq!(LONG_NAME.len(), 61);
    let alice = &mut team.alice;
    let started = alice
        .task
        .start_analysis(StartAnalysisRequest {
            connection_id: team.connection.clone(),
            database: db.name.clone(),
            range: SyncRange::Partial as i32,
            tables: ["orders", "customers", "items", "ghost", LONG_NAME]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner()
        .analysis
        .expect("analysis");
    let analysis = alice.wait_analysis(&started.id).await;
    let results: Vec<(String, TableAnalysisResult)> = alice
        .analysis_tables(&analysis.id)
        .await
        .into_iter()
        .map(|row| (row.source_table, row.result.try_into().expect("result")))
        .collect();
    let mut sorted = results.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            (LONG_NAME.into(), TableAnalysisResult::Unsupported),
            ("customers".into(), TableAnalysisResult::Update),
            ("ghost".into(), TableAnalysisResult::SourceMissing),
            ("items".into(), TableAnalysisResult::NoAction),
            ("orders".into(), TableAnalysisResult::Create),
        ]
    );
    assert_eq!((analysis.synced_count, analysis.unsynced_count), (2, 3));

    // Skip moves a row to the unsynchronized tab and out of the preview; undo brings it back.
    let preview = |alice: &mut crate::api::User| {
        let mut client = alice.task.clone();
        let id = analysis.id.clone();
        async move {
            client
                .get_sql_preview(GetSqlPreviewRequest {
                    analysis_id: id,
                    ..Default::default()
                })
                .await
                .expect("preview")
                .into_inner()
        }
    };
    let before = preview(alice).await;
    assert_eq!(before.total_size, 2);
    let skip = |skipped: bool, table: &str| SetTablesSkippedRequest {
        analysis_id: analysis.id.clone(),
        source_tables: vec![table.to_string()],
        skipped,
        ..Default::default()
    };
    let skipped = alice
        .task
        .set_tables_skipped(skip(true, "orders"))
        .await
        .expect("skip")
        .into_inner()
        .analysis
        .expect("analysis");
    assert_eq!((skipped.synced_count, skipped.unsynced_count), (1, 4));
    assert_ne!(skipped.preview_etag, analysis.preview_etag);
    let during = preview(alice).await;
    assert_eq!(during.total_size, 1);
    assert!(during.statements.iter().all(|s| s.source_table != "orders"));
    let unsynced = alice
        .task
        .get_analysis(GetAnalysisRequest {
            analysis_id: analysis.id.clone(),
            tab: AnalysisTab::Unsynced as i32,
            ..Default::default()
        })
        .await
        .expect("unsynced tab")
        .into_inner();
    assert!(
        unsynced
            .tables
            .iter()
            .any(|row| row.source_table == "orders" && row.skipped)
    );
    // Only CREATE / UPDATE rows can be skipped.
    let refused = alice
        .task
        .set_tables_skipped(skip(true, "items"))
        .await
        .expect_err("NO_ACTION row");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    alice
        .task
        .set_tables_skipped(skip(false, "orders"))
        .await
        .expect("undo");
    let after = preview(alice).await;
    assert_eq!(
        (after.total_size, &after.script_sha256),
        (2, &before.script_sha256)
    );

    // Submitted with `customers` skipped: only `orders` runs.
    alice
        .task
        .set_tables_skipped(skip(true, "customers"))
        .await
        .expect("skip customers");
    let task = alice.submit(&analysis.id, ErrorStrategy::Abort).await;
    assert_eq!(
        (task.tables_to_sync_count, task.tables_not_synced_count),
        (1, 4)
    );
    team.bob.approve(task.id).await;
    let alice = &mut team.alice;
    alice
        .wait_status(task.id, TaskStatus::ExecutionSucceeded)
        .await;
    target::assert_in_sync(&db, "orders", "_test_orders").await;
    let customers = target::show_create(&db, "_test_customers")
        .await
        .expect("shadow");
    assert!(!customers.contains("`tier`"), "a skipped table was changed");
    let rows = alice.task_tables(task.id).await;
    assert!(
        rows.iter()
            .any(|row| row.source_table == "customers" && row.skipped && !row.synced),
        "{rows:?}"
    );

    // Logs: all, alerts only, searched, and downloaded whole.
    let all = alice.logs(task.id, LogLevelFilter::All).await;
    assert!(
        all.iter()
            .any(|entry| entry.table == "orders" && entry.message.contains("started")),
        "{all:#?}"
    );
    let alerts = alice.logs(task.id, LogLevelFilter::Alert).await;
    assert!(
        alerts
            .iter()
            .all(|entry| entry.level != LogLevel::Info as i32),
        "{alerts:#?}"
    );
    let searched = alice
        .task
        .list_task_logs(ListTaskLogsRequest {
            task_id: task.id,
            search: "_test_orders".into(),
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner()
        .entries;
    assert!(!searched.is_empty());
    assert!(
        searched
            .iter()
            .all(|entry| entry.message.contains("_test_orders")),
        "{searched:#?}"
    );
    let mut stream = alice
        .task
        .download_task_logs(DownloadTaskLogsRequest {
            task_id: task.id,
            ..Default::default()
        })
        .await
        .expect("download")
        .into_inner();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        text.push_str(&chunk.expect("chunk").text);
    }
    for entry in &all {
        let first_line = entry.message.lines().next().unwrap_or_default();
        assert!(text.contains(first_line), "{first_line:?} not downloaded");
    }
    db.drop_database().await;
}
