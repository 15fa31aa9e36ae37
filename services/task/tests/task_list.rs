//! ListTasks through the real tonic server: each filter, the 48-hour default window and explicit
//! bounds, every sort order, page sizes, visibility with the caller's allowed actions, and
//! keyset paging that neither repeats nor skips tasks while new ones arrive. Rows are written
//! straight into the store (see `support/rows.rs`); every check reads through the API. The
//! task and approval services share a manual clock, so "now" is exact.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use shadowsync_common::clock::{Clock, ManualClock, Micros, SystemClock, to_timestamp};
use shadowsync_proto::common::v1::SortDirection;
use shadowsync_proto::task::v1::*;
use shadowsync_task::TaskConfig;
use support::rows::{TaskRow, insert};
use support::{Client, Services};
use tonic::Code;

const HOUR: Micros = 3_600_000_000;

async fn start() -> (Services, ManualClock) {
    let clock = ManualClock::new(SystemClock.now());
    let services =
        Services::start_real_with_clock(TaskConfig::default(), Arc::new(clock.clone())).await;
    (services, clock)
}

/// Every page of `request` (page size `size`), checking each page's total against the first.
async fn list_all(client: &mut Client, request: ListTasksRequest, size: i32) -> (Vec<Task>, i32) {
    let mut request = ListTasksRequest {
        page_size: size,
        ..request
    };
    let mut tasks = Vec::new();
    let mut total = None;
    loop {
        let page = client
            .list_tasks(request.clone())
            .await
            .expect("list")
            .into_inner();
        assert!(page.tasks.len() <= usize::try_from(size).expect("size"));
        assert_eq!(*total.get_or_insert(page.total_size), page.total_size);
        tasks.extend(page.tasks);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    (tasks, total.unwrap_or(0))
}

fn ids(tasks: &[Task]) -> Vec<i64> {
    tasks.iter().map(|t| t.id).collect()
}

fn sorted(mut ids: Vec<i64>) -> Vec<i64> {
    ids.sort_unstable();
    ids
}

/// The ids of `rows` (inserted as `inserted`) for which `keep` holds, ascending.
fn expected(rows: &[TaskRow], inserted: &[i64], keep: impl Fn(&TaskRow) -> bool) -> Vec<i64> {
    sorted(
        rows.iter()
            .zip(inserted)
            .filter(|(row, _)| keep(row))
            .map(|(_, id)| *id)
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_filter_narrows_the_list() {
    let (services, clock) = start().await;
    let now = clock.now();
    let mut rows = Vec::new();
    let statuses = [
        TaskStatus::Approving,
        TaskStatus::Rejected,
        TaskStatus::ExecutionSucceeded,
        TaskStatus::Cancelled,
    ];
    let databases = ["shop_ORDERS", "orders", "billing", "a_b", "axb"];
    let creators = [
        ("alice", "Alice Liddell"),
        ("bob", "Bobby Tables"),
        ("malice", ""),
        ("jm", "ÉMILE MÜLLER"),
    ];
    for i in 0..30usize {
        let (creator, name) = creators[i % creators.len()];
        let mut row = TaskRow::new(creator, statuses[i % statuses.len()], now - HOUR);
        row.creator_name = name.into();
        row.connection_id = format!("conn-{}", i % 3);
        row.database = databases[i % databases.len()].into();
        rows.push(row);
    }
    // Never listed, whatever the filters: a task whose approval request does not exist yet.
    let mut hidden = TaskRow::new("alice", TaskStatus::Submitting, now - HOUR);
    hidden.database = "orders".into();
    rows.push(hidden);
    let inserted = insert(&services.db, &rows).await;
    let mut admin = services.client("root", &["admin"]).await;
    let mut check = async |request: ListTasksRequest, keep: &dyn Fn(&TaskRow) -> bool| {
        let (tasks, total) = list_all(&mut admin, request.clone(), 7).await;
        let want = expected(&rows, &inserted, |row| {
            row.status != TaskStatus::Submitting && keep(row)
        });
        assert!(
            !want.is_empty(),
            "a filter that matches nothing proves little"
        );
        assert_eq!(sorted(ids(&tasks)), want, "{request:?}");
        assert_eq!(total, i32::try_from(want.len()).expect("count"));
    };

    check(ListTasksRequest::default(), &|_| true).await;
    check(
        ListTasksRequest {
            connection_ids: vec!["conn-1".into()],
            ..Default::default()
        },
        &|r| r.connection_id == "conn-1",
    )
    .await;
    check(
        ListTasksRequest {
            connection_ids: vec!["conn-0".into(), "conn-2".into()],
            ..Default::default()
        },
        &|r| r.connection_id != "conn-1",
    )
    .await;
    // Substrings are case-insensitive, and LIKE wildcards in them are literal.
    check(
        ListTasksRequest {
            database_contains: "Orders".into(),
            ..Default::default()
        },
        &|r| r.database.to_lowercase().contains("orders"),
    )
    .await;
    check(
        ListTasksRequest {
            database_contains: "a_b".into(),
            ..Default::default()
        },
        &|r| r.database == "a_b",
    )
    .await;
    // The creator matches by subject or display name.
    check(
        ListTasksRequest {
            creator_contains: "ALICE".into(),
            ..Default::default()
        },
        &|r| r.creator.contains("alice"),
    )
    .await;
    check(
        ListTasksRequest {
            creator_contains: "tables".into(),
            ..Default::default()
        },
        &|r| r.creator == "bob",
    )
    .await;
    // Case folds beyond ASCII too (names are international).
    check(
        ListTasksRequest {
            creator_contains: "émile müller".into(),
            ..Default::default()
        },
        &|r| r.creator == "jm",
    )
    .await;
    check(
        ListTasksRequest {
            statuses: vec![TaskStatus::Rejected as i32, TaskStatus::Cancelled as i32],
            ..Default::default()
        },
        &|r| matches!(r.status, TaskStatus::Rejected | TaskStatus::Cancelled),
    )
    .await;
    // Sorted by status, the status filter takes another index path; same answer.
    check(
        ListTasksRequest {
            statuses: vec![TaskStatus::Approving as i32, TaskStatus::Cancelled as i32],
            sort_field: TaskSortField::Status as i32,
            ..Default::default()
        },
        &|r| matches!(r.status, TaskStatus::Approving | TaskStatus::Cancelled),
    )
    .await;
    check(
        ListTasksRequest {
            r#type: TaskType::ShadowTableSync as i32,
            ..Default::default()
        },
        &|_| true,
    )
    .await;
    // Filters AND together.
    check(
        ListTasksRequest {
            connection_ids: vec!["conn-0".into(), "conn-1".into()],
            creator_contains: "alice".into(),
            statuses: vec![TaskStatus::Approving as i32, TaskStatus::Rejected as i32],
            ..Default::default()
        },
        &|r| {
            r.connection_id != "conn-2"
                && r.creator.contains("alice")
                && matches!(r.status, TaskStatus::Approving | TaskStatus::Rejected)
        },
    )
    .await;
    // Unknown enum values are named.
    for request in [
        ListTasksRequest {
            r#type: 42,
            ..Default::default()
        },
        ListTasksRequest {
            statuses: vec![TaskStatus::Approving as i32, 99],
            ..Default::default()
        },
    ] {
        let error = admin.list_tasks(request).await.expect_err("invalid");
        assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_defaults_to_the_last_48_hours() {
    let (services, clock) = start().await;
    let now = clock.now();
    let ages = [1, 47, 49, 240];
    let rows: Vec<_> = ages
        .iter()
        .map(|hours| TaskRow::new("alice", TaskStatus::Approving, now - hours * HOUR))
        .collect();
    let inserted = insert(&services.db, &rows).await;
    let mut admin = services.client("root", &["admin"]).await;
    let window = |after: Option<i64>, before: Option<i64>| ListTasksRequest {
        create_time_after: after.map(|h| to_timestamp(now - h * HOUR)),
        create_time_before: before.map(|h| to_timestamp(now - h * HOUR)),
        ..Default::default()
    };
    for (request, want) in [
        (window(None, None), vec![inserted[0], inserted[1]]),
        // Any explicit bound replaces the default: only `after` runs up to now, only `before`
        // reaches back to the beginning.
        (
            window(Some(50), None),
            vec![inserted[0], inserted[1], inserted[2]],
        ),
        (window(None, Some(48)), vec![inserted[2], inserted[3]]),
        (
            window(Some(300), Some(2)),
            vec![inserted[1], inserted[2], inserted[3]],
        ),
    ] {
        let (tasks, total) = list_all(&mut admin, request.clone(), 20).await;
        assert_eq!(sorted(ids(&tasks)), want, "{request:?}");
        assert_eq!(total, i32::try_from(want.len()).expect("count"));
    }

    // The default window is fixed when a listing starts: time passing between pages does not
    // drop a task that was in it from the later pages.
    let first = admin
        .list_tasks(ListTasksRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("first page")
        .into_inner();
    assert_eq!(ids(&first.tasks), vec![inserted[0]]);
    clock.advance(Duration::from_secs(2 * 3600));
    let second = admin
        .list_tasks(ListTasksRequest {
            page_size: 1,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .expect("second page")
        .into_inner();
    assert_eq!(ids(&second.tasks), vec![inserted[1]]);
    assert_eq!(second.total_size, first.total_size);
    // A token belongs to its listing: other filters refuse it.
    let error = admin
        .list_tasks(ListTasksRequest {
            page_size: 1,
            page_token: first.next_page_token,
            create_time_after: Some(to_timestamp(now - 50 * HOUR)),
            ..Default::default()
        })
        .await
        .expect_err("token of another listing");
    assert_eq!(error.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorts_by_id_create_time_and_status_both_ways() {
    let (services, clock) = start().await;
    let now = clock.now();
    let statuses = [
        TaskStatus::Executing,
        TaskStatus::Approving,
        TaskStatus::Cancelled,
        TaskStatus::WaitForExecution,
        TaskStatus::Rejected,
    ];
    // Creation times out of id order, with ties, so each sort differs from the others.
    let rows: Vec<_> = (0..23i64)
        .map(|i| {
            let created = now - ((i * 7) % 11) * 60_000_000;
            let status = statuses[usize::try_from(i).expect("index") % statuses.len()];
            TaskRow::new("alice", status, created)
        })
        .collect();
    let inserted = insert(&services.db, &rows).await;
    let mut admin = services.client("root", &["admin"]).await;
    for field in [
        TaskSortField::Unspecified,
        TaskSortField::Id,
        TaskSortField::CreateTime,
        TaskSortField::Status,
    ] {
        for direction in [
            SortDirection::Unspecified,
            SortDirection::Ascending,
            SortDirection::Descending,
        ] {
            let request = ListTasksRequest {
                sort_field: field as i32,
                sort_direction: direction as i32,
                ..Default::default()
            };
            let (tasks, _) = list_all(&mut admin, request, 4).await;
            let key = |row: &TaskRow, id: i64| match field {
                TaskSortField::Id => (id, id),
                TaskSortField::Status => (i64::from(row.status as i32), id),
                _ => (row.created_at, id),
            };
            let mut want: Vec<_> = rows
                .iter()
                .zip(&inserted)
                .map(|(row, id)| (key(row, *id), *id))
                .collect();
            want.sort_unstable();
            // The default is descending.
            if direction != SortDirection::Ascending {
                want.reverse();
            }
            let want: Vec<i64> = want.into_iter().map(|(_, id)| id).collect();
            assert_eq!(ids(&tasks), want, "{field:?} {direction:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_size_defaults_to_20_and_is_capped_at_500() {
    let (services, clock) = start().await;
    let now = clock.now();
    let rows: Vec<_> = (0..520)
        .map(|i| TaskRow::new("alice", TaskStatus::Approving, now - 1_000 * i))
        .collect();
    insert(&services.db, &rows).await;
    let mut admin = services.client("root", &["admin"]).await;
    let page = |size: i32| ListTasksRequest {
        page_size: size,
        ..Default::default()
    };
    let default = admin.list_tasks(page(0)).await.expect("list").into_inner();
    assert_eq!((default.tasks.len(), default.total_size), (20, 520));
    assert!(!default.next_page_token.is_empty());
    let capped = admin
        .list_tasks(page(10_000))
        .await
        .expect("list")
        .into_inner();
    assert_eq!((capped.tasks.len(), capped.total_size), (500, 520));
    let rest = admin
        .list_tasks(ListTasksRequest {
            page_token: capped.next_page_token,
            ..page(10_000)
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(rest.tasks.len(), 20);
    assert!(rest.next_page_token.is_empty(), "the last page says so");
    let all: HashSet<i64> = ids(&capped.tasks)
        .into_iter()
        .chain(ids(&rest.tasks))
        .collect();
    assert_eq!(all.len(), 520);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_neither_repeat_nor_skip_while_tasks_arrive() {
    let (services, clock) = start().await;
    let now = clock.now();
    let rows: Vec<_> = (0..60i64)
        .map(|i| TaskRow::new("alice", TaskStatus::Approving, now - HOUR + i * 1_000))
        .collect();
    let original = insert(&services.db, &rows).await;
    let mut alice = services.client("alice", &["dev"]).await;
    for (field, direction) in [
        (TaskSortField::CreateTime, SortDirection::Descending),
        (TaskSortField::Id, SortDirection::Ascending),
        (TaskSortField::Status, SortDirection::Ascending),
    ] {
        let mut request = ListTasksRequest {
            sort_field: field as i32,
            sort_direction: direction as i32,
            page_size: 7,
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = alice
                .list_tasks(request.clone())
                .await
                .expect("list")
                .into_inner();
            seen.extend(ids(&page.tasks));
            if page.next_page_token.is_empty() {
                break;
            }
            request.page_token = page.next_page_token;
            // Newer tasks arrive between page fetches.
            clock.advance(Duration::from_millis(10));
            let arriving: Vec<_> = (0..3)
                .map(|_| TaskRow::new("alice", TaskStatus::Approving, clock.now()))
                .collect();
            insert(&services.db, &arriving).await;
        }
        let unique: HashSet<i64> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "a task repeated: {field:?} {seen:?}"
        );
        let missing: Vec<_> = original.iter().filter(|id| !unique.contains(id)).collect();
        assert!(missing.is_empty(), "{field:?} skipped {missing:?}");
    }
}

fn actions(task: &Task) -> Vec<TaskAction> {
    task.allowed_actions
        .iter()
        .map(|a| TaskAction::try_from(*a).expect("action"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visibility_and_allowed_actions_follow_the_caller() {
    let (services, clock) = start().await;
    let now = clock.now() - HOUR;
    let with = |mut row: TaskRow, current: &[&str], past: &[&str]| {
        row.current_principals = current.iter().map(|p| (*p).to_owned()).collect();
        row.past_principals = past.iter().map(|p| (*p).to_owned()).collect();
        row
    };
    let rows = vec![
        // 0: alice's, awaiting any admin.
        with(
            TaskRow::new("alice", TaskStatus::Approving, now),
            &["role:admin"],
            &[],
        ),
        // 1: bob's, awaiting carol by name.
        with(
            TaskRow::new("bob", TaskStatus::Approving, now),
            &["user:carol"],
            &[],
        ),
        // 2: bob's, rejected after carol decided an earlier node.
        with(
            TaskRow::new("bob", TaskStatus::Rejected, now),
            &[],
            &["user:carol"],
        ),
        // 3: dave's, awaiting the dba role.
        with(
            TaskRow::new("dave", TaskStatus::Approving, now),
            &["role:dba"],
            &[],
        ),
        // 4: bob's, running.
        TaskRow::new("bob", TaskStatus::Executing, now),
    ];
    let id = insert(&services.db, &rows).await;
    use TaskAction::{Abort, Approve, InitiateAgain, Reject, View};
    let listed = async |subject: &str, roles: &[&str], scope: TaskScope| {
        let mut client = services.client(subject, roles).await;
        let request = ListTasksRequest {
            scope: scope as i32,
            sort_field: TaskSortField::Id as i32,
            sort_direction: SortDirection::Ascending as i32,
            ..Default::default()
        };
        let (tasks, total) = list_all(&mut client, request, 20).await;
        assert_eq!(usize::try_from(total).expect("total"), tasks.len());
        tasks.iter().map(|t| (t.id, actions(t))).collect::<Vec<_>>()
    };
    let all = TaskScope::Unspecified;
    assert_eq!(
        listed("root", &["admin"], all).await,
        vec![
            (id[0], vec![View, Approve, Reject, Abort]),
            (id[1], vec![View, Abort]),
            (id[2], vec![View, InitiateAgain]),
            (id[3], vec![View, Abort]),
            (id[4], vec![View, Abort]),
        ]
    );
    // A creator sees their own tasks, and never approves them.
    assert_eq!(
        listed("alice", &["dev"], all).await,
        vec![(id[0], vec![View, Abort])]
    );
    assert_eq!(
        listed("bob", &["dev"], all).await,
        vec![
            (id[1], vec![View, Abort]),
            (id[2], vec![View, InitiateAgain]),
            (id[4], vec![View, Abort]),
        ]
    );
    // An approver sees what names them, now or on an earlier node, and may decide only what
    // awaits them now; by name or by role.
    assert_eq!(
        listed("carol", &["dev"], all).await,
        vec![(id[1], vec![View, Approve, Reject]), (id[2], vec![View])]
    );
    assert_eq!(
        listed("eve", &["dba"], all).await,
        vec![(id[3], vec![View, Approve, Reject])]
    );
    assert!(listed("mallory", &["dev"], all).await.is_empty());
    // Scopes narrow further.
    assert_eq!(
        listed("carol", &["dev"], TaskScope::AwaitingMyApproval).await,
        vec![(id[1], vec![View, Approve, Reject])]
    );
    assert_eq!(
        listed("bob", &["dev"], TaskScope::CreatedByMe)
            .await
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        vec![id[1], id[2], id[4]]
    );
    assert_eq!(
        listed("root", &["admin"], TaskScope::AwaitingMyApproval)
            .await
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        vec![id[0]]
    );
}
