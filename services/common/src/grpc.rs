//! gRPC plumbing every server and client shares: TLS, reflection, health, serving with graceful
//! shutdown, and authenticated client channels.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{
    Certificate, ClientTlsConfig, Endpoint, Identity as TlsIdentity, Server, ServerTlsConfig,
};
use tower::layer::util::{Identity, Stack};

use crate::auth::{BearerToken, ServiceCredentials};
use crate::config::TlsConfig;
use crate::grpc_body::InvalidBodyLayer;
use crate::secret::Secret;
use crate::telemetry::grpc::{GrpcServerTelemetryLayer, TracedChannel};

/// Why a server or client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("cannot read {what} {path}: {reason}")]
    Read {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
    #[error("invalid endpoint {endpoint}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("cannot build reflection: {0}")]
    Reflection(String),
    #[error("cannot reach {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("server failed: {0}")]
    Serve(String),
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, GrpcError> {
    std::fs::read(path).map_err(|e| GrpcError::Read {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// The layers of every shadowsync server: telemetry (outermost, so it times and traces
/// everything, refusals included), then [`InvalidBodyLayer`].
pub type ShadowLayers = Stack<InvalidBodyLayer, Stack<GrpcServerTelemetryLayer, Identity>>;

/// Every shadowsync server: tonic's, with [`ShadowLayers`] around its routes.
pub type ShadowServer = Server<ShadowLayers>;

/// The routes of a [`ShadowServer`], ready for [`serve`].
pub type ShadowRouter = tonic::transport::server::Router<ShadowLayers>;

/// A client channel: tonic's, with a span per call whose trace context travels in the
/// request's `traceparent` (see [`crate::telemetry::grpc`]).
pub type Channel = TracedChannel<tonic::transport::Channel>;

/// A server builder, with TLS (and client-certificate checks) when configured, that traces and
/// measures every RPC and answers an undecodable request with `INVALID_ARGUMENT`.
///
/// Fails when a certificate, key or CA file cannot be read or is not valid PEM.
pub fn server_builder(tls: Option<&TlsConfig>) -> Result<ShadowServer, GrpcError> {
    let builder = Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .layer(GrpcServerTelemetryLayer)
        .layer(InvalidBodyLayer);
    let Some(tls) = tls else {
        return Ok(builder);
    };
    let identity = TlsIdentity::from_pem(
        read_pem("TLS certificate", &tls.cert)?,
        read_pem("TLS key", &tls.key)?,
    );
    let mut config = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &tls.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read_pem("client CA", ca)?));
    }
    builder
        .tls_config(config)
        .map_err(|e| GrpcError::Tls(e.to_string()))
}

/// Reflection services (v1 and v1alpha) describing the given encoded descriptor sets plus the
/// health service.
pub fn reflection(
    descriptor_sets: &[&[u8]],
) -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    GrpcError,
> {
    let builder = || {
        descriptor_sets.iter().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
            |builder, set| builder.register_encoded_file_descriptor_set(set),
        )
    };
    let v1 = builder()
        .build_v1()
        .map_err(|e| GrpcError::Reflection(e.to_string()))?;
    let v1alpha = builder()
        .build_v1alpha()
        .map_err(|e| GrpcError::Reflection(e.to_string()))?;
    Ok((v1, v1alpha))
}

/// Serves `router` on `listener` until `shutdown` completes, then drains in-flight RPCs.
///
/// Fails if the transport fails while serving.
pub async fn serve(
    router: ShadowRouter,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GrpcError> {
    // tonic applies `tcp_nodelay` only to listeners it binds itself: without it here, every
    // response written in more than one segment waits ~40 ms on the peer's delayed ACK.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| GrpcError::Serve(e.to_string()))
}

/// Client-side TLS settings.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// CA bundle that signs the server's certificate (the system roots are not used).
    pub ca: Option<Vec<u8>>,
    /// Client certificate and key, for mTLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Name to verify the server certificate against, when it differs from the endpoint host.
    pub domain: Option<String>,
}

/// A lazily connecting, traced channel to `endpoint` (`http://…` or `https://…`).
///
/// Fails only on a malformed endpoint or TLS settings; connection errors surface per call as
/// `UNAVAILABLE`, so a service can start before its peers.
pub fn channel(endpoint: &str, tls: Option<&ClientTls>) -> Result<Channel, GrpcError> {
    let endpoint_error = |reason: String| GrpcError::Endpoint {
        endpoint: endpoint.to_string(),
        reason,
    };
    let mut builder = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| endpoint_error(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        let mut config = ClientTlsConfig::new();
        if let Some(ca) = &tls.ca {
            config = config.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(TlsIdentity::from_pem(cert, key));
        }
        if let Some(domain) = &tls.domain {
            config = config.domain_name(domain.clone());
        }
        builder = builder
            .tls_config(config)
            .map_err(|e| GrpcError::Tls(e.to_string()))?;
    }
    Ok(TracedChannel::new(builder.connect_lazy()))
}

/// A channel that presents `token` on every call.
pub type AuthenticatedChannel = InterceptedService<Channel, BearerToken>;

/// Wraps a channel so every request carries `authorization: Bearer <token>`.
///
/// Fails when the token cannot be a header value.
pub fn authenticated(
    channel: Channel,
    token: &Secret<String>,
) -> Result<AuthenticatedChannel, tonic::Status> {
    Ok(InterceptedService::new(channel, BearerToken::new(token)?))
}

/// A channel on which a service calls a peer as itself.
pub type ServiceChannel = InterceptedService<Channel, ServiceCredentials>;

/// Wraps a channel so every request carries the service's own credentials.
pub fn as_service(channel: Channel, credentials: ServiceCredentials) -> ServiceChannel {
    InterceptedService::new(channel, credentials)
}
