//! The proxy listener: accepts connections, serves HTTP/1.1 and HTTP/2 (h2c prior
//! knowledge) with upgrades, enforces header limits and read timeouts, and drains
//! in-flight requests on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::Gateway;
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
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
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
    let graceful = GracefulShutdown::new();
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
                let gw = gw.clone();
                let mut info = ConnInfo::new(peer);
                let Some(acceptor) = &tls else {
                    let service = service_fn(move |req| {
                        let gw = gw.clone();
                        let info = info.clone();
                        async move { Ok::<_, Infallible>(handle(&gw, info, req).await) }
                    });
                    let io = TokioIo::new(SmugglingGuard::new(stream, settings.max_header_bytes, settings.header_read_timeout));
                    let conn = builder.serve_connection_with_upgrades(io, service).into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                    continue;
                };
                let accepting = tokio::time::timeout(settings.header_read_timeout, acceptor.accept(stream));
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let max_head = settings.max_header_bytes;
                let head_timeout = settings.header_read_timeout;
                tokio::spawn(async move {
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
                    info.tls = Some(Arc::new(TlsConn { client_cert }));
                    let service = service_fn(move |req| {
                        let gw = gw.clone();
                        let info = info.clone();
                        async move { Ok::<_, Infallible>(handle(&gw, info, req).await) }
                    });
                    let served = if session.alpn_protocol() == Some(b"h2") {
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                        watcher.watch(conn).await
                    } else {
                        let io = TokioIo::new(SmugglingGuard::new(stream, max_head, head_timeout));
                        let conn = builder.serve_connection_with_upgrades(io, service).into_owned();
                        watcher.watch(conn).await
                    };
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("proxy listener closed; draining in-flight requests");
    if tokio::time::timeout(settings.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout reached; closing remaining connections");
    }
}
