//! The task lifecycle (`docs/architecture.md` §2): the legal moves as one table, and one
//! function per way a task ends. Every status change in this crate goes through here, so a move
//! the table does not hold is FAILED_PRECONDITION and changes nothing, and every ending leaves
//! the same things behind, in the transaction of the locked task:
//! - every synced table final (a table the task stopped before is NOT_RUN: it will never run);
//! - the timeline entry saying how the task ended;
//! - a line in the task log;
//! - the `task.<status>` event (queued by [`TaskTx::transition`], written to the outbox at
//!   commit).
//!
//! The ways a task ends: [`succeed`], [`fail`], [`cancel`], [`expire`], and [`reject`] (whose
//! timeline entry and log line are the rejecting decision's, written with it).

use shadowsync_proto::common::v1::Actor;
use shadowsync_proto::task::v1::{LogLevel, TableExecutionStatus, TaskStatus, TimelineEntryKind};

use crate::error::{Result, TaskError};
use crate::store::lifecycle::{Changes, TaskTx, is_final, status_name};

use TaskStatus::*;

/// Every legal (from, to) move. SUBMITTING is the hidden state a task waits in until its
/// approval request exists; the approval service may answer that request already decided, so
/// SUBMITTING can move wherever APPROVING can.
pub const MOVES: &[(TaskStatus, TaskStatus)] = &[
    (Submitting, Approving),
    (Submitting, WaitForExecution),
    (Submitting, Rejected),
    (Submitting, ApprovalExpired),
    (Submitting, Cancelled),
    (Approving, WaitForExecution),
    (Approving, Rejected),
    (Approving, ApprovalExpired),
    (Approving, Cancelled),
    (WaitForExecution, Executing),
    (WaitForExecution, WaitForExecutionExpired),
    // The claim finds the approval no longer matches the plan, or the creator's permission gone.
    (WaitForExecution, ExecutionFailed),
    (WaitForExecution, Cancelled),
    (Executing, ExecutionSucceeded),
    (Executing, ExecutionFailed),
    (Executing, ExecutionExpired),
    (Executing, Cancelled),
];

/// Whether the table holds the move `from` → `to`.
pub fn is_legal(from: TaskStatus, to: TaskStatus) -> bool {
    MOVES.contains(&(from, to))
}

fn refuse(tx: &TaskTx, to: TaskStatus) -> TaskError {
    TaskError::FailedPrecondition(format!(
        "task {} is {} and cannot become {}",
        tx.task.id,
        status_name(tx.task.status),
        status_name(to)
    ))
}

/// Moves the locked task to the non-final `to` (APPROVING, WAIT_FOR_EXECUTION, EXECUTING)
/// with `changes`. Fails with FAILED_PRECONDITION, changing nothing, when the move is not legal
/// from the task's status or `to` is final (an ending goes through its own function).
pub async fn advance(
    tx: &mut TaskTx,
    to: TaskStatus,
    changes: Changes,
    actor: Option<Actor>,
    comment: &str,
) -> Result<()> {
    if is_final(to) || !is_legal(tx.task.status, to) {
        return Err(refuse(tx, to));
    }
    tx.transition(to, changes, actor, comment).await?;
    Ok(())
}

/// How an ending is recorded.
struct Ending<'a> {
    to: TaskStatus,
    changes: Changes,
    actor: Option<Actor>,
    comment: &'a str,
    /// The timeline entry; `None` when the caller has already written the one that says why.
    entry: Option<(TimelineEntryKind, &'a str)>,
    /// The task-log line; `None` when the caller has already written it.
    line: Option<(LogLevel, String)>,
}

async fn end(tx: &mut TaskTx, ending: Ending<'_>) -> Result<()> {
    let from = tx.task.status;
    if !is_final(ending.to) || !is_legal(from, ending.to) {
        return Err(refuse(tx, ending.to));
    }
    mark_not_run(tx).await?;
    tx.transition(
        ending.to,
        ending.changes,
        ending.actor.clone(),
        ending.comment,
    )
    .await?;
    if let Some((kind, comment)) = ending.entry {
        tx.note(kind, ending.actor, comment).await?;
    }
    if let Some((level, line)) = ending.line {
        tx.log(level, &line).await?;
    }
    Ok(())
}

/// Marks every synced table without a final result NOT_RUN: the task stopped before it.
async fn mark_not_run(tx: &mut TaskTx) -> Result<(), sqlx::Error> {
    let id = tx.task.id;
    let now = tx.now();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE task_tables SET status = {not_run}, ended_at = $2 \
         WHERE task_id = $1 AND synced = 1 AND status IN ({pending}, {running})",
        not_run = TableExecutionStatus::NotRun as i32,
        pending = TableExecutionStatus::Pending as i32,
        running = TableExecutionStatus::Running as i32,
    )))
    .bind(id)
    .bind(now)
    .execute(tx.connection())
    .await?;
    Ok(())
}

/// EXECUTING → EXECUTION_SUCCEEDED: the executor completed and every synced table succeeded
/// or was already in sync.
pub async fn succeed(tx: &mut TaskTx, actor: Option<Actor>, message: &str) -> Result<()> {
    end(
        tx,
        Ending {
            to: ExecutionSucceeded,
            changes: Vec::new(),
            actor,
            comment: message,
            entry: Some((TimelineEntryKind::Succeeded, message)),
            line: Some((
                LogLevel::Info,
                format!("execution ended EXECUTION_SUCCEEDED: {message}"),
            )),
        },
    )
    .await
}

/// Who failed the task: the executor completing it (its tables say it failed), or the task
/// service refusing to start it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedBy {
    Executor,
    TaskService,
}

/// → EXECUTION_FAILED, from WAIT_FOR_EXECUTION (refused at claim) or EXECUTING.
pub async fn fail(tx: &mut TaskTx, by: FailedBy, actor: Option<Actor>, reason: &str) -> Result<()> {
    let line = match by {
        FailedBy::Executor => (
            LogLevel::Warn,
            format!("execution ended EXECUTION_FAILED: {reason}"),
        ),
        FailedBy::TaskService => (LogLevel::Error, reason.to_owned()),
    };
    end(
        tx,
        Ending {
            to: ExecutionFailed,
            changes: Vec::new(),
            actor,
            comment: reason,
            entry: Some((TimelineEntryKind::Failed, reason)),
            line: Some(line),
        },
    )
    .await
}

/// Why a task is cancelled.
#[derive(Debug, Clone)]
pub enum CancelledBy {
    /// A user's abort (`subject` with `comment`), taking effect at once.
    User { subject: String, comment: String },
    /// The executor stopped between statements after an abort and completed as cancelled.
    Executor { message: String },
    /// The task service, for `reason` (an abort the executor can no longer act on, the
    /// creator's permission gone before the approval request, the approval cancelled), with
    /// the task-log `line` saying so.
    TaskService {
        reason: String,
        line: (LogLevel, String),
    },
}

impl CancelledBy {
    /// An abort requested while an executor held the lease, which then lapsed: no executor
    /// will stop between statements and complete the task.
    pub fn abort_unanswered() -> Self {
        let reason = "aborted; the executor stopped answering";
        Self::TaskService {
            reason: reason.to_owned(),
            line: (LogLevel::Warn, reason.to_owned()),
        }
    }

    /// An abort recorded on a task no executor has started.
    pub fn abort_before_execution() -> Self {
        let reason = "aborted before execution";
        Self::TaskService {
            reason: reason.to_owned(),
            line: (LogLevel::Warn, reason.to_owned()),
        }
    }
}

/// → CANCELLED from any state but a final one.
pub async fn cancel(
    tx: &mut TaskTx,
    by: CancelledBy,
    actor: Option<Actor>,
    changes: Changes,
) -> Result<()> {
    let (comment, line) = match &by {
        CancelledBy::User { subject, comment } => (
            comment.clone(),
            (LogLevel::Warn, format!("aborted by {subject}: {comment}")),
        ),
        CancelledBy::Executor { message } => (
            message.clone(),
            (
                LogLevel::Warn,
                format!("execution ended CANCELLED: {message}"),
            ),
        ),
        CancelledBy::TaskService { reason, line } => (reason.clone(), line.clone()),
    };
    end(
        tx,
        Ending {
            to: Cancelled,
            changes,
            actor,
            comment: &comment,
            entry: Some((TimelineEntryKind::Cancelled, &comment)),
            line: Some(line),
        },
    )
    .await
}

/// The expiry of the task's current wait: APPROVING (or SUBMITTING) → APPROVAL_EXPIRED,
/// WAIT_FOR_EXECUTION → WAIT_FOR_EXECUTION_EXPIRED, EXECUTING → EXECUTION_EXPIRED.
pub async fn expire(tx: &mut TaskTx, changes: Changes) -> Result<()> {
    let (to, kind, comment, line) = match tx.task.status {
        Submitting | Approving => (
            ApprovalExpired,
            TimelineEntryKind::ApprovalExpired,
            "approval expired",
            "the approval expired before a decision",
        ),
        WaitForExecution => (
            WaitForExecutionExpired,
            TimelineEntryKind::WaitForExecutionExpired,
            "no executor claimed it within the wait expiration",
            "no executor claimed it within the wait expiration",
        ),
        Executing => (
            ExecutionExpired,
            TimelineEntryKind::ExecutionExpired,
            "execution did not end within the execution expiration",
            "execution did not end within the execution expiration",
        ),
        _ => return Err(refuse(tx, ApprovalExpired)),
    };
    // The approval's own expiry entry has always had no comment; the status event carries it.
    let entry_comment = if to == ApprovalExpired { "" } else { comment };
    end(
        tx,
        Ending {
            to,
            changes,
            actor: None,
            comment,
            entry: Some((kind, entry_comment)),
            line: Some((LogLevel::Error, line.to_owned())),
        },
    )
    .await
}

/// APPROVING (or SUBMITTING) → REJECTED. The rejecting decision's timeline entry and log line
/// were written with the decision, in this transaction; `comment` is the decision's.
pub async fn reject(tx: &mut TaskTx, changes: Changes, comment: &str) -> Result<()> {
    end(
        tx,
        Ending {
            to: Rejected,
            changes,
            actor: None,
            comment,
            entry: None,
            line: None,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_move_leaves_a_final_status_or_reaches_a_hidden_one() {
        for (from, to) in MOVES {
            assert!(!is_final(*from), "{from:?} is final");
            assert_ne!(*to, Submitting);
            assert_ne!(*to, Unspecified);
            assert_ne!(from, to);
        }
    }

    #[test]
    fn every_non_final_status_can_be_cancelled_and_every_final_one_is_reachable() {
        for from in [Submitting, Approving, WaitForExecution, Executing] {
            assert!(is_legal(from, Cancelled), "{from:?}");
        }
        for to in [
            Rejected,
            ApprovalExpired,
            WaitForExecutionExpired,
            ExecutionSucceeded,
            ExecutionFailed,
            ExecutionExpired,
            Cancelled,
        ] {
            assert!(MOVES.iter().any(|(_, t)| *t == to), "{to:?}");
        }
    }
}
