//! The configuration file as a whole: its top-level sections, each owned by the feature it
//! configures, put together.
//!
//! `agent:` is the agent's own ([`agent`]); `collect:` is the collectors' registry
//! ([`crate::collect::CollectConfig`]); `rules:` and `scalability:` belong to the rules;
//! `notify:` to delivery. This module only assembles them: it reads the file with the shared
//! machinery of [`crate::config`], hands each section to its owner's check, and builds the
//! commented default file (`lookout config default`) from the sections' own texts.

pub mod agent;
pub mod tls;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use self::agent::{AgentConfig, AgentSection, RawAgent};
use crate::collect::{CollectConfig, RawCollect};
use crate::config::defaults::nest;
use crate::config::{Checker, Problems, Section, yaml};
use crate::history::config::{HistoryConfig, HistorySection, RawHistory};
use crate::notify::config::{NotifyConfig, NotifySection, RawNotify};
use crate::rules::config::{RawRules, RulesConfig, RulesSection};
use crate::rules::load::Defaults;
use crate::rules::score::{RawScalability, ScalabilityConfig, ScalabilitySection};

/// Where the configuration lives when `-c` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/lookout/lookout.yaml";

/// The whole file as serde reads it. An empty file (or one holding only comments) is no
/// document at all and reads as all defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `agent:`; absent: every agent default.
    pub agent: Option<RawAgent>,
    /// `collect:`; absent: every collector with its defaults.
    pub collect: Option<RawCollect>,
    /// `rules:`; absent: the built-in rule set, evaluated every `10s`.
    pub rules: Option<RawRules>,
    /// `scalability:`; absent: the seed formula.
    pub scalability: Option<RawScalability>,
    /// `notify:`; absent: every notification default.
    pub notify: Option<RawNotify>,
    /// `history:`; absent: a day in at most 8 MiB, persisted.
    pub history: Option<RawHistory>,
}

/// The checked configuration the agent runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// `agent:`: identity, listen address, state directory, paths.
    pub agent: AgentConfig,
    /// `collect:`: what is sampled, and how often.
    pub collect: CollectConfig,
    /// `rules:`: where the rules come from and how often they run.
    pub rules: RulesConfig,
    /// `scalability:`: the score formula's numbers.
    pub scalability: ScalabilityConfig,
    /// `notify:`: delivery settings.
    pub notify: NotifyConfig,
    /// `history:`: how long series are kept, in how much memory.
    pub history: HistoryConfig,
    /// The file this configuration was read from; `None` for built-in defaults.
    pub source: Option<PathBuf>,
}

/// Checks `section` of `raw` (its default when absent) under `path`.
fn section<S: Section>(raw: Option<&S::Raw>, path: &str, c: &mut Checker<'_>) -> S::Value {
    match raw {
        Some(raw) => S::check(raw, path, c),
        None => S::check(&S::Raw::default(), path, c),
    }
}

impl Config {
    /// Checks every section of `raw`: `None` only when a scalability expression, given or
    /// built-in, did not parse (a problem says so).
    pub fn check(raw: &RawConfig, c: &mut Checker<'_>) -> Option<Config> {
        let agent = section::<AgentSection>(raw.agent.as_ref(), "agent", c);
        let mut collect = match &raw.collect {
            Some(collect) => CollectConfig::check(collect, c),
            None => CollectConfig::check(&RawCollect::default(), c),
        };
        // User names of process groups are looked up under the configured root.
        crate::collect::processes::resolve_users(
            &mut collect.processes,
            raw.collect.as_ref().and_then(|r| r.processes.as_ref()),
            "collect.processes",
            &agent.rootfs,
            c,
        );
        // Races name Redis and PostgreSQL targets: found once both lists are checked.
        crate::collect::races::resolve(&mut collect.races, &collect.redis, &collect.postgres, c);
        let rules = section::<RulesSection>(raw.rules.as_ref(), "rules", c);
        let scalability = section::<ScalabilitySection>(raw.scalability.as_ref(), "scalability", c);
        let notify = section::<NotifySection>(raw.notify.as_ref(), "notify", c);
        let history = section::<HistorySection>(raw.history.as_ref(), "history", c);
        Some(Config {
            agent,
            collect,
            rules,
            scalability: scalability?,
            notify,
            history,
            source: None,
        })
    }

    /// The built-in defaults: what `lookout run` uses without a configuration file, exactly
    /// what an empty document checks to.
    ///
    /// The one way this can fail is the expression parser rejecting a built-in scalability
    /// expression, a bug that the tests catch. There is no configuration to run on then: it
    /// is logged and the process exits with status 2 (fatal start-up error) rather than
    /// panicking.
    pub fn builtin() -> Config {
        let mut checker = Checker::new("<builtin>", &[]);
        let config = Config::check(&RawConfig::default(), &mut checker);
        let problems = checker.into_problems();
        match config {
            Some(config) if problems.is_empty() => config,
            _ => {
                for problem in &problems {
                    tracing::error!(%problem, "built-in configuration is invalid");
                }
                std::process::exit(2)
            }
        }
    }

    /// What rules inherit from the configuration.
    pub fn rule_defaults(&self) -> Defaults {
        Defaults {
            evaluation_interval: self.rules.evaluation_interval,
            stale_after: self.rules.stale_after,
            repeat_interval: self.notify.repeat_interval,
        }
    }

    /// The rules this configuration names (or the built-in set), every problem of every
    /// rule file together.
    pub fn load_rules(&self) -> Result<Vec<crate::rules::model::Rule>, Problems> {
        crate::rules::load::load(&self.rules, &self.rule_defaults(), self.source.as_deref())
    }
}

/// Reads, parses and checks the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, Problems> {
    let mut config = yaml::load_file(path, Config::check)?;
    config.source = Some(path.to_path_buf());
    Ok(config)
}

/// Parses and checks configuration text; `file` only names it in problems.
pub fn load_str(text: &str, file: &str) -> Result<Config, Problems> {
    yaml::load_text(text, file, Config::check)
}

/// The header of the default file.
const HEADER: &str = "\
# lookout configuration: the built-in defaults, every key shown.
#
# Every key is optional: leave out a key (or set it to null) to get the value shown here.
# Unknown keys are errors, so a typo never silently disables a setting.
# Check a file with `lookout check -c FILE`; docs/configuration.md describes every key.
#
# Durations: an integer and a unit, largest unit first: 500ms, 10s, 5m, 1h, 1d, 1m30s.
# Patterns (exclude_mounts, exclude_disks, exclude_interfaces) are regular expressions
# that must match the WHOLE name. A list given REPLACES the default list: to add one
# entry, copy the whole default list from here and append to it.
";

/// The full default configuration, every key present and commented, built from the
/// sections' own texts (`lookout config default`).
pub fn default_yaml() -> String {
    [
        HEADER.to_string(),
        AgentSection::defaults_yaml(),
        nest("", "collect", &CollectConfig::defaults_yaml(), "\n"),
        RulesSection::defaults_yaml(),
        ScalabilitySection::defaults_yaml(),
        NotifySection::defaults_yaml(),
        HistorySection::defaults_yaml(),
    ]
    .join("\n")
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
