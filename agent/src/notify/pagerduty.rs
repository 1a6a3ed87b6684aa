//! PagerDuty receiver: Events API v2, one event per alert.
//!
//! Flow: [`PagerDutyReceiver::send`] turns each alert of the message into one event
//! ([`events`]) and POSTs them one after the other to the enqueue URL. A firing alert is a
//! `trigger` with a payload (summary, source, severity, timestamp, custom details); a
//! resolved one a `resolve`. Both carry the alert's fingerprint as `dedup_key`, so
//! PagerDuty opens one incident per alert instance, folds repeats into it and closes it
//! with the resolve. Sending an event again is harmless (PagerDuty deduplicates by that
//! key), so a message whose events partly failed is retried whole.
//!
//! | answer                                     | result                                          |
//! |--------------------------------------------|-------------------------------------------------|
//! | 2xx (202 `{"status": "success", ...}`)     | that event is accepted                          |
//! | 400 `{"status": "invalid event", "message": ..., "errors": [...]}` | `Permanent`, with the message and the errors |
//! | 429, 5xx, timeouts, connection trouble     | `Retryable` (`Retry-After` honoured)            |
//! | other 4xx                                  | `Permanent`                                     |
//!
//! Over the events of one message: every event accepted is `Ok`; otherwise the message is
//! retried when any failure can be, and is a dead letter when every failure is permanent,
//! the reason naming each failed event.
//!
//! The routing key travels in the body only; nothing here shows it.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use serde_saphyr::Spanned;

use super::webhook::{
    Answer, Refusal, alert_detail, exchange, http_client, longest, parse_url, receiver_timeout,
    required_secret, service_url, truncate_utf16,
};
use super::{AlertPayload, Message, Receiver, SendError, rfc3339};
use crate::config::secret::{Secret, redact_url};
use crate::config::{Checker, Text};
use crate::rules::engine::Status;

/// Default `pagerduty.url`: the Events API v2 enqueue endpoint.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// Default `pagerduty.timeout`.
pub const DEFAULT_PAGERDUTY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `payload.summary`.
pub const MAX_SUMMARY: usize = 1024;
/// Length of a routing (integration) key.
pub const ROUTING_KEY_LEN: usize = 32;

/// Delivers messages to one PagerDuty service integration.
pub struct PagerDutyReceiver {
    name: String,
    url: reqwest::Url,
    routing_key: Secret,
    client: reqwest::Client,
}

impl PagerDutyReceiver {
    /// Builds the receiver and its HTTP client.
    pub fn new(name: &str, cfg: &PagerDutyConfig) -> Result<Self, String> {
        let url = parse_url(&cfg.url).map_err(|e| format!("pagerduty `{name}`: {e}"))?;
        let client = http_client(cfg.timeout).map_err(|e| format!("pagerduty `{name}`: {e}"))?;
        Ok(PagerDutyReceiver {
            name: name.to_string(),
            url,
            routing_key: cfg.routing_key.clone(),
            client,
        })
    }

    async fn deliver(&self, message: &Message) -> Result<(), SendError> {
        let events = events(message, self.routing_key.expose());
        let mut failures: Vec<(usize, SendError)> = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let body = serde_json::to_vec(event)
                .map_err(|e| SendError::Permanent(format!("encoding an event: {e}")))?;
            let outcome = exchange(
                &self.client,
                self.url.clone(),
                reqwest::header::HeaderMap::new(),
                body,
                "application/json",
            )
            .await;
            match outcome {
                Ok(Answer::Accepted) => {}
                Ok(Answer::Refused(refusal)) => failures.push((i, classify(&refusal))),
                Err(e) => failures.push((i, e)),
            }
        }
        let at = redact_url(self.url.as_str());
        summarize(message, events.len(), failures).map_err(|e| e.map_text(|t| format!("{at}: {t}")))
    }
}

impl std::fmt::Debug for PagerDutyReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDutyReceiver")
            .field("name", &self.name)
            .field("url", &redact_url(self.url.as_str()))
            .finish()
    }
}

super::receiver_delivering!(PagerDutyReceiver, "pagerduty");

/// PagerDuty's answer document (`{"status": ..., "message": ..., "errors": [...]}`).
#[derive(Debug, Default, Deserialize)]
struct Answered {
    message: Option<String>,
    #[serde(default)]
    errors: Vec<String>,
}

/// What a refused event means (the table in the module docs).
fn classify(refusal: &Refusal) -> SendError {
    let doc: Answered = serde_json::from_slice(&refusal.body).unwrap_or_default();
    let what = match (doc.message, doc.errors.is_empty()) {
        (Some(m), false) => format!("{m}: {}", doc.errors.join("; ")),
        (Some(m), true) => m,
        (None, false) => doc.errors.join("; "),
        (None, true) => refusal.excerpt(),
    };
    refusal.verdict(refusal.describe_with(&what), None)
}

/// One outcome for the events of a message (the module docs): `events` sent, `failures`
/// by event index.
fn summarize(
    message: &Message,
    events: usize,
    failures: Vec<(usize, SendError)>,
) -> Result<(), SendError> {
    if failures.is_empty() {
        return Ok(());
    }
    let retry = failures.iter().any(|(_, e)| e.is_retryable());
    let after = failures
        .iter()
        .map(|(_, e)| e.retry_after())
        .fold(None, longest);
    let named: Vec<String> = failures
        .iter()
        .map(|(i, e)| {
            let alert = message.alerts.get(*i).map_or("?", |a| a.alert.as_str());
            if events == 1 {
                e.text().to_string()
            } else {
                format!("event {} of {events} ({alert}): {}", i + 1, e.text())
            }
        })
        .collect();
    let text = named.join("; ");
    if retry {
        Err(SendError::retry(text, after))
    } else {
        Err(SendError::Permanent(text))
    }
}

/// The summary of a trigger: `[FIRING] HostCpuHigh on web-1: CPU at 97%` (`[TEST]` first
/// for a fire drill), at most [`MAX_SUMMARY`] characters.
fn summary(a: &AlertPayload, test: bool) -> String {
    let host = a
        .labels
        .get("host")
        .map(|h| format!(" on {h}"))
        .unwrap_or_default();
    let detail = alert_detail(a);
    let drill = if test { "[TEST] " } else { "" };
    let text = if detail.is_empty() {
        format!("{drill}[FIRING] {}{host}", a.alert)
    } else {
        format!("{drill}[FIRING] {}{host}: {detail}", a.alert)
    };
    truncate_utf16(&text, MAX_SUMMARY)
}

/// The Events API v2 event of each alert of `message`, in order: a `trigger` for a firing
/// alert, a `resolve` for a resolved one, both keyed by the alert's fingerprint.
pub fn events(message: &Message, routing_key: &str) -> Vec<Value> {
    message
        .alerts
        .iter()
        .map(|a| match a.status {
            Status::Resolved => json!({
                "routing_key": routing_key,
                "event_action": "resolve",
                "dedup_key": a.fingerprint,
            }),
            Status::Firing => {
                let mut labels = super::webhook::wire_labels(a, message.test);
                labels.remove("severity");
                let mut details = json!({
                    "labels": labels,
                    "annotations": a.annotations,
                });
                if let Some(v) = a.value {
                    details["value"] = json!(v);
                }
                json!({
                    "routing_key": routing_key,
                    "event_action": "trigger",
                    "dedup_key": a.fingerprint,
                    "payload": {
                        "summary": summary(a, message.test),
                        "source": a.labels.get("host").map_or("lookout", String::as_str),
                        "severity": a.severity.as_str(),
                        "timestamp": rfc3339(a.starts_at),
                        "custom_details": details,
                    },
                })
            }
        })
        .collect()
}

// Configuration: the `pagerduty:` kind of a receiver entry.

/// `pagerduty:` receiver settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPagerDuty {
    /// The integration's routing key, only as a `${ENV_NAME}` reference; absent: see
    /// `routing_key_file`.
    pub routing_key: Option<Text>,
    /// File holding the routing key; one of the two is required.
    pub routing_key_file: Option<Text>,
    /// Enqueue URL; absent: `https://events.pagerduty.com/v2/enqueue`.
    pub url: Option<Text>,
    /// Bound on one request, from `1s` to `5m`; absent: `10s`.
    pub timeout: Option<Text>,
}

/// `pagerduty:` receiver settings. `Debug` never shows the routing key.
#[derive(Clone, PartialEq)]
pub struct PagerDutyConfig {
    /// The Events API v2 integration's routing key.
    pub routing_key: Secret,
    /// Enqueue URL.
    pub url: String,
    /// Bound on one request (each event).
    pub timeout: Duration,
}

impl std::fmt::Debug for PagerDutyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDutyConfig")
            .field("routing_key", &self.routing_key)
            .field("url", &redact_url(&self.url))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Whether `key` is shaped like a routing key: 32 letters and digits. The message gives
/// the length, never the key.
fn routing_key_shape(key: &str) -> Result<(), String> {
    if key.len() == ROUTING_KEY_LEN && key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else if key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Err(format!(
            "a routing key is {ROUTING_KEY_LEN} letters and digits (the Integration Key of an Events API v2 integration); this one has {}",
            key.chars().count()
        ))
    } else {
        Err(format!(
            "a routing key is {ROUTING_KEY_LEN} letters and digits (the Integration Key of an Events API v2 integration); this one has other characters"
        ))
    }
}

/// The `pagerduty` receiver kind.
#[derive(Debug)]
pub struct PagerDutyKind;

impl super::Integration for PagerDutyKind {
    const KEY: &'static str = "pagerduty";
    const EXAMPLE: &'static str = r#"  - name: pager
    pagerduty: {routing_key_file: /etc/lookout/pagerduty-routing-key}"#;
    type Raw = RawPagerDuty;
    type Config = PagerDutyConfig;

    fn check(
        raw: &Spanned<RawPagerDuty>,
        base: &str,
        c: &mut Checker<'_>,
    ) -> Option<PagerDutyConfig> {
        let at = &raw.referenced;
        let raw = &raw.value;
        let routing_key = required_secret(
            c,
            base,
            at,
            ("routing_key", raw.routing_key.as_ref()),
            raw.routing_key_file.as_ref(),
            routing_key_shape,
        );
        let url = service_url(c, &format!("{base}.url"), raw.url.as_ref(), DEFAULT_URL);
        let timeout = receiver_timeout(c, base, raw.timeout.as_ref(), DEFAULT_PAGERDUTY_TIMEOUT);
        Some(PagerDutyConfig {
            routing_key: routing_key?,
            url: url?,
            timeout: timeout?,
        })
    }

    fn build(name: &str, config: &PagerDutyConfig) -> Result<std::sync::Arc<dyn Receiver>, String> {
        Ok(std::sync::Arc::new(PagerDutyReceiver::new(name, config)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::webhook::tests::{
        Captured, Files, alert, check_kind, message, provider, read_request, response,
    };
    use crate::rules::model::Severity;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    const KEY: &str = "R0UT1NGKEY0123456789abcdefABCDEF";

    #[test]
    fn trigger_and_resolve_share_the_dedup_key() {
        let firing = alert("HostCpuHigh", "web-1", Status::Firing, Severity::Critical);
        let resolved = alert("HostCpuHigh", "web-1", Status::Resolved, Severity::Critical);
        let trigger = &events(&message(vec![firing.clone()], false), KEY)[0];
        assert_eq!(
            *trigger,
            json!({
                "routing_key": KEY,
                "event_action": "trigger",
                "dedup_key": firing.fingerprint,
                "payload": {
                    "summary": "[FIRING] HostCpuHigh on web-1: HostCpuHigh on web-1",
                    "source": "web-1",
                    "severity": "critical",
                    "timestamp": "2023-11-14T22:13:20.123Z",
                    "custom_details": {
                        "labels": {"alertname": "HostCpuHigh", "cpu": "total", "host": "web-1"},
                        "annotations": {"summary": "HostCpuHigh on web-1"},
                        "value": 97.5,
                    },
                },
            })
        );
        let resolve = &events(&message(vec![resolved], false), KEY)[0];
        assert_eq!(
            *resolve,
            json!({"routing_key": KEY, "event_action": "resolve", "dedup_key": firing.fingerprint})
        );
        // One event per alert, in order.
        let both = events(
            &message(
                vec![
                    alert("A", "h", Status::Firing, Severity::Warning),
                    alert("B", "h", Status::Resolved, Severity::Warning),
                ],
                false,
            ),
            KEY,
        );
        let actions: Vec<&str> = both
            .iter()
            .map(|e| e["event_action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["trigger", "resolve"]);
        assert_eq!(both[0]["payload"]["severity"], "warning");
        // A drill says so, and the summary is bounded.
        let drill = &events(
            &message(
                vec![alert("X", "h", Status::Firing, Severity::Warning)],
                true,
            ),
            KEY,
        )[0];
        assert!(
            drill["payload"]["summary"]
                .as_str()
                .unwrap()
                .starts_with("[TEST] [FIRING] X on h")
        );
        assert_eq!(
            drill["payload"]["custom_details"]["labels"]["lookout_test"],
            "true"
        );
        let mut long = alert("X", "h", Status::Firing, Severity::Warning);
        long.annotations.insert("summary".into(), "y".repeat(5000));
        let e = &events(&message(vec![long], false), KEY)[0];
        assert_eq!(
            e["payload"]["summary"].as_str().unwrap().chars().count(),
            MAX_SUMMARY
        );
    }

    fn refusal(status: u16, retry_after: Option<u64>, body: &str) -> Refusal {
        Refusal {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            retry_after: retry_after.map(Duration::from_secs),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn pagerduty_errors_are_classified() {
        let invalid = r#"{"status":"invalid event","message":"Event object is invalid","errors":["'payload.summary' is missing or blank","'payload.source' is missing or blank"]}"#;
        assert_eq!(
            classify(&refusal(400, None, invalid)),
            SendError::Permanent(
                "HTTP 400 Bad Request: Event object is invalid: 'payload.summary' is missing or blank; 'payload.source' is missing or blank".into()
            )
        );
        assert_eq!(
            classify(&refusal(429, Some(30), "")),
            SendError::RetryAfter("HTTP 429 Too Many Requests".into(), Duration::from_secs(30))
        );
        assert!(classify(&refusal(503, None, "")).is_retryable());
        assert!(!classify(&refusal(404, None, "")).is_retryable());
    }

    #[test]
    fn outcomes_over_the_events_of_a_message() {
        let m = message(
            vec![
                alert("A", "h", Status::Firing, Severity::Warning),
                alert("B", "h", Status::Firing, Severity::Warning),
            ],
            false,
        );
        let bad = || SendError::Permanent("HTTP 400 Bad Request: x".into());
        assert_eq!(summarize(&m, 2, vec![]), Ok(()));
        assert_eq!(
            summarize(&m, 2, vec![(1, bad())]),
            Err(SendError::Permanent(
                "event 2 of 2 (B): HTTP 400 Bad Request: x".into()
            ))
        );
        // Any failure that can recover: the whole message again, waiting the longest asked.
        let got = summarize(
            &m,
            2,
            vec![
                (0, bad()),
                (
                    1,
                    SendError::RetryAfter("HTTP 429".into(), Duration::from_secs(5)),
                ),
            ],
        );
        assert_eq!(
            got,
            Err(SendError::RetryAfter(
                "event 1 of 2 (A): HTTP 400 Bad Request: x; event 2 of 2 (B): HTTP 429".into(),
                Duration::from_secs(5)
            ))
        );
        let one = message(
            vec![alert("A", "h", Status::Firing, Severity::Warning)],
            false,
        );
        assert_eq!(summarize(&one, 1, vec![(0, bad())]), Err(bad()));
    }

    #[tokio::test]
    async fn posts_each_event_and_never_shows_the_key() {
        provider();
        // Accepts the first event, refuses the second as invalid.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Captured>();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut sock, _)) = listener.accept().await {
                let Some(c) = read_request(&mut sock).await else {
                    continue;
                };
                n += 1;
                let reply = if n == 1 {
                    response(
                        202,
                        "",
                        r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#,
                    )
                } else {
                    response(
                        400,
                        "",
                        r#"{"status":"invalid event","message":"Event object is invalid","errors":["bad"]}"#,
                    )
                };
                let _ = tx.send(c);
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        let cfg = PagerDutyConfig {
            routing_key: Secret::new(KEY),
            url: format!("http://{addr}/v2/enqueue"),
            timeout: Duration::from_secs(5),
        };
        let r = PagerDutyReceiver::new("pager", &cfg).unwrap();
        let m = message(
            vec![
                alert("A", "h", Status::Firing, Severity::Warning),
                alert("B", "h", Status::Resolved, Severity::Warning),
            ],
            false,
        );
        let got = r.send(&m).await.unwrap_err();
        assert_eq!(
            got,
            SendError::Permanent(format!(
                "http://{addr}/<redacted>: event 2 of 2 (B): HTTP 400 Bad Request: Event object is invalid: bad"
            ))
        );
        let sent: Vec<Value> = [rx.recv().await.unwrap(), rx.recv().await.unwrap()]
            .iter()
            .map(|c| {
                assert!(
                    c.head.starts_with("POST /v2/enqueue HTTP/1.1"),
                    "{}",
                    c.head
                );
                serde_json::from_slice(&c.body).unwrap()
            })
            .collect();
        assert_eq!(sent, events(&m, KEY));
        for shown in [format!("{r:?}"), format!("{cfg:?}"), got.to_string()] {
            assert!(!shown.contains(KEY), "{shown}");
        }
    }

    #[test]
    fn settings_are_checked_and_problems_never_show_the_key() {
        let files = Files::new(&[
            ("key", &format!("{KEY}\n")),
            ("short", "abc\n"),
            ("odd", "R0UT1NGKEY0123456789abcdefABCD-F\n"),
        ]);
        let (config, problems) = check_kind::<PagerDutyKind>("{routing_key_file: key}", &files.0);
        assert!(problems.is_empty(), "{problems:?}");
        let config = config.unwrap();
        assert_eq!(config.routing_key.expose(), KEY);
        assert_eq!(
            (config.url.as_str(), config.timeout),
            (DEFAULT_URL, DEFAULT_PAGERDUTY_TIMEOUT)
        );
        // (settings, expected problems)
        let rows: &[(&str, &[&str])] = &[
            (
                "{}",
                &["r.pagerduty: `routing_key_file` or `routing_key: ${ENV_NAME}` is required"],
            ),
            (
                "{routing_key: 'R0UT1NGKEY0123456789abcdefABCDEF'}",
                &["r.pagerduty.routing_key: secrets are not written in the configuration"],
            ),
            (
                "{routing_key_file: short}",
                &[
                    "r.pagerduty.routing_key_file: a routing key is 32 letters and digits (the Integration Key of an Events API v2 integration); this one has 3",
                ],
            ),
            (
                "{routing_key_file: odd}",
                &[
                    "r.pagerduty.routing_key_file: a routing key is 32 letters and digits (the Integration Key of an Events API v2 integration); this one has other characters",
                ],
            ),
            (
                "{routing_key_file: key, url: 'events.pagerduty.com'}",
                &["r.pagerduty.url: invalid URL"],
            ),
            (
                "{routing_key_file: key, timeout: 6m}",
                &["r.pagerduty.timeout: 6m is out of range"],
            ),
        ];
        for (yaml, expected) in rows {
            let (config, problems) = check_kind::<PagerDutyKind>(yaml, &files.0);
            assert!(config.is_none(), "{yaml}");
            assert_eq!(problems.len(), expected.len(), "{yaml}: {problems:?}");
            for (got, want) in problems.iter().zip(expected.iter()) {
                assert!(got.starts_with(want), "{yaml}: {got}");
                assert!(!got.contains("R0UT1NG"), "{got}");
            }
        }
    }
}
