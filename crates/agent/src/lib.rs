//! The StreamSpace agent: dials the control plane's hub, announces the sessions it runs, and executes the
//! control plane's commands on a [`Runtime`] (Docker, Kubernetes, or a fake in tests).
//!
//! The agent dials out, so it works behind NAT. It holds no durable state: every (re)connect sends the full
//! inventory, the control plane re-sends unacknowledged commands, and runtimes apply commands idempotently.
//! Shutting the agent down closes the socket and leaves sessions running; the next agent picks them up from the
//! inventory.
//!
//! ```no_run
//! # async fn example(runtime: std::sync::Arc<dyn streamspace_agent::Runtime>) -> anyhow::Result<()> {
//! use streamspace_agent::AgentConfig;
//!
//! let config = AgentConfig::new("https://streamspace.example.com", "agent-token");
//! let shutdown = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
//! streamspace_agent::run(config, runtime, shutdown).await
//! # }
//! ```

mod agent;
mod backoff;
mod commands;
mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
mod connection;
mod runtime;

use std::future::Future;
use std::sync::Arc;

pub use config::AgentConfig;
pub use runtime::{Progress, Runtime};

use crate::agent::Agent;
use crate::backoff::Backoff;
use crate::connection::{ConnectError, Ended};

/// Runs the agent until `shutdown` completes: connects, serves the connection, and reconnects with backoff
/// whenever it drops. Fails only on configuration errors (an unusable server URL).
pub async fn run<F>(config: AgentConfig, runtime: Arc<dyn Runtime>, shutdown: F) -> anyhow::Result<()>
where
    F: Future<Output = ()>,
{
    let url = config.hub_url()?;
    let agent = Agent::new(runtime);
    // Aborted however `run` ends, including when its future is dropped.
    let _events = AbortOnDrop(tokio::spawn(Arc::clone(&agent).forward_events()));
    tokio::pin!(shutdown);
    let mut backoff = Backoff::default();
    loop {
        let attempt = tokio::select! {
            () = shutdown.as_mut() => break,
            attempt = connection::connect(&config, &url, &agent) => attempt,
        };
        let delay = match attempt {
            Ok(connection) => {
                backoff.reset();
                match connection.serve(&agent, shutdown.as_mut()).await {
                    Ok(Ended::Shutdown) => break,
                    Ok(Ended::Closed) => tracing::warn!("the control plane closed the connection"),
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "lost the connection to the control plane")
                    }
                }
                backoff.next_delay()
            }
            Err(ConnectError::Rejected(status)) => {
                let delay = backoff.rejected_delay();
                tracing::error!(
                    %status,
                    retry_in_secs = delay.as_secs(),
                    "the control plane rejected the agent token: it was revoked or is wrong; issue a new token and restart the agent"
                );
                delay
            }
            Err(ConnectError::Failed(error)) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    error = format!("{error:#}"),
                    retry_in_ms = delay.as_millis() as u64,
                    "cannot connect to the control plane"
                );
                delay
            }
        };
        tokio::select! {
            () = shutdown.as_mut() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    tracing::info!("agent stopped; its sessions keep running");
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
