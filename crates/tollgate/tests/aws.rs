//! `tollgate import aws` over every file in the shared AWS fixtures: the counts and the
//! unsupported elements a user expects from each, a partial import refused unless accepted,
//! the output valid, and imported APIs served through a node (API keys, CORS preflights,
//! integration paths, a usage plan's limits).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/aws")
        .join(name)
}

struct Run {
    code: i32,
    stderr: String,
    yaml: String,
    doc: Value,
}

impl Run {
    /// The `unsupported: <where>` places, in order.
    fn unsupported(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("unsupported: "))
            .map(|l| l.split_once(": ").map_or(l, |(at, _)| at))
            .collect()
    }
}

fn import_file(file: &Path, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.yaml");
    let o = Command::new(bin())
        .args(["import", "aws"])
        .arg(file)
        .arg("-o")
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    let yaml = std::fs::read_to_string(&out).unwrap_or_default();
    let doc = if yaml.is_empty() {
        Value::Null
    } else {
        // What import writes, validate accepts.
        let v = Command::new(bin())
            .args(["validate", "-f"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&v.stderr)
        );
        yaml_serde::from_str(&yaml).unwrap()
    };
    Run {
        code: o.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&o.stderr).to_string(),
        yaml,
        doc,
    }
}

fn import(name: &str, extra: &[&str]) -> Run {
    import_file(&fixture(name), extra)
}

/// The configuration with a developer and an app holding `key` appended.
fn with_app(mut doc: Value, key: &str) -> String {
    doc["developers"] = json!([{ "email": "dev@example.com" }]);
    doc["apps"] =
        json!([{ "name": "web", "owner": "dev@example.com", "keys": [{ "secret": key }] }]);
    yaml_serde::to_string(&doc).unwrap()
}

const KEY: &str = "aws-imported-key-0001";

#[test]
fn the_localstack_export_is_refused_for_its_authorizer_unless_accepted() {
    let r = import("localstack-openapi.spec.json", &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        r.unsupported(),
        ["components.securitySchemes.myAuthorizer.x-amazon-apigateway-authorizer"]
    );
    assert!(r.stderr.contains("Lambda authorizer"), "{}", r.stderr);
    assert!(
        r.stderr.contains("not imported: 1 element(s)"),
        "{}",
        r.stderr
    );
    assert!(r.yaml.is_empty(), "nothing is written");

    let r = import("localstack-openapi.spec.json", &["--allow-unsupported"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "1 upstream, 1 api, 1 version, 3 routes, 4 policies; 1 element(s) not imported"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.doc["upstreams"][0]["targets"][0]["url"],
        "http://petstore.execute-api.us-west-1.amazonaws.com"
    );
    // Served as imported, GET /pets/{petId} would be open to anyone.
    assert_eq!(r.doc["apis"][0]["versions"][0]["status"], "draft");
}

#[test]
fn the_terraform_and_pulumi_exports_need_an_upstream_for_their_lambdas() {
    for name in [
        "localstack-openapi.spec.tf.json",
        "localstack-openapi.spec.pulumi.json",
    ] {
        let r = import(name, &[]);
        assert_eq!(r.code, 2, "{name}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("no HTTP or HTTP_PROXY integration names a backend")
                && r.stderr.contains("--upstream URL"),
            "{name}: {}",
            r.stderr
        );
    }

    let up = ["--upstream", "http://127.0.0.1:9"];
    let r = import("localstack-openapi.spec.tf.json", &up);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        r.unsupported(),
        [
            "paths./.get.x-amazon-apigateway-integration",
            "paths./.options.x-amazon-apigateway-integration"
        ]
    );
    let r = import(
        "localstack-openapi.spec.tf.json",
        &[&up[..], &["--allow-unsupported"]].concat(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "1 upstream, 1 api, 1 version, 2 routes, 1 policy; 2 element(s) not imported"
        ),
        "{}",
        r.stderr
    );

    let r = import(
        "localstack-openapi.spec.pulumi.json",
        &[&up[..], &["--allow-unsupported"]].concat(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.unsupported(),
        [
            "x-amazon-apigateway-gateway-responses",
            "securityDefinitions.Auth0.x-amazon-apigateway-authorizer",
            "paths./{proxy+}.options.x-amazon-apigateway-integration",
            "paths./just_do_it.get.x-amazon-apigateway-integration",
        ]
    );
    assert!(
        r.stderr.contains(
            "1 upstream, 1 api, 1 version, 2 routes, 2 policies; 4 element(s) not imported"
        ),
        "{}",
        r.stderr
    );
    // /just_do_it needs the Auth0 authorizer as well as the API key: not served.
    assert_eq!(r.doc["apis"][0]["versions"][0]["status"], "draft");
}

#[test]
fn the_usage_plan_template_imports_whole() {
    let r = import("awsdocs-rest-usage-plan.cfn.yaml", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.unsupported().is_empty(), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "1 upstream, 1 api, 2 versions, 2 routes, 4 policies, 1 product, 1 plan, 1 developer, 1 app, 1 subscription"
        ),
        "{}",
        r.stderr
    );
    let plan = &r.doc["products"][0]["plans"][0];
    assert_eq!(
        plan["rate_limit"],
        json!({ "limit": 200, "window": "1s", "burst": 200 })
    );
    assert_eq!(
        r.doc["products"][0]["apis"],
        json!(["example-with-usage-plan@test"])
    );
    assert!(
        r.stderr.contains(
            "note: Resources.MyAPIKey: API Gateway generates the key's value at deployment"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.yaml");
    std::fs::write(&f, "kind: Deployment\nmetadata: { name: x }\n").unwrap();
    let r = import_file(&f, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("not an AWS API Gateway export: expected an OpenAPI document"),
        "{}",
        r.stderr
    );
    std::fs::write(&f, "Resources: [1, 2]\n").unwrap();
    let r = import_file(&f, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("without a `Resources` map"),
        "{}",
        r.stderr
    );
    std::fs::write(&f, "openapi: 3.0.1\npaths: {\n").unwrap();
    let r = import_file(&f, &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not YAML or JSON"), "{}", r.stderr);
    let r = import(
        "localstack-openapi.spec.json",
        &["--upstream", "http://127.0.0.1:9/base"],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--upstream only the origin"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn an_imported_api_key_is_checked_and_the_call_proxied() {
    let m = MockUpstream::start("lambda-replacement").await;
    let r = import(
        "localstack-openapi.spec.tf.json",
        &["--upstream", &m.url(), "--allow-unsupported"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let node = start(&with_app(r.doc, KEY)).await;
    let client = Client::new();
    let got = client.get(&node.proxy_url("/")).await.unwrap();
    assert_eq!(got.status, 401, "{}", got.text());
    let got = client
        .get_with(
            &node.proxy_url("/"),
            &[("x-api-key", "wrong-key-0000000000")],
        )
        .await
        .unwrap();
    assert_eq!(got.status, 401);
    assert_eq!(m.hits(), 0);
    let got = client
        .get_with(&node.proxy_url("/?a=1"), &[("x-api-key", KEY)])
        .await
        .unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["path"], "/");
    assert_eq!(got.json()["query"], "a=1");
    // The key is checked at the gateway and not passed on.
    assert!(got.json()["headers"].get("x-api-key").is_none());
}

#[tokio::test]
async fn integration_paths_and_cors_are_served_as_the_export_says() {
    let m = MockUpstream::start("petstore").await;
    // The export's integrations, pointed at the mock.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("spec.json");
    let text = std::fs::read_to_string(fixture("localstack-openapi.spec.json"))
        .unwrap()
        .replace(
            "http://petstore.execute-api.us-west-1.amazonaws.com",
            &m.url(),
        );
    std::fs::write(&copy, text).unwrap();
    let r = import_file(&copy, &["--allow-unsupported"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.doc["upstreams"][0]["targets"][0]["url"], m.url());
    // As the report asks: the Lambda authorizer replaced (by an API key here), then published.
    let mut doc = r.doc;
    let version = &mut doc["apis"][0]["versions"][0];
    assert_eq!(version["status"], "draft");
    version["status"] = json!("published");
    let get_pet = version["routes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["name"] == "Get Pet")
        .unwrap();
    get_pet["policies"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({ "key_auth": {} }));
    let node = start(&with_app(doc, KEY)).await;
    let client = Client::new();

    let got = client
        .get(&node.proxy_url("/pets?type=dog&page=2"))
        .await
        .unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["path"], "/petstore/pets");
    assert_eq!(got.json()["query"], "type=dog&page=2");
    // POST's integration came through its $ref.
    let got = client
        .request("POST", &node.proxy_url("/pets"), &[], "{}")
        .await
        .unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(
        (got.json()["method"].as_str(), got.json()["path"].as_str()),
        (Some("POST"), Some("/petstore/pets"))
    );
    let got = client.get(&node.proxy_url("/pets/7")).await.unwrap();
    assert_eq!(got.status, 401);
    let got = client
        .get_with(&node.proxy_url("/pets/7"), &[("x-api-key", KEY)])
        .await
        .unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["path"], "/petstore/pets/7");

    // x-amazon-apigateway-cors: preflights answered at the gateway.
    let preflight = |method: &'static str, headers: &'static str| {
        let client = client.clone();
        let url = node.proxy_url("/pets");
        async move {
            client
                .request(
                    "OPTIONS",
                    &url,
                    &[
                        ("origin", "https://app.example.com"),
                        ("access-control-request-method", method),
                        ("access-control-request-headers", headers),
                    ],
                    "",
                )
                .await
                .unwrap()
        }
    };
    let hits = m.hits();
    let got = preflight("POST", "content-type, x-api-key").await;
    assert_eq!(got.status, 204, "{}", got.text());
    assert_eq!(got.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        got.header("access-control-allow-methods"),
        Some("GET, OPTIONS, POST")
    );
    let allowed = got.header("access-control-allow-headers").unwrap_or("");
    assert!(
        allowed.contains("x-api-key") && allowed.contains("content-type"),
        "{allowed}"
    );
    // A header the policy does not list is refused; a method no route takes is not routed.
    assert_eq!(preflight("POST", "x-other").await.status, 403);
    assert_eq!(preflight("DELETE", "content-type").await.status, 405);
    assert_eq!(m.hits(), hits, "preflights never reach the upstream");
    let got = client
        .get_with(
            &node.proxy_url("/pets"),
            &[("origin", "https://app.example.com")],
        )
        .await
        .unwrap();
    assert_eq!(got.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn the_usage_plan_is_served_to_its_subscribed_key() {
    let m = MockUpstream::start("petstore").await;
    let r = import(
        "awsdocs-rest-usage-plan.cfn.yaml",
        &["--upstream", &m.url()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The key AWS generated, added as the report says.
    let mut doc = r.doc;
    assert_eq!(doc["apps"][0]["name"], "myapikey");
    doc["apps"][0]["keys"] = json!([{ "secret": KEY }]);
    let node = start(&yaml_serde::to_string(&doc).unwrap()).await;
    let client = Client::new();

    let got = client.get(&node.proxy_url("/test/pets")).await.unwrap();
    assert_eq!(got.status, 401, "{}", got.text());
    let got = client
        .get_with(&node.proxy_url("/test/pets"), &[("x-api-key", KEY)])
        .await
        .unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["path"], "/petstore/pets");
    // The plan's throttle (200/s, burst 200) and the method's (100/s, burst 100).
    let policy: Vec<&str> = got
        .headers
        .get_all("ratelimit-policy")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let policy = policy.join(", ");
    assert!(
        policy.contains(";q=200;w=1") && policy.contains(";q=100;w=1"),
        "{policy}"
    );
    // The deployment's own stage has no usage plan, and its method needs no key.
    let got = client
        .get(&node.proxy_url("/tempstage/pets"))
        .await
        .unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["path"], "/petstore/pets");
    assert_eq!(
        client.get(&node.proxy_url("/pets")).await.unwrap().status,
        404
    );
}
