//! The access log: one JSON line per answered request of an API that turns it on, with
//! personal data masked (see [`crate::mask`]). The request path hands a [`Record`] over
//! without waiting; a writer task masks, formats and appends. When the writer falls behind,
//! records are dropped and counted (`tollgate_access_log_dropped_total`). The file is
//! rotated at a size limit, keeping five old files.

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

/// One answered request.
#[derive(Debug)]
pub struct Record {
    pub at: SystemTime,
    pub request_id: String,
    pub api: Arc<str>,
    pub version: Arc<str>,
    pub route: Arc<str>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub total_us: u64,
    pub upstream_us: Option<u64>,
    pub client_ip: IpAddr,
    pub app: Option<Arc<str>>,
    pub headers: Vec<(String, String)>,
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

/// The JSON line of a record, masked.
pub fn line(r: &Record) -> String {
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    let mut v = serde_json::json!({
        "ts": rfc3339_ms(r.at),
        "request_id": r.request_id,
        "api": &*r.api,
        "version": &*r.version,
        "route": &*r.route,
        "method": r.method,
        "path": mask::mask_text(&r.path.replace("%40", "@")),
        "status": r.status,
        "duration_ms": ms(r.total_us),
        "client_ip": r.client_ip.to_string(),
    });
    if let Some(q) = &r.query {
        v["query"] = mask::mask_query(q, &r.spec.mask_fields).into();
    }
    if let Some(u) = r.upstream_us {
        v["upstream_ms"] = ms(u).into();
    }
    if let Some(app) = &r.app {
        v["app"] = (&**app).into();
    }
    if !r.headers.is_empty() {
        let mut h = serde_json::Map::new();
        for (name, value) in &r.headers {
            h.insert(
                name.clone(),
                mask::mask_header(name, value, &r.spec.mask_headers).into(),
            );
        }
        v["headers"] = h.into();
    }
    if let Some((bytes, more)) = &r.body {
        match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(mut body) => {
                mask::mask_json(&mut body, &r.spec.mask_fields);
                v["body"] = body;
            }
            // Not JSON, or cut at the limit: only its size is logged.
            Err(_) if !bytes.is_empty() => {
                v["body_bytes"] = bytes.len().into();
                if *more {
                    v["body_truncated"] = true.into();
                }
            }
            Err(_) => {}
        }
    }
    v.to_string()
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
            let mut failing = false;
            while rx.recv_many(&mut batch, 256).await > 0 {
                let mut result = Ok(());
                for r in batch.drain(..) {
                    let mut text = line(&r);
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
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await?;
            self.size = file.metadata().await?.len();
            self.file = Some(tokio::io::BufWriter::new(file));
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
        Record {
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123),
            request_id: "r1".into(),
            api: Arc::from("orders"),
            version: Arc::from("v1"),
            route: Arc::from("/v1/orders"),
            method: "POST".into(),
            path: "/v1/orders/jane%40example.com".into(),
            query: Some("api_key=abc&q=4111111111111111".into()),
            status: 201,
            total_us: 1500,
            upstream_us: Some(1200),
            client_ip: "203.0.113.9".parse().unwrap(),
            app: Some(Arc::from("web")),
            headers: vec![
                ("authorization".into(), "Bearer secret-token".into()),
                ("user-agent".into(), "curl/8".into()),
                ("x-customer".into(), "c-42".into()),
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
