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

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, Method};
use jsonschema::{Draft, Validator};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    V2,
    V30,
    V31,
}

/// Compiling context: the whole document, for `$ref`s.
struct Cx<'d> {
    doc: &'d Value,
    dialect: Dialect,
}

impl<'d> Cx<'d> {
    fn draft(&self) -> Draft {
        match self.dialect {
            Dialect::V31 => Draft::Draft202012,
            Dialect::V2 | Dialect::V30 => Draft::Draft4,
        }
    }

    /// The path prefixes of the document's servers (server variables at their defaults).
    fn bases(&self) -> Vec<String> {
        let mut bases = vec![String::new()];
        let trim = |p: &str| p.trim_end_matches('/').to_string();
        if self.dialect == Dialect::V2 {
            if let Some(base) = self.doc.get("basePath").and_then(Value::as_str) {
                bases.push(trim(base));
            }
            return bases;
        }
        for server in self
            .doc
            .get("servers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(url) = server.get("url").and_then(Value::as_str) else {
                continue;
            };
            let mut url = url.to_string();
            if let Some(vars) = server.get("variables").and_then(Value::as_object) {
                for (name, var) in vars {
                    if let Some(d) = var.get("default").and_then(Value::as_str) {
                        url = url.replace(&format!("{{{name}}}"), d);
                    }
                }
            }
            let path = match url.split_once("://") {
                Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
                None => url.as_str(),
            };
            bases.push(trim(path.split(['?', '#']).next().unwrap_or("")));
        }
        bases
    }

    /// Follows a local `$ref` (repeatedly) to the value it names.
    fn deref(&self, value: &'d Value, at: &str) -> Result<&'d Value, String> {
        let mut value = value;
        for _ in 0..32 {
            let Some(r) = value.get("$ref").and_then(Value::as_str) else {
                return Ok(value);
            };
            value = self.target(r, at)?;
        }
        Err(format!("{at}: `$ref` chain too long (a cycle?)"))
    }

    fn target(&self, r: &str, at: &str) -> Result<&'d Value, String> {
        let Some(pointer) = r.strip_prefix('#') else {
            return Err(format!(
                "{at}: `$ref` `{r}` points to another file; bundle the document into one file"
            ));
        };
        let pointer = percent_decode_str(pointer).decode_utf8_lossy();
        self.doc
            .pointer(&pointer)
            .ok_or_else(|| format!("{at}: `$ref` `{r}` points nowhere in the document"))
    }

    fn operation(&self, shared: &'d Value, op: &'d Value, at: &str) -> Result<Operation, String> {
        // Operation parameters override path-level ones of the same name and location.
        let mut declared: Vec<(String, String, &'d Value, String)> = Vec::new();
        let own = op.get("parameters").unwrap_or(&NULL);
        for (list, list_at) in [(shared, "path parameters"), (own, "parameters")] {
            for (i, p) in list.as_array().into_iter().flatten().enumerate() {
                let p_at = format!("{at}.{list_at}[{i}]");
                let p = self.deref(p, &p_at)?;
                let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
                let location = p.get("in").and_then(Value::as_str).unwrap_or_default();
                declared.retain(|(n, l, _, _)| !(n == name && l == location));
                declared.push((name.to_string(), location.to_string(), p, p_at));
            }
        }
        let mut params = Vec::new();
        let mut body = None;
        let mut form = false;
        for (name, location, p, p_at) in declared {
            let location = match location.as_str() {
                "path" => Location::Path,
                "query" => Location::Query,
                "header" => {
                    // OpenAPI 3 ignores these as parameters; the gateway handles them.
                    if ["accept", "content-type", "authorization"]
                        .contains(&name.to_ascii_lowercase().as_str())
                    {
                        continue;
                    }
                    Location::Header
                }
                "cookie" => Location::Cookie,
                "body" => {
                    body = Some(self.body_v2(op, p, &p_at)?);
                    continue;
                }
                "formData" => {
                    form = true;
                    continue;
                }
                other => return Err(format!("{p_at}: unknown parameter location `{other}`")),
            };
            params.push(self.param(name, location, p, &p_at)?);
        }
        if let Some(rb) = op.get("requestBody") {
            body = Some(self.body_v3(rb, &format!("{at}.requestBody"))?);
        } else if form {
            // Form fields are not checked one by one; the media type still is.
            body = Some(RequestBody {
                required: false,
                media: self.consumes(op).into_iter().map(|m| (m, None)).collect(),
            });
        }
        Ok(Operation { params, body })
    }

    fn param(
        &self,
        name: String,
        location: Location,
        p: &'d Value,
        at: &str,
    ) -> Result<Param, String> {
        let required = location == Location::Path
            || p.get("required").and_then(Value::as_bool).unwrap_or(false);
        let explode = p.get("explode").and_then(Value::as_bool);
        let (schema, separator) = match self.dialect {
            Dialect::V2 => {
                // 2.0 writes the schema's keywords on the parameter itself.
                let mut schema = Map::new();
                for key in [
                    "type",
                    "format",
                    "items",
                    "enum",
                    "minimum",
                    "maximum",
                    "exclusiveMinimum",
                    "exclusiveMaximum",
                    "minLength",
                    "maxLength",
                    "pattern",
                    "minItems",
                    "maxItems",
                    "uniqueItems",
                    "multipleOf",
                ] {
                    if let Some(v) = p.get(key) {
                        schema.insert(key.into(), v.clone());
                    }
                }
                let separator = match p.get("collectionFormat").and_then(Value::as_str) {
                    Some("multi") => None,
                    Some("ssv") => Some(' '),
                    Some("tsv") => Some('\t'),
                    Some("pipes") => Some('|'),
                    _ => Some(','),
                };
                (Value::Object(schema), separator)
            }
            Dialect::V30 | Dialect::V31 => {
                let schema = match (p.get("schema"), p.get("content")) {
                    (Some(s), _) => s.clone(),
                    // A parameter written as content (JSON in a query string) is
                    // checked for presence only.
                    (None, Some(_)) | (None, None) => Value::Null,
                };
                let separator = match p.get("style").and_then(Value::as_str) {
                    Some("spaceDelimited") => Some(' '),
                    Some("pipeDelimited") => Some('|'),
                    Some("form") | None
                        if matches!(location, Location::Query | Location::Cookie)
                            && explode.unwrap_or(true) =>
                    {
                        None
                    }
                    _ => Some(','),
                };
                (schema, separator)
            }
        };
        if schema.is_null() {
            return Ok(Param {
                name,
                location,
                required,
                shape: Shape::Other,
                validator: None,
            });
        }
        let shape = match self.shape(&schema, at)? {
            Shape::Array(item, _) => Shape::Array(item, separator),
            s => s,
        };
        let validator = self.validator(&schema, at)?;
        Ok(Param {
            name,
            location,
            required,
            shape,
            validator: Some(validator),
        })
    }

    fn shape(&self, schema: &'d Value, at: &str) -> Result<Shape, String> {
        let schema = self.deref(schema, at)?;
        let ty = match schema.get("type") {
            Some(Value::String(t)) => Some(t.as_str()),
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
            _ => None,
        };
        Ok(match ty {
            Some("integer") => Shape::Integer,
            Some("number") => Shape::Number,
            Some("boolean") => Shape::Boolean,
            Some("string") => Shape::String,
            Some("array") => {
                let item = match schema.get("items") {
                    Some(items) => self.shape(items, at)?,
                    None => Shape::String,
                };
                Shape::Array(Box::new(item), Some(','))
            }
            Some(_) => Shape::Other,
            // No type: the text is checked as text.
            None if schema.get("properties").is_some() => Shape::Other,
            None => Shape::String,
        })
    }

    fn consumes(&self, op: &Value) -> Vec<String> {
        let list = op
            .get("consumes")
            .or_else(|| self.doc.get("consumes"))
            .and_then(Value::as_array);
        match list {
            Some(l) if !l.is_empty() => l
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => vec!["application/json".into()],
        }
    }

    fn body_v2(&self, op: &Value, p: &'d Value, at: &str) -> Result<RequestBody, String> {
        let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
        let schema = p.get("schema");
        let mut media = Vec::new();
        for m in self.consumes(op) {
            let validator = match schema {
                Some(s) if is_json(&m) => Some(self.validator(s, &format!("{at}.schema"))?),
                _ => None,
            };
            media.push((m, validator));
        }
        Ok(RequestBody { required, media })
    }

    fn body_v3(&self, rb: &'d Value, at: &str) -> Result<RequestBody, String> {
        let rb = self.deref(rb, at)?;
        let required = rb.get("required").and_then(Value::as_bool).unwrap_or(false);
        let mut media = Vec::new();
        for (m, content) in rb
            .get("content")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let validator = match content.get("schema") {
                Some(s) if is_json(m) => {
                    Some(self.validator(s, &format!("{at}.content.{m}.schema"))?)
                }
                _ => None,
            };
            media.push((m.clone(), validator));
        }
        Ok(RequestBody { required, media })
    }

    /// A validator for one schema of the document: the schema with every definition it
    /// reaches (through `$ref`, transitively) copied beside it, read as OpenAPI means it.
    fn validator(&self, schema: &'d Value, at: &str) -> Result<Validator, String> {
        let mut names: HashMap<String, String> = HashMap::new();
        let mut queue = Vec::new();
        collect_refs(schema, &mut queue);
        let mut i = 0;
        while i < queue.len() {
            let r = queue[i].clone();
            i += 1;
            if names.contains_key(&r) {
                continue;
            }
            collect_refs(self.target(&r, at)?, &mut queue);
            let name = format!("d{}", names.len());
            names.insert(r, name);
        }
        // Now that every reference has a name, the copies can point at each other.
        let mut definitions = Map::new();
        for (r, name) in &names {
            let target = self.target(r, at)?;
            definitions.insert(name.clone(), self.rewrite(target, &names));
        }
        let container = match self.draft() {
            Draft::Draft4 => "definitions",
            _ => "$defs",
        };
        let root = json!({
            "allOf": [self.rewrite(schema, &names)],
            container: Value::Object(definitions),
        });
        let mut options = jsonschema::options()
            .with_draft(self.draft())
            .should_validate_formats(true);
        if self.draft() == Draft::Draft4 {
            // Formats OpenAPI documents use that JSON Schema draft 4 does not know.
            options = options
                .with_format("uuid", is_uuid)
                .with_format("date", is_date)
                .with_format("byte", is_base64);
        }
        options
            .build(&root)
            .map_err(|e| format!("{at}: the schema does not compile: {e}"))
    }

    /// A copy of `schema` with references renamed into the definitions container, and
    /// OpenAPI's own keywords turned into JSON Schema: `nullable` (3.0) and `x-nullable`
    /// (2.0) allow `null`; a `readOnly` property is not required in a request (3.0); a
    /// 2.0 `file` type accepts anything.
    fn rewrite(&self, schema: &Value, names: &HashMap<String, String>) -> Value {
        let container = match self.draft() {
            Draft::Draft4 => "definitions",
            _ => "$defs",
        };
        match schema {
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.rewrite(v, names)).collect())
            }
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    if k == "$ref"
                        && let Some(name) = v.as_str().and_then(|r| names.get(r))
                    {
                        out.insert(k.clone(), Value::from(format!("#/{container}/{name}")));
                    } else if k == "type" && v == "file" {
                        continue;
                    } else if k == "properties" || k == "patternProperties" || k == "definitions" {
                        // Keys here are names, not keywords.
                        let inner = v
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .map(|(n, s)| (n.clone(), self.rewrite(s, names)))
                                    .collect::<Map<_, _>>()
                            })
                            .map_or(Value::Null, Value::Object);
                        out.insert(k.clone(), inner);
                    } else {
                        out.insert(k.clone(), self.rewrite(v, names));
                    }
                }
                if map.get("type") == Some(&Value::from("integer"))
                    && map.get("format") == Some(&Value::from("int32"))
                {
                    out.entry("minimum").or_insert(Value::from(i32::MIN));
                    out.entry("maximum").or_insert(Value::from(i32::MAX));
                }
                if self.dialect != Dialect::V31 {
                    let nullable = ["nullable", "x-nullable"]
                        .iter()
                        .any(|k| map.get(*k) == Some(&Value::Bool(true)));
                    if nullable {
                        if let Some(Value::String(t)) = out.get("type").cloned() {
                            out.insert("type".into(), json!([t, "null"]));
                        }
                        if let Some(Value::Array(e)) = out.get_mut("enum")
                            && !e.contains(&Value::Null)
                        {
                            e.push(Value::Null);
                        }
                    }
                    if self.dialect == Dialect::V30
                        && let (Some(Value::Array(required)), Some(Value::Object(props))) =
                            (map.get("required"), map.get("properties"))
                    {
                        let kept: Vec<Value> = required
                            .iter()
                            .filter(|n| {
                                let prop = n.as_str().and_then(|n| props.get(n));
                                !prop.is_some_and(|p| self.read_only(p))
                            })
                            .cloned()
                            .collect();
                        out.insert("required".into(), Value::Array(kept));
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    fn read_only(&self, prop: &Value) -> bool {
        let prop = self.deref(prop, "").unwrap_or(prop);
        prop.get("readOnly") == Some(&Value::Bool(true))
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_date(s: &str) -> bool {
    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).is_ok()
}

fn is_base64(s: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

/// Every local or external `$ref` under a schema, in order.
fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    const PETS: &str = r##"
openapi: 3.0.3
info: { title: Pets, version: "1" }
servers: [{ url: "https://api.example.com/v1" }]
paths:
  /pets:
    get:
      parameters:
        - { name: limit, in: query, schema: { type: integer, minimum: 1, maximum: 100 } }
        - { name: tags, in: query, schema: { type: array, items: { type: string, enum: [cat, dog] } } }
        - { name: x-tenant, in: header, required: true, schema: { type: string, format: uuid } }
      responses: { "200": { description: ok } }
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/NewPet" }
      responses: { 201: { description: made } }
  /pets/mine:
    get: { responses: { "200": { description: ok } } }
  /pets/{id}:
    parameters:
      - { name: id, in: path, required: true, schema: { type: integer, format: int64 } }
    get: { responses: { "200": { description: ok } } }
  /files/{name}.{ext}:
    get: { responses: { "200": { description: ok } } }
components:
  schemas:
    NewPet:
      type: object
      required: [id, name]
      properties:
        id: { type: integer, readOnly: true }
        name: { type: string, minLength: 1 }
        tag: { type: string, nullable: true }
        owner: { $ref: "#/components/schemas/Owner" }
    Owner:
      type: object
      required: [email]
      properties:
        email: { type: string, format: email }
        friend: { $ref: "#/components/schemas/Owner" }
"##;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn head(
        spec: &Spec,
        method: Method,
        path: &str,
        query: Option<&str>,
        h: &HeaderMap,
    ) -> Vec<Violation> {
        spec.check_head(&method, path, query, h).1
    }

    #[test]
    fn paths_match_with_or_without_the_server_base() {
        let spec = Spec::compile(PETS).unwrap();
        let h = headers(&[("x-tenant", "5f0c6f3e-8c5e-4c7a-9d0e-1b2a3c4d5e6f")]);
        assert_eq!(head(&spec, Method::GET, "/v1/pets", None, &h), vec![]);
        assert_eq!(head(&spec, Method::GET, "/pets", None, &h), vec![]);
        assert_eq!(head(&spec, Method::GET, "/v1/pets/7", None, &h), vec![]);
        assert_eq!(head(&spec, Method::GET, "/v1/pets/mine", None, &h), vec![]);
        assert_eq!(
            head(&spec, Method::GET, "/files/report.pdf", None, &h),
            vec![]
        );
        let v = head(&spec, Method::GET, "/v1/owners", None, &h);
        assert!(v[0].message.contains("not described"), "{v:?}");
        let v = head(&spec, Method::DELETE, "/v1/pets", None, &h);
        assert!(v[0].message.contains("described: GET, POST"), "{v:?}");
        // HEAD is answered as GET when the document has no HEAD.
        assert_eq!(head(&spec, Method::HEAD, "/v1/pets/7", None, &h), vec![]);
    }

    #[test]
    fn parameters_are_checked_and_every_violation_listed() {
        let spec = Spec::compile(PETS).unwrap();
        let h = headers(&[("x-tenant", "5f0c6f3e-8c5e-4c7a-9d0e-1b2a3c4d5e6f")]);
        let ok = head(
            &spec,
            Method::GET,
            "/v1/pets",
            Some("limit=10&tags=cat&tags=dog"),
            &h,
        );
        assert_eq!(ok, vec![]);
        let v = head(
            &spec,
            Method::GET,
            "/v1/pets",
            Some("limit=abc&tags=cow"),
            &HeaderMap::new(),
        );
        let named: Vec<(&str, &str)> = v.iter().map(|v| (v.at, v.name.as_str())).collect();
        assert_eq!(
            named,
            vec![
                ("query", "limit"),
                ("query", "tags"),
                ("header", "x-tenant")
            ],
            "{v:?}"
        );
        assert!(v[0].message.contains("integer"), "{}", v[0].message);
        assert!(v[2].message.contains("missing"), "{}", v[2].message);
        let v = head(&spec, Method::GET, "/v1/pets", Some("limit=500"), &h);
        assert!(v[0].message.contains("100"), "{v:?}");
        let bad_uuid = headers(&[("x-tenant", "nope")]);
        let v = head(&spec, Method::GET, "/v1/pets", None, &bad_uuid);
        assert_eq!(v.len(), 1, "{v:?}");
        let v = head(&spec, Method::GET, "/v1/pets/seven", None, &h);
        assert_eq!((v[0].at, v[0].name.as_str()), ("path", "id"), "{v:?}");
    }

    #[test]
    fn bodies_follow_their_schema_with_openapi_keywords() {
        let spec = Spec::compile(PETS).unwrap();
        let (op, v) = spec.check_head(&Method::POST, "/v1/pets", None, &HeaderMap::new());
        assert_eq!(v, vec![]);
        let body = op.unwrap().body().unwrap();
        let check = |ct: Option<&str>, b: &str| {
            let mut out = Vec::new();
            body.check(ct, b.as_bytes(), &mut out);
            out
        };
        let json = Some("application/json; charset=utf-8");
        // `id` is read-only: not required in a request; `tag` may be null.
        assert_eq!(check(json, r#"{"name":"Rex","tag":null}"#), vec![]);
        let v = check(
            json,
            r#"{"name":"","owner":{"friend":{"email":"not-an-email"}}}"#,
        );
        let at: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert!(at.contains(&"/name"), "{v:?}");
        assert!(at.contains(&"/owner"), "{v:?}"); // owner.email missing
        assert!(at.contains(&"/owner/friend/email"), "{v:?}");
        assert!(check(json, "{nope")[0].message.contains("not valid JSON"));
        assert!(check(json, "")[0].message.contains("required"));
        assert!(
            check(Some("text/plain"), "x")[0]
                .message
                .contains("not accepted")
        );
        assert!(check(None, "{}")[0].message.contains("no Content-Type"));
    }

    #[test]
    fn swagger_2_parameters_and_bodies() {
        let spec = Spec::compile(
            r##"{"swagger":"2.0","info":{"title":"t","version":"1"},"basePath":"/api",
            "paths":{"/items":{"get":{"parameters":[
              {"name":"ids","in":"query","type":"array","items":{"type":"integer"},"collectionFormat":"csv","required":true}],
              "responses":{"200":{"description":"ok"}}},
             "post":{"parameters":[{"name":"b","in":"body","required":true,"schema":{"$ref":"#/definitions/Item"}}],
              "responses":{"200":{"description":"ok"}}}}},
            "definitions":{"Item":{"type":"object","required":["n"],"properties":{"n":{"type":"string","x-nullable":true}}}}}"##,
        )
        .unwrap();
        let h = HeaderMap::new();
        assert_eq!(
            head(&spec, Method::GET, "/api/items", Some("ids=1,2,3"), &h),
            vec![]
        );
        let v = head(&spec, Method::GET, "/api/items", Some("ids=1,x"), &h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("/1"), "{v:?}");
        let (op, _) = spec.check_head(&Method::POST, "/api/items", None, &h);
        let mut out = Vec::new();
        op.unwrap()
            .body()
            .unwrap()
            .check(Some("application/json"), br#"{"n":null}"#, &mut out);
        assert_eq!(out, vec![]);
        op.unwrap()
            .body()
            .unwrap()
            .check(Some("application/json"), br#"{}"#, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
    }

    #[test]
    fn openapi_formats_are_checked_under_draft_4() {
        let spec = Spec::compile(
            r#"{"openapi":"3.0.0","info":{"title":"t","version":"1"},"paths":{"/x":{"get":{"parameters":[
              {"name":"id","in":"query","schema":{"type":"string","format":"uuid"}},
              {"name":"day","in":"query","schema":{"type":"string","format":"date"}},
              {"name":"n","in":"query","schema":{"type":"integer","format":"int32"}}],
              "responses":{"200":{"description":"ok"}}}}}}"#,
        )
        .unwrap();
        let h = HeaderMap::new();
        let good = "id=5f0c6f3e-8c5e-4c7a-9d0e-1b2a3c4d5e6f&day=2026-12-06&n=2147483647";
        assert_eq!(head(&spec, Method::GET, "/x", Some(good), &h), vec![]);
        let v = head(
            &spec,
            Method::GET,
            "/x",
            Some("id=nope&day=2026-13-01&n=2147483648"),
            &h,
        );
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["id", "day", "n"], "{v:?}");
    }

    #[test]
    fn openapi_31_uses_json_schema_2020_12() {
        let spec = Spec::compile(
            r#"{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{"/x":{"post":{
              "requestBody":{"content":{"application/json":{"schema":{"type":["string","null"],"minLength":2}}}},
              "responses":{"200":{"description":"ok"}}}}}}"#,
        )
        .unwrap();
        let (op, _) = spec.check_head(&Method::POST, "/x", None, &HeaderMap::new());
        let body = op.unwrap().body().unwrap();
        let mut out = Vec::new();
        body.check(Some("application/json"), b"null", &mut out);
        body.check(Some("application/json"), br#""ab""#, &mut out);
        assert_eq!(out, vec![]);
        body.check(Some("application/json"), br#""a""#, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn documents_that_cannot_be_used_are_refused_by_name() {
        let e = Spec::compile("openapi: 3.0.0\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema: { $ref: 'other.yaml#/X' }\n").err().unwrap();
        assert!(e.contains("another file"), "{e}");
        let e = Spec::compile("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters: [{ $ref: '#/components/parameters/Nope' }]\n").err().unwrap();
        assert!(e.contains("points nowhere"), "{e}");
        assert!(
            Spec::compile("just: yaml")
                .err()
                .unwrap()
                .contains("not OpenAPI")
        );
        assert!(
            Spec::compile("a: [")
                .err()
                .unwrap()
                .contains("does not parse")
        );
    }
}
