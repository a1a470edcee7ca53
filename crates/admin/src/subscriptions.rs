//! Products and subscriptions as REST collections, and the subscription lifecycle:
//! `pending → active ⇄ suspended`, any of them `→ cancelled`. Each write is a whole
//! configuration change, validated like `PUT /api/config`.

use std::sync::Arc;

use crate::problem::Query;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_model::product::Plan;
use tollgate_model::{Approval, PastPlan, Product, Subscription, SubscriptionStatus};

use crate::AdminState;
use crate::auth::Principal;
use crate::collections::{answer, check_name, gone, parse, read, write};
use crate::problem::ApiError;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/products", get(list_products))
        .route(
            "/products/{name}",
            get(get_product).put(put_product).delete(delete_product),
        )
        .route(
            "/subscriptions",
            get(list_subscriptions).post(create_subscription),
        )
        .route(
            "/subscriptions/{id}",
            get(get_subscription).delete(delete_subscription),
        )
        .route("/subscriptions/{id}/{action}", post(change_subscription))
}

#[utoipa::path(get, path = "/api/products", responses((status = 200, description = "All products with their plans")), security(("bearer" = [])))]
pub async fn list_products(
    State(state): State<Arc<AdminState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!({ "products": read(&state).await?.products })))
}

#[utoipa::path(get, path = "/api/products/{name}", params(("name" = String, Path)), responses((status = 200), (status = 404)), security(("bearer" = [])))]
pub async fn get_product(
    State(state): State<Arc<AdminState>>,
    Path(name): Path<String>,
) -> Result<Json<Product>, ApiError> {
    read(&state)
        .await?
        .products
        .into_iter()
        .find(|p| p.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no product `{name}`")))
}

#[utoipa::path(put, path = "/api/products/{name}", params(("name" = String, Path)), request_body(content = Object, description = "A product with its plans (CONTRACT §2)"),
    responses((status = 200), (status = 201), (status = 422)), security(("bearer" = [])))]
pub async fn put_product(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let product: Product = parse(&body)?;
    check_name(&name, &product.name, "product name")?;
    let stored = product.clone();
    let mut created = false;
    let outcome = write(&state, &who, |doc| {
        match doc.products.iter_mut().find(|p| p.name == product.name) {
            Some(existing) => *existing = product,
            None => {
                created = true;
                doc.products.push(product);
            }
        }
        Ok(())
    })
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(answer(status, &stored, &outcome))
}

#[utoipa::path(delete, path = "/api/products/{name}", params(("name" = String, Path)),
    responses((status = 204), (status = 404), (status = 422, description = "Still subscribed")), security(("bearer" = [])))]
pub async fn delete_product(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let outcome = write(&state, &who, |doc| {
        let before = doc.products.len();
        doc.products.retain(|p| p.name != name);
        if doc.products.len() == before {
            return Err(ApiError::not_found(format!("no product `{name}`")));
        }
        Ok(())
    })
    .await?;
    Ok(gone(&outcome))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SubscriptionFilter {
    /// Only subscriptions in this status (e.g. `pending`: the approval queue).
    #[param(value_type = Option<String>)]
    status: Option<SubscriptionStatus>,
    /// Only this app's subscriptions.
    app: Option<String>,
}

#[utoipa::path(get, path = "/api/subscriptions", params(SubscriptionFilter), responses((status = 200, description = "Subscriptions, each with its `id` (`app:product`)")), security(("bearer" = [])))]
pub async fn list_subscriptions(
    State(state): State<Arc<AdminState>>,
    Query(f): Query<SubscriptionFilter>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list: Vec<serde_json::Value> = read(&state)
        .await?
        .subscriptions
        .iter()
        .filter(|s| f.status.is_none_or(|st| s.status == st))
        .filter(|s| f.app.as_deref().is_none_or(|a| s.app == a))
        .map(with_id)
        .collect();
    Ok(Json(json!({ "subscriptions": list })))
}

fn with_id(s: &Subscription) -> serde_json::Value {
    let mut v = json!(s);
    v["id"] = json!(s.key());
    v["status"] = json!(s.status.as_str());
    v
}

#[utoipa::path(get, path = "/api/subscriptions/{id}", params(("id" = String, Path, description = "app:product")), responses((status = 200), (status = 404)), security(("bearer" = [])))]
pub async fn get_subscription(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    read(&state)
        .await?
        .subscriptions
        .iter()
        .find(|s| s.key() == id)
        .map(|s| Json(with_id(s)))
        .ok_or_else(|| ApiError::not_found(format!("no subscription `{id}`")))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    app: String,
    product: String,
    plan: String,
}

/// Subscribes an app to a plan: `active` at once when the plan approves automatically,
/// else `pending` until approved.
#[utoipa::path(post, path = "/api/subscriptions", request_body = NewSubscription,
    responses((status = 201), (status = 409, description = "The app already has a subscription to that product"), (status = 422)), security(("bearer" = [])))]
pub async fn create_subscription(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: NewSubscription = parse(&body)?;
    let mut made = None;
    let outcome = write(&state, &who, |doc| {
        let manual = doc
            .products
            .iter()
            .find(|p| p.name == req.product)
            .and_then(|p| p.plans.iter().find(|pl| pl.name == req.plan))
            .is_some_and(|pl| pl.approval == Approval::Manual);
        let status = if manual {
            SubscriptionStatus::Pending
        } else {
            SubscriptionStatus::Active
        };
        let mut sub = Subscription::new(&req.app, &req.product, &req.plan, status);
        if status == SubscriptionStatus::Active {
            sub.started_at = Some(now_rfc3339());
        }
        if doc.subscriptions.iter().any(|s| s.key() == sub.key()) {
            return Err(ApiError::conflict(format!(
                "app `{}` already has a subscription to product `{}` ({}); cancel or change it",
                sub.app,
                sub.product,
                sub.key()
            )));
        }
        made = Some(sub.clone());
        doc.subscriptions.push(sub);
        Ok(())
    })
    .await?;
    let made = made.ok_or_else(|| ApiError::internal("subscription not made"))?;
    Ok(answer(StatusCode::CREATED, &with_id(&made), &outcome))
}

fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanChange {
    /// The plan to move to, in the same product.
    plan: String,
    /// When the new plan takes over (RFC 3339): now when omitted, or an earlier moment of
    /// the current calendar month (UTC), after the subscription's start and last change.
    #[serde(default)]
    effective_at: Option<String>,
}

/// Moves a subscription to another plan of its product. The old plan is billed up to the
/// change and the new one from it, each with its base fee prorated (see docs/products.md).
fn change_plan(
    sub: &mut Subscription,
    plans: &[Plan],
    body: &Bytes,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    let req: PlanChange = parse(body)?;
    let currency = |name: &str| {
        plans
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.price.currency.clone())
    };
    let Some(to_currency) = currency(&req.plan) else {
        return Err(ApiError::not_found(format!(
            "product `{}` has no plan `{}`",
            sub.product, req.plan
        )));
    };
    if currency(&sub.plan).is_some_and(|c| c != to_currency) {
        return Err(ApiError::conflict(format!(
            "plan `{}` is priced in {to_currency}, plan `{}` in another currency: one subscription is billed in one currency; cancel and subscribe anew",
            req.plan, sub.plan
        )));
    }
    if req.plan == sub.plan {
        return Err(ApiError::conflict(format!(
            "subscription `{}` is already on plan `{}`",
            sub.key(),
            req.plan
        )));
    }
    match sub.status {
        SubscriptionStatus::Cancelled => {
            return Err(ApiError::conflict(format!(
                "cannot change the plan of subscription `{}`: it is cancelled",
                sub.key()
            )));
        }
        // Nothing was billed yet: the pending request simply names another plan.
        SubscriptionStatus::Pending => {
            sub.plan = req.plan;
            return Ok(());
        }
        SubscriptionStatus::Active | SubscriptionStatus::Suspended => {}
    }
    let at = match &req.effective_at {
        None => now,
        Some(t) => OffsetDateTime::parse(t, &Rfc3339).map_err(|_| {
            ApiError::bad_request(format!(
                "effective_at `{t}` is not an RFC 3339 time such as 2026-11-15T00:00:00Z"
            ))
        })?,
    };
    let month_start = now
        .date()
        .replace_day(1)
        .map_err(ApiError::internal)?
        .midnight()
        .assume_utc();
    if at > now + time::Duration::seconds(5) {
        return Err(ApiError::bad_request(
            "effective_at is in the future: a plan change takes effect now or earlier in the current month",
        ));
    }
    if at < month_start {
        return Err(ApiError::bad_request(format!(
            "effective_at is before {}: a plan change can be dated within the current month only (earlier months may already be invoiced)",
            rfc3339(month_start)
        )));
    }
    let floor = sub
        .history
        .last()
        .map(|p| p.until.as_str())
        .or(sub.started_at.as_deref());
    if let Some(floor) = floor
        && OffsetDateTime::parse(floor, &Rfc3339).is_ok_and(|f| at < f)
    {
        return Err(ApiError::bad_request(format!(
            "effective_at is before {floor}, when the subscription started or last changed plan"
        )));
    }
    let old = std::mem::replace(&mut sub.plan, req.plan);
    sub.history.push(PastPlan {
        plan: old,
        until: rfc3339(at.min(now)),
    });
    Ok(())
}

/// `approve` (pending → active), `suspend` (active → suspended), `resume` (suspended →
/// active), `cancel` (any → cancelled), `change` (another plan; body `{"plan", "effective_at"}`).
/// Any other move is refused with 409.
#[utoipa::path(post, path = "/api/subscriptions/{id}/{action}", params(("id" = String, Path), ("action" = String, Path, description = "approve | suspend | resume | cancel | change")),
    request_body(content = Option<PlanChange>, description = "For `change` only"),
    responses((status = 200), (status = 400, description = "Bad plan change date"), (status = 404, description = "No such subscription, action or plan"), (status = 409, description = "Not allowed from the current status, same plan, or another currency")), security(("bearer" = [])))]
pub async fn change_subscription(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    use SubscriptionStatus::*;
    let mut after = None;
    let outcome = write(&state, &who, |doc| {
        let plans: Vec<Plan> = id
            .split_once(':')
            .and_then(|(_, product)| doc.products.iter().find(|p| p.name == product))
            .map(|p| p.plans.clone())
            .unwrap_or_default();
        let sub = doc
            .subscriptions
            .iter_mut()
            .find(|s| s.key() == id)
            .ok_or_else(|| ApiError::not_found(format!("no subscription `{id}`")))?;
        let now = OffsetDateTime::now_utc();
        if action == "change" {
            change_plan(sub, &plans, &body, now)?;
            after = Some(sub.clone());
            return Ok(());
        }
        let next = match (action.as_str(), sub.status) {
            ("approve", Pending) => Active,
            ("suspend", Active) => Suspended,
            ("resume", Suspended) => Active,
            ("cancel", Pending | Active | Suspended) => Cancelled,
            ("approve" | "suspend" | "resume" | "cancel", from) => {
                return Err(ApiError::conflict(format!(
                    "cannot {action} subscription `{id}`: it is {}",
                    from.as_str()
                )));
            }
            (other, _) => {
                return Err(ApiError::not_found(format!(
                    "no action `{other}`: use approve, suspend, resume, cancel or change"
                )));
            }
        };
        if next == Active && sub.started_at.is_none() {
            sub.started_at = Some(rfc3339(now));
        }
        if next == Cancelled && sub.started_at.is_some() {
            sub.ended_at = Some(rfc3339(now));
        }
        sub.status = next;
        after = Some(sub.clone());
        Ok(())
    })
    .await?;
    let after = after.ok_or_else(|| ApiError::internal("subscription not changed"))?;
    Ok(answer(StatusCode::OK, &with_id(&after), &outcome))
}

#[utoipa::path(delete, path = "/api/subscriptions/{id}", params(("id" = String, Path)), responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn delete_subscription(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let outcome = write(&state, &who, |doc| {
        let before = doc.subscriptions.len();
        doc.subscriptions.retain(|s| s.key() != id);
        if doc.subscriptions.len() == before {
            return Err(ApiError::not_found(format!("no subscription `{id}`")));
        }
        Ok(())
    })
    .await?;
    Ok(gone(&outcome))
}
