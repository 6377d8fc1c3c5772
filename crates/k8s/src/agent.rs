//! The whole Kubernetes agent: while this replica holds the Lease, the agent's connection to the control plane
//! and the Session controller run; a standby waits; a leader that loses the Lease drops both at once.

use std::future::Future;
use std::sync::Arc;

use kube::Client;
use streamspace_agent::AgentConfig;

use crate::controller::run_controller;
use crate::lease::LeaderElector;
use crate::runtime::{KubernetesOptions, KubernetesRuntime};

/// Which Lease the replicas contend for, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Election {
    pub lease_name: String,
    /// Unique per replica: the pod name in a Deployment.
    pub identity: String,
}

/// Runs the agent until `shutdown` completes. Every term as leader starts a fresh runtime, connection and
/// controller, so nothing of a lost term lingers.
pub async fn run_agent<S>(
    client: Client,
    config: AgentConfig,
    options: KubernetesOptions,
    election: Election,
    shutdown: S,
) -> anyhow::Result<()>
where
    S: Future<Output = ()>,
{
    let elector = LeaderElector::new(client.clone(), &options.namespace, &election.lease_name, &election.identity);
    tracing::info!(
        namespace = %options.namespace,
        lease = %election.lease_name,
        identity = %election.identity,
        "Kubernetes agent started; waiting for the Lease"
    );
    let term = || lead_term(client.clone(), config.clone(), options.clone());
    elector.lead(term, shutdown).await
}

/// One term as leader: the agent's connection and the controller, which starts once the control plane's
/// welcome names the agent (its Sessions are selected by that id).
async fn lead_term(client: Client, config: AgentConfig, options: KubernetesOptions) -> anyhow::Result<()> {
    let runtime = Arc::new(KubernetesRuntime::new(client.clone(), options.clone()));
    let controller = {
        let runtime = Arc::clone(&runtime);
        async move {
            match runtime.bound_agent().await {
                Some(agent_id) => {
                    run_controller(client, &options.namespace, options.session, agent_id, std::future::pending()).await
                }
                None => std::future::pending().await,
            }
        }
    };
    tokio::select! {
        result = streamspace_agent::run(config, runtime, std::future::pending()) => result,
        () = controller => Ok(()),
    }
}
