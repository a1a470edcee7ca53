//! Secrets never reach the store in clear. Before a configuration is committed, every
//! clear credential in it is replaced: API keys by their id and peppered hash, passwords
//! by argon2id hashes, and secrets the gateway must use (JWT HMAC keys, OAuth2 client
//! secrets, TLS private keys) by sealed values. What is already stored is reused when it matches, so
//! applying the same file twice changes nothing.

use tollgate_model::{Document, Policy};
use tollgate_secrets::Secrets;

use crate::problem::ApiError;

fn no_secret() -> ApiError {
    ApiError::internal("this node has no node secret to protect credentials with")
}

/// Every policy of a document, at every scope.
fn policies_mut(doc: &mut Document) -> Vec<&mut Policy> {
    let mut out: Vec<&mut Policy> = doc.policies.iter_mut().collect();
    for api in &mut doc.apis {
        out.extend(api.policies.iter_mut());
        for v in &mut api.versions {
            out.extend(v.policies.iter_mut());
            for r in &mut v.routes {
                out.extend(r.policies.iter_mut());
            }
        }
    }
    out
}

fn policies(doc: &Document) -> Vec<&Policy> {
    let mut out: Vec<&Policy> = doc.policies.iter().collect();
    for api in &doc.apis {
        out.extend(api.policies.iter());
        for v in &api.versions {
            out.extend(v.policies.iter());
            for r in &v.routes {
                out.extend(r.policies.iter());
            }
        }
    }
    out
}

/// The sealed secrets a document holds.
fn sealed_values(doc: &Document) -> Vec<String> {
    let mut out = Vec::new();
    for p in policies(doc) {
        match p {
            Policy::Jwt(j) => out.extend(j.keys.iter().filter_map(|k| k.secret.clone())),
            Policy::OAuth2Introspection(o) => out.push(o.client_secret.clone()),
            _ => {}
        }
    }
    out.extend(doc.certificates.iter().map(|c| c.key.clone()));
    out.extend(doc.webhooks.iter().map(|w| w.secret.clone()));
    out.extend(
        doc.upstreams
            .iter()
            .filter_map(|u| u.tls.client_key.clone()),
    );
    out.retain(|s| tollgate_secrets::is_sealed(s));
    out
}

fn seal_value(
    value: &mut String,
    stored: &[String],
    secrets: Option<&Secrets>,
) -> Result<(), ApiError> {
    if tollgate_secrets::is_sealed(value) {
        return Ok(());
    }
    let secrets = secrets.ok_or_else(no_secret)?;
    *value = stored
        .iter()
        .find(|s| secrets.open(s).is_ok_and(|clear| clear == *value))
        .cloned()
        .unwrap_or_else(|| secrets.seal(value));
    Ok(())
}

/// Replaces every clear credential of `doc`, reusing what `stored` already holds.
pub fn seal(
    doc: &mut Document,
    stored: &Document,
    secrets: Option<&Secrets>,
) -> Result<(), ApiError> {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    for app in &mut doc.apps {
        let old = stored.apps.iter().find(|a| a.name == app.name);
        for key in &mut app.keys {
            let Some(secret) = key.secret.take() else {
                continue;
            };
            let secrets = secrets.ok_or_else(no_secret)?;
            let id = secrets.key_id(&secret);
            let before = old.and_then(|a| a.keys.iter().find(|k| k.id.as_deref() == Some(&id)));
            key.hash = Some(secrets.key_hash(&secret));
            key.id = Some(id);
            if key.created_at.is_none() {
                key.created_at = before
                    .and_then(|k| k.created_at.clone())
                    .or_else(|| now.clone());
            }
            if key.label.is_none() {
                key.label = before.and_then(|k| k.label.clone());
            }
        }
        for cred in &mut app.basic {
            let Some(password) = cred.password.take() else {
                continue;
            };
            let kept = old
                .and_then(|a| a.basic.iter().find(|b| b.username == cred.username))
                .and_then(|b| b.password_hash.clone())
                .filter(|h| tollgate_secrets::verify_password(&password, h));
            cred.password_hash =
                Some(kept.unwrap_or_else(|| tollgate_secrets::hash_password(&password)));
        }
    }
    let stored_sealed = sealed_values(stored);
    for c in &mut doc.certificates {
        seal_value(&mut c.key, &stored_sealed, secrets)?;
    }
    for w in &mut doc.webhooks {
        seal_value(&mut w.secret, &stored_sealed, secrets)?;
    }
    for u in &mut doc.upstreams {
        if let Some(k) = &mut u.tls.client_key {
            seal_value(k, &stored_sealed, secrets)?;
        }
    }
    for p in policies_mut(doc) {
        match p {
            Policy::Jwt(j) => {
                for k in &mut j.keys {
                    if let Some(s) = &mut k.secret {
                        seal_value(s, &stored_sealed, secrets)?;
                    }
                }
            }
            Policy::OAuth2Introspection(o) => {
                seal_value(&mut o.client_secret, &stored_sealed, secrets)?
            }
            _ => {}
        }
    }
    Ok(())
}
