//! An API Gateway OpenAPI export (2.0 or 3.x with `x-amazon-apigateway-*` extensions) → one
//! API version. The document is mapped as the OpenAPI importer maps it (paths, operations,
//! `info`, the spec kept), with what the extensions add:
//!
//! - `x-amazon-apigateway-integration` (followed through `$ref`): the route's backend, see
//!   [`super::integration`]. The upstream is the first HTTP integration's origin (or
//!   `--upstream`), not the document's servers: those are API Gateway's own address.
//! - `x-amazon-apigateway-any-method`: a route for the methods the path does not define.
//! - Security: API Gateway applies every requirement of `security` (there are no
//!   alternatives); an `apiKey` scheme is the API key, read from `x-api-key` (`key_auth`),
//!   unless `x-amazon-apigateway-api-key-source` is `AUTHORIZER`. Authorizers and IAM
//!   authorization are reported, and their operations keep the version a draft.
//! - `x-amazon-apigateway-cors` → a `cors` policy on the version.
//! - Every other `x-amazon-apigateway-*` key, wherever it is, is reported as unsupported,
//!   or noted when it only documents.

use serde_json::{Map, Value, json};

use super::{ANY, Backend, Options};
use crate::openapi::{Auth, Dialect, Operation, Schemes, Source};
use crate::{ImportError, Imported, Report, checked};

const EXT: &str = "x-amazon-apigateway-";

/// Maps the export `doc`, whose text is `text`.
pub(super) fn import(doc: &Value, text: &str, opts: &Options) -> Result<Imported, ImportError> {
    let source = Source::read(doc)?;
    let root = source.root;
    let mut report = Report::default();
    extensions(doc, "", &mut report);
    let prefix = source.base_path();
    let mut aws = Aws {
        doc,
        prefix: prefix.clone(),
        backend: Backend::new(opts)?,
        keys_from_authorizer: root
            .get("x-amazon-apigateway-api-key-source")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("AUTHORIZER")),
    };
    let operations = source.operations(&prefix, &mut aws, &mut report);
    let origin = match aws.backend.origin() {
        Some(origin) => {
            for key in ["servers", "host"] {
                if root.contains_key(key) {
                    report.note(
                        key,
                        "API Gateway's own address: the upstream is the integrations' backend",
                    );
                }
            }
            origin.to_string()
        }
        None => {
            // No HTTP integration: as the OpenAPI importer, from the document's server.
            let (origin, _) = crate::openapi::server(root, source.swagger2, opts, &mut report)
                .map_err(|e| {
                    ImportError(format!(
                        "no HTTP or HTTP_PROXY integration names a backend, and {e}"
                    ))
                })?;
            report.note(
                "servers",
                "no HTTP integration names a backend: the document's server is the upstream",
            );
            origin
        }
    };
    let mut policies = Vec::new();
    if let Some(c) = root.get("x-amazon-apigateway-cors")
        && let Some(p) = cors(c, "x-amazon-apigateway-cors", &mut report)
    {
        policies.push(json!({ "cors": p }));
    }
    operations.count(&mut report);
    report.count("policies", policies.len());
    let upstream = format!("{}-upstream", source.name(opts));
    let api = source.api(text, opts, &upstream, operations, policies, &mut report);
    let document = json!({
        "format_version": 1,
        "upstreams": [{ "name": upstream, "targets": [{ "url": origin }] }],
        "apis": [api],
    });
    checked(document, report)
}

/// The AWS dialect of the operation mapping.
struct Aws<'a> {
    doc: &'a Value,
    prefix: String,
    backend: Backend,
    /// `x-amazon-apigateway-api-key-source: AUTHORIZER`: keys come from a Lambda authorizer.
    keys_from_authorizer: bool,
}

impl Dialect for Aws<'_> {
    fn any_method_key(&self) -> Option<&'static str> {
        Some("x-amazon-apigateway-any-method")
    }

    fn route_path(
        &mut self,
        prefix: &str,
        path: &str,
        at: &str,
        report: &mut Report,
    ) -> Option<Option<String>> {
        Some(super::shape(prefix, path, at, report).map(|s| s.pattern))
    }

    fn security(
        &mut self,
        op: &Operation<'_>,
        schemes: &Schemes,
        report: &mut Report,
    ) -> Option<Auth> {
        let mut policies: Vec<Value> = Vec::new();
        // IAM authorization is reported where it is written (see `extension`).
        let mut unguarded = op
            .op
            .get("x-amazon-apigateway-auth")
            .and_then(|a| a.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| !t.eq_ignore_ascii_case("NONE"));
        let Some((reqs, req_at)) = &op.requirements else {
            return Some(Auth {
                policies,
                unguarded,
            });
        };
        let Some(list) = reqs.as_array() else {
            report.unsupported(req_at, "security requirements that are not a list");
            return Some(Auth {
                policies,
                unguarded: true,
            });
        };
        // API Gateway applies every scheme named, in any of the requirements.
        for (i, req) in list.iter().enumerate() {
            let Some(req) = req.as_object() else {
                report.unsupported(
                    format!("{req_at}[{i}]"),
                    "a security requirement that is not a map",
                );
                unguarded = true;
                continue;
            };
            for (name, scopes) in req {
                let at = format!("{req_at}[{i}].{name}");
                if scopes.as_array().is_some_and(|s| !s.is_empty()) {
                    report.unsupported(
                        &at,
                        "required scopes: they belong to an authorizer's token check",
                    );
                    unguarded = true;
                }
                match self.scheme(name, schemes, &at, report) {
                    Some(p) if !policies.contains(&p) => policies.push(p),
                    Some(_) => {}
                    None => unguarded = true,
                }
            }
        }
        if policies.len() > 1 {
            report.unsupported(
                req_at,
                "several credentials required together: API Gateway applies every requirement, a Tollgate route accepts any one of its authentication policies",
            );
            policies.clear();
            unguarded = true;
        }
        Some(Auth {
            policies,
            unguarded,
        })
    }

    fn route(&mut self, op: &Operation<'_>, route: &mut Map<String, Value>, report: &mut Report) {
        let int_at = format!("{}.x-amazon-apigateway-integration", op.at);
        let Some(written) = op.op.get("x-amazon-apigateway-integration") else {
            report.note(
                &op.at,
                "no x-amazon-apigateway-integration: the route goes to the upstream as it is",
            );
            return;
        };
        let Some((int, at)) = self.follow(written, &int_at, report) else {
            return;
        };
        // The shape was reported when the route's path was made.
        let Some(shape) = super::shape(&self.prefix, op.path, &op.at, &mut Report::default())
        else {
            return;
        };
        super::integration(int, &at, &shape, &op.methods, &mut self.backend, report).apply(route);
    }
}

impl<'a> Aws<'a> {
    /// An integration, through its `$ref` if it has one, and its place.
    fn follow(
        &self,
        written: &'a Value,
        at: &str,
        report: &mut Report,
    ) -> Option<(&'a Map<String, Value>, String)> {
        let (value, place) = match written.get("$ref") {
            None => (written, at.to_string()),
            Some(r) => {
                let target = r.as_str().and_then(|r| r.strip_prefix('#'));
                let found = target.and_then(|t| self.doc.pointer(t));
                match (target, found) {
                    (Some(t), Some(v)) => (v, t.trim_start_matches('/').replace('/', ".")),
                    _ => {
                        report.unsupported(
                            at,
                            format!("`$ref` {r} does not point into this document"),
                        );
                        return None;
                    }
                }
            }
        };
        match value.as_object() {
            Some(m) => Some((m, place)),
            None => {
                report.unsupported(place, "an integration that is not a map");
                None
            }
        }
    }

    /// The policy a security scheme stands for; `None` when it has none.
    fn scheme(
        &self,
        name: &str,
        schemes: &Schemes,
        at: &str,
        report: &mut Report,
    ) -> Option<Value> {
        let Some(scheme) = schemes.map.get(name) else {
            report.unsupported(at, format!("`{name}` is not defined in {}", schemes.at));
            return None;
        };
        let scheme_at = schemes.at(name);
        // Authorizers and authorization types are reported where they are written.
        if scheme.get("x-amazon-apigateway-authorizer").is_some()
            || scheme
                .get("x-amazon-apigateway-authtype")
                .and_then(Value::as_str)
                .is_some_and(|t| !is_api_key_authtype(t))
        {
            return None;
        }
        if scheme.get("type").and_then(Value::as_str) != Some("apiKey") {
            return crate::openapi::scheme_policy(scheme, &scheme_at, report);
        }
        if self.keys_from_authorizer {
            return None;
        }
        let header = scheme.get("in").and_then(Value::as_str) == Some("header");
        let named = scheme
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.eq_ignore_ascii_case("x-api-key"));
        if !(header && named) {
            report.note(
                scheme_at,
                "API Gateway reads API keys from the `x-api-key` header whatever the scheme names, and so does the key_auth made for it",
            );
        }
        Some(json!({ "key_auth": {} }))
    }
}

fn is_api_key_authtype(t: &str) -> bool {
    matches!(t.to_ascii_lowercase().as_str(), "apikey" | "api_key")
}

/// Reports every `x-amazon-apigateway-*` key under `v` (at `at`) that is not mapped where it
/// is used: unsupported, or noted when it only documents.
fn extensions(v: &Value, at: &str, report: &mut Report) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let here = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match k.strip_prefix(EXT) {
                    Some(name) => extension(name, v, m, &here, report),
                    None => extensions(v, &here, report),
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                extensions(v, &format!("{at}[{i}]"), report);
            }
        }
        _ => {}
    }
}

fn extension(name: &str, v: &Value, parent: &Map<String, Value>, at: &str, report: &mut Report) {
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    match name {
        // Mapped where they are used.
        "integration" | "integrations" | "cors" => {}
        "any-method" => extensions(v, at, report),
        "api-key-source" => match v.as_str().map(str::to_ascii_uppercase).as_deref() {
            Some("HEADER") => {}
            Some("AUTHORIZER") => report.unsupported(
                at,
                "API keys supplied by a Lambda authorizer: Tollgate's key_auth reads the key from the request",
            ),
            _ => report.unsupported(at, format!("API key source `{v}` is not HEADER or AUTHORIZER")),
        },
        "authorizer" => {
            report.unsupported(
                at,
                super::authorizer(v.get("type"), v.get("authorizerUri"), v.get("providerARNs")),
            );
        }
        "authtype" => {
            let t = v.as_str().unwrap_or("");
            if parent.contains_key("x-amazon-apigateway-authorizer") || is_api_key_authtype(t) {
            } else if t.eq_ignore_ascii_case("awsSigv4") {
                report.unsupported(at, "IAM authorization (SigV4-signed requests)");
            } else {
                report.unsupported(at, format!("authorization type `{t}` without an authorizer"));
            }
        }
        "auth" => match text("type").to_ascii_uppercase().as_str() {
            "NONE" => {}
            "AWS_IAM" => report.unsupported(at, "IAM authorization (SigV4-signed requests)"),
            t => report.unsupported(at, format!("authorization type `{t}`")),
        },
        "binary-media-types" => report.note(at, "Tollgate forwards bodies as bytes, whatever their type"),
        "documentation" | "importexport-version" | "tag-value" => {
            report.note(at, "documentation only: not part of the configuration")
        }
        "gateway-responses" => report.unsupported(
            at,
            "custom answers for API Gateway's own errors: Tollgate answers its errors as application/problem+json",
        ),
        "request-validators" | "request-validator" => report.unsupported(
            at,
            "request validation: the `validate` policy is not in this build",
        ),
        "policy" => report.unsupported(
            at,
            "a resource policy (IAM): use ip_restrict and authentication policies",
        ),
        "endpoint-configuration" => report.unsupported(
            at,
            "endpoint configuration (endpoint type, VPC endpoints)",
        ),
        "minimum-compression-size" => report.unsupported(
            at,
            "compressing answers: Tollgate passes bodies on as the upstream sends them",
        ),
        _ => report.unsupported(at, "an API Gateway extension Tollgate has no equivalent for"),
    }
}

/// `x-amazon-apigateway-cors` as a `cors` policy.
fn cors(v: &Value, at: &str, report: &mut Report) -> Option<Value> {
    let Some(m) = v.as_object() else {
        report.unsupported(at, "a CORS configuration that is not a map");
        return None;
    };
    let list = |k: &str| -> Vec<String> {
        m.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    for k in m.keys() {
        if !matches!(
            k.as_str(),
            "allowOrigins"
                | "allowMethods"
                | "allowHeaders"
                | "exposeHeaders"
                | "maxAge"
                | "allowCredentials"
        ) {
            report.unsupported(
                format!("{at}.{k}"),
                "a CORS setting Tollgate has no equivalent for",
            );
        }
    }
    let mut origins = list("allowOrigins");
    if origins.iter().any(|o| o != "*" && o.contains('*')) {
        report.unsupported(
            format!("{at}.allowOrigins"),
            "wildcard origins (`https://*.example.com`): Tollgate's cors lists origins exactly, or allows `*`",
        );
        origins.retain(|o| o == "*" || !o.contains('*'));
    }
    if origins.iter().any(|o| o == "*") {
        origins = vec!["*".to_string()];
    }
    if origins.is_empty() {
        report.unsupported(format!("{at}.allowOrigins"), "no origin is allowed");
        return None;
    }
    let mut out = Map::new();
    let wildcard = origins == ["*"];
    out.insert("origins".into(), json!(origins));
    let methods = list("allowMethods");
    if methods.iter().any(|m| m == "*") {
        out.insert("methods".into(), json!(ANY));
    } else if !methods.is_empty() {
        let upper: Vec<String> = methods.iter().map(|m| m.to_ascii_uppercase()).collect();
        out.insert("methods".into(), json!(upper));
    }
    let headers = list("allowHeaders");
    // `*`: Tollgate's default, the headers the preflight asks for.
    if !headers.is_empty() && !headers.iter().any(|h| h == "*") {
        out.insert("headers".into(), json!(headers));
    }
    let expose = list("exposeHeaders");
    if !expose.is_empty() {
        out.insert("expose_headers".into(), json!(expose));
    }
    if let Some(age) = m.get("maxAge").and_then(Value::as_u64).filter(|a| *a > 0) {
        out.insert("max_age".into(), json!(format!("{age}s")));
    }
    if m.get("allowCredentials").and_then(Value::as_bool) == Some(true) {
        if wildcard {
            report.unsupported(
                format!("{at}.allowCredentials"),
                "credentials for every origin (`*`): a browser refuses them; list the origins",
            );
        } else {
            out.insert("credentials".into(), json!(true));
        }
    }
    Some(Value::Object(out))
}
