//! The `validate` policy: a request is checked against its version's OpenAPI document
//! (2.0, 3.0 or 3.1) before anything is sent upstream. The path must be one the document
//! describes, with a described method; path, query, header and cookie parameters must be
//! present when required and match their schemas; a JSON body must match the request body
//! schema of its content type. Every violation is collected, so one `400` answer lists
//! them all.
//!
//! The document is compiled once per snapshot: each schema becomes a JSON Schema validator
//! (draft 4 for OpenAPI 2.0 and 3.0, with `nullable` and `readOnly` read as OpenAPI means
//! them; draft 2020-12 for 3.1). Local `$ref`s are resolved; a reference to another file is
//! refused when the configuration is applied.

mod compile;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use http::{HeaderMap, Method};
use jsonschema::Validator;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use compile::{Cx, Dialect};

static NULL: Value = Value::Null;

/// At most this many violations are listed in one answer.
const MAX_VIOLATIONS: usize = 50;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One way a request differs from the API description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// `request` (path, method, content type), `path`, `query`, `header`, `cookie` or
    /// `body`.
    pub at: &'static str,
    /// The parameter's name, or the JSON pointer into the body (`/items/0/name`).
    pub name: String,
    pub message: String,
}

impl Violation {
    fn new(at: &'static str, name: impl Into<String>, message: impl Into<String>) -> Self {
        Violation {
            at,
            name: name.into(),
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"in": self.at, "name": self.name, "message": self.message})
    }
}

/// A version's OpenAPI document, compiled for checking requests.
pub struct Spec {
    /// Path prefixes the document's servers put before its paths, longest first; the
    /// empty prefix last (routes often mount the paths without the server's base path).
    bases: Vec<String>,
    paths: Vec<PathItem>,
}

struct PathItem {
    template: String,
    segments: Vec<Vec<Part>>,
    /// Literal segments: a concrete path wins over a templated one (`/pets/mine` over
    /// `/pets/{id}`).
    literal: usize,
    operations: Vec<(Method, Operation)>,
}

#[derive(Debug, PartialEq)]
enum Part {
    Literal(String),
    Param(String),
}

/// One operation's parameters and request body.
pub struct Operation {
    params: Vec<Param>,
    body: Option<RequestBody>,
}

struct Param {
    name: String,
    location: Location,
    required: bool,
    shape: Shape,
    validator: Option<Validator>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Location {
    Path,
    Query,
    Header,
    Cookie,
}

impl Location {
    fn as_str(self) -> &'static str {
        match self {
            Location::Path => "path",
            Location::Query => "query",
            Location::Header => "header",
            Location::Cookie => "cookie",
        }
    }
}

/// How a parameter's text becomes a JSON value before its schema checks it.
#[derive(Clone, Debug, PartialEq)]
enum Shape {
    String,
    Integer,
    Number,
    Boolean,
    /// Items, and how they are written: separated by a character, or (`None`) as the
    /// parameter repeated (`?id=1&id=2`).
    Array(Box<Shape>, Option<char>),
    /// Objects and anything else: only presence is checked.
    Other,
}

/// The request body an operation accepts, by media type.
pub struct RequestBody {
    required: bool,
    media: Vec<(String, Option<Validator>)>,
}

impl Spec {
    /// Compiles an OpenAPI document (YAML or JSON text).
    pub fn compile(text: &str) -> Result<Spec, String> {
        let doc = tollgate_model::lenient::parse(text)
            .map_err(|e| format!("the OpenAPI document does not parse: {e}"))?;
        let dialect = if doc.get("swagger").is_some() {
            Dialect::V2
        } else {
            match doc.get("openapi").and_then(Value::as_str) {
                Some(v) if v.starts_with("3.1") => Dialect::V31,
                Some(v) if v.starts_with("3.") => Dialect::V30,
                Some(v) => return Err(format!("OpenAPI version `{v}` is not supported")),
                None => {
                    return Err(
                        "the document is not OpenAPI 2.0 or 3.x (no `openapi` or `swagger` field)"
                            .into(),
                    );
                }
            }
        };
        let cx = Cx { doc: &doc, dialect };
        let mut bases = cx.bases();
        bases.sort_by_key(|b| std::cmp::Reverse(b.len()));
        bases.dedup();
        let mut paths = Vec::new();
        if let Some(items) = doc.get("paths").and_then(Value::as_object) {
            for (template, item) in items {
                if template.starts_with("x-") {
                    continue;
                }
                let at = format!("paths.{template}");
                let item = cx.deref(item, &at)?;
                let shared = item.get("parameters").unwrap_or(&NULL);
                let mut operations = Vec::new();
                for method in METHODS {
                    let Some(op) = item.get(method) else { continue };
                    let at = format!("{at}.{method}");
                    let op = cx.operation(shared, op, &at)?;
                    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                        .map_err(|e| e.to_string())?;
                    operations.push((method, op));
                }
                let segments = parse_template(template);
                let literal = segments
                    .iter()
                    .filter(|s| matches!(s[..], [Part::Literal(_)]))
                    .count();
                paths.push(PathItem {
                    template: template.clone(),
                    segments,
                    literal,
                    operations,
                });
            }
        }
        // Stable: among equally concrete paths, the document's order decides.
        paths.sort_by_key(|p| std::cmp::Reverse(p.literal));
        Ok(Spec { bases, paths })
    }

    /// The operation a request calls, with the violations its method, path and parameters
    /// show. `None` when the document describes no such operation (the violations say so).
    pub fn check_head<'s>(
        &'s self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> (Option<&'s Operation>, Vec<Violation>) {
        let mut found_path = None;
        'bases: for base in &self.bases {
            let Some(rest) = path.strip_prefix(base.as_str()) else {
                continue;
            };
            if !base.is_empty() && !rest.is_empty() && !rest.starts_with('/') {
                continue;
            }
            for item in &self.paths {
                if let Some(params) = item.matches(rest) {
                    found_path = Some((item, params));
                    break 'bases;
                }
            }
        }
        let Some((item, path_params)) = found_path else {
            return (
                None,
                vec![Violation::new(
                    "request",
                    path,
                    format!("{method} {path} is not described by the API's OpenAPI document"),
                )],
            );
        };
        let wanted =
            if *method == Method::HEAD && !item.operations.iter().any(|(m, _)| m == Method::HEAD) {
                &Method::GET
            } else {
                method
            };
        let Some((_, op)) = item.operations.iter().find(|(m, _)| m == wanted) else {
            let described: Vec<&str> = item.operations.iter().map(|(m, _)| m.as_str()).collect();
            return (
                None,
                vec![Violation::new(
                    "request",
                    path,
                    format!(
                        "{method} is not described for {} (described: {})",
                        item.template,
                        described.join(", ")
                    ),
                )],
            );
        };
        let violations = op.check_params(&path_params, query, headers);
        (Some(op), violations)
    }
}

impl PathItem {
    /// The path parameters when `path` is an instance of this template.
    fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let mut given = path.split('/');
        let mut params = Vec::new();
        for segment in &self.segments {
            let text = given.next()?;
            match_segment(segment, text, &mut params)?;
        }
        // A trailing slash is the same path; anything more is not.
        match (given.next(), given.next()) {
            (None, _) | (Some(""), None) => Some(params),
            _ => None,
        }
    }
}

/// Matches one path segment against its template parts (`{name}.{ext}`): each parameter
/// takes the text up to the next literal part, and never nothing.
fn match_segment(parts: &[Part], mut text: &str, params: &mut Vec<(String, String)>) -> Option<()> {
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::Literal(lit) => text = text.strip_prefix(lit.as_str())?,
            Part::Param(name) => {
                let end = match parts.get(i + 1) {
                    Some(Part::Literal(next)) => text.find(next.as_str())?,
                    _ => text.len(),
                };
                if end == 0 {
                    return None;
                }
                let value = percent_decode_str(&text[..end]).decode_utf8_lossy();
                params.push((name.clone(), value.into_owned()));
                text = &text[end..];
            }
        }
    }
    text.is_empty().then_some(())
}

fn parse_template(template: &str) -> Vec<Vec<Part>> {
    let template = template.strip_prefix('/').unwrap_or(template);
    let template = template.strip_suffix('/').unwrap_or(template);
    if template.is_empty() {
        return Vec::new();
    }
    template
        .split('/')
        .map(|segment| {
            let mut parts = Vec::new();
            let mut rest = segment;
            while let Some(open) = rest.find('{') {
                let Some(close) = rest[open..].find('}') else {
                    break;
                };
                if open > 0 {
                    parts.push(Part::Literal(rest[..open].to_string()));
                }
                parts.push(Part::Param(rest[open + 1..open + close].to_string()));
                rest = &rest[open + close + 1..];
            }
            if !rest.is_empty() {
                parts.push(Part::Literal(rest.to_string()));
            }
            parts
        })
        .collect()
}

impl Operation {
    /// The request body this operation accepts, when the document describes one.
    pub fn body(&self) -> Option<&RequestBody> {
        self.body.as_ref()
    }

    fn check_params(
        &self,
        path_params: &[(String, String)],
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Vec<Violation> {
        let query_pairs: Vec<(String, String)> = query.map(form_pairs).unwrap_or_default();
        let mut violations = Vec::new();
        for param in &self.params {
            let values: Vec<String> = match param.location {
                Location::Path => path_params
                    .iter()
                    .filter(|(n, _)| *n == param.name)
                    .map(|(_, v)| v.clone())
                    .collect(),
                Location::Query => query_pairs
                    .iter()
                    .filter(|(n, _)| *n == param.name)
                    .map(|(_, v)| v.clone())
                    .collect(),
                Location::Header => {
                    let all: Vec<&str> = headers
                        .get_all(param.name.as_str())
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect();
                    if all.is_empty() {
                        Vec::new()
                    } else {
                        vec![all.join(", ")]
                    }
                }
                Location::Cookie => headers
                    .get_all(http::header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|c| c.split(';'))
                    .filter_map(|c| c.trim().split_once('='))
                    .filter(|(n, _)| *n == param.name)
                    .map(|(_, v)| v.to_string())
                    .collect(),
            };
            let at = param.location.as_str();
            if values.is_empty() {
                if param.required {
                    violations.push(Violation::new(
                        at,
                        &param.name,
                        format!("required {at} parameter `{}` is missing", param.name),
                    ));
                }
                continue;
            }
            let Some(validator) = &param.validator else {
                continue;
            };
            let value = match &param.shape {
                Shape::Other => continue,
                Shape::Array(item, separator) => {
                    let items: Vec<&str> = match separator {
                        Some(sep) if values.len() == 1 => values[0].split(*sep).collect(),
                        _ => values.iter().map(String::as_str).collect(),
                    };
                    Value::Array(items.into_iter().map(|v| coerce(item, v)).collect())
                }
                shape => coerce(shape, &values[0]),
            };
            for error in validator.iter_errors(&value).take(MAX_VIOLATIONS) {
                let within = error.instance_path().as_str();
                violations.push(Violation::new(
                    at,
                    &param.name,
                    if within.is_empty() {
                        format!("{at} parameter `{}`: {error}", param.name)
                    } else {
                        format!("{at} parameter `{}` at {within}: {error}", param.name)
                    },
                ));
            }
        }
        violations
    }
}

impl RequestBody {
    pub fn required(&self) -> bool {
        self.required
    }

    /// Checks a whole body sent with `content_type`.
    pub fn check(&self, content_type: Option<&str>, bytes: &[u8], out: &mut Vec<Violation>) {
        if bytes.is_empty() {
            if self.required {
                out.push(Violation::new("body", "", "a request body is required"));
            }
            return;
        }
        let accepted = || {
            self.media
                .iter()
                .map(|(m, _)| m.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(content_type) = content_type else {
            out.push(Violation::new(
                "request",
                "content-type",
                format!("the body has no Content-Type (accepted: {})", accepted()),
            ));
            return;
        };
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let Some((_, validator)) = self.media.iter().find(|(m, _)| media_matches(m, &essence))
        else {
            out.push(Violation::new(
                "request",
                "content-type",
                format!(
                    "content type `{essence}` is not accepted here (accepted: {})",
                    accepted()
                ),
            ));
            return;
        };
        let Some(validator) = validator else { return };
        let value: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                out.push(Violation::new(
                    "body",
                    "",
                    format!("the body is not valid JSON: {e}"),
                ));
                return;
            }
        };
        for error in validator.iter_errors(&value).take(MAX_VIOLATIONS) {
            out.push(Violation::new(
                "body",
                error.instance_path().as_str(),
                error.to_string(),
            ));
        }
    }
}

/// Whether a described media type (`application/json`, `application/*`, `*/*`) covers a
/// request's.
fn media_matches(described: &str, essence: &str) -> bool {
    let described = described.split(';').next().unwrap_or("").trim();
    if described.eq_ignore_ascii_case(essence) || described == "*/*" {
        return true;
    }
    match described.strip_suffix("/*") {
        Some(kind) => essence
            .split_once('/')
            .is_some_and(|(k, _)| k.eq_ignore_ascii_case(kind)),
        None => false,
    }
}

fn is_json(media: &str) -> bool {
    let m = media.split(';').next().unwrap_or("").trim();
    m.eq_ignore_ascii_case("application/json") || m.to_ascii_lowercase().ends_with("+json")
}

/// A query string's pairs, decoded (`+` is a space).
fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// A parameter's text as the JSON value its schema expects; text that is not a number
/// (or boolean) stays text, so the schema names the mismatch.
fn coerce(shape: &Shape, text: &str) -> Value {
    match shape {
        Shape::Integer => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(text)),
        Shape::Number => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::from(text), Value::Number),
        Shape::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::from(text),
        },
        _ => Value::from(text),
    }
}

/// A route's `validate` policy: the version's compiled document and the policy's options.
pub struct CompiledValidate {
    pub spec: Arc<Spec>,
    pub body: bool,
    pub max_body: u64,
}

impl std::fmt::Debug for CompiledValidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledValidate")
            .field("paths", &self.spec.paths.len())
            .field("body", &self.body)
            .field("max_body", &self.max_body)
            .finish()
    }
}
