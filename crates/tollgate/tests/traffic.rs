//! Traffic control end to end: rate limits with their headers, queueing, quotas that
//! survive a restart, the circuit breaker and an upstream's own limits.

mod common;
use std::time::{Duration, Instant};

use common::*;

fn one_api(m: &MockUpstream, upstream_extra: &str, policies: &str) -> String {
    format!(
        "format_version: 1\nupstreams:\n{}apis:\n  - name: x\n    policies: {policies}\n    versions:\n      - version: v1\n        upstream: svc\n        routes:\n          - {{ path: / }}\n",
        upstream("svc", &[m.url()], upstream_extra)
    )
}

#[tokio::test]
async fn over_the_limit_answers_429_with_ratelimit_headers() {
    let m = MockUpstream::start("svc").await;
    let node = start(&one_api(
        &m,
        "",
        "[{ rate_limit: { limit: 3, window: 1m, by: ip } }, { rate_limit: { limit: 100, window: 1h, by: ip } }]",
    ))
    .await;
    let client = Client::new();
    for left in [2, 1, 0] {
        let r = client.get(&node.proxy_url("/a")).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("ratelimit-policy"),
            Some("\"ip-1m\";q=3;w=60, \"ip-1h\";q=100;w=3600")
        );
        let state = r.header("ratelimit").unwrap();
        assert!(
            state.starts_with(&format!("\"ip-1m\";r={left};t=")),
            "{state}"
        );
    }
    let r = client.get(&node.proxy_url("/a")).await.unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert!(r.json()["type"].as_str().unwrap().ends_with("rate-limited"));
    // One request per 20 s refills: the next fits in 20 s.
    assert_eq!(r.header("retry-after"), Some("20"));
    assert_eq!(r.header("ratelimit"), Some("\"ip-1m\";r=0;t=20"));
    assert!(r.header("ratelimit-policy").is_some());
    assert_eq!(
        m.traffic_hits(),
        3,
        "a refused request never reaches the service"
    );

    // The refused request was given back to the hourly limit: 3 used, not 4.
    let metrics = Client::new()
        .get(&node.admin_url("/metrics"))
        .await
        .unwrap();
    assert!(
        metrics
            .text()
            .contains("tollgate_limit_rejections_total{api=\"x\",reason=\"rate_limit\"} 1"),
        "{}",
        metrics.text()
    );
}

#[tokio::test]
async fn limits_count_per_app_and_per_header() {
    let m = MockUpstream::start("svc").await;
    let yaml = format!(
        "{}developers:\n  - email: a@example.test\napps:\n  - name: one\n    owner: a@example.test\n    keys: [{{ secret: key-one-0123456789 }}]\n  - name: two\n    owner: a@example.test\n    keys: [{{ secret: key-two-0123456789 }}]\n",
        one_api(
            &m,
            "",
            "[{ key_auth: {} }, { rate_limit: { limit: 2, window: 1m, by: app } }]"
        )
    );
    let node = start(&yaml).await;
    let client = Client::new();
    let get = |key: &'static str| {
        let client = client.clone();
        let url = node.proxy_url("/p");
        async move {
            client
                .get_with(&url, &[("x-api-key", key)])
                .await
                .unwrap()
                .status
        }
    };
    assert_eq!(get("key-one-0123456789").await, 200);
    assert_eq!(get("key-one-0123456789").await, 200);
    assert_eq!(get("key-one-0123456789").await, 429);
    assert_eq!(
        get("key-two-0123456789").await,
        200,
        "each app has its own budget"
    );

    let m2 = MockUpstream::start("svc").await;
    let node = start(&one_api(
        &m2,
        "",
        "[{ rate_limit: { limit: 1, window: 1m, by: \"header:x-tenant\" } }]",
    ))
    .await;
    let t = |tenant: &'static str| {
        let client = client.clone();
        let url = node.proxy_url("/p");
        async move {
            client
                .get_with(&url, &[("x-tenant", tenant)])
                .await
                .unwrap()
                .status
        }
    };
    assert_eq!(t("a").await, 200);
    assert_eq!(t("a").await, 429);
    assert_eq!(t("b").await, 200);
}

#[tokio::test]
async fn queue_mode_smooths_a_burst_of_twice_the_limit() {
    let m = MockUpstream::start("svc").await;
    // 10 per second, one at a time: a burst of 20 drains over about 1.9 s.
    let node = start(&one_api(
        &m,
        "",
        "[{ rate_limit: { limit: 10, window: 1s, burst: 1, by: api, mode: queue, max_wait: 3s } }]",
    ))
    .await;
    let client = Client::new().with_timeout(Duration::from_secs(10));
    let started = Instant::now();
    let requests = (0..20).map(|_| {
        let client = client.clone();
        let url = node.proxy_url("/burst");
        async move {
            let r = client.get(&url).await.unwrap();
            (r.status, started.elapsed())
        }
    });
    let mut done = futures_util::future::join_all(requests).await;
    done.sort_by_key(|(_, t)| *t);
    let statuses: Vec<u16> = done.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses,
        vec![200; 20],
        "every request of the burst is served"
    );
    // The k-th answer comes no earlier than k × 100 ms (minus timer slack), and the whole
    // burst takes about 1.9 s: spaced at the limit's rate, not all at once.
    for (k, (_, t)) in done.iter().enumerate() {
        assert!(
            *t + Duration::from_millis(30) >= Duration::from_millis(100) * k as u32,
            "answer {k} came after {t:?}"
        );
    }
    let total = done.last().unwrap().1;
    assert!(
        total >= Duration::from_millis(1850) && total < Duration::from_millis(3500),
        "{total:?}"
    );
}

#[tokio::test]
async fn a_full_queue_answers_at_once() {
    let m = MockUpstream::start("svc").await;
    let node = start(&one_api(
        &m,
        "",
        "[{ rate_limit: { limit: 1, window: 1s, by: api, mode: queue, max_wait: 2s, max_queue: 1 } }]",
    ))
    .await;
    let client = Client::new().with_timeout(Duration::from_secs(10));
    let url = node.proxy_url("/q");
    let started = Instant::now();
    let (a, b, c) = tokio::join!(client.get(&url), client.get(&url), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.get(&url).await
    });
    let mut statuses = vec![a.unwrap().status, b.unwrap().status];
    statuses.sort();
    // One passes, one waits its second in the queue...
    assert_eq!(statuses, vec![200, 200]);
    // ...and with the queue full the third gets 503 at once, not after a wait.
    let c = c.unwrap();
    assert_eq!(c.status, 503);
    assert!(c.json()["type"].as_str().unwrap().ends_with("overloaded"));
    assert!(c.header("retry-after").is_some());
    assert!(started.elapsed() < Duration::from_millis(1900));

    // A wait beyond max_wait is a 429 at once.
    let node = start(&one_api(
        &m,
        "",
        "[{ rate_limit: { limit: 1, window: 10s, by: api, mode: queue, max_wait: 1s } }]",
    ))
    .await;
    let url = node.proxy_url("/q");
    assert_eq!(client.get(&url).await.unwrap().status, 200);
    let t = Instant::now();
    let r = client.get(&url).await.unwrap();
    assert_eq!(r.status, 429);
    assert!(t.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn quotas_survive_a_crash_and_name_the_problem() {
    let m = MockUpstream::start("svc").await;
    let yaml = one_api(
        &m,
        "",
        "[{ quota: { limit: 3, period: day, by: ip } }, { quota: { limit: 1000, period: month, by: ip } }]",
    );
    let mut node = start(&yaml).await;
    let client = Client::new();
    for left in [2, 1] {
        let r = client.get(&node.proxy_url("/a")).await.unwrap();
        assert_eq!(r.status, 200);
        assert!(
            r.header("ratelimit")
                .unwrap()
                .starts_with(&format!("\"quota-day\";r={left};t=")),
            "{:?}",
            r.header("ratelimit")
        );
    }
    // Counters reach the store within the flush interval; a crash after that loses nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    node.kill();
    node.restart().await.unwrap();
    assert_eq!(client.get(&node.proxy_url("/a")).await.unwrap().status, 200);
    let r = client.get(&node.proxy_url("/a")).await.unwrap();
    assert_eq!(r.status, 429);
    let problem = r.json();
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("quota-exceeded"),
        "{problem}"
    );
    assert!(problem["detail"].as_str().unwrap().contains("daily quota"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "until the next UTC midnight");
    // A graceful restart keeps the count too.
    node.restart().await.unwrap();
    assert_eq!(client.get(&node.proxy_url("/a")).await.unwrap().status, 429);
    assert_eq!(m.traffic_hits(), 3);
}

#[tokio::test]
async fn the_circuit_opens_on_failures_and_closes_after_probes() {
    let m = MockUpstream::start("svc").await;
    let node = start(&one_api(
        &m,
        "",
        "[{ circuit_breaker: { consecutive_failures: 3, open_for: 1s, half_open_probes: 1 } }]",
    ))
    .await;
    let client = Client::new();
    for _ in 0..3 {
        assert_eq!(
            client
                .get(&node.proxy_url("/status/500"))
                .await
                .unwrap()
                .status,
            500
        );
    }
    let hits = m.traffic_hits();
    let r = client.get(&node.proxy_url("/ok")).await.unwrap();
    assert_eq!(r.status, 503);
    assert!(r.json()["type"].as_str().unwrap().ends_with("circuit-open"));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(m.traffic_hits(), hits, "nothing is sent while open");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The probe succeeds: closed again.
    assert_eq!(
        client.get(&node.proxy_url("/ok")).await.unwrap().status,
        200
    );
    assert_eq!(
        client.get(&node.proxy_url("/ok")).await.unwrap().status,
        200
    );
    let metrics = Client::new()
        .get(&node.admin_url("/metrics"))
        .await
        .unwrap();
    assert!(
        metrics
            .text()
            .contains("tollgate_limit_rejections_total{api=\"x\",reason=\"circuit_open\"} 1")
    );
}

#[tokio::test]
async fn an_upstream_caps_concurrency_and_arrests_spikes() {
    let m = MockUpstream::start("svc").await;
    let node = start(&one_api(&m, "limits: { max_concurrent: 2 }", "[]")).await;
    let client = Client::new();
    let url = node.proxy_url("/delay/500");
    let replies = futures_util::future::join_all((0..5).map(|_| client.get(&url))).await;
    let mut statuses: Vec<u16> = replies.into_iter().map(|r| r.unwrap().status).collect();
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 503, 503, 503]);
    // The slots are free again once the answers are in.
    assert_eq!(client.get(&url).await.unwrap().status, 200);

    let m = MockUpstream::start("svc").await;
    let node = start(&one_api(
        &m,
        "limits: { spike_arrest: { rate: 10, per: 1s } }",
        "[]",
    ))
    .await;
    let url = node.proxy_url("/s");
    assert_eq!(client.get(&url).await.unwrap().status, 200);
    let r = client.get(&url).await.unwrap();
    assert_eq!(r.status, 503, "the second within 100 ms is arrested");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(client.get(&url).await.unwrap().status, 200);
}

#[tokio::test]
async fn bad_limits_are_refused_with_their_path() {
    let m = MockUpstream::start("svc").await;
    let node = start(&one_api(&m, "", "[]")).await;
    let bad = one_api(
        &m,
        "limits: { max_concurrent: 0 }",
        "[{ rate_limit: { limit: 0, window: 1s } }, { rate_limit: { limit: 5, window: 1s, scope: cluster_lease, mode: queue } }, { quota: { limit: 5, period: week } }]",
    );
    let r = admin_put_yaml(&node, &bad).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("apis[0].policies[2].quota.period"),
        "{}",
        r.text()
    );
    let bad = one_api(
        &m,
        "limits: { max_concurrent: 0 }",
        "[{ rate_limit: { limit: 0, window: 1s } }, { rate_limit: { limit: 5, window: 1s, scope: cluster_lease, mode: queue } }]",
    );
    let r = admin_put_yaml(&node, &bad).await.unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    let text = r.text();
    for needle in [
        "apis[0].policies[0].rate_limit.limit",
        "apis[0].policies[1].rate_limit.scope",
        "upstreams[0].limits.max_concurrent",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
}

#[tokio::test]
async fn an_api_limit_is_one_budget_for_all_its_routes() {
    let m = MockUpstream::start("svc").await;
    // Route /a takes its quota from itself and its rate limit from the API, like /b.
    let yaml = format!(
        "format_version: 1\nupstreams:\n{}apis:\n  - name: x\n    policies: [{{ rate_limit: {{ limit: 2, window: 1m, by: ip }} }}]\n    versions:\n      - version: v1\n        upstream: svc\n        routes:\n          - {{ path: /a, policies: [{{ quota: {{ limit: 100, period: day, by: ip }} }}] }}\n          - {{ path: /b }}\n",
        upstream("svc", &[m.url()], "")
    );
    let node = start(&yaml).await;
    let client = Client::new();
    let status = |p: &'static str| {
        let client = client.clone();
        let url = node.proxy_url(p);
        async move { client.get(&url).await.unwrap().status }
    };
    assert_eq!(status("/a").await, 200);
    assert_eq!(status("/b").await, 200);
    assert_eq!(status("/a").await, 429);
    assert_eq!(status("/b").await, 429);
}
