//! Policies: typed configuration of one request phase, attached at a scope (global, API,
//! version, route). Each is written as a one-key map, e.g. `- ip_restrict: { deny: [...] }`.
//!
//! Only the policy types this build enforces are accepted. A type that the contract names
//! but this build does not enforce yet is rejected with a message saying so, never
//! accepted and silently ignored: an unenforced `key_auth` would be an open door.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use indexmap::IndexMap;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::ByteSize;

#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    IpRestrict(IpRestrict),
    RequestSize(RequestSize),
    RequestTransform(Transform),
    ResponseTransform(Transform),
    Cache(Cache),
    Aggregate(Aggregate),
}

/// Policy types this build enforces.
pub const AVAILABLE: &[&str] = &[
    "ip_restrict",
    "request_size",
    "request_transform",
    "response_transform",
    "cache",
    "aggregate",
];

/// Policy types of the public contract that later builds enforce.
const PLANNED: &[&str] = &[
    "key_auth",
    "jwt",
    "basic_auth",
    "mtls",
    "oauth2_introspection",
    "acl",
    "scopes",
    "authorize",
    "cors",
    "rate_limit",
    "quota",
    "circuit_breaker",
    "validate",
];

impl Policy {
    /// The policy type, as written in configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            Policy::IpRestrict(_) => "ip_restrict",
            Policy::RequestSize(_) => "request_size",
            Policy::RequestTransform(_) => "request_transform",
            Policy::ResponseTransform(_) => "response_transform",
            Policy::Cache(_) => "cache",
            Policy::Aggregate(_) => "aggregate",
        }
    }
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
            Policy::IpRestrict(p) => map.serialize_entry(self.kind(), p)?,
            Policy::RequestSize(p) => map.serialize_entry(self.kind(), p)?,
            Policy::RequestTransform(p) | Policy::ResponseTransform(p) => {
                map.serialize_entry(self.kind(), p)?
            }
            Policy::Cache(p) => map.serialize_entry(self.kind(), p)?,
            Policy::Aggregate(p) => map.serialize_entry(self.kind(), p)?,
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
            "ip_restrict" => Policy::IpRestrict(map.next_value()?),
            "request_size" => Policy::RequestSize(map.next_value()?),
            "request_transform" => Policy::RequestTransform(map.next_value()?),
            "response_transform" => Policy::ResponseTransform(map.next_value()?),
            "cache" => Policy::Cache(map.next_value()?),
            "aggregate" => Policy::Aggregate(map.next_value()?),
            other if PLANNED.contains(&other) => {
                return Err(de::Error::custom(format!(
                    "policy `{other}` is not enforced by this build of Tollgate; \
                     available policies: {}",
                    AVAILABLE.join(", ")
                )));
            }
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
        let err = serde_json::from_str::<Policy>(r#"{"key_auth":{}}"#).unwrap_err();
        assert!(
            err.to_string().contains("not enforced by this build"),
            "{err}"
        );
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
