//! Version lifecycle on the wire: `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and
//! `Link` headers for deprecated versions, computed once per snapshot.

use http::{HeaderName, HeaderValue};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_model::{Api, Version, VersionStatus};

/// Headers added to every answer of a deprecated version.
pub fn deprecation_headers(
    api: &Api,
    version: &Version,
    now: OffsetDateTime,
) -> Vec<(HeaderName, HeaderValue)> {
    if version.status != VersionStatus::Deprecated {
        return Vec::new();
    }
    let mut out = Vec::new();
    let since = version
        .deprecated_at
        .as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .unwrap_or(now);
    push(
        &mut out,
        "deprecation",
        format!("@{}", since.unix_timestamp()),
    );
    if let Some(sunset) = version
        .sunset_at
        .as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
    {
        push(&mut out, "sunset", http_date(sunset));
    }
    let mut links = Vec::new();
    if let Some(successor) = successor_path(api, version) {
        links.push(format!("<{successor}>; rel=\"successor-version\""));
    }
    if let Some(notice) = &version.deprecation_notice {
        links.push(format!(
            "<{notice}>; rel=\"deprecation\"; type=\"text/html\""
        ));
    }
    if !links.is_empty() {
        push(&mut out, "link", links.join(", "));
    }
    out
}

/// A version's brownout windows as Unix seconds `[from, to)` (validated beforehand;
/// a window that does not parse is left out).
pub fn brownout_windows(version: &Version) -> Vec<(i64, i64)> {
    let parse = |t: &str| {
        OffsetDateTime::parse(t, &Rfc3339)
            .ok()
            .map(|t| t.unix_timestamp())
    };
    version
        .brownouts
        .iter()
        .filter_map(|b| Some((parse(&b.from)?, parse(&b.to)?)))
        .filter(|(f, t)| f < t)
        .collect()
}

/// The window of `windows` that holds `now`, if any, extended over windows that overlap or
/// touch it (so its end is when the version answers again).
pub fn in_brownout(windows: &[(i64, i64)], now: i64) -> Option<(i64, i64)> {
    let (from, mut to) = windows
        .iter()
        .copied()
        .find(|(f, t)| *f <= now && now < *t)?;
    // Each step moves `to` strictly later, so this ends within `windows.len()` steps.
    while let Some((_, t)) = windows.iter().copied().find(|(f, t)| *f <= to && *t > to) {
        to = t;
    }
    Some((from, to))
}

/// Where the successor version is served: its first route's path.
pub fn successor_path(api: &Api, version: &Version) -> Option<String> {
    let name = version.successor.as_deref()?;
    let succ = api.versions.iter().find(|v| v.version == name)?;
    let path = succ
        .routes
        .first()
        .map(|r| r.path.trim_start_matches('=').to_string());
    Some(path.unwrap_or_else(|| name.to_string()))
}

fn push(out: &mut Vec<(HeaderName, HeaderValue)>, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        out.push((HeaderName::from_static(name), v));
    }
}

/// IMF-fixdate, as HTTP dates are written: `Wed, 31 Mar 2027 00:00:00 GMT`.
pub fn http_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[usize::from(t.weekday().number_days_from_monday())],
        t.day(),
        MONTHS[usize::from(u8::from(t.month()) - 1)],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brownout_windows_chain_when_they_touch() {
        let w = [(100, 200), (200, 300), (250, 400), (500, 600)];
        assert_eq!(in_brownout(&w, 99), None);
        assert_eq!(in_brownout(&w, 100), Some((100, 400)));
        assert_eq!(in_brownout(&w, 450), None);
        assert_eq!(in_brownout(&w, 599), Some((500, 600)));
        assert_eq!(in_brownout(&w, 600), None);
    }

    #[test]
    fn http_dates() {
        let t = OffsetDateTime::parse("2027-03-31T00:00:00Z", &Rfc3339).unwrap();
        assert_eq!(http_date(t), "Wed, 31 Mar 2027 00:00:00 GMT");
    }
}
