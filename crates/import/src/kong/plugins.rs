//! Kong plugins as Tollgate policies: one plugin's `config` in, its policies out, with every
//! field Tollgate cannot honour exactly named in the report.

use serde_json::{Map, Value, json};

use super::{Grouped, get, get_bool, get_num, get_str, strings};

mod transform;
use crate::Report;
use transform::request_transformer;

/// The JWT key every `jwt` plugin checks tokens with, from the consumers' `jwt_secrets`.
#[derive(Clone, Debug)]
pub(super) enum JwtKeys {
    /// No consumer has a secret.
    None,
    /// Every secret is the same key (a Tollgate `keys` item).
    One(Value),
    /// Several different secrets: Tollgate's `jwt` trusts keys, not per-app secrets.
    Many(usize),
}

/// What mapping a plugin needs to know besides its config.
pub(super) struct Cx<'a> {
    /// `_format_version` before 3.0 (older defaults and field names).
    pub legacy: bool,
    pub jwt: &'a JwtKeys,
}

/// Authentication plugins (Kong runs every one configured for a route: all are required).
pub(super) const AUTH: &[&str] = &[
    "key-auth",
    "basic-auth",
    "jwt",
    "hmac-auth",
    "oauth2",
    "ldap-auth",
    "openid-connect",
    "mtls-auth",
    "key-auth-enc",
    "oauth2-introspection",
    "jwt-signer",
    "vault-auth",
    "session",
];

pub(super) const HIDDEN_CREDENTIALS: &str = "the credential is removed before the request goes upstream (Kong's `hide_credentials: false` passed it on)";
const GCRA: &str = "rate limits refill continuously (GCRA) instead of Kong's fixed windows, so no window ever holds more than the limit; answers carry `RateLimit-Policy`/`RateLimit` instead of `X-RateLimit-*`";
const CLUSTER: &str = "`policy: cluster`/`redis` became `scope: cluster`: one budget for all nodes, kept in the Redis of `serve --redis` (Kong's redis_* settings are not carried)";
const BODY_JSON: &str = "body rules apply to JSON bodies only (Kong also rewrites form bodies)";
const JWT_QUERY: &str = "tokens are read from `Authorization: Bearer` only (Kong's default `uri_param_names: [jwt]` also read `?jwt=`)";
const JWT_NBF: &str = "`nbf` is checked whenever a token has it (Kong checks it only when listed in `claims_to_verify`)";
const CREDENTIAL: &str = "`limit_by: credential` counts per app (an app may hold two keys)";
const PROMETHEUS: &str = "Tollgate always exports Prometheus metrics (`/metrics` on the admin listener); the plugin is not needed";

/// A plugin's `config`, remembering which fields were read.
struct Conf<'a> {
    v: &'a Value,
    at: String,
    read: Vec<&'static str>,
}

impl<'a> Conf<'a> {
    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.read.push(key);
        get(self.v, key)
    }
    fn str(&mut self, key: &'static str) -> Option<&'a str> {
        self.get(key).and_then(Value::as_str)
    }
    fn bool(&mut self, key: &'static str) -> Option<bool> {
        self.read.push(key);
        get_bool(self.v, key)
    }
    fn num(&mut self, key: &'static str) -> Option<f64> {
        self.read.push(key);
        get_num(self.v, key)
    }
    fn strings(&mut self, key: &'static str) -> Vec<String> {
        self.read.push(key);
        strings(self.v, key)
    }
    fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.at)
    }
    /// Names every set field that was not read and is not one of `ignored`.
    fn finish(self, ignored: &[&str], report: &mut Report) {
        let Some(map) = self.v.as_object() else {
            return;
        };
        for (k, v) in map {
            let empty = v.is_null() || v.as_array().is_some_and(Vec::is_empty);
            if empty || self.read.contains(&k.as_str()) || ignored.contains(&k.as_str()) {
                continue;
            }
            report.unsupported(
                format!("{}.{k}", self.at),
                format!("`{k}` has no Tollgate equivalent"),
            );
        }
    }
}

/// Maps one plugin; returns its policies (none when it maps to nothing or not at all).
pub(super) fn map(
    name: &str,
    config: &Value,
    at: &str,
    cx: &Cx<'_>,
    report: &mut Report,
    g: &mut Grouped,
) -> Vec<Value> {
    let mut c = Conf {
        v: config,
        at: format!("{at}.config"),
        read: Vec::new(),
    };
    let (policies, ignored): (Vec<Value>, &[&str]) = match name {
        "key-auth" => (
            key_auth(&mut c, at, report, g).into_iter().collect(),
            &["run_on_preflight", "realm"],
        ),
        "basic-auth" => (basic_auth(&mut c, at, report, g), &[]),
        "jwt" => (
            jwt(&mut c, at, cx, report, g).into_iter().collect(),
            &["run_on_preflight", "realm"],
        ),
        "acl" => (acl(&mut c, at, report), &["hide_groups_header"]),
        "rate-limiting" => (
            rate_limiting(&mut c, at, cx, report, g),
            &[
                "fault_tolerant",
                "sync_rate",
                "redis",
                "redis_host",
                "redis_port",
                "redis_password",
                "redis_username",
                "redis_ssl",
                "redis_ssl_verify",
                "redis_server_name",
                "redis_timeout",
                "redis_database",
                "redis_connect_timeout",
                "redis_send_timeout",
                "redis_read_timeout",
            ],
        ),
        "cors" => (cors(&mut c, report), &["allow_origin_absent"]),
        "ip-restriction" => (ip_restriction(&mut c, at, report), &[]),
        "request-transformer" => (request_transformer(&mut c, report, g), &[]),
        "request-size-limiting" => (request_size(&mut c, at, report), &[]),
        "prometheus" => {
            g.add(at, PROMETHEUS);
            return Vec::new();
        }
        "request-termination" => {
            report.unsupported(
                at,
                "request-termination: Tollgate has no policy that answers with a fixed response",
            );
            return Vec::new();
        }
        other => {
            report.unsupported(
                at,
                format!("the Kong plugin `{other}` has no Tollgate equivalent"),
            );
            return Vec::new();
        }
    };
    c.finish(ignored, report);
    policies
}

fn anonymous(c: &mut Conf<'_>, report: &mut Report) {
    if c.str("anonymous").is_some_and(|a| !a.is_empty()) {
        report.unsupported(
            c.at("anonymous"),
            "anonymous access (a consumer for callers without a credential): a Tollgate route either requires a credential or not",
        );
    }
}

fn hide_credentials(c: &mut Conf<'_>, at: &str, g: &mut Grouped) {
    if !c.bool("hide_credentials").unwrap_or(false) {
        g.add(at, HIDDEN_CREDENTIALS);
    }
}

fn key_auth(c: &mut Conf<'_>, at: &str, report: &mut Report, g: &mut Grouped) -> Option<Value> {
    let names = c.strings("key_names");
    let header = names
        .first()
        .map_or("apikey".to_string(), |n| n.to_ascii_lowercase());
    for (k, _) in names.iter().enumerate().skip(1) {
        report.unsupported(
            c.at(&format!("key_names[{k}]")),
            "a second key name: Tollgate's key_auth reads one header and one query parameter",
        );
    }
    if c.bool("key_in_header") == Some(false) {
        report.unsupported(
            c.at("key_in_header"),
            "`key_in_header: false`: Tollgate's key_auth always reads its header",
        );
    }
    let in_query = c.bool("key_in_query").unwrap_or(true);
    if c.bool("key_in_body") == Some(true) {
        report.unsupported(c.at("key_in_body"), "keys in the request body are not read");
    }
    hide_credentials(c, at, g);
    anonymous(c, report);
    if !tollgate_model::document::is_token(&header) {
        report.unsupported(
            c.at("key_names"),
            format!("`{header}` is not a header name"),
        );
        return None;
    }
    let mut p = Map::new();
    p.insert("header".into(), json!(header));
    if in_query {
        p.insert(
            "query".into(),
            json!(names.first().map_or("apikey", String::as_str)),
        );
    }
    Some(json!({ "key_auth": p }))
}

fn basic_auth(c: &mut Conf<'_>, at: &str, report: &mut Report, g: &mut Grouped) -> Vec<Value> {
    hide_credentials(c, at, g);
    anonymous(c, report);
    let mut p = Map::new();
    if let Some(realm) = c.str("realm") {
        p.insert("realm".into(), json!(realm));
    }
    vec![json!({ "basic_auth": p })]
}

fn jwt(
    c: &mut Conf<'_>,
    at: &str,
    cx: &Cx<'_>,
    report: &mut Report,
    g: &mut Grouped,
) -> Option<Value> {
    let key = match cx.jwt {
        JwtKeys::One(k) => Some(k.clone()),
        JwtKeys::None => {
            report.unsupported(
                at,
                "no consumer has a jwt_secret, so no token could be checked (Tollgate's jwt needs its keys)",
            );
            None
        }
        JwtKeys::Many(n) => {
            report.unsupported(
                at,
                format!("the consumers hold {n} different jwt_secrets: Tollgate's jwt trusts issuer keys, not one secret per app (a token signed with one consumer's secret could name another); give the jwt policy one key or a jwks_url"),
            );
            None
        }
    };
    let claim = c.str("key_claim_name").unwrap_or("iss").to_string();
    let claims = c.strings("claims_to_verify");
    for (k, other) in claims.iter().enumerate() {
        if other != "exp" && other != "nbf" {
            report.unsupported(
                c.at(&format!("claims_to_verify[{k}]")),
                format!("claim `{other}` is not checked"),
            );
        }
    }
    if !claims.iter().any(|x| x == "nbf") {
        g.add(at, JWT_NBF);
    }
    let headers = c.strings("header_names");
    let only_authorization = headers.len() == 1 && headers[0].eq_ignore_ascii_case("authorization");
    if !headers.is_empty() && !only_authorization {
        report.unsupported(
            c.at("header_names"),
            "tokens are read from `Authorization` only",
        );
    }
    let params = c.get("uri_param_names");
    if params.is_none_or(|p| p.as_array().is_some_and(|a| !a.is_empty())) {
        g.add(at, JWT_QUERY);
    }
    if !c.strings("cookie_names").is_empty() {
        report.unsupported(c.at("cookie_names"), "tokens in cookies are not read");
    }
    if c.bool("secret_is_base64") == Some(true) {
        report.unsupported(
            c.at("secret_is_base64"),
            "base64-encoded secrets: Tollgate takes the secret as written",
        );
    }
    if c.num("maximum_expiration").is_some_and(|m| m > 0.0) {
        report.unsupported(
            c.at("maximum_expiration"),
            "a longest token lifetime is not checked",
        );
    }
    anonymous(c, report);
    let key = key?;
    Some(json!({ "jwt": {
        "keys": [key],
        "app_claim": claim,
        "require_app": true,
        "require_exp": claims.iter().any(|x| x == "exp"),
        "leeway": "0s",
    }}))
}

fn acl(c: &mut Conf<'_>, at: &str, report: &mut Report) -> Vec<Value> {
    let mut allow = c.strings("allow");
    allow.extend(c.strings("whitelist"));
    let mut deny = c.strings("deny");
    deny.extend(c.strings("blacklist"));
    for field in ["include_consumer_groups", "always_use_authenticated_groups"] {
        if c.bool(field) == Some(true) {
            report.unsupported(c.at(field), "groups come from apps' `groups` only");
        }
    }
    if allow.is_empty() && deny.is_empty() {
        report.unsupported(at, "an acl with neither allow nor deny groups");
        return Vec::new();
    }
    let mut p = Map::new();
    if !allow.is_empty() {
        p.insert("allow".into(), json!(allow));
    }
    if !deny.is_empty() {
        p.insert("deny".into(), json!(deny));
    }
    vec![json!({ "acl": p })]
}

fn rate_limiting(
    c: &mut Conf<'_>,
    at: &str,
    cx: &Cx<'_>,
    report: &mut Report,
    g: &mut Grouped,
) -> Vec<Value> {
    let by = match c.str("limit_by").unwrap_or("consumer") {
        "consumer" => "app".to_string(),
        "credential" => {
            g.add(at, CREDENTIAL);
            "app".to_string()
        }
        "ip" => "ip".to_string(),
        "service" => "api".to_string(),
        "header" => match c
            .str("header_name")
            .filter(|h| tollgate_model::document::is_token(h))
        {
            Some(h) => format!("header:{}", h.to_ascii_lowercase()),
            None => {
                report.unsupported(
                    c.at("header_name"),
                    "`limit_by: header` without a header name",
                );
                return Vec::new();
            }
        },
        other => {
            report.unsupported(
                c.at("limit_by"),
                format!("`limit_by: {other}`: Tollgate counts by app, developer, client address, a header or the whole scope"),
            );
            return Vec::new();
        }
    };
    c.read.push("header_name");
    c.read.push("path");
    let default_policy = if cx.legacy { "cluster" } else { "local" };
    let scope = match c.str("policy").unwrap_or(default_policy) {
        "local" => None,
        "cluster" | "redis" => {
            g.add(at, CLUSTER);
            Some("cluster")
        }
        other => {
            report.unsupported(c.at("policy"), format!("`policy: {other}` is not known"));
            None
        }
    };
    if c.num("error_code").is_some_and(|e| e != 429.0) {
        report.unsupported(c.at("error_code"), "Tollgate answers 429 over a limit");
    }
    if c.str("error_message")
        .is_some_and(|m| m != "API rate limit exceeded")
    {
        report.unsupported(
            c.at("error_message"),
            "Tollgate answers with its own problem body over a limit",
        );
    }
    if c.bool("hide_client_headers") == Some(true) {
        report.unsupported(
            c.at("hide_client_headers"),
            "Tollgate always sends `RateLimit-Policy` and `RateLimit`",
        );
    }
    let mut out = Vec::new();
    for (field, window) in [("second", "1s"), ("minute", "1m"), ("hour", "1h")] {
        let Some(n) = c.num(field) else { continue };
        let Some(limit) = whole(n) else {
            report.unsupported(
                c.at(field),
                format!("a limit of {n} is not a positive whole number"),
            );
            continue;
        };
        let mut p = json!({ "limit": limit, "window": window, "by": by });
        if let Some(s) = scope {
            p["scope"] = json!(s);
        }
        out.push(json!({ "rate_limit": p }));
    }
    if !out.is_empty() {
        g.add(at, GCRA);
    }
    for (field, period) in [("day", "day"), ("month", "month")] {
        let Some(n) = c.num(field) else { continue };
        let Some(limit) = whole(n) else {
            report.unsupported(
                c.at(field),
                format!("a limit of {n} is not a positive whole number"),
            );
            continue;
        };
        out.push(json!({ "quota": { "limit": limit, "period": period, "by": by } }));
    }
    if c.num("year").is_some() {
        report.unsupported(
            c.at("year"),
            "a yearly limit: Tollgate's quotas count per day or month",
        );
    }
    if out.is_empty() && c.num("year").is_none() {
        report.unsupported(at, "a rate-limiting plugin without a limit");
    }
    out
}

fn whole(n: f64) -> Option<u64> {
    (n >= 1.0 && n.fract() == 0.0 && n < 1e15).then_some(n as u64)
}

/// Kong's default CORS methods.
const CORS_METHODS: &[&str] = &[
    "GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

fn cors(c: &mut Conf<'_>, report: &mut Report) -> Vec<Value> {
    let written = c.strings("origins");
    let mut origins = Vec::new();
    for (k, o) in written.iter().enumerate() {
        let plain = o == "*"
            || (!o.is_empty()
                && o.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".:/-".contains(&b)));
        if plain {
            origins.push(o.trim_end_matches('/').to_string());
        } else {
            report.unsupported(
                c.at(&format!("origins[{k}]")),
                format!("`{o}` is a regex origin: Tollgate lists origins exactly (or `*`)"),
            );
        }
    }
    if written.is_empty() {
        origins.push("*".to_string());
    }
    if origins.is_empty() {
        return Vec::new();
    }
    let mut p = Map::new();
    let mut methods: Vec<String> = match c.get("methods") {
        Some(_) => c.strings("methods"),
        None => CORS_METHODS.iter().map(|m| m.to_string()).collect(),
    };
    methods.iter_mut().for_each(|m| *m = m.to_ascii_uppercase());
    let mut sorted = methods.clone();
    sorted.sort();
    sorted.dedup();
    let tollgate_default = sorted == ["GET", "HEAD", "POST"];
    let credentials = c.bool("credentials").unwrap_or(false);
    let any = origins.iter().any(|o| o == "*");
    p.insert("origins".into(), json!(origins));
    if !tollgate_default {
        p.insert("methods".into(), json!(methods));
    }
    let headers = c.strings("headers");
    if !headers.is_empty() {
        p.insert("headers".into(), json!(headers));
    }
    let exposed = c.strings("exposed_headers");
    if !exposed.is_empty() {
        p.insert("expose_headers".into(), json!(exposed));
    }
    if credentials && any {
        report.unsupported(
            c.at("credentials"),
            "credentials with origin `*` (Kong then echoes the caller's origin); Tollgate refuses it: list the origins",
        );
    } else if credentials {
        p.insert("credentials".into(), json!(true));
    }
    if let Some(age) = c.num("max_age") {
        match whole(age) {
            Some(s) => {
                p.insert("max_age".into(), json!(format!("{s}s")));
            }
            None if age == 0.0 => {}
            None => report.unsupported(
                c.at("max_age"),
                format!("max_age {age} is not whole seconds"),
            ),
        }
    }
    if c.bool("preflight_continue") == Some(true) {
        report.unsupported(
            c.at("preflight_continue"),
            "preflights are always answered by the gateway",
        );
    }
    if c.bool("private_network") == Some(true) {
        report.unsupported(
            c.at("private_network"),
            "Private Network Access headers are not sent",
        );
    }
    vec![json!({ "cors": p })]
}

fn ip_restriction(c: &mut Conf<'_>, at: &str, report: &mut Report) -> Vec<Value> {
    let mut lists = Vec::new();
    for (field, old) in [("allow", "whitelist"), ("deny", "blacklist")] {
        let mut nets = Vec::new();
        for key in [field, old] {
            for (k, n) in c.strings(key).iter().enumerate() {
                match n.parse::<tollgate_model::policy::Cidr>() {
                    Ok(cidr) => nets.push(cidr.to_string()),
                    Err(e) => report.unsupported(c.at(&format!("{key}[{k}]")), e),
                }
            }
        }
        lists.push((field, nets));
    }
    if c.num("status").is_some_and(|s| s != 403.0) {
        report.unsupported(c.at("status"), "Tollgate refuses with 403");
    }
    if c.str("message").is_some() {
        report.unsupported(
            c.at("message"),
            "Tollgate refuses with its own problem body",
        );
    }
    let mut p = Map::new();
    for (field, nets) in lists {
        if !nets.is_empty() {
            p.insert(field.into(), json!(nets));
        }
    }
    if p.is_empty() {
        report.unsupported(at, "an ip-restriction without allow or deny networks");
        return Vec::new();
    }
    vec![json!({ "ip_restrict": p })]
}

fn request_size(c: &mut Conf<'_>, at: &str, report: &mut Report) -> Vec<Value> {
    let size = c.num("allowed_payload_size").unwrap_or(128.0);
    let unit = match c.str("size_unit").unwrap_or("megabytes") {
        "megabytes" => "MB",
        "kilobytes" => "KB",
        "bytes" => "B",
        other => {
            report.unsupported(c.at("size_unit"), format!("unit `{other}` is not known"));
            return Vec::new();
        }
    };
    if c.bool("require_content_length") == Some(true) {
        report.unsupported(
            c.at("require_content_length"),
            "requests without Content-Length are not refused",
        );
    }
    match whole(size) {
        Some(n) => vec![json!({ "request_size": { "max_body": format!("{n}{unit}") } })],
        None => {
            report.unsupported(at, format!("a size of {size} {unit} is not whole"));
            Vec::new()
        }
    }
}

/// The JWT key a consumer's `jwt_secrets` item stands for (a Tollgate `keys` item), or why
/// it has none.
pub(super) fn jwt_key(secret: &Value) -> Result<Value, String> {
    let alg = get_str(secret, "algorithm").unwrap_or("HS256");
    const HMAC: &[&str] = &["HS256", "HS384", "HS512"];
    const PUBLIC: &[&str] = &[
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ];
    if HMAC.contains(&alg) {
        match get_str(secret, "secret") {
            Some(s) if !s.is_empty() => Ok(json!({ "alg": alg, "secret": s })),
            _ => Err("an HMAC jwt_secret without its secret".into()),
        }
    } else if PUBLIC.contains(&alg) {
        match get_str(secret, "rsa_public_key") {
            Some(pem) if pem.contains("-----BEGIN") => Ok(json!({ "alg": alg, "pem": pem })),
            _ => Err(format!(
                "a {alg} jwt_secret without its public key (`rsa_public_key`)"
            )),
        }
    } else {
        Err(format!(
            "algorithm `{alg}` is not supported by Tollgate's jwt"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::transform::uri_template;
    use super::*;

    fn run(name: &str, config: Value) -> (Vec<Value>, Report) {
        let mut r = Report::default();
        let mut g = Grouped::default();
        let keys = JwtKeys::One(json!({ "alg": "HS256", "secret": "s3cret" }));
        let cx = Cx {
            legacy: false,
            jwt: &keys,
        };
        let out = map(name, &config, "plugins[0]", &cx, &mut r, &mut g);
        g.flush(&mut r);
        (out, r)
    }

    #[test]
    fn rate_limiting_windows_become_limits_and_quotas() {
        let (p, r) = run(
            "rate-limiting",
            json!({ "minute": 5, "hour": 100, "day": 1000, "policy": "local", "limit_by": "ip", "redis_port": 6379 }),
        );
        assert_eq!(
            p,
            vec![
                json!({ "rate_limit": { "limit": 5, "window": "1m", "by": "ip" } }),
                json!({ "rate_limit": { "limit": 100, "window": "1h", "by": "ip" } }),
                json!({ "quota": { "limit": 1000, "period": "day", "by": "ip" } }),
            ]
        );
        assert!(r.unsupported.is_empty(), "{:?}", r.unsupported);
        let (p, r) = run("rate-limiting", json!({ "year": 5, "limit_by": "path" }));
        assert!(p.is_empty());
        assert_eq!(r.unsupported[0].at, "plugins[0].config.limit_by");
    }

    #[test]
    fn transformer_rules_map_where_exact() {
        let (p, r) = run(
            "request-transformer",
            json!({
                "remove": { "headers": ["X-Debug"], "querystring": ["debug"] },
                "rename": { "headers": ["X-Old:X-New"] },
                "replace": { "headers": ["x-v:1"], "uri": "/internal/$(uri_captures.id)" },
                "add": { "headers": ["x-v:1", "x-only:2"], "body": ["channel:api"] },
                "append": { "headers": ["x-via:tollgate"] },
            }),
        );
        assert_eq!(
            p[0],
            json!({ "request_transform": {
                "headers": { "remove": ["x-debug"], "rename": { "x-old": "x-new" }, "set": { "x-v": "1", "x-only": "2" }, "add": { "x-via": "tollgate" } },
                "query": { "remove": ["debug"] },
                "body": { "add": { "channel": "api" } },
                "path": "/internal/{id}",
            }})
        );
        // `add` alone is "only when absent": imported as `set` and named.
        assert_eq!(r.unsupported.len(), 1, "{:?}", r.unsupported);
        assert_eq!(r.unsupported[0].at, "plugins[0].config.add.headers[1]");
    }

    #[test]
    fn unknown_fields_and_plugins_are_named() {
        let (p, r) = run(
            "ip-restriction",
            json!({ "allow": ["10.0.0.0/8"], "deny": null, "surprise": 1 }),
        );
        assert_eq!(
            p,
            vec![json!({ "ip_restrict": { "allow": ["10.0.0.0/8"] } })]
        );
        assert_eq!(r.unsupported[0].at, "plugins[0].config.surprise");
        let (p, r) = run("hmac-auth", json!({}));
        assert!(p.is_empty());
        assert!(r.unsupported[0].message.contains("hmac-auth"));
    }

    #[test]
    fn cors_defaults_and_key_auth() {
        let (p, _) = run("cors", json!({}));
        assert_eq!(p[0]["cors"]["origins"], json!(["*"]));
        assert_eq!(p[0]["cors"]["methods"].as_array().unwrap().len(), 9);
        let (p, _) = run(
            "cors",
            json!({ "origins": ["https://a.example"], "methods": ["POST", "GET", "HEAD"], "max_age": 600 }),
        );
        assert_eq!(
            p[0],
            json!({ "cors": { "origins": ["https://a.example"], "max_age": "600s" } })
        );
        let (p, r) = run(
            "key-auth",
            json!({ "key_names": ["apikey"], "hide_credentials": true, "key_in_query": false }),
        );
        assert_eq!(p[0], json!({ "key_auth": { "header": "apikey" } }));
        assert!(r.notes.is_empty() && r.unsupported.is_empty());
        assert_eq!(
            uri_template("/a/$(uri_captures[\"id\"])/b").unwrap(),
            "/a/{id}/b"
        );
        assert!(uri_template("/a/$(headers.x)").is_none());
    }
}
