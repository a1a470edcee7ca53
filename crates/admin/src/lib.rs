//! The admin API (CONTRACT §3): health, metrics, the declarative configuration endpoint,
//! REST collections over the same configuration, and admin tokens.
//!
//! Every write goes the same way: load the current configuration, change it, validate the
//! whole result, commit the difference in one store transaction, and install the new
//! revision on this node's gateway before answering. A rejected change writes nothing.

mod alerts;
mod analytics;
mod audit;
mod auth;
mod billing;
mod cache;
mod collections;
mod compliance;
mod config;
mod control;
mod credit;
mod export;
mod identities;
mod invoices;
mod lifecycle;
mod nodes;
mod notify;
mod openapi;
mod passwords;
mod pricing;
mod privacy;
mod problem;
mod scopes;
mod seal;
mod subscriptions;
mod teams;
mod usage;
mod users;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tollgate_gateway::Gateway;
use tollgate_store::Store;

pub use alerts::{spawn_alerts, spawn_block_sync};
pub use analytics::{
    retain as retain_analytics, retain_records, spawn_retention as spawn_analytics_retention,
};
pub use auth::{
    CSRF_HEADER, DASHBOARD_COOKIE, Principal, Role, cookie, dashboard_session, generate_token,
    hash_token, same_secret,
};
pub use collections::read as current_document;
pub use config::{ApplyOutcome, apply_config};
pub use control::{SyncError, read_snapshot, store_reachable, sync_from_store, write_snapshot};
pub use credit::spawn_credit_watch;
pub use nodes::{FORGET_AFTER_SECS, HEARTBEAT_SECS};
pub use notify::{deliver_due, signature, spawn_quota_notices, spawn_webhook_worker};
pub use passwords::{decoy_hash, hash_password, password_problem, verify_password};
pub use problem::ApiError;
pub use users::email_problem;

/// Shared state of the admin listener.
pub struct AdminState {
    pub store: Arc<Store>,
    pub gateway: Arc<Gateway>,
    pub prometheus: Option<PrometheusHandle>,
    /// Set once a snapshot from the store is installed.
    pub loaded: AtomicBool,
    /// One configuration change at a time on this node.
    pub(crate) apply_lock: tokio::sync::Mutex<()>,
    /// Where the served configuration is kept for a start without the store.
    pub snapshot: Option<std::path::PathBuf>,
}

impl AdminState {
    pub fn new(
        store: Arc<Store>,
        gateway: Arc<Gateway>,
        prometheus: Option<PrometheusHandle>,
        snapshot: Option<std::path::PathBuf>,
    ) -> Arc<AdminState> {
        Arc::new(AdminState {
            store,
            gateway,
            prometheus,
            loaded: AtomicBool::new(false),
            apply_lock: tokio::sync::Mutex::new(()),
            snapshot,
        })
    }
}

/// Largest request body the admin API reads (a configuration with inline specs).
const MAX_BODY: usize = 16 << 20;

/// The admin API's routes.
pub fn router(state: Arc<AdminState>) -> Router {
    let api = Router::new()
        .merge(config::routes())
        .merge(collections::routes())
        .merge(identities::routes())
        .merge(privacy::routes())
        .merge(auth::routes())
        .merge(users::routes())
        .merge(cache::routes())
        .merge(pricing::routes())
        .merge(usage::routes())
        .merge(analytics::routes())
        .merge(lifecycle::routes())
        .merge(alerts::routes())
        .merge(audit::routes())
        .merge(nodes::routes())
        .merge(compliance::routes())
        .merge(invoices::routes())
        .merge(export::routes())
        .merge(notify::routes())
        .merge(credit::routes())
        .merge(subscriptions::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(control::healthz))
        .route("/readyz", get(control::readyz))
        .route("/metrics", get(control::metrics))
        .route("/api/openapi.json", get(openapi::serve))
        .nest("/api", api)
        .fallback(problem::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
