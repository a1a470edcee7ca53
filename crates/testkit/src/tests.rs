//! Tests of the mock upstream, the client helpers and the WebSocket echo.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::{Client, MockUpstream, WsClient, wait_until};

#[tokio::test]
async fn echo_describes_http1_request() {
    let up = MockUpstream::start("alpha").await;
    let client = Client::new();
    let reply = client
        .request(
            "POST",
            &format!("{}/some/path?a=1&b=2", up.url()),
            &[("x-test", "one"), ("x-test", "two")],
            "hello",
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-upstream"), Some("alpha"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let v = reply.json();
    assert_eq!(v["upstream"], "alpha");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/some/path");
    assert_eq!(v["query"], "a=1&b=2");
    assert_eq!(v["body_len"], 5);
    assert_eq!(v["version"], "HTTP/1.1");
    assert_eq!(v["headers"]["x-test"], "one, two");
    assert_eq!(v["headers"]["host"], up.host_port());
    assert_eq!(up.hits(), 1);

    let v = client.get(&up.url()).await.unwrap().json();
    assert_eq!(v["path"], "/");
    assert!(v["query"].is_null());
    assert_eq!(v["body_len"], 0);
    assert_eq!(up.hits(), 2);

    let recorded = up.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].query.as_deref(), Some("a=1&b=2"));
    assert_eq!(recorded[1].path, "/");
}

#[tokio::test]
async fn echo_over_h2c_on_both_server_kinds() {
    for up in [
        MockUpstream::start("auto").await,
        MockUpstream::start_h2("h2").await,
    ] {
        let reply = Client::h2c()
            .post(&format!("{}/x", up.url()), vec![0u8; 1000])
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.version, "HTTP/2.0");
        let v = reply.json();
        assert_eq!(v["version"], "HTTP/2.0");
        assert_eq!(v["body_len"], 1000);
        assert_eq!(v["upstream"], up.name());
        assert_eq!(reply.header("x-upstream"), Some(up.name()));
    }
}

#[tokio::test]
async fn h2_only_rejects_http1() {
    let up = MockUpstream::start_h2("h2").await;
    let result = Client::new()
        .with_timeout(Duration::from_secs(5))
        .get(&up.url())
        .await;
    assert!(result.is_err(), "HTTP/1.1 should fail: {result:?}");
}

#[tokio::test]
async fn status_endpoint() {
    let up = MockUpstream::start("s").await;
    let client = Client::new();
    let reply = client
        .get(&format!("{}/api/status/418", up.url()))
        .await
        .unwrap();
    assert_eq!(reply.status, 418);
    assert_eq!(reply.json()["status"], 418);
    assert_eq!(reply.header("x-upstream"), Some("s"));

    let reply = client
        .get(&format!("{}/status/503", up.url()))
        .await
        .unwrap();
    assert_eq!(reply.status, 503);

    let reply = client
        .get(&format!("{}/status/204", up.url()))
        .await
        .unwrap();
    assert_eq!(reply.status, 204);
    assert!(reply.body.is_empty());

    let reply = client
        .get(&format!("{}/status/abc", up.url()))
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
}

#[tokio::test]
async fn health_and_unhealthy_mode() {
    let up = MockUpstream::start("h").await;
    let client = Client::new();
    let reply = client.get(&format!("{}/healthz", up.url())).await.unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (200, "ok"));
    let reply = client
        .get(&format!("{}/svc/healthz", up.url()))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);

    up.set_healthy(false);
    assert!(!up.is_healthy());
    for path in ["/healthz", "/", "/status/200", "/bytes/10"] {
        let reply = client.get(&format!("{}{path}", up.url())).await.unwrap();
        assert_eq!(reply.status, 503, "{path}");
        assert_eq!(reply.header("x-upstream"), Some("h"));
    }
    up.set_healthy(true);
    assert_eq!(client.get(&up.url()).await.unwrap().status, 200);

    assert_eq!(up.hits(), 7);
    assert_eq!(up.health_hits(), 3);
    assert_eq!(up.traffic_hits(), 4);
    up.reset();
    assert_eq!(up.hits(), 0);
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn delay_then_echo() {
    let up = MockUpstream::start("d").await;
    let started = Instant::now();
    let reply = Client::new()
        .get(&format!("{}/delay/200?q=1", up.url()))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(reply.status, 200);
    let v = reply.json();
    assert_eq!(v["path"], "/delay/200");
    assert_eq!(v["query"], "q=1");
}

#[tokio::test]
async fn client_timeout_fires() {
    let up = MockUpstream::start("d").await;
    let err = Client::new()
        .with_timeout(Duration::from_millis(100))
        .get(&format!("{}/delay/2000", up.url()))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("within"), "{err:#}");
}

#[tokio::test]
async fn bytes_endpoint_streams_exact_length() {
    let up = MockUpstream::start("b").await;
    let client = Client::new();
    for n in [0usize, 1, 16 * 1024, 100_000] {
        let reply = client
            .get(&format!("{}/bytes/{n}", up.url()))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len(), n);
        assert!(reply.body.iter().all(|&b| b == b'x'));
        assert_eq!(
            reply.header("content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(reply.header("content-length"), Some(n.to_string().as_str()));
    }
    // Over HTTP/2 as well.
    let reply = Client::h2c()
        .get(&format!("{}/bytes/50000", up.url()))
        .await
        .unwrap();
    assert_eq!(reply.body.len(), 50_000);
}

#[tokio::test]
async fn trailers_over_h2() {
    for up in [
        MockUpstream::start_h2("grpc").await,
        MockUpstream::start("grpc-auto").await,
    ] {
        let reply = Client::h2c()
            .request(
                "POST",
                &format!("{}/pkg.Service/trailers", up.url()),
                &[("content-type", "application/grpc"), ("te", "trailers")],
                vec![0u8; 5],
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("application/grpc"));
        assert_eq!(reply.body.len(), 5);
        assert_eq!(reply.trailer("grpc-status"), Some("0"));
        assert_eq!(reply.trailer("grpc-message"), Some("ok"));
    }
}

#[tokio::test]
async fn websocket_echo_with_tungstenite() {
    let up = MockUpstream::start("ws").await;
    let (mut stream, response) = tokio_tungstenite::connect_async(format!("ws://{}/ws", up.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(
        response
            .headers()
            .get("x-upstream")
            .unwrap()
            .to_str()
            .unwrap(),
        "ws"
    );

    stream.send(Message::text("hello")).await.unwrap();
    let echoed = stream.next().await.unwrap().unwrap();
    assert_eq!(echoed, Message::text("hello"));

    stream.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let echoed = stream.next().await.unwrap().unwrap();
    assert_eq!(echoed, Message::binary(vec![1u8, 2, 3]));

    stream.close(None).await.unwrap();
    // The server answers the close; the stream then ends.
    while let Some(Ok(message)) = stream.next().await {
        assert!(message.is_close(), "unexpected {message:?}");
    }
}

#[tokio::test]
async fn websocket_echo_with_ws_client() {
    let up = MockUpstream::start("ws2").await;
    let mut ws =
        WsClient::connect_with_headers(&format!("ws://{}/chat/ws", up.addr), &[("x-extra", "1")])
            .await
            .unwrap();
    assert_eq!(ws.status, 101);
    assert_eq!(ws.header("x-upstream"), Some("ws2"));
    for i in 0..10 {
        ws.send_text(&format!("msg {i}")).await.unwrap();
        assert_eq!(ws.recv_text().await.unwrap(), format!("msg {i}"));
    }
    ws.send_binary(vec![9u8; 70_000]).await.unwrap();
    assert_eq!(ws.recv_binary().await.unwrap().len(), 70_000);
    ws.close().await.unwrap();

    let recorded = up.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].headers["x-extra"], "1");
}

#[tokio::test]
async fn websocket_path_without_upgrade_is_bad_request() {
    let up = MockUpstream::start("ws").await;
    let reply = Client::new()
        .get(&format!("{}/ws", up.url()))
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("x-upstream"), Some("ws"));
}

#[tokio::test]
async fn stop_refuses_connections_and_restart_serves_again() {
    let mut up = MockUpstream::start("stop").await;
    let client = Client::new();
    assert_eq!(client.get(&up.url()).await.unwrap().status, 200);
    let mut ws = WsClient::connect(&format!("ws://{}/ws", up.addr))
        .await
        .unwrap();

    up.stop();
    assert!(!up.is_running());
    assert!(tokio::net::TcpStream::connect(up.addr).await.is_err());
    // Open connections were closed too: the pooled keep-alive connection is
    // dead and the websocket ends.
    assert!(client.get(&up.url()).await.is_err());
    assert!(ws.recv().await.map_or(true, |m| m.is_none()));
    up.stop(); // idempotent

    up.restart().unwrap();
    assert!(up.is_running());
    let reply = Client::new().get(&up.url()).await.unwrap();
    assert_eq!(reply.json()["upstream"], "stop");
    assert_eq!(up.hits(), 3, "counters survive a restart");
}

#[tokio::test]
async fn drop_stops_the_server() {
    let up = MockUpstream::start("drop").await;
    let addr = up.addr;
    drop(up);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn many_concurrent_requests() {
    let up = MockUpstream::start("load").await;
    let client = Client::new();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let client = client.clone();
        let url = format!("{}/delay/20?i={i}", up.url());
        tasks.push(tokio::spawn(async move { client.get(&url).await }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status, 200);
    }
    assert_eq!(up.hits(), 100);
}

#[tokio::test]
async fn wait_until_polls() {
    let started = Instant::now();
    let mut calls = 0;
    let ok = wait_until(Duration::from_secs(2), || {
        calls += 1;
        let done = calls >= 3;
        async move { done }
    })
    .await;
    assert!(ok);
    assert_eq!(calls, 3);

    let ok = wait_until(Duration::from_millis(100), || async { false }).await;
    assert!(!ok);
    assert!(started.elapsed() >= Duration::from_millis(100));
}
