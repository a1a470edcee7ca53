//! `GET /api/nodes`: the gateway nodes sharing this store, from their heartbeats: version,
//! uptime, the revision each serves, and whether it is still heard from.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::AdminState;
use crate::analytics::rfc3339;
use crate::problem::ApiError;

/// How often each node writes its heartbeat.
pub const HEARTBEAT_SECS: i64 = 5;

/// A node not heard from for this long is listed as `unreachable`.
const UP_WITHIN_SECS: i64 = 3 * HEARTBEAT_SECS;

/// Nodes silent for longer are no longer listed (and are pruned).
pub const FORGET_AFTER_SECS: i64 = 7 * 86_400;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new().route("/nodes", get(list))
}

/// The nodes sharing this store, by name.
#[utoipa::path(get, path = "/api/nodes",
    responses((status = 200, description = "Nodes: name, version, health (up or unreachable), started_at, uptime_seconds, last_heartbeat, revision, current")),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AdminState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = crate::notify::now();
    let revision = state.store.revision().await?;
    let nodes: Vec<serde_json::Value> = state
        .store
        .nodes(now - FORGET_AFTER_SECS)
        .await?
        .into_iter()
        .map(|n| {
            let up = now - n.heartbeat_at <= UP_WITHIN_SECS;
            let until = if up { now } else { n.heartbeat_at };
            serde_json::json!({
                "name": n.name,
                "version": n.version,
                "health": if up { "up" } else { "unreachable" },
                "started_at": rfc3339(n.started_at),
                "uptime_seconds": (until - n.started_at).max(0),
                "last_heartbeat": rfc3339(n.heartbeat_at),
                "revision": n.revision,
                "current": n.revision == revision,
            })
        })
        .collect();
    Ok(Json(
        serde_json::json!({ "revision": revision, "nodes": nodes }),
    ))
}
