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
use crate::serve::{Account, Extras, ServeArgs, run as serve};

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
  - name: shipping
    title: Shipping rates
    description: Shipping rates and quotes for orders.
    team: logistics
    visibility: public
    versions:
      - version: v1
        upstream: orders-svc
        spec: |
          openapi: 3.0.3
          info: { title: Shipping rates, version: "1", description: Rates for each carrier and quotes for a parcel. }
          servers: [{ url: /shipping/v1 }]
          components:
            securitySchemes:
              key: { type: apiKey, in: header, name: x-api-key }
          security: [{ key: [] }]
          paths:
            /rates:
              get:
                operationId: listRates
                summary: Rates of every carrier
                parameters:
                  - { name: country, in: query, schema: { type: string }, description: Destination country (ISO 3166 code) }
                responses: { "200": { description: The rates } }
            /quotes:
              post:
                operationId: createQuote
                summary: A quote for one parcel
                requestBody:
                  content:
                    application/json:
                      schema: { type: object, required: [weight_kg], properties: { weight_kg: { type: number } } }
                      example: { weight_kg: 2.5 }
                responses: { "201": { description: The quote } }
        routes:
          - path: /shipping/v1
            policies:
              - key_auth: {}
products:
  - name: shipping
    title: Shipping
    description: Live carrier rates and parcel quotes.
    visibility: public
    apis: [shipping@v1]
    plans:
      - name: free
        title: Free
        rate_limit: { limit: 10, window: 1s }
        quota: { limit: 1000, period: day }
      - name: business
        title: Business
        approval: manual
        rate_limit: { limit: 100, window: 1s }
        price: { base_fee: "49.00", metered: { model: per_unit, unit_price: "0.001" } }
developers:
  - email: dev@acme.test
    organization: acme
apps:
  - name: acme-web
    owner: dev@acme.test
    keys:
      - secret: DEMO_KEY
subscriptions:
  - app: acme-web
    product: shipping
    plan: free
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

    // Fresh passwords for the demo's sign-in accounts too.
    let password = || {
        tollgate_secrets::generate_node_secret()
            .get(..16)
            .unwrap_or_default()
            .to_string()
    };
    let accounts = vec![
        Account {
            email: "admin@demo.test".to_string(),
            password: password(),
            dashboard_role: Some("owner"),
        },
        Account {
            email: "dev@acme.test".to_string(),
            password: password(),
            dashboard_role: None,
        },
    ];
    let sign_in = Accounts {
        admin: accounts[0].password.clone(),
        developer: accounts[1].password.clone(),
    };
    let proxy = display_addr(args.proxy_listen);
    let admin = display_addr(args.admin_listen);
    let portal = portal_display(&args.portal_listen);
    let data_dir = args
        .data_dir
        .clone()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let on_ready = Box::new(move |token: &str| {
        let places = Places {
            proxy: &proxy,
            admin: &admin,
            portal: &portal,
            data_dir: &data_dir,
            upstream: upstream_addr,
        };
        print_banner(&places, token, &demo_key, &sign_in)
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
            accounts,
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

/// The portal's address as printed (`off` when it is turned off).
fn portal_display(value: &str) -> String {
    match value.parse::<SocketAddr>() {
        Ok(addr) => format!("http://{}", display_addr(addr)),
        Err(_) => "off".to_string(),
    }
}

/// Where the demo's parts listen.
struct Places<'a> {
    proxy: &'a str,
    admin: &'a str,
    portal: &'a str,
    data_dir: &'a str,
    upstream: SocketAddr,
}

/// The demo's sign-in passwords.
struct Accounts {
    admin: String,
    developer: String,
}

fn print_banner(p: &Places<'_>, token: &str, key: &str, a: &Accounts) {
    let Places {
        proxy,
        admin,
        portal,
        data_dir,
        upstream,
    } = p;
    println!(
        r#"
Tollgate demo is running.

  Proxy (API traffic):  http://{proxy}
  Dashboard:            http://{admin}/   sign in: admin@demo.test / {admin_pw}
  Developer portal:     {portal}/   sign in: dev@acme.test / {dev_pw} (or sign up)
  Admin API:            http://{admin}/api   token: {token}
  Sample upstream:      http://{upstream} (orders and shipping services)
  Sample app:           acme-web, API key: {key}
  Data:                 {data_dir}

Try:
  curl -i http://{proxy}/v2/orders
  curl -i http://{proxy}/v2/orders/1001       # 401: this route needs an API key
  curl -i -H 'x-api-key: {key}' http://{proxy}/v2/orders/1001
                                              # RateLimit headers; the 6th call in 10 s gets 429
  curl -i http://{proxy}/v1/orders            # deprecated: Deprecation, Sunset and Link headers
  curl -i -H 'x-api-key: {key}' 'http://{proxy}/shipping/v1/rates?country=DE'
                                              # the Shipping product: acme-web is on its free plan
  curl -i http://{proxy}/v3/orders            # no route: 404 problem+json
  curl -s -H 'Authorization: Bearer {token}' http://{admin}/api/apis
  curl -s http://{admin}/metrics | grep tollgate_requests_total
  curl -s -H 'Authorization: Bearer {token}' 'http://{admin}/api/analytics/top?dimension=route'
                                              # analytics, a couple of seconds after the calls
  curl -s -H 'Authorization: Bearer {token}' http://{admin}/api/alerts
  TOLLGATE_ADMIN_URL=http://{admin} TOLLGATE_ADMIN_TOKEN={token} cargo run --release -- export

In the portal, sign in as dev@acme.test (or sign up), open acme-web, create a key, and call
the Shipping API from its reference page; the dashboard shows the calls a few seconds later.

Press Ctrl-C to stop.
"#,
        admin_pw = a.admin,
        dev_pw = a.developer,
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
    if path.starts_with("/shipping/") {
        return Ok(shipping(&method, &path, body_len));
    }
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

/// The sample shipping service behind the demo's product.
fn shipping(method: &http::Method, path: &str, body_len: usize) -> Response<Full<Bytes>> {
    let (status, body) = match (method.as_str(), path.trim_end_matches('/')) {
        ("GET", "/shipping/v1/rates") => (
            StatusCode::OK,
            json!({"rates": [
                {"carrier": "parcelpost", "days": 3, "price": {"amount": "4.90", "currency": "EUR"}},
                {"carrier": "swiftair", "days": 1, "price": {"amount": "12.00", "currency": "EUR"}},
            ]}),
        ),
        ("POST", "/shipping/v1/quotes") => (
            StatusCode::CREATED,
            json!({"quote": "q-1001", "price": {"amount": "6.40", "currency": "EUR"}, "received_bytes": body_len}),
        ),
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
    resp
}
