//! The functions over a range of points, and `histogram_quantile`.

use std::collections::BTreeMap;

use super::ast::Func;
use super::value::{Elem, ElemLabels};
use crate::sample::LabelSet;
use crate::store::Millis;

/// The window a range function reads and how it reads it.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Start of the window (exclusive).
    pub start: Millis,
    /// End of the window (inclusive): the evaluation time.
    pub end: Millis,
    /// Extrapolate `rate`, `increase` and `delta` to the window's edges (Prometheus), or use
    /// the exact change between the first and last points (the rules).
    pub extrapolate: bool,
    /// The series is a counter (a drop is a restart from zero, and extrapolation stops at 0).
    pub counter: bool,
}

/// The value of a range function over `points` (oldest first), `None` when the window has
/// too few points.
pub fn over_range(
    func: Func,
    points: &mut dyn Iterator<Item = (Millis, f64)>,
    w: Window,
) -> Option<f64> {
    let (t_first, first) = points.next()?;
    match func {
        Func::Rate | Func::Increase | Func::Delta => {
            let counter = func != Func::Delta;
            let (mut change, mut prev, mut t_last, mut n) = (0.0, first, t_first, 1usize);
            for (t, v) in points {
                // A counter that drops restarted from 0.
                change += if !counter || v >= prev { v - prev } else { v };
                prev = v;
                t_last = t;
                n += 1;
            }
            if n < 2 {
                return None;
            }
            let sampled = (t_last - t_first) as f64 / 1000.0;
            if !w.extrapolate {
                return match func {
                    Func::Rate => (sampled > 0.0).then(|| change / sampled),
                    _ => Some(change),
                };
            }
            // Prometheus's extrapolatedRate.
            let mut to_start = (t_first - w.start) as f64 / 1000.0;
            let to_end = (w.end - t_last) as f64 / 1000.0;
            let average = sampled / (n - 1) as f64;
            if counter && w.counter && change > 0.0 && first >= 0.0 {
                // A counter cannot be extrapolated below zero.
                let to_zero = sampled * (first / change);
                if to_zero < to_start {
                    to_start = to_zero;
                }
            }
            let threshold = average * 1.1;
            let mut interval = sampled;
            interval += if to_start < threshold {
                to_start
            } else {
                average / 2.0
            };
            interval += if to_end < threshold {
                to_end
            } else {
                average / 2.0
            };
            let mut factor = interval / sampled;
            if func == Func::Rate {
                factor /= (w.end - w.start) as f64 / 1000.0;
            }
            Some(change * factor)
        }
        Func::Irate => {
            let mut last = (t_first, first);
            let mut before = None;
            for p in points {
                before = Some(last);
                last = p;
            }
            let (t0, v0) = before?;
            let (t1, v1) = last;
            let dt = (t1 - t0) as f64 / 1000.0;
            let change = if w.counter && v1 < v0 { v1 } else { v1 - v0 };
            (dt > 0.0).then(|| change / dt)
        }
        Func::AvgOverTime => {
            let (mut sum, mut n) = (first, 1.0);
            for (_, v) in points {
                sum += v;
                n += 1.0;
            }
            Some(sum / n)
        }
        Func::SumOverTime => Some(points.fold(first, |s, (_, v)| s + v)),
        Func::CountOverTime => Some(points.fold(1.0, |n, _| n + 1.0)),
        // As PromQL: NaN only wins when every point is NaN.
        Func::MinOverTime => {
            Some(points.fold(first, |m, (_, v)| if v < m || m.is_nan() { v } else { m }))
        }
        Func::MaxOverTime => {
            Some(points.fold(first, |m, (_, v)| if v > m || m.is_nan() { v } else { m }))
        }
        Func::LastOverTime => Some(points.last().map_or(first, |(_, v)| v)),
        _ => None,
    }
}

/// `histogram_quantile(phi, v)`: the elements of `v` grouped by their labels without `le`
/// and the metric name, each group's cumulative buckets interpolated linearly as
/// Prometheus does. Elements without a parsable `le` are ignored.
pub fn histogram_quantile<'s>(phi: f64, v: Vec<Elem<'s>>, host: Option<&'s str>) -> Vec<Elem<'s>> {
    let mut groups: BTreeMap<LabelSet, Vec<(f64, f64)>> = BTreeMap::new();
    for e in &v {
        let mut set = e.labels.to_set(host);
        let Some(le) = set.remove("le").and_then(|le| parse_le(&le)) else {
            continue;
        };
        set.remove("__name__");
        groups.entry(set).or_default().push((le, e.value));
    }
    groups
        .into_iter()
        .map(|(labels, buckets)| Elem {
            labels: ElemLabels::Owned(labels),
            value: bucket_quantile(phi, buckets),
        })
        .collect()
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        _ => s.parse().ok(),
    }
}

/// The quantile of cumulative `(upper bound, count)` buckets.
fn bucket_quantile(phi: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if phi.is_nan() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets.dedup_by(|b, a| {
        // Same bound twice: keep the larger count.
        if a.0 == b.0 {
            a.1 = a.1.max(b.1);
            true
        } else {
            false
        }
    });
    match buckets.last() {
        Some((le, _)) if *le == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    if buckets.len() < 2 {
        return f64::NAN;
    }
    // Counts must not decrease (buckets scraped at slightly different moments).
    for i in 1..buckets.len() {
        if buckets[i].1 < buckets[i - 1].1 {
            buckets[i].1 = buckets[i - 1].1;
        }
    }
    let total = buckets[buckets.len() - 1].1;
    if total == 0.0 || total.is_nan() {
        return f64::NAN;
    }
    let rank = phi * total;
    let b = buckets
        .partition_point(|(_, c)| *c < rank)
        .min(buckets.len() - 1);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (start, below) = if b == 0 { (0.0, 0.0) } else { buckets[b - 1] };
    let (end, count) = buckets[b];
    let in_bucket = count - below;
    if in_bucket <= 0.0 {
        return end;
    }
    start + (end - start) * ((rank - below) / in_bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(start: Millis, end: Millis, extrapolate: bool) -> Window {
        Window {
            start,
            end,
            extrapolate,
            counter: true,
        }
    }

    fn run(func: Func, points: &[(Millis, f64)], w: Window) -> Option<f64> {
        over_range(func, &mut points.iter().copied(), w)
    }

    #[test]
    fn exact_rate_and_increase_count_restarts() {
        let pts = [(1_000, 10.0), (2_000, 15.0), (3_000, 2.0), (4_000, 6.0)];
        // 5 + 2 (restart from 0) + 4.
        assert_eq!(run(Func::Increase, &pts, w(0, 4_000, false)), Some(11.0));
        assert_eq!(run(Func::Rate, &pts, w(0, 4_000, false)), Some(11.0 / 3.0));
        assert_eq!(run(Func::Rate, &pts[..1], w(0, 4_000, false)), None);
    }

    #[test]
    fn extrapolation_matches_prometheus_by_hand() {
        // Points every 10 s from t=5 s to t=55 s, +10 each; window (0, 60 s].
        let pts: Vec<(Millis, f64)> = (0..6)
            .map(|i| (5_000 + i * 10_000, 100.0 + 10.0 * i as f64))
            .collect();
        // sampled 50 s, average 10 s, 5 s to each edge (< 11 s): extrapolated over 60 s.
        let inc = run(Func::Increase, &pts, w(0, 60_000, true)).unwrap();
        assert!((inc - 60.0).abs() < 1e-9, "{inc}");
        let rate = run(Func::Rate, &pts, w(0, 60_000, true)).unwrap();
        assert!((rate - 1.0).abs() < 1e-9, "{rate}");
        // A counter starting near zero is not extrapolated below zero: first=5 at t=5 s
        // with 10 per 10 s reaches 0 at t=0... stops at 2.5 s before the first point.
        let low: Vec<(Millis, f64)> = (0..6)
            .map(|i| (5_000 + i * 10_000, 2.5 + 10.0 * i as f64))
            .collect();
        let inc = run(Func::Increase, &low, w(0, 60_000, true)).unwrap();
        assert!((inc - 50.0 * (57.5 / 50.0)).abs() < 1e-9, "{inc}");
        // Far from an edge (more than 1.1 average intervals): half an interval only.
        let mid = [(30_000, 100.0), (40_000, 110.0)];
        let inc = run(Func::Increase, &mid, w(0, 60_000, true)).unwrap();
        assert!((inc - 20.0).abs() < 1e-9, "{inc}");
    }

    #[test]
    fn irate_uses_the_last_two_points() {
        let pts = [(0, 0.0), (1_000, 5.0), (3_000, 9.0)];
        assert_eq!(run(Func::Irate, &pts, w(0, 3_000, true)), Some(2.0));
        let reset = [(0, 10.0), (2_000, 4.0)];
        assert_eq!(run(Func::Irate, &reset, w(0, 3_000, true)), Some(2.0));
    }

    #[test]
    fn quantile_interpolates_within_the_bucket() {
        let b = vec![(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (f64::INFINITY, 40.0)];
        // rank 20 falls half-way into (0.1, 0.5].
        assert!((bucket_quantile(0.5, b.clone()) - 0.3).abs() < 1e-12);
        // rank 40 lands in (0.5, 1.0] at its end.
        assert!((bucket_quantile(1.0, b.clone()) - 1.0).abs() < 1e-12);
        assert!(bucket_quantile(0.5, vec![(0.1, 0.0), (f64::INFINITY, 0.0)]).is_nan());
        assert!(
            bucket_quantile(0.5, vec![(0.1, 3.0)]).is_nan(),
            "no +Inf bucket"
        );
        assert_eq!(bucket_quantile(-1.0, b.clone()), f64::NEG_INFINITY);
        // In the +Inf bucket: the highest finite bound.
        let tail = vec![(0.1, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(0.99, tail), 0.1);
    }
}
