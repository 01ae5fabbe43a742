//! One function's metrics for one time slot, and the fixed log-scale histogram of durations
//! that lets slots merge exactly: pure, no IO.
//!
//! The histogram has [`BUCKETS`] buckets with edges `0.1 ms × r^i` (`r` chosen so that the last
//! edge is 900 s), so a percentile read from it is within one bucket (about ±14 % around the
//! bucket's geometric middle) of the true value. Two histograms merge by adding counts, so a
//! percentile of merged minutes is the percentile of all their invocations.

/// Buckets per histogram.
pub const BUCKETS: usize = 64;
/// The lowest edge, ms: bucket 0 holds everything shorter.
const LOW_MS: f64 = 0.1;
/// The highest edge, ms (Lambda's longest timeout).
const HIGH_MS: f64 = 900_000.0;

/// Counts of durations per log-scale bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: [u32; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
        }
    }
}

/// `ln(r)`, where `r` is the ratio between consecutive edges.
fn ln_ratio() -> f64 {
    (HIGH_MS / LOW_MS).ln() / (BUCKETS - 1) as f64
}

impl Histogram {
    /// The bucket a duration falls in: 0 below 0.1 ms, then `[edge(i-1), edge(i))`, the last
    /// one open-ended.
    pub fn bucket_of(ms: f64) -> usize {
        if ms.is_nan() || ms < LOW_MS {
            return 0;
        }
        let i = ((ms / LOW_MS).ln() / ln_ratio()).floor() as usize + 1;
        i.min(BUCKETS - 1)
    }

    /// The upper edge of bucket `i`, ms.
    fn edge(i: usize) -> f64 {
        LOW_MS * (ln_ratio() * i as f64).exp()
    }

    /// The value a percentile in bucket `i` reads as: the geometric middle of its edges.
    fn value_of(i: usize) -> f64 {
        match i {
            0 => LOW_MS / 2.0,
            i => (Self::edge(i - 1) * Self::edge(i)).sqrt(),
        }
    }

    /// Counts one duration.
    pub fn record(&mut self, ms: f64) {
        let c = &mut self.counts[Self::bucket_of(ms)];
        *c = c.saturating_add(1);
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// Durations counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| *c as u64).sum()
    }

    /// The `q`-quantile (0 < q ≤ 1), ms; `None` when nothing was counted.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += *c as u64;
            if seen >= rank {
                return Some(Self::value_of(i));
            }
        }
        Some(Self::value_of(BUCKETS - 1))
    }

    /// The stored form: the counts as little-endian `u32`s.
    pub fn to_blob(&self) -> Vec<u8> {
        self.counts.iter().flat_map(|c| c.to_le_bytes()).collect()
    }

    /// Reads the stored form; a blob of another length reads as empty.
    pub fn from_blob(blob: &[u8]) -> Self {
        let mut h = Self::default();
        if blob.len() == BUCKETS * 4 {
            for (c, b) in h.counts.iter_mut().zip(blob.chunks_exact(4)) {
                *c = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        h
    }
}

/// What happened to one function in one slot (a minute, or 15 minutes once downsampled).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricSlot {
    /// Invocations that ran (successes and errors; throttles are not invocations).
    pub invocations: u64,
    /// Function errors, timeouts, crashes and failed INITs.
    pub errors: u64,
    /// Requests refused for concurrency.
    pub throttles: u64,
    /// Invocations that started an environment.
    pub cold_starts: u64,
    /// The most invocations in flight at once.
    pub concurrency_max: u64,
    /// Σ memory MB × billed ms (1,024,000 make a GB-second).
    pub mb_ms: u64,
    /// Invocation durations.
    pub durations: Histogram,
}

impl MetricSlot {
    /// Adds `other`: sums add, the maximum is the larger one, histograms merge.
    pub fn merge(&mut self, other: &MetricSlot) {
        self.invocations += other.invocations;
        self.errors += other.errors;
        self.throttles += other.throttles;
        self.cold_starts += other.cold_starts;
        self.concurrency_max = self.concurrency_max.max(other.concurrency_max);
        self.mb_ms += other.mb_ms;
        self.durations.merge(&other.durations);
    }

    /// Billed GB-seconds.
    pub fn gb_seconds(&self) -> f64 {
        self.mb_ms as f64 / 1_024_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_range_in_order() {
        assert_eq!(Histogram::bucket_of(0.0), 0);
        assert_eq!(Histogram::bucket_of(0.05), 0);
        assert_eq!(Histogram::bucket_of(0.1), 1);
        assert_eq!(Histogram::bucket_of(1e9), BUCKETS - 1);
        assert_eq!(Histogram::bucket_of(f64::NAN), 0);
        let mut last = 0;
        for ms in [0.2, 1.0, 5.0, 50.0, 500.0, 5_000.0, 50_000.0, 600_000.0] {
            let b = Histogram::bucket_of(ms);
            assert!(b > last, "{ms} ms in bucket {b} after {last}");
            last = b;
        }
    }

    #[test]
    fn percentiles_are_within_a_bucket() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(ms as f64);
        }
        let p50 = h.quantile(0.5).unwrap();
        let p99 = h.quantile(0.99).unwrap();
        assert!((50.0 * 0.85..=50.0 * 1.15).contains(&p50), "{p50}");
        assert!((99.0 * 0.85..=99.0 * 1.15).contains(&p99), "{p99}");
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn merged_histograms_equal_one_histogram_of_everything() {
        let (mut a, mut b, mut all) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for i in 0..500 {
            let ms = (i as f64 * 7.3) % 2_000.0;
            if i % 3 == 0 { &mut a } else { &mut b }.record(ms);
            all.record(ms);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(a.quantile(0.99), all.quantile(0.99));
        assert_eq!(Histogram::from_blob(&a.to_blob()), a);
        assert_eq!(Histogram::from_blob(b"short"), Histogram::default());
    }

    #[test]
    fn slots_merge_sums_max_and_histograms() {
        let mut a = MetricSlot {
            invocations: 3,
            errors: 1,
            throttles: 2,
            cold_starts: 1,
            concurrency_max: 4,
            mb_ms: 1_024_000,
            ..Default::default()
        };
        a.durations.record(10.0);
        let mut b = MetricSlot {
            invocations: 5,
            concurrency_max: 2,
            mb_ms: 512_000,
            ..Default::default()
        };
        b.durations.record(1_000.0);
        a.merge(&b);
        assert_eq!(
            (a.invocations, a.errors, a.throttles, a.cold_starts),
            (8, 1, 2, 1)
        );
        assert_eq!(a.concurrency_max, 4);
        assert_eq!(a.gb_seconds(), 1.5);
        assert_eq!(a.durations.total(), 2);
    }
}
