//! JSON log lines that an operator can join with traces: every event inside a span carries the
//! OpenTelemetry `trace_id` and `span_id` of that span, and every line the `service` name.
//!
//! One object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, `service`, `message`,
//! the event's fields, `span` (the innermost span's name and fields) and `trace_id`/`span_id`
//! when the event is inside a span with a valid trace context.

use std::fmt;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::TraceContextExt as _;
use serde_json::{Map, Value};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Where [`JsonWithTrace`] finds the dispatch it formats for, once that exists: an event is
/// formatted from inside the dispatch, where `tracing::dispatcher::get_default` answers with
/// the no-op dispatch, so the OpenTelemetry context must be read through this one.
pub type DispatchCell = Arc<OnceLock<WeakDispatch>>;

/// The event formatter (use with `JsonFields` as the field formatter).
#[derive(Debug, Clone)]
pub struct JsonWithTrace {
    service: String,
    dispatch: DispatchCell,
}

impl JsonWithTrace {
    /// Set `dispatch` to the subscriber's dispatch once it is built; until then lines carry no
    /// trace ids.
    pub fn new(service: impl Into<String>, dispatch: DispatchCell) -> Self {
        Self {
            service: service.into(),
            dispatch,
        }
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonWithTrace
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        line.insert("timestamp".into(), Value::String(now));
        line.insert("level".into(), Value::String(metadata.level().to_string()));
        line.insert(
            "target".into(),
            Value::String(metadata.target().to_string()),
        );
        line.insert("service".into(), Value::String(self.service.clone()));
        event.record(&mut JsonVisitor(&mut line));

        if let Some(span) = ctx.parent_span() {
            let mut current = Map::new();
            current.insert("name".into(), Value::String(span.name().to_string()));
            {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<JsonFields>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields)
                {
                    current.extend(fields);
                }
            }
            line.insert("span".into(), Value::Object(current));
            // The extensions above are released: reading the context locks them again.
            let context = self
                .dispatch
                .get()
                .and_then(WeakDispatch::upgrade)
                .and_then(|dispatch| {
                    tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)
                });
            if let Some(context) = context {
                let span_context = context.span().span_context().clone();
                if span_context.is_valid() {
                    line.insert(
                        "trace_id".into(),
                        Value::String(span_context.trace_id().to_string()),
                    );
                    line.insert(
                        "span_id".into(),
                        Value::String(span_context.span_id().to_string()),
                    );
                }
            }
        }
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Records an event's fields into the line's object.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
}
