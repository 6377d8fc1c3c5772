//! Warm pools (ADR 0034): containers started ahead of demand per template and agent, so a launch
//! finds its session already running.
//!
//! A member is started like a session under a fresh id with no owner; a launch whose session
//! would get exactly the member's spec (apart from identity) claims it, and the store turns the
//! member into the caller's running session under the same id in one transaction, so a claimed
//! container never returns to the pool. What is personal is done at the claim: the owner and org
//! are recorded, and the streamer's token table is registered before the caller gets the session.
//! Members reserve resources on their agent like sessions, so they count against its capacity.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use streamspace_proto::hub::{ActualState, Command, CommandKind, InventoryItem, SessionSpec};
use streamspace_proto::security;
use streamspace_store::{HomeScope, NewSession, PoolMember, Scope, Session, SessionPolicy, Template};
use uuid::Uuid;

use crate::app::App;
use crate::audit::Record;
use crate::error::ApiResult;
use crate::lifecycle;
use crate::orchestrator::Cause;
use crate::scheduler::{self, Candidate, Requirements};

/// How long a launch waits for a claimed member's streamer to take the session's token.
const PROVISION_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The spec every session of `template` gets in an org with that egress allow-list and session
/// policy, before it is anyone's: no identity, streamer credentials or home. The policy's streamer
/// settings come after the template's environment, so a template cannot loosen them.
pub fn portable_spec(template: &Template, org_egress_allow: &[ipnet::IpNet], policy: &SessionPolicy) -> SessionSpec {
    let mut env = template.env.clone();
    env.extend(crate::session_policy::streamer_settings(policy));
    SessionSpec {
        session_id: Uuid::nil(),
        org_id: Uuid::nil(),
        owner_id: Uuid::nil(),
        image: template.image.clone(),
        env,
        cpu_millis: template.cpu_millis,
        memory_mb: template.memory_mb,
        shm_mb: template.shm_mb,
        port: template.port,
        egress_allow: security::merge_allow_lists(&template.egress_allow, org_egress_allow),
        home: None,
    }
}

/// Whether a warm container can serve the template's sessions: not when they mount a home, which
/// belongs to a user the container does not know before the claim.
pub fn poolable(template: &Template) -> bool {
    template.home.scope == HomeScope::None
}

/// What a member of the template's pool runs: the spec of a session in an org that adds no egress
/// allow-list and no policy of its own; launches in other orgs start cold.
fn member_spec(template: &Template) -> SessionSpec {
    portable_spec(template, &[], &template.session_policy)
}

/// What a member's container runs apart from its identity, as a digest the store can compare.
pub fn spec_digest(portable: &SessionSpec) -> String {
    let canonical = serde_json::to_vec(portable).unwrap_or_default();
    hex::encode(Sha256::digest(canonical))
}

impl App {
    /// The portable spec given an identity and the session's streamer credentials.
    pub fn identify(&self, mut spec: SessionSpec, session_id: Uuid, org_id: Uuid, owner_id: Uuid) -> SessionSpec {
        spec.env.extend(self.streamer_env(session_id));
        SessionSpec { session_id, org_id, owner_id, ..spec }
    }

    /// Creates the caller's session: a warm member of the template's pool when one fits, else a
    /// new session placed on an agent.
    pub async fn launch(&self, template: &Template, new: NewSession, cause: &Cause<'_>) -> ApiResult<Session> {
        let claimed = self.claim_warm(template, new.clone()).await?;
        let warm = claimed.is_some();
        let session = match claimed {
            Some(session) => session,
            None => self.store.create_session(new).await?,
        };
        let record = Record::new("session.create", format!("session:{}", session.id))
            .details(json!({"template": template.name, "warm": warm}));
        self.audit(cause.meta, cause.actor, record).await?;
        if warm {
            return Ok(self.hand_over(session).await);
        }
        self.schedule(&session, cause).await
    }

    async fn claim_warm(&self, template: &Template, new: NewSession) -> ApiResult<Option<Session>> {
        if !poolable(template) {
            return Ok(None);
        }
        let org = self.store.get_org(Scope::Platform, new.org_id).await?;
        let policy = crate::session_policy::effective(self.store.as_ref(), new.org_id, template.id).await?;
        let egress_allow = org.map(|org| org.egress_allow).unwrap_or_default();
        let digest = spec_digest(&portable_spec(template, &egress_allow, &policy));
        Ok(self.store.claim_pool_member(template.id, &digest, new, self.clock.now()).await?)
    }

    /// The personal part of a claim: the streamer learns the session's token before the caller
    /// can connect (a streamer slow to answer finishes it in the background), then watchers learn
    /// of the session.
    async fn hand_over(&self, session: Session) -> Session {
        if let Some(endpoint) = &session.endpoint {
            let tokens = crate::proxy::streamer::token_table(|role| self.streamer_token(session.id, role));
            let provision = crate::proxy::streamer::provision(
                self.http.clone(),
                endpoint.clone(),
                self.master_token(session.id),
                tokens,
            );
            let _ = tokio::time::timeout(PROVISION_WAIT, tokio::spawn(provision)).await;
        }
        metrics::counter!("streamspace_pool_claims_total").increment(1);
        self.publish_session(&session).await;
        session
    }

    /// Applies an agent's report about a session id the store does not hold as a session; `false`
    /// when it is no member of that agent's pool either.
    pub async fn on_pool_report(&self, agent_id: Uuid, member_id: Uuid, actual: &ActualState) -> ApiResult<bool> {
        let members = self.store.list_pool_members().await?;
        let Some(member) = members.into_iter().find(|m| m.id == member_id && m.agent_id == agent_id) else {
            return Ok(false);
        };
        match actual {
            ActualState::Starting { .. } => {}
            ActualState::Running { endpoint } if !member.is_ready() => {
                match self.vet_endpoint(agent_id, member.id, None, endpoint).await? {
                    Ok(checked) => {
                        self.store.pool_member_ready(member.id, agent_id, &checked, self.clock.now()).await?;
                    }
                    Err(_) => self.retire(&member).await?,
                }
            }
            ActualState::Running { .. } => {}
            ActualState::Stopped => {
                self.store.remove_pool_member(member.id).await?;
            }
            ActualState::Hibernated | ActualState::Failed { .. } => self.retire(&member).await?,
        }
        Ok(true)
    }

    /// Forgets the agent's members that it does not report and has no command in flight for.
    pub async fn forget_vanished_members(&self, agent_id: Uuid, inventory: &[InventoryItem]) -> ApiResult<()> {
        let pending = self.store.pending_commands(agent_id).await?;
        let now = self.clock.now();
        for member in self.store.list_pool_members().await? {
            let last_change = member.ready_at.unwrap_or(member.created_at);
            let vanished = member.agent_id == agent_id
                && lifecycle::inventory_speaks_for(last_change, self.heartbeat_interval(), now)
                && !inventory.iter().any(|item| item.session_id == member.id)
                && !pending.iter().any(|command| command.session_id == member.id);
            if vanished {
                self.store.remove_pool_member(member.id).await?;
            }
        }
        Ok(())
    }

    /// One round of pool upkeep: members that are no longer wanted (pool shrunk or removed,
    /// template changed, disabled or deleted, start taking too long) are stopped, then every
    /// online agent that fits gets its missing members started, as capacity allows.
    pub async fn refill_pools(&self) -> ApiResult<()> {
        let sizes: HashMap<Uuid, i64> =
            self.store.list_template_pools().await?.into_iter().map(|pool| (pool.template_id, pool.size)).collect();
        let members = self.store.list_pool_members().await?;
        if sizes.values().all(|size| *size == 0) && members.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let mut wanted = HashMap::new();
        for (&template_id, &size) in sizes.iter().filter(|(_, size)| **size > 0) {
            let template = self.store.get_template(Scope::Platform, template_id).await?;
            if let Some(template) = template.filter(|t| t.enabled && poolable(t)) {
                wanted.insert(template_id, (size, spec_digest(&member_spec(&template)), template));
            }
        }
        let mut kept: HashMap<(Uuid, Uuid), i64> = HashMap::new();
        for member in &members {
            let count = kept.entry((member.template_id, member.agent_id)).or_default();
            let fits = wanted.get(&member.template_id).is_some_and(|(size, digest, _)| {
                *digest == member.spec_digest && *count < *size && !self.start_overdue(member, now)
            });
            if fits {
                *count += 1;
            } else {
                self.retire(member).await?;
            }
        }
        let mut candidates = self.candidates().await?;
        for (template_id, (size, digest, template)) in &wanted {
            for candidate in candidates.iter_mut() {
                let have = kept.get(&(*template_id, candidate.id)).copied().unwrap_or_default();
                for _ in have..*size {
                    if !self.start_member(template, digest, candidate, now).await? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn start_overdue(&self, member: &PoolMember, now: DateTime<Utc>) -> bool {
        !member.is_ready() && now - member.created_at > self.config.sessions.start_timeout
    }

    /// Starts one member on the candidate if it fits there, counting it in the candidate's load.
    async fn start_member(
        &self,
        template: &Template,
        digest: &str,
        candidate: &mut Candidate,
        now: DateTime<Utc>,
    ) -> ApiResult<bool> {
        let requirements =
            Requirements { cpu_millis: template.cpu_millis, memory_mb: template.memory_mb, ..Requirements::default() };
        if scheduler::choose(std::slice::from_ref(candidate), &requirements).is_err() {
            return Ok(false);
        }
        let resources = (template.cpu_millis, template.memory_mb);
        let member = PoolMember::starting(template.id, candidate.id, resources, digest.to_owned(), now);
        self.store.add_pool_member(&member).await?;
        let spec = self.identify(member_spec(template), member.id, template.org_id.unwrap_or_default(), Uuid::nil());
        let command = Command {
            id: Uuid::now_v7(),
            kind: CommandKind::Start,
            session_id: member.id,
            spec: Some(spec),
            traceparent: None,
        };
        self.dispatch(candidate.id, command).await?;
        candidate.sessions += 1;
        candidate.cpu_millis += template.cpu_millis;
        candidate.memory_mb += template.memory_mb;
        Ok(true)
    }

    /// Stops a member that is no longer wanted; the store forgets it first, so it cannot be
    /// claimed while it stops.
    async fn retire(&self, member: &PoolMember) -> ApiResult<()> {
        if self.store.remove_pool_member(member.id).await? {
            let command = Command {
                id: Uuid::now_v7(),
                kind: CommandKind::Stop,
                session_id: member.id,
                spec: None,
                traceparent: None,
            };
            self.dispatch(member.agent_id, command).await?;
        }
        Ok(())
    }
}
