//! The JSONPath subset rules use to say where they look (`given`), and the paths findings
//! carry.
//!
//! ```text
//! $                 the document
//! .key  ['key']     a member of an object ("key" with double quotes too)
//! [3]               an element of an array
//! .*  [*]           every member of an object, every element of an array
//! [get,put]         the members named (a union; names may be quoted: ['get','put'])
//! ..key  ..[*]      the same step applied at any depth below (recursive descent)
//! ```
//!
//! A bare name runs up to the next `.` or `[`; a name holding either is written quoted.
//! Operations are `$.paths[*][get,put,post,delete,options,head,patch,trace]`.

use std::fmt;

use serde_json::Value;

/// One step of a concrete path: a member name or an array index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A concrete place in a document, from the root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location(pub Vec<Seg>);

impl Location {
    pub fn root() -> Location {
        Location(Vec::new())
    }

    pub fn key(&self, k: &str) -> Location {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_string()));
        Location(v)
    }

    pub fn index(&self, i: usize) -> Location {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        Location(v)
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &Location) -> bool {
        self.0.starts_with(&other.0)
    }

    /// The path as the configuration's source map writes it (`paths./pets.get`,
    /// `apis[0].versions[1]`): members joined with `.`, indexes in brackets.
    pub fn dotted(&self) -> String {
        let mut out = String::new();
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    /// The segments as JSON (`["paths", "/pets", "get"]`), as Spectral reports them.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|s| match s {
                    Seg::Key(k) => Value::String(k.clone()),
                    Seg::Index(i) => Value::from(*i),
                })
                .collect(),
        )
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("$")
        } else {
            f.write_str(&self.dotted())
        }
    }
}

/// Which members or elements one step selects.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Selector {
    Key(String),
    Index(usize),
    Wildcard,
    Union(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Step {
    selector: Selector,
    /// `..`: applied to the node and every node below it.
    recursive: bool,
}

/// A parsed path expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    text: String,
    steps: Vec<Step>,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Path {
    /// Parses an expression starting with `$`.
    pub fn parse(text: &str) -> Result<Path, String> {
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| format!("`{text}` must start with `$`"))?;
        let steps = parse_steps(rest).map_err(|e| format!("`{text}`: {e}"))?;
        Ok(Path {
            text: text.to_string(),
            steps,
        })
    }

    /// Parses a relative path (a rule's `field`: `description`, `contact.email`,
    /// `['x-name']`).
    pub fn parse_relative(text: &str) -> Result<Path, String> {
        if text.is_empty() {
            return Err("a field cannot be empty".into());
        }
        let body = if text.starts_with('[') {
            text.to_string()
        } else {
            format!(".{text}")
        };
        let steps = parse_steps(&body).map_err(|e| format!("`{text}`: {e}"))?;
        if steps.iter().any(|s| s.recursive) {
            return Err(format!("`{text}`: a field cannot use `..`"));
        }
        Ok(Path {
            text: text.to_string(),
            steps,
        })
    }

    /// Every node the path selects under `root` (which sits at `at`), with its location,
    /// in document order.
    pub fn select<'a>(&self, root: &'a Value, at: &Location) -> Vec<(Location, &'a Value)> {
        let mut current = vec![(at.clone(), root)];
        for step in &self.steps {
            let mut next = Vec::new();
            for (loc, node) in &current {
                if step.recursive {
                    descend(node, loc, &mut |l, n| {
                        apply(&step.selector, n, l, &mut next)
                    });
                } else {
                    apply(&step.selector, node, loc, &mut next);
                }
            }
            current = next;
        }
        current
    }

    /// The single node a wildcard-free relative path names, if present.
    pub fn get<'a>(&self, node: &'a Value, at: &Location) -> Option<(Location, &'a Value)> {
        self.select(node, at).into_iter().next()
    }
}

fn apply<'a>(sel: &Selector, node: &'a Value, at: &Location, out: &mut Vec<(Location, &'a Value)>) {
    match (sel, node) {
        (Selector::Key(k), Value::Object(m)) => {
            if let Some(v) = m.get(k) {
                out.push((at.key(k), v));
            }
        }
        (Selector::Index(i), Value::Array(a)) => {
            if let Some(v) = a.get(*i) {
                out.push((at.index(*i), v));
            }
        }
        (Selector::Wildcard, Value::Object(m)) => {
            out.extend(m.iter().map(|(k, v)| (at.key(k), v)));
        }
        (Selector::Wildcard, Value::Array(a)) => {
            out.extend(a.iter().enumerate().map(|(i, v)| (at.index(i), v)));
        }
        (Selector::Union(keys), Value::Object(m)) => {
            // Document order, so findings come out in the order a reader meets them.
            out.extend(
                m.iter()
                    .filter(|(k, _)| keys.iter().any(|u| u == *k))
                    .map(|(k, v)| (at.key(k), v)),
            );
        }
        _ => {}
    }
}

fn descend<'a>(node: &'a Value, at: &Location, f: &mut impl FnMut(&Location, &'a Value)) {
    f(at, node);
    match node {
        Value::Object(m) => {
            for (k, v) in m {
                descend(v, &at.key(k), f);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                descend(v, &at.index(i), f);
            }
        }
        _ => {}
    }
}

fn parse_steps(mut s: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    while !s.is_empty() {
        let recursive;
        if let Some(r) = s.strip_prefix("..") {
            recursive = true;
            s = r;
        } else if let Some(r) = s.strip_prefix('.') {
            recursive = false;
            s = r;
        } else if s.starts_with('[') {
            recursive = false;
        } else {
            return Err(format!("expected `.` or `[` at `{s}`"));
        }
        let selector;
        if let Some(r) = s.strip_prefix('[') {
            let end = closing_bracket(r).ok_or("a `[` is not closed")?;
            selector = parse_bracket(r[..end].trim())?;
            s = &r[end + 1..];
        } else if let Some(r) = s.strip_prefix('*') {
            selector = Selector::Wildcard;
            s = r;
        } else {
            let end = s.find(['.', '[']).unwrap_or(s.len());
            let name = &s[..end];
            if name.is_empty() {
                return Err("a name is missing after `.`".into());
            }
            selector = Selector::Key(name.to_string());
            s = &s[end..];
        }
        steps.push(Step {
            selector,
            recursive,
        });
    }
    Ok(steps)
}

/// The index of the `]` closing a bracket whose body starts `s`, skipping quoted names.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, ']') => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_bracket(body: &str) -> Result<Selector, String> {
    if body == "*" {
        return Ok(Selector::Wildcard);
    }
    if body.is_empty() {
        return Err("`[]` selects nothing".into());
    }
    if let Ok(i) = body.parse::<usize>() {
        return Ok(Selector::Index(i));
    }
    let mut names = Vec::new();
    for item in split_union(body)? {
        let item = item.trim();
        let name = match item.chars().next() {
            Some(q @ ('\'' | '"')) => item
                .strip_prefix(q)
                .and_then(|r| r.strip_suffix(q))
                .ok_or_else(|| format!("unbalanced quote in `[{body}]`"))?,
            _ => item,
        };
        if name.is_empty() {
            return Err(format!("an empty name in `[{body}]`"));
        }
        if !item.starts_with(['\'', '"']) && name.contains(['?', '(', ')', '@', ':']) {
            return Err(format!(
                "`[{body}]`: filters and slices are not in the supported subset; use names, `*` or an index"
            ));
        }
        names.push(name.to_string());
    }
    Ok(if names.len() == 1 {
        Selector::Key(names.remove(0))
    } else {
        Selector::Union(names)
    })
}

/// Splits `a, 'b,c', d` at the commas outside quotes.
fn split_union(body: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut quote = None;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, ',') => {
                out.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err(format!("unbalanced quote in `[{body}]`"));
    }
    out.push(&body[start..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "info": { "title": "t", "x.dotted": 1 },
            "paths": {
                "/pets": {
                    "parameters": [{ "name": "a" }],
                    "get": { "operationId": "list", "parameters": [{ "name": "b" }] },
                    "post": { "operationId": "make" },
                    "x-ext": { "operationId": "not-an-operation" }
                },
                "/pets/{id}": { "get": { "operationId": "show" } }
            }
        })
    }

    fn texts(path: &str) -> Vec<String> {
        Path::parse(path)
            .unwrap()
            .select(&doc(), &Location::root())
            .into_iter()
            .map(|(l, _)| l.dotted())
            .collect()
    }

    #[test]
    fn members_indexes_and_wildcards() {
        assert_eq!(texts("$"), [""]);
        assert_eq!(texts("$.info.title"), ["info.title"]);
        assert_eq!(texts("$['info']['x.dotted']"), ["info.x.dotted"]);
        assert_eq!(texts("$[\"info\"].title"), ["info.title"]);
        assert_eq!(texts("$.paths.*"), ["paths./pets", "paths./pets/{id}"]);
        assert_eq!(
            texts("$.paths['/pets'].parameters[0].name"),
            ["paths./pets.parameters[0].name"]
        );
        assert_eq!(
            texts("$.paths['/pets'].parameters[*]"),
            ["paths./pets.parameters[0]"]
        );
        assert!(texts("$.nothing.here").is_empty());
        assert!(
            texts("$.info[0]").is_empty(),
            "an index on an object selects nothing"
        );
    }

    #[test]
    fn unions_filter_keys_in_document_order() {
        assert_eq!(
            texts("$.paths[*][get,put,post,delete]"),
            [
                "paths./pets.get",
                "paths./pets.post",
                "paths./pets/{id}.get"
            ]
        );
        assert_eq!(texts("$.paths[*]['post', 'get']").len(), 3);
    }

    #[test]
    fn recursive_descent() {
        assert_eq!(
            texts("$..operationId").len(),
            4,
            "every operationId at any depth"
        );
        assert_eq!(
            texts("$.paths..parameters[*].name"),
            [
                "paths./pets.parameters[0].name",
                "paths./pets.get.parameters[0].name"
            ]
        );
    }

    #[test]
    fn relative_fields() {
        let node = json!({ "contact": { "email": "a@b" }, "x-y.z": 1 });
        let p = Path::parse_relative("contact.email").unwrap();
        let (loc, v) = p.get(&node, &Location::root().key("info")).unwrap();
        assert_eq!(loc.dotted(), "info.contact.email");
        assert_eq!(v, "a@b");
        let p = Path::parse_relative("['x-y.z']").unwrap();
        assert_eq!(p.get(&node, &Location::root()).unwrap().1, 1);
        assert!(Path::parse_relative("a..b").is_err());
    }

    #[test]
    fn bad_expressions_say_why() {
        assert!(
            Path::parse("paths")
                .unwrap_err()
                .contains("must start with `$`")
        );
        assert!(Path::parse("$.paths[").unwrap_err().contains("not closed"));
        assert!(Path::parse("$.a.").unwrap_err().contains("missing"));
        assert!(
            Path::parse("$[?(@.x)]")
                .unwrap_err()
                .contains("not in the supported subset")
        );
        assert!(Path::parse("$['a]").is_err());
        assert!(Path::parse("$x").is_err());
    }

    #[test]
    fn locations_render_like_the_source_map() {
        let l = Location::root()
            .key("apis")
            .index(2)
            .key("versions")
            .index(0);
        assert_eq!(l.dotted(), "apis[2].versions[0]");
        assert_eq!(l.to_json(), json!(["apis", 2, "versions", 0]));
        assert_eq!(Location::root().to_string(), "$");
    }
}
