//! Header handling between client and upstream: hop-by-hop removal, forwarding headers,
//! request ids and trace context (CONTRACT §4).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_TOLLGATE_APP: HeaderName = HeaderName::from_static("x-tollgate-app");
pub static X_TOLLGATE_DEVELOPER: HeaderName = HeaderName::from_static("x-tollgate-developer");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those the `Connection` header
/// names. With `upgrade`, `Connection: upgrade` and `Upgrade` are kept for the tunnel.
/// `TE: trailers` is kept: gRPC needs it end to end.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none of them: one pass over the names instead of a removal each.
    let hop = |n: &HeaderName| {
        n == header::CONNECTION
            || n == header::TE
            || n == header::TRAILER
            || n == header::TRANSFER_ENCODING
            || n == header::UPGRADE
            || n == header::PROXY_AUTHENTICATE
            || n == header::PROXY_AUTHORIZATION
            || *n == KEEP_ALIVE
            || *n == PROXY_CONNECTION
    };
    if !upgrade && !headers.keys().any(hop) {
        return;
    }
    if let Some(conn) = headers.get(header::CONNECTION) {
        let listed: Vec<HeaderName> = conn
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|n| !(upgrade && *n == header::UPGRADE))
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    let te_trailers = headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    headers.remove(header::CONNECTION);
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(header::PROXY_AUTHENTICATE);
    headers.remove(header::PROXY_AUTHORIZATION);
    headers.remove(header::TE);
    headers.remove(header::TRAILER);
    headers.remove(header::TRANSFER_ENCODING);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// True for an HTTP/1.1 request asking to switch protocols (WebSocket).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// Adds `X-Forwarded-For` (appending the peer), `-Proto` and `-Host`.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    peer: &HeaderValue,
    host: Option<HeaderValue>,
    https: bool,
) {
    match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => {
            let peer = peer.to_str().unwrap_or("");
            if let Ok(v) = HeaderValue::from_str(&format!("{prev}, {peer}")) {
                headers.insert(X_FORWARDED_FOR.clone(), v);
            }
        }
        None => {
            headers.insert(X_FORWARDED_FOR.clone(), peer.clone());
        }
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST.clone(), host);
    }
}

/// The client's address. Only when the peer is a trusted proxy is `X-Forwarded-For`
/// read: from the right, the first address that is not a trusted proxy is the client.
/// Addresses further left were written by the client itself and are not believed.
pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[tollgate_model::policy::Cidr],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if trusted.is_empty() || !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    let hops: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// A peer address as a header value, made once per connection.
pub fn peer_value(peer: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The client's `X-Request-Id` if it is sane, else a new random one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID)
        && !v.is_empty()
        && v.len() <= 200
        && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
    {
        return v.clone();
    }
    let mut buf = [0u8; 32];
    hex_into(&mut buf, fastrand::u128(..));
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Keeps a valid W3C `traceparent`; otherwise starts a new trace.
pub fn ensure_traceparent(headers: &mut HeaderMap) {
    let valid = headers
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(valid_traceparent);
    if !valid {
        let mut buf = *b"00-00000000000000000000000000000000-0000000000000000-01";
        hex_into(&mut buf[3..35], fastrand::u128(1..));
        hex_into(&mut buf[36..52], u128::from(fastrand::u64(1..)));
        if let Ok(v) = HeaderValue::from_bytes(&buf) {
            headers.insert(TRACEPARENT.clone(), v);
        }
    }
}

fn valid_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() >= 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

/// `gateway;dur=X, upstream;dur=Y` in milliseconds.
pub fn server_timing(gateway_us: u64, upstream_us: Option<u64>) -> HeaderValue {
    use std::io::Write;
    let mut buf = [0u8; 96];
    let mut out = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(
        out,
        "gateway;dur={}.{:03}",
        gateway_us / 1000,
        gateway_us % 1000
    );
    if let Some(u) = upstream_us {
        let _ = write!(out, ", upstream;dur={}.{:03}", u / 1000, u % 1000);
    }
    let len = usize::try_from(out.position()).unwrap_or(0);
    HeaderValue::from_bytes(&buf[..len]).unwrap_or_else(|_| HeaderValue::from_static("gateway"))
}

/// Writes the low `out.len() * 4` bits of `n` as lower-case hex into `out`.
fn hex_into(out: &mut [u8], mut n: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_address_behind_trusted_proxies() {
        let trusted: Vec<tollgate_model::policy::Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            &X_FORWARDED_FOR,
            HeaderValue::from_static("1.1.1.1, 203.0.113.7, 10.0.0.2"),
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        // A client that is not a trusted proxy cannot choose its address.
        assert_eq!(client_ip(stranger, &h, &trusted), stranger);
        assert_eq!(client_ip(proxy, &h, &[]), proxy);
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("garbage"));
        assert_eq!(client_ip(proxy, &h, &trusted), proxy);
    }

    #[test]
    fn hop_by_hop_headers_go_including_listed_ones() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::TE, "trailers".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h, false);
        assert!(h.get("x-secret").is_none() && h.get("keep-alive").is_none());
        assert!(h.get(header::CONNECTION).is_none() && h.get(header::UPGRADE).is_none());
        assert_eq!(h.get(header::TE).unwrap(), "trailers");
        assert!(h.get("x-kept").is_some());
    }

    #[test]
    fn upgrades_keep_their_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert!(wants_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get(header::UPGRADE).unwrap(), "websocket");
        assert_eq!(h.get(header::CONNECTION).unwrap(), "upgrade");
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, "1.2.3.4".parse().unwrap());
        add_forwarded(
            &mut h,
            &peer_value("10.0.0.1".parse().unwrap()),
            Some(HeaderValue::from_static("api.example.com")),
            false,
        );
        assert_eq!(h.get(&X_FORWARDED_FOR).unwrap(), "1.2.3.4, 10.0.0.1");
        assert_eq!(h.get(&X_FORWARDED_HOST).unwrap(), "api.example.com");
    }

    #[test]
    fn trace_context_is_kept_or_started() {
        let mut h = HeaderMap::new();
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        h.insert(&TRACEPARENT, tp.parse().unwrap());
        ensure_traceparent(&mut h);
        assert_eq!(h.get(&TRACEPARENT).unwrap(), tp);
        h.insert(&TRACEPARENT, "garbage".parse().unwrap());
        ensure_traceparent(&mut h);
        assert!(valid_traceparent(
            h.get(&TRACEPARENT).unwrap().to_str().unwrap()
        ));
    }

    #[test]
    fn request_ids_are_kept_when_sane() {
        let mut h = HeaderMap::new();
        assert_eq!(request_id(&h).len(), 32);
        h.insert(&X_REQUEST_ID, "abc-123".parse().unwrap());
        assert_eq!(request_id(&h), "abc-123");
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; session=xyz".parse().unwrap());
        assert_eq!(cookie(&h, "session"), Some("xyz"));
        assert_eq!(cookie(&h, "nope"), None);
    }
}
