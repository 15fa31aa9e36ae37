//! [`ExecutionBackend`] over gRPC: `TaskExecutionServiceClient` on an authenticated
//! [`ServiceChannel`] (the executor's own `svc:executor` credentials). Proto types stop here:
//! responses are converted into the crate's types, and a response missing what the contract
//! promises is an error naming the field. A granted claim comes back with its whole plan, and
//! only when that plan hashes to the approved digest ([`ClaimedTask::verify_plan`]); otherwise
//! the claim is rejected and nothing runs.

use std::time::Duration;

use async_trait::async_trait;
use shadowsync_common::clock::{Clock as _, SystemClock, from_timestamp, to_timestamp};
use shadowsync_common::grpc::ServiceChannel;
use shadowsync_common::secret::Secret;
use shadowsync_proto::task::v1 as pb;
use shadowsync_proto::task::v1::task_execution_service_client::TaskExecutionServiceClient;
use shadowsync_schema::ShadowNaming;
use tonic::{Code, Status};

use crate::backend::{
    BackendError, BackendResult, ClaimOutcome, ClaimedTask, DatabaseTarget, ExecutionBackend,
    HeartbeatReply, Lease, LeaseRef, LogEntry, PlanPage, PlanStatement, PlanTable, TableReport,
};

/// Tables per plan page asked for.
const PLAN_PAGE_SIZE: i32 = 500;
/// Used when a lease comes without a heartbeat interval.
const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// The task service's `TaskExecutionService`, as the executor's backend.
#[derive(Debug, Clone)]
pub struct GrpcExecutionBackend {
    client: TaskExecutionServiceClient<ServiceChannel>,
}

impl GrpcExecutionBackend {
    /// Calls the task service over `channel` (see `shadowsync_common::grpc::as_service`).
    pub fn new(channel: ServiceChannel) -> Self {
        Self {
            client: TaskExecutionServiceClient::new(channel),
        }
    }
}

fn map_status(status: Status) -> BackendError {
    match status.code() {
        Code::NotFound => BackendError::NotFound,
        Code::Aborted => BackendError::LeaseLost,
        // UNKNOWN is how tonic reports a call whose connection the peer dropped mid-flight
        // (a task service killed or restarted while answering): the contract never answers
        // with it, so it is a transport failure, and retrying the idempotent call is right.
        // Treated as a refusal, a claim caught by a restart would be dead-lettered and its task
        // stranded in WAIT_FOR_EXECUTION.
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Unknown => {
            BackendError::Unavailable(status.message().to_owned())
        }
        code => BackendError::Rejected(format!("{code:?}: {}", status.message())),
    }
}

fn missing(field: &str) -> BackendError {
    BackendError::Rejected(format!("response without `{field}`"))
}

fn plan_table(table: pb::ExecutionPlanTable) -> BackendResult<PlanTable> {
    let recorded_status = table.recorded_status();
    let plan = table.plan.ok_or_else(|| missing("tables.plan"))?;
    let fingerprints = plan.fingerprints.clone().unwrap_or_default();
    Ok(PlanTable {
        ordinal: plan.ordinal,
        source: plan.source_table,
        shadow: plan.shadow_table,
        source_fingerprint: fingerprints.source,
        shadow_fingerprint: fingerprints.shadow,
        target_fingerprint: fingerprints.target,
        statements: plan
            .statements
            .into_iter()
            .map(|s| PlanStatement {
                index: s.index,
                sql: s.sql,
                expected_fingerprint_after: s.expected_fingerprint_after,
                script_index: s.script_index,
            })
            .collect(),
        depends_on: plan.depends_on,
        recorded_status,
    })
}

fn claimed(
    task_id: i64,
    attempt: u32,
    granted: pb::ClaimedExecution,
) -> BackendResult<ClaimedTask> {
    let error_strategy = granted.error_strategy();
    let lease = granted.lease.ok_or_else(|| missing("granted.lease"))?;
    let connection = granted
        .connection
        .ok_or_else(|| missing("granted.connection"))?;
    let heartbeat_interval = lease
        .heartbeat_interval
        .and_then(|d| Duration::try_from(d).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_HEARTBEAT_INTERVAL);
    let expire_time = lease
        .lease_expire_time
        .as_ref()
        .map(from_timestamp)
        .ok_or_else(|| missing("granted.lease.lease_expire_time"))?;
    let tables = granted
        .tables
        .into_iter()
        .map(plan_table)
        .collect::<BackendResult<Vec<_>>>()?;
    Ok(ClaimedTask {
        lease: Lease {
            lease: LeaseRef {
                task_id,
                attempt,
                token: lease.lease_token,
            },
            expire_time,
            heartbeat_interval,
        },
        connection_id: connection.connection_id,
        target: DatabaseTarget {
            host: connection.host,
            port: u16::try_from(connection.port).map_err(|_| missing("valid connection.port"))?,
            username: connection.username,
            password: Secret::new(connection.password),
            database: granted.database,
            options: connection.options.into_iter().collect(),
        },
        error_strategy,
        scheduled_at: granted.scheduled_time.as_ref().map(from_timestamp),
        tables,
        plan_next_page_token: granted.plan_next_page_token,
        plan_table_count: granted.plan_table_count,
        script_sha256: granted.script_sha256,
        naming: granted.naming.map(naming).transpose()?,
    })
}

impl GrpcExecutionBackend {
    /// Fetches the rest of a granted plan into `claim`, so the whole plan can be checked
    /// against the approved digest before anything runs.
    async fn whole_plan(&self, claim: &mut ClaimedTask) -> BackendResult<()> {
        while !claim.plan_next_page_token.is_empty() {
            let page = self
                .plan_page(&claim.lease.lease, &claim.plan_next_page_token)
                .await?;
            claim.tables.extend(page.tables);
            claim.plan_next_page_token = page.next_page_token;
        }
        Ok(())
    }
}

/// The task's naming rule; an affix the schema engine would refuse is a broken response.
fn naming(naming: shadowsync_proto::common::v1::ShadowNaming) -> BackendResult<ShadowNaming> {
    use shadowsync_proto::common::v1::ShadowNamingMode;
    let affix = Some(naming.affix.as_str()).filter(|affix| !affix.is_empty());
    match ShadowNamingMode::try_from(naming.mode) {
        Ok(ShadowNamingMode::Suffix) => ShadowNaming::suffix(affix),
        Ok(ShadowNamingMode::Prefix | ShadowNamingMode::Unspecified) => ShadowNaming::prefix(affix),
        Err(_) => return Err(missing("valid naming.mode")),
    }
    .map_err(|_| missing("valid naming.affix"))
}

#[async_trait]
impl ExecutionBackend for GrpcExecutionBackend {
    async fn claim(
        &self,
        task_id: i64,
        attempt: u32,
        executor_id: &str,
    ) -> BackendResult<ClaimOutcome> {
        let request = pb::ClaimExecutionRequest {
            task_id,
            attempt,
            executor_id: executor_id.to_owned(),
            plan_page_size: PLAN_PAGE_SIZE,
        };
        let response = self
            .client
            .clone()
            .claim_execution(request)
            .await
            .map_err(map_status)?
            .into_inner();
        match response.outcome {
            Some(pb::claim_execution_response::Outcome::Granted(granted)) => {
                let mut claim = claimed(task_id, attempt, granted)?;
                self.whole_plan(&mut claim).await?;
                if let Err(message) = claim.verify_plan() {
                    tracing::error!(task_id, attempt, %message, "plan refused");
                    // Best effort: the task's log says why nothing ran; the lease lapses.
                    let entry = LogEntry {
                        // Above any sequence the engine numbers its lines with, so this line
                        // never hides one of theirs in the (attempt, sequence) deduplication.
                        client_sequence: u64::MAX,
                        time: SystemClock.now(),
                        level: pb::LogLevel::Error,
                        message: message.clone(),
                        table: String::new(),
                    };
                    let _ = self.append_logs(&claim.lease.lease, &[entry]).await;
                    return Err(BackendError::Rejected(message));
                }
                Ok(ClaimOutcome::Granted(Box::new(claim)))
            }
            Some(pb::claim_execution_response::Outcome::Refused(reason)) => Ok(
                ClaimOutcome::Refused(pb::ClaimRefusalReason::try_from(reason).unwrap_or_default()),
            ),
            None => Err(missing("outcome")),
        }
    }

    async fn plan_page(&self, lease: &LeaseRef, page_token: &str) -> BackendResult<PlanPage> {
        let request = pb::GetExecutionPlanRequest {
            task_id: lease.task_id,
            attempt: lease.attempt,
            lease_token: lease.token.clone(),
            page_size: PLAN_PAGE_SIZE,
            page_token: page_token.to_owned(),
        };
        let response = self
            .client
            .clone()
            .get_execution_plan(request)
            .await
            .map_err(map_status)?
            .into_inner();
        Ok(PlanPage {
            tables: response
                .tables
                .into_iter()
                .map(plan_table)
                .collect::<BackendResult<Vec<_>>>()?,
            next_page_token: response.next_page_token,
        })
    }

    async fn heartbeat(
        &self,
        lease: &LeaseRef,
        current_table: &str,
    ) -> BackendResult<HeartbeatReply> {
        let request = pb::HeartbeatRequest {
            task_id: lease.task_id,
            attempt: lease.attempt,
            lease_token: lease.token.clone(),
            current_table: current_table.to_owned(),
        };
        let response = self
            .client
            .clone()
            .heartbeat(request)
            .await
            .map_err(map_status)?
            .into_inner();
        Ok(HeartbeatReply {
            lease_expire_time: response
                .lease_expire_time
                .as_ref()
                .map(from_timestamp)
                .ok_or_else(|| missing("lease_expire_time"))?,
            abort_requested: response.abort_requested,
        })
    }

    async fn report_table(&self, lease: &LeaseRef, report: &TableReport) -> BackendResult<bool> {
        let request = pb::ReportTableResultRequest {
            task_id: lease.task_id,
            attempt: lease.attempt,
            lease_token: lease.token.clone(),
            source_table: report.source_table.clone(),
            status: report.status.into(),
            statements_done: report.statements_done,
            error_code: report.error_code.clone(),
            error_message: report.error_message.clone(),
            start_time: report.start_time.map(to_timestamp),
            end_time: report.end_time.map(to_timestamp),
            observed_shadow_fingerprint: report.observed_shadow_fingerprint.clone(),
        };
        let response = self
            .client
            .clone()
            .report_table_result(request)
            .await
            .map_err(map_status)?
            .into_inner();
        Ok(response.abort_requested)
    }

    async fn append_logs(&self, lease: &LeaseRef, entries: &[LogEntry]) -> BackendResult<()> {
        let request = pb::AppendLogsRequest {
            task_id: lease.task_id,
            attempt: lease.attempt,
            lease_token: lease.token.clone(),
            entries: entries
                .iter()
                .map(|entry| pb::ExecutionLogEntry {
                    client_sequence: entry.client_sequence,
                    time: Some(to_timestamp(entry.time)),
                    level: entry.level.into(),
                    message: entry.message.clone(),
                    table: entry.table.clone(),
                })
                .collect(),
        };
        self.client
            .clone()
            .append_logs(request)
            .await
            .map_err(map_status)?;
        Ok(())
    }

    async fn complete(
        &self,
        lease: &LeaseRef,
        outcome: pb::ExecutionOutcome,
        message: &str,
    ) -> BackendResult<()> {
        let request = pb::CompleteExecutionRequest {
            task_id: lease.task_id,
            attempt: lease.attempt,
            lease_token: lease.token.clone(),
            outcome: outcome.into(),
            message: message.to_owned(),
        };
        self.client
            .clone()
            .complete_execution(request)
            .await
            .map_err(map_status)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
