//! The access log: one JSON line per answered request of an API that turns it on, with
//! personal data masked (see [`crate::mask`]). The request path hands a [`Record`] over
//! without waiting; a writer task masks, formats and appends. When the writer falls behind,
//! records are dropped and counted (`tollgate_access_log_dropped_total`). The file is
//! rotated at a size limit, keeping five old files.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use metrics::Counter;
use tokio::io::AsyncWriteExt;

use crate::mask;

/// What an API's access log includes beyond the basics, and what it masks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSpec {
    /// Request headers to include (lower case).
    pub headers: Vec<String>,
    /// Extra headers whose values are redacted.
    pub mask_headers: Vec<String>,
    /// JSON fields and query parameters redacted whole.
    pub mask_fields: Vec<String>,
    /// Include the request body (its first [`BODY_LIMIT`] bytes, when JSON).
    pub body: bool,
}

/// Most request body bytes an access log line holds.
pub const BODY_LIMIT: usize = 8 * 1024;

/// One answered request. What it holds of the request is shared with it (method, URI and
/// header values are reference-counted), so capturing costs no copies.
#[derive(Debug)]
pub struct Record {
    pub at: SystemTime,
    pub request_id: http::HeaderValue,
    pub api: Arc<str>,
    pub version: Arc<str>,
    pub route: Arc<str>,
    pub method: http::Method,
    /// As the client sent it (path and query).
    pub uri: http::Uri,
    pub status: u16,
    pub total_us: u64,
    pub upstream_us: Option<u64>,
    pub client_ip: IpAddr,
    pub app: Option<Arc<str>>,
    /// Values of `spec.headers`, by their index there.
    pub headers: Vec<(usize, http::HeaderValue)>,
    /// The body's first bytes, and whether there was more.
    pub body: Option<(Vec<u8>, bool)>,
    pub spec: Arc<LogSpec>,
}

fn rfc3339_ms(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Appends `v` as a JSON string.
fn json_str(out: &mut String, v: &str) {
    out.push('"');
    let mut from = 0;
    for (i, b) in v.bytes().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&v[from..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        from = i + 1;
    }
    out.push_str(&v[from..]);
    out.push('"');
}

/// `,"key":` before a field.
fn key(out: &mut String, k: &str) {
    out.push_str(",\"");
    out.push_str(k);
    out.push_str("\":");
}

/// Microseconds as milliseconds with three decimals (`1.5`, `0.042`).
fn millis(out: &mut String, us: u64) {
    let _ = write!(out, "{}", us / 1000);
    let frac = us % 1000;
    if frac != 0 {
        let digits = format!("{frac:03}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// The JSON line of a record, masked. Written straight into a string (no value tree): this
/// runs once per logged request.
pub fn line(r: &Record) -> String {
    let mut out = String::with_capacity(320);
    line_into(&mut out, r);
    out
}

/// [`line`] into a reused buffer.
pub fn line_into(out: &mut String, r: &Record) {
    out.push_str("{\"ts\":");
    json_str(out, &rfc3339_ms(r.at));
    key(out, "request_id");
    json_str(out, &String::from_utf8_lossy(r.request_id.as_bytes()));
    key(out, "api");
    json_str(out, &r.api);
    key(out, "version");
    json_str(out, &r.version);
    key(out, "route");
    json_str(out, &r.route);
    key(out, "method");
    json_str(out, r.method.as_str());
    key(out, "path");
    let path = r.uri.path();
    if path.contains("%40") {
        json_str(out, &mask::mask_text(&path.replace("%40", "@")));
    } else {
        json_str(out, &mask::mask_text(path));
    }
    if let Some(q) = r.uri.query() {
        key(out, "query");
        json_str(out, &mask::mask_query(q, &r.spec.mask_fields));
    }
    key(out, "status");
    let _ = write!(out, "{}", r.status);
    key(out, "duration_ms");
    millis(out, r.total_us);
    if let Some(u) = r.upstream_us {
        key(out, "upstream_ms");
        millis(out, u);
    }
    key(out, "client_ip");
    out.push('"');
    let _ = write!(out, "{}", r.client_ip);
    out.push('"');
    if let Some(app) = &r.app {
        key(out, "app");
        json_str(out, app);
    }
    if !r.headers.is_empty() {
        key(out, "headers");
        out.push('{');
        for (i, (index, value)) in r.headers.iter().enumerate() {
            let Some(name) = r.spec.headers.get(*index) else {
                continue;
            };
            if i > 0 {
                out.push(',');
            }
            json_str(out, name);
            out.push(':');
            let value = String::from_utf8_lossy(value.as_bytes());
            json_str(out, &mask::mask_header(name, &value, &r.spec.mask_headers));
        }
        out.push('}');
    }
    if let Some((bytes, more)) = &r.body {
        match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(mut body) => {
                mask::mask_json(&mut body, &r.spec.mask_fields);
                key(out, "body");
                out.push_str(&body.to_string());
            }
            // Not JSON, or cut at the limit: only its size is logged.
            Err(_) if !bytes.is_empty() => {
                key(out, "body_bytes");
                let _ = write!(out, "{}", bytes.len());
                if *more {
                    key(out, "body_truncated");
                    out.push_str("true");
                }
            }
            Err(_) => {}
        }
    }
    out.push('}');
}

/// Where lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    File(PathBuf),
    Stdout,
}

/// Records waiting to be written, at most.
const QUEUE: usize = 16_384;
/// Old files kept on rotation.
const KEEP: usize = 5;

/// The access log of one node.
pub struct AccessLog {
    tx: OnceLock<tokio::sync::mpsc::Sender<Record>>,
    dropped: Counter,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").finish_non_exhaustive()
    }
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            tx: OnceLock::new(),
            dropped: metrics::counter!("tollgate_access_log_dropped_total"),
        }
    }
}

impl AccessLog {
    /// Whether a writer runs (records are worth capturing).
    pub fn is_on(&self) -> bool {
        self.tx.get().is_some()
    }

    /// Hands a record over without waiting; a full queue drops it (counted).
    pub fn record(&self, r: Record) {
        if let Some(tx) = self.tx.get()
            && tx.try_send(r).is_err()
        {
            self.dropped.increment(1);
        }
    }

    /// Starts the writer. A file is appended to and rotated past `max_bytes`.
    pub async fn start(
        &self,
        target: Target,
        max_bytes: u64,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let mut out = Output::open(target, max_bytes).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Record>(QUEUE);
        let _ = self.tx.set(tx);
        Ok(tokio::spawn(async move {
            let mut batch = Vec::with_capacity(256);
            let mut text = String::with_capacity(1024);
            let mut failing = false;
            while rx.recv_many(&mut batch, 256).await > 0 {
                let mut result = Ok(());
                for r in batch.drain(..) {
                    text.clear();
                    line_into(&mut text, &r);
                    text.push('\n');
                    if result.is_ok() {
                        result = out.write(text.as_bytes()).await;
                    }
                }
                if result.is_ok() {
                    result = out.flush().await;
                }
                match result {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("access log written again");
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "cannot write the access log; lines are lost until it works again");
                    }
                    Err(_) => {}
                }
            }
            let _ = out.flush().await;
        }))
    }
}

struct Output {
    target: Target,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    stdout: tokio::io::Stdout,
    size: u64,
    max: u64,
}

impl Output {
    async fn open(target: Target, max: u64) -> std::io::Result<Output> {
        let mut o = Output {
            target,
            file: None,
            stdout: tokio::io::stdout(),
            size: 0,
            max,
        };
        o.reopen().await?;
        Ok(o)
    }

    async fn reopen(&mut self) -> std::io::Result<()> {
        if let Target::File(path) = &self.target {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir).await?;
            }
            let mut options = tokio::fs::OpenOptions::new();
            options.create(true).append(true);
            // Masked, but still about people's requests: readable by the owner only.
            #[cfg(unix)]
            options.mode(0o600);
            let file = options.open(path).await?;
            self.size = file.metadata().await?.len();
            self.file = Some(tokio::io::BufWriter::with_capacity(64 * 1024, file));
        }
        Ok(())
    }

    /// Appends one line, rotating first when the file is full.
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.file.is_some() && self.size > 0 && self.size + bytes.len() as u64 > self.max {
            self.rotate().await?;
        }
        match &mut self.file {
            Some(f) => {
                f.write_all(bytes).await?;
                self.size += bytes.len() as u64;
            }
            None => self.stdout.write_all(bytes).await?,
        }
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush().await,
            None => self.stdout.flush().await,
        }
    }

    /// `access.log` → `access.log.1` → … → `access.log.5` (the oldest is removed).
    async fn rotate(&mut self) -> std::io::Result<()> {
        let Target::File(path) = self.target.clone() else {
            return Ok(());
        };
        if let Some(mut f) = self.file.take() {
            f.flush().await?;
        }
        let name = |n: usize| {
            let mut p = path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        let _ = tokio::fs::remove_file(name(KEEP)).await;
        for n in (1..KEEP).rev() {
            let _ = tokio::fs::rename(name(n), name(n + 1)).await;
        }
        tokio::fs::rename(&path, name(1)).await?;
        self.reopen().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record(spec: LogSpec) -> Record {
        let spec = LogSpec {
            headers: vec![
                "authorization".into(),
                "user-agent".into(),
                "x-customer".into(),
            ],
            ..spec
        };
        Record {
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123),
            request_id: http::HeaderValue::from_static("r1"),
            api: Arc::from("orders"),
            version: Arc::from("v1"),
            route: Arc::from("/v1/orders"),
            method: http::Method::POST,
            uri: "/v1/orders/jane%40example.com?api_key=abc&q=4111111111111111"
                .parse()
                .unwrap(),
            status: 201,
            total_us: 1500,
            upstream_us: Some(1200),
            client_ip: "203.0.113.9".parse().unwrap(),
            app: Some(Arc::from("web")),
            headers: vec![
                (0, http::HeaderValue::from_static("Bearer secret-token")),
                (1, http::HeaderValue::from_static("curl/8")),
                (2, http::HeaderValue::from_static("c-42")),
            ],
            body: Some((br#"{"email":"j@x.io","ssn":"123","qty":2}"#.to_vec(), false)),
            spec: Arc::new(spec),
        }
    }

    #[test]
    fn a_line_is_masked_json() {
        let spec = LogSpec {
            headers: vec![],
            mask_headers: vec!["x-customer".into()],
            mask_fields: vec!["ssn".into()],
            body: true,
        };
        let v: serde_json::Value = serde_json::from_str(&line(&record(spec))).unwrap();
        assert_eq!(v["ts"], "2026-11-18T11:06:40.123Z");
        assert_eq!(v["path"], "/v1/orders/***@example.com");
        assert_eq!(v["query"], "api_key=[redacted]&q=************1111");
        assert_eq!(v["headers"]["authorization"], "Bearer [redacted]");
        assert_eq!(v["headers"]["user-agent"], "curl/8");
        assert_eq!(v["headers"]["x-customer"], "[redacted]");
        assert_eq!(
            v["body"],
            serde_json::json!({"email": "***@x.io", "ssn": "[redacted]", "qty": 2})
        );
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["upstream_ms"], 1.2);
        assert_eq!(v["app"], "web");
        assert!(!line(&record(LogSpec::default())).contains("secret-token"));
    }

    #[test]
    fn strings_are_escaped_and_times_exact() {
        let mut r = record(LogSpec::default());
        r.uri = "/a%22b%5Cc".parse().unwrap();
        r.total_us = 42;
        r.upstream_us = Some(2000);
        let v: serde_json::Value = serde_json::from_str(&line(&r)).unwrap();
        assert_eq!(v["path"], "/a%22b%5Cc");
        let mut out = String::new();
        json_str(&mut out, "a\"b\\c\n\u{1}");
        assert_eq!(out, "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(v["duration_ms"], 0.042);
        assert_eq!(v["upstream_ms"], 2);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(
            rfc3339_ms(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_ms(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[tokio::test]
    async fn files_rotate_past_their_size_and_keep_five() {
        let dir = std::env::temp_dir().join(format!("tg-accesslog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let log = AccessLog::default();
        let task = log.start(Target::File(path.clone()), 2_000).await.unwrap();
        for _ in 0..100 {
            log.record(record(LogSpec::default()));
            tokio::task::yield_now().await;
        }
        drop(log);
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        files.sort();
        let lines: usize = files
            .iter()
            .map(|f| {
                std::fs::read_to_string(dir.join(f))
                    .unwrap()
                    .lines()
                    .count()
            })
            .sum();
        assert!(lines > 20, "the newest lines are kept: {lines}");
        assert_eq!(
            files,
            [
                "access.log",
                "access.log.1",
                "access.log.2",
                "access.log.3",
                "access.log.4",
                "access.log.5"
            ]
        );
        for f in &files {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(text.len() <= 2_000, "{f} has {} bytes", text.len());
            for l in text.lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["api"], "orders");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
