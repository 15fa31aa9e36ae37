//! Shared pieces of the queue tests: backends with unique names, helpers to read a stream with
//! a deadline, and a TCP proxy that can cut the connection to RabbitMQ.

pub mod suite;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use shadowsync_common::queue::{
    AmqpQueue, AmqpQueueOptions, Delivery, DeliveryStream, Destination, InProcessQueue, Message,
    MessageQueue, Priority, Topology,
};

/// How long a test waits for a delivery that must come.
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);

/// How long a test waits to be confident a delivery will not come.
pub const QUIET_PERIOD: Duration = Duration::from_millis(500);

/// The shared RabbitMQ of the dev machine and CI.
pub fn amqp_uri() -> String {
    std::env::var("SHADOWSYNC_TEST_AMQP_URI")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Names no other test or run uses; queues left behind by a crashed test expire on their own.
pub fn unique_topology() -> Topology {
    Topology::new(format!("test-{}.", uuid::Uuid::new_v4()))
        .expire_unused_after(Duration::from_secs(300))
}

/// A backend under test and how to clean it up.
pub struct Harness {
    pub queue: Arc<dyn MessageQueue>,
    cleanup: Option<BoxFuture<'static, ()>>,
}

/// A RabbitMQ queue with unique names, deleted at the end of the test.
pub async fn open_amqp(topology: Topology) -> Harness {
    let queue = AmqpQueue::new(AmqpQueueOptions::new(amqp_uri(), topology)).unwrap();
    let cleanup_queue = queue.clone();
    Harness {
        queue: Arc::new(queue),
        cleanup: Some(Box::pin(async move {
            cleanup_queue.delete_topology().await.unwrap();
            cleanup_queue.close().await;
        })),
    }
}

/// An in-process queue in `sqlite::memory:`.
pub async fn open_in_process(topology: Topology) -> Harness {
    Harness {
        queue: Arc::new(InProcessQueue::in_memory(topology).await.unwrap()),
        cleanup: None,
    }
}

/// Runs one conformance test on a fresh backend and cleans up even when it panics.
pub async fn run<Open, Opened, Test, Tested>(open: Open, test: Test)
where
    Open: FnOnce(Topology) -> Opened,
    Opened: Future<Output = Harness>,
    Test: FnOnce(Arc<dyn MessageQueue>) -> Tested,
    Tested: Future<Output = ()> + Send + 'static,
{
    let harness = open(unique_topology()).await;
    let outcome = tokio::spawn(test(Arc::clone(&harness.queue))).await;
    if let Some(cleanup) = harness.cleanup {
        cleanup.await;
    }
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// The next delivery, failing the test if none comes within [`DELIVERY_DEADLINE`].
pub async fn next_delivery(stream: &mut DeliveryStream) -> Delivery {
    tokio::time::timeout(DELIVERY_DEADLINE, stream.next())
        .await
        .expect("no delivery in time")
        .expect("the stream never ends")
        .expect("a delivery, not an error")
}

/// Fails the test if a delivery arrives within [`QUIET_PERIOD`].
pub async fn assert_no_delivery(stream: &mut DeliveryStream) {
    if let Ok(item) = tokio::time::timeout(QUIET_PERIOD, stream.next()).await {
        panic!("expected no delivery, got {item:?}");
    }
}

/// An `ExecuteTask`-like message with a recognisable payload.
pub fn task_message(label: &str, priority: u8) -> Message {
    Message::new("shadowsync.queue.v1.TestMessage", label.as_bytes().to_vec())
        .with_priority(Priority::new(priority).unwrap())
        .with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
}

/// Publishes `message` to the execute queue, failing the test on error.
pub async fn publish_task(queue: &dyn MessageQueue, message: &Message) {
    queue
        .publish(&Destination::ExecuteQueue, message)
        .await
        .expect("publish confirmed");
}

/// The payload as text.
pub fn label(delivery: &Delivery) -> String {
    String::from_utf8(delivery.message().payload.clone()).unwrap()
}
