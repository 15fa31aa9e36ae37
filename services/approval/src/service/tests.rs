//! Use-case conformance on PostgreSQL and SQLite: races between deciders, scheduled dispatch,
//! idempotent submission, paging and stricter separation of duties.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use prost::Message as _;
use shadowsync_common::clock::{Clock, ManualClock, to_timestamp};
use shadowsync_common::db::Database;
use shadowsync_common::outbox::OutboxRelay;
use shadowsync_common::queue::{InProcessQueue, MessageQueue, Topology};
use shadowsync_proto::approval::v1 as pb;
use shadowsync_proto::common::v1::{Actor, ExecuteTask, ExecutionDispatched};
use sqlx::Row as _;
use tokio::sync::Notify;

use super::Service;
use crate::error::ApprovalError;
use crate::model::{ApprovalStatus, Person};
use crate::store::{MIGRATIONS, Store};

struct Fixture {
    service: Service,
    clock: ManualClock,
    relay: OutboxRelay,
    queue: Arc<InProcessQueue>,
    db: Database,
}

async fn fixture(db: Database) -> Fixture {
    let clock = ManualClock::new(1_800_000_000_000_000);
    let store = Store::new(db.clone());
    store
        .seed(&super::templates::builtin_template(), clock.now())
        .await
        .expect("seed");
    let queue = Arc::new(
        InProcessQueue::in_memory(Topology::new("test."))
            .await
            .expect("queue"),
    );
    let relay = OutboxRelay::new(db.clone(), queue.clone(), Arc::new(clock.clone()));
    let service = Service::new(store, Arc::new(clock.clone()), Arc::new(Notify::new()));
    Fixture {
        service,
        clock,
        relay,
        queue,
        db,
    }
}

fn who(subject: &str, roles: &[&str]) -> Person {
    Person {
        subject: subject.into(),
        name: subject.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }
}

fn admin() -> Person {
    who("root", &["admin"])
}

async fn template(f: &Fixture, nodes: Vec<pb::TemplateNode>, sod: pb::SeparationOfDuties) {
    f.service
        .create_template(
            &admin(),
            pb::CreateTemplateRequest {
                template: Some(pb::Template {
                    name: "t".into(),
                    enabled: true,
                    nodes,
                    separation_of_duties: sod.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        )
        .await
        .expect("template");
}

fn users_node(users: &[&str], mode: pb::ApprovalMode, quorum: u32) -> pb::TemplateNode {
    pb::TemplateNode {
        name: "n".into(),
        approver_users: users.iter().map(|u| u.to_string()).collect(),
        mode: mode.into(),
        quorum,
        ..Default::default()
    }
}

fn task_request(task_id: i64, scheduled: Option<i64>) -> pb::SubmitApprovalRequest {
    pb::SubmitApprovalRequest {
        request_type: "shadow_table_sync".into(),
        resource: Some(pb::ResourceRef {
            r#type: "task".into(),
            id: task_id.to_string(),
            display_name: String::new(),
        }),
        payload_sha256: "cd".repeat(32),
        scheduled_time: scheduled.map(to_timestamp),
        on_behalf_of: Some(Actor {
            subject: "alice".into(),
            display_name: "Alice".into(),
            roles: vec!["dev".into()],
        }),
        request_id: format!("task-{task_id}"),
        ..Default::default()
    }
}

fn task_service() -> Person {
    who("svc:task", &["service"])
}

async fn outbox_count(db: &Database, pattern: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE routing_key LIKE $1 OR destination = $1")
        .bind(pattern)
        .fetch_one(db.pool())
        .await
        .expect("count")
        .try_get("n")
        .expect("n")
}

async fn concurrent_deciders_advance_the_request_once(db: Database) {
    let f = fixture(db).await;
    template(
        &f,
        vec![users_node(&["b", "c", "d"], pb::ApprovalMode::Quorum, 2)],
        pb::SeparationOfDuties::Unspecified,
    )
    .await;
    let request = f
        .service
        .submit(&task_service(), task_request(1, None))
        .await
        .expect("submit");
    let deciders = ["b", "c", "d"].map(|subject| {
        let service = f.service.clone();
        let id = request.id.clone();
        tokio::spawn(async move {
            service
                .decide(&who(subject, &[]), &id, true, "", None, "")
                .await
        })
    });
    let mut approved = 0;
    for decider in deciders {
        match decider.await.expect("join") {
            Ok(_) => approved += 1,
            Err(ApprovalError::FailedPrecondition(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(approved, 2, "the third decider finds the request approved");
    let stored = f.service.store().approval(&request.id).await.expect("read");
    assert_eq!(stored.expect("exists").status, ApprovalStatus::Approved);
    assert_eq!(outbox_count(&f.db, "approval.decided.%").await, 1);
    assert_eq!(outbox_count(&f.db, "execute").await, 1, "dispatched once");
}

async fn cancel_and_approve_race_to_one_outcome(db: Database) {
    let f = fixture(db).await;
    let request = f
        .service
        .submit(&task_service(), task_request(2, None))
        .await
        .expect("submit");
    let (service, id) = (f.service.clone(), request.id.clone());
    let approve =
        tokio::spawn(async move { service.decide(&admin(), &id, true, "", None, "").await });
    let cancelled = f
        .service
        .cancel(&task_service(), &request.id, "abort")
        .await;
    let approved = approve.await.expect("join");
    assert!(
        cancelled.is_ok() != approved.is_ok(),
        "exactly one wins: {cancelled:?} / {approved:?}"
    );
    assert_eq!(outbox_count(&f.db, "approval.decided.%").await, 1);
}

async fn scheduled_tasks_wait_and_late_ones_go_at_once(db: Database) {
    let f = fixture(db).await;
    let now = f.clock.now();
    let later = now + 3_600_000_000;
    let scheduled = f
        .service
        .submit(&task_service(), task_request(10, Some(later)))
        .await
        .expect("submit");
    f.service
        .decide(&admin(), &scheduled.id, true, "", None, "")
        .await
        .expect("approve");
    let mut stream = f
        .queue
        .consume(&f.queue.topology().execute_queue(), 10)
        .await
        .expect("consume");
    f.relay.relay_due().await.expect("relay");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), stream.next())
            .await
            .is_err(),
        "not before its time"
    );
    // Approved after its time: dispatched at once, marked late.
    let late = f
        .service
        .submit(&task_service(), task_request(11, Some(now - 1)))
        .await
        .expect("submit");
    f.service
        .decide(&admin(), &late.id, true, "", None, "")
        .await
        .expect("approve");
    f.relay.relay_due().await.expect("relay");
    let delivery = stream.next().await.expect("open").expect("delivery");
    let execute = ExecuteTask::decode(delivery.message().payload.as_slice()).expect("decode");
    assert_eq!((execute.task_id, execute.attempt), (11, 1));
    delivery.ack().await.expect("ack");
    let dispatched = sqlx::query(
        "SELECT payload FROM outbox WHERE routing_key = 'execution.dispatched' ORDER BY id",
    )
    .fetch_all(f.db.pool())
    .await
    .expect("events");
    let events: Vec<ExecutionDispatched> = dispatched
        .iter()
        .map(|row| {
            ExecutionDispatched::decode(
                row.try_get::<Vec<u8>, _>("payload")
                    .expect("payload")
                    .as_slice(),
            )
            .expect("decode")
        })
        .collect();
    assert_eq!(events.len(), 2);
    assert!(!events[0].late && events[1].late);
    f.clock.advance(Duration::from_secs(3601));
    f.relay.relay_due().await.expect("relay");
    let delivery = stream.next().await.expect("open").expect("delivery");
    let execute = ExecuteTask::decode(delivery.message().payload.as_slice()).expect("decode");
    assert_eq!(execute.task_id, 10);
    delivery.ack().await.expect("ack");
}

async fn submissions_are_idempotent_and_refuse_changed_retries(db: Database) {
    let f = fixture(db).await;
    let first = f
        .service
        .submit(&task_service(), task_request(5, None))
        .await
        .expect("submit");
    let again = f
        .service
        .submit(&task_service(), task_request(5, None))
        .await
        .expect("retry");
    assert_eq!(first.id, again.id);
    let mut changed = task_request(5, None);
    changed.payload_sha256 = "ef".repeat(32);
    assert!(matches!(
        f.service.submit(&task_service(), changed.clone()).await,
        Err(ApprovalError::InvalidArgument { .. })
    ));
    changed.request_id = "other".into();
    assert!(matches!(
        f.service.submit(&task_service(), changed).await,
        Err(ApprovalError::AlreadyExists(_))
    ));
    let lookup = pb::get_approval_request::Key::Resource(pb::ResourceLookup {
        request_type: "shadow_table_sync".into(),
        resource: Some(pb::ResourceRef {
            r#type: "task".into(),
            id: "5".into(),
            display_name: String::new(),
        }),
    });
    let found = f
        .service
        .get(&task_service(), Some(lookup))
        .await
        .expect("by resource");
    assert_eq!(found.id, first.id);
    assert_eq!(found.payload_sha256, "cd".repeat(32));
    // Even once final, a task's request is never replaced: a late retry finds it.
    f.service
        .decide(&admin(), &first.id, false, "no", None, "")
        .await
        .expect("reject");
    let mut late = task_request(5, None);
    late.request_id = "a-late-retry".into();
    let found = f
        .service
        .submit(&task_service(), late)
        .await
        .expect("same task");
    assert_eq!(
        (found.id.as_str(), found.status),
        (first.id.as_str(), ApprovalStatus::Rejected)
    );
    // A service must say whom it checks.
    assert!(matches!(
        f.service
            .check_permission(&task_service(), pb::CheckPermissionRequest::default())
            .await,
        Err(ApprovalError::InvalidArgument { .. })
    ));
}

async fn lists_page_without_gaps_or_duplicates(db: Database) {
    let f = fixture(db).await;
    for task_id in 20..25 {
        f.service
            .submit(&task_service(), task_request(task_id, None))
            .await
            .expect("submit");
        f.clock.advance(Duration::from_millis(1));
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = f
            .service
            .list(
                &who("other_admin", &["admin"]),
                pb::ListApprovalsRequest {
                    scope: pb::ApprovalScope::PendingForMe.into(),
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
            )
            .await
            .expect("page");
        assert_eq!(page.total_size, 5);
        seen.extend(
            page.approvals
                .into_iter()
                .map(|a| a.resource.unwrap_or_default().id),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["24", "23", "22", "21", "20"], "newest first");
    let mine = f
        .service
        .list(
            &who("alice", &["dev"]),
            pb::ListApprovalsRequest {
                scope: pb::ApprovalScope::SubmittedByMe.into(),
                ..Default::default()
            },
        )
        .await
        .expect("mine");
    assert_eq!(mine.total_size, 5, "alice is the requester of each");
}

async fn distinct_per_node_keeps_one_person_to_one_node(db: Database) {
    let f = fixture(db).await;
    template(
        &f,
        vec![
            users_node(&["b", "c"], pb::ApprovalMode::Any, 0),
            users_node(&["b", "c"], pb::ApprovalMode::Any, 0),
        ],
        pb::SeparationOfDuties::DistinctPerNode,
    )
    .await;
    let request = f
        .service
        .submit(&task_service(), task_request(30, None))
        .await
        .expect("submit");
    f.service
        .decide(&who("b", &[]), &request.id, true, "", Some(0), "")
        .await
        .expect("b at node 0");
    assert!(matches!(
        f.service
            .decide(&who("b", &[]), &request.id, true, "", Some(1), "")
            .await,
        Err(ApprovalError::FailedPrecondition(_))
    ));
    let done = f
        .service
        .decide(&who("c", &[]), &request.id, true, "", Some(1), "")
        .await
        .expect("c at node 1");
    assert_eq!(done.status, ApprovalStatus::Approved);
}

shadowsync_common::conformance!("approval", MIGRATIONS;
    concurrent_deciders_advance_the_request_once,
    cancel_and_approve_race_to_one_outcome,
    scheduled_tasks_wait_and_late_ones_go_at_once,
    submissions_are_idempotent_and_refuse_changed_retries,
    lists_page_without_gaps_or_duplicates,
    distinct_per_node_keeps_one_person_to_one_node,
);
