//! Compliance: reports per org and period from the audit log, their scheduled delivery, and audit
//! retention behind signed checkpoints (ADR 0029).

pub mod delivery;
pub mod report;
pub mod schedule;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamspace_store::audit::{RecordedHead, verify_store};
use streamspace_store::{
    AuditEvent, AuditFilter, AuditPage, ComplianceSettings, DeliveryState, Org, Page, Scope, StoreError, User,
};
use utoipa::ToSchema;
use uuid::Uuid;

use self::delivery::{Delivery, DirectorySink, ReportSink, WebhookSink};
use self::report::{ChainStatus, ComplianceReport, ReportInput};
use self::schedule::{Period, Schedule, retry_after};
use crate::app::App;
use crate::audit::{Actor, Outcome, Record};
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult};

/// The platform's settings for reports.
#[derive(Debug, Clone, Default)]
pub struct ReportConfig {
    /// Where `directory` deliveries go (a folder per org); `None` offers webhooks only.
    pub directory: Option<std::path::PathBuf>,
    /// Whether webhooks may lead to loopback, private or link-local addresses.
    pub webhooks_allow_private: bool,
}

/// The longest period one report covers.
const MAX_PERIOD_DAYS: i64 = 366;
/// The longest retention that can be set (a century); longer is "forever", which is `null`.
const MAX_RETENTION_DAYS: i64 = 36_500;
/// Webhook secrets are at least this long: they sign what the receiver trusts.
const MIN_WEBHOOK_SECRET: usize = 16;

/// Builds the org's report for `[from, to)`.
pub async fn compliance_report(
    app: &App,
    org: &Org,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<ComplianceReport> {
    if to <= from || to - from > Duration::days(MAX_PERIOD_DAYS) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_period",
            format!("`from` must come before `to`, at most {MAX_PERIOD_DAYS} days earlier"),
        ));
    }
    let events = org_events(app, org.id, from, to).await?;
    let users = org_users(app, org.id).await?;
    let chain = chain_status(app).await?;
    let generated_at = app.clock.now();
    Ok(report::build(ReportInput { org, from, to, generated_at, events: &events, users: &users, chain }))
}

/// The org's events in `[from, to)`.
async fn org_events(
    app: &App,
    org_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<AuditEvent>, StoreError> {
    let filter = AuditFilter { since: Some(from), until: Some(to), ..AuditFilter::default() };
    let mut events = Vec::new();
    let mut before_seq = None;
    loop {
        let page = AuditPage { limit: Page::MAX_LIMIT, before_seq };
        let batch = app.store.list_audit(Scope::Org(org_id), filter.clone(), page).await?;
        before_seq = batch.last().map(|event| event.seq);
        let last_page = batch.len() < Page::MAX_LIMIT as usize;
        events.extend(batch.into_iter().filter(|event| event.time < to));
        if last_page {
            return Ok(events);
        }
    }
}

async fn org_users(app: &App, org_id: Uuid) -> Result<Vec<User>, StoreError> {
    let mut users = Vec::new();
    let mut page = Page::first(Page::MAX_LIMIT);
    loop {
        let batch = app.store.list_users(Scope::Org(org_id), page).await?;
        users.extend(batch.items);
        match batch.next {
            Some(after) => page = Page { limit: Page::MAX_LIMIT, after: Some(after) },
            None => return Ok(users),
        }
    }
}

async fn chain_status(app: &App) -> Result<ChainStatus, StoreError> {
    let status = match verify_store(app.store.as_ref(), &app.audit_key, None).await? {
        Ok(verified) => ChainStatus {
            intact: true,
            events_verified: verified.events,
            head: RecordedHead::from(&verified.head).to_string(),
            fault: None,
            events_in_period: 0,
        },
        Err(fault) => {
            let head = app.store.audit_head().await?;
            ChainStatus {
                intact: false,
                events_verified: 0,
                head: RecordedHead::from(&head).to_string(),
                fault: Some(fault.to_string()),
                events_in_period: 0,
            }
        }
    };
    Ok(status)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    /// The platform's report directory.
    Directory,
    Webhook,
}

impl Destination {
    fn as_str(self) -> &'static str {
        match self {
            Destination::Directory => "directory",
            Destination::Webhook => "webhook",
        }
    }

    fn parse(text: &str) -> Option<Destination> {
        [Destination::Directory, Destination::Webhook].into_iter().find(|d| d.as_str() == text)
    }
}

/// An org's retention and report delivery, as administrators see them (never the secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComplianceSettingsView {
    /// Days audit events are kept; `null` keeps them forever.
    pub retention_days: Option<i64>,
    pub schedule: Option<Schedule>,
    pub destination: Option<Destination>,
    pub webhook_url: Option<String>,
    pub has_webhook_secret: bool,
    /// Whether the platform has a report directory to deliver to.
    pub directory_available: bool,
    /// The end of the last period delivered.
    pub delivered_until: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why the last delivery failed.
    pub last_error: Option<String>,
}

/// The whole settings; `webhook_secret` left out keeps the current one. Changing
/// `retention_days` needs a platform administrator: it decides when evidence is removed.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ComplianceSettingsUpdate {
    pub retention_days: Option<i64>,
    pub schedule: Option<Schedule>,
    pub destination: Option<Destination>,
    pub webhook_url: Option<String>,
    /// Write-only; at least 16 characters.
    pub webhook_secret: Option<String>,
}

pub async fn settings_view(app: &App, org_id: Uuid) -> ApiResult<ComplianceSettingsView> {
    let stored = stored_settings(app, org_id).await?;
    Ok(ComplianceSettingsView {
        retention_days: stored.retention_days,
        schedule: stored.report_schedule.as_deref().and_then(Schedule::parse),
        destination: stored.report_destination.as_deref().and_then(Destination::parse),
        webhook_url: stored.webhook_url,
        has_webhook_secret: stored.webhook_secret.is_some(),
        directory_available: app.config.reports.directory.is_some(),
        delivered_until: stored.delivery.delivered_until,
        next_attempt_at: stored.delivery.next_attempt_at,
        last_error: stored.delivery.last_error,
    })
}

async fn stored_settings(app: &App, org_id: Uuid) -> ApiResult<ComplianceSettings> {
    Ok(app.store.compliance_settings(org_id).await?.unwrap_or(ComplianceSettings { org_id, ..Default::default() }))
}

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(axum::http::StatusCode::BAD_REQUEST, code, message)
}

/// Validates and saves `update` for the org (already known to be the caller's to administer).
pub async fn update_settings(
    app: &App,
    meta: &RequestMeta,
    actor: &Actor,
    may_set_retention: bool,
    org_id: Uuid,
    update: ComplianceSettingsUpdate,
) -> ApiResult<ComplianceSettingsView> {
    let current = stored_settings(app, org_id).await?;
    if update.retention_days != current.retention_days && !may_set_retention {
        return Err(ApiError::forbidden("only a platform administrator changes how long audit events are kept"));
    }
    if update.retention_days.is_some_and(|days| !(1..=MAX_RETENTION_DAYS).contains(&days)) {
        return Err(invalid(
            "invalid_retention",
            format!("keep events 1 to {MAX_RETENTION_DAYS} days, or forever (null)"),
        ));
    }
    let secret_changed = update.webhook_secret.is_some();
    let webhook_secret = match update.webhook_secret.as_deref() {
        Some(secret) if secret.len() < MIN_WEBHOOK_SECRET => {
            return Err(invalid(
                "invalid_webhook",
                format!("the webhook secret needs at least {MIN_WEBHOOK_SECRET} characters"),
            ));
        }
        Some(secret) => Some(app.sealer.seal(secret.as_bytes())),
        None => current.webhook_secret,
    };
    check_delivery(app, &update, webhook_secret.is_some())?;
    let settings = ComplianceSettings {
        org_id,
        retention_days: update.retention_days,
        report_schedule: update.schedule.map(|s| s.as_str().to_owned()),
        report_destination: update.destination.map(|d| d.as_str().to_owned()),
        webhook_url: update.webhook_url.clone(),
        webhook_secret,
        delivery: current.delivery,
    };
    app.store.put_compliance_settings(&settings).await?;
    let details = json!({
        "retention_days": update.retention_days,
        "schedule": update.schedule,
        "destination": update.destination,
        "webhook_url": update.webhook_url,
        "webhook_secret_changed": secret_changed,
    });
    let record = Record::new("compliance.update", format!("org:{org_id}")).org(org_id).details(details);
    app.audit(meta, actor, record).await?;
    settings_view(app, org_id).await
}

fn check_delivery(app: &App, update: &ComplianceSettingsUpdate, has_secret: bool) -> ApiResult<()> {
    match (update.schedule, update.destination) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(invalid("invalid_destination", "a schedule needs a destination: directory or webhook")),
        (Some(_), Some(Destination::Directory)) if app.config.reports.directory.is_none() => Err(invalid(
            "reports_directory_not_configured",
            "the platform has no report directory (STREAMSPACE_REPORTS_DIR); deliver to a webhook instead",
        )),
        (Some(_), Some(Destination::Directory)) => Ok(()),
        (Some(_), Some(Destination::Webhook)) => {
            let url =
                update.webhook_url.as_deref().ok_or_else(|| invalid("invalid_webhook", "a webhook needs a URL"))?;
            check_webhook_url(url, app.config.reports.webhooks_allow_private)?;
            if !has_secret {
                return Err(invalid("invalid_webhook", "a webhook needs a secret to sign its deliveries"));
            }
            Ok(())
        }
    }
}

/// An `http(s)` URL with a host, and no internal address written into it (names are checked
/// again, resolved, at each delivery).
fn check_webhook_url(url: &str, allow_private: bool) -> ApiResult<reqwest::Url> {
    let parsed = reqwest::Url::parse(url).map_err(|_| invalid("invalid_webhook", "the webhook URL is not a URL"))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return Err(invalid("invalid_webhook", "the webhook URL must be https:// (or http://) with a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "invalid_webhook",
            "put no credentials in the webhook URL: the secret signs each delivery",
        ));
    }
    let host = parsed.host_str().unwrap_or_default();
    let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().ok();
    if !allow_private && literal.is_some_and(delivery::is_internal) {
        return Err(invalid("webhook_refused", "the webhook URL names an internal address"));
    }
    Ok(parsed)
}

/// Background work: each org's retention sweep and due report, once.
pub async fn round(app: &App) {
    let all = match app.store.list_compliance_settings().await {
        Ok(all) => all,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the compliance settings");
            return;
        }
    };
    for settings in all {
        if let Some(days) = settings.retention_days {
            sweep(app, settings.org_id, days).await;
        }
        if let Err(err) = deliver_due(app, &settings).await {
            tracing::warn!(org_id = %settings.org_id, error = err.message, "cannot deliver the compliance report");
        }
    }
}

/// Removes the org's events older than `days`, batch by batch, and audits how many went.
async fn sweep(app: &App, org_id: Uuid, days: i64) {
    let now = app.clock.now();
    let before = now - Duration::days(days);
    let mut removed = 0;
    loop {
        match app.store.prune_audit(&app.audit_key, org_id, before, now).await {
            Ok(0) => break,
            Ok(count) => removed += count,
            Err(err) => {
                metrics::counter!("streamspace_audit_retention_failures_total").increment(1);
                tracing::error!(%org_id, error = %err, "audit retention refused: the chain does not hold");
                break;
            }
        }
    }
    if removed > 0 {
        metrics::counter!("streamspace_audit_events_pruned_total").increment(removed);
        let details = json!({"removed": removed, "before": before, "retention_days": days});
        let record = Record::new("compliance.retention", format!("org:{org_id}")).org(org_id).details(details);
        if let Err(err) = app.audit(&RequestMeta::internal(), &Actor::system(), record).await {
            tracing::warn!(%org_id, error = err.message, "cannot audit a retention sweep");
        }
    }
}

async fn deliver_due(app: &App, settings: &ComplianceSettings) -> ApiResult<()> {
    let now = app.clock.now();
    let Some(schedule) = settings.report_schedule.as_deref().and_then(Schedule::parse) else {
        return Ok(());
    };
    if settings.delivery.next_attempt_at.is_some_and(|at| now < at) {
        return Ok(());
    }
    let Some(period) = schedule.due(settings.delivery.delivered_until, now) else {
        return Ok(());
    };
    let Some(org) = app.store.get_org(Scope::Platform, settings.org_id).await? else {
        return Ok(());
    };
    let report = compliance_report(app, &org, period.from, period.to).await?;
    let delivery = Delivery {
        org_id: org.id,
        org_name: org.name.clone(),
        period: format!("{}_{}", period.from.format("%Y-%m-%d"), period.to.format("%Y-%m-%d")),
        json: serde_json::to_vec_pretty(&report).map_err(ApiError::internal)?,
        csv: report::to_csv(&report).map_err(ApiError::internal)?,
    };
    let outcome = match sink(app, settings) {
        Ok(sink) => sink.deliver(&delivery).await,
        Err(reason) => Err(reason),
    };
    record_outcome(app, settings, period, &delivery.period, outcome).await
}

/// Where the org's reports go, as configured now.
fn sink(app: &App, settings: &ComplianceSettings) -> Result<Box<dyn ReportSink>, String> {
    match settings.report_destination.as_deref().and_then(Destination::parse) {
        Some(Destination::Directory) => match &app.config.reports.directory {
            Some(base) => Ok(Box::new(DirectorySink { base: base.clone() })),
            None => Err("the platform no longer has a report directory".to_owned()),
        },
        Some(Destination::Webhook) => {
            let url = settings.webhook_url.as_deref().ok_or("the webhook has no URL")?;
            let url = check_webhook_url(url, app.config.reports.webhooks_allow_private)
                .map_err(|_| "the webhook URL is refused".to_owned())?;
            let secret = settings
                .webhook_secret
                .as_deref()
                .and_then(|sealed| app.sealer.open(sealed))
                .ok_or("the webhook secret cannot be unsealed: set it again")?;
            let timestamp = app.clock.now().timestamp();
            let allow_private = app.config.reports.webhooks_allow_private;
            Ok(Box::new(WebhookSink { url, secret, timestamp, allow_private, http: app.outbound.clone() }))
        }
        None => Err("no destination is set".to_owned()),
    }
}

async fn record_outcome(
    app: &App,
    settings: &ComplianceSettings,
    period: Period,
    label: &str,
    outcome: Result<(), String>,
) -> ApiResult<()> {
    let now = app.clock.now();
    let destination = settings.report_destination.clone();
    let (state, record) = match outcome {
        Ok(()) => {
            metrics::counter!("streamspace_compliance_reports_delivered_total").increment(1);
            let state = DeliveryState { delivered_until: Some(period.to), ..DeliveryState::default() };
            let record = Record::new("compliance.report_delivery", format!("org:{}", settings.org_id))
                .details(json!({"period": label, "destination": destination}));
            (state, record)
        }
        Err(reason) => {
            metrics::counter!("streamspace_compliance_report_delivery_failures_total").increment(1);
            let attempts = settings.delivery.attempts + 1;
            let state = DeliveryState {
                delivered_until: settings.delivery.delivered_until,
                attempts,
                next_attempt_at: Some(now + retry_after(attempts)),
                last_error: Some(reason.clone()),
            };
            let record = Record::new("compliance.report_delivery", format!("org:{}", settings.org_id))
                .outcome(Outcome::Failure)
                .details(json!({"period": label, "destination": destination, "attempt": attempts, "reason": reason}));
            (state, record)
        }
    };
    app.store.record_delivery(settings.org_id, &state).await?;
    app.audit(&RequestMeta::internal(), &Actor::system(), record.org(settings.org_id)).await
}

/// Runs [`round`] every minute until the task is aborted.
pub async fn run(app: crate::AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if app.holds(crate::replicas::Duty::Compliance).await {
            round(&app).await;
        }
    }
}
