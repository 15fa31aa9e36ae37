//! Listing requests: scopes (everything, visible to a person, pending for a person, requested
//! by a person), status and type filters, keyset paging newest first, and the total.

use shadowsync_common::clock::Micros;
use sqlx::Row as _;

use super::{QueryBuilder, Store};
use crate::error::Result;
use crate::model::{ApprovalStatus, Person};

/// Which requests a list considers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListScope {
    /// Everything (admins).
    All,
    /// What this person may see: theirs, submitted by them, or where they are a candidate of a
    /// node reached so far.
    VisibleTo(Person),
    /// Pending at a node naming this person, excluding their own requests and those they
    /// already decided on.
    PendingFor(Person),
    /// Requested by this person.
    RequestedBy(String),
}

/// Filters of a list, newest first, paged by keyset.
#[derive(Debug, Clone)]
pub struct ApprovalFilter {
    pub scope: ListScope,
    pub statuses: Vec<ApprovalStatus>,
    pub request_types: Vec<String>,
    /// Keyset position: (create_time, id) of the last row of the previous page.
    pub after: Option<(Micros, String)>,
    pub limit: i64,
}

/// One page of request ids, in order, with the total matching the filters.
#[derive(Debug, Clone)]
pub struct ApprovalPage {
    pub ids: Vec<(Micros, String)>,
    pub total: i64,
}

/// `EXISTS` over the candidates of the nodes reached so far (`current_only`: the current node)
/// naming `person` by subject or role.
fn candidate_clause(q: &mut QueryBuilder, person: &Person, current_only: bool) -> String {
    let node = if current_only { "=" } else { "<=" };
    let subject = q.text(person.subject.clone());
    let mut roles = String::new();
    if !person.roles.is_empty() {
        roles = format!(
            " OR (c.kind = 'role' AND c.value IN ({}))",
            q.texts(&person.roles)
        );
    }
    format!(
        "EXISTS (SELECT 1 FROM approval_candidates c WHERE c.approval_id = a.id \
         AND c.node_index {node} a.current_node AND ((c.kind = 'user' AND c.value = {subject}){roles}))"
    )
}

impl Store {
    /// One page of requests matching `filter`, newest first.
    pub async fn list_approvals(&self, filter: &ApprovalFilter) -> Result<ApprovalPage> {
        let mut q = QueryBuilder::default();
        let mut conditions = Vec::new();
        match &filter.scope {
            ListScope::All => {}
            ListScope::VisibleTo(person) => {
                let subject = q.text(person.subject.clone());
                let candidate = candidate_clause(&mut q, person, false);
                conditions.push(format!(
                    "(a.requester = {subject} OR a.submitter = {subject} OR {candidate})"
                ));
            }
            ListScope::PendingFor(person) => {
                let subject = q.text(person.subject.clone());
                let candidate = candidate_clause(&mut q, person, true);
                // Not what they already decided on: one decision counts once per request, so
                // such a request no longer waits for them even where a later node names them.
                conditions.push(format!(
                    "a.status = 'PENDING' AND a.requester <> {subject} AND {candidate} \
                     AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.approval_id = a.id \
                     AND d.actor = {subject})"
                ));
            }
            ListScope::RequestedBy(subject) => {
                conditions.push(format!("a.requester = {}", q.text(subject.clone())));
            }
        }
        if !filter.statuses.is_empty() {
            let statuses: Vec<String> = filter
                .statuses
                .iter()
                .map(|s| s.as_str().to_string())
                .collect();
            conditions.push(format!("a.status IN ({})", q.texts(&statuses)));
        }
        if !filter.request_types.is_empty() {
            conditions.push(format!(
                "a.request_type IN ({})",
                q.texts(&filter.request_types)
            ));
        }
        let base = if conditions.is_empty() {
            "TRUE".to_string()
        } else {
            conditions.join(" AND ")
        };
        let total: i64 = q
            .query(format!(
                "SELECT COUNT(*) AS n FROM approvals a WHERE {base}"
            ))
            .fetch_one(self.db().pool())
            .await?
            .try_get("n")?;
        let mut page = base;
        if let Some((time, id)) = &filter.after {
            let time_a = q.int(*time);
            let id = q.text(id.clone());
            page = format!(
                "{page} AND (a.create_time < {time_a} OR (a.create_time = {time_a} AND a.id < {id}))"
            );
        }
        let limit = q.int(filter.limit);
        let rows = q
            .query(format!(
                "SELECT a.id, a.create_time FROM approvals a WHERE {page} \
                 ORDER BY a.create_time DESC, a.id DESC LIMIT {limit}"
            ))
            .fetch_all(self.db().pool())
            .await?;
        let ids = rows
            .iter()
            .map(|r| Ok((r.try_get("create_time")?, r.try_get("id")?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(ApprovalPage { ids, total })
    }
}
