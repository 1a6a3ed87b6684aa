//! The history on disk: `data_dir/history.bin`, read into the store at start, written every
//! [`SAVE_EVERY`] and when the agent stops (`history.persist`).
//!
//! The snapshot is taken under the store's read lock (the compressed blocks are copied as
//! they are, a few milliseconds for the default 8 MiB) and written outside it, atomically
//! (a temporary file, fsync, rename). A file that cannot be read (corrupt, truncated, from
//! an unknown version) is moved aside to `history.bin.corrupt-<unix seconds>` and the agent
//! starts with an empty history: losing history is bad, not starting is worse.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::catalogue;
use crate::clock::wall_millis;
use crate::history::persist::{self, LoadError, SeriesId};
use crate::sample::Labels;
use crate::state::State;
use crate::store::{SeriesKey, Store, intern};

/// File name inside `data_dir`.
pub const FILE_NAME: &str = "history.bin";
/// Time between snapshots.
pub const SAVE_EVERY: Duration = Duration::from_secs(600);

/// Where the history of `data_dir` lives.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// The snapshot of every series' history, encoded.
pub fn snapshot(store: &Store) -> Vec<u8> {
    let ids: Vec<(SeriesId, &crate::history::SeriesHistory)> = store
        .all()
        .filter(|(_, s)| !s.history.is_empty())
        .map(|(key, s)| {
            let id = SeriesId {
                name: key.name.to_string(),
                part: key.part,
                labels: key
                    .labels
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), v.clone()))
                    .collect(),
            };
            (id, &s.history)
        })
        .collect();
    persist::encode(&ids)
}

/// Reads the snapshot at `path` into `store`: the number of series restored. A missing file
/// is an empty history; one that cannot be read is moved aside (and logged).
pub fn load_into(store: &mut Store, path: &Path) -> usize {
    let entries = match persist::load(path) {
        Ok(Some(entries)) => entries,
        Ok(None) => return 0,
        Err(e @ LoadError::Io { .. }) => {
            tracing::error!(error = %e, "history file cannot be read; starting with an empty history");
            return 0;
        }
        Err(e @ LoadError::Corrupt { .. }) => {
            match crate::quarantine::move_aside(path, wall_millis() / 1000) {
                Ok(aside) => tracing::error!(
                    error = %e,
                    moved_to = %aside.display(),
                    "history file is corrupt; moved aside, starting with an empty history"
                ),
                Err(move_error) => tracing::error!(
                    error = %e,
                    %move_error,
                    "history file is corrupt and cannot be moved aside; starting with an empty history"
                ),
            }
            return 0;
        }
    };
    let mut restored = 0;
    for (id, history) in entries {
        // A metric this build no longer exports is left behind.
        let Some(metric) = catalogue::lookup(&id.name) else {
            continue;
        };
        let labels: Labels = id
            .labels
            .into_iter()
            .map(|(k, v)| {
                let name = metric
                    .labels
                    .iter()
                    .copied()
                    .find(|l| *l == k)
                    .unwrap_or_else(|| intern(&k));
                (name, v)
            })
            .collect();
        let key = SeriesKey {
            name: metric.name,
            labels,
            part: id.part,
        };
        store.restore(key, metric, history);
        restored += 1;
    }
    restored
}

/// Writes the store's history to `path` now, when it is kept and saved
/// (`history.persist`, and a retention over 0): with `persist: false` nothing is written.
pub async fn save(state: &State, path: &Path) {
    if !state.history_persist() {
        return;
    }
    let bytes = {
        let store = state.store();
        if !store.keeps_history() {
            return;
        }
        snapshot(&store)
    };
    let size = bytes.len();
    let target = path.to_path_buf();
    let written = tokio::task::spawn_blocking(move || persist::save(&target, &bytes)).await;
    match written {
        Ok(Ok(())) => tracing::debug!(bytes = size, path = %path.display(), "history saved"),
        Ok(Err(e)) => {
            tracing::error!(error = %e, path = %path.display(), "cannot save the history")
        }
        Err(e) => tracing::error!(error = %e, "history save task failed"),
    }
}

/// Saves the history to `path` every [`SAVE_EVERY`] (while it is kept and saved: a reload
/// can turn `history.persist` on or off) until `stop` turns true.
pub async fn run(state: Arc<State>, path: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(SAVE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: nothing new to save yet.
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => save(&state, &path).await,
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::engine::Engine;
    use crate::sample::Sample;
    use crate::store::HistoryLimits;

    #[tokio::test(start_paused = true)]
    async fn saves_every_ten_minutes_only_while_persist_is_on() {
        let dir = std::env::temp_dir().join(format!("lookout-archive-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = path(&dir);
        let (reload, _requests) = tokio::sync::mpsc::channel(1);
        let state = Arc::new(State::new(
            "h".into(),
            reload,
            Engine::new(Vec::new(), Vec::new()),
        ));
        state.store_mut().set_history(Some(HistoryLimits {
            retention_ms: 86_400_000,
            max_bytes: 1 << 20,
        }));
        let sample = || vec![Sample::new(&catalogue::HISTORY_SERIES, 1.0)];
        state.store_mut().apply("c", sample(), 1_000);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(state.clone(), path.clone(), stopped));

        // history.persist: false: nothing is written, however long it runs.
        state.set_history_persist(false);
        tokio::time::sleep(SAVE_EVERY * 3 + Duration::from_secs(1)).await;
        assert!(!path.exists(), "written with persist off");
        save(&state, &path).await;
        assert!(!path.exists(), "written at stop with persist off");

        // Turned on (a reload): saved at the next tick.
        state.set_history_persist(true);
        state.store_mut().apply("c", sample(), 2_000);
        tokio::time::sleep(SAVE_EVERY).await;
        let saved = persist::load(&path)
            .unwrap()
            .expect("saved with persist on");
        assert_eq!(saved.len(), 1);
        assert_eq!(saved[0].1.len(), 2, "both points");

        stop.send(true).unwrap();
        task.await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
