//! Operating a node: graceful shutdown, applying changes under load, rejected
//! configurations, export/apply round trips and the CLI's exit codes.

mod common;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_requests() {
    let m = MockUpstream::start("svc").await;
    let yaml = config(
        &[upstream("svc", &[m.url()], "")],
        &[api("x", "svc", &["{ path: / }"])],
    );
    let mut node = start(&yaml).await;
    let url = node.proxy_url("/delay/1500");
    let in_flight = tokio::spawn(async move { Client::new().get(&url).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.terminate();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // No new connections once draining has begun.
    assert!(
        tokio::net::TcpStream::connect(node.proxy).await.is_err(),
        "the listener is still open"
    );
    let reply = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(reply.status, 200);
    let status = node
        .exited(Duration::from_secs(10))
        .await
        .expect("the node exits after draining");
    assert!(status.success(), "exit status {status:?}\n{}", node.logs());
}

#[tokio::test]
async fn applying_changes_under_load_fails_no_request() {
    let a = MockUpstream::start("a").await;
    let b = MockUpstream::start("b").await;
    let variant = |i: usize| {
        let targets = if i.is_multiple_of(2) {
            vec![a.url(), b.url()]
        } else {
            vec![b.url()]
        };
        let extra_route = format!("{{ path: /extra{i} }}");
        config(
            &[upstream("svc", &targets, "")],
            &[api("x", "svc", &["{ path: /load }", &extra_route])],
        )
    };
    let node = start(&variant(0)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (stop, ok, failed, url) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            node.proxy_url("/load"),
        );
        workers.push(tokio::spawn(async move {
            let client = Client::new();
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).await {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let started = Instant::now();
    for i in 1..=20 {
        let r = tollgate_testkit::admin_put_yaml(&node, &variant(i))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["applied"], true);
        // Live on this node as soon as the apply answers.
        let extra = Client::new()
            .get(&node.proxy_url(&format!("/extra{i}")))
            .await
            .unwrap();
        assert_eq!(
            extra.status, 200,
            "change {i} not live after apply returned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let apply_time = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 100, "too little load to mean anything: {ok}");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during 20 applies in {apply_time:?}",
        ok + failed
    );
}

#[tokio::test]
async fn rejected_configurations_name_their_location_and_change_nothing() {
    let m = MockUpstream::start("svc").await;
    let yaml = config(
        &[upstream("svc", &[m.url()], "")],
        &[api("x", "svc", &["{ path: /ok }"])],
    );
    let node = start(&yaml).await;
    let before = node.admin_get("/api/config?format=json").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "syntax.yaml",
            "format_version: 1\napis: [\n  - name: x\n",
            ":3:",
        ),
        (
            "upstream.yaml",
            "format_version: 1\napis:\n  - name: y\n    versions:\n      - version: v1\n        upstream: missing\n",
            "upstream.yaml:6:9: apis[0].versions[0].upstream: unknown upstream `missing`",
        ),
        (
            "conflict.yaml",
            &format!(
                "format_version: 1\n{}",
                &config(
                    &[upstream("svc2", &[m.url()], "")],
                    &[api("z", "svc2", &["{ path: /dup }", "{ path: /dup }"])]
                )[17..]
            ),
            "conflict.yaml:",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap();
        let (code, _out, err) = cli(&node, &["apply", "-f", path]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(
            err.contains(expected),
            "{name}: expected `{expected}` in:\n{err}"
        );
        let (code, _out, _) = cli(&node, &["validate", "-f", path]);
        assert_eq!(code, 2);
    }
    // A conflict with what the node already serves is caught by the server: still 2.
    let clash = dir.path().join("clash.yaml");
    std::fs::write(
        &clash,
        config(
            &[upstream("svc3", &[m.url()], "")],
            &[api("w", "svc3", &["{ path: /ok }"])],
        ),
    )
    .unwrap();
    let (code, _out, err) = cli(&node, &["apply", "-f", clash.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("conflicts"), "{err}");

    let after = node.admin_get("/api/config?format=json").await.unwrap();
    assert_eq!(
        before.body, after.body,
        "a rejected apply changed the configuration"
    );
    assert_eq!(before.header("etag"), after.header("etag"));
    assert_eq!(
        Client::new()
            .get(&node.proxy_url("/ok"))
            .await
            .unwrap()
            .status,
        200
    );

    // Through the API: problem+json with the failing path.
    let r = tollgate_testkit::admin_put_yaml(
        &node,
        "format_version: 1\nupstreams:\n  - name: Bad\n    targets: []\n",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 422);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let paths: Vec<String> = r.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert!(
        paths.contains(&"upstreams[0].name".to_string())
            && paths.contains(&"upstreams[0].targets".to_string()),
        "{paths:?}"
    );
}

#[tokio::test]
async fn serve_refuses_a_bad_config_file_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "format_version: 1\nupstreams:\n  - name: a\n    targets: [{ url: ftp://x }]\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--config", path.to_str().unwrap(), "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--proxy-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("TOLLGATE_ADMIN_TOKEN", "0123456789abcdef0123")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:4:") && err.contains("upstreams[0].targets[0].url"),
        "{err}"
    );
}

#[tokio::test]
async fn export_then_apply_plans_no_change_and_prune_deletes() {
    let m = MockUpstream::start("svc").await;
    let yaml = format!(
        "{}policies:\n  - ip_restrict: {{ deny: [203.0.113.0/24] }}\n  - request_size: {{ max_body: 2MB }}\n",
        config(
            &[
                upstream(
                    "svc",
                    &[m.url()],
                    "balance: least_conn\nhealth: { active: { path: /healthz, interval: 1s } }"
                ),
                upstream("spare", &[m.url()], "")
            ],
            &[api(
                "x",
                "svc",
                &[
                    "{ path: /a, methods: [GET], hosts: [\"*.example.com\"] }",
                    "{ path: \"/b/{id}\", strip_prefix: true }"
                ]
            )],
        )
    );
    let node = start(&yaml).await;
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("export.yaml");
    let (code, _, err) = cli(&node, &["export", "-o", exported.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&node, &["apply", "-f", exported.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("plan: 0 to create, 0 to update, 0 to delete"),
        "{out}"
    );
    let (code, _, _) = cli(&node, &["validate", "-f", exported.to_str().unwrap()]);
    assert_eq!(code, 0);

    // A smaller file without --prune keeps the rest; with --prune it deletes.
    let small = dir.path().join("small.yaml");
    std::fs::write(
        &small,
        config(
            &[upstream("svc", &[m.url()], "")],
            &[api("x", "svc", &["{ path: /a }"])],
        ),
    )
    .unwrap();
    let (code, out, err) = cli(
        &node,
        &["apply", "-f", small.to_str().unwrap(), "--dry-run"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("~ update upstream svc") && out.contains("dry run"),
        "{out}"
    );
    let (code, out, _) = cli(&node, &["apply", "-f", small.to_str().unwrap(), "--prune"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("- delete upstream spare") && out.contains("- delete policy ip_restrict"),
        "{out}"
    );
    assert!(out.contains("applied: revision"), "{out}");
    let doc = node
        .admin_get("/api/config?format=json")
        .await
        .unwrap()
        .json();
    assert_eq!(doc["upstreams"].as_array().unwrap().len(), 1);
    assert!(doc.get("policies").is_none());
    let changes = node.admin_get("/api/changes").await.unwrap().json();
    let last = changes["changes"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(
        last["actor"].as_str().unwrap().starts_with("token:"),
        "{last}"
    );
}
