//! The store's conformance suite, run on PostgreSQL and SQLite alike.

use shadowsync_common::db::Database;

use super::approvals::{self, ApprovalTransition};
use super::permissions;
use super::templates;
use super::{MIGRATIONS, Store};
use crate::error::ApprovalError;
use crate::model::*;
use crate::template::{builtin_definition, select};

fn builtin() -> Template {
    Template {
        id: "builtin".into(),
        name: "Administrator approval".into(),
        description: String::new(),
        enabled: true,
        builtin: true,
        definition: builtin_definition(),
        version: 1,
        creator: "system".into(),
        create_time: 0,
        update_time: 0,
    }
}

fn approval_for(
    id: &str,
    resource: &str,
    request_id: &str,
    snapshot: TemplateSnapshot,
) -> Approval {
    Approval {
        id: id.into(),
        request_type: "feature_flag_change".into(),
        resource: ResourceRef {
            resource_type: "flag".into(),
            id: resource.into(),
            display_name: String::new(),
        },
        attributes: MatchAttributes::default(),
        requester: Person {
            subject: "alice".into(),
            name: "Alice".into(),
            roles: vec!["dev".into()],
        },
        submitter: "alice".into(),
        request_id: request_id.into(),
        fingerprint: "f".into(),
        payload_summary: String::new(),
        payload_sha256: String::new(),
        status: ApprovalStatus::Pending,
        snapshot,
        current_node: 0,
        approval_deadline: 100,
        scheduled_time: None,
        cancelled_by: None,
        cancel_reason: None,
        create_time: 10,
        update_time: 10,
        finish_time: None,
        version: 1,
        nodes: vec![NodeState {
            index: 0,
            status: NodeStatus::Active,
            start_time: Some(10),
            end_time: None,
        }],
        decisions: Vec::new(),
    }
}

async fn seeded(db: Database) -> (Store, TemplateSnapshot) {
    let store = Store::new(db);
    store.seed(&builtin(), 5).await.expect("seed");
    store.seed(&builtin(), 6).await.expect("seed is idempotent");
    let (templates, order) = store.templates_and_priority().await.expect("read");
    assert_eq!(templates.len(), 1);
    let snapshot = select(
        &order.template_ids,
        &templates,
        "x",
        &MatchAttributes::default(),
        &[],
    )
    .expect("the builtin matches anything");
    (store, snapshot)
}

async fn templates_use_versions_and_unique_names(db: Database) {
    let (store, _) = seeded(db).await;
    let mut tx = store.begin().await.expect("tx");
    let mut t = Template {
        id: "t1".into(),
        name: "DBA".into(),
        builtin: false,
        ..builtin()
    };
    templates::insert_template(&mut tx, &t)
        .await
        .expect("insert");
    let duplicate = Template {
        id: "t2".into(),
        ..t.clone()
    };
    assert!(matches!(
        templates::insert_template(&mut tx, &duplicate).await,
        Err(ApprovalError::AlreadyExists(_))
    ));
    tx.rollback().await.expect("rollback");
    let mut tx = store.begin().await.expect("tx");
    templates::insert_template(&mut tx, &t)
        .await
        .expect("insert");
    t.description = "changed".into();
    templates::update_template(&mut tx, &t, 1)
        .await
        .expect("cas at 1");
    assert!(matches!(
        templates::update_template(&mut tx, &t, 1).await,
        Err(ApprovalError::Conflict)
    ));
    let order = templates::priority_in(&mut tx).await.expect("order");
    let version = templates::set_priority(&mut tx, &["t1".into()], order.version)
        .await
        .expect("set");
    assert!(matches!(
        templates::set_priority(&mut tx, &[], order.version).await,
        Err(ApprovalError::Conflict)
    ));
    assert_eq!(version, order.version + 1);
    assert!(matches!(
        templates::delete_template(&mut tx, "builtin", 1).await,
        Err(ApprovalError::Conflict)
    ));
    templates::delete_template(&mut tx, "t1", 2)
        .await
        .expect("delete at 2");
    tx.commit().await.expect("commit");
}

async fn approvals_refuse_duplicates_and_stale_transitions(db: Database) {
    let (store, snapshot) = seeded(db).await;
    let mut tx = store.begin().await.expect("tx");
    let a = approval_for("a1", "flag-1", "r1", snapshot.clone());
    approvals::insert_approval(&mut tx, &a)
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
    // Same (submitter, request_id): refused by the database.
    let mut tx = store.begin().await.expect("tx");
    let again = approval_for("a2", "flag-2", "r1", snapshot.clone());
    assert!(matches!(
        approvals::insert_approval(&mut tx, &again).await,
        Err(ApprovalError::AlreadyExists(_))
    ));
    tx.rollback().await.expect("rollback");
    // A second pending request for the same resource: refused too.
    let mut tx = store.begin().await.expect("tx");
    let second = approval_for("a3", "flag-1", "r3", snapshot.clone());
    assert!(matches!(
        approvals::insert_approval(&mut tx, &second).await,
        Err(ApprovalError::AlreadyExists(_))
    ));
    tx.rollback().await.expect("rollback");

    let mut tx = store.begin().await.expect("tx");
    let bob = Person {
        subject: "bob".into(),
        name: "Bob".into(),
        roles: vec!["admin".into()],
    };
    let decision = Decision {
        node_index: 0,
        actor: Some(bob.clone()),
        outcome: Outcome::Approved,
        comment: "ok".into(),
        request_id: String::new(),
        time: 20,
    };
    approvals::insert_decision(&mut tx, "a1", &decision)
        .await
        .expect("decide");
    assert!(matches!(
        approvals::insert_decision(&mut tx, "a1", &decision).await,
        Err(ApprovalError::FailedPrecondition(_))
    ));
    tx.rollback().await.expect("rollback");

    let mut tx = store.begin().await.expect("tx");
    approvals::insert_decision(&mut tx, "a1", &decision)
        .await
        .expect("decide");
    let change = ApprovalTransition {
        status: ApprovalStatus::Approved,
        current_node: 0,
        cancelled_by: None,
        cancel_reason: None,
        now: 20,
    };
    assert_eq!(
        approvals::transition(&mut tx, "a1", 1, &change)
            .await
            .expect("cas"),
        2
    );
    assert!(
        matches!(
            approvals::transition(&mut tx, "a1", 2, &change).await,
            Err(ApprovalError::Conflict)
        ),
        "a final request never changes again"
    );
    tx.commit().await.expect("commit");
    let read = store.approval("a1").await.expect("read").expect("exists");
    assert_eq!(read.status, ApprovalStatus::Approved);
    assert_eq!(read.decisions, vec![decision]);
    assert_eq!(read.snapshot, snapshot);
    assert_eq!(read.finish_time, Some(20));
    // The resource is free again once the first request is final.
    let mut tx = store.begin().await.expect("tx");
    approvals::insert_approval(&mut tx, &second)
        .await
        .expect("new request");
    tx.commit().await.expect("commit");

    let page = store
        .list_approvals(&super::ApprovalFilter {
            scope: super::ListScope::PendingFor(bob.clone()),
            statuses: vec![],
            request_types: vec![],
            after: None,
            limit: 10,
        })
        .await
        .expect("list");
    assert_eq!(page.total, 1, "bob (admin) may decide a3 only");
    assert_eq!(page.ids[0].1, "a3");
    assert_eq!(
        store.due_to_expire(100, 10).await.expect("due"),
        vec!["a3".to_string()]
    );
}

async fn permissions_revoke_once(db: Database) {
    let (store, _) = seeded(db).await;
    let grant = Permission {
        id: "p1".into(),
        grantee: "alice".into(),
        task_type: "shadow_table_sync".into(),
        connection_id: "c1".into(),
        database: String::new(),
        reason: "r".into(),
        granted_by: "root".into(),
        approval_id: None,
        grant_time: 1,
        expire_time: Some(50),
        revoke_time: None,
        revoked_by: String::new(),
    };
    let mut tx = store.begin().await.expect("tx");
    permissions::insert_permission(&mut tx, &grant, Some("root/k1"))
        .await
        .expect("grant");
    tx.commit().await.expect("commit");
    assert_eq!(
        store
            .active_grants("alice", "shadow_table_sync", "c1", 10)
            .await
            .expect("q")
            .len(),
        1
    );
    assert!(
        store
            .active_grants("alice", "shadow_table_sync", "c1", 50)
            .await
            .expect("q")
            .is_empty()
    );
    let mut tx = store.begin().await.expect("tx");
    permissions::revoke(&mut tx, "p1", "root", "done", 20)
        .await
        .expect("revoke");
    assert!(matches!(
        permissions::revoke(&mut tx, "p1", "root", "again", 21).await,
        Err(ApprovalError::Conflict)
    ));
    tx.commit().await.expect("commit");
    assert!(
        store
            .active_grants("alice", "shadow_table_sync", "c1", 10)
            .await
            .expect("q")
            .is_empty()
    );
}

shadowsync_common::conformance!("approval", MIGRATIONS;
    templates_use_versions_and_unique_names,
    approvals_refuse_duplicates_and_stale_transitions,
    permissions_revoke_once,
);
