//! Tollgate's web pages, served by the binary itself: the admin **dashboard** (on the admin
//! listener, at `/`) and the **developer portal** (on its own listener).
//!
//! Pages are rendered on the server with askama; htmx, uPlot and the stylesheet are
//! vendored in `assets/` and compiled into the binary. Every read and change a page makes
//! goes through the admin API, called in process with the signed-in person as the caller,
//! so roles, validation and the audit log apply exactly as they do for API clients; the
//! charts fetch the analytics API from the browser.

// Page handlers stop early with the response to send (a redirect to sign-in, a refused
// form): a `Result<_, Response>` whose error is large but built at most once per request.
#![allow(clippy::result_large_err)]

mod api;
mod assets;
mod dashboard;
mod openapi;
mod portal;
mod session;
mod view;

use std::sync::Arc;

use axum::Router;
use tollgate_admin::AdminState;

pub use session::{LOGIN_FAILURES_PER_ADDRESS, LOGIN_FAILURES_PER_EMAIL};

/// What the pages need to know about the node they run on.
#[derive(Clone, Debug)]
pub struct WebSettings {
    /// Where the portal's try-it console sends calls: this node's proxy listener.
    pub gateway_url: String,
    /// The gateway's address as developers reach it, shown in examples.
    pub public_gateway_url: String,
}

/// State shared by the pages of one listener.
pub(crate) struct Web {
    pub admin: Arc<AdminState>,
    pub api: api::InProcess,
    pub settings: WebSettings,
    pub limiter: session::Limiter,
    pub http: api::HttpClient,
}

impl Web {
    fn new(admin: Arc<AdminState>, api_router: Router, settings: WebSettings) -> Arc<Web> {
        Arc::new(Web {
            admin,
            api: api::InProcess::new(api_router),
            settings,
            limiter: session::Limiter::default(),
            http: api::http_client(),
        })
    }
}

/// The dashboard's routes, to merge into the admin listener's router. `api` is the admin
/// API router itself, which the pages call in process.
pub fn dashboard(admin: Arc<AdminState>, api: Router, settings: WebSettings) -> Router {
    dashboard::routes(Web::new(admin, api, settings))
}

/// The developer portal: the whole router of the portal listener.
pub fn portal(admin: Arc<AdminState>, api: Router, settings: WebSettings) -> Router {
    portal::routes(Web::new(admin, api, settings))
}
