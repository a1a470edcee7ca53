//! `GET /api/usage?app=…&period=YYYY-MM`: an app's metered usage per subscription in a
//! calendar month (UTC), all nodes added up.

use std::sync::Arc;

use crate::problem::Query;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::AdminState;
use crate::config::current_document;
use crate::problem::ApiError;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new().route("/usage", get(usage))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct UsageQuery {
    /// The app whose usage to show.
    app: String,
    /// A calendar month, `YYYY-MM` (UTC).
    period: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SubscriptionUsage {
    product: String,
    /// The plan the app is subscribed to now.
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<String>,
    requests: u64,
    billable: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Usage {
    app: String,
    period: String,
    /// Requests of every subscription added up.
    requests: u64,
    billable: u64,
    subscriptions: Vec<SubscriptionUsage>,
}

/// The minutes `[from, to)` of a month written `YYYY-MM`.
pub(crate) fn month_minutes(period: &str) -> Option<(i64, i64)> {
    let (y, m) = period.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let year: i32 = y.parse().ok()?;
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let start = time::Date::from_calendar_date(year, month, 1).ok()?;
    let next = match month {
        time::Month::December => time::Date::from_calendar_date(year + 1, time::Month::January, 1),
        _ => time::Date::from_calendar_date(year, month.next(), 1),
    }
    .ok()?;
    let minutes = |d: time::Date| d.midnight().assume_utc().unix_timestamp() / 60;
    Some((minutes(start), minutes(next)))
}

/// An app's usage in one month, per subscription: every answered request and the billable
/// ones (as its plan counts them). Counts reach the store within a second of the answer.
#[utoipa::path(get, path = "/api/usage", params(UsageQuery), responses((status = 200, body = Usage), (status = 400, description = "Bad period")), security(("bearer" = [])))]
pub async fn usage(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<UsageQuery>,
) -> Result<Json<Usage>, ApiError> {
    let (from, to) = month_minutes(&q.period).ok_or_else(|| {
        ApiError::bad_request(format!(
            "period `{}` is not a month written YYYY-MM",
            q.period
        ))
    })?;
    let totals = state.store.usage(&format!("{}:", q.app), from, to).await?;
    let (_, set) = state.store.load().await?;
    let doc = current_document(&set)?;
    let subscriptions: Vec<SubscriptionUsage> = totals
        .into_iter()
        .map(|t| {
            let product = t
                .subscription
                .split_once(':')
                .map_or(t.subscription.clone(), |(_, p)| p.to_string());
            let plan = doc
                .subscriptions
                .iter()
                .find(|s| s.app == q.app && s.product == product)
                .map(|s| s.plan.clone());
            SubscriptionUsage {
                product,
                plan,
                requests: t.requests,
                billable: t.billable,
            }
        })
        .collect();
    Ok(Json(Usage {
        requests: subscriptions.iter().map(|s| s.requests).sum(),
        billable: subscriptions.iter().map(|s| s.billable).sum(),
        app: q.app,
        period: q.period,
        subscriptions,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_calendar_months_in_utc() {
        let (from, to) = month_minutes("2026-12").unwrap();
        assert_eq!(from, 1_796_083_200 / 60);
        assert_eq!(to - from, 31 * 24 * 60);
        let (from, to) = month_minutes("2028-02").unwrap();
        assert_eq!(to - from, 29 * 24 * 60);
        for bad in ["2026-13", "2026-1", "26-01", "2026/01", ""] {
            assert!(month_minutes(bad).is_none(), "{bad}");
        }
    }
}
