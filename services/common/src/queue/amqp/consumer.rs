//! A consumer: its own channel with its prefetch, resubscribed after the connection dies, and
//! the settlement of its deliveries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Acker, Channel};
use tokio::time::timeout;
use tracing::{debug, warn};

use super::session::map_error;
use super::{AmqpQueue, short};
use crate::queue::message::{Outcome, Settle};
use crate::queue::topology::MAX_PRIORITY;
use crate::queue::{
    Delivery, DeliveryStream, Message, Priority, QueueError, QueueName, QueueResult,
};

/// The first pause before resubscribing; it doubles up to the configured maximum.
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(100);

pub(super) struct AmqpConsumer {
    queue: AmqpQueue,
    name: QueueName,
    prefetch: u16,
    /// The channel (kept for the deliveries' acks) and its consumer, while subscribed.
    subscription: Option<(Channel, lapin::Consumer)>,
    /// Consecutive failed subscriptions, for the backoff.
    failures: u32,
}

impl AmqpConsumer {
    /// Subscribes once, so that a missing queue or an unreachable broker is reported to the
    /// caller of `consume` rather than only in the stream.
    pub(super) async fn subscribe(
        queue: AmqpQueue,
        name: QueueName,
        prefetch: u16,
    ) -> QueueResult<Self> {
        let mut consumer = Self {
            queue,
            name,
            prefetch,
            subscription: None,
            failures: 0,
        };
        consumer.subscription = Some(consumer.open_subscription().await?);
        Ok(consumer)
    }

    pub(super) fn into_stream(self) -> DeliveryStream {
        Box::pin(futures::stream::unfold(self, |mut consumer| async move {
            let item = consumer.next().await;
            Some((item, consumer))
        }))
    }

    async fn open_subscription(&self) -> QueueResult<(Channel, lapin::Consumer)> {
        let (name, prefetch) = (&self.name, self.prefetch);
        let subscribed = self
            .queue
            .with_session("consume", |session| async move {
                let channel = session
                    .connection()
                    .create_channel()
                    .await
                    .map_err(|error| map_error("open channel", error))?;
                channel
                    .basic_qos(prefetch, BasicQosOptions::default())
                    .await
                    .map_err(|error| map_error("set prefetch", error))?;
                let consumer = channel
                    .basic_consume(
                        short("queue", name.to_string())?,
                        "".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|error| map_error("consume", error))?;
                Ok((channel, consumer))
            })
            .await;
        match subscribed {
            // The broker's message names the queue in prose; report it by name.
            Err(QueueError::UnknownQueue { .. }) => Err(QueueError::UnknownQueue {
                queue: self.name.to_string(),
            }),
            other => other,
        }
    }

    async fn next(&mut self) -> QueueResult<Delivery> {
        loop {
            let Some((channel, consumer)) = self.subscription.as_mut() else {
                self.pause_before_retry().await;
                match self.open_subscription().await {
                    Ok(subscription) => {
                        debug!(queue = %self.name, "amqp consumer resubscribed");
                        self.subscription = Some(subscription);
                        self.failures = 0;
                        continue;
                    }
                    Err(error) => {
                        self.failures = self.failures.saturating_add(1);
                        return Err(error);
                    }
                }
            };
            let error = match consumer.next().await {
                Some(Ok(delivery)) => return Ok(to_delivery(delivery, channel.clone(), self)),
                Some(Err(error)) => map_error("consume", error),
                None => QueueError::unavailable("consume", "the broker cancelled the consumer"),
            };
            warn!(queue = %self.name, %error, "amqp consumer lost its subscription");
            self.subscription = None;
            self.failures = self.failures.saturating_add(1);
            return Err(error);
        }
    }

    async fn pause_before_retry(&self) {
        if self.failures == 0 {
            return;
        }
        let doublings = self.failures.saturating_sub(1).min(16);
        let delay = FIRST_RECONNECT_DELAY
            .saturating_mul(2_u32.saturating_pow(doublings))
            .min(self.queue.inner.options.max_reconnect_delay);
        tokio::time::sleep(delay).await;
    }
}

fn to_delivery(
    delivery: lapin::message::Delivery,
    channel: Channel,
    consumer: &AmqpConsumer,
) -> Delivery {
    let properties = &delivery.properties;
    let text = |value: &Option<lapin::types::ShortString>| {
        value.as_ref().map(ToString::to_string).unwrap_or_default()
    };
    let priority = properties.priority().unwrap_or(0).min(MAX_PRIORITY);
    let message = Message {
        id: text(properties.message_id()),
        message_type: text(properties.kind()),
        content_type: text(properties.content_type()),
        priority: Priority::new(priority).unwrap_or(Priority::HIGHEST),
        headers: properties
            .headers()
            .as_ref()
            .map(string_headers)
            .unwrap_or_default(),
        payload: delivery.data,
    };
    let settlement = AmqpSettlement {
        acker: delivery.acker,
        channel,
        operation_timeout: consumer.queue.inner.options.operation_timeout,
        finished: AtomicBool::new(false),
    };
    Delivery::new(
        message,
        delivery.redelivered,
        consumer.name.clone(),
        delivery.routing_key.to_string(),
        Box::new(settlement),
    )
}

/// The string-valued headers; others (such as the broker's `x-death` table) are left out.
fn string_headers(headers: &FieldTable) -> BTreeMap<String, String> {
    headers
        .inner()
        .iter()
        .filter_map(|(name, value)| {
            let value = match value {
                AMQPValue::LongString(value) => {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                }
                AMQPValue::ShortString(value) => value.to_string(),
                _ => return None,
            };
            Some((name.to_string(), value))
        })
        .collect()
}

struct AmqpSettlement {
    acker: Acker,
    /// Keeps the channel open until the delivery is settled, even after the consumer is
    /// dropped: closing it would hand the message back behind the settler's back.
    channel: Channel,
    operation_timeout: Duration,
    finished: AtomicBool,
}

#[async_trait]
impl Settle for AmqpSettlement {
    async fn settle(&self, outcome: Outcome) -> QueueResult<()> {
        let operation = match outcome {
            Outcome::Ack => "ack",
            Outcome::Requeue => "nack",
            Outcome::DeadLetter => "reject",
        };
        let sent = async {
            match outcome {
                Outcome::Ack => self.acker.ack(BasicAckOptions::default()).await,
                Outcome::Requeue => {
                    self.acker
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        })
                        .await
                }
                Outcome::DeadLetter => {
                    self.acker
                        .reject(BasicRejectOptions { requeue: false })
                        .await
                }
            }
        };
        match timeout(self.operation_timeout, sent).await {
            Ok(Ok(true)) => {
                self.finished.store(true, Ordering::Release);
                Ok(())
            }
            Ok(Ok(false)) => Err(QueueError::unavailable(
                operation,
                "the delivery's channel is closed; the broker will deliver it again",
            )),
            Ok(Err(error)) => Err(map_error(operation, error)),
            Err(_) => Err(QueueError::unavailable(
                operation,
                format!("no answer within {:?}", self.operation_timeout),
            )),
        }
    }

    fn release(&self) {
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime: the process is going away and the broker requeues when the
            // connection closes.
            return;
        };
        let acker = self.acker.clone();
        let channel = self.channel.clone();
        runtime.spawn(async move {
            let requeue = BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            };
            if let Err(error) = acker.nack(requeue).await {
                debug!(%error, "dropped delivery not nacked; the broker requeues it on close");
            }
            drop(channel);
        });
    }
}
