//! Permission applications, grants, checks and revocations through a real tonic server.
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
