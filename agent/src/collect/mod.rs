//! Collectors: what samples the host (and, later, caches and APIs).
//!
//! A [`Collector`] is polled by the [`scheduler`] on its own fixed interval and returns the
//! complete set of samples it currently sees. Host collectors read `/proc` through a
//! [`ProcFs`] root (configurable, so a container can read the host's `/proc` mounted
//! elsewhere) and hand the bytes to pure parsers from `procfs-core`, wrapped so that every
//! error names the file it came from. sysinfo is not used: it always reads the real `/proc`
//! and lacks iowait/steal, drops, IO time and TCP states.
//!
//! Adding a collector: a new file here, one line in [`build_all`], one config section.

pub mod cpu;
pub mod disk;
pub mod filesystem;
pub mod histogram;
pub mod ingest;
pub mod load;
pub mod memory;
pub mod network;
pub mod probe;
pub mod process;
pub mod procfs;
pub mod redis;
pub mod scheduler;
pub mod system;
pub mod tcp;
pub mod window;

use std::time::Instant;

use crate::catalogue::Metric;
use crate::config::{Config, Schedule};

pub use self::procfs::ProcFs;

/// Label values of one sample, in the order of its metric's `labels`.
pub type Labels = Vec<(&'static str, String)>;

/// Which series of a metric a sample is: the value of a gauge or counter, or one part of a
/// histogram (exported as `_bucket{le=...}`, `_sum` and `_count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Part {
    /// A gauge or counter value.
    #[default]
    Value,
    /// A cumulative histogram bucket; the upper bound as `f64::to_bits` of a non-negative
    /// number (or +Inf), which orders like the number itself.
    Bucket(u64),
    /// The histogram's sum of observations.
    Sum,
    /// The histogram's count of observations.
    Count,
}

impl Part {
    /// The bucket part with upper bound `le` (negative bounds are clamped to 0).
    pub fn bucket(le: f64) -> Part {
        Part::Bucket(le.max(0.0).to_bits())
    }
}

/// One observed value of a catalogue metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric this value belongs to.
    pub metric: &'static Metric,
    /// Label values (without `host`, which the exporter adds).
    pub labels: Labels,
    /// The value, in the metric's base unit.
    pub value: f64,
    /// Which series of the metric: [`Part::Value`] except for histograms.
    pub part: Part,
}

impl Sample {
    /// A sample of a metric without labels.
    pub fn new(metric: &'static Metric, value: f64) -> Self {
        Sample {
            metric,
            labels: Vec::new(),
            value,
            part: Part::Value,
        }
    }

    /// A sample with labels, given as `(name, value)` pairs in the metric's label order.
    pub fn with_labels<const N: usize>(
        metric: &'static Metric,
        labels: [(&'static str, String); N],
        value: f64,
    ) -> Self {
        debug_assert_eq!(
            labels.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            metric.labels,
            "labels of {} out of catalogue order",
            metric.name
        );
        Sample {
            metric,
            labels: labels.into(),
            value,
            part: Part::Value,
        }
    }

    /// A sample with labels built at run time (`(name, value)` pairs, the catalogue's
    /// labels first, in order; rule labels may follow on alert series).
    pub fn from_labels(metric: &'static Metric, labels: Labels, value: f64) -> Self {
        Sample {
            metric,
            labels,
            value,
            part: Part::Value,
        }
    }
}

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
    /// The collector's name.
    pub fn name(&self) -> &str {
        match self {
            Job::Blocking(c) => c.name(),
            Job::Async(c) => c.name(),
        }
    }
}

/// The network collectors of a configuration (Redis, probes), in a fixed order.
pub fn build_async(config: &Config) -> Vec<Box<dyn AsyncCollector>> {
    config
        .collect
        .redis
        .iter()
        .map(|t| Box::new(redis::RedisCollector::new(t.clone())) as Box<dyn AsyncCollector>)
        .chain(
            config.collect.http_probes.iter().map(|t| {
                Box::new(probe::ProbeCollector::new(t.clone())) as Box<dyn AsyncCollector>
            }),
        )
        .collect()
}

/// Builds every enabled collector from the configuration, in a fixed order.
///
/// This is the explicit registry: a new collector adds one line here.
pub fn build_all(config: &Config) -> Vec<Box<dyn Collector>> {
    let proc = ProcFs::new(&config.agent.proc_root);
    let host = &config.collect.host;
    let mut all: Vec<Box<dyn Collector>> =
        vec![Box::new(process::ProcessCollector::new(host.schedule))];
    if host.enabled {
        all.push(Box::new(cpu::CpuCollector::new(
            proc.clone(),
            host.schedule,
        )));
        all.push(Box::new(load::LoadCollector::new(
            proc.clone(),
            host.schedule,
        )));
        all.push(Box::new(memory::MemoryCollector::new(
            proc.clone(),
            host.schedule,
        )));
        all.push(Box::new(filesystem::FilesystemCollector::new(
            proc.clone(),
            config.agent.rootfs.clone(),
            host,
        )));
        all.push(Box::new(disk::DiskCollector::new(proc.clone(), host)));
        all.push(Box::new(network::NetworkCollector::new(proc.clone(), host)));
        all.push(Box::new(system::SystemCollector::new(
            proc.clone(),
            host.schedule,
        )));
    }
    let tcp = &config.collect.tcp;
    if tcp.enabled {
        all.push(Box::new(tcp::TcpCollector::new(proc, tcp)));
    }
    all
}
