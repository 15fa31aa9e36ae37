//! The conformance suite: what every [`MessageQueue`] must do, run once per backend by
//! [`queue_conformance_suite!`](crate::queue_conformance_suite).

use std::collections::BTreeSet;
use std::sync::Arc;

use shadowsync_common::queue::{Destination, Message, MessageQueue, Priority, QueueError};

use super::{assert_no_delivery, label, next_delivery, publish_task, task_message};

/// Generates one `#[tokio::test]` per conformance test, opening the backend with `$open`.
#[macro_export]
macro_rules! queue_conformance_suite {
    ($open:path) => {
        $crate::queue_conformance_suite!(@tests $open;
            publish_consume_ack,
            unacked_message_is_redelivered_after_consumer_drops,
            dropped_delivery_is_redelivered_to_the_running_consumer,
            delivery_is_settled_after_its_consumer_is_dropped,
            nack_requeue_redelivers,
            higher_priority_is_consumed_first,
            poison_message_lands_in_dead_letter_queue,
            nothing_is_lost_while_no_consumer_runs,
            topic_routing_reaches_only_matching_bindings,
            prefetch_limits_unsettled_deliveries,
            a_slot_freed_by_another_task_wakes_the_consumer,
            consuming_an_undeclared_queue_fails,
            invalid_arguments_are_refused,
            check_ready_succeeds
        );
    };
    (@tests $open:path; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                $crate::queue_support::run($open, $crate::queue_support::suite::$test).await;
            }
        )*
    };
}

pub async fn publish_consume_ack(queue: Arc<dyn MessageQueue>) {
    let sent = task_message("one", 4)
        .with_id("message-1")
        .with_header("x-custom", "value");
    publish_task(&*queue, &sent).await;

    let mut stream = queue
        .consume(&queue.topology().execute_queue(), 1)
        .await
        .unwrap();
    let delivery = next_delivery(&mut stream).await;
    assert_eq!(delivery.message(), &sent);
    assert_eq!(delivery.message().content_type, "application/x-protobuf");
    assert_eq!(
        delivery.message().traceparent(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert!(!delivery.redelivered());
    assert_eq!(delivery.queue(), &queue.topology().execute_queue());
    assert_eq!(
        delivery.routing_key(),
        queue.topology().execute_queue().as_str()
    );
    delivery.ack().await.unwrap();
    assert_no_delivery(&mut stream).await;
    drop(stream);

    // Acked means gone, also for a new consumer.
    let mut stream = queue
        .consume(&queue.topology().execute_queue(), 1)
        .await
        .unwrap();
    assert_no_delivery(&mut stream).await;
}

pub async fn unacked_message_is_redelivered_after_consumer_drops(queue: Arc<dyn MessageQueue>) {
    let execute = queue.topology().execute_queue();
    publish_task(&*queue, &task_message("crash", 2)).await;

    let mut stream = queue.consume(&execute, 1).await.unwrap();
    let delivery = next_delivery(&mut stream).await;
    assert!(!delivery.redelivered());
    // The consumer goes away first, then its unsettled delivery.
    drop(stream);
    drop(delivery);

    let mut stream = queue.consume(&execute, 1).await.unwrap();
    let delivery = next_delivery(&mut stream).await;
    assert_eq!(label(&delivery), "crash");
    assert!(delivery.redelivered());
    delivery.ack().await.unwrap();
    assert_no_delivery(&mut stream).await;
}

pub async fn dropped_delivery_is_redelivered_to_the_running_consumer(queue: Arc<dyn MessageQueue>) {
    publish_task(&*queue, &task_message("dropped", 2)).await;
    let mut stream = queue
        .consume(&queue.topology().execute_queue(), 1)
        .await
        .unwrap();
    let delivery = next_delivery(&mut stream).await;
    drop(delivery);
    let delivery = next_delivery(&mut stream).await;
    assert_eq!(label(&delivery), "dropped");
    assert!(delivery.redelivered());
    delivery.ack().await.unwrap();
}

/// Graceful shutdown: stop consuming first, then finish (ack) the delivery in hand.
pub async fn delivery_is_settled_after_its_consumer_is_dropped(queue: Arc<dyn MessageQueue>) {
    let execute = queue.topology().execute_queue();
    publish_task(&*queue, &task_message("finishing", 2)).await;
    let mut stream = queue.consume(&execute, 1).await.unwrap();
    let delivery = next_delivery(&mut stream).await;
    drop(stream);
    delivery.ack().await.unwrap();

    let mut stream = queue.consume(&execute, 1).await.unwrap();
    assert_no_delivery(&mut stream).await;
}

pub async fn nack_requeue_redelivers(queue: Arc<dyn MessageQueue>) {
    publish_task(&*queue, &task_message("again", 2)).await;
    let mut stream = queue
        .consume(&queue.topology().execute_queue(), 1)
        .await
        .unwrap();
    next_delivery(&mut stream)
        .await
        .nack_requeue()
        .await
        .unwrap();
    let delivery = next_delivery(&mut stream).await;
    assert_eq!(label(&delivery), "again");
    assert!(delivery.redelivered());
    delivery.ack().await.unwrap();
    assert_no_delivery(&mut stream).await;
}

pub async fn higher_priority_is_consumed_first(queue: Arc<dyn MessageQueue>) {
    let published = [
        ("p1", 1),
        ("p5-first", 5),
        ("p10", 10),
        ("p0", 0),
        ("p5-second", 5),
        ("p3", 3),
    ];
    for (name, priority) in published {
        publish_task(&*queue, &task_message(name, priority)).await;
    }
    let mut stream = queue
        .consume(&queue.topology().execute_queue(), 1)
        .await
        .unwrap();
    let mut received = Vec::new();
    for _ in published {
        let delivery = next_delivery(&mut stream).await;
        received.push(label(&delivery));
        delivery.ack().await.unwrap();
    }
    assert_eq!(received, ["p10", "p5-first", "p5-second", "p3", "p1", "p0"]);
}

pub async fn poison_message_lands_in_dead_letter_queue(queue: Arc<dyn MessageQueue>) {
    let topology = queue.topology().clone();
    let poison = task_message("poison", 7);
    publish_task(&*queue, &poison).await;
    publish_task(&*queue, &task_message("good", 1)).await;

    let mut stream = queue.consume(&topology.execute_queue(), 1).await.unwrap();
    let delivery = next_delivery(&mut stream).await;
    assert_eq!(label(&delivery), "poison");
    delivery.reject_to_dead_letter().await.unwrap();
    let delivery = next_delivery(&mut stream).await;
    assert_eq!(label(&delivery), "good");
    delivery.ack().await.unwrap();
    assert_no_delivery(&mut stream).await;

    let dead_letter_queue = topology.dead_letter_queue(&topology.execute_queue());
    assert_eq!(
        dead_letter_queue.as_str(),
        format!("{}shadowsync.execute.dead", topology.prefix())
    );
    let mut dead = queue.consume(&dead_letter_queue, 1).await.unwrap();
    let delivery = next_delivery(&mut dead).await;
    let message = delivery.message();
    assert_eq!(message.id, poison.id);
    assert_eq!(message.message_type, poison.message_type);
    assert_eq!(message.payload, poison.payload);
    assert_eq!(message.priority, poison.priority);
    assert_eq!(message.traceparent(), poison.traceparent());
    // Why and where from, for the person who looks at it.
    assert_eq!(
        message
            .headers
            .get("x-first-death-reason")
            .map(String::as_str),
        Some("rejected")
    );
    assert_eq!(
        message
            .headers
            .get("x-first-death-queue")
            .map(String::as_str),
        Some(topology.execute_queue().as_str())
    );
    assert_eq!(delivery.routing_key(), dead_letter_queue.as_str());
    assert!(!delivery.redelivered());
    delivery.ack().await.unwrap();
    assert_no_delivery(&mut dead).await;
}

pub async fn nothing_is_lost_while_no_consumer_runs(queue: Arc<dyn MessageQueue>) {
    let events = queue
        .declare_subscription("audit", &["task.*"])
        .await
        .unwrap();
    let mut expected_tasks = BTreeSet::new();
    for index in 0..20_u8 {
        let name = format!("task-{index}");
        publish_task(&*queue, &task_message(&name, index % 11)).await;
        expected_tasks.insert(name);
    }
    for status in ["executing", "execution_succeeded"] {
        let event = Message::new(
            "shadowsync.task.v1.TaskStatusChanged",
            status.as_bytes().to_vec(),
        );
        queue
            .publish(&Destination::event(format!("task.{status}")), &event)
            .await
            .unwrap();
    }

    let mut stream = queue
        .consume(&queue.topology().execute_queue(), 5)
        .await
        .unwrap();
    let mut received = BTreeSet::new();
    for _ in 0..expected_tasks.len() {
        let delivery = next_delivery(&mut stream).await;
        assert!(received.insert(label(&delivery)), "delivered twice");
        delivery.ack().await.unwrap();
    }
    assert_eq!(received, expected_tasks);
    assert_no_delivery(&mut stream).await;

    let mut stream = queue.consume(&events, 1).await.unwrap();
    let mut received = Vec::new();
    for _ in 0..2 {
        let delivery = next_delivery(&mut stream).await;
        received.push(delivery.routing_key().to_owned());
        delivery.ack().await.unwrap();
    }
    assert_eq!(received, ["task.executing", "task.execution_succeeded"]);
}

pub async fn topic_routing_reaches_only_matching_bindings(queue: Arc<dyn MessageQueue>) {
    let flags = queue
        .declare_subscription("flags", &["approval.*.feature_flag_change"])
        .await
        .unwrap();
    let sync = queue
        .declare_subscription("sync", &["approval.*.shadow_table_sync"])
        .await
        .unwrap();
    let everything = queue
        .declare_subscription("everything", &["approval.#", "task.*"])
        .await
        .unwrap();
    // Declaring again is harmless.
    queue
        .declare_subscription("flags", &["approval.*.feature_flag_change"])
        .await
        .unwrap();

    let decided = Message::new(
        "shadowsync.approval.v1.ApprovalDecided",
        b"decided".to_vec(),
    );
    let routing_key = "approval.decided.feature_flag_change";
    queue
        .publish(&Destination::event(routing_key), &decided)
        .await
        .unwrap();

    let mut stream = queue.consume(&flags, 1).await.unwrap();
    let delivery = next_delivery(&mut stream).await;
    assert_eq!(delivery.message(), &decided);
    assert_eq!(delivery.routing_key(), routing_key);
    assert_eq!(delivery.queue(), &flags);
    delivery.ack().await.unwrap();
    assert_no_delivery(&mut stream).await;

    let mut stream = queue.consume(&sync, 1).await.unwrap();
    assert_no_delivery(&mut stream).await;

    // A queue bound by two matching patterns still gets the event once.
    let mut stream = queue.consume(&everything, 1).await.unwrap();
    let delivery = next_delivery(&mut stream).await;
    assert_eq!(delivery.routing_key(), routing_key);
    delivery.ack().await.unwrap();
    assert_no_delivery(&mut stream).await;

    // An event nobody is bound to is dropped without error.
    let unbound = Message::new("shadowsync.task.v1.ExecutionDispatched", b"x".to_vec());
    queue
        .publish(&Destination::event("execution.dispatched"), &unbound)
        .await
        .unwrap();
}

pub async fn prefetch_limits_unsettled_deliveries(queue: Arc<dyn MessageQueue>) {
    for name in ["a", "b", "c"] {
        publish_task(&*queue, &task_message(name, 0)).await;
    }
    let mut stream = queue
        .consume(&queue.topology().execute_queue(), 2)
        .await
        .unwrap();
    let first = next_delivery(&mut stream).await;
    let second = next_delivery(&mut stream).await;
    assert_eq!(
        (label(&first), label(&second)),
        ("a".to_owned(), "b".to_owned())
    );
    assert_no_delivery(&mut stream).await;
    first.ack().await.unwrap();
    let third = next_delivery(&mut stream).await;
    assert_eq!(label(&third), "c");
    second.ack().await.unwrap();
    third.ack().await.unwrap();
}

/// Deliveries settled by other tasks, as the executor does, while the consumer waits for a free
/// prefetch slot: every settlement must wake it, however the two interleave.
pub async fn a_slot_freed_by_another_task_wakes_the_consumer(queue: Arc<dyn MessageQueue>) {
    const MESSAGES: usize = 200;
    for n in 0..MESSAGES {
        publish_task(&*queue, &task_message(&n.to_string(), 0)).await;
    }
    let mut stream = queue
        .consume(&queue.topology().execute_queue(), 1)
        .await
        .unwrap();
    let mut settling = tokio::task::JoinSet::new();
    for _ in 0..MESSAGES {
        let delivery = next_delivery(&mut stream).await;
        settling.spawn(async move { delivery.ack().await.unwrap() });
    }
    while let Some(settled) = settling.join_next().await {
        settled.unwrap();
    }
    assert_no_delivery(&mut stream).await;
}

pub async fn consuming_an_undeclared_queue_fails(queue: Arc<dyn MessageQueue>) {
    let never_declared = queue
        .topology()
        .subscription_queue("never-declared")
        .unwrap();
    let error = queue.consume(&never_declared, 1).await.err().unwrap();
    assert!(
        matches!(&error, QueueError::UnknownQueue { queue } if queue == never_declared.as_str()),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    // The queue stays usable.
    publish_task(&*queue, &task_message("after", 0)).await;
    let mut stream = queue
        .consume(&queue.topology().execute_queue(), 1)
        .await
        .unwrap();
    next_delivery(&mut stream).await.ack().await.unwrap();
}

pub async fn invalid_arguments_are_refused(queue: Arc<dyn MessageQueue>) {
    assert!(Priority::new(11).is_err());
    let message = task_message("x", 0);
    assert!(invalid(
        queue
            .publish(&Destination::event("approval.*.x"), &message)
            .await
    ));
    assert!(invalid(
        queue.publish(&Destination::event(""), &message).await
    ));
    let long_id = message.clone().with_id("x".repeat(256));
    assert!(invalid(
        queue.publish(&Destination::ExecuteQueue, &long_id).await
    ));
    assert!(invalid(
        queue.consume(&queue.topology().execute_queue(), 0).await
    ));
    assert!(invalid(queue.declare_subscription("", &["task.*"]).await));
    assert!(invalid(
        queue.declare_subscription("a.dead", &["task.*"]).await
    ));
}

pub async fn check_ready_succeeds(queue: Arc<dyn MessageQueue>) {
    queue.check_ready().await.unwrap();
}

fn invalid<T>(result: Result<T, QueueError>) -> bool {
    matches!(result, Err(QueueError::InvalidArgument { .. }))
}
