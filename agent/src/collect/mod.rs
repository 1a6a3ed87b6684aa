//! Collectors: what samples the host (and, later, caches and APIs).
//!
//! A [`Collector`] is polled by the [`scheduler`] on its own fixed interval and returns the
//! complete set of samples it currently sees. Host collectors read `/proc` through a
//! [`ProcFs`] root (configurable, so a container can read the host's `/proc` mounted
//! elsewhere) and hand the bytes to pure parsers from `procfs-core`, wrapped so that every
//! error names the file it came from. sysinfo is not used: it always reads the real `/proc`
//! and lacks iowait/steal, drops, IO time and TCP states.
//!
//! Adding a collector: a new file here that owns its `collect.<key>` section (raw struct,
//! checked config, defaults, checks) and implements [`Kind`], plus one line in the registry
//! ([`registry!`] below). Nothing else: the configuration file, `lookout config default`,
//! the agent, the benches and the golden test all take their list from that registry.

pub mod cgroups;
pub mod checkins;
pub mod cpu;
pub mod disk;
pub mod filesystem;
pub mod histogram;
pub mod host;
pub mod ingest;
pub mod links;
pub mod load;
pub mod memory;
pub mod network;
pub mod postgres;
pub mod probe;
pub mod process;
pub mod processes;
pub mod procfs;
pub mod races;
pub mod redis;
pub mod scheduler;
pub mod system;
pub mod tcp;
pub mod window;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::check::{MAX_INTERVAL, MIN_INTERVAL};
use crate::config::units::{format_duration, parse_duration};
use serde_saphyr::Spanned;

use crate::config::{Checker, Section, Text};

pub use self::procfs::ProcFs;
pub use crate::sample::{Labels, Part, Sample};

/// Why a collector run failed. The scheduler records it and carries on.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// A file under the proc root could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file's full path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content did not parse.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file's full path.
        path: String,
        /// What was wrong, and where in the file when known.
        message: String,
    },
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
    /// The collector ran, but the server it watches failed (cannot connect, refused the
    /// login, did not answer): `samples` say so (its `up` 0) and are stored as a
    /// successful run's; `message` shows as the run status's `target_error`.
    #[error("{message}")]
    Target {
        /// What the run still reports: the target's `up 0`, what else it could read.
        samples: Vec<Sample>,
        /// Why the target failed, with no secret in it.
        message: String,
    },
}

/// A source of samples, polled on a fixed interval.
///
/// `collect` may block (it reads files); the scheduler runs it on the blocking pool with a
/// timeout. It gets a monotonic `now` so rate computations can be tested without sleeping.
pub trait Collector: Send + 'static {
    /// Stable name, used as the `collector` label and in logs (`cpu`, `filesystem`, ...).
    fn name(&self) -> &str;
    /// How often it runs, and how long one run may take before it is abandoned and
    /// counted as failed.
    fn schedule(&self) -> Schedule;
    /// Takes one sample set. Counters and gauges are returned on every run; rates and
    /// ratios over the interval from the second run on.
    fn collect(&mut self, now: Instant) -> Result<Vec<Sample>, CollectError>;
}

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A collector that talks to the network (Redis, HTTP probes): `collect` is async and runs
/// on the runtime, under the same schedule, timeout and bookkeeping as [`Collector`]s.
pub trait AsyncCollector: Send + 'static {
    /// Stable name, used as the `collector` label (`redis:cache`, `probe:api`).
    fn name(&self) -> &str;
    /// How often it runs and how long one run may take.
    fn schedule(&self) -> Schedule;
    /// Takes one sample set; every network call inside is bounded by a timeout.
    fn collect<'a>(&'a mut self, now: Instant) -> BoxFuture<'a, Result<Vec<Sample>, CollectError>>;
}

/// A collector of either kind, as the scheduler runs it.
pub enum Job {
    /// Reads files: runs on the blocking pool.
    Blocking(Box<dyn Collector>),
    /// Talks to the network: runs on the runtime.
    Async(Box<dyn AsyncCollector>),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Blocking(c) => write!(f, "Blocking({})", c.name()),
            Job::Async(c) => write!(f, "Async({})", c.name()),
        }
    }
}

impl Job {
    /// The collector when it reads files; `None` for a network one.
    pub fn blocking(self) -> Option<Box<dyn Collector>> {
        match self {
            Job::Blocking(c) => Some(c),
            Job::Async(_) => None,
        }
    }

    /// The collector's name.
    pub fn name(&self) -> &str {
        match self {
            Job::Blocking(c) => c.name(),
            Job::Async(c) => c.name(),
        }
    }
}

/// Default `interval` of every collector.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default `timeout` of every collector, capped by its interval.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// When a collector runs and how long a run may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Time between runs.
    pub interval: Duration,
    /// Longest a run may take; never more than `interval`.
    pub timeout: Duration,
}

/// Checks a collector's `interval` (from 1s to 1h) and `timeout` (more than 0, at most the
/// interval; left out: the smaller of 5s and the interval) under `section`.
pub fn check_schedule(
    c: &mut Checker<'_>,
    section: &str,
    interval: Option<&Text>,
    timeout: Option<&Text>,
) -> Schedule {
    check_schedule_from(c, section, interval, timeout, DEFAULT_INTERVAL)
}

/// [`check_schedule`] for a section whose interval defaults to `default_interval`.
pub fn check_schedule_from(
    c: &mut Checker<'_>,
    section: &str,
    interval: Option<&Text>,
    timeout: Option<&Text>,
    default_interval: Duration,
) -> Schedule {
    let interval_path = format!("{section}.interval");
    let timeout_path = format!("{section}.timeout");
    // `None` when the given interval is invalid: nothing to compare the timeout with.
    let checked_interval = match interval {
        None => Some(default_interval),
        Some(text) => match parse_duration(&text.value) {
            Ok(d) if d < MIN_INTERVAL || d > MAX_INTERVAL => {
                c.report(
                    &interval_path,
                    Some(&text.referenced),
                    format!(
                        "{} is out of range: must be between {} and {}",
                        text.value,
                        format_duration(MIN_INTERVAL),
                        format_duration(MAX_INTERVAL)
                    ),
                );
                None
            }
            Ok(d) => Some(d),
            Err(why) => {
                c.report(&interval_path, Some(&text.referenced), why);
                None
            }
        },
    };
    let interval_value = checked_interval.unwrap_or(default_interval);
    let timeout_value = match timeout {
        None => DEFAULT_TIMEOUT.min(interval_value),
        Some(text) => match parse_duration(&text.value) {
            Ok(d) if d.is_zero() => {
                c.report(
                    &timeout_path,
                    Some(&text.referenced),
                    "must be greater than 0",
                );
                d
            }
            Ok(d) => {
                let interval_removed = c.removed(&interval_path);
                if let Some(limit) = checked_interval.filter(|i| d > *i && !interval_removed) {
                    c.report(
                        &timeout_path,
                        Some(&text.referenced),
                        format!(
                            "{} is longer than the interval ({}): a run must end before the next starts",
                            text.value,
                            format_duration(limit)
                        ),
                    );
                }
                d
            }
            Err(why) => {
                c.report(&timeout_path, Some(&text.referenced), why);
                DEFAULT_TIMEOUT.min(interval_value)
            }
        },
    };
    Schedule {
        interval: interval_value,
        timeout: timeout_value,
    }
}

/// What collectors are built with besides their own section: where the host's files are,
/// and the aggregates they share with the HTTP API.
#[derive(Clone)]
pub struct Context {
    /// The proc filesystem to read (`/proc`; `/host/proc` in a container).
    pub proc: ProcFs,
    /// Root under which mount points are measured (`/`; `/host/root` in a container).
    pub rootfs: PathBuf,
    /// How filesystems are measured: `statvfs`, or captured values in tests and benches.
    pub statfs: Arc<dyn filesystem::StatFs>,
    /// Request timings pushed to the API, exported by the ingest collector.
    pub ingest: Arc<ingest::Ingest>,
    /// Check-ins reported to the API (`collect.checkins` configures them).
    pub checkins: Arc<checkins::Checkins>,
    /// The top processes, kept by the processes collector for the API.
    pub processes: Arc<processes::Top>,
    /// The one connection to each Redis and PostgreSQL target, shared by its collector and
    /// the races.
    pub links: Arc<links::Links>,
    /// Monotonic time of the build (the start of rate windows).
    pub now: Instant,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("proc", &self.proc)
            .field("rootfs", &self.rootfs)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context reading the host through `proc_root` and `rootfs` with `statvfs`, and a
    /// fresh ingest aggregate.
    pub fn new(proc_root: &std::path::Path, rootfs: PathBuf) -> Self {
        let now = Instant::now();
        Context {
            proc: ProcFs::new(proc_root),
            rootfs,
            statfs: Arc::new(filesystem::SystemStatFs),
            ingest: Arc::new(ingest::Ingest::new(&ingest::IngestSection::builtin(), now)),
            checkins: Arc::new(checkins::Checkins::default()),
            processes: Arc::new(processes::Top::new()),
            links: Arc::new(links::Links::default()),
            now,
        }
    }
}

impl Context {
    /// This context measuring filesystems through `statfs` (captured values in tests and
    /// benches) instead of `statvfs`.
    pub fn with_statfs(self, statfs: impl filesystem::StatFs + 'static) -> Self {
        Context {
            statfs: Arc::new(statfs),
            ..self
        }
    }
}

/// A `collect:` section that builds collectors: one file (or folder) per kind.
pub trait Kind: Section {
    /// The collectors this section's value asks for (none when disabled or empty).
    fn build(value: &Self::Value, context: &Context) -> Vec<Job>;
}

/// One entry of a `collect:` section that lists named targets, each watched by one network
/// collector (`collect.redis`, `collect.http_probes`): the checked entry itself.
pub trait Target: Clone + std::fmt::Debug + Sized + 'static {
    /// One entry as serde reads it.
    type Raw: serde::de::DeserializeOwned + std::fmt::Debug;
    /// What an entry is called in messages (`Redis target`).
    const WHAT: &'static str;
    /// The section's commented defaults (see [`Section::DEFAULTS`]).
    const DEFAULTS: &'static str;
    /// The entry's `name` as written.
    fn name(raw: &Self::Raw) -> Option<&Text>;
    /// Checks one entry at `base` whose name was checked already (`None`: it was invalid,
    /// and reported); `None` when the entry cannot be used (every problem reported).
    fn check(
        c: &mut Checker<'_>,
        base: &str,
        item: &Spanned<Self::Raw>,
        name: Option<String>,
    ) -> Option<Self>;
    /// The collector that watches this target; its connection, if it keeps one, comes
    /// from `context.links` so that the races share it.
    fn collector(&self, context: &Context) -> Job;
}

/// The section of a list of [`Target`]s: names unique, one collector per entry.
#[derive(Debug)]
pub struct Targets<T>(std::marker::PhantomData<T>);

impl<T: Target> Section for Targets<T> {
    type Raw = Vec<Spanned<T::Raw>>;
    type Value = Vec<T>;
    const DEFAULTS: &'static str = T::DEFAULTS;

    fn check(list: &Self::Raw, path: &str, c: &mut Checker<'_>) -> Vec<T> {
        c.named_entries(path, list, T::WHAT, T::name, T::check)
    }
}

impl<T: Target> Kind for Targets<T> {
    fn build(targets: &Vec<T>, context: &Context) -> Vec<Job> {
        targets.iter().map(|t| t.collector(context)).collect()
    }
}

/// The registry: one line per `collect:` section, `key: type`, in the order the sections
/// appear in the configuration file and their collectors start. It defines [`RawCollect`],
/// [`CollectConfig`] and its [`CollectConfig::build`].
macro_rules! registry {
    ($($(#[doc = $doc:literal])* $key:ident: $kind:ty,)*) => {
        /// `collect:` as serde reads it: one optional key per registered section.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawCollect {
            $($(#[doc = $doc])* pub $key: Option<<$kind as Section>::Raw>,)*
        }

        /// `collect:` checked: one value per registered section.
        #[derive(Debug, Clone)]
        pub struct CollectConfig {
            $($(#[doc = $doc])* pub $key: <$kind as Section>::Value,)*
        }

        impl CollectConfig {
            /// Checks every section of `collect:` (absent ones take their defaults).
            pub fn check(raw: &RawCollect, checker: &mut Checker<'_>) -> Self {
                CollectConfig {
                    $($key: match &raw.$key {
                        Some(section) => <$kind as Section>::check(
                            section,
                            concat!("collect.", stringify!($key)),
                            checker,
                        ),
                        None => <$kind as Section>::check(
                            &Default::default(),
                            concat!("collect.", stringify!($key)),
                            checker,
                        ),
                    },)*
                }
            }

            /// The defaults of every section, in registry order, for the default file.
            pub fn defaults_yaml() -> Vec<String> {
                vec![$(<$kind as Section>::defaults_yaml(),)*]
            }

            /// Every collector this configuration asks for, in registry order.
            pub fn build(&self, context: &Context) -> Vec<Job> {
                let mut jobs = Vec::new();
                $(jobs.extend(<$kind as Kind>::build(&self.$key, context));)*
                jobs
            }
        }
    };
}

registry! {
    /// `collect.host`: CPU, load, memory, filesystems, disks, network, uptime, processes.
    host: host::HostSection,
    /// `collect.tcp`: TCP connections by state, host-wide and per local port.
    tcp: tcp::TcpSection,
    /// `collect.cgroups`: CPU, memory, OOM kills and tasks of systemd services and containers.
    cgroups: cgroups::CgroupsSection,
    /// `collect.processes`: named process groups and the top processes.
    processes: processes::ProcessesSection,
    /// `collect.redis`: Redis/Valkey servers (none by default).
    redis: Targets<redis::RedisTarget>,
    /// `collect.postgres`: PostgreSQL servers (none by default).
    postgres: Targets<postgres::PostgresTarget>,
    /// `collect.races`: the same lookup timed against Redis and PostgreSQL (none by default).
    races: races::RacesSection,
    /// `collect.http_probes`: HTTP(S) endpoints probed (none by default).
    http_probes: Targets<probe::ProbeTarget>,
    /// `collect.ingest`: request timings pushed to `POST /api/v1/observations`.
    ingest: ingest::IngestSection,
    /// `collect.checkins`: cron jobs and workers reporting to `/api/v1/checkins/<name>`.
    checkins: checkins::CheckinsSection,
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_defaults_to_interval_when_shorter() {
        let host =
            crate::config::check_section::<host::HostSection>("interval: 2s\n", "collect.host")
                .expect("valid");
        assert_eq!(
            host.schedule,
            Schedule {
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(2)
            }
        );
    }
}
