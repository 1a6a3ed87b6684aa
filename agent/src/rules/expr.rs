//! The PromQL subset rules are written in: parse, check, evaluate over the [`Store`], and
//! print back as PromQL.
//!
//! Text is parsed with `promql-parser` and converted into a small fixed-shape AST, so
//! every accepted expression exports 1:1 to Prometheus. An expression is, from the inside out:
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
//! Differences from PromQL evaluation:
//! - the store does not carry `host` (the engine adds it), so `host` matchers are accepted
//!   but ignored by [`Expr::eval`]; `by (host)` therefore groups as if the label were absent;
//! - an instant selector yields the series whose collector reported them on its last run
//!   (`present`), with no lookback: a vanished series disappears at once;
//! - `increase` is the exact increase between the first and last point of the window
//!   (positive deltas, a drop counted as a restart from 0), without PromQL's extrapolation
//!   to the window edges; `rate` is that increase divided by the seconds between those two
//!   points. Range functions read the windows of absent series too, so a series that just
//!   vanished still contributes its recent points;
//! - output labels never include the metric name, and are sorted.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::token::{T_AVG, T_COUNT, T_DIV, T_MAX, T_MIN, T_MUL, T_SUM, TokenType};
use promql_parser::parser::{self as pp, AggregateExpr, BinaryExpr, LabelModifier, VectorSelector};
use promql_parser::util::escape_string;
use regex::Regex;

use super::LabelSet;
use crate::catalogue::{self, Kind, Metric};
use crate::store::{Millis, Series, SeriesKey, Store};

/// The label every exported sample carries but the store does not (the engine adds it).
const HOST: &str = "host";

/// Longest range a range function may use: the store keeps bounded windows.
const MAX_RANGE: Duration = Duration::from_secs(3600);

/// Most tokens an expression may have (see [`tokens`]). The subset needs a few dozen; the
/// PromQL parser recurses once per nesting level, and a few thousand levels (`- - - ... x`)
/// exhaust a thread's stack, which aborts the process instead of reporting an error.
const MAX_TOKENS: usize = 512;

/// A parsed, checked expression of the subset: a selector, optionally inside a range
/// function, optionally aggregated, optionally scaled by numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    selector: Selector,
    range_fn: Option<RangeFn>,
    aggregation: Option<Aggregation>,
    /// Applied in order to every output value, after aggregation.
    scale: Vec<Scale>,
}

/// `metric{matchers}` on a catalogue metric.
#[derive(Debug, Clone, PartialEq)]
struct Selector {
    metric: &'static Metric,
    matchers: Vec<LabelMatcher>,
}

/// One label matcher; the regex is compiled at parse time from `value`, anchored.
#[derive(Debug, Clone)]
struct LabelMatcher {
    label: String,
    op: MatchKind,
    value: String,
    /// Compiled `^(?:value)$` for `=~` and `!~`.
    regex: Option<Regex>,
}

impl PartialEq for LabelMatcher {
    fn eq(&self, other: &Self) -> bool {
        // The regex is derived from `value`, so comparing the text is enough.
        self.label == other.label && self.op == other.op && self.value == other.value
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchKind {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchKind {
    fn as_str(self) -> &'static str {
        match self {
            MatchKind::Equal => "=",
            MatchKind::NotEqual => "!=",
            MatchKind::Regex => "=~",
            MatchKind::NotRegex => "!~",
        }
    }
}

/// A range function and its window.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RangeFn {
    func: RangeFunc,
    range: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeFunc {
    Rate,
    Increase,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    LastOverTime,
}

impl RangeFunc {
    const ALL: [RangeFunc; 6] = [
        RangeFunc::Rate,
        RangeFunc::Increase,
        RangeFunc::AvgOverTime,
        RangeFunc::MinOverTime,
        RangeFunc::MaxOverTime,
        RangeFunc::LastOverTime,
    ];

    fn name(self) -> &'static str {
        match self {
            RangeFunc::Rate => "rate",
            RangeFunc::Increase => "increase",
            RangeFunc::AvgOverTime => "avg_over_time",
            RangeFunc::MinOverTime => "min_over_time",
            RangeFunc::MaxOverTime => "max_over_time",
            RangeFunc::LastOverTime => "last_over_time",
        }
    }
}

/// An aggregation; `by` is sorted and deduplicated (order does not change the meaning).
#[derive(Debug, Clone, PartialEq)]
struct Aggregation {
    op: AggOp,
    by: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
}

impl AggOp {
    fn name(self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Avg => "avg",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Count => "count",
        }
    }
}

/// `value * by` or `value / by`.
#[derive(Debug, Clone, Copy)]
struct Scale {
    op: ScaleOp,
    by: f64,
}

impl PartialEq for Scale {
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op && (self.by == other.by || (self.by.is_nan() && other.by.is_nan()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScaleOp {
    Mul,
    Div,
}

impl Scale {
    fn apply(self, v: f64) -> f64 {
        match self.op {
            ScaleOp::Mul => v * self.by,
            ScaleOp::Div => v / self.by,
        }
    }
}

/// Parses and checks an expression of the subset; the error names the unsupported or
/// invalid part.
pub fn parse(text: &str) -> Result<Expr, String> {
    let count = tokens(text);
    if count > MAX_TOKENS {
        return Err(format!(
            "too long: {count} tokens (names, numbers, operators, brackets; a quoted string \
             counts as one), at most {MAX_TOKENS}"
        ));
    }
    let ast = pp::parse(text).map_err(|e| format!("invalid PromQL: {e}"))?;
    let mut scale = Vec::new();
    let inner = peel_scale(&ast, &mut scale)?;
    let (aggregation, inner) = match unparen(inner) {
        pp::Expr::Aggregate(agg) => (Some(convert_aggregation(agg)?), agg.expr.as_ref()),
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
    })
}

/// The tokens of `text`, roughly as PromQL splits them: a name or number, a quoted string,
/// or any other character that is not white space.
fn tokens(text: &str) -> usize {
    let word = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | ':');
    let mut count = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        count += 1;
        if matches!(c, '"' | '\'' | '`') {
            while let Some(d) = chars.next() {
                if d == '\\' && c != '`' {
                    chars.next();
                } else if d == c {
                    break;
                }
            }
        } else if word(c) {
            while chars.next_if(|d| word(*d)).is_some() {}
        }
    }
    count
}

/// Strips parentheses, which carry no meaning in this fixed-shape subset.
fn unparen(e: &pp::Expr) -> &pp::Expr {
    match e {
        pp::Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

/// The value of a number literal (possibly negated or parenthesised), if `e` is one.
fn number(e: &pp::Expr) -> Option<f64> {
    match unparen(e) {
        pp::Expr::NumberLiteral(n) => Some(n.val),
        pp::Expr::Unary(u) => number(&u.expr).map(|v| -v),
        _ => None,
    }
}

/// Peels the outer `* n`, `/ n` and unary minus off `e`, pushing them in application order,
/// and returns the vector expression inside.
fn peel_scale<'a>(e: &'a pp::Expr, out: &mut Vec<Scale>) -> Result<&'a pp::Expr, String> {
    match unparen(e) {
        pp::Expr::Unary(u) => {
            let inner = peel_scale(&u.expr, out)?;
            out.push(Scale {
                op: ScaleOp::Mul,
                by: -1.0,
            });
            Ok(inner)
        }
        pp::Expr::Binary(b) => {
            let op = scale_op(b)?;
            match (number(&b.lhs), number(&b.rhs)) {
                (None, Some(by)) => {
                    let inner = peel_scale(&b.lhs, out)?;
                    out.push(Scale { op, by });
                    Ok(inner)
                }
                (Some(by), None) if op == ScaleOp::Mul => {
                    // `n * e` == `e * n`; kept in the canonical `e * n` form.
                    let inner = peel_scale(&b.rhs, out)?;
                    out.push(Scale { op, by });
                    Ok(inner)
                }
                (Some(_), None) => Err(format!(
                    "unsupported: a number divided by a vector (\"{b}\"); only a vector times \
                     or divided by a number is supported"
                )),
                (Some(_), Some(_)) => Err(format!(
                    "unsupported: arithmetic between two numbers (\"{b}\"); write the result \
                     as one number"
                )),
                (None, None) => Err(format!(
                    "unsupported: binary operation between two vectors (\"{b}\"); only a \
                     vector times or divided by a number is supported"
                )),
            }
        }
        other => Ok(other),
    }
}

/// The operator of a binary expression, if it is `*` or `/` without modifiers.
fn scale_op(b: &BinaryExpr) -> Result<ScaleOp, String> {
    let op = match b.op.id() {
        T_MUL => ScaleOp::Mul,
        T_DIV => ScaleOp::Div,
        _ => {
            return Err(format!(
                "unsupported operator \"{}\" in \"{b}\"; only \"*\" and \"/\" by a number are \
                 supported (thresholds go in warning/critical)",
                b.op
            ));
        }
    };
    if let Some(m) = &b.modifier
        && (m.matching.is_some() || m.return_bool)
    {
        return Err(format!(
            "unsupported: vector matching modifiers in \"{b}\" (on, ignoring, group_left, bool)"
        ));
    }
    Ok(op)
}

fn convert_aggregation(agg: &AggregateExpr) -> Result<Aggregation, String> {
    let op =
        aggregation_op(agg.op).ok_or_else(|| format!("unsupported aggregation \"{}\"", agg.op))?;
    let mut by = match &agg.modifier {
        None => Vec::new(),
        Some(LabelModifier::Include(labels)) => labels.labels.clone(),
        Some(LabelModifier::Exclude(_)) => {
            return Err("\"without\" is not supported; use \"by\"".to_string());
        }
    };
    if agg.param.is_some() {
        return Err(format!(
            "unsupported: parameter of aggregation \"{}\"",
            agg.op
        ));
    }
    by.sort();
    by.dedup();
    Ok(Aggregation { op, by })
}

fn aggregation_op(op: TokenType) -> Option<AggOp> {
    match op.id() {
        T_SUM => Some(AggOp::Sum),
        T_AVG => Some(AggOp::Avg),
        T_MIN => Some(AggOp::Min),
        T_MAX => Some(AggOp::Max),
        T_COUNT => Some(AggOp::Count),
        _ => None,
    }
}

/// Converts what sits inside the aggregation (or at the top): a selector, or a range
/// function of a range selector.
fn convert_inner(e: &pp::Expr) -> Result<(Option<RangeFn>, Selector), String> {
    match unparen(e) {
        pp::Expr::VectorSelector(vs) => Ok((None, convert_selector(vs)?)),
        pp::Expr::Call(call) => {
            let name = call.func.name;
            let func = RangeFunc::ALL
                .into_iter()
                .find(|f| f.name() == name)
                .ok_or_else(|| format!("unsupported function \"{name}\""))?;
            let [arg] = call.args.args.as_slice() else {
                return Err(format!("{name}() takes exactly one range selector"));
            };
            let ms = match unparen(arg) {
                pp::Expr::MatrixSelector(ms) => ms,
                pp::Expr::Subquery(_) => return Err("unsupported: subquery".to_string()),
                other => {
                    return Err(format!(
                        "{name}() needs a range selector such as metric[5m], got \"{other}\""
                    ));
                }
            };
            let selector = convert_selector(&ms.vs)?;
            if ms.range.is_zero() || ms.range > MAX_RANGE {
                return Err(format!(
                    "range [{}] of {name}() must be > 0 and at most 1h (the store keeps \
                     bounded windows)",
                    display_duration(ms.range)
                ));
            }
            if matches!(func, RangeFunc::Rate | RangeFunc::Increase)
                && selector.metric.kind != Kind::Counter
            {
                return Err(format!(
                    "{name}() needs a counter; {} is a {}",
                    selector.metric.name,
                    selector.metric.kind.as_str()
                ));
            }
            Ok((
                Some(RangeFn {
                    func,
                    range: ms.range,
                }),
                selector,
            ))
        }
        pp::Expr::MatrixSelector(ms) => Err(format!(
            "unsupported: range selector \"{ms}\" without a function; wrap it in rate(), \
             increase() or *_over_time()"
        )),
        pp::Expr::Subquery(_) => Err("unsupported: subquery".to_string()),
        pp::Expr::Aggregate(agg) => Err(format!(
            "unsupported: aggregation \"{}\" inside another aggregation or function; only one \
             outer aggregation is supported",
            agg.op
        )),
        pp::Expr::Binary(_) | pp::Expr::Unary(_) => Err(
            "unsupported: \"*\" or \"/\" by a number inside an aggregation or function; it must \
             be the outermost operation"
                .to_string(),
        ),
        pp::Expr::NumberLiteral(n) => Err(format!(
            "unsupported: a number alone (\"{}\"); an expression must select a metric",
            n.val
        )),
        pp::Expr::StringLiteral(_) => Err("unsupported: string literal".to_string()),
        pp::Expr::Paren(_) | pp::Expr::Extension(_) => Err("unsupported expression".to_string()),
    }
}

fn convert_selector(vs: &VectorSelector) -> Result<Selector, String> {
    if vs.offset.is_some() {
        return Err("unsupported: offset".to_string());
    }
    if vs.at.is_some() {
        return Err("unsupported: @ modifier".to_string());
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err("unsupported: \"or\" between label matchers".to_string());
    }
    let mut name = vs.name.clone();
    let mut label_matchers: Vec<&Matcher> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == "__name__" {
            match (&m.op, &name) {
                (MatchOp::Equal, None) => name = Some(m.value.clone()),
                (MatchOp::Equal, Some(n)) if *n == m.value => {}
                _ => {
                    return Err(
                        "unsupported: matcher on __name__; name the metric instead".to_string()
                    );
                }
            }
        } else {
            label_matchers.push(m);
        }
    }
    let name = name.ok_or("a selector needs a metric name")?;
    let metric = catalogue::lookup(&name).ok_or_else(|| unknown_metric(&name))?;
    if metric.kind == Kind::Histogram {
        return Err(format!(
            "unsupported: {name} is a histogram; use its derived gauges (e.g. \
             lookout_api_latency_p95_seconds)"
        ));
    }
    let mut matchers = Vec::with_capacity(label_matchers.len());
    for m in label_matchers {
        check_label(metric, &m.name, "matcher")?;
        let (op, regex) = match &m.op {
            MatchOp::Equal => (MatchKind::Equal, None),
            MatchOp::NotEqual => (MatchKind::NotEqual, None),
            // promql-parser compiled these anchored, `^(?:value)$`, as PromQL does.
            MatchOp::Re(re) => (MatchKind::Regex, Some(re.clone())),
            MatchOp::NotRe(re) => (MatchKind::NotRegex, Some(re.clone())),
        };
        matchers.push(LabelMatcher {
            label: m.name.clone(),
            op,
            value: m.value.clone(),
            regex,
        });
    }
    Ok(Selector { metric, matchers })
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

/// `5m`, `90s`, `1500ms`: the largest unit that divides the duration exactly.
fn display_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_string()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A number as PromQL reads it back unchanged.
fn display_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        // Rust prints the shortest text that round-trips, never in exponent form.
        format!("{v}")
    }
}

/// The value of `label` on a series, `""` when it has none (as in PromQL).
fn label_value<'a>(labels: &'a [(&'static str, String)], label: &str) -> &'a str {
    labels
        .iter()
        .find(|(k, _)| *k == label)
        .map_or("", |(_, v)| v.as_str())
}

impl LabelMatcher {
    fn matches(&self, labels: &[(&'static str, String)]) -> bool {
        if self.label == HOST {
            // The store has no host label; the engine evaluates on this host only.
            return true;
        }
        let v = label_value(labels, &self.label);
        match (self.op, &self.regex) {
            (MatchKind::Equal, _) => v == self.value,
            (MatchKind::NotEqual, _) => v != self.value,
            (MatchKind::Regex, Some(re)) => re.is_match(v),
            (MatchKind::NotRegex, Some(re)) => !re.is_match(v),
            // Unreachable by construction: regex kinds always carry their regex.
            (MatchKind::Regex | MatchKind::NotRegex, None) => false,
        }
    }
}

impl Selector {
    fn matches(&self, key: &SeriesKey) -> bool {
        key.name == self.metric.name && self.matchers.iter().all(|m| m.matches(&key.labels))
    }

    /// The first `label="value"` matcher on a label of the store (not `host`), which an
    /// index can answer.
    fn equality(&self) -> Option<&LabelMatcher> {
        self.matchers
            .iter()
            .find(|m| m.op == MatchKind::Equal && m.label != HOST)
    }
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
                    groups
                        .entry(label_value(&key.labels, label))
                        .or_default()
                        .push((key, series));
                }
                groups
            });
        groups.get(value).map_or(&[], Vec::as_slice)
    }
}

impl RangeFn {
    /// The function over the points of `window` in `(now - range, now]`, oldest first.
    fn apply(self, window: &std::collections::VecDeque<(Millis, f64)>, now: Millis) -> Option<f64> {
        let range_ms = Millis::try_from(self.range.as_millis()).unwrap_or(Millis::MAX);
        let start = now.saturating_sub(range_ms);
        let lo = window.partition_point(|(t, _)| *t <= start);
        let hi = window.partition_point(|(t, _)| *t <= now);
        if lo >= hi {
            return None;
        }
        let mut points = window.range(lo..hi).copied();
        let (t_first, first) = points.next()?;
        match self.func {
            RangeFunc::Rate | RangeFunc::Increase => {
                let (mut increase, mut prev, mut t_last, mut n) = (0.0, first, t_first, 1usize);
                for (t, v) in points {
                    // A drop means the counter restarted from 0.
                    increase += if v >= prev { v - prev } else { v };
                    prev = v;
                    t_last = t;
                    n += 1;
                }
                if n < 2 {
                    return None;
                }
                if self.func == RangeFunc::Increase {
                    return Some(increase);
                }
                let seconds = (t_last - t_first) as f64 / 1000.0;
                (seconds > 0.0).then(|| increase / seconds)
            }
            RangeFunc::AvgOverTime => {
                let (mut sum, mut n) = (first, 1.0);
                for (_, v) in points {
                    sum += v;
                    n += 1.0;
                }
                Some(sum / n)
            }
            // As PromQL: NaN only wins when every point is NaN.
            RangeFunc::MinOverTime => {
                Some(points.fold(first, |m, (_, v)| if v < m || m.is_nan() { v } else { m }))
            }
            RangeFunc::MaxOverTime => {
                Some(points.fold(first, |m, (_, v)| if v > m || m.is_nan() { v } else { m }))
            }
            RangeFunc::LastOverTime => Some(points.last().map_or(first, |(_, v)| v)),
        }
    }
}

/// Running state of one aggregation group.
#[derive(Debug, Clone, Copy)]
struct Group {
    sum: f64,
    count: usize,
    min: f64,
    max: f64,
}

impl Group {
    fn new(v: f64) -> Self {
        Group {
            sum: v,
            count: 1,
            min: v,
            max: v,
        }
    }

    fn add(&mut self, v: f64) {
        self.sum += v;
        self.count += 1;
        // As PromQL: NaN only wins when every input is NaN.
        if v < self.min || self.min.is_nan() {
            self.min = v;
        }
        if v > self.max || self.max.is_nan() {
            self.max = v;
        }
    }

    fn value(&self, op: AggOp) -> f64 {
        match op {
            AggOp::Sum => self.sum,
            AggOp::Avg => self.sum / self.count as f64,
            AggOp::Min => self.min,
            AggOp::Max => self.max,
            AggOp::Count => self.count as f64,
        }
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

    /// Calls `f` with each selected series and its value at `now`, before aggregation.
    /// With an `index`, a selector with an equality matcher reads only that label value's
    /// series.
    fn for_each_value<'s>(
        &self,
        store: &'s Store,
        index: Option<&mut SeriesIndex<'s>>,
        now: Millis,
        mut f: impl FnMut(&'s SeriesKey, f64),
    ) {
        let mut visit = |key: &'s SeriesKey, series: &'s Series| {
            if !self.selector.matches(key) {
                return;
            }
            match self.range_fn {
                None if series.present => f(key, series.latest.1),
                None => {}
                // Absent series too: their recent points still count.
                Some(range_fn) => {
                    if let Some(v) = range_fn.apply(&series.window, now) {
                        f(key, v);
                    }
                }
            }
        };
        let name = self.selector.metric.name;
        match (index, self.selector.equality()) {
            (Some(index), Some(m)) => {
                for (key, series) in index.lookup(store, name, &m.label, &m.value) {
                    visit(key, series);
                }
            }
            _ => {
                for (key, series) in store.series_of(name) {
                    visit(key, series);
                }
            }
        }
    }

    /// Calls `f` with each output series' labels (borrowed: no allocation per series) and
    /// value, in the store's order; aggregated output in label order. Labels exclude the
    /// metric name and `host` (the engine adds it); empty label values are left out.
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
        let scale = |v: f64| self.scale.iter().fold(v, |acc, s| s.apply(acc));
        match &self.aggregation {
            None => self.for_each_value(store, index, now, |key, v| {
                f(OutputLabels::Series(&key.labels), scale(v))
            }),
            Some(agg) => {
                // Keyed by the `by` label values in `agg.by` order, borrowed from the store.
                let mut groups: BTreeMap<Vec<&str>, Group> = BTreeMap::new();
                self.for_each_value(store, index, now, |key, v| {
                    let group_key: Vec<&str> =
                        agg.by.iter().map(|l| label_value(&key.labels, l)).collect();
                    groups
                        .entry(group_key)
                        .and_modify(|g| g.add(v))
                        .or_insert_with(|| Group::new(v));
                });
                let mut out: Vec<(LabelSet, f64)> = groups
                    .into_iter()
                    .map(|(values, group)| {
                        let labels = agg
                            .by
                            .iter()
                            .zip(values)
                            .filter(|(_, v)| !v.is_empty())
                            .map(|(k, v)| (k.clone(), v.to_string()))
                            .collect();
                        (labels, group.value(agg.op))
                    })
                    .collect();
                out.sort_by(|a, b| a.0.cmp(&b.0));
                for (labels, v) in &out {
                    f(OutputLabels::Set(labels), scale(*v));
                }
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
        let mut s = String::new();
        s.push_str(self.selector.metric.name);
        if !self.selector.matchers.is_empty() {
            let matchers: Vec<String> = self
                .selector
                .matchers
                .iter()
                .map(|m| {
                    format!(
                        "{}{}\"{}\"",
                        m.label,
                        m.op.as_str(),
                        escape_string(&m.value)
                    )
                })
                .collect();
            let _ = write!(s, "{{{}}}", matchers.join(","));
        }
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
            let op = match scale.op {
                ScaleOp::Mul => "*",
                ScaleOp::Div => "/",
            };
            let _ = write!(s, " {op} {}", display_number(scale.by));
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
        assert_eq!(index.groups.len(), 3);
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
