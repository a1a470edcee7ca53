//! Traffic-control policies: `rate_limit`, `quota`, `circuit_breaker`, and the limits an
//! upstream puts on the traffic sent to it (concurrency, spike arrest).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::Duration;

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Whom a limit counts: each distinct value gets its own budget.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum LimitBy {
    /// The authenticated app; callers without one are counted by client address.
    #[default]
    App,
    /// The developer owning the authenticated app; without one, the client address.
    Developer,
    /// The client address (after trusted proxies).
    Ip,
    /// A request header's value; requests without it share one budget.
    Header(String),
    /// Everything that reaches the policy shares one budget.
    Api,
}

impl fmt::Display for LimitBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitBy::App => f.write_str("app"),
            LimitBy::Developer => f.write_str("developer"),
            LimitBy::Ip => f.write_str("ip"),
            LimitBy::Header(h) => write!(f, "header:{h}"),
            LimitBy::Api => f.write_str("api"),
        }
    }
}

impl FromStr for LimitBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "app" => LimitBy::App,
            "developer" => LimitBy::Developer,
            "ip" => LimitBy::Ip,
            "api" => LimitBy::Api,
            other => match other.strip_prefix("header:") {
                Some(name) if !name.is_empty() => LimitBy::Header(name.to_ascii_lowercase()),
                _ => {
                    return Err(format!(
                        "`{other}` is not a limit key: use app, developer, ip, header:NAME or api"
                    ));
                }
            },
        })
    }
}

impl Serialize for LimitBy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LimitBy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What happens to a request over the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitMode {
    /// Answer 429 at once.
    #[default]
    Reject,
    /// Wait in a bounded FIFO queue for at most `max_wait`, then go through at the limit's
    /// pace.
    Queue,
}

/// Where a limit's counters live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    /// On this node: exact, no network; N nodes allow N times the limit.
    #[default]
    Local,
    /// In Redis, one atomic step per request on the Redis server's clock: exact across nodes.
    Cluster,
    /// Each node leases a slice of the budget from Redis and serves it locally: fewer
    /// round trips, with a bounded overshoot (docs/traffic.md).
    ClusterLease,
}

/// `rate_limit`: at most `limit` requests per `window` for each caller (GCRA: the budget
/// refills continuously; up to `burst` requests may arrive at once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub limit: u64,
    pub window: Duration,
    #[serde(default, skip_serializing_if = "is_default")]
    pub by: LimitBy,
    /// Requests that may arrive at once (default: `limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: LimitMode,
    /// Longest wait in the queue (`mode: queue`; default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<Duration>,
    /// Requests that may wait at once on this node (`mode: queue`; default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<u32>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub scope: LimitScope,
    /// Requests a node leases at a time (`scope: cluster_lease`; default: 2% of the
    /// burst, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_size: Option<u64>,
    /// How long a lease may be served before its rest is given up (`scope: cluster_lease`;
    /// default: a tenth of the window, at most 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ttl: Option<Duration>,
}

impl RateLimit {
    pub fn burst(&self) -> u64 {
        self.burst.unwrap_or(self.limit).max(1)
    }

    pub fn max_wait(&self) -> std::time::Duration {
        self.max_wait
            .map(Duration::as_std)
            .unwrap_or(std::time::Duration::from_secs(1))
    }

    pub fn max_queue(&self) -> u32 {
        self.max_queue.unwrap_or(1000)
    }

    pub fn lease_size(&self) -> u64 {
        self.lease_size.unwrap_or(self.burst() / 50).max(1)
    }

    pub fn lease_ttl(&self) -> std::time::Duration {
        self.lease_ttl
            .map(Duration::as_std)
            .unwrap_or_else(|| (self.window.as_std() / 10).min(std::time::Duration::from_secs(1)))
    }
}

/// The calendar period a quota counts over, in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    Day,
    Month,
}

/// `quota`: at most `limit` requests per calendar day or month (UTC) for each caller,
/// counted durably: a restart does not reset it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub limit: u64,
    pub period: QuotaPeriod,
    #[serde(default, skip_serializing_if = "is_default")]
    pub by: LimitBy,
}

fn default_error_ratio() -> f64 {
    0.5
}

fn default_min_requests() -> u32 {
    20
}

fn default_breaker_window() -> Duration {
    Duration::from_secs(10)
}

fn default_consecutive() -> u32 {
    5
}

fn default_open_for() -> Duration {
    Duration::from_secs(30)
}

fn default_probes() -> u32 {
    3
}

fn default_failure_statuses() -> Vec<u16> {
    vec![500, 502, 503, 504]
}

/// `circuit_breaker`: stop sending to an upstream that keeps failing. Opens when the
/// error ratio over `window` reaches `error_ratio` (after `min_requests`), or after
/// `consecutive_failures` in a row; answers 503 while open; after `open_for` lets
/// `half_open_probes` requests through and closes when they all succeed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    #[serde(default = "default_error_ratio")]
    pub error_ratio: f64,
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    #[serde(default = "default_breaker_window")]
    pub window: Duration,
    #[serde(default = "default_consecutive")]
    pub consecutive_failures: u32,
    #[serde(default = "default_open_for")]
    pub open_for: Duration,
    #[serde(default = "default_probes")]
    pub half_open_probes: u32,
    /// Upstream answers that count as failures (connection errors and timeouts always do).
    #[serde(default = "default_failure_statuses")]
    pub failure_statuses: Vec<u16>,
}

/// Spike arrest: smooths traffic to an upstream to at most `rate` requests per `per`,
/// with at most `burst` at once (default 1: evenly spaced).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeArrest {
    pub rate: u64,
    #[serde(default = "one_second")]
    pub per: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

/// What an upstream accepts from one node: beyond it, requests get 503 at once rather than
/// piling onto a struggling service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamLimits {
    /// Requests in flight to this upstream at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spike_arrest: Option<SpikeArrest>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_keys_parse_and_print() {
        for s in ["app", "developer", "ip", "api", "header:x-tenant"] {
            assert_eq!(s.parse::<LimitBy>().unwrap().to_string(), s);
        }
        assert!("header:".parse::<LimitBy>().is_err());
        assert!(
            "user"
                .parse::<LimitBy>()
                .unwrap_err()
                .contains("not a limit key")
        );
    }

    #[test]
    fn rate_limit_defaults() {
        let r: RateLimit = serde_json::from_str(r#"{"limit":100,"window":"1m"}"#).unwrap();
        assert_eq!(r.by, LimitBy::App);
        assert_eq!(r.burst(), 100);
        assert_eq!(r.lease_size(), 2);
        assert_eq!(r.lease_ttl(), std::time::Duration::from_secs(1));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"limit":100,"window":"1m"}"#
        );
    }
}
