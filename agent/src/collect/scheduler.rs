//! The scheduler: runs every collector on its own fixed interval.
//!
//! Each collector gets a task with a [`tokio::time::interval`] whose missed ticks are
//! skipped, not bunched (a stalled host must not get a burst of runs when it recovers).
//! A run goes to the blocking pool (collectors read files and call `statvfs`) under the
//! collector's timeout. A run that times out is counted as failed and is *not* started again
//! while the stuck one is still running: the next tick waits for it first, so a hung NFS
//! mount costs one blocked thread, not one per tick. Every run records
//! `lookout_collector_up` and `lookout_collector_duration_seconds`; a failed run makes the
//! collector's series absent. One collector failing, hanging or panicking never stops the
//! others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

use super::{AsyncCollector, CollectError, Collector, Sample};
use crate::agent::State;
use crate::catalogue::{COLLECTOR_DURATION_SECONDS, COLLECTOR_UP};
use crate::config::Schedule;
use crate::store::Millis;

/// The wall clock as store time: re-exported for `agent.rs` until it calls
/// [`crate::clock::wall_millis`] itself.
pub use crate::clock::wall_millis;

/// The store owner of a collector's own meta series (`lookout_collector_up`, duration).
pub fn meta_owner(collector: &str) -> String {
    format!("meta:{collector}")
}

/// Outcome of one collector run, as the status API shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunStatus {
    /// Runs completed (successful or not) since start.
    pub runs: u64,
    /// Whether the last run succeeded.
    pub up: bool,
    /// How long the last run took, in seconds.
    pub last_duration_seconds: f64,
    /// When the last run ended (ms since the epoch).
    pub last_run_ms: Millis,
    /// Why the last run failed.
    pub last_error: Option<String>,
}

type RunResult = (
    Box<dyn Collector>,
    Result<Vec<Sample>, CollectError>,
    Duration,
);

/// Runs one collector once on the blocking pool.
fn spawn_run(mut collector: Box<dyn Collector>) -> JoinHandle<RunResult> {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let result = collector.collect(started);
        (collector, result, started.elapsed())
    })
}

/// Records a run's outcome in the store and the status map.
fn record(state: &State, name: &str, result: Result<Vec<Sample>, String>, took: Duration) {
    let at = wall_millis();
    let up = result.is_ok();
    let meta = vec![
        Sample::with_labels(
            &COLLECTOR_UP,
            [("collector", name.to_string())],
            if up { 1.0 } else { 0.0 },
        ),
        Sample::with_labels(
            &COLLECTOR_DURATION_SECONDS,
            [("collector", name.to_string())],
            took.as_secs_f64(),
        ),
    ];
    let error = {
        let mut store = state.store_mut();
        store.apply(&meta_owner(name), meta, at);
        match result {
            Ok(samples) => {
                store.apply(name, samples, at);
                None
            }
            Err(e) => {
                store.mark_absent(name, at);
                Some(e)
            }
        }
    };
    if let Some(e) = &error {
        tracing::warn!(collector = name, error = %e, "collector run failed");
    }
    state.update_status(name, |s| {
        s.runs += 1;
        s.up = up;
        s.last_duration_seconds = took.as_secs_f64();
        s.last_run_ms = at;
        s.last_error = error;
    });
}

/// A ticker every `interval` that skips the ticks it missed.
pub(crate) fn ticker(interval: Duration) -> Interval {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticker
}

/// Waits for the next tick of `ticker`; false once `shutdown` has turned true.
pub(crate) async fn next_tick(ticker: &mut Interval, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = ticker.tick() => {}
        _ = shutdown.changed() => return false,
    }
    !*shutdown.borrow()
}

/// One run of a network collector at `now`, cancelled after its schedule's timeout.
pub async fn collect_async(
    collector: &mut dyn AsyncCollector,
    now: Instant,
) -> Result<Vec<Sample>, String> {
    let timeout = collector.schedule().timeout;
    match tokio::time::timeout(timeout, collector.collect(now)).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

/// Runs a network collector until `shutdown` turns true. Unlike a blocking run, a run that
/// exceeds its timeout is dropped (its future cancelled), so the next tick starts afresh.
/// Its status is registered by the caller, as for [`run_collector`].
pub async fn run_async_collector(
    mut collector: Box<dyn AsyncCollector>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = collector.name().to_string();
    let mut ticker = ticker(collector.schedule().interval);
    while next_tick(&mut ticker, &mut shutdown).await {
        let started = Instant::now();
        let result = collect_async(collector.as_mut(), started).await;
        record(&state, &name, result, started.elapsed());
    }
}

/// Runs `collector` until `shutdown` turns true. The caller registers its status first
/// (`agent::start_collectors`), so readiness counts it before its first tick.
pub async fn run_collector(
    collector: Box<dyn Collector>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = collector.name().to_string();
    let Schedule { interval, timeout } = collector.schedule();
    let mut ticker = ticker(interval);
    let mut idle = Some(collector);
    let mut running: Option<JoinHandle<RunResult>> = None;
    while next_tick(&mut ticker, &mut shutdown).await {
        let started = Instant::now();
        let mut handle = match (idle.take(), running.take()) {
            (_, Some(handle)) => handle,
            (Some(c), None) => spawn_run(c),
            (None, None) => break,
        };
        match tokio::time::timeout(timeout, &mut handle).await {
            Ok(Ok((c, result, took))) => {
                idle = Some(c);
                record(&state, &name, result.map_err(|e| e.to_string()), took);
            }
            Ok(Err(join_error)) => {
                // A collector panicked: it is gone, so this task ends; the others carry on.
                record(
                    &state,
                    &name,
                    Err(format!("collector crashed: {join_error}")),
                    started.elapsed(),
                );
                tracing::error!(collector = %name, "collector crashed and was stopped");
                return;
            }
            Err(_) => {
                record(
                    &state,
                    &name,
                    Err(format!(
                        "timed out after {timeout:?}; the next run waits for this one"
                    )),
                    started.elapsed(),
                );
                running = Some(handle);
            }
        }
    }
}
