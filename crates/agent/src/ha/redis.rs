//! The `redis` lease: one key per HA group holding `<holder> <epoch>` with Redis's own expiry, and a counter
//! key for the epochs. Each operation is one Lua script, so Redis decides races atomically.

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use anyhow::Context;
use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::Lease;

/// A Redis that takes longer than this to answer is treated as failed, so a renewal cannot hang past the
/// leader's deadline unnoticed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Takes the lease if no term holds it, as the next epoch.
const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. epoch, 'PX', ARGV[2])
return epoch
";

/// Extends the term if it is still the holder's.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

/// Ends the term if it is still the holder's.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// A lease in Redis (or anything speaking its protocol and Lua, such as Valkey).
pub struct RedisLease {
    client: ::redis::Client,
    connection: OnceCell<ConnectionManager>,
    term_key: String,
    epoch_key: String,
}

impl RedisLease {
    /// `url`: `redis://host:6379/0`, `rediss://...` or `unix:///path/to/redis.sock`; `group` names the HA group
    /// (agents of one group share it, other groups may share the Redis).
    pub fn new(url: &str, group: &str) -> anyhow::Result<RedisLease> {
        let client = ::redis::Client::open(url).context("the Redis URL is not usable")?;
        // The braces keep both keys in one hash slot, as a Redis Cluster needs for one script.
        let base = format!("streamspace:agent-lease:{{{group}}}");
        Ok(RedisLease {
            client,
            connection: OnceCell::new(),
            term_key: format!("{base}:term"),
            epoch_key: format!("{base}:epoch"),
        })
    }

    /// The shared connection, made at first use (an agent starts while Redis is down) and re-established by
    /// the connection manager after failures.
    async fn connection(&self) -> anyhow::Result<ConnectionManager> {
        let connection = self
            .connection
            .get_or_try_init(|| {
                // No retries of its own: the elector retries on its schedule, and must hear of a failure in time.
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(0)
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_connection_timeout(Some(RESPONSE_TIMEOUT));
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await
            .context("cannot connect to Redis")?;
        Ok(connection.clone())
    }

    async fn invoke<T: ::redis::FromRedisValue>(&self, script: &::redis::ScriptInvocation<'_>) -> anyhow::Result<T> {
        let mut connection = self.connection().await?;
        script.invoke_async(&mut connection).await.context("the lease script failed in Redis")
    }
}

fn term_value(holder: &str, epoch: u64) -> String {
    format!("{holder} {epoch}")
}

fn millis(ttl: Duration) -> u64 {
    ttl.as_millis().max(1) as u64
}

#[async_trait]
impl Lease for RedisLease {
    async fn acquire(&self, holder: &str, ttl: Duration) -> anyhow::Result<Option<u64>> {
        let script = ::redis::Script::new(ACQUIRE);
        let mut invocation = script.key(&self.term_key);
        invocation.key(&self.epoch_key).arg(holder).arg(millis(ttl));
        let epoch: u64 = self.invoke(&invocation).await?;
        Ok((epoch > 0).then_some(epoch))
    }

    async fn renew(&self, holder: &str, epoch: u64, ttl: Duration) -> anyhow::Result<bool> {
        let script = ::redis::Script::new(RENEW);
        let mut invocation = script.key(&self.term_key);
        invocation.arg(term_value(holder, epoch)).arg(millis(ttl));
        let renewed: u64 = self.invoke(&invocation).await?;
        Ok(renewed == 1)
    }

    async fn release(&self, holder: &str, epoch: u64) -> anyhow::Result<()> {
        let script = ::redis::Script::new(RELEASE);
        let mut invocation = script.key(&self.term_key);
        invocation.arg(term_value(holder, epoch));
        let _: u64 = self.invoke(&invocation).await?;
        Ok(())
    }

    async fn latest_epoch(&self) -> anyhow::Result<u64> {
        let mut connection = self.connection().await?;
        let epoch: Option<u64> =
            ::redis::cmd("GET").arg(&self.epoch_key).query_async(&mut connection).await.context("reading the epoch")?;
        Ok(epoch.unwrap_or(0))
    }
}
