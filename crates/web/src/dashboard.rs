//! The admin dashboard, on the admin listener: sign-in for dashboard users, then an
//! overview of traffic and health, and the pages that run the API business (APIs and their
//! lifecycle, products, the subscription approval queue, apps and developers, invoices,
//! the audit log, gateway nodes, users). What a user may see and do follows their role:
//! every call goes through the admin API as that user.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_admin::{
    DASHBOARD_COOKIE, Principal, Role, dashboard_session, decoy_hash, hash_token, same_secret,
    verify_password,
};

use crate::Web;
use crate::api::enc;
use crate::session::{self, ClientIp, form_token, form_token_ok, is_https};
use crate::view::{Flash, count, ok, page, see_other, short_time};

pub fn routes(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/apis", get(apis))
        .route(
            "/apis/{api}/versions/{version}/status",
            post(version_status),
        )
        .route("/products", get(products))
        .route("/subscriptions", get(subscriptions))
        .route("/subscriptions/{id}/{action}", post(subscription_action))
        .route("/apps", get(apps))
        .route("/invoices", get(invoices))
        .route("/audit", get(audit))
        .route("/nodes", get(nodes))
        .route("/users", get(users).post(create_user))
        .route("/assets/{name}", get(crate::assets::serve))
        .with_state(web)
}

/// The signed-in dashboard user.
pub(crate) struct Signed {
    pub who: Principal,
    pub email: String,
    pub csrf: String,
}

/// The page frame: title, navigation, the user, the CSRF token, a message.
pub(crate) struct Chrome {
    pub title: String,
    pub active: &'static str,
    pub user: String,
    pub role: String,
    pub csrf: String,
    pub flash: Flash,
    pub v: &'static str,
}

impl Chrome {
    fn new(title: &str, active: &'static str, s: &Signed, flash: Flash) -> Chrome {
        Chrome {
            title: title.to_string(),
            active,
            user: s.email.clone(),
            role: s.who.role.as_str().to_string(),
            csrf: s.csrf.clone(),
            flash,
            v: crate::assets::VERSION,
        }
    }
}

/// The signed-in user, or a redirect to the sign-in page.
async fn signed(web: &Web, headers: &HeaderMap, ip: &ClientIp) -> Result<Signed, Response> {
    let to_login = || see_other("/login");
    let Some(value) = tollgate_admin::cookie(headers, DASHBOARD_COOKIE) else {
        return Err(to_login());
    };
    match dashboard_session(&web.admin, value).await {
        Ok(Some((user, csrf))) => {
            let Some(role) = Role::parse(&user.role) else {
                return Err(to_login());
            };
            Ok(Signed {
                who: Principal {
                    role,
                    label: format!("user:{}", user.email),
                    from: ip.0.clone(),
                    team: user.team.clone(),
                    scopes: None,
                },
                email: user.email,
                csrf,
            })
        }
        Ok(None) => Err(to_login()),
        Err(e) => Err(e.into_response()),
    }
}

/// A form's CSRF token must be the session's.
fn check_csrf(s: &Signed, sent: &str) -> Result<(), Response> {
    if same_secret(sent, &s.csrf) {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            "this form has expired; go back, reload the page and try again",
        )
            .into_response())
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct MsgQuery {
    #[serde(default)]
    msg: Option<String>,
}

// ---- sign-in ----

#[derive(Template)]
#[template(path = "dash/login.html")]
struct LoginPage {
    v: &'static str,
    csrf: String,
    email: String,
    error: Option<String>,
    flash: Flash,
}

async fn login_form(headers: HeaderMap, Query(q): Query<MsgQuery>) -> Response {
    let (csrf, cookie) = form_token(&headers);
    let mut resp = ok(&LoginPage {
        v: crate::assets::VERSION,
        csrf,
        email: String::new(),
        error: None,
        flash: Flash::from_code(q.msg.as_deref()),
    });
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let email = f.email.trim().to_ascii_lowercase();
    let again = |status: StatusCode, error: &str| {
        let (csrf, cookie) = form_token(&headers);
        let mut resp = page(
            status,
            &LoginPage {
                v: crate::assets::VERSION,
                csrf,
                email: email.clone(),
                error: Some(error.to_string()),
                flash: Flash::default(),
            },
        );
        if let Some(c) = cookie {
            resp.headers_mut().append(header::SET_COOKIE, c);
        }
        resp
    };
    if !form_token_ok(&headers, &f.csrf) {
        return again(
            StatusCode::FORBIDDEN,
            "This form had expired. Please sign in again.",
        );
    }
    if let Some(wait) = web.limiter.blocked(&email, &ip.0) {
        let mut resp = again(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many failed sign-ins. Try again in {} minutes.",
                wait.as_secs().div_ceil(60)
            ),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, wait.as_secs().max(1).into());
        return resp;
    }
    let user = match web.admin.store.user(&email).await {
        Ok(u) => u.filter(|u| u.disabled_at.is_none()),
        Err(e) => return tollgate_admin::ApiError::from(e).into_response(),
    };
    // An unknown e-mail costs as much time as a known one.
    let stored = user
        .as_ref()
        .map_or(decoy_hash(), |u| u.password_hash.as_str());
    if !verify_password(&f.password, stored).await || user.is_none() {
        web.limiter.failed(&email, &ip.0);
        tracing::warn!(email = %email, from = %ip.0, "dashboard sign-in failed");
        return again(
            StatusCode::UNAUTHORIZED,
            "That e-mail and password do not match an account.",
        );
    }
    web.limiter.succeeded(&email);
    let (id, _) = match session::start(&web.admin.store, "dashboard", &email).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    tracing::info!(email = %email, from = %ip.0, "dashboard sign-in");
    let mut resp = see_other("/");
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            DASHBOARD_COOKIE,
            &id,
            session::SESSION_SECS,
            true,
            is_https(&headers),
        ),
    );
    resp
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Ok(s) = signed(&web, &headers, &ip).await {
        if let Err(r) = check_csrf(&s, &f.csrf) {
            return r;
        }
        if let Some(v) = tollgate_admin::cookie(&headers, DASHBOARD_COOKIE) {
            let _ = web.admin.store.delete_session(&hash_token(v)).await;
        }
    }
    let mut resp = see_other("/login?msg=signed-out");
    resp.headers_mut()
        .append(header::SET_COOKIE, session::clear_cookie(DASHBOARD_COOKIE));
    resp
}

// ---- overview ----

#[derive(Deserialize, Default)]
struct OverviewQuery {
    #[serde(default)]
    range: Option<String>,
    #[serde(default)]
    api: Option<String>,
}

pub(crate) struct TopRow {
    pub key: String,
    pub requests: String,
    pub errors: String,
    pub p50: String,
    pub p99: String,
}

pub(crate) struct HeatRow {
    pub day: String,
    pub cells: Vec<HeatCell>,
}

pub(crate) struct HeatCell {
    pub hour: u64,
    pub requests: u64,
    pub style: String,
}

pub(crate) struct UpstreamRow {
    pub name: String,
    pub target: String,
    pub healthy: bool,
    pub in_flight: usize,
}

pub(crate) struct AlertItem {
    pub at: String,
    pub detector: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "dash/overview.html")]
struct OverviewPage {
    c: Chrome,
    range: String,
    ranges: Vec<(&'static str, &'static str)>,
    api: String,
    apis: Vec<String>,
    requests: String,
    errors: String,
    error_rate: String,
    p99: String,
    traffic_series: String,
    latency_series: String,
    top_routes: Vec<TopRow>,
    top_apps: Vec<TopRow>,
    heat: Vec<HeatRow>,
    upstreams: Vec<UpstreamRow>,
    alerts: Vec<AlertItem>,
}

const RANGES: [(&str, &str, i64, &str); 4] = [
    ("1h", "Last hour", 3600, "1m"),
    ("24h", "Last 24 hours", 86_400, "15m"),
    ("7d", "Last 7 days", 7 * 86_400, "1h"),
    ("30d", "Last 30 days", 30 * 86_400, "6h"),
];

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub(crate) fn top_rows(v: &Value) -> Vec<TopRow> {
    v.get("rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let n = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
            let ms = |k: &str| {
                r.get(k)
                    .and_then(Value::as_f64)
                    .map_or("–".to_string(), |v| format!("{v:.1} ms"))
            };
            TopRow {
                key: r
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                requests: count(n("requests")),
                errors: count(n("errors")),
                p50: ms("latency_p50_ms"),
                p99: ms("latency_p99_ms"),
            }
        })
        .collect()
}

fn heat_rows(v: &Value) -> Vec<HeatRow> {
    let cells: Vec<(String, u64, u64)> = v
        .get("cells")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c.get("weekday")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                c.get("hour").and_then(Value::as_u64).unwrap_or(0),
                c.get("requests").and_then(Value::as_u64).unwrap_or(0),
            )
        })
        .collect();
    let max = cells.iter().map(|c| c.2).max().unwrap_or(0).max(1);
    let mut rows: Vec<HeatRow> = Vec::new();
    for (day, hour, requests) in cells {
        if rows.last().is_none_or(|r| r.day != day) {
            rows.push(HeatRow {
                day: day.clone(),
                cells: Vec::new(),
            });
        }
        let intensity = requests as f64 / max as f64;
        if let Some(r) = rows.last_mut() {
            r.cells.push(HeatCell {
                hour,
                requests,
                style: format!("--v:{intensity:.3}"),
            });
        }
    }
    rows
}

async fn overview(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(q): Query<OverviewQuery>,
) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let range = RANGES
        .iter()
        .find(|r| Some(r.0) == q.range.as_deref())
        .unwrap_or(&RANGES[1]);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (from, to) = (rfc3339(now - range.2), rfc3339(now + 60));
    let api = q.api.unwrap_or_default();
    let doc = tollgate_admin::current_document(&web.admin).await.ok();
    let apis: Vec<String> = doc
        .as_ref()
        .map(|d| d.apis.iter().map(|a| a.name.clone()).collect())
        .unwrap_or_default();
    let api = if apis.contains(&api) {
        api
    } else {
        String::new()
    };
    let filter = if api.is_empty() {
        String::new()
    } else {
        format!("&api={}", enc(&api))
    };
    let window = format!("from={}&to={}{filter}", enc(&from), enc(&to));
    let series = |metrics: &[(&str, &str)]| {
        let list: Vec<Value> = metrics
            .iter()
            .map(|(label, metric)| {
                json!({
                    "label": label,
                    "url": format!("/api/analytics/timeseries?metric={metric}&step={}&{window}", range.3),
                })
            })
            .collect();
        Value::Array(list).to_string()
    };
    let all = web
        .api
        .get(
            &s.who,
            &format!("/api/analytics/top?dimension=all&limit=1&{window}"),
        )
        .await;
    let total = all
        .body
        .get("rows")
        .and_then(|r| r.get(0))
        .cloned()
        .unwrap_or(Value::Null);
    let requests = total.get("requests").and_then(Value::as_u64).unwrap_or(0);
    let errors = total.get("errors").and_then(Value::as_u64).unwrap_or(0);
    let p99 = total
        .get("latency_p99_ms")
        .and_then(Value::as_f64)
        .map_or("–".to_string(), |v| format!("{v:.1} ms"));
    let top_routes = web
        .api
        .get(
            &s.who,
            &format!("/api/analytics/top?dimension=route&limit=8&{window}"),
        )
        .await;
    let top_apps = web
        .api
        .get(
            &s.who,
            &format!("/api/analytics/top?dimension=app&limit=8&{window}"),
        )
        .await;
    let heat = web
        .api
        .get(
            &s.who,
            &format!("/api/analytics/heatmap?{}", filter.trim_start_matches('&')),
        )
        .await;
    let alerts = web.api.get(&s.who, "/api/alerts?limit=5").await;
    let upstreams = web
        .admin
        .gateway
        .snapshot()
        .upstreams
        .iter()
        .flat_map(|u| {
            u.targets.iter().map(|t| UpstreamRow {
                name: u.name.to_string(),
                target: t.url.clone(),
                healthy: t.is_healthy(),
                in_flight: t.in_flight.load(std::sync::atomic::Ordering::Relaxed),
            })
        })
        .collect();
    let alerts = alerts
        .body
        .get("alerts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| AlertItem {
            at: a
                .get("at")
                .and_then(Value::as_i64)
                .map(rfc3339)
                .map(|t| short_time(&t))
                .unwrap_or_default(),
            detector: a
                .get("detector")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            message: a
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
        .collect();
    let error_rate = if requests == 0 {
        "–".to_string()
    } else {
        format!("{:.2} %", errors as f64 * 100.0 / requests as f64)
    };
    ok(&OverviewPage {
        c: Chrome::new("Overview", "overview", &s, Flash::default()),
        range: range.0.to_string(),
        ranges: RANGES.iter().map(|r| (r.0, r.1)).collect(),
        api,
        apis,
        requests: count(requests),
        errors: count(errors),
        error_rate,
        p99,
        traffic_series: series(&[("Requests", "requests"), ("Errors", "errors")]),
        latency_series: series(&[
            ("p50", "latency_p50"),
            ("p95", "latency_p95"),
            ("p99", "latency_p99"),
        ]),
        top_routes: top_rows(&top_routes.body),
        top_apps: top_rows(&top_apps.body),
        heat: heat_rows(&heat.body),
        upstreams,
        alerts,
    })
}

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
struct ApisPage {
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

async fn apis_page(
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

async fn apis(
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
struct StatusForm {
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
async fn version_status(
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
struct ProductsPage {
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
fn cents(amount: &str) -> String {
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

async fn products(State(web): State<Arc<Web>>, ip: ClientIp, headers: HeaderMap) -> Response {
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
struct SubscriptionsPage {
    c: Chrome,
    pending: Vec<SubRow>,
    others: Vec<SubRow>,
    can_edit: bool,
}

async fn subscriptions_page(web: &Web, s: &Signed, flash: Flash) -> Response {
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

async fn subscriptions(
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

async fn subscription_action(
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

// ---- apps and developers ----

pub(crate) struct AppRow {
    pub name: String,
    pub owner: String,
    pub keys: usize,
    pub subscriptions: String,
}

pub(crate) struct DevRow {
    pub email: String,
    pub name: String,
    pub organization: String,
    pub apps: usize,
    pub blocked: bool,
}

#[derive(Template)]
#[template(path = "dash/apps.html")]
struct AppsPage {
    c: Chrome,
    apps: Vec<AppRow>,
    developers: Vec<DevRow>,
}

async fn apps(State(web): State<Arc<Web>>, ip: ClientIp, headers: HeaderMap) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let doc = match tollgate_admin::current_document(&web.admin).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let apps = doc
        .apps
        .iter()
        .map(|a| AppRow {
            name: a.name.clone(),
            owner: a.owner.clone(),
            keys: a.keys.len(),
            subscriptions: doc
                .subscriptions
                .iter()
                .filter(|s| s.app == a.name)
                .map(|s| format!("{} ({})", s.product, s.plan))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let developers = doc
        .developers
        .iter()
        .map(|d| DevRow {
            email: d.email.clone(),
            name: d.name.clone().unwrap_or_default(),
            organization: d.organization.clone().unwrap_or_default(),
            apps: doc.apps.iter().filter(|a| a.owner == d.email).count(),
            blocked: d.blocked,
        })
        .collect();
    ok(&AppsPage {
        c: Chrome::new("Apps & developers", "apps", &s, Flash::default()),
        apps,
        developers,
    })
}

// ---- invoices ----

pub(crate) struct InvoiceRow {
    pub id: String,
    pub app: String,
    pub product: String,
    pub plan: String,
    pub period: String,
    pub total: String,
}

#[derive(Template)]
#[template(path = "dash/invoices.html")]
struct InvoicesPage {
    c: Chrome,
    period: String,
    invoices: Vec<InvoiceRow>,
}

#[derive(Deserialize, Default)]
struct PeriodQuery {
    #[serde(default)]
    period: Option<String>,
}

pub(crate) fn this_month() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

pub(crate) fn invoice_rows(v: &Value) -> Vec<InvoiceRow> {
    v.get("invoices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|i| {
            let s = |k: &str| i.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            InvoiceRow {
                id: s("id"),
                app: s("app"),
                product: s("product"),
                plan: s("plan"),
                period: s("period"),
                total: format!("{} {}", s("total"), s("currency")),
            }
        })
        .collect()
}

async fn invoices(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(q): Query<PeriodQuery>,
) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let period = q
        .period
        .filter(|p| p.len() == 7 && p.as_bytes()[4] == b'-')
        .unwrap_or_else(this_month);
    let answer = web
        .api
        .get(&s.who, &format!("/api/invoices?period={}", enc(&period)))
        .await;
    let flash = if answer.ok() {
        Flash::default()
    } else {
        Flash::error(answer.detail())
    };
    ok(&InvoicesPage {
        c: Chrome::new("Invoices", "invoices", &s, flash),
        period,
        invoices: invoice_rows(&answer.body),
    })
}

// ---- audit log ----

pub(crate) struct AuditRow {
    pub at: String,
    pub actor: String,
    pub source: String,
    pub op: String,
    pub kind: String,
    pub name: String,
    pub change: String,
}

#[derive(Template)]
#[template(path = "dash/audit.html")]
struct AuditPage {
    c: Chrome,
    entries: Vec<AuditRow>,
    intact: Option<bool>,
    problems: Vec<String>,
    allowed: bool,
}

/// The fields that differ between two JSON objects, as `field: before → after`.
fn changed_fields(before: Option<&str>, after: Option<&str>) -> String {
    let parse = |s: Option<&str>| {
        s.and_then(|s| serde_json::from_str::<Value>(s).ok())
            .unwrap_or(Value::Null)
    };
    let (b, a) = (parse(before), parse(after));
    let (Some(bo), Some(ao)) = (b.as_object(), a.as_object()) else {
        return String::new();
    };
    let mut out = Vec::new();
    for (k, av) in ao {
        let bv = bo.get(k).unwrap_or(&Value::Null);
        if bv != av {
            let short = |v: &Value| {
                let t = v.to_string();
                if t.len() > 40 {
                    format!("{}…", t.chars().take(40).collect::<String>())
                } else {
                    t
                }
            };
            out.push(format!("{k}: {} → {}", short(bv), short(av)));
        }
    }
    for k in bo.keys().filter(|k| !ao.contains_key(*k)) {
        out.push(format!("{k} removed"));
    }
    out.join("; ")
}

async fn audit(State(web): State<Arc<Web>>, ip: ClientIp, headers: HeaderMap) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let answer = web
        .api
        .get(&s.who, "/api/audit?newest=true&limit=200")
        .await;
    if answer.status == StatusCode::FORBIDDEN {
        return page(
            StatusCode::FORBIDDEN,
            &AuditPage {
                c: Chrome::new("Audit log", "audit", &s, Flash::default()),
                entries: Vec::new(),
                intact: None,
                problems: Vec::new(),
                allowed: false,
            },
        );
    }
    let verify = web.api.get(&s.who, "/api/audit/verify").await;
    let entries = answer
        .body
        .get("entries")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let st = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            AuditRow {
                at: short_time(&st("at")),
                actor: st("actor"),
                source: st("source"),
                op: st("op"),
                kind: st("kind"),
                name: st("name"),
                change: changed_fields(
                    e.get("before").and_then(Value::as_str),
                    e.get("after").and_then(Value::as_str),
                ),
            }
        })
        .collect();
    let problems = verify
        .body
        .get("problems")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
        .collect();
    ok(&AuditPage {
        c: Chrome::new("Audit log", "audit", &s, Flash::default()),
        entries,
        intact: verify.body.get("intact").and_then(Value::as_bool),
        problems,
        allowed: true,
    })
}

// ---- nodes ----

pub(crate) struct NodeRow {
    pub name: String,
    pub version: String,
    pub health: String,
    pub badge: &'static str,
    pub uptime: String,
    pub revision: i64,
    pub current: bool,
    pub heartbeat: String,
}

#[derive(Template)]
#[template(path = "dash/nodes.html")]
struct NodesPage {
    c: Chrome,
    revision: i64,
    nodes: Vec<NodeRow>,
}

fn uptime(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

async fn nodes(State(web): State<Arc<Web>>, ip: ClientIp, headers: HeaderMap) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let answer = web.api.get(&s.who, "/api/nodes").await;
    let nodes = answer
        .body
        .get("nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|n| {
            let st = |k: &str| n.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let health = st("health");
            NodeRow {
                name: st("name"),
                version: st("version"),
                badge: status_badge(&health),
                health,
                uptime: uptime(n.get("uptime_seconds").and_then(Value::as_u64).unwrap_or(0)),
                revision: n.get("revision").and_then(Value::as_i64).unwrap_or(0),
                current: n.get("current").and_then(Value::as_bool).unwrap_or(false),
                heartbeat: short_time(&st("last_heartbeat")),
            }
        })
        .collect();
    ok(&NodesPage {
        c: Chrome::new("Gateway nodes", "nodes", &s, Flash::default()),
        revision: answer
            .body
            .get("revision")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        nodes,
    })
}

// ---- users ----

pub(crate) struct UserRow {
    pub email: String,
    pub name: String,
    pub role: String,
    pub team: String,
    pub disabled: bool,
}

#[derive(Template)]
#[template(path = "dash/users.html")]
struct UsersPage {
    c: Chrome,
    users: Vec<UserRow>,
    allowed: bool,
    form: NewUserForm,
    errors: HashMap<String, String>,
    roles: Vec<&'static str>,
}

#[derive(Deserialize, Default, Clone)]
struct NewUserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    team: String,
}

async fn users_page(
    web: &Web,
    s: &Signed,
    flash: Flash,
    form: NewUserForm,
    errors: HashMap<String, String>,
) -> Response {
    let answer = web.api.get(&s.who, "/api/users").await;
    let allowed = answer.status != StatusCode::FORBIDDEN;
    let users = answer
        .body
        .get("users")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|u| {
            let st = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            UserRow {
                email: st("email"),
                name: st("name"),
                role: st("role"),
                team: st("team"),
                disabled: u.get("disabled_at").is_some_and(|v| !v.is_null()),
            }
        })
        .collect();
    let status = if !allowed {
        StatusCode::FORBIDDEN
    } else if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let roles = [Role::Viewer, Role::Editor, Role::Admin, Role::Owner]
        .into_iter()
        .filter(|r| *r <= s.who.role)
        .map(Role::as_str)
        .collect();
    page(
        status,
        &UsersPage {
            c: Chrome::new("Users", "users", s, flash),
            users,
            allowed,
            form: NewUserForm {
                password: String::new(),
                ..form
            },
            errors,
            roles,
        },
    )
}

async fn users(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(q): Query<MsgQuery>,
) -> Response {
    match signed(&web, &headers, &ip).await {
        Ok(s) => {
            let form = NewUserForm {
                role: "viewer".to_string(),
                ..Default::default()
            };
            users_page(
                &web,
                &s,
                Flash::from_code(q.msg.as_deref()),
                form,
                HashMap::new(),
            )
            .await
        }
        Err(r) => r,
    }
}

async fn create_user(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<NewUserForm>,
) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&s, &f.csrf) {
        return r;
    }
    let answer = web
        .api
        .call(
            &s.who,
            Method::POST,
            "/api/users",
            Some({
                let mut user = json!({
                    "email": f.email, "name": f.name, "password": f.password, "role": f.role,
                });
                if !f.team.trim().is_empty() {
                    user["team"] = json!(f.team.trim());
                }
                user
            }),
        )
        .await;
    if answer.ok() {
        return see_other("/users?msg=user-created");
    }
    let errors = answer.field_errors();
    let flash = if errors.is_empty() {
        Flash::error(answer.detail())
    } else {
        Flash::error("The user was not created: see the fields below.")
    };
    users_page(&web, &s, flash, f, errors).await
}
