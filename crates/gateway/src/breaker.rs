//! `circuit_breaker`: stops sending requests to an upstream that keeps failing, so it can
//! recover and callers get a fast 503 instead of waiting for timeouts.
//!
//! Closed: outcomes are counted in a sliding window of ten buckets. It opens when the
//! failure ratio reaches `error_ratio` with at least `min_requests` in the window, or
//! after `consecutive_failures` in a row. Open: every request is refused for `open_for`.
//! Half-open: up to `half_open_probes` requests go through; when that many succeed it
//! closes, and one failure opens it again.

use std::sync::Mutex;

use tollgate_limits::clock::Clock;
use tollgate_model::policy::CircuitBreaker;

const BUCKETS: usize = 10;

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    epoch: u64,
    total: u32,
    failed: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Closed,
    Open { until: u64 },
    HalfOpen { in_flight: u32, succeeded: u32 },
}

#[derive(Debug)]
struct State {
    mode: Mode,
    consecutive: u32,
    buckets: [Bucket; BUCKETS],
}

#[derive(Debug)]
pub struct Breaker {
    config: CircuitBreaker,
    bucket_ns: u64,
    clock: Clock,
    state: Mutex<State>,
    failure_statuses: Vec<u16>,
}

/// Permission for one request; report its outcome with [`Breaker::record`].
#[derive(Debug)]
pub struct Ticket {
    probe: bool,
}

/// A request let through by a breaker, until its outcome is known.
#[derive(Debug)]
pub struct Pass<'a> {
    breaker: &'a Breaker,
    ticket: Option<Ticket>,
}

impl Pass<'_> {
    pub fn finish(mut self, success: bool) {
        if let Some(t) = self.ticket.take() {
            self.breaker.record(t, success);
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.breaker.release(t);
        }
    }
}

/// Refused while open: retry after this many seconds.
#[derive(Debug)]
pub struct Open(pub u64);

impl Breaker {
    pub fn new(config: &CircuitBreaker) -> Breaker {
        let window = u64::try_from(config.window.as_std().as_nanos()).unwrap_or(u64::MAX);
        Breaker {
            bucket_ns: (window / BUCKETS as u64).max(1),
            failure_statuses: config.failure_statuses.clone(),
            config: config.clone(),
            clock: Clock::new(),
            state: Mutex::new(State {
                mode: Mode::Closed,
                consecutive: 0,
                buckets: [Bucket::default(); BUCKETS],
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an answer with this status counts as a failure.
    pub fn is_failure(&self, status: u16) -> bool {
        self.failure_statuses.contains(&status)
    }

    /// Asks to send one request; the pass reports its outcome, or gives the probe back
    /// when dropped without one.
    pub fn pass(&self) -> Result<Pass<'_>, Open> {
        Ok(Pass {
            breaker: self,
            ticket: Some(self.admit()?),
        })
    }

    /// Asks to send one request.
    pub fn admit(&self) -> Result<Ticket, Open> {
        let now = self.clock.now_ns();
        let mut s = self.lock();
        match s.mode {
            Mode::Closed => Ok(Ticket { probe: false }),
            Mode::Open { until } if now < until => Err(Open((until - now).div_ceil(1_000_000_000))),
            Mode::Open { .. } => {
                tracing::info!("circuit half-open: probing the upstream");
                s.mode = Mode::HalfOpen {
                    in_flight: 1,
                    succeeded: 0,
                };
                Ok(Ticket { probe: true })
            }
            Mode::HalfOpen {
                in_flight,
                succeeded,
            } => {
                if in_flight + succeeded < self.config.half_open_probes {
                    s.mode = Mode::HalfOpen {
                        in_flight: in_flight + 1,
                        succeeded,
                    };
                    Ok(Ticket { probe: true })
                } else {
                    Err(Open(1))
                }
            }
        }
    }

    /// Reports how a request sent with `ticket` went.
    pub fn record(&self, ticket: Ticket, success: bool) {
        let now = self.clock.now_ns();
        let mut s = self.lock();
        if ticket.probe {
            if let Mode::HalfOpen {
                in_flight,
                succeeded,
            } = s.mode
            {
                if !success {
                    self.trip(&mut s, now, "a probe failed");
                } else if succeeded + 1 >= self.config.half_open_probes {
                    tracing::info!("circuit closed: the upstream answers again");
                    s.mode = Mode::Closed;
                    s.consecutive = 0;
                    s.buckets = [Bucket::default(); BUCKETS];
                } else {
                    s.mode = Mode::HalfOpen {
                        in_flight: in_flight.saturating_sub(1),
                        succeeded: succeeded + 1,
                    };
                }
            }
            return;
        }
        if s.mode != Mode::Closed {
            return;
        }
        let epoch = now / self.bucket_ns;
        let b = &mut s.buckets[(epoch % BUCKETS as u64) as usize];
        if b.epoch != epoch {
            *b = Bucket {
                epoch,
                total: 0,
                failed: 0,
            };
        }
        b.total += 1;
        if success {
            s.consecutive = 0;
            return;
        }
        b.failed += 1;
        s.consecutive += 1;
        if s.consecutive >= self.config.consecutive_failures {
            self.trip(&mut s, now, "consecutive failures");
            return;
        }
        let oldest = epoch.saturating_sub(BUCKETS as u64 - 1);
        let (total, failed) = s
            .buckets
            .iter()
            .filter(|b| b.epoch >= oldest && b.epoch <= epoch)
            .fold((0u32, 0u32), |(t, f), b| (t + b.total, f + b.failed));
        if total >= self.config.min_requests
            && f64::from(failed) >= self.config.error_ratio * f64::from(total)
        {
            self.trip(&mut s, now, "error ratio");
        }
    }

    /// Gives back a probe that never got an outcome (the client went away).
    pub fn release(&self, ticket: Ticket) {
        if !ticket.probe {
            return;
        }
        let mut s = self.lock();
        if let Mode::HalfOpen {
            in_flight,
            succeeded,
        } = s.mode
        {
            s.mode = Mode::HalfOpen {
                in_flight: in_flight.saturating_sub(1),
                succeeded,
            };
        }
    }

    fn trip(&self, s: &mut State, now: u64, why: &str) {
        let open_for = u64::try_from(self.config.open_for.as_std().as_nanos()).unwrap_or(u64::MAX);
        s.mode = Mode::Open {
            until: now.saturating_add(open_for),
        };
        s.consecutive = 0;
        s.buckets = [Bucket::default(); BUCKETS];
        tracing::warn!(reason = why, open_for = %self.config.open_for, "circuit opened: requests to the upstream are paused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(yaml: &str) -> CircuitBreaker {
        yaml_serde::from_str(yaml).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_recovers_through_probes() {
        let b = Breaker::new(&config(
            "{consecutive_failures: 3, open_for: 10s, half_open_probes: 2}",
        ));
        for _ in 0..3 {
            let t = b.admit().unwrap();
            b.record(t, false);
        }
        let Err(Open(secs)) = b.admit() else {
            panic!("should be open")
        };
        assert_eq!(secs, 10);
        tokio::time::advance(Duration::from_secs(10)).await;
        // Two probes at most while half-open.
        let p1 = b.admit().unwrap();
        let p2 = b.admit().unwrap();
        assert!(b.admit().is_err());
        b.record(p1, true);
        b.record(p2, true);
        assert!(b.admit().is_ok(), "closed again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_again() {
        let b = Breaker::new(&config("{consecutive_failures: 1, open_for: 5s}"));
        let t = b.admit().unwrap();
        b.record(t, false);
        tokio::time::advance(Duration::from_secs(5)).await;
        let probe = b.admit().unwrap();
        b.record(probe, false);
        assert!(b.admit().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_the_error_ratio_over_the_window_only() {
        let b = Breaker::new(&config(
            "{error_ratio: 0.5, min_requests: 10, window: 10s, consecutive_failures: 100}",
        ));
        // Alternating success and failure: 50% once 10 requests are in the window.
        for i in 0..9 {
            let t = b.admit().unwrap();
            b.record(t, i % 2 == 0);
        }
        assert!(b.admit().is_ok());
        // Old outcomes leave the window: 20 s later the count starts again.
        tokio::time::advance(Duration::from_secs(20)).await;
        for _ in 0..5 {
            let t = b.admit().unwrap();
            b.record(t, false);
        }
        assert!(b.admit().is_ok(), "five requests are below min_requests");
        for _ in 0..5 {
            let t = b.admit().unwrap();
            b.record(t, true);
        }
        let t = b.admit().unwrap();
        b.record(t, false);
        assert!(b.admit().is_err(), "6 of 11 failed");
    }
}
