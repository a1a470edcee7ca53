//! The generic cell rate algorithm: one timestamp per key (the theoretical arrival time,
//! TAT) says how full the key's budget is. Requests are spaced `window / limit` apart on
//! average, and up to `burst` may arrive at once. The same arithmetic runs in the Redis
//! script ([`crate::redis`]), on the Redis server's clock.

/// A limit in the units GCRA works in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests per window.
    pub limit: u64,
    /// The window, in nanoseconds.
    pub window_ns: u64,
    /// Requests that may arrive at once.
    pub burst: u64,
}

impl Rate {
    pub fn new(limit: u64, window: std::time::Duration, burst: u64) -> Rate {
        Rate {
            limit: limit.max(1),
            window_ns: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX).max(1),
            burst: burst.max(1),
        }
    }

    /// Time between two requests at the steady rate (the emission interval).
    pub fn emission_ns(&self) -> u64 {
        (self.window_ns / self.limit).max(1)
    }

    /// How far ahead of now the TAT may run: the burst, in time.
    pub fn capacity_ns(&self) -> u64 {
        self.emission_ns().saturating_mul(self.burst)
    }

    /// This rate divided among `n` nodes (rounded up, at least one request).
    pub fn share(&self, n: u32) -> Rate {
        let n = u64::from(n.max(1));
        Rate {
            limit: self.limit.div_ceil(n),
            window_ns: self.window_ns,
            burst: self.burst.div_ceil(n),
        }
    }
}

/// What one GCRA step decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Go ahead. `remaining` requests could follow at once; the budget is whole again
    /// after `reset_ns`.
    Allowed { remaining: u64, reset_ns: u64 },
    /// A slot `wait_ns` from now is reserved: go ahead then.
    Wait { wait_ns: u64 },
    /// Over the limit: the next request fits in `retry_ns`.
    Limited { retry_ns: u64, reset_ns: u64 },
}

/// One request against `tat` at `now`. With `max_wait_ns > 0`, a request that would be
/// over the limit reserves the next free slot instead when that slot is at most
/// `max_wait_ns` away; reservations are handed out in arrival order at the steady rate.
pub fn step(tat: &mut u64, now: u64, rate: &Rate, max_wait_ns: u64) -> Step {
    let t = rate.emission_ns();
    let cap = rate.capacity_ns();
    let base = (*tat).max(now);
    let new_tat = base.saturating_add(t);
    let ahead = new_tat - now;
    if ahead <= cap {
        *tat = new_tat;
        return Step::Allowed {
            remaining: (cap - ahead) / t,
            reset_ns: ahead,
        };
    }
    let wait = ahead - cap;
    if max_wait_ns > 0 && wait <= max_wait_ns {
        *tat = new_tat;
        return Step::Wait { wait_ns: wait };
    }
    Step::Limited {
        retry_ns: wait,
        reset_ns: base - now,
    }
}

/// Gives back one request's share: for a request let through by this limit and then
/// refused by another.
pub fn refund(tat: &mut u64, rate: &Rate) {
    *tat = tat.saturating_sub(rate.emission_ns());
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn per_second(limit: u64, burst: u64) -> Rate {
        Rate::new(limit, std::time::Duration::from_secs(1), burst)
    }

    #[test]
    fn a_full_burst_then_the_steady_rate() {
        let rate = per_second(10, 10);
        let mut tat = 0;
        let now = 5 * S;
        for i in 0..10 {
            match step(&mut tat, now, &rate, 0) {
                Step::Allowed { remaining, .. } => assert_eq!(remaining, 9 - i),
                other => panic!("request {i}: {other:?}"),
            }
        }
        match step(&mut tat, now, &rate, 0) {
            Step::Limited { retry_ns, reset_ns } => {
                assert_eq!(retry_ns, S / 10);
                assert_eq!(reset_ns, S);
            }
            other => panic!("{other:?}"),
        }
        // A tenth of a second later exactly one more fits.
        assert!(matches!(
            step(&mut tat, now + S / 10, &rate, 0),
            Step::Allowed { remaining: 0, .. }
        ));
        assert!(matches!(
            step(&mut tat, now + S / 10, &rate, 0),
            Step::Limited { .. }
        ));
    }

    #[test]
    fn over_any_interval_at_most_burst_plus_rate() {
        // Offer one request every millisecond for 10 s at 100/s, burst 20.
        let rate = per_second(100, 20);
        let mut tat = 0;
        let mut allowed = 0u64;
        for ms in 0..10_000u64 {
            if matches!(
                step(&mut tat, ms * 1_000_000, &rate, 0),
                Step::Allowed { .. }
            ) {
                allowed += 1;
            }
        }
        // burst + 10 s × 100/s, minus the one slot the last millisecond cannot reach.
        assert!((1019..=1020).contains(&allowed), "{allowed}");
    }

    #[test]
    fn queued_requests_get_slots_in_order_at_the_rate() {
        let rate = per_second(10, 1);
        let mut tat = 0;
        let now = S;
        assert!(matches!(
            step(&mut tat, now, &rate, S),
            Step::Allowed { .. }
        ));
        let waits: Vec<u64> = (0..10)
            .map(|_| match step(&mut tat, now, &rate, S) {
                Step::Wait { wait_ns } => wait_ns,
                other => panic!("{other:?}"),
            })
            .collect();
        let expected: Vec<u64> = (1..=10).map(|i| i * S / 10).collect();
        assert_eq!(waits, expected);
        // The eleventh would wait 1.1 s: more than max_wait.
        assert!(matches!(
            step(&mut tat, now, &rate, S),
            Step::Limited { .. }
        ));
    }

    #[test]
    fn refund_gives_back_one_request() {
        let rate = per_second(1, 1);
        let mut tat = 0;
        assert!(matches!(step(&mut tat, S, &rate, 0), Step::Allowed { .. }));
        assert!(matches!(step(&mut tat, S, &rate, 0), Step::Limited { .. }));
        refund(&mut tat, &rate);
        assert!(matches!(step(&mut tat, S, &rate, 0), Step::Allowed { .. }));
    }

    #[test]
    fn shares_round_up() {
        let rate = per_second(10, 10).share(3);
        assert_eq!((rate.limit, rate.burst), (4, 4));
        assert_eq!(per_second(1, 1).share(0).limit, 1);
    }
}
