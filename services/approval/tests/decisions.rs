//! Decisions, separation of duties, expiry, cancel and watch through a real tonic server.
#![allow(clippy::unwrap_used, unused_imports, dead_code)]

mod support;

use std::time::Duration;

use prost::Message as _;
use shadowsync_common::queue::{Destination, MessageQueue as _};
use shadowsync_proto::approval::v1 as pb;
use shadowsync_proto::common::v1::ExecuteTask;
use support::*;
use tonic::Code;

fn env_rule(environment: &str) -> pb::MatchRule {
    pb::MatchRule {
        environments: vec![environment.into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn any_all_quorum_and_auto_approve_nodes() {
    let h = Harness::start().await;
    let mut admin = h.admin();
    create_template(
        &mut admin,
        "three steps",
        pb::MatchRule {
            request_types: vec!["feature_flag_change".into()],
            ..Default::default()
        },
        vec![
            auto_node(),
            node(&["bob", "carol"], &["dba"], pb::ApprovalMode::All, 0),
            node(&["dave", "erin", "frank"], &[], pb::ApprovalMode::Quorum, 2),
            node(&[], &["sre"], pb::ApprovalMode::Any, 0),
        ],
    )
    .await;
    let mut alice = h.client("alice", &["dev"]);
    let request = submit(&mut alice, "feature_flag_change", "flag-9", "").await;
    assert_eq!(request.decisions[0].comment, "auto-approved");
    assert_eq!(request.current.as_ref().unwrap().node_index, 1);

    let mut bob = h.client("bob", &["dba"]);
    let after_bob = approve(&mut bob, &request.id).await.unwrap();
    assert_eq!(
        after_bob.current.unwrap().node_index,
        1,
        "ALL: bob alone is not enough"
    );
    let again = approve(&mut bob, &request.id).await.unwrap_err();
    assert_eq!(
        again.code(),
        Code::FailedPrecondition,
        "one person counts once"
    );
    approve(&mut h.client("carol", &[]), &request.id)
        .await
        .unwrap();
    let advanced = approve(&mut h.client("gina", &["dba"]), &request.id)
        .await
        .unwrap();
    assert_eq!(advanced.current.unwrap().node_index, 2);
    let quorum_one = approve(&mut h.client("dave", &[]), &request.id)
        .await
        .unwrap();
    assert_eq!(quorum_one.current.unwrap().node_index, 2);
    let quorum_two = approve(&mut h.client("erin", &[]), &request.id)
        .await
        .unwrap();
    assert_eq!(quorum_two.current.unwrap().node_index, 3);
    // bob still sees the request (he decided an earlier node) but is no approver of this one.
    let not_named = approve(&mut bob, &request.id).await.unwrap_err();
    assert_eq!(not_named.code(), Code::PermissionDenied);
    // The node guard: a decision meant for a node the request has left is refused.
    let moved_on = h
        .client("sam", &["sre"])
        .approve(pb::ApproveRequest {
            approval_id: request.id.clone(),
            expected_node_index: Some(2),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(moved_on.code(), Code::FailedPrecondition);
    let long = h
        .client("sam", &["sre"])
        .approve(pb::ApproveRequest {
            approval_id: request.id.clone(),
            comment: "x".repeat(1025),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(long.code(), Code::InvalidArgument);
    let done = approve(&mut h.client("sam", &["sre"]), &request.id)
        .await
        .unwrap();
    assert_eq!(done.status, pb::ApprovalStatus::Approved as i32);
    assert_eq!(done.decisions.len(), 7);
    h.stop().await;
}

#[tokio::test]
async fn requesters_never_approve_their_own_and_non_approvers_are_refused() {
    let h = Harness::start().await;
    // The builtin: any admin approves. An admin's own request still needs another admin.
    let mut root = h.admin();
    let own = submit(&mut root, "feature_flag_change", "mine", "").await;
    assert_eq!(
        approve(&mut root, &own.id).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let mut alice = h.client("alice", &["dev"]);
    let theirs = submit(&mut alice, "feature_flag_change", "theirs", "").await;
    assert_eq!(
        approve(&mut h.client("mallory", &["dev"]), &theirs.id)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound,
        "cannot even see it"
    );
    let rejected = h
        .client("root2", &["admin"])
        .reject(pb::RejectRequest {
            approval_id: theirs.id.clone(),
            comment: "no".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    assert_eq!(rejected.status, pb::ApprovalStatus::Rejected as i32);
    assert_eq!(
        approve(&mut root, &theirs.id).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    // Only svc:task may submit shadow_table_sync; permission_apply only through ApplyPermission.
    let task_type = alice
        .submit_approval(pb::SubmitApprovalRequest {
            request_type: "shadow_table_sync".into(),
            resource: Some(pb::ResourceRef {
                r#type: "task".into(),
                id: "1".into(),
                ..Default::default()
            }),
            request_id: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(task_type.code(), Code::PermissionDenied);
    // Pending for me: the other admin sees root's request, root does not.
    let pending = root
        .list_approvals(pb::ListApprovalsRequest {
            scope: pb::ApprovalScope::PendingForMe.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.total_size, 0);
    let pending = h
        .client("root2", &["admin"])
        .list_approvals(pb::ListApprovalsRequest {
            scope: pb::ApprovalScope::PendingForMe.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.total_size, 1);
    assert_eq!(pending.approvals[0].id, own.id);
    h.stop().await;
}

#[tokio::test]
async fn requests_expire_and_cancel() {
    let h = Harness::start().await;
    let mut alice = h.client("alice", &["dev"]);
    let expiring = submit(&mut alice, "feature_flag_change", "e1", "").await;
    let cancelled = submit(&mut alice, "feature_flag_change", "c1", "").await;
    let mut watch = alice
        .watch_approval(pb::WatchApprovalRequest {
            approval_id: cancelled.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch
            .message()
            .await
            .unwrap()
            .unwrap()
            .approval
            .unwrap()
            .status,
        pb::ApprovalStatus::Pending as i32
    );
    assert_eq!(
        h.client("bob", &[])
            .cancel_approval(pb::CancelApprovalRequest {
                approval_id: cancelled.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let done = alice
        .cancel_approval(pb::CancelApprovalRequest {
            approval_id: cancelled.id.clone(),
            reason: "changed my mind".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    assert_eq!(done.status, pb::ApprovalStatus::Cancelled as i32);
    alice
        .cancel_approval(pb::CancelApprovalRequest {
            approval_id: cancelled.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let last = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        last.approval.unwrap().status,
        pb::ApprovalStatus::Cancelled as i32
    );
    assert!(
        watch.message().await.unwrap().is_none(),
        "the stream ends after a final status"
    );

    assert_eq!(
        shadowsync_approval::sweeper::sweep_once(h.api.service())
            .await
            .unwrap(),
        0
    );
    h.clock.advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(
        shadowsync_approval::sweeper::sweep_once(h.api.service())
            .await
            .unwrap(),
        1
    );
    let expired = alice
        .get_approval(pb::GetApprovalRequest {
            key: Some(pb::get_approval_request::Key::ApprovalId(
                expiring.id.clone(),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    assert_eq!(expired.status, pb::ApprovalStatus::Expired as i32);
    assert_eq!(
        approve(&mut h.admin(), &expiring.id)
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    h.stop().await;
}
