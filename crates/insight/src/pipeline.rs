//! The event pipeline (DESIGN §6): each answered request becomes one [`Event`], queued on
//! its own thread without waiting or waking anybody (see [`crate::perthread`]); one task
//! takes every thread's events a few times a second and folds them into per-minute
//! aggregates by API, version, route, app and status class, each with a gateway-time and an
//! upstream-time histogram, and flushes them to the store every few seconds.
//!
//! Rows are written as this node's absolute values for a minute, so a retried flush writes
//! the same rows again and never double counts; readers add nodes up. When a thread's queue is
//! full (the folding task fell behind), the event is dropped and counted in
//! `tollgate_events_dropped_total`. Billing never depends on this pipeline: metering has its
//! own exact counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use metrics::Counter;

use crate::histogram::Histogram;
use crate::perthread::PerThread;

/// One answered request.
#[derive(Clone, Debug)]
pub struct Event {
    /// Unix minutes of the answer.
    pub minute: i64,
    /// The route's API, version and route ([`Labels::UNMATCHED`] when none matched).
    pub labels: Labels,
    /// The calling app, when authenticated as one.
    pub app: Option<Arc<str>>,
    pub status: u16,
    /// Whole request, µs.
    pub total_us: u64,
    /// Time spent waiting on the upstream, µs (none when no upstream was called).
    pub upstream_us: Option<u64>,
    /// The client's address (for the detectors; not aggregated).
    pub client_ip: std::net::IpAddr,
    /// Whether the detectors look at it (not for answers a block gave).
    pub detect: bool,
}

/// A route's API, version and route name, interned when the route is compiled: an event
/// carries this number instead of the strings, so answering a request touches no
/// reference count that other threads share, and folding hashes no strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(u32);

/// The names behind each [`Labels`], by number; only ever added to (a node sees few
/// distinct routes in its life).
static INTERNED: std::sync::RwLock<Interned> = std::sync::RwLock::new(Interned {
    names: Vec::new(),
    numbers: None,
});

/// API, version and route.
type Triple = (Arc<str>, Arc<str>, Arc<str>);

struct Interned {
    names: Vec<Names>,
    numbers: Option<HashMap<Triple, u32>>,
}

/// The names of one [`Labels`].
#[derive(Clone, Debug)]
struct Names {
    api: Arc<str>,
    version: Arc<str>,
    route: Arc<str>,
}

impl Labels {
    /// Requests that matched no route: counted by the detectors only.
    pub const UNMATCHED: Labels = Labels(u32::MAX);

    /// The number of a route's names (the same number for the same names, always).
    pub fn of(api: &str, version: &str, route: &str) -> Labels {
        let key: Triple = (api.into(), version.into(), route.into());
        if let Some(n) = INTERNED
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .numbers
            .as_ref()
            .and_then(|m| m.get(&key))
        {
            return Labels(*n);
        }
        let mut interned = INTERNED.write().unwrap_or_else(|p| p.into_inner());
        let Interned { names, numbers } = &mut *interned;
        let next = u32::try_from(names.len()).unwrap_or(u32::MAX - 1);
        let n = *numbers
            .get_or_insert_with(HashMap::new)
            .entry(key.clone())
            .or_insert(next);
        if n == next {
            names.push(Names {
                api: key.0,
                version: key.1,
                route: key.2,
            });
        }
        Labels(n)
    }
}

/// What an aggregate is counted by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub minute: i64,
    pub api: Arc<str>,
    pub version: Arc<str>,
    pub route: Arc<str>,
    /// `""` for requests without an app.
    pub app: Arc<str>,
    /// 1..=5 (`2` for 2xx).
    pub class: u8,
}

/// One minute of one key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aggregate {
    pub requests: u64,
    /// The whole request.
    pub total: Histogram,
    /// Gateway time: the whole request less the upstream's part.
    pub gateway: Histogram,
    pub upstream: Histogram,
}

/// A flushed row: this node's absolute aggregate for a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub key: Key,
    pub requests: u64,
    /// [`Histogram::encode`]d.
    pub total: String,
    pub gateway: String,
    pub upstream: String,
}

/// Where aggregates are kept (the store implements it).
pub trait AggregateStore: Send + Sync {
    /// Writes each row as `node`'s absolute values for its key.
    fn put(&self, node: &str, rows: Vec<Row>) -> BoxFuture<'_, Result<(), String>>;
}

/// Events waiting to be folded, at most, per request thread.
const QUEUE: usize = 65_536;
/// How often the folding task takes the events the request threads have queued. The
/// request path never wakes it.
const FOLD_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// Keys kept in memory at most; beyond, new keys of the minute are dropped and counted.
const MAX_KEYS: usize = 1 << 18;
/// Minutes kept in memory, so late events of a minute still merge. An event older than
/// that is dropped (counted): folding it into a fresh count would overwrite the stored row
/// with a smaller one.
const KEEP_MINUTES: i64 = 5;

struct Entry {
    agg: Aggregate,
    dirty: bool,
}

/// What a minute's aggregate is counted by while in memory ([`Key`] once written).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FoldKey {
    minute: i64,
    labels: Labels,
    app: Option<Arc<str>>,
    class: u8,
}

#[derive(Default)]
struct Folded {
    entries: HashMap<FoldKey, Entry>,
}

/// The pipeline of one node.
pub struct Pipeline {
    started: OnceLock<()>,
    /// Set once the folding task has stopped: later events are dropped (counted).
    stopped: std::sync::atomic::AtomicBool,
    /// Each request thread's events, waiting for the folding task.
    queued: Arc<PerThread<Vec<Event>>>,
    /// Touched by the folding task only.
    detectors: Mutex<crate::detect::Detectors>,
    alerts: OnceLock<tokio::sync::mpsc::Sender<crate::detect::Alert>>,
    /// Asks the folding task to fold what is queued and stop; it answers on the oneshot.
    stop: Mutex<Option<tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>>>,
    folded: Arc<Mutex<Folded>>,
    store: OnceLock<(String, Arc<dyn AggregateStore>)>,
    flush_lock: tokio::sync::Mutex<()>,
    dropped: Counter,
    dropped_here: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            started: OnceLock::new(),
            stopped: std::sync::atomic::AtomicBool::new(false),
            queued: Arc::default(),
            detectors: Mutex::new(crate::detect::Detectors::default()),
            alerts: OnceLock::new(),
            stop: Mutex::new(None),
            folded: Arc::new(Mutex::new(Folded::default())),
            store: OnceLock::new(),
            flush_lock: tokio::sync::Mutex::new(()),
            dropped: metrics::counter!("tollgate_events_dropped_total"),
            dropped_here: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

fn class_of(status: u16) -> u8 {
    (status / 100).clamp(1, 5) as u8
}

impl Pipeline {
    /// Starts the folding task (on the current runtime): every [`FOLD_EVERY`] it takes
    /// the events each request thread has queued and folds them. Until it starts, events
    /// are dropped silently: a node without analytics does not count them as lost.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let _ = self.started.set(());
        let (stop_tx, mut stop_rx) =
            tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>(1);
        *self.stop.lock().unwrap_or_else(|p| p.into_inner()) = Some(stop_tx);
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FOLD_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Emptied queues, swapped for the full ones (they keep their capacity).
            let mut spares: Vec<Vec<Event>> = Vec::new();
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => None,
                    done = stop_rx.recv() => Some(done),
                };
                let Some(me) = me.upgrade() else { return };
                if stopping.is_some() {
                    me.stopped.store(true, std::sync::atomic::Ordering::Release);
                }
                me.fold_queued(&mut spares);
                if let Some(done) = stopping {
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
            }
        })
    }

    /// Folds what every request thread has queued.
    fn fold_queued(&self, spares: &mut Vec<Vec<Event>>) {
        let mut taken = Vec::new();
        self.queued.each(|q| {
            if !q.is_empty() {
                let mut spare = spares.pop().unwrap_or_default();
                std::mem::swap(q, &mut spare);
                taken.push(spare);
            }
        });
        for mut events in taken {
            self.fold(events.drain(..));
            spares.push(events);
        }
    }

    /// Folds every event queued so far and stops folding (shutdown: call before the last
    /// [`flush`](Self::flush)).
    pub async fn drain(&self) {
        let stop = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(stop) = stop {
            let (done, wait) = tokio::sync::oneshot::channel();
            if stop.send(done).await.is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// Replaces the detectors' rules (their counts start over when a rule changes).
    pub fn set_rules(&self, rules: crate::detect::Rules) {
        let mut d = self.detectors.lock().unwrap_or_else(|p| p.into_inner());
        if d.rules != rules {
            *d = crate::detect::Detectors::new(rules);
        }
    }

    /// Alerts from now on arrive on the answered receiver (once per node).
    pub fn subscribe_alerts(&self) -> Option<tokio::sync::mpsc::Receiver<crate::detect::Alert>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        self.alerts.set(tx).ok().map(|()| rx)
    }

    /// Connects the store this node's aggregates are flushed to.
    pub fn attach(&self, node: String, store: Arc<dyn AggregateStore>) {
        let _ = self.store.set((node, store));
    }

    /// Queues one event on this thread without waiting; a full queue drops it (counted).
    pub fn record(&self, event: Event) {
        if self.started.get().is_none() {
            return;
        }
        if self.stopped.load(std::sync::atomic::Ordering::Relaxed) {
            self.drop_one();
            return;
        }
        let queued = self.queued.with(|q| {
            if q.len() >= QUEUE {
                return false;
            }
            q.push(event);
            true
        });
        if !queued {
            self.drop_one();
        }
    }

    fn drop_one(&self) {
        self.dropped.increment(1);
        self.dropped_here
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Events dropped since start (also `tollgate_events_dropped_total`).
    pub fn dropped(&self) -> u64 {
        self.dropped_here.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Folded> {
        self.folded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds events into their minute's aggregates.
    pub fn fold(&self, events: impl Iterator<Item = Event>) {
        let oldest = now_minute() - KEEP_MINUTES;
        let now = now_second();
        let interned = INTERNED.read().unwrap_or_else(|p| p.into_inner());
        let mut f = self.lock();
        let mut detectors = self.detectors.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            let matched = interned.names.get(e.labels.0 as usize).map(|n| &n.api);
            let api = matched.map_or("", |a| &**a);
            let mut alerts = if e.detect {
                detectors.observe(&crate::detect::Seen {
                    at: now,
                    client_ip: e.client_ip,
                    app: e.app.as_ref(),
                    api,
                    status: e.status,
                })
            } else {
                Vec::new()
            };
            if e.detect
                && let Some(api) = matched.filter(|a| !a.is_empty())
            {
                alerts.extend(detectors.observe_api(api, e.minute, e.status, e.total_us));
            }
            for alert in alerts {
                if let Some(tx) = self.alerts.get()
                    && tx.try_send(alert).is_err()
                {
                    tracing::warn!("an alert was dropped: nobody is taking alerts fast enough");
                }
            }
            // Requests that matched no route are for the detectors only.
            if api.is_empty() {
                continue;
            }
            if e.minute < oldest {
                self.drop_one();
                continue;
            }
            let key = FoldKey {
                minute: e.minute,
                labels: e.labels,
                app: e.app,
                class: class_of(e.status),
            };
            if !f.entries.contains_key(&key) && f.entries.len() >= MAX_KEYS {
                self.drop_one();
                continue;
            }
            let entry = f.entries.entry(key).or_insert_with(|| Entry {
                agg: Aggregate::default(),
                dirty: false,
            });
            entry.agg.requests += 1;
            entry.agg.total.record(e.total_us);
            let upstream = e.upstream_us.unwrap_or(0);
            entry
                .agg
                .gateway
                .record(e.total_us.saturating_sub(upstream));
            if let Some(u) = e.upstream_us {
                entry.agg.upstream.record(u);
            }
            entry.dirty = true;
        }
    }

    /// Writes the aggregates changed since the last flush, and forgets minutes older than
    /// a couple of minutes once written. Answers how many rows were written.
    pub async fn flush(&self) -> Result<usize, String> {
        let Some((node, store)) = self.store.get() else {
            return Ok(0);
        };
        let _one = self.flush_lock.lock().await;
        // What the request threads have queued since the last fold is written too.
        if self.started.get().is_some() {
            self.fold_queued(&mut Vec::new());
        }
        let (rows, written): (Vec<Row>, Vec<(FoldKey, u64)>) = {
            let interned = INTERNED.read().unwrap_or_else(|p| p.into_inner());
            let f = self.lock();
            let empty: Arc<str> = Arc::from("");
            f.entries
                .iter()
                .filter(|(_, e)| e.dirty)
                .filter_map(|(k, e)| {
                    let names = interned.names.get(k.labels.0 as usize)?;
                    let key = Key {
                        minute: k.minute,
                        api: names.api.clone(),
                        version: names.version.clone(),
                        route: names.route.clone(),
                        app: k.app.clone().unwrap_or_else(|| empty.clone()),
                        class: k.class,
                    };
                    let row = Row {
                        key,
                        requests: e.agg.requests,
                        total: e.agg.total.encode(),
                        gateway: e.agg.gateway.encode(),
                        upstream: e.agg.upstream.encode(),
                    };
                    Some((row, (k.clone(), e.agg.requests)))
                })
                .unzip()
        };
        let n = rows.len();
        if n > 0 {
            store.put(node, rows).await?;
            let mut f = self.lock();
            for (k, requests) in written {
                // Clean only if nothing was added while writing.
                if let Some(e) = f.entries.get_mut(&k)
                    && e.agg.requests == requests
                {
                    e.dirty = false;
                }
            }
        }
        let oldest = now_minute() - KEEP_MINUTES;
        self.lock()
            .entries
            .retain(|k, e| e.dirty || k.minute >= oldest);
        Ok(n)
    }

    /// Flushes every `every` until the pipeline is dropped.
    pub fn spawn_flusher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                match me.flush().await {
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("analytics aggregates written to the store again");
                    }
                    Ok(_) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "cannot write analytics aggregates; keeping them in memory and retrying");
                    }
                    Err(_) => {}
                }
            }
        })
    }
}

/// The current Unix second.
pub fn now_second() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The current Unix minute.
pub fn now_minute() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 60) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Stored = (u64, String, String);

    struct Memory(Mutex<HashMap<(String, Key), Stored>>);

    impl AggregateStore for Memory {
        fn put(&self, node: &str, rows: Vec<Row>) -> BoxFuture<'_, Result<(), String>> {
            let node = node.to_string();
            Box::pin(async move {
                let mut m = self.0.lock().unwrap();
                for r in rows {
                    m.insert((node.clone(), r.key), (r.requests, r.gateway, r.upstream));
                }
                Ok(())
            })
        }
    }

    fn event(minute: i64, app: Option<&str>, status: u16, total: u64, up: Option<u64>) -> Event {
        Event {
            minute,
            labels: Labels::of("orders", "v1", "/v1/orders"),
            app: app.map(Arc::from),
            status,
            total_us: total,
            upstream_us: up,
            client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            detect: true,
        }
    }

    #[tokio::test]
    async fn events_fold_by_minute_and_dimensions_and_flush_idempotently() {
        let p = Arc::new(Pipeline::default());
        let mem = Arc::new(Memory(Mutex::new(HashMap::new())));
        p.attach("n1".into(), mem.clone());
        let now = now_minute();
        p.fold(
            [
                event(now, Some("web"), 200, 1500, Some(1000)),
                event(now, Some("web"), 201, 2500, Some(2000)),
                event(now, Some("web"), 503, 900, None),
                event(now, None, 200, 100, Some(50)),
                event(now - 1, Some("web"), 200, 100, Some(50)),
            ]
            .into_iter(),
        );
        assert_eq!(p.flush().await.unwrap(), 4);
        // Nothing new: nothing written.
        assert_eq!(p.flush().await.unwrap(), 0);
        let m = mem.0.lock().unwrap().clone();
        let web2 = m
            .iter()
            .find(|((_, k), _)| k.minute == now && &*k.app == "web" && k.class == 2)
            .unwrap()
            .1;
        assert_eq!(web2.0, 2);
        let gw = Histogram::decode(&web2.1).unwrap();
        assert_eq!(gw.count(), 2);
        // gateway time = total - upstream = 500 µs each
        assert!(gw.quantile(1.0).unwrap().abs_diff(500) <= 4);
        let errors = m.iter().find(|((_, k), _)| k.class == 5).unwrap().1;
        assert_eq!(errors.0, 1);
        assert_eq!(Histogram::decode(&errors.2).unwrap().count(), 0);
        // A later event of the same minute rewrites the row with the new absolute count.
        p.fold([event(now, Some("web"), 200, 1500, Some(1000))].into_iter());
        assert_eq!(p.flush().await.unwrap(), 1);
        let m = mem.0.lock().unwrap();
        assert_eq!(
            m.iter()
                .find(|((_, k), _)| k.minute == now && &*k.app == "web" && k.class == 2)
                .unwrap()
                .1
                .0,
            3
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_never_blocks() {
        let p = Arc::new(Pipeline::default());
        // Not started: events are ignored without blocking.
        p.record(event(0, None, 200, 1, None));
        assert_eq!(p.dropped(), 0);
        // The folding task cannot run while this (single-threaded) test floods the queue:
        // everything beyond the queue is dropped and counted, nothing waits.
        let _task = p.start();
        for _ in 0..(QUEUE * 2) {
            p.record(event(now_minute(), None, 200, 1, None));
        }
        assert_eq!(p.dropped(), QUEUE as u64);
        // Draining folds everything queued.
        p.drain().await;
        assert_eq!(
            p.lock()
                .entries
                .values()
                .map(|e| e.agg.requests)
                .sum::<u64>(),
            QUEUE as u64
        );
        // Events of minutes long gone are dropped, not folded into a fresh count.
        p.fold([event(now_minute() - 60, None, 200, 1, None)].into_iter());
        assert_eq!(p.dropped(), QUEUE as u64 + 1);
        tokio::task::yield_now().await;
        assert!(
            eventually(|| p
                .lock()
                .entries
                .values()
                .map(|e| e.agg.requests)
                .sum::<u64>()
                == QUEUE as u64)
            .await
        );
    }

    async fn eventually(mut check: impl FnMut() -> bool) -> bool {
        for _ in 0..1000 {
            if check() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        false
    }
}
