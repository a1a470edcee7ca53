//! Apps → consumers with their credentials; certificates.

use serde_json::{Map, Value, json};
use tollgate_model::Document;

use super::{Exporter, PLACEHOLDER_DOMAIN, TAG_NAME, TAG_OWNER};

impl Exporter {
    pub(super) fn consumers(&mut self, doc: &Document) -> (Vec<Value>, usize) {
        let mut out = Vec::new();
        let mut credentials = 0;
        for (d, dev) in doc.developers.iter().enumerate() {
            let at = format!("developers[{d}]");
            let placeholder = dev.email.ends_with(&format!("@{PLACEHOLDER_DOMAIN}"));
            let has_apps = doc
                .apps
                .iter()
                .any(|a| a.owner.eq_ignore_ascii_case(&dev.email));
            if !has_apps {
                self.report.unsupported(at.clone(), "a developer without apps: Kong has no developers (an app's owner rides on its consumer as a tag)");
            }
            for (field, set) in [
                ("name", dev.name.is_some() && !placeholder),
                ("organization", dev.organization.is_some()),
                ("blocked", dev.blocked),
                ("billing_customer", dev.billing_customer.is_some()),
            ] {
                if set {
                    self.report.unsupported(format!("{at}.{field}"), "Kong has no developers: only the email is kept, as a tag on each of the developer's consumers");
                }
            }
        }
        for (i, app) in doc.apps.iter().enumerate() {
            let at = format!("apps[{i}]");
            let mut c = Map::new();
            c.insert("username".into(), json!(app.name));
            let mut attributes = app.attributes.clone();
            if let Some(id) = attributes.shift_remove("custom_id") {
                match id.as_str() {
                    Some(s) => {
                        c.insert("custom_id".into(), json!(s));
                    }
                    None => self.report.unsupported(
                        format!("{at}.attributes.custom_id"),
                        "a custom_id that is not text",
                    ),
                }
            }
            for name in attributes.keys() {
                self.report.unsupported(
                    format!("{at}.attributes.{name}"),
                    "Kong consumers have no attributes",
                );
            }
            if app.owner != format!("{}@{PLACEHOLDER_DOMAIN}", app.name) {
                c.insert("tags".into(), json!([format!("{TAG_OWNER}{}", app.owner)]));
            }
            for (field, set, why) in [
                (
                    "description",
                    app.description.is_some(),
                    "Kong consumers have no description",
                ),
                (
                    "disabled",
                    app.disabled,
                    "Kong consumers cannot be disabled",
                ),
                (
                    "oauth2_clients",
                    !app.oauth2_clients.is_empty(),
                    "oauth2_introspection clients",
                ),
                (
                    "certificates",
                    !app.certificates.is_empty(),
                    "client certificates for mtls",
                ),
            ] {
                if set {
                    self.report.unsupported(format!("{at}.{field}"), why);
                }
            }
            if !app.groups.is_empty() {
                c.insert(
                    "acls".into(),
                    json!(
                        app.groups
                            .iter()
                            .map(|g| json!({ "group": g }))
                            .collect::<Vec<_>>()
                    ),
                );
            }
            let mut keys = Vec::new();
            for (k, key) in app.keys.iter().enumerate() {
                let kat = format!("{at}.keys[{k}]");
                match &key.secret {
                    Some(s) => keys.push(json!({ "key": s })),
                    None => self.report.unsupported(kat.clone(), "the key is stored hashed, and Kong needs the key itself: export from the file that holds it, or issue a new key"),
                }
                if key.label.is_some() {
                    self.report
                        .unsupported(format!("{kat}.label"), "Kong keys have no label");
                }
                if key.expires_at.is_some() {
                    self.report.unsupported(
                        format!("{kat}.expires_at"),
                        "a key's end: Kong keys have a ttl counted from their creation",
                    );
                }
            }
            credentials += keys.len();
            if !keys.is_empty() {
                c.insert("keyauth_credentials".into(), Value::Array(keys));
            }
            let mut basic = Vec::new();
            for (b, cred) in app.basic.iter().enumerate() {
                match &cred.password {
                    Some(p) => basic.push(json!({ "username": cred.username, "password": p })),
                    None => self.report.unsupported(format!("{at}.basic[{b}]"), "the password is stored as an argon2 hash, which Kong cannot check: export from the file that holds it, or set it in Kong"),
                }
            }
            credentials += basic.len();
            if !basic.is_empty() {
                c.insert("basicauth_credentials".into(), Value::Array(basic));
            }
            let mut secrets = Vec::new();
            for (s, subject) in app.jwt_subjects.iter().enumerate() {
                let sat = format!("{at}.jwt_subjects[{s}]");
                match &self.jwt_key {
                    None => self.report.unsupported(
                        sat,
                        "a JWT subject without a jwt policy whose one key Kong can hold",
                    ),
                    Some(k) => {
                        let alg = k.alg.clone().unwrap_or_else(|| "HS256".into());
                        let secret = match (&k.secret, &k.pem) {
                            (Some(sec), _) if sec.starts_with("sealed:") => {
                                self.report.unsupported(sat, "the jwt policy's secret is sealed: export from the file that holds it");
                                continue;
                            }
                            (Some(sec), _) => {
                                json!({ "key": subject, "algorithm": alg, "secret": sec })
                            }
                            (None, Some(pem)) => {
                                json!({ "key": subject, "algorithm": alg, "rsa_public_key": pem })
                            }
                            _ => continue,
                        };
                        secrets.push(secret);
                    }
                }
            }
            credentials += secrets.len();
            if !secrets.is_empty() {
                c.insert("jwt_secrets".into(), Value::Array(secrets));
            }
            out.push(Value::Object(c));
        }
        (out, credentials)
    }

    pub(super) fn certificates(&mut self, doc: &Document) -> Vec<Value> {
        let mut out = Vec::new();
        for (i, c) in doc.certificates.iter().enumerate() {
            if c.key.starts_with("sealed:") {
                self.report.unsupported(
                    format!("certificates[{i}].key"),
                    "the private key is sealed: export from the file that holds it",
                );
                continue;
            }
            if c.snis.is_empty() {
                self.report.unsupported(format!("certificates[{i}]"), "a default certificate (no snis): Kong serves certificates by SNI (set it as Kong's default in kong.conf)");
                continue;
            }
            out.push(json!({
                "tags": [format!("{TAG_NAME}{}", c.name)],
                "cert": c.cert,
                "key": c.key,
                "snis": c.snis.iter().map(|s| json!({ "name": s })).collect::<Vec<_>>(),
            }));
        }
        out
    }
}
