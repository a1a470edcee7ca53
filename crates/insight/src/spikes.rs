//! Spike detectors: per API, each minute's requests, error rate and p95 latency against a
//! seasonal baseline, one per hour of the day (UTC), learnt as exponentially weighted mean
//! and variance of the minutes seen in that hour on earlier days. A minute fires when it is
//! far above its hour's baseline (more than `sigmas` standard deviations and `factor` times
//! the mean) with enough traffic to mean something. Until an hour has learnt from
//! `warmup` minutes, it only learns. A minute that fired is not learnt from.

use std::collections::HashMap;
use std::sync::Arc;

use crate::histogram::Histogram;

/// How far above the baseline is a spike.
#[derive(Clone, Debug, PartialEq)]
pub struct SpikeRule {
    pub sigmas: f64,
    pub factor: f64,
    /// Minutes an hour learns from before it can fire.
    pub warmup: u32,
    /// Requests a minute needs before its error rate or latency is judged (and, for
    /// traffic, the least count that can be a spike).
    pub min_requests: u64,
}

impl Default for SpikeRule {
    fn default() -> Self {
        SpikeRule {
            sigmas: 4.0,
            factor: 3.0,
            warmup: 30,
            min_requests: 50,
        }
    }
}

/// Weight of a new minute in an hour's baseline (about the last 100 minutes of that hour,
/// i.e. the last couple of days).
const ALPHA: f64 = 0.01;

#[derive(Clone, Copy, Debug, Default)]
struct Baseline {
    mean: f64,
    var: f64,
    n: u32,
}

impl Baseline {
    fn learn(&mut self, x: f64) {
        if self.n == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            // Exponentially weighted mean and variance (West, 1979).
            let a = if self.n < 100 {
                1.0 / f64::from(self.n + 1)
            } else {
                ALPHA
            };
            let d = x - self.mean;
            self.mean += a * d;
            self.var = (1.0 - a) * (self.var + a * d * d);
        }
        self.n = self.n.saturating_add(1);
    }

    /// Whether `x` is a spike above this baseline.
    fn exceeded_by(&self, x: f64, rule: &SpikeRule, floor: f64) -> bool {
        // A floor keeps a very steady baseline (σ ≈ 0) from firing on noise.
        let sd = self.var.sqrt().max(floor);
        self.n >= rule.warmup && x > self.mean + rule.sigmas * sd && x > self.mean * rule.factor
    }
}

#[derive(Default)]
struct Minute {
    minute: i64,
    requests: u64,
    errors: u64,
    latency: Histogram,
}

/// Minutes a detector stays quiet for an API after it fired (a lasting rise alerts once in
/// this time, not every minute).
const COOLDOWN_MINUTES: i64 = 15;

#[derive(Default)]
struct ApiState {
    current: Minute,
    /// Per detector (traffic, errors, latency): the first minute it may fire again.
    quiet_until: [i64; 3],
    /// Per hour of the day: requests, error rate, p95 (ms).
    traffic: [Baseline; 24],
    errors: [Baseline; 24],
    latency: [Baseline; 24],
}

/// A minute of an API far above its baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct Spike {
    /// `traffic_spike`, `error_spike` or `latency_spike`.
    pub detector: &'static str,
    pub api: Arc<str>,
    /// Unix minutes.
    pub minute: i64,
    /// Requests, error rate (0..1) or p95 ms in that minute.
    pub value: f64,
    /// The hour's baseline mean.
    pub baseline: f64,
}

/// APIs followed at most.
const MAX_APIS: usize = 10_000;

/// The spike detectors' state.
#[derive(Default)]
pub struct Spikes {
    pub rule: Option<SpikeRule>,
    apis: HashMap<Arc<str>, ApiState>,
}

impl Spikes {
    pub fn new(rule: Option<SpikeRule>) -> Spikes {
        Spikes {
            rule,
            apis: HashMap::new(),
        }
    }

    /// Counts one answered request; answers the spikes of a minute that just closed.
    pub fn observe(
        &mut self,
        api: &Arc<str>,
        minute: i64,
        status: u16,
        total_us: u64,
    ) -> Vec<Spike> {
        let Some(rule) = self.rule.clone() else {
            return Vec::new();
        };
        if !self.apis.contains_key(api) && self.apis.len() >= MAX_APIS {
            return Vec::new();
        }
        let st = self.apis.entry(api.clone()).or_default();
        let mut out = Vec::new();
        if minute > st.current.minute {
            if st.current.requests > 0 {
                out = close(api, st, &rule);
            }
            st.current = Minute {
                minute,
                ..Minute::default()
            };
        } else if minute < st.current.minute {
            // A late event of a closed minute: too late to judge.
            return out;
        }
        st.current.requests += 1;
        if status >= 500 {
            st.current.errors += 1;
        }
        st.current.latency.record(total_us);
        out
    }
}

fn close(api: &Arc<str>, st: &mut ApiState, rule: &SpikeRule) -> Vec<Spike> {
    let m = &st.current;
    let hour = usize::try_from(m.minute.rem_euclid(1440) / 60).unwrap_or(0);
    let mut out = Vec::new();
    let minute = m.minute;
    let spike = |detector, value: f64, b: &Baseline| Spike {
        detector,
        api: api.clone(),
        minute: m.minute,
        value,
        baseline: b.mean,
    };
    let requests = m.requests as f64;
    let traffic = st.traffic[hour];
    if m.requests >= rule.min_requests && traffic.exceeded_by(requests, rule, 1.0) {
        out.push(spike("traffic_spike", requests, &traffic));
    } else {
        st.traffic[hour].learn(requests);
    }
    if m.requests >= rule.min_requests {
        let rate = m.errors as f64 / requests;
        let errors = st.errors[hour];
        // Absolute floor: under 5 % errors is never a spike.
        if rate >= 0.05 && errors.exceeded_by(rate, rule, 0.01) {
            out.push(spike("error_spike", rate, &errors));
        } else {
            st.errors[hour].learn(rate);
        }
        if let Some(p95) = m.latency.quantile(0.95) {
            let ms = p95 as f64 / 1000.0;
            let latency = st.latency[hour];
            if latency.exceeded_by(ms, rule, 1.0) {
                out.push(spike("latency_spike", ms, &latency));
            } else {
                st.latency[hour].learn(ms);
            }
        }
    }
    // One alert per detector and API in a cooldown: the minutes after it are still judged
    // (and not learnt from while they stay high), but not reported again.
    out.retain(|s: &Spike| {
        let i = match s.detector {
            "traffic_spike" => 0,
            "error_spike" => 1,
            _ => 2,
        };
        if minute < st.quiet_until[i] {
            return false;
        }
        st.quiet_until[i] = minute + COOLDOWN_MINUTES;
        true
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests per minute of a normal day: low at night, a morning ramp, a busy
    /// afternoon, with ±10 % noise (a fixed pseudo-random sequence).
    fn normal(minute: i64, seed: &mut u64) -> u64 {
        let h = (minute.rem_euclid(1440) / 60) as f64;
        let base = 60.0 + 240.0 * (-(h - 15.0).powi(2) / 18.0).exp();
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let noise = ((*seed >> 33) % 21) as f64 / 100.0 - 0.10;
        (base * (1.0 + noise)) as u64
    }

    /// Feeds `days` of traffic starting at day 0; `shape` may change a minute's count,
    /// error share and latency. Answers every spike.
    fn feed(
        s: &mut Spikes,
        days: i64,
        mut shape: impl FnMut(i64, u64) -> (u64, u64, u64),
    ) -> Vec<Spike> {
        let api: Arc<str> = Arc::from("orders");
        let mut seed = 7;
        let mut out = Vec::new();
        for minute in 0..days * 1440 {
            let n = normal(minute, &mut seed);
            let (n, errors, latency_us) = shape(minute, n);
            for i in 0..n {
                let status = if i < errors { 503 } else { 200 };
                let jitter = (i % 10) * 1000;
                out.extend(s.observe(&api, minute, status, latency_us + jitter));
            }
        }
        // Close the last minute.
        out.extend(s.observe(&api, days * 1440, 200, 1000));
        out
    }

    fn usual(_: i64, n: u64) -> (u64, u64, u64) {
        (n, n / 100, 20_000)
    }

    #[test]
    fn a_week_of_normal_days_raises_nothing() {
        let mut s = Spikes::new(Some(SpikeRule::default()));
        let spikes = feed(&mut s, 7, usual);
        assert_eq!(spikes, vec![]);
    }

    #[test]
    fn each_spike_fires_on_its_pattern_after_the_baseline_is_learnt() {
        let day3 = 3 * 1440;
        // Traffic: ten minutes at 6× the afternoon's usual.
        let mut s = Spikes::new(Some(SpikeRule::default()));
        let spikes = feed(&mut s, 4, |m, n| {
            let n = if (day3 + 900..day3 + 910).contains(&m) {
                n * 6
            } else {
                n
            };
            usual(m, n)
        });
        assert!(!spikes.is_empty());
        assert!(
            spikes.iter().all(|x| x.detector == "traffic_spike"),
            "{spikes:?}"
        );
        assert!(
            spikes
                .iter()
                .all(|x| (day3 + 900..day3 + 910).contains(&x.minute))
        );
        // Errors: 40 % 503s for five minutes.
        let mut s = Spikes::new(Some(SpikeRule::default()));
        let spikes = feed(&mut s, 4, |m, n| {
            if (day3 + 600..day3 + 605).contains(&m) {
                (n, n * 4 / 10, 20_000)
            } else {
                usual(m, n)
            }
        });
        assert_eq!(spikes.len(), 1, "{spikes:?}");
        assert_eq!(spikes[0].detector, "error_spike");
        assert_eq!(spikes[0].minute, day3 + 600);
        // Latency: the upstream slows from 20 ms to 400 ms for five minutes.
        let mut s = Spikes::new(Some(SpikeRule::default()));
        let spikes = feed(&mut s, 4, |m, n| {
            if (day3 + 700..day3 + 705).contains(&m) {
                (n, n / 100, 400_000)
            } else {
                usual(m, n)
            }
        });
        assert_eq!(spikes.len(), 1, "{spikes:?}");
        assert_eq!(spikes[0].detector, "latency_spike");
        assert!(
            spikes[0].value > 390.0 && spikes[0].baseline < 40.0,
            "{spikes:?}"
        );
    }

    #[test]
    fn a_lasting_rise_alerts_once_per_cooldown() {
        let day3 = 3 * 1440;
        let mut s = Spikes::new(Some(SpikeRule::default()));
        // Forty minutes at 6×: alerts at the start and after each 15-minute cooldown.
        let spikes = feed(&mut s, 4, |m, n| {
            let n = if (day3 + 900..day3 + 940).contains(&m) {
                n * 6
            } else {
                n
            };
            usual(m, n)
        });
        let minutes: Vec<i64> = spikes.iter().map(|x| x.minute - day3).collect();
        assert_eq!(minutes, [900, 915, 930], "{spikes:?}");
    }

    #[test]
    fn the_first_day_only_learns_and_off_means_off() {
        let mut s = Spikes::new(Some(SpikeRule::default()));
        // A huge burst in the first hour: nothing to compare with yet.
        let spikes = feed(&mut s, 1, |m, n| usual(m, if m < 10 { n * 50 } else { n }));
        assert_eq!(spikes, vec![]);
        let mut off = Spikes::new(None);
        assert!(feed(&mut off, 1, |m, n| (n * 10, n, 900_000 + m as u64)).is_empty());
    }
}
