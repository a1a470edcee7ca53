//! Keeping the gateway in step with the store, and the unauthenticated health and
//! metrics endpoints.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tollgate_gateway::Gateway;
use tollgate_model::Document;
use tollgate_store::{Store, StoreError};

use crate::AdminState;
use crate::problem::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored configuration at revision {revision} cannot be served: {message}")]
    Unservable { revision: i64, message: String },
}

/// Installs the store's configuration on the gateway if it is newer than what the
/// gateway serves, and keeps a copy in `snapshot` (when given) for a start without the
/// store. Returns the revision now served.
pub async fn sync_from_store(
    store: &Store,
    gateway: &Gateway,
    snapshot: Option<&Path>,
) -> Result<i64, SyncError> {
    let current = gateway.revision();
    if store.revision().await? == current && current != 0 {
        return Ok(current);
    }
    let (revision, set) = store.load().await?;
    if revision <= current && current != 0 {
        return Ok(current);
    }
    let doc = set
        .to_document()
        .map_err(|message| SyncError::Unservable { revision, message })?;
    gateway
        .install(&doc, revision)
        .map_err(|e| SyncError::Unservable {
            revision,
            message: e.to_string(),
        })?;
    if let Some(path) = snapshot
        && let Err(e) = write_snapshot(path, revision, &doc)
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot keep the configuration snapshot");
    }
    Ok(revision)
}

/// Writes the served configuration (credentials as stored: hashed or sealed) to `path`,
/// readable by the owner only, replacing the previous copy atomically.
pub fn write_snapshot(path: &Path, revision: i64, doc: &Document) -> std::io::Result<()> {
    let body = serde_json::to_vec(&json!({ "revision": revision, "document": doc }))?;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    std::io::Write::write_all(&mut file, &body)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The configuration a node last served, as [`write_snapshot`] kept it.
pub fn read_snapshot(path: &Path) -> Result<(i64, Document), String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    #[derive(serde::Deserialize)]
    struct Snapshot {
        revision: i64,
        document: Document,
    }
    let s: Snapshot = serde_json::from_slice(&text)
        .map_err(|e| format!("{}: not a configuration snapshot: {e}", path.display()))?;
    Ok((s.revision, s.document))
}

/// Syncs after a write made through this node and marks the node loaded.
pub(crate) async fn sync(state: &AdminState) -> Result<i64, ApiError> {
    let revision = sync_from_store(&state.store, &state.gateway, state.snapshot.as_deref())
        .await
        .map_err(ApiError::internal)?;
    state.loaded.store(true, Ordering::Relaxed);
    Ok(revision)
}

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Whether the store answers a ping within a second.
pub async fn store_reachable(store: &Store) -> bool {
    tokio::time::timeout(std::time::Duration::from_secs(1), store.ping())
        .await
        .is_ok_and(|r| r.is_ok())
}

pub async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    // Answered within a second, whatever the store does: probes have short timeouts.
    let store_ok = store_reachable(&state.store).await;
    let loaded = state.loaded.load(Ordering::Relaxed);
    // A node that lost its store keeps serving the configuration it has: it stays in
    // rotation, and says it is degraded (no changes, no new keys until the store returns).
    let (status, code) = match (loaded, store_ok) {
        (false, _) => ("not-ready", StatusCode::SERVICE_UNAVAILABLE),
        (true, true) => ("ready", StatusCode::OK),
        (true, false) => ("degraded", StatusCode::OK),
    };
    let body = json!({
        "status": status,
        "store": if store_ok { "ok" } else { "unreachable" },
        "snapshot_loaded": loaded,
        "revision": state.gateway.revision(),
    });
    (code, Json(body)).into_response()
}

pub async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    match &state.prometheus {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        None => ApiError::not_found("metrics are not enabled on this node").into_response(),
    }
}
