//! The transactional outbox: a service writes its state change and the message
//! announcing it in **one** database transaction ([`enqueue`]); its [`OutboxRelay`] publishes due
//! rows with publisher confirms and only then marks them sent. A broker outage therefore delays
//! messages but never loses one, and nothing is announced that was not committed.
//!
//! Rows carry a not-before time (scheduled dispatches wait in the outbox until due) and a
//! priority (due rows are published most urgent first). Several replicas may run relays on one
//! PostgreSQL store: each claims a batch under a short lease (`FOR UPDATE SKIP LOCKED`), so a row
//! is published by one relay; a relay that dies after publishing but before marking the row sent
//! leaves it to be published again when the lease lapses, which consumers absorb (delivery is
//! at-least-once everywhere).

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AnyConnection, Row as _};
use tokio::sync::Notify;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::clock::{Clock, Micros, micros};
use crate::db::{Backend, Database};
use crate::queue::{Destination, Message, MessageQueue, Priority};

const POSTGRES_DDL: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id BIGSERIAL PRIMARY KEY,
    destination TEXT NOT NULL,
    routing_key TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL,
    message_type TEXT NOT NULL,
    payload BYTEA NOT NULL,
    priority BIGINT NOT NULL DEFAULT 0,
    traceparent TEXT,
    not_before BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    locked_until BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at BIGINT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (not_before) WHERE sent_at IS NULL;
";

const SQLITE_DDL: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    routing_key TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL,
    message_type TEXT NOT NULL,
    payload BLOB NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    traceparent TEXT,
    not_before INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    locked_until INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (not_before) WHERE sent_at IS NULL;
";

/// The longest a row waits between publish attempts while the broker refuses them.
const MAX_PUBLISH_BACKOFF: Duration = Duration::from_secs(2);

/// Claims due rows under a lease. PostgreSQL replicas skip rows another relay has locked.
const CLAIM_POSTGRES: &str = "UPDATE outbox SET locked_until = $1 WHERE id IN (\
    SELECT id FROM outbox WHERE sent_at IS NULL AND not_before <= $2 \
    AND (locked_until IS NULL OR locked_until <= $2) \
    ORDER BY priority DESC, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
    RETURNING id, destination, routing_key, message_id, message_type, payload, priority, \
    traceparent, attempts";

/// SQLite has one writer at a time, so the same statement is atomic without row locks.
const CLAIM_SQLITE: &str = "UPDATE outbox SET locked_until = $1 WHERE id IN (\
    SELECT id FROM outbox WHERE sent_at IS NULL AND not_before <= $2 \
    AND (locked_until IS NULL OR locked_until <= $2) \
    ORDER BY priority DESC, id LIMIT $3) \
    RETURNING id, destination, routing_key, message_id, message_type, payload, priority, \
    traceparent, attempts";

const DESTINATION_EXECUTE: &str = "execute";
const DESTINATION_EVENT: &str = "event";

/// The outbox table as each service's migrations create it (`00NN_outbox.sql` in the task and
/// approval services' histories). Kept here, beside the SQL that uses the table, so every
/// service's copy is checked against one text ([`migration_matches`]).
pub fn schema_ddl(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => POSTGRES_DDL,
        Backend::Sqlite => SQLITE_DDL,
    }
}

/// True when a service's outbox migration file holds exactly [`schema_ddl`] after its leading
/// `--` comment lines: how each service's test proves its copy did not drift.
pub fn migration_matches(backend: Backend, migration: &str) -> bool {
    let statements: String = migration
        .lines()
        .skip_while(|line| line.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    statements.trim() == schema_ddl(backend).trim()
}

/// Adds `message` for `destination` to the outbox inside the caller's transaction, due at
/// `not_before` (now, or a scheduled time). Returns the row id.
///
/// Fails when the insert fails; the caller's transaction then rolls back with it.
pub async fn enqueue(
    connection: &mut AnyConnection,
    destination: &Destination,
    message: &Message,
    not_before: Micros,
    now: Micros,
) -> Result<i64, sqlx::Error> {
    let (kind, routing_key) = match destination {
        Destination::ExecuteQueue => (DESTINATION_EXECUTE, ""),
        Destination::Event { routing_key } => (DESTINATION_EVENT, routing_key.as_str()),
    };
    let row = sqlx::query(
        "INSERT INTO outbox (destination, routing_key, message_id, message_type, payload, \
         priority, traceparent, not_before, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(kind)
    .bind(routing_key)
    .bind(&message.id)
    .bind(&message.message_type)
    .bind(&message.payload)
    .bind(i64::from(message.priority.get()))
    // The producing span's context, unless the message carries one: the relay publishes it,
    // so the consumer's work joins the trace of the change that caused it.
    .bind(
        message
            .traceparent()
            .map(str::to_string)
            .or_else(crate::telemetry::propagation::current_traceparent),
    )
    .bind(not_before)
    .bind(now)
    .fetch_one(&mut *connection)
    .await?;
    row.try_get::<i64, _>(0)
}

/// Publishes due outbox rows.
#[derive(Clone)]
pub struct OutboxRelay {
    db: Database,
    queue: Arc<dyn MessageQueue>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    batch: i64,
    lease: Duration,
    idle_poll: Duration,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

struct Claimed {
    id: i64,
    destination: Destination,
    message: Message,
    attempts: i64,
}

impl OutboxRelay {
    pub fn new(db: Database, queue: Arc<dyn MessageQueue>, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            queue,
            clock,
            wake: Arc::new(Notify::new()),
            batch: 100,
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_millis(500),
        }
    }

    /// How often an idle relay looks for due rows (scheduled rows become due without a wake-up).
    pub fn with_idle_poll(mut self, idle_poll: Duration) -> Self {
        self.idle_poll = idle_poll;
        self
    }

    /// A handle whose `notify_one` makes the relay look at once: call it after committing a
    /// transaction that enqueued something, so messages leave without waiting for the poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Publishes every due row once; returns how many were published.
    ///
    /// Fails only when the store fails; a publish failure is recorded on the row (retried later
    /// with back-off) and stops this pass, since the broker is likely down.
    pub async fn relay_due(&self) -> Result<usize, sqlx::Error> {
        let mut published = 0;
        loop {
            let claimed = self.claim().await?;
            if claimed.is_empty() {
                return Ok(published);
            }
            let mut claimed = claimed.into_iter();
            while let Some(row) = claimed.next() {
                let (span, message) = self.publish_span(&row);
                match self
                    .queue
                    .publish(&row.destination, &message)
                    .instrument(span.clone())
                    .await
                {
                    Ok(()) => {
                        crate::telemetry::messaging::record_published(&self.destination_name(&row));
                        sqlx::query(
                            "UPDATE outbox SET sent_at = $1, locked_until = NULL WHERE id = $2",
                        )
                        .bind(self.clock.now())
                        .bind(row.id)
                        .execute(self.db.pool())
                        .await?;
                        published += 1;
                    }
                    Err(error) => {
                        // The broker is likely down: this row waits a short back-off, capped
                        // so that it goes out within seconds of the broker's return, and the
                        // rest of the batch is released at once (held for the claim's lease it
                        // would wait that long after the broker came back).
                        let backoff =
                            Duration::from_millis(200)
                                .saturating_mul(2_u32.saturating_pow(
                                    u32::try_from(row.attempts.min(8)).unwrap_or(8),
                                ))
                                .min(MAX_PUBLISH_BACKOFF);
                        span.record("otel.status_code", "ERROR");
                        tracing::warn!(parent: &span, outbox_id = row.id, error = %error, "outbox publish failed; will retry");
                        sqlx::query(
                            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, \
                             locked_until = $2 WHERE id = $3",
                        )
                        .bind(error.to_string())
                        .bind(self.clock.now().saturating_add(micros(backoff)))
                        .bind(row.id)
                        .execute(self.db.pool())
                        .await?;
                        for untried in claimed {
                            sqlx::query(
                                "UPDATE outbox SET locked_until = NULL \
                                 WHERE id = $1 AND sent_at IS NULL",
                            )
                            .bind(untried.id)
                            .execute(self.db.pool())
                            .await?;
                        }
                        return Ok(published);
                    }
                }
            }
        }
    }

    fn destination_name(&self, row: &Claimed) -> String {
        crate::telemetry::messaging::destination_name(self.queue.topology(), &row.destination)
    }

    /// The publish span of `row`, continuing the trace of the change that wrote it, and the
    /// message carrying the publish span's own context (so consumers point at the publish).
    fn publish_span(&self, row: &Claimed) -> (tracing::Span, Message) {
        let span = crate::telemetry::messaging::publish_span(
            &self.destination_name(row),
            &row.destination,
            &row.message,
        );
        if let Some(stored) = row.message.traceparent() {
            let _ = span.set_parent(crate::telemetry::propagation::context_from_traceparent(
                stored,
            ));
        }
        let mut message = row.message.clone();
        if let Some(traceparent) = crate::telemetry::propagation::traceparent_of(&span) {
            message = message.with_traceparent(traceparent);
        }
        (span, message)
    }

    async fn claim(&self) -> Result<Vec<Claimed>, sqlx::Error> {
        let now = self.clock.now();
        let sql = match self.db.backend() {
            Backend::Postgres => CLAIM_POSTGRES,
            Backend::Sqlite => CLAIM_SQLITE,
        };
        let rows = sqlx::query(sql)
            .bind(now.saturating_add(micros(self.lease)))
            .bind(now)
            .bind(self.batch)
            .fetch_all(self.db.pool())
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let destination = match row.try_get::<String, _>("destination")?.as_str() {
                DESTINATION_EXECUTE => Destination::ExecuteQueue,
                _ => Destination::event(row.try_get::<String, _>("routing_key")?),
            };
            let priority = u8::try_from(row.try_get::<i64, _>("priority")?).unwrap_or(0);
            let mut message = Message::new(
                row.try_get::<String, _>("message_type")?,
                row.try_get::<Vec<u8>, _>("payload")?,
            )
            .with_id(row.try_get::<String, _>("message_id")?);
            if let Ok(priority) = Priority::new(priority) {
                message = message.with_priority(priority);
            }
            if let Some(traceparent) = row.try_get::<Option<String>, _>("traceparent")? {
                message = message.with_traceparent(traceparent);
            }
            claimed.push(Claimed {
                id: row.try_get("id")?,
                destination,
                message,
                attempts: row.try_get("attempts")?,
            });
        }
        // RETURNING order is unspecified: publish most urgent first, then oldest.
        claimed.sort_by_key(|c| (std::cmp::Reverse(c.message.priority.get()), c.id));
        Ok(claimed)
    }

    /// Records the backlog gauges: how many due rows are unsent and how long the oldest has
    /// waited (0 when none). Returns `(backlog, oldest age)`.
    ///
    /// Fails when the store fails.
    pub async fn record_backlog(&self) -> Result<(u64, Duration), sqlx::Error> {
        let now = self.clock.now();
        let row = sqlx::query(
            "SELECT COUNT(*), MIN(not_before) FROM outbox WHERE sent_at IS NULL AND not_before <= $1",
        )
        .bind(now)
        .fetch_one(self.db.pool())
        .await?;
        let backlog = u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
        let oldest = row
            .try_get::<Option<i64>, _>(1)?
            .map(|due| u64::try_from(now.saturating_sub(due)).unwrap_or(0))
            .map_or(Duration::ZERO, Duration::from_micros);
        let metrics = crate::telemetry::metrics::metrics();
        metrics.outbox_backlog.record(backlog, &[]);
        metrics.outbox_oldest_age.record(oldest.as_secs_f64(), &[]);
        Ok((backlog, oldest))
    }

    /// Relays until `shutdown` completes: at once when woken, otherwise every idle poll.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        // The backlog is measured at most this often (a count per idle poll would be waste).
        const BACKLOG_EVERY: Duration = Duration::from_secs(5);
        let mut backlog_measured: Option<std::time::Instant> = None;
        loop {
            if let Err(error) = self.relay_due().await {
                tracing::warn!(error = %error, "outbox relay pass failed");
            }
            if backlog_measured.is_none_or(|at| at.elapsed() >= BACKLOG_EVERY) {
                backlog_measured = Some(std::time::Instant::now());
                if let Err(error) = self.record_backlog().await {
                    tracing::warn!(error = %error, "outbox backlog not measured");
                }
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.idle_poll) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::StreamExt as _;
    use sqlx::{Connection as _, Executor as _};

    use super::*;
    use crate::clock::ManualClock;
    use crate::db::{Database, Migrations};
    use crate::queue::{InProcessQueue, Topology};

    static NO_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;
    const MIGRATIONS: Migrations = Migrations {
        postgres: &NO_MIGRATIONS,
        sqlite: &NO_MIGRATIONS,
    };

    struct Fixture {
        db: Database,
        queue: Arc<InProcessQueue>,
        clock: ManualClock,
        relay: OutboxRelay,
    }

    async fn fixture(db: Database) -> Fixture {
        let ddl = schema_ddl(db.backend());
        db.pool().execute(ddl).await.expect("outbox table");
        db.pool().execute(ddl).await.expect("idempotent");
        let queue = Arc::new(
            InProcessQueue::in_memory(Topology::new("test."))
                .await
                .expect("queue"),
        );
        let clock = ManualClock::new(1_000_000_000);
        let relay = OutboxRelay::new(db.clone(), queue.clone(), Arc::new(clock.clone()));
        Fixture {
            db,
            queue,
            clock,
            relay,
        }
    }

    async fn enqueue_committed(f: &Fixture, message: &Message, not_before: Micros) {
        let mut connection = f.db.pool().acquire().await.expect("connection");
        let mut tx = connection.begin().await.expect("begin");
        enqueue(
            &mut tx,
            &Destination::ExecuteQueue,
            message,
            not_before,
            f.clock.now(),
        )
        .await
        .expect("enqueue");
        tx.commit().await.expect("commit");
    }

    async fn received(f: &Fixture, count: usize) -> Vec<Message> {
        let queue_name = f.queue.topology().execute_queue();
        let mut stream = f.queue.consume(&queue_name, 100).await.expect("consume");
        let mut messages = Vec::new();
        while messages.len() < count {
            let delivery = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("a message in time")
                .expect("stream open")
                .expect("delivery");
            messages.push(delivery.message().clone());
            delivery.ack().await.expect("ack");
        }
        messages
    }

    async fn publishes_committed_rows_once(db: Database) {
        let f = fixture(db).await;
        // A rolled-back transaction leaves nothing to publish.
        {
            let mut connection = f.db.pool().acquire().await.expect("connection");
            let mut tx = connection.begin().await.expect("begin");
            let message = Message::new("test.RolledBack", b"x".to_vec());
            enqueue(
                &mut tx,
                &Destination::ExecuteQueue,
                &message,
                0,
                f.clock.now(),
            )
            .await
            .expect("enqueue");
            tx.rollback().await.expect("rollback");
        }
        let message = Message::new("test.Committed", b"payload".to_vec());
        enqueue_committed(&f, &message, f.clock.now()).await;
        assert_eq!(f.relay.relay_due().await.expect("relay"), 1);
        assert_eq!(
            f.relay.relay_due().await.expect("relay again"),
            0,
            "sent rows stay sent"
        );
        let got = received(&f, 1).await;
        assert_eq!(got[0].id, message.id);
        assert_eq!(got[0].payload, b"payload");
        assert_eq!(got[0].message_type, "test.Committed");
    }

    async fn rows_carry_the_producing_trace_and_the_backlog_is_measured(db: Database) {
        let f = fixture(db).await;
        let producer = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let message = Message::new("test.Traced", b"t".to_vec()).with_traceparent(producer);
        enqueue_committed(&f, &message, f.clock.now()).await;
        let stored: Option<String> = sqlx::query_scalar("SELECT traceparent FROM outbox")
            .fetch_one(f.db.pool())
            .await
            .expect("row");
        assert_eq!(stored.as_deref(), Some(producer));
        f.clock.advance(Duration::from_secs(90));
        let (backlog, oldest) = f.relay.record_backlog().await.expect("backlog");
        assert_eq!(backlog, 1);
        assert_eq!(oldest, Duration::from_secs(90));
        assert_eq!(f.relay.relay_due().await.expect("relay"), 1);
        assert_eq!(
            f.relay.record_backlog().await.expect("backlog"),
            (0, Duration::ZERO)
        );
        // No subscriber records spans in this test, so the publish span has no context of its
        // own and the stored one travels as it is.
        let got = received(&f, 1).await;
        assert_eq!(got[0].traceparent(), Some(producer));
    }

    async fn scheduled_rows_wait_until_due(db: Database) {
        let f = fixture(db).await;
        let due_at = f.clock.now() + 60_000_000;
        enqueue_committed(&f, &Message::new("test.Later", b"".to_vec()), due_at).await;
        assert_eq!(f.relay.relay_due().await.expect("relay"), 0);
        f.clock.advance(Duration::from_secs(61));
        assert_eq!(f.relay.relay_due().await.expect("relay"), 1);
    }

    async fn due_rows_go_out_most_urgent_first(db: Database) {
        let f = fixture(db).await;
        let now = f.clock.now();
        for (index, priority) in [1_u8, 9, 5, 9].into_iter().enumerate() {
            let message = Message::new("test.P", vec![u8::try_from(index).expect("small")])
                .with_priority(Priority::new(priority).expect("priority"));
            enqueue_committed(&f, &message, now).await;
        }
        assert_eq!(f.relay.relay_due().await.expect("relay"), 4);
        let order: Vec<u8> = received(&f, 4).await.iter().map(|m| m.payload[0]).collect();
        assert_eq!(
            order,
            [1, 3, 2, 0],
            "priority 9 (oldest first), then 5, then 1"
        );
    }

    /// The in-process queue, refusing every publish while `down` is set (a broker away).
    struct Flaky {
        inner: Arc<InProcessQueue>,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl MessageQueue for Flaky {
        fn topology(&self) -> &crate::queue::Topology {
            self.inner.topology()
        }
        async fn publish(
            &self,
            destination: &Destination,
            message: &Message,
        ) -> crate::queue::QueueResult<()> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(crate::queue::QueueError::Unavailable {
                    operation: "publish",
                    reason: "connection refused".into(),
                });
            }
            self.inner.publish(destination, message).await
        }
        async fn consume(
            &self,
            queue: &crate::queue::QueueName,
            prefetch: u16,
        ) -> crate::queue::QueueResult<crate::queue::DeliveryStream> {
            self.inner.consume(queue, prefetch).await
        }
        async fn declare_subscription(
            &self,
            name: &str,
            routing_patterns: &[&str],
        ) -> crate::queue::QueueResult<crate::queue::QueueName> {
            self.inner
                .declare_subscription(name, routing_patterns)
                .await
        }
        async fn check_ready(&self) -> crate::queue::QueueResult<()> {
            self.inner.check_ready().await
        }
        async fn close(&self) {}
    }

    async fn rows_go_out_within_seconds_of_the_brokers_return(db: Database) {
        let f = fixture(db).await;
        let flaky = Arc::new(Flaky {
            inner: f.queue.clone(),
            down: std::sync::atomic::AtomicBool::new(true),
        });
        let relay = OutboxRelay::new(f.db.clone(), flaky.clone(), Arc::new(f.clock.clone()));
        for index in 0..3_u8 {
            enqueue_committed(&f, &Message::new("test.Away", vec![index]), f.clock.now()).await;
        }
        // A long outage: a pass every half second for a minute, every publish refused.
        for _ in 0..120 {
            assert_eq!(relay.relay_due().await.expect("relay"), 0);
            f.clock.advance(Duration::from_millis(500));
        }
        flaky.down.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut published = 0;
        let mut waited = Duration::ZERO;
        while published < 3 {
            published += relay.relay_due().await.expect("relay");
            f.clock.advance(Duration::from_millis(500));
            waited += Duration::from_millis(500);
        }
        assert!(
            waited <= Duration::from_secs(3),
            "every row out within a few seconds of the broker's return, took {waited:?}"
        );
        assert_eq!(received(&f, 3).await.len(), 3);
    }

    crate::conformance!("outbox_test", MIGRATIONS;
        rows_go_out_within_seconds_of_the_brokers_return,
        publishes_committed_rows_once,
        rows_carry_the_producing_trace_and_the_backlog_is_measured,
        scheduled_rows_wait_until_due,
        due_rows_go_out_most_urgent_first,
    );
}
