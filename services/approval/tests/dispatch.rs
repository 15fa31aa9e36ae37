//! Dispatch and events through the outbox to the real RabbitMQ: priority order, a cut broker,
//! per-request-type routing.
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
    let mut proxy = shadowsync_common::testing::TcpProxy::start(broker).await;
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
async fn the_background_relay_publishes_without_being_asked_and_stops_on_shutdown() {
    let h = Harness::start().await;
    let events = h
        .queue
        .declare_subscription("all-events", &["approval.#", "permission.*"])
        .await
        .unwrap();
    let mut stream = h.queue.consume(&events, 10).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let background = tokio::spawn(shadowsync_approval::run_background(
        h.api.clone(),
        stop.clone().cancelled_owned(),
    ));
    let mut root = h.admin();
    root.grant_permission(pb::GrantPermissionRequest {
        user: "alice".into(),
        task_type: "shadow_table_sync".into(),
        connection_id: "c1".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let granted = next_delivery(&mut stream).await;
    assert_eq!(granted.routing_key(), "permission.granted");
    let event = pb::PermissionEvent::decode(granted.message().payload.as_slice()).unwrap();
    assert_eq!(event.permission.unwrap().user, "alice");
    assert_eq!(event.actor.unwrap().subject, "root");
    granted.ack().await.unwrap();
    let request = submit(
        &mut h.client("alice", &["dev"]),
        "feature_flag_change",
        "f7",
        "",
    )
    .await;
    let requested = next_delivery(&mut stream).await;
    let event = pb::ApprovalEvent::decode(requested.message().payload.as_slice()).unwrap();
    assert_eq!(event.approval_id, request.id);
    let current = event.current.unwrap();
    assert_eq!(current.roles, ["admin"], "the builtin's candidates");
    assert!(current.deadline.is_some());
    requested.ack().await.unwrap();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), background)
        .await
        .expect("background work stops on shutdown")
        .unwrap();
    drop(stream);
    h.stop().await;
}
