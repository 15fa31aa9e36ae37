//! Thin gRPC adapters: take the caller's identity, call the use case, map the error.

use shadowsync_common::auth::{Identity, ServiceIdentity};
use shadowsync_proto::task::v1::task_execution_service_server::TaskExecutionService;
use shadowsync_proto::task::v1::task_service_server::TaskService;
use shadowsync_proto::task::v1::*;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::limits::Bounded as _;
use crate::{TaskApi, actor};

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl TaskService for TaskApi {
    async fn get_identity(
        &self,
        request: Request<GetIdentityRequest>,
    ) -> Reply<GetIdentityResponse> {
        request.get_ref().bounded()?;
        let identity = Identity::of(&request)?;
        Ok(Response::new(GetIdentityResponse {
            caller: Some(actor(identity)),
            token_expire_time: identity.expires_at.map(|seconds| prost_types::Timestamp {
                seconds: i64::try_from(seconds).unwrap_or(i64::MAX),
                nanos: 0,
            }),
            admin: identity.is_admin(),
        }))
    }

    async fn create_connection(
        &self,
        request: Request<CreateConnectionRequest>,
    ) -> Reply<CreateConnectionResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?.clone();
        let request = request.into_inner();
        let connection = self
            .core()?
            .connections
            .create(&caller, request.connection, &request.request_id)
            .await?;
        Ok(Response::new(CreateConnectionResponse {
            connection: Some(connection),
        }))
    }

    async fn list_connections(
        &self,
        request: Request<ListConnectionsRequest>,
    ) -> Reply<ListConnectionsResponse> {
        request.get_ref().bounded()?;
        Identity::of(&request)?;
        Ok(Response::new(
            self.core()?.connections.list(request.get_ref()).await?,
        ))
    }

    async fn get_connection(
        &self,
        request: Request<GetConnectionRequest>,
    ) -> Reply<GetConnectionResponse> {
        request.get_ref().bounded()?;
        Identity::of(&request)?;
        let connection = self
            .core()?
            .connections
            .get(&request.get_ref().connection_id)
            .await?;
        Ok(Response::new(GetConnectionResponse {
            connection: Some(connection),
        }))
    }

    async fn update_connection(
        &self,
        request: Request<UpdateConnectionRequest>,
    ) -> Reply<UpdateConnectionResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?.clone();
        let connection = self
            .core()?
            .connections
            .update(&caller, request.into_inner())
            .await?;
        Ok(Response::new(UpdateConnectionResponse {
            connection: Some(connection),
        }))
    }

    async fn delete_connection(
        &self,
        request: Request<DeleteConnectionRequest>,
    ) -> Reply<DeleteConnectionResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        self.core()?
            .connections
            .delete(caller, &request.get_ref().connection_id)
            .await?;
        Ok(Response::new(DeleteConnectionResponse {}))
    }

    async fn test_connection(
        &self,
        request: Request<TestConnectionRequest>,
    ) -> Reply<TestConnectionResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?.clone();
        Ok(Response::new(
            self.core()?
                .connections
                .test(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn list_databases(
        &self,
        request: Request<ListDatabasesRequest>,
    ) -> Reply<ListDatabasesResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        Ok(Response::new(
            self.core()?
                .analyses
                .list_databases(caller, request.get_ref())
                .await?,
        ))
    }

    async fn list_tables(&self, request: Request<ListTablesRequest>) -> Reply<ListTablesResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        Ok(Response::new(
            self.core()?
                .analyses
                .list_tables(caller, request.get_ref())
                .await?,
        ))
    }

    async fn start_analysis(
        &self,
        request: Request<StartAnalysisRequest>,
    ) -> Reply<StartAnalysisResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?.clone();
        let analysis = self
            .core()?
            .analyses
            .start(&caller, request.into_inner())
            .await?;
        Ok(Response::new(StartAnalysisResponse {
            analysis: Some(analysis),
        }))
    }

    async fn get_analysis(
        &self,
        request: Request<GetAnalysisRequest>,
    ) -> Reply<GetAnalysisResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        Ok(Response::new(
            self.core()?.analyses.get(caller, request.get_ref()).await?,
        ))
    }

    async fn get_analysis_table(
        &self,
        request: Request<GetAnalysisTableRequest>,
    ) -> Reply<GetAnalysisTableResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        Ok(Response::new(
            self.core()?
                .analyses
                .get_table(caller, request.get_ref())
                .await?,
        ))
    }

    async fn set_tables_skipped(
        &self,
        request: Request<SetTablesSkippedRequest>,
    ) -> Reply<SetTablesSkippedResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        Ok(Response::new(
            self.core()?
                .analyses
                .set_skipped(caller, request.get_ref())
                .await?,
        ))
    }

    async fn get_sql_preview(
        &self,
        request: Request<GetSqlPreviewRequest>,
    ) -> Reply<GetSqlPreviewResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        Ok(Response::new(
            self.core()?
                .analyses
                .preview(caller, request.get_ref())
                .await?,
        ))
    }

    async fn retry_analysis(
        &self,
        request: Request<RetryAnalysisRequest>,
    ) -> Reply<RetryAnalysisResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        let analysis = self
            .core()?
            .analyses
            .retry(caller, &request.get_ref().analysis_id)
            .await?;
        Ok(Response::new(RetryAnalysisResponse {
            analysis: Some(analysis),
        }))
    }

    async fn submit_task(&self, request: Request<SubmitTaskRequest>) -> Reply<SubmitTaskResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?.clone();
        let task = self
            .core()?
            .tasks
            .submit(&caller, request.into_inner())
            .await?;
        Ok(Response::new(SubmitTaskResponse { task: Some(task) }))
    }

    async fn list_tasks(&self, request: Request<ListTasksRequest>) -> Reply<ListTasksResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        Ok(Response::new(
            self.core()?.tasks.list(caller, request.get_ref()).await?,
        ))
    }

    async fn get_task(&self, request: Request<GetTaskRequest>) -> Reply<GetTaskResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        Ok(Response::new(
            self.core()?
                .tasks
                .get(caller, request.get_ref().task_id)
                .await?,
        ))
    }

    async fn list_task_tables(
        &self,
        request: Request<ListTaskTablesRequest>,
    ) -> Reply<ListTaskTablesResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        Ok(Response::new(
            self.core()?
                .tasks
                .list_tables(caller, request.get_ref())
                .await?,
        ))
    }

    async fn list_task_statements(
        &self,
        request: Request<ListTaskStatementsRequest>,
    ) -> Reply<ListTaskStatementsResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        Ok(Response::new(
            self.core()?
                .tasks
                .list_statements(caller, request.get_ref())
                .await?,
        ))
    }

    async fn list_task_timeline(
        &self,
        request: Request<ListTaskTimelineRequest>,
    ) -> Reply<ListTaskTimelineResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        Ok(Response::new(
            self.core()?
                .tasks
                .list_timeline(caller, request.get_ref())
                .await?,
        ))
    }

    async fn abort_task(&self, request: Request<AbortTaskRequest>) -> Reply<AbortTaskResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        let request_ref = request.get_ref();
        let task = self
            .core()?
            .tasks
            .abort(caller, request_ref.task_id, &request_ref.comment)
            .await?;
        Ok(Response::new(AbortTaskResponse { task: Some(task) }))
    }

    async fn approve_task(
        &self,
        request: Request<ApproveTaskRequest>,
    ) -> Reply<ApproveTaskResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?.clone();
        let authorization = request.metadata().get("authorization").cloned();
        let request = request.into_inner();
        let task = self
            .core()?
            .tasks
            .decide(
                &caller,
                authorization,
                request.task_id,
                true,
                request.comment,
                request.request_id,
            )
            .await?;
        Ok(Response::new(ApproveTaskResponse { task: Some(task) }))
    }

    async fn reject_task(&self, request: Request<RejectTaskRequest>) -> Reply<RejectTaskResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?.clone();
        let authorization = request.metadata().get("authorization").cloned();
        let request = request.into_inner();
        let task = self
            .core()?
            .tasks
            .decide(
                &caller,
                authorization,
                request.task_id,
                false,
                request.comment,
                request.request_id,
            )
            .await?;
        Ok(Response::new(RejectTaskResponse { task: Some(task) }))
    }

    async fn initiate_again(
        &self,
        request: Request<InitiateAgainRequest>,
    ) -> Reply<InitiateAgainResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?.clone();
        let analysis = self
            .core()?
            .tasks
            .initiate_again(&caller, request.into_inner())
            .await?;
        Ok(Response::new(InitiateAgainResponse {
            analysis: Some(analysis),
        }))
    }

    async fn list_task_logs(
        &self,
        request: Request<ListTaskLogsRequest>,
    ) -> Reply<ListTaskLogsResponse> {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?;
        Ok(Response::new(
            self.core()?
                .tasks
                .list_logs(caller, request.get_ref())
                .await?,
        ))
    }

    async fn download_task_logs(
        &self,
        request: Request<DownloadTaskLogsRequest>,
    ) -> Reply<
        std::pin::Pin<
            Box<dyn tokio_stream::Stream<Item = Result<DownloadTaskLogsResponse, Status>> + Send>,
        >,
    > {
        request.get_ref().bounded()?;
        let caller = Identity::of(&request)?.clone();
        let receiver = self
            .core()?
            .tasks
            .download_logs(&caller, request.into_inner())
            .await?;
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

/// Only executors call the execution API.
fn executor(request: &Request<impl Sized>) -> Result<Identity, Status> {
    let identity = Identity::of(request)?;
    identity.require_service(&[ServiceIdentity::Executor])?;
    Ok(identity.clone())
}

#[tonic::async_trait]
impl TaskExecutionService for TaskApi {
    async fn claim_execution(
        &self,
        request: Request<ClaimExecutionRequest>,
    ) -> Reply<ClaimExecutionResponse> {
        request.get_ref().bounded()?;
        let caller = executor(&request)?;
        Ok(Response::new(
            self.core()?
                .tasks
                .claim(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn get_execution_plan(
        &self,
        request: Request<GetExecutionPlanRequest>,
    ) -> Reply<GetExecutionPlanResponse> {
        request.get_ref().bounded()?;
        executor(&request)?;
        Ok(Response::new(
            self.core()?
                .tasks
                .execution_plan(request.into_inner())
                .await?,
        ))
    }

    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> Reply<HeartbeatResponse> {
        request.get_ref().bounded()?;
        executor(&request)?;
        Ok(Response::new(
            self.core()?.tasks.heartbeat(request.into_inner()).await?,
        ))
    }

    async fn report_table_result(
        &self,
        request: Request<ReportTableResultRequest>,
    ) -> Reply<ReportTableResultResponse> {
        request.get_ref().bounded()?;
        executor(&request)?;
        Ok(Response::new(
            self.core()?
                .tasks
                .report_table(request.into_inner())
                .await?,
        ))
    }

    async fn append_logs(&self, request: Request<AppendLogsRequest>) -> Reply<AppendLogsResponse> {
        request.get_ref().bounded()?;
        executor(&request)?;
        Ok(Response::new(
            self.core()?.tasks.append_logs(request.into_inner()).await?,
        ))
    }

    async fn complete_execution(
        &self,
        request: Request<CompleteExecutionRequest>,
    ) -> Reply<CompleteExecutionResponse> {
        request.get_ref().bounded()?;
        let caller = executor(&request)?;
        Ok(Response::new(
            self.core()?
                .tasks
                .complete(&caller, request.into_inner())
                .await?,
        ))
    }
}
