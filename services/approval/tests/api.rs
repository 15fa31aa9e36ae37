//! The approval service through a real tonic server, PostgreSQL and RabbitMQ.
#![allow(clippy::unwrap_used)]

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
async fn priority_order_decides_the_match_and_reordering_spares_requests_in_flight() {
    let h = Harness::start().await;
    let mut admin = h.admin();
    let a = create_template(
        &mut admin,
        "A",
        env_rule("prod"),
        vec![node(&["bob"], &[], pb::ApprovalMode::Any, 0)],
    )
    .await;
    let b = create_template(
        &mut admin,
        "B",
        env_rule("prod"),
        vec![node(&["carol"], &[], pb::ApprovalMode::Any, 0)],
    )
    .await;
    let mut alice = h.client("alice", &["dev"]);
    let first = submit(&mut alice, "feature_flag_change", "f1", "prod").await;
    let snapshot = first.template.clone().unwrap();
    assert_eq!(
        (
            snapshot.name.as_str(),
            snapshot.rank,
            snapshot.execution_priority
        ),
        ("A", 1, 10)
    );

    // Unmatched requests fall back to the builtin, always last.
    let other = submit(&mut alice, "feature_flag_change", "f0", "dev").await;
    assert_eq!(other.template.unwrap().rank, 3);

    // A stale or partial order is refused.
    let priority = admin
        .get_priority(pb::GetPriorityRequest {})
        .await
        .unwrap()
        .into_inner();
    let stale = admin
        .set_priority(pb::SetPriorityRequest {
            template_ids: vec![b.id.clone()],
            expected_version: priority.version,
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    let reordered = admin
        .set_priority(pb::SetPriorityRequest {
            template_ids: vec![b.id.clone(), a.id.clone()],
            expected_version: priority.version,
        })
        .await
        .unwrap()
        .into_inner();
    let again = admin
        .set_priority(pb::SetPriorityRequest {
            template_ids: vec![a.id.clone(), b.id.clone()],
            expected_version: priority.version,
        })
        .await
        .unwrap_err();
    assert_eq!(
        again.code(),
        Code::FailedPrecondition,
        "two admins cannot overwrite each other"
    );
    assert!(reordered.entries.last().unwrap().builtin);

    let second = submit(&mut alice, "feature_flag_change", "f2", "prod").await;
    assert_eq!(
        second.template.unwrap().name,
        "B",
        "new requests follow the new order"
    );
    // The request in flight keeps its snapshot: bob (A) decides it, carol (B) may not.
    let mut carol = h.client("carol", &[]);
    // carol is no candidate of the snapshot, so she cannot even see it.
    assert_eq!(
        approve(&mut carol, &first.id).await.unwrap_err().code(),
        Code::NotFound
    );
    let mut bob = h.client("bob", &[]);
    assert_eq!(
        approve(&mut bob, &first.id).await.unwrap().status,
        pb::ApprovalStatus::Approved as i32
    );

    // Templates: duplicate name, builtin protected.
    let dup = admin
        .create_template(pb::CreateTemplateRequest {
            template: Some(pb::Template {
                name: "A".into(),
                nodes: vec![auto_node()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    let builtin = reordered.entries.last().unwrap().template_id.clone();
    let delete = admin
        .delete_template(pb::DeleteTemplateRequest {
            template_id: builtin,
            expected_version: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(delete.code(), Code::FailedPrecondition);
    let denied = alice
        .get_priority(pb::GetPriorityRequest {})
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    h.stop().await;
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

#[tokio::test]
async fn thirty_tasks_are_dispatched_highest_template_rank_first() {
    let h = Harness::start().await;
    let mut admin = h.admin();
    for env in ["gold", "silver", "bronze"] {
        create_template(&mut admin, env, env_rule(env), vec![auto_node()]).await;
    }
    let mut task = h.client("svc:task", &["service"]);
    let envs = ["bronze", "gold", "silver"];
    for task_id in 1..=30_i64 {
        let approval = submit_task(&mut task, task_id, "alice", envs[(task_id % 3) as usize]).await;
        assert_eq!(
            approval.status,
            pb::ApprovalStatus::Approved as i32,
            "auto-approved at once"
        );
        assert_eq!(approval.payload_sha256, "ab".repeat(32));
    }
    // Idempotent: the same submission returns the same request.
    let again = submit_task(&mut task, 7, "alice", envs[1]).await;
    assert_eq!(again.resource.unwrap().id, "7");
    assert!(h.relay().await >= 60, "30 dispatches and their events");
    let mut stream = h
        .queue
        .consume(&h.topology.execute_queue(), 1)
        .await
        .unwrap();
    let mut priorities = Vec::new();
    let mut tasks = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let delivery = next_delivery(&mut stream).await;
        let execute = ExecuteTask::decode(delivery.message().payload.as_slice()).unwrap();
        assert_eq!(execute.attempt, 1);
        priorities.push(execute.priority);
        tasks.insert(execute.task_id);
        delivery.ack().await.unwrap();
    }
    assert_eq!(tasks.len(), 30, "each task exactly once");
    assert_eq!(
        priorities,
        [vec![10; 10], vec![9; 10], vec![8; 10]].concat()
    );
    no_delivery(&mut stream).await;
    drop(stream);
    h.stop().await;
}

#[tokio::test]
async fn dispatches_wait_in_the_outbox_while_the_broker_is_cut_then_go_out_once() {
    let broker: std::net::SocketAddr = "127.0.0.1:5672".parse().unwrap();
    let mut proxy = proxy::TcpProxy::start(broker).await;
    let h = Harness::start_with(format!("amqp://guest:guest@{}/%2f", proxy.address())).await;
    // Declare the execute queue while the broker is reachable, then cut it.
    h.queue.check_ready().await.unwrap();
    proxy.cut().await;
    let mut task = h.client("svc:task", &["service"]);
    let mut root = h.admin();
    for task_id in 100..105_i64 {
        let request = submit_task(&mut task, task_id, "alice", "").await;
        approve(&mut root, &request.id).await.unwrap();
    }
    assert_eq!(
        h.relay().await,
        0,
        "nothing leaves while the broker is unreachable"
    );
    proxy.restore();
    // The failed rows back off; move the clock past it and relay again.
    h.clock.advance(Duration::from_secs(120));
    let mut published = 0;
    for _ in 0..20 {
        published += h.relay().await;
        if published >= 20 {
            break;
        }
        h.clock.advance(Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        published, 20,
        "5 × (requested, decided, ExecuteTask, execution.dispatched), each once"
    );
    let direct = shadowsync_common::queue::AmqpQueue::new(
        shadowsync_common::queue::AmqpQueueOptions::new(amqp_uri(), h.topology.clone()),
    )
    .unwrap();
    let mut stream = direct
        .consume(&h.topology.execute_queue(), 10)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let delivery = next_delivery(&mut stream).await;
        seen.push(
            ExecuteTask::decode(delivery.message().payload.as_slice())
                .unwrap()
                .task_id,
        );
        delivery.ack().await.unwrap();
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![100, 101, 102, 103, 104]);
    no_delivery(&mut stream).await;
    drop(stream);
    direct.close().await;
    h.stop().await;
}

#[tokio::test]
async fn a_generic_request_types_decision_reaches_a_queue_bound_to_that_type_only() {
    let h = Harness::start().await;
    let flags = h
        .queue
        .declare_subscription("flags", &["approval.*.feature_flag_change"])
        .await
        .unwrap();
    let mut stream = h.queue.consume(&flags, 10).await.unwrap();
    let mut alice = h.client("alice", &["dev"]);
    let other = submit(&mut alice, "schema_change", "s1", "").await;
    approve(&mut h.admin(), &other.id).await.unwrap();
    let request = submit(&mut alice, "feature_flag_change", "f1", "").await;
    approve(&mut h.admin(), &request.id).await.unwrap();
    h.relay().await;
    let requested = next_delivery(&mut stream).await;
    assert_eq!(
        requested.routing_key(),
        "approval.requested.feature_flag_change"
    );
    requested.ack().await.unwrap();
    let decided = next_delivery(&mut stream).await;
    assert_eq!(
        decided.routing_key(),
        "approval.decided.feature_flag_change"
    );
    let event = pb::ApprovalEvent::decode(decided.message().payload.as_slice()).unwrap();
    assert_eq!(event.approval_id, request.id);
    assert_eq!(event.status, pb::ApprovalStatus::Approved as i32);
    assert_eq!(event.priority, 10);
    assert!(event.expirations.is_some());
    decided.ack().await.unwrap();
    no_delivery(&mut stream).await;
    let _ = Destination::ExecuteQueue;
    drop(stream);
    h.stop().await;
}

#[tokio::test]
async fn permissions_are_applied_for_granted_checked_and_revoked() {
    let h = Harness::start().await;
    let mut alice = h.client("alice", &["dev"]);
    let application = alice
        .apply_permission(pb::ApplyPermissionRequest {
            task_type: "shadow_table_sync".into(),
            connection_id: "c1".into(),
            database: "shop".into(),
            reason: "load tests".into(),
            duration: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            request_id: "apply-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    let mut task = h.client("svc:task", &["service"]);
    let check = |database: &str| pb::CheckPermissionRequest {
        user: "alice".into(),
        task_type: "shadow_table_sync".into(),
        connection_id: "c1".into(),
        database: database.into(),
        roles: vec!["dev".into()],
    };
    assert!(
        !task
            .check_permission(check("shop"))
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    approve(&mut h.admin(), &application.id).await.unwrap();
    assert!(
        task.check_permission(check("shop"))
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    assert!(
        !task
            .check_permission(check("other"))
            .await
            .unwrap()
            .into_inner()
            .allowed,
        "scoped to shop"
    );
    h.clock.advance(Duration::from_secs(3601));
    assert!(
        !task
            .check_permission(check("shop"))
            .await
            .unwrap()
            .into_inner()
            .allowed,
        "expired"
    );

    let mut root = h.admin();
    let grant = root
        .grant_permission(pb::GrantPermissionRequest {
            user: "alice".into(),
            task_type: "shadow_table_sync".into(),
            connection_id: "c1".into(),
            request_id: "g1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .permission
        .unwrap();
    assert!(
        task.check_permission(check("any"))
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    let listed = alice
        .list_permissions(pb::ListPermissionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_size, 1);
    assert_eq!(
        alice
            .grant_permission(pb::GrantPermissionRequest {
                user: "alice".into(),
                ..Default::default()
            })
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    root.revoke_permission(pb::RevokePermissionRequest {
        permission_id: grant.id.clone(),
        reason: "done".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        root.revoke_permission(pb::RevokePermissionRequest {
            permission_id: grant.id,
            reason: String::new()
        })
        .await
        .unwrap_err()
        .code(),
        Code::FailedPrecondition
    );
    assert!(
        !task
            .check_permission(check("any"))
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    assert_eq!(
        alice
            .check_permission(pb::CheckPermissionRequest {
                user: "bob".into(),
                ..check("x")
            })
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    h.stop().await;
}
