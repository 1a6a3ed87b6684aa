//! Silences: matchers and a time range during which matching alerts are not notified.
//!
//! Fixed ones come from the configuration (`notify.silences`); others are created and
//! expired through the API (`POST/GET/DELETE /api/v1/silences`, `lookout silence`) and kept
//! in `data_dir/silences.json` with what muting holds back ([`MuteFile`]), written
//! atomically, so both survive a restart. Expiring a silence ends it now; expired silences
//! stay listed for [`EXPIRED_KEPT_MS`], then go.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::MuteState;
use super::matchers::Matchers;
use crate::store::Millis;

/// Most silences kept at once (configured and created, expired ones included).
pub const MAX_SILENCES: usize = 1000;
/// How long an expired silence stays listed (24 h).
pub const EXPIRED_KEPT_MS: Millis = 24 * 3600 * 1000;
/// Longest comment or author accepted.
pub const MAX_TEXT: usize = 1024;
/// Longest silence accepted (a year).
pub const MAX_DURATION_MS: Millis = 366 * 24 * 3600 * 1000;

/// One silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Its id: `cfg-<n>` for a configured one, random hex for a created one.
    pub id: String,
    /// `label -> pattern`, as written.
    pub matchers: BTreeMap<String, String>,
    /// When it starts (ms since the epoch).
    pub starts_ms: Millis,
    /// When it ends (ms since the epoch).
    pub ends_ms: Millis,
    /// Why.
    pub comment: String,
    /// Who.
    pub created_by: String,
    /// When it was made (ms since the epoch).
    pub created_ms: Millis,
    /// The matchers, compiled.
    #[serde(skip)]
    pub compiled: Matchers,
}

/// Where a silence stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Not started yet.
    Pending,
    /// Muting now.
    Active,
    /// Ended.
    Expired,
}

impl SilenceState {
    /// The label value of `lookout_silences{state}`.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

impl Silence {
    /// A silence checked: matchers that compile, a range that ends after it starts and
    /// lasts at most a year, texts of bounded length. The error says which and why.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        matchers: BTreeMap<String, String>,
        starts_ms: Millis,
        ends_ms: Millis,
        comment: String,
        created_by: String,
        created_ms: Millis,
    ) -> Result<Silence, String> {
        let compiled = Matchers::parse(&matchers, false).map_err(|e| format!("matchers: {e}"))?;
        if ends_ms <= starts_ms {
            return Err("ends must be after starts".into());
        }
        if ends_ms - starts_ms > MAX_DURATION_MS {
            return Err("a silence lasts at most a year".into());
        }
        if comment.len() > MAX_TEXT || created_by.len() > MAX_TEXT {
            return Err(format!(
                "comment and created_by are at most {MAX_TEXT} bytes"
            ));
        }
        Ok(Silence {
            id,
            matchers,
            starts_ms,
            ends_ms,
            comment,
            created_by,
            created_ms,
            compiled,
        })
    }

    /// Whether it mutes at `now`.
    pub fn is_active(&self, now: Millis) -> bool {
        self.starts_ms <= now && now < self.ends_ms
    }

    /// Where it stands at `now`.
    pub fn state(&self, now: Millis) -> SilenceState {
        if now < self.starts_ms {
            SilenceState::Pending
        } else if now < self.ends_ms {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }
}

/// A new silence id: 16 hex digits.
pub fn new_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// The silences created through the API and the muting state, as `data_dir/silences.json`
/// holds them.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct MuteFile {
    /// The file's format version.
    pub version: u32,
    /// Silences created through the API.
    pub silences: Vec<Silence>,
    /// What is held and what was delivered.
    pub state: MuteState,
}

/// The file format version written.
pub const VERSION: u32 = 1;

/// `data_dir/silences.json`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("silences.json")
}

/// Reads the file; a missing file is an empty one. A file that does not read is moved
/// aside (`.corrupt-<unix seconds>`) and logged, and the agent starts without it.
pub fn load(data_dir: &Path) -> MuteFile {
    let file = path(data_dir);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return MuteFile::default(),
        Err(e) => {
            tracing::error!(path = %file.display(), error = %e, "silences not loaded");
            return MuteFile::default();
        }
    };
    match serde_json::from_str::<MuteFile>(&text) {
        Ok(mut loaded) if loaded.version == VERSION => {
            loaded
                .silences
                .retain_mut(|s| match Matchers::parse(&s.matchers, false) {
                    Ok(m) => {
                        s.compiled = m;
                        true
                    }
                    Err(e) => {
                        tracing::error!(id = %s.id, error = %e, "a saved silence is dropped");
                        false
                    }
                });
            loaded
        }
        other => {
            let why = match other {
                Ok(f) => format!("unknown version {}", f.version),
                Err(e) => e.to_string(),
            };
            let secs = crate::clock::wall_millis() / 1000;
            let aside = crate::quarantine::move_aside(&file, secs);
            tracing::error!(path = %file.display(), error = %why, moved_to = ?aside.ok(), "silences file unreadable; starting without its silences");
            MuteFile::default()
        }
    }
}

/// Writes the file atomically (see [`crate::durable::write_atomic`]), making `data_dir`
/// first when it does not exist yet.
pub fn save(data_dir: &Path, silences: &[Silence], state: &MuteState) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(&MuteFileOut {
        version: VERSION,
        silences,
        state,
    })
    .map_err(std::io::Error::other)?;
    std::fs::create_dir_all(data_dir)?;
    crate::durable::write_atomic(&path(data_dir), &json)
}

#[derive(Serialize)]
struct MuteFileOut<'a> {
    version: u32,
    silences: &'a [Silence],
    state: &'a MuteState,
}

/// Drops the silences expired for longer than [`EXPIRED_KEPT_MS`] at `now`; whether any went.
pub fn prune(silences: &mut Vec<Silence>, now: Millis) -> bool {
    let before = silences.len();
    silences.retain(|s| now.saturating_sub(s.ends_ms) < EXPIRED_KEPT_MS);
    silences.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(starts: Millis, ends: Millis) -> Silence {
        Silence::new(
            "a".into(),
            BTreeMap::from([("alert".to_string(), "HostCpuHigh".to_string())]),
            starts,
            ends,
            "deploy".into(),
            "ops".into(),
            0,
        )
        .unwrap()
    }

    #[test]
    fn a_silence_is_pending_then_active_then_expired() {
        let s = silence(1000, 2000);
        assert_eq!(s.state(999), SilenceState::Pending);
        assert!(!s.is_active(999));
        assert_eq!(s.state(1000), SilenceState::Active);
        assert!(s.is_active(1999));
        assert_eq!(s.state(2000), SilenceState::Expired);
        assert!(!s.is_active(2000));
    }

    #[test]
    fn bad_silences_are_refused_with_the_reason() {
        let m = BTreeMap::from([("alert".to_string(), "A".to_string())]);
        let new = |m: BTreeMap<String, String>, s, e, c: &str| {
            Silence::new("x".into(), m, s, e, c.into(), String::new(), 0)
        };
        assert!(new(m.clone(), 10, 10, "").unwrap_err().contains("after"));
        assert!(
            new(m.clone(), 0, MAX_DURATION_MS + 1, "")
                .unwrap_err()
                .contains("year")
        );
        assert!(
            new(BTreeMap::new(), 0, 1, "")
                .unwrap_err()
                .contains("matchers")
        );
        assert!(
            new(m, 0, 1, &"c".repeat(MAX_TEXT + 1))
                .unwrap_err()
                .contains("comment")
        );
    }

    #[test]
    fn the_file_round_trips_and_a_corrupt_one_is_moved_aside() {
        let dir = std::env::temp_dir().join(format!("lookout-silences-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(load(&dir).silences.is_empty());
        let s = silence(1000, 2000);
        save(&dir, std::slice::from_ref(&s), &MuteState::default()).unwrap();
        let loaded = load(&dir);
        assert_eq!(loaded.silences, vec![s.clone()]);
        assert!(
            loaded.silences[0]
                .compiled
                .matches("HostCpuHigh", &BTreeMap::new(), "warning")
        );
        std::fs::write(path(&dir), "{ not json").unwrap();
        assert!(load(&dir).silences.is_empty());
        assert!(!path(&dir).exists(), "moved aside");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn expired_silences_go_after_a_day() {
        let mut all = vec![silence(0, 1000), silence(0, EXPIRED_KEPT_MS * 3)];
        assert!(!prune(&mut all, 1000 + EXPIRED_KEPT_MS - 1));
        assert!(prune(&mut all, 1000 + EXPIRED_KEPT_MS));
        assert_eq!(all.len(), 1);
    }
}
