//! Client addresses from X-Forwarded-For: arbitrary header text never panics, and a peer
//! that is not a trusted proxy is always the client.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_gateway::forward::client_ip;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("x-forwarded-for", value);
    let trusted = ["10.0.0.0/8".parse().expect("cidr")];
    let proxy = "10.1.2.3".parse().expect("ip");
    let stranger = "198.51.100.7".parse().expect("ip");
    let _ = client_ip(proxy, &headers, &trusted);
    assert_eq!(client_ip(stranger, &headers, &trusted), stranger);
});
