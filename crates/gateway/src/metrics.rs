//! Metric handles, resolved once per snapshot so the request path only bumps atomics.
//! Labels come from configuration (API, version, route), never from traffic.

use metrics::{Counter, Histogram};

/// Handles for one route.
#[derive(Clone)]
pub struct RouteMetrics {
    by_class: [Counter; 5],
    pub duration: Histogram,
    pub upstream_duration: Histogram,
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteMetrics")
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl RouteMetrics {
    pub fn new(api: &str, version: &str, route: &str) -> Self {
        let by_class = CLASSES.map(|class| {
            metrics::counter!(
                "tollgate_requests_total",
                "api" => api.to_string(),
                "version" => version.to_string(),
                "route" => route.to_string(),
                "status_class" => class
            )
        });
        RouteMetrics {
            by_class,
            duration: metrics::histogram!("tollgate_request_duration_seconds", "api" => api.to_string()),
            upstream_duration: metrics::histogram!("tollgate_upstream_duration_seconds", "api" => api.to_string()),
        }
    }

    pub fn count(&self, status: u16) {
        let i = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[i].increment(1);
    }
}

/// Describes the gateway's metrics to the recorder (HELP lines).
pub fn describe() {
    metrics::describe_counter!(
        "tollgate_requests_total",
        "Requests answered by the gateway, by route and status class."
    );
    metrics::describe_histogram!(
        "tollgate_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time from request received to response headers sent."
    );
    metrics::describe_histogram!(
        "tollgate_upstream_duration_seconds",
        metrics::Unit::Seconds,
        "Time from request sent upstream to response headers received."
    );
    metrics::describe_gauge!(
        "tollgate_upstream_target_healthy",
        "1 when the target is in rotation, 0 when ejected."
    );
    metrics::describe_counter!(
        "tollgate_limit_rejections_total",
        "Requests rejected by a limit, by API and reason."
    );
    metrics::describe_counter!(
        "tollgate_limit_fallback_total",
        "Cluster limit checks decided on this node's share because Redis was unreachable."
    );
    metrics::describe_counter!(
        "tollgate_limit_redis_errors_total",
        "Redis calls for cluster limits that failed or timed out."
    );
    metrics::describe_gauge!(
        "tollgate_limit_redis_up",
        "1 while Redis answers cluster limit calls, 0 while this node falls back."
    );
    metrics::describe_gauge!(
        "tollgate_config_revision",
        "Configuration revision the gateway serves."
    );
    metrics::describe_gauge!(
        "tollgate_store_up",
        "1 while the node reaches its store, 0 while it serves its configuration without it."
    );
    metrics::describe_histogram!(
        "tollgate_config_apply_seconds",
        metrics::Unit::Seconds,
        "Time to compile and swap in a new configuration snapshot."
    );
    metrics::describe_counter!(
        "tollgate_events_dropped_total",
        "Analytics events dropped because the pipeline fell behind."
    );
    metrics::describe_counter!(
        "tollgate_access_log_dropped_total",
        "Access log lines dropped because the writer fell behind."
    );
    metrics::describe_counter!(
        "tollgate_spans_dropped_total",
        "OpenTelemetry spans dropped: the export queue was full or the collector failed."
    );
}
