//! The server side of identity: a tower layer that verifies `authorization: Bearer …` before a
//! gRPC service sees the request, and puts the caller's [`Identity`] in its extensions.
//!
//! It is a layer rather than a tonic interceptor because verification may wait: a token naming
//! an identity provider's new key waits for the provider's keys to be fetched. The wrapped
//! service keeps the inner service's gRPC name, so `RoutesBuilder::add_service` mounts it as it
//! would the bare service.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::Status;
use tonic::server::NamedService;
use tower::{Layer, Service};

use super::{Authenticator, Identity};

/// Verifies every request's bearer token; optionally answers `UNAVAILABLE` until start-up ends.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
    started: Option<tokio::sync::watch::Receiver<bool>>,
}

impl AuthLayer {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self {
            authenticator,
            started: None,
        }
    }

    /// Answers `UNAVAILABLE` until `started` turns true: a request that arrives while the
    /// stores are still being migrated gets a retryable status instead of an internal error
    /// from a table that does not exist yet. The token is checked first, so a caller without
    /// a valid one learns nothing about the service's state.
    pub fn gated(mut self, started: tokio::sync::watch::Receiver<bool>) -> Self {
        self.started = Some(started);
        self
    }

    /// `service` behind this layer: what `RoutesBuilder::add_service` takes.
    pub fn wrap<S>(&self, service: S) -> Authenticated<S> {
        Authenticated {
            inner: service,
            auth: self.clone(),
        }
    }

    /// The identity `headers` prove, or the status to answer with.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Identity, Status> {
        let header = headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        let identity = self.authenticator.verify(token.trim()).await?;
        if self
            .started
            .as_ref()
            .is_some_and(|started| !*started.borrow())
        {
            return Err(Status::unavailable(
                "starting: the service's store is not ready yet; retry shortly",
            ));
        }
        Ok(identity)
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.wrap(inner)
    }
}

/// A gRPC service behind [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct Authenticated<S> {
    inner: S,
    auth: AuthLayer,
}

impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for Authenticated<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The service that was polled ready handles this request; a fresh clone takes its
        // place for the next one.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let auth = self.auth.clone();
        Box::pin(async move {
            match auth.authenticate(request.headers()).await {
                Ok(identity) => {
                    request.extensions_mut().insert(identity);
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}
