//! What an operator's side of the observability test needs: an in-process OTLP receiver (the
//! `opentelemetry-proto` tonic services), captured JSON log lines, and a parser for the
//! Prometheus text format.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the resource that exported it.
    pub service: String,
    pub name: String,
    pub kind: SpanKind,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root.
    pub parent_span_id: String,
    /// `(trace_id, span_id)` of each link.
    pub links: Vec<(String, String)>,
    /// Every attribute as text.
    pub attributes: BTreeMap<String, String>,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// Spans and metric exports received, in arrival order.
#[derive(Debug, Default, Clone)]
pub struct Received {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    metric_exports: Arc<Mutex<usize>>,
}

impl Received {
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("spans").clone()
    }

    pub fn metric_exports(&self) -> usize {
        *self.metric_exports.lock().expect("exports")
    }
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().expect("spans");
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(ReceivedSpan {
                        service: service.clone(),
                        kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        links: span
                            .links
                            .iter()
                            .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                            .collect(),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| {
                                (
                                    kv.key.clone(),
                                    text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                                )
                            })
                            .collect(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        _request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        *self.metric_exports.lock().expect("exports") += 1;
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/gRPC receiver on 127.0.0.1 (a free port), on its own thread and runtime so it
/// outlives any node.
pub struct Receiver {
    pub endpoint: String,
    pub received: Received,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Dropped inside the test's runtime, which cannot block on another one's shutdown.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Receiver {
    /// The receiver's runtime: build exporters inside it (`handle().enter()`), so their
    /// connections never depend on the test's own runtime being polled.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.as_ref().expect("running").handle().clone()
    }

    pub fn start() -> Self {
        let received = Received::default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-receiver")
            .enable_all()
            .build()
            .expect("receiver runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let service = received.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(service.clone()))
                .add_service(MetricsServiceServer::new(service))
                .serve_with_incoming(incoming)
                .await;
        });
        Self {
            endpoint,
            received,
            runtime: Some(runtime),
        }
    }
}

/// Log lines written by a node's subscriber, kept in memory.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Every line parsed as JSON (a line that is not JSON is a failure of the format).
    ///
    /// # Panics
    /// On a line that is not a JSON object.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().expect("logs").clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
                assert!(value.is_object(), "not an object: {line}");
                value
            })
            .collect()
    }

    /// Everything written, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

/// The writer of [`CapturedLogs`].
#[derive(Debug)]
pub struct CapturedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CapturedWriter(self.0.clone())
    }
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub value: f64,
}

/// A parsed exposition: samples, and each family's `# TYPE`.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// Parses the text format.
    ///
    /// # Panics
    /// On a line that is not a comment or a well-formed sample.
    pub fn parse(text: &str) -> Self {
        let mut exposition = Self::default();
        for line in text.lines() {
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line");
                exposition.types.insert(name.into(), kind.into());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            exposition.samples.push(parse_sample(line));
        }
        exposition
    }

    /// The samples of `name` whose labels include every pair of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The sum of [`Exposition::find`]'s values.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).iter().map(|s| s.value).sum()
    }
}

fn parse_sample(line: &str) -> Sample {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(index) => line.split_at(index),
        None => panic!("sample without a value: {line}"),
    };
    let mut labels = HashMap::new();
    let mut rest = rest;
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let mut key = String::new();
        let end;
        loop {
            let (index, c) = chars
                .next()
                .unwrap_or_else(|| panic!("unclosed labels: {line}"));
            match c {
                '}' => {
                    end = index + 1;
                    break;
                }
                ',' => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars
                            .next()
                            .unwrap_or_else(|| panic!("unclosed value: {line}"));
                        match c {
                            '"' => break,
                            '\\' => match chars.next().map(|(_, c)| c) {
                                Some('n') => value.push('\n'),
                                Some(other) => value.push(other),
                                None => panic!("dangling escape: {line}"),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
        rest = &body[end..];
    }
    let value = rest.trim();
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse()
            .unwrap_or_else(|e| panic!("bad value {other:?} ({e}): {line}")),
    };
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// `GET http://address/metrics` over a plain TCP connection; returns the body.
///
/// # Panics
/// When the endpoint does not answer 200 with the Prometheus content type.
pub async fn scrape(address: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse_with_escaped_labels() {
        let exposition = Exposition::parse(
            "# HELP x_total things\n# TYPE x_total counter\n\
             x_total{a=\"1\",b=\"q\\\"uote\\\\ \\n\"} 2\nplain 3.5\nh_bucket{le=\"+Inf\"} 4\n",
        );
        assert_eq!(exposition.types["x_total"], "counter");
        let x = &exposition.find("x_total", &[("a", "1")])[0];
        assert_eq!(x.labels["b"], "q\"uote\\ \n");
        assert_eq!(x.value, 2.0);
        assert_eq!(exposition.sum("plain", &[]), 3.5);
        assert_eq!(exposition.find("h_bucket", &[("le", "+Inf")]).len(), 1);
    }
}
