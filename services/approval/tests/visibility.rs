//! What a caller learns about requests they may not see (nothing), and who is a service (only
//! the configured identities, never a person whose subject starts with `svc:`), through a real
//! tonic server on PostgreSQL and SQLite.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use shadowsync_common::db::Backend;
use shadowsync_proto::approval::v1 as pb;
use shadowsync_proto::common::v1::Actor;
use support::*;
use tonic::Code;

on_both_backends!(
    invisible_and_missing_requests_are_the_same_not_found,
    a_subject_starting_with_svc_is_no_service,
);

/// Everything a status carries to the client that could tell two cases apart.
fn fingerprint(status: &tonic::Status) -> (Code, String, Vec<u8>) {
    (
        status.code(),
        status.message().to_string(),
        status.details().to_vec(),
    )
}

/// Every RPC that takes an approval id (or finds one by resource), as `client` calls it.
async fn calls_on(
    client: &mut Client,
    id: &str,
    resource_id: &str,
) -> Vec<(String, tonic::Status)> {
    let by_id = || pb::GetApprovalRequest {
        key: Some(pb::get_approval_request::Key::ApprovalId(id.into())),
    };
    let mut statuses = Vec::new();
    statuses.push((
        "GetApproval by id".to_string(),
        client.get_approval(by_id()).await.unwrap_err(),
    ));
    statuses.push((
        "GetApproval by resource".to_string(),
        client
            .get_approval(pb::GetApprovalRequest {
                key: Some(pb::get_approval_request::Key::Resource(
                    pb::ResourceLookup {
                        request_type: "feature_flag_change".into(),
                        resource: Some(pb::ResourceRef {
                            r#type: "thing".into(),
                            id: resource_id.into(),
                            display_name: String::new(),
                        }),
                    },
                )),
            })
            .await
            .unwrap_err(),
    ));
    statuses.push((
        "WatchApproval".to_string(),
        client
            .watch_approval(pb::WatchApprovalRequest {
                approval_id: id.into(),
            })
            .await
            .map(|_| ())
            .unwrap_err(),
    ));
    statuses.push((
        "Approve".to_string(),
        client
            .approve(pb::ApproveRequest {
                approval_id: id.into(),
                comment: "ok".into(),
                expected_node_index: Some(0),
                request_id: "r1".into(),
            })
            .await
            .unwrap_err(),
    ));
    statuses.push((
        "Reject".to_string(),
        client
            .reject(pb::RejectRequest {
                approval_id: id.into(),
                comment: "no".into(),
                expected_node_index: None,
                request_id: "r2".into(),
            })
            .await
            .unwrap_err(),
    ));
    statuses.push((
        "CancelApproval".to_string(),
        client
            .cancel_approval(pb::CancelApprovalRequest {
                approval_id: id.into(),
                reason: "mine now".into(),
                request_id: "r3".into(),
            })
            .await
            .unwrap_err(),
    ));
    statuses
}

/// A `feature_flag_change` for `thing/<resource_id>` unlike the one `submit` makes.
async fn submit_request(client: &mut Client, resource_id: &str) -> Result<(), tonic::Status> {
    client
        .submit_approval(pb::SubmitApprovalRequest {
            request_type: "feature_flag_change".into(),
            resource: Some(pb::ResourceRef {
                r#type: "thing".into(),
                id: resource_id.into(),
                display_name: String::new(),
            }),
            payload_summary: "something else".into(),
            request_id: format!("other-{resource_id}"),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

async fn invisible_and_missing_requests_are_the_same_not_found(backend: Backend) {
    let h = Harness::start_on(backend).await;
    let mut alice = h.client("alice", &["dev"]);
    let hidden = submit(&mut alice, "feature_flag_change", "hidden", "").await;
    let permission = alice
        .apply_permission(pb::ApplyPermissionRequest {
            task_type: "shadow_table_sync".into(),
            connection_id: "c1".into(),
            reason: "tests".into(),
            request_id: "apply".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    let mut mallory = h.client("mallory", &["dev"]);
    // A made-up id of the same shape, and one no store would ever hold.
    let missing = uuid::Uuid::now_v7().to_string();
    // Under the 256-character bound on ids, so the lookup is made (and must reveal nothing).
    let junk = "x\n\u{1b}[31m".repeat(30);
    for (existing, resource) in [(&hidden.id, "hidden"), (&permission.id, "hidden")] {
        let seen = calls_on(&mut mallory, existing, resource).await;
        for absent_id in [&missing, &junk] {
            let unseen = calls_on(&mut mallory, absent_id, "never-submitted").await;
            for ((rpc, invisible), (_, absent)) in seen.iter().zip(&unseen) {
                assert_eq!(invisible.code(), Code::NotFound, "{rpc}: {invisible:?}");
                assert_eq!(
                    fingerprint(invisible),
                    fingerprint(absent),
                    "{rpc}: an invisible request must look missing"
                );
                assert!(
                    !invisible.message().contains(existing.as_str()),
                    "{rpc}: {invisible:?}"
                );
            }
        }
    }
    // Submitting for a resource someone else's request holds says it is taken (one pending
    // request per resource), but not which request holds it.
    let taken = submit_request(&mut mallory, "hidden").await.unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
    assert!(!taken.message().contains(hidden.id.as_str()), "{taken:?}");
    let retried = submit_request(&mut alice, "hidden").await.unwrap_err();
    assert!(
        retried.message().contains(hidden.id.as_str()),
        "{retried:?}"
    );
    // The permission RPCs: a non-admin cannot probe grants either.
    let revoke = |id: &str| pb::RevokePermissionRequest {
        permission_id: id.into(),
        reason: String::new(),
    };
    let grant = h
        .admin()
        .grant_permission(pb::GrantPermissionRequest {
            user: "alice".into(),
            task_type: "shadow_table_sync".into(),
            connection_id: "c1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .permission
        .unwrap();
    let existing = mallory
        .revoke_permission(revoke(&grant.id))
        .await
        .unwrap_err();
    let absent = mallory
        .revoke_permission(revoke(&missing))
        .await
        .unwrap_err();
    assert_eq!(existing.code(), Code::PermissionDenied);
    assert_eq!(fingerprint(&existing), fingerprint(&absent));
    // The requester still sees theirs.
    assert_eq!(
        alice
            .get_approval(pb::GetApprovalRequest {
                key: Some(pb::get_approval_request::Key::ApprovalId(hidden.id.clone())),
            })
            .await
            .unwrap()
            .into_inner()
            .approval
            .unwrap()
            .id,
        hidden.id
    );
    h.stop().await;
}

async fn a_subject_starting_with_svc_is_no_service(backend: Backend) {
    let h = Harness::start_on(backend).await;
    let victim = || Actor {
        subject: "victim".into(),
        display_name: "Victim".into(),
        roles: vec!["admin".into()],
    };
    let on_behalf = |request_type: &str| pb::SubmitApprovalRequest {
        request_type: request_type.into(),
        resource: Some(pb::ResourceRef {
            r#type: "thing".into(),
            id: "forged".into(),
            display_name: String::new(),
        }),
        payload_sha256: "ab".repeat(32),
        on_behalf_of: Some(victim()),
        request_id: "forged".into(),
        ..Default::default()
    };
    let check_for_victim = || pb::CheckPermissionRequest {
        user: "victim".into(),
        task_type: "shadow_table_sync".into(),
        connection_id: "c1".into(),
        database: "shop".into(),
        roles: vec!["admin".into()],
    };
    for subject in ["svc:taskx", "svc:anything", "svc:", "SVC:task", "svc:task "] {
        let mut fake = h.client(subject, &["service", "dev"]);
        // Submitting for someone else is a service privilege.
        let forged = fake
            .submit_approval(on_behalf("feature_flag_change"))
            .await
            .unwrap_err();
        assert_eq!(
            forged.code(),
            Code::InvalidArgument,
            "{subject:?}: {forged:?}"
        );
        assert!(forged.message().contains("on_behalf_of"), "{forged:?}");
        let sync = fake
            .submit_approval(on_behalf("shadow_table_sync"))
            .await
            .unwrap_err();
        assert_eq!(sync.code(), Code::PermissionDenied, "{subject:?}: {sync:?}");
        // Asking about another person (with roles the caller names) is a service privilege:
        // before the fix a `svc:` prefix got `allowed` with an admin override.
        let check = fake.check_permission(check_for_victim()).await.unwrap_err();
        assert_eq!(
            check.code(),
            Code::PermissionDenied,
            "{subject:?}: {check:?}"
        );
    }
    // The real task service keeps both privileges.
    let mut task = h.client("svc:task", &["service"]);
    let check = task
        .check_permission(check_for_victim())
        .await
        .unwrap()
        .into_inner();
    assert!(check.allowed && check.admin_override);
    let submitted = task
        .submit_approval(on_behalf("feature_flag_change"))
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    assert_eq!(submitted.requester.unwrap().subject, "victim");
    h.stop().await;
}
