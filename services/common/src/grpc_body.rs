//! An undecodable request body is the client's mistake: `INVALID_ARGUMENT`, not `INTERNAL`.
//!
//! tonic's prost codec maps every decode failure to `INTERNAL` (the gRPC status-code guide's
//! choice for a parse error, which cannot tell a broken server from a broken client). On the
//! server side the only thing decoded is the client's request, so this layer, stacked on every
//! server by [`crate::grpc::server_builder`], rewrites that status. The handler never ran: the
//! codec answers before it, with a trailers-only response whose status is in the headers.

use std::task::{Context, Poll};

use futures::TryFutureExt as _;
use http::{HeaderValue, Request, Response};
use tonic::{Code, Status};
use tower::{Layer, Service};

/// What tonic's prost codec puts at the start of `grpc-message` for a decode failure.
const DECODE_FAILURE: &str = "failed to decode Protobuf message";

/// Turns the `INTERNAL` status of an undecodable request into `INVALID_ARGUMENT`.
#[derive(Clone, Copy, Debug, Default)]
pub struct InvalidBodyLayer;

impl<S> Layer<S> for InvalidBodyLayer {
    type Service = InvalidBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InvalidBody { inner }
    }
}

/// The service [`InvalidBodyLayer`] wraps around a server's routes.
#[derive(Clone, Debug)]
pub struct InvalidBody<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for InvalidBody<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = futures::future::MapOk<S::Future, fn(Response<R>) -> Response<R>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.inner.call(request).map_ok(rewrite)
    }
}

fn rewrite<R>(mut response: Response<R>) -> Response<R> {
    // tonic puts the status it answered with in the response's extensions as well as in the
    // (percent-encoded) headers: matching the `Status` is exact.
    let undecodable = response.extensions().get::<Status>().is_some_and(|status| {
        status.code() == Code::Internal && status.message().starts_with(DECODE_FAILURE)
    });
    if undecodable {
        tracing::debug!("undecodable request body answered with INVALID_ARGUMENT");
        response
            .headers_mut()
            .insert(Status::GRPC_STATUS, HeaderValue::from_static("3"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: Status) -> String {
        let response = rewrite(status.into_http::<()>());
        response.headers()["grpc-status"]
            .to_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn only_a_decode_failure_changes() {
        let decode = Status::internal("failed to decode Protobuf message: invalid wire type");
        assert_eq!(status(decode), "3");
        // A handler's own internal error stays internal.
        assert_eq!(
            status(Status::internal("internal error (incident 42)")),
            "13"
        );
        // Any other status with the words stays as it is.
        assert_eq!(
            status(Status::not_found("failed to decode Protobuf message")),
            "5"
        );
    }
}
