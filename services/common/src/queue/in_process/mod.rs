//! The in-process queue for the embedded mode: the same semantics as RabbitMQ, persisted in one
//! SQLite file so that a restart of the process loses nothing.
//!
//! Every message is a row of `queue_messages`. A row is *ready* while `delivery_tag` is NULL and
//! *held* by one delivery otherwise; consumers claim the ready row with the highest `rank`
//! (the priority on a priority queue, 0 elsewhere), oldest first. Holding is in memory only in
//! spirit: opening the file resets every held row to ready and redelivered, since whatever held
//! it died with the previous process. A `watch` channel wakes consumers whenever a row becomes
//! ready or a delivery is settled, so they never poll.

mod consumer;
mod storage;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqliteLockingMode, SqlitePoolOptions,
    SqliteSynchronous,
};
use tokio::sync::watch;
use tracing::debug;

use super::topology::validate_binding_pattern;
use super::{
    DeliveryStream, Destination, Message, MessageQueue, QueueError, QueueName, QueueResult,
    Topology, topic_matches,
};
use consumer::Consumer;

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

/// The in-process [`MessageQueue`], persisted in SQLite. Cheap to clone: open it once per
/// process and share it (every service of the embedded mode uses the same one), since
/// consumers are woken by publishes made through the same value. The file is locked
/// exclusively while open, so a second opener fails instead of sharing it unawares.
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
    /// Fails with [`QueueError::Storage`] if the file cannot be opened or migrated, or is
    /// open elsewhere (another process, or another value not yet closed).
    pub async fn open(path: &Path, topology: Topology) -> QueueResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .locking_mode(SqliteLockingMode::Exclusive)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(1));
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
        Ok(Consumer::new(Arc::clone(&self.inner), queue.clone(), prefetch).into_stream())
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
