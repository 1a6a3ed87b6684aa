//! The live source the rules read: an instant selector gives the series whose collector
//! reported them on its last run (no lookback: a vanished series disappears at once), a
//! range selector the store's window of each series, and `rate`/`increase` use the exact
//! change between the first and last points of the window, without extrapolation.

use std::collections::HashMap;

use super::ast::{MatchKind, PartKind, Selector};
use super::eval::{RangeOut, Source};
use super::value::series_label;
use crate::sample::Part;
use crate::store::{Millis, Series, SeriesKey, Store};

/// Whether a stored series is one `sel` selects, with `host` as the source's host label
/// (`None`: `host` matchers match everything).
pub fn selects(sel: &Selector, key: &SeriesKey, host: Option<&str>) -> bool {
    let Some(target) = sel.target else {
        return false;
    };
    let part = match key.part {
        Part::Value => PartKind::Value,
        Part::Bucket(_) => PartKind::Bucket,
        Part::Sum => PartKind::Sum,
        Part::Count => PartKind::Count,
    };
    key.name == target.metric.name
        && part == target.part
        && sel.matchers.iter().all(|m| {
            (m.label == "host" && host.is_none()) || m.matches(&series_label(key, host, &m.label))
        })
}

/// The first `label="value"` matcher on a stored label (not `host`, `le` or the name),
/// which an index can answer.
fn equality(sel: &Selector) -> Option<(&str, &str)> {
    sel.matchers
        .iter()
        .find(|m| m.op == MatchKind::Equal && !matches!(m.label.as_str(), "host" | "le"))
        .map(|m| (m.label.as_str(), m.value.as_str()))
}

/// The series of a metric grouped by the value of one label, built on first use and shared
/// by every rule of an evaluation tick that selects that label by equality: 100 rules each
/// picking one device's series out of 10,000 read the store once, not 100 times. Build a new
/// one for each tick (it borrows the store as it was).
#[derive(Debug, Default)]
pub struct SeriesIndex<'s> {
    /// (metric, label) -> label value -> series.
    groups: HashMap<(&'static str, String), ByValue<'s>>,
}

/// Series grouped by the value of one label, each group in the store's order.
type ByValue<'s> = HashMap<&'s str, Vec<(&'s SeriesKey, &'s Series)>>;

impl<'s> SeriesIndex<'s> {
    /// How many (metric, label) groupings were built.
    #[cfg(test)]
    pub(crate) fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The series of `metric` whose `label` is `value`, in the store's order.
    fn lookup(
        &mut self,
        store: &'s Store,
        metric: &'static str,
        label: &str,
        value: &str,
    ) -> &[(&'s SeriesKey, &'s Series)] {
        let groups = self
            .groups
            .entry((metric, label.to_string()))
            .or_insert_with(|| {
                let mut groups = ByValue::new();
                for (key, series) in store.series_of(metric) {
                    let v = key
                        .labels
                        .iter()
                        .find(|(k, _)| *k == label)
                        .map_or("", |(_, v)| v.as_str());
                    groups.entry(v).or_default().push((key, series));
                }
                groups
            });
        groups.get(value).map_or(&[], Vec::as_slice)
    }
}

/// The store as the rules see it.
#[derive(Debug)]
pub struct Live<'s, 'i> {
    store: &'s Store,
    index: Option<&'i mut SeriesIndex<'s>>,
}

impl<'s, 'i> Live<'s, 'i> {
    /// Reads `store`; with an `index`, a selector with an equality matcher reads only that
    /// label value's series.
    pub fn new(store: &'s Store, index: Option<&'i mut SeriesIndex<'s>>) -> Self {
        Live { store, index }
    }

    fn each(&mut self, sel: &Selector, mut f: impl FnMut(&'s SeriesKey, &'s Series)) {
        let Some(target) = sel.target else { return };
        let name = target.metric.name;
        let store = self.store;
        match (self.index.as_deref_mut(), equality(sel)) {
            (Some(index), Some((label, value))) => {
                for (key, series) in index.lookup(store, name, label, value) {
                    if selects(sel, key, None) {
                        f(key, series);
                    }
                }
            }
            _ => {
                for (key, series) in store.series_of(name) {
                    if selects(sel, key, None) {
                        f(key, series);
                    }
                }
            }
        }
    }
}

impl<'s> Source<'s> for Live<'s, '_> {
    fn host(&self) -> Option<&'s str> {
        None
    }

    fn extrapolate(&self) -> bool {
        false
    }

    fn instant(&mut self, sel: &Selector, _t: Millis, out: &mut dyn FnMut(&'s SeriesKey, f64)) {
        self.each(sel, |key, series| {
            if series.present {
                out(key, series.latest.1);
            }
        });
    }

    fn range(&mut self, sel: &Selector, from: Millis, to: Millis, out: &mut RangeOut<'_, 's>) {
        // Absent series too: their recent points still count.
        self.each(sel, |key, series| {
            let window = &series.window;
            let lo = window.partition_point(|(t, _)| *t <= from);
            let hi = window.partition_point(|(t, _)| *t <= to);
            if lo < hi {
                out(key, &mut window.range(lo..hi).copied());
            }
        });
    }
}
