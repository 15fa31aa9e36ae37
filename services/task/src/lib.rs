//! The shadowsync task service (DESIGN.md §2): connections, analyses, tasks, their timeline and
//! logs, and the execution API the executors call.
//!
//! The RPCs are filled in by their issues; until then the generated default bodies answer
//! `UNIMPLEMENTED`. [`add_routes`] mounts both services behind the identity interceptor.

use shadowsync_common::auth::{AuthInterceptor, Identity};
use shadowsync_proto::common::v1::Actor;
use shadowsync_proto::task::v1::task_execution_service_server::{
    TaskExecutionService, TaskExecutionServiceServer,
};
use shadowsync_proto::task::v1::task_service_server::{TaskService, TaskServiceServer};
use shadowsync_proto::task::v1::{GetIdentityRequest, GetIdentityResponse};
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

/// The task service's gRPC handlers.
#[derive(Debug, Clone, Default)]
pub struct TaskApi {}

#[tonic::async_trait]
impl TaskService for TaskApi {
    async fn get_identity(
        &self,
        request: Request<GetIdentityRequest>,
    ) -> Result<Response<GetIdentityResponse>, Status> {
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
}

/// The wire form of a verified identity.
pub fn actor(identity: &Identity) -> Actor {
    Actor {
        subject: identity.subject.clone(),
        display_name: identity.name.clone(),
        roles: identity.roles.clone(),
    }
}

impl TaskExecutionService for TaskApi {}

/// Adds `TaskService` and `TaskExecutionService`, each behind `auth`.
pub fn add_routes(routes: &mut RoutesBuilder, api: TaskApi, auth: AuthInterceptor) {
    routes.add_service(InterceptedService::new(
        TaskServiceServer::new(api.clone()),
        auth.clone(),
    ));
    routes.add_service(InterceptedService::new(
        TaskExecutionServiceServer::new(api),
        auth,
    ));
}
