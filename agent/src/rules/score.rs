//! The scalability score (DESIGN section 7): a pure function of the configured formula,
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

use crate::config::validate::number_text;
use crate::config::{Grades, LoadTerm, ScalabilityConfig};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

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
