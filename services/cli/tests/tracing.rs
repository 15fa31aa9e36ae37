//! `shadowctl` traces its calls when an OTLP endpoint is configured: the command is one span
//! (continuing a `TRACEPARENT` from the environment, as a CI job passes it), each call a CLIENT
//! span under it, and the call carries that span's context to the server.

mod support;

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use support::*;

#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Spans {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().expect("spans");
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_command_is_one_trace_continuing_traceparent() {
    let server = Embedded::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let spans = Spans::default();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(spans.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shadowctl"))
        .arg("--data-dir")
        .arg(server.data_dir())
        .arg("whoami")
        .env_remove("SHADOWSYNC_TOKEN")
        .env_remove("SHADOWSYNC_ENDPOINT")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("TRACEPARENT", format!("00-{trace_id}-{caller}-01"))
        .output()
        .expect("run shadowctl");
    assert!(output.status.success(), "{output:?}");
    assert!(
        output.stderr.is_empty(),
        "nothing on stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // shadowctl flushed before exiting: the spans are there.
    let spans = spans.0.lock().expect("spans").clone();
    let root = spans
        .iter()
        .find(|s| s.name == "shadowctl whoami")
        .unwrap_or_else(|| panic!("no command span in {spans:?}"));
    assert_eq!(hex(&root.trace_id), trace_id);
    assert_eq!(hex(&root.parent_span_id), caller);
    let call = spans
        .iter()
        .find(|s| s.name == "shadowsync.task.v1.TaskService/GetIdentity")
        .unwrap_or_else(|| panic!("no call span in {spans:?}"));
    assert_eq!(hex(&call.trace_id), trace_id);
    assert_eq!(call.parent_span_id, root.span_id);
    runtime.shutdown_background();
}
