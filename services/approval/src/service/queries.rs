//! Reading requests: visibility, what the caller may do, `GetApproval` and `ListApprovals`.

use shadowsync_proto::approval::v1 as pb;
use shadowsync_proto::names;

use super::Service;
use crate::convert::{approval_to_proto, status_from_proto};
use crate::decision::{check_may_decide, is_named};
use crate::error::{ApprovalError, Result};
use crate::model::{Approval, ApprovalStatus, Person};
use crate::store::{ApprovalFilter, ListScope, approvals};

/// Who may see a request: admins, the requester, the submitter, and the candidates of every
/// node reached so far.
pub fn may_see(a: &Approval, person: &Person) -> bool {
    person.has_role(names::ROLE_ADMIN)
        || a.requester.subject == person.subject
        || a.submitter == person.subject
        || a.snapshot
            .definition
            .nodes
            .iter()
            .take(a.current_node as usize + 1)
            .any(|node| is_named(node, person))
}

/// What `person` may do on `a` now.
pub fn allowed_actions(a: &Approval, person: &Person) -> Vec<pb::ApprovalAction> {
    let mut actions = Vec::new();
    if check_may_decide(a, person, None).is_ok() {
        actions.push(pb::ApprovalAction::Approve);
        actions.push(pb::ApprovalAction::Reject);
    }
    let may_cancel = a.requester.subject == person.subject
        || a.submitter == person.subject
        || person.has_role(names::ROLE_ADMIN);
    if a.status == ApprovalStatus::Pending && may_cancel {
        actions.push(pb::ApprovalAction::Cancel);
    }
    actions
}

/// `a` as `person` sees it.
pub fn view(a: &Approval, person: &Person) -> pb::Approval {
    approval_to_proto(a, allowed_actions(a, person))
}

const DEFAULT_PAGE: i32 = 20;
const MAX_PAGE: i32 = 500;

impl Service {
    /// `GetApproval` by id or by resource (the latest request for it).
    ///
    /// Fails with `NotFound` when there is none or the caller may not see it.
    pub async fn get(
        &self,
        person: &Person,
        key: Option<pb::get_approval_request::Key>,
    ) -> Result<Approval> {
        let mut tx = self.store.begin().await?;
        let id = match key {
            Some(pb::get_approval_request::Key::ApprovalId(id)) => id,
            Some(pb::get_approval_request::Key::Resource(lookup)) => {
                let resource = lookup.resource.unwrap_or_default();
                approvals::id_by_resource(
                    &mut tx,
                    &lookup.request_type,
                    &resource.r#type,
                    &resource.id,
                    false,
                )
                .await?
                .ok_or_else(super::decide::approval_not_found)?
            }
            None => {
                return Err(ApprovalError::invalid(
                    "key",
                    "approval_id or resource is required",
                ));
            }
        };
        let approval = self.visible(&mut tx, person, &id).await?;
        tx.commit().await?;
        Ok(approval)
    }

    /// `ListApprovals`, newest first; the page token is the last row's position, bound to the
    /// filters.
    ///
    /// Fails with `InvalidArgument` for a bad page size or token.
    pub async fn list(
        &self,
        person: &Person,
        request: pb::ListApprovalsRequest,
    ) -> Result<pb::ListApprovalsResponse> {
        let scope = match pb::ApprovalScope::try_from(request.scope) {
            Ok(pb::ApprovalScope::PendingForMe) => ListScope::PendingFor(person.clone()),
            Ok(pb::ApprovalScope::SubmittedByMe) => ListScope::RequestedBy(person.subject.clone()),
            _ if person.has_role(names::ROLE_ADMIN) => ListScope::All,
            _ => ListScope::VisibleTo(person.clone()),
        };
        let statuses = request
            .statuses
            .iter()
            .map(|s| status_from_proto(*s, "statuses"))
            .collect::<Result<Vec<_>>>()?;
        let size = match request.page_size {
            0 => DEFAULT_PAGE,
            n if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(ApprovalError::invalid("page_size", "between 0 and 500")),
        };
        let binding = serde_json::to_string(&(
            request.scope,
            &request.statuses,
            &request.request_types,
            &person.subject,
        ))?;
        let after = parse_token(&request.page_token, &binding)?;
        let page = self
            .store
            .list_approvals(&ApprovalFilter {
                scope,
                statuses,
                request_types: request.request_types,
                after,
                limit: i64::from(size) + 1,
            })
            .await?;
        let more = page.ids.len() > size as usize;
        let page_ids: Vec<(i64, String)> = page.ids.into_iter().take(size as usize).collect();
        let ids: Vec<String> = page_ids.iter().map(|(_, id)| id.clone()).collect();
        let approvals: Vec<pb::Approval> = self
            .store
            .approvals(&ids)
            .await?
            .iter()
            .map(|a| view(a, person))
            .collect();
        let last = page_ids.last().cloned();
        let next_page_token = match (more, last) {
            (true, Some((time, id))) => format!("{time}:{id}:{}", fingerprint(&binding)),
            _ => String::new(),
        };
        Ok(pb::ListApprovalsResponse {
            approvals,
            next_page_token,
            total_size: i32::try_from(page.total).unwrap_or(i32::MAX),
        })
    }
}

/// A short, stable digest of the filters a token is bound to (FNV-1a).
pub(super) fn fingerprint(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn parse_token(token: &str, binding: &str) -> Result<Option<(i64, String)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || ApprovalError::invalid("page_token", "not a token of this listing");
    let mut parts = token.splitn(3, ':');
    let time = parts.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
    let id = parts.next().ok_or_else(bad)?.to_string();
    if parts.next() != Some(fingerprint(binding).as_str()) {
        return Err(bad());
    }
    Ok(Some((time, id)))
}
