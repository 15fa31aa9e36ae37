//! The task service's background work, safe with several replicas (every step is a
//! compare-and-set on a locked task):
//! - the submitter (SUBMITTING tasks whose approval request is due another try);
//! - cancelling the approvals of aborted tasks;
//! - lapsed leases: re-dispatch (attempt + 1, same priority) through the outbox, or finish an
//!   aborted task as CANCELLED;
//! - WAIT_FOR_EXECUTION_EXPIRED and EXECUTION_EXPIRED;
//! - the consumer of `approval.*.shadow_table_sync` and `execution.dispatched` events, each
//!   confirmed with the approval service before anything changes.

use shadowsync_common::telemetry::messaging::{self, Relation};
use shadowsync_common::telemetry::metrics::metrics;
use std::time::Duration;
use tracing::Instrument as _;

use futures::StreamExt;
use shadowsync_common::clock::to_timestamp;
use shadowsync_common::outbox;
use shadowsync_common::queue::{Delivery, Destination, Message, Priority};
use shadowsync_proto::approval::v1::{ApprovalEvent, GetApprovalRequest, get_approval_request};
use shadowsync_proto::common::v1::{ExecuteTask, ExecutionDispatched};
use shadowsync_proto::routing;
use shadowsync_proto::task::v1::{LogLevel, TaskStatus, TimelineEntry, TimelineEntryKind};
use tracing::{debug, warn};

use super::lifecycle::{self, CancelledBy};
use super::{Tasks, approval};
use crate::error::{Result, TaskError, from_peer};
use crate::store::lifecycle::{DueWork, Value};

const BATCH: i64 = 100;
/// The durable queue the task service's events land in.
pub const SUBSCRIPTION: &str = "task.approval-events";

impl Tasks {
    /// One pass of every sweeper.
    pub async fn sweep(&self) -> Result<()> {
        let now = self.clock.now();
        for id in self
            .store
            .due_tasks(DueWork::SubmissionRetry, now, BATCH)
            .await?
        {
            if let Err(error) = self.advance_submission(id).await {
                debug!(task_id = id, %error, "approval request still deferred");
            }
        }
        for id in self
            .store
            .due_tasks(DueWork::ApprovalCancellation, now, BATCH)
            .await?
        {
            if let Err(error) = self.cancel_approval(id).await {
                debug!(task_id = id, %error, "approval cancellation still deferred");
            }
        }
        for id in self
            .store
            .due_tasks(DueWork::ExecutionExpiry, now, BATCH)
            .await?
        {
            self.expire(id, TaskStatus::Executing).await?;
        }
        for id in self
            .store
            .due_tasks(DueWork::WaitExpiry, now, BATCH)
            .await?
        {
            self.expire(id, TaskStatus::WaitForExecution).await?;
        }
        for id in self
            .store
            .due_tasks(DueWork::LapsedLease, now, BATCH)
            .await?
        {
            self.lease_lapsed(id).await?;
        }
        Ok(())
    }

    async fn expire(&self, id: i64, from: TaskStatus) -> Result<()> {
        let mut tx = self.lock(id).await?;
        let now = tx.now();
        let task = tx.task.clone();
        let due = match from {
            TaskStatus::Executing => task.execution_deadline.is_some_and(|d| d < now),
            TaskStatus::WaitForExecution => task
                .due_at
                .is_some_and(|due| due + task.wait_expiration < now),
            _ => false,
        };
        if !due || task.status != from {
            return Ok(());
        }
        lifecycle::expire(&mut tx, vec![("lease_token", Value::Text(None))]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn lease_lapsed(&self, id: i64) -> Result<()> {
        let mut tx = self.lock(id).await?;
        let now = tx.now();
        let task = tx.task.clone();
        if task.status != TaskStatus::Executing || task.lease_until.is_none_or(|u| u >= now) {
            return Ok(());
        }
        let executor = task.lease_owner.clone().unwrap_or_default();
        if task.abort_requested {
            lifecycle::cancel(
                &mut tx,
                CancelledBy::abort_unanswered(),
                None,
                vec![("lease_token", Value::Text(None))],
            )
            .await?;
            tx.commit().await?;
            metrics().lease_expirations.add(1, &[]);
            return Ok(());
        }
        let attempt = task.attempt + 1;
        tx.update(vec![
            ("attempt", attempt.into()),
            ("lease_token", Value::Text(None)),
            ("lease_owner", Value::Text(None)),
            ("lease_until", Value::Int(None)),
        ])
        .await?;
        tx.timeline(TimelineEntry {
            kind: TimelineEntryKind::LeaseLapsed as i32,
            attempt: u32::try_from(task.attempt).unwrap_or(0),
            executor_id: executor.clone(),
            ..TimelineEntry::default()
        })
        .await?;
        tx.log(
            LogLevel::Warn,
            &format!(
                "executor {executor} stopped renewing its lease; dispatching attempt {attempt}"
            ),
        )
        .await?;
        let priority_value = u8::try_from(task.priority.clamp(1, 10)).unwrap_or(1);
        let priority = Priority::new(priority_value)
            .map_err(|_| TaskError::Internal(format!("priority {priority_value}")))?;
        let attempt_u32 = u32::try_from(attempt).unwrap_or(u32::MAX);
        let execute = ExecuteTask {
            task_id: id,
            attempt: attempt_u32,
            priority: u32::from(priority_value),
            dispatch_time: Some(to_timestamp(now)),
        };
        let message = Message::from_protobuf(&execute)
            .with_id(format!("redispatch-{id}-{attempt}"))
            .with_priority(priority);
        outbox::enqueue(
            tx.connection(),
            &Destination::ExecuteQueue,
            &message,
            now,
            now,
        )
        .await?;
        let event = ExecutionDispatched {
            event_id: uuid::Uuid::now_v7().to_string(),
            task_id: id,
            attempt: attempt_u32,
            priority: u32::from(priority_value),
            approval_id: String::new(),
            dispatch_time: Some(to_timestamp(now)),
            scheduled_time: None,
            late: false,
        };
        let message = Message::from_protobuf(&event).with_id(event.event_id.clone());
        outbox::enqueue(
            tx.connection(),
            &Destination::event(routing::EXECUTION_DISPATCHED),
            &message,
            now,
            now,
        )
        .await?;
        tx.commit().await?;
        metrics().lease_expirations.add(1, &[]);
        metrics().redispatches.add(1, &[]);
        Ok(())
    }

    /// Handles one event delivery; `Err` means "try again later" (requeue).
    pub async fn handle_event(&self, delivery: &Delivery) -> Result<()> {
        let message = delivery.message();
        if message.message_type == "shadowsync.approval.v1.ApprovalEvent" {
            let Ok(event) = message.decode_protobuf::<ApprovalEvent>() else {
                return Ok(());
            };
            let Some(id) = event
                .resource
                .as_ref()
                .filter(|r| r.r#type == "task")
                .and_then(|r| r.id.parse::<i64>().ok())
            else {
                return Ok(());
            };
            let Some(task) = self.store.get_task(id).await? else {
                return Ok(());
            };
            if event.version <= task.approval_version {
                return Ok(());
            }
            // Events are hints: the approval service's answer is what counts.
            let request = GetApprovalRequest {
                key: Some(get_approval_request::Key::ApprovalId(
                    event.approval_id.clone(),
                )),
            };
            let approval = match self.approvals.client().get_approval(request).await {
                Ok(response) => response.into_inner().approval,
                Err(status) if status.code() == tonic::Code::NotFound => return Ok(()),
                Err(status) => return Err(from_peer("approval", &status)),
            };
            if let Some(approval) = approval {
                let mut tx = self.lock(id).await?;
                approval::apply(&mut tx, &approval).await?;
                tx.commit().await?;
            }
            return Ok(());
        }
        if message.message_type == "shadowsync.common.v1.ExecutionDispatched"
            && let Ok(event) = message.decode_protobuf::<ExecutionDispatched>()
        {
            let Some(mut tx) = crate::store::lifecycle::TaskTx::begin(
                &self.store,
                event.task_id,
                self.clock.now(),
            )
            .await?
            else {
                return Ok(());
            };
            let attempt = i64::from(event.attempt);
            if attempt <= tx.task.dispatched_attempt || attempt > tx.task.attempt.max(1) {
                return Ok(());
            }
            tx.record_dispatch(
                event.attempt,
                event.dispatch_time,
                i64::from(event.priority),
            )
            .await?;
            if event.late {
                tx.log(
                    LogLevel::Warn,
                    "approved after the scheduled time; dispatched at once",
                )
                .await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// Consumes the event subscription until `shutdown`.
    pub async fn consume_events(&self, shutdown: impl std::future::Future<Output = ()>) {
        let Some(queue) = self.queue.clone() else {
            return;
        };
        let run = async {
            loop {
                let subscribed = async {
                    let name = queue
                        .declare_subscription(
                            SUBSCRIPTION,
                            &[
                                "approval.*.shadow_table_sync",
                                routing::EXECUTION_DISPATCHED,
                            ],
                        )
                        .await?;
                    let stream = queue.consume(&name, 16).await?;
                    Ok::<_, shadowsync_common::queue::QueueError>((name, stream))
                }
                .await;
                let (name, mut deliveries) = match subscribed {
                    Ok(subscribed) => subscribed,
                    Err(error) => {
                        warn!(%error, "cannot subscribe to approval events yet");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                while let Some(delivery) = deliveries.next().await {
                    let Ok(delivery) = delivery else { continue };
                    // Events are handled moments after they are published: the handling
                    // continues the publisher's trace.
                    let span =
                        messaging::process_span(name.as_str(), delivery.message(), Relation::Child);
                    match self.handle_event(&delivery).instrument(span).await {
                        Ok(()) => {
                            let _ = delivery.ack().await;
                        }
                        Err(error) => {
                            warn!(%error, "event handling deferred");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            let _ = delivery.nack_requeue().await;
                        }
                    }
                }
            }
        };
        tokio::select! {
            () = run => {}
            () = shutdown => {}
        }
    }
}
