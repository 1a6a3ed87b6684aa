//! The expression tree of the query language, converted from `promql-parser`'s syntax tree
//! with every check that does not depend on where the data comes from: known functions and
//! aggregations with the right argument types, no `offset`/`@`/subqueries, a metric name on
//! every selector, and a bound on the size of the text.

use std::fmt;
use std::time::Duration;

use promql_parser::label::MatchOp;
use promql_parser::parser::token::{
    T_ADD, T_AVG, T_BOTTOMK, T_COUNT, T_DIV, T_EQLC, T_GTE, T_GTR, T_LSS, T_LTE, T_MAX, T_MIN,
    T_MOD, T_MUL, T_NEQ, T_POW, T_SUB, T_SUM, T_TOPK,
};
use promql_parser::parser::{self as pp, LabelModifier, VectorMatchCardinality, VectorSelector};
use promql_parser::util::escape_string;
use regex::Regex;

use crate::catalogue::{self, Kind, Metric};
use crate::store::Millis;

/// Most tokens an expression may have (see [`tokens`]). Dashboards and rules need a few
/// dozen; the PromQL parser recurses once per nesting level, and a few thousand levels
/// (`- - - ... x`) exhaust a thread's stack, which aborts the process instead of reporting
/// an error.
pub const MAX_TOKENS: usize = 512;

/// Longest `[range]` a range selector may have: a day, the longest history kept.
pub const MAX_RANGE: Duration = Duration::from_secs(24 * 3600);

/// A parsed, checked expression.
#[derive(Debug, Clone)]
pub struct Expr {
    /// The root of the tree.
    pub root: Node,
    /// Number of selectors; each has an `id` below this.
    pub selectors: usize,
}

/// One node of the tree.
#[derive(Debug, Clone)]
pub enum Node {
    /// A number literal.
    Number(f64),
    /// An instant vector selector.
    Vector(Selector),
    /// A range selector; only as the argument of a range function.
    Matrix(Selector, Duration),
    /// A function call.
    Call(Func, Vec<Node>),
    /// An aggregation over a vector.
    Aggregate(Aggregate),
    /// A binary operation.
    Binary(Box<Binary>),
    /// Unary minus.
    Neg(Box<Node>),
}

/// What an expression evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// One number.
    Scalar,
    /// One value per series.
    Vector,
    /// Points per series over a range.
    Matrix,
}

/// `metric{matchers}`.
#[derive(Debug, Clone)]
pub struct Selector {
    /// Position among the expression's selectors, in parse order.
    pub id: usize,
    /// The metric name as written (histogram series with their suffix).
    pub name: String,
    /// The catalogue metric and part it names, if any (an unknown name selects nothing).
    pub target: Option<Target>,
    /// Label matchers, in the order written.
    pub matchers: Vec<LabelMatcher>,
}

/// The catalogue metric a selector's name resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The metric.
    pub metric: &'static Metric,
    /// Which of its series: the value, or a histogram's `_bucket`, `_sum` or `_count`.
    pub part: PartKind,
}

/// The part of a metric a name selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// A gauge or counter.
    Value,
    /// `<histogram>_bucket`.
    Bucket,
    /// `<histogram>_sum`.
    Sum,
    /// `<histogram>_count`.
    Count,
}

impl PartKind {
    /// The suffix of the exported name.
    pub fn suffix(self) -> &'static str {
        match self {
            PartKind::Value => "",
            PartKind::Bucket => "_bucket",
            PartKind::Sum => "_sum",
            PartKind::Count => "_count",
        }
    }
}

/// One label matcher; the regex is compiled, anchored, from `value`.
#[derive(Debug, Clone)]
pub struct LabelMatcher {
    /// Label name.
    pub label: String,
    /// The comparison.
    pub op: MatchKind,
    /// The value or pattern as written.
    pub value: String,
    /// `^(?:value)$` for `=~` and `!~`.
    pub regex: Option<Regex>,
}

impl PartialEq for LabelMatcher {
    fn eq(&self, other: &Self) -> bool {
        // The regex is derived from `value`, so comparing the text is enough.
        self.label == other.label && self.op == other.op && self.value == other.value
    }
}

impl LabelMatcher {
    /// Whether a label value (`""` when the label is absent) satisfies the matcher.
    pub fn matches(&self, v: &str) -> bool {
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

/// The four matcher kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchKind {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Equal => "=",
            MatchKind::NotEqual => "!=",
            MatchKind::Regex => "=~",
            MatchKind::NotRegex => "!~",
        }
    }
}

/// The functions of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// Per-second increase of a counter, extrapolated to the window's edges.
    Rate,
    /// Per-second increase between the last two points.
    Irate,
    /// Increase of a counter over the window, extrapolated.
    Increase,
    /// Difference of a gauge over the window, extrapolated.
    Delta,
    /// Mean of the window's points.
    AvgOverTime,
    /// Smallest point.
    MinOverTime,
    /// Largest point.
    MaxOverTime,
    /// Sum of the points.
    SumOverTime,
    /// Number of points.
    CountOverTime,
    /// The last point.
    LastOverTime,
    /// The φ-quantile from cumulative `le` buckets.
    HistogramQuantile,
    /// Absolute value.
    Abs,
    /// Rounded up.
    Ceil,
    /// Rounded down.
    Floor,
    /// At least a scalar.
    ClampMin,
    /// At most a scalar.
    ClampMax,
    /// The evaluation time in seconds.
    Time,
    /// The value of a one-element vector, NaN otherwise.
    Scalar,
    /// A scalar as a one-element vector without labels.
    Vector,
}

impl Func {
    const ALL: [Func; 19] = [
        Func::Rate,
        Func::Irate,
        Func::Increase,
        Func::Delta,
        Func::AvgOverTime,
        Func::MinOverTime,
        Func::MaxOverTime,
        Func::SumOverTime,
        Func::CountOverTime,
        Func::LastOverTime,
        Func::HistogramQuantile,
        Func::Abs,
        Func::Ceil,
        Func::Floor,
        Func::ClampMin,
        Func::ClampMax,
        Func::Time,
        Func::Scalar,
        Func::Vector,
    ];

    /// The name as written.
    pub fn name(self) -> &'static str {
        match self {
            Func::Rate => "rate",
            Func::Irate => "irate",
            Func::Increase => "increase",
            Func::Delta => "delta",
            Func::AvgOverTime => "avg_over_time",
            Func::MinOverTime => "min_over_time",
            Func::MaxOverTime => "max_over_time",
            Func::SumOverTime => "sum_over_time",
            Func::CountOverTime => "count_over_time",
            Func::LastOverTime => "last_over_time",
            Func::HistogramQuantile => "histogram_quantile",
            Func::Abs => "abs",
            Func::Ceil => "ceil",
            Func::Floor => "floor",
            Func::ClampMin => "clamp_min",
            Func::ClampMax => "clamp_max",
            Func::Time => "time",
            Func::Scalar => "scalar",
            Func::Vector => "vector",
        }
    }

    /// The argument types and the result type.
    fn signature(self) -> (&'static [Type], Type) {
        use Type::{Matrix, Scalar, Vector};
        match self {
            Func::Rate
            | Func::Irate
            | Func::Increase
            | Func::Delta
            | Func::AvgOverTime
            | Func::MinOverTime
            | Func::MaxOverTime
            | Func::SumOverTime
            | Func::CountOverTime
            | Func::LastOverTime => (&[Matrix], Vector),
            Func::HistogramQuantile => (&[Scalar, Vector], Vector),
            Func::Abs | Func::Ceil | Func::Floor => (&[Vector], Vector),
            Func::ClampMin | Func::ClampMax => (&[Vector, Scalar], Vector),
            Func::Time => (&[], Scalar),
            Func::Scalar => (&[Vector], Scalar),
            Func::Vector => (&[Scalar], Vector),
        }
    }

    /// Whether the function takes a range selector.
    pub fn is_range(self) -> bool {
        self.signature().0.first() == Some(&Type::Matrix)
    }
}

/// An aggregation.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// The operator.
    pub op: AggOp,
    /// `by (...)` or `without (...)`; `by ()` when neither is written.
    pub grouping: Grouping,
    /// The `k` of `topk`/`bottomk`.
    pub param: Option<Box<Node>>,
    /// What is aggregated.
    pub expr: Box<Node>,
}

/// The aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `count`
    Count,
    /// `topk`
    Topk,
    /// `bottomk`
    Bottomk,
}

impl AggOp {
    /// The name as written.
    pub fn name(self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Avg => "avg",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Count => "count",
            AggOp::Topk => "topk",
            AggOp::Bottomk => "bottomk",
        }
    }
}

/// The labels an aggregation or a vector match keeps or ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// Only these labels.
    By(Vec<String>),
    /// Every label but these (and the metric name).
    Without(Vec<String>),
}

/// A binary operation.
#[derive(Debug, Clone)]
pub struct Binary {
    /// The operator.
    pub op: BinOp,
    /// Left operand.
    pub lhs: Node,
    /// Right operand.
    pub rhs: Node,
    /// `on (...)` (as [`Grouping::By`]) or `ignoring (...)` (as [`Grouping::Without`]).
    pub matching: Option<Grouping>,
    /// `bool` after a comparison: 0 or 1 instead of filtering.
    pub return_bool: bool,
}

/// The binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `<`
    Lt,
    /// `>=`
    Ge,
    /// `<=`
    Le,
}

impl BinOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Gt => ">",
            BinOp::Lt => "<",
            BinOp::Ge => ">=",
            BinOp::Le => "<=",
        }
    }

    /// Whether the operator compares (and so filters unless `bool`).
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }

    /// Precedence, as PromQL's grammar (higher binds tighter).
    fn precedence(self) -> u8 {
        match self {
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le => 1,
            BinOp::Add | BinOp::Sub => 2,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 3,
            BinOp::Pow => 4,
        }
    }
}

/// Parses and checks an expression; the error says what is wrong or unsupported.
pub fn parse(text: &str) -> Result<Expr, String> {
    let count = tokens(text);
    if count > MAX_TOKENS {
        return Err(format!(
            "too long: {count} tokens (names, numbers, operators, brackets; a quoted string \
             counts as one), at most {MAX_TOKENS}"
        ));
    }
    let ast = pp::parse(text).map_err(|e| format!("invalid PromQL: {e}"))?;
    let mut converter = Converter { selectors: 0 };
    let root = converter.node(&ast)?;
    if root.value_type() == Type::Matrix {
        return Err(format!(
            "unsupported: range selector \"{root}\" without a function; wrap it in rate(), \
             increase() or *_over_time()"
        ));
    }
    Ok(Expr {
        root,
        selectors: converter.selectors,
    })
}

/// The tokens of `text`, roughly as PromQL splits them: a name or number, a quoted string,
/// or any other character that is not white space.
pub fn tokens(text: &str) -> usize {
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

struct Converter {
    selectors: usize,
}

impl Converter {
    fn node(&mut self, e: &pp::Expr) -> Result<Node, String> {
        match e {
            pp::Expr::Paren(p) => self.node(&p.expr),
            pp::Expr::NumberLiteral(n) => Ok(Node::Number(n.val)),
            pp::Expr::StringLiteral(_) => Err("unsupported: string literal".to_string()),
            pp::Expr::Unary(u) => {
                let inner = self.node(&u.expr)?;
                Ok(match inner {
                    Node::Number(v) => Node::Number(-v),
                    other => Node::Neg(Box::new(other)),
                })
            }
            pp::Expr::VectorSelector(vs) => Ok(Node::Vector(self.selector(vs)?)),
            pp::Expr::MatrixSelector(ms) => {
                let sel = self.selector(&ms.vs)?;
                if ms.range.is_zero() || ms.range > MAX_RANGE {
                    return Err(format!(
                        "range [{}] must be > 0 and at most 1d (the longest history kept)",
                        display_duration(ms.range)
                    ));
                }
                Ok(Node::Matrix(sel, ms.range))
            }
            pp::Expr::Subquery(_) => Err("unsupported: subquery".to_string()),
            pp::Expr::Extension(_) => Err("unsupported expression".to_string()),
            pp::Expr::Call(call) => self.call(call),
            pp::Expr::Aggregate(agg) => self.aggregate(agg),
            pp::Expr::Binary(b) => self.binary(b),
        }
    }

    fn call(&mut self, call: &pp::Call) -> Result<Node, String> {
        let name = call.func.name;
        let func = Func::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| format!("unsupported function \"{name}\""))?;
        let (want, _) = func.signature();
        if call.args.args.len() != want.len() {
            return Err(format!(
                "{name}() takes {} argument{}, got {}",
                want.len(),
                if want.len() == 1 { "" } else { "s" },
                call.args.args.len()
            ));
        }
        let mut args = Vec::with_capacity(want.len());
        for (arg, want) in call.args.args.iter().zip(want) {
            let node = self.node(arg)?;
            let got = node.value_type();
            if got != *want {
                return Err(match want {
                    Type::Matrix => format!(
                        "{name}() needs a range selector such as metric[5m], got \"{node}\""
                    ),
                    Type::Scalar => format!("{name}() needs a number, got \"{node}\""),
                    Type::Vector => format!("{name}() needs an instant vector, got \"{node}\""),
                });
            }
            args.push(node);
        }
        Ok(Node::Call(func, args))
    }

    fn aggregate(&mut self, agg: &pp::AggregateExpr) -> Result<Node, String> {
        let op = match agg.op.id() {
            T_SUM => AggOp::Sum,
            T_AVG => AggOp::Avg,
            T_MIN => AggOp::Min,
            T_MAX => AggOp::Max,
            T_COUNT => AggOp::Count,
            T_TOPK => AggOp::Topk,
            T_BOTTOMK => AggOp::Bottomk,
            _ => return Err(format!("unsupported aggregation \"{}\"", agg.op)),
        };
        let grouping = match &agg.modifier {
            None => Grouping::By(Vec::new()),
            Some(LabelModifier::Include(l)) => Grouping::By(sorted(&l.labels)),
            Some(LabelModifier::Exclude(l)) => Grouping::Without(sorted(&l.labels)),
        };
        let param = match (&agg.param, op) {
            (Some(p), AggOp::Topk | AggOp::Bottomk) => {
                let node = self.node(p)?;
                if node.value_type() != Type::Scalar {
                    return Err(format!("{}() needs a number k, got \"{node}\"", op.name()));
                }
                Some(Box::new(node))
            }
            (None, AggOp::Topk | AggOp::Bottomk) => {
                return Err(format!("{}() needs a number k", op.name()));
            }
            (Some(_), _) => {
                return Err(format!(
                    "unsupported: parameter of aggregation \"{}\"",
                    op.name()
                ));
            }
            (None, _) => None,
        };
        let expr = self.node(&agg.expr)?;
        if expr.value_type() != Type::Vector {
            return Err(format!(
                "{}() needs an instant vector, got \"{expr}\"",
                op.name()
            ));
        }
        Ok(Node::Aggregate(Aggregate {
            op,
            grouping,
            param,
            expr: Box::new(expr),
        }))
    }

    fn binary(&mut self, b: &pp::BinaryExpr) -> Result<Node, String> {
        let op = match b.op.id() {
            T_ADD => BinOp::Add,
            T_SUB => BinOp::Sub,
            T_MUL => BinOp::Mul,
            T_DIV => BinOp::Div,
            T_MOD => BinOp::Mod,
            T_POW => BinOp::Pow,
            T_EQLC => BinOp::Eq,
            T_NEQ => BinOp::Ne,
            T_GTR => BinOp::Gt,
            T_LSS => BinOp::Lt,
            T_GTE => BinOp::Ge,
            T_LTE => BinOp::Le,
            _ => return Err(format!("unsupported operator \"{}\" in \"{b}\"", b.op)),
        };
        let (mut matching, mut return_bool) = (None, false);
        if let Some(m) = &b.modifier {
            return_bool = m.return_bool;
            match &m.card {
                VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany => {}
                VectorMatchCardinality::ManyToOne(_) | VectorMatchCardinality::OneToMany(_) => {
                    return Err(format!(
                        "unsupported: group_left/group_right in \"{b}\"; only one-to-one \
                         matching is supported"
                    ));
                }
            }
            matching = match &m.matching {
                None => None,
                Some(LabelModifier::Include(l)) => Some(Grouping::By(sorted(&l.labels))),
                Some(LabelModifier::Exclude(l)) => Some(Grouping::Without(sorted(&l.labels))),
            };
        }
        let lhs = self.node(&b.lhs)?;
        let rhs = self.node(&b.rhs)?;
        for side in [&lhs, &rhs] {
            if side.value_type() == Type::Matrix {
                return Err(format!(
                    "unsupported: range selector \"{side}\" as an operand of \"{}\"",
                    op.as_str()
                ));
            }
        }
        Ok(Node::Binary(Box::new(Binary {
            op,
            lhs,
            rhs,
            matching,
            return_bool,
        })))
    }

    fn selector(&mut self, vs: &VectorSelector) -> Result<Selector, String> {
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
        let mut matchers = Vec::with_capacity(vs.matchers.matchers.len());
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
                continue;
            }
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
        let name = name.ok_or("a selector needs a metric name")?;
        let id = self.selectors;
        self.selectors += 1;
        Ok(Selector {
            id,
            target: resolve(&name),
            name,
            matchers,
        })
    }
}

fn sorted(labels: &[String]) -> Vec<String> {
    let mut v = labels.to_vec();
    v.sort();
    v.dedup();
    v
}

/// The catalogue metric and part an exported series name stands for.
pub fn resolve(name: &str) -> Option<Target> {
    if let Some(metric) = catalogue::lookup(name) {
        // A histogram's own name has no series: only its parts are exported.
        return (metric.kind != Kind::Histogram).then_some(Target {
            metric,
            part: PartKind::Value,
        });
    }
    [PartKind::Bucket, PartKind::Sum, PartKind::Count]
        .into_iter()
        .find_map(|part| {
            let base = name.strip_suffix(part.suffix())?;
            let metric = catalogue::lookup(base)?;
            (metric.kind == Kind::Histogram).then_some(Target { metric, part })
        })
}

impl Node {
    /// What the node evaluates to.
    pub fn value_type(&self) -> Type {
        match self {
            Node::Number(_) => Type::Scalar,
            Node::Vector(_) | Node::Aggregate(_) => Type::Vector,
            Node::Matrix(..) => Type::Matrix,
            Node::Call(f, _) => f.signature().1,
            Node::Neg(inner) => inner.value_type(),
            Node::Binary(b) => {
                if b.lhs.value_type() == Type::Scalar && b.rhs.value_type() == Type::Scalar {
                    Type::Scalar
                } else {
                    Type::Vector
                }
            }
        }
    }

    /// Calls `f` on every selector with the range it reads (zero for instant selectors).
    pub fn for_each_selector<'a>(&'a self, f: &mut impl FnMut(&'a Selector, Duration)) {
        match self {
            Node::Number(_) => {}
            Node::Vector(s) => f(s, Duration::ZERO),
            Node::Matrix(s, r) => f(s, *r),
            Node::Call(_, args) => args.iter().for_each(|a| a.for_each_selector(f)),
            Node::Aggregate(a) => {
                if let Some(p) = &a.param {
                    p.for_each_selector(f);
                }
                a.expr.for_each_selector(f);
            }
            Node::Binary(b) => {
                b.lhs.for_each_selector(f);
                b.rhs.for_each_selector(f);
            }
            Node::Neg(inner) => inner.for_each_selector(f),
        }
    }

    fn precedence(&self) -> u8 {
        match self {
            Node::Binary(b) => b.op.precedence(),
            Node::Neg(_) => 5,
            _ => 6,
        }
    }
}

/// `5m`, `90s`, `1500ms`: the largest unit that divides the duration exactly.
pub fn display_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_string()
    } else if ms.is_multiple_of(86_400_000) {
        format!("{}d", ms / 86_400_000)
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
pub fn display_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        // Rust prints the shortest text that round-trips, never in exponent form.
        format!("{v}")
    }
}

/// Milliseconds of a duration, saturating.
pub fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.matchers.is_empty() {
            f.write_str("{")?;
            for (i, m) in self.matchers.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(
                    f,
                    "{}{}\"{}\"",
                    m.label,
                    m.op.as_str(),
                    escape_string(&m.value)
                )?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (word, labels) = match self {
            Grouping::By(l) => ("by", l),
            Grouping::Without(l) => ("without", l),
        };
        write!(f, "{word} ({})", labels.join(", "))
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Number(v) => f.write_str(&display_number(*v)),
            Node::Vector(s) => write!(f, "{s}"),
            Node::Matrix(s, r) => write!(f, "{s}[{}]", display_duration(*r)),
            Node::Call(func, args) => {
                write!(f, "{}(", func.name())?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Node::Aggregate(a) => {
                f.write_str(a.op.name())?;
                if a.grouping != Grouping::By(Vec::new()) {
                    write!(f, " {} ", a.grouping)?;
                }
                f.write_str("(")?;
                if let Some(p) = &a.param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{})", a.expr)
            }
            Node::Binary(b) => {
                let p = b.op.precedence();
                // Left-associative, except `^`.
                let (lp, rp) = if b.op == BinOp::Pow {
                    (p + 1, p)
                } else {
                    (p, p + 1)
                };
                paren(f, &b.lhs, lp)?;
                write!(f, " {}", b.op.as_str())?;
                if b.return_bool {
                    f.write_str(" bool")?;
                }
                match &b.matching {
                    Some(Grouping::By(l)) => write!(f, " on ({})", l.join(", "))?,
                    Some(Grouping::Without(l)) => write!(f, " ignoring ({})", l.join(", "))?,
                    None => {}
                }
                f.write_str(" ")?;
                paren(f, &b.rhs, rp)
            }
            Node::Neg(inner) => {
                f.write_str("-")?;
                paren(f, inner, 5)
            }
        }
    }
}

/// Writes `n`, in parentheses when it binds less tightly than `min`.
fn paren(f: &mut fmt::Formatter<'_>, n: &Node, min: u8) -> fmt::Result {
    if n.precedence() < min {
        write!(f, "({n})")
    } else {
        write!(f, "{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_back_what_it_parsed() {
        for text in [
            "lookout_load1",
            r#"lookout_load1{host=~"a|b",x!="y"}"#,
            "rate(lookout_cpu_seconds_total[1m])",
            "sum by (host, mode) (rate(lookout_cpu_seconds_total[5m]))",
            "sum without (mode) (lookout_cpu_seconds_total)",
            "topk(3, lookout_load1)",
            "lookout_load1 / on (host) lookout_cpus",
            "lookout_load1 - ignoring (x) lookout_load5",
            "lookout_load1 == bool 1",
            "(lookout_load1 + 1) * 2",
            "2 ^ 3 ^ 2",
            "-lookout_load1",
            "histogram_quantile(0.95, sum by (le) (rate(lookout_api_request_duration_seconds_bucket[1m])))",
        ] {
            let e = parse(text).unwrap_or_else(|err| panic!("{text}: {err}"));
            let printed = e.root.to_string();
            let again = parse(&printed).unwrap_or_else(|err| panic!("{printed}: {err}"));
            assert_eq!(again.root.to_string(), printed, "{text}");
        }
        assert_eq!(
            parse("(lookout_load1 + 1) * 2").unwrap().root.to_string(),
            "(lookout_load1 + 1) * 2"
        );
    }

    #[test]
    fn resolves_histogram_parts_and_leaves_unknown_names_empty() {
        let t = resolve("lookout_api_request_duration_seconds_bucket").unwrap();
        assert_eq!(t.part, PartKind::Bucket);
        assert_eq!(t.metric.name, "lookout_api_request_duration_seconds");
        assert!(resolve("lookout_api_request_duration_seconds").is_none());
        assert!(resolve("lookout_load1_bucket").is_none());
        assert!(resolve("node_load1").is_none());
        assert_eq!(resolve("lookout_load1").unwrap().part, PartKind::Value);
    }

    #[test]
    fn rejects_with_a_reason() {
        for (text, want) in [
            ("rate(lookout_load1)", "expected type matrix"),
            ("foo(lookout_load1)", "unknown function with name 'foo'"),
            (
                "quantile(0.5, lookout_load1)",
                "unsupported aggregation \"quantile\"",
            ),
            (
                "lookout_load1 and lookout_load5",
                "unsupported operator \"and\"",
            ),
            (
                "lookout_load1 / on (host) group_left lookout_cpus",
                "group_left",
            ),
            ("lookout_load1[5m]", "without a function"),
            ("rate(lookout_cpu_seconds_total[2d])", "at most 1d"),
            ("1 > 2", "must use BOOL"),
            ("lookout_load1 offset 5m", "offset"),
            ("rate(lookout_load1", "invalid PromQL"),
            ("topk(lookout_load1, lookout_load1)", "invalid PromQL"),
        ] {
            match parse(text) {
                Ok(e) => panic!("{text}: accepted as {}", e.root),
                Err(err) => assert!(err.contains(want), "{text}: {err}"),
            }
        }
    }
}
