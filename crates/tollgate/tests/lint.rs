//! Governance through the binary: `tollgate lint` on the OpenAPI fixtures and on
//! configurations (text, JSON and SARIF, exit codes, ruleset files), and the check a node
//! runs when a change publishes a version.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi")
        .join(name)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn lint(file: &Path, extra: &[&str]) -> Run {
    let o = Command::new(bin())
        .arg("lint")
        .arg(file)
        .args(extra)
        .env_remove("TOLLGATE_RULESET")
        .output()
        .unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// (rule, line) of each text finding.
fn findings(r: &Run) -> Vec<(String, usize)> {
    r.stdout
        .lines()
        .map(|l| {
            let mut words = l.split(' ');
            let place = words.next().unwrap();
            let _severity = words.next().unwrap();
            let rule = words.next().unwrap().to_string();
            let line = place.split(':').nth(1).unwrap().parse().unwrap();
            (rule, line)
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn petstore_has_no_security_and_other_warnings() {
    let r = lint(&fixture("oai-v3.0-petstore.yaml"), &[]);
    assert_eq!(r.code, 0, "warnings do not fail: {}{}", r.stdout, r.stderr);
    let name = fixture("oai-v3.0-petstore.yaml").display().to_string();
    // Each operation is unsecured, named at its line.
    for (line, op) in [
        (11, "GET /pets"),
        (42, "POST /pets"),
        (57, "GET /pets/{petId}"),
    ] {
        let expected = format!(
            "{name}:{line}:5 warn operation-security {op} has no security requirement (neither the operation nor the document sets `security`)  (paths."
        );
        assert!(r.stdout.contains(&expected), "{expected}\n{}", r.stdout);
    }
    assert!(
        r.stdout.contains(
            ":8:5 warn no-http-servers server `http://petstore.swagger.io/v1` is plain HTTP"
        ),
        "{}",
        r.stdout
    );
    let rules: Vec<String> = findings(&r).into_iter().map(|(r, _)| r).collect();
    for rule in [
        "info-contact",
        "info-description",
        "operation-description",
        "operation-tag-defined",
        "openapi-tags",
    ] {
        assert!(rules.iter().any(|r| r == rule), "{rule}: {}", r.stdout);
    }
    assert!(
        !rules.iter().any(|r| r == "info-license"),
        "petstore has a licence"
    );
    assert!(
        r.stderr.contains("0 errors, 12 warnings, 1 info, 0 hints"),
        "{}",
        r.stderr
    );
}

#[test]
fn uspto_and_uber_findings() {
    let r = lint(&fixture("oai-v3.0-uspto.yaml"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        findings(&r),
        [
            ("info-license".to_string(), 11),
            ("operation-description".to_string(), 35),
            ("operation-security".to_string(), 35),
            ("operation-security".to_string(), 66),
            ("operation-security".to_string(), 111),
        ],
        "the server's `{{scheme}}` defaults to https: no plain-HTTP finding\n{}",
        r.stdout
    );
    // Swagger 2.0: `/products` has its own security, the other operations none.
    let r = lint(&fixture("oai-v2.0-uber.yaml"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let security: Vec<usize> = findings(&r)
        .into_iter()
        .filter(|(rule, _)| rule == "operation-security")
        .map(|(_, l)| l)
        .collect();
    assert_eq!(security.len(), 4, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("warn operation-operationId Operation has no `operationId`.")
    );
}

#[test]
fn the_large_openai_document_lints_well_under_a_second() {
    let started = Instant::now();
    let r = lint(
        &fixture("openai-openapi-2024-10-17.yaml"),
        &["--format", "json"],
    );
    let took = started.elapsed();
    eprintln!("768 KB document linted in {took:?} (debug build)");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let all = report["findings"].as_array().unwrap();
    // 94 operations without a description; 38 uses of tags the document does not list.
    let count = |rule: &str| all.iter().filter(|f| f["rule"] == rule).count();
    assert_eq!(count("operation-description"), 94);
    assert_eq!(count("operation-tag-defined"), 38);
    assert_eq!(report["summary"]["errors"], 0);
    assert_eq!(report["summary"]["warnings"], all.len());
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn exit_codes_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Two operations share an id: an error (exit 2), with its line and column.
    let dup = write(
        dir.path(),
        "dup.yaml",
        "openapi: 3.0.3\ninfo: { title: t, version: '1' }\npaths:\n  /a:\n    get:\n      operationId: same\n      responses: { '200': { description: ok } }\n  /b:\n    get:\n      operationId: same\n      responses: { '200': { description: ok } }\n",
    );
    let r = lint(&dup, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stdout.contains("dup.yaml:10:7 error operation-operationId-unique operationId `same` is also used at paths./a.get.operationId."),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("1 error,"), "{}", r.stderr);

    let other = write(dir.path(), "other.yaml", "hello: world\n");
    let r = lint(&other, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("neither an OpenAPI document"),
        "{}",
        r.stderr
    );
    let r = lint(&dir.path().join("missing.yaml"), &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.yaml"), "{}", r.stderr);
    let r = lint(&dup, &["--format", "xml"]);
    assert_eq!(r.code, 2, "a bad flag value is a usage error");

    // A bad ruleset names the rule and the field, and nothing is linted.
    let rules = write(
        dir.path(),
        "rules.yaml",
        "rules:\n  info-contact: loud\n  mine:\n    given: $.info\n    then: { field: x-team, function: trthy }\n",
    );
    let r = lint(&dup, &["--ruleset", rules.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        r.stderr
            .contains("rules.yaml: rule `info-contact`: unknown severity `loud`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("rule `mine`: `then.function`: unknown function `trthy`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_ruleset_file_changes_severities_turns_rules_off_and_adds_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write(
        dir.path(),
        "rules.yaml",
        r#"# Our house rules on top of the built-in ones.
rules:
  operation-security: error
  operation-description: off
  openapi-tags: hint
  x-owner:
    description: The API names its owning team in `info.x-owner`.
    message: "`info` has no `x-owner`."
    severity: info
    formats: [oas3]
    given: $.info
    then: { field: x-owner, function: truthy }
"#,
    );
    let r = lint(
        &fixture("oai-v3.0-petstore.yaml"),
        &["--ruleset", rules.to_str().unwrap()],
    );
    assert_eq!(
        r.code, 2,
        "operation-security is now an error: {}",
        r.stderr
    );
    assert_eq!(r.stdout.matches(" error operation-security ").count(), 3);
    assert!(!r.stdout.contains("operation-description"));
    assert!(r.stdout.contains(" hint openapi-tags "));
    assert!(
        r.stdout
            .contains(":2:1 info x-owner `info` has no `x-owner`."),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("3 errors, 6 warnings, 1 info, 1 hint"),
        "{}",
        r.stderr
    );
    // The environment twin of --ruleset.
    let o = Command::new(bin())
        .arg("lint")
        .arg(fixture("oai-v3.0-petstore.yaml"))
        .env("TOLLGATE_RULESET", &rules)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn sarif_output_has_what_code_scanning_needs() {
    let r = lint(&fixture("oai-v3.0-petstore.yaml"), &["--format", "sarif"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let log: Value = serde_json::from_str(&r.stdout).expect("SARIF is JSON");
    assert_eq!(log["version"], "2.1.0");
    assert!(
        log["$schema"]
            .as_str()
            .unwrap()
            .contains("sarif-schema-2.1.0")
    );
    let run = &log["runs"][0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "tollgate-lint");
    let rules = driver["rules"].as_array().unwrap();
    assert!(rules.len() >= 20);
    for rule in rules {
        assert!(rule["id"].is_string());
        assert!(rule["shortDescription"]["text"].is_string());
        let level = rule["defaultConfiguration"]["level"].as_str().unwrap();
        assert!(["error", "warning", "note"].contains(&level), "{level}");
    }
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 13);
    for result in results {
        let id = result["ruleId"].as_str().unwrap();
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], id);
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
        assert!(!result["message"]["text"].as_str().unwrap().is_empty());
        let physical = &result["locations"][0]["physicalLocation"];
        assert!(
            physical["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .ends_with("oai-v3.0-petstore.yaml")
        );
        assert!(physical["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(physical["region"]["startColumn"].as_u64().unwrap() >= 1);
    }
    let security = results
        .iter()
        .find(|r| r["ruleId"] == "operation-security")
        .unwrap();
    assert_eq!(security["level"], "warning");
    assert_eq!(
        security["locations"][0]["physicalLocation"]["region"]["startLine"],
        11
    );
}

const BAD_SPEC: &str = "openapi: 3.0.3
info: { title: Orders, version: '1' }
paths:
  /orders:
    get:
      operationId: orders
      responses: { '200': { description: ok } }
    post:
      operationId: orders
      responses: { '201': { description: made } }
";

fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(by)))
        .collect()
}

#[test]
fn configurations_are_linted_with_their_specs_and_governance() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "orders.yaml", BAD_SPEC);
    let config = format!(
        "format_version: 1
upstreams:
  - {{ name: svc, targets: [{{ url: 'http://127.0.0.1:9' }}] }}
apis:
  - name: orders
    versions:
      - version: v1
        upstream: svc
        routes: [{{ path: /orders }}]
        spec: |
{}      - version: v2
        status: draft
        upstream: svc
        routes: [{{ path: /v2/orders }}]
        spec: orders.yaml
products:
  - {{ name: shop, apis: [orders@v1], plans: [{{ name: free }}] }}
",
        indent(BAD_SPEC, 10)
    );
    let file = write(dir.path(), "tollgate.yaml", &config);
    let r = lint(&file, &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let name = file.display().to_string();
    // The inline spec's finding points at its line in the configuration (spec line 9 is
    // configuration line 10 + 9), named with the version.
    assert!(
        r.stdout.contains(&format!("{name}:19:17 error operation-operationId-unique operationId `orders` is also used at paths./orders.get.operationId.  (orders@v1 paths./orders.post.operationId)")),
        "{}",
        r.stdout
    );
    // The spec in its own file: findings point into that file.
    let spec_file = dir.path().join("orders.yaml").display().to_string();
    assert!(
        r.stdout.contains(&format!(
            "{spec_file}:9:7 error operation-operationId-unique"
        )),
        "{}",
        r.stdout
    );
    // Organisation rules, at warn by default, on the served version only (v2 is a draft).
    assert!(
        r.stdout.contains(&format!(
            "{name}:7:9 warn api-authentication orders@v1 is served without authentication"
        )),
        "{}",
        r.stdout
    );
    assert_eq!(r.stdout.matches("api-authentication").count(), 1);
    assert!(
        r.stdout
            .contains(" warn api-rate-limit orders@v1 is served without a rate limit")
    );
    assert!(
        r.stdout.contains(&format!(
            "{name}:27:48 warn plan-quota Plan has no `quota`."
        )),
        "{}",
        r.stdout
    );

    // The configuration's governance section raises a rule and turns one off.
    let governed = format!(
        "{config}governance:\n  rules:\n    operation-operationId-unique: warn\n    api-authentication: error\n    plan-quota: off\n"
    );
    let file = write(dir.path(), "governed.yaml", &governed);
    let r = lint(&file, &["--format", "json"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let errors: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["rule"], "api-authentication");
    assert_eq!(errors[0]["path"], "apis[0].versions[0]");
    let in_spec = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["api"] == "orders" && f["version"] == "v1")
        .unwrap();
    assert_eq!(in_spec["config_path"], "apis[0].versions[0].spec");
    assert!(!r.stdout.contains("plan-quota"));

    // A governance rule that cannot be used is named where it is written.
    let broken = format!(
        "{config}governance:\n  rules:\n    mine: {{ given: $.apis, then: {{ function: nope }} }}\n"
    );
    let file = write(dir.path(), "broken.yaml", &broken);
    let r = lint(&file, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("governance.rules.mine.then.function: unknown function `nope`"),
        "{}",
        r.stderr
    );
}

/// A node with one upstream and the `orders` API at v1 (published, no spec).
fn node_config(m: &MockUpstream) -> String {
    format!(
        "format_version: 1\nupstreams:\n{}apis:\n  - name: orders\n    versions:\n      - {{ version: v1, upstream: svc, routes: [{{ path: /v1/orders }}] }}\n",
        upstream("svc", &[m.url()], "")
    )
}

fn version_v2(status: &str, spec: &str) -> String {
    format!(
        "format_version: 1\napis:\n  - name: orders\n    versions:\n      - version: v2\n        status: {status}\n        upstream: svc\n        routes: [{{ path: /v2/orders }}]\n        spec: |\n{}",
        indent(spec, 10)
    )
}

#[tokio::test]
async fn publishing_a_version_that_breaks_an_error_rule_is_refused() {
    let m = MockUpstream::start("svc").await;
    let node = start(&node_config(&m)).await;
    let before = node.admin_get("/api/config").await.unwrap().text();

    // Published at once, with duplicate operation ids: refused, nothing changes.
    let r = admin_put_yaml(&node, &version_v2("published", BAD_SPEC))
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    let body = r.json();
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["path"], "apis[0].versions[0].spec");
    assert!(
        errors[0]["message"].as_str().unwrap().starts_with(
            "orders@v2 cannot be published: rule `operation-operationId-unique` (error) at paths./orders.post.operationId"
        ),
        "{body}"
    );
    assert_eq!(
        errors[0]["line"], 9,
        "the `spec` key's line in the file sent"
    );
    assert_eq!(node.admin_get("/api/config").await.unwrap().text(), before);
    let c = Client::new();
    assert_eq!(
        c.get(&node.proxy_url("/v2/orders")).await.unwrap().status,
        404
    );

    // A draft is not judged; the step to published is, through any write path.
    let r = admin_put_yaml(&node, &version_v2("draft", BAD_SPEC))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v2 = serde_json::json!({
        "version": "v2", "status": "published", "upstream": "svc",
        "routes": [{ "path": "/v2/orders" }], "spec": BAD_SPEC,
    });
    let r = node
        .admin_request(
            "PUT",
            "/api/apis/orders/versions/v2",
            &[("content-type", "application/json")],
            v2.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("operation-operationId-unique"),
        "{}",
        r.text()
    );
    let live = node
        .admin_get("/api/config?format=json")
        .await
        .unwrap()
        .json();
    assert_eq!(live["apis"][0]["versions"][1]["status"], "draft");

    // Fixed, it publishes and is served.
    let fixed = BAD_SPEC.replacen(
        "operationId: orders\n      responses: { '201'",
        "operationId: makeOrder\n      responses: { '201'",
        1,
    );
    let r = admin_put_yaml(&node, &version_v2("published", &fixed))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let got = c.get(&node.proxy_url("/v2/orders")).await.unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
}

#[tokio::test]
async fn governance_in_the_configuration_raises_organisation_rules() {
    let m = MockUpstream::start("svc").await;
    let node = start(&node_config(&m)).await;
    // The existing v1 has no authentication; raising the rule does not judge it again
    // (it is not being published), but a new published version is judged.
    let strict = "format_version: 1\ngovernance:\n  rules:\n    api-authentication: error\n";
    let r = admin_put_yaml(&node, strict).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let fixed_spec = BAD_SPEC.replacen(
        "operationId: orders\n      responses: { '201'",
        "operationId: makeOrder\n      responses: { '201'",
        1,
    );
    let r = admin_put_yaml(&node, &version_v2("published", &fixed_spec))
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    let body = r.json();
    assert_eq!(body["errors"][0]["path"], "apis[0].versions[0].status");
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains(
            "rule `api-authentication` (error): orders@v2 is served without authentication"
        ),
        "{body}"
    );
    // With key_auth on the API, it publishes.
    let with_auth = version_v2("published", &fixed_spec).replace(
        "  - name: orders\n",
        "  - name: orders\n    policies: [{ key_auth: {} }]\n",
    );
    let r = admin_put_yaml(&node, &with_auth).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // The governance section is stored and exported.
    let live = node.admin_get("/api/config").await.unwrap().text();
    assert!(
        live.contains("governance:\n  rules:\n    api-authentication: error\n"),
        "{live}"
    );

    // A rule the node cannot use is refused, named by rule and field.
    let bad = "format_version: 1\ngovernance:\n  rules:\n    mine: { given: info, then: { function: truthy } }\n";
    let r = admin_put_yaml(&node, bad).await.unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["path"], "governance.rules.mine.given");
    assert!(r.text().contains("must start with `$`"), "{}", r.text());
}

#[tokio::test]
async fn serve_refuses_a_config_file_that_publishes_a_broken_spec() {
    let m = MockUpstream::start("svc").await;
    let config = format!(
        "{}      - version: v2\n        upstream: svc\n        routes: [{{ path: /v2/orders }}]\n        spec: |\n{}",
        node_config(&m),
        indent(BAD_SPEC, 10)
    );
    let mut node = Node::start_with(bin(), NodeOptions::new().config(config).no_wait())
        .await
        .unwrap();
    let status = node
        .exited(Duration::from_secs(20))
        .await
        .expect("the node stops");
    assert_eq!(status.code(), Some(2));
    let logs = node.logs();
    assert!(logs.contains("operation-operationId-unique"), "{logs}");
}

/// The YAML examples of docs/governance.md, by their first line.
fn documented(first_line: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/governance.md"),
    )
    .unwrap();
    text.split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.starts_with(first_line))
        .unwrap_or_else(|| panic!("no example starting with {first_line}"))
        .to_string()
}

#[test]
fn the_documented_examples_work() {
    let dir = tempfile::tempdir().unwrap();
    let house = write(dir.path(), "house.yaml", &documented("# Our house rules"));
    let r = lint(
        &fixture("oai-v3.0-petstore.yaml"),
        &["--ruleset", house.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(" error info-contact Name the owning team in `info.contact`."),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(" info x-owner "), "{}", r.stdout);
    assert!(!r.stdout.contains("operation-description"));

    let m_config = "format_version: 1\nupstreams:\n  - { name: svc, targets: [{ url: 'http://127.0.0.1:9' }] }\napis:\n  - { name: orders, versions: [{ version: v1, upstream: svc, routes: [{ path: /o }] }] }\n";
    let team = write(dir.path(), "team.yaml", &documented("rules:\n  api-team:"));
    let config = write(dir.path(), "config.yaml", m_config);
    let r = lint(&config, &["--ruleset", team.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stdout.contains(" error api-team `team` is missing"),
        "{}",
        r.stdout
    );

    let governed = write(
        dir.path(),
        "governed.yaml",
        &format!(
            "{m_config}{}",
            documented("governance:\n  rules:\n    api-authentication: error        #")
        ),
    );
    let v = Command::new(bin())
        .args(["validate", "-f"])
        .arg(&governed)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let r = lint(&governed, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for rule in ["api-authentication", "api-rate-limit", "api-team"] {
        assert!(
            r.stdout.contains(&format!(" error {rule} ")),
            "{rule}: {}",
            r.stdout
        );
    }
}
