//! Policies: typed configuration of one request phase, attached at a scope (global, API,
//! version, route). Each is written as a one-key map, e.g. `- ip_restrict: { deny: [...] }`.
//!
//! Only the policy types this build enforces are accepted. A type that the contract names
//! but this build does not enforce yet is rejected with a message saying so, never
//! accepted and silently ignored: an unenforced `key_auth` would be an open door.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::ByteSize;

#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    IpRestrict(IpRestrict),
    RequestSize(RequestSize),
}

/// Policy types this build enforces.
pub const AVAILABLE: &[&str] = &["ip_restrict", "request_size"];

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
    "request_transform",
    "response_transform",
    "cache",
    "circuit_breaker",
    "validate",
    "aggregate",
];

impl Policy {
    /// The policy type, as written in configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            Policy::IpRestrict(_) => "ip_restrict",
            Policy::RequestSize(_) => "request_size",
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
