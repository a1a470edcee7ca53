//! Linting a Tollgate configuration (organisation rules on it, OpenAPI rules on each
//! version's `spec`), and the check a node runs when a change publishes a version.

use serde_json::{Map, Value};
use tollgate_model::document::{Document, Governance, VersionStatus};
use tollgate_model::validate::FieldError;

use crate::engine::{Finding, SpecOf, lint};
use crate::path::Location;
use crate::ruleset::{Format, Ruleset, RulesetError, Severity};

/// The rule that judges whether a version's spec is an OpenAPI document at all.
pub const DOCUMENT_RULE: &str = "oas-document";

/// Most findings one refused version lists.
const MAX_PUBLISH_ERRORS: usize = 20;

/// The built-in ruleset with a configuration's `governance.rules` applied.
pub fn ruleset_for(governance: &Governance) -> Result<Ruleset, Vec<RulesetError>> {
    let mut set = Ruleset::builtin();
    if !governance.rules.is_empty() {
        let rules: Map<String, Value> = governance
            .rules
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        set.apply(&rules)?;
    }
    Ok(set)
}

/// Where a ruleset problem of `governance.rules` is in the configuration.
pub fn governance_path(e: &RulesetError) -> String {
    let mut path = String::from("governance.rules");
    if !e.rule.is_empty() {
        path.push('.');
        path.push_str(&e.rule);
    }
    if !e.field.is_empty() {
        path.push('.');
        path.push_str(&e.field);
    }
    path
}

/// Lints one OpenAPI document given as text (a version's `spec`). Text that is not an
/// OpenAPI document is reported under [`DOCUMENT_RULE`].
pub fn lint_spec(ruleset: &Ruleset, text: &str, of: Option<&SpecOf>) -> Vec<Finding> {
    let problem = match tollgate_model::lenient::parse(text) {
        Ok(root) => match Format::detect(&root) {
            Some(format) if format.is_openapi() => {
                let mut found = lint(ruleset, &root, format);
                for f in &mut found {
                    f.spec = of.cloned();
                }
                return found;
            }
            _ => "not an OpenAPI document: it has no `openapi: 3.0.x`, `openapi: 3.1.x` or `swagger: \"2.0\"`".to_string(),
        },
        Err(e) => format!("not YAML or JSON: {e}"),
    };
    match ruleset.get(DOCUMENT_RULE) {
        Some(rule) if rule.severity != Severity::Off => vec![Finding {
            rule: rule.id.clone(),
            severity: rule.severity,
            message: problem,
            location: Location::root(),
            spec: of.cloned(),
        }],
        _ => Vec::new(),
    }
}

/// Lints a configuration (as JSON): the organisation rules on it, and every rule for
/// OpenAPI on each version's `spec` that is text (findings carry the version).
pub fn lint_config(ruleset: &Ruleset, root: &Value) -> Vec<Finding> {
    let mut out = lint(ruleset, root, Format::Tollgate);
    let apis = root.get("apis").and_then(Value::as_array);
    for (i, api) in apis.into_iter().flatten().enumerate() {
        let versions = api.get("versions").and_then(Value::as_array);
        for (j, v) in versions.into_iter().flatten().enumerate() {
            let Some(spec) = v.get("spec").and_then(Value::as_str) else {
                continue;
            };
            let of = SpecOf {
                api: text(api, "name"),
                version: text(v, "version"),
                at: Location::root()
                    .key("apis")
                    .index(i)
                    .key("versions")
                    .index(j),
            };
            out.extend(lint_spec(ruleset, spec, Some(&of)));
        }
    }
    out
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "?".to_string(),
    }
}

/// The check a node runs on every configuration change: the `governance` section must
/// give a usable ruleset, and every version the change publishes (a new published version,
/// a version whose status becomes `published`, or a published version whose `spec`
/// changes) must have no finding at `error`: neither from the OpenAPI rules on its spec
/// nor from the organisation rules on its API (and the plans of the products that sell
/// it). Each finding is one error, at the version's `spec` or `status`.
pub fn publish_check(before: &Document, after: &Document) -> Vec<FieldError> {
    let ruleset = match ruleset_for(&after.governance) {
        Ok(r) => r,
        Err(errors) => {
            return errors
                .iter()
                .map(|e| FieldError {
                    path: governance_path(e),
                    message: format!("{}: {}", e.field_or_rule(), e.message),
                })
                .collect();
        }
    };
    let publishing: Vec<(usize, usize)> = after
        .apis
        .iter()
        .enumerate()
        .flat_map(|(i, api)| {
            let old_api = before.apis.iter().find(|a| a.name == api.name);
            api.versions
                .iter()
                .enumerate()
                .filter(move |(_, v)| {
                    v.status == VersionStatus::Published
                        && old_api
                            .and_then(|a| a.versions.iter().find(|o| o.version == v.version))
                            .is_none_or(|old| {
                                old.status != VersionStatus::Published || old.spec != v.spec
                            })
                })
                .map(move |(j, _)| (i, j))
        })
        .collect();
    if publishing.is_empty() {
        return Vec::new();
    }
    let blocking = ruleset.errors_only();
    if blocking.rules().is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let organisation = blocking
        .rules()
        .iter()
        .any(|r| r.applies_to(Format::Tollgate));
    let org_findings = if organisation {
        match serde_json::to_value(after) {
            Ok(root) => lint(&blocking, &root, Format::Tollgate),
            Err(_) => Vec::new(),
        }
    } else {
        Vec::new()
    };
    for (i, j) in publishing {
        let api = &after.apis[i];
        let version = &api.versions[j];
        let id = format!("{}@{}", api.name, version.version);
        let at = Location::root()
            .key("apis")
            .index(i)
            .key("versions")
            .index(j);
        let api_at = Location::root().key("apis").index(i);
        let products: Vec<Location> = after
            .products
            .iter()
            .enumerate()
            .filter(|(_, p)| p.apis.contains(&id))
            .map(|(k, _)| Location::root().key("products").index(k))
            .collect();
        let mut mine: Vec<FieldError> = Vec::new();
        for f in &org_findings {
            let concerns = f.location.starts_with(&at)
                || f.location == api_at
                || products.iter().any(|p| f.location.starts_with(p));
            if !concerns {
                continue;
            }
            let path = if f.location == at {
                format!("{}.status", at.dotted())
            } else {
                f.location.dotted()
            };
            mine.push(FieldError {
                path,
                message: format!(
                    "{id} cannot be published: rule `{}` ({}): {}",
                    f.rule, f.severity, f.message
                ),
            });
        }
        if let Some(spec) = &version.spec {
            for f in lint_spec(&blocking, spec, None) {
                mine.push(FieldError {
                    path: format!("{}.spec", at.dotted()),
                    message: format!(
                        "{id} cannot be published: rule `{}` ({}) at {}: {}",
                        f.rule, f.severity, f.location, f.message
                    ),
                });
            }
        }
        if mine.len() > MAX_PUBLISH_ERRORS {
            let more = mine.len() - MAX_PUBLISH_ERRORS;
            mine.truncate(MAX_PUBLISH_ERRORS);
            mine.push(FieldError {
                path: format!("{}.spec", at.dotted()),
                message: format!("{id}: {more} more findings at `error` (run `tollgate lint` on the configuration)"),
            });
        }
        out.extend(mine);
    }
    out
}

impl RulesetError {
    /// `rule `x``, or `rule `x` `then.function`` when the field is known.
    fn field_or_rule(&self) -> String {
        if self.field.is_empty() {
            format!("rule `{}`", self.rule)
        } else {
            format!("rule `{}`, `{}`", self.rule, self.field)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAD_SPEC: &str = "openapi: 3.0.3\ninfo: { title: t, version: '1' }\npaths:\n  /pets/{id}:\n    get: { responses: { '200': { description: ok } } }\n";
    const GOOD_SPEC: &str = "openapi: 3.0.3\ninfo: { title: t, version: '1' }\npaths:\n  /pets/{id}:\n    get:\n      parameters: [{ name: id, in: path, required: true }]\n      responses: { '200': { description: ok } }\n";

    fn doc(status: &str, spec: &str, extra: &str) -> Document {
        let yaml = format!(
            "format_version: 1\nupstreams: [{{ name: u, targets: [{{ url: 'http://127.0.0.1:1' }}] }}]\napis:\n  - name: pets\n    versions:\n      - version: v1\n        status: {status}\n        upstream: u\n        routes: [{{ path: /pets }}]\n        spec: {}\n{extra}",
            serde_json::to_string(spec).unwrap()
        );
        tollgate_model::parse_document(&yaml).unwrap().0
    }

    fn empty() -> Document {
        tollgate_model::parse_document("format_version: 1\n")
            .unwrap()
            .0
    }

    #[test]
    fn publishing_a_spec_with_an_error_is_refused() {
        let errors = publish_check(&empty(), &doc("published", BAD_SPEC, ""));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "apis[0].versions[0].spec");
        assert!(
            errors[0].message.starts_with("pets@v1 cannot be published: rule `path-params` (error) at paths./pets/{id}.get: `{id}`"),
            "{}",
            errors[0].message
        );
        // A draft is not judged; the step to published is.
        let draft = doc("draft", BAD_SPEC, "");
        assert!(publish_check(&empty(), &draft).is_empty());
        assert_eq!(
            publish_check(&draft, &doc("published", BAD_SPEC, "")).len(),
            1
        );
        // A published version is judged again when its spec changes, not otherwise.
        let published = doc("published", BAD_SPEC, "");
        assert!(publish_check(&published, &published).is_empty());
        assert!(publish_check(&empty(), &doc("published", GOOD_SPEC, "")).is_empty());
        assert_eq!(
            publish_check(&doc("published", GOOD_SPEC, ""), &published).len(),
            1
        );
    }

    #[test]
    fn governance_turns_rules_off_and_raises_organisation_rules() {
        let off = "governance:\n  rules:\n    path-params: off\n";
        assert!(publish_check(&empty(), &doc("published", BAD_SPEC, off)).is_empty());
        let strict = "governance:\n  rules:\n    api-authentication: error\n    plan-quota: error\nproducts:\n  - { name: p, apis: [pets@v1], plans: [{ name: free }] }\n  - { name: q, apis: [], plans: [{ name: other }] }\n";
        let errors = publish_check(&empty(), &doc("published", GOOD_SPEC, strict));
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["apis[0].versions[0].status", "products[0].plans[0]"],
            "{errors:?}"
        );
        assert!(
            errors[0]
                .message
                .contains("rule `api-authentication` (error)")
        );
        assert!(
            errors[1]
                .message
                .contains("rule `plan-quota` (error): Plan has no `quota`.")
        );
    }

    #[test]
    fn the_governance_section_is_validated_stored_and_merged() {
        let yaml = "format_version: 1\ngovernance:\n  rules:\n    info-contact: loud\n    'bad id!': off\n    x: 3\n    fine: error\n    mine: { given: $.a, then: { function: truthy } }\n";
        let (doc, _) = tollgate_model::parse_document(yaml).unwrap();
        let paths: Vec<String> = tollgate_model::validate(&doc)
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect();
        assert_eq!(
            paths,
            [
                "governance.rules.info-contact: unknown severity `loud`: use error, warn, info, hint, off",
                "governance.rules.bad id!: `bad id!` is not a rule id (letters, digits, `-`, `_`, `.`; at most 100)",
                "governance.rules.x: expected a severity (error, warn, info, hint, off) or a rule definition",
            ]
        );
        // One entity: stored and read back whole, kept by an apply that leaves it out.
        let set = tollgate_model::EntitySet::from_document(&doc);
        assert_eq!(set.to_document().unwrap().governance, doc.governance);
        let merged = empty().merged_over(&doc);
        assert_eq!(merged.governance, doc.governance);
    }

    #[test]
    fn a_bad_governance_section_is_named_by_rule_and_field() {
        let bad = "governance:\n  rules:\n    mine: { given: $.info, then: { function: trthy } }\n";
        let errors = publish_check(&empty(), &doc("draft", GOOD_SPEC, bad));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "governance.rules.mine.then.function");
        assert!(
            errors[0].message.contains("unknown function `trthy`"),
            "{errors:?}"
        );
    }
}
