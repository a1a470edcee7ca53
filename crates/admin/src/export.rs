//! Files for other systems: invoices as CSV (one row per invoice line) and metered usage as
//! meter events in the shape Stripe's usage import reads (CSV or JSON lines: `identifier`,
//! `timestamp`, `event_name`, `payload_stripe_customer_id`, `payload_value`). Nothing is
//! sent anywhere: the operator uploads the file.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::problem::Query;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::AdminState;
use crate::config::current_document;
use crate::invoices::check_period;
use crate::problem::ApiError;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new().route("/usage/export", get(usage_export))
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break. A text
/// that a spreadsheet would run as a formula is prefixed with `'`.
fn field(out: &mut String, v: &str) {
    let formula = v.starts_with(['=', '+', '@', '\t', '\r'])
        || (v.starts_with('-') && v.parse::<f64>().is_err());
    let v = if formula {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&v);
    }
}

fn row(out: &mut String, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, f);
    }
    out.push_str("\r\n");
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Invoices as CSV: one row per line, with the invoice's total repeated on each.
pub fn invoices_csv(invoices: &[Value]) -> String {
    let mut out = String::new();
    row(
        &mut out,
        &[
            "invoice_id",
            "period",
            "app",
            "product",
            "plan",
            "currency",
            "line",
            "description",
            "quantity",
            "unit_price",
            "amount",
            "detail",
            "invoice_total",
        ],
    );
    for inv in invoices {
        let lines = inv["lines"].as_array().cloned().unwrap_or_default();
        for (i, l) in lines.iter().enumerate() {
            let n = (i + 1).to_string();
            row(
                &mut out,
                &[
                    &text(&inv["id"]),
                    &text(&inv["period"]),
                    &text(&inv["app"]),
                    &text(&inv["product"]),
                    &text(&inv["plan"]),
                    &text(&inv["currency"]),
                    &n,
                    &text(&l["description"]),
                    &text(&l["quantity"]),
                    &text(&l["unit_price"]),
                    &text(&l["amount"]),
                    &text(&l["detail"]),
                    &text(&inv["total"]),
                ],
            );
        }
    }
    out
}

pub fn csv_response(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct UsageExportQuery {
    /// A calendar month, `YYYY-MM` (UTC).
    period: String,
    /// `stripe-csv` (default) or `stripe-jsonl`.
    format: Option<String>,
    /// The meter's event name (default `api_requests`).
    event_name: Option<String>,
}

/// Metered billable usage of a month as meter events a payment provider imports: one event
/// per subscription and hour with billable calls. Identifiers derive from subscription and
/// hour, so uploading the same file twice does not count twice. The customer is the app
/// owner's `billing_customer`, or the owner's e-mail when none is set (how many owners have
/// none is in `X-Tollgate-Unmapped`).
#[utoipa::path(get, path = "/api/usage/export", params(UsageExportQuery),
    responses((status = 200, description = "CSV or JSON lines of meter events"), (status = 400, description = "Bad period or format")), security(("bearer" = [])))]
pub async fn usage_export(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<UsageExportQuery>,
) -> Result<Response, ApiError> {
    let (from, to) = check_period(&q.period)?;
    let jsonl = match q.format.as_deref().unwrap_or("stripe-csv") {
        "stripe-csv" => false,
        "stripe-jsonl" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "format `{other}` is not known: use stripe-csv or stripe-jsonl"
            )));
        }
    };
    let event = q.event_name.unwrap_or_else(|| "api_requests".to_string());
    if event.is_empty() || event.len() > 100 || event.chars().any(|c| c.is_control()) {
        return Err(ApiError::bad_request(
            "event_name must be 1 to 100 printable characters",
        ));
    }
    let (_, set) = state.store.load().await?;
    let doc = current_document(&set)?;
    let customer = |subscription: &str| -> (String, bool) {
        let app = subscription
            .split_once(':')
            .map_or(subscription, |(a, _)| a);
        let owner = doc.apps.iter().find(|a| a.name == app).map(|a| &a.owner);
        let dev = owner.and_then(|o| doc.developers.iter().find(|d| d.email == *o));
        match (dev.and_then(|d| d.billing_customer.clone()), owner) {
            (Some(c), _) => (c, true),
            (None, Some(o)) => (o.clone(), false),
            (None, None) => (app.to_string(), false),
        }
    };
    let mut unmapped = std::collections::BTreeSet::new();
    let mut out = String::new();
    if !jsonl {
        row(
            &mut out,
            &[
                "identifier",
                "timestamp",
                "event_name",
                "payload_stripe_customer_id",
                "payload_value",
                "payload_subscription",
            ],
        );
    }
    for h in state.store.usage_hours(from, to).await? {
        if h.billable == 0 {
            continue;
        }
        let (cus, mapped) = customer(&h.subscription);
        if !mapped {
            unmapped.insert(cus.clone());
        }
        // Same meter, subscription and hour: same identifier (an upload is not counted
        // twice; export a month once it has ended so no hour grows after its upload).
        let digest = Sha256::digest(format!("{event}|{}|{}", h.subscription, h.hour).as_bytes());
        let id = format!("tg_{}", &hex::encode(digest)[..24]);
        let ts = (h.hour * 60).to_string();
        let value = h.billable.to_string();
        if jsonl {
            let line = json!({
                "identifier": id,
                "timestamp": h.hour * 60,
                "event_name": event,
                "payload": {
                    "stripe_customer_id": cus,
                    "value": value,
                    "subscription": h.subscription,
                },
            });
            let _ = writeln!(out, "{line}");
        } else {
            row(&mut out, &[&id, &ts, &event, &cus, &value, &h.subscription]);
        }
    }
    let (kind, name) = if jsonl {
        ("application/jsonl", format!("usage-{}.jsonl", q.period))
    } else {
        ("text/csv; charset=utf-8", format!("usage-{}.csv", q.period))
    };
    let mut resp = (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        out,
    )
        .into_response();
    if !unmapped.is_empty() {
        resp.headers_mut()
            .insert("x-tollgate-unmapped", unmapped.len().into());
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting_and_defuses_formulas() {
        let mut out = String::new();
        row(
            &mut out,
            &["a", "b,c", "say \"hi\"", "=SUM(A1)", "line\nbreak"],
        );
        assert_eq!(
            out,
            "a,\"b,c\",\"say \"\"hi\"\"\",'=SUM(A1),\"line\nbreak\"\r\n"
        );
    }

    #[test]
    fn one_row_per_invoice_line() {
        let inv = json!({
            "id": "inv_1", "period": "2026-11", "app": "a", "product": "p", "plan": "pro",
            "currency": "USD", "total": "55.00",
            "lines": [
                {"description": "base fee", "quantity": 1, "unit_price": "49", "amount": "49.00", "detail": "whole period"},
                {"description": "tier 2", "quantity": 12, "unit_price": "0.5", "amount": "6.00", "detail": "12 × 0.5"},
            ],
        });
        let csv = invoices_csv(&[inv]);
        let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[2],
            "inv_1,2026-11,a,p,pro,USD,2,tier 2,12,0.5,6.00,12 × 0.5,55.00"
        );
    }
}
