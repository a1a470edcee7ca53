//! The access log: one JSON line per answered request of an API that turns it on, with
//! personal data masked (see [`crate::mask`]). The thread that answered the request masks
//! and formats its line into a buffer of its own (a lock no other request thread takes);
//! a writer thread takes every buffer's lines each few milliseconds and appends them. No
//! record crosses threads, and nothing is allocated per line. When the writer falls behind
//! and a buffer reaches its limit, lines are dropped and counted
//! (`tollgate_access_log_dropped_total`). The file is rotated at a size limit, keeping five
//! old files. Lines of different threads reach the file in blocks, so their time stamps are
//! ordered within a thread, not across threads.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use metrics::Counter;

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

/// Appends `n` in decimal (without going through `fmt`: this runs several times a line).
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in &digits[at..] {
        out.push(char::from(*d));
    }
}

/// Microseconds as milliseconds with three decimals (`1.5`, `0.042`).
fn millis(out: &mut String, us: u64) {
    push_u64(out, us / 1000);
    let mut frac = us % 1000;
    if frac != 0 {
        out.push('.');
        let mut width = 3;
        while frac.is_multiple_of(10) {
            frac /= 10;
            width -= 1;
        }
        let mut div = 10u64.pow(width - 1);
        while div > 0 {
            out.push(char::from(b'0' + (frac / div % 10) as u8));
            div /= 10;
        }
    }
}

/// Appends an address as text (IPv4 without `fmt`).
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u64(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// The JSON line of a record, masked. Written straight into a string (no value tree): this
/// runs once per logged request.
pub fn line(r: &Record) -> String {
    let mut out = String::with_capacity(320);
    line_with(&mut out, r, &mut Clock::default());
    out
}

fn line_with(out: &mut String, r: &Record, clock: &mut Clock) {
    out.push_str("{\"ts\":");
    clock.stamp(out, r.at);
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
    push_u64(out, u64::from(r.status));
    key(out, "duration_ms");
    millis(out, r.total_us);
    if let Some(u) = r.upstream_us {
        key(out, "upstream_ms");
        millis(out, u);
    }
    key(out, "client_ip");
    out.push('"');
    push_ip(out, r.client_ip);
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

/// Bytes of formatted lines one thread may hold before the writer takes them; past it,
/// lines are dropped (the writer has fallen far behind).
const PENDING_MAX: usize = 8 << 20;

/// One request thread's formatted lines, waiting for the writer.
#[derive(Default)]
struct Pending {
    text: String,
    clock: Clock,
}

type Buffers = Arc<Mutex<Vec<Arc<Mutex<Pending>>>>>;

thread_local! {
    /// This thread's buffer in each access log it writes to, by the log's id.
    static LOCAL: std::cell::RefCell<Vec<(u64, Arc<Mutex<Pending>>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Old files kept on rotation.
const KEEP: usize = 5;
/// How often the writer wakes to take what has queued. The request path never wakes it:
/// handing a record over is one push onto a bounded queue.
const TICK: Duration = Duration::from_millis(20);
/// Longest a written line waits in the writer's buffer before it reaches the file.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// The access log of one node.
pub struct AccessLog {
    started: OnceLock<()>,
    id: u64,
    buffers: Buffers,
    dropped: Counter,
    stop: Arc<AtomicBool>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Rotated files older than this many seconds are deleted (0: kept, up to [`KEEP`]).
    keep_rotated: Arc<AtomicU64>,
}

/// How often the writer looks for rotated files past their retention.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Deletes the rotated files of `path` (`path.1` … `path.KEEP`) last changed more than
/// `older_than` ago. Answers how many it deleted.
pub fn prune_rotated(path: &std::path::Path, older_than: Duration) -> usize {
    let now = SystemTime::now();
    let mut deleted = 0;
    for n in 1..=KEEP {
        let mut name = path.to_path_buf().into_os_string();
        name.push(format!(".{n}"));
        let name = PathBuf::from(name);
        let old = std::fs::metadata(&name)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > older_than);
        if old && std::fs::remove_file(&name).is_ok() {
            deleted += 1;
        }
    }
    deleted
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").finish_non_exhaustive()
    }
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            started: OnceLock::new(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            buffers: Arc::default(),
            dropped: metrics::counter!("tollgate_access_log_dropped_total"),
            stop: Arc::default(),
            writer: Mutex::new(None),
            keep_rotated: Arc::default(),
        }
    }
}

impl AccessLog {
    /// Sets how long rotated files are kept (the configuration's
    /// `settings.retention.access_log`); the writer deletes older ones every few minutes.
    pub fn set_retention(&self, keep: Duration) {
        self.keep_rotated.store(keep.as_secs(), Ordering::Relaxed);
    }

    /// Whether a writer runs (records are worth capturing).
    pub fn is_on(&self) -> bool {
        self.started.get().is_some()
    }

    /// Formats a record's line into this thread's buffer; a full buffer drops it
    /// (counted), and so does a closed log.
    pub fn record(&self, r: Record) {
        if !self.is_on() {
            return;
        }
        if self.stop.load(Ordering::Relaxed) {
            self.dropped.increment(1);
            return;
        }
        // The buffer is borrowed in place: no reference count changes per line.
        let full = LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            let at = match local.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    let p = Arc::new(Mutex::new(Pending::default()));
                    self.buffers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(p.clone());
                    local.push((self.id, p));
                    local.len() - 1
                }
            };
            let mut p = local[at].1.lock().unwrap_or_else(|e| e.into_inner());
            if p.text.len() >= PENDING_MAX {
                return true;
            }
            let Pending { text, clock } = &mut *p;
            line_with(text, &r, clock);
            text.push('\n');
            false
        });
        if full {
            self.dropped.increment(1);
        }
    }

    /// Starts the writer, a thread of its own: it wakes every [`TICK`], takes the lines
    /// every request thread has formatted, and writes them out when its buffer is full or
    /// [`FLUSH_EVERY`] has passed. A file is appended to and rotated past `max_bytes`.
    pub fn start(&self, target: Target, max_bytes: u64) -> std::io::Result<()> {
        let mut out = Output::open(target, max_bytes)?;
        if self.started.set(()).is_err() {
            return Err(std::io::Error::other("the access log is already started"));
        }
        let buffers = self.buffers.clone();
        let stop = self.stop.clone();
        let keep_rotated = self.keep_rotated.clone();
        let writer = std::thread::Builder::new()
            .name("tollgate-access-log".into())
            .spawn(move || {
                let mut spare = String::new();
                let mut failing = false;
                let mut flushed = Instant::now();
                let mut pruned = Instant::now();
                loop {
                    let stopping = stop.load(Ordering::Acquire);
                    let mut result = Ok(());
                    let list: Vec<Arc<Mutex<Pending>>> =
                        buffers.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    for pending in list {
                        {
                            let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
                            if p.text.is_empty() {
                                continue;
                            }
                            std::mem::swap(&mut p.text, &mut spare);
                        }
                        // Line by line, so the file rotates between lines at its limit.
                        for line in spare.split_inclusive('\n') {
                            if result.is_ok() {
                                result = out.write(line.as_bytes());
                            }
                        }
                        spare.clear();
                    }
                    if result.is_ok() && (stopping || flushed.elapsed() >= FLUSH_EVERY) {
                        result = out.flush();
                        flushed = Instant::now();
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
                    if stopping {
                        return;
                    }
                    if pruned.elapsed() >= PRUNE_EVERY {
                        pruned = Instant::now();
                        let keep = keep_rotated.load(Ordering::Relaxed);
                        if let (Some(path), true) = (out.path(), keep > 0) {
                            let n = prune_rotated(path, Duration::from_secs(keep));
                            if n > 0 {
                                tracing::info!(files = n, "rotated access log files past their retention deleted");
                            }
                        }
                    }
                    std::thread::sleep(TICK);
                }
            })?;
        *self.writer.lock().unwrap_or_else(|p| p.into_inner()) = Some(writer);
        Ok(())
    }

    /// Writes what is queued, flushes and stops the writer (on shutdown). Blocks for at
    /// most one tick plus the writing.
    pub fn close(&self) {
        self.stop.store(true, Ordering::Release);
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = writer {
            let _ = w.join();
        }
    }
}

impl Drop for AccessLog {
    /// A log dropped without [`AccessLog::close`] still stops its writer (which writes what
    /// is queued first).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The writer's time stamp cache: the formatted date and time of the last second seen.
#[derive(Default)]
struct Clock {
    second: u64,
    prefix: String,
}

impl Clock {
    /// `t` as RFC 3339 UTC with milliseconds, formatting the date once per second.
    fn stamp(&mut self, out: &mut String, t: SystemTime) {
        let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        if self.prefix.is_empty() || self.second != d.as_secs() {
            self.second = d.as_secs();
            let full = rfc3339_ms(t);
            self.prefix.clear();
            self.prefix.push_str(&full[..full.len() - 5]);
        }
        out.push('"');
        out.push_str(&self.prefix);
        let ms = d.subsec_millis();
        out.push('.');
        out.push(char::from(b'0' + (ms / 100) as u8));
        out.push(char::from(b'0' + (ms / 10 % 10) as u8));
        out.push(char::from(b'0' + (ms % 10) as u8));
        out.push_str("Z\"");
    }
}

struct Output {
    target: Target,
    file: Option<std::io::BufWriter<std::fs::File>>,
    stdout: std::io::BufWriter<std::io::Stdout>,
    size: u64,
    max: u64,
}

impl Output {
    fn open(target: Target, max: u64) -> std::io::Result<Output> {
        let mut o = Output {
            target,
            file: None,
            stdout: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
            size: 0,
            max,
        };
        o.reopen()?;
        Ok(o)
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        if let Target::File(path) = &self.target {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            // Masked, but still about people's requests: readable by the owner only.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(path)?;
            self.size = file.metadata()?.len();
            self.file = Some(std::io::BufWriter::with_capacity(64 * 1024, file));
        }
        Ok(())
    }

    /// Appends one line, rotating first when the file is full.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.file.is_some() && self.size > 0 && self.size + bytes.len() as u64 > self.max {
            self.rotate()?;
        }
        match &mut self.file {
            Some(f) => {
                f.write_all(bytes)?;
                self.size += bytes.len() as u64;
            }
            None => self.stdout.write_all(bytes)?,
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => self.stdout.flush(),
        }
    }

    /// `access.log` → `access.log.1` → … → `access.log.5` (the oldest is removed).
    /// The file written to, if the log goes to a file.
    fn path(&self) -> Option<&std::path::Path> {
        match &self.target {
            Target::File(p) => Some(p),
            Target::Stdout => None,
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let Target::File(path) = self.target.clone() else {
            return Ok(());
        };
        if let Some(mut f) = self.file.take() {
            f.flush()?;
        }
        let name = |n: usize| {
            let mut p = path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        let _ = std::fs::remove_file(name(KEEP));
        for n in (1..KEEP).rev() {
            let _ = std::fs::rename(name(n), name(n + 1));
        }
        std::fs::rename(&path, name(1))?;
        self.reopen()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rotated_files_past_retention_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "current").unwrap();
        for n in 1..=3 {
            std::fs::write(dir.path().join(format!("access.log.{n}")), "old").unwrap();
        }
        // Nothing is older than an hour: all kept.
        assert_eq!(prune_rotated(&path, Duration::from_secs(3600)), 0);
        std::thread::sleep(Duration::from_millis(50));
        // Older than 10 ms: the rotated ones go, the current file stays.
        assert_eq!(prune_rotated(&path, Duration::from_millis(10)), 3);
        assert!(path.exists());
        assert!(!dir.path().join("access.log.1").exists());
    }

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

    /// The writer's cost per line, for the access log benchmark's reading:
    /// `cargo test --release -p tollgate-insight -- --ignored line_cost --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn line_cost() {
        let spec = LogSpec {
            headers: vec!["user-agent".into()],
            ..LogSpec::default()
        };
        let r = Record {
            at: SystemTime::now(),
            request_id: http::HeaderValue::from_static("01JEXAMPLE7Q9ZJ3W8N4T6R2V5"),
            api: Arc::from("bench"),
            version: Arc::from("v1"),
            route: Arc::from("/"),
            method: http::Method::GET,
            uri: "/items/42?page=2".parse().unwrap(),
            status: 200,
            total_us: 310,
            upstream_us: Some(250),
            client_ip: "127.0.0.1".parse().unwrap(),
            app: None,
            headers: vec![(
                0,
                http::HeaderValue::from_static("wrk/4.1 (bench/analytics.sh)"),
            )],
            body: None,
            spec: Arc::new(spec),
        };
        let mut clock = Clock::default();
        let mut text = String::with_capacity(1024);
        let n = 1_000_000u32;
        let started = std::time::Instant::now();
        let mut bytes = 0;
        for _ in 0..n {
            text.clear();
            line_with(&mut text, &r, &mut clock);
            bytes += text.len();
        }
        let per = started.elapsed() / n;
        println!("{per:?} per line ({} bytes)", bytes / n as usize);
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
    fn the_cached_clock_agrees_with_the_full_format() {
        let mut clock = Clock::default();
        for ms in [
            0u64,
            1,
            999,
            1000,
            1001,
            59_999,
            86_399_999,
            86_400_000,
            951_782_400_007,
        ] {
            let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_000 + ms);
            let mut out = String::new();
            clock.stamp(&mut out, t);
            assert_eq!(out, format!("\"{}\"", rfc3339_ms(t)), "at +{ms} ms");
        }
    }

    #[test]
    fn numbers_and_addresses_are_written_exactly() {
        for (us, text) in [
            (0, "0"),
            (1, "0.001"),
            (10, "0.01"),
            (100, "0.1"),
            (1000, "1"),
            (1500, "1.5"),
            (1234, "1.234"),
            (1230, "1.23"),
            (u64::MAX, "18446744073709551.615"),
        ] {
            let mut out = String::new();
            millis(&mut out, us);
            assert_eq!(out, text);
        }
        for ip in ["0.0.0.0", "203.0.113.255", "::1", "2001:db8::7"] {
            let mut out = String::new();
            push_ip(&mut out, ip.parse().unwrap());
            assert_eq!(out, ip);
        }
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

    #[test]
    fn files_rotate_past_their_size_and_keep_five() {
        let dir = std::env::temp_dir().join(format!("tg-accesslog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let log = AccessLog::default();
        log.start(Target::File(path.clone()), 2_000).unwrap();
        for _ in 0..100 {
            log.record(record(LogSpec::default()));
            std::thread::sleep(Duration::from_micros(200));
        }
        log.close();
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
