//! `tollgate demo`: the whole product on a temporary data directory, with a built-in
//! orders service as the upstream and an API that has a deprecated `v1` and a published
//! `v2` (one of its routes needs an API key; the sample app's key is made fresh on each
//! run). Prints where to look and commands that work as printed.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tollgate_model::parse_document;

use crate::Failure;
use crate::serve::{Extras, ServeArgs, run as serve};

const CONFIG: &str = r#"
format_version: 1
upstreams:
  - name: orders-svc
    targets:
      - url: http://UPSTREAM
    health:
      active: { path: /healthz, interval: 5s }
      passive: { unhealthy: 5 }
apis:
  - name: orders
    title: Orders
    team: commerce
    visibility: public
    versions:
      - version: v1
        status: deprecated
        deprecated_at: 2026-10-01T00:00:00Z
        sunset_at: 2027-03-31T00:00:00Z
        successor: v2
        upstream: orders-svc
        routes:
          - path: /v1/orders
      - version: v2
        upstream: orders-svc
        routes:
          - path: /v2/orders
            methods: [GET, POST]
          - path: /v2/orders/{id}
            methods: [GET]
            policies:
              - key_auth: {}
              - rate_limit: { limit: 5, window: 10s, by: app }
              - quota: { limit: 1000, period: day, by: app }
developers:
  - email: dev@acme.test
    organization: acme
apps:
  - name: acme-web
    owner: dev@acme.test
    keys:
      - secret: DEMO_KEY
policies:
  - request_size: { max_body: 1MB }
"#;

pub fn run(mut args: ServeArgs) -> Result<(), Failure> {
    let data = tempfile::Builder::new()
        .prefix("tollgate-demo-")
        .tempdir()
        .map_err(|e| Failure::Runtime(format!("cannot create a temporary data directory: {e}")))?;
    if args.data_dir.is_none() && args.database.is_none() {
        args.data_dir = Some(data.path().to_path_buf());
    }
    let upstream = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| Failure::Runtime(format!("cannot start the sample upstream: {e}")))?;
    let upstream_addr = upstream
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    // A fresh key for the sample app on every run: the demo has no fixed credential.
    let demo_key = format!(
        "demo-{}",
        tollgate_secrets::generate_node_secret()
            .get(..24)
            .unwrap_or_default()
    );
    let text = CONFIG
        .replace("UPSTREAM", &upstream_addr.to_string())
        .replace("DEMO_KEY", &demo_key);
    let (config, _) =
        parse_document(&text).map_err(|e| Failure::Runtime(format!("demo configuration: {e}")))?;

    let proxy = display_addr(args.proxy_listen);
    let admin = display_addr(args.admin_listen);
    let data_dir = args
        .data_dir
        .clone()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let on_ready = Box::new(move |token: &str| {
        print_banner(&proxy, &admin, token, &data_dir, upstream_addr, &demo_key)
    });
    let start = Box::new(move || {
        tokio::spawn(serve_orders(upstream));
    });
    let result = serve(
        args,
        Some(Extras {
            config,
            on_ready,
            fresh_token: true,
            start,
        }),
    );
    drop(data);
    result
}

fn display_addr(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

fn print_banner(
    proxy: &str,
    admin: &str,
    token: &str,
    data_dir: &str,
    upstream: SocketAddr,
    key: &str,
) {
    println!(
        r#"
Tollgate demo is running.

  Proxy (API traffic):  http://{proxy}
  Admin API:            http://{admin}   token: {token}
  Sample upstream:      http://{upstream} (orders service)
  Sample app:           acme-web, API key: {key}
  Data:                 {data_dir}

Try:
  curl -i http://{proxy}/v2/orders
  curl -i http://{proxy}/v2/orders/1001       # 401: this route needs an API key
  curl -i -H 'x-api-key: {key}' http://{proxy}/v2/orders/1001
                                              # RateLimit headers; the 6th call in 10 s gets 429
  curl -i http://{proxy}/v1/orders            # deprecated: Deprecation, Sunset and Link headers
  curl -i http://{proxy}/v3/orders            # no route: 404 problem+json
  curl -s -H 'Authorization: Bearer {token}' http://{admin}/api/apis
  curl -s http://{admin}/metrics | grep tollgate_requests_total
  curl -s -H 'Authorization: Bearer {token}' 'http://{admin}/api/analytics/top?dimension=route'
                                              # analytics, a couple of seconds after the calls
  curl -s -H 'Authorization: Bearer {token}' http://{admin}/api/alerts
  TOLLGATE_ADMIN_URL=http://{admin} TOLLGATE_ADMIN_TOKEN={token} cargo run --release -- export

Press Ctrl-C to stop.
"#
    );
}

/// The sample orders service behind the demo API.
async fn serve_orders(listener: std::net::TcpListener) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(orders);
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn orders(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body_len = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    let v2 = path.starts_with("/v2");
    let order = |id: u32, total: &str| {
        if v2 {
            json!({"id": id, "status": "shipped", "total": {"amount": total, "currency": "USD"}})
        } else {
            json!({"id": id, "status": "shipped", "total": total})
        }
    };
    let (status, body) = match (method.as_str(), path.as_str()) {
        (_, "/healthz") => (StatusCode::OK, json!({"status": "ok"})),
        ("GET", p) if p.ends_with("/orders") || p.ends_with("/orders/") => (
            StatusCode::OK,
            json!({"orders": [order(1001, "49.00"), order(1002, "12.50")]}),
        ),
        ("POST", p) if p.ends_with("/orders") => (
            StatusCode::CREATED,
            json!({"id": 1003, "status": "received", "received_bytes": body_len}),
        ),
        ("GET", p) if p.contains("/orders/") => {
            match p.rsplit('/').next().and_then(|id| id.parse::<u32>().ok()) {
                Some(id @ 1001..=1002) => (StatusCode::OK, order(id, "49.00")),
                _ => (StatusCode::NOT_FOUND, json!({"error": "no such order"})),
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            json!({"error": "not found", "path": path}),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-seen-request-id", v);
    }
    Ok(resp)
}
