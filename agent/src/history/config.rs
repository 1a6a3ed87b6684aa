//! `history:`: how long the agent keeps every series it exports, in how much memory, and
//! whether it survives a restart.

use std::time::Duration;

use serde::Deserialize;

use crate::config::units::{format_size, parse_duration, parse_size};
use crate::config::{Checker, Section, Text};

/// Default `history.retention`: a day.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Longest `history.retention`.
pub const MAX_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Shortest non-zero `history.retention`.
pub const MIN_RETENTION: Duration = Duration::from_secs(60);
/// Default `history.max_memory`.
pub const DEFAULT_MAX_MEMORY: u64 = 8 << 20;
/// Smallest `history.max_memory`.
pub const MIN_MAX_MEMORY: u64 = 1 << 20;
/// Largest `history.max_memory`.
pub const MAX_MAX_MEMORY: u64 = 1 << 30;

/// `history:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHistory {
    /// How long points are kept; `0`: no history. Absent: `24h`.
    pub retention: Option<Text>,
    /// Hard cap on the memory the history holds. Absent: `8MiB`.
    pub max_memory: Option<Text>,
    /// Snapshot to `data_dir` every 10 minutes and on shutdown, loaded at start. Absent: true.
    pub persist: Option<bool>,
}

/// The checked `history:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// How long points are kept; zero: no history.
    pub retention: Duration,
    /// Most bytes the compressed history may hold.
    pub max_memory: u64,
    /// Whether the history is saved to and loaded from `data_dir`.
    pub persist: bool,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            retention: DEFAULT_RETENTION,
            max_memory: DEFAULT_MAX_MEMORY,
            persist: true,
        }
    }
}

/// The `history:` section.
#[derive(Debug)]
pub struct HistorySection;

impl Section for HistorySection {
    type Raw = RawHistory;
    type Value = HistoryConfig;

    const DEFAULTS: &'static str = DEFAULTS_YAML;

    fn check(raw: &RawHistory, path: &str, c: &mut Checker<'_>) -> HistoryConfig {
        let defaults = HistoryConfig::default();
        let retention = match &raw.retention {
            None => defaults.retention,
            Some(text) if text.value.trim() == "0" => Duration::ZERO,
            Some(text) => match parse_duration(text.value.trim()) {
                Ok(d) if d.is_zero() => d,
                Ok(d) if (MIN_RETENTION..=MAX_RETENTION).contains(&d) => d,
                Ok(_) => {
                    c.report(
                        &format!("{path}.retention"),
                        Some(&text.referenced),
                        format!(
                            "{} is out of range: must be 0 (no history) or between 1m and 7d",
                            text.value
                        ),
                    );
                    defaults.retention
                }
                Err(why) => {
                    c.report(&format!("{path}.retention"), Some(&text.referenced), why);
                    defaults.retention
                }
            },
        };
        let max_memory = match &raw.max_memory {
            None => defaults.max_memory,
            Some(text) => match parse_size(text.value.trim()) {
                Ok(n) if (MIN_MAX_MEMORY..=MAX_MAX_MEMORY).contains(&n) => n,
                Ok(_) => {
                    c.report(
                        &format!("{path}.max_memory"),
                        Some(&text.referenced),
                        format!(
                            "{} is out of range: must be between {} and {}",
                            text.value,
                            format_size(MIN_MAX_MEMORY),
                            format_size(MAX_MAX_MEMORY)
                        ),
                    );
                    defaults.max_memory
                }
                Err(why) => {
                    c.report(&format!("{path}.max_memory"), Some(&text.referenced), why);
                    defaults.max_memory
                }
            },
        };
        HistoryConfig {
            retention,
            max_memory,
            persist: raw.persist.unwrap_or(defaults.persist),
        }
    }
}

/// `lookout config default`'s text for this section.
const DEFAULTS_YAML: &str = r#"history:
  # How long every exported series is kept, at its collection interval, for the query
  # API (/api/v1/query, /api/v1/query_range) and Grafana: 0 (no history: queries see the
  # latest values only) or from 1m to 7d.
  retention: 24h
  # Hard cap on the memory the compressed history holds, from 1MiB to 1GiB. Past it, the
  # oldest data is thinned (every other point dropped), then dropped.
  max_memory: 8MiB
  # true: saved to data_dir every 10 minutes and on shutdown, and loaded at start, so a
  # restart keeps the history. A file that cannot be read is moved aside.
  persist: true
"#;
