//! Trace ids, request logs and HTTP metrics.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rand::RngCore;
use tracing::Instrument;

/// The W3C trace context of a request: the caller's trace id when it sent a valid
/// `traceparent`, a new one otherwise; the span id is always ours. With OpenTelemetry export on,
/// both are the request span's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: String,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Parses `version-traceid-parentid-flags` (W3C Trace Context, version 00), rejecting all-zero ids.
pub fn parse_traceparent(value: &str) -> Option<String> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let [version, trace_id, parent_id, flags] = parts.as_slice() else { return None };
    let is_hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let valid = is_hex(version, 2)
        && *version != "ff"
        && is_hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && is_hex(parent_id, 16)
        && parent_id.bytes().any(|b| b != b'0')
        && is_hex(flags, 2);
    valid.then(|| (*trace_id).to_owned())
}

fn request_traceparent(request: &Request) -> Option<&str> {
    request.headers().get("traceparent").and_then(|v| v.to_str().ok())
}

impl TraceContext {
    pub fn from_request(request: &Request) -> TraceContext {
        let trace_id = request_traceparent(request).and_then(parse_traceparent).unwrap_or_else(|| random_hex(16));
        TraceContext { trace_id, span_id: random_hex(8) }
    }

    /// The context of the exported span `span`, or `None` when nothing is exported.
    fn of_span(span: &tracing::Span) -> Option<TraceContext> {
        let traceparent = streamspace_trace::traceparent(span)?;
        let mut parts = traceparent.split('-').skip(1);
        let (trace_id, span_id) = (parts.next()?.to_owned(), parts.next()?.to_owned());
        Some(TraceContext { trace_id, span_id })
    }

    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }
}

/// Middleware for the API origin: gives each request a trace context, a span carrying its trace id
/// (so every log line of the request names it), a `traceparent` response header, a log line and
/// HTTP metrics.
pub async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        trace_id = tracing::field::Empty,
        %method,
        route = %route,
    );
    if let Some(traceparent) = request_traceparent(&request) {
        streamspace_trace::continue_trace(&span, traceparent);
    }
    let trace = TraceContext::of_span(&span).unwrap_or_else(|| TraceContext::from_request(&request));
    span.record("trace_id", tracing::field::display(&trace.trace_id));
    request.extensions_mut().insert(trace.clone());

    let mut response = next.run(request).instrument(span.clone()).await;

    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    span.in_scope(|| tracing::info!(status, latency_ms = elapsed.as_secs_f64() * 1e3, "request finished"));
    let labels = [("method", method_label(&method).to_owned()), ("route", route), ("status", status.to_string())];
    metrics::counter!("streamspace_http_requests_total", &labels).increment(1);
    metrics::histogram!("streamspace_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&trace.traceparent()) {
        response.headers_mut().insert("traceparent", value);
    }
    response
}

/// The `method` label: the standard methods by name, anything else as `other`. Clients choose the
/// method, and every label value is a series kept for the life of the process: an unbounded set of
/// them (`FOO1`, `FOO2`, ...) would grow the control plane's memory and its metrics without end.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    STANDARD.iter().find(|standard| *standard == method).map_or("other", Method::as_str)
}

/// The route label of every request on the session origin.
const SESSION_ROUTE: &str = "/api/v1/http/{session_id}/*";

/// HTTP metrics and request logs of the session origin, which carries every request of every
/// streamer. What the API's middleware does per request (a trace context, label strings, a
/// registry lookup) would cost the proxy as much as the forwarding itself, so the metric handles
/// are looked up once per method and status, and the request line is DEBUG.
/// The request counter and duration histogram of one method label and status.
type Series = (Counter, Histogram);

#[derive(Default)]
pub struct SessionRequests {
    /// Keyed by a method label and a status: a handful of keys nobody outside chooses, hashed by aHash.
    handles: RwLock<HashMap<(&'static str, u16), Series, ahash::RandomState>>,
}

impl SessionRequests {
    pub fn record(&self, method: &Method, status: StatusCode, started: Instant) {
        let elapsed = started.elapsed();
        tracing::debug!(%method, status = status.as_u16(), latency_ms = elapsed.as_secs_f64() * 1e3, "request finished");
        let key = (method_label(method), status.as_u16());
        let record = |(requests, duration): &Series| {
            requests.increment(1);
            duration.record(elapsed.as_secs_f64());
        };
        if let Some(series) = self.handles.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return record(series);
        }
        let labels = [("method", key.0.to_owned()), ("route", SESSION_ROUTE.to_owned()), ("status", key.1.to_string())];
        let series = (
            metrics::counter!("streamspace_http_requests_total", &labels),
            metrics::histogram!("streamspace_http_request_duration_seconds", &labels),
        );
        record(&series);
        self.handles.write().unwrap_or_else(|p| p.into_inner()).insert(key, series);
    }
}

/// The process-wide Prometheus recorder (metrics has one global recorder; every app in the
/// process, tests included, shares it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".to_owned()),
                    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
                )
                .expect("static bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed by an embedding program; ours still renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Moves the histogram samples recorded since the last call into their buckets. The recorder keeps every
/// sample until then, or until a scrape: a control plane that nobody scrapes would otherwise grow with every
/// request it serves.
pub fn drain_histograms() {
    metrics_handle().run_upkeep();
}

/// Counters that exist at zero from the start, with every value of their label: `increase()` and
/// `rate()` see the first event of a series only if the series was scraped before it, and an alert
/// on a counter born at 1 would never fire.
const COUNTERS_FROM_ZERO: &[(&str, &str, &[&str])] = &[
    ("streamspace_session_starts_total", "outcome", &["running", "failed"]),
    ("streamspace_auth_failures_total", "reason", &["invalid_credentials", "invalid_mfa_code"]),
    ("streamspace_login_refused_total", "reason", &["busy", "locked_out", "in_progress"]),
    ("streamspace_audit_chain_verifications_total", "result", &["intact", "broken", "error"]),
    ("streamspace_agent_commands_total", "kind", &["start", "hibernate", "wake", "stop", "remove", "removehome"]),
    ("streamspace_http_connections_refused_total", "listener", &["api", "sessions"]),
    ("streamspace_proxy_bytes_total", "direction", &["in", "out"]),
    ("streamspace_proxy_upstream_errors_total", "", &[]),
    ("streamspace_agent_endpoints_refused_total", "", &[]),
    ("streamspace_agent_command_retries_total", "", &[]),
    ("streamspace_connections_cut_total", "", &[]),
    ("streamspace_login_password_verifications_total", "", &[]),
    ("streamspace_compliance_reports_delivered_total", "", &[]),
    ("streamspace_compliance_report_delivery_failures_total", "", &[]),
    ("streamspace_audit_events_pruned_total", "", &[]),
    ("streamspace_audit_retention_failures_total", "", &[]),
];

/// Registers [`COUNTERS_FROM_ZERO`].
pub fn register_counters() {
    for (name, label, values) in COUNTERS_FROM_ZERO {
        if values.is_empty() {
            metrics::counter!(*name).increment(0);
        }
        for value in *values {
            metrics::counter!(*name, *label => *value).increment(0);
        }
    }
}

/// Verifies the whole audit chain every `every`, from the start: the result goes to
/// `streamspace_audit_chain_intact` (1 or 0) and `streamspace_audit_chain_verifications_total`,
/// which the alert rules watch; a broken chain is also logged with its fault.
pub async fn watch_audit_chain(app: crate::app::AppState, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = streamspace_store::audit::verify_store(app.store.as_ref(), &app.audit_key, None).await;
        let outcome = match result {
            Ok(Ok(_)) => "intact",
            Ok(Err(fault)) => {
                tracing::error!(%fault, "the audit chain is broken");
                "broken"
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot verify the audit chain");
                "error"
            }
        };
        metrics::counter!("streamspace_audit_chain_verifications_total", "result" => outcome).increment(1);
        if outcome != "error" {
            metrics::gauge!("streamspace_audit_chain_intact").set(if outcome == "intact" { 1.0 } else { 0.0 });
        }
    }
}

/// When each TLS listener's certificate expires, for `streamspace_tls_certificate_expiry_seconds`:
/// the TLS code records a certificate when it loads one, the background round turns the dates
/// into seconds left.
static CERTIFICATES: RwLock<Vec<(&'static str, std::time::SystemTime)>> = RwLock::new(Vec::new());

/// Records the expiry (`notAfter`) of the certificate `listener` now serves.
pub fn record_certificate(listener: &'static str, not_after: std::time::SystemTime) {
    let mut certificates = CERTIFICATES.write().unwrap_or_else(|p| p.into_inner());
    certificates.retain(|(known, _)| *known != listener);
    certificates.push((listener, not_after));
}

/// Sets the seconds left before each recorded certificate expires (negative once expired).
pub fn update_certificate_expiry(now: std::time::SystemTime) {
    for (listener, not_after) in CERTIFICATES.read().unwrap_or_else(|p| p.into_inner()).iter() {
        let left = match not_after.duration_since(now) {
            Ok(left) => left.as_secs_f64(),
            Err(past) => -past.duration().as_secs_f64(),
        };
        metrics::gauge!("streamspace_tls_certificate_expiry_seconds", "listener" => *listener).set(left);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); with `traces`, the same spans are
/// exported over OTLP.
pub fn init_logging(format: LogFormat, traces: Option<&streamspace_trace::Exporter>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Pretty => logs.boxed(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).boxed(),
    };
    let exported = traces.map(streamspace_trace::Exporter::layer);
    let result = tracing_subscriber::registry().with(logs).with(exported).with(filter).try_init();
    // Already initialised (several servers in one test process): keep the first.
    drop(result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_traceparents_keep_their_trace_id() {
        let id = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    }

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for chosen in ["FOO1", "FOO2", "get", "PROPFIND"] {
            assert_eq!(method_label(&Method::from_bytes(chosen.as_bytes()).unwrap()), "other", "{chosen}");
        }
        let requests = SessionRequests::default();
        for chosen in ["FOO1", "FOO2", "FOO3"] {
            requests.record(&Method::from_bytes(chosen.as_bytes()).unwrap(), StatusCode::NOT_FOUND, Instant::now());
        }
        assert_eq!(requests.handles.read().unwrap().len(), 1, "one series for all of them");
    }

    #[test]
    fn certificate_expiry_counts_the_seconds_left_and_goes_negative_once_expired() {
        let handle = metrics_handle();
        let loaded = std::time::SystemTime::now();
        record_certificate("api", loaded + std::time::Duration::from_secs(86_400));
        update_certificate_expiry(loaded + std::time::Duration::from_secs(400));
        let rendered = handle.render();
        assert!(rendered.contains("streamspace_tls_certificate_expiry_seconds{listener=\"api\"} 86000"), "{rendered}");
        update_certificate_expiry(loaded + std::time::Duration::from_secs(86_410));
        let rendered = handle.render();
        assert!(rendered.contains("streamspace_tls_certificate_expiry_seconds{listener=\"api\"} -10"), "{rendered}");
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }
}
