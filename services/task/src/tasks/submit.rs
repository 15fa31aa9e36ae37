//! `SubmitTask`: validate, check the permission, freeze the analysis into a hidden SUBMITTING
//! task, then request approval. The SUBMITTING row is the durable intent: when the approval
//! service is down the task waits there and the submitter ([`Tasks::advance_submission`])
//! requests approval later. The request is keyed by the task id, so retries never orphan one.

use sha2::{Digest, Sha256};
use shadowsync_common::auth::Identity;
use shadowsync_common::clock::{from_timestamp, to_timestamp};
use shadowsync_common::text::counted;
use shadowsync_proto::approval::v1::{MatchAttributes, ResourceRef, SubmitApprovalRequest};
use shadowsync_proto::names::REQUEST_TYPE_SHADOW_TABLE_SYNC;
use shadowsync_proto::task::v1::{
    ErrorStrategy, ExecutionMode, LogLevel, SubmitTaskRequest, Task, TaskStatus, TimelineEntryKind,
};
use tracing::{info, warn};

use super::lifecycle::{self, CancelledBy};
use super::{Tasks, approval};
use crate::error::{Result, TaskError, from_peer};
use crate::store::analyses::AnalysisRepository as _;
use crate::store::lifecycle::{TaskRecord, Value};
use crate::store::rows::AnalysisRowRepository as _;
use crate::store::submission::SubmitRefused;
use crate::store::{AnalysisRecord, status};

const MAX_REMARKS: usize = 2_000;

fn parameters_hash(request: &SubmitTaskRequest) -> String {
    let text = format!(
        "{}\u{0}{}\u{0}{:?}\u{0}{}\u{0}{}",
        request.analysis_id,
        request.execution_mode,
        request.scheduled_time.as_ref().map(from_timestamp),
        request.error_strategy,
        request.remarks
    );
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Tasks {
    /// Submits an analysis as a task. See the rpc's contract for the errors.
    pub async fn submit(&self, caller: &Identity, request: SubmitTaskRequest) -> Result<Task> {
        let now = self.clock.now();
        if request.analysis_id.is_empty() {
            return Err(TaskError::invalid("analysis_id", "is required"));
        }
        let scheduled_at = match ExecutionMode::try_from(request.execution_mode) {
            Ok(ExecutionMode::Immediate) => {
                if request.scheduled_time.is_some() {
                    return Err(TaskError::invalid(
                        "scheduled_time",
                        "must be unset for IMMEDIATE execution",
                    ));
                }
                None
            }
            Ok(ExecutionMode::Scheduled) => {
                let at = request
                    .scheduled_time
                    .as_ref()
                    .map(from_timestamp)
                    .ok_or_else(|| {
                        TaskError::invalid("scheduled_time", "is required for SCHEDULED")
                    })?;
                if at <= now {
                    return Err(TaskError::invalid(
                        "scheduled_time",
                        "must be in the future",
                    ));
                }
                Some(at)
            }
            _ => {
                return Err(TaskError::invalid(
                    "execution_mode",
                    "IMMEDIATE or SCHEDULED is required",
                ));
            }
        };
        if !matches!(
            ErrorStrategy::try_from(request.error_strategy),
            Ok(ErrorStrategy::Abort | ErrorStrategy::Continue)
        ) {
            return Err(TaskError::invalid(
                "error_strategy",
                "ABORT or CONTINUE is required",
            ));
        }
        if request.remarks.chars().count() > MAX_REMARKS {
            return Err(TaskError::invalid("remarks", "at most 2,000 characters"));
        }
        let parameters = parameters_hash(&request);
        let analysis = match self.store.get_analysis(&request.analysis_id).await? {
            Some(record) if record.creator == caller.subject => record,
            _ => {
                return Err(TaskError::NotFound(format!(
                    "analysis {} not found",
                    request.analysis_id
                )));
            }
        };
        if let Some(existing) = self
            .replay(caller, &request, &parameters, &analysis)
            .await?
        {
            return Ok(existing);
        }
        if analysis.status != status::SUCCEEDED {
            return Err(TaskError::FailedPrecondition(format!(
                "analysis {} has not succeeded",
                analysis.id
            )));
        }
        let counts = self.store.row_counts(&analysis.id).await?;
        if counts.synced == 0 {
            return Err(TaskError::FailedPrecondition(format!(
                "analysis {} has no table to sync",
                analysis.id
            )));
        }
        let permission_pending = match self
            .permissions
            .may_sync(caller, &analysis.connection_id, &analysis.database)
            .await
        {
            Ok(true) => false,
            Ok(false) => {
                return Err(TaskError::PermissionDenied(format!(
                    "no shadow_table_sync permission on connection {} database {}",
                    analysis.connection_id, analysis.database
                )));
            }
            // The submitter checks before requesting approval.
            Err(TaskError::Unavailable(_)) => true,
            Err(other) => return Err(other),
        };
        let connection = self.connections.record(&analysis.connection_id).await?;
        let record = TaskRecord {
            analysis_id: analysis.id.clone(),
            connection_id: analysis.connection_id.clone(),
            connection_name: connection.name.clone(),
            environment: connection.environment.clone(),
            database: analysis.database.clone(),
            creator: caller.subject.clone(),
            creator_name: caller.name.clone(),
            creator_roles: caller.roles.clone(),
            execution_mode: request.execution_mode,
            scheduled_at,
            error_strategy: request.error_strategy,
            remarks: request.remarks.clone(),
            range: analysis.range,
            requested_tables: analysis.requested_tables.clone(),
            naming_mode: analysis.naming_mode,
            affix: analysis.affix.clone(),
            // Set by the store from the frozen plan.
            script_sha256: String::new(),
            submit_request_id: request.request_id.clone(),
            submit_parameters_sha256: parameters.clone(),
            permission_pending,
            ..TaskRecord::default()
        };
        let id = match self
            .store
            .insert_task(&record, &analysis.preview.sha256, now)
            .await?
        {
            Ok(id) => id,
            Err(SubmitRefused::ConnectionGone) => {
                return Err(TaskError::NotFound(format!(
                    "connection {} not found",
                    analysis.connection_id
                )));
            }
            Err(SubmitRefused::PreviewChanged) => {
                return Err(TaskError::FailedPrecondition(format!(
                    "analysis {}'s plan no longer matches its preview; start a new analysis",
                    analysis.id
                )));
            }
            Err(SubmitRefused::AnalysisMoved) => {
                // A concurrent submission won: answer as a retry would.
                let analysis = self
                    .store
                    .get_analysis(&analysis.id)
                    .await?
                    .ok_or_else(|| TaskError::NotFound("analysis gone".into()))?;
                return match self
                    .replay(caller, &request, &parameters, &analysis)
                    .await?
                {
                    Some(task) => Ok(task),
                    None => Err(TaskError::FailedPrecondition(format!(
                        "analysis {} is no longer SUCCEEDED",
                        analysis.id
                    ))),
                };
            }
        };
        let mut tx = self.lock(id).await?;
        tx.note(
            TimelineEntryKind::Initiated,
            Some(crate::actor(caller)),
            &request.remarks,
        )
        .await?;
        let message = format!(
            "submitted by {}: {} to sync, {}, script sha256 {}",
            caller.subject,
            counted(u64::try_from(tx.task.tables_to_sync).unwrap_or(0), "table"),
            counted(
                u64::try_from(tx.task.statement_count).unwrap_or(0),
                "statement"
            ),
            tx.task.script_sha256
        );
        tx.log(LogLevel::Info, &message).await?;
        tx.commit().await?;
        info!(task_id = id, analysis_id = %analysis.id, "task submitted");
        if let Err(error) = self.advance_submission(id).await {
            warn!(task_id = id, %error, "approval request deferred");
        }
        let record = self
            .store
            .get_task(id)
            .await?
            .ok_or_else(|| super::not_found(id))?;
        self.view(caller, &record).await
    }

    /// The task an earlier call with this `request_id` created; FAILED_PRECONDITION when the
    /// analysis went into a task under another request id.
    async fn replay(
        &self,
        caller: &Identity,
        request: &SubmitTaskRequest,
        parameters: &str,
        analysis: &AnalysisRecord,
    ) -> Result<Option<Task>> {
        if analysis.status != status::SUBMITTED {
            return Ok(None);
        }
        let Some(task) = self.store.task_of_analysis(&analysis.id).await? else {
            return Ok(None);
        };
        if request.request_id.is_empty() || task.submit_request_id != request.request_id {
            return Err(TaskError::FailedPrecondition(format!(
                "analysis {} was already submitted as task {}",
                analysis.id, task.id
            )));
        }
        if task.submit_parameters_sha256 != parameters {
            return Err(TaskError::invalid(
                "request_id",
                "already used with different parameters",
            ));
        }
        Ok(Some(self.view(caller, &task).await?))
    }

    /// Requests approval for a SUBMITTING task (checking the permission first when the
    /// submission could not); on UNAVAILABLE the task stays SUBMITTING and is retried with
    /// backoff.
    pub async fn advance_submission(&self, id: i64) -> Result<()> {
        let Some(task) = self.store.get_task(id).await? else {
            return Ok(());
        };
        if task.status != TaskStatus::Submitting {
            return Ok(());
        }
        let outcome = self.request_approval(&task).await;
        let mut tx = self.lock(id).await?;
        match outcome {
            Ok(Some(approval)) => {
                if tx.task.status == TaskStatus::Cancelled {
                    // Aborted while the request was being made: cancel it (sweeper retries).
                    tx.update(vec![
                        ("approval_id", approval.id.clone().into()),
                        ("approval_cancel_pending", true.into()),
                    ])
                    .await?;
                } else {
                    approval::apply(&mut tx, &approval).await?;
                }
            }
            Ok(None) => {
                if tx.task.status == TaskStatus::Submitting {
                    let reason = "the creator no longer has shadow_table_sync permission";
                    lifecycle::cancel(
                        &mut tx,
                        CancelledBy::TaskService {
                            reason: reason.to_owned(),
                            line: (LogLevel::Error, reason.to_owned()),
                        },
                        None,
                        Vec::new(),
                    )
                    .await?;
                }
            }
            Err(error) => {
                let attempts = tx.task.submit_attempts + 1;
                let backoff = 1_000_000i64 << attempts.clamp(0, 6);
                let next = tx.now() + backoff;
                tx.update(vec![
                    ("submit_attempts", attempts.into()),
                    ("submit_next_at", Value::Int(Some(next))),
                ])
                .await?;
                tx.commit().await?;
                return Err(error);
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// `Some(approval)`, or `None` when the creator's permission check says no.
    async fn request_approval(
        &self,
        task: &TaskRecord,
    ) -> Result<Option<shadowsync_proto::approval::v1::Approval>> {
        if task.permission_pending {
            let creator = Identity {
                subject: task.creator.clone(),
                name: task.creator_name.clone(),
                roles: task.creator_roles.clone(),
                expires_at: None,
            };
            if !self
                .permissions
                .may_sync(&creator, &task.connection_id, &task.database)
                .await?
            {
                return Ok(None);
            }
        }
        let request = SubmitApprovalRequest {
            request_type: REQUEST_TYPE_SHADOW_TABLE_SYNC.to_owned(),
            resource: Some(ResourceRef {
                r#type: "task".to_owned(),
                id: task.id.to_string(),
                display_name: format!(
                    "shadow sync of {}.{} ({})",
                    task.connection_name,
                    task.database,
                    counted(u64::try_from(task.tables_to_sync).unwrap_or(0), "table")
                ),
            }),
            attributes: Some(MatchAttributes {
                connection_id: task.connection_id.clone(),
                environment: task.environment.clone(),
                database: task.database.clone(),
                extra: Default::default(),
            }),
            payload_summary: format!(
                "{} to sync, {} not synced, {}",
                counted(u64::try_from(task.tables_to_sync).unwrap_or(0), "table"),
                task.tables_not_synced,
                counted(
                    u64::try_from(task.statement_count).unwrap_or(0),
                    "statement"
                )
            ),
            payload_sha256: task.script_sha256.clone(),
            scheduled_time: task.scheduled_at.map(to_timestamp),
            on_behalf_of: Some(task.creator_actor()),
            request_id: format!("task-{}", task.id),
        };
        let response = self
            .approvals
            .client()
            .submit_approval(request)
            .await
            .map_err(|status| from_peer("approval", &status))?;
        Ok(response.into_inner().approval)
    }
}
