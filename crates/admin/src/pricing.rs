//! `POST /api/pricing/quote`: what a price charges for a quantity in one full period, with
//! the same lines an invoice shows.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use serde::Deserialize;
use tollgate_model::Located;
use tollgate_pricing::{Price, Quote};

use crate::AdminState;
use crate::problem::ApiError;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new().route("/pricing/quote", post(quote))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// A plan's `price` object, as in the configuration.
    #[schema(value_type = Object)]
    price: Price,
    /// Units of metered usage in the period.
    #[serde(default)]
    quantity: u64,
}

/// Prices `quantity` units for one full period: `{"currency","lines":[…],"total"}`, money as
/// decimal strings.
#[utoipa::path(post, path = "/api/pricing/quote", request_body = QuoteRequest, responses((status = 200, description = "Lines and total"), (status = 422, description = "The price is invalid")), security(("bearer" = [])))]
pub async fn quote(body: Bytes) -> Result<Json<Quote>, ApiError> {
    let req: QuoteRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("quote request: {e}")))?;
    let errors: Vec<Located> = tollgate_pricing::validate(&req.price)
        .into_iter()
        .map(|e| Located {
            path: format!("price.{}", e.path),
            line: None,
            column: None,
            message: e.message,
        })
        .collect();
    if !errors.is_empty() {
        let mut err = ApiError::invalid(errors);
        err.kind = "invalid-price";
        return Err(err);
    }
    Ok(Json(tollgate_pricing::quote(&req.price, req.quantity)))
}
