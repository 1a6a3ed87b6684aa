//! Microsoft Teams receiver: one Adaptive Card per message, posted to a Teams webhook (a
//! Workflows "post to a channel when a webhook request is received" URL, or an incoming
//! webhook).
//!
//! Flow: [`TeamsReceiver::send`] renders the message once ([`card`]) and POSTs it as JSON:
//! `{"type": "message", "attachments": [{"contentType":
//! "application/vnd.microsoft.card.adaptive", "content": {"type": "AdaptiveCard", "version":
//! "1.4", "body": [...]}}]}`. The body holds a coloured title (attention while critical
//! fires, warning for a warning, good once resolved) and one block per alert (at most
//! [`MAX_ALERTS`]; the rest are counted in a last line), each with its detail and labels.
//! The webhook URL carries its signature: it is a secret (`webhook_url_file` or `${ENV}`),
//! and errors name its origin only.
//!
//! | answer                                     | result                                          |
//! |--------------------------------------------|-------------------------------------------------|
//! | 2xx                                        | `Ok`                                            |
//! | 429 (`Retry-After` honoured), 5xx, 408, timeouts, connection trouble | `Retryable` |
//! | other 4xx                                  | `Permanent`                                     |

use std::time::Duration;

use serde_json::{Value, json};
use serde_saphyr::Spanned;

use super::webhook::{
    Answer, RawSecretUrl, SecretUrlConfig, alert_detail, exchange, http_client, parse_url, title,
    truncate_utf16,
};
use super::{Message, Receiver, SendError, rfc3339};
use crate::config::Checker;
use crate::config::secret::redact_url;
use crate::rules::engine::Status;
use crate::rules::model::Severity;

/// Default `teams.timeout`.
pub const DEFAULT_TEAMS_TIMEOUT: Duration = Duration::from_secs(10);
/// Most alerts shown one by one in a card (Teams takes about 28 KB per message).
pub const MAX_ALERTS: usize = 20;
/// Longest text of one block.
const MAX_TEXT: usize = 1000;

/// Delivers messages to one Teams webhook.
pub struct TeamsReceiver {
    name: String,
    /// The webhook URL: holds its signature, never shown.
    url: reqwest::Url,
    client: reqwest::Client,
}

impl TeamsReceiver {
    /// Builds the receiver and its HTTP client; messages never show the URL.
    pub fn new(name: &str, cfg: &SecretUrlConfig) -> Result<Self, String> {
        let url =
            parse_url(cfg.webhook_url.expose()).map_err(|e| format!("teams `{name}`: {e}"))?;
        let client = http_client(cfg.timeout).map_err(|e| format!("teams `{name}`: {e}"))?;
        Ok(TeamsReceiver {
            name: name.to_string(),
            url,
            client,
        })
    }

    async fn deliver(&self, message: &Message) -> Result<(), SendError> {
        let body = serde_json::to_vec(&card(message))
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
            Ok(Answer::Refused(refusal)) => Err(refusal.into_error()),
            Err(e) => Err(e),
        };
        outcome.map_err(|e| {
            let at = redact_url(self.url.as_str());
            e.map_text(|t| format!("{at}: {t}"))
        })
    }
}

impl std::fmt::Debug for TeamsReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamsReceiver")
            .field("name", &self.name)
            .field("url", &redact_url(self.url.as_str()))
            .finish()
    }
}

super::receiver_delivering!(TeamsReceiver, "teams");

/// Adaptive Card colour of a state: `Attention` (red) while critical fires, `Warning` while a
/// warning fires, `Good` (green) once resolved.
fn colour(status: Status, severity: Option<Severity>) -> &'static str {
    match (status, severity) {
        (Status::Resolved, _) => "Good",
        (Status::Firing, Some(Severity::Critical)) => "Attention",
        (Status::Firing, _) => "Warning",
    }
}

/// The Teams message for `message`: one Adaptive Card (see the module docs).
pub fn card(message: &Message) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": title(message),
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true,
        "color": colour(message.status(), message.severity()),
    })];
    for a in message.alerts.iter().take(MAX_ALERTS) {
        let state = match a.status {
            Status::Firing => a.severity.as_str(),
            Status::Resolved => "resolved",
        };
        let host = a
            .labels
            .get("host")
            .map(|h| format!(" on {h}"))
            .unwrap_or_default();
        let mut items = vec![json!({
            "type": "TextBlock",
            "text": truncate_utf16(&format!("**[{state}]** {}{host}", a.alert), MAX_TEXT),
            "wrap": true,
            "color": colour(a.status, Some(a.severity)),
        })];
        let detail = alert_detail(a);
        if !detail.is_empty() {
            items.push(json!({
                "type": "TextBlock",
                "text": truncate_utf16(&detail, MAX_TEXT),
                "wrap": true,
                "spacing": "None",
            }));
        }
        let mut facts: Vec<Value> = a
            .labels
            .iter()
            .map(|(k, v)| json!({"title": k, "value": truncate_utf16(v, MAX_TEXT)}))
            .collect();
        if let Some(v) = a.value {
            facts.push(json!({"title": "value", "value": v.to_string()}));
        }
        let (when, at) = match (a.status, a.ends_at) {
            (Status::Resolved, Some(end)) => ("resolved at", end),
            _ => ("since", a.starts_at),
        };
        facts.push(json!({"title": when, "value": rfc3339(at)}));
        items.push(json!({"type": "FactSet", "facts": facts}));
        body.push(json!({
            "type": "Container",
            "separator": true,
            "items": items,
        }));
    }
    let hidden = message.alerts.len().saturating_sub(MAX_ALERTS);
    if hidden > 0 {
        body.push(json!({
            "type": "TextBlock",
            "text": format!("… and {hidden} more alerts"),
            "wrap": true,
            "isSubtle": true,
        }));
    }
    if message.folded > 0 {
        body.push(json!({
            "type": "TextBlock",
            "text": format!(
                "(digest: {} more messages folded in by the rate limit, all listed above)",
                message.folded
            ),
            "wrap": true,
            "isSubtle": true,
        }));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": {"width": "Full"},
                "body": body,
            },
        }],
    })
}

// Configuration: the `teams:` kind of a receiver entry.

/// The `teams` receiver kind.
#[derive(Debug)]
pub struct TeamsKind;

impl super::Integration for TeamsKind {
    const KEY: &'static str = "teams";
    const EXAMPLE: &'static str = r#"  - name: channel
    teams: {webhook_url_file: /etc/lookout/teams-webhook-url}"#;
    type Raw = RawSecretUrl;
    type Config = SecretUrlConfig;

    fn check(
        raw: &Spanned<RawSecretUrl>,
        base: &str,
        c: &mut Checker<'_>,
    ) -> Option<SecretUrlConfig> {
        SecretUrlConfig::check(raw, base, c, DEFAULT_TEAMS_TIMEOUT)
    }

    fn build(name: &str, config: &SecretUrlConfig) -> Result<std::sync::Arc<dyn Receiver>, String> {
        Ok(std::sync::Arc::new(TeamsReceiver::new(name, config)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::Secret;
    use crate::notify::webhook::tests::{
        Files, alert, check_kind, message, provider, response, serve,
    };

    #[test]
    fn the_card_has_a_coloured_title_and_a_block_per_alert() {
        let m = message(
            vec![
                alert("HostCpuHigh", "web-1", Status::Firing, Severity::Critical),
                alert("DiskFull", "web-1", Status::Resolved, Severity::Warning),
            ],
            false,
        );
        let v = card(&m);
        assert_eq!(v["type"], "message");
        let a = &v["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        let content = &a["content"];
        assert_eq!(
            (content["type"].as_str(), content["version"].as_str()),
            (Some("AdaptiveCard"), Some("1.4"))
        );
        let body = content["body"].as_array().unwrap();
        assert_eq!(body.len(), 3);
        assert_eq!(body[0]["text"], "[FIRING:1] 2 alerts on web-1");
        assert_eq!(body[0]["color"], "Attention");
        let first = &body[1]["items"];
        assert_eq!(first[0]["text"], "**[critical]** HostCpuHigh on web-1");
        assert_eq!(first[0]["color"], "Attention");
        assert_eq!(first[1]["text"], "HostCpuHigh on web-1");
        assert_eq!(
            first[2]["facts"],
            json!([
                {"title": "cpu", "value": "total"},
                {"title": "host", "value": "web-1"},
                {"title": "value", "value": "97.5"},
                {"title": "since", "value": "2023-11-14T22:13:20.123Z"},
            ])
        );
        let second = &body[2]["items"];
        assert_eq!(second[0]["text"], "**[resolved]** DiskFull on web-1");
        assert_eq!(second[0]["color"], "Good");
        assert_eq!(
            second[2]["facts"][3],
            json!({"title": "resolved at", "value": "2023-11-14T22:23:20.000Z"})
        );
        // Resolved and warning titles.
        let ok = card(&message(
            vec![alert("X", "h", Status::Resolved, Severity::Critical)],
            false,
        ));
        assert_eq!(ok["attachments"][0]["content"]["body"][0]["color"], "Good");
        assert_eq!(
            ok["attachments"][0]["content"]["body"][0]["text"],
            "[RESOLVED:1] X on h"
        );
        let warn = card(&message(
            vec![alert("X", "h", Status::Firing, Severity::Warning)],
            true,
        ));
        assert_eq!(
            warn["attachments"][0]["content"]["body"][0]["color"],
            "Warning"
        );
        assert_eq!(
            warn["attachments"][0]["content"]["body"][0]["text"],
            "[TEST] [FIRING:1] X on h"
        );
    }

    #[test]
    fn many_alerts_are_counted_beyond_the_first_twenty() {
        let alerts: Vec<_> = (0..45)
            .map(|i| alert(&format!("A{i}"), "h", Status::Firing, Severity::Warning))
            .collect();
        let mut m = message(alerts, false);
        m.folded = 4;
        let v = card(&m);
        let body = v["attachments"][0]["content"]["body"].as_array().unwrap();
        assert_eq!(body.len(), 1 + MAX_ALERTS + 2);
        assert_eq!(body[MAX_ALERTS + 1]["text"], "… and 25 more alerts");
        assert!(
            body[MAX_ALERTS + 2]["text"]
                .as_str()
                .unwrap()
                .starts_with("(digest: 4 more")
        );
        assert!(serde_json::to_vec(&v).unwrap().len() < 28 * 1024);
    }

    #[tokio::test]
    async fn posts_the_card_and_honours_retry_after() {
        provider();
        let (url, mut rx) = serve(response(202, "", "")).await;
        let cfg = SecretUrlConfig {
            webhook_url: Secret::new(url.replace(
                "/hook",
                "/workflows/abc/triggers/manual/paths/invoke?sig=s3cr3t",
            )),
            timeout: Duration::from_secs(5),
        };
        let r = TeamsReceiver::new("channel", &cfg).unwrap();
        let m = message(
            vec![alert("X", "h", Status::Firing, Severity::Warning)],
            false,
        );
        r.send(&m).await.unwrap();
        let c = rx.recv().await.unwrap();
        assert!(
            c.head.starts_with(
                "POST /workflows/abc/triggers/manual/paths/invoke?sig=s3cr3t HTTP/1.1"
            ),
            "{}",
            c.head
        );
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(v, card(&m));
        for shown in [format!("{r:?}"), format!("{cfg:?}")] {
            assert!(
                !shown.contains("s3cr3t") && !shown.contains("workflows"),
                "{shown}"
            );
        }
        let (url, _rx) = serve(response(429, "Retry-After: 12\r\n", "")).await;
        let cfg = SecretUrlConfig {
            webhook_url: Secret::new(url.replace("/hook", "/x?sig=s3cr3t")),
            ..cfg
        };
        let got = TeamsReceiver::new("channel", &cfg)
            .unwrap()
            .send(&m)
            .await
            .unwrap_err();
        assert_eq!(got.retry_after(), Some(Duration::from_secs(12)));
        assert!(!got.text().contains("s3cr3t"), "{got:?}");
        let (url, _rx) = serve(response(400, "", "Bad payload")).await;
        let cfg = SecretUrlConfig {
            webhook_url: Secret::new(url),
            ..cfg
        };
        let got = TeamsReceiver::new("channel", &cfg)
            .unwrap()
            .send(&m)
            .await
            .unwrap_err();
        assert!(
            matches!(&got, SendError::Permanent(t) if t.ends_with("HTTP 400 Bad Request: Bad payload")),
            "{got:?}"
        );
    }

    #[test]
    fn settings_are_checked_and_problems_never_show_the_url() {
        let files = Files::new(&[("url", "https://x.webhook.office.com/webhookb2/s3cr3t\n")]);
        let (config, problems) = check_kind::<TeamsKind>("{webhook_url_file: url}", &files.0);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.unwrap().timeout, DEFAULT_TEAMS_TIMEOUT);
        let rows = [
            (
                "{}",
                "r.teams: `webhook_url_file` or `webhook_url: ${ENV_NAME}` is required",
            ),
            (
                "{webhook_url: 'https://x.webhook.office.com/webhookb2/s3cr3t'}",
                "r.teams.webhook_url: secrets are not written in the configuration",
            ),
            (
                "{webhook_url: '${EMPTY}'}",
                "r.teams.webhook_url: environment variable EMPTY is empty",
            ),
            ("{webhook_url_file: url, timeout: soon}", "r.teams.timeout:"),
        ];
        for (yaml, expected) in rows {
            let (config, problems) = check_kind::<TeamsKind>(yaml, &files.0);
            assert!(config.is_none(), "{yaml}");
            assert_eq!(problems.len(), 1, "{yaml}: {problems:?}");
            assert!(problems[0].starts_with(expected), "{yaml}: {problems:?}");
            assert!(!problems[0].contains("s3cr3t"), "{problems:?}");
        }
    }
}
