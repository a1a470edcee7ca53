//! Small HTTP(S) calls the gateway makes for itself: JWKS documents and token
//! introspection. Each proxy worker keeps its own client (like upstream pools). Answers
//! are limited in size and time.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

type FetchClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Largest answer read.
const MAX_ANSWER: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(5);

thread_local! {
    static CLIENT: std::cell::OnceCell<FetchClient> = const { std::cell::OnceCell::new() };
}

fn client() -> FetchClient {
    CLIENT.with(|c| {
        c.get_or_init(|| {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_connect_timeout(Some(Duration::from_secs(2)));
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(crate::tls::client_config())
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            Client::builder(TokioExecutor::new())
                .timer(TokioTimer::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(https)
        })
        .clone()
    })
}

async fn send(req: Request<Full<Bytes>>) -> Result<Bytes, String> {
    let url = req.uri().to_string();
    let call = async {
        let resp = client().request(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered {}", resp.status()));
        }
        Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| format!("reading {url}: {e}"))
    };
    tokio::time::timeout(TIMEOUT, call)
        .await
        .map_err(|_| format!("{url} did not answer within {TIMEOUT:?}"))?
}

/// GET a JSON document.
pub async fn get(url: &str) -> Result<Bytes, String> {
    let req = Request::builder()
        .method(Method::GET)
        .uri(url)
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    send(req).await
}

/// POST a form with an `Authorization` header.
pub async fn post_form(url: &str, authorization: &str, body: String) -> Result<Bytes, String> {
    let req = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, authorization)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    send(req).await
}

/// POST a JSON body with extra headers (webhook deliveries). Any non-2xx answer is an error.
pub async fn post_json(url: &str, headers: &[(&str, String)], body: String) -> Result<(), String> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "Tollgate-Webhooks/1");
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    send(req).await.map(|_| ())
}
