//! Services → upstreams, APIs and versions; routes → Tollgate routes.

use serde_json::{Map, Value, json};

use super::super::paths;
use super::{
    ApiOut, Builder, DISABLED, PRESERVE_HOST, RENAMED, RouteOut, TAG_API, TAG_UNNAMED, TAG_VERSION,
    TLS_VERIFY, VersionOut, duration_ms, get, get_bool, get_num, get_str, host_port, list,
    name_slug, strings, tag_value, tags, target_url, unique,
};

const WEBSOCKET: &str = "a `ws`/`wss` service is proxied as `http`/`https`: Tollgate passes WebSocket upgrades on any route";

/// A service `url`: (protocol, host, port, path).
fn parse_url(url: &str) -> Option<(String, String, Option<f64>, Option<String>)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']')?;
        (
            format!("[{h}]"),
            p.strip_prefix(':').and_then(|p| p.parse().ok()),
        )
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (authority.to_string(), None),
        }
    };
    let port = port.or(match scheme {
        "https" | "wss" | "grpcs" | "tls" => Some(443.0),
        _ => Some(80.0),
    });
    Some((scheme.to_string(), host, port, path))
}

fn is_version_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_')
}

impl<'a> Builder<'a> {
    /// A Tollgate upstream for `body` (without its name): the same key gives the same one.
    pub(super) fn add_upstream(
        &mut self,
        base: &str,
        key: String,
        mut body: Map<String, Value>,
    ) -> String {
        if let Some((_, b)) = self.upstreams.iter().find(|(k, _)| *k == key) {
            return b["name"].as_str().unwrap_or_default().to_string();
        }
        let created: Vec<String> = self
            .upstreams
            .iter()
            .filter_map(|(_, b)| b["name"].as_str().map(str::to_string))
            .collect();
        let own_slug = self.kong_upstreams.iter().any(|k| k.slug == base);
        let name = if own_slug && !created.iter().any(|c| c == base) {
            base.to_string()
        } else {
            unique(base, |n| {
                self.reserved.contains(n) || created.iter().any(|c| c == n)
            })
        };
        let mut full = Map::new();
        full.insert("name".into(), json!(name));
        full.append(&mut body);
        self.upstreams.push((key, Value::Object(full)));
        name
    }

    pub(super) fn map_services(&mut self) {
        for i in 0..self.services.len() {
            self.service(i);
        }
    }

    fn service(&mut self, i: usize) {
        let at = self.services[i].at.clone();
        let s = self.services[i].v;
        self.unknown_fields(
            &at,
            s,
            &[
                "name",
                "url",
                "protocol",
                "host",
                "port",
                "path",
                "connect_timeout",
                "read_timeout",
                "write_timeout",
                "retries",
                "enabled",
                "routes",
                "plugins",
                "tls_verify",
            ],
        );
        let (mut protocol, mut host, mut port, mut path) = (
            get_str(s, "protocol").unwrap_or("http").to_string(),
            get_str(s, "host").map(str::to_string),
            get_num(s, "port"),
            get_str(s, "path").map(str::to_string),
        );
        if let Some(url) = get_str(s, "url") {
            match parse_url(url) {
                Some((pr, h, po, pa)) => {
                    (protocol, host, port, path) = (pr, Some(h), po, pa);
                }
                None => {
                    self.unsupported(format!("{at}.url"), format!("`{url}` is not a URL"));
                    return;
                }
            }
        }
        let scheme = match protocol.as_str() {
            "http" | "https" => protocol.clone(),
            "ws" | "wss" => {
                self.g.add(format!("{at}.protocol"), WEBSOCKET);
                if protocol == "ws" { "http" } else { "https" }.to_string()
            }
            other => {
                self.unsupported(
                    format!("{at}.protocol"),
                    format!("a `{other}` service: Tollgate proxies HTTP and HTTPS (the service and its routes are not imported)"),
                );
                return;
            }
        };
        let Some(host) = host else {
            self.unsupported(at, "a service without a host");
            return;
        };
        if scheme == "https" {
            match get_bool(s, "tls_verify") {
                Some(false) => self.unsupported(
                    format!("{at}.tls_verify"),
                    "`tls_verify: false`: Tollgate always verifies the certificates of https:// targets",
                ),
                Some(true) => {}
                None => self.g.add(at.clone(), TLS_VERIFY),
            }
        }
        let mut settings = Map::new();
        let mut timeouts = Map::new();
        for (field, name) in [
            ("connect_timeout", "connect"),
            ("read_timeout", "read"),
            ("write_timeout", "write"),
        ] {
            let ms = get_num(s, field).unwrap_or(60_000.0);
            let ms = if ms < 1.0 || ms.fract() != 0.0 {
                self.unsupported(
                    format!("{at}.{field}"),
                    format!("{ms} ms: timeouts are whole milliseconds above 0 (60s is used)"),
                );
                60_000.0
            } else {
                ms
            };
            timeouts.insert(name.into(), json!(duration_ms(ms as u64)));
        }
        settings.insert("timeouts".into(), Value::Object(timeouts));
        let mut retries = get_num(s, "retries").unwrap_or(5.0);
        if !(0.0..=10.0).contains(&retries) || retries.fract() != 0.0 {
            self.unsupported(
                format!("{at}.retries"),
                format!("{retries} retries: Tollgate makes at most 10 (10 is used)"),
            );
            retries = 10.0;
        }
        settings.insert("retries".into(), json!(retries as u64));

        let kong_up = self.kong_upstreams.iter().position(|k| k.name == host);
        let upstream = match kong_up {
            Some(u) => {
                if !self.kong_upstreams[u].usable {
                    self.unsupported(
                        at,
                        format!("its upstream `{host}` has no usable target: not imported"),
                    );
                    return;
                }
                self.kong_upstreams[u].used = true;
                let k = &self.kong_upstreams[u];
                let mut targets = Vec::new();
                for (t, (hp, w)) in k.targets.iter().enumerate() {
                    let url = target_url(&scheme, hp);
                    if let Err(e) = tollgate_model::validate::check_target_url(&url) {
                        self.report.unsupported(format!("{}.targets[{t}]", k.at), e);
                        continue;
                    }
                    targets.push(if *w == 100 {
                        json!({ "url": url })
                    } else {
                        json!({ "url": url, "weight": w })
                    });
                }
                let mut body = Map::new();
                body.insert("targets".into(), json!(targets));
                body.extend(k.settings.clone());
                body.extend(settings);
                let key = format!("kong:{u}:{}", Value::Object(body.clone()));
                let slug = k.slug.clone();
                self.add_upstream(&slug, key, body)
            }
            None => {
                let url = target_url(&scheme, &host_port(&host, port.unwrap_or(80.0) as u16));
                if let Err(e) = tollgate_model::validate::check_target_url(&url) {
                    self.unsupported(format!("{at}.host"), e);
                    return;
                }
                let mut body = Map::new();
                body.insert("targets".into(), json!([{ "url": url }]));
                body.extend(settings);
                let base = name_slug(
                    get_str(s, "name").or(get_str(s, "id")).unwrap_or(""),
                    &format!("service-{}", i + 1),
                );
                self.add_upstream(&base, format!("service:{i}"), body)
            }
        };

        let kong_name = get_str(s, "name").or(get_str(s, "id"));
        let api = match tag_value(s, TAG_API).filter(|n| tollgate_model::validate::is_slug(n)) {
            Some(name) => match self.apis.iter().position(|a| a.name == name) {
                Some(a) => a,
                None => self.new_api(name),
            },
            None => {
                let base = name_slug(kong_name.unwrap_or(""), &format!("service-{}", i + 1));
                let name = unique(&base, |n| self.apis.iter().any(|a| a.name == n));
                if kong_name.is_some_and(|k| k != name) {
                    self.g.add(format!("{at}.name"), RENAMED);
                }
                self.new_api(name)
            }
        };
        let version = tag_value(s, TAG_VERSION)
            .filter(|v| is_version_name(v))
            .unwrap_or_else(|| "v1".to_string());
        let version = unique(&version, |v| {
            self.apis[api].versions.iter().any(|x| x.version == v)
        });
        let draft = get_bool(s, "enabled") == Some(false);
        if draft {
            self.g.add(
                format!("{at}.enabled"),
                format!("{DISABLED} as served: the version is a draft"),
            );
        }
        self.apis[api].versions.push(VersionOut {
            version,
            draft,
            upstream,
            routes: Vec::new(),
            policies: Vec::new(),
        });
        let v = self.apis[api].versions.len() - 1;
        self.services[i].made = Some((api, v));
        self.services[i].path = path.filter(|p| !p.is_empty() && p != "/");
    }

    fn new_api(&mut self, name: String) -> usize {
        self.apis.push(ApiOut {
            name,
            policies: Vec::new(),
            versions: Vec::new(),
        });
        self.apis.len() - 1
    }

    pub(super) fn map_routes(&mut self) {
        for r in 0..self.routes.len() {
            let at = self.routes[r].at.clone();
            let Some(s) = self.routes[r].service else {
                let why = self.routes[r].orphan.clone().map_or(
                    "a route without a service: Tollgate routes belong to an API version with an upstream (Kong answers 503 for it)".to_string(),
                    |o| format!("its {o}: not imported"),
                );
                self.unsupported(at, why);
                continue;
            };
            let Some((a, v)) = self.services[s].made else {
                self.unsupported(at, "its service is not imported");
                continue;
            };
            let outs = self.route(r, s);
            if !outs.is_empty() {
                self.routes[r].imported = true;
                self.apis[a].versions[v].routes.extend(outs);
            }
        }
        for s in 0..self.services.len() {
            let svc = &self.services[s];
            let (Some(p), Some(_)) = (&svc.path, svc.made) else {
                continue;
            };
            let routed = self
                .routes
                .iter()
                .any(|r| r.service == Some(s) && r.imported);
            if svc.path_lost || !routed {
                let at = format!("{}.path", svc.at);
                let msg = format!(
                    "the service path `{p}` goes before every forwarded path; Tollgate forwards the request path (or its rest, with strip_prefix) and adds no prefix{}",
                    if routed {
                        ": its prefix routes forward without it"
                    } else {
                        ""
                    }
                );
                self.unsupported(at, msg);
            }
        }
    }

    /// One Kong route as Tollgate routes (one per path, and per host with `preserve_host`).
    fn route(&mut self, r: usize, s: usize) -> Vec<RouteOut> {
        let at = self.routes[r].at.clone();
        let v = self.routes[r].v;
        self.unknown_fields(
            &at,
            v,
            &[
                "name",
                "paths",
                "methods",
                "hosts",
                "headers",
                "protocols",
                "strip_path",
                "preserve_host",
                "regex_priority",
                "https_redirect_status_code",
                "path_handling",
                "request_buffering",
                "response_buffering",
                "service",
                "plugins",
                "snis",
                "sources",
                "destinations",
                "expression",
                "priority",
            ],
        );
        for f in ["snis", "sources", "destinations"] {
            if !list(v, f).is_empty() {
                self.unsupported(format!("{at}.{f}"), format!("matching on `{f}`"));
            }
        }
        if get(v, "expression").is_some() {
            self.unsupported(
                format!("{at}.expression"),
                "an expressions-router route: not imported",
            );
            return Vec::new();
        }
        let protocols = strings(v, "protocols");
        if !protocols.is_empty() {
            let http = protocols.iter().any(|p| p == "http");
            let https = protocols.iter().any(|p| p == "https");
            let others: Vec<&String> = protocols
                .iter()
                .filter(|p| *p != "http" && *p != "https")
                .collect();
            if !http && !https {
                self.unsupported(
                    format!("{at}.protocols"),
                    format!(
                        "a route for {}: Tollgate routes HTTP and HTTPS requests (not imported)",
                        protocols.join(", ")
                    ),
                );
                return Vec::new();
            }
            if !(http && https && others.is_empty()) {
                let msg = if !(http && https) {
                    format!(
                        "only {}: Tollgate serves every route over HTTP and HTTPS alike (with no 426 or redirect; see settings.tls.redirect_http)",
                        if http { "http" } else { "https" }
                    )
                } else {
                    format!(
                        "{}: Tollgate routes HTTP and HTTPS requests",
                        others
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                self.unsupported(format!("{at}.protocols"), msg);
            }
        }
        let mut methods = Vec::new();
        for (k, m) in strings(v, "methods").iter().enumerate() {
            let m = m.to_ascii_uppercase();
            if tollgate_model::document::is_token(&m) {
                methods.push(m);
            } else {
                self.unsupported(
                    format!("{at}.methods[{k}]"),
                    format!("`{m}` is not a method"),
                );
            }
        }
        let written_hosts = strings(v, "hosts");
        let mut hosts = Vec::new();
        for (k, h) in written_hosts.iter().enumerate() {
            let h = h.to_ascii_lowercase();
            let name = h.strip_prefix("*.").unwrap_or(&h);
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                && !name.starts_with('.')
                && !name.ends_with('.');
            if ok {
                hosts.push(h);
            } else if h.contains(':') {
                self.unsupported(
                    format!("{at}.hosts[{k}]"),
                    format!("`{h}`: Tollgate matches hosts without their port"),
                );
            } else if h.ends_with(".*") {
                self.unsupported(
                    format!("{at}.hosts[{k}]"),
                    format!("`{h}`: Tollgate's wildcards are a leading `*.` only"),
                );
            } else {
                self.unsupported(
                    format!("{at}.hosts[{k}]"),
                    format!("`{h}` is not a host name Tollgate matches"),
                );
            }
        }
        if !written_hosts.is_empty() && hosts.is_empty() {
            self.unsupported(at, "none of its hosts can be matched: not imported");
            return Vec::new();
        }
        let mut headers = Map::new();
        if let Some(h) = get(v, "headers").and_then(Value::as_object) {
            for (name, values) in h {
                let values: Vec<String> = match values {
                    Value::String(x) => vec![x.clone()],
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                let hat = format!("{at}.headers.{name}");
                let Some(first) = values.first() else {
                    continue;
                };
                if values.iter().any(|x| x.starts_with("~*")) {
                    self.unsupported(hat, "a regex header value: the route is not imported");
                    return Vec::new();
                }
                if values.len() > 1 {
                    self.unsupported(
                        hat,
                        format!(
                            "several accepted values: the Tollgate route matches only `{first}`"
                        ),
                    );
                }
                headers.insert(name.to_ascii_lowercase(), json!(first));
            }
        }
        let strip = get_bool(v, "strip_path").unwrap_or(true);
        let mut patterns = Vec::new();
        let written = strings(v, "paths");
        let mut regex = false;
        for (k, p) in written.iter().enumerate() {
            regex |= paths::is_regex(p, self.legacy);
            match paths::from_kong(p, self.legacy) {
                Ok(m) => {
                    if let Some(loss) = m.loss {
                        self.unsupported(format!("{at}.paths[{k}]"), loss);
                    }
                    if let Some(note) = m.note {
                        self.g.add(format!("{at}.paths[{k}]"), note);
                    }
                    if !patterns.contains(&m.pattern) {
                        patterns.push(m.pattern);
                    }
                }
                Err(e) => self.unsupported(format!("{at}.paths[{k}]"), e),
            }
        }
        if written.is_empty() {
            patterns.push("/".to_string());
        }
        if regex && get_num(v, "regex_priority").is_some_and(|p| p != 0.0) {
            self.unsupported(
                format!("{at}.regex_priority"),
                "Tollgate picks the most specific route, not by regex priority",
            );
        }
        let preserve = get_bool(v, "preserve_host").unwrap_or(false);
        let host_sets: Vec<Option<String>> = if !preserve {
            vec![None]
        } else if !hosts.is_empty() && hosts.iter().all(|h| !h.starts_with('*')) {
            self.g.add(format!("{at}.preserve_host"), PRESERVE_HOST);
            hosts.iter().cloned().map(Some).collect()
        } else {
            self.unsupported(
                format!("{at}.preserve_host"),
                "Tollgate sends the target's host (and the client's in X-Forwarded-Host); only a route with exact hosts can send its own",
            );
            vec![None]
        };
        let service_path = self.services[s].path.clone();
        let unnamed = tags(v).iter().any(|t| t == TAG_UNNAMED);
        let mut out = Vec::new();
        for pattern in &patterns {
            let path = match &service_path {
                None => None,
                Some(sp) => match pattern.strip_prefix('=') {
                    Some(_) if strip => Some(sp.clone()),
                    Some(exact) => Some(format!("{}{exact}", sp.trim_end_matches('/'))),
                    None => {
                        self.services[s].path_lost = true;
                        None
                    }
                },
            };
            for host in &host_sets {
                let mut m = Map::new();
                if let Some(n) = get_str(v, "name").filter(|_| !unnamed) {
                    m.insert("name".into(), json!(n));
                }
                m.insert("path".into(), json!(pattern));
                if !methods.is_empty() {
                    m.insert("methods".into(), json!(methods));
                }
                match host {
                    Some(h) => m.insert("hosts".into(), json!([h])),
                    None if !hosts.is_empty() => m.insert("hosts".into(), json!(hosts)),
                    None => None,
                };
                if !headers.is_empty() {
                    m.insert("headers".into(), Value::Object(headers.clone()));
                }
                if strip {
                    m.insert("strip_prefix".into(), json!(true));
                }
                out.push(RouteOut {
                    route: m,
                    kong: r,
                    policies: Vec::new(),
                    host: host.clone(),
                    path: path.clone(),
                });
            }
        }
        out
    }
}
