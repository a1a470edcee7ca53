//! One configured rate limit: its rate, where its counters live, and what happens to
//! requests over it. The gateway asks [`Limiter::check`] once per request and key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::Clock;
use crate::gcra::{Rate, Step};
use crate::local::{DEFAULT_MAX_KEYS, LocalLimiter, LocalStep};
use crate::redis::{Granted, RedisLimits};

/// Where a limiter keeps its counters (mirrors the configuration's `scope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Local,
    Cluster,
    ClusterLease { size: u64, ttl: Duration },
}

/// A limiter's fixed settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Names the limiter's counters in Redis; the same on every node for the same policy.
    pub id: String,
    pub rate: Rate,
    pub scope: Scope,
    /// `Some` for `mode: queue`: the longest wait and how many may wait at once.
    pub queue: Option<(Duration, u32)>,
}

/// What the limit says about one request.
#[derive(Debug)]
pub enum Verdict {
    /// Go ahead now.
    Allowed(Report),
    /// Go ahead after `wait`; hold the slot until then (it counts toward the queue).
    Wait(Duration, QueueSlot),
    /// Over the limit: 429, retry after the duration.
    Limited(Report, Duration),
    /// No room to wait or to track the caller: 503.
    Overloaded,
}

impl Verdict {
    /// Over the limit until `retry`.
    fn limited(retry: Duration) -> Verdict {
        Verdict::Limited(
            Report {
                remaining: 0,
                reset: retry,
            },
            retry,
        )
    }
}

/// The state of a limit after a request, for the `RateLimit` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    pub remaining: u64,
    /// Until the budget is whole again.
    pub reset: Duration,
}

/// A place in a limiter's queue; released when dropped.
#[derive(Debug)]
pub struct QueueSlot(Arc<AtomicU32>);

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a check ended up being decided, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Local,
    Redis,
    Lease,
    Fallback,
}

#[derive(Clone, Copy, Debug)]
struct Lease {
    left: u64,
    expires: u64,
    remaining: u64,
    reset_at: u64,
    /// Redis said the budget is spent until then: refuse here without asking again.
    limited_until: u64,
    /// A request is fetching a lease for this key: others ask Redis for one request only,
    /// so a burst does not stack several leases on one node.
    fetching: bool,
}

impl Lease {
    const EMPTY: Lease = Lease {
        left: 0,
        expires: 0,
        remaining: 0,
        reset_at: 0,
        limited_until: 0,
        fetching: false,
    };
}

/// Clears a key's `fetching` mark when the fetch ends, however it ends.
struct Fetching<'a> {
    leases: &'a Mutex<HashMap<u64, Lease>>,
    hash: u64,
}

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = leases.get_mut(&self.hash) {
            l.fetching = false;
        }
    }
}

pub struct Limiter {
    spec: Spec,
    clock: Clock,
    /// `local` scope: the counters; cluster scopes: the fallback while Redis is away.
    local: LocalLimiter,
    leases: Mutex<HashMap<u64, Lease>>,
    queued: Arc<AtomicU32>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("spec", &self.spec).finish()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Limiter {
    pub fn new(spec: Spec) -> Limiter {
        Limiter {
            spec,
            clock: Clock::new(),
            local: LocalLimiter::new(DEFAULT_MAX_KEYS),
            leases: Mutex::new(HashMap::new()),
            queued: Arc::new(AtomicU32::new(0)),
        }
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Requests waiting in this limiter's queue now.
    pub fn queued(&self) -> u32 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Decides one request for `key`. `redis` is the cluster's store, when the node has one;
    /// without it (or while it is unreachable) cluster scopes use this node's share.
    pub async fn check(&self, key: &str, redis: Option<&RedisLimits>) -> (Verdict, Path) {
        match (self.spec.scope, redis) {
            (Scope::Local, _) => (self.check_local(key, &self.spec.rate), Path::Local),
            (Scope::Cluster, Some(r)) => match self.check_redis(key, r).await {
                Some(v) => (v, Path::Redis),
                None => (self.fallback(key, r.nodes()), Path::Fallback),
            },
            (Scope::ClusterLease { size, ttl }, Some(r)) => {
                match self.check_lease(key, r, size, ttl).await {
                    Some(v) => v,
                    None => (self.fallback(key, r.nodes()), Path::Fallback),
                }
            }
            // A node without Redis: the whole limit applies on this node.
            (_, None) => (self.check_local(key, &self.spec.rate), Path::Local),
        }
    }

    /// Gives back a request this limiter let through and another limit refused.
    pub async fn refund(&self, key: &str, redis: Option<&RedisLimits>, path: Path) {
        match path {
            Path::Local | Path::Fallback => {
                let rate = match path {
                    Path::Fallback => self.spec.rate.share(redis.map_or(1, |r| r.nodes())),
                    _ => self.spec.rate,
                };
                self.local.refund(self.local.hash(key), &rate);
            }
            Path::Redis => {
                if let Some(r) = redis {
                    r.refund(&self.spec.id, key, &self.spec.rate, 1).await;
                }
            }
            Path::Lease => {
                let hash = self.local.hash(key);
                let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(l) = leases.get_mut(&hash) {
                    l.left += 1;
                }
            }
        }
    }

    fn fallback(&self, key: &str, nodes: u32) -> Verdict {
        metrics::counter!("tollgate_limit_fallback_total").increment(1);
        self.check_local(key, &self.spec.rate.share(nodes))
    }

    fn check_local(&self, key: &str, rate: &Rate) -> Verdict {
        let hash = self.local.hash(key);
        let max_wait = self.spec.queue.map_or(0, |(w, _)| nanos(w));
        match self.local.check(hash, self.clock.now_ns(), rate, max_wait) {
            LocalStep::Full => Verdict::Overloaded,
            LocalStep::Step(Step::Allowed {
                remaining,
                reset_ns,
            }) => Verdict::Allowed(Report {
                remaining,
                reset: Duration::from_nanos(reset_ns),
            }),
            LocalStep::Step(Step::Limited { retry_ns, reset_ns }) => Verdict::Limited(
                Report {
                    remaining: 0,
                    reset: Duration::from_nanos(reset_ns),
                },
                Duration::from_nanos(retry_ns),
            ),
            LocalStep::Step(Step::Wait { wait_ns }) => match self.enqueue() {
                Some(slot) => Verdict::Wait(Duration::from_nanos(wait_ns), slot),
                None => {
                    self.local.refund(hash, rate);
                    Verdict::Overloaded
                }
            },
        }
    }

    fn enqueue(&self) -> Option<QueueSlot> {
        let (_, max) = self.spec.queue?;
        let before = self.queued.fetch_add(1, Ordering::Relaxed);
        let slot = QueueSlot(self.queued.clone());
        (before < max).then_some(slot)
    }

    async fn check_redis(&self, key: &str, redis: &RedisLimits) -> Option<Verdict> {
        let max_wait = self.spec.queue.map_or(Duration::ZERO, |(w, _)| w);
        let granted = redis
            .take(&self.spec.id, key, &self.spec.rate, 1, max_wait)
            .await
            .ok()?;
        Some(match granted {
            Granted::Some {
                remaining, reset, ..
            } => Verdict::Allowed(Report { remaining, reset }),
            Granted::Limited(retry) => Verdict::limited(retry),
            Granted::Wait(wait) => match self.enqueue() {
                Some(slot) => Verdict::Wait(wait, slot),
                None => {
                    redis.refund(&self.spec.id, key, &self.spec.rate, 1).await;
                    Verdict::Overloaded
                }
            },
        })
    }

    async fn check_lease(
        &self,
        key: &str,
        redis: &RedisLimits,
        size: u64,
        ttl: Duration,
    ) -> Option<(Verdict, Path)> {
        let hash = self.local.hash(key);
        let now = self.clock.now_ns();
        let fetcher = match self.take_leased(hash, now) {
            Ok(v) => return Some((v, Path::Lease)),
            Err(fetcher) => fetcher,
        };
        let _fetching = fetcher.then_some(Fetching {
            leases: &self.leases,
            hash,
        });
        let wanted = if fetcher { size } else { 1 };
        let granted = redis
            .take(&self.spec.id, key, &self.spec.rate, wanted, Duration::ZERO)
            .await
            .ok()?;
        Some(match granted {
            Granted::Some {
                n,
                remaining,
                reset,
            } => {
                let now = self.clock.now_ns();
                let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
                let lease = leases.entry(hash).or_insert(Lease::EMPTY);
                if n > 1 {
                    // Tokens of an earlier lease that are still valid stay usable.
                    if lease.expires <= now {
                        lease.left = 0;
                    }
                    lease.left += n - 1;
                    lease.expires = now.saturating_add(nanos(ttl));
                }
                lease.remaining = remaining;
                lease.reset_at = now.saturating_add(nanos(reset));
                (
                    Verdict::Allowed(Report {
                        remaining: remaining + lease.left,
                        reset,
                    }),
                    Path::Redis,
                )
            }
            Granted::Limited(retry) => {
                let now = self.clock.now_ns();
                let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
                if leases.len() < DEFAULT_MAX_KEYS {
                    let lease = leases.entry(hash).or_insert(Lease::EMPTY);
                    // Ask again when a whole lease has built up, not for each request that
                    // trickles in: over the limit, that keeps Redis calls per lease, not
                    // per request. What builds up meanwhile stays in Redis for any node.
                    let refill = self.spec.rate.emission_ns().saturating_mul(wanted - 1);
                    lease.limited_until = now.saturating_add(nanos(retry)).saturating_add(refill);
                }
                (Verdict::limited(retry), Path::Redis)
            }
            // Leases never queue (validation refuses queue with cluster_lease).
            Granted::Wait(wait) => (Verdict::limited(wait), Path::Redis),
        })
    }

    /// Serves one request from the key's lease (or its remembered refusal); otherwise says
    /// whether this request should fetch the next lease (`Err(true)`) or, with a fetch
    /// already under way, ask Redis for itself alone (`Err(false)`).
    fn take_leased(&self, hash: u64, now: u64) -> Result<Verdict, bool> {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        if !leases.contains_key(&hash) && leases.len() >= DEFAULT_MAX_KEYS {
            leases.retain(|_, l| {
                l.fetching || l.limited_until > now || (l.expires > now && l.left > 0)
            });
            if leases.len() >= DEFAULT_MAX_KEYS {
                return Err(false);
            }
        }
        let lease = leases.entry(hash).or_insert(Lease::EMPTY);
        if now < lease.limited_until {
            // Nothing is left in Redis before then; asking would only cost a round trip.
            let retry = Duration::from_nanos(lease.limited_until - now);
            return Ok(Verdict::limited(retry));
        }
        if lease.left > 0 && lease.expires > now {
            lease.left -= 1;
            return Ok(Verdict::Allowed(Report {
                remaining: lease.remaining + lease.left,
                reset: Duration::from_nanos(lease.reset_at.saturating_sub(now)),
            }));
        }
        let fetcher = !lease.fetching;
        lease.fetching = true;
        Err(fetcher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(limit: u64, window: Duration, burst: u64, queue: Option<(Duration, u32)>) -> Limiter {
        Limiter::new(Spec {
            id: "t".into(),
            rate: Rate::new(limit, window, burst),
            scope: Scope::Local,
            queue,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn refills_continuously_on_tokio_time() {
        let l = local(2, Duration::from_secs(1), 2, None);
        assert!(matches!(l.check("k", None).await.0, Verdict::Allowed(_)));
        assert!(matches!(l.check("k", None).await.0, Verdict::Allowed(_)));
        let Verdict::Limited(_, retry) = l.check("k", None).await.0 else {
            panic!("third is over")
        };
        assert_eq!(retry, Duration::from_millis(500));
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(matches!(l.check("k", None).await.0, Verdict::Limited(..)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(matches!(l.check("k", None).await.0, Verdict::Allowed(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn queue_hands_out_slots_in_order_and_stays_bounded() {
        let l = local(
            10,
            Duration::from_secs(1),
            1,
            Some((Duration::from_millis(350), 2)),
        );
        assert!(matches!(l.check("k", None).await.0, Verdict::Allowed(_)));
        let Verdict::Wait(w1, s1) = l.check("k", None).await.0 else {
            panic!()
        };
        let Verdict::Wait(w2, s2) = l.check("k", None).await.0 else {
            panic!()
        };
        assert_eq!(
            (w1, w2),
            (Duration::from_millis(100), Duration::from_millis(200))
        );
        assert_eq!(l.queued(), 2);
        // Two wait already: the third finds the queue full.
        assert!(matches!(l.check("k", None).await.0, Verdict::Overloaded));
        drop(s1);
        // Its reservation was given back, so the next slot is 300 ms away: within max_wait.
        let Verdict::Wait(w3, _s3) = l.check("k", None).await.0 else {
            panic!()
        };
        assert_eq!(w3, Duration::from_millis(300));
        drop(s2);
        // 400 ms away is over max_wait: refused at once.
        assert!(matches!(l.check("k", None).await.0, Verdict::Limited(..)));
    }

    #[tokio::test(start_paused = true)]
    async fn refund_restores_one_request() {
        let l = local(1, Duration::from_secs(60), 1, None);
        let (v, path) = l.check("k", None).await;
        assert!(matches!(v, Verdict::Allowed(_)));
        l.refund("k", None, path).await;
        assert!(matches!(l.check("k", None).await.0, Verdict::Allowed(_)));
        assert!(matches!(l.check("k", None).await.0, Verdict::Limited(..)));
    }

    #[tokio::test(start_paused = true)]
    async fn cluster_scope_without_redis_uses_the_whole_limit_locally() {
        let l = Limiter::new(Spec {
            id: "c".into(),
            rate: Rate::new(3, Duration::from_secs(60), 3),
            scope: Scope::Cluster,
            queue: None,
        });
        let mut ok = 0;
        for _ in 0..5 {
            let (v, path) = l.check("k", None).await;
            assert_eq!(path, Path::Local);
            ok += usize::from(matches!(v, Verdict::Allowed(_)));
        }
        assert_eq!(ok, 3);
    }
}
