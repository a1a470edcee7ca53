//! Purging the response cache: by API, by exact key, by path, or everything.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{delete, post};
use serde::Deserialize;
use serde_json::json;

use crate::AdminState;
use crate::problem::ApiError;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/cache/purge", post(purge))
        .route("/cache", delete(purge_all).get(stats))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Purge {
    /// Every cached answer of this API.
    #[serde(default)]
    api: Option<String>,
    /// One entry, by its key as listed by `GET /api/cache`.
    #[serde(default)]
    key: Option<String>,
    /// Every cached answer for this request path (any host, query or variant).
    #[serde(default)]
    path: Option<String>,
}

/// Drops cached answers; the next request for them goes upstream.
#[utoipa::path(post, path = "/api/cache/purge", request_body = Purge, responses((status = 200, description = "How many entries were dropped")), security(("bearer" = [])))]
pub async fn purge(
    State(state): State<Arc<AdminState>>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let req: Purge = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("purge request: {e}")))?;
    if req.api.is_none() && req.key.is_none() && req.path.is_none() {
        return Err(ApiError::bad_request(
            "name an `api`, a `key` or a `path` to purge (DELETE /api/cache drops everything)",
        ));
    }
    let cache = &state.gateway.cache;
    let mut purged = 0;
    if let Some(api) = &req.api {
        purged += cache.purge_api(api);
    }
    purged += cache.purge(req.key.as_deref(), req.path.as_deref());
    tracing::info!(purged, api = ?req.api, key = ?req.key, path = ?req.path, "cache purged");
    Ok(Json(json!({ "purged": purged })))
}

/// Drops every cached answer.
#[utoipa::path(delete, path = "/api/cache", responses((status = 200)), security(("bearer" = [])))]
pub async fn purge_all(State(state): State<Arc<AdminState>>) -> Json<serde_json::Value> {
    Json(json!({ "purged": state.gateway.cache.purge_all() }))
}

/// How many answers the cache holds, and (up to 1000 of) their keys.
#[utoipa::path(get, path = "/api/cache", responses((status = 200)), security(("bearer" = [])))]
pub async fn stats(State(state): State<Arc<AdminState>>) -> Json<serde_json::Value> {
    let cache = &state.gateway.cache;
    Json(json!({ "entries": cache.len(), "keys": cache.keys(1000) }))
}
