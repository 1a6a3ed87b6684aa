//! What evaluation yields: numbers, and vectors whose elements carry either a stored
//! series' labels (borrowed) or a computed label set.

use std::borrow::Cow;

use super::ast::display_number;
use crate::sample::{LabelSet, Part};
use crate::store::SeriesKey;

/// The result of evaluating a node.
#[derive(Debug, Clone)]
pub enum Value<'s> {
    /// One number.
    Scalar(f64),
    /// One value per series.
    Vector(Vec<Elem<'s>>),
}

/// One element of an instant vector.
#[derive(Debug, Clone)]
pub struct Elem<'s> {
    /// Its labels.
    pub labels: ElemLabels<'s>,
    /// Its value.
    pub value: f64,
}

/// The labels of an element: a stored series' (borrowed, no allocation), or a computed set.
#[derive(Debug, Clone)]
pub enum ElemLabels<'s> {
    /// The labels of a stored series; `name` tells whether `__name__` is still among them.
    Series {
        /// The series.
        key: &'s SeriesKey,
        /// Whether the metric name is kept.
        name: bool,
    },
    /// A computed label set (never holding empty values).
    Owned(LabelSet),
}

/// The exported name of a series: its metric name with the histogram part's suffix.
pub fn series_name(key: &SeriesKey) -> Cow<'static, str> {
    match key.part {
        Part::Value => Cow::Borrowed(key.name),
        Part::Bucket(_) => Cow::Owned(format!("{}_bucket", key.name)),
        Part::Sum => Cow::Owned(format!("{}_sum", key.name)),
        Part::Count => Cow::Owned(format!("{}_count", key.name)),
    }
}

/// The value of label `label` of a stored series as exported (`""` when it has none):
/// `__name__`, `host` (when the source has one), `le` of a bucket, or a catalogue label.
pub fn series_label<'s>(key: &'s SeriesKey, host: Option<&'s str>, label: &str) -> Cow<'s, str> {
    match label {
        "__name__" => series_name(key),
        "host" if host.is_some() => Cow::Borrowed(host.unwrap_or_default()),
        "le" if matches!(key.part, Part::Bucket(_)) => match key.part {
            Part::Bucket(bits) => Cow::Owned(display_number(f64::from_bits(bits))),
            _ => Cow::Borrowed(""),
        },
        _ => Cow::Borrowed(
            key.labels
                .iter()
                .find(|(k, _)| *k == label)
                .map_or("", |(_, v)| v.as_str()),
        ),
    }
}

impl<'s> ElemLabels<'s> {
    /// The value of `label`, `""` when absent.
    pub fn get(&self, label: &str, host: Option<&'s str>) -> Cow<'_, str> {
        match self {
            ElemLabels::Series { key, name } => {
                if label == "__name__" && !name {
                    Cow::Borrowed("")
                } else {
                    series_label(key, host, label)
                }
            }
            ElemLabels::Owned(set) => Cow::Borrowed(set.get(label).map_or("", String::as_str)),
        }
    }

    /// The full label set, empty values left out.
    pub fn to_set(&self, host: Option<&str>) -> LabelSet {
        match self {
            ElemLabels::Owned(set) => set.clone(),
            ElemLabels::Series { key, name } => {
                let mut set: LabelSet = key
                    .labels
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| ((*k).to_string(), v.clone()))
                    .collect();
                if *name {
                    set.insert("__name__".into(), series_name(key).into_owned());
                }
                if let Some(h) = host.filter(|h| !h.is_empty()) {
                    set.insert("host".into(), h.to_string());
                }
                if let Part::Bucket(bits) = key.part {
                    set.insert("le".into(), display_number(f64::from_bits(bits)));
                }
                set
            }
        }
    }

    /// The same labels without the metric name.
    pub(super) fn without_name(self) -> Self {
        match self {
            ElemLabels::Series { key, .. } => ElemLabels::Series { key, name: false },
            ElemLabels::Owned(mut set) => {
                set.remove("__name__");
                ElemLabels::Owned(set)
            }
        }
    }
}
