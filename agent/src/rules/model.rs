//! Rule model: thresholds, severities, missing-data policies, and the validated rule.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::LabelSet;
use super::expr::Expr;

/// How bad a firing alert is. Critical wins over warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A comparison operator of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// The operator as written in rules and PromQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// `> 0.7`: the condition under which a severity applies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Comparison.
    pub op: Op,
    /// Right-hand side, in the expression's unit (`70%` was read as 0.7).
    pub value: f64,
}

impl Threshold {
    /// Whether `v` breaches the threshold (enters the severity).
    pub fn breached(&self, v: f64) -> bool {
        match self.op {
            Op::Gt => v > self.value,
            Op::Ge => v >= self.value,
            Op::Lt => v < self.value,
            Op::Le => v <= self.value,
            Op::Eq => v == self.value,
            Op::Ne => v != self.value,
        }
    }

    /// Whether `v` still holds a severity already entered, given `hysteresis` (absolute, in the
    /// expression's unit): `> 0.70` with hysteresis 0.05 holds until `v` is no longer above
    /// 0.65; `< 0.80` holds until `v` is no longer below 0.85. `==`/`!=` ignore hysteresis.
    pub fn holds(&self, v: f64, hysteresis: f64) -> bool {
        let bound = self.clear_bound(hysteresis);
        match self.op {
            Op::Gt => v > bound,
            Op::Ge => v >= bound,
            Op::Lt => v < bound,
            Op::Le => v <= bound,
            Op::Eq | Op::Ne => self.breached(v),
        }
    }

    /// The bound below/above which the severity clears, hysteresis included. Rounded to 12
    /// significant digits so that `70% - 5%` is 0.65, not 0.6499999999999999: a value an
    /// operator reads as "at the bound" must clear.
    pub fn clear_bound(&self, hysteresis: f64) -> f64 {
        let raw = match self.op {
            Op::Gt | Op::Ge => self.value - hysteresis,
            Op::Lt | Op::Le => self.value + hysteresis,
            Op::Eq | Op::Ne => self.value,
        };
        if raw == 0.0 || !raw.is_finite() {
            return raw;
        }
        let scale = 10f64.powi(11 - raw.abs().log10().floor() as i32);
        (raw * scale).round() / scale
    }
}

/// What absent data means for an alert instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMissing {
    /// Hold the current state until the series returns or `stale_after` passes, then resolve.
    #[default]
    Keep,
    /// Resolve at once.
    Resolve,
    /// Like `keep` for each instance, and when the expression yields nothing at all, fire
    /// `<alert>NoData` (warning).
    Alert,
}

/// The parameters the state machine needs, all times in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conditions {
    /// Entering warning.
    pub warning: Option<Threshold>,
    /// Entering critical.
    pub critical: Option<Threshold>,
    /// How long a breach must hold before firing (and before escalating).
    pub for_ms: i64,
    /// How far past a threshold the value must go back before the severity clears.
    pub hysteresis: f64,
    /// How long a severity must stay clear before it is left (resolve, de-escalate).
    pub clear_for_ms: i64,
    /// Absent-data policy.
    pub on_missing: OnMissing,
    /// With `keep`/`alert`: how long absent data holds the state before it resolves.
    pub stale_after_ms: i64,
    /// How often a still-firing alert is notified again.
    pub repeat_interval_ms: i64,
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Alert name (`HostCpuHigh`).
    pub alert: String,
    /// Group name.
    pub group: String,
    /// Evaluation interval of its group.
    pub interval: Duration,
    /// The expression, parsed.
    pub expr: Expr,
    /// The expression as written.
    pub expr_text: String,
    /// Thresholds and anti-flap parameters.
    pub conditions: Conditions,
    /// Extra labels on every instance.
    pub labels: LabelSet,
    /// Summary template.
    pub summary: Option<String>,
    /// Description template.
    pub description: Option<String>,
    /// What this rule's alert explains while it fires: alerts not notified meanwhile.
    pub inhibits: Vec<crate::rules::mute::inhibit::InhibitRule>,
    /// File the rule came from (`<built-in>/host.yaml` for embedded rules).
    pub file: String,
    /// Line of the rule in that file.
    pub line: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_breach_and_hold_with_hysteresis() {
        let gt = Threshold {
            op: Op::Gt,
            value: 0.70,
        };
        let lt = Threshold {
            op: Op::Lt,
            value: 0.80,
        };
        // (threshold, value, breached, holds with 0.05 hysteresis)
        let rows = [
            (gt, 0.71, true, true),   // above: breached and held
            (gt, 0.70, false, true),  // on the line: not entered, but held once in
            (gt, 0.66, false, true),  // inside the hysteresis band
            (gt, 0.65, false, false), // at the clear bound: cleared
            (lt, 0.79, true, true),   // below a "below" threshold
            (lt, 0.84, false, true),  // band above the line
            (lt, 0.85, false, false), // cleared
        ];
        for (t, v, breached, holds) in rows {
            assert_eq!(t.breached(v), breached, "{t:?} breached({v})");
            assert_eq!(t.holds(v, 0.05), holds, "{t:?} holds({v})");
        }
        assert!((gt.clear_bound(0.05) - 0.65).abs() < 1e-12);
    }
}
