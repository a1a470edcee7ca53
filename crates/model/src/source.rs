//! Reading configuration text: YAML or JSON into a [`Document`], with every error tied to
//! where it is in the text (line and column) and in the document (a path such as
//! `upstreams[0].targets[1].url`).

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::document::Document;
use crate::validate::FieldError;

/// One problem found in a configuration, located as precisely as possible.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Located {
    /// Path inside the document (`upstreams[0].name`); empty for the whole document.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub message: String,
}

impl Located {
    /// `FILE:LINE:COLUMN: PATH: MESSAGE`, the form editors and CI logs link to.
    pub fn render(&self, file: &str) -> String {
        let mut out = String::from(file);
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}:{}", self.column.unwrap_or(1)));
        }
        out.push_str(": ");
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

/// Why a configuration text was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{}", .0.first().map(|e| e.message.as_str()).unwrap_or("invalid configuration"))]
    Invalid(Vec<Located>),
}

impl ConfigError {
    pub fn errors(&self) -> &[Located] {
        match self {
            ConfigError::Invalid(errors) => errors,
        }
    }
}

/// Where each path of a document starts in its text.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    positions: HashMap<String, (usize, usize)>,
}

impl SourceMap {
    /// Indexes a YAML or JSON text. Text the YAML parser cannot read yields an empty map.
    pub fn build(text: &str) -> SourceMap {
        let mut recv = Indexer::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut recv, false);
        SourceMap {
            positions: recv.positions,
        }
    }

    /// Line and column (1-based) of `path`, or of its nearest ancestor that is in the text.
    pub fn locate(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return Some(*pos);
            }
            if p.is_empty() {
                return None;
            }
            let cut = p.rfind(['.', '[']).unwrap_or(0);
            p = &p[..cut];
        }
    }

    /// Attaches locations to validation errors.
    pub fn locate_all(&self, errors: Vec<FieldError>) -> Vec<Located> {
        errors
            .into_iter()
            .map(|e| {
                let pos = self.locate(&e.path);
                Located {
                    line: pos.map(|p| p.0),
                    column: pos.map(|p| p.1),
                    path: e.path,
                    message: e.message,
                }
            })
            .collect()
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

#[derive(Default)]
struct Indexer {
    stack: Vec<Frame>,
    positions: HashMap<String, (usize, usize)>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = (mark.line(), mark.col() + 1);
        let opens = matches!(ev, Event::MappingStart(..) | Event::SequenceStart(..));
        let is_node = opens || matches!(ev, Event::Scalar(..) | Event::Alias(..));
        if matches!(ev, Event::MappingEnd | Event::SequenceEnd) {
            self.stack.pop();
            return;
        }
        if !is_node {
            return;
        }
        let path = match self.stack.last_mut() {
            None => {
                self.positions.entry(String::new()).or_insert(pos);
                String::new()
            }
            Some(Frame::Map { path, key }) => match key.take() {
                None => {
                    // A key: remember it; its position stands for the entry.
                    let name = match &ev {
                        Event::Scalar(v, ..) => v.clone(),
                        _ => "?".to_string(),
                    };
                    let full = join(path, &name);
                    self.positions.entry(full).or_insert(pos);
                    // A mapping starts where its first key is.
                    self.positions.entry(path.clone()).or_insert(pos);
                    *key = Some(name);
                    if opens {
                        // A complex key: index nothing below it.
                        self.stack.push(Frame::Seq {
                            path: "?".into(),
                            index: 0,
                        });
                    }
                    return;
                }
                Some(name) => join(path, &name),
            },
            Some(Frame::Seq { path, index }) => {
                let full = format!("{path}[{index}]");
                *index += 1;
                if !matches!(ev, Event::MappingStart(..)) {
                    self.positions.entry(full.clone()).or_insert(pos);
                }
                full
            }
        };
        match ev {
            Event::MappingStart(..) => self.stack.push(Frame::Map { path, key: None }),
            Event::SequenceStart(..) => self.stack.push(Frame::Seq { path, index: 0 }),
            _ => {}
        }
    }
}

/// True when the text looks like JSON rather than YAML.
pub fn looks_like_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Parses a YAML or JSON configuration text. Syntax and type errors come back located;
/// semantic checks are [`crate::validate`]'s job.
pub fn parse_document(text: &str) -> Result<(Document, SourceMap), ConfigError> {
    let map = SourceMap::build(text);
    let parsed: Result<Document, Located> = if looks_like_json(text) {
        let mut de = serde_json::Deserializer::from_str(text);
        let doc = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let inner = e.inner();
            let path = clean_path(&e.path().to_string());
            let (line, column) = if inner.line() > 0 {
                (Some(inner.line()), Some(inner.column()))
            } else {
                split(map.locate(&path))
            };
            Located {
                path,
                line,
                column,
                message: strip_json_position(&inner.to_string()),
            }
        });
        doc.and_then(|doc| {
            de.end().map(|()| doc).map_err(|e| Located {
                path: String::new(),
                line: Some(e.line()),
                column: Some(e.column()),
                message: strip_json_position(&e.to_string()),
            })
        })
    } else {
        let de = yaml_serde::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = clean_path(&e.path().to_string());
            let inner = e.into_inner();
            let (line, column) = match inner.location() {
                Some(loc) => (Some(loc.line()), Some(loc.column())),
                None => split(map.locate(&path)),
            };
            let message = strip_yaml_position(&inner.to_string());
            // yaml_serde starts some messages with the path (or its parent's, for errors
            // raised while reading a value); the path is shown separately.
            let message = match message.split_once(": ") {
                Some((head, rest)) if !head.is_empty() && path.starts_with(head) => {
                    rest.to_string()
                }
                _ => message,
            };
            Located {
                path,
                line,
                column,
                message,
            }
        })
    };
    match parsed {
        Ok(doc) => Ok((doc, map)),
        Err(located) => Err(ConfigError::Invalid(vec![located])),
    }
}

fn split(pos: Option<(usize, usize)>) -> (Option<usize>, Option<usize>) {
    (pos.map(|p| p.0), pos.map(|p| p.1))
}

fn clean_path(p: &str) -> String {
    if p == "." {
        String::new()
    } else {
        p.to_string()
    }
}

fn strip_json_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn strip_yaml_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("<config>"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "format_version: 1\nupstreams:\n  - name: a\n    targets:\n      - url: http://127.0.0.1:1\n      - url: http://127.0.0.1:2\n";

    #[test]
    fn source_map_points_at_keys_and_items() {
        let map = SourceMap::build(YAML);
        assert_eq!(map.locate("format_version"), Some((1, 1)));
        assert_eq!(map.locate("upstreams[0]"), Some((3, 5)));
        assert_eq!(map.locate("upstreams[0].name"), Some((3, 5)));
        assert_eq!(map.locate("upstreams[0].targets[1].url"), Some((6, 9)));
        // Unknown children fall back to the nearest known ancestor.
        assert_eq!(map.locate("upstreams[0].targets[1].weight"), Some((6, 9)));
    }

    #[test]
    fn yaml_type_errors_are_located() {
        let text = "format_version: 1\nupstreams:\n  - name: a\n    targets: nope\n";
        let err = parse_document(text).unwrap_err();
        let e = &err.errors()[0];
        assert_eq!(e.path, "upstreams[0].targets");
        assert_eq!(e.line, Some(4), "{e:?}");
    }

    #[test]
    fn unknown_sections_and_fields_are_named() {
        let err = parse_document("format_version: 1\nupstream: []\n").unwrap_err();
        assert!(
            err.errors()[0].message.contains("unknown field `upstream`"),
            "{err:?}"
        );
        assert_eq!(err.errors()[0].line, Some(2));
    }

    #[test]
    fn json_errors_carry_line_and_path() {
        let text = "{\n  \"format_version\": 1,\n  \"upstreams\": [{\"name\": 5}]\n}";
        let err = parse_document(text).unwrap_err();
        let e = &err.errors()[0];
        assert_eq!(e.path, "upstreams[0].name");
        assert_eq!(e.line, Some(3));
        let err = parse_document("{\"format_version\": 1,}").unwrap_err();
        assert_eq!(err.errors()[0].line, Some(1));
    }

    #[test]
    fn yaml_syntax_errors_are_located() {
        let err = parse_document("format_version: 1\napis: [\n").unwrap_err();
        assert!(err.errors()[0].line.is_some(), "{err:?}");
    }

    #[test]
    fn render_is_file_line_column() {
        let l = Located {
            path: "a.b".into(),
            line: Some(3),
            column: Some(7),
            message: "bad".into(),
        };
        assert_eq!(l.render("x.yaml"), "x.yaml:3:7: a.b: bad");
    }
}
