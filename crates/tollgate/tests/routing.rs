//! Routing through the real binary: precedence, fallbacks, hosts, headers, 404/405,
//! path normalisation, strip_prefix, forwarding headers and lifecycle answers.

mod common;
use common::*;

#[tokio::test]
async fn most_specific_route_wins_with_method_and_host_fallbacks() {
    let names = ["root", "api", "user", "me", "orders", "tenant", "canary"];
    let mut mocks = Vec::new();
    for n in names {
        mocks.push(MockUpstream::start(n).await);
    }
    let ups: Vec<String> = mocks
        .iter()
        .map(|m| upstream(m.name(), &[m.url()], ""))
        .collect();
    let apis = vec![
        api("a-root", "root", &["{ path: / }"]),
        api("a-api", "api", &["{ path: /api }"]),
        api("a-user", "user", &["{ path: \"/api/users/{id}\" }"]),
        api("a-me", "me", &["{ path: \"=/api/users/me\" }"]),
        api(
            "a-orders",
            "orders",
            &["{ path: /api/orders, methods: [GET] }"],
        ),
        api(
            "a-tenant",
            "tenant",
            &["{ path: /api, hosts: [tenant.example.com] }"],
        ),
        api(
            "a-canary",
            "canary",
            &["{ path: /api, headers: { x-canary: \"1\" } }"],
        ),
    ];
    let node = start(&config(&ups, &apis)).await;
    let c = Client::new();
    let get = |path: &str| {
        let url = node.proxy_url(path);
        let c = c.clone();
        async move { c.get(&url).await }
    };
    assert_eq!(served_by(&get("/").await.unwrap()), "root");
    assert_eq!(served_by(&get("/other/thing").await.unwrap()), "root");
    assert_eq!(served_by(&get("/api").await.unwrap()), "api");
    assert_eq!(
        served_by(&get("/apiX").await.unwrap()),
        "root",
        "prefixes stop at segment boundaries"
    );
    assert_eq!(served_by(&get("/api/users/42").await.unwrap()), "user");
    assert_eq!(
        served_by(&get("/api/users/42/orders").await.unwrap()),
        "user"
    );
    assert_eq!(served_by(&get("/api/users/me").await.unwrap()), "me");
    assert_eq!(
        served_by(&get("/api/users/me/x").await.unwrap()),
        "user",
        "exact routes match exactly"
    );
    assert_eq!(served_by(&get("/api/orders/7").await.unwrap()), "orders");
    // POST is not allowed on /api/orders: the less specific /api takes it.
    let post = c
        .request("POST", &node.proxy_url("/api/orders"), &[], "x")
        .await
        .unwrap();
    assert_eq!(served_by(&post), "api");
    let tenant = c
        .get_with(&node.proxy_url("/api/x"), &[("host", "tenant.example.com")])
        .await
        .unwrap();
    assert_eq!(served_by(&tenant), "tenant");
    let canary = c
        .get_with(&node.proxy_url("/api/x"), &[("x-canary", "1")])
        .await
        .unwrap();
    assert_eq!(served_by(&canary), "canary");
    // Normalised before matching: dot segments and doubled slashes.
    assert_eq!(served_by(&get("/x/../api/users//me").await.unwrap()), "me");
    assert_eq!(served_by(&get("/api/users/%6de").await.unwrap()), "me");
}

#[tokio::test]
async fn unmatched_and_wrong_method_answers_are_problems() {
    let m = MockUpstream::start("svc").await;
    let yaml = config(
        &[upstream("svc", &[m.url()], "")],
        &[api("a", "svc", &["{ path: /only, methods: [GET, HEAD] }"])],
    );
    let node = start(&yaml).await;
    let c = Client::new();
    let r = c.get(&node.proxy_url("/nothing")).await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["status"], 404);
    assert!(r.header("x-request-id").is_some());
    let r = c
        .request("DELETE", &node.proxy_url("/only"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = c.get(&node.proxy_url("/only/%zz")).await.unwrap();
    assert_eq!(r.status, 400, "a malformed escape is a client error");
    assert_eq!(m.traffic_hits(), 0);
}

#[tokio::test]
async fn forwarding_headers_request_ids_and_strip_prefix() {
    let m = MockUpstream::start("svc").await;
    let yaml = config(
        &[upstream("svc", &[m.url()], "")],
        &[api(
            "a",
            "svc",
            &["{ path: /svc, strip_prefix: true }", "{ path: /keep }"],
        )],
    );
    let node = start(&yaml).await;
    let c = Client::new();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = c
        .get_with(
            &node.proxy_url("/svc/items/1?x=1&y=%20"),
            &[
                ("x-request-id", "req-123"),
                ("traceparent", tp),
                ("connection", "x-hop"),
                ("x-hop", "secret"),
                ("x-custom", "kept"),
                ("proxy-authorization", "Basic c2VjcmV0"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let echo = r.json();
    assert_eq!(echo["path"], "/items/1");
    assert_eq!(echo["query"], "x=1&y=%20");
    let h = &echo["headers"];
    assert_eq!(h["x-request-id"], "req-123");
    assert_eq!(h["traceparent"], tp);
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert!(
        h["x-forwarded-host"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(h["x-custom"], "kept");
    assert!(
        h.get("x-hop").is_none(),
        "headers named in Connection are hop-by-hop"
    );
    assert_eq!(r.header("x-request-id"), Some("req-123"));
    let timing = r.header("server-timing").unwrap();
    assert!(
        timing.starts_with("gateway;dur=") && timing.contains("upstream;dur="),
        "{timing}"
    );

    let r = c.get(&node.proxy_url("/keep/a")).await.unwrap();
    assert_eq!(r.json()["path"], "/keep/a");
    let generated = r.json()["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        generated.len(),
        55,
        "a trace is started when the client sent none"
    );
    assert_eq!(r.header("x-request-id").unwrap().len(), 32);
}

#[tokio::test]
async fn deprecated_retired_and_draft_versions() {
    let m = MockUpstream::start("svc").await;
    let versions = [
        "{ version: v1, status: retired, successor: v3, upstream: svc, routes: [{ path: /v1 }] }",
        "{ version: v2, status: deprecated, deprecated_at: \"2026-10-01T00:00:00Z\", sunset_at: \"2027-03-31T00:00:00Z\", successor: v3, deprecation_notice: \"https://example.com/v2-notice\", upstream: svc, routes: [{ path: /v2 }] }",
        "{ version: v3, upstream: svc, routes: [{ path: /v3 }] }",
        "{ version: v4, status: draft, upstream: svc, routes: [{ path: /v4 }] }",
    ];
    let mut yaml = format!(
        "format_version: 1\nupstreams:\n{}apis:\n  - name: orders\n    versions:\n",
        upstream("svc", &[m.url()], "")
    );
    for v in versions {
        yaml.push_str(&format!("      - {v}\n"));
    }
    let node = start(&yaml).await;
    let c = Client::new();
    let r = c.get(&node.proxy_url("/v1/orders")).await.unwrap();
    assert_eq!(r.status, 410);
    assert!(
        r.json()["detail"].as_str().unwrap().contains("v3"),
        "{}",
        r.text()
    );
    let r = c.get(&node.proxy_url("/v2/orders")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("deprecation"), Some("@1790812800"));
    assert_eq!(r.header("sunset"), Some("Wed, 31 Mar 2027 00:00:00 GMT"));
    let link = r.header("link").unwrap();
    assert!(link.contains("</v3>; rel=\"successor-version\""), "{link}");
    assert!(
        link.contains("<https://example.com/v2-notice>; rel=\"deprecation\""),
        "{link}"
    );
    let r = c.get(&node.proxy_url("/v3/orders")).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("deprecation").is_none());
    assert_eq!(
        c.get(&node.proxy_url("/v4/orders")).await.unwrap().status,
        404,
        "drafts are not served"
    );
}

#[tokio::test]
async fn ip_restrict_policies_narrowest_scope_wins() {
    let m = MockUpstream::start("svc").await;
    let yaml = format!(
        "{}policies:\n  - ip_restrict: {{ deny: [127.0.0.0/8] }}\n",
        config(
            &[upstream("svc", &[m.url()], "")],
            &[api(
                "a",
                "svc",
                &[
                    "{ path: /blocked }",
                    "{ path: /open, policies: [{ ip_restrict: { allow: [127.0.0.1/32] } }] }"
                ]
            )],
        )
    );
    let node = start(&yaml).await;
    let c = Client::new();
    let r = c.get(&node.proxy_url("/blocked")).await.unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(c.get(&node.proxy_url("/open")).await.unwrap().status, 200);
    assert_eq!(m.traffic_hits(), 1);
}

#[tokio::test]
async fn address_checks_come_before_lifecycle_answers_and_repeated_rules_add_up() {
    let m = MockUpstream::start("svc").await;
    let yaml = format!(
        "format_version: 1\nupstreams:\n{}apis:\n  - name: old\n    versions:\n      - {{ version: v1, status: retired, upstream: svc, routes: [{{ path: /old }}] }}\npolicies:\n  - ip_restrict: {{ deny: [203.0.113.0/24] }}\n  - ip_restrict: {{ deny: [127.0.0.0/8] }}\n",
        upstream("svc", &[m.url()], "")
    );
    let node = start(&yaml).await;
    let r = Client::new().get(&node.proxy_url("/old")).await.unwrap();
    assert_eq!(
        r.status, 403,
        "a refused client must not learn that a retired version exists"
    );
}
