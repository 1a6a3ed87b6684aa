//! Configuration: YAML -> raw serde structs -> validated, typed [`Config`].
//!
//! Two layers, as DESIGN section 3 and STYLE habit 6 describe:
//! - [`raw`]: what serde reads. `deny_unknown_fields` everywhere, every field optional and
//!   documented, values that need checking kept as spanned strings so their problems can be
//!   reported with a line and column.
//! - [`validate`]: turns the raw tree into [`Config`], collecting **every** problem with its
//!   key path (`collect.host.interval: invalid duration "ten"`) instead of stopping at the first.
//!
//! [`load`] is the one entry point: it reads a file, parses it and validates it.

pub mod raw;
pub mod validate;
pub mod yaml;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

pub use self::yaml::{DEFAULT_CONFIG_YAML, Problem, Problems, load, load_str};

/// Where the configuration lives when `-c` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/lookout/lookout.yaml";

/// The validated configuration the agent runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// `agent:` — identity, listen address, state directory, paths.
    pub agent: AgentConfig,
    /// `collect:` — what is sampled, and how often.
    pub collect: CollectConfig,
    /// `rules:` — where the rules come from and how often they run.
    pub rules: RulesConfig,
    /// `scalability:` — the score formula's numbers (DESIGN section 7).
    pub scalability: ScalabilityConfig,
    /// `notify:` — delivery settings.
    pub notify: NotifyConfig,
    /// The file this configuration was read from; `None` for built-in defaults.
    pub source: Option<PathBuf>,
}

/// `agent:` section.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Value of the `host` label on every sample (resolved from the kernel for `auto`).
    pub hostname: String,
    /// Address of the HTTP server (`/metrics`, API).
    pub listen: SocketAddr,
    /// State directory; `None` means "choose": `/var/lib/lookout` if writable, else a user dir.
    pub data_dir: Option<PathBuf>,
    /// When set, POST requests need `Authorization: Bearer <token from this file>`.
    pub api_token_file: Option<PathBuf>,
    /// Root of the proc filesystem to read (`/proc`; `/host/proc` in a container).
    pub proc_root: PathBuf,
    /// Root under which mount points are resolved for `statvfs` (`/`; `/host/root` in a container).
    pub rootfs: PathBuf,
}

/// `collect:` section.
#[derive(Debug, Clone)]
pub struct CollectConfig {
    /// `collect.host`.
    pub host: HostConfig,
    /// `collect.tcp`.
    pub tcp: TcpConfig,
}

/// When a collector runs and how long a run may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Time between runs.
    pub interval: Duration,
    /// Longest a run may take; never more than `interval`.
    pub timeout: Duration,
}

/// `collect.host`: CPU, load, memory, filesystems, disks, network, uptime, processes.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Whether the host collectors run at all.
    pub enabled: bool,
    /// Shared schedule of the host collectors.
    pub schedule: Schedule,
    /// Filesystem types never reported (exact names).
    pub exclude_fstypes: Vec<String>,
    /// Mount points never reported (each pattern matches the whole mount point).
    pub exclude_mounts: Vec<Regex>,
    /// Block devices never reported (whole-name patterns; partitions by default).
    pub exclude_disks: Vec<Regex>,
    /// Network interfaces never reported (whole-name patterns; none by default).
    pub exclude_interfaces: Vec<Regex>,
}

/// `collect.tcp`: TCP connection counts by state, host-wide and per configured local port.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// Whether the TCP collector runs.
    pub enabled: bool,
    /// Its schedule.
    pub schedule: Schedule,
    /// Local ports whose server-side connections are counted per state.
    pub ports: Vec<u16>,
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

/// `notify:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// How often a still-firing alert is notified again.
    pub repeat_interval: Duration,
}

/// `scalability:` section: every number of the score formula.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalabilityConfig {
    /// Concurrent sessions.
    pub sessions: LoadTerm,
    /// Backlog of background jobs.
    pub background_tasks: LoadTerm,
    /// Points off by the worst firing severity.
    pub health: HealthTerm,
    /// Lowest score of each grade.
    pub grades: Grades,
}

/// A load term: `min(max_penalty, points_per_unit * max(0, value - free))`, where `value`
/// is what `expr` yields over the store. Every number is finite and `>= 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadTerm {
    /// The parsed expression.
    pub expr: crate::rules::expr::Expr,
    /// The expression as written, for explanations.
    pub expr_text: String,
    /// Units before any penalty.
    pub free: f64,
    /// Points off per unit above `free`.
    pub points_per_unit: f64,
    /// Most points this term takes off.
    pub max_penalty: f64,
}

/// Points off while the worst firing alert has a severity; `warning <= critical`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthTerm {
    /// Worst firing alert is a warning.
    pub warning: f64,
    /// A critical alert fires.
    pub critical: f64,
}

/// Lowest score of each grade, within 0..=100 and `excellent > good > moderate`;
/// below `moderate` is poor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grades {
    /// Lowest excellent score.
    pub excellent: f64,
    /// Lowest good score.
    pub good: f64,
    /// Lowest moderate score.
    pub moderate: f64,
}

impl Config {
    /// The built-in defaults: what `lookout run` uses without a config file.
    pub fn builtin() -> Config {
        validate::builtin()
    }
}

/// Whether a whole-name pattern list matches `name`.
pub fn matches_any(patterns: &[Regex], name: &str) -> bool {
    patterns.iter().any(|p| p.is_match(name))
}
