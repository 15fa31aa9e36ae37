//! The queue abstraction: one small trait,
//! [`MessageQueue`], with two implementations that keep the same promises:
//!
//! - [`AmqpQueue`]: RabbitMQ through lapin, for production;
//! - [`InProcessQueue`]: a queue persisted in SQLite, for the embedded mode (`serve all`), so
//!   that a restart of the single process loses nothing.
//!
//! # What both guarantee, and why
//!
//! - **Confirmed publishing.** [`MessageQueue::publish`] returns `Ok` only once the message is
//!   stored durably (a RabbitMQ publisher confirm of a persistent message; a committed SQLite
//!   row). The outbox relays (§2) mark a row sent only after that, so a crash or a broker outage
//!   never loses a dispatch or an event. Publishing never hangs: without a confirm in time it
//!   fails with a retryable [`QueueError::Unavailable`], and the next call reconnects.
//! - **At-least-once delivery.** A [`Delivery`] stays owned by its consumer until it is acked,
//!   requeued or dead-lettered. One dropped unsettled, or held by a consumer or process that
//!   goes away, is delivered again with [`Delivery::redelivered`] set. Consumers are therefore
//!   idempotent (the executor's claim makes a duplicate harmless, §6).
//! - **Priority.** The execute queue delivers higher priorities first (0–10, `x-max-priority`
//!   = 10), FIFO within a priority, among the messages waiting when a consumer asks for more.
//!   With a prefetch of 1 (the executors' default) a worker therefore always takes the most
//!   urgent waiting task: the approval template's rank decides (§4). Subscription queues are
//!   FIFO.
//! - **Dead-lettering.** [`Delivery::reject_to_dead_letter`] moves a poison message to the
//!   queue's `<queue>.dead` (for the execute queue, through the `shadowsync.dlx` exchange into
//!   `shadowsync.execute.dead`), so one bad payload never blocks or crashes a consumer loop, and
//!   stays there for a person to inspect.
//! - **Topic routing.** Events go to the `shadowsync.events` topic exchange with routing keys
//!   `task.<status>`, `approval.<event>.<request_type>`, `execution.dispatched`,
//!   `permission.<event>`; [`MessageQueue::declare_subscription`] binds a durable queue to
//!   patterns (`*` = one word, `#` = any number of words) so any service can listen to exactly
//!   its own events. An event no queue is bound to is dropped, as RabbitMQ does.
//! - **Prefix.** Every queue and exchange name starts with [`Topology::prefix`], so tests and
//!   tenants sharing a broker never collide.
//! - **Survival.** A lost RabbitMQ connection is re-established, and the topology re-declared,
//!   by the next call; a consumer stream reports the loss as an `Err` item and resubscribes by
//!   itself. A broker that goes silent without closing the socket is caught by the operation
//!   timeout on publishing, and by AMQP heartbeats on consuming (`?heartbeat=10` in the URI
//!   shortens RabbitMQ's default of 60 s). The in-process queue hands back, when its file is
//!   opened again, every delivery the previous process left unsettled.
//!
//! # Using it
//!
//! ```no_run
//! # use shadowsync_common::queue::*;
//! # async fn example<ExecuteTask>(queue: std::sync::Arc<dyn MessageQueue>, task: ExecuteTask)
//! # -> QueueResult<()> where ExecuteTask: prost::Message + prost::Name + Default {
//! use futures::StreamExt;
//!
//! // Dispatch (the approval service's outbox relay): returns once the broker confirmed.
//! // `task` is a `shadowsync_proto::common::v1::ExecuteTask`.
//! let message = Message::from_protobuf(&task)
//!     .with_id("outbox-row-17") // stable across re-publishing, so consumers can deduplicate
//!     .with_priority(Priority::new(9)?)
//!     .with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
//! queue.publish(&Destination::ExecuteQueue, &message).await?;
//!
//! // An executor: one delivery at a time, so priority order holds.
//! let mut deliveries = queue.consume(&queue.topology().execute_queue(), 1).await?;
//! while let Some(delivery) = deliveries.next().await {
//!     let Ok(delivery) = delivery else { continue }; // reconnecting by itself
//!     let Ok(task) = delivery.message().decode_protobuf::<ExecuteTask>() else {
//!         delivery.reject_to_dead_letter().await?; // poison: park it, go on
//!         continue;
//!     };
//!     // ... claim the task, then:
//!     delivery.ack().await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - `topology`: names, destinations and topic matching;
//! - `message`: [`Message`], [`Priority`], [`Delivery`] and [`DeliveryStream`];
//! - `error`: [`QueueError`];
//! - `amqp`: the lapin implementation (connection and topology in `session`, consumers and
//!   their acks in `consumer`);
//! - `in_process`: the SQLite implementation (the SQL in `storage`, consumers in `consumer`);
//! - [`open`]: the one the configuration asks for.

mod amqp;
mod error;
mod in_process;
mod message;
mod topology;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::QueueConfig;

pub use amqp::{AmqpQueue, AmqpQueueOptions};
pub use error::{QueueError, QueueResult};
pub use in_process::InProcessQueue;
pub use message::{
    Delivery, DeliveryStream, Message, PROTOBUF_CONTENT_TYPE, Priority, TRACEPARENT_HEADER,
};
pub use topology::{Destination, MAX_PRIORITY, QueueName, Topology, topic_matches};

/// A message queue with confirmed publishing, at-least-once delivery, priorities,
/// dead-lettering and topic routing, behind which RabbitMQ or the in-process queue sits.
/// Services hold an `Arc<dyn MessageQueue>`.
#[async_trait]
pub trait MessageQueue: Send + Sync + 'static {
    /// The names this queue uses.
    fn topology(&self) -> &Topology;

    /// Publishes `message` persistently and returns once it is stored durably (publisher
    /// confirm).
    ///
    /// Fails with a retryable [`QueueError::Unavailable`] when the broker cannot be reached or
    /// does not confirm within the operation timeout (the message may or may not have been
    /// stored: publish again, consumers are idempotent), [`QueueError::NotConfirmed`] on a
    /// negative confirm, [`QueueError::Unroutable`] if the execute queue is missing, and
    /// [`QueueError::InvalidArgument`] for a value AMQP cannot carry.
    async fn publish(&self, destination: &Destination, message: &Message) -> QueueResult<()>;

    /// Starts consuming `queue` with at most `prefetch` (≥ 1) unsettled deliveries at a time.
    ///
    /// Fails with [`QueueError::UnknownQueue`] if the queue was not declared, or
    /// [`QueueError::Unavailable`] if the first subscription cannot be made; later connection
    /// losses are reported in the stream, which resubscribes by itself.
    async fn consume(&self, queue: &QueueName, prefetch: u16) -> QueueResult<DeliveryStream>;

    /// Declares the durable queue `<prefix><name>` (and its `<prefix><name>.dead`) and binds it
    /// to the events exchange with each of `routing_patterns`; returns its name for
    /// [`MessageQueue::consume`]. Idempotent, and bindings only accumulate: a pattern dropped
    /// from the list stays bound.
    ///
    /// Fails with [`QueueError::InvalidArgument`] for a bad name or pattern, or as
    /// [`MessageQueue::publish`] does when the broker is unreachable.
    async fn declare_subscription(
        &self,
        name: &str,
        routing_patterns: &[&str],
    ) -> QueueResult<QueueName>;

    /// Whether the queue can be used now (for health reporting): connects if needed, within the
    /// connect timeout. Fails with [`QueueError::Unavailable`] otherwise.
    async fn check_ready(&self) -> QueueResult<()>;

    /// Lets go of the broker connection or the SQLite file at shutdown, after the consumers
    /// are dropped. Unsettled deliveries come back later, as after a crash.
    async fn close(&self);
}

/// The file the in-process queue keeps under the data directory.
pub const IN_PROCESS_QUEUE_FILE: &str = "queue.sqlite";

/// The queue `config` asks for: RabbitMQ when `queue.url` is set (not connected yet, see
/// [`AmqpQueue::new`]), otherwise the in-process queue in `<data_dir>/queue.sqlite` (the
/// embedded mode). Names take `queue.prefix`.
///
/// Fails with [`QueueError::InvalidArgument`] for an unparsable URL, or
/// [`QueueError::Storage`] when the SQLite file cannot be created or opened.
pub async fn open(config: &QueueConfig, data_dir: &Path) -> QueueResult<Arc<dyn MessageQueue>> {
    let topology = Topology::new(config.prefix.clone());
    match &config.url {
        Some(url) => {
            let mut options = AmqpQueueOptions::new(url.expose().clone(), topology);
            if let Some(path) = &config.tls_ca {
                let pem = tokio::fs::read_to_string(path).await.map_err(|error| {
                    QueueError::InvalidArgument {
                        field: "queue.tls_ca",
                        reason: format!("{}: {error}", path.display()),
                    }
                })?;
                options = options.with_tls_ca(pem);
            }
            Ok(Arc::new(AmqpQueue::new(options)?))
        }
        None => {
            tokio::fs::create_dir_all(data_dir)
                .await
                .map_err(|error| QueueError::Storage(sqlx::Error::Io(error)))?;
            let path = data_dir.join(IN_PROCESS_QUEUE_FILE);
            Ok(Arc::new(InProcessQueue::open(&path, topology).await?))
        }
    }
}
