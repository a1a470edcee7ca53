//! `request_transform` and `response_transform`, compiled once per snapshot: header and
//! query rules, path rewrites with route parameters, and JSON body field rules.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Map, Value};
use tollgate_model::policy::{BodyRules, FieldRules, Transform};

/// Query values written by configuration are encoded like form values.
const QUERY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'%');

/// Default limit for bodies buffered by body rules.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;

#[derive(Debug, Default)]
struct HeaderRules {
    remove: Vec<HeaderName>,
    rename: Vec<(HeaderName, HeaderName)>,
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug)]
pub struct CompiledTransform {
    headers: HeaderRules,
    query: FieldRules,
    path: Option<String>,
    body: Option<BodyRules>,
    pub max_body: u64,
}

fn name(n: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("`{n}` is not a header name"))
}

fn value(v: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(v).map_err(|_| format!("`{v}` is not a header value"))
}

impl CompiledTransform {
    pub fn compile(t: &Transform) -> Result<CompiledTransform, String> {
        let h = &t.headers;
        let headers = HeaderRules {
            remove: h.remove.iter().map(|n| name(n)).collect::<Result<_, _>>()?,
            rename: h
                .rename
                .iter()
                .map(|(a, b)| Ok((name(a)?, name(b)?)))
                .collect::<Result<_, String>>()?,
            set: h
                .set
                .iter()
                .map(|(n, v)| Ok((name(n)?, value(v)?)))
                .collect::<Result<_, String>>()?,
            add: h
                .add
                .iter()
                .map(|(n, v)| Ok((name(n)?, value(v)?)))
                .collect::<Result<_, String>>()?,
        };
        Ok(CompiledTransform {
            headers,
            query: t.query.clone(),
            path: t.path.clone(),
            body: (!t.body.is_empty()).then(|| t.body.clone()),
            max_body: t.max_body.map(|m| m.0).unwrap_or(DEFAULT_MAX_BODY),
        })
    }

    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        let r = &self.headers;
        for n in &r.remove {
            headers.remove(n);
        }
        for (from, to) in &r.rename {
            let values: Vec<HeaderValue> = headers.get_all(from).iter().cloned().collect();
            if !values.is_empty() {
                headers.remove(from);
                for v in values {
                    headers.append(to.clone(), v);
                }
            }
        }
        for (n, v) in &r.set {
            headers.insert(n.clone(), v.clone());
        }
        for (n, v) in &r.add {
            headers.append(n.clone(), v.clone());
        }
    }

    pub fn has_query_rules(&self) -> bool {
        !self.query.is_empty()
    }

    /// Applies the query rules to a raw query string. Names compare after decoding `+`
    /// and percent escapes; values from configuration are encoded.
    pub fn apply_query(&self, query: Option<&str>) -> Option<String> {
        let mut pairs: Vec<(String, String)> = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (p.to_string(), String::new()),
            })
            .collect();
        let decoded = |k: &str| {
            percent_encoding::percent_decode_str(&k.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        let q = &self.query;
        pairs.retain(|(k, _)| !q.remove.contains(&decoded(k)));
        for (from, to) in &q.rename {
            for pair in pairs.iter_mut().filter(|(k, _)| decoded(k) == *from) {
                pair.0 = utf8_percent_encode(to, QUERY).to_string();
            }
        }
        for (k, v) in &q.set {
            pairs.retain(|(existing, _)| decoded(existing) != *k);
            pairs.push((
                utf8_percent_encode(k, QUERY).to_string(),
                utf8_percent_encode(v, QUERY).to_string(),
            ));
        }
        for (k, v) in &q.add {
            pairs.push((
                utf8_percent_encode(k, QUERY).to_string(),
                utf8_percent_encode(v, QUERY).to_string(),
            ));
        }
        if pairs.is_empty() {
            return None;
        }
        Some(
            pairs
                .iter()
                .map(|(k, v)| {
                    if v.is_empty() {
                        k.clone()
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect::<Vec<_>>()
                .join("&"),
        )
    }

    /// The rewritten path, with route parameters filled in (they are already in
    /// normalised, percent-encoded form).
    pub fn rewrite_path(&self, params: &[(&str, String)]) -> Option<String> {
        let template = self.path.as_ref()?;
        Some(render(template, |name| {
            params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        }))
    }

    pub fn has_body_rules(&self) -> bool {
        self.body.is_some()
    }

    /// Applies the body rules to a JSON body; `None` when the body is not JSON.
    pub fn apply_body(&self, body: &[u8]) -> Option<Bytes> {
        let rules = self.body.as_ref()?;
        let mut doc: Value = serde_json::from_slice(body).ok()?;
        apply_body_rules(rules, &mut doc);
        serde_json::to_vec(&doc).ok().map(Bytes::from)
    }
}

/// Replaces each `{name}` in `template` with `lookup(name)` (empty when unknown).
pub fn render(template: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                out.push_str(&lookup(&after[..close]).unwrap_or_default());
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn apply_body_rules(rules: &BodyRules, doc: &mut Value) {
    for path in &rules.remove {
        take(doc, path);
    }
    for (from, to) in &rules.rename {
        if let Some(v) = take(doc, from) {
            put(doc, to, v, true);
        }
    }
    for (path, v) in &rules.set {
        put(doc, path, v.clone(), true);
    }
    for (path, v) in &rules.add {
        put(doc, path, v.clone(), false);
    }
}

/// Looks up a dot path in a JSON document.
pub fn get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn take(doc: &mut Value, path: &str) -> Option<Value> {
    let (parent, last) = match path.rsplit_once('.') {
        Some((p, l)) => (get_mut(doc, p)?, l),
        None => (doc, path),
    };
    parent.as_object_mut()?.remove(last)
}

fn get_mut<'a>(doc: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.')
        .try_fold(doc, |v, key| v.as_object_mut()?.get_mut(key))
}

fn put(doc: &mut Value, path: &str, value: Value, overwrite: bool) {
    let mut cur = doc;
    let mut keys = path.split('.').peekable();
    while let Some(key) = keys.next() {
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if keys.peek().is_none() {
            if overwrite || !map.contains_key(key) {
                map.insert(key.to_string(), value);
            }
            return;
        }
        cur = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(json: &str) -> CompiledTransform {
        let t: Transform = serde_json::from_str(json).unwrap();
        CompiledTransform::compile(&t).unwrap()
    }

    #[test]
    fn header_rules_apply_in_order() {
        let t = compile(
            r#"{"headers": {"remove": ["x-drop"], "rename": {"x-old": "x-new"}, "set": {"x-set": "1"}, "add": {"x-add": "a"}}}"#,
        );
        let mut h = HeaderMap::new();
        h.insert("x-drop", "1".parse().unwrap());
        h.insert("x-old", "v".parse().unwrap());
        h.insert("x-set", "0".parse().unwrap());
        h.insert("x-add", "z".parse().unwrap());
        t.apply_headers(&mut h);
        assert!(h.get("x-drop").is_none() && h.get("x-old").is_none());
        assert_eq!(h.get("x-new").unwrap(), "v");
        assert_eq!(h.get("x-set").unwrap(), "1");
        assert_eq!(h.get_all("x-add").iter().count(), 2);
    }

    #[test]
    fn query_rules() {
        let t = compile(
            r#"{"query": {"remove": ["debug"], "rename": {"q": "search"}, "set": {"limit": "10"}, "add": {"tag": "a b"}}}"#,
        );
        assert_eq!(
            t.apply_query(Some("q=x&debug=1&limit=99")).unwrap(),
            "search=x&limit=10&tag=a%20b"
        );
        assert_eq!(t.apply_query(None).unwrap(), "limit=10&tag=a%20b");
    }

    #[test]
    fn body_rules_on_nested_fields() {
        let t = compile(
            r#"{"body": {"remove": ["customer.email"], "rename": {"id": "order_id"}, "set": {"meta.source": "gateway"}, "add": {"currency": "USD", "total": 0}}}"#,
        );
        let out = t
            .apply_body(br#"{"id": 7, "total": 12, "customer": {"email": "a@b.c", "name": "A"}}"#)
            .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"order_id": 7, "total": 12, "customer": {"name": "A"}, "meta": {"source": "gateway"}, "currency": "USD"})
        );
        assert!(t.apply_body(b"not json").is_none());
    }

    #[test]
    fn templates_render_params() {
        assert_eq!(
            render("/users/{id}/orders", |n| (n == "id")
                .then(|| "42".to_string())),
            "/users/42/orders"
        );
        assert_eq!(render("/x/{missing}", |_| None), "/x/");
        let doc = json!({"user": {"id": 5, "tags": ["a"]}});
        assert_eq!(get(&doc, "user.id"), Some(&json!(5)));
        assert_eq!(get(&doc, "user.tags.0"), Some(&json!("a")));
    }
}
