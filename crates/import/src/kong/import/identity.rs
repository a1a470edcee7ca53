//! Consumers → developers and apps with their credentials; certificates.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::super::plugins;
use super::{
    Builder, CONSUMER_HEADERS, JwtKeys, PLACEHOLDER, PLACEHOLDER_DOMAIN, RENAMED, TAG_NAME,
    TAG_OWNER, get, get_bool, get_str, list, name_slug, reference, tag_value, unique,
};

/// A credential list Tollgate has no credential for.
const FOREIGN: &[(&str, &str)] = &[
    (
        "hmacauth_credentials",
        "HMAC credentials: Tollgate has no hmac-auth",
    ),
    (
        "oauth2_credentials",
        "OAuth2 client credentials of Kong's own authorization server: use oauth2_introspection or jwt with your identity provider",
    ),
    (
        "mtls_auth_credentials",
        "client certificate credentials: give the app `certificates` (SHA-256 fingerprints or cn:NAME) for mtls",
    ),
];

/// A `jwt_secrets` item waiting for the jwt plugins.
struct Secret {
    app: usize,
    at: String,
    key: Option<String>,
    verifies: Result<Value, String>,
}

fn looks_hashed(password: &str) -> bool {
    password.len() == 40 && password.bytes().all(|b| b.is_ascii_hexdigit())
}

impl<'a> Builder<'a> {
    /// Consumers and their credentials; answers the key every jwt plugin checks with.
    pub(super) fn map_consumers(&mut self) -> JwtKeys {
        let mut who: Vec<[Option<String>; 3]> = Vec::new();
        let mut secrets = Vec::new();
        for c in 0..self.consumers.len() {
            let (at, v) = self.consumers[c].clone();
            self.unknown_fields(
                &at,
                v,
                &[
                    "username",
                    "custom_id",
                    "keyauth_credentials",
                    "basicauth_credentials",
                    "jwt_secrets",
                    "acls",
                    "plugins",
                    "hmacauth_credentials",
                    "oauth2_credentials",
                    "mtls_auth_credentials",
                    "groups",
                    "username_lower",
                    "type",
                ],
            );
            let written = get_str(v, "username").or(get_str(v, "custom_id"));
            let base = name_slug(written.unwrap_or(""), &format!("consumer-{}", c + 1));
            let name = unique(&base, |n| self.apps.iter().any(|a| a["name"] == n));
            if written.is_some_and(|w| w != name) {
                self.g.add(at.clone(), RENAMED);
            }
            let owner = match tag_value(v, TAG_OWNER).filter(|e| e.contains('@')) {
                Some(email) => email,
                None => {
                    self.g.add(at.clone(), PLACEHOLDER);
                    format!("{name}@{PLACEHOLDER_DOMAIN}")
                }
            };
            let known = self.developers.iter().any(|d| {
                d["email"]
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(&owner))
            });
            if !known {
                self.developers.push(json!({ "email": owner }));
            }
            let mut app = Map::new();
            app.insert("name".into(), json!(name));
            app.insert("owner".into(), json!(owner));
            if let Some(id) = get_str(v, "custom_id") {
                app.insert("attributes".into(), json!({ "custom_id": id }));
            }
            self.apps.push(Value::Object(app));
            let a = self.apps.len() - 1;
            who.push([
                get_str(v, "username").map(str::to_string),
                get_str(v, "id").map(str::to_string),
                get_str(v, "custom_id").map(str::to_string),
            ]);
            for (k, g) in list(v, "acls").iter().enumerate() {
                self.group(a, &format!("{at}.acls[{k}]"), g);
            }
            for (k, key) in list(v, "keyauth_credentials").iter().enumerate() {
                self.api_key(a, &format!("{at}.keyauth_credentials[{k}]"), key);
            }
            for (k, b) in list(v, "basicauth_credentials").iter().enumerate() {
                self.basic(a, &format!("{at}.basicauth_credentials[{k}]"), b);
            }
            for (k, s) in list(v, "jwt_secrets").iter().enumerate() {
                secrets.push(self.secret(a, format!("{at}.jwt_secrets[{k}]"), s));
            }
            for (field, why) in FOREIGN {
                for (k, _) in list(v, field).iter().enumerate() {
                    self.unsupported(format!("{at}.{field}[{k}]"), *why);
                }
            }
            if !list(v, "groups").is_empty() {
                self.unsupported(format!("{at}.groups"), "consumer group membership: give the app `groups` (acl) or a subscription to a plan");
            }
        }
        // Credentials listed at the top level, naming their consumer.
        for (kind, at, v) in std::mem::take(&mut self.loose_credentials) {
            let Some(consumer) = get(v, "consumer").and_then(reference) else {
                self.unsupported(at, "a credential without its consumer");
                continue;
            };
            let Some(a) = who
                .iter()
                .position(|w| w.iter().flatten().any(|x| *x == consumer))
            else {
                self.unsupported(at, format!("consumer `{consumer}` is not in the file"));
                continue;
            };
            match kind {
                "keyauth_credentials" => self.api_key(a, &at, v),
                "basicauth_credentials" => self.basic(a, &at, v),
                "jwt_secrets" => secrets.push(self.secret(a, at, v)),
                _ => self.group(a, &at, v),
            }
        }
        if !self.apps.is_empty() {
            self.g.add("consumers", CONSUMER_HEADERS);
        }
        self.jwt_keys(secrets)
    }

    fn group(&mut self, a: usize, at: &str, g: &Value) {
        let group = match g {
            Value::String(s) => Some(s.as_str()),
            _ => get_str(g, "group"),
        };
        let Some(group) = group else {
            self.unsupported(at.to_string(), "an acl entry without a group");
            return;
        };
        let app = &mut self.apps[a];
        let groups = app
            .as_object_mut()
            .map(|m| m.entry("groups").or_insert_with(|| json!([])));
        if let Some(Value::Array(list)) = groups
            && !list.iter().any(|x| x == group)
        {
            list.push(json!(group));
        }
    }

    fn push_credential(&mut self, a: usize, field: &str, item: Value) {
        if let Some(m) = self.apps[a].as_object_mut()
            && let Value::Array(list) = m.entry(field).or_insert_with(|| json!([]))
        {
            list.push(item);
            self.credentials += 1;
        }
    }

    fn api_key(&mut self, a: usize, at: &str, k: &Value) {
        self.unknown_fields(at, k, &["key", "ttl", "consumer"]);
        let Some(key) = get_str(k, "key") else {
            self.unsupported(
                at.to_string(),
                "a key-auth credential without its key (Kong made one up): issue a key in Tollgate",
            );
            return;
        };
        if key.len() < 16 {
            self.unsupported(
                at.to_string(),
                format!("a key of {} characters: Tollgate keys have at least 16; issue the app a longer one", key.len()),
            );
            return;
        }
        if get(k, "ttl").is_some() {
            self.unsupported(
                format!("{at}.ttl"),
                "a key's time to live: set `expires_at` on the app's key",
            );
        }
        let held = self.apps[a]["keys"].as_array().map_or(0, Vec::len);
        if held >= 2 {
            self.unsupported(
                at.to_string(),
                "a third key: an app holds at most two (one to rotate to)",
            );
            return;
        }
        self.push_credential(a, "keys", json!({ "secret": key }));
    }

    fn basic(&mut self, a: usize, at: &str, b: &Value) {
        self.unknown_fields(at, b, &["username", "password", "consumer"]);
        let (Some(user), Some(password)) = (get_str(b, "username"), get_str(b, "password")) else {
            self.unsupported(
                at.to_string(),
                "a basic-auth credential without username and password",
            );
            return;
        };
        if self.transform_hashed || looks_hashed(password) {
            self.unsupported(
                at.to_string(),
                "the password is Kong's stored hash (as `deck dump` writes it), not the password: set the password in Tollgate",
            );
            return;
        }
        if password.len() < 8 || user.is_empty() || user.contains(':') {
            self.unsupported(
                at.to_string(),
                "Tollgate needs a username without `:` and a password of at least 8 characters",
            );
            return;
        }
        self.push_credential(
            a,
            "basic",
            json!({ "username": user, "password": password }),
        );
    }

    fn secret(&mut self, a: usize, at: String, s: &Value) -> Secret {
        self.unknown_fields(
            &at,
            s,
            &["key", "secret", "algorithm", "rsa_public_key", "consumer"],
        );
        Secret {
            app: a,
            key: get_str(s, "key").map(str::to_string),
            verifies: plugins::jwt_key(s),
            at,
        }
    }

    /// Decides what the jwt plugins check tokens with, and which secrets are carried.
    fn jwt_keys(&mut self, secrets: Vec<Secret>) -> JwtKeys {
        let used = self.plugins.iter().any(|p| {
            p.name == "jwt" && p.consumer.is_none() && get_bool(p.v, "enabled") != Some(false)
        });
        if !used {
            for s in &secrets {
                self.unsupported(
                    s.at.clone(),
                    "the secret is not carried: Tollgate keeps JWT keys in a jwt policy, and no jwt plugin here checks tokens",
                );
            }
            return JwtKeys::None;
        }
        let mut distinct = BTreeSet::new();
        for s in &secrets {
            match &s.verifies {
                Ok(k) => {
                    distinct.insert(k.to_string());
                }
                Err(e) => self.unsupported(s.at.clone(), e.clone()),
            }
        }
        let keys = match distinct.len() {
            0 => JwtKeys::None,
            1 => JwtKeys::One(
                serde_json::from_str(distinct.iter().next().map_or("null", |s| s))
                    .unwrap_or(Value::Null),
            ),
            n => JwtKeys::Many(n),
        };
        for s in secrets {
            if s.verifies.is_err() {
                continue;
            }
            if matches!(keys, JwtKeys::Many(_)) {
                self.unsupported(s.at, "the secret is not carried (see the jwt plugin)");
                continue;
            }
            let Some(key) = s.key else {
                self.unsupported(
                    s.at,
                    "a jwt_secret without `key`: no token could name its consumer",
                );
                continue;
            };
            self.push_credential(s.app, "jwt_subjects", json!(key));
        }
        keys
    }

    pub(super) fn map_certificates(&mut self) {
        for c in 0..self.certificates.len() {
            let (at, v) = self.certificates[c].clone();
            self.unknown_fields(&at, v, &["cert", "key", "snis"]);
            for f in ["cert_alt", "key_alt"] {
                if get(v, f).is_some() {
                    self.unsupported(
                        format!("{at}.{f}"),
                        "a second (ECDSA/RSA) certificate and key: Tollgate serves one per name",
                    );
                }
            }
            let (Some(cert), Some(key)) = (get_str(v, "cert"), get_str(v, "key")) else {
                self.unsupported(at, "a certificate without `cert` and `key`");
                continue;
            };
            if cert.contains("{vault://") || key.contains("{vault://") {
                self.unsupported(
                    at,
                    "a certificate kept in a vault (`{vault://…}`): put the PEM text in the file",
                );
                continue;
            }
            let mut snis: Vec<String> = list(v, "snis")
                .iter()
                .filter_map(|s| match s {
                    Value::String(n) => Some(n.clone()),
                    _ => get_str(s, "name").map(str::to_string),
                })
                .collect();
            let id = get_str(v, "id");
            for (_, sni) in &self.snis {
                let owner = get(sni, "certificate").and_then(reference);
                if owner.is_some()
                    && owner.as_deref() == id
                    && let Some(n) = get_str(sni, "name")
                {
                    snis.push(n.to_string());
                }
            }
            if snis.is_empty() {
                self.unsupported(
                    at,
                    "a certificate without SNIs is not served by name in Kong (it is for client_certificate or as a CA); Tollgate would make it the default certificate",
                );
                continue;
            }
            let base = match tag_value(v, TAG_NAME).filter(|n| tollgate_model::validate::is_slug(n))
            {
                Some(n) => n,
                None => name_slug(
                    &snis[0].replace('*', "wildcard"),
                    &format!("certificate-{}", c + 1),
                ),
            };
            let name = unique(&base, |n| self.certs_out.iter().any(|x| x["name"] == n));
            self.certs_out
                .push(json!({ "name": name, "snis": snis, "cert": cert, "key": key }));
        }
        let ids: Vec<&str> = self
            .certificates
            .iter()
            .filter_map(|(_, c)| get_str(c, "id"))
            .collect();
        for (at, sni) in self.snis.clone() {
            let owner = get(sni, "certificate").and_then(reference);
            if !owner.as_deref().is_some_and(|o| ids.contains(&o)) {
                self.unsupported(at, "an SNI whose certificate is not in the file");
            }
        }
    }
}
