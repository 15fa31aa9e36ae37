//! Names of the queues and exchanges and AMQP topic matching.

use std::fmt;
use std::time::Duration;

use super::QueueError;

/// The highest AMQP priority a message may carry; the execute queue is declared with
/// `x-max-priority` = this value.
pub const MAX_PRIORITY: u8 = 10;

/// The names every backend declares, all starting with one configurable prefix so that tests and
/// tenants sharing a broker never collide.
///
/// - `<prefix>shadowsync.execute`: durable priority queue (`x-max-priority` = 10) whose rejected
///   messages go through the dead-letter exchange `<prefix>shadowsync.dlx` to
///   `<prefix>shadowsync.execute.dead`.
/// - `<prefix>shadowsync.events`: durable topic exchange for the `task.*`, `approval.*`,
///   `execution.*` and `permission.*` events; subscribers bind their own queues
///   (`<prefix><name>`), each with its own `<prefix><name>.dead`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    expire_unused_after: Option<Duration>,
}

impl Topology {
    /// A topology whose names all start with `prefix` (may be empty; `"test-<uuid>."` in tests).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            expire_unused_after: None,
        }
    }

    /// Declares every queue with `x-expires` (RabbitMQ deletes a queue unused for that long) and
    /// every exchange as auto-delete. Meant for tests on a shared broker, so that a test that
    /// dies before its clean-up leaves nothing behind for long; never use it in production.
    #[must_use]
    pub fn expire_unused_after(mut self, after: Duration) -> Self {
        self.expire_unused_after = Some(after);
        self
    }

    /// The prefix every name starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How long an unused queue lives, when [`Topology::expire_unused_after`] was set.
    pub fn queue_expiry(&self) -> Option<Duration> {
        self.expire_unused_after
    }

    /// `<prefix>shadowsync.execute`: the priority queue executors consume.
    pub fn execute_queue(&self) -> QueueName {
        QueueName(format!("{}shadowsync.execute", self.prefix))
    }

    /// `<prefix>shadowsync.events`: the topic exchange events are published to.
    pub fn events_exchange(&self) -> String {
        format!("{}shadowsync.events", self.prefix)
    }

    /// `<prefix>shadowsync.dlx`: the exchange rejected messages are dead-lettered through.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}shadowsync.dlx", self.prefix)
    }

    /// The queue a message rejected from `queue` lands in: `<queue>.dead`
    /// (so `<prefix>shadowsync.execute.dead` for the execute queue).
    pub fn dead_letter_queue(&self, queue: &QueueName) -> QueueName {
        QueueName(format!("{}.dead", queue.0))
    }

    /// The durable queue a subscriber named `name` (e.g. `task.approval-decisions`) consumes
    /// events from: `<prefix><name>`.
    ///
    /// Fails with [`QueueError::InvalidArgument`] when the name is empty, contains whitespace,
    /// or ends with `.dead` (reserved for dead-letter queues).
    pub fn subscription_queue(&self, name: &str) -> Result<QueueName, QueueError> {
        if name.is_empty() || name.chars().any(char::is_whitespace) || name.ends_with(".dead") {
            return Err(QueueError::invalid(
                "subscription name",
                format!("{name:?} must be non-empty, without whitespace, and not end in .dead"),
            ));
        }
        let queue = QueueName(format!("{}{name}", self.prefix));
        if queue == self.execute_queue() {
            return Err(QueueError::invalid(
                "subscription name",
                "the execute queue cannot be a subscription",
            ));
        }
        Ok(queue)
    }
}

/// The full (prefixed) name of a queue; obtained from a [`Topology`] so it always carries the
/// prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    /// The name as the broker knows it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Where a message is published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The execute queue (`<prefix>shadowsync.execute`), ordered by message priority.
    ExecuteQueue,
    /// The events topic exchange, with a routing key such as `task.executing`,
    /// `approval.decided.feature_flag_change`, `execution.dispatched` or `permission.granted`.
    Event {
        /// Dot-separated words; bound queues select events with `*` / `#` patterns.
        routing_key: String,
    },
}

impl Destination {
    /// An event with this routing key.
    pub fn event(routing_key: impl Into<String>) -> Self {
        Self::Event {
            routing_key: routing_key.into(),
        }
    }

    /// Checks what the broker would refuse, so both backends fail the same way.
    pub(crate) fn validate(&self) -> Result<(), QueueError> {
        match self {
            Self::ExecuteQueue => Ok(()),
            Self::Event { routing_key } => validate_routing_key(routing_key),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExecuteQueue => formatter.write_str("execute queue"),
            Self::Event { routing_key } => write!(formatter, "event {routing_key}"),
        }
    }
}

/// A routing key of a published event: 1–255 bytes, no wildcard characters.
fn validate_routing_key(routing_key: &str) -> Result<(), QueueError> {
    if routing_key.is_empty() || routing_key.len() > 255 {
        return Err(QueueError::invalid(
            "routing key",
            "must be 1 to 255 bytes long",
        ));
    }
    if routing_key
        .split('.')
        .any(|word| word == "*" || word == "#")
    {
        return Err(QueueError::invalid(
            "routing key",
            format!("{routing_key:?} is a pattern, not a routing key"),
        ));
    }
    Ok(())
}

/// A binding pattern: 1–255 bytes, dot-separated words where `*` matches exactly one word and
/// `#` matches zero or more.
pub(crate) fn validate_binding_pattern(pattern: &str) -> Result<(), QueueError> {
    if pattern.is_empty() || pattern.len() > 255 {
        return Err(QueueError::invalid(
            "binding pattern",
            "must be 1 to 255 bytes long",
        ));
    }
    Ok(())
}

/// AMQP topic-exchange matching: `pattern` and `routing_key` are dot-separated words; `*` in the
/// pattern matches exactly one word, `#` zero or more words.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    matches_words(&pattern, &key)
}

fn matches_words(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skipped| matches_words(rest, &key[skipped..])),
        Some((&word, rest)) => match key.split_first() {
            Some((&first, key_rest)) => {
                (word == "*" || word == first) && matches_words(rest, key_rest)
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_the_prefix() {
        let topology = Topology::new("test-1.");
        assert_eq!(
            topology.execute_queue().as_str(),
            "test-1.shadowsync.execute"
        );
        assert_eq!(
            topology
                .dead_letter_queue(&topology.execute_queue())
                .as_str(),
            "test-1.shadowsync.execute.dead"
        );
        assert_eq!(topology.dead_letter_exchange(), "test-1.shadowsync.dlx");
        assert_eq!(topology.events_exchange(), "test-1.shadowsync.events");
        assert_eq!(
            topology
                .subscription_queue("task.decisions")
                .unwrap()
                .as_str(),
            "test-1.task.decisions"
        );
        assert!(topology.subscription_queue("x.dead").is_err());
        assert!(topology.subscription_queue("").is_err());
        assert!(topology.subscription_queue("shadowsync.execute").is_err());
    }

    #[test]
    fn topic_matching_follows_amqp() {
        let cases = [
            (
                "approval.*.feature_flag_change",
                "approval.decided.feature_flag_change",
                true,
            ),
            (
                "approval.*.shadow_table_sync",
                "approval.decided.feature_flag_change",
                false,
            ),
            ("approval.#", "approval.decided.feature_flag_change", true),
            ("approval.#", "approval", true),
            ("#", "task.executing", true),
            ("#.dispatched", "execution.dispatched", true),
            ("task.*", "task.executing.now", false),
            ("task.*", "task", false),
            ("*.*", "task.executing", true),
            ("task.executing", "task.executing", true),
            ("task.#.done", "task.a.b.done", true),
            ("task.#.done", "task.done", true),
            ("task.#.done", "task.a.b", false),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(topic_matches(pattern, key), expected, "{pattern} vs {key}");
        }
    }

    #[test]
    fn routing_keys_are_validated() {
        assert!(Destination::event("task.executing").validate().is_ok());
        assert!(Destination::event("").validate().is_err());
        assert!(Destination::event("task.*").validate().is_err());
        assert!(Destination::event("x".repeat(256)).validate().is_err());
    }
}
