//! Separation of duties through a real tonic server, on PostgreSQL and on SQLite: one person's
//! decision counts once per request at ANY, ALL and QUORUM nodes alike, a refused decision
//! changes nothing, and a node whose approvers are exhausted waits (for no one) until it expires.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use std::time::Duration;

use prost::Message as _;
use shadowsync_common::db::Backend;
use shadowsync_proto::approval::v1 as pb;
use support::*;
use tonic::Code;

on_both_backends!(
    any_nodes_count_a_person_once_per_request,
    all_nodes_count_a_person_once_per_request,
    quorum_nodes_count_a_person_once_per_request,
);

const FLAG: &str = "feature_flag_change";

fn flags_only() -> pb::MatchRule {
    pb::MatchRule {
        request_types: vec![FLAG.into()],
        ..Default::default()
    }
}

async fn get(client: &mut Client, id: &str) -> pb::Approval {
    client
        .get_approval(pb::GetApprovalRequest {
            key: Some(pb::get_approval_request::Key::ApprovalId(id.into())),
        })
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap()
}

/// The request's full state as an admin sees it, encoded: a refused decision must leave every
/// byte of it as it was.
async fn state(h: &Harness, id: &str) -> Vec<u8> {
    get(&mut h.admin(), id).await.encode_to_vec()
}

async fn outbox_rows(h: &Harness) -> i64 {
    use sqlx::Row as _;
    sqlx::query("SELECT COUNT(*) AS n FROM outbox")
        .fetch_one(h.db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

/// `who` tries to approve again; asserts the refusal and that nothing changed.
async fn refused_and_nothing_changed(h: &Harness, who: &mut Client, id: &str) -> tonic::Status {
    let before = state(h, id).await;
    let rows = outbox_rows(h).await;
    let refusal = approve(who, id).await.unwrap_err();
    assert_eq!(refusal.code(), Code::FailedPrecondition, "{refusal:?}");
    let rejection = who
        .reject(pb::RejectRequest {
            approval_id: id.into(),
            comment: "no".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(rejection.code(), Code::FailedPrecondition, "{rejection:?}");
    assert_eq!(
        state(h, id).await,
        before,
        "a refused decision changes nothing"
    );
    assert_eq!(outbox_rows(h).await, rows, "and publishes nothing");
    refusal
}

fn waiting_for(approval: &pb::Approval) -> (Vec<String>, Vec<String>) {
    let current = approval.current.clone().unwrap();
    (current.users, current.roles)
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

async fn pending_for(h: &Harness, subject: &str, roles: &[&str]) -> i32 {
    h.client(subject, roles)
        .list_approvals(pb::ListApprovalsRequest {
            scope: pb::ApprovalScope::PendingForMe.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .total_size
}

async fn any_nodes_count_a_person_once_per_request(backend: Backend) {
    let h = Harness::start_on(backend).await;
    create_template(
        &mut h.admin(),
        "two any nodes",
        flags_only(),
        vec![
            node(&["bob", "carol"], &["dba"], pb::ApprovalMode::Any, 0),
            node(&["bob", "dave"], &["dba"], pb::ApprovalMode::Any, 0),
        ],
    )
    .await;
    let mut alice = h.client("alice", &["dev"]);
    let request = submit(&mut alice, FLAG, "f1", "").await;
    let mut bob = h.client("bob", &["dba"]);
    let after_bob = approve(&mut bob, &request.id).await.unwrap();
    assert_eq!(after_bob.current.as_ref().unwrap().node_index, 1);
    // Before the fix bob approved node 1 too, and the request was approved by him alone.
    let refusal = refused_and_nothing_changed(&h, &mut bob, &request.id).await;
    assert!(
        refusal.message().contains("once per request"),
        "{refusal:?}"
    );
    assert!(
        after_bob.allowed_actions.is_empty(),
        "bob may do nothing more: {:?}",
        after_bob.allowed_actions
    );
    assert_eq!(
        waiting_for(&after_bob),
        (strings(&["dave"]), strings(&["dba"])),
        "waiting for those who can still decide"
    );
    assert_eq!(pending_for(&h, "bob", &["dba"]).await, 0);
    assert_eq!(pending_for(&h, "dave", &[]).await, 1);
    // What bob could try next: a fresh token with more roles, the node guard, replaying the
    // request id of his node-0 decision. The replay answers as a retry does (the state, no new
    // decision); everything else is refused; nothing changes.
    let before = state(&h, &request.id).await;
    let mut bob_again = h.client("bob", &["dba", "admin"]);
    refused_and_nothing_changed(&h, &mut bob_again, &request.id).await;
    let guarded = bob
        .approve(pb::ApproveRequest {
            approval_id: request.id.clone(),
            expected_node_index: Some(1),
            request_id: "bob-node-1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(guarded.code(), Code::FailedPrecondition, "{guarded:?}");
    let request_three = submit(&mut alice, FLAG, "f3", "").await;
    let first = bob
        .approve(pb::ApproveRequest {
            approval_id: request_three.id.clone(),
            request_id: "bob-once".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    assert_eq!(first.current.as_ref().unwrap().node_index, 1);
    let replayed = bob
        .approve(pb::ApproveRequest {
            approval_id: request_three.id.clone(),
            request_id: "bob-once".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    assert_eq!(replayed.decisions.len(), 1, "a replay decides nothing");
    assert_eq!(replayed.current.unwrap().node_index, 1);
    assert_eq!(replayed.status, pb::ApprovalStatus::Pending as i32);
    assert_eq!(state(&h, &request.id).await, before);
    // A role member who decided node 0 is just as spent; another member of the role is not.
    let request_two = submit(&mut alice, FLAG, "f2", "").await;
    let mut gina = h.client("gina", &["dba"]);
    approve(&mut gina, &request_two.id).await.unwrap();
    refused_and_nothing_changed(&h, &mut gina, &request_two.id).await;
    let done = approve(&mut h.client("hank", &["dba"]), &request_two.id)
        .await
        .unwrap();
    assert_eq!(done.status, pb::ApprovalStatus::Approved as i32);

    let done = approve(&mut h.client("dave", &[]), &request.id)
        .await
        .unwrap();
    assert_eq!(done.status, pb::ApprovalStatus::Approved as i32);
    assert_eq!(done.decisions.len(), 2, "one decision per person");
    h.stop().await;
}

async fn all_nodes_count_a_person_once_per_request(backend: Backend) {
    let h = Harness::start_on(backend).await;
    create_template(
        &mut h.admin(),
        "any then all",
        flags_only(),
        vec![
            node(&["bob", "carol"], &[], pb::ApprovalMode::Any, 0),
            node(&["bob", "dave"], &[], pb::ApprovalMode::All, 0),
        ],
    )
    .await;
    let mut alice = h.client("alice", &["dev"]);
    let mut bob = h.client("bob", &[]);
    let mut dave = h.client("dave", &[]);
    // bob clears node 0: the ALL node needs bob again, which it can never have. It is not
    // auto-approved, does not let bob through, waits for no one, and expires.
    let stuck = submit(&mut alice, FLAG, "a2", "").await;
    let after_bob = approve(&mut bob, &stuck.id).await.unwrap();
    assert_eq!(after_bob.current.as_ref().unwrap().node_index, 1);
    // Before the fix bob approved node 1 too, and the request was approved by him alone.
    let refusal = refused_and_nothing_changed(&h, &mut bob, &stuck.id).await;
    assert!(
        refusal.message().contains("no one left may approve node 1"),
        "{refusal:?}"
    );
    assert_eq!(waiting_for(&after_bob), (vec![], vec![]), "nobody left");
    let after_dave = approve(&mut dave, &stuck.id).await.unwrap();
    assert_eq!(after_dave.status, pb::ApprovalStatus::Pending as i32);
    assert_eq!(after_dave.current.as_ref().unwrap().node_index, 1);
    // carol clears node 0: the ALL node can still pass with bob and dave.
    let passes = submit(&mut alice, FLAG, "a1", "").await;
    let at_all = approve(&mut h.client("carol", &[]), &passes.id)
        .await
        .unwrap();
    assert_eq!(waiting_for(&at_all), (strings(&["bob", "dave"]), vec![]));
    let half = approve(&mut bob, &passes.id).await.unwrap();
    assert_eq!(waiting_for(&half), (strings(&["dave"]), vec![]));
    refused_and_nothing_changed(&h, &mut bob, &passes.id).await;
    let done = approve(&mut dave, &passes.id).await.unwrap();
    assert_eq!(done.status, pb::ApprovalStatus::Approved as i32);
    h.clock.advance(Duration::from_secs(24 * 3600 + 1));
    shadowsync_approval::sweeper::sweep_once(h.api.service())
        .await
        .unwrap();
    assert_eq!(
        get(&mut alice, &stuck.id).await.status,
        pb::ApprovalStatus::Expired as i32
    );
    h.stop().await;
}

async fn quorum_nodes_count_a_person_once_per_request(backend: Backend) {
    let h = Harness::start_on(backend).await;
    create_template(
        &mut h.admin(),
        "two quorums",
        flags_only(),
        vec![
            node(&["bob", "carol", "dave"], &[], pb::ApprovalMode::Quorum, 2),
            node(
                &["bob", "carol", "erin", "frank"],
                &[],
                pb::ApprovalMode::Quorum,
                2,
            ),
            node(&["bob", "carol", "gina"], &[], pb::ApprovalMode::Quorum, 2),
        ],
    )
    .await;
    let mut alice = h.client("alice", &["dev"]);
    let request = submit(&mut alice, FLAG, "q1", "").await;
    let mut bob = h.client("bob", &[]);
    let mut carol = h.client("carol", &[]);
    approve(&mut bob, &request.id).await.unwrap();
    let at_second = approve(&mut carol, &request.id).await.unwrap();
    assert_eq!(at_second.current.as_ref().unwrap().node_index, 1);
    // Before the fix bob and carol made the second quorum on their own.
    refused_and_nothing_changed(&h, &mut bob, &request.id).await;
    refused_and_nothing_changed(&h, &mut carol, &request.id).await;
    assert_eq!(
        waiting_for(&at_second),
        (strings(&["erin", "frank"]), vec![])
    );
    approve(&mut h.client("erin", &[]), &request.id)
        .await
        .unwrap();
    let at_third = approve(&mut h.client("frank", &[]), &request.id)
        .await
        .unwrap();
    // The third quorum needs two of bob, carol and gina: only gina is left.
    assert_eq!(at_third.current.as_ref().unwrap().node_index, 2);
    assert_eq!(waiting_for(&at_third), (vec![], vec![]), "nobody left");
    let refusal = refused_and_nothing_changed(&h, &mut carol, &request.id).await;
    assert!(
        refusal.message().contains("waits until it expires"),
        "{refusal:?}"
    );
    let after_gina = approve(&mut h.client("gina", &[]), &request.id)
        .await
        .unwrap();
    assert_eq!(after_gina.status, pb::ApprovalStatus::Pending as i32);
    h.stop().await;
}
