//! The long-running agent: shared state, start-up, reload and shutdown.
//!
//! `run` resolves the state directory, starts one scheduler task per collector and the HTTP
//! server, then waits for signals: SIGHUP (or `POST /-/reload`) re-reads the configuration
//! file and, if it is valid, restarts the collectors on it (an invalid file is logged with
//! every problem and the running configuration stays); SIGTERM or Ctrl-C stops the
//! collectors and lets in-flight HTTP requests finish.
//!
//! A `data_dir` that refuses writes (full, read-only) stops none of it: the outbox keeps
//! notifications in memory, the alert states stay in the engine and are saved again at every
//! evaluation, and `/readyz` says `degraded` with the reasons until both are written. An
//! unreadable state or outbox file is moved aside at start-up and the agent starts fresh; an
//! outbox locked by another running agent stops the start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::{mpsc, watch};

use crate::archive;
use crate::clock::{AgentTimeline, Clock, now_millis, wall_millis};
use crate::collect::{self, Job};
use crate::collect::{checkins, scheduler};
use crate::config::Problems;
use crate::notify::outbox::{self, Outbox};
use crate::notify::{dispatch, heartbeat};
use crate::rules::LabelSet;
use crate::rules::engine::Engine;
use crate::rules::model::{Rule, Severity};
use crate::rules::persist::{StateFile, StoredInstance};
use crate::settings::{self, Config};
use crate::state::{ReloadRequest, State};
use crate::store::{HistoryLimits, Windows};

/// Where state goes when `/var/lib/lookout` is not writable and no `data_dir` is configured.
const SYSTEM_DATA_DIR: &str = "/var/lib/lookout";

/// Chooses and creates the state directory: the configured one, else `/var/lib/lookout` when
/// writable, else `$XDG_STATE_HOME/lookout` or `~/.local/state/lookout`.
///
/// A configured directory that exists but cannot be written to now (a read-only or full
/// filesystem) is used anyway, with a warning: the agent runs degraded, keeping in memory
/// what it cannot write, until it can.
pub fn resolve_data_dir(configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = configured {
        std::fs::create_dir_all(dir)
            .context("cannot create it")
            .with_context(|| format!("agent.data_dir {}", dir.display()))?;
        if let Err(e) = ensure_writable(dir) {
            tracing::warn!(
                data_dir = %dir.display(),
                error = %format!("{e:#}"),
                "agent.data_dir cannot be written to now; alert states and notifications are kept in memory until it can"
            );
        }
        return Ok(dir.to_path_buf());
    }
    let mut candidates = vec![PathBuf::from(SYSTEM_DATA_DIR)];
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(state).join("lookout"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(home).join(".local/state/lookout"));
    }
    first_writable(&candidates)
}

/// The first of `candidates` that can be created and written to.
fn first_writable(candidates: &[PathBuf]) -> anyhow::Result<PathBuf> {
    let mut errors = Vec::new();
    for dir in candidates {
        match ensure_writable(dir) {
            Ok(()) => return Ok(dir.clone()),
            Err(e) => errors.push(format!("{}: {e:#}", dir.display())),
        }
    }
    anyhow::bail!(
        "no writable state directory ({}); set agent.data_dir",
        errors.join("; ")
    )
}

fn ensure_writable(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).context("cannot create it")?;
    let probe = dir.join(format!(".lookout-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").context("not writable")?;
    std::fs::remove_file(&probe).context("cannot remove the write test file")?;
    Ok(())
}

/// The configuration `run`, `snapshot` and `check` use: `-c FILE`, else the system file if
/// present, else the built-in defaults.
pub fn load_config(path: Option<&Path>) -> Result<Config, Problems> {
    match path {
        Some(p) => settings::load(p),
        None => {
            let system = Path::new(settings::DEFAULT_CONFIG_PATH);
            if system.exists() {
                settings::load(system)
            } else {
                Ok(Config::builtin())
            }
        }
    }
}

/// The configuration and its rules, every problem of both together.
pub fn load_all(path: Option<&Path>) -> Result<(Config, Vec<Rule>), Problems> {
    let config = load_config(path)?;
    let rules = config.load_rules()?;
    Ok((config, rules))
}

/// The rules task of one configuration generation.
struct RulesTask {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RulesTask {
    fn start(config: &Config, state: &Arc<State>, file: Arc<StateFile>) -> RulesTask {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_rules(
            config.clone(),
            state.clone(),
            file,
            Arc::new(AgentTimeline),
            stopped,
        ));
        RulesTask { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The alert states to save: times moved from the timeline to the wall clock (`offset` ms
/// ahead), so that a restart, whose timeline starts at the wall clock, carries on from them.
fn wall_states(snapshot: Vec<StoredInstance>, offset: crate::store::Millis) -> Vec<StoredInstance> {
    snapshot
        .into_iter()
        .map(|s| StoredInstance {
            state: s.state.shifted(offset),
            ..s
        })
        .collect()
}

/// Saves the alert states; a failure is logged (once, until a save succeeds), reported by
/// `/readyz`, and the engine marked dirty so the next evaluation saves again.
async fn save_states(state: &State, file: &Arc<StateFile>, snapshot: Vec<StoredInstance>) {
    let file = file.clone();
    let result = match tokio::task::spawn_blocking(move || file.save(&snapshot)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("alert state save task failed: {e}")),
    };
    match result {
        Ok(()) => {
            if let Some(was) = state.set_state_save_error(None) {
                tracing::info!(was = %was, "alert states saved again");
            }
        }
        Err(e) => {
            if state.set_state_save_error(Some(e.clone())).is_none() {
                tracing::error!(error = %e, "cannot save alert states; kept in memory, saved again at every evaluation");
            } else {
                tracing::debug!(error = %e, "alert states still not saved");
            }
            state.engine().mark_dirty();
        }
    }
}

/// Evaluates the rules on their intervals until `stop`; hands notifications to the log
/// receiver and saves the alert states whenever an instance changes phase or severity.
///
/// Time comes from `clock`, the agent's timeline: a step of the wall clock neither fires nor
/// resolves anything, nor stalls the evaluations.
async fn run_rules(
    config: Config,
    state: Arc<State>,
    file: Arc<StateFile>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let tick = state
        .engine()
        .rules()
        .iter()
        .map(|r| r.interval)
        .min()
        .unwrap_or(config.rules.evaluation_interval);
    // The first evaluation waits until every collector has run once, or one tick at most
    // (a stuck collector must not hold the rules back): on an empty store every rule's data
    // is missing, which would resolve alerts restored from disk or fire NoData at start-up.
    // The heartbeat counts the rules late from here.
    state.rules_started(clock.now(), tick);
    let ready_by = Instant::now() + tick;
    while !state.not_ready().is_empty() && Instant::now() < ready_by {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
            _ = stop.changed() => return,
        }
    }
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // When firing alerts were last re-sent to the alertmanager receivers;
    // `None`: not yet, so the first evaluation re-sends what a restart restored.
    let mut last_refresh: Option<crate::store::Millis> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let started = Instant::now();
        let now = clock.now();
        let host = state.hostname();
        let (notifications, mut samples, snapshot, firing) = {
            let store = state.store();
            let mut engine = state.engine();
            let notifications = engine.evaluate(&store, &host, now);
            let score =
                crate::rules::metrics::score(&config.scalability, &store, engine.health(), now);
            let samples =
                crate::rules::metrics::samples(&engine, &score, started.elapsed().as_secs_f64());
            state.set_score(score);
            let snapshot = engine.take_dirty().then(|| engine.snapshot());
            let firing: Vec<(String, LabelSet, Severity)> = engine
                .firing()
                .map(|(alert, labels, severity)| (alert.into_owned(), labels.clone(), severity))
                .collect();
            (notifications, samples, snapshot, firing)
        };
        // Silences, maintenance windows and inhibition hold back what they mute.
        let wall = now.saturating_add(clock.wall_offset());
        let (notifications, mute_save) = {
            let firing: Vec<_> = firing.iter().map(|(a, l, s)| (a.as_str(), l, *s)).collect();
            let mut muter = state.muter();
            let before = muter.state.clone();
            let pruned = crate::rules::mute::silence::prune(&mut muter.created, wall);
            let sent = muter.filter(notifications, &firing, wall, now);
            samples.extend(crate::rules::metrics::silences(&muter, wall));
            let changed = pruned || muter.state != before;
            (sent, changed.then(|| muter.snapshot()))
        };
        if let Some((Some(dir), created, mute_state)) = mute_save {
            let saved = tokio::task::spawn_blocking(move || {
                crate::rules::mute::silence::save(&dir, &created, &mute_state)
            })
            .await;
            if let Ok(Err(e)) = saved {
                tracing::error!(error = %e, "silences and held notifications not saved to data_dir");
            }
        }
        state
            .store_mut()
            .apply(crate::rules::metrics::OWNER, samples, now);
        state.rules_evaluated(clock.now());
        let history = state.store().history_stats().samples();
        state.store_mut().apply(HISTORY_OWNER, history, now);
        match state.delivery() {
            Some((dispatcher, notify)) => {
                dispatcher.notify(&notifications).await;
                // Alertmanager expires alerts not posted again: re-send every firing instance
                // at the first evaluation once `resend_interval` has passed since the last
                // re-send (queued behind the notifications above; nothing firing: no message).
                if let Some(every) = dispatch::refresh_interval(&notify) {
                    let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
                    if last_refresh.is_none_or(|t| now.saturating_sub(t) >= every) {
                        last_refresh = Some(now);
                        let firing = dispatch::refresh_payloads(&state.engine().active());
                        // Held back by a silence, a window or an inhibition: not re-sent
                        // either (an alert delivered before it was muted still is).
                        let firing = {
                            let muter = state.muter();
                            firing
                                .into_iter()
                                .filter(|a| !muter.state.held.contains_key(&a.fingerprint))
                                .collect()
                        };
                        dispatcher.refresh(firing).await;
                    }
                }
                let delivery_samples = dispatcher.samples(now);
                state
                    .store_mut()
                    .apply(DELIVERY_OWNER, delivery_samples, now);
            }
            None => {
                for n in &notifications {
                    tracing::error!(alert = %n.alert, "delivery is not running; notification not queued");
                }
            }
        }
        if let Some(snapshot) = snapshot {
            save_states(&state, &file, wall_states(snapshot, clock.wall_offset())).await;
        }
    }
}

/// The store owner of delivery metrics.
const DELIVERY_OWNER: &str = "notify";
/// Owner of the history's own series in the store.
const HISTORY_OWNER: &str = "history";

/// Delivery tasks of one configuration generation.
struct DeliveryTasks {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl DeliveryTasks {
    /// Starts delivery for `config`; messages of receivers it no longer has become dead
    /// letters (never silently dropped).
    async fn start(
        config: &Config,
        state: &Arc<State>,
        outbox: &Arc<Outbox>,
    ) -> anyhow::Result<DeliveryTasks> {
        let names: Vec<String> = config
            .notify
            .receivers
            .iter()
            .map(|r| r.name.clone())
            .collect();
        let ob = outbox.clone();
        let forgotten = tokio::task::spawn_blocking(move || -> Result<(), outbox::OutboxError> {
            let now = now_millis();
            for gone in ob
                .receivers_with_pending()?
                .into_iter()
                .filter(|r| !names.contains(r))
            {
                ob.forget_receiver(&gone, now)?;
            }
            Ok(())
        })
        .await
        .context("outbox task")?;
        if let Err(e) = forgotten {
            // The outbox cannot be used now (data_dir full or read-only): delivery starts
            // anyway; those messages stay pending until a later reload moves them.
            tracing::warn!(error = %e, "messages of receivers no longer configured not moved to the dead letters");
        }
        let (stop, stopped) = watch::channel(false);
        let (dispatcher, mut tasks) =
            dispatch::start(&config.notify, outbox.clone(), stopped.clone())?;
        state.set_delivery(Some((dispatcher, config.notify.clone())));
        match &config.notify.heartbeat {
            Some(heartbeat) => {
                let pinger = heartbeat::HttpPinger::new(heartbeat.timeout)
                    .map_err(|e| anyhow::anyhow!("notify.heartbeat: {e}"))?;
                tasks.push(tokio::spawn(heartbeat::run(
                    heartbeat.clone(),
                    Arc::new(pinger),
                    state.clone(),
                    Arc::new(AgentTimeline),
                    stopped,
                )));
            }
            None => state
                .store_mut()
                .mark_absent(heartbeat::OWNER, now_millis()),
        }
        Ok(DeliveryTasks { stop, tasks })
    }

    /// Stops delivery: open groups are queued in the outbox, in-flight sends finish.
    async fn stop(self, state: &State) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        state.set_delivery(None);
    }
}

/// Collector tasks of one configuration generation.
struct Collectors {
    names: Vec<String>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn start_collectors(config: &Config, state: &Arc<State>) -> Collectors {
    let (stop, stopped) = watch::channel(false);
    let context = collect::Context {
        ingest: state.ingest().clone(),
        checkins: state.checkins().clone(),
        processes: state.processes().clone(),
        ..collect::Context::new(&config.agent.proc_root, config.agent.rootfs.clone())
    };
    let jobs = config.collect.build(&context);
    let mut names: Vec<String> = jobs.iter().map(|j| j.name().to_string()).collect();
    // Check-ins are exported by one task of their own, at the moment one turns late.
    let checkins = !config.collect.checkins.is_empty();
    if checkins {
        names.push(checkins::NAME.to_string());
    }
    // Registered before any task runs, so readiness (and the rules' first evaluation, which
    // waits for it) counts every collector of this generation from the start.
    for name in &names {
        state.update_status(name, |_| {});
    }
    let mut tasks = jobs
        .into_iter()
        .map(|job| match job {
            Job::Blocking(c) => {
                tokio::spawn(scheduler::run_collector(c, state.clone(), stopped.clone()))
            }
            Job::Async(c) => tokio::spawn(scheduler::run_async_collector(
                c,
                state.clone(),
                stopped.clone(),
            )),
        })
        .collect::<Vec<_>>();
    if checkins {
        tasks.push(tokio::spawn(checkins::export(
            state.checkins().clone(),
            state.clone(),
            Arc::new(AgentTimeline),
            stopped,
        )));
    }
    Collectors { names, stop, tasks }
}

impl Collectors {
    async fn stop(self) -> Vec<String> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.names
    }
}

/// Runs the agent on `config` and `rules` until SIGTERM or Ctrl-C. `requested` is the `-c`
/// path, if any: a reload resolves the configuration again the same way (`load_all`).
pub async fn run(
    config: Config,
    rules: Vec<Rule>,
    requested: Option<PathBuf>,
) -> anyhow::Result<()> {
    let data_dir = resolve_data_dir(config.agent.data_dir.as_deref())?;
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let state_file = Arc::new(StateFile::new(&data_dir));
    let restored = {
        let file = state_file.clone();
        tokio::task::spawn_blocking(move || file.load_or_quarantine())
            .await
            .unwrap_or_default()
    };
    tracing::info!(
        rules = rules.len(),
        restored = restored.len(),
        "rules loaded"
    );
    let outbox = {
        let path = data_dir.join(outbox::FILE_NAME);
        Arc::new(
            tokio::task::spawn_blocking(move || {
                Outbox::open_or_quarantine(&path, wall_millis() / 1000)
            })
            .await
            .context("outbox task")??,
        )
    };
    let windows = crate::rules::windows(&rules, &config.scalability);
    let engine = Engine::new(rules, restored);
    let state = Arc::new(State::new(config.agent.hostname.clone(), reload_tx, engine));
    state.set_outbox(outbox.clone());
    let mute_file = {
        let dir = data_dir.clone();
        tokio::task::spawn_blocking(move || crate::rules::mute::silence::load(&dir))
            .await
            .unwrap_or_default()
    };
    {
        let mut muter = state.muter();
        muter.created = mute_file.silences;
        muter.state = mute_file.state;
        muter.data_dir = Some(data_dir.clone());
        let engine = state.engine();
        muter.configure(
            &config.notify.silences,
            &config.notify.maintenance,
            &config.notify.inhibit,
            engine.rules(),
        );
    }
    {
        let (checkins, dir) = (state.checkins().clone(), data_dir.clone());
        tokio::task::spawn_blocking(move || checkins.open(&dir, &AgentTimeline))
            .await
            .context("check-in times task")?;
    }
    let history_path = archive::path(&data_dir);
    bound_store(&state, &config, windows, || {
        config
            .history
            .persist
            .then(|| archive::load_into(&mut state.store_mut(), &history_path))
    });
    let (archive_stop, archive_stopped) = watch::channel(false);
    let archive_task = tokio::spawn(archive::run(
        state.clone(),
        history_path.clone(),
        archive_stopped,
    ));
    set_access(&state, &config);
    let listener = crate::api::server::listen(config.agent.listen)
        .with_context(|| format!("cannot listen on {} (agent.listen)", config.agent.listen))?;
    let listen: SocketAddr = listener.local_addr().unwrap_or(config.agent.listen);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        %listen,
        data_dir = %data_dir.display(),
        config = %config.source.as_deref().map_or("built-in defaults".into(), |p| p.display().to_string()),
        host = %config.agent.hostname,
        "lookout started"
    );

    // Delivery first: by the time the API answers, the outbox and dispatcher are up. The
    // collectors too: /readyz counts the ones registered, and must not say ready before.
    let mut delivery = Some(DeliveryTasks::start(&config, &state, &outbox).await?);
    let mut collectors = start_collectors(&config, &state);
    let (server_stop, server_stopped) = watch::channel(false);
    let server = tokio::spawn(crate::api::serve(listener, state.clone(), server_stopped));
    let mut rules_task = Some(RulesTask::start(&config, &state, state_file.clone()));
    let restart_only = (config.agent.listen, config.agent.data_dir.clone());

    let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sighup = signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        let reply = tokio::select! {
            _ = sigterm.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = sighup.recv() => None,
            Some(reply) = reload_rx.recv() => Some(reply),
        };
        let outcome = match reload(requested.as_deref(), &restart_only) {
            Ok((new, rules)) => {
                if let Some(task) = rules_task.take() {
                    task.stop().await;
                }
                if let Some(d) = delivery.take() {
                    d.stop(&state).await;
                }
                match DeliveryTasks::start(&new, &state, &outbox).await {
                    Ok(d) => delivery = Some(d),
                    Err(e) => {
                        // Receivers were validated with the config; this is an outbox failure.
                        tracing::error!(error = %format!("{e:#}"), "cannot restart delivery; stopping");
                        break;
                    }
                }
                let windows = crate::rules::windows(&rules, &new.scalability);
                state.muter().configure(
                    &new.notify.silences,
                    &new.notify.maintenance,
                    &new.notify.inhibit,
                    &rules,
                );
                state.engine().replace_rules(rules);
                bound_store(&state, &new, windows, || None);
                let old = collectors.stop().await;
                state.set_hostname(new.agent.hostname.clone());
                set_access(&state, &new);
                collectors = start_collectors(&new, &state);
                for name in old.iter().filter(|n| !collectors.names.contains(n)) {
                    state.retire(name);
                }
                rules_task = Some(RulesTask::start(&new, &state, state_file.clone()));
                Ok(())
            }
            Err(problems) => Err(problems),
        };
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }
    tracing::info!("stopping");
    if let Some(task) = rules_task.take() {
        task.stop().await;
    }
    if let Some(d) = delivery.take() {
        d.stop(&state).await;
    }
    collectors.stop().await;
    let _ = archive_stop.send(true);
    let _ = archive_task.await;
    archive::save(&state, &history_path).await;
    let held = outbox.held();
    if held > 0 {
        tracing::error!(
            held,
            path = %outbox.path().display(),
            "notifications kept in memory are lost: the outbox could not be written before the agent stopped"
        );
    }
    let snapshot = wall_states(state.engine().snapshot(), AgentTimeline.wall_offset());
    if let Err(e) = state_file.save(&snapshot) {
        tracing::error!(error = %e, "cannot save alert states at shutdown");
    }
    let _ = server_stop.send(true);
    match server.await {
        Ok(result) => result?,
        Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// The store's bounds under `config`: the history's retention and memory cap, whether it is
/// saved, and the windows `windows` names (the metrics the rules read over a range). `load`
/// runs between setting the history's bounds and the windows (it reads the snapshot at
/// start), so that windows are filled from the history restored.
fn bound_store(
    state: &State,
    config: &Config,
    windows: std::collections::HashMap<&'static str, crate::store::Millis>,
    load: impl FnOnce() -> Option<usize>,
) {
    let history = &config.history;
    let limits = (!history.retention.is_zero()).then(|| HistoryLimits {
        retention_ms: i64::try_from(history.retention.as_millis()).unwrap_or(i64::MAX),
        max_bytes: usize::try_from(history.max_memory).unwrap_or(usize::MAX),
    });
    state.store_mut().set_history(limits);
    state.set_history_persist(history.persist && limits.is_some());
    if let Some(restored) = load() {
        tracing::info!(series = restored, "history loaded");
    }
    let metrics = windows.len();
    state
        .store_mut()
        .set_windows(Windows::Only(windows), crate::clock::now_millis());
    tracing::debug!(
        metrics,
        "store windows set for the metrics rules read over a range"
    );
}

/// Who may use the API and how new connections are accepted: the token files and the HTTPS
/// certificate of `config` (checked with it, so a reload with a bad pair never gets here).
fn set_access(state: &State, config: &Config) {
    state.set_api_token_file(config.agent.api_token_file.clone());
    state.set_read_token_file(config.agent.read_token_file.clone());
    if let Some(tls) = &config.agent.tls {
        tracing::info!(cert_file = %tls.cert_file.display(), "HTTPS with this certificate for new connections");
    }
    state.set_tls(config.agent.tls.as_ref().map(|tls| tls.server.clone()));
}

fn signal(kind: tokio::signal::unix::SignalKind) -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).context("cannot install a signal handler")
}

/// Resolves and reads the configuration again, as at start-up; the running one stays if the
/// new one is invalid. `restart_only` holds the running `agent.listen` and `agent.data_dir`.
fn reload(
    requested: Option<&Path>,
    restart_only: &(SocketAddr, Option<PathBuf>),
) -> Result<(Config, Vec<Rule>), Vec<String>> {
    match load_all(requested) {
        Ok((new, rules)) => {
            if (new.agent.listen, new.agent.data_dir.clone()) != *restart_only {
                tracing::warn!(
                    "reload: agent.listen and agent.data_dir take effect only after a restart"
                );
            }
            let source = new.source.as_deref().map_or_else(
                || "built-in defaults".to_string(),
                |p| p.display().to_string(),
            );
            tracing::info!(config = %source, rules = rules.len(), "configuration reloaded");
            Ok((new, rules))
        }
        Err(problems) => {
            let lines: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
            for line in &lines {
                tracing::error!(problem = %line, "reload rejected; the running configuration stays");
            }
            Err(lines)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lookout-agent-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn state_goes_to_the_first_writable_candidate() {
        let dir = scratch("candidates");
        // A directory cannot be created under a regular file, whoever runs the test.
        let blocker = dir.join("file");
        std::fs::write(&blocker, b"").unwrap();
        let unusable = blocker.join("lookout");
        let user = dir.join("user/lookout");
        assert_eq!(
            first_writable(&[unusable.clone(), user.clone()]).unwrap(),
            user
        );
        assert!(user.is_dir());
        let err = first_writable(std::slice::from_ref(&unusable))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&unusable.display().to_string()) && err.contains("agent.data_dir"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_configured_data_dir_that_cannot_be_used_is_an_error_naming_the_key() {
        let dir = scratch("configured");
        let blocker = dir.join("file");
        std::fs::write(&blocker, b"").unwrap();
        let err = resolve_data_dir(Some(&blocker.join("state"))).unwrap_err();
        assert!(format!("{err:#}").contains("agent.data_dir"), "{err:#}");
        let ok = dir.join("state");
        assert_eq!(resolve_data_dir(Some(&ok)).unwrap(), ok);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The rules task on paused Tokio time, under a wall clock that is stepped while it runs.
#[cfg(test)]
mod clock_steps {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::catalogue::{LOAD1, LOAD5, LOAD15};
    use crate::clock::{Source, Timeline};
    use crate::rules::engine::Status;
    use crate::sample::Sample;
    use crate::store::Millis;

    const T0: Millis = 1_700_000_000_000;
    const HOUR: Millis = 3_600_000;

    /// The monotonic clock is paused Tokio time; the wall clock is T0 plus that, plus the
    /// steps the test takes.
    struct Stepped {
        origin: tokio::time::Instant,
        step: AtomicI64,
    }

    impl Source for Arc<Stepped> {
        fn wall(&self) -> Millis {
            T0 + self.mono().as_millis() as Millis + self.step.load(Ordering::SeqCst)
        }

        fn mono(&self) -> Duration {
            self.origin.elapsed()
        }
    }

    /// Every timer a wall-clock step could trip: `for` (Pending), `repeat_interval` (Firing),
    /// `stale_after` (Stale, whose data stops at 30 s) and `clear_for` (Clearing, clear from
    /// 40 s).
    const RULES: &str = "groups:
  - name: t
    interval: 1s
    rules:
      - alert: Firing
        expr: lookout_load1
        warning: \">= 0\"
      - alert: Pending
        expr: lookout_load1
        warning: \">= 0\"
        for: 10m
      - alert: Stale
        expr: lookout_load15
        warning: \">= 0\"
        on_missing: keep
        stale_after: 5m
      - alert: Clearing
        expr: max_over_time(lookout_load5[1m])
        warning: \">= 0.5\"
        clear_for: 10m
";

    /// Runs the rules task for 12 minutes of paused time, the wall clock stepped by
    /// `steps[i].1` at `steps[i].0` seconds; returns the notifications decided (alert,
    /// status, seconds after the start on the timeline) and the states saved last.
    async fn run(steps: &[(u64, Millis)]) -> (Vec<(String, Status, Millis)>, Vec<StoredInstance>) {
        let config = settings::load_str("notify:\n  repeat_interval: 30m\n", "test.yaml").unwrap();
        let mut problems = Vec::new();
        let rules = crate::rules::load::parse_file(
            RULES,
            "rules.yaml",
            &config.rule_defaults(),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let dir = std::env::temp_dir().join(format!(
            "lookout-clock-steps-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = Arc::new(StateFile::new(&dir));
        let (reload, _reloads) = mpsc::channel(1);
        let state = Arc::new(State::new(
            "h".into(),
            reload,
            Engine::new(rules, Vec::new()),
        ));
        let origin = tokio::time::Instant::now();
        let source = Arc::new(Stepped {
            origin,
            step: AtomicI64::new(0),
        });
        let clock: Arc<dyn Clock> = Arc::new(Timeline::new(source.clone()));
        let (stop, stopped) = watch::channel(false);
        let rules_task = tokio::spawn(run_rules(
            config,
            state.clone(),
            file.clone(),
            clock.clone(),
            stopped,
        ));
        // The collector: every second, half a second off the evaluations, on the timeline.
        let collector = {
            let (state, clock) = (state.clone(), clock.clone());
            tokio::spawn(async move {
                for i in 0u64.. {
                    tokio::time::sleep_until(origin + Duration::from_millis(500 + i * 1000)).await;
                    let mut samples = vec![
                        Sample::new(&LOAD1, 1.0),
                        Sample::new(&LOAD5, if i < 40 { 1.0 } else { 0.0 }),
                    ];
                    if i < 30 {
                        samples.push(Sample::new(&LOAD15, 1.0));
                    }
                    state.store_mut().apply("load", samples, clock.now());
                }
            })
        };
        for (at, by) in steps {
            tokio::time::sleep_until(origin + Duration::from_secs(*at)).await;
            source.step.fetch_add(*by, Ordering::SeqCst);
        }
        tokio::time::sleep_until(origin + Duration::from_secs(720)).await;
        stop.send(true).unwrap();
        rules_task.await.unwrap();
        collector.abort();
        let mut decided: Vec<(String, Status, Millis)> = state
            .engine()
            .history(usize::MAX)
            .into_iter()
            .map(|n| (n.alert, n.status, (n.at - T0) / 1000))
            .collect();
        decided.reverse();
        let saved = file.load().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        (decided, saved)
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_of_the_wall_clock_neither_fires_nor_resolves_anything() {
        let (steady, _) = run(&[]).await;
        let expected: Vec<(String, Status, Millis)> = [
            // the first evaluation that sees data (the first samples come at 0.5 s)
            ("Firing", Status::Firing, 1),
            ("Stale", Status::Firing, 1),
            ("Clearing", Status::Firing, 1),
            // 5 min after the evaluation that saw its last value (sampled at 29.5 s)
            ("Stale", Status::Resolved, 330),
            // 10 min after it turned pending
            ("Pending", Status::Firing, 601),
            // 10 min after the last 1 (at 39.5 s) left the 1-minute window
            ("Clearing", Status::Resolved, 700),
        ]
        .into_iter()
        .map(|(a, s, t)| (a.to_string(), s, t))
        .collect();
        assert_eq!(steady, expected, "without steps");

        // One hour forward at 1 min, back at 2 min, and back again at 3 min (an hour behind):
        // the same notifications, at the same times.
        let (stepped, saved) = run(&[(60, HOUR), (120, -HOUR), (180, -HOUR)]).await;
        assert_eq!(stepped, expected, "with the wall clock stepped");

        // What is saved is on the wall clock (an hour behind the timeline at the end), so a
        // restart, whose timeline starts at the wall clock, carries on from it.
        let firing = saved.iter().find(|s| s.alert == "Firing").unwrap();
        assert_eq!(firing.state.firing_since(), Some(T0 + 1_000 - HOUR));
    }
}
