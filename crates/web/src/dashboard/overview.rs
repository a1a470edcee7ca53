//! The overview: traffic, errors and latency, top endpoints and apps, the weekday × hour
//! heatmap, upstream health and alerts.

use super::*;

// ---- overview ----

#[derive(Deserialize, Default)]
pub(super) struct OverviewQuery {
    #[serde(default)]
    range: Option<String>,
    #[serde(default)]
    api: Option<String>,
}

pub(crate) struct TopRow {
    pub key: String,
    pub requests: String,
    pub errors: String,
    pub p50: String,
    pub p99: String,
}

pub(crate) struct HeatRow {
    pub day: String,
    pub cells: Vec<HeatCell>,
}

pub(crate) struct HeatCell {
    pub hour: u64,
    pub requests: u64,
    pub style: String,
}

pub(crate) struct UpstreamRow {
    pub name: String,
    pub target: String,
    pub healthy: bool,
    pub in_flight: usize,
}

pub(crate) struct AlertItem {
    pub at: String,
    pub detector: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "dash/overview.html")]
pub(super) struct OverviewPage {
    c: Chrome,
    range: String,
    ranges: Vec<(&'static str, &'static str)>,
    api: String,
    apis: Vec<String>,
    requests: String,
    errors: String,
    error_rate: String,
    p99: String,
    traffic_series: String,
    latency_series: String,
    top_routes: Vec<TopRow>,
    top_apps: Vec<TopRow>,
    heat: Vec<HeatRow>,
    upstreams: Vec<UpstreamRow>,
    alerts: Vec<AlertItem>,
}

pub(super) const RANGES: [(&str, &str, i64, &str); 4] = [
    ("1h", "Last hour", 3600, "1m"),
    ("24h", "Last 24 hours", 86_400, "15m"),
    ("7d", "Last 7 days", 7 * 86_400, "1h"),
    ("30d", "Last 30 days", 30 * 86_400, "6h"),
];

pub(super) fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub(crate) fn top_rows(v: &Value) -> Vec<TopRow> {
    items(v, "rows")
        .map(|r| {
            let n = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
            let ms = |k: &str| {
                r.get(k)
                    .and_then(Value::as_f64)
                    .map_or("–".to_string(), |v| format!("{v:.1} ms"))
            };
            TopRow {
                key: r
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                requests: count(n("requests")),
                errors: count(n("errors")),
                p50: ms("latency_p50_ms"),
                p99: ms("latency_p99_ms"),
            }
        })
        .collect()
}

pub(super) fn heat_rows(v: &Value) -> Vec<HeatRow> {
    let cells: Vec<(String, u64, u64)> = items(v, "cells")
        .map(|c| {
            (
                c.get("weekday")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                c.get("hour").and_then(Value::as_u64).unwrap_or(0),
                c.get("requests").and_then(Value::as_u64).unwrap_or(0),
            )
        })
        .collect();
    let max = cells.iter().map(|c| c.2).max().unwrap_or(0).max(1);
    let mut rows: Vec<HeatRow> = Vec::new();
    for (day, hour, requests) in cells {
        if rows.last().is_none_or(|r| r.day != day) {
            rows.push(HeatRow {
                day: day.clone(),
                cells: Vec::new(),
            });
        }
        let intensity = requests as f64 / max as f64;
        if let Some(r) = rows.last_mut() {
            r.cells.push(HeatCell {
                hour,
                requests,
                style: format!("--v:{intensity:.3}"),
            });
        }
    }
    rows
}

pub(super) async fn overview(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(q): Query<OverviewQuery>,
) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let range = RANGES
        .iter()
        .find(|r| Some(r.0) == q.range.as_deref())
        .unwrap_or(&RANGES[1]);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (from, to) = (rfc3339(now - range.2), rfc3339(now + 60));
    let api = q.api.unwrap_or_default();
    let doc = tollgate_admin::current_document(&web.admin).await.ok();
    let apis: Vec<String> = doc
        .as_ref()
        .map(|d| d.apis.iter().map(|a| a.name.clone()).collect())
        .unwrap_or_default();
    let api = if apis.contains(&api) {
        api
    } else {
        String::new()
    };
    let filter = if api.is_empty() {
        String::new()
    } else {
        format!("&api={}", enc(&api))
    };
    let window = format!("from={}&to={}{filter}", enc(&from), enc(&to));
    let series = |metrics: &[(&str, &str)]| {
        let list: Vec<Value> = metrics
            .iter()
            .map(|(label, metric)| {
                json!({
                    "label": label,
                    "url": format!("/api/analytics/timeseries?metric={metric}&step={}&{window}", range.3),
                })
            })
            .collect();
        Value::Array(list).to_string()
    };
    let all = web
        .api
        .get(
            &s.who,
            &format!("/api/analytics/top?dimension=all&limit=1&{window}"),
        )
        .await;
    let total = all
        .body
        .get("rows")
        .and_then(|r| r.get(0))
        .cloned()
        .unwrap_or(Value::Null);
    let requests = total.get("requests").and_then(Value::as_u64).unwrap_or(0);
    let errors = total.get("errors").and_then(Value::as_u64).unwrap_or(0);
    let p99 = total
        .get("latency_p99_ms")
        .and_then(Value::as_f64)
        .map_or("–".to_string(), |v| format!("{v:.1} ms"));
    let top_routes = web
        .api
        .get(
            &s.who,
            &format!("/api/analytics/top?dimension=route&limit=8&{window}"),
        )
        .await;
    let top_apps = web
        .api
        .get(
            &s.who,
            &format!("/api/analytics/top?dimension=app&limit=8&{window}"),
        )
        .await;
    let heat = web
        .api
        .get(
            &s.who,
            &format!("/api/analytics/heatmap?{}", filter.trim_start_matches('&')),
        )
        .await;
    let alerts = web.api.get(&s.who, "/api/alerts?limit=5").await;
    let upstreams = web
        .admin
        .gateway
        .snapshot()
        .upstreams
        .iter()
        .flat_map(|u| {
            u.targets.iter().map(|t| UpstreamRow {
                name: u.name.to_string(),
                target: t.url.clone(),
                healthy: t.is_healthy(),
                in_flight: t.in_flight.load(std::sync::atomic::Ordering::Relaxed),
            })
        })
        .collect();
    let alerts = items(&alerts.body, "alerts")
        .map(|a| AlertItem {
            at: a
                .get("at")
                .and_then(Value::as_i64)
                .map(rfc3339)
                .map(|t| short_time(&t))
                .unwrap_or_default(),
            detector: a
                .get("detector")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            message: a
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
        .collect();
    let error_rate = if requests == 0 {
        "–".to_string()
    } else {
        format!("{:.2} %", errors as f64 * 100.0 / requests as f64)
    };
    ok(&OverviewPage {
        c: Chrome::new("Overview", "overview", &s, Flash::default()),
        range: range.0.to_string(),
        ranges: RANGES.iter().map(|r| (r.0, r.1)).collect(),
        api,
        apis,
        requests: count(requests),
        errors: count(errors),
        error_rate,
        p99,
        traffic_series: series(&[("Requests", "requests"), ("Errors", "errors")]),
        latency_series: series(&[
            ("p50", "latency_p50"),
            ("p95", "latency_p95"),
            ("p99", "latency_p99"),
        ]),
        top_routes: top_rows(&top_routes.body),
        top_apps: top_rows(&top_apps.body),
        heat: heat_rows(&heat.body),
        upstreams,
        alerts,
    })
}
