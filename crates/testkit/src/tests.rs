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

/// Browser tests: skipped with a printed reason when Chromium is missing, failing on CI.
mod browser_tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use serde_json::json;
    use tokio::net::TcpListener;

    use crate::browser::{Browser, screenshot_dir};

    const WAIT: Duration = Duration::from_secs(10);

    /// A request as a [`Site`] saw it: method, path with query, headers, body.
    #[derive(Clone, Debug)]
    struct Seen {
        method: String,
        uri: String,
        csrf: Option<String>,
        body: String,
    }

    type Handler = dyn Fn(&str, &str) -> Option<(&'static str, Vec<u8>)> + Send + Sync;

    /// A tiny HTTP/1.1 site: `handler(method, path_and_query)` answers `(content type,
    /// body)` or `None` for 404. Every response sets the cookie `probe=1`.
    struct Site {
        addr: SocketAddr,
        seen: Arc<Mutex<Vec<Seen>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Site {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Site {
        async fn start(handler: Arc<Handler>) -> Site {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = seen.clone();
            let task = tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (handler, log) = (handler.clone(), log.clone());
                    tokio::spawn(async move {
                        let service = service_fn(move |req: Request<Incoming>| {
                            let (handler, log) = (handler.clone(), log.clone());
                            async move {
                                let method = req.method().to_string();
                                let uri = req
                                    .uri()
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default();
                                let csrf = req
                                    .headers()
                                    .get("x-csrf-token")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned);
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                log.lock().unwrap().push(Seen {
                                    method: method.clone(),
                                    uri: uri.clone(),
                                    csrf,
                                    body: String::from_utf8_lossy(&body).into_owned(),
                                });
                                let response = match handler(&method, &uri) {
                                    Some((content_type, body)) => Response::builder()
                                        .header("content-type", content_type)
                                        .header("set-cookie", "probe=1; Path=/; HttpOnly")
                                        .body(Full::new(Bytes::from(body))),
                                    None => Response::builder()
                                        .status(404)
                                        .body(Full::new(Bytes::from_static(b"not found"))),
                                };
                                Ok::<_, Infallible>(response.unwrap())
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            Site { addr, seen, task }
        }

        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    const FORM_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Browser probe</title></head>
<body>
  <label for="name">Name</label> <input id="name" value="placeholder">
  <select id="plan"><option value="free">Free</option><option value="pro">Pro</option></select>
  <button id="go" type="button">Greet</button>
  <p id="out">Waiting</p>
  <script>
    document.getElementById('plan').addEventListener('change', e => {
      document.body.dataset.plan = e.target.value;
    });
    document.getElementById('go').addEventListener('click', () => {
      const name = document.getElementById('name').value;
      const plan = document.body.dataset.plan || 'none';
      setTimeout(() => {
        document.getElementById('out').textContent = `Hello, ${name} (${plan})!`;
      }, 150);
    });
  </script>
</body></html>"#;

    fn is_png(path: &PathBuf) -> bool {
        let bytes = std::fs::read(path).unwrap_or_default();
        bytes.len() > 100 && bytes.starts_with(b"\x89PNG\r\n\x1a\n")
    }

    #[tokio::test]
    async fn browser_fills_clicks_waits_and_screenshots() {
        let Some(mut browser) = Browser::launch_or_skip().await else {
            return;
        };
        let dir = screenshot_dir("browser_fills_clicks_waits_and_screenshots");
        browser.screenshot_on_failure(dir.join("failure.png"));
        let site = Site::start(Arc::new(|_: &str, path: &str| {
            (path == "/").then(|| ("text/html; charset=utf-8", FORM_PAGE.as_bytes().to_vec()))
        }))
        .await;

        browser.goto(&site.url("/")).await.unwrap();
        assert_eq!(browser.title().await.unwrap(), "Browser probe");
        assert_eq!(browser.current_url().await.unwrap(), site.url("/"));
        assert_eq!(browser.find_all("option").await.unwrap().len(), 2);
        assert_eq!(
            browser.attr("#name", "id").await.unwrap().as_deref(),
            Some("name")
        );
        assert_eq!(browser.attr("#name", "data-missing").await.unwrap(), None);

        browser.fill("#name", "Ada").await.unwrap();
        browser.select("#plan", "pro").await.unwrap();
        let err = browser.select("#plan", "gold").await.unwrap_err();
        assert!(
            format!("{err:#}").contains("no option with value \"gold\""),
            "{err:#}"
        );
        browser.click("#go").await.unwrap();
        let out = browser
            .wait_for_text("#out", "Hello, Ada (pro)!", WAIT)
            .await
            .unwrap();
        assert_eq!(out.text().await.unwrap(), "Hello, Ada (pro)!");
        assert_eq!(browser.text("#out").await.unwrap(), "Hello, Ada (pro)!");

        let value = browser
            .execute(
                "return [arguments[0] + 1, document.querySelector(arguments[1]).value];",
                vec![json!(41), json!("#name")],
            )
            .await
            .unwrap();
        assert_eq!(value, json!([42, "Ada"]));

        let cookie = browser
            .cookie("probe")
            .await
            .unwrap()
            .expect("probe cookie");
        assert_eq!(cookie.value, "1");
        assert!(cookie.http_only);

        // Errors name the selector and carry the WebDriver error.
        let err = browser.click("#does-not-exist").await.unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("`#does-not-exist`"), "{text}");
        assert!(text.contains("no such element"), "{text}");
        let err = browser
            .wait_for_text("#out", "never", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("Hello, Ada"), "{err:#}");

        browser.set_window_size(390, 844).await.unwrap();
        let width = browser
            .execute("return window.innerWidth;", vec![])
            .await
            .unwrap();
        assert!(width.as_u64().is_some_and(|w| w <= 390), "{width}");
        let shot = dir.join("page.png");
        let _ = std::fs::remove_file(&shot);
        browser.screenshot(&shot).await.unwrap();
        assert!(is_png(&shot), "{} is not a PNG", shot.display());
        browser.close().await;
    }

    /// The web UI's static assets (`crates/web/assets`).
    fn assets_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web/assets")
    }

    const ASSETS_PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="token-123">
<title>Assets probe</title>
<link rel="stylesheet" href="/assets/vendor/uPlot.min.css">
<link rel="stylesheet" href="/assets/app.css">
<script src="/assets/vendor/htmx.min.js" defer></script>
<script src="/assets/vendor/uPlot.iife.min.js" defer></script>
<script src="/assets/app.js" defer></script>
</head>
<body class="app">
<nav class="sidebar"><a class="brand" href="/">Tollgate</a></nav>
<main class="content">
  <div class="chart" id="traffic" data-title="Traffic per minute"
       data-series='[{"label":"Requests","url":"/api/analytics/timeseries?metric=requests"},{"label":"Errors","url":"/api/analytics/timeseries?metric=errors"}]'></div>
  <div class="chart" id="quiet" data-title="Nothing yet"
       data-series='[{"label":"Requests","url":"/api/analytics/timeseries?metric=none"}]'></div>
  <table class="heatmap" id="hours" data-url="/api/analytics/heatmap"></table>
  <button class="btn" id="hx" hx-post="/hx" hx-target="#hx-out">Go</button>
  <div id="hx-out"></div>
  <code id="secret">tg_secret_value</code><button class="btn" data-copy="#secret">Copy</button>
</main>
</body></html>"##;

    /// Answers of the probe site: the page, the assets, and fake analytics.
    fn assets_site(method: &str, uri: &str) -> Option<(&'static str, Vec<u8>)> {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        if path == "/" {
            return Some(("text/html; charset=utf-8", ASSETS_PAGE.as_bytes().to_vec()));
        }
        if let Some(file) = path.strip_prefix("/assets/") {
            if file.contains("..") {
                return None;
            }
            let body = std::fs::read(assets_dir().join(file)).ok()?;
            let content_type = match file.rsplit('.').next() {
                Some("html") => "text/html; charset=utf-8",
                Some("css") => "text/css",
                Some("js") => "text/javascript",
                _ => "application/octet-stream",
            };
            return Some((content_type, body));
        }
        let json = |v: serde_json::Value| Some(("application/json", v.to_string().into_bytes()));
        match (method, path) {
            ("GET", "/api/analytics/timeseries") => {
                let points: Vec<_> = (0..30)
                    .map(|i| {
                        let value = match query {
                            "metric=requests" => json!(100 + i * 10),
                            "metric=errors" if i % 2 == 0 => json!(i),
                            "metric=errors" => json!(null),
                            _ => json!(0),
                        };
                        json!({ "t": format!("2026-12-06T10:{i:02}:00Z"), "value": value })
                    })
                    .collect();
                json(json!({ "metric": "requests", "step": "1m", "points": points }))
            }
            ("GET", "/api/analytics/heatmap") => {
                let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
                let cells: Vec<_> = days
                    .iter()
                    .flat_map(|d| (0..24).map(move |h| (*d, h)))
                    .map(|(d, h)| {
                        let requests = if (d, h) == ("Mon", 9) { 400 } else { h * 2 };
                        json!({ "weekday": d, "hour": h, "requests": requests })
                    })
                    .collect();
                json(json!({ "cells": cells }))
            }
            ("POST", "/hx") => Some(("text/html", b"<b>done</b>".to_vec())),
            ("POST", "/api/echo") => json(json!({ "ok": true })),
            _ => None,
        }
    }

    #[tokio::test]
    async fn web_assets_draw_charts_heatmap_and_send_csrf() {
        let Some(mut browser) = Browser::launch_or_skip().await else {
            return;
        };
        let dir = screenshot_dir("web_assets");
        browser.screenshot_on_failure(dir.join("failure.png"));
        let site = Site::start(Arc::new(assets_site)).await;

        browser.goto(&site.url("/")).await.unwrap();
        // Two series drawn into one uPlot chart, labelled for assistive technology.
        browser
            .wait_for("#traffic[data-rendered] canvas", WAIT)
            .await
            .unwrap();
        assert_eq!(
            browser.attr("#traffic", "role").await.unwrap().as_deref(),
            Some("img")
        );
        assert_eq!(
            browser
                .attr("#traffic", "aria-label")
                .await
                .unwrap()
                .as_deref(),
            Some("Traffic per minute")
        );
        let legend = browser.text("#traffic .u-legend").await.unwrap();
        assert!(
            legend.contains("Requests") && legend.contains("Errors"),
            "{legend}"
        );
        let width = browser
            .execute(
                "return document.querySelector('#traffic').getBoundingClientRect().width;",
                vec![],
            )
            .await
            .unwrap();
        let canvas_width = browser
            .execute(
                "return document.querySelector('#traffic canvas').getBoundingClientRect().width;",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            (width.as_f64().unwrap() - canvas_width.as_f64().unwrap()).abs() < 80.0,
            "chart {width} wide, canvas {canvas_width}"
        );
        // A chart whose series hold no traffic says so.
        browser
            .wait_for_text("#quiet", "No traffic in this period yet.", WAIT)
            .await
            .unwrap();

        // Heatmap: 7 × 24 cells, the busiest at intensity 1 with its count in the title.
        browser
            .wait_for("#hours[data-rendered]", WAIT)
            .await
            .unwrap();
        assert_eq!(
            browser.find_all("#hours tbody td").await.unwrap().len(),
            168
        );
        let busiest = "#hours tbody tr:nth-child(1) td:nth-of-type(10)";
        let style = browser
            .attr(busiest, "style")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(style.contains("--v: 1.000"), "{style}");
        let title = browser
            .attr(busiest, "title")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(
            title.contains("Mon 09:00") && title.contains("400 requests"),
            "{title}"
        );
        assert_eq!(
            browser
                .text("#hours tbody tr:nth-child(7) th")
                .await
                .unwrap(),
            "Sun"
        );

        // htmx and plain fetch requests carry the CSRF token.
        browser.click("#hx").await.unwrap();
        browser
            .wait_for_text("#hx-out", "done", WAIT)
            .await
            .unwrap();
        let status = browser
            .execute(
                "return Tollgate.request('/api/echo', { method: 'POST', body: 'x' }).then(r => r.status);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(status, json!(200));
        let posts: Vec<_> = site
            .seen()
            .into_iter()
            .filter(|s| s.method == "POST")
            .collect();
        assert_eq!(posts.len(), 2, "{posts:?}");
        for post in &posts {
            assert_eq!(post.csrf.as_deref(), Some("token-123"), "{post:?}");
        }
        assert_eq!(posts[1].body, "x");
        let gets = site
            .seen()
            .into_iter()
            .filter(|s| s.method == "GET" && s.uri.starts_with("/api"));
        assert!(gets.into_iter().all(|s| s.csrf.is_none()));

        // Copy button: feedback on the button itself.
        browser.click("button[data-copy]").await.unwrap();
        browser
            .wait_for_text("button[data-copy]", "Copied", WAIT)
            .await
            .unwrap();

        // The chart follows its container's width.
        browser.set_window_size(600, 800).await.unwrap();
        let resized = browser
            .execute("return new Promise(r => setTimeout(() => r(document.querySelector('#traffic canvas').getBoundingClientRect().width), 300));", vec![])
            .await
            .unwrap();
        assert!(
            resized.as_f64().unwrap() < canvas_width.as_f64().unwrap() - 100.0,
            "{resized} vs {canvas_width}"
        );

        // The style guide renders at desktop and phone widths without page-wide overflow.
        for (name, w, h) in [
            ("styleguide-desktop", 1280, 800),
            ("styleguide-phone", 390, 844),
        ] {
            browser.set_viewport_size(w, h).await.unwrap();
            browser
                .goto(&site.url("/assets/styleguide.html"))
                .await
                .unwrap();
            let inner = browser
                .execute("return [innerWidth, innerHeight];", vec![])
                .await
                .unwrap();
            assert_eq!(inner, json!([w, h]), "{name}: viewport");
            browser
                .wait_for("#demo-requests[data-rendered] canvas", WAIT)
                .await
                .unwrap();
            browser
                .wait_for("#demo-heatmap[data-rendered]", WAIT)
                .await
                .unwrap();
            let overflow = browser
                .execute(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(overflow, json!(0), "{name}: page scrolls sideways");
            if name == "styleguide-desktop" {
                // Keyboard focus shows a ring: Tab from the brand link to the first nav link.
                browser
                    .find(".sidebar .brand")
                    .await
                    .unwrap()
                    .send_keys("\u{E004}")
                    .await
                    .unwrap();
                let focused = browser
                    .execute(
                        "const el = document.activeElement; \
                         return [el.textContent.trim(), el.matches(':focus-visible'), \
                                 getComputedStyle(el).outlineStyle];",
                        vec![],
                    )
                    .await
                    .unwrap();
                assert_eq!(focused, json!(["Overview", true, "solid"]));
            }
            let shot = dir.join(format!("{name}.png"));
            browser.screenshot(&shot).await.unwrap();
            assert!(is_png(&shot));
        }
        browser.close().await;
    }
}
