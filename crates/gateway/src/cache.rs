//! The response cache: answers kept in memory with a size bound, served while fresh as
//! `Cache-Control` allows, one entry per key and matching `Vary`, purged by API or key,
//! and request coalescing so a burst of misses for one key makes one upstream call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use tokio::sync::watch;
use tollgate_model::policy::Cache as CachePolicy;

use crate::body::{ProxyBody, full};

/// Default largest body kept per entry.
pub const DEFAULT_MAX_ENTRY: u64 = 1 << 20;

pub static X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// One stored answer.
#[derive(Debug)]
pub struct Entry {
    pub api: Arc<str>,
    pub path: String,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    stored: Instant,
    /// Age the upstream reported when it answered.
    initial_age: u64,
    fresh_for: Duration,
    /// The request's values of the headers the answer varies on.
    vary: Vec<(HeaderName, Option<HeaderValue>)>,
}

impl Entry {
    fn age(&self) -> u64 {
        self.initial_age + self.stored.elapsed().as_secs()
    }

    fn is_fresh(&self) -> bool {
        self.stored.elapsed() + Duration::from_secs(self.initial_age) < self.fresh_for
    }

    /// Whether the request agrees with the stored answer's `Vary` headers.
    pub fn matches(&self, request: &HeaderMap) -> bool {
        self.vary
            .iter()
            .all(|(name, value)| request.get(name) == value.as_ref())
    }

    /// The stored answer, with its current `Age`.
    pub fn to_response(&self, how: &'static str) -> Response<ProxyBody> {
        let mut resp = Response::new(full(self.body.clone()));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers.clone();
        if let Ok(age) = HeaderValue::from_str(&self.age().to_string()) {
            resp.headers_mut().insert(header::AGE, age);
        }
        resp.headers_mut()
            .insert(X_CACHE.clone(), HeaderValue::from_static(how));
        resp
    }
}

/// What a leader hands its followers: `None` until it is done, then the entry it
/// stored, if any.
pub type Filled = watch::Receiver<Option<Option<Arc<Entry>>>>;

/// What a lookup found.
pub enum Lookup {
    Hit(Arc<Entry>),
    /// A miss; this request fetches and must call [`Leader::finish`].
    Leader(Leader),
    /// Another request is fetching this key; wait for its result.
    Follower(Filled),
}

/// The right and duty to fill one key. Dropping it unfinished releases the waiters.
pub struct Leader {
    cache: Arc<Inner>,
    key: String,
    tx: watch::Sender<Option<Option<Arc<Entry>>>>,
}

impl Leader {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Stores `entry` (if any) and hands it to the requests that waited.
    pub fn finish(self, entry: Option<Entry>) {
        let entry = entry.map(Arc::new);
        if let Some(e) = &entry {
            self.cache.entries.insert(self.key.clone(), e.clone());
        }
        let _ = self.tx.send(Some(entry));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.cache
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
        let _ = self.tx.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(None);
                true
            } else {
                false
            }
        });
    }
}

struct Inner {
    entries: moka::sync::Cache<String, Arc<Entry>>,
    inflight: Mutex<HashMap<String, Filled>>,
}

/// The node's response cache, shared by every snapshot.
#[derive(Clone)]
pub struct ResponseCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("entries", &self.inner.entries.entry_count())
            .finish()
    }
}

impl ResponseCache {
    /// A cache holding at most `capacity` bytes of answers.
    pub fn new(capacity: u64) -> ResponseCache {
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .weigher(|k: &String, e: &Arc<Entry>| {
                let headers: usize = e
                    .headers
                    .iter()
                    .map(|(n, v)| n.as_str().len() + v.len() + 32)
                    .sum();
                u32::try_from(k.len() + e.body.len() + headers + 128).unwrap_or(u32::MAX)
            })
            .support_invalidation_closures()
            .build();
        ResponseCache {
            inner: Arc::new(Inner {
                entries,
                inflight: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Finds a fresh answer for `key` that matches the request's `Vary` headers.
    pub fn lookup(&self, key: &str, request: &HeaderMap, revalidate: bool) -> Lookup {
        if !revalidate
            && let Some(e) = self.inner.entries.get(key)
            && e.is_fresh()
            && e.matches(request)
        {
            return Lookup::Hit(e);
        }
        let mut inflight = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = inflight.get(key) {
            return Lookup::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        inflight.insert(key.to_string(), rx);
        Lookup::Leader(Leader {
            cache: self.inner.clone(),
            key: key.to_string(),
            tx,
        })
    }

    /// Drops every entry of an API; returns how many were dropped (approximately, as
    /// entries are invalidated lazily).
    pub fn purge_api(&self, api: &str) -> u64 {
        let api = api.to_string();
        let n = self
            .inner
            .entries
            .iter()
            .filter(|(_, e)| *e.api == *api)
            .count() as u64;
        let _ = self
            .inner
            .entries
            .invalidate_entries_if(move |_, e| *e.api == *api);
        n
    }

    /// Drops entries by exact key, or by path (any host, query or variant).
    pub fn purge(&self, key: Option<&str>, path: Option<&str>) -> u64 {
        let mut n = 0;
        if let Some(k) = key
            && self.inner.entries.remove(k).is_some()
        {
            n += 1;
        }
        if let Some(p) = path {
            let p = p.to_string();
            n += self
                .inner
                .entries
                .iter()
                .filter(|(_, e)| e.path == p)
                .count() as u64;
            let _ = self
                .inner
                .entries
                .invalidate_entries_if(move |_, e| e.path == p);
        }
        n
    }

    pub fn purge_all(&self) -> u64 {
        let n = self.len();
        self.inner.entries.invalidate_all();
        n
    }

    pub fn len(&self) -> u64 {
        self.inner.entries.run_pending_tasks();
        self.inner.entries.entry_count()
    }

    /// Up to `limit` keys, for operators choosing what to purge.
    pub fn keys(&self, limit: usize) -> Vec<String> {
        self.inner
            .entries
            .iter()
            .take(limit)
            .map(|(k, _)| (*k).clone())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A route's cache settings, compiled.
#[derive(Debug)]
pub struct CompiledCache {
    pub ttl: Option<Duration>,
    pub max_entry: u64,
    by_app: bool,
    by_headers: Vec<HeaderName>,
}

impl CompiledCache {
    pub fn compile(p: &CachePolicy) -> CompiledCache {
        CompiledCache {
            ttl: p.ttl.map(|t| t.as_std()),
            max_entry: p.max_entry.map(|m| m.0).unwrap_or(DEFAULT_MAX_ENTRY),
            by_app: p.key.iter().any(|k| k == "app"),
            by_headers: p
                .key
                .iter()
                .filter_map(|k| k.strip_prefix("header:"))
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
        }
    }

    /// The key of a request: route identity, method, host, path and query, plus the
    /// configured parts (the app, chosen headers). On an authenticated route `caller`
    /// names who called, so one caller's answer is never served to another.
    #[allow(clippy::too_many_arguments)]
    pub fn key(
        &self,
        route: u64,
        method: &str,
        host: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        app: Option<&str>,
        caller: Option<&str>,
    ) -> String {
        let mut key = format!("{route:016x} {method} {host}{path_and_query}");
        if let Some(c) = caller {
            key.push_str(" caller=");
            key.push_str(c);
        }
        if self.by_app {
            key.push_str(" app=");
            key.push_str(app.unwrap_or("-"));
        }
        for h in &self.by_headers {
            key.push(' ');
            key.push_str(h.as_str());
            key.push('=');
            key.push_str(headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("-"));
        }
        key
    }
}

/// Directives of a `Cache-Control` header we act on.
#[derive(Debug, Default, PartialEq)]
pub struct Directives {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
}

pub fn directives(headers: &HeaderMap) -> Directives {
    let mut d = Directives::default();
    for v in headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for part in v.split(',') {
            let (name, arg) = match part.trim().split_once('=') {
                Some((n, a)) => (
                    n.trim().to_ascii_lowercase(),
                    Some(a.trim().trim_matches('"')),
                ),
                None => (part.trim().to_ascii_lowercase(), None),
            };
            match name.as_str() {
                "no-store" => d.no_store = true,
                "no-cache" => d.no_cache = true,
                "private" => d.private = true,
                "public" => d.public = true,
                "max-age" => d.max_age = arg.and_then(|a| a.parse().ok()),
                "s-maxage" => d.s_maxage = arg.and_then(|a| a.parse().ok()),
                _ => {}
            }
        }
    }
    d
}

/// How long an answer may be served from a shared cache, or None if it may not be
/// stored (RFC 9111 §3 and §5.2.2).
pub fn freshness(
    status: StatusCode,
    headers: &HeaderMap,
    request_has_authorization: bool,
    ttl: Option<Duration>,
) -> Option<Duration> {
    let cacheable_status = matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    );
    if !cacheable_status || headers.contains_key(header::SET_COOKIE) {
        return None;
    }
    let vary_all = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim() == "*"));
    if vary_all {
        return None;
    }
    let d = directives(headers);
    if d.no_store || d.private || d.no_cache {
        return None;
    }
    if request_has_authorization && !(d.public || d.s_maxage.is_some()) {
        return None;
    }
    let secs = d.s_maxage.or(d.max_age);
    match (secs, ttl) {
        (Some(0), _) => None,
        (Some(s), _) => Some(Duration::from_secs(s)),
        (None, Some(t)) => Some(t),
        (None, None) => None,
    }
}

/// Builds an entry from a complete answer, if it may be stored.
pub fn entry_for(
    api: Arc<str>,
    path: String,
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
    request: &HeaderMap,
    fresh_for: Duration,
) -> Entry {
    let vary = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .map(|n| {
            let value = request.get(&n).cloned();
            (n, value)
        })
        .collect();
    let initial_age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let mut stored_headers = headers.clone();
    stored_headers.remove(header::AGE);
    stored_headers.remove(&X_CACHE);
    stored_headers.remove("x-request-id");
    stored_headers.remove("server-timing");
    Entry {
        api,
        path,
        status,
        headers: stored_headers,
        body,
        stored: Instant::now(),
        initial_age,
        fresh_for,
        vary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn freshness_follows_cache_control() {
        let ok = StatusCode::OK;
        let ttl = Some(Duration::from_secs(30));
        assert_eq!(
            freshness(
                ok,
                &headers(&[("cache-control", "max-age=60")]),
                false,
                None
            ),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            freshness(
                ok,
                &headers(&[("cache-control", "max-age=60, s-maxage=5")]),
                false,
                None
            ),
            Some(Duration::from_secs(5))
        );
        assert_eq!(freshness(ok, &headers(&[]), false, ttl), ttl);
        assert_eq!(freshness(ok, &headers(&[]), false, None), None);
        assert_eq!(
            freshness(ok, &headers(&[("cache-control", "no-store")]), false, ttl),
            None
        );
        assert_eq!(
            freshness(
                ok,
                &headers(&[("cache-control", "private, max-age=60")]),
                false,
                ttl
            ),
            None
        );
        assert_eq!(
            freshness(ok, &headers(&[("cache-control", "max-age=0")]), false, ttl),
            None
        );
        assert_eq!(
            freshness(ok, &headers(&[("set-cookie", "a=1")]), false, ttl),
            None
        );
        assert_eq!(freshness(ok, &headers(&[("vary", "*")]), false, ttl), None);
        assert_eq!(
            freshness(StatusCode::INTERNAL_SERVER_ERROR, &headers(&[]), false, ttl),
            None
        );
        // With Authorization only explicitly shareable answers are stored.
        assert_eq!(
            freshness(ok, &headers(&[("cache-control", "max-age=60")]), true, ttl),
            None
        );
        assert_eq!(
            freshness(
                ok,
                &headers(&[("cache-control", "public, max-age=60")]),
                true,
                ttl
            ),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn entries_honour_vary_and_expire() {
        let cache = ResponseCache::new(1 << 20);
        let req = headers(&[("accept-language", "fr")]);
        let Lookup::Leader(leader) = cache.lookup("k", &req, false) else {
            panic!("expected a miss")
        };
        let resp = headers(&[("vary", "Accept-Language"), ("content-type", "text/plain")]);
        leader.finish(Some(entry_for(
            "api".into(),
            "/p".into(),
            StatusCode::OK,
            &resp,
            Bytes::from_static(b"bonjour"),
            &req,
            Duration::from_secs(60),
        )));
        assert!(matches!(cache.lookup("k", &req, false), Lookup::Hit(_)));
        let other = headers(&[("accept-language", "de")]);
        assert!(
            matches!(cache.lookup("k", &other, false), Lookup::Leader(_)),
            "a different Vary value is a miss"
        );
        assert!(
            matches!(cache.lookup("k", &req, true), Lookup::Leader(_)),
            "revalidation bypasses"
        );
    }

    #[test]
    fn followers_wait_for_the_leader() {
        let cache = ResponseCache::new(1 << 20);
        let h = HeaderMap::new();
        let Lookup::Leader(leader) = cache.lookup("k", &h, false) else {
            panic!()
        };
        let Lookup::Follower(mut rx) = cache.lookup("k", &h, false) else {
            panic!("a second miss should wait")
        };
        leader.finish(Some(entry_for(
            "a".into(),
            "/".into(),
            StatusCode::OK,
            &h,
            Bytes::new(),
            &h,
            Duration::from_secs(5),
        )));
        let got = rx.borrow_and_update().clone();
        assert!(matches!(got, Some(Some(_))));
        assert!(matches!(cache.lookup("k", &h, false), Lookup::Hit(_)));
        // A leader that gives up releases its followers with nothing.
        let Lookup::Leader(leader) = cache.lookup("j", &h, false) else {
            panic!()
        };
        let Lookup::Follower(rx) = cache.lookup("j", &h, false) else {
            panic!()
        };
        drop(leader);
        assert!(matches!(*rx.borrow(), Some(None)));
    }

    #[test]
    fn purges() {
        let cache = ResponseCache::new(1 << 20);
        let h = HeaderMap::new();
        for (k, api, path) in [("a1", "a", "/x"), ("a2", "a", "/y"), ("b1", "b", "/x")] {
            let Lookup::Leader(l) = cache.lookup(k, &h, false) else {
                panic!()
            };
            l.finish(Some(entry_for(
                api.into(),
                path.into(),
                StatusCode::OK,
                &h,
                Bytes::new(),
                &h,
                Duration::from_secs(60),
            )));
        }
        assert_eq!(cache.purge_api("a"), 2);
        cache.len();
        assert!(matches!(cache.lookup("b1", &h, false), Lookup::Hit(_)));
        assert_eq!(cache.purge(None, Some("/x")), 1);
        cache.len();
        assert!(cache.is_empty());
    }
}
