//! The task log as the executor writes it: lines are buffered and appended in batches
//! (at table boundaries, at the end, and whenever the buffer fills), and mirrored to `tracing`.
//!
//! Parallel lanes share one log: lines take their sequence under the buffer's lock, and one
//! flush at a time sends them, so the service receives them in sequence order.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use shadowsync_common::clock::Clock;
use shadowsync_proto::task::v1::LogLevel;

use crate::backend::{BackendError, ExecutionBackend, LeaseRef, LogEntry};

/// Lines per `AppendLogs` call (the service accepts at most 1,000).
const BATCH: usize = 500;
/// Pauses before each try of [`TaskLog::flush_durably`]: about 5 s before it gives up.
const DURABLE_RETRY_PAUSES: &[std::time::Duration] = &[
    std::time::Duration::ZERO,
    std::time::Duration::from_millis(250),
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(4),
];
/// Longer messages are cut (the service accepts at most 64 KiB).
const MAX_MESSAGE_BYTES: usize = 60 * 1024;

/// Buffered log lines of one (task, attempt).
#[derive(Debug)]
pub struct TaskLog {
    backend: Arc<dyn ExecutionBackend>,
    lease: LeaseRef,
    clock: Arc<dyn Clock>,
    buffer: Mutex<Buffer>,
    /// Held while sending: only its holder removes lines from the front of the buffer.
    sending: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Buffer {
    pending: Vec<LogEntry>,
    last_sequence: u64,
}

impl TaskLog {
    pub fn new(backend: Arc<dyn ExecutionBackend>, lease: LeaseRef, clock: Arc<dyn Clock>) -> Self {
        Self {
            backend,
            lease,
            clock,
            buffer: Mutex::default(),
            sending: tokio::sync::Mutex::new(()),
        }
    }

    fn buffer(&self) -> MutexGuard<'_, Buffer> {
        // A panic while holding the lock cannot leave a half-pushed line: keep going.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn info(&self, table: &str, message: impl Into<String>) {
        self.push(LogLevel::Info, table, message.into());
    }

    pub fn warn(&self, table: &str, message: impl Into<String>) {
        self.push(LogLevel::Warn, table, message.into());
    }

    pub fn error(&self, table: &str, message: impl Into<String>) {
        self.push(LogLevel::Error, table, message.into());
    }

    fn push(&self, level: LogLevel, table: &str, mut message: String) {
        let task_id = self.lease.task_id;
        match level {
            LogLevel::Error => tracing::error!(task_id, table, "{message}"),
            LogLevel::Warn => tracing::warn!(task_id, table, "{message}"),
            _ => tracing::info!(task_id, table, "{message}"),
        }
        if message.len() > MAX_MESSAGE_BYTES {
            let mut cut = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" …");
        }
        let now = self.clock.now();
        let mut buffer = self.buffer();
        // Sequences start from the clock so that a restarted executor holding the same
        // (task, attempt) never reuses a sequence the service already deduplicated away.
        let sequence = (buffer.last_sequence + 1).max(u64::try_from(now).unwrap_or(0));
        buffer.last_sequence = sequence;
        buffer.pending.push(LogEntry {
            client_sequence: sequence,
            time: now,
            level,
            message,
            table: table.to_owned(),
        });
    }

    /// Appends what is buffered. Lines that could not be sent stay buffered for the next flush
    /// unless the lease is lost (then nothing more may be written).
    pub async fn flush(&self) -> Result<(), BackendError> {
        self.send().await.map(|_| ())
    }

    /// Appends what is buffered and fails unless every line reached the task service, retrying
    /// a refused append a few times first. For a line that must be durable before the executor
    /// acts (a statement's start: if the executor dies mid-statement, the log still says what
    /// was running).
    pub async fn flush_durably(&self) -> Result<(), BackendError> {
        let mut last = None;
        for pause in DURABLE_RETRY_PAUSES {
            tokio::time::sleep(*pause).await;
            match self.send().await? {
                None => return Ok(()),
                Some(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| BackendError::Unavailable("task log not appended".into())))
    }

    /// Sends the buffer; `Ok(Some(error))` when an append failed and lines remain buffered.
    async fn send(&self) -> Result<Option<BackendError>, BackendError> {
        let _sending = self.sending.lock().await;
        loop {
            let batch: Vec<LogEntry> = {
                let buffer = self.buffer();
                buffer.pending[..buffer.pending.len().min(BATCH)].to_vec()
            };
            if batch.is_empty() {
                return Ok(None);
            }
            match self.backend.append_logs(&self.lease, &batch).await {
                Ok(()) => {
                    self.buffer().pending.drain(..batch.len());
                }
                Err(BackendError::LeaseLost) => return Err(BackendError::LeaseLost),
                Err(error) => {
                    tracing::warn!(task_id = self.lease.task_id, %error, "task log not appended yet");
                    return Ok(Some(error));
                }
            }
        }
    }
}
