//! Evaluation of an expression tree at one instant, over a [`Source`].
//!
//! The same evaluator serves the rules (over the live store: latest values and windows) and
//! the query API (over the history): the source decides what an instant selector and a
//! range selector read, and whether `rate`/`increase`/`delta` extrapolate to the window's
//! edges as Prometheus does. Everything else (functions, aggregations, vector matching,
//! which labels survive) follows PromQL.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use super::ast::{AggOp, Aggregate, BinOp, Binary, Func, Grouping, Node, Selector, millis};
use super::functions;
use super::value::{Elem, ElemLabels, Value};
use crate::sample::LabelSet;
use crate::store::{Millis, SeriesKey};

/// What receives each series of a range selector and an iterator over its points.
pub type RangeOut<'a, 's> = dyn FnMut(&'s SeriesKey, &mut dyn Iterator<Item = (Millis, f64)>) + 'a;

/// Where selectors read their data.
pub trait Source<'s> {
    /// The `host` label every series carries; `None` when the caller adds it itself (the
    /// rules engine), in which case `host` matchers match every series.
    fn host(&self) -> Option<&'s str>;

    /// Whether `rate`, `increase` and `delta` extrapolate to the edges of the window
    /// (Prometheus) rather than use the exact change between its first and last points.
    fn extrapolate(&self) -> bool;

    /// Calls `out` with each series `sel` selects and its value at `t`.
    fn instant(&mut self, sel: &Selector, t: Millis, out: &mut dyn FnMut(&'s SeriesKey, f64));

    /// Calls `out` with each series `sel` selects and its points with `from < time <= to`,
    /// oldest first (staleness markers left out).
    fn range(&mut self, sel: &Selector, from: Millis, to: Millis, out: &mut RangeOut<'_, 's>);
}

/// Evaluates `node` at `t`. Errors are PromQL's run-time errors (ambiguous vector matches).
pub fn eval<'s, S: Source<'s>>(node: &Node, src: &mut S, t: Millis) -> Result<Value<'s>, String> {
    match node {
        Node::Number(v) => Ok(Value::Scalar(*v)),
        Node::Vector(sel) => {
            let mut out = Vec::new();
            src.instant(sel, t, &mut |key, value| {
                out.push(Elem {
                    labels: ElemLabels::Series { key, name: true },
                    value,
                });
            });
            Ok(Value::Vector(out))
        }
        // Rejected at parse time outside a range function.
        Node::Matrix(sel, _) => Err(format!("range selector {sel} outside a range function")),
        Node::Neg(inner) => Ok(match eval(inner, src, t)? {
            Value::Scalar(v) => Value::Scalar(-v),
            Value::Vector(v) => Value::Vector(
                v.into_iter()
                    .map(|e| Elem {
                        labels: e.labels.without_name(),
                        value: -e.value,
                    })
                    .collect(),
            ),
        }),
        Node::Call(func, args) => call(*func, args, src, t),
        Node::Aggregate(agg) => aggregate(agg, src, t),
        Node::Binary(b) => binary(b, src, t),
    }
}

fn vector<'s, S: Source<'s>>(node: &Node, src: &mut S, t: Millis) -> Result<Vec<Elem<'s>>, String> {
    match eval(node, src, t)? {
        Value::Vector(v) => Ok(v),
        Value::Scalar(_) => Err(format!("expected an instant vector, got a number: {node}")),
    }
}

fn scalar<'s, S: Source<'s>>(node: &Node, src: &mut S, t: Millis) -> Result<f64, String> {
    match eval(node, src, t)? {
        Value::Scalar(v) => Ok(v),
        Value::Vector(_) => Err(format!("expected a number, got an instant vector: {node}")),
    }
}

fn call<'s, S: Source<'s>>(
    func: Func,
    args: &[Node],
    src: &mut S,
    t: Millis,
) -> Result<Value<'s>, String> {
    if func.is_range() {
        let Some(Node::Matrix(sel, range)) = args.first() else {
            return Err(format!("{}() needs a range selector", func.name()));
        };
        let range = millis(*range);
        let extrapolate = src.extrapolate();
        let counter = sel
            .target
            .is_some_and(|tg| tg.metric.kind == crate::catalogue::Kind::Counter);
        let mut out = Vec::new();
        src.range(sel, t.saturating_sub(range), t, &mut |key, points| {
            let window = functions::Window {
                start: t.saturating_sub(range),
                end: t,
                extrapolate,
                counter,
            };
            if let Some(value) = functions::over_range(func, points, window) {
                out.push(Elem {
                    labels: ElemLabels::Series {
                        key,
                        name: func == Func::LastOverTime,
                    },
                    value,
                });
            }
        });
        return Ok(Value::Vector(out));
    }
    let map = |v: Vec<Elem<'s>>, f: &dyn Fn(f64) -> f64| {
        Value::Vector(
            v.into_iter()
                .map(|e| Elem {
                    labels: e.labels.without_name(),
                    value: f(e.value),
                })
                .collect(),
        )
    };
    match (func, args) {
        (Func::HistogramQuantile, [phi, v]) => {
            let phi = scalar(phi, src, t)?;
            let host = src.host();
            let v = vector(v, src, t)?;
            Ok(Value::Vector(functions::histogram_quantile(phi, v, host)))
        }
        (Func::Abs, [v]) => Ok(map(vector(v, src, t)?, &f64::abs)),
        (Func::Ceil, [v]) => Ok(map(vector(v, src, t)?, &f64::ceil)),
        (Func::Floor, [v]) => Ok(map(vector(v, src, t)?, &f64::floor)),
        (Func::ClampMin, [v, s]) => {
            let v = vector(v, src, t)?;
            let min = scalar(s, src, t)?;
            Ok(map(v, &|x| if x < min { min } else { x }))
        }
        (Func::ClampMax, [v, s]) => {
            let v = vector(v, src, t)?;
            let max = scalar(s, src, t)?;
            Ok(map(v, &|x| if x > max { max } else { x }))
        }
        (Func::Time, []) => Ok(Value::Scalar(t as f64 / 1000.0)),
        (Func::Scalar, [v]) => {
            let v = vector(v, src, t)?;
            Ok(Value::Scalar(match v.as_slice() {
                [one] => one.value,
                _ => f64::NAN,
            }))
        }
        (Func::Vector, [s]) => Ok(Value::Vector(vec![Elem {
            labels: ElemLabels::Owned(LabelSet::new()),
            value: scalar(s, src, t)?,
        }])),
        _ => Err(format!("{}(): wrong arguments", func.name())),
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
            AggOp::Avg => self.sum / self.count as f64,
            AggOp::Min => self.min,
            AggOp::Max => self.max,
            AggOp::Count => self.count as f64,
            AggOp::Sum | AggOp::Topk | AggOp::Bottomk => self.sum,
        }
    }
}

/// The grouping key of an element: the `by` label values in order, or the labels left by
/// `without` (name included, so that it sorts and compares as a whole).
fn group_key<'a, 's>(
    labels: &'a ElemLabels<'s>,
    grouping: &Grouping,
    host: Option<&'s str>,
) -> Vec<Cow<'a, str>> {
    match grouping {
        Grouping::By(by) => by.iter().map(|l| labels.get(l, host)).collect(),
        Grouping::Without(without) => labels
            .to_set(host)
            .into_iter()
            .filter(|(k, _)| k != "__name__" && !without.contains(k))
            .flat_map(|(k, v)| [Cow::Owned(k), Cow::Owned(v)])
            .collect(),
    }
}

/// The labels of a group's output from its key.
fn group_labels(key: Vec<Cow<'_, str>>, grouping: &Grouping) -> LabelSet {
    match grouping {
        Grouping::By(by) => by
            .iter()
            .zip(key)
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), v.into_owned()))
            .collect(),
        Grouping::Without(_) => {
            let mut set = LabelSet::new();
            let mut it = key.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                set.insert(k.into_owned(), v.into_owned());
            }
            set
        }
    }
}

fn aggregate<'s, S: Source<'s>>(
    agg: &Aggregate,
    src: &mut S,
    t: Millis,
) -> Result<Value<'s>, String> {
    let k = match &agg.param {
        Some(p) => Some(scalar(p, src, t)?),
        None => None,
    };
    let host = src.host();
    let input = vector(&agg.expr, src, t)?;
    if let Some(k) = k {
        return Ok(Value::Vector(top(agg, k, input, host)));
    }
    let mut groups: BTreeMap<Vec<Cow<'_, str>>, Group> = BTreeMap::new();
    for e in &input {
        let key = group_key(&e.labels, &agg.grouping, host);
        groups
            .entry(key)
            .and_modify(|g| g.add(e.value))
            .or_insert_with(|| Group::new(e.value));
    }
    let mut out: Vec<(LabelSet, f64)> = groups
        .into_iter()
        .map(|(key, g)| (group_labels(key, &agg.grouping), g.value(agg.op)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Value::Vector(
        out.into_iter()
            .map(|(labels, value)| Elem {
                labels: ElemLabels::Owned(labels),
                value,
            })
            .collect(),
    ))
}

/// `topk`/`bottomk`: the `k` largest (smallest) elements of each group, labels unchanged,
/// largest (smallest) first; NaN ranks last.
fn top<'s>(agg: &Aggregate, k: f64, input: Vec<Elem<'s>>, host: Option<&'s str>) -> Vec<Elem<'s>> {
    if k.is_nan() || k < 1.0 {
        return Vec::new();
    }
    let k = if k > 1e9 { usize::MAX } else { k as usize };
    let mut groups: BTreeMap<Vec<String>, Vec<Elem<'s>>> = BTreeMap::new();
    for e in input {
        let key = group_key(&e.labels, &agg.grouping, host)
            .into_iter()
            .map(Cow::into_owned)
            .collect();
        groups.entry(key).or_default().push(e);
    }
    let bottom = agg.op == AggOp::Bottomk;
    let mut out = Vec::new();
    for (_, mut members) in groups {
        members.sort_by(|a, b| {
            let (x, y) = (a.value, b.value);
            match (x.is_nan(), y.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if bottom => x.total_cmp(&y),
                _ => y.total_cmp(&x),
            }
        });
        members.truncate(k);
        out.extend(members);
    }
    out
}

/// `a op b` on two numbers; comparisons give 1 or 0.
fn apply(op: BinOp, a: f64, b: f64) -> f64 {
    let truth = |c: bool| if c { 1.0 } else { 0.0 };
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Mod => a % b,
        BinOp::Pow => a.powf(b),
        BinOp::Eq => truth(a == b),
        BinOp::Ne => truth(a != b),
        BinOp::Gt => truth(a > b),
        BinOp::Lt => truth(a < b),
        BinOp::Ge => truth(a >= b),
        BinOp::Le => truth(a <= b),
    }
}

fn binary<'s, S: Source<'s>>(b: &Binary, src: &mut S, t: Millis) -> Result<Value<'s>, String> {
    let lhs = eval(&b.lhs, src, t)?;
    let rhs = eval(&b.rhs, src, t)?;
    let filter = b.op.is_comparison() && !b.return_bool;
    match (lhs, rhs) {
        (Value::Scalar(x), Value::Scalar(y)) => Ok(Value::Scalar(apply(b.op, x, y))),
        (Value::Vector(v), Value::Scalar(s)) => {
            Ok(Value::Vector(with_scalar(b.op, filter, v, |x| (x, s))))
        }
        (Value::Scalar(s), Value::Vector(v)) => {
            Ok(Value::Vector(with_scalar(b.op, filter, v, |x| (s, x))))
        }
        (Value::Vector(l), Value::Vector(r)) => {
            vectors(b, filter, l, r, src.host()).map(Value::Vector)
        }
    }
}

/// A vector against a number: `operands` orders the element's value and the number.
fn with_scalar<'s>(
    op: BinOp,
    filter: bool,
    v: Vec<Elem<'s>>,
    operands: impl Fn(f64) -> (f64, f64),
) -> Vec<Elem<'s>> {
    v.into_iter()
        .filter_map(|e| {
            let (x, y) = operands(e.value);
            let r = apply(op, x, y);
            if filter {
                // A filter keeps the vector's own value.
                (r == 1.0).then_some(e)
            } else {
                Some(Elem {
                    labels: e.labels.without_name(),
                    value: r,
                })
            }
        })
        .collect()
}

/// The matching signature of an element: the labels `on` keeps, or all but those
/// `ignoring` names (and the metric name).
fn signature(labels: &ElemLabels<'_>, matching: Option<&Grouping>, host: Option<&str>) -> String {
    let set = labels.to_set(host);
    let mut sig = String::new();
    for (k, v) in &set {
        let keep = match matching {
            Some(Grouping::By(on)) => on.contains(k),
            Some(Grouping::Without(ignoring)) => k != "__name__" && !ignoring.contains(k),
            None => k != "__name__",
        };
        if keep {
            sig.push_str(k);
            sig.push('\u{ff}');
            sig.push_str(v);
            sig.push('\u{fe}');
        }
    }
    sig
}

fn vectors<'s>(
    b: &Binary,
    filter: bool,
    lhs: Vec<Elem<'s>>,
    rhs: Vec<Elem<'s>>,
    host: Option<&'s str>,
) -> Result<Vec<Elem<'s>>, String> {
    let matching = b.matching.as_ref();
    let mut right: HashMap<String, f64> = HashMap::with_capacity(rhs.len());
    for e in &rhs {
        let sig = signature(&e.labels, matching, host);
        if right.insert(sig, e.value).is_some() {
            return Err(format!(
                "found duplicate series for the match group {} on the right hand-side of \
                 \"{}\"; many-to-many matching is not supported",
                show(&e.labels.to_set(host)),
                b.op.as_str()
            ));
        }
    }
    let mut seen: HashMap<String, ()> = HashMap::with_capacity(lhs.len());
    let mut out = Vec::new();
    for e in lhs {
        let sig = signature(&e.labels, matching, host);
        let Some(&y) = right.get(&sig) else { continue };
        if seen.insert(sig, ()).is_some() {
            return Err(format!(
                "multiple matches for labels {} on the left hand-side of \"{}\"; \
                 many-to-one matching needs group_left, which is not supported",
                show(&e.labels.to_set(host)),
                b.op.as_str()
            ));
        }
        let r = apply(b.op, e.value, y);
        if filter {
            if r == 1.0 {
                out.push(e);
            }
            continue;
        }
        let mut set = e.labels.to_set(host);
        set.remove("__name__");
        match matching {
            Some(Grouping::By(on)) => set.retain(|k, _| on.contains(k)),
            Some(Grouping::Without(ignoring)) => set.retain(|k, _| !ignoring.contains(k)),
            None => {}
        }
        out.push(Elem {
            labels: ElemLabels::Owned(set),
            value: r,
        });
    }
    Ok(out)
}

/// `{a="b", c="d"}`.
fn show(set: &LabelSet) -> String {
    let pairs: Vec<String> = set.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", pairs.join(", "))
}
