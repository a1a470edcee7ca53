//! Choosing a target: weighted round robin, least connections, weighted random and
//! rendezvous hashing, all skipping targets that are not eligible.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tollgate_model::Balance;

use super::TargetState;
use std::sync::Arc;

#[derive(Debug)]
pub struct Balancer {
    kind: Balance,
    weights: Vec<u32>,
    /// Smooth weighted round-robin order, computed once per snapshot.
    schedule: Vec<usize>,
    cursor: AtomicUsize,
}

/// The longest round-robin schedule built; larger weight sums are scaled down.
const MAX_SCHEDULE: u32 = 4096;

impl Balancer {
    pub fn new(kind: Balance, weights: Vec<u32>) -> Self {
        let schedule = smooth_schedule(&weights);
        Balancer {
            kind,
            weights,
            schedule,
            cursor: AtomicUsize::new(fastrand::usize(..1024)),
        }
    }

    /// Picks a target index among `targets`, skipping ineligible ones and `tried`.
    pub fn pick(
        &self,
        targets: &[Arc<TargetState>],
        tried: &[usize],
        hash_key: Option<u64>,
        cooldown: Option<Duration>,
    ) -> Option<usize> {
        let ok =
            |i: usize| self.weights[i] > 0 && !tried.contains(&i) && targets[i].eligible(cooldown);
        match (self.kind, hash_key) {
            (Balance::RoundRobin, _) | (Balance::Hash, None) => self.round_robin(&ok),
            (Balance::LeastConn, _) => {
                let mut best: Option<(usize, u64)> = None;
                let start = fastrand::usize(..targets.len().max(1));
                for k in 0..targets.len() {
                    let i = (start + k) % targets.len();
                    if !ok(i) {
                        continue;
                    }
                    // Compare load per unit of weight without division.
                    let load = (targets[i].in_flight.load(Ordering::Relaxed) as u64 + 1)
                        * 1_000_000
                        / u64::from(self.weights[i]);
                    if best.is_none_or(|(_, b)| load < b) {
                        best = Some((i, load));
                    }
                }
                best.map(|(i, _)| i)
            }
            (Balance::Random, _) => {
                let total: u64 = (0..targets.len())
                    .filter(|&i| ok(i))
                    .map(|i| u64::from(self.weights[i]))
                    .sum();
                if total == 0 {
                    return None;
                }
                let mut r = fastrand::u64(..total);
                for i in 0..targets.len() {
                    if ok(i) {
                        let w = u64::from(self.weights[i]);
                        if r < w {
                            return Some(i);
                        }
                        r -= w;
                    }
                }
                None
            }
            (Balance::Hash, Some(key)) => (0..targets.len()).filter(|&i| ok(i)).max_by_key(|&i| {
                // Rendezvous hashing: a target leaving moves only its own keys.
                let mut h = std::collections::hash_map::DefaultHasher::new();
                key.hash(&mut h);
                targets[i].url.hash(&mut h);
                h.finish()
            }),
        }
    }

    fn round_robin(&self, ok: &dyn Fn(usize) -> bool) -> Option<usize> {
        let len = self.schedule.len();
        if len == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        (0..len)
            .map(|k| self.schedule[(start + k) % len])
            .find(|&i| ok(i))
    }
}

/// Hashes a balancing key (header value, address, cookie).
pub fn hash_key(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// nginx's smooth weighted round robin, unrolled into a fixed order: weights 5,1,1 give
/// a a b a c a a rather than a a a a a b c.
fn smooth_schedule(weights: &[u32]) -> Vec<usize> {
    let gcd = weights.iter().copied().filter(|w| *w > 0).fold(0, gcd);
    if gcd == 0 {
        return Vec::new();
    }
    let mut scaled: Vec<i64> = weights.iter().map(|w| i64::from(w / gcd)).collect();
    let mut total: i64 = scaled.iter().sum();
    if total > i64::from(MAX_SCHEDULE) {
        let factor = total as f64 / f64::from(MAX_SCHEDULE);
        for w in &mut scaled {
            if *w > 0 {
                *w = ((*w as f64 / factor).round() as i64).max(1);
            }
        }
        total = scaled.iter().sum();
    }
    let mut current = vec![0i64; scaled.len()];
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&scaled) {
            *c += w;
        }
        let (best, _) = current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
            .unwrap_or((0, &0));
        current[best] -= total;
        out.push(best);
    }
    out
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(n: usize) -> Vec<Arc<TargetState>> {
        (0..n)
            .map(|i| {
                let url = format!("http://127.0.0.1:{}", 1000 + i);
                Arc::new(TargetState::new(
                    "t",
                    &url,
                    format!("127.0.0.1:{}", 1000 + i).parse().unwrap(),
                ))
            })
            .collect()
    }

    #[test]
    fn smooth_schedule_interleaves_by_weight() {
        assert_eq!(smooth_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_schedule(&[100, 100]), vec![0, 1]);
        assert_eq!(smooth_schedule(&[0, 3]), vec![1]);
        assert!(smooth_schedule(&[0, 0]).is_empty());
        assert!(smooth_schedule(&[10_000, 1, 3]).len() <= MAX_SCHEDULE as usize + 3);
    }

    #[test]
    fn round_robin_follows_weights_and_skips_tried() {
        let t = targets(3);
        let b = Balancer::new(Balance::RoundRobin, vec![200, 100, 100]);
        let mut counts = [0; 3];
        for _ in 0..400 {
            counts[b.pick(&t, &[], None, None).unwrap()] += 1;
        }
        assert_eq!(counts, [200, 100, 100]);
        for _ in 0..10 {
            assert_ne!(b.pick(&t, &[0], None, None), Some(0));
        }
    }

    #[test]
    fn hashing_is_sticky_and_moves_only_lost_keys() {
        let t = targets(4);
        let b = Balancer::new(Balance::Hash, vec![100; 4]);
        let before: Vec<_> = (0..200u64)
            .map(|k| b.pick(&t, &[], Some(k), None).unwrap())
            .collect();
        let again: Vec<_> = (0..200u64)
            .map(|k| b.pick(&t, &[], Some(k), None).unwrap())
            .collect();
        assert_eq!(before, again);
        let after: Vec<_> = (0..200u64)
            .map(|k| b.pick(&t, &[2], Some(k), None).unwrap())
            .collect();
        for (b, a) in before.iter().zip(&after) {
            if *b != 2 {
                assert_eq!(b, a);
            }
        }
    }

    #[test]
    fn least_conn_prefers_idle_targets() {
        let t = targets(2);
        t[0].in_flight.store(5, Ordering::Relaxed);
        let b = Balancer::new(Balance::LeastConn, vec![100, 100]);
        assert_eq!(b.pick(&t, &[], None, None), Some(1));
    }

    #[test]
    fn random_respects_zero_weights() {
        let t = targets(2);
        let b = Balancer::new(Balance::Random, vec![0, 1]);
        for _ in 0..50 {
            assert_eq!(b.pick(&t, &[], None, None), Some(1));
        }
    }
}
