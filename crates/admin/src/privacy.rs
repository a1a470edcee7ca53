//! One developer's personal data (GDPR articles 15, 17 and 20): `GET
//! /api/developers/{email}/export` gathers everything Tollgate holds about them in one JSON
//! document; `POST /api/developers/{email}/erase` removes it.
//!
//! Erasure removes the developer, their apps (with their keys and credentials) and those
//! apps' subscriptions in one configuration change, then their portal account, sessions,
//! reset links and notices. Kept, and said so in the answer: invoices (bookkeeping law
//! requires them; they name the app, not the person), usage counts and analytics (keyed by
//! app and subscription names, no personal fields), and the audit log, whose hash chain
//! records the erasure itself; the entries that name the developer stay, as the record of
//! who changed what.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::AdminState;
use crate::auth::{Principal, Role};
use crate::collections::{read, write};
use crate::problem::ApiError;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/developers/{email}/export", get(export))
        .route("/developers/{email}/erase", post(erase))
}

/// Everything held about one developer: the developer, their portal account, their apps
/// (keys without secrets or hashes), subscriptions, usage per subscription, invoices and
/// notices.
#[utoipa::path(get, path = "/api/developers/{email}/export", params(("email" = String, Path)),
    responses((status = 200, description = "The developer's data as one JSON document"), (status = 404)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(email): Path<String>,
) -> Result<Json<Value>, ApiError> {
    who.require(Role::Admin)?;
    let doc = read(&state).await?;
    let developer = doc
        .developers
        .iter()
        .find(|d| d.email.eq_ignore_ascii_case(&email))
        .ok_or_else(|| ApiError::not_found(format!("no developer `{email}`")))?;
    let apps: Vec<&tollgate_model::App> = doc
        .apps
        .iter()
        .filter(|a| a.owner.eq_ignore_ascii_case(&email))
        .collect();
    let mut app_views = Vec::new();
    let mut usage = Vec::new();
    let mut invoices = Vec::new();
    for app in &apps {
        app_views.push(json!({
            "name": app.name,
            "description": app.description,
            "groups": app.groups,
            "keys": app.keys.iter().map(|k| json!({
                "id": k.id, "label": k.label, "created_at": k.created_at, "expires_at": k.expires_at,
            })).collect::<Vec<_>>(),
            "jwt_subjects": app.jwt_subjects,
            "oauth2_clients": app.oauth2_clients,
            "basic_usernames": app.basic.iter().map(|b| &b.username).collect::<Vec<_>>(),
            "certificates": app.certificates.len(),
        }));
        for t in state
            .store
            .usage(&format!("{}:", app.name), 0, i64::MAX / 2)
            .await?
        {
            usage.push(json!({ "subscription": t.subscription, "requests": t.requests, "billable": t.billable }));
        }
        for i in state.store.invoices_of_app(&app.name).await? {
            invoices.push(serde_json::from_str::<Value>(&i.body).unwrap_or(Value::Null));
        }
    }
    let subscriptions: Vec<&tollgate_model::Subscription> = doc
        .subscriptions
        .iter()
        .filter(|s| apps.iter().any(|a| a.name == s.app))
        .collect();
    let notices: Vec<Value> = state
        .store
        .notices(Some(&email.to_ascii_lowercase()), None, 10_000)
        .await?
        .into_iter()
        .map(|n| json!({ "app": n.app, "kind": n.kind, "message": n.message, "created_at": n.created_at }))
        .collect();
    Ok(Json(json!({
        "exported_at": tollgate_store::now_rfc3339(),
        "developer": developer,
        "portal_account": state.store.portal_account_info(&email.to_ascii_lowercase()).await?,
        "apps": app_views,
        "subscriptions": subscriptions,
        "usage": usage,
        "invoices": invoices,
        "notices": notices,
    })))
}

/// Erases one developer: the developer, their apps and those apps' subscriptions (one
/// configuration change, in the audit log), then their portal account, sessions, reset
/// links and notices.
#[utoipa::path(post, path = "/api/developers/{email}/erase", params(("email" = String, Path)),
    responses((status = 200, description = "What was removed and what was kept"), (status = 404)),
    security(("bearer" = [])))]
pub async fn erase(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(email): Path<String>,
) -> Result<Json<Value>, ApiError> {
    who.require(Role::Admin)?;
    let mut removed_apps = Vec::new();
    let mut removed_subscriptions = 0usize;
    let outcome = write(&state, &who, |doc| {
        let before = doc.developers.len();
        doc.developers
            .retain(|d| !d.email.eq_ignore_ascii_case(&email));
        if doc.developers.len() == before {
            return Err(ApiError::not_found(format!("no developer `{email}`")));
        }
        removed_apps = doc
            .apps
            .iter()
            .filter(|a| a.owner.eq_ignore_ascii_case(&email))
            .map(|a| a.name.clone())
            .collect();
        doc.apps.retain(|a| !removed_apps.contains(&a.name));
        let subs = doc.subscriptions.len();
        doc.subscriptions.retain(|s| !removed_apps.contains(&s.app));
        removed_subscriptions = subs - doc.subscriptions.len();
        Ok(())
    })
    .await?;
    let erased = state.store.erase_developer_data(&email).await?;
    tracing::info!(developer = %email, apps = removed_apps.len(), by = %who.label, "developer erased");
    Ok(Json(json!({
        "revision": outcome.revision,
        "removed": {
            "developer": email,
            "apps": removed_apps,
            "subscriptions": removed_subscriptions,
            "portal_accounts": erased.portal_accounts,
            "sessions": erased.sessions,
            "password_resets": erased.password_resets,
            "notices": erased.notices,
        },
        "kept": {
            "invoices": "kept for bookkeeping; they name apps, not people",
            "usage_and_analytics": "counts keyed by app and subscription names, with no personal fields",
            "audit_log": "append-only and hash-chained: it records this erasure, and earlier entries that name the developer stay as the record of who changed what",
        },
    })))
}
