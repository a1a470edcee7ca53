//! The `authenticate` and `authorize` phases (DESIGN §2): who is calling, and may they.
//!
//! Everything a request needs is compiled into the snapshot: the credential index (API key
//! ids, basic-auth usernames, JWT subjects and OAuth2 clients, each mapped to an app), the
//! verification keys of each `jwt` policy and the Cedar policy sets. Verifying an API key
//! is one map lookup and one HMAC, with no store query. What outlives a snapshot (fetched
//! JWKS, introspection answers, verified passwords) is kept in [`AuthShared`].

pub mod authz;
pub mod cors;
pub mod jwt;
pub mod oauth2;

use std::collections::HashMap;
use std::sync::Arc;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};
use tollgate_model::policy::{BasicAuth, KeyAuth};
use tollgate_model::{App, Developer, Document};
use tollgate_secrets::Secrets;

use crate::ProxyError;

/// An app as the gateway sees it.
#[derive(Debug)]
pub struct AppInfo {
    pub name: String,
    /// The name again, shared: what analytics events carry without copying it.
    pub shared_name: Arc<str>,
    pub developer: String,
    pub organization: Option<String>,
    pub groups: Vec<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Refused (403) when set: the app is disabled or its developer blocked.
    pub refused: bool,
    pub name_value: HeaderValue,
    pub developer_value: HeaderValue,
}

/// Who is calling: an app, a token's subject, or both.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub app: Option<Arc<AppInfo>>,
    /// The token's subject when a token authenticated the call.
    pub subject: Option<String>,
    /// The token's claims (JWT) or introspection answer.
    pub claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
    /// Headers to send upstream (`forward_claims`).
    pub forward: Vec<(HeaderName, HeaderValue)>,
}

impl Identity {
    /// Scopes from `scope` (space-separated) or `scp` (list or string).
    pub fn scopes(&self) -> Vec<&str> {
        let Some(claims) = &self.claims else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for name in ["scope", "scp"] {
            match claims.get(name) {
                Some(serde_json::Value::String(s)) => out.extend(s.split_whitespace()),
                Some(serde_json::Value::Array(list)) => {
                    out.extend(list.iter().filter_map(|v| v.as_str()))
                }
                _ => {}
            }
        }
        out
    }
}

struct KeyEntry {
    hash: [u8; 32],
    app: usize,
    expires_at: Option<i64>,
}

struct BasicEntry {
    /// The argon2 PHC string, or a literal password not yet hashed (documents installed
    /// directly, as in tests).
    stored: String,
    app: usize,
}

/// Credentials of every app, indexed for one lookup per request.
#[derive(Default)]
pub struct Credentials {
    pub apps: Vec<Arc<AppInfo>>,
    keys: HashMap<String, KeyEntry>,
    basic: HashMap<String, BasicEntry>,
    pub(crate) jwt_subjects: HashMap<String, usize>,
    pub(crate) oauth2_clients: HashMap<String, usize>,
    /// Client certificate fingerprints (lower-case hex) and `cn:NAME` entries.
    certificates: HashMap<String, usize>,
    secrets: Option<Secrets>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("apps", &self.apps.len())
            .field("keys", &self.keys.len())
            .finish()
    }
}

fn rfc3339(t: &str) -> Option<i64> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

impl Credentials {
    /// Indexes the apps of a document. Keys written in clear (documents that did not go
    /// through the admin API) are hashed here.
    pub fn compile(doc: &Document, secrets: Option<&Secrets>) -> Result<Credentials, String> {
        let developers: HashMap<String, &Developer> = doc
            .developers
            .iter()
            .map(|d| (d.email.to_ascii_lowercase(), d))
            .collect();
        let mut out = Credentials {
            secrets: secrets.cloned(),
            ..Credentials::default()
        };
        for (index, app) in doc.apps.iter().enumerate() {
            let dev = developers.get(&app.owner.to_ascii_lowercase());
            out.apps.push(Arc::new(app_info(app, dev.copied())));
            for key in &app.keys {
                let (id, hash) = match (&key.secret, &key.id, &key.hash) {
                    (Some(secret), _, _) => {
                        let s = secrets.ok_or_else(|| {
                            format!(
                                "app `{}` has an API key but this node has no secret to hash it",
                                app.name
                            )
                        })?;
                        (s.key_id(secret), s.key_hash(secret))
                    }
                    (None, Some(id), Some(hash)) => (id.clone(), hash.clone()),
                    _ => return Err(format!("app `{}` has a key without a hash", app.name)),
                };
                let mut digest = [0u8; 32];
                hex::decode_to_slice(&hash, &mut digest)
                    .map_err(|_| format!("app `{}` has a key with a malformed hash", app.name))?;
                out.keys.insert(
                    id,
                    KeyEntry {
                        hash: digest,
                        app: index,
                        expires_at: key.expires_at.as_deref().and_then(rfc3339),
                    },
                );
            }
            for b in &app.basic {
                let stored = b
                    .password_hash
                    .clone()
                    .or_else(|| b.password.clone())
                    .unwrap_or_default();
                out.basic
                    .insert(b.username.clone(), BasicEntry { stored, app: index });
            }
            for s in &app.jwt_subjects {
                out.jwt_subjects.insert(s.clone(), index);
            }
            for s in &app.oauth2_clients {
                out.oauth2_clients.insert(s.clone(), index);
            }
            for c in &app.certificates {
                let c = match c.strip_prefix("cn:") {
                    Some(cn) => format!("cn:{cn}"),
                    None => c.replace(':', "").to_ascii_lowercase(),
                };
                out.certificates.insert(c, index);
            }
        }
        Ok(out)
    }

    /// The app holding `key`, verified in constant time against the stored hash.
    fn app_for_key(&self, key: &str) -> Option<&Arc<AppInfo>> {
        use subtle::ConstantTimeEq;
        let secrets = self.secrets.as_ref()?;
        let digest = secrets.key_digest(key);
        let entry = self.keys.get(&secrets.key_id_with(key, &digest))?;
        if !bool::from(digest.ct_eq(&entry.hash)) {
            return None;
        }
        if let Some(exp) = entry.expires_at
            && time::OffsetDateTime::now_utc().unix_timestamp() >= exp
        {
            return None;
        }
        self.apps.get(entry.app)
    }
}

fn app_info(app: &App, dev: Option<&Developer>) -> AppInfo {
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""));
    AppInfo {
        name: app.name.clone(),
        shared_name: Arc::from(app.name.as_str()),
        developer: app.owner.clone(),
        organization: dev.and_then(|d| d.organization.clone()),
        groups: app.groups.clone(),
        attributes: app
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        refused: app.disabled || dev.is_some_and(|d| d.blocked),
        name_value: value(&app.name),
        developer_value: value(&app.owner),
    }
}

/// One way a route accepts callers.
#[derive(Debug)]
pub enum Authenticator {
    Key {
        header: HeaderName,
        query: Option<String>,
    },
    Basic {
        realm: String,
    },
    Jwt(Arc<jwt::CompiledJwt>),
    OAuth2(Arc<oauth2::CompiledIntrospection>),
    Mtls {
        allow_unknown: bool,
    },
}

impl Authenticator {
    pub fn key(k: &KeyAuth) -> Result<Authenticator, String> {
        Ok(Authenticator::Key {
            header: HeaderName::try_from(k.header.as_str()).map_err(|e| e.to_string())?,
            query: k.query.clone(),
        })
    }

    pub fn basic(b: &BasicAuth) -> Authenticator {
        Authenticator::Basic {
            realm: b.realm.clone().unwrap_or_else(|| "tollgate".to_string()),
        }
    }

    fn challenge(&self) -> String {
        match self {
            Authenticator::Key { header, .. } => format!("ApiKey header=\"{header}\""),
            Authenticator::Basic { realm } => {
                format!(
                    "Basic realm=\"{}\", charset=\"UTF-8\"",
                    realm.replace('"', "")
                )
            }
            Authenticator::Jwt(_) | Authenticator::OAuth2(_) => "Bearer".to_string(),
            Authenticator::Mtls { .. } => "Mutual".to_string(),
        }
    }
}

/// Outlives snapshots: fetched key sets, introspection answers, verified passwords.
#[derive(Debug)]
pub struct AuthShared {
    pub jwks: jwt::JwksRegistry,
    pub introspection: moka::sync::Cache<[u8; 32], Arc<oauth2::Introspected>>,
    /// SHA-256 of (stored hash ‖ password) for passwords verified recently: argon2 runs
    /// once per credential and minute, not once per request.
    verified_passwords: moka::sync::Cache<[u8; 32], ()>,
}

impl Default for AuthShared {
    fn default() -> Self {
        AuthShared {
            jwks: jwt::JwksRegistry::default(),
            introspection: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .expire_after(oauth2::ExpireAtTokenEnd)
                .build(),
            verified_passwords: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
        }
    }
}

/// What the request offered, found once.
struct Presented<'a> {
    bearer: Option<&'a str>,
    basic: Option<&'a str>,
}

fn presented(headers: &HeaderMap) -> Presented<'_> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let scheme = |prefix: &str| {
        auth.and_then(|a| {
            let (s, rest) = a.split_once(' ')?;
            s.eq_ignore_ascii_case(prefix).then(|| rest.trim())
        })
    };
    Presented {
        bearer: scheme("bearer"),
        basic: scheme("basic"),
    }
}

/// Runs a route's authenticators: the first credential the request presents decides.
/// A presented credential that does not verify is refused, never skipped over; with no
/// credential at all the answer lists every accepted scheme.
pub async fn authenticate(
    authenticators: &[Authenticator],
    credentials: &Credentials,
    shared: &AuthShared,
    headers: &mut HeaderMap,
    query: &mut Option<String>,
    client_cert: Option<&crate::tls::ClientCert>,
) -> Result<Identity, ProxyError> {
    // Headers the gateway fills from a token are never taken from the client.
    for auth in authenticators {
        let names = match auth {
            Authenticator::Jwt(j) => j.forwarded_headers(),
            Authenticator::OAuth2(o) => o.forwarded_headers(),
            _ => &[],
        };
        for (_, name) in names {
            headers.remove(name);
        }
    }
    let offered = presented(headers);
    let bearer = offered.bearer.map(str::to_owned);
    let basic = offered.basic.map(str::to_owned);
    for auth in authenticators {
        match auth {
            Authenticator::Key {
                header,
                query: param,
            } => {
                let from_header = headers
                    .get(header)
                    .map(|v| v.to_str().map(str::to_owned).unwrap_or_default());
                let from_query = match (from_header.is_none(), param, query.as_deref()) {
                    (true, Some(p), Some(q)) => take_query_param(q, p),
                    _ => None,
                };
                let key = match (from_header, from_query) {
                    (Some(k), _) => {
                        headers.remove(header);
                        k
                    }
                    (None, Some((k, rest))) => {
                        *query = rest;
                        k
                    }
                    (None, None) => continue,
                };
                return match credentials.app_for_key(key.trim()) {
                    Some(app) => identified(app.clone()),
                    None => Err(invalid(auth, "the API key is not valid")),
                };
            }
            Authenticator::Basic { .. } => {
                let Some(encoded) = &basic else { continue };
                headers.remove(header::AUTHORIZATION);
                return verify_basic(encoded, credentials, shared)
                    .await
                    .ok_or_else(|| invalid(auth, "the username or password is not valid"))
                    .and_then(identified);
            }
            Authenticator::Jwt(policy) => {
                let Some(token) = &bearer else { continue };
                // An opaque token may be meant for a later introspection policy.
                if !jwt::looks_like_jwt(token)
                    && authenticators
                        .iter()
                        .any(|a| matches!(a, Authenticator::OAuth2(_)))
                {
                    continue;
                }
                let identity = policy
                    .verify(token, credentials)
                    .await
                    .map_err(|e| invalid(auth, &e))?;
                headers.remove(header::AUTHORIZATION);
                return check_app(identity);
            }
            Authenticator::Mtls { allow_unknown } => {
                let Some(cert) = client_cert else { continue };
                let app = credentials
                    .certificates
                    .get(&cert.fingerprint)
                    .or_else(|| {
                        let cn = cert.common_name.as_ref()?;
                        credentials.certificates.get(&format!("cn:{cn}"))
                    })
                    .and_then(|i| credentials.apps.get(*i));
                return match (app, allow_unknown) {
                    (Some(app), _) => identified(app.clone()),
                    (None, true) => Ok(Identity {
                        subject: cert.common_name.clone(),
                        ..Identity::default()
                    }),
                    (None, false) => Err(invalid(auth, "the client certificate belongs to no app")),
                };
            }
            Authenticator::OAuth2(policy) => {
                let Some(token) = &bearer else { continue };
                let identity = policy.verify(token, credentials, shared).await?;
                headers.remove(header::AUTHORIZATION);
                return check_app(identity);
            }
        }
    }
    let challenge = authenticators
        .iter()
        .map(Authenticator::challenge)
        .collect::<Vec<_>>()
        .join(", ");
    Err(ProxyError::Unauthenticated {
        detail: "this API needs a credential".to_string(),
        challenge,
    })
}

fn invalid(auth: &Authenticator, detail: &str) -> ProxyError {
    let mut challenge = auth.challenge();
    if matches!(auth, Authenticator::Jwt(_) | Authenticator::OAuth2(_)) {
        challenge = "Bearer error=\"invalid_token\"".to_string();
    }
    ProxyError::Unauthenticated {
        detail: detail.to_string(),
        challenge,
    }
}

fn identified(app: Arc<AppInfo>) -> Result<Identity, ProxyError> {
    check_app(Identity {
        app: Some(app),
        ..Identity::default()
    })
}

fn check_app(identity: Identity) -> Result<Identity, ProxyError> {
    if identity.app.as_ref().is_some_and(|a| a.refused) {
        return Err(ProxyError::Forbidden("this app is disabled".to_string()));
    }
    Ok(identity)
}

/// Removes `name` from a query string: its value (percent-decoded) and the rest.
fn take_query_param(query: &str, name: &str) -> Option<(String, Option<String>)> {
    let mut value = None;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if value.is_none() && k == name {
            value = Some(
                percent_encoding::percent_decode_str(&v.replace('+', " "))
                    .decode_utf8()
                    .ok()?
                    .into_owned(),
            );
        } else {
            rest.push(pair);
        }
    }
    let value = value?;
    let rest = (!rest.is_empty()).then(|| rest.join("&"));
    Some((value, rest))
}

async fn verify_basic(
    encoded: &str,
    credentials: &Credentials,
    shared: &AuthShared,
) -> Option<Arc<AppInfo>> {
    use base64::Engine;
    if encoded.len() > 4096 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    let entry = credentials.basic.get(user)?;
    let app = credentials.apps.get(entry.app)?.clone();
    if !tollgate_secrets::is_password_hash(&entry.stored) {
        // A literal password from a document installed without the admin API.
        use subtle::ConstantTimeEq;
        let same: bool = entry.stored.as_bytes().ct_eq(password.as_bytes()).into();
        return same.then_some(app);
    }
    let fingerprint: [u8; 32] = Sha256::new()
        .chain_update(entry.stored.as_bytes())
        .chain_update([0])
        .chain_update(password.as_bytes())
        .finalize()
        .into();
    if shared.verified_passwords.contains_key(&fingerprint) {
        return Some(app);
    }
    let stored = entry.stored.clone();
    let password = password.to_string();
    // argon2 takes tens of milliseconds: keep it off the proxy worker, and bound how many
    // run at once so a flood of wrong passwords cannot take every core.
    static ARGON2_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);
    let Ok(_slot) = ARGON2_SLOTS.acquire().await else {
        return None;
    };
    let ok =
        tokio::task::spawn_blocking(move || tollgate_secrets::verify_password(&password, &stored))
            .await
            .unwrap_or(false);
    if ok {
        shared.verified_passwords.insert(fingerprint, ());
        Some(app)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_keys_are_taken_out() {
        assert_eq!(
            take_query_param("a=1&api_key=k%2B1&b=2", "api_key"),
            Some(("k+1".to_string(), Some("a=1&b=2".to_string())))
        );
        assert_eq!(
            take_query_param("api_key=k", "api_key"),
            Some(("k".to_string(), None))
        );
        assert_eq!(take_query_param("a=1", "api_key"), None);
    }

    #[test]
    fn scopes_come_from_scope_or_scp() {
        let mut claims = serde_json::Map::new();
        claims.insert("scope".into(), "read write".into());
        claims.insert("scp".into(), serde_json::json!(["admin"]));
        let id = Identity {
            claims: Some(Arc::new(claims)),
            ..Identity::default()
        };
        assert_eq!(id.scopes(), vec!["read", "write", "admin"]);
    }
}
