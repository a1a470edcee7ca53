//! The API reference of a version, read from its OpenAPI document (2.0, 3.0 or 3.1): one
//! entry per operation with its parameters, for the portal's reference page and try-it
//! console. A version without a document is described by its routes.

use serde_json::Value;

use crate::api::{items, text};

pub struct Param {
    pub name: String,
    pub location: String,
    pub required: bool,
    pub kind: String,
    pub description: String,
}

pub struct Operation {
    pub id: String,
    pub method: String,
    pub method_class: String,
    pub path: String,
    pub summary: String,
    pub description: String,
    pub params: Vec<Param>,
    pub has_body: bool,
    pub example_body: String,
}

const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

/// The document read as JSON (it may be YAML).
pub fn parse(spec: &str) -> Option<Value> {
    serde_json::from_str(spec)
        .ok()
        .or_else(|| yaml_serde::from_str::<Value>(spec).ok())
}

/// The base path the document's paths are under: `servers[0].url`'s path (3.x) or
/// `basePath` (2.0).
fn base_path(doc: &Value) -> String {
    let raw = doc
        .get("basePath")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            let url = doc.pointer("/servers/0/url")?.as_str()?;
            let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
            let path = if url.contains("://") {
                after_scheme.find('/').map_or("", |i| &after_scheme[i..])
            } else {
                after_scheme
            };
            Some(path.to_string())
        })
        .unwrap_or_default();
    raw.trim_end_matches('/').to_string()
}

/// Follows a local `$ref` once.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with("#/") => doc.pointer(&r[1..]).unwrap_or(v),
        _ => v,
    }
}

/// The operations of a document, in its order.
pub fn operations(doc: &Value) -> Vec<Operation> {
    let base = base_path(doc);
    let mut out = Vec::new();
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return out;
    };
    for (path, item) in paths {
        let shared: Vec<&Value> = items(item, "parameters").collect();
        for method in METHODS {
            let Some(op) = item.get(method) else {
                continue;
            };
            let mut params = Vec::new();
            let mut has_body = false;
            let own = items(op, "parameters");
            for p in shared.iter().copied().chain(own) {
                let p = resolve(doc, p);
                let location = text(p, "in");
                if location == "body" {
                    has_body = true;
                    continue;
                }
                let schema = p.get("schema").map(|s| resolve(doc, s)).unwrap_or(p);
                params.push(Param {
                    name: text(p, "name"),
                    required: p.get("required").and_then(Value::as_bool).unwrap_or(false),
                    kind: text(schema, "type"),
                    description: text(p, "description"),
                    location,
                });
            }
            let mut example_body = String::new();
            if let Some(body) = op.get("requestBody").map(|b| resolve(doc, b)) {
                has_body = true;
                if let Some(media) = body.pointer("/content/application~1json") {
                    let example = media
                        .get("example")
                        .or_else(|| media.pointer("/schema/example"));
                    if let Some(e) = example {
                        example_body = serde_json::to_string_pretty(e).unwrap_or_default();
                    }
                }
            }
            if has_body && example_body.is_empty() {
                example_body = "{}".to_string();
            }
            let id = op
                .get("operationId")
                .and_then(Value::as_str)
                .map_or_else(|| format!("{method}-{path}"), str::to_string);
            out.push(Operation {
                id: id
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect(),
                method: method.to_ascii_uppercase(),
                method_class: method.to_string(),
                path: format!("{base}{path}"),
                summary: text(op, "summary"),
                description: text(op, "description"),
                params,
                has_body,
                example_body,
            });
        }
    }
    out
}

/// Operations made from a version's routes, when it has no document.
pub fn from_routes(v: &tollgate_model::Version) -> Vec<Operation> {
    let mut out = Vec::new();
    for r in &v.routes {
        let path = r.path.trim_start_matches('=').to_string();
        let methods: Vec<String> = if r.methods.is_empty() {
            vec!["GET".to_string()]
        } else {
            r.methods.iter().map(|m| m.to_ascii_uppercase()).collect()
        };
        for m in methods {
            let has_body = matches!(m.as_str(), "POST" | "PUT" | "PATCH");
            out.push(Operation {
                id: format!("{m}-{path}")
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect(),
                method_class: m.to_ascii_lowercase(),
                method: m,
                path: path.clone(),
                summary: r.name.clone().unwrap_or_default(),
                description: String::new(),
                params: Vec::new(),
                has_body,
                example_body: if has_body {
                    "{}".to_string()
                } else {
                    String::new()
                },
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_3x_document_with_a_server_path_and_refs() {
        let doc = parse(
            r##"
openapi: 3.0.3
info: { title: t, version: "1" }
servers: [{ url: "https://api.example.com/v2" }]
components:
  parameters:
    Id: { name: id, in: path, required: true, schema: { type: integer } }
paths:
  /orders/{id}:
    parameters: [{ $ref: "#/components/parameters/Id" }]
    get: { operationId: getOrder, summary: One order }
  /orders:
    post:
      requestBody:
        content: { application/json: { example: { item: "book" } } }
"##,
        )
        .unwrap();
        let ops = operations(&doc);
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].path, "/v2/orders/{id}");
        assert_eq!(ops[0].method, "GET");
        assert_eq!(ops[0].params[0].name, "id");
        assert_eq!(ops[0].params[0].kind, "integer");
        assert!(ops[0].params[0].required);
        assert!(ops[1].has_body);
        assert!(ops[1].example_body.contains("book"));
    }

    #[test]
    fn reads_a_2_0_base_path() {
        let doc =
            parse(r#"{"swagger":"2.0","basePath":"/api/","paths":{"/pets":{"get":{}}}}"#).unwrap();
        assert_eq!(operations(&doc)[0].path, "/api/pets");
    }
}
