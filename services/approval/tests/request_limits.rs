//! Request strings are bounded: past its bound a field is INVALID_ARGUMENT naming it,
//! through the real server, before the use case runs.
#![allow(clippy::unwrap_used, unused_imports, dead_code)]

mod support;

use shadowsync_proto::approval::v1 as pb;
use support::*;
use tonic::Code;

fn assert_names(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str) {
    let status = result.expect_err(field);
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    assert!(
        status.message().starts_with(&format!("{field}: ")),
        "{field}: {}",
        status.message()
    );
}

#[tokio::test]
async fn long_strings_are_invalid_argument_naming_the_field() {
    let h = Harness::start().await;
    let mut bob = h.client("bob", &[]);
    let huge = "x".repeat(60_000);

    assert_names(
        bob.approve(pb::ApproveRequest {
            approval_id: "a1".into(),
            comment: huge.clone(),
            ..Default::default()
        })
        .await,
        "comment",
    );
    assert_names(
        bob.approve(pb::ApproveRequest {
            approval_id: huge.clone(),
            ..Default::default()
        })
        .await,
        "approval_id",
    );
    assert_names(
        bob.list_approvals(pb::ListApprovalsRequest {
            request_types: vec!["shadow_table_sync".into(), huge.clone()],
            ..Default::default()
        })
        .await,
        "request_types[1]",
    );
    assert_names(
        bob.apply_permission(pb::ApplyPermissionRequest {
            reason: huge.clone(),
            ..Default::default()
        })
        .await,
        "reason",
    );
    assert_names(
        h.admin()
            .create_template(pb::CreateTemplateRequest {
                template: Some(pb::Template {
                    name: "t".into(),
                    description: huge.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await,
        "template.description",
    );
    // Within the bounds, the request reaches the use case (NOT_FOUND: no such approval).
    let status = bob
        .approve(pb::ApproveRequest {
            approval_id: "a1".into(),
            comment: "c".repeat(1024),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_ne!(status.code(), Code::InvalidArgument, "{status:?}");
    h.stop().await;
}
