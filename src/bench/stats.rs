//! Latency statistics without keeping every sample ([`Histogram`]), and
//! the summary of a figure over repeated runs ([`Spread`]).
//!
//! A fan-out run can deliver millions of lines; keeping one number per
//! delivery would cost the bench memory and cache misses while it measures.
//! A log-linear histogram (the idea behind HdrHistogram) keeps a fixed 60 KB
//! per receiving thread, records in a few instructions, merges by adding
//! counts, and answers percentiles within 1% of the true value.

use std::time::Duration;

/// Sub-buckets per power of two: values are kept with 7 significant bits,
/// so any reported percentile is within 1/128 (0.8%) below the true value.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for any u64 nanosecond value.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// Counts of nanosecond values in log-linear buckets, plus the exact max.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    /// Records one value (nanoseconds).
    pub fn record(&mut self, value: u64) {
        self.counts[bucket_of(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded, exactly (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at percentile `p` (0 to 100): the smallest recorded value
    /// that at least `p`% of the values do not exceed, rounded down to its
    /// bucket (never above the exact max). 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_low(bucket).min(self.max);
            }
        }
        self.max
    }

    /// [`Histogram::percentile`] as a [`Duration`].
    pub fn percentile_duration(&self, p: f64) -> Duration {
        Duration::from_nanos(self.percentile(p))
    }
}

fn bucket_of(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let top = 63 - value.leading_zeros(); // >= SUB_BITS
    let shift = top - SUB_BITS;
    let sub = (value >> shift) - SUB; // 0..SUB
    ((shift as u64 + 1) * SUB + sub) as usize
}

fn bucket_low(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < SUB {
        return bucket;
    }
    let shift = bucket / SUB - 1;
    let sub = bucket % SUB;
    (SUB + sub) << shift
}

/// One figure over repeated runs: its median and spread, and how many runs
/// had it (runs that could not measure it, NaN, are left out).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// First and third quartiles (linear interpolation between the sorted
    /// values, as spreadsheets do).
    pub q1: f64,
    pub q3: f64,
}

impl Spread {
    /// The spread of `values`, ignoring non-finite ones; `None` when none
    /// is left.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Spread {
            n: v.len(),
            median: quantile(&v, 0.5),
            min: v[0],
            max: v[v.len() - 1],
            q1: quantile(&v, 0.25),
            q3: quantile(&v, 0.75),
        })
    }

    /// (max - min) / median: how far apart the runs were, relative.
    pub fn relative_range(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / self.median.abs()
        }
    }
}

/// The `q` quantile (0 to 1) of sorted `v`, interpolating linearly.
fn quantile(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.percentile(50.0), 50);
        assert_eq!(h.percentile(99.0), 99);
        assert_eq!(h.percentile(100.0), 100);
        assert_eq!(h.percentile(0.0), 1);
        assert_eq!(h.max(), 100);
    }

    #[test]
    fn large_values_are_within_one_percent() {
        let mut h = Histogram::new();
        let values: Vec<u64> = (1..=10_000).map(|i| i * 1_237).collect();
        for &v in &values {
            h.record(v);
        }
        for p in [50.0, 90.0, 99.0, 99.9] {
            let exact = values[((p / 100.0) * values.len() as f64).ceil() as usize - 1];
            let got = h.percentile(p);
            assert!(got <= exact, "p{p}: {got} > {exact}");
            assert!(
                (exact - got) as f64 <= exact as f64 / 100.0,
                "p{p}: {got} vs {exact}"
            );
        }
        assert_eq!(h.max(), 10_000 * 1_237);
    }

    #[test]
    fn buckets_are_ordered_and_cover_every_value() {
        let mut last = 0;
        for v in (0..20).chain((0..64).map(|s| 1u64 << s)).chain([u64::MAX]) {
            let b = bucket_of(v);
            assert!(b < BUCKETS, "{v}");
            assert!(bucket_low(b) <= v, "{v}");
            if v >= last {
                assert!(b >= bucket_of(last));
            }
            last = v;
        }
    }

    #[test]
    fn merge_adds_and_empty_is_zero() {
        let empty = Histogram::new();
        assert_eq!(empty.percentile(99.0), 0);
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(10);
        b.record(1_000_000);
        b.record(20);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max(), 1_000_000);
        assert_eq!(a.percentile(50.0), 20);
    }

    #[test]
    fn spread_of_synthetic_samples() {
        let s = Spread::of([5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.n, s.median, s.min, s.max), (5, 3.0, 1.0, 5.0));
        assert_eq!((s.q1, s.q3), (2.0, 4.0));
        assert!((s.relative_range() - 4.0 / 3.0).abs() < 1e-12);
        // even count: the median is the mean of the middle two
        let s = Spread::of([10.0, 40.0, 20.0, 30.0]).unwrap();
        assert_eq!(s.median, 25.0);
        assert_eq!((s.q1, s.q3), (17.5, 32.5));
        // failed runs (NaN) are not counted
        let s = Spread::of([f64::NAN, 7.0, f64::INFINITY]).unwrap();
        assert_eq!((s.n, s.median, s.min, s.max), (1, 7.0, 7.0, 7.0));
        assert_eq!(Spread::of([f64::NAN]), None);
        assert_eq!(Spread::of(Vec::new()), None);
    }
}
