//! The dispatcher: from decided notifications to delivered messages.
//!
//! - The **intake** routes each notification to its receivers ([`super::route`]), drops
//!   resolved ones for receivers with `send_resolved: false`, groups them per receiver over
//!   `group_wait` ([`super::group`]), and writes each due message to the [`Outbox`] — one
//!   fsynced commit — before any send is attempted.
//! - One **worker** per receiver delivers that receiver's messages strictly oldest first:
//!   it waits for the message's next attempt time, for the circuit breaker and for the rate
//!   limit, sends with the receiver's own timeout, and records the outcome: delivered,
//!   retry after a backoff, or dead (a permanent error, or `give_up_after` passed).
//! - **Rate-limit overflow folds into one digest**: when the receiver's
//!   rate limit is reached, the worker folds the receiver's waiting messages into the oldest
//!   one never attempted ([`Outbox::fold_pending`]: alerts appended in order, `folded`
//!   counting the messages merged in, counted as
//!   `lookout_notifications_total{result="folded"}`), then waits for the free slot: one
//!   digest goes out instead of a burst, nothing is dropped.
//! - **Alertmanager re-sends**: Alertmanager resolves an alert by itself
//!   at its `endsAt` unless the client posts it again, as Prometheus does. The rule loop calls
//!   [`Dispatcher::refresh`] with every firing instance ([`refresh_payloads`]) at the first
//!   evaluation once [`refresh_interval`] (the shortest `resend_interval` of the alertmanager
//!   receivers) has passed since the last re-send, and at its first evaluation;
//!   each is routed like a notification but only to alertmanager receivers
//!   ([`refresh_targets`]), through the same intake, grouping and outbox, so a re-send
//!   stays behind whatever was queued before it for that receiver (never ahead of a resolve).
//! - Messages still in the outbox when the agent stops (or is killed) are delivered after the
//!   next start; every message carries a stable id that webhooks send as `Idempotency-Key`.
//! - **A disk that refuses writes** stops nothing here: the intake hands messages to
//!   [`Outbox::enqueue_or_hold`], which keeps what it cannot write in memory, and tries again
//!   (writing them out, or with nothing held, probing with an empty commit) on a backoff from
//!   [`RETRY_FIRST`] to [`RETRY_MAX`] until a write succeeds; the workers wake then. A worker
//!   that cannot read the outbox, or cannot record an outcome, waits on the same backoff and
//!   tries again; an outcome not recorded yet is kept and recorded first, so a delivered
//!   message is not sent again meanwhile.
//! - Timing runs on the agent's timeline ([`crate::clock::now_millis`]), which a step of the
//!   wall clock does not move; the timestamps that leave the agent (an alert's start and end,
//!   a message's creation) are turned into wall-clock time on the way in.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use super::config::{NotifyConfig, ReceiverConfig, ReceiverKind};
use super::group::Grouper;
use super::outbox::{Hold, Outbox, Outcome};
use super::policy::{Breaker, BreakerState, MAX_RETRY_AFTER, RateLimit, give_up, retry_delay};
use super::route::{receivers_for, routing_labels};
use super::{AlertPayload, Message, Receiver, SendError, fingerprint};
use crate::catalogue::{
    NOTIFICATIONS_TOTAL, OUTBOX_OLDEST_AGE_SECONDS, OUTBOX_PENDING, OUTBOX_WRITE_ERRORS_TOTAL,
    RECEIVER_CIRCUIT_STATE,
};
use crate::clock::{now_millis, wall_millis, wall_offset_millis};
use crate::rules::LabelSet;
use crate::rules::engine::{ActiveAlert, Notification, Status};
use crate::rules::state::{Kind, Phase};
use crate::sample::Sample;
use crate::store::Millis;

/// Builds the receivers of a configuration.
pub fn build_receivers(receivers: &[ReceiverConfig]) -> Result<Vec<Arc<dyn Receiver>>, String> {
    receivers.iter().map(|r| r.kind.build(&r.name)).collect()
}

/// A notification as receivers format it.
pub fn payload(n: &Notification) -> AlertPayload {
    let mut annotations = BTreeMap::new();
    if !n.summary.is_empty() {
        annotations.insert("summary".to_string(), n.summary.clone());
    }
    if !n.description.is_empty() {
        annotations.insert("description".to_string(), n.description.clone());
    }
    AlertPayload {
        alert: n.alert.clone(),
        status: n.status,
        kind: n.kind,
        severity: n.severity,
        labels: n.labels.clone(),
        annotations,
        value: n.value,
        starts_at: n.starts_at,
        ends_at: (n.status == Status::Resolved).then_some(n.at),
        fingerprint: fingerprint(&n.alert, &n.labels),
    }
}

/// The receivers a re-send of a firing alert goes to: those its routing labels (`labels`
/// with `alertname` and `severity`, see [`routing_labels`]) are routed to, restricted to
/// alertmanager receivers, in route order. Other kinds are notified again by the engine's
/// `repeat_interval` only.
pub fn refresh_targets(config: &NotifyConfig, labels: &LabelSet) -> Vec<String> {
    receivers_for(&config.route, labels)
        .into_iter()
        .filter(|name| {
            config
                .receivers
                .iter()
                .any(|r| r.name == *name && matches!(r.kind, ReceiverKind::Alertmanager(_)))
        })
        .map(String::from)
        .collect()
}

/// How often firing alerts must be re-sent: the shortest `resend_interval` of the
/// configuration's alertmanager receivers; `None` without any.
pub fn refresh_interval(config: &NotifyConfig) -> Option<Duration> {
    config
        .receivers
        .iter()
        .filter_map(|r| match &r.kind {
            ReceiverKind::Alertmanager(am) => Some(am.resend_interval),
            _ => None,
        })
        .min()
}

/// The re-sends of the firing instances among `active` (the engine's
/// [`active`](crate::rules::engine::Engine::active) list; pending ones are skipped): status
/// firing, kind [`Kind::Repeat`], starting when the instance started firing, with its current
/// severity and last value.
///
/// Annotations are left empty here: the intake fills in those of the alert's last firing
/// notification it handled (Alertmanager replaces an alert's annotations with each post), so
/// they are empty only for alerts not notified since delivery started.
pub fn refresh_payloads(active: &[ActiveAlert]) -> Vec<AlertPayload> {
    active
        .iter()
        .filter(|a| a.state == Phase::Firing)
        .filter_map(|a| {
            let (severity, starts_at) = (a.severity?, a.firing_since?);
            Some(AlertPayload {
                alert: a.alert.clone(),
                status: Status::Firing,
                kind: Kind::Repeat,
                severity,
                labels: a.labels.clone(),
                annotations: BTreeMap::new(),
                value: a.value,
                starts_at,
                ends_at: None,
                fingerprint: fingerprint(&a.alert, &a.labels),
            })
        })
        .collect()
}

/// How an alert handed to the intake is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// A notification: the routes decide.
    Route,
    /// A fire drill: every receiver, bypassing routes.
    Test,
    /// A re-send of a firing alert: the routes, alertmanager receivers only.
    Refresh,
}

/// Delivery counters and circuit states, for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    results: BTreeMap<(String, &'static str), u64>,
    circuits: BTreeMap<String, BreakerState>,
}

/// What the rest of the agent holds: a way to hand over notifications and read delivery
/// metrics.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    intake: mpsc::Sender<Vec<(AlertPayload, Via)>>,
    outbox: Arc<Outbox>,
    counters: Arc<Mutex<Counters>>,
    /// Each receiver's worker wakes on its entry (after messages were queued for it).
    wakes: Arc<BTreeMap<String, Arc<Notify>>>,
    wall_offset: WallOffset,
}

/// First wait before the outbox is tried again after a failure.
pub const RETRY_FIRST: Duration = Duration::from_millis(500);
/// Longest wait between two tries of an outbox that keeps failing.
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// The next wait of the outbox retry backoff after `current`: doubled, at most [`RETRY_MAX`].
fn next_retry(current: Duration) -> Duration {
    current.saturating_mul(2).min(RETRY_MAX)
}

/// Errors starting delivery.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The outbox could not be opened.
    #[error("outbox: {0}")]
    Outbox(String),
    /// A receiver could not be built.
    #[error("{0}")]
    Receiver(String),
}

impl Dispatcher {
    /// Hands the notifications of one evaluation to delivery (never blocks the caller for
    /// long: the intake queue is bounded and applies back-pressure only when it is full).
    pub async fn notify(&self, notifications: &[Notification]) {
        if notifications.is_empty() {
            return;
        }
        let offset = (self.wall_offset)();
        let batch = notifications
            .iter()
            .map(|n| (to_wall(payload(n), offset), Via::Route))
            .collect();
        if self.intake.send(batch).await.is_err() {
            tracing::error!("delivery is stopped; notifications not queued");
        }
    }

    /// Re-sends `firing` alerts (built by [`refresh_payloads`]) to the alertmanager receivers
    /// their routes lead to ([`refresh_targets`]), so Alertmanager does not expire them. They
    /// take the same path as notifications (intake, grouping, outbox), queued behind every
    /// message handed over before: a re-send never overtakes a resolve already queued.
    /// Alerts routed to no alertmanager receiver are skipped (not counted as unrouted).
    pub async fn refresh(&self, firing: Vec<AlertPayload>) {
        if firing.is_empty() {
            return;
        }
        let offset = (self.wall_offset)();
        let batch = firing
            .into_iter()
            .map(|a| (to_wall(a, offset), Via::Refresh))
            .collect();
        if self.intake.send(batch).await.is_err() {
            tracing::error!("delivery is stopped; alert re-sends not queued");
        }
    }

    /// Queues a fire-drill alert for every receiver (`test: true`), bypassing routes.
    pub async fn test_alert(&self, alert: AlertPayload) {
        let _ = self.intake.send(vec![(alert, Via::Test)]).await;
    }

    /// The outbox, for the API.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Writes `messages` to the outbox at `now` (one durable commit) and wakes their
    /// receivers' workers: from there they are delivered like any other message, under the
    /// receiver's retry, circuit breaker and rate limit, and end as dead letters if they fail
    /// for good. For the fire drill ([`drill_messages`]).
    pub async fn enqueue(&self, messages: Vec<Message>, now: Millis) -> Result<(), String> {
        let receivers: Vec<String> = messages.iter().map(|m| m.receiver.clone()).collect();
        let outbox = self.outbox.clone();
        match blocking(move || outbox.enqueue(&messages, now)).await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the outbox task failed".into()),
        }
        for r in receivers {
            if let Some(w) = self.wakes.get(&r) {
                w.notify_one();
            }
        }
        Ok(())
    }

    /// `lookout_notifications_total`, the outbox gauges and circuit states.
    pub fn samples(&self, now: Millis) -> Vec<Sample> {
        let mut out = Vec::new();
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        for ((receiver, result), n) in &counters.results {
            out.push(Sample::with_labels(
                &NOTIFICATIONS_TOTAL,
                [
                    ("receiver", receiver.clone()),
                    ("result", (*result).to_string()),
                ],
                *n as f64,
            ));
        }
        for (receiver, state) in &counters.circuits {
            let v = match state {
                BreakerState::Closed => 0.0,
                BreakerState::HalfOpen => 1.0,
                BreakerState::Open { .. } => 2.0,
            };
            out.push(Sample::with_labels(
                &RECEIVER_CIRCUIT_STATE,
                [("receiver", receiver.clone())],
                v,
            ));
        }
        drop(counters);
        let stats = self.outbox.stats_or_last_known(now);
        out.push(Sample::new(&OUTBOX_PENDING, stats.pending as f64));
        out.push(Sample::new(
            &OUTBOX_OLDEST_AGE_SECONDS,
            stats.oldest_age_seconds,
        ));
        out.push(Sample::new(
            &OUTBOX_WRITE_ERRORS_TOTAL,
            self.outbox.write_errors() as f64,
        ));
        out
    }
}

/// `alert` with its times (on the agent's timeline) turned into wall-clock time, the wall
/// clock being `offset` ms ahead of the timeline.
fn to_wall(mut alert: AlertPayload, offset: Millis) -> AlertPayload {
    alert.starts_at = alert.starts_at.saturating_add(offset);
    alert.ends_at = alert.ends_at.map(|t| t.saturating_add(offset));
    alert
}

fn count(counters: &Mutex<Counters>, receiver: &str, result: &'static str) {
    count_n(counters, receiver, result, 1);
}

fn count_n(counters: &Mutex<Counters>, receiver: &str, result: &'static str, n: u64) {
    let mut c = counters.lock().unwrap_or_else(|e| e.into_inner());
    *c.results.entry((receiver.to_string(), result)).or_default() += n;
}

/// Runs blocking outbox work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "outbox task failed");
            None
        }
    }
}

/// Where delivery reads the time, in ms since the epoch: the agent's timeline in the agent;
/// in the tests, a clock that follows paused Tokio time, so backoff, grouping, circuit and
/// rate-limit timing can be checked exactly.
type Clock = Arc<dyn Fn() -> Millis + Send + Sync>;

/// How far the wall clock is ahead of [`Clock`], in ms ([`wall_offset_millis`] in the agent).
type WallOffset = fn() -> Millis;

/// Starts delivery for `config` with the outbox at `outbox_path`; runs until `stop`.
pub fn start(
    config: &NotifyConfig,
    outbox: Arc<Outbox>,
    stop: watch::Receiver<bool>,
) -> Result<(Dispatcher, Vec<tokio::task::JoinHandle<()>>), StartError> {
    let receivers = build_receivers(&config.receivers).map_err(StartError::Receiver)?;
    Ok(start_with(
        config,
        receivers,
        outbox,
        stop,
        Arc::new(now_millis),
        wall_offset_millis,
    ))
}

/// [`start`] with the receivers built and the clock chosen.
fn start_with(
    config: &NotifyConfig,
    receivers: Vec<Arc<dyn Receiver>>,
    outbox: Arc<Outbox>,
    stop: watch::Receiver<bool>,
    clock: Clock,
    wall_offset: WallOffset,
) -> (Dispatcher, Vec<tokio::task::JoinHandle<()>>) {
    let counters = Arc::new(Mutex::new(Counters::default()));
    let (tx, rx) = mpsc::channel(256);
    let mut wakes: BTreeMap<String, Arc<Notify>> = BTreeMap::new();
    let mut tasks = Vec::new();
    for receiver in receivers {
        let wake = Arc::new(Notify::new());
        wakes.insert(receiver.name().to_string(), wake.clone());
        tasks.push(tokio::spawn(worker(
            receiver,
            config.clone(),
            outbox.clone(),
            counters.clone(),
            wake,
            stop.clone(),
            clock.clone(),
        )));
    }
    let wakes = Arc::new(wakes);
    tasks.push(tokio::spawn(intake(
        config.clone(),
        outbox.clone(),
        counters.clone(),
        wakes.clone(),
        rx,
        stop,
        (clock, wall_offset),
    )));
    (
        Dispatcher {
            intake: tx,
            outbox,
            counters,
            wakes,
            wall_offset,
        },
        tasks,
    )
}

async fn intake(
    config: NotifyConfig,
    outbox: Arc<Outbox>,
    counters: Arc<Mutex<Counters>>,
    wakes: Arc<BTreeMap<String, Arc<Notify>>>,
    mut rx: mpsc::Receiver<Vec<(AlertPayload, Via)>>,
    mut stop: watch::Receiver<bool>,
    (clock, wall_offset): (Clock, WallOffset),
) {
    let instance = format!("{:016x}", fastrand::u64(..));
    let group_wait = i64::try_from(config.group_wait.as_millis()).unwrap_or(i64::MAX);
    let mut grouper = Grouper::new(group_wait, instance);
    let send_resolved: BTreeMap<&str, bool> = config
        .receivers
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.send_resolved.unwrap_or(config.send_resolved),
            )
        })
        .collect();
    // Annotations of the last firing notification per fingerprint, for re-sends (which the
    // rule loop builds without them). Emptied on resolve, pruned to the firing set on refresh.
    let mut annotations: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    // While the outbox refuses writes: when to try again, and the wait after that.
    let mut retry: Option<(Millis, Duration)> = None;
    loop {
        let now = clock();
        let due = match (grouper.next_due(), retry) {
            (Some(g), Some((r, _))) => Some(g.min(r)),
            (g, r) => g.or(r.map(|(r, _)| r)),
        };
        // Idle, it still looks at the outbox every RETRY_MAX for a fault to probe.
        let sleep = due
            .map_or(RETRY_MAX, |due| {
                Duration::from_millis(u64::try_from(due - now).unwrap_or(0))
            })
            .min(RETRY_MAX);
        let stopping = tokio::select! {
            batch = rx.recv() => match batch {
                Some(batch) => {
                    let now = clock();
                    let refreshed: std::collections::BTreeSet<&str> = batch
                        .iter()
                        .filter(|(_, via)| *via == Via::Refresh)
                        .map(|(a, _)| a.fingerprint.as_str())
                        .collect();
                    if !refreshed.is_empty() {
                        // A refresh lists every firing instance: forget the others.
                        annotations.retain(|fp, _| refreshed.contains(fp.as_str()));
                    }
                    for (mut alert, via) in batch {
                        let labels = routing_labels(&alert.alert, alert.severity.as_str(), &alert.labels);
                        let targets: Vec<String> = match via {
                            Via::Test => config.receivers.iter().map(|r| r.name.clone()).collect(),
                            Via::Route => {
                                if alert.status == Status::Resolved {
                                    annotations.remove(&alert.fingerprint);
                                } else {
                                    annotations.insert(alert.fingerprint.clone(), alert.annotations.clone());
                                }
                                receivers_for(&config.route, &labels).into_iter().map(String::from).collect()
                            }
                            Via::Refresh => {
                                if alert.annotations.is_empty() && let Some(known) = annotations.get(&alert.fingerprint) {
                                    alert.annotations = known.clone();
                                }
                                refresh_targets(&config, &labels)
                            }
                        };
                        if targets.is_empty() && via != Via::Refresh {
                            count(&counters, "", "unrouted");
                            tracing::warn!(alert = %alert.alert, "no route matches this notification");
                        }
                        for r in targets {
                            if alert.status == Status::Resolved && !send_resolved.get(r.as_str()).copied().unwrap_or(true) {
                                continue;
                            }
                            grouper.add(&r, alert.clone(), via == Via::Test, now);
                        }
                    }
                    false
                }
                None => true,
            },
            _ = tokio::time::sleep(sleep) => false,
            _ = stop.changed() => true,
        };
        let now = clock();
        let mut messages = if stopping {
            grouper.flush(now)
        } else {
            grouper.due(now)
        };
        let offset = wall_offset();
        for m in &mut messages {
            m.created_ms = m.created_ms.saturating_add(offset);
        }
        // A fault seen by another user of the outbox (a worker) is probed here too.
        let retry_due = match retry {
            Some((at, _)) => at <= now,
            None => outbox.health().is_some(),
        };
        if !messages.is_empty() || retry_due || (stopping && retry.is_some()) {
            let ob = outbox.clone();
            // New messages go behind those held; with none, a due retry writes out what is
            // held, or, with nothing held, probes whether the disk takes writes again.
            let outcome = blocking(move || {
                if !messages.is_empty() {
                    ob.enqueue_or_hold(messages, now)
                } else if ob.held() > 0 {
                    match ob.flush_held() {
                        Ok(receivers) => Hold::Written { receivers },
                        Err(error) => Hold::Held {
                            error,
                            folded: Vec::new(),
                        },
                    }
                } else {
                    match ob.probe() {
                        Ok(()) => Hold::Written {
                            receivers: Vec::new(),
                        },
                        Err(error) => Hold::Held {
                            error,
                            folded: Vec::new(),
                        },
                    }
                }
            })
            .await;
            match outcome {
                Some(Hold::Written { receivers }) => {
                    retry = None;
                    for r in receivers {
                        if let Some(w) = wakes.get(&r) {
                            w.notify_one();
                        }
                    }
                }
                Some(Hold::Held { error, folded }) => {
                    for receiver in folded {
                        count(&counters, &receiver, "folded");
                    }
                    let wait = retry.map_or(RETRY_FIRST, |(_, wait)| next_retry(wait));
                    if retry.is_none() {
                        tracing::error!(error = %error, held = outbox.held(), "cannot write to the outbox; notifications kept in memory until it can");
                    } else {
                        tracing::debug!(error = %error, held = outbox.held(), "outbox still refuses writes");
                    }
                    let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                    retry = Some((now.saturating_add(wait_ms), wait));
                }
                None => {}
            }
        }
        if stopping {
            break;
        }
    }
}

async fn worker(
    receiver: Arc<dyn Receiver>,
    config: NotifyConfig,
    outbox: Arc<Outbox>,
    counters: Arc<Mutex<Counters>>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    clock: Clock,
) {
    let name = receiver.name().to_string();
    let mut breaker = Breaker::new(config.circuit_breaker);
    let mut limit = RateLimit::new(config.rate_limit);
    // Whether the rate limit holds the next message back (logged once per wait).
    let mut held_by_limit = false;
    // An outcome the outbox could not record yet: recorded before anything else is sent.
    let mut unrecorded: Option<(String, Outcome, Millis)> = None;
    // While the outbox fails: the wait before the next try.
    let mut backoff_wait: Option<Duration> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        if let Some(wait) = backoff_wait {
            // The intake wakes the worker when it has written held messages out.
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
        }
        let failed = |e: &dyn std::fmt::Display, what: &str, backoff: &mut Option<Duration>| {
            if backoff.is_none() {
                tracing::error!(receiver = %name, error = %e, "{what}; trying again");
            }
            *backoff = Some(backoff.map_or(RETRY_FIRST, next_retry));
        };
        if let Some((id, outcome, at)) = unrecorded.take() {
            let ob = outbox.clone();
            let (i, o) = (id.clone(), outcome.clone());
            match blocking(move || ob.record(&i, o, at)).await {
                Some(Ok(())) => backoff_wait = None,
                Some(Err(e)) => {
                    failed(&e, "cannot record a delivery outcome", &mut backoff_wait);
                    unrecorded = Some((id, outcome, at));
                    continue;
                }
                None => {
                    backoff_wait = Some(backoff_wait.map_or(RETRY_FIRST, next_retry));
                    unrecorded = Some((id, outcome, at));
                    continue;
                }
            }
        }
        let ob = outbox.clone();
        let n = name.clone();
        let next = match blocking(move || ob.next_for(&n)).await {
            Some(Ok(next)) => {
                backoff_wait = None;
                next
            }
            Some(Err(e)) => {
                failed(&e, "cannot read the outbox", &mut backoff_wait);
                continue;
            }
            None => {
                backoff_wait = Some(backoff_wait.map_or(RETRY_FIRST, next_retry));
                continue;
            }
        };
        let now = clock();
        let mut rate_limited = false;
        // A retry time further ahead than the longest wait (the backoff's, or a receiver's
        // "not before", up to MAX_RETRY_AFTER) was written before a restart, on a timeline
        // ahead of this one (the wall clock was stepped back meanwhile): due now, rather
        // than holding the queue for as long as the step.
        let longest = config.retry.max.max(MAX_RETRY_AFTER);
        let latest = now.saturating_add(i64::try_from(longest.as_millis()).unwrap_or(i64::MAX));
        let wait_until = match &next {
            None => None,
            Some(p) if p.next_attempt_ms > now && p.next_attempt_ms <= latest => {
                Some(p.next_attempt_ms)
            }
            Some(_) if !breaker.allow(now) => match breaker.state() {
                BreakerState::Open { until } => Some(until),
                _ => Some(now + 1000),
            },
            Some(_) if !limit.try_acquire(now) => {
                rate_limited = true;
                Some(limit.next_free_ms(now))
            }
            Some(_) => Some(now),
        };
        if rate_limited && !held_by_limit {
            let wait_ms = wait_until.map_or(0, |at| at.saturating_sub(now));
            tracing::info!(receiver = %name, wait_ms, "rate limit reached; the next message waits for a free slot");
        }
        held_by_limit = rate_limited;
        if rate_limited {
            // Overflow: what waits for the free slot goes out as one digest, not a burst.
            let ob = outbox.clone();
            let n = name.clone();
            match blocking(move || ob.fold_pending(&n)).await {
                Some(Ok(Some(merged))) => {
                    count_n(
                        &counters,
                        &name,
                        "folded",
                        u64::try_from(merged).unwrap_or(u64::MAX),
                    );
                    tracing::info!(receiver = %name, merged, "rate limit reached; waiting messages folded into one digest");
                }
                Some(Ok(None)) | None => {}
                Some(Err(e)) => {
                    tracing::error!(receiver = %name, error = %e, "cannot fold the rate-limited backlog")
                }
            }
        }
        {
            let mut c = counters.lock().unwrap_or_else(|e| e.into_inner());
            c.circuits.insert(name.clone(), breaker.state());
        }
        let (Some(pending), Some(at)) = (next, wait_until) else {
            // Nothing queued: wait for the intake.
            tokio::select! {
                _ = wake.notified() => {}
                _ = stop.changed() => {}
            }
            continue;
        };
        if at > now {
            let d = Duration::from_millis(u64::try_from(at - now).unwrap_or(0));
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = wake.notified() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let message: Message = pending.message;
        let result = receiver.send(&message).await;
        let now = clock();
        breaker.record(result.is_ok(), now);
        let outcome = match result {
            Ok(()) => {
                count(&counters, &name, "delivered");
                tracing::debug!(receiver = %name, id = %message.id, "delivered");
                Outcome::Delivered
            }
            Err(SendError::Permanent(e)) => {
                count(&counters, &name, "dead");
                tracing::error!(receiver = %name, id = %message.id, error = %e, "permanent delivery failure; moved to dead letters");
                Outcome::Dead { reason: e }
            }
            Err(e) if give_up(&config.retry, pending.enqueued_ms, now) => {
                count(&counters, &name, "dead");
                let e = e.text();
                tracing::error!(receiver = %name, id = %message.id, error = %e, "gave up after notify.retry.give_up_after; moved to dead letters");
                Outcome::Dead {
                    reason: format!("gave up: {e}"),
                }
            }
            Err(e) => {
                count(&counters, &name, "retry");
                // The backoff, or longer when the receiver said when to come back.
                let delay = retry_delay(
                    &config.retry,
                    pending.attempts + 1,
                    fastrand::f64(),
                    e.retry_after(),
                );
                let next = now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                let asked = e.retry_after();
                let e = e.text().to_string();
                tracing::warn!(receiver = %name, id = %message.id, error = %e, retry_in = ?delay, asked = ?asked, "delivery failed; will retry");
                Outcome::Retry {
                    next_attempt_ms: next,
                    error: e,
                }
            }
        };
        // Recorded at the top of the next turn, before anything else is read or sent.
        unrecorded = Some((message.id.clone(), outcome, now));
    }
    if let Some((id, outcome, at)) = unrecorded {
        // Stopping: one last try; a delivered message not recorded is sent again after the
        // next start (receivers deduplicate on its id).
        let ob = outbox.clone();
        if let Some(Err(e)) = blocking(move || ob.record(&id, outcome, at)).await {
            tracing::error!(receiver = %name, error = %e, "cannot record a delivery outcome");
        }
    }
}

/// The result of a fire drill on one receiver.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DrillResult {
    /// Receiver name.
    pub receiver: String,
    /// Receiver kind.
    pub kind: &'static str,
    /// Whether the receiver accepted the test message.
    pub ok: bool,
    /// The error, when it did not.
    pub error: Option<String>,
    /// How long the attempt took, in seconds.
    pub seconds: f64,
}

/// A fire-drill alert for `host`.
pub fn drill_alert(host: &str, now: Millis) -> AlertPayload {
    let labels = crate::rules::LabelSet::from([
        ("host".to_string(), host.to_string()),
        ("lookout_test".to_string(), "true".to_string()),
    ]);
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "summary".to_string(),
        format!("lookout fire drill from {host}: this is a test, no action needed"),
    );
    AlertPayload {
        alert: "LookoutFireDrill".into(),
        status: Status::Firing,
        kind: crate::rules::state::Kind::Firing,
        severity: crate::rules::model::Severity::Warning,
        fingerprint: fingerprint("LookoutFireDrill", &labels),
        labels,
        annotations,
        value: None,
        starts_at: now,
        ends_at: None,
    }
}

/// Shortest time between two fire drills through the API (`POST /api/v1/test-alert`): one
/// drill per window, so the endpoint cannot be used to flood the receivers.
pub const DRILL_WINDOW: Duration = Duration::from_secs(10);

/// Lets at most one fire drill start per window (on Tokio's clock, so tests move it).
#[derive(Debug)]
pub struct DrillGate {
    window: Duration,
    last: Mutex<Option<tokio::time::Instant>>,
}

impl DrillGate {
    /// A gate letting one drill through per `window` ([`DRILL_WINDOW`] in the agent).
    pub fn new(window: Duration) -> Self {
        DrillGate {
            window,
            last: Mutex::new(None),
        }
    }

    /// Starts a drill now if none started within the window; else how long until one may.
    pub fn try_start(&self) -> Result<(), Duration> {
        let now = tokio::time::Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = *last {
            let since = now.saturating_duration_since(at);
            if since < self.window {
                return Err(self.window - since);
            }
        }
        *last = Some(now);
        Ok(())
    }

    /// Forgets the drill just started (it could not be queued): the next may start at once.
    pub fn cancel(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The receivers a fire drill goes to: all, or the one named `only` (an unknown name is an
/// error listing the configured ones).
pub fn drill_receivers<'c>(
    config: &'c NotifyConfig,
    only: Option<&str>,
) -> Result<Vec<&'c ReceiverConfig>, String> {
    if let Some(name) = only
        && !config.receivers.iter().any(|r| r.name == name)
    {
        let names: Vec<&str> = config.receivers.iter().map(|r| r.name.as_str()).collect();
        return Err(format!(
            "no receiver named {name:?}; configured: {}",
            names.join(", ")
        ));
    }
    Ok(config
        .receivers
        .iter()
        .filter(|r| only.is_none_or(|n| r.name == n))
        .collect())
}

/// The fire-drill message for `receiver`: one [`drill_alert`], marked as a test, with an id
/// of its own (`drill-<random>`), sent as `Idempotency-Key`.
pub fn drill_message(receiver: &str, host: &str, now: Millis) -> Message {
    Message {
        id: format!("drill-{:016x}", fastrand::u64(..)),
        receiver: receiver.to_string(),
        group_key: format!("{{}}/{{receiver=\"{receiver}\"}}:{{alertname=\"LookoutFireDrill\"}}"),
        created_ms: now,
        alerts: vec![drill_alert(host, now)],
        folded: 0,
        test: true,
    }
}

/// One fire-drill message per receiver of the drill ([`drill_receivers`]), for
/// [`Dispatcher::enqueue`]: the API's drill goes through the outbox like any message.
pub fn drill_messages(
    config: &NotifyConfig,
    host: &str,
    only: Option<&str>,
    now: Millis,
) -> Result<Vec<Message>, String> {
    Ok(drill_receivers(config, only)?
        .into_iter()
        .map(|r| drill_message(&r.name, host, now))
        .collect())
}

/// Sends one test message through each of `receivers` (all when `only` is `None`)
/// concurrently, straight to the receivers (not through routes or the outbox, and not
/// counted by any rate limit), and reports each result: `lookout notify test`, which runs
/// without an agent.
pub async fn fire_drill(
    config: &NotifyConfig,
    host: &str,
    only: Option<&str>,
) -> Result<Vec<DrillResult>, String> {
    let selected: Vec<ReceiverConfig> = drill_receivers(config, only)?
        .into_iter()
        .cloned()
        .collect();
    let receivers = build_receivers(&selected)?;
    let now = wall_millis();
    let sends = receivers.into_iter().map(|r| {
        let message = drill_message(r.name(), host, now);
        async move {
            let started = std::time::Instant::now();
            let result = r.send(&message).await;
            DrillResult {
                receiver: r.name().to_string(),
                kind: r.kind(),
                ok: result.is_ok(),
                error: result.err().map(|e| e.to_string()),
                seconds: started.elapsed().as_secs_f64(),
            }
        }
    });
    let mut results = Vec::new();
    for handle in sends.map(tokio::spawn).collect::<Vec<_>>() {
        match handle.await {
            Ok(r) => results.push(r),
            Err(e) => return Err(format!("a fire-drill send failed: {e}")),
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::outbox::Pending;
    use super::*;
    use crate::notify::alertmanager::AlertmanagerConfig;
    use crate::notify::route::{LabelMatcher, MatchOp, RouteConfig};
    use crate::rules::model::Severity;

    fn am(name: &str, resend: u64) -> ReceiverConfig {
        ReceiverConfig {
            name: name.into(),
            send_resolved: None,
            kind: ReceiverKind::Alertmanager(AlertmanagerConfig {
                // Nothing listens on port 1: sends fail and are retried, messages stay queued.
                urls: vec!["http://127.0.0.1:1".into()],
                timeout: Duration::from_secs(1),
                resend_interval: Duration::from_secs(resend),
            }),
        }
    }

    fn log(name: &str) -> ReceiverConfig {
        ReceiverConfig {
            name: name.into(),
            send_resolved: None,
            kind: ReceiverKind::Log(crate::notify::log::LogConfig),
        }
    }

    fn route(team: Option<&str>, receivers: &[&str], continue_: bool) -> RouteConfig {
        RouteConfig {
            matchers: team
                .map(|t| LabelMatcher {
                    label: "team".into(),
                    op: MatchOp::Equal(t.into()),
                })
                .into_iter()
                .collect(),
            receivers: receivers.iter().map(|r| (*r).to_string()).collect(),
            continue_,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn refresh_goes_to_routed_alertmanager_receivers_only() {
        let mut config = NotifyConfig::defaults(Duration::from_secs(3600));
        config.receivers = vec![log("log"), am("am-db", 30), am("am-all", 60)];
        config.route = vec![
            route(Some("db"), &["log", "am-db"], true),
            route(None, &["log", "am-all"], false),
        ];
        // (team label, expected re-send targets)
        let rows: [(Option<&str>, &[&str]); 2] = [
            (Some("db"), &["am-db", "am-all"]), // continue: both, the log receiver left out
            (Some("web"), &["am-all"]),
        ];
        for (team, expected) in rows {
            let mut l = labels(&[("host", "h")]);
            if let Some(t) = team {
                l.insert("team".into(), t.into());
            }
            let l = routing_labels("A", "warning", &l);
            assert_eq!(refresh_targets(&config, &l), expected, "{team:?}");
        }
        // Routed to a log receiver only: no re-send.
        config.route = vec![route(None, &["log"], false)];
        assert!(refresh_targets(&config, &labels(&[])).is_empty());

        assert_eq!(refresh_interval(&config), Some(Duration::from_secs(30)));
        config.receivers = vec![log("log")];
        assert_eq!(refresh_interval(&config), None);
    }

    #[test]
    fn refresh_payloads_are_the_firing_instances() {
        let active = |alert: &str, state, severity, firing_since| ActiveAlert {
            alert: alert.into(),
            labels: labels(&[("host", "h"), ("mount", "/")]),
            state,
            severity,
            active_since: Some(1_000),
            firing_since,
            value: Some(0.93),
            last_notified: None,
        };
        let list = [
            active(
                "Firing",
                Phase::Firing,
                Some(Severity::Critical),
                Some(2_000),
            ),
            active("Pending", Phase::Pending, Some(Severity::Warning), None),
        ];
        let got = refresh_payloads(&list);
        assert_eq!(got.len(), 1);
        let p = &got[0];
        assert_eq!(
            (p.alert.as_str(), p.status, p.kind),
            ("Firing", Status::Firing, Kind::Repeat)
        );
        assert_eq!(
            (p.severity, p.starts_at, p.ends_at, p.value),
            (Severity::Critical, 2_000, None, Some(0.93))
        );
        assert!(p.annotations.is_empty());
        // The same identity as the notifications of that instance, so Alertmanager merges.
        assert_eq!(p.fingerprint, fingerprint("Firing", &list[0].labels));
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "lookout-dispatch-{name}-{}-{:016x}",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn notification(alert: &str, status: Status) -> Notification {
        Notification {
            alert: alert.into(),
            labels: labels(&[("host", "h")]),
            status,
            kind: if status == Status::Firing {
                Kind::Firing
            } else {
                Kind::Resolved
            },
            severity: Severity::Warning,
            previous: None,
            value: Some(1.0),
            threshold: Some(0.5),
            summary: format!("{alert} summary"),
            description: String::new(),
            starts_at: 1_000,
            at: 2_000,
        }
    }

    /// A receiver whose sends fail as scripted, recording when each one came (paused time
    /// since the test began) and what it carried.
    struct Scripted {
        name: String,
        origin: tokio::time::Instant,
        /// Outcomes of the next sends, in order; once they are used up, sends succeed.
        outcomes: Mutex<std::collections::VecDeque<Result<(), SendError>>>,
        sends: Mutex<Vec<(Duration, Message)>>,
    }

    impl Scripted {
        fn new(name: &str, outcomes: Vec<Result<(), SendError>>) -> Arc<Self> {
            Arc::new(Scripted {
                name: name.into(),
                origin: tokio::time::Instant::now(),
                outcomes: Mutex::new(outcomes.into()),
                sends: Mutex::new(Vec::new()),
            })
        }

        /// When each send came (paused time since the test began).
        fn send_times(&self) -> Vec<Duration> {
            let sends = self.sends.lock().unwrap();
            sends.iter().map(|(at, _)| *at).collect()
        }

        /// The alert names of each message sent.
        fn alerts_sent(&self) -> Vec<Vec<String>> {
            let sends = self.sends.lock().unwrap();
            sends
                .iter()
                .map(|(_, m)| m.alerts.iter().map(|a| a.alert.clone()).collect())
                .collect()
        }
    }

    impl Receiver for Scripted {
        fn name(&self) -> &str {
            &self.name
        }

        fn kind(&self) -> &'static str {
            "scripted"
        }

        fn send<'a>(
            &'a self,
            message: &'a Message,
        ) -> super::super::BoxFuture<'a, Result<(), SendError>> {
            let at = self.origin.elapsed();
            self.sends.lock().unwrap().push((at, message.clone()));
            let outcome = self.outcomes.lock().unwrap().pop_front().unwrap_or(Ok(()));
            Box::pin(std::future::ready(outcome))
        }
    }

    fn retryable() -> Result<(), SendError> {
        Err(SendError::Retryable("503".into()))
    }

    /// Delivery running on paused time, whose clock reads `T0` when it starts.
    struct Running {
        origin: tokio::time::Instant,
        d: Dispatcher,
        outbox: Arc<Outbox>,
        stop: watch::Sender<bool>,
        tasks: Vec<tokio::task::JoinHandle<()>>,
        _dir: TempDir,
    }

    const T0: Millis = 1_700_000_000_000;

    /// Starts delivery for `config` through `receivers` (routed by `config`).
    fn run(config: &NotifyConfig, receivers: &[&Arc<Scripted>]) -> Running {
        let dir = TempDir::new("paused");
        let outbox = Arc::new(Outbox::open(&dir.0.join(super::super::outbox::FILE_NAME)).unwrap());
        run_on(config, receivers, outbox, dir)
    }

    /// [`run`] on `outbox`, in `dir`.
    fn run_on(
        config: &NotifyConfig,
        receivers: &[&Arc<Scripted>],
        outbox: Arc<Outbox>,
        dir: TempDir,
    ) -> Running {
        let origin = tokio::time::Instant::now();
        let clock: Clock =
            Arc::new(move || T0 + Millis::try_from(origin.elapsed().as_millis()).unwrap());
        let receivers = receivers
            .iter()
            .map(|r| Arc::clone(r) as Arc<dyn Receiver>)
            .collect();
        let (stop, stopped) = watch::channel(false);
        let (d, tasks) = start_with(config, receivers, outbox.clone(), stopped, clock, || 0);
        Running {
            origin,
            d,
            outbox,
            stop,
            tasks,
            _dir: dir,
        }
    }

    impl Running {
        fn counter(&self, receiver: &str, result: &'static str) -> u64 {
            let c = self.d.counters.lock().unwrap();
            c.results
                .get(&(receiver.to_string(), result))
                .copied()
                .unwrap_or(0)
        }

        /// `lookout_receiver_circuit_state` of `receiver`: 0 closed, 1 half-open, 2 open.
        fn circuit(&self, receiver: &str) -> f64 {
            let samples = self.d.samples(T0);
            samples
                .iter()
                .find(|s| {
                    s.metric.name == RECEIVER_CIRCUIT_STATE.name
                        && s.labels == [("receiver", receiver.to_string())]
                })
                .map(|s| s.value)
                .unwrap()
        }

        /// Lets paused time run until `secs` after the start; every timer due before then
        /// fires, in order.
        async fn until(&self, secs: u64) {
            tokio::time::sleep_until(self.origin + Duration::from_secs(secs)).await;
        }

        async fn stop(self) {
            self.stop.send(true).unwrap();
            for t in self.tasks {
                t.await.unwrap();
            }
        }
    }

    /// One receiver `hook` that everything is routed to, grouping off, retries without
    /// jitter.
    fn one_hook() -> NotifyConfig {
        let mut config = NotifyConfig::defaults(Duration::from_secs(3600));
        config.receivers = vec![log("hook")];
        config.route = vec![route(None, &["hook"], false)];
        config.group_wait = Duration::ZERO;
        config.retry.jitter = false;
        config
    }

    fn secs(list: &[u64]) -> Vec<Duration> {
        list.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_send_is_retried_on_the_backoff_until_delivered() {
        let hook = Scripted::new("hook", vec![retryable(); 4]);
        let mut config = one_hook();
        config.retry.initial = Duration::from_secs(1);
        config.retry.multiplier = 2.0;
        config.retry.max = Duration::from_secs(4);
        let r = run(&config, &[&hook]);
        r.d.notify(&[notification("A", Status::Firing)]).await;
        r.until(60).await;
        // 1 s, then doubling up to the 4 s cap; the fifth attempt succeeds.
        assert_eq!(hook.send_times(), secs(&[0, 1, 3, 7, 11]));
        let ids: Vec<String> = hook
            .sends
            .lock()
            .unwrap()
            .iter()
            .map(|(_, m)| m.id.clone())
            .collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "one message: {ids:?}");
        assert_eq!(
            (r.counter("hook", "retry"), r.counter("hook", "delivered")),
            (4, 1)
        );
        assert!(r.outbox.pending().unwrap().is_empty());
        // Delivered is done: an hour later it has not been sent again.
        r.until(3600).await;
        assert_eq!(hook.send_times().len(), 5);
        r.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_receivers_retry_after_is_waited_for_even_beyond_the_backoff() {
        let after = |secs: u64| {
            Err(SendError::RetryAfter(
                "429".into(),
                Duration::from_secs(secs),
            ))
        };
        // 5 s asked (backoff 1 s), then 30 s asked (beyond retry.max of 4 s), then 1 s asked
        // (shorter than the backoff's 4 s by then), then a plain retryable failure.
        let hook = Scripted::new("hook", vec![after(5), after(30), after(1), retryable()]);
        let mut config = one_hook();
        config.retry.initial = Duration::from_secs(1);
        config.retry.multiplier = 2.0;
        config.retry.max = Duration::from_secs(4);
        let r = run(&config, &[&hook]);
        r.d.notify(&[notification("A", Status::Firing)]).await;
        r.until(120).await;
        // 0 +5 (asked) = 5, +30 (asked, over max) = 35, +4 (backoff: 1 s asked is less) = 39,
        // +4 (backoff) = 43, delivered.
        assert_eq!(hook.send_times(), secs(&[0, 5, 35, 39, 43]));
        assert_eq!(
            (r.counter("hook", "retry"), r.counter("hook", "delivered")),
            (4, 1)
        );
        r.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_of_a_day_is_cut_to_an_hour() {
        let hook = Scripted::new(
            "hook",
            vec![Err(SendError::RetryAfter(
                "429".into(),
                Duration::from_secs(86_400),
            ))],
        );
        let r = run(&one_hook(), &[&hook]);
        r.d.notify(&[notification("A", Status::Firing)]).await;
        r.until(2 * 3600).await;
        assert_eq!(hook.send_times(), secs(&[0, 3600]));
        // Recorded as a retry with the text of the error, not dead.
        assert_eq!(r.counter("hook", "delivered"), 1);
        r.stop().await;
    }

    /// The value of the delivery metric `name` (no labels).
    fn gauge(d: &Dispatcher, name: &str) -> f64 {
        let samples = d.samples(T0 + 40_000);
        samples
            .iter()
            .find(|s| s.metric.name == name)
            .map(|s| s.value)
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn what_the_outbox_cannot_write_is_held_then_written_and_delivered() {
        let hook = Scripted::new("hook", Vec::new());
        let dir = TempDir::new("held");
        // The outbox's directory is missing: writes fail as on a full or read-only disk.
        let data = dir.0.join("data");
        let outbox = Arc::new(
            Outbox::open_or_quarantine(&data.join(super::super::outbox::FILE_NAME), 1).unwrap(),
        );
        let r = run_on(&one_hook(), &[&hook], outbox, dir);
        r.d.notify(&[notification("A", Status::Firing)]).await;
        r.until(30).await;
        // Nothing is sent before it is written; it is counted as pending, and every failed
        // write (at 0 s, then on the backoff: 0.5, 1.5, 3.5, 7.5, 12.5, ... s) is counted.
        assert!(hook.send_times().is_empty());
        assert_eq!(r.outbox.held(), 1);
        assert_eq!(gauge(&r.d, OUTBOX_PENDING.name), 1.0);
        assert!(gauge(&r.d, OUTBOX_WRITE_ERRORS_TOTAL.name) >= 8.0);
        assert!(r.outbox.health().is_some());

        std::fs::create_dir(&data).unwrap();
        r.until(60).await;
        // Written at the next try after 30 s (27.5 + 5 s), then sent at once.
        assert_eq!(hook.send_times(), [Duration::from_millis(32_500)]);
        assert_eq!(hook.alerts_sent(), [vec!["A"]]);
        assert_eq!(r.outbox.held(), 0);
        assert_eq!(r.outbox.health(), None);
        assert!(
            r.outbox.pending().unwrap().is_empty(),
            "delivered and recorded"
        );
        assert_eq!(gauge(&r.d, OUTBOX_PENDING.name), 0.0);
        r.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn alerts_within_group_wait_go_out_together_when_it_ends() {
        let hook = Scripted::new("hook", Vec::new());
        let mut config = one_hook();
        config.group_wait = Duration::from_secs(10);
        let r = run(&config, &[&hook]);
        r.d.notify(&[notification("A", Status::Firing)]).await;
        r.until(4).await;
        r.d.notify(&[notification("B", Status::Firing)]).await;
        r.until(12).await;
        r.d.notify(&[notification("C", Status::Firing)]).await;
        r.until(60).await;
        // The group opened at 0 s goes out at 10 s with what came in meanwhile; C opens the
        // next one at 12 s, sent at 22 s.
        assert_eq!(hook.send_times(), secs(&[10, 22]));
        assert_eq!(hook.alerts_sent(), [vec!["A", "B"], vec!["C"]]);
        r.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_circuit_holds_sends_then_lets_one_probe_through() {
        let hook = Scripted::new("hook", vec![retryable(); 4]);
        let mut config = one_hook();
        config.retry.initial = Duration::from_secs(1);
        config.retry.multiplier = 1.0;
        config.circuit_breaker.failures = 3;
        config.circuit_breaker.open_for = Duration::from_secs(60);
        let r = run(&config, &[&hook]);
        r.d.notify(&[notification("A", Status::Firing)]).await;
        r.until(30).await;
        // The third failure in a row (at 2 s) opened the circuit: no retry at 3 s.
        assert_eq!(hook.send_times(), secs(&[0, 1, 2]));
        assert_eq!(r.circuit("hook"), 2.0);
        r.until(90).await;
        // At 62 s one probe (half-open); it failed, so the circuit is open again for 60 s.
        assert_eq!(hook.send_times(), secs(&[0, 1, 2, 62]));
        assert_eq!(r.circuit("hook"), 2.0);
        r.until(150).await;
        // The probe at 122 s succeeds and closes it.
        assert_eq!(hook.send_times(), secs(&[0, 1, 2, 62, 122]));
        assert_eq!(r.circuit("hook"), 0.0);
        assert_eq!(
            (r.counter("hook", "retry"), r.counter("hook", "delivered")),
            (4, 1)
        );
        r.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_rate_limit_the_backlog_waits_and_goes_out_as_one_digest() {
        let hook = Scripted::new("hook", Vec::new());
        let mut config = one_hook();
        config.rate_limit.max = 2;
        config.rate_limit.per = Duration::from_secs(60);
        let r = run(&config, &[&hook]);
        r.d.notify(&[notification("A", Status::Firing)]).await;
        r.until(1).await;
        r.d.notify(&[notification("B", Status::Firing)]).await;
        r.until(2).await;
        for name in ["C", "D", "E"] {
            r.d.notify(&[notification(name, Status::Firing)]).await;
        }
        r.until(59).await;
        assert_eq!(
            hook.send_times(),
            secs(&[0, 1]),
            "the limit holds until 60 s"
        );
        let waiting = r.outbox.pending().unwrap();
        assert_eq!(waiting.len(), 1, "folded while waiting: {waiting:?}");
        r.until(120).await;
        // When the send at 0 s leaves the window: one digest of the three, not a burst.
        assert_eq!(hook.send_times(), secs(&[0, 1, 60]));
        assert_eq!(
            hook.alerts_sent(),
            [vec!["A"], vec!["B"], vec!["C", "D", "E"]]
        );
        assert_eq!(hook.sends.lock().unwrap()[2].1.folded, 2);
        assert_eq!(r.counter("hook", "folded"), 2);
        r.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_drill_goes_through_the_outbox_and_takes_a_rate_limit_slot() {
        let hook = Scripted::new("hook", Vec::new());
        let mut config = one_hook();
        config.rate_limit.max = 1;
        config.rate_limit.per = Duration::from_secs(60);
        let r = run(&config, &[&hook]);
        let drill = drill_messages(&config, "h", None, T0).unwrap();
        let id = drill[0].id.clone();
        r.d.enqueue(drill, T0).await.unwrap();
        r.until(1).await;
        r.d.notify(&[notification("A", Status::Firing)]).await;
        r.until(120).await;
        // The drill was sent at once and used the one slot of the minute: the notification
        // decided at 1 s waited for the slot to free at 60 s.
        assert_eq!(hook.send_times(), secs(&[0, 60]));
        assert_eq!(hook.alerts_sent(), [vec!["LookoutFireDrill"], vec!["A"]]);
        let first = hook.sends.lock().unwrap()[0].1.clone();
        assert!(first.test && first.id == id, "{first:?}");
        assert_eq!(r.counter("hook", "delivered"), 2);
        r.stop().await;
    }

    #[test]
    fn drills_go_to_every_receiver_or_the_one_named() {
        let mut config = one_hook();
        config.receivers.push(log("mail"));
        let all = drill_messages(&config, "h", None, T0).unwrap();
        let to: Vec<&str> = all.iter().map(|m| m.receiver.as_str()).collect();
        assert_eq!(to, ["hook", "mail"]);
        assert!(all.iter().all(|m| m.test && m.id.starts_with("drill-")));
        assert_ne!(all[0].id, all[1].id);
        let one = drill_messages(&config, "h", Some("mail"), T0).unwrap();
        assert_eq!(one.len(), 1);
        let err = drill_messages(&config, "h", Some("nope"), T0).unwrap_err();
        assert_eq!(err, "no receiver named \"nope\"; configured: hook, mail");
    }

    /// The window runs on Tokio's clock: paused here, moved by the test.
    #[tokio::test(start_paused = true)]
    async fn a_second_drill_within_the_window_is_refused_until_it_ends() {
        let gate = DrillGate::new(Duration::from_secs(10));
        assert_eq!(gate.try_start(), Ok(()));
        assert_eq!(gate.try_start(), Err(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_millis(9_500)).await;
        assert_eq!(gate.try_start(), Err(Duration::from_millis(500)));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(gate.try_start(), Ok(()), "the window is over");
        assert_eq!(
            gate.try_start(),
            Err(Duration::from_secs(10)),
            "a new one began"
        );
        // A drill that could not be queued does not hold the next one back.
        gate.cancel();
        assert_eq!(gate.try_start(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_queues_behind_earlier_messages_with_known_annotations() {
        let log_hook = Scripted::new("log", Vec::new());
        // The Alertmanager is down: everything queued for it stays, in order.
        let am_hook = Scripted::new("am", vec![retryable(); 1000]);
        let mut config = NotifyConfig::defaults(Duration::from_secs(3600));
        config.group_wait = Duration::ZERO;
        config.receivers = vec![log("log"), am("am", 60)];
        config.route = vec![route(None, &["log", "am"], false)];
        let r = run(&config, &[&log_hook, &am_hook]);

        r.d.notify(&[notification("A", Status::Firing)]).await;
        let active = ActiveAlert {
            alert: "A".into(),
            labels: labels(&[("host", "h")]),
            state: Phase::Firing,
            severity: Some(Severity::Warning),
            active_since: Some(1_000),
            firing_since: Some(1_000),
            value: Some(1.5),
            last_notified: Some(2_000),
        };
        r.d.refresh(refresh_payloads(&[active])).await;
        r.until(60).await;

        let am: Vec<Pending> = r.outbox.pending().unwrap();
        assert!(am.iter().all(|p| p.message.receiver == "am"), "{am:?}");
        assert_eq!(am.len(), 2, "{am:?}");
        assert_eq!(
            am[0].message.alerts[0].kind,
            Kind::Firing,
            "the notification first"
        );
        let resent = &am[1].message.alerts[0];
        assert_eq!((resent.kind, resent.value), (Kind::Repeat, Some(1.5)));
        assert_eq!(
            resent.annotations.get("summary").map(String::as_str),
            Some("A summary")
        );
        // The log receiver got the notification only, once.
        assert_eq!(log_hook.alerts_sent(), [vec!["A"]]);
        assert_eq!(
            log_hook.sends.lock().unwrap()[0].1.alerts[0].kind,
            Kind::Firing
        );
        assert_eq!(r.counter("log", "delivered"), 1);
        r.stop().await;
    }
}
