//! `approval.<event>.<request_type>` and `permission.<event>` events, written to the outbox in
//! the transaction of the change they announce.

use shadowsync_common::clock::{Micros, to_timestamp};
use shadowsync_common::outbox;
use shadowsync_common::queue::{Destination, Message};
use shadowsync_proto::approval::v1 as pb;
use shadowsync_proto::routing;

use crate::convert::{
    actor, candidates, decision_to_proto, expirations_to_proto, permission_to_proto,
    status_to_proto,
};
use crate::error::{ApprovalError, Result};
use crate::model::{Approval, Decision, Permission, Person};
use crate::store::Tx;

/// The event announcing `approval`'s new state.
pub fn approval_event(
    approval: &Approval,
    event_type: pb::ApprovalEventType,
    decision: Option<&Decision>,
    now: Micros,
) -> pb::ApprovalEvent {
    pb::ApprovalEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        r#type: event_type.into(),
        occur_time: Some(to_timestamp(now)),
        approval_id: approval.id.clone(),
        request_type: approval.request_type.clone(),
        resource: Some(pb::ResourceRef {
            r#type: approval.resource.resource_type.clone(),
            id: approval.resource.id.clone(),
            display_name: approval.resource.display_name.clone(),
        }),
        status: status_to_proto(approval.status).into(),
        requester: approval.requester.subject.clone(),
        decision: decision.map(decision_to_proto),
        cancelled_by: approval.cancelled_by.as_ref().map(actor),
        cancel_reason: approval.cancel_reason.clone().unwrap_or_default(),
        expirations: Some(expirations_to_proto(
            &approval.snapshot.definition.expirations,
        )),
        priority: approval.snapshot.execution_priority,
        current: candidates(approval),
        payload_sha256: approval.payload_sha256.clone(),
        scheduled_time: approval.scheduled_time.map(to_timestamp),
        version: approval.version,
    }
}

/// Writes the event to the outbox, due now.
///
/// Fails when the insert fails (the caller's transaction then rolls back).
pub async fn enqueue_approval_event(
    tx: &mut Tx,
    approval: &Approval,
    event_type: pb::ApprovalEventType,
    decision: Option<&Decision>,
    now: Micros,
) -> Result<()> {
    let routing_key = routing::approval_event(event_type, &approval.request_type)
        .ok_or_else(|| ApprovalError::Corrupt("unspecified event type".into()))?;
    let event = approval_event(approval, event_type, decision, now);
    let message = Message::from_protobuf(&event).with_id(event.event_id.clone());
    outbox::enqueue(tx, &Destination::event(routing_key), &message, now, now).await?;
    Ok(())
}

/// Writes `permission.granted` / `permission.revoked` to the outbox.
///
/// Fails when the insert fails.
pub async fn enqueue_permission_event(
    tx: &mut Tx,
    permission: &Permission,
    event_type: pb::PermissionEventType,
    by: Option<&Person>,
    now: Micros,
) -> Result<()> {
    let routing_key = routing::permission_event(event_type)
        .ok_or_else(|| ApprovalError::Corrupt("unspecified event type".into()))?;
    let event = pb::PermissionEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        r#type: event_type.into(),
        occur_time: Some(to_timestamp(now)),
        permission: Some(permission_to_proto(permission, now)),
        actor: by.map(actor),
    };
    let message = Message::from_protobuf(&event).with_id(event.event_id.clone());
    outbox::enqueue(tx, &Destination::event(routing_key), &message, now, now).await?;
    Ok(())
}
