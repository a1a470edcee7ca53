//! Events Tollgate raises for people and systems: a notice stored for the developer (shown
//! in the portal, `GET /api/notices`) and a signed delivery queued for every webhook that
//! asked for the event. Raising the same event twice (a re-run, another node) does nothing
//! the second time. A worker delivers the queue, retrying with backoff.
//!
//! Signature: `Tollgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//! A receiver recomputes it over the raw body, compares in constant time, and refuses a
//! `t` older than a few minutes (replays).

use std::sync::Arc;
use std::time::Duration;

use crate::problem::Query;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tollgate_model::Document;
use tollgate_store::{Attempt, Delivery, Notice};

use crate::AdminState;
use crate::config::current_document;
use crate::problem::ApiError;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/notices", get(notices))
        .route("/webhooks/deliveries", get(deliveries))
}

/// Who a notice is for.
pub struct Audience {
    pub app: String,
}

/// One event to raise.
pub struct Event {
    /// `invoice.finalized`, `quota.warning`, … (`tollgate_model::webhook::EVENTS`).
    pub kind: &'static str,
    /// What makes it the same event: raised again with the same key, it is not repeated.
    pub key: String,
    pub message: String,
    pub data: Value,
    /// A notice for the developer owning this app, too.
    pub notice: Option<Audience>,
}

fn digest(parts: &str) -> String {
    hex::encode(Sha256::digest(parts.as_bytes()))[..24].to_string()
}

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Stores the notice and queues the webhook deliveries of an event.
pub async fn raise(state: &AdminState, doc: &Document, event: Event) -> Result<(), ApiError> {
    let at = now();
    if let Some(to) = &event.notice {
        let developer = doc
            .apps
            .iter()
            .find(|a| a.name == to.app)
            .map(|a| a.owner.to_ascii_lowercase())
            .unwrap_or_default();
        let notice = Notice {
            id: format!("ntc_{}", digest(&format!("{}|{}", event.kind, event.key))),
            developer,
            app: to.app.clone(),
            kind: event.kind.to_string(),
            message: event.message.clone(),
            body: event.data.to_string(),
            created_at: at,
        };
        state.store.add_notice(&notice).await?;
    }
    let rows: Vec<Delivery> = doc
        .webhooks
        .iter()
        .filter(|w| w.wants(event.kind))
        .map(|w| {
            let id = format!(
                "evt_{}",
                digest(&format!("{}|{}|{}", w.name, event.kind, event.key))
            );
            let body = json!({
                "id": id,
                "type": event.kind,
                "created": at,
                "message": event.message,
                "data": event.data,
            });
            Delivery {
                id,
                webhook: w.name.clone(),
                event: event.kind.to_string(),
                dedupe: format!("{}|{}|{}", w.name, event.kind, event.key),
                body: body.to_string(),
                created_at: at,
                attempts: 0,
                next_attempt_at: at,
                status: "pending".to_string(),
                last_error: None,
            }
        })
        .collect();
    if !rows.is_empty() {
        let queued = state.store.enqueue_deliveries(&rows).await?;
        if queued > 0 {
            tracing::info!(event = event.kind, key = %event.key, queued, "webhook deliveries queued");
        }
    }
    Ok(())
}

/// `t=…,v1=…` for a body sent at `t`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Attempts before a delivery is given up (about 75 minutes of retries).
const MAX_ATTEMPTS: i64 = 10;

/// Wait before retry number `attempts` (1-based): 10 s, 20 s, 40 s, … at most 30 minutes.
fn backoff(attempts: i64) -> i64 {
    (10i64 << attempts.clamp(1, 20).saturating_sub(1)).min(1800)
}

/// Sends one claimed delivery and says how it went.
async fn attempt(state: &AdminState, doc: &Document, d: &Delivery) -> Attempt {
    let Some(w) = doc
        .webhooks
        .iter()
        .find(|w| w.name == d.webhook && w.enabled)
    else {
        return Attempt::GaveUp {
            error: format!("webhook `{}` was removed or disabled", d.webhook),
        };
    };
    let secret = if tollgate_secrets::is_sealed(&w.secret) {
        match state.gateway.secrets() {
            Some(s) => s.open(&w.secret).map_err(|e| e.to_string()),
            None => Err("this node has no node secret to open it with".to_string()),
        }
    } else {
        Ok(w.secret.clone())
    };
    let secret = match secret {
        Ok(s) => s,
        Err(e) => {
            return Attempt::GaveUp {
                error: format!("the signing secret cannot be opened: {e}"),
            };
        }
    };
    let headers = [
        ("tollgate-signature", signature(&secret, now(), &d.body)),
        ("tollgate-event", d.event.clone()),
        ("tollgate-delivery", d.id.clone()),
    ];
    match tollgate_gateway::fetch::post_json(&w.url, &headers, d.body.clone()).await {
        Ok(()) => Attempt::Delivered,
        Err(e) if d.attempts + 1 >= MAX_ATTEMPTS => Attempt::GaveUp { error: e },
        Err(e) => Attempt::Retry {
            at: now() + backoff(d.attempts + 1),
            error: e,
        },
    }
}

/// Sends what is due, once: the claimed deliveries go out at the same time, each bounded
/// by the 5 s call timeout, well inside the 60 s claim. Answers how many were attempted.
pub async fn deliver_due(state: &Arc<AdminState>) -> Result<usize, ApiError> {
    let due = state.store.claim_deliveries(now(), 60, 20).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let (_, set) = state.store.load().await?;
    let doc = Arc::new(current_document(&set)?);
    let attempted = due.len();
    let mut sends = tokio::task::JoinSet::new();
    for d in due {
        let (state, doc) = (state.clone(), doc.clone());
        sends.spawn(async move {
            let outcome = attempt(&state, &doc, &d).await;
            (d, outcome)
        });
    }
    while let Some(done) = sends.join_next().await {
        let Ok((d, outcome)) = done else { continue };
        match &outcome {
            Attempt::Delivered => {
                tracing::debug!(delivery = %d.id, webhook = %d.webhook, "webhook delivered")
            }
            Attempt::Retry { error, .. } => {
                tracing::warn!(delivery = %d.id, webhook = %d.webhook, %error, "webhook delivery failed; will retry")
            }
            Attempt::GaveUp { error } => {
                tracing::warn!(delivery = %d.id, webhook = %d.webhook, %error, "webhook delivery given up")
            }
        }
        state.store.finish_delivery(&d.id, &outcome).await?;
    }
    Ok(attempted)
}

/// Delivers the webhook queue every second until the task is stopped.
pub fn spawn_webhook_worker(state: Arc<AdminState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = deliver_due(&state).await {
                tracing::warn!(error = %e.detail, "webhook worker");
            }
        }
    })
}

/// Raises `quota.warning` (80%) and `quota.exhausted` (100%) for plan quotas as the
/// gateway reports them, until the task is stopped.
pub fn spawn_quota_notices(
    state: Arc<AdminState>,
    mut rx: tokio::sync::mpsc::Receiver<tollgate_gateway::limit::QuotaNotice>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(n) = rx.recv().await {
            if let Err(e) = raise_quota(&state, &n).await {
                tracing::warn!(error = %e.detail, app = %n.app, "quota notice not raised");
            }
        }
    })
}

async fn raise_quota(
    state: &AdminState,
    n: &tollgate_gateway::limit::QuotaNotice,
) -> Result<(), ApiError> {
    let (_, set) = state.store.load().await?;
    let doc = current_document(&set)?;
    let (kind, message) = if n.percent >= 100 {
        (
            "quota.exhausted",
            format!(
                "App `{}` has used all {} calls of its `{}` plan quota on product `{}` for {}; further calls are refused until the period ends",
                n.app, n.limit, n.plan, n.product, n.period
            ),
        )
    } else {
        (
            "quota.warning",
            format!(
                "App `{}` has used {}% of its `{}` plan quota on product `{}` for {} ({} of {})",
                n.app, n.percent, n.plan, n.product, n.period, n.used, n.limit
            ),
        )
    };
    raise(
        state,
        &doc,
        Event {
            kind,
            key: format!(
                "{}:{}|{}|{}|{}",
                n.app, n.product, n.plan, n.period, n.percent
            ),
            message,
            data: json!({
                "app": n.app,
                "subscription": format!("{}:{}", n.app, n.product),
                "product": n.product,
                "plan": n.plan,
                "period": n.period,
                "percent": n.percent,
                "used": n.used,
                "limit": n.limit,
            }),
            notice: Some(Audience { app: n.app.clone() }),
        },
    )
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct NoticeQuery {
    /// Only this developer's notices (e-mail).
    developer: Option<String>,
    /// Only notices about this app.
    app: Option<String>,
}

/// Notices for developers (quota thresholds, credit), newest first; at most 200.
#[utoipa::path(get, path = "/api/notices", params(NoticeQuery), responses((status = 200, description = "`{\"notices\":[…]}`")), security(("bearer" = [])))]
pub async fn notices(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<NoticeQuery>,
) -> Result<Json<Value>, ApiError> {
    let list = state
        .store
        .notices(
            q.developer.map(|d| d.to_ascii_lowercase()).as_deref(),
            q.app.as_deref(),
            200,
        )
        .await?;
    let list: Vec<Value> = list
        .into_iter()
        .map(|n| {
            json!({
                "id": n.id,
                "developer": n.developer,
                "app": n.app,
                "kind": n.kind,
                "message": n.message,
                "data": serde_json::from_str::<Value>(&n.body).unwrap_or(Value::Null),
                "created_at": n.created_at,
            })
        })
        .collect();
    Ok(Json(json!({ "notices": list })))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DeliveryQuery {
    /// `pending`, `delivered` or `failed`.
    status: Option<String>,
}

/// Webhook deliveries, newest first; at most 200.
#[utoipa::path(get, path = "/api/webhooks/deliveries", params(DeliveryQuery), responses((status = 200, description = "`{\"deliveries\":[…]}`"), (status = 400)), security(("bearer" = [])))]
pub async fn deliveries(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<DeliveryQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(s) = &q.status
        && !["pending", "delivered", "failed"].contains(&s.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "status `{s}` is not known: use pending, delivered or failed"
        )));
    }
    let list = state.store.deliveries(q.status.as_deref(), 200).await?;
    Ok(Json(json!({ "deliveries": list })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_and_body() {
        // HMAC-SHA256(key = "whsec_test_secret_1", "1700000000.{}"), computed independently
        // with `printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test_secret_1`.
        let sig = signature("whsec_test_secret_1", 1_700_000_000, "{}");
        assert_eq!(
            sig,
            "t=1700000000,v1=3cc6d220bd6d001d0f1931d315cb1765435a39bb810cde4e05e23a2b6d71a945"
        );
        assert_ne!(sig, signature("whsec_test_secret_2", 1_700_000_000, "{}"));
        assert_ne!(sig, signature("whsec_test_secret_1", 1_700_000_001, "{}"));
    }

    #[test]
    fn backoff_doubles_up_to_half_an_hour() {
        assert_eq!(backoff(1), 10);
        assert_eq!(backoff(2), 20);
        assert_eq!(backoff(4), 80);
        assert_eq!(backoff(9), 1800);
    }
}
