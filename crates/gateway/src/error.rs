//! The gateway's one error type. Each error records who failed (the client, the
//! upstream, or the gateway itself), maps to one status code and one metric label, and
//! says whether trying another target is safe.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{ProxyBody, full};

/// Who caused a failed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Downstream,
    Upstream,
    Gateway,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("bad request path: {0}")]
    BadPath(String),
    #[error("no route matches {method} {path}")]
    NoRoute { method: String, path: String },
    /// A request naming a version (by header or query parameter) that has no route here;
    /// the message names the version and, when known, the API's versions.
    #[error("{0}")]
    UnknownVersion(String),
    #[error("method {method} is not allowed here")]
    MethodNotAllowed { method: String, allow: String },
    #[error("version {version} of API {api} is retired{}", successor.as_ref().map(|s| format!("; use {s}")).unwrap_or_default())]
    Retired {
        api: String,
        version: String,
        successor: Option<String>,
    },
    #[error("version {version} of API {api} is deprecated and in a scheduled brownout until {until}{}", successor.as_ref().map(|s| format!("; use {s}")).unwrap_or_default())]
    Brownout {
        api: String,
        version: String,
        successor: Option<String>,
        until: String,
        retry_after: u64,
    },
    #[error("access from this address is not allowed")]
    IpDenied,
    #[error("request body is larger than the {limit}-byte limit")]
    BodyTooLarge { limit: u64 },
    #[error("the client was too slow sending the request body")]
    ClientTimeout,
    #[error("the request body is malformed or was cut off")]
    BadBody,
    #[error("no healthy target is available for upstream {upstream}")]
    NoHealthyTarget { upstream: String },
    #[error("could not connect to upstream {upstream}")]
    UpstreamConnect { upstream: String },
    #[error("upstream {upstream} did not answer in time")]
    UpstreamTimeout { upstream: String },
    #[error("upstream {upstream} closed the connection or sent an invalid response")]
    UpstreamProtocol { upstream: String },
    #[error("the upstream's answer is larger than the {limit}-byte limit for transforming it")]
    AnswerTooLarge { limit: u64 },
    #[error("part `{step}` of the aggregated answer failed: {reason}")]
    AggregatePart { step: String, reason: String },
    /// No credential, or one that does not verify. `challenge` is the `WWW-Authenticate`
    /// value; `detail` says what was wrong without revealing anything stored.
    #[error("{detail}")]
    Unauthenticated { detail: String, challenge: String },
    #[error("{0}")]
    Forbidden(String),
    /// A prepaid subscription's credit is spent.
    #[error("{0}")]
    CreditExhausted(String),
    /// A detector blocked the client address or app for a while.
    #[error("{0}")]
    Blocked(String),
    #[error("the authentication service could not be reached")]
    AuthServiceUnavailable,
    #[error("the request is not allowed by this API's CORS rules")]
    CorsRejected,
    /// Over a rate limit (or its queue's longest wait).
    #[error("rate limit exceeded; retry in {} s", .0.retry_after)]
    RateLimited(Box<Limited>),
    #[error("the {period} quota is used up; it renews in {secs} s", period = .1, secs = .0.retry_after)]
    QuotaExceeded(Box<Limited>, &'static str),
    /// No room to queue the request, or the upstream's concurrency or spike arrest limit.
    #[error("{reason}; retry in {retry_after} s")]
    Overloaded {
        reason: &'static str,
        retry_after: u64,
    },
    #[error("upstream {upstream} is failing; requests are paused for {retry_after} s")]
    CircuitOpen { upstream: String, retry_after: u64 },
    /// The request does not match the version's OpenAPI document (`validate` policy).
    #[error("the request does not match the API description: {}", describe(.0))]
    Invalid(Box<Vec<crate::validate::Violation>>),
}

fn describe(violations: &[crate::validate::Violation]) -> String {
    match violations {
        [one] => one.message.clone(),
        many => format!("{} violations", many.len()),
    }
}

/// What a limit answer carries besides its status: `Retry-After` and the `RateLimit*`
/// headers.
#[derive(Debug, Default)]
pub struct Limited {
    pub retry_after: u64,
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadPath(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute { .. } | ProxyError::UnknownVersion { .. } => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::Retired { .. } | ProxyError::Brownout { .. } => StatusCode::GONE,
            ProxyError::IpDenied => StatusCode::FORBIDDEN,
            ProxyError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::Forbidden(_) | ProxyError::CorsRejected => StatusCode::FORBIDDEN,
            ProxyError::CreditExhausted(_) => StatusCode::PAYMENT_REQUIRED,
            ProxyError::Blocked(_) => StatusCode::FORBIDDEN,
            ProxyError::AuthServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BadBody | ProxyError::Invalid(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoHealthyTarget { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamConnect { .. }
            | ProxyError::UpstreamProtocol { .. }
            | ProxyError::AnswerTooLarge { .. }
            | ProxyError::AggregatePart { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::RateLimited(_) | ProxyError::QuotaExceeded(..) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ProxyError::Overloaded { .. } | ProxyError::CircuitOpen { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    pub fn side(&self) -> Side {
        match self {
            ProxyError::BadPath(_)
            | ProxyError::NoRoute { .. }
            | ProxyError::UnknownVersion { .. }
            | ProxyError::MethodNotAllowed { .. }
            | ProxyError::Retired { .. }
            | ProxyError::Brownout { .. }
            | ProxyError::IpDenied
            | ProxyError::BodyTooLarge { .. }
            | ProxyError::ClientTimeout
            | ProxyError::BadBody
            | ProxyError::Invalid(_)
            | ProxyError::Unauthenticated { .. }
            | ProxyError::Forbidden(_)
            | ProxyError::CreditExhausted(_)
            | ProxyError::Blocked(_)
            | ProxyError::CorsRejected
            | ProxyError::RateLimited(_)
            | ProxyError::QuotaExceeded(..) => Side::Downstream,
            ProxyError::NoHealthyTarget { .. }
            | ProxyError::AuthServiceUnavailable
            | ProxyError::Overloaded { .. }
            | ProxyError::CircuitOpen { .. } => Side::Gateway,
            ProxyError::UpstreamConnect { .. }
            | ProxyError::UpstreamTimeout { .. }
            | ProxyError::UpstreamProtocol { .. }
            | ProxyError::AnswerTooLarge { .. }
            | ProxyError::AggregatePart { .. } => Side::Upstream,
        }
    }

    /// Whether another target may be tried: only when the request provably never reached
    /// the service.
    pub fn retry_safe(&self) -> bool {
        matches!(self, ProxyError::UpstreamConnect { .. })
    }

    /// The last part of the problem `type` URI, also used as a log and metric reason.
    pub fn problem_type(&self) -> &'static str {
        match self {
            ProxyError::BadPath(_) => "bad-request",
            ProxyError::NoRoute { .. } => "not-found",
            ProxyError::UnknownVersion { .. } => "unknown-version",
            ProxyError::MethodNotAllowed { .. } => "method-not-allowed",
            ProxyError::Retired { .. } => "version-retired",
            ProxyError::Brownout { .. } => "version-brownout",
            ProxyError::IpDenied => "ip-denied",
            ProxyError::BodyTooLarge { .. } => "payload-too-large",
            ProxyError::ClientTimeout => "request-timeout",
            ProxyError::BadBody => "bad-request-body",
            ProxyError::NoHealthyTarget { .. } => "no-healthy-target",
            ProxyError::UpstreamConnect { .. } => "upstream-unreachable",
            ProxyError::UpstreamTimeout { .. } => "upstream-timeout",
            ProxyError::UpstreamProtocol { .. } => "upstream-error",
            ProxyError::AnswerTooLarge { .. } => "answer-too-large",
            ProxyError::AggregatePart { .. } => "aggregate-part-failed",
            ProxyError::Unauthenticated { .. } => "unauthenticated",
            ProxyError::Forbidden(_) => "forbidden",
            ProxyError::CreditExhausted(_) => "credit-exhausted",
            ProxyError::Blocked(_) => "blocked",
            ProxyError::AuthServiceUnavailable => "auth-service-unavailable",
            ProxyError::CorsRejected => "cors-rejected",
            ProxyError::RateLimited(_) => "rate-limited",
            ProxyError::QuotaExceeded(..) => "quota-exceeded",
            ProxyError::Overloaded { .. } => "overloaded",
            ProxyError::CircuitOpen { .. } => "circuit-open",
            ProxyError::Invalid(_) => "request-invalid",
        }
    }

    /// An `application/problem+json` answer (RFC 9457) that names the problem and never
    /// leaks internals such as target addresses.
    pub fn to_response(&self, request_id: &str) -> Response<ProxyBody> {
        let mut resp = match self {
            // Every violation, as an extension member (RFC 9457 §3.2).
            ProxyError::Invalid(violations) => problem_response_with(
                self.status(),
                self.problem_type(),
                &self.to_string(),
                request_id,
                ("errors", violations.iter().map(|v| v.to_json()).collect()),
            ),
            _ => problem_response(
                self.status(),
                self.problem_type(),
                &self.to_string(),
                request_id,
            ),
        };
        if let ProxyError::MethodNotAllowed { allow, .. } = self
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        if let ProxyError::Unauthenticated { challenge, .. } = self
            && let Ok(v) = HeaderValue::from_str(challenge)
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        let retry_after = match self {
            ProxyError::RateLimited(l) | ProxyError::QuotaExceeded(l, _) => {
                for (name, value) in &l.headers {
                    resp.headers_mut().insert(name.clone(), value.clone());
                }
                Some(l.retry_after)
            }
            ProxyError::Overloaded { retry_after, .. }
            | ProxyError::CircuitOpen { retry_after, .. }
            | ProxyError::Brownout { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Builds a problem+json response.
pub fn problem_response(
    status: StatusCode,
    kind: &str,
    detail: &str,
    request_id: &str,
) -> Response<ProxyBody> {
    problem_response_with(
        status,
        kind,
        detail,
        request_id,
        ("", serde_json::Value::Null),
    )
}

/// A problem+json response with one extension member (none when its name is empty).
fn problem_response_with(
    status: StatusCode,
    kind: &str,
    detail: &str,
    request_id: &str,
    (name, value): (&str, serde_json::Value),
) -> Response<ProxyBody> {
    let mut body = serde_json::json!({
        "type": format!("https://tollgate.dev/problems/{kind}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "instance": format!("urn:request:{request_id}"),
    });
    if !name.is_empty() {
        body[name] = value;
    }
    let mut resp = Response::new(full(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}
