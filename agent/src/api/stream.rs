//! `GET /api/v1/stream`: everything the agent knows, live, as Server-Sent Events.
//!
//! The first event, `snapshot`, holds every present series (histogram parts left out) and
//! the alerts, score, collectors and agent facts; each later `update` holds only what changed
//! since the previous event: series whose latest point is new, series gone, and the other
//! parts when they differ. Series are named by [`exposition::series_key`] (exposition syntax
//! without `host`), each as `[value, time_ms]` (`null` for NaN and infinities).
//!
//! Bounds:
//! - An event is built when the store changes ([`crate::live::Live`], a `watch` that keeps
//!   only the latest generation), at most one per [`THROTTLE`]: a change reaches the client
//!   within that of the collection that saw it.
//! - Events are built on demand, when hyper asks for the next one: a client that reads
//!   slowly gets one event covering everything that changed meanwhile, never a queue. What
//!   a stream keeps is the key and time of each series it sent (the size of `/metrics`'
//!   names), and the last text of each other part. A client that reads nothing for the
//!   server's write stall timeout is closed by [`super::server`].
//! - At most [`MAX_STREAMS`] streams are open at once; one more is a 503 with `Retry-After`.
//! - A comment (`: keep-alive`) every [`HEARTBEAT`] keeps proxies and the console's watchdog
//!   from taking a quiet stream for a dead one.
//! - Streams end when the server stops, so they never hold the shutdown.
//! - Alerts: at most [`MAX_ALERTS`] instances (firing first, then by severity and age)
//!   beside their total, each saying whether a silence, a maintenance window or an
//!   inhibition mutes it (as `GET /api/v1/alerts` does).
//! - Top processes: the two lists of the processes collector's last run, at most
//!   `collect.processes.top` (100) each; they change once per run of that collector.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as AxumState;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;

use super::silences::muting_fields;
use super::{ApiError, exposition};
use crate::clock::wall_millis;
use crate::collect::processes::TopView;
use crate::live::MAX_STREAMS;
use crate::rules::engine::ActiveAlert;
use crate::rules::model::{Severity, Threshold};
use crate::rules::state::Phase;
use crate::sample::Part;
use crate::state::State;
use crate::store::Millis;

/// Least time between two events of one stream.
pub const THROTTLE: Duration = Duration::from_millis(250);
/// A comment is sent after this long without an event.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Most alert instances in one event.
pub const MAX_ALERTS: usize = 500;
/// What an `EventSource` waits before it reconnects (the console reconnects by itself).
const RETRY: Duration = Duration::from_secs(2);

/// What one stream has sent: the time of each series' latest point, and the text of the
/// other parts.
#[derive(Debug, Default)]
pub struct Client {
    sent: HashMap<String, Millis>,
    parts: BTreeMap<&'static str, String>,
    started: bool,
}

/// The next event for `client`: `("snapshot", data)` first, then `("update", data)` with
/// what changed, or `None` when nothing did.
pub fn next_event(state: &State, client: &mut Client) -> Option<(&'static str, String)> {
    let first = !client.started;
    client.started = true;
    let mut doc = Map::new();
    doc.insert("time".into(), json!(wall_millis()));

    // The store first, released before the engine is locked: the rules task takes them in
    // that order.
    let mut sent = HashMap::with_capacity(client.sent.len());
    let mut series = Map::new();
    {
        let store = state.store();
        for (key, s) in store.present() {
            if key.part != Part::Value {
                continue;
            }
            let name = exposition::series_key(key);
            if client.sent.get(&name) != Some(&s.latest.0) {
                series.insert(name.clone(), json!([finite(s.latest.1), s.latest.0]));
            }
            sent.insert(name, s.latest.0);
        }
    }
    let mut gone: Vec<&String> = client
        .sent
        .keys()
        .filter(|k| !sent.contains_key(*k))
        .collect();
    gone.sort();
    let changed_series = !series.is_empty() || !gone.is_empty();
    if first || !gone.is_empty() {
        doc.insert("gone".into(), json!(gone));
    }
    doc.insert("series".into(), Value::Object(series));
    client.sent = sent;

    let mut changed_parts = false;
    for (part, value) in parts(state) {
        let Some(value) = value else { continue };
        let text = value.to_string();
        if client.parts.get(part) != Some(&text) {
            client.parts.insert(part, text);
            doc.insert(part.into(), value);
            changed_parts = true;
        }
    }
    if first {
        return Some(("snapshot", Value::Object(doc).to_string()));
    }
    (changed_series || changed_parts).then(|| ("update", Value::Object(doc).to_string()))
}

/// A number JSON can carry: NaN and infinities become `null`.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// The parts beside the series, each compared with what the stream sent last; `None`: keep
/// what was sent (delivery restarting during a reload).
fn parts(state: &State) -> [(&'static str, Option<Value>); 5] {
    let collectors: BTreeMap<String, Value> = state
        .status()
        .into_iter()
        .map(|(name, run)| {
            let up = if run.runs == 0 {
                Value::Null
            } else {
                json!(run.up)
            };
            let target_error = run.target_error;
            (
                name,
                json!({ "up": up, "error": run.last_error, "target_error": target_error }),
            )
        })
        .collect();
    let (alerts, thresholds) = alerts_and_thresholds(state);
    // Without delivery (restarting during a reload) the receivers are unknown for a moment:
    // the agent part stays as it was sent.
    let agent = state.delivery().map(|(_, config)| {
        let receivers: Vec<Value> = config
            .receivers
            .iter()
            .map(|r| json!({ "name": r.name, "kind": r.kind.key() }))
            .collect();
        json!({
            "host": state.hostname(),
            "version": env!("CARGO_PKG_VERSION"),
            "receivers": receivers,
            "thresholds": thresholds,
        })
    });
    [
        ("agent", agent),
        ("alerts", Some(alerts)),
        ("score", Some(json!(state.score()))),
        ("collectors", Some(json!(collectors))),
        ("processes", Some(processes(state))),
    ]
}

/// The top processes of the processes collector's last run, both lists (it changes once
/// per run at most); `null` while they are off or before the first run.
fn processes(state: &State) -> Value {
    match state.processes().view() {
        TopView::Lists(lists, top) => json!({
            "at": lists.at,
            "interval_seconds": lists.interval_seconds,
            "top": top,
            "by_cpu": lists.by_cpu,
            "by_memory": lists.by_memory,
        }),
        TopView::Off(_) | TopView::Waiting => Value::Null,
    }
}

/// The active alerts (firing first, critical first, oldest first; at most [`MAX_ALERTS`]),
/// each with whether and why it is muted (silenced, in maintenance, inhibited), with the
/// worst severity, and the thresholds of the rules whose expression is a bare
/// metric name (the console colours that metric's figures by them).
fn alerts_and_thresholds(state: &State) -> (Value, Value) {
    let engine = state.engine();
    let exprs: HashMap<&str, &str> = engine
        .rules()
        .iter()
        .map(|r| (r.alert.as_str(), r.expr_text.as_str()))
        .collect();
    let mut thresholds = Map::new();
    for rule in engine.rules() {
        let metric = rule.expr_text.trim();
        if crate::catalogue::lookup(metric).is_some() && !thresholds.contains_key(metric) {
            let t = |t: &Option<Threshold>| t.map(|t| json!([t.op.as_str(), t.value]));
            thresholds.insert(
                metric.to_string(),
                json!({ "warning": t(&rule.conditions.warning), "critical": t(&rule.conditions.critical) }),
            );
        }
    }
    let mut active = engine.active();
    let total = active.len();
    active.sort_by_key(order);
    // Why each is not notified now, as `GET /api/v1/alerts` says it (the engine, then the
    // muter: the order that API takes them in).
    let firing: Vec<_> = engine.firing().collect();
    let firing: Vec<_> = firing
        .iter()
        .map(|(a, l, s)| (a.as_ref(), *l, *s))
        .collect();
    let muter = state.muter();
    let now = wall_millis();
    let items: Vec<Value> = active
        .iter()
        .take(MAX_ALERTS)
        .map(|a| {
            let mut item = json!({
                "alert": a.alert,
                "labels": a.labels,
                "state": a.state,
                "severity": a.severity,
                "active_since": a.active_since,
                "firing_since": a.firing_since,
                "value": a.value.and_then(finite),
                "expr": exprs.get(a.alert.as_str()),
            });
            if let Value::Object(fields) = &mut item {
                fields.extend(muting_fields(
                    &muter,
                    (&a.alert, &a.labels, a.severity),
                    &firing,
                    now,
                ));
            }
            item
        })
        .collect();
    drop(muter);
    let alerts = json!({ "health": engine.health(), "total": total, "items": items });
    (alerts, Value::Object(thresholds))
}

/// Firing before pending, critical before warning, the oldest first, then by name.
fn order(a: &ActiveAlert) -> (u8, u8, Millis, String) {
    let firing = u8::from(a.state != Phase::Firing);
    let severity = match a.severity {
        Some(Severity::Critical) => 0,
        Some(Severity::Warning) => 1,
        None => 2,
    };
    let since = a.firing_since.or(a.active_since).unwrap_or(Millis::MAX);
    (firing, severity, since, a.alert.clone())
}

/// What a stream carries between two events.
struct Stream {
    state: Arc<State>,
    client: Client,
    changes: watch::Receiver<u64>,
    closing: watch::Receiver<bool>,
    last: Option<Instant>,
    /// The stream's slot, given back when the stream is dropped.
    _slot: OwnedSemaphorePermit,
}

impl Stream {
    /// The next event; `None` when the server stops.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.client.started {
                tokio::select! {
                    changed = self.changes.changed() => changed.ok()?,
                    _ = self.closing.wait_for(|c| *c) => return None,
                }
                if let Some(last) = self.last {
                    tokio::select! {
                        _ = tokio::time::sleep_until(last + THROTTLE) => {}
                        _ = self.closing.wait_for(|c| *c) => return None,
                    }
                }
            }
            if *self.closing.borrow() {
                return None;
            }
            // What changed during the wait is in this event.
            self.changes.borrow_and_update();
            if let Some((kind, data)) = next_event(&self.state, &mut self.client) {
                self.last = Some(Instant::now());
                let event = Event::default().event(kind).data(data);
                return Some(if kind == "snapshot" {
                    event.retry(RETRY)
                } else {
                    event
                });
            }
        }
    }
}

pub(crate) async fn stream(AxumState(state): AxumState<Arc<State>>) -> Response {
    let live = state.live();
    if live.is_closing() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping")
            .into_response();
    }
    let Some(slot) = live.try_open() else {
        let mut refused = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} live streams are open, the most the agent serves at once; close a console tab or try again later"),
        )
        .into_response();
        refused
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return refused;
    };
    let stream = Stream {
        changes: live.subscribe(),
        closing: live.closing(),
        state: state.clone(),
        client: Client::default(),
        last: None,
        _slot: slot,
    };
    let events = futures_util::stream::unfold(stream, |mut stream| async move {
        let event = stream.next().await?;
        Some((Ok::<Event, Infallible>(event), stream))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("keep-alive"))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Proxies that buffer answers (nginx) pass this one through as it comes.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::LOAD1;
    use crate::collect::processes::{TopLists, TopProcess};
    use crate::rules::engine::Engine;
    use crate::sample::Sample;
    use crate::store::fs_usage;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn state() -> Arc<State> {
        let (reload, _) = tokio::sync::mpsc::channel(1);
        Arc::new(State::new(
            "h".into(),
            reload,
            Engine::new(Vec::new(), Vec::new()),
        ))
    }

    fn event(state: &State, client: &mut Client) -> Option<(&'static str, Value)> {
        next_event(state, client)
            .map(|(kind, data)| (kind, serde_json::from_str(&data).expect("JSON")))
    }

    const ROOT: &str =
        r#"lookout_filesystem_usage_ratio{mountpoint="/",device="/dev/vda",fstype="ext4"}"#;
    const DATA: &str =
        r#"lookout_filesystem_usage_ratio{mountpoint="/data",device="/dev/vda",fstype="ext4"}"#;

    #[test]
    fn a_snapshot_first_then_only_what_changed() {
        let state = state();
        state.update_status("load", |s| s.runs = 1);
        state
            .store_mut()
            .apply("load", vec![Sample::new(&LOAD1, 0.5)], 1_000);
        state.store_mut().apply(
            "filesystem",
            vec![fs_usage("/", 0.5), fs_usage("/data", f64::NAN)],
            1_000,
        );
        let mut client = Client::default();
        let (kind, doc) = event(&state, &mut client).expect("a snapshot");
        assert_eq!(kind, "snapshot");
        assert_eq!(doc["series"]["lookout_load1"], json!([0.5, 1_000]));
        assert_eq!(doc["series"][ROOT], json!([0.5, 1_000]));
        // JSON has no NaN.
        assert_eq!(doc["series"][DATA], json!([null, 1_000]));
        assert_eq!(doc["gone"], json!([]));
        assert_eq!(doc["alerts"]["health"], "ok");
        assert_eq!(doc["alerts"]["total"], 0);
        assert_eq!(
            doc["collectors"]["load"],
            json!({ "up": false, "error": null, "target_error": null })
        );
        assert_eq!(doc["score"], Value::Null);
        // Delivery is not running: the agent part waits for it.
        assert!(doc.get("agent").is_none(), "{doc}");
        // No processes collector has run: no top lists.
        assert_eq!(doc["processes"], Value::Null);

        // Nothing new: no event.
        assert!(event(&state, &mut client).is_none());

        // A new point (the same value, at a new time: rates need it), a mount gone.
        state
            .store_mut()
            .apply("load", vec![Sample::new(&LOAD1, 0.5)], 2_000);
        state
            .store_mut()
            .apply("filesystem", vec![fs_usage("/", 0.5)], 2_000);
        let (kind, doc) = event(&state, &mut client).expect("an update");
        assert_eq!(kind, "update");
        let series = doc["series"].as_object().expect("series");
        assert_eq!(series.len(), 2, "{doc}");
        assert_eq!(series["lookout_load1"], json!([0.5, 2_000]));
        assert_eq!(doc["gone"], json!([DATA]));
        for unchanged in ["alerts", "collectors", "score", "processes"] {
            assert!(
                doc.get(unchanged).is_none(),
                "{unchanged} sent again: {doc}"
            );
        }

        // A part that changes is sent alone.
        state.update_status("load", |s| s.last_error = Some("boom".into()));
        let (_, doc) = event(&state, &mut client).expect("an update");
        assert_eq!(doc["collectors"]["load"]["error"], "boom");
        assert!(doc["series"].as_object().expect("series").is_empty());
        assert!(doc.get("gone").is_none());
        // So does a watched server going down while its collector runs fine.
        state.update_status("load", |s| s.target_error = Some("refused".into()));
        let (_, doc) = event(&state, &mut client).expect("an update");
        assert_eq!(doc["collectors"]["load"]["target_error"], "refused");

        // The top lists of a run are sent once, when they change.
        state
            .processes()
            .configure(true, 2, std::time::Duration::from_secs(10));
        state.processes().publish(TopLists {
            at: 1_800_000_000,
            interval_seconds: 10.0,
            by_cpu: Vec::new(),
            by_memory: vec![TopProcess {
                pid: 7,
                name: "api".into(),
                user: "app".into(),
                cmdline: "uvicorn app:main".into(),
                cpu_ratio: None,
                rss_bytes: 1 << 20,
            }],
        });
        let (_, doc) = event(&state, &mut client).expect("an update");
        assert_eq!(doc["processes"]["top"], 2);
        assert_eq!(doc["processes"]["by_memory"][0]["name"], "api");
        assert_eq!(doc["processes"]["by_cpu"], json!([]));
        assert!(event(&state, &mut client).is_none(), "sent once");
    }

    /// Rules on load1 that always fire: one silenced, one in a maintenance window, one
    /// inhibited by another, one not muted.
    const MUTED_RULES: &str = "groups:\n  - name: g\n    rules:\n      - alert: Quiet\n        expr: lookout_load1\n        warning: \">= 0\"\n      - alert: Nightly\n        expr: lookout_load1\n        warning: \">= 0\"\n      - alert: RedisDown\n        expr: lookout_load1\n        critical: \">= 0\"\n      - alert: RedisSlow\n        expr: lookout_load1\n        warning: \">= 0\"\n";

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The alert items of an event's `alerts` part, by alert name.
    fn items_by_name(doc: &Value) -> BTreeMap<String, Value> {
        doc["alerts"]["items"]
            .as_array()
            .expect("alert items")
            .iter()
            .map(|a| (a["alert"].as_str().expect("name").to_string(), a.clone()))
            .collect()
    }

    #[test]
    fn alerts_say_whether_and_why_they_are_muted_and_change_when_a_silence_ends() {
        use crate::rules::load::{Defaults, parse_file};
        use crate::rules::mute::MaintenanceWindow;
        use crate::rules::mute::inhibit::InhibitRule;
        use crate::rules::mute::matchers::Matchers;
        use crate::rules::mute::silence::Silence;

        let defaults = Defaults {
            evaluation_interval: Duration::from_secs(10),
            stale_after: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(3600),
        };
        let mut problems = Vec::new();
        let rules = parse_file(MUTED_RULES, "t.yaml", &defaults, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let (reload, _) = tokio::sync::mpsc::channel(1);
        let state = Arc::new(State::new(
            "h".into(),
            reload,
            Engine::new(rules, Vec::new()),
        ));
        state
            .store_mut()
            .apply("load", vec![Sample::new(&LOAD1, 0.5)], 1_000);
        {
            let store = state.store();
            let fired = state.engine().evaluate(&store, "h", 1_000);
            assert_eq!(fired.len(), 4, "{fired:?}");
        }
        let now = wall_millis();
        {
            let mut muter = state.muter();
            muter.created.push(
                Silence::new(
                    "abc123".into(),
                    map(&[("alert", "Quiet"), ("host", "h")]),
                    now - 1_000,
                    now + 3_600_000,
                    "deploy".into(),
                    "ops".into(),
                    now - 1_000,
                )
                .expect("a silence"),
            );
            // Opens every minute for two: always open.
            muter.windows.push(MaintenanceWindow {
                name: "nightly-backup".into(),
                matchers: Matchers::parse(&map(&[("alert", "Nightly")]), false).expect("matchers"),
                schedule: crate::schedule::Cron::parse("* * * * *", "UTC").expect("cron"),
                duration_ms: 120_000,
            });
            muter.inhibit.push(
                InhibitRule::new(
                    &map(&[("alert", "RedisDown")]),
                    &map(&[("alert", "Redis.+")]),
                    vec!["host".into()],
                )
                .expect("an inhibition"),
            );
        }

        let mut client = Client::default();
        let (_, doc) = event(&state, &mut client).expect("a snapshot");
        let items = items_by_name(&doc);
        assert_eq!(items.len(), 4, "{doc}");
        let muted = |name: &str| {
            let a = &items[name];
            (
                a["silenced"].clone(),
                a["inhibited"].clone(),
                a["muted_by"].clone(),
            )
        };
        assert_eq!(
            muted("Quiet"),
            (
                json!(true),
                json!(false),
                json!([{ "by": "silence", "id": "abc123" }])
            )
        );
        assert_eq!(
            muted("Nightly"),
            (
                json!(true),
                json!(false),
                json!([{ "by": "maintenance", "name": "nightly-backup" }])
            )
        );
        assert_eq!(
            muted("RedisSlow"),
            (
                json!(false),
                json!(true),
                json!([{ "by": "inhibition", "source": "RedisDown" }])
            )
        );
        // The source matches `Redis.+` too, but never inhibits itself.
        assert_eq!(muted("RedisDown"), (json!(false), json!(false), json!([])));

        // The silence expires: the next event carries the alerts again, Quiet unmuted.
        assert!(event(&state, &mut client).is_none(), "nothing changed yet");
        state.muter().created[0].ends_ms = now;
        state
            .store_mut()
            .apply("load", vec![Sample::new(&LOAD1, 0.5)], 2_000);
        let (_, doc) = event(&state, &mut client).expect("an update");
        let items = items_by_name(&doc);
        assert_eq!(items["Quiet"]["silenced"], json!(false), "{doc}");
        assert_eq!(items["Quiet"]["muted_by"], json!([]), "{doc}");
        assert_eq!(items["Nightly"]["silenced"], json!(true), "{doc}");
    }

    #[tokio::test]
    async fn streams_over_the_bound_and_while_stopping_are_refused() {
        let state = state();
        let open: Vec<Response> = {
            let mut open = Vec::new();
            for _ in 0..MAX_STREAMS {
                let response = stream(AxumState(state.clone())).await;
                assert_eq!(response.status(), StatusCode::OK);
                open.push(response);
            }
            open
        };
        let refused = stream(AxumState(state.clone())).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "5");
        // A stream closed gives its slot back.
        drop(open);
        assert_eq!(
            stream(AxumState(state.clone())).await.status(),
            StatusCode::OK
        );
        state.live().close();
        assert_eq!(
            stream(AxumState(state.clone())).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    /// What arrives on `tcp` within `wait`, as text.
    async fn read_for(tcp: &mut tokio::net::TcpStream, wait: Duration) -> String {
        let mut out = Vec::new();
        let until = Instant::now() + wait;
        let mut buf = [0u8; 64 * 1024];
        while let Ok(Ok(n)) = tokio::time::timeout_at(until, tcp.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    // Paused time: the clock moves only when every task waits, so the server's own bounds
    // (10 s to send a request's head, 30 s of write stall) run as they would for real.
    #[tokio::test(start_paused = true)]
    async fn a_stream_outlives_the_server_timeouts_beats_and_ends_when_the_server_stops() {
        let state = state();
        let listener = super::super::server::listen(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(super::super::serve(listener, state.clone(), stopped));
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /api/v1/stream HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let head = read_for(&mut tcp, Duration::from_secs(1)).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        assert!(head.contains("event: snapshot"), "{head}");

        // A minute without a change: a heartbeat every 15 s, never cut.
        let quiet = read_for(&mut tcp, Duration::from_secs(61)).await;
        assert_eq!(quiet.matches(": keep-alive").count(), 4, "{quiet}");

        // A change arrives within the throttle.
        state
            .store_mut()
            .apply("load", vec![Sample::new(&LOAD1, 0.5)], 1_000);
        let change = read_for(&mut tcp, THROTTLE).await;
        assert!(change.contains("event: update"), "{change}");
        assert!(change.contains("lookout_load1"), "{change}");

        // Stopping ends the stream at once: the server does not wait out its grace.
        let started = Instant::now();
        stop.send(true).unwrap();
        server.await.unwrap().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let rest = read_for(&mut tcp, Duration::from_secs(1)).await;
        assert!(rest.ends_with("0\r\n\r\n"), "the body ends: {rest:?}");
    }
}
