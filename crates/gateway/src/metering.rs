//! Metering for billing: exact per-subscription counts by minute, never sampled and never
//! dropped. Each node keeps its own counts and writes them to the store as absolute values
//! keyed by (node, subscription, minute), so a retried flush writes the same rows again and
//! never double counts. A node's id is new at every start, so a restarted node never
//! overwrites what it wrote before. A crash loses at most the counts since the last flush.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;

/// One row of a flush: node-independent part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    pub subscription: String,
    /// Unix time of the minute's start, in minutes.
    pub minute: i64,
    pub requests: u64,
    pub billable: u64,
}

/// Where usage rows go (the store implements it).
pub trait UsageStore: Send + Sync {
    /// Writes each row as the absolute count of `node` for that subscription and minute.
    fn put(&self, node: &str, rows: Vec<UsageRow>) -> BoxFuture<'_, Result<(), String>>;
}

/// Which status classes a plan bills (bit `n` = class `n`xx).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Billable(pub u8);

impl Billable {
    pub fn from_classes(classes: &[String]) -> Billable {
        let mut mask = 0u8;
        for c in classes {
            if let Some(n) = c
                .strip_suffix("xx")
                .and_then(|d| d.parse::<u8>().ok())
                .filter(|n| (1..=5).contains(n))
            {
                mask |= 1 << n;
            }
        }
        Billable(mask)
    }

    pub fn bills(self, status: u16) -> bool {
        let class = (status / 100).min(7);
        self.0 & (1 << class) != 0
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Count {
    requests: u64,
    billable: u64,
    dirty: bool,
}

/// This node's counts.
pub struct Meter {
    node: OnceLock<String>,
    counts: Mutex<HashMap<(Arc<str>, i64), Count>>,
    store: OnceLock<Arc<dyn UsageStore>>,
    flush_lock: tokio::sync::Mutex<()>,
    /// Prepaid subscriptions whose credit is spent: their calls are refused (402).
    stopped: arc_swap::ArcSwap<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter").finish_non_exhaustive()
    }
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            node: OnceLock::new(),
            counts: Mutex::new(HashMap::new()),
            store: OnceLock::new(),
            flush_lock: tokio::sync::Mutex::new(()),
            stopped: arc_swap::ArcSwap::default(),
        }
    }
}

fn now_minute() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs / 60).unwrap_or(0)
}

impl Meter {
    /// Replaces the set of subscriptions whose prepaid credit is spent.
    pub fn set_credit_spent(&self, subscriptions: std::collections::HashSet<String>) {
        if **self.stopped.load() != subscriptions {
            self.stopped.store(Arc::new(subscriptions));
        }
    }

    /// Whether a subscription's prepaid credit is spent.
    pub fn credit_spent(&self, subscription: &str) -> bool {
        let stopped = self.stopped.load();
        !stopped.is_empty() && stopped.contains(subscription)
    }

    /// Connects the store; `node` names this process (unique per start).
    pub fn attach(&self, node: String, store: Arc<dyn UsageStore>) {
        let _ = self.node.set(node);
        let _ = self.store.set(store);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Arc<str>, i64), Count>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one answered request of `subscription`.
    pub fn record(&self, subscription: &Arc<str>, status: u16, billable: Billable) {
        self.record_at(subscription, status, billable, now_minute());
    }

    pub fn record_at(&self, subscription: &Arc<str>, status: u16, billable: Billable, minute: i64) {
        let mut counts = self.lock();
        let c = counts.entry((subscription.clone(), minute)).or_default();
        c.requests += 1;
        if billable.bills(status) {
            c.billable += 1;
        }
        c.dirty = true;
    }

    /// Writes every count that changed since the last flush. Counts of minutes that ended
    /// more than two minutes ago leave memory once written.
    pub async fn flush(&self) -> Result<usize, String> {
        let (Some(store), Some(node)) = (self.store.get(), self.node.get()) else {
            return Ok(0);
        };
        let _one_at_a_time = self.flush_lock.lock().await;
        let rows: Vec<UsageRow> = self
            .lock()
            .iter()
            .filter(|(_, c)| c.dirty)
            .map(|((sub, minute), c)| UsageRow {
                subscription: sub.to_string(),
                minute: *minute,
                requests: c.requests,
                billable: c.billable,
            })
            .collect();
        if rows.is_empty() {
            return Ok(0);
        }
        store.put(node, rows.clone()).await?;
        let old = now_minute() - 2;
        let mut counts = self.lock();
        for r in &rows {
            let key = (Arc::<str>::from(r.subscription.as_str()), r.minute);
            if let Some(c) = counts.get_mut(&key)
                && c.requests == r.requests
            {
                // Unchanged while the flush ran: clean now.
                c.dirty = false;
            }
        }
        counts.retain(|(_, minute), c| c.dirty || *minute >= old);
        Ok(rows.len())
    }

    /// Flushes every `every` until the process ends; errors are logged and retried.
    pub fn spawn_flusher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tollgate_limits::periodic::spawn_flusher(self, every, "usage counts", |m| async move {
            m.flush().await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(node, subscription, minute)` → `(requests, billable)`.
    type Table = HashMap<(String, String, i64), (u64, u64)>;

    #[derive(Default)]
    struct Rows(Mutex<Table>);

    impl UsageStore for Rows {
        fn put(&self, node: &str, rows: Vec<UsageRow>) -> BoxFuture<'_, Result<(), String>> {
            let node = node.to_string();
            Box::pin(async move {
                let mut t = self.0.lock().unwrap();
                for r in rows {
                    t.insert(
                        (node.clone(), r.subscription, r.minute),
                        (r.requests, r.billable),
                    );
                }
                Ok(())
            })
        }
    }

    #[test]
    fn billable_classes() {
        let b = Billable::from_classes(&["2xx".into()]);
        assert!(b.bills(200) && b.bills(204) && !b.bills(404) && !b.bills(500));
        let b = Billable::from_classes(&["2xx".into(), "3xx".into(), "4xx".into()]);
        assert!(b.bills(302) && b.bills(429) && !b.bills(503));
    }

    #[tokio::test]
    async fn flushes_absolute_counts_so_retries_never_double_count() {
        let store = Arc::new(Rows::default());
        let meter = Meter::default();
        meter.attach("n1".into(), store.clone());
        let sub: Arc<str> = Arc::from("one:orders");
        let minute = now_minute();
        let b = Billable::from_classes(&["2xx".into()]);
        for status in [200, 200, 500] {
            meter.record_at(&sub, status, b, minute);
        }
        meter.flush().await.unwrap();
        // The same counts written twice stay the same rows.
        for (_, c) in meter.lock().iter_mut() {
            c.dirty = true;
        }
        meter.flush().await.unwrap();
        meter.record_at(&sub, 201, b, minute);
        meter.flush().await.unwrap();
        let rows = store.0.lock().unwrap().clone();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[&("n1".into(), "one:orders".into(), minute)], (4, 3));
        // Nothing changed: nothing to write.
        assert_eq!(meter.flush().await.unwrap(), 0);
    }
}
