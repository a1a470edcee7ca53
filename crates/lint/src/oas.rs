//! The built-in functions for OpenAPI documents (2.0, 3.0 and 3.1): what needs more than
//! one place of the document at once (path templates against parameters, operations
//! against security schemes and tags, server URLs with their variables).

use std::collections::HashSet;

use serde_json::Value;

use crate::path::Location;

/// The HTTP methods an OpenAPI path item may hold.
pub const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Follows a local `$ref` (`#/components/parameters/id`), a few hops at most; other
/// values (and references that do not resolve) come back as they are.
pub fn resolve<'a>(root: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return v;
        };
        let Some(pointer) = r.strip_prefix('#') else {
            return v;
        };
        match root.pointer(pointer) {
            Some(target) => v = target,
            None => return v,
        }
    }
    v
}

/// Whether a node is a reference (`{ $ref: … }`): rules check the definition where it is
/// declared, not each place that points at it.
pub fn is_ref(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.contains_key("$ref"))
}

fn operations(item: &Value) -> impl Iterator<Item = (&str, &Value)> {
    item.as_object()
        .into_iter()
        .flat_map(|o| o.iter())
        .filter(|(k, _)| METHODS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v))
}

/// `GET /pets` for an operation at `paths./pets.get`.
fn operation_name(at: &Location) -> String {
    use crate::path::Seg;
    match at.0.as_slice() {
        [.., Seg::Key(path), Seg::Key(method)] => {
            format!("{} {path}", method.to_ascii_uppercase())
        }
        _ => "the operation".to_string(),
    }
}

/// `oasDocument` (on `$`): what every OpenAPI document needs to be read at all.
pub fn document(root: &Value, at: &Location) -> Vec<(Location, String)> {
    let mut out = Vec::new();
    let info = root.get("info");
    match info {
        Some(Value::Object(i)) => {
            for field in ["title", "version"] {
                if !i.contains_key(field) {
                    out.push((at.key("info"), format!("`info.{field}` is missing")));
                }
            }
        }
        _ => out.push((at.clone(), "`info` is missing".to_string())),
    }
    let is_31 = root
        .get("openapi")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("3.1"));
    let has = |k: &str| root.get(k).is_some_and(Value::is_object);
    // 3.1 allows a document of only webhooks or components.
    if !has("paths") && !(is_31 && (has("webhooks") || has("components"))) {
        out.push((at.clone(), "`paths` is missing".to_string()));
    }
    out
}

fn template_names(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        // `{proxy+}`: API Gateway's greedy parameter, declared as `proxy`.
        let name = &after[..close];
        out.push(name.strip_suffix('+').unwrap_or(name).to_string());
        rest = &after[close + 1..];
    }
    out
}

/// Path parameters of a parameter list: (name, location, required).
fn path_parameters(
    root: &Value,
    list: Option<&Value>,
    at: &Location,
) -> Vec<(String, Location, bool)> {
    let Some(Value::Array(items)) = list else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let p = resolve(root, p);
            (p.get("in").and_then(Value::as_str) == Some("path")).then(|| {
                (
                    p.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    at.index(i),
                    p.get("required").and_then(Value::as_bool) == Some(true),
                )
            })
        })
        .collect()
}

/// `oasPathParams` (on `$.paths`): every `{name}` of a path template is declared as a
/// path parameter (of the path item or of each operation), every declared path parameter
/// is in the template and required, and no template names a parameter twice.
pub fn path_params(root: &Value, at: &Location, paths: &Value) -> Vec<(Location, String)> {
    let mut out = Vec::new();
    let Some(paths) = paths.as_object() else {
        return out;
    };
    for (template, item) in paths {
        if template.starts_with("x-") {
            continue;
        }
        let here = at.key(template);
        let item = resolve(root, item);
        let names = template_names(template);
        let mut unique: Vec<&str> = Vec::new();
        for n in &names {
            if unique.contains(&n.as_str()) {
                out.push((
                    here.clone(),
                    format!("path `{template}` names `{{{n}}}` twice"),
                ));
            } else {
                unique.push(n);
            }
        }
        let common = path_parameters(root, item.get("parameters"), &here.key("parameters"));
        let mut flagged: HashSet<Location> = HashSet::new();
        let mut check_declared =
            |list: &[(String, Location, bool)], out: &mut Vec<(Location, String)>| {
                for (name, loc, required) in list {
                    if !flagged.insert(loc.clone()) {
                        continue;
                    }
                    if !names.contains(name) {
                        out.push((
                            loc.clone(),
                            format!("path parameter `{name}` is not in the path `{template}`"),
                        ));
                    } else if !required {
                        out.push((
                            loc.clone(),
                            format!("path parameter `{name}` must be `required: true`"),
                        ));
                    }
                }
            };
        check_declared(&common, &mut out);
        let mut any_operation = false;
        for (method, op) in operations(item) {
            any_operation = true;
            let op_at = here.key(method);
            let own = path_parameters(root, op.get("parameters"), &op_at.key("parameters"));
            check_declared(&own, &mut out);
            for n in &unique {
                let declared = own.iter().chain(&common).any(|(name, ..)| name == n);
                if !declared {
                    out.push((
                        op_at.clone(),
                        format!(
                            "`{{{n}}}` of `{template}` is not declared as a path parameter of {}",
                            method.to_ascii_uppercase()
                        ),
                    ));
                }
            }
        }
        if !any_operation {
            for n in &unique {
                if !common.iter().any(|(name, ..)| name == n) {
                    out.push((
                        here.clone(),
                        format!("`{{{n}}}` of `{template}` is not declared as a path parameter"),
                    ));
                }
            }
        }
    }
    out
}

/// `oasOperationSecurity` (on an operation): it has a security requirement, its own or the
/// document's, and none of its requirements is empty (`{}` makes security optional).
pub fn operation_security(root: &Value, at: &Location, op: &Value) -> Vec<(Location, String)> {
    let name = operation_name(at);
    let (security, own) = match op.get("security") {
        Some(s) => (Some(s), true),
        None => (root.get("security"), false),
    };
    let here = if own { at.key("security") } else { at.clone() };
    let message = match security {
        None => format!(
            "{name} has no security requirement (neither the operation nor the document sets `security`)"
        ),
        Some(Value::Array(a)) if a.is_empty() => {
            if own {
                format!("{name} is public: its `security` is empty")
            } else {
                format!("{name} is public: the document's `security` is empty")
            }
        }
        Some(Value::Array(a))
            if a.iter()
                .any(|r| r.as_object().is_some_and(|o| o.is_empty())) =>
        {
            format!("{name} makes security optional: one of its requirements is empty (`{{}}`)")
        }
        Some(Value::Array(_)) => return Vec::new(),
        Some(_) => format!("{name}: `security` is not a list of requirements"),
    };
    vec![(here, message)]
}

/// The security schemes a document defines (`components.securitySchemes`, or
/// `securityDefinitions` in 2.0), and where.
fn schemes(root: &Value) -> (Option<&serde_json::Map<String, Value>>, &'static str) {
    if root.get("swagger").is_some() {
        (
            root.get("securityDefinitions").and_then(Value::as_object),
            "securityDefinitions",
        )
    } else {
        (
            root.pointer("/components/securitySchemes")
                .and_then(Value::as_object),
            "components.securitySchemes",
        )
    }
}

/// `oasSecuritySchemes` (on a security requirement): every scheme it names is defined.
pub fn security_schemes(root: &Value, at: &Location, req: &Value) -> Vec<(Location, String)> {
    let Some(req) = req.as_object() else {
        return Vec::new();
    };
    let (defined, place) = schemes(root);
    req.keys()
        .filter(|k| !defined.is_some_and(|d| d.contains_key(*k)))
        .map(|k| {
            (
                at.key(k),
                format!("security scheme `{k}` is not defined in `{place}`"),
            )
        })
        .collect()
}

/// `oasTagDefined` (on an operation): every tag it uses is listed in the document's `tags`.
pub fn tag_defined(root: &Value, at: &Location, op: &Value) -> Vec<(Location, String)> {
    let Some(Value::Array(tags)) = op.get("tags") else {
        return Vec::new();
    };
    let defined: HashSet<&str> = root
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .collect();
    tags.iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let t = t.as_str()?;
            (!defined.contains(t)).then(|| {
                (
                    at.key("tags").index(i),
                    format!("tag `{t}` is not defined in the document's `tags`"),
                )
            })
        })
        .collect()
}

fn is_local(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let name = if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or("").to_string()
    };
    name == "localhost"
        || name.ends_with(".localhost")
        || name == "[::1]"
        || name.starts_with("127.")
}

/// A server URL with its variables replaced by their defaults.
fn server_url(server: &Value) -> Option<String> {
    let mut url = server.get("url")?.as_str()?.to_string();
    if let Some(vars) = server.get("variables").and_then(Value::as_object) {
        for (name, var) in vars {
            if let Some(d) = var.get("default").and_then(Value::as_str) {
                url = url.replace(&format!("{{{name}}}"), d);
            }
        }
    }
    Some(url)
}

/// `oasNoPlainHttp`: a server object (3.x, its variables at their defaults) must not be
/// `http://` or `ws://`, nor 2.0 `schemes` list `http` or `ws`, unless the host is local.
pub fn no_plain_http(root: &Value, at: &Location, node: &Value) -> Vec<(Location, String)> {
    if let Value::Array(schemes) = node {
        let host = root.get("host").and_then(Value::as_str).unwrap_or("");
        if is_local(host) {
            return Vec::new();
        }
        return schemes
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let s = s.as_str()?;
                matches!(s, "http" | "ws").then(|| {
                    (
                        at.index(i),
                        format!("scheme `{s}` sends traffic in clear; use https"),
                    )
                })
            })
            .collect();
    }
    let Some(url) = server_url(node) else {
        return Vec::new();
    };
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("ws://"))
    else {
        return Vec::new();
    };
    if is_local(rest.split('/').next().unwrap_or("")) {
        return Vec::new();
    }
    vec![(
        at.key("url"),
        format!("server `{url}` is plain HTTP; use https://"),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(v: Vec<(Location, String)>) -> Vec<String> {
        v.into_iter()
            .map(|(l, m)| format!("{}: {m}", l.dotted()))
            .collect()
    }

    #[test]
    fn path_parameters_against_templates() {
        let root = json!({
            "components": { "parameters": { "id": { "name": "id", "in": "path", "required": true } } },
            "paths": {
                "/a/{id}": {
                    "parameters": [{ "$ref": "#/components/parameters/id" }],
                    "get": {}, "put": {}
                },
                "/b/{id}/{x}": {
                    "get": { "parameters": [
                        { "name": "id", "in": "path", "required": true },
                        { "name": "y", "in": "path", "required": true },
                        { "name": "q", "in": "query" }
                    ] }
                },
                "/c/{id}": { "get": { "parameters": [{ "name": "id", "in": "path" }] } },
                "/d/{id}/{id}": {
                    "parameters": [{ "name": "id", "in": "path", "required": true }]
                }
            }
        });
        let found = msgs(path_params(
            &root,
            &Location::root().key("paths"),
            &root["paths"],
        ));
        assert_eq!(
            found,
            [
                "paths./b/{id}/{x}.get.parameters[1]: path parameter `y` is not in the path `/b/{id}/{x}`",
                "paths./b/{id}/{x}.get: `{x}` of `/b/{id}/{x}` is not declared as a path parameter of GET",
                "paths./c/{id}.get.parameters[0]: path parameter `id` must be `required: true`",
                "paths./d/{id}/{id}: path `/d/{id}/{id}` names `{id}` twice",
            ]
        );
    }

    #[test]
    fn operation_security_falls_back_to_the_document() {
        let at = Location::root().key("paths").key("/p").key("get");
        let secured = json!({ "security": [{ "k": [] }] });
        assert!(operation_security(&secured, &at, &json!({})).is_empty());
        assert!(
            operation_security(&json!({}), &at, &json!({ "security": [{ "k": [] }] })).is_empty()
        );
        let none = msgs(operation_security(&json!({}), &at, &json!({})));
        assert_eq!(
            none,
            [
                "paths./p.get: GET /p has no security requirement (neither the operation nor the document sets `security`)"
            ]
        );
        let public = msgs(operation_security(
            &secured,
            &at,
            &json!({ "security": [] }),
        ));
        assert_eq!(
            public,
            ["paths./p.get.security: GET /p is public: its `security` is empty"]
        );
        let optional = msgs(operation_security(
            &json!({ "security": [{}, { "k": [] }] }),
            &at,
            &json!({}),
        ));
        assert!(optional[0].contains("optional"), "{optional:?}");
    }

    #[test]
    fn schemes_tags_and_servers() {
        let root = json!({ "components": { "securitySchemes": { "k": {} } }, "tags": [{ "name": "pets" }] });
        let at = Location::root().key("security").index(0);
        assert!(security_schemes(&root, &at, &json!({ "k": [] })).is_empty());
        assert_eq!(
            msgs(security_schemes(
                &root,
                &at,
                &json!({ "k": [], "oops": [] })
            )),
            [
                "security[0].oops: security scheme `oops` is not defined in `components.securitySchemes`"
            ]
        );
        let v2 = json!({ "swagger": "2.0", "securityDefinitions": { "k": {} } });
        assert_eq!(
            msgs(security_schemes(&v2, &at, &json!({ "x": [] }))),
            ["security[0].x: security scheme `x` is not defined in `securityDefinitions`"]
        );
        let op = Location::root().key("paths").key("/p").key("get");
        assert_eq!(
            msgs(tag_defined(
                &root,
                &op,
                &json!({ "tags": ["pets", "cats"] })
            )),
            ["paths./p.get.tags[1]: tag `cats` is not defined in the document's `tags`"]
        );
        let s = Location::root().key("servers").index(0);
        let plain = |url: &str| no_plain_http(&json!({}), &s, &json!({ "url": url })).len();
        assert_eq!(plain("http://api.example.com/v1"), 1);
        assert_eq!(plain("HTTP://api.example.com"), 1);
        assert_eq!(plain("https://api.example.com"), 0);
        assert_eq!(plain("http://localhost:8080"), 0);
        assert_eq!(plain("http://127.0.0.1/x"), 0);
        assert_eq!(plain("http://[::1]:80"), 0);
        assert_eq!(plain("/v1"), 0);
        let with_vars = json!({ "url": "{scheme}://api.example.com", "variables": { "scheme": { "default": "http" } } });
        assert_eq!(no_plain_http(&json!({}), &s, &with_vars).len(), 1);
        let v2 = json!({ "host": "api.example.com", "schemes": ["https", "http"] });
        assert_eq!(
            msgs(no_plain_http(
                &v2,
                &Location::root().key("schemes"),
                &v2["schemes"]
            )),
            ["schemes[1]: scheme `http` sends traffic in clear; use https"]
        );
        let local = json!({ "host": "localhost:3000", "schemes": ["http"] });
        assert!(
            no_plain_http(&local, &Location::root().key("schemes"), &local["schemes"]).is_empty()
        );
    }

    #[test]
    fn documents_need_info_and_paths() {
        assert_eq!(
            msgs(document(&json!({ "openapi": "3.0.0" }), &Location::root())),
            [": `info` is missing", ": `paths` is missing"]
        );
        let ok31 =
            json!({ "openapi": "3.1.0", "info": { "title": "t", "version": "1" }, "webhooks": {} });
        assert!(document(&ok31, &Location::root()).is_empty());
        assert_eq!(
            msgs(document(
                &json!({ "info": { "title": "t" }, "paths": {} }),
                &Location::root()
            )),
            ["info: `info.version` is missing"]
        );
    }
}
