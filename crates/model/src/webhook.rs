//! Webhooks: where Tollgate tells other systems what happened (an invoice finalized, a
//! quota nearly spent, …). Each delivery is signed with the webhook's secret (HMAC-SHA256
//! over the timestamp and the body) so the receiver can tell it came from Tollgate.

use serde::{Deserialize, Serialize};

/// Every event a webhook can ask for.
pub const EVENTS: &[&str] = &[
    "invoice.finalized",
    "quota.warning",
    "quota.exhausted",
    "credit.exhausted",
    "alert.raised",
    "version.deprecated",
];

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// One receiver of events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub name: String,
    /// `https://…` (plain `http://` only to a loopback address).
    pub url: String,
    /// Event names, or `["*"]` for all.
    pub events: Vec<String>,
    /// Signing secret, at least 16 characters; sealed at rest.
    pub secret: String,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
}

impl Webhook {
    pub fn wants(&self, event: &str) -> bool {
        self.enabled && self.events.iter().any(|e| e == "*" || e == event)
    }
}
