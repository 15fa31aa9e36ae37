//! Follow-up: the task list shows each person what they may see, filtered,
//! sorted and paged.

use std::time::Duration;

use shadowsync_proto::task::v1::*;

use super::timestamp_in;
use crate::api::{Endpoints, Team, User};
use crate::target::MariaDb;

async fn list(user: &mut User, request: ListTasksRequest) -> ListTasksResponse {
    user.task
        .list_tasks(request)
        .await
        .expect("list tasks")
        .into_inner()
}

fn ids(response: &ListTasksResponse) -> Vec<i64> {
    response.tasks.iter().map(|task| task.id).collect()
}

pub async fn task_list(endpoints: &Endpoints) {
    let mut team = Team::new(endpoints).await;
    let db = MariaDb::create("ss_sys_list").await;
    db.exec(
        "CREATE TABLE t1 (id INT PRIMARY KEY); CREATE TABLE t2 (id INT PRIMARY KEY);\n\
         CREATE TABLE t3 (id INT PRIMARY KEY)",
    )
    .await;
    let connection = team.connection.clone();
    let mut created = Vec::new();
    for table in ["t1", "t2", "t3"] {
        let task = team
            .alice
            .submit_tables(&connection, &db.name, &[table])
            .await;
        created.push(task.id);
    }
    let rejected = created[0];
    team.bob
        .task
        .reject_task(RejectTaskRequest {
            task_id: rejected,
            comment: "no".into(),
            request_id: String::new(),
        })
        .await
        .expect("reject");

    // Newest first by default, within the default window.
    let mine = list(&mut team.alice, ListTasksRequest::default()).await;
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(ids(&mine), newest_first);
    assert_eq!(mine.total_size, 3);

    // Pages neither repeat nor skip.
    let first = list(
        &mut team.alice,
        ListTasksRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(first.tasks.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = list(
        &mut team.alice,
        ListTasksRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(second.next_page_token, "");
    let mut paged = ids(&first);
    paged.extend(ids(&second));
    assert_eq!(paged, newest_first);

    // Filters.
    let by_status = list(
        &mut team.admin,
        ListTasksRequest {
            statuses: vec![TaskStatus::Rejected as i32],
            database_contains: db.name.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&by_status), vec![rejected]);
    let by_creator = list(
        &mut team.admin,
        ListTasksRequest {
            creator_contains: "ALI".into(),
            connection_ids: vec![connection.clone()],
            sort_field: TaskSortField::Id as i32,
            sort_direction: shadowsync_proto::common::v1::SortDirection::Ascending as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&by_creator), created);
    let elsewhere = list(
        &mut team.admin,
        ListTasksRequest {
            database_contains: "no_such_database".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(elsewhere.total_size, 0);
    let future = list(
        &mut team.admin,
        ListTasksRequest {
            create_time_after: Some(timestamp_in(Duration::from_secs(3600), false)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(future.total_size, 0);

    // Visibility: an approver sees what awaits him, with the action; a stranger sees nothing.
    let awaiting = list(
        &mut team.bob,
        ListTasksRequest {
            scope: TaskScope::AwaitingMyApproval as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&awaiting), vec![created[2], created[1]]);
    assert!(
        awaiting
            .tasks
            .iter()
            .all(|task| task.allowed_actions.contains(&(TaskAction::Approve as i32)))
    );
    let mut carol = endpoints.user("carol", &["dev"]);
    let stranger = list(&mut carol, ListTasksRequest::default()).await;
    assert_eq!(stranger.total_size, 0, "{stranger:?}");
    db.drop_database().await;
}
