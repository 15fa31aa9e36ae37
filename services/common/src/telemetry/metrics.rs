//! The process's metric instruments, on one meter provider that always has a pull
//! reader (rendered as Prometheus text on `metrics.listen`) and, when an OTLP endpoint is
//! configured, a periodic OTLP exporter too.
//!
//! Instruments are process-wide, like the process they describe: code records through
//! [`metrics()`] without threading a handle through every constructor. The provider is built on
//! first use (pull reader only) unless [`super::init`] built it first with the exporter. Names
//! and units follow the OpenTelemetry semantic conventions where one exists (`rpc.*`,
//! `messaging.*`, `db.client.*`), `shadowsync.*` otherwise; README.md lists them.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider as _, UpDownCounter};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};

/// Bucket bounds (seconds) for every duration histogram: RPCs and statements from a
/// millisecond, analyses and DDL up to five minutes.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Every instrument shadowsync records.
#[derive(Debug)]
pub struct Instruments {
    /// `rpc.server.call.duration` (s): one per RPC served; its count is the request count and
    /// `rpc.grpc.status_code` splits errors by code.
    pub rpc_server_duration: Histogram<f64>,
    /// `rpc.client.call.duration` (s): one per outgoing call.
    pub rpc_client_duration: Histogram<f64>,
    /// `shadowsync.tasks` ({task}): tasks by `shadowsync.task.status`, refreshed by the task
    /// service.
    pub tasks: Gauge<u64>,
    /// `shadowsync.task.transitions` ({transition}): by the status reached.
    pub task_transitions: Counter<u64>,
    /// `shadowsync.approval.decisions` ({decision}): by `shadowsync.approval.decision`.
    pub approval_decisions: Counter<u64>,
    /// `messaging.client.sent.messages` ({message}): publishes confirmed by the broker.
    pub messages_sent: Counter<u64>,
    /// `messaging.client.consumed.messages` ({message}): deliveries handed to a consumer.
    pub messages_consumed: Counter<u64>,
    /// `shadowsync.executor.active_tasks` ({task}): tasks an executor is running now.
    pub executor_active_tasks: UpDownCounter<i64>,
    /// `shadowsync.task.lease_expirations` ({lease}): executions whose lease lapsed.
    pub lease_expirations: Counter<u64>,
    /// `shadowsync.task.redispatches` ({task}): executions dispatched again after a lapse.
    pub redispatches: Counter<u64>,
    /// `shadowsync.outbox.backlog` ({message}): due rows not yet sent, by `shadowsync.service`.
    pub outbox_backlog: Gauge<u64>,
    /// `shadowsync.outbox.oldest_age` (s): how long the oldest due unsent row has waited.
    pub outbox_oldest_age: Gauge<f64>,
    /// `shadowsync.analysis.duration` (s): one per analysis run.
    pub analysis_duration: Histogram<f64>,
    /// `shadowsync.analysis.tables` ({table}): tables analysed, by `shadowsync.table.result`.
    pub analysis_tables: Counter<u64>,
    /// `db.client.operation.duration` (s): one per DDL statement the executor ran.
    pub statement_duration: Histogram<f64>,
    /// `shadowsync.statement.failures` ({statement}): by `db.response.status_code`.
    pub statement_failures: Counter<u64>,
    /// `shadowsync.execution.tables` ({table}): tables finished, by `shadowsync.table.status`.
    pub execution_tables: Counter<u64>,
    /// `shadowsync.build.info`: 1, with the version and service name as attributes.
    pub build_info: Gauge<u64>,
    /// `shadowsync.health.serving`: 1 while the health service reports SERVING, by
    /// `grpc.health.service` (empty: the whole process).
    pub health_serving: Gauge<u64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        let duration = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build()
        };
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        Self {
            rpc_server_duration: duration(
                "rpc.server.call.duration",
                "Duration of RPCs served, by method and gRPC status code",
            ),
            rpc_client_duration: duration(
                "rpc.client.call.duration",
                "Duration of outgoing RPCs, by method and gRPC status code",
            ),
            tasks: meter
                .u64_gauge("shadowsync.tasks")
                .with_unit("{task}")
                .with_description("Tasks by status")
                .build(),
            task_transitions: counter(
                "shadowsync.task.transitions",
                "{transition}",
                "Task status transitions, by the status reached",
            ),
            approval_decisions: counter(
                "shadowsync.approval.decisions",
                "{decision}",
                "Approval decisions recorded, by decision",
            ),
            messages_sent: counter(
                "messaging.client.sent.messages",
                "{message}",
                "Messages published and confirmed by the broker",
            ),
            messages_consumed: counter(
                "messaging.client.consumed.messages",
                "{message}",
                "Messages delivered to a consumer",
            ),
            executor_active_tasks: meter
                .i64_up_down_counter("shadowsync.executor.active_tasks")
                .with_unit("{task}")
                .with_description("Tasks an executor is running")
                .build(),
            lease_expirations: counter(
                "shadowsync.task.lease_expirations",
                "{lease}",
                "Executions whose lease lapsed",
            ),
            redispatches: counter(
                "shadowsync.task.redispatches",
                "{task}",
                "Executions dispatched again after their lease lapsed",
            ),
            outbox_backlog: meter
                .u64_gauge("shadowsync.outbox.backlog")
                .with_unit("{message}")
                .with_description("Due outbox rows not yet published")
                .build(),
            outbox_oldest_age: meter
                .f64_gauge("shadowsync.outbox.oldest_age")
                .with_unit("s")
                .with_description("How long the oldest due unpublished outbox row has waited")
                .build(),
            analysis_duration: duration(
                "shadowsync.analysis.duration",
                "Duration of schema analyses",
            ),
            analysis_tables: counter(
                "shadowsync.analysis.tables",
                "{table}",
                "Tables analysed, by result",
            ),
            statement_duration: duration(
                "db.client.operation.duration",
                "Duration of the DDL statements executors ran on target databases",
            ),
            statement_failures: counter(
                "shadowsync.statement.failures",
                "{statement}",
                "DDL statements that failed, by database error code",
            ),
            execution_tables: counter(
                "shadowsync.execution.tables",
                "{table}",
                "Tables whose execution finished, by outcome",
            ),
            build_info: meter
                .u64_gauge("shadowsync.build.info")
                .with_description("Always 1; the attributes name the version and service")
                .build(),
            health_serving: meter
                .u64_gauge("shadowsync.health.serving")
                .with_description("1 while gRPC health reports SERVING, 0 otherwise")
                .build(),
        }
    }
}

/// A [`ManualReader`] the provider and the Prometheus endpoint share.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

struct State {
    provider: SdkMeterProvider,
    reader: SharedReader,
    instruments: Instruments,
}

static STATE: OnceLock<State> = OnceLock::new();

fn build(
    exporter: Option<opentelemetry_otlp::MetricExporter>,
    resource: Resource,
    service_name: &str,
) -> State {
    let reader = SharedReader(Arc::new(ManualReader::builder().build()));
    let mut builder = SdkMeterProvider::builder()
        .with_reader(reader.clone())
        .with_resource(resource);
    if let Some(exporter) = exporter {
        builder = builder.with_periodic_exporter(exporter);
    }
    let provider = builder.build();
    let instruments = Instruments::new(&provider.meter("shadowsync"));
    instruments.build_info.record(
        1,
        &[
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.name", service_name.to_string()),
        ],
    );
    State {
        provider,
        reader,
        instruments,
    }
}

/// The instruments (building the pull-only provider on first use if [`super::init`] did not).
pub fn metrics() -> &'static Instruments {
    &STATE
        .get_or_init(|| build(None, Resource::builder_empty().build(), "shadowsync"))
        .instruments
}

/// Builds the provider with `exporter`; returns the provider (for shutdown), or `None` when
/// instruments were already in use (then only the Prometheus endpoint serves them).
pub(super) fn install(
    exporter: Option<opentelemetry_otlp::MetricExporter>,
    resource: Resource,
    service_name: &str,
) -> Option<SdkMeterProvider> {
    let mut installed = false;
    let state = STATE.get_or_init(|| {
        installed = true;
        build(exporter, resource, service_name)
    });
    installed.then(|| state.provider.clone())
}

/// Everything recorded so far (cumulative), as the Prometheus endpoint and tests read it.
///
/// Fails only when the provider was shut down.
pub fn collect() -> Result<ResourceMetrics, String> {
    let state = STATE.get_or_init(|| build(None, Resource::builder_empty().build(), "shadowsync"));
    let mut metrics = ResourceMetrics::default();
    state
        .reader
        .collect(&mut metrics)
        .map_err(|e| e.to_string())?;
    Ok(metrics)
}
