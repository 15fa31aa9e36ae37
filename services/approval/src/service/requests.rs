//! Submitting, deciding, cancelling and expiring requests.

use shadowsync_common::clock::{Micros, from_timestamp};
use shadowsync_proto::approval::v1 as pb;
use shadowsync_proto::names;

use super::{Service, with_retries};
use crate::convert::attributes_from_proto;
use crate::decision::{advance_from, approvers_at, check_may_decide, node_passed};
use crate::dispatch::enqueue_dispatch;
use crate::error::{ApprovalError, Result};
use crate::events::enqueue_approval_event;
use crate::model::{
    AUTO_APPROVED_COMMENT, Approval, ApprovalStatus, Decision, NodeState, NodeStatus, Outcome,
    PermissionApplication, Person, ResourceRef,
};
use crate::store::{ApprovalTransition, Tx, approvals, permissions as grants, templates};
use crate::template::{is_valid_request_type, select};

/// Longest decision comment.
pub const MAX_COMMENT: usize = 1024;
/// Longest payload summary.
const MAX_SUMMARY: usize = 4096;

/// A validated submission.
#[derive(Debug, Clone)]
pub(super) struct Submission {
    pub request_type: String,
    pub resource: ResourceRef,
    pub attributes: crate::model::MatchAttributes,
    pub payload_summary: String,
    pub payload_sha256: String,
    pub scheduled_time: Option<Micros>,
    pub requester: Person,
    pub submitter: String,
    pub request_id: String,
    /// Set for `permission_apply`: what to grant when approved.
    pub application: Option<PermissionApplication>,
}

impl Submission {
    /// Everything that defines the request: a retry must repeat it exactly.
    fn fingerprint(&self) -> Result<String> {
        Ok(serde_json::to_string(&(
            &self.request_type,
            (&self.resource.resource_type, &self.resource.id),
            &self.attributes,
            &self.payload_summary,
            &self.payload_sha256,
            self.scheduled_time,
            &self.requester.subject,
        ))?)
    }
}

fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit())
}

impl Service {
    /// `SubmitApproval`: checks ownership of the request type, then creates the request.
    ///
    /// Fails with `PermissionDenied` when the caller may not submit this type (only `svc:task`
    /// submits `shadow_table_sync`; `permission_apply` only through `ApplyPermission`), and
    /// `InvalidArgument` for malformed input.
    pub async fn submit(
        &self,
        caller: &Person,
        request: pb::SubmitApprovalRequest,
    ) -> Result<Approval> {
        if !is_valid_request_type(&request.request_type) {
            return Err(ApprovalError::invalid(
                "request_type",
                "must match [a-z][a-z0-9_]{0,63}",
            ));
        }
        let is_service = caller.subject.starts_with("svc:");
        match request.request_type.as_str() {
            names::REQUEST_TYPE_SHADOW_TABLE_SYNC if caller.subject != names::SVC_TASK => {
                return Err(ApprovalError::PermissionDenied(
                    "only svc:task may submit shadow_table_sync requests".into(),
                ));
            }
            names::REQUEST_TYPE_PERMISSION_APPLY => {
                return Err(ApprovalError::PermissionDenied(
                    "permission_apply requests are made through ApplyPermission".into(),
                ));
            }
            _ => {}
        }
        let resource = request.resource.unwrap_or_default();
        if resource.r#type.is_empty() || resource.id.is_empty() {
            return Err(ApprovalError::invalid(
                "resource",
                "type and id are required",
            ));
        }
        if request.request_type == names::REQUEST_TYPE_SHADOW_TABLE_SYNC {
            if resource.r#type != names::RESOURCE_TYPE_TASK || resource.id.parse::<i64>().is_err() {
                return Err(ApprovalError::invalid("resource", "must be task/<task id>"));
            }
            if !is_sha256_hex(&request.payload_sha256) {
                return Err(ApprovalError::invalid(
                    "payload_sha256",
                    "a hex SHA-256 of the SQL script is required",
                ));
            }
        } else if !request.payload_sha256.is_empty() && !is_sha256_hex(&request.payload_sha256) {
            return Err(ApprovalError::invalid(
                "payload_sha256",
                "must be a hex SHA-256",
            ));
        }
        if request.payload_summary.chars().count() > MAX_SUMMARY {
            return Err(ApprovalError::invalid(
                "payload_summary",
                "at most 4,096 characters",
            ));
        }
        if request.request_id.is_empty() {
            return Err(ApprovalError::invalid("request_id", "required"));
        }
        let requester = match (request.on_behalf_of, is_service) {
            (Some(actor), true) if !actor.subject.is_empty() => Person {
                subject: actor.subject,
                name: actor.display_name,
                roles: actor.roles,
            },
            (Some(_), true) => {
                return Err(ApprovalError::invalid("on_behalf_of.subject", "required"));
            }
            (Some(_), false) => {
                return Err(ApprovalError::invalid(
                    "on_behalf_of",
                    "only services submit on behalf of someone",
                ));
            }
            (None, _) => caller.clone(),
        };
        let submission = Submission {
            request_type: request.request_type,
            resource: ResourceRef {
                resource_type: resource.r#type,
                id: resource.id,
                display_name: resource.display_name,
            },
            attributes: attributes_from_proto(request.attributes),
            payload_summary: request.payload_summary,
            payload_sha256: request.payload_sha256.to_ascii_lowercase(),
            scheduled_time: request.scheduled_time.as_ref().map(from_timestamp),
            requester,
            submitter: caller.subject.clone(),
            request_id: request.request_id,
            application: None,
        };
        self.create(submission).await
    }

    /// Creates a request (or returns the one a retry refers to): matches and snapshots the
    /// template, passes leading auto-approve nodes, emits `approval.requested`.
    pub(super) async fn create(&self, submission: Submission) -> Result<Approval> {
        let fingerprint = submission.fingerprint()?;
        let approval = with_retries(|| self.try_create(&submission, &fingerprint)).await?;
        self.committed(Some(&approval.id));
        Ok(approval)
    }

    async fn try_create(&self, s: &Submission, fingerprint: &str) -> Result<Approval> {
        let mut tx = self.store.begin().await?;
        let same = |existing: Approval| {
            if existing.fingerprint == fingerprint {
                Ok(existing)
            } else {
                Err(())
            }
        };
        if let Some(id) = approvals::id_by_request_key(&mut tx, &s.submitter, &s.request_id).await?
        {
            let existing = load(&mut tx, &id).await?;
            return same(existing).map_err(|_| {
                ApprovalError::invalid("request_id", "reused with different parameters")
            });
        }
        let pending = approvals::id_by_resource(
            &mut tx,
            &s.request_type,
            &s.resource.resource_type,
            &s.resource.id,
            true,
        )
        .await?;
        if let Some(id) = pending {
            let existing = load(&mut tx, &id).await?;
            return same(existing).map_err(|_| {
                ApprovalError::AlreadyExists(format!(
                    "a pending request exists for this resource: {id}"
                ))
            });
        }
        let all = templates::all_templates_in(&mut tx).await?;
        let order = templates::priority_in(&mut tx).await?;
        let snapshot = select(
            &order.template_ids,
            &all,
            &s.request_type,
            &s.attributes,
            &s.requester.roles,
        )
        .ok_or_else(|| ApprovalError::Corrupt("no builtin template".into()))?;
        let now = self.now();
        let (auto, next) = advance_from(&snapshot.definition.nodes, 0);
        let nodes = (0..snapshot.definition.nodes.len())
            .map(|index| {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                let (status, start, end) = if auto.contains(&index) {
                    (NodeStatus::Approved, Some(now), Some(now))
                } else if Some(index) == next {
                    (NodeStatus::Active, Some(now), None)
                } else {
                    (NodeStatus::Waiting, None, None)
                };
                NodeState {
                    index,
                    status,
                    start_time: start,
                    end_time: end,
                }
            })
            .collect();
        let approval = Approval {
            id: uuid::Uuid::now_v7().to_string(),
            request_type: s.request_type.clone(),
            resource: s.resource.clone(),
            attributes: s.attributes.clone(),
            requester: s.requester.clone(),
            submitter: s.submitter.clone(),
            request_id: s.request_id.clone(),
            fingerprint: fingerprint.to_string(),
            payload_summary: s.payload_summary.clone(),
            payload_sha256: s.payload_sha256.clone(),
            status: if next.is_some() {
                ApprovalStatus::Pending
            } else {
                ApprovalStatus::Approved
            },
            current_node: next.unwrap_or_else(|| auto.last().copied().unwrap_or(0)),
            approval_deadline: now.saturating_add(snapshot.definition.expirations.approval),
            snapshot,
            scheduled_time: s.scheduled_time,
            cancelled_by: None,
            cancel_reason: None,
            create_time: now,
            update_time: now,
            finish_time: next.is_none().then_some(now),
            version: 1,
            nodes,
            decisions: auto
                .iter()
                .map(|&index| auto_decision(index, now))
                .collect(),
        };
        match approvals::insert_approval(&mut tx, &approval).await {
            // A concurrent submission won: run again to return (or refuse against) it.
            Err(ApprovalError::AlreadyExists(_)) => return Err(ApprovalError::Conflict),
            other => other?,
        }
        if let Some(application) = &s.application {
            grants::insert_application(&mut tx, &approval.id, application).await?;
        }
        enqueue_approval_event(
            &mut tx,
            &approval,
            pb::ApprovalEventType::Requested,
            None,
            now,
        )
        .await?;
        if approval.status == ApprovalStatus::Approved {
            self.on_approved(&mut tx, &approval, None, now).await?;
        }
        tx.commit().await?;
        Ok(approval)
    }

    /// What follows an approval in the same transaction: `approval.decided`, the dispatch of a
    /// `shadow_table_sync` task, the grant of a `permission_apply` request.
    async fn on_approved(
        &self,
        tx: &mut Tx,
        approval: &Approval,
        decision: Option<&Decision>,
        now: Micros,
    ) -> Result<()> {
        enqueue_approval_event(tx, approval, pb::ApprovalEventType::Decided, decision, now).await?;
        match approval.request_type.as_str() {
            names::REQUEST_TYPE_SHADOW_TABLE_SYNC => {
                enqueue_dispatch(tx, approval, now).await?;
            }
            names::REQUEST_TYPE_PERMISSION_APPLY => {
                self.grant_application(tx, approval, now).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// `Approve` / `Reject` by `person`.
    ///
    /// Fails as [`check_may_decide`] does, and with `InvalidArgument` for an over-long comment.
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
        Ok(a)
    }

    /// `CancelApproval` by the requester, the submitting service or an admin. Cancelling a
    /// cancelled request again succeeds without change.
    ///
    /// Fails with `PermissionDenied` for anyone else, `FailedPrecondition` when already final.
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
    /// Fails with `NotFound` when it does not exist or is not visible to them.
    pub(super) async fn visible(&self, tx: &mut Tx, person: &Person, id: &str) -> Result<Approval> {
        let approval = load(tx, id).await?;
        if super::queries::may_see(&approval, person) {
            Ok(approval)
        } else {
            Err(ApprovalError::NotFound(format!("approval {id} not found")))
        }
    }
}

fn auto_decision(node_index: u32, now: Micros) -> Decision {
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

async fn load(tx: &mut Tx, id: &str) -> Result<Approval> {
    approvals::approval_in(tx, id)
        .await?
        .ok_or_else(|| ApprovalError::NotFound(format!("approval {id} not found")))
}
