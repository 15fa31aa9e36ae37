//! The one telemetry entry point (DESIGN.md §8): `tracing` to stderr, pretty or JSON, and
//! OpenTelemetry traces and metrics over OTLP/gRPC when an endpoint is configured.
//!
//! [`init`] returns a guard; dropping it flushes and shuts the exporters down, so the last spans
//! of a terminating process are not lost.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::LogFormat;
use crate::log_line::OneLinePerEvent;

/// What [`init`] needs; a subset of the process configuration.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` on exported telemetry (`shadowsync-task`, …).
    pub service_name: String,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub otlp_endpoint: Option<String>,
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

/// Installs the global subscriber. Call once, early in `main`, inside a Tokio runtime when an
/// OTLP endpoint is configured (the exporters run on it).
///
/// Fails on an invalid filter, an exporter that cannot be built, or a second installation.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let fmt_layer = match config.log_format {
        // One event, one line, whatever a field holds (see `log_line`).
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(OneLinePerEvent(std::io::stderr))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(OneLinePerEvent(std::io::stderr))
            .boxed(),
    };

    let mut guard = TelemetryGuard::default();
    let otel_layer = match &config.otlp_endpoint {
        None => None,
        Some(endpoint) => {
            let exporter_error = |reason: String| TelemetryError::Exporter {
                endpoint: endpoint.clone(),
                reason,
            };
            let resource = Resource::builder()
                .with_service_name(config.service_name.clone())
                .build();
            let spans = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| exporter_error(e.to_string()))?;
            let tracer_provider = SdkTracerProvider::builder()
                .with_batch_exporter(spans)
                .with_resource(resource.clone())
                .build();
            let metrics = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| exporter_error(e.to_string()))?;
            let meter_provider = SdkMeterProvider::builder()
                .with_periodic_exporter(metrics)
                .with_resource(resource)
                .build();
            opentelemetry::global::set_meter_provider(meter_provider.clone());
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            let tracer = tracer_provider.tracer("shadowsync");
            guard.tracer_provider = Some(tracer_provider);
            guard.meter_provider = Some(meter_provider);
            Some(tracing_opentelemetry::layer().with_tracer(tracer))
        }
    };

    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(guard)
}
