//! One target's live state: health and in-flight count. Kept in the [`super::Registry`]
//! by (upstream, URL) so it outlives snapshots: a target ejected before an apply is still
//! ejected after it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::uri::Authority;

/// Milliseconds since the process started, a cheap clock for health bookkeeping.
pub(crate) fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

pub struct TargetState {
    pub url: String,
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    pub authority: Authority,
    /// `Host` sent upstream, made once.
    pub host_header: http::HeaderValue,
    healthy: AtomicBool,
    /// Failed requests in a row (passive checks).
    passive_failures: AtomicU32,
    /// Probe results in a row (active checks).
    probe_failures: AtomicU32,
    probe_successes: AtomicU32,
    down_since_ms: AtomicU64,
    pub in_flight: AtomicUsize,
    gauge: metrics::Gauge,
}

impl std::fmt::Debug for TargetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetState")
            .field("url", &self.url)
            .field("healthy", &self.is_healthy())
            .finish()
    }
}

impl TargetState {
    pub fn new(upstream: &str, url: &str, authority: Authority) -> Self {
        let gauge = metrics::gauge!(
            "tollgate_upstream_target_healthy",
            "upstream" => upstream.to_string(),
            "target" => url.to_string()
        );
        gauge.set(1.0);
        TargetState {
            url: url.to_string(),
            scheme: if url.starts_with("https://") {
                http::uri::Scheme::HTTPS
            } else {
                http::uri::Scheme::HTTP
            },
            host_header: http::HeaderValue::from_str(authority.as_str())
                .unwrap_or_else(|_| http::HeaderValue::from_static("localhost")),
            authority,
            healthy: AtomicBool::new(true),
            passive_failures: AtomicU32::new(0),
            probe_failures: AtomicU32::new(0),
            probe_successes: AtomicU32::new(0),
            down_since_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            gauge,
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn set_healthy(&self, healthy: bool) {
        if self.healthy.swap(healthy, Ordering::Relaxed) != healthy {
            self.gauge.set(if healthy { 1.0 } else { 0.0 });
            if healthy {
                tracing::info!(target_url = %self.url, "target back in rotation");
            } else {
                self.down_since_ms.store(now_ms(), Ordering::Relaxed);
                // Coming back takes the full run of good probes, however it left.
                self.probe_successes.store(0, Ordering::Relaxed);
                tracing::warn!(target_url = %self.url, "target taken out of rotation");
            }
        }
    }

    /// Whether the balancer may pick this target. Without active probes, a target ejected
    /// by passive checks gets one more chance after `cooldown`.
    pub fn eligible(&self, cooldown: Option<Duration>) -> bool {
        if self.is_healthy() {
            return true;
        }
        match cooldown {
            Some(c) => {
                let since = self.down_since_ms.load(Ordering::Relaxed);
                if now_ms().saturating_sub(since)
                    >= u64::try_from(c.as_millis()).unwrap_or(u64::MAX)
                {
                    self.passive_failures.store(0, Ordering::Relaxed);
                    self.set_healthy(true);
                    true
                } else {
                    false
                }
            }
            None => false,
        }
    }

    /// A request to this target failed in a way that counts against its health.
    pub fn record_failure(&self, threshold: Option<u32>) {
        let n = self.passive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(t) = threshold
            && n >= t
        {
            self.set_healthy(false);
        }
    }

    pub fn record_success(&self) {
        if self.passive_failures.load(Ordering::Relaxed) != 0 {
            self.passive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// The result of one active probe.
    pub fn record_probe(&self, ok: bool, healthy_after: u32, unhealthy_after: u32) {
        if ok {
            self.probe_failures.store(0, Ordering::Relaxed);
            let n = self.probe_successes.fetch_add(1, Ordering::Relaxed) + 1;
            if !self.is_healthy() && n >= healthy_after {
                self.passive_failures.store(0, Ordering::Relaxed);
                self.set_healthy(true);
            }
        } else {
            self.probe_successes.store(0, Ordering::Relaxed);
            let n = self.probe_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if self.is_healthy() && n >= unhealthy_after {
                self.set_healthy(false);
            }
        }
    }
}
