//! Inhibition, in Alertmanager's shape: while an alert matching `source` fires, alerts
//! matching `target` with the same values of the `equal` labels are not notified.
//!
//! An alert never inhibits itself: an alert that matches both sides is inhibited only by a
//! *different* firing alert (another name or other labels).

use std::collections::BTreeMap;

use super::matchers::Matchers;
use super::{FiringAlert, severity_str};
use crate::rules::LabelSet;

/// One inhibition rule.
#[derive(Debug, Clone, PartialEq)]
pub struct InhibitRule {
    /// Alerts that inhibit, while firing.
    pub source: Matchers,
    /// Alerts inhibited.
    pub target: Matchers,
    /// Labels whose values must be the same on both (a label absent on both is equal).
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// A rule from `label -> pattern` maps; the error says which side is wrong.
    pub fn new(
        source: &BTreeMap<String, String>,
        target: &BTreeMap<String, String>,
        equal: Vec<String>,
    ) -> Result<InhibitRule, String> {
        Ok(InhibitRule {
            source: Matchers::parse(source, false).map_err(|e| format!("source: {e}"))?,
            target: Matchers::parse(target, false).map_err(|e| format!("target: {e}"))?,
            equal,
        })
    }

    /// The name of a firing alert that inhibits `alert` with `labels`, if one does.
    pub fn inhibited_by<'f>(
        &self,
        alert: &str,
        labels: &LabelSet,
        severity: &str,
        firing: &[FiringAlert<'f>],
    ) -> Option<&'f str> {
        if !self.target.matches(alert, labels, severity) {
            return None;
        }
        firing
            .iter()
            .find(|(name, source_labels, source_severity)| {
                (*name != alert || *source_labels != labels)
                    && self
                        .source
                        .matches(name, source_labels, severity_str(*source_severity))
                    && self
                        .equal
                        .iter()
                        .all(|l| source_labels.get(l) == labels.get(l))
            })
            .map(|(name, _, _)| *name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::model::Severity;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_firing_source_inhibits_targets_with_equal_labels() {
        let rule = InhibitRule::new(
            &map(&[("alert", "RedisDown")]),
            &map(&[("alert", "Redis.+")]),
            vec!["target".into()],
        )
        .unwrap();
        let cache = map(&[("target", "cache"), ("host", "h")]);
        let other = map(&[("target", "sessions"), ("host", "h")]);
        let firing = [("RedisDown", &cache, Severity::Critical)];
        assert_eq!(
            rule.inhibited_by("RedisHitRatioLow", &cache, "warning", &firing),
            Some("RedisDown")
        );
        // Another target: not explained by this one being down.
        assert_eq!(
            rule.inhibited_by("RedisHitRatioLow", &other, "warning", &firing),
            None
        );
        // Not a target.
        assert_eq!(
            rule.inhibited_by("HostCpuHigh", &cache, "warning", &firing),
            None
        );
        // The source never inhibits itself, though it matches `Redis.+`.
        assert_eq!(
            rule.inhibited_by("RedisDown", &cache, "critical", &firing),
            None
        );
        // Nothing firing: nothing inhibited.
        assert_eq!(
            rule.inhibited_by("RedisHitRatioLow", &cache, "warning", &[]),
            None
        );
    }

    #[test]
    fn bad_sides_are_named() {
        assert!(
            InhibitRule::new(&map(&[]), &map(&[("alert", "A")]), vec![])
                .unwrap_err()
                .starts_with("source")
        );
        assert!(
            InhibitRule::new(&map(&[("alert", "A")]), &map(&[("alert", "(")]), vec![])
                .unwrap_err()
                .starts_with("target")
        );
    }
}
