//! Samples the rule engine exports: alert states, health, and the scalability score.

use super::engine::Engine;
use super::model::Severity;
use super::score::Score;
use crate::catalogue::{
    ALERT_FIRING, ALERTS, HEALTH_STATUS, RULE_EVALUATION_DURATION_SECONDS, SCALABILITY_PENALTY,
    SCALABILITY_SCORE,
};
use crate::sample::Sample;
use crate::store::intern;

/// The store owner of the engine's samples.
pub const OWNER: &str = "rules";

/// `lookout_alert_firing`, `lookout_alerts`, `lookout_health_status`, the score and its
/// penalties, and the duration of the evaluation that produced them.
pub fn samples(engine: &Engine, score: &Score, eval_seconds: f64) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut counts = [0u32; 2];
    for (alert, labels, severity) in engine.firing() {
        counts[usize::from(severity == Severity::Critical)] += 1;
        let mut sample_labels = vec![
            ("alert", alert.to_string()),
            ("severity", severity.as_str().to_string()),
        ];
        // `host` is added to every sample on export; `alert`/`severity` are ours.
        sample_labels.extend(
            labels
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "host" | "alert" | "severity"))
                .map(|(k, v)| (intern(k), v.clone())),
        );
        out.push(Sample::from_labels(&ALERT_FIRING, sample_labels, 1.0));
    }
    for (severity, count) in [
        (Severity::Warning, counts[0]),
        (Severity::Critical, counts[1]),
    ] {
        out.push(Sample::with_labels(
            &ALERTS,
            [("severity", severity.as_str().into())],
            f64::from(count),
        ));
    }
    out.push(Sample::new(&HEALTH_STATUS, engine.health().as_number()));
    out.push(Sample::new(&SCALABILITY_SCORE, score.score));
    for c in &score.components {
        out.push(Sample::with_labels(
            &SCALABILITY_PENALTY,
            [("component", c.name.to_string())],
            c.penalty,
        ));
    }
    out.push(Sample::new(&RULE_EVALUATION_DURATION_SECONDS, eval_seconds));
    out
}

/// The scalability score now: the configured inputs evaluated over the store (summed; absent
/// when they yield nothing) and the engine's health.
pub fn score(
    cfg: &super::score::ScalabilityConfig,
    store: &crate::store::Store,
    health: super::score::Health,
    now: crate::store::Millis,
) -> Score {
    let input = |term: &super::score::LoadTerm| {
        let values = term.expr.eval(store, now);
        (!values.is_empty()).then(|| values.iter().map(|(_, v)| v).sum())
    };
    super::score::compute(
        cfg,
        input(&cfg.sessions),
        input(&cfg.background_tasks),
        health,
    )
}

/// `lookout_silences{state}` at wall-clock `now`.
pub fn silences(muter: &crate::rules::mute::Muter, now: crate::store::Millis) -> Vec<Sample> {
    muter
        .counts(now)
        .iter()
        .map(|(state, n)| {
            Sample::with_labels(
                &crate::catalogue::SILENCES,
                [("state", state.as_str().to_string())],
                *n as f64,
            )
        })
        .collect()
}
