//! Reading a CloudFormation template: its YAML tags, its intrinsic functions, and the
//! settings of each resource type that are mapped, only document, or have no equivalent.

use serde_json::{Map, Value, json};

use crate::{ImportError, Report, aws};

/// Parses YAML or JSON, turning CloudFormation's short forms (`!Ref X`, `!GetAtt A.B`,
/// `!Sub s`) into the long forms (`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "B"]}`).
pub(crate) fn parse(text: &str) -> Result<Value, ImportError> {
    let v: yaml_serde::Value =
        yaml_serde::from_str(text).map_err(|e| ImportError(format!("not YAML or JSON: {e}")))?;
    Ok(long_form(v))
}

fn long_form(v: yaml_serde::Value) -> Value {
    use yaml_serde::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => json!(b),
        Y::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => json!(u),
            (_, Some(i), _) => json!(i),
            (_, _, Some(f)) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            _ => Value::Null,
        },
        Y::String(s) => json!(s),
        Y::Sequence(s) => Value::Array(s.into_iter().map(long_form).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match long_form(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, long_form(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = long_form(t.value);
            let value = match (name, value) {
                ("GetAtt", Value::String(s)) => match s.split_once('.') {
                    Some((res, att)) => json!([res, att]),
                    None => json!(s),
                },
                (_, v) => v,
            };
            let key = match name {
                "Ref" | "Condition" => name.to_string(),
                _ => format!("Fn::{name}"),
            };
            json!({ key: value })
        }
    }
}

pub(super) struct Template<'a> {
    pub resources: &'a Map<String, Value>,
    pub parameters: Option<&'a Map<String, Value>>,
    pub mappings: Option<&'a Map<String, Value>>,
}

/// A resource's settings that this importer maps, that only document, and what the
/// others are, per resource type.
struct Settings {
    mapped: &'static [&'static str],
    docs: &'static [&'static str],
}

fn settings(kind: &str) -> Option<Settings> {
    let (mapped, docs): (&[&str], &[&str]) = match kind {
        "AWS::ApiGateway::RestApi" => (
            &["Name", "Description", "ApiKeySourceType"],
            &[
                "Tags",
                "BinaryMediaTypes",
                "FailOnWarnings",
                "DisableExecuteApiEndpoint",
            ],
        ),
        "AWS::ApiGateway::Resource" => (&["ParentId", "PathPart", "RestApiId"], &[]),
        "AWS::ApiGateway::Method" => (
            &[
                "HttpMethod",
                "ResourceId",
                "RestApiId",
                "AuthorizationType",
                "AuthorizerId",
                "ApiKeyRequired",
                "Integration",
                "OperationName",
            ],
            &["MethodResponses", "RequestModels", "RequestParameters"],
        ),
        "AWS::ApiGateway::Deployment" => (
            &["RestApiId", "StageName", "StageDescription"],
            &["Description"],
        ),
        "AWS::ApiGateway::Stage" => (
            &["StageName", "RestApiId", "DeploymentId", "MethodSettings"],
            &["Description", "Tags", "DocumentationVersion"],
        ),
        "AWS::ApiGateway::UsagePlan" => (
            &["UsagePlanName", "ApiStages", "Throttle", "Quota"],
            &["Description", "Tags"],
        ),
        "AWS::ApiGateway::ApiKey" => (
            &["Name", "Value", "Enabled", "Description"],
            &["Tags", "GenerateDistinctId", "CustomerId"],
        ),
        "AWS::ApiGateway::UsagePlanKey" => (&["KeyId", "KeyType", "UsagePlanId"], &[]),
        _ => return None,
    };
    Some(Settings { mapped, docs })
}

/// Why a setting has no equivalent, for the settings met most.
fn why(key: &str) -> &'static str {
    match key {
        "Body" | "BodyS3Location" => {
            "an OpenAPI definition of the API: import the document itself with `tollgate import aws`"
        }
        "EndpointConfiguration" => "endpoint configuration (endpoint type, VPC endpoints)",
        "Policy" => "a resource policy (IAM): use ip_restrict and authentication policies",
        "MinimumCompressionSize" => {
            "compressing answers: Tollgate passes bodies on as the upstream sends them"
        }
        "Variables" => "stage variables: an integration URI is imported as written",
        "CacheClusterEnabled" | "CacheClusterSize" => "the stage cache: add a `cache` policy",
        "AccessLogSetting" => "access logs to CloudWatch: set `access_log` on the API",
        "TracingEnabled" => {
            "X-Ray tracing: Tollgate exports OpenTelemetry spans (`serve --otlp-endpoint`)"
        }
        "ClientCertificateId" => {
            "a client certificate for the backends: set it on the upstream (`tls.client_cert`)"
        }
        "CanarySetting" | "DeploymentCanarySettings" => "canary releases",
        "AuthorizationScopes" => "required scopes: they belong to an authorizer's token check",
        "RequestValidatorId" => "request validation: the `validate` policy is not in this build",
        "StageKeys" => "keys bound to stages directly: use a usage plan",
        _ => "a setting Tollgate has no equivalent for",
    }
}

impl<'a> Template<'a> {
    pub(super) fn of_type(&self, kind: &str) -> Vec<&'a str> {
        self.resources
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
            .map(|(id, _)| id.as_str())
            .collect()
    }

    pub(super) fn kind(&self, id: &str) -> &'a str {
        self.resources
            .get(id)
            .and_then(|r| r.get("Type"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub(super) fn props(&self, id: &str) -> Option<&'a Map<String, Value>> {
        self.resources.get(id)?.get("Properties")?.as_object()
    }

    /// Reports what a resource holds that is not mapped: its settings, a condition, a type
    /// that is not imported.
    pub(super) fn check_resource(&self, id: &str, r: &Value, report: &mut Report) {
        let at = format!("Resources.{id}");
        let kind = r.get("Type").and_then(Value::as_str).unwrap_or("");
        if r.get("Condition").is_some() {
            report.unsupported(
                format!("{at}.Condition"),
                "a resource made only when a condition holds: imported as if it always does",
            );
        }
        let Some(s) = settings(kind) else {
            match kind {
                "AWS::ApiGateway::Authorizer" => {
                    let prop = |k: &str| self.prop(id, k);
                    report.unsupported(
                        at,
                        aws::authorizer(
                            prop("Type").as_ref(),
                            prop("AuthorizerUri").as_ref(),
                            prop("ProviderARNs").as_ref(),
                        ),
                    );
                }
                "AWS::ApiGateway::Model" | "AWS::ApiGateway::DocumentationPart" | "AWS::ApiGateway::DocumentationVersion" => {
                    report.note(at, "documentation only: not part of the configuration");
                }
                "AWS::ApiGateway::GatewayResponse" => report.unsupported(
                    at,
                    "a custom answer for API Gateway's own errors: Tollgate answers its errors as application/problem+json",
                ),
                "AWS::ApiGateway::RequestValidator" => report.unsupported(
                    at,
                    "request validation: the `validate` policy is not in this build",
                ),
                "AWS::ApiGateway::DomainName" | "AWS::ApiGateway::BasePathMapping" | "AWS::ApiGateway::BasePathMappingV2" | "AWS::ApiGateway::DomainNameV2" => report.unsupported(
                    at,
                    "a custom domain: route by host with `hosts` and serve its certificate from `certificates`",
                ),
                k if k.starts_with("AWS::ApiGateway::") => {
                    report.unsupported(at, format!("`{k}` has no Tollgate equivalent"))
                }
                k if k.starts_with("AWS::ApiGatewayV2::") || k.starts_with("AWS::Serverless::") => {
                    report.unsupported(at, format!("`{k}`: only REST APIs (AWS::ApiGateway) are imported"))
                }
                k => report.note(at, format!("`{k}` is not part of API Gateway: not imported")),
            }
            return;
        };
        for (key, v) in self.props(id).into_iter().flatten() {
            let here = format!("{at}.Properties.{key}");
            if key == "StageDescription" {
                // The settings of the stage a deployment makes: only its description maps.
                for k in v.as_object().into_iter().flat_map(|m| m.keys()) {
                    if matches!(k.as_str(), "Description" | "Tags" | "DocumentationVersion") {
                        report.note(
                            format!("{here}.{k}"),
                            "documentation only: not part of the configuration",
                        );
                    } else {
                        report.unsupported(format!("{here}.{k}"), why(k));
                    }
                }
            } else if s.docs.contains(&key.as_str()) {
                report.note(here, "documentation only: not part of the configuration");
            } else if !s.mapped.contains(&key.as_str()) {
                report.unsupported(here, why(key));
            }
        }
    }

    /// A property of resource `id`, resolved.
    pub(super) fn prop(&self, id: &str, key: &str) -> Option<Value> {
        self.props(id)?.get(key).map(|v| self.resolve(v))
    }

    pub(super) fn text(&self, id: &str, key: &str) -> Option<String> {
        match self.prop(id, key)? {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The logical id a value refers to (`!Ref X`) and the attribute (`!GetAtt X.A`).
    pub(super) fn target(&self, v: &Value) -> Option<(&'a str, Option<String>)> {
        let m = v.as_object().filter(|m| m.len() == 1)?;
        let (id, att) = match (m.get("Ref"), m.get("Fn::GetAtt")) {
            (Some(Value::String(id)), _) => (id.as_str(), None),
            (_, Some(Value::Array(a))) if a.len() == 2 => {
                (a[0].as_str()?, a[1].as_str().map(str::to_string))
            }
            _ => return None,
        };
        let (key, _) = self.resources.get_key_value(id)?;
        Some((key.as_str(), att))
    }

    /// A value with its intrinsic functions evaluated where the template alone decides
    /// them; the others are left as written.
    pub(super) fn resolve(&self, v: &Value) -> Value {
        match v {
            Value::Array(a) => Value::Array(a.iter().map(|v| self.resolve(v)).collect()),
            Value::Object(m) if m.len() == 1 => {
                let (k, arg) = m
                    .iter()
                    .next()
                    .map(|(k, v)| (k.as_str(), v))
                    .unwrap_or(("", v));
                self.function(k, arg).unwrap_or_else(|| {
                    if k == "Ref" || k.starts_with("Fn::") {
                        v.clone()
                    } else {
                        json!({ k: self.resolve(arg) })
                    }
                })
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), self.resolve(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// One intrinsic function's value, when the template decides it.
    fn function(&self, name: &str, arg: &Value) -> Option<Value> {
        match name {
            "Ref" => self.reference(arg.as_str()?),
            "Fn::Sub" => {
                let (template, vars) = match arg {
                    Value::String(s) => (s.as_str(), None),
                    Value::Array(a) if a.len() == 2 => (a[0].as_str()?, a[1].as_object()),
                    _ => return None,
                };
                self.sub(template, vars).map(Value::String)
            }
            "Fn::Join" => {
                let a = arg.as_array().filter(|a| a.len() == 2)?;
                let sep = a[0].as_str()?;
                let parts = match self.resolve(&a[1]) {
                    Value::Array(p) => p,
                    _ => return None,
                };
                let texts: Option<Vec<String>> = parts.iter().map(scalar).collect();
                Some(Value::String(texts?.join(sep)))
            }
            "Fn::Select" => {
                let a = arg.as_array().filter(|a| a.len() == 2)?;
                let i = scalar(&self.resolve(&a[0]))?.parse::<usize>().ok()?;
                match self.resolve(&a[1]) {
                    Value::Array(list) => list.get(i).cloned(),
                    _ => None,
                }
            }
            "Fn::FindInMap" => {
                let a = arg.as_array().filter(|a| a.len() == 3)?;
                let keys: Option<Vec<String>> =
                    a.iter().map(|k| scalar(&self.resolve(k))).collect();
                let keys = keys?;
                self.mappings?
                    .get(&keys[0])?
                    .get(&keys[1])?
                    .get(&keys[2])
                    .cloned()
            }
            _ => None,
        }
    }

    /// `Ref` of a parameter (its default) or of a stage (its name).
    fn reference(&self, name: &str) -> Option<Value> {
        if let Some(p) = self.parameters.and_then(|p| p.get(name)) {
            return p.get("Default").cloned();
        }
        if self.kind(name) == "AWS::ApiGateway::Stage" {
            return self.prop(name, "StageName");
        }
        None
    }

    /// `Fn::Sub`: `${Name}` from `vars`, parameters and stages; `${!x}` is a literal `${x}`.
    fn sub(&self, template: &str, vars: Option<&Map<String, Value>>) -> Option<String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = after.find('}')?;
            let name = &after[..end];
            match name.strip_prefix('!') {
                Some(lit) => out.push_str(&format!("${{{lit}}}")),
                None => {
                    let v = match vars.and_then(|v| v.get(name)) {
                        Some(v) => self.resolve(v),
                        None => self.reference(name)?,
                    };
                    out.push_str(&scalar(&v)?);
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    /// The RestApi a resource belongs to (`RestApiId: !Ref Api`).
    pub(super) fn api_of(&self, id: &str) -> Option<&'a str> {
        let v = self.props(id)?.get("RestApiId")?;
        self.target(v)
            .filter(|(t, _)| self.kind(t) == "AWS::ApiGateway::RestApi")
            .map(|(t, _)| t)
    }

    /// The path of a resource (`!GetAtt Api.RootResourceId` is `/`); `Err` names why not.
    pub(super) fn path_of(&self, v: &Value, depth: usize) -> Result<String, String> {
        let Some((id, att)) = self.target(v) else {
            return Err(format!("`{v}` is not a resource of this template"));
        };
        match (self.kind(id), att.as_deref()) {
            ("AWS::ApiGateway::RestApi", Some("RootResourceId")) => Ok(String::new()),
            ("AWS::ApiGateway::Resource", None) if depth < 64 => {
                let parent = self
                    .props(id)
                    .and_then(|p| p.get("ParentId"))
                    .ok_or_else(|| format!("`{id}` has no ParentId"))?;
                let part = self
                    .text(id, "PathPart")
                    .ok_or_else(|| format!("`{id}` has no PathPart known before deployment"))?;
                Ok(format!("{}/{part}", self.path_of(parent, depth + 1)?))
            }
            _ => Err(format!("`{id}` is not a resource of a REST API")),
        }
    }
}

/// A string or number as text.
pub(super) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(parameters: Value) -> (Map<String, Value>, Map<String, Value>) {
        let resources = json!({
            "Api": { "Type": "AWS::ApiGateway::RestApi" },
            "Prod": { "Type": "AWS::ApiGateway::Stage", "Properties": { "StageName": "prod" } }
        });
        (
            resources.as_object().cloned().unwrap_or_default(),
            parameters.as_object().cloned().unwrap_or_default(),
        )
    }

    #[test]
    fn short_forms_read_as_long_forms() {
        let v = parse("a: !Ref X\nb: !GetAtt A.B\nc: !GetAtt [A, B]\nd: !Sub 'x${Y}'\ne: !Join [',', [a, !Ref Z]]\nf: plain\n").unwrap();
        assert_eq!(v["a"], json!({ "Ref": "X" }));
        assert_eq!(v["b"], json!({ "Fn::GetAtt": ["A", "B"] }));
        assert_eq!(v["c"], v["b"]);
        assert_eq!(v["d"], json!({ "Fn::Sub": "x${Y}" }));
        assert_eq!(v["e"], json!({ "Fn::Join": [",", ["a", { "Ref": "Z" }]] }));
        assert_eq!(v["f"], "plain");
        assert!(parse("a: [").unwrap_err().0.starts_with("not YAML or JSON"));
    }

    #[test]
    fn functions_resolve_from_parameters_stages_and_mappings() {
        let (resources, parameters) =
            template(json!({ "Host": { "Default": "b.example" }, "NoDefault": {} }));
        let mappings = json!({ "M": { "k": { "v": [1, 2] } } });
        let t = Template {
            resources: &resources,
            parameters: Some(&parameters),
            mappings: mappings.as_object(),
        };
        let r = |v: Value| t.resolve(&v);
        assert_eq!(
            r(json!({ "Fn::Sub": "https://${Host}/${!Literal}" })),
            "https://b.example/${Literal}"
        );
        assert_eq!(
            r(json!({ "Fn::Sub": ["${A}-${Prod}", { "A": { "Ref": "Host" } }] })),
            "b.example-prod"
        );
        assert_eq!(
            r(json!({ "Fn::Join": ["/", ["a", { "Ref": "Prod" }]] })),
            "a/prod"
        );
        assert_eq!(
            r(json!({ "Fn::Select": [1, { "Fn::FindInMap": ["M", "k", "v"] }] })),
            2
        );
        // Known only at deployment: left as written, for the caller to report.
        for unknown in [
            json!({ "Ref": "NoDefault" }),
            json!({ "Ref": "Api" }),
            json!({ "Fn::Sub": "${AWS::Region}" }),
            json!({ "Fn::GetAtt": ["Api", "RootResourceId"] }),
            json!({ "Fn::If": ["c", 1, 2] }),
        ] {
            assert_eq!(r(unknown.clone()), unknown);
        }
        assert_eq!(
            t.target(&json!({ "Fn::GetAtt": ["Api", "RootResourceId"] })),
            Some(("Api", Some("RootResourceId".to_string())))
        );
        assert_eq!(t.target(&json!({ "Ref": "Elsewhere" })), None);
        assert_eq!(
            t.path_of(&json!({ "Ref": "Api" }), 0).unwrap_err(),
            "`Api` is not a resource of a REST API"
        );
    }
}
