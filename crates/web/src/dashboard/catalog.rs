//! What is offered: APIs and their lifecycle, products and plans, subscriptions and the
//! approval queue.

use super::*;

// ---- APIs and their lifecycle ----

pub(crate) struct VersionRow {
    pub version: String,
    pub status: String,
    pub badge: &'static str,
    pub upstream: String,
    pub routes: usize,
    pub sunset: String,
    pub successor: String,
    pub next: Vec<(&'static str, &'static str)>,
    pub errors: HashMap<String, String>,
}

pub(crate) struct ApiRow {
    pub name: String,
    pub title: String,
    pub team: String,
    pub visibility: String,
    pub versions: Vec<VersionRow>,
}

#[derive(Template)]
#[template(path = "dash/apis.html")]
pub(super) struct ApisPage {
    c: Chrome,
    apis: Vec<ApiRow>,
    can_edit: bool,
}

pub(crate) fn status_of(v: &tollgate_model::Version) -> String {
    serde_json::to_value(v.status)
        .ok()
        .and_then(|s| s.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(crate) fn status_badge(status: &str) -> &'static str {
    match status {
        "published" | "active" | "up" | "paid" => "ok",
        "deprecated" | "pending" | "suspended" | "draft" | "open" => "warn",
        "retired" | "cancelled" | "unreachable" | "void" => "bad",
        _ => "muted",
    }
}

pub(super) async fn apis_page(
    web: &Web,
    s: &Signed,
    flash: Flash,
    failed: Option<(&str, &str, HashMap<String, String>)>,
) -> Response {
    let doc = match tollgate_admin::current_document(&web.admin).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let apis = doc
        .apis
        .iter()
        .map(|a| ApiRow {
            name: a.name.clone(),
            title: a.title.clone().unwrap_or_default(),
            team: a.team.clone().unwrap_or_default(),
            visibility: serde_json::to_value(a.visibility)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            versions: a
                .versions
                .iter()
                .map(|v| {
                    let status = status_of(v);
                    let next: Vec<(&str, &str)> = match status.as_str() {
                        "draft" => vec![("published", "Publish")],
                        "published" => vec![("deprecated", "Deprecate")],
                        "deprecated" => vec![("retired", "Retire")],
                        _ => vec![],
                    };
                    let errors = match &failed {
                        Some((api, version, errors)) if *api == a.name && *version == v.version => {
                            errors.clone()
                        }
                        _ => HashMap::new(),
                    };
                    VersionRow {
                        version: v.version.clone(),
                        badge: status_badge(&status),
                        status,
                        upstream: v.upstream.clone(),
                        routes: v.routes.len(),
                        sunset: v.sunset_at.as_deref().map(short_time).unwrap_or_default(),
                        successor: v.successor.clone().unwrap_or_default(),
                        next,
                        errors,
                    }
                })
                .collect(),
        })
        .collect();
    let status = if failed.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page(
        status,
        &ApisPage {
            c: Chrome::new("APIs", "apis", s, flash),
            apis,
            can_edit: s.who.role >= Role::Editor,
        },
    )
}

pub(super) async fn apis(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(q): Query<MsgQuery>,
) -> Response {
    match signed(&web, &headers, &ip).await {
        Ok(s) => apis_page(&web, &s, Flash::from_code(q.msg.as_deref()), None).await,
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub(super) struct StatusForm {
    #[serde(default)]
    csrf: String,
    status: String,
    #[serde(default)]
    sunset: String,
    #[serde(default)]
    successor: String,
}

/// A lifecycle step of a version: publish, deprecate (with an optional sunset date and
/// successor) or retire. Deprecating notifies the apps that still call the version.
pub(super) async fn version_status(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path((api, version)): Path<(String, String)>,
    Form(f): Form<StatusForm>,
) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&s, &f.csrf) {
        return r;
    }
    let uri = format!("/api/apis/{}/versions/{}", enc(&api), enc(&version));
    let current = web.api.get(&s.who, &uri).await;
    if !current.ok() {
        return apis_page(&web, &s, Flash::error(current.detail()), None).await;
    }
    let mut body = current.body;
    body["status"] = json!(f.status);
    let mut errors = HashMap::new();
    let sunset = f.sunset.trim();
    if !sunset.is_empty() {
        match time::Date::parse(
            sunset,
            time::macros::format_description!("[year]-[month]-[day]"),
        ) {
            Ok(d) => body["sunset_at"] = json!(format!("{d}T00:00:00Z")),
            Err(_) => {
                errors.insert(
                    "sunset".to_string(),
                    "enter a date such as 2027-06-30".to_string(),
                );
            }
        }
    }
    if !f.successor.trim().is_empty() {
        body["successor"] = json!(f.successor.trim());
    }
    if errors.is_empty() {
        let answer = web.api.call(&s.who, Method::PUT, &uri, Some(body)).await;
        if answer.ok() {
            let msg = format!("{api}@{version} is now {}.", f.status);
            return apis_page(&web, &s, Flash::ok(msg), None).await;
        }
        errors = answer.field_errors();
        errors.retain(|k, _| k == "sunset_at" || k == "successor" || k == "status");
        if let Some(e) = errors.remove("sunset_at") {
            errors.insert("sunset".to_string(), e);
        }
        if errors.is_empty() {
            return apis_page(&web, &s, Flash::error(answer.detail()), None).await;
        }
    }
    apis_page(
        &web,
        &s,
        Flash::error(format!("{api}@{version} was not changed.")),
        Some((&api, &version, errors)),
    )
    .await
}

// ---- products ----

pub(crate) struct PlanRow {
    pub name: String,
    pub title: String,
    pub price: String,
    pub limits: String,
    pub approval: String,
}

pub(crate) struct ProductRow {
    pub name: String,
    pub title: String,
    pub description: String,
    pub visibility: String,
    pub apis: String,
    pub plans: Vec<PlanRow>,
}

#[derive(Template)]
#[template(path = "dash/products.html")]
pub(super) struct ProductsPage {
    c: Chrome,
    products: Vec<ProductRow>,
}

/// How a plan's price reads: `Free`, `49.00 USD / month + 0.001 USD per request`.
pub(crate) fn price_text(price: &Value) -> String {
    let currency = price
        .get("currency")
        .and_then(Value::as_str)
        .unwrap_or("USD");
    let period = price
        .get("period")
        .and_then(Value::as_str)
        .unwrap_or("month");
    let amount = |v: Option<&Value>| -> Option<String> {
        let v = v?;
        let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        (!s.is_empty() && !s.trim_start_matches(['0', '.']).is_empty()).then(|| cents(&s))
    };
    let mut parts = Vec::new();
    if let Some(fee) = amount(price.get("base_fee")) {
        parts.push(format!("{fee} {currency} / {period}"));
    }
    if let Some(m) = price.get("metered") {
        let model = m.get("model").and_then(Value::as_str).unwrap_or("");
        let text = match model {
            "per_unit" => {
                amount(m.get("unit_price")).map(|p| format!("{p} {currency} per request"))
            }
            "package" => {
                let size = m.get("package_size").and_then(Value::as_u64).unwrap_or(0);
                amount(m.get("package_price"))
                    .map(|p| format!("{p} {currency} per {} requests", count(size)))
            }
            "graduated" | "volume" | "bundles" => {
                let tiers = m.get("tiers").and_then(Value::as_array).map_or(0, Vec::len);
                Some(format!("{model} usage pricing in {tiers} tiers"))
            }
            _ => None,
        };
        parts.extend(text);
    }
    if parts.is_empty() {
        "Free".to_string()
    } else {
        parts.join(" + ")
    }
}

/// An amount with at least two decimals, as prices are written: `49` → `49.00`, while
/// `0.0005` stays exact.
pub(super) fn cents(amount: &str) -> String {
    match amount.split_once('.') {
        None => format!("{amount}.00"),
        Some((_, frac)) if frac.len() == 1 => format!("{amount}0"),
        Some(_) => amount.to_string(),
    }
}

/// A plan's limits: `100 requests / 1m · 10,000 requests / month`.
pub(crate) fn limits_text(plan: &tollgate_model::product::Plan) -> String {
    let mut parts = Vec::new();
    if let Some(r) = &plan.rate_limit {
        let window = serde_json::to_value(r.window)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        parts.push(format!("{} requests / {window}", count(r.limit)));
    }
    if let Some(q) = &plan.quota {
        let period = serde_json::to_value(q.period)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        parts.push(format!("{} requests / {period}", count(q.limit)));
    }
    if parts.is_empty() {
        "No limits".to_string()
    } else {
        parts.join(" · ")
    }
}

pub(crate) fn product_rows(doc: &tollgate_model::Document, public_only: bool) -> Vec<ProductRow> {
    doc.products
        .iter()
        .filter(|p| !public_only || p.visibility == tollgate_model::Visibility::Public)
        .map(|p| ProductRow {
            name: p.name.clone(),
            title: p.title.clone().unwrap_or_else(|| p.name.clone()),
            description: p.description.clone().unwrap_or_default(),
            visibility: serde_json::to_value(p.visibility)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            apis: p.apis.join(", "),
            plans: p
                .plans
                .iter()
                .map(|pl| PlanRow {
                    name: pl.name.clone(),
                    title: pl.title.clone().unwrap_or_else(|| pl.name.clone()),
                    price: price_text(&serde_json::to_value(&pl.price).unwrap_or_default()),
                    limits: limits_text(pl),
                    approval: if pl.approval == tollgate_model::Approval::Manual {
                        "manual approval".to_string()
                    } else {
                        "instant".to_string()
                    },
                })
                .collect(),
        })
        .collect()
}

pub(super) async fn products(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let doc = match tollgate_admin::current_document(&web.admin).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    ok(&ProductsPage {
        c: Chrome::new("Products", "products", &s, Flash::default()),
        products: product_rows(&doc, false),
    })
}

// ---- subscriptions ----

pub(crate) struct SubRow {
    pub id: String,
    pub app: String,
    pub owner: String,
    pub product: String,
    pub plan: String,
    pub status: String,
    pub badge: &'static str,
    pub started: String,
}

#[derive(Template)]
#[template(path = "dash/subscriptions.html")]
pub(super) struct SubscriptionsPage {
    c: Chrome,
    pending: Vec<SubRow>,
    others: Vec<SubRow>,
    can_edit: bool,
}

pub(super) async fn subscriptions_page(web: &Web, s: &Signed, flash: Flash) -> Response {
    let doc = match tollgate_admin::current_document(&web.admin).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let rows: Vec<SubRow> = doc
        .subscriptions
        .iter()
        .map(|sub| {
            let status = sub.status.as_str().to_string();
            SubRow {
                id: format!("{}:{}", sub.app, sub.product),
                owner: doc
                    .apps
                    .iter()
                    .find(|a| a.name == sub.app)
                    .map(|a| a.owner.clone())
                    .unwrap_or_default(),
                app: sub.app.clone(),
                product: sub.product.clone(),
                plan: sub.plan.clone(),
                badge: status_badge(&status),
                status,
                started: sub
                    .started_at
                    .as_deref()
                    .map(short_time)
                    .unwrap_or_default(),
            }
        })
        .collect();
    let (pending, others) = rows.into_iter().partition(|r| r.status == "pending");
    ok(&SubscriptionsPage {
        c: Chrome::new("Subscriptions", "subscriptions", s, flash),
        pending,
        others,
        can_edit: s.who.role >= Role::Editor,
    })
}

pub(super) async fn subscriptions(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(q): Query<MsgQuery>,
) -> Response {
    match signed(&web, &headers, &ip).await {
        Ok(s) => subscriptions_page(&web, &s, Flash::from_code(q.msg.as_deref())).await,
        Err(r) => r,
    }
}

pub(super) async fn subscription_action(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&s, &f.csrf) {
        return r;
    }
    if !matches!(action.as_str(), "approve" | "suspend" | "resume" | "cancel") {
        return subscriptions_page(&web, &s, Flash::error(format!("no action `{action}`"))).await;
    }
    let answer = web
        .api
        .call(
            &s.who,
            Method::POST,
            &format!("/api/subscriptions/{}/{}", enc(&id), enc(&action)),
            None,
        )
        .await;
    let flash = if answer.ok() {
        let done = match action.as_str() {
            "approve" => "approved",
            "suspend" => "suspended",
            "resume" => "resumed",
            _ => "cancelled",
        };
        Flash::ok(format!("Subscription {id} {done}."))
    } else {
        Flash::error(answer.detail())
    };
    subscriptions_page(&web, &s, flash).await
}
