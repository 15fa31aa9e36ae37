//! A consumer of the in-process queue and the settlement of its deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::Inner;
use super::storage::Delivered;
use crate::queue::message::{Outcome, Settle};
use crate::queue::{Delivery, DeliveryStream, QueueName, QueueResult};

/// How long a consumer waits before retrying after a storage error.
const RETRY_AFTER_STORAGE_ERROR: Duration = Duration::from_millis(500);

/// One consumer's state: it takes a message whenever it holds fewer than `prefetch`.
pub(super) struct Consumer {
    inner: Arc<Inner>,
    queue: QueueName,
    prefetch: usize,
    in_flight: Arc<AtomicUsize>,
    changes: watch::Receiver<u64>,
    /// The last attempt failed: pause before the next.
    failed: bool,
}

impl Consumer {
    pub(super) fn new(inner: Arc<Inner>, queue: QueueName, prefetch: u16) -> Self {
        let changes = inner.changes.subscribe();
        Self {
            inner,
            queue,
            prefetch: usize::from(prefetch),
            in_flight: Arc::new(AtomicUsize::new(0)),
            changes,
            failed: false,
        }
    }

    pub(super) fn into_stream(self) -> DeliveryStream {
        Box::pin(futures::stream::unfold(self, |mut consumer| async move {
            let item = consumer.next().await;
            Some((item, consumer))
        }))
    }

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
            // The settlement's own notification may already have woken the consumer, which then
            // still saw this slot taken and went back to waiting: the freed slot must wake it.
            self.inner.notify();
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
