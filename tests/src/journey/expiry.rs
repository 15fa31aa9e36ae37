//! Expirations from the matched template: an approval nobody decides ends
//! APPROVAL_EXPIRED; a task stuck mid-statement ends EXECUTION_EXPIRED; a task no executor
//! claims in time ends WAIT_FOR_EXECUTION_EXPIRED, and is not executed when its message is
//! finally taken.

use std::time::Duration;

use shadowsync_proto::approval::v1::*;
use shadowsync_proto::task::v1::*;

use super::approval::node;
use crate::api::{self, Endpoints, PATIENCE, Team, User};
use crate::target::{self, MariaDb};

fn seconds(seconds: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos: 0 })
}

async fn template_with(
    admin: &mut User,
    name: &str,
    connection: &str,
    nodes: Vec<TemplateNode>,
    expirations: Expirations,
) {
    admin
        .approval
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                name: name.to_string(),
                enabled: true,
                match_rule: Some(MatchRule {
                    request_types: vec!["shadow_table_sync".into()],
                    connection_ids: vec![connection.to_string()],
                    ..Default::default()
                }),
                nodes,
                expirations: Some(expirations),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create template");
}

pub async fn expirations(endpoints: &Endpoints) {
    let mut team = Team::new(endpoints).await;
    let slow = team.connection.clone();
    let fast = team.admin.add_connection("test").await;
    team.admin.grant("alice", &fast).await;
    template_with(
        &mut team.admin,
        "nobody-decides",
        &slow,
        vec![node("DBA", &["dba1"], ApprovalMode::Any)],
        Expirations {
            approval: seconds(1),
            ..Default::default()
        },
    )
    .await;
    template_with(
        &mut team.admin,
        "short-windows",
        &fast,
        vec![TemplateNode {
            name: "auto".into(),
            auto_approve: true,
            ..Default::default()
        }],
        Expirations {
            wait_for_execution: seconds(2),
            execution: seconds(2),
            ..Default::default()
        },
    )
    .await;
    let db = MariaDb::create("ss_sys_expiry").await;
    db.exec(
        "CREATE TABLE undecided (id INT PRIMARY KEY);\n\
         CREATE TABLE held (id INT PRIMARY KEY, v INT);\n\
         CREATE TABLE _test_held (id INT PRIMARY KEY);\n\
         CREATE TABLE queued (id INT PRIMARY KEY);\n\
         CREATE TABLE later (id INT PRIMARY KEY)",
    )
    .await;
    let alice = &mut team.alice;

    let undecided = alice.submit_tables(&slow, &db.name, &["undecided"]).await;
    alice
        .wait_status(undecided.id, TaskStatus::ApprovalExpired)
        .await;
    let timeline = api::kinds(&alice.timeline(undecided.id).await);
    assert!(
        timeline.contains(&TimelineEntryKind::ApprovalExpired),
        "{timeline:?}"
    );

    // The only executor (concurrency 1) is held mid-statement by a reader's metadata lock.
    let reader = target::Reader::hold(&db, &["_test_held"]).await;
    let held = alice.submit_tables(&fast, &db.name, &["held"]).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !target::is_waiting_for_metadata_lock(&db).await {
        assert!(tokio::time::Instant::now() < deadline, "ALTER never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let queued = alice.submit_tables(&fast, &db.name, &["queued"]).await;
    alice
        .wait_status(queued.id, TaskStatus::WaitForExecutionExpired)
        .await;
    alice
        .wait_status(held.id, TaskStatus::ExecutionExpired)
        .await;

    reader.release().await;
    // A later task runs once the executor is free, after the expired task's message: by then
    // that message was taken and refused.
    let later = alice.submit_tables(&fast, &db.name, &["later"]).await;
    alice
        .wait_status(later.id, TaskStatus::ExecutionSucceeded)
        .await;
    let queued_now = alice.get_task(queued.id).await.task.expect("task");
    assert_eq!(
        api::status(&queued_now),
        TaskStatus::WaitForExecutionExpired
    );
    let timeline = api::kinds(&alice.timeline(queued.id).await);
    assert!(
        !timeline.contains(&TimelineEntryKind::ExecutionStarted),
        "{timeline:?}"
    );
    assert!(target::show_create(&db, "_test_queued").await.is_none());
    assert!(target::show_create(&db, "_test_undecided").await.is_none());
    db.drop_database().await;
}
