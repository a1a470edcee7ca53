//! The Kong importer and exporter: each shared fixture with the counts a user expects from
//! it, the mappings one by one, and round trips (Kong → Tollgate → Kong → Tollgate, and
//! Tollgate → Kong → Tollgate).

use serde_json::{Value, json};
use tollgate_model::Document;

use super::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/kong")
            .join(name),
    )
    .unwrap()
}

fn example(name: &str) -> Document {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(name),
    )
    .unwrap();
    tollgate_model::parse_document(&text).unwrap().0
}

fn places(r: &Report) -> Vec<&str> {
    r.unsupported.iter().map(|f| f.at.as_str()).collect()
}

fn doc(i: &Imported) -> Document {
    serde_json::from_value(i.document.clone()).unwrap()
}

fn read(r: &Report) -> Vec<(&str, usize)> {
    r.read.iter().map(|(k, n)| (*k, *n)).collect()
}

/// Kong → Tollgate → Kong → Tollgate gives the same Tollgate configuration.
fn round_trip(text: &str) -> (Document, Value, Report) {
    let first = import(text).unwrap();
    let one = doc(&first);
    let (kong, report) = export(&one).unwrap();
    let again = import(&to_yaml(&kong)).unwrap_or_else(|e| panic!("{e}\n{}", to_yaml(&kong)));
    assert_eq!(
        one,
        doc(&again),
        "{}\n---\n{}",
        first.to_yaml(),
        again.to_yaml()
    );
    (one, kong, report)
}

#[test]
fn entities_with_tags() {
    let out = import(&fixture("deck-dump-001-entities-with-tags.yaml")).unwrap();
    let r = &out.report;
    assert_eq!(
        read(r),
        [
            ("services", 3),
            ("routes", 3),
            ("upstreams", 1),
            ("targets", 3),
            ("consumers", 1),
            ("credentials", 3),
            ("plugins", 1),
            ("certificates", 1)
        ]
    );
    assert_eq!(
        r.summary(),
        "4 upstreams, 3 apis, 3 versions, 3 routes, 0 policies, 1 certificate, 1 developer, 1 app, 1 credential"
    );
    // The HMAC credential has no Tollgate equivalent; the JWT secret has no jwt plugin to go to.
    assert_eq!(
        places(r),
        [
            "consumers[0].hmacauth_credentials[0]",
            "consumers[0].jwt_secrets[0]"
        ]
    );
    let d = doc(&out);
    assert_eq!(
        d.apis.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["svc1", "svc2", "svc3"]
    );
    let r3 = &d.apis[2].versions[0].routes[0];
    assert_eq!(
        (r3.path.as_str(), r3.methods.as_slice(), r3.strip_prefix),
        ("/r3", &["GET".to_string()][..], true)
    );
    assert_eq!(d.upstreams[0].targets[0].url, "http://mockbin.org");
    assert_eq!(d.upstreams[0].timeouts.connect.as_millis(), 60_000);
    assert_eq!(d.upstreams[0].retries, 5);
    // The unused upstream is kept with its three targets; its health checks are off in Kong.
    let up = d.upstreams.iter().find(|u| u.name == "upstream1").unwrap();
    assert_eq!(up.targets.len(), 3);
    assert_eq!(up.health, Default::default());
    let harry = &d.apps[0];
    assert_eq!(
        (harry.name.as_str(), harry.groups.as_slice()),
        ("harry", &["foo-group".to_string()][..])
    );
    assert_eq!(
        harry.keys[0].secret.as_deref(),
        Some("iwb6Djkk4HhUlOCmLilDIKh6nZrn90ts")
    );
    assert_eq!(d.developers[0].email, "harry@kong.invalid");
    assert_eq!(
        d.certificates[0].snis,
        [
            "demo1.example.com",
            "demo2.example.com",
            "demo3.example.com"
        ]
    );
    // Prometheus is built in; tags are named once.
    assert!(
        r.notes
            .iter()
            .any(|n| n.at == "plugins[0]" && n.message.contains("/metrics"))
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.message.contains("tags are not kept") && n.at.contains("more)"))
    );
}

#[test]
fn consumers_via_names() {
    let out = import(&fixture("deck-sync-041-consumers-via-names.yaml")).unwrap();
    let r = &out.report;
    assert_eq!(
        read(r),
        [
            ("services", 1),
            ("routes", 2),
            ("upstreams", 0),
            ("targets", 0),
            ("consumers", 2),
            ("credentials", 0),
            ("plugins", 2)
        ]
    );
    assert_eq!(
        r.summary(),
        "1 upstream, 1 api, 1 version, 2 routes, 0 policies, 2 developers, 2 apps, 0 credentials"
    );
    // Both rate limits apply to one consumer only: Tollgate has no per-app policies.
    assert_eq!(
        places(r),
        ["services[0].routes[0].plugins[0]", "routes[0].plugins[0]"]
    );
    assert!(
        r.unsupported[0].message.contains("consumer `alice`"),
        "{}",
        r.unsupported[0]
    );
    let d = doc(&out);
    // `~/r1` and `~/r2`: regex paths that are plain prefixes; the top-level route joins its service.
    let routes: Vec<_> = d.apis[0].versions[0]
        .routes
        .iter()
        .map(|r| (r.name.as_deref().unwrap(), r.path.as_str()))
        .collect();
    assert_eq!(
        routes,
        [("example-route-1", "/r1"), ("example-route-2", "/r2")]
    );
    assert_eq!(d.upstreams[0].targets[0].url, "http://localhost:3200");
    assert_eq!(
        d.apps.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["alice", "bob"]
    );
}

#[test]
fn konnect_workspace_with_many_entities() {
    let out = import(&fixture(
        "deck-sync-050-konnect-workspace-multiple-entities.yaml",
    ))
    .unwrap();
    let r = &out.report;
    assert_eq!(
        read(r),
        [
            ("services", 1),
            ("routes", 2),
            ("upstreams", 1),
            ("targets", 1),
            ("consumers", 1),
            ("credentials", 3),
            ("plugins", 1),
            ("certificates", 1)
        ]
    );
    assert_eq!(
        r.summary(),
        "2 upstreams, 1 api, 1 version, 0 routes, 0 policies, 1 developer, 1 app, 1 credential"
    );
    let mut p = places(r);
    p.sort();
    assert_eq!(
        p,
        [
            "certificates[0]",
            "consumer_groups",
            "consumers[0].jwt_secrets[0]",
            "consumers[0].keyauth_credentials[0]",
            "key_sets",
            "keys",
            "plugins[0]",
            "routes[0]",
            "routes[1]",
            "services[0].path",
            "vaults",
        ]
    );
    assert!(
        r.unsupported
            .iter()
            .any(|f| f.at == "routes[0]" && f.message.contains("without a service"))
    );
    assert!(
        r.unsupported
            .iter()
            .any(|f| f.at == "consumers[0].keyauth_credentials[0]"
                && f.message.contains("12 characters"))
    );
    assert!(
        r.unsupported
            .iter()
            .any(|f| f.at == "certificates[0]" && f.message.contains("vault"))
    );
    assert!(r.notes.iter().any(|n| n.at.starts_with("_workspace")));
    let d = doc(&out);
    let app = &d.apps[0];
    assert_eq!(app.name, "test_consumer_3x");
    assert_eq!(app.groups, ["silver"]);
    assert_eq!(app.basic[0].username, "basic_user");
    assert_eq!(app.attributes["custom_id"], "test_consumer_3x_custom_test");
    assert_eq!(d.upstreams[0].targets[0].url, "http://httpbin.org");
}

#[test]
fn kong_ee_validation_fixture() {
    let out = import(&fixture("deck-validate-kong-ee.yaml")).unwrap();
    let r = &out.report;
    assert_eq!(
        read(r),
        [
            ("services", 1),
            ("routes", 1),
            ("upstreams", 0),
            ("targets", 0),
            ("consumers", 2),
            ("credentials", 2),
            ("plugins", 2)
        ]
    );
    assert_eq!(
        r.summary(),
        "1 upstream, 1 api, 1 version, 1 route, 2 policies, 2 developers, 2 apps, 1 credential"
    );
    assert_eq!(
        places(r),
        [
            "consumers[1].keyauth_credentials[0]",
            "services[0].routes[0].preserve_host"
        ]
    );
    let d = doc(&out);
    assert_eq!(
        serde_json::to_value(&d.policies).unwrap(),
        json!([{ "key_auth": { "header": "apikey", "query": "apikey" } }])
    );
    assert_eq!(
        serde_json::to_value(&d.apis[0].versions[0].policies).unwrap(),
        json!([{ "rate_limit": { "limit": 5, "window": "1m" } }])
    );
    let route = &d.apis[0].versions[0].routes[0];
    assert_eq!((route.path.as_str(), route.strip_prefix), ("/mock", false));
    assert_eq!(
        d.apps[0].keys[0].secret.as_deref(),
        Some("alice-secret-key")
    );
    assert!(d.apps[1].keys.is_empty());
}

#[test]
fn the_burst_fixture_imports_fast() {
    let text = fixture("kong-spec-fixtures-burst.yml");
    let started = std::time::Instant::now();
    let out = import(&text).unwrap();
    let took = started.elapsed();
    eprintln!(
        "the burst fixture ({} bytes) imported in {took:?}",
        text.len()
    );
    let r = &out.report;
    assert_eq!(
        read(r),
        [
            ("services", 236),
            ("routes", 286),
            ("upstreams", 236),
            ("targets", 237),
            ("consumers", 0),
            ("credentials", 0),
            ("plugins", 95)
        ]
    );
    // 94 ip_restrict policies and one Host transform per route (`preserve_host`).
    assert_eq!(
        r.summary(),
        "236 upstreams, 236 apis, 236 versions, 286 routes, 380 policies"
    );
    // The 44 services with path /static/admin: Tollgate adds no path prefix.
    assert_eq!(r.unsupported.len(), 44);
    assert!(
        r.unsupported
            .iter()
            .all(|f| f.at.ends_with(".path") && f.message.contains("/static/admin"))
    );
    let d = doc(&out);
    let two = d.upstreams.iter().filter(|u| u.targets.len() == 2).count();
    assert_eq!(two, 1);
    let first = &d.apis[0].versions[0].routes[0];
    assert_eq!(first.hosts, ["4test-any.example.test"]);
    assert_eq!(
        serde_json::to_value(&first.policies).unwrap(),
        json!([{ "request_transform": { "headers": { "set": { "host": "4test-any.example.test" } } } }])
    );
    let admin = &d.apis[2].versions[0].routes[0];
    assert_eq!(admin.methods, ["POST", "GET", "PATCH", "PUT", "DELETE"]);
    assert_eq!(
        admin.policies[0],
        serde_json::from_value(json!({ "ip_restrict": { "allow": ["0.0.0.0/0"] } })).unwrap()
    );
    // A debug build; the release build takes a few milliseconds.
    assert!(took < std::time::Duration::from_secs(3), "{took:?}");
}

#[test]
fn every_fixture_goes_to_kong_and_back_unchanged() {
    for f in [
        "deck-dump-001-entities-with-tags.yaml",
        "deck-sync-041-consumers-via-names.yaml",
        "deck-sync-050-konnect-workspace-multiple-entities.yaml",
        "deck-validate-kong-ee.yaml",
        "kong-spec-fixtures-burst.yml",
    ] {
        let (_, kong, report) = round_trip(&fixture(f));
        // What came from Kong goes back whole.
        assert!(
            report.unsupported.is_empty(),
            "{f}: {:?}",
            report.unsupported
        );
        assert_eq!(kong["_format_version"], "3.0");
    }
}

#[test]
fn the_burst_fixture_keeps_its_shape_in_kong() {
    let (_, kong, report) = round_trip(&fixture("kong-spec-fixtures-burst.yml"));
    assert_eq!(
        report.summary(),
        "236 services, 286 routes, 236 upstreams, 237 targets, 94 plugins"
    );
    let svc = &kong["services"][0];
    assert_eq!(svc["host"], "something-static-4test-any-svc");
    assert_eq!(svc["routes"][0]["preserve_host"], true);
    assert!(svc["routes"][0].get("plugins").is_none());
}

/// A configuration using what Kong can express.
const EXPRESSIBLE: &str = r#"
format_version: 1
upstreams:
  - name: orders-svc
    targets:
      - { url: "http://10.0.0.1:8080", weight: 70 }
      - { url: "http://10.0.0.2:8080", weight: 30 }
    balance: hash
    hash_on: header:x-tenant
    timeouts: { connect: 2s, read: 30s, write: 30s }
    retries: 2
    health:
      active: { path: /healthz, interval: 5s, timeout: 2s, healthy: 2, unhealthy: 3 }
      passive: { unhealthy: 5 }
  - name: billing-svc
    targets: [{ url: "https://billing.internal:8443" }]
    balance: least_conn
apis:
  - name: orders
    policies:
      - key_auth: { header: x-api-key }
      - rate_limit: { limit: 100, window: 1m }
      - quota: { limit: 10000, period: day }
    versions:
      - version: v1
        status: draft
        upstream: orders-svc
        routes:
          - { path: /v1/orders, methods: [GET, POST] }
      - version: v2
        upstream: orders-svc
        routes:
          - name: order
            path: "=/v2/orders/{id}"
            methods: [GET, PUT]
            policies:
              - request_transform:
                  headers: { remove: [x-debug], rename: { x-client: x-partner }, set: { x-v: "2" }, add: { x-via: tollgate } }
                  query: { remove: [debug] }
                  path: /internal/orders/{id}
                  body: { remove: [card], add: { channel: api } }
          - name: admin
            path: /v2/admin
            hosts: [admin.example.com]
            headers: { x-team: ops }
            strip_prefix: true
            policies:
              - ip_restrict: { allow: [10.0.0.0/8], deny: [10.9.0.0/16] }
              - acl: { allow: [ops] }
              - request_size: { max_body: 256KB }
              - request_transform: { headers: { set: { host: admin.example.com } } }
        policies:
          - cors: { origins: ["https://app.example.com"], headers: [x-api-key], max_age: 10m, credentials: true }
          - rate_limit: { limit: 10, window: 1s }
  - name: billing
    versions:
      - version: v1
        upstream: billing-svc
        routes: [{ path: /billing, strip_prefix: true }]
        policies:
          - jwt:
              keys: [{ alg: HS256, secret: a-shared-hmac-secret-for-tests }]
              app_claim: iss
              require_app: true
              leeway: 0s
  - name: legacy
    versions:
      - version: v1
        upstream: billing-svc
        routes:
          - { path: /legacy, policies: [{ basic_auth: { realm: legacy } }] }
policies:
  - ip_restrict: { deny: [203.0.113.0/24] }
developers:
  - email: dev@acme.test
apps:
  - name: acme-web
    owner: dev@acme.test
    groups: [ops]
    keys: [{ secret: acme-web-key-000000001 }]
    basic: [{ username: acme, password: correct-horse }]
    jwt_subjects: [acme-issuer]
certificates:
  - name: main
    snis: [api.example.com]
    cert: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    key: "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
"#;

#[test]
fn a_tollgate_configuration_goes_to_kong_and_back() {
    let (original, _) = tollgate_model::parse_document(EXPRESSIBLE).unwrap();
    assert!(tollgate_model::validate(&original).is_empty());
    let (kong, report) = export(&original).unwrap();
    assert!(report.unsupported.is_empty(), "{:?}", report.unsupported);
    let back = import(&to_yaml(&kong)).unwrap();
    assert_eq!(
        original,
        doc(&back),
        "{}\n---\n{}",
        to_yaml(&kong),
        back.to_yaml()
    );

    // What Kong gets: services named after the API (and version), tagged.
    let services = kong["services"].as_array().unwrap();
    let names: Vec<&str> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders-v1", "orders-v2", "billing", "legacy"]);
    assert_eq!(services[0]["enabled"], false);
    assert_eq!(services[0]["connect_timeout"], 2000);
    assert_eq!(services[2]["protocol"], "https");
    assert_eq!(services[2]["port"], 443);
    let order = &services[1]["routes"][0];
    assert_eq!(order["paths"], json!(["~/v2/orders/(?<id>[^/]+)$"]));
    assert_eq!(
        order["plugins"][0]["config"]["replace"]["uri"],
        "/internal/orders/$(uri_captures.id)"
    );
    let admin = &services[1]["routes"][1];
    assert_eq!(admin["preserve_host"], true);
    // v2 has its own rate limit; the API's quota still applies to it, so Kong's service
    // plugin carries both (it replaces the API's plugin there).
    let limits = services[1]["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "rate-limiting")
        .unwrap();
    assert_eq!(
        limits["config"],
        json!({ "second": 10, "day": 10000, "limit_by": "consumer", "policy": "local" })
    );
    assert_eq!(limits["tags"], json!(["tollgate-inherited:quota"]));
    let up = &kong["upstreams"][0];
    assert_eq!(up["hash_on_header"], "x-tenant");
    assert_eq!(
        kong["consumers"][0]["tags"],
        json!(["tollgate-owner:dev@acme.test"])
    );
    assert_eq!(kong["consumers"][0]["jwt_secrets"][0]["key"], "acme-issuer");
}

#[test]
fn the_examples_go_to_kong_where_kong_can_follow() {
    // basic.yaml: the API's descriptive fields and the v1 lifecycle have no Kong field.
    let mut basic = example("basic.yaml");
    let (_, report) = export(&basic).unwrap();
    let mut p = places(&report);
    p.sort();
    assert_eq!(
        p,
        [
            "apis[0].description",
            "apis[0].team",
            "apis[0].title",
            "apis[0].versions[0].deprecated_at",
            "apis[0].versions[0].deprecation_notice",
            "apis[0].versions[0].status",
            "apis[0].versions[0].successor",
            "apis[0].versions[0].sunset_at",
            "apis[0].visibility",
        ]
    );
    // Without those, it comes back the same.
    let api = &mut basic.apis[0];
    (api.title, api.description, api.team, api.visibility) = (None, None, None, Default::default());
    let v1 = &mut api.versions[0];
    v1.status = Default::default();
    (
        v1.deprecated_at,
        v1.sunset_at,
        v1.successor,
        v1.deprecation_notice,
    ) = (None, None, None, None);
    let (kong, report) = export(&basic).unwrap();
    assert!(report.unsupported.is_empty());
    assert_eq!(basic, doc(&import(&to_yaml(&kong)).unwrap()));

    // edge.yaml: aggregate, response_transform and cache are Tollgate's own.
    let (_, report) = export(&example("edge.yaml")).unwrap();
    assert_eq!(
        places(&report),
        [
            "apis[0].versions[0].routes[0].policies[0]",
            "apis[0].versions[0].routes[1].policies[1]",
            "apis[0].versions[0].routes[2].policies[0]",
            "upstreams[0]",
        ]
    );
    // traffic.yaml: bursts, queueing, the circuit breaker and upstream limits.
    let traffic = example("traffic.yaml");
    let (kong, report) = export(&traffic).unwrap();
    assert_eq!(
        places(&report),
        [
            "upstreams[0].limits",
            "upstreams[1].limits",
            "apis[0].policies[1].rate_limit",
            "apis[0].policies[4]",
            "apis[1].versions[0].routes[0].policies[0].rate_limit",
        ]
    );
    let back = doc(&import(&to_yaml(&kong)).unwrap());
    assert_eq!(back.apps, traffic.apps);
    assert_eq!(back.apis[0].versions, traffic.apis[0].versions);
}

#[test]
fn what_kong_cannot_hold_is_named_on_export() {
    let (d, _) = tollgate_model::parse_document(
        r#"
format_version: 1
upstreams: [{ name: u, targets: [{ url: "http://127.0.0.1:1" }] }]
apis:
  - name: a
    policies: [{ key_auth: {} }]
    versions:
      - version: v1
        upstream: u
        routes:
          - path: /x
            headers: { "!x-skip": "" }
            policies: [{ jwt: { jwks_url: "https://idp.example.com/jwks" } }]
developers: [{ email: d@x.test, organization: acme }]
apps:
  - name: web
    owner: d@x.test
    keys: [{ id: k1, hash: "0000000000000000000000000000000000000000000000000000000000000000" }]
    basic: [{ username: w, password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA" }]
settings: { trusted_proxies: [10.0.0.0/8] }
"#,
    )
    .unwrap();
    let (_, report) = export(&d).unwrap();
    let p = places(&report);
    for expected in [
        "settings",
        "apis[0].versions[0].routes[0].headers.!x-skip",
        "apis[0].versions[0].routes[0].policies[0]",
        "apis[0].versions[0].routes[0] (authentication)",
        "developers[0].organization",
        "apps[0].keys[0]",
        "apps[0].basic[0]",
    ] {
        assert!(p.contains(&expected), "{expected} in {p:?}");
    }
}

#[test]
fn bad_input_names_the_problem() {
    for (text, says) in [
        ("- a\n- b\n", "the top level is not a map"),
        (
            "services: []\n",
            "`_format_version` is missing (decK files start with",
        ),
        ("openapi: 3.0.0\n", "use `tollgate import openapi`"),
        ("format_version: 1\n", "a Tollgate configuration already"),
        (
            "_format_version: \"4.0\"\n",
            "`_format_version` \"4.0\" is not supported: Kong declarative configuration 1.1, 2.x and 3.0 is",
        ),
        ("_format_version: 0.9\n", "\"0.9\" is not supported"),
        ("a: [", "not YAML or JSON"),
    ] {
        let e = import(text).unwrap_err();
        assert!(e.0.contains(says), "{text:?}: {e}");
    }
    for ok in [
        "_format_version: 1.1\n",
        "_format_version: 2.1\n",
        "_format_version: \"3.0\"\n",
        "_format_version: 3.0\n",
    ] {
        assert!(import(ok).is_ok(), "{ok}");
    }
}

#[test]
fn older_formats_read_regex_paths_and_old_field_names() {
    let out = import(
        r#"
_format_version: "1.1"
services:
  - name: users
    url: http://users.internal:8080
    routes:
      - name: one
        paths: ["/users/(?<id>[^/]+)$", "/v1/users/\\d+"]
        strip_path: false
    plugins:
      - name: acl
        config: { whitelist: [staff] }
      - name: ip-restriction
        config: { blacklist: [192.0.2.1] }
      - name: rate-limiting
        config: { minute: 10 }
"#,
    )
    .unwrap();
    let d = doc(&out);
    let routes: Vec<&str> = d.apis[0].versions[0]
        .routes
        .iter()
        .map(|r| r.path.as_str())
        .collect();
    // `\d+` becomes a parameter that accepts any segment: named.
    assert_eq!(routes, ["=/users/{id}", "/v1/users/{p1}"]);
    assert_eq!(places(&out.report), ["services[0].routes[0].paths[1]"]);
    let v = serde_json::to_value(&d.apis[0].versions[0].policies).unwrap();
    assert_eq!(
        v,
        json!([
            { "acl": { "allow": ["staff"] } },
            { "ip_restrict": { "deny": ["192.0.2.1"] } },
            { "rate_limit": { "limit": 10, "window": "1m", "scope": "cluster" } },
        ])
    );
    assert_eq!(d.upstreams[0].targets[0].url, "http://users.internal:8080");
}

const JWT: &str = r#"
_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:9
    routes: [{ name: r, paths: [/s] }]
plugins:
  - name: jwt
    config: { claims_to_verify: [exp], uri_param_names: [] }
consumers:
  - username: a
    jwt_secrets: [{ key: issuer-a, secret: one-shared-secret-value }]
  - username: b
    jwt_secrets: [{ key: issuer-b, secret: SECRET_B, algorithm: HS256 }]
"#;

#[test]
fn jwt_secrets_become_one_key_only_when_one_key_checks_them_all() {
    let shared = JWT.replace("SECRET_B", "one-shared-secret-value");
    let out = import(&shared).unwrap();
    assert!(
        out.report.unsupported.is_empty(),
        "{:?}",
        out.report.unsupported
    );
    let d = doc(&out);
    assert_eq!(
        serde_json::to_value(&d.policies).unwrap(),
        json!([{ "jwt": { "keys": [{ "alg": "HS256", "secret": "one-shared-secret-value" }], "app_claim": "iss", "require_app": true, "leeway": "0ms" } }])
    );
    assert_eq!(d.apps[1].jwt_subjects, ["issuer-b"]);
    round_trip(&shared);

    // Two secrets: a token signed with one could name the other consumer.
    let out = import(&JWT.replace("SECRET_B", "another-secret-value")).unwrap();
    let p = places(&out.report);
    assert_eq!(
        p,
        [
            "consumers[0].jwt_secrets[0]",
            "consumers[1].jwt_secrets[0]",
            "plugins[0]"
        ]
    );
    assert!(doc(&out).policies.is_empty());
}

#[test]
fn kong_and_tollgate_scopes_differ_for_authentication_and_limits() {
    let out = import(
        r#"
_format_version: "3.0"
plugins:
  - { name: key-auth, config: { hide_credentials: true } }
  - { name: rate-limiting, config: { day: 1000 } }
services:
  - name: s
    url: http://127.0.0.1:9
    routes:
      - name: r
        paths: [/r]
        plugins:
          - { name: basic-auth, config: { hide_credentials: true } }
          - { name: rate-limiting, config: { minute: 5 } }
      - { name: open, paths: [/open] }
"#,
    )
    .unwrap();
    let r = &out.report;
    // Kong requires both key-auth and basic-auth on `r`; Tollgate would accept basic alone.
    assert!(
        r.unsupported
            .iter()
            .any(|f| f.at == "services[0].routes[0] (authentication)"
                && f.message.contains("key-auth and basic-auth"))
    );
    // The route's rate-limiting replaces the global one in Kong; the global quota would stay.
    assert!(
        r.unsupported
            .iter()
            .any(|f| f.at == "services[0].routes[0].plugins[1]" && f.message.contains("quota"))
    );
    assert_eq!(r.unsupported.len(), 2, "{:?}", r.unsupported);
}

#[test]
fn preserve_host_service_paths_and_transformers_meet_on_the_route() {
    let out = import(
        r#"
_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:9/base
    plugins:
      - name: request-transformer
        config: { add: { headers: ["x-a:1"] }, replace: { headers: ["x-a:1"] } }
    routes:
      - name: exact
        paths: ["~/items/(?<id>[^/]+)$"]
        hosts: [a.example.com, b.example.com]
        preserve_host: true
        strip_path: false
"#,
    )
    .unwrap();
    assert!(
        out.report.unsupported.is_empty(),
        "{:?}",
        out.report.unsupported
    );
    let d = doc(&out);
    let routes = &d.apis[0].versions[0].routes;
    // One route per host, each sending its own host; the service path joins the exact path.
    assert_eq!(routes.len(), 2);
    assert_eq!(
        serde_json::to_value(&routes[1].policies).unwrap(),
        json!([{ "request_transform": { "headers": { "set": { "x-a": "1", "host": "b.example.com" } }, "path": "/base/items/{id}" } }])
    );
    assert_eq!(
        serde_json::to_value(&d.apis[0].versions[0].policies).unwrap(),
        json!([{ "request_transform": { "headers": { "set": { "x-a": "1" } } } }])
    );
}

#[test]
fn upstreams_shared_by_services_and_conflicting_routes() {
    let out = import(
        r#"
_format_version: "3.0"
upstreams:
  - name: pool.internal
    algorithm: consistent-hashing
    hash_on: header
    hash_on_header: X-User
    healthchecks:
      active: { http_path: /health, healthy: { interval: 10, successes: 2 }, unhealthy: { interval: 10, http_failures: 3 } }
    targets: [{ target: "10.0.0.1", weight: 10 }, { target: "[2001:db8::1]:9000" }]
services:
  - { name: fast, host: pool.internal, read_timeout: 1000, routes: [{ name: a, paths: [/a] }] }
  - { name: slow, host: pool.internal, routes: [{ name: b, paths: [/a] }, { name: c, paths: [/c] }] }
"#,
    )
    .unwrap();
    let d = doc(&out);
    // Two services with different timeouts: two upstreams with the same targets.
    assert_eq!(
        d.upstreams
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
        ["pool-internal", "pool-internal-2"]
    );
    let u = &d.upstreams[0];
    assert_eq!(u.targets[0].url, "http://10.0.0.1:8000");
    assert_eq!(u.targets[0].weight, 10);
    assert_eq!(u.targets[1].url, "http://[2001:db8::1]:9000");
    assert_eq!(u.hash_on.as_ref().unwrap().to_string(), "header:x-user");
    assert_eq!(u.health.active.as_ref().unwrap().path, "/health");
    // `b` has the same path as `a`: Tollgate refuses the conflict, so `b` is named and left out.
    assert_eq!(places(&out.report), ["services[1].routes[0]"]);
    assert!(
        out.report.unsupported[0].message.contains("conflicts"),
        "{}",
        out.report.unsupported[0]
    );
    assert_eq!(d.apis[1].versions[0].routes.len(), 1);
}
