//! A small HTTP client for tests, built on hyper-util's legacy pooled client.

use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Default per-request deadline (connect + response + whole body).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A fully received HTTP response.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole response body.
    pub body: Bytes,
    /// Trailers, if the response carried any.
    pub trailers: Option<HeaderMap>,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
}

impl Reply {
    /// Parses the body as JSON.
    ///
    /// # Panics
    /// If the body is not valid JSON (the message shows status and body).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}: {}",
                self.status,
                self.text()
            )
        })
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A response header as a string, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A trailer as a string, if present and valid UTF-8.
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .as_ref()?
            .get(name)
            .and_then(|v| v.to_str().ok())
    }
}

/// A keep-alive HTTP client (cheap to clone; clones share the connection pool).
///
/// Its pool belongs to the tokio runtime it is first used on, so create one
/// per test rather than sharing a global instance across tests.
#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// An HTTP/1.1 client.
    pub fn new() -> Client {
        Client::build(false)
    }

    /// An HTTP/2 client using prior knowledge (h2c) over plain TCP.
    pub fn h2c() -> Client {
        Client::build(true)
    }

    fn build(http2_only: bool) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let inner = HyperClient::builder(TokioExecutor::new())
            .http2_only(http2_only)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Client {
            inner,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Returns a client with a different per-request deadline (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> anyhow::Result<Reply> {
        self.request("GET", url, &[], Bytes::new()).await
    }

    /// `GET url` with extra request headers.
    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> anyhow::Result<Reply> {
        self.request("GET", url, headers, Bytes::new()).await
    }

    /// `POST url` with a body and no extra headers.
    pub async fn post(&self, url: &str, body: impl Into<Bytes>) -> anyhow::Result<Reply> {
        self.request("POST", url, &[], body).await
    }

    /// Sends a request. `headers` are appended in order (repeats allowed); a
    /// `host` header overrides the one derived from the URL.
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> anyhow::Result<Reply> {
        let method = Method::from_bytes(method.as_bytes())
            .with_context(|| format!("invalid method {method}"))?;
        let uri: Uri = url.parse().with_context(|| format!("invalid url {url}"))?;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body.into()))?;
        for (name, value) in headers {
            request.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes())
                    .with_context(|| format!("invalid header name {name}"))?,
                HeaderValue::from_str(value)
                    .with_context(|| format!("invalid header value {value}"))?,
            );
        }
        self.send(request).await
    }

    /// Sends a prepared request and collects the whole response.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> anyhow::Result<Reply> {
        let what = format!("{} {}", request.method(), request.uri());
        let exchange = async {
            let response = self.inner.request(request).await?;
            let (parts, body) = response.into_parts();
            let collected = body.collect().await?;
            Ok::<_, anyhow::Error>(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                trailers: collected.trailers().cloned(),
                body: collected.to_bytes(),
                version: format!("{:?}", parts.version),
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| anyhow!("{what}: no complete response within {:?}", self.timeout))?
            .with_context(|| what)
    }
}
