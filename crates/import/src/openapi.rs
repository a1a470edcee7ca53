//! OpenAPI 2.0, 3.0 and 3.1 → one API version.
//!
//! - The first server (3.x `servers`, with its variables resolved to their defaults; 2.0
//!   `schemes` + `host`) becomes the upstream; its path (`basePath`) prefixes every route.
//! - Every operation becomes an exact route (`=/v1/pets/{petId}`, its method), named by its
//!   `operationId`.
//! - The operation's security requirements (or the document's) become the route's
//!   authentication policies: `apiKey` in a header or the query → `key_auth`, HTTP `basic`
//!   → `basic_auth`, `mutualTLS` → `mtls`. Bearer tokens, OAuth2 and OpenID Connect need
//!   key material the document does not hold: they are reported as unsupported.
//! - The document itself is kept as the version's `spec` (for the portal and validation).
//!
//! Dialects of OpenAPI (AWS API Gateway exports, [`crate::aws`]) reuse the mapping in
//! pieces: [`Source`] reads the document, [`Source::operations`] makes the routes while a
//! [`Dialect`] adds what its extensions say, and [`Source::api`] makes the API version.

use serde_json::{Map, Value, json};

use crate::{ImportError, Imported, Report, checked, slug};

/// What the caller adds to the document.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The upstream URL, instead of the document's first server (needed when it has none
    /// or only relative ones).
    pub upstream: Option<String>,
    /// The API's name, instead of a slug of `info.title`.
    pub name: Option<String>,
}

/// The keys of a path item that hold operations, one HTTP method each.
pub(crate) const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Reads `text` (YAML or JSON) as an OpenAPI document and maps it.
pub fn import(text: &str, opts: &Options) -> Result<Imported, ImportError> {
    let doc = crate::parse(text)?;
    let source = Source::read(&doc)?;
    let mut report = Report::default();
    let (origin, prefix) = server(source.root, source.swagger2, opts, &mut report)?;
    let operations = source.operations(&prefix, &mut Plain, &mut report);
    operations.count(&mut report);
    let upstream = format!("{}-upstream", source.name(opts));
    let api = source.api(text, opts, &upstream, operations, Vec::new(), &mut report);
    let document = json!({
        "format_version": 1,
        "upstreams": [{ "name": upstream, "targets": [{ "url": origin }] }],
        "apis": [api],
    });
    checked(document, report)
}

/// What a dialect of OpenAPI adds to the mapping of each operation. Every method has a
/// default that leaves the plain OpenAPI reading unchanged.
pub(crate) trait Dialect {
    /// A path item key that holds one operation for every method the item does not define
    /// itself (AWS's `x-amazon-apigateway-any-method`).
    fn any_method_key(&self) -> Option<&'static str> {
        None
    }

    /// The route pattern of a path template, when the dialect reads templates its own way
    /// (`Some(None)`: reported, not routed).
    fn route_path(
        &mut self,
        _prefix: &str,
        _path: &str,
        _at: &str,
        _report: &mut Report,
    ) -> Option<Option<String>> {
        None
    }

    /// The authentication of an operation, when the dialect reads security its own way.
    fn security(
        &mut self,
        _op: &Operation<'_>,
        _schemes: &Schemes,
        _report: &mut Report,
    ) -> Option<Auth> {
        None
    }

    /// Completes the route made for an operation (its upstream path, more policies).
    fn route(
        &mut self,
        _op: &Operation<'_>,
        _route: &mut Map<String, Value>,
        _report: &mut Report,
    ) {
    }
}

/// Plain OpenAPI: no extensions.
struct Plain;

impl Dialect for Plain {}

/// One operation, as the mapping meets it.
pub(crate) struct Operation<'a> {
    /// The path template as the document writes it (`/pets/{petId}`).
    pub path: &'a str,
    /// The methods its route allows.
    pub methods: Vec<String>,
    pub op: &'a Map<String, Value>,
    /// Its place in the document (`paths./pets.get`).
    pub at: String,
    /// Its security requirements (its own or the document's) and their place.
    pub requirements: Option<(&'a Value, String)>,
}

/// The document's security schemes and where they are.
pub(crate) struct Schemes {
    pub map: Map<String, Value>,
    /// `securityDefinitions` (2.0) or `components.securitySchemes` (3.x).
    pub at: &'static str,
}

impl Schemes {
    /// The place of the scheme `name` in the document.
    pub fn at(&self, name: &str) -> String {
        format!("{}.{name}", self.at)
    }
}

/// The authentication policies of a route, and whether the operation requires a
/// credential that none of them checks.
pub(crate) struct Auth {
    pub policies: Vec<Value>,
    pub unguarded: bool,
}

/// The routes made for a document's operations.
pub(crate) struct Operations {
    pub routes: Vec<Value>,
    /// The operations (`GET /pets`) that require authentication no policy could be made for.
    pub unguarded: Vec<String>,
}

impl Operations {
    /// Policies on the routes.
    pub fn policies(&self) -> usize {
        self.routes
            .iter()
            .filter_map(|r| r.get("policies").and_then(Value::as_array))
            .map(Vec::len)
            .sum()
    }

    /// Counts one upstream, the API, its version, the routes and their policies.
    pub fn count(&self, report: &mut Report) {
        report.count("upstreams", 1);
        report.count("apis", 1);
        report.count("versions", 1);
        report.count("routes", self.routes.len());
        report.count("policies", self.policies());
    }
}

/// An OpenAPI document of a version this importer reads.
pub(crate) struct Source<'a> {
    pub root: &'a Map<String, Value>,
    /// 2.0 (`swagger`), else 3.0 or 3.1.
    pub swagger2: bool,
}

impl<'a> Source<'a> {
    /// Checks that `doc` is an OpenAPI document of a version this importer reads.
    pub fn read(doc: &'a Value) -> Result<Source<'a>, ImportError> {
        let Some(root) = doc.as_object() else {
            return Err(ImportError(
                "not an OpenAPI document: the top level is not a map".into(),
            ));
        };
        // Unquoted, `swagger: 2.0` and `openapi: 3.1` are numbers.
        let text_of = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => n.as_f64().map(|f| format!("{f:?}")),
            _ => None,
        };
        let (swagger, openapi) = (text_of(root.get("swagger")), text_of(root.get("openapi")));
        let swagger2 = match (root.get("swagger"), root.get("openapi")) {
            (Some(_), _) if swagger.as_deref() == Some("2.0") => true,
            (_, Some(_))
                if openapi
                    .as_deref()
                    .is_some_and(|v| v.starts_with("3.0") || v.starts_with("3.1")) =>
            {
                false
            }
            (Some(v), _) => {
                return Err(ImportError(format!(
                    "swagger {v} is not supported: OpenAPI 2.0, 3.0 and 3.1 are"
                )));
            }
            (_, Some(v)) => {
                return Err(ImportError(format!(
                    "openapi {v} is not supported: OpenAPI 2.0, 3.0 and 3.1 are"
                )));
            }
            _ => {
                return Err(ImportError(
                    "not an OpenAPI document: neither `openapi` nor `swagger` is set".into(),
                ));
            }
        };
        Ok(Source { root, swagger2 })
    }

    fn info(&self, key: &str) -> Option<&'a Value> {
        self.root.get("info").and_then(|i| i.get(key))
    }

    /// `info.title`, or empty.
    pub fn title(&self) -> &'a str {
        self.info("title").and_then(Value::as_str).unwrap_or("")
    }

    /// The API's name: `--name`, else a slug of the title.
    pub fn name(&self, opts: &Options) -> String {
        match &opts.name {
            Some(n) => n.clone(),
            None => slug(self.title(), "api"),
        }
    }

    /// The version's name, from `info.version`.
    pub fn version(&self) -> String {
        version_name(&match self.info("version") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        })
    }

    /// The path every route starts with: the first server's (or 2.0 `basePath`).
    pub fn base_path(&self) -> String {
        document_base_path(self.root, self.swagger2)
    }

    /// The security schemes.
    pub fn schemes(&self) -> Schemes {
        let (map, at) = if self.swagger2 {
            (self.root.get("securityDefinitions"), "securityDefinitions")
        } else {
            (
                self.root
                    .get("components")
                    .and_then(|c| c.get("securitySchemes")),
                "components.securitySchemes",
            )
        };
        Schemes {
            map: map.and_then(Value::as_object).cloned().unwrap_or_default(),
            at,
        }
    }

    /// A route for every operation, under `prefix`.
    pub fn operations(
        &self,
        prefix: &str,
        dialect: &mut dyn Dialect,
        report: &mut Report,
    ) -> Operations {
        let root = self.root;
        let schemes = self.schemes();
        let any_key = dialect.any_method_key();
        let mut routes = Vec::new();
        // Operations that require a credential no policy could be made for.
        let mut unguarded = Vec::new();
        let paths = root.get("paths").and_then(Value::as_object);
        for (path, item) in paths.into_iter().flatten() {
            if path.starts_with("x-") {
                continue;
            }
            let at = format!("paths.{path}");
            let Some(item) = item.as_object() else {
                report.unsupported(&at, "a path item that is not a map");
                continue;
            };
            if item.contains_key("$ref") {
                report.unsupported(&at, "path items by `$ref` are not followed");
                continue;
            }
            for key in item.keys() {
                let known = METHODS.contains(&key.as_str())
                    || matches!(
                        key.as_str(),
                        "parameters" | "summary" | "description" | "servers"
                    )
                    || key.starts_with("x-");
                if !known {
                    report
                        .unsupported(format!("{at}.{key}"), "not an operation Tollgate can route");
                }
            }
            if item.contains_key("servers") {
                report.unsupported(
                    format!("{at}.servers"),
                    "per-path servers: every route goes to the one upstream",
                );
            }
            let pattern = match dialect.route_path(prefix, path, &at, report) {
                Some(p) => p,
                None => route_path(prefix, path, &at, report),
            };
            let Some(pattern) = pattern else {
                continue;
            };
            // The item's operations, each with the methods its route allows.
            let mut keyed: Vec<(&str, Vec<String>)> = METHODS
                .iter()
                .filter(|m| item.contains_key(**m))
                .map(|m| (*m, vec![m.to_ascii_uppercase()]))
                .collect();
            if let Some(any) = any_key.filter(|k| item.contains_key(*k)) {
                let rest = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
                    .iter()
                    .filter(|m| !item.contains_key(&m.to_ascii_lowercase()))
                    .map(|m| m.to_string())
                    .collect();
                keyed.push((any, rest));
            }
            for (key, methods) in keyed {
                let Some(op) = item.get(key).and_then(Value::as_object) else {
                    continue;
                };
                let op_at = format!("{at}.{key}");
                if op.contains_key("servers") {
                    report.unsupported(
                        format!("{op_at}.servers"),
                        "per-operation servers: every route goes to the one upstream",
                    );
                }
                if op.contains_key("callbacks") {
                    report.unsupported(
                        format!("{op_at}.callbacks"),
                        "callbacks are calls from the API to its clients; a gateway does not make them",
                    );
                }
                let operation = Operation {
                    path,
                    methods,
                    op,
                    requirements: op
                        .get("security")
                        .map(|s| (s, format!("{op_at}.security")))
                        .or_else(|| root.get("security").map(|s| (s, "security".to_string()))),
                    at: op_at,
                };
                let auth = match dialect.security(&operation, &schemes, report) {
                    Some(auth) => auth,
                    None => guard(&operation, &schemes, report),
                };
                if auth.unguarded {
                    let shown = if any_key == Some(key) { "ANY" } else { key };
                    unguarded.push(format!("{} {path}", shown.to_ascii_uppercase()));
                }
                let mut route = Map::new();
                if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                    route.insert("name".into(), json!(id));
                }
                route.insert("path".into(), json!(pattern));
                route.insert("methods".into(), json!(operation.methods));
                if !auth.policies.is_empty() {
                    route.insert("policies".into(), Value::Array(auth.policies));
                }
                dialect.route(&operation, &mut route, report);
                routes.push(Value::Object(route));
            }
        }
        if let Some(hooks) = root.get("webhooks").and_then(Value::as_object) {
            for hook in hooks.keys() {
                report.unsupported(
                    format!("webhooks.{hook}"),
                    "webhooks are calls from the API to its clients; a gateway does not make them",
                );
            }
        }
        if routes.is_empty() {
            report.note("paths", "no operations: the version has no routes");
        }
        Operations { routes, unguarded }
    }

    /// The API with its one version: sent to `upstream`, with `operations`' routes and
    /// `policies` at the version, `text` kept as the spec. A version with operations
    /// that require authentication no policy checks is a draft (not served).
    pub fn api(
        &self,
        text: &str,
        opts: &Options,
        upstream: &str,
        operations: Operations,
        policies: Vec<Value>,
        report: &mut Report,
    ) -> Value {
        let unguarded = operations.unguarded;
        let mut version = Map::new();
        version.insert("version".into(), json!(self.version()));
        if !unguarded.is_empty() {
            // Served as imported, these operations would be open to anyone.
            version.insert("status".into(), json!("draft"));
            report.note(
                "security",
                format!(
                    "the version is imported as a draft (not served): {} operation(s) require authentication that could not be mapped ({}{}); add the policies, then publish it",
                    unguarded.len(),
                    unguarded.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                    if unguarded.len() > 3 { ", …" } else { "" }
                ),
            );
        }
        version.insert("upstream".into(), json!(upstream));
        version.insert("spec".into(), json!(text));
        version.insert("routes".into(), Value::Array(operations.routes));
        if !policies.is_empty() {
            version.insert("policies".into(), Value::Array(policies));
        }
        let mut api = Map::new();
        api.insert("name".into(), json!(self.name(opts)));
        let title = self.title();
        if !title.is_empty() {
            api.insert("title".into(), json!(title));
        }
        if let Some(d) = self.info("description").and_then(Value::as_str) {
            api.insert("description".into(), json!(d));
        }
        api.insert("versions".into(), json!([Value::Object(version)]));
        Value::Object(api)
    }
}

/// The OpenAPI reading of an operation's security: one policy per alternative.
fn guard(op: &Operation<'_>, schemes: &Schemes, report: &mut Report) -> Auth {
    let policies = match &op.requirements {
        Some((reqs, req_at)) => security(reqs, req_at, &schemes.map, schemes.at, report),
        None => Vec::new(),
    };
    let required = op.requirements.as_ref().is_some_and(|(reqs, _)| {
        reqs.as_array().is_some_and(|alternatives| {
            !alternatives.is_empty()
                && alternatives
                    .iter()
                    .all(|a| a.as_object().is_some_and(|m| !m.is_empty()))
        })
    });
    Auth {
        unguarded: required && policies.is_empty(),
        policies,
    }
}

/// A version name from `info.version` (letters, digits, `.`, `-`, `_`; at most 32).
pub(crate) fn version_name(v: &str) -> String {
    let cleaned: String = v
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .take(32)
        .collect();
    if cleaned.is_empty() {
        "v1".to_string()
    } else {
        cleaned
    }
}

/// The upstream origin (`https://host:port`) and the path every route starts with.
pub(crate) fn server(
    root: &Map<String, Value>,
    swagger2: bool,
    opts: &Options,
    report: &mut Report,
) -> Result<(String, String), ImportError> {
    let (url, at) = if let Some(u) = &opts.upstream {
        // The upstream's origin; the routes keep the document's base path unless the
        // given URL has a path of its own.
        let documented = document_base_path(root, swagger2);
        let trimmed = u.trim_end_matches('/');
        let with_path = match trimmed
            .split_once("://")
            .map(|(_, rest)| rest.contains('/'))
        {
            Some(true) => trimmed.to_string(),
            _ => format!("{trimmed}{documented}"),
        };
        (with_path, "--upstream".to_string())
    } else if swagger2 {
        let Some(host) = root.get("host").and_then(Value::as_str) else {
            return Err(ImportError(
                "the document names no `host`: pass the upstream with --upstream URL".into(),
            ));
        };
        let schemes: Vec<&str> = root
            .get("schemes")
            .and_then(Value::as_array)
            .map(|s| s.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let scheme = if schemes.contains(&"https") || schemes.is_empty() {
            "https"
        } else {
            "http"
        };
        if schemes.len() > 1 {
            report.note("schemes", format!("{scheme} is used for the upstream"));
        }
        let base = root.get("basePath").and_then(Value::as_str).unwrap_or("");
        (format!("{scheme}://{host}{base}"), "host".to_string())
    } else {
        let servers = root.get("servers").and_then(Value::as_array);
        let absolute = servers
            .into_iter()
            .flatten()
            .enumerate()
            .find_map(|(i, s)| {
                let url = resolve_variables(s)?;
                (url.starts_with("http://") || url.starts_with("https://")).then_some((url, i))
            });
        let Some((url, i)) = absolute else {
            return Err(ImportError(
                "the document has no absolute http(s) server URL: pass the upstream with --upstream URL"
                    .into(),
            ));
        };
        for (j, s) in servers.into_iter().flatten().enumerate() {
            if j != i {
                let other = s.get("url").and_then(Value::as_str).unwrap_or("?");
                report.note(
                    format!("servers[{j}]"),
                    format!("`{other}` is not used: servers[{i}] is the upstream"),
                );
            }
        }
        (url, format!("servers[{i}]"))
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| ImportError(format!("{at}: `{url}` is not an http(s) URL")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let origin = format!("{scheme}://{authority}");
    tollgate_model::validate::check_service_url(&origin)
        .map_err(|e| ImportError(format!("{at}: {e}")))?;
    if scheme == "http" {
        report.note(&at, "the upstream is plain HTTP");
    }
    Ok((origin, path.trim_end_matches('/').to_string()))
}

/// The path the document's first server (or 2.0 `basePath`) puts before every path,
/// also when the server is relative (`/v1`).
fn document_base_path(root: &Map<String, Value>, swagger2: bool) -> String {
    let path = if swagger2 {
        root.get("basePath")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    } else {
        let first = root
            .get("servers")
            .and_then(Value::as_array)
            .and_then(|s| s.first())
            .and_then(resolve_variables)
            .unwrap_or_default();
        match first.split_once("://") {
            Some((_, rest)) => rest
                .find('/')
                .map(|i| rest[i..].to_string())
                .unwrap_or_default(),
            None if first.starts_with('/') => first,
            None => String::new(),
        }
    };
    path.trim_end_matches('/').to_string()
}

/// A 3.x server's URL with `{variables}` replaced by their defaults.
pub(crate) fn resolve_variables(server: &Value) -> Option<String> {
    let mut url = server.get("url")?.as_str()?.to_string();
    if let Some(vars) = server.get("variables").and_then(Value::as_object) {
        for (name, var) in vars {
            let default = var.get("default").and_then(Value::as_str).unwrap_or("");
            url = url.replace(&format!("{{{name}}}"), default);
        }
    }
    (!url.contains('{')).then_some(url)
}

/// `=` + prefix + the path template, with parameter names the router accepts; `None`
/// (reported) for a template that cannot be routed.
pub(crate) fn route_path(
    prefix: &str,
    path: &str,
    at: &str,
    report: &mut Report,
) -> Option<String> {
    let mut out = String::from("=");
    out.push_str(prefix);
    let mut renamed = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            report.unsupported(at, "a path template with an unclosed `{`");
            return None;
        };
        let name = &rest[open + 1..open + close];
        let fixed = router_param(name);
        if fixed != name {
            renamed.push(format!("`{name}` → `{fixed}`"));
        }
        out.push('{');
        out.push_str(&fixed);
        out.push('}');
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    // Only the root pattern may end with `/`: `/ds-api/` is routed as `/ds-api`.
    while out.len() > 2 && out.ends_with('/') {
        out.pop();
    }
    if !renamed.is_empty() {
        report.note(
            at,
            format!(
                "path parameters renamed for the router: {}",
                renamed.join(", ")
            ),
        );
    }
    if out == "=" {
        out.push('/');
    }
    Some(out)
}

/// A path parameter's name as the router accepts it: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn router_param(name: &str) -> String {
    let mut fixed: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if fixed.is_empty() || fixed.starts_with(|c: char| c.is_ascii_digit()) {
        fixed.insert(0, '_');
    }
    fixed
}

/// The authentication policies of a list of security requirements (alternatives).
fn security(
    reqs: &Value,
    at: &str,
    schemes: &Map<String, Value>,
    schemes_at: &str,
    report: &mut Report,
) -> Vec<Value> {
    let Some(reqs) = reqs.as_array() else {
        report.unsupported(at, "security requirements that are not a list");
        return Vec::new();
    };
    let mut out: Vec<Value> = Vec::new();
    for (i, req) in reqs.iter().enumerate() {
        let req_at = format!("{at}[{i}]");
        let Some(req) = req.as_object() else {
            report.unsupported(&req_at, "a security requirement that is not a map");
            continue;
        };
        if req.is_empty() {
            // `{}`: anonymous access is one of the alternatives.
            if reqs.len() > 1 {
                report.unsupported(
                    &req_at,
                    "optional authentication (an empty alternative): a route either requires a credential or not",
                );
            }
            continue;
        }
        if req.len() > 1 {
            let names: Vec<&str> = req.keys().map(String::as_str).collect();
            report.unsupported(
                &req_at,
                format!(
                    "{} required together: a route accepts any one of its authentication policies",
                    names.join(" and ")
                ),
            );
            continue;
        }
        let Some((scheme_name, scopes)) = req.iter().next() else {
            continue;
        };
        if scopes.as_array().is_some_and(|s| !s.is_empty()) {
            report.unsupported(
                format!("{req_at}.{scheme_name}"),
                "required scopes: they belong to a token check Tollgate cannot set up from this document",
            );
        }
        let scheme_at = format!("{schemes_at}.{scheme_name}");
        let Some(scheme) = schemes.get(scheme_name) else {
            report.unsupported(
                &req_at,
                format!("`{scheme_name}` is not defined in {schemes_at}"),
            );
            continue;
        };
        let Some(policy) = scheme_policy(scheme, &scheme_at, report) else {
            continue;
        };
        let kind = policy
            .as_object()
            .and_then(|m| m.keys().next().cloned())
            .unwrap_or_default();
        if let Some(existing) = out
            .iter_mut()
            .find(|p| p.as_object().is_some_and(|m| m.contains_key(&kind)))
        {
            // Two API key alternatives: one key_auth reads a header and a query parameter.
            let merged = merge_key_auth(existing, &policy);
            if !merged {
                report.unsupported(
                    &req_at,
                    format!("a second `{kind}` alternative on one route (`{scheme_name}`)"),
                );
            }
            continue;
        }
        out.push(policy);
    }
    out
}

/// Folds a query key into a header key (or the reverse); false when both read the same place.
fn merge_key_auth(existing: &mut Value, new: &Value) -> bool {
    let (Some(a), Some(b)) = (
        existing.get_mut("key_auth").and_then(Value::as_object_mut),
        new.get("key_auth").and_then(Value::as_object),
    ) else {
        return false;
    };
    for field in ["header", "query"] {
        if let Some(v) = b.get(field) {
            if a.contains_key(field) {
                return false;
            }
            a.insert(field.into(), v.clone());
        }
    }
    true
}

/// One security scheme as a policy, or `None` (reported) when it has no equivalent.
pub(crate) fn scheme_policy(scheme: &Value, at: &str, report: &mut Report) -> Option<Value> {
    let kind = scheme.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "apiKey" => {
            let name = scheme.get("name").and_then(Value::as_str).unwrap_or("");
            match scheme.get("in").and_then(Value::as_str) {
                Some("header") if !name.is_empty() => {
                    Some(json!({ "key_auth": { "header": name.to_ascii_lowercase() } }))
                }
                Some("query") if !name.is_empty() => Some(json!({ "key_auth": { "query": name } })),
                Some("cookie") => {
                    report.unsupported(
                        at,
                        "API keys in a cookie: key_auth reads a header or the query",
                    );
                    None
                }
                _ => {
                    report.unsupported(at, "an apiKey scheme without `name` and `in`");
                    None
                }
            }
        }
        "basic" => Some(json!({ "basic_auth": {} })),
        "http" => {
            let s = scheme
                .get("scheme")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            if s == "basic" {
                Some(json!({ "basic_auth": {} }))
            } else {
                report.unsupported(
                    at,
                    format!(
                        "HTTP `{s}` authentication: checking these tokens needs a jwt policy (keys or a JWKS URL) or oauth2_introspection, which the document does not give; add one after import"
                    ),
                );
                None
            }
        }
        "mutualTLS" => Some(json!({ "mtls": {} })),
        "oauth2" | "openIdConnect" => {
            report.unsupported(
                at,
                format!(
                    "{kind}: checking its tokens needs a jwt policy (keys or a JWKS URL) or oauth2_introspection, which the document does not give; add one after import"
                ),
            );
            None
        }
        other => {
            report.unsupported(at, format!("security scheme type `{other}` is not known"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_exact_routes_with_router_parameter_names() {
        let mut r = Report::default();
        assert_eq!(
            route_path("/v1", "/pets/{petId}", "p", &mut r)
                .as_deref()
                .unwrap(),
            "=/v1/pets/{petId}"
        );
        assert_eq!(
            route_path("", "/a/{pet-id}/{1x}", "p", &mut r)
                .as_deref()
                .unwrap(),
            "=/a/{pet_id}/{_1x}"
        );
        assert_eq!(r.notes.len(), 1);
        assert_eq!(route_path("", "/", "p", &mut r).as_deref().unwrap(), "=/");
        assert_eq!(
            route_path("/ds-api", "/", "p", &mut r).as_deref().unwrap(),
            "=/ds-api"
        );
        assert_eq!(
            route_path("", "/pets/", "p", &mut r).as_deref().unwrap(),
            "=/pets"
        );
    }

    #[test]
    fn unquoted_versions_extensions_and_odd_paths() {
        let text = "swagger: 2.0\ninfo: { title: T, version: 3 }\nhost: h.example\npaths:\n  x-meta: {}\n  /a/{b:\n    get: {}\n";
        let out = import(text, &Options::default()).unwrap();
        assert_eq!(out.document["apis"][0]["versions"][0]["version"], "3");
        // The unclosed template is named, not routed; `x-meta` is an extension.
        let routes = &out.document["apis"][0]["versions"][0]["routes"];
        assert_eq!(routes.as_array().map_or(0, Vec::len), 0);
        assert_eq!(
            out.report.unsupported.len(),
            1,
            "{:?}",
            out.report.unsupported
        );
        assert_eq!(out.report.unsupported[0].at, "paths./a/{b");
        assert!(import("openapi: 3.1\ninfo: {title: x, version: '1'}\nservers: [{url: 'https://a.example'}]\npaths: {}\n", &Options::default()).is_ok());
        let o = Options {
            upstream: Some("http://127.0.0.1:9/".into()),
            name: None,
        };
        let out = import(
            "openapi: 3.0.0\ninfo: {title: x, version: '1'}\nservers: [{url: 'https://a.example/v2'}]\npaths: {/p: {get: {}}}\n",
            &o,
        )
        .unwrap();
        assert_eq!(
            out.document["apis"][0]["versions"][0]["routes"][0]["path"],
            "=/v2/p"
        );
    }

    #[test]
    fn not_openapi_is_an_error_naming_why() {
        let e = import("{}", &Options::default()).unwrap_err();
        assert!(e.0.contains("neither `openapi` nor `swagger`"), "{e}");
        let e = import("openapi: 4.0.0\n", &Options::default()).unwrap_err();
        assert!(e.0.contains("4.0.0"), "{e}");
        let e = import(
            "openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths: {}\n",
            &Options::default(),
        )
        .unwrap_err();
        assert!(e.0.contains("--upstream"), "{e}");
    }

    #[test]
    fn security_alternatives_map_to_policies() {
        let text = r#"
openapi: 3.0.3
info: { title: Keys, version: "2" }
servers: [{ url: "https://api.example.com/base/" }]
components:
  securitySchemes:
    hdr: { type: apiKey, in: header, name: X-Key }
    qry: { type: apiKey, in: query, name: key }
    bearer: { type: http, scheme: bearer }
    basic: { type: http, scheme: basic }
security: [{ hdr: [] }, { qry: [] }]
paths:
  /things/{id}:
    get: { operationId: getThing, responses: { "200": { description: ok } } }
    put:
      security: [{ basic: [] }]
      responses: { "200": { description: ok } }
    delete:
      security: [{ bearer: [] }]
      responses: { "200": { description: ok } }
  /open:
    get: { security: [], responses: { "200": { description: ok } } }
"#;
        let out = import(text, &Options::default()).unwrap();
        let routes = &out.document["apis"][0]["versions"][0]["routes"];
        assert_eq!(routes[0]["name"], "getThing");
        assert_eq!(routes[0]["path"], "=/base/things/{id}");
        assert_eq!(
            routes[0]["policies"],
            json!([{ "key_auth": { "header": "x-key", "query": "key" } }])
        );
        assert_eq!(routes[1]["policies"], json!([{ "basic_auth": {} }]));
        assert!(routes[2].get("policies").is_none());
        // DELETE needed a bearer token no policy checks: the version is not served.
        assert_eq!(out.document["apis"][0]["versions"][0]["status"], "draft");
        assert!(routes[3].get("policies").is_none());
        assert_eq!(
            out.document["upstreams"][0]["targets"][0]["url"],
            "https://api.example.com"
        );
        assert_eq!(out.document["apis"][0]["name"], "keys");
        assert_eq!(out.document["apis"][0]["versions"][0]["version"], "2");
        assert_eq!(out.report.unsupported.len(), 1);
        assert_eq!(
            out.report.unsupported[0].at,
            "components.securitySchemes.bearer"
        );
        assert_eq!(out.report.made("routes"), 4);
        assert_eq!(out.report.made("policies"), 2);
    }
}
