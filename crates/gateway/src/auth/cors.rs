//! `cors`: preflight requests are answered at the gateway; answers to allowed origins
//! carry the CORS headers (Fetch standard, CORS protocol).

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use tollgate_model::policy::Cors;

use crate::ProxyError;
use crate::body::{ProxyBody, empty};

#[derive(Debug)]
pub struct CompiledCors {
    any_origin: bool,
    origins: Vec<String>,
    methods: Vec<Method>,
    methods_value: HeaderValue,
    headers_value: Option<HeaderValue>,
    expose_value: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<HeaderValue>,
}

fn join(list: &[String]) -> Option<HeaderValue> {
    (!list.is_empty())
        .then(|| HeaderValue::from_str(&list.join(", ")).ok())
        .flatten()
}

impl CompiledCors {
    pub fn compile(c: &Cors) -> Result<CompiledCors, String> {
        let methods: Vec<String> = if c.methods.is_empty() {
            vec!["GET".into(), "HEAD".into(), "POST".into()]
        } else {
            c.methods.iter().map(|m| m.to_ascii_uppercase()).collect()
        };
        Ok(CompiledCors {
            any_origin: c.origins.iter().any(|o| o == "*"),
            origins: c.origins.iter().map(|o| o.to_ascii_lowercase()).collect(),
            methods: methods
                .iter()
                .map(|m| Method::from_bytes(m.as_bytes()).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?,
            methods_value: join(&methods).ok_or("no methods")?,
            headers_value: join(&c.headers),
            expose_value: join(&c.expose_headers),
            credentials: c.credentials,
            max_age: c.max_age.map(|d| HeaderValue::from(d.as_std().as_secs())),
        })
    }

    fn allows(&self, origin: &str) -> bool {
        self.any_origin || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    fn allow_origin(&self, origin: &HeaderValue) -> HeaderValue {
        if self.any_origin && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    /// Whether a request is a CORS preflight.
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The answer to a preflight: 204 with the allowed methods and headers, or 403 when
    /// the origin or method is not allowed.
    pub fn preflight(&self, headers: &HeaderMap) -> Result<Response<ProxyBody>, ProxyError> {
        let origin = headers
            .get(header::ORIGIN)
            .ok_or(ProxyError::CorsRejected)?;
        let origin_text = origin.to_str().map_err(|_| ProxyError::CorsRejected)?;
        let method = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .ok_or(ProxyError::CorsRejected)?;
        if !self.allows(origin_text) || !self.methods.contains(&method) {
            return Err(ProxyError::CorsRejected);
        }
        let requested = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS);
        let allowed_headers = match (&self.headers_value, requested) {
            (Some(list), Some(req)) => {
                let allowed: Vec<String> = list
                    .to_str()
                    .unwrap_or("")
                    .split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .collect();
                let ok = req
                    .to_str()
                    .unwrap_or("")
                    .split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .all(|h| allowed.contains(&h));
                if !ok {
                    return Err(ProxyError::CorsRejected);
                }
                Some(list.clone())
            }
            (Some(list), None) => Some(list.clone()),
            // Without a configured list, the headers the browser asks for are allowed.
            (None, req) => req.cloned(),
        };
        let mut resp = Response::new(empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin(origin),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            self.methods_value.clone(),
        );
        if let Some(v) = allowed_headers {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(age) = &self.max_age {
            h.insert(header::ACCESS_CONTROL_MAX_AGE, age.clone());
        }
        h.insert(
            header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        Ok(resp)
    }

    /// Adds the CORS headers to an answer for an allowed origin.
    pub fn decorate(&self, origin: Option<&HeaderValue>, resp: &mut Response<ProxyBody>) {
        let h = resp.headers_mut();
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(origin) = origin else { return };
        if !origin.to_str().is_ok_and(|o| self.allows(o)) {
            return;
        }
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin(origin),
        );
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.expose_value {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
    }
}
