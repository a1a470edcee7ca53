//! Alerts from the detectors: stored, listed (`GET /api/alerts`), sent as the signed
//! webhook `alert.raised`, and, when a detector blocks, applied on every node: each node
//! reads the active blocks from the store every two seconds (and applies its own at once).

use std::sync::Arc;
use std::time::Duration;

use crate::problem::Query;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_insight::detect::{Alert, Subject};
use tollgate_store::AlertRow;

use crate::AdminState;
use crate::config::current_document;
use crate::notify;
use crate::problem::ApiError;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/alerts", get(list))
        .route("/alerts/{id}/unblock", post(unblock))
}

fn row(a: &Alert, node: &str) -> AlertRow {
    let (kind, subject) = match &a.subject {
        Subject::Address(ip) => ("address", ip.to_string()),
        Subject::App(app) => ("app", app.to_string()),
        Subject::Api(api) => ("api", api.to_string()),
    };
    let mut id_rand = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut id_rand);
    AlertRow {
        id: format!("alt_{}", hex::encode(id_rand)),
        detector: a.detector.to_string(),
        subject_kind: kind.to_string(),
        subject,
        api: a.api.clone(),
        observed: i64::try_from(a.observed).unwrap_or(i64::MAX),
        threshold: i64::try_from(a.threshold).unwrap_or(i64::MAX),
        window_seconds: i64::try_from(a.window).unwrap_or(i64::MAX),
        blocked_until: a.blocked_until,
        at: a.at,
        node: node.to_string(),
        message: a.message(),
    }
}

async fn raise(state: &AdminState, a: &Alert, node: &str) -> Result<(), ApiError> {
    let r = row(a, node);
    // The block holds on this node even if the store cannot take the alert now.
    if let Some(until) = a.blocked_until {
        match &a.subject {
            Subject::Address(ip) => state.gateway.add_block(Some(*ip), None, until),
            Subject::App(app) => state.gateway.add_block(None, Some(app), until),
            Subject::Api(_) => {}
        }
    }
    state.store.add_alert(&r).await?;
    tracing::warn!(detector = a.detector, subject = %a.subject, observed = a.observed, blocked_until = ?a.blocked_until, "alert raised");
    let (_, set) = state.store.load().await?;
    let doc = current_document(&set)?;
    let audience = match &a.subject {
        Subject::App(app) => Some(notify::Audience {
            app: app.to_string(),
        }),
        Subject::Address(_) | Subject::Api(_) => None,
    };
    notify::raise(
        state,
        &doc,
        notify::Event {
            kind: "alert.raised",
            key: r.id.clone(),
            message: r.message.clone(),
            data: json!(r),
            notice: audience,
        },
    )
    .await
}

/// Stores and sends the alerts this node's detectors raise, until stopped.
pub fn spawn_alerts(
    state: Arc<AdminState>,
    node: String,
    mut rx: tokio::sync::mpsc::Receiver<Alert>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(a) = rx.recv().await {
            if let Err(e) = raise(&state, &a, &node).await {
                tracing::warn!(error = %e.detail, detector = a.detector, "alert not stored");
            }
        }
    })
}

/// The blocks of active alerts: each subject until its latest end.
fn blocks_of(rows: Vec<AlertRow>) -> tollgate_gateway::Blocks {
    let mut b = tollgate_gateway::Blocks::default();
    for r in rows {
        let until = r.blocked_until.unwrap_or(0);
        match r.subject_kind.as_str() {
            "address" => {
                if let Ok(ip) = r.subject.parse() {
                    let e = b.addresses.entry(ip).or_insert(until);
                    *e = (*e).max(until);
                }
            }
            "app" => {
                let e = b.apps.entry(r.subject).or_insert(until);
                *e = (*e).max(until);
            }
            _ => {}
        }
    }
    b
}

/// Applies the active blocks of every node's alerts, every two seconds, until stopped.
pub fn spawn_block_sync(state: Arc<AdminState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match state.store.active_blocks(notify::now()).await {
                Ok(rows) => state.gateway.set_blocks(blocks_of(rows)),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read blocks; keeping the current ones")
                }
            }
        }
    })
}

const DETECTORS: &[&str] = &[
    "auth_failures",
    "enumeration",
    "key_sharing",
    "traffic_spike",
    "error_spike",
    "latency_spike",
];

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AlertQuery {
    /// `auth_failures`, `enumeration`, `key_sharing`, `traffic_spike`, `error_spike` or
    /// `latency_spike`.
    detector: Option<String>,
    /// Unix seconds (default: the last 7 days).
    since: Option<i64>,
    /// At most 500 (default 100).
    limit: Option<i64>,
}

/// Alerts, newest first: `{"alerts":[{id, detector, subject_kind, subject, api, observed,
/// threshold, window_seconds, blocked_until, at, node, message}]}`.
#[utoipa::path(get, path = "/api/alerts", params(AlertQuery), responses((status = 200), (status = 400)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 500"));
    }
    if let Some(d) = &q.detector
        && !DETECTORS.contains(&d.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "detector `{d}` is not known: use {}",
            DETECTORS.join(", ")
        )));
    }
    let since = q.since.unwrap_or_else(|| notify::now() - 7 * 86_400);
    let rows = state
        .store
        .alerts(q.detector.as_deref(), since, limit)
        .await?;
    Ok(Json(json!({ "alerts": rows })))
}

/// Lifts an alert's block at once (on every node within two seconds).
#[utoipa::path(post, path = "/api/alerts/{id}/unblock", params(("id" = String, Path)), responses((status = 200), (status = 404)), security(("bearer" = [])))]
pub async fn unblock(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !state.store.lift_block(&id, notify::now()).await? {
        return Err(ApiError::not_found(format!("no alert `{id}`")));
    }
    // This node at once; the others at their next sync.
    let rows = state.store.active_blocks(notify::now()).await?;
    state.gateway.set_blocks(blocks_of(rows));
    Ok(Json(json!({ "id": id, "unblocked": true })))
}
