//! Rules: turning samples into decisions.
//!
//! - [`model`]: rule files (YAML groups) -> validated [`model::Rule`]s, every problem reported
//!   with file, line and key path; thresholds, severities, missing-data policies.
//! - [`expr`]: the PromQL subset: parse, check, evaluate over the [`crate::store::Store`],
//!   print back as PromQL.
//! - [`state`]: the per-instance alert state machine, a pure function of (rule, state,
//!   value, now) returning the notification decision, if any.
//! - [`persist`]: alert states saved atomically in `data_dir`.
//! - [`score`]: the scalability score.
//! - [`engine`]: evaluation ticks gluing the above; [`template`] renders summaries.
//!
//! Evaluation never calls back into collection or delivery: it reads the store and
//! returns notifications, which the caller hands to receivers.

pub mod config;
pub mod engine;
pub mod export;
pub mod expr;
pub mod load;
pub mod metrics;
pub mod model;
pub mod mute;
pub mod persist;
pub mod score;
pub mod state;
pub mod template;
pub mod testing;
pub mod values;

/// Labels of an alert instance or an evaluated series: name -> value, ordered.
pub use crate::sample::LabelSet;

/// Fingerprint of an alert instance: stable hex of (name, labels), the same across
/// restarts; receivers use it as the alert's identity (PagerDuty's `dedup_key`).
pub fn fingerprint(alert: &str, labels: &LabelSet) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(alert.as_bytes());
    for (k, v) in labels {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// The metrics that `rules` and the score's terms read over a range, each with the longest
/// range it is read over (ms): the windows the store keeps ([`crate::store::Windows::Only`]).
pub fn windows(
    rules: &[model::Rule],
    scalability: &score::ScalabilityConfig,
) -> std::collections::HashMap<&'static str, crate::store::Millis> {
    let mut out = std::collections::HashMap::new();
    let exprs = rules.iter().map(|r| &r.expr).chain([
        &scalability.sessions.expr,
        &scalability.background_tasks.expr,
    ]);
    for (name, range) in exprs.filter_map(expr::Expr::window) {
        let ms =
            crate::store::Millis::try_from(range.as_millis()).unwrap_or(crate::store::Millis::MAX);
        let longest = out.entry(name).or_insert(0);
        *longest = ms.max(*longest);
    }
    out
}

#[cfg(test)]
mod props;
