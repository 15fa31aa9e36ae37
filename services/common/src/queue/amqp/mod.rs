//! The RabbitMQ implementation, on lapin 4 with the tokio runtime.
//!
//! One connection per [`AmqpQueue`], opened lazily and re-opened after it dies (lapin does not
//! recover connections by itself unless asked, and its recovery replays consumers behind our
//! back; doing it here keeps the one rule simple: *any call on a dead connection reconnects and
//! re-declares the topology first*). Publishing uses one channel in confirm mode; each consumer
//! has its own channel so its prefetch is its own and closing it hands its unacked messages
//! back. Every broker round trip runs under a timeout, so nothing waits forever on a broker that
//! stopped answering.

mod consumer;
mod session;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Confirmation};
use tokio::time::{Instant, timeout_at};

use super::topology::validate_binding_pattern;
use super::{
    DeliveryStream, Destination, Message, MessageQueue, QueueError, QueueName, QueueResult,
    Topology,
};
use consumer::AmqpConsumer;
use session::{Session, SessionSlot};

/// AMQP delivery mode 2: the broker writes the message to disk before confirming it.
const PERSISTENT: u8 = 2;

/// How to reach RabbitMQ and how long to wait for it.
#[derive(Clone)]
pub struct AmqpQueueOptions {
    /// `amqp://user:password@host:port/vhost` (or `amqps://`). Never logged.
    pub uri: String,
    /// The names to declare and use.
    pub topology: Topology,
    /// Longest wait for a TCP + AMQP handshake and the topology declarations (default 5 s).
    pub connect_timeout: Duration,
    /// Longest wait for any one operation, connecting included: a publish and its confirm, a
    /// subscription, an ack (default 10 s).
    pub operation_timeout: Duration,
    /// Longest pause between two resubscription attempts of a consumer (default 5 s; the pause
    /// doubles from 100 ms up to this).
    pub max_reconnect_delay: Duration,
    /// The connection name shown in the RabbitMQ management UI.
    pub connection_name: String,
    /// PEM CA bundle that signs the broker's certificate, for `amqps://` (`queue.tls_ca`),
    /// trusted beside the system's roots.
    pub tls_ca: Option<String>,
}

impl AmqpQueueOptions {
    /// Options with the default timeouts.
    pub fn new(uri: impl Into<String>, topology: Topology) -> Self {
        Self {
            uri: uri.into(),
            topology,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(10),
            max_reconnect_delay: Duration::from_secs(5),
            connection_name: "shadowsync".to_owned(),
            tls_ca: None,
        }
    }

    /// Sets the CA bundle (PEM) that signs the broker's certificate, for `amqps://`.
    #[must_use]
    pub fn with_tls_ca(mut self, pem: impl Into<String>) -> Self {
        self.tls_ca = Some(pem.into());
        self
    }

    /// Sets the connect timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// Sets the operation timeout.
    #[must_use]
    pub fn with_operation_timeout(mut self, operation_timeout: Duration) -> Self {
        self.operation_timeout = operation_timeout;
        self
    }

    /// Sets the longest pause between resubscription attempts.
    #[must_use]
    pub fn with_max_reconnect_delay(mut self, max_reconnect_delay: Duration) -> Self {
        self.max_reconnect_delay = max_reconnect_delay;
        self
    }

    /// Sets the connection name.
    #[must_use]
    pub fn with_connection_name(mut self, connection_name: impl Into<String>) -> Self {
        self.connection_name = connection_name.into();
        self
    }
}

impl std::fmt::Debug for AmqpQueueOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URI carries the password.
        formatter
            .debug_struct("AmqpQueueOptions")
            .field("topology", &self.topology)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_reconnect_delay", &self.max_reconnect_delay)
            .field("connection_name", &self.connection_name)
            .field("tls_ca", &self.tls_ca.is_some())
            .finish_non_exhaustive()
    }
}

/// The RabbitMQ [`MessageQueue`]. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct AmqpQueue {
    inner: Arc<Inner>,
}

struct Inner {
    options: AmqpQueueOptions,
    session: SessionSlot,
    /// Declared subscriptions, re-declared on every new connection: `x-expires` may have
    /// removed a queue while nobody was connected.
    subscriptions: Mutex<BTreeMap<QueueName, BTreeSet<String>>>,
}

impl AmqpQueue {
    /// A queue for the broker at `options.uri`. Does not connect: the first call (or
    /// [`MessageQueue::check_ready`]) does, so a service can start while RabbitMQ is down and
    /// report NOT_SERVING until it is reachable.
    ///
    /// Fails with [`QueueError::InvalidArgument`] if the URI cannot be parsed (the message does
    /// not repeat the URI, which holds a password).
    pub fn new(options: AmqpQueueOptions) -> QueueResult<Self> {
        lapin::uri::AMQPUri::from_str(&options.uri)
            .map_err(|_| QueueError::invalid("amqp uri", "not a valid amqp:// or amqps:// URI"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                options,
                session: SessionSlot::default(),
                subscriptions: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    /// Deletes every queue and exchange of this topology (the execute queue, the declared
    /// subscriptions, their dead-letter queues, both exchanges), messages included. For tests
    /// on a shared broker and for decommissioning a tenant.
    ///
    /// Fails with [`QueueError::Unavailable`] if the broker cannot be reached, or
    /// [`QueueError::Refused`] if the names exist with other arguments (connecting declares the
    /// topology first).
    pub async fn delete_topology(&self) -> QueueResult<()> {
        let subscriptions: Vec<QueueName> = self.subscriptions().into_keys().collect();
        let topology = &self.inner.options.topology;
        self.with_session("delete topology", |session| async move {
            session.delete_topology(topology, &subscriptions).await
        })
        .await
    }

    /// Runs `work` on a live session, connecting first if needed, all within the operation
    /// timeout. Connection trouble (including no answer in time) discards the session, so the
    /// next call reconnects instead of waiting on a dead socket until a heartbeat notices.
    async fn with_session<T, Work, Working>(
        &self,
        operation: &'static str,
        work: Work,
    ) -> QueueResult<T>
    where
        Work: FnOnce(Session) -> Working,
        Working: Future<Output = QueueResult<T>>,
    {
        let deadline = Instant::now() + self.inner.options.operation_timeout;
        let session = timeout_at(deadline, self.session())
            .await
            .map_err(|_| self.timed_out(operation))??;
        let result = timeout_at(deadline, work(session.clone()))
            .await
            .unwrap_or_else(|_| Err(self.timed_out(operation)));
        if matches!(result, Err(QueueError::Unavailable { .. })) {
            self.discard(session);
        }
        result
    }

    async fn session(&self) -> QueueResult<Session> {
        let subscriptions = self.subscriptions();
        self.inner
            .session
            .get_or_connect(&self.inner.options, &subscriptions)
            .await
    }

    /// Forgets `session` in the background: the caller's deadline has passed, and waiting for
    /// the slot (busy while someone connects) would only make it later.
    fn discard(&self, session: Session) {
        let queue = self.clone();
        tokio::spawn(async move { queue.inner.session.discard(&session).await });
    }

    fn subscriptions(&self) -> BTreeMap<QueueName, BTreeSet<String>> {
        self.inner
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn timed_out(&self, operation: &'static str) -> QueueError {
        QueueError::unavailable(
            operation,
            format!(
                "no answer within {:?}",
                self.inner.options.operation_timeout
            ),
        )
    }
}

/// Publishes on `session` and waits for the broker's confirm.
async fn publish_confirmed(
    session: &Session,
    topology: &Topology,
    destination: &Destination,
    message: &Message,
) -> QueueResult<()> {
    let (exchange, routing_key, mandatory) = match destination {
        // The default exchange routes by queue name; `mandatory` turns a missing queue into a
        // returned message instead of a silent drop.
        Destination::ExecuteQueue => (String::new(), topology.execute_queue().to_string(), true),
        Destination::Event { routing_key } => {
            (topology.events_exchange(), routing_key.clone(), false)
        }
    };
    let confirm = session
        .publisher()
        .basic_publish(
            short("exchange", exchange)?,
            short("routing key", routing_key)?,
            BasicPublishOptions {
                mandatory,
                ..BasicPublishOptions::default()
            },
            &message.payload,
            properties(message)?,
        )
        .await
        .map_err(|error| session::map_error("publish", error))?
        .await
        .map_err(|error| session::map_error("publish confirm", error))?;
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) => Err(QueueError::Unroutable {
            message_id: message.id.clone(),
            destination: destination.to_string(),
        }),
        Confirmation::Nack(_) | Confirmation::NotRequested => Err(QueueError::NotConfirmed {
            message_id: message.id.clone(),
        }),
    }
}

#[async_trait]
impl MessageQueue for AmqpQueue {
    fn topology(&self) -> &Topology {
        &self.inner.options.topology
    }

    async fn publish(&self, destination: &Destination, message: &Message) -> QueueResult<()> {
        destination.validate()?;
        message.validate()?;
        let topology = &self.inner.options.topology;
        self.with_session("publish", |session| async move {
            publish_confirmed(&session, topology, destination, message).await
        })
        .await
    }

    async fn consume(&self, queue: &QueueName, prefetch: u16) -> QueueResult<DeliveryStream> {
        if prefetch == 0 {
            return Err(QueueError::invalid("prefetch", "must be at least 1"));
        }
        let consumer = AmqpConsumer::subscribe(self.clone(), queue.clone(), prefetch).await?;
        Ok(consumer.into_stream())
    }

    async fn declare_subscription(
        &self,
        name: &str,
        routing_patterns: &[&str],
    ) -> QueueResult<QueueName> {
        let topology = &self.inner.options.topology;
        let queue = topology.subscription_queue(name)?;
        for pattern in routing_patterns {
            validate_binding_pattern(pattern)?;
        }
        let patterns: BTreeSet<String> = routing_patterns
            .iter()
            .map(|pattern| (*pattern).to_owned())
            .collect();
        self.with_session("declare subscription", |session| {
            let (queue, patterns) = (&queue, &patterns);
            async move {
                session
                    .declare_subscription(topology, queue, patterns)
                    .await
            }
        })
        .await?;
        self.inner
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(queue.clone())
            .or_default()
            .extend(patterns);
        Ok(queue)
    }

    /// Ready when the broker answers a round trip (a passive declaration of the execute
    /// queue), not merely when a socket is open.
    async fn check_ready(&self) -> QueueResult<()> {
        let topology = &self.inner.options.topology;
        self.with_session("check readiness", |session| async move {
            session.check_execute_queue(topology).await
        })
        .await
    }

    /// Closes the connection politely (consumers' channels with it); a later call reconnects.
    async fn close(&self) {
        self.inner.session.close().await;
    }
}

/// The AMQP properties of `message`: persistent, typed, prioritised, with string headers.
fn properties(message: &Message) -> QueueResult<BasicProperties> {
    let mut headers = FieldTable::default();
    for (name, value) in &message.headers {
        headers.insert(
            short("header name", name.clone())?,
            AMQPValue::LongString(value.as_str().into()),
        );
    }
    Ok(BasicProperties::default()
        .with_message_id(short("message id", message.id.clone())?)
        .with_type(short("message type", message.message_type.clone())?)
        .with_content_type(short("content type", message.content_type.clone())?)
        .with_delivery_mode(PERSISTENT)
        .with_priority(message.priority.get())
        .with_headers(headers))
}

/// An AMQP short string (at most 255 bytes): lapin's `From` panics beyond that.
fn short(field: &'static str, value: String) -> QueueResult<ShortString> {
    ShortString::try_new(value).map_err(|error| QueueError::invalid(field, error.to_string()))
}
