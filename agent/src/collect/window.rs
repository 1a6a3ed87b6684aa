//! A sliding-window summary of durations: count, sum, errors, min, max and quantile estimates
//! over the last `window`, in constant memory whatever the request rate.
//!
//! The window is a ring of [`SLOTS`] time slots of `window / SLOTS` each. An observation goes
//! into the slot of its time; a slot older than the window is cleared when its place in the
//! ring is reused, and skipped when read. A read at time `t` covers the slot of `t` (partly
//! elapsed) and the `SLOTS - 1` before it: between `window - slot` and `window` of history.
//! [`Window::read`] reports the span it actually covered so rates are exact.
//!
//! Durations are counted in log-linear buckets: 8 linear sub-buckets per power of two from
//! 2^-13 s (122 µs) to 2^8 s (256 s), so a bucket is at most 12.5% wide and a quantile,
//! interpolated inside its bucket and clamped to the window's min and max, is within a few
//! percent of the exact one. Raw values are never kept: at 200,000 observations a second a
//! one-minute window of them would take 100 MB.

use std::time::Duration;

/// Time slots per window.
pub const SLOTS: usize = 12;

/// Smallest power of two with buckets of its own: 2^-13 s (122 µs); below it, one bucket.
const MIN_EXP: i32 = -13;
/// Powers of two covered: up to 2^(MIN_EXP + OCTAVES) = 2^8 s (256 s); above it, one bucket.
const OCTAVES: i32 = 21;
/// Linear sub-buckets per power of two (a power of two: taken from the mantissa's top bits).
const SUB: usize = 8;
const SUB_BITS: u32 = SUB.trailing_zeros();
/// Buckets: one below 2^MIN_EXP, `OCTAVES * SUB` log-linear ones, one above.
const BUCKETS: usize = OCTAVES as usize * SUB + 2;

/// The bucket of duration `v` seconds (finite, `>= 0`).
fn bucket_of(v: f64) -> usize {
    if v < f64::powi(2.0, MIN_EXP) {
        return 0;
    }
    let bits = v.to_bits();
    // Unbiased exponent of a normal number (every v >= 2^-13 is normal).
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1023;
    if exp >= MIN_EXP + OCTAVES {
        return BUCKETS - 1;
    }
    let sub = ((bits >> (52 - SUB_BITS)) & (SUB as u64 - 1)) as usize;
    1 + (exp - MIN_EXP) as usize * SUB + sub
}

/// Lower and upper bound of bucket `i` (the last bucket's upper bound is +Inf).
fn bucket_bounds(i: usize) -> (f64, f64) {
    if i == 0 {
        return (0.0, f64::powi(2.0, MIN_EXP));
    }
    if i >= BUCKETS - 1 {
        return (f64::powi(2.0, MIN_EXP + OCTAVES), f64::INFINITY);
    }
    let octave = (i - 1) / SUB;
    let sub = (i - 1) % SUB;
    let base = f64::powi(2.0, MIN_EXP + octave as i32);
    let width = base / SUB as f64;
    (base + width * sub as f64, base + width * (sub + 1) as f64)
}

/// One time slot: what was observed during it.
#[derive(Debug, Clone, Default)]
struct Slot {
    /// Which slot of time this is (`time / slot length`); `None`: never used.
    epoch: Option<u64>,
    count: u64,
    errors: u64,
    sum: f64,
    min: f64,
    max: f64,
    /// Counts of buckets `first..first + counts.len()`: grown on demand, so a route whose
    /// durations span one decade holds about 30 counters, not [`BUCKETS`].
    first: usize,
    counts: Vec<u32>,
}

impl Slot {
    fn reset(&mut self, epoch: u64) {
        self.epoch = Some(epoch);
        self.count = 0;
        self.errors = 0;
        self.sum = 0.0;
        self.min = f64::INFINITY;
        self.max = 0.0;
        self.counts.clear();
    }

    fn add(&mut self, v: f64, error: bool) {
        self.count += 1;
        self.errors += u64::from(error);
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        let b = bucket_of(v);
        if self.counts.is_empty() {
            self.first = b;
            self.counts.push(0);
        } else if b < self.first {
            let grow = self.first - b;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.first = b;
        } else if b >= self.first + self.counts.len() {
            self.counts.resize(b - self.first + 1, 0);
        }
        if let Some(c) = self.counts.get_mut(b - self.first) {
            *c = c.saturating_add(1);
        }
    }
}

/// A sliding window of durations. Time is milliseconds on any monotonic clock, given by the
/// caller, so tests need no sleeping.
#[derive(Debug, Clone)]
pub struct Window {
    slot_ms: u64,
    slots: Vec<Slot>,
}

/// What a window holds at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowStats {
    /// Observations in the window.
    pub count: u64,
    /// Of which errors (as flagged when added).
    pub errors: u64,
    /// Sum of the durations.
    pub sum: f64,
    /// Milliseconds of history the window covered (at most the window length).
    pub span_ms: u64,
    /// Quantile estimates for the `qs` asked; empty when `count` is 0.
    pub quantiles: Vec<f64>,
}

impl Window {
    /// An empty window of length `window` (at least [`SLOTS`] milliseconds).
    pub fn new(window: Duration) -> Self {
        let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        Window {
            slot_ms: (ms / SLOTS as u64).max(1),
            slots: vec![Slot::default(); SLOTS],
        }
    }

    /// Adds a duration of `v` seconds (finite, `>= 0`) observed at `at_ms`, an error or not.
    pub fn add(&mut self, at_ms: u64, v: f64, error: bool) {
        let epoch = at_ms / self.slot_ms;
        let len = self.slots.len() as u64;
        if let Some(slot) = self.slots.get_mut((epoch % len) as usize) {
            if slot.epoch != Some(epoch) {
                slot.reset(epoch);
            }
            slot.add(v, error);
        }
    }

    /// The window at `now_ms`, with estimates of quantiles `qs` (each in 0..=1).
    /// `since_ms` is when observations could first arrive (start-up), so a young window's
    /// span, and the rate derived from it, are not diluted by time nobody was counting.
    pub fn read(&self, now_ms: u64, since_ms: u64, qs: &[f64]) -> WindowStats {
        let current = now_ms / self.slot_ms;
        let oldest = current.saturating_sub(self.slots.len() as u64 - 1);
        let live = || {
            self.slots
                .iter()
                .filter(move |s| s.epoch.is_some_and(|e| (oldest..=current).contains(&e)))
        };
        let mut merged = [0u64; BUCKETS];
        let (mut count, mut errors, mut sum) = (0u64, 0u64, 0.0f64);
        let (mut min, mut max) = (f64::INFINITY, 0.0f64);
        for slot in live() {
            count += slot.count;
            errors += slot.errors;
            sum += slot.sum;
            min = min.min(slot.min);
            max = max.max(slot.max);
            for (i, c) in slot.counts.iter().enumerate() {
                if let Some(m) = merged.get_mut(slot.first + i) {
                    *m += u64::from(*c);
                }
            }
        }
        let start = (oldest * self.slot_ms).max(since_ms);
        let span_ms = now_ms.saturating_sub(start);
        let quantiles = if count == 0 {
            Vec::new()
        } else {
            qs.iter()
                .map(|q| quantile(&merged, count, *q, max).clamp(min, max))
                .collect()
        };
        WindowStats {
            count,
            errors,
            sum,
            span_ms,
            quantiles,
        }
    }
}

/// The `q` quantile of `count` observations in `buckets`, interpolated linearly inside the
/// bucket where rank `q * count` falls (the Prometheus `histogram_quantile` way); the open
/// top bucket ends at `max`, the largest value observed.
fn quantile(buckets: &[u64; BUCKETS], count: u64, q: f64, max: f64) -> f64 {
    let rank = q.clamp(0.0, 1.0) * count as f64;
    let mut below = 0u64;
    for (i, c) in buckets.iter().enumerate() {
        if *c == 0 {
            continue;
        }
        if (below + c) as f64 >= rank {
            let (lo, hi) = bucket_bounds(i);
            let hi = if hi.is_infinite() { max.max(lo) } else { hi };
            let into = ((rank - below as f64) / *c as f64).clamp(0.0, 1.0);
            return lo + (hi - lo) * into;
        }
        below += c;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_contain_their_values() {
        for i in 0..BUCKETS - 1 {
            let (lo, hi) = bucket_bounds(i);
            assert!(lo < hi, "bucket {i}: {lo}..{hi}");
            assert_eq!(hi, bucket_bounds(i + 1).0, "gap after bucket {i}");
            assert_eq!(bucket_of(lo), i, "lower bound of bucket {i}");
            assert!((hi - lo) / lo.max(f64::MIN_POSITIVE) <= 0.125 || i == 0);
        }
        for v in [
            0.0, 1e-9, 0.000_2, 0.003, 0.1, 0.999, 1.0, 2.5, 255.9, 256.0, 1e9,
        ] {
            let (lo, hi) = bucket_bounds(bucket_of(v));
            assert!(lo <= v && v < hi, "{v} not in {lo}..{hi}");
        }
    }

    fn quantiles_of(values: &[f64], qs: &[f64]) -> Vec<f64> {
        let mut w = Window::new(Duration::from_secs(60));
        for v in values {
            w.add(1_000, *v, false);
        }
        w.read(1_000, 0, qs).quantiles
    }

    fn exact(values: &[f64], q: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn quantiles_of_known_distributions_are_within_a_few_percent() {
        // Uniform 1 ms .. 1 s, exponential-ish, and a bimodal 20 ms / 3 s mix.
        let uniform: Vec<f64> = (1..=1000).map(|i| f64::from(i) / 1000.0).collect();
        let mut rng = fastrand::Rng::with_seed(7);
        let exponential: Vec<f64> = (0..20_000).map(|_| -0.2 * (1.0 - rng.f64()).ln()).collect();
        let bimodal: Vec<f64> = (0..1000)
            .map(|i| if i % 10 == 0 { 3.0 } else { 0.02 })
            .collect();
        for (name, values) in [
            ("uniform", uniform),
            ("exponential", exponential),
            ("bimodal", bimodal),
        ] {
            let qs = [0.5, 0.95, 0.99];
            let got = quantiles_of(&values, &qs);
            for (q, g) in qs.iter().zip(&got) {
                let want = exact(&values, *q);
                let error = (g - want).abs() / want;
                assert!(error < 0.05, "{name} p{q}: {g} vs exact {want}");
            }
        }
    }

    #[test]
    fn identical_values_give_that_value_exactly() {
        let got = quantiles_of(&[0.2; 100], &[0.5, 0.99]);
        assert_eq!(got, vec![0.2, 0.2]);
    }

    #[test]
    fn extreme_values_stay_within_min_and_max() {
        let got = quantiles_of(&[0.0, 0.0, 0.0, 1000.0], &[0.0, 0.5, 1.0]);
        assert_eq!(got[0], 0.0);
        // Inside the lowest bucket: off by less than its width.
        assert!(got[1] < 0.000_123, "{}", got[1]);
        assert_eq!(got[2], 1000.0);
    }

    #[test]
    fn old_slots_leave_the_window() {
        let mut w = Window::new(Duration::from_secs(60)); // 5 s slots
        w.add(0, 1.0, true);
        w.add(30_000, 0.5, false);
        let at_40 = w.read(40_000, 0, &[0.5]);
        assert_eq!((at_40.count, at_40.errors), (2, 1));
        assert_eq!(at_40.span_ms, 40_000);
        // At 61 s the slot 0..5 s is out (the window is 5..61 s after slot alignment).
        let at_61 = w.read(61_000, 0, &[]);
        assert_eq!((at_61.count, at_61.errors), (1, 0));
        assert_eq!(at_61.span_ms, 56_000);
        // Far later, nothing; a reused ring position is cleared before use.
        assert_eq!(w.read(200_000, 0, &[0.5]).count, 0);
        assert!(w.read(200_000, 0, &[0.5]).quantiles.is_empty());
        w.add(120_000, 2.0, false); // same ring position as 0..5 s
        let later = w.read(121_000, 0, &[0.5]);
        assert_eq!((later.count, later.errors, later.sum), (1, 0, 2.0));
    }

    #[test]
    fn span_starts_at_start_up() {
        let w = Window::new(Duration::from_secs(60));
        assert_eq!(w.read(100_000, 95_000, &[]).span_ms, 5_000);
        // Slots 9..=20 of 5 s: from 45 s to now.
        assert_eq!(w.read(100_000, 0, &[]).span_ms, 55_000);
    }
}
