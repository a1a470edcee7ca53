//! What a rule's `then` can check: the core functions (on one value), `unique` (across
//! every match of a rule), and the named built-ins for checks a path cannot express.

use regex::Regex;
use serde_json::Value;

use crate::oas;
use crate::org;
use crate::path::Location;

/// A check.
#[derive(Clone, Debug)]
pub enum Function {
    /// Present and not `null`, `false`, `0`, `""`, `[]` or `{}`.
    Truthy,
    /// Absent, or one of the values `truthy` refuses.
    Falsy,
    /// Present (`null` counts as present).
    Defined,
    /// Absent.
    Undefined,
    /// A string matching `matches` and not matching `not_match` (other values pass).
    Pattern {
        matches: Option<Regex>,
        not_match: Option<Regex>,
    },
    /// One of the values (when present).
    Enumeration(Vec<Value>),
    /// Characters of a string, elements of an array, members of an object, or a number,
    /// within bounds (when present).
    Length {
        min: Option<u64>,
        max: Option<u64>,
    },
    /// No two matches of the rule share the value (when present).
    Unique,
    /// An object with at least one member name matching the pattern.
    HasKey(Regex),
    Builtin(Builtin),
}

/// The named functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    OasDocument,
    OasPathParams,
    OasOperationSecurity,
    OasSecuritySchemes,
    OasTagDefined,
    OasNoPlainHttp,
    TollgateAuthentication,
    TollgateRateLimit,
}

impl Builtin {
    pub const NAMES: &'static [&'static str] = &[
        "oasDocument",
        "oasPathParams",
        "oasOperationSecurity",
        "oasSecuritySchemes",
        "oasTagDefined",
        "oasNoPlainHttp",
        "tollgateAuthentication",
        "tollgateRateLimit",
    ];

    pub fn parse(name: &str) -> Option<Builtin> {
        Some(match name {
            "oasDocument" => Builtin::OasDocument,
            "oasPathParams" => Builtin::OasPathParams,
            "oasOperationSecurity" => Builtin::OasOperationSecurity,
            "oasSecuritySchemes" => Builtin::OasSecuritySchemes,
            "oasTagDefined" => Builtin::OasTagDefined,
            "oasNoPlainHttp" => Builtin::OasNoPlainHttp,
            "tollgateAuthentication" => Builtin::TollgateAuthentication,
            "tollgateRateLimit" => Builtin::TollgateRateLimit,
            _ => return None,
        })
    }

    /// Runs on one matched node; `root` is the whole document.
    pub fn run(self, root: &Value, at: &Location, node: &Value) -> Vec<(Location, String)> {
        match self {
            Builtin::OasDocument => oas::document(root, at),
            Builtin::OasPathParams => oas::path_params(root, at, node),
            Builtin::OasOperationSecurity => oas::operation_security(root, at, node),
            Builtin::OasSecuritySchemes => oas::security_schemes(root, at, node),
            Builtin::OasTagDefined => oas::tag_defined(root, at, node),
            Builtin::OasNoPlainHttp => oas::no_plain_http(root, at, node),
            Builtin::TollgateAuthentication => org::authentication(root, at, node),
            Builtin::TollgateRateLimit => org::rate_limit(root, at, node),
        }
    }
}

pub fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A value as it reads in a message: strings bare, other values as JSON, long ones cut.
pub fn show(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// Checks one value (`None`: the field is absent); `name` is what the message calls it.
/// Answers what is wrong, if anything. `unique` and the built-ins are run by the caller.
pub fn check(f: &Function, name: &str, value: Option<&Value>) -> Option<String> {
    match f {
        Function::Truthy => match value {
            None => Some(format!("`{name}` is missing")),
            Some(v) if !is_truthy(v) => Some(format!("`{name}` is empty")),
            _ => None,
        },
        Function::Falsy => match value {
            Some(v) if is_truthy(v) => Some(format!("`{name}` must be absent or empty")),
            _ => None,
        },
        Function::Defined => value.is_none().then(|| format!("`{name}` is missing")),
        Function::Undefined => value.is_some().then(|| format!("`{name}` must not be set")),
        Function::Pattern { matches, not_match } => {
            let s = value?.as_str()?;
            if let Some(re) = matches
                && !re.is_match(s)
            {
                return Some(format!("`{s}` does not match `{}`", re.as_str()));
            }
            if let Some(re) = not_match
                && re.is_match(s)
            {
                return Some(format!("`{s}` must not match `{}`", re.as_str()));
            }
            None
        }
        Function::Enumeration(values) => {
            let v = value?;
            (!values.contains(v)).then(|| {
                format!(
                    "`{}` is not one of {}",
                    show(v),
                    values.iter().map(show).collect::<Vec<_>>().join(", ")
                )
            })
        }
        Function::Length { min, max } => {
            let v = value?;
            let n = match v {
                Value::String(s) => s.chars().count() as f64,
                Value::Array(a) => a.len() as f64,
                Value::Object(o) => o.len() as f64,
                Value::Number(n) => n.as_f64().unwrap_or(0.0),
                _ => return None,
            };
            if let Some(min) = min
                && n < *min as f64
            {
                return Some(format!("`{name}` is shorter than {min}"));
            }
            if let Some(max) = max
                && n > *max as f64
            {
                return Some(format!("`{name}` is longer than {max}"));
            }
            None
        }
        Function::HasKey(re) => match value {
            None => Some(format!("`{name}` is missing")),
            Some(Value::Object(o)) if o.keys().any(|k| re.is_match(k)) => None,
            Some(_) => Some(format!("`{name}` has no member matching `{}`", re.as_str())),
        },
        Function::Unique | Function::Builtin(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn core_functions() {
        let t = |f: &Function, v: Option<Value>| check(f, "x", v.as_ref());
        assert!(t(&Function::Truthy, None).unwrap().contains("missing"));
        for empty in [
            json!(""),
            json!([]),
            json!({}),
            json!(0),
            json!(false),
            json!(null),
        ] {
            assert!(
                t(&Function::Truthy, Some(empty.clone())).is_some(),
                "{empty}"
            );
            assert!(t(&Function::Falsy, Some(empty)).is_none());
        }
        assert!(t(&Function::Truthy, Some(json!("a"))).is_none());
        assert!(t(&Function::Falsy, Some(json!("a"))).is_some());
        assert!(t(&Function::Defined, Some(json!(null))).is_none());
        assert!(t(&Function::Defined, None).is_some());
        assert!(t(&Function::Undefined, Some(json!(1))).is_some());
        let p = Function::Pattern {
            matches: Some(Regex::new("^[a-z]+$").unwrap()),
            not_match: Some(Regex::new("bad").unwrap()),
        };
        assert!(t(&p, Some(json!("good"))).is_none());
        assert!(
            t(&p, Some(json!("Good")))
                .unwrap()
                .contains("does not match")
        );
        assert!(
            t(&p, Some(json!("bad")))
                .unwrap()
                .contains("must not match")
        );
        assert!(t(&p, None).is_none(), "pattern skips absent values");
        let e = Function::Enumeration(vec![json!("a"), json!(1)]);
        assert!(t(&e, Some(json!(1))).is_none());
        assert_eq!(t(&e, Some(json!("b"))).unwrap(), "`b` is not one of a, 1");
        let l = Function::Length {
            min: Some(2),
            max: Some(3),
        };
        assert!(t(&l, Some(json!("ab"))).is_none());
        assert!(t(&l, Some(json!([1]))).unwrap().contains("shorter"));
        assert!(
            t(&l, Some(json!({"a":1,"b":2,"c":3,"d":4})))
                .unwrap()
                .contains("longer")
        );
        let h = Function::HasKey(Regex::new("^2").unwrap());
        assert!(t(&h, Some(json!({"200": {}}))).is_none());
        assert!(t(&h, Some(json!({"404": {}}))).is_some());
        assert!(t(&h, None).is_some());
    }
}
