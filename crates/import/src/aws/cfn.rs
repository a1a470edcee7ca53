//! A CloudFormation template's `AWS::ApiGateway::*` resources → APIs, products, apps and
//! subscriptions.
//!
//! - `RestApi` → an API; each stage (a `Stage`, or a `Deployment`'s `StageName`) → a
//!   version of it named after the stage, whose routes carry the stage as their first
//!   segment, as the stage's invoke URL does (`/test/pets`).
//! - `Resource` + `Method` → a route per stage; the method's integration as in
//!   [`super::integration`], `ApiKeyRequired` → `key_auth`.
//! - `UsagePlan` → a plan (`Throttle` → `rate_limit`, `Quota` → `quota`; per-method
//!   throttles → a `rate_limit` on the route) in a product holding its `ApiStages`. Usage
//!   plans over the same stages are plans of one product.
//! - `ApiKey` → an app (of one placeholder developer: API keys have no owner), with the key's
//!   value when the template gives it; `UsagePlanKey` → a subscription.
//!
//! Intrinsic functions (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::Select`,
//! `Fn::FindInMap`, in long or `!Short` form) are resolved within the template: parameters
//! by their defaults, references between resources by logical id. A value known only at
//! deployment is reported where it matters.

mod plans;
mod template;

use serde_json::{Map, Value, json};

use super::{ANY, Backend, Options, Shape};
use crate::{ImportError, Imported, Report, checked, slug};
use template::Template;
pub(crate) use template::parse;

/// The developer the imported apps belong to (API Gateway keys have no owner).
const KEY_OWNER: &str = "api-keys@aws-import.invalid";

/// Maps the template `root`.
pub(crate) fn import(root: &Map<String, Value>, opts: &Options) -> Result<Imported, ImportError> {
    let Some(resources) = root.get("Resources").and_then(Value::as_object) else {
        return Err(ImportError(
            "a CloudFormation template without a `Resources` map".into(),
        ));
    };
    let mut report = Report::default();
    if root.contains_key("Transform") {
        report.unsupported(
            "Transform",
            "macros (SAM) are expanded by CloudFormation at deployment; import the processed template",
        );
    }
    let t = Template {
        resources,
        parameters: root.get("Parameters").and_then(Value::as_object),
        mappings: root.get("Mappings").and_then(Value::as_object),
    };
    let apis: Vec<&str> = t.of_type("AWS::ApiGateway::RestApi");
    if opts.name.is_some() && apis.len() != 1 {
        return Err(ImportError(format!(
            "--name names one API; the template defines {} REST APIs",
            apis.len()
        )));
    }
    for (id, r) in resources {
        t.check_resource(id, r, &mut report);
    }
    let mut doc = Doc::default();
    for id in &apis {
        t.api(id, apis.len() > 1, opts, &mut doc, &mut report)?;
    }
    t.usage_plans(&mut doc, &mut report);
    report.count("upstreams", doc.upstreams.len());
    report.count("apis", doc.apis.len());
    report.count("versions", doc.versions());
    report.count("routes", doc.routes());
    report.count("policies", doc.policies());
    report.count("products", doc.products.len());
    report.count("plans", doc.plans());
    report.count("developers", usize::from(!doc.apps.is_empty()));
    report.count("apps", doc.apps.len());
    report.count("subscriptions", doc.subscriptions.len());
    let mut out = Map::new();
    out.insert("format_version".into(), json!(1));
    out.insert("upstreams".into(), Value::Array(doc.upstreams));
    out.insert("apis".into(), Value::Array(doc.apis));
    if !doc.apps.is_empty() {
        report.note(
            "developers",
            format!(
                "API Gateway keys have no owner: the imported apps belong to `{KEY_OWNER}`; give each app its developer"
            ),
        );
        out.insert(
            "developers".into(),
            json!([{ "email": KEY_OWNER, "name": "API Gateway keys (imported)" }]),
        );
        out.insert("apps".into(), Value::Array(doc.apps));
    }
    if !doc.products.is_empty() {
        out.insert("products".into(), Value::Array(doc.products));
    }
    if !doc.subscriptions.is_empty() {
        out.insert("subscriptions".into(), Value::Array(doc.subscriptions));
    }
    checked(Value::Object(out), report)
}

/// A version by its place: the API's index in [`Doc::apis`], the version's in its versions.
type VersionAt = (usize, usize);

/// The configuration being made.
#[derive(Default)]
struct Doc {
    upstreams: Vec<Value>,
    apis: Vec<Value>,
    /// Each RestApi's logical id and its stages with the path their routes start with, in
    /// the order of `apis` and of their versions.
    stages: Vec<(String, Vec<(String, String)>)>,
    products: Vec<Value>,
    apps: Vec<Value>,
    subscriptions: Vec<Value>,
}

impl Doc {
    fn versions_iter(&self) -> impl Iterator<Item = &Value> {
        self.apis
            .iter()
            .filter_map(|a| a["versions"].as_array())
            .flatten()
    }

    fn versions(&self) -> usize {
        self.versions_iter().count()
    }

    fn routes(&self) -> usize {
        self.versions_iter()
            .filter_map(|v| v["routes"].as_array())
            .map(Vec::len)
            .sum()
    }

    fn policies(&self) -> usize {
        let n = |v: &Value| v["policies"].as_array().map_or(0, Vec::len);
        self.versions_iter()
            .map(|v| n(v) + v["routes"].as_array().map_or(0, |r| r.iter().map(n).sum()))
            .sum()
    }

    fn plans(&self) -> usize {
        self.products
            .iter()
            .map(|p| p["plans"].as_array().map_or(0, Vec::len))
            .sum()
    }

    /// The version of the API made from RestApi `api` for `stage`.
    fn version_of(&self, api: &str, stage: &str) -> Option<VersionAt> {
        let a = self.stages.iter().position(|(id, _)| id == api)?;
        let v = self.stages[a].1.iter().position(|(s, _)| s == stage)?;
        Some((a, v))
    }

    /// The path the routes of a version start with (`/test`).
    fn prefix(&self, (a, v): VersionAt) -> &str {
        &self.stages[a].1[v].1
    }

    /// A version as a product names it: `api@version`.
    fn version_ref(&self, (a, v): VersionAt) -> String {
        let api = &self.apis[a];
        format!(
            "{}@{}",
            api["name"].as_str().unwrap_or(""),
            api["versions"][v]["version"].as_str().unwrap_or("")
        )
    }
}

/// One method of a RestApi, read once and routed in every stage.
struct Method {
    id: String,
    /// The resource path as API Gateway writes it (`/pets/{petId}`).
    path: String,
    methods: Vec<String>,
    name: Option<String>,
    auth: Vec<Value>,
    unguarded: bool,
    integration: Option<Map<String, Value>>,
}

impl Template<'_> {
    /// The API made from RestApi `id`: one version per stage. Of `several` APIs in one
    /// template (each on a host of its own in API Gateway), the routes start with the API's
    /// name.
    fn api(
        &self,
        id: &str,
        several: bool,
        opts: &Options,
        doc: &mut Doc,
        report: &mut Report,
    ) -> Result<(), ImportError> {
        let at = format!("Resources.{id}");
        let title = self.text(id, "Name");
        let name = match &opts.name {
            Some(n) => n.clone(),
            None => unique(slug(title.as_deref().unwrap_or(id), "api"), |n| {
                doc.apis.iter().any(|a| a["name"] == n)
            }),
        };
        let keys_from_authorizer = self
            .text(id, "ApiKeySourceType")
            .is_some_and(|s| s.eq_ignore_ascii_case("AUTHORIZER"));
        let methods = self.methods(id, keys_from_authorizer, report);
        let stages = self.stages(id);
        let mut backend = Backend::new(opts)?;
        let mut versions = Vec::new();
        let version_names: Vec<String> = if stages.is_empty() {
            report.note(&at, "deployed to no stage: imported as a draft version `v1` whose routes have no stage prefix");
            vec![String::new()]
        } else {
            stages.clone()
        };
        let api_prefix = if several {
            report.note(
                &at,
                format!(
                    "one of several REST APIs, each on its own host in API Gateway: its routes start with `/{name}`"
                ),
            );
            format!("/{name}")
        } else {
            String::new()
        };
        let mut prefixes = Vec::new();
        for (i, stage) in version_names.iter().enumerate() {
            // Findings are the same in every stage: reported for the first one.
            let mut scratch = Report::default();
            let r = if i == 0 { &mut *report } else { &mut scratch };
            let prefix = if stage.is_empty() {
                api_prefix.clone()
            } else {
                format!("{api_prefix}/{stage}")
            };
            let mut routes = Vec::new();
            let mut unguarded = Vec::new();
            for m in &methods {
                let m_at = format!("Resources.{}", m.id);
                let Some(shape) = super::shape(&prefix, &m.path, &m_at, r) else {
                    continue;
                };
                routes.push(route(m, &shape, &m_at, &mut backend, r));
                if m.unguarded {
                    unguarded.push(format!("{} {}", m.methods.join("|"), m.path));
                }
            }
            let mut version = Map::new();
            let vname = if stage.is_empty() {
                "v1".to_string()
            } else {
                crate::openapi::version_name(stage)
            };
            version.insert("version".into(), json!(vname));
            if stage.is_empty() {
                version.insert("status".into(), json!("draft"));
            } else if !unguarded.is_empty() {
                version.insert("status".into(), json!("draft"));
                report.note(
                    format!("{at}.{stage}"),
                    format!(
                        "stage `{stage}` is imported as a draft (not served): {} method(s) require authorization that could not be mapped ({}); add the policies, then publish it",
                        unguarded.len(),
                        unguarded.join(", ")
                    ),
                );
            }
            version.insert("upstream".into(), json!(format!("{name}-upstream")));
            version.insert("routes".into(), Value::Array(routes));
            if let Some(throttle) = self.stage_throttle(id, stage, &prefix, &mut version, report) {
                version.insert("policies".into(), json!([{ "rate_limit": throttle }]));
            }
            versions.push(Value::Object(version));
            prefixes.push(prefix);
        }
        let Some(origin) = backend.origin() else {
            return Err(ImportError(format!(
                "{at}: no HTTP or HTTP_PROXY integration of API `{name}` names a backend: pass the upstream with --upstream URL"
            )));
        };
        doc.upstreams
            .push(json!({ "name": format!("{name}-upstream"), "targets": [{ "url": origin }] }));
        let mut api = Map::new();
        api.insert("name".into(), json!(name));
        if let Some(t) = title {
            api.insert("title".into(), json!(t));
        }
        if let Some(d) = self.text(id, "Description") {
            api.insert("description".into(), json!(d));
        }
        api.insert("versions".into(), Value::Array(versions));
        doc.apis.push(Value::Object(api));
        doc.stages
            .push((id.to_string(), stages.into_iter().zip(prefixes).collect()));
        Ok(())
    }

    /// The stages of RestApi `api`, in template order: `Stage` resources and the stages
    /// `Deployment`s make.
    fn stages(&self, api: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for id in self.resources.keys() {
            let made = match self.kind(id) {
                "AWS::ApiGateway::Stage" | "AWS::ApiGateway::Deployment"
                    if self.api_of(id) == Some(api) =>
                {
                    self.text(id, "StageName")
                }
                _ => None,
            };
            if let Some(s) = made.filter(|s| !out.contains(s)) {
                out.push(s);
            }
        }
        out
    }

    /// The methods of RestApi `api`.
    fn methods(&self, api: &str, keys_from_authorizer: bool, report: &mut Report) -> Vec<Method> {
        let mut out: Vec<Method> = Vec::new();
        let ids: Vec<&str> = self
            .of_type("AWS::ApiGateway::Method")
            .into_iter()
            .filter(|m| self.api_of(m) == Some(api))
            .collect();
        for id in &ids {
            let at = format!("Resources.{id}");
            let Some(resource) = self.props(id).and_then(|p| p.get("ResourceId")) else {
                report.unsupported(&at, "a method without a ResourceId");
                continue;
            };
            let path = match self.path_of(resource, 0) {
                Ok(p) if p.is_empty() => "/".to_string(),
                Ok(p) => p,
                Err(e) => {
                    report.unsupported(format!("{at}.Properties.ResourceId"), e);
                    continue;
                }
            };
            let verb = self
                .text(id, "HttpMethod")
                .unwrap_or_default()
                .to_ascii_uppercase();
            let methods = if verb == "ANY" {
                // The methods the resource's other methods do not take.
                let others: Vec<String> = ids
                    .iter()
                    .filter(|o| {
                        *o != id
                            && self.props(o).and_then(|p| p.get("ResourceId")) == Some(resource)
                    })
                    .filter_map(|o| self.text(o, "HttpMethod"))
                    .map(|m| m.to_ascii_uppercase())
                    .collect();
                ANY.iter()
                    .filter(|m| !others.iter().any(|o| o == *m))
                    .map(|m| m.to_string())
                    .collect()
            } else if crate::openapi::METHODS.contains(&verb.to_ascii_lowercase().as_str()) {
                vec![verb]
            } else {
                report.unsupported(
                    format!("{at}.Properties.HttpMethod"),
                    format!("`{verb}` is not an HTTP method"),
                );
                continue;
            };
            let mut auth = Vec::new();
            let mut unguarded = false;
            let kind = self
                .text(id, "AuthorizationType")
                .unwrap_or_else(|| "NONE".into())
                .to_ascii_uppercase();
            if kind != "NONE" {
                let authorizer = self
                    .props(id)
                    .and_then(|p| p.get("AuthorizerId"))
                    .and_then(|a| self.target(a))
                    .map(|(a, _)| format!(" (Resources.{a})"))
                    .unwrap_or_default();
                let why = match kind.as_str() {
                    "AWS_IAM" => "IAM authorization (SigV4-signed requests)".to_string(),
                    k => format!("a {k} authorizer{authorizer}: Tollgate cannot call it"),
                };
                report.unsupported(format!("{at}.Properties.AuthorizationType"), why);
                unguarded = true;
            }
            if self
                .prop(id, "ApiKeyRequired")
                .is_some_and(|v| v == json!(true) || v == json!("true"))
            {
                if keys_from_authorizer {
                    report.unsupported(
                        format!("Resources.{api}.Properties.ApiKeySourceType"),
                        "API keys supplied by a Lambda authorizer: Tollgate's key_auth reads the key from the request",
                    );
                    unguarded = true;
                } else {
                    auth.push(json!({ "key_auth": {} }));
                }
            }
            let integration = match self.prop(id, "Integration") {
                Some(Value::Object(m)) => Some(m),
                Some(_) => {
                    report.unsupported(
                        format!("{at}.Properties.Integration"),
                        "an integration that is not a map",
                    );
                    None
                }
                None => {
                    report.note(
                        &at,
                        "no Integration: the route goes to the upstream as it is",
                    );
                    None
                }
            };
            out.push(Method {
                id: id.to_string(),
                path,
                methods,
                name: self.text(id, "OperationName"),
                auth,
                unguarded,
                integration,
            });
        }
        out
    }

    /// A stage's `MethodSettings` throttles: for `/*` `*`, the version's `rate_limit` (for
    /// all callers together, as API Gateway counts a stage); for one method, its route's.
    fn stage_throttle(
        &self,
        api: &str,
        stage: &str,
        prefix: &str,
        version: &mut Map<String, Value>,
        report: &mut Report,
    ) -> Option<Value> {
        let id = self
            .of_type("AWS::ApiGateway::Stage")
            .into_iter()
            .find(|s| {
                self.api_of(s) == Some(api) && self.text(s, "StageName").as_deref() == Some(stage)
            })?;
        let Some(Value::Array(settings)) = self.prop(id, "MethodSettings") else {
            return None;
        };
        let mut whole = None;
        for (i, s) in settings.iter().enumerate() {
            let at = format!("Resources.{id}.Properties.MethodSettings[{i}]");
            let Some(s) = s.as_object() else { continue };
            for k in s.keys() {
                match k.as_str() {
                    "ResourcePath"
                    | "HttpMethod"
                    | "ThrottlingRateLimit"
                    | "ThrottlingBurstLimit" => {}
                    "LoggingLevel" | "MetricsEnabled" | "DataTraceEnabled" => report.note(
                        format!("{at}.{k}"),
                        "CloudWatch logs and metrics: Tollgate has its own (/metrics, access_log)",
                    ),
                    _ => report.unsupported(
                        format!("{at}.{k}"),
                        "a method setting Tollgate has no equivalent for (caching)",
                    ),
                }
            }
            if !s.contains_key("ThrottlingRateLimit") && !s.contains_key("ThrottlingBurstLimit") {
                continue;
            }
            let Some(mut limit) = super::rate_limit(
                s.get("ThrottlingRateLimit"),
                s.get("ThrottlingBurstLimit"),
                &at,
                report,
            ) else {
                continue;
            };
            limit["by"] = json!("api");
            let path = s
                .get("ResourcePath")
                .and_then(Value::as_str)
                .unwrap_or("/*");
            let method = s.get("HttpMethod").and_then(Value::as_str).unwrap_or("*");
            if path == "/*" && method == "*" {
                whole = Some(limit);
                continue;
            }
            // `/~1pets~1{id}`: the path, its slashes written `~1`.
            let path = match path.strip_prefix('/') {
                Some("") | None => "/".to_string(),
                Some(p) => p.replace("~1", "/"),
            };
            if !add_to_route(version, &format!("{path}/{method}"), prefix, limit) {
                report.unsupported(
                    &at,
                    format!("a throttle for `{method} {path}`, which is no method of this stage"),
                );
            }
        }
        whole
    }
}

/// The route of method `m` in the version whose routes have shape `shape`.
fn route(m: &Method, shape: &Shape, at: &str, backend: &mut Backend, report: &mut Report) -> Value {
    let mut route = Map::new();
    if let Some(n) = &m.name {
        route.insert("name".into(), json!(n));
    }
    route.insert("path".into(), json!(shape.pattern));
    route.insert("methods".into(), json!(m.methods));
    if !m.auth.is_empty() {
        route.insert("policies".into(), json!(m.auth));
    }
    if let Some(int) = &m.integration {
        let int_at = format!("{at}.Properties.Integration");
        super::integration(int, &int_at, shape, &m.methods, backend, report).apply(&mut route);
    }
    Value::Object(route)
}

/// Adds `limit` to the route `key` (`/pets/GET`, the resource path and the method) of a
/// version whose routes start with `prefix`; false when there is no such route.
fn add_to_route(version: &mut Map<String, Value>, key: &str, prefix: &str, limit: Value) -> bool {
    let Some((path, method)) = key.rsplit_once('/') else {
        return false;
    };
    let wanted = match (prefix, path) {
        ("", "") => "/".to_string(),
        (prefix, "" | "/") => prefix.to_string(),
        (prefix, path) => format!("{prefix}{path}"),
    };
    let routes = version.get_mut("routes").and_then(Value::as_array_mut);
    let Some(route) = routes.into_iter().flatten().find(|r| {
        r["path"]
            .as_str()
            .is_some_and(|p| p.trim_start_matches('=') == wanted)
            && r["methods"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m == method))
    }) else {
        return false;
    };
    match route["policies"].as_array_mut() {
        Some(p) => p.push(json!({ "rate_limit": limit })),
        None => route["policies"] = json!([{ "rate_limit": limit }]),
    }
    true
}

/// `base`, or `base-2`, `base-3`, … when `taken` (names are unique per kind).
fn unique(base: String, taken: impl Fn(&str) -> bool) -> String {
    let mut name = base.clone();
    let mut n = 1;
    while taken(&name) {
        n += 1;
        name = format!("{base}-{n}");
    }
    name
}
