//! The limit phase (DESIGN §2): rate limits, quotas, and the limits an upstream puts on
//! traffic (concurrency, spike arrest). Compiled per route; the state behind them lives
//! in [`LimitsShared`] and outlives snapshots, so a configuration change that keeps a
//! limit keeps its counters.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use metrics::Counter;
use tollgate_limits::{
    Limiter, Path, Period, QuotaVerdict, Quotas, Rate, RedisLimits, Scope, Spec, Verdict,
};
use tollgate_model::policy::{LimitBy, LimitMode, LimitScope, Quota, QuotaPeriod, RateLimit};
use tollgate_model::traffic::UpstreamLimits;

use crate::auth::Identity;
use crate::breaker::Breaker;
use crate::error::{Limited, ProxyError};

pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Limit state shared by every snapshot.
#[derive(Default)]
pub struct LimitsShared {
    limiters: Mutex<HashMap<String, Arc<Limiter>>>,
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
    guards: Mutex<HashMap<String, Arc<UpstreamGuard>>>,
    pub quotas: Arc<Quotas>,
    /// Cluster limits; set once at start when the node has `--redis`.
    pub redis: OnceLock<Arc<RedisLimits>>,
    /// Where plan quotas report reaching 80% and 100%.
    pub notices: QuotaNotices,
}

/// A subscribed app's plan quota reached a threshold (80 or 100 percent) in a period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaNotice {
    pub app: String,
    pub product: String,
    pub plan: String,
    /// `2026-11` or `2026-11-26`.
    pub period: String,
    pub percent: u8,
    pub used: u64,
    pub limit: u64,
}

/// Thresholds reached and not yet reported, handed to whoever listens (the binary raises
/// notices and webhooks from them). Each threshold of a counter and period is handed over
/// once per node; the store makes it once per cluster.
#[derive(Default)]
pub struct QuotaNotices {
    sent: Mutex<std::collections::HashSet<(String, Arc<str>, u8)>>,
    tx: OnceLock<tokio::sync::mpsc::Sender<QuotaNotice>>,
}

/// The threshold `used` of `limit` has reached: 100, 80, or none.
fn threshold(used: u64, limit: u64) -> Option<u8> {
    if used >= limit {
        Some(100)
    } else if used.saturating_mul(5) >= limit.saturating_mul(4) {
        Some(80)
    } else {
        None
    }
}

/// Thresholds remembered per node before the memory is cleared (and reports repeat, which
/// the store then ignores).
const MAX_SENT: usize = 1 << 16;

impl QuotaNotices {
    /// Starts listening: thresholds reached from now on arrive on the answered receiver.
    pub fn subscribe(&self) -> Option<tokio::sync::mpsc::Receiver<QuotaNotice>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        self.tx.set(tx).ok().map(|()| rx)
    }

    fn observe(
        &self,
        counter: &str,
        period: Arc<str>,
        percent: u8,
        used: u64,
        q: &CompiledQuota,
        app: &str,
    ) {
        let Some(plan) = &q.plan else { return };
        let Some(tx) = self.tx.get() else { return };
        let key = (counter.to_string(), period.clone(), percent);
        {
            let mut sent = lock(&self.sent);
            if sent.contains(&key) {
                return;
            }
            if sent.len() >= MAX_SENT {
                sent.clear();
            }
            sent.insert(key.clone());
        }
        let notice = QuotaNotice {
            app: app.to_string(),
            product: plan.0.clone(),
            plan: plan.1.clone(),
            period: period.to_string(),
            percent,
            used: used.min(q.limit),
            limit: q.limit,
        };
        if tx.try_send(notice).is_err() {
            // Not handed over: let a later request try again.
            lock(&self.sent).remove(&key);
        }
    }
}

impl std::fmt::Debug for LimitsShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitsShared").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A short, stable hash (FNV-1a) for names that must be the same on every node.
pub(crate) fn stable_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl LimitsShared {
    fn limiter(&self, spec: Spec) -> Arc<Limiter> {
        let key = format!("{spec:?}");
        lock(&self.limiters)
            .entry(key)
            .or_insert_with(|| Arc::new(Limiter::new(spec)))
            .clone()
    }

    pub(crate) fn breaker(&self, key: String, make: impl FnOnce() -> Breaker) -> Arc<Breaker> {
        lock(&self.breakers)
            .entry(key)
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }

    pub(crate) fn guard(&self, upstream: &str, limits: &UpstreamLimits) -> Arc<UpstreamGuard> {
        let key = format!("{upstream}|{limits:?}");
        lock(&self.guards)
            .entry(key)
            .or_insert_with(|| Arc::new(UpstreamGuard::new(limits)))
            .clone()
    }

    /// Forgets state that no installed snapshot uses any more.
    pub fn retain(&self, used: &Used) {
        lock(&self.limiters).retain(|k, _| used.limiters.contains(k));
        lock(&self.breakers).retain(|k, _| used.breakers.contains(k));
        lock(&self.guards).retain(|k, _| used.guards.contains(k));
    }

    fn redis(&self) -> Option<&RedisLimits> {
        self.redis.get().map(|r| &**r)
    }
}

/// The state keys one snapshot uses, to retain them when it is installed.
#[derive(Debug, Default)]
pub struct Used {
    pub limiters: HashSet<String>,
    pub breakers: HashSet<String>,
    pub guards: HashSet<String>,
}

struct CompiledLimit {
    limiter: Arc<Limiter>,
    by: LimitBy,
    name: String,
}

struct CompiledQuota {
    id: String,
    by: LimitBy,
    period: Period,
    limit: u64,
    name: String,
    /// `(product, plan)` for a plan's quota: reaching 80% and 100% is reported.
    plan: Option<(String, String)>,
}

/// Rejection counters of one route, resolved at compile time.
struct LimitMetrics {
    rate_limit: Counter,
    quota: Counter,
    queue_full: Counter,
}

/// The limits that apply to one route.
pub struct RouteLimits {
    limits: Vec<CompiledLimit>,
    quotas: Vec<CompiledQuota>,
    /// `RateLimit-Policy`, the same on every answer of the route.
    policy_header: Option<HeaderValue>,
    metrics: LimitMetrics,
}

impl std::fmt::Debug for RouteLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteLimits")
            .field("limits", &self.limits.len())
            .field("quotas", &self.quotas.len())
            .finish()
    }
}

pub(crate) fn rejection_counter(api: &str, reason: &'static str) -> Counter {
    metrics::counter!("tollgate_limit_rejections_total", "api" => api.to_string(), "reason" => reason)
}

/// `q` and `w` of a `RateLimit-Policy` item: whole seconds (a sub-second window is
/// scaled to one second).
fn quota_and_window(limit: u64, window: Duration) -> (u64, u64) {
    let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
    if ms < 1000 {
        (limit.saturating_mul(1000) / ms, 1)
    } else {
        (limit, ms.div_ceil(1000))
    }
}

impl RouteLimits {
    /// Marks these as a plan's limits: its quota reports reaching 80% and 100%.
    pub fn of_plan(mut self, product: &str, plan: &str) -> Self {
        for q in &mut self.quotas {
            q.plan = Some((product.to_string(), plan.to_string()));
        }
        self
    }

    /// Compiles the rate limits and quotas of the narrowest scope that has any of each.
    /// The locations name those scopes: they identify the counters, so every route that
    /// takes its limits from one place shares them.
    pub fn compile(
        api: &str,
        (location, quota_location): (&str, &str),
        rate_limits: &[&RateLimit],
        quotas: &[&Quota],
        shared: &LimitsShared,
        used: &mut Used,
    ) -> Option<RouteLimits> {
        if rate_limits.is_empty() && quotas.is_empty() {
            return None;
        }
        let mut policy = String::new();
        let mut names = HashSet::new();
        let mut unique = |base: String| {
            let mut name = base.clone();
            let mut n = 2;
            while !names.insert(name.clone()) {
                name = format!("{base}-{n}");
                n += 1;
            }
            name
        };
        let mut limits = Vec::new();
        for (i, r) in rate_limits.iter().enumerate() {
            let rate = Rate::new(r.limit, r.window.as_std(), r.burst());
            let scope = match r.scope {
                LimitScope::Local => Scope::Local,
                LimitScope::Cluster => Scope::Cluster,
                LimitScope::ClusterLease => Scope::ClusterLease {
                    size: r.lease_size(),
                    ttl: r.lease_ttl(),
                },
            };
            let id = stable_hash(&format!(
                "{location}#{i}|{}|{}|{}|{}",
                r.by,
                r.limit,
                r.window,
                r.burst()
            ));
            let spec = Spec {
                id,
                rate,
                scope,
                queue: (r.mode == LimitMode::Queue).then(|| (r.max_wait(), r.max_queue())),
            };
            used.limiters.insert(format!("{spec:?}"));
            let name = unique(format!("{}-{}", short_by(&r.by), r.window));
            let (q, w) = quota_and_window(r.limit, r.window.as_std());
            let _ = write!(
                policy,
                "{}\"{name}\";q={q};w={w}",
                if policy.is_empty() { "" } else { ", " }
            );
            limits.push(CompiledLimit {
                limiter: shared.limiter(spec),
                by: r.by.clone(),
                name,
            });
        }
        let quotas = quotas
            .iter()
            .map(|q| {
                let (period, secs, word) = match q.period {
                    QuotaPeriod::Day => (Period::Day, 86_400, "day"),
                    QuotaPeriod::Month => (Period::Month, 2_592_000, "month"),
                };
                let name = unique(format!("quota-{word}"));
                let _ = write!(
                    policy,
                    "{}\"{name}\";q={};w={secs}",
                    if policy.is_empty() { "" } else { ", " },
                    q.limit
                );
                CompiledQuota {
                    // The limit is not part of the id: raising a quota keeps what was used.
                    id: format!("{quota_location}|{}|{word}", q.by),
                    by: q.by.clone(),
                    period,
                    limit: q.limit,
                    name,
                    plan: None,
                }
            })
            .collect();
        Some(RouteLimits {
            limits,
            quotas,
            policy_header: HeaderValue::from_str(&policy).ok(),
            metrics: LimitMetrics {
                rate_limit: rejection_counter(api, "rate_limit"),
                quota: rejection_counter(api, "quota"),
                queue_full: rejection_counter(api, "queue_full"),
            },
        })
    }
}

impl RouteLimits {
    /// What a refusal by the limit `name` carries: `Retry-After` and the `RateLimit*`
    /// headers, with nothing left of that limit until `retry`.
    fn refusal(&self, name: &str, retry: Duration) -> Box<Limited> {
        let retry_after = ceil_secs(retry).max(1);
        let mut out = Limited {
            retry_after,
            headers: Vec::new(),
        };
        if let Some(p) = &self.policy_header {
            out.headers.push((RATELIMIT_POLICY.clone(), p.clone()));
        }
        if let Ok(v) = HeaderValue::from_str(&format!("\"{name}\";r=0;t={retry_after}")) {
            out.headers.push((RATELIMIT.clone(), v));
        }
        Box::new(out)
    }
}

fn short_by(by: &LimitBy) -> String {
    match by {
        LimitBy::Header(h) => format!("header-{h}"),
        other => other.to_string(),
    }
}

/// Longest key value kept as is; longer ones (header values) are hashed.
const MAX_KEY_LEN: usize = 128;

/// The budget a request counts against for `by`.
fn key_for(by: &LimitBy, identity: &Identity, ip: IpAddr, headers: &HeaderMap) -> String {
    match by {
        LimitBy::App => match &identity.app {
            Some(app) => format!("app:{}", app.name),
            None => format!("ip:{ip}"),
        },
        LimitBy::Developer => match &identity.app {
            Some(app) => format!("dev:{}", app.developer),
            None => format!("ip:{ip}"),
        },
        LimitBy::Ip => format!("ip:{ip}"),
        LimitBy::Header(name) => {
            let value = headers
                .get(name.as_str())
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            if value.len() > MAX_KEY_LEN {
                format!("h:#{}", stable_hash(&value))
            } else {
                format!("h:{value}")
            }
        }
        LimitBy::Api => "api".to_string(),
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// What the limit phase let through: headers for the answer.
#[derive(Debug, Default)]
pub struct Admitted {
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

struct Passed<'a> {
    limit: &'a CompiledLimit,
    key: String,
    path: Path,
}

/// Runs the route's rate limits and quotas for one request. Waits when a queueing limit
/// reserved a slot. A request refused by one limit gives back what the others counted.
pub async fn admit(
    limits: &RouteLimits,
    shared: &LimitsShared,
    identity: &Identity,
    ip: IpAddr,
    headers: &HeaderMap,
) -> Result<Admitted, ProxyError> {
    let redis = shared.redis();
    let mut passed: Vec<Passed<'_>> = Vec::with_capacity(limits.limits.len());
    let mut state = String::new();
    let mut wait = Duration::ZERO;
    let mut slots = Vec::new();
    let mut item = |name: &str, remaining: u64, reset: Duration| {
        let _ = write!(
            state,
            "{}\"{name}\";r={remaining};t={}",
            if state.is_empty() { "" } else { ", " },
            ceil_secs(reset)
        );
    };
    for limit in &limits.limits {
        let key = key_for(&limit.by, identity, ip, headers);
        let (verdict, path) = limit.limiter.check(&key, redis).await;
        match verdict {
            Verdict::Allowed(report) => item(&limit.name, report.remaining, report.reset),
            Verdict::Wait(d, slot) => {
                item(&limit.name, 0, d);
                wait = wait.max(d);
                slots.push(slot);
            }
            Verdict::Limited(_, retry) => {
                give_back(&passed, shared).await;
                limits.metrics.rate_limit.increment(1);
                let out = limits.refusal(&limit.name, retry);
                return Err(ProxyError::RateLimited(out));
            }
            Verdict::Overloaded => {
                give_back(&passed, shared).await;
                limits.metrics.queue_full.increment(1);
                return Err(ProxyError::Overloaded {
                    reason: "too many requests are waiting",
                    retry_after: 1,
                });
            }
        }
        passed.push(Passed { limit, key, path });
    }
    let counter = |q: &CompiledQuota| format!("{}|{}", q.id, key_for(&q.by, identity, ip, headers));
    for (i, q) in limits.quotas.iter().enumerate() {
        let c = counter(q);
        let watched = q.plan.is_some().then(|| c.clone());
        let verdict = shared.quotas.check(c, q.period, q.limit);
        if let (Some(c), Some(app)) = (watched, &identity.app) {
            let used = match verdict {
                QuotaVerdict::Allowed { remaining, .. } => q.limit - remaining.min(q.limit),
                QuotaVerdict::Exceeded { .. } => q.limit,
            };
            if let Some(reached) = threshold(used, q.limit) {
                // A jump past both (counts from other nodes) reports both, in order.
                let period = shared.quotas.period_label(q.period);
                for percent in [80, 100].into_iter().filter(|p| *p <= reached) {
                    shared
                        .notices
                        .observe(&c, period.clone(), percent, used, q, &app.name);
                }
            }
        }
        match verdict {
            QuotaVerdict::Allowed { remaining, reset } => item(&q.name, remaining, reset),
            QuotaVerdict::Exceeded { reset } => {
                give_back(&passed, shared).await;
                // The quotas before this one counted the request: take it back.
                for earlier in &limits.quotas[..i] {
                    shared.quotas.refund(&counter(earlier), earlier.period);
                }
                limits.metrics.quota.increment(1);
                let out = limits.refusal(&q.name, reset);
                let word = match q.period {
                    Period::Day => "daily",
                    Period::Month => "monthly",
                };
                return Err(ProxyError::QuotaExceeded(out, word));
            }
        }
    }
    let mut admitted = Admitted::default();
    if let Some(p) = &limits.policy_header {
        admitted.headers.push((RATELIMIT_POLICY.clone(), p.clone()));
    }
    if let Ok(v) = HeaderValue::from_str(&state) {
        admitted.headers.push((RATELIMIT.clone(), v));
    }
    if !wait.is_zero() {
        // The reserved slot: requests leave the queue in arrival order at the limit's pace.
        tokio::time::sleep(wait).await;
    }
    drop(slots);
    Ok(admitted)
}

async fn give_back(passed: &[Passed<'_>], shared: &LimitsShared) {
    for p in passed {
        p.limit.limiter.refund(&p.key, shared.redis(), p.path).await;
    }
}

/// What one upstream accepts from this node: requests in flight and a smoothed rate.
pub struct UpstreamGuard {
    max_concurrent: Option<u32>,
    in_flight: Arc<AtomicU32>,
    spike: Option<(
        tollgate_limits::local::LocalLimiter,
        Rate,
        tollgate_limits::clock::Clock,
    )>,
}

impl std::fmt::Debug for UpstreamGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamGuard")
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

/// A request in flight to a guarded upstream; released when dropped.
#[derive(Debug)]
pub struct InFlight(Option<Arc<AtomicU32>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(n) = &self.0 {
            n.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl UpstreamGuard {
    fn new(limits: &UpstreamLimits) -> UpstreamGuard {
        UpstreamGuard {
            max_concurrent: limits.max_concurrent,
            in_flight: Arc::new(AtomicU32::new(0)),
            spike: limits.spike_arrest.as_ref().map(|s| {
                (
                    tollgate_limits::local::LocalLimiter::new(1),
                    Rate::new(s.rate, s.per.as_std(), s.burst.unwrap_or(1)),
                    tollgate_limits::clock::Clock::new(),
                )
            }),
        }
    }

    /// Lets one request through to the upstream, or says why not (503).
    pub fn enter(&self, api: &str) -> Result<InFlight, ProxyError> {
        if let Some((limiter, rate, clock)) = &self.spike {
            use tollgate_limits::gcra::Step;
            use tollgate_limits::local::LocalStep;
            if let LocalStep::Step(Step::Limited { retry_ns, .. }) =
                limiter.check(0, clock.now_ns(), rate, 0)
            {
                rejection_counter(api, "spike_arrest").increment(1);
                return Err(ProxyError::Overloaded {
                    reason: "the service's spike arrest limit is reached",
                    retry_after: ceil_secs(Duration::from_nanos(retry_ns)).max(1),
                });
            }
        }
        let Some(max) = self.max_concurrent else {
            return Ok(InFlight(None));
        };
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        let ticket = InFlight(Some(self.in_flight.clone()));
        if before >= max {
            rejection_counter(api, "concurrency").increment(1);
            return Err(ProxyError::Overloaded {
                reason: "the service's concurrency limit is reached",
                retry_after: 1,
            });
        }
        Ok(ticket)
    }
}
