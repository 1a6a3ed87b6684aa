//! Label matchers of silences, maintenance windows and inhibition rules.
//!
//! A matcher is `label: pattern`. The pattern is a regular expression that must match the
//! whole value (`web-1` matches only `web-1`; `HostDisk.*` every alert whose name starts so).
//! `alert` (or `alertname`) is the alert's name and `severity` its severity; every other
//! name is an instance label. A label the alert does not have is the empty string, so
//! `target: ""` matches alerts without a `target`. All matchers of a set must match.

use std::collections::BTreeMap;

use regex::Regex;

use crate::rules::LabelSet;

/// Longest pattern accepted.
pub const MAX_PATTERN: usize = 1024;
/// Most matchers in one set.
pub const MAX_MATCHERS: usize = 32;

/// One `label: pattern`.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label (`alert` for the alert name).
    pub label: String,
    /// The pattern as written.
    pub pattern: String,
    regex: Regex,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.label == other.label && self.pattern == other.pattern
    }
}

/// A set of matchers, all of which must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// Matchers from `label -> pattern`; the error names the label and why. An empty map is
    /// refused unless `allow_empty` (a silence of everything is a mistake; an inhibition
    /// source of every alert is not).
    pub fn parse(map: &BTreeMap<String, String>, allow_empty: bool) -> Result<Matchers, String> {
        if map.is_empty() && !allow_empty {
            return Err("needs at least one matcher (`alert: NAME`, a label, ...)".into());
        }
        if map.len() > MAX_MATCHERS {
            return Err(format!("at most {MAX_MATCHERS} matchers"));
        }
        let mut out = Vec::with_capacity(map.len());
        for (label, pattern) in map {
            if label.is_empty() {
                return Err("a matcher's label must not be empty".into());
            }
            if pattern.len() > MAX_PATTERN {
                return Err(format!(
                    "{label}: the pattern is longer than {MAX_PATTERN} bytes"
                ));
            }
            let regex = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("{label}: {pattern:?} is not a regular expression: {e}"))?;
            let label = if label == "alertname" { "alert" } else { label };
            out.push(Matcher {
                label: label.to_string(),
                pattern: pattern.clone(),
                regex,
            });
        }
        Ok(Matchers(out))
    }

    /// Whether every matcher matches the alert `alert` with `labels` and `severity`.
    pub fn matches(&self, alert: &str, labels: &LabelSet, severity: &str) -> bool {
        self.0.iter().all(|m| {
            let value = match m.label.as_str() {
                "alert" => alert,
                "severity" => severity,
                other => labels.get(other).map_or("", String::as_str),
            };
            m.regex.is_match(value)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        map(pairs)
    }

    #[test]
    fn patterns_match_whole_values() {
        let m =
            Matchers::parse(&map(&[("alert", "HostDisk.*"), ("host", "web-1")]), false).unwrap();
        let web1 = labels(&[("host", "web-1")]);
        assert!(m.matches("HostDiskFull", &web1, "warning"));
        assert!(!m.matches("HostCpuHigh", &web1, "warning"));
        assert!(!m.matches("HostDiskFull", &labels(&[("host", "web-10")]), "warning"));
        assert!(!m.matches("XHostDiskFull", &web1, "warning"));
        let sev =
            Matchers::parse(&map(&[("alertname", "A"), ("severity", "critical")]), false).unwrap();
        assert!(sev.matches("A", &web1, "critical") && !sev.matches("A", &web1, "warning"));
        let absent = Matchers::parse(&map(&[("target", "")]), false).unwrap();
        assert!(absent.matches("A", &web1, "warning"));
        assert!(!absent.matches("A", &labels(&[("target", "cache")]), "warning"));
    }

    #[test]
    fn bad_matchers_are_errors_naming_the_label() {
        assert!(
            Matchers::parse(&map(&[]), false)
                .unwrap_err()
                .contains("at least one")
        );
        assert!(Matchers::parse(&map(&[]), true).is_ok());
        assert!(
            Matchers::parse(&map(&[("host", "web-(")]), false)
                .unwrap_err()
                .contains("host")
        );
        assert!(Matchers::parse(&map(&[("", "x")]), false).is_err());
        let long = "a".repeat(MAX_PATTERN + 1);
        assert!(Matchers::parse(&map(&[("host", &long)]), false).is_err());
    }
}
