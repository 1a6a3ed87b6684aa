//! Reading files under a configurable proc root.
//!
//! Only collectors touch the filesystem, through this type; the parsers they call take bytes.
//! Tests and containers point the root elsewhere (`tests/fixtures/proc-*`, `/host/proc`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
