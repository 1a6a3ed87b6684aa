//! Alertmanager receiver: hands alerts to an Alertmanager cluster through its API, as
//! Prometheus does, so Alertmanager's own routing, silences and inhibition apply.
//!
//! Flow: [`AlertmanagerReceiver::send`] renders the message once as a JSON array of
//! *postable alerts* ([`postable_alerts`]) and POSTs it to `<url>/api/v2/alerts` of **every**
//! configured URL at the same time: Alertmanager HA expects each client to talk to every
//! member (members gossip only notification state, and deduplicate among themselves).
//!
//! Outcome across the cluster (what Prometheus does too):
//!
//! | members                                   | result                                   |
//! |-------------------------------------------|------------------------------------------|
//! | at least one accepted (2xx)               | `Ok`; the others are logged              |
//! | none accepted, all failed permanently     | `Permanent`                              |
//! | none accepted, otherwise                  | `Retryable`, naming each failed member   |
//!
//! One accepting member is enough: the cluster notifies through it, and a member that was
//! down gets the firing alerts with the next periodic re-send. Waiting for every member
//! instead would let one dead member stop delivery to the live ones, open the circuit
//! breaker, and let the live members' copies expire. A retry resends to all members, which
//! is harmless: Alertmanager merges an alert it already has. Per-member classification is
//! the webhook's (5xx/429/408/timeouts/connection errors retry, other 4xx permanent); errors
//! name members by `scheme://host:port` only.
//!
//! Severity is a label, so to Alertmanager a warning that escalates to critical is two
//! alerts: an escalation or de-escalation also posts the previous severity's alert as
//! resolved, so it does not stay active until it expires.
//!
//! Expiry: Alertmanager resolves an alert by itself at its `endsAt`. A firing alert is sent
//! with `endsAt = now + 4 × resend_interval` (what Prometheus does with its resend delay), and
//! the dispatcher re-sends firing alerts every [`AlertmanagerReceiver::resend_interval`]; so
//! the alerts of an agent that crashed or lost its network expire after a few missed re-sends
//! instead of firing forever. A resolved alert carries its real `endsAt`.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::webhook::{http_client, origin, parse_url, post, wire_labels};
use super::{AlertPayload, Message, Receiver, SendError, rfc3339};
use crate::rules::LabelSet;
use crate::rules::engine::Status;
use crate::rules::model::Severity;
use crate::rules::state::Kind;
use crate::store::Millis;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{MAX_RECEIVER_TIMEOUT, MIN_RECEIVER_TIMEOUT};
use crate::config::secret::redact_url;
use crate::config::{Checker, Text};

/// API path appended to each configured base URL.
pub const ALERTS_PATH: &str = "api/v2/alerts";

/// How many `resend_interval`s a firing alert stays valid without being re-sent.
pub const EXPIRY_RESENDS: i64 = 4;

/// Delivers messages to every member of an Alertmanager cluster.
pub struct AlertmanagerReceiver {
    name: String,
    /// `<base>/api/v2/alerts` of each member.
    urls: Vec<reqwest::Url>,
    resend_interval: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for AlertmanagerReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Origins only: a base URL may carry credentials.
        let members: Vec<String> = self.urls.iter().map(origin).collect();
        f.debug_struct("AlertmanagerReceiver")
            .field("name", &self.name)
            .field("members", &members)
            .field("resend_interval", &self.resend_interval)
            .finish()
    }
}

impl AlertmanagerReceiver {
    /// Builds the receiver and one HTTP client bounded by `cfg.timeout`. Fails on an empty URL
    /// list, a URL that is not `http(s)://`, or a client that cannot be built.
    pub fn new(name: &str, cfg: &AlertmanagerConfig) -> Result<Self, String> {
        if cfg.urls.is_empty() {
            return Err(format!("alertmanager `{name}`: no URL"));
        }
        let mut urls = Vec::with_capacity(cfg.urls.len());
        for (i, raw) in cfg.urls.iter().enumerate() {
            let base =
                parse_url(raw).map_err(|e| format!("alertmanager `{name}` URL #{}: {e}", i + 1))?;
            urls.push(alerts_url(base));
        }
        let client = http_client(cfg.timeout).map_err(|e| format!("alertmanager `{name}`: {e}"))?;
        Ok(AlertmanagerReceiver {
            name: name.to_string(),
            urls,
            resend_interval: cfg.resend_interval,
            client,
        })
    }

    /// How often the dispatcher must re-send firing alerts (Alertmanager expires alerts that are
    /// not re-sent; see the module docs).
    pub fn resend_interval(&self) -> Duration {
        self.resend_interval
    }

    async fn deliver(&self, message: &Message) -> Result<(), SendError> {
        let body = serde_json::to_vec(&postable_alerts(
            message,
            crate::clock::wall_millis(),
            self.resend_interval,
        ))
        .map_err(|e| SendError::Permanent(format!("encoding the body: {e}")))?;
        let mut headers = HeaderMap::new();
        if let Ok(id) = HeaderValue::from_str(&message.id) {
            headers.insert(HeaderName::from_static("idempotency-key"), id);
        }
        // Every member at once, each bounded by the client timeout.
        let mut tasks = tokio::task::JoinSet::new();
        for (i, url) in self.urls.iter().enumerate() {
            let (client, url, headers, body) = (
                self.client.clone(),
                url.clone(),
                headers.clone(),
                body.clone(),
            );
            tasks.spawn(async move { (i, post(&client, url, headers, body).await) });
        }
        let mut failures: Vec<(usize, SendError)> = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((i, Err(e))) => failures.push((i, e)),
                // A panicked or cancelled task: treat like a transient failure of some member.
                Err(e) => failures.push((
                    usize::MAX,
                    SendError::Retryable(format!("send task failed: {e}")),
                )),
            }
        }
        failures.sort_by_key(|(i, _)| *i);
        let outcome = summarize(&self.urls, &failures);
        if outcome.is_ok() && !failures.is_empty() {
            tracing::warn!(
                receiver = %self.name,
                failed = %describe(&self.urls, &failures),
                "delivered to part of the Alertmanager cluster; the next re-send reaches the rest"
            );
        }
        outcome
    }
}

/// Folds per-member failures into one outcome (the table in the module docs).
fn summarize(urls: &[reqwest::Url], failures: &[(usize, SendError)]) -> Result<(), SendError> {
    if failures.len() < urls.len() {
        return Ok(());
    }
    let text = describe(urls, failures);
    let all_permanent = failures
        .iter()
        .all(|(_, e)| matches!(e, SendError::Permanent(_)));
    if all_permanent {
        Err(SendError::Permanent(text))
    } else {
        // One member accepting is enough: the soonest a member said it may accept again,
        // when every member that can recover said when.
        let soonest = failures
            .iter()
            .filter(|(_, e)| e.is_retryable())
            .map(|(_, e)| e.retry_after())
            .collect::<Option<Vec<_>>>()
            .and_then(|waits| waits.into_iter().min());
        Err(SendError::retry(
            format!("none of {} Alertmanagers accepted: {text}", urls.len()),
            soonest,
        ))
    }
}

/// `member: reason; ...` for the failed members.
fn describe(urls: &[reqwest::Url], failures: &[(usize, SendError)]) -> String {
    failures
        .iter()
        .map(|(i, e)| {
            let member = urls.get(*i).map_or_else(|| "?".to_string(), origin);
            let reason = e.text();
            format!("{member}: {reason}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

super::receiver_delivering!(AlertmanagerReceiver, "alertmanager");

/// `<base>/api/v2/alerts`, keeping any path prefix of the base (`http://h/am/` -> `/am/api/...`).
fn alerts_url(mut base: reqwest::Url) -> reqwest::Url {
    let path = format!("{}/{ALERTS_PATH}", base.path().trim_end_matches('/'));
    base.set_path(&path);
    base
}

/// The JSON array of postable alerts for `message` at `now_ms`: labels (instance labels,
/// `alertname`, `severity`, and `lookout_test` for a fire drill), annotations, `startsAt`, and
/// `endsAt` (the real end when resolved; `now + 4 × resend_interval` while firing). An
/// escalation or de-escalation is followed by the previous severity's alert, resolved now.
/// `generatorURL` is omitted.
pub fn postable_alerts(message: &Message, now_ms: Millis, resend_interval: Duration) -> Value {
    let resend = Millis::try_from(resend_interval.as_millis()).unwrap_or(Millis::MAX);
    let expiry = now_ms.saturating_add(resend.saturating_mul(EXPIRY_RESENDS));
    let postable = |a: &AlertPayload, labels: LabelSet, ends: Millis| {
        json!({
            "labels": labels,
            "annotations": a.annotations,
            "startsAt": rfc3339(a.starts_at),
            "endsAt": rfc3339(ends),
        })
    };
    let mut alerts = Vec::with_capacity(message.alerts.len());
    for a in &message.alerts {
        let ends = match a.status {
            Status::Firing => expiry,
            Status::Resolved => a.ends_at.unwrap_or(now_ms),
        };
        alerts.push(postable(a, wire_labels(a, message.test), ends));
        let previous = match a.kind {
            Kind::Escalated => Some(Severity::Warning),
            Kind::DeEscalated => Some(Severity::Critical),
            Kind::Firing | Kind::Repeat | Kind::Resolved => None,
        };
        if let Some(previous) = previous {
            let mut labels = wire_labels(a, message.test);
            labels.insert("severity".into(), previous.as_str().into());
            alerts.push(postable(a, labels, now_ms));
        }
    }
    Value::Array(alerts)
}

// Configuration: the `alertmanager:` kind of a receiver entry.

/// Default `alertmanager.timeout`.
pub const DEFAULT_ALERTMANAGER_TIMEOUT: Duration = Duration::from_secs(10);

/// Default `alertmanager.resend_interval`.
pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(60);

/// Shortest accepted `alertmanager.resend_interval`.
pub const MIN_RESEND_INTERVAL: Duration = Duration::from_secs(10);

/// Longest accepted `alertmanager.resend_interval` (Alertmanager's default
/// `resolve_timeout`: an alert not re-sent within it resolves on its own).
pub const MAX_RESEND_INTERVAL: Duration = Duration::from_secs(300);

/// `alertmanager:` receiver settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertmanager {
    /// Base URLs of every Alertmanager of the cluster; absent (or empty): a problem.
    pub urls: Option<Spanned<Vec<Text>>>,
    /// Bound on one request, from `1s` to `5m`; absent: `10s`.
    pub timeout: Option<Text>,
    /// How often firing alerts are sent again, from `10s` to `5m`; absent: `1m`.
    pub resend_interval: Option<Text>,
}

/// `alertmanager:` receiver settings. `Debug` shows the URLs redacted to
/// `scheme://host:port` ([`redact_url`]): a base URL may carry basic auth.
#[derive(Clone, PartialEq)]
pub struct AlertmanagerConfig {
    /// Base URLs of every Alertmanager of the cluster (`http://am-1:9093`).
    pub urls: Vec<String>,
    /// Bound on one request.
    pub timeout: Duration,
    /// How often firing alerts are sent again (Alertmanager forgets alerts not re-sent).
    pub resend_interval: Duration,
}

impl std::fmt::Debug for AlertmanagerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| redact_url(u)).collect();
        f.debug_struct("AlertmanagerConfig")
            .field("urls", &urls)
            .field("timeout", &self.timeout)
            .field("resend_interval", &self.resend_interval)
            .finish()
    }
}

/// The `alertmanager` receiver kind.
#[derive(Debug)]
pub struct AlertmanagerKind;

impl super::Integration for AlertmanagerKind {
    const KEY: &'static str = "alertmanager";
    const EXAMPLE: &'static str = r#"  - name: am
    alertmanager: {urls: ["http://127.0.0.1:9093"]}"#;
    type Raw = RawAlertmanager;
    type Config = AlertmanagerConfig;

    fn check(
        raw: &Spanned<RawAlertmanager>,
        base: &str,
        c: &mut Checker<'_>,
    ) -> Option<AlertmanagerConfig> {
        let at = &raw.referenced;
        let raw = &raw.value;
        let mut valid = true;
        let mut urls: Vec<String> = Vec::new();
        match c.required_list(
            base,
            at,
            "urls",
            raw.urls.as_ref(),
            "every Alertmanager of the cluster",
            "must list at least one URL",
        ) {
            None => valid = false,
            Some(list) => {
                for (i, text) in list.iter().enumerate() {
                    let path = format!("{base}.urls[{i}]");
                    match c.http_url(&path, text) {
                        Some(url) if urls.contains(&url) => {
                            c.report(&path, Some(&text.referenced), "duplicate URL");
                            valid = false;
                        }
                        Some(url) => urls.push(url),
                        None => valid = false,
                    }
                }
            }
        }
        let timeout = c.duration(
            &format!("{base}.timeout"),
            raw.timeout.as_ref(),
            DEFAULT_ALERTMANAGER_TIMEOUT,
            MIN_RECEIVER_TIMEOUT,
            Some(MAX_RECEIVER_TIMEOUT),
        );
        let resend_interval = c.duration(
            &format!("{base}.resend_interval"),
            raw.resend_interval.as_ref(),
            DEFAULT_RESEND_INTERVAL,
            MIN_RESEND_INTERVAL,
            Some(MAX_RESEND_INTERVAL),
        );
        let (timeout, resend_interval) = (timeout?, resend_interval?);
        valid.then_some(AlertmanagerConfig {
            urls,
            timeout,
            resend_interval,
        })
    }

    fn build(
        name: &str,
        config: &AlertmanagerConfig,
    ) -> Result<std::sync::Arc<dyn Receiver>, String> {
        Ok(std::sync::Arc::new(AlertmanagerReceiver::new(
            name, config,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Receiver;
    use crate::notify::webhook::tests::{alert, message, provider};
    use crate::rules::model::Severity;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn config(urls: Vec<String>) -> AlertmanagerConfig {
        AlertmanagerConfig {
            urls,
            timeout: Duration::from_secs(5),
            resend_interval: Duration::from_secs(60),
        }
    }

    #[test]
    fn debug_shows_origins_only() {
        let cfg = config(vec!["http://am:pa55w0rd@127.0.0.1:9093/prefix".into()]);
        let debug = format!("{cfg:?}");
        assert!(
            debug.contains("http://<redacted>@127.0.0.1:9093/<redacted>")
                && !debug.contains("pa55w0rd")
                && !debug.contains("prefix"),
            "{debug}"
        );
        provider();
        let r = AlertmanagerReceiver::new("am", &cfg).unwrap();
        assert!(!format!("{r:?}").contains("pa55w0rd"), "{r:?}");
    }

    #[test]
    fn postable_alert_shape() {
        let m = message(
            vec![
                alert("HostCpuHigh", "web-1", Status::Firing, Severity::Critical),
                alert("HostCpuHigh", "web-2", Status::Resolved, Severity::Warning),
            ],
            false,
        );
        let now = 1_700_000_700_000;
        let v = postable_alerts(&m, now, Duration::from_secs(60));
        let a = &v[0];
        assert_eq!(
            a["labels"],
            json!({"alertname": "HostCpuHigh", "cpu": "total", "host": "web-1", "severity": "critical"})
        );
        assert_eq!(a["annotations"]["summary"], "HostCpuHigh on web-1");
        assert_eq!(a["startsAt"], "2023-11-14T22:13:20.123Z");
        // Firing: expires 4 resend intervals (4 min) after now unless re-sent.
        assert_eq!(a["endsAt"], rfc3339(now + 240_000));
        assert!(a.get("generatorURL").is_none());
        // Resolved: its real end.
        assert_eq!(v[1]["endsAt"], "2023-11-14T22:23:20.000Z");
        let t = postable_alerts(
            &message(
                vec![alert("X", "a", Status::Firing, Severity::Warning)],
                true,
            ),
            now,
            Duration::ZERO,
        );
        assert_eq!(t[0]["labels"]["lookout_test"], "true");
    }

    #[test]
    fn a_severity_change_resolves_the_previous_severitys_alert() {
        let now = 1_700_000_700_000;
        for (kind, severity, previous) in [
            (Kind::Escalated, Severity::Critical, "warning"),
            (Kind::DeEscalated, Severity::Warning, "critical"),
        ] {
            let mut a = alert("HostCpuHigh", "web-1", Status::Firing, severity);
            a.kind = kind;
            let v = postable_alerts(&message(vec![a], false), now, Duration::from_secs(60));
            assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
            assert_eq!(v[0]["labels"]["severity"], severity.as_str());
            assert_eq!(v[0]["endsAt"], rfc3339(now + 240_000));
            assert_eq!(v[1]["labels"]["severity"], previous);
            assert_eq!(v[1]["labels"]["alertname"], "HostCpuHigh");
            assert_eq!(v[1]["endsAt"], rfc3339(now), "the old severity ends now");
        }
        // A first firing or a repeat has nothing to resolve.
        let mut a = alert("HostCpuHigh", "web-1", Status::Firing, Severity::Critical);
        a.kind = Kind::Repeat;
        let v = postable_alerts(&message(vec![a], false), now, Duration::from_secs(60));
        assert_eq!(v.as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn alerts_url_keeps_prefixes() {
        // (configured base, POST target)
        let rows = [
            ("http://am:9093", "http://am:9093/api/v2/alerts"), // bare host
            ("http://am:9093/", "http://am:9093/api/v2/alerts"), // trailing slash
            (
                "https://x/alertmanager/",
                "https://x/alertmanager/api/v2/alerts",
            ), // behind a path prefix
        ];
        for (base, expected) in rows {
            assert_eq!(
                alerts_url(reqwest::Url::parse(base).unwrap()).as_str(),
                expected,
                "{base}"
            );
        }
    }

    #[test]
    fn cluster_outcome() {
        let urls: Vec<reqwest::Url> = ["http://a:1", "http://b:2"]
            .iter()
            .map(|u| reqwest::Url::parse(u).unwrap())
            .collect();
        let p = || SendError::Permanent("HTTP 400".into());
        let r = || SendError::Retryable("HTTP 503".into());
        // All accepted.
        assert_eq!(summarize(&urls, &[]), Ok(()));
        // Every member rejected the payload: permanent.
        assert!(matches!(
            summarize(&urls, &[(0, p()), (1, p())]),
            Err(SendError::Permanent(_))
        ));
        // One member down or rejecting, the other accepted: delivered (the cluster notifies
        // through the live member; the periodic re-send reaches the other later).
        assert_eq!(summarize(&urls, &[(1, r())]), Ok(()));
        assert_eq!(summarize(&urls, &[(0, p())]), Ok(()));
        // None accepted, one of them down: retry, naming both.
        let none = summarize(&urls, &[(0, p()), (1, r())]);
        assert!(
            matches!(&none, Err(SendError::Retryable(t)) if t.contains("http://b:2") && t.contains("http://a:1")),
            "{none:?}"
        );
    }

    /// A fake member answering `status` to every request, counting requests.
    async fn member(status: u16) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Read until the JSON array closes: enough for these small bodies.
                    while !buf.ends_with(b"]") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    assert!(head.starts_with("POST /api/v2/alerts HTTP/1.1"), "{head}");
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                });
            }
        });
        (format!("http://{addr}"), hits)
    }

    #[tokio::test]
    async fn sends_to_every_member() {
        provider();
        let m = message(
            vec![alert("X", "a", Status::Firing, Severity::Warning)],
            false,
        );
        let (ok1, hits1) = member(200).await;
        let (ok2, hits2) = member(200).await;
        let (down, _) = member(503).await;
        let (bad, _) = member(400).await;
        let r = AlertmanagerReceiver::new("am", &config(vec![ok1.clone(), ok2.clone()])).unwrap();
        assert_eq!(r.kind(), "alertmanager");
        assert_eq!(r.resend_interval(), Duration::from_secs(60));
        r.send(&m).await.unwrap();
        assert_eq!(hits1.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(hits2.load(std::sync::atomic::Ordering::SeqCst), 1);

        // One member answering 503: delivered through the other.
        let r = AlertmanagerReceiver::new("am", &config(vec![ok1.clone(), down.clone()])).unwrap();
        assert_eq!(r.send(&m).await, Ok(()));
        assert_eq!(hits1.load(std::sync::atomic::Ordering::SeqCst), 2);
        // One member not listening at all: delivered through the other, at once.
        let closed = format!("http://127.0.0.1:{}", {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        });
        let r = AlertmanagerReceiver::new("am", &config(vec![closed, ok2.clone()])).unwrap();
        assert_eq!(r.send(&m).await, Ok(()));
        assert_eq!(hits2.load(std::sync::atomic::Ordering::SeqCst), 2);
        // Every member down: retry, naming them.
        let r = AlertmanagerReceiver::new("am", &config(vec![down.clone()])).unwrap();
        let got = r.send(&m).await;
        assert!(
            matches!(&got, Err(SendError::Retryable(t)) if t.contains(&down) && t.contains("503")),
            "{got:?}"
        );

        let r = AlertmanagerReceiver::new("am", &config(vec![bad.clone()])).unwrap();
        assert!(matches!(r.send(&m).await, Err(SendError::Permanent(_))));
    }

    #[test]
    fn rejects_bad_config() {
        provider();
        assert!(AlertmanagerReceiver::new("am", &config(vec![])).is_err());
        assert!(AlertmanagerReceiver::new("am", &config(vec!["am:9093".into()])).is_err());
        let r = AlertmanagerReceiver::new("am", &config(vec!["http://user:pw@am:9093".into()]))
            .unwrap();
        assert!(!format!("{r:?}").contains("pw"));
    }
}
