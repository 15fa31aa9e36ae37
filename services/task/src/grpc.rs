//! Thin gRPC adapters: take the caller's identity, call the use case, map the error.

use shadowsync_common::auth::Identity;
use shadowsync_proto::task::v1::task_service_server::TaskService;
use shadowsync_proto::task::v1::*;
use tonic::{Request, Response, Status};

use crate::{TaskApi, actor};

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl TaskService for TaskApi {
    async fn get_identity(
        &self,
        request: Request<GetIdentityRequest>,
    ) -> Reply<GetIdentityResponse> {
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
        Identity::of(&request)?;
        Ok(Response::new(
            self.core()?.connections.list(request.get_ref()).await?,
        ))
    }

    async fn get_connection(
        &self,
        request: Request<GetConnectionRequest>,
    ) -> Reply<GetConnectionResponse> {
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
        let caller = Identity::of(&request)?;
        Ok(Response::new(
            self.core()?
                .analyses
                .list_databases(caller, request.get_ref())
                .await?,
        ))
    }

    async fn list_tables(&self, request: Request<ListTablesRequest>) -> Reply<ListTablesResponse> {
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
        let caller = Identity::of(&request)?;
        Ok(Response::new(
            self.core()?.analyses.get(caller, request.get_ref()).await?,
        ))
    }

    async fn get_analysis_table(
        &self,
        request: Request<GetAnalysisTableRequest>,
    ) -> Reply<GetAnalysisTableResponse> {
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
}
