//! Alert states persisted in `data_dir/alerts.json`, so a restart neither re-notifies a firing
//! alert nor forgets to send its resolve.
//!
//! Format: `{"version": 1, "instances": [{"alert", "labels", "state"}, ...]}`; `state` is the
//! [`InstanceState`] as is. [`StateFile::save`] is atomic: it writes `alerts.json.tmp` in the
//! same directory, fsyncs it, renames it over `alerts.json` and fsyncs the directory, so a
//! crash leaves either the old or the new file, never a torn one.
//!
//! [`StateFile::load`] reports a corrupt file or an unknown version as an error naming the
//! file. The agent starts through [`StateFile::load_or_quarantine`] instead, which moves such
//! a file aside to `alerts.json.corrupt-<unix seconds>` (kept for inspection, never deleted),
//! logs an error and starts with no states: losing alert state is bad, not starting at all is
//! worse.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LabelSet;
use super::state::InstanceState;

/// The format version this agent writes and reads.
const VERSION: u64 = 1;
/// File name inside `data_dir`.
const FILE_NAME: &str = "alerts.json";

/// One persisted alert instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredInstance {
    /// Alert name.
    pub alert: String,
    /// The instance's labels.
    pub labels: LabelSet,
    /// Its state machine state.
    pub state: InstanceState,
}

/// Why alert states could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// A filesystem operation failed.
    #[error("alert state file {}: {op}: {source}", .path.display())]
    Io {
        /// What was being done (`read`, `save`, `move aside`...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("alert state file {} is corrupt: {source}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error (with line and column).
        source: serde_json::Error,
    },
    /// The file has a version this agent does not read (written by a newer agent?).
    #[error(
        "alert state file {} has unsupported version {found} (this agent reads version {VERSION})",
        .path.display()
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u64,
    },
    /// The states could not be encoded (not expected to happen: they are plain data).
    #[error("alert state file {}: encoding states: {source}", .path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// The encoder's error.
        source: serde_json::Error,
    },
}

impl PersistError {
    /// Whether the file's content is unusable (as opposed to the file being unreadable).
    fn is_bad_content(&self) -> bool {
        matches!(
            self,
            PersistError::Corrupt { .. } | PersistError::Version { .. }
        )
    }
}

/// The file as written.
#[derive(Serialize)]
struct FileOut<'a> {
    version: u64,
    instances: &'a [StoredInstance],
}

/// Only the version, read first so an unknown version is reported as such and not as
/// whatever shape error its content would give.
#[derive(Deserialize)]
struct FileVersion {
    version: u64,
}

/// The file as read (version 1).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    #[serde(rename = "version")]
    _version: u64,
    instances: Vec<StoredInstance>,
}

/// The alert state file `data_dir/alerts.json`.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state file in `data_dir` (nothing is touched yet).
    pub fn new(data_dir: &Path) -> Self {
        StateFile {
            path: data_dir.join(FILE_NAME),
        }
    }

    /// Path of the state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PersistError {
        let path = path.to_path_buf();
        move |source| PersistError::Io { op, path, source }
    }

    /// Reads the saved states. A missing file is no states (first start); a corrupt file or
    /// an unknown version is an error naming the file.
    pub fn load(&self) -> Result<Vec<StoredInstance>, PersistError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io("read", &self.path)(e)),
        };
        let corrupt = |source| PersistError::Corrupt {
            path: self.path.clone(),
            source,
        };
        let FileVersion { version } = serde_json::from_str(&text).map_err(corrupt)?;
        if version != VERSION {
            return Err(PersistError::Version {
                path: self.path.clone(),
                found: version,
            });
        }
        let file: FileIn = serde_json::from_str(&text).map_err(corrupt)?;
        Ok(file.instances)
    }

    /// Like [`StateFile::load`], but never fails: a corrupt or unknown-version file is
    /// renamed to `alerts.json.corrupt-<unix seconds>` and an unreadable one left in place;
    /// both are logged with `tracing::error!` and give no states, so the agent starts.
    pub fn load_or_quarantine(&self) -> Vec<StoredInstance> {
        match self.load() {
            Ok(instances) => instances,
            Err(err) if err.is_bad_content() => {
                match self.quarantine() {
                    Ok(aside) => tracing::error!(
                        error = %err,
                        moved_to = %aside.display(),
                        "alert states lost: the state file was moved aside; starting with no alert states"
                    ),
                    Err(qerr) => tracing::error!(
                        error = %err,
                        quarantine_error = %qerr,
                        "alert states lost and the state file could not be moved aside; starting with no alert states"
                    ),
                }
                Vec::new()
            }
            Err(err) => {
                tracing::error!(error = %err, "alert states not loaded; starting with no alert states");
                Vec::new()
            }
        }
    }

    /// Moves the state file aside under a name that does not exist yet; returns that name.
    fn quarantine(&self) -> Result<PathBuf, PersistError> {
        let secs = crate::clock::wall_millis() / 1000;
        crate::quarantine::move_aside(&self.path, secs)
            .map_err(self.io("move aside to <name>.corrupt-<unix seconds>", &self.path))
    }

    /// Writes all states atomically (temp file, fsync, rename, fsync of the directory). On
    /// error the previous file is untouched and the temp file removed (best effort).
    pub fn save(&self, instances: &[StoredInstance]) -> Result<(), PersistError> {
        let json = serde_json::to_vec_pretty(&FileOut {
            version: VERSION,
            instances,
        })
        .map_err(|source| PersistError::Encode {
            path: self.path.clone(),
            source,
        })?;
        crate::durable::write_atomic(&self.path, &json).map_err(self.io("save", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::model::{Conditions, OnMissing, Op, Threshold};
    use crate::rules::state;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "lookout-persist-{name}-{}-{:?}",
                std::process::id(),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = set_readonly(&self.0, false);
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn set_readonly(dir: &Path, ro: bool) -> io::Result<()> {
        let mut perms = fs::metadata(dir)?.permissions();
        perms.set_readonly(ro);
        fs::set_permissions(dir, perms)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A firing and a pending instance, built through the real state machine.
    fn sample() -> Vec<StoredInstance> {
        let c = Conditions {
            warning: Some(Threshold {
                op: Op::Gt,
                value: 0.7,
            }),
            critical: Some(Threshold {
                op: Op::Gt,
                value: 0.85,
            }),
            for_ms: 60_000,
            hysteresis: 0.05,
            clear_for_ms: 0,
            on_missing: OnMissing::Keep,
            stale_after_ms: 300_000,
            repeat_interval_ms: 3_600_000,
        };
        let mut firing = state::InstanceState::new();
        state::step(&c, &mut firing, Some(0.9), 0);
        state::step(&c, &mut firing, Some(0.9), 60_000);
        let mut pending = state::InstanceState::new();
        state::step(&c, &mut pending, Some(0.75), 30_000);
        let labels = |m: &str| LabelSet::from([("mountpoint".to_string(), m.to_string())]);
        vec![
            StoredInstance {
                alert: "FsFull".into(),
                labels: labels("/"),
                state: firing,
            },
            StoredInstance {
                alert: "FsFull".into(),
                labels: labels("/var"),
                state: pending,
            },
        ]
    }

    #[test]
    fn round_trip() {
        let dir = TempDir::new("roundtrip");
        let file = StateFile::new(&dir.0);
        let states = sample();
        assert_eq!(states[0].state.phase(), state::Phase::Firing);
        file.save(&states).unwrap();
        assert_eq!(file.load().unwrap(), states);
        // Saving again replaces the content.
        file.save(&states[..1]).unwrap();
        assert_eq!(file.load().unwrap(), states[..1].to_vec());
        let text = fs::read_to_string(file.path()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["instances"][0]["state"]["phase"], "firing");
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = TempDir::new("missing");
        let file = StateFile::new(&dir.0);
        assert_eq!(file.load().unwrap(), Vec::new());
        assert_eq!(file.load_or_quarantine(), Vec::new());
        assert_eq!(names(&dir.0), Vec::<String>::new());
    }

    #[test]
    fn corrupt_or_unknown_version_is_an_error_naming_the_file() {
        // (content, expected words in the message)
        let rows = [
            ("{\"version\": 1, \"instances\": [", "corrupt"), // torn JSON
            ("", "corrupt"),                                  // empty file
            ("not json", "corrupt"),                          // garbage
            ("{\"version\": 1, \"instances\": 3}", "corrupt"), // wrong shape
            ("{\"instances\": []}", "corrupt"),               // no version
            (
                "{\"version\": 2, \"instances\": []}",
                "unsupported version 2",
            ), // newer agent
        ];
        for (content, want) in rows {
            let dir = TempDir::new("corrupt");
            let file = StateFile::new(&dir.0);
            fs::write(file.path(), content).unwrap();
            let msg = file.load().unwrap_err().to_string();
            assert!(msg.contains(want), "{content:?}: {msg}");
            assert!(
                msg.contains(&file.path().display().to_string()),
                "{content:?}: {msg}"
            );
        }
    }

    #[test]
    fn corrupt_file_is_quarantined_not_deleted() {
        let dir = TempDir::new("quarantine");
        let file = StateFile::new(&dir.0);
        fs::write(file.path(), "{\"version\": 1, \"inst").unwrap();
        assert_eq!(file.load_or_quarantine(), Vec::new());
        let files = names(&dir.0);
        assert_eq!(files.len(), 1, "{files:?}");
        let aside = files.first().unwrap();
        assert!(aside.starts_with("alerts.json.corrupt-"), "{aside}");
        assert_eq!(
            fs::read_to_string(dir.0.join(aside)).unwrap(),
            "{\"version\": 1, \"inst"
        );
        // The agent goes on: the next save writes a fresh file beside the quarantined one.
        file.save(&sample()).unwrap();
        assert_eq!(file.load().unwrap(), sample());

        // A second corrupt file in the same second does not overwrite the first one.
        fs::write(file.path(), "garbage").unwrap();
        assert_eq!(file.load_or_quarantine(), Vec::new());
        let quarantined = names(&dir.0)
            .into_iter()
            .filter(|n| n.starts_with("alerts.json.corrupt-"))
            .count();
        assert_eq!(quarantined, 2);
    }

    #[test]
    fn save_leaves_no_temp_file() {
        let dir = TempDir::new("notemp");
        let file = StateFile::new(&dir.0);
        for _ in 0..3 {
            file.save(&sample()).unwrap();
            assert_eq!(names(&dir.0), vec!["alerts.json".to_string()]);
        }
        // A temp file left by a crash is simply overwritten.
        fs::write(dir.0.join("alerts.json.tmp"), "torn").unwrap();
        file.save(&[]).unwrap();
        assert_eq!(names(&dir.0), vec!["alerts.json".to_string()]);
        assert_eq!(file.load().unwrap(), Vec::new());
    }

    /// A save that fails because the temp file cannot be created (its path is a directory)
    /// leaves the previous file intact. Works as root, unlike a read-only directory.
    #[test]
    fn failed_write_keeps_old_file() {
        let dir = TempDir::new("failwrite");
        let file = StateFile::new(&dir.0);
        file.save(&sample()).unwrap();
        let before = fs::read(file.path()).unwrap();
        fs::create_dir(dir.0.join("alerts.json.tmp")).unwrap();
        let err = file.save(&[]).unwrap_err();
        assert!(err.to_string().contains("alerts.json.tmp"), "{err}");
        assert_eq!(fs::read(file.path()).unwrap(), before);
        assert_eq!(file.load().unwrap(), sample());
    }
}
