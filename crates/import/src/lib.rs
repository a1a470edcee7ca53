//! Importers: other formats into Tollgate's declarative configuration.
//!
//! Each importer reads a document written for another tool and answers the configuration it
//! maps to, as a declarative document (checked with [`tollgate_model::validate`]), and a
//! [`Report`]: what was made, and every element it could not map. Nothing is dropped
//! silently: an element without a Tollgate equivalent is named in
//! [`Report::unsupported`], and the caller decides whether a partial import is acceptable
//! (the CLI refuses it unless asked).

pub mod aws;
pub mod kong;
pub mod openapi;

use std::fmt;

/// What an import made and what it could not map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Entities made, by kind (`upstreams`, `apis`, `versions`, `routes`, `policies`), in
    /// the order they first appeared.
    pub counts: Vec<(&'static str, usize)>,
    /// Elements of the input without a Tollgate equivalent (the import is partial).
    pub unsupported: Vec<Finding>,
    /// Choices the importer made that the user should know about (not a loss).
    pub notes: Vec<Finding>,
    /// Entities read from the input, by kind (`services`, `routes`, …), for importers that
    /// report them (Kong).
    pub read: Vec<(&'static str, usize)>,
}

/// One element of the input, by its place there, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Where in the input (`paths./pets.get.security[0]`, `servers[1]`).
    pub at: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

impl Report {
    fn count(&mut self, kind: &'static str, n: usize) {
        match self.counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, c)) => *c += n,
            None => self.counts.push((kind, n)),
        }
    }

    fn record_read(&mut self, kind: &'static str, n: usize) {
        self.read.push((kind, n));
    }

    /// How many of `kind` were read (see [`Report::read`]).
    pub fn read_of(&self, kind: &str) -> usize {
        self.read
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// One line of what was read: `236 services, 286 routes, …` (empty when not reported).
    pub fn read_summary(&self) -> String {
        self.read
            .iter()
            .map(|(k, n)| format!("{n} {}", if *n == 1 { singular(k) } else { k }))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// How many of `kind` were made.
    pub fn made(&self, kind: &str) -> usize {
        self.counts
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// Records an element that could not be mapped, once per place (a security scheme used
    /// by every operation is named once).
    fn unsupported(&mut self, at: impl Into<String>, message: impl Into<String>) {
        let at = at.into();
        if !self.unsupported.iter().any(|f| f.at == at) {
            self.unsupported.push(Finding {
                at,
                message: message.into(),
            });
        }
    }

    fn note(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.notes.push(Finding {
            at: at.into(),
            message: message.into(),
        });
    }

    /// One line: `1 upstream, 1 API, 1 version, 4 routes, 4 policies`.
    pub fn summary(&self) -> String {
        self.counts
            .iter()
            .map(|(k, n)| format!("{n} {}", if *n == 1 { singular(k) } else { k }))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn singular(kind: &str) -> &str {
    kind.strip_suffix("ies")
        .map(|_| "policy")
        .unwrap_or_else(|| kind.strip_suffix('s').unwrap_or(kind))
}

/// The result of an import.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The declarative document (valid: it passed [`tollgate_model::validate`]).
    pub document: serde_json::Value,
    pub report: Report,
}

impl Imported {
    /// The document as declarative YAML.
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(&self.document).unwrap_or_default()
    }
}

/// Why nothing could be imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportError(pub String);

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ImportError {}

/// Checks a made document against the model, so an importer never hands over a
/// configuration Tollgate would refuse.
fn checked(document: serde_json::Value, report: Report) -> Result<Imported, ImportError> {
    let doc: tollgate_model::Document = serde_json::from_value(document.clone())
        .map_err(|e| ImportError(format!("the imported configuration does not parse: {e}")))?;
    let errors = tollgate_model::validate(&doc);
    if let Some(first) = errors.first() {
        return Err(ImportError(format!(
            "the imported configuration is not valid ({} problems), first: {}: {}",
            errors.len(),
            first.path,
            first.message
        )));
    }
    Ok(Imported { document, report })
}

/// Parses YAML (or JSON) into a JSON value leniently (see [`tollgate_model::lenient`]:
/// numeric map keys, integers beyond 64 bits and YAML tags do not fail the document).
pub fn parse(text: &str) -> Result<serde_json::Value, ImportError> {
    tollgate_model::lenient::parse(text).map_err(|e| ImportError(format!("not YAML or JSON: {e}")))
}

/// A slug from free text: lower case letters and digits, runs of anything else as one `-`.
pub fn slug(text: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 63 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        fallback.to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("USPTO Data Set API", "api"), "uspto-data-set-api");
        assert_eq!(slug("  Swagger Petstore ", "api"), "swagger-petstore");
        assert_eq!(slug("***", "api"), "api");
    }

    #[test]
    fn parsing_is_lenient_with_keys_and_big_integers() {
        let v =
            parse("a:\n  200: ok\n  true: yes\n  min: -9223372036854776000\n  t: !x 3\n").unwrap();
        assert_eq!(v["a"]["200"], "ok");
        assert_eq!(v["a"]["true"], "yes");
        assert_eq!(v["a"]["min"].as_f64(), Some(-9.223372036854776e18));
        assert_eq!(v["a"]["t"], 3);
        assert!(parse("a: [").unwrap_err().0.starts_with("not YAML or JSON"));
    }

    #[test]
    fn summaries() {
        let mut r = Report::default();
        r.count("upstreams", 1);
        r.count("routes", 3);
        r.count("policies", 1);
        assert_eq!(r.summary(), "1 upstream, 3 routes, 1 policy");
    }
}
