//! Version lifecycle through the binary: only single forward steps are accepted, the
//! callers report names exactly the apps that called a version, and deprecating a version
//! tells exactly those apps' developers (portal notice and signed webhook).

mod common;
use common::*;

use std::time::Duration;

use serde_json::json;

fn config(m: &MockUpstream, hooks: &HookReceiver) -> String {
    format!(
        r#"format_version: 1
upstreams:
{}apis:
  - name: orders
    policies: [{{ key_auth: {{}} }}]
    versions:
      - {{ version: v1, upstream: svc, routes: [{{ path: /v1/orders }}] }}
      - {{ version: v2, upstream: svc, routes: [{{ path: /v2/orders }}] }}
      - {{ version: v3, status: draft, upstream: svc, routes: [{{ path: /v3/orders }}] }}
developers:
  - email: ana@example.test
  - email: bo@example.test
  - email: cy@example.test
apps:
  - {{ name: web, owner: ana@example.test, keys: [{{ secret: key-web-0123456789 }}] }}
  - {{ name: batch, owner: bo@example.test, keys: [{{ secret: key-batch-0123456789 }}] }}
  - {{ name: mobile, owner: cy@example.test, keys: [{{ secret: key-mobile-0123456789 }}] }}
webhooks:
  - {{ name: devrel, url: "{}", events: [version.deprecated], secret: whsec-devrel-0123456789 }}
"#,
        upstream("svc", &[m.url()], ""),
        hooks.url()
    )
}

fn version(name: &str, status: &str) -> String {
    json!({
        "version": name,
        "status": status,
        "successor": if name == "v1" { Some("v2") } else { None },
        "sunset_at": if name == "v1" { Some("2027-06-30T00:00:00Z") } else { None },
        "upstream": "svc",
        "routes": [{"path": format!("/{name}/orders")}],
    })
    .to_string()
}

#[tokio::test]
async fn lifecycle_steps_callers_and_deprecation_notices() {
    let m = MockUpstream::start("svc").await;
    let hooks = HookReceiver::start().await;
    let node = start(&config(&m, &hooks)).await;
    let client = Client::new();
    // web calls v1 5 times, batch 2 times; mobile only calls v2; one anonymous call fails.
    for (path, key, n) in [
        ("/v1/orders/1", "key-web-0123456789", 5),
        ("/v1/orders/2", "key-batch-0123456789", 2),
        ("/v2/orders/1", "key-mobile-0123456789", 3),
    ] {
        for _ in 0..n {
            let r = client
                .get_with(&node.proxy_url(path), &[("x-api-key", key)])
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{path}");
        }
    }
    let callers = || async {
        let r = node
            .admin_get("/api/apis/orders/versions/v1/callers")
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    assert!(
        wait_until(Duration::from_secs(10), || async {
            callers().await["callers"]
                .as_array()
                .is_some_and(|c| c.len() == 2)
        })
        .await
    );
    let report = callers().await;
    let got: Vec<(String, String, u64)> = report["callers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["app"].as_str().unwrap().to_string(),
                c["developer"].as_str().unwrap().to_string(),
                c["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("web".into(), "ana@example.test".into(), 5),
            ("batch".into(), "bo@example.test".into(), 2)
        ],
        "{report}"
    );
    assert!(
        report["callers"][0]["last_call"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(report["status"], "published");
    assert_eq!(
        node.admin_get("/api/apis/orders/versions/v9/callers")
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        node.admin_get("/api/apis/orders/versions/v1/callers?from=yesterday")
            .await
            .unwrap()
            .status,
        400
    );

    // A step backwards or a skipped step is refused with the field named; nothing changes.
    let put = |name: &'static str, status: &'static str| {
        let node = &node;
        async move {
            node.admin_request(
                "PUT",
                &format!("/api/apis/orders/versions/{name}"),
                &[("content-type", "application/json")],
                version(name, status),
            )
            .await
        }
    };
    let r = put("v2", "draft").await.unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("cannot go from published to draft"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("versions[1].status"), "{}", r.text());
    let r = put("v3", "deprecated").await.unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    let r = client.get(&node.proxy_url("/v3/orders/1")).await.unwrap();
    assert_eq!(r.status, 404, "v3 is still a draft");

    // Deprecating v1 tells web's and batch's developers, not mobile's.
    let r = put("v1", "deprecated").await.unwrap();
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    let r = client
        .get_with(
            &node.proxy_url("/v1/orders/1"),
            &[("x-api-key", "key-web-0123456789")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("deprecation").unwrap().starts_with('@'));
    assert_eq!(r.header("sunset"), Some("Wed, 30 Jun 2027 00:00:00 GMT"));
    let stored = node
        .admin_get("/api/apis/orders/versions/v1")
        .await
        .unwrap()
        .json();
    assert!(stored["deprecated_at"].as_str().is_some(), "{stored}");

    assert!(
        wait_until(Duration::from_secs(10), || async {
            hooks.received().len() >= 2
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut told: Vec<String> = hooks
        .received()
        .iter()
        .map(|h| {
            assert_eq!(h.json()["type"], "version.deprecated");
            let sig = h.headers["tollgate-signature"].clone();
            let t: i64 = sig.split(',').next().unwrap()[2..].parse().unwrap();
            assert_eq!(
                sig,
                tollgate_admin::signature("whsec-devrel-0123456789", t, &h.body)
            );
            assert_eq!(h.json()["data"]["successor"], "v2");
            h.json()["data"]["app"].as_str().unwrap().to_string()
        })
        .collect();
    told.sort();
    assert_eq!(told, ["batch", "web"]);
    let notices = |who: &'static str| {
        let node = &node;
        async move {
            node.admin_get(&format!("/api/notices?developer={who}"))
                .await
                .unwrap()
                .json()["notices"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["kind"] == "version.deprecated")
                .count()
        }
    };
    assert_eq!(notices("ana@example.test").await, 1);
    assert_eq!(notices("bo@example.test").await, 1);
    assert_eq!(notices("cy@example.test").await, 0);

    // Saving the deprecated version again (without its date) keeps the date and raises
    // nothing new; retiring is the next step.
    let r = put("v1", "deprecated").await.unwrap();
    assert!(r.status < 300, "{}", r.text());
    let again = node
        .admin_get("/api/apis/orders/versions/v1")
        .await
        .unwrap()
        .json();
    assert_eq!(again["deprecated_at"], stored["deprecated_at"], "{again}");
    let r = put("v1", "retired").await.unwrap();
    assert!(r.status < 300, "{}", r.text());
    let r = client
        .get_with(
            &node.proxy_url("/v1/orders/1"),
            &[("x-api-key", "key-web-0123456789")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 410);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hooks.received().len(), 2);
    assert_eq!(notices("ana@example.test").await, 1);
}

#[tokio::test]
async fn a_brownout_answers_410_with_its_own_type_only_inside_its_window() {
    let m = MockUpstream::start("svc").await;
    let yaml = format!(
        r#"format_version: 1
upstreams:
{}apis:
  - name: billing
    versions:
      - version: v1
        status: deprecated
        successor: v3
        upstream: svc
        routes: [{{ path: /v1/billing }}]
        brownouts:
          - {{ from: "2020-01-01T00:00:00Z", to: "2099-01-01T00:00:00Z" }}
      - version: v2
        status: deprecated
        successor: v3
        upstream: svc
        routes: [{{ path: /v2/billing }}]
        brownouts:
          - {{ from: "2020-01-01T00:00:00Z", to: "2020-01-02T00:00:00Z" }}
          - {{ from: "2098-01-01T00:00:00Z", to: "2098-01-02T00:00:00Z" }}
      - {{ version: v3, upstream: svc, routes: [{{ path: /v3/billing }}] }}
"#,
        upstream("svc", &[m.url()], "")
    );
    let node = start(&yaml).await;
    let client = Client::new();
    let r = client.get(&node.proxy_url("/v1/billing/x")).await.unwrap();
    assert_eq!(r.status, 410, "{}", r.text());
    let body = r.json();
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("/version-brownout"),
        "{body}"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("brownout until 2099-01-01T00:00:00Z"),
        "{detail}"
    );
    assert!(detail.contains("use v3 (/v3/billing)"), "{detail}");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 86_400, "{retry}");
    // Outside its windows a deprecated version answers normally, with its headers.
    let r = client.get(&node.proxy_url("/v2/billing/x")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("deprecation").is_some());

    // Brownouts on a version that is not deprecated, or a window that ends before it
    // starts, are refused with their paths.
    let (code, out, err) = {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.yaml");
        std::fs::write(
            &f,
            yaml.replace(
                "{ version: v3, upstream: svc, routes: [{ path: /v3/billing }] }",
                "{ version: v3, upstream: svc, routes: [{ path: /v3/billing }], brownouts: [{ from: \"2027-01-02T00:00:00Z\", to: \"2027-01-01T00:00:00Z\" }] }",
            ),
        )
        .unwrap();
        let o = std::process::Command::new(bin())
            .args(["validate", "-f"])
            .arg(&f)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let text = format!("{out}{err}");
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("apis[0].versions[2].brownouts")
            && text.contains("brownouts apply to deprecated versions"),
        "{text}"
    );
    assert!(
        text.contains("a brownout must end after it starts"),
        "{text}"
    );
}

#[tokio::test]
async fn versions_chosen_by_header_or_query_parameter_share_their_paths() {
    let one = MockUpstream::start("one").await;
    let two = MockUpstream::start("two").await;
    let yaml = format!(
        r#"format_version: 1
upstreams:
{}{}apis:
  - name: accounts
    versioning: {{ by: header, name: Accept-Version, default: v2 }}
    versions:
      - {{ version: v1, status: deprecated, successor: v2, upstream: one, routes: [{{ path: /accounts }}] }}
      - {{ version: v2, upstream: two, routes: [{{ path: /accounts }}, {{ path: "=/accounts/export" }}] }}
  - name: reports
    versioning: {{ by: query }}
    versions:
      - {{ version: "2026-01", upstream: one, routes: [{{ path: /reports }}] }}
      - {{ version: "2026-06", upstream: two, routes: [{{ path: /reports }}] }}
"#,
        upstream("one", &[one.url()], ""),
        upstream("two", &[two.url()], "")
    );
    let node = start(&yaml).await;
    let client = Client::new();
    let get = |path: &'static str, headers: &'static [(&'static str, &'static str)]| {
        let client = client.clone();
        let url = node.proxy_url(path);
        async move { client.get_with(&url, headers).await.unwrap() }
    };
    let r = get("/accounts/7", &[("accept-version", "v1")]).await;
    assert_eq!((r.status, served_by(&r).as_str()), (200, "one"));
    assert!(r.header("deprecation").is_some(), "v1 is deprecated");
    let r = get("/accounts/7", &[("Accept-Version", "v2")]).await;
    assert_eq!((r.status, served_by(&r).as_str()), (200, "two"));
    assert!(r.header("deprecation").is_none());
    // No version named: the default answers. An unknown one matches nothing.
    let r = get("/accounts/7", &[]).await;
    assert_eq!((r.status, served_by(&r).as_str()), (200, "two"));
    // The default's more specific route does not catch a request naming another version.
    let r = get("/accounts/export", &[("accept-version", "v1")]).await;
    assert_eq!((r.status, served_by(&r).as_str()), (200, "one"));
    let r = get("/accounts/export", &[]).await;
    assert_eq!((r.status, served_by(&r).as_str()), (200, "two"));
    let r = get("/accounts/7", &[("accept-version", "v9")]).await;
    assert_eq!(r.status, 404);
    assert!(
        r.json()["type"]
            .as_str()
            .unwrap()
            .ends_with("/unknown-version"),
        "{}",
        r.text()
    );
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("no version `v9` answers GET /accounts/7"),
        "{}",
        r.text()
    );

    let r = get("/reports?version=2026-01&x=1", &[]).await;
    assert_eq!((r.status, served_by(&r).as_str()), (200, "one"));
    let r = get("/reports/q?x=1&version=2026-06", &[]).await;
    assert_eq!((r.status, served_by(&r).as_str()), (200, "two"));
    // Without a default, a request naming no version matches no route.
    assert_eq!(get("/reports", &[]).await.status, 404);

    // Analytics keep the versions apart.
    assert!(
        wait_until(Duration::from_secs(10), || async {
            let r = node
                .admin_get("/api/apis/accounts/versions/v1/callers")
                .await
                .unwrap();
            // `/accounts/7` and `/accounts/export` named v1.
            r.json()["anonymous_requests"] == 2
        })
        .await
    );

    // Two versions on one path without versioning conflict; a default that is not a version,
    // or versioning settings that do not apply, are refused with their paths.
    let bad = yaml
        .replace(
            "    versioning: { by: header, name: Accept-Version, default: v2 }\n",
            "",
        )
        .replace(
            "versioning: { by: query }",
            "versioning: { by: query, default: \"2027-01\" }",
        );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(&f, bad).unwrap();
    let o = std::process::Command::new(bin())
        .args(["validate", "-f"])
        .arg(&f)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("apis[0].versions[1].routes[0].path"),
        "{text}"
    );
    assert!(text.contains("apis[1].versioning.default"), "{text}");
    assert!(text.contains("unknown version `2027-01`"), "{text}");
}
