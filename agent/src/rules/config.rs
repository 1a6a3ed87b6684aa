//! `rules:`: where the rules come from and how often they run. The rule files themselves
//! are read by [`super::load`]; this section only checks their glob patterns.

use std::time::Duration;

use serde::Deserialize;

use crate::config::check::{MAX_INTERVAL, MIN_INTERVAL};
use crate::config::units::{format_duration, parse_duration};
use crate::config::{Checker, Section, Text};

/// Default `rules.evaluation_interval`.
pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(10);
/// Default `rules.stale_after`; raised to the evaluation interval when that is longer.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(5 * 60);
/// Default `notify.repeat_interval`: how often the engine notifies a still-firing alert
/// again (configured with delivery, decided here).
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// `rules:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    /// Glob patterns of rule files, absolute or relative to the configuration file's
    /// directory; absent (or `[]`): the built-in default rule set. Only the pattern syntax
    /// is checked here; the rules loader reads the files.
    pub files: Option<Vec<Text>>,
    /// Time between rule evaluations (a group's own `interval` overrides it); absent: `10s`.
    pub evaluation_interval: Option<Text>,
    /// How long absent data keeps an alert's state (`on_missing: keep` / `alert`) before it
    /// resolves; absent: `5m`, or the evaluation interval if that is longer.
    pub stale_after: Option<Text>,
}

/// `rules:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesConfig {
    /// Glob patterns of rule files as written: absolute, or relative to the directory of
    /// [`Config::source`]. Empty: the built-in default rule set.
    pub files: Vec<String>,
    /// Time between evaluations of a group without its own `interval`.
    pub evaluation_interval: Duration,
    /// How long absent data keeps an alert's state (`on_missing: keep` / `alert`);
    /// never shorter than `evaluation_interval`.
    pub stale_after: Duration,
}

/// The `rules:` section.
#[derive(Debug)]
pub struct RulesSection;

impl Section for RulesSection {
    type Raw = RawRules;
    type Value = RulesConfig;

    const DEFAULTS: &'static str = DEFAULTS_YAML;

    fn check(raw: &RawRules, path: &str, c: &mut Checker<'_>) -> RulesConfig {
        let files = c.globs(&format!("{path}.files"), raw.files.as_deref());
        let interval_path = &format!("{path}.evaluation_interval");
        let checked_interval = c.duration(
            interval_path,
            raw.evaluation_interval.as_ref(),
            DEFAULT_EVALUATION_INTERVAL,
            MIN_INTERVAL,
            Some(MAX_INTERVAL),
        );
        let evaluation_interval = checked_interval.unwrap_or(DEFAULT_EVALUATION_INTERVAL);
        let default_stale = DEFAULT_STALE_AFTER.max(evaluation_interval);
        let stale_after = match &raw.stale_after {
            None => default_stale,
            Some(text) => match parse_duration(&text.value) {
                Ok(d) => {
                    let interval_removed = c.removed(interval_path);
                    if let Some(limit) = checked_interval.filter(|i| d < *i && !interval_removed) {
                        c.report(
                            &format!("{path}.stale_after"),
                            Some(&text.referenced),
                            format!(
                                "{} is shorter than rules.evaluation_interval ({}): data would count as missing between two evaluations",
                                text.value,
                                format_duration(limit)
                            ),
                        );
                    }
                    d
                }
                Err(why) => {
                    c.report(&format!("{path}.stale_after"), Some(&text.referenced), why);
                    default_stale
                }
            },
        };
        RulesConfig {
            files,
            evaluation_interval,
            stale_after,
        }
    }
}

/// `lookout config default`'s text for this section.
const DEFAULTS_YAML: &str = r#"rules:
  # Rule files: glob patterns (*, ?, [a-z], **), absolute or relative to the directory of
  # this file, e.g. ['/etc/lookout/rules/*.yaml', 'rules.d/**/*.yaml'].
  # Empty: the built-in default rule set.
  files: []
  # Time between rule evaluations, from 1s to 1h. A rule group's own `interval` overrides it.
  evaluation_interval: 10s
  # How long absent data keeps an alert's state (on_missing: keep or alert) before it
  # resolves. At least evaluation_interval. Left out: 5m, or evaluation_interval if longer.
  stale_after: 5m
"#;
