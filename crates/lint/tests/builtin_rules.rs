//! Every built-in rule fires on a document made bad in exactly its way, and stays quiet on
//! a good one (OpenAPI 3.0, 3.1 and 2.0, and a Tollgate configuration).

use serde_json::{Value, json};
use tollgate_lint::{Format, Ruleset, Severity, lint, lint_config};

fn good_oas3() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Pets", "version": "1.0", "description": "Pets and owners.",
            "contact": { "email": "pets@example.com" }, "license": { "name": "MIT" }
        },
        "servers": [{ "url": "https://api.example.com/v1" }],
        "tags": [{ "name": "pets", "description": "Pets" }],
        "security": [{ "key": [] }],
        "components": {
            "securitySchemes": { "key": { "type": "apiKey", "in": "header", "name": "x-api-key" } },
            "parameters": { "petId": {
                "name": "petId", "in": "path", "required": true, "description": "The pet.",
                "schema": { "type": "string" }
            } },
            "responses": { "NotFound": { "description": "No such pet." } }
        },
        "paths": {
            "/pets": { "get": {
                "operationId": "listPets", "description": "Lists pets.", "tags": ["pets"],
                "parameters": [{ "name": "limit", "in": "query", "description": "At most.", "schema": { "type": "integer" } }],
                "responses": { "200": { "description": "The pets." } }
            } },
            "/pets/{petId}": {
                "parameters": [{ "$ref": "#/components/parameters/petId" }],
                "get": {
                    "operationId": "showPet", "description": "Shows a pet.", "tags": ["pets"],
                    "responses": {
                        "200": { "description": "The pet." },
                        "404": { "$ref": "#/components/responses/NotFound" }
                    }
                }
            }
        }
    })
}

fn good_oas2() -> Value {
    json!({
        "swagger": "2.0",
        "info": { "title": "Pets", "version": "1.0", "description": "Pets.", "contact": { "name": "Team" }, "license": { "name": "MIT" } },
        "host": "api.example.com",
        "schemes": ["https"],
        "tags": [{ "name": "pets" }],
        "securityDefinitions": { "key": { "type": "apiKey", "in": "header", "name": "x-api-key" } },
        "security": [{ "key": [] }],
        "paths": {
            "/pets/{id}": { "get": {
                "operationId": "showPet", "description": "Shows a pet.", "tags": ["pets"],
                "parameters": [{ "name": "id", "in": "path", "required": true, "type": "string", "description": "Id." }],
                "responses": { "200": { "description": "The pet." } }
            } }
        }
    })
}

fn good_config() -> Value {
    json!({
        "format_version": 1,
        "upstreams": [{ "name": "u", "targets": [{ "url": "http://127.0.0.1:1" }] }],
        "policies": [{ "key_auth": {} }, { "rate_limit": { "limit": 10, "window": "1s" } }],
        "apis": [{ "name": "pets", "versions": [
            { "version": "v1", "upstream": "u", "routes": [{ "path": "/pets" }] }
        ] }],
        "products": [{ "name": "p", "apis": ["pets@v1"], "plans": [
            { "name": "free", "quota": { "limit": 100, "period": "month" } }
        ] }]
    })
}

fn run(doc: &Value) -> Vec<(String, String)> {
    let set = Ruleset::builtin();
    let found = match Format::detect(doc).unwrap() {
        Format::Tollgate => lint_config(&set, doc),
        f => lint(&set, doc, f),
    };
    found
        .into_iter()
        .map(|f| (f.rule, format!("{}: {}", f.location, f.message)))
        .collect()
}

fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{pointer}"));
    match parent {
        Value::Object(m) => {
            m.insert(key.replace("~1", "/"), value);
        }
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = value,
        _ => panic!("{pointer}"),
    }
}

fn remove(doc: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{pointer}"))
    {
        Value::Object(m) => {
            m.shift_remove(&key.replace("~1", "/"))
                .unwrap_or_else(|| panic!("{pointer}"));
        }
        Value::Array(a) => {
            a.remove(key.parse::<usize>().unwrap());
        }
        _ => panic!("{pointer}"),
    }
}

type Break = fn(&mut Value);
type Case = (&'static str, fn() -> Value, Break);

/// Each rule with the good document it starts from and how to break it.
fn cases() -> Vec<Case> {
    vec![
        ("oas-document", good_oas3, |d| remove(d, "/info/version")),
        ("info-contact", good_oas3, |d| remove(d, "/info/contact")),
        ("info-description", good_oas2, |d| {
            set(d, "/info/description", json!(""))
        }),
        ("info-license", good_oas3, |d| remove(d, "/info/license")),
        ("oas3-api-servers", good_oas3, |d| {
            set(d, "/servers", json!([]))
        }),
        ("oas2-api-host", good_oas2, |d| remove(d, "/host")),
        ("no-http-servers", good_oas3, |d| {
            set(d, "/servers/0/url", json!("http://api.example.com/v1"))
        }),
        // Without operations, so that none of them uses an undefined tag.
        ("openapi-tags", good_oas2, |d| {
            remove(d, "/tags");
            set(d, "/paths", json!({}));
        }),
        ("path-params", good_oas3, |d| {
            set(
                d,
                "/paths/~1owners~1{ownerId}",
                json!({ "get": { "operationId": "showOwner", "description": "d", "tags": ["pets"], "responses": { "200": { "description": "ok" } } } }),
            )
        }),
        ("path-keys-no-trailing-slash", good_oas3, |d| {
            let item = d["paths"]["/pets"].clone();
            remove(d, "/paths/~1pets");
            set(d, "/paths/~1pets~1", item);
        }),
        ("operation-operationId", good_oas3, |d| {
            remove(d, "/paths/~1pets/get/operationId")
        }),
        ("operation-operationId-unique", good_oas3, |d| {
            set(
                d,
                "/paths/~1pets~1{petId}/get/operationId",
                json!("listPets"),
            )
        }),
        ("operation-description", good_oas2, |d| {
            remove(d, "/paths/~1pets~1{id}/get/description")
        }),
        ("operation-success-response", good_oas3, |d| {
            remove(d, "/paths/~1pets~1{petId}/get/responses/200")
        }),
        ("operation-tags", good_oas3, |d| {
            set(d, "/paths/~1pets/get/tags", json!([]))
        }),
        ("operation-tag-defined", good_oas3, |d| {
            set(d, "/paths/~1pets/get/tags", json!(["cats"]))
        }),
        ("operation-security", good_oas3, |d| {
            set(d, "/paths/~1pets/get/security", json!([]))
        }),
        ("security-scheme-defined", good_oas2, |d| {
            set(d, "/security", json!([{ "nope": [] }]))
        }),
        ("parameter-description", good_oas3, |d| {
            remove(d, "/components/parameters/petId/description")
        }),
        ("response-description", good_oas3, |d| {
            set(d, "/paths/~1pets/get/responses/200", json!({}))
        }),
        ("api-authentication", good_config, |d| {
            remove(d, "/policies/0")
        }),
        ("api-rate-limit", good_config, |d| remove(d, "/policies/1")),
        ("plan-quota", good_config, |d| {
            remove(d, "/products/0/plans/0/quota")
        }),
    ]
}

#[test]
fn good_documents_are_clean() {
    for doc in [good_oas3(), good_oas2(), good_config()] {
        assert_eq!(run(&doc), [], "{doc}");
    }
    let mut v31 = good_oas3();
    v31["openapi"] = json!("3.1.0");
    assert_eq!(run(&v31), []);
    // A configuration whose version carries a good spec is clean too.
    let mut config = good_config();
    config["apis"][0]["versions"][0]["spec"] = json!(good_oas3().to_string());
    assert_eq!(run(&config), []);
}

#[test]
fn each_builtin_rule_fires_on_its_defect() {
    let cases = cases();
    for rule in Ruleset::builtin().rules() {
        assert!(
            cases.iter().any(|(id, ..)| *id == rule.id),
            "no case for built-in rule `{}`",
            rule.id
        );
    }
    for (id, good, breaks) in cases {
        let mut doc = good();
        breaks(&mut doc);
        let found = run(&doc);
        assert!(
            found.iter().any(|(r, _)| r == id),
            "{id} did not fire: {found:#?}"
        );
        assert!(
            found.iter().all(|(r, _)| r == id),
            "{id}: other rules fired too: {found:#?}"
        );
    }
}

#[test]
fn the_default_severities_block_only_real_defects() {
    let set = Ruleset::builtin();
    let errors: Vec<&str> = set
        .rules()
        .iter()
        .filter(|r| r.severity == Severity::Error)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(
        errors,
        [
            "oas-document",
            "path-params",
            "operation-operationId-unique",
            "security-scheme-defined"
        ]
    );
    for org in ["api-authentication", "api-rate-limit", "plan-quota"] {
        let rule = set.get(org).unwrap();
        assert_eq!(rule.severity, Severity::Warn);
        assert!(rule.is_organisation());
    }
}

#[test]
fn a_spec_that_is_not_openapi_is_one_finding() {
    let mut config = good_config();
    config["apis"][0]["versions"][0]["spec"] = json!("just: text\n");
    let found = run(&config);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "oas-document");
    assert!(found[0].1.contains("not an OpenAPI document"), "{found:?}");
    config["apis"][0]["versions"][0]["spec"] = json!("a: [unclosed\n");
    assert!(run(&config)[0].1.contains("not YAML or JSON"));
}
