//! Reading files under a configurable proc root.
//!
//! Only collectors touch the filesystem, through this type; the parsers they call take bytes.
//! Tests and containers point the root elsewhere (`tests/fixtures/proc-*`, `/host/proc`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::CollectError;

/// A proc filesystem root, cheap to clone.
#[derive(Debug, Clone)]
pub struct ProcFs {
    root: Arc<Path>,
}

impl ProcFs {
    /// A proc root at `root` (normally `/proc`).
    pub fn new(root: &Path) -> Self {
        ProcFs {
            root: Arc::from(root),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Full path of `rel` (e.g. `"stat"`, `"net/dev"`) under the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Reads `rel` whole. Proc files are small and generated on read, so one read is right.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>, CollectError> {
        let path = self.path(rel);
        std::fs::read(&path).map_err(|source| CollectError::Read {
            path: path.display().to_string(),
            source,
        })
    }

    /// A parse error for `rel`, with the full path.
    pub fn parse_error(&self, rel: &str, message: impl std::fmt::Display) -> CollectError {
        CollectError::Parse {
            path: self.path(rel).display().to_string(),
            message: message.to_string(),
        }
    }
}

/// Turns a procfs-core error into a message about the input.
///
/// procfs-core reports malformed input as an "internal error ... please report this procfs
/// bug" carrying its own source location; operators need only the part about the file.
pub(crate) fn procfs_core_message(e: procfs_core::ProcError) -> String {
    match e {
        procfs_core::ProcError::InternalError(e) => {
            let last = e.msg.rsplit('\n').next().unwrap_or_default();
            let msg = last.trim_start_matches("Internal Unwrap Error: ");
            if msg.contains("NoneError") {
                "a line or field is missing".to_string()
            } else {
                format!("malformed field: {msg}")
            }
        }
        other => other.to_string(),
    }
}

/// Per-device counters of a collector's previous successful run, for the rates it reports
/// over the elapsed time (disk busy time, network bytes); `T` holds one device's counters.
#[derive(Debug)]
pub(crate) struct PreviousRun<T> {
    /// When that run happened, and the counters of each device it reported.
    last: Option<(Instant, HashMap<String, T>)>,
}

impl<T> Default for PreviousRun<T> {
    fn default() -> Self {
        PreviousRun { last: None }
    }
}

impl<T> PreviousRun<T> {
    /// The seconds from the previous run to `now` and `device`'s counters then; `None` on
    /// the first run, for a device that run did not report, or when no time has passed.
    pub(crate) fn before(&self, now: Instant, device: &str) -> Option<(f64, &T)> {
        let (at, counters) = self.last.as_ref()?;
        let secs = now.saturating_duration_since(*at).as_secs_f64();
        let before = counters.get(device)?;
        (secs > 0.0).then_some((secs, before))
    }

    /// Remembers this run's `counters`, taken at `now`, in place of the previous run's
    /// (devices that disappeared are forgotten).
    pub(crate) fn replace(&mut self, now: Instant, counters: HashMap<String, T>) {
        self.last = Some((now, counters));
    }

    /// Whether the previous run reported `device`.
    #[cfg(test)]
    pub(crate) fn remembers(&self, device: &str) -> bool {
        self.last
            .as_ref()
            .is_some_and(|(_, counters)| counters.contains_key(device))
    }
}

/// The captured `/proc` snapshot `name` under `tests/fixtures/proc` (`t0`, `t1`,
/// `malformed`), for the collectors' unit tests.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> ProcFs {
    ProcFs::new(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/proc")
            .join(name),
    )
}

/// The error contract of a collector reading `file` under its proc root: on the `malformed`
/// fixture, a parse error naming the file's full path (and no procfs-core internals); under
/// a root that does not exist, a read error naming it. `make` builds the collector on a root.
#[cfg(test)]
pub(crate) fn assert_errors_name_the_file<C: super::Collector>(
    make: impl Fn(ProcFs) -> C,
    file: &str,
) {
    let proc = fixture("malformed");
    let err = make(proc.clone())
        .collect(std::time::Instant::now())
        .unwrap_err();
    assert!(matches!(err, CollectError::Parse { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&proc.path(file).display().to_string()),
        "{err}"
    );
    assert!(!err.to_string().contains("procfs bug"), "{err}");

    let missing = ProcFs::new(Path::new("/nonexistent-lookout-proc"));
    let err = make(missing.clone())
        .collect(std::time::Instant::now())
        .unwrap_err();
    assert!(matches!(err, CollectError::Read { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&missing.path(file).display().to_string()),
        "{err}"
    );
}

/// The schedule the collectors' unit tests build their collectors with.
#[cfg(test)]
pub(crate) fn test_schedule() -> super::Schedule {
    super::Schedule {
        interval: std::time::Duration::from_secs(10),
        timeout: std::time::Duration::from_secs(5),
    }
}

/// Exclusions of every name that one of `patterns` matches whole, anchored as the
/// configuration anchors them.
#[cfg(test)]
pub(crate) fn whole_names(patterns: &[&str]) -> Vec<regex::Regex> {
    patterns
        .iter()
        .map(|p| regex::Regex::new(&format!("^(?:{p})$")).unwrap())
        .collect()
}

/// The value of the first sample named `name`; fails the test when there is none.
#[cfg(test)]
pub(crate) fn value_of(samples: &[super::Sample], name: &str) -> f64 {
    samples
        .iter()
        .find(|s| s.metric.name == name)
        .unwrap()
        .value
}

/// The value of the sample named `name` whose only label is `device`.
#[cfg(test)]
pub(crate) fn device_value(samples: &[super::Sample], name: &str, device: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.metric.name == name && s.labels == [("device", device.to_string())])
        .map(|s| s.value)
}

/// The devices of per-device samples, in order, each once per run of samples.
#[cfg(test)]
pub(crate) fn devices(samples: &[super::Sample]) -> Vec<String> {
    let mut d: Vec<String> = samples.iter().map(|s| s.labels[0].1.clone()).collect();
    d.dedup();
    d
}

/// A proc root of its own for a unit test, under the system temp dir, removed on drop.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct ScratchProc(PathBuf);

#[cfg(test)]
impl ScratchProc {
    /// A new empty directory whose name holds `tag`.
    pub(crate) fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("lookout-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        ScratchProc(dir)
    }

    /// The proc root it is.
    pub(crate) fn proc(&self) -> ProcFs {
        ProcFs::new(&self.0)
    }

    /// Writes `content` to `rel` under it, creating the directories on the way.
    pub(crate) fn write(&self, rel: &str, content: &[u8]) {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

#[cfg(test)]
impl Drop for ScratchProc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
