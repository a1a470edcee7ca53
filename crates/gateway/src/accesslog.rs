//! What the access log needs from a request, taken before the gateway changes it (the
//! credential is stripped, the path rewritten): method, path, query, the configured headers,
//! and, when asked for, the first bytes of the body as it streams to the upstream.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tollgate_insight::accesslog::{BODY_LIMIT, LogSpec, Record};

use crate::body::{BoxError, ProxyBody};

type Copy = Arc<Mutex<(Vec<u8>, bool)>>;

/// One request's part of its access log line.
pub struct Capture {
    method: http::Method,
    uri: http::Uri,
    headers: Vec<(usize, http::HeaderValue)>,
    body: Option<Copy>,
    client_ip: IpAddr,
    spec: Arc<LogSpec>,
}

impl Capture {
    pub fn take<B>(spec: &Arc<LogSpec>, req: &http::Request<B>, client_ip: IpAddr) -> Capture {
        let headers = spec
            .headers
            .iter()
            .enumerate()
            .filter_map(|(i, name)| Some((i, req.headers().get(name.as_str())?.clone())))
            .collect();
        Capture {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers,
            body: spec.body.then(Copy::default),
            client_ip,
            spec: spec.clone(),
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

    pub fn finish(
        self,
        request_id: http::HeaderValue,
        route: &crate::snapshot::CompiledRoute,
        app: Option<Arc<str>>,
        status: u16,
        total_us: u64,
        upstream_us: Option<u64>,
    ) -> Record {
        Record {
            at: SystemTime::now(),
            request_id,
            api: route.api.clone(),
            version: route.version.clone(),
            route: route.label.clone(),
            method: self.method,
            uri: self.uri,
            status,
            total_us,
            upstream_us,
            client_ip: self.client_ip,
            app,
            headers: self.headers,
            body: self
                .body
                .map(|c| std::mem::take(&mut *c.lock().unwrap_or_else(|p| p.into_inner()))),
            spec: self.spec,
        }
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
