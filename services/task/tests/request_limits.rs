//! Free-text fields are bounded: a 60,000-character search string is INVALID_ARGUMENT
//! naming the field, through the real server, and a value at the bound still works.

mod support;

use shadowsync_proto::task::v1::*;
use shadowsync_task::TaskConfig;
use support::Services;
use tonic::Code;

fn assert_names(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    assert!(
        status.message().starts_with(&format!("{field}: ")),
        "{field}: {}",
        status.message()
    );
    // The answer does not echo the value back.
    assert!(status.message().len() < 200, "{}", status.message());
}

#[tokio::test]
async fn long_search_strings_are_invalid_argument_naming_the_field() {
    let services = Services::start(TaskConfig::default()).await;
    let mut alice = services.client("alice", &[]).await;
    let huge = "x".repeat(60_000);

    let status = alice
        .list_tasks(ListTasksRequest {
            creator_contains: huge.clone(),
            ..Default::default()
        })
        .await
        .expect_err("creator_contains");
    assert_names(&status, "creator_contains");
    let status = alice
        .list_tasks(ListTasksRequest {
            database_contains: huge.clone(),
            ..Default::default()
        })
        .await
        .expect_err("database_contains");
    assert_names(&status, "database_contains");
    let status = alice
        .list_task_logs(ListTaskLogsRequest {
            task_id: 1,
            search: huge.clone(),
            ..Default::default()
        })
        .await
        .expect_err("search");
    assert_names(&status, "search");

    // Characters, not bytes: 256 four-byte characters are fine, one more is not.
    let at_bound = "🦀".repeat(256);
    alice
        .list_tasks(ListTasksRequest {
            creator_contains: at_bound.clone(),
            database_contains: at_bound.clone(),
            ..Default::default()
        })
        .await
        .expect("a search string at the bound");
    let status = alice
        .list_tasks(ListTasksRequest {
            creator_contains: format!("{at_bound}🦀"),
            ..Default::default()
        })
        .await
        .expect_err("one past the bound");
    assert_names(&status, "creator_contains");

    // Other free text: a decision's comment and a submission's remarks.
    let status = alice
        .abort_task(AbortTaskRequest {
            task_id: 1,
            comment: huge.clone(),
            ..Default::default()
        })
        .await
        .expect_err("comment");
    assert_names(&status, "comment");
    let status = alice
        .submit_task(SubmitTaskRequest {
            analysis_id: "a".into(),
            remarks: "r".repeat(4097),
            ..Default::default()
        })
        .await
        .expect_err("remarks");
    assert_names(&status, "remarks");
}
