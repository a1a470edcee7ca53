//! Running a ruleset over a document: every rule that applies to its format, each `given`
//! path, each `then` check, into findings.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::functions::{self, Function, show};
use crate::oas::is_ref;
use crate::path::{Location, Seg};
use crate::ruleset::{Field, Format, Rule, Ruleset, Severity, Then};

/// The API version whose OpenAPI document (`spec`) a finding is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecOf {
    pub api: String,
    pub version: String,
    /// Where the version is in the configuration (`apis[0].versions[1]`).
    pub at: Location,
}

impl SpecOf {
    /// `orders@v1`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.api, self.version)
    }
}

/// One problem a rule found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    /// Where in the linted document, or in the version's spec when `spec` is set.
    pub location: Location,
    pub spec: Option<SpecOf>,
}

/// Runs every rule of `ruleset` that applies to `format` over `root`.
pub fn lint(ruleset: &Ruleset, root: &Value, format: Format) -> Vec<Finding> {
    let mut out = Vec::new();
    for rule in ruleset.rules() {
        if rule.severity != Severity::Off && rule.applies_to(format) {
            run_rule(rule, root, &mut out);
        }
    }
    out
}

/// What a check looks at in one matched node: where, the value (if present) and what the
/// message calls it.
fn target<'a>(
    then: &Then,
    at: &Location,
    node: &'a Value,
    key: &'a Value,
) -> (Location, Option<&'a Value>, String) {
    match &then.field {
        None => {
            let name = match at.0.last() {
                Some(Seg::Key(k)) => k.clone(),
                Some(Seg::Index(i)) => format!("[{i}]"),
                None => "$".to_string(),
            };
            (at.clone(), Some(node), name)
        }
        Some(Field::Key) => (at.clone(), Some(key), "@key".to_string()),
        Some(Field::Path(p)) => match p.get(node, at) {
            Some((loc, v)) => (loc, Some(v), p.to_string()),
            None => (at.clone(), None, p.to_string()),
        },
    }
}

fn run_rule(rule: &Rule, root: &Value, out: &mut Vec<Finding>) {
    let mut matches = Vec::new();
    let mut seen = HashSet::new();
    for given in &rule.given {
        for (loc, node) in given.select(root, &Location::root()) {
            if seen.insert(loc.clone()) {
                matches.push((loc, node));
            }
        }
    }
    let mut push = |location: Location, error: String, name: &str, value: Option<&Value>| {
        out.push(Finding {
            rule: rule.id.clone(),
            severity: rule.severity,
            message: message(rule, &error, name, value, &location),
            location,
            spec: None,
        });
    };
    for then in &rule.then {
        let mut first_use: HashMap<String, Location> = HashMap::new();
        for (at, node) in &matches {
            // A `$ref` is checked where its target is declared.
            if is_ref(node) {
                continue;
            }
            if let Function::Builtin(b) = &then.function {
                for (loc, error) in b.run(root, at, node) {
                    push(loc, error, "", None);
                }
                continue;
            }
            let key = match at.0.last() {
                Some(Seg::Key(k)) => Value::String(k.clone()),
                Some(Seg::Index(i)) => Value::from(*i),
                None => Value::Null,
            };
            let (loc, value, name) = target(then, at, node, &key);
            if let Function::Unique = then.function {
                let Some(v) = value else { continue };
                let fingerprint = v.to_string();
                match first_use.get(&fingerprint) {
                    Some(first) => push(
                        loc.clone(),
                        format!("`{}` is also used at {first}", show(v)),
                        &name,
                        value,
                    ),
                    None => {
                        first_use.insert(fingerprint, loc);
                    }
                }
                continue;
            }
            if let Some(error) = functions::check(&then.function, &name, value) {
                push(loc, error, &name, value);
            }
        }
    }
}

/// The rule's message template filled in, or the function's own message.
fn message(
    rule: &Rule,
    error: &str,
    property: &str,
    value: Option<&Value>,
    at: &Location,
) -> String {
    match &rule.message {
        None => error.to_string(),
        Some(t) => t
            .replace("{{error}}", error)
            .replace("{{property}}", property)
            .replace("{{value}}", &value.map(show).unwrap_or_default())
            .replace("{{path}}", &at.to_string())
            .replace("{{description}}", &rule.description),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(rules: &str, doc: &Value, format: Format) -> Vec<String> {
        let mut set = Ruleset::default();
        let v: Value = yaml_serde::from_str(rules).unwrap();
        set.apply(v.as_object().unwrap()).unwrap();
        lint(&set, doc, format)
            .into_iter()
            .map(|f| format!("{} {} {}: {}", f.severity, f.rule, f.location, f.message))
            .collect()
    }

    #[test]
    fn unique_reports_every_repeat_at_its_place() {
        let doc = json!({ "paths": {
            "/a": { "get": { "operationId": "x" }, "post": { "operationId": "y" } },
            "/b": { "get": { "operationId": "x" }, "put": {} }
        } });
        let found = run(
            "ids:\n  severity: error\n  given: $.paths[*][get,put,post]\n  then: { field: operationId, function: unique }\n",
            &doc,
            Format::Oas3_0,
        );
        assert_eq!(
            found,
            ["error ids paths./b.get.operationId: `x` is also used at paths./a.get.operationId"]
        );
    }

    #[test]
    fn messages_templates_keys_refs_and_formats() {
        let doc = json!({ "paths": {
            "/a/": { "get": { "parameters": [{ "$ref": "#/x" }, { "name": "q" }] } }
        } });
        let rules = "slash:\n  message: '{{value}} ends with a slash ({{description}})'\n  description: no trailing slash\n  given: $.paths[*]\n  then: { field: '@key', function: pattern, functionOptions: { notMatch: '.+/$' } }\n  formats: [oas3]\nparams:\n  given: $..parameters[*]\n  then: { field: description, function: truthy }\n";
        assert_eq!(
            run(rules, &doc, Format::Oas3_1),
            [
                "warn slash paths./a/: /a/ ends with a slash (no trailing slash)",
                "warn params paths./a/.get.parameters[1]: `description` is missing",
            ],
            "the reference is skipped"
        );
        assert_eq!(
            run(rules, &doc, Format::Oas2),
            ["warn params paths./a/.get.parameters[1]: `description` is missing"],
            "a rule for oas3 skips a 2.0 document"
        );
    }
}
