//! Cluster-wide limits in Redis: one Lua script step per request (or per lease) on the
//! Redis server's clock, so nodes with drifting clocks still agree. When Redis cannot be
//! reached, callers fall back to their node's share of the limit; this module says when.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use crate::clock::Clock;
use crate::gcra::Rate;

/// GCRA for `ARGV[4]` requests at once (1 per request; more for a lease), in
/// microseconds on the server's clock. Grants as many as fit, up to the number asked.
/// Returns `{granted, remaining, micros}`: granted ≥ 1 → `micros` until the budget is
/// whole again; granted = -1 → a queue slot was reserved, go ahead in `micros`;
/// granted = 0 → limited, the next request fits in `micros`.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local fit = math.floor((cap - (tat - now)) / emission)
if fit > wanted then fit = wanted end
if fit >= 1 then
  local new_tat = tat + fit * emission
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
  return {fit, math.floor((cap - (new_tat - now)) / emission), new_tat - now}
end
local new_tat = tat + emission
local wait = new_tat - now - cap
if max_wait > 0 and wait <= max_wait then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
  return {-1, 0, wait}
end
return {0, 0, wait}
"#;

/// Gives back `ARGV[1]` microseconds of budget (a request refused by a later limit, or a
/// reserved slot nobody will use).
const REFUND: &str = r#"
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', tat - tonumber(ARGV[1])), 'KEEPTTL')
end
return 1
"#;

/// Registers this node (`ARGV[1]`) as alive and answers how many nodes were seen in the
/// last `ARGV[2]` milliseconds.
const PRESENCE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return redis.call('ZCARD', KEYS[1])
"#;

/// How long Redis is left alone after a failure before the next request tries again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// How often a node says it is alive, and after how long without that it is gone.
const PRESENCE_EVERY: Duration = Duration::from_secs(2);
const PRESENCE_TTL_MS: u64 = 10_000;

/// What Redis answered for one request or lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granted {
    /// `n` requests granted (1 for a single request, up to the lease size for a lease).
    Some {
        n: u64,
        remaining: u64,
        reset: Duration,
    },
    /// A slot `wait` from now was reserved.
    Wait(Duration),
    /// Over the limit; the next request fits in `retry`.
    Limited(Duration),
}

/// The shared connection and what this node knows about Redis's health and the cluster.
pub struct RedisLimits {
    conn: ConnectionManager,
    gcra: Script,
    refund: Script,
    presence: Script,
    prefix: String,
    node_id: String,
    timeout: Duration,
    clock: Clock,
    /// Clock time before which Redis is not asked (it just failed); 0 = healthy.
    down_until: AtomicU64,
    last_log: AtomicU64,
    nodes: AtomicU32,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimits")
            .field("node", &self.node_id)
            .field("nodes", &self.nodes())
            .finish_non_exhaustive()
    }
}

/// Why Redis could not decide.
#[derive(Debug, thiserror::Error)]
pub enum RedisUnavailable {
    #[error("Redis failed recently; not retried yet")]
    Resting,
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

impl RedisLimits {
    /// Prepares the connection without connecting: a node starts even while Redis is down
    /// and connects when it comes back. `node_id` must be unique per running node.
    pub fn new(url: &str, node_id: &str, timeout: Duration) -> Result<Arc<RedisLimits>, String> {
        let client = Client::open(url).map_err(|e| format!("--redis `{url}`: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("--redis `{url}`: {e}"))?;
        // Up until a call says otherwise (the first presence tick runs at once).
        metrics::gauge!("tollgate_limit_redis_up").set(1.0);
        Ok(Arc::new(RedisLimits {
            conn,
            gcra: Script::new(GCRA),
            refund: Script::new(REFUND),
            presence: Script::new(PRESENCE),
            prefix: "tollgate:".to_string(),
            node_id: node_id.to_string(),
            timeout,
            clock: Clock::new(),
            down_until: AtomicU64::new(0),
            last_log: AtomicU64::new(0),
            nodes: AtomicU32::new(1),
        }))
    }

    /// Number of nodes sharing Redis, as last seen (1 until known).
    pub fn nodes(&self) -> u32 {
        self.nodes.load(Ordering::Relaxed).max(1)
    }

    /// Whether Redis answered the last time it was asked.
    pub fn healthy(&self) -> bool {
        self.down_until.load(Ordering::Relaxed) == 0
    }

    /// Keeps this node's presence fresh and the node count current, until the process ends.
    pub fn spawn_presence(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRESENCE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                match me.announce().await {
                    Ok(n) => me.nodes.store(n.max(1), Ordering::Relaxed),
                    Err(e) => me.failed(&e),
                }
            }
        })
    }

    /// Says this node is alive; answers how many are.
    pub async fn announce(&self) -> Result<u32, RedisUnavailable> {
        let mut conn = self.conn.clone();
        let mut inv = self.presence.key(format!("{}nodes", self.prefix));
        inv.arg(&self.node_id).arg(PRESENCE_TTL_MS);
        let n: u32 = tokio::time::timeout(self.timeout, inv.invoke_async(&mut conn))
            .await
            .map_err(|_| RedisUnavailable::Timeout(self.timeout))??;
        self.recovered();
        Ok(n)
    }

    fn key(&self, id: &str, key: &str) -> String {
        format!("{}rl:{id}:{key}", self.prefix)
    }

    /// One GCRA step in Redis for `wanted` requests (see [`GCRA`]).
    pub async fn take(
        &self,
        id: &str,
        key: &str,
        rate: &Rate,
        wanted: u64,
        max_wait: Duration,
    ) -> Result<Granted, RedisUnavailable> {
        if self.resting() {
            return Err(RedisUnavailable::Resting);
        }
        let emission_us = (rate.emission_ns() / 1000).max(1);
        let cap_us = emission_us.saturating_mul(rate.burst);
        let mut conn = self.conn.clone();
        let mut inv = self.gcra.key(self.key(id, key));
        inv.arg(emission_us)
            .arg(cap_us)
            .arg(u64::try_from(max_wait.as_micros()).unwrap_or(u64::MAX))
            .arg(wanted.max(1));
        let result: Result<(i64, i64, i64), RedisUnavailable> =
            match tokio::time::timeout(self.timeout, inv.invoke_async(&mut conn)).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(RedisUnavailable::Timeout(self.timeout)),
            };
        let (granted, remaining, micros) = match result {
            Ok(v) => v,
            Err(e) => {
                self.failed(&e);
                return Err(e);
            }
        };
        self.recovered();
        let micros = Duration::from_micros(u64::try_from(micros).unwrap_or(0));
        Ok(match granted {
            n if n >= 1 => Granted::Some {
                n: n as u64,
                remaining: u64::try_from(remaining).unwrap_or(0),
                reset: micros,
            },
            -1 => Granted::Wait(micros),
            _ => Granted::Limited(micros),
        })
    }

    /// Gives back `n` requests' share of budget (best effort).
    pub async fn refund(&self, id: &str, key: &str, rate: &Rate, n: u64) {
        if self.resting() {
            return;
        }
        let emission_us = (rate.emission_ns() / 1000).max(1);
        let mut conn = self.conn.clone();
        let mut inv = self.refund.key(self.key(id, key));
        inv.arg(emission_us.saturating_mul(n));
        match tokio::time::timeout(self.timeout, inv.invoke_async::<i64>(&mut conn)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => self.failed(&e.into()),
            Err(_) => self.failed(&RedisUnavailable::Timeout(self.timeout)),
        }
    }

    fn resting(&self) -> bool {
        let until = self.down_until.load(Ordering::Relaxed);
        until != 0 && self.clock.now_ns() < until
    }

    fn recovered(&self) {
        if self.down_until.swap(0, Ordering::Relaxed) != 0 {
            tracing::info!("Redis answers again; cluster limits are shared again");
            metrics::gauge!("tollgate_limit_redis_up").set(1.0);
        }
    }

    fn failed(&self, err: &RedisUnavailable) {
        let now = self.clock.now_ns();
        let rest = u64::try_from(RETRY_AFTER_FAILURE.as_nanos()).unwrap_or(u64::MAX);
        self.down_until.store(now + rest, Ordering::Relaxed);
        metrics::counter!("tollgate_limit_redis_errors_total").increment(1);
        metrics::gauge!("tollgate_limit_redis_up").set(0.0);
        // One line per ten seconds at most: an outage must not flood the log.
        let last = self.last_log.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 10_000_000_000)
            && self
                .last_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = %err,
                nodes = self.nodes(),
                "Redis unreachable: cluster limits fall back to this node's share"
            );
        }
    }
}
