//! Approval and submission: a two-node template (ANY, then ALL), rejection followed by
//! Initiate Again, and immediate versus scheduled execution.

use std::time::Duration;

use shadowsync_proto::approval::v1::*;
use shadowsync_proto::task::v1::*;
use tonic::Code;

use super::{system_time, timestamp_in};
use crate::api::{self, Endpoints, Team, User, kinds};
use crate::target::{self, MariaDb};

/// Creates a template matching `shadow_table_sync` on `connection` (admin only).
pub async fn create_template(
    admin: &mut User,
    name: &str,
    connection: &str,
    nodes: Vec<TemplateNode>,
) -> Template {
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
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create template")
        .into_inner()
        .template
        .expect("template")
}

/// A node of `mode` over named users.
pub fn node(name: &str, users: &[&str], mode: ApprovalMode) -> TemplateNode {
    TemplateNode {
        name: name.to_string(),
        approver_users: users.iter().map(|u| u.to_string()).collect(),
        mode: mode as i32,
        ..Default::default()
    }
}

/// The ids of the approvals waiting for `user`'s decision.
async fn pending_for(user: &mut User) -> Vec<String> {
    user.approval
        .list_approvals(ListApprovalsRequest {
            scope: ApprovalScope::PendingForMe as i32,
            ..Default::default()
        })
        .await
        .expect("list approvals")
        .into_inner()
        .approvals
        .into_iter()
        .map(|approval| approval.id)
        .collect()
}

/// Node 1 needs any one DBA, node 2 both leads; the requester and people not named cannot
/// decide; the task executes once the last lead approves.
pub async fn two_node_template(endpoints: &Endpoints) {
    let mut team = Team::new(endpoints).await;
    let template = create_template(
        &mut team.admin,
        "dba-then-leads",
        &team.connection,
        vec![
            node("DBA", &["dba1", "dba2"], ApprovalMode::Any),
            node("Leads", &["lead1", "lead2"], ApprovalMode::All),
        ],
    )
    .await;
    let db = MariaDb::create("ss_sys_nodes").await;
    db.exec("CREATE TABLE orders (id INT PRIMARY KEY)").await;
    let analysis = team.alice.analyse(&team.connection, &db.name).await;
    let task = team.alice.submit(&analysis.id, ErrorStrategy::Abort).await;
    let wait = task.approval_wait.clone().expect("waiting for node 1");
    assert_eq!(wait.node_index, 0);
    assert_eq!(wait.candidate_users, vec!["dba1", "dba2"]);

    // Neither the requester nor an administrator outside the node may decide.
    for outsider in [&mut team.alice, &mut team.bob] {
        let refused = outsider
            .task
            .approve_task(ApproveTaskRequest {
                task_id: task.id,
                ..Default::default()
            })
            .await
            .expect_err("not a candidate");
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }
    let mut lead1 = endpoints.user("lead1", &["dev"]);
    let mut lead2 = endpoints.user("lead2", &["dev"]);
    let early = lead1
        .task
        .approve_task(ApproveTaskRequest {
            task_id: task.id,
            ..Default::default()
        })
        .await
        .expect_err("node 2 is not current yet");
    // Not yet a candidate, so not even allowed to see the task.
    assert!(
        matches!(early.code(), Code::PermissionDenied | Code::NotFound),
        "{early:?}"
    );

    // The approval waits in each DBA's pending list, and in no lead's yet.
    let mut dba1 = endpoints.user("dba1", &["dba"]);
    assert_eq!(pending_for(&mut dba1).await, vec![task.approval_id.clone()]);
    assert!(pending_for(&mut lead1).await.is_empty());

    // ANY: one DBA advances the node.
    endpoints.user("dba2", &["dba"]).approve(task.id).await;
    let at_leads = team
        .alice
        .wait_task(task.id, "node 2", |task| {
            task.approval_wait
                .as_ref()
                .is_some_and(|wait| wait.node_index == 1)
        })
        .await;
    assert_eq!(
        at_leads.approval_wait.expect("wait").candidate_users,
        vec!["lead1", "lead2"]
    );
    assert!(pending_for(&mut dba1).await.is_empty());
    assert_eq!(
        pending_for(&mut lead2).await,
        vec![task.approval_id.clone()]
    );
    // ALL: one lead is not enough.
    lead1.approve(task.id).await;
    let again = lead1
        .task
        .approve_task(ApproveTaskRequest {
            task_id: task.id,
            ..Default::default()
        })
        .await
        .expect_err("one decision per person");
    assert!(
        matches!(
            again.code(),
            Code::FailedPrecondition | Code::PermissionDenied
        ),
        "{again:?}"
    );
    let still = team.alice.get_task(task.id).await.task.expect("task");
    assert_eq!(api::status(&still), TaskStatus::Approving);
    lead2.approve(task.id).await;
    team.alice
        .wait_status(task.id, TaskStatus::ExecutionSucceeded)
        .await;
    target::assert_in_sync(&db, "orders", "_test_orders").await;

    let timeline = team.alice.timeline(task.id).await;
    let approvers: Vec<&str> = timeline
        .iter()
        .filter(|entry| entry.kind == TimelineEntryKind::Approved as i32)
        .filter_map(|entry| entry.actor.as_ref().map(|actor| actor.subject.as_str()))
        .collect();
    assert_eq!(approvers, vec!["dba2", "lead1", "lead2"]);
    assert!(kinds(&timeline).contains(&TimelineEntryKind::NodeAdvanced));
    let approval = team
        .admin
        .approval
        .get_approval(GetApprovalRequest {
            key: Some(get_approval_request::Key::ApprovalId(task.approval_id)),
        })
        .await
        .expect("approval")
        .into_inner()
        .approval
        .expect("approval");
    assert_eq!(
        approval.template.expect("snapshot").template_id,
        template.id
    );
    db.drop_database().await;
}

/// A rejected task ends REJECTED with nothing run; Initiate Again re-analyses with the same
/// parameters and skips, and the new task runs.
pub async fn rejection_and_initiate_again(endpoints: &Endpoints) {
    let mut team = Team::new(endpoints).await;
    let db = MariaDb::create("ss_sys_reject").await;
    db.exec(
        "CREATE TABLE orders (id INT PRIMARY KEY);\n\
         CREATE TABLE audit (id INT PRIMARY KEY, at DATETIME)",
    )
    .await;
    let analysis = team.alice.analyse(&team.connection, &db.name).await;
    team.alice
        .task
        .set_tables_skipped(SetTablesSkippedRequest {
            analysis_id: analysis.id.clone(),
            source_tables: vec!["audit".into()],
            skipped: true,
            ..Default::default()
        })
        .await
        .expect("skip audit");
    let task = team.alice.submit(&analysis.id, ErrorStrategy::Abort).await;
    let rejected = team
        .bob
        .task
        .reject_task(RejectTaskRequest {
            task_id: task.id,
            comment: "not during the freeze".into(),
            request_id: String::new(),
        })
        .await
        .expect("reject")
        .into_inner()
        .task
        .expect("task");
    assert_eq!(api::status(&rejected), TaskStatus::Rejected);
    let timeline = team.alice.timeline(task.id).await;
    assert!(timeline.iter().any(|entry| {
        entry.kind == TimelineEntryKind::Rejected as i32 && entry.comment == "not during the freeze"
    }));
    // A final task cannot be approved any more.
    let late = team
        .bob
        .task
        .approve_task(ApproveTaskRequest {
            task_id: task.id,
            ..Default::default()
        })
        .await
        .expect_err("rejected is final");
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    assert!(target::show_create(&db, "_test_orders").await.is_none());

    let fresh = team
        .alice
        .task
        .initiate_again(InitiateAgainRequest {
            task_id: task.id,
            ..Default::default()
        })
        .await
        .expect("initiate again")
        .into_inner()
        .analysis
        .expect("analysis");
    let fresh = team.alice.wait_analysis(&fresh.id).await;
    assert_eq!(fresh.database, db.name);
    // The task service re-applies the skips shortly *after* the analysis reports SUCCEEDED
    // (see `initiate_again_links_the_previous_analysis`), so wait for them here.
    let deadline = tokio::time::Instant::now() + api::PATIENCE;
    loop {
        let rows = team.alice.analysis_tables(&fresh.id).await;
        if rows
            .iter()
            .any(|row| row.source_table == "audit" && row.skipped)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the skip is never re-applied: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = team.alice.submit(&fresh.id, ErrorStrategy::Abort).await;
    assert_ne!(second.id, task.id);
    team.bob.approve(second.id).await;
    team.alice
        .wait_status(second.id, TaskStatus::ExecutionSucceeded)
        .await;
    target::assert_in_sync(&db, "orders", "_test_orders").await;
    assert!(target::show_create(&db, "_test_audit").await.is_none());
    db.drop_database().await;
}

/// Initiate Again links the new analysis to the one the task was submitted from
/// (`Analysis.previous_analysis_id`), and its skips are in place by the time the analysis
/// reports SUCCEEDED (a client submits as soon as it sees that status).
pub async fn initiate_again_links_the_previous_analysis(endpoints: &Endpoints) {
    let mut team = Team::new(endpoints).await;
    let db = MariaDb::create("ss_sys_again").await;
    db.exec("CREATE TABLE orders (id INT PRIMARY KEY)").await;
    db.exec("CREATE TABLE audit (id INT PRIMARY KEY)").await;
    let analysis = team.alice.analyse(&team.connection, &db.name).await;
    team.alice
        .task
        .set_tables_skipped(SetTablesSkippedRequest {
            analysis_id: analysis.id.clone(),
            source_tables: vec!["audit".into()],
            skipped: true,
            ..Default::default()
        })
        .await
        .expect("skip audit");
    let task = team.alice.submit(&analysis.id, ErrorStrategy::Abort).await;
    team.alice
        .task
        .abort_task(AbortTaskRequest {
            task_id: task.id,
            ..Default::default()
        })
        .await
        .expect("abort");
    let fresh = team
        .alice
        .task
        .initiate_again(InitiateAgainRequest {
            task_id: task.id,
            ..Default::default()
        })
        .await
        .expect("initiate again")
        .into_inner()
        .analysis
        .expect("analysis");
    let fresh = team.alice.wait_analysis(&fresh.id).await;
    let rows = team.alice.analysis_tables(&fresh.id).await;
    assert!(
        rows.iter()
            .any(|row| row.source_table == "audit" && row.skipped),
        "skips not re-applied at SUCCEEDED: {rows:?}"
    );
    assert_eq!(fresh.previous_analysis_id, analysis.id, "{fresh:?}");
    db.drop_database().await;
}

/// A scheduled time in the past is refused; a task scheduled a few seconds ahead waits for
/// execution after its approval and starts no earlier than its time.
pub async fn scheduled_execution(endpoints: &Endpoints) {
    let mut team = Team::new(endpoints).await;
    let db = MariaDb::create("ss_sys_sched").await;
    db.exec("CREATE TABLE orders (id INT PRIMARY KEY)").await;
    let analysis = team.alice.analyse(&team.connection, &db.name).await;
    let scheduled = |at: prost_types::Timestamp| SubmitTaskRequest {
        analysis_id: analysis.id.clone(),
        execution_mode: ExecutionMode::Scheduled as i32,
        scheduled_time: Some(at),
        error_strategy: ErrorStrategy::Abort as i32,
        ..Default::default()
    };
    let past = team
        .alice
        .task
        .submit_task(scheduled(timestamp_in(Duration::from_secs(60), true)))
        .await
        .expect_err("past schedule");
    assert_eq!(past.code(), Code::InvalidArgument, "{past:?}");

    let at = timestamp_in(Duration::from_secs(4), false);
    let task = team.alice.submit_with(scheduled(at)).await;
    assert_eq!(task.execution_mode, ExecutionMode::Scheduled as i32);
    let approved = team.bob.approve(task.id).await;
    // Approved before its time: it waits.
    let status = api::status(&approved);
    assert!(
        matches!(status, TaskStatus::Approving | TaskStatus::WaitForExecution),
        "{status:?}"
    );
    // Still before its time (unless this machine stalled for seconds): it waits, approved.
    let waiting = team.alice.get_task(task.id).await.task.expect("task");
    if std::time::SystemTime::now() + Duration::from_secs(1) < system_time(&at) {
        let status = api::status(&waiting);
        assert!(
            matches!(status, TaskStatus::Approving | TaskStatus::WaitForExecution),
            "{status:?} before the scheduled time"
        );
    }
    team.alice
        .wait_status(task.id, TaskStatus::ExecutionSucceeded)
        .await;
    let timeline = team.alice.timeline(task.id).await;
    let started = timeline
        .iter()
        .find(|entry| entry.kind == TimelineEntryKind::ExecutionStarted as i32)
        .and_then(|entry| entry.time)
        .expect("execution started");
    assert!(
        system_time(&started) >= system_time(&at),
        "started {started:?} before its schedule {at:?}"
    );
    target::assert_in_sync(&db, "orders", "_test_orders").await;
    db.drop_database().await;
}
