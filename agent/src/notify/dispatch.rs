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
//! - Messages still in the outbox when the agent stops (or is killed) are delivered after the
//!   next start; every message carries a stable id that webhooks send as `Idempotency-Key`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use super::group::Grouper;
use super::outbox::{Outbox, Outcome};
use super::policy::{Breaker, BreakerState, RateLimit, backoff, give_up};
use super::route::{receivers_for, routing_labels};
use super::{AlertPayload, Message, Receiver, SendError, fingerprint};
use crate::catalogue::{
    NOTIFICATIONS_TOTAL, OUTBOX_OLDEST_AGE_SECONDS, OUTBOX_PENDING, RECEIVER_CIRCUIT_STATE,
};
use crate::collect::Sample;
use crate::collect::scheduler::wall_millis;
use crate::config::{NotifyConfig, ReceiverConfig, ReceiverKind};
use crate::rules::engine::{Notification, Status};
use crate::store::Millis;

/// Builds the receivers of a configuration.
pub fn build_receivers(receivers: &[ReceiverConfig]) -> Result<Vec<Arc<dyn Receiver>>, String> {
    receivers
        .iter()
        .map(|r| -> Result<Arc<dyn Receiver>, String> {
            Ok(match &r.kind {
                ReceiverKind::Log => Arc::new(super::log::LogReceiver::new(&r.name)),
                ReceiverKind::Webhook(cfg) => Arc::new(
                    super::webhook::WebhookReceiver::new(&r.name, cfg)
                        .map_err(|e| format!("receiver {}: {e}", r.name))?,
                ),
                ReceiverKind::Alertmanager(cfg) => Arc::new(
                    super::alertmanager::AlertmanagerReceiver::new(&r.name, cfg)
                        .map_err(|e| format!("receiver {}: {e}", r.name))?,
                ),
                ReceiverKind::Email(cfg) => Arc::new(
                    super::email::EmailReceiver::new(&r.name, cfg)
                        .map_err(|e| format!("receiver {}: {e}", r.name))?,
                ),
            })
        })
        .collect()
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
    intake: mpsc::Sender<Vec<(AlertPayload, bool)>>,
    outbox: Arc<Outbox>,
    counters: Arc<Mutex<Counters>>,
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
        let batch = notifications.iter().map(|n| (payload(n), false)).collect();
        if self.intake.send(batch).await.is_err() {
            tracing::error!("delivery is stopped; notifications not queued");
        }
    }

    /// Queues a fire-drill alert for every receiver (`test: true`), bypassing routes.
    pub async fn test_alert(&self, alert: AlertPayload) {
        let _ = self.intake.send(vec![(alert, true)]).await;
    }

    /// The outbox, for the API.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
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
        match self.outbox.stats(now) {
            Ok(stats) => {
                out.push(Sample::new(&OUTBOX_PENDING, stats.pending as f64));
                out.push(Sample::new(
                    &OUTBOX_OLDEST_AGE_SECONDS,
                    stats.oldest_age_seconds,
                ));
            }
            Err(e) => tracing::error!(error = %e, "cannot read outbox statistics"),
        }
        out
    }
}

fn count(counters: &Mutex<Counters>, receiver: &str, result: &'static str) {
    let mut c = counters.lock().unwrap_or_else(|e| e.into_inner());
    *c.results.entry((receiver.to_string(), result)).or_default() += 1;
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

/// Starts delivery for `config` with the outbox at `outbox_path`; runs until `stop`.
pub fn start(
    config: &NotifyConfig,
    outbox: Arc<Outbox>,
    stop: watch::Receiver<bool>,
) -> Result<(Dispatcher, Vec<tokio::task::JoinHandle<()>>), StartError> {
    let receivers = build_receivers(&config.receivers).map_err(StartError::Receiver)?;
    let counters = Arc::new(Mutex::new(Counters::default()));
    let (tx, rx) = mpsc::channel(256);
    let mut wakes = BTreeMap::new();
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
        )));
    }
    tasks.push(tokio::spawn(intake(
        config.clone(),
        outbox.clone(),
        counters.clone(),
        wakes,
        rx,
        stop,
    )));
    Ok((
        Dispatcher {
            intake: tx,
            outbox,
            counters,
        },
        tasks,
    ))
}

async fn intake(
    config: NotifyConfig,
    outbox: Arc<Outbox>,
    counters: Arc<Mutex<Counters>>,
    wakes: BTreeMap<String, Arc<Notify>>,
    mut rx: mpsc::Receiver<Vec<(AlertPayload, bool)>>,
    mut stop: watch::Receiver<bool>,
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
    loop {
        let now = wall_millis();
        let sleep = grouper.next_due().map_or(Duration::from_secs(3600), |due| {
            Duration::from_millis(u64::try_from(due - now).unwrap_or(0))
        });
        let stopping = tokio::select! {
            batch = rx.recv() => match batch {
                Some(batch) => {
                    let now = wall_millis();
                    for (alert, test) in batch {
                        let targets: Vec<String> = if test {
                            config.receivers.iter().map(|r| r.name.clone()).collect()
                        } else {
                            let labels = routing_labels(&alert.alert, alert.severity.as_str(), &alert.labels);
                            receivers_for(&config.route, &labels).into_iter().map(String::from).collect()
                        };
                        if targets.is_empty() {
                            count(&counters, "", "unrouted");
                            tracing::warn!(alert = %alert.alert, "no route matches this notification");
                        }
                        for r in targets {
                            if alert.status == Status::Resolved && !send_resolved.get(r.as_str()).copied().unwrap_or(true) {
                                continue;
                            }
                            grouper.add(&r, alert.clone(), test, now);
                        }
                    }
                    false
                }
                None => true,
            },
            _ = tokio::time::sleep(sleep) => false,
            _ = stop.changed() => true,
        };
        let now = wall_millis();
        let messages = if stopping {
            grouper.flush(now)
        } else {
            grouper.due(now)
        };
        if !messages.is_empty() {
            let receivers: Vec<String> = messages.iter().map(|m| m.receiver.clone()).collect();
            let ob = outbox.clone();
            match blocking(move || ob.enqueue(&messages, now)).await {
                Some(Ok(())) => {
                    for r in receivers {
                        if let Some(w) = wakes.get(&r) {
                            w.notify_one();
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::error!(error = %e, "cannot write to the outbox; notifications lost")
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
) {
    let name = receiver.name().to_string();
    let mut breaker = Breaker::new(config.circuit_breaker);
    let mut limit = RateLimit::new(config.rate_limit);
    loop {
        if *stop.borrow() {
            break;
        }
        let ob = outbox.clone();
        let n = name.clone();
        let next = match blocking(move || ob.next_for(&n)).await {
            Some(Ok(next)) => next,
            Some(Err(e)) => {
                tracing::error!(receiver = %name, error = %e, "cannot read the outbox");
                None
            }
            None => None,
        };
        let now = wall_millis();
        let wait_until = match &next {
            None => None,
            Some(p) if p.next_attempt_ms > now => Some(p.next_attempt_ms),
            Some(_) if !breaker.allow(now) => match breaker.state() {
                BreakerState::Open { until } => Some(until),
                _ => Some(now + 1000),
            },
            Some(_) if !limit.try_acquire(now) => Some(limit.next_free_ms(now)),
            Some(_) => Some(now),
        };
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
        let now = wall_millis();
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
            Err(SendError::Retryable(e)) if give_up(&config.retry, pending.enqueued_ms, now) => {
                count(&counters, &name, "dead");
                tracing::error!(receiver = %name, id = %message.id, error = %e, "gave up after notify.retry.give_up_after; moved to dead letters");
                Outcome::Dead {
                    reason: format!("gave up: {e}"),
                }
            }
            Err(SendError::Retryable(e)) => {
                count(&counters, &name, "retry");
                let delay = backoff(&config.retry, pending.attempts + 1, fastrand::f64());
                let next = now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                tracing::warn!(receiver = %name, id = %message.id, error = %e, retry_in = ?delay, "delivery failed; will retry");
                Outcome::Retry {
                    next_attempt_ms: next,
                    error: e,
                }
            }
        };
        let ob = outbox.clone();
        let id = message.id.clone();
        match blocking(move || ob.record(&id, outcome, now)).await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::error!(receiver = %name, error = %e, "cannot record a delivery outcome")
            }
            None => {}
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

/// Sends one test message through each of `receivers` (all when `only` is `None`)
/// concurrently, straight to the receivers (not through routes or the outbox), and reports
/// each result.
pub async fn fire_drill(
    config: &NotifyConfig,
    host: &str,
    only: Option<&str>,
) -> Result<Vec<DrillResult>, String> {
    if let Some(name) = only
        && !config.receivers.iter().any(|r| r.name == name)
    {
        let names: Vec<&str> = config.receivers.iter().map(|r| r.name.as_str()).collect();
        return Err(format!(
            "no receiver named {name:?}; configured: {}",
            names.join(", ")
        ));
    }
    let selected: Vec<ReceiverConfig> = config
        .receivers
        .iter()
        .filter(|r| only.is_none_or(|n| r.name == n))
        .cloned()
        .collect();
    let receivers = build_receivers(&selected)?;
    let now = wall_millis();
    let sends = receivers.into_iter().map(|r| {
        let message = Message {
            id: format!("drill-{:016x}", fastrand::u64(..)),
            receiver: r.name().to_string(),
            group_key: format!(
                "{{}}/{{receiver=\"{}\"}}:{{alertname=\"LookoutFireDrill\"}}",
                r.name()
            ),
            created_ms: now,
            alerts: vec![drill_alert(host, now)],
            folded: 0,
            test: true,
        };
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
