//! The compliance report of one org and period, computed from the org's audit events, its users
//! and the chain's verification, without any I/O (ADR 0029).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use streamspace_store::{AuditEvent, Org, Role, User};
use utoipa::ToSchema;
use uuid::Uuid;

/// Sign-in actions: the password path and single sign-on record the same shape.
const SIGN_IN_ACTIONS: [&str; 2] = ["auth.login", "sso.sign_in"];

/// Actions that change who may do what, or how the org is governed. A prefix ending in `.`
/// names a family of actions.
const PRIVILEGED: [&str; 12] = [
    "user.",
    "org.",
    "template.",
    "agent.",
    "api_key.create",
    "auth.mfa_disable",
    "identity_provider.",
    "allow_list.",
    "compliance.update",
    "compliance.retention",
    "system.",
    "sso.link",
];

/// Of the privileged actions, those that change the org's policies.
const POLICY: [&str; 4] = ["org.update", "compliance.update", "identity_provider.", "allow_list."];

fn matches_any(action: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|pattern| if pattern.ends_with('.') { action.starts_with(pattern) } else { action == *pattern })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ComplianceReport {
    pub org_id: Uuid,
    pub org_name: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    pub sign_ins: SignIns,
    pub mfa: MfaCoverage,
    pub privileged_actions: Vec<ActionEntry>,
    pub policy_changes: Vec<ActionEntry>,
    pub session_access: Vec<SessionVisit>,
    pub chain: ChainStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct SignIns {
    pub successes: u64,
    pub failures: u64,
    /// Failures counted by their recorded reason (`bad_credentials`, `mfa_required`, ...).
    pub failures_by_reason: BTreeMap<String, u64>,
    /// Accounts or addresses locked out after repeated failures.
    pub lockouts: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MfaCoverage {
    /// Whether the org requires a second factor of everyone.
    pub required: bool,
    pub users: u64,
    pub enrolled: u64,
    /// Users without a second factor (disabled accounts left out), administrators first.
    pub not_enrolled: Vec<UnenrolledUser>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UnenrolledUser {
    pub username: String,
    pub role: Role,
}

/// One audited action, as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ActionEntry {
    pub seq: i64,
    pub time: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub result: String,
}

/// A person's time in one session: their overlapping tunnels merged into one visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SessionVisit {
    pub session_id: String,
    pub user: String,
    pub opened_at: DateTime<Utc>,
    /// `None` while a tunnel was still open at the end of the period.
    pub closed_at: Option<DateTime<Utc>>,
    pub duration_secs: Option<i64>,
    pub client_ip: Option<String>,
}

/// What verifying the whole audit chain said when the report was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChainStatus {
    pub intact: bool,
    /// Events verified, from the first to the head (those removed by retention included).
    pub events_verified: i64,
    /// `SEQ:HASH`, to be recorded elsewhere against a later rollback.
    pub head: String,
    /// The first fault, when the chain does not verify.
    pub fault: Option<String>,
    /// The org's events in the period.
    pub events_in_period: u64,
}

/// What a report is made of: the org's events within the period (any order), its users now, and
/// the chain's verification.
pub struct ReportInput<'a> {
    pub org: &'a Org,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    pub events: &'a [AuditEvent],
    pub users: &'a [User],
    pub chain: ChainStatus,
}

pub fn build(input: ReportInput<'_>) -> ComplianceReport {
    let mut events: Vec<&AuditEvent> = input.events.iter().collect();
    events.sort_by_key(|event| event.seq);
    let listed = |patterns: &[&str]| -> Vec<ActionEntry> {
        events.iter().filter(|e| matches_any(&e.action, patterns)).map(|e| entry(e)).collect()
    };
    ComplianceReport {
        org_id: input.org.id,
        org_name: input.org.name.clone(),
        from: input.from,
        to: input.to,
        generated_at: input.generated_at,
        sign_ins: sign_ins(&events),
        mfa: mfa_coverage(input.org, input.users),
        privileged_actions: listed(&PRIVILEGED),
        policy_changes: listed(&POLICY),
        session_access: session_visits(&events),
        chain: ChainStatus { events_in_period: events.len() as u64, ..input.chain },
    }
}

fn entry(event: &AuditEvent) -> ActionEntry {
    ActionEntry {
        seq: event.seq,
        time: event.time,
        actor: event.actor_name.clone(),
        action: event.action.clone(),
        target: event.target.clone(),
        result: event.result.clone(),
    }
}

fn sign_ins(events: &[&AuditEvent]) -> SignIns {
    let mut counts = SignIns::default();
    for event in events {
        if event.action == "auth.lockout" {
            counts.lockouts += 1;
        } else if SIGN_IN_ACTIONS.contains(&event.action.as_str()) {
            if event.result == "success" {
                counts.successes += 1;
            } else {
                counts.failures += 1;
                let reason = event.details["reason"].as_str().unwrap_or("unspecified").to_owned();
                *counts.failures_by_reason.entry(reason).or_default() += 1;
            }
        }
    }
    counts
}

fn mfa_coverage(org: &Org, users: &[User]) -> MfaCoverage {
    let active: Vec<&User> = users.iter().filter(|user| !user.disabled).collect();
    let mut not_enrolled: Vec<UnenrolledUser> = active
        .iter()
        .filter(|user| !user.mfa_enabled)
        .map(|user| UnenrolledUser { username: user.username.clone(), role: user.role })
        .collect();
    // Administrators first: an unprotected administrator account is the larger risk.
    not_enrolled.sort_by_key(|user| (user.role == Role::Member, user.username.clone()));
    MfaCoverage {
        required: org.mfa_required,
        users: active.len() as u64,
        enrolled: active.iter().filter(|user| user.mfa_enabled).count() as u64,
        not_enrolled,
    }
}

/// One tunnel as its audit events tell it.
struct Tunnel {
    session_id: String,
    user: String,
    opened_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
    client_ip: Option<String>,
}

/// Tunnels from their open and close events: a close carries when its tunnel opened (so one
/// opened before the period still counts from its start), an open without a close in the period
/// stays open.
fn tunnels(events: &[&AuditEvent]) -> Vec<Tunnel> {
    let mut open: BTreeMap<String, Tunnel> = BTreeMap::new();
    let mut closed = Vec::new();
    for event in events {
        let tunnel_id = event.details["tunnel"].as_str().unwrap_or_default().to_owned();
        let tunnel = Tunnel {
            session_id: event.target.trim_start_matches("session:").to_owned(),
            user: event.actor_name.clone(),
            opened_at: event.time,
            closed_at: None,
            client_ip: event.client_ip.clone(),
        };
        match event.action.as_str() {
            "session.tunnel_open" => {
                open.insert(tunnel_id, tunnel);
            }
            "session.tunnel_close" => {
                let opened_at = open
                    .remove(&tunnel_id)
                    .map(|opened| opened.opened_at)
                    .or_else(|| event.details["opened_at"].as_str().and_then(|at| at.parse::<DateTime<Utc>>().ok()));
                closed.push(Tunnel {
                    opened_at: opened_at.unwrap_or(event.time),
                    closed_at: Some(event.time),
                    ..tunnel
                });
            }
            _ => {}
        }
    }
    closed.extend(open.into_values());
    closed
}

/// Merges each person's overlapping tunnels into one session into visits, oldest first.
fn session_visits(events: &[&AuditEvent]) -> Vec<SessionVisit> {
    let mut tunnels = tunnels(events);
    tunnels.sort_by(|a, b| (&a.session_id, &a.user, a.opened_at).cmp(&(&b.session_id, &b.user, b.opened_at)));
    let mut visits: Vec<SessionVisit> = Vec::new();
    for tunnel in tunnels {
        if let Some(last) = visits.last_mut()
            && last.session_id == tunnel.session_id
            && last.user == tunnel.user
            && last.closed_at.is_none_or(|closed| tunnel.opened_at <= closed)
        {
            last.closed_at = match (last.closed_at, tunnel.closed_at) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
            last.duration_secs = last.closed_at.map(|closed| (closed - last.opened_at).num_seconds());
            continue;
        }
        visits.push(SessionVisit {
            duration_secs: tunnel.closed_at.map(|closed| (closed - tunnel.opened_at).num_seconds()),
            session_id: tunnel.session_id,
            user: tunnel.user,
            opened_at: tunnel.opened_at,
            closed_at: tunnel.closed_at,
            client_ip: tunnel.client_ip,
        });
    }
    visits.sort_by_key(|visit| visit.opened_at);
    visits
}

/// The report as one CSV table: a `section` column says which part a row belongs to; summary
/// rows carry their figure in `value`.
pub fn to_csv(report: &ComplianceReport) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["section", "time", "until", "actor", "action", "target", "result", "value"])?;
    let time = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut summary = |name: &str, value: String| writer.write_record(["summary", "", "", "", name, "", "", &value]);
    summary("org", report.org_name.clone())?;
    summary("from", time(report.from))?;
    summary("to", time(report.to))?;
    summary("generated_at", time(report.generated_at))?;
    summary("sign_ins.successes", report.sign_ins.successes.to_string())?;
    summary("sign_ins.failures", report.sign_ins.failures.to_string())?;
    for (reason, count) in &report.sign_ins.failures_by_reason {
        summary(&format!("sign_ins.failures.{reason}"), count.to_string())?;
    }
    summary("sign_ins.lockouts", report.sign_ins.lockouts.to_string())?;
    summary("mfa.required", report.mfa.required.to_string())?;
    summary("mfa.users", report.mfa.users.to_string())?;
    summary("mfa.enrolled", report.mfa.enrolled.to_string())?;
    summary("chain.intact", report.chain.intact.to_string())?;
    summary("chain.events_verified", report.chain.events_verified.to_string())?;
    summary("chain.head", report.chain.head.clone())?;
    summary("chain.fault", report.chain.fault.clone().unwrap_or_default())?;
    summary("chain.events_in_period", report.chain.events_in_period.to_string())?;
    for user in &report.mfa.not_enrolled {
        writer.write_record(["mfa_not_enrolled", "", "", &user.username, "", "", "", user.role.as_str()])?;
    }
    for (section, entries) in
        [("privileged_action", &report.privileged_actions), ("policy_change", &report.policy_changes)]
    {
        for e in entries {
            writer.write_record([section, &time(e.time), "", &e.actor, &e.action, &e.target, &e.result, ""])?;
        }
    }
    for visit in &report.session_access {
        let closed = visit.closed_at.map(time).unwrap_or_default();
        let duration = visit.duration_secs.map(|secs| secs.to_string()).unwrap_or_default();
        let target = format!("session:{}", visit.session_id);
        let row =
            ["session_access", &time(visit.opened_at), &closed, &visit.user, "session.visit", &target, "", &duration];
        writer.write_record(row)?;
    }
    writer.into_inner().map_err(|err| err.into_error().into())
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use serde_json::{Value, json};
    use streamspace_store::Quotas;

    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + Duration::minutes(minute)
    }

    fn org(mfa_required: bool) -> Org {
        Org {
            id: Uuid::nil(),
            name: "acme".into(),
            mfa_required,
            session_policy: Default::default(),
            sso_mfa: Default::default(),
            quotas: Quotas::default(),
            egress_allow: Vec::new(),
            created_at: at(0),
        }
    }

    fn event(
        seq: i64,
        minute: i64,
        actor: &str,
        action: &str,
        target: &str,
        result: &str,
        details: Value,
    ) -> AuditEvent {
        AuditEvent {
            seq,
            id: Uuid::now_v7(),
            time: at(minute),
            actor_id: None,
            actor_name: actor.into(),
            org_id: Some(Uuid::nil()),
            action: action.into(),
            target: target.into(),
            result: result.into(),
            client_ip: Some("192.0.2.1".into()),
            user_agent: None,
            trace_id: None,
            details,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn user(name: &str, role: Role, mfa_enabled: bool, disabled: bool) -> User {
        User {
            id: Uuid::now_v7(),
            org_id: Uuid::nil(),
            username: name.into(),
            password_hash: String::new(),
            role,
            disabled,
            mfa_secret: None,
            mfa_enabled,
            mfa_last_step: None,
            sessions_revoked_at: None,
            created_at: at(0),
            updated_at: at(0),
        }
    }

    fn intact() -> ChainStatus {
        ChainStatus { intact: true, events_verified: 42, head: "42:ab".into(), fault: None, events_in_period: 0 }
    }

    fn report(org: &Org, events: &[AuditEvent], users: &[User]) -> ComplianceReport {
        build(ReportInput {
            org,
            from: at(0),
            to: at(24 * 60),
            generated_at: at(25 * 60),
            events,
            users,
            chain: intact(),
        })
    }

    #[test]
    fn sign_ins_are_counted_with_failures_by_reason() {
        let reason = |r: &str| json!({"reason": r});
        let events = [
            event(1, 1, "alice", "auth.login", "user:a", "success", json!({"mfa": true})),
            event(2, 2, "bob", "auth.login", "user:bob", "failure", reason("bad_credentials")),
            event(3, 3, "bob", "auth.login", "user:bob", "failure", reason("bad_credentials")),
            event(4, 4, "carol", "sso.sign_in", "user:c", "failure", reason("account_disabled")),
            event(5, 5, "dave", "sso.sign_in", "user:d", "success", Value::Null),
            event(6, 6, "bob", "auth.lockout", "user:bob", "denied", json!({"scope": "account"})),
            event(7, 7, "erin", "auth.login", "user:e", "failure", Value::Null),
        ];
        let sign_ins = report(&org(false), &events, &[]).sign_ins;
        assert_eq!((sign_ins.successes, sign_ins.failures, sign_ins.lockouts), (2, 4, 1));
        let by_reason: Vec<(&str, u64)> = sign_ins.failures_by_reason.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(by_reason, vec![("account_disabled", 1), ("bad_credentials", 2), ("unspecified", 1)]);
    }

    #[test]
    fn mfa_coverage_counts_active_users_and_lists_unenrolled_administrators_first() {
        let users = [
            user("zed", Role::Member, false, false),
            user("amy", Role::Member, true, false),
            user("boss", Role::OrgAdmin, false, false),
            user("gone", Role::Member, false, true),
        ];
        let mfa = report(&org(true), &[], &users).mfa;
        assert!(mfa.required);
        assert_eq!((mfa.users, mfa.enrolled), (3, 1));
        let names: Vec<&str> = mfa.not_enrolled.iter().map(|u| u.username.as_str()).collect();
        assert_eq!(names, vec!["boss", "zed"]);
    }

    #[test]
    fn privileged_actions_and_policy_changes_are_picked_by_action() {
        let cases = [
            ("user.update", true, false),
            ("user.create", true, false),
            ("org.update", true, true),
            ("template.delete", true, false),
            ("agent.token_rotate", true, false),
            ("api_key.create", true, false),
            ("api_key.delete", false, false),
            ("compliance.update", true, true),
            ("compliance.retention", true, false),
            ("compliance.report_delivery", false, false),
            ("identity_provider.create", true, true),
            ("allow_list.update", true, true),
            ("auth.mfa_disable", true, false),
            ("auth.login", false, false),
            ("session.connect", false, false),
            ("organization.update", false, false),
        ];
        for (seq, (action, privileged, policy)) in cases.into_iter().enumerate() {
            let events = [event(seq as i64 + 1, 1, "root", action, "x", "success", Value::Null)];
            let report = report(&org(false), &events, &[]);
            assert_eq!(report.privileged_actions.len() == 1, privileged, "{action} privileged");
            assert_eq!(report.policy_changes.len() == 1, policy, "{action} policy");
        }
    }

    fn tunnel(seq: i64, minute: i64, user: &str, session: &str, action: &str, tunnel: &str, opened: i64) -> AuditEvent {
        let details = json!({"tunnel": tunnel, "opened_at": at(opened)});
        event(seq, minute, user, action, &format!("session:{session}"), "success", details)
    }

    #[test]
    fn session_visits_merge_overlapping_tunnels_and_keep_open_ones_open() {
        let events = [
            // Alice: two overlapping tunnels into s1 (minutes 10-40 and 20-50): one visit.
            tunnel(1, 10, "alice", "s1", "session.tunnel_open", "t1", 10),
            tunnel(2, 20, "alice", "s1", "session.tunnel_open", "t2", 20),
            tunnel(3, 40, "alice", "s1", "session.tunnel_close", "t1", 10),
            tunnel(4, 50, "alice", "s1", "session.tunnel_close", "t2", 20),
            // Alice again later: a visit of its own.
            tunnel(5, 70, "alice", "s1", "session.tunnel_open", "t3", 70),
            tunnel(6, 75, "alice", "s1", "session.tunnel_close", "t3", 70),
            // Bob: opened before the period (its open event is not in it), closed at minute 5.
            tunnel(7, 5, "bob", "s2", "session.tunnel_close", "t4", -30),
            // Carol: still open at the end.
            tunnel(8, 90, "carol", "s3", "session.tunnel_open", "t5", 90),
        ];
        let visits = report(&org(false), &events, &[]).session_access;
        let visit = |user: &str, session: &str, from: i64, to: Option<i64>| SessionVisit {
            session_id: session.to_owned(),
            user: user.to_owned(),
            opened_at: at(from),
            closed_at: to.map(at),
            duration_secs: to.map(|to| (to - from) * 60),
            client_ip: Some("192.0.2.1".into()),
        };
        assert_eq!(
            visits,
            vec![
                visit("bob", "s2", -30, Some(5)),
                visit("alice", "s1", 10, Some(50)),
                visit("alice", "s1", 70, Some(75)),
                visit("carol", "s3", 90, None),
            ]
        );
    }

    #[test]
    fn the_chain_status_counts_the_periods_events() {
        let events = [event(1, 1, "a", "auth.login", "u", "success", Value::Null)];
        let chain = report(&org(false), &events, &[]).chain;
        assert_eq!(chain, ChainStatus { events_in_period: 1, ..intact() });
    }

    #[test]
    fn the_csv_has_a_row_per_figure_and_entry() {
        let events = [
            event(1, 1, "root", "org.update", "org:1", "success", Value::Null),
            tunnel(2, 2, "alice", "s1", "session.tunnel_close", "t1", 1),
        ];
        let users = [user("bob", Role::Member, false, false)];
        let csv = String::from_utf8(to_csv(&report(&org(true), &events, &users)).unwrap()).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "section,time,until,actor,action,target,result,value");
        for expected in [
            "summary,,,,org,,,acme",
            "summary,,,,mfa.required,,,true",
            "summary,,,,chain.intact,,,true",
            "mfa_not_enrolled,,,bob,,,,member",
            "privileged_action,2026-12-01T00:01:00Z,,root,org.update,org:1,success,",
            "policy_change,2026-12-01T00:01:00Z,,root,org.update,org:1,success,",
            "session_access,2026-12-01T00:01:00Z,2026-12-01T00:02:00Z,alice,session.visit,session:s1,,60",
        ] {
            assert!(lines.contains(&expected), "{expected} missing from\n{csv}");
        }
    }
}
