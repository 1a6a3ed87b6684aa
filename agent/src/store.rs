//! The store: the latest value and a short, bounded window of each series.
//!
//! Collectors' sample sets land here ([`Store::apply`]); the exporter renders the present
//! series and the rules read the windows. A collector owns the series it
//! reports: a series it stops reporting (an unmounted filesystem, a closed port) becomes
//! absent at once, and a failed run makes all of its series absent, so neither `/metrics`
//! nor a rule ever sees a stale value as if it were current. Windows are kept for
//! `retention` and capped at `max_points`, so memory stays bounded whatever the interval.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::catalogue::Metric;
use crate::sample::{Labels, Part, Sample};

/// A label name with a static lifetime, for names not in the catalogue (rule labels on
/// `lookout_alert_firing`). Each distinct name is leaked once and reused afterwards, so the
/// memory is bounded by the distinct label names ever configured (a handful).
pub fn intern(name: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = names.get(name) {
        return existing;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// Milliseconds since the Unix epoch: the store's clock, injected by the caller.
pub type Millis = i64;

/// Identity of a series: metric name, label values, and which part of a histogram.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    /// Metric name.
    pub name: &'static str,
    /// Label values, in the metric's label order.
    pub labels: Labels,
    /// [`Part::Value`] except for histograms, whose buckets (in `le` order), sum and count
    /// sort after one another under the same labels.
    pub part: Part,
}

/// One series: its metric, owner, presence, latest value and window.
#[derive(Debug, Clone)]
pub struct Series {
    /// The catalogue entry.
    pub metric: &'static Metric,
    /// Name of the collector that reports it.
    pub owner: Arc<str>,
    /// Whether the owner's last run reported it.
    pub present: bool,
    /// Latest `(time, value)`; meaningful while `present`.
    pub latest: (Millis, f64),
    /// Recent points, oldest first, within the retention.
    pub window: VecDeque<(Millis, f64)>,
}

/// Bounds of the per-series windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How far back points are kept.
    pub keep_ms: Millis,
    /// At most this many points per series.
    pub max_points: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_ms: 5 * 60 * 1000,
            max_points: 360,
        }
    }
}

/// Latest values and windows of every series, ordered by name then labels.
#[derive(Debug, Default)]
pub struct Store {
    series: BTreeMap<SeriesKey, Series>,
    retention: Retention,
}

impl Store {
    /// An empty store with the given window bounds.
    pub fn new(retention: Retention) -> Self {
        Store {
            series: BTreeMap::new(),
            retention,
        }
    }

    /// Records a complete sample set from `owner` taken at `at`. Series of `owner` missing
    /// from `samples` become absent; windows older than the retention are trimmed.
    pub fn apply(&mut self, owner: &str, samples: Vec<Sample>, at: Millis) {
        let owner_arc: Arc<str> = Arc::from(owner);
        for s in &mut self.series.values_mut() {
            if &*s.owner == owner {
                s.present = false;
            }
        }
        for sample in samples {
            let key = SeriesKey {
                name: sample.metric.name,
                labels: sample.labels,
                part: sample.part,
            };
            let series = self.series.entry(key).or_insert_with(|| Series {
                metric: sample.metric,
                owner: owner_arc.clone(),
                present: false,
                latest: (at, sample.value),
                window: VecDeque::new(),
            });
            series.present = true;
            series.latest = (at, sample.value);
            if series.window.len() >= self.retention.max_points {
                series.window.pop_front();
            }
            series.window.push_back((at, sample.value));
        }
        self.trim(at);
    }

    /// Marks every series of `owner` absent (its run failed or timed out).
    pub fn mark_absent(&mut self, owner: &str, at: Millis) {
        for s in self.series.values_mut() {
            if &*s.owner == owner {
                s.present = false;
            }
        }
        self.trim(at);
    }

    /// Drops points older than the retention, and series that are absent with an empty window.
    fn trim(&mut self, now: Millis) {
        let oldest = now - self.retention.keep_ms;
        self.series.retain(|_, s| {
            while s.window.front().is_some_and(|(t, _)| *t < oldest) {
                s.window.pop_front();
            }
            s.present || !s.window.is_empty()
        });
    }

    /// The present series, ordered by metric name then label values.
    pub fn present(&self) -> impl Iterator<Item = (&SeriesKey, &Series)> {
        self.series.iter().filter(|(_, s)| s.present)
    }

    /// Every series of metric `name` (absent ones with a window included), in label order.
    pub fn series_of(&self, name: &'static str) -> impl Iterator<Item = (&SeriesKey, &Series)> {
        let start = SeriesKey {
            name,
            labels: Vec::new(),
            part: Part::Value,
        };
        self.series
            .range(start..)
            .take_while(move |(k, _)| k.name == name)
    }

    /// The latest value of a present series.
    pub fn latest(&self, name: &'static str, labels: &[(&'static str, String)]) -> Option<f64> {
        let key = SeriesKey {
            name,
            labels: labels.to_vec(),
            part: Part::Value,
        };
        self.series
            .get(&key)
            .filter(|s| s.present)
            .map(|s| s.latest.1)
    }

    /// Every series, absent ones included (rules need windows of series that just vanished).
    pub fn all(&self) -> impl Iterator<Item = (&SeriesKey, &Series)> {
        self.series.iter()
    }

    /// Number of series held, absent ones with a window included.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether the store holds no series.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// A `lookout_filesystem_usage_ratio` sample of `mount` on an ext4 `/dev/vda`, for the
/// unit tests of the store and of the rules evaluated on it.
#[cfg(test)]
pub(crate) fn fs_usage(mount: &str, v: f64) -> Sample {
    Sample::with_labels(
        &crate::catalogue::FILESYSTEM_USAGE_RATIO,
        [
            ("mountpoint", mount.into()),
            ("device", "/dev/vda".into()),
            ("fstype", "ext4".into()),
        ],
        v,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::LOAD1;
    use crate::store::fs_usage as fs;

    #[test]
    fn a_series_the_owner_stops_reporting_becomes_absent() {
        let mut store = Store::default();
        store.apply("filesystem", vec![fs("/", 0.5), fs("/data", 0.7)], 1_000);
        store.apply("filesystem", vec![fs("/", 0.6)], 11_000);
        let present: Vec<_> = store
            .present()
            .map(|(k, _)| k.labels[0].1.clone())
            .collect();
        assert_eq!(present, ["/"]);
        // The vanished series keeps its window (rules can still see its last points).
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn one_owner_never_touches_another_owners_series() {
        let mut store = Store::default();
        store.apply("load", vec![Sample::new(&LOAD1, 0.3)], 1_000);
        store.apply("filesystem", vec![fs("/", 0.5)], 1_000);
        store.mark_absent("filesystem", 2_000);
        assert_eq!(store.latest("lookout_load1", &[]), Some(0.3));
        assert_eq!(store.present().count(), 1);
    }

    #[test]
    fn windows_are_bounded_by_time_and_count() {
        let mut store = Store::new(Retention {
            keep_ms: 10_000,
            max_points: 3,
        });
        for i in 0..10 {
            store.apply(
                "load",
                vec![Sample::new(&LOAD1, f64::from(i))],
                i64::from(i) * 1_000,
            );
        }
        let (_, s) = store.all().next().expect("one series");
        let times: Vec<_> = s.window.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [7_000, 8_000, 9_000]);
        store.mark_absent("load", 30_000);
        assert!(
            store.is_empty(),
            "absent series with an expired window are dropped"
        );
    }
}
