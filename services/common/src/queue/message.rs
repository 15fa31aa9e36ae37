//! What travels on the queue: [`Message`] going out, [`Delivery`] coming in.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

use super::topology::{MAX_PRIORITY, QueueName};
use super::{QueueError, QueueResult};

/// The content type of every shadowsync message.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";

/// The header carrying the W3C trace context across the queue.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// An AMQP message priority, 0 (lowest, the default) to 10.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    /// The lowest priority, used for events.
    pub const LOWEST: Self = Self(0);
    /// The highest priority the execute queue distinguishes.
    pub const HIGHEST: Self = Self(MAX_PRIORITY);

    /// Fails with [`QueueError::InvalidArgument`] above 10.
    pub fn new(value: u8) -> QueueResult<Self> {
        if value > MAX_PRIORITY {
            return Err(QueueError::invalid(
                "priority",
                format!("{value} is above the maximum {MAX_PRIORITY}"),
            ));
        }
        Ok(Self(value))
    }

    /// The value, 0 to 10.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Priority {
    type Error = QueueError;

    fn try_from(value: u8) -> QueueResult<Self> {
        Self::new(value)
    }
}

/// One message: a protobuf payload with the AMQP properties shadowsync relies on. Always
/// published persistent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Unique id (`message_id`); a UUIDv7 unless set. Consumers may use it to drop duplicates.
    pub id: String,
    /// The AMQP `type`: the protobuf message's full name, e.g. `shadowsync.task.v1.ExecuteTask`.
    pub message_type: String,
    /// The AMQP `content_type`, `application/x-protobuf` unless set.
    pub content_type: String,
    /// Higher first on the execute queue; ignored by subscription queues (FIFO).
    pub priority: Priority,
    /// String headers, e.g. `traceparent`. Headers the broker adds that are not strings
    /// (such as `x-death`) are not carried back to consumers.
    pub headers: BTreeMap<String, String>,
    /// The encoded message.
    pub payload: Vec<u8>,
}

impl Message {
    /// A protobuf message of type `message_type` with a fresh id, priority 0 and no headers.
    pub fn new(message_type: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            message_type: message_type.into(),
            content_type: PROTOBUF_CONTENT_TYPE.to_owned(),
            priority: Priority::LOWEST,
            headers: BTreeMap::new(),
            payload: payload.into(),
        }
    }

    /// Encodes a prost message, taking the AMQP `type` from its full name.
    pub fn from_protobuf<M: prost::Message + prost::Name>(message: &M) -> Self {
        Self::new(M::full_name(), message.encode_to_vec())
    }

    /// Decodes the payload as `M`, after checking that the AMQP `type` names `M`: the
    /// consumer's first step, whose failure means a poison message (dead-letter it).
    ///
    /// Fails with [`QueueError::InvalidArgument`] (field `message type` or `payload`) when the
    /// type is another one or the bytes do not decode.
    pub fn decode_protobuf<M: prost::Message + prost::Name + Default>(&self) -> QueueResult<M> {
        let expected = M::full_name();
        if self.message_type != expected {
            return Err(QueueError::invalid(
                "message type",
                format!("expected {expected}, got {:?}", self.message_type),
            ));
        }
        M::decode(self.payload.as_slice())
            .map_err(|error| QueueError::invalid("payload", format!("not a {expected}: {error}")))
    }

    /// Sets the id (e.g. the outbox row's id, so a re-publish after a crash keeps it).
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets the priority.
    #[must_use]
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Adds or replaces a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets the `traceparent` header.
    #[must_use]
    pub fn with_traceparent(self, traceparent: impl Into<String>) -> Self {
        self.with_header(TRACEPARENT_HEADER, traceparent)
    }

    /// The `traceparent` header, if any.
    pub fn traceparent(&self) -> Option<&str> {
        self.headers.get(TRACEPARENT_HEADER).map(String::as_str)
    }

    /// Checks what AMQP would refuse (short strings are at most 255 bytes), so both backends
    /// refuse the same messages.
    pub(crate) fn validate(&self) -> QueueResult<()> {
        let short = [
            ("message id", &self.id),
            ("message type", &self.message_type),
            ("content type", &self.content_type),
        ];
        for (field, value) in short {
            if value.is_empty() || value.len() > 255 {
                return Err(QueueError::invalid(field, "must be 1 to 255 bytes long"));
            }
        }
        if let Some(name) = self
            .headers
            .keys()
            .find(|name| name.is_empty() || name.len() > 255)
        {
            return Err(QueueError::invalid(
                "header name",
                format!("{name:?} must be 1 to 255 bytes long"),
            ));
        }
        Ok(())
    }
}

/// What a consumer decided about a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Done: remove the message.
    Ack,
    /// Put it back where it was, marked redelivered.
    Requeue,
    /// Poison: move it to the queue's dead-letter queue.
    DeadLetter,
}

/// A backend's handle on one unsettled delivery.
#[async_trait]
pub(crate) trait Settle: Send + Sync {
    /// Records the outcome; on an error the message stays unsettled and comes back later.
    async fn settle(&self, outcome: Outcome) -> QueueResult<()>;

    /// The delivery was dropped unsettled: hand the message back (without waiting).
    fn release(&self);
}

/// A message received from a queue. Settle it with exactly one of [`Delivery::ack`],
/// [`Delivery::nack_requeue`] or [`Delivery::reject_to_dead_letter`]; a delivery dropped
/// unsettled is handed back and delivered again with `redelivered() == true`, as is every
/// unsettled delivery of a consumer (or a process) that goes away.
pub struct Delivery {
    message: Message,
    redelivered: bool,
    queue: QueueName,
    routing_key: String,
    settlement: Option<Box<dyn Settle>>,
}

impl Delivery {
    pub(crate) fn new(
        message: Message,
        redelivered: bool,
        queue: QueueName,
        routing_key: String,
        settlement: Box<dyn Settle>,
    ) -> Self {
        Self {
            message,
            redelivered,
            queue,
            routing_key,
            settlement: Some(settlement),
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Whether it was delivered before (to a consumer that did not ack it): the consumer must be
    /// idempotent anyway, this is a hint for logs.
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// The queue it came from.
    pub fn queue(&self) -> &QueueName {
        &self.queue
    }

    /// The routing key it was published with (the event's key, or the queue name for the
    /// execute queue).
    pub fn routing_key(&self) -> &str {
        &self.routing_key
    }

    /// Done with it: the message is removed. On an error the outcome was not recorded and the
    /// message will be delivered again (at-least-once).
    pub async fn ack(self) -> QueueResult<()> {
        self.settle(Outcome::Ack).await
    }

    /// Hand it back to be delivered again (to this or another consumer), at its place in the
    /// queue, marked redelivered. Fails as [`Delivery::ack`] does.
    pub async fn nack_requeue(self) -> QueueResult<()> {
        self.settle(Outcome::Requeue).await
    }

    /// A poison message: move it to the queue's dead-letter queue (`<queue>.dead`) for a person
    /// to look at. Fails as [`Delivery::ack`] does.
    pub async fn reject_to_dead_letter(self) -> QueueResult<()> {
        self.settle(Outcome::DeadLetter).await
    }

    async fn settle(mut self, outcome: Outcome) -> QueueResult<()> {
        let Some(settlement) = self.settlement.take() else {
            return Ok(());
        };
        let result = settlement.settle(outcome).await;
        if result.is_err() {
            // Not recorded: make sure the message is handed back rather than stuck.
            settlement.release();
        }
        result
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(settlement) = self.settlement.take() {
            settlement.release();
        }
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Delivery")
            .field("queue", &self.queue)
            .field("routing_key", &self.routing_key)
            .field("redelivered", &self.redelivered)
            .field("message_id", &self.message.id)
            .field("message_type", &self.message.message_type)
            .field("priority", &self.message.priority)
            .finish()
    }
}

/// The deliveries of one consumer. It never ends by itself: an `Err` item reports trouble (a
/// lost connection) and the stream then resubscribes on its own, with backoff. Dropping it
/// cancels the consumer; its unsettled deliveries can still be settled.
pub type DeliveryStream = Pin<Box<dyn Stream<Item = QueueResult<Delivery>> + Send>>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of `shadowsync.common.v1.ExecuteTask` (this crate does not depend on the
    /// generated code).
    #[derive(Clone, PartialEq, prost::Message)]
    struct ExecuteTask {
        #[prost(int64, tag = "1")]
        task_id: i64,
        #[prost(uint32, tag = "2")]
        attempt: u32,
        #[prost(uint32, tag = "3")]
        priority: u32,
    }

    impl prost::Name for ExecuteTask {
        const NAME: &'static str = "ExecuteTask";
        const PACKAGE: &'static str = "shadowsync.common.v1";
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct ExecutionDispatched {
        #[prost(string, tag = "1")]
        event_id: String,
    }

    impl prost::Name for ExecutionDispatched {
        const NAME: &'static str = "ExecutionDispatched";
        const PACKAGE: &'static str = "shadowsync.common.v1";
    }

    #[test]
    fn protobuf_messages_round_trip_and_name_their_type() {
        let task = ExecuteTask {
            task_id: 42,
            attempt: 1,
            priority: 9,
        };
        let message = Message::from_protobuf(&task).with_priority(Priority::new(9).unwrap());
        assert_eq!(message.message_type, "shadowsync.common.v1.ExecuteTask");
        assert_eq!(message.content_type, PROTOBUF_CONTENT_TYPE);
        assert_eq!(message.decode_protobuf::<ExecuteTask>().unwrap(), task);
        assert!(matches!(
            message.decode_protobuf::<ExecutionDispatched>(),
            Err(QueueError::InvalidArgument {
                field: "message type",
                ..
            })
        ));
        let garbage = Message::new("shadowsync.common.v1.ExecuteTask", vec![0xff, 0xff, 0xff]);
        assert!(matches!(
            garbage.decode_protobuf::<ExecuteTask>(),
            Err(QueueError::InvalidArgument {
                field: "payload",
                ..
            })
        ));
    }

    #[test]
    fn priorities_stop_at_ten() {
        assert_eq!(Priority::new(10).unwrap(), Priority::HIGHEST);
        assert!(Priority::new(11).is_err());
        assert!(Priority::try_from(0).is_ok());
    }

    #[test]
    fn messages_amqp_cannot_carry_are_refused() {
        assert!(Message::new("t", vec![]).validate().is_ok());
        assert!(Message::new("", vec![]).validate().is_err());
        assert!(
            Message::new("t", vec![])
                .with_id("x".repeat(256))
                .validate()
                .is_err()
        );
        assert!(
            Message::new("t", vec![])
                .with_header("", "v")
                .validate()
                .is_err()
        );
    }
}
