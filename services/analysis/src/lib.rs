//! The shadowsync analysis service (DESIGN.md §2): stateless, it introspects target databases
//! through the schema engine and streams per-table results to the task service.
//!
//! The RPCs are filled in by their issue; until then the generated default bodies answer
//! `UNIMPLEMENTED`. [`add_routes`] mounts the service behind the identity interceptor.

use shadowsync_common::auth::AuthInterceptor;
use shadowsync_proto::analysis::v1::analysis_service_server::{
    AnalysisService, AnalysisServiceServer,
};
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;

/// The analysis service's gRPC handlers.
#[derive(Debug, Clone, Default)]
pub struct AnalysisApi {}

impl AnalysisService for AnalysisApi {}

/// Adds `AnalysisService` behind `auth`.
pub fn add_routes(routes: &mut RoutesBuilder, api: AnalysisApi, auth: AuthInterceptor) {
    routes.add_service(InterceptedService::new(
        AnalysisServiceServer::new(api),
        auth,
    ));
}
