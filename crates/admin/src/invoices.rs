//! Invoices: `POST /api/invoices/run?period=YYYY-MM` computes one invoice per subscription
//! from the period's metered usage with the pricing engine; running it again yields the same
//! invoices (same ids, same lines) and replaces the stored ones. `GET /api/invoices?period=`
//! lists them, `GET /api/invoices/{id}` shows one.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tollgate_model::SubscriptionStatus;
use tollgate_pricing::{Share, bill, format_cents};
use tollgate_store::InvoiceRow;

use crate::AdminState;
use crate::config::current_document;
use crate::problem::ApiError;
use crate::usage::month_minutes;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/invoices/run", post(run))
        .route("/invoices", get(list))
        .route("/invoices/{id}", get(show))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PeriodQuery {
    /// A calendar month, `YYYY-MM` (UTC).
    period: String,
}

fn invoice_id(period: &str, app: &str, product: &str) -> String {
    let digest = Sha256::digest(format!("{period}|{app}|{product}").as_bytes());
    format!("inv_{}", &hex::encode(digest)[..20])
}

fn check_period(period: &str) -> Result<(i64, i64), ApiError> {
    month_minutes(period).ok_or_else(|| {
        ApiError::bad_request(format!("period `{period}` is not a month written YYYY-MM"))
    })
}

/// Computes the period's invoices: for every active or suspended subscription, its plan's
/// price applied to the billable requests metered in the period (all nodes). Replaces the
/// invoices stored for that period; the same usage always gives the same invoices.
#[utoipa::path(post, path = "/api/invoices/run", params(PeriodQuery), responses((status = 200, description = "The period's invoices"), (status = 400, description = "Bad period")), security(("bearer" = [])))]
pub async fn run(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<PeriodQuery>,
) -> Result<Json<Value>, ApiError> {
    let (from, to) = check_period(&q.period)?;
    let (_, set) = state.store.load().await?;
    let doc = current_document(&set)?;
    let usage = state.store.usage("", from, to).await?;
    let mut rows = Vec::new();
    let mut invoices = Vec::new();
    let mut subs: Vec<_> = doc
        .subscriptions
        .iter()
        .filter(|s| {
            matches!(
                s.status,
                SubscriptionStatus::Active | SubscriptionStatus::Suspended
            )
        })
        .collect();
    subs.sort_by(|a, b| (&a.app, &a.product).cmp(&(&b.app, &b.product)));
    for s in subs {
        let Some(plan) = doc
            .products
            .iter()
            .find(|p| p.name == s.product)
            .and_then(|p| p.plans.iter().find(|pl| pl.name == s.plan))
        else {
            continue;
        };
        let metered = usage.iter().find(|u| u.subscription == s.key());
        let (requests, billable) = metered.map_or((0, 0), |u| (u.requests, u.billable));
        let quote = bill(&plan.price, billable, Share::FULL, false);
        let id = invoice_id(&q.period, &s.app, &s.product);
        let body = json!({
            "id": id,
            "app": s.app,
            "product": s.product,
            "plan": s.plan,
            "period": q.period,
            "currency": quote.currency,
            "usage": { "requests": requests, "billable": billable },
            "lines": quote.lines,
            "total": format_cents(quote.total),
        });
        rows.push(InvoiceRow {
            id,
            period: q.period.clone(),
            app: s.app.clone(),
            product: s.product.clone(),
            body: body.to_string(),
        });
        invoices.push(body);
    }
    state.store.replace_invoices(&q.period, &rows).await?;
    tracing::info!(period = %q.period, invoices = rows.len(), "invoices computed");
    Ok(Json(json!({ "period": q.period, "invoices": invoices })))
}

fn parse(row: &InvoiceRow) -> Result<Value, ApiError> {
    serde_json::from_str(&row.body).map_err(ApiError::internal)
}

/// The invoices of a period, as last computed.
#[utoipa::path(get, path = "/api/invoices", params(PeriodQuery), responses((status = 200, description = "`{\"invoices\":[…]}`")), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<PeriodQuery>,
) -> Result<Json<Value>, ApiError> {
    check_period(&q.period)?;
    let rows = state.store.invoices(&q.period).await?;
    let invoices = rows.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "invoices": invoices })))
}

/// One invoice.
#[utoipa::path(get, path = "/api/invoices/{id}", params(("id" = String, Path)), responses((status = 200), (status = 404)), security(("bearer" = [])))]
pub async fn show(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = state
        .store
        .invoice(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no invoice `{id}`")))?;
    Ok(Json(parse(&row)?))
}
