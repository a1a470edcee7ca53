//! Checks of the traffic-control policies and upstream limits.

use super::Errors;
use crate::document::is_token;
use crate::traffic::UpstreamLimits;
use crate::traffic::{CircuitBreaker, LimitBy, LimitMode, LimitScope, Quota, RateLimit};

/// The longest window a rate limit may have: longer budgets are quotas.
const MAX_WINDOW_MS: u64 = 86_400_000;

fn check_by(by: &LimitBy, path: &str, errs: &mut Errors) {
    if let LimitBy::Header(h) = by
        && !is_token(h)
    {
        errs.push(path, format!("`{h}` is not a valid header name"));
    }
}

pub(super) fn check_rate_limit(r: &RateLimit, path: &str, errs: &mut Errors) {
    if r.limit == 0 {
        errs.push(
            format!("{path}.limit"),
            "limit must be above 0 (to block a route, use ip_restrict or acl)",
        );
    }
    let window = r.window.as_millis();
    if window == 0 {
        errs.push(format!("{path}.window"), "window must be above 0");
    } else if window > MAX_WINDOW_MS {
        errs.push(
            format!("{path}.window"),
            "window must be at most 1d; use a quota for longer periods",
        );
    } else if r.limit > 0 && u128::from(window) * 1_000_000 / u128::from(r.limit) == 0 {
        errs.push(
            format!("{path}.limit"),
            "more than one request per nanosecond cannot be limited; raise the window",
        );
    }
    if r.burst == Some(0) {
        errs.push(format!("{path}.burst"), "burst must be above 0");
    }
    check_by(&r.by, &format!("{path}.by"), errs);
    if r.mode != LimitMode::Queue && (r.max_wait.is_some() || r.max_queue.is_some()) {
        errs.push(
            format!("{path}.mode"),
            "max_wait and max_queue apply to mode: queue only",
        );
    }
    if r.mode == LimitMode::Queue {
        if r.max_wait.is_some_and(|w| w.as_millis() == 0) {
            errs.push(format!("{path}.max_wait"), "max_wait must be above 0");
        }
        if r.max_wait.is_some_and(|w| w.as_millis() > 60_000) {
            errs.push(
                format!("{path}.max_wait"),
                "max_wait must be at most 1m: a caller should not hang longer",
            );
        }
        if r.max_queue == Some(0) {
            errs.push(format!("{path}.max_queue"), "max_queue must be above 0");
        }
        if r.scope == LimitScope::ClusterLease {
            errs.push(
                format!("{path}.scope"),
                "mode: queue works with scope local or cluster, not cluster_lease",
            );
        }
    }
    if r.scope != LimitScope::ClusterLease && (r.lease_size.is_some() || r.lease_ttl.is_some()) {
        errs.push(
            format!("{path}.scope"),
            "lease_size and lease_ttl apply to scope: cluster_lease only",
        );
    }
    if r.lease_size == Some(0) {
        errs.push(format!("{path}.lease_size"), "lease_size must be above 0");
    }
    if r.lease_ttl.is_some_and(|t| t.as_millis() == 0) {
        errs.push(format!("{path}.lease_ttl"), "lease_ttl must be above 0");
    }
}

pub(super) fn check_quota(q: &Quota, path: &str, errs: &mut Errors) {
    if q.limit == 0 {
        errs.push(format!("{path}.limit"), "limit must be above 0");
    }
    check_by(&q.by, &format!("{path}.by"), errs);
}

pub(super) fn check_circuit_breaker(c: &CircuitBreaker, path: &str, errs: &mut Errors) {
    if !(c.error_ratio > 0.0 && c.error_ratio <= 1.0) {
        errs.push(
            format!("{path}.error_ratio"),
            "error_ratio must be above 0 and at most 1",
        );
    }
    if c.min_requests == 0 {
        errs.push(
            format!("{path}.min_requests"),
            "min_requests must be above 0",
        );
    }
    if c.window.as_millis() < 1000 {
        errs.push(format!("{path}.window"), "window must be at least 1s");
    }
    if c.window.as_millis() > 3_600_000 {
        errs.push(format!("{path}.window"), "window must be at most 1h");
    }
    if c.consecutive_failures == 0 {
        errs.push(
            format!("{path}.consecutive_failures"),
            "consecutive_failures must be above 0",
        );
    }
    if c.open_for.as_millis() == 0 {
        errs.push(format!("{path}.open_for"), "open_for must be above 0");
    }
    if c.half_open_probes == 0 {
        errs.push(
            format!("{path}.half_open_probes"),
            "half_open_probes must be above 0",
        );
    }
    for (i, s) in c.failure_statuses.iter().enumerate() {
        if !(100..=599).contains(s) {
            errs.push(
                format!("{path}.failure_statuses[{i}]"),
                format!("{s} is not an HTTP status"),
            );
        }
    }
}

pub(super) fn check_upstream_limits(l: &UpstreamLimits, path: &str, errs: &mut Errors) {
    if l.max_concurrent == Some(0) {
        errs.push(
            format!("{path}.max_concurrent"),
            "max_concurrent must be above 0",
        );
    }
    if let Some(s) = &l.spike_arrest {
        if s.rate == 0 {
            errs.push(format!("{path}.spike_arrest.rate"), "rate must be above 0");
        }
        if s.per.as_millis() == 0 {
            errs.push(format!("{path}.spike_arrest.per"), "per must be above 0");
        }
        if s.burst == Some(0) {
            errs.push(
                format!("{path}.spike_arrest.burst"),
                "burst must be above 0",
            );
        }
    }
}
