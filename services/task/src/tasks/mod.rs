//! Tasks: submission behind an approval, the status machine
//! driven by approval events (confirmed with the approval service), reads, abort, decisions
//! forwarded to the approval service, and the log.
//!
//! - [`submit`]: SubmitTask and the submitter that turns a hidden SUBMITTING task into an
//!   APPROVING one once its approval request exists;
//! - [`lifecycle`]: the legal moves of the status machine and the ways a task ends; every
//!   status change goes through it;
//! - [`approval`]: applying an approval's state to a task (events, claims, decisions);
//! - [`actions`]: abort, approve/reject;
//! - [`read`]: GetTask, ListTasks and the paged settings, timeline and log;
//! - [`sweep`]: the background loops (submitter, approval cancellation, leases, expiry, events).

pub mod actions;
pub mod approval;
pub mod lifecycle;
pub mod read;
pub mod submit;
pub mod sweep;

use std::sync::Arc;

use shadowsync_common::auth::Identity;
use shadowsync_common::clock::{Clock, to_timestamp};
use shadowsync_common::queue::MessageQueue;
use shadowsync_proto::common::v1::{ShadowNaming, SyncRange};
use shadowsync_proto::task::v1::{Task, TaskAction, TaskProgress, TaskStatus, TaskType};

use crate::analysis::Analyses;
use crate::config::TaskConfig;
use crate::connections::Connections;
use crate::error::{Result, TaskError};
use crate::peers::{Approvals, PermissionChecker};
use crate::store::SqlStore;
use crate::store::lifecycle::{TaskRecord, TaskTx, is_final, principals_of};

/// The task use cases.
#[derive(Clone)]
pub struct Tasks {
    pub(crate) store: SqlStore,
    pub(crate) approvals: Approvals,
    pub(crate) permissions: Arc<dyn PermissionChecker>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: TaskConfig,
    pub(crate) analyses: Analyses,
    pub(crate) connections: Connections,
    pub(crate) queue: Option<Arc<dyn MessageQueue>>,
}

impl Tasks {
    /// A locked task, NOT_FOUND when missing.
    pub(crate) async fn lock(&self, id: i64) -> Result<TaskTx> {
        TaskTx::begin(&self.store, id, self.clock.now())
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// The task if `caller` may see it: admins, its creator, and anyone named on one of its
    /// approval nodes. Others get NOT_FOUND, as for a missing task, so ids do not leak.
    pub(crate) async fn visible(&self, caller: &Identity, id: i64) -> Result<TaskRecord> {
        let record = self
            .store
            .get_task(id)
            .await?
            .filter(|task| task.status != TaskStatus::Unspecified)
            .ok_or_else(|| not_found(id))?;
        if caller.is_admin() || record.creator == caller.subject {
            return Ok(record);
        }
        let principals = principals_of(&caller.subject, &caller.roles);
        if self.store.is_principal(id, &principals, false).await? {
            return Ok(record);
        }
        Err(not_found(id))
    }

    /// The wire form of a task for `caller`, with progress.
    pub(crate) async fn view(&self, caller: &Identity, record: &TaskRecord) -> Result<Task> {
        let progress = self.store.progress(record.id).await?;
        let principals = principals_of(&caller.subject, &caller.roles);
        let candidate = record.status == TaskStatus::Approving
            && record.creator != caller.subject
            && self
                .store
                .is_principal(record.id, &principals, true)
                .await?;
        Ok(task_view(record, caller, candidate, progress))
    }
}

pub(crate) fn not_found(id: i64) -> TaskError {
    TaskError::NotFound(format!("task {id} not found"))
}

/// What `caller` may do with `record` now; `candidate` when the caller is a candidate approver
/// of its current node.
pub fn allowed_actions(record: &TaskRecord, caller: &Identity, candidate: bool) -> Vec<i32> {
    let mut actions = vec![TaskAction::View as i32];
    if candidate && record.status == TaskStatus::Approving && record.creator != caller.subject {
        actions.push(TaskAction::Approve as i32);
        actions.push(TaskAction::Reject as i32);
    }
    let owner = caller.is_admin() || record.creator == caller.subject;
    if owner && !is_final(record.status) {
        actions.push(TaskAction::Abort as i32);
    }
    if owner && is_final(record.status) {
        actions.push(TaskAction::InitiateAgain as i32);
    }
    actions
}

/// The wire form of a stored task.
pub fn task_view(
    record: &TaskRecord,
    caller: &Identity,
    candidate: bool,
    progress: TaskProgress,
) -> Task {
    let count = |value: i64| u32::try_from(value).unwrap_or(0);
    Task {
        id: record.id,
        r#type: TaskType::ShadowTableSync as i32,
        status: record.status as i32,
        connection_id: record.connection_id.clone(),
        connection_name: record.connection_name.clone(),
        database: record.database.clone(),
        execution_mode: record.execution_mode,
        scheduled_time: record.scheduled_at.map(to_timestamp),
        error_strategy: record.error_strategy,
        remarks: record.remarks.clone(),
        creator: Some(record.creator_actor()),
        create_time: Some(to_timestamp(record.created_at)),
        update_time: Some(to_timestamp(record.updated_at)),
        finish_time: record.finished_at.map(to_timestamp),
        approval_id: record.approval_id.clone(),
        approval_wait: record
            .approval_wait
            .clone()
            .filter(|_| record.status == TaskStatus::Approving),
        priority: count(record.priority),
        allowed_actions: allowed_actions(record, caller, candidate),
        analysis_id: record.analysis_id.clone(),
        range: i32::try_from(record.range).unwrap_or(SyncRange::Unspecified as i32),
        naming: Some(ShadowNaming {
            mode: i32::try_from(record.naming_mode).unwrap_or(0),
            affix: record.affix.clone(),
        }),
        tables_to_sync_count: count(record.tables_to_sync),
        tables_not_synced_count: count(record.tables_not_synced),
        statement_count: count(record.statement_count),
        script_sha256: record.script_sha256.clone(),
        progress: Some(progress),
        attempt: count(record.attempt),
        abort_requested: record.abort_requested,
    }
}
