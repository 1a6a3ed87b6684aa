//! Queries over the history, as the Prometheus HTTP API answers them: an instant selector
//! gives each series' last point within the lookback (5 minutes) unless that point is a
//! staleness marker (the series vanished), a range selector every point in the window,
//! and `rate`/`increase`/`delta` extrapolate as Prometheus does.
//!
//! Before evaluating, the points every selector can read over the whole query are decoded
//! once (bounded by [`MAX_POINTS`]); each step of a range query then only searches them.

use super::ast::{Expr, Selector, millis};
use super::eval::{RangeOut, Source, eval};
use super::live::selects;
use super::value::{ElemLabels, Value};
use crate::history::is_stale;
use crate::sample::LabelSet;
use crate::store::{Millis, SeriesKey, Store};

/// How far back an instant selector looks for a series' last point, as in Prometheus.
pub const LOOKBACK: Millis = 5 * 60 * 1000;
/// Most stored points one query may read: the memory it may take (16 bytes a point) and its
/// time are bounded whatever it asks.
pub const MAX_POINTS: usize = 500_000;
/// Most steps a range query may have, as in Prometheus.
pub const MAX_STEPS: i64 = 11_000;
/// Longest time span a range query may cover.
pub const MAX_SPAN_MS: Millis = 31 * 24 * 3600 * 1000;
/// Most output values (series times steps) a range query may give.
pub const MAX_OUTPUT: usize = 1_000_000;

/// What a query gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A number (at the query's time).
    Scalar(f64),
    /// One value per series.
    Vector(Vec<(LabelSet, f64)>),
    /// Points per series, in step order.
    Matrix(Vec<(LabelSet, Vec<(Millis, f64)>)>),
}

/// The series one selector reads and their points over the query.
type Loaded<'s> = Vec<(&'s SeriesKey, Vec<(Millis, f64)>)>;

/// The history of the store's series, decoded for one query.
#[derive(Debug)]
struct Recorded<'s> {
    host: &'s str,
    /// Per selector id.
    data: Vec<Loaded<'s>>,
}

impl<'s> Recorded<'s> {
    /// Decodes what `expr` can read when evaluated from `start` to `end`.
    fn load(
        store: &'s Store,
        host: &'s str,
        expr: &Expr,
        start: Millis,
        end: Millis,
    ) -> Result<Self, String> {
        let mut data: Vec<Loaded<'s>> = (0..expr.selectors).map(|_| Vec::new()).collect();
        let mut total = 0usize;
        let mut scratch = Vec::new();
        let mut failure = None;
        expr.root.for_each_selector(&mut |sel: &Selector, range| {
            if failure.is_some() {
                return;
            }
            let Some(target) = sel.target else { return };
            let reach = if range.is_zero() {
                LOOKBACK
            } else {
                millis(range)
            };
            let from = start.saturating_sub(reach);
            let mut loaded = Vec::new();
            for (key, series) in store.series_of(target.metric.name) {
                if !selects(sel, key, Some(host)) {
                    continue;
                }
                scratch.clear();
                series.history.points(from, end, &mut scratch);
                if scratch.is_empty() && series.present && (from..=end).contains(&series.latest.0) {
                    // No history kept: the latest value is all there is.
                    scratch.push(series.latest);
                }
                if scratch.is_empty() {
                    continue;
                }
                total += scratch.len();
                if total > MAX_POINTS {
                    failure = Some(format!(
                        "the query would read more than {MAX_POINTS} stored points; narrow \
                         the selectors or the time range"
                    ));
                    return;
                }
                loaded.push((key, scratch.clone()));
            }
            if let Some(slot) = data.get_mut(sel.id) {
                *slot = loaded;
            }
        });
        match failure {
            Some(why) => Err(why),
            None => Ok(Recorded { host, data }),
        }
    }
}

impl<'s> Source<'s> for Recorded<'s> {
    fn host(&self) -> Option<&'s str> {
        Some(self.host)
    }

    fn extrapolate(&self) -> bool {
        true
    }

    fn instant(&mut self, sel: &Selector, t: Millis, out: &mut dyn FnMut(&'s SeriesKey, f64)) {
        let Some(series) = self.data.get(sel.id) else {
            return;
        };
        for (key, points) in series {
            let at = points.partition_point(|(pt, _)| *pt <= t);
            let Some(&(pt, v)) = at.checked_sub(1).and_then(|i| points.get(i)) else {
                continue;
            };
            if pt > t - LOOKBACK && !is_stale(v) {
                out(key, v);
            }
        }
    }

    fn range(&mut self, sel: &Selector, from: Millis, to: Millis, out: &mut RangeOut<'_, 's>) {
        let Some(series) = self.data.get(sel.id) else {
            return;
        };
        for (key, points) in series {
            let lo = points.partition_point(|(t, _)| *t <= from);
            let hi = points.partition_point(|(t, _)| *t <= to);
            if lo < hi {
                out(
                    key,
                    &mut points[lo..hi]
                        .iter()
                        .copied()
                        .filter(|(_, v)| !is_stale(*v)),
                );
            }
        }
    }
}

/// Evaluates `expr` at `t` over the history of `store`, every series labelled `host`.
pub fn instant(store: &Store, host: &str, expr: &Expr, t: Millis) -> Result<Answer, String> {
    let mut source = Recorded::load(store, host, expr, t, t)?;
    Ok(match eval(&expr.root, &mut source, t)? {
        Value::Scalar(v) => Answer::Scalar(v),
        Value::Vector(v) => Answer::Vector(
            v.into_iter()
                .map(|e| (e.labels.to_set(Some(host)), e.value))
                .collect(),
        ),
    })
}

/// Whether a range query from `start` to `end` by `step` is within the bounds: a positive
/// step, `end` not before `start`, a span of at most [`MAX_SPAN_MS`], fewer than
/// [`MAX_STEPS`] steps. The error says which bound and how to meet it.
pub fn check_range(start: Millis, end: Millis, step: Millis) -> Result<(), String> {
    if step <= 0 {
        return Err(
            "zero or negative query resolution step widths are not accepted; try a positive number"
                .into(),
        );
    }
    if end < start {
        return Err(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        );
    }
    if end - start > MAX_SPAN_MS {
        return Err(format!(
            "the range from start to end is {}, longer than the 31 days a query may span",
            crate::config::units::format_duration(std::time::Duration::from_millis(
                (end - start).unsigned_abs()
            ))
        ));
    }
    if (end - start) / step >= MAX_STEPS {
        return Err(format!(
            "exceeded maximum resolution of {MAX_STEPS} points per series; try a larger step"
        ));
    }
    Ok(())
}

/// Evaluates `expr` at every `step` from `start` to `end` (both included) over the history
/// of `store`: one series per label set, its points in time order.
pub fn range(
    store: &Store,
    host: &str,
    expr: &Expr,
    start: Millis,
    end: Millis,
    step: Millis,
) -> Result<Answer, String> {
    check_range(start, end, step)?;
    let mut source = Recorded::load(store, host, expr, start, end)?;
    let mut out: std::collections::BTreeMap<LabelSet, Vec<(Millis, f64)>> = Default::default();
    let mut values = 0usize;
    let mut t = start;
    while t <= end {
        match eval(&expr.root, &mut source, t)? {
            Value::Scalar(v) => out.entry(LabelSet::new()).or_default().push((t, v)),
            Value::Vector(v) => {
                values += v.len();
                for e in v {
                    let labels = match e.labels {
                        ElemLabels::Owned(set) => set,
                        other => other.to_set(Some(host)),
                    };
                    out.entry(labels).or_default().push((t, e.value));
                }
            }
        }
        values += 1;
        if values > MAX_OUTPUT {
            return Err(format!(
                "the query would give more than {MAX_OUTPUT} values; narrow the selectors or \
                 use a larger step"
            ));
        }
        t += step;
    }
    Ok(Answer::Matrix(out.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{API_REQUEST_DURATION_SECONDS, CPU_SECONDS_TOTAL, CPUS, LOAD1};
    use crate::sample::{Part, Sample};
    use crate::store::HistoryLimits;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    /// Load 0..=9 and a CPU counter growing 2/s, every 10 s from t=10 s to 100 s, 4 CPUs.
    fn store() -> Store {
        let mut store = Store::default();
        store.set_history(Some(HistoryLimits {
            retention_ms: 86_400_000,
            max_bytes: 1 << 20,
        }));
        for i in 1..=10 {
            let at = i * 10_000;
            store.apply("load", vec![Sample::new(&LOAD1, (i - 1) as f64)], at);
            store.apply(
                "cpu",
                vec![
                    Sample::with_labels(
                        &CPU_SECONDS_TOTAL,
                        [("mode", "user".into())],
                        20.0 * i as f64,
                    ),
                    Sample::new(&CPUS, 4.0),
                ],
                at,
            );
        }
        store
    }

    fn run(text: &str, t: Millis) -> Answer {
        let expr = crate::query::parse(text).unwrap();
        instant(&store(), "web1", &expr, t).unwrap()
    }

    #[test]
    fn selectors_carry_name_and_host_and_look_back_five_minutes() {
        let want = vec![(
            labels(&[("__name__", "lookout_load1"), ("host", "web1")]),
            9.0,
        )];
        assert_eq!(run("lookout_load1", 100_000), Answer::Vector(want.clone()));
        assert_eq!(
            run(r#"lookout_load1{host="web1"}"#, 100_500),
            Answer::Vector(want)
        );
        assert_eq!(
            run(r#"lookout_load1{host="db"}"#, 100_000),
            Answer::Vector(vec![])
        );
        // 4 s before 100 s: the point at 90 s.
        let Answer::Vector(v) = run("lookout_load1", 96_000) else {
            panic!()
        };
        assert_eq!(v[0].1, 8.0);
        // Past the lookback, nothing.
        assert_eq!(
            run("lookout_load1", 100_000 + LOOKBACK),
            Answer::Vector(vec![])
        );
        assert_eq!(run("2 * 3", 0), Answer::Scalar(6.0));
    }

    #[test]
    fn a_vanished_series_ends_at_its_staleness_marker() {
        let mut s = store();
        s.apply("load", vec![], 110_000);
        let expr = crate::query::parse("lookout_load1").unwrap();
        assert_eq!(
            instant(&s, "h", &expr, 105_000).unwrap(),
            Answer::Vector(vec![(
                labels(&[("__name__", "lookout_load1"), ("host", "h")]),
                9.0
            )])
        );
        assert_eq!(
            instant(&s, "h", &expr, 110_000).unwrap(),
            Answer::Vector(vec![])
        );
    }

    #[test]
    fn functions_aggregations_and_matching_over_history() {
        // 2/s, extrapolated over the whole minute: the points cover 50 s of (40 s, 100 s].
        let Answer::Vector(v) = run("rate(lookout_cpu_seconds_total[1m])", 100_000) else {
            panic!()
        };
        assert_eq!(v[0].0, labels(&[("host", "web1"), ("mode", "user")]));
        assert!((v[0].1 - 2.0).abs() < 1e-9, "{v:?}");
        let Answer::Vector(v) = run(
            "sum by (host) (increase(lookout_cpu_seconds_total[1m]))",
            100_000,
        ) else {
            panic!()
        };
        assert_eq!(v[0].0, labels(&[("host", "web1")]));
        assert!((v[0].1 - 120.0).abs() < 1e-9, "{v:?}");
        assert_eq!(
            run("lookout_load1 / on (host) lookout_cpus", 100_000),
            Answer::Vector(vec![(labels(&[("host", "web1")]), 2.25)])
        );
        assert_eq!(run("lookout_load1 == 1", 100_000), Answer::Vector(vec![]));
        assert_eq!(
            run("lookout_load1 > bool 1", 100_000),
            Answer::Vector(vec![(labels(&[("host", "web1")]), 1.0)])
        );
        assert_eq!(
            run("bottomk(1, lookout_load1 * 2)", 100_000),
            Answer::Vector(vec![(labels(&[("host", "web1")]), 18.0)])
        );
    }

    #[test]
    fn histogram_quantile_reads_the_bucket_series() {
        let mut s = store();
        let bucket = |le: f64, v: f64| Sample {
            metric: &API_REQUEST_DURATION_SECONDS,
            labels: vec![
                ("route", "/a".into()),
                ("method", "GET".into()),
                ("status_class", "2xx".into()),
            ],
            part: Part::bucket(le),
            value: v,
        };
        for (i, n) in [(0, 0.0), (1, 10.0)] {
            s.apply(
                "ingest",
                vec![
                    bucket(0.1, 5.0 * n),
                    bucket(0.5, 8.0 * n),
                    bucket(f64::INFINITY, 10.0 * n),
                ],
                100_000 + i * 10_000,
            );
        }
        let expr = crate::query::parse(
            "histogram_quantile(0.5, sum by (le) (rate(lookout_api_request_duration_seconds_bucket[1m])))",
        )
        .unwrap();
        let Answer::Vector(v) = instant(&s, "h", &expr, 110_000).unwrap() else {
            panic!()
        };
        // Half of the requests are under 0.1: the median is the bucket's upper bound.
        assert_eq!(v.len(), 1);
        assert!((v[0].1 - 0.1).abs() < 1e-9, "{v:?}");
    }

    #[test]
    fn range_queries_step_through_time_and_are_bounded() {
        let expr = crate::query::parse("lookout_load1").unwrap();
        let Answer::Matrix(m) = range(&store(), "h", &expr, 50_000, 100_000, 25_000).unwrap()
        else {
            panic!()
        };
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].1, [(50_000, 4.0), (75_000, 6.0), (100_000, 9.0)]);
        assert!(
            range(&store(), "h", &expr, 0, MAX_STEPS * 1_000, 1_000)
                .unwrap_err()
                .contains("maximum resolution")
        );
        assert!(
            range(&store(), "h", &expr, 10, 0, 1)
                .unwrap_err()
                .contains("before start")
        );
        let scalar = crate::query::parse("time()").unwrap();
        assert_eq!(
            range(&store(), "h", &scalar, 0, 2_000, 1_000).unwrap(),
            Answer::Matrix(vec![(
                LabelSet::new(),
                vec![(0, 0.0), (1_000, 1.0), (2_000, 2.0)]
            )])
        );
    }
}
