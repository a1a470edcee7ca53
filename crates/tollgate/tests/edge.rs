//! Aggregation, transformation and caching at the edge, through the real binary with
//! several real mock upstreams.

mod common;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn dead_url() -> String {
    format!("http://{}", tollgate_testkit::free_addr().unwrap())
}

/// Upstreams `a`, `b`, `c` (live) and `dead`, plus an API whose routes carry `policies`.
async fn node_with(routes: &[&str], mocks: &[&MockUpstream]) -> Node {
    let mut ups: Vec<String> = mocks
        .iter()
        .map(|m| upstream(m.name(), &[m.url()], ""))
        .collect();
    ups.push(upstream("dead", &[dead_url()], "retries: 0"));
    start(&config(&ups, &[api("edge", mocks[0].name(), routes)])).await
}

#[tokio::test]
async fn aggregate_fans_out_in_parallel_and_merges_under_keys() {
    let (a, b, c) = (
        MockUpstream::start("a").await,
        MockUpstream::start("b").await,
        MockUpstream::start("c").await,
    );
    let route = r#"{ path: "/dash/{id}", policies: [{ aggregate: { merge: keyed, steps: [
        { name: user, upstream: a, path: "/delay/400/users/{id}" },
        { name: orders, upstream: b, path: "/delay/400/orders?user={id}" },
        { name: recs, upstream: c, path: "/delay/400/recs/{id}", key: recommendations } ] } }] }"#;
    let node = node_with(&[route], &[&a, &b, &c]).await;
    let started = Instant::now();
    let r = Client::new()
        .get(&node.proxy_url("/dash/42"))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    assert_eq!(body["user"]["upstream"], "a");
    assert_eq!(body["user"]["path"], "/delay/400/users/42");
    assert_eq!(body["orders"]["query"], "user=42");
    assert_eq!(body["recommendations"]["upstream"], "c");
    assert!(r.header("x-tollgate-partial").is_none());
    // Three 400 ms parts in parallel: about one part's time, far from their 1.2 s sum.
    assert!(took < Duration::from_millis(900), "took {took:?}");
    assert!(took >= Duration::from_millis(400));
}

#[tokio::test]
async fn aggregate_merges_objects_and_chains_sequential_steps() {
    let (a, b) = (
        MockUpstream::start("a").await,
        MockUpstream::start("b").await,
    );
    let route = r#"{ path: /profile, policies: [{ aggregate: { steps: [
        { name: first, upstream: a, path: "/people/me" },
        { name: second, upstream: b, path: "/by-owner/{first.upstream}?from={first.path}" } ] } }] }"#;
    let node = node_with(&[route], &[&a, &b]).await;
    let r = Client::new()
        .get(&node.proxy_url("/profile"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // Object merge: later parts win on clashing fields.
    assert_eq!(r.json()["upstream"], "b");
    assert_eq!(r.json()["path"], "/by-owner/a");
    assert_eq!(r.json()["query"], "from=%2Fpeople%2Fme");
    assert_eq!(b.requests().last().unwrap().path, "/by-owner/a");
}

#[tokio::test]
async fn failed_optional_parts_give_partial_answers_and_required_ones_502() {
    let a = MockUpstream::start("a").await;
    let routes = [
        r#"{ path: /partial, policies: [{ aggregate: { merge: keyed, steps: [
            { name: main, upstream: a, path: "/x" },
            { name: extra, upstream: dead, path: "/y", optional: true },
            { name: slow, upstream: a, path: "/delay/2000", timeout: 300ms, optional: true } ] } }] }"#,
        r#"{ path: /broken, policies: [{ aggregate: { steps: [
            { name: main, upstream: a, path: "/x" },
            { name: needed, upstream: a, path: "/status/500" } ] } }] }"#,
    ];
    let node = node_with(&routes, &[&a]).await;
    let c = Client::new();
    let started = Instant::now();
    let r = c.get(&node.proxy_url("/partial")).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the slow optional part was not cut off"
    );
    assert_eq!(r.header("x-tollgate-partial"), Some("extra, slow"));
    assert_eq!(r.json()["main"]["upstream"], "a");
    assert!(r.json().get("extra").is_none());
    let r = c.get(&node.proxy_url("/broken")).await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert!(
        r.json()["detail"].as_str().unwrap().contains("needed"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn request_and_response_transforms() {
    let a = MockUpstream::start("a").await;
    let route = r#"{ path: "/shop/{id}", policies: [
        { request_transform: {
            headers: { remove: [x-internal], rename: { x-client: x-partner }, set: { x-env: prod, host: internal.example }, add: { x-via: tollgate } },
            query: { remove: [debug], rename: { q: search }, set: { limit: "10" } },
            path: "/v2/items/{id}",
            body: { remove: [card.number], rename: { name: full_name }, add: { source: gateway } } } },
        { response_transform: {
            headers: { remove: [x-upstream], set: { x-served-by: edge } },
            body: { remove: [headers], rename: { path: upstream_path }, set: { meta.transformed: true } } } } ] }"#;
    let node = node_with(&[route], &[&a]).await;
    let r = Client::new()
        .request(
            "POST",
            &node.proxy_url("/shop/7?q=shoes&debug=1&limit=99"),
            &[
                ("content-type", "application/json"),
                ("x-internal", "secret"),
                ("x-client", "acme"),
            ],
            json!({"name": "Ada", "card": {"number": "4111111111111111", "exp": "12/30"}})
                .to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-upstream").is_none());
    assert_eq!(r.header("x-served-by"), Some("edge"));
    let body = r.json();
    assert_eq!(body["upstream_path"], "/v2/items/7");
    assert_eq!(body["query"], "search=shoes&limit=10");
    assert_eq!(body["meta"]["transformed"], true);
    assert!(body.get("headers").is_none(), "{body}");
    let seen = a.requests().last().unwrap().headers.clone();
    assert!(seen.get("x-internal").is_none());
    assert_eq!(seen.get("x-partner").unwrap(), "acme");
    assert_eq!(seen.get("x-env").unwrap(), "prod");
    assert_eq!(
        seen.get("host").unwrap(),
        "internal.example",
        "a transform may choose the Host sent upstream"
    );
    assert_eq!(seen.get("x-via").unwrap(), "tollgate");
    let sent: serde_json::Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"full_name": "Ada", "card": {"exp": "12/30"}, "source": "gateway"})
    );
    assert_eq!(
        seen.get("content-length").unwrap().to_str().unwrap(),
        sent.to_string().len().to_string()
    );
}

#[tokio::test]
async fn transform_body_limits_are_enforced() {
    let a = MockUpstream::start("a").await;
    let route = r#"{ path: /small, policies: [{ request_transform: { body: { remove: [x] }, max_body: 1KB } }] }"#;
    let node = node_with(&[route], &[&a]).await;
    let big = json!({"x": "y".repeat(5000)}).to_string();
    let r = Client::new()
        .request(
            "POST",
            &node.proxy_url("/small"),
            &[("content-type", "application/json")],
            big,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(a.traffic_hits(), 0);
}

#[tokio::test]
async fn cache_hits_misses_age_vary_and_purge() {
    let a = MockUpstream::start("a").await;
    let routes = [r#"{ path: /cached, policies: [{ cache: { ttl: 30s } }] }"#];
    let node = node_with(&routes, &[&a]).await;
    let c = Client::new();
    let get = |path: &str, headers: Vec<(&'static str, &'static str)>| {
        let url = node.proxy_url(path);
        let c = c.clone();
        async move { c.get_with(&url, &headers).await.unwrap() }
    };
    let first = get("/cached/item", vec![]).await;
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let second = get("/cached/item", vec![]).await;
    assert_eq!(second.header("x-cache"), Some("HIT"));
    assert_eq!(second.body, first.body);
    assert!(second.header("age").is_some());
    assert_eq!(a.traffic_hits(), 1);
    // Upstream freshness beats the policy's ttl; Age counts from the upstream's.
    let r = get(
        "/cached/short?rh-cache-control=max-age%3D1&rh-age=0",
        vec![],
    )
    .await;
    assert_eq!(r.header("x-cache"), Some("MISS"));
    assert_eq!(
        get(
            "/cached/short?rh-cache-control=max-age%3D1&rh-age=0",
            vec![]
        )
        .await
        .header("x-cache"),
        Some("HIT")
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        get(
            "/cached/short?rh-cache-control=max-age%3D1&rh-age=0",
            vec![]
        )
        .await
        .header("x-cache"),
        Some("MISS"),
        "stale entries are refetched"
    );
    // no-store and private answers are never kept.
    for q in [
        "rh-cache-control=no-store",
        "rh-cache-control=private",
        "rh-set-cookie=a%3D1",
    ] {
        let path = format!("/cached/n?{q}");
        get(&path, vec![]).await;
        assert_eq!(
            get(&path, vec![]).await.header("x-cache"),
            Some("MISS"),
            "{q}"
        );
    }
    // A client's no-cache refetches.
    assert_eq!(
        get("/cached/item", vec![("cache-control", "no-cache")])
            .await
            .header("x-cache"),
        Some("MISS")
    );
    // Vary: a different Accept-Language is another answer.
    let path = "/cached/lang?rh-vary=accept-language";
    get(path, vec![("accept-language", "fr")]).await;
    assert_eq!(
        get(path, vec![("accept-language", "fr")])
            .await
            .header("x-cache"),
        Some("HIT")
    );
    assert_eq!(
        get(path, vec![("accept-language", "de")])
            .await
            .header("x-cache"),
        Some("MISS")
    );
    // Purge by API: the next request goes upstream again.
    assert_eq!(
        get("/cached/item", vec![]).await.header("x-cache"),
        Some("HIT")
    );
    let r = node
        .admin_request(
            "POST",
            "/api/cache/purge",
            &[("content-type", "application/json")],
            json!({"api": "edge"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["purged"].as_u64().unwrap() >= 1);
    assert_eq!(
        get("/cached/item", vec![]).await.header("x-cache"),
        Some("MISS")
    );
    // Purge by path.
    assert_eq!(
        get("/cached/item", vec![]).await.header("x-cache"),
        Some("HIT")
    );
    node.admin_request(
        "POST",
        "/api/cache/purge",
        &[("content-type", "application/json")],
        json!({"path": "/cached/item"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(
        get("/cached/item", vec![]).await.header("x-cache"),
        Some("MISS")
    );
}

#[tokio::test]
async fn a_burst_of_misses_makes_one_upstream_call() {
    let a = MockUpstream::start("a").await;
    let node = node_with(
        &[r#"{ path: /slow, policies: [{ cache: { ttl: 30s } }] }"#],
        &[&a],
    )
    .await;
    let url = node.proxy_url("/slow/delay/500");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            Client::new().get(&url).await.unwrap()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        statuses.push((r.status, r.header("x-cache").unwrap_or("").to_string()));
    }
    assert!(statuses.iter().all(|(s, _)| *s == 200), "{statuses:?}");
    assert_eq!(a.traffic_hits(), 1, "coalescing failed: {statuses:?}");
    assert_eq!(statuses.iter().filter(|(_, x)| x == "MISS").count(), 1);
}

#[tokio::test]
async fn invalid_edge_policies_are_rejected_with_their_path() {
    let a = MockUpstream::start("a").await;
    let node = node_with(&[r#"{ path: /ok }"#], &[&a]).await;
    let bad = config(
        &[upstream("a", &[a.url()], "")],
        &[api(
            "x",
            "a",
            &[
                r#"{ path: "/p/{id}", policies: [{ aggregate: { steps: [{ name: s1, upstream: nope, path: "/{other}" }, { name: s2, upstream: a, path: "/{later.x}" }] } }, { request_transform: { path: "/{missing}" } }, { cache: { key: [cookie] } }] }"#,
            ],
        )],
    );
    let r = tollgate_testkit::admin_put_yaml(&node, &bad).await.unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    let text = r.text();
    for expected in [
        "unknown upstream `nope`",
        "`{other}` is not a parameter",
        "not an earlier step",
        "`{missing}` is not a parameter",
        "not a cache key part",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in {text}");
    }
}

#[tokio::test]
async fn coalesced_waiters_respect_vary_and_aggregates_carry_lifecycle_headers() {
    let a = MockUpstream::start("a").await;
    let yaml = format!(
        "format_version: 1\nupstreams:\n{}apis:\n  - name: edge\n    versions:\n      - version: v1\n        status: deprecated\n        deprecated_at: \"2026-10-01T00:00:00Z\"\n        upstream: a\n        routes:\n          - {{ path: /lang, policies: [{{ cache: {{ ttl: 30s }} }}] }}\n          - {{ path: /agg, policies: [{{ aggregate: {{ steps: [{{ name: one, upstream: a, path: /x }}] }} }}] }}\n",
        upstream("a", &[a.url()], "")
    );
    let node = start(&yaml).await;
    let url = node.proxy_url("/lang/delay/400?rh-vary=accept-language");
    let fr = tokio::spawn({
        let url = url.clone();
        async move {
            Client::new()
                .get_with(&url, &[("accept-language", "fr")])
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let de = Client::new()
        .get_with(&url, &[("accept-language", "de")])
        .await
        .unwrap();
    let fr = fr.await.unwrap();
    assert_eq!(fr.json()["headers"]["accept-language"], "fr");
    assert_eq!(
        de.json()["headers"]["accept-language"],
        "de",
        "a waiter got another variant's answer"
    );
    let r = Client::new().get(&node.proxy_url("/agg")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("deprecation"), Some("@1790812800"));
    let head = Client::new()
        .request("HEAD", &node.proxy_url("/lang/x"), &[], "")
        .await
        .unwrap();
    assert_eq!(head.status, 200);
}
