//! OpenTelemetry for StreamSpace: spans exported over OTLP/HTTP (protobuf) when an endpoint is configured, and
//! W3C trace context (`traceparent`) carried across the agent protocol, so that one trace runs from an API
//! request through the hub to the agent and back (ADR 0028).
//!
//! Both processes (control plane and agent) install [`Exporter::layer`] beside their log layer; a `tracing`
//! span is then an OpenTelemetry span. Without an exporter nothing is traced and [`traceparent`] is `None`.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Exports the spans of this process in batches (on a thread of its own) until dropped; dropping it sends
/// what is still queued.
pub struct Exporter {
    provider: SdkTracerProvider,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot export traces to {endpoint}: {source}")]
pub struct ExporterError {
    endpoint: String,
    source: opentelemetry_otlp::ExporterBuildError,
}

impl Exporter {
    /// Exports to the OTLP/HTTP collector at `endpoint` (its base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` names it:
    /// spans go to `<endpoint>/v1/traces`), as service `service_name`.
    pub fn start(endpoint: &str, service_name: &'static str) -> Result<Exporter, ExporterError> {
        let traces_url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(&traces_url)
            .build()
            .map_err(|source| ExporterError { endpoint: traces_url, source })?;
        let provider = SdkTracerProvider::builder()
            .with_resource(Resource::builder().with_service_name(service_name).build())
            .with_batch_exporter(exporter)
            .build();
        Ok(Exporter { provider })
    }

    /// The layer that turns `tracing` spans into exported OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("streamspace"))
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown() {
            eprintln!("traces not all exported: {err}");
        }
    }
}

/// Makes `span` a child of the remote span `traceparent` names, when it is a valid W3C trace context; `span` must
/// not have been entered yet.
pub fn continue_trace(span: &Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        // Only a span that already started refuses a parent, and callers hand over new ones.
        let _ = span.set_parent(parent);
    }
}

/// The W3C trace context of `span`, when it is traced.
pub fn traceparent(span: &Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// The W3C trace context of the current span, when it is traced.
pub fn current_traceparent() -> Option<String> {
    traceparent(&Span::current())
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const REMOTE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn traced<T>(run: impl FnOnce() -> T) -> T {
        // No exporter: the provider still makes real spans with real ids.
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), run)
    }

    #[test]
    fn a_continued_span_joins_the_remote_trace_under_a_span_of_its_own() {
        let ours = traced(|| {
            let span = tracing::info_span!("command");
            continue_trace(&span, REMOTE);
            traceparent(&span)
        })
        .expect("traced");
        let parts: Vec<&str> = ours.split('-').collect();
        assert_eq!((parts[0], parts[1], parts[3]), ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01"), "{ours}");
        assert_ne!(parts[2], "00f067aa0ba902b7", "a span id of its own");
    }

    #[test]
    fn children_of_a_continued_span_are_in_its_trace() {
        let child = traced(|| {
            let span = tracing::info_span!("command");
            continue_trace(&span, REMOTE);
            span.in_scope(|| {
                let _inner = tracing::info_span!("pull").entered();
                current_traceparent()
            })
        })
        .expect("traced");
        assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{child}");
    }

    #[test]
    fn invalid_context_starts_no_trace_of_the_callers_choosing() {
        for bad in ["", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"] {
            let ours = traced(|| {
                let span = tracing::info_span!("command");
                continue_trace(&span, bad);
                traceparent(&span)
            })
            .expect("a root span is traced too");
            assert!(!ours.contains("00000000000000000000000000000000"), "{bad}: {ours}");
        }
    }

    #[test]
    fn nothing_is_traced_without_the_layer() {
        let span = tracing::info_span!("command");
        continue_trace(&span, REMOTE);
        assert_eq!(traceparent(&span), None);
    }
}
