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
pub mod ha;
mod runtime;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use config::AgentConfig;
pub use runtime::{Progress, Runtime};

use crate::agent::Agent;
use crate::backoff::Backoff;
use crate::connection::{ConnectError, Ended};

/// Runs the agent until `shutdown` completes: connects, serves the connection, and reconnects whenever it drops,
/// moving on to the next control-plane URL at once and backing off only after every URL failed. Fails only on
/// configuration errors (an unusable server URL).
pub async fn run<F>(config: AgentConfig, runtime: Arc<dyn Runtime>, shutdown: F) -> anyhow::Result<()>
where
    F: Future<Output = ()>,
{
    let mut servers = Rotation::new(config.hub_urls()?);
    let agent = Agent::new(runtime);
    // Aborted however `run` ends, including when its future is dropped.
    let _events = AbortOnDrop(tokio::spawn(Arc::clone(&agent).forward_events()));
    tokio::pin!(shutdown);
    let mut backoff = Backoff::default();
    loop {
        let url = servers.current().to_owned();
        let attempt = tokio::select! {
            () = shutdown.as_mut() => break,
            attempt = connection::connect(&config, &url, &agent) => attempt,
        };
        let delay = match attempt {
            Ok(connection) => {
                backoff.reset();
                servers.connected();
                match connection.serve(&agent, shutdown.as_mut()).await {
                    Ok(Ended::Shutdown) => break,
                    Ok(Ended::Closed) => tracing::warn!(%url, "the control plane closed the connection"),
                    Err(error) => {
                        tracing::warn!(%url, error = format!("{error:#}"), "lost the connection to the control plane")
                    }
                }
                // The replica may be gone: the next URL is tried first, after the shortest delay.
                servers.advance();
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
                let round_over = servers.advance();
                let delay = if round_over { backoff.next_delay() } else { Duration::ZERO };
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

/// The control-plane URLs in turn: which one to dial next, and whether every one failed since the last success.
struct Rotation {
    urls: Vec<String>,
    current: usize,
    failed_in_a_row: usize,
}

impl Rotation {
    fn new(urls: Vec<String>) -> Rotation {
        Rotation { urls, current: 0, failed_in_a_row: 0 }
    }

    fn current(&self) -> &str {
        &self.urls[self.current]
    }

    fn connected(&mut self) {
        self.failed_in_a_row = 0;
    }

    /// Moves to the next URL; `true` when each URL has now failed once since the last connection.
    fn advance(&mut self) -> bool {
        self.current = (self.current + 1) % self.urls.len();
        self.failed_in_a_row += 1;
        if self.failed_in_a_row >= self.urls.len() {
            self.failed_in_a_row = 0;
            return true;
        }
        false
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rotation_visits_every_url_before_a_round_counts_as_failed() {
        let mut rotation = Rotation::new(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(rotation.current(), "a");
        assert!(!rotation.advance());
        assert_eq!(rotation.current(), "b");
        assert!(!rotation.advance());
        assert!(rotation.advance(), "a, b and c failed: back off");
        assert_eq!(rotation.current(), "a");
        rotation.advance();
        rotation.connected();
        assert!(!rotation.advance(), "a connection starts a new round");
        assert_eq!(rotation.current(), "c");
    }

    #[test]
    fn one_url_backs_off_after_each_failure() {
        let mut rotation = Rotation::new(vec!["lb".into()]);
        assert!(rotation.advance());
        assert!(rotation.advance());
        assert_eq!(rotation.current(), "lb");
    }
}
