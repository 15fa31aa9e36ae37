//! One live connection with its confirm-mode publishing channel, and the topology declarations
//! made on every new connection.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ConnectionProperties, ErrorKind, ExchangeKind};
use tokio::sync::Mutex;
use tokio::time::timeout;
use tracing::{info, warn};

use super::{AmqpQueueOptions, short};
use crate::queue::topology::MAX_PRIORITY;
use crate::queue::{QueueError, QueueName, QueueResult, Topology};

/// A connection and its publishing channel. Clones share them.
#[derive(Clone)]
pub(super) struct Session {
    connection: Arc<Connection>,
    publisher: Channel,
}

impl Session {
    pub(super) fn publisher(&self) -> &Channel {
        &self.publisher
    }

    pub(super) fn connection(&self) -> &Connection {
        &self.connection
    }

    fn is_usable(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }

    async fn open(
        options: &AmqpQueueOptions,
        subscriptions: &BTreeMap<QueueName, BTreeSet<String>>,
    ) -> QueueResult<Self> {
        let properties = ConnectionProperties::default()
            .with_connection_name(LongString::from(options.connection_name.as_str()));
        let tls = lapin::tcp::OwnedTLSConfig {
            identity: None,
            cert_chain: options.tls_ca.clone(),
        };
        let runtime =
            lapin::runtime::default_runtime().map_err(|error| map_error("connect", error))?;
        let connection = Connection::connect_with_config(&options.uri, properties, tls, runtime)
            .await
            .map_err(|error| map_error("connect", error))?;
        let publisher = connection
            .create_channel()
            .await
            .map_err(|error| map_error("open channel", error))?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|error| map_error("enable confirms", error))?;
        let session = Self {
            connection: Arc::new(connection),
            publisher,
        };
        session
            .declare_topology(&options.topology, subscriptions)
            .await?;
        Ok(session)
    }

    /// Declares the exchanges, the execute queue and every known subscription. Idempotent.
    async fn declare_topology(
        &self,
        topology: &Topology,
        subscriptions: &BTreeMap<QueueName, BTreeSet<String>>,
    ) -> QueueResult<()> {
        let exchange_options = ExchangeDeclareOptions {
            durable: true,
            auto_delete: topology.queue_expiry().is_some(),
            ..ExchangeDeclareOptions::default()
        };
        for (exchange, kind) in [
            (topology.dead_letter_exchange(), ExchangeKind::Direct),
            (topology.events_exchange(), ExchangeKind::Topic),
        ] {
            self.publisher
                .exchange_declare(
                    short("exchange", exchange)?,
                    kind,
                    exchange_options,
                    FieldTable::default(),
                )
                .await
                .map_err(|error| map_error("declare exchange", error))?;
        }
        self.declare_queue(topology, &topology.execute_queue(), true)
            .await?;
        for (queue, patterns) in subscriptions {
            self.declare_subscription(topology, queue, patterns).await?;
        }
        Ok(())
    }

    /// Declares `queue` and its dead-letter queue `<queue>.dead`, bound to the dead-letter
    /// exchange under its own name so each queue's poison stays apart.
    async fn declare_queue(
        &self,
        topology: &Topology,
        queue: &QueueName,
        prioritised: bool,
    ) -> QueueResult<()> {
        let dead_letter_queue = topology.dead_letter_queue(queue);
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let mut dead_letter_arguments = FieldTable::default();
        let mut arguments = FieldTable::default();
        if let Some(expiry) = topology.queue_expiry() {
            let milliseconds = i32::try_from(expiry.as_millis()).unwrap_or(i32::MAX).max(1);
            dead_letter_arguments.insert("x-expires".into(), AMQPValue::LongInt(milliseconds));
            arguments.insert("x-expires".into(), AMQPValue::LongInt(milliseconds));
        }
        if prioritised {
            arguments.insert(
                "x-max-priority".into(),
                AMQPValue::LongInt(i32::from(MAX_PRIORITY)),
            );
        }
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(topology.dead_letter_exchange().as_str().into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(dead_letter_queue.as_str().into()),
        );
        self.publisher
            .queue_declare(
                short("queue", dead_letter_queue.to_string())?,
                durable,
                dead_letter_arguments,
            )
            .await
            .map_err(|error| map_error("declare queue", error))?;
        self.publisher
            .queue_bind(
                short("queue", dead_letter_queue.to_string())?,
                short("exchange", topology.dead_letter_exchange())?,
                short("routing key", dead_letter_queue.to_string())?,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|error| map_error("bind queue", error))?;
        self.publisher
            .queue_declare(short("queue", queue.to_string())?, durable, arguments)
            .await
            .map_err(|error| map_error("declare queue", error))?;
        Ok(())
    }

    pub(super) async fn declare_subscription(
        &self,
        topology: &Topology,
        queue: &QueueName,
        patterns: &BTreeSet<String>,
    ) -> QueueResult<()> {
        self.declare_queue(topology, queue, false).await?;
        for pattern in patterns {
            self.publisher
                .queue_bind(
                    short("queue", queue.to_string())?,
                    short("exchange", topology.events_exchange())?,
                    short("binding pattern", pattern.clone())?,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|error| map_error("bind queue", error))?;
        }
        Ok(())
    }

    /// A round trip proving the broker answers: a passive declaration of the execute queue.
    pub(super) async fn check_execute_queue(&self, topology: &Topology) -> QueueResult<()> {
        self.publisher
            .queue_declare(
                short("queue", topology.execute_queue().to_string())?,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|error| map_error("check readiness", error))?;
        Ok(())
    }

    pub(super) async fn delete_topology(
        &self,
        topology: &Topology,
        subscriptions: &[QueueName],
    ) -> QueueResult<()> {
        let execute = topology.execute_queue();
        let queues = std::iter::once(&execute).chain(subscriptions);
        for queue in queues {
            for name in [queue.clone(), topology.dead_letter_queue(queue)] {
                self.publisher
                    .queue_delete(
                        short("queue", name.to_string())?,
                        QueueDeleteOptions::default(),
                    )
                    .await
                    .map_err(|error| map_error("delete queue", error))?;
            }
        }
        for exchange in [topology.events_exchange(), topology.dead_letter_exchange()] {
            self.publisher
                .exchange_delete(
                    short("exchange", exchange)?,
                    ExchangeDeleteOptions::default(),
                )
                .await
                .map_err(|error| map_error("delete exchange", error))?;
        }
        Ok(())
    }
}

/// The current session, if any. Connecting is single-flight: callers that find no usable
/// session wait on this async mutex while one of them connects, rather than each opening a
/// connection; the lock is held only for that, never while publishing.
#[derive(Default)]
pub(super) struct SessionSlot {
    current: Mutex<Option<Session>>,
}

impl SessionSlot {
    pub(super) async fn get_or_connect(
        &self,
        options: &AmqpQueueOptions,
        subscriptions: &BTreeMap<QueueName, BTreeSet<String>>,
    ) -> QueueResult<Session> {
        let mut current = self.current.lock().await;
        if let Some(session) = current.as_ref().filter(|session| session.is_usable()) {
            return Ok(session.clone());
        }
        if current.take().is_some() {
            warn!("amqp connection lost; reconnecting");
        }
        let session = timeout(
            options.connect_timeout,
            Session::open(options, subscriptions),
        )
        .await
        .map_err(|_| {
            QueueError::unavailable(
                "connect",
                format!("no connection within {:?}", options.connect_timeout),
            )
        })??;
        info!(connection = %options.connection_name, "amqp connection established");
        *current = Some(session.clone());
        Ok(session)
    }

    /// Forgets `session` if it is still the current one, so the next call reconnects.
    pub(super) async fn discard(&self, session: &Session) {
        let mut current = self.current.lock().await;
        if current
            .as_ref()
            .is_some_and(|held| Arc::ptr_eq(&held.connection, &session.connection))
        {
            *current = None;
        }
    }

    pub(super) async fn close(&self) {
        let session = self.current.lock().await.take();
        if let Some(session) = session {
            let closing = session.connection.close(200, "closing".into());
            if let Err(error) = timeout(Duration::from_secs(2), closing)
                .await
                .unwrap_or(Ok(()))
            {
                warn!(%error, "amqp connection did not close cleanly");
            }
        }
    }
}

/// Sorts a lapin error into ours: what the broker refused for good (a soft channel error such
/// as ACCESS_REFUSED or PRECONDITION_FAILED), a missing queue, and everything else (I/O, a
/// closed connection or channel, a hard connection error, a missed heartbeat), which is
/// connection trouble and retryable.
pub(super) fn map_error(operation: &'static str, error: lapin::Error) -> QueueError {
    match error.kind() {
        ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) if operation == "consume" => {
                QueueError::UnknownQueue {
                    queue: amqp.get_message().to_string(),
                }
            }
            AMQPErrorKind::Soft(_) => QueueError::Refused {
                operation,
                reason: amqp.get_message().to_string(),
            },
            AMQPErrorKind::Hard(_) => QueueError::unavailable(operation, amqp.get_message()),
        },
        _ => QueueError::unavailable(operation, &error),
    }
}
