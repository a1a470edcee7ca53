//! Prepaid credit: a subscription to a `prepaid` plan calls only while its credit lasts.
//! Credit is a ledger per subscription: top-ups (`POST /api/subscriptions/{id}/credit`)
//! and the debits of final invoices. What is available now is the balance less what is not
//! invoiced as final yet: the running month so far (its metered usage priced like its
//! invoice will be) and last month while its final invoice is not run.
//!
//! A watcher recomputes that every two seconds from the store (all nodes' usage) and hands
//! the gateway the subscriptions whose credit is spent: their calls get 402 until credit is
//! added. Calls can run past zero by what the cluster serves in one flush plus one check
//! (about three seconds); that overshoot is billed like any other usage.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_model::{Document, Subscription, SubscriptionStatus};
use tollgate_pricing::{Decimal, format_cents};
use tollgate_store::CreditEntry;

use crate::AdminState;
use crate::billing;
use crate::collections::parse;
use crate::config::current_document;
use crate::invoices::invoice_for;
use crate::notify;
use crate::problem::ApiError;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new().route(
        "/subscriptions/{id}/credit",
        get(show_credit).post(add_credit),
    )
}

/// Where a subscription's credit stands.
pub struct Standing {
    pub currency: String,
    pub balance: Decimal,
    pub period: String,
    /// What is not invoiced as final yet: the running month's charges so far, plus last
    /// month's while it has no final invoice.
    pub spent: Decimal,
    pub available: Decimal,
    pub topups: Decimal,
}

fn random_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn month_of(t: time::OffsetDateTime) -> String {
    format!("{:04}-{:02}", t.year(), u8::from(t.month()))
}

fn current_period() -> String {
    month_of(time::OffsetDateTime::now_utc())
}

fn previous_period() -> String {
    let now = time::OffsetDateTime::now_utc();
    let first = now.date().replace_day(1).unwrap_or(now.date());
    first
        .previous_day()
        .map_or_else(current_period, |d| month_of(d.midnight().assume_utc()))
}

fn amount(e: &CreditEntry) -> Decimal {
    e.amount.parse().unwrap_or_default()
}

/// The credit of `sub` given its ledger entries.
pub async fn standing(
    state: &AdminState,
    doc: &Document,
    sub: &Subscription,
    entries: &[CreditEntry],
) -> Result<Standing, ApiError> {
    let period = current_period();
    let balance: Decimal = entries.iter().map(amount).sum();
    let topups: Decimal = entries
        .iter()
        .filter(|e| e.kind == "topup")
        .map(amount)
        .sum();
    let mut spent = Decimal::ZERO;
    for month in [previous_period(), period.clone()] {
        let invoiced = entries
            .iter()
            .any(|e| e.kind == "invoice" && e.period == month);
        if !invoiced {
            spent += invoice_for(state, doc, sub, &month, None)
                .await?
                .and_then(|inv| {
                    inv["total"]
                        .as_str()
                        .and_then(|t| t.parse::<Decimal>().ok())
                })
                .unwrap_or_default();
        }
    }
    let currency = billing::plan(doc, &sub.product, &sub.plan)
        .map_or_else(|| "USD".to_string(), |p| p.price.currency.clone());
    Ok(Standing {
        currency,
        available: balance - spent,
        balance,
        period,
        spent,
        topups,
    })
}

fn find<'a>(doc: &'a Document, id: &str) -> Result<&'a Subscription, ApiError> {
    doc.subscriptions
        .iter()
        .find(|s| s.key() == id)
        .ok_or_else(|| ApiError::not_found(format!("no subscription `{id}`")))
}

async fn answer(state: &AdminState, doc: &Document, sub: &Subscription) -> Result<Value, ApiError> {
    let entries = state.store.credit_entries(Some(&sub.key())).await?;
    let st = standing(state, doc, sub, &entries).await?;
    let prepaid = billing::plan(doc, &sub.product, &sub.plan).is_some_and(|p| p.prepaid);
    Ok(json!({
        "subscription": sub.key(),
        "prepaid": prepaid,
        "currency": st.currency,
        "balance": format_cents(st.balance),
        "period": st.period,
        "spent_not_invoiced": format_cents(st.spent),
        "available": format_cents(st.available),
        "entries": entries,
    }))
}

/// A subscription's prepaid credit: balance, what the running month has cost so far, what
/// is available, and the ledger.
#[utoipa::path(get, path = "/api/subscriptions/{id}/credit", params(("id" = String, Path)), responses((status = 200), (status = 404)), security(("bearer" = [])))]
pub async fn show_credit(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, set) = state.store.load().await?;
    let doc = current_document(&set)?;
    let sub = find(&doc, &id)?;
    Ok(Json(answer(&state, &doc, sub).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUp {
    /// In the plan's currency, a decimal string or number with at most two decimals.
    #[schema(value_type = String)]
    amount: tollgate_pricing::Money,
    #[serde(default)]
    note: Option<String>,
}

/// Largest single top-up.
const MAX_TOPUP: i64 = 10_000_000;

/// Adds prepaid credit to a subscription; calls stopped for spent credit resume within
/// seconds.
#[utoipa::path(post, path = "/api/subscriptions/{id}/credit", params(("id" = String, Path)), request_body = TopUp,
    responses((status = 201), (status = 400, description = "Bad amount"), (status = 404)), security(("bearer" = [])))]
pub async fn add_credit(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: TopUp = parse(&body)?;
    let amount = req.amount.0.normalize();
    if amount <= Decimal::ZERO || amount > Decimal::from(MAX_TOPUP) || amount.scale() > 2 {
        return Err(ApiError::bad_request(format!(
            "amount `{amount}` must be positive, at most {MAX_TOPUP}, with at most two decimals"
        )));
    }
    let note = req.note.unwrap_or_default();
    if note.len() > 500 {
        return Err(ApiError::bad_request("note is longer than 500 bytes"));
    }
    let (_, set) = state.store.load().await?;
    let doc = current_document(&set)?;
    let sub = find(&doc, &id)?;
    if !billing::plan(&doc, &sub.product, &sub.plan).is_some_and(|p| p.prepaid) {
        return Err(ApiError::conflict(format!(
            "subscription `{id}` is on plan `{}`, which is not prepaid: credit would not be used",
            sub.plan
        )));
    }
    let now = time::OffsetDateTime::now_utc();
    state
        .store
        .add_credit(&CreditEntry {
            id: format!("top_{}", random_id()),
            subscription: sub.key(),
            period: current_period(),
            kind: "topup".to_string(),
            amount: format_cents(amount),
            note,
            created_at: now.unix_timestamp(),
        })
        .await?;
    tracing::info!(subscription = %sub.key(), %amount, "prepaid credit added");
    let body = answer(&state, &doc, sub).await?;
    refresh(&state, &doc).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Recomputes which prepaid subscriptions have spent their credit, tells the gateway, and
/// raises `credit.exhausted` for each newly spent one (once per subscription, month and
/// total of top-ups, across nodes).
pub async fn refresh(state: &AdminState, doc: &Document) -> Result<usize, ApiError> {
    let prepaid: Vec<&Subscription> = doc
        .subscriptions
        .iter()
        .filter(|s| s.status == SubscriptionStatus::Active)
        .filter(|s| billing::plan(doc, &s.product, &s.plan).is_some_and(|p| p.prepaid))
        .collect();
    let mut spent = HashSet::new();
    if !prepaid.is_empty() {
        let entries = state.store.credit_entries(None).await?;
        for s in prepaid {
            let key = s.key();
            let mine: Vec<CreditEntry> = entries
                .iter()
                .filter(|e| e.subscription == key)
                .cloned()
                .collect();
            let st = standing(state, doc, s, &mine).await?;
            if st.available <= Decimal::ZERO {
                spent.insert(key.clone());
                if state.gateway.meter.credit_spent(&key) {
                    // Already stopped and reported.
                    continue;
                }
                notify::raise(
                    state,
                    doc,
                    notify::Event {
                        kind: "credit.exhausted",
                        key: format!("{key}|{}|{}", st.period, format_cents(st.topups)),
                        message: format!(
                            "The prepaid credit of app `{}` on product `{}` is spent ({} {} of {} {} in top-ups); calls are refused until credit is added",
                            s.app,
                            s.product,
                            format_cents(st.balance - st.available),
                            st.currency,
                            format_cents(st.topups),
                            st.currency
                        ),
                        data: json!({
                            "subscription": key,
                            "app": s.app,
                            "product": s.product,
                            "currency": st.currency,
                            "balance": format_cents(st.balance),
                            "spent_not_invoiced": format_cents(st.spent),
                        }),
                        notice: Some(notify::Audience { app: s.app.clone() }),
                    },
                )
                .await?;
            }
        }
    }
    let n = spent.len();
    state.gateway.meter.set_credit_spent(spent);
    Ok(n)
}

/// How often spent credit is looked for.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Runs [`refresh`] every two seconds (reading the configuration again only when its
/// revision changed) until the task is stopped.
pub fn spawn_credit_watch(state: Arc<AdminState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cached: Option<(i64, Document)> = None;
        loop {
            tick.tick().await;
            let run = async {
                let revision = state.store.revision().await?;
                if cached.as_ref().is_none_or(|(r, _)| *r != revision) {
                    let (rev, set) = state.store.load().await?;
                    cached = Some((rev, current_document(&set)?));
                }
                match &cached {
                    Some((_, doc)) => refresh(&state, doc).await,
                    None => Ok(0),
                }
            };
            if let Err(e) = run.await {
                tracing::warn!(error = %e.detail, "prepaid credit check");
            }
        }
    })
}
