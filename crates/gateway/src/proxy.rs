//! The request path: route, check, forward, answer (DESIGN §2). One entry point,
//! [`handle`], called once per request with the current snapshot.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tollgate_model::{HashOn, UpstreamProtocol};
use tollgate_router::{Match, normalize_path};

use crate::Gateway;
use crate::body::{BodyError, GuardedBody, ProxyBody, empty, find_body_error};
use crate::error::ProxyError;
use crate::forward;
use crate::snapshot::{CompiledRoute, Snapshot};
use crate::upstream::{TargetState, UpstreamPool, balance_key};

/// What one connection knows about its client.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
}

/// Answers one request. Never fails: every error becomes a problem+json response.
pub async fn handle(gw: &Gateway, conn: ConnInfo, req: Request<Incoming>) -> Response<ProxyBody> {
    let started = Instant::now();
    let request_id = forward::request_id(req.headers());
    let snapshot = gw.snapshot();
    let mut outcome = Outcome {
        route: None,
        upstream_time: None,
    };
    let mut resp = match proxy(&snapshot, conn, req, &request_id, &mut outcome).await {
        Ok(resp) => resp,
        Err(err) => {
            tracing::debug!(error = %err, request_id = ?request_id, "request failed at the gateway");
            err.to_response(request_id.to_str().unwrap_or(""))
        }
    };
    let total = started.elapsed();
    let upstream_ms = outcome.upstream_time.map(|d| d.as_secs_f64() * 1000.0);
    let gateway_ms = total.as_secs_f64() * 1000.0 - upstream_ms.unwrap_or(0.0);
    let headers = resp.headers_mut();
    headers.insert(
        forward::SERVER_TIMING.clone(),
        forward::server_timing(gateway_ms.max(0.0), upstream_ms),
    );
    headers.insert(forward::X_REQUEST_ID.clone(), request_id);
    let metrics = outcome
        .route
        .map(|i| &snapshot.routes[i].metrics)
        .unwrap_or(&gw.unmatched);
    metrics.count(resp.status().as_u16());
    metrics.duration.record(total.as_secs_f64());
    if let Some(u) = outcome.upstream_time {
        metrics.upstream_duration.record(u.as_secs_f64());
    }
    resp
}

struct Outcome {
    route: Option<usize>,
    upstream_time: Option<std::time::Duration>,
}

async fn proxy(
    snapshot: &Snapshot,
    conn: ConnInfo,
    mut req: Request<Incoming>,
    request_id: &HeaderValue,
    outcome: &mut Outcome,
) -> Result<Response<ProxyBody>, ProxyError> {
    let path = normalize_path(req.uri().path()).map_err(|e| ProxyError::BadPath(e.to_string()))?;
    let host = req
        .uri()
        .host()
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .map(str::to_owned);
    let headers = req.headers();
    let found = match snapshot
        .router
        .find(host.as_deref(), req.method().as_str(), &path, &|name| {
            headers.get(name).and_then(|v| v.to_str().ok())
        }) {
        Match::Found(found) => found,
        Match::MethodNotAllowed { allow } => {
            return Err(ProxyError::MethodNotAllowed {
                method: req.method().to_string(),
                allow: allow.join(", "),
            });
        }
        Match::NotFound => {
            return Err(ProxyError::NoRoute {
                method: req.method().to_string(),
                path: path.into_owned(),
            });
        }
    };
    let route_index = *found.value;
    let route = &snapshot.routes[route_index];
    outcome.route = Some(route_index);

    if let Some(successor) = &route.retired {
        return Err(ProxyError::Retired {
            api: route.api.to_string(),
            version: route.version.to_string(),
            successor: successor.clone(),
        });
    }
    if let Some(rules) = &route.ip_restrict {
        let ip = conn.peer.ip();
        let denied = rules.deny.iter().any(|n| n.contains(ip));
        let allowed = rules.allow.is_empty() || rules.allow.iter().any(|n| n.contains(ip));
        if denied || !allowed {
            return Err(ProxyError::IpDenied);
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

    let forward_path = if route.strip_prefix {
        found.rest
    } else {
        path.into_owned()
    };
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{forward_path}?{q}"),
        None => forward_path,
    };
    let upgrade = req.version() == Version::HTTP_11 && forward::wants_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let pool = &route.upstream;
    let (mut parts, body) = req.into_parts();
    forward::strip_hop_by_hop(&mut parts.headers, upgrade);
    parts.headers.remove(header::HOST);
    forward::add_forwarded(&mut parts.headers, conn.peer.ip(), host.as_deref());
    parts
        .headers
        .insert(forward::X_REQUEST_ID.clone(), request_id.clone());
    forward::ensure_traceparent(&mut parts.headers);
    let hash = hash_input(pool, &parts.headers, conn);

    // A request without a body can be sent again; one with a body streams once.
    let replayable = body.is_end_stream();
    let mut body = Some(if replayable {
        empty()
    } else {
        GuardedBody::new(body, route.max_body, pool.write_timeout).boxed_unsync()
    });
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    );
    let attempts = if replayable && idempotent && !upgrade {
        pool.retries + 1
    } else {
        1
    };

    let mut tried: Vec<usize> = Vec::new();
    let mut last_err = None;
    for _ in 0..attempts {
        let Some(index) = pool
            .balancer
            .pick(&pool.targets, &tried, hash, pool.cooldown)
        else {
            break;
        };
        tried.push(index);
        let target = &pool.targets[index];
        let uri = Uri::builder()
            .scheme("http")
            .authority(target.authority.clone())
            .path_and_query(path_and_query.as_str())
            .build()
            .map_err(|e| ProxyError::BadPath(e.to_string()))?;
        let mut upstream_req = Request::new(body.take().unwrap_or_else(empty));
        *upstream_req.method_mut() = parts.method.clone();
        *upstream_req.uri_mut() = uri;
        *upstream_req.version_mut() = match pool.protocol {
            UpstreamProtocol::Http1 => Version::HTTP_11,
            UpstreamProtocol::H2c => Version::HTTP_2,
        };
        *upstream_req.headers_mut() = parts.headers.clone();

        let sent = Instant::now();
        let result = send(pool, target, upstream_req).await;
        outcome.upstream_time = Some(sent.elapsed());
        match result {
            Ok(resp) => return Ok(respond(route, resp, client_upgrade)),
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

/// Sends one attempt to one target, keeping its health and in-flight count.
async fn send(
    pool: &UpstreamPool,
    target: &TargetState,
    req: Request<ProxyBody>,
) -> Result<Response<Incoming>, ProxyError> {
    target.in_flight.fetch_add(1, Ordering::Relaxed);
    let result = tokio::time::timeout(pool.read_timeout, pool.client.request(req)).await;
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
    for (name, value) in &route.lifecycle_headers {
        parts.headers.insert(name.clone(), value.clone());
    }
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
fn hash_input(pool: &Arc<UpstreamPool>, headers: &http::HeaderMap, conn: ConnInfo) -> Option<u64> {
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
