//! Upstream behaviour through the real binary: balancing, health ejection and return,
//! retries, and the 502/504 answers.

mod common;
use std::time::Duration;

use common::*;

/// A port nothing listens on.
fn dead_url() -> String {
    let addr = tollgate_testkit::free_addr().unwrap();
    format!("http://{addr}")
}

#[tokio::test]
async fn round_robin_follows_weights_exactly() {
    let a = MockUpstream::start("a").await;
    let b = MockUpstream::start("b").await;
    let c2 = MockUpstream::start("c").await;
    let yaml = format!(
        "format_version: 1\nupstreams:\n  - name: svc\n    targets:\n      - {{ url: \"{}\", weight: 100 }}\n      - {{ url: \"{}\", weight: 100 }}\n      - {{ url: \"{}\", weight: 200 }}\napis:\n{}",
        a.url(),
        b.url(),
        c2.url(),
        api("x", "svc", &["{ path: / }"])
    );
    let node = start(&yaml).await;
    let client = Client::new();
    for _ in 0..400 {
        assert_eq!(client.get(&node.proxy_url("/")).await.unwrap().status, 200);
    }
    assert_eq!(
        (a.traffic_hits(), b.traffic_hits(), c2.traffic_hits()),
        (100, 100, 200)
    );
}

#[tokio::test]
async fn hash_balancing_is_sticky_per_key() {
    let mocks = [
        MockUpstream::start("a").await,
        MockUpstream::start("b").await,
        MockUpstream::start("c").await,
    ];
    let urls: Vec<String> = mocks.iter().map(|m| m.url()).collect();
    let yaml = config(
        &[upstream(
            "svc",
            &urls,
            "balance: hash\nhash_on: header:x-user-id",
        )],
        &[api("x", "svc", &["{ path: / }"])],
    );
    let node = start(&yaml).await;
    let client = Client::new();
    let mut seen = std::collections::HashSet::new();
    for user in 0..30 {
        let id = format!("user-{user}");
        let first = served_by(
            &client
                .get_with(&node.proxy_url("/"), &[("x-user-id", &id)])
                .await
                .unwrap(),
        );
        for _ in 0..3 {
            let again = served_by(
                &client
                    .get_with(&node.proxy_url("/"), &[("x-user-id", &id)])
                    .await
                    .unwrap(),
            );
            assert_eq!(first, again, "{id} moved");
        }
        seen.insert(first);
    }
    assert!(
        seen.len() >= 2,
        "30 keys all landed on one target: {seen:?}"
    );
}

#[tokio::test]
async fn least_conn_and_random_spread_load() {
    for balance in ["least_conn", "random"] {
        let a = MockUpstream::start("a").await;
        let b = MockUpstream::start("b").await;
        let yaml = config(
            &[upstream(
                "svc",
                &[a.url(), b.url()],
                &format!("balance: {balance}"),
            )],
            &[api("x", "svc", &["{ path: / }"])],
        );
        let node = start(&yaml).await;
        let client = Client::new();
        for _ in 0..200 {
            assert_eq!(client.get(&node.proxy_url("/")).await.unwrap().status, 200);
        }
        assert!(
            a.traffic_hits() >= 40 && b.traffic_hits() >= 40,
            "{balance}: {} / {}",
            a.traffic_hits(),
            b.traffic_hits()
        );
    }
}

#[tokio::test]
async fn active_health_checks_eject_and_readmit_targets() {
    let good = MockUpstream::start("good").await;
    let flaky = MockUpstream::start("flaky").await;
    let yaml = config(
        &[upstream(
            "svc",
            &[good.url(), flaky.url()],
            "health:\n  active: { path: /healthz, interval: 100ms, healthy: 2, unhealthy: 2 }",
        )],
        &[api("x", "svc", &["{ path: /app }"])],
    );
    let node = start(&yaml).await;
    let client = Client::new();
    flaky.set_healthy(false);
    // Two failed probes take it out: afterwards every request goes to the good target.
    tokio::time::sleep(Duration::from_millis(600)).await;
    good.reset();
    flaky.reset();
    for _ in 0..40 {
        let r = client.get(&node.proxy_url("/app")).await.unwrap();
        assert_eq!(r.status, 200);
    }
    assert_eq!(flaky.traffic_hits(), 0, "an unhealthy target got traffic");
    flaky.set_healthy(true);
    let back = wait_until(Duration::from_secs(5), || async {
        client.get(&node.proxy_url("/app")).await.unwrap();
        flaky.traffic_hits() > 0
    })
    .await;
    assert!(back, "the target did not come back after passing probes");
    let metrics = Client::new()
        .get(&node.admin_url("/metrics"))
        .await
        .unwrap()
        .text();
    assert!(
        metrics.contains("tollgate_upstream_target_healthy"),
        "{metrics}"
    );
}

#[tokio::test]
async fn passive_health_ejects_after_failures_and_retries_after_cooldown() {
    let good = MockUpstream::start("good").await;
    let bad = MockUpstream::start("bad").await;
    bad.set_healthy(false); // answers 503 to everything
    let yaml = config(
        &[upstream(
            "svc",
            &[good.url(), bad.url()],
            "retries: 0\nhealth:\n  passive: { unhealthy: 3, cooldown: 1s }",
        )],
        &[api("x", "svc", &["{ path: /app }"])],
    );
    let node = start(&yaml).await;
    let client = Client::new();
    let mut failures = 0;
    for _ in 0..40 {
        if client.get(&node.proxy_url("/app")).await.unwrap().status == 503 {
            failures += 1;
        }
    }
    assert_eq!(
        failures, 3,
        "exactly the threshold's worth of failures reach clients"
    );
    bad.set_healthy(true);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    bad.reset();
    for _ in 0..10 {
        client.get(&node.proxy_url("/app")).await.unwrap();
    }
    assert!(
        bad.traffic_hits() > 0,
        "after the cooldown the target is tried again"
    );
}

#[tokio::test]
async fn idempotent_requests_retry_on_another_target_and_others_do_not() {
    let live = MockUpstream::start("live").await;
    let yaml = config(
        &[upstream("svc", &[dead_url(), live.url()], "retries: 1")],
        &[api("x", "svc", &["{ path: / }"])],
    );
    let node = start(&yaml).await;
    let client = Client::new();
    for _ in 0..20 {
        let r = client.get(&node.proxy_url("/get")).await.unwrap();
        assert_eq!(r.status, 200, "GET must be retried on the live target");
    }
    let mut codes = std::collections::BTreeMap::new();
    for _ in 0..20 {
        let r = client
            .request("POST", &node.proxy_url("/post"), &[], "payload")
            .await
            .unwrap();
        *codes.entry(r.status).or_insert(0) += 1;
    }
    assert_eq!(
        codes.get(&502),
        Some(&10),
        "POST is never retried: {codes:?}"
    );
    assert_eq!(codes.get(&200), Some(&10), "{codes:?}");
}

#[tokio::test]
async fn unreachable_and_slow_upstreams_answer_502_and_504() {
    let slow = MockUpstream::start("slow").await;
    let yaml = config(
        &[
            upstream("dead", &[dead_url()], "retries: 0"),
            upstream("slow", &[slow.url()], "timeouts: { read: 300ms }"),
        ],
        &[
            api("d", "dead", &["{ path: /dead }"]),
            api("s", "slow", &["{ path: /slow }"]),
        ],
    );
    let node = start(&yaml).await;
    let client = Client::new();
    let r = client.get(&node.proxy_url("/dead")).await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert!(
        !r.text().contains("127.0.0.1"),
        "problem bodies never leak target addresses: {}",
        r.text()
    );
    let started = std::time::Instant::now();
    let r = client
        .get(&node.proxy_url("/slow/delay/3000"))
        .await
        .unwrap();
    assert_eq!(r.status, 504);
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert_eq!(
        client
            .get(&node.proxy_url("/slow/delay/10"))
            .await
            .unwrap()
            .status,
        200
    );
}
