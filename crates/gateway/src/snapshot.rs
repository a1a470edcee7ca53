//! The snapshot: an immutable, compiled view of one configuration revision. The request
//! path reads only this; a new one is built off the request path and swapped in whole.

use std::collections::HashSet;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use tollgate_model::policy::{Acl, Cidr, IpRestrict, Policy, Scopes};
use tollgate_model::traffic::UpstreamLimits;
use tollgate_model::{ActiveHealth, Api, Document, Route, Version, VersionStatus};
use tollgate_router::{RouteTable, RouteTableBuilder};

use crate::aggregate::CompiledAggregate;
use crate::auth::authz::CompiledCedar;
use crate::auth::cors::CompiledCors;
use crate::auth::jwt::CompiledJwt;
use crate::auth::oauth2::CompiledIntrospection;
use crate::auth::{AuthShared, Authenticator, Credentials};
use crate::breaker::Breaker;
use crate::cache::CompiledCache;
use crate::entitle::Entitlement;
use crate::lifecycle;
use crate::limit::{LimitsShared, RouteLimits, UpstreamGuard, Used};
use crate::metrics::RouteMetrics;
use crate::tls::CertTable;
use crate::transform::CompiledTransform;
use crate::upstream::{Registry, UpstreamPool};
use crate::validate::{CompiledValidate, Spec};

/// Limits that apply when no policy says otherwise.
#[derive(Clone, Debug)]
pub struct Defaults {
    /// Largest request body accepted without a `request_size` policy.
    pub max_body: u64,
    /// Memory for the response cache, in bytes.
    pub cache_size: u64,
    /// The node secret: verifies API keys and opens sealed secrets.
    pub secrets: Option<tollgate_secrets::Secrets>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            max_body: 16 << 20,
            cache_size: 64 << 20,
            secrets: None,
        }
    }
}

/// What a matched route does, resolved from every scope at compile time.
#[derive(Debug)]
pub struct CompiledRoute {
    /// The API's access log, when on.
    pub access_log: Option<Arc<crate::accesslog::RouteLog>>,
    pub api: Arc<str>,
    pub version: Arc<str>,
    pub label: Arc<str>,
    /// `api`, `version` and `label` as analytics counts them.
    pub labels: tollgate_insight::Labels,
    pub upstream: Arc<UpstreamPool>,
    pub strip_prefix: bool,
    /// The version is retired: answer 410, naming the successor.
    pub retired: bool,
    /// Brownout windows of a deprecated version, as Unix seconds `[from, to)`.
    pub brownouts: Arc<[(i64, i64)]>,
    /// The successor and its path (`v2 (/v2/orders)`), named by 410 answers.
    pub successor: Option<String>,
    /// When the API's versions are chosen by header or query parameter: the router
    /// condition naming the version and the API's versions (for the error answer).
    pub version_choice: Option<Arc<(String, String)>>,
    pub lifecycle_headers: Vec<(HeaderName, HeaderValue)>,
    pub ip_restrict: Option<IpRestrict>,
    pub max_body: u64,
    pub request_transform: Option<CompiledTransform>,
    pub response_transform: Option<CompiledTransform>,
    pub cache: Option<CompiledCache>,
    /// Identifies this route's configuration in cache keys: a changed route starts afresh.
    pub cache_id: u64,
    pub aggregate: Option<CompiledAggregate>,
    /// Accepted ways to authenticate; empty when the route is open.
    pub authenticators: Vec<Authenticator>,
    pub acl: Option<Acl>,
    pub scopes: Option<Scopes>,
    pub authorize: Option<CompiledCedar>,
    pub cors: Option<CompiledCors>,
    /// Subscriptions that may call the route's version; `None` when no product with plans
    /// includes it.
    pub entitlement: Option<Arc<Entitlement>>,
    /// Rate limits and quotas (the limit phase); `None` when the route has none.
    pub limits: Option<Box<RouteLimits>>,
    pub breaker: Option<Arc<Breaker>>,
    /// Requests checked against the version's OpenAPI document.
    pub validate: Option<CompiledValidate>,
    /// The upstream's own limits (concurrency, spike arrest).
    pub guard: Option<Arc<UpstreamGuard>>,
    pub metrics: RouteMetrics,
}

pub struct Snapshot {
    pub revision: i64,
    pub router: RouteTable<usize>,
    pub routes: Vec<CompiledRoute>,
    /// The headers (and `?` query parameters) that name versions, over every API that
    /// chooses versions that way: a request naming one that finds no route is told so.
    pub version_conditions: Arc<[String]>,
    pub upstreams: Vec<Arc<UpstreamPool>>,
    /// Active probes wanted by this configuration.
    pub probes: Vec<(Arc<UpstreamPool>, ActiveHealth)>,
    pub credentials: Credentials,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Server certificates; handed to the TLS listener when the snapshot is installed.
    pub certificates: Option<CertTable>,
    /// `Strict-Transport-Security` for answers over TLS.
    pub hsts: Option<HeaderValue>,
    /// Redirect plain-HTTP requests to HTTPS.
    pub redirect_http: bool,
    pub https_port: Option<u16>,
    /// Limit state this snapshot uses (kept when it is installed, the rest let go).
    pub used: Used,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("revision", &self.revision)
            .field("routes", &self.routes.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot compile configuration: {0}")]
pub struct CompileError(pub String);

impl Snapshot {
    /// A snapshot with no routes: every request answers 404.
    pub fn empty() -> Snapshot {
        Snapshot {
            revision: 0,
            router: RouteTableBuilder::new()
                .build()
                .expect("an empty route table always builds"),
            routes: Vec::new(),
            version_conditions: Arc::from([]),
            upstreams: Vec::new(),
            probes: Vec::new(),
            credentials: Credentials::default(),
            trusted_proxies: Vec::new(),
            certificates: None,
            hsts: None,
            redirect_http: false,
            https_port: None,
            used: Used::default(),
        }
    }

    /// Compiles a validated document. Errors here mean the document skipped validation.
    pub fn compile(
        doc: &Document,
        revision: i64,
        cx: &Context<'_>,
    ) -> Result<Snapshot, CompileError> {
        Snapshot::build(doc, revision, cx, true)
    }

    /// Compiles without touching the registry's record of live targets.
    pub fn compile_trial(doc: &Document, cx: &Context<'_>) -> Result<Snapshot, CompileError> {
        Snapshot::build(doc, 0, cx, false)
    }

    fn build(
        doc: &Document,
        revision: i64,
        cx: &Context<'_>,
        live: bool,
    ) -> Result<Snapshot, CompileError> {
        let (registry, defaults) = (cx.registry, cx.defaults);
        let mut used = Used::default();
        let credentials =
            Credentials::compile(doc, defaults.secrets.as_ref()).map_err(CompileError)?;
        let mut upstreams = Vec::new();
        let mut probes = Vec::new();
        let mut live_targets = HashSet::new();
        for up in &doc.upstreams {
            let pool = registry.pool(up).map_err(CompileError)?;
            for t in &pool.targets {
                live_targets.insert((up.name.clone(), t.url.clone()));
            }
            if let Some(active) = &up.health.active {
                probes.push((pool.clone(), active.clone()));
            }
            upstreams.push(pool);
        }
        if live {
            registry.retain(&live_targets);
        }

        let now = time::OffsetDateTime::now_utc();
        let mut builder = RouteTableBuilder::new();
        let mut routes = Vec::new();
        for api in &doc.apis {
            for version in &api.versions {
                if version.status == VersionStatus::Draft {
                    continue;
                }
                let pool = upstreams
                    .iter()
                    .find(|p| *p.name == *version.upstream)
                    .ok_or_else(|| {
                        CompileError(format!("unknown upstream `{}`", version.upstream))
                    })?;
                let headers = lifecycle::deprecation_headers(api, version, now);
                let version_choice = api
                    .versioning
                    .as_ref()
                    .and_then(tollgate_model::document::Versioning::condition)
                    .map(|c| {
                        let known: Vec<&str> = api
                            .versions
                            .iter()
                            .filter(|v| v.status != VersionStatus::Draft)
                            .map(|v| v.version.as_str())
                            .collect();
                        Arc::new((c, known.join(", ")))
                    });
                let entitlement =
                    Entitlement::compile(doc, &api.name, &version.version, cx.limits, &mut used)
                        .map(Arc::new);
                // The version's OpenAPI document, compiled once for all its routes.
                let mut described: Option<Arc<Spec>> = None;
                for route in &version.routes {
                    let index = routes.len();
                    for spec in api.route_specs(version, route, index) {
                        builder.add(spec).map_err(|e| CompileError(e.to_string()))?;
                    }
                    let mut compiled = compile_route(
                        doc,
                        api,
                        version,
                        route,
                        pool.clone(),
                        &upstreams,
                        &headers,
                        cx,
                        &mut used,
                    )?;
                    compiled.entitlement = entitlement.clone();
                    compiled.version_choice = version_choice.clone();
                    let scopes = [
                        &route.policies[..],
                        &version.policies[..],
                        &api.policies[..],
                        &doc.policies[..],
                    ];
                    if let Some(policy) = narrowest(scopes, |p| match p {
                        Policy::Validate(v) => Some(v),
                        _ => None,
                    }) {
                        let spec = match &described {
                            Some(spec) => spec.clone(),
                            None => {
                                let at = |e: String| {
                                    CompileError(format!(
                                        "{} {}: validate: {e}",
                                        api.name, version.version
                                    ))
                                };
                                let text = version.spec.as_deref().ok_or_else(|| {
                                    at("the version has no OpenAPI document (`spec`)".into())
                                })?;
                                let spec = Arc::new(Spec::compile(text).map_err(at)?);
                                described = Some(spec.clone());
                                spec
                            }
                        };
                        compiled.validate = Some(CompiledValidate {
                            spec,
                            body: policy.body,
                            max_body: policy.max_body.0,
                        });
                    }
                    routes.push(compiled);
                }
            }
        }
        let router = builder.build().map_err(|e| CompileError(e.to_string()))?;
        let mut version_conditions: Vec<String> = doc
            .apis
            .iter()
            .filter_map(|a| a.versioning.as_ref()?.condition())
            .collect();
        version_conditions.sort();
        version_conditions.dedup();
        Ok(Snapshot {
            revision,
            router,
            routes,
            version_conditions: version_conditions.into(),
            upstreams,
            probes,
            credentials,
            trusted_proxies: doc.settings.trusted_proxies.clone(),
            certificates: Some(
                CertTable::compile(doc, defaults.secrets.as_ref()).map_err(CompileError)?,
            ),
            hsts: doc
                .settings
                .tls
                .hsts
                .as_deref()
                .and_then(|h| HeaderValue::from_str(h).ok()),
            redirect_http: doc.settings.tls.redirect_http,
            https_port: doc.settings.tls.https_port,
            used,
        })
    }
}

/// What compiling a snapshot needs besides the document: state that outlives snapshots.
pub struct Context<'a> {
    pub registry: &'a Registry,
    pub defaults: &'a Defaults,
    pub auth: &'a AuthShared,
    pub limits: &'a LimitsShared,
}

/// The policies of one type that apply to a route: those of the narrowest scope that has
/// any (route, then version, then API, then global).
fn narrowest<'a, T>(
    scopes: [&'a [Policy]; 4],
    pick: impl Fn(&'a Policy) -> Option<&'a T>,
) -> Option<&'a T> {
    scopes
        .iter()
        .find_map(|policies| policies.iter().find_map(&pick))
}

#[allow(clippy::too_many_arguments)]
fn compile_route(
    doc: &Document,
    api: &Api,
    version: &Version,
    route: &Route,
    upstream: Arc<UpstreamPool>,
    pools: &[Arc<UpstreamPool>],
    lifecycle_headers: &[(HeaderName, HeaderValue)],
    cx: &Context<'_>,
    used: &mut Used,
) -> Result<CompiledRoute, CompileError> {
    let (defaults, auth) = (cx.defaults, cx.auth);
    let scopes = [
        &route.policies[..],
        &version.policies[..],
        &api.policies[..],
        &doc.policies[..],
    ];
    // Several ip_restrict entries in one scope add up; the narrowest scope with any wins.
    let ip_restrict = scopes
        .iter()
        .map(|policies| {
            policies.iter().filter_map(|p| match p {
                Policy::IpRestrict(r) => Some(r),
                _ => None,
            })
        })
        .find_map(|mut rules| {
            let first = rules.next()?.clone();
            Some(rules.fold(first, |mut acc, r| {
                acc.allow.extend(r.allow.iter().copied());
                acc.deny.extend(r.deny.iter().copied());
                acc
            }))
        });
    let max_body = narrowest(scopes, |p| match p {
        Policy::RequestSize(r) => Some(r),
        _ => None,
    })
    .map(|r| r.max_body.0)
    .unwrap_or(defaults.max_body);
    let at = |e: String| {
        CompileError(format!(
            "{} {} route {}: {e}",
            api.name, version.version, route.path
        ))
    };
    let request_transform = narrowest(scopes, |p| match p {
        Policy::RequestTransform(t) => Some(t),
        _ => None,
    })
    .map(CompiledTransform::compile)
    .transpose()
    .map_err(at)?;
    let response_transform = narrowest(scopes, |p| match p {
        Policy::ResponseTransform(t) => Some(t),
        _ => None,
    })
    .map(CompiledTransform::compile)
    .transpose()
    .map_err(at)?;
    let cache = narrowest(scopes, |p| match p {
        Policy::Cache(c) => Some(c),
        _ => None,
    })
    .map(CompiledCache::compile);
    let aggregate = route
        .policies
        .iter()
        .find_map(|p| match p {
            Policy::Aggregate(a) => Some(a),
            _ => None,
        })
        .map(|a| {
            CompiledAggregate::compile(a, |name| pools.iter().find(|p| *p.name == *name).cloned())
        })
        .transpose()
        .map_err(at)?;
    // Authentication policies count as one group: the narrowest scope that has any of
    // them decides every way the route accepts callers.
    let secrets = defaults.secrets.as_ref();
    let authenticators = scopes
        .iter()
        .find(|policies| policies.iter().any(Policy::is_authentication))
        .map(|policies| {
            policies
                .iter()
                .filter_map(|p| match p {
                    Policy::KeyAuth(k) => Some(Authenticator::key(k)),
                    Policy::BasicAuth(b) => Some(Ok(Authenticator::basic(b))),
                    Policy::Mtls(m) => Some(Ok(Authenticator::Mtls {
                        allow_unknown: m.allow_unknown,
                    })),
                    Policy::Jwt(j) => Some(
                        CompiledJwt::compile(j, secrets, &auth.jwks)
                            .map(|j| Authenticator::Jwt(Arc::new(j))),
                    ),
                    Policy::OAuth2Introspection(o) => Some(
                        CompiledIntrospection::compile(o, secrets)
                            .map(|o| Authenticator::OAuth2(Arc::new(o))),
                    ),
                    _ => None,
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .transpose()
        .map_err(at)?
        .unwrap_or_default();
    let acl = narrowest(scopes, |p| match p {
        Policy::Acl(a) => Some(a),
        _ => None,
    })
    .cloned();
    let scopes_rule = narrowest(scopes, |p| match p {
        Policy::Scopes(s) => Some(s),
        _ => None,
    })
    .cloned();
    let authorize = narrowest(scopes, |p| match p {
        Policy::Authorize(a) => Some(a),
        _ => None,
    })
    .map(|a| CompiledCedar::compile(&a.cedar))
    .transpose()
    .map_err(at)?;
    let cors = narrowest(scopes, |p| match p {
        Policy::Cors(c) => Some(c),
        _ => None,
    })
    .map(CompiledCors::compile)
    .transpose()
    .map_err(at)?;
    let cache_id = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        // The whole version (status, dates, routes, policies) and the wider policies: any
        // change there can change the answer, so it starts the route's cache afresh.
        let scoped = serde_json::json!([api.name, version, api.policies, doc.policies]);
        scoped.to_string().hash(&mut h);
        h.finish()
    };
    let locations = [
        format!("route:{}@{}:{}", api.name, version.version, route.label()),
        format!("version:{}@{}", api.name, version.version),
        format!("api:{}", api.name),
        "global".to_string(),
    ];
    // Rate limits and quotas: every one of the narrowest scope that has any applies.
    let all_of = |pick: &dyn Fn(&Policy) -> bool| {
        scopes
            .iter()
            .enumerate()
            .find(|(_, policies)| policies.iter().any(pick))
            .map(|(i, policies)| (i, policies.iter().filter(|p| pick(p)).collect::<Vec<_>>()))
    };
    let (rate_at, rate_limits) = all_of(&|p| matches!(p, Policy::RateLimit(_)))
        .map(|(i, ps)| {
            let rs: Vec<_> = ps
                .into_iter()
                .filter_map(|p| match p {
                    Policy::RateLimit(r) => Some(r),
                    _ => None,
                })
                .collect();
            (locations[i].clone(), rs)
        })
        .unwrap_or_default();
    let (quota_at, quotas) = all_of(&|p| matches!(p, Policy::Quota(_)))
        .map(|(i, ps)| {
            let qs: Vec<_> = ps
                .into_iter()
                .filter_map(|p| match p {
                    Policy::Quota(q) => Some(q),
                    _ => None,
                })
                .collect();
            (locations[i].clone(), qs)
        })
        .unwrap_or_default();
    let limits = RouteLimits::compile(
        &api.name,
        (&rate_at, &quota_at),
        &rate_limits,
        &quotas,
        cx.limits,
        used,
    )
    .map(Box::new);
    let breaker = scopes
        .iter()
        .enumerate()
        .find_map(|(i, policies)| {
            policies.iter().find_map(|p| match p {
                Policy::CircuitBreaker(c) => Some((i, c)),
                _ => None,
            })
        })
        .map(|(i, c)| {
            // One breaker per policy and upstream: routes sharing both share its state.
            let key = format!("{}|{}|{c:?}", locations[i], upstream.name);
            used.breakers.insert(key.clone());
            cx.limits.breaker(key, || Breaker::new(c))
        });
    let guard = doc
        .upstreams
        .iter()
        .find(|u| *u.name == *upstream.name)
        .filter(|u| u.limits != UpstreamLimits::default())
        .map(|u| {
            used.guards.insert(format!("{}|{:?}", u.name, u.limits));
            cx.limits.guard(&u.name, &u.limits)
        });
    let successor = lifecycle::successor_path(api, version)
        .map(|p| format!("{} ({p})", version.successor.clone().unwrap_or_default()));
    let retired = version.status == VersionStatus::Retired;
    let brownouts: Arc<[(i64, i64)]> = if version.status == VersionStatus::Deprecated {
        lifecycle::brownout_windows(version).into()
    } else {
        Arc::from([])
    };
    Ok(CompiledRoute {
        access_log: api.access_log.as_ref().filter(|l| l.enabled).map(|l| {
            let lower = |v: &Vec<String>| v.iter().map(|h| h.to_ascii_lowercase()).collect();
            Arc::new(crate::accesslog::RouteLog::new(
                tollgate_insight::accesslog::LogSpec {
                    headers: lower(&l.headers),
                    mask_headers: lower(&l.mask_headers),
                    mask_fields: l.mask_fields.clone(),
                    body: l.body,
                },
            ))
        }),
        api: Arc::from(api.name.as_str()),
        version: Arc::from(version.version.as_str()),
        label: Arc::from(route.label()),
        labels: tollgate_insight::Labels::of(&api.name, &version.version, route.label()),
        upstream,
        strip_prefix: route.strip_prefix,
        retired,
        brownouts,
        successor,
        version_choice: None,
        lifecycle_headers: lifecycle_headers.to_vec(),
        ip_restrict,
        max_body,
        request_transform,
        response_transform,
        cache,
        cache_id,
        aggregate,
        authenticators,
        acl,
        scopes: scopes_rule,
        authorize,
        cors,
        entitlement: None,
        limits,
        breaker,
        validate: None,
        guard,
        metrics: RouteMetrics::new(&api.name, &version.version, route.label()),
    })
}
