//! The task service's collaborators: the analysis service (gRPC client) and the approval
//! service's permission check, behind [`PermissionChecker`] so tests can stand in for it.

use std::sync::Arc;

use async_trait::async_trait;
use shadowsync_common::auth::{BearerToken, Identity, ServiceCredentials};
use shadowsync_common::grpc::Channel;
use shadowsync_proto::analysis::v1::analysis_service_client::AnalysisServiceClient;
use shadowsync_proto::approval::v1::CheckPermissionRequest;
use shadowsync_proto::approval::v1::approval_service_client::ApprovalServiceClient;
use shadowsync_proto::names::REQUEST_TYPE_SHADOW_TABLE_SYNC;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

use crate::error::{Result, TaskError, from_peer};

/// How the task service presents itself to its peers: its own (renewed) service credentials,
/// or a fixed token (tests, deployments that mint one).
#[derive(Clone, Debug)]
pub enum PeerCredentials {
    Service(ServiceCredentials),
    Token(BearerToken),
}

impl tonic::service::Interceptor for PeerCredentials {
    fn call(&mut self, request: Request<()>) -> std::result::Result<Request<()>, Status> {
        match self {
            PeerCredentials::Service(credentials) => credentials.call(request),
            PeerCredentials::Token(token) => token.call(request),
        }
    }
}

/// A channel to a peer that carries the task service's credentials.
pub type PeerChannel = InterceptedService<Channel, PeerCredentials>;

/// The analysis service's client as the task service uses it.
pub type AnalysisClient = AnalysisServiceClient<PeerChannel>;

/// An analysis client on `channel` presenting `credentials`.
pub fn analysis_client(channel: Channel, credentials: PeerCredentials) -> AnalysisClient {
    AnalysisServiceClient::new(InterceptedService::new(channel, credentials))
}

/// The approval service as the task service uses it: as `svc:task` (submit, look up, cancel,
/// check permissions) and, for decisions, with the deciding person's own token forwarded.
#[derive(Debug, Clone)]
pub struct Approvals {
    client: ApprovalServiceClient<PeerChannel>,
    channel: Channel,
}

impl Approvals {
    pub fn new(channel: Channel, credentials: PeerCredentials) -> Self {
        Self {
            client: ApprovalServiceClient::new(InterceptedService::new(
                channel.clone(),
                credentials,
            )),
            channel,
        }
    }

    /// The client acting as `svc:task`.
    pub fn client(&self) -> ApprovalServiceClient<PeerChannel> {
        self.client.clone()
    }

    /// A client carrying `authorization` (the caller's own bearer header) instead.
    pub fn as_caller(
        &self,
        authorization: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    ) -> ApprovalServiceClient<InterceptedService<Channel, ForwardedToken>> {
        ApprovalServiceClient::new(InterceptedService::new(
            self.channel.clone(),
            ForwardedToken(authorization),
        ))
    }
}

/// Forwards a caller's `authorization` header unchanged.
#[derive(Clone)]
pub struct ForwardedToken(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for ForwardedToken {
    fn call(&mut self, mut request: Request<()>) -> std::result::Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// Whether a person may run shadow-table syncs (and so analyses) on a connection and database.
#[async_trait]
pub trait PermissionChecker: Send + Sync + std::fmt::Debug {
    /// Fails with UNAVAILABLE when the approval service cannot answer.
    async fn may_sync(&self, user: &Identity, connection_id: &str, database: &str) -> Result<bool>;
}

/// [`PermissionChecker`] through `ApprovalService.CheckPermission`.
#[derive(Debug, Clone)]
pub struct GrpcPermissionChecker {
    client: ApprovalServiceClient<PeerChannel>,
}

impl GrpcPermissionChecker {
    pub fn new(channel: Channel, credentials: PeerCredentials) -> Self {
        Self {
            client: ApprovalServiceClient::new(InterceptedService::new(channel, credentials)),
        }
    }
}

#[async_trait]
impl PermissionChecker for GrpcPermissionChecker {
    async fn may_sync(&self, user: &Identity, connection_id: &str, database: &str) -> Result<bool> {
        let request = CheckPermissionRequest {
            user: user.subject.clone(),
            task_type: REQUEST_TYPE_SHADOW_TABLE_SYNC.to_owned(),
            connection_id: connection_id.to_owned(),
            database: database.to_owned(),
            roles: user.roles.clone(),
        };
        let response = self
            .client
            .clone()
            .check_permission(request)
            .await
            .map_err(|status| from_peer("approval", &status))?;
        Ok(response.into_inner().allowed)
    }
}

/// Test doubles for the approval service, until the real one is wired in.
pub mod testing {
    use super::*;

    /// Allows the listed subjects (and every admin) on every connection; everyone else is
    /// refused. A stand-in for the approval service in tests.
    #[derive(Debug, Clone, Default)]
    pub struct FixedPermissions {
        allowed: Arc<Vec<String>>,
    }

    impl FixedPermissions {
        pub fn allowing(subjects: &[&str]) -> Self {
            Self {
                allowed: Arc::new(subjects.iter().map(|s| (*s).to_owned()).collect()),
            }
        }
    }

    #[async_trait]
    impl PermissionChecker for FixedPermissions {
        async fn may_sync(&self, user: &Identity, _: &str, _: &str) -> Result<bool> {
            Ok(user.is_admin() || self.allowed.contains(&user.subject))
        }
    }

    /// An approval service that is down.
    #[derive(Debug, Clone, Default)]
    pub struct UnavailablePermissions;

    #[async_trait]
    impl PermissionChecker for UnavailablePermissions {
        async fn may_sync(&self, _: &Identity, _: &str, _: &str) -> Result<bool> {
            Err(TaskError::Unavailable(
                "the approval service is unavailable".into(),
            ))
        }
    }
}
