//! Discord receiver: one webhook execution per message, one embed per alert.
//!
//! Flow: [`DiscordReceiver::send`] renders the message once ([`body`]) and POSTs it as JSON to
//! the webhook URL with `?wait=true` (Discord then answers only once the message is posted,
//! so an accepted request is a delivered message). The webhook URL holds the webhook's token
//! in its path: it is a secret (`webhook_url_file` or `${ENV}`), and errors name its origin
//! only.
//!
//! Discord's limits, which the body keeps: at most [`MAX_EMBEDS`] embeds per message (beyond
//! that, the last embed summarises the rest: `… and 7 more alerts`, one line each), an embed
//! title of [`MAX_TITLE`] characters, a description of [`MAX_DESCRIPTION`], [`MAX_TOTAL`]
//! across the embeds, and [`MAX_CONTENT`] for the message text. Mentions in alert text are
//! never resolved (`allowed_mentions: {parse: []}`): a label cannot ping `@everyone`.
//!
//! | answer                                     | result                                          |
//! |--------------------------------------------|-------------------------------------------------|
//! | 2xx                                        | `Ok`                                            |
//! | 429 `{"retry_after": 1.5, ...}`            | `RetryAfter`: the longer of the body's `retry_after` (seconds, fractions kept) and `Retry-After` |
//! | 5xx, timeouts, connection trouble          | `Retryable`                                     |
//! | other 4xx (unknown webhook, invalid body)  | `Permanent`, with Discord's message and code    |

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use serde_saphyr::Spanned;

use super::webhook::{
    Answer, RawSecretUrl, Refusal, SecretUrlConfig, alert_detail, exchange, http_client, parse_url,
    seconds_value, title, truncate_utf16, utf16_len,
};
use super::{AlertPayload, Message, Receiver, SendError, rfc3339};
use crate::config::Checker;
use crate::config::secret::redact_url;
use crate::rules::engine::Status;
use crate::rules::model::Severity;

/// Default `discord.timeout`.
pub const DEFAULT_DISCORD_TIMEOUT: Duration = Duration::from_secs(10);
/// Most embeds in one message.
pub const MAX_EMBEDS: usize = 10;
/// Longest embed title.
pub const MAX_TITLE: usize = 256;
/// Longest embed description.
pub const MAX_DESCRIPTION: usize = 4096;
/// Most characters across all embeds of a message (titles and descriptions here).
pub const MAX_TOTAL: usize = 6000;
/// Longest message text (`content`).
pub const MAX_CONTENT: usize = 2000;

/// Embed colour of a critical alert.
pub const RED: u32 = 0xD0_00_00;
/// Embed colour of a warning.
pub const ORANGE: u32 = 0xF5_8A_07;
/// Embed colour of a resolved alert.
pub const GREEN: u32 = 0x2E_B8_86;

/// Delivers messages to one Discord webhook.
pub struct DiscordReceiver {
    name: String,
    /// The webhook URL with `wait=true`: holds the token, never shown.
    url: reqwest::Url,
    client: reqwest::Client,
}

impl DiscordReceiver {
    /// Builds the receiver and its HTTP client; the message never shows the URL.
    pub fn new(name: &str, cfg: &SecretUrlConfig) -> Result<Self, String> {
        let mut url =
            parse_url(cfg.webhook_url.expose()).map_err(|e| format!("discord `{name}`: {e}"))?;
        if !url.query_pairs().any(|(k, _)| k == "wait") {
            url.query_pairs_mut().append_pair("wait", "true");
        }
        let client = http_client(cfg.timeout).map_err(|e| format!("discord `{name}`: {e}"))?;
        Ok(DiscordReceiver {
            name: name.to_string(),
            url,
            client,
        })
    }

    async fn deliver(&self, message: &Message) -> Result<(), SendError> {
        let body = serde_json::to_vec(&body(message))
            .map_err(|e| SendError::Permanent(format!("encoding the body: {e}")))?;
        let outcome = match exchange(
            &self.client,
            self.url.clone(),
            reqwest::header::HeaderMap::new(),
            body,
            "application/json",
        )
        .await
        {
            Ok(Answer::Accepted) => Ok(()),
            Ok(Answer::Refused(refusal)) => Err(classify(&refusal)),
            Err(e) => Err(e),
        };
        outcome.map_err(|e| {
            let at = redact_url(self.url.as_str());
            e.map_text(|t| format!("{at}: {t}"))
        })
    }
}

impl std::fmt::Debug for DiscordReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordReceiver")
            .field("name", &self.name)
            .field("url", &redact_url(self.url.as_str()))
            .finish()
    }
}

super::receiver_delivering!(DiscordReceiver, "discord");

/// Discord's error document (`{"message": "...", "code": 10015}`, and on 429
/// `{"retry_after": 1.5, "global": false}`).
#[derive(Debug, Default, Deserialize)]
struct ErrorDoc {
    message: Option<String>,
    code: Option<i64>,
    #[serde(default)]
    retry_after: Value,
}

/// What a refused webhook execution means (the table in the module docs).
fn classify(refusal: &Refusal) -> SendError {
    let doc: ErrorDoc = serde_json::from_slice(&refusal.body).unwrap_or_default();
    let what = match (doc.message, doc.code) {
        (Some(m), Some(code)) => format!("{m} (code {code})"),
        (Some(m), None) => m,
        _ => refusal.excerpt(),
    };
    refusal.verdict(
        refusal.describe_with(&what),
        seconds_value(&doc.retry_after),
    )
}

/// The colour of an alert's embed: red while critical fires, orange while a warning fires,
/// green once resolved.
pub fn colour(status: Status, severity: Severity) -> u32 {
    match (status, severity) {
        (Status::Resolved, _) => GREEN,
        (Status::Firing, Severity::Critical) => RED,
        (Status::Firing, Severity::Warning) => ORANGE,
    }
}

/// An alert's embed title: `[FIRING] HostCpuHigh on web-1` (`[RESOLVED]`, `[TEST]` first for
/// a fire drill).
fn embed_title(a: &AlertPayload, test: bool) -> String {
    let state = match a.status {
        Status::Firing => "FIRING",
        Status::Resolved => "RESOLVED",
    };
    let host = a
        .labels
        .get("host")
        .map(|h| format!(" on {h}"))
        .unwrap_or_default();
    let drill = if test { "[TEST] " } else { "" };
    truncate_utf16(&format!("{drill}[{state}] {}{host}", a.alert), MAX_TITLE)
}

/// An alert's embed description: the detail, the severity and value, the labels.
fn embed_description(a: &AlertPayload) -> String {
    let mut lines = Vec::new();
    let detail = alert_detail(a);
    if !detail.is_empty() {
        lines.push(detail);
    }
    if let Some(description) = a.annotations.get("description")
        && a.annotations.contains_key("summary")
    {
        lines.push(description.clone());
    }
    let mut facts = format!("**severity** {}", a.severity.as_str());
    if let Some(v) = a.value {
        facts.push_str(&format!(" · **value** {v}"));
    }
    lines.push(facts);
    let labels: Vec<String> = a
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != "host")
        .map(|(k, v)| format!("`{k}={}`", v.replace('`', "'")))
        .collect();
    if !labels.is_empty() {
        lines.push(labels.join(" "));
    }
    lines.join("\n")
}

/// The webhook JSON for `message`: the title as `content` (what a phone notification
/// shows), one embed per alert within Discord's limits (see the module docs), mentions off.
pub fn body(message: &Message) -> Value {
    let mut embeds: Vec<(String, String, u32, Option<String>)> = Vec::new();
    let (shown, rest) = if message.alerts.len() > MAX_EMBEDS {
        message.alerts.split_at(MAX_EMBEDS - 1)
    } else {
        (message.alerts.as_slice(), &[][..])
    };
    for a in shown {
        let at = match a.status {
            Status::Firing => a.starts_at,
            Status::Resolved => a.ends_at.unwrap_or(a.starts_at),
        };
        embeds.push((
            embed_title(a, message.test),
            embed_description(a),
            colour(a.status, a.severity),
            Some(rfc3339(at)),
        ));
    }
    if !rest.is_empty() {
        let lines: Vec<String> = rest
            .iter()
            .map(|a| {
                let state = match a.status {
                    Status::Firing => a.severity.as_str(),
                    Status::Resolved => "resolved",
                };
                let host = a
                    .labels
                    .get("host")
                    .map(|h| format!(" on {h}"))
                    .unwrap_or_default();
                format!("• [{state}] {}{host}", a.alert)
            })
            .collect();
        let worst = message.severity().unwrap_or(Severity::Warning);
        embeds.push((
            format!("… and {} more alerts", rest.len()),
            lines.join("\n"),
            colour(message.status(), worst),
            None,
        ));
    }
    // Every description gets an equal share of what the titles leave of the total.
    let titles: usize = embeds.iter().map(|(t, ..)| utf16_len(t)).sum();
    let share = MAX_TOTAL.saturating_sub(titles) / embeds.len().max(1);
    let budget = share.min(MAX_DESCRIPTION);
    let embeds: Vec<Value> = embeds
        .into_iter()
        .map(|(title, description, color, timestamp)| {
            let mut e = json!({
                "title": title,
                "description": truncate_utf16(&description, budget),
                "color": color,
            });
            if let Some(ts) = timestamp {
                e["timestamp"] = json!(ts);
            }
            e
        })
        .collect();
    let mut content = title(message);
    if message.folded > 0 {
        content.push_str(&format!(
            " (digest: {} more messages folded in by the rate limit)",
            message.folded
        ));
    }
    json!({
        "content": truncate_utf16(&content, MAX_CONTENT),
        "embeds": embeds,
        "allowed_mentions": {"parse": []},
    })
}

// Configuration: the `discord:` kind of a receiver entry.

/// The `discord` receiver kind.
#[derive(Debug)]
pub struct DiscordKind;

impl super::Integration for DiscordKind {
    const KEY: &'static str = "discord";
    const EXAMPLE: &'static str = r#"  - name: team-chat
    discord: {webhook_url_file: /etc/lookout/discord-webhook-url}"#;
    type Raw = RawSecretUrl;
    type Config = SecretUrlConfig;

    fn check(
        raw: &Spanned<RawSecretUrl>,
        base: &str,
        c: &mut Checker<'_>,
    ) -> Option<SecretUrlConfig> {
        SecretUrlConfig::check(raw, base, c, DEFAULT_DISCORD_TIMEOUT)
    }

    fn build(name: &str, config: &SecretUrlConfig) -> Result<std::sync::Arc<dyn Receiver>, String> {
        Ok(std::sync::Arc::new(DiscordReceiver::new(name, config)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::Secret;
    use crate::notify::webhook::tests::{
        Files, alert, check_kind, message, provider, response, serve,
    };

    fn refusal(status: u16, retry_after: Option<u64>, body: &str) -> Refusal {
        Refusal {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            retry_after: retry_after.map(Duration::from_secs),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn one_embed_per_alert_coloured_by_state() {
        let m = message(
            vec![
                alert("HostCpuHigh", "web-1", Status::Firing, Severity::Critical),
                alert("DiskFull", "web-1", Status::Firing, Severity::Warning),
                alert("LoadHigh", "web-1", Status::Resolved, Severity::Critical),
            ],
            false,
        );
        let v = body(&m);
        assert_eq!(v["content"], "[FIRING:2] 3 alerts on web-1");
        assert_eq!(v["allowed_mentions"], json!({"parse": []}));
        let embeds = v["embeds"].as_array().unwrap();
        assert_eq!(embeds.len(), 3);
        assert_eq!(embeds[0]["title"], "[FIRING] HostCpuHigh on web-1");
        assert_eq!(
            embeds[0]["description"],
            "HostCpuHigh on web-1\n**severity** critical · **value** 97.5\n`cpu=total`"
        );
        assert_eq!(embeds[0]["timestamp"], "2023-11-14T22:13:20.123Z");
        let colours: Vec<u64> = embeds
            .iter()
            .map(|e| e["color"].as_u64().unwrap())
            .collect();
        assert_eq!(
            colours,
            [u64::from(RED), u64::from(ORANGE), u64::from(GREEN)]
        );
        assert_eq!(embeds[2]["title"], "[RESOLVED] LoadHigh on web-1");
        assert_eq!(embeds[2]["timestamp"], "2023-11-14T22:23:20.000Z");
        let drill = body(&message(
            vec![alert("X", "h", Status::Firing, Severity::Warning)],
            true,
        ));
        assert_eq!(drill["embeds"][0]["title"], "[TEST] [FIRING] X on h");
        assert_eq!(drill["content"], "[TEST] [FIRING:1] X on h");
    }

    #[test]
    fn beyond_ten_alerts_the_last_embed_summarises_and_the_limits_hold() {
        let alerts: Vec<_> = (0..25)
            .map(|i| {
                let mut a = alert(
                    &format!("Alert{i}{}", "n".repeat(300)),
                    "web-1",
                    Status::Firing,
                    Severity::Warning,
                );
                a.annotations.insert("summary".into(), "s".repeat(5000));
                a
            })
            .collect();
        let v = body(&message(alerts, false));
        let embeds = v["embeds"].as_array().unwrap();
        assert_eq!(embeds.len(), MAX_EMBEDS);
        let last = &embeds[MAX_EMBEDS - 1];
        assert_eq!(last["title"], "… and 16 more alerts");
        assert!(
            last["description"]
                .as_str()
                .unwrap()
                .starts_with("• [warning] Alert9")
        );
        let mut total = 0;
        for e in embeds {
            let (t, d) = (
                e["title"].as_str().unwrap(),
                e["description"].as_str().unwrap(),
            );
            assert!(utf16_len(t) <= MAX_TITLE && utf16_len(d) <= MAX_DESCRIPTION);
            total += utf16_len(t) + utf16_len(d);
        }
        assert!(total <= MAX_TOTAL, "{total}");
        assert!(utf16_len(v["content"].as_str().unwrap()) <= MAX_CONTENT);
        // Exactly ten: no summary.
        let ten: Vec<_> = (0..10)
            .map(|i| alert(&format!("A{i}"), "h", Status::Firing, Severity::Warning))
            .collect();
        let v = body(&message(ten, false));
        assert_eq!(v["embeds"].as_array().unwrap().len(), 10);
        assert_eq!(v["embeds"][9]["title"], "[FIRING] A9 on h");
    }

    #[test]
    fn a_429_waits_as_long_as_discord_says() {
        let limited =
            r#"{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}"#;
        let got = classify(&refusal(429, None, limited));
        assert_eq!(got.retry_after(), Some(Duration::from_millis(1500)));
        assert_eq!(
            got.text(),
            "HTTP 429 Too Many Requests: You are being rate limited."
        );
        // The header rounded up: the longer wait wins.
        assert_eq!(
            classify(&refusal(429, Some(2), limited)).retry_after(),
            Some(Duration::from_secs(2))
        );
        // No JSON (a proxy's page): the header alone.
        assert_eq!(
            classify(&refusal(429, Some(3), "<html>slow down</html>")).retry_after(),
            Some(Duration::from_secs(3))
        );
        let unknown = classify(&refusal(
            404,
            None,
            r#"{"message": "Unknown Webhook", "code": 10015}"#,
        ));
        assert_eq!(
            unknown,
            SendError::Permanent("HTTP 404 Not Found: Unknown Webhook (code 10015)".into())
        );
        assert!(
            !classify(&refusal(
                400,
                None,
                r#"{"code": 50035, "message": "Invalid Form Body"}"#
            ))
            .is_retryable()
        );
        assert!(classify(&refusal(502, None, "")).is_retryable());
    }

    #[tokio::test]
    async fn posts_with_wait_and_never_shows_the_token() {
        provider();
        let (url, mut rx) = serve(response(200, "", r#"{"id": "1"}"#)).await;
        let hook = format!(
            "{}/api/webhooks/123/s3cr3t-t0ken",
            url.trim_end_matches("/hook")
        );
        let cfg = SecretUrlConfig {
            webhook_url: Secret::new(hook.clone()),
            timeout: Duration::from_secs(5),
        };
        let r = DiscordReceiver::new("chat", &cfg).unwrap();
        let m = message(
            vec![alert("X", "h", Status::Firing, Severity::Warning)],
            false,
        );
        r.send(&m).await.unwrap();
        let c = rx.recv().await.unwrap();
        assert!(
            c.head
                .starts_with("POST /api/webhooks/123/s3cr3t-t0ken?wait=true HTTP/1.1"),
            "{}",
            c.head
        );
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(v, body(&m));
        for shown in [format!("{r:?}"), format!("{cfg:?}")] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
        // A thread id already in the URL is kept; `wait` is added.
        let threaded = SecretUrlConfig {
            webhook_url: Secret::new(format!("{hook}?thread_id=9")),
            ..cfg.clone()
        };
        let r = DiscordReceiver::new("chat", &threaded).unwrap();
        r.send(&m).await.unwrap();
        let c = rx.recv().await.unwrap();
        assert!(
            c.head
                .starts_with("POST /api/webhooks/123/s3cr3t-t0ken?thread_id=9&wait=true "),
            "{}",
            c.head
        );
        // Refused: the origin only.
        let (url, _rx) = serve(response(
            401,
            "",
            r#"{"message": "Invalid Webhook Token", "code": 50027}"#,
        ))
        .await;
        let origin = url.trim_end_matches("/hook").to_string();
        let cfg = SecretUrlConfig {
            webhook_url: Secret::new(format!("{origin}/api/webhooks/1/s3cr3t")),
            ..cfg
        };
        let got = DiscordReceiver::new("chat", &cfg)
            .unwrap()
            .send(&m)
            .await
            .unwrap_err();
        assert_eq!(
            got,
            SendError::Permanent(format!(
                "{origin}/<redacted>: HTTP 401 Unauthorized: Invalid Webhook Token (code 50027)"
            ))
        );
    }

    #[test]
    fn settings_are_checked_and_problems_never_show_the_url() {
        let files = Files::new(&[
            ("url", "https://discord.com/api/webhooks/1/s3cr3t\n"),
            ("bad", "ftp://discord.com/s3cr3t\n"),
        ]);
        let (config, problems) =
            check_kind::<DiscordKind>("{webhook_url_file: url, timeout: 5s}", &files.0);
        assert!(problems.is_empty(), "{problems:?}");
        let config = config.unwrap();
        assert_eq!(
            config.webhook_url.expose(),
            "https://discord.com/api/webhooks/1/s3cr3t"
        );
        assert_eq!(config.timeout, Duration::from_secs(5));
        // (settings, expected problem)
        let rows = [
            (
                "{}",
                "r.discord: `webhook_url_file` or `webhook_url: ${ENV_NAME}` is required",
            ),
            (
                "{webhook_url: 'https://discord.com/api/webhooks/1/s3cr3t'}",
                "r.discord.webhook_url: secrets are not written in the configuration",
            ),
            (
                "{webhook_url: '${HOOK_TOKEN}'}",
                "r.discord.webhook_url: not a valid URL",
            ),
            (
                "{webhook_url_file: bad}",
                "r.discord.webhook_url_file: must be an http or https URL, got \"ftp\"",
            ),
            (
                "{webhook_url_file: url, timeout: 0s}",
                "r.discord.timeout: 0s is out of range",
            ),
            ("{webhook_url_file: url, url: x}", "unknown field"),
        ];
        for (yaml, expected) in rows {
            if expected == "unknown field" {
                let raw: Result<Spanned<RawSecretUrl>, _> = serde_saphyr::from_str(yaml);
                assert!(raw.is_err(), "{yaml}");
                continue;
            }
            let (config, problems) = check_kind::<DiscordKind>(yaml, &files.0);
            assert!(config.is_none(), "{yaml}");
            assert_eq!(problems.len(), 1, "{yaml}: {problems:?}");
            assert!(problems[0].starts_with(expected), "{yaml}: {problems:?}");
            assert!(!problems[0].contains("s3cr3t"), "{problems:?}");
        }
    }
}
