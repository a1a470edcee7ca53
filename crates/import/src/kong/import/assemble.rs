//! Plugins → policies at their scopes; the checks that span scopes; the document.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::super::plugins::{self, AUTH, JwtKeys};
use super::{
    Builder, DISABLED, Placed, Scope, TAG_INHERITED, TAG_SCOPE_API, get, get_bool, strings, tags,
};
use crate::{ImportError, Imported};

static NO_CONFIG: Value = Value::Null;

/// The policy kinds a policy list holds.
fn kinds(policies: &[Value]) -> Vec<String> {
    policies
        .iter()
        .filter_map(|p| p.as_object().and_then(|m| m.keys().next().cloned()))
        .collect()
}

/// `{name}` placeholders of a transform path.
fn placeholders(path: &str) -> Vec<String> {
    tollgate_model::policy::placeholders(path)
        .map(|p| p.into_iter().map(str::to_string).collect())
        .unwrap_or_else(|_| vec![String::new()])
}

/// `apis[a].versions[v].routes[k]` → `(a, v, k)`.
fn route_index(path: &str) -> Option<(usize, usize, usize)> {
    let num = |s: &str, key: &str| -> Option<(usize, usize)> {
        let start = s.find(key)? + key.len();
        let end = s[start..].find(']')? + start;
        Some((s[start..end].parse().ok()?, end))
    };
    let (a, e1) = num(path, "apis[")?;
    let (v, e2) = num(&path[e1..], "versions[")?;
    let (k, _) = num(&path[e1 + e2..], "routes[")?;
    Some((a, v, k))
}

impl<'a> Builder<'a> {
    pub(super) fn map_plugins(&mut self, jwt: &JwtKeys) {
        let cx = plugins::Cx {
            legacy: self.legacy,
            jwt,
        };
        let mut seen = HashSet::new();
        for p in 0..self.plugins.len() {
            let at = self.plugins[p].at.clone();
            let v = self.plugins[p].v;
            let name = self.plugins[p].name.clone();
            self.unknown_fields(
                &at,
                v,
                &[
                    "name",
                    "config",
                    "enabled",
                    "protocols",
                    "service",
                    "route",
                    "consumer",
                    "consumer_group",
                    "instance_name",
                    "ordering",
                ],
            );
            if name.is_empty() {
                self.unsupported(at, "a plugin without a name");
                continue;
            }
            if get_bool(v, "enabled") == Some(false) {
                self.g.add(at, DISABLED);
                continue;
            }
            if let Some(c) = self.plugins[p].consumer.clone() {
                self.unsupported(
                    at,
                    format!("`{name}` for consumer `{c}` only: Tollgate has no per-app policies (a product plan gives limits to each subscribed app)"),
                );
                continue;
            }
            if get(v, "consumer_group").is_some() {
                self.unsupported(at, format!("`{name}` for one consumer group only"));
                continue;
            }
            if get(v, "ordering").is_some() {
                self.unsupported(
                    format!("{at}.ordering"),
                    "plugin ordering: Tollgate runs policies in its fixed phases",
                );
            }
            let route = match self.plugins[p].route.clone() {
                None => None,
                Some(Ok(r)) => Some(r),
                Some(Err(name)) => match self.find_route(&name) {
                    Some(r) => Some(r),
                    None => {
                        self.unsupported(at, format!("route `{name}` is not in the file"));
                        continue;
                    }
                },
            };
            let service = match self.plugins[p].service.clone() {
                None => None,
                Some(Ok(s)) => Some(s),
                Some(Err(what)) => {
                    self.unsupported(at, format!("{what} is not in the file"));
                    continue;
                }
            };
            let scope = match (route, service) {
                (Some(r), _) => Scope::Route(r),
                (None, Some(s)) => Scope::Service(s),
                _ => Scope::Global,
            };
            let imported = match scope {
                Scope::Route(r) => self.routes[r].imported,
                Scope::Service(s) => self.services[s].made.is_some(),
                Scope::Global => true,
            };
            if !imported {
                let what = if matches!(scope, Scope::Route(_)) {
                    "route"
                } else {
                    "service"
                };
                self.unsupported(
                    at,
                    format!("`{name}` belongs to a {what} that is not imported"),
                );
                continue;
            }
            if !seen.insert((scope, name.clone())) {
                self.unsupported(
                    at,
                    format!("a second `{name}` plugin in the same place (Kong allows one)"),
                );
                continue;
            }
            let protocols = strings(v, "protocols");
            let both =
                protocols.iter().any(|p| p == "http") && protocols.iter().any(|p| p == "https");
            if !protocols.is_empty() && !both {
                self.unsupported(
                    format!("{at}.protocols"),
                    format!(
                        "only for {}: Tollgate applies the policy to HTTP and HTTPS requests alike",
                        protocols.join(", ")
                    ),
                );
            }
            let config = get(v, "config").unwrap_or(&NO_CONFIG);
            let mut policies = plugins::map(&name, config, &at, &cx, &mut self.report, &mut self.g);
            if !matches!(scope, Scope::Route(_)) {
                // A path with route parameters only works on a route.
                for pol in &mut policies {
                    if let Some(t) = pol
                        .get_mut("request_transform")
                        .and_then(Value::as_object_mut)
                        && t.get("path")
                            .and_then(Value::as_str)
                            .is_some_and(|x| x.contains('{'))
                    {
                        t.remove("path");
                        self.report.unsupported(
                            format!("{at}.config.replace.uri"),
                            "a path with `$(uri_captures…)` outside a route: Tollgate fills route parameters on routes only",
                        );
                    }
                }
                policies.retain(|p| {
                    p.get("request_transform")
                        .is_none_or(|t| t.as_object().is_some_and(|m| !m.is_empty()))
                });
            }
            // Limits a wider scope's plugin holds, copied here by an export: they stay there.
            for t in tags(v) {
                if let Some(kind) = t.strip_prefix(TAG_INHERITED) {
                    policies.retain(|p| p.get(kind).is_none());
                }
            }
            let api_scope =
                matches!(scope, Scope::Service(_)) && tags(v).iter().any(|t| t == TAG_SCOPE_API);
            self.placed.push(Placed {
                plugin: p,
                scope,
                policies,
                api_scope,
            });
        }
    }

    /// The plugin of `name` that runs on Kong route `r`: the route's, else its service's,
    /// else the global one (index into `placed`).
    fn effective(&self, r: usize, name: &str) -> Option<usize> {
        let s = self.routes[r].service;
        let find = |scope: Scope| {
            self.placed
                .iter()
                .position(|p| p.scope == scope && self.plugins[p.plugin].name == name)
        };
        find(Scope::Route(r))
            .or_else(|| s.and_then(|s| find(Scope::Service(s))))
            .or_else(|| find(Scope::Global))
    }

    /// The narrowest placed plugin on route `r` whose policies include `kind`.
    fn narrowest_with(&self, r: usize, kind: &str) -> Option<usize> {
        let s = self.routes[r].service;
        let find = |scope: Scope| {
            self.placed
                .iter()
                .position(|p| p.scope == scope && kinds(&p.policies).iter().any(|k| k == kind))
        };
        find(Scope::Route(r))
            .or_else(|| s.and_then(|s| find(Scope::Service(s))))
            .or_else(|| find(Scope::Global))
    }

    /// What Kong does across scopes that Tollgate's "narrowest scope per policy type" does not.
    fn cross_scope_checks(&mut self) {
        for r in 0..self.routes.len() {
            if !self.routes[r].imported {
                continue;
            }
            let at = self.routes[r].at.clone();
            let auth: Vec<&str> = AUTH
                .iter()
                .copied()
                .filter(|n| self.effective(r, n).is_some())
                .collect();
            if auth.len() > 1 {
                self.unsupported(
                    format!("{at} (authentication)"),
                    format!("Kong runs {} on this route and requires each; Tollgate accepts any one policy of the narrowest scope that has authentication", auth.join(" and ")),
                );
            }
            let Some(kong) = self.effective(r, "rate-limiting") else {
                continue;
            };
            for kind in ["rate_limit", "quota"] {
                if let Some(t) = self.narrowest_with(r, kind)
                    && t != kong
                {
                    let wider = self.plugins[self.placed[t].plugin].at.clone();
                    let here = self.plugins[self.placed[kong].plugin].at.clone();
                    self.unsupported(
                        here,
                        format!("in Kong it replaces the rate-limiting of {wider} on {at}; in Tollgate that plugin's {kind} still applies there (rate limits and quotas are chosen by scope apart)"),
                    );
                }
            }
        }
    }

    /// Puts every placed plugin's policies at its scope, and each route's own request
    /// transform (its host, the service's path) together with the transformer in force.
    fn attach(&mut self) {
        for i in 0..self.placed.len() {
            let policies = self.placed[i].policies.clone();
            match self.placed[i].scope {
                Scope::Global => self.policies.extend(policies),
                Scope::Service(s) => {
                    let Some((a, v)) = self.services[s].made else {
                        continue;
                    };
                    if self.placed[i].api_scope {
                        for p in policies {
                            if !self.apis[a].policies.contains(&p) {
                                self.apis[a].policies.push(p);
                            }
                        }
                    } else {
                        self.apis[a].versions[v].policies.extend(policies);
                    }
                }
                Scope::Route(r) => {
                    for api in &mut self.apis {
                        for ver in &mut api.versions {
                            for out in ver.routes.iter_mut().filter(|o| o.kong == r) {
                                out.policies.extend(policies.iter().cloned());
                            }
                        }
                    }
                }
            }
        }
        let mut issues = Vec::new();
        for a in 0..self.apis.len() {
            for v in 0..self.apis[a].versions.len() {
                for k in 0..self.apis[a].versions[v].routes.len() {
                    let r = self.apis[a].versions[v].routes[k].kong;
                    let transformer = self.effective(r, "request-transformer");
                    let base = transformer.and_then(|t| {
                        self.placed[t]
                            .policies
                            .iter()
                            .find_map(|p| p.get("request_transform").cloned())
                    });
                    let from_route =
                        transformer.is_some_and(|t| self.placed[t].scope == Scope::Route(r));
                    let out = &mut self.apis[a].versions[v].routes[k];
                    let params = placeholders(out.route["path"].as_str().unwrap_or(""));
                    if out.host.is_none() && out.path.is_none() && !from_route {
                        continue;
                    }
                    let mut t = base.unwrap_or_else(|| json!({}));
                    if let Some(h) = &out.host {
                        let headers = t
                            .as_object_mut()
                            .map(|m| m.entry("headers").or_insert_with(|| json!({})));
                        if let Some(Value::Object(headers)) = headers
                            && let Value::Object(set) =
                                headers.entry("set").or_insert_with(|| json!({}))
                            && !set.contains_key("host")
                        {
                            set.insert("host".into(), json!(h));
                        }
                    }
                    if let Some(p) = &out.path
                        && t.get("path").is_none()
                    {
                        t["path"] = json!(p);
                    }
                    if let Some(p) = t.get("path").and_then(Value::as_str).map(str::to_string)
                        && placeholders(&p).iter().any(|x| !params.contains(x))
                    {
                        if let Some(m) = t.as_object_mut() {
                            m.remove("path");
                        }
                        let place = transformer.map_or(self.routes[r].at.clone(), |t| {
                            format!(
                                "{}.config.replace.uri",
                                self.plugins[self.placed[t].plugin].at
                            )
                        });
                        issues.push((
                            place,
                            format!(
                                "`{p}` names a parameter the route `{}` does not have",
                                out.route["path"].as_str().unwrap_or("")
                            ),
                        ));
                    }
                    let at = out
                        .policies
                        .iter()
                        .position(|p| p.get("request_transform").is_some());
                    let keep = t.as_object().is_some_and(|m| !m.is_empty());
                    match (at, keep) {
                        (Some(i), true) => out.policies[i] = json!({ "request_transform": t }),
                        (Some(i), false) => {
                            out.policies.remove(i);
                        }
                        (None, true) => out.policies.push(json!({ "request_transform": t })),
                        (None, false) => {}
                    }
                }
            }
        }
        for (at, msg) in issues {
            self.unsupported(at, msg);
        }
    }

    fn document(&self) -> Value {
        let mut d = Map::new();
        d.insert("format_version".into(), json!(1));
        if !self.upstreams.is_empty() {
            d.insert(
                "upstreams".into(),
                Value::Array(self.upstreams.iter().map(|(_, b)| b.clone()).collect()),
            );
        }
        let apis: Vec<Value> = self
            .apis
            .iter()
            .map(|api| {
                let mut m = Map::new();
                m.insert("name".into(), json!(api.name));
                if !api.policies.is_empty() {
                    m.insert("policies".into(), json!(api.policies));
                }
                let versions: Vec<Value> = api
                    .versions
                    .iter()
                    .map(|v| {
                        let mut vm = Map::new();
                        vm.insert("version".into(), json!(v.version));
                        if v.draft {
                            vm.insert("status".into(), json!("draft"));
                        }
                        vm.insert("upstream".into(), json!(v.upstream));
                        let routes: Vec<Value> = v
                            .routes
                            .iter()
                            .map(|r| {
                                let mut rm = r.route.clone();
                                if !r.policies.is_empty() {
                                    rm.insert("policies".into(), json!(r.policies));
                                }
                                Value::Object(rm)
                            })
                            .collect();
                        if !routes.is_empty() {
                            vm.insert("routes".into(), Value::Array(routes));
                        }
                        if !v.policies.is_empty() {
                            vm.insert("policies".into(), json!(v.policies));
                        }
                        Value::Object(vm)
                    })
                    .collect();
                m.insert("versions".into(), Value::Array(versions));
                Value::Object(m)
            })
            .collect();
        if !apis.is_empty() {
            d.insert("apis".into(), Value::Array(apis));
        }
        for (key, list) in [
            ("policies", &self.policies),
            ("developers", &self.developers),
            ("apps", &self.apps),
            ("certificates", &self.certs_out),
        ] {
            if !list.is_empty() {
                d.insert(key.into(), json!(list));
            }
        }
        Value::Object(d)
    }

    pub(super) fn finish(mut self) -> Result<Imported, ImportError> {
        self.cross_scope_checks();
        self.attach();
        // Kong upstreams no service uses are kept, with plain-HTTP targets.
        for u in 0..self.kong_upstreams.len() {
            let k = &self.kong_upstreams[u];
            if k.used || !k.usable {
                continue;
            }
            let targets: Vec<Value> = k
                .targets
                .iter()
                .map(|(hp, w)| {
                    let url = super::target_url("http", hp);
                    if *w == 100 {
                        json!({ "url": url })
                    } else {
                        json!({ "url": url, "weight": w })
                    }
                })
                .collect();
            let mut body = Map::new();
            body.insert("targets".into(), json!(targets));
            body.extend(k.settings.clone());
            let slug = k.slug.clone();
            self.add_upstream(&slug, format!("unused:{u}"), body);
        }
        // Routes the model refuses (a conflict with an earlier route, …) are left out, named.
        for _ in 0..20 {
            let document = self.document();
            let doc: tollgate_model::Document =
                serde_json::from_value(document.clone()).map_err(|e| {
                    ImportError(format!("the imported configuration does not parse: {e}"))
                })?;
            let errors = tollgate_model::validate(&doc);
            if errors.is_empty() {
                return Ok(self.done(document));
            }
            if let Some(first) = errors.iter().find(|e| route_index(&e.path).is_none()) {
                return Err(ImportError(format!(
                    "the imported configuration is not valid ({} problems), first: {}: {}",
                    errors.len(),
                    first.path,
                    first.message
                )));
            }
            let mut drop: Vec<((usize, usize, usize), String)> = Vec::new();
            for e in &errors {
                if let Some(i) = route_index(&e.path)
                    && !drop.iter().any(|(j, _)| *j == i)
                {
                    drop.push((i, e.message.clone()));
                }
            }
            drop.sort_by_key(|d| std::cmp::Reverse(d.0));
            for ((a, v, k), message) in drop {
                let out = self.apis[a].versions[v].routes.remove(k);
                let at = self.routes[out.kong].at.clone();
                self.unsupported(at, format!("not imported: {message}"));
            }
        }
        Err(ImportError(
            "the imported configuration could not be made valid".into(),
        ))
    }

    fn done(mut self, document: Value) -> Imported {
        let routes: usize = self
            .apis
            .iter()
            .flat_map(|a| &a.versions)
            .map(|v| v.routes.len())
            .sum();
        let policies = self.policies.len()
            + self
                .apis
                .iter()
                .map(|a| {
                    a.policies.len()
                        + a.versions
                            .iter()
                            .map(|v| {
                                v.policies.len()
                                    + v.routes.iter().map(|r| r.policies.len()).sum::<usize>()
                            })
                            .sum::<usize>()
                })
                .sum::<usize>();
        let r = &mut self.report;
        r.count("upstreams", self.upstreams.len());
        r.count("apis", self.apis.len());
        r.count("versions", self.apis.iter().map(|a| a.versions.len()).sum());
        r.count("routes", routes);
        r.count("policies", policies);
        if !self.certs_out.is_empty() {
            r.count("certificates", self.certs_out.len());
        }
        if !self.apps.is_empty() {
            r.count("developers", self.developers.len());
            r.count("apps", self.apps.len());
            r.count("credentials", self.credentials);
        }
        let g = std::mem::take(&mut self.g);
        g.flush(&mut self.report);
        Imported {
            document,
            report: self.report,
        }
    }
}
