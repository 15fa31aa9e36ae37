//! Task logs through the real tonic server: ALERT keeps WARN and ERROR only, search is a
//! case-insensitive literal substring, pages neither repeat nor skip, and a 100,000-line log
//! downloads in order, whole, in bounded chunks.

mod support;

use futures::StreamExt;
use shadowsync_proto::task::v1::*;
use support::fixture::{Fixture, lease_token};
use support::rows::{TaskRow, insert};

/// Every page of `request` with `page_size`, checking the total on each page.
async fn all_logs(
    client: &mut support::Client,
    request: ListTaskLogsRequest,
    page_size: i32,
) -> Vec<TaskLogEntry> {
    let mut request = ListTaskLogsRequest {
        page_size,
        ..request
    };
    let mut entries = Vec::new();
    let mut total = None;
    loop {
        let page = client
            .list_task_logs(request.clone())
            .await
            .expect("logs")
            .into_inner();
        assert_eq!(*total.get_or_insert(page.total_size), page.total_size);
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(
        usize::try_from(total.unwrap_or(0)).expect("total"),
        entries.len()
    );
    entries
}

fn sequences(entries: &[TaskLogEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.sequence).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_logs_search_and_pages() {
    let mut f = Fixture::new().await;
    let task = f.waiting().await;
    let granted = f.claim(task.id, 1, "e1").await;
    let messages = [
        (LogLevel::Info, "statement started"),
        (LogLevel::Warn, "Shadow DRIFT noticed"),
        (LogLevel::Error, "1146: table doesn't exist"),
        (LogLevel::Info, "drift resolved"),
        (LogLevel::Info, "100% done"),
        (LogLevel::Info, "1000 done"),
        (LogLevel::Warn, "ÄNDERUNG übersprungen"),
        (LogLevel::Info, "a_b ready"),
        (LogLevel::Info, "axb ready"),
    ];
    let entries = (0..27)
        .map(|i| {
            let (level, message) = messages[i % messages.len()];
            ExecutionLogEntry {
                client_sequence: u64::try_from(i).expect("sequence") + 1,
                time: None,
                level: level as i32,
                message: format!("{message} #{i}"),
                table: "orders".into(),
            }
        })
        .collect();
    f.executor()
        .append_logs(AppendLogsRequest {
            task_id: task.id,
            attempt: 1,
            lease_token: lease_token(&granted),
            entries,
        })
        .await
        .expect("append");
    let base = ListTaskLogsRequest {
        task_id: task.id,
        ..Default::default()
    };

    // ALL, paged by 4: in sequence order, the task service's own lines included.
    let all = all_logs(&mut f.alice, base.clone(), 4).await;
    let in_order = sequences(&all);
    assert!(in_order.windows(2).all(|w| w[0] < w[1]), "{in_order:?}");
    assert!(all.iter().any(|e| e.origin == "task" && e.attempt == 0));
    assert_eq!(all.iter().filter(|e| e.origin == "e1").count(), 27);
    assert_eq!(
        sequences(&all_logs(&mut f.alice, base.clone(), 0).await),
        in_order,
        "the default page holds them all"
    );

    // ALERT: exactly the WARN and ERROR lines of ALL.
    let alert = all_logs(
        &mut f.alice,
        ListTaskLogsRequest {
            level_filter: LogLevelFilter::Alert as i32,
            ..base.clone()
        },
        5,
    )
    .await;
    let want: Vec<u64> = all
        .iter()
        .filter(|e| e.level >= LogLevel::Warn as i32)
        .map(|e| e.sequence)
        .collect();
    assert_eq!(sequences(&alert), want);
    assert!(want.len() >= 9, "warnings and errors were written");
    assert!(alert.iter().all(|e| e.level != LogLevel::Info as i32));

    // Search: case-insensitive (also beyond ASCII), literal wildcards, combinable with ALERT.
    let search = async |client: &mut support::Client, text: &str, filter: LogLevelFilter| {
        let request = ListTaskLogsRequest {
            search: text.into(),
            level_filter: filter as i32,
            ..base.clone()
        };
        all_logs(client, request, 2).await
    };
    let matching = |needle: &str, alert_only: bool| -> Vec<u64> {
        all.iter()
            .filter(|e| e.message.to_lowercase().contains(needle))
            .filter(|e| !alert_only || e.level >= LogLevel::Warn as i32)
            .map(|e| e.sequence)
            .collect()
    };
    for (text, needle) in [
        ("dRiFt", "drift"),
        ("100%", "100%"),
        ("A_B", "a_b"),
        ("änderung", "änderung"),
    ] {
        let found = search(&mut f.alice, text, LogLevelFilter::All).await;
        assert!(!found.is_empty(), "{text} finds something");
        assert_eq!(sequences(&found), matching(needle, false), "{text}");
    }
    let alert_drift = search(&mut f.alice, "DRIFT", LogLevelFilter::Alert).await;
    assert_eq!(sequences(&alert_drift), matching("drift", true));
    assert!(alert_drift.len() < matching("drift", false).len());

    // Following a running task: only lines after a sequence.
    let middle = in_order[in_order.len() / 2];
    let later = all_logs(
        &mut f.alice,
        ListTaskLogsRequest {
            after_sequence: middle,
            ..base.clone()
        },
        3,
    )
    .await;
    let want: Vec<u64> = in_order.iter().copied().filter(|s| *s > middle).collect();
    assert_eq!(sequences(&later), want);
    f.database.drop_all().await;
}

const LINES: i64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100000_line_log_downloads_in_order_in_bounded_chunks() {
    let services = support::Services::start_real(shadowsync_task::TaskConfig::default()).await;
    let now = services.clock.now();
    let id = insert(
        &services.db,
        &[TaskRow::new("alice", TaskStatus::Executing, now)],
    )
    .await[0];
    // Written straight into the store (through AppendLogs this would take minutes): line i is
    // "line <i>", WARN every tenth, on table `orders` every third.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO task_logs (task_id, sequence, logged_at, level, message, message_lower, \
         table_name, attempt, origin, client_sequence) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {LINES}) \
         SELECT $1, i, $2 + i, CASE WHEN i % 10 = 0 THEN 2 ELSE 1 END, 'line ' || i, \
         'line ' || i, CASE WHEN i % 3 = 0 THEN 'orders' ELSE '' END, 1, 'e1', i FROM n"
    )))
    .bind(id)
    .bind(now)
    .execute(services.db.pool())
    .await
    .expect("log lines");
    sqlx::query("UPDATE tasks SET log_seq = $2 WHERE id = $1")
        .bind(id)
        .bind(LINES)
        .execute(services.db.pool())
        .await
        .expect("log sequence");
    let mut alice = services.client("alice", &["dev"]).await;

    let download = async |client: &mut support::Client, request: DownloadTaskLogsRequest| {
        let mut stream = client
            .download_task_logs(request)
            .await
            .expect("download")
            .into_inner();
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.next().await {
            chunks.push(chunk.expect("chunk").text);
        }
        chunks
    };
    let chunks = download(
        &mut alice,
        DownloadTaskLogsRequest {
            task_id: id,
            ..Default::default()
        },
    )
    .await;
    // Bounded chunks that end on line boundaries: the server never sends the log whole.
    assert!(chunks.len() > 10, "{} chunks", chunks.len());
    for chunk in &chunks {
        assert!(chunk.len() < 64 * 1024, "a chunk of {} bytes", chunk.len());
        assert!(chunk.ends_with('\n'));
    }
    let text: String = chunks.concat();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), usize::try_from(LINES).expect("lines"));
    for (index, line) in lines.iter().enumerate() {
        let i = index + 1;
        let level = if i % 10 == 0 { "WARN" } else { "INFO" };
        let table = if i % 3 == 0 { "[orders] " } else { "" };
        let tail = format!(" {level} {table}line {i}");
        assert!(line.ends_with(&tail), "line {i} reads {line:?}");
    }

    // ALERT and search apply to the download too.
    let alert: String = download(
        &mut alice,
        DownloadTaskLogsRequest {
            task_id: id,
            level_filter: LogLevelFilter::Alert as i32,
            ..Default::default()
        },
    )
    .await
    .concat();
    assert_eq!(alert.lines().count(), 10_000);
    assert!(alert.lines().all(|l| l.contains(" WARN ")));
    let found: String = download(
        &mut alice,
        DownloadTaskLogsRequest {
            task_id: id,
            search: "LINE 9999".into(),
            ..Default::default()
        },
    )
    .await
    .concat();
    let found: Vec<&str> = found.lines().collect();
    assert_eq!(found.len(), 11, "9999 and 99990–99999");
    assert!(found[0].ends_with("line 9999"));

    // Listing pages are capped at 2,000 lines and carry on from the token.
    let first = alice
        .list_task_logs(ListTaskLogsRequest {
            task_id: id,
            page_size: 5_000,
            ..Default::default()
        })
        .await
        .expect("logs")
        .into_inner();
    assert_eq!(first.entries.len(), 2_000);
    assert_eq!(i64::from(first.total_size), LINES);
    let second = alice
        .list_task_logs(ListTaskLogsRequest {
            task_id: id,
            page_size: 5_000,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .expect("logs")
        .into_inner();
    assert_eq!(
        (second.entries[0].sequence, second.entries.len()),
        (2_001, 2_000)
    );
    // Someone who may not see the task may not download it either.
    let mut carol = services.client("carol", &["dev"]).await;
    let hidden = carol
        .download_task_logs(DownloadTaskLogsRequest {
            task_id: id,
            ..Default::default()
        })
        .await
        .expect_err("hidden");
    assert_eq!(hidden.code(), tonic::Code::NotFound);
}
