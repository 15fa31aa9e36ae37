//! W3C trace context (`traceparent`, `tracestate`) in and out of carriers: gRPC metadata (HTTP/2
//! headers), AMQP headers and the outbox row.
//!
//! The W3C propagator is used directly rather than through the global one, so propagation works
//! the same whether or not this process exports its spans: a service without an OTLP endpoint
//! still passes its caller's trace on.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The W3C header name.
pub const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of `span`, or `None` when it has no valid (recorded) trace context, e.g.
/// when no telemetry subscriber is installed.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    traceparent_of_context(&span.context())
}

/// The `traceparent` of the current span (see [`traceparent_of`]).
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The `traceparent` of an OpenTelemetry context, if it holds a valid span context.
pub fn traceparent_of_context(context: &Context) -> Option<String> {
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The remote context a `traceparent` names; an empty context when it is malformed (a bad
/// header starts a new trace rather than failing the call).
pub fn context_from_traceparent(traceparent: &str) -> Context {
    let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    TraceContextPropagator::new().extract(&carrier)
}

/// Writes `span`'s trace context into request headers (replacing any already there).
pub fn inject_headers(span: &tracing::Span, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
}

/// The remote context carried by request headers (empty when there is none).
pub fn extract_headers(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn traceparent_round_trips_through_headers() {
        let context = context_from_traceparent(PARENT);
        assert_eq!(
            context.span().span_context().trace_id(),
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("hex")
        );
        assert_eq!(traceparent_of_context(&context).as_deref(), Some(PARENT));

        let mut headers = http::HeaderMap::new();
        headers.insert(TRACEPARENT, PARENT.parse().expect("header"));
        let extracted = extract_headers(&headers);
        assert_eq!(
            extracted.span().span_context().span_id(),
            SpanId::from_hex("b7ad6b7169203331").expect("hex")
        );
        assert!(extracted.span().span_context().is_remote());
    }

    #[test]
    fn malformed_or_missing_context_starts_afresh() {
        assert!(
            !context_from_traceparent("00-nothex-b7ad6b7169203331-01")
                .span()
                .span_context()
                .is_valid()
        );
        assert!(
            !extract_headers(&http::HeaderMap::new())
                .span()
                .span_context()
                .is_valid()
        );
        assert_eq!(traceparent_of_context(&Context::new()), None);
        // An unsampled parent is still propagated (flags 00), so downstream follows the decision.
        let unsampled = Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("hex"),
            SpanId::from_hex("b7ad6b7169203331").expect("hex"),
            TraceFlags::default(),
            true,
            TraceState::default(),
        ));
        assert_eq!(
            traceparent_of_context(&unsampled).as_deref(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
        );
    }
}
