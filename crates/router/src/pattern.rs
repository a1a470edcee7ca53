//! Route-pattern parsing and validation.
//!
//! This module owns the pattern grammar from user configuration:
//!
//! ```text
//! pattern  = [ "=" ] ( "/" / 1*( "/" segment ) )
//! segment  = static / "{" name "}"
//! static   = 1*( pchar )            ; RFC 3986 pchar, but not "{" / "}"
//! name     = ( ALPHA / "_" ) *( ALPHA / DIGIT / "_" )
//! ```
//!
//! A leading `=` makes the route *exact*; otherwise it is a *prefix* route.
//! Static segments are canonicalised exactly like request paths (escapes of
//! unreserved characters decoded, other escapes upper-cased), so they can be
//! compared byte-for-byte with a [normalised](crate::normalize_path) path.

use crate::normalize::{PathError, decode_segment_into};

/// Why a route pattern is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern (after an optional leading `=`) does not start with `/`.
    #[error("pattern must start with '/' (or '=/' for an exact route)")]
    NotAbsolute,
    /// `//` inside the pattern, or a trailing `/` on a non-root pattern.
    #[error(
        "pattern contains an empty segment ('//' or a trailing '/'); \
         only the root pattern '/' may end with '/'"
    )]
    EmptySegment,
    /// A `.` or `..` segment (possibly percent-encoded).
    #[error("pattern contains a '.' or '..' segment")]
    DotSegment,
    /// `{}`.
    #[error("parameter name is empty: `{{}}`")]
    EmptyParamName,
    /// A parameter name outside `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("invalid parameter name `{name}` (expected [A-Za-z_][A-Za-z0-9_]*)")]
    InvalidParamName {
        /// The offending name (without braces).
        name: String,
    },
    /// A segment such as `a{b}` that mixes literal text and a parameter.
    #[error(
        "segment `{segment}` mixes literal text and a parameter; \
         a parameter must be a whole segment like `{{name}}`"
    )]
    MixedSegment {
        /// The offending segment.
        segment: String,
    },
    /// A `{` without a matching `}` or vice versa.
    #[error("segment `{segment}` has an unbalanced '{{' or '}}'")]
    UnbalancedBrace {
        /// The offending segment.
        segment: String,
    },
    /// The same parameter name used twice in one pattern.
    #[error("parameter `{{{name}}}` appears more than once in the pattern")]
    DuplicateParam {
        /// The repeated name.
        name: String,
    },
    /// A character that is not allowed in a URI path.
    #[error("character {ch:?} is not allowed in a path pattern (percent-encode it)")]
    InvalidChar {
        /// The offending character.
        ch: char,
    },
    /// A `%` not followed by two hexadecimal digits.
    #[error("malformed percent-escape in pattern (expected '%' followed by two hex digits)")]
    BadEscape,
    /// `%00`.
    #[error("pattern contains an encoded NUL byte (%00)")]
    Nul,
}

/// One segment of a parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Canonicalised literal text, compared byte-for-byte.
    Static(Box<str>),
    /// `{name}`: binds exactly one non-empty path segment.
    Param(Box<str>),
}

/// A parsed, validated pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// `=`-prefixed: matches only when every path segment is consumed.
    pub(crate) exact: bool,
    /// Segments after the root; empty for `/` and `=/`.
    pub(crate) segments: Vec<Segment>,
}

impl Pattern {
    pub(crate) fn param_count(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Param(_)))
            .count()
    }
}

/// Check that `pattern` is a valid route pattern without building a table.
///
/// Useful for validating configuration early (e.g. in an admin API). The
/// same checks run in [`RouteTableBuilder::add`](crate::RouteTableBuilder::add).
///
/// ```
/// use tollgate_router::{PatternError, validate_pattern};
///
/// assert!(validate_pattern("=/v1/orders/{id}").is_ok());
/// assert_eq!(
///     validate_pattern("/v1/a{b}"),
///     Err(PatternError::MixedSegment { segment: "a{b}".into() }),
/// );
/// ```
pub fn validate_pattern(pattern: &str) -> Result<(), PatternError> {
    parse(pattern).map(|_| ())
}

/// Parse and validate a pattern.
pub(crate) fn parse(pattern: &str) -> Result<Pattern, PatternError> {
    let (exact, body) = match pattern.strip_prefix('=') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let Some(tail) = body.strip_prefix('/') else {
        return Err(PatternError::NotAbsolute);
    };
    let mut segments = Vec::new();
    if tail.is_empty() {
        return Ok(Pattern { exact, segments });
    }
    for raw in tail.split('/') {
        let segment = parse_segment(raw)?;
        if let Segment::Param(name) = &segment
            && segments.contains(&segment)
        {
            return Err(PatternError::DuplicateParam {
                name: name.to_string(),
            });
        }
        segments.push(segment);
    }
    Ok(Pattern { exact, segments })
}

fn parse_segment(raw: &str) -> Result<Segment, PatternError> {
    if raw.is_empty() {
        return Err(PatternError::EmptySegment);
    }
    if let Some(name) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        return parse_param_name(name).map(Segment::Param);
    }
    if let Some(open) = raw.find('{') {
        return Err(if raw.get(open..).is_some_and(|r| r.contains('}')) {
            PatternError::MixedSegment {
                segment: raw.to_string(),
            }
        } else {
            PatternError::UnbalancedBrace {
                segment: raw.to_string(),
            }
        });
    }
    if raw.contains('}') {
        return Err(PatternError::UnbalancedBrace {
            segment: raw.to_string(),
        });
    }
    if let Some(ch) = raw.chars().find(|&c| !is_pattern_char(c)) {
        return Err(PatternError::InvalidChar { ch });
    }
    let mut canonical = String::with_capacity(raw.len());
    decode_segment_into(raw, 0, &mut canonical).map_err(|e| match e {
        PathError::Nul { .. } => PatternError::Nul,
        _ => PatternError::BadEscape,
    })?;
    if canonical == "." || canonical == ".." {
        return Err(PatternError::DotSegment);
    }
    Ok(Segment::Static(canonical.into_boxed_str()))
}

fn parse_param_name(name: &str) -> Result<Box<str>, PatternError> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(PatternError::EmptyParamName);
    };
    let valid = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name.into())
    } else {
        Err(PatternError::InvalidParamName {
            name: name.to_string(),
        })
    }
}

/// RFC 3986 `pchar` (plus `%`, whose escapes are checked while decoding).
fn is_pattern_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.'
                | '_'
                | '~'
                | '%'
                | '!'
                | '$'
                | '&'
                | '\''
                | '('
                | ')'
                | '*'
                | '+'
                | ','
                | ';'
                | '='
                | ':'
                | '@'
        )
}

#[cfg(test)]
mod tests;
