//! Masking of personal data in logs (on by default): e-mail addresses keep only their
//! domain, card numbers (13–19 digits passing the Luhn check) only their last four digits,
//! bearer tokens and Tollgate API keys their secret part. Configured JSON fields and query
//! parameters are redacted whole.

use std::borrow::Cow;

pub const REDACTED: &str = "[redacted]";

/// Query parameters that carry credentials, redacted whatever the configuration says.
pub const SECRET_PARAMS: &[&str] = &[
    "api_key",
    "apikey",
    "key",
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "password",
    "secret",
    "client_secret",
    "signature",
    "sig",
];

fn local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"._%+-".contains(&c)
}

fn domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

/// Masks e-mail addresses, card numbers, bearer tokens and API keys in free text.
pub fn mask_text(s: &str) -> Cow<'_, str> {
    // One branch-free pass tells which masks could apply; most text (paths, user agents)
    // needs none.
    let mut seen = 0u8;
    let mut digits = 0usize;
    for c in s.bytes() {
        seen |= TRIGGERS[usize::from(c)];
        digits += usize::from(c.wrapping_sub(b'0') < 10);
    }
    let mut out = Cow::Borrowed(s);
    if seen & AT != 0 {
        out = Cow::Owned(mask_emails(&out));
    }
    if digits >= 13 {
        out = Cow::Owned(mask_cards(&out));
    }
    if seen & B != 0 && (out.contains("Bearer ") || out.contains("bearer ")) {
        out = Cow::Owned(mask_bearer(&out));
    }
    if seen & UNDERSCORE != 0 && out.contains("tg_") {
        out = Cow::Owned(mask_keys(&out));
    }
    out
}

const AT: u8 = 1;
const B: u8 = 2;
const UNDERSCORE: u8 = 4;

/// The bytes that can start something [`mask_text`] masks.
static TRIGGERS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'@' as usize] = AT;
    t[b'B' as usize] = B;
    t[b'b' as usize] = B;
    t[b'_' as usize] = UNDERSCORE;
    t
};

fn mask_emails(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'@' {
            let mut start = i;
            while start > last && local_char(b[start - 1]) {
                start -= 1;
            }
            let mut end = i + 1;
            while end < b.len() && domain_char(b[end]) {
                end += 1;
            }
            // Trailing dots and dashes are punctuation, not the domain.
            while end > i + 1 && matches!(b[end - 1], b'.' | b'-') {
                end -= 1;
            }
            let domain = &s[i + 1..end];
            if start < i && domain.contains('.') && !domain.starts_with('.') {
                out.push_str(&s[last..start]);
                out.push_str("***@");
                out.push_str(domain);
                last = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&s[last..]);
    out
}

/// Luhn check over digits.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn mask_cards(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        // A run of digits, with single spaces or dashes between groups.
        let mut digits = Vec::new();
        let mut end = i;
        let mut j = i;
        while j < b.len() {
            if b[j].is_ascii_digit() {
                digits.push(b[j] - b'0');
                j += 1;
                end = j;
            } else if matches!(b[j], b' ' | b'-') && j + 1 < b.len() && b[j + 1].is_ascii_digit() {
                j += 1;
            } else {
                break;
            }
            if digits.len() > 19 {
                break;
            }
        }
        if (13..=19).contains(&digits.len()) && luhn(&digits) {
            out.push_str(&s[last..i]);
            for (k, c) in s[i..end].bytes().enumerate() {
                let digits_after = s[i + k..end].bytes().filter(u8::is_ascii_digit).count();
                out.push(if c.is_ascii_digit() && digits_after > 4 {
                    '*'
                } else {
                    c as char
                });
            }
            last = end;
        }
        i = end.max(i + 1);
    }
    out.push_str(&s[last..]);
    out
}

fn mask_bearer(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let at = rest.find("Bearer ").or_else(|| rest.find("bearer "));
        let Some(at) = at else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at + 7]);
        let token = &rest[at + 7..];
        let end = token
            .find(|c: char| c.is_whitespace() || c == '"' || c == ',')
            .unwrap_or(token.len());
        out.push_str(if end > 0 { REDACTED } else { "" });
        rest = &token[end..];
    }
}

/// `tg_<id>_<secret>` keeps its id: `tg_<id>_[redacted]`.
fn mask_keys(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("tg_") {
        out.push_str(&rest[..at]);
        let cand = &rest[at..];
        let end = cand
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(cand.len());
        let word = &cand[..end];
        match word[3..].split_once('_') {
            Some((id, secret)) if !id.is_empty() && secret.len() >= 8 => {
                out.push_str("tg_");
                out.push_str(id);
                out.push('_');
                out.push_str(REDACTED);
            }
            _ => out.push_str(word),
        }
        rest = &cand[end..];
    }
    out.push_str(rest);
    out
}

/// Masks a JSON document: fields named in `fields` (any depth, case-insensitive) are
/// redacted whole; every other string is masked as text.
pub fn mask_json(v: &mut serde_json::Value, fields: &[String]) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if fields.iter().any(|f| f.eq_ignore_ascii_case(k)) {
                    *child = serde_json::Value::String(REDACTED.to_string());
                } else {
                    mask_json(child, fields);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|c| mask_json(c, fields)),
        serde_json::Value::String(s) => {
            if let Cow::Owned(m) = mask_text(s) {
                *s = m;
            }
        }
        _ => {}
    }
}

/// Masks a query string: credential parameters and `fields` are redacted, other values
/// masked as text. Pairs keep their order and encoding.
pub fn mask_query<'a>(q: &'a str, fields: &[String]) -> Cow<'a, str> {
    let mut out: Option<String> = None;
    let mut from = 0;
    for pair in q.split('&') {
        let start = pair.as_ptr() as usize - q.as_ptr() as usize;
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let secret = SECRET_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name))
            || fields.iter().any(|f| f.eq_ignore_ascii_case(name));
        let masked = if secret && !value.is_empty() {
            Cow::Borrowed(REDACTED)
        } else if value.contains("%40") {
            // `%40` is an encoded `@`.
            match mask_text(&value.replace("%40", "@")) {
                Cow::Owned(m) => Cow::Owned(m),
                Cow::Borrowed(_) => continue,
            }
        } else {
            match mask_text(value) {
                Cow::Owned(m) => Cow::Owned(m),
                Cow::Borrowed(_) => continue,
            }
        };
        // Pairs before this one are copied as they are; this one's value is replaced.
        let o = out.get_or_insert_with(|| String::with_capacity(q.len() + 16));
        o.push_str(&q[from..start]);
        o.push_str(name);
        o.push('=');
        o.push_str(&masked);
        from = start + pair.len();
    }
    match out {
        Some(mut o) => {
            o.push_str(&q[from..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(q),
    }
}

/// Headers whose values are credentials: redacted whatever the configuration says
/// (`Authorization` keeps its scheme).
pub fn mask_header<'a>(name: &str, value: &'a str, extra: &[String]) -> Cow<'a, str> {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    if is("authorization") || is("proxy-authorization") {
        return Cow::Owned(match value.split_once(' ') {
            Some((scheme, _)) => format!("{scheme} {REDACTED}"),
            None => REDACTED.to_string(),
        });
    }
    let secret = [
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
    ];
    if secret.iter().any(|n| is(n)) || extra.iter().any(|e| is(e)) {
        return Cow::Borrowed(REDACTED);
    }
    mask_text(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_keep_their_domain() {
        assert_eq!(
            mask_text("from jane.doe+x@example.co.uk."),
            "from ***@example.co.uk."
        );
        assert_eq!(
            mask_text("a@b.io and c_d@e-f.org"),
            "***@b.io and ***@e-f.org"
        );
        // Not addresses: left alone.
        for s in ["@handle", "user@localhost", "a@.com", "50 @ 3.5"] {
            assert_eq!(mask_text(s), s, "{s}");
        }
    }

    #[test]
    fn card_numbers_are_masked_only_when_they_pass_luhn() {
        // Public test card numbers.
        assert_eq!(
            mask_text("card 4111111111111111 ok"),
            "card ************1111 ok"
        );
        assert_eq!(mask_text("4111 1111 1111 1111"), "**** **** **** 1111");
        assert_eq!(mask_text("5500-0000-0000-0004"), "****-****-****-0004");
        assert_eq!(mask_text("378282246310005"), "***********0005");
        // Fails Luhn, or too short / long: not a card.
        assert_eq!(mask_text("4111111111111112"), "4111111111111112");
        assert_eq!(mask_text("order 1234567890"), "order 1234567890");
        assert_eq!(
            mask_text("12345678901234567890123"),
            "12345678901234567890123"
        );
        assert!(luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
    }

    #[test]
    fn tokens_and_keys_lose_their_secret() {
        assert_eq!(mask_text("Bearer eyJhbGciOi.x.y"), "Bearer [redacted]");
        assert_eq!(
            mask_text("key tg_ab12cd_0123456789abcdef used"),
            "key tg_ab12cd_[redacted] used"
        );
        assert_eq!(mask_text("tg_short"), "tg_short");
    }

    #[test]
    fn json_fields_and_query_parameters() {
        let mut v = serde_json::json!({
            "user": {"email": "a@b.io", "SSN": "123-45-6789", "cards": ["4111111111111111"]},
            "note": "call me"
        });
        mask_json(&mut v, &["ssn".to_string()]);
        assert_eq!(
            v,
            serde_json::json!({
                "user": {"email": "***@b.io", "SSN": "[redacted]", "cards": ["************1111"]},
                "note": "call me"
            })
        );
        assert_eq!(
            mask_query(
                "q=shoes&api_key=abc&to=jo%40x.com&dob=1990",
                &["dob".to_string()]
            ),
            "q=shoes&api_key=[redacted]&to=***@x.com&dob=[redacted]"
        );
        assert_eq!(
            mask_header("Authorization", "Bearer abc", &[]),
            "Bearer [redacted]"
        );
        assert_eq!(mask_header("x-api-key", "k", &[]), "[redacted]");
        assert_eq!(
            mask_header("x-customer", "c1", &["X-Customer".to_string()]),
            "[redacted]"
        );
        assert_eq!(mask_header("user-agent", "curl/8", &[]), "curl/8");
    }
}
