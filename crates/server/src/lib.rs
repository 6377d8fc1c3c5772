//! The StreamSpace control plane.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod connections;
pub mod context;
pub mod error;
pub mod events;
pub mod hub;
pub mod keys;
pub mod lifecycle;
pub mod orchestrator;
pub mod proxy;
pub mod scheduler;
pub mod serve;
pub mod telemetry;
pub mod ui;

use std::future::Future;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;

pub use app::{App, AppState};
pub use config::Config;
use error::ApiError;

/// The HTTP application: every route, the fallbacks and the cross-cutting layers.
pub fn router(app: AppState) -> Router {
    let (routes, _) = api::routes().split_for_parts();
    routes
        .fallback(ui::serve)
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        })
        .layer(axum::middleware::from_fn(telemetry::observe))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("cache-control"),
            HeaderValue::from_static("no-store"),
        ))
        .with_state(app)
}

/// The OpenAPI document, generated from the handlers once.
pub fn openapi_json() -> &'static str {
    static SPEC: OnceLock<String> = OnceLock::new();
    SPEC.get_or_init(|| {
        let mut document = api::routes().into_openapi();
        utoipa::Modify::modify(&api::CommonResponses, &mut document);
        document.to_pretty_json().expect("the OpenAPI document serialises")
    })
}

/// Opens the store and bootstraps a fresh installation. `on_bootstrap` receives the outcome
/// (with the generated admin password on the first start, if one was generated).
pub async fn open(config: Config, on_bootstrap: impl FnOnce(&bootstrap::Outcome)) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create the data directory {}: {e}", config.data_dir.display()))?;
    let database_url = config.database_url();
    tracing::info!(database = %streamspace_store::redact_url(&database_url), "opening the store");
    let store = streamspace_store::connect(&database_url).await?;
    let app = Arc::new(App::new(config, store, Arc::new(clock::SystemClock))?);
    // Refusing to start beats writing events no one can verify, or sealing a tampered chain.
    app.store.seal_audit_head(&app.audit_key, false).await.map_err(|e| anyhow::anyhow!("audit chain: {e}"))?;
    on_bootstrap(&bootstrap::run(&app).await?);
    Ok(app)
}

/// The two listeners: the API and UI origin, and the session origin.
pub struct Listeners {
    pub api: TcpListener,
    pub sessions: TcpListener,
}

/// Serves both origins and runs the background work until `shutdown` resolves.
pub async fn run(
    app: AppState,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let bound = vec![listeners.api.local_addr()?, listeners.sessions.local_addr()?];
    tracing::info!(api = %bound[0], sessions = %bound[1], "control plane listening");
    let _ = app.bound.set(bound);
    let limits = app.config.http_limits;
    let api = serve::serve(listeners.api, router(app.clone()), limits, "api", wait());
    let sessions = serve::serve(listeners.sessions, proxy::router(app.clone()), limits, "sessions", wait());
    let follow = tokio::spawn(connections::access::follow_session_changes(app.clone()));
    let background = tokio::spawn(background(app, wait()));
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    tokio::join!(api, sessions);
    background.abort();
    follow.abort();
    tracing::info!("control plane stopped");
    Ok(())
}

/// Timers, command re-sends, the proxy's activity and the revocation sweep, once a second.
async fn background(app: AppState, shutdown: impl Future<Output = ()>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut shutdown => return,
        }
        let now = app.clock.now();
        for (session_id, at_ms) in app.routes.take_activity() {
            if let Some(at) = chrono::DateTime::from_timestamp_millis(at_ms)
                && let Err(err) = app.store.touch_session(session_id, at).await
            {
                tracing::warn!(%session_id, error = %err, "cannot record session activity");
            }
        }
        // Taken before the sessions are read: connections opened later are not judged by them.
        let watermark = app.connections.watermark();
        match app.store.list_active_sessions().await {
            Ok(active) => {
                app.run_timers(&active, now).await;
                connections::access::sweep(&app, watermark, &active).await;
                for (state, count) in orchestrator::count_by_state(&active) {
                    if !state.is_terminal() {
                        metrics::gauge!("sessions", "state" => state.as_str()).set(count as f64);
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot read the active sessions"),
        }
    }
}
