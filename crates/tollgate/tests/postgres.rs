//! A node on PostgreSQL (`--database postgres://…`): the same product as on SQLite, and
//! a second node on the same database serves a change made through the first.
//!
//! Uses `TOLLGATE_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`) and a
//! schema of its own. Skipped with a printed reason when PostgreSQL is unreachable, except
//! under `CI=true`.

mod common;
use std::time::Duration;

use common::*;

#[tokio::test]
async fn two_nodes_on_one_postgres_serve_the_same_configuration() {
    let Some(url) = schema_url("two_nodes") else {
        return;
    };
    let m = MockUpstream::start("svc").await;
    let yaml = config(
        &[upstream("svc", &[m.url()], "")],
        &[api("x", "svc", &["{ path: /one }"])],
    );
    let token = "pg-e2e-token-0123456789";
    let first = start_with(
        NodeOptions::new()
            .config(yaml)
            .arg("--database")
            .arg(&url)
            .arg("--node-name")
            .arg("eu-1")
            .env("TOLLGATE_ADMIN_TOKEN", token),
    )
    .await;
    let second = start_with(
        NodeOptions::new()
            .arg("--database")
            .arg(&url)
            .arg("--node-name")
            .arg("us-1")
            .env("TOLLGATE_ADMIN_TOKEN", token),
    )
    .await;
    let c = Client::new();
    assert_eq!(
        c.get(&second.proxy_url("/one")).await.unwrap().status,
        200,
        "{}",
        second.logs()
    );

    let change = config(
        &[upstream("svc", &[m.url()], "")],
        &[api("x", "svc", &["{ path: /one }", "{ path: /two }"])],
    );
    let r = tollgate_testkit::admin_put_yaml(&first, &change)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let applied = std::time::Instant::now();
    let seen = wait_until(Duration::from_secs(5), || async {
        c.get(&second.proxy_url("/two"))
            .await
            .map(|r| r.status == 200)
            .unwrap_or(false)
    })
    .await;
    let took = applied.elapsed();
    assert!(
        seen,
        "the second node never served the change\n{}",
        second.logs()
    );
    // Announced with NOTIFY: well within the second that polling alone would take.
    eprintln!("the second node served the change {took:?} after it was applied");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let exported = second
        .admin_get("/api/config?format=json")
        .await
        .unwrap()
        .json();
    assert_eq!(
        exported["apis"][0]["versions"][0]["routes"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Either node lists both, up and (after their next heartbeat) at the new revision.
    let listed = wait_until(Duration::from_secs(12), || async {
        let r = second.admin_get("/api/nodes").await.unwrap().json();
        let nodes = r["nodes"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = nodes.iter().filter_map(|n| n["name"].as_str()).collect();
        names == ["eu-1", "us-1"]
            && nodes
                .iter()
                .all(|n| n["health"] == "up" && n["current"] == true && n["version"].is_string())
    })
    .await;
    let r = first.admin_get("/api/nodes").await.unwrap();
    assert!(listed, "{}", r.text());
    assert!(r.json()["nodes"][0]["uptime_seconds"].as_i64().unwrap() >= 0);
}

/// `(route, requests, errors)` of the top routes as a node answers them.
async fn route_rows(node: &Node) -> Vec<(String, u64, u64)> {
    let r = node
        .admin_get("/api/analytics/top?dimension=route")
        .await
        .unwrap()
        .json();
    let mut out: Vec<(String, u64, u64)> = r["rows"]
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

/// Two nodes on one PostgreSQL each answer part of the traffic: the analytics queries on
/// either node count every request once, with latency histograms merged.
#[tokio::test]
async fn analytics_of_two_nodes_add_up_exactly() {
    let Some(url) = schema_url("analytics") else {
        return;
    };
    let m = MockUpstream::start("svc").await;
    let yaml = config(
        &[upstream("svc", &[m.url()], "")],
        &[api("x", "svc", &["{ path: /one }", "{ path: /two }"])],
    );
    let token = "pg-e2e-token-0123456789";
    let first = start_with(
        NodeOptions::new()
            .config(yaml)
            .arg("--database")
            .arg(&url)
            .env("TOLLGATE_ADMIN_TOKEN", token),
    )
    .await;
    let second = start_with(
        NodeOptions::new()
            .arg("--database")
            .arg(&url)
            .env("TOLLGATE_ADMIN_TOKEN", token),
    )
    .await;
    let c = Client::new();
    for (node, path, n) in [
        (&first, "/one", 17),
        (&second, "/one", 23),
        (&second, "/two/status/503", 5),
    ] {
        for _ in 0..n {
            c.get(&node.proxy_url(path)).await.unwrap();
        }
    }
    let want = vec![
        ("x@v1 /one".to_string(), 40, 0),
        ("x@v1 /two".to_string(), 5, 5),
    ];
    assert!(
        wait_until(Duration::from_secs(10), || async {
            route_rows(&first).await == want
        })
        .await,
        "{:?}",
        route_rows(&first).await
    );
    assert_eq!(route_rows(&second).await, want);
}

#[tokio::test]
async fn a_node_that_loses_postgres_keeps_serving_and_says_it_is_degraded() {
    let Some(url) = schema_url("degraded") else {
        return;
    };
    // Bound again after the cut: a port no outgoing connection can take meanwhile.
    let relay_addr = tollgate_testkit::stable_addr().unwrap();
    let mut relay = Relay::start(relay_addr).await;
    let relayed = url.replacen("127.0.0.1:5432", &relay.addr.to_string(), 1);
    assert_ne!(relayed, url, "the test URL names 127.0.0.1:5432");
    let m = MockUpstream::start("svc").await;
    let node = start_with(
        NodeOptions::new()
            .config(config(
                &[upstream("svc", &[m.url()], "")],
                &[api("x", "svc", &["{ path: /one }"])],
            ))
            .arg("--database")
            .arg(&relayed),
    )
    .await;
    let c = Client::new();
    let ready = c.get(&node.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.json()["status"], "ready", "{}", ready.text());

    relay.cut();
    let degraded = wait_until(Duration::from_secs(10), || async {
        c.get(&node.admin_url("/readyz"))
            .await
            .map(|r| r.status == 200 && r.json()["status"] == "degraded")
            .unwrap_or(false)
    })
    .await;
    assert!(degraded, "{}", node.logs());
    // Traffic keeps flowing on the configuration the node has: no request fails.
    for _ in 0..50 {
        let r = c.get(&node.proxy_url("/one")).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let metrics = c.get(&node.admin_url("/metrics")).await.unwrap().text();
    assert!(
        wait_until(Duration::from_secs(5), || async {
            c.get(&node.admin_url("/metrics"))
                .await
                .map(|r| r.text().contains("tollgate_store_up 0"))
                .unwrap_or(false)
        })
        .await,
        "{metrics}"
    );

    // The store returns: the node is ready again and takes changes.
    let _relay = Relay::start(relay_addr).await;
    let back = wait_until(Duration::from_secs(15), || async {
        c.get(&node.admin_url("/readyz"))
            .await
            .map(|r| r.json()["status"] == "ready")
            .unwrap_or(false)
    })
    .await;
    assert!(back, "{}", node.logs());
}

#[tokio::test]
async fn a_node_restarted_while_postgres_is_down_serves_its_snapshot() {
    let Some(url) = schema_url("snapshot") else {
        return;
    };
    // Bound again after the cut: a port no outgoing connection can take meanwhile.
    let relay_addr = tollgate_testkit::stable_addr().unwrap();
    let mut relay = Relay::start(relay_addr).await;
    let relayed = url.replacen("127.0.0.1:5432", &relay.addr.to_string(), 1);
    let m = MockUpstream::start("svc").await;
    let data = tempfile::tempdir().unwrap();
    let token = "pg-snapshot-token-0123456789";
    let options = || {
        NodeOptions::new()
            .arg("--database")
            .arg(&relayed)
            .data_dir(data.path())
            .env("TOLLGATE_ADMIN_TOKEN", token)
    };
    let mut first = start_with(options().config(config(
        &[upstream("svc", &[m.url()], "")],
        &[api("x", "svc", &["{ path: /one }"])],
    )))
    .await;
    let c = Client::new();
    assert_eq!(c.get(&first.proxy_url("/one")).await.unwrap().status, 200);
    let snapshot = data.path().join("snapshot.json");
    assert!(snapshot.is_file(), "{}", first.logs());
    first.kill();
    drop(first);

    // The database is gone; the node starts on what it kept, and serves.
    relay.cut();
    let second = start_with(options()).await;
    let ready = c.get(&second.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.status, 200, "{}", second.logs());
    assert_eq!(ready.json()["status"], "degraded", "{}", ready.text());
    for _ in 0..20 {
        let r = c.get(&second.proxy_url("/one")).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(second.logs().contains("serving the configuration snapshot"));

    // The database returns: the node catches up and takes changes again.
    let _relay = Relay::start(relay_addr).await;
    let back = wait_until(Duration::from_secs(15), || async {
        c.get(&second.admin_url("/readyz"))
            .await
            .map(|r| r.json()["status"] == "ready")
            .unwrap_or(false)
    })
    .await;
    assert!(back, "{}", second.logs());
    let change = config(
        &[upstream("svc", &[m.url()], "")],
        &[api("x", "svc", &["{ path: /one }", "{ path: /two }"])],
    );
    let r = tollgate_testkit::admin_put_yaml(&second, &change)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(c.get(&second.proxy_url("/two")).await.unwrap().status, 200);
}
