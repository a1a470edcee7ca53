//! Kong declarative configuration → a Tollgate document (see the module docs of `kong`).

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::plugins::JwtKeys;
use super::{
    Grouped, PLACEHOLDER_DOMAIN, TAG_API, TAG_INHERITED, TAG_NAME, TAG_OWNER, TAG_SCOPE_API,
    TAG_UNNAMED, TAG_VERSION, get, get_bool, get_num, get_str, has_foreign_tags, list, name_slug,
    strings, tag_value, tags, unique,
};
use crate::{ImportError, Imported, Report};

mod assemble;
mod identity;
mod services;

const TAGS: &str = "Kong tags are not kept (Tollgate entities have none)";
const PRESERVE_HOST: &str = "`preserve_host`: a request_transform sends the route's host upstream as `Host` (a port the client wrote after it is not kept)";
const DISABLED: &str = "disabled in Kong: not imported";
const PLACEHOLDER: &str = "consumers have no email: each app's developer has a made-up address (`APP@kong.invalid`); set real ones";
const RENAMED: &str = "renamed to a Tollgate name (lower-case letters, digits, `-` and `_`)";
const TLS_VERIFY: &str = "Tollgate verifies the certificates of https:// targets (Kong does so only with `tls_verify: true`)";
const CONSUMER_HEADERS: &str = "the upstream gets `X-Tollgate-App` and `X-Tollgate-Developer` instead of Kong's `X-Consumer-*` and `X-Credential-Identifier` headers";
const PASSIVE: &str = "passive health checks: a target taken out is tried again after 10s (Kong keeps it out until an active check or an operator brings it back)";
const HEALTH_APPROX: &str = "active health checks: one probe interval and one failure count for all kinds of failure (Kong counts HTTP failures, TCP failures and timeouts apart); 2xx and 3xx answers are healthy";

/// Fields of a service, route, … that carry no behaviour (ids, timestamps, buffering).
const INERT: &[&str] = &["id", "created_at", "updated_at", "tags"];

/// Reads the format version: `true` for the formats before 3.0.
fn format_version(root: &Map<String, Value>) -> Result<bool, ImportError> {
    let v = match root.get("_format_version") {
        None => {
            let hint = if root.contains_key("openapi") || root.contains_key("swagger") {
                " (this looks like an OpenAPI document: use `tollgate import openapi`)"
            } else if root.contains_key("format_version") {
                " (this looks like a Tollgate configuration already)"
            } else {
                " (decK files start with `_format_version: \"3.0\"`)"
            };
            return Err(ImportError(format!(
                "not a Kong declarative configuration: `_format_version` is missing{hint}"
            )));
        }
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.as_f64().map(|f| format!("{f:?}")).unwrap_or_default(),
        Some(other) => other.to_string(),
    };
    let two = v
        .strip_prefix("2.")
        .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()));
    match v.as_str() {
        "1.1" => Ok(true),
        "3.0" => Ok(false),
        _ if two => Ok(true),
        _ => Err(ImportError(format!(
            "`_format_version` \"{v}\" is not supported: Kong declarative configuration 1.1, 2.x and 3.0 is"
        ))),
    }
}

/// A reference to another entity: a name or id, or `{ id | name | username: … }`.
fn reference(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(_) => ["id", "name", "username"]
            .iter()
            .find_map(|k| get_str(v, k).map(str::to_string)),
        _ => None,
    }
}

struct Service<'a> {
    at: String,
    v: &'a Value,
    /// Where it went: (API index, version index); `None` when not imported.
    made: Option<(usize, usize)>,
    /// Its path, when not `/`: it goes before every forwarded path.
    path: Option<String>,
    /// Whether a route had to forward without that path.
    path_lost: bool,
}

struct Route<'a> {
    at: String,
    v: &'a Value,
    service: Option<usize>,
    /// Why the service reference did not resolve.
    orphan: Option<String>,
    imported: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Scope {
    Global,
    Service(usize),
    Route(usize),
}

struct Plugin<'a> {
    at: String,
    v: &'a Value,
    name: String,
    service: Option<Result<usize, String>>,
    route: Option<Result<usize, String>>,
    consumer: Option<String>,
}

/// A Kong upstream, read once.
struct KongUpstream<'a> {
    at: String,
    v: &'a Value,
    name: String,
    /// Tollgate name (reserved up front).
    slug: String,
    /// `(host:port, weight)`.
    targets: Vec<(String, u32)>,
    /// balance, hash_on, health.
    settings: Map<String, Value>,
    usable: bool,
    used: bool,
}

/// A plugin that became policies, and where they go.
struct Placed {
    plugin: usize,
    scope: Scope,
    policies: Vec<Value>,
    /// A service plugin tagged `tollgate-scope:api`: the policies belong to the API.
    api_scope: bool,
}

struct RouteOut {
    route: Map<String, Value>,
    /// Index of the Kong route.
    kong: usize,
    policies: Vec<Value>,
    /// `Host` to send upstream (`preserve_host`).
    host: Option<String>,
    /// Upstream path (the service's path on an exact route).
    path: Option<String>,
}

struct VersionOut {
    version: String,
    draft: bool,
    upstream: String,
    routes: Vec<RouteOut>,
    policies: Vec<Value>,
}

struct ApiOut {
    name: String,
    policies: Vec<Value>,
    versions: Vec<VersionOut>,
}

struct Builder<'a> {
    legacy: bool,
    report: Report,
    g: Grouped,
    services: Vec<Service<'a>>,
    routes: Vec<Route<'a>>,
    plugins: Vec<Plugin<'a>>,
    consumers: Vec<(String, &'a Value)>,
    /// Top-level credentials: (kind, place, value).
    loose_credentials: Vec<(&'static str, String, &'a Value)>,
    kong_upstreams: Vec<KongUpstream<'a>>,
    certificates: Vec<(String, &'a Value)>,
    snis: Vec<(String, &'a Value)>,
    /// Tollgate upstreams: (key, body).
    upstreams: Vec<(String, Value)>,
    reserved: HashSet<String>,
    apis: Vec<ApiOut>,
    policies: Vec<Value>,
    developers: Vec<Value>,
    apps: Vec<Value>,
    credentials: usize,
    certs_out: Vec<Value>,
    transform_hashed: bool,
    placed: Vec<Placed>,
}

pub(super) fn run(text: &str) -> Result<Imported, ImportError> {
    let doc = crate::parse(text)?;
    let Some(root) = doc.as_object() else {
        return Err(ImportError(
            "not a Kong declarative configuration: the top level is not a map".into(),
        ));
    };
    let legacy = format_version(root)?;
    let mut b = Builder {
        legacy,
        report: Report::default(),
        g: Grouped::default(),
        services: Vec::new(),
        routes: Vec::new(),
        plugins: Vec::new(),
        consumers: Vec::new(),
        loose_credentials: Vec::new(),
        kong_upstreams: Vec::new(),
        certificates: Vec::new(),
        snis: Vec::new(),
        upstreams: Vec::new(),
        reserved: HashSet::new(),
        apis: Vec::new(),
        policies: Vec::new(),
        developers: Vec::new(),
        apps: Vec::new(),
        credentials: 0,
        certs_out: Vec::new(),
        transform_hashed: false,
        placed: Vec::new(),
    };
    b.collect(root);
    b.map_upstreams();
    let jwt = b.map_consumers();
    b.map_services();
    b.map_routes();
    b.map_plugins(&jwt);
    b.map_certificates();
    b.finish()
}

impl<'a> Builder<'a> {
    fn unsupported(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.report.unsupported(at, message);
    }

    /// Names the fields of `v` that are neither handled nor inert.
    fn unknown_fields(&mut self, at: &str, v: &Value, known: &[&str]) {
        let Some(map) = v.as_object() else { return };
        for (k, x) in map {
            let empty = x.is_null()
                || x.as_array().is_some_and(Vec::is_empty)
                || x.as_object().is_some_and(Map::is_empty);
            if empty || known.contains(&k.as_str()) || INERT.contains(&k.as_str()) {
                continue;
            }
            self.report.unsupported(
                format!("{at}.{k}"),
                format!("`{k}` has no Tollgate equivalent"),
            );
        }
        if has_foreign_tags(v) {
            self.g.add(format!("{at}.tags"), TAGS);
        }
    }

    /// Reads every entity and where it hangs, and names the sections Tollgate has nothing for.
    fn collect(&mut self, root: &'a Map<String, Value>) {
        for (key, v) in root {
            if v.is_null() {
                continue;
            }
            match key.as_str() {
                "_format_version" | "services" | "routes" | "upstreams" | "consumers"
                | "plugins" | "certificates" | "snis" => {}
                "_transform" => self.transform_hashed = v.as_bool() == Some(false),
                "_workspace" | "_konnect" => self.g.add(
                    key.clone(),
                    "Tollgate has no workspaces or control planes: everything is imported into one configuration",
                ),
                "_info" => {
                    if get(v, "defaults").is_some() {
                        self.unsupported("_info.defaults", "decK defaults are not applied: write the fields on the entities");
                    }
                }
                "keyauth_credentials" | "basicauth_credentials" | "jwt_secrets" | "acls" => {
                    let kind: &'static str = match key.as_str() {
                        "keyauth_credentials" => "keyauth_credentials",
                        "basicauth_credentials" => "basicauth_credentials",
                        "jwt_secrets" => "jwt_secrets",
                        _ => "acls",
                    };
                    for (i, c) in v.as_array().into_iter().flatten().enumerate() {
                        self.loose_credentials.push((kind, format!("{key}[{i}]"), c));
                    }
                }
                other => {
                    let what = match other {
                        "vaults" => "secret vaults: Tollgate seals secrets itself and reads no vault references",
                        "consumer_groups" => "consumer groups: give apps `groups` and use acl, or plans in products for limits per group",
                        "ca_certificates" => "CA certificates as entities: put the PEM in an upstream's `tls.ca` or `settings.tls.client_ca`",
                        "keys" | "key_sets" => "key entities: give a jwt policy its keys or a jwks_url",
                        _ => "Tollgate has no equivalent of this section",
                    };
                    let n = v.as_array().map_or(1, Vec::len);
                    self.unsupported(other.to_string(), format!("{what} ({n} item{})", if n == 1 { "" } else { "s" }));
                }
            }
        }
        for (i, s) in list_of(root, "services").iter().enumerate() {
            let at = format!("services[{i}]");
            for (k, r) in list(s, "routes").iter().enumerate() {
                let rat = format!("{at}.routes[{k}]");
                self.plugins_of(r, &rat, None, Some(Ok(self.routes.len())), None);
                self.routes.push(Route {
                    at: rat,
                    v: r,
                    service: Some(i),
                    orphan: None,
                    imported: false,
                });
            }
            self.plugins_of(s, &at, Some(Ok(i)), None, None);
            self.services.push(Service {
                at,
                v: s,
                made: None,
                path: None,
                path_lost: false,
            });
        }
        for (j, r) in list_of(root, "routes").iter().enumerate() {
            let at = format!("routes[{j}]");
            let (service, orphan) = match get(r, "service").and_then(reference) {
                Some(name) => match self.find_service(&name) {
                    Some(i) => (Some(i), None),
                    None => (None, Some(format!("service `{name}` is not in the file"))),
                },
                None => (None, None),
            };
            self.plugins_of(r, &at, None, Some(Ok(self.routes.len())), None);
            self.routes.push(Route {
                at,
                v: r,
                service,
                orphan,
                imported: false,
            });
        }
        for (c, consumer) in list_of(root, "consumers").iter().enumerate() {
            let at = format!("consumers[{c}]");
            let name = get_str(consumer, "username")
                .or_else(|| get_str(consumer, "custom_id"))
                .unwrap_or("")
                .to_string();
            self.plugins_of(
                consumer,
                &at,
                None,
                None,
                Some(if name.is_empty() { at.clone() } else { name }),
            );
            self.consumers.push((at, consumer));
        }
        for (p, plugin) in list_of(root, "plugins").iter().enumerate() {
            self.push_plugin(plugin, format!("plugins[{p}]"), None, None, None);
        }
        for (u, up) in list_of(root, "upstreams").iter().enumerate() {
            let name = get_str(up, "name").unwrap_or("").to_string();
            let slug = name_slug(&name, &format!("upstream-{}", u + 1));
            let slug = unique(&slug, |n| self.reserved.contains(n));
            self.reserved.insert(slug.clone());
            self.kong_upstreams.push(KongUpstream {
                at: format!("upstreams[{u}]"),
                v: up,
                name,
                slug,
                targets: Vec::new(),
                settings: Map::new(),
                usable: false,
                used: false,
            });
        }
        for (c, cert) in list_of(root, "certificates").iter().enumerate() {
            self.certificates.push((format!("certificates[{c}]"), cert));
        }
        for (s, sni) in list_of(root, "snis").iter().enumerate() {
            self.snis.push((format!("snis[{s}]"), sni));
        }
        let targets: usize = self
            .kong_upstreams
            .iter()
            .map(|u| list(u.v, "targets").len())
            .sum();
        let credentials = self
            .consumers
            .iter()
            .map(|(_, c)| {
                [
                    "keyauth_credentials",
                    "basicauth_credentials",
                    "jwt_secrets",
                    "hmacauth_credentials",
                    "oauth2_credentials",
                    "mtls_auth_credentials",
                ]
                .iter()
                .map(|k| list(c, k).len())
                .sum::<usize>()
            })
            .sum::<usize>()
            + self
                .loose_credentials
                .iter()
                .filter(|(k, _, _)| *k != "acls")
                .count();
        let r = &mut self.report;
        r.record_read("services", self.services.len());
        r.record_read("routes", self.routes.len());
        r.record_read("upstreams", self.kong_upstreams.len());
        r.record_read("targets", targets);
        r.record_read("consumers", self.consumers.len());
        r.record_read("credentials", credentials);
        r.record_read("plugins", self.plugins.len());
        if !self.certificates.is_empty() {
            r.record_read("certificates", self.certificates.len());
        }
    }

    fn find_service(&self, name: &str) -> Option<usize> {
        self.services
            .iter()
            .position(|s| get_str(s.v, "name") == Some(name) || get_str(s.v, "id") == Some(name))
    }

    fn find_route(&self, name: &str) -> Option<usize> {
        self.routes
            .iter()
            .position(|r| get_str(r.v, "name") == Some(name) || get_str(r.v, "id") == Some(name))
    }

    /// The plugins nested in an entity.
    fn plugins_of(
        &mut self,
        owner: &'a Value,
        at: &str,
        service: Option<Result<usize, String>>,
        route: Option<Result<usize, String>>,
        consumer: Option<String>,
    ) {
        for (k, p) in list(owner, "plugins").iter().enumerate() {
            self.push_plugin(
                p,
                format!("{at}.plugins[{k}]"),
                service.clone(),
                route.clone(),
                consumer.clone(),
            );
        }
    }

    fn push_plugin(
        &mut self,
        p: &'a Value,
        at: String,
        mut service: Option<Result<usize, String>>,
        mut route: Option<Result<usize, String>>,
        mut consumer: Option<String>,
    ) {
        // A plugin may name its scope itself (also when nested).
        if let Some(name) = get(p, "service").and_then(reference) {
            service = Some(self.find_service(&name).ok_or(format!("service `{name}`")));
        }
        if let Some(name) = get(p, "route").and_then(reference) {
            // Routes listed later are looked up when mapping.
            route = Some(Err(name));
        }
        if let Some(name) = get(p, "consumer").and_then(reference) {
            consumer = Some(name);
        }
        self.plugins.push(Plugin {
            at,
            v: p,
            name: get_str(p, "name").unwrap_or("").to_string(),
            service,
            route,
            consumer,
        });
    }

    /// Reads every Kong upstream (targets, balancing, health checks).
    fn map_upstreams(&mut self) {
        for u in 0..self.kong_upstreams.len() {
            self.upstream_of(u);
        }
    }

    fn upstream_of(&mut self, u: usize) {
        let at = self.kong_upstreams[u].at.clone();
        let up = self.kong_upstreams[u].v;
        self.unknown_fields(
            &at,
            up,
            &[
                "name",
                "targets",
                "algorithm",
                "hash_on",
                "hash_fallback",
                "hash_on_header",
                "hash_fallback_header",
                "hash_on_cookie",
                "hash_on_cookie_path",
                "hash_on_query_arg",
                "hash_fallback_query_arg",
                "hash_on_uri_capture",
                "hash_fallback_uri_capture",
                "slots",
                "healthchecks",
                "use_srv_name",
            ],
        );
        let mut settings = Map::new();
        let hash_on = get_str(up, "hash_on").unwrap_or("none");
        let algorithm = get_str(up, "algorithm").unwrap_or(if hash_on != "none" {
            "consistent-hashing"
        } else {
            "round-robin"
        });
        match algorithm {
            "round-robin" => {}
            "least-connections" => {
                settings.insert("balance".into(), json!("least_conn"));
            }
            "consistent-hashing" => {
                let key = match hash_on {
                    "consumer" => Some("app".to_string()),
                    "ip" => Some("ip".to_string()),
                    "header" => get_str(up, "hash_on_header")
                        .map(|h| format!("header:{}", h.to_ascii_lowercase())),
                    "cookie" => get_str(up, "hash_on_cookie").map(|c| format!("cookie:{c}")),
                    _ => None,
                };
                match key {
                    Some(k) => {
                        settings.insert("balance".into(), json!("hash"));
                        settings.insert("hash_on".into(), json!(k));
                    }
                    None => self.unsupported(
                        format!("{at}.hash_on"),
                        format!("hashing on `{hash_on}`: Tollgate hashes on a header, a cookie, the client address or the app"),
                    ),
                }
                if get_str(up, "hash_fallback").is_some_and(|f| f != "none") {
                    self.unsupported(
                        format!("{at}.hash_fallback"),
                        "a second hash key when the first is missing",
                    );
                }
                if get_str(up, "hash_on_cookie_path").is_some_and(|p| p != "/") {
                    self.unsupported(
                        format!("{at}.hash_on_cookie_path"),
                        "the hash cookie's path",
                    );
                }
            }
            other => self.unsupported(
                format!("{at}.algorithm"),
                format!("balancing by `{other}`: round-robin is used"),
            ),
        }
        if get_bool(up, "use_srv_name") == Some(true) {
            self.unsupported(format!("{at}.use_srv_name"), "SRV names");
        }
        if let Some(h) = get(up, "healthchecks") {
            let health = self.health(&format!("{at}.healthchecks"), h);
            if !health.is_empty() {
                settings.insert("health".into(), Value::Object(health));
            }
        }
        let mut targets = Vec::new();
        for (t, target) in list(up, "targets").iter().enumerate() {
            let tat = format!("{at}.targets[{t}]");
            self.unknown_fields(&tat, target, &["target", "weight", "upstream"]);
            let Some(addr) = get_str(target, "target") else {
                self.unsupported(tat, "a target without `target`");
                continue;
            };
            let weight = get_num(target, "weight").unwrap_or(100.0);
            if !(0.0..=10_000.0).contains(&weight) || weight.fract() != 0.0 {
                self.unsupported(
                    format!("{tat}.weight"),
                    format!("weight {weight}: Tollgate weights are whole numbers from 0 to 10000"),
                );
                continue;
            }
            targets.push((host_port(addr, 8000), weight as u32));
        }
        let usable = !targets.is_empty() && targets.iter().any(|(_, w)| *w > 0);
        if !usable {
            self.unsupported(
                at,
                "an upstream without a target of weight above 0 (Kong answers 503)",
            );
        }
        let k = &mut self.kong_upstreams[u];
        k.targets = targets;
        k.settings = settings;
        k.usable = usable;
    }

    /// Kong health checks as Tollgate's `health`; empty when Kong's are off.
    fn health(&mut self, at: &str, h: &Value) -> Map<String, Value> {
        let mut out = Map::new();
        let n = |v: Option<&Value>, k: &str| v.and_then(|x| get_num(x, k)).unwrap_or(0.0);
        let active = get(h, "active");
        let healthy = active.and_then(|a| get(a, "healthy"));
        let unhealthy = active.and_then(|a| get(a, "unhealthy"));
        let interval = n(healthy, "interval").max(n(unhealthy, "interval"));
        if interval > 0.0 {
            let kind = active.and_then(|a| get_str(a, "type")).unwrap_or("http");
            if kind != "http" && kind != "https" {
                self.unsupported(
                    format!("{at}.active.type"),
                    format!("`{kind}` probes: Tollgate probes over HTTP(S)"),
                );
            } else {
                let fails: Vec<f64> = ["http_failures", "tcp_failures", "timeouts"]
                    .iter()
                    .map(|k| n(unhealthy, k))
                    .filter(|x| *x > 0.0)
                    .collect();
                let probe = json!({
                    "path": active.and_then(|a| get_str(a, "http_path")).unwrap_or("/"),
                    "interval": duration_ms((interval * 1000.0) as u64),
                    "timeout": duration_ms((active.and_then(|a| get_num(a, "timeout")).unwrap_or(1.0) * 1000.0).max(1.0) as u64),
                    "healthy": (n(healthy, "successes") as u64).max(1),
                    "unhealthy": fails.iter().cloned().fold(f64::MAX, f64::min).clamp(1.0, 1e6) as u64,
                });
                out.insert("active".into(), probe);
                self.g.add(format!("{at}.active"), HEALTH_APPROX);
                if active.and_then(|a| get(a, "headers")).is_some() {
                    self.unsupported(format!("{at}.active.headers"), "probe request headers");
                }
            }
        }
        let passive = get(h, "passive").and_then(|p| get(p, "unhealthy"));
        let fails: Vec<f64> = ["http_failures", "tcp_failures", "timeouts"]
            .iter()
            .map(|k| n(passive, k))
            .filter(|x| *x > 0.0)
            .collect();
        if let Some(min) = fails.iter().cloned().reduce(f64::min) {
            out.insert("passive".into(), json!({ "unhealthy": min as u64 }));
            self.g.add(format!("{at}.passive"), PASSIVE);
        }
        if get_num(h, "threshold").is_some_and(|t| t > 0.0) {
            self.unsupported(
                format!("{at}.threshold"),
                "a share of healthy targets below which all are used",
            );
        }
        out
    }
}

/// Kong's `list` of a top-level section.
fn list_of<'a>(root: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    root.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `host:port` with Kong's default port when none is written.
fn host_port(addr: &str, default_port: u16) -> String {
    let has_port = if let Some(rest) = addr.strip_prefix('[') {
        rest.contains("]:")
    } else {
        addr.matches(':').count() == 1
    };
    if has_port {
        addr.to_string()
    } else if addr.contains(':') && !addr.starts_with('[') {
        format!("[{addr}]:{default_port}")
    } else {
        format!("{addr}:{default_port}")
    }
}

/// A target URL, without the scheme's default port.
fn target_url(scheme: &str, host_port: &str) -> String {
    let default = if scheme == "https" { ":443" } else { ":80" };
    let hp = host_port.strip_suffix(default).unwrap_or(host_port);
    format!("{scheme}://{hp}")
}

fn duration_ms(ms: u64) -> String {
    tollgate_model::Duration::from_millis(ms).to_string()
}
