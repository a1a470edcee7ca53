//! WebSocket support: the mock upstream's echo endpoint and a small test client.
//!
//! The server side performs the RFC 6455 handshake by hand on top of a hyper
//! request (validate `Upgrade: websocket`, answer `101` with the derived
//! `Sec-WebSocket-Accept`), then runs a tungstenite stream over the upgraded
//! connection and echoes every text/binary message back.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use tokio_tungstenite::tungstenite::Message;

/// How long [`WsClient`] receive helpers wait for a message before failing.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a header (possibly a comma-separated list) contains `token`, case-insensitively.
fn header_has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .unwrap_or("")
            .split(',')
            .any(|part| part.trim().eq_ignore_ascii_case(token))
    })
}

/// Validates a WebSocket upgrade request.
///
/// On success returns the `101 Switching Protocols` response to send (without
/// a body) and spawns the echo loop that takes over the connection once hyper
/// has handed it off. On failure returns the status code and reason to answer.
pub(crate) fn accept(req: &mut Request<Incoming>) -> Result<Response<()>, (StatusCode, String)> {
    let headers = req.headers();
    if !header_has_token(headers, UPGRADE, "websocket") {
        return Err((
            StatusCode::BAD_REQUEST,
            "missing `Upgrade: websocket` header".to_owned(),
        ));
    }
    if !header_has_token(headers, CONNECTION, "upgrade") {
        return Err((
            StatusCode::BAD_REQUEST,
            "missing `Connection: upgrade` header".to_owned(),
        ));
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return Err((
            StatusCode::BAD_REQUEST,
            "missing `Sec-WebSocket-Key` header".to_owned(),
        ));
    };
    let accept_key = derive_accept_key(key.as_bytes());

    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        // Fails when the client (or the proxy in between) never completes the upgrade.
        if let Ok(upgraded) = on_upgrade.await {
            let stream =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            echo(stream).await;
        }
    });

    let mut response = Response::new(());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept_key).expect("base64 is a valid header value"),
    );
    Ok(response)
}

/// Echoes every text and binary message back until the peer closes or errors.
///
/// Pings are answered by tungstenite itself; a close frame is replied to
/// automatically and ends the stream.
async fn echo<S>(mut stream: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = stream.next().await {
        let reply = match message {
            Message::Text(_) | Message::Binary(_) => message,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        if stream.send(reply).await.is_err() {
            break;
        }
    }
    // Flush a pending close reply, if any; errors here are irrelevant.
    let _ = stream.close(None).await;
}

/// A WebSocket client for tests (plain `ws://` only).
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Status code of the handshake response (normally 101).
    pub status: u16,
    /// Headers of the handshake response (e.g. `x-upstream` from the mock).
    pub headers: HeaderMap,
}

impl WsClient {
    /// Connects to a `ws://host:port/path` URL.
    pub async fn connect(url: &str) -> anyhow::Result<WsClient> {
        WsClient::connect_with_headers(url, &[]).await
    }

    /// Connects to a `ws://` URL, adding extra handshake request headers
    /// (e.g. `Host` for host-based routing or `Authorization`).
    pub async fn connect_with_headers(
        url: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<WsClient> {
        let mut request = url
            .into_client_request()
            .with_context(|| format!("invalid websocket url {url}"))?;
        for (name, value) in headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes())
                    .with_context(|| format!("invalid header name {name}"))?,
                HeaderValue::from_str(value)
                    .with_context(|| format!("invalid header value {value}"))?,
            );
        }
        let (stream, response) =
            tokio::time::timeout(RECV_TIMEOUT, tokio_tungstenite::connect_async(request))
                .await
                .map_err(|_| anyhow!("websocket connect to {url} timed out"))?
                .with_context(|| format!("websocket connect to {url}"))?;
        Ok(WsClient {
            stream,
            status: response.status().as_u16(),
            headers: response.headers().clone(),
        })
    }

    /// Returns a handshake response header as a string, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Sends a message.
    pub async fn send(&mut self, message: Message) -> anyhow::Result<()> {
        self.stream.send(message).await.context("websocket send")
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.send(Message::text(text)).await
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, data: impl Into<bytes::Bytes>) -> anyhow::Result<()> {
        self.send(Message::Binary(data.into())).await
    }

    /// Receives the next data or close message (pings/pongs are skipped).
    ///
    /// Returns `Ok(None)` when the stream ended; fails after 10 s without a message.
    pub async fn recv(&mut self) -> anyhow::Result<Option<Message>> {
        loop {
            let next = tokio::time::timeout(RECV_TIMEOUT, self.stream.next())
                .await
                .map_err(|_| anyhow!("no websocket message within {RECV_TIMEOUT:?}"))?;
            match next {
                None => return Ok(None),
                Some(Err(e)) => return Err(e).context("websocket receive"),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(message)) => return Ok(Some(message)),
            }
        }
    }

    /// Receives the next message and requires it to be text.
    pub async fn recv_text(&mut self) -> anyhow::Result<String> {
        match self.recv().await? {
            Some(Message::Text(text)) => Ok(text.as_str().to_owned()),
            other => bail!("expected a text message, got {other:?}"),
        }
    }

    /// Receives the next message and requires it to be binary.
    pub async fn recv_binary(&mut self) -> anyhow::Result<bytes::Bytes> {
        match self.recv().await? {
            Some(Message::Binary(data)) => Ok(data),
            other => bail!("expected a binary message, got {other:?}"),
        }
    }

    /// Performs the closing handshake.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.stream.close(None).await.context("websocket close")
    }

    /// The underlying tokio-tungstenite stream, for anything not covered here.
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.stream
    }
}
