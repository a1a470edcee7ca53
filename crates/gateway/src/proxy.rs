//! The request path: route, check, forward, answer (DESIGN §2). One entry point,
//! [`handle`], called once per request with the current snapshot.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, BodyStream, Limited, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tollgate_model::{HashOn, UpstreamProtocol};
use tollgate_router::{Match, normalize_path};

use crate::Gateway;
use crate::auth::cors::CompiledCors;
use crate::auth::{self, Identity, authz};
use crate::body::{BodyError, BoxError, GuardedBody, ProxyBody, empty, find_body_error, full};
use crate::breaker::Open;
use crate::cache::{self, Lookup};
use crate::error::{ProxyError, Side};
use crate::forward;
use crate::limit;
use crate::snapshot::{CompiledRoute, Snapshot};
use crate::transform::CompiledTransform;
use crate::upstream::{TargetState, UpstreamPool, balance_key};
use crate::validate::{RequestBody, Violation};

/// What one connection knows about its client.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The peer's address as a header value, made once per connection.
    pub peer_value: HeaderValue,
    /// Set for connections that came over TLS.
    pub tls: Option<Arc<TlsConn>>,
}

/// What a TLS connection established.
#[derive(Debug, Default)]
pub struct TlsConn {
    /// The client certificate, verified against `settings.tls.client_ca`.
    pub client_cert: Option<crate::tls::ClientCert>,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr) -> ConnInfo {
        ConnInfo {
            peer,
            peer_value: forward::peer_value(peer.ip()),
            tls: None,
        }
    }
}

/// Answers one request. Never fails: every error becomes a problem+json response.
pub async fn handle(gw: &Gateway, conn: ConnInfo, req: Request<Incoming>) -> Response<ProxyBody> {
    let started = Instant::now();
    let trace = gw.tracer.is_on().then(|| {
        (
            std::time::SystemTime::now(),
            crate::otel::TraceCtx::from_header(req.headers().get(&forward::TRACEPARENT)),
        )
    });
    let peer_ip = conn.peer.ip();
    let method_name = if trace.is_some() {
        req.method().to_string()
    } else {
        String::new()
    };
    let request_id = forward::request_id(req.headers());
    let snapshot = gw.snapshot();
    let mut outcome = Outcome {
        route: None,
        upstream_time: None,
        limit_headers: Vec::new(),
        metered: None,
        app: None,
        capture: None,
        client_ip: None,
        blocked: false,
        trace: trace.map(|(_, ctx)| ctx),
        upstream_span: None,
    };
    let over_tls = conn.tls.is_some();
    if !over_tls
        && snapshot.redirect_http
        && !forwarded_https(&snapshot, &conn, req.headers())
        && let Some(resp) = redirect_to_https(gw, &snapshot, &req)
    {
        return resp;
    }
    let mut resp = match proxy(gw, &snapshot, conn, req, &request_id, &mut outcome).await {
        Ok(resp) => resp,
        Err(err) => {
            tracing::debug!(error = %err, request_id = ?request_id, "request failed at the gateway");
            err.to_response(request_id.to_str().unwrap_or(""))
        }
    };
    let total = started.elapsed();
    let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let upstream_us = outcome.upstream_time.map(micros);
    let gateway_us = micros(total).saturating_sub(upstream_us.unwrap_or(0));
    let headers = resp.headers_mut();
    headers.insert(
        forward::SERVER_TIMING.clone(),
        forward::server_timing(gateway_us, upstream_us),
    );
    headers.insert(forward::X_REQUEST_ID.clone(), request_id);
    // A plan's limits and the route's own each add their items (a structured field list).
    for (name, value) in outcome.limit_headers.drain(..) {
        headers.append(name, value);
    }
    if over_tls && let Some(hsts) = &snapshot.hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    let metrics = outcome
        .route
        .map(|i| &snapshot.routes[i].metrics)
        .unwrap_or(&gw.unmatched);
    metrics.count(resp.status().as_u16());
    if let Some((subscription, billable)) = &outcome.metered {
        gw.meter
            .record(subscription, resp.status().as_u16(), *billable);
    }
    metrics.duration.record(total.as_secs_f64());
    if let Some(u) = outcome.upstream_time {
        metrics.upstream_duration.record(u.as_secs_f64());
    }
    if let (Some((at, _)), Some(ctx)) = (trace, &outcome.trace) {
        let route = outcome.route.map(|i| &snapshot.routes[i]);
        for span in crate::otel::request_spans(
            ctx,
            at,
            started,
            Instant::now(),
            outcome.upstream_span,
            route.map_or("unmatched", |r| &r.label),
            &method_name,
            resp.status().as_u16(),
            route.map_or("", |r| &r.api),
        ) {
            gw.tracer.record(span);
        }
    }
    if let Some(route) = outcome.route.map(|i| &snapshot.routes[i]) {
        let status = resp.status().as_u16();
        if let (Some(capture), Some(log)) = (outcome.capture.take(), &route.access_log) {
            capture.finish(
                &gw.access_log,
                &log.spec,
                outcome.app.as_deref(),
                status,
                micros(total),
                upstream_us,
            );
        }
        gw.insight.record(tollgate_insight::Event {
            minute: unix_minute(),
            labels: route.labels,
            app: outcome.app.take(),
            status,
            total_us: micros(total),
            upstream_us,
            client_ip: outcome.client_ip.unwrap_or(peer_ip),
            detect: !outcome.blocked,
        });
    } else {
        // Matched no route: only the detectors look at it (404 enumeration).
        gw.insight.record(tollgate_insight::Event {
            minute: unix_minute(),
            labels: tollgate_insight::Labels::UNMATCHED,
            app: None,
            status: resp.status().as_u16(),
            total_us: micros(total),
            upstream_us: None,
            client_ip: outcome.client_ip.unwrap_or(peer_ip),
            detect: !outcome.blocked,
        });
    }
    resp
}

/// The current Unix minute.
fn unix_minute() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 60) as i64)
}

/// Whether a trusted proxy in front says the client used HTTPS (`X-Forwarded-Proto`).
fn forwarded_https(snapshot: &Snapshot, conn: &ConnInfo, headers: &http::HeaderMap) -> bool {
    snapshot
        .trusted_proxies
        .iter()
        .any(|n| n.contains(conn.peer.ip()))
        && headers
            .get(&forward::X_FORWARDED_PROTO)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// `308` to the same URL over HTTPS, when a TLS listener is there to take it.
fn redirect_to_https(
    gw: &Gateway,
    snapshot: &Snapshot,
    req: &Request<Incoming>,
) -> Option<Response<ProxyBody>> {
    let port = snapshot
        .https_port
        .unwrap_or_else(|| gw.https_port.load(Ordering::Relaxed));
    if port == 0 {
        return None;
    }
    let host = req
        .uri()
        .host()
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok())?;
    let host = match host.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if port == 443 {
        format!("https://{host}{pq}")
    } else {
        format!("https://{host}:{port}{pq}")
    };
    let location = HeaderValue::from_str(&location).ok()?;
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(header::LOCATION, location);
    Some(resp)
}

struct Outcome {
    route: Option<usize>,
    /// The client's address, once known (behind trusted proxies, the forwarded one).
    client_ip: Option<std::net::IpAddr>,
    /// Refused by a detector's block: not fed back to the detectors.
    blocked: bool,
    /// The request's trace, when spans are exported.
    trace: Option<crate::otel::TraceCtx>,
    /// When the upstream part began and ended (first attempt to last).
    upstream_span: Option<(Instant, Instant)>,
    /// What the access log keeps of the request, when the API logs.
    capture: Option<crate::accesslog::Capture>,
    /// The authenticated app, for analytics.
    app: Option<Arc<str>>,
    upstream_time: Option<std::time::Duration>,
    /// `RateLimit-Policy` and `RateLimit` for an admitted request.
    limit_headers: Vec<(http::HeaderName, HeaderValue)>,
    /// The subscription the request is metered under, once entitled.
    metered: Option<(Arc<str>, crate::metering::Billable)>,
}

async fn proxy(
    gw: &Gateway,
    snapshot: &Snapshot,
    conn: ConnInfo,
    mut req: Request<Incoming>,
    request_id: &HeaderValue,
    outcome: &mut Outcome,
) -> Result<Response<ProxyBody>, ProxyError> {
    let client_ip = forward::client_ip(conn.peer.ip(), req.headers(), &snapshot.trusted_proxies);
    outcome.client_ip = Some(client_ip);
    if let Some(until) = gw.blocked_address(client_ip) {
        outcome.blocked = true;
        return Err(ProxyError::Blocked(format!(
            "requests from this address are blocked for {} s after suspicious traffic",
            until
                - std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64)
        )));
    }
    // The URI is shared (a cheap clone) so the path can be borrowed while headers change.
    let uri = req.uri().clone();
    let path = normalize_path(uri.path()).map_err(|e| ProxyError::BadPath(e.to_string()))?;
    let host = uri
        .host()
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .map(str::to_owned);
    let headers = req.headers();
    let query = req.uri().query();
    let lookup = |method: &str| {
        snapshot
            .router
            .find(host.as_deref(), method, &path, &|name| {
                condition_value(name, headers, query)
            })
    };
    let mut matched = lookup(req.method().as_str());
    if matches!(matched, Match::MethodNotAllowed { .. })
        && CompiledCors::is_preflight(req.method(), headers)
        && let Some(wanted) = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| m.to_str().ok())
    {
        // A preflight is answered by the route the real request will take.
        if let found @ Match::Found(_) = lookup(wanted) {
            matched = found;
        }
    }
    let found = match matched {
        Match::Found(found) => found,
        Match::MethodNotAllowed { allow } => {
            return Err(ProxyError::MethodNotAllowed {
                method: req.method().to_string(),
                allow: allow.join(", "),
            });
        }
        Match::NotFound => {
            // A request that names a version (of an API whose versions are chosen by header
            // or query parameter) is told that version has no such route.
            for condition in snapshot.version_conditions.iter() {
                if let Some(asked) = condition_value(condition, headers, query) {
                    return Err(ProxyError::UnknownVersion(format!(
                        "no version `{asked}` answers {} {path}",
                        req.method()
                    )));
                }
            }
            return Err(ProxyError::NoRoute {
                method: req.method().to_string(),
                path: path.into_owned(),
            });
        }
    };
    let route_index = *found.value;
    let route = &snapshot.routes[route_index];
    // A request that names a version gets that version or nothing (the default version's
    // routes also match requests naming none).
    if let Some(choice) = &route.version_choice {
        let (condition, known) = &**choice;
        if let Some(asked) = condition_value(condition, headers, query)
            && asked != &*route.version
        {
            return Err(ProxyError::UnknownVersion(format!(
                "API {} has no version `{asked}` answering {} {path} (its versions: {known})",
                route.api,
                req.method()
            )));
        }
    }
    outcome.route = Some(route_index);

    if let Some(log) = &route.access_log
        && gw.access_log.is_on()
    {
        outcome.capture = Some(crate::accesslog::Capture::take(
            log, route, &req, request_id, client_ip,
        ));
    }
    if let Some(rules) = &route.ip_restrict {
        let ip = client_ip;
        let denied = rules.deny.iter().any(|n| n.contains(ip));
        let allowed = rules.allow.is_empty() || rules.allow.iter().any(|n| n.contains(ip));
        if denied || !allowed {
            return Err(ProxyError::IpDenied);
        }
    }
    let origin = match &route.cors {
        Some(cors) => {
            if CompiledCors::is_preflight(req.method(), req.headers()) {
                return cors.preflight(req.headers());
            }
            req.headers().get(header::ORIGIN).cloned()
        }
        None => None,
    };
    if route.retired {
        return Err(ProxyError::Retired {
            api: route.api.to_string(),
            version: route.version.to_string(),
            successor: route.successor.clone(),
        });
    }
    if !route.brownouts.is_empty() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if let Some((_, until)) = crate::lifecycle::in_brownout(&route.brownouts, now) {
            return Err(ProxyError::Brownout {
                api: route.api.to_string(),
                version: route.version.to_string(),
                successor: route.successor.clone(),
                until: time::OffsetDateTime::from_unix_timestamp(until)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default(),
                retry_after: u64::try_from(until - now).unwrap_or(1).max(1),
            });
        }
    }
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > route.max_body) {
        return Err(ProxyError::BodyTooLarge {
            limit: route.max_body,
        });
    }

    // Nobody but the gateway says who the caller is.
    req.headers_mut().remove(&forward::X_TOLLGATE_APP);
    req.headers_mut().remove(&forward::X_TOLLGATE_DEVELOPER);
    let mut query = uri.query().map(str::to_owned);
    // Authentication removes the credential; the cache still needs to know it was there.
    let had_authorization = req.headers().contains_key(header::AUTHORIZATION);
    let identity = if route.authenticators.is_empty() {
        Identity::default()
    } else {
        auth::authenticate(
            &route.authenticators,
            &snapshot.credentials,
            &gw.auth,
            req.headers_mut(),
            &mut query,
            conn.tls.as_ref().and_then(|t| t.client_cert.as_ref()),
        )
        .await?
    };
    outcome.app = identity.app.as_ref().map(|a| a.shared_name.clone());
    if let Some(app) = &identity.app
        && gw.blocked_app(&app.name).is_some()
    {
        outcome.blocked = true;
        return Err(ProxyError::Blocked(format!(
            "app `{}` is blocked for a while after suspicious traffic",
            app.name
        )));
    }
    if let Some(acl) = &route.acl {
        authz::check_acl(acl, &identity)?;
    }
    if let Some(rule) = &route.scopes {
        authz::check_scopes(rule, &identity)?;
    }
    if let Some(cedar) = &route.authorize {
        let params: Vec<(String, String)> = found
            .params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cedar.check(
            &identity,
            &authz::RequestFacts {
                api: &route.api,
                version: &route.version,
                route: &route.label,
                method: req.method().as_str(),
                path: &path,
                params: &params,
                client_ip,
            },
        )?;
    }

    if let Some(entitlement) = &route.entitlement {
        let entitled = entitlement.check(&identity)?;
        if gw.meter.credit_spent(&entitled.subscription) {
            return Err(ProxyError::CreditExhausted(format!(
                "the prepaid credit of subscription `{}` is spent; add credit to continue",
                entitled.subscription
            )));
        }
        outcome.metered = Some((entitled.subscription.clone(), entitled.billable));
        if let Some(plan) = &entitled.limits {
            let admitted =
                limit::admit(plan, &gw.limits, &identity, client_ip, req.headers()).await?;
            outcome.limit_headers = admitted.headers;
        }
    }
    if let Some(limits) = &route.limits {
        let admitted =
            limit::admit(limits, &gw.limits, &identity, client_ip, req.headers()).await?;
        outcome.limit_headers.extend(admitted.headers);
    }

    // The request as the API describes it: parameters now, a body as it is read (the
    // violations found so far wait for it, so one answer lists them all).
    let mut body_check = None;
    if let Some(v) = &route.validate {
        let (operation, mut violations) =
            v.spec
                .check_head(req.method(), &path, query.as_deref(), req.headers());
        match operation.and_then(|o| o.body()) {
            Some(described) if req.body().is_end_stream() => {
                described.check(None, b"", &mut violations)
            }
            Some(described) if v.body && route.aggregate.is_none() => {
                body_check = Some(BodyCheck {
                    described,
                    max_body: v.max_body,
                    pending: Vec::new(),
                });
            }
            _ => {}
        }
        match &mut body_check {
            Some(check) => check.pending = violations,
            None if !violations.is_empty() => {
                return Err(ProxyError::Invalid(Box::new(violations)));
            }
            None => {}
        }
    }

    // On an authenticated route the cache keys answers by caller; a caller the gateway
    // cannot tell apart from others is not served from the cache at all.
    let caller = if route.authenticators.is_empty() || route.cache.is_none() {
        None
    } else {
        let sub = identity
            .claims
            .as_ref()
            .and_then(|c| c.get("sub"))
            .and_then(|v| v.as_str());
        Some(match (&identity.app, sub, &identity.subject) {
            (Some(app), _, _) => Some(format!("app:{}", app.name)),
            (None, Some(sub), _) => Some(format!("sub:{sub}")),
            (None, None, Some(subject)) => Some(format!("subject:{subject}")),
            (None, None, None) => None,
        })
    };
    let uncacheable_caller = matches!(caller, Some(None));
    let caller = caller.flatten();

    // The cache answers before anything is sent upstream.
    let mut leader = None;
    let mut cache_request = None;
    if let Some(policy) = &route.cache
        && !uncacheable_caller
        && body_check.is_none()
        && matches!(*req.method(), Method::GET | Method::HEAD)
    {
        let wanted = cache::directives(req.headers());
        if !wanted.no_store {
            let pq = match &query {
                Some(q) => format!("{path}?{q}"),
                None => path.to_string(),
            };
            let key = policy.key(
                route.cache_id,
                req.method().as_str(),
                host.as_deref().unwrap_or(""),
                &pq,
                req.headers(),
                identity.app.as_ref().map(|a| a.name.as_str()),
                caller.as_deref(),
            );
            let revalidate = wanted.no_cache || wanted.max_age == Some(0);
            match gw.cache.lookup(&key, req.headers(), revalidate) {
                Lookup::Hit(entry) => {
                    let mut resp = entry.to_response("HIT");
                    if let Some(cors) = &route.cors {
                        cors.decorate(origin.as_ref(), &mut resp);
                    }
                    return Ok(resp);
                }
                Lookup::Leader(l) => {
                    leader = Some(l);
                    cache_request =
                        Some((req.headers().clone(), path.to_string(), had_authorization));
                }
                Lookup::Follower(mut rx) => {
                    // Another request is fetching this answer: wait for it, then use it.
                    let waited = tokio::time::timeout(
                        route.upstream.read_timeout,
                        rx.wait_for(Option::is_some),
                    )
                    .await;
                    if let Ok(Ok(done)) = waited
                        && let Some(Some(entry)) = done.as_ref()
                        && entry.matches(req.headers())
                    {
                        let mut resp = entry.to_response("HIT");
                        if let Some(cors) = &route.cors {
                            cors.decorate(origin.as_ref(), &mut resp);
                        }
                        return Ok(resp);
                    }
                }
            }
        }
    }

    let method = req.method().clone();
    let params = &found.params;
    let mut forward_path = if route.strip_prefix {
        found.rest.clone()
    } else {
        path.into_owned()
    };
    if let Some(t) = &route.request_transform {
        if let Some(p) = t.rewrite_path(params) {
            forward_path = p;
        }
        if t.has_query_rules() {
            query = t.apply_query(query.as_deref());
        }
    }
    let path_and_query = match query {
        Some(q) => format!("{forward_path}?{q}"),
        None => forward_path,
    };
    let upgrade = req.version() == Version::HTTP_11 && forward::wants_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    forward::strip_hop_by_hop(&mut parts.headers, upgrade);
    let forwarded_host = parts
        .headers
        .remove(header::HOST)
        .or_else(|| host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()));
    forward::add_forwarded(
        &mut parts.headers,
        &conn.peer_value,
        forwarded_host,
        conn.tls.is_some(),
    );
    parts
        .headers
        .insert(forward::X_REQUEST_ID.clone(), request_id.clone());
    match &outcome.trace {
        Some(t) => {
            parts
                .headers
                .insert(forward::TRACEPARENT.clone(), t.upstream_header());
        }
        None => forward::ensure_traceparent(&mut parts.headers),
    }
    if let Some(app) = &identity.app {
        parts
            .headers
            .insert(forward::X_TOLLGATE_APP.clone(), app.name_value.clone());
        parts.headers.insert(
            forward::X_TOLLGATE_DEVELOPER.clone(),
            app.developer_value.clone(),
        );
    }
    for (name, value) in &identity.forward {
        parts.headers.insert(name.clone(), value.clone());
    }
    if let Some(t) = &route.request_transform {
        t.apply_headers(&mut parts.headers);
    }
    if route
        .response_transform
        .as_ref()
        .is_some_and(|t| t.has_body_rules())
    {
        // Body rules read JSON: ask for it unencoded.
        parts.headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }

    let resp = match &route.aggregate {
        Some(aggregate) => {
            let sent = Instant::now();
            let result = aggregate.run(params, &parts.headers).await;
            outcome.upstream_time = Some(sent.elapsed());
            outcome.upstream_span = Some((sent, Instant::now()));
            result.map_err(|f| ProxyError::AggregatePart {
                step: f.step,
                reason: f.reason,
            })?
        }
        None => {
            let pass = match &route.breaker {
                Some(b) => Some(b.pass().map_err(|Open(retry_after)| {
                    limit::rejection_counter(&route.api, "circuit_open").increment(1);
                    ProxyError::CircuitOpen {
                        upstream: route.upstream.name.to_string(),
                        retry_after,
                    }
                })?),
                None => None,
            };
            let _in_flight = match &route.guard {
                Some(g) => Some(g.enter(&route.api)?),
                None => None,
            };
            let mut body = request_body(route, &mut parts.headers, body, body_check).await?;
            if let Some(capture) = &outcome.capture {
                body = capture.tee(body);
            }
            let result =
                forward_upstream(route, conn, parts, body, &path_and_query, upgrade, outcome).await;
            if let (Some(pass), Some(breaker)) = (pass, &route.breaker) {
                match &result {
                    Ok(resp) => pass.finish(!breaker.is_failure(resp.status().as_u16())),
                    Err(e) if e.side() != Side::Downstream => pass.finish(false),
                    // The client's fault says nothing about the upstream.
                    Err(_) => drop(pass),
                }
            }
            respond(route, result?, client_upgrade)
        }
    };
    let mut resp = resp;
    for (name, value) in &route.lifecycle_headers {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    if let Some(cors) = &route.cors {
        cors.decorate(origin.as_ref(), &mut resp);
    }
    let head = method == Method::HEAD;
    let resp = match &route.response_transform {
        Some(t) if resp.status() != StatusCode::SWITCHING_PROTOCOLS => {
            transform_response(t, resp, head).await?
        }
        _ => resp,
    };
    Ok(match (leader, cache_request, &route.cache) {
        (Some(leader), Some((request_headers, request_path, had_auth)), Some(policy)) => {
            store(
                leader,
                route,
                policy,
                &request_path,
                resp,
                &request_headers,
                had_auth,
            )
            .await
        }
        _ => resp,
    })
}

/// A request body still to be checked against the API description, and the violations
/// found before it was read.
struct BodyCheck<'s> {
    described: &'s RequestBody,
    max_body: u64,
    pending: Vec<Violation>,
}

/// The request body to send upstream: streamed with its limit and idle timeout, or, when
/// it must be checked or body rules apply, read whole (up to their limit), checked and
/// rewritten.
async fn request_body(
    route: &CompiledRoute,
    headers: &mut http::HeaderMap,
    body: Incoming,
    check: Option<BodyCheck<'_>>,
) -> Result<ProxyBody, ProxyError> {
    if body.is_end_stream() {
        return Ok(empty());
    }
    let pool = &route.upstream;
    let guarded = GuardedBody::new(body, route.max_body, pool.write_timeout);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let is_json = content_type.is_some_and(|c| c.contains("json"));
    let transform = route
        .request_transform
        .as_ref()
        .filter(|t| t.has_body_rules() && is_json);
    if transform.is_none() && check.is_none() {
        return Ok(guarded.boxed_unsync());
    }
    let limit = [
        transform.map(|t| t.max_body),
        check.as_ref().map(|c| c.max_body),
    ]
    .into_iter()
    .flatten()
    .fold(route.max_body, u64::min);
    let bytes = Limited::new(guarded, usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
        .await
        .map_err(
            |e| match e.downcast_ref::<http_body_util::LengthLimitError>() {
                Some(_) => ProxyError::BodyTooLarge { limit },
                None => match find_body_error(&*e) {
                    Some(BodyError::Idle(_)) => ProxyError::ClientTimeout,
                    Some(BodyError::TooLarge(l)) => ProxyError::BodyTooLarge { limit: *l },
                    _ => ProxyError::BadBody,
                },
            },
        )?
        .to_bytes();
    if let Some(check) = check {
        let mut violations = check.pending;
        check.described.check(content_type, &bytes, &mut violations);
        if !violations.is_empty() {
            return Err(ProxyError::Invalid(Box::new(violations)));
        }
    }
    let out = match transform {
        Some(t) => t.apply_body(&bytes).unwrap_or(bytes),
        None => bytes,
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    Ok(full(out))
}

/// Sends the request to the route's upstream, retrying on another target when that is
/// safe, and answers with the upstream's response.
async fn forward_upstream(
    route: &CompiledRoute,
    conn: ConnInfo,
    mut parts: http::request::Parts,
    body: ProxyBody,
    path_and_query: &str,
    upgrade: bool,
    outcome: &mut Outcome,
) -> Result<Response<Incoming>, ProxyError> {
    let pool = &route.upstream;
    let hash = hash_input(pool, &parts.headers, &conn);
    // A request without a body can be sent again; one with a body streams once.
    let replayable = body.is_end_stream();
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    );
    // Each attempt goes to another target, so there are never more than targets.
    let attempts = if replayable && idempotent && !upgrade {
        usize::try_from(pool.retries)
            .unwrap_or(0)
            .saturating_add(1)
            .min(pool.targets.len())
    } else {
        1
    };
    let mut body = Some(body);
    let mut tried: Vec<usize> = Vec::new();
    let mut last_err = None;
    for attempt in 1..=attempts {
        let Some(index) = pool
            .balancer
            .pick(&pool.targets, &tried, hash, pool.cooldown)
        else {
            break;
        };
        tried.push(index);
        let target = &pool.targets[index];
        let uri = Uri::builder()
            .scheme(target.scheme.clone())
            .authority(target.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| ProxyError::BadPath(e.to_string()))?;
        let mut upstream_req = Request::new(body.take().unwrap_or_else(empty));
        *upstream_req.method_mut() = parts.method.clone();
        *upstream_req.uri_mut() = uri;
        *upstream_req.version_mut() = match pool.protocol {
            UpstreamProtocol::Http1 => Version::HTTP_11,
            UpstreamProtocol::H2c => Version::HTTP_2,
        };
        // Only a request that may be retried keeps a copy of its headers.
        *upstream_req.headers_mut() = if attempt < attempts {
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };
        // The target's host, unless a request transform chose one.
        upstream_req
            .headers_mut()
            .entry(header::HOST)
            .or_insert_with(|| target.host_header.clone());

        let sent = Instant::now();
        let result = send(pool, target, upstream_req).await;
        outcome.upstream_time = Some(sent.elapsed());
        let first = outcome.upstream_span.map_or(sent, |(first, _)| first);
        outcome.upstream_span = Some((first, Instant::now()));
        match result {
            Ok(resp) => return Ok(resp),
            Err(err) => {
                let retry = err.retry_safe();
                last_err = Some(err);
                if !retry {
                    break;
                }
                tracing::debug!(upstream = %pool.name, target = %target.url, "retrying on another target");
            }
        }
    }
    Err(last_err.unwrap_or_else(|| ProxyError::NoHealthyTarget {
        upstream: pool.name.to_string(),
    }))
}

/// Applies a response transform; body rules read JSON answers whole, up to their limit.
async fn transform_response(
    t: &CompiledTransform,
    resp: Response<ProxyBody>,
    head: bool,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (mut parts, body) = resp.into_parts();
    t.apply_headers(&mut parts.headers);
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    let bodiless = head
        || matches!(
            parts.status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        );
    if !t.has_body_rules() || !is_json || bodiless {
        return Ok(Response::from_parts(parts, body));
    }
    let (bytes, rest) = collect_up_to(body, t.max_body).await;
    if rest.is_some() {
        return Err(ProxyError::AnswerTooLarge { limit: t.max_body });
    }
    let out = t.apply_body(&bytes).unwrap_or(bytes);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    Ok(Response::from_parts(parts, full(out)))
}

/// Keeps a cacheable answer (reading its body, up to the entry limit) and hands it to
/// the requests that waited for it; streams anything else through untouched.
async fn store(
    leader: cache::Leader,
    route: &CompiledRoute,
    policy: &cache::CompiledCache,
    path: &str,
    resp: Response<ProxyBody>,
    request: &http::HeaderMap,
    had_authorization: bool,
) -> Response<ProxyBody> {
    let has_auth = had_authorization || request.contains_key(header::AUTHORIZATION);
    let Some(fresh) = cache::freshness(resp.status(), resp.headers(), has_auth, policy.ttl) else {
        return mark_miss(resp);
    };
    let (parts, body) = resp.into_parts();
    let (collected, rest) = collect_up_to(body, policy.max_entry).await;
    match rest {
        None => {
            let entry = cache::entry_for(
                route.api.clone(),
                path.to_string(),
                parts.status,
                &parts.headers,
                collected.clone(),
                request,
                fresh,
            );
            leader.finish(Some(entry));
            mark_miss(Response::from_parts(parts, full(collected)))
        }
        Some(rest) => {
            drop(leader);
            mark_miss(Response::from_parts(parts, rest))
        }
    }
}

fn mark_miss(mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
    resp.headers_mut()
        .insert(cache::X_CACHE.clone(), HeaderValue::from_static("MISS"));
    resp
}

/// Reads a body up to `limit` bytes. Returns the whole body, or, when it is longer or
/// fails, what was read so far chained with the rest, as a body to pass on.
async fn collect_up_to(mut body: ProxyBody, limit: u64) -> (Bytes, Option<ProxyBody>) {
    let mut frames: Vec<Frame<Bytes>> = Vec::new();
    let mut size = 0u64;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref() {
                    size += d.len() as u64;
                }
                frames.push(frame);
                if size > limit {
                    return (Bytes::new(), Some(replay(frames, Some(body))));
                }
            }
            Some(Err(e)) => {
                let failed =
                    futures_util::stream::once(async move { Err::<Frame<Bytes>, BoxError>(e) });
                let head = futures_util::stream::iter(frames.into_iter().map(Ok));
                return (
                    Bytes::new(),
                    Some(StreamBody::new(head.chain(failed)).boxed_unsync()),
                );
            }
        }
    }
    if frames.iter().any(|f| !f.is_data()) {
        // Trailers: not kept in the cache; pass the answer on as it came.
        return (Bytes::new(), Some(replay(frames, None)));
    }
    let mut out = bytes::BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
    for f in frames {
        if let Ok(d) = f.into_data() {
            out.extend_from_slice(&d);
        }
    }
    (out.freeze(), None)
}

/// A body that yields `frames` and then whatever `rest` still holds.
fn replay(frames: Vec<Frame<Bytes>>, rest: Option<ProxyBody>) -> ProxyBody {
    let head = futures_util::stream::iter(frames.into_iter().map(Ok::<_, BoxError>));
    match rest {
        Some(rest) => StreamBody::new(head.chain(BodyStream::new(rest))).boxed_unsync(),
        None => StreamBody::new(head).boxed_unsync(),
    }
}

/// Sends one attempt to one target, keeping its health and in-flight count.
async fn send(
    pool: &UpstreamPool,
    target: &TargetState,
    req: Request<ProxyBody>,
) -> Result<Response<Incoming>, ProxyError> {
    target.in_flight.fetch_add(1, Ordering::Relaxed);
    let result = tokio::time::timeout(pool.read_timeout, pool.client().request(req)).await;
    target.in_flight.fetch_sub(1, Ordering::Relaxed);
    let upstream = || pool.name.to_string();
    match result {
        Ok(Ok(resp)) => {
            if matches!(resp.status().as_u16(), 502..=504) {
                target.record_failure(pool.passive_threshold);
            } else {
                target.record_success();
            }
            Ok(resp)
        }
        Ok(Err(e)) => {
            if let Some(body_err) = find_body_error(&e) {
                return Err(match body_err {
                    BodyError::TooLarge(limit) => ProxyError::BodyTooLarge { limit: *limit },
                    BodyError::Idle(_) => ProxyError::ClientTimeout,
                    BodyError::Source(_) => ProxyError::BadBody,
                });
            }
            target.record_failure(pool.passive_threshold);
            if e.is_connect() {
                Err(ProxyError::UpstreamConnect {
                    upstream: upstream(),
                })
            } else {
                tracing::debug!(error = ?e, "upstream request failed");
                Err(ProxyError::UpstreamProtocol {
                    upstream: upstream(),
                })
            }
        }
        Err(_elapsed) => {
            target.record_failure(pool.passive_threshold);
            Err(ProxyError::UpstreamTimeout {
                upstream: upstream(),
            })
        }
    }
}

/// Turns the upstream's answer into the client's: hop-by-hop headers go, lifecycle
/// headers come, the body streams with the read timeout between chunks.
fn respond(
    route: &CompiledRoute,
    resp: Response<Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ProxyBody> {
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    let (mut parts, body) = if switching {
        let mut resp = resp;
        if let Some(client) = client_upgrade {
            let upstream = hyper::upgrade::on(&mut resp);
            tokio::spawn(tunnel(client, upstream));
        }
        let (parts, _) = resp.into_parts();
        (parts, empty())
    } else {
        let (parts, body) = resp.into_parts();
        (
            parts,
            GuardedBody::new(body, u64::MAX, route.upstream.read_timeout).boxed_unsync(),
        )
    };
    forward::strip_hop_by_hop(&mut parts.headers, switching);
    // The client's connection decides the protocol version, not the upstream's.
    parts.version = Version::default();
    Response::from_parts(parts, body)
}

/// Copies bytes both ways between an upgraded client and upstream until either closes.
async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    match tokio::try_join!(client, upstream) {
        Ok((client, upstream)) => {
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(error = %e, "upgraded connection ended with an error");
            }
        }
        Err(e) => tracing::debug!(error = %e, "protocol upgrade failed"),
    }
}

/// The key `balance: hash` hashes for this request, if the request has one.
fn hash_input(pool: &Arc<UpstreamPool>, headers: &http::HeaderMap, conn: &ConnInfo) -> Option<u64> {
    match pool.hash_on.as_ref()? {
        HashOn::Header(name) => headers
            .get(name.as_str())
            .map(|v| balance_key(v.as_bytes())),
        HashOn::Cookie(name) => forward::cookie(headers, name).map(|v| balance_key(v.as_bytes())),
        HashOn::Ip => Some(balance_key(conn.peer.ip().to_string().as_bytes())),
        // Apps arrive with authentication; until a request carries one, fall back.
        HashOn::App => None,
    }
}

/// What a route condition names in the request: a header, or with a leading `?` a query
/// parameter (versions chosen by query parameter).
fn condition_value<'r>(
    name: &str,
    headers: &'r http::HeaderMap,
    query: Option<&'r str>,
) -> Option<&'r str> {
    match name.strip_prefix('?') {
        Some(param) => query_value(query, param),
        None => headers.get(name).and_then(|v| v.to_str().ok()),
    }
}

/// The raw value of the first `param` in a query string (`""` for a bare `param`).
fn query_value<'q>(query: Option<&'q str>, param: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == param).then_some(v)
    })
}
