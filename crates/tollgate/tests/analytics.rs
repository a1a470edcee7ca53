//! Analytics end to end: an exact number of requests across routes, apps and status codes
//! is found exactly in every analytics query after the flush interval, and latency
//! percentiles agree with what the client measured.

mod common;
use common::*;

use std::time::{Duration, Instant};

fn config(m: &MockUpstream) -> String {
    format!(
        r#"format_version: 1
upstreams:
{}apis:
  - name: orders
    policies: [{{ key_auth: {{}} }}]
    versions:
      - version: v1
        upstream: svc
        routes: [{{ path: /v1/a }}, {{ path: /v1/b }}, {{ path: /v1/slow }}]
developers:
  - email: dev@example.test
apps:
  - {{ name: one, owner: dev@example.test, keys: [{{ secret: key-one-0123456789 }}] }}
  - {{ name: two, owner: dev@example.test, keys: [{{ secret: key-two-0123456789 }}] }}
"#,
        upstream("svc", &[m.url()], "")
    )
}

fn rows(v: &serde_json::Value) -> Vec<(String, u64, u64)> {
    let mut out: Vec<(String, u64, u64)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["requests"].as_u64().unwrap(),
                r["errors"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Nearest rank, as the histograms answer.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test]
async fn exact_counts_in_every_query_and_percentiles_match_the_client() {
    let m = MockUpstream::start("svc").await;
    let node = start(&config(&m)).await;
    let client = Client::new();
    let send = |path: &'static str, key: Option<&'static str>, n: usize, want: u16| {
        let client = client.clone();
        let url = node.proxy_url(path);
        async move {
            for _ in 0..n {
                let headers: Vec<(&str, &str)> =
                    key.map(|k| ("x-api-key", k)).into_iter().collect();
                let r = client.get_with(&url, &headers).await.unwrap();
                assert_eq!(r.status, want, "{path}");
            }
        }
    };
    send("/v1/a/x", Some("key-one-0123456789"), 30, 200).await;
    send("/v1/a/status/503", Some("key-one-0123456789"), 10, 503).await;
    send("/v1/b/x", Some("key-two-0123456789"), 20, 200).await;
    send("/v1/b/status/404", Some("key-two-0123456789"), 5, 404).await;
    send("/v1/a/x", None, 7, 401).await;
    // Latency: 10 fast and 10 slow calls, timed by the client.
    let mut measured = Vec::new();
    for i in 0..20 {
        let path = if i % 2 == 0 {
            "/v1/slow/delay/30"
        } else {
            "/v1/slow/delay/120"
        };
        let started = Instant::now();
        let r = client
            .get_with(
                &node.proxy_url(path),
                &[("x-api-key", "key-two-0123456789")],
            )
            .await
            .unwrap();
        measured.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.status, 200);
    }
    let sent_at = Instant::now();

    // Freshness: how long until the queries see every request.
    let fresh = wait_until(Duration::from_secs(10), || async {
        node.admin_get("/api/analytics/top?dimension=api")
            .await
            .unwrap()
            .json()["rows"][0]["requests"]
            == 92
    })
    .await;
    assert!(fresh, "analytics never showed the 92 requests");
    let freshness = sent_at.elapsed();
    eprintln!("analytics freshness: {freshness:?}");
    assert!(freshness <= Duration::from_secs(5), "{freshness:?}");

    let top = |q: &'static str| {
        let node = &node;
        async move {
            let r = node
                .admin_get(&format!("/api/analytics/top?{q}"))
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            rows(&r.json())
        }
    };
    assert_eq!(
        top("dimension=app").await,
        [
            ("".into(), 7, 0),
            ("one".into(), 40, 10),
            ("two".into(), 45, 0)
        ]
    );
    assert_eq!(
        top("dimension=route").await,
        [
            ("orders@v1 /v1/a".into(), 47, 10),
            ("orders@v1 /v1/b".into(), 25, 0),
            ("orders@v1 /v1/slow".into(), 20, 0)
        ]
    );
    assert_eq!(
        top("dimension=status").await,
        [
            ("2xx".into(), 70, 0),
            ("4xx".into(), 12, 0),
            ("5xx".into(), 10, 10)
        ]
    );
    assert_eq!(
        top("dimension=version").await,
        [("orders@v1".into(), 92, 10)]
    );
    assert_eq!(
        top("dimension=route&app=two&status=4xx").await,
        [("orders@v1 /v1/b".into(), 5, 0)]
    );

    let series = |q: &'static str| {
        let node = &node;
        async move {
            let r = node
                .admin_get(&format!("/api/analytics/timeseries?{q}"))
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()["points"].as_array().unwrap().clone()
        }
    };
    let sum = |points: &[serde_json::Value]| -> u64 {
        points
            .iter()
            .map(|p| p["value"].as_u64().unwrap_or(0))
            .sum()
    };
    let requests = series("metric=requests&step=1m").await;
    assert!(requests.len() >= 60, "{}", requests.len());
    assert_eq!(sum(&requests), 92);
    assert_eq!(sum(&series("metric=errors&step=5m").await), 10);
    assert_eq!(
        sum(&series("metric=requests&step=1h&app=one&status=503").await),
        10
    );
    let heat = node
        .admin_get("/api/analytics/heatmap")
        .await
        .unwrap()
        .json();
    let cells = heat["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 168);
    assert_eq!(
        cells
            .iter()
            .map(|c| c["requests"].as_u64().unwrap())
            .sum::<u64>(),
        92
    );

    // Latency of the slow route against the client's own timing. The client's figure also
    // holds the loopback round trip and the client itself, which a loaded CI machine can
    // delay by several milliseconds: allowed 0.8 % plus 15 ms (the two groups, 30 and
    // 120 ms, stay far apart, so each percentile must still come from the right one).
    measured.sort_by(f64::total_cmp);
    let latency = node
        .admin_get("/api/analytics/top?dimension=route&route=/v1/slow")
        .await
        .unwrap()
        .json();
    let row = &latency["rows"][0];
    for (field, q) in [("latency_p50_ms", 0.5), ("latency_p99_ms", 0.99)] {
        let server = row[field].as_f64().unwrap();
        let client = percentile(&measured, q);
        assert!(
            server <= client * 1.008 && client - server <= client * 0.008 + 15.0,
            "{field}: server {server} ms, client {client} ms"
        );
    }

    // Bad queries name the problem.
    for bad in [
        "/api/analytics/timeseries?metric=bytes",
        "/api/analytics/timeseries?metric=requests&step=7m",
        "/api/analytics/top?dimension=planet",
        "/api/analytics/top?dimension=app&limit=0",
        "/api/analytics/top?dimension=app&status=9xx",
        "/api/analytics/top?dimension=app&from=yesterday",
        "/api/analytics/top?dimension=app&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "/api/analytics/heatmap?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
    ] {
        let r = node.admin_get(bad).await.unwrap();
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
}

#[tokio::test]
async fn the_access_log_is_per_api_json_lines_with_personal_data_masked() {
    let m = MockUpstream::start("svc").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/access.log");
    let yaml = config(&m)
        .replace(
            "    policies: [{ key_auth: {} }]\n",
            "    policies: [{ key_auth: {} }]\n    access_log: { headers: [user-agent, x-api-key, x-customer], mask_headers: [x-customer], mask_fields: [ssn], body: true }\n",
        )
        .replace(
            "developers:",
            "  - name: quiet\n    versions:\n      - version: v1\n        upstream: svc\n        routes: [{ path: /quiet }]\ndevelopers:",
        );
    let node = start_with(
        NodeOptions::new()
            .config(yaml)
            .arg("--access-log")
            .arg(log.display().to_string()),
    )
    .await;
    let client = Client::new();
    let body =
        r#"{"email":"jane@example.com","ssn":"123-45-6789","card":"4111 1111 1111 1111","qty":2}"#;
    let req = http::Request::builder()
        .method("POST")
        .uri(node.proxy_url("/v1/a/users/jane%40example.com?api_key=key-one-0123456789&q=x"))
        .header("content-type", "application/json")
        .header("user-agent", "test-agent/1")
        .header("x-customer", "cust-42")
        .header("x-api-key", "key-one-0123456789")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let r = client.send(req).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = client.get(&node.proxy_url("/quiet/x")).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(
        wait_until(Duration::from_secs(5), || async {
            std::fs::read_to_string(&log).is_ok_and(|t| !t.is_empty())
        })
        .await,
        "no access log line"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "only the API that logs: {text}");
    let l = &lines[0];
    assert_eq!(l["api"], "orders");
    assert_eq!(l["method"], "POST");
    assert_eq!(l["status"], 200);
    assert_eq!(l["app"], "one");
    assert_eq!(l["path"], "/v1/a/users/***@example.com");
    assert_eq!(l["query"], "api_key=[redacted]&q=x");
    assert_eq!(l["headers"]["user-agent"], "test-agent/1");
    assert_eq!(l["headers"]["x-customer"], "[redacted]");
    assert_eq!(l["headers"]["x-api-key"], "[redacted]");
    assert_eq!(
        l["body"],
        serde_json::json!({"email": "***@example.com", "ssn": "[redacted]", "card": "**** **** **** 1111", "qty": 2})
    );
    assert!(l["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(!l["request_id"].as_str().unwrap().is_empty());
    for secret in [
        "key-one-0123456789",
        "jane@",
        "123-45-6789",
        "4111 1111 1111 1111",
        "cust-42",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[tokio::test]
async fn detectors_raise_signed_alerts_and_block_for_a_while() {
    let m = MockUpstream::start("svc").await;
    let hooks = HookReceiver::start().await;
    let yaml = config(&m)
        + &format!(
            r#"webhooks:
  - {{ name: soc, url: "{}", events: [alert.raised], secret: whsec-soc-0123456789 }}
settings:
  trusted_proxies: [127.0.0.1/32]
  detectors:
    auth_failures: {{ threshold: 5, window: 1m, block: 1m }}
    enumeration: {{ threshold: 10, window: 1m }}
    key_sharing: {{ threshold: 3, window: 10m }}
"#,
            hooks.url()
        );
    let node = start(&yaml).await;
    let client = Client::new();
    let from = |ip: &'static str, key: &'static str, path: &'static str| {
        let client = client.clone();
        let url = node.proxy_url(path);
        async move {
            client
                .get_with(&url, &[("x-forwarded-for", ip), ("x-api-key", key)])
                .await
                .unwrap()
        }
    };
    // Five wrong keys from one address: an alert, and that address is blocked.
    for _ in 0..5 {
        assert_eq!(
            from("203.0.113.7", "wrong-key-0123456789", "/v1/a/x")
                .await
                .status,
            401
        );
    }
    assert!(
        wait_until(Duration::from_secs(5), || async {
            from("203.0.113.7", "key-one-0123456789", "/v1/a/x")
                .await
                .status
                == 403
        })
        .await,
        "the address was not blocked"
    );
    let blocked = from("203.0.113.7", "key-one-0123456789", "/v1/a/x").await;
    assert!(
        blocked.json()["type"]
            .as_str()
            .unwrap()
            .ends_with("blocked"),
        "{}",
        blocked.text()
    );
    // Other addresses are not.
    assert_eq!(
        from("203.0.113.8", "key-one-0123456789", "/v1/a/x")
            .await
            .status,
        200
    );

    // Probing paths: 404 enumeration (no route matches these).
    for i in 0..10 {
        let path: &'static str = Box::leak(format!("/admin{i}.php").into_boxed_str());
        assert_eq!(
            from("198.51.100.9", "key-one-0123456789", path)
                .await
                .status,
            404
        );
    }
    // One app's key from three addresses: key sharing.
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        assert_eq!(from(ip, "key-two-0123456789", "/v1/b/x").await.status, 200);
    }
    assert!(
        wait_until(Duration::from_secs(5), || async {
            node.admin_get("/api/alerts").await.unwrap().json()["alerts"]
                .as_array()
                .is_some_and(|a| a.len() == 3)
        })
        .await,
        "{}",
        node.admin_get("/api/alerts").await.unwrap().text()
    );
    let alerts = node.admin_get("/api/alerts").await.unwrap().json();
    let mut seen: Vec<(String, String)> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["detector"].as_str().unwrap().to_string(),
                a["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("auth_failures".to_string(), "203.0.113.7".to_string()),
            ("enumeration".to_string(), "198.51.100.9".to_string()),
            ("key_sharing".to_string(), "two".to_string())
        ]
    );
    // Each went out as a signed webhook.
    assert!(
        wait_until(Duration::from_secs(10), || async {
            hooks.received().len() == 3
        })
        .await
    );
    for h in hooks.received() {
        assert_eq!(h.json()["type"], "alert.raised");
        let sig = h.headers["tollgate-signature"].clone();
        let t: i64 = sig.split(',').next().unwrap()[2..].parse().unwrap();
        assert_eq!(
            sig,
            tollgate_admin::signature("whsec-soc-0123456789", t, &h.body)
        );
    }
    // A normal caller stays quiet: no alert for app one from its single address.
    assert!(!seen.iter().any(|(_, s)| s == "one" || s == "203.0.113.8"));

    // Lifting the block lets the address in again.
    let id = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["detector"] == "auth_failures")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = node
        .admin_request("POST", &format!("/api/alerts/{id}/unblock"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        from("203.0.113.7", "key-one-0123456789", "/v1/a/x")
            .await
            .status,
        200
    );
    assert_eq!(
        node.admin_get("/api/alerts?detector=planet")
            .await
            .unwrap()
            .status,
        400
    );
}

#[tokio::test]
async fn adoption_shows_new_apps_and_the_time_from_key_to_first_call() {
    let m = MockUpstream::start("svc").await;
    let node = start(&config(&m)).await;
    let r = node
        .admin_request("POST", "/api/apps/two/keys", &[], r#"{"label":"fresh"}"#)
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let key = r.json()["key"].as_str().unwrap().to_string();
    let client = Client::new();
    for (k, n) in [(key.as_str(), 3), ("key-one-0123456789", 2)] {
        for _ in 0..n {
            let r = client
                .get_with(&node.proxy_url("/v1/a/x"), &[("x-api-key", k)])
                .await
                .unwrap();
            assert_eq!(r.status, 200);
        }
    }
    // A failed call is not adoption.
    let r = client.get(&node.proxy_url("/v1/a/x")).await.unwrap();
    assert_eq!(r.status, 401);
    let adoption = || async {
        let r = node
            .admin_get("/api/analytics/adoption?api=orders&step=1h")
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    assert!(
        wait_until(Duration::from_secs(10), || async {
            adoption().await["apps"]
                .as_array()
                .is_some_and(|a| a.len() == 2)
        })
        .await
    );
    let a = adoption().await;
    let new: u64 = a["new_apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_u64().unwrap())
        .sum();
    assert_eq!(new, 2, "{a}");
    let two = a["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["app"] == "two")
        .unwrap();
    let wait = two["seconds_to_first_call"].as_i64().unwrap();
    assert!((0..=120).contains(&wait), "{two}");
    assert!(a["stopped"].as_array().unwrap().is_empty());
    // A range before any call has no apps, no new apps and no median.
    let r = node
        .admin_get(
            "/api/analytics/adoption?api=orders&from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let past = r.json();
    assert_eq!(past["apps"], serde_json::json!([]), "{past}");
    assert!(past["median_seconds_to_first_call"].is_null(), "{past}");
    assert!(
        past["new_apps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["value"] == 0)
    );
    assert_eq!(
        node.admin_get("/api/analytics/adoption?step=2d")
            .await
            .unwrap()
            .status,
        400
    );
    // A query string that does not parse gets a problem document naming the parameter.
    let r = node
        .admin_get("/api/analytics/top?dimension=api&limit=many")
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert!(
        r.json()["detail"].as_str().unwrap().contains("limit"),
        "{}",
        r.text()
    );
    assert_eq!(
        node.admin_get("/api/analytics/adoption?idle=soon")
            .await
            .unwrap()
            .status,
        400
    );
}

/// `promtool check metrics` over a node's `/metrics` after varied traffic. promtool comes
/// from Debian's `prometheus` package (installed by `.ci/run`); without it the test is
/// skipped with a reason, except under `CI=true`.
#[tokio::test]
async fn metrics_pass_promtool() {
    let promtool = std::process::Command::new("promtool")
        .arg("--version")
        .output();
    if promtool.is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is required in CI (Debian package `prometheus`)"
        );
        eprintln!("skipped: promtool is not installed (Debian package `prometheus`)");
        return;
    }
    let m = MockUpstream::start("svc").await;
    let node = start(&config(&m)).await;
    let client = Client::new();
    for (path, key) in [
        ("/v1/a/x", Some("key-one-0123456789")),
        ("/v1/b/status/503", Some("key-two-0123456789")),
        ("/v1/a/x", None),
        ("/nowhere", None),
    ] {
        let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
        client
            .get_with(&node.proxy_url(path), &headers)
            .await
            .unwrap();
    }
    let body = node.admin_get("/metrics").await.unwrap().text();
    assert!(body.contains("tollgate_requests_total{"), "{body}");
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Spans go to an OTLP/HTTP receiver (here a local one that records what it is sent): a
/// server span in the caller's trace and a client span for the upstream part, whose id the
/// upstream receives as the parent in `traceparent`.
#[tokio::test]
async fn spans_are_exported_over_otlp_in_the_callers_trace() {
    let m = MockUpstream::start("svc").await;
    let collector = HookReceiver::start().await;
    let endpoint = format!("http://{}", collector.addr);
    let node = start_with(
        NodeOptions::new()
            .config(config(&m))
            .arg("--otlp-endpoint")
            .arg(endpoint),
    )
    .await;
    let client = Client::new();
    let r = client
        .get_with(
            &node.proxy_url("/v1/a/x"),
            &[
                ("x-api-key", "key-one-0123456789"),
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let upstream_traceparent = r.json()["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        upstream_traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{upstream_traceparent}"
    );
    assert!(
        !upstream_traceparent.contains("00f067aa0ba902b7"),
        "the gateway's own span is the parent"
    );
    assert!(
        wait_until(Duration::from_secs(5), || async {
            !collector.received().is_empty()
        })
        .await
    );
    let export = collector.received()[0].clone();
    assert_eq!(export.path, "/v1/traces");
    let body = export.json();
    assert_eq!(
        body["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
        "tollgate"
    );
    let spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(spans.len(), 2, "{body}");
    let server = spans.iter().find(|s| s["kind"] == 2).unwrap();
    let upstream = spans.iter().find(|s| s["kind"] == 3).unwrap();
    assert_eq!(server["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(server["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(upstream["parentSpanId"], server["spanId"]);
    assert!(upstream_traceparent.contains(upstream["spanId"].as_str().unwrap()));
    assert_eq!(server["name"], "GET /v1/a");
    let ns = |s: &serde_json::Value, k: &str| s[k].as_str().unwrap().parse::<u128>().unwrap();
    assert!(ns(server, "startTimeUnixNano") <= ns(upstream, "startTimeUnixNano"));
    assert!(ns(upstream, "endTimeUnixNano") <= ns(server, "endTimeUnixNano"));
    // A bad endpoint is refused at start.
    let bad = Node::start_with(
        bin(),
        NodeOptions::new()
            .arg("--otlp-endpoint")
            .arg("collector:4318"),
    )
    .await;
    assert!(bad.is_err());
}
