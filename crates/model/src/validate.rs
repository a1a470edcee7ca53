//! Semantic checks of a whole [`Document`]: names, references between entities, values in
//! range, and route conflicts. Every problem is collected (not just the first) with the
//! path of the offending field, so one run of `tollgate validate` shows them all.

use std::collections::HashSet;

use serde::Serialize;
use tollgate_router::RouteTableBuilder;

use crate::document::{Balance, Document, Route, Upstream, is_token};
use crate::policy::Policy;

mod product;
mod security;
mod traffic;

pub use security::check_service_url;
use security::{check_forward_claims, check_identities, check_jwt, check_tls, line_col};

/// One validation problem: where (`apis[0].versions[1].upstream`) and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// A slug: lower-case letters, digits, `-` and `_`, starting with a letter or digit.
pub fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

fn is_version_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_')
}

/// A version header is a header name; a version query parameter a plain name; the
/// default a version of the API; neither applies to versions told apart by path.
fn check_versioning(
    api: &crate::document::Api,
    v: &crate::document::Versioning,
    path: &str,
    errs: &mut Errors,
) {
    use crate::document::VersionBy;
    if v.by == VersionBy::Path {
        for (field, set) in [("name", v.name.is_some()), ("default", v.default.is_some())] {
            if set {
                errs.push(
                    format!("{path}.{field}"),
                    format!("`{field}` applies when versions are chosen by header or query"),
                );
            }
        }
        return;
    }
    if let Some(name) = &v.name {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !ok {
            errs.push(
                format!("{path}.name"),
                format!(
                    "`{name}` is not a usable {} name (letters, digits, `-`, `_`, `.`; at most 64)",
                    if v.by == VersionBy::Header {
                        "header"
                    } else {
                        "query parameter"
                    }
                ),
            );
        }
    }
    if let Some(d) = &v.default
        && !api.versions.iter().any(|x| &x.version == d)
    {
        errs.push(
            format!("{path}.default"),
            format!("unknown version `{d}` of API `{}`", api.name),
        );
    }
}

/// Brownout windows: only on a deprecated version, each a valid range, at most
/// [`MAX_BROWNOUTS`](crate::document::MAX_BROWNOUTS).
fn check_brownouts(v: &crate::document::Version, vpath: &str, errs: &mut Errors) {
    use crate::document::{MAX_BROWNOUTS, VersionStatus};
    if v.brownouts.is_empty() {
        return;
    }
    if v.status != VersionStatus::Deprecated {
        errs.push(
            format!("{vpath}.brownouts"),
            format!(
                "brownouts apply to deprecated versions; this one is {}",
                v.status.as_str()
            ),
        );
    }
    if v.brownouts.len() > MAX_BROWNOUTS {
        errs.push(
            format!("{vpath}.brownouts"),
            format!("at most {MAX_BROWNOUTS} brownout windows"),
        );
    }
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    };
    for (i, b) in v.brownouts.iter().enumerate() {
        let (from, to) = (parse(&b.from), parse(&b.to));
        for (field, text, parsed) in [("from", &b.from, from), ("to", &b.to, to)] {
            if parsed.is_none() {
                errs.push(
                    format!("{vpath}.brownouts[{i}].{field}"),
                    format!("`{text}` is not an RFC 3339 time such as 2027-03-01T14:00:00Z"),
                );
            }
        }
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            errs.push(
                format!("{vpath}.brownouts[{i}].to"),
                "a brownout must end after it starts",
            );
        }
    }
}

/// Checks a whole document. An empty result means it can be applied.
pub fn validate(doc: &Document) -> Vec<FieldError> {
    let mut errs = Errors(Vec::new());
    if doc.format_version != 1 {
        errs.push(
            "format_version",
            format!(
                "unsupported format_version {}; this build reads 1",
                doc.format_version
            ),
        );
    }

    let mut upstream_names = HashSet::new();
    for (i, up) in doc.upstreams.iter().enumerate() {
        let path = format!("upstreams[{i}]");
        if !is_slug(&up.name) {
            errs.push(
                format!("{path}.name"),
                format!(
                    "`{}` is not a valid name: use lower-case letters, digits, `-` and `_`",
                    up.name
                ),
            );
        } else if !upstream_names.insert(up.name.as_str()) {
            errs.push(
                format!("{path}.name"),
                format!("upstream `{}` is defined twice", up.name),
            );
        }
        check_upstream(up, &path, &mut errs);
    }

    let scope = |route: Option<&Route>| Scope {
        upstreams: &upstream_names,
        client_ca: doc.settings.tls.client_ca.is_some(),
        route_params: route.map(route_params),
    };
    check_policies(&doc.policies, "policies", &scope(None), &mut errs);

    let mut api_names = HashSet::new();
    let mut routes: Vec<(String, tollgate_router::RouteSpec<()>)> = Vec::new();
    for (i, api) in doc.apis.iter().enumerate() {
        let path = format!("apis[{i}]");
        if let Some(log) = &api.access_log {
            check_access_log(log, &format!("{path}.access_log"), &mut errs);
        }
        if let Some(v) = &api.versioning {
            check_versioning(api, v, &format!("{path}.versioning"), &mut errs);
        }
        if !is_slug(&api.name) {
            errs.push(
                format!("{path}.name"),
                format!(
                    "`{}` is not a valid name: use lower-case letters, digits, `-` and `_`",
                    api.name
                ),
            );
        } else if !api_names.insert(api.name.as_str()) {
            errs.push(
                format!("{path}.name"),
                format!("API `{}` is defined twice", api.name),
            );
        }
        check_policies(
            &api.policies,
            &format!("{path}.policies"),
            &scope(None),
            &mut errs,
        );
        let versions: HashSet<&str> = api.versions.iter().map(|v| v.version.as_str()).collect();
        let mut seen = HashSet::new();
        for (j, v) in api.versions.iter().enumerate() {
            let vpath = format!("{path}.versions[{j}]");
            if !is_version_name(&v.version) {
                errs.push(
                    format!("{vpath}.version"),
                    format!(
                        "`{}` is not a valid version name: use letters, digits, `.`, `-` and `_`",
                        v.version
                    ),
                );
            } else if !seen.insert(v.version.as_str()) {
                errs.push(
                    format!("{vpath}.version"),
                    format!(
                        "version `{}` of API `{}` is defined twice",
                        v.version, api.name
                    ),
                );
            }
            if !upstream_names.contains(v.upstream.as_str()) {
                errs.push(
                    format!("{vpath}.upstream"),
                    format!("unknown upstream `{}`", v.upstream),
                );
            }
            if let Some(s) = &v.successor {
                if s == &v.version {
                    errs.push(
                        format!("{vpath}.successor"),
                        "a version cannot succeed itself",
                    );
                } else if !versions.contains(s.as_str()) {
                    errs.push(
                        format!("{vpath}.successor"),
                        format!("unknown version `{s}` of API `{}`", api.name),
                    );
                }
            }
            for (field, value) in [
                ("deprecated_at", &v.deprecated_at),
                ("sunset_at", &v.sunset_at),
            ] {
                if let Some(t) = value
                    && time::OffsetDateTime::parse(
                        t,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .is_err()
                {
                    errs.push(
                        format!("{vpath}.{field}"),
                        format!("`{t}` is not an RFC 3339 time such as 2027-03-31T00:00:00Z"),
                    );
                }
            }
            check_brownouts(v, &vpath, &mut errs);
            let validates = |ps: &[Policy]| ps.iter().any(|p| matches!(p, Policy::Validate(_)));
            if v.spec.is_none()
                && (validates(&doc.policies)
                    || validates(&api.policies)
                    || validates(&v.policies)
                    || v.routes.iter().any(|r| validates(&r.policies)))
            {
                errs.push(
                    format!("{vpath}.spec"),
                    format!(
                        "the validate policy applies to version `{}` of API `{}`, which has no \
                         OpenAPI document: add it as `spec` (or import one with \
                         `tollgate import openapi`)",
                        v.version, api.name
                    ),
                );
            }
            check_policies(
                &v.policies,
                &format!("{vpath}.policies"),
                &scope(None),
                &mut errs,
            );
            for (k, route) in v.routes.iter().enumerate() {
                let rpath = format!("{vpath}.routes[{k}]");
                check_route(route, &rpath, &mut errs);
                check_policies(
                    &route.policies,
                    &format!("{rpath}.policies"),
                    &scope(Some(route)),
                    &mut errs,
                );
                for spec in api.route_specs(v, route, ()) {
                    routes.push((rpath.clone(), spec));
                }
            }
        }
    }
    check_route_conflicts(&routes, &mut errs);
    check_identities(doc, &mut errs);
    check_analytics(&doc.settings.analytics, &mut errs);
    check_retention(&doc.settings.retention, &mut errs);
    for (name, rule) in [
        ("auth_failures", &doc.settings.detectors.auth_failures),
        ("enumeration", &doc.settings.detectors.enumeration),
        ("key_sharing", &doc.settings.detectors.key_sharing),
    ] {
        let path = format!("settings.detectors.{name}");
        if rule.threshold == 0 || rule.threshold > 1_000_000 {
            errs.push(format!("{path}.threshold"), "between 1 and 1000000");
        }
        if rule.window.as_millis() < 1000 || rule.window.as_millis() > 86_400_000 {
            errs.push(format!("{path}.window"), "between 1s and 1d");
        }
        if rule.block.as_millis() > 7 * 86_400_000 {
            errs.push(format!("{path}.block"), "at most 7d");
        }
    }
    let spikes = &doc.settings.detectors.spikes;
    if !(spikes.sigmas.is_finite() && (1.0..=100.0).contains(&spikes.sigmas)) {
        errs.push("settings.detectors.spikes.sigmas", "between 1 and 100");
    }
    if !(spikes.factor.is_finite() && (1.0..=1000.0).contains(&spikes.factor)) {
        errs.push("settings.detectors.spikes.factor", "between 1 and 1000");
    }
    if spikes.warmup == 0 || spikes.warmup > 100_000 {
        errs.push(
            "settings.detectors.spikes.warmup",
            "between 1 and 100000 minutes",
        );
    }
    if spikes.min_requests == 0 {
        errs.push("settings.detectors.spikes.min_requests", "at least 1");
    }
    product::check_products(doc, &mut errs);
    product::check_webhooks(doc, &mut errs);
    check_governance(&doc.governance, &mut errs);
    check_tls(doc, &mut errs);
    errs.0
}

fn check_upstream(up: &Upstream, path: &str, errs: &mut Errors) {
    traffic::check_upstream_limits(&up.limits, &format!("{path}.limits"), errs);
    if up.targets.is_empty() {
        errs.push(
            format!("{path}.targets"),
            "an upstream needs at least one target",
        );
    }
    let mut urls = HashSet::new();
    for (i, t) in up.targets.iter().enumerate() {
        let tpath = format!("{path}.targets[{i}]");
        if let Err(msg) = check_target_url(&t.url) {
            errs.push(format!("{tpath}.url"), msg);
        } else if !urls.insert(t.url.trim_end_matches('/')) {
            errs.push(
                format!("{tpath}.url"),
                format!("target `{}` is listed twice", t.url),
            );
        }
        if t.weight > 10_000 {
            errs.push(
                format!("{tpath}.weight"),
                "weight must be between 0 and 10000",
            );
        }
    }
    if !up.targets.is_empty() && up.targets.iter().all(|t| t.weight == 0) {
        errs.push(
            format!("{path}.targets"),
            "at least one target needs a weight above 0",
        );
    }
    match (up.balance, &up.hash_on) {
        (Balance::Hash, None) => errs.push(
            format!("{path}.hash_on"),
            "balance: hash needs hash_on (header:NAME, cookie:NAME, ip or app)",
        ),
        (b, Some(_)) if b != Balance::Hash => errs.push(
            format!("{path}.hash_on"),
            "hash_on is only used with balance: hash",
        ),
        _ => {}
    }
    for (name, d) in [
        ("connect", up.timeouts.connect),
        ("read", up.timeouts.read),
        ("write", up.timeouts.write),
    ] {
        if d.as_millis() == 0 {
            errs.push(
                format!("{path}.timeouts.{name}"),
                "a timeout must be above 0",
            );
        }
    }
    if up.retries > 10 {
        errs.push(format!("{path}.retries"), "retries must be at most 10");
    }
    if let Some(a) = &up.health.active {
        let hp = format!("{path}.health.active");
        if !a.path.starts_with('/') {
            errs.push(format!("{hp}.path"), "the probe path must start with `/`");
        }
        if a.interval.as_millis() < 100 {
            errs.push(
                format!("{hp}.interval"),
                "the probe interval must be at least 100ms",
            );
        }
        if a.timeout.as_millis() == 0 {
            errs.push(format!("{hp}.timeout"), "the probe timeout must be above 0");
        }
        if a.healthy == 0 || a.unhealthy == 0 {
            errs.push(hp, "healthy and unhealthy thresholds must be at least 1");
        }
    }
    if let Some(p) = &up.health.passive
        && p.unhealthy == 0
    {
        errs.push(
            format!("{path}.health.passive.unhealthy"),
            "the threshold must be at least 1",
        );
    }
}

/// Accepts `http://host[:port][/]`. Paths in target URLs are not supported: routes decide
/// the forwarded path.
///
/// (See [`check_service_url`] for URLs the gateway calls for itself.)
pub fn check_target_url(url: &str) -> Result<(), String> {
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else {
        return Err(format!("`{url}` must start with http:// or https://"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    if authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!(
            "`{url}` must be scheme://host[:port] with no path, query or credentials"
        ));
    }
    // The same parse the gateway uses, so what validates is what can be served.
    let parsed: http::uri::Authority = authority
        .parse()
        .map_err(|_| format!("`{url}` has an invalid host or port (write IPv6 as [::1])"))?;
    if parsed.host().is_empty() || parsed.port_u16() == Some(0) {
        return Err(format!("`{url}` has an invalid host or port"));
    }
    if authority.contains(':') && parsed.port().is_none() && !authority.starts_with('[') {
        return Err(format!(
            "`{url}`: write an IPv6 address in brackets, e.g. http://[::1]:8080"
        ));
    }
    Ok(())
}

fn check_route(route: &Route, path: &str, errs: &mut Errors) {
    for (i, m) in route.methods.iter().enumerate() {
        if !is_token(m) || m.bytes().any(|b| b.is_ascii_lowercase()) {
            errs.push(
                format!("{path}.methods[{i}]"),
                format!("`{m}` is not an upper-case HTTP method"),
            );
        }
    }
    for (i, h) in route.hosts.iter().enumerate() {
        let name = h.strip_prefix("*.").unwrap_or(h);
        let ok = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !name.starts_with('.');
        if !ok {
            errs.push(
                format!("{path}.hosts[{i}]"),
                format!("`{h}` is not a host name (api.example.com or *.example.com)"),
            );
        }
    }
    for name in route.headers.keys() {
        if !is_token(name) {
            errs.push(
                format!("{path}.headers.{name}"),
                format!("`{name}` is not a valid header name"),
            );
        }
    }
}

/// Policy types that may appear more than once in one scope (their rules add up).
const REPEATABLE: &[&str] = &["ip_restrict", "rate_limit", "quota"];

/// One scope's policies: each checked, and no type twice unless it adds up.
fn check_policies(policies: &[Policy], path: &str, scope: &Scope<'_>, errs: &mut Errors) {
    let mut seen = HashSet::new();
    for (i, policy) in policies.iter().enumerate() {
        let ppath = format!("{path}[{i}]");
        if !seen.insert(policy.kind()) && !REPEATABLE.contains(&policy.kind()) {
            errs.push(
                ppath.clone(),
                format!(
                    "`{}` appears twice in this scope; merge them into one",
                    policy.kind()
                ),
            );
        }
        check_policy(policy, &ppath, scope, errs);
    }
}

/// What a policy may refer to where it is attached.
struct Scope<'a> {
    upstreams: &'a HashSet<&'a str>,
    /// Whether client certificates can be verified (`settings.tls.client_ca`).
    client_ca: bool,
    /// The route's `{param}` names when the policy is on a route.
    route_params: Option<Vec<String>>,
}

/// The `{name}` parameters a route pattern binds.
fn route_params(route: &Route) -> Vec<String> {
    crate::policy::placeholders(&route.path)
        .map(|p| p.into_iter().map(str::to_string).collect())
        .unwrap_or_default()
}

fn check_policy(policy: &Policy, path: &str, scope: &Scope<'_>, errs: &mut Errors) {
    match policy {
        Policy::IpRestrict(p) => {
            if p.allow.is_empty() && p.deny.is_empty() {
                errs.push(
                    format!("{path}.ip_restrict"),
                    "ip_restrict needs `allow` or `deny` networks",
                );
            }
        }
        Policy::RequestSize(p) => {
            if p.max_body.0 == 0 {
                errs.push(
                    format!("{path}.request_size.max_body"),
                    "max_body must be above 0",
                );
            }
        }
        Policy::Validate(v) => {
            if v.max_body.0 == 0 {
                errs.push(
                    format!("{path}.validate.max_body"),
                    "max_body must be above 0",
                );
            }
        }
        Policy::RequestTransform(t) => {
            check_transform(t, &format!("{path}.request_transform"), true, scope, errs)
        }
        Policy::ResponseTransform(t) => {
            check_transform(t, &format!("{path}.response_transform"), false, scope, errs)
        }
        Policy::Cache(c) => {
            let cpath = format!("{path}.cache");
            for (i, k) in c.key.iter().enumerate() {
                let ok = k == "app" || k.strip_prefix("header:").is_some_and(is_token);
                if !ok {
                    errs.push(
                        format!("{cpath}.key[{i}]"),
                        format!("`{k}` is not a cache key part: use app or header:NAME"),
                    );
                }
            }
            if c.max_entry.is_some_and(|m| m.0 == 0) {
                errs.push(format!("{cpath}.max_entry"), "max_entry must be above 0");
            }
            if c.ttl.is_some_and(|t| t.as_millis() == 0) {
                errs.push(format!("{cpath}.ttl"), "ttl must be above 0");
            }
        }
        Policy::Aggregate(a) => check_aggregate(a, &format!("{path}.aggregate"), scope, errs),
        Policy::RateLimit(r) => traffic::check_rate_limit(r, &format!("{path}.rate_limit"), errs),
        Policy::Quota(q) => traffic::check_quota(q, &format!("{path}.quota"), errs),
        Policy::CircuitBreaker(c) => {
            traffic::check_circuit_breaker(c, &format!("{path}.circuit_breaker"), errs)
        }
        Policy::KeyAuth(k) => {
            if !is_token(&k.header) {
                errs.push(
                    format!("{path}.key_auth.header"),
                    format!("`{}` is not a valid header name", k.header),
                );
            }
            if k.query.as_deref().is_some_and(str::is_empty) {
                errs.push(
                    format!("{path}.key_auth.query"),
                    "the query parameter name is empty",
                );
            }
        }
        Policy::Jwt(j) => check_jwt(j, &format!("{path}.jwt"), errs),
        Policy::BasicAuth(_) => {}
        Policy::Mtls(_) => {
            if !scope.client_ca {
                errs.push(
                    format!("{path}.mtls"),
                    "mtls needs `settings.tls.client_ca` to verify client certificates against",
                );
            }
        }
        Policy::OAuth2Introspection(o) => {
            let opath = format!("{path}.oauth2_introspection");
            if let Err(e) = check_service_url(&o.url) {
                errs.push(format!("{opath}.url"), e);
            }
            if o.client_id.is_empty() {
                errs.push(format!("{opath}.client_id"), "client_id is empty");
            }
            if o.client_secret.is_empty() {
                errs.push(format!("{opath}.client_secret"), "client_secret is empty");
            }
            check_forward_claims(&o.forward_claims, &format!("{opath}.forward_claims"), errs);
        }
        Policy::Acl(a) => {
            if a.allow.is_empty() && a.deny.is_empty() {
                errs.push(format!("{path}.acl"), "acl needs `allow` or `deny` groups");
            }
        }
        Policy::Scopes(sc) => {
            if sc.required.is_empty() && sc.any.is_empty() {
                errs.push(
                    format!("{path}.scopes"),
                    "scopes needs `required` or `any` scopes",
                );
            }
        }
        Policy::Authorize(a) => {
            if let Err(e) = a.cedar.parse::<cedar_policy::PolicySet>() {
                let mut message = String::from("the Cedar policies do not parse:");
                for err in e.iter() {
                    message.push(' ');
                    message.push_str(&err.to_string());
                    if let Some(labels) = miette::Diagnostic::labels(err) {
                        for l in labels {
                            let (line, col) = line_col(&a.cedar, l.offset());
                            message.push_str(&format!(" (line {line}, column {col})"));
                        }
                    }
                    message.push(';');
                }
                message.pop();
                errs.push(format!("{path}.authorize.cedar"), message);
            }
        }
        Policy::Cors(c) => {
            let cpath = format!("{path}.cors");
            if c.origins.is_empty() {
                errs.push(
                    format!("{cpath}.origins"),
                    "cors needs at least one origin (or `*`)",
                );
            }
            for (i, o) in c.origins.iter().enumerate() {
                let ok = o == "*"
                    || ((o.starts_with("https://") || o.starts_with("http://"))
                        && !o.ends_with('/')
                        && !o.contains(char::is_whitespace));
                if !ok {
                    errs.push(
                        format!("{cpath}.origins[{i}]"),
                        format!("`{o}` is not an origin such as https://app.example.com or `*`"),
                    );
                }
            }
            if c.credentials && c.origins.iter().any(|o| o == "*") {
                errs.push(
                    format!("{cpath}.credentials"),
                    "credentials cannot be allowed for every origin (`*`); list the origins",
                );
            }
            for (i, m) in c.methods.iter().enumerate() {
                if http::Method::from_bytes(m.as_bytes()).is_err() {
                    errs.push(
                        format!("{cpath}.methods[{i}]"),
                        format!("`{m}` is not an HTTP method"),
                    );
                }
            }
            for (field, list) in [
                ("headers", &c.headers),
                ("expose_headers", &c.expose_headers),
            ] {
                for (i, h) in list.iter().enumerate() {
                    if !is_token(h) {
                        errs.push(
                            format!("{cpath}.{field}[{i}]"),
                            format!("`{h}` is not a valid header name"),
                        );
                    }
                }
            }
        }
    }
}

fn check_transform(
    t: &crate::policy::Transform,
    path: &str,
    request: bool,
    scope: &Scope<'_>,
    errs: &mut Errors,
) {
    fn names(rules: &crate::policy::FieldRules) -> Vec<&String> {
        let mut all: Vec<&String> = rules.remove.iter().collect();
        all.extend(rules.rename.keys().chain(rules.rename.values()));
        all.extend(rules.set.keys().chain(rules.add.keys()));
        all
    }
    for name in names(&t.headers) {
        if !is_token(name) {
            errs.push(
                format!("{path}.headers"),
                format!("`{name}` is not a valid header name"),
            );
        }
    }
    for value in t.headers.set.values().chain(t.headers.add.values()) {
        if value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
            errs.push(
                format!("{path}.headers"),
                format!("header value `{value}` holds control characters"),
            );
        }
    }
    if !request && !t.query.is_empty() {
        errs.push(
            format!("{path}.query"),
            "query rules apply to requests only",
        );
    }
    for name in names(&t.query) {
        if name.is_empty() {
            errs.push(
                format!("{path}.query"),
                "a query parameter name cannot be empty",
            );
        }
    }
    if let Some(p) = &t.path {
        if !request {
            errs.push(
                format!("{path}.path"),
                "path rewrites apply to requests only",
            );
        } else if !p.starts_with('/') {
            errs.push(format!("{path}.path"), format!("`{p}` must start with `/`"));
        } else {
            let filled: String = p
                .split(['{', '}'])
                .enumerate()
                .map(|(i, part)| if i % 2 == 1 { "x" } else { part })
                .collect();
            if filled.parse::<http::uri::PathAndQuery>().is_err() || filled.contains('?') {
                errs.push(
                    format!("{path}.path"),
                    format!("`{p}` is not a valid URL path (percent-encode special characters)"),
                );
            }
            match crate::policy::placeholders(p) {
                Err(msg) => errs.push(format!("{path}.path"), msg),
                Ok(found) => {
                    for name in found {
                        match &scope.route_params {
                            Some(params) if params.iter().any(|r| r == name) => {}
                            Some(_) => errs.push(
                                format!("{path}.path"),
                                format!("`{{{name}}}` is not a parameter of this route"),
                            ),
                            None => errs.push(
                                format!("{path}.path"),
                                format!("`{{{name}}}` needs the transform to be on a route"),
                            ),
                        }
                    }
                }
            }
        }
    }
    let fields = t
        .body
        .remove
        .iter()
        .chain(t.body.rename.keys())
        .chain(t.body.rename.values())
        .chain(t.body.set.keys())
        .chain(t.body.add.keys());
    for f in fields {
        if f.is_empty() || f.split('.').any(str::is_empty) {
            errs.push(
                format!("{path}.body"),
                format!("`{f}` is not a field path such as customer.email"),
            );
        }
    }
    if t.max_body.is_some_and(|m| m.0 == 0) {
        errs.push(format!("{path}.max_body"), "max_body must be above 0");
    }
}

fn check_aggregate(a: &crate::policy::Aggregate, path: &str, scope: &Scope<'_>, errs: &mut Errors) {
    let Some(params) = &scope.route_params else {
        errs.push(
            path,
            "aggregate answers a route: attach it to a route's policies",
        );
        return;
    };
    if a.steps.is_empty() {
        errs.push(format!("{path}.steps"), "aggregate needs at least one step");
    }
    let mut earlier: Vec<&str> = Vec::new();
    let mut keys = HashSet::new();
    for (i, step) in a.steps.iter().enumerate() {
        let spath = format!("{path}.steps[{i}]");
        if !is_slug(&step.name) {
            errs.push(
                format!("{spath}.name"),
                format!("`{}` is not a valid step name", step.name),
            );
        } else if earlier.contains(&step.name.as_str()) {
            errs.push(
                format!("{spath}.name"),
                format!("step `{}` is defined twice", step.name),
            );
        }
        if !scope.upstreams.contains(step.upstream.as_str()) {
            errs.push(
                format!("{spath}.upstream"),
                format!("unknown upstream `{}`", step.upstream),
            );
        }
        if !step.path.starts_with('/') {
            errs.push(
                format!("{spath}.path"),
                format!("`{}` must start with `/`", step.path),
            );
        }
        match crate::policy::placeholders(&step.path) {
            Err(msg) => errs.push(format!("{spath}.path"), msg),
            Ok(found) => {
                for name in found {
                    match name.split_once('.') {
                        None if params.iter().any(|p| p == name) => {}
                        None => errs.push(
                            format!("{spath}.path"),
                            format!("`{{{name}}}` is not a parameter of this route"),
                        ),
                        Some((step_name, _)) if earlier.contains(&step_name) => {}
                        Some((step_name, _)) => errs.push(
                            format!("{spath}.path"),
                            format!(
                                "`{{{name}}}` refers to `{step_name}`, which is not an earlier step"
                            ),
                        ),
                    }
                }
            }
        }
        if step.timeout.is_some_and(|t| t.as_millis() == 0) {
            errs.push(format!("{spath}.timeout"), "timeout must be above 0");
        }
        let key = step.key.as_deref().unwrap_or(&step.name);
        if a.merge == crate::policy::MergeMode::Keyed && !keys.insert(key) {
            errs.push(
                format!("{spath}.key"),
                format!("two steps use the key `{key}`"),
            );
        }
        earlier.push(&step.name);
    }
}

fn check_route_conflicts(routes: &[(String, tollgate_router::RouteSpec<()>)], errs: &mut Errors) {
    let mut builder = RouteTableBuilder::new();
    for (i, (path, spec)) in routes.iter().enumerate() {
        let spec = tollgate_router::RouteSpec {
            pattern: spec.pattern.clone(),
            methods: spec.methods.clone(),
            hosts: spec.hosts.clone(),
            headers: spec.headers.clone(),
            value: i,
        };
        if let Err(e) = builder.add(spec) {
            errs.push(format!("{path}.path"), e.to_string());
        }
    }
    if let Err(e) = builder.build() {
        // The builder numbers routes in the order they were added: the index into `routes`.
        let path = routes
            .get(e.index())
            .map(|(p, _)| format!("{p}.path"))
            .unwrap_or_default();
        let other = e
            .other_index()
            .and_then(|i| routes.get(i))
            .map(|(p, _)| format!(" (see {p})"))
            .unwrap_or_default();
        errs.push(path, format!("{e}{other}"));
    }
}

/// Header names parse; lists stay short.
fn check_access_log(log: &crate::document::AccessLogConfig, path: &str, errs: &mut Errors) {
    for (field, list) in [
        ("headers", &log.headers),
        ("mask_headers", &log.mask_headers),
    ] {
        if list.len() > 50 {
            errs.push(format!("{path}.{field}"), "at most 50 headers");
        }
        for (j, h) in list.iter().enumerate() {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                errs.push(
                    format!("{path}.{field}[{j}]"),
                    format!("`{h}` is not a header name"),
                );
            }
        }
    }
    if log.mask_fields.len() > 200 {
        errs.push(format!("{path}.mask_fields"), "at most 200 fields");
    }
    for (j, f) in log.mask_fields.iter().enumerate() {
        if f.is_empty() || f.len() > 200 {
            errs.push(
                format!("{path}.mask_fields[{j}]"),
                "a field name of 1 to 200 characters",
            );
        }
    }
}

/// Governance rule changes: a known id form, and a severity or a rule definition. The
/// definitions themselves (paths, functions, options) are checked by the lint crate when
/// the configuration is applied or linted.
fn check_governance(g: &crate::document::Governance, errs: &mut Errors) {
    const SEVERITIES: &[&str] = &["error", "warn", "info", "hint", "off"];
    for (id, value) in &g.rules {
        let path = format!("governance.rules.{id}");
        let id_ok = !id.is_empty()
            && id.len() <= 100
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !id_ok {
            errs.push(
                &path,
                format!("`{id}` is not a rule id (letters, digits, `-`, `_`, `.`; at most 100)"),
            );
        }
        match value {
            serde_json::Value::String(s) if SEVERITIES.contains(&s.as_str()) => {}
            serde_json::Value::String(s) => errs.push(
                path,
                format!("unknown severity `{s}`: use {}", SEVERITIES.join(", ")),
            ),
            serde_json::Value::Object(_) => {}
            _ => errs.push(
                path,
                format!(
                    "expected a severity ({}) or a rule definition",
                    SEVERITIES.join(", ")
                ),
            ),
        }
    }
}

/// Retention grows with the granularity: minutes ≥ 1h, hours ≥ minutes, days ≥ hours.
fn check_analytics(a: &crate::document::AnalyticsSettings, errs: &mut Errors) {
    let hour = crate::units::Duration::from_secs(3600);
    if a.minutes < hour {
        errs.push(
            "settings.analytics.minutes",
            "keep per-minute analytics at least 1h (they are rolled into hours)",
        );
    }
    if a.hours < a.minutes {
        errs.push(
            "settings.analytics.hours",
            "hourly analytics must be kept at least as long as per-minute ones",
        );
    }
    if a.days < a.hours {
        errs.push(
            "settings.analytics.days",
            "daily analytics must be kept at least as long as hourly ones",
        );
    }
}

/// Every retention is at least an hour (less would delete what was just written).
fn check_retention(r: &crate::document::RetentionSettings, errs: &mut Errors) {
    let hour = crate::units::Duration::from_secs(3600);
    for (path, d) in [
        ("settings.retention.notices", r.notices),
        (
            "settings.retention.webhook_deliveries",
            r.webhook_deliveries,
        ),
        ("settings.retention.alerts", r.alerts),
        ("settings.retention.access_log", r.access_log),
    ] {
        if d < hour {
            errs.push(path, "keep records at least 1h");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::parse_document;

    fn check(yaml: &str) -> Vec<FieldError> {
        let (doc, _) = parse_document(yaml).expect("parses");
        validate(&doc)
    }

    const BASE: &str = "format_version: 1\nupstreams:\n  - name: svc\n    targets: [{ url: http://127.0.0.1:9001 }]\n";

    #[test]
    fn a_detector_written_in_part_keeps_its_defaults() {
        let yaml = format!(
            "{BASE}settings:\n  detectors:\n    auth_failures: {{ block: 10m }}\n    enumeration: {{ enabled: false }}\n    key_sharing: {{ threshold: 5 }}\n"
        );
        let (doc, _) = parse_document(&yaml).expect("parses");
        assert_eq!(validate(&doc), vec![]);
        let d = &doc.settings.detectors;
        assert_eq!(
            (
                d.auth_failures.threshold,
                d.auth_failures.window.as_millis()
            ),
            (30, 60_000)
        );
        assert_eq!(d.auth_failures.block.as_millis(), 600_000);
        assert!(!d.enumeration.enabled);
        assert_eq!(d.enumeration.threshold, 100);
        assert_eq!(
            (d.key_sharing.threshold, d.key_sharing.window.as_millis()),
            (5, 600_000)
        );
        let bad = format!("{BASE}settings:\n  detectors:\n    enumeration: {{ limit: 3 }}\n");
        assert!(
            parse_document(&bad).is_err(),
            "unknown fields are still refused"
        );
    }

    #[test]
    fn a_valid_document_has_no_errors() {
        let yaml = format!(
            "{BASE}apis:\n  - name: orders\n    versions:\n      - version: v1\n        upstream: svc\n        routes: [{{ path: /v1/orders }}, {{ path: \"=/v1/ping\", methods: [GET] }}]\n"
        );
        assert_eq!(check(&yaml), vec![]);
    }

    #[test]
    fn bad_webhooks_and_subscription_dates_are_named_by_path() {
        let yaml = format!(
            r#"{BASE}apis:
  - name: orders
    versions: [{{ version: v1, upstream: svc }}]
products:
  - name: orders
    apis: [orders@v1]
    plans: [{{ name: basic }}, {{ name: pro }}]
developers: [{{ email: d@x.test }}]
apps: [{{ name: web, owner: d@x.test }}]
subscriptions:
  - app: web
    product: orders
    plan: pro
    started_at: "2026-10-11T00:00:00Z"
    history: [{{ plan: gone, until: "2026-10-01T00:00:00Z" }}]
    ended_at: "yesterday"
webhooks:
  - {{ name: a, url: "http://hooks.example.com/x", events: [invoice.finalized], secret: "0123456789abcdef" }}
  - {{ name: a, url: "https://hooks.example.com/x", events: [invoice.paid], secret: short }}
  - {{ name: ok, url: "http://127.0.0.1:9/x", events: ["*"], secret: "0123456789abcdef" }}
  - {{ name: ok6, url: "http://[::1]:9/x", events: ["*"], secret: "0123456789abcdef" }}
  - {{ name: sneaky, url: "http://127.attacker.example/x", events: ["*"], secret: "sealed:x" }}
"#
        );
        let errs: Vec<(String, String)> = check(&yaml)
            .into_iter()
            .map(|e| (e.path, e.message))
            .collect();
        let paths: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "subscriptions[0].history[0].plan",
                "subscriptions[0].history[0].until",
                "subscriptions[0].ended_at",
                "webhooks[0].url",
                "webhooks[1].name",
                "webhooks[1].events[0]",
                "webhooks[1].secret",
                "webhooks[4].url",
                "webhooks[4].secret",
            ],
            "{errs:?}"
        );
        assert!(errs[1].1.contains("before started_at"), "{}", errs[1].1);
        assert!(errs[3].1.contains("loopback"), "{}", errs[3].1);
    }

    #[test]
    fn analytics_retention_grows_with_granularity() {
        assert_eq!(check(BASE), vec![]);
        let yaml =
            format!("{BASE}settings:\n  analytics: {{ minutes: 30m, hours: 1d, days: 12h }}\n");
        let paths: Vec<String> = check(&yaml).into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            ["settings.analytics.minutes", "settings.analytics.days"]
        );
        let yaml = format!("{BASE}settings:\n  analytics: {{ minutes: 3d }}\n");
        let paths: Vec<String> = check(&yaml).into_iter().map(|e| e.path).collect();
        assert_eq!(paths, Vec::<String>::new(), "hours default to 90 days");
    }

    #[test]
    fn retention_is_at_least_an_hour() {
        let yaml = format!("{BASE}settings:\n  retention: {{ notices: 30m, alerts: 2d }}\n");
        let paths: Vec<String> = check(&yaml).into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["settings.retention.notices"]);
    }

    #[test]
    fn unknown_upstream_is_named_with_its_path() {
        let yaml = format!(
            "{BASE}apis:\n  - name: orders\n    versions:\n      - version: v1\n        upstream: nope\n"
        );
        let errs = check(&yaml);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "apis[0].versions[0].upstream");
        assert!(errs[0].message.contains("unknown upstream `nope`"));
    }

    #[test]
    fn conflicting_routes_are_rejected() {
        let yaml = format!(
            "{BASE}apis:\n  - name: a\n    versions:\n      - version: v1\n        upstream: svc\n        routes: [{{ path: /x }}]\n  - name: b\n    versions:\n      - version: v1\n        upstream: svc\n        routes: [{{ path: /x, methods: [GET] }}]\n"
        );
        let errs = check(&yaml);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].message.contains("conflicts"), "{errs:?}");
    }

    #[test]
    fn many_errors_are_reported_at_once() {
        let yaml = "format_version: 2\nupstreams:\n  - name: Bad Name\n    targets: [{ url: ftp://x }]\n    balance: hash\n";
        let errs = check(yaml);
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"format_version"));
        assert!(paths.contains(&"upstreams[0].name"));
        assert!(paths.contains(&"upstreams[0].targets[0].url"));
        assert!(paths.contains(&"upstreams[0].hash_on"));
    }

    #[test]
    fn target_urls() {
        assert!(check_target_url("http://127.0.0.1:9001").is_ok());
        assert!(check_target_url("http://svc.internal").is_ok());
        assert!(check_target_url("http://[::1]:80/").is_ok());
        assert!(check_target_url("http://x:0").is_err());
        assert!(
            check_target_url("http://::1").is_err(),
            "bare IPv6 cannot be served"
        );
        assert!(check_target_url("http://x:99999").is_err());
        assert!(check_target_url("http://x/path").is_err());
        assert!(check_target_url("https://x").is_ok());
        assert!(check_target_url("ftp://x").is_err());
    }

    #[test]
    fn identities_are_checked() {
        let errs = check(&format!(
            "{BASE}developers:\n  - email: dev@acme.test\n  - email: not-an-email\napps:\n  - name: web\n    owner: nobody@acme.test\n    keys:\n      - secret: short\n      - id: abc\n    basic:\n      - {{ username: 'a:b', password: longenough }}\n  - name: web\n    owner: dev@acme.test\n    jwt_subjects: [x]\n  - name: other\n    owner: dev@acme.test\n    jwt_subjects: [x]\n"
        ));
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for expected in [
            "developers[1].email",
            "apps[0].owner",
            "apps[0].keys[0].secret",
            "apps[0].keys[1]",
            "apps[0].basic[0].username",
            "apps[1].name",
            "apps[2].jwt_subjects[0]",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {errs:?}"
            );
        }
    }

    #[test]
    fn auth_policies_are_checked() {
        let errs = check(&format!(
            "{BASE}policies:\n  - jwt: {{ keys: [{{ secret: s3cret, alg: RS256 }}] }}\n  - authorize: {{ cedar: 'permit(principal, action, resource) when {{ ' }}\n  - cors: {{ origins: ['*'], credentials: true }}\n  - acl: {{}}\n"
        ));
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for expected in [
            "policies[0].jwt.keys[0].alg",
            "policies[1].authorize.cedar",
            "policies[2].cors.credentials",
            "policies[3].acl",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {errs:?}"
            );
        }
        let cedar = errs.iter().find(|e| e.path.ends_with("cedar")).unwrap();
        assert!(cedar.message.contains("line 1"), "{}", cedar.message);
    }
}
