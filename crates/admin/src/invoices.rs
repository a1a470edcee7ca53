//! Invoices: `POST /api/invoices/run?period=YYYY-MM` computes one invoice per subscription
//! from the period's metered usage with the pricing engine; running it again yields the same
//! invoices (same ids, same lines) and replaces the stored ones. `GET /api/invoices?period=`
//! lists them, `GET /api/invoices/{id}` shows one.

use std::sync::Arc;

use crate::analytics::rfc3339;
use crate::problem::Query;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tollgate_model::{Document, Subscription, SubscriptionStatus};
use tollgate_pricing::format_cents;
use tollgate_store::{CreditEntry, InvoiceRow};

use crate::AdminState;
use crate::billing;
use crate::config::current_document;
use crate::export;
use crate::notify;
use crate::problem::ApiError;
use crate::usage::month_minutes;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/invoices/run", post(run))
        .route("/invoices", get(list))
        .route("/invoices/{id}", get(show))
        .route("/simulate", get(simulate))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct RunQuery {
    /// A calendar month, `YYYY-MM` (UTC).
    period: String,
    /// Finalize a month that has not ended yet (a month that has ended is always final).
    #[serde(default)]
    finalize: bool,
}

fn invoice_id(period: &str, app: &str, product: &str) -> String {
    let digest = Sha256::digest(format!("{period}|{app}|{product}").as_bytes());
    format!("inv_{}", &hex::encode(digest)[..20])
}

pub(crate) fn check_period(period: &str) -> Result<(i64, i64), ApiError> {
    month_minutes(period).ok_or_else(|| {
        ApiError::bad_request(format!("period `{period}` is not a month written YYYY-MM"))
    })
}

/// The invoice of one subscription for a month, or `None` when it was not billable then.
/// `on_plan` prices the whole month on another plan of the product (the price simulator).
pub(crate) async fn invoice_for(
    state: &AdminState,
    doc: &Document,
    sub: &Subscription,
    period: &str,
    on_plan: Option<&str>,
) -> Result<Option<Value>, ApiError> {
    let (from, to) = check_period(period)?;
    let month = (from * 60, to * 60);
    let stretches = billing::stretches(sub, month, on_plan);
    if stretches.is_empty() {
        return Ok(None);
    }
    let key = sub.key();
    let mut priced = Vec::new();
    let mut parts = Vec::new();
    let (mut requests, mut billable) = (0, 0);
    for s in stretches {
        let used = state
            .store
            .usage(&key, s.minutes.0, s.minutes.1)
            .await?
            .into_iter()
            .find(|u| u.subscription == key)
            .map_or((0, 0), |u| (u.requests, u.billable));
        requests += used.0;
        billable += used.1;
        parts.push(json!({
            "plan": s.plan,
            "from": rfc3339(s.from),
            "to": rfc3339(s.to),
            "requests": used.0,
            "billable": used.1,
        }));
        priced.push((s, used.1));
    }
    let quote = billing::price(doc, sub, month, &priced).map_err(ApiError::conflict)?;
    // The plan the period ended on (not necessarily today's).
    let plan = priced
        .last()
        .map_or(sub.plan.as_str(), |(s, _)| s.plan.as_str());
    let prepaid = priced
        .iter()
        .any(|(s, _)| billing::plan(doc, &sub.product, &s.plan).is_some_and(|p| p.prepaid));
    Ok(Some(json!({
        "id": invoice_id(period, &sub.app, &sub.product),
        "app": sub.app,
        "product": sub.product,
        "plan": plan,
        "prepaid": prepaid,
        "period": period,
        "currency": quote.currency,
        "usage": { "requests": requests, "billable": billable },
        "plans": parts,
        "lines": quote.lines,
        "total": format_cents(quote.total),
    })))
}

/// Computes the period's invoices: for every subscription billable in the month (active,
/// suspended, or cancelled during it), each plan it had priced on the billable requests
/// metered while it had it (all nodes). Replaces the invoices stored for that period; the
/// same usage always gives the same invoices.
///
/// Invoices of a month that has ended (or run with `finalize=true`) are `final`: each raises
/// `invoice.finalized` (once per distinct invoice: an identical re-run raises nothing) and
/// is debited from prepaid credit. Those of a running month are `draft`.
#[utoipa::path(post, path = "/api/invoices/run", params(RunQuery), responses((status = 200, description = "The period's invoices"), (status = 400, description = "Bad period"), (status = 409, description = "A subscription had plans in two currencies")), security(("bearer" = [])))]
pub async fn run(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<RunQuery>,
) -> Result<Json<Value>, ApiError> {
    let (_, to) = check_period(&q.period)?;
    let status = if q.finalize || to * 60 <= notify::now() {
        "final"
    } else {
        "draft"
    };
    let (_, set) = state.store.load().await?;
    let doc = current_document(&set)?;
    let mut subs: Vec<_> = doc
        .subscriptions
        .iter()
        .filter(|s| s.status != SubscriptionStatus::Pending)
        .filter(|s| s.status != SubscriptionStatus::Cancelled || s.ended_at.is_some())
        .collect();
    subs.sort_by(|a, b| (&a.app, &a.product).cmp(&(&b.app, &b.product)));
    let mut rows = Vec::new();
    let mut invoices = Vec::new();
    let mut debits = Vec::new();
    for s in subs {
        let Some(mut body) = invoice_for(&state, &doc, s, &q.period, None).await? else {
            continue;
        };
        body["status"] = json!(status);
        let id = invoice_id(&q.period, &s.app, &s.product);
        if status == "final" && body["prepaid"] == json!(true) {
            debits.push(CreditEntry {
                id: format!("deb_{id}"),
                subscription: s.key(),
                period: q.period.clone(),
                kind: "invoice".to_string(),
                amount: format!("-{}", body["total"].as_str().unwrap_or("0")),
                note: format!("invoice {id}"),
                created_at: notify::now(),
            });
        }
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
    if status == "final" {
        state
            .store
            .replace_invoice_debits(&q.period, &debits)
            .await?;
        for inv in &invoices {
            let digest = hex::encode(Sha256::digest(inv.to_string().as_bytes()));
            let app = inv["app"].as_str().unwrap_or_default().to_string();
            notify::raise(
                &state,
                &doc,
                notify::Event {
                    kind: "invoice.finalized",
                    key: format!(
                        "{}|{}",
                        inv["id"].as_str().unwrap_or_default(),
                        &digest[..16]
                    ),
                    message: format!(
                        "Invoice {} for {} of app `{app}` on product `{}`: {} {}",
                        inv["id"].as_str().unwrap_or_default(),
                        q.period,
                        inv["product"].as_str().unwrap_or_default(),
                        inv["total"].as_str().unwrap_or_default(),
                        inv["currency"].as_str().unwrap_or_default()
                    ),
                    data: inv.clone(),
                    notice: Some(notify::Audience { app }),
                },
            )
            .await?;
        }
    }
    tracing::info!(period = %q.period, invoices = rows.len(), status, "invoices computed");
    Ok(Json(
        json!({ "period": q.period, "status": status, "invoices": invoices }),
    ))
}

fn parse(row: &InvoiceRow) -> Result<Value, ApiError> {
    serde_json::from_str(&row.body).map_err(ApiError::internal)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// A calendar month, `YYYY-MM` (UTC).
    period: String,
    /// `json` (default) or `csv` (one row per invoice line).
    format: Option<String>,
}

/// The invoices of a period, as last computed; `format=csv` for a spreadsheet or an
/// accounting import.
#[utoipa::path(get, path = "/api/invoices", params(ListQuery), responses((status = 200, description = "`{\"invoices\":[…]}`, or CSV")), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    check_period(&q.period)?;
    let rows = state.store.invoices(&q.period).await?;
    let invoices = rows.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(json!({ "invoices": invoices })).into_response()),
        "csv" => Ok(export::csv_response(
            &format!("invoices-{}.csv", q.period),
            export::invoices_csv(&invoices),
        )),
        other => Err(ApiError::bad_request(format!(
            "format `{other}` is not known: use json or csv"
        ))),
    }
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

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SimulateQuery {
    app: String,
    product: String,
    /// The plan of the product to price the period on.
    plan: String,
    /// A calendar month, `YYYY-MM` (UTC); its real metered usage is priced.
    period: String,
}

/// The price simulator: what a month of an app's real usage cost on its plans, and what it
/// would have cost on another plan of the same product: the same usage, start and end, with
/// every stretch on that plan (its setup fee too, if the subscription started that month).
#[utoipa::path(get, path = "/api/simulate", params(SimulateQuery),
    responses((status = 200, description = "`{actual, simulated, difference}`, each invoice-shaped (`difference` null across currencies)"), (status = 400), (status = 404, description = "No such subscription or plan"), (status = 409, description = "The subscription is pending")), security(("bearer" = [])))]
pub async fn simulate(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<SimulateQuery>,
) -> Result<Json<Value>, ApiError> {
    check_period(&q.period)?;
    let (_, set) = state.store.load().await?;
    let doc = current_document(&set)?;
    let sub = doc
        .subscriptions
        .iter()
        .find(|s| s.app == q.app && s.product == q.product)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "app `{}` has no subscription to product `{}`",
                q.app, q.product
            ))
        })?;
    if sub.status == SubscriptionStatus::Pending {
        return Err(ApiError::conflict(format!(
            "the subscription of app `{}` to product `{}` is pending: it has no usage to price yet",
            q.app, q.product
        )));
    }
    if billing::plan(&doc, &q.product, &q.plan).is_none() {
        return Err(ApiError::not_found(format!(
            "product `{}` has no plan `{}`",
            q.product, q.plan
        )));
    }
    let actual = invoice_for(&state, &doc, sub, &q.period, None).await?;
    let simulated = invoice_for(&state, &doc, sub, &q.period, Some(&q.plan)).await?;
    let total = |v: &Option<Value>| {
        v.as_ref()
            .and_then(|v| v["total"].as_str())
            .and_then(|t| t.parse::<tollgate_pricing::Decimal>().ok())
            .unwrap_or_default()
    };
    let currency = |v: &Option<Value>| v.as_ref().map(|v| v["currency"].clone());
    // Totals in two currencies are not subtracted.
    let difference =
        (currency(&simulated) == currency(&actual) || actual.is_none() || simulated.is_none())
            .then(|| format_cents(total(&simulated) - total(&actual)));
    Ok(Json(json!({
        "app": q.app,
        "product": q.product,
        "period": q.period,
        "actual": actual,
        "simulated": simulated,
        "difference": difference,
    })))
}
