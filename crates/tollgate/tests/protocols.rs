//! Protocols through the real binary: WebSocket upgrade pass-through, HTTP/2 (h2c) with
//! trailers end to end, and streamed bodies both ways.

mod common;
use common::*;
use tollgate_testkit::WsClient;

#[tokio::test]
async fn websocket_echo_passes_through() {
    let m = MockUpstream::start("ws").await;
    let yaml = config(
        &[upstream("svc", &[m.url()], "")],
        &[api("x", "svc", &["{ path: / }"])],
    );
    let node = start(&yaml).await;
    let mut ws = WsClient::connect(&node.proxy_ws_url("/ws"))
        .await
        .expect("upgrade through the gateway");
    assert_eq!(ws.status, 101);
    for i in 0..5 {
        let msg = format!("hello {i}");
        ws.send_text(&msg).await.unwrap();
        assert_eq!(ws.recv_text().await.unwrap(), msg);
    }
    ws.send_binary(vec![0u8, 1, 2, 255]).await.unwrap();
    assert_eq!(ws.recv_binary().await.unwrap(), vec![0u8, 1, 2, 255]);
    ws.close().await.ok();
}

#[tokio::test]
async fn http2_requests_carry_trailers_end_to_end() {
    let m = MockUpstream::start_h2("grpc").await;
    let yaml = config(
        &[upstream("grpc", &[m.url()], "protocol: h2c")],
        &[api("x", "grpc", &["{ path: / }"])],
    );
    let node = start(&yaml).await;
    let client = Client::h2c();
    let r = client
        .request(
            "POST",
            &node.proxy_url("/pkg.Service/Method/trailers"),
            &[("te", "trailers"), ("content-type", "application/grpc")],
            vec![0u8; 5],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.version, "HTTP/2.0");
    assert_eq!(r.header("content-type"), Some("application/grpc"));
    assert_eq!(
        r.trailer("grpc-status"),
        Some("0"),
        "trailers: {:?}",
        r.trailers
    );
    assert_eq!(r.trailer("grpc-message"), Some("ok"));
    // The upstream saw HTTP/2 too, with TE: trailers kept.
    let seen = m.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.version, "HTTP/2.0");
    assert_eq!(
        last.headers.get("te").map(|v| v.to_str().unwrap()),
        Some("trailers")
    );
}

#[tokio::test]
async fn h2c_clients_reach_http1_upstreams() {
    let m = MockUpstream::start("h1").await;
    let yaml = config(
        &[upstream("svc", &[m.url()], "")],
        &[api("x", "svc", &["{ path: / }"])],
    );
    let node = start(&yaml).await;
    let r = Client::h2c().get(&node.proxy_url("/hello")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.version, "HTTP/2.0");
    assert_eq!(r.json()["version"], "HTTP/1.1");
    assert_eq!(r.json()["path"], "/hello");
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let m = MockUpstream::start("svc").await;
    let yaml = config(
        &[upstream("svc", &[m.url()], "")],
        &[api("x", "svc", &["{ path: / }"])],
    );
    let node = start(&yaml).await;
    let client = Client::new();
    let r = client.get(&node.proxy_url("/bytes/5000000")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 5_000_000);
    let upload = vec![7u8; 3_000_000];
    let r = client
        .request("POST", &node.proxy_url("/upload"), &[], upload)
        .await
        .unwrap();
    assert_eq!(r.json()["body_len"], 3_000_000);
}
