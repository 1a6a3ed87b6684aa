//! The store: the latest value of each series, a short window of the series rules read over
//! a range, and the compressed history of every series.
//!
//! Collectors' sample sets land here ([`Store::apply`]); the exporter renders the present
//! series, the rules read latest values and windows, the query API reads the history. A
//! collector owns the series it reports: a series it stops reporting (an unmounted
//! filesystem, a closed port) becomes absent at once, and a failed run makes all of its
//! series absent, so neither `/metrics` nor a rule ever sees a stale value as if it were
//! current; the history records a staleness marker at that moment, as Prometheus does.
//!
//! Memory is bounded three ways: windows only for the metrics a loaded rule reads over a
//! range ([`Windows`], recomputed on reload), each only as long as the longest such range
//! and capped in points; the history within its retention and its byte cap
//! ([`crate::history::enforce`], every few seconds); and series that are absent with no
//! window and no history left are dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::catalogue::Metric;
use crate::history::{Enforced, SeriesHistory, enforce, is_stale};
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
    /// Recent points, oldest first, within the window's length; empty for a metric no rule
    /// reads over a range.
    pub window: VecDeque<(Millis, f64)>,
    /// Every point within the history's retention, compressed.
    pub history: SeriesHistory,
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

/// Which series keep a window, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Windows {
    /// Every series, within these bounds (tools and tests that evaluate any rule).
    All(Retention),
    /// Only the metrics named, each for its duration (ms), at most `max_points` points.
    Only(HashMap<&'static str, Millis>),
}

impl Default for Windows {
    fn default() -> Self {
        Windows::All(Retention::default())
    }
}

/// Most points a window of [`Windows::Only`] keeps: an hour at one a second.
pub const MAX_WINDOW_POINTS: usize = 3_601;

/// Bounds of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// How long points are kept (ms).
    pub retention_ms: Millis,
    /// Most bytes all histories together may hold.
    pub max_bytes: usize,
}

/// How often the history's bounds are enforced (ms of store time).
const ENFORCE_EVERY: Millis = 5_000;

/// What the history holds, for its own metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HistoryStats {
    /// Series with at least one point.
    pub series: usize,
    /// Bytes held.
    pub bytes: usize,
    /// The oldest point's time, if any.
    pub oldest: Option<Millis>,
    /// What the last enforcement did.
    pub last_enforced: Enforced,
}

impl HistoryStats {
    /// The history's own series: `lookout_history_series`, `lookout_history_bytes` and,
    /// once it holds a point, `lookout_history_oldest_timestamp_seconds`.
    pub fn samples(&self) -> Vec<Sample> {
        use crate::catalogue::{HISTORY_BYTES, HISTORY_OLDEST_TIMESTAMP_SECONDS, HISTORY_SERIES};
        let mut out = vec![
            Sample::new(&HISTORY_SERIES, self.series as f64),
            Sample::new(&HISTORY_BYTES, self.bytes as f64),
        ];
        if let Some(oldest) = self.oldest {
            out.push(Sample::new(
                &HISTORY_OLDEST_TIMESTAMP_SECONDS,
                oldest as f64 / 1000.0,
            ));
        }
        out
    }
}

/// Latest values, windows and history of every series, ordered by name then labels.
#[derive(Debug, Default)]
pub struct Store {
    series: BTreeMap<SeriesKey, Series>,
    windows: Windows,
    /// `None`: no history kept.
    history: Option<HistoryLimits>,
    next_enforce: Millis,
    last_enforced: Enforced,
    /// Number of series when the map was last rebuilt ([`Store::compact`]).
    compacted_len: usize,
}

impl Store {
    /// An empty store keeping windows of every series within `retention`, and no history.
    pub fn new(retention: Retention) -> Self {
        Store {
            windows: Windows::All(retention),
            ..Store::default()
        }
    }

    /// Sets which series keep windows. Windows of metrics no longer listed are freed; those
    /// of newly listed metrics are filled from the history, so a rule loaded by a reload
    /// sees the same points as if it had always run.
    pub fn set_windows(&mut self, windows: Windows, now: Millis) {
        if self.windows == windows {
            return;
        }
        self.windows = windows;
        for (key, s) in &mut self.series {
            let Some((keep, max_points)) = window_bounds(&self.windows, key.name) else {
                s.window = VecDeque::new();
                continue;
            };
            if s.window.is_empty() && !s.history.is_empty() {
                let mut points = Vec::new();
                s.history.points(now.saturating_sub(keep), now, &mut points);
                points.retain(|(_, v)| !is_stale(*v));
                let skip = points.len().saturating_sub(max_points);
                s.window = points.into_iter().skip(skip).collect();
            }
            while s.window.len() > max_points {
                s.window.pop_front();
            }
            s.window.shrink_to_fit();
        }
        self.trim(now);
    }

    /// Sets the history's bounds (`None`: no history, and what was kept is dropped).
    pub fn set_history(&mut self, limits: Option<HistoryLimits>) {
        if limits.is_none() {
            for s in self.series.values_mut() {
                s.history = SeriesHistory::default();
            }
        }
        self.history = limits;
        self.next_enforce = Millis::MIN;
    }

    /// Whether history is kept.
    pub fn keeps_history(&self) -> bool {
        self.history.is_some()
    }

    /// What the history holds now.
    pub fn history_stats(&self) -> HistoryStats {
        let mut stats = HistoryStats {
            last_enforced: self.last_enforced,
            ..HistoryStats::default()
        };
        for s in self.series.values() {
            if s.history.is_empty() {
                continue;
            }
            stats.series += 1;
            stats.bytes += s.history.bytes();
            stats.oldest = match (stats.oldest, s.history.oldest()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        stats
    }

    /// Adds a series read back from a snapshot: absent, with its history.
    pub fn restore(&mut self, key: SeriesKey, metric: &'static Metric, mut history: SeriesHistory) {
        let Some(last) = history.last() else { return };
        if !is_stale(last.1) {
            // The agent stopped right after its last point.
            history.push_stale(last.0 + 1);
        }
        self.series.entry(key).or_insert_with(|| Series {
            metric,
            // Taken over by the collector that reports it again.
            owner: Arc::from(""),
            present: false,
            latest: last,
            window: VecDeque::new(),
            history,
        });
    }

    /// Records a complete sample set from `owner` taken at `at`. Series of `owner` missing
    /// from `samples` become absent; windows older than the retention are trimmed.
    pub fn apply(&mut self, owner: &str, samples: Vec<Sample>, at: Millis) {
        let owner_arc: Arc<str> = Arc::from(owner);
        for s in self.series.values_mut() {
            if &*s.owner == owner {
                s.present = false;
            }
        }
        let history = self.history.is_some();
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
                history: SeriesHistory::default(),
            });
            if *series.owner != *owner {
                // Restored from a snapshot, or reported by another collector now.
                series.owner = owner_arc.clone();
            }
            series.present = true;
            series.latest = (at, sample.value);
            if let Some((_, max_points)) = window_bounds(&self.windows, sample.metric.name) {
                if series.window.len() >= max_points {
                    series.window.pop_front();
                }
                series.window.push_back((at, sample.value));
            }
            if history {
                series.history.push(at, sample.value);
            }
        }
        // A series this owner reported before and not now vanished: a staleness marker
        // ends it (once: after the marker, its last point is the marker).
        if history {
            for s in self.series.values_mut() {
                if !s.present
                    && &*s.owner == owner
                    && s.history.last().is_some_and(|(_, v)| !is_stale(v))
                {
                    s.history.push_stale(at);
                }
            }
        }
        self.trim(at);
        self.compact();
    }

    /// Rebuilds the map with full nodes once it has grown by an eighth since the last
    /// rebuild. A B-tree filled key by key keeps its leaves about half full, and an entry
    /// (key and series) is about 300 bytes: at 7,000 series the empty halves were 1.5 MiB.
    /// Built from an ordered sequence, every node but those on the right edge is full. The
    /// growth threshold makes the rebuilds' cost constant per series added; a map that
    /// no longer grows is never rebuilt.
    fn compact(&mut self) {
        let len = self.series.len();
        self.compacted_len = self.compacted_len.min(len);
        if len < COMPACT_MIN || len <= self.compacted_len + self.compacted_len / 8 {
            return;
        }
        self.series = std::mem::take(&mut self.series).into_iter().collect();
        self.compacted_len = len;
    }

    /// Marks every series of `owner` absent (its run failed or timed out).
    pub fn mark_absent(&mut self, owner: &str, at: Millis) {
        let history = self.history.is_some();
        for s in self.series.values_mut() {
            if &*s.owner == owner {
                if s.present && history {
                    s.history.push_stale(at);
                }
                s.present = false;
            }
        }
        self.trim(at);
    }

    /// Drops window points older than their window's length, history past its bounds (every
    /// few seconds), and series that are absent with no window and no history left.
    fn trim(&mut self, now: Millis) {
        if let Some(limits) = self.history
            && now >= self.next_enforce
        {
            self.next_enforce = now.saturating_add(ENFORCE_EVERY);
            self.last_enforced = enforce(
                self.series.values_mut().map(|s| &mut s.history),
                now,
                limits.retention_ms,
                limits.max_bytes,
            );
        }
        let windows = &self.windows;
        self.series.retain(|key, s| {
            if !s.window.is_empty() {
                let keep = window_bounds(windows, key.name).map_or(0, |(keep, _)| keep);
                let oldest = now.saturating_sub(keep);
                while s.window.front().is_some_and(|(t, _)| *t < oldest) {
                    s.window.pop_front();
                }
            }
            s.present || !s.window.is_empty() || !s.history.is_empty()
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

/// Below this many series the map is never rebuilt: its half-empty nodes are a few KiB.
const COMPACT_MIN: usize = 64;

/// How long and how many points the window of metric `name` keeps, if it keeps one.
fn window_bounds(windows: &Windows, name: &str) -> Option<(Millis, usize)> {
    match windows {
        Windows::All(r) => Some((r.keep_ms, r.max_points)),
        Windows::Only(names) => names.get(name).map(|keep| (*keep, MAX_WINDOW_POINTS)),
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

    #[test]
    fn a_map_rebuilt_as_it_grows_keeps_every_series_in_order() {
        let mut store = with_history();
        let mounts: Vec<String> = (0..1_000).rev().map(|i| format!("/m{i:04}")).collect();
        // Series arrive a few at a time, in reverse order, so the map is rebuilt many times.
        for (n, chunk) in mounts.chunks(37).enumerate() {
            let at = 1_000 * (n as i64 + 1);
            let samples = mounts[..(n * 37 + chunk.len())]
                .iter()
                .map(|m| fs(m, 0.5))
                .collect();
            store.apply("filesystem", samples, at);
        }
        assert!(
            store.compacted_len >= 800,
            "rebuilt: {}",
            store.compacted_len
        );
        let seen: Vec<String> = store
            .present()
            .map(|(k, _)| k.labels[0].1.clone())
            .collect();
        let mut sorted = mounts.clone();
        sorted.sort();
        assert_eq!(seen, sorted);
        let (_, last) = store.all().last().expect("series");
        assert_eq!(
            last.history.len(),
            28,
            "the history of /m0999 survived every rebuild"
        );
    }

    fn with_history() -> Store {
        let mut store = Store::default();
        store.set_history(Some(HistoryLimits {
            retention_ms: 3_600_000,
            max_bytes: 1 << 20,
        }));
        store
    }

    #[test]
    fn only_listed_metrics_keep_windows_and_new_ones_are_filled_from_history() {
        let mut store = with_history();
        store.set_windows(Windows::Only(HashMap::from([("lookout_load1", 2_000)])), 0);
        for i in 0..5 {
            let at = i * 1_000;
            store.apply("load", vec![Sample::new(&LOAD1, i as f64)], at);
            store.apply("filesystem", vec![fs("/", 0.5)], at);
        }
        let window = |store: &Store, name: &str| -> Vec<Millis> {
            store
                .all()
                .find(|(k, _)| k.name == name)
                .map(|(_, s)| s.window.iter().map(|(t, _)| *t).collect())
                .unwrap_or_default()
        };
        assert_eq!(window(&store, "lookout_load1"), [2_000, 3_000, 4_000]);
        assert!(window(&store, "lookout_filesystem_usage_ratio").is_empty());
        // A reload that reads the filesystem over 3 s: its window comes from the history.
        store.set_windows(
            Windows::Only(HashMap::from([("lookout_filesystem_usage_ratio", 3_000)])),
            4_000,
        );
        assert_eq!(
            window(&store, "lookout_filesystem_usage_ratio"),
            [1_000, 2_000, 3_000, 4_000]
        );
        assert!(window(&store, "lookout_load1").is_empty());
    }

    #[test]
    fn history_keeps_every_point_and_marks_a_vanished_series_stale() {
        let mut store = with_history();
        store.apply("filesystem", vec![fs("/", 0.5), fs("/data", 0.7)], 1_000);
        store.apply("filesystem", vec![fs("/", 0.6)], 2_000);
        store.apply("filesystem", vec![fs("/", 0.7)], 3_000);
        let mut data = Vec::new();
        let series: Vec<_> = store.all().collect();
        series[1].1.history.points(0, 10_000, &mut data);
        assert_eq!(data[0], (1_000, 0.7));
        assert_eq!(data.len(), 2, "one marker only: {data:?}");
        assert!(crate::history::is_stale(data[1].1) && data[1].0 == 2_000);
        data.clear();
        series[0].1.history.points(0, 10_000, &mut data);
        assert_eq!(data, [(1_000, 0.5), (2_000, 0.6), (3_000, 0.7)]);
        let stats = store.history_stats();
        assert_eq!((stats.series, stats.oldest), (2, Some(1_000)));
        assert!(stats.bytes > 0);
        // A failed run ends every series of its owner.
        store.mark_absent("filesystem", 4_000);
        let (_, root) = store.all().next().unwrap();
        assert!(crate::history::is_stale(root.history.last().unwrap().1));
    }

    #[test]
    fn without_history_nothing_is_kept_and_absent_series_go() {
        let mut store = Store::default();
        store.apply("load", vec![Sample::new(&LOAD1, 1.0)], 1_000);
        assert!(store.all().all(|(_, s)| s.history.is_empty()));
        let mut store = with_history();
        store.apply("load", vec![Sample::new(&LOAD1, 1.0)], 1_000);
        store.set_history(None);
        assert!(store.all().all(|(_, s)| s.history.is_empty()));
        assert_eq!(store.history_stats().series, 0);
    }
}
