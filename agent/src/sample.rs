//! Samples: one observed value of a catalogue metric, with its labels.
//!
//! The unit of data that flows from the collectors into the store, and from the store into
//! the exposition, the rules and the history. It sits below all of them so that none has to
//! import another's module to speak of a sample.

use crate::catalogue::Metric;

/// A set of label names and values, ordered by name: what rules, alerts and query answers
/// carry (a sample's own labels are [`Labels`]).
pub type LabelSet = std::collections::BTreeMap<String, String>;

/// Label values of one sample, in the order of its metric's `labels`.
pub type Labels = Vec<(&'static str, String)>;

/// Which series of a metric a sample is: the value of a gauge or counter, or one part of a
/// histogram (exported as `_bucket{le=...}`, `_sum` and `_count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Part {
    /// A gauge or counter value.
    #[default]
    Value,
    /// A cumulative histogram bucket; the upper bound as `f64::to_bits` of a non-negative
    /// number (or +Inf), which orders like the number itself.
    Bucket(u64),
    /// The histogram's sum of observations.
    Sum,
    /// The histogram's count of observations.
    Count,
}

impl Part {
    /// The bucket part with upper bound `le` (negative bounds are clamped to 0).
    pub fn bucket(le: f64) -> Part {
        Part::Bucket(le.max(0.0).to_bits())
    }
}

/// One observed value of a catalogue metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric this value belongs to.
    pub metric: &'static Metric,
    /// Label values (without `host`, which the exporter adds).
    pub labels: Labels,
    /// The value, in the metric's base unit.
    pub value: f64,
    /// Which series of the metric: [`Part::Value`] except for histograms.
    pub part: Part,
}

impl Sample {
    /// A sample of a metric without labels.
    pub fn new(metric: &'static Metric, value: f64) -> Self {
        Sample {
            metric,
            labels: Vec::new(),
            value,
            part: Part::Value,
        }
    }

    /// A sample with labels, given as `(name, value)` pairs in the metric's label order.
    pub fn with_labels<const N: usize>(
        metric: &'static Metric,
        labels: [(&'static str, String); N],
        value: f64,
    ) -> Self {
        debug_assert_eq!(
            labels.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            metric.labels,
            "labels of {} out of catalogue order",
            metric.name
        );
        Sample {
            metric,
            labels: labels.into(),
            value,
            part: Part::Value,
        }
    }

    /// A sample with labels built at run time (`(name, value)` pairs, the catalogue's
    /// labels first, in order; rule labels may follow on alert series).
    pub fn from_labels(metric: &'static Metric, labels: Labels, value: f64) -> Self {
        Sample {
            metric,
            labels,
            value,
            part: Part::Value,
        }
    }
}
