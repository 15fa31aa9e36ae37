//! Spans for the queue (`messaging.*` semantic conventions): a `PRODUCER` span per publish and a
//! `CONSUMER` span per delivery processed, with the trace context carried in the message's
//! `traceparent` header.
//!
//! How a consumer relates to the producer depends on the delay between them:
//! - event consumers ([`Relation::Child`]) react within moments of the event, so their work
//!   continues the producer's trace (an approval's event and the task service's reaction to it
//!   read as one story);
//! - the executor ([`Relation::Link`]) starts a **new trace linked** to the dispatch: an
//!   execution may start hours after its approval (a schedule, a queue backlog, a lapsed lease's
//!   re-dispatch) and may run for hours, and one trace spanning both would be
//!   kept open for that long by tail-sampling collectors and would be drawn as a mostly empty
//!   timeline; a re-dispatch would also make two executions children of one publish. The link
//!   keeps the path navigable (execution → dispatch → approval → the client's call) while each
//!   trace stays the length of the work it shows.

use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::metrics::metrics;
use super::propagation;
use crate::queue::{Destination, Message, Topology};

/// How a consumer span relates to the span that published the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The publish span is the consumer span's parent.
    Child,
    /// The consumer span starts a new trace with a link to the publish span.
    Link,
}

/// The broker name for `messaging.destination.name`: the execute queue or the events exchange
/// (with this deployment's prefix).
pub fn destination_name(topology: &Topology, destination: &Destination) -> String {
    match destination {
        Destination::ExecuteQueue => topology.execute_queue().as_str().to_string(),
        Destination::Event { .. } => topology.events_exchange(),
    }
}

/// A `PRODUCER` span for publishing `message` to `destination`, child of the current span
/// (the relay's, itself continuing the row's stored context).
pub fn publish_span(
    destination_name: &str,
    destination: &Destination,
    message: &Message,
) -> tracing::Span {
    let routing_key = match destination {
        Destination::ExecuteQueue => "",
        Destination::Event { routing_key } => routing_key.as_str(),
    };
    tracing::info_span!(
        "messaging.publish",
        otel.name = %format!("send {destination_name}"),
        otel.kind = "producer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.destination.name = %destination_name,
        messaging.rabbitmq.destination.routing_key = %routing_key,
        messaging.message.id = %message.id,
        messaging.message.type = %message.message_type,
    )
}

/// Counts one confirmed publish.
pub fn record_published(destination_name: &str) {
    metrics().messages_sent.add(
        1,
        &[
            KeyValue::new("messaging.system", "rabbitmq"),
            KeyValue::new("messaging.operation.name", "publish"),
            KeyValue::new("messaging.destination.name", destination_name.to_string()),
        ],
    );
}

/// A `CONSUMER` span for processing `message` taken from `queue`, continuing or linking to the
/// publisher's context (see [`Relation`]); counts the delivery.
pub fn process_span(queue: &str, message: &Message, relation: Relation) -> tracing::Span {
    metrics().messages_consumed.add(
        1,
        &[
            KeyValue::new("messaging.system", "rabbitmq"),
            KeyValue::new("messaging.operation.name", "process"),
            KeyValue::new("messaging.destination.name", queue.to_string()),
        ],
    );
    let span = tracing::info_span!(
        parent: None,
        "messaging.process",
        otel.name = %format!("process {queue}"),
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = %queue,
        messaging.message.id = %message.id,
        messaging.message.type = %message.message_type,
    );
    if let Some(traceparent) = message.traceparent() {
        let remote = propagation::context_from_traceparent(traceparent);
        let remote_span = remote.span().span_context().clone();
        if remote_span.is_valid() {
            match relation {
                Relation::Child => {
                    let _ = span.set_parent(remote);
                }
                Relation::Link => span.add_link(remote_span),
            }
        }
    }
    span
}
