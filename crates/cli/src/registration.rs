//! Agents the control plane registers itself from its own settings, so that no administrator has to call
//! `POST /api/v1/agents` and hand a token over: the all-in-one's Docker agent, and the Kubernetes agent a Helm
//! chart deploys beside the control plane with a token both read from one Secret.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde_json::json;
use streamspace_proto::hub::Platform;
use streamspace_server::App;
use streamspace_server::audit::{Actor, Record};
use streamspace_server::auth::secrets::sha256_hex;
use streamspace_server::context::RequestMeta;
use streamspace_store::{Agent, NewAgent, StoreError};

/// What the control plane keeps for an agent it registers itself; only the token's hash is stored.
#[derive(Debug)]
pub struct Registration {
    pub name: String,
    pub platform: Platform,
    /// Reserved (`streamspace.`) labels are allowed: the control plane, not the agent, sets them.
    pub labels: BTreeMap<String, String>,
    /// The networks the agent's session endpoints must lie in (ADR 0015); empty for any.
    pub endpoint_cidrs: Vec<String>,
}

/// Registers the agent under its name with this token, or brings an agent of that name in line: a new token
/// re-keys it (the old one stops working), new networks replace the old. Idempotent, so every start runs it.
pub async fn ensure(app: &App, registration: Registration, token: &str) -> anyhow::Result<()> {
    let hash = sha256_hex(token);
    let agent = match named(app, &registration.name).await? {
        Some(agent) => agent,
        None => {
            let new = NewAgent {
                name: registration.name.clone(),
                platform: registration.platform,
                labels: registration.labels.clone(),
                token_hash: hash.clone(),
                capacity_limit: Default::default(),
                endpoint_cidrs: registration.endpoint_cidrs.clone(),
            };
            match app.store.create_agent(new).await {
                Ok(agent) => return audit(app, "agent.create", &agent).await,
                // Replicas starting together: another one has just registered it; bring that one in line.
                Err(StoreError::Conflict(_)) => named(app, &registration.name)
                    .await?
                    .with_context(|| format!("the agent '{}' was registered and is gone", registration.name))?,
                Err(err) => return Err(err.into()),
            }
        }
    };
    if agent.platform != registration.platform {
        bail!(
            "an agent named '{}' is already registered for {}: choose another name for the {} agent",
            agent.name,
            agent.platform.as_str(),
            registration.platform.as_str()
        );
    }
    if agent.token_hash != hash {
        app.store.set_agent_token(agent.id, &hash).await?;
        tracing::info!(agent = %agent.name, "re-keyed the agent from the control plane's settings");
        audit(app, "agent.token_rotate", &agent).await?;
    }
    if agent.endpoint_cidrs != registration.endpoint_cidrs {
        app.store.set_agent_endpoint_cidrs(agent.id, &registration.endpoint_cidrs).await?;
        tracing::info!(agent = %agent.name, networks = ?registration.endpoint_cidrs, "replaced the agent's endpoint networks");
        audit(app, "agent.endpoint_cidrs_set", &agent).await?;
    }
    Ok(())
}

async fn named(app: &App, name: &str) -> anyhow::Result<Option<Agent>> {
    Ok(app.store.list_agents().await?.into_iter().find(|agent| agent.name == name))
}

/// Recorded under the API's own actions on agents, by the system, from the settings.
async fn audit(app: &App, action: &'static str, agent: &Agent) -> anyhow::Result<()> {
    let record =
        Record::new(action, format!("agent:{}", agent.id)).details(json!({"name": agent.name, "source": "settings"}));
    app.audit(&RequestMeta::internal(), &Actor::system(), record)
        .await
        .map_err(|err| anyhow::anyhow!("cannot audit {action}: {}", err.message))
}

#[cfg(test)]
mod tests {
    use streamspace_server::Config;

    use super::*;

    const TOKEN: &str = "chart-generated-token-0123456789abcdef";

    async fn app(data_dir: &std::path::Path) -> App {
        let config = Config {
            data_dir: data_dir.to_path_buf(),
            admin_password: Some("admin-password-1".to_owned()),
            ..Config::default()
        };
        let app = streamspace_server::open(config, |_| {}).await.unwrap();
        std::sync::Arc::into_inner(app).expect("the only reference")
    }

    fn kubernetes(endpoint_cidrs: &[&str]) -> Registration {
        Registration {
            name: "kubernetes".to_owned(),
            platform: Platform::Kubernetes,
            labels: BTreeMap::new(),
            endpoint_cidrs: endpoint_cidrs.iter().map(|net| (*net).to_owned()).collect(),
        }
    }

    /// The audited actions on agents, in order; each names the agent and the settings as its source.
    async fn agent_actions(app: &App) -> Vec<String> {
        let events = app.store.audit_chain(0, 100).await.unwrap();
        let on_agents: Vec<_> = events.into_iter().filter(|event| event.action.starts_with("agent.")).collect();
        for event in &on_agents {
            assert_eq!((event.actor_name.as_str(), &event.details["source"]), ("system", &json!("settings")));
            assert_eq!(event.details["name"], "kubernetes");
        }
        on_agents.into_iter().map(|event| event.action).collect()
    }

    async fn only_agent(app: &App) -> Agent {
        let agents = app.store.list_agents().await.unwrap();
        assert_eq!(agents.len(), 1, "one agent: {agents:?}");
        agents.into_iter().next().unwrap()
    }

    #[tokio::test]
    async fn registers_the_agent_once_and_keeps_only_the_token_hash() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path()).await;
        ensure(&app, kubernetes(&["10.244.0.0/16"]), TOKEN).await.unwrap();
        let agent = only_agent(&app).await;
        assert_eq!((agent.name.as_str(), agent.platform), ("kubernetes", Platform::Kubernetes));
        assert_eq!(agent.endpoint_cidrs, ["10.244.0.0/16"]);
        assert_eq!(agent.token_hash, sha256_hex(TOKEN));
        ensure(&app, kubernetes(&["10.244.0.0/16"]), TOKEN).await.unwrap();
        assert_eq!(only_agent(&app).await, agent, "a second start changes nothing");
        assert_eq!(agent_actions(&app).await, ["agent.create"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replicas_registering_the_agent_at_once_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let app = std::sync::Arc::new(app(dir.path()).await);
        let replicas: Vec<_> = (0..8)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { ensure(&app, kubernetes(&[]), TOKEN).await })
            })
            .collect();
        for replica in replicas {
            replica.await.unwrap().unwrap();
        }
        assert_eq!(only_agent(&app).await.token_hash, sha256_hex(TOKEN));
        assert_eq!(agent_actions(&app).await, ["agent.create"]);
    }

    #[tokio::test]
    async fn a_new_token_or_new_networks_update_the_agent_of_that_name() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path()).await;
        ensure(&app, kubernetes(&[]), TOKEN).await.unwrap();
        let before = only_agent(&app).await;
        let rotated = "another-chart-token-0123456789abcdef";
        ensure(&app, kubernetes(&["10.42.0.0/16", "fd00:10:42::/56"]), rotated).await.unwrap();
        let after = only_agent(&app).await;
        assert_eq!(after.id, before.id, "the same agent, so its sessions stay with it");
        assert_eq!(after.endpoint_cidrs, ["10.42.0.0/16", "fd00:10:42::/56"]);
        assert_eq!(app.store.find_agent_by_token(&sha256_hex(TOKEN)).await.unwrap(), None, "the old token is revoked");
        assert_eq!(app.store.find_agent_by_token(&sha256_hex(rotated)).await.unwrap().map(|a| a.id), Some(before.id));
        assert_eq!(agent_actions(&app).await, ["agent.create", "agent.token_rotate", "agent.endpoint_cidrs_set"]);
    }

    #[tokio::test]
    async fn an_agent_of_that_name_on_another_platform_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path()).await;
        let docker = Registration { platform: Platform::Docker, ..kubernetes(&[]) };
        ensure(&app, docker, TOKEN).await.unwrap();
        let before = only_agent(&app).await;
        let err = ensure(&app, kubernetes(&["10.0.0.0/8"]), "a-different-token-0123456789abcdef").await.unwrap_err();
        assert!(err.to_string().contains("already registered for docker"), "{err}");
        assert_eq!(only_agent(&app).await, before);
    }
}
