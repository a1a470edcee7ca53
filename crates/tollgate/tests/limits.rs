//! Limits on what clients send: oversized heads and bodies, slow clients.

mod common;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn raw(node: &Node, request: &[u8]) -> String {
    let mut s = TcpStream::connect(node.proxy).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

async fn limited_node() -> (Node, MockUpstream) {
    let m = MockUpstream::start("svc").await;
    let yaml = config(
        &[upstream("svc", &[m.url()], "timeouts: { write: 500ms }")],
        &[api(
            "x",
            "svc",
            &[
                "{ path: /small, policies: [{ request_size: { max_body: 1KB } }] }",
                "{ path: / }",
            ],
        )],
    );
    let opts = NodeOptions::new()
        .config(yaml)
        .arg("--header-timeout")
        .arg("1s")
        .arg("--max-header-size")
        .arg("16KB");
    (start_with(opts).await, m)
}

#[tokio::test]
async fn oversized_heads_get_431_and_bodies_413() {
    let (node, m) = limited_node().await;
    let client = Client::new();
    let big = "x".repeat(20_000);
    let r = client
        .get_with(&node.proxy_url("/"), &[("x-big", &big)])
        .await
        .unwrap();
    assert_eq!(r.status, 431);
    let many: Vec<(String, String)> = (0..150).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let r = Client::new()
        .get_with(&node.proxy_url("/"), &refs)
        .await
        .unwrap();
    assert_eq!(r.status, 431, "too many header fields");

    let r = client
        .request("POST", &node.proxy_url("/small"), &[], vec![1u8; 2000])
        .await
        .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    // Chunked, without a length: cut off while streaming.
    let chunk = "a".repeat(600);
    let req = format!(
        "POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let answer = raw(&node, req.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let r = client
        .request("POST", &node.proxy_url("/small"), &[], vec![1u8; 1000])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(m.requests().last().map(|r| r.path.as_str()), Some("/small"));
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let (node, _m) = limited_node().await;
    // Headers never finish: the connection is closed after the header timeout.
    let started = std::time::Instant::now();
    let mut s = TcpStream::connect(node.proxy).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the gateway kept a slow client's connection open"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );

    // A body that stalls: 408 once the write timeout passes between chunks.
    let mut s = TcpStream::connect(node.proxy).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // The node still serves others.
    assert_eq!(
        Client::new()
            .get(&node.proxy_url("/"))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn malformed_requests_get_400_and_never_crash_the_node() {
    let (node, _m) = limited_node().await;
    for req in [
        &b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"[..],
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let answer = raw(&node, req).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "{:?} -> {answer}",
            String::from_utf8_lossy(req)
        );
    }
    assert_eq!(
        Client::new()
            .get(&node.proxy_url("/"))
            .await
            .unwrap()
            .status,
        200
    );
}
