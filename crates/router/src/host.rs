//! Host matching.
//!
//! This module owns the canonical form of hostnames on both sides: host
//! entries from route configuration ([`parse_config_host`]) and the `Host`
//! (or `:authority`) of a request ([`canonical_request_host`]). Both are
//! lower-cased and lose a trailing `.`; the request side also loses its
//! `:port`.

/// A validated host entry from a [`RouteSpec`](crate::RouteSpec).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HostKey {
    /// An exact hostname, lower-case.
    Exact(Box<str>),
    /// `*.example.com`, stored as the suffix `.example.com` (lower-case).
    /// Matches any host with at least one label before the suffix
    /// (`a.example.com`, `a.b.example.com`), but not `example.com`.
    Wildcard(Box<str>),
}

impl std::fmt::Display for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostKey::Exact(h) => write!(f, "host `{h}`"),
            HostKey::Wildcard(suffix) => write!(f, "host `*{suffix}`"),
        }
    }
}

/// Validate and canonicalise a configured host entry.
pub(crate) fn parse_config_host(raw: &str) -> Result<HostKey, &'static str> {
    let lower = raw.to_ascii_lowercase();
    let host = lower.strip_suffix('.').unwrap_or(&lower);
    if host.is_empty() {
        return Err("host is empty");
    }
    if let Some(suffix) = host.strip_prefix("*.") {
        if suffix.is_empty() {
            return Err("wildcard host needs a domain after `*.`");
        }
        check_hostname(suffix)?;
        return Ok(HostKey::Wildcard(format!(".{suffix}").into_boxed_str()));
    }
    check_hostname(host)?;
    Ok(HostKey::Exact(host.into()))
}

fn check_hostname(host: &str) -> Result<(), &'static str> {
    if host.contains('*') {
        return Err("`*` is only allowed as a leading `*.` label");
    }
    if let Some(inner) = host.strip_prefix('[') {
        // IPv6 literal, e.g. `[::1]`.
        let valid = inner.strip_suffix(']').is_some_and(|addr| {
            !addr.is_empty()
                && addr
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        });
        return if valid {
            Ok(())
        } else {
            Err("malformed IPv6 literal")
        };
    }
    if host.contains(':') {
        return Err("host must not contain a port (the request port is ignored)");
    }
    if host.split('.').any(str::is_empty) {
        return Err("host has an empty label");
    }
    if host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Ok(())
    } else {
        Err("host may only contain letters, digits, `-`, `_` and `.`")
    }
}

/// Longest request host that is lower-cased into a stack buffer; longer
/// hosts (never valid DNS names) match only the any-host table.
pub(crate) const MAX_HOST_LEN: usize = 255;

/// Canonicalise a request host without allocating: strip `:port`, strip one
/// trailing `.`, lower-case. Returns `None` when the host cannot match any
/// host table (empty or too long).
pub(crate) fn canonical_request_host<'b>(
    host: &'b str,
    buf: &'b mut [u8; MAX_HOST_LEN],
) -> Option<&'b str> {
    let host = strip_port(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > MAX_HOST_LEN {
        return None;
    }
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(host);
    }
    let dst = buf.get_mut(..host.len())?;
    dst.copy_from_slice(host.as_bytes());
    dst.make_ascii_lowercase();
    std::str::from_utf8(dst).ok()
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // `[v6]` or `[v6]:port`.
        return match host.find(']') {
            Some(end) => host.get(..=end).unwrap_or(host),
            None => host,
        };
    }
    match host.split_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_hosts() {
        let ok = [
            ("Example.COM", HostKey::Exact("example.com".into())),
            ("example.com.", HostKey::Exact("example.com".into())),
            ("*.Example.com", HostKey::Wildcard(".example.com".into())),
            ("*.a.b.c", HostKey::Wildcard(".a.b.c".into())),
            ("[::1]", HostKey::Exact("[::1]".into())),
            ("10.0.0.1", HostKey::Exact("10.0.0.1".into())),
            ("under_score", HostKey::Exact("under_score".into())),
        ];
        for (raw, expected) in ok {
            assert_eq!(parse_config_host(raw), Ok(expected), "{raw:?}");
        }
        for raw in [
            "",
            ".",
            "*",
            "*.",
            "a.*.com",
            "*a.com",
            "example.com:80",
            "a..b",
            "a b",
            "a/b",
            "[::1",
            "[]",
            "*.*.a",
        ] {
            assert!(
                parse_config_host(raw).is_err(),
                "{raw:?} should be rejected"
            );
        }
    }

    #[test]
    fn request_hosts() {
        let cases = [
            ("example.com", Some("example.com")),
            ("Example.COM:8443", Some("example.com")),
            ("example.com:", Some("example.com")),
            ("example.com.", Some("example.com")),
            ("EXAMPLE.com.:80", Some("example.com")),
            ("[::1]:8080", Some("[::1]")),
            ("[::1]", Some("[::1]")),
            ("", None),
            (":80", None),
        ];
        for (raw, expected) in cases {
            let mut buf = [0; MAX_HOST_LEN];
            assert_eq!(canonical_request_host(raw, &mut buf), expected, "{raw:?}");
        }
        let long = "a".repeat(MAX_HOST_LEN + 1);
        let mut buf = [0; MAX_HOST_LEN];
        assert_eq!(canonical_request_host(&long, &mut buf), None);
        let long_upper = "A".repeat(MAX_HOST_LEN);
        let expected = "a".repeat(MAX_HOST_LEN);
        assert_eq!(
            canonical_request_host(&long_upper, &mut buf),
            Some(expected.as_str())
        );
    }
}
