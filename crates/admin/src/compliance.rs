//! `GET /api/compliance`: the configuration judged against compliance baselines (`hipaa`,
//! `pci`, `gdpr`), per API, each rule met or not and why. The profiles are data
//! (`compliance.yaml`); each of their rules names one of the checks below.

use std::sync::{Arc, LazyLock};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_model::policy::Policy;
use tollgate_model::{Api, Document, VersionStatus};

use crate::AdminState;
use crate::problem::{ApiError, Query};

#[derive(Deserialize)]
struct Profile {
    description: String,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    check: String,
    why: String,
    /// `log_masking`: whether logging request bodies (masked) is acceptable.
    #[serde(default)]
    bodies: Option<bool>,
    /// `retention`: the most days analytics may be kept.
    #[serde(default)]
    max_days: Option<u64>,
}

/// The built-in profiles, in the order of the file.
static PROFILES: LazyLock<Vec<(String, Profile)>> = LazyLock::new(|| {
    // Listed in a fixed order (a map does not keep the file's).
    let map: std::collections::BTreeMap<String, Profile> =
        yaml_serde::from_str(include_str!("compliance.yaml")).expect("compliance.yaml parses");
    let order = ["hipaa", "pci", "gdpr"];
    let mut out: Vec<(String, Profile)> = map.into_iter().collect();
    out.sort_by_key(|(n, _)| order.iter().position(|o| o == n).unwrap_or(order.len()));
    out
});

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new().route("/compliance", get(report))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ComplianceParams {
    /// `hipaa`, `pci` or `gdpr` (default: every profile).
    #[serde(default)]
    profile: Option<String>,
}

/// Per profile and API, each rule met or not and why.
#[utoipa::path(get, path = "/api/compliance", params(ComplianceParams),
    responses((status = 200, description = "{ profiles: [{ profile, description, compliant, apis: [{ api, compliant, rules: [{ rule, met, detail, why }] }] }] }")),
    security(("bearer" = [])))]
pub async fn report(
    State(state): State<Arc<AdminState>>,
    Query(params): Query<ComplianceParams>,
) -> Result<Json<Value>, ApiError> {
    let chosen: Vec<&(String, Profile)> = match &params.profile {
        None => PROFILES.iter().collect(),
        Some(name) => {
            let found: Vec<_> = PROFILES.iter().filter(|(n, _)| n == name).collect();
            if found.is_empty() {
                let known: Vec<&str> = PROFILES.iter().map(|(n, _)| n.as_str()).collect();
                return Err(ApiError::bad_request(format!(
                    "unknown profile `{name}`: use {}",
                    known.join(", ")
                )));
            }
            found
        }
    };
    let doc = crate::collections::read(&state).await?;
    let profiles: Vec<Value> = chosen
        .into_iter()
        .map(|(name, profile)| judge(name, profile, &doc))
        .collect();
    Ok(Json(
        json!({ "revision": state.gateway.revision(), "profiles": profiles }),
    ))
}

fn judge(name: &str, profile: &Profile, doc: &Document) -> Value {
    let apis: Vec<Value> = doc
        .apis
        .iter()
        .map(|api| {
            let rules: Vec<Value> = profile
                .rules
                .iter()
                .map(|rule| {
                    let (met, detail) = check(rule, api, doc);
                    json!({ "rule": rule.check, "met": met, "detail": detail, "why": rule.why })
                })
                .collect();
            let compliant = rules.iter().all(|r| r["met"] == true);
            json!({ "api": api.name, "compliant": compliant, "rules": rules })
        })
        .collect();
    let compliant = apis.iter().all(|a| a["compliant"] == true);
    json!({
        "profile": name,
        "description": profile.description,
        "compliant": compliant,
        "apis": apis,
    })
}

/// One rule for one API: met or not, and what was found.
fn check(rule: &Rule, api: &Api, doc: &Document) -> (bool, String) {
    match rule.check.as_str() {
        "authentication" => {
            let open = routes_without(api, doc, Policy::is_authentication);
            match open.as_slice() {
                [] => (true, "every route of every live version authenticates callers".into()),
                _ => (false, format!("routes without authentication: {}", open.join(", "))),
            }
        }
        "rate_limit" => {
            let open = routes_without(api, doc, |p| matches!(p, Policy::RateLimit(_)));
            match open.as_slice() {
                [] => (true, "every route of every live version has a rate limit".into()),
                _ => (false, format!("routes without a rate limit: {}", open.join(", "))),
            }
        }
        "tls_only" => {
            let tls = &doc.settings.tls;
            match (tls.redirect_http, tls.hsts.is_some(), doc.certificates.is_empty()) {
                (_, _, true) => (false, "no certificate: the proxy does not terminate TLS".into()),
                (false, _, _) => (false, "plain HTTP is answered: set settings.tls.redirect_http".into()),
                (true, false, _) => (false, "no Strict-Transport-Security: set settings.tls.hsts".into()),
                (true, true, false) => (true, "plain HTTP redirects to HTTPS, with HSTS".into()),
            }
        }
        "log_masking" => match &api.access_log {
            Some(log) if log.enabled && log.body && rule.bodies == Some(false) => (
                false,
                "the access log records request bodies (masked); turn `access_log.body` off".into(),
            ),
            Some(log) if log.enabled => (
                true,
                "access log on: e-mail addresses, card numbers, bearer tokens and API keys are masked".into(),
            ),
            _ => (true, "no access log for this API".into()),
        },
        "audit_log" => (
            true,
            "every change is in the hash-chained, append-only audit log (tollgate audit verify)".into(),
        ),
        "retention" => {
            let max = rule.max_days.unwrap_or(u64::MAX);
            let days = doc.settings.analytics.days.as_std().as_secs() / 86_400;
            if days <= max {
                (true, format!("analytics are kept {days} days (at most {max})"))
            } else {
                (false, format!("analytics are kept {days} days, above {max}: lower settings.analytics.days"))
            }
        }
        other => (false, format!("unknown check `{other}`")),
    }
}

/// The routes of the API's published and deprecated versions that no policy in scope
/// (route, version, API, global) satisfies, as `version path`.
fn routes_without(api: &Api, doc: &Document, wanted: impl Fn(&Policy) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for version in &api.versions {
        if !matches!(
            version.status,
            VersionStatus::Published | VersionStatus::Deprecated
        ) {
            continue;
        }
        for route in &version.routes {
            let covered = [
                &route.policies,
                &version.policies,
                &api.policies,
                &doc.policies,
            ]
            .iter()
            .any(|ps| ps.iter().any(&wanted));
            if !covered {
                out.push(format!("{} {}", version.version, route.path));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profiles_parse_and_name_known_checks() {
        const CHECKS: &[&str] = &[
            "authentication",
            "rate_limit",
            "tls_only",
            "log_masking",
            "audit_log",
            "retention",
        ];
        let names: Vec<&str> = PROFILES.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["hipaa", "pci", "gdpr"]);
        for (_, p) in PROFILES.iter() {
            assert!(p.rules.iter().all(|r| CHECKS.contains(&r.check.as_str())));
        }
    }
}
