//! Deciding, cancelling and expiring requests: each a compare-and-set on the request's version
//! inside one transaction with its node states, decisions and events.

use shadowsync_common::clock::Micros;
use shadowsync_common::logged::logged;
use shadowsync_common::telemetry::metrics::{KeyValue, metrics};
use shadowsync_proto::approval::v1 as pb;
use shadowsync_proto::names;

use super::{Service, with_retries};
use crate::decision::{advance_from, approvers_at, check_may_decide, node_exhausted, node_passed};
use crate::error::{ApprovalError, Result};
use crate::events::enqueue_approval_event;
use crate::model::{
    AUTO_APPROVED_COMMENT, Approval, ApprovalStatus, Decision, NodeStatus, Outcome, Person,
};
use crate::store::{ApprovalTransition, Tx, approvals};

/// Longest decision comment.
pub const MAX_COMMENT: usize = 1024;

impl Service {
    /// `Approve` / `Reject` by `person`.
    ///
    /// Fails as [`check_may_decide`] does, and with `InvalidArgument` for an over-long comment.
    #[tracing::instrument(skip_all, fields(approver = %logged(&person.subject), approval_id = %logged(approval_id), approve), err(Display, level = "info"))]
    pub async fn decide(
        &self,
        person: &Person,
        approval_id: &str,
        approve: bool,
        comment: &str,
        expected_node: Option<u32>,
        request_id: &str,
    ) -> Result<Approval> {
        if comment.chars().count() > MAX_COMMENT {
            return Err(ApprovalError::invalid(
                "comment",
                "at most 1,024 characters",
            ));
        }
        let approval = with_retries(|| {
            self.try_decide(
                person,
                approval_id,
                approve,
                comment,
                expected_node,
                request_id,
            )
        })
        .await?;
        self.committed(Some(&approval.id));
        metrics().approval_decisions.add(
            1,
            &[KeyValue::new(
                "shadowsync.approval.decision",
                if approve { "approve" } else { "reject" },
            )],
        );
        tracing::info!(
            approval_id = %approval.id,
            node = approval.current_node,
            status = approval.status.as_str(),
            "decision recorded"
        );
        Ok(approval)
    }

    async fn try_decide(
        &self,
        person: &Person,
        approval_id: &str,
        approve: bool,
        comment: &str,
        expected_node: Option<u32>,
        request_id: &str,
    ) -> Result<Approval> {
        let mut tx = self.store.begin().await?;
        let mut a = self.visible(&mut tx, person, approval_id).await?;
        // A retried call (same request id, same person) returns the state it produced.
        if !request_id.is_empty()
            && a.decisions.iter().any(|d| {
                d.request_id == request_id
                    && d.actor
                        .as_ref()
                        .is_some_and(|p| p.subject == person.subject)
            })
        {
            return Ok(a);
        }
        check_may_decide(&a, person, expected_node)?;
        let now = self.now();
        let node_index = a.current_node;
        let decision = Decision {
            node_index,
            actor: Some(person.clone()),
            outcome: if approve {
                Outcome::Approved
            } else {
                Outcome::Rejected
            },
            comment: comment.to_string(),
            request_id: request_id.to_string(),
            time: now,
        };
        approvals::insert_decision(&mut tx, &a.id, &decision).await?;
        a.decisions.push(decision.clone());
        let node = a
            .snapshot
            .definition
            .nodes
            .get(node_index as usize)
            .cloned();
        let passed = approve
            && node.is_some_and(|n| {
                node_passed(&n, &a.requester.subject, &approvers_at(&a, node_index))
            });
        let mut change = ApprovalTransition {
            status: ApprovalStatus::Pending,
            current_node: node_index,
            cancelled_by: None,
            cancel_reason: None,
            now,
        };
        let mut event = None;
        if !approve {
            change.status = ApprovalStatus::Rejected;
            self.close_nodes(&mut tx, &mut a, NodeStatus::Rejected, now)
                .await?;
            event = Some(pb::ApprovalEventType::Decided);
        } else if passed {
            set_node(&mut tx, &mut a, node_index, NodeStatus::Approved, now).await?;
            let (auto, next) = advance_from(&a.snapshot.definition.nodes, node_index + 1);
            for index in &auto {
                let auto_decision = auto_decision(*index, now);
                approvals::insert_decision(&mut tx, &a.id, &auto_decision).await?;
                a.decisions.push(auto_decision);
                set_node(&mut tx, &mut a, *index, NodeStatus::Approved, now).await?;
            }
            match next {
                Some(next) => {
                    change.current_node = next;
                    set_node(&mut tx, &mut a, next, NodeStatus::Active, now).await?;
                    event = Some(pb::ApprovalEventType::NodeAdvanced);
                }
                None => {
                    change.current_node = auto.last().copied().unwrap_or(node_index);
                    change.status = ApprovalStatus::Approved;
                }
            }
        }
        // Always a compare-and-set, even for a partial approval: concurrent deciders serialize
        // on the version, so two last approvals can never both think they were not last.
        a.version = approvals::transition(&mut tx, &a.id, a.version, &change).await?;
        a.status = change.status;
        a.current_node = change.current_node;
        a.update_time = now;
        a.finish_time = change.status.is_final().then_some(now);
        if a.status == ApprovalStatus::Approved {
            self.on_approved(&mut tx, &a, Some(&decision), now).await?;
        } else if let Some(event) = event {
            enqueue_approval_event(&mut tx, &a, event, Some(&decision), now).await?;
        }
        tx.commit().await?;
        if event == Some(pb::ApprovalEventType::NodeAdvanced) {
            warn_if_exhausted(&a);
        }
        Ok(a)
    }

    /// `CancelApproval` by the requester, the submitting service or an admin. Cancelling a
    /// cancelled request again succeeds without change.
    ///
    /// Fails with `PermissionDenied` for anyone else, `FailedPrecondition` when already final.
    #[tracing::instrument(skip_all, fields(by = %logged(&person.subject), approval_id = %logged(approval_id)), err(Display, level = "info"))]
    pub async fn cancel(
        &self,
        person: &Person,
        approval_id: &str,
        reason: &str,
    ) -> Result<Approval> {
        let approval = with_retries(|| self.try_cancel(person, approval_id, reason)).await?;
        self.committed(Some(&approval.id));
        Ok(approval)
    }

    async fn try_cancel(
        &self,
        person: &Person,
        approval_id: &str,
        reason: &str,
    ) -> Result<Approval> {
        let mut tx = self.store.begin().await?;
        let mut a = self.visible(&mut tx, person, approval_id).await?;
        let allowed = person.subject == a.requester.subject
            || person.subject == a.submitter
            || person.has_role(names::ROLE_ADMIN);
        if !allowed {
            return Err(ApprovalError::PermissionDenied(
                "only the requester, the submitting service or an admin may cancel".into(),
            ));
        }
        match a.status {
            ApprovalStatus::Cancelled => return Ok(a),
            ApprovalStatus::Pending => {}
            other => {
                return Err(ApprovalError::FailedPrecondition(format!(
                    "approval {} is {}",
                    a.id,
                    other.as_str().to_lowercase()
                )));
            }
        }
        let now = self.now();
        let change = ApprovalTransition {
            status: ApprovalStatus::Cancelled,
            current_node: a.current_node,
            cancelled_by: Some(person.clone()),
            cancel_reason: Some(reason.to_string()),
            now,
        };
        a.version = approvals::transition(&mut tx, &a.id, a.version, &change).await?;
        self.close_nodes(&mut tx, &mut a, NodeStatus::NotReached, now)
            .await?;
        a.status = ApprovalStatus::Cancelled;
        a.cancelled_by = change.cancelled_by;
        a.cancel_reason = change.cancel_reason;
        a.update_time = now;
        a.finish_time = Some(now);
        enqueue_approval_event(&mut tx, &a, pb::ApprovalEventType::Decided, None, now).await?;
        tx.commit().await?;
        Ok(a)
    }

    /// Expires one request if it is still pending past its deadline; returns whether it did.
    ///
    /// Fails when the store fails.
    #[tracing::instrument(skip_all, fields(approval_id = %approval_id), err(Display))]
    pub async fn expire(&self, approval_id: &str) -> Result<bool> {
        let expired = with_retries(|| self.try_expire(approval_id)).await?;
        if expired {
            self.committed(Some(approval_id));
        }
        Ok(expired)
    }

    async fn try_expire(&self, approval_id: &str) -> Result<bool> {
        let mut tx = self.store.begin().await?;
        let mut a = load(&mut tx, approval_id).await?;
        let now = self.now();
        if a.status != ApprovalStatus::Pending || a.approval_deadline > now {
            return Ok(false);
        }
        let change = ApprovalTransition {
            status: ApprovalStatus::Expired,
            current_node: a.current_node,
            cancelled_by: None,
            cancel_reason: None,
            now,
        };
        a.version = approvals::transition(&mut tx, &a.id, a.version, &change).await?;
        self.close_nodes(&mut tx, &mut a, NodeStatus::NotReached, now)
            .await?;
        a.status = ApprovalStatus::Expired;
        a.update_time = now;
        a.finish_time = Some(now);
        enqueue_approval_event(&mut tx, &a, pb::ApprovalEventType::Expired, None, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends the active node with `active_becomes` and marks the nodes after it not reached.
    async fn close_nodes(
        &self,
        tx: &mut Tx,
        a: &mut Approval,
        active_becomes: NodeStatus,
        now: Micros,
    ) -> Result<()> {
        let pending: Vec<(u32, NodeStatus)> = a
            .nodes
            .iter()
            .filter_map(|n| match n.status {
                NodeStatus::Active => Some((n.index, active_becomes)),
                NodeStatus::Waiting => Some((n.index, NodeStatus::NotReached)),
                _ => None,
            })
            .collect();
        for (index, status) in pending {
            set_node(tx, a, index, status, now).await?;
        }
        Ok(())
    }

    /// Loads a request the person may see.
    ///
    /// Fails with `NotFound` when it does not exist or is not visible to them: the same error,
    /// byte for byte ([`approval_not_found`]), so a caller learns nothing about requests they
    /// may not see, not even that the id exists.
    pub(super) async fn visible(&self, tx: &mut Tx, person: &Person, id: &str) -> Result<Approval> {
        match approvals::approval_in(tx, id).await? {
            Some(approval) if super::queries::may_see(&approval, person) => Ok(approval),
            _ => Err(approval_not_found()),
        }
    }
}

/// Says in the log when a pending request reached a node that no one left may approve (every
/// named approver already decided on the request, or is the requester): it will only expire.
pub(super) fn warn_if_exhausted(a: &Approval) {
    if a.status == ApprovalStatus::Pending && node_exhausted(a, a.current_node) {
        tracing::warn!(
            approval_id = %a.id,
            node = a.current_node,
            deadline = a.approval_deadline,
            "approval node cannot pass: every named approver already decided on this request; \
             it waits until it expires"
        );
    }
}

pub(super) fn auto_decision(node_index: u32, now: Micros) -> Decision {
    Decision {
        node_index,
        actor: None,
        outcome: Outcome::AutoApproved,
        comment: AUTO_APPROVED_COMMENT.to_string(),
        request_id: String::new(),
        time: now,
    }
}

/// Sets a node's status (start/end times follow) in the store and in `a`.
async fn set_node(
    tx: &mut Tx,
    a: &mut Approval,
    index: u32,
    status: NodeStatus,
    now: Micros,
) -> Result<()> {
    let Some(node) = a.nodes.iter_mut().find(|n| n.index == index) else {
        return Err(ApprovalError::Corrupt(format!("node {index} of {}", a.id)));
    };
    node.status = status;
    match status {
        NodeStatus::Active => node.start_time = Some(now),
        NodeStatus::Approved | NodeStatus::Rejected => {
            node.start_time = node.start_time.or(Some(now));
            node.end_time = Some(now);
        }
        NodeStatus::Waiting | NodeStatus::NotReached => {}
    }
    approvals::set_node(tx, &a.id, node).await
}

pub(super) async fn load(tx: &mut Tx, id: &str) -> Result<Approval> {
    approvals::approval_in(tx, id)
        .await?
        .ok_or_else(approval_not_found)
}

/// The one answer for a request that does not exist or that the caller may not see. It names
/// nothing (not even the id the caller sent, which may be a guess being confirmed, or junk meant
/// for a log or a terminal).
pub(super) fn approval_not_found() -> ApprovalError {
    ApprovalError::NotFound("approval not found".to_string())
}
