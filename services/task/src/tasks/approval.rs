//! Applying an approval request's state (as the approval service returned it, never as an event
//! claimed it) to its task: new decisions and node changes go to the timeline and the log, the
//! current candidates become the task's current principals, and a final status moves the task.
//! Versions make it idempotent: a state no newer than the one applied changes nothing.

use prost::Message as _;
use shadowsync_common::clock::{from_timestamp, micros};
use shadowsync_proto::approval::v1::{Approval, ApprovalStatus, DecisionOutcome};
use shadowsync_proto::task::v1::{
    ApprovalWait, LogLevel, TaskStatus, TimelineEntry, TimelineEntryKind,
};

use super::lifecycle::{self, CancelledBy};
use crate::error::Result;
use crate::store::lifecycle::{Changes, TaskTx, Value, is_final, set_principals};

/// Default expirations when the approval carries none (DESIGN §3: 24 h each).
const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

fn duration_micros(duration: Option<&prost_types::Duration>) -> i64 {
    duration
        .and_then(|d| std::time::Duration::try_from(*d).ok())
        .map_or(DAY_MICROS, micros)
}

/// Whether `approval` is this task's: bound to it by resource.
pub fn belongs_to(approval: &Approval, task_id: i64) -> bool {
    approval
        .resource
        .as_ref()
        .is_some_and(|r| r.r#type == "task" && r.id == task_id.to_string())
}

/// Brings the locked task up to `approval`'s state. Returns whether anything changed.
pub async fn apply(tx: &mut TaskTx, approval: &Approval) -> Result<bool> {
    let task = tx.task.clone();
    if !belongs_to(approval, task.id) || approval.version <= task.approval_version {
        return Ok(false);
    }
    if !task.approval_id.is_empty() && task.approval_id != approval.id {
        return Ok(false);
    }
    let first = task.approval_id.is_empty();
    if first {
        let template = approval
            .template
            .as_ref()
            .map_or(String::new(), |t| t.name.clone());
        tx.timeline(TimelineEntry {
            kind: TimelineEntryKind::ApprovalRequested as i32,
            comment: format!("approval {} (template {template})", approval.id),
            ..TimelineEntry::default()
        })
        .await?;
        tx.log(
            LogLevel::Info,
            &format!(
                "approval {} requested; matched template {template:?}",
                approval.id
            ),
        )
        .await?;
    }
    // Decisions not seen yet, in order.
    let seen = usize::try_from(task.approval_decisions).unwrap_or(0);
    for decision in approval.decisions.iter().skip(seen) {
        let outcome = DecisionOutcome::try_from(decision.outcome).unwrap_or_default();
        let kind = match outcome {
            DecisionOutcome::Approved => TimelineEntryKind::Approved,
            DecisionOutcome::AutoApproved => TimelineEntryKind::AutoApproved,
            DecisionOutcome::Rejected => TimelineEntryKind::Rejected,
            DecisionOutcome::Unspecified => continue,
        };
        let node_name = approval
            .nodes
            .get(usize::try_from(decision.node_index).unwrap_or(usize::MAX))
            .and_then(|n| n.node.as_ref())
            .map_or(String::new(), |n| n.name.clone());
        tx.timeline(TimelineEntry {
            kind: kind as i32,
            time: decision.time,
            actor: decision.actor.clone(),
            comment: decision.comment.clone(),
            node_index: decision.node_index,
            node_name: node_name.clone(),
            ..TimelineEntry::default()
        })
        .await?;
        let who = decision
            .actor
            .as_ref()
            .map_or("auto-approval".to_owned(), |a| a.subject.clone());
        let verb = match outcome {
            DecisionOutcome::Rejected => "rejected",
            _ => "approved",
        };
        tx.log(
            LogLevel::Info,
            &format!(
                "{verb} by {who} at node {node_name:?}: {}",
                decision.comment
            ),
        )
        .await?;
    }
    let wait = approval.current.as_ref().map(|c| ApprovalWait {
        node_index: c.node_index,
        node_name: c.node_name.clone(),
        candidate_users: c.users.clone(),
        candidate_roles: c.roles.clone(),
        deadline: c.deadline,
    });
    if let (Some(old), Some(new)) = (&task.approval_wait, &wait)
        && new.node_index > old.node_index
    {
        tx.timeline(TimelineEntry {
            kind: TimelineEntryKind::NodeAdvanced as i32,
            node_index: new.node_index,
            node_name: new.node_name.clone(),
            ..TimelineEntry::default()
        })
        .await?;
    }
    let principals: Vec<String> = wait.as_ref().map_or(Vec::new(), |w| {
        w.candidate_users
            .iter()
            .map(|u| format!("user:{u}"))
            .chain(w.candidate_roles.iter().map(|r| format!("role:{r}")))
            .collect()
    });
    set_principals(tx.connection(), task.id, &principals).await?;
    let snapshot = approval.template.as_ref();
    let expirations = snapshot.and_then(|t| t.expirations.as_ref());
    let mut changes: Changes = vec![
        ("approval_id", approval.id.clone().into()),
        ("approval_version", approval.version.into()),
        (
            "approval_decisions",
            i64::try_from(approval.decisions.len()).unwrap_or(0).into(),
        ),
        (
            "approval_wait",
            Value::Bytes(wait.map(|w| w.encode_to_vec())),
        ),
        (
            "priority",
            i64::from(snapshot.map_or(0, |t| t.execution_priority)).into(),
        ),
        (
            "wait_expiration",
            duration_micros(expirations.and_then(|e| e.wait_for_execution.as_ref())).into(),
        ),
        (
            "execution_expiration",
            duration_micros(expirations.and_then(|e| e.execution.as_ref())).into(),
        ),
    ];
    let status = ApprovalStatus::try_from(approval.status).unwrap_or_default();
    let waiting = matches!(task.status, TaskStatus::Submitting | TaskStatus::Approving);
    if !waiting || is_final(task.status) {
        tx.update(changes).await?;
        return Ok(true);
    }
    match status {
        ApprovalStatus::Pending | ApprovalStatus::Unspecified => {
            if task.status == TaskStatus::Submitting {
                lifecycle::advance(tx, TaskStatus::Approving, changes, None, "").await?;
            } else {
                tx.update(changes).await?;
            }
        }
        ApprovalStatus::Approved => {
            let now = tx.now();
            let approved_at = approval.finish_time.as_ref().map_or(now, from_timestamp);
            let due = task
                .scheduled_at
                .map_or(approved_at, |at| at.max(approved_at));
            changes.push(("due_at", Value::Int(Some(due))));
            changes.push(("attempt", 1i64.into()));
            lifecycle::advance(tx, TaskStatus::WaitForExecution, changes, None, "approved").await?;
            tx.log(LogLevel::Info, "approved; waiting for an executor")
                .await?;
        }
        ApprovalStatus::Rejected => {
            let comment = approval
                .decisions
                .last()
                .map_or(String::new(), |d| d.comment.clone());
            lifecycle::reject(tx, changes, &comment).await?;
        }
        ApprovalStatus::Expired => lifecycle::expire(tx, changes).await?,
        ApprovalStatus::Cancelled => {
            lifecycle::cancel(
                tx,
                CancelledBy::TaskService {
                    reason: "approval cancelled".to_owned(),
                    line: (
                        LogLevel::Warn,
                        "the approval request was cancelled".to_owned(),
                    ),
                },
                None,
                changes,
            )
            .await?;
        }
    }
    Ok(true)
}
