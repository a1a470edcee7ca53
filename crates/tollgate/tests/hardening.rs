//! Malformed and hostile HTTP through the binary: smuggling attempts, oversized heads,
//! slow clients, and paths that try to reach a protected route through an open one.

mod common;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends raw bytes and reads until the server closes (or `wait` passes): the whole answer.
async fn raw(node: &Node, bytes: &[u8], wait: Duration) -> (String, bool) {
    let addr = node.proxy_url("").trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(wait, s.read_to_end(&mut out))
        .await
        .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn node_with_svc() -> (Node, MockUpstream) {
    let svc = MockUpstream::start("svc").await;
    let node = start(&format!(
        "{}developers:\n  - email: ops@acme.test\napps:\n  - name: ops\n    owner: ops@acme.test\n    keys: [{{ secret: ops-key-000000001 }}]\n",
        config(
            &[upstream("svc", &[svc.url()], "retries: 0")],
            &[
                api("public", "svc", &["{ path: /public }"]),
                api("admin", "svc", &["{ path: /admin, policies: [{ key_auth: {} }] }"]),
            ]
        )
    ))
    .await;
    (node, svc)
}

#[tokio::test]
async fn smuggling_attempts_get_400_and_a_closed_connection() {
    let (node, svc) = node_with_svc().await;
    let attempts: [&[u8]; 6] = [
        // Both framings (CL.TE / TE.CL).
        b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /public HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5c\r\nGET /admin HTTP/1.1\r\n\r\n0\r\n\r\n",
        // Two different lengths.
        b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabcGET /admin HTTP/1.1\r\n\r\n",
        // A chunk size that is not hex.
        b"POST /public HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        // Obsolete line folding.
        b"GET /public HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
        // An encoding the gateway does not frame.
        b"POST /public HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    ];
    for (i, attempt) in attempts.iter().enumerate() {
        let (answer, closed) = raw(&node, attempt, Duration::from_secs(5)).await;
        assert_eq!(status_of(&answer), 400, "attempt {i}: {answer}");
        assert!(closed, "attempt {i}: the connection is closed");
        assert_eq!(
            answer.matches("HTTP/1.1").count(),
            1,
            "attempt {i}: one answer only: {answer}"
        );
    }
    assert!(
        svc.requests().iter().all(|r| !r.path.starts_with("/admin")),
        "nothing reached the protected route"
    );
}

#[tokio::test]
async fn oversized_heads_are_refused() {
    let (node, _svc) = node_with_svc().await;
    let mut many = String::from("GET /public HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (answer, _) = raw(&node, many.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status_of(&answer), 431, "{answer}");

    let big = format!(
        "GET /public HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    let (answer, _) = raw(&node, big.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status_of(&answer), 431, "{answer}");

    let long_uri = format!(
        "GET /public?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "q".repeat(100_000)
    );
    let (answer, _) = raw(&node, long_uri.as_bytes(), Duration::from_secs(5)).await;
    assert!(matches!(status_of(&answer), 414 | 431), "{answer}");
}

#[tokio::test]
async fn slow_heads_are_cut_off() {
    let svc = MockUpstream::start("svc").await;
    let node = start_with(
        NodeOptions::new()
            .config(config(
                &[upstream("svc", &[svc.url()], "")],
                &[api("p", "svc", &["{ path: /p }"])],
            ))
            .arg("--header-timeout")
            .arg("1s"),
    )
    .await;
    let started = std::time::Instant::now();
    let (_, closed) = raw(
        &node,
        b"GET /p HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        Duration::from_secs(5),
    )
    .await;
    assert!(closed, "the connection is closed");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn paths_cannot_reach_a_protected_route_through_an_open_one() {
    let (node, svc) = node_with_svc().await;
    let tricks = [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/.%2e/admin",
        "/public/..%2fadmin",
        "/public/%2e%2e%2fadmin",
        "//admin",
        "/./admin",
        "/%61dmin",
        "/admin.",
        "/admin%00",
        "/Admin",
        "/public/..;/admin",
        "/public\\..\\admin",
    ];
    for path in tricks {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (answer, _) = raw(&node, request.as_bytes(), Duration::from_secs(5)).await;
        let status = status_of(&answer);
        let reached_admin = svc
            .requests()
            .iter()
            .any(|r| r.path.to_ascii_lowercase().contains("admin"));
        assert!(
            !reached_admin || status != 200,
            "{path}: answered {status} and reached the protected service path"
        );
        // Either refused, or normalised onto the protected route and asked for a key.
        assert!(
            matches!(status, 400 | 401 | 404) || (status == 200 && !reached_admin),
            "{path}: {status}"
        );
        svc.reset();
    }
    // The legitimate call with a key works.
    let r = Client::new()
        .get_with(
            &node.proxy_url("/admin"),
            &[("x-api-key", "ops-key-000000001")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}
