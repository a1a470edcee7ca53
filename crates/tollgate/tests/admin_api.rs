//! The admin API through the real binary: authentication and roles, health endpoints,
//! metrics, the OpenAPI document and the REST collections.

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn tokens_roles_and_unauthenticated_endpoints() {
    let node = start("format_version: 1\n").await;
    let c = Client::new();
    assert_eq!(
        c.get(&node.admin_url("/healthz")).await.unwrap().status,
        200
    );
    assert_eq!(c.get(&node.admin_url("/readyz")).await.unwrap().status, 200);
    let openapi = c.get(&node.admin_url("/api/openapi.json")).await.unwrap();
    assert_eq!(openapi.status, 200);
    let doc = openapi.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/config",
        "/api/upstreams",
        "/api/apis/{api}/versions",
        "/api/policies",
        "/api/tokens",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }

    let r = c.get(&node.admin_url("/api/upstreams")).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let r = c
        .get_with(
            &node.admin_url("/api/upstreams"),
            &[("authorization", "Bearer wrong-token-value")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);

    // The owner makes a viewer token: it may read, not write.
    let r = node
        .admin_request(
            "POST",
            "/api/tokens",
            &[("content-type", "application/json")],
            json!({"name": "dash", "role": "viewer"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let viewer = r.json()["token"].as_str().unwrap().to_string();
    let id = r.json()["id"].as_str().unwrap().to_string();
    let auth = format!("Bearer {viewer}");
    assert_eq!(
        c.get_with(
            &node.admin_url("/api/upstreams"),
            &[("authorization", &auth)]
        )
        .await
        .unwrap()
        .status,
        200
    );
    let r = c
        .request(
            "PUT",
            &node.admin_url("/api/config"),
            &[("authorization", &auth)],
            "format_version: 1\n",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = c
        .get_with(&node.admin_url("/api/tokens"), &[("authorization", &auth)])
        .await
        .unwrap();
    assert_eq!(r.status, 403, "listing tokens needs admin");
    // An admin token cannot revoke the owner's.
    let r = node
        .admin_request(
            "POST",
            "/api/tokens",
            &[("content-type", "application/json")],
            json!({"name": "ops", "role": "admin"}).to_string(),
        )
        .await
        .unwrap();
    let admin = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let r = c
        .request(
            "DELETE",
            &node.admin_url("/api/tokens/bootstrap"),
            &[("authorization", &admin)],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    // The list never shows secrets or hashes.
    let list = node.admin_get("/api/tokens").await.unwrap().text();
    assert!(
        !list.contains(&viewer) && !list.contains("secret_hash"),
        "{list}"
    );
    // Revoked: refused at once.
    assert_eq!(
        node.admin_request("DELETE", &format!("/api/tokens/{id}"), &[], "")
            .await
            .unwrap()
            .status,
        204
    );
    assert_eq!(
        c.get_with(
            &node.admin_url("/api/upstreams"),
            &[("authorization", &auth)]
        )
        .await
        .unwrap()
        .status,
        401
    );
    // Expired tokens are refused.
    let r = node
        .admin_request(
            "POST",
            "/api/tokens",
            &[("content-type", "application/json")],
            json!({"name": "short", "role": "viewer", "expires_in": 1}).to_string(),
        )
        .await
        .unwrap();
    let short = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        c.get_with(
            &node.admin_url("/api/upstreams"),
            &[("authorization", &short)]
        )
        .await
        .unwrap()
        .status,
        401
    );
}

#[tokio::test]
async fn the_database_holds_no_admin_token_in_clear() {
    let node = start("format_version: 1\n").await;
    let r = node
        .admin_request(
            "POST",
            "/api/tokens",
            &[("content-type", "application/json")],
            json!({"name": "ci", "role": "editor"}).to_string(),
        )
        .await
        .unwrap();
    let token = r.json()["token"].as_str().unwrap().to_string();
    let secret = token.rsplit('_').next().unwrap().to_string();
    let mut all = Vec::new();
    for entry in std::fs::read_dir(&node.data_dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap_or_default());
    }
    let haystack = String::from_utf8_lossy(&all);
    assert!(
        !haystack.contains(&secret),
        "a token secret is stored in clear"
    );
    assert!(
        !haystack.contains(&node.token),
        "the bootstrap token is stored in clear"
    );
}

#[tokio::test]
async fn rest_collections_change_what_the_gateway_serves() {
    let m = MockUpstream::start("svc").await;
    let node = start("format_version: 1\n").await;
    let c = Client::new();
    let post = |path: &'static str, body: serde_json::Value| {
        node.admin_request(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.to_string(),
        )
    };

    let r = post(
        "/api/upstreams",
        json!({"name": "svc", "targets": [{"url": m.url()}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.header("x-tollgate-revision").is_some());
    assert_eq!(
        post(
            "/api/upstreams",
            json!({"name": "svc", "targets": [{"url": m.url()}]})
        )
        .await
        .unwrap()
        .status,
        409
    );
    let r = post(
        "/api/upstreams",
        json!({"name": "x", "targets": [{"url": m.url()}], "balance": "sideways"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errors"][0]["path"], "balance");

    let api = json!({"name": "orders", "versions": [{"version": "v1", "upstream": "svc", "routes": [{"path": "/v1/orders"}]}]});
    assert_eq!(post("/api/apis", api).await.unwrap().status, 201);
    assert_eq!(
        c.get(&node.proxy_url("/v1/orders")).await.unwrap().status,
        200,
        "live as soon as the API answered"
    );

    let v2 = json!({"version": "v2", "upstream": "svc", "routes": [{"path": "/v2/orders"}]});
    assert_eq!(
        post("/api/apis/orders/versions", v2).await.unwrap().status,
        201
    );
    let versions = node
        .admin_get("/api/apis/orders/versions")
        .await
        .unwrap()
        .json();
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    let deprecate = json!({"version": "v1", "status": "deprecated", "successor": "v2", "upstream": "svc", "routes": [{"path": "/v1/orders"}]});
    let r = node
        .admin_request(
            "PUT",
            "/api/apis/orders/versions/v1",
            &[("content-type", "application/json")],
            deprecate.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c.get(&node.proxy_url("/v1/orders")).await.unwrap();
    assert!(r.header("deprecation").is_some());
    assert_eq!(
        r.header("link"),
        Some("</v2/orders>; rel=\"successor-version\"")
    );

    // An upstream still in use cannot go.
    let r = node
        .admin_request("DELETE", "/api/upstreams/svc", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown upstream `svc`")
    );

    let r = post(
        "/api/policies",
        json!({"ip_restrict": {"deny": ["127.0.0.0/8"]}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["name"], "ip_restrict");
    assert_eq!(
        c.get(&node.proxy_url("/v2/orders")).await.unwrap().status,
        403
    );
    let r = post("/api/policies", json!({"validate": {}}))
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    // A global `validate` needs every version's OpenAPI document.
    assert!(r.text().contains("no OpenAPI document"), "{}", r.text());
    assert_eq!(
        node.admin_request("DELETE", "/api/policies/ip_restrict", &[], "")
            .await
            .unwrap()
            .status,
        204
    );
    assert_eq!(
        c.get(&node.proxy_url("/v2/orders")).await.unwrap().status,
        200
    );

    assert_eq!(
        node.admin_request("DELETE", "/api/apis/orders/versions/v1", &[], "")
            .await
            .unwrap()
            .status,
        204
    );
    assert_eq!(
        c.get(&node.proxy_url("/v1/orders")).await.unwrap().status,
        404
    );
    assert_eq!(
        node.admin_request("DELETE", "/api/apis/orders", &[], "")
            .await
            .unwrap()
            .status,
        204
    );
    assert_eq!(
        node.admin_request("DELETE", "/api/upstreams/svc", &[], "")
            .await
            .unwrap()
            .status,
        204
    );
    assert_eq!(
        node.admin_get("/api/apis/orders").await.unwrap().status,
        404
    );

    let metrics = c.get(&node.admin_url("/metrics")).await.unwrap().text();
    for name in [
        "tollgate_requests_total",
        "tollgate_request_duration_seconds_bucket",
        "tollgate_config_revision",
        "tollgate_config_apply_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let changes = node.admin_get("/api/changes").await.unwrap().json();
    let ops: Vec<String> = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c["op"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        ops.contains(&"create version orders@v2".to_string())
            && ops.contains(&"delete upstream svc".to_string()),
        "{ops:?}"
    );
}

#[tokio::test]
async fn a_node_lists_itself_with_its_heartbeat() {
    let node = start_with(NodeOptions::new().arg("--node-name").arg("edge-7")).await;
    let r = node.admin_get("/api/nodes").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let me = &body["nodes"][0];
    assert_eq!(me["name"], "edge-7", "{body}");
    assert_eq!(me["health"], "up");
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    assert!(me["started_at"].as_str().unwrap().ends_with('Z'));
    let r = Client::new()
        .get(&node.admin_url("/api/nodes"))
        .await
        .unwrap();
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn compliance_profiles_judge_each_api_and_say_why() {
    let m = MockUpstream::start("svc").await;
    let yaml = format!(
        "format_version: 1\nsettings:\n  analytics: {{ days: 365d }}\nupstreams:\n{}apis:\n{}{}",
        upstream("svc", &[m.url()], ""),
        api("open", "svc", &["{ path: /open }"]),
        api("closed", "svc", &["{ path: /closed }"]).replace(
            "        routes:\n",
            "        policies: [{ key_auth: {} }, { rate_limit: { limit: 10, window: 1s } }]\n        routes:\n",
        ),
    );
    let node = start(&yaml).await;
    let r = node.admin_get("/api/compliance?profile=pci").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let pci = &body["profiles"][0];
    assert_eq!(pci["profile"], "pci");
    assert_eq!(pci["compliant"], false);
    let rule = |api: &str, rule: &str| {
        pci["apis"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["api"] == api)
            .and_then(|a| {
                a["rules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["rule"] == rule)
            })
            .cloned()
            .unwrap()
    };
    assert_eq!(rule("closed", "authentication")["met"], true);
    assert_eq!(rule("closed", "rate_limit")["met"], true);
    let open = rule("open", "authentication");
    assert_eq!(open["met"], false);
    assert!(
        open["detail"].as_str().unwrap().contains("v1 /open"),
        "{open}"
    );
    assert!(open["why"].as_str().unwrap().contains("requirement 8"));
    // No certificate: TLS is not terminated here, for every API.
    assert_eq!(rule("closed", "tls_only")["met"], false);
    assert_eq!(rule("closed", "audit_log")["met"], true);

    let all = node.admin_get("/api/compliance").await.unwrap().json();
    let names: Vec<&str> = all["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["profile"].as_str())
        .collect();
    assert_eq!(names, ["hipaa", "pci", "gdpr"]);
    let gdpr = &all["profiles"][2]["apis"][0]["rules"];
    let retention = gdpr
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "retention")
        .unwrap();
    assert_eq!(retention["met"], true, "{retention}");

    let r = node.admin_get("/api/compliance?profile=sox").await.unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("unknown profile `sox`"), "{}", r.text());
}
