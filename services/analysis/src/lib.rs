//! The shadowsync analysis service: stateless, it introspects target databases
//! read-only through the schema engine and streams per-table results to the task service. It
//! stores nothing: connection details arrive with every request and are dropped with it.
//!
//! Only the task service (`svc:task`) may call it (PERMISSION_DENIED otherwise).
//!
//! # Entry points
//! - [`AnalysisApi::new`] with an [`AnalysisConfig`] (maximum tables, introspection batching);
//!   `AnalysisApi::default()` uses the contract's defaults;
//! - [`add_routes`] mounts `AnalysisService` behind the identity interceptor.
//!
//! # Layout
//! - [`analyze`]: the `Analyze` stream (list → introspect → plan → tables in batches → summary);
//! - [`listing`]: `ListTables` / `ListDatabases`;
//! - [`target`]: connection details → sqlx pool, database errors → failure reasons;
//! - [`convert`]: engine plans → wire tables; [`error`]: errors → `Status`.

pub mod analyze;
pub mod config;
pub mod convert;
pub mod error;
pub mod listing;
pub mod target;

use shadowsync_common::auth::{AuthLayer, Identity, ServiceIdentity};
use shadowsync_proto::analysis::v1::analysis_service_server::{
    AnalysisService, AnalysisServiceServer,
};
use shadowsync_proto::analysis::v1::{
    AnalyzeRequest, AnalyzeResponse, ListDatabasesRequest, ListDatabasesResponse,
    ListTablesRequest, ListTablesResponse,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::service::RoutesBuilder;
use tonic::{Request, Response, Status};

pub use config::AnalysisConfig;

/// The analysis service's gRPC handlers.
#[derive(Debug, Clone, Default)]
pub struct AnalysisApi {
    config: AnalysisConfig,
}

impl AnalysisApi {
    pub fn new(config: AnalysisConfig) -> Self {
        Self { config }
    }
}

/// Only the task service calls the analysis service: it is the one holding credentials.
fn authorize<T>(request: &Request<T>) -> Result<(), Status> {
    Identity::of(request)?.require_service(&[ServiceIdentity::Task])
}

#[tonic::async_trait]
impl AnalysisService for AnalysisApi {
    async fn analyze(
        &self,
        request: Request<AnalyzeRequest>,
    ) -> Result<Response<BoxStream<AnalyzeResponse>>, Status> {
        authorize(&request)?;
        // A few messages of buffer: the task service writes batches as they come, and the
        // analysis waits for it rather than piling results up in memory.
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        // The analysis outlives this call's future: it carries the RPC's span with it.
        tokio::spawn(tracing::Instrument::in_current_span(analyze::run(
            self.config,
            request.into_inner(),
            sender,
        )));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn list_tables(
        &self,
        request: Request<ListTablesRequest>,
    ) -> Result<Response<ListTablesResponse>, Status> {
        authorize(&request)?;
        let response = listing::list_tables(request.into_inner(), self.config.introspect).await?;
        Ok(Response::new(response))
    }

    async fn list_databases(
        &self,
        request: Request<ListDatabasesRequest>,
    ) -> Result<Response<ListDatabasesResponse>, Status> {
        authorize(&request)?;
        let response =
            listing::list_databases(request.into_inner(), self.config.introspect).await?;
        Ok(Response::new(response))
    }
}

/// Adds `AnalysisService` behind `auth`.
pub fn add_routes(routes: &mut RoutesBuilder, api: AnalysisApi, auth: AuthLayer) {
    routes.add_service(auth.wrap(AnalysisServiceServer::new(api)));
}
