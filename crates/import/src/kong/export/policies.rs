//! Policies → Kong plugins, one scope at a time.
//!
//! Kong runs one plugin of each name per request (the most specific), and every
//! authentication plugin it finds; Tollgate picks the narrowest scope per policy type, and
//! one scope's authentication policies are alternatives. Where the two differ, the plugins
//! carry what Tollgate would apply (rate limits and quotas from wider scopes), or the
//! difference is named.

use serde_json::{Map, Value, json};
use tollgate_model::policy::{LimitBy, LimitMode, LimitScope, Policy, QuotaPeriod, Transform};

use super::Exporter;
use crate::kong::TAG_INHERITED;

const INHERITED: &str = "a scope with rate limits but no quota (or the reverse) gets the wider scope's quota (or rate limits) in its Kong plugin, which replaces the wider one (tagged `tollgate-inherited:…`)";
const LEEWAY: &str = "Kong checks `exp` without leeway";

/// The Kong plugin a policy becomes.
pub(super) fn plugin_name(p: &Policy) -> Option<&'static str> {
    Some(match p {
        Policy::KeyAuth(_) => "key-auth",
        Policy::BasicAuth(_) => "basic-auth",
        Policy::Jwt(_) => "jwt",
        Policy::Acl(_) => "acl",
        Policy::RateLimit(_) | Policy::Quota(_) => "rate-limiting",
        Policy::Cors(_) => "cors",
        Policy::IpRestrict(_) => "ip-restriction",
        Policy::RequestTransform(_) => "request-transformer",
        Policy::RequestSize(_) => "request-size-limiting",
        _ => return None,
    })
}

fn limit_by(by: &LimitBy) -> Option<(&'static str, Option<String>)> {
    Some(match by {
        LimitBy::App => ("consumer", None),
        LimitBy::Ip => ("ip", None),
        LimitBy::Api => ("service", None),
        LimitBy::Header(h) => ("header", Some(h.clone())),
        LimitBy::Developer => return None,
    })
}

impl Exporter {
    /// One scope's policies as Kong plugins. `wider` are the scopes around it, nearest
    /// first; `params` the route's parameters (on a route).
    pub(super) fn plugins(
        &mut self,
        own: &[Policy],
        at: &str,
        wider: &[(&str, &[Policy])],
        params: Option<&[String]>,
    ) -> Vec<Value> {
        let mut out = Vec::new();
        let auth: Vec<&'static str> = own
            .iter()
            .filter(|p| p.is_authentication())
            .filter_map(plugin_name)
            .collect();
        if own.iter().filter(|p| p.is_authentication()).count() > 1 {
            self.report.unsupported(
                format!("{at} (authentication)"),
                "several authentication policies are alternatives in Tollgate; Kong requires every authentication plugin it runs",
            );
        } else if !auth.is_empty() {
            let more: Vec<&str> = wider
                .iter()
                .flat_map(|(_, s)| s.iter())
                .filter(|p| p.is_authentication())
                .filter_map(plugin_name)
                .filter(|n| !auth.contains(n))
                .collect();
            if let Some(n) = more.first() {
                self.report.unsupported(
                    format!("{at} (authentication)"),
                    format!("here Tollgate accepts only {}; Kong would also require the wider scope's {n}", auth[0]),
                );
            }
        }
        // ip_restrict items add up into one plugin, at the place of the first.
        let mut ip: Option<(usize, Vec<String>, Vec<String>)> = None;
        let mut limits_done = false;
        for (i, p) in own.iter().enumerate() {
            let pat = format!("{at}[{i}]");
            match p {
                Policy::KeyAuth(k) => {
                    let mut names = vec![k.header.clone()];
                    if let Some(q) = &k.query
                        && *q != k.header
                    {
                        names.push(q.clone());
                        self.report.unsupported(
                            format!("{pat}.key_auth.query"),
                            "a query parameter named unlike the header: Kong reads every key name from both places",
                        );
                    }
                    out.push(json!({ "name": "key-auth", "config": {
                        "key_names": names,
                        "key_in_header": true,
                        "key_in_query": k.query.is_some(),
                        "key_in_body": false,
                        "hide_credentials": true,
                    }}));
                }
                Policy::BasicAuth(b) => {
                    let mut c = Map::new();
                    c.insert("hide_credentials".into(), json!(true));
                    if let Some(r) = &b.realm {
                        c.insert("realm".into(), json!(r));
                    }
                    out.push(json!({ "name": "basic-auth", "config": c }));
                }
                Policy::Jwt(j) => {
                    if let Some(plugin) = self.jwt(j, &pat) {
                        out.push(plugin);
                    }
                }
                Policy::Acl(a) => {
                    let mut c = Map::new();
                    if !a.allow.is_empty() {
                        c.insert("allow".into(), json!(a.allow));
                    }
                    if !a.deny.is_empty() {
                        c.insert("deny".into(), json!(a.deny));
                    }
                    c.insert("hide_groups_header".into(), json!(true));
                    out.push(json!({ "name": "acl", "config": c }));
                }
                Policy::Cors(c) => {
                    let mut m = Map::new();
                    m.insert("origins".into(), json!(c.origins));
                    let methods = if c.methods.is_empty() {
                        vec!["GET".to_string(), "HEAD".into(), "POST".into()]
                    } else {
                        c.methods.clone()
                    };
                    m.insert("methods".into(), json!(methods));
                    if !c.headers.is_empty() {
                        m.insert("headers".into(), json!(c.headers));
                    }
                    if !c.expose_headers.is_empty() {
                        m.insert("exposed_headers".into(), json!(c.expose_headers));
                    }
                    m.insert("credentials".into(), json!(c.credentials));
                    if let Some(age) = c.max_age {
                        m.insert("max_age".into(), json!(age.as_millis() / 1000));
                        if age.as_millis() % 1000 != 0 {
                            self.report.unsupported(
                                format!("{pat}.cors.max_age"),
                                "Kong's max_age is whole seconds",
                            );
                        }
                    }
                    m.insert("preflight_continue".into(), json!(false));
                    out.push(json!({ "name": "cors", "config": m }));
                }
                Policy::IpRestrict(r) => {
                    let (_, allow, deny) =
                        ip.get_or_insert_with(|| (out.len(), Vec::new(), Vec::new()));
                    allow.extend(r.allow.iter().map(|c| c.to_string()));
                    deny.extend(r.deny.iter().map(|c| c.to_string()));
                }
                Policy::RequestSize(s) => {
                    let n = s.max_body.0;
                    let (size, unit) = if n % (1 << 20) == 0 {
                        (n >> 20, "megabytes")
                    } else if n % (1 << 10) == 0 {
                        (n >> 10, "kilobytes")
                    } else {
                        (n, "bytes")
                    };
                    out.push(json!({ "name": "request-size-limiting", "config": {
                        "allowed_payload_size": size, "size_unit": unit,
                    }}));
                }
                Policy::RequestTransform(t) => {
                    if let Some(plugin) = self.transformer(t, &pat, params) {
                        out.push(plugin);
                    }
                }
                Policy::RateLimit(_) | Policy::Quota(_) => {
                    if !limits_done {
                        limits_done = true;
                        if let Some(plugin) = self.limits(own, at, wider) {
                            out.push(plugin);
                        }
                    }
                }
                other => {
                    self.report.unsupported(
                        pat,
                        format!(
                            "`{}`: Kong has no plugin for it (among those this export writes)",
                            other.kind()
                        ),
                    );
                }
            }
        }
        if let Some((at, allow, deny)) = ip {
            let mut c = Map::new();
            if !allow.is_empty() {
                c.insert("allow".into(), json!(allow));
            }
            if !deny.is_empty() {
                c.insert("deny".into(), json!(deny));
            }
            out.insert(at, json!({ "name": "ip-restriction", "config": c }));
        }
        out
    }

    fn jwt(&mut self, j: &tollgate_model::policy::Jwt, at: &str) -> Option<Value> {
        if j.jwks_url.is_some() || j.keys.len() != 1 {
            self.report.unsupported(
                at.to_string(),
                "Kong's jwt plugin checks tokens with one secret or public key per consumer: a jwt policy needs exactly one key (no jwks_url) to be exported",
            );
            return None;
        }
        let key = j.keys[0].clone();
        if key.jwk.is_some() {
            self.report.unsupported(
                format!("{at}.jwt.keys[0]"),
                "a JWK: Kong takes an HMAC secret or a PEM public key",
            );
            return None;
        }
        match &self.jwt_key {
            Some(k) if *k != key => {
                self.report.unsupported(
                    at.to_string(),
                    "a second jwt key: the consumers' jwt_secrets carry the key of the first jwt policy",
                );
                return None;
            }
            _ => self.jwt_key = Some(key),
        }
        for (field, set, why) in [
            (
                "issuer",
                !j.issuer.is_empty(),
                "Kong checks `iss` only as the name of a consumer's secret",
            ),
            (
                "audiences",
                !j.audiences.is_empty(),
                "Kong's jwt plugin does not check `aud`",
            ),
            (
                "forward_claims",
                !j.forward_claims.is_empty(),
                "Kong's jwt plugin does not send claims upstream",
            ),
            (
                "require_app",
                !j.require_app,
                "Kong refuses tokens that name no consumer",
            ),
        ] {
            if set {
                self.report.unsupported(format!("{at}.jwt.{field}"), why);
            }
        }
        if j.leeway.as_millis() != 0 {
            self.report.unsupported(format!("{at}.jwt.leeway"), LEEWAY);
        }
        let claims: Vec<&str> = if j.require_exp { vec!["exp"] } else { vec![] };
        Some(json!({ "name": "jwt", "config": {
            "key_claim_name": j.app_claim,
            "claims_to_verify": claims,
            "header_names": ["authorization"],
            "uri_param_names": [],
            "cookie_names": [],
            "secret_is_base64": false,
        }}))
    }

    /// The scope's rate limits and quotas as one rate-limiting plugin.
    fn limits(&mut self, own: &[Policy], at: &str, wider: &[(&str, &[Policy])]) -> Option<Value> {
        // (place, policy) of one scope's rate limits or quotas.
        let pick = |place: &str, scope: &[Policy], quota: bool| -> Vec<(String, Policy)> {
            scope
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    matches!(
                        (p, quota),
                        (Policy::RateLimit(_), false) | (Policy::Quota(_), true)
                    )
                })
                .map(|(i, p)| (format!("{place}[{i}]"), p.clone()))
                .collect()
        };
        // Kinds taken from a wider scope (tagged, so that an import leaves them there).
        let mut inherited = Vec::new();
        let mut chosen = Vec::new();
        for quota in [false, true] {
            let mine = pick(at, own, quota);
            if !mine.is_empty() {
                chosen.extend(mine);
                continue;
            }
            if let Some(w) = wider
                .iter()
                .map(|(place, s)| pick(place, s, quota))
                .find(|l| !l.is_empty())
            {
                inherited.push(format!(
                    "{TAG_INHERITED}{}",
                    if quota { "quota" } else { "rate_limit" }
                ));
                chosen.extend(w);
            }
        }
        if !inherited.is_empty() {
            self.g.add(at.to_string(), INHERITED);
        }
        let mut c = Map::new();
        let mut by: Option<(&'static str, Option<String>)> = None;
        let mut scope = None;
        for (pat, p) in &chosen {
            let pat = pat.clone();
            let (this_by, field, limit) = match p {
                Policy::RateLimit(r) => {
                    let field = match r.window.as_millis() {
                        1_000 => "second",
                        60_000 => "minute",
                        3_600_000 => "hour",
                        _ => {
                            self.report.unsupported(
                                format!("{pat}.rate_limit.window"),
                                format!("a {} window: Kong counts per second, minute, hour, day, month or year", r.window),
                            );
                            continue;
                        }
                    };
                    if r.burst.is_some_and(|b| b != r.limit) || r.mode == LimitMode::Queue {
                        self.report.unsupported(
                            format!("{pat}.rate_limit"),
                            "a burst other than the limit, or queueing: Kong refuses requests over a fixed window's count",
                        );
                    }
                    let s = match r.scope {
                        LimitScope::Local => "local",
                        LimitScope::Cluster => "redis",
                        LimitScope::ClusterLease => {
                            self.report.unsupported(
                                format!("{pat}.rate_limit.scope"),
                                "leased cluster limits (written as `redis`)",
                            );
                            "redis"
                        }
                    };
                    match scope {
                        Some(prev) if prev != s => self.report.unsupported(
                            format!("{pat}.rate_limit.scope"),
                            "limits of one scope counted in different places: Kong's plugin has one policy",
                        ),
                        _ => scope = Some(s),
                    }
                    (&r.by, field, r.limit)
                }
                Policy::Quota(q) => {
                    let field = match q.period {
                        QuotaPeriod::Day => "day",
                        QuotaPeriod::Month => "month",
                    };
                    (&q.by, field, q.limit)
                }
                _ => continue,
            };
            let Some(kong_by) = limit_by(this_by) else {
                self.report.unsupported(
                    pat.clone(),
                    "counting by developer: Kong has no owner of consumers",
                );
                continue;
            };
            match &by {
                Some(prev) if *prev != kong_by => {
                    self.report.unsupported(pat, "limits of one scope counted by different keys: Kong's rate-limiting plugin has one `limit_by`");
                    continue;
                }
                _ => by = Some(kong_by),
            }
            if c.contains_key(field) {
                self.report.unsupported(
                    pat,
                    format!("a second limit per {field}: Kong's plugin has one"),
                );
                continue;
            }
            c.insert(field.into(), json!(limit));
        }
        if c.is_empty() {
            return None;
        }
        let (limit_by, header) = by.unwrap_or(("consumer", None));
        c.insert("limit_by".into(), json!(limit_by));
        if let Some(h) = header {
            c.insert("header_name".into(), json!(h));
        }
        let policy = scope.unwrap_or("local");
        c.insert("policy".into(), json!(policy));
        if policy == "redis" {
            self.g.add(at.to_string(), "`scope: cluster` became `policy: redis`: set the plugin's redis settings (Tollgate's come from `serve --redis`)");
        }
        let mut plugin = json!({ "name": "rate-limiting", "config": c });
        if !inherited.is_empty() {
            plugin["tags"] = json!(inherited);
        }
        Some(plugin)
    }

    fn transformer(&mut self, t: &Transform, at: &str, params: Option<&[String]>) -> Option<Value> {
        let mut c: Map<String, Value> = ["remove", "rename", "replace", "add", "append"]
            .iter()
            .map(|k| (k.to_string(), json!({})))
            .collect();
        let mut put = |op: &str, section: &str, item: String| {
            if let Some(Value::Object(m)) = c.get_mut(op)
                && let Value::Array(list) = m.entry(section).or_insert_with(|| json!([]))
            {
                list.push(json!(item));
            }
        };
        for (rules, section) in [(&t.headers, "headers"), (&t.query, "querystring")] {
            for n in &rules.remove {
                put("remove", section, n.clone());
            }
            for (from, to) in &rules.rename {
                put("rename", section, format!("{from}:{to}"));
            }
            for (n, v) in &rules.set {
                put("replace", section, format!("{n}:{v}"));
                put("add", section, format!("{n}:{v}"));
            }
            for (n, v) in &rules.add {
                put("append", section, format!("{n}:{v}"));
            }
        }
        let b = &t.body;
        for n in &b.remove {
            put("remove", "body", n.clone());
        }
        for (from, to) in &b.rename {
            put("rename", "body", format!("{from}:{to}"));
        }
        let mut non_text = false;
        for (n, v) in &b.set {
            match v.as_str() {
                Some(s) => {
                    put("replace", "body", format!("{n}:{s}"));
                    put("add", "body", format!("{n}:{s}"));
                }
                None => non_text = true,
            }
        }
        for (n, v) in &b.add {
            match v.as_str() {
                Some(s) => put("add", "body", format!("{n}:{s}")),
                None => non_text = true,
            }
        }
        if non_text {
            self.report.unsupported(
                format!("{at}.request_transform.body"),
                "body values that are not text: Kong's request-transformer writes strings",
            );
        }
        if let Some(path) = &t.path {
            let mut uri = String::new();
            let mut rest = path.as_str();
            while let Some(open) = rest.find('{') {
                let close = rest[open..].find('}').map_or(rest.len(), |c| c + open);
                uri.push_str(&rest[..open]);
                let name = &rest[open + 1..close.min(rest.len())];
                if params.is_some_and(|p| p.iter().any(|x| x == name)) {
                    uri.push_str(&format!("$(uri_captures.{name})"));
                }
                rest = &rest[(close + 1).min(rest.len())..];
            }
            uri.push_str(rest);
            if let Some(Value::Object(m)) = c.get_mut("replace") {
                m.insert("uri".into(), json!(uri));
            }
        }
        if t.max_body.is_some() {
            self.g.add(
                format!("{at}.request_transform.max_body"),
                "Kong's request-transformer has no body size of its own",
            );
        }
        c.retain(|_, v| v.as_object().is_some_and(|m| !m.is_empty()));
        if c.is_empty() {
            return None;
        }
        Some(json!({ "name": "request-transformer", "config": c }))
    }
}
