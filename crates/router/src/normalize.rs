//! Request-path normalisation.
//!
//! This module owns the canonical form of a request path: the string that the
//! route table matches against and that the gateway forwards upstream. See
//! [`normalize_path`] for the exact rules. It also owns the percent-escape
//! handling shared with pattern parsing ([`decode_segment_into`]), so that
//! static pattern segments and request paths are canonicalised identically.

use std::borrow::Cow;

/// Why a request path was rejected by [`normalize_path`].
///
/// The `Display` text is meant to be shown to the client in a `400 Bad
/// Request` body, so it is short and does not echo the path back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is the empty string.
    #[error("request path is empty")]
    Empty,
    /// The path does not start with `/`.
    #[error("request path must start with '/'")]
    NotAbsolute,
    /// A `%` not followed by two hexadecimal digits.
    #[error(
        "malformed percent-escape at byte {offset} of the request path \
         (expected '%' followed by two hex digits)"
    )]
    BadEscape {
        /// Byte offset of the offending `%` in the raw path.
        offset: usize,
    },
    /// An encoded NUL byte (`%00`).
    #[error("request path contains an encoded NUL byte (%00) at byte {offset}")]
    Nul {
        /// Byte offset of the `%00` escape in the raw path.
        offset: usize,
    },
    /// A raw ASCII control character (a byte below `0x20`, or `0x7F`).
    #[error("request path contains a control character (0x{byte:02X}) at byte {offset}")]
    ControlChar {
        /// Byte offset of the control character in the raw path.
        offset: usize,
        /// The control byte itself.
        byte: u8,
    },
    /// A segment that is a dot segment once an encoded slash or a backslash inside it
    /// is read as a separator (`..%2F`, `%2E%2E%5C`, `..\`): servers that decode those
    /// would resolve it to another path than the one routed. The same for `..;` (a dot
    /// segment with a path parameter).
    #[error("request path hides a dot segment behind an encoded slash or a backslash")]
    EncodedTraversal,
}

/// Normalise the path component of a request URI (no query string).
///
/// Rules, applied in this order:
///
/// 1. The path must be non-empty ([`PathError::Empty`]) and start with `/`
///    ([`PathError::NotAbsolute`]).
/// 2. Raw control characters (bytes `< 0x20` and `0x7F`) are rejected
///    ([`PathError::ControlChar`]).
/// 3. Percent-escapes of *unreserved* characters (`A-Z a-z 0-9 - . _ ~`) are
///    decoded (`%41` → `A`, `%2e` → `.`); every other escape stays encoded
///    with upper-case hex digits (`%2f` → `%2F`), so an encoded slash never
///    becomes a segment separator. Malformed escapes are rejected
///    ([`PathError::BadEscape`]), as is `%00` ([`PathError::Nul`]).
/// 4. Runs of `/` collapse into one (`//a///b` → `/a/b`).
/// 5. Dot segments are removed as in RFC 3986 §5.2.4, after decoding and
///    never above the root (`/a/%2e%2e/b` → `/b`, `/../a` → `/a`).
/// 6. A trailing slash is kept (`/a/b/` stays `/a/b/`); a path whose last
///    segment is `.` or `..` ends with a slash (`/a/b/..` → `/a/`), again as
///    in RFC 3986. The root stays `/`.
///
/// Every other byte (including non-ASCII UTF-8) is passed through untouched.
///
/// # Return type
///
/// This returns [`Cow`] rather than `String`: the common case — a path that
/// is already canonical — is returned borrowed without allocating. Call
/// [`Cow::into_owned`] if an owned `String` is needed.
///
/// The output is idempotent: normalising a normalised path returns it
/// unchanged (and borrowed).
///
/// ```
/// use tollgate_router::normalize_path;
///
/// assert_eq!(normalize_path("/a//b/./c/../%7e%2f").unwrap(), "/a/b/~%2F");
/// assert!(normalize_path("/a%zz").is_err());
/// ```
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, PathError> {
    match raw.as_bytes().first() {
        None => return Err(PathError::Empty),
        Some(b'/') => {}
        Some(_) => return Err(PathError::NotAbsolute),
    }
    if is_canonical(raw.as_bytes()) {
        Ok(Cow::Borrowed(raw))
    } else {
        normalize_slow(raw).map(Cow::Owned)
    }
}

/// Whether a decoded segment holds a `.` or `..` piece between encoded slashes or
/// backslashes.
fn hides_dot_segment(seg: &str) -> bool {
    if !(seg.contains("%2F") || seg.contains("%5C") || seg.contains(['\\', ';'])) {
        return false;
    }
    // `..;x` is `..` to servers that read path parameters (RFC 2396 `;` segments).
    seg.replace("%2F", "/")
        .replace("%5C", "/")
        .replace('\\', "/")
        .split('/')
        .map(|piece| piece.split(';').next().unwrap_or(piece))
        .any(|piece| piece == "." || piece == "..")
}

/// Fast-path check: `raw` (which starts with `/`) contains no `%`, no
/// control character, no empty segment except a trailing one, and no `.` or
/// `..` segment — i.e. the slow path would return it unchanged.
fn is_canonical(raw: &[u8]) -> bool {
    let mut seg_start = 1;
    for i in 1..=raw.len() {
        let b = raw.get(i).copied();
        match b {
            Some(b'%') | Some(b'\\') | Some(b';') => return false,
            Some(c) if is_control(c) => return false,
            Some(b'/') | None => {
                let seg = raw.get(seg_start..i).unwrap_or_default();
                if seg == b"." || seg == b".." || (seg.is_empty() && b.is_some()) {
                    return false;
                }
                seg_start = i + 1;
            }
            Some(_) => {}
        }
    }
    true
}

/// Full normalisation; `raw` starts with `/`.
fn normalize_slow(raw: &str) -> Result<String, PathError> {
    let mut out = String::with_capacity(raw.len());
    // Whether the output must end with '/': the last input segment was
    // empty (trailing slash), `.` or `..`.
    let mut trailing = false;
    let mut seg_off = 1;
    for seg in raw.get(1..).unwrap_or_default().split('/') {
        let start = out.len();
        out.push('/');
        decode_segment_into(seg, seg_off, &mut out)?;
        seg_off += seg.len() + 1;
        if hides_dot_segment(out.get(start + 1..).unwrap_or_default()) {
            return Err(PathError::EncodedTraversal);
        }
        match out.get(start + 1..).unwrap_or_default() {
            "" | "." => {
                out.truncate(start);
                trailing = true;
            }
            ".." => {
                out.truncate(start);
                let parent = out.rfind('/').unwrap_or(0);
                out.truncate(parent);
                trailing = true;
            }
            _ => trailing = false,
        }
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Append one path segment (no `/` inside) to `out`, decoding escapes of
/// unreserved characters and upper-casing the hex digits of all others.
/// `base` is the byte offset of `seg` in the original input, for errors.
pub(crate) fn decode_segment_into(
    seg: &str,
    base: usize,
    out: &mut String,
) -> Result<(), PathError> {
    let bytes = seg.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            out.push_str(seg.get(run..i).unwrap_or_default());
            let hi = bytes.get(i + 1).copied().and_then(hex_val);
            let lo = bytes.get(i + 2).copied().and_then(hex_val);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::BadEscape { offset: base + i });
            };
            let value = (hi << 4) | lo;
            if value == 0 {
                return Err(PathError::Nul { offset: base + i });
            }
            if is_unreserved(value) {
                out.push(char::from(value));
            } else {
                out.push('%');
                out.push(char::from(HEX_UPPER[usize::from(hi)]));
                out.push(char::from(HEX_UPPER[usize::from(lo)]));
            }
            i += 3;
            run = i;
        } else if is_control(b) {
            return Err(PathError::ControlChar {
                offset: base + i,
                byte: b,
            });
        } else {
            i += 1;
        }
    }
    out.push_str(seg.get(run..).unwrap_or_default());
    Ok(())
}

const HEX_UPPER: [u8; 16] = *b"0123456789ABCDEF";

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 `unreserved`.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

#[cfg(test)]
mod tests;
