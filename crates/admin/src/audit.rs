//! The audit log over the admin API: every change with who made it, from where, and the
//! entity before and after; an export for archiving; and a check of the hash chain.
//! Both need the admin role (entries hold configuration as stored, credentials sealed).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::AdminState;
use crate::auth::{Principal, Role};
use crate::problem::{ApiError, Query};

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/audit", get(list))
        .route("/audit/verify", get(verify))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Entries after this entry id (the `next` of the previous page).
    #[serde(default)]
    after: i64,
    /// At most this many entries (1 to 5000, default 500).
    #[serde(default)]
    limit: Option<i64>,
    /// `json` (default, one page) or `jsonl` (every entry after `after`, one per line, for
    /// archiving).
    #[serde(default)]
    format: Option<String>,
    /// `true`: the latest `limit` entries, newest first (`after` is ignored).
    #[serde(default)]
    newest: bool,
}

/// Audit log entries, oldest first.
#[utoipa::path(get, path = "/api/audit", params(AuditParams),
    responses((status = 200, description = "Entries: id, revision, kind, name, op, actor, source, at, before, after, prev_hash, hash")),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Query(params): Query<AuditParams>,
) -> Result<Response, ApiError> {
    who.require(Role::Admin)?;
    match params.format.as_deref() {
        None | Some("json") => {
            let limit = params.limit.unwrap_or(500).clamp(1, 5000);
            let entries = if params.newest {
                state.store.audit_newest(limit).await?
            } else {
                state.store.audit(params.after, limit).await?
            };
            let next = entries.last().map(|e| e.id);
            Ok(Json(serde_json::json!({ "entries": entries, "next": next })).into_response())
        }
        Some("jsonl") => {
            let out = state.store.audit_jsonl(params.after).await?;
            Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown format `{other}`: use json or jsonl"
        ))),
    }
}

/// Recomputes the audit log's hash chain: `intact`, the entries read, and each problem
/// found (an edited entry, a removed one, a cut-off end).
#[utoipa::path(get, path = "/api/audit/verify",
    responses((status = 200, description = "{ intact, entries, problems }")),
    security(("bearer" = [])))]
pub async fn verify(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    who.require(Role::Admin)?;
    let check = state.store.verify_audit().await?;
    Ok(Json(serde_json::json!({
        "intact": check.is_intact(),
        "entries": check.entries,
        "problems": check.problems,
    })))
}
