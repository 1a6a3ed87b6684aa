//! The agent's shared state: what the collector tasks, the rules task and the HTTP handlers
//! all read and write. It is built by the agent at start-up and handed to each of them as an
//! `Arc<State>`; it holds no behaviour of its own beyond guarded access.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::clock::now_millis;
use crate::collect::checkins::Checkins;
use crate::collect::ingest::{Ingest, IngestSection};
use crate::collect::processes::Top;
use crate::collect::scheduler::{self, RunStatus, Sink};
use crate::config::Section;
use crate::config::secret::read_secret_file;
use crate::live::Live;
use crate::notify::config::NotifyConfig;
use crate::notify::dispatch::{DRILL_WINDOW, Dispatcher, DrillGate};
use crate::notify::outbox::Outbox;
use crate::rules::engine::Engine;
use crate::rules::mute::Muter;
use crate::rules::score::Score;
use crate::store::{Millis, Retention, Store};

/// State shared by the scheduler tasks and the HTTP handlers.
#[derive(Debug)]
pub struct State {
    store: RwLock<Store>,
    status: Mutex<BTreeMap<String, RunStatus>>,
    hostname: RwLock<String>,
    api_token_file: RwLock<Option<PathBuf>>,
    read_token_file: RwLock<Option<PathBuf>>,
    tls: RwLock<Option<Arc<rustls::ServerConfig>>>,
    started: Instant,
    reload: mpsc::Sender<ReloadRequest>,
    engine: Mutex<Engine>,
    score: Mutex<Option<Score>>,
    delivery: Mutex<Option<(Dispatcher, NotifyConfig)>>,
    ingest: Arc<Ingest>,
    /// Check-ins reported by cron jobs and workers.
    checkins: Arc<Checkins>,
    /// The top processes, kept by the processes collector.
    processes: Arc<Top>,
    /// One fire drill per [`DRILL_WINDOW`], across reloads (which restart delivery).
    drill: DrillGate,
    outbox: Mutex<Option<Arc<Outbox>>>,
    /// Why the alert states could not be saved, until a save succeeds.
    state_save_error: Mutex<Option<String>>,
    /// `history.persist` of the running configuration.
    history_persist: std::sync::atomic::AtomicBool,
    /// When the rules were last evaluated (or their task started), and how often they are.
    rules_pace: Mutex<Option<RulesPace>>,
    /// Tells the live streams that the store changed; bounds them.
    live: Live,
    /// Silences, maintenance windows, inhibition, and what they hold back.
    muter: Mutex<Muter>,
}

/// How the rules task keeps time: its last evaluation and its tick.
#[derive(Debug, Clone, Copy)]
pub struct RulesPace {
    /// The last evaluation, or the task's start (timeline ms).
    pub last: Millis,
    /// Time between evaluations, in ms.
    pub tick_ms: i64,
}

impl RulesPace {
    /// How long without an evaluation makes the rules late: three ticks, and at least a tick
    /// and 5 s (an evaluation can be skipped, or slow, without the pipeline being stuck).
    pub fn late_after(&self) -> i64 {
        self.tick_ms
            .saturating_mul(3)
            .max(self.tick_ms.saturating_add(5_000))
    }
}

/// What the heartbeat reports on (`notify.heartbeat`), and where its figures go.
impl crate::notify::heartbeat::Pipeline for State {
    fn problems(&self) -> Vec<String> {
        self.pipeline_problems(now_millis())
    }

    fn record(&self, samples: Vec<crate::sample::Sample>) {
        self.store_mut()
            .apply(crate::notify::heartbeat::OWNER, samples, now_millis());
    }
}

/// A reload asked for over HTTP, answered with the outcome.
pub type ReloadRequest = tokio::sync::oneshot::Sender<Result<(), Vec<String>>>;

impl State {
    /// Fresh state for `hostname`; reload requests go to `reload`.
    pub fn new(hostname: String, reload: mpsc::Sender<ReloadRequest>, engine: Engine) -> Self {
        let started = Instant::now();
        State {
            store: RwLock::new(Store::new(Retention::default())),
            status: Mutex::new(BTreeMap::new()),
            hostname: RwLock::new(hostname),
            api_token_file: RwLock::new(None),
            read_token_file: RwLock::new(None),
            tls: RwLock::new(None),
            started,
            reload,
            engine: Mutex::new(engine),
            score: Mutex::new(None),
            delivery: Mutex::new(None),
            ingest: Arc::new(Ingest::new(&IngestSection::builtin(), started)),
            checkins: Arc::new(Checkins::default()),
            processes: Arc::new(Top::new()),
            drill: DrillGate::new(DRILL_WINDOW),
            outbox: Mutex::new(None),
            state_save_error: Mutex::new(None),
            history_persist: std::sync::atomic::AtomicBool::new(false),
            rules_pace: Mutex::new(None),
            live: Live::default(),
            muter: Mutex::new(Muter::default()),
        }
    }

    /// Silences, maintenance windows, inhibition rules and what they hold back.
    pub fn muter(&self) -> MutexGuard<'_, Muter> {
        self.muter.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets whether the history is saved to `data_dir` (`history.persist`).
    pub fn set_history_persist(&self, persist: bool) {
        self.history_persist
            .store(persist, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the history is saved to `data_dir`.
    pub fn history_persist(&self) -> bool {
        self.history_persist
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the outbox, whose health `/readyz` reports.
    pub fn set_outbox(&self, outbox: Arc<Outbox>) {
        *self.outbox.lock().unwrap_or_else(|e| e.into_inner()) = Some(outbox);
    }

    /// Records the outcome of the last save of the alert states: `Some(why)` when it failed
    /// (the rules task tries again at every evaluation), `None` when it succeeded. Returns the
    /// error it replaces.
    pub fn set_state_save_error(&self, error: Option<String>) -> Option<String> {
        std::mem::replace(
            &mut *self
                .state_save_error
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            error,
        )
    }

    /// Why the agent is degraded: what it cannot write to `data_dir` and keeps in memory
    /// meanwhile (empty when nothing is wrong). Collection, rules and `/metrics` go on.
    pub fn degraded(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        let outbox = self
            .outbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(why) = outbox.and_then(|o| o.health()) {
            reasons.push(why);
        }
        if let Some(why) = self
            .state_save_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            reasons.push(format!(
                "{why}; the alert states are kept in memory and saved again at every evaluation"
            ));
        }
        reasons
    }

    /// The rules task started at `now` (timeline ms), to evaluate every `tick`: its first
    /// evaluation is due from then on.
    pub fn rules_started(&self, now: Millis, tick: std::time::Duration) {
        *self.rules_pace.lock().unwrap_or_else(|e| e.into_inner()) = Some(RulesPace {
            last: now,
            tick_ms: i64::try_from(tick.as_millis()).unwrap_or(i64::MAX),
        });
    }

    /// The rules were evaluated at `now` (timeline ms).
    pub fn rules_evaluated(&self, now: Millis) {
        if let Some(pace) = self
            .rules_pace
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            pace.last = now;
        }
    }

    /// Why the alerting pipeline is unhealthy at `now` (timeline ms): what [`State::degraded`]
    /// says (`data_dir` refusing the outbox or the alert states), and rules not evaluated
    /// for [`RulesPace::late_after`]. Empty when healthy.
    pub fn pipeline_problems(&self, now: Millis) -> Vec<String> {
        let mut problems = self.degraded();
        let pace = *self.rules_pace.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pace) = pace {
            let since = now.saturating_sub(pace.last);
            if since > pace.late_after() {
                problems.push(format!(
                    "the rules were last evaluated {}s ago (every {}s)",
                    since / 1000,
                    pace.tick_ms as f64 / 1000.0
                ));
            }
        }
        problems
    }

    /// Read access to the store. A poisoned lock (a panic while writing) still yields the data:
    /// the store is valid after every single `apply`.
    pub fn store(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access to the store. The live streams are told at once: the write lock is held
    /// by then, so a stream that reads the store on the signal waits for this write to end.
    pub fn store_mut(&self) -> RwLockWriteGuard<'_, Store> {
        let guard = self.store.write().unwrap_or_else(|e| e.into_inner());
        self.live.changed();
        guard
    }

    /// The live streams' change signal and bounds.
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// The `host` label value.
    pub fn hostname(&self) -> String {
        self.hostname
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the `host` label value (on reload).
    pub fn set_hostname(&self, hostname: String) {
        *self.hostname.write().unwrap_or_else(|e| e.into_inner()) = hostname;
    }

    /// Sets the file holding the API bearer token (`None`: no token needed).
    pub fn set_api_token_file(&self, path: Option<PathBuf>) {
        *self
            .api_token_file
            .write()
            .unwrap_or_else(|e| e.into_inner()) = path;
    }

    /// The API bearer token, read from its file on each call so a rotated token takes effect
    /// at once: `None` when no token is configured, `Some(Err)` when the file is unusable.
    pub fn api_token(&self) -> Option<Result<String, String>> {
        token_from(&self.api_token_file, "API token file")
    }

    /// Sets the file holding the read token (`None`: GET requests need no token).
    pub fn set_read_token_file(&self, path: Option<PathBuf>) {
        *self
            .read_token_file
            .write()
            .unwrap_or_else(|e| e.into_inner()) = path;
    }

    /// The read token, read from its file on each call like [`State::api_token`].
    pub fn read_token(&self) -> Option<Result<String, String>> {
        token_from(&self.read_token_file, "read token file")
    }

    /// Sets the HTTPS server configuration new connections are accepted with (`None`: plain
    /// HTTP). Connections already open keep the one they started with.
    pub fn set_tls(&self, tls: Option<Arc<rustls::ServerConfig>>) {
        *self.tls.write().unwrap_or_else(|e| e.into_inner()) = tls;
    }

    /// The HTTPS server configuration for the next connection; `None`: plain HTTP.
    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The aggregate of pushed request timings.
    pub fn ingest(&self) -> &Arc<Ingest> {
        &self.ingest
    }

    /// The check-ins of cron jobs and workers.
    pub fn checkins(&self) -> &Arc<Checkins> {
        &self.checkins
    }

    /// The top processes.
    pub fn processes(&self) -> &Arc<Top> {
        &self.processes
    }

    /// The rule engine.
    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The score of the last evaluation, if one ran.
    pub fn score(&self) -> Option<Score> {
        self.score.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the score of the last evaluation.
    pub fn set_score(&self, score: Score) {
        *self.score.lock().unwrap_or_else(|e| e.into_inner()) = Some(score);
    }

    /// The running dispatcher and the notify configuration it runs on.
    pub fn delivery(&self) -> Option<(Dispatcher, NotifyConfig)> {
        self.delivery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The gate that lets one fire drill through per [`DRILL_WINDOW`].
    pub fn drill_gate(&self) -> &DrillGate {
        &self.drill
    }

    /// Sets (or clears) the running dispatcher and its configuration.
    pub fn set_delivery(&self, delivery: Option<(Dispatcher, NotifyConfig)>) {
        *self.delivery.lock().unwrap_or_else(|e| e.into_inner()) = delivery;
    }

    /// Forgets collector `name` (a reload removed it): its series become absent and it no
    /// longer counts for readiness.
    pub fn retire(&self, name: &str) {
        let at = now_millis();
        {
            let mut store = self.store_mut();
            store.mark_absent(name, at);
            store.mark_absent(&scheduler::meta_owner(name), at);
        }
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// Updates (creating if needed) the run status of collector `name`.
    pub fn update_status(&self, name: &str, f: impl FnOnce(&mut RunStatus)) {
        let mut map = self.status.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(name.to_string()).or_default());
    }

    /// A copy of every collector's run status.
    pub fn status(&self) -> BTreeMap<String, RunStatus> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Collectors that have not completed a run yet (empty once ready).
    pub fn not_ready(&self) -> Vec<String> {
        self.status()
            .into_iter()
            .filter(|(_, s)| s.runs == 0)
            .map(|(name, _)| name)
            .collect()
    }

    /// Seconds since the agent started.
    pub fn uptime_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Asks the agent to reload its configuration; answers with the problems if it was invalid.
    pub async fn request_reload(&self) -> Result<(), Vec<String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.reload
            .send(tx)
            .await
            .map_err(|_| vec!["the agent is shutting down".to_string()])?;
        rx.await
            .unwrap_or_else(|_| Err(vec!["the agent is shutting down".to_string()]))
    }
}

/// The token in the file `path` names, if one is configured: at most
/// [`MAX_SECRET_BYTES`](crate::config::secret::MAX_SECRET_BYTES), surrounding whitespace
/// trimmed; `Some(Err)` (naming `what` and the file, never its content) when unusable.
fn token_from(path: &RwLock<Option<PathBuf>>, what: &str) -> Option<Result<String, String>> {
    let path = path.read().unwrap_or_else(|e| e.into_inner()).clone()?;
    Some(match read_secret_file(&path) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_string()),
        Ok(_) => Err(format!("{what} {} is empty", path.display())),
        Err(why) => Err(format!("{what}: {why}")),
    })
}

impl Sink for State {
    fn store_mut(&self) -> RwLockWriteGuard<'_, Store> {
        State::store_mut(self)
    }

    fn record_status(&self, name: &str, f: &mut dyn FnMut(&mut RunStatus)) {
        self.update_status(name, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_is_unhealthy_once_the_rules_are_late() {
        let (reload, _) = mpsc::channel(1);
        let state = State::new("h".into(), reload, Engine::new(Vec::new(), Vec::new()));
        const T0: Millis = 1_700_000_000_000;
        // Before the rules task starts, nothing is late.
        assert!(state.pipeline_problems(T0).is_empty());
        state.rules_started(T0, std::time::Duration::from_secs(1));
        // Every second: late after a tick and 5 s without an evaluation.
        assert!(state.pipeline_problems(T0 + 6_000).is_empty());
        let late = state.pipeline_problems(T0 + 6_001);
        assert_eq!(
            late,
            ["the rules were last evaluated 6s ago (every 1s)".to_string()]
        );
        state.rules_evaluated(T0 + 6_500);
        assert!(state.pipeline_problems(T0 + 7_000).is_empty());
        // Every minute: late after three.
        state.rules_started(T0, std::time::Duration::from_secs(60));
        assert!(state.pipeline_problems(T0 + 180_000).is_empty());
        assert_eq!(state.pipeline_problems(T0 + 180_001).len(), 1);
    }
}
