//! The worker loop: consumes the execute queue with manual acks, claims each task and runs it.
//!
//! Per delivery (each in its own tokio task, at most `concurrency` at once, with at most
//! `prefetch` unsettled deliveries): decode `ExecuteTask` (undecodable → dead-letter), claim it
//! (unknown task → dead-letter; any other failure → requeue after a pause, since the message
//! names a task that exists and a dead letter would strand it), **ack as soon
//! as the claim is granted or refused** — from then on the lease is the durable record, so a
//! long DDL never holds a delivery past the broker's consumer timeout — and run the engine.
//! A bad message is handled on its own; the loop never stops because of one.
//!
//! Shutdown: stop consuming (prefetched, unclaimed deliveries go back to the queue), let
//! running tasks finish within the grace period, then stop them between statements (handed
//! back: their lease lapses and the task service re-dispatches them; the next attempt resumes).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use shadowsync_common::queue::{Delivery, QueueResult};
use shadowsync_common::telemetry::messaging::{self, Relation};
use shadowsync_common::telemetry::metrics::metrics;
use shadowsync_proto::common::v1::ExecuteTask;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::ExecutorDeps;
use crate::backend::{BackendError, ClaimOutcome};
use crate::engine::{EngineContext, ExecutionEnd, execute};

/// How long to hold a delivery before handing it back when the task service is unavailable,
/// so an outage does not become a hot redelivery loop.
const UNAVAILABLE_PAUSE: Duration = Duration::from_secs(1);

/// Consumes until `shutdown` completes, then drains (see the module documentation).
///
/// Fails only when the first subscription cannot be made.
pub async fn run_worker(
    deps: ExecutorDeps,
    shutdown: impl std::future::Future<Output = ()>,
) -> QueueResult<()> {
    let queue_name = deps.queue.topology().execute_queue();
    let mut deliveries = deps
        .queue
        .consume(&queue_name, deps.prefetch.max(1))
        .await?;
    let slots = Arc::new(Semaphore::new(deps.concurrency.max(1)));
    let stop = CancellationToken::new();
    let worker = Arc::new(Worker {
        context: EngineContext {
            backend: deps.backend.clone(),
            clock: deps.clock.clone(),
            stop: stop.clone(),
            table_parallelism: deps.table_parallelism.max(1),
        },
        executor_id: deps.executor_id.clone(),
        running_here: Mutex::new(HashSet::new()),
    });
    let mut running = JoinSet::new();
    tokio::pin!(shutdown);
    tracing::info!(executor_id = %deps.executor_id, queue = %queue_name.as_str(), "executor consuming");
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        let next = tokio::select! {
            () = &mut shutdown => break,
            next = deliveries.next() => next,
        };
        match next {
            Some(Ok(delivery)) => {
                // A new trace linked to the dispatch (see `telemetry::messaging::Relation`).
                let span = messaging::process_span(
                    queue_name.as_str(),
                    delivery.message(),
                    Relation::Link,
                );
                running.spawn(worker.clone().handle(delivery, slot).instrument(span));
            }
            Some(Err(error)) => {
                // The stream resubscribes by itself.
                tracing::warn!(%error, "execute queue consumer interrupted");
            }
            None => break,
        }
        while let Some(joined) = running.try_join_next() {
            log_join(joined);
        }
    }
    // Stop consuming first: prefetched deliveries nobody claimed go back to the queue.
    drop(deliveries);
    tracing::info!(running = running.len(), "executor stopping");
    let drain = async {
        while let Some(joined) = running.join_next().await {
            log_join(joined);
        }
    };
    tokio::pin!(drain);
    tokio::select! {
        () = &mut drain => {}
        () = tokio::time::sleep(deps.shutdown_grace) => {
            stop.cancel();
            drain.await;
        }
    }
    Ok(())
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        tracing::error!(%error, "execution task ended abnormally");
    }
}

struct Worker {
    context: EngineContext,
    executor_id: String,
    /// Tasks this process is executing. The task service hands the same lease back to the same
    /// executor id (so a restarted executor can carry on), so a duplicate delivery reaching the
    /// process that already runs the task must be recognised here, not by the claim.
    running_here: Mutex<HashSet<i64>>,
}

/// Removes a task from `running_here` when its handling ends, however it ends.
struct RunningHere<'a> {
    worker: &'a Worker,
    task_id: i64,
}

impl Drop for RunningHere<'_> {
    fn drop(&mut self) {
        self.worker.running_tasks().remove(&self.task_id);
    }
}

impl Worker {
    fn running_tasks(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.running_here
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks `task_id` as running here; `None` if it already is.
    fn run_here(&self, task_id: i64) -> Option<RunningHere<'_>> {
        // The lock is released before a `RunningHere` exists: its drop takes the lock again.
        let inserted = self.running_tasks().insert(task_id);
        inserted.then(|| RunningHere {
            worker: self,
            task_id,
        })
    }

    async fn handle(self: Arc<Self>, delivery: Delivery, _slot: OwnedSemaphorePermit) {
        let task = match delivery.message().decode_protobuf::<ExecuteTask>() {
            Ok(task) if task.task_id > 0 && task.attempt > 0 => task,
            Ok(task) => {
                tracing::error!(
                    task_id = task.task_id,
                    attempt = task.attempt,
                    "invalid ExecuteTask; dead-lettered"
                );
                settle(delivery.reject_to_dead_letter().await);
                return;
            }
            Err(error) => {
                tracing::error!(%error, message_id = %delivery.message().id, "undecodable execute message; dead-lettered");
                settle(delivery.reject_to_dead_letter().await);
                return;
            }
        };
        if self.context.stop.is_cancelled() {
            settle(delivery.nack_requeue().await);
            return;
        }
        let (task_id, attempt) = (task.task_id, task.attempt);
        let Some(_running) = self.run_here(task_id) else {
            tracing::info!(
                task_id,
                attempt,
                "duplicate delivery of a task running here; acked"
            );
            settle(delivery.ack().await);
            return;
        };
        let claim = match self
            .context
            .backend
            .claim(task_id, attempt, &self.executor_id)
            .await
        {
            Ok(outcome) => outcome,
            Err(BackendError::NotFound) => {
                tracing::error!(
                    task_id,
                    attempt,
                    "execute message for an unknown task; dead-lettered"
                );
                settle(delivery.reject_to_dead_letter().await);
                return;
            }
            Err(BackendError::Unavailable(message)) => {
                tracing::warn!(task_id, attempt, %message, "cannot claim now; message handed back");
                tokio::time::sleep(UNAVAILABLE_PAUSE).await;
                settle(delivery.nack_requeue().await);
                return;
            }
            // The task exists: dead-lettering its message would strand it until its wait
            // expires, and the refusal may pass (an INTERNAL answer during an outage of the
            // task service's store). Hand it back after a pause; once the task is final the
            // claim is refused and the delivery acked.
            Err(error) => {
                tracing::warn!(task_id, attempt, %error, "claim failed; message handed back");
                tokio::time::sleep(UNAVAILABLE_PAUSE).await;
                settle(delivery.nack_requeue().await);
                return;
            }
        };
        // The claim is recorded (or refused): the lease is the durable record from here on.
        settle(delivery.ack().await);
        let claimed = match claim {
            ClaimOutcome::Refused(reason) => {
                tracing::info!(
                    task_id,
                    attempt,
                    reason = reason.as_str_name(),
                    "claim refused; nothing to do"
                );
                return;
            }
            ClaimOutcome::Granted(claimed) => claimed,
        };
        let active = &metrics().executor_active_tasks;
        active.add(1, &[]);
        let end = execute(&self.context, *claimed).await;
        active.add(-1, &[]);
        match end {
            ExecutionEnd::Completed(outcome) => {
                tracing::info!(
                    task_id,
                    attempt,
                    outcome = outcome.as_str_name(),
                    "execution completed"
                );
            }
            ExecutionEnd::LeaseLost => {
                tracing::warn!(task_id, attempt, "lease lost; stopped");
            }
            ExecutionEnd::HandedBack => {
                tracing::info!(task_id, attempt, "handed back at shutdown");
            }
            ExecutionEnd::Interrupted(reason) => {
                tracing::error!(task_id, attempt, %reason, "execution interrupted; it resumes when re-dispatched");
            }
        }
    }
}

/// A settlement that fails leaves the message to be redelivered (at-least-once); the claim
/// makes that harmless, so it is only logged.
fn settle(result: QueueResult<()>) {
    if let Err(error) = result {
        tracing::warn!(%error, "delivery not settled; it will be redelivered");
    }
}

#[cfg(test)]
mod tests;
