//! Calling the admin API in process, as the signed-in person, and the HTTP client the
//! portal's try-it console calls the gateway with.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tollgate_admin::Principal;
use tower::ServiceExt;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Largest API answer a page reads.
const MAX_ANSWER: usize = 32 << 20;

/// The admin API router, called in process.
pub struct InProcess {
    router: Router,
}

/// What the API answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// The elements of the array at `key` of a JSON object (none if it is missing).
pub fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// The string at `key` of a JSON object, or empty.
pub fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The problem's `detail`, or the status.
    pub fn detail(&self) -> String {
        self.body
            .get("detail")
            .and_then(Value::as_str)
            .map_or_else(|| self.status.to_string(), str::to_string)
    }

    /// Field errors of a validation problem, by the last segment of their path
    /// (`apps[3].name` → `name`), for showing next to a form's fields.
    pub fn field_errors(&self) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for e in items(&self.body, "errors") {
            let path = e.get("path").and_then(Value::as_str).unwrap_or("");
            let field = path
                .rsplit('.')
                .next()
                .unwrap_or(path)
                .split('[')
                .next()
                .unwrap_or("")
                .to_string();
            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
            out.entry(field).or_insert_with(|| message.to_string());
        }
        out
    }
}

impl InProcess {
    pub fn new(router: Router) -> InProcess {
        InProcess { router }
    }

    pub async fn call(
        &self,
        who: &Principal,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Answer {
        let body = match body {
            Some(v) => Body::from(v.to_string()),
            None => Body::empty(),
        };
        let mut req = match Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
        {
            Ok(r) => r,
            Err(e) => {
                return Answer {
                    status: StatusCode::BAD_REQUEST,
                    body: serde_json::json!({ "detail": format!("bad request to {uri}: {e}") }),
                };
            }
        };
        req.extensions_mut().insert(who.clone());
        let Ok(resp) = self.router.clone().oneshot(req).await;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    pub async fn get(&self, who: &Principal, uri: &str) -> Answer {
        self.call(who, Method::GET, uri, None).await
    }
}

/// What a path or query component keeps as is (RFC 3986 unreserved characters).
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one query or path component.
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}
