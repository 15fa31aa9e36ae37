//! Templates and the priority order through a real tonic server (PostgreSQL, RabbitMQ).
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
    assert_eq!(dup.code(), Code::InvalidArgument);
    assert!(
        dup.message().starts_with("template.name:"),
        "{}",
        dup.message()
    );
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
async fn templates_are_validated_versioned_and_the_builtin_is_protected() {
    let h = Harness::start().await;
    let mut admin = h.admin();
    let invalid = |nodes: Vec<pb::TemplateNode>, name: &str| pb::CreateTemplateRequest {
        template: Some(pb::Template {
            name: name.into(),
            enabled: true,
            nodes,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let cases = [
        (
            invalid(
                vec![node(&[], &[], pb::ApprovalMode::Any, 0)],
                "no approvers",
            ),
            "approver_users",
        ),
        (
            invalid(
                vec![node(&["a", "b"], &[], pb::ApprovalMode::Quorum, 3)],
                "quorum",
            ),
            "quorum",
        ),
        (invalid(vec![auto_node()], " "), "template.name"),
        (invalid(vec![], "no nodes"), "template.nodes"),
    ];
    for (request, field) in cases {
        let error = admin.create_template(request).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{field}");
        assert!(
            error.message().contains(field),
            "{} names {field}",
            error.message()
        );
    }
    // Idempotent creation on request_id.
    let request = pb::CreateTemplateRequest {
        request_id: "create-1".into(),
        ..invalid(vec![auto_node()], "auto")
    };
    let first = admin
        .create_template(request.clone())
        .await
        .unwrap()
        .into_inner()
        .template
        .unwrap();
    let again = admin
        .create_template(request)
        .await
        .unwrap()
        .into_inner()
        .template
        .unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!((first.rank, first.execution_priority), (1, 10));

    // Optimistic concurrency: a stale version is refused.
    let mut edited = first.clone();
    edited.description = "changed".into();
    let updated = admin
        .update_template(pb::UpdateTemplateRequest {
            template: Some(edited.clone()),
            expected_version: first.version,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .template
        .unwrap();
    assert_eq!(updated.version, first.version + 1);
    // A retried update (same request id) answers with the template instead of a stale version.
    let mut retried = first.clone();
    retried.description = "retried".into();
    let retry = pb::UpdateTemplateRequest {
        template: Some(retried),
        expected_version: updated.version,
        request_id: "update-1".into(),
    };
    let once = admin
        .update_template(retry.clone())
        .await
        .unwrap()
        .into_inner()
        .template
        .unwrap();
    let twice = admin
        .update_template(retry)
        .await
        .unwrap()
        .into_inner()
        .template
        .unwrap();
    assert_eq!(once.version, twice.version);
    let updated = once;
    let stale = admin
        .update_template(pb::UpdateTemplateRequest {
            template: Some(edited),
            expected_version: first.version,
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);

    // The builtin: editable, never disabled or deleted.
    let list = admin
        .list_templates(pb::ListTemplatesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.total_size, 2);
    let mut builtin = list.templates.into_iter().find(|t| t.builtin).unwrap();
    assert_eq!(builtin.rank, 2, "always last");
    builtin.description = "admins approve".into();
    let edited = admin
        .update_template(pb::UpdateTemplateRequest {
            template: Some(builtin.clone()),
            expected_version: builtin.version,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .template
        .unwrap();
    builtin.enabled = false;
    let disable = admin
        .update_template(pb::UpdateTemplateRequest {
            template: Some(builtin),
            expected_version: edited.version,
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(disable.code(), Code::FailedPrecondition);
    let delete = admin
        .delete_template(pb::DeleteTemplateRequest {
            template_id: edited.id,
            expected_version: edited.version,
        })
        .await
        .unwrap_err();
    assert_eq!(delete.code(), Code::FailedPrecondition);
    // Deleting a template takes it out of the priority order.
    admin
        .delete_template(pb::DeleteTemplateRequest {
            template_id: first.id.clone(),
            expected_version: updated.version,
        })
        .await
        .unwrap();
    let priority = admin
        .get_priority(pb::GetPriorityRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(priority.entries.len(), 1);
    assert!(priority.entries[0].builtin);
    let denied = h
        .client("alice", &["dev"])
        .create_template(invalid(vec![auto_node()], "x"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    h.stop().await;
}
