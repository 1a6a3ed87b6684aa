//! The expressions rules are written in: the rule subset of the query language, checked,
//! printed back as canonical PromQL, and evaluated over the live [`Store`] by the query
//! evaluator.
//!
//! Text is parsed once by [`crate::query::parse`] (the one parser of the agent); this module
//! checks that the tree has the fixed shape rules allow, so every accepted expression
//! exports 1:1 to Prometheus. An expression is, from the inside out:
//!
//! 1. a selector `metric{label="v",label!="v",label=~"re",label!~"re"}` on a catalogue
//!    metric (regexes fully anchored, compiled once at parse time);
//! 2. optionally inside `rate|increase|avg_over_time|min_over_time|max_over_time|last_over_time`
//!    of `selector[range]`, with `0 < range <= 1h` (the store keeps bounded windows);
//! 3. optionally aggregated with `sum|avg|min|max|count`, optionally `by (labels)`;
//! 4. optionally multiplied or divided by number literals (`e * 100`, `100 * e`, `e / 1024`,
//!    `-e`), applied last.
//!
//! Anything else (binary operations between vectors, offset, `@`, subqueries, other functions
//! or aggregations, `without`...) is an error naming the unsupported part. Metric names must
//! be in the catalogue, `rate`/`increase` need counters, and matcher and `by` labels must be
//! the metric's labels or `host`.
//!
//! Evaluation ([`crate::query::live`]) differs from PromQL's in three ways:
//! - the store does not carry `host` (the engine adds it), so `host` matchers are accepted
//!   but ignored; `by (host)` therefore groups as if the label were absent;
//! - an instant selector yields the series whose collector reported them on its last run
//!   (`present`), with no lookback: a vanished series disappears at once;
//! - `increase` is the exact increase between the first and last point of the window
//!   (positive deltas, a drop counted as a restart from 0), without PromQL's extrapolation
//!   to the window edges; `rate` is that increase divided by the seconds between those two
//!   points. Range functions read the windows of absent series too, so a series that just
//!   vanished still contributes its recent points;
//! - output labels never include the metric name.

use std::time::Duration;

use super::LabelSet;
use crate::catalogue::{self, Kind, Metric};
pub use crate::query::SeriesIndex;
use crate::query::ast::{
    AggOp, BinOp, Binary, Func, Grouping, LabelMatcher, Node, display_duration, display_number,
};
#[cfg(test)]
use crate::query::ast::{MAX_TOKENS, tokens};
use crate::query::eval::eval;
use crate::query::value::{ElemLabels, Value};
use crate::query::{self, Live};
use crate::store::{Millis, Store};

/// The label every exported sample carries but the store does not (the engine adds it).
const HOST: &str = "host";

/// Longest range a range function may use: the store keeps bounded windows.
const MAX_RANGE: Duration = Duration::from_secs(3600);

/// A parsed, checked expression of the subset: a selector, optionally inside a range
/// function, optionally aggregated, optionally scaled by numbers.
#[derive(Debug, Clone)]
pub struct Expr {
    selector: Selector,
    range_fn: Option<RangeFn>,
    aggregation: Option<Aggregation>,
    /// Applied in order to every output value, after aggregation.
    scale: Vec<Scale>,
    /// The tree the evaluator runs.
    tree: query::Expr,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        // The tree says the same as the shape (`100 * e` and `e * 100` alike).
        self.selector == other.selector
            && self.range_fn == other.range_fn
            && self.aggregation == other.aggregation
            && self.scale == other.scale
    }
}

/// `metric{matchers}` on a catalogue metric.
#[derive(Debug, Clone, PartialEq)]
struct Selector {
    metric: &'static Metric,
    matchers: Vec<LabelMatcher>,
}

/// A range function and its window.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RangeFn {
    func: Func,
    range: Duration,
}

/// The range functions rules may use.
const RANGE_FUNCS: [Func; 6] = [
    Func::Rate,
    Func::Increase,
    Func::AvgOverTime,
    Func::MinOverTime,
    Func::MaxOverTime,
    Func::LastOverTime,
];

/// An aggregation; `by` is sorted and deduplicated (order does not change the meaning).
#[derive(Debug, Clone, PartialEq)]
struct Aggregation {
    op: AggOp,
    by: Vec<String>,
}

/// `value * by` or `value / by`.
#[derive(Debug, Clone, Copy)]
struct Scale {
    op: BinOp,
    by: f64,
}

impl PartialEq for Scale {
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op && (self.by == other.by || (self.by.is_nan() && other.by.is_nan()))
    }
}

/// Parses and checks an expression of the subset; the error names the unsupported or
/// invalid part.
pub fn parse(text: &str) -> Result<Expr, String> {
    let tree = query::parse(text)?;
    let mut scale = Vec::new();
    let inner = peel_scale(&tree.root, &mut scale)?;
    let (aggregation, inner) = match inner {
        Node::Aggregate(agg) => (Some(convert_aggregation(agg)?), agg.expr.as_ref()),
        other => (None, other),
    };
    let (range_fn, selector) = convert_inner(inner)?;
    if let Some(agg) = &aggregation {
        for label in &agg.by {
            check_label(selector.metric, label, "by")?;
        }
    }
    Ok(Expr {
        selector,
        range_fn,
        aggregation,
        scale,
        tree,
    })
}

/// The value of a number literal, if `n` is one (negation is folded in by the parser).
fn number(n: &Node) -> Option<f64> {
    match n {
        Node::Number(v) => Some(*v),
        _ => None,
    }
}

/// Peels the outer `* n`, `/ n` and unary minus off `n`, pushing them in application order,
/// and returns the vector expression inside.
fn peel_scale<'a>(n: &'a Node, out: &mut Vec<Scale>) -> Result<&'a Node, String> {
    match n {
        Node::Neg(inner) => {
            let inner = peel_scale(inner, out)?;
            out.push(Scale {
                op: BinOp::Mul,
                by: -1.0,
            });
            Ok(inner)
        }
        Node::Binary(b) => {
            let op = scale_op(b)?;
            match (number(&b.lhs), number(&b.rhs)) {
                (None, Some(by)) => {
                    let inner = peel_scale(&b.lhs, out)?;
                    out.push(Scale { op, by });
                    Ok(inner)
                }
                (Some(by), None) if op == BinOp::Mul => {
                    // `n * e` == `e * n`; kept in the canonical `e * n` form.
                    let inner = peel_scale(&b.rhs, out)?;
                    out.push(Scale { op, by });
                    Ok(inner)
                }
                (Some(_), None) => Err(format!(
                    "unsupported: a number divided by a vector (\"{n}\"); only a vector times \
                     or divided by a number is supported"
                )),
                (Some(_), Some(_)) => Err(format!(
                    "unsupported: arithmetic between two numbers (\"{n}\"); write the result \
                     as one number"
                )),
                (None, None) => Err(format!(
                    "unsupported: binary operation between two vectors (\"{n}\"); only a \
                     vector times or divided by a number is supported"
                )),
            }
        }
        other => Ok(other),
    }
}

/// The operator of a binary expression, if it is `*` or `/` without modifiers.
fn scale_op(b: &Binary) -> Result<BinOp, String> {
    if !matches!(b.op, BinOp::Mul | BinOp::Div) {
        return Err(format!(
            "unsupported operator \"{}\" in \"{}\"; only \"*\" and \"/\" by a number are \
             supported (thresholds go in warning/critical)",
            b.op.as_str(),
            Node::Binary(Box::new(b.clone()))
        ));
    }
    if b.matching.is_some() || b.return_bool {
        return Err(format!(
            "unsupported: vector matching modifiers in \"{}\" (on, ignoring, group_left, bool)",
            Node::Binary(Box::new(b.clone()))
        ));
    }
    Ok(b.op)
}

fn convert_aggregation(agg: &query::ast::Aggregate) -> Result<Aggregation, String> {
    let op = match agg.op {
        AggOp::Sum | AggOp::Avg | AggOp::Min | AggOp::Max | AggOp::Count => agg.op,
        AggOp::Topk | AggOp::Bottomk => {
            return Err(format!("unsupported aggregation \"{}\"", agg.op.name()));
        }
    };
    let by = match &agg.grouping {
        Grouping::By(by) => by.clone(),
        Grouping::Without(_) => {
            return Err("\"without\" is not supported; use \"by\"".to_string());
        }
    };
    Ok(Aggregation { op, by })
}

/// Converts what sits inside the aggregation (or at the top): a selector, or a range
/// function of a range selector.
fn convert_inner(n: &Node) -> Result<(Option<RangeFn>, Selector), String> {
    match n {
        Node::Vector(sel) => Ok((None, convert_selector(sel)?)),
        Node::Call(func, args) => {
            let name = func.name();
            if !RANGE_FUNCS.contains(func) {
                return Err(format!("unsupported function \"{name}\""));
            }
            let [Node::Matrix(sel, range)] = args.as_slice() else {
                return Err(format!("{name}() takes exactly one range selector"));
            };
            let selector = convert_selector(sel)?;
            if range.is_zero() || *range > MAX_RANGE {
                return Err(format!(
                    "range [{}] of {name}() must be > 0 and at most 1h (the store keeps \
                     bounded windows)",
                    display_duration(*range)
                ));
            }
            if matches!(func, Func::Rate | Func::Increase) && selector.metric.kind != Kind::Counter
            {
                return Err(format!(
                    "{name}() needs a counter; {} is a {}",
                    selector.metric.name,
                    selector.metric.kind.as_str()
                ));
            }
            Ok((
                Some(RangeFn {
                    func: *func,
                    range: *range,
                }),
                selector,
            ))
        }
        Node::Matrix(sel, range) => Err(format!(
            "unsupported: range selector \"{sel}[{}]\" without a function; wrap it in rate(), \
             increase() or *_over_time()",
            display_duration(*range)
        )),
        Node::Aggregate(agg) => Err(format!(
            "unsupported: aggregation \"{}\" inside another aggregation or function; only one \
             outer aggregation is supported",
            agg.op.name()
        )),
        Node::Binary(_) | Node::Neg(_) => Err(
            "unsupported: \"*\" or \"/\" by a number inside an aggregation or function; it must \
             be the outermost operation"
                .to_string(),
        ),
        Node::Number(v) => Err(format!(
            "unsupported: a number alone (\"{}\"); an expression must select a metric",
            display_number(*v)
        )),
    }
}

fn convert_selector(sel: &query::ast::Selector) -> Result<Selector, String> {
    let name = sel.name.as_str();
    let metric = catalogue::lookup(name).ok_or_else(|| unknown_metric(name))?;
    if metric.kind == Kind::Histogram {
        return Err(format!(
            "unsupported: {name} is a histogram; use its derived gauges (e.g. \
             lookout_api_latency_p95_seconds)"
        ));
    }
    for m in &sel.matchers {
        check_label(metric, &m.label, "matcher")?;
    }
    Ok(Selector {
        metric,
        matchers: sel.matchers.clone(),
    })
}

/// Checks that `label` is one of the metric's labels or `host`.
fn check_label(metric: &Metric, label: &str, context: &str) -> Result<(), String> {
    if label == HOST || metric.labels.contains(&label) {
        return Ok(());
    }
    let mut valid: Vec<&str> = metric.labels.to_vec();
    valid.push(HOST);
    Err(format!(
        "unknown label \"{label}\" in {context} of {}; valid labels: {}",
        metric.name,
        valid.join(", ")
    ))
}

fn unknown_metric(name: &str) -> String {
    let closest = catalogue::ALL
        .iter()
        .map(|m| (crate::text::edit_distance(name, m.name), m.name))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d);
    match closest {
        Some((_, near)) => format!("unknown metric \"{name}\"; did you mean \"{near}\"?"),
        None => format!("unknown metric \"{name}\""),
    }
}

/// The labels of one output series, borrowed from the store or the aggregation.
#[derive(Debug, Clone, Copy)]
pub enum OutputLabels<'a> {
    /// A selected series' labels, in catalogue order (empty values included).
    Series(&'a [(&'static str, String)]),
    /// An aggregation group's labels.
    Set(&'a LabelSet),
}

impl<'a> OutputLabels<'a> {
    /// The `(name, value)` pairs, empty values left out (PromQL has no empty labels).
    pub fn pairs(self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let (series, set) = match self {
            OutputLabels::Series(s) => (Some(s), None),
            OutputLabels::Set(s) => (None, Some(s)),
        };
        series
            .into_iter()
            .flatten()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(
                set.into_iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .filter(|(_, v)| !v.is_empty())
    }

    /// The value of label `name`, if present and not empty.
    pub fn get(self, name: &str) -> Option<&'a str> {
        self.pairs().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// An owned label set.
    pub fn to_label_set(self) -> LabelSet {
        self.pairs()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl Expr {
    /// Metric names the selectors use (one, in this subset).
    pub fn metric_names(&self) -> Vec<&str> {
        vec![self.selector.metric.name]
    }

    /// The largest `[range]` used, if any.
    pub fn max_range(&self) -> Option<Duration> {
        self.range_fn.map(|f| f.range)
    }

    /// The metric read over a range and the range, if any: what the store must keep a
    /// window of for this expression.
    pub fn window(&self) -> Option<(&'static str, Duration)> {
        self.range_fn.map(|f| (self.selector.metric.name, f.range))
    }

    /// Calls `f` with each output series' labels (borrowed: no allocation per selected
    /// series) and value, in the store's order; aggregated output in label order. Labels
    /// exclude the metric name and `host` (the engine adds it); empty label values are left
    /// out.
    pub fn for_each(&self, store: &Store, now: Millis, f: impl FnMut(OutputLabels<'_>, f64)) {
        self.for_each_indexed(store, None, now, f);
    }

    /// [`Expr::for_each`] with an index shared by the expressions of one evaluation tick.
    pub fn for_each_indexed<'s>(
        &self,
        store: &'s Store,
        index: Option<&mut SeriesIndex<'s>>,
        now: Millis,
        mut f: impl FnMut(OutputLabels<'_>, f64),
    ) {
        let mut source = Live::new(store, index);
        // The subset has no vector matching, the only source of evaluation errors.
        let Ok(Value::Vector(out)) = eval(&self.tree.root, &mut source, now) else {
            return;
        };
        for e in &out {
            match &e.labels {
                ElemLabels::Series { key, .. } => f(OutputLabels::Series(&key.labels), e.value),
                ElemLabels::Owned(set) => f(OutputLabels::Set(set), e.value),
            }
        }
    }

    /// Evaluates over `store` at `now`: one `(labels, value)` per output series, in the
    /// order of [`Expr::for_each`].
    pub fn eval(&self, store: &Store, now: Millis) -> Vec<(LabelSet, f64)> {
        let mut out = Vec::new();
        self.for_each(store, now, |labels, v| out.push((labels.to_label_set(), v)));
        out
    }

    /// Canonical PromQL with the same meaning, e.g.
    /// `sum by (device) (rate(lookout_disk_read_bytes_total{device=~"sd.*"}[5m])) * 8`.
    pub fn to_promql(&self) -> String {
        let selector = query::ast::Selector {
            id: 0,
            name: self.selector.metric.name.to_string(),
            target: None,
            matchers: self.selector.matchers.clone(),
        };
        let mut s = selector.to_string();
        if let Some(range_fn) = self.range_fn {
            s = format!(
                "{}({s}[{}])",
                range_fn.func.name(),
                display_duration(range_fn.range)
            );
        }
        if let Some(agg) = &self.aggregation {
            s = if agg.by.is_empty() {
                format!("{}({s})", agg.op.name())
            } else {
                format!("{} by ({}) ({s})", agg.op.name(), agg.by.join(", "))
            };
        }
        for scale in &self.scale {
            s = format!("{s} {} {}", scale.op.as_str(), display_number(scale.by));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{CPU_USAGE_RATIO, DISK_READ_BYTES_TOTAL, FILESYSTEM_USAGE_RATIO};
    use crate::collect::Sample;

    /// Expressions accepted, with their canonical PromQL.
    #[test]
    fn accepted_expressions_print_canonically_and_round_trip() {
        let table: &[(&str, &str)] = &[
            // A bare selector.
            ("lookout_cpu_usage_ratio", "lookout_cpu_usage_ratio"),
            // All four matcher kinds, order kept.
            (
                r#"lookout_filesystem_usage_ratio{mountpoint="/",device!="x",fstype=~"ext.",mountpoint!~"/boot|/efi"}"#,
                r#"lookout_filesystem_usage_ratio{mountpoint="/",device!="x",fstype=~"ext.",mountpoint!~"/boot|/efi"}"#,
            ),
            // host matchers are accepted.
            (
                r#"lookout_load1{host="web1"}"#,
                r#"lookout_load1{host="web1"}"#,
            ),
            // __name__ spelled as a matcher.
            (r#"{__name__="lookout_load1"}"#, "lookout_load1"),
            // Escapes in values survive.
            (
                r#"lookout_disk_io_time_ratio{device=~"sd\\d+\"x"}"#,
                r#"lookout_disk_io_time_ratio{device=~"sd\\d+\"x"}"#,
            ),
            // Each range function; ranges printed in their largest exact unit.
            (
                "rate(lookout_disk_read_bytes_total[300s])",
                "rate(lookout_disk_read_bytes_total[5m])",
            ),
            (
                "increase(lookout_disk_read_bytes_total[1h])",
                "increase(lookout_disk_read_bytes_total[1h])",
            ),
            (
                "avg_over_time(lookout_load1[90s])",
                "avg_over_time(lookout_load1[90s])",
            ),
            (
                "min_over_time(lookout_load1[1500ms])",
                "min_over_time(lookout_load1[1500ms])",
            ),
            (
                "max_over_time(lookout_load1[1m30s])",
                "max_over_time(lookout_load1[90s])",
            ),
            (
                "last_over_time(lookout_disk_read_bytes_total[2m])",
                "last_over_time(lookout_disk_read_bytes_total[2m])",
            ),
            // Aggregation without by; `by ()` means the same.
            ("sum(lookout_load1)", "sum(lookout_load1)"),
            ("sum by () (lookout_load1)", "sum(lookout_load1)"),
            // `by` after the parenthesis, labels sorted and deduplicated.
            (
                "avg(lookout_filesystem_usage_ratio) by (mountpoint, device, mountpoint)",
                "avg by (device, mountpoint) (lookout_filesystem_usage_ratio)",
            ),
            (
                "count by (host) (lookout_load1)",
                "count by (host) (lookout_load1)",
            ),
            ("min(lookout_load1)", "min(lookout_load1)"),
            ("max(lookout_load1)", "max(lookout_load1)"),
            // The full shape.
            (
                r#"sum by (device) (rate(lookout_disk_read_bytes_total{device=~"sd.*"}[5m])) * 8"#,
                r#"sum by (device) (rate(lookout_disk_read_bytes_total{device=~"sd.*"}[5m])) * 8"#,
            ),
            // Number on the left of `*` is normalised to the right.
            (
                "100 * lookout_cpu_usage_ratio",
                "lookout_cpu_usage_ratio * 100",
            ),
            // Chained scalars apply left to right; parentheses carry no meaning here.
            (
                "(lookout_memory_total_bytes / 1024) / 1024",
                "lookout_memory_total_bytes / 1024 / 1024",
            ),
            // Unary minus is `* -1`; special numbers print as PromQL reads them.
            ("-lookout_load1", "lookout_load1 * -1"),
            ("lookout_load1 * 0.5", "lookout_load1 * 0.5"),
            ("lookout_load1 / Inf", "lookout_load1 / +Inf"),
            ("lookout_load1 * NaN", "lookout_load1 * NaN"),
            ("lookout_load1 * 0x10", "lookout_load1 * 16"),
        ];
        for (input, want) in table {
            let e = parse(input).unwrap_or_else(|err| panic!("{input}: {err}"));
            let got = e.to_promql();
            assert_eq!(&got, want, "{input}");
            assert!(
                promql_parser::parser::parse(&got).is_ok(),
                "promql-parser rejects {got}"
            );
            assert_eq!(parse(&got), Ok(e), "round trip of {input}");
        }
    }

    /// Rejected expressions and a substring of each message.
    #[test]
    fn rejected_expressions_name_the_unsupported_part() {
        let table: &[(&str, &str)] = &[
            // Two vectors.
            (
                "lookout_memory_available_bytes / lookout_memory_total_bytes",
                "unsupported: binary operation between two vectors (\"lookout_memory_available_bytes / lookout_memory_total_bytes\"); only a vector times or divided by a number is supported",
            ),
            // Other operators, comparisons and set operators.
            ("lookout_load1 + 1", "unsupported operator \"+\""),
            ("lookout_load1 > 1", "unsupported operator \">\""),
            (
                "lookout_load1 and lookout_load5",
                "unsupported operator \"and\"",
            ),
            // A number divided by a vector means something else.
            ("1 / lookout_load1", "a number divided by a vector"),
            // No selector at all.
            ("2 * 3", "arithmetic between two numbers"),
            ("42", "a number alone"),
            ("\"foo\"", "string literal"),
            // Functions outside the subset.
            (
                "histogram_quantile(0.9, rate(lookout_disk_read_bytes_total[5m]))",
                "unsupported function \"histogram_quantile\"",
            ),
            ("abs(lookout_load1)", "unsupported function \"abs\""),
            // Modifiers.
            ("lookout_load1 offset 5m", "unsupported: offset"),
            (
                "rate(lookout_disk_read_bytes_total[5m] offset 1m)",
                "unsupported: offset",
            ),
            ("lookout_load1 @ 100", "unsupported: @ modifier"),
            (
                "rate(lookout_disk_read_bytes_total[5m:1m])",
                "unsupported: subquery",
            ),
            // Aggregations outside the subset.
            ("topk(3, lookout_load1)", "unsupported aggregation \"topk\""),
            (
                "quantile(0.9, lookout_load1)",
                "unsupported aggregation \"quantile\"",
            ),
            (
                "stddev(lookout_load1)",
                "unsupported aggregation \"stddev\"",
            ),
            (
                "sum without (device) (lookout_disk_io_time_ratio)",
                "\"without\" is not supported; use \"by\"",
            ),
            // Wrong nesting order.
            (
                "sum(max(lookout_load1))",
                "aggregation \"max\" inside another aggregation",
            ),
            ("sum(lookout_load1 * 2)", "must be the outermost operation"),
            (
                "lookout_load1[5m]",
                "range selector \"lookout_load1[5m]\" without a function",
            ),
            // Catalogue checks, with a suggestion within edit distance 3.
            (
                "lookout_cpu_usag_ratio",
                "unknown metric \"lookout_cpu_usag_ratio\"; did you mean \"lookout_cpu_usage_ratio\"?",
            ),
            ("node_load1", "unknown metric \"node_load1\""),
            (
                "lookout_probe_duration_seconds_hist",
                "lookout_probe_duration_seconds_hist is a histogram",
            ),
            (r#"{device="sda"}"#, "a selector needs a metric name"),
            (r#"{__name__=~"lookout_.*"}"#, "matcher on __name__"),
            (
                "rate(lookout_cpu_usage_ratio[5m])",
                "rate() needs a counter; lookout_cpu_usage_ratio is a gauge",
            ),
            (
                "increase(lookout_load1[5m])",
                "increase() needs a counter; lookout_load1 is a gauge",
            ),
            // Labels must be the metric's or host.
            (
                r#"lookout_filesystem_usage_ratio{mountpont="/"}"#,
                "unknown label \"mountpont\" in matcher of lookout_filesystem_usage_ratio; valid labels: mountpoint, device, fstype, host",
            ),
            (
                "sum by (device) (lookout_load1)",
                "unknown label \"device\" in by of lookout_load1; valid labels: host",
            ),
            // Range bounds.
            (
                "rate(lookout_disk_read_bytes_total[2h])",
                "range [2h] of rate() must be > 0 and at most 1h (the store keeps bounded windows)",
            ),
            // A zero range (promql-parser rejects it).
            (
                "rate(lookout_disk_read_bytes_total[0s])",
                "duration must be greater than 0",
            ),
            // Syntax errors are reported as such.
            ("rate(lookout_load1", "invalid PromQL"),
        ];
        for (input, want) in table {
            match parse(input) {
                Ok(e) => panic!("{input}: accepted as {e:?}"),
                Err(err) => assert!(err.contains(want), "{input}: {err:?} lacks {want:?}"),
            }
        }
    }

    /// Thousands of nesting levels used to exhaust the parser's stack and abort the process
    /// (`lookout check`, or the agent on reload); found by the property tests.
    #[test]
    fn deeply_nested_expressions_are_an_error_not_a_stack_overflow() {
        for text in [
            format!("{}lookout_load1", "-".repeat(100_000)),
            format!("lookout_load1{}", " * 2".repeat(100_000)),
            format!(
                "{}lookout_load1{}",
                "sum(".repeat(100_000),
                ")".repeat(100_000)
            ),
            format!("lookout_load1{}", " or lookout_load1".repeat(100_000)),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.starts_with("too long: "), "{err}");
            assert!(err.ends_with("at most 512"), "{err}");
        }
        // The limit counts tokens, not characters: a long quoted string is one.
        let long = format!(
            r#"lookout_filesystem_usage_ratio{{mountpoint!~"{}"}}"#,
            "/x|".repeat(5000)
        );
        assert!(parse(&long).is_ok());
        assert_eq!(tokens(r#"sum by (a) (m{l=~"x\"y"}[5m]) * 2"#), 19);
        // Up to the limit, nesting still parses.
        let deep = format!("{}lookout_load1", "-".repeat(MAX_TOKENS - 1));
        assert!(parse(&deep).is_ok());
    }

    #[test]
    fn metric_names_and_max_range() {
        let e = parse("sum(rate(lookout_disk_read_bytes_total[5m])) * 8").unwrap();
        assert_eq!(e.metric_names(), ["lookout_disk_read_bytes_total"]);
        assert_eq!(e.max_range(), Some(Duration::from_secs(300)));
        assert_eq!(parse("lookout_load1").unwrap().max_range(), None);
    }

    fn disk(device: &str, v: f64) -> Sample {
        Sample::with_labels(&DISK_READ_BYTES_TOTAL, [("device", device.into())], v)
    }

    fn fs(mount: &str, device: &str, fstype: &str, v: f64) -> Sample {
        Sample::with_labels(
            &FILESYSTEM_USAGE_RATIO,
            [
                ("mountpoint", mount.into()),
                ("device", device.into()),
                ("fstype", fstype.into()),
            ],
            v,
        )
    }

    /// The scripted store, with every run at or before `until` (ms) applied:
    ///
    /// | t   | disk sda | sdb  | nvme0n1 | fs /  (vda ext4) | /data (vdb xfs) | /boot (vda ext4) | cpu  |
    /// |-----|----------|------|---------|------------------|-----------------|------------------|------|
    /// | 10s | 100      | 1000 | 5       | 0.5              | 0.7             | 0.2              | 0.25 |
    /// | 20s | 300      | 1500 | 10      | 0.6              | 0.9             | 0.2              | 0.5  |
    /// | 30s | 50 reset | 2100 | absent  | 0.4              | 0.8             | 0.3              | 0    |
    /// | 40s | 250      | 2400 | absent  | 0.5              | absent          | 0.3              | 0    |
    fn store_until(until: Millis) -> Store {
        let mut store = Store::default();
        let runs: [(Millis, Vec<Sample>, Vec<Sample>, f64); 4] = [
            (
                10_000,
                vec![
                    disk("sda", 100.0),
                    disk("sdb", 1000.0),
                    disk("nvme0n1", 5.0),
                ],
                vec![
                    fs("/", "vda", "ext4", 0.5),
                    fs("/data", "vdb", "xfs", 0.7),
                    fs("/boot", "vda", "ext4", 0.2),
                ],
                0.25,
            ),
            (
                20_000,
                vec![
                    disk("sda", 300.0),
                    disk("sdb", 1500.0),
                    disk("nvme0n1", 10.0),
                ],
                vec![
                    fs("/", "vda", "ext4", 0.6),
                    fs("/data", "vdb", "xfs", 0.9),
                    fs("/boot", "vda", "ext4", 0.2),
                ],
                0.5,
            ),
            (
                30_000,
                vec![disk("sda", 50.0), disk("sdb", 2100.0)],
                vec![
                    fs("/", "vda", "ext4", 0.4),
                    fs("/data", "vdb", "xfs", 0.8),
                    fs("/boot", "vda", "ext4", 0.3),
                ],
                0.0,
            ),
            (
                40_000,
                vec![disk("sda", 250.0), disk("sdb", 2400.0)],
                vec![fs("/", "vda", "ext4", 0.5), fs("/boot", "vda", "ext4", 0.3)],
                0.0,
            ),
        ];
        for (at, disks, filesystems, cpu) in runs {
            if at <= until {
                store.apply("disk", disks, at);
                store.apply("filesystem", filesystems, at);
                store.apply("cpu", vec![Sample::new(&CPU_USAGE_RATIO, cpu)], at);
            }
        }
        store
    }

    /// An index shared across expressions gives what a full scan gives, in the same order.
    #[test]
    fn indexed_evaluation_matches_a_full_scan() {
        let store = store_until(30_000);
        let mut index = SeriesIndex::default();
        for text in [
            r#"lookout_filesystem_usage_ratio{device="vda"}"#,
            r#"lookout_filesystem_usage_ratio{device="vda",fstype="ext4",mountpoint!="/"}"#,
            r#"lookout_filesystem_usage_ratio{device="nope"}"#,
            r#"lookout_filesystem_usage_ratio{device=""}"#,
            r#"lookout_filesystem_usage_ratio{fstype="xfs"}"#,
            r#"max by (device) (lookout_filesystem_usage_ratio{fstype="ext4"})"#,
            r#"rate(lookout_disk_read_bytes_total{device="sda"}[1m])"#,
            r#"rate(lookout_disk_read_bytes_total{device="nvme0n1"}[1m])"#,
        ] {
            let expr = parse(text).unwrap();
            let mut indexed = Vec::new();
            expr.for_each_indexed(&store, Some(&mut index), 30_000, |l, v| {
                indexed.push((l.to_label_set(), v));
            });
            assert_values(&indexed, &expr.eval(&store, 30_000), text);
        }
        // Each (metric, label) was grouped once, however many expressions used it.
        assert_eq!(index.group_count(), 3);
    }

    /// One expected output series.
    type Row = (LabelSet, f64);

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn assert_values(got: &[(LabelSet, f64)], want: &[(LabelSet, f64)], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: got {got:?}, want {want:?}");
        for ((gl, gv), (wl, wv)) in got.iter().zip(want) {
            assert_eq!(gl, wl, "{what}: got {got:?}");
            let same = gv == wv || (gv.is_nan() && wv.is_nan()) || (gv - wv).abs() < 1e-9;
            assert!(same, "{what}: {gl:?} = {gv}, want {wv}");
        }
    }

    /// Evaluation over the scripted store; expected values worked out by hand.
    #[test]
    fn eval_over_the_store() {
        let dev = |d: &str| labels(&[("device", d)]);
        let mount =
            |m: &str, d: &str, f: &str| labels(&[("device", d), ("fstype", f), ("mountpoint", m)]);
        let none = LabelSet::new;
        let table: Vec<(&str, Millis, Vec<Row>)> = vec![
            // Instant selector at 40s: nvme0n1 is absent, so only sda and sdb.
            (
                "lookout_disk_read_bytes_total",
                40_000,
                vec![(dev("sda"), 250.0), (dev("sdb"), 2400.0)],
            ),
            // Same at 20s: all three present, sorted by labels.
            (
                "lookout_disk_read_bytes_total",
                20_000,
                vec![
                    (dev("nvme0n1"), 10.0),
                    (dev("sda"), 300.0),
                    (dev("sdb"), 1500.0),
                ],
            ),
            // `=`.
            (
                r#"lookout_disk_read_bytes_total{device="sda"}"#,
                40_000,
                vec![(dev("sda"), 250.0)],
            ),
            // `!=`.
            (
                r#"lookout_disk_read_bytes_total{device!="sda"}"#,
                40_000,
                vec![(dev("sdb"), 2400.0)],
            ),
            // `=~`: sda and sdb match `sd.*`.
            (
                r#"lookout_disk_read_bytes_total{device=~"sd.*"}"#,
                20_000,
                vec![(dev("sda"), 300.0), (dev("sdb"), 1500.0)],
            ),
            // `=~` is anchored: `sd` matches neither sda nor sdb.
            (
                r#"lookout_disk_read_bytes_total{device=~"sd"}"#,
                20_000,
                vec![],
            ),
            // `!~` anchored: excludes sda and nvme0n1 only.
            (
                r#"lookout_disk_read_bytes_total{device!~"sda|nvme.*"}"#,
                20_000,
                vec![(dev("sdb"), 1500.0)],
            ),
            // A matcher on an empty/missing label: `device=""` matches no disk.
            (
                r#"lookout_disk_read_bytes_total{device=""}"#,
                20_000,
                vec![],
            ),
            // host matchers are ignored in eval (any value selects this host's series).
            (
                r#"lookout_cpu_usage_ratio{host="elsewhere"}"#,
                20_000,
                vec![(none(), 0.5)],
            ),
            // increase over (-20s, 40s]: sda 100,300,50,250 -> 200 + 50 (reset) + 200 = 450;
            // sdb 1000,1500,2100,2400 -> 1400; absent nvme0n1 5,10 -> 5.
            (
                "increase(lookout_disk_read_bytes_total[1m])",
                40_000,
                vec![
                    (dev("nvme0n1"), 5.0),
                    (dev("sda"), 450.0),
                    (dev("sdb"), 1400.0),
                ],
            ),
            // rate = increase / (t_last - t_first): sda 450/30s = 15; sdb 1400/30 = 46.67;
            // nvme0n1 5/10s = 0.5.
            (
                "rate(lookout_disk_read_bytes_total[1m])",
                40_000,
                vec![
                    (dev("nvme0n1"), 0.5),
                    (dev("sda"), 15.0),
                    (dev("sdb"), 1400.0 / 30.0),
                ],
            ),
            // Window (15s, 40s]: sda 300,50,250 -> 50 (reset) + 200 = 250, over 20s = 12.5;
            // sdb 1500,2100,2400 -> 900 / 20s = 45; nvme0n1 has one point (10 @ 20s): nothing.
            (
                "rate(lookout_disk_read_bytes_total[25s])",
                40_000,
                vec![(dev("sda"), 12.5), (dev("sdb"), 45.0)],
            ),
            // Window (25s, 40s]: sda 50 -> 250 = 200; sdb 2100 -> 2400 = 300.
            (
                "increase(lookout_disk_read_bytes_total[15s])",
                40_000,
                vec![(dev("sda"), 200.0), (dev("sdb"), 300.0)],
            ),
            // One point in (15s, 40s] for nvme0n1: last_over_time still yields it.
            (
                r#"last_over_time(lookout_disk_read_bytes_total{device="nvme0n1"}[25s])"#,
                40_000,
                vec![(dev("nvme0n1"), 10.0)],
            ),
            // No points in (20s, 40s] for nvme0n1: nothing.
            (
                r#"last_over_time(lookout_disk_read_bytes_total{device="nvme0n1"}[20s])"#,
                40_000,
                vec![],
            ),
            // avg over (-20s, 40s]: / (0.5+0.6+0.4+0.5)/4 = 0.5; /boot (0.2+0.2+0.3+0.3)/4 = 0.25;
            // absent /data (0.7+0.9+0.8)/3 = 0.8.
            (
                "avg_over_time(lookout_filesystem_usage_ratio[1m])",
                40_000,
                vec![
                    (mount("/", "vda", "ext4"), 0.5),
                    (mount("/boot", "vda", "ext4"), 0.25),
                    (mount("/data", "vdb", "xfs"), 0.8),
                ],
            ),
            // min: / 0.4, /boot 0.2, /data 0.7.
            (
                "min_over_time(lookout_filesystem_usage_ratio[1m])",
                40_000,
                vec![
                    (mount("/", "vda", "ext4"), 0.4),
                    (mount("/boot", "vda", "ext4"), 0.2),
                    (mount("/data", "vdb", "xfs"), 0.7),
                ],
            ),
            // max: / 0.6, /boot 0.3, /data 0.9.
            (
                "max_over_time(lookout_filesystem_usage_ratio[1m])",
                40_000,
                vec![
                    (mount("/", "vda", "ext4"), 0.6),
                    (mount("/boot", "vda", "ext4"), 0.3),
                    (mount("/data", "vdb", "xfs"), 0.9),
                ],
            ),
            // last: / 0.5, /boot 0.3, /data 0.8 (its last point, at 30s).
            (
                "last_over_time(lookout_filesystem_usage_ratio[1m])",
                40_000,
                vec![
                    (mount("/", "vda", "ext4"), 0.5),
                    (mount("/boot", "vda", "ext4"), 0.3),
                    (mount("/data", "vdb", "xfs"), 0.8),
                ],
            ),
            // Points after `now` are not used: at 25s the last point of / is 0.6 (at 20s).
            (
                r#"last_over_time(lookout_filesystem_usage_ratio{mountpoint="/"}[1m])"#,
                25_000,
                vec![(mount("/", "vda", "ext4"), 0.6)],
            ),
            // Aggregations at 30s over / 0.4, /data 0.8, /boot 0.3.
            // sum: 1.5, one group without labels.
            (
                "sum(lookout_filesystem_usage_ratio)",
                30_000,
                vec![(none(), 1.5)],
            ),
            // sum by (fstype): ext4 0.4 + 0.3 = 0.7, xfs 0.8.
            (
                "sum by (fstype) (lookout_filesystem_usage_ratio)",
                30_000,
                vec![
                    (labels(&[("fstype", "ext4")]), 0.7),
                    (labels(&[("fstype", "xfs")]), 0.8),
                ],
            ),
            // avg by (device): vda (0.4 + 0.3) / 2 = 0.35, vdb 0.8.
            (
                "avg by (device) (lookout_filesystem_usage_ratio)",
                30_000,
                vec![(dev("vda"), 0.35), (dev("vdb"), 0.8)],
            ),
            // min 0.3, max 0.8, count 3.
            (
                "min(lookout_filesystem_usage_ratio)",
                30_000,
                vec![(none(), 0.3)],
            ),
            (
                "max(lookout_filesystem_usage_ratio)",
                30_000,
                vec![(none(), 0.8)],
            ),
            (
                "count(lookout_filesystem_usage_ratio)",
                30_000,
                vec![(none(), 3.0)],
            ),
            // by (host): the store has no host, so one group: 1.5.
            (
                "sum by (host) (lookout_filesystem_usage_ratio)",
                30_000,
                vec![(none(), 1.5)],
            ),
            // count by (device, fstype): (vda, ext4) 2, (vdb, xfs) 1.
            (
                "count by (fstype, device) (lookout_filesystem_usage_ratio)",
                30_000,
                vec![
                    (labels(&[("device", "vda"), ("fstype", "ext4")]), 2.0),
                    (labels(&[("device", "vdb"), ("fstype", "xfs")]), 1.0),
                ],
            ),
            // No input series -> no output, even for sum and count.
            ("sum(lookout_load1)", 40_000, vec![]),
            (
                "count(lookout_filesystem_usage_ratio{fstype=\"zfs\"})",
                40_000,
                vec![],
            ),
            // Aggregation of a range function, scaled: (15 + 46.67) * 8 = 493.33.
            (
                r#"sum(rate(lookout_disk_read_bytes_total{device=~"sd.*"}[1m])) * 8"#,
                40_000,
                vec![(none(), (15.0 + 1400.0 / 30.0) * 8.0)],
            ),
            // max by (device) of increase[1m] at 40s: nvme0n1 5, sda 450, sdb 1400.
            (
                "max by (device) (increase(lookout_disk_read_bytes_total[1m]))",
                40_000,
                vec![
                    (dev("nvme0n1"), 5.0),
                    (dev("sda"), 450.0),
                    (dev("sdb"), 1400.0),
                ],
            ),
            // Scalars: 0.5 * 100 = 50; 100 * 0.5 = 50; 0.5 / 4 = 0.125; -0.5.
            (
                "lookout_cpu_usage_ratio * 100",
                20_000,
                vec![(none(), 50.0)],
            ),
            (
                "100 * lookout_cpu_usage_ratio",
                20_000,
                vec![(none(), 50.0)],
            ),
            (
                "lookout_cpu_usage_ratio / 2 / 2",
                20_000,
                vec![(none(), 0.125)],
            ),
            ("-lookout_cpu_usage_ratio", 20_000, vec![(none(), -0.5)]),
            // Division by zero as PromQL: 0.5 / 0 = +Inf, 0 / 0 = NaN.
            (
                "lookout_cpu_usage_ratio / 0",
                20_000,
                vec![(none(), f64::INFINITY)],
            ),
            (
                "lookout_cpu_usage_ratio / 0",
                30_000,
                vec![(none(), f64::NAN)],
            ),
        ];
        for (input, now, want) in table {
            let e = parse(input).unwrap_or_else(|err| panic!("{input}: {err}"));
            let store = store_until(now);
            assert_values(&e.eval(&store, now), &want, &format!("{input} @ {now}"));
        }
    }
}
