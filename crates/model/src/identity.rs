//! Who calls the APIs (CONTRACT §2): developers (portal accounts, in an organization) and
//! their apps, with the credentials that identify an app at the gateway.
//!
//! Credentials are written in clear only on their way in (`secret`, `password`); the
//! admin API replaces them by their hashes before anything is stored, and an export shows
//! only the hashes, which apply again unchanged.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

/// A developer: a person who signs up in the portal and owns apps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Developer {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The customer the developer works for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// A blocked developer's apps are refused (403).
    #[serde(default, skip_serializing_if = "is_false")]
    pub blocked: bool,
    /// The developer's customer id at the payment provider (e.g. Stripe `cus_…`): the
    /// customer of their apps' usage records in usage exports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_customer: Option<String>,
}

/// A client application, identified at the gateway by its credentials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// Slug, unique.
    pub name: String,
    /// The owning developer's email.
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Groups for `acl` policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// API keys; at most two active at once (for rotation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<AppKey>,
    /// Values of a `jwt` policy's `app_claim` (default `sub`) that identify this app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_subjects: Vec<String>,
    /// Values of an `oauth2_introspection` policy's `app_claim` (default `client_id`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oauth2_clients: Vec<String>,
    /// Username/password pairs for `basic_auth`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub basic: Vec<BasicCredential>,
    /// Client certificates for `mtls`: SHA-256 fingerprints (hex) or subject common names
    /// written `cn:NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    /// Free attributes, visible to `authorize` policies as `principal.attributes`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub attributes: IndexMap<String, serde_json::Value>,
    /// A disabled app is refused (403).
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
}

/// One API key. Written with `secret` (a literal key, hashed on apply) or, as stored and
/// exported, with `id` and `hash`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// HMAC-SHA256 of the key under the node's pepper (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// The key in clear: accepted on input only, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// RFC 3339; the key is refused after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// A `basic_auth` credential. `password` is accepted on input only; what is stored is the
/// argon2id hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicCredential {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}
