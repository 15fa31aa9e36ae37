//! The SQL behind claiming and settling a message.

use std::collections::BTreeMap;

use sqlx::sqlite::SqliteQueryResult;

use super::Inner;
use crate::queue::message::Outcome;
use crate::queue::{Message, Priority, QueueError, QueueName, QueueResult};

impl Inner {
    pub(super) fn notify(&self) {
        self.changes
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Claims the next ready message of `queue` for a new delivery.
    pub(super) async fn claim(
        &self,
        queue: &QueueName,
    ) -> QueueResult<Option<(i64, i64, Delivered)>> {
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
        let Some(row) = row else {
            return Ok(None);
        };
        let seq = row.0;
        match Delivered::try_from(row) {
            Ok(delivered) => Ok(Some((seq, delivery_tag, delivered))),
            Err(error) => {
                // A row we cannot read back would otherwise stay held until the next restart
                // and come back forever: park it with the poison.
                self.dead_letter(queue, seq, delivery_tag).await?;
                Err(error)
            }
        }
    }

    pub(super) async fn settle(
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
pub(super) struct Delivered {
    pub(super) message: Message,
    pub(super) routing_key: String,
    pub(super) redelivered: bool,
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
