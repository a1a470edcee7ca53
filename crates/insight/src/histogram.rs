//! A mergeable latency histogram in microseconds, log-linear like HdrHistogram: values
//! below 64 µs are counted exactly; above, every power of two is split into 64 buckets of
//! equal width, so a bucket is at most 1/64 of its lower bound wide. A quantile is answered
//! with its bucket's midpoint: **within 0.8 % of the true value** (exact below 64 µs).
//! Histograms add bucket by bucket, so aggregates from any number of nodes and minutes
//! merge exactly. Buckets are kept sparse: latencies cluster, so a histogram holds few.

/// Sub-buckets per power of two: 2^6.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Largest value kept apart (about 12.7 days in µs); larger ones count in the last bucket.
const MAX_VALUE: u64 = (1 << 40) - 1;

/// The bucket a value falls in.
pub fn bucket_of(v: u64) -> u16 {
    let v = v.min(MAX_VALUE);
    if v < SUB {
        return v as u16;
    }
    let e = 63 - v.leading_zeros(); // floor(log2 v) >= SUB_BITS
    let shift = e - SUB_BITS;
    let sub = (v >> shift) - SUB;
    (SUB + u64::from(shift) * SUB + sub) as u16
}

/// The values `[low, high]` of a bucket.
pub fn bucket_bounds(b: u16) -> (u64, u64) {
    let b = u64::from(b);
    if b < SUB {
        return (b, b);
    }
    let shift = (b - SUB) / SUB;
    let sub = (b - SUB) % SUB;
    let low = (SUB + sub) << shift;
    (low, low + (1 << shift) - 1)
}

/// Counts per bucket, sorted by bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    buckets: Vec<(u16, u64)>,
    count: u64,
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram::default()
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Counts one value (µs).
    pub fn record(&mut self, micros: u64) {
        self.record_n(bucket_of(micros), 1);
    }

    fn record_n(&mut self, bucket: u16, n: u64) {
        match self.buckets.binary_search_by_key(&bucket, |(b, _)| *b) {
            Ok(i) => self.buckets[i].1 += n,
            Err(i) => self.buckets.insert(i, (bucket, n)),
        }
        self.count += n;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        if self.buckets.is_empty() {
            self.buckets = other.buckets.clone();
            self.count = other.count;
            return;
        }
        let mut out = Vec::with_capacity(self.buckets.len() + other.buckets.len());
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.buckets, &other.buckets);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    out.push((x.0, x.1 + y.1));
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.0 < y.0 => {
                    out.push(*x);
                    i += 1;
                }
                (Some(_), Some(y)) | (None, Some(y)) => {
                    out.push(*y);
                    j += 1;
                }
                (Some(x), None) => {
                    out.push(*x);
                    i += 1;
                }
                (None, None) => break,
            }
        }
        self.buckets = out;
        self.count += other.count;
    }

    /// The value at quantile `q` (0..=1), nearest rank, as its bucket's midpoint; `None`
    /// when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        // Nearest rank: the smallest value with at least ceil(q * n) values at or below it.
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                let (lo, hi) = bucket_bounds(*b);
                return Some(lo + (hi - lo) / 2);
            }
        }
        self.buckets.last().map(|(b, _)| bucket_bounds(*b).1)
    }

    /// `bucket:count` pairs separated by commas (what the store keeps).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.buckets.len() * 8);
        for (i, (b, n)) in self.buckets.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&b.to_string());
            out.push(':');
            out.push_str(&n.to_string());
        }
        out
    }

    /// Reads [`Histogram::encode`]'s form; `None` for anything else.
    pub fn decode(text: &str) -> Option<Histogram> {
        let mut h = Histogram::new();
        if text.is_empty() {
            return Some(h);
        }
        for pair in text.split(',') {
            let (b, n) = pair.split_once(':')?;
            let b: u16 = b.parse().ok()?;
            let n: u64 = n.parse().ok()?;
            if u64::from(b) > u64::from(bucket_of(MAX_VALUE)) {
                return None;
            }
            h.record_n(b, n);
        }
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_values_are_exact_and_buckets_tile_the_range() {
        for v in 0..64 {
            assert_eq!(bucket_bounds(bucket_of(v)), (v, v));
        }
        let mut next = 0;
        for b in 0..=bucket_of(MAX_VALUE) {
            let (lo, hi) = bucket_bounds(b);
            assert_eq!(lo, next, "bucket {b}");
            assert!(hi >= lo);
            assert_eq!(bucket_of(lo), b);
            assert_eq!(bucket_of(hi), b);
            next = hi + 1;
        }
        assert_eq!(next, MAX_VALUE + 1);
    }

    #[test]
    fn quantiles_of_a_known_set() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000); // 1 ms .. 1 s
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 <= 0.008, "{p50}");
        assert!((p99 - 990_000.0).abs() / 990_000.0 <= 0.008, "{p99}");
        assert_eq!(Histogram::new().quantile(0.5), None);
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let mut h = Histogram::new();
        for v in [3, 3, 70, 1_000_000, u64::MAX] {
            h.record(v);
        }
        assert_eq!(Histogram::decode(&h.encode()), Some(h));
        assert_eq!(Histogram::decode(""), Some(Histogram::new()));
        for bad in ["x", "1", "1:", ":1", "1:2,", "99999:1", "1:-1"] {
            assert_eq!(Histogram::decode(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn a_quantile_is_within_its_stated_error(mut values in proptest::collection::vec(0u64..50_000_000, 1..400), q in 0.0f64..=1.0) {
            let mut h = Histogram::new();
            for v in &values {
                h.record(*v);
            }
            values.sort_unstable();
            let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
            let truth = values[rank - 1] as f64;
            let got = h.quantile(q).unwrap() as f64;
            if truth < 64.0 {
                prop_assert_eq!(got, truth);
            } else {
                prop_assert!((got - truth).abs() / truth <= 0.008, "q {} truth {} got {}", q, truth, got);
            }
        }

        #[test]
        fn merging_is_the_same_as_recording_everything_in_one(a in proptest::collection::vec(0u64..10_000_000, 0..200), b in proptest::collection::vec(0u64..10_000_000, 0..200)) {
            let (mut ha, mut hb, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
            for v in &a { ha.record(*v); all.record(*v); }
            for v in &b { hb.record(*v); all.record(*v); }
            let mut ab = ha.clone();
            ab.merge(&hb);
            let mut ba = hb.clone();
            ba.merge(&ha);
            prop_assert_eq!(&ab, &all);
            prop_assert_eq!(&ba, &all);
        }
    }
}
