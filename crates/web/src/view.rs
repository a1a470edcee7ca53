//! Small pieces every page uses: rendering, redirects, flash messages, formatting.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

/// Renders a page with a status.
pub fn page(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => {
            let mut resp = (status, Html(html)).into_response();
            let h = resp.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert("x-frame-options", HeaderValue::from_static("DENY"));
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            );
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                     script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
                ),
            );
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render; see the node's log",
            )
                .into_response()
        }
    }
}

pub fn ok(t: &impl Template) -> Response {
    page(StatusCode::OK, t)
}

/// 303 See Other: after a form, the browser GETs the next page.
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A message shown at the top of a page, after a redirect (`?msg=…` names a known one).
#[derive(Clone, Debug, Default)]
pub struct Flash {
    pub ok: Option<String>,
    pub error: Option<String>,
}

impl Flash {
    pub fn ok(msg: impl Into<String>) -> Flash {
        Flash {
            ok: Some(msg.into()),
            error: None,
        }
    }

    pub fn error(msg: impl Into<String>) -> Flash {
        Flash {
            ok: None,
            error: Some(msg.into()),
        }
    }

    /// The message a `msg` code stands for. Only known codes show, so a crafted link cannot
    /// put words on the page.
    pub fn from_code(code: Option<&str>) -> Flash {
        let text = match code.unwrap_or("") {
            "signed-out" => "You are signed out.",
            "welcome" => "Welcome! Your account is ready. Create an app to get an API key.",
            "password-set" => "Your password is set. Sign in with it.",
            "reset-sent" => {
                "If an account exists for that address, a reset link is on its way. \
                 (Without a mail server, the link is written to the node's log.)"
            }
            "app-created" => "App created. Subscribe it to a plan, then create a key.",
            "key-revoked" => "The key is revoked: calls with it are refused from now on.",
            "subscribed" => "Subscribed: the plan is active.",
            "pending" => "Subscription requested: it waits for approval by the API's owners.",
            "approved" => "Subscription approved.",
            "changed" => "Saved.",
            "user-created" => "User created. They can sign in now.",
            "account-deleted" => "Your account, apps and keys are deleted.",
            _ => return Flash::default(),
        };
        Flash::ok(text)
    }
}

/// A shorter form of an RFC 3339 time: `2026-12-06 10:54`.
pub fn short_time(t: &str) -> String {
    let t = t.replace('T', " ");
    t.get(..16).map_or(t.clone(), str::to_string)
}

/// Thousands separated: 12345 → 12,345.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(short_time("2026-12-06T10:54:25Z"), "2026-12-06 10:54");
        assert!(Flash::from_code(Some("<script>")).ok.is_none());
    }
}
