//! `GET /api/config` (export) and `PUT /api/config` (apply a declarative document), and
//! the one write path every change goes through: [`apply_document`].

use std::sync::Arc;
use tollgate_store::Actor;

use crate::problem::Query;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tollgate_model::{Document, EntitySet, Plan, parse_document, validate};

use crate::AdminState;
use crate::auth::Principal;
use crate::control;
use crate::problem::ApiError;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/config", get(export).put(apply))
        .route("/changes", get(changes))
}

/// What an apply did (or, with `dry_run`, would do).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApplyOutcome {
    /// Revision the plan was computed against.
    pub base_revision: i64,
    /// Revision now served (equal to `base_revision` when nothing changed or dry run).
    pub revision: i64,
    pub applied: bool,
    pub summary: String,
    #[schema(value_type = Object)]
    pub plan: Plan,
}

/// Plans and (unless `dry_run`) commits the change from the current configuration to
/// `desired`, then installs it. Validation covers the whole resulting configuration; a
/// principal with a team must own every entity the plan changes ([`crate::teams`]).
pub(crate) async fn apply_document(
    state: &AdminState,
    who: &Principal,
    change: impl FnOnce(&EntitySet) -> Result<Document, ApiError>,
    expected: Option<i64>,
    dry_run: bool,
    source: Option<&tollgate_model::SourceMap>,
) -> Result<ApplyOutcome, ApiError> {
    let _guard = state.apply_lock.lock().await;
    let (base, current) = state.store.load().await?;
    if let Some(expected) = expected
        && expected != base
    {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "revision-conflict",
            format!("the configuration is at revision {base}, not {expected}; plan again"),
        ));
    }
    let before = current_document(&current)?;
    let mut doc = change(&current)?;
    let deprecated = crate::lifecycle::check(&before, &mut doc, time::OffsetDateTime::now_utc())
        .map_err(|e| ApiError::invalid(source.cloned().unwrap_or_default().locate_all(e)))?;
    let mut errors = validate(&doc);
    if errors.is_empty() {
        // Governance: a version this change publishes must pass the rules at `error`.
        errors = tollgate_lint::publish_check(&before, &doc);
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            source.cloned().unwrap_or_default().locate_all(errors),
        ));
    }
    crate::seal::seal(&mut doc, &before, state.gateway.secrets())?;
    let errors = validate(&doc);
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            source.cloned().unwrap_or_default().locate_all(errors),
        ));
    }
    // What validation cannot see (key material, Cedar evaluation setup) is checked by
    // compiling the snapshot before anything is written.
    state.gateway.check(&doc).map_err(|e| {
        ApiError::invalid(vec![tollgate_model::Located {
            path: String::new(),
            line: None,
            column: None,
            message: e.0,
        }])
    })?;
    let desired = EntitySet::from_document(&doc);
    let plan = current.plan_to(&desired);
    crate::teams::check_plan(who.team.as_deref(), &plan, &before, &doc)?;
    let summary = plan.summary();
    if dry_run || plan.is_empty() {
        return Ok(ApplyOutcome {
            base_revision: base,
            revision: base,
            applied: false,
            summary,
            plan,
        });
    }
    let actor = who.actor();
    let revision = state.store.commit(&plan, &actor, Some(base)).await?;
    control::sync(state).await?;
    tracing::info!(revision, actor = actor.who, from = actor.from, %summary, "configuration changed");
    // The apps still calling a newly deprecated version are told (portal notice, webhook).
    // The change stands whatever happens here; a failure is logged.
    for (api, version) in &deprecated {
        match crate::lifecycle::notify_deprecated(state, &doc, api, version).await {
            Ok(told) => tracing::info!(%api, %version, apps = told, "deprecation notices raised"),
            Err(e) => {
                tracing::warn!(%api, %version, error = %e.detail, "deprecation notices not raised")
            }
        }
    }
    Ok(ApplyOutcome {
        base_revision: base,
        revision,
        applied: true,
        summary,
        plan,
    })
}

/// What applying `doc` onto the stored configuration yields; `doc`'s entries first so
/// validation errors point into the text that was sent.
fn merge(doc: &Document, current: &EntitySet, prune: bool) -> Result<Document, ApiError> {
    if prune {
        return Ok(doc.clone());
    }
    Ok(doc.merged_over(&current_document(current)?))
}

/// The current configuration as a document.
pub(crate) fn current_document(set: &EntitySet) -> Result<Document, ApiError> {
    set.to_document().map_err(ApiError::internal)
}

/// Applies a parsed document as `actor` (used for `serve --config`), with no team.
pub async fn apply_config(
    state: &AdminState,
    doc: &Document,
    prune: bool,
    actor: &Actor<'_>,
) -> Result<ApplyOutcome, ApiError> {
    let who = Principal {
        role: crate::auth::Role::Owner,
        label: actor.who.to_string(),
        from: actor.from.to_string(),
        team: None,
        scopes: None,
    };
    apply_document(
        state,
        &who,
        |current| merge(doc, current, prune),
        None,
        false,
        None,
    )
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ApplyParams {
    /// Compute and return the plan without changing anything.
    #[serde(default)]
    dry_run: bool,
    /// Delete what the document does not contain.
    #[serde(default)]
    prune: bool,
}

fn expected_revision(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    match headers.get(header::IF_MATCH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .map(|s| s.trim().trim_matches('"'))
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("If-Match must be a revision, e.g. \"42\"")),
    }
}

/// Applies a declarative document (YAML or JSON). Validation errors name the path and,
/// for text, the line and column.
#[utoipa::path(put, path = "/api/config", params(ApplyParams),
    request_body(content = String, description = "Declarative configuration (YAML or JSON)", content_type = "application/yaml"),
    responses((status = 200, body = ApplyOutcome), (status = 400, body = crate::problem::Problem),
              (status = 412, description = "If-Match revision is stale"), (status = 422, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn apply(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Query(params): Query<ApplyParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ApplyOutcome>, ApiError> {
    let expected = expected_revision(&headers)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the document is not UTF-8 text"))?;
    let (doc, map) = parse_document(text).map_err(|e| {
        let mut err = ApiError::invalid(e.errors().to_vec());
        err.status = StatusCode::BAD_REQUEST;
        err
    })?;
    let outcome = apply_document(
        &state,
        &who,
        |current| merge(&doc, current, params.prune),
        expected,
        params.dry_run,
        Some(&map),
    )
    .await?;
    Ok(Json(outcome))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ExportParams {
    /// `yaml` (default) or `json`.
    #[serde(default)]
    format: Option<String>,
}

/// Exports the live configuration. Applying the export plans no change.
#[utoipa::path(get, path = "/api/config", params(ExportParams),
    responses((status = 200, description = "The configuration as YAML or JSON")), security(("bearer" = [])))]
pub async fn export(
    State(state): State<Arc<AdminState>>,
    Query(params): Query<ExportParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (revision, set) = state.store.load().await?;
    let doc = current_document(&set)?;
    let wants_json = match params.format.as_deref() {
        Some("json") => true,
        Some("yaml") => false,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json") && !a.contains("yaml")),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown format `{other}`: use yaml or json"
            )));
        }
    };
    let (body, content_type) = if wants_json {
        (
            serde_json::to_string_pretty(&doc).map_err(ApiError::internal)?,
            "application/json",
        )
    } else {
        (
            yaml_serde::to_string(&doc).map_err(ApiError::internal)?,
            "application/yaml",
        )
    };
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{revision}\"")) {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    Ok(resp)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ChangesParams {
    /// Changes after this revision.
    #[serde(default)]
    since: i64,
    #[serde(default)]
    limit: Option<i64>,
}

/// The change log: entity, operation, revision, actor and time of each change.
#[utoipa::path(get, path = "/api/changes", params(ChangesParams), responses((status = 200, description = "Change log rows")), security(("bearer" = [])))]
pub async fn changes(
    State(state): State<Arc<AdminState>>,
    Query(params): Query<ChangesParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = params.limit.unwrap_or(500).clamp(1, 5000);
    let rows = state.store.changes(params.since, limit).await?;
    Ok(Json(serde_json::json!({ "changes": rows })))
}
