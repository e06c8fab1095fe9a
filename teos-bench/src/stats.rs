//! Latency histograms (HdrHistogram, microsecond resolution) and the summaries printed from them.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Largest latency a histogram records (microseconds): 10 minutes. Longer samples are clamped.
const MAX_MICROS: u64 = 600_000_000;

/// Latencies in microseconds, 3 significant digits (0.1 % error) from 1 µs to 10 minutes.
#[derive(Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl std::fmt::Debug for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> Latencies {
        // Bounds are constants that HdrHistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5).
        let histogram = Histogram::new_with_bounds(1, MAX_MICROS, 3)
            .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"));
        Latencies { histogram }
    }

    /// Records one sample (clamped to 1 µs .. 10 min).
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        self.histogram.saturating_record(micros);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so `add` cannot fail; saturate rather than panic regardless.
        if self.histogram.add(&other.histogram).is_err() {
            for v in other.histogram.iter_recorded() {
                self.histogram
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The latency at `quantile` (0.0..=1.0), `Duration::ZERO` when empty.
    pub fn quantile(&self, quantile: f64) -> Duration {
        if self.histogram.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.histogram.value_at_quantile(quantile))
    }

    /// The largest sample.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.histogram.max())
    }

    /// The smallest sample.
    pub fn min(&self) -> Duration {
        Duration::from_micros(self.histogram.min())
    }

    /// `p50 … p99.9, max` on one line, in milliseconds.
    pub fn summary(&self) -> String {
        format!(
            "n={} min={} p50={} p90={} p99={} p99.9={} max={}",
            self.count(),
            ms(self.min()),
            ms(self.quantile(0.50)),
            ms(self.quantile(0.90)),
            ms(self.quantile(0.99)),
            ms(self.quantile(0.999)),
            ms(self.max())
        )
    }
}

/// A duration in milliseconds with two decimals, e.g. `"3.25 ms"`.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The median of `values` (mean of the two middle ones for an even count); `None` when empty.
pub fn median(values: &[Duration]) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2),
    }
}

/// The `q` quantile (0..=1) of `values` by nearest rank (the smallest value with at least `q` of
/// the values at or below it); `None` when empty.
pub fn percentile(values: &[Duration], q: f64) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_recorded_samples() {
        let mut l = Latencies::new();
        for i in 1..=100u64 {
            l.record(Duration::from_millis(i));
        }
        assert_eq!(l.count(), 100);
        let p50 = l.quantile(0.5).as_micros() as i64;
        let p99 = l.quantile(0.99).as_micros() as i64;
        // 3 significant digits: within 0.1 %.
        assert!((p50 - 50_000).abs() <= 50, "p50 was {p50} µs");
        assert!((p99 - 99_000).abs() <= 99, "p99 was {p99} µs");
        assert!(l.max() >= Duration::from_millis(100));
    }

    #[test]
    fn merging_adds_the_samples_of_both() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(9));
        b.record(Duration::from_millis(9));
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert!(a.quantile(0.5) >= Duration::from_millis(8));
    }

    #[test]
    fn an_empty_histogram_reports_zero() {
        assert_eq!(Latencies::new().quantile(0.99), Duration::ZERO);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        let d = Duration::from_millis;
        assert_eq!(median(&[d(3), d(1), d(2)]), Some(d(2)));
        assert_eq!(
            median(&[d(4), d(1), d(2), d(3)]),
            Some(Duration::from_micros(2500))
        );
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let d = Duration::from_millis;
        let values: Vec<Duration> = (1..=10).map(d).collect();
        assert_eq!(percentile(&values, 0.99), Some(d(10)));
        assert_eq!(percentile(&values, 0.5), Some(d(5)));
        let hundred: Vec<Duration> = (1..=100).map(d).collect();
        assert_eq!(percentile(&hundred, 0.99), Some(d(99)));
        assert_eq!(percentile(&[], 0.99), None);
    }
}
