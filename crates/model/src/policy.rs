//! Policies: typed configuration of one request phase, attached at a scope (global, API,
//! version, route). Each is written as a one-key map, e.g. `- ip_restrict: { deny: [...] }`.
//!
//! Only the policy types this build enforces are accepted; an unknown type is refused by
//! name, never accepted and silently ignored: an unenforced `key_auth` would be an open door.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use indexmap::IndexMap;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::traffic::{
    CircuitBreaker, LimitBy, LimitMode, LimitScope, Quota, QuotaPeriod, RateLimit,
};
use crate::units::ByteSize;

#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    KeyAuth(KeyAuth),
    Jwt(Jwt),
    BasicAuth(BasicAuth),
    Mtls(Mtls),
    OAuth2Introspection(OAuth2Introspection),
    Acl(Acl),
    Scopes(Scopes),
    Authorize(Authorize),
    Cors(Cors),
    IpRestrict(IpRestrict),
    RequestSize(RequestSize),
    RequestTransform(Transform),
    ResponseTransform(Transform),
    Cache(Cache),
    Aggregate(Aggregate),
    RateLimit(RateLimit),
    Quota(Quota),
    CircuitBreaker(CircuitBreaker),
    Validate(Validate),
}

/// Policy types this build enforces.
pub const AVAILABLE: &[&str] = &[
    "key_auth",
    "jwt",
    "basic_auth",
    "mtls",
    "oauth2_introspection",
    "acl",
    "scopes",
    "authorize",
    "cors",
    "ip_restrict",
    "request_size",
    "request_transform",
    "response_transform",
    "cache",
    "aggregate",
    "rate_limit",
    "quota",
    "circuit_breaker",
    "validate",
];

impl Policy {
    /// The policy type, as written in configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            Policy::KeyAuth(_) => "key_auth",
            Policy::Jwt(_) => "jwt",
            Policy::BasicAuth(_) => "basic_auth",
            Policy::Mtls(_) => "mtls",
            Policy::OAuth2Introspection(_) => "oauth2_introspection",
            Policy::Acl(_) => "acl",
            Policy::Scopes(_) => "scopes",
            Policy::Authorize(_) => "authorize",
            Policy::Cors(_) => "cors",
            Policy::IpRestrict(_) => "ip_restrict",
            Policy::RequestSize(_) => "request_size",
            Policy::RequestTransform(_) => "request_transform",
            Policy::ResponseTransform(_) => "response_transform",
            Policy::Cache(_) => "cache",
            Policy::Aggregate(_) => "aggregate",
            Policy::RateLimit(_) => "rate_limit",
            Policy::Quota(_) => "quota",
            Policy::CircuitBreaker(_) => "circuit_breaker",
            Policy::Validate(_) => "validate",
        }
    }

    /// Whether this policy authenticates callers (the `authenticate` phase).
    pub fn is_authentication(&self) -> bool {
        matches!(
            self,
            Policy::KeyAuth(_)
                | Policy::Jwt(_)
                | Policy::BasicAuth(_)
                | Policy::Mtls(_)
                | Policy::OAuth2Introspection(_)
        )
    }
}

fn default_key_header() -> String {
    "x-api-key".to_string()
}

fn is_default_key_header(s: &String) -> bool {
    *s == default_key_header()
}

/// `key_auth`: the caller presents an app's API key in a header (default `x-api-key`)
/// or, when `query` is set, a query parameter. The key is removed before forwarding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAuth {
    #[serde(
        default = "default_key_header",
        skip_serializing_if = "is_default_key_header"
    )]
    pub header: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

fn default_app_claim() -> String {
    "sub".to_string()
}

fn is_default_app_claim(s: &String) -> bool {
    *s == default_app_claim()
}

fn default_leeway() -> crate::units::Duration {
    crate::units::Duration::from_secs(30)
}

fn is_default_leeway(d: &crate::units::Duration) -> bool {
    *d == default_leeway()
}

/// `jwt`: a bearer token signed by a trusted issuer. Keys are given inline (`keys`) or
/// fetched from `jwks_url` (cached; refetched when a token names an unknown `kid`, at most
/// once per `jwks_refresh`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwt {
    /// Accepted `iss` values (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuer: Vec<String>,
    /// Accepted `aud` values (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Shortest time between two fetches of the JWKS (default 1m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_refresh: Option<crate::units::Duration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<JwtKey>,
    /// The claim that names the app (matched against apps' `jwt_subjects`).
    #[serde(
        default = "default_app_claim",
        skip_serializing_if = "is_default_app_claim"
    )]
    pub app_claim: String,
    /// Refuse tokens whose `app_claim` names no app (default: accept them as an
    /// authenticated subject without an app).
    #[serde(default, skip_serializing_if = "is_default")]
    pub require_app: bool,
    /// Claims passed upstream: claim name → header name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub forward_claims: IndexMap<String, String>,
    /// Tolerance for `exp` and `nbf` (default 30s).
    #[serde(default = "default_leeway", skip_serializing_if = "is_default_leeway")]
    pub leeway: crate::units::Duration,
    /// Refuse tokens without `exp` (default true): a token that never expires cannot be
    /// taken back.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub require_exp: bool,
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A verification key for `jwt`: a public JWK (`jwk`), a PEM public key with its `alg`,
/// or an HMAC `secret` with its `alg` (HS256/384/512; sealed when stored).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `mtls`: the client certificate, verified against `settings.tls.client_ca` during the
/// TLS handshake, names the app (apps' `certificates`: SHA-256 fingerprints or `cn:NAME`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mtls {
    /// Accept a verified certificate that names no app, as an authenticated subject
    /// (its common name) without an app.
    #[serde(default, skip_serializing_if = "is_default")]
    pub allow_unknown: bool,
}

/// `basic_auth`: HTTP Basic credentials of an app (`apps[].basic`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
}

fn default_client_claim() -> String {
    "client_id".to_string()
}

fn is_default_client_claim(s: &String) -> bool {
    *s == default_client_claim()
}

/// `oauth2_introspection`: an opaque bearer token checked with the authorization
/// server's introspection endpoint (RFC 7662). Answers are cached for the token's
/// remaining life, at most `cache_ttl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Introspection {
    pub url: String,
    pub client_id: String,
    /// Sealed when stored.
    pub client_secret: String,
    /// The field of the introspection answer that names the app (matched against apps'
    /// `oauth2_clients`).
    #[serde(
        default = "default_client_claim",
        skip_serializing_if = "is_default_client_claim"
    )]
    pub app_claim: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub require_app: bool,
    /// Longest time an answer is reused (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<crate::units::Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<crate::units::Duration>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub forward_claims: IndexMap<String, String>,
}

/// `acl`: allow or deny apps by group. `deny` wins; with `allow`, an app must be in one of
/// the groups.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// `scopes`: the token's `scope` (space-separated) or `scp` (list) must hold every
/// scope of `required` and, when `any` is set, at least one of `any`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scopes {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<String>,
}

/// `authorize`: Cedar policies over the caller (principal), the method (action) and the
/// route (resource), with the request as context. Denied unless a `permit` applies and
/// no `forbid` does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorize {
    pub cedar: String,
}

/// `cors`: answers preflight requests at the gateway and adds the CORS headers to
/// answers for allowed origins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Allowed origins (`https://app.example.com`), or `*`.
    pub origins: Vec<String>,
    /// Allowed methods (default GET, HEAD, POST).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Allowed request headers (default: those the preflight asks for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub credentials: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<crate::units::Duration>,
}

/// Allow or deny clients by address. With `allow`, only listed networks get through;
/// `deny` is checked first and always wins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpRestrict {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Cidr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Cidr>,
}

/// Largest request body accepted (413 above it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSize {
    pub max_body: ByteSize,
}

/// `validate`: requests are checked against the version's OpenAPI document (`spec`):
/// the path must be one the document describes, path, query and header parameters must
/// match their schemas, and a JSON body its request body schema. A request that does not
/// gets `400` listing every violation; the upstream never sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validate {
    /// Check the request body (read whole, up to `max_body`).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub body: bool,
    /// The largest body read to check it; a larger one is refused with `413`.
    #[serde(
        default = "default_validate_body",
        skip_serializing_if = "is_default_validate_body"
    )]
    pub max_body: ByteSize,
}

fn default_validate_body() -> ByteSize {
    ByteSize(1 << 20)
}

fn is_default_validate_body(v: &ByteSize) -> bool {
    *v == default_validate_body()
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Rules for a set of named values (headers or query parameters). Applied in the order
/// remove, rename, set, add. `add` appends a value, `set` replaces all values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRules {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub rename: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub set: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub add: IndexMap<String, String>,
}

impl FieldRules {
    pub fn is_empty(&self) -> bool {
        *self == FieldRules::default()
    }
}

/// Rules for JSON body fields, addressed by dot paths (`customer.email`). Applied in the
/// order remove, rename, set, add; `add` only fills a field that is absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyRules {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub rename: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub set: IndexMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub add: IndexMap<String, serde_json::Value>,
}

impl BodyRules {
    pub fn is_empty(&self) -> bool {
        *self == BodyRules::default()
    }
}

/// `request_transform` / `response_transform`: reshape headers, query parameters, the
/// path (requests only) and JSON bodies. Bodies are buffered only when body rules exist,
/// up to `max_body`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    #[serde(default, skip_serializing_if = "FieldRules::is_empty")]
    pub headers: FieldRules,
    #[serde(default, skip_serializing_if = "FieldRules::is_empty")]
    pub query: FieldRules,
    /// New upstream path; `{name}` inserts a route parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "BodyRules::is_empty")]
    pub body: BodyRules,
    /// Largest body buffered for body rules (default 1MB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<ByteSize>,
}

/// `cache`: keep answers in memory and serve repeats from there, as `Cache-Control`
/// allows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// Freshness for answers that carry no `max-age`/`s-maxage`; without it such answers
    /// are not cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<crate::units::Duration>,
    /// Largest body kept (default 1MB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entry: Option<ByteSize>,
    /// Extra parts of the cache key: `app`, `header:NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
}

/// How `aggregate` combines the parts' JSON bodies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeMode {
    /// Deep-merge every part's object into one object (later parts win on clashes).
    #[default]
    Object,
    /// Place each part under its `key`.
    Keyed,
}

/// `aggregate`: answer the route by calling several upstreams and merging their JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    #[serde(default, skip_serializing_if = "is_default")]
    pub merge: MergeMode,
    pub steps: Vec<AggregateStep>,
}

/// One upstream call of an aggregate. Calls run in parallel, except that a call whose
/// path uses a field of an earlier call's answer (`{user.id}`) waits for that call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateStep {
    pub name: String,
    pub upstream: String,
    /// Path and query; `{param}` is a route parameter, `{step.field.path}` a field of an
    /// earlier step's JSON answer.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<crate::units::Duration>,
    /// A failed optional step leaves its part out (marked in `X-Tollgate-Partial`);
    /// a failed required step fails the request with 502.
    #[serde(default, skip_serializing_if = "is_default")]
    pub optional: bool,
    /// Where the part goes with `merge: keyed` (default: the step name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The `{…}` placeholders of a template, in order.
pub fn placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("`{template}` has an unclosed `{{`"))?;
        let name = &after[..close];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            return Err(format!(
                "`{{{name}}}` in `{template}` is not a placeholder name"
            ));
        }
        out.push(name);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("`{template}` has an unmatched `}}`"));
    }
    Ok(out)
}

/// An IPv4 or IPv6 network, `203.0.113.0/24` or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}` has an invalid prefix length (0..={max})"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self {
            Policy::KeyAuth(p) => map.serialize_entry(self.kind(), p)?,
            Policy::Jwt(p) => map.serialize_entry(self.kind(), p)?,
            Policy::BasicAuth(p) => map.serialize_entry(self.kind(), p)?,
            Policy::Mtls(p) => map.serialize_entry(self.kind(), p)?,
            Policy::OAuth2Introspection(p) => map.serialize_entry(self.kind(), p)?,
            Policy::Acl(p) => map.serialize_entry(self.kind(), p)?,
            Policy::Scopes(p) => map.serialize_entry(self.kind(), p)?,
            Policy::Authorize(p) => map.serialize_entry(self.kind(), p)?,
            Policy::Cors(p) => map.serialize_entry(self.kind(), p)?,
            Policy::IpRestrict(p) => map.serialize_entry(self.kind(), p)?,
            Policy::RequestSize(p) => map.serialize_entry(self.kind(), p)?,
            Policy::RequestTransform(p) | Policy::ResponseTransform(p) => {
                map.serialize_entry(self.kind(), p)?
            }
            Policy::Cache(p) => map.serialize_entry(self.kind(), p)?,
            Policy::Aggregate(p) => map.serialize_entry(self.kind(), p)?,
            Policy::RateLimit(p) => map.serialize_entry(self.kind(), p)?,
            Policy::Quota(p) => map.serialize_entry(self.kind(), p)?,
            Policy::CircuitBreaker(p) => map.serialize_entry(self.kind(), p)?,
            Policy::Validate(p) => map.serialize_entry(self.kind(), p)?,
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PolicyVisitor)
    }
}

struct PolicyVisitor;

impl<'de> Visitor<'de> for PolicyVisitor {
    type Value = Policy;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a policy written as a one-key map, e.g. `ip_restrict: { deny: [...] }`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Policy, A::Error> {
        let Some(kind) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                "empty policy; write one policy type as the key",
            ));
        };
        let policy = match kind.as_str() {
            "key_auth" => Policy::KeyAuth(map.next_value()?),
            "jwt" => Policy::Jwt(map.next_value()?),
            "basic_auth" => Policy::BasicAuth(map.next_value()?),
            "mtls" => Policy::Mtls(map.next_value()?),
            "oauth2_introspection" => Policy::OAuth2Introspection(map.next_value()?),
            "acl" => Policy::Acl(map.next_value()?),
            "scopes" => Policy::Scopes(map.next_value()?),
            "authorize" => Policy::Authorize(map.next_value()?),
            "cors" => Policy::Cors(map.next_value()?),
            "ip_restrict" => Policy::IpRestrict(map.next_value()?),
            "request_size" => Policy::RequestSize(map.next_value()?),
            "request_transform" => Policy::RequestTransform(map.next_value()?),
            "response_transform" => Policy::ResponseTransform(map.next_value()?),
            "cache" => Policy::Cache(map.next_value()?),
            "aggregate" => Policy::Aggregate(map.next_value()?),
            "rate_limit" => Policy::RateLimit(map.next_value()?),
            "quota" => Policy::Quota(map.next_value()?),
            "circuit_breaker" => Policy::CircuitBreaker(map.next_value()?),
            "validate" => Policy::Validate(map.next_value()?),
            other => {
                return Err(de::Error::custom(format!(
                    "unknown policy type `{other}`; available policies: {}",
                    AVAILABLE.join(", ")
                )));
            }
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::custom(format!(
                "a policy item holds exactly one policy type, found `{kind}` and `{extra}`; \
                 write them as two list items"
            )));
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let net: Cidr = "203.0.113.0/24".parse().unwrap();
        assert!(net.contains("203.0.113.9".parse().unwrap()));
        assert!(!net.contains("203.0.114.9".parse().unwrap()));
        assert!(net.contains("::ffff:203.0.113.9".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
        assert_eq!("10.1.2.3".parse::<Cidr>().unwrap().to_string(), "10.1.2.3");
    }

    #[test]
    fn policies_round_trip() {
        let p: Policy = serde_json::from_str(r#"{"ip_restrict":{"deny":["10.0.0.0/8"]}}"#).unwrap();
        assert_eq!(p.kind(), "ip_restrict");
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"ip_restrict":{"deny":["10.0.0.0/8"]}}"#
        );
    }

    #[test]
    fn unenforced_policies_are_refused_by_name() {
        let err = serde_json::from_str::<Policy>(r#"{"frobnicate":{}}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown policy type `frobnicate`"),
            "{err}"
        );
        let err =
            serde_json::from_str::<Policy>(r#"{"ip_restrict":{},"request_size":{"max_body":1}}"#)
                .unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
    }
}
