//! Findings placed in files, and written out: text for people, JSON for scripts, SARIF
//! 2.1.0 for code-scanning tools in CI.

use serde_json::{Value, json};

use crate::engine::Finding;
use crate::ruleset::{Ruleset, Severity};

/// The SARIF schema findings are written against.
pub const SARIF_SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// A finding with the file, line and column (1-based) it points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub finding: Finding,
}

/// Findings by severity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    pub hints: usize,
}

impl Counts {
    pub fn of(entries: &[Entry]) -> Counts {
        let mut c = Counts::default();
        for e in entries {
            match e.finding.severity {
                Severity::Error => c.errors += 1,
                Severity::Warn => c.warnings += 1,
                Severity::Info => c.infos += 1,
                Severity::Hint => c.hints += 1,
                Severity::Off => {}
            }
        }
        c
    }

    /// `1 error, 3 warnings, 0 infos, 2 hints`.
    pub fn summary(&self) -> String {
        let n = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
        format!(
            "{}, {}, {}, {}",
            n(self.errors, "error"),
            n(self.warnings, "warning"),
            n(self.infos, "info"),
            n(self.hints, "hint")
        )
    }
}

/// Orders entries by file, line and column, then rule.
pub fn sort(entries: &mut [Entry]) {
    entries.sort_by(|a, b| {
        (
            &a.file,
            a.line.unwrap_or(usize::MAX),
            a.column.unwrap_or(0),
            &a.finding.rule,
        )
            .cmp(&(
                &b.file,
                b.line.unwrap_or(usize::MAX),
                b.column.unwrap_or(0),
                &b.finding.rule,
            ))
    });
}

/// Where in the document a finding is: `paths./pets.get`, prefixed with the version
/// (`orders@v1 paths./pets.get`) when it is in a version's spec.
pub fn place(f: &Finding) -> String {
    match &f.spec {
        Some(of) => format!("{} {}", of.id(), f.location),
        None => f.location.to_string(),
    }
}

/// One line per finding: `FILE:LINE:COLUMN SEVERITY RULE MESSAGE  (PLACE)`.
pub fn text(entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str(&e.file);
        if let Some(line) = e.line {
            out.push_str(&format!(":{line}:{}", e.column.unwrap_or(1)));
        }
        out.push_str(&format!(
            " {} {} {}  ({})\n",
            e.finding.severity,
            e.finding.rule,
            e.finding.message,
            place(&e.finding)
        ));
    }
    out
}

/// `{ findings: [...], summary: {...} }`.
pub fn json(entries: &[Entry]) -> Value {
    let c = Counts::of(entries);
    let findings: Vec<Value> = entries
        .iter()
        .map(|e| {
            let f = &e.finding;
            let mut v = json!({
                "rule": f.rule,
                "severity": f.severity.as_str(),
                "message": f.message,
                "file": e.file,
                "line": e.line,
                "column": e.column,
                "path": f.location.to_string(),
                "segments": f.location.to_json(),
            });
            if let Some(of) = &f.spec {
                v["api"] = json!(of.api);
                v["version"] = json!(of.version);
                v["config_path"] = json!(format!("{}.spec", of.at.dotted()));
            }
            v
        })
        .collect();
    json!({
        "findings": findings,
        "summary": {
            "errors": c.errors,
            "warnings": c.warnings,
            "infos": c.infos,
            "hints": c.hints,
        }
    })
}

/// A path as a relative URI reference (SARIF `artifactLocation.uri`).
fn uri(file: &str) -> String {
    let mut out = String::new();
    for c in file.replace('\\', "/").chars() {
        match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '.' | '_' | '~' | '/' | ':' | '@' => {
                out.push(c)
            }
            other => {
                let mut buf = [0u8; 4];
                for b in other.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

/// A SARIF 2.1.0 log with one run: the rules of `ruleset` that are on (with their
/// configured level as the default configuration) and one result per entry.
pub fn sarif(ruleset: &Ruleset, entries: &[Entry]) -> Value {
    let rules: Vec<&crate::ruleset::Rule> = ruleset
        .rules()
        .iter()
        .filter(|r| r.severity != Severity::Off)
        .collect();
    let descriptors: Vec<Value> = rules
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": { "text": r.description },
                "defaultConfiguration": { "level": r.severity.sarif_level() },
                "properties": { "severity": r.severity.as_str(), "formats": r.formats },
            })
        })
        .collect();
    let results: Vec<Value> = entries
        .iter()
        .map(|e| {
            let f = &e.finding;
            let mut physical = json!({ "artifactLocation": { "uri": uri(&e.file) } });
            if let Some(line) = e.line {
                physical["region"] = json!({
                    "startLine": line,
                    "startColumn": e.column.unwrap_or(1),
                });
            }
            let mut result = json!({
                "ruleId": f.rule,
                "level": f.severity.sarif_level(),
                "message": { "text": f.message },
                "locations": [{
                    "physicalLocation": physical,
                    "logicalLocations": [{ "fullyQualifiedName": place(f) }],
                }],
            });
            if let Some(i) = rules.iter().position(|r| r.id == f.rule) {
                result["ruleIndex"] = json!(i);
            }
            result
        })
        .collect();
    json!({
        "version": "2.1.0",
        "$schema": SARIF_SCHEMA,
        "runs": [{
            "tool": {
                "driver": {
                    "name": "tollgate-lint",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": descriptors,
                }
            },
            "results": results,
        }]
    })
}

/// Where the text of a version's `spec` starts in the configuration file, when it is a
/// YAML literal block (`spec: |`) whose key is on `key_line` (1-based): the line and column
/// offsets to add to a position inside the spec. `None` for any other form (quoted, folded,
/// JSON), whose positions cannot be mapped line for line.
pub fn embedded_offset(config: &str, key_line: usize, spec: &str) -> Option<(usize, usize)> {
    let mut lines = config.lines().skip(key_line.checked_sub(1)?);
    let key = lines.next()?;
    let after = key.split_once(':')?.1.trim();
    if !after.starts_with('|') {
        return None;
    }
    let first_spec = spec.lines().find(|l| !l.trim().is_empty())?;
    let skipped_blank = spec.lines().take_while(|l| l.trim().is_empty()).count();
    let first_config = lines.clone().nth(skipped_blank)?;
    let indent = first_config.len() - first_config.trim_start().len();
    // The block's indentation is stripped from every line: the first one proves the match.
    (first_config.get(indent..)? == first_spec).then_some((key_line, indent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::Location;

    fn entry(sev: Severity, line: Option<usize>) -> Entry {
        Entry {
            file: "api file.yaml".into(),
            line,
            column: line.map(|_| 3),
            finding: Finding {
                rule: "info-contact".into(),
                severity: sev,
                message: "no contact".into(),
                location: Location::root().key("info"),
                spec: None,
            },
        }
    }

    #[test]
    fn text_and_counts() {
        let entries = [entry(Severity::Warn, Some(2)), entry(Severity::Error, None)];
        assert_eq!(
            text(&entries),
            "api file.yaml:2:3 warn info-contact no contact  (info)\napi file.yaml error info-contact no contact  (info)\n"
        );
        assert_eq!(
            Counts::of(&entries).summary(),
            "1 error, 1 warning, 0 infos, 0 hints"
        );
    }

    #[test]
    fn sarif_has_the_required_shape() {
        let set = Ruleset::builtin();
        let log = sarif(
            &set,
            &[entry(Severity::Warn, Some(2)), entry(Severity::Error, None)],
        );
        assert_eq!(log["version"], "2.1.0");
        assert_eq!(log["$schema"], SARIF_SCHEMA);
        let driver = &log["runs"][0]["tool"]["driver"];
        assert_eq!(driver["name"], "tollgate-lint");
        let rules = driver["rules"].as_array().unwrap();
        assert_eq!(rules.len(), set.rules().len());
        for r in rules {
            assert!(r["id"].is_string());
            assert!(
                r["shortDescription"]["text"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
            );
            assert!(
                ["error", "warning", "note"]
                    .contains(&r["defaultConfiguration"]["level"].as_str().unwrap())
            );
        }
        let results = log["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results[0]["ruleId"], "info-contact");
        assert_eq!(results[0]["level"], "warning");
        assert_eq!(results[1]["level"], "error");
        assert_eq!(results[0]["message"]["text"], "no contact");
        let loc = &results[0]["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "api%20file.yaml");
        assert_eq!(loc["region"]["startLine"], 2);
        assert_eq!(loc["region"]["startColumn"], 3);
        assert!(
            results[1]["locations"][0]["physicalLocation"]
                .get("region")
                .is_none()
        );
        let i = results[0]["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[i]["id"], "info-contact");
    }

    #[test]
    fn literal_blocks_map_line_for_line() {
        let config = "format_version: 1\napis:\n  - name: a\n    versions:\n      - version: v1\n        spec: |\n          openapi: 3.0.3\n          info: {}\n";
        let spec = "openapi: 3.0.3\ninfo: {}\n";
        assert_eq!(embedded_offset(config, 6, spec), Some((6, 10)));
        // Spec line 2, column 1 is config line 8, column 11.
        let folded = config.replace("spec: |", "spec: >");
        assert_eq!(embedded_offset(&folded, 6, spec), None);
        assert_eq!(embedded_offset(config, 6, "other: 1\n"), None);
        assert_eq!(embedded_offset(config, 0, spec), None);
    }
}
