//! What the access log needs from a request, taken before the gateway changes it (the
//! credential is stripped, the path rewritten): method, path, query, the configured headers,
//! formatted into the line's [`Head`] at once, and, when asked for, the first bytes of the
//! body as it streams to the upstream.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tollgate_insight::accesslog::{AccessLog, BODY_LIMIT, Head, LogSpec, Request, Tail};

use crate::body::{BoxError, ProxyBody};
use crate::snapshot::CompiledRoute;

type Copy = Arc<Mutex<(Vec<u8>, bool)>>;

/// A route's access log: what its lines hold, and the headers they include as names to
/// look up (not parsed again for every request).
#[derive(Debug)]
pub struct RouteLog {
    pub spec: LogSpec,
    headers: Vec<Option<http::HeaderName>>,
}

impl RouteLog {
    pub fn new(spec: LogSpec) -> RouteLog {
        let headers = spec
            .headers
            .iter()
            .map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        RouteLog { spec, headers }
    }
}

/// One request's part of its access log line.
pub struct Capture {
    head: Head,
    body: Option<Copy>,
    client_ip: IpAddr,
}

impl Capture {
    pub fn take<B>(
        log: &RouteLog,
        route: &CompiledRoute,
        req: &http::Request<B>,
        request_id: &http::HeaderValue,
        client_ip: IpAddr,
    ) -> Capture {
        let request = Request {
            request_id: request_id.as_bytes(),
            api: &route.api,
            version: &route.version,
            route: &route.label,
            method: req.method().as_str(),
            path: req.uri().path(),
            query: req.uri().query(),
        };
        let headers = req.headers();
        let value = |i: usize| Some(headers.get(log.headers.get(i)?.as_ref()?)?.as_bytes());
        Capture {
            head: Head::new(&log.spec, &request, value),
            body: log.spec.body.then(Copy::default),
            client_ip,
        }
    }

    /// The body to send upstream, copying its first bytes when the log wants them.
    pub fn tee(&self, body: ProxyBody) -> ProxyBody {
        match &self.body {
            Some(copy) => http_body_util::BodyExt::boxed_unsync(Tee {
                inner: body,
                copy: copy.clone(),
            }),
            None => body,
        }
    }

    /// Writes the request's line, now that it is answered.
    pub fn finish(
        self,
        log: &AccessLog,
        spec: &LogSpec,
        app: Option<&str>,
        status: u16,
        total_us: u64,
        upstream_us: Option<u64>,
    ) {
        let body = self
            .body
            .map(|c| std::mem::take(&mut *c.lock().unwrap_or_else(|p| p.into_inner())));
        let tail = Tail {
            at: SystemTime::now(),
            status,
            total_us,
            upstream_us,
            client_ip: self.client_ip,
            app,
            body: body.as_ref().map(|(bytes, more)| (&bytes[..], *more)),
        };
        log.write(spec, &self.head, &tail);
    }
}
/// Streams a body through, keeping a copy of its first [`BODY_LIMIT`] bytes.
struct Tee {
    inner: ProxyBody,
    copy: Copy,
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let mut copy = self.copy.lock().unwrap_or_else(|p| p.into_inner());
            let room = BODY_LIMIT.saturating_sub(copy.0.len());
            copy.0.extend_from_slice(&data[..data.len().min(room)]);
            if data.len() > room {
                copy.1 = true;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
