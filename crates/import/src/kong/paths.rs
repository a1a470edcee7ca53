//! Route paths: Kong's plain and regex paths as Tollgate route patterns, and back.
//!
//! Tollgate routes are prefixes (`/a/b`), exact paths (`=/a/b`) and whole-segment parameters
//! (`/a/{id}`). A Kong regex path maps when it is made of literal text, whole-segment
//! captures (`(?<id>[^/]+)`), an optional leading `^` and trailing `$` (exact) or `.*`
//! (prefix). Anything else has no pattern.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// A Kong path as a Tollgate pattern.
#[derive(Debug, PartialEq)]
pub(super) struct Mapped {
    pub pattern: String,
    /// What the pattern does not keep of the Kong path (reported as unsupported).
    pub loss: Option<String>,
    /// A difference worth a note (grouped over all routes).
    pub note: Option<&'static str>,
}

pub(super) const STRING_PREFIX: &str = "Kong matches a plain path as a string prefix (`/a` also matches `/ab`); a Tollgate route matches whole segments (`/a`, `/a/…`)";
const TRAILING_SLASH: &str =
    "a trailing `/` is dropped: the Tollgate route also matches the path without it";

/// Whether Kong reads `path` as a regex: `~…` in 3.0; before 3.0, any path with a character
/// outside `[A-Za-z0-9.-_~/%]` (what `deck convert` marks with `~`).
pub(super) fn is_regex(path: &str, legacy: bool) -> bool {
    path.starts_with('~')
        || (legacy
            && !path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_~/%".contains(&b)))
}

/// Maps one Kong path; `Err` says why it has no Tollgate pattern.
pub(super) fn from_kong(path: &str, legacy: bool) -> Result<Mapped, String> {
    if is_regex(path, legacy) {
        regex(path.strip_prefix('~').unwrap_or(path))
    } else {
        plain(path)
    }
}

fn plain(path: &str) -> Result<Mapped, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` does not start with `/`"));
    }
    if path.contains(['{', '}']) {
        return Err(format!(
            "`{path}`: braces are literal text in Kong and a parameter in a Tollgate pattern"
        ));
    }
    let mut pattern = path.to_string();
    let mut note = (path != "/").then_some(STRING_PREFIX);
    if pattern.len() > 1 && pattern.ends_with('/') {
        pattern = pattern.trim_end_matches('/').to_string();
        if pattern.is_empty() {
            pattern.push('/');
        }
        note = Some(TRAILING_SLASH);
    }
    tollgate_router::validate_pattern(&pattern).map_err(|e| format!("`{path}`: {e}"))?;
    Ok(Mapped {
        pattern,
        loss: None,
        note,
    })
}

/// The one class a Tollgate `{param}` matches: any character but `/`.
fn is_segment_class(c: &Class) -> bool {
    match c {
        Class::Unicode(u) => {
            let r: Vec<(char, char)> = u.ranges().iter().map(|r| (r.start(), r.end())).collect();
            r == [('\0', '.'), ('0', char::MAX)]
        }
        Class::Bytes(b) => {
            let r: Vec<(u8, u8)> = b.ranges().iter().map(|r| (r.start(), r.end())).collect();
            r == [(0, b'.'), (b'0', 0xff)]
        }
    }
}

fn class_has_slash(c: &Class) -> bool {
    match c {
        Class::Unicode(u) => u
            .ranges()
            .iter()
            .any(|r| r.start() <= '/' && '/' <= r.end()),
        Class::Bytes(b) => b
            .ranges()
            .iter()
            .any(|r| r.start() <= b'/' && b'/' <= r.end()),
    }
}

/// `.*` (or any class with `/`), repeated from zero: "anything after".
fn is_anything(h: &Hir) -> bool {
    matches!(h.kind(), HirKind::Repetition(r) if r.min == 0 && r.max.is_none()
        && matches!(r.sub.kind(), HirKind::Class(c) if class_has_slash(c)))
}

/// `/?`.
fn is_optional_slash(h: &Hir) -> bool {
    matches!(h.kind(), HirKind::Repetition(r) if r.min == 0 && r.max == Some(1)
        && matches!(r.sub.kind(), HirKind::Literal(l) if &*l.0 == b"/"))
}

/// A one-or-more repetition of a class without `/`: a segment parameter. `Some(true)` when
/// it is exactly `[^/]+`.
fn segment(h: &Hir) -> Option<(bool, String)> {
    let HirKind::Repetition(r) = h.kind() else {
        return None;
    };
    let HirKind::Class(c) = r.sub.kind() else {
        return None;
    };
    (r.min >= 1 && r.max.is_none() && !class_has_slash(c))
        .then(|| (is_segment_class(c), h.to_string()))
}

/// A capture name the router accepts.
fn param_name(name: &str) -> String {
    let mut fixed: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if fixed.is_empty() || fixed.starts_with(|c: char| c.is_ascii_digit()) {
        fixed.insert(0, '_');
    }
    fixed
}

fn regex(re: &str) -> Result<Mapped, String> {
    let none = || {
        format!(
            "the regex `{re}` has no Tollgate route pattern (routes are prefixes, exact paths and whole `{{param}}` segments)"
        )
    };
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(re)
        .map_err(|e| format!("`{re}` is not a regex Tollgate can read: {e}"))?;
    let items: Vec<&Hir> = match hir.kind() {
        HirKind::Concat(items) => items.iter().collect(),
        _ => vec![&hir],
    };
    let mut out = String::new();
    let mut exact = false;
    let mut losses: Vec<String> = Vec::new();
    let mut note = None;
    let mut params = 0;
    let mut after_param = false;
    let last = items.len().saturating_sub(1);
    let mut i = 0;
    while i < items.len() {
        let h = items[i];
        let ends_here =
            i == last || (i + 1 == last && matches!(items[last].kind(), HirKind::Look(Look::End)));
        match h.kind() {
            HirKind::Look(Look::Start) if i == 0 => {}
            HirKind::Look(Look::End) if i == last => exact = true,
            HirKind::Literal(lit) => {
                let text = std::str::from_utf8(&lit.0).map_err(|_| none())?;
                if after_param && !text.starts_with('/') {
                    return Err(none());
                }
                after_param = false;
                out.push_str(text);
            }
            HirKind::Capture(_) | HirKind::Repetition(_) if segment(strip_capture(h)).is_some() => {
                let (whole, shown) = segment(strip_capture(h)).unwrap_or_default();
                if !out.ends_with('/') {
                    return Err(none());
                }
                params += 1;
                let name = match h.kind() {
                    HirKind::Capture(c) => c.name.as_deref().map(param_name),
                    _ => None,
                }
                .unwrap_or_else(|| format!("p{params}"));
                if !whole {
                    losses.push(format!(
                        "`{{{name}}}` accepts any segment, not only what `{shown}` matches"
                    ));
                }
                out.push('{');
                out.push_str(&name);
                out.push('}');
                after_param = true;
            }
            _ if is_anything(h) && ends_here => {
                // `/a/.*`: a prefix route.
                if out.len() > 1 && out.ends_with('/') {
                    out.pop();
                    note = Some(TRAILING_SLASH);
                }
                exact = false;
                break;
            }
            _ if is_optional_slash(h) && ends_here => {
                if i == last {
                    // `/a/?` without `$`: a prefix anyway.
                } else {
                    losses.push(format!(
                        "the path with a trailing `/` (`{out}/`) is not matched"
                    ));
                }
            }
            _ => return Err(none()),
        }
        i += 1;
    }
    if !out.starts_with('/') {
        return Err(none());
    }
    if out.len() > 1 && out.ends_with('/') {
        if exact {
            return Err(format!(
                "`{re}`: an exact path ending with `/` (Tollgate patterns do not end with `/`)"
            ));
        }
        out.pop();
        note = Some(TRAILING_SLASH);
    }
    if !exact && note.is_none() && out != "/" {
        note = Some(STRING_PREFIX);
    }
    let pattern = if exact { format!("={out}") } else { out };
    tollgate_router::validate_pattern(&pattern).map_err(|e| format!("`{re}`: {e}"))?;
    Ok(Mapped {
        pattern,
        loss: (!losses.is_empty()).then(|| losses.join("; ")),
        note,
    })
}

fn strip_capture(h: &Hir) -> &Hir {
    match h.kind() {
        HirKind::Capture(c) => &c.sub,
        _ => h,
    }
}

/// A Tollgate pattern as a Kong 3.0 path: a plain path for a prefix without parameters,
/// otherwise a `~` regex (`=/a/{id}` → `~/a/(?<id>[^/]+)$`).
pub(super) fn to_kong(pattern: &str) -> String {
    let (exact, body) = match pattern.strip_prefix('=') {
        Some(b) => (true, b),
        None => (false, pattern),
    };
    let has_params = body.contains('{');
    if !exact && !has_params {
        return body.to_string();
    }
    let mut re = String::from("~");
    if body == "/" {
        re.push('/');
    }
    for seg in body.split('/').skip(1).filter(|s| !s.is_empty()) {
        re.push('/');
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => re.push_str(&format!("(?<{name}>[^/]+)")),
            None => re.push_str(&regex_syntax::escape(seg)),
        }
    }
    if exact {
        re.push('$');
    }
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str) -> String {
        from_kong(path, false).unwrap().pattern
    }

    #[test]
    fn plain_paths_are_prefixes() {
        assert_eq!(ok("/r1"), "/r1");
        assert_eq!(ok("/"), "/");
        let m = from_kong("/a/", false).unwrap();
        assert_eq!(m.pattern, "/a");
        assert_eq!(m.note, Some(TRAILING_SLASH));
        assert!(from_kong("/a/{b}", false).is_err());
        assert!(from_kong("/a b", false).is_err());
        assert!(from_kong("a", false).is_err());
    }

    #[test]
    fn regex_paths_with_segments_map() {
        assert_eq!(ok("~/r1"), "/r1");
        assert_eq!(ok("~^/r1$"), "=/r1");
        assert_eq!(ok("~/users/(?<id>[^/]+)$"), "=/users/{id}");
        assert_eq!(
            ok("~/users/(?P<user.id>[^/]+)/orders"),
            "/users/{user_id}/orders"
        );
        assert_eq!(ok("~/files/.*"), "/files");
        assert_eq!(ok("~/v1\\.0/ping$"), "=/v1.0/ping");
        let m = from_kong("~/users/(\\d+)$", false).unwrap();
        assert_eq!(m.pattern, "=/users/{p1}");
        assert!(m.loss.unwrap().contains("not only what"));
        let m = from_kong("~/a/?$", false).unwrap();
        assert_eq!(m.pattern, "=/a");
        assert!(m.loss.is_some());
        for bad in [
            "~/(a|b)",
            "~/v(?<n>\\d+)/x",
            "~/a.+/b",
            "~(?i)/a",
            "~/a/(",
            "~/a/$",
        ] {
            assert!(from_kong(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn legacy_paths_are_regexes_by_their_characters() {
        assert!(is_regex("/users/\\d+", true));
        assert!(!is_regex("/users/\\d+", false));
        assert!(!is_regex("/a-b_c.d~e/%20", true));
        assert_eq!(
            from_kong("/users/(?<id>[^/]+)$", true).unwrap().pattern,
            "=/users/{id}"
        );
        // In 3.0 the same text is a plain path, which has no pattern.
        assert!(from_kong("/users/(?<id>[^/]+)$", false).is_err());
    }

    #[test]
    fn patterns_go_back_to_the_same_kong_paths() {
        for p in [
            "/",
            "=/",
            "/a/b",
            "=/a/b",
            "/a/{id}/b",
            "=/a/{id}",
            "=/v1.0/x+y",
        ] {
            let k = to_kong(p);
            assert_eq!(from_kong(&k, false).unwrap().pattern, p, "{p} via {k}");
        }
        assert_eq!(to_kong("=/a/{id}"), "~/a/(?<id>[^/]+)$");
        assert_eq!(to_kong("/a"), "/a");
    }
}
