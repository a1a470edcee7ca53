//! Analytics queries (CONTRACT §3): time series, top lists and the weekday × hour heatmap,
//! answered from the stored per-minute aggregates of every node (histograms merge exactly,
//! so several nodes writing to one store add up to the same answer as one node).
//!
//! Common parameters: `from`, `to` (RFC 3339; default: the last hour, or the last 28 days
//! for the heatmap), filters `api`, `version`, `app`, `route`, `status` (a class: `2xx`, or
//! a code whose class is meant: `404` → `4xx`). `errors` are answers of class 5xx. Latency
//! is in milliseconds, within the histograms' 0.8 %.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::problem::Query;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_insight::Histogram;
use tollgate_store::{AggregateFilter, AggregateRow};

use crate::AdminState;
use crate::problem::ApiError;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/analytics/timeseries", get(timeseries))
        .route("/analytics/top", get(top))
        .route("/analytics/heatmap", get(heatmap))
        .route("/analytics/adoption", get(adoption))
}

/// Longest range one query reads.
const MAX_RANGE_DAYS: i64 = 62;
/// Most points a time series answers.
const MAX_POINTS: i64 = 5_000;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct Common {
    /// RFC 3339; default one hour (28 days for the heatmap) before `to`.
    from: Option<String>,
    /// RFC 3339; default now.
    to: Option<String>,
    api: Option<String>,
    version: Option<String>,
    app: Option<String>,
    route: Option<String>,
    /// A status class (`5xx`) or a code standing for its class (`503`).
    status: Option<String>,
}

/// An optional RFC 3339 query parameter as Unix seconds; a bad one names the parameter.
pub(crate) fn instant(name: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    v.as_deref()
        .map(|t| {
            OffsetDateTime::parse(t, &Rfc3339)
                .map(|t| t.unix_timestamp())
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "`{name}` is not an RFC 3339 time such as 2026-11-26T00:00:00Z"
                    ))
                })
        })
        .transpose()
}

fn class(v: &Option<String>) -> Result<Option<i16>, ApiError> {
    let Some(s) = v.as_deref() else {
        return Ok(None);
    };
    let digit = match s.as_bytes() {
        [d, b'x', b'x'] | [d, b'X', b'X'] => Some(*d),
        [d, b'0'..=b'9', b'0'..=b'9'] => Some(*d),
        _ => None,
    };
    match digit {
        Some(d @ b'1'..=b'5') => Ok(Some(i16::from(d - b'0'))),
        _ => Err(ApiError::bad_request(format!(
            "status `{s}` is not a status class (2xx) or code (404)"
        ))),
    }
}

struct Range {
    /// Unix seconds, `[from, to)`.
    from: i64,
    to: i64,
    filter: AggregateFilter,
}

impl Common {
    fn range(&self, default_span: i64) -> Result<Range, ApiError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let to = instant("to", &self.to)?.unwrap_or(now);
        let from = instant("from", &self.from)?.unwrap_or(to - default_span);
        if from >= to {
            return Err(ApiError::bad_request("`from` must be before `to`"));
        }
        if to - from > MAX_RANGE_DAYS * 86_400 {
            return Err(ApiError::bad_request(format!(
                "the range is longer than {MAX_RANGE_DAYS} days"
            )));
        }
        Ok(Range {
            from,
            to,
            filter: AggregateFilter {
                api: self.api.clone(),
                version: self.version.clone(),
                route: self.route.clone(),
                app: self.app.clone(),
                class: class(&self.status)?,
            },
        })
    }
}

/// The rows of every minute that overlaps `[from, to)` (Unix seconds).
async fn rows(
    state: &AdminState,
    (from, to): (i64, i64),
    filter: &AggregateFilter,
) -> Result<Vec<AggregateRow>, ApiError> {
    let first = from.div_euclid(60);
    let end = to.div_euclid(60) + i64::from(to.rem_euclid(60) != 0);
    Ok(state.store.aggregates(first, end, filter).await?)
}

/// Requests, errors and merged latency of a set of rows.
#[derive(Default)]
struct Sum {
    requests: u64,
    errors: u64,
    total: Histogram,
    gateway: Histogram,
    upstream: Histogram,
}

impl Sum {
    fn add(&mut self, r: &AggregateRow) {
        self.requests += r.requests;
        if r.class == 5 {
            self.errors += r.requests;
        }
        for (h, text) in [
            (&mut self.total, &r.total),
            (&mut self.gateway, &r.gateway),
            (&mut self.upstream, &r.upstream),
        ] {
            if let Some(d) = Histogram::decode(text) {
                h.merge(&d);
            }
        }
    }

    fn ms(h: &Histogram, q: f64) -> Value {
        h.quantile(q).map_or(Value::Null, |us| {
            json!((us as f64 / 1000.0 * 1000.0).round() / 1000.0)
        })
    }
}

/// Unix seconds as RFC 3339 (`""` when out of range).
pub(crate) fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn step_seconds(step: &str) -> Option<i64> {
    Some(match step {
        "1m" => 60,
        "5m" => 300,
        "15m" => 900,
        "1h" => 3600,
        "6h" => 21_600,
        "1d" => 86_400,
        _ => return None,
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SeriesQuery {
    /// `requests`, `errors`, `latency_p50`, `latency_p95` or `latency_p99`.
    metric: String,
    /// `1m`, `5m`, `15m`, `1h`, `6h` or `1d` (default `1m`).
    step: Option<String>,
    /// For latency: `total` (default), `gateway` or `upstream`.
    part: Option<String>,
}

/// One value per step: `{"points":[{"t":"…","value":N}]}`, every step of the range present
/// (zero requests, null latency where nothing was answered).
#[utoipa::path(get, path = "/api/analytics/timeseries", params(Common, SeriesQuery), responses((status = 200), (status = 400)), security(("bearer" = [])))]
pub async fn timeseries(
    State(state): State<Arc<AdminState>>,
    Query(c): Query<Common>,
    Query(q): Query<SeriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let quantile = match q.metric.as_str() {
        "requests" | "errors" => None,
        "latency_p50" => Some(0.5),
        "latency_p95" => Some(0.95),
        "latency_p99" => Some(0.99),
        other => {
            return Err(ApiError::bad_request(format!(
                "metric `{other}` is not known: use requests, errors, latency_p50, latency_p95 or latency_p99"
            )));
        }
    };
    let step_name = q.step.as_deref().unwrap_or("1m");
    let step = step_seconds(step_name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "step `{step_name}` is not known: use 1m, 5m, 15m, 1h, 6h or 1d"
        ))
    })?;
    let part = q.part.as_deref().unwrap_or("total");
    if !["total", "gateway", "upstream"].contains(&part) {
        return Err(ApiError::bad_request(format!(
            "part `{part}` is not known: use total, gateway or upstream"
        )));
    }
    let range = c.range(3600)?;
    // Steps are aligned to the step (UTC), the first one containing `from`.
    let first = range.from.div_euclid(step) * step;
    let points = (range.to - first + step - 1) / step;
    if points > MAX_POINTS {
        return Err(ApiError::bad_request(format!(
            "{points} points: use a larger step or a shorter range (at most {MAX_POINTS})"
        )));
    }
    let mut sums: Vec<Sum> = (0..points).map(|_| Sum::default()).collect();
    // Whole steps: the first one starts at or before `from`.
    for r in rows(&state, (first, range.to), &range.filter).await? {
        let i = (r.minute * 60 - first).div_euclid(step);
        if let Some(s) = usize::try_from(i).ok().and_then(|i| sums.get_mut(i)) {
            s.add(&r);
        }
    }
    let points: Vec<Value> = sums
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let value = match (q.metric.as_str(), quantile) {
                ("requests", _) => json!(s.requests),
                ("errors", _) => json!(s.errors),
                (_, Some(q)) => Sum::ms(
                    match part {
                        "gateway" => &s.gateway,
                        "upstream" => &s.upstream,
                        _ => &s.total,
                    },
                    q,
                ),
                _ => Value::Null,
            };
            json!({ "t": rfc3339(first + i as i64 * step), "value": value })
        })
        .collect();
    Ok(Json(
        json!({ "metric": q.metric, "step": step_name, "points": points }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct TopQuery {
    /// `route`, `app`, `api`, `version`, `status`, or `all` (one row: the whole traffic).
    dimension: String,
    /// At most 100 (default 10).
    limit: Option<usize>,
}

/// The busiest keys of a dimension: `{"rows":[{"key","requests","errors","latency_p50_ms",
/// "latency_p99_ms"}]}`, most requests first. A route's key is `api@version route`.
#[utoipa::path(get, path = "/api/analytics/top", params(Common, TopQuery), responses((status = 200), (status = 400)), security(("bearer" = [])))]
pub async fn top(
    State(state): State<Arc<AdminState>>,
    Query(c): Query<Common>,
    Query(q): Query<TopQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(10);
    if limit == 0 || limit > 100 {
        return Err(ApiError::bad_request("limit must be between 1 and 100"));
    }
    let key: fn(&AggregateRow) -> String = match q.dimension.as_str() {
        "route" => |r| format!("{}@{} {}", r.api, r.version, r.route),
        "app" => |r| r.app.clone(),
        "api" => |r| r.api.clone(),
        "version" => |r| format!("{}@{}", r.api, r.version),
        "status" => |r| format!("{}xx", r.class),
        "all" => |_| "all".to_string(),
        other => {
            return Err(ApiError::bad_request(format!(
                "dimension `{other}` is not known: use route, app, api, version, status or all"
            )));
        }
    };
    let range = c.range(3600)?;
    let mut sums: HashMap<String, Sum> = HashMap::new();
    for r in rows(&state, (range.from, range.to), &range.filter).await? {
        sums.entry(key(&r)).or_default().add(&r);
    }
    let mut list: Vec<(String, Sum)> = sums.into_iter().collect();
    list.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then(a.0.cmp(&b.0)));
    let rows: Vec<Value> = list
        .iter()
        .take(limit)
        .map(|(k, s)| {
            json!({
                "key": k,
                "requests": s.requests,
                "errors": s.errors,
                "latency_p50_ms": Sum::ms(&s.total, 0.5),
                "latency_p99_ms": Sum::ms(&s.total, 0.99),
            })
        })
        .collect();
    Ok(Json(json!({ "dimension": q.dimension, "rows": rows })))
}

/// Requests by weekday × hour (UTC) over the range (default 28 days): `{"cells":[{"weekday":
/// "Mon","hour":9,"requests":N}]}`, all 168 cells, Monday first.
#[utoipa::path(get, path = "/api/analytics/heatmap", params(Common), responses((status = 200), (status = 400)), security(("bearer" = [])))]
pub async fn heatmap(
    State(state): State<Arc<AdminState>>,
    Query(c): Query<Common>,
) -> Result<Json<Value>, ApiError> {
    let range = c.range(28 * 86_400)?;
    let mut cells: BTreeMap<(u8, u8), u64> = BTreeMap::new();
    for r in rows(&state, (range.from, range.to), &range.filter).await? {
        let Ok(t) = OffsetDateTime::from_unix_timestamp(r.minute * 60) else {
            continue;
        };
        *cells
            .entry((t.weekday().number_days_from_monday(), t.hour()))
            .or_default() += r.requests;
    }
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let cells: Vec<Value> = (0..7u8)
        .flat_map(|d| (0..24u8).map(move |h| (d, h)))
        .map(|(d, h)| {
            json!({
                "weekday": DAYS[usize::from(d)],
                "hour": h,
                "requests": cells.get(&(d, h)).copied().unwrap_or(0),
            })
        })
        .collect();
    Ok(Json(json!({ "cells": cells })))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AdoptionQuery {
    /// One API, or all when omitted.
    api: Option<String>,
    /// RFC 3339; default 30 days before `to`.
    from: Option<String>,
    /// RFC 3339; default now.
    to: Option<String>,
    /// `1h`, `6h` or `1d` (default `1d`): the buckets of `new_apps`.
    step: Option<String>,
    /// An app that has not called successfully for this long (default `7d`) has stopped.
    idle: Option<String>,
}

/// Adoption of an API (or of all): apps whose first successful call fell in each step of
/// the range (`new_apps`), the apps active in the range (first call before `to`, last call
/// at or after `from`) with their first and last successful call and the time from their
/// first key's creation to their first call (the median over apps that started in the
/// range), and the apps that stopped calling (reached `idle` without a successful call
/// within the range). Times follow the analytics kept: once rolled up,
/// a first or last call is known to its hour or day.
#[utoipa::path(get, path = "/api/analytics/adoption", params(AdoptionQuery), responses((status = 200), (status = 400)), security(("bearer" = [])))]
pub async fn adoption(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<AdoptionQuery>,
) -> Result<Json<Value>, ApiError> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let to = instant("to", &q.to)?.unwrap_or(now);
    let from = instant("from", &q.from)?.unwrap_or(to - 30 * 86_400);
    if from >= to || to - from > 366 * 86_400 {
        return Err(ApiError::bad_request(
            "`from` must be before `to`, at most 366 days apart",
        ));
    }
    let step_name = q.step.as_deref().unwrap_or("1d");
    let step = match step_name {
        "1h" | "6h" | "1d" => step_seconds(step_name).unwrap_or(86_400),
        other => {
            return Err(ApiError::bad_request(format!(
                "step `{other}` is not known: use 1h, 6h or 1d"
            )));
        }
    };
    let idle = match &q.idle {
        None => 7 * 86_400,
        Some(t) => t
            .parse::<tollgate_model::Duration>()
            .map_err(|e| ApiError::bad_request(format!("idle: {e}")))?
            .as_std()
            .as_secs() as i64,
    };
    if idle < 60 {
        return Err(ApiError::bad_request("idle must be at least 1m"));
    }
    let first_step = from.div_euclid(step) * step;
    let points = ((to - first_step + step - 1) / step).max(1);
    if points > MAX_POINTS {
        return Err(ApiError::bad_request(format!(
            "{points} points: use a larger step or a shorter range (at most {MAX_POINTS})"
        )));
    }
    let (_, set) = state.store.load().await?;
    let doc = crate::config::current_document(&set)?;
    let activity = state.store.app_activity(q.api.as_deref()).await?;
    let mut new_apps = vec![0u64; usize::try_from(points).unwrap_or(0)];
    let mut apps = Vec::new();
    let mut waits = Vec::new();
    let mut stopped = Vec::new();
    for a in &activity {
        let first = a.first * 60;
        let last = a.last * 60;
        // Stopped: reached `idle` without a successful call within (from, to].
        if last + 60 <= to - idle && last + 60 > from - idle {
            stopped.push(json!({ "app": a.app, "last_call": rfc3339(last) }));
        }
        // Apps that had not started by `to`, or had stopped before `from`, are not part
        // of this range.
        if first >= to || last + 60 <= from {
            continue;
        }
        let started_here = first >= from;
        if started_here {
            let i = (first - first_step).div_euclid(step);
            if let Some(n) = usize::try_from(i).ok().and_then(|i| new_apps.get_mut(i)) {
                *n += 1;
            }
        }
        let key_created = doc.apps.iter().find(|x| x.name == a.app).and_then(|x| {
            x.keys
                .iter()
                .filter_map(|k| k.created_at.as_deref())
                .filter_map(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .map(OffsetDateTime::unix_timestamp)
                .min()
        });
        // Known to the minute: a call in the minute the key was made counts as at once.
        let wait = key_created.map(|k| (first - k.div_euclid(60) * 60).max(0));
        if let Some(w) = wait.filter(|_| started_here) {
            waits.push(w);
        }
        apps.push(json!({
            "app": a.app,
            "first_call": rfc3339(first),
            "last_call": rfc3339(last),
            "key_created": key_created.map(rfc3339),
            "seconds_to_first_call": wait,
        }));
    }
    waits.sort_unstable();
    let median = (!waits.is_empty()).then(|| waits[(waits.len() - 1) / 2]);
    let new_apps: Vec<Value> = new_apps
        .iter()
        .enumerate()
        .map(|(i, n)| json!({ "t": rfc3339(first_step + i as i64 * step), "value": n }))
        .collect();
    Ok(Json(json!({
        "api": q.api,
        "step": step_name,
        "new_apps": new_apps,
        "apps": apps,
        "median_seconds_to_first_call": median,
        "stopped": stopped,
    })))
}

/// Hours or days rolled up per pass at most (the rest follow in the next passes).
const ROLLS_PER_PASS: usize = 500;

/// One pass of analytics retention: minutes older than the minute retention roll into
/// hours, hours older than the hour retention into days, and days older than the day
/// retention are deleted. Answers the rows moved or deleted.
pub async fn retain(
    state: &AdminState,
    settings: &tollgate_model::document::AnalyticsSettings,
) -> Result<u64, ApiError> {
    let now = OffsetDateTime::now_utc().unix_timestamp() / 60;
    let minutes =
        |d: tollgate_model::Duration| i64::try_from(d.as_std().as_secs() / 60).unwrap_or(i64::MAX);
    let mut moved = 0;
    for (kind, keep) in [
        (tollgate_store::Rollup::MinutesToHours, settings.minutes),
        (tollgate_store::Rollup::HoursToDays, settings.hours),
    ] {
        let before = now.saturating_sub(minutes(keep));
        for _ in 0..ROLLS_PER_PASS {
            let n = state.store.roll_up(kind, before).await?;
            if n == 0 {
                break;
            }
            moved += n;
        }
    }
    moved += state
        .store
        .expire_analytics(now.saturating_sub(minutes(settings.days)))
        .await?;
    Ok(moved)
}

/// Deletes notices, finished webhook deliveries and ended alerts past their retention.
pub async fn retain_records(
    state: &AdminState,
    r: &tollgate_model::document::RetentionSettings,
) -> Result<tollgate_store::Pruned, ApiError> {
    state
        .gateway
        .access_log
        .set_retention(r.access_log.as_std());
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let before = |d: tollgate_model::Duration| {
        now.saturating_sub(i64::try_from(d.as_std().as_secs()).unwrap_or(i64::MAX))
    };
    Ok(state
        .store
        .prune_records(
            before(r.notices),
            before(r.webhook_deliveries),
            before(r.alerts),
            now,
        )
        .await?)
}

/// Runs [`retain_records`] and [`retain`] every minute with the configuration's settings
/// until stopped.
pub fn spawn_retention(state: Arc<AdminState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let pass = async {
                let (_, set) = state.store.load().await?;
                let doc = crate::config::current_document(&set)?;
                let pruned = retain_records(&state, &doc.settings.retention).await?;
                if pruned.total() > 0 {
                    tracing::info!(
                        notices = pruned.notices,
                        webhook_deliveries = pruned.webhook_deliveries,
                        alerts = pruned.alerts,
                        "records past their retention deleted"
                    );
                }
                retain(&state, &doc.settings.analytics).await
            };
            match pass.await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "analytics rolled up"),
                Err(e) => tracing::warn!(error = %e.detail, "analytics retention"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_filters_are_classes() {
        assert_eq!(class(&Some("5xx".into())).unwrap(), Some(5));
        assert_eq!(class(&Some("404".into())).unwrap(), Some(4));
        assert_eq!(class(&None).unwrap(), None);
        for bad in ["6xx", "x", "20", "2000", "abc"] {
            assert!(class(&Some(bad.into())).is_err(), "{bad}");
        }
    }
}
