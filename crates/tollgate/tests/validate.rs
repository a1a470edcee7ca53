//! The `validate` policy through the binary: requests checked against the version's
//! OpenAPI document (imported from the fixtures), every violation listed in one `400`, the
//! upstream never reached by a refused request, and configurations that cannot be checked
//! refused whole.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Imports an OpenAPI fixture against `upstream` and puts `validate` (with `options`) on
/// its version.
fn imported_with_validate(fixture: &str, upstream: &str, options: serde_json::Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.yaml");
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi")
        .join(fixture);
    let o = Command::new(bin())
        .args(["import", "openapi"])
        .arg(file)
        .args(["--upstream", upstream, "--allow-unsupported", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut doc: serde_json::Value =
        yaml_serde::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let version = &mut doc["apis"][0]["versions"][0];
    assert!(version["spec"].is_string(), "the import keeps the document");
    version["policies"] = serde_json::json!([{ "validate": options }]);
    // The OpenAI document's bearer auth has no mapping, so its import is a draft.
    version["status"] = "published".into();
    yaml_serde::to_string(&doc).unwrap()
}

fn violations(reply: &Reply) -> Vec<(String, String)> {
    assert_eq!(reply.status, 400, "{}", reply.text());
    let body = reply.json();
    assert_eq!(
        body["type"], "https://tollgate.dev/problems/request-invalid",
        "{body}"
    );
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["in"].as_str().unwrap().to_string(),
                e["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn requests_are_checked_against_the_petstore_document() {
    let m = MockUpstream::start("pets").await;
    let yaml = imported_with_validate(
        "oai-v3.0-petstore-expanded.yaml",
        &m.url(),
        serde_json::json!({}),
    );
    let node = start(&yaml).await;
    let c = Client::new();
    let json = [("content-type", "application/json")];

    // Valid requests pass through untouched.
    let ok = c
        .get(&node.proxy_url("/api/pets?limit=10&tags=cat&tags=dog"))
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
    let ok = c
        .request(
            "POST",
            &node.proxy_url("/api/pets"),
            &json,
            r#"{"name":"Rex","tag":"dog"}"#,
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["body"], r#"{"name":"Rex","tag":"dog"}"#);
    let passed = m.traffic_hits();

    // Parameters: a query value that is no int32, a path id that is no integer.
    let bad = c.get(&node.proxy_url("/api/pets?limit=ten")).await.unwrap();
    assert_eq!(violations(&bad), [("query".into(), "limit".into())]);
    assert!(bad.json()["detail"].as_str().unwrap().contains("limit"));
    let bad = c.get(&node.proxy_url("/api/pets/abc")).await.unwrap();
    assert_eq!(violations(&bad), [("path".into(), "id".into())]);

    // A body with two faults and a bad parameter: all three in one answer.
    let bad = c
        .request(
            "POST",
            &node.proxy_url("/api/pets?limit=x"),
            &json,
            r#"{"tag":5}"#,
        )
        .await
        .unwrap();
    let mut found = violations(&bad);
    found.sort();
    assert_eq!(
        found,
        [
            ("body".to_string(), String::new()),
            ("body".to_string(), "/tag".to_string()),
        ],
        "limit is not a parameter of POST /pets; the body misses `name` and `tag` is no string: {}",
        bad.text()
    );
    let bad = c
        .request("POST", &node.proxy_url("/api/pets"), &json, "{not json")
        .await
        .unwrap();
    assert_eq!(violations(&bad), [("body".into(), String::new())]);
    assert!(bad.text().contains("not valid JSON"), "{}", bad.text());
    let bad = c
        .request(
            "POST",
            &node.proxy_url("/api/pets"),
            &[("content-type", "text/plain")],
            "Rex",
        )
        .await
        .unwrap();
    assert_eq!(
        violations(&bad),
        [("request".into(), "content-type".into())]
    );
    let bad = c
        .request("POST", &node.proxy_url("/api/pets"), &json, "")
        .await
        .unwrap();
    assert!(
        bad.text().contains("request body is required"),
        "{}",
        bad.text()
    );

    assert_eq!(
        m.traffic_hits(),
        passed,
        "no refused request reached the upstream"
    );
}

#[tokio::test]
async fn the_large_openai_document_validates_bodies_quickly() {
    let m = MockUpstream::start("openai").await;
    let yaml = imported_with_validate(
        "openai-openapi-2024-10-17.yaml",
        &m.url(),
        serde_json::json!({ "max_body": "64KB" }),
    );
    let started = Instant::now();
    let node = start(&yaml).await;
    eprintln!(
        "a node with the 768 KB document under validate started in {:?}",
        started.elapsed()
    );
    let c = Client::new();
    let json = [("content-type", "application/json")];
    let ok = c
        .request(
            "POST",
            &node.proxy_url("/v1/chat/completions"),
            &json,
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}]}"#,
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
    let bad = c
        .request(
            "POST",
            &node.proxy_url("/v1/chat/completions"),
            &json,
            r#"{"model":"gpt-4o","temperature":7}"#,
        )
        .await
        .unwrap();
    let found = violations(&bad);
    assert!(
        found.contains(&("body".into(), "/temperature".into())),
        "{found:?}"
    );
    assert!(found.contains(&("body".into(), String::new())), "{found:?}");
    // Larger than the policy reads: refused before the upstream, as too large.
    let big = format!(
        r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(70_000)
    );
    let r = c
        .request("POST", &node.proxy_url("/v1/chat/completions"), &json, big)
        .await
        .unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(m.traffic_hits(), 1);
}

#[tokio::test]
async fn a_configuration_that_cannot_be_checked_is_refused_whole() {
    let m = MockUpstream::start("svc").await;
    let plain = config(
        &[upstream("svc", &[m.url()], "")],
        &[api("orders", "svc", &["{ path: /orders }"])],
    );
    let node = start(&plain).await;
    // No document to check against.
    let without_spec = plain.replace(
        "        routes:\n",
        "        policies: [{ validate: {} }]\n        routes:\n",
    );
    let r = admin_put_yaml(&node, &without_spec).await.unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("versions[0].spec"), "{}", r.text());
    assert!(r.text().contains("no OpenAPI document"), "{}", r.text());
    // A document with a reference to another file.
    let external = plain.replace(
        "        routes:\n",
        "        policies: [{ validate: {} }]\n        spec: |\n          openapi: 3.0.0\n          info: { title: o, version: '1' }\n          paths:\n            /orders:\n              post:\n                requestBody:\n                  content:\n                    application/json:\n                      schema: { $ref: 'orders.yaml#/Order' }\n                responses: { '200': { description: ok } }\n        routes:\n",
    );
    let r = admin_put_yaml(&node, &external).await.unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("another file"), "{}", r.text());
    // The running configuration is untouched.
    let ok = Client::new()
        .request("POST", &node.proxy_url("/orders"), &[], "anything")
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
    // `tollgate validate` names the same problem without a server.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, &without_spec).unwrap();
    let o = Command::new(bin())
        .args(["validate", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no OpenAPI document"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
