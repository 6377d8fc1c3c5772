//! What control-plane replicas sharing one database tell each other, and the duties only one of
//! them performs at a time (ADR 0030).
//!
//! On PostgreSQL, messages travel by `LISTEN/NOTIFY` and duties are lease rows. SQLite serves a
//! single process: there is nobody to tell, and that process holds every duty.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::{Result, StoreError};

/// The channel every replica listens on.
const CHANNEL: &str = "streamspace_replicas";

/// Messages waiting for a slow subscriber before the oldest are dropped (it is told it lagged).
const BACKLOG: usize = 4096;

/// After losing the database, the listener tries again this often.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

#[async_trait]
pub trait Cluster: Send + Sync + 'static {
    /// This process's identity among the replicas, new at every start.
    fn replica(&self) -> Uuid;
    /// Delivers `message` to every other replica (not to this one), at most once and only to
    /// those listening now: what must not be lost is in the store, and the message only says
    /// "look now".
    async fn announce(&self, message: &str) -> Result<()>;
    /// The messages of the other replicas, from now on.
    fn messages(&self) -> broadcast::Receiver<String>;
    /// Takes the duty `name`, or keeps it, for `ttl` from now; `true` while this replica holds it.
    /// A holder that stops renewing (it died, or lost the database) loses it after `ttl`.
    async fn hold(&self, name: &str, ttl: Duration) -> Result<bool>;
}

/// One process on its own: nobody to tell, every duty its own.
pub struct Alone {
    replica: Uuid,
    messages: broadcast::Sender<String>,
}

impl Default for Alone {
    fn default() -> Self {
        Alone { replica: Uuid::now_v7(), messages: broadcast::channel(1).0 }
    }
}

#[async_trait]
impl Cluster for Alone {
    fn replica(&self) -> Uuid {
        self.replica
    }

    async fn announce(&self, _message: &str) -> Result<()> {
        Ok(())
    }

    fn messages(&self) -> broadcast::Receiver<String> {
        self.messages.subscribe()
    }

    async fn hold(&self, _name: &str, _ttl: Duration) -> Result<bool> {
        Ok(true)
    }
}

/// Replicas on one PostgreSQL database.
pub struct Replicas {
    replica: Uuid,
    pool: PgPool,
    messages: broadcast::Sender<String>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for Replicas {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl Replicas {
    /// Joins the replicas on the database at `url` (whose migrations the store has applied).
    pub async fn join(url: &str) -> Result<Replicas> {
        let options: sqlx::postgres::PgConnectOptions =
            url.parse().map_err(|e| StoreError::Invalid(format!("bad PostgreSQL URL: {e}")))?;
        // One connection listens, one announces and renews leases.
        let pool = PgPoolOptions::new().max_connections(2).connect_with(options).await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let replica = Uuid::now_v7();
        let messages = broadcast::channel(BACKLOG).0;
        let listener = tokio::spawn(relay(listener, replica, messages.clone()));
        Ok(Replicas { replica, pool, messages, listener })
    }
}

/// A message on the wire: the sender's id, a space, the message.
fn envelope(replica: Uuid, message: &str) -> String {
    format!("{replica} {message}")
}

/// The message of an envelope from another replica; `None` for this replica's own.
fn open_envelope(replica: Uuid, payload: &str) -> Option<&str> {
    let (sender, message) = payload.split_once(' ')?;
    (sender != replica.to_string()).then_some(message)
}

/// Hands the other replicas' messages to this replica's subscribers until the task is dropped.
async fn relay(mut listener: PgListener, replica: Uuid, messages: broadcast::Sender<String>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                if let Some(message) = open_envelope(replica, notification.payload()) {
                    let _ = messages.send(message.to_owned());
                }
            }
            // The connection was lost; the next call reconnects and listens again. What was said
            // meanwhile is lost: the store and the periodic rounds make up for it.
            Ok(None) => tracing::warn!("lost the replicas' notification channel; reconnecting"),
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen to the other replicas");
                tokio::time::sleep(RECONNECT_AFTER).await;
            }
        }
    }
}

#[async_trait]
impl Cluster for Replicas {
    fn replica(&self) -> Uuid {
        self.replica
    }

    async fn announce(&self, message: &str) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(envelope(self.replica, message))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn messages(&self) -> broadcast::Receiver<String> {
        self.messages.subscribe()
    }

    async fn hold(&self, name: &str, ttl: Duration) -> Result<bool> {
        let held = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond') \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < now() RETURNING holder",
        )
        .bind(name)
        .bind(self.replica)
        .bind(ttl.as_millis() as f64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(held.is_some())
    }
}

/// How the replicas sharing the database at `url` reach each other: [`Replicas`] on PostgreSQL,
/// [`Alone`] on SQLite.
pub async fn join(url: &str) -> Result<Arc<dyn Cluster>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(Replicas::join(url).await?))
    } else {
        Ok(Arc::new(Alone::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_ignores_its_own_messages() {
        let (me, other) = (Uuid::now_v7(), Uuid::now_v7());
        let payload = envelope(other, "commands 1 2");
        assert_eq!(open_envelope(me, &payload), Some("commands 1 2"));
        assert_eq!(open_envelope(other, &payload), None);
        assert_eq!(open_envelope(me, "garbage"), None);
    }
}
