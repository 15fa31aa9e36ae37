//! The Prometheus text exposition format (0.0.4) of the process's metrics, and the small HTTP
//! endpoint that serves it on `metrics.listen` (`GET /metrics`), so Kubernetes can scrape every
//! pod whether or not an OTLP collector is configured.
//!
//! Names follow the OpenTelemetry-to-Prometheus rules: dots and other invalid characters become
//! `_`, the unit is appended as a word (`_seconds`) unless it is an annotation such as
//! `{task}`, and monotonic sums end in `_total`. (`opentelemetry-prometheus` has no release for
//! opentelemetry 0.33, hence this module.)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The content type Prometheus expects for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `metrics` in the text exposition format.
pub fn encode(metrics: &ResourceMetrics) -> String {
    let mut out = String::new();
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            match metric.data() {
                AggregatedMetrics::F64(data) => encode_metric(&mut out, metric, data),
                AggregatedMetrics::U64(data) => encode_metric(&mut out, metric, data),
                AggregatedMetrics::I64(data) => encode_metric(&mut out, metric, data),
            }
        }
    }
    out
}

/// A sample value as the exposition format writes it.
trait SampleValue: Copy {
    fn text(self) -> String;
}

impl SampleValue for f64 {
    fn text(self) -> String {
        if self.is_nan() {
            "NaN".into()
        } else if self == f64::INFINITY {
            "+Inf".into()
        } else if self == f64::NEG_INFINITY {
            "-Inf".into()
        } else {
            self.to_string()
        }
    }
}

impl SampleValue for u64 {
    fn text(self) -> String {
        self.to_string()
    }
}

impl SampleValue for i64 {
    fn text(self) -> String {
        self.to_string()
    }
}

fn encode_metric<T: SampleValue>(out: &mut String, metric: &Metric, data: &MetricData<T>) {
    let base = format!(
        "{}{}",
        sanitize_name(metric.name()),
        unit_suffix(metric.unit())
    );
    let help = |out: &mut String, name: &str, kind: &str| {
        let _ = writeln!(out, "# HELP {name} {}", escape_help(metric.description()));
        let _ = writeln!(out, "# TYPE {name} {kind}");
    };
    match data {
        MetricData::Gauge(gauge) => {
            help(out, &base, "gauge");
            for point in gauge.data_points() {
                sample(
                    out,
                    &base,
                    &labels(point.attributes(), None),
                    point.value().text(),
                );
            }
        }
        MetricData::Sum(sum) => {
            let (name, kind) = if sum.is_monotonic() {
                (format!("{base}_total"), "counter")
            } else {
                (base.clone(), "gauge")
            };
            help(out, &name, kind);
            for point in sum.data_points() {
                sample(
                    out,
                    &name,
                    &labels(point.attributes(), None),
                    point.value().text(),
                );
            }
        }
        MetricData::Histogram(histogram) => {
            help(out, &base, "histogram");
            for point in histogram.data_points() {
                let mut cumulative = 0_u64;
                let bounds: Vec<f64> = point.bounds().collect();
                for (index, count) in point.bucket_counts().enumerate() {
                    cumulative += count;
                    // The last bucket (above every bound) is `+Inf`, written below with `count`.
                    if let Some(bound) = bounds.get(index) {
                        let le = labels(point.attributes(), Some(bound.text()));
                        sample(out, &format!("{base}_bucket"), &le, cumulative.to_string());
                    }
                }
                let inf = labels(point.attributes(), Some("+Inf".into()));
                sample(
                    out,
                    &format!("{base}_bucket"),
                    &inf,
                    point.count().to_string(),
                );
                let plain = labels(point.attributes(), None);
                sample(out, &format!("{base}_sum"), &plain, point.sum().text());
                sample(
                    out,
                    &format!("{base}_count"),
                    &plain,
                    point.count().to_string(),
                );
            }
        }
        // Never configured (no view selects it); skipped rather than written wrongly.
        MetricData::ExponentialHistogram(_) => {}
    }
}

fn sample(out: &mut String, name: &str, labels: &str, value: String) {
    let _ = writeln!(out, "{name}{labels} {value}");
}

/// `{k="v",…}` sorted by key (empty when there are none), `le` last for buckets.
fn labels<'a>(attributes: impl Iterator<Item = &'a KeyValue>, le: Option<String>) -> String {
    let sorted: BTreeMap<String, String> = attributes
        .map(|kv| {
            (
                sanitize_label(kv.key.as_str()),
                kv.value.as_str().into_owned(),
            )
        })
        .collect();
    let mut parts: Vec<String> = sorted
        .into_iter()
        .map(|(key, value)| format!("{key}=\"{}\"", escape_label_value(&value)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn sanitize(name: &str, colon_allowed: bool) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || (colon_allowed && c == ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

fn sanitize_name(name: &str) -> String {
    sanitize(name, true)
}

fn sanitize_label(name: &str) -> String {
    sanitize(name, false)
}

/// `_seconds` for `s` and the like; nothing for annotations (`{task}`), `1` or no unit.
fn unit_suffix(unit: &str) -> String {
    let word = match unit {
        "" | "1" => return String::new(),
        unit if unit.starts_with('{') => return String::new(),
        "s" => "seconds",
        "ms" => "milliseconds",
        "By" => "bytes",
        other => other,
    };
    format!("_{}", sanitize_label(word))
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes; anything else is 404.
///
/// Each scrape collects afresh. A connection that sends no request head within ten seconds is
/// dropped, so an idle client cannot hold a task forever.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(async move {
                        if let Err(error) = answer(stream).await {
                            tracing::debug!(error = %error, "metrics scrape failed");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(error = %error, "metrics endpoint cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buffer = [0_u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = stream.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buffer[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let request_line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = request_line.split(|b| *b == b' ');
    let (method, target) = (parts.next(), parts.next());
    let path = target.map(|t| t.split(|b| *b == b'?').next().unwrap_or_default());
    let (status, content_type, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => match super::metrics::collect() {
            Ok(metrics) => ("200 OK", CONTENT_TYPE, encode(&metrics)),
            Err(error) => (
                "503 Service Unavailable",
                "text/plain",
                format!("metrics unavailable: {error}\n"),
            ),
        },
        (Some(b"GET"), _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::reader::MetricReader as _;
    use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};

    use super::*;

    /// A private provider (not the process's), so the expected text is exact.
    fn render(record: impl FnOnce(&opentelemetry::metrics::Meter)) -> String {
        #[derive(Debug, Clone)]
        struct Reader(Arc<ManualReader>);
        impl opentelemetry_sdk::metrics::reader::MetricReader for Reader {
            fn register_pipeline(
                &self,
                pipeline: std::sync::Weak<opentelemetry_sdk::metrics::Pipeline>,
            ) {
                self.0.register_pipeline(pipeline);
            }
            fn collect(&self, rm: &mut ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
                self.0.collect(rm)
            }
            fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
                self.0.force_flush()
            }
            fn shutdown_with_timeout(
                &self,
                timeout: Duration,
            ) -> opentelemetry_sdk::error::OTelSdkResult {
                self.0.shutdown_with_timeout(timeout)
            }
            fn temporality(
                &self,
                kind: opentelemetry_sdk::metrics::InstrumentKind,
            ) -> opentelemetry_sdk::metrics::Temporality {
                self.0.temporality(kind)
            }
        }
        let reader = Reader(Arc::new(ManualReader::builder().build()));
        let provider = SdkMeterProvider::builder()
            .with_reader(reader.clone())
            .build();
        record(&provider.meter("test"));
        let mut metrics = ResourceMetrics::default();
        reader.collect(&mut metrics).expect("collect");
        encode(&metrics)
    }

    #[test]
    fn counters_gauges_and_labels() {
        let text = render(|meter| {
            let counter = meter
                .u64_counter("shadowsync.task.transitions")
                .with_unit("{transition}")
                .with_description("Task transitions\nby status")
                .build();
            counter.add(2, &[KeyValue::new("shadowsync.task.status", "EXECUTING")]);
            counter.add(
                1,
                &[KeyValue::new(
                    "error.message",
                    "quote \" backslash \\ newline \n end",
                )],
            );
            let gauge = meter.i64_up_down_counter("executor.active").build();
            gauge.add(3, &[]);
            gauge.add(-1, &[]);
        });
        assert!(
            text.contains(
                "# HELP shadowsync_task_transitions_total Task transitions\\nby status\n\
                 # TYPE shadowsync_task_transitions_total counter\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "shadowsync_task_transitions_total{shadowsync_task_status=\"EXECUTING\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "shadowsync_task_transitions_total{error_message=\"quote \\\" backslash \\\\ newline \\n end\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE executor_active gauge\nexecutor_active 2\n"),
            "{text}"
        );
    }

    #[test]
    fn histograms_have_cumulative_buckets_sum_and_count() {
        let text = render(|meter| {
            let histogram = meter
                .f64_histogram("db.client.operation.duration")
                .with_unit("s")
                .with_boundaries(vec![0.1, 1.0])
                .build();
            for value in [0.05, 0.5, 0.7, 3.0] {
                histogram.record(value, &[KeyValue::new("db.system.name", "mariadb")]);
            }
        });
        let expected = "# TYPE db_client_operation_duration_seconds histogram\n\
            db_client_operation_duration_seconds_bucket{db_system_name=\"mariadb\",le=\"0.1\"} 1\n\
            db_client_operation_duration_seconds_bucket{db_system_name=\"mariadb\",le=\"1\"} 3\n\
            db_client_operation_duration_seconds_bucket{db_system_name=\"mariadb\",le=\"+Inf\"} 4\n\
            db_client_operation_duration_seconds_sum{db_system_name=\"mariadb\"} 4.25\n\
            db_client_operation_duration_seconds_count{db_system_name=\"mariadb\"} 4\n";
        assert!(text.contains(expected), "{text}");
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(
            sanitize_name("rpc.server.call.duration"),
            "rpc_server_call_duration"
        );
        assert_eq!(sanitize_name("9lives-x"), "_9lives_x");
        assert_eq!(sanitize_label("a:b"), "a_b");
        assert_eq!(unit_suffix("{task}"), "");
        assert_eq!(unit_suffix("s"), "_seconds");
        assert_eq!(f64::INFINITY.text(), "+Inf");
    }

    /// Every metric and label the dashboard and the alert rules name exists: a renamed metric
    /// cannot leave the operator material silently empty.
    #[test]
    fn the_operator_material_names_real_metrics() {
        use crate::telemetry::metrics::metrics;
        let m = metrics();
        let a = |key: &'static str, value: &'static str| [KeyValue::new(key, value)];
        let rpc = [
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", "s"),
            KeyValue::new("rpc.method", "m"),
            KeyValue::new("rpc.grpc.status_code", 0),
        ];
        m.rpc_server_duration.record(0.1, &rpc);
        m.rpc_client_duration.record(0.1, &rpc);
        m.tasks.record(0, &a("shadowsync.task.status", "EXECUTING"));
        m.task_transitions
            .add(0, &a("shadowsync.task.status", "EXECUTING"));
        m.approval_decisions
            .add(0, &a("shadowsync.approval.decision", "approve"));
        m.messages_sent
            .add(0, &a("messaging.destination.name", "q"));
        m.messages_consumed
            .add(0, &a("messaging.destination.name", "q"));
        m.executor_active_tasks.add(0, &[]);
        m.lease_expirations.add(0, &[]);
        m.redispatches.add(0, &[]);
        m.outbox_backlog.record(0, &[]);
        m.outbox_oldest_age.record(0.0, &[]);
        m.analysis_duration.record(0.1, &[]);
        m.analysis_tables
            .add(0, &a("shadowsync.table.result", "CREATE"));
        m.statement_duration
            .record(0.1, &a("db.operation.name", "CREATE TABLE"));
        m.statement_failures
            .add(0, &a("db.response.status_code", "1050"));
        m.execution_tables
            .add(0, &a("shadowsync.table.status", "SUCCEEDED"));
        m.health_serving.record(1, &a("grpc.health.service", ""));
        let text = encode(&super::super::metrics::collect().expect("collect"));
        let mut known = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE");
                known.insert(name.to_string());
                if kind == "histogram" {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        known.insert(format!("{name}{suffix}"));
                    }
                }
            } else if let Some((_, labels)) = line.split_once('{') {
                for pair in labels.split(',') {
                    if let Some((key, _)) = pair.split_once('=') {
                        known.insert(key.to_string());
                    }
                }
            }
        }
        let material = [
            include_str!("../../../../deploy/observability/grafana-dashboard.json"),
            include_str!("../../../../deploy/observability/prometheus-rules.yaml"),
        ];
        let prefixes = [
            "shadowsync_",
            "rpc_",
            "messaging_",
            "db_client_",
            "db_operation",
            "db_response",
            "grpc_health",
        ];
        let mut named = 0;
        for text in material {
            for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if prefixes.iter().any(|prefix| token.starts_with(prefix)) {
                    named += 1;
                    assert!(
                        known.contains(token),
                        "{token} is not a metric or label: {known:?}"
                    );
                }
            }
        }
        assert!(named > 40, "only {named} names found");
    }

    #[tokio::test]
    async fn the_endpoint_serves_metrics_and_nothing_else() {
        super::super::metrics::metrics().approval_decisions.add(
            0,
            &[KeyValue::new("shadowsync.approval.decision", "approve")],
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, async {
            let _ = stopped.await;
        }));
        let get = |path: &'static str| async move {
            let mut stream = TcpStream::connect(address).await.expect("connect");
            stream
                .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let mut response = String::new();
            stream.read_to_string(&mut response).await.expect("read");
            response
        };
        let metrics = get("/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        assert!(metrics.contains(CONTENT_TYPE));
        assert!(
            metrics.contains("# TYPE shadowsync_build_info gauge"),
            "{metrics}"
        );
        assert!(
            metrics.contains(
                "shadowsync_approval_decisions_total{shadowsync_approval_decision=\"approve\"}"
            ),
            "{metrics}"
        );
        assert!(get("/other").await.starts_with("HTTP/1.1 404 "));
        let _ = stop.send(());
        server.await.expect("server stops");
    }
}
