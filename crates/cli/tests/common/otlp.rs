//! An OTLP/HTTP trace receiver on a loopback port: decodes what exporters send (protobuf, with the
//! OpenTelemetry project's own message types) and keeps the spans.

use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

/// One received span, its ids in hexadecimal as `traceparent` writes them.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
}

type Received = Arc<Mutex<Vec<Span>>>;

pub struct Receiver {
    /// The base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it.
    pub url: String,
    received: Received,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Received::default();
        let app = axum::Router::new().route("/v1/traces", axum::routing::post(export)).with_state(received.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, received, server }
    }

    pub fn spans(&self) -> Vec<Span> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn export(State(received): State<Received>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let attributes = resource_spans.resource.map(|resource| resource.attributes).unwrap_or_default();
        let service = attributes
            .into_iter()
            .find(|attribute| attribute.key == "service.name")
            .and_then(|attribute| attribute.value?.value)
            .map_or_else(String::new, |value| match value {
                AnyValue::StringValue(name) => name,
                other => format!("{other:?}"),
            });
        for span in resource_spans.scope_spans.into_iter().flat_map(|scope| scope.spans) {
            spans.push(Span {
                service: service.clone(),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
            });
        }
    }
    received.lock().unwrap_or_else(PoisonError::into_inner).extend(spans);
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    ([(header::CONTENT_TYPE, "application/x-protobuf")], answer).into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
