//! The scalability score: a pure function of the configured formula,
//! the two load inputs and the worst firing severity.
//!
//! ```text
//! score = 100 - min(max_s, pts_s * max(0, sessions - free_s))
//!             - health penalty (warning / critical points)
//!             - min(max_b, pts_b * max(0, background_tasks - free_b))
//! clamped to 0..100
//! ```
//!
//! The caller evaluates the two expressions over the store and passes their values; an
//! absent value (no watched port, no Redis) costs nothing and says so in its explanation.
//! Every component carries a sentence for `GET /api/v1/scalability` and `lookout snapshot`.

use serde::Serialize;

use crate::config::units::number_text;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::check::Number;
use crate::config::{Checker, Section, Text};
use crate::rules::expr;

/// The worst severity among firing alerts (`lookout_health_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Nothing firing.
    Ok,
    /// The worst firing alert is a warning.
    Warning,
    /// A critical alert is firing.
    Critical,
}

impl Health {
    /// The value of `lookout_health_status`: 0 ok, 1 warning, 2 critical.
    pub fn as_number(self) -> f64 {
        match self {
            Health::Ok => 0.0,
            Health::Warning => 1.0,
            Health::Critical => 2.0,
        }
    }
}

/// One term of the score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Component {
    /// `sessions`, `health` or `background_tasks` (the `component` label of
    /// `lookout_scalability_penalty`).
    pub name: &'static str,
    /// The input: the expression's value, or the health status number; `None` when the
    /// expression returned nothing.
    pub input: Option<f64>,
    /// Points this term takes off (`>= 0`).
    pub penalty: f64,
    /// Most points this term can take off.
    pub max_penalty: f64,
    /// The computation in one sentence.
    pub explanation: String,
}

/// How healthy the host's capacity looks, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Grade {
    /// At least `grades.excellent`.
    Excellent,
    /// At least `grades.good`.
    Good,
    /// At least `grades.moderate`.
    Moderate,
    /// Below `grades.moderate`.
    Poor,
}

impl Grade {
    /// `excellent`, `good`, `moderate` or `poor`, as it is serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::Excellent => "excellent",
            Grade::Good => "good",
            Grade::Moderate => "moderate",
            Grade::Poor => "poor",
        }
    }

    /// The grade of `score` under `grades`.
    pub fn of(score: f64, grades: &Grades) -> Grade {
        if score >= grades.excellent {
            Grade::Excellent
        } else if score >= grades.good {
            Grade::Good
        } else if score >= grades.moderate {
            Grade::Moderate
        } else {
            Grade::Poor
        }
    }
}

/// The score with its grade and the terms it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// 0..=100.
    pub score: f64,
    /// Its grade.
    pub grade: Grade,
    /// `sessions`, `health`, `background_tasks`, in this order.
    pub components: Vec<Component>,
}

/// Computes the score from the two load inputs and the worst firing severity.
pub fn compute(
    cfg: &ScalabilityConfig,
    sessions: Option<f64>,
    background_tasks: Option<f64>,
    health: Health,
) -> Score {
    let components = vec![
        load("sessions", ("session", "sessions"), &cfg.sessions, sessions),
        health_component(cfg, health),
        load(
            "background_tasks",
            ("background task", "background tasks"),
            &cfg.background_tasks,
            background_tasks,
        ),
    ];
    let penalties: f64 = components.iter().map(|c| c.penalty).sum();
    let score = (100.0 - penalties).clamp(0.0, 100.0);
    Score {
        score,
        grade: Grade::of(score, &cfg.grades),
        components,
    }
}

/// A load term: `min(max_penalty, points_per_unit * max(0, input - free))`.
fn load(
    name: &'static str,
    (one, many): (&str, &str),
    term: &LoadTerm,
    input: Option<f64>,
) -> Component {
    let max = term.max_penalty;
    let component = |penalty: f64, explanation: String| Component {
        name,
        input,
        penalty,
        max_penalty: max,
        explanation,
    };
    let value = match input {
        Some(v) if !v.is_nan() => v,
        Some(_) => {
            return component(
                0.0,
                format!("no data: {} returned NaN: no penalty", term.expr_text),
            );
        }
        None => {
            return component(
                0.0,
                format!("no data: {} returned nothing: no penalty", term.expr_text),
            );
        }
    };
    let noun = if value == 1.0 { one } else { many };
    let (value_text, free_text) = (number_text(value), number_text(term.free));
    let excess = (value - term.free).max(0.0);
    if excess <= 0.0 {
        return component(
            0.0,
            format!("{value_text} {noun}, not above the free {free_text}: no penalty"),
        );
    }
    let points = term.points_per_unit;
    let each = if points == 1.0 { "point" } else { "points" };
    // `0 * inf` is NaN: no points per unit means no penalty, however large the input.
    let uncapped = if points == 0.0 { 0.0 } else { points * excess };
    let penalty = uncapped.min(max);
    let cap = if uncapped > max {
        format!("{}, capped at {}", number_text(uncapped), number_text(max))
    } else {
        format!("max {}", number_text(max))
    };
    component(
        penalty,
        format!(
            "{value_text} {noun}, {} above the free {free_text}, {} {each} each: -{} ({cap})",
            number_text(excess),
            number_text(points),
            number_text(penalty),
        ),
    )
}

/// The health term: fixed points by the worst firing severity.
fn health_component(cfg: &ScalabilityConfig, health: Health) -> Component {
    let (penalty, explanation) = match health {
        Health::Ok => (0.0, "no alert is firing: no penalty".to_string()),
        Health::Warning => (
            cfg.health.warning,
            format!(
                "the worst firing alert is a warning: -{}",
                number_text(cfg.health.warning)
            ),
        ),
        Health::Critical => (
            cfg.health.critical,
            format!(
                "a critical alert is firing: -{}",
                number_text(cfg.health.critical)
            ),
        ),
    };
    Component {
        name: "health",
        input: Some(health.as_number()),
        penalty,
        max_penalty: cfg.health.critical.max(cfg.health.warning),
        explanation,
    }
}

// The `scalability:` section: the score formula's numbers, checked.

/// The defaults of one scalability load term.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadTermDefaults {
    /// Expression text.
    pub expr: &'static str,
    /// Units before any penalty.
    pub free: f64,
    /// Points off per unit above `free`.
    pub points_per_unit: f64,
    /// Most points the term takes off.
    pub max_penalty: f64,
}
/// Default `scalability.sessions`: established connections on the watched ports.
pub const DEFAULT_SESSIONS: LoadTermDefaults = LoadTermDefaults {
    expr: r#"sum(lookout_tcp_port_connections{state="established"})"#,
    free: 20.0,
    points_per_unit: 2.0,
    max_penalty: 50.0,
};
/// Default `scalability.background_tasks`: the length of every watched Redis queue.
pub const DEFAULT_BACKGROUND_TASKS: LoadTermDefaults = LoadTermDefaults {
    expr: "sum(lookout_redis_queue_length)",
    free: 10.0,
    points_per_unit: 1.0,
    max_penalty: 20.0,
};
/// Default `scalability.health`.
pub const DEFAULT_HEALTH: HealthTerm = HealthTerm {
    warning: 15.0,
    critical: 30.0,
};
/// Default `scalability.grades`.
pub const DEFAULT_GRADES: Grades = Grades {
    excellent: 80.0,
    good: 60.0,
    moderate: 40.0,
};

/// `scalability:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScalability {
    /// The concurrent-sessions term; absent: its defaults (established connections on the
    /// watched ports, 20 free, 2 points each, at most 50).
    pub sessions: Option<RawLoadTerm>,
    /// The background-backlog term; absent: its defaults (Redis queue lengths, 10 free,
    /// 1 point each, at most 20).
    pub background_tasks: Option<RawLoadTerm>,
    /// The alert-health term; absent: 15 points off for a warning, 30 for a critical.
    pub health: Option<RawHealth>,
    /// Lowest score of each grade; absent: 80 / 60 / 40.
    pub grades: Option<RawGrades>,
}

/// One load term of the score: `min(max_penalty, points_per_unit * max(0, value - free))`.
/// Each absent key takes the default of the term it belongs to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoadTerm {
    /// Expression over the store whose value is the load; absent: the term's default
    /// expression.
    pub expr: Option<Text>,
    /// Units before any penalty; absent: the term's default (20 sessions, 10 tasks).
    pub free: Option<Spanned<f64>>,
    /// Points off per unit above `free`; absent: the term's default (2, 1).
    pub points_per_unit: Option<Spanned<f64>>,
    /// Most points the term takes off; absent: the term's default (50, 20).
    pub max_penalty: Option<Spanned<f64>>,
}

/// `scalability.health`: points off by the worst firing alert's severity.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// Points off while the worst firing alert is a warning; absent: 15.
    pub warning: Option<Spanned<f64>>,
    /// Points off while any critical alert fires; absent: 30.
    pub critical: Option<Spanned<f64>>,
}

/// `scalability.grades`: the lowest score of each grade; below `moderate` is "poor".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrades {
    /// Lowest "excellent" score; absent: 80.
    pub excellent: Option<Spanned<f64>>,
    /// Lowest "good" score; absent: 60.
    pub good: Option<Spanned<f64>>,
    /// Lowest "moderate" score; absent: 40.
    pub moderate: Option<Spanned<f64>>,
}

/// `scalability:` section: every number of the score formula.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalabilityConfig {
    /// Concurrent sessions.
    pub sessions: LoadTerm,
    /// Backlog of background jobs.
    pub background_tasks: LoadTerm,
    /// Points off by the worst firing severity.
    pub health: HealthTerm,
    /// Lowest score of each grade.
    pub grades: Grades,
}

/// A load term: `min(max_penalty, points_per_unit * max(0, value - free))`, where `value`
/// is what `expr` yields over the store. Every number is finite and `>= 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadTerm {
    /// The parsed expression.
    pub expr: crate::rules::expr::Expr,
    /// The expression as written, for explanations.
    pub expr_text: String,
    /// Units before any penalty.
    pub free: f64,
    /// Points off per unit above `free`.
    pub points_per_unit: f64,
    /// Most points this term takes off.
    pub max_penalty: f64,
}

/// Points off while the worst firing alert has a severity; `warning <= critical`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthTerm {
    /// Worst firing alert is a warning.
    pub warning: f64,
    /// A critical alert fires.
    pub critical: f64,
}

/// Lowest score of each grade, within 0..=100 and `excellent > good > moderate`;
/// below `moderate` is poor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grades {
    /// Lowest excellent score.
    pub excellent: f64,
    /// Lowest good score.
    pub good: f64,
    /// Lowest moderate score.
    pub moderate: f64,
}

/// The `scalability:` section. Its value is `None` only when a load term's expression,
/// given or built-in, does not parse (a problem says so).
#[derive(Debug)]
pub struct ScalabilitySection;

impl Section for ScalabilitySection {
    type Raw = RawScalability;
    type Value = Option<ScalabilityConfig>;

    const DEFAULTS: &'static str = DEFAULTS_YAML;

    fn check(raw: &RawScalability, path: &str, c: &mut Checker<'_>) -> Option<ScalabilityConfig> {
        check_scalability(c, path, raw)
    }
}

fn check_scalability(
    c: &mut Checker<'_>,
    path: &str,
    raw: &RawScalability,
) -> Option<ScalabilityConfig> {
    let sessions = load_term(
        c,
        &format!("{path}.sessions"),
        raw.sessions.as_ref().unwrap_or(&RawLoadTerm::default()),
        &DEFAULT_SESSIONS,
    );
    let background_tasks = load_term(
        c,
        &format!("{path}.background_tasks"),
        raw.background_tasks
            .as_ref()
            .unwrap_or(&RawLoadTerm::default()),
        &DEFAULT_BACKGROUND_TASKS,
    );
    let health = health(
        c,
        path,
        raw.health.as_ref().unwrap_or(&RawHealth::default()),
    );
    let grades = grades(
        c,
        path,
        raw.grades.as_ref().unwrap_or(&RawGrades::default()),
    );
    Some(ScalabilityConfig {
        sessions: sessions?,
        background_tasks: background_tasks?,
        health,
        grades,
    })
}

/// A load term; `None` only when neither the given nor the default expression parses.
fn load_term(
    c: &mut Checker<'_>,
    section: &str,
    raw: &RawLoadTerm,
    defaults: &LoadTermDefaults,
) -> Option<LoadTerm> {
    let free = c.number(&format!("{section}.free"), raw.free.as_ref(), defaults.free);
    let points_per_unit = c.number(
        &format!("{section}.points_per_unit"),
        raw.points_per_unit.as_ref(),
        defaults.points_per_unit,
    );
    let max_penalty = c.number(
        &format!("{section}.max_penalty"),
        raw.max_penalty.as_ref(),
        defaults.max_penalty,
    );
    let path = format!("{section}.expr");
    let given = match &raw.expr {
        None => None,
        Some(text) if text.value.trim().is_empty() => {
            c.report(
                &path,
                Some(&text.referenced),
                "must not be empty (remove the key for the default)",
            );
            None
        }
        Some(text) => match expr::parse(&text.value) {
            Ok(parsed) => Some((parsed, text.value.clone())),
            Err(why) => {
                c.report(&path, Some(&text.referenced), why);
                None
            }
        },
    };
    let (expr, expr_text) = match given {
        Some(pair) => pair,
        None => match expr::parse(defaults.expr) {
            Ok(parsed) => (parsed, defaults.expr.to_string()),
            Err(why) => {
                c.report(
                    &path,
                    None,
                    format!(
                        "the built-in expression {:?} does not parse: {why}",
                        defaults.expr
                    ),
                );
                return None;
            }
        },
    };
    Some(LoadTerm {
        expr,
        expr_text,
        free: free.value,
        points_per_unit: points_per_unit.value,
        max_penalty: max_penalty.value,
    })
}

fn health(c: &mut Checker<'_>, path: &str, raw: &RawHealth) -> HealthTerm {
    let warning_path = &format!("{path}.health.warning");
    let critical_path = &format!("{path}.health.critical");
    let warning = c.number(warning_path, raw.warning.as_ref(), DEFAULT_HEALTH.warning);
    let critical = c.number(
        critical_path,
        raw.critical.as_ref(),
        DEFAULT_HEALTH.critical,
    );
    let comparable =
        warning.valid && critical.valid && !c.removed(warning_path) && !c.removed(critical_path);
    if comparable && warning.value > critical.value {
        const WHY: &str = "a critical alert must cost at least as many points as a warning";
        let (w, cr) = (number_text(warning.value), number_text(critical.value));
        // The problem goes to `critical` when it was written in the file.
        if critical.at.is_some() {
            c.report(
                critical_path,
                critical.at,
                format!("{cr} is less than {warning_path} ({w}): {WHY}"),
            );
        } else {
            c.report(
                warning_path,
                warning.at,
                format!("{w} is more than {critical_path} ({cr}): {WHY}"),
            );
        }
    }
    HealthTerm {
        warning: warning.value,
        critical: critical.value,
    }
}

fn grades(c: &mut Checker<'_>, path: &str, raw: &RawGrades) -> Grades {
    let excellent_path = &format!("{path}.grades.excellent");
    let good_path = &format!("{path}.grades.good");
    let moderate_path = &format!("{path}.grades.moderate");
    let excellent = grade(
        c,
        excellent_path,
        raw.excellent.as_ref(),
        DEFAULT_GRADES.excellent,
    );
    let good = grade(c, good_path, raw.good.as_ref(), DEFAULT_GRADES.good);
    let moderate = grade(
        c,
        moderate_path,
        raw.moderate.as_ref(),
        DEFAULT_GRADES.moderate,
    );
    decreasing(c, (excellent_path, &excellent), (good_path, &good));
    decreasing(c, (good_path, &good), (moderate_path, &moderate));
    Grades {
        excellent: excellent.value,
        good: good.value,
        moderate: moderate.value,
    }
}

/// A grade threshold: a number within 0..=100.
fn grade<'r>(
    c: &mut Checker<'_>,
    path: &str,
    given: Option<&'r Spanned<f64>>,
    default: f64,
) -> Number<'r> {
    let mut number = c.number(path, given, default);
    if number.valid && number.value > 100.0 {
        c.report(
            path,
            number.at,
            format!(
                "{} is out of range: must be between 0 and 100",
                number_text(number.value)
            ),
        );
        number = Number {
            value: default,
            valid: false,
            ..number
        };
    }
    number
}

/// Reports when the higher grade's threshold is not above the lower one's. The problem
/// goes to the lower grade when it was written in the file, else to the higher one.
fn decreasing(c: &mut Checker<'_>, high: (&str, &Number<'_>), low: (&str, &Number<'_>)) {
    let ((high_path, high), (low_path, low)) = (high, low);
    let comparable = high.valid && low.valid && !c.removed(high_path) && !c.removed(low_path);
    if !comparable || high.value > low.value {
        return;
    }
    let (h, l) = (number_text(high.value), number_text(low.value));
    const WHY: &str = "grades must go down from excellent to good to moderate";
    if low.at.is_some() {
        c.report(
            low_path,
            low.at,
            format!("{l} must be below {high_path} ({h}): {WHY}"),
        );
    } else {
        c.report(
            high_path,
            high.at,
            format!("{h} must be above {low_path} ({l}): {WHY}"),
        );
    }
}

/// `lookout config default`'s text for this section.
const DEFAULTS_YAML: &str = r#"# The scalability score: 100 minus the points each term takes off, clamped to 0..100.
# Every number is at least 0.
scalability:
  # Concurrent sessions: established connections on the ports in collect.tcp.ports.
  # Points off: min(max_penalty, points_per_unit * max(0, value - free)).
  # An expression returning nothing (no watched port) takes nothing off.
  sessions:
    expr: 'sum(lookout_tcp_port_connections{state="established"})'
    free: 20
    points_per_unit: 2
    max_penalty: 50
  # Backlog of background jobs: the length of every watched Redis queue. Same formula.
  background_tasks:
    expr: 'sum(lookout_redis_queue_length)'
    free: 10
    points_per_unit: 1
    max_penalty: 20
  # Points off by the worst firing alert (warning at most critical).
  health:
    warning: 15
    critical: 30
  # Lowest score of each grade, from 0 to 100, going down; below moderate is "poor".
  grades:
    excellent: 80
    good: 60
    moderate: 40
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Config;

    fn cfg() -> ScalabilityConfig {
        Config::builtin().scalability
    }

    #[test]
    fn score_table() {
        use Grade::*;
        use Health::{Critical, Ok as Fine, Warning};
        // (sessions, background tasks, health, expected score, expected grade)
        type Row = (Option<f64>, Option<f64>, Health, f64, Grade);
        let cases: &[Row] = &[
            // idle host, nothing firing
            (Some(0.0), Some(0.0), Fine, 100.0, Excellent),
            // exactly the free sessions: no penalty
            (Some(20.0), Some(0.0), Fine, 100.0, Excellent),
            // sessions alone: 42 -> 22 above free, 2 points each
            (Some(42.0), Some(0.0), Fine, 56.0, Moderate),
            // sessions capped at 50
            (Some(1000.0), Some(0.0), Fine, 50.0, Moderate),
            // sessions, infinite input: still the cap
            (Some(f64::INFINITY), Some(0.0), Fine, 50.0, Moderate),
            // health alone: warning
            (Some(0.0), Some(0.0), Warning, 85.0, Excellent),
            // health alone: critical
            (Some(0.0), Some(0.0), Critical, 70.0, Good),
            // background tasks alone: 15 -> 5 above free, 1 point each
            (Some(0.0), Some(15.0), Fine, 95.0, Excellent),
            // background tasks capped at 20
            (Some(0.0), Some(500.0), Fine, 80.0, Excellent),
            // every term at its cap: 100 - 50 - 30 - 20 = 0
            (Some(1000.0), Some(1000.0), Critical, 0.0, Poor),
            // both inputs absent: no penalty from either
            (None, None, Fine, 100.0, Excellent),
            // absent sessions, a critical alert and a backlog
            (None, Some(30.0), Critical, 50.0, Moderate),
            // absent backlog, busy sessions
            (Some(45.0), None, Warning, 35.0, Poor),
            // NaN input counts as no data
            (Some(f64::NAN), Some(0.0), Fine, 100.0, Excellent),
            // negative input (a bad expression) is simply below the free units
            (Some(-5.0), Some(-5.0), Fine, 100.0, Excellent),
            // fractional sessions: 20.5 -> 0.5 above, -1
            (Some(20.5), Some(0.0), Fine, 99.0, Excellent),
            // fractional tasks: 10.25 -> -0.25
            (Some(0.0), Some(10.25), Fine, 99.75, Excellent),
            // grade boundary: 80 is excellent (30 sessions: -20)
            (Some(30.0), Some(0.0), Fine, 80.0, Excellent),
            // grade boundary: 79 is good (30 sessions, 11 tasks: -21)
            (Some(30.0), Some(11.0), Fine, 79.0, Good),
            // grade boundary: 60 is good (40 sessions: -40)
            (Some(40.0), Some(0.0), Fine, 60.0, Good),
            // grade boundary: 59 is moderate (40 sessions, 11 tasks)
            (Some(40.0), Some(11.0), Fine, 59.0, Moderate),
            // grade boundary: 40 is moderate (critical -30, 35 sessions -30)
            (Some(35.0), Some(0.0), Critical, 40.0, Moderate),
            // grade boundary: 39 is poor (same, plus one task over)
            (Some(35.0), Some(11.0), Critical, 39.0, Poor),
            // just below a boundary with fractions: 79.5 is good
            (Some(30.25), Some(0.0), Fine, 79.5, Good),
        ];
        let cfg = cfg();
        for (i, (sessions, tasks, health, score, grade)) in cases.iter().enumerate() {
            let got = compute(&cfg, *sessions, *tasks, *health);
            assert!(
                (got.score - score).abs() < 1e-9,
                "row {i}: score {} != {score}: {got:?}",
                got.score
            );
            assert_eq!(got.grade, *grade, "row {i}: {got:?}");
            let names: Vec<&str> = got.components.iter().map(|c| c.name).collect();
            assert_eq!(names, ["sessions", "health", "background_tasks"], "row {i}");
            for c in &got.components {
                assert!(
                    c.penalty >= 0.0 && c.penalty <= c.max_penalty,
                    "row {i}: {c:?}"
                );
            }
        }
    }

    #[test]
    fn clamped_at_zero() {
        let mut cfg = cfg();
        cfg.sessions.max_penalty = 80.0;
        cfg.health.critical = 60.0;
        // 80 + 60 + 20 = 160 points off: the score stops at 0.
        let got = compute(&cfg, Some(1e6), Some(1e6), Health::Critical);
        assert_eq!(got.score, 0.0);
        assert_eq!(got.grade, Grade::Poor);
        let penalties: Vec<f64> = got.components.iter().map(|c| c.penalty).collect();
        assert_eq!(penalties, [80.0, 60.0, 20.0]);
    }

    #[test]
    fn zero_points_per_unit_never_penalizes() {
        let mut cfg = cfg();
        cfg.sessions.points_per_unit = 0.0;
        let got = compute(&cfg, Some(f64::INFINITY), None, Health::Ok);
        assert_eq!(got.score, 100.0);
    }

    #[test]
    fn explanations() {
        let cfg = cfg();
        let explain = |sessions, tasks, health| {
            compute(&cfg, sessions, tasks, health)
                .components
                .into_iter()
                .map(|c| c.explanation)
                .collect::<Vec<_>>()
        };
        // (sessions, background tasks, health, the three explanations in order)
        type Row = (Option<f64>, Option<f64>, Health, [&'static str; 3]);
        let cases: &[Row] = &[
            // the example of the design: penalty below the cap
            (
                Some(42.0),
                Some(3.0),
                Health::Ok,
                [
                    "42 sessions, 22 above the free 20, 2 points each: -44 (max 50)",
                    "no alert is firing: no penalty",
                    "3 background tasks, not above the free 10: no penalty",
                ],
            ),
            // caps reached, singular unit, warning
            (
                Some(100.0),
                Some(31.0),
                Health::Warning,
                [
                    "100 sessions, 80 above the free 20, 2 points each: -50 (160, capped at 50)",
                    "the worst firing alert is a warning: -15",
                    "31 background tasks, 21 above the free 10, 1 point each: -20 (21, capped at 20)",
                ],
            ),
            // absent inputs, critical, one session
            (
                Some(1.0),
                None,
                Health::Critical,
                [
                    "1 session, not above the free 20: no penalty",
                    "a critical alert is firing: -30",
                    "no data: sum(lookout_redis_queue_length) returned nothing: no penalty",
                ],
            ),
            // fractions print with at most two decimals
            (
                Some(20.333),
                None,
                Health::Ok,
                [
                    "20.33 sessions, 0.33 above the free 20, 2 points each: -0.67 (max 50)",
                    "no alert is firing: no penalty",
                    "no data: sum(lookout_redis_queue_length) returned nothing: no penalty",
                ],
            ),
        ];
        for (sessions, tasks, health, expected) in cases {
            assert_eq!(explain(*sessions, *tasks, *health), expected);
        }
        let none = explain(None, None, Health::Ok);
        assert_eq!(
            none[0],
            r#"no data: sum(lookout_tcp_port_connections{state="established"}) returned nothing: no penalty"#
        );
    }

    #[test]
    fn health_numbers_and_order() {
        assert_eq!(Health::Ok.as_number(), 0.0);
        assert_eq!(Health::Warning.as_number(), 1.0);
        assert_eq!(Health::Critical.as_number(), 2.0);
        assert!(Health::Critical > Health::Warning && Health::Warning > Health::Ok);
    }

    #[test]
    fn serializes_lowercase() {
        let got = compute(&cfg(), Some(0.0), None, Health::Warning);
        let json = serde_json::to_value(&got).unwrap_or_default();
        assert_eq!(json["grade"], "excellent");
        assert_eq!(json["components"][1]["name"], "health");
        assert_eq!(json["components"][1]["input"], 1.0);
        assert_eq!(json["components"][2]["input"], serde_json::Value::Null);
        assert_eq!(
            serde_json::to_value(Health::Critical).unwrap_or_default(),
            "critical"
        );
    }
}
