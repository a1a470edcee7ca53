//! A real HTTP server that plays the part of a proxied backend.
//!
//! Each [`MockUpstream`] runs on its own OS thread with its own single-threaded
//! tokio runtime. That keeps it serving even while a test blocks its own
//! runtime (e.g. in [`crate::Node::wait_exit`]), and makes [`MockUpstream::stop`]
//! deterministic: stopping drops that runtime, which closes the listener and
//! every connection before `stop` returns.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::stream;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::ws;

/// Size of the chunks `/bytes/{n}` streams its body in.
const BYTES_CHUNK: usize = 16 * 1024;

/// How many requests [`MockUpstream::requests`] remembers (oldest dropped first).
const MAX_RECORDED: usize = 10_000;

/// Response body type used by the mock.
type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Which protocols a mock accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// HTTP/1.1 and HTTP/2 prior knowledge (h2c), with HTTP/1.1 upgrades.
    Auto,
    /// HTTP/2 prior knowledge only.
    H2Only,
}

/// A request as the mock received it, for assertions on non-echo endpoints.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Request method, e.g. `GET`.
    pub method: String,
    /// Request path as received (without the query).
    pub path: String,
    /// Query string without the `?`, if any.
    pub query: Option<String>,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Request headers as received.
    pub headers: HeaderMap,
}

/// State shared between the handle and the serving thread.
struct Shared {
    name: String,
    hits: AtomicU64,
    health_hits: AtomicU64,
    healthy: AtomicBool,
    recorded: Mutex<Vec<RecordedRequest>>,
}

/// The serving thread and the means to stop it.
struct Running {
    shutdown: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

/// A real HTTP server on `127.0.0.1:<ephemeral>` for tests.
///
/// Endpoints (matched on the request path as received; every response carries
/// `x-upstream: NAME`):
///
/// * a path ending in `/healthz`: `200 ok`;
/// * a path containing `/status/{code}`: that status with a small JSON body;
/// * a path containing `/delay/{ms}`: sleeps, then echoes like the default;
/// * a path containing `/bytes/{n}`: `n` bytes of `x` streamed in 16 KiB chunks;
/// * a path containing `/trailers`: `application/grpc`, 5 body bytes, then
///   trailers `grpc-status: 0` and `grpc-message: ok`;
/// * a path containing `/ws`: WebSocket echo over an HTTP/1.1 upgrade;
/// * anything else: `200` JSON echo of the request
///   (`upstream`, `method`, `path`, `query`, `headers`, `body_len`, `version`).
///
/// Any response carries extra headers asked for in the query as `rh-NAME=VALUE`
/// (e.g. `?rh-cache-control=max-age%3D60`), so tests can script `Cache-Control`, `Vary`
/// and the like. The echo's body also includes the request body as `body` when it is
/// UTF-8 text.
///
/// After [`set_healthy(false)`](Self::set_healthy) every request answers `503`.
/// The server stops when dropped.
pub struct MockUpstream {
    /// The address the server listens on.
    pub addr: SocketAddr,
    mode: Mode,
    shared: Arc<Shared>,
    running: Option<Running>,
}

impl MockUpstream {
    /// Starts a server speaking HTTP/1.1 and HTTP/2 prior knowledge (h2c), with
    /// support for HTTP/1.1 upgrades (WebSocket).
    ///
    /// # Panics
    /// If no port can be bound on 127.0.0.1.
    pub async fn start(name: &str) -> MockUpstream {
        MockUpstream::launch(name, Mode::Auto)
    }

    /// Starts a server speaking HTTP/2 with prior knowledge only.
    ///
    /// # Panics
    /// If no port can be bound on 127.0.0.1.
    pub async fn start_h2(name: &str) -> MockUpstream {
        MockUpstream::launch(name, Mode::H2Only)
    }

    fn launch(name: &str, mode: Mode) -> MockUpstream {
        let listener =
            StdTcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on 127.0.0.1");
        let addr = listener.local_addr().expect("listener address");
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            hits: AtomicU64::new(0),
            health_hits: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            recorded: Mutex::new(Vec::new()),
        });
        let running = spawn_server(listener, mode, Arc::clone(&shared)).expect("start mock");
        MockUpstream {
            addr,
            mode,
            shared,
            running: Some(running),
        }
    }

    /// The server's name (as given to `start`), reported in `x-upstream`.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `host:port` of the server, as used in upstream target lists.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Number of requests received so far, health checks included.
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Number of requests to a path ending in `/healthz` received so far.
    pub fn health_hits(&self) -> u64 {
        self.shared.health_hits.load(Ordering::SeqCst)
    }

    /// Number of requests received so far, excluding `/healthz` probes.
    ///
    /// Handy for load-balancing assertions while active health checks run.
    pub fn traffic_hits(&self) -> u64 {
        // Read health first so concurrent probes can only make the result smaller, never wrap.
        let health = self.health_hits();
        self.hits().saturating_sub(health)
    }

    /// The most recent requests received (up to 10 000), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.recorded).clone()
    }

    /// Resets the hit counters and the recorded requests.
    pub fn reset(&self) {
        self.shared.hits.store(0, Ordering::SeqCst);
        self.shared.health_hits.store(0, Ordering::SeqCst);
        lock(&self.shared.recorded).clear();
    }

    /// When `false`, every request (including `/healthz`) answers `503`.
    pub fn set_healthy(&self, healthy: bool) {
        self.shared.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Whether the server currently answers normally (see [`set_healthy`](Self::set_healthy)).
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::SeqCst)
    }

    /// Whether the server is currently listening (i.e. not [`stop`](Self::stop)ped).
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Closes the listener and every open connection (WebSockets included)
    /// before returning; connecting to the port is refused afterwards.
    /// Calling it again is a no-op.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            // The receiver is gone only if the thread already ended.
            let _ = running.shutdown.send(());
            let _ = running.thread.join();
        }
    }

    /// Starts serving again on the same address after [`stop`](Self::stop),
    /// keeping name, counters and health flag. No-op if already running.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        let listener = StdTcpListener::bind(self.addr)
            .with_context(|| format!("re-bind mock upstream on {}", self.addr))?;
        self.running = Some(spawn_server(listener, self.mode, Arc::clone(&self.shared))?);
        Ok(())
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs the accept loop on a dedicated thread until the shutdown signal fires,
/// then drops the runtime so every connection task (and socket) goes away.
fn spawn_server(
    listener: StdTcpListener,
    mode: Mode,
    shared: Arc<Shared>,
) -> anyhow::Result<Running> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("build mock upstream runtime")?;
    let (shutdown, shutdown_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("mock-upstream-{}", shared.name))
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => panic!("mock upstream listener: {e}"),
                };
                tokio::select! {
                    () = accept_loop(listener, mode, shared) => {}
                    _ = shutdown_rx => {}
                }
            });
            // Dropping the runtime cancels (and drops) every spawned connection task.
            drop(runtime);
        })
        .context("spawn mock upstream thread")?;
    Ok(Running { shutdown, thread })
}

async fn accept_loop(listener: TcpListener, mode: Mode, shared: Arc<Shared>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if mode == Mode::H2Only {
        builder = builder.http2_only();
    }
    let builder = Arc::new(builder);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // E.g. EMFILE under load: back off briefly instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let builder = Arc::clone(&builder);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(handle(req, &shared).await) }
            });
            let io = TokioIo::new(stream);
            // Connection errors (resets, protocol errors) are expected in tests.
            // `http2_only` is ignored by `serve_connection_with_upgrades`, so the
            // HTTP/2-only mode uses the plain variant (no upgrades over h2 anyway).
            let _ = match mode {
                Mode::Auto => builder.serve_connection_with_upgrades(io, service).await,
                Mode::H2Only => builder.serve_connection(io, service).await,
            };
        });
    }
}

/// Routes one request and stamps `x-upstream` on the response.
async fn handle(mut req: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let scripted = scripted_headers(req.uri().query());
    let is_health = path.ends_with("/healthz");
    shared.hits.fetch_add(1, Ordering::SeqCst);
    if is_health {
        shared.health_hits.fetch_add(1, Ordering::SeqCst);
    }
    record(shared, &req);

    let mut response = if !shared.healthy.load(Ordering::SeqCst) {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"upstream": shared.name, "error": "unhealthy"}),
        )
    } else if is_health {
        text_response(StatusCode::OK, "ok")
    } else if let Some(code) = path_param(&path, "/status/") {
        status_response(shared, code)
    } else if let Some(ms) = path_param(&path, "/delay/") {
        match ms.parse::<u64>() {
            Ok(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                echo(req, shared).await
            }
            Err(_) => bad_request(shared, "invalid delay"),
        }
    } else if let Some(n) = path_param(&path, "/bytes/") {
        match n.parse::<usize>() {
            Ok(n) => bytes_response(n),
            Err(_) => bad_request(shared, "invalid byte count"),
        }
    } else if path.contains("/trailers") {
        trailers_response()
    } else if path.contains("/ws") {
        match ws::accept(&mut req) {
            Ok(response) => response.map(|()| Empty::new().boxed_unsync()),
            Err((status, reason)) => {
                json_response(status, &json!({"upstream": shared.name, "error": reason}))
            }
        }
    } else {
        echo(req, shared).await
    };

    response.headers_mut().insert(
        "x-upstream",
        HeaderValue::from_str(&shared.name).unwrap_or(HeaderValue::from_static("invalid-name")),
    );
    for (name, value) in scripted {
        response.headers_mut().append(name, value);
    }
    response
}

/// Response headers asked for in the query as `rh-NAME=VALUE` (percent-decoded).
fn scripted_headers(query: Option<&str>) -> Vec<(http::HeaderName, HeaderValue)> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' if i + 2 < bytes.len() => {
                    match u8::from_str_radix(
                        std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""),
                        16,
                    ) {
                        Ok(b) => {
                            out.push(b);
                            i += 3;
                        }
                        Err(_) => {
                            out.push(b'%');
                            i += 1;
                        }
                    }
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("rh-")?;
            Some((
                http::HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_str(&decode(v)).ok()?,
            ))
        })
        .collect()
}

fn record(shared: &Shared, req: &Request<Incoming>) {
    let entry = RecordedRequest {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        version: format!("{:?}", req.version()),
        headers: req.headers().clone(),
    };
    let mut recorded = lock(&shared.recorded);
    if recorded.len() >= MAX_RECORDED {
        recorded.remove(0);
    }
    recorded.push(entry);
}

/// The path segment following `marker`, e.g. `path_param("/a/status/404/x", "/status/")` is `"404"`.
fn path_param<'a>(path: &'a str, marker: &str) -> Option<&'a str> {
    let start = path.find(marker)? + marker.len();
    let rest = &path[start..];
    Some(rest.split('/').next().unwrap_or(rest))
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed_unsync()
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn text_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn bad_request(shared: &Shared, reason: &str) -> Response<Body> {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"upstream": shared.name, "error": reason}),
    )
}

/// `/status/{code}`: any final status 200..=599; 204 and 304 get no body.
fn status_response(shared: &Shared, code: &str) -> Response<Body> {
    let status = match code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(status) if (200..=599).contains(&status.as_u16()) => status,
        _ => return bad_request(shared, "invalid status code"),
    };
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        let mut response = Response::new(Empty::new().boxed_unsync());
        *response.status_mut() = status;
        return response;
    }
    json_response(
        status,
        &json!({"upstream": shared.name, "status": status.as_u16()}),
    )
}

/// `/bytes/{n}`: `n` bytes of `x`, streamed in 16 KiB chunks with a `Content-Length`.
fn bytes_response(n: usize) -> Response<Body> {
    let chunk = Bytes::from(vec![b'x'; BYTES_CHUNK.min(n)]);
    let full_chunks = n / BYTES_CHUNK;
    let remainder = n % BYTES_CHUNK;
    let frames = (0..full_chunks)
        .map(move |_| chunk.clone())
        .chain((remainder > 0).then(|| Bytes::from(vec![b'x'; remainder])))
        .map(|data| Ok::<_, Infallible>(Frame::data(data)));
    let mut response = Response::new(StreamBody::new(stream::iter(frames)).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
    response
}

/// `/trailers`: a gRPC-looking response with 5 body bytes and trailers.
fn trailers_response() -> Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("grpc-message", HeaderValue::from_static("ok"));
    let frames = vec![
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
        Ok(Frame::trailers(trailers)),
    ];
    let mut response = Response::new(StreamBody::new(stream::iter(frames)).boxed_unsync());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// The default endpoint: reads the whole body and describes the request as JSON.
async fn echo(req: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return bad_request(shared, &format!("reading request body: {e}")),
    };
    let body_len = body.len();
    let body_text = (body_len <= 65_536)
        .then(|| std::str::from_utf8(&body).ok())
        .flatten();
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let value = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        headers.insert(name.as_str().to_owned(), Value::String(value));
    }
    json_response(
        StatusCode::OK,
        &json!({
            "upstream": shared.name,
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "authority": parts.uri.authority().map(|a| a.as_str()),
            "headers": headers,
            "body_len": body_len,
            "body": body_text,
            "version": format!("{:?}", parts.version),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_param_extracts_segment() {
        assert_eq!(path_param("/status/404", "/status/"), Some("404"));
        assert_eq!(path_param("/api/status/503/x", "/status/"), Some("503"));
        assert_eq!(path_param("/status/", "/status/"), Some(""));
        assert_eq!(path_param("/statuses", "/status/"), None);
    }
}
