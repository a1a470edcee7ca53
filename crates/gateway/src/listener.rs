//! The proxy listener: accepts connections, serves HTTP/1.1 and HTTP/2 (h2c prior
//! knowledge) with upgrades, enforces header limits and read timeouts, and drains
//! in-flight requests on shutdown.
//!
//! A drain loses no request that a client sends in good faith. Once it begins:
//!
//! - every HTTP/1 response still to be written carries `Connection: close`, so each busy
//!   keep-alive connection is closed by the response that ends its next request, and the
//!   client knows not to send another on it;
//! - an HTTP/2 connection gets a GOAWAY (hyper's graceful shutdown), and its client opens a
//!   new connection for further requests;
//! - an HTTP/1 connection that says nothing is closed only once it has been quiet (no byte
//!   read or written) for [`ListenerSettings::idle_grace`]. Closing an idle keep-alive
//!   connection at once would race with a client that is sending its next request on it at
//!   that moment; a connection that was quiet for the whole grace period belongs to a
//!   client that is not in the middle of anything.
//!
//! Together with a listening socket that stays open in a successor process (see the
//! binary's `handover` module), this is what makes a restart invisible to clients.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{CONNECTION, HeaderValue};
use http::{Request, StatusCode, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Gateway;
use crate::body::BoxError;
use crate::guard::SmugglingGuard;
use crate::proxy::{ConnInfo, TlsConn, handle};

/// Limits on what clients may send.
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    /// Largest request head (request line and headers) in bytes; above it: 431.
    pub max_header_bytes: usize,
    /// Most header fields in one request; above it: 431.
    pub max_headers: usize,
    /// Time a client has to send the whole request head.
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish after shutdown begins.
    pub drain_timeout: Duration,
    /// During a drain, how long an HTTP/1 connection must have been quiet before it is
    /// closed (see the module documentation).
    pub idle_grace: Duration,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            idle_grace: Duration::from_millis(500),
        }
    }
}

/// Serves the proxy on `listener` until `shutdown` resolves, then stops accepting and
/// waits up to `drain_timeout` for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    gw: Arc<Gateway>,
    settings: ListenerSettings,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, gw, settings, None, shutdown).await
}

/// Serves HTTPS on `listener`: TLS 1.2/1.3 with the configuration's certificates chosen
/// by SNI, HTTP/2 or HTTP/1.1 by ALPN. A handshake must finish within the header timeout.
pub async fn serve_tls(
    listener: TcpListener,
    gw: Arc<Gateway>,
    settings: ListenerSettings,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(gw.tls_server_config());
    serve_with(listener, gw, settings, Some(acceptor), shutdown).await
}

async fn serve_with(
    listener: TcpListener,
    gw: Arc<Gateway>,
    settings: ListenerSettings,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes.max(8192))
        .max_headers(settings.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(512)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let drain = Drain::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = Conn::new(&drain, &gw, ConnInfo::new(peer), settings.idle_grace);
                let stream = Tracked { inner: stream, io: conn.state.clone() };
                let Some(acceptor) = &tls else {
                    let io = SmugglingGuard::new(stream, settings.max_header_bytes, settings.header_read_timeout);
                    tokio::spawn(conn.serve(&builder, io));
                    continue;
                };
                let builder = builder.clone();
                let accepting = tokio::time::timeout(settings.header_read_timeout, acceptor.accept(stream));
                let max_head = settings.max_header_bytes;
                let head_timeout = settings.header_read_timeout;
                tokio::spawn(async move {
                    let mut conn = conn;
                    let stream = match accepting.await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let (_, session) = stream.get_ref();
                    let client_cert = session
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|der| crate::tls::ClientCert::from_der(der));
                    conn.info.tls = Some(Arc::new(TlsConn { client_cert }));
                    if session.alpn_protocol() == Some(b"h2") {
                        conn.serve(&builder, stream).await;
                    } else {
                        conn.serve(&builder, SmugglingGuard::new(stream, max_head, head_timeout)).await;
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("proxy listener closed; draining in-flight requests");
    if tokio::time::timeout(settings.drain_timeout, drain.start())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout reached; closing remaining connections");
    }
}

/// The drain signal of one listener, and the count of connections still open.
struct Drain {
    /// Turns `true` when the drain begins; every open connection holds a receiver.
    signal: watch::Sender<bool>,
    /// The same, for the request path: answers then carry `Connection: close`.
    draining: Arc<AtomicBool>,
}

impl Drain {
    fn new() -> Drain {
        Drain {
            signal: watch::Sender::new(false),
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Begins the drain and resolves once every connection has ended.
    async fn start(self) {
        self.draining.store(true, Ordering::Relaxed);
        let _ = self.signal.send(true);
        self.signal.closed().await;
    }
}

/// What the drain of one connection needs to know about it.
#[derive(Debug, Default)]
struct ConnState {
    /// Read and write calls that moved bytes; unchanged over a grace period means quiet.
    io: AtomicU64,
    /// Set once a request arrived over HTTP/2.
    h2: AtomicBool,
}

/// One accepted connection, before it is served.
struct Conn {
    gw: Arc<Gateway>,
    info: ConnInfo,
    state: Arc<ConnState>,
    draining: Arc<AtomicBool>,
    drain: watch::Receiver<bool>,
    idle_grace: Duration,
}

impl Conn {
    fn new(drain: &Drain, gw: &Arc<Gateway>, info: ConnInfo, idle_grace: Duration) -> Conn {
        Conn {
            gw: gw.clone(),
            info,
            state: Arc::default(),
            draining: drain.draining.clone(),
            drain: drain.signal.subscribe(),
            idle_grace,
        }
    }

    /// Serves HTTP on `io` until the client leaves or the drain closes the connection.
    fn serve<I>(
        self,
        builder: &auto::Builder<TokioExecutor>,
        io: I,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            gw,
            info,
            state,
            draining,
            drain,
            idle_grace,
        } = self;
        let seen = state.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let h1 = req.version() < Version::HTTP_2;
            if !h1 {
                seen.h2.store(true, Ordering::Relaxed);
            }
            // Decided when the request arrives: a connection whose response went out
            // without it is closed once quiet instead.
            let close = h1 && draining.load(Ordering::Relaxed);
            let gw = gw.clone();
            let info = info.clone();
            async move {
                let mut response = handle(&gw, info, req).await;
                if close && response.status() != StatusCode::SWITCHING_PROTOCOLS {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response)
            }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        // This connection's own graceful shutdown, started by `drive` when it decides.
        let shutdown = GracefulShutdown::new();
        // Boxed here, where the compiler can see that the connection is `Send`.
        let conn: Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>> =
            Box::pin(shutdown.watch(conn));
        async move {
            // `drain` is dropped only once the connection ended: the listener's drain
            // waits for that.
            if let Err(e) = drive(conn, shutdown, state, drain, idle_grace).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
    }
}

/// Runs a connection to its end; once the drain begins, shuts it down as the module
/// documentation describes.
async fn drive(
    mut conn: Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>,
    shutdown: GracefulShutdown,
    state: Arc<ConnState>,
    mut drain: watch::Receiver<bool>,
    idle_grace: Duration,
) -> Result<(), BoxError> {
    tokio::select! {
        ended = conn.as_mut() => return ended,
        _ = drain.wait_for(|draining| *draining) => {}
    }
    loop {
        if state.h2.load(Ordering::Relaxed) {
            break;
        }
        let before = state.io.load(Ordering::Relaxed);
        tokio::select! {
            ended = conn.as_mut() => return ended,
            () = tokio::time::sleep(idle_grace) => {}
        }
        if state.io.load(Ordering::Relaxed) == before {
            break;
        }
    }
    // HTTP/2: GOAWAY, open streams finish. HTTP/1: closed if idle, else after the
    // response in progress.
    let ((), ended) = tokio::join!(shutdown.shutdown(), conn);
    ended
}

/// A connection's byte stream that counts the calls that moved bytes, for the drain.
struct Tracked<T> {
    inner: T,
    io: Arc<ConnState>,
}

impl<T> Tracked<T> {
    fn moved(&self) {
        self.io.io.fetch_add(1, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Defaults;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Serves an empty gateway on a free port; sending on the returned channel starts the
    /// drain, and the handle ends when the listener has drained.
    async fn listen(
        idle_grace: Duration,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let settings = ListenerSettings {
            idle_grace,
            ..ListenerSettings::default()
        };
        let gw = Gateway::new(Defaults::default());
        let served = tokio::spawn(serve(listener, gw, settings, async move {
            let _ = stopped.await;
        }));
        (addr, stop, served)
    }

    /// Sends one HTTP/1.1 request and reads its response head and body (by length).
    async fn exchange(stream: &mut TcpStream) -> String {
        stream
            .write_all(b"GET /nothing HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before the response");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
            let Some(end) = text.find("\r\n\r\n") else {
                continue;
            };
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }

    /// Whether the peer closed the connection within `wait`.
    async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(n)) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn a_request_sent_during_the_drain_is_answered_with_connection_close() {
        let (addr, stop, served) = listen(Duration::from_secs(5)).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let first = exchange(&mut client).await;
        assert!(!first.contains("connection: close"), "{first}");
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The idle keep-alive connection is still open and answers the next request.
        let second = exchange(&mut client).await;
        assert!(second.starts_with("http/1.1 "), "{second}");
        assert!(second.contains("connection: close"), "{second}");
        assert!(closed_within(&mut client, Duration::from_secs(2)).await);
        tokio::time::timeout(Duration::from_secs(2), served)
            .await
            .expect("the listener drains once its connection closed")
            .unwrap();
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_once_quiet_for_the_grace_period() {
        let grace = Duration::from_millis(600);
        let (addr, stop, served) = listen(grace).await;
        let mut used = TcpStream::connect(addr).await.unwrap();
        exchange(&mut used).await;
        // A connection that never sent a byte is treated the same way.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let began = std::time::Instant::now();
        stop.send(()).unwrap();
        assert!(
            !closed_within(&mut used, grace / 2).await,
            "closed too early"
        );
        assert!(closed_within(&mut used, Duration::from_secs(3)).await);
        assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
        assert!(began.elapsed() >= grace, "{:?}", began.elapsed());
        tokio::time::timeout(Duration::from_secs(2), served)
            .await
            .expect("the listener drains")
            .unwrap();
    }

    #[tokio::test]
    async fn an_http2_connection_gets_goaway_without_waiting_for_the_grace_period() {
        let (addr, stop, served) = listen(Duration::from_secs(20)).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        let client = tokio::spawn(conn);
        let request = Request::get(format!("http://{addr}/nothing"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.version(), Version::HTTP_2);
        drop(response);
        let began = std::time::Instant::now();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .expect("the listener drains without waiting 20 s")
            .unwrap();
        assert!(began.elapsed() < Duration::from_secs(5));
        // The client saw the GOAWAY and its connection ended.
        tokio::time::timeout(Duration::from_secs(2), client)
            .await
            .expect("the client connection ends")
            .unwrap()
            .unwrap();
    }
}
