//! gRPC telemetry: a server layer (one `SERVER` span per RPC, continuing the caller's
//! `traceparent`, and `rpc.server.call.duration`) and a client channel wrapper (one `CLIENT` span
//! per call, whose context travels in the request's `traceparent`, and
//! `rpc.client.call.duration`), with the `rpc.*` semantic-convention attributes.
//!
//! The status code is read from the response headers: tonic sends a failed unary call as a
//! trailers-only response (`grpc-status` in the headers), and a success's `grpc-status: 0` in
//! the trailers, so a header without it means OK. (A server stream that fails after its first
//! message is recorded as OK: no shadowsync RPC streams.)
//!
//! Health checks get no span (kubelets probe every few seconds, and a trace per probe would
//! drown the real ones); they are counted like any RPC.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use opentelemetry::KeyValue;
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::metrics::metrics;
use super::propagation;

/// The gRPC codes that mean the server failed (the others are the caller's doing), which mark
/// a server span as an error (OpenTelemetry's RPC conventions).
const SERVER_ERROR_CODES: &[i64] = &[2, 4, 12, 13, 14, 15];

/// `(service, method)` of a gRPC path `/package.Service/Method`.
fn rpc_names(path: &str) -> (String, String) {
    let trimmed = path.trim_start_matches('/');
    match trimmed.split_once('/') {
        Some((service, method)) => (service.to_string(), method.to_string()),
        None => (trimmed.to_string(), String::new()),
    }
}

fn traced(service: &str) -> bool {
    service != "grpc.health.v1.Health"
}

fn status_code<B>(response: &http::Response<B>) -> i64 {
    response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

fn attributes(service: &str, method: &str, code: i64) -> [KeyValue; 4] {
    [
        KeyValue::new("rpc.system", "grpc"),
        KeyValue::new("rpc.service", service.to_string()),
        KeyValue::new("rpc.method", method.to_string()),
        KeyValue::new("rpc.grpc.status_code", code),
    ]
}

/// The server layer: put it on every server (see `grpc::server_builder`).
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcServerTelemetryLayer;

impl<S> Layer<S> for GrpcServerTelemetryLayer {
    type Service = GrpcServerTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerTelemetry { inner }
    }
}

/// See [`GrpcServerTelemetryLayer`].
#[derive(Clone, Debug)]
pub struct GrpcServerTelemetry<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for GrpcServerTelemetry<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = rpc_names(request.uri().path());
        let span = if traced(&service) {
            let span = tracing::info_span!(
                "grpc.server",
                otel.name = %format!("{service}/{method}"),
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                rpc.system = "grpc",
                rpc.service = %service,
                rpc.method = %method,
                rpc.grpc.status_code = tracing::field::Empty,
            );
            let parent = propagation::extract_headers(request.headers());
            let _ = span.set_parent(parent);
            span
        } else {
            tracing::Span::none()
        };
        let started = Instant::now();
        // The clone is ready only after `poll_ready`: call the one that was polled.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let future = span.in_scope(|| inner.call(request));
        Box::pin(
            async move {
                let result = future.await;
                let code = match &result {
                    Ok(response) => status_code(response),
                    Err(_) => 2,
                };
                let span = tracing::Span::current();
                span.record("rpc.grpc.status_code", code);
                if SERVER_ERROR_CODES.contains(&code) {
                    span.record("otel.status_code", "ERROR");
                }
                metrics().rpc_server_duration.record(
                    started.elapsed().as_secs_f64(),
                    &attributes(&service, &method, code),
                );
                result
            }
            .instrument(span),
        )
    }
}

/// A client channel that traces each call and propagates its context; what
/// `grpc::channel` returns.
#[derive(Clone, Debug)]
pub struct TracedChannel<C = tonic::transport::Channel> {
    inner: C,
}

impl<C> TracedChannel<C> {
    /// Wraps `inner`.
    pub fn new(inner: C) -> Self {
        Self { inner }
    }
}

impl<C, B, R> Service<http::Request<B>> for TracedChannel<C>
where
    C: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    C::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let (service, method) = rpc_names(request.uri().path());
        let span = if traced(&service) {
            tracing::info_span!(
                "grpc.client",
                otel.name = %format!("{service}/{method}"),
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                rpc.system = "grpc",
                rpc.service = %service,
                rpc.method = %method,
                rpc.grpc.status_code = tracing::field::Empty,
                server.address = request.uri().host().unwrap_or_default(),
            )
        } else {
            tracing::Span::none()
        };
        propagation::inject_headers(&span, request.headers_mut());
        let started = Instant::now();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let future = span.in_scope(|| inner.call(request));
        Box::pin(
            async move {
                let result = future.await;
                let code = match &result {
                    Ok(response) => status_code(response),
                    // The transport failed before any status: UNAVAILABLE, as tonic reports it.
                    Err(_) => 14,
                };
                let span = tracing::Span::current();
                span.record("rpc.grpc.status_code", code);
                if code != 0 {
                    span.record("otel.status_code", "ERROR");
                }
                metrics().rpc_client_duration.record(
                    started.elapsed().as_secs_f64(),
                    &attributes(&service, &method, code),
                );
                result
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use tower::ServiceExt as _;
    use tracing::Instrument as _;

    use super::*;
    use crate::config::LogFormat;
    use crate::telemetry::{TelemetryConfig, build};

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    /// Log lines in memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().expect("lines")).into_owned()
        }
    }

    #[tokio::test]
    async fn a_server_span_continues_the_caller_and_its_log_lines_say_so_without_credentials() {
        let lines = Lines::default();
        let (dispatch, _guard) = build(
            &TelemetryConfig::local("test-service", LogFormat::Json, "info"),
            lines.clone(),
        )
        .expect("telemetry");
        let _default = tracing::dispatcher::set_default(&dispatch);
        let handler = tower::service_fn(|_request: http::Request<()>| async {
            tracing::info!(answer = 42, "handled");
            Ok::<_, Infallible>(
                http::Response::builder()
                    .header("grpc-status", "7")
                    .body(())
                    .expect("response"),
            )
        });
        let request = http::Request::builder()
            .uri("/pkg.v1.Things/DoThing")
            .header("authorization", "Bearer s3cr3t-token")
            .header("traceparent", PARENT)
            .body(())
            .expect("request");
        GrpcServerTelemetryLayer
            .layer(handler)
            .oneshot(request)
            .await
            .expect("call");

        let text = lines.text();
        assert!(
            !text.contains("s3cr3t"),
            "a credential reached a log line: {text}"
        );
        let line: serde_json::Value = serde_json::from_str(
            text.lines()
                .find(|line| line.contains("handled"))
                .expect("the handler's line"),
        )
        .expect("JSON");
        assert_eq!(line["service"], "test-service");
        assert_eq!(line["message"], "handled");
        assert_eq!(line["answer"], 42);
        assert_eq!(line["trace_id"], "0af7651916cd43dd8448eb211c80319c");
        let span_id = line["span_id"].as_str().expect("span id");
        assert_eq!(span_id.len(), 16);
        assert_ne!(
            span_id, "b7ad6b7169203331",
            "the server span is a new child"
        );
        assert_eq!(line["span"]["rpc.method"], "DoThing");
        assert_eq!(line["span"]["rpc.service"], "pkg.v1.Things");
        assert_eq!(line["span"]["rpc.system"], "grpc");
        assert!(line["span"].get("authorization").is_none());
        // The status is recorded for the metric (and the span) after the response.
        let metrics = crate::telemetry::metrics::collect().expect("collect");
        let text = crate::telemetry::prometheus::encode(&metrics);
        assert!(
            text.contains("rpc_grpc_status_code=\"7\",rpc_method=\"DoThing\",rpc_service=\"pkg.v1.Things\",rpc_system=\"grpc\"} 1\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_client_call_carries_its_span_in_traceparent() {
        let (dispatch, _guard) = build(
            &TelemetryConfig::local("test-client", LogFormat::Json, "info"),
            Lines::default(),
        )
        .expect("telemetry");
        let _default = tracing::dispatcher::set_default(&dispatch);
        let seen: Arc<Mutex<Option<String>>> = Arc::default();
        let recorder = seen.clone();
        let server = tower::service_fn(move |request: http::Request<()>| {
            let recorder = recorder.clone();
            async move {
                *recorder.lock().expect("seen") = request
                    .headers()
                    .get("traceparent")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_string);
                Ok::<_, Infallible>(http::Response::new(()))
            }
        });
        let caller = tracing::info_span!("caller");
        let caller_traceparent =
            crate::telemetry::propagation::traceparent_of(&caller).expect("valid context");
        let request = http::Request::builder()
            .uri("http://peer/pkg.v1.Things/DoThing")
            .body(())
            .expect("request");
        TracedChannel::new(server)
            .oneshot(request)
            .instrument(caller)
            .await
            .expect("call");
        let sent = seen
            .lock()
            .expect("seen")
            .clone()
            .expect("traceparent sent");
        // Same trace as the caller, but the client span's own id.
        assert_eq!(sent[..35], caller_traceparent[..35]);
        assert_ne!(sent, caller_traceparent);
    }

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            rpc_names("/shadowsync.task.v1.TaskService/SubmitTask"),
            (
                "shadowsync.task.v1.TaskService".to_string(),
                "SubmitTask".to_string()
            )
        );
        assert_eq!(rpc_names("/odd"), ("odd".to_string(), String::new()));
    }

    #[test]
    fn status_comes_from_a_trailers_only_response() {
        let failed = http::Response::builder()
            .header("grpc-status", "5")
            .body(())
            .expect("response");
        assert_eq!(status_code(&failed), 5);
        let ok = http::Response::builder().body(()).expect("response");
        assert_eq!(status_code(&ok), 0);
    }
}
