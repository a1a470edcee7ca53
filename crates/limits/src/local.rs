//! Per-key GCRA state in this process: one TAT per key in sharded maps, bounded in size.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use crate::gcra::{self, Rate, Step};

const SHARDS: usize = 64;

/// Keys a limiter tracks at most before it refuses new ones (about 40 bytes each).
pub const DEFAULT_MAX_KEYS: usize = 1 << 20;

/// The TATs of one limit, by key.
pub struct LocalLimiter {
    hasher: std::collections::hash_map::RandomState,
    shards: Box<[Mutex<Shard>]>,
    max_per_shard: usize,
}

#[derive(Default)]
struct Shard {
    tats: HashMap<u64, u64>,
    /// A full shard is swept for passed TATs at most once per [`SWEEP_EVERY_NS`].
    next_sweep: u64,
}

const SWEEP_EVERY_NS: u64 = 100_000_000;

impl std::fmt::Debug for LocalLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLimiter").finish_non_exhaustive()
    }
}

/// What a local check decided: a GCRA step, or no room to track another key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalStep {
    Step(Step),
    /// Every tracked key is in use and this one is new: the node is overloaded.
    Full,
}

impl LocalLimiter {
    pub fn new(max_keys: usize) -> LocalLimiter {
        LocalLimiter {
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            max_per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    pub fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, Shard> {
        // The low bits pick the shard; the map hashes the whole value again.
        self.shards[(hash as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// One request for `hash` at `now` (see [`gcra::step`]).
    pub fn check(&self, hash: u64, now: u64, rate: &Rate, max_wait_ns: u64) -> LocalStep {
        let mut shard = self.shard(hash);
        if shard.tats.len() >= self.max_per_shard && !shard.tats.contains_key(&hash) {
            if now >= shard.next_sweep {
                // A key whose TAT has passed holds no state worth keeping.
                shard.tats.retain(|_, tat| *tat > now);
                shard.next_sweep = now.saturating_add(SWEEP_EVERY_NS);
            }
            if shard.tats.len() >= self.max_per_shard {
                return LocalStep::Full;
            }
        }
        let tat = shard.tats.entry(hash).or_insert(0);
        LocalStep::Step(gcra::step(tat, now, rate, max_wait_ns))
    }

    /// Gives back one request for `hash` (see [`gcra::refund`]).
    pub fn refund(&self, hash: u64, rate: &Rate) {
        if let Some(tat) = self.shard(hash).tats.get_mut(&hash) {
            gcra::refund(tat, rate);
        }
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).tats.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_independent() {
        let l = LocalLimiter::new(100);
        let rate = Rate::new(1, std::time::Duration::from_secs(1), 1);
        let (a, b) = (l.hash("a"), l.hash("b"));
        assert!(matches!(
            l.check(a, 10, &rate, 0),
            LocalStep::Step(Step::Allowed { .. })
        ));
        assert!(matches!(
            l.check(a, 10, &rate, 0),
            LocalStep::Step(Step::Limited { .. })
        ));
        assert!(matches!(
            l.check(b, 10, &rate, 0),
            LocalStep::Step(Step::Allowed { .. })
        ));
    }

    #[test]
    fn memory_stays_bounded_and_expired_keys_make_room() {
        let l = LocalLimiter::new(SHARDS * 4);
        let rate = Rate::new(1, std::time::Duration::from_secs(1), 1);
        let mut full = 0;
        for i in 0..10_000 {
            if l.check(l.hash(&i.to_string()), 1, &rate, 0) == LocalStep::Full {
                full += 1;
            }
        }
        assert!(l.len() <= SHARDS * 4);
        assert!(full > 0);
        // Two seconds later every TAT has passed: new keys fit again.
        let later = 2_000_000_001;
        let allowed = (10_000..10_100)
            .filter(|i| {
                matches!(
                    l.check(l.hash(&i.to_string()), later, &rate, 0),
                    LocalStep::Step(Step::Allowed { .. })
                )
            })
            .count();
        // 100 keys over 64 shards of 4: a shard rarely gets more than four of them.
        assert!(allowed >= 90, "{allowed}");
        assert!(l.len() <= SHARDS * 4);
    }
}
