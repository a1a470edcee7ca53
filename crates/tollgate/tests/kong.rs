//! `tollgate import kong` and `tollgate export --format kong` through the binary: every Kong
//! file in the shared fixtures with the counts a user expects from it, a served import
//! (authentication, a rate limit, `preserve_host`), round trips through Kong, and bad input.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kong")
        .join(name)
}

struct Run {
    code: i32,
    stderr: String,
    yaml: String,
}

impl Run {
    /// The `PREFIX FILE: …` line of standard error, after the colon.
    fn line(&self, prefix: &str) -> &str {
        self.stderr
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_once(": "))
            .map_or("", |(_, rest)| rest)
    }

    fn unsupported(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("unsupported: "))
            .map(|l| l.split_once(": ").map_or(l, |(at, _)| at))
            .collect()
    }

    fn doc(&self) -> tollgate_model::Document {
        tollgate_model::parse_document(&self.yaml).unwrap().0
    }
}

fn run(args: &[&str], file: &Path) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.yaml");
    let o = Command::new(bin())
        .args(args)
        .arg(file)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let yaml = std::fs::read_to_string(&out).unwrap_or_default();
    if !yaml.is_empty() && args[0] == "import" {
        // What import writes, validate accepts.
        let v = Command::new(bin())
            .args(["validate", "-f"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    }
    Run {
        code: o.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&o.stderr).to_string(),
        yaml,
    }
}

fn import(name: &str, extra: &[&str]) -> Run {
    let mut args = vec!["import", "kong"];
    args.extend_from_slice(extra);
    run(&args, &fixture(name))
}

#[test]
fn entities_with_tags() {
    let r = import("deck-dump-001-entities-with-tags.yaml", &[]);
    // The HMAC credential and the JWT secret (no jwt plugin uses it) cannot be carried.
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        r.unsupported(),
        [
            "consumers[0].hmacauth_credentials[0]",
            "consumers[0].jwt_secrets[0]"
        ]
    );
    assert!(r.yaml.is_empty(), "a partial import writes nothing");
    let r = import(
        "deck-dump-001-entities-with-tags.yaml",
        &["--allow-unsupported"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.line("read "),
        "3 services, 3 routes, 1 upstream, 3 targets, 1 consumer, 3 credentials, 1 plugin, 1 certificate"
    );
    assert_eq!(
        r.line("imported "),
        "4 upstreams, 3 apis, 3 versions, 3 routes, 0 policies, 1 certificate, 1 developer, 1 app, 1 credential; 2 element(s) not imported"
    );
    let d = r.doc();
    assert_eq!(d.apps[0].groups, ["foo-group"]);
    assert_eq!(d.certificates[0].snis.len(), 3);
    assert!(
        r.stderr
            .contains("note: plugins[0]: Tollgate always exports Prometheus metrics"),
        "{}",
        r.stderr
    );
}

#[test]
fn consumers_via_names() {
    let r = import(
        "deck-sync-041-consumers-via-names.yaml",
        &["--allow-unsupported"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.line("read "),
        "1 service, 2 routes, 0 upstreams, 0 targets, 2 consumers, 0 credentials, 2 plugins"
    );
    assert_eq!(
        r.line("imported "),
        "1 upstream, 1 api, 1 version, 2 routes, 0 policies, 2 developers, 2 apps, 0 credentials; 2 element(s) not imported"
    );
    // Rate limits for one consumer each: Tollgate has no per-app policies.
    assert_eq!(
        r.unsupported(),
        ["services[0].routes[0].plugins[0]", "routes[0].plugins[0]"]
    );
    let routes: Vec<String> = r.doc().apis[0].versions[0]
        .routes
        .iter()
        .map(|x| x.path.clone())
        .collect();
    assert_eq!(routes, ["/r1", "/r2"]);
}

#[test]
fn konnect_workspace_with_many_entities() {
    let r = import(
        "deck-sync-050-konnect-workspace-multiple-entities.yaml",
        &["--allow-unsupported"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.line("read "),
        "1 service, 2 routes, 1 upstream, 1 target, 1 consumer, 3 credentials, 1 plugin, 1 certificate"
    );
    assert_eq!(
        r.line("imported "),
        "2 upstreams, 1 api, 1 version, 0 routes, 0 policies, 1 developer, 1 app, 1 credential; 11 element(s) not imported"
    );
    for place in [
        "vaults",
        "consumer_groups",
        "keys",
        "key_sets",
        "routes[0]",
        "routes[1]",
        "plugins[0]",
        "certificates[0]",
        "services[0].path",
    ] {
        assert!(r.unsupported().contains(&place), "{place}: {}", r.stderr);
    }
    assert!(r.stderr.contains("a key of 12 characters"), "{}", r.stderr);
    assert_eq!(r.doc().apps[0].basic[0].username, "basic_user");
}

#[test]
fn kong_ee_validation_fixture() {
    let r = import("deck-validate-kong-ee.yaml", &["--allow-unsupported"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.line("read "),
        "1 service, 1 route, 0 upstreams, 0 targets, 2 consumers, 2 credentials, 2 plugins"
    );
    assert_eq!(
        r.line("imported "),
        "1 upstream, 1 api, 1 version, 1 route, 2 policies, 2 developers, 2 apps, 1 credential; 2 element(s) not imported"
    );
    // bob's key is too short for Tollgate; the route keeps the client's Host but has no host.
    assert_eq!(
        r.unsupported(),
        [
            "consumers[1].keyauth_credentials[0]",
            "services[0].routes[0].preserve_host"
        ]
    );
    let d = r.doc();
    assert_eq!(d.policies[0].kind(), "key_auth");
    assert_eq!(d.apis[0].versions[0].policies[0].kind(), "rate_limit");
}

#[test]
fn the_burst_fixture_imports_quickly() {
    let started = Instant::now();
    let r = import("kong-spec-fixtures-burst.yml", &["--allow-unsupported"]);
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.line("read "),
        "236 services, 286 routes, 236 upstreams, 237 targets, 0 consumers, 0 credentials, 95 plugins"
    );
    assert_eq!(
        r.line("imported "),
        "236 upstreams, 236 apis, 236 versions, 286 routes, 380 policies; 44 element(s) not imported"
    );
    assert_eq!(r.unsupported().len(), 44);
    assert!(r.unsupported().iter().all(|p| p.ends_with(".path")));
    // Notes come once each, with the count of places.
    assert!(
        r.stderr
            .contains("note: services[0].routes[0].preserve_host (and 285 more)"),
        "{}",
        r.stderr
    );
    // A debug build, with the YAML written; the release build takes milliseconds.
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn each_fixture_goes_to_kong_and_back() {
    for name in [
        "deck-dump-001-entities-with-tags.yaml",
        "deck-sync-041-consumers-via-names.yaml",
        "deck-sync-050-konnect-workspace-multiple-entities.yaml",
        "deck-validate-kong-ee.yaml",
        "kong-spec-fixtures-burst.yml",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let first = import(name, &["--allow-unsupported"]);
        assert_eq!(first.code, 0, "{name}: {}", first.stderr);
        let tollgate = dir.path().join("tollgate.yaml");
        std::fs::write(&tollgate, &first.yaml).unwrap();
        // Offline: from the file, no server.
        let kong = run(&["export", "--format", "kong", "--file"], &tollgate);
        assert_eq!(kong.code, 0, "{name}: {}", kong.stderr);
        assert!(
            kong.yaml.starts_with("_format_version: '3.0'"),
            "{}",
            kong.yaml
        );
        let kong_file = dir.path().join("kong.yaml");
        std::fs::write(&kong_file, &kong.yaml).unwrap();
        // Everything imported comes back, with nothing left unsupported.
        let again = run(&["import", "kong"], &kong_file);
        assert_eq!(again.code, 0, "{name}: {}", again.stderr);
        assert_eq!(first.doc(), again.doc(), "{name}");
    }
}

#[test]
fn the_traffic_example_is_exported_with_what_kong_lacks_named() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/traffic.yaml");
    let r = run(&["export", "--format", "kong", "--file"], &example);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("unsupported: apis[0].policies[4]: `circuit_breaker`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("not exported: 5 element(s) above have no Kong equivalent"),
        "{}",
        r.stderr
    );
    assert!(r.yaml.is_empty());
    let r = run(
        &[
            "export",
            "--format",
            "kong",
            "--allow-unsupported",
            "--file",
        ],
        &example,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("exported "), "{}", r.stderr);
    assert!(
        r.yaml.contains("tollgate-owner:dev@acme.test"),
        "{}",
        r.yaml
    );
    // Unknown formats are refused by name.
    let r = run(&["export", "--format", "toml", "--file"], &example);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("use yaml, json or kong"), "{}", r.stderr);
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (text, says) in [
        (
            "openapi: 3.0.0\ninfo: {title: x, version: '1'}\n",
            "`_format_version` is missing (this looks like an OpenAPI document: use `tollgate import openapi`)",
        ),
        (
            "services: []\n",
            "`_format_version` is missing (decK files start with `_format_version: \"3.0\"`)",
        ),
        (
            "_format_version: \"4.0\"\nservices: []\n",
            "`_format_version` \"4.0\" is not supported: Kong declarative configuration 1.1, 2.x and 3.0 is",
        ),
        ("[1, 2]\n", "not a Kong declarative configuration"),
    ] {
        let f = dir.path().join("bad.yaml");
        std::fs::write(&f, text).unwrap();
        let r = run(&["import", "kong"], &f);
        assert_eq!(r.code, 2, "{text}");
        assert!(r.stderr.contains(says), "{text}: {}", r.stderr);
        assert!(
            r.stderr.contains("bad.yaml: "),
            "the file is named: {}",
            r.stderr
        );
        assert!(r.yaml.is_empty());
    }
}

#[tokio::test]
async fn an_imported_kong_file_is_served() {
    let m = MockUpstream::start("orders").await;
    let kong = format!(
        r#"_format_version: "3.0"
services:
  - name: orders
    url: {}
    routes:
      - name: orders
        paths: [/orders]
        hosts: [api.example.test]
        preserve_host: true
      - name: item
        paths: ["~/items/(?<id>[^/]+)$"]
        strip_path: false
    plugins:
      - name: key-auth
        config: {{ key_names: [apikey], hide_credentials: true }}
      - name: rate-limiting
        config: {{ minute: 4, policy: local }}
consumers:
  - username: alice
    keyauth_credentials:
      - key: alice-key-0123456789
"#,
        m.url()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kong.yaml");
    std::fs::write(&file, kong).unwrap();
    let r = run(&["import", "kong"], &file);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.line("imported "),
        "1 upstream, 1 api, 1 version, 2 routes, 3 policies, 1 developer, 1 app, 1 credential"
    );
    let node = start(&r.yaml).await;
    let client = Client::new();
    let host = [("host", "api.example.test")];

    // No key: 401, nothing reaches the upstream.
    let got = client
        .get_with(&node.proxy_url("/orders/42"), &host)
        .await
        .unwrap();
    assert_eq!(got.status, 401, "{}", got.text());
    let got = client
        .get_with(
            &node.proxy_url("/orders/42"),
            &[host[0], ("apikey", "wrong-key-0123456789")],
        )
        .await
        .unwrap();
    assert_eq!(got.status, 401);
    assert_eq!(m.hits(), 0);

    // alice's key: proxied, the route's prefix stripped (Kong's default), the client's Host kept,
    // the key removed.
    let got = client
        .get_with(
            &node.proxy_url("/orders/42"),
            &[host[0], ("apikey", "alice-key-0123456789")],
        )
        .await
        .unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    let echo = got.json();
    assert_eq!(echo["path"], "/42");
    assert_eq!(echo["headers"]["host"], "api.example.test");
    assert!(echo["headers"].get("apikey").is_none(), "{echo}");
    // Kong reads keys from the query too (key_in_query); another host is not routed.
    let got = client
        .get(&node.proxy_url("/items/7?apikey=alice-key-0123456789"))
        .await
        .unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["path"], "/items/7");
    let got = client
        .get_with(
            &node.proxy_url("/orders/42"),
            &[
                ("host", "other.example.test"),
                ("apikey", "alice-key-0123456789"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(got.status, 404);
    // The regex route is exact: a deeper path is not routed.
    let got = client
        .get(&node.proxy_url("/items/7/x?apikey=alice-key-0123456789"))
        .await
        .unwrap();
    assert_eq!(got.status, 404);

    // The service's limit: 4 a minute for alice (two used above).
    for _ in 0..2 {
        let got = client
            .get_with(
                &node.proxy_url("/orders/1"),
                &[host[0], ("apikey", "alice-key-0123456789")],
            )
            .await
            .unwrap();
        assert_eq!(got.status, 200, "{}", got.text());
    }
    let got = client
        .get_with(
            &node.proxy_url("/orders/1"),
            &[host[0], ("apikey", "alice-key-0123456789")],
        )
        .await
        .unwrap();
    assert_eq!(got.status, 429, "{}", got.text());
    assert_eq!(m.hits(), 4);

    // The live configuration back to Kong: the key is stored hashed, which Kong cannot use.
    let (code, _, stderr) = cli(&node, &["export", "--format", "kong"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("unsupported: apps[0].keys[0]: the key is stored hashed"),
        "{stderr}"
    );
    let (code, yaml, stderr) = cli(
        &node,
        &["export", "--format", "kong", "--allow-unsupported"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(yaml.contains("preserve_host: true"), "{yaml}");
    assert!(yaml.contains("~/items/(?<id>[^/]+)$"), "{yaml}");
    std::fs::write(&file, &yaml).unwrap();
    let again = run(&["import", "kong"], &file);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let (before, after) = (r.doc(), again.doc());
    assert_eq!(before.apis, after.apis);
    assert_eq!(before.upstreams, after.upstreams);
}
