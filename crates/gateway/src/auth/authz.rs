//! The `authorize` phase: `acl` (groups), `scopes` and Cedar policies (`authorize`).

use std::net::IpAddr;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityId, EntityTypeName, EntityUid, PolicySet,
    Request,
};
use serde_json::{Map, Value, json};
use tollgate_model::policy::{Acl, Scopes};

use super::Identity;
use crate::ProxyError;

/// `acl`: deny wins; with `allow`, the app must be in one of its groups.
pub fn check_acl(acl: &Acl, identity: &Identity) -> Result<(), ProxyError> {
    let groups: &[String] = identity.app.as_ref().map_or(&[], |a| &a.groups);
    if groups.iter().any(|g| acl.deny.contains(g)) {
        return Err(ProxyError::Forbidden(
            "this app's group may not call this API".to_string(),
        ));
    }
    if !acl.allow.is_empty() && !groups.iter().any(|g| acl.allow.contains(g)) {
        return Err(ProxyError::Forbidden(
            "this app is in no group allowed to call this API".to_string(),
        ));
    }
    Ok(())
}

/// `scopes`: every `required` scope, and one of `any` when given.
pub fn check_scopes(rule: &Scopes, identity: &Identity) -> Result<(), ProxyError> {
    let have = identity.scopes();
    if let Some(missing) = rule.required.iter().find(|s| !have.contains(&s.as_str())) {
        return Err(ProxyError::Forbidden(format!(
            "the token lacks the `{missing}` scope"
        )));
    }
    if !rule.any.is_empty() && !rule.any.iter().any(|s| have.contains(&s.as_str())) {
        return Err(ProxyError::Forbidden(format!(
            "the token needs one of the scopes {}",
            rule.any.join(", ")
        )));
    }
    Ok(())
}

/// A compiled `authorize` policy set.
#[derive(Debug)]
pub struct CompiledCedar {
    policies: PolicySet,
}

/// What a Cedar decision looks at besides the identity.
pub struct RequestFacts<'a> {
    pub api: &'a str,
    pub version: &'a str,
    pub route: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub params: &'a [(String, String)],
    pub client_ip: IpAddr,
}

fn uid(kind: &str, id: &str) -> Result<EntityUid, String> {
    Ok(EntityUid::from_type_name_and_id(
        EntityTypeName::from_str(kind).map_err(|e| e.to_string())?,
        EntityId::new(id),
    ))
}

/// A JSON value Cedar accepts as an attribute: no nulls, no fractions, no keys that
/// Cedar's JSON format reserves (`__entity`, `__extn`) — a token's claims must not be
/// able to forge an entity reference.
fn cedar_value(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Bool(_) | Value::String(_) => Some(v.clone()),
        Value::Number(n) => n.as_i64().map(Value::from),
        Value::Array(list) => Some(Value::Array(list.iter().filter_map(cedar_value).collect())),
        Value::Object(map) => Some(Value::Object(cedar_record(map))),
    }
}

fn cedar_record(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .filter_map(|(k, v)| Some((k.clone(), cedar_value(v)?)))
        .collect()
}

impl CompiledCedar {
    pub fn compile(text: &str) -> Result<CompiledCedar, String> {
        let policies = PolicySet::from_str(text).map_err(|e| e.to_string())?;
        Ok(CompiledCedar { policies })
    }

    /// Allowed when some `permit` applies and no `forbid` does. Evaluation errors (a
    /// missing attribute, say) make a policy not apply: they never allow.
    pub fn check(&self, identity: &Identity, facts: &RequestFacts<'_>) -> Result<(), ProxyError> {
        match self.decide(identity, facts) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ProxyError::Forbidden(
                "the authorization policy does not allow this request".to_string(),
            )),
            Err(e) => {
                tracing::warn!(error = %e, "authorization request could not be built");
                Err(ProxyError::Forbidden(
                    "the authorization policy does not allow this request".to_string(),
                ))
            }
        }
    }

    fn decide(&self, identity: &Identity, facts: &RequestFacts<'_>) -> Result<bool, String> {
        let (kind, id) = match (&identity.app, &identity.subject) {
            (Some(app), _) => ("App", app.name.as_str()),
            (None, Some(sub)) => ("Subject", sub.as_str()),
            (None, None) => ("Anonymous", "anonymous"),
        };
        let app = identity.app.as_deref();
        let principal_attrs = json!({
            "app": app.map_or("", |a| a.name.as_str()),
            "developer": app.map_or("", |a| a.developer.as_str()),
            "organization": app.and_then(|a| a.organization.as_deref()).unwrap_or(""),
            "groups": app.map_or(Vec::new(), |a| a.groups.clone()),
            "attributes": app.map_or(Map::new(), |a| cedar_record(&a.attributes)),
            "subject": identity.subject.as_deref().unwrap_or(""),
            "claims": identity.claims.as_deref().map(cedar_record).unwrap_or_default(),
            "scopes": identity.scopes(),
        });
        let params: Map<String, Value> = facts
            .params
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let resource_id = format!("{}@{}:{}", facts.api, facts.version, facts.route);
        let entities = json!([
            { "uid": { "type": kind, "id": id }, "attrs": principal_attrs, "parents": [] },
            { "uid": { "type": "Route", "id": resource_id }, "attrs": {
                "api": facts.api, "version": facts.version, "route": facts.route,
                "path": facts.path, "params": params,
            }, "parents": [] },
        ]);
        let entities = Entities::from_json_value(entities, None).map_err(|e| e.to_string())?;
        let now = time::OffsetDateTime::now_utc();
        let context = Context::from_json_value(
            json!({
                "ip": facts.client_ip.to_string(),
                "time": now.unix_timestamp(),
                "hour": now.hour(),
                "weekday": now.weekday().number_days_from_monday(),
                "method": facts.method,
                "path": facts.path,
            }),
            None,
        )
        .map_err(|e| e.to_string())?;
        let request = Request::new(
            uid(kind, id)?,
            uid("Action", facts.method)?,
            uid("Route", &resource_id)?,
            context,
            None,
        )
        .map_err(|e| e.to_string())?;
        let answer = Authorizer::new().is_authorized(&request, &self.policies, &entities);
        Ok(answer.decision() == Decision::Allow)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The medical-records example of docs/security.md.
    const MEDICAL: &str = r#"
        // Doctors read the records of their own patients.
        permit (principal, action == Action::"GET", resource)
        when {
            principal.claims has role && principal.claims.role == "doctor" &&
            principal.claims has patients &&
            principal.claims.patients.contains(resource.params.patient)
        };
        // Patients read only their own records.
        permit (principal, action == Action::"GET", resource)
        when {
            principal.claims has role && principal.claims.role == "patient" &&
            principal.subject == resource.params.patient
        };
    "#;

    fn who(claims: Value) -> Identity {
        let map = claims.as_object().unwrap().clone();
        Identity {
            subject: map.get("sub").and_then(Value::as_str).map(str::to_string),
            claims: Some(Arc::new(map)),
            ..Identity::default()
        }
    }

    fn allowed(cedar: &CompiledCedar, id: &Identity, method: &str, patient: &str) -> bool {
        let params = vec![("patient".to_string(), patient.to_string())];
        let path = format!("/patients/{patient}/records");
        cedar
            .check(
                id,
                &RequestFacts {
                    api: "records",
                    version: "v1",
                    route: "/patients/{patient}/records",
                    method,
                    path: &path,
                    params: &params,
                    client_ip: "127.0.0.1".parse().unwrap(),
                },
            )
            .is_ok()
    }

    #[test]
    fn medical_records() {
        let cedar = CompiledCedar::compile(MEDICAL).unwrap();
        let doctor = who(json!({"sub": "dr-grey", "role": "doctor", "patients": ["p-1", "p-2"]}));
        let patient = who(json!({"sub": "p-1", "role": "patient"}));
        let other = who(json!({"sub": "p-3", "role": "patient"}));
        assert!(allowed(&cedar, &doctor, "GET", "p-1"));
        assert!(allowed(&cedar, &doctor, "GET", "p-2"));
        assert!(!allowed(&cedar, &doctor, "GET", "p-3"));
        assert!(!allowed(&cedar, &doctor, "DELETE", "p-1"));
        assert!(allowed(&cedar, &patient, "GET", "p-1"));
        assert!(!allowed(&cedar, &patient, "GET", "p-2"));
        assert!(!allowed(&cedar, &other, "GET", "p-1"));
        assert!(!allowed(&cedar, &Identity::default(), "GET", "p-1"));
        // A claim cannot smuggle an entity reference.
        let forged =
            who(json!({"sub": {"__entity": {"type": "App", "id": "x"}}, "role": "patient"}));
        assert!(!allowed(&cedar, &forged, "GET", "p-1"));
    }

    #[test]
    fn context_ip_and_time() {
        let cedar = CompiledCedar::compile(
            r#"permit (principal, action, resource) when { ip(context.ip).isInRange(ip("10.0.0.0/8")) };"#,
        )
        .unwrap();
        let facts = |ip: &str| RequestFacts {
            api: "a",
            version: "v1",
            route: "/",
            method: "GET",
            path: "/",
            params: &[],
            client_ip: ip.parse().unwrap(),
        };
        let id = Identity::default();
        assert!(cedar.check(&id, &facts("10.1.2.3")).is_ok());
        assert!(cedar.check(&id, &facts("192.0.2.1")).is_err());
    }
}
