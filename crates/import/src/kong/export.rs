//! A Tollgate document → decK 3.0.
//!
//! - Each upstream becomes a Kong upstream of the same name (targets `host:port`, weights,
//!   balancing, health checks); its timeouts and retries go to the services that use it.
//! - Each version becomes a service (`host` is the upstream), tagged `tollgate-api:API` and
//!   `tollgate-version:V`, with its routes nested; version policies are its plugins, API
//!   policies too, tagged `tollgate-scope:api`.
//! - Global policies are global plugins; apps are consumers with their credentials; the
//!   owner's email rides on a `tollgate-owner:EMAIL` tag.

use serde_json::{Map, Value, json};
use tollgate_model::policy::Policy;
use tollgate_model::{Document, Upstream};

use super::{
    Grouped, PLACEHOLDER_DOMAIN, TAG_API, TAG_NAME, TAG_OWNER, TAG_SCOPE_API, TAG_UNNAMED,
    TAG_VERSION, paths,
};
use crate::{ImportError, Report};

mod identity;
mod policies;

const STRING_PREFIX: &str = "Kong matches plain paths as string prefixes: `/a` also matches `/ab` (a Tollgate route matches `/a` and `/a/…` only)";
const PASSIVE_COOLDOWN: &str = "Kong keeps a target that passive checks took out until an active check or an operator brings it back (Tollgate retries it after its cooldown)";

/// What a Kong service takes from the upstream it uses.
#[derive(Clone)]
struct ServiceSide {
    protocol: &'static str,
    port: u16,
    timeouts: [u64; 3],
    retries: u32,
}

struct Exporter {
    report: Report,
    g: Grouped,
    /// The JWT key the consumers' jwt_secrets carry (from the first jwt policy).
    jwt_key: Option<tollgate_model::policy::JwtKey>,
    /// Kong route names used so far (they are unique in Kong).
    route_names: Vec<String>,
    /// The global policies.
    global: Vec<Policy>,
    /// API policies a service carries: (API place, index).
    api_carried: Vec<(String, usize)>,
}

pub(super) fn run(doc: &Document) -> Result<(Value, Report), ImportError> {
    let mut x = Exporter {
        report: Report::default(),
        g: Grouped::default(),
        jwt_key: None,
        route_names: Vec::new(),
        global: doc.policies.clone(),
        api_carried: Vec::new(),
    };
    let whole = serde_json::to_value(doc)
        .map_err(|e| ImportError(format!("the configuration cannot be read: {e}")))?;
    for (key, v) in whole.as_object().into_iter().flatten() {
        let handled = [
            "format_version",
            "upstreams",
            "apis",
            "policies",
            "developers",
            "apps",
            "certificates",
        ];
        if !handled.contains(&key.as_str()) {
            let n = v.as_array().map_or(String::new(), |a| {
                format!(" ({} item{})", a.len(), if a.len() == 1 { "" } else { "s" })
            });
            x.report.unsupported(
                key.clone(),
                format!("Kong has no equivalent of Tollgate's `{key}`{n}"),
            );
        }
    }
    let mut out = Map::new();
    out.insert("_format_version".into(), json!("3.0"));

    let mut upstreams = Vec::new();
    let mut sides: Vec<(String, ServiceSide)> = Vec::new();
    let mut targets = 0;
    for (i, up) in doc.upstreams.iter().enumerate() {
        let (kong, side) = x.upstream(i, up);
        targets += up.targets.len();
        upstreams.push(kong);
        sides.push((up.name.clone(), side));
    }

    // The consumers' jwt_secrets carry the key of the first jwt policy (global ones first).
    let global = x.plugins(&doc.policies, "policies", &[], None);
    let mut services = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut routes = 0;
    let mut plugins = global.len();
    for (a, api) in doc.apis.iter().enumerate() {
        let at = format!("apis[{a}]");
        for (field, set) in [
            ("title", api.title.is_some()),
            ("description", api.description.is_some()),
            ("team", api.team.is_some()),
            ("visibility", api.visibility != Default::default()),
            ("access_log", api.access_log.is_some()),
            ("versioning", api.versioning.is_some()),
        ] {
            if set {
                x.report.unsupported(
                    format!("{at}.{field}"),
                    format!("Kong services have no `{field}`"),
                );
            }
        }
        for (v, version) in api.versions.iter().enumerate() {
            let vat = format!("{at}.versions[{v}]");
            let Some((_, side)) = sides.iter().find(|(n, _)| *n == version.upstream) else {
                x.report
                    .unsupported(vat, format!("unknown upstream `{}`", version.upstream));
                continue;
            };
            let base = if api.versions.len() == 1 {
                api.name.clone()
            } else {
                format!("{}-{}", api.name, version.version)
            };
            let name = super::unique(&base, |n| names.iter().any(|x| x == n));
            names.push(name.clone());
            let svc = x.service(&name, api, version, &vat, side.clone(), &at);
            routes += svc["routes"].as_array().map_or(0, Vec::len);
            plugins += svc["plugins"].as_array().map_or(0, Vec::len)
                + svc["routes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| r["plugins"].as_array().map_or(0, Vec::len))
                    .sum::<usize>();
            services.push(svc);
        }
    }
    for (a, api) in doc.apis.iter().enumerate() {
        let at = format!("apis[{a}]");
        for (i, p) in api.policies.iter().enumerate() {
            if !x.api_carried.contains(&(at.clone(), i)) {
                x.report.unsupported(
                    format!("{at}.policies[{i}]"),
                    format!("every version has its own `{}` (or its own authentication), and a Kong service holds one plugin of a name: the API's has no place", p.kind()),
                );
            }
        }
    }
    for (name, side) in &sides {
        let used = doc
            .apis
            .iter()
            .flat_map(|a| &a.versions)
            .any(|v| v.upstream == *name);
        let defaults = ServiceSide::tollgate_default();
        if !used && (side.timeouts != defaults.timeouts || side.retries != defaults.retries) {
            let i = doc
                .upstreams
                .iter()
                .position(|u| u.name == *name)
                .unwrap_or(0);
            x.report.unsupported(
                format!("upstreams[{i}]"),
                "no version has it as its upstream, so no Kong service carries its timeouts and retries",
            );
        }
        if !used && side.protocol == "https" {
            let i = doc
                .upstreams
                .iter()
                .position(|u| u.name == *name)
                .unwrap_or(0);
            x.g.add(
                format!("upstreams[{i}]"),
                "no version has it as its upstream: Kong targets carry no scheme, so it imports back with http:// targets",
            );
        }
    }

    let (consumers, credentials) = x.consumers(doc);
    let certificates = x.certificates(doc);

    for (key, list) in [
        ("services", services),
        ("upstreams", upstreams),
        ("consumers", consumers.clone()),
        ("plugins", global),
        ("certificates", certificates.clone()),
    ] {
        if !list.is_empty() {
            out.insert(key.into(), Value::Array(list));
        }
    }
    let r = &mut x.report;
    r.count("services", names.len());
    r.count("routes", routes);
    r.count("upstreams", doc.upstreams.len());
    r.count("targets", targets);
    r.count("plugins", plugins);
    if !consumers.is_empty() {
        r.count("consumers", consumers.len());
        r.count("credentials", credentials);
    }
    if !certificates.is_empty() {
        r.count("certificates", certificates.len());
    }
    let g = std::mem::take(&mut x.g);
    g.flush(&mut x.report);
    Ok((Value::Object(out), x.report))
}

impl ServiceSide {
    fn tollgate_default() -> ServiceSide {
        let t = tollgate_model::Timeouts::default();
        ServiceSide {
            protocol: "http",
            port: 80,
            timeouts: [
                t.connect.as_millis(),
                t.read.as_millis(),
                t.write.as_millis(),
            ],
            retries: 1,
        }
    }
}

/// `scheme://host[:port]` → (scheme, `host:port`).
fn split_target(url: &str) -> Option<(&str, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.trim_end_matches('/');
    let default = if scheme == "https" { 443 } else { 80 };
    let has_port = match authority.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => authority.contains(':'),
    };
    Some((
        scheme,
        if has_port {
            authority.to_string()
        } else {
            format!("{authority}:{default}")
        },
    ))
}

impl Exporter {
    fn upstream(&mut self, i: usize, up: &Upstream) -> (Value, ServiceSide) {
        let at = format!("upstreams[{i}]");
        let mut k = Map::new();
        k.insert("name".into(), json!(up.name));
        let mut scheme = None;
        let mut targets = Vec::new();
        for (t, target) in up.targets.iter().enumerate() {
            let Some((s, hp)) = split_target(&target.url) else {
                continue;
            };
            match scheme {
                None => scheme = Some(s.to_string()),
                Some(ref first) if first != s => self.report.unsupported(
                    format!("{at}.targets[{t}]"),
                    format!("a `{s}` target next to `{first}` ones: a Kong service speaks one protocol to all targets of its upstream"),
                ),
                Some(_) => {}
            }
            targets.push(json!({ "target": hp, "weight": target.weight }));
        }
        let protocol = if scheme.as_deref() == Some("https") {
            "https"
        } else {
            "http"
        };
        use tollgate_model::document::{Balance, HashOn};
        match up.balance {
            Balance::RoundRobin => {
                k.insert("algorithm".into(), json!("round-robin"));
            }
            Balance::LeastConn => {
                k.insert("algorithm".into(), json!("least-connections"));
            }
            Balance::Random => {
                self.report.unsupported(
                    format!("{at}.balance"),
                    "random balancing: Kong balances round-robin, by least connections or by hash (round-robin is written)",
                );
                k.insert("algorithm".into(), json!("round-robin"));
            }
            Balance::Hash => {
                k.insert("algorithm".into(), json!("consistent-hashing"));
                match &up.hash_on {
                    Some(HashOn::Header(h)) => {
                        k.insert("hash_on".into(), json!("header"));
                        k.insert("hash_on_header".into(), json!(h));
                    }
                    Some(HashOn::Cookie(c)) => {
                        k.insert("hash_on".into(), json!("cookie"));
                        k.insert("hash_on_cookie".into(), json!(c));
                    }
                    Some(HashOn::Ip) => {
                        k.insert("hash_on".into(), json!("ip"));
                    }
                    Some(HashOn::App) | None => {
                        k.insert("hash_on".into(), json!("consumer"));
                    }
                }
            }
        }
        let mut checks = Map::new();
        if let Some(a) = &up.health.active {
            let secs = |d: tollgate_model::Duration| d.as_millis() as f64 / 1000.0;
            checks.insert(
                "active".into(),
                json!({
                    "type": protocol,
                    "http_path": a.path,
                    "timeout": secs(a.timeout),
                    "healthy": { "interval": secs(a.interval), "successes": a.healthy },
                    "unhealthy": {
                        "interval": secs(a.interval),
                        "http_failures": a.unhealthy,
                        "tcp_failures": a.unhealthy,
                        "timeouts": a.unhealthy,
                    },
                }),
            );
        }
        if let Some(p) = &up.health.passive {
            checks.insert(
                "passive".into(),
                json!({ "type": "http", "unhealthy": {
                    "http_failures": p.unhealthy,
                    "tcp_failures": p.unhealthy,
                    "timeouts": p.unhealthy,
                }}),
            );
            if p.cooldown.as_millis() != 10_000 {
                self.report.unsupported(
                    format!("{at}.health.passive.cooldown"),
                    "Kong has no cooldown: a target passive checks took out stays out",
                );
            } else if up.health.active.is_none() {
                self.g.add(format!("{at}.health.passive"), PASSIVE_COOLDOWN);
            }
        }
        if !checks.is_empty() {
            k.insert("healthchecks".into(), Value::Object(checks));
        }
        k.insert("targets".into(), Value::Array(targets));
        for (field, set) in [
            ("protocol", up.protocol != Default::default()),
            ("tls", up.tls != Default::default()),
            ("limits", up.limits != Default::default()),
        ] {
            if set {
                let why = match field {
                    "protocol" => "h2c (HTTP/2 without TLS) to the targets",
                    "tls" => {
                        "CA, client certificate and server name for https:// targets (Kong keeps them on services and as certificate entities)"
                    }
                    _ => "concurrency and spike arrest limits per upstream",
                };
                self.report.unsupported(format!("{at}.{field}"), why);
            }
        }
        let side = ServiceSide {
            protocol,
            port: if protocol == "https" { 443 } else { 80 },
            timeouts: [
                up.timeouts.connect.as_millis(),
                up.timeouts.read.as_millis(),
                up.timeouts.write.as_millis(),
            ],
            retries: up.retries,
        };
        (Value::Object(k), side)
    }

    fn service(
        &mut self,
        name: &str,
        api: &tollgate_model::Api,
        version: &tollgate_model::Version,
        at: &str,
        side: ServiceSide,
        api_at: &str,
    ) -> Value {
        use tollgate_model::VersionStatus;
        let mut s = Map::new();
        s.insert("name".into(), json!(name));
        s.insert("protocol".into(), json!(side.protocol));
        s.insert("host".into(), json!(version.upstream));
        s.insert("port".into(), json!(side.port));
        s.insert("connect_timeout".into(), json!(side.timeouts[0]));
        s.insert("read_timeout".into(), json!(side.timeouts[1]));
        s.insert("write_timeout".into(), json!(side.timeouts[2]));
        s.insert("retries".into(), json!(side.retries));
        match version.status {
            VersionStatus::Published => {}
            VersionStatus::Draft => {
                s.insert("enabled".into(), json!(false));
            }
            VersionStatus::Deprecated => self.report.unsupported(
                format!("{at}.status"),
                "a deprecated version: Kong sends no Deprecation, Sunset or Link headers (exported as served)",
            ),
            VersionStatus::Retired => {
                self.report.unsupported(
                    format!("{at}.status"),
                    "a retired version: Kong has no 410 answer naming the successor (exported as a disabled service)",
                );
                s.insert("enabled".into(), json!(false));
            }
        }
        for (field, set) in [
            ("deprecated_at", version.deprecated_at.is_some()),
            ("sunset_at", version.sunset_at.is_some()),
            ("successor", version.successor.is_some()),
            ("deprecation_notice", version.deprecation_notice.is_some()),
            ("brownouts", !version.brownouts.is_empty()),
            ("spec", version.spec.is_some()),
        ] {
            if set {
                self.report.unsupported(
                    format!("{at}.{field}"),
                    format!("Kong services have no `{field}`"),
                );
            }
        }
        s.insert(
            "tags".into(),
            json!([
                format!("{TAG_API}{}", api.name),
                format!("{TAG_VERSION}{}", version.version)
            ]),
        );
        // API policies go on the service too (tagged), except the kinds the version has:
        // Kong allows one plugin of a name on a service, and the version's wins in Tollgate.
        let own: Vec<&str> = version
            .policies
            .iter()
            .filter_map(policies::plugin_name)
            .collect();
        let own_auth = version.policies.iter().any(Policy::is_authentication);
        let api_policies: Vec<Policy> = api
            .policies
            .iter()
            .filter(|p| {
                !(own_auth && p.is_authentication())
                    && policies::plugin_name(p).is_none_or(|n| !own.contains(&n))
            })
            .cloned()
            .collect();
        // Authentication: Kong runs every plugin it finds; Tollgate the narrowest scope's.
        let names = |ps: &[Policy]| -> Vec<&'static str> {
            let mut n: Vec<&'static str> = ps
                .iter()
                .filter(|p| p.is_authentication())
                .filter_map(policies::plugin_name)
                .collect();
            n.sort_unstable();
            n.dedup();
            n
        };
        let service_kong: Vec<&'static str> = {
            let mut all = names(&version.policies);
            all.extend(names(&api_policies));
            all.extend(names(&self.global));
            all.sort_unstable();
            all.dedup();
            all
        };
        let service_tollgate = [&version.policies, &api.policies, &self.global]
            .iter()
            .map(|ps| names(ps))
            .find(|n| !n.is_empty())
            .unwrap_or_default();
        if service_kong != service_tollgate {
            self.report.unsupported(
                format!("{at} (authentication)"),
                format!(
                    "Tollgate accepts {} here; Kong would run and require {}",
                    or_none(&service_tollgate),
                    service_kong.join(" and ")
                ),
            );
        }
        let global = self.global.clone();
        let routes = self.routes(name, version, at, api_at, &api.policies, &service_kong);
        if !routes.is_empty() {
            s.insert("routes".into(), Value::Array(routes));
        }
        let api_place = format!("{api_at}.policies");
        let mut plugins = self.plugins(
            &version.policies,
            &format!("{at}.policies"),
            &[(&api_place, &api.policies), ("policies", &global)],
            None,
        );
        for mut p in self.plugins(&api_policies, &api_place, &[("policies", &global)], None) {
            let mut tags = p["tags"].as_array().cloned().unwrap_or_default();
            tags.insert(0, json!(TAG_SCOPE_API));
            p["tags"] = Value::Array(tags);
            plugins.push(p);
        }
        for (i, p) in api.policies.iter().enumerate() {
            if api_policies.contains(p) {
                self.api_carried.push((api_at.to_string(), i));
            }
        }
        if !plugins.is_empty() {
            s.insert("plugins".into(), Value::Array(plugins));
        }
        Value::Object(s)
    }

    fn routes(
        &mut self,
        service: &str,
        version: &tollgate_model::Version,
        at: &str,
        api_at: &str,
        api_policies: &[Policy],
        service_auth: &[&'static str],
    ) -> Vec<Value> {
        let global = self.global.clone();
        let mut out: Vec<(Value, Vec<usize>)> = Vec::new();
        for (k, route) in version.routes.iter().enumerate() {
            let rat = format!("{at}.routes[{k}]");
            let mut r = Map::new();
            let mut policies = route.policies.clone();
            // `preserve_host`: a transform that only sends the route's one host.
            let mut preserve = false;
            if route.hosts.len() == 1 && !route.hosts[0].starts_with("*.") {
                for p in &mut policies {
                    if let Policy::RequestTransform(t) = p
                        && t.headers.set.get("host") == Some(&route.hosts[0])
                    {
                        t.headers.set.shift_remove("host");
                        preserve = true;
                    }
                }
                policies.retain(
                    |p| !matches!(p, Policy::RequestTransform(t) if *t == Default::default()),
                );
            }
            if let Some(n) = &route.name {
                r.insert("name".into(), json!(n));
            }
            let path = paths::to_kong(&route.path);
            if !path.starts_with('~') && route.path != "/" {
                self.g.add(format!("{rat}.path"), STRING_PREFIX);
            }
            r.insert("paths".into(), json!([path]));
            if !route.methods.is_empty() {
                r.insert("methods".into(), json!(route.methods));
            }
            if !route.hosts.is_empty() {
                r.insert("hosts".into(), json!(route.hosts));
            }
            let mut headers = Map::new();
            for (name, value) in &route.headers {
                if name.starts_with('!') || name.starts_with('?') {
                    self.report.unsupported(
                        format!("{rat}.headers.{name}"),
                        "conditions on an absent header or on a query parameter: Kong routes match present headers only",
                    );
                } else {
                    headers.insert(name.clone(), json!([value]));
                }
            }
            if !headers.is_empty() {
                r.insert("headers".into(), Value::Object(headers));
            }
            r.insert("strip_path".into(), json!(route.strip_prefix));
            if preserve {
                r.insert("preserve_host".into(), json!(true));
            }
            let params: Vec<String> = tollgate_model::policy::placeholders(&route.path)
                .map(|p| p.into_iter().map(str::to_string).collect())
                .unwrap_or_default();
            let mut auth: Vec<&'static str> = policies
                .iter()
                .filter(|p| p.is_authentication())
                .filter_map(policies::plugin_name)
                .collect();
            if !auth.is_empty() {
                let mut kong = auth.clone();
                kong.extend(service_auth.iter().copied());
                kong.sort_unstable();
                kong.dedup();
                auth.sort_unstable();
                auth.dedup();
                if kong != auth {
                    self.report.unsupported(
                        format!("{rat} (authentication)"),
                        format!(
                            "Tollgate accepts {} on this route; Kong would run and require {}",
                            or_none(&auth),
                            kong.join(" and ")
                        ),
                    );
                }
            }
            let plugins = self.plugins(
                &policies,
                &format!("{rat}.policies"),
                &[
                    (&format!("{at}.policies"), &version.policies),
                    (&format!("{api_at}.policies"), api_policies),
                    ("policies", &global),
                ],
                Some(&params),
            );
            if !plugins.is_empty() {
                r.insert("plugins".into(), Value::Array(plugins));
            }
            // Routes that differ only in their path are one Kong route with several paths.
            let mergeable = route.name.is_some();
            if let Some((prev, _)) = out
                .last_mut()
                .filter(|(p, _)| mergeable && same_but_paths(p, &Value::Object(r.clone())))
            {
                if let Some(list) = prev["paths"].as_array_mut() {
                    list.push(json!(path));
                }
                continue;
            }
            out.push((Value::Object(r), vec![k]));
        }
        out.into_iter()
            .map(|(mut r, first)| {
                if r.get("name").is_none() {
                    // decK tells routes apart by name: a made-up one, which an import drops.
                    let base = format!("{service}-{}", first[0] + 1);
                    let name = super::unique(&base, |n| self.route_names.iter().any(|x| x == n));
                    let mut named = Map::new();
                    named.insert("name".into(), json!(name));
                    named.extend(r.as_object().cloned().unwrap_or_default());
                    named.insert("tags".into(), json!([TAG_UNNAMED]));
                    self.route_names.push(name);
                    return Value::Object(named);
                }
                if let Some(name) = r["name"].as_str().map(str::to_string) {
                    let fixed = kong_name(&name);
                    let fixed = super::unique(&fixed, |n| self.route_names.iter().any(|x| x == n));
                    if fixed != name {
                        self.g.add(
                            format!("{at}.routes"),
                            "route names renamed for Kong (unique; letters, digits, `.`, `-`, `_`, `~`)",
                        );
                        r["name"] = json!(fixed);
                    }
                    self.route_names.push(fixed);
                }
                r
            })
            .collect()
    }
}

/// `a or b`, or `no credential`.
fn or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "callers without a credential".to_string()
    } else {
        format!("any one of {}", names.join(", "))
    }
}

fn same_but_paths(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut m = v.as_object().cloned().unwrap_or_default();
        m.remove("paths");
        m
    };
    strip(a) == strip(b)
}

/// A Kong entity name: letters, digits, `.`, `-`, `_`, `~`.
fn kong_name(name: &str) -> String {
    let out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_~".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.is_empty() {
        "route".to_string()
    } else {
        out
    }
}
