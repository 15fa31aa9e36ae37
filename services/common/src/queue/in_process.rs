//! The in-process queue for the embedded mode: the same semantics as RabbitMQ, persisted in one
//! SQLite file so that a restart of the process loses nothing.
//!
//! Every message is a row of `queue_messages`. A row is *ready* while `delivery_tag` is NULL and
//! *held* by one delivery otherwise; consumers claim the ready row with the highest `rank`
//! (the priority on a priority queue, 0 elsewhere), oldest first. Holding is in memory only in
//! spirit: opening the file resets every held row to ready and redelivered, since whatever held
//! it died with the previous process. A `watch` channel wakes consumers whenever a row becomes
//! ready or a delivery is settled, so they never poll.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::message::{Outcome, Settle};
use super::topology::validate_binding_pattern;
use super::{
    Delivery, DeliveryStream, Destination, Message, MessageQueue, Priority, QueueError, QueueName,
    QueueResult, Topology, topic_matches,
};

/// How long a consumer waits before retrying after a storage error.
const RETRY_AFTER_STORAGE_ERROR: Duration = Duration::from_millis(500);

const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS queue_declared (
        name TEXT PRIMARY KEY NOT NULL,
        prioritised INTEGER NOT NULL,
        dead_letter_queue TEXT
    )",
    "CREATE TABLE IF NOT EXISTS queue_bindings (
        exchange TEXT NOT NULL,
        pattern TEXT NOT NULL,
        queue TEXT NOT NULL,
        PRIMARY KEY (exchange, pattern, queue)
    )",
    "CREATE TABLE IF NOT EXISTS queue_messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        rank INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        message_type TEXT NOT NULL,
        content_type TEXT NOT NULL,
        priority INTEGER NOT NULL,
        headers TEXT NOT NULL,
        payload BLOB NOT NULL,
        routing_key TEXT NOT NULL,
        redelivered INTEGER NOT NULL DEFAULT 0,
        delivery_tag INTEGER
    )",
    "CREATE INDEX IF NOT EXISTS queue_messages_ready
        ON queue_messages (queue, rank DESC, seq) WHERE delivery_tag IS NULL",
];

/// The in-process [`MessageQueue`], persisted in SQLite. Cheap to clone; one process at a time
/// may open a given file.
#[derive(Clone)]
pub struct InProcessQueue {
    inner: Arc<Inner>,
}

struct Inner {
    topology: Topology,
    pool: SqlitePool,
    /// Bumped whenever a message becomes ready or a delivery is settled.
    changes: watch::Sender<u64>,
}

impl InProcessQueue {
    /// Opens (creating if needed) the queue stored in the SQLite file at `path`, declares the
    /// execute queue, and hands back every message a previous process held unsettled (they are
    /// delivered again, marked redelivered).
    ///
    /// Fails with [`QueueError::Storage`] if the file cannot be opened or migrated.
    pub async fn open(path: &Path, topology: Topology) -> QueueResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        Self::with_options(options, topology).await
    }

    /// A queue in memory (`sqlite::memory:`), for tests: the same behaviour, no persistence
    /// beyond this value.
    ///
    /// Fails with [`QueueError::Storage`] if SQLite cannot start.
    pub async fn in_memory(topology: Topology) -> QueueResult<Self> {
        Self::with_options(SqliteConnectOptions::from_str("sqlite::memory:")?, topology).await
    }

    async fn with_options(options: SqliteConnectOptions, topology: Topology) -> QueueResult<Self> {
        // One connection: SQLite has one writer anyway, this avoids SQLITE_BUSY altogether, and
        // an in-memory database lives exactly as long as its connection.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        let reclaimed = sqlx::query(
            "UPDATE queue_messages SET delivery_tag = NULL, redelivered = 1
             WHERE delivery_tag IS NOT NULL",
        )
        .execute(&pool)
        .await?
        .rows_affected();
        if reclaimed > 0 {
            debug!(
                messages = reclaimed,
                "unsettled messages of a previous run handed back"
            );
        }
        let queue = Self {
            inner: Arc::new(Inner {
                topology,
                pool,
                changes: watch::Sender::new(0),
            }),
        };
        let execute = queue.inner.topology.execute_queue();
        queue.declare_queue(&execute, true).await?;
        Ok(queue)
    }

    async fn declare_queue(&self, queue: &QueueName, prioritised: bool) -> QueueResult<()> {
        let dead_letter = self.inner.topology.dead_letter_queue(queue);
        let mut transaction = self.inner.pool.begin().await?;
        sqlx::query(
            "INSERT INTO queue_declared (name, prioritised, dead_letter_queue) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(queue.as_str())
        .bind(prioritised)
        .bind(dead_letter.as_str())
        .execute(&mut *transaction)
        .await?;
        sqlx::query(
            "INSERT INTO queue_declared (name, prioritised, dead_letter_queue) VALUES (?1, 0, NULL)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(dead_letter.as_str())
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn is_declared(&self, queue: &QueueName) -> QueueResult<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM queue_declared WHERE name = ?1")
            .bind(queue.as_str())
            .fetch_optional(&self.inner.pool)
            .await?;
        Ok(found.is_some())
    }

    /// The queues (and whether each is a priority queue) an event with `routing_key` goes to.
    async fn bound_queues(&self, routing_key: &str) -> QueueResult<Vec<(String, bool)>> {
        let bindings: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT b.pattern, b.queue, d.prioritised FROM queue_bindings b
             JOIN queue_declared d ON d.name = b.queue WHERE b.exchange = ?1",
        )
        .bind(self.inner.topology.events_exchange())
        .fetch_all(&self.inner.pool)
        .await?;
        let matching: BTreeMap<String, bool> = bindings
            .into_iter()
            .filter(|(pattern, _, _)| topic_matches(pattern, routing_key))
            .map(|(_, queue, prioritised)| (queue, prioritised))
            .collect();
        Ok(matching.into_iter().collect())
    }
}

impl Inner {
    fn notify(&self) {
        self.changes
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Claims the next ready message of `queue` for a new delivery.
    async fn claim(&self, queue: &QueueName) -> QueueResult<Option<(i64, i64, Delivered)>> {
        let delivery_tag: i64 = rand::random();
        let row: Option<StoredRow> = sqlx::query_as(
            "UPDATE queue_messages SET delivery_tag = ?1
             WHERE seq = (SELECT seq FROM queue_messages
                          WHERE queue = ?2 AND delivery_tag IS NULL
                          ORDER BY rank DESC, seq LIMIT 1)
             RETURNING seq, message_id, message_type, content_type, priority, headers, payload,
                       routing_key, redelivered",
        )
        .bind(delivery_tag)
        .bind(queue.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((row.0, delivery_tag, Delivered::try_from(row)?)))
            .transpose()
    }

    async fn settle(
        &self,
        queue: &QueueName,
        seq: i64,
        delivery_tag: i64,
        outcome: Outcome,
    ) -> QueueResult<()> {
        let settled = match outcome {
            Outcome::Ack => {
                sqlx::query("DELETE FROM queue_messages WHERE seq = ?1 AND delivery_tag = ?2")
                    .bind(seq)
                    .bind(delivery_tag)
                    .execute(&self.pool)
                    .await?
            }
            Outcome::Requeue => {
                sqlx::query(
                    "UPDATE queue_messages SET delivery_tag = NULL, redelivered = 1
                     WHERE seq = ?1 AND delivery_tag = ?2",
                )
                .bind(seq)
                .bind(delivery_tag)
                .execute(&self.pool)
                .await?
            }
            Outcome::DeadLetter => self.dead_letter(queue, seq, delivery_tag).await?,
        };
        self.notify();
        if settled.rows_affected() == 0 {
            return Err(QueueError::unavailable(
                "settle",
                "the delivery is no longer held (the queue was reopened)",
            ));
        }
        Ok(())
    }

    /// Moves the message to the queue's dead-letter queue (FIFO, not redelivered, routed by the
    /// dead-letter queue's name, with RabbitMQ's `x-first-death-queue` and
    /// `x-first-death-reason` headers); a queue without one (a dead-letter queue itself) drops
    /// it, as RabbitMQ does.
    async fn dead_letter(
        &self,
        queue: &QueueName,
        seq: i64,
        delivery_tag: i64,
    ) -> QueueResult<SqliteQueryResult> {
        let mut transaction = self.pool.begin().await?;
        let dead_letter_queue: Option<String> =
            sqlx::query_scalar("SELECT dead_letter_queue FROM queue_declared WHERE name = ?1")
                .bind(queue.as_str())
                .fetch_optional(&mut *transaction)
                .await?
                .flatten();
        let result = match dead_letter_queue {
            Some(dead_letter_queue) => {
                sqlx::query(
                    "UPDATE queue_messages
                     SET queue = ?3, routing_key = ?3, rank = 0, redelivered = 0,
                         delivery_tag = NULL,
                         headers = json_set(headers, '$.\"x-first-death-queue\"', ?4,
                                            '$.\"x-first-death-reason\"', 'rejected')
                     WHERE seq = ?1 AND delivery_tag = ?2",
                )
                .bind(seq)
                .bind(delivery_tag)
                .bind(dead_letter_queue)
                .bind(queue.as_str())
                .execute(&mut *transaction)
                .await?
            }
            None => {
                sqlx::query("DELETE FROM queue_messages WHERE seq = ?1 AND delivery_tag = ?2")
                    .bind(seq)
                    .bind(delivery_tag)
                    .execute(&mut *transaction)
                    .await?
            }
        };
        transaction.commit().await?;
        Ok(result)
    }
}

/// `(seq, message_id, message_type, content_type, priority, headers, payload, routing_key,
/// redelivered)`.
type StoredRow = (
    i64,
    String,
    String,
    String,
    i64,
    String,
    Vec<u8>,
    String,
    bool,
);

/// A claimed message, decoded.
struct Delivered {
    message: Message,
    routing_key: String,
    redelivered: bool,
}

impl TryFrom<StoredRow> for Delivered {
    type Error = QueueError;

    fn try_from(row: StoredRow) -> QueueResult<Self> {
        let (
            _,
            id,
            message_type,
            content_type,
            priority,
            headers,
            payload,
            routing_key,
            redelivered,
        ) = row;
        let headers: BTreeMap<String, String> = serde_json::from_str(&headers)
            .map_err(|error| QueueError::Storage(sqlx::Error::Decode(Box::new(error))))?;
        let priority = u8::try_from(priority)
            .map_err(|error| QueueError::Storage(sqlx::Error::Decode(Box::new(error))))
            .and_then(Priority::new)?;
        Ok(Self {
            message: Message {
                id,
                message_type,
                content_type,
                priority,
                headers,
                payload,
            },
            routing_key,
            redelivered,
        })
    }
}

#[async_trait]
impl MessageQueue for InProcessQueue {
    fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    async fn publish(&self, destination: &Destination, message: &Message) -> QueueResult<()> {
        destination.validate()?;
        message.validate()?;
        let (targets, routing_key) = match destination {
            Destination::ExecuteQueue => {
                let queue = self.inner.topology.execute_queue();
                let queue_name = queue.as_str().to_owned();
                if !self.is_declared(&queue).await? {
                    return Err(QueueError::Unroutable {
                        message_id: message.id.clone(),
                        destination: destination.to_string(),
                    });
                }
                (vec![(queue_name.clone(), true)], queue_name)
            }
            Destination::Event { routing_key } => {
                (self.bound_queues(routing_key).await?, routing_key.clone())
            }
        };
        let headers = serde_json::to_string(&message.headers)
            .map_err(|error| QueueError::invalid("headers", error.to_string()))?;
        let mut transaction = self.inner.pool.begin().await?;
        for (queue, prioritised) in &targets {
            let rank = if *prioritised {
                message.priority.get()
            } else {
                0
            };
            sqlx::query(
                "INSERT INTO queue_messages (queue, rank, message_id, message_type, content_type,
                     priority, headers, payload, routing_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .bind(queue)
            .bind(i64::from(rank))
            .bind(&message.id)
            .bind(&message.message_type)
            .bind(&message.content_type)
            .bind(i64::from(message.priority.get()))
            .bind(&headers)
            .bind(&message.payload)
            .bind(&routing_key)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        if !targets.is_empty() {
            self.inner.notify();
        }
        Ok(())
    }

    async fn consume(&self, queue: &QueueName, prefetch: u16) -> QueueResult<DeliveryStream> {
        if prefetch == 0 {
            return Err(QueueError::invalid("prefetch", "must be at least 1"));
        }
        if !self.is_declared(queue).await? {
            return Err(QueueError::UnknownQueue {
                queue: queue.to_string(),
            });
        }
        let consumer = Consumer {
            inner: Arc::clone(&self.inner),
            queue: queue.clone(),
            prefetch: usize::from(prefetch),
            in_flight: Arc::new(AtomicUsize::new(0)),
            changes: self.inner.changes.subscribe(),
            failed: false,
        };
        Ok(Box::pin(futures::stream::unfold(
            consumer,
            |mut consumer| async move {
                let item = consumer.next().await;
                Some((item, consumer))
            },
        )))
    }

    async fn declare_subscription(
        &self,
        name: &str,
        routing_patterns: &[&str],
    ) -> QueueResult<QueueName> {
        let queue = self.inner.topology.subscription_queue(name)?;
        for pattern in routing_patterns {
            validate_binding_pattern(pattern)?;
        }
        self.declare_queue(&queue, false).await?;
        let exchange = self.inner.topology.events_exchange();
        let patterns: BTreeSet<&str> = routing_patterns.iter().copied().collect();
        for pattern in patterns {
            sqlx::query(
                "INSERT INTO queue_bindings (exchange, pattern, queue) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&exchange)
            .bind(pattern)
            .bind(queue.as_str())
            .execute(&self.inner.pool)
            .await?;
        }
        Ok(queue)
    }

    async fn check_ready(&self) -> QueueResult<()> {
        sqlx::query("SELECT 1").execute(&self.inner.pool).await?;
        Ok(())
    }

    /// Closes the SQLite file; every later call fails. Unsettled deliveries stay held and come
    /// back when the file is opened again, as after a crash.
    async fn close(&self) {
        self.inner.pool.close().await;
    }
}

/// One consumer's state: it takes a message whenever it holds fewer than `prefetch`.
struct Consumer {
    inner: Arc<Inner>,
    queue: QueueName,
    prefetch: usize,
    in_flight: Arc<AtomicUsize>,
    changes: watch::Receiver<u64>,
    /// The last attempt failed: pause before the next.
    failed: bool,
}

impl Consumer {
    async fn next(&mut self) -> QueueResult<Delivery> {
        if std::mem::take(&mut self.failed) {
            tokio::time::sleep(RETRY_AFTER_STORAGE_ERROR).await;
        }
        loop {
            // Seen before looking, so a change made while we look wakes the wait below.
            self.changes.borrow_and_update();
            if self.in_flight.load(Ordering::Acquire) < self.prefetch {
                match self.inner.claim(&self.queue).await {
                    Ok(Some((seq, tag, delivered))) => return Ok(self.deliver(seq, tag, delivered)),
                    Ok(None) => {}
                    Err(error) => {
                        warn!(queue = %self.queue, %error, "in-process queue could not deliver");
                        self.failed = true;
                        return Err(error);
                    }
                }
            }
            if self.changes.changed().await.is_err() {
                // Unreachable while we hold `inner`, which owns the sender; wait anyway.
                std::future::pending::<()>().await;
            }
        }
    }

    fn deliver(&self, seq: i64, delivery_tag: i64, delivered: Delivered) -> Delivery {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let settlement = InProcessSettlement {
            inner: Arc::clone(&self.inner),
            queue: self.queue.clone(),
            seq,
            delivery_tag,
            in_flight: Arc::clone(&self.in_flight),
            finished: AtomicBool::new(false),
        };
        Delivery::new(
            delivered.message,
            delivered.redelivered,
            self.queue.clone(),
            delivered.routing_key,
            Box::new(settlement),
        )
    }
}

struct InProcessSettlement {
    inner: Arc<Inner>,
    queue: QueueName,
    seq: i64,
    delivery_tag: i64,
    in_flight: Arc<AtomicUsize>,
    /// Set once the consumer's prefetch slot is given back, so it is given back once.
    finished: AtomicBool,
}

impl InProcessSettlement {
    fn finish(&self) -> bool {
        let first = !self.finished.swap(true, Ordering::AcqRel);
        if first {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        first
    }
}

#[async_trait]
impl Settle for InProcessSettlement {
    async fn settle(&self, outcome: Outcome) -> QueueResult<()> {
        self.inner
            .settle(&self.queue, self.seq, self.delivery_tag, outcome)
            .await?;
        self.finish();
        Ok(())
    }

    fn release(&self) {
        if !self.finish() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime: the process is going away; reopening the file hands the message back.
            return;
        };
        let inner = Arc::clone(&self.inner);
        let queue = self.queue.clone();
        let (seq, delivery_tag) = (self.seq, self.delivery_tag);
        runtime.spawn(async move {
            if let Err(error) = inner
                .settle(&queue, seq, delivery_tag, Outcome::Requeue)
                .await
            {
                debug!(%queue, %error, "dropped delivery not handed back; it returns on reopen");
            }
        });
    }
}
