//! AWS API Gateway → Tollgate: an OpenAPI export with `x-amazon-apigateway-*` extensions
//! ([`openapi`]) or a CloudFormation template of `AWS::ApiGateway::*` resources ([`cfn`]),
//! told apart by their top-level keys.
//!
//! Both describe the same things, so both map them here the same way:
//!
//! - an `HTTP` or `HTTP_PROXY` integration sends its route to the integration URI: the URI's
//!   origin is the upstream, its path the route's upstream path (forwarded as it is when it
//!   equals the request path, else rewritten with a `request_transform`);
//! - `AWS`, `AWS_PROXY` (Lambda) and `MOCK` integrations, mapping templates and parameter
//!   mappings Tollgate cannot express are reported as unsupported, by place;
//! - a throttle (token bucket: `RateLimit` per second, `BurstLimit`) is a `rate_limit` of the
//!   same rate and burst, and a quota a `quota`.

pub mod cfn;
pub mod openapi;

use serde_json::{Map, Value, json};

pub use crate::openapi::Options;
use crate::{ImportError, Imported, Report};

/// Reads `text` (YAML or JSON) as an API Gateway export or a CloudFormation template and
/// maps it.
pub fn import(text: &str, opts: &Options) -> Result<Imported, ImportError> {
    let doc = crate::parse(text)?;
    let Some(root) = doc.as_object() else {
        return Err(ImportError(
            "not an AWS API Gateway export: the top level is not a map".into(),
        ));
    };
    if root.contains_key("AWSTemplateFormatVersion") || root.contains_key("Resources") {
        // Read again keeping CloudFormation's tags (`!Ref X`), which `parse` drops.
        let template = cfn::parse(text)?;
        cfn::import(template.as_object().unwrap_or(root), opts)
    } else if root.contains_key("openapi") || root.contains_key("swagger") {
        openapi::import(&doc, text, opts)
    } else {
        Err(ImportError(
            "not an AWS API Gateway export: expected an OpenAPI document (`openapi` or `swagger`) with x-amazon-apigateway extensions, or a CloudFormation template (`AWSTemplateFormatVersion` or `Resources`)".into(),
        ))
    }
}

/// The methods API Gateway's `ANY` stands for.
const ANY: &[&str] = &["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"];

/// Where one API's routes are sent: the `--upstream` origin, or the origin of the first
/// HTTP integration met. A version has one upstream, so another origin is reported.
pub(crate) struct Backend {
    given: Option<String>,
    /// The first integration origin met and its place.
    found: Option<(String, String)>,
}

impl Backend {
    pub fn new(opts: &Options) -> Result<Backend, ImportError> {
        let given = match &opts.upstream {
            Some(u) => {
                let origin = u.trim_end_matches('/').to_string();
                tollgate_model::validate::check_target_url(&origin).map_err(|e| {
                    ImportError(format!(
                        "--upstream: {e}; the integration URIs give the paths, --upstream only the origin"
                    ))
                })?;
                Some(origin)
            }
            None => None,
        };
        Ok(Backend { given, found: None })
    }

    /// The upstream origin, once one is known.
    pub fn origin(&self) -> Option<&str> {
        self.given
            .as_deref()
            .or(self.found.as_ref().map(|(o, _)| o.as_str()))
    }

    /// Takes `origin` (named at `at`) as the routes' backend; false (reported) when the
    /// upstream is another one.
    fn accept(&mut self, origin: &str, at: &str, report: &mut Report) -> bool {
        if let Some(given) = &self.given {
            if origin != given && self.found.is_none() {
                report.note(
                    at,
                    format!("`{origin}` (and any other integration origin) is replaced by --upstream {given}"),
                );
                self.found = Some((origin.to_string(), at.to_string()));
            }
            return true;
        }
        match &self.found {
            None => {
                if origin.starts_with("http://") {
                    report.note(at, "the upstream is plain HTTP");
                }
                self.found = Some((origin.to_string(), at.to_string()));
                true
            }
            Some((o, _)) if o == origin => true,
            Some((o, first)) => {
                report.unsupported(
                    at,
                    format!(
                        "a second backend `{origin}`: every route of a version goes to one upstream, `{o}` (from {first}); import with --upstream to send them all to one"
                    ),
                );
                false
            }
        }
    }
}

/// A route's path as the router and the integration see it.
pub(crate) struct Shape {
    /// The route pattern (`=/pets/{petId}`, or `/files` for `/files/{proxy+}`).
    pub pattern: String,
    /// The path Tollgate forwards when nothing rewrites it, as a template.
    pub forwarded: String,
    /// The greedy parameter (`proxy` of `{proxy+}`), whose route is a prefix route.
    pub greedy: Option<String>,
}

/// The shape of the route for the path template `path` (API Gateway's: `{name}` binds
/// a segment, a last `{name+}` the rest of the path), under `prefix`; `None` (reported)
/// when the router cannot take it.
pub(crate) fn shape(prefix: &str, path: &str, at: &str, report: &mut Report) -> Option<Shape> {
    let trimmed = path.trim_end_matches('/');
    let (head, greedy) = match trimmed.rsplit_once('/') {
        Some((head, last)) if last.starts_with('{') && last.ends_with("+}") => {
            (head, Some(last[1..last.len() - 2].to_string()))
        }
        _ => (path, None),
    };
    if head.contains("+}") {
        report.unsupported(
            at,
            "a greedy `{name+}` parameter before the last segment: the router binds the rest of a path only at its end",
        );
        return None;
    }
    let exact = crate::openapi::route_path(prefix, head, at, report)?;
    Some(match greedy {
        None => Shape {
            forwarded: exact[1..].to_string(),
            pattern: exact,
            greedy: None,
        },
        Some(g) => {
            let name = crate::openapi::router_param(&g);
            report.note(
                at,
                format!(
                    "`{{{g}+}}` is a prefix route: it also answers `{}` itself, which API Gateway does not",
                    &exact[1..]
                ),
            );
            let base = exact[1..].trim_end_matches('/');
            Shape {
                forwarded: format!("{base}/{{{name}}}"),
                pattern: exact[1..].to_string(),
                greedy: Some(name),
            }
        }
    })
}

/// What an integration changes on its route.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Forward {
    /// Forward only the rest of the path after the route's prefix.
    pub strip_prefix: bool,
    /// The `request_transform` policy (path, headers, query), if one is needed.
    pub transform: Option<Value>,
}

impl Forward {
    /// Applies this to a route map; the number of policies added.
    pub fn apply(self, route: &mut Map<String, Value>) -> usize {
        if self.strip_prefix {
            route.insert("strip_prefix".into(), json!(true));
        }
        let Some(t) = self.transform else {
            return 0;
        };
        let policies = route
            .entry("policies")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(list) = policies.as_array_mut() {
            list.push(json!({ "request_transform": t }));
        }
        1
    }
}

/// Names an integration's fields in an OpenAPI export (`uri`) and in CloudFormation
/// (`Uri`, `IntegrationHttpMethod`).
const INTEGRATION_FIELDS: &[(&str, &str)] = &[
    ("type", "Type"),
    ("uri", "Uri"),
    ("httpMethod", "IntegrationHttpMethod"),
    ("requestParameters", "RequestParameters"),
    ("requestTemplates", "RequestTemplates"),
    ("responses", "IntegrationResponses"),
    ("passthroughBehavior", "PassthroughBehavior"),
    ("contentHandling", "ContentHandling"),
    ("timeoutInMillis", "TimeoutInMillis"),
    ("connectionType", "ConnectionType"),
    ("connectionId", "ConnectionId"),
    ("cacheKeyParameters", "CacheKeyParameters"),
    ("cacheNamespace", "CacheNamespace"),
    ("credentials", "Credentials"),
    ("tlsConfig", "TlsConfig"),
    ("payloadFormatVersion", "PayloadFormatVersion"),
    ("integrationSubtype", "IntegrationSubtype"),
    ("description", "Description"),
];

/// An integration's field by its OpenAPI name, in either spelling: the key as written
/// and the value.
fn field<'a>(int: &'a Map<String, Value>, name: &str) -> Option<(&'a str, &'a Value)> {
    let (oas, cfn) = INTEGRATION_FIELDS.iter().find(|(o, _)| *o == name)?;
    int.get_key_value(*oas)
        .or_else(|| int.get_key_value(*cfn))
        .map(|(k, v)| (k.as_str(), v))
}

/// Maps the integration `int` (at `at`) of a route of shape `shape` for `methods`.
/// Whatever it cannot express is reported; the route then goes to the upstream as it is.
pub(crate) fn integration(
    int: &Map<String, Value>,
    at: &str,
    shape: &Shape,
    methods: &[String],
    backend: &mut Backend,
    report: &mut Report,
) -> Forward {
    for key in int.keys() {
        if !INTEGRATION_FIELDS.iter().any(|(o, c)| key == o || key == c) {
            report.unsupported(
                format!("{at}.{key}"),
                "an integration setting Tollgate has no equivalent for",
            );
        }
    }
    let uri_value = field(int, "uri").map(|(_, v)| v);
    let uri = uri_value.and_then(Value::as_str).unwrap_or("");
    let kind = field(int, "type")
        .and_then(|(_, v)| v.as_str())
        .unwrap_or("")
        .to_ascii_uppercase();
    match kind.as_str() {
        "HTTP" | "HTTP_PROXY" => {}
        "AWS" | "AWS_PROXY" => {
            report.unsupported(
                at,
                format!(
                    "an {kind} integration ({}): Tollgate sends requests to HTTP upstreams, not to AWS services; the route goes to the upstream as it is",
                    aws_target(uri_value)
                ),
            );
            return Forward::default();
        }
        "MOCK" => {
            let cors = field(int, "responses").is_some_and(|(_, r)| {
                r.to_string()
                    .to_ascii_lowercase()
                    .contains("access-control-allow-")
            });
            report.unsupported(
                at,
                format!(
                    "a MOCK integration (API Gateway answers by itself from a template): Tollgate has no mock answers; the route goes to the upstream as it is{}",
                    if cors {
                        ". This one answers CORS preflights: a `cors` policy does that at the gateway"
                    } else {
                        ""
                    }
                ),
            );
            return Forward::default();
        }
        "" => {
            report.unsupported(at, "an integration without a `type`");
            return Forward::default();
        }
        other => {
            report.unsupported(at, format!("integration type `{other}` is not known"));
            return Forward::default();
        }
    }
    let (uri_key, _) = field(int, "uri").unwrap_or(("uri", &Value::Null));
    let uri_at = format!("{at}.{uri_key}");
    let Some((origin, path)) = split_uri(uri) else {
        let why = match field(int, "uri") {
            Some((_, Value::String(_))) if uri.contains("${") => {
                format!("`{uri}` depends on stage variables or values known only at deployment")
            }
            Some((_, Value::String(_))) => format!("`{uri}` is not an absolute http(s) URL"),
            Some((_, v)) => format!(
                "the URI `{v}` is only known at deployment; import with --upstream and the route goes there as it is"
            ),
            None => "an HTTP integration without a `uri`".to_string(),
        };
        report.unsupported(uri_at, why);
        return Forward::default();
    };
    // Another backend's route goes to the upstream as it is; its settings are still read.
    let accepted = backend.accept(&origin, &uri_at, report);
    if kind == "HTTP" {
        report.note(
            at,
            "an HTTP (non-proxy) integration sends the backend only the parameters it maps; Tollgate forwards the request whole",
        );
    }
    let mut out = Forward::default();
    let mut transform = Map::new();
    if let Some((k, m)) = field(int, "httpMethod").and_then(|(k, v)| Some((k, v.as_str()?))) {
        let m = m.to_ascii_uppercase();
        let same = m == "ANY" && methods.len() > 1 || methods.len() == 1 && methods[0] == m;
        if !same {
            report.unsupported(
                format!("{at}.{k}"),
                format!(
                    "the backend is called with {m} for {}: Tollgate forwards the request's own method",
                    methods.join(", ")
                ),
            );
        }
    }
    // Integration path parameters, by the route parameter they take their value from.
    let mut from: Vec<(String, String)> = Vec::new();
    if let Some((k, params)) = field(int, "requestParameters") {
        let params_at = format!("{at}.{k}");
        request_parameters(params, &params_at, &mut from, &mut transform, report);
    }
    for name in [
        "requestTemplates",
        "contentHandling",
        "tlsConfig",
        "credentials",
    ] {
        if let Some((k, v)) = field(int, name)
            && !is_empty(v)
        {
            let why = match name {
                "requestTemplates" => {
                    "mapping templates (VTL): Tollgate forwards the request body as it is"
                }
                "contentHandling" => "body conversion (base64): Tollgate forwards bodies as bytes",
                "tlsConfig" => "TLS settings for the backend: set them on the upstream (`tls`)",
                _ => "an IAM role for calling the backend",
            };
            report.unsupported(format!("{at}.{k}"), why);
        }
    }
    if let Some((k, r)) = field(int, "responses")
        && !is_empty(r)
    {
        let passthrough = r.as_object().is_some_and(|m| {
            m.len() == 1
                && m.get("default").is_some_and(|d| {
                    d.as_object()
                        .is_some_and(|d| d.keys().all(|k| k == "statusCode"))
                })
        });
        if kind == "HTTP_PROXY" {
            report.note(
                format!("{at}.{k}"),
                "integration responses: API Gateway does not apply them to proxy integrations either",
            );
        } else if passthrough {
            report.note(
                format!("{at}.{k}"),
                "the default integration response: Tollgate passes the backend's status and headers on as they are",
            );
        } else {
            report.unsupported(
                format!("{at}.{k}"),
                "integration responses (status mapping, templates, headers): Tollgate passes the backend's answer on as it is",
            );
        }
    }
    if let Some((k, v)) = field(int, "timeoutInMillis") {
        report.note(
            format!("{at}.{k}"),
            format!(
                "a {v} ms timeout: Tollgate's are per upstream (`timeouts.read`, 60s by default)"
            ),
        );
    }
    if let Some((k, v)) = field(int, "connectionType")
        && v.as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("VPC_LINK"))
    {
        report.note(
            format!("{at}.{k}"),
            "the backend is reached through a VPC link: Tollgate must run where it can reach the URI",
        );
    }
    // Where the path goes: the request path as it is, its rest, or a rewrite.
    let mut target = path.clone();
    for (param, source) in &from {
        target = target.replace(&format!("{{{param}}}"), &format!("{{{source}}}"));
    }
    let target = rename_placeholders(&target);
    let rewrite = match &shape.greedy {
        None => (target != shape.forwarded).then_some(target),
        Some(g) => {
            let rest = format!("{{{g}}}");
            if target == shape.forwarded {
                None
            } else if target == format!("/{rest}") {
                out.strip_prefix = true;
                None
            } else if target.contains(&rest) {
                report.unsupported(
                    &uri_at,
                    format!(
                        "`{path}` puts the rest of the path under another path: Tollgate forwards the request path, or its rest after the route (`strip_prefix`)"
                    ),
                );
                None
            } else {
                Some(target)
            }
        }
    };
    if let Some(target) = rewrite {
        let params = placeholders(&shape.forwarded);
        let unknown: Vec<&str> = placeholders(&target)
            .into_iter()
            .filter(|p| !params.contains(p) || shape.greedy.as_deref() == Some(*p))
            .collect();
        if unknown.is_empty() {
            transform.insert("path".into(), json!(target));
        } else {
            report.unsupported(
                &uri_at,
                format!(
                    "`{path}` uses {}, not a parameter of the route",
                    unknown
                        .iter()
                        .map(|p| format!("`{{{p}}}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    if !accepted {
        return Forward::default();
    }
    if !transform.is_empty() {
        out.transform = Some(Value::Object(transform));
    }
    out
}

/// `requestParameters`: the mappings a `request_transform` can express (path parameters
/// taken from route parameters, fixed header and query values); the rest is reported.
fn request_parameters(
    params: &Value,
    at: &str,
    from: &mut Vec<(String, String)>,
    transform: &mut Map<String, Value>,
    report: &mut Report,
) {
    let Some(params) = params.as_object() else {
        report.unsupported(at, "request parameters that are not a map");
        return;
    };
    for (to, source) in params {
        let p_at = format!("{at}.{to}");
        let source = source.as_str().unwrap_or("");
        let target = to.strip_prefix("integration.request.");
        let fixed = source.strip_prefix('\'').and_then(|s| s.strip_suffix('\''));
        match (target.and_then(|t| t.split_once('.')), fixed) {
            (Some(("path", name)), None) => match source.strip_prefix("method.request.path.") {
                Some(route_param) => from.push((name.to_string(), route_param.to_string())),
                None => report.unsupported(
                    p_at,
                    format!("`{source}`: a path parameter comes from a route parameter in Tollgate"),
                ),
            },
            (Some((place @ ("header" | "querystring"), name)), Some(value)) => {
                let rules = if place == "header" { "headers" } else { "query" };
                let entry = transform
                    .entry(rules)
                    .or_insert_with(|| json!({ "set": {} }));
                if let Some(set) = entry.get_mut("set").and_then(Value::as_object_mut) {
                    set.insert(name.to_string(), json!(value));
                }
            }
            (Some(("header", name)), None)
                if source.eq_ignore_ascii_case(&format!("method.request.header.{name}")) => {}
            (Some(("querystring", name)), None)
                if source == format!("method.request.querystring.{name}") => {}
            _ => report.unsupported(
                p_at,
                format!(
                    "`{source}`: Tollgate's request_transform sets fixed values and renames; it does not copy values from elsewhere in the request or its context"
                ),
            ),
        }
    }
}

/// `(origin, path)` of an absolute http(s) URI without stage variables or a query.
fn split_uri(uri: &str) -> Option<(String, String)> {
    if uri.contains("${") || uri.contains('?') || uri.contains('#') {
        return None;
    }
    let (scheme, rest) = uri.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let origin = format!("{scheme}://{authority}");
    tollgate_model::validate::check_target_url(&origin).ok()?;
    Some((origin, path.to_string()))
}

/// A path template with parameter names the router accepts (`{pet-id}` → `{pet_id}`).
fn rename_placeholders(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        let name = rest[open + 1..open + close].trim_end_matches('+');
        out.push('{');
        out.push_str(&crate::openapi::router_param(name));
        out.push('}');
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn placeholders(template: &str) -> Vec<&str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name))
        .collect()
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// What an AWS integration URI calls, for a message: `Lambda function \`f\`` or the ARN.
fn aws_target(uri: Option<&Value>) -> String {
    let Some(uri) = uri.and_then(Value::as_str) else {
        return match uri {
            None => "no URI".to_string(),
            Some(_) => "a URI known only at deployment".to_string(),
        };
    };
    match uri.split(":function:").nth(1) {
        Some(rest) => format!(
            "Lambda function `{}`",
            rest.split(['/', ':']).next().unwrap_or(rest)
        ),
        None => format!("`{uri}`"),
    }
}

/// An authorizer (an `x-amazon-apigateway-authorizer` or an `AWS::ApiGateway::Authorizer`)
/// of type `kind` calling `uri` or checking tokens of the user pools `providers`, described
/// for the report: Tollgate cannot call it.
pub(crate) fn authorizer(
    kind: Option<&Value>,
    uri: Option<&Value>,
    providers: Option<&Value>,
) -> String {
    let kind = kind.and_then(Value::as_str).unwrap_or("token");
    match kind.to_ascii_lowercase().as_str() {
        "cognito_user_pools" => {
            let pools: Vec<&str> = providers
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            format!(
                "a Cognito user pool authorizer ({}): check the pool's tokens with a `jwt` policy on its JWKS URL (https://cognito-idp.REGION.amazonaws.com/POOL_ID/.well-known/jwks.json)",
                if pools.is_empty() {
                    "pools known only at deployment".to_string()
                } else {
                    pools.join(", ")
                }
            )
        }
        "jwt" => "a JWT authorizer: check the tokens with a `jwt` policy on the issuer's JWKS URL"
            .to_string(),
        k => format!(
            "a Lambda authorizer (`{k}`, {}): Tollgate cannot call AWS Lambda; use a jwt, key_auth or oauth2_introspection policy instead",
            aws_target(uri)
        ),
    }
}

/// A throttle's token bucket as a `rate_limit`: `RateLimit` requests per second refill
/// a bucket of `BurstLimit`. GCRA with `limit` per `window` and `burst` is that bucket
/// exactly, so the window is the shortest one in which the rate is a whole number of
/// requests (`0.5` → 1 per 2s); a rate no such window fits is rounded, with a note.
pub(crate) fn rate_limit(
    rate: Option<&Value>,
    burst: Option<&Value>,
    at: &str,
    report: &mut Report,
) -> Option<Value> {
    let Some(rate) = rate
        .and_then(Value::as_f64)
        .filter(|r| *r > 0.0 && r.is_finite())
    else {
        report.unsupported(at, "a throttle without a rate above 0");
        return None;
    };
    const WINDOWS: &[u64] = &[
        1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 100, 120, 300, 600, 900, 1800,
        3600, 7200, 21600, 43200, 86400,
    ];
    let fit = WINDOWS.iter().find_map(|w| {
        let n = rate * *w as f64;
        ((n - n.round()).abs() < 1e-6 && n.round() >= 1.0).then_some((n.round() as u64, *w))
    });
    let (limit, window) = fit.unwrap_or_else(|| {
        let n = (rate * 86400.0).round().max(1.0) as u64;
        report.note(
            at,
            format!(
                "the rate {rate}/s is rounded to {n} per day ({:.6}/s)",
                n as f64 / 86400.0
            ),
        );
        (n, 86400)
    });
    let burst = match burst {
        None => {
            report.note(at, "no burst: the bucket holds one second of the rate");
            (rate.ceil() as u64).max(1)
        }
        Some(b) => match b.as_f64().filter(|b| *b >= 1.0 && b.is_finite()) {
            Some(b) => b as u64,
            None => {
                report.unsupported(
                    at,
                    format!("a burst of {b}: Tollgate lets at least one request through"),
                );
                return None;
            }
        },
    };
    Some(json!({ "limit": limit, "window": duration(window), "burst": burst }))
}

/// Seconds written in the largest unit that divides them (`120` → `2m`).
fn duration(secs: u64) -> String {
    for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if secs.is_multiple_of(n) {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

/// A usage plan's quota: `Limit` requests per `Period` (`DAY`, `WEEK`, `MONTH`).
pub(crate) fn quota(quota: &Map<String, Value>, at: &str, report: &mut Report) -> Option<Value> {
    let get = |k: &str| quota.get(k).or_else(|| quota.get(&k.to_ascii_lowercase()));
    let Some(limit) = get("Limit").and_then(Value::as_u64).filter(|l| *l > 0) else {
        report.unsupported(at, "a quota without a limit above 0");
        return None;
    };
    if get("Offset").and_then(Value::as_u64).is_some_and(|o| o > 0) {
        report.unsupported(
            format!("{at}.Offset"),
            "an offset into the first period: Tollgate counts every period from zero",
        );
    }
    let period = get("Period").and_then(Value::as_str).unwrap_or("");
    match period.to_ascii_uppercase().as_str() {
        "DAY" => Some(json!({ "limit": limit, "period": "day" })),
        "MONTH" => Some(json!({ "limit": limit, "period": "month" })),
        "WEEK" => {
            report.unsupported(
                format!("{at}.Period"),
                "a weekly quota: Tollgate counts quotas per UTC day or month",
            );
            None
        }
        _ => {
            report.unsupported(
                format!("{at}.Period"),
                format!("quota period `{period}` is not DAY, WEEK or MONTH"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(prefix: &str, path: &str) -> Shape {
        shape(prefix, path, "p", &mut Report::default()).unwrap()
    }

    #[test]
    fn greedy_parameters_make_prefix_routes() {
        let s = shape_of("", "/{proxy+}");
        assert_eq!(
            (s.pattern.as_str(), s.forwarded.as_str()),
            ("/", "/{proxy}")
        );
        let s = shape_of("/v1", "/files/{path+}");
        assert_eq!(s.pattern, "/v1/files");
        assert_eq!(s.forwarded, "/v1/files/{path}");
        let s = shape_of("", "/pets/{pet-id}");
        assert_eq!((s.pattern.as_str(), s.greedy), ("=/pets/{pet_id}", None));
        assert!(shape("", "/{a+}/b", "p", &mut Report::default()).is_none());
    }

    fn forward(path: &str, uri: &str, extra: Value) -> (Forward, Report) {
        let mut report = Report::default();
        let mut int = json!({ "type": "http_proxy", "uri": uri });
        int.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        let shape = shape("", path, "p", &mut report).unwrap();
        let mut backend = Backend::new(&Options::default()).unwrap();
        let f = integration(
            int.as_object().unwrap(),
            "i",
            &shape,
            &["GET".to_string()],
            &mut backend,
            &mut report,
        );
        (f, report)
    }

    #[test]
    fn integration_paths_become_rewrites_only_when_they_differ() {
        let (f, r) = forward("/pets/{id}", "https://b.example/pets/{id}", json!({}));
        assert_eq!(f, Forward::default());
        assert!(r.unsupported.is_empty());
        let (f, _) = forward("/pets/{id}", "https://b.example/store/pets/{id}", json!({}));
        assert_eq!(f.transform, Some(json!({ "path": "/store/pets/{id}" })));
        // A mapped path parameter takes the route parameter's value.
        let (f, r) = forward(
            "/pets/{id}",
            "https://b.example/p/{petId}",
            json!({ "requestParameters": {
                "integration.request.path.petId": "method.request.path.id",
                "integration.request.header.x-src": "'tollgate'",
                "integration.request.querystring.q": "method.request.header.q"
            } }),
        );
        assert_eq!(
            f.transform,
            Some(json!({ "path": "/p/{id}", "headers": { "set": { "x-src": "tollgate" } } }))
        );
        assert_eq!(r.unsupported.len(), 1);
        assert_eq!(
            r.unsupported[0].at,
            "i.requestParameters.integration.request.querystring.q"
        );
        // Greedy: the rest goes as it is, or stripped, or cannot be expressed.
        let (f, _) = forward("/{proxy+}", "https://b.example/{proxy}", json!({}));
        assert_eq!(f, Forward::default());
        let (f, _) = forward("/api/{proxy+}", "https://b.example/{proxy}", json!({}));
        assert!(f.strip_prefix);
        let (_, r) = forward("/api/{proxy+}", "https://b.example/x/{proxy}", json!({}));
        assert_eq!(r.unsupported.len(), 1);
        let (_, r) = forward("/a", "https://b.example/{nope}", json!({}));
        assert!(r.unsupported[0].message.contains("`{nope}`"), "{r:?}");
        let (_, r) = forward("/a", "https://${stageVariables.host}/a", json!({}));
        assert!(
            r.unsupported[0].message.contains("stage variables"),
            "{r:?}"
        );
        let (_, r) = forward("/a", "https://b.example/a", json!({ "httpMethod": "POST" }));
        assert!(
            r.unsupported[0].message.contains("with POST for GET"),
            "{r:?}"
        );
    }

    #[test]
    fn throttles_keep_rate_and_burst() {
        let mut r = Report::default();
        let rl = |rate: Value, burst: Value, r: &mut Report| {
            rate_limit(Some(&rate), Some(&burst), "t", r)
        };
        assert_eq!(
            rl(json!(200.0), json!(200), &mut r),
            Some(json!({ "limit": 200, "window": "1s", "burst": 200 }))
        );
        assert_eq!(
            rl(json!(0.5), json!(10), &mut r),
            Some(json!({ "limit": 1, "window": "2s", "burst": 10 }))
        );
        assert_eq!(
            rl(json!(1.0 / 60.0), json!(1), &mut r),
            Some(json!({ "limit": 1, "window": "1m", "burst": 1 }))
        );
        assert!(r.notes.is_empty());
        assert_eq!(
            rl(json!(0.123456789), json!(1), &mut r),
            Some(json!({ "limit": 10667, "window": "1d", "burst": 1 }))
        );
        assert_eq!(r.notes.len(), 1);
        for (rate, burst) in [(json!(0), json!(1)), (json!(5), json!(0))] {
            let mut r = Report::default();
            assert_eq!(rl(rate, burst, &mut r), None);
            assert_eq!(r.unsupported.len(), 1);
        }
    }

    #[test]
    fn quotas_by_day_and_month() {
        let mut r = Report::default();
        let q = |v: Value, r: &mut Report| quota(v.as_object().unwrap(), "q", r);
        assert_eq!(
            q(json!({ "Limit": 5000, "Period": "MONTH" }), &mut r),
            Some(json!({ "limit": 5000, "period": "month" }))
        );
        assert_eq!(
            q(json!({ "limit": 10, "period": "DAY" }), &mut r),
            Some(json!({ "limit": 10, "period": "day" }))
        );
        assert_eq!(q(json!({ "Limit": 10, "Period": "WEEK" }), &mut r), None);
        assert_eq!(r.unsupported[0].at, "q.Period");
    }
}
