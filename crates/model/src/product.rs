//! Products, their plans, and subscriptions of apps to plans (CONTRACT §2): what an API
//! owner sells and who bought it. A version in a product that has plans is only served to
//! apps with an active subscription; the plan's limits apply to each subscribed app.

use serde::{Deserialize, Serialize};
use tollgate_pricing::Price;

use crate::document::Visibility;
use crate::traffic::{Quota, RateLimit};

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A bundle of API versions offered in the portal, with its plans.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub visibility: Visibility,
    /// API versions, written `api@version`.
    pub apis: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<Plan>,
}

/// Whether a new subscription is active at once or waits for an owner's approval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    #[default]
    Auto,
    Manual,
}

fn free() -> Price {
    Price::free()
}

fn is_free(p: &Price) -> bool {
    *p == Price::free()
}

/// What a subscriber gets and pays.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub approval: Approval,
    /// Applies to each subscribed app (`by` is always the app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    #[serde(default = "free", skip_serializing_if = "is_free")]
    pub price: Price,
    /// Calls need prepaid credit: when a subscription's credit is spent (this month's
    /// charges so far reach it), its calls are refused with 402 until credit is added.
    #[serde(default, skip_serializing_if = "is_default")]
    pub prepaid: bool,
    /// Answers that count as billable usage, by status class (default: `[2xx]`).
    #[serde(
        default = "default_billable",
        skip_serializing_if = "is_default_billable"
    )]
    pub billable: Vec<String>,
}

fn default_billable() -> Vec<String> {
    vec!["2xx".to_string()]
}

fn is_default_billable(b: &Vec<String>) -> bool {
    *b == default_billable()
}

/// Where a subscription stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Pending,
    #[default]
    Active,
    Suspended,
    Cancelled,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Pending => "pending",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Suspended => "suspended",
            SubscriptionStatus::Cancelled => "cancelled",
        }
    }
}

/// An app's subscription to one plan of a product (one per app and product).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub app: String,
    pub product: String,
    pub plan: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: SubscriptionStatus,
    /// When billing began (RFC 3339): set when the subscription becomes active. A
    /// subscription without it is billed as if it had started before any period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it was cancelled (RFC 3339); billing stops there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// The plans it had before `plan`, oldest first, each with the moment it ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PastPlan>,
}

/// A plan a subscription had before, until a plan change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PastPlan {
    pub plan: String,
    /// The moment the next plan took over (RFC 3339).
    pub until: String,
}

impl Subscription {
    /// A new subscription to `plan`, with nothing dated yet.
    pub fn new(app: &str, product: &str, plan: &str, status: SubscriptionStatus) -> Self {
        Subscription {
            app: app.to_string(),
            product: product.to_string(),
            plan: plan.to_string(),
            status,
            started_at: None,
            ended_at: None,
            history: Vec::new(),
        }
    }

    /// The subscription's name in the store and the admin API: `app:product`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.app, self.product)
    }
}
