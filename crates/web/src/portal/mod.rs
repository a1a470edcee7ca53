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
    verify_password,
};
use tollgate_model::Document;

use crate::Web;
use crate::api::{enc, items, text};
use crate::dashboard::{
    InvoiceRow, ProductRow, invoice_rows, product_rows, status_badge, status_of, this_month,
};
use crate::openapi::{self, Operation};
use crate::session::{
    self, ClientIp, CsrfForm, PORTAL_COOKIE, form_token, form_token_ok, is_https,
};
use crate::view::{Flash, count, ok, page, see_other, short_time};

mod account;
mod apps;
mod reference;

use account::*;
use apps::*;
use reference::*;

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
    session::check_csrf(&dev.csrf, sent)
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
