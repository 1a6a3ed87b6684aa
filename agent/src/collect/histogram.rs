//! A cumulative histogram for durations (probes, pushed request timings), exported the
//! Prometheus way: `_bucket{le="..."}` per upper bound plus `+Inf`, `_sum` and `_count`.

use super::{Labels, Part, Sample};
use crate::catalogue::Metric;

/// Upper bounds for request and probe durations, in seconds (from 5 ms to 10 s, the range
/// the default latency rules care about: p95 at 2 s / 5 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counts of observations per bucket, their sum and count.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last slot is above every bound.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one observation. Non-finite values are ignored (they would poison `_sum`).
    pub fn observe(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        let slot = self.bounds.partition_point(|b| *b < v);
        if let Some(c) = self.counts.get_mut(slot) {
            *c += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The samples of `metric` with `labels`: cumulative buckets, `+Inf`, sum, count.
    pub fn samples(&self, metric: &'static Metric, labels: &Labels) -> Vec<Sample> {
        let mut out = Vec::with_capacity(self.bounds.len() + 3);
        let mut cumulative = 0u64;
        for (i, bound) in self
            .bounds
            .iter()
            .chain(std::iter::once(&f64::INFINITY))
            .enumerate()
        {
            cumulative += self.counts.get(i).copied().unwrap_or(0);
            out.push(part(
                metric,
                labels,
                Part::bucket(*bound),
                cumulative as f64,
            ));
        }
        out.push(part(metric, labels, Part::Sum, self.sum));
        out.push(part(metric, labels, Part::Count, self.count as f64));
        out
    }
}

fn part(metric: &'static Metric, labels: &Labels, part: Part, value: f64) -> Sample {
    Sample {
        metric,
        labels: labels.clone(),
        value,
        part,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::exposition::render;
    use crate::catalogue::PROBE_DURATION_SECONDS_HIST;
    use crate::store::Store;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        // (value, bucket it counts in): on a bound counts in that bound's bucket (le = <=).
        for v in [0.05, 0.1, 0.5, 1.0, 3.0, f64::NAN] {
            h.observe(v);
        }
        let labels = vec![("probe", "api".to_string())];
        let s = h.samples(&PROBE_DURATION_SECONDS_HIST, &labels);
        let values: Vec<f64> = s.iter().map(|s| s.value).collect();
        // le=0.1: 0.05, 0.1 -> 2; le=1: + 0.5, 1.0 -> 4; +Inf: + 3.0 -> 5; sum 4.65; count 5
        assert_eq!(values[..3], [2.0, 4.0, 5.0]);
        assert!((values[3] - 4.65).abs() < 1e-9);
        assert_eq!(values[4], 5.0);
        assert_eq!(h.count(), 5, "NaN is ignored");
    }

    #[test]
    fn histograms_render_buckets_in_le_order_then_sum_and_count() {
        let mut h = Histogram::new(&[0.25, 2.5, 10.0]);
        h.observe(0.3);
        let mut store = Store::default();
        store.apply(
            "probe",
            h.samples(&PROBE_DURATION_SECONDS_HIST, &vec![("probe", "api".into())]),
            1,
        );
        let text = render(&store, "h");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "# TYPE lookout_probe_duration_seconds_hist histogram"
        );
        assert_eq!(
            lines[2..].to_vec(),
            [
                "lookout_probe_duration_seconds_hist_bucket{host=\"h\",probe=\"api\",le=\"0.25\"} 0",
                "lookout_probe_duration_seconds_hist_bucket{host=\"h\",probe=\"api\",le=\"2.5\"} 1",
                "lookout_probe_duration_seconds_hist_bucket{host=\"h\",probe=\"api\",le=\"10\"} 1",
                "lookout_probe_duration_seconds_hist_bucket{host=\"h\",probe=\"api\",le=\"+Inf\"} 1",
                "lookout_probe_duration_seconds_hist_sum{host=\"h\",probe=\"api\"} 0.3",
                "lookout_probe_duration_seconds_hist_count{host=\"h\",probe=\"api\"} 1",
            ]
        );
    }
}
