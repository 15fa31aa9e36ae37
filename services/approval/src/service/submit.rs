//! Submitting requests: ownership of request types, idempotency, matching and snapshotting,
//! auto-approve nodes, and what follows an approval (dispatch, grant).

use shadowsync_common::auth::ServiceIdentity;
use shadowsync_common::clock::{Micros, from_timestamp};
use shadowsync_common::logged::logged;
use shadowsync_proto::approval::v1 as pb;
use shadowsync_proto::names;

use super::decide::{auto_decision, load, warn_if_exhausted};
use super::{Service, with_retries};
use crate::convert::attributes_from_proto;
use crate::decision::advance_from;
use crate::dispatch::enqueue_dispatch;
use crate::error::{ApprovalError, Result};
use crate::events::enqueue_approval_event;
use crate::model::{
    Approval, ApprovalStatus, Decision, NodeState, NodeStatus, PermissionApplication, Person,
    ResourceRef,
};
use crate::store::{Tx, approvals, permissions as grants, templates};
use crate::template::{is_valid_request_type, select};

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
    #[tracing::instrument(skip_all, fields(caller = %logged(&caller.subject), request_type = %logged(&request.request_type)), err(Display, level = "info"))]
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
        // Exactly one of the configured service identities: `svc:taskx` is a person.
        let is_service = ServiceIdentity::from_subject(&caller.subject).is_some();
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
        tracing::info!(
            approval_id = %approval.id,
            template = %approval.snapshot.name,
            priority = approval.snapshot.execution_priority,
            status = approval.status.as_str(),
            "approval request matched"
        );
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
        // A task is approved once: its request is never replaced, even after a final status
        // (initiating again makes a new task), so a late retry can never orphan a second one.
        // Other resources may be asked for again once their request is final.
        let pending_only = s.request_type != names::REQUEST_TYPE_SHADOW_TABLE_SYNC;
        let existing = approvals::id_by_resource(
            &mut tx,
            &s.request_type,
            &s.resource.resource_type,
            &s.resource.id,
            pending_only,
        )
        .await?;
        if let Some(id) = existing {
            let existing = load(&mut tx, &id).await?;
            // Name the existing request only to whoever may see it anyway (the same submitter or
            // requester): to anyone else its id is information about an invisible request.
            let theirs = existing.submitter == s.submitter
                || existing.requester.subject == s.requester.subject;
            return same(existing).map_err(|_| {
                ApprovalError::AlreadyExists(if theirs {
                    format!("a request exists for this resource: {id}")
                } else {
                    "a request exists for this resource".to_string()
                })
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
        warn_if_exhausted(&approval);
        Ok(approval)
    }

    /// What follows an approval in the same transaction: `approval.decided`, the dispatch of a
    /// `shadow_table_sync` task, the grant of a `permission_apply` request.
    pub(super) async fn on_approved(
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
}
