//! The one telemetry entry point: `tracing` to stderr, pretty or JSON, and
//! OpenTelemetry traces and metrics over OTLP/gRPC when an endpoint is configured.
//!
//! - [`init`] installs the process's subscriber and returns a guard; dropping it flushes and
//!   shuts the exporters down, so the last spans of a terminating process are not lost;
//! - [`build`] makes the same subscriber as a [`tracing::Dispatch`] without installing it (tests
//!   that run several services in one process give each its own);
//! - [`otel_env`]: the standard `OTEL_*` variables;
//! - [`propagation`]: W3C `traceparent` in and out of gRPC metadata, AMQP headers, outbox rows;
//! - [`grpc`]: the server span layer and the traced client channel;
//! - [`messaging`]: publish and process spans for the queue;
//! - [`metrics`]: the instruments; [`prometheus`]: their text exposition on `metrics.listen`;
//! - [`json`]: JSON log lines with `trace_id`, `span_id` and the service name.
//!
//! Spans are always built into OpenTelemetry spans, exported or not: propagation then works the
//! same in a process without an exporter, and JSON logs carry trace ids that its callers and
//! callees (which may export) share.

pub mod grpc;
pub mod json;
pub mod messaging;
pub mod metrics;
pub mod otel_env;
pub mod prometheus;
pub mod propagation;

use std::collections::HashMap;
use std::io::IsTerminal as _;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layered, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{Config, LogFormat};
use crate::log_line::{ColouredLinePerEvent, OneLinePerEvent};
pub use otel_env::{OtelEnvError, OtelSettings, SamplerChoice};

/// What [`init`] needs; a subset of the process configuration.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` on exported telemetry (`shadowsync-task`, …) and on JSON log lines.
    pub service_name: String,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub otlp_endpoint: Option<String>,
    /// Extra resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
    pub resource_attributes: Vec<(String, String)>,
    /// Which traces are recorded (`OTEL_TRACES_SAMPLER`); parent-based by default.
    pub sampler: SamplerChoice,
    /// Metrics go over OTLP too when an endpoint is set (not for a short-lived client).
    pub export_metrics: bool,
}

impl TelemetryConfig {
    /// The telemetry part of `config`, with the `OTEL_*` variables of `env` applied.
    ///
    /// Fails when an `OTEL_*` variable is invalid (see [`OtelSettings::from_env`]).
    pub fn from_config(
        default_service_name: &str,
        config: &Config,
        env: &HashMap<String, String>,
    ) -> Result<Self, OtelEnvError> {
        let otel =
            OtelSettings::from_env(default_service_name, config.otlp_endpoint.as_deref(), env)?;
        Ok(Self {
            service_name: otel.service_name,
            log_format: config.log_format,
            log_filter: config.log_filter.clone(),
            otlp_endpoint: otel.endpoint,
            resource_attributes: otel.resource_attributes,
            sampler: otel.sampler,
            export_metrics: true,
        })
    }

    /// Logs only, nothing exported: for tools and benchmarks.
    pub fn local(service_name: &str, log_format: LogFormat, log_filter: &str) -> Self {
        Self {
            service_name: service_name.to_string(),
            log_format,
            log_filter: log_filter.to_string(),
            otlp_endpoint: None,
            resource_attributes: Vec::new(),
            sampler: SamplerChoice::ParentBasedAlwaysOn,
            export_metrics: true,
        }
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter: {0}")]
    Filter(String),
    #[error("cannot build the OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Flushes and shuts the exporters down when dropped.
#[must_use = "dropping the guard shuts telemetry down"]
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Exports every finished span now (tests read them from a receiver).
    pub fn force_flush(&self) {
        if let Some(provider) = &self.tracer_provider
            && let Err(error) = provider.force_flush()
        {
            eprintln!("telemetry: trace flush failed: {error}");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("telemetry: trace exporter shutdown failed: {error}");
        }
        if let Some(provider) = self.meter_provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("telemetry: metric exporter shutdown failed: {error}");
        }
    }
}

/// Installs the global subscriber, logging to stderr (colours only on a terminal). Call once,
/// early in `main`, inside a Tokio runtime when an OTLP endpoint is configured (the exporters
/// run on it).
///
/// Fails on an invalid filter, an exporter that cannot be built, or a second installation.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let terminal = std::io::stderr().is_terminal();
    let (dispatch, guard) = if terminal {
        dispatch(config, ColouredLinePerEvent(std::io::stderr), true)?
    } else {
        dispatch(config, OneLinePerEvent(std::io::stderr), false)?
    };
    dispatch
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(guard)
}

/// Telemetry for a command-line client (`shadowctl`): only when `OTEL_EXPORTER_OTLP_ENDPOINT` is
/// set, with the `OTEL_*` variables honoured, warnings to stderr and the client's spans (its
/// root span and one per call) exported. Returns `None` when not configured.
///
/// Fails like [`init`], or on an invalid `OTEL_*` variable.
pub fn init_for_client(
    service_name: &str,
    env: &HashMap<String, String>,
) -> Result<Option<TelemetryGuard>, String> {
    let otel = OtelSettings::from_env(service_name, None, env).map_err(|e| e.to_string())?;
    if otel.endpoint.is_none() {
        return Ok(None);
    }
    let config = TelemetryConfig {
        service_name: otel.service_name,
        log_format: LogFormat::Pretty,
        log_filter: format!("warn,shadowsync_common::telemetry=info,{CLIENT_TARGET}=info"),
        otlp_endpoint: otel.endpoint,
        resource_attributes: otel.resource_attributes,
        sampler: otel.sampler,
        export_metrics: false,
    };
    init(&config).map(Some).map_err(|e| e.to_string())
}

/// The target of [`client_root_span`], enabled by [`init_for_client`]'s filter.
pub const CLIENT_TARGET: &str = "shadowctl";

/// The root span of one client command, continuing the caller's trace when the environment
/// carries a `TRACEPARENT` (as CI systems pass it to the tools they run).
pub fn client_root_span(command: &str, env: &HashMap<String, String>) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let span = tracing::info_span!(target: CLIENT_TARGET, "shadowctl", otel.name = %format!("shadowctl {command}"));
    if let Some(traceparent) = env.get("TRACEPARENT") {
        let _ = span.set_parent(propagation::context_from_traceparent(traceparent));
    }
    span
}

/// The subscriber [`init`] would install, writing log lines (without colour) to `writer`, as a
/// dispatch the caller scopes itself.
///
/// Fails on an invalid filter or an exporter that cannot be built.
pub fn build<W>(
    config: &TelemetryConfig,
    writer: W,
) -> Result<(tracing::Dispatch, TelemetryGuard), TelemetryError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    dispatch(config, OneLinePerEvent(writer), false)
}

type Filtered = Layered<EnvFilter, Registry>;
type BoxedLayer = Box<dyn Layer<Filtered> + Send + Sync>;

fn dispatch<W>(
    config: &TelemetryConfig,
    writer: W,
    colour: bool,
) -> Result<(tracing::Dispatch, TelemetryGuard), TelemetryError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let cell = json::DispatchCell::default();
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let fmt_layer: BoxedLayer = match config.log_format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_ansi(colour)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .event_format(json::JsonWithTrace::new(
                config.service_name.clone(),
                cell.clone(),
            ))
            .with_writer(writer)
            .boxed(),
    };

    let mut attributes = vec![KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))];
    attributes.extend(
        config
            .resource_attributes
            .iter()
            .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
    );
    let resource = Resource::builder_empty()
        .with_service_name(config.service_name.clone())
        .with_attributes(attributes)
        .build();

    let exporter_error = |endpoint: &str, reason: String| TelemetryError::Exporter {
        endpoint: endpoint.to_string(),
        reason,
    };
    let mut tracer_provider = SdkTracerProvider::builder()
        .with_sampler(config.sampler.sampler())
        .with_resource(resource.clone());
    let mut metric_exporter = None;
    if let Some(endpoint) = &config.otlp_endpoint {
        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| exporter_error(endpoint, e.to_string()))?;
        tracer_provider = tracer_provider.with_batch_exporter(spans);
    }
    if let Some(endpoint) = config
        .otlp_endpoint
        .as_ref()
        .filter(|_| config.export_metrics)
    {
        metric_exporter = Some(
            opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| exporter_error(endpoint, e.to_string()))?,
        );
    }
    let tracer_provider = tracer_provider.build();
    let meter_provider = metrics::install(metric_exporter, resource, &config.service_name);
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let tracer = tracer_provider.tracer("shadowsync");
    // Source locations, thread names and busy/idle timings on every span cost time on every
    // RPC and tell an operator nothing the span names and attributes do not.
    let otel_layer: BoxedLayer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .boxed();

    let guard = TelemetryGuard {
        tracer_provider: Some(tracer_provider),
        meter_provider,
    };
    let subscriber: Layered<Vec<BoxedLayer>, Filtered> = tracing_subscriber::registry()
        .with(filter)
        .with(vec![fmt_layer, otel_layer]);
    let dispatch = tracing::Dispatch::new(subscriber);
    let _ = cell.set(dispatch.downgrade());
    Ok((dispatch, guard))
}
