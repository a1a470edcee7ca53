//! `GET /api/openapi.json`: this API's OpenAPI 3.1 document, generated from the handlers'
//! annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{
    alerts, analytics, audit, auth, cache, collections, compliance, config, credit, export,
    identities, invoices, lifecycle, nodes, notify, pricing, privacy, subscriptions, usage, users,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tollgate admin API", description = "Manage the configuration, tokens and state of a Tollgate node."),
    paths(
        config::export, config::apply, config::changes, audit::list, audit::verify, nodes::list, compliance::report,
        collections::list_upstreams, collections::get_upstream, collections::create_upstream, collections::put_upstream, collections::delete_upstream,
        collections::list_apis, collections::get_api, collections::create_api, collections::put_api, collections::delete_api,
        collections::list_versions, collections::get_version, collections::create_version, collections::put_version, collections::delete_version,
        collections::list_policies, collections::get_policy, collections::create_policy, collections::put_policy, collections::delete_policy,
        identities::list_developers, identities::get_developer, identities::create_developer, identities::put_developer, identities::delete_developer,
        identities::list_apps, identities::get_app, identities::create_app, identities::put_app, identities::delete_app,
        identities::list_keys, identities::create_key, identities::revoke_key,
        privacy::export, privacy::erase,
        identities::list_certificates, identities::get_certificate, identities::create_certificate, identities::put_certificate, identities::delete_certificate,
        auth::list_tokens, auth::create_token, auth::revoke_token,
        users::list_users, users::get_user, users::create_user, users::update_user, users::delete_user,
        cache::purge, cache::purge_all, cache::stats,
        pricing::quote,
        usage::usage,
        analytics::timeseries, analytics::top, analytics::heatmap, analytics::adoption, lifecycle::callers, alerts::list, alerts::unblock,
        invoices::run, invoices::list, invoices::show, invoices::simulate, export::usage_export, notify::notices, notify::deliveries, credit::show_credit, credit::add_credit,
        subscriptions::list_products, subscriptions::get_product, subscriptions::put_product, subscriptions::delete_product,
        subscriptions::list_subscriptions, subscriptions::get_subscription, subscriptions::create_subscription,
        subscriptions::change_subscription, subscriptions::delete_subscription,
    ),
    components(schemas(crate::problem::Problem, config::ApplyOutcome, auth::NewToken, users::NewUser, users::UserChange, cache::Purge, pricing::QuoteRequest, usage::Usage, usage::SubscriptionUsage, subscriptions::NewSubscription, subscriptions::PlanChange, credit::TopUp)),
    modifiers(&BearerAuth)
)]
struct AdminApi;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    AdminApi::openapi()
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
