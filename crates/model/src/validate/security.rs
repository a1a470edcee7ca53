//! Checks of the security parts of a document: developers and apps with their
//! credentials, authentication policies, certificates and TLS settings.

use std::collections::HashSet;

use super::{Errors, is_slug};
use crate::document::{Document, is_token};

fn looks_like_pem(text: &str, what: &str) -> bool {
    text.contains(&format!("-----BEGIN {what}"))
        || (what == "KEY" && text.contains("PRIVATE KEY-----"))
}

/// A host name pattern for SNI: labels of letters, digits and `-`, optionally one
/// leading `*.` wildcard label.
fn is_sni_pattern(s: &str) -> bool {
    let name = s.strip_prefix("*.").unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
        })
}

/// Certificates, TLS settings and upstream TLS.
pub(super) fn check_tls(doc: &Document, errs: &mut Errors) {
    let mut names = HashSet::new();
    let mut snis = HashSet::new();
    let mut defaults = 0;
    for (i, c) in doc.certificates.iter().enumerate() {
        let path = format!("certificates[{i}]");
        if !is_slug(&c.name) {
            errs.push(
                format!("{path}.name"),
                format!(
                    "`{}` is not a valid name: use lower-case letters, digits, `-` and `_`",
                    c.name
                ),
            );
        } else if !names.insert(c.name.as_str()) {
            errs.push(
                format!("{path}.name"),
                format!("certificate `{}` is defined twice", c.name),
            );
        }
        if !looks_like_pem(&c.cert, "CERTIFICATE") {
            errs.push(
                format!("{path}.cert"),
                "cert must be a PEM certificate chain",
            );
        }
        let sealed = c.key.starts_with("sealed:");
        if !sealed && !looks_like_pem(&c.key, "KEY") {
            errs.push(format!("{path}.key"), "key must be a PEM private key");
        }
        if c.snis.is_empty() {
            defaults += 1;
        }
        for (k, sni) in c.snis.iter().enumerate() {
            let lower = sni.to_ascii_lowercase();
            if !is_sni_pattern(&lower) {
                errs.push(
                    format!("{path}.snis[{k}]"),
                    format!("`{sni}` is not a host name or `*.domain` pattern"),
                );
            } else if !snis.insert(lower) {
                errs.push(
                    format!("{path}.snis[{k}]"),
                    format!("`{sni}` is served by two certificates"),
                );
            }
        }
    }
    if defaults > 1 {
        errs.push(
            "certificates",
            "only one certificate may be the default (have no `snis`)",
        );
    }
    let tls = &doc.settings.tls;
    if let Some(ca) = &tls.client_ca
        && !looks_like_pem(ca, "CERTIFICATE")
    {
        errs.push(
            "settings.tls.client_ca",
            "client_ca must be PEM CA certificates",
        );
    }
    if let Some(h) = &tls.hsts
        && (!h.to_ascii_lowercase().starts_with("max-age=") || h.contains(['\r', '\n']))
    {
        errs.push(
            "settings.tls.hsts",
            format!("`{h}` is not a Strict-Transport-Security value such as max-age=31536000"),
        );
    }
    if tls.https_port == Some(0) {
        errs.push("settings.tls.https_port", "https_port must be above 0");
    }
    for (i, up) in doc.upstreams.iter().enumerate() {
        let path = format!("upstreams[{i}].tls");
        let t = &up.tls;
        if let Some(ca) = &t.ca
            && !looks_like_pem(ca, "CERTIFICATE")
        {
            errs.push(format!("{path}.ca"), "ca must be PEM CA certificates");
        }
        match (&t.client_cert, &t.client_key) {
            (Some(c), Some(k)) => {
                if !looks_like_pem(c, "CERTIFICATE") {
                    errs.push(
                        format!("{path}.client_cert"),
                        "client_cert must be a PEM certificate chain",
                    );
                }
                if !k.starts_with("sealed:") && !looks_like_pem(k, "KEY") {
                    errs.push(
                        format!("{path}.client_key"),
                        "client_key must be a PEM private key",
                    );
                }
            }
            (None, None) => {}
            _ => errs.push(path.clone(), "client_cert and client_key go together"),
        }
        if t.server_name
            .as_deref()
            .is_some_and(|n| !is_sni_pattern(n) || n.starts_with('*'))
        {
            errs.push(
                format!("{path}.server_name"),
                "server_name must be a host name",
            );
        }
        let uses_https = up.targets.iter().any(|t| t.url.starts_with("https://"));
        if *t != crate::document::UpstreamTls::default() && !uses_https {
            errs.push(
                path.clone(),
                "tls settings need at least one https:// target",
            );
        }
        if uses_https && up.protocol == crate::document::UpstreamProtocol::H2c {
            errs.push(
                format!("upstreams[{i}].protocol"),
                "h2c is HTTP/2 without TLS and cannot be used with https:// targets",
            );
        }
    }
}
/// A URL the gateway calls for itself (a JWKS, an introspection endpoint): http or
/// https, with a path, without credentials or a fragment.
pub fn check_service_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(format!("`{url}` must start with https:// or http://")),
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("`{url}` has no host"));
    };
    if authority.as_str().contains('@') || url.contains('#') {
        return Err(format!("`{url}` must not hold credentials or a fragment"));
    }
    if authority.host().is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

/// Line and column (1-based) of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |n| before.len() - n - 1)
        + 1;
    (line, col)
}

const JWT_ALGS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

pub(super) fn check_jwt(j: &crate::policy::Jwt, path: &str, errs: &mut Errors) {
    if j.keys.is_empty() && j.jwks_url.is_none() {
        errs.push(path.to_string(), "jwt needs `keys` or a `jwks_url`");
    }
    if let Some(url) = &j.jwks_url
        && let Err(e) = check_service_url(url)
    {
        errs.push(format!("{path}.jwks_url"), e);
    }
    for (i, k) in j.keys.iter().enumerate() {
        let kpath = format!("{path}.keys[{i}]");
        let forms = [k.jwk.is_some(), k.pem.is_some(), k.secret.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if forms != 1 {
            errs.push(
                kpath.clone(),
                "a key is exactly one of `jwk`, `pem` or `secret`",
            );
        }
        match &k.alg {
            Some(alg) if !JWT_ALGS.contains(&alg.as_str()) => errs.push(
                format!("{kpath}.alg"),
                format!(
                    "`{alg}` is not a supported algorithm: {}",
                    JWT_ALGS.join(", ")
                ),
            ),
            Some(alg) if k.secret.is_some() && !alg.starts_with("HS") => errs.push(
                format!("{kpath}.alg"),
                format!("a `secret` is an HMAC key; `{alg}` needs a public key"),
            ),
            Some(alg) if k.secret.is_none() && alg.starts_with("HS") => errs.push(
                format!("{kpath}.alg"),
                format!("`{alg}` is an HMAC algorithm; give its `secret`"),
            ),
            None if k.jwk.is_none() => errs.push(
                format!("{kpath}.alg"),
                "`alg` is required for `pem` and `secret` keys",
            ),
            _ => {}
        }
        if k.secret.as_deref().is_some_and(str::is_empty) {
            errs.push(format!("{kpath}.secret"), "the secret is empty");
        }
    }
    if j.app_claim.is_empty() {
        errs.push(format!("{path}.app_claim"), "app_claim is empty");
    }
    check_forward_claims(&j.forward_claims, &format!("{path}.forward_claims"), errs);
}

pub(super) fn check_forward_claims(
    claims: &indexmap::IndexMap<String, String>,
    path: &str,
    errs: &mut Errors,
) {
    for (claim, header) in claims {
        if !is_token(header) {
            errs.push(
                format!("{path}.{claim}"),
                format!("`{header}` is not a valid header name"),
            );
        }
    }
}

/// Developers and apps: names, owners, credentials.
pub(super) fn check_identities(doc: &Document, errs: &mut Errors) {
    let mut emails = HashSet::new();
    for (i, d) in doc.developers.iter().enumerate() {
        let path = format!("developers[{i}].email");
        let e = d.email.as_str();
        let plausible = e.len() <= 254
            && e.split_once('@').is_some_and(|(user, domain)| {
                !user.is_empty() && domain.contains('.') && !domain.starts_with('.')
            })
            && !e.contains(char::is_whitespace);
        if !plausible {
            errs.push(path, format!("`{e}` is not an email address"));
        } else if !emails.insert(e.to_ascii_lowercase()) {
            errs.push(path, format!("developer `{e}` is defined twice"));
        }
    }
    let mut names = HashSet::new();
    let mut key_ids = HashSet::new();
    let mut usernames = HashSet::new();
    let mut subjects = HashSet::new();
    for (i, app) in doc.apps.iter().enumerate() {
        let path = format!("apps[{i}]");
        if !is_slug(&app.name) {
            errs.push(
                format!("{path}.name"),
                format!(
                    "`{}` is not a valid name: use lower-case letters, digits, `-` and `_`",
                    app.name
                ),
            );
        } else if !names.insert(app.name.as_str()) {
            errs.push(
                format!("{path}.name"),
                format!("app `{}` is defined twice", app.name),
            );
        }
        if !emails.contains(&app.owner.to_ascii_lowercase()) {
            errs.push(
                format!("{path}.owner"),
                format!("unknown developer `{}`", app.owner),
            );
        }
        let active = app.keys.len();
        if active > 2 {
            errs.push(
                format!("{path}.keys"),
                format!("an app holds at most two keys (one to rotate to); this one has {active}"),
            );
        }
        for (k, key) in app.keys.iter().enumerate() {
            let kpath = format!("{path}.keys[{k}]");
            match (&key.secret, &key.id, &key.hash) {
                (Some(secret), None, None) => {
                    if secret.len() < 16 {
                        errs.push(
                            format!("{kpath}.secret"),
                            "a key must be at least 16 characters long",
                        );
                    }
                }
                (None, Some(id), Some(hash)) => {
                    if !key_ids.insert(id.as_str()) {
                        errs.push(
                            format!("{kpath}.id"),
                            format!("key id `{id}` is used twice"),
                        );
                    }
                    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                        errs.push(format!("{kpath}.hash"), "a key hash is 64 hex digits");
                    }
                }
                _ => errs.push(
                    kpath.clone(),
                    "a key is written either as `secret` or, as exported, as `id` and `hash`",
                ),
            }
            if let Some(t) = &key.expires_at
                && time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .is_err()
            {
                errs.push(
                    format!("{kpath}.expires_at"),
                    format!("`{t}` is not an RFC 3339 time"),
                );
            }
        }
        for (k, b) in app.basic.iter().enumerate() {
            let bpath = format!("{path}.basic[{k}]");
            if b.username.is_empty() || b.username.contains(':') {
                errs.push(
                    format!("{bpath}.username"),
                    "a username is not empty and holds no `:`",
                );
            } else if !usernames.insert(b.username.as_str()) {
                errs.push(
                    format!("{bpath}.username"),
                    format!("username `{}` is used by two credentials", b.username),
                );
            }
            match (&b.password, &b.password_hash) {
                (Some(p), None) if p.len() < 8 => errs.push(
                    format!("{bpath}.password"),
                    "a password must be at least 8 characters long",
                ),
                (Some(_), None) => {}
                (None, Some(h)) if h.starts_with("$argon2") => {}
                (None, Some(_)) => errs.push(
                    format!("{bpath}.password_hash"),
                    "password_hash must be an argon2 PHC string",
                ),
                _ => errs.push(
                    bpath.clone(),
                    "a credential has either `password` or, as exported, `password_hash`",
                ),
            }
        }
        for (k, s) in app.jwt_subjects.iter().enumerate() {
            if !subjects.insert(("jwt", s.clone())) {
                errs.push(
                    format!("{path}.jwt_subjects[{k}]"),
                    format!("JWT subject `{s}` maps to two apps"),
                );
            }
        }
        for (k, c) in app.certificates.iter().enumerate() {
            let cpath = format!("{path}.certificates[{k}]");
            let key = match c.strip_prefix("cn:") {
                Some(cn) if !cn.is_empty() => format!("cn:{cn}"),
                Some(_) => {
                    errs.push(cpath, "`cn:` needs a common name");
                    continue;
                }
                None => {
                    let hex = c.replace(':', "").to_ascii_lowercase();
                    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        errs.push(
                            cpath,
                            format!(
                                "`{c}` is neither a SHA-256 fingerprint (64 hex digits) nor `cn:NAME`"
                            ),
                        );
                        continue;
                    }
                    hex
                }
            };
            if !subjects.insert(("cert", key)) {
                errs.push(
                    format!("{path}.certificates[{k}]"),
                    format!("client certificate `{c}` maps to two apps"),
                );
            }
        }
        for (k, s) in app.oauth2_clients.iter().enumerate() {
            if !subjects.insert(("oauth2", s.clone())) {
                errs.push(
                    format!("{path}.oauth2_clients[{k}]"),
                    format!("OAuth2 client `{s}` maps to two apps"),
                );
            }
        }
    }
}
