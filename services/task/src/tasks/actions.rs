//! AbortTask, and ApproveTask / RejectTask forwarded to the approval service with the caller's
//! own token (the approval service decides who may decide; the task service never does).

use shadowsync_common::auth::Identity;
use shadowsync_proto::approval::v1::{
    Approval, ApproveRequest, CancelApprovalRequest, RejectRequest,
};
use shadowsync_proto::common::v1::{ShadowNaming, SyncRange};
use shadowsync_proto::task::v1::{
    Analysis, InitiateAgainRequest, LogLevel, StartAnalysisRequest, Task, TaskStatus,
    TimelineEntryKind,
};
use tonic::metadata::{Ascii, MetadataValue};
use tracing::warn;

use super::lifecycle::{self, CancelledBy};
use super::{Tasks, approval};
use crate::analysis::start::Origin;
use crate::error::{Result, TaskError, from_peer};
use crate::store::lifecycle::is_final;

impl Tasks {
    /// Aborts a task that is not final (creator or admin).
    pub async fn abort(&self, caller: &Identity, id: i64, comment: &str) -> Result<Task> {
        let record = self.visible(caller, id).await?;
        if !(caller.is_admin() || record.creator == caller.subject) {
            return Err(TaskError::PermissionDenied(
                "only the creator or an admin may abort a task".into(),
            ));
        }
        let mut tx = self.lock(id).await?;
        let task = tx.task.clone();
        let actor = Some(crate::actor(caller));
        let line = format!("aborted by {}: {comment}", caller.subject);
        match task.status {
            status if is_final(status) => {
                return Err(TaskError::FailedPrecondition(format!(
                    "task {id} is already {}",
                    crate::store::lifecycle::status_name(status)
                )));
            }
            TaskStatus::Executing if task.abort_requested => {}
            TaskStatus::Executing if task.lease_token.is_some() => {
                // A running executor stops between statements and completes as CANCELLED.
                tx.update(vec![("abort_requested", true.into())]).await?;
                tx.note(TimelineEntryKind::AbortRequested, actor, comment)
                    .await?;
                tx.log(LogLevel::Warn, &line).await?;
            }
            status => {
                let cancel_approval = matches!(status, TaskStatus::Approving)
                    || (status == TaskStatus::Submitting && !task.approval_id.is_empty());
                lifecycle::cancel(
                    &mut tx,
                    CancelledBy::User {
                        subject: caller.subject.clone(),
                        comment: comment.to_owned(),
                    },
                    actor,
                    vec![
                        ("abort_requested", true.into()),
                        ("approval_cancel_pending", cancel_approval.into()),
                    ],
                )
                .await?;
            }
        }
        let task = tx.commit().await?;
        if task.approval_cancel_pending
            && let Err(error) = self.cancel_approval(id).await
        {
            warn!(task_id = id, %error, "approval cancellation deferred");
        }
        let record = self.visible(caller, id).await?;
        self.view(caller, &record).await
    }

    /// Cancels the approval of a cancelled task, then clears the flag.
    pub async fn cancel_approval(&self, id: i64) -> Result<()> {
        let Some(task) = self.store.get_task(id).await? else {
            return Ok(());
        };
        if !task.approval_cancel_pending {
            return Ok(());
        }
        if !task.approval_id.is_empty() {
            let request = CancelApprovalRequest {
                approval_id: task.approval_id.clone(),
                reason: format!("task {id} was aborted"),
                request_id: format!("cancel-task-{id}"),
            };
            match self.approvals.client().cancel_approval(request).await {
                Ok(_) => {}
                // Already final (e.g. approved just before): the claim refuses a cancelled task.
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {}
                Err(status) => return Err(from_peer("approval", &status)),
            }
        }
        let mut tx = self.lock(id).await?;
        tx.update(vec![("approval_cancel_pending", false.into())])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Approves (`approve`) or rejects the task's current node as the caller.
    pub async fn decide(
        &self,
        caller: &Identity,
        authorization: Option<MetadataValue<Ascii>>,
        id: i64,
        approve: bool,
        comment: String,
        request_id: String,
    ) -> Result<Task> {
        let record = self.visible(caller, id).await?;
        if record.status != TaskStatus::Approving {
            return Err(TaskError::FailedPrecondition(format!(
                "task {id} is not waiting for approval"
            )));
        }
        let authorization = authorization
            .ok_or_else(|| TaskError::PermissionDenied("no token to forward".into()))?;
        let mut client = self.approvals.as_caller(authorization);
        let expected_node_index = record.approval_wait.as_ref().map(|w| w.node_index);
        let answer = if approve {
            client
                .approve(ApproveRequest {
                    approval_id: record.approval_id.clone(),
                    comment,
                    expected_node_index,
                    request_id,
                })
                .await
                .map(|r| r.into_inner().approval)
        } else {
            client
                .reject(RejectRequest {
                    approval_id: record.approval_id.clone(),
                    comment,
                    expected_node_index,
                    request_id,
                })
                .await
                .map(|r| r.into_inner().approval)
        };
        let approval: Option<Approval> = answer.map_err(|status| match status.code() {
            tonic::Code::PermissionDenied => TaskError::PermissionDenied(status.message().into()),
            tonic::Code::FailedPrecondition | tonic::Code::NotFound => {
                TaskError::FailedPrecondition(status.message().into())
            }
            tonic::Code::InvalidArgument => TaskError::invalid("comment", status.message()),
            _ => from_peer("approval", &status),
        })?;
        if let Some(approval) = approval {
            let mut tx = self.lock(id).await?;
            approval::apply(&mut tx, &approval).await?;
            tx.commit().await?;
        }
        let record = self.visible(caller, id).await?;
        self.view(caller, &record).await
    }
}

impl Tasks {
    /// Starts a fresh analysis from a task's parameters (each overridable), and once it has
    /// succeeded re-applies the task's skips to the tables that still exist.
    pub async fn initiate_again(
        &self,
        caller: &Identity,
        request: InitiateAgainRequest,
    ) -> Result<Analysis> {
        let record = self.visible(caller, request.task_id).await?;
        if !(caller.is_admin() || record.creator == caller.subject) {
            return Err(TaskError::PermissionDenied(
                "only the creator or an admin may initiate a task again".into(),
            ));
        }
        let range = request
            .range
            .map_or(i32::try_from(record.range).unwrap_or(0), |r| r);
        let tables = if request.replace_tables {
            request.tables.clone()
        } else if range == SyncRange::Partial as i32 {
            record.requested_tables.clone()
        } else {
            Vec::new()
        };
        let start = StartAnalysisRequest {
            connection_id: request
                .connection_id
                .clone()
                .unwrap_or_else(|| record.connection_id.clone()),
            database: request
                .database
                .clone()
                .unwrap_or_else(|| record.database.clone()),
            range,
            tables,
            naming: request.naming.clone().or(Some(ShadowNaming {
                mode: i32::try_from(record.naming_mode).unwrap_or(0),
                affix: record.affix.clone(),
            })),
            request_id: request.request_id.clone(),
        };
        let skips: Vec<String> = if request.discard_skips {
            Vec::new()
        } else {
            let filter = crate::store::task_reads::TaskTableFilter {
                synced: Some(false),
                after_ordinal: -1,
                limit: i64::MAX,
                ..Default::default()
            };
            let (rows, _) = self.store.task_tables(record.id, &filter).await?;
            rows.into_iter()
                // Tables skipped only with their parent follow the parent again.
                .filter(|row| row.view.skipped && !row.cascaded)
                .map(|row| row.view.source_table)
                .collect()
        };
        let origin = Origin {
            previous_analysis_id: record.analysis_id.clone(),
            skips,
        };
        let analysis = self.analyses.start_from(caller, start, origin).await?;
        Ok(analysis)
    }
}
