//! Compiling an OpenAPI document for the `validate` policy: `$ref`s followed, parameters
//! and request bodies gathered per operation, and each schema turned into a JSON Schema
//! validator read as OpenAPI means it.

use std::collections::HashMap;

use jsonschema::{Draft, Validator};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};

use super::{Location, NULL, Operation, Param, RequestBody, Shape, is_json};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    V2,
    V30,
    V31,
}

/// Compiling context: the whole document, for `$ref`s.
pub(super) struct Cx<'d> {
    pub(super) doc: &'d Value,
    pub(super) dialect: Dialect,
}

impl<'d> Cx<'d> {
    fn draft(&self) -> Draft {
        match self.dialect {
            Dialect::V31 => Draft::Draft202012,
            Dialect::V2 | Dialect::V30 => Draft::Draft4,
        }
    }

    /// The path prefixes of the document's servers (server variables at their defaults).
    pub(super) fn bases(&self) -> Vec<String> {
        let mut bases = vec![String::new()];
        let trim = |p: &str| p.trim_end_matches('/').to_string();
        if self.dialect == Dialect::V2 {
            if let Some(base) = self.doc.get("basePath").and_then(Value::as_str) {
                bases.push(trim(base));
            }
            return bases;
        }
        for server in self
            .doc
            .get("servers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(url) = server.get("url").and_then(Value::as_str) else {
                continue;
            };
            let mut url = url.to_string();
            if let Some(vars) = server.get("variables").and_then(Value::as_object) {
                for (name, var) in vars {
                    if let Some(d) = var.get("default").and_then(Value::as_str) {
                        url = url.replace(&format!("{{{name}}}"), d);
                    }
                }
            }
            let path = match url.split_once("://") {
                Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
                None => url.as_str(),
            };
            bases.push(trim(path.split(['?', '#']).next().unwrap_or("")));
        }
        bases
    }

    /// Follows a local `$ref` (repeatedly) to the value it names.
    pub(super) fn deref(&self, value: &'d Value, at: &str) -> Result<&'d Value, String> {
        let mut value = value;
        for _ in 0..32 {
            let Some(r) = value.get("$ref").and_then(Value::as_str) else {
                return Ok(value);
            };
            value = self.target(r, at)?;
        }
        Err(format!("{at}: `$ref` chain too long (a cycle?)"))
    }

    fn target(&self, r: &str, at: &str) -> Result<&'d Value, String> {
        let Some(pointer) = r.strip_prefix('#') else {
            return Err(format!(
                "{at}: `$ref` `{r}` points to another file; bundle the document into one file"
            ));
        };
        let pointer = percent_decode_str(pointer).decode_utf8_lossy();
        self.doc
            .pointer(&pointer)
            .ok_or_else(|| format!("{at}: `$ref` `{r}` points nowhere in the document"))
    }

    pub(super) fn operation(
        &self,
        shared: &'d Value,
        op: &'d Value,
        at: &str,
    ) -> Result<Operation, String> {
        // Operation parameters override path-level ones of the same name and location.
        let mut declared: Vec<(String, String, &'d Value, String)> = Vec::new();
        let own = op.get("parameters").unwrap_or(&NULL);
        for (list, list_at) in [(shared, "path parameters"), (own, "parameters")] {
            for (i, p) in list.as_array().into_iter().flatten().enumerate() {
                let p_at = format!("{at}.{list_at}[{i}]");
                let p = self.deref(p, &p_at)?;
                let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
                let location = p.get("in").and_then(Value::as_str).unwrap_or_default();
                declared.retain(|(n, l, _, _)| !(n == name && l == location));
                declared.push((name.to_string(), location.to_string(), p, p_at));
            }
        }
        let mut params = Vec::new();
        let mut body = None;
        let mut form = false;
        for (name, location, p, p_at) in declared {
            let location = match location.as_str() {
                "path" => Location::Path,
                "query" => Location::Query,
                "header" => {
                    // OpenAPI 3 ignores these as parameters; the gateway handles them.
                    if ["accept", "content-type", "authorization"]
                        .contains(&name.to_ascii_lowercase().as_str())
                    {
                        continue;
                    }
                    Location::Header
                }
                "cookie" => Location::Cookie,
                "body" => {
                    body = Some(self.body_v2(op, p, &p_at)?);
                    continue;
                }
                "formData" => {
                    form = true;
                    continue;
                }
                other => return Err(format!("{p_at}: unknown parameter location `{other}`")),
            };
            params.push(self.param(name, location, p, &p_at)?);
        }
        if let Some(rb) = op.get("requestBody") {
            body = Some(self.body_v3(rb, &format!("{at}.requestBody"))?);
        } else if form {
            // Form fields are not checked one by one; the media type still is.
            body = Some(RequestBody {
                required: false,
                media: self.consumes(op).into_iter().map(|m| (m, None)).collect(),
            });
        }
        Ok(Operation { params, body })
    }

    fn param(
        &self,
        name: String,
        location: Location,
        p: &'d Value,
        at: &str,
    ) -> Result<Param, String> {
        let required = location == Location::Path
            || p.get("required").and_then(Value::as_bool).unwrap_or(false);
        let explode = p.get("explode").and_then(Value::as_bool);
        let (schema, separator) = match self.dialect {
            Dialect::V2 => {
                // 2.0 writes the schema's keywords on the parameter itself.
                let mut schema = Map::new();
                for key in [
                    "type",
                    "format",
                    "items",
                    "enum",
                    "minimum",
                    "maximum",
                    "exclusiveMinimum",
                    "exclusiveMaximum",
                    "minLength",
                    "maxLength",
                    "pattern",
                    "minItems",
                    "maxItems",
                    "uniqueItems",
                    "multipleOf",
                ] {
                    if let Some(v) = p.get(key) {
                        schema.insert(key.into(), v.clone());
                    }
                }
                let separator = match p.get("collectionFormat").and_then(Value::as_str) {
                    Some("multi") => None,
                    Some("ssv") => Some(' '),
                    Some("tsv") => Some('\t'),
                    Some("pipes") => Some('|'),
                    _ => Some(','),
                };
                (Value::Object(schema), separator)
            }
            Dialect::V30 | Dialect::V31 => {
                let schema = match (p.get("schema"), p.get("content")) {
                    (Some(s), _) => s.clone(),
                    // A parameter written as content (JSON in a query string) is
                    // checked for presence only.
                    (None, Some(_)) | (None, None) => Value::Null,
                };
                let separator = match p.get("style").and_then(Value::as_str) {
                    Some("spaceDelimited") => Some(' '),
                    Some("pipeDelimited") => Some('|'),
                    Some("form") | None
                        if matches!(location, Location::Query | Location::Cookie)
                            && explode.unwrap_or(true) =>
                    {
                        None
                    }
                    _ => Some(','),
                };
                (schema, separator)
            }
        };
        if schema.is_null() {
            return Ok(Param {
                name,
                location,
                required,
                shape: Shape::Other,
                validator: None,
            });
        }
        let shape = match self.shape(&schema, at)? {
            Shape::Array(item, _) => Shape::Array(item, separator),
            s => s,
        };
        let validator = self.validator(&schema, at)?;
        Ok(Param {
            name,
            location,
            required,
            shape,
            validator: Some(validator),
        })
    }

    fn shape(&self, schema: &'d Value, at: &str) -> Result<Shape, String> {
        let schema = self.deref(schema, at)?;
        let ty = match schema.get("type") {
            Some(Value::String(t)) => Some(t.as_str()),
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
            _ => None,
        };
        Ok(match ty {
            Some("integer") => Shape::Integer,
            Some("number") => Shape::Number,
            Some("boolean") => Shape::Boolean,
            Some("string") => Shape::String,
            Some("array") => {
                let item = match schema.get("items") {
                    Some(items) => self.shape(items, at)?,
                    None => Shape::String,
                };
                Shape::Array(Box::new(item), Some(','))
            }
            Some(_) => Shape::Other,
            // No type: the text is checked as text.
            None if schema.get("properties").is_some() => Shape::Other,
            None => Shape::String,
        })
    }

    fn consumes(&self, op: &Value) -> Vec<String> {
        let list = op
            .get("consumes")
            .or_else(|| self.doc.get("consumes"))
            .and_then(Value::as_array);
        match list {
            Some(l) if !l.is_empty() => l
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => vec!["application/json".into()],
        }
    }

    fn body_v2(&self, op: &Value, p: &'d Value, at: &str) -> Result<RequestBody, String> {
        let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
        let schema = p.get("schema");
        let mut media = Vec::new();
        for m in self.consumes(op) {
            let validator = match schema {
                Some(s) if is_json(&m) => Some(self.validator(s, &format!("{at}.schema"))?),
                _ => None,
            };
            media.push((m, validator));
        }
        Ok(RequestBody { required, media })
    }

    fn body_v3(&self, rb: &'d Value, at: &str) -> Result<RequestBody, String> {
        let rb = self.deref(rb, at)?;
        let required = rb.get("required").and_then(Value::as_bool).unwrap_or(false);
        let mut media = Vec::new();
        for (m, content) in rb
            .get("content")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let validator = match content.get("schema") {
                Some(s) if is_json(m) => {
                    Some(self.validator(s, &format!("{at}.content.{m}.schema"))?)
                }
                _ => None,
            };
            media.push((m.clone(), validator));
        }
        Ok(RequestBody { required, media })
    }

    /// A validator for one schema of the document: the schema with every definition it
    /// reaches (through `$ref`, transitively) copied beside it, read as OpenAPI means it.
    fn validator(&self, schema: &'d Value, at: &str) -> Result<Validator, String> {
        let mut names: HashMap<String, String> = HashMap::new();
        let mut queue = Vec::new();
        collect_refs(schema, &mut queue);
        let mut i = 0;
        while i < queue.len() {
            let r = queue[i].clone();
            i += 1;
            if names.contains_key(&r) {
                continue;
            }
            collect_refs(self.target(&r, at)?, &mut queue);
            let name = format!("d{}", names.len());
            names.insert(r, name);
        }
        // Now that every reference has a name, the copies can point at each other.
        let mut definitions = Map::new();
        for (r, name) in &names {
            let target = self.target(r, at)?;
            definitions.insert(name.clone(), self.rewrite(target, &names));
        }
        let container = match self.draft() {
            Draft::Draft4 => "definitions",
            _ => "$defs",
        };
        let root = json!({
            "allOf": [self.rewrite(schema, &names)],
            container: Value::Object(definitions),
        });
        let mut options = jsonschema::options()
            .with_draft(self.draft())
            .should_validate_formats(true);
        if self.draft() == Draft::Draft4 {
            // Formats OpenAPI documents use that JSON Schema draft 4 does not know.
            options = options
                .with_format("uuid", is_uuid)
                .with_format("date", is_date)
                .with_format("byte", is_base64);
        }
        options
            .build(&root)
            .map_err(|e| format!("{at}: the schema does not compile: {e}"))
    }

    /// A copy of `schema` with references renamed into the definitions container, and
    /// OpenAPI's own keywords turned into JSON Schema: `nullable` (3.0) and `x-nullable`
    /// (2.0) allow `null`; a `readOnly` property is not required in a request (3.0); a
    /// 2.0 `file` type accepts anything.
    fn rewrite(&self, schema: &Value, names: &HashMap<String, String>) -> Value {
        let container = match self.draft() {
            Draft::Draft4 => "definitions",
            _ => "$defs",
        };
        match schema {
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.rewrite(v, names)).collect())
            }
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    if k == "$ref"
                        && let Some(name) = v.as_str().and_then(|r| names.get(r))
                    {
                        out.insert(k.clone(), Value::from(format!("#/{container}/{name}")));
                    } else if k == "type" && v == "file" {
                        continue;
                    } else if k == "properties" || k == "patternProperties" || k == "definitions" {
                        // Keys here are names, not keywords.
                        let inner = v
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .map(|(n, s)| (n.clone(), self.rewrite(s, names)))
                                    .collect::<Map<_, _>>()
                            })
                            .map_or(Value::Null, Value::Object);
                        out.insert(k.clone(), inner);
                    } else {
                        out.insert(k.clone(), self.rewrite(v, names));
                    }
                }
                if map.get("type") == Some(&Value::from("integer"))
                    && map.get("format") == Some(&Value::from("int32"))
                {
                    out.entry("minimum").or_insert(Value::from(i32::MIN));
                    out.entry("maximum").or_insert(Value::from(i32::MAX));
                }
                if self.dialect != Dialect::V31 {
                    let nullable = ["nullable", "x-nullable"]
                        .iter()
                        .any(|k| map.get(*k) == Some(&Value::Bool(true)));
                    if nullable {
                        if let Some(Value::String(t)) = out.get("type").cloned() {
                            out.insert("type".into(), json!([t, "null"]));
                        }
                        if let Some(Value::Array(e)) = out.get_mut("enum")
                            && !e.contains(&Value::Null)
                        {
                            e.push(Value::Null);
                        }
                    }
                    if self.dialect == Dialect::V30
                        && let (Some(Value::Array(required)), Some(Value::Object(props))) =
                            (map.get("required"), map.get("properties"))
                    {
                        let kept: Vec<Value> = required
                            .iter()
                            .filter(|n| {
                                let prop = n.as_str().and_then(|n| props.get(n));
                                !prop.is_some_and(|p| self.read_only(p))
                            })
                            .cloned()
                            .collect();
                        out.insert("required".into(), Value::Array(kept));
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    fn read_only(&self, prop: &Value) -> bool {
        let prop = self.deref(prop, "").unwrap_or(prop);
        prop.get("readOnly") == Some(&Value::Bool(true))
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_date(s: &str) -> bool {
    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).is_ok()
}

fn is_base64(s: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

/// Every local or external `$ref` under a schema, in order.
fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
