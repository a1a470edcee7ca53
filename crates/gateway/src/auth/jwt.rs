//! `jwt`: signed bearer tokens (RFC 7519) verified with inline keys or a JWKS.
//!
//! The header is read by hand so nothing is taken on trust: `alg: none`, algorithms the
//! key is not for (an HMAC algorithm with an RSA public key as the secret), unknown `crit`
//! extensions and unencoded payloads are refused before any signature check. The
//! signature check itself is `jsonwebtoken`'s, on aws-lc-rs.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderName, HeaderValue};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use tollgate_model::policy::{Jwt, JwtKey};
use tollgate_secrets::Secrets;

use super::{Credentials, Identity};

/// Longest token read.
const MAX_TOKEN: usize = 16 * 1024;
/// A JWKS is refetched at least this often even when every `kid` is known.
const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);

/// A key and the algorithms it may verify.
#[derive(Clone)]
pub struct VerifyKey {
    kid: Option<String>,
    algs: Vec<Algorithm>,
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algs", &self.algs)
            .finish()
    }
}

fn algorithm(name: &str) -> Result<Algorithm, String> {
    match name {
        "HS256" | "HS384" | "HS512" | "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512"
        | "ES256" | "ES384" | "EdDSA" => Algorithm::from_str(name).map_err(|e| e.to_string()),
        other => Err(format!("algorithm `{other}` is not accepted")),
    }
}

/// A verification key from a JWK. Its algorithms are the one it names, or every
/// algorithm of its type and curve.
pub fn key_from_jwk(value: &Value, alg: Option<&str>) -> Result<VerifyKey, String> {
    let jwk: Jwk = serde_json::from_value(value.clone()).map_err(|e| format!("bad JWK: {e}"))?;
    if let Some(use_) = value.get("use").and_then(Value::as_str)
        && use_ != "sig"
    {
        return Err(format!("JWK is for `{use_}`, not signatures"));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("bad JWK: {e}"))?;
    let named = alg
        .map(str::to_string)
        .or_else(|| value.get("alg").and_then(Value::as_str).map(str::to_string));
    let family: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err("the JWK's curve is not supported (P-256, P-384)".to_string()),
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
        AlgorithmParameters::OctetKey(_) => {
            vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
        }
        _ => return Err("unsupported JWK key type".to_string()),
    };
    let algs = match named {
        Some(name) => {
            let a = algorithm(&name)?;
            if !family.contains(&a) {
                return Err(format!("`{name}` is not an algorithm for this key"));
            }
            vec![a]
        }
        None => family,
    };
    Ok(VerifyKey {
        kid: jwk.common.key_id.clone(),
        algs,
        key,
    })
}

fn compile_key(k: &JwtKey, secrets: Option<&Secrets>) -> Result<VerifyKey, String> {
    if let Some(jwk) = &k.jwk {
        let mut key = key_from_jwk(jwk, k.alg.as_deref())?;
        if k.kid.is_some() {
            key.kid = k.kid.clone();
        }
        return Ok(key);
    }
    let alg = algorithm(k.alg.as_deref().unwrap_or(""))?;
    let key = if let Some(secret) = &k.secret {
        let clear = if tollgate_secrets::is_sealed(secret) {
            secrets
                .ok_or("a sealed JWT secret needs the node secret")?
                .open(secret)
                .map_err(|e| e.to_string())?
        } else {
            secret.clone()
        };
        DecodingKey::from_secret(clear.as_bytes())
    } else {
        let pem = k.pem.as_deref().unwrap_or("").as_bytes();
        match alg {
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            _ => DecodingKey::from_rsa_pem(pem),
        }
        .map_err(|e| format!("bad PEM key: {e}"))?
    };
    Ok(VerifyKey {
        kid: k.kid.clone(),
        algs: vec![alg],
        key,
    })
}

/// A compiled `jwt` policy.
#[derive(Debug)]
pub struct CompiledJwt {
    keys: Vec<VerifyKey>,
    jwks: Option<Arc<JwksSource>>,
    issuer: Vec<String>,
    audiences: Vec<String>,
    app_claim: String,
    require_app: bool,
    forward: Vec<(String, HeaderName)>,
    leeway: i64,
    require_exp: bool,
}

impl CompiledJwt {
    pub fn compile(
        j: &Jwt,
        secrets: Option<&Secrets>,
        registry: &JwksRegistry,
    ) -> Result<CompiledJwt, String> {
        let keys = j
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| compile_key(k, secrets).map_err(|e| format!("jwt key {i}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let refresh = j
            .jwks_refresh
            .map(|d| d.as_std())
            .unwrap_or(Duration::from_secs(60));
        Ok(CompiledJwt {
            keys,
            jwks: j.jwks_url.as_ref().map(|u| registry.source(u, refresh)),
            issuer: j.issuer.clone(),
            audiences: j.audiences.clone(),
            app_claim: j.app_claim.clone(),
            require_app: j.require_app,
            forward: forward_headers(&j.forward_claims)?,
            leeway: j.leeway.as_std().as_secs() as i64,
            require_exp: j.require_exp,
        })
    }

    /// The headers `forward_claims` fills.
    pub fn forwarded_headers(&self) -> &[(String, HeaderName)] {
        &self.forward
    }

    /// Verifies a token and maps it to an identity. The error says what was wrong.
    pub async fn verify(&self, token: &str, credentials: &Credentials) -> Result<Identity, String> {
        let parts = parse(token)?;
        let mut verified = self.check_signature(&parts, &self.keys);
        if !verified && let Some(source) = &self.jwks {
            let keys = source.keys(parts.kid.as_deref()).await?;
            verified = self.check_signature(&parts, &keys);
        }
        if !verified {
            return Err("the token's signature does not verify".to_string());
        }
        let claims = parts.claims()?;
        self.check_claims(&claims, time::OffsetDateTime::now_utc().unix_timestamp())?;
        let subject = claims
            .get(&self.app_claim)
            .and_then(Value::as_str)
            .map(str::to_string);
        let app = subject
            .as_ref()
            .and_then(|s| credentials.jwt_subjects.get(s))
            .and_then(|i| credentials.apps.get(*i))
            .cloned();
        if app.is_none() && self.require_app {
            return Err("the token names no known app".to_string());
        }
        Ok(Identity {
            app,
            subject,
            forward: forwarded(&claims, &self.forward),
            claims: Some(Arc::new(claims)),
        })
    }

    fn check_signature(&self, parts: &Parts<'_>, keys: &[VerifyKey]) -> bool {
        keys.iter()
            .filter(|k| match (&parts.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
            .filter(|k| k.algs.contains(&parts.alg))
            .any(|k| {
                jsonwebtoken::crypto::verify(
                    parts.signature,
                    parts.signing_input.as_bytes(),
                    &k.key,
                    parts.alg,
                )
                .unwrap_or(false)
            })
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: i64) -> Result<(), String> {
        let time_claim = |name: &str| -> Result<Option<i64>, String> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_f64().map(|f| f as i64))
                    .map(Some)
                    .ok_or_else(|| format!("the token's `{name}` is not a number")),
            }
        };
        match time_claim("exp")? {
            Some(exp) if now > exp.saturating_add(self.leeway) => {
                return Err("the token has expired".to_string());
            }
            None if self.require_exp => {
                return Err("the token has no expiry (`exp`)".to_string());
            }
            _ => {}
        }
        if let Some(nbf) = time_claim("nbf")?
            && now < nbf.saturating_sub(self.leeway)
        {
            return Err("the token is not valid yet".to_string());
        }
        if !self.issuer.is_empty() {
            let iss = claims.get("iss").and_then(Value::as_str);
            if !iss.is_some_and(|i| self.issuer.iter().any(|want| want == i)) {
                return Err("the token's issuer is not accepted".to_string());
            }
        }
        if !self.audiences.is_empty() {
            let ok = match claims.get("aud") {
                Some(Value::String(a)) => self.audiences.contains(a),
                Some(Value::Array(list)) => list
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|a| self.audiences.iter().any(|w| w == a)),
                _ => false,
            };
            if !ok {
                return Err("the token is not meant for this audience".to_string());
            }
        }
        Ok(())
    }
}

/// `forward_claims` compiled: claim name and header.
pub fn forward_headers(
    claims: &indexmap::IndexMap<String, String>,
) -> Result<Vec<(String, HeaderName)>, String> {
    claims
        .iter()
        .map(|(c, h)| {
            HeaderName::try_from(h.as_str())
                .map(|h| (c.clone(), h))
                .map_err(|e| format!("forward_claims.{c}: {e}"))
        })
        .collect()
}

/// The headers `forward_claims` asks for, for the claims present.
pub fn forwarded(
    claims: &Map<String, Value>,
    wanted: &[(String, HeaderName)],
) -> Vec<(HeaderName, HeaderValue)> {
    wanted
        .iter()
        .filter_map(|(claim, header)| {
            let text = match claims.get(claim)? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Array(list) => list
                    .iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                _ => return None,
            };
            Some((header.clone(), HeaderValue::from_str(&text).ok()?))
        })
        .collect()
}

/// Whether a bearer token has the shape of a JWS (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A token split and its header checked.
struct Parts<'a> {
    alg: Algorithm,
    kid: Option<String>,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl Parts<'_> {
    fn claims(&self) -> Result<Map<String, Value>, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(self.payload)
            .map_err(|_| "the token's payload is not base64url".to_string())?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err("the token's payload is not a JSON object".to_string()),
        }
    }
}

fn parse(token: &str) -> Result<Parts<'_>, String> {
    if token.len() > MAX_TOKEN {
        return Err("the token is too long".to_string());
    }
    let mut it = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err("the token is not a signed JWT (three parts)".to_string());
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| "the token's header is not base64url".to_string())?;
    let Ok(Value::Object(h)) = serde_json::from_slice::<Value>(&header_bytes) else {
        return Err("the token's header is not a JSON object".to_string());
    };
    let alg = match h.get("alg").and_then(Value::as_str) {
        None => return Err("the token's header names no algorithm".to_string()),
        Some(a) if a.eq_ignore_ascii_case("none") => {
            return Err("unsigned tokens (`alg: none`) are not accepted".to_string());
        }
        Some(a) => algorithm(a)?,
    };
    if h.contains_key("crit") {
        return Err(
            "the token requires header extensions (`crit`) this gateway does not implement"
                .to_string(),
        );
    }
    if h.get("b64").is_some_and(|v| v != &Value::Bool(true)) {
        return Err("unencoded payloads (`b64: false`) are not accepted".to_string());
    }
    let kid = match h.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err("the token's `kid` is not a string".to_string()),
    };
    Ok(Parts {
        alg,
        kid,
        signing_input: &token[..header.len() + 1 + payload.len()],
        payload,
        signature,
    })
}

/// Key sets fetched from JWKS URLs, shared by every policy (and snapshot) that names
/// the same URL.
#[derive(Debug, Default)]
pub struct JwksRegistry {
    sources: Mutex<HashMap<String, Arc<JwksSource>>>,
}

impl JwksRegistry {
    fn source(&self, url: &str, min_refresh: Duration) -> Arc<JwksSource> {
        let mut map = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(url.to_string())
            .or_insert_with(|| {
                Arc::new(JwksSource {
                    url: url.to_string(),
                    min_refresh,
                    state: ArcSwap::from_pointee(JwksState::default()),
                    fetch_lock: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }
}

#[derive(Default)]
struct JwksState {
    keys: Vec<VerifyKey>,
    fetched_at: Option<Instant>,
}

/// One JWKS URL: its keys and when they were fetched.
pub struct JwksSource {
    url: String,
    min_refresh: Duration,
    state: ArcSwap<JwksState>,
    fetch_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksSource")
            .field("url", &self.url)
            .finish()
    }
}

impl JwksSource {
    /// The keys to try for a token naming `kid`: fetched on first use, refetched when old
    /// or when `kid` is unknown — but never more often than `min_refresh`, so tokens with
    /// made-up `kid`s cannot turn the gateway against the issuer.
    async fn keys(&self, kid: Option<&str>) -> Result<Vec<VerifyKey>, String> {
        let wanted = |state: &JwksState| match state.fetched_at {
            None => true,
            Some(at) => {
                let age = at.elapsed();
                let unknown = kid
                    .is_some_and(|k| !state.keys.iter().any(|key| key.kid.as_deref() == Some(k)));
                age > JWKS_MAX_AGE || (unknown && age > self.min_refresh)
            }
        };
        if wanted(&self.state.load()) {
            let _guard = self.fetch_lock.lock().await;
            if wanted(&self.state.load()) {
                match crate::fetch::get(&self.url).await {
                    Ok(body) => match parse_jwks(&body) {
                        Ok(keys) => self.state.store(Arc::new(JwksState {
                            keys,
                            fetched_at: Some(Instant::now()),
                        })),
                        Err(e) => {
                            tracing::warn!(url = %self.url, error = %e, "JWKS is not usable");
                            self.mark_tried();
                        }
                    },
                    Err(e) => {
                        tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed");
                        self.mark_tried();
                    }
                }
            }
        }
        Ok(self.state.load().keys.clone())
    }

    /// Keeps the old keys but counts the failed attempt, so failures are retried at the
    /// refresh pace, not per request.
    fn mark_tried(&self) {
        let old = self.state.load();
        self.state.store(Arc::new(JwksState {
            keys: old.keys.clone(),
            fetched_at: Some(Instant::now()),
        }));
    }
}

/// The usable signing keys of a JWKS document; keys of other kinds are skipped.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<VerifyKey>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let list = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no `keys` list")?;
    Ok(list
        .iter()
        .filter_map(|k| key_from_jwk(k, None).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let sig = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(secret),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{input}.{sig}")
    }

    fn policy(yaml: &str) -> CompiledJwt {
        let j: Jwt = yaml_serde::from_str(yaml).unwrap();
        CompiledJwt::compile(&j, None, &JwksRegistry::default()).unwrap()
    }

    async fn check(p: &CompiledJwt, token: &str) -> Result<Identity, String> {
        p.verify(token, &Credentials::default()).await
    }

    #[tokio::test]
    async fn hmac_tokens_and_their_claims() {
        let p = policy(
            "{ keys: [{ secret: s3cret-s3cret, alg: HS256 }], issuer: [https://idp], audiences: [orders] }",
        );
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let h = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        let good = serde_json::json!({"sub": "u1", "iss": "https://idp", "aud": ["x", "orders"], "exp": now + 60});
        let id = check(&p, &hs256(&h, &good, b"s3cret-s3cret"))
            .await
            .unwrap();
        assert_eq!(id.subject.as_deref(), Some("u1"));

        let wrong_key = hs256(&h, &good, b"other");
        assert!(
            check(&p, &wrong_key)
                .await
                .unwrap_err()
                .contains("signature")
        );
        let expired = serde_json::json!({"iss": "https://idp", "aud": "orders", "exp": now - 120});
        let forever = serde_json::json!({"iss": "https://idp", "aud": "orders"});
        assert!(
            check(&p, &hs256(&h, &forever, b"s3cret-s3cret"))
                .await
                .unwrap_err()
                .contains("no expiry")
        );
        assert!(
            check(&p, &hs256(&h, &expired, b"s3cret-s3cret"))
                .await
                .unwrap_err()
                .contains("expired")
        );
        // Within the 30 s leeway.
        let just = serde_json::json!({"iss": "https://idp", "aud": "orders", "exp": now - 5});
        assert!(check(&p, &hs256(&h, &just, b"s3cret-s3cret")).await.is_ok());
        let early = serde_json::json!({"iss": "https://idp", "aud": "orders", "nbf": now + 600, "exp": now + 900});
        assert!(
            check(&p, &hs256(&h, &early, b"s3cret-s3cret"))
                .await
                .unwrap_err()
                .contains("not valid yet")
        );
        let other_iss =
            serde_json::json!({"iss": "https://evil", "aud": "orders", "exp": now + 60});
        assert!(
            check(&p, &hs256(&h, &other_iss, b"s3cret-s3cret"))
                .await
                .unwrap_err()
                .contains("issuer")
        );
        let other_aud =
            serde_json::json!({"iss": "https://idp", "aud": "billing", "exp": now + 60});
        assert!(
            check(&p, &hs256(&h, &other_aud, b"s3cret-s3cret"))
                .await
                .unwrap_err()
                .contains("audience")
        );
    }

    #[tokio::test]
    async fn dangerous_headers_are_refused() {
        let p = policy("{ keys: [{ secret: s3cret-s3cret, alg: HS256 }] }");
        let claims = serde_json::json!({"sub": "u1"});
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none"})),
            b64(&claims)
        );
        assert!(check(&p, &none).await.unwrap_err().contains("alg: none"));
        let crit = hs256(
            &serde_json::json!({"alg": "HS256", "crit": ["exp"], "exp": 1}),
            &claims,
            b"s3cret-s3cret",
        );
        assert!(check(&p, &crit).await.unwrap_err().contains("crit"));
        let b64false = hs256(
            &serde_json::json!({"alg": "HS256", "b64": false, "crit": ["b64"]}),
            &claims,
            b"s3cret-s3cret",
        );
        assert!(check(&p, &b64false).await.is_err());
        // A token signed as HS512 with the right secret: the key is for HS256 only.
        let input = format!(
            "{}.{}",
            b64(&serde_json::json!({"alg": "HS512"})),
            b64(&claims)
        );
        let sig = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(b"s3cret-s3cret"),
            Algorithm::HS512,
        )
        .unwrap();
        assert!(check(&p, &format!("{input}.{sig}")).await.is_err());
        assert!(check(&p, "a.b").await.is_err());
        assert!(check(&p, &"x".repeat(MAX_TOKEN + 1)).await.is_err());
    }

    #[tokio::test]
    async fn an_rsa_public_key_is_no_hmac_secret() {
        // The classic confusion: sign HS256 with the RSA public key's text as the secret.
        let jwk = rfc7520_jwk("3_3.rsa_public_key.json");
        let p = CompiledJwt::compile(
            &Jwt {
                keys: vec![JwtKey {
                    jwk: Some(jwk.clone()),
                    ..JwtKey::default()
                }],
                ..yaml_serde::from_str("{ keys: [] }").unwrap()
            },
            None,
            &JwksRegistry::default(),
        )
        .unwrap();
        let claims = serde_json::json!({"sub": "u1"});
        let forged = hs256(
            &serde_json::json!({"alg": "HS256"}),
            &claims,
            jwk.to_string().as_bytes(),
        );
        assert!(check(&p, &forged).await.is_err());
    }

    fn fixture(path: &str) -> Value {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rfc7520");
        let text = std::fs::read_to_string(format!("{dir}/{path}")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn rfc7520_jwk(name: &str) -> Value {
        fixture(&format!("jwk/{name}"))
    }

    /// RFC 7520 §4 examples: each signature verifies with its public key, and fails with
    /// a bit flipped. ES512 (P-521) is not among the accepted algorithms and is refused.
    #[test]
    fn rfc7520_signatures() {
        for (file, key_file, supported) in [
            (
                "4_1.rsa_v15_signature.json",
                "3_3.rsa_public_key.json",
                true,
            ),
            (
                "4_2.rsa-pss_signature.json",
                "3_3.rsa_public_key.json",
                true,
            ),
            ("4_3.ecdsa_signature.json", "3_1.ec_public_key.json", false),
            (
                "4_4.hmac-sha2_integrity_protection.json",
                "3_5.symmetric_key_mac_computation.json",
                true,
            ),
        ] {
            let case = fixture(&format!("jws/{file}"));
            let compact = case["output"]["compact"].as_str().unwrap();
            let jwk = rfc7520_jwk(key_file);
            let parts = parse(compact);
            if !supported {
                assert!(
                    parts.is_err() || key_from_jwk(&jwk, None).is_err(),
                    "{file}"
                );
                continue;
            }
            let parts = parts.unwrap_or_else(|e| panic!("{file}: {e}"));
            let key = key_from_jwk(&jwk, None).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(key.algs.contains(&parts.alg), "{file}");
            let ok = jsonwebtoken::crypto::verify(
                parts.signature,
                parts.signing_input.as_bytes(),
                &key.key,
                parts.alg,
            )
            .unwrap();
            assert!(ok, "{file} should verify");
            let mut tampered = parts.signing_input.to_string();
            tampered.replace_range(tampered.len() - 2.., "AA");
            let bad = jsonwebtoken::crypto::verify(
                parts.signature,
                tampered.as_bytes(),
                &key.key,
                parts.alg,
            )
            .unwrap_or(false);
            assert!(!bad, "{file} tampered should fail");
        }
    }
}
