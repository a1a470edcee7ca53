//! Rules as data: their definition (YAML or JSON), the built-in ruleset, and how a ruleset
//! file or a configuration's `governance.rules` changes it (severities, rules turned off,
//! rules replaced in part, new rules), in the manner of Spectral's `extends`.

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::functions::{Builtin, Function};
use crate::path::Path;

/// How much a finding matters. `Off` turns a rule off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warn,
    Info,
    Hint,
    Off,
}

impl Severity {
    pub const NAMES: &'static [&'static str] = &["error", "warn", "info", "hint", "off"];

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "error" => Severity::Error,
            "warn" => Severity::Warn,
            "info" => Severity::Info,
            "hint" => Severity::Hint,
            "off" => Severity::Off,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warn => "warn",
            Severity::Info => "info",
            Severity::Hint => "hint",
            Severity::Off => "off",
        }
    }

    /// The SARIF `level` of this severity.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warn => "warning",
            Severity::Info | Severity::Hint => "note",
            Severity::Off => "none",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of document a rule reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Swagger / OpenAPI 2.0.
    Oas2,
    /// OpenAPI 3.0.x.
    Oas3_0,
    /// OpenAPI 3.1.x.
    Oas3_1,
    /// A Tollgate declarative configuration (`format_version`).
    Tollgate,
}

/// The names a rule's `formats` may use.
pub const FORMAT_NAMES: &[&str] = &["oas2", "oas3", "oas3.0", "oas3.1", "tollgate"];

impl Format {
    /// Whether a rule's `formats` entry covers this format (`oas3` covers 3.0 and 3.1).
    fn is(self, name: &str) -> bool {
        matches!(
            (self, name),
            (Format::Oas2, "oas2")
                | (Format::Oas3_0, "oas3" | "oas3.0")
                | (Format::Oas3_1, "oas3" | "oas3.1")
                | (Format::Tollgate, "tollgate")
        )
    }

    pub fn is_openapi(self) -> bool {
        self != Format::Tollgate
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Oas2 => "oas2",
            Format::Oas3_0 => "oas3.0",
            Format::Oas3_1 => "oas3.1",
            Format::Tollgate => "tollgate",
        }
    }

    /// The format of an OpenAPI document (by `openapi` or `swagger`) or a Tollgate
    /// configuration (by `format_version`).
    pub fn detect(root: &Value) -> Option<Format> {
        let obj = root.as_object()?;
        if obj.contains_key("format_version") {
            return Some(Format::Tollgate);
        }
        if let Some(v) = obj.get("openapi").and_then(Value::as_str) {
            if v.starts_with("3.0") {
                return Some(Format::Oas3_0);
            }
            if v.starts_with("3.1") {
                return Some(Format::Oas3_1);
            }
            return None;
        }
        match obj.get("swagger") {
            Some(Value::String(s)) if s == "2.0" => Some(Format::Oas2),
            Some(Value::Number(n)) if n.as_f64() == Some(2.0) => Some(Format::Oas2),
            _ => None,
        }
    }
}

/// One check of a rule: the function applied to `field` of every node `given` selects.
#[derive(Clone, Debug)]
pub struct Then {
    pub field: Option<Field>,
    pub function: Function,
}

/// Which part of a matched node a function looks at.
#[derive(Clone, Debug)]
pub enum Field {
    /// `@key`: the node's own member name (`/pets/` for `$.paths[*]`).
    Key,
    /// A member, or a path of members (`contact.email`).
    Path(Path),
}

impl Field {
    pub fn name(&self) -> String {
        match self {
            Field::Key => "@key".to_string(),
            Field::Path(p) => p.to_string(),
        }
    }
}

/// A rule ready to run.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    pub description: String,
    /// A message template (`{{error}}`, `{{property}}`, `{{value}}`, `{{path}}`,
    /// `{{description}}`); without it, the function says what is wrong.
    pub message: Option<String>,
    pub severity: Severity,
    /// Formats the rule applies to (every format when empty).
    pub formats: Vec<String>,
    pub given: Vec<Path>,
    pub then: Vec<Then>,
    /// The definition as written, which overrides are merged into.
    definition: Map<String, Value>,
}

impl Rule {
    pub fn applies_to(&self, format: Format) -> bool {
        self.formats.is_empty() || self.formats.iter().any(|f| format.is(f))
    }

    /// Whether the rule reads Tollgate configurations only (an organisation rule).
    pub fn is_organisation(&self) -> bool {
        !self.formats.is_empty() && self.formats.iter().all(|f| f == "tollgate")
    }
}

/// Why a ruleset could not be used: which rule, which field, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesetError {
    /// The rule id (empty for the ruleset itself).
    pub rule: String,
    /// The field of the rule (`then[0].function`), empty for the whole rule.
    pub field: String,
    pub message: String,
}

impl fmt::Display for RulesetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.rule.is_empty(), self.field.is_empty()) {
            (true, true) => f.write_str(&self.message),
            (true, false) => write!(f, "`{}`: {}", self.field, self.message),
            (false, true) => write!(f, "rule `{}`: {}", self.rule, self.message),
            (false, false) => write!(
                f,
                "rule `{}`: `{}`: {}",
                self.rule, self.field, self.message
            ),
        }
    }
}

fn err(rule: &str, field: impl Into<String>, message: impl Into<String>) -> RulesetError {
    RulesetError {
        rule: rule.to_string(),
        field: field.into(),
        message: message.into(),
    }
}

/// An ordered set of rules.
#[derive(Clone, Debug, Default)]
pub struct Ruleset {
    rules: Vec<Rule>,
}

/// The built-in rules, as shipped.
pub const BUILTIN_YAML: &str = include_str!("builtin.yaml");

const RULE_FIELDS: &[&str] = &[
    "description",
    "message",
    "severity",
    "formats",
    "given",
    "then",
];

impl Ruleset {
    /// The built-in ruleset (OpenAPI and organisation rules at their default severities).
    pub fn builtin() -> Ruleset {
        static BUILTIN: OnceLock<Ruleset> = OnceLock::new();
        BUILTIN
            .get_or_init(|| match Ruleset::from_text(BUILTIN_YAML, None) {
                Ok(r) => r,
                // The file ships with the crate and a unit test parses it.
                Err(e) => panic!("the built-in ruleset is broken: {}", e[0]),
            })
            .clone()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The rules at `error`, alone (what blocks publishing).
    pub fn errors_only(&self) -> Ruleset {
        Ruleset {
            rules: self
                .rules
                .iter()
                .filter(|r| r.severity == Severity::Error)
                .cloned()
                .collect(),
        }
    }

    /// A ruleset file over the built-in rules: `extends` (`tollgate`, the default, or
    /// `none`) and `rules`, each a severity or a definition.
    pub fn from_file(text: &str) -> Result<Ruleset, Vec<RulesetError>> {
        Ruleset::builtin().extended_by(text)
    }

    /// A ruleset file applied over this ruleset (which `extends: none` discards).
    pub fn extended_by(self, text: &str) -> Result<Ruleset, Vec<RulesetError>> {
        Ruleset::from_text(text, Some(self))
    }

    fn from_text(text: &str, base: Option<Ruleset>) -> Result<Ruleset, Vec<RulesetError>> {
        let value: Value = yaml_serde::from_str(text)
            .map_err(|e| vec![err("", "", format!("not YAML or JSON: {e}"))])?;
        let Value::Object(top) = value else {
            return Err(vec![err(
                "",
                "",
                "a ruleset is a map with `rules` (and optionally `extends`)",
            )]);
        };
        let mut base = base.unwrap_or_default();
        let mut errors = Vec::new();
        for key in top.keys() {
            if key != "rules" && key != "extends" {
                errors.push(err(
                    "",
                    key.as_str(),
                    "unknown field; a ruleset has `extends` and `rules`",
                ));
            }
        }
        if let Some(ext) = top.get("extends") {
            let names: Vec<&str> = match ext {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec!["?"],
            };
            for name in names {
                match name {
                    "tollgate" => {}
                    "none" => base = Ruleset::default(),
                    other => errors.push(err(
                        "",
                        "extends",
                        format!(
                            "unknown ruleset `{other}`: use `tollgate` (the built-in rules) or `none`"
                        ),
                    )),
                }
            }
        }
        match top.get("rules") {
            Some(Value::Object(rules)) => {
                if let Err(e) = base.apply(rules) {
                    errors.extend(e);
                }
            }
            None => {}
            Some(_) => errors.push(err("", "rules", "expected a map of rule id to rule")),
        }
        if errors.is_empty() {
            Ok(base)
        } else {
            Err(errors)
        }
    }

    /// Applies overrides: `id: SEVERITY` changes a rule's severity (`off` turns it off);
    /// `id: { … }` replaces the named fields of an existing rule, or adds a new rule (which
    /// needs `given` and `then`). Every problem is reported, naming the rule and field.
    pub fn apply(&mut self, overrides: &Map<String, Value>) -> Result<(), Vec<RulesetError>> {
        let mut errors = Vec::new();
        for (id, value) in overrides {
            if let Err(e) = self.apply_one(id, value) {
                errors.extend(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn apply_one(&mut self, id: &str, value: &Value) -> Result<(), Vec<RulesetError>> {
        if !valid_id(id) {
            return Err(vec![err(
                id,
                "",
                "a rule id is 1 to 100 letters, digits, `-`, `_` and `.`",
            )]);
        }
        let existing = self.rules.iter().position(|r| r.id == id);
        match value {
            Value::String(s) => {
                let severity = Severity::parse(s).ok_or_else(|| vec![bad_severity(id, "", s)])?;
                let i = existing.ok_or_else(|| {
                    vec![err(
                        id,
                        "",
                        format!(
                            "no such rule to set to `{s}`; a new rule needs a definition with `given` and `then`"
                        ),
                    )]
                })?;
                let rule = &mut self.rules[i];
                rule.severity = severity;
                rule.definition
                    .insert("severity".into(), Value::String(s.clone()));
                Ok(())
            }
            Value::Object(fields) => {
                let mut definition = match existing {
                    Some(i) => self.rules[i].definition.clone(),
                    None => Map::new(),
                };
                for (k, v) in fields {
                    definition.insert(k.clone(), v.clone());
                }
                let rule = parse_rule(id, definition)?;
                match existing {
                    Some(i) => self.rules[i] = rule,
                    None => self.rules.push(rule),
                }
                Ok(())
            }
            _ => Err(vec![err(
                id,
                "",
                format!(
                    "expected a severity ({}) or a rule definition",
                    Severity::NAMES.join(", ")
                ),
            )]),
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn bad_severity(id: &str, field: &str, s: &str) -> RulesetError {
    err(
        id,
        field,
        format!("unknown severity `{s}`: use {}", Severity::NAMES.join(", ")),
    )
}

/// One or a list of the same thing (`given: $.x` or `given: [$.x, $.y]`).
fn one_or_many(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

fn parse_rule(id: &str, definition: Map<String, Value>) -> Result<Rule, Vec<RulesetError>> {
    let mut errors = Vec::new();
    for key in definition.keys() {
        if !RULE_FIELDS.contains(&key.as_str()) {
            errors.push(err(
                id,
                key.as_str(),
                format!("unknown field; a rule has {}", RULE_FIELDS.join(", ")),
            ));
        }
    }
    let text = |field: &str, errors: &mut Vec<RulesetError>| match definition.get(field) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(err(id, field, "expected text"));
            None
        }
    };
    let description = text("description", &mut errors).unwrap_or_default();
    let message = text("message", &mut errors);
    let severity = match text("severity", &mut errors) {
        None => Severity::Warn,
        Some(s) => Severity::parse(&s).unwrap_or_else(|| {
            errors.push(bad_severity(id, "severity", &s));
            Severity::Warn
        }),
    };
    let mut formats = Vec::new();
    if let Some(f) = definition.get("formats") {
        for (i, item) in one_or_many(f).into_iter().enumerate() {
            match item.as_str() {
                Some(name) if FORMAT_NAMES.contains(&name) => formats.push(name.to_string()),
                _ => errors.push(err(
                    id,
                    format!("formats[{i}]"),
                    format!("unknown format {item}: use {}", FORMAT_NAMES.join(", ")),
                )),
            }
        }
    }
    let mut given = Vec::new();
    match definition.get("given") {
        None => errors.push(err(
            id,
            "given",
            "missing: where the rule looks, e.g. `$.info`",
        )),
        Some(g) => {
            for (i, item) in one_or_many(g).into_iter().enumerate() {
                let field = if g.is_array() {
                    format!("given[{i}]")
                } else {
                    "given".to_string()
                };
                match item.as_str().map(Path::parse) {
                    Some(Ok(p)) => given.push(p),
                    Some(Err(e)) => errors.push(err(id, field, e)),
                    None => errors.push(err(id, field, "expected a path such as `$.info`")),
                }
            }
        }
    }
    let mut then = Vec::new();
    match definition.get("then") {
        None => errors.push(err(
            id,
            "then",
            "missing: what is checked, e.g. `{ field: description, function: truthy }`",
        )),
        Some(t) => {
            for (i, item) in one_or_many(t).into_iter().enumerate() {
                let field = if t.is_array() {
                    format!("then[{i}]")
                } else {
                    "then".to_string()
                };
                match parse_then(id, &field, item) {
                    Ok(t) => then.push(t),
                    Err(e) => errors.extend(e),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(Rule {
            id: id.to_string(),
            description,
            message,
            severity,
            formats,
            given,
            then,
            definition,
        })
    } else {
        Err(errors)
    }
}

fn parse_then(id: &str, at: &str, v: &Value) -> Result<Then, Vec<RulesetError>> {
    let Value::Object(m) = v else {
        return Err(vec![err(
            id,
            at,
            "expected `{ field, function, functionOptions }`",
        )]);
    };
    let mut errors = Vec::new();
    for key in m.keys() {
        if !["field", "function", "functionOptions"].contains(&key.as_str()) {
            errors.push(err(
                id,
                format!("{at}.{key}"),
                "unknown field; `then` has field, function and functionOptions",
            ));
        }
    }
    let field = match m.get("field") {
        None => None,
        Some(Value::String(s)) if s == "@key" => Some(Field::Key),
        Some(Value::String(s)) => match Path::parse_relative(s) {
            Ok(p) => Some(Field::Path(p)),
            Err(e) => {
                errors.push(err(id, format!("{at}.field"), e));
                None
            }
        },
        Some(_) => {
            errors.push(err(id, format!("{at}.field"), "expected a member name"));
            None
        }
    };
    let options = match m.get("functionOptions") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => {
            errors.push(err(id, format!("{at}.functionOptions"), "expected a map"));
            Map::new()
        }
    };
    let function = match m.get("function").map(|f| f.as_str()) {
        None => {
            errors.push(err(id, format!("{at}.function"), "missing"));
            None
        }
        Some(None) => {
            errors.push(err(
                id,
                format!("{at}.function"),
                "expected a function name",
            ));
            None
        }
        Some(Some(name)) => match parse_function(name, &options) {
            Ok(f) => Some(f),
            Err((field, message)) => {
                errors.push(err(id, format!("{at}.{field}"), message));
                None
            }
        },
    };
    match function {
        Some(function) if errors.is_empty() => Ok(Then { field, function }),
        _ => Err(errors),
    }
}

/// The functions by name, for messages.
pub const FUNCTION_NAMES: &[&str] = &[
    "truthy",
    "falsy",
    "defined",
    "undefined",
    "pattern",
    "enumeration",
    "length",
    "unique",
    "hasKey",
];

fn parse_function(name: &str, o: &Map<String, Value>) -> Result<Function, (String, String)> {
    let opts = |allowed: &[&str]| -> Result<(), (String, String)> {
        for k in o.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err((
                    format!("functionOptions.{k}"),
                    if allowed.is_empty() {
                        format!("`{name}` takes no options")
                    } else {
                        format!(
                            "unknown option of `{name}`; it takes {}",
                            allowed.join(", ")
                        )
                    },
                ));
            }
        }
        Ok(())
    };
    let regex = |key: &str| -> Result<Option<Regex>, (String, String)> {
        match o.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Regex::new(s).map(Some).map_err(|e| {
                (
                    format!("functionOptions.{key}"),
                    format!("not a regular expression: {e}"),
                )
            }),
            Some(_) => Err((
                format!("functionOptions.{key}"),
                "expected a regular expression".into(),
            )),
        }
    };
    let bound = |key: &str| -> Result<Option<u64>, (String, String)> {
        match o.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                (
                    format!("functionOptions.{key}"),
                    "expected a whole number".into(),
                )
            }),
        }
    };
    let missing = |what: &str| {
        (
            "functionOptions".to_string(),
            format!("`{name}` needs {what}"),
        )
    };
    Ok(match name {
        "truthy" | "falsy" | "defined" | "undefined" | "unique" => {
            opts(&[])?;
            match name {
                "truthy" => Function::Truthy,
                "falsy" => Function::Falsy,
                "defined" => Function::Defined,
                "undefined" => Function::Undefined,
                _ => Function::Unique,
            }
        }
        "pattern" => {
            opts(&["match", "notMatch"])?;
            let (m, n) = (regex("match")?, regex("notMatch")?);
            if m.is_none() && n.is_none() {
                return Err(missing("`match` or `notMatch`"));
            }
            Function::Pattern {
                matches: m,
                not_match: n,
            }
        }
        "enumeration" => {
            opts(&["values"])?;
            match o.get("values") {
                Some(Value::Array(v)) if !v.is_empty() => Function::Enumeration(v.clone()),
                _ => return Err(missing("`values`, a non-empty list")),
            }
        }
        "length" => {
            opts(&["min", "max"])?;
            let (min, max) = (bound("min")?, bound("max")?);
            if min.is_none() && max.is_none() {
                return Err(missing("`min` or `max`"));
            }
            Function::Length { min, max }
        }
        "hasKey" => {
            opts(&["match"])?;
            match regex("match")? {
                Some(r) => Function::HasKey(r),
                None => return Err(missing("`match`, the pattern a key must match")),
            }
        }
        other => match Builtin::parse(other) {
            Some(b) => {
                opts(&[])?;
                Function::Builtin(b)
            }
            None => {
                return Err((
                    "function".into(),
                    format!(
                        "unknown function `{other}`; known: {}, {}",
                        FUNCTION_NAMES.join(", "),
                        Builtin::NAMES.join(", ")
                    ),
                ));
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_ruleset_parses() {
        let r = Ruleset::from_text(BUILTIN_YAML, None).unwrap();
        assert!(r.rules().len() >= 20);
        for rule in r.rules() {
            assert!(
                !rule.description.is_empty(),
                "{} has a description",
                rule.id
            );
            assert!(!rule.formats.is_empty(), "{} names its formats", rule.id);
        }
    }

    #[test]
    fn overrides_change_severity_turn_off_and_add() {
        let r = Ruleset::from_file(
            "rules:\n  info-contact: error\n  operation-tags: off\n  operation-description: { severity: info, message: 'say what it does' }\n  x-team:\n    description: APIs name their team.\n    given: $.info\n    then: { field: x-team, function: truthy }\n",
        )
        .unwrap();
        assert_eq!(r.get("info-contact").unwrap().severity, Severity::Error);
        assert_eq!(r.get("operation-tags").unwrap().severity, Severity::Off);
        let d = r.get("operation-description").unwrap();
        assert_eq!(d.severity, Severity::Info);
        assert_eq!(d.message.as_deref(), Some("say what it does"));
        // The rest of the definition is the built-in one.
        assert_eq!(d.given.len(), 1);
        let x = r.get("x-team").unwrap();
        assert_eq!(x.severity, Severity::Warn, "a new rule defaults to warn");
        assert!(x.formats.is_empty());
        // Extending none starts from nothing.
        let r = Ruleset::from_file("extends: none\nrules: {}\n").unwrap();
        assert!(r.rules().is_empty());
    }

    #[test]
    fn bad_rulesets_name_the_rule_and_the_field() {
        let text = "rules:\n  info-contact: loud\n  nope: error\n  mine:\n    given: info\n    then: { field: x, function: trthy }\n  other:\n    description: d\n    given: $.a\n    then: { function: pattern, functionOptions: { match: '(' } }\n  third: { given: $.a, then: { function: length }, severity: warn, formats: [oas4] }\nfoo: 1\n";
        let errs = Ruleset::from_file(text).unwrap_err();
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let has = |s: &str| shown.iter().any(|l| l.contains(s));
        assert!(has("`foo`: unknown field"), "{shown:#?}");
        assert!(
            has("rule `info-contact`: unknown severity `loud`"),
            "{shown:#?}"
        );
        assert!(has("rule `nope`: no such rule"), "{shown:#?}");
        assert!(
            has("rule `mine`: `given`: `info` must start with `$`"),
            "{shown:#?}"
        );
        assert!(
            has("rule `mine`: `then.function`: unknown function `trthy`"),
            "{shown:#?}"
        );
        assert!(
            has("rule `other`: `then.functionOptions.match`: not a regular expression"),
            "{shown:#?}"
        );
        assert!(
            has("rule `third`: `then.functionOptions`: `length` needs"),
            "{shown:#?}"
        );
        assert!(
            has("rule `third`: `formats[0]`: unknown format"),
            "{shown:#?}"
        );
        let errs = Ruleset::from_file("rules:\n  x: { description: d }\n").unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].field, "given");
        assert_eq!(errs[1].field, "then");
        assert!(Ruleset::from_file("[1]").is_err());
        assert!(
            Ruleset::from_file("extends: spectral:oas\n").unwrap_err()[0]
                .message
                .contains("unknown ruleset")
        );
    }

    #[test]
    fn formats_are_detected() {
        use serde_json::json;
        assert_eq!(
            Format::detect(&json!({"openapi": "3.0.3"})),
            Some(Format::Oas3_0)
        );
        assert_eq!(
            Format::detect(&json!({"openapi": "3.1.0"})),
            Some(Format::Oas3_1)
        );
        assert_eq!(
            Format::detect(&json!({"swagger": "2.0"})),
            Some(Format::Oas2)
        );
        assert_eq!(
            Format::detect(&json!({"format_version": 1})),
            Some(Format::Tollgate)
        );
        assert_eq!(Format::detect(&json!({"openapi": "4.0"})), None);
        assert_eq!(Format::detect(&json!([1])), None);
    }
}
