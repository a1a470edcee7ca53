//! Quotas: requests per calendar day or month (UTC), counted in memory and flushed to a
//! durable store every second, so a restart does not reset them.
//!
//! A node counts locally and adds its increments to the store's total in each flush; the
//! total the store answers becomes the node's new base, so nodes sharing one store see
//! each other's use within a flush interval. What a crash can lose is the increments of
//! the last interval (the caller gets those requests for free, never the opposite).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::future::BoxFuture;
use time::OffsetDateTime;

/// Counters of one flush: `(counter, period, increment)`.
pub type Deltas = Vec<(String, String, u64)>;

/// Where quota counters are kept durably (the store implements it).
pub trait QuotaStore: Send + Sync {
    /// Adds each increment to its counter's total and answers the new totals, in order,
    /// in one transaction.
    fn add(&self, deltas: Deltas) -> BoxFuture<'_, Result<Vec<u64>, String>>;
    /// Every counter of these periods.
    fn load(&self, periods: Vec<String>) -> BoxFuture<'_, Result<Deltas, String>>;
}

/// The calendar period a quota counts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Month,
}

/// The current day and month, and when each ends (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    pub day: Arc<str>,
    pub month: Arc<str>,
    pub day_ends: i64,
    pub month_ends: i64,
}

impl Calendar {
    pub fn at(now: OffsetDateTime) -> Calendar {
        let date = now.date();
        let day_start = date.midnight().assume_utc();
        let next_day = day_start + time::Duration::days(1);
        let (y, m) = (date.year(), date.month());
        let next_month = match m {
            time::Month::December => time::Date::from_calendar_date(y + 1, time::Month::January, 1),
            _ => time::Date::from_calendar_date(y, m.next(), 1),
        }
        .map(|d| d.midnight().assume_utc())
        .unwrap_or(next_day);
        Calendar {
            day: Arc::from(format!("{y:04}-{:02}-{:02}", u8::from(m), date.day())),
            month: Arc::from(format!("{y:04}-{:02}", u8::from(m))),
            day_ends: next_day.unix_timestamp(),
            month_ends: next_month.unix_timestamp(),
        }
    }

    fn label(&self, p: Period) -> &Arc<str> {
        match p {
            Period::Day => &self.day,
            Period::Month => &self.month,
        }
    }

    fn ends(&self, p: Period) -> i64 {
        match p {
            Period::Day => self.day_ends,
            Period::Month => self.month_ends,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Count {
    /// The store's total when last flushed or loaded.
    base: u64,
    /// Counted here, not yet handed to the store.
    pending: u64,
    /// Handed to the store by a flush that has not answered yet.
    flushing: u64,
}

impl Count {
    fn used(&self) -> u64 {
        self.base + self.pending + self.flushing
    }
}

/// What a quota says about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaVerdict {
    Allowed { remaining: u64, reset: Duration },
    Exceeded { reset: Duration },
}

/// Counters kept at most in memory; beyond it new callers are refused (see [`Quotas::check`]).
const MAX_COUNTERS: usize = 1 << 20;

/// Every quota counter of this node.
pub struct Quotas {
    counts: Mutex<HashMap<(String, Arc<str>), Count>>,
    calendar: ArcSwap<Calendar>,
    store: OnceLock<Arc<dyn QuotaStore>>,
    flush_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas").finish_non_exhaustive()
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            counts: Mutex::new(HashMap::new()),
            calendar: ArcSwap::from_pointee(Calendar::at(OffsetDateTime::now_utc())),
            store: OnceLock::new(),
            flush_lock: tokio::sync::Mutex::new(()),
        }
    }
}

impl Quotas {
    /// Connects the durable store and loads the counters of the current day and month.
    /// Without a store, quotas count in memory only.
    pub async fn attach(&self, store: Arc<dyn QuotaStore>) -> Result<(), String> {
        let cal = self.calendar_now(OffsetDateTime::now_utc());
        // Attached even when loading fails (the store is down at start): counting goes
        // on from what this node sees, and its counts are written once the store answers.
        let _ = self.store.set(store.clone());
        let rows = store
            .load(vec![cal.day.to_string(), cal.month.to_string()])
            .await?;
        {
            let mut counts = self.lock();
            for (counter, period, used) in rows {
                let period = if *period == *cal.day {
                    cal.day.clone()
                } else {
                    cal.month.clone()
                };
                let c = counts.entry((counter, period)).or_default();
                c.base = c.base.max(used);
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Arc<str>), Count>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn calendar_now(&self, now: OffsetDateTime) -> Arc<Calendar> {
        let cal = self.calendar.load_full();
        if now.unix_timestamp() < cal.day_ends && now.unix_timestamp() >= cal.day_ends - 86_400 {
            return cal;
        }
        let fresh = Arc::new(Calendar::at(now));
        self.calendar.store(fresh.clone());
        fresh
    }

    /// Counts one request against `counter` (a quota's id and the caller's key) when it is
    /// under `limit` in the current period.
    /// `counter` is taken as given (the gateway builds it per request), so counting does not
    /// copy it again.
    pub fn check(&self, counter: impl Into<String>, period: Period, limit: u64) -> QuotaVerdict {
        self.check_at(counter, period, limit, OffsetDateTime::now_utc())
    }

    pub fn check_at(
        &self,
        counter: impl Into<String>,
        period: Period,
        limit: u64,
        now: OffsetDateTime,
    ) -> QuotaVerdict {
        let cal = self.calendar_now(now);
        let reset = Duration::from_secs(
            u64::try_from(cal.ends(period) - now.unix_timestamp()).unwrap_or(0),
        );
        let label = cal.label(period).clone();
        let mut counts = self.lock();
        let key = (counter.into(), label);
        if !counts.contains_key(&key) && counts.len() >= MAX_COUNTERS {
            return QuotaVerdict::Exceeded { reset };
        }
        let c = counts.entry(key).or_default();
        if c.used() >= limit {
            return QuotaVerdict::Exceeded { reset };
        }
        c.pending += 1;
        QuotaVerdict::Allowed {
            remaining: limit - c.used(),
            reset,
        }
    }

    /// Takes back one request counted by [`Quotas::check`] that was refused later.
    /// The label of the current `period` (`2026-11-26`, `2026-11`).
    pub fn period_label(&self, period: Period) -> Arc<str> {
        self.calendar_now(OffsetDateTime::now_utc())
            .label(period)
            .clone()
    }

    pub fn refund(&self, counter: &str, period: Period) {
        let cal = self.calendar.load();
        let key = (counter.to_string(), cal.label(period).clone());
        if let Some(c) = self.lock().get_mut(&key) {
            c.pending = c.pending.saturating_sub(1);
        }
    }

    /// Used so far in the current period.
    pub fn used(&self, counter: &str, period: Period) -> u64 {
        let cal = self.calendar_now(OffsetDateTime::now_utc());
        let key = (counter.to_string(), cal.label(period).clone());
        self.lock().get(&key).map_or(0, Count::used)
    }

    /// Hands pending increments to the store and takes its totals as the new base.
    /// Counters of past periods are dropped once flushed.
    pub async fn flush(&self) -> Result<usize, String> {
        let Some(store) = self.store.get() else {
            return Ok(0);
        };
        let _one_at_a_time = self.flush_lock.lock().await;
        let batch: Vec<((String, Arc<str>), u64)> = {
            let mut counts = self.lock();
            counts
                .iter_mut()
                .filter(|(_, c)| c.pending > 0)
                .map(|(k, c)| {
                    c.flushing = c.pending;
                    c.pending = 0;
                    (k.clone(), c.flushing)
                })
                .collect()
        };
        if batch.is_empty() {
            self.drop_past();
            return Ok(0);
        }
        let deltas: Deltas = batch
            .iter()
            .map(|((counter, period), n)| (counter.clone(), period.to_string(), *n))
            .collect();
        let result = store.add(deltas).await;
        let mut counts = self.lock();
        match result {
            Ok(totals) => {
                for ((key, _), total) in batch.iter().zip(totals) {
                    if let Some(c) = counts.get_mut(key) {
                        c.base = total;
                        c.flushing = 0;
                    }
                }
                drop(counts);
                self.drop_past();
                Ok(batch.len())
            }
            Err(e) => {
                for (key, _) in &batch {
                    if let Some(c) = counts.get_mut(key) {
                        c.pending += c.flushing;
                        c.flushing = 0;
                    }
                }
                Err(e)
            }
        }
    }

    fn drop_past(&self) {
        let cal = self.calendar.load();
        self.lock().retain(|(_, period), c| {
            c.pending > 0 || c.flushing > 0 || *period == cal.day || *period == cal.month
        });
    }

    /// Flushes every `every` until the process ends; errors are logged and retried.
    pub fn spawn_flusher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        crate::periodic::spawn_flusher(
            self,
            every,
            "quota counters",
            |q| async move { q.flush().await },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn calendar_periods_in_utc() {
        let cal = Calendar::at(datetime!(2026-12-31 23:59:59 UTC));
        assert_eq!(&*cal.day, "2026-12-31");
        assert_eq!(&*cal.month, "2026-12");
        assert_eq!(
            cal.day_ends,
            datetime!(2027-01-01 00:00 UTC).unix_timestamp()
        );
        assert_eq!(
            cal.month_ends,
            datetime!(2027-01-01 00:00 UTC).unix_timestamp()
        );
        let feb = Calendar::at(datetime!(2028-02-29 12:00 UTC));
        assert_eq!(
            feb.month_ends,
            datetime!(2028-03-01 00:00 UTC).unix_timestamp()
        );
    }

    #[test]
    fn counts_up_to_the_limit_then_resets_with_the_period() {
        let q = Quotas::default();
        let t = datetime!(2026-11-26 10:00 UTC);
        for i in 0..3 {
            assert_eq!(
                q.check_at("q:a", Period::Day, 3, t),
                QuotaVerdict::Allowed {
                    remaining: 2 - i,
                    reset: Duration::from_secs(14 * 3600)
                }
            );
        }
        assert!(matches!(
            q.check_at("q:a", Period::Day, 3, t),
            QuotaVerdict::Exceeded { .. }
        ));
        // Another caller has its own count; the next day starts afresh.
        assert!(matches!(
            q.check_at("q:b", Period::Day, 3, t),
            QuotaVerdict::Allowed { .. }
        ));
        assert!(matches!(
            q.check_at("q:a", Period::Day, 3, datetime!(2026-11-27 00:00 UTC)),
            QuotaVerdict::Allowed { remaining: 2, .. }
        ));
    }

    /// A store in memory, standing in for the database in this unit test only (the
    /// store crate's tests and the gateway's restart test use the real one).
    #[derive(Default)]
    struct Totals(
        Mutex<HashMap<(String, String), u64>>,
        std::sync::atomic::AtomicBool,
    );

    impl QuotaStore for Totals {
        fn add(&self, deltas: Deltas) -> BoxFuture<'_, Result<Vec<u64>, String>> {
            Box::pin(async move {
                if self.1.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err("store down".to_string());
                }
                let mut t = self.0.lock().unwrap();
                Ok(deltas
                    .into_iter()
                    .map(|(c, p, n)| {
                        let v = t.entry((c, p)).or_default();
                        *v += n;
                        *v
                    })
                    .collect())
            })
        }

        fn load(&self, periods: Vec<String>) -> BoxFuture<'_, Result<Deltas, String>> {
            Box::pin(async move {
                Ok(self
                    .0
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|((_, p), _)| periods.contains(p))
                    .map(|((c, p), n)| (c.clone(), p.clone(), *n))
                    .collect())
            })
        }
    }

    #[tokio::test]
    async fn flushes_add_up_across_nodes_and_survive_failures() {
        let store = Arc::new(Totals::default());
        let a = Quotas::default();
        let b = Quotas::default();
        a.attach(store.clone()).await.unwrap();
        b.attach(store.clone()).await.unwrap();
        for _ in 0..5 {
            a.check("q:x", Period::Month, 100);
        }
        for _ in 0..7 {
            b.check("q:x", Period::Month, 100);
        }
        a.flush().await.unwrap();
        b.flush().await.unwrap();
        assert_eq!(b.used("q:x", Period::Month), 12);
        // A failed flush keeps the increments for the next one; nothing is counted twice.
        store.1.store(true, std::sync::atomic::Ordering::Relaxed);
        a.check("q:x", Period::Month, 100);
        assert!(a.flush().await.is_err());
        assert_eq!(a.used("q:x", Period::Month), 6);
        store.1.store(false, std::sync::atomic::Ordering::Relaxed);
        a.flush().await.unwrap();
        assert_eq!(a.used("q:x", Period::Month), 13);
        // A node started later begins from the stored total.
        let c = Quotas::default();
        c.attach(store).await.unwrap();
        assert_eq!(c.used("q:x", Period::Month), 13);
    }
}
