//! The executors' API: claims verified with the approval
//! service, leases fencing every later call, per-table results, logs and completion. Every call
//! is idempotent on (task, attempt) and its own key; a token that is not the current lease is
//! ABORTED "lease lost".

use shadowsync_common::auth::Identity;
use shadowsync_common::clock::{from_timestamp, micros, to_timestamp};
use shadowsync_common::plan_digest::PLAN_DIGEST_VERSION;
use shadowsync_proto::approval::v1::{
    ApprovalStatus, GetApprovalRequest, ResourceLookup, ResourceRef, get_approval_request,
};
use shadowsync_proto::names::REQUEST_TYPE_SHADOW_TABLE_SYNC;
use shadowsync_proto::task::v1::*;
use tonic::Status;

use crate::error::{Result, TaskError, from_peer};
use crate::store::lifecycle::{LogLine, TaskTx, Value, append_logs, is_final};
use crate::tasks::lifecycle::{self, CancelledBy, FailedBy};
use crate::tasks::{Tasks, approval};

fn lease_lost() -> Status {
    Status::aborted("lease lost")
}

fn refused(reason: ClaimRefusalReason) -> ClaimExecutionResponse {
    ClaimExecutionResponse {
        outcome: Some(claim_execution_response::Outcome::Refused(reason as i32)),
    }
}

fn is_final_table(status: i32) -> bool {
    matches!(
        TableExecutionStatus::try_from(status),
        Ok(TableExecutionStatus::Succeeded
            | TableExecutionStatus::AlreadyInSync
            | TableExecutionStatus::Failed
            | TableExecutionStatus::NotRun)
    )
}

impl Tasks {
    /// The locked task if `lease_token` is its current, live lease for `attempt`.
    async fn fenced(
        &self,
        id: i64,
        attempt: u32,
        lease_token: &str,
    ) -> std::result::Result<TaskTx, Status> {
        let tx = self.lock(id).await.map_err(Status::from)?;
        let task = &tx.task;
        let live = task.status == TaskStatus::Executing
            && task.lease_token.as_deref() == Some(lease_token)
            && task.attempt == i64::from(attempt)
            && task.lease_until.is_some_and(|until| until > tx.now());
        if live { Ok(tx) } else { Err(lease_lost()) }
    }

    /// Fails the task (approval mismatch, permission revoked) before execution starts.
    async fn fail_before_start(&self, id: i64, reason: &str) -> Result<()> {
        let mut tx = self.lock(id).await?;
        if !is_final(tx.task.status) {
            lifecycle::fail(&mut tx, FailedBy::TaskService, None, reason).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn task_approval(
        &self,
        id: i64,
    ) -> Result<Option<shadowsync_proto::approval::v1::Approval>> {
        let request = GetApprovalRequest {
            key: Some(get_approval_request::Key::Resource(ResourceLookup {
                request_type: REQUEST_TYPE_SHADOW_TABLE_SYNC.to_owned(),
                resource: Some(ResourceRef {
                    r#type: "task".to_owned(),
                    id: id.to_string(),
                    display_name: String::new(),
                }),
            })),
        };
        match self.approvals.client().get_approval(request).await {
            Ok(response) => Ok(response.into_inner().approval),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(from_peer("approval", &status)),
        }
    }

    pub async fn claim(
        &self,
        caller: &Identity,
        request: ClaimExecutionRequest,
    ) -> std::result::Result<ClaimExecutionResponse, Status> {
        if request.executor_id.is_empty() {
            return Err(TaskError::invalid("executor_id", "is required").into());
        }
        let id = request.task_id;
        let task = self
            .store
            .get_task(id)
            .await
            .map_err(TaskError::from)?
            .ok_or_else(|| Status::from(crate::tasks::not_found(id)))?;
        if is_final(task.status) {
            return Ok(refused(ClaimRefusalReason::TaskFinal));
        }
        if i64::from(request.attempt) < task.attempt {
            return Ok(refused(ClaimRefusalReason::StaleAttempt));
        }
        // Ask the approval service directly: a late or lost event never strands a task, and
        // the approval is verified (this task's, this script) before anything runs.
        let approval = self.task_approval(id).await?;
        if let Some(approval) = &approval
            && matches!(task.status, TaskStatus::Submitting | TaskStatus::Approving)
        {
            let mut tx = self.lock(id).await?;
            approval::apply(&mut tx, approval).await?;
            tx.commit().await.map_err(TaskError::from)?;
        }
        let approved = approval
            .as_ref()
            .is_some_and(|a| a.status == ApprovalStatus::Approved as i32);
        if !approved {
            return Ok(refused(ClaimRefusalReason::NotApproved));
        }
        let approval = approval.unwrap_or_default();
        // The plan as it would be served now, hashed as its approval was: any change to the
        // stored tables, statements, strategy or schedule since approval fails the task here.
        let stored = self
            .store
            .task_plan_digest(id)
            .await
            .map_err(TaskError::from)?
            .ok_or_else(|| Status::from(crate::tasks::not_found(id)))?;
        if stored.version != PLAN_DIGEST_VERSION {
            // The old hash bound only the statements' text: never accept it, not even by
            // recomputing it.
            self.fail_before_start(
                id,
                "the task was approved under an older plan format; initiate again",
            )
            .await?;
            return Ok(refused(ClaimRefusalReason::ApprovalMismatch));
        }
        let served = stored.approved();
        if !approval::belongs_to(&approval, id)
            || approval.payload_sha256 != task.script_sha256
            || served != approval.payload_sha256
            || (!task.approval_id.is_empty() && approval.id != task.approval_id)
        {
            self.fail_before_start(
                id,
                "the approval does not match this task's script: its plan (tables, statements, \
                 error strategy or schedule) changed since approval",
            )
            .await?;
            return Ok(refused(ClaimRefusalReason::ApprovalMismatch));
        }
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
            self.fail_before_start(
                id,
                "the creator's shadow_table_sync permission no longer holds",
            )
            .await?;
            return Ok(refused(ClaimRefusalReason::PermissionRevoked));
        }

        let mut tx = self.lock(id).await?;
        let now = tx.now();
        let task = tx.task.clone();
        if is_final(task.status) {
            return Ok(refused(ClaimRefusalReason::TaskFinal));
        }
        if task.abort_requested {
            // While an executor holds a live lease it stops between statements and completes
            // the task; otherwise no one will, so the claim that finds the abort ends it.
            let held = task.status == TaskStatus::Executing
                && task.lease_token.is_some()
                && task.lease_until.is_some_and(|until| until > now);
            if !held {
                let by = if task.status == TaskStatus::Executing && task.lease_token.is_some() {
                    CancelledBy::abort_unanswered()
                } else {
                    CancelledBy::abort_before_execution()
                };
                lifecycle::cancel(&mut tx, by, None, vec![("lease_token", Value::Text(None))])
                    .await?;
                tx.commit().await.map_err(TaskError::from)?;
            }
            return Ok(refused(ClaimRefusalReason::Aborted));
        }
        if i64::from(request.attempt) < task.attempt {
            return Ok(refused(ClaimRefusalReason::StaleAttempt));
        }
        let live = task.lease_until.is_some_and(|until| until > now);
        let same = task.lease_owner.as_deref() == Some(request.executor_id.as_str())
            && task.attempt == i64::from(request.attempt);
        let token = match task.status {
            TaskStatus::Executing if live && same => task.lease_token.clone().unwrap_or_default(),
            TaskStatus::Executing if live => return Ok(refused(ClaimRefusalReason::LeaseHeld)),
            TaskStatus::WaitForExecution | TaskStatus::Executing => {
                let token = uuid::Uuid::new_v4().simple().to_string();
                let lease = self.config.execution_lease;
                let started = task.started_at.unwrap_or(now);
                let deadline = task
                    .execution_deadline
                    .unwrap_or(started + task.execution_expiration);
                let changes = vec![
                    ("lease_token", Value::from(token.clone())),
                    ("lease_owner", Value::from(request.executor_id.clone())),
                    ("lease_until", Value::Int(Some(now + micros(lease)))),
                    ("attempt", i64::from(request.attempt).into()),
                    ("started_at", Value::Int(Some(started))),
                    ("execution_deadline", Value::Int(Some(deadline))),
                ];
                let actor = Some(crate::actor(caller));
                // The dispatch event may arrive after the claim it led to: record the dispatch
                // here then, so the timeline reads in the order things happened (the late event
                // is ignored as already applied).
                if tx.task.dispatched_attempt < i64::from(request.attempt) {
                    let priority = tx.task.priority;
                    tx.record_dispatch(request.attempt, None, priority)
                        .await
                        .map_err(TaskError::from)?;
                }
                if task.status == TaskStatus::WaitForExecution {
                    lifecycle::advance(&mut tx, TaskStatus::Executing, changes, actor.clone(), "")
                        .await?;
                } else {
                    tx.update(changes).await.map_err(TaskError::from)?;
                }
                tx.timeline(TimelineEntry {
                    kind: TimelineEntryKind::ExecutionStarted as i32,
                    actor,
                    attempt: request.attempt,
                    executor_id: request.executor_id.clone(),
                    ..TimelineEntry::default()
                })
                .await
                .map_err(TaskError::from)?;
                tx.log(
                    LogLevel::Info,
                    &format!(
                        "attempt {} claimed by {}",
                        request.attempt, request.executor_id
                    ),
                )
                .await
                .map_err(TaskError::from)?;
                token
            }
            _ => return Ok(refused(ClaimRefusalReason::NotApproved)),
        };
        let task = tx.commit().await.map_err(TaskError::from)?;
        let (_, connection) = self.connections.details(&task.connection_id).await?;
        let limit = crate::page::page_size(request.plan_page_size, 100, 1_000);
        let (tables, next_page_token, total) = self.plan_page(id, -1, limit).await?;
        Ok(ClaimExecutionResponse {
            outcome: Some(claim_execution_response::Outcome::Granted(
                ClaimedExecution {
                    lease: Some(ExecutionLease {
                        lease_token: token,
                        lease_expire_time: task.lease_until.map(to_timestamp),
                        heartbeat_interval: prost_types::Duration::try_from(
                            self.config.execution_lease / 3,
                        )
                        .ok(),
                        execution_deadline: task.execution_deadline.map(to_timestamp),
                    }),
                    connection: Some(connection),
                    database: task.database.clone(),
                    error_strategy: task.error_strategy,
                    tables,
                    plan_next_page_token: next_page_token,
                    plan_table_count: u32::try_from(total).unwrap_or(0),
                    script_sha256: task.script_sha256.clone(),
                    scheduled_time: task.scheduled_at.map(to_timestamp),
                    naming: Some(shadowsync_proto::common::v1::ShadowNaming {
                        mode: i32::try_from(task.naming_mode).unwrap_or(0),
                        affix: task.affix.clone(),
                    }),
                },
            )),
        })
    }

    async fn plan_page(
        &self,
        id: i64,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<ExecutionPlanTable>, String, i64)> {
        let (rows, total) = self.store.plan_tables(id, after, limit + 1).await?;
        let more = i64::try_from(rows.len()).unwrap_or(0) > limit;
        let rows: Vec<_> = rows
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(0))
            .collect();
        let next = match rows.last() {
            Some((plan, _)) if more => {
                crate::page::PageToken::encode(i64::from(plan.ordinal), &format!("plan|{id}"))
            }
            _ => String::new(),
        };
        let tables = rows
            .into_iter()
            .map(|(plan, table)| ExecutionPlanTable {
                plan: Some(plan),
                recorded_status: table.status,
                recorded_statements_done: table.statements_done,
            })
            .collect();
        Ok((tables, next, total))
    }

    pub async fn execution_plan(
        &self,
        request: GetExecutionPlanRequest,
    ) -> std::result::Result<GetExecutionPlanResponse, Status> {
        drop(
            self.fenced(request.task_id, request.attempt, &request.lease_token)
                .await?,
        );
        let after = crate::page::PageToken::parse(
            &request.page_token,
            &format!("plan|{}", request.task_id),
        )?;
        let after = if request.page_token.is_empty() {
            -1
        } else {
            after
        };
        let limit = crate::page::page_size(request.page_size, 100, 1_000);
        let (tables, next_page_token, total) =
            self.plan_page(request.task_id, after, limit).await?;
        Ok(GetExecutionPlanResponse {
            tables,
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    pub async fn heartbeat(
        &self,
        request: HeartbeatRequest,
    ) -> std::result::Result<HeartbeatResponse, Status> {
        let mut tx = self
            .fenced(request.task_id, request.attempt, &request.lease_token)
            .await?;
        let until = tx.now() + micros(self.config.execution_lease);
        tx.update(vec![("lease_until", Value::Int(Some(until)))])
            .await
            .map_err(TaskError::from)?;
        let task = tx.commit().await.map_err(TaskError::from)?;
        Ok(HeartbeatResponse {
            lease_expire_time: Some(to_timestamp(until)),
            abort_requested: task.abort_requested,
        })
    }

    pub async fn report_table(
        &self,
        request: ReportTableResultRequest,
    ) -> std::result::Result<ReportTableResultResponse, Status> {
        let status = TableExecutionStatus::try_from(request.status)
            .ok()
            .filter(|s| {
                !matches!(
                    s,
                    TableExecutionStatus::Unspecified | TableExecutionStatus::Pending
                )
            })
            .ok_or_else(|| {
                Status::from(TaskError::invalid(
                    "status",
                    "RUNNING or a final table status",
                ))
            })?;
        let mut tx = self
            .fenced(request.task_id, request.attempt, &request.lease_token)
            .await?;
        let id = tx.task.id;
        let row = sqlx::query("SELECT status FROM task_tables WHERE task_id = $1 AND source_table = $2 AND synced = 1")
            .bind(id)
            .bind(&request.source_table)
            .fetch_optional(tx.connection())
            .await
            .map_err(TaskError::from)?
            .ok_or_else(|| Status::from(TaskError::invalid("source_table", "not a synced table of this task")))?;
        let recorded: i64 = sqlx::Row::try_get(&row, 0).map_err(TaskError::from)?;
        let recorded = i32::try_from(recorded).unwrap_or(0);
        if is_final_table(recorded) {
            if recorded == status as i32 {
                let abort = tx.task.abort_requested;
                return Ok(ReportTableResultResponse {
                    abort_requested: abort,
                });
            }
            return Err(TaskError::FailedPrecondition(format!(
                "table {} already has a final result",
                request.source_table
            ))
            .into());
        }
        let now = tx.now();
        let final_status = is_final_table(status as i32);
        sqlx::query(
            "UPDATE task_tables SET status = $3, statements_done = $4, error_code = $5, \
             error_message = $6, started_at = COALESCE(started_at, $7), ended_at = $8, \
             attempt = $9, observed_fingerprint = $10 WHERE task_id = $1 AND source_table = $2",
        )
        .bind(id)
        .bind(&request.source_table)
        .bind(i64::from(status as i32))
        .bind(i64::from(request.statements_done))
        .bind(&request.error_code)
        .bind(&request.error_message)
        .bind(request.start_time.as_ref().map_or(now, from_timestamp))
        .bind(final_status.then(|| request.end_time.as_ref().map_or(now, from_timestamp)))
        .bind(i64::from(request.attempt))
        .bind(&request.observed_shadow_fingerprint)
        .execute(tx.connection())
        .await
        .map_err(TaskError::from)?;
        if final_status {
            tx.timeline(TimelineEntry {
                kind: TimelineEntryKind::TableFinished as i32,
                comment: request.error_message.clone(),
                attempt: request.attempt,
                table: request.source_table.clone(),
                table_status: status as i32,
                ..TimelineEntry::default()
            })
            .await
            .map_err(TaskError::from)?;
        }
        let task = tx.commit().await.map_err(TaskError::from)?;
        Ok(ReportTableResultResponse {
            abort_requested: task.abort_requested,
        })
    }

    pub async fn append_logs(
        &self,
        request: AppendLogsRequest,
    ) -> std::result::Result<AppendLogsResponse, Status> {
        if request.entries.len() > 1_000 {
            return Err(TaskError::invalid("entries", "at most 1,000 per call").into());
        }
        let mut tx = self
            .fenced(request.task_id, request.attempt, &request.lease_token)
            .await?;
        let origin = tx.task.lease_owner.clone().unwrap_or_default();
        let now = tx.now();
        let lines: Vec<LogLine> = request
            .entries
            .iter()
            .map(|entry| LogLine {
                time: entry.time.as_ref().map_or(now, from_timestamp),
                level: i64::from(
                    entry
                        .level
                        .clamp(LogLevel::Info as i32, LogLevel::Error as i32),
                ),
                message: entry.message.chars().take(64 * 1024).collect(),
                table: entry.table.clone(),
                attempt: i64::from(request.attempt),
                origin: origin.clone(),
                client_sequence: Some(i64::try_from(entry.client_sequence).unwrap_or(i64::MAX)),
            })
            .collect();
        let id = tx.task.id;
        let accepted = append_logs(tx.connection(), id, &lines)
            .await
            .map_err(TaskError::from)?;
        tx.commit().await.map_err(TaskError::from)?;
        Ok(AppendLogsResponse { accepted })
    }

    pub async fn complete(
        &self,
        caller: &Identity,
        request: CompleteExecutionRequest,
    ) -> std::result::Result<CompleteExecutionResponse, Status> {
        let outcome = ExecutionOutcome::try_from(request.outcome)
            .ok()
            .filter(|o| *o != ExecutionOutcome::Unspecified)
            .ok_or_else(|| {
                Status::from(TaskError::invalid(
                    "outcome",
                    "SUCCEEDED, FAILED or CANCELLED",
                ))
            })?;
        let mut tx = self.lock(request.task_id).await?;
        let task = tx.task.clone();
        let ours = task.lease_token.as_deref() == Some(request.lease_token.as_str())
            && task.attempt == i64::from(request.attempt);
        if !ours {
            return Err(lease_lost());
        }
        let expected = match outcome {
            ExecutionOutcome::Succeeded => TaskStatus::ExecutionSucceeded,
            ExecutionOutcome::Failed => TaskStatus::ExecutionFailed,
            _ => TaskStatus::Cancelled,
        };
        if is_final(task.status) {
            return if task.status == expected {
                Ok(CompleteExecutionResponse {
                    status: task.status as i32,
                })
            } else {
                Err(lease_lost())
            };
        }
        if task.status != TaskStatus::Executing || task.lease_until.is_none_or(|u| u <= tx.now()) {
            return Err(lease_lost());
        }
        let progress = self.store_progress_in(&mut tx).await?;
        let derived = if progress.0 > 0 {
            TaskStatus::ExecutionFailed
        } else if progress.1 > 0 {
            TaskStatus::Cancelled
        } else {
            TaskStatus::ExecutionSucceeded
        };
        let agrees =
            derived == expected || (expected == TaskStatus::Cancelled && task.abort_requested);
        if !agrees {
            return Err(TaskError::FailedPrecondition(format!(
                "the recorded table results say {}, not {:?}",
                crate::store::lifecycle::status_name(derived),
                outcome
            ))
            .into());
        }
        let actor = Some(crate::actor(caller));
        let message = request.message.clone();
        match expected {
            TaskStatus::ExecutionSucceeded => lifecycle::succeed(&mut tx, actor, &message).await?,
            TaskStatus::ExecutionFailed => {
                lifecycle::fail(&mut tx, FailedBy::Executor, actor, &message).await?;
            }
            _ => {
                lifecycle::cancel(
                    &mut tx,
                    CancelledBy::Executor { message },
                    actor,
                    Vec::new(),
                )
                .await?;
            }
        }
        tx.commit().await.map_err(TaskError::from)?;
        Ok(CompleteExecutionResponse {
            status: expected as i32,
        })
    }

    /// (failed tables, tables without a final result) among the synced ones.
    async fn store_progress_in(&self, tx: &mut TaskTx) -> Result<(i64, i64)> {
        let id = tx.task.id;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COALESCE(SUM(CASE WHEN status = {failed} THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN status IN ({pending}, {running}, {not_run}) THEN 1 ELSE 0 END), 0) \
             FROM task_tables WHERE task_id = $1 AND synced = 1",
            failed = TableExecutionStatus::Failed as i32,
            pending = TableExecutionStatus::Pending as i32,
            running = TableExecutionStatus::Running as i32,
            not_run = TableExecutionStatus::NotRun as i32,
        )))
        .bind(id)
        .fetch_one(tx.connection())
        .await?;
        Ok((sqlx::Row::try_get(&row, 0)?, sqlx::Row::try_get(&row, 1)?))
    }
}
