//! Browser sessions, CSRF tokens and the sign-in rate limit.
//!
//! A session cookie holds 32 random bytes; the store keeps only their SHA-256, with the
//! realm (`dashboard` or `portal`), who signed in, the session's CSRF token and its
//! expiry. Cookies are `HttpOnly`, `SameSite` (Strict for the dashboard, Lax for the
//! portal) and `Secure` when the page was reached over HTTPS. Every form that changes
//! something carries the session's CSRF token; the forms shown before sign-in carry a
//! token that must match a cookie set with the form (double submit).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use rand::RngCore;
use tollgate_admin::{ApiError, hash_token};
use tollgate_store::Store;

/// The portal's session cookie.
pub const PORTAL_COOKIE: &str = "tg_portal";
/// The cookie that pairs with the token in a form shown before sign-in.
pub const FORM_COOKIE: &str = "tg_form";
/// How long a session lasts.
pub const SESSION_SECS: i64 = 12 * 3600;

/// Failed sign-ins allowed per e-mail, and per client address, in [`LOGIN_WINDOW`].
pub const LOGIN_FAILURES_PER_EMAIL: usize = 5;
pub const LOGIN_FAILURES_PER_ADDRESS: usize = 20;
const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Most keys the limiter remembers; older ones are forgotten first.
const LIMITER_KEYS: usize = 50_000;

/// A random token, hex.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Starts a session: answers the cookie value and the session's CSRF token.
pub async fn start(
    store: &Store,
    realm: &str,
    subject: &str,
) -> Result<(String, String), ApiError> {
    let id = random_token(32);
    let csrf = random_token(16);
    store
        .create_session(&hash_token(&id), realm, subject, &csrf, SESSION_SECS)
        .await?;
    Ok((id, csrf))
}

/// Whether the request reached us over HTTPS (directly or through a proxy that says so).
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for a session-like cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    max_age: i64,
    strict: bool,
    secure: bool,
) -> HeaderValue {
    let same_site = if strict { "Strict" } else { "Lax" };
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
}

/// A `Set-Cookie` value that removes a cookie.
pub fn clear_cookie(name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
}

/// The token a pre-sign-in form carries: the one in the form cookie if it is there, else a
/// new one (and the cookie to set).
pub fn form_token(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match tollgate_admin::cookie(headers, FORM_COOKIE).filter(|v| v.len() == 32) {
        Some(v) => (v.to_string(), None),
        None => {
            let token = random_token(16);
            let cookie = set_cookie(FORM_COOKIE, &token, 3600, false, is_https(headers));
            (token, Some(cookie))
        }
    }
}

/// Whether a pre-sign-in form's token matches its cookie.
pub fn form_token_ok(headers: &HeaderMap, sent: &str) -> bool {
    tollgate_admin::cookie(headers, FORM_COOKIE)
        .is_some_and(|c| !c.is_empty() && tollgate_admin::same_secret(c, sent))
}

/// A form that carries only its CSRF token (sign-out, approve, revoke, …).
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// A changing form's token must be its session's; else 403 and nothing changes.
#[allow(clippy::result_large_err)]
pub fn check_csrf(expected: &str, sent: &str) -> Result<(), axum::response::Response> {
    if tollgate_admin::same_secret(sent, expected) {
        Ok(())
    } else {
        Err(axum::response::IntoResponse::into_response((
            axum::http::StatusCode::FORBIDDEN,
            "this form has expired; go back, reload the page and try again",
        )))
    }
}

/// Signs out: ends the session in the `cookie` on the server, removes the cookie, and
/// sends the browser to the sign-in page.
pub async fn sign_out(
    store: &Store,
    headers: &HeaderMap,
    cookie: &str,
) -> axum::response::Response {
    if let Some(v) = tollgate_admin::cookie(headers, cookie) {
        let _ = store.delete_session(&hash_token(v)).await;
    }
    let mut resp = axum::response::IntoResponse::into_response(axum::response::Redirect::to(
        "/login?msg=signed-out",
    ));
    resp.headers_mut()
        .append(axum::http::header::SET_COOKIE, clear_cookie(cookie));
    resp
}

/// The client's address, as the listener saw it.
#[derive(Clone, Debug)]
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string()),
        ))
    }
}

/// Counts failed sign-ins per e-mail and per address over a sliding window.
#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Limiter {
    fn keys(email: &str, ip: &str) -> [(String, usize); 2] {
        [
            (
                format!("email:{}", email.to_ascii_lowercase()),
                LOGIN_FAILURES_PER_EMAIL,
            ),
            (format!("ip:{ip}"), LOGIN_FAILURES_PER_ADDRESS),
        ]
    }

    /// None if a sign-in may be tried, else how long until it may.
    pub fn blocked(&self, email: &str, ip: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = None;
        for (key, max) in Self::keys(email, ip) {
            if let Some(list) = map.get_mut(&key) {
                while list
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > LOGIN_WINDOW)
                {
                    list.pop_front();
                }
                if list.len() >= max
                    && let Some(first) = list.front()
                {
                    let w = LOGIN_WINDOW.saturating_sub(now.duration_since(*first));
                    wait = Some(wait.map_or(w, |x: Duration| x.max(w)));
                }
            }
        }
        wait
    }

    pub fn failed(&self, email: &str, ip: &str) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= LIMITER_KEYS {
            map.retain(|_, list| {
                list.back()
                    .is_some_and(|t| now.duration_since(*t) <= LOGIN_WINDOW)
            });
            if map.len() >= LIMITER_KEYS {
                map.clear();
            }
        }
        for (key, _) in Self::keys(email, ip) {
            map.entry(key).or_default().push_back(now);
        }
    }

    /// A successful sign-in forgets the e-mail's failures.
    pub fn succeeded(&self, email: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&format!("email:{}", email.to_ascii_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_blocks_after_the_allowed_failures() {
        let l = Limiter::default();
        for _ in 0..LOGIN_FAILURES_PER_EMAIL {
            assert!(l.blocked("a@example.com", "10.0.0.1").is_none());
            l.failed("a@example.com", "10.0.0.1");
        }
        let wait = l
            .blocked("A@example.com", "10.0.0.2")
            .expect("blocked by e-mail");
        assert!(wait > Duration::from_secs(60) && wait <= LOGIN_WINDOW);
        // Another e-mail from another address is not affected.
        assert!(l.blocked("b@example.com", "10.0.0.2").is_none());
        l.succeeded("a@example.com");
        assert!(l.blocked("a@example.com", "10.0.0.3").is_none());
    }

    #[test]
    fn cookies_carry_their_attributes() {
        let c = set_cookie("tg_portal", "abc", 60, false, true);
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"));
        let c = set_cookie("tg_dashboard", "abc", 60, true, false);
        let c = c.to_str().unwrap();
        assert!(c.contains("SameSite=Strict") && !c.contains("Secure"));
    }
}
