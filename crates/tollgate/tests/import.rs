//! `tollgate import openapi` over every OpenAPI file in the shared fixtures: the counts a
//! user expects from each, every unsupported element named (and a partial import refused
//! unless accepted), the output valid, and an imported API served through a node.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi")
        .join(name)
}

struct Run {
    code: i32,
    stderr: String,
    yaml: String,
    doc: serde_json::Value,
}

fn import(name: &str, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.yaml");
    let o = Command::new(bin())
        .args(["import", "openapi"])
        .arg(fixture(name))
        .arg("-o")
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    let yaml = std::fs::read_to_string(&out).unwrap_or_default();
    let doc = if yaml.is_empty() {
        serde_json::Value::Null
    } else {
        yaml_serde::from_str(&yaml).unwrap()
    };
    if !yaml.is_empty() {
        // What import writes, validate accepts.
        let v = Command::new(bin())
            .args(["validate", "-f"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&v.stderr)
        );
    }
    Run {
        code: o.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&o.stderr).to_string(),
        yaml,
        doc,
    }
}

fn routes(doc: &serde_json::Value) -> Vec<(String, String, String)> {
    doc["apis"][0]["versions"][0]["routes"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| {
                    (
                        r["methods"][0].as_str().unwrap().to_string(),
                        r["path"].as_str().unwrap().to_string(),
                        r["name"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn petstore_imports_whole() {
    let r = import("oai-v3.0-petstore.yaml", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("1 upstream, 1 api, 1 version, 3 routes, 0 policies"),
        "{}",
        r.stderr
    );
    assert_eq!(r.doc["apis"][0]["name"], "swagger-petstore");
    assert_eq!(r.doc["apis"][0]["versions"][0]["version"], "1.0.0");
    assert_eq!(
        r.doc["upstreams"][0]["targets"][0]["url"],
        "http://petstore.swagger.io"
    );
    assert_eq!(
        routes(&r.doc),
        [
            ("GET".into(), "=/v1/pets".into(), "listPets".into()),
            ("POST".into(), "=/v1/pets".into(), "createPets".into()),
            (
                "GET".into(),
                "=/v1/pets/{petId}".into(),
                "showPetById".into()
            ),
        ]
    );
    // The document is kept for the portal and validation.
    assert!(
        r.doc["apis"][0]["versions"][0]["spec"]
            .as_str()
            .unwrap()
            .contains("showPetById")
    );
    assert!(
        r.stderr
            .contains("note: servers[0]: the upstream is plain HTTP"),
        "{}",
        r.stderr
    );
}

#[test]
fn expanded_petstore_uspto_and_uber() {
    let r = import("oai-v3.0-petstore-expanded.yaml", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(routes(&r.doc).len(), 4);
    assert!(
        routes(&r.doc)
            .iter()
            .all(|(_, p, _)| p.starts_with("=/api/pets"))
    );

    // Server variables resolve to their defaults; the server's path prefixes the routes.
    let r = import("oai-v3.0-uspto.yaml", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.doc["upstreams"][0]["targets"][0]["url"],
        "https://developer.uspto.gov"
    );
    assert_eq!(
        routes(&r.doc),
        [
            ("GET".into(), "=/ds-api".into(), "list-data-sets".into()),
            (
                "GET".into(),
                "=/ds-api/{dataset}/{version}/fields".into(),
                "list-searchable-fields".into()
            ),
            (
                "POST".into(),
                "=/ds-api/{dataset}/{version}/records".into(),
                "perform-search".into()
            ),
        ]
    );

    // Swagger 2.0: host, basePath and schemes; the query API key guards only /products.
    let r = import("oai-v2.0-uber.yaml", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.doc["upstreams"][0]["targets"][0]["url"],
        "https://api.uber.com"
    );
    let versions = &r.doc["apis"][0]["versions"][0];
    let all = versions["routes"].as_array().unwrap();
    assert_eq!(all.len(), 5);
    let products = all.iter().find(|x| x["path"] == "=/v1/products").unwrap();
    assert_eq!(
        products["policies"],
        serde_json::json!([{ "key_auth": { "query": "server_token" } }])
    );
    assert_eq!(
        all.iter().filter(|x| x.get("policies").is_some()).count(),
        1
    );
    assert!(r.stderr.contains("1 policy"), "{}", r.stderr);
}

#[test]
fn documents_without_servers_need_an_upstream_and_webhooks_are_named() {
    let r = import("oai-v3.0-link-example.yaml", &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("pass the upstream with --upstream URL"),
        "{}",
        r.stderr
    );
    assert!(r.yaml.is_empty());
    let r = import(
        "oai-v3.0-link-example.yaml",
        &["--upstream", "https://links.example.com"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(routes(&r.doc).len(), 6);

    // OpenAPI 3.1 with webhooks only: refused naming the webhook, unless accepted.
    let r = import(
        "oai-v3.1-webhook-example.yaml",
        &["--upstream", "https://pets.example.com"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("unsupported: webhooks.newPet"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("not imported: 1 element(s)"),
        "{}",
        r.stderr
    );
    assert!(r.yaml.is_empty(), "nothing is written");
    let r = import(
        "oai-v3.1-webhook-example.yaml",
        &[
            "--upstream",
            "https://pets.example.com",
            "--allow-unsupported",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(routes(&r.doc).is_empty());
}

#[test]
fn the_large_openai_document_imports_quickly_and_stays_closed() {
    let started = Instant::now();
    let r = import("openai-openapi-2024-10-17.yaml", &[]);
    let took = started.elapsed();
    // Bearer tokens need key material the document does not give: named once, refused.
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stderr.matches("unsupported: ").count(), 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("unsupported: components.securitySchemes.ApiKeyAuth: HTTP `bearer`"),
        "{}",
        r.stderr
    );
    let r = import("openai-openapi-2024-10-17.yaml", &["--allow-unsupported"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(routes(&r.doc).len(), 94);
    assert_eq!(
        r.doc["upstreams"][0]["targets"][0]["url"],
        "https://api.openai.com"
    );
    // Its operations required a token no policy checks: imported as a draft, not served.
    assert_eq!(r.doc["apis"][0]["versions"][0]["status"], "draft");
    assert!(r.stderr.contains("imported as a draft"), "{}", r.stderr);
    // A debug build, with validation and the YAML written; the release build is far faster.
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.yaml");
    std::fs::write(&f, "swagger: \"1.2\"\n").unwrap();
    let o = Command::new(bin())
        .args(["import", "openapi"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("swagger \"1.2\" is not supported"));
    let o = Command::new(bin())
        .args(["import", "kong"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    // A Swagger file is not Kong configuration: the error says so, and what to use.
    assert!(String::from_utf8_lossy(&o.stderr).contains("`_format_version` is missing"));
}

#[tokio::test]
async fn an_imported_api_is_served() {
    let m = MockUpstream::start("pets").await;
    let r = import("oai-v3.0-petstore.yaml", &["--upstream", &m.url()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let node = start(&r.yaml).await;
    let client = Client::new();
    let got = client.get(&node.proxy_url("/v1/pets/42")).await.unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["path"], "/v1/pets/42");
    // Only the documented operations are routed.
    let got = client
        .get(&node.proxy_url("/v1/pets/42/toys"))
        .await
        .unwrap();
    assert_eq!(got.status, 404);
    let got = client
        .request("DELETE", &node.proxy_url("/v1/pets/42"), &[], "")
        .await
        .unwrap();
    assert_eq!(got.status, 405);
}
