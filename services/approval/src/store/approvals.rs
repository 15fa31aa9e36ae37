//! Approval requests, their node states, decisions and candidate approvers. A request changes
//! only through [`transition`], a compare-and-set on its version while it is PENDING.

use shadowsync_common::clock::Micros;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{QueryBuilder, Store, Tx, from_json, get_u32, to_json};
use crate::error::{ApprovalError, Result, is_unique_violation};
use crate::model::{
    Approval, ApprovalStatus, Decision, NodeState, NodeStatus, Outcome, Person, ResourceRef,
};

const COLUMNS: &str = "id, request_type, resource_type, resource_id, resource_display, \
    attributes, requester, requester_name, requester_roles, submitter, request_id, fingerprint, \
    payload_summary, payload_sha256, status, template_snapshot, current_node, approval_deadline, \
    scheduled_time, cancelled_by, cancel_reason, create_time, update_time, finish_time, version";

/// A change of a pending request's state.
#[derive(Debug, Clone)]
pub struct ApprovalTransition {
    pub status: ApprovalStatus,
    pub current_node: u32,
    pub cancelled_by: Option<Person>,
    pub cancel_reason: Option<String>,
    pub now: Micros,
}

fn person(subject: String, name: String, roles: &str) -> Result<Person> {
    Ok(Person {
        subject,
        name,
        roles: from_json(roles)?,
    })
}

fn approval_from_row(row: &AnyRow) -> Result<Approval> {
    let status: String = row.try_get("status")?;
    let cancelled_by: Option<String> = row.try_get("cancelled_by")?;
    Ok(Approval {
        id: row.try_get("id")?,
        request_type: row.try_get("request_type")?,
        resource: ResourceRef {
            resource_type: row.try_get("resource_type")?,
            id: row.try_get("resource_id")?,
            display_name: row.try_get("resource_display")?,
        },
        attributes: from_json(&row.try_get::<String, _>("attributes")?)?,
        requester: person(
            row.try_get("requester")?,
            row.try_get("requester_name")?,
            &row.try_get::<String, _>("requester_roles")?,
        )?,
        submitter: row.try_get("submitter")?,
        request_id: row.try_get("request_id")?,
        fingerprint: row.try_get("fingerprint")?,
        payload_summary: row.try_get("payload_summary")?,
        payload_sha256: row.try_get("payload_sha256")?,
        status: ApprovalStatus::parse(&status)
            .ok_or_else(|| ApprovalError::Corrupt(format!("status {status}")))?,
        snapshot: from_json(&row.try_get::<String, _>("template_snapshot")?)?,
        current_node: get_u32(row, "current_node")?,
        approval_deadline: row.try_get("approval_deadline")?,
        scheduled_time: row.try_get("scheduled_time")?,
        cancelled_by: cancelled_by.as_deref().map(from_json).transpose()?,
        cancel_reason: row.try_get("cancel_reason")?,
        create_time: row.try_get("create_time")?,
        update_time: row.try_get("update_time")?,
        finish_time: row.try_get("finish_time")?,
        version: row.try_get("version")?,
        nodes: Vec::new(),
        decisions: Vec::new(),
    })
}

/// Inserts a new request with its node states and candidates.
///
/// Fails with `AlreadyExists` when the database refuses a duplicate (the same submitter and
/// request id, or a second pending request for the resource): the caller looks the winner up.
pub async fn insert_approval(tx: &mut Tx, approval: &Approval) -> Result<()> {
    let a = approval;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO approvals ({COLUMNS}, template_id, priority) VALUES ($1, $2, $3, $4, $5, \
         $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, \
         $24, $25, $26, $27)"
    )))
    .bind(&a.id)
    .bind(&a.request_type)
    .bind(&a.resource.resource_type)
    .bind(&a.resource.id)
    .bind(&a.resource.display_name)
    .bind(to_json(&a.attributes)?)
    .bind(&a.requester.subject)
    .bind(&a.requester.name)
    .bind(to_json(&a.requester.roles)?)
    .bind(&a.submitter)
    .bind(&a.request_id)
    .bind(&a.fingerprint)
    .bind(&a.payload_summary)
    .bind(&a.payload_sha256)
    .bind(a.status.as_str())
    .bind(to_json(&a.snapshot)?)
    .bind(i64::from(a.current_node))
    .bind(a.approval_deadline)
    .bind(a.scheduled_time)
    .bind(a.cancelled_by.as_ref().map(to_json).transpose()?)
    .bind(a.cancel_reason.clone())
    .bind(a.create_time)
    .bind(a.update_time)
    .bind(a.finish_time)
    .bind(a.version)
    .bind(&a.snapshot.template_id)
    .bind(i64::from(a.snapshot.execution_priority))
    .execute(&mut *tx)
    .await
    .map_err(|error| {
        if is_unique_violation(&error) {
            ApprovalError::AlreadyExists("duplicate approval request".into())
        } else {
            error.into()
        }
    })?;
    for (index, node) in a.snapshot.definition.nodes.iter().enumerate() {
        let index = i64::try_from(index).unwrap_or(i64::MAX);
        let candidates = node
            .approver_users
            .iter()
            .map(|u| ("user", u))
            .chain(node.approver_roles.iter().map(|r| ("role", r)));
        for (kind, value) in candidates {
            sqlx::query(
                "INSERT INTO approval_candidates (approval_id, node_index, kind, value) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&a.id)
            .bind(index)
            .bind(kind)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        }
    }
    for node in &a.nodes {
        sqlx::query(
            "INSERT INTO approval_nodes (approval_id, node_index, status, start_time, end_time) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&a.id)
        .bind(i64::from(node.index))
        .bind(node.status.as_str())
        .bind(node.start_time)
        .bind(node.end_time)
        .execute(&mut *tx)
        .await?;
    }
    for decision in &a.decisions {
        insert_decision(tx, &a.id, decision).await?;
    }
    Ok(())
}

/// Records a decision.
///
/// Fails with `FailedPrecondition` when this person already decided at this node (the primary
/// key makes a double decision impossible, whatever races).
pub async fn insert_decision(tx: &mut Tx, approval_id: &str, decision: &Decision) -> Result<()> {
    let (actor, name, roles) = match &decision.actor {
        Some(p) => (p.subject.clone(), p.name.clone(), to_json(&p.roles)?),
        None => (String::new(), String::new(), "[]".to_string()),
    };
    sqlx::query(
        "INSERT INTO decisions (approval_id, node_index, actor, actor_name, actor_roles, outcome, \
         comment, request_id, decide_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(approval_id)
    .bind(i64::from(decision.node_index))
    .bind(actor)
    .bind(name)
    .bind(roles)
    .bind(decision.outcome.as_str())
    .bind(&decision.comment)
    .bind(&decision.request_id)
    .bind(decision.time)
    .execute(&mut *tx)
    .await
    .map_err(|error| {
        if is_unique_violation(&error) {
            ApprovalError::FailedPrecondition("you already decided at this node".into())
        } else {
            error.into()
        }
    })?;
    Ok(())
}

/// Sets a node's status and times.
pub async fn set_node(tx: &mut Tx, approval_id: &str, node: &NodeState) -> Result<()> {
    sqlx::query(
        "UPDATE approval_nodes SET status = $1, start_time = $2, end_time = $3 \
         WHERE approval_id = $4 AND node_index = $5",
    )
    .bind(node.status.as_str())
    .bind(node.start_time)
    .bind(node.end_time)
    .bind(approval_id)
    .bind(i64::from(node.index))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Moves a PENDING request at `expected_version` to a new state; returns the new version.
///
/// Fails with `Conflict` when the request changed meanwhile (a concurrent decision, cancel or
/// expiry won): the caller re-reads and decides again.
pub async fn transition(
    tx: &mut Tx,
    id: &str,
    expected_version: i64,
    change: &ApprovalTransition,
) -> Result<i64> {
    let finish = change.status.is_final().then_some(change.now);
    let updated = sqlx::query(
        "UPDATE approvals SET status = $1, current_node = $2, cancelled_by = $3, \
         cancel_reason = $4, update_time = $5, finish_time = $6, version = $7 \
         WHERE id = $8 AND version = $9 AND status = 'PENDING'",
    )
    .bind(change.status.as_str())
    .bind(i64::from(change.current_node))
    .bind(change.cancelled_by.as_ref().map(to_json).transpose()?)
    .bind(change.cancel_reason.clone())
    .bind(change.now)
    .bind(finish)
    .bind(expected_version + 1)
    .bind(id)
    .bind(expected_version)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 1 {
        Ok(expected_version + 1)
    } else {
        Err(ApprovalError::Conflict)
    }
}

/// A request with its nodes and decisions, inside a transaction.
pub async fn approval_in(tx: &mut Tx, id: &str) -> Result<Option<Approval>> {
    Ok(approvals_in(tx, &[id.to_string()]).await?.pop())
}

/// Requests with their nodes and decisions, in the order of `ids` (missing ones left out):
/// three queries whatever the number, so a page of a list costs the same as one request.
pub async fn approvals_in(tx: &mut Tx, ids: &[String]) -> Result<Vec<Approval>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::default();
    let list = q.texts(ids);
    let rows = q
        .query(format!(
            "SELECT {COLUMNS} FROM approvals WHERE id IN ({list})"
        ))
        .fetch_all(&mut *tx)
        .await?;
    let mut found = std::collections::HashMap::new();
    for row in &rows {
        let approval = approval_from_row(row)?;
        found.insert(approval.id.clone(), approval);
    }
    let nodes = q
        .query(format!(
            "SELECT approval_id, node_index, status, start_time, end_time FROM approval_nodes \
             WHERE approval_id IN ({list}) ORDER BY approval_id, node_index"
        ))
        .fetch_all(&mut *tx)
        .await?;
    for row in &nodes {
        let status: String = row.try_get("status")?;
        let owner: String = row.try_get("approval_id")?;
        if let Some(approval) = found.get_mut(&owner) {
            approval.nodes.push(NodeState {
                index: get_u32(row, "node_index")?,
                status: NodeStatus::parse(&status)
                    .ok_or_else(|| ApprovalError::Corrupt(format!("node status {status}")))?,
                start_time: row.try_get("start_time")?,
                end_time: row.try_get("end_time")?,
            });
        }
    }
    let decisions = q
        .query(format!(
            "SELECT approval_id, node_index, actor, actor_name, actor_roles, outcome, comment, \
             request_id, decide_time FROM decisions WHERE approval_id IN ({list}) \
             ORDER BY approval_id, decide_time, node_index, actor"
        ))
        .fetch_all(&mut *tx)
        .await?;
    for row in &decisions {
        let owner: String = row.try_get("approval_id")?;
        let Some(approval) = found.get_mut(&owner) else {
            continue;
        };
        let outcome: String = row.try_get("outcome")?;
        let actor: String = row.try_get("actor")?;
        approval.decisions.push(Decision {
            node_index: get_u32(row, "node_index")?,
            actor: if actor.is_empty() {
                None
            } else {
                Some(person(
                    actor,
                    row.try_get("actor_name")?,
                    &row.try_get::<String, _>("actor_roles")?,
                )?)
            },
            outcome: Outcome::parse(&outcome)
                .ok_or_else(|| ApprovalError::Corrupt(format!("outcome {outcome}")))?,
            comment: row.try_get("comment")?,
            request_id: row.try_get("request_id")?,
            time: row.try_get("decide_time")?,
        });
    }
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// The id of the request `submitter` created with `request_id`.
pub async fn id_by_request_key(
    tx: &mut Tx,
    submitter: &str,
    request_id: &str,
) -> Result<Option<String>> {
    let row = sqlx::query("SELECT id FROM approvals WHERE submitter = $1 AND request_id = $2")
        .bind(submitter)
        .bind(request_id)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(row.map(|r| r.try_get("id")).transpose()?)
}

/// The id of the newest request for a resource (pending first).
pub async fn id_by_resource(
    tx: &mut Tx,
    request_type: &str,
    resource_type: &str,
    resource_id: &str,
    pending_only: bool,
) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT id FROM approvals WHERE request_type = $1 AND resource_type = $2 \
         AND resource_id = $3 AND ($4 = 0 OR status = 'PENDING') \
         ORDER BY CASE WHEN status = 'PENDING' THEN 0 ELSE 1 END, create_time DESC, id DESC \
         LIMIT 1",
    )
    .bind(request_type)
    .bind(resource_type)
    .bind(resource_id)
    .bind(i64::from(pending_only))
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(|r| r.try_get("id")).transpose()?)
}

impl Store {
    /// Requests by id, in that order.
    pub async fn approvals(&self, ids: &[String]) -> Result<Vec<Approval>> {
        let mut tx = self.begin().await?;
        let approvals = approvals_in(&mut tx, ids).await?;
        tx.commit().await?;
        Ok(approvals)
    }

    /// A request with its nodes and decisions.
    pub async fn approval(&self, id: &str) -> Result<Option<Approval>> {
        let mut tx = self.begin().await?;
        let approval = approval_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(approval)
    }

    /// Ids of pending requests whose approval deadline passed at `now`, oldest deadline first.
    pub async fn due_to_expire(&self, now: Micros, limit: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM approvals WHERE status = 'PENDING' AND approval_deadline <= $1 \
             ORDER BY approval_deadline LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("id")?))
            .collect()
    }
}
