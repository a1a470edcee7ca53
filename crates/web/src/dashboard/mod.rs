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
    DASHBOARD_COOKIE, Principal, Role, dashboard_session, decoy_hash, verify_password,
};

use crate::Web;
use crate::api::{enc, items, text};
use crate::session::{self, ClientIp, CsrfForm, form_token, form_token_ok, is_https};
use crate::view::{Flash, count, ok, page, see_other, short_time};

mod catalog;
mod overview;
mod records;

pub(crate) use catalog::*;
use overview::*;
pub(crate) use records::*;

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
    session::check_csrf(&s.csrf, sent)
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

async fn logout(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Ok(s) = signed(&web, &headers, &ip).await
        && let Err(r) = check_csrf(&s, &f.csrf)
    {
        return r;
    }
    session::sign_out(&web.admin.store, &headers, DASHBOARD_COOKIE).await
}
