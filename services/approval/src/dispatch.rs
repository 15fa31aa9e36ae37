//! Dispatch of an approved `shadow_table_sync` request: `ExecuteTask`
//! (attempt 1, the priority fixed at matching) to the execute queue and `execution.dispatched`,
//! both through the outbox, due at the scheduled time or now. A request approved after its
//! scheduled time is dispatched at once and marked `late` (the task service logs a WARN).

use shadowsync_common::clock::{Micros, to_timestamp};
use shadowsync_common::outbox;
use shadowsync_common::queue::{Destination, Message, Priority};
use shadowsync_proto::common::v1::{ExecuteTask, ExecutionDispatched};
use shadowsync_proto::routing;

use crate::error::{ApprovalError, Result};
use crate::model::Approval;
use crate::store::Tx;

/// Writes the dispatch of an approved task to the outbox; returns when it becomes due.
///
/// Fails when the resource id is not a task id or the insert fails.
///
/// Its span is the one the `ExecuteTask` outbox row carries: the execution links back to it.
#[tracing::instrument(
    name = "approval dispatch",
    skip_all,
    fields(approval_id = %approval.id, task_id = %shadowsync_common::logged::logged(&approval.resource.id)),
    err(Display)
)]
pub async fn enqueue_dispatch(tx: &mut Tx, approval: &Approval, now: Micros) -> Result<Micros> {
    let task_id: i64 = approval
        .resource
        .id
        .parse()
        .map_err(|_| ApprovalError::Corrupt(format!("task id {:?}", approval.resource.id)))?;
    let due = approval.scheduled_time.map_or(now, |at| at.max(now));
    let late = approval.scheduled_time.is_some_and(|at| at < now);
    if late {
        tracing::warn!(task_id, approval_id = %approval.id, "approved after the scheduled time; dispatching at once");
    }
    let priority_value = u8::try_from(approval.snapshot.execution_priority).unwrap_or(1);
    let priority = Priority::new(priority_value)
        .map_err(|_| ApprovalError::Corrupt(format!("priority {priority_value}")))?;
    let execute = ExecuteTask {
        task_id,
        attempt: 1,
        priority: u32::from(priority_value),
        dispatch_time: Some(to_timestamp(due)),
    };
    // The message id is derived from the approval, so a consumer can recognise a re-publish.
    let message = Message::from_protobuf(&execute)
        .with_id(format!("dispatch-{}", approval.id))
        .with_priority(priority);
    outbox::enqueue(tx, &Destination::ExecuteQueue, &message, due, now).await?;
    let event = ExecutionDispatched {
        event_id: uuid::Uuid::now_v7().to_string(),
        task_id,
        attempt: 1,
        priority: u32::from(priority_value),
        approval_id: approval.id.clone(),
        dispatch_time: Some(to_timestamp(due)),
        scheduled_time: approval.scheduled_time.map(to_timestamp),
        late,
    };
    let message = Message::from_protobuf(&event).with_id(event.event_id.clone());
    outbox::enqueue(
        tx,
        &Destination::event(routing::EXECUTION_DISPATCHED),
        &message,
        due,
        now,
    )
    .await?;
    Ok(due)
}
