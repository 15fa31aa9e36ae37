//! The shadowsync approval service (DESIGN.md §4): process templates, priority order, approval
//! instances and decisions, permission grants, and dispatch to the executors.

pub mod decision;
pub mod error;
pub mod model;
pub mod store;
pub mod template;

use shadowsync_common::auth::AuthInterceptor;
use shadowsync_proto::approval::v1::approval_service_server::{
    ApprovalService, ApprovalServiceServer,
};
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;

pub use store::MIGRATIONS;

/// The approval service's gRPC handlers.
#[derive(Debug, Clone, Default)]
pub struct ApprovalApi {}

impl ApprovalService for ApprovalApi {}

/// Adds `ApprovalService` behind `auth`.
pub fn add_routes(routes: &mut RoutesBuilder, api: ApprovalApi, auth: AuthInterceptor) {
    routes.add_service(InterceptedService::new(
        ApprovalServiceServer::new(api),
        auth,
    ));
}
