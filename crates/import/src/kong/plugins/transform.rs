//! request-transformer → request_transform.

use serde_json::{Map, Value, json};

use super::{BODY_JSON, Conf};
use crate::Report;
use crate::kong::{Grouped, strings};

/// `name:value` (Kong's form for headers, query parameters and body fields).
fn pair(s: &str) -> (String, String) {
    match s.split_once(':') {
        Some((n, v)) => (n.trim().to_string(), v.to_string()),
        None => (s.trim().to_string(), String::new()),
    }
}

pub(super) fn request_transformer(
    c: &mut Conf<'_>,
    report: &mut Report,
    g: &mut Grouped,
) -> Vec<Value> {
    if c.str("http_method").is_some() {
        report.unsupported(c.at("http_method"), "changing the request method");
    }
    let ops: Vec<(&'static str, Option<&Value>)> = ["remove", "rename", "replace", "add", "append"]
        .into_iter()
        .map(|op| (op, c.get(op)))
        .collect();
    let mut t = Map::new();
    for (section, target) in [
        ("headers", "headers"),
        ("querystring", "query"),
        ("body", "body"),
    ] {
        let read = |op: &str| -> Vec<(usize, String, String)> {
            ops.iter()
                .find(|(o, _)| *o == op)
                .and_then(|(_, v)| *v)
                .map(|v| {
                    strings(v, section)
                        .iter()
                        .enumerate()
                        .map(|(k, s)| {
                            let (n, val) = pair(s);
                            let n = if section == "headers" {
                                n.to_ascii_lowercase()
                            } else {
                                n
                            };
                            (k, n, val)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let place = |op: &str, k: usize| c.at(&format!("{op}.{section}[{k}]"));
        let mut rules = Map::new();
        let remove: Vec<String> = read("remove").into_iter().map(|(_, n, _)| n).collect();
        if !remove.is_empty() {
            rules.insert("remove".into(), json!(remove));
        }
        let mut rename = Map::new();
        for (_, n, v) in read("rename") {
            let v = if section == "headers" {
                v.to_ascii_lowercase()
            } else {
                v
            };
            rename.insert(n, json!(v.trim()));
        }
        let (mut set, mut add) = (Map::new(), Map::new());
        let templated = |v: &str| v.contains("$(");
        let replace = read("replace");
        let added = read("add");
        for (k, n, v) in &replace {
            if templated(v) {
                report.unsupported(
                    place("replace", *k),
                    "a template value (`$(…)`) is not evaluated",
                );
                continue;
            }
            if !added.iter().any(|(_, an, av)| an == n && av == v) {
                report.unsupported(
                    place("replace", *k),
                    format!("`replace` changes `{n}` only when the request has it; imported as `set`, which also adds it"),
                );
            }
            set.insert(n.clone(), json!(v));
        }
        for (k, n, v) in &added {
            if templated(v) {
                report.unsupported(
                    place("add", *k),
                    "a template value (`$(…)`) is not evaluated",
                );
                continue;
            }
            if set.contains_key(n) {
                continue;
            }
            if section == "body" {
                // Tollgate's body `add` also writes a field only when it is absent.
                add.insert(n.clone(), json!(v));
            } else {
                report.unsupported(
                    place("add", *k),
                    format!("`add` sets `{n}` only when the request lacks it; imported as `set`, which replaces what the client sent"),
                );
                set.insert(n.clone(), json!(v));
            }
        }
        for (k, n, v) in read("append") {
            if templated(&v) {
                report.unsupported(
                    place("append", k),
                    "a template value (`$(…)`) is not evaluated",
                );
            } else if section == "body" {
                report.unsupported(place("append", k), "appending to a body field");
            } else {
                add.insert(n, json!(v));
            }
        }
        for (key, m) in [("rename", rename), ("set", set), ("add", add)] {
            if !m.is_empty() {
                rules.insert(key.into(), Value::Object(m));
            }
        }
        if !rules.is_empty() {
            if section == "body" {
                g.add(c.at("body"), BODY_JSON);
            }
            t.insert(target.into(), Value::Object(rules));
        }
    }
    if let Some(uri) = ops
        .iter()
        .find(|(o, _)| *o == "replace")
        .and_then(|(_, v)| *v)
        .and_then(|v| super::get_str(v, "uri"))
    {
        match uri_template(uri) {
            Some(path) => {
                t.insert("path".into(), json!(path));
            }
            None => report.unsupported(
                c.at("replace.uri"),
                format!("`{uri}`: only `$(uri_captures.NAME)` templates become route parameters"),
            ),
        }
    }
    if t.is_empty() {
        return Vec::new();
    }
    vec![json!({ "request_transform": t })]
}

/// `/x/$(uri_captures.id)` (or `["id"]`) → `/x/{id}`; `None` for other templates.
pub(super) fn uri_template(uri: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = uri;
    while let Some(i) = rest.find("$(") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(')')? + i;
        let inner = rest[i + 2..end].trim();
        let name = inner.strip_prefix("uri_captures.").or_else(|| {
            inner
                .strip_prefix("uri_captures[")
                .and_then(|s| s.strip_suffix(']'))
                .map(|s| s.trim_matches(['"', '\'']))
        })?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        out.push('{');
        out.push_str(name);
        out.push('}');
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out.starts_with('/').then_some(out)
}
