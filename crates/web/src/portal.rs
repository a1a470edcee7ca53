//! The developer portal: self-service sign-up and sign-in, the catalog of public products
//! with their plans and prices, API reference with a try-it console that calls through the
//! gateway, and the developer's own apps: keys, subscriptions, usage, quota, invoices and
//! notices.
//!
//! A developer acts on their own things only: every handler checks that the app belongs to
//! the signed-in developer before it calls the admin API (as `developer:EMAIL`, which the
//! audit log records).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_admin::{
    Principal, Role, decoy_hash, email_problem, hash_password, hash_token, password_problem,
    same_secret, verify_password,
};
use tollgate_model::Document;

use crate::Web;
use crate::api::enc;
use crate::dashboard::{
    InvoiceRow, ProductRow, invoice_rows, product_rows, status_badge, status_of, this_month,
};
use crate::openapi::{self, Operation};
use crate::session::{self, ClientIp, PORTAL_COOKIE, form_token, form_token_ok, is_https};
use crate::view::{Flash, count, ok, page, see_other, short_time};

pub fn routes(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(catalog))
        .route("/signup", get(signup_form).post(signup))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/reset", get(reset_form).post(reset))
        .route(
            "/reset/confirm",
            get(reset_confirm_form).post(reset_confirm),
        )
        .route("/docs/{api}/{version}", get(reference))
        .route("/try", post(try_it))
        .route("/apps", get(apps).post(create_app))
        .route("/apps/{app}", get(app_page))
        .route("/apps/{app}/keys", post(create_key))
        .route("/apps/{app}/keys/{id}/revoke", post(revoke_key))
        .route("/apps/{app}/keys/{id}/rotate", post(rotate_key))
        .route("/apps/{app}/subscribe", post(subscribe))
        .route("/apps/{app}/usage", get(usage_series))
        .route("/account", get(account))
        .route("/account/export", get(account_export))
        .route("/account/delete", post(account_delete))
        .route("/assets/{name}", get(crate::assets::serve))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(not_found)
        .with_state(web)
}

/// The signed-in developer.
struct Dev {
    email: String,
    csrf: String,
    who: Principal,
}

/// The portal's frame: title, navigation, the developer (if signed in), a message.
struct Frame {
    title: String,
    active: &'static str,
    email: String,
    csrf: String,
    flash: Flash,
    v: &'static str,
}

impl Frame {
    fn new(title: &str, active: &'static str, dev: Option<&Dev>, flash: Flash) -> Frame {
        Frame {
            title: title.to_string(),
            active,
            email: dev.map(|d| d.email.clone()).unwrap_or_default(),
            csrf: dev.map(|d| d.csrf.clone()).unwrap_or_default(),
            flash,
            v: crate::assets::VERSION,
        }
    }
}

async fn current_dev(web: &Web, headers: &HeaderMap, ip: &ClientIp) -> Option<Dev> {
    let value = tollgate_admin::cookie(headers, PORTAL_COOKIE)?;
    if value.is_empty() || value.len() > 200 {
        return None;
    }
    let s = web
        .admin
        .store
        .session(&hash_token(value), "portal")
        .await
        .ok()??;
    Some(Dev {
        who: Principal {
            role: Role::Editor,
            label: format!("developer:{}", s.subject),
            from: ip.0.clone(),
            team: None,
            scopes: None,
        },
        email: s.subject,
        csrf: s.csrf,
    })
}

/// The signed-in developer, or a redirect to sign-in that comes back here.
async fn require_dev(
    web: &Web,
    headers: &HeaderMap,
    ip: &ClientIp,
    here: &str,
) -> Result<Dev, Response> {
    current_dev(web, headers, ip)
        .await
        .ok_or_else(|| see_other(&format!("/login?next={}", enc(here))))
}

fn check_csrf(dev: &Dev, sent: &str) -> Result<(), Response> {
    if same_secret(sent, &dev.csrf) {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            "this form has expired; go back, reload the page and try again",
        )
            .into_response())
    }
}

async fn document(web: &Web) -> Result<Document, Response> {
    tollgate_admin::current_document(&web.admin)
        .await
        .map_err(IntoResponse::into_response)
}

#[derive(Template)]
#[template(path = "portal/not_found.html")]
struct NotFoundPage {
    f: Frame,
}

async fn not_found(State(web): State<Arc<Web>>, ip: ClientIp, headers: HeaderMap) -> Response {
    let dev = current_dev(&web, &headers, &ip).await;
    page(
        StatusCode::NOT_FOUND,
        &NotFoundPage {
            f: Frame::new("Not found", "", dev.as_ref(), Flash::default()),
        },
    )
}

// ---- catalog ----

struct ApiLink {
    api: String,
    title: String,
    version: String,
    status: String,
    badge: &'static str,
}

#[derive(Template)]
#[template(path = "portal/catalog.html")]
struct CatalogPage {
    f: Frame,
    products: Vec<ProductRow>,
    apis: Vec<ApiLink>,
}

#[derive(Deserialize, Default)]
struct MsgQuery {
    #[serde(default)]
    msg: Option<String>,
}

fn public_apis(doc: &Document) -> Vec<ApiLink> {
    doc.apis
        .iter()
        .filter(|a| a.visibility == tollgate_model::Visibility::Public)
        .flat_map(|a| {
            a.versions
                .iter()
                .filter(|v| matches!(status_of(v).as_str(), "published" | "deprecated"))
                .map(|v| {
                    let status = status_of(v);
                    ApiLink {
                        api: a.name.clone(),
                        title: a.title.clone().unwrap_or_else(|| a.name.clone()),
                        version: v.version.clone(),
                        badge: status_badge(&status),
                        status,
                    }
                })
        })
        .collect()
}

async fn catalog(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(q): Query<MsgQuery>,
) -> Response {
    let dev = current_dev(&web, &headers, &ip).await;
    let doc = match document(&web).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    ok(&CatalogPage {
        f: Frame::new(
            "API catalog",
            "catalog",
            dev.as_ref(),
            Flash::from_code(q.msg.as_deref()),
        ),
        products: product_rows(&doc, true),
        apis: public_apis(&doc),
    })
}

// ---- sign-up, sign-in, reset ----

#[derive(Template)]
#[template(path = "portal/signup.html")]
struct SignupPage {
    v: &'static str,
    csrf: String,
    form: SignupForm,
    errors: HashMap<String, String>,
    error: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
struct SignupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    organization: String,
    #[serde(default)]
    password: String,
}

fn with_form_cookie(mut resp: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

fn signup_again(
    headers: &HeaderMap,
    status: StatusCode,
    form: SignupForm,
    errors: HashMap<String, String>,
    error: Option<String>,
) -> Response {
    let (csrf, cookie) = form_token(headers);
    let resp = page(
        status,
        &SignupPage {
            v: crate::assets::VERSION,
            csrf,
            form: SignupForm {
                password: String::new(),
                ..form
            },
            errors,
            error,
        },
    );
    with_form_cookie(resp, cookie)
}

async fn signup_form(headers: HeaderMap) -> Response {
    signup_again(
        &headers,
        StatusCode::OK,
        SignupForm::default(),
        HashMap::new(),
        None,
    )
}

fn signed_in(headers: &HeaderMap, id: &str, to: &str) -> Response {
    let mut resp = see_other(to);
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            PORTAL_COOKIE,
            id,
            session::SESSION_SECS,
            false,
            is_https(headers),
        ),
    );
    resp
}

async fn signup(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<SignupForm>,
) -> Response {
    if !form_token_ok(&headers, &f.csrf) {
        return signup_again(
            &headers,
            StatusCode::FORBIDDEN,
            f,
            HashMap::new(),
            Some("This form had expired. Please send it again.".to_string()),
        );
    }
    let email = f.email.trim().to_ascii_lowercase();
    let mut errors = HashMap::new();
    if let Some(p) = email_problem(&email) {
        errors.insert("email".to_string(), p.to_string());
    }
    if let Some(p) = password_problem(&f.password) {
        errors.insert("password".to_string(), p);
    }
    if f.name.len() > 100 {
        errors.insert("name".to_string(), "use at most 100 characters".to_string());
    }
    if f.organization.len() > 100 {
        errors.insert(
            "organization".to_string(),
            "use at most 100 characters".to_string(),
        );
    }
    if !errors.is_empty() {
        return signup_again(&headers, StatusCode::UNPROCESSABLE_ENTITY, f, errors, None);
    }
    let doc = match document(&web).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let taken = "an account with this e-mail exists: sign in, or reset your password";
    if doc
        .developers
        .iter()
        .any(|d| d.email.eq_ignore_ascii_case(&email))
    {
        errors.insert("email".to_string(), taken.to_string());
        return signup_again(&headers, StatusCode::UNPROCESSABLE_ENTITY, f, errors, None);
    }
    let hash = hash_password(&f.password).await;
    match web.admin.store.create_portal_account(&email, &hash).await {
        Ok(true) => {}
        Ok(false) => {
            errors.insert("email".to_string(), taken.to_string());
            return signup_again(&headers, StatusCode::UNPROCESSABLE_ENTITY, f, errors, None);
        }
        Err(e) => return tollgate_admin::ApiError::from(e).into_response(),
    }
    let who = Principal {
        role: Role::Editor,
        label: format!("developer:{email}"),
        from: ip.0.clone(),
        team: None,
        scopes: None,
    };
    let mut developer = json!({ "email": email });
    if !f.name.trim().is_empty() {
        developer["name"] = json!(f.name.trim());
    }
    if !f.organization.trim().is_empty() {
        developer["organization"] = json!(f.organization.trim());
    }
    let answer = web
        .api
        .call(&who, Method::POST, "/api/developers", Some(developer))
        .await;
    if !answer.ok() {
        let _ = web.admin.store.delete_portal_account(&email).await;
        let errors = answer.field_errors();
        let detail = answer.detail();
        return signup_again(
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            f,
            errors,
            Some(detail),
        );
    }
    tracing::info!(email = %email, from = %ip.0, "developer signed up");
    match session::start(&web.admin.store, "portal", &email).await {
        Ok((id, _)) => signed_in(&headers, &id, "/apps?msg=welcome"),
        Err(e) => e.into_response(),
    }
}

#[derive(Template)]
#[template(path = "portal/login.html")]
struct LoginPage {
    v: &'static str,
    csrf: String,
    email: String,
    next: String,
    error: Option<String>,
    flash: Flash,
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    msg: Option<String>,
}

/// Only a path on this site is followed after sign-in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/apps".to_string(),
    }
}

fn login_again(
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    next: &str,
    error: Option<String>,
    flash: Flash,
) -> Response {
    let (csrf, cookie) = form_token(headers);
    let resp = page(
        status,
        &LoginPage {
            v: crate::assets::VERSION,
            csrf,
            email: email.to_string(),
            next: next.to_string(),
            error,
            flash,
        },
    );
    with_form_cookie(resp, cookie)
}

async fn login_form(headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    login_again(
        &headers,
        StatusCode::OK,
        "",
        &next,
        None,
        Flash::from_code(q.msg.as_deref()),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let email = f.email.trim().to_ascii_lowercase();
    let next = safe_next(Some(&f.next));
    if !form_token_ok(&headers, &f.csrf) {
        let e = Some("This form had expired. Please sign in again.".to_string());
        return login_again(
            &headers,
            StatusCode::FORBIDDEN,
            &email,
            &next,
            e,
            Flash::default(),
        );
    }
    if let Some(wait) = web.limiter.blocked(&email, &ip.0) {
        let e = Some(format!(
            "Too many failed sign-ins. Try again in {} minutes.",
            wait.as_secs().div_ceil(60)
        ));
        let mut resp = login_again(
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            &email,
            &next,
            e,
            Flash::default(),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, wait.as_secs().max(1).into());
        return resp;
    }
    let stored = match web.admin.store.portal_account(&email).await {
        Ok(s) => s,
        Err(e) => return tollgate_admin::ApiError::from(e).into_response(),
    };
    let blocked = match document(&web).await {
        Ok(doc) => doc
            .developers
            .iter()
            .find(|d| d.email.eq_ignore_ascii_case(&email))
            .is_none_or(|d| d.blocked),
        Err(r) => return r,
    };
    let matches = verify_password(&f.password, stored.as_deref().unwrap_or(decoy_hash())).await;
    if !matches || stored.is_none() || blocked {
        web.limiter.failed(&email, &ip.0);
        tracing::warn!(email = %email, from = %ip.0, "portal sign-in failed");
        let e = Some("That e-mail and password do not match an account.".to_string());
        return login_again(
            &headers,
            StatusCode::UNAUTHORIZED,
            &email,
            &next,
            e,
            Flash::default(),
        );
    }
    web.limiter.succeeded(&email);
    match session::start(&web.admin.store, "portal", &email).await {
        Ok((id, _)) => signed_in(&headers, &id, &next),
        Err(e) => e.into_response(),
    }
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
    if let Some(dev) = current_dev(&web, &headers, &ip).await {
        if let Err(r) = check_csrf(&dev, &f.csrf) {
            return r;
        }
        if let Some(v) = tollgate_admin::cookie(&headers, PORTAL_COOKIE) {
            let _ = web.admin.store.delete_session(&hash_token(v)).await;
        }
    }
    let mut resp = see_other("/login?msg=signed-out");
    resp.headers_mut()
        .append(header::SET_COOKIE, session::clear_cookie(PORTAL_COOKIE));
    resp
}

#[derive(Template)]
#[template(path = "portal/reset.html")]
struct ResetPage {
    v: &'static str,
    csrf: String,
    token: String,
    error: Option<String>,
    flash: Flash,
}

/// How long a reset link works.
const RESET_SECS: i64 = 3600;

async fn reset_form(headers: HeaderMap) -> Response {
    let (csrf, cookie) = form_token(&headers);
    with_form_cookie(
        ok(&ResetPage {
            v: crate::assets::VERSION,
            csrf,
            token: String::new(),
            error: None,
            flash: Flash::default(),
        }),
        cookie,
    )
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// Sends a reset link to a developer's address. With no mail server configured the link
/// is written to the node's log, for the operator to pass on. The answer is the same
/// whether or not the address has an account.
async fn reset(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<ResetForm>,
) -> Response {
    if !form_token_ok(&headers, &f.csrf) {
        return see_other("/reset");
    }
    let email = f.email.trim().to_ascii_lowercase();
    if web.limiter.blocked(&email, &ip.0).is_some() {
        return see_other("/login?msg=reset-sent");
    }
    // Each request counts against the same limit as a failed sign-in.
    web.limiter.failed(&email, &ip.0);
    let known = match document(&web).await {
        Ok(doc) => doc
            .developers
            .iter()
            .any(|d| d.email.eq_ignore_ascii_case(&email) && !d.blocked),
        Err(r) => return r,
    };
    if known {
        let token = session::random_token(32);
        if let Err(e) = web
            .admin
            .store
            .create_reset(&hash_token(&token), "portal", &email, RESET_SECS)
            .await
        {
            return tollgate_admin::ApiError::from(e).into_response();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        tracing::warn!(
            email = %email,
            link = %format!("http://{host}/reset/confirm?token={token}"),
            "portal password reset requested; no mail server is configured, so the link is written here (valid for 1 hour, once)"
        );
    }
    see_other("/login?msg=reset-sent")
}

#[derive(Deserialize, Default)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn reset_confirm_form(headers: HeaderMap, Query(q): Query<TokenQuery>) -> Response {
    let (csrf, cookie) = form_token(&headers);
    with_form_cookie(
        ok(&ResetPage {
            v: crate::assets::VERSION,
            csrf,
            token: q.token,
            error: None,
            flash: Flash::default(),
        }),
        cookie,
    )
}

#[derive(Deserialize)]
struct NewPasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

async fn reset_confirm(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(f): Form<NewPasswordForm>,
) -> Response {
    let again = |status: StatusCode, error: String| {
        let (csrf, cookie) = form_token(&headers);
        with_form_cookie(
            page(
                status,
                &ResetPage {
                    v: crate::assets::VERSION,
                    csrf,
                    token: f.token.clone(),
                    error: Some(error),
                    flash: Flash::default(),
                },
            ),
            cookie,
        )
    };
    if !form_token_ok(&headers, &f.csrf) {
        return again(
            StatusCode::FORBIDDEN,
            "This form had expired. Please send it again.".to_string(),
        );
    }
    if let Some(p) = password_problem(&f.password) {
        return again(StatusCode::UNPROCESSABLE_ENTITY, format!("Password: {p}."));
    }
    let email = match web
        .admin
        .store
        .take_reset(&hash_token(&f.token), "portal")
        .await
    {
        Ok(Some(e)) => e,
        Ok(None) => {
            return again(
                StatusCode::BAD_REQUEST,
                "This reset link is not valid any more: links work once, for an hour. Ask for a new one."
                    .to_string(),
            );
        }
        Err(e) => return tollgate_admin::ApiError::from(e).into_response(),
    };
    let hash = hash_password(&f.password).await;
    if let Err(e) = web.admin.store.set_portal_password(&email, &hash).await {
        return tollgate_admin::ApiError::from(e).into_response();
    }
    let _ = web.admin.store.delete_sessions_of("portal", &email).await;
    see_other("/login?msg=password-set")
}

// ---- API reference and try-it ----

#[derive(Template)]
#[template(path = "portal/reference.html")]
struct ReferencePage {
    f: Frame,
    title: String,
    version: String,
    status: String,
    badge: &'static str,
    notice: String,
    description: String,
    operations: Vec<Operation>,
    gateway: String,
    key_header: String,
    signed_in: bool,
}

/// The header an API key is sent in for a version: its `key_auth` policy's, else the
/// API's or the global one's, else the default.
fn key_header(doc: &Document, api: &tollgate_model::Api, v: &tollgate_model::Version) -> String {
    let find = |list: &[tollgate_model::Policy]| {
        list.iter().find_map(|p| match p {
            tollgate_model::Policy::KeyAuth(k) => Some(k.header.clone()),
            _ => None,
        })
    };
    v.routes
        .iter()
        .find_map(|r| find(&r.policies))
        .or_else(|| find(&v.policies))
        .or_else(|| find(&api.policies))
        .or_else(|| find(&doc.policies))
        .unwrap_or_else(|| "x-api-key".to_string())
}

async fn reference(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path((api_name, version)): Path<(String, String)>,
) -> Response {
    let dev = current_dev(&web, &headers, &ip).await;
    let doc = match document(&web).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let found = doc
        .apis
        .iter()
        .filter(|a| a.visibility == tollgate_model::Visibility::Public)
        .find(|a| a.name == api_name)
        .and_then(|a| {
            a.versions
                .iter()
                .find(|v| v.version == version)
                .map(|v| (a, v))
        })
        .filter(|(_, v)| matches!(status_of(v).as_str(), "published" | "deprecated"));
    let Some((api, v)) = found else {
        return not_found(State(web), ip, headers).await;
    };
    let parsed = v.spec.as_deref().and_then(openapi::parse);
    let operations = match &parsed {
        Some(spec) => openapi::operations(spec),
        None => openapi::from_routes(v),
    };
    let description = parsed
        .as_ref()
        .and_then(|s| s.pointer("/info/description"))
        .and_then(Value::as_str)
        .or(api.description.as_deref())
        .unwrap_or("")
        .to_string();
    let status = status_of(v);
    let notice = if status == "deprecated" {
        let mut n = format!("{} {} is deprecated", api.name, v.version);
        if let Some(s) = &v.sunset_at {
            n.push_str(&format!(" and stops working on {}", short_time(s)));
        }
        if let Some(s) = &v.successor {
            n.push_str(&format!(": move to {s}"));
        }
        n.push('.');
        n
    } else {
        String::new()
    };
    ok(&ReferencePage {
        f: Frame::new(
            &format!("{} {}", api.name, v.version),
            "catalog",
            dev.as_ref(),
            Flash::default(),
        ),
        title: api.title.clone().unwrap_or_else(|| api.name.clone()),
        version: v.version.clone(),
        badge: status_badge(&status),
        status,
        notice,
        description,
        operations,
        gateway: web.settings.public_gateway_url.clone(),
        key_header: key_header(&doc, api, v),
        signed_in: dev.is_some(),
    })
}

#[derive(Deserialize)]
struct TryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    key_header: String,
}

#[derive(Template)]
#[template(path = "portal/try_result.html")]
struct TryResult {
    status: String,
    badge: &'static str,
    elapsed: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// Largest response body the console shows.
const MAX_TRY_BODY: usize = 256 * 1024;

fn try_error(message: &str) -> Response {
    ok(&TryResult {
        status: message.to_string(),
        badge: "bad",
        elapsed: String::new(),
        headers: Vec::new(),
        body: String::new(),
    })
}

/// The try-it console: sends one request through this node's gateway, with the key the
/// developer typed, and shows the answer. Only paths on the gateway can be called.
async fn try_it(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<TryForm>,
) -> Response {
    let Some(dev) = current_dev(&web, &headers, &ip).await else {
        return (StatusCode::UNAUTHORIZED, "sign in to use the console").into_response();
    };
    if let Err(r) = check_csrf(&dev, &f.csrf) {
        return r;
    }
    let Ok(method) = Method::from_bytes(f.method.trim().to_ascii_uppercase().as_bytes()) else {
        return try_error("Unknown method");
    };
    let path = f.path.trim();
    if !path.starts_with('/')
        || path.starts_with("//")
        || path.len() > 2048
        || path.contains(['\r', '\n', ' ', '#'])
    {
        return try_error("The path must start with / and contain no spaces");
    }
    let query = f.query.trim().trim_start_matches('?');
    let uri = if query.is_empty() {
        format!("{}{path}", web.settings.gateway_url)
    } else {
        format!("{}{path}?{query}", web.settings.gateway_url)
    };
    let mut req = http::Request::builder().method(method.clone()).uri(&uri);
    let key = f.key.trim();
    if !key.is_empty() {
        let name = if f.key_header.trim().is_empty() {
            "x-api-key"
        } else {
            f.key_header.trim()
        };
        req = req.header(name, key);
    }
    req = req.header("x-forwarded-for", ip.0.as_str());
    let body = if f.body.trim().is_empty() || matches!(method, Method::GET | Method::HEAD) {
        Bytes::new()
    } else {
        req = req.header(header::CONTENT_TYPE, "application/json");
        Bytes::from(f.body.clone())
    };
    let Ok(req) = req.body(Full::new(body)) else {
        return try_error("That request cannot be sent: check the path, query and key");
    };
    let started = std::time::Instant::now();
    let resp = match tokio::time::timeout(Duration::from_secs(30), web.http.request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return try_error(&format!("The gateway could not be reached: {e}")),
        Err(_) => return try_error("No answer within 30 seconds"),
    };
    let status = resp.status();
    let shown: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("(binary)").to_string()))
        .collect();
    let bytes = Limited::new(resp.into_body(), MAX_TRY_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_else(|_| Bytes::from_static(b"(the body is larger than the console shows)"));
    let text = String::from_utf8_lossy(&bytes).to_string();
    let body = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    ok(&TryResult {
        status: status.to_string(),
        badge: if status.is_success() {
            "ok"
        } else if status.is_client_error() {
            "warn"
        } else {
            "bad"
        },
        elapsed: format!("{:.0} ms", started.elapsed().as_secs_f64() * 1000.0),
        headers: shown,
        body,
    })
}

// ---- apps ----

struct MyApp {
    name: String,
    description: String,
    keys: usize,
    subscriptions: String,
}

#[derive(Template)]
#[template(path = "portal/apps.html")]
struct AppsPage {
    f: Frame,
    apps: Vec<MyApp>,
    name: String,
    description: String,
    errors: HashMap<String, String>,
}

async fn apps_page(
    web: &Web,
    dev: &Dev,
    flash: Flash,
    name: &str,
    description: &str,
    errors: HashMap<String, String>,
) -> Response {
    let doc = match document(web).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let apps = doc
        .apps
        .iter()
        .filter(|a| a.owner.eq_ignore_ascii_case(&dev.email))
        .map(|a| MyApp {
            name: a.name.clone(),
            description: a.description.clone().unwrap_or_default(),
            keys: a.keys.len(),
            subscriptions: doc
                .subscriptions
                .iter()
                .filter(|s| s.app == a.name)
                .map(|s| format!("{} · {} ({})", s.product, s.plan, s.status.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page(
        status,
        &AppsPage {
            f: Frame::new("Your apps", "apps", Some(dev), flash),
            apps,
            name: name.to_string(),
            description: description.to_string(),
            errors,
        },
    )
}

async fn apps(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(q): Query<MsgQuery>,
) -> Response {
    match require_dev(&web, &headers, &ip, "/apps").await {
        Ok(dev) => {
            apps_page(
                &web,
                &dev,
                Flash::from_code(q.msg.as_deref()),
                "",
                "",
                HashMap::new(),
            )
            .await
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct NewAppForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

async fn create_app(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<NewAppForm>,
) -> Response {
    let dev = match require_dev(&web, &headers, &ip, "/apps").await {
        Ok(d) => d,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&dev, &f.csrf) {
        return r;
    }
    let name = f.name.trim().to_string();
    let mut errors = HashMap::new();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        errors.insert(
            "name".to_string(),
            "use 1 to 64 letters, digits, - or _, starting with a letter or digit".to_string(),
        );
        return apps_page(
            &web,
            &dev,
            Flash::default(),
            &f.name,
            &f.description,
            errors,
        )
        .await;
    }
    let mut body = json!({ "name": name, "owner": dev.email });
    if !f.description.trim().is_empty() {
        body["description"] = json!(f.description.trim().chars().take(500).collect::<String>());
    }
    let answer = web
        .api
        .call(&dev.who, Method::POST, "/api/apps", Some(body))
        .await;
    if answer.ok() {
        return see_other(&format!("/apps/{}?msg=app-created", enc(&name)));
    }
    let mut errors = answer.field_errors();
    if answer.status == StatusCode::CONFLICT {
        errors.insert(
            "name".to_string(),
            "this name is taken: choose another".to_string(),
        );
    }
    errors.retain(|k, _| k == "name" || k == "description");
    let flash = if errors.is_empty() {
        Flash::error(answer.detail())
    } else {
        Flash::default()
    };
    apps_page(&web, &dev, flash, &f.name, &f.description, errors).await
}

struct KeyRow {
    id: String,
    label: String,
    created: String,
    expires: String,
}

struct SubView {
    product: String,
    plan: String,
    status: String,
    badge: &'static str,
    requests: String,
    quota: String,
    quota_pct: u64,
    has_quota: bool,
}

struct PlanChoice {
    value: String,
    label: String,
}

struct NoticeView {
    at: String,
    message: String,
}

#[derive(Template)]
#[template(path = "portal/app.html")]
struct AppPage {
    f: Frame,
    app: String,
    description: String,
    keys: Vec<KeyRow>,
    new_secret: Option<String>,
    subs: Vec<SubView>,
    choices: Vec<PlanChoice>,
    requests_month: String,
    period: String,
    usage_series: String,
    invoices: Vec<InvoiceRow>,
    notices: Vec<NoticeView>,
    deprecated: Vec<String>,
    sub_error: Option<String>,
}

/// The app, if it belongs to the developer.
fn own_app<'a>(doc: &'a Document, dev: &Dev, app: &str) -> Option<&'a tollgate_model::App> {
    doc.apps
        .iter()
        .find(|a| a.name == app && a.owner.eq_ignore_ascii_case(&dev.email))
}

async fn app_view(
    web: &Web,
    dev: &Dev,
    app_name: &str,
    flash: Flash,
    new_secret: Option<String>,
    sub_error: Option<String>,
) -> Response {
    let doc = match document(web).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Some(app) = own_app(&doc, dev, app_name) else {
        return see_other("/apps");
    };
    let period = this_month();
    let usage = web
        .api
        .get(
            &dev.who,
            &format!("/api/usage?app={}&period={period}", enc(app_name)),
        )
        .await;
    let used: HashMap<String, u64> = usage
        .body
        .get("subscriptions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some((
                s.get("product")?.as_str()?.to_string(),
                s.get("requests")?.as_u64()?,
            ))
        })
        .collect();
    // Today's requests per subscription, for daily quotas.
    let now_minute = time::OffsetDateTime::now_utc().unix_timestamp() / 60;
    let today_start = now_minute - now_minute.rem_euclid(1440);
    let today: HashMap<String, u64> = web
        .admin
        .store
        .usage(&format!("{}:", app.name), today_start, now_minute + 1)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| Some((t.subscription.split_once(':')?.1.to_string(), t.requests)))
        .collect();
    let subs = doc
        .subscriptions
        .iter()
        .filter(|s| s.app == app.name)
        .map(|s| {
            let status = s.status.as_str().to_string();
            let requests = used.get(&s.product).copied().unwrap_or(0);
            let plan = doc
                .products
                .iter()
                .find(|p| p.name == s.product)
                .and_then(|p| p.plans.iter().find(|pl| pl.name == s.plan));
            let (quota, quota_pct) = match plan.and_then(|p| p.quota.as_ref()) {
                Some(q) => {
                    let period = serde_json::to_value(q.period)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    let used = if period == "day" {
                        today.get(&s.product).copied().unwrap_or(0)
                    } else {
                        requests
                    };
                    let pct = (used * 100).checked_div(q.limit).unwrap_or(0).min(100);
                    let when = if period == "day" {
                        "today"
                    } else {
                        "this month"
                    };
                    (
                        format!("{} of {} requests {when}", count(used), count(q.limit)),
                        pct,
                    )
                }
                None => ("no quota".to_string(), 0),
            };
            SubView {
                has_quota: plan.and_then(|p| p.quota.as_ref()).is_some(),
                product: s.product.clone(),
                plan: s.plan.clone(),
                badge: status_badge(&status),
                status,
                requests: count(requests),
                quota,
                quota_pct,
            }
        })
        .collect();
    let subscribed: Vec<&str> = doc
        .subscriptions
        .iter()
        .filter(|s| s.app == app.name && s.status != tollgate_model::SubscriptionStatus::Cancelled)
        .map(|s| s.product.as_str())
        .collect();
    let choices = doc
        .products
        .iter()
        .filter(|p| {
            p.visibility == tollgate_model::Visibility::Public
                && !subscribed.contains(&p.name.as_str())
        })
        .flat_map(|p| {
            p.plans.iter().map(move |pl| PlanChoice {
                value: format!("{}:{}", p.name, pl.name),
                label: format!(
                    "{} · {} — {}{}",
                    p.title.as_deref().unwrap_or(&p.name),
                    pl.title.as_deref().unwrap_or(&pl.name),
                    crate::dashboard::price_text(
                        &serde_json::to_value(&pl.price).unwrap_or_default()
                    ),
                    if pl.approval == tollgate_model::Approval::Manual {
                        " (needs approval)"
                    } else {
                        ""
                    }
                ),
            })
        })
        .collect();
    let mut invoices = Vec::new();
    for p in [period.clone(), previous_month(&period)] {
        let answer = web
            .api
            .get(&dev.who, &format!("/api/invoices?period={p}"))
            .await;
        invoices.extend(
            invoice_rows(&answer.body)
                .into_iter()
                .filter(|i| i.app == app.name),
        );
    }
    let notices = web
        .api
        .get(&dev.who, &format!("/api/notices?app={}", enc(&app.name)))
        .await
        .body
        .get("notices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(20)
        .map(|n| NoticeView {
            at: short_time(n.get("created_at").and_then(Value::as_str).unwrap_or("")),
            message: n
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
        .collect();
    // Deprecated versions this app called in the last 30 days.
    let mut deprecated = Vec::new();
    for a in &doc.apis {
        for v in a.versions.iter().filter(|v| status_of(v) == "deprecated") {
            let callers = web
                .api
                .get(
                    &dev.who,
                    &format!(
                        "/api/apis/{}/versions/{}/callers",
                        enc(&a.name),
                        enc(&v.version)
                    ),
                )
                .await;
            let calls = callers
                .body
                .get("callers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| c.get("app").and_then(Value::as_str) == Some(app.name.as_str()));
            if calls {
                let mut text = format!(
                    "This app still calls {} {}, which is deprecated",
                    a.name, v.version
                );
                if let Some(s) = &v.sunset_at {
                    text.push_str(&format!(" and stops working on {}", short_time(s)));
                }
                if let Some(s) = &v.successor {
                    text.push_str(&format!(". Move to {s}"));
                }
                text.push('.');
                deprecated.push(text);
            }
        }
    }
    let base = format!("/apps/{}/usage", enc(&app.name));
    let usage_series = json!([
        { "label": "Requests", "url": format!("{base}?metric=requests") },
        { "label": "Errors", "url": format!("{base}?metric=errors") },
    ])
    .to_string();
    ok(&AppPage {
        f: Frame::new(&app.name, "apps", Some(dev), flash),
        app: app.name.clone(),
        description: app.description.clone().unwrap_or_default(),
        keys: app
            .keys
            .iter()
            .map(|k| KeyRow {
                id: k.id.clone().unwrap_or_default(),
                label: k.label.clone().unwrap_or_default(),
                created: k.created_at.as_deref().map(short_time).unwrap_or_default(),
                expires: k.expires_at.as_deref().map(short_time).unwrap_or_default(),
            })
            .collect(),
        new_secret,
        subs,
        choices,
        requests_month: count(
            usage
                .body
                .get("requests")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        ),
        period,
        usage_series,
        invoices,
        notices,
        deprecated,
        sub_error,
    })
}

fn previous_month(period: &str) -> String {
    let (y, m) = period.split_once('-').unwrap_or(("1970", "01"));
    let (y, m): (i32, u32) = (y.parse().unwrap_or(1970), m.parse().unwrap_or(1));
    if m <= 1 {
        format!("{:04}-12", y - 1)
    } else {
        format!("{y:04}-{:02}", m - 1)
    }
}

async fn app_page(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(app): Path<String>,
    Query(q): Query<MsgQuery>,
) -> Response {
    match require_dev(&web, &headers, &ip, &format!("/apps/{}", enc(&app))).await {
        Ok(dev) => {
            app_view(
                &web,
                &dev,
                &app,
                Flash::from_code(q.msg.as_deref()),
                None,
                None,
            )
            .await
        }
        Err(r) => r,
    }
}

/// The developer and their app, for a change to it; or the response to give instead.
async fn own_app_change(
    web: &Web,
    headers: &HeaderMap,
    ip: &ClientIp,
    app: &str,
    csrf: &str,
) -> Result<Dev, Response> {
    let dev = require_dev(web, headers, ip, &format!("/apps/{}", enc(app))).await?;
    check_csrf(&dev, csrf)?;
    let doc = document(web).await?;
    if own_app(&doc, &dev, app).is_none() {
        return Err(see_other("/apps"));
    }
    Ok(dev)
}

#[derive(Deserialize)]
struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    label: String,
}

async fn new_key(web: &Web, dev: &Dev, app: &str, label: &str) -> Result<String, String> {
    let mut body = json!({});
    if !label.trim().is_empty() {
        body["label"] = json!(label.trim().chars().take(100).collect::<String>());
    }
    let answer = web
        .api
        .call(
            &dev.who,
            Method::POST,
            &format!("/api/apps/{}/keys", enc(app)),
            Some(body),
        )
        .await;
    match answer.body.get("key").and_then(Value::as_str) {
        Some(k) if answer.ok() => Ok(k.to_string()),
        _ => Err(answer.detail()),
    }
}

async fn create_key(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(app): Path<String>,
    Form(f): Form<KeyForm>,
) -> Response {
    let dev = match own_app_change(&web, &headers, &ip, &app, &f.csrf).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    match new_key(&web, &dev, &app, &f.label).await {
        Ok(secret) => {
            let flash = Flash::ok("Your new key is below. Copy it now: it is shown only once.");
            app_view(&web, &dev, &app, flash, Some(secret), None).await
        }
        Err(e) => app_view(&web, &dev, &app, Flash::error(e), None, None).await,
    }
}

async fn revoke(web: &Web, dev: &Dev, app: &str, id: &str) -> Result<(), String> {
    let answer = web
        .api
        .call(
            &dev.who,
            Method::DELETE,
            &format!("/api/apps/{}/keys/{}", enc(app), enc(id)),
            None,
        )
        .await;
    if answer.ok() {
        Ok(())
    } else {
        Err(answer.detail())
    }
}

async fn revoke_key(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path((app, id)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let dev = match own_app_change(&web, &headers, &ip, &app, &f.csrf).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    match revoke(&web, &dev, &app, &id).await {
        Ok(()) => see_other(&format!("/apps/{}?msg=key-revoked", enc(&app))),
        Err(e) => app_view(&web, &dev, &app, Flash::error(e), None, None).await,
    }
}

/// Rotation: a new key is made, then the old one is revoked; the new secret is shown once.
async fn rotate_key(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path((app, id)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let dev = match own_app_change(&web, &headers, &ip, &app, &f.csrf).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let label = document(&web)
        .await
        .ok()
        .and_then(|doc| {
            own_app(&doc, &dev, &app)
                .and_then(|a| a.keys.iter().find(|k| k.id.as_deref() == Some(id.as_str())))
                .and_then(|k| k.label.clone())
        })
        .unwrap_or_default();
    let secret = match new_key(&web, &dev, &app, &label).await {
        Ok(s) => s,
        Err(e) => return app_view(&web, &dev, &app, Flash::error(e), None, None).await,
    };
    let flash = match revoke(&web, &dev, &app, &id).await {
        Ok(()) => Flash::ok(
            "Key rotated: the old key stopped working. Copy the new one now: it is shown only once.",
        ),
        Err(e) => Flash::error(format!(
            "A new key was made, but the old one could not be revoked: {e}"
        )),
    };
    app_view(&web, &dev, &app, flash, Some(secret), None).await
}

#[derive(Deserialize)]
struct SubscribeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    plan: String,
}

async fn subscribe(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(app): Path<String>,
    Form(f): Form<SubscribeForm>,
) -> Response {
    let dev = match own_app_change(&web, &headers, &ip, &app, &f.csrf).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Some((product, plan)) = f.plan.split_once(':') else {
        return app_view(
            &web,
            &dev,
            &app,
            Flash::default(),
            None,
            Some("choose a plan".to_string()),
        )
        .await;
    };
    let public = document(&web)
        .await
        .map(|doc| {
            doc.products
                .iter()
                .any(|p| p.name == product && p.visibility == tollgate_model::Visibility::Public)
        })
        .unwrap_or(false);
    if !public {
        return app_view(
            &web,
            &dev,
            &app,
            Flash::default(),
            None,
            Some("choose a plan from the list".to_string()),
        )
        .await;
    }
    let answer = web
        .api
        .call(
            &dev.who,
            Method::POST,
            "/api/subscriptions",
            Some(json!({ "app": app, "product": product, "plan": plan })),
        )
        .await;
    if !answer.ok() {
        return app_view(
            &web,
            &dev,
            &app,
            Flash::default(),
            None,
            Some(answer.detail()),
        )
        .await;
    }
    let pending = answer.body.get("status").and_then(Value::as_str) == Some("pending");
    let msg = if pending { "pending" } else { "subscribed" };
    see_other(&format!("/apps/{}?msg={msg}", enc(&app)))
}

#[derive(Deserialize)]
struct SeriesQuery {
    #[serde(default)]
    metric: String,
}

/// The app's traffic over the last 24 hours, for its usage chart: the analytics API's
/// answer, filtered to this app.
async fn usage_series(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(app): Path<String>,
    Query(q): Query<SeriesQuery>,
) -> Response {
    let Some(dev) = current_dev(&web, &headers, &ip).await else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "detail": "sign in" })),
        )
            .into_response();
    };
    let Ok(doc) = document(&web).await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    if own_app(&doc, &dev, &app).is_none() {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "detail": "no such app" })),
        )
            .into_response();
    }
    let metric = if q.metric == "errors" {
        "errors"
    } else {
        "requests"
    };
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let from = fmt(now - time::Duration::hours(24));
    let to = fmt(now + time::Duration::minutes(1));
    let answer = web
        .api
        .get(
            &dev.who,
            &format!(
                "/api/analytics/timeseries?metric={metric}&step=15m&app={}&from={}&to={}",
                enc(&app),
                enc(&from),
                enc(&to)
            ),
        )
        .await;
    (answer.status, axum::Json(answer.body)).into_response()
}

// ---- the developer's own account: their data, and erasure ----

#[derive(Template)]
#[template(path = "portal/account.html")]
struct AccountPage {
    f: Frame,
    error: Option<String>,
}

async fn account(State(web): State<Arc<Web>>, ip: ClientIp, headers: HeaderMap) -> Response {
    match require_dev(&web, &headers, &ip, "/account").await {
        Ok(dev) => ok(&AccountPage {
            f: Frame::new("Your account", "account", Some(&dev), Flash::default()),
            error: None,
        }),
        Err(r) => r,
    }
}

/// The developer's own data, as the admin API's export gives it.
fn own_data_principal(dev: &Dev) -> Principal {
    // Export and erasure need the admin role in the API; here they are only ever called
    // for the signed-in developer's own e-mail.
    Principal {
        role: Role::Admin,
        ..dev.who.clone()
    }
}

async fn account_export(State(web): State<Arc<Web>>, ip: ClientIp, headers: HeaderMap) -> Response {
    let dev = match require_dev(&web, &headers, &ip, "/account").await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let answer = web
        .api
        .get(
            &own_data_principal(&dev),
            &format!("/api/developers/{}/export", enc(&dev.email)),
        )
        .await;
    if !answer.ok() {
        return (answer.status, answer.detail()).into_response();
    }
    let body = serde_json::to_string_pretty(&answer.body).unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"my-data.json\"".to_string(),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

/// Erases the developer's account, apps and keys, after they confirm with their password.
async fn account_delete(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<DeleteForm>,
) -> Response {
    let dev = match require_dev(&web, &headers, &ip, "/account").await {
        Ok(d) => d,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&dev, &f.csrf) {
        return r;
    }
    let stored = web
        .admin
        .store
        .portal_account(&dev.email)
        .await
        .ok()
        .flatten();
    let matches = verify_password(&f.password, stored.as_deref().unwrap_or(decoy_hash())).await;
    if !matches {
        web.limiter.failed(&dev.email, &ip.0);
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &AccountPage {
                f: Frame::new("Your account", "account", Some(&dev), Flash::default()),
                error: Some("That is not your password: nothing was deleted.".to_string()),
            },
        );
    }
    let answer = web
        .api
        .call(
            &own_data_principal(&dev),
            Method::POST,
            &format!("/api/developers/{}/erase", enc(&dev.email)),
            None,
        )
        .await;
    if !answer.ok() {
        return page(
            answer.status,
            &AccountPage {
                f: Frame::new("Your account", "account", Some(&dev), Flash::default()),
                error: Some(answer.detail()),
            },
        );
    }
    let mut resp = see_other("/?msg=account-deleted");
    resp.headers_mut()
        .append(header::SET_COOKIE, session::clear_cookie(PORTAL_COOKIE));
    resp
}
