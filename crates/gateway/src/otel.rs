//! OpenTelemetry traces: when an OTLP endpoint is configured, each request yields a server
//! span (the whole request at the gateway) and, when an upstream was called, a client span
//! (the upstream part), in the caller's trace when it sent a valid W3C `traceparent` (else a
//! new trace). The upstream receives a `traceparent` naming the client span as its parent.
//! Spans are queued without waiting (a full queue drops and counts them) and exported in
//! batches as OTLP/HTTP JSON (`POST {endpoint}/v1/traces`).

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use http::HeaderValue;
use metrics::Counter;

/// The trace one request belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceCtx {
    pub trace_id: u128,
    /// The caller's span, when it sent one.
    pub parent: Option<u64>,
    pub server_span: u64,
    pub client_span: u64,
    pub sampled: bool,
}

fn hex_u128(s: &str) -> Option<u128> {
    (s.len() == 32).then(|| u128::from_str_radix(s, 16).ok())?
}

fn hex_u64(s: &str) -> Option<u64> {
    (s.len() == 16).then(|| u64::from_str_radix(s, 16).ok())?
}

impl TraceCtx {
    /// From the caller's `traceparent` when valid, else a new trace.
    pub fn from_header(v: Option<&HeaderValue>) -> TraceCtx {
        let parsed = v.and_then(|v| v.to_str().ok()).and_then(|v| {
            let mut parts = v.split('-');
            let version = parts.next()?;
            let trace = hex_u128(parts.next()?)?;
            let parent = hex_u64(parts.next()?)?;
            let flags = u8::from_str_radix(parts.next()?, 16).ok()?;
            (version.len() == 2 && version != "ff" && trace != 0 && parent != 0).then_some((
                trace,
                parent,
                flags & 1 == 1,
            ))
        });
        let (trace_id, parent, sampled) = match parsed {
            Some((t, p, s)) => (t, Some(p), s),
            None => (fastrand::u128(1..), None, true),
        };
        TraceCtx {
            trace_id,
            parent,
            server_span: fastrand::u64(1..),
            client_span: fastrand::u64(1..),
            sampled,
        }
    }

    /// The `traceparent` sent upstream: this trace, the client span as parent.
    pub fn upstream_header(&self) -> HeaderValue {
        let v = format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.client_span,
            u8::from(self.sampled)
        );
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("0"))
    }
}

/// One finished span.
#[derive(Clone, Debug)]
pub struct Span {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent: Option<u64>,
    pub name: String,
    /// 2 server, 3 client (OTLP `SpanKind`).
    pub kind: u8,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, String)>,
    pub error: bool,
}

/// Spans waiting for export, at most.
const QUEUE: usize = 8192;
const BATCH: usize = 512;

/// The span exporter of one node (off until started).
pub struct Tracer {
    tx: OnceLock<tokio::sync::mpsc::Sender<Span>>,
    dropped: Counter,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer").finish_non_exhaustive()
    }
}

impl Default for Tracer {
    fn default() -> Self {
        Tracer {
            tx: OnceLock::new(),
            dropped: metrics::counter!("tollgate_spans_dropped_total"),
        }
    }
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

/// The OTLP/HTTP JSON body of a batch of spans.
pub fn otlp_json(service: &str, node: &str, spans: &[Span]) -> String {
    let spans: Vec<serde_json::Value> = spans
        .iter()
        .map(|s| {
            let mut v = serde_json::json!({
                "traceId": format!("{:032x}", s.trace_id),
                "spanId": format!("{:016x}", s.span_id),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": nanos(s.start),
                "endTimeUnixNano": nanos(s.end),
                "attributes": s.attributes.iter().map(|(k, v)| serde_json::json!({
                    "key": k, "value": {"stringValue": v}
                })).collect::<Vec<_>>(),
                "status": {"code": if s.error { 2 } else { 1 }},
            });
            if let Some(p) = s.parent {
                v["parentSpanId"] = format!("{p:016x}").into();
            }
            v
        })
        .collect();
    serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": service}},
                {"key": "service.instance.id", "value": {"stringValue": node}},
            ]},
            "scopeSpans": [{
                "scope": {"name": "tollgate", "version": env!("CARGO_PKG_VERSION")},
                "spans": spans,
            }],
        }],
    })
    .to_string()
}

impl Tracer {
    pub fn is_on(&self) -> bool {
        self.tx.get().is_some()
    }

    /// Hands a span over without waiting; a full queue drops it (counted).
    pub fn record(&self, span: Span) {
        if let Some(tx) = self.tx.get()
            && tx.try_send(span).is_err()
        {
            self.dropped.increment(1);
        }
    }

    /// Starts exporting to `endpoint` (`http://collector:4318`): a batch when 512 spans
    /// are waiting or every second. Only in builds with the `otlp` feature (the default).
    #[cfg(feature = "otlp")]
    pub fn start(&self, endpoint: String, node: String) -> tokio::task::JoinHandle<()> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Span>(QUEUE);
        let _ = self.tx.set(tx);
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let dropped = self.dropped.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            let mut failing = false;
            loop {
                let deadline = tokio::time::sleep(Duration::from_secs(1));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        n = rx.recv_many(&mut batch, BATCH) => {
                            if n == 0 {
                                return;
                            }
                            if batch.len() >= BATCH {
                                break;
                            }
                        }
                        () = &mut deadline => break,
                    }
                }
                if batch.is_empty() {
                    continue;
                }
                let body = otlp_json("tollgate", &node, &batch);
                match crate::fetch::post_json(&url, &[], body).await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!(%url, "spans exported again");
                    }
                    Ok(()) => {}
                    Err(e) => {
                        dropped.increment(batch.len() as u64);
                        if !failing {
                            failing = true;
                            tracing::warn!(%url, error = %e, "cannot export spans; dropping them until it works again");
                        }
                    }
                }
                batch.clear();
            }
        })
    }
}

/// The spans of one request, from its trace and timings.
#[allow(clippy::too_many_arguments)]
pub fn request_spans(
    ctx: &TraceCtx,
    started_at: SystemTime,
    started: Instant,
    ended: Instant,
    upstream: Option<(Instant, Instant)>,
    route: &str,
    method: &str,
    status: u16,
    api: &str,
) -> Vec<Span> {
    let at = |i: Instant| started_at + i.saturating_duration_since(started);
    let error = status >= 500;
    let mut out = vec![Span {
        trace_id: ctx.trace_id,
        span_id: ctx.server_span,
        parent: ctx.parent,
        name: format!("{method} {route}"),
        kind: 2,
        start: started_at,
        end: at(ended),
        attributes: vec![
            ("http.request.method", method.to_string()),
            ("http.route", route.to_string()),
            ("http.response.status_code", status.to_string()),
            ("tollgate.api", api.to_string()),
        ],
        error,
    }];
    if let Some((from, to)) = upstream {
        out.push(Span {
            trace_id: ctx.trace_id,
            span_id: ctx.client_span,
            parent: Some(ctx.server_span),
            name: format!("upstream {method}"),
            kind: 3,
            start: at(from),
            end: at(to),
            attributes: vec![("http.request.method", method.to_string())],
            error,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_continued_and_a_bad_one_replaced() {
        let v = HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let ctx = TraceCtx::from_header(Some(&v));
        assert_eq!(ctx.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(ctx.parent, Some(0x00f067aa0ba902b7));
        let up = ctx.upstream_header();
        let up = up.to_str().unwrap();
        assert!(up.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(up.ends_with(&format!("{:016x}-01", ctx.client_span)));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-xyz-00f067aa0ba902b7-01",
        ] {
            let ctx = TraceCtx::from_header(Some(&HeaderValue::from_static(bad)));
            assert_eq!(ctx.parent, None, "{bad}");
            assert_ne!(ctx.trace_id, 0);
        }
    }

    #[test]
    fn spans_nest_and_serialise_as_otlp_json() {
        let ctx = TraceCtx::from_header(None);
        let t0 = Instant::now();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let spans = request_spans(
            &ctx,
            start,
            t0,
            t0 + Duration::from_millis(30),
            Some((
                t0 + Duration::from_millis(5),
                t0 + Duration::from_millis(25),
            )),
            "/v1/orders",
            "GET",
            200,
            "orders",
        );
        assert_eq!(spans.len(), 2);
        let body: serde_json::Value =
            serde_json::from_str(&otlp_json("tollgate", "n1", &spans)).unwrap();
        let s = &body["resourceSpans"][0]["scopeSpans"][0]["spans"];
        assert_eq!(s[0]["kind"], 2);
        assert!(s[0].get("parentSpanId").is_none());
        assert_eq!(s[1]["parentSpanId"], s[0]["spanId"]);
        assert_eq!(s[1]["traceId"], s[0]["traceId"]);
        assert_eq!(s[0]["startTimeUnixNano"], "1800000000000000000");
        assert_eq!(s[1]["startTimeUnixNano"], "1800000000005000000");
        assert_eq!(s[1]["endTimeUnixNano"], "1800000000025000000");
    }
}
