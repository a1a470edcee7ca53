//! Kong declarative configuration (decK, `_format_version` 1.1, 2.x and 3.0) → Tollgate, and
//! a Tollgate configuration → decK 3.0.
//!
//! **Import** ([`import`]):
//!
//! - Each service becomes an API with one version (`v1`), whose upstream holds the service's
//!   target (`protocol://host:port`), or, when the service's host names a Kong upstream, that
//!   upstream's targets and weights. The service's timeouts and retries go to the upstream.
//! - Each route path becomes a Tollgate route (plain paths are prefixes; `~` regex paths that
//!   are literal segments, `[^/]+` captures and an optional `$` become `/a/{id}` and
//!   `=/a/{id}` patterns), with its methods, hosts, single-valued headers and `strip_path`.
//!   `preserve_host` with one exact host becomes a request transform setting `Host`.
//! - Consumers become apps (each owned by a developer of its own), with their API keys,
//!   Basic credentials, ACL groups and (when one jwt plugin can check them) JWT keys.
//! - Plugins (global, service, route) become policies at the global, version and route
//!   scopes: key-auth, basic-auth, jwt, acl, rate-limiting, cors, ip-restriction,
//!   request-transformer, request-size-limiting; prometheus is built in.
//!
//! Whatever has no exact Tollgate equivalent is named in [`Report::unsupported`] with its
//! place (`services[3].routes[0].plugins[1]`), never dropped silently.
//!
//! **Export** ([`export`]) writes decK 3.0 YAML that imports back to the same configuration;
//! what Kong cannot express is named in its report. A few tags (`tollgate-api:NAME`,
//! `tollgate-version:V`, `tollgate-scope:api`, `tollgate-owner:EMAIL`) carry what Kong has
//! no field for.

mod export;
mod import;
mod paths;
mod plugins;

use serde_json::Value;

use crate::{Finding, ImportError, Imported, Report};

/// Reads `text` (YAML or JSON) as a Kong declarative configuration and maps it.
pub fn import(text: &str) -> Result<Imported, ImportError> {
    import::run(text)
}

/// Writes `doc` as a decK 3.0 document (a JSON value; serialise it as YAML for decK), with a
/// report of what Kong cannot express. The result imports back with [`import`] to `doc`
/// where everything was expressible.
pub fn export(doc: &tollgate_model::Document) -> Result<(Value, Report), ImportError> {
    export::run(doc)
}

/// [`export`] of a configuration given as JSON (as `GET /api/config?format=json` answers).
pub fn export_value(doc: &Value) -> Result<(Value, Report), ImportError> {
    let doc: tollgate_model::Document = serde_json::from_value(doc.clone())
        .map_err(|e| ImportError(format!("not a Tollgate configuration: {e}")))?;
    export::run(&doc)
}

/// A decK document as YAML text.
pub fn to_yaml(kong: &Value) -> String {
    yaml_serde::to_string(kong).unwrap_or_default()
}

/// Service tag naming the Tollgate API the service belongs to.
const TAG_API: &str = "tollgate-api:";
/// Service tag naming the Tollgate version the service is.
const TAG_VERSION: &str = "tollgate-version:";
/// Plugin tag: the policy belongs to the API, not to the version.
const TAG_SCOPE_API: &str = "tollgate-scope:api";
/// rate-limiting tag: its quota (`…:quota`) or rate limits (`…:rate_limit`) are a wider
/// scope's, copied because Kong's plugin replaces the wider one.
const TAG_INHERITED: &str = "tollgate-inherited:";
/// Route tag: the route's name was made up by an export (the Tollgate route has none).
const TAG_UNNAMED: &str = "tollgate-unnamed";
/// Certificate tag naming the Tollgate certificate.
const TAG_NAME: &str = "tollgate-name:";
/// Consumer tag naming the developer (email) who owns the app.
const TAG_OWNER: &str = "tollgate-owner:";
/// Domain of the made-up developer emails of imported consumers.
const PLACEHOLDER_DOMAIN: &str = "kong.invalid";

/// A Tollgate name (slug) from a Kong name: lower case letters, digits, `-` and `_`; runs of
/// anything else become one `-`; at most 63 characters, starting with a letter or digit.
fn name_slug(text: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            if out.is_empty() && !c.is_ascii_alphanumeric() {
                continue;
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(63);
    let out = out.trim_end_matches(['-', '_']).to_string();
    if out.is_empty() {
        fallback.to_string()
    } else {
        out
    }
}

/// `base`, or `base-2`, `base-3`, … : the first that `taken` does not hold.
fn unique(base: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| {
            let suffix = format!("-{n}");
            let mut b = base.to_string();
            b.truncate(63 - suffix.len());
            format!("{}{suffix}", b.trim_end_matches(['-', '_']))
        })
        .find(|c| !taken(c))
        .unwrap_or_default()
}

/// Notes that apply to many places, reported once each with the count of places.
#[derive(Default)]
struct Grouped(Vec<(String, Vec<String>)>);

impl Grouped {
    fn add(&mut self, at: impl Into<String>, message: impl Into<String>) {
        let message = message.into();
        let at = at.into();
        match self.0.iter_mut().find(|(m, _)| *m == message) {
            Some((_, places)) => places.push(at),
            None => self.0.push((message, vec![at])),
        }
    }

    fn flush(self, report: &mut Report) {
        for (message, places) in self.0 {
            let at = match places.len() {
                1 => places[0].clone(),
                n => format!("{} (and {} more)", places[0], n - 1),
            };
            report.notes.push(Finding { at, message });
        }
    }
}

/// A field of an object, `None` when absent or `null`.
fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn get_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    get(v, key).and_then(Value::as_str)
}

/// A list field (empty when absent, `null` or not a list).
fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    get(v, key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A list of strings (other items skipped).
fn strings(v: &Value, key: &str) -> Vec<String> {
    list(v, key)
        .iter()
        .filter_map(|x| match x {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

fn get_bool(v: &Value, key: &str) -> Option<bool> {
    get(v, key).and_then(Value::as_bool)
}

fn get_num(v: &Value, key: &str) -> Option<f64> {
    get(v, key).and_then(|x| match x {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// The tags of an entity.
fn tags(v: &Value) -> Vec<String> {
    strings(v, "tags")
}

/// The value of a `prefix…` tag.
fn tag_value(v: &Value, prefix: &str) -> Option<String> {
    tags(v)
        .into_iter()
        .find_map(|t| t.strip_prefix(prefix).map(str::to_string))
        .filter(|t| !t.is_empty())
}

/// Whether an entity carries tags other than Tollgate's own.
fn has_foreign_tags(v: &Value) -> bool {
    tags(v).iter().any(|t| !t.starts_with("tollgate-"))
}

#[cfg(test)]
mod tests;
