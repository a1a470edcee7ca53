//! The built-in functions for a Tollgate configuration (organisation rules): whether each
//! served version is behind authentication and a rate limit, wherever those policies are
//! attached (global, API, version, or every route), or, for rate limits, behind plans
//! that all carry one.
//!
//! They read the configuration as JSON (as written, or as a `Document` serialises), so
//! `tollgate lint` and the node's publish-time check judge the same thing.

use serde_json::Value;

use crate::path::Location;

/// Policy types that authenticate callers.
pub const AUTHENTICATION: &[&str] = &[
    "key_auth",
    "jwt",
    "basic_auth",
    "mtls",
    "oauth2_introspection",
];

/// Whether a version serves traffic: `published` (the default) or `deprecated`.
pub fn is_served(version: &Value) -> bool {
    matches!(
        version.get("status").and_then(Value::as_str),
        None | Some("published") | Some("deprecated")
    )
}

fn has_policy(scope: Option<&Value>, kinds: &[&str]) -> bool {
    scope
        .and_then(|s| s.get("policies"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .any(|p| p.keys().any(|k| kinds.contains(&k.as_str())))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("?")
}

/// Which routes of a version lack the policy, when nothing above the routes has it
/// (`None`: covered).
fn uncovered_routes<'a>(
    root: &Value,
    api: &Value,
    version: &'a Value,
    kinds: &[&str],
) -> Option<Vec<&'a str>> {
    if has_policy(Some(root), kinds)
        || has_policy(Some(api), kinds)
        || has_policy(Some(version), kinds)
    {
        return None;
    }
    let routes = version.get("routes").and_then(Value::as_array)?;
    let bare: Vec<&str> = routes
        .iter()
        .filter(|r| !has_policy(Some(r), kinds))
        .map(|r| {
            r.get("name")
                .or_else(|| r.get("path"))
                .and_then(Value::as_str)
                .unwrap_or("?")
        })
        .collect();
    (!bare.is_empty()).then_some(bare)
}

/// The served versions of an API, with their locations.
fn served<'a>(at: &Location, api: &'a Value) -> Vec<(Location, &'a Value)> {
    api.get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, v)| is_served(v))
        .map(|(j, v)| (at.key("versions").index(j), v))
        .collect()
}

fn routes_phrase(bare: &[&str], version: &Value) -> String {
    let total = version
        .get("routes")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if bare.len() == total {
        String::new()
    } else {
        let shown: Vec<String> = bare.iter().take(5).map(|r| format!("`{r}`")).collect();
        format!(
            " (route{} {}{} ha{} none)",
            if bare.len() == 1 { "" } else { "s" },
            shown.join(", "),
            if bare.len() > 5 { ", …" } else { "" },
            if bare.len() == 1 { "s" } else { "ve" }
        )
    }
}

/// `tollgateAuthentication` (on an API): every served version is behind an authentication
/// policy at global, API, version or route scope (then on every route).
pub fn authentication(root: &Value, at: &Location, api: &Value) -> Vec<(Location, String)> {
    served(at, api)
        .into_iter()
        .filter_map(|(loc, v)| {
            let bare = uncovered_routes(root, api, v, AUTHENTICATION)?;
            Some((
                loc,
                format!(
                    "{}@{} is served without authentication{}: add key_auth, jwt, basic_auth, mtls or oauth2_introspection at global, API, version or route scope",
                    text(api, "name"),
                    text(v, "version"),
                    routes_phrase(&bare, v)
                ),
            ))
        })
        .collect()
}

/// The products listing `api@version` that have plans (which gate the version to
/// subscribers), and whether every plan of those carries a rate limit.
fn plans_limit(root: &Value, id: &str) -> bool {
    let gating: Vec<&Value> = root
        .get("products")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| {
            p.get("apis")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(id)))
        })
        .filter(|p| {
            p.get("plans")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        })
        .collect();
    !gating.is_empty()
        && gating
            .iter()
            .flat_map(|p| p["plans"].as_array().into_iter().flatten())
            .all(|plan| plan.get("rate_limit").is_some_and(|r| !r.is_null()))
}

/// `tollgateRateLimit` (on an API): every served version is behind a `rate_limit` policy at
/// global, API, version or route scope (then on every route), or sold only through plans
/// that all carry a `rate_limit`.
pub fn rate_limit(root: &Value, at: &Location, api: &Value) -> Vec<(Location, String)> {
    served(at, api)
        .into_iter()
        .filter_map(|(loc, v)| {
            let bare = uncovered_routes(root, api, v, &["rate_limit"])?;
            let id = format!("{}@{}", text(api, "name"), text(v, "version"));
            if plans_limit(root, &id) {
                return None;
            }
            Some((
                loc,
                format!(
                    "{id} is served without a rate limit{}: add a rate_limit policy at global, API, version or route scope, or sell it only through plans that all have a rate_limit",
                    routes_phrase(&bare, v)
                ),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(
        f: fn(&Value, &Location, &Value) -> Vec<(Location, String)>,
        root: &Value,
    ) -> Vec<String> {
        root["apis"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .flat_map(|(i, api)| f(root, &Location::root().key("apis").index(i), api))
            .map(|(l, m)| format!("{}: {m}", l.dotted()))
            .collect()
    }

    #[test]
    fn authentication_at_any_scope() {
        let mut root = json!({
            "format_version": 1,
            "apis": [
                { "name": "open", "versions": [
                    { "version": "v1", "upstream": "u", "routes": [{ "path": "/a" }] },
                    { "version": "v0", "status": "retired", "upstream": "u" },
                    { "version": "v2", "status": "draft", "upstream": "u" }
                ] },
                { "name": "api-level", "policies": [{ "jwt": {} }], "versions": [{ "version": "v1", "upstream": "u" }] },
                { "name": "version-level", "versions": [{ "version": "v1", "status": "deprecated", "upstream": "u", "policies": [{ "key_auth": {} }] }] },
                { "name": "routes", "versions": [{ "version": "v1", "upstream": "u", "routes": [
                    { "path": "/a", "policies": [{ "basic_auth": {} }] },
                    { "path": "/b", "name": "bee" }
                ] }] }
            ]
        });
        assert_eq!(
            check(authentication, &root),
            [
                "apis[0].versions[0]: open@v1 is served without authentication: add key_auth, jwt, basic_auth, mtls or oauth2_introspection at global, API, version or route scope",
                "apis[3].versions[0]: routes@v1 is served without authentication (route `bee` has none): add key_auth, jwt, basic_auth, mtls or oauth2_introspection at global, API, version or route scope",
            ]
        );
        root["policies"] = json!([{ "mtls": {} }]);
        assert!(
            check(authentication, &root).is_empty(),
            "a global policy covers all"
        );
    }

    #[test]
    fn rate_limits_by_policy_or_by_plans() {
        let mut root = json!({
            "format_version": 1,
            "apis": [
                { "name": "a", "versions": [{ "version": "v1", "upstream": "u", "routes": [{ "path": "/a" }] }] },
                { "name": "b", "policies": [{ "rate_limit": { "limit": 1, "window": "1s" } }], "versions": [{ "version": "v1", "upstream": "u" }] }
            ],
            "products": [
                { "name": "p", "apis": ["a@v1"], "plans": [
                    { "name": "free", "rate_limit": { "limit": 1, "window": "1s" } },
                    { "name": "gold" }
                ] }
            ]
        });
        let found = check(rate_limit, &root);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("apis[0].versions[0]: a@v1 is served without a rate limit"));
        root["products"][0]["plans"][1]["rate_limit"] = json!({ "limit": 9, "window": "1s" });
        assert!(check(rate_limit, &root).is_empty(), "every plan limits");
        root["products"][0]["plans"] = json!([]);
        assert_eq!(
            check(rate_limit, &root).len(),
            1,
            "a product without plans gates nothing"
        );
    }
}
