//! `oauth2_introspection`: opaque bearer tokens checked with the authorization server
//! (RFC 7662). An active answer is cached until the token expires (at most `cache_ttl`);
//! an inactive one for a few seconds, so a flood of bad tokens reaches the server once
//! per token, not once per request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderName;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tollgate_model::policy::OAuth2Introspection;
use tollgate_secrets::Secrets;

use super::{AuthShared, Credentials, Identity};
use crate::ProxyError;

const NEGATIVE_TTL: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct CompiledIntrospection {
    url: String,
    /// `Basic base64(client_id:client_secret)`.
    authorization: String,
    app_claim: String,
    require_app: bool,
    cache_ttl: Duration,
    timeout: Duration,
    forward: Vec<(String, HeaderName)>,
}

/// One introspection answer, kept until `until`.
#[derive(Debug)]
pub struct Introspected {
    active: bool,
    claims: Arc<Map<String, Value>>,
    until: Instant,
}

/// Expires each cached answer at its own `until`.
pub struct ExpireAtTokenEnd;

impl moka::Expiry<[u8; 32], Arc<Introspected>> for ExpireAtTokenEnd {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<Introspected>,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.until.saturating_duration_since(created_at))
    }
}

impl CompiledIntrospection {
    pub fn compile(
        o: &OAuth2Introspection,
        secrets: Option<&Secrets>,
    ) -> Result<CompiledIntrospection, String> {
        use base64::Engine;
        let secret = if tollgate_secrets::is_sealed(&o.client_secret) {
            secrets
                .ok_or("a sealed client secret needs the node secret")?
                .open(&o.client_secret)
                .map_err(|e| e.to_string())?
        } else {
            o.client_secret.clone()
        };
        // RFC 6749 §2.3.1: form-encode the id and secret before joining them.
        let enc = |s: &str| url_form(s);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&o.client_id),
            enc(&secret)
        ));
        Ok(CompiledIntrospection {
            url: o.url.clone(),
            authorization: format!("Basic {basic}"),
            app_claim: o.app_claim.clone(),
            require_app: o.require_app,
            cache_ttl: o
                .cache_ttl
                .map(|d| d.as_std())
                .unwrap_or(Duration::from_secs(300)),
            timeout: o
                .timeout
                .map(|d| d.as_std())
                .unwrap_or(Duration::from_secs(5)),
            forward: super::jwt::forward_headers(&o.forward_claims)?,
        })
    }

    /// The headers `forward_claims` fills.
    pub fn forwarded_headers(&self) -> &[(String, HeaderName)] {
        &self.forward
    }

    pub async fn verify(
        &self,
        token: &str,
        credentials: &Credentials,
        shared: &AuthShared,
    ) -> Result<Identity, ProxyError> {
        let invalid = |detail: &str| ProxyError::Unauthenticated {
            detail: detail.to_string(),
            challenge: "Bearer error=\"invalid_token\"".to_string(),
        };
        if token.is_empty() || token.len() > 8192 {
            return Err(invalid("the token is not valid"));
        }
        let cache_key: [u8; 32] = Sha256::new()
            .chain_update(self.url.as_bytes())
            .chain_update([0])
            .chain_update(token.as_bytes())
            .finalize()
            .into();
        let answer = match shared.introspection.get(&cache_key) {
            Some(a) => a,
            None => {
                let a = Arc::new(self.introspect(token).await?);
                shared.introspection.insert(cache_key, a.clone());
                a
            }
        };
        if !answer.active {
            return Err(invalid("the token is not active"));
        }
        let subject = answer
            .claims
            .get(&self.app_claim)
            .and_then(Value::as_str)
            .map(str::to_string);
        let app = subject
            .as_ref()
            .and_then(|s| credentials.oauth2_clients.get(s))
            .and_then(|i| credentials.apps.get(*i))
            .cloned();
        if app.is_none() && self.require_app {
            return Err(invalid("the token names no known app"));
        }
        Ok(Identity {
            app,
            subject: answer
                .claims
                .get("sub")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or(subject),
            forward: super::jwt::forwarded(&answer.claims, &self.forward),
            claims: Some(answer.claims.clone()),
        })
    }

    async fn introspect(&self, token: &str) -> Result<Introspected, ProxyError> {
        let body = format!("token={}&token_type_hint=access_token", url_form(token));
        let fetched = tokio::time::timeout(
            self.timeout,
            crate::fetch::post_form(&self.url, &self.authorization, body),
        )
        .await;
        let bytes = match fetched {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::warn!(url = %self.url, error = %e, "token introspection failed");
                return Err(ProxyError::AuthServiceUnavailable);
            }
            Err(_) => {
                tracing::warn!(url = %self.url, "token introspection timed out");
                return Err(ProxyError::AuthServiceUnavailable);
            }
        };
        let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&bytes) else {
            tracing::warn!(url = %self.url, "token introspection answer is not a JSON object");
            return Err(ProxyError::AuthServiceUnavailable);
        };
        let now = Instant::now();
        let active = claims.get("active") == Some(&Value::Bool(true));
        let unix_now = time::OffsetDateTime::now_utc().unix_timestamp();
        let expired = claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_some_and(|exp| exp <= unix_now);
        let until = if active && !expired {
            let left = claims
                .get("exp")
                .and_then(Value::as_i64)
                .map(|exp| Duration::from_secs((exp - unix_now).max(0) as u64))
                .unwrap_or(self.cache_ttl);
            now + left.min(self.cache_ttl)
        } else {
            now + NEGATIVE_TTL
        };
        Ok(Introspected {
            active: active && !expired,
            claims: Arc::new(claims),
            until,
        })
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn url_form(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const FORM: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'*');
    utf8_percent_encode(s, FORM).to_string()
}
