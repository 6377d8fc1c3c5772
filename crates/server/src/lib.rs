//! The StreamSpace control plane.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod bus;
pub mod clock;
pub mod compliance;
pub mod config;
pub mod connections;
pub mod context;
pub mod error;
pub mod homes;
pub mod hub;
pub mod icons;
pub mod keys;
pub mod lifecycle;
pub mod orchestrator;
pub mod outbound;
pub mod pools;
pub mod proxy;
pub mod rate_limit;
pub mod recent;
pub mod replicas;
pub mod scheduler;
pub mod serve;
pub mod session_policy;
pub mod telemetry;
pub mod template_defaults;
pub mod timestamps;
pub mod tls;
pub mod ui;
pub mod views;

use std::future::Future;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::header::STRICT_TRANSPORT_SECURITY;
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
        .layer(axum::middleware::from_fn_with_state(app.clone(), rate_limit::limit_api_by_address))
        .layer(axum::middleware::from_fn(telemetry::observe))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("cache-control"),
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(STRICT_TRANSPORT_SECURITY, {
            let hsts = app.urls.hsts();
            move |_: &axum::response::Response| hsts.clone()
        }))
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
    let keys = keys::Keys::load(&config)?;
    keys.check_shared(store.as_ref(), chrono::Utc::now()).await?;
    let cluster = streamspace_store::cluster::join(&database_url).await?;
    let app = Arc::new(App::new(config, keys, store, cluster, Arc::new(clock::SystemClock))?);
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
    let tls = match &app.config.tls {
        Some(settings) => Some(Arc::new(tls::Tls::new(settings, &app.urls, &app.config.data_dir)?)),
        None => None,
    };
    let reload = tls.clone().map(|tls| tokio::spawn(tls.watch()));
    let api =
        serve::serve(listeners.api, serve::with_connect_info(router(app.clone())), limits, "api", tls.clone(), wait());
    let sessions =
        serve::serve(listeners.sessions, proxy::per_connection(app.clone()), limits, "sessions", tls, wait());
    let follow = tokio::spawn(connections::access::follow_session_changes(app.clone()));
    let replicas = tokio::spawn(replicas::follow(app.clone()));
    let verify_audit =
        app.config.audit_verify_interval.map(|every| tokio::spawn(telemetry::watch_audit_chain(app.clone(), every)));
    telemetry::register_counters();
    let compliance = tokio::spawn(compliance::run(app.clone()));
    let background = tokio::spawn(background(app, wait()));
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    tokio::join!(api, sessions);
    if let Some(reload) = reload {
        reload.abort();
    }
    background.abort();
    compliance.abort();
    follow.abort();
    replicas.abort();
    if let Some(verify_audit) = verify_audit {
        verify_audit.abort();
    }
    tracing::info!("control plane stopped");
    Ok(())
}

/// The background rounds, once a second until shutdown.
async fn background(app: AppState, shutdown: impl Future<Output = ()>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut shutdown => return,
        }
        background_round(&app).await;
    }
}

/// One round of background work: the metrics' histograms, the proxy's traffic to the store, then the
/// session timers, the revocation sweep, home deletions, warm-pool refills and the session and agent gauges.
pub async fn background_round(app: &App) {
    let now = app.clock.now();
    telemetry::drain_histograms();
    app.api_limits.forget_idle();
    app.session_limits.forget_idle();
    for (session_id, at_ms) in app.session_cache.take_activity() {
        if let Some(at) = chrono::DateTime::from_timestamp_millis(at_ms)
            && let Err(err) = app.store.touch_session(session_id, at).await
        {
            tracing::warn!(%session_id, error = %err, "cannot record session activity");
        }
    }
    // Taken before the sessions are read: connections opened later are not judged by them.
    let watermark = app.connections.watermark();
    // Timers, home deletions and pool refills act once across replicas: a second replica
    // doing them too would start a pool's members twice.
    let on_duty = app.holds(replicas::Duty::SessionTimers).await;
    match app.store.list_active_sessions().await {
        Ok(active) => {
            if on_duty {
                app.run_timers(&active, now).await;
            }
            connections::access::sweep(app, watermark, &active).await;
            for (state, count) in orchestrator::count_by_state(&active) {
                if !state.is_terminal() {
                    metrics::gauge!("streamspace_sessions", "state" => state.as_str()).set(count as f64);
                }
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot read the active sessions"),
    }
    if on_duty {
        homes::remove_due(app).await;
        if let Err(err) = app.refill_pools().await {
            tracing::warn!(error = err.message, "cannot refill the warm pools");
        }
    }
    telemetry::update_certificate_expiry(std::time::SystemTime::now());
    match app.store.list_agents().await {
        Ok(agents) => {
            let online = agents.iter().filter(|agent| app.agent_online(agent)).count();
            metrics::gauge!("streamspace_agents", "state" => "online").set(online as f64);
            metrics::gauge!("streamspace_agents", "state" => "offline").set((agents.len() - online) as f64);
        }
        Err(err) => tracing::warn!(error = %err, "cannot read the agents"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("the source directory is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path);
            }
        }
    }

    /// Whether `source` names the HTTP layer's module: `crate::api` or `crate::{..., api, ...}`.
    fn names_api(source: &str) -> bool {
        let compact: String = source.chars().filter(|c| !c.is_whitespace()).collect();
        compact.contains("crate::api")
            || compact.match_indices("crate::{").any(|(at, _)| {
                let group = &compact[at + "crate::{".len()..];
                let group = &group[..group.find('}').unwrap_or(group.len())];
                group.split(',').any(|item| item == "api" || item.starts_with("api::"))
            })
    }

    #[test]
    fn names_api_finds_both_forms() {
        assert!(names_api("use crate::api::sessions::SessionView;"));
        assert!(names_api("use crate::{\n    app::App,\n    api::agents,\n};"));
        assert!(!names_api("use crate::{app::App, apikeys};\nlet api = 1;"));
    }

    /// The core does not depend on the HTTP layer: only `api/` and this file (which mounts it)
    /// name `crate::api`.
    #[test]
    fn only_the_http_layer_and_the_crate_root_name_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let offenders: Vec<_> = files
            .iter()
            .filter(|path| !path.starts_with(src.join("api")) && **path != src.join("lib.rs"))
            .filter(|path| names_api(&std::fs::read_to_string(path).expect("a readable source file")))
            .map(|path| path.strip_prefix(&src).unwrap_or(path).display().to_string())
            .collect();
        assert!(files.len() > 20, "the walk found the sources: {files:?}");
        assert!(offenders.is_empty(), "these files name crate::api: {offenders:?}");
    }
}
