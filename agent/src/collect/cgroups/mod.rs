//! `collect.cgroups`: CPU, memory, memory limit, OOM kills and tasks of the cgroups of
//! systemd services and containers, on cgroup v1, v2 and hybrid hosts.
//!
//! On every run the collector looks at the directory layout under `root` (`tree`):
//! - `root/cgroup.controllers` there: a pure v2 host, one unified hierarchy at `root`;
//! - else every directory under `root` (symlinks followed, each hierarchy once) holding
//!   `cgroup.controllers` is the unified hierarchy of a hybrid host (`root/unified`), and one
//!   holding `cgroup.procs` a v1 hierarchy, used for what it holds: `memory.usage_in_bytes`
//!   (memory), `cpuacct.usage` (CPU time, `cpuacct` or `cpu,cpuacct`), or named `pids`.
//!
//! It then walks each hierarchy (at most 16 levels, only into subtrees where an include
//! glob may match, skipping what vanishes or cannot be listed), keeps the cgroup paths that
//! match an include glob and no exclude glob, and merges the same path found in several
//! hierarchies into one cgroup. Past `max_cgroups` the first ones in path order are kept;
//! `lookout_cgroups_dropped` says how many were left out and one warning is logged each
//! time that number changes.
//!
//! Per cgroup (`tree::Reader::read` says which file gives what): CPU seconds (and from the
//! second run on their share of the whole host's CPU over the interval), the memory working
//! set (usage minus inactive file cache, as the kubelet and cAdvisor count it, so page
//! cache alone never looks like pressure), the limit and the usage ratio when there is a
//! limit, OOM kills, and tasks. A file that is absent (the cgroup vanished, a controller
//! not enabled there) gives no value; one that cannot be read or parsed gives no value
//! either, and the first such problem is logged as a warning (the rest at debug level):
//! one odd cgroup never fails the run. The run fails only when `root` holds no hierarchy.
//!
//! Labels: `cgroup` (the path, `system.slice/nginx.service`), `unit` (the systemd unit
//! when the last component is one) and `container_id` (a 64-hex container id in the last
//! component); `unit` and `container_id` are empty when there is none, which Prometheus
//! reads as no label at all.

pub mod parse;
pub mod tree;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Deserialize;
use serde_saphyr::Spanned;

use self::tree::CgroupGlob;
use crate::catalogue::{
    CGROUP_CPU_SECONDS_TOTAL, CGROUP_CPU_USAGE_RATIO, CGROUP_MEMORY_BYTES,
    CGROUP_MEMORY_LIMIT_BYTES, CGROUP_MEMORY_USAGE_RATIO, CGROUP_OOM_KILLS_TOTAL, CGROUP_PIDS,
    CGROUPS_DROPPED, Metric,
};
use crate::collect::procfs::PreviousRun;
use crate::collect::{
    CollectError, Collector, Context, Job, Kind, ProcFs, Sample, Schedule, check_schedule,
};
use crate::config::units::check_glob;
use crate::config::{Checker, Section, Text};

/// Default `collect.cgroups.root`.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";
/// Default `collect.cgroups.include`: systemd services, cgroupfs Docker containers, and
/// everything under the Kubernetes pods' slices.
pub const DEFAULT_INCLUDE: &[&str] = &["system.slice/*.service", "docker/*", "kubepods*/**"];
/// Default `collect.cgroups.max_cgroups`.
pub const DEFAULT_MAX_CGROUPS: u64 = 500;
/// Largest `collect.cgroups.max_cgroups` (each cgroup is up to 7 series).
pub const MAX_MAX_CGROUPS: u64 = 10_000;

/// Samples the cgroups that match the configured globs.
#[derive(Debug)]
pub struct CgroupsCollector {
    config: CgroupsConfig,
    /// Where the online CPUs are counted (`stat`).
    proc: ProcFs,
    reader: tree::Reader,
    /// CPU seconds of each cgroup at the previous run, for the usage ratio.
    previous: PreviousRun<f64>,
    /// Matching cgroups left out at the previous run, to log only changes.
    dropped: usize,
    /// Whether a problem was logged as a warning already (later ones go to debug).
    warned: bool,
}

impl CgroupsCollector {
    /// A collector of the cgroups `config` selects, counting online CPUs in `proc`'s `stat`.
    pub fn new(config: &CgroupsConfig, proc: ProcFs) -> Self {
        CgroupsCollector {
            config: config.clone(),
            proc,
            reader: tree::Reader::new(rustix::param::page_size() as u64),
            previous: PreviousRun::default(),
            dropped: 0,
            warned: false,
        }
    }

    /// Logs a problem: the first as a warning, the others at debug level.
    fn problem(&mut self, message: &str, count: usize) {
        if self.warned {
            tracing::debug!(problems = count, first = message, "cgroup files skipped");
        } else {
            self.warned = true;
            tracing::warn!(
                problems = count,
                first = message,
                "cgroup files skipped (their values are left out; further problems are logged \
                 at debug level)"
            );
        }
    }

    /// Logs a change of the number of matching cgroups left out by `max_cgroups`.
    fn note_dropped(&mut self, dropped: usize, matching: usize) {
        if dropped == self.dropped {
            return;
        }
        if dropped > 0 {
            tracing::warn!(
                max_cgroups = self.config.max_cgroups,
                matching,
                dropped,
                "collect.cgroups.max_cgroups ({}) reached: {dropped} of {matching} matching cgroups \
                 left out (the first ones in path order are kept); raise \
                 collect.cgroups.max_cgroups or narrow collect.cgroups.include",
                self.config.max_cgroups
            );
        } else {
            tracing::info!(
                matching,
                "every matching cgroup is collected again (within collect.cgroups.max_cgroups)"
            );
        }
        self.dropped = dropped;
    }

    /// The number of online CPUs, `None` (and a problem logged) when `stat` cannot say.
    fn online_cpus(&mut self) -> Option<u64> {
        let cpus = match self.proc.read("stat") {
            Ok(data) => parse::online_cpus(&data),
            Err(e) => {
                self.problem(&format!("counting online CPUs: {e}"), 1);
                return None;
            }
        };
        if cpus == 0 {
            let path = self.proc.path("stat").display().to_string();
            self.problem(&format!("{path}: no cpuN line"), 1);
        }
        (cpus > 0).then_some(cpus)
    }
}

/// The share of the host's CPU used between two readings `seconds` apart, 0..1; `None`
/// when the counter went backwards (the cgroup was created again) or no time passed.
pub fn cpu_usage_ratio(before: f64, now: f64, seconds: f64, cpus: u64) -> Option<f64> {
    let used = now - before;
    let capacity = seconds * cpus as f64;
    (used >= 0.0 && capacity > 0.0).then(|| (used / capacity).clamp(0.0, 1.0))
}

impl Collector for CgroupsCollector {
    fn name(&self) -> &str {
        "cgroups"
    }

    fn schedule(&self) -> Schedule {
        self.config.schedule
    }

    fn collect(&mut self, now: Instant) -> Result<Vec<Sample>, CollectError> {
        let hierarchies = tree::discover(&self.config.root).map_err(CollectError::Other)?;
        let found = tree::walk(&hierarchies, &self.config.include, &self.config.exclude);
        if found.truncated {
            let message = format!(
                "walked {} directories under {} and stopped there: narrow collect.cgroups.include",
                tree::MAX_WALKED,
                self.config.root.display()
            );
            self.problem(&message, 1);
        }
        if let Some(first) = found.unreadable.first() {
            let message = format!("listing {first}");
            self.problem(&message, found.unreadable.len());
        }
        let matching = found.paths.len();
        let dropped = matching.saturating_sub(self.config.max_cgroups);
        self.note_dropped(dropped, matching);
        let cpus = self.online_cpus();

        let mut samples = Vec::with_capacity(7 * matching.min(self.config.max_cgroups) + 1);
        let mut counters = HashMap::new();
        for (path, mask) in found.paths.into_iter().take(self.config.max_cgroups) {
            let values = self.reader.read(&hierarchies, &path, mask);
            if values.is_empty() {
                continue;
            }
            let labels = [
                ("cgroup", path.clone()),
                ("unit", parse::unit(&path).to_string()),
                ("container_id", parse::container_id(&path).to_string()),
            ];
            let mut push = |metric: &'static Metric, value: f64| {
                samples.push(Sample::with_labels(metric, labels.clone(), value));
            };
            if let Some(cpu) = values.cpu_seconds {
                push(&CGROUP_CPU_SECONDS_TOTAL, cpu);
                let ratio = self.previous.before(now, &path).zip(cpus).and_then(
                    |((seconds, before), cpus)| cpu_usage_ratio(*before, cpu, seconds, cpus),
                );
                if let Some(ratio) = ratio {
                    push(&CGROUP_CPU_USAGE_RATIO, ratio);
                }
                counters.insert(path.clone(), cpu);
            }
            if let Some(bytes) = values.memory_bytes {
                push(&CGROUP_MEMORY_BYTES, bytes as f64);
                if let Some(limit) = values.memory_limit {
                    push(&CGROUP_MEMORY_LIMIT_BYTES, limit as f64);
                    if limit > 0 {
                        push(&CGROUP_MEMORY_USAGE_RATIO, bytes as f64 / limit as f64);
                    }
                }
            }
            if let Some(kills) = values.oom_kills {
                push(&CGROUP_OOM_KILLS_TOTAL, kills as f64);
            }
            if let Some(pids) = values.pids {
                push(&CGROUP_PIDS, pids as f64);
            }
        }
        self.previous.replace(now, counters);
        samples.push(Sample::new(&CGROUPS_DROPPED, dropped as f64));
        let (problems, count) = self.reader.take_problems();
        if let Some(first) = problems.first() {
            self.problem(first, count);
        }
        Ok(samples)
    }
}

// The `collect.cgroups` section: what the configuration file says about this collector.

/// `collect.cgroups` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCgroups {
    /// Whether the cgroup collector runs; absent: `true`.
    pub enabled: Option<bool>,
    /// Time between runs; absent: `10s`.
    pub interval: Option<Text>,
    /// Longest a run may take; absent: the smaller of `5s` and the interval.
    pub timeout: Option<Text>,
    /// Where the cgroup filesystems are mounted (an absolute path); absent:
    /// `/sys/fs/cgroup`.
    pub root: Option<Text>,
    /// Globs over cgroup paths that are collected; absent: systemd services, cgroupfs
    /// Docker containers and Kubernetes pods. A list given replaces that list.
    pub include: Option<Vec<Text>>,
    /// Globs over cgroup paths left out even when included; absent: none.
    pub exclude: Option<Vec<Text>>,
    /// Most cgroups collected per run; absent: 500. Read as `i64` so that `0` and negative
    /// values reach validation and are reported with their position.
    pub max_cgroups: Option<Spanned<i64>>,
}

/// `collect.cgroups`: which cgroups are collected, from where, how often.
#[derive(Debug, Clone)]
pub struct CgroupsConfig {
    /// Whether the cgroup collector runs.
    pub enabled: bool,
    /// Its schedule.
    pub schedule: Schedule,
    /// Where the cgroup filesystems are mounted.
    pub root: PathBuf,
    /// A cgroup is collected when its path matches one of these...
    pub include: Vec<CgroupGlob>,
    /// ...and none of these.
    pub exclude: Vec<CgroupGlob>,
    /// Most cgroups collected per run (the first in path order).
    pub max_cgroups: usize,
}

/// The `collect.cgroups` section.
#[derive(Debug)]
pub struct CgroupsSection;

impl Section for CgroupsSection {
    type Raw = RawCgroups;
    type Value = CgroupsConfig;

    const DEFAULTS: &'static str = DEFAULTS_YAML;

    fn check(raw: &RawCgroups, path: &str, c: &mut Checker<'_>) -> CgroupsConfig {
        let root = match &raw.root {
            Some(text) => c.absolute_path(&format!("{path}.root"), text),
            None => PathBuf::from(DEFAULT_ROOT),
        };
        let max_cgroups = c.count(
            &format!("{path}.max_cgroups"),
            raw.max_cgroups.as_ref(),
            DEFAULT_MAX_CGROUPS,
            1..=MAX_MAX_CGROUPS,
        );
        CgroupsConfig {
            enabled: raw.enabled.unwrap_or(true),
            schedule: check_schedule(c, path, raw.interval.as_ref(), raw.timeout.as_ref()),
            root,
            include: globs(
                c,
                &format!("{path}.include"),
                raw.include.as_deref(),
                DEFAULT_INCLUDE,
            ),
            exclude: globs(c, &format!("{path}.exclude"), raw.exclude.as_deref(), &[]),
            max_cgroups: usize::try_from(max_cgroups).unwrap_or(usize::MAX),
        }
    }
}

impl Kind for CgroupsSection {
    fn build(value: &CgroupsConfig, context: &Context) -> Vec<Job> {
        if value.enabled {
            vec![Job::Blocking(Box::new(CgroupsCollector::new(
                value,
                context.proc.clone(),
            )))]
        } else {
            Vec::new()
        }
    }
}

/// The globs of `given` (`default` when absent), every invalid one reported at its index.
fn globs(
    c: &mut Checker<'_>,
    path: &str,
    given: Option<&[Text]>,
    default: &[&str],
) -> Vec<CgroupGlob> {
    let Some(given) = given else {
        return default
            .iter()
            .filter_map(|g| CgroupGlob::new(g).ok())
            .collect();
    };
    let mut out = Vec::new();
    for (i, text) in given.iter().enumerate() {
        let checked = if text.value.trim().is_empty() {
            Err("must not be empty".to_string())
        } else {
            check_glob(&text.value).and_then(|()| CgroupGlob::new(&text.value))
        };
        match checked {
            Ok(glob) => out.push(glob),
            Err(why) => c.report(&format!("{path}[{i}]"), Some(&text.referenced), why),
        }
    }
    out
}

/// `lookout config default`'s text for this section.
const DEFAULTS_YAML: &str = r#"# CPU, memory (working set), memory limit, OOM kills and tasks of the cgroups of
# systemd services and containers, on cgroup v1, v2 and hybrid hosts.
cgroups:
  # false: the cgroup collector does not run.
  enabled: true
  # Time between runs: from 1s to 1h.
  interval: 10s
  # Longest a run may take: more than 0, at most the interval.
  # Left out: the smaller of 5s and the interval.
  timeout: 5s
  # Where the cgroup filesystems are mounted (absolute). In a container, the host's:
  # e.g. /host/root/sys/fs/cgroup with the host's / mounted at /host/root.
  root: /sys/fs/cgroup
  # Globs over cgroup paths, relative to the hierarchy root without a leading slash
  # (system.slice/nginx.service): * and ? stay within one path component, ** crosses
  # them. A cgroup is collected when it matches one of these and none of `exclude`.
  include: ["system.slice/*.service", "docker/*", "kubepods*/**"]
  # Globs of cgroups left out even when an include glob matches them.
  exclude: []
  # Most cgroups collected per run (1-10000). Past it the first ones in path order are
  # kept, and lookout_cgroups_dropped counts the others.
  max_cgroups: 500
"#;

#[cfg(test)]
mod tests;
