//! Version lifecycle in the management plane: the steps a version may take
//! (`draft → published → deprecated → retired`), who still calls a version
//! (`GET /api/apis/{api}/versions/{version}/callers`), and the deprecation notice sent to
//! exactly those callers when a version is deprecated.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_model::validate::FieldError;
use tollgate_model::{Document, VersionStatus};
use tollgate_store::AggregateFilter;

use crate::AdminState;
use crate::analytics::{instant, rfc3339};
use crate::notify::{Audience, Event};
use crate::problem::{ApiError, Query};

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new().route("/apis/{api}/versions/{version}/callers", get(callers))
}

/// How far back a deprecation looks for the apps to tell.
pub const NOTICE_LOOKBACK_DAYS: i64 = 30;

/// Whether a version may go from `from` to `to` in one change.
pub fn allowed(from: VersionStatus, to: VersionStatus) -> bool {
    use VersionStatus::*;
    from == to
        || matches!(
            (from, to),
            (Draft, Published) | (Published, Deprecated) | (Deprecated, Retired)
        )
}

/// Checks every version whose status changes between `before` and `after` takes one
/// lifecycle step, and dates a new deprecation that has no `deprecated_at` (now). Answers
/// the versions that became deprecated, as (API, version).
pub fn check(
    before: &Document,
    after: &mut Document,
    now: OffsetDateTime,
) -> Result<Vec<(String, String)>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut deprecated = Vec::new();
    for (i, api) in after.apis.iter_mut().enumerate() {
        let Some(old_api) = before.apis.iter().find(|a| a.name == api.name) else {
            continue;
        };
        for (j, v) in api.versions.iter_mut().enumerate() {
            let Some(old) = old_api.versions.iter().find(|o| o.version == v.version) else {
                continue;
            };
            if !allowed(old.status, v.status) {
                errors.push(FieldError {
                    path: format!("apis[{i}].versions[{j}].status"),
                    message: format!(
                        "{}@{} cannot go from {} to {}: a version goes draft → published → deprecated → retired, one step at a time",
                        api.name,
                        v.version,
                        old.status.as_str(),
                        v.status.as_str()
                    ),
                });
                continue;
            }
            // A re-applied document that leaves the date out keeps the stored one (the
            // `Deprecation` header would otherwise move with every snapshot).
            if v.deprecated_at.is_none()
                && matches!(v.status, VersionStatus::Deprecated | VersionStatus::Retired)
            {
                v.deprecated_at = old.deprecated_at.clone();
            }
            if old.status != VersionStatus::Deprecated && v.status == VersionStatus::Deprecated {
                if v.deprecated_at.is_none() {
                    v.deprecated_at = now.format(&Rfc3339).ok();
                }
                deprecated.push((api.name.clone(), v.version.clone()));
            }
        }
    }
    if errors.is_empty() {
        Ok(deprecated)
    } else {
        Err(errors)
    }
}

/// One app calling a version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub app: String,
    pub developer: Option<String>,
    pub requests: u64,
    /// Unix seconds of the start of the last minute (hour or day once rolled up) with a call.
    pub last_call: i64,
}

/// The apps that called `api`@`version` in `[from, to)` (Unix seconds), most requests first,
/// and the requests without an app.
pub async fn find_callers(
    state: &AdminState,
    doc: &Document,
    api: &str,
    version: &str,
    (from, to): (i64, i64),
) -> Result<(Vec<Caller>, u64), ApiError> {
    let filter = AggregateFilter {
        api: Some(api.to_string()),
        version: Some(version.to_string()),
        ..AggregateFilter::default()
    };
    let first = from.div_euclid(60);
    let end = to.div_euclid(60) + i64::from(to.rem_euclid(60) != 0);
    let rows = state.store.aggregates(first, end, &filter).await?;
    let mut by_app: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    let mut anonymous = 0;
    for r in rows {
        if r.app.is_empty() {
            anonymous += r.requests;
            continue;
        }
        let e = by_app.entry(r.app).or_insert((0, i64::MIN));
        e.0 += r.requests;
        e.1 = e.1.max(r.minute * 60);
    }
    let mut callers: Vec<Caller> = by_app
        .into_iter()
        .map(|(app, (requests, last_call))| Caller {
            developer: doc
                .apps
                .iter()
                .find(|a| a.name == app)
                .map(|a| a.owner.to_ascii_lowercase()),
            app,
            requests,
            last_call,
        })
        .collect();
    callers.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.app.cmp(&b.app)));
    Ok((callers, anonymous))
}

/// A version of an API in a document.
fn find_version<'d>(
    doc: &'d Document,
    api: &str,
    version: &str,
) -> Option<&'d tollgate_model::Version> {
    doc.apis
        .iter()
        .find(|a| a.name == api)
        .and_then(|a| a.versions.iter().find(|v| v.version == version))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct CallersQuery {
    /// RFC 3339; default 30 days before `to`.
    from: Option<String>,
    /// RFC 3339; default now.
    to: Option<String>,
}

/// Who still calls a version: per app, its developer, the requests in the range and the
/// last call; plus the requests no app made (anonymous routes). Read from the analytics
/// kept (minutes, then hours and days once rolled up).
#[utoipa::path(get, path = "/api/apis/{api}/versions/{version}/callers", params(("api" = String, Path), ("version" = String, Path), CallersQuery), responses((status = 200), (status = 400), (status = 404)), security(("bearer" = [])))]
pub async fn callers(
    State(state): State<Arc<AdminState>>,
    Path((api, version)): Path<(String, String)>,
    Query(q): Query<CallersQuery>,
) -> Result<Json<Value>, ApiError> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let to = instant("to", &q.to)?.unwrap_or(now);
    let from = instant("from", &q.from)?.unwrap_or(to - NOTICE_LOOKBACK_DAYS * 86_400);
    if from >= to || to - from > 366 * 86_400 {
        return Err(ApiError::bad_request(
            "`from` must be before `to`, at most 366 days apart",
        ));
    }
    let (_, set) = state.store.load().await?;
    let doc = crate::config::current_document(&set)?;
    let Some(v) = find_version(&doc, &api, &version) else {
        return Err(ApiError::not_found(format!(
            "no version {version} of API {api}"
        )));
    };
    let (list, anonymous) = find_callers(&state, &doc, &api, &version, (from, to)).await?;
    let callers: Vec<Value> = list
        .iter()
        .map(|c| {
            json!({
                "app": c.app,
                "developer": c.developer,
                "requests": c.requests,
                "last_call": rfc3339(c.last_call),
            })
        })
        .collect();
    Ok(Json(json!({
        "api": api,
        "version": version,
        "status": v.status.as_str(),
        "from": rfc3339(from),
        "to": rfc3339(to),
        "callers": callers,
        "anonymous_requests": anonymous,
    })))
}

/// Tells the apps that called `api`@`version` in the last [`NOTICE_LOOKBACK_DAYS`] that it
/// is deprecated: a portal notice for each app's developer and a signed `version.deprecated`
/// webhook event per app. Raised once per app and deprecation (a retried call repeats
/// nothing). Answers the apps told.
pub async fn notify_deprecated(
    state: &AdminState,
    doc: &Document,
    api: &str,
    version: &str,
) -> Result<usize, ApiError> {
    let Some(v) = find_version(doc, api, version) else {
        return Ok(0);
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (list, _) = find_callers(
        state,
        doc,
        api,
        version,
        (now - NOTICE_LOOKBACK_DAYS * 86_400, now + 60),
    )
    .await?;
    let since = v.deprecated_at.clone().unwrap_or_default();
    for c in &list {
        let mut message = format!(
            "{api} {version} is deprecated; your app {} called it {} times in the last {NOTICE_LOOKBACK_DAYS} days",
            c.app, c.requests
        );
        if let Some(s) = &v.successor {
            message.push_str(&format!("; move to {s}"));
        }
        if let Some(s) = &v.sunset_at {
            message.push_str(&format!(" before {s}"));
        }
        crate::notify::raise(
            state,
            doc,
            Event {
                kind: "version.deprecated",
                key: format!("{api}@{version}|{since}|{}", c.app),
                message,
                data: json!({
                    "api": api,
                    "version": version,
                    "deprecated_at": v.deprecated_at,
                    "sunset_at": v.sunset_at,
                    "successor": v.successor,
                    "deprecation_notice": v.deprecation_notice,
                    "app": c.app,
                    "developer": c.developer,
                    "requests": c.requests,
                    "last_call": rfc3339(c.last_call),
                }),
                notice: Some(Audience { app: c.app.clone() }),
            },
        )
        .await?;
    }
    Ok(list.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_forward_steps() {
        use VersionStatus::*;
        let all = [Draft, Published, Deprecated, Retired];
        for from in all {
            for to in all {
                let ok = allowed(from, to);
                let step = all.iter().position(|s| *s == to).unwrap() as i64
                    - all.iter().position(|s| *s == from).unwrap() as i64;
                assert_eq!(ok, step == 0 || step == 1, "{from:?} → {to:?}");
            }
        }
    }
}
