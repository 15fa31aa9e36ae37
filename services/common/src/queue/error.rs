//! The one error type of the queue abstraction.

/// Why a queue operation failed. [`QueueError::is_retryable`] tells a caller whether trying the
/// same operation later may succeed (the outbox relay keeps the row; the consumer loop goes on).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The broker cannot be reached, the connection was lost, or it did not answer in time.
    /// Retryable: the queue reconnects by itself on the next call.
    #[error("queue unavailable during {operation}: {reason}")]
    Unavailable {
        /// What was being done (`publish`, `connect`, `ack`…).
        operation: &'static str,
        /// The underlying cause, safe to log (never carries credentials).
        reason: String,
    },
    /// The broker refused to take responsibility for a published message (a negative publisher
    /// confirm). Retryable: nothing was stored.
    #[error("message {message_id} was not confirmed by the broker")]
    NotConfirmed {
        /// The message's id.
        message_id: String,
    },
    /// A message for the execute queue had nowhere to go (the queue is missing).
    #[error("message {message_id} to {destination} could not be routed")]
    Unroutable {
        /// The message's id.
        message_id: String,
        /// Where it was published.
        destination: String,
    },
    /// The queue to consume from has not been declared.
    #[error("queue {queue} does not exist")]
    UnknownQueue {
        /// The full queue name.
        queue: String,
    },
    /// The broker refused an operation for a reason retrying will not fix (access refused, a
    /// queue declared with other arguments…).
    #[error("broker refused {operation}: {reason}")]
    Refused {
        /// What was being done.
        operation: &'static str,
        /// The broker's reply.
        reason: String,
    },
    /// A caller-supplied value the broker would refuse.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The in-process queue's SQLite storage failed.
    #[error("queue storage failed: {0}")]
    Storage(#[from] sqlx::Error),
}

impl QueueError {
    /// Whether the same call may succeed later: connection trouble, a negative confirm, or a
    /// storage hiccup. Invalid arguments, unknown queues and refusals are not.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::NotConfirmed { .. } | Self::Storage(_)
        )
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn unavailable(operation: &'static str, reason: impl ToString) -> Self {
        Self::Unavailable {
            operation,
            reason: reason.to_string(),
        }
    }
}

/// The queue's result alias.
pub type QueueResult<T> = Result<T, QueueError>;
