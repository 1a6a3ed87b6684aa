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

use std::sync::{Arc, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

use super::Schedule;
use super::{AsyncCollector, CollectError, Collector, Sample};
use crate::catalogue::{COLLECTOR_DURATION_SECONDS, COLLECTOR_UP};
use crate::clock::{now_millis, wall_millis};
use crate::store::{Millis, Store};

/// Where the scheduler records each run: the samples into the store, the outcome into the
/// collector's run status. The agent's shared state is one; a test can bring its own.
pub trait Sink: Send + Sync + 'static {
    /// Write access to the store.
    fn store_mut(&self) -> RwLockWriteGuard<'_, Store>;
    /// Updates (creating if needed) the run status of collector `name`.
    fn record_status(&self, name: &str, f: &mut dyn FnMut(&mut RunStatus));
}

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
    /// Why the target the collector watches (a Redis or PostgreSQL server) did not answer
    /// on the last run. The run itself succeeded: it reported the target down (its `up` 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_error: Option<String>,
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
pub(crate) fn record(
    sink: &dyn Sink,
    name: &str,
    result: Result<Vec<Sample>, String>,
    took: Duration,
) {
    record_outcome(sink, name, result.map(|s| (s, None)), took);
}

/// The outcome of a run as [`record`] takes it, from a collector's result: a
/// [`CollectError::Target`] is a successful run whose target failed.
fn outcome(
    result: Result<Vec<Sample>, CollectError>,
) -> Result<(Vec<Sample>, Option<String>), String> {
    match result {
        Ok(samples) => Ok((samples, None)),
        Err(CollectError::Target { samples, message }) => Ok((samples, Some(message))),
        Err(e) => Err(e.to_string()),
    }
}

/// Records a run's samples, with why its target failed if it did.
fn record_outcome(
    sink: &dyn Sink,
    name: &str,
    result: Result<(Vec<Sample>, Option<String>), String>,
    took: Duration,
) {
    // The store runs on the agent's timeline (what the rules measure windows on); the run
    // status shows the wall-clock time.
    let at = now_millis();
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
    let (error, mut target_error) = {
        let mut store = sink.store_mut();
        store.apply(&meta_owner(name), meta, at);
        match result {
            Ok((samples, target_error)) => {
                store.apply(name, samples, at);
                (None, target_error)
            }
            Err(e) => {
                store.mark_absent(name, at);
                (Some(e), None)
            }
        }
    };
    if let Some(e) = &error {
        tracing::warn!(collector = name, error = %e, "collector run failed");
    }
    let mut error = error;
    sink.record_status(name, &mut |s| {
        s.runs += 1;
        s.up = up;
        s.last_duration_seconds = took.as_secs_f64();
        s.last_run_ms = wall_millis();
        s.last_error = error.take();
        s.target_error = target_error.take();
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
) -> Result<Vec<Sample>, CollectError> {
    let timeout = collector.schedule().timeout;
    match tokio::time::timeout(timeout, collector.collect(now)).await {
        Ok(result) => result,
        Err(_) => Err(CollectError::Other(format!("timed out after {timeout:?}"))),
    }
}

/// Runs a network collector until `shutdown` turns true. Unlike a blocking run, a run that
/// exceeds its timeout is dropped (its future cancelled), so the next tick starts afresh.
/// Its status is registered by the caller, as for [`run_collector`].
pub async fn run_async_collector<S: Sink>(
    mut collector: Box<dyn AsyncCollector>,
    state: Arc<S>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = collector.name().to_string();
    let mut ticker = ticker(collector.schedule().interval);
    while next_tick(&mut ticker, &mut shutdown).await {
        let started = Instant::now();
        let result = collect_async(collector.as_mut(), started).await;
        record_outcome(state.as_ref(), &name, outcome(result), started.elapsed());
    }
}

/// Runs `collector` until `shutdown` turns true. The caller registers its status first
/// (`agent::start_collectors`), so readiness counts it before its first tick.
pub async fn run_collector<S: Sink>(
    collector: Box<dyn Collector>,
    state: Arc<S>,
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
                record_outcome(state.as_ref(), &name, outcome(result), took);
            }
            Ok(Err(join_error)) => {
                // A collector panicked: it is gone, so this task ends; the others carry on.
                record(
                    state.as_ref(),
                    &name,
                    Err(format!("collector crashed: {join_error}")),
                    started.elapsed(),
                );
                tracing::error!(collector = %name, "collector crashed and was stopped");
                return;
            }
            Err(_) => {
                record(
                    state.as_ref(),
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex};

    use std::future::Future;

    use std::collections::BTreeMap;
    use std::sync::RwLock;

    use tokio::sync::mpsc;

    use super::*;

    const NAME: &str = "probe";
    const EVERY_10S: Schedule = Schedule {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
    };

    /// What the scheduler records runs into: a store and the run statuses, as the agent's
    /// shared state holds them.
    #[derive(Default)]
    struct State {
        store: RwLock<Store>,
        status: Mutex<BTreeMap<String, RunStatus>>,
    }

    impl State {
        fn status(&self) -> BTreeMap<String, RunStatus> {
            self.status.lock().unwrap().clone()
        }
    }

    impl Sink for State {
        fn store_mut(&self) -> RwLockWriteGuard<'_, Store> {
            self.store.write().unwrap()
        }

        fn record_status(&self, name: &str, f: &mut dyn FnMut(&mut RunStatus)) {
            f(self
                .status
                .lock()
                .unwrap()
                .entry(name.to_string())
                .or_default());
        }
    }

    fn state() -> Arc<State> {
        Arc::new(State::default())
    }

    /// Holds runs of a [`Probe`] until released.
    #[derive(Default)]
    struct Gate {
        closed: Mutex<bool>,
        opened: Condvar,
    }

    impl Gate {
        fn set(&self, closed: bool) {
            *self.closed.lock().unwrap() = closed;
            self.opened.notify_all();
        }

        fn pass(&self) {
            let mut closed = self.closed.lock().unwrap();
            while *closed {
                closed = self.opened.wait(closed).unwrap();
            }
        }
    }

    /// A blocking collector that reports when each run starts (paused time since `origin`)
    /// and then waits at its gate.
    struct Probe {
        origin: tokio::time::Instant,
        started: mpsc::UnboundedSender<Duration>,
        gate: Arc<Gate>,
    }

    impl Collector for Probe {
        fn name(&self) -> &str {
            NAME
        }

        fn schedule(&self) -> Schedule {
            EVERY_10S
        }

        fn collect(&mut self, _now: Instant) -> Result<Vec<Sample>, CollectError> {
            self.started.send(self.origin.elapsed()).unwrap();
            self.gate.pass();
            Ok(Vec::new())
        }
    }

    /// Opens the gate when dropped, so a failing test does not leave a run blocked (the
    /// runtime waits for its blocking threads when it shuts down).
    struct OpenOnDrop(Arc<Gate>);

    impl Drop for OpenOnDrop {
        fn drop(&mut self) {
            self.0.set(false);
        }
    }

    struct Running {
        state: Arc<State>,
        started: mpsc::UnboundedReceiver<Duration>,
        gate: Arc<Gate>,
        _open: OpenOnDrop,
        stop: watch::Sender<bool>,
        task: JoinHandle<()>,
    }

    /// Starts [`run_collector`] on a [`Probe`]; paused time starts at 0 here.
    fn start() -> Running {
        let state = state();
        let (tx, started) = mpsc::unbounded_channel();
        let gate = Arc::new(Gate::default());
        let probe = Probe {
            origin: tokio::time::Instant::now(),
            started: tx,
            gate: gate.clone(),
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_collector(Box::new(probe), state.clone(), stopped));
        Running {
            state,
            started,
            _open: OpenOnDrop(gate.clone()),
            gate,
            stop,
            task,
        }
    }

    impl Running {
        /// The start of the next run (paused time since the start).
        async fn next_start(&mut self) -> Duration {
            within_a_minute(self.started.recv()).await
        }

        /// The status once `n` runs are recorded. The run itself is on the blocking pool, so
        /// this yields (the paused clock stands still meanwhile) until it is recorded, for up
        /// to 10 s of real time.
        async fn recorded(&self, n: u64) -> RunStatus {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(s) = self.state.status().get(NAME).filter(|s| s.runs >= n) {
                    return s.clone();
                }
                assert!(
                    Instant::now() < deadline,
                    "run {n} never recorded: {:?}",
                    self.state.status()
                );
                tokio::task::yield_now().await;
            }
        }

        async fn stop(self) {
            self.stop.send(true).unwrap();
            self.task.await.unwrap();
        }
    }

    /// What `next` gives within a minute of paused time; the test fails instead of hanging
    /// when it gives nothing.
    async fn within_a_minute<T>(next: impl Future<Output = Option<T>>) -> T {
        match tokio::time::timeout(secs(60), next).await {
            Ok(Some(v)) => v,
            Ok(None) => panic!("the collector is gone"),
            Err(_) => panic!("no run started within a minute"),
        }
    }

    /// Moves the paused clock by `by`, then lets every task that is due run.
    async fn advance(by: Duration) {
        tokio::time::advance(by).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[tokio::test(start_paused = true)]
    async fn runs_start_at_each_interval() {
        let mut r = start();
        let mut starts = Vec::new();
        for _ in 0..4 {
            starts.push(r.next_start().await);
        }
        assert_eq!(starts, [secs(0), secs(10), secs(20), secs(30)]);
        let status = r.recorded(4).await;
        assert!(status.up && status.last_error.is_none(), "{status:?}");
        r.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_missed_while_stalled_are_skipped_not_bunched() {
        let mut r = start();
        assert_eq!(r.next_start().await, secs(0));
        r.recorded(1).await;
        // Nothing runs for 35 s (a stalled host), so the ticks at 10, 20 and 30 are missed.
        tokio::time::advance(secs(35)).await;
        let mut starts = Vec::new();
        for _ in 0..3 {
            starts.push(r.next_start().await);
        }
        // One run on recovery, then back on the 10 s grid. Bunched ticks would give
        // [35, 35, 35], ticks delayed from the recovery [35, 45, 55].
        assert_eq!(starts, [secs(35), secs(40), secs(50)]);
        r.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_past_its_timeout_fails_and_the_next_tick_waits_for_it() {
        let mut r = start();
        r.gate.set(true);
        assert_eq!(r.next_start().await, secs(0));
        // While the run is stuck, the paused clock moves only when the test moves it.
        advance(secs(5)).await;
        let status = r.recorded(1).await;
        assert!(!status.up, "{status:?}");
        assert_eq!(
            status.last_error.as_deref(),
            Some("timed out after 5s; the next run waits for this one")
        );
        // The tick at 10 s waits for the stuck run (another 5 s timeout) instead of starting
        // a second one.
        advance(secs(5)).await;
        advance(secs(5)).await;
        let status = r.recorded(2).await;
        assert!(!status.up, "{status:?}");
        assert!(r.started.try_recv().is_err(), "a second run started");
        // At 20 s the tick waits again; the stuck run ends and its own outcome is recorded.
        advance(secs(5)).await;
        r.gate.set(false);
        let status = r.recorded(3).await;
        assert!(status.up && status.last_error.is_none(), "{status:?}");
        assert_eq!(status.runs, 3);
        // The next run starts at the next tick, not at once.
        assert_eq!(r.next_start().await, secs(30));
        r.stop().await;
    }

    /// An async collector whose first run never ends; it counts the runs in flight.
    struct Hanging {
        origin: tokio::time::Instant,
        started: mpsc::UnboundedSender<(Duration, usize)>,
        in_flight: Arc<AtomicUsize>,
        runs: usize,
    }

    /// Counts a run as in flight until it ends or is dropped.
    struct InFlight(Arc<AtomicUsize>);

    impl Drop for InFlight {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl AsyncCollector for Hanging {
        fn name(&self) -> &str {
            NAME
        }

        fn schedule(&self) -> Schedule {
            EVERY_10S
        }

        fn collect<'a>(
            &'a mut self,
            _now: Instant,
        ) -> super::super::BoxFuture<'a, Result<Vec<Sample>, CollectError>> {
            self.runs += 1;
            let first = self.runs == 1;
            let before = self.in_flight.fetch_add(1, Ordering::SeqCst);
            let guard = InFlight(self.in_flight.clone());
            self.started.send((self.origin.elapsed(), before)).unwrap();
            Box::pin(async move {
                let _guard = guard;
                if first {
                    std::future::pending::<()>().await;
                }
                Ok(Vec::new())
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_async_run_past_its_timeout_is_cancelled_and_the_next_tick_starts_afresh() {
        let state = state();
        let (tx, mut started) = mpsc::unbounded_channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let hanging = Hanging {
            origin: tokio::time::Instant::now(),
            started: tx,
            in_flight: in_flight.clone(),
            runs: 0,
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_async_collector(
            Box::new(hanging),
            state.clone(),
            stopped,
        ));
        assert_eq!(within_a_minute(started.recv()).await, (secs(0), 0));
        // The second run starts on the next tick with the first one gone (dropped at its
        // timeout), not still pending beside it.
        assert_eq!(within_a_minute(started.recv()).await, (secs(10), 0));
        tokio::task::yield_now().await;
        let status = state.status()[NAME].clone();
        assert_eq!(status.runs, 2, "{status:?}");
        assert!(status.up, "{status:?}");
        assert_eq!(in_flight.load(Ordering::SeqCst), 0);
        stop.send(true).unwrap();
        task.await.unwrap();
    }

    /// A network collector whose server is down on every run.
    struct Down;

    impl AsyncCollector for Down {
        fn name(&self) -> &str {
            NAME
        }

        fn schedule(&self) -> Schedule {
            EVERY_10S
        }

        fn collect<'a>(
            &'a mut self,
            _now: Instant,
        ) -> super::super::BoxFuture<'a, Result<Vec<Sample>, CollectError>> {
            Box::pin(async {
                Err(CollectError::Target {
                    samples: vec![Sample::with_labels(
                        &crate::catalogue::REDIS_UP,
                        [
                            ("target", "cache".to_string()),
                            ("role", "unknown".to_string()),
                        ],
                        0.0,
                    )],
                    message: "connection refused".into(),
                })
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_down_is_stored_as_data_and_its_reason_kept() {
        let state = state();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_async_collector(Box::new(Down), state.clone(), stopped));
        within_a_minute(async {
            loop {
                if state.status().get(NAME).is_some_and(|s| s.runs > 0) {
                    return Some(());
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        let status = state.status()[NAME].clone();
        assert!(status.up, "the run succeeded: {status:?}");
        assert_eq!(status.last_error, None);
        assert_eq!(status.target_error.as_deref(), Some("connection refused"));
        let up: Vec<f64> = state
            .store
            .read()
            .unwrap()
            .present()
            .filter(|(k, _)| k.name == "lookout_redis_up" || k.name == "lookout_collector_up")
            .map(|(_, s)| s.latest.1)
            .collect();
        assert_eq!(up, vec![1.0, 0.0], "collector up, target down");
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}
