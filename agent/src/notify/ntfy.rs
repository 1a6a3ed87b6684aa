//! ntfy receiver: one publish to a topic per message, as ntfy's HTTP API takes it.
//!
//! Flow: [`NtfyReceiver::send`] renders the message once ([`publish`]) and POSTs its text
//! as a plain-text body to the topic URL, with the headers ntfy reads: `Title`, `Priority`
//! (5 for critical, 3 for a warning or a resolve) and `Tags` (emoji short codes:
//! `rotating_light`, `warning`, `white_check_mark`), and `Authorization: Bearer <token>` when
//! a token is configured. A title that is not plain ASCII is sent RFC 2047-encoded
//! (`=?UTF-8?B?...?=`), which ntfy decodes.
//!
//! ntfy takes at most [`MAX_BODY`] bytes of text per message: alerts that do not fit are
//! counted in a last line.
//!
//! | answer                                     | result                                          |
//! |--------------------------------------------|-------------------------------------------------|
//! | 2xx                                        | `Ok`                                            |
//! | 429 (`Retry-After` honoured), 5xx, 408, timeouts, connection trouble | `Retryable` |
//! | other 4xx (unauthorized, forbidden, ...)   | `Permanent`, with ntfy's `error`                |

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::webhook::{
    Answer, Refusal, alert_detail, exchange, http_client, optional_secret, parse_url,
    receiver_timeout, title, visible_ascii,
};
use super::{Message, Receiver, SendError};
use crate::config::secret::{Secret, redact_url};
use crate::config::{Checker, Text};
use crate::rules::engine::Status;
use crate::rules::model::Severity;

/// Default `ntfy.timeout`.
pub const DEFAULT_NTFY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of message text ntfy takes as a message (beyond, it makes an attachment).
pub const MAX_BODY: usize = 4096;

/// Delivers messages to one ntfy topic.
pub struct NtfyReceiver {
    name: String,
    url: reqwest::Url,
    /// `Authorization: Bearer <token>`, marked sensitive.
    auth: Option<HeaderValue>,
    client: reqwest::Client,
}

impl NtfyReceiver {
    /// Builds the receiver and its HTTP client; messages never show the token.
    pub fn new(name: &str, cfg: &NtfyConfig) -> Result<Self, String> {
        let url = parse_url(&cfg.url).map_err(|e| format!("ntfy `{name}`: {e}"))?;
        let auth = match &cfg.token {
            None => None,
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| format!("ntfy `{name}`: the token is not a valid header value"))?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let client = http_client(cfg.timeout).map_err(|e| format!("ntfy `{name}`: {e}"))?;
        Ok(NtfyReceiver {
            name: name.to_string(),
            url,
            auth,
            client,
        })
    }

    async fn deliver(&self, message: &Message) -> Result<(), SendError> {
        let p = publish(message);
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: String| {
            // Every value is ASCII by construction (the title is encoded when it is not).
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        set("title", header_text(&p.title));
        set("priority", p.priority.to_string());
        set("tags", p.tags.join(","));
        if let Some(auth) = &self.auth {
            headers.insert(reqwest::header::AUTHORIZATION, auth.clone());
        }
        let outcome = match exchange(
            &self.client,
            self.url.clone(),
            headers,
            p.body.into_bytes(),
            "text/plain; charset=utf-8",
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

impl std::fmt::Debug for NtfyReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtfyReceiver")
            .field("name", &self.name)
            .field("url", &redact_url(self.url.as_str()))
            .field("token", &self.auth.is_some())
            .finish()
    }
}

super::receiver_delivering!(NtfyReceiver, "ntfy");

/// ntfy's error document (`{"code": 40301, "http": 403, "error": "forbidden"}`).
#[derive(Debug, Default, Deserialize)]
struct ErrorDoc {
    error: Option<String>,
    code: Option<i64>,
}

/// What a refused publish means (the table in the module docs).
fn classify(refusal: &Refusal) -> SendError {
    let doc: ErrorDoc = serde_json::from_slice(&refusal.body).unwrap_or_default();
    let what = match (doc.error, doc.code) {
        (Some(e), Some(code)) => format!("{e} (code {code})"),
        (Some(e), None) => e,
        _ => refusal.excerpt(),
    };
    refusal.verdict(refusal.describe_with(&what), None)
}

/// What one publish carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// The notification's title (`[FIRING:2] HostCpuHigh on web-1`).
    pub title: String,
    /// 5 while a critical alert fires, else 3 (ntfy's default).
    pub priority: u8,
    /// Emoji short codes ntfy shows before the title.
    pub tags: Vec<&'static str>,
    /// One line per alert, at most [`MAX_BODY`] bytes.
    pub body: String,
}

/// The publish for `message`.
pub fn publish(message: &Message) -> Publish {
    let (priority, tag) = match (message.status(), message.severity()) {
        (Status::Resolved, _) => (3, "white_check_mark"),
        (Status::Firing, Some(Severity::Critical)) => (5, "rotating_light"),
        (Status::Firing, _) => (3, "warning"),
    };
    let mut tags = vec![tag];
    if message.test {
        tags.push("test_tube");
    }
    let footer = (message.folded > 0).then(|| {
        format!(
            "(digest: {} more messages folded in by the rate limit, all listed above)",
            message.folded
        )
    });
    let reserve = 40 + footer.as_ref().map_or(0, |f| f.len() + 1);
    let mut lines: Vec<String> = Vec::new();
    let mut used = 0;
    for (i, a) in message.alerts.iter().enumerate() {
        let state = match a.status {
            Status::Firing => a.severity.as_str(),
            Status::Resolved => "resolved",
        };
        let host = a
            .labels
            .get("host")
            .map(|h| format!(" on {h}"))
            .unwrap_or_default();
        let detail = alert_detail(a);
        let line = format!("[{state}] {}{host}: {detail}", a.alert);
        let line = cut_bytes(&line, MAX_BODY.saturating_sub(reserve));
        if used + line.len() + 1 + reserve > MAX_BODY {
            lines.push(format!("… and {} more alerts", message.alerts.len() - i));
            break;
        }
        used += line.len() + 1;
        lines.push(line);
    }
    lines.extend(footer);
    Publish {
        title: title(message),
        priority,
        tags,
        body: lines.join("\n"),
    }
}

/// `text` cut to at most `max` bytes on a character boundary, ending with `…` when cut.
fn cut_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let room = max.saturating_sub('…'.len_utf8());
    let mut end = room.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", text.get(..end).unwrap_or_default())
}

/// A header value for `text`: as is when it is printable ASCII, else RFC 2047-encoded
/// (`=?UTF-8?B?<base64>?=`).
pub fn header_text(text: &str) -> String {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        text.to_string()
    } else {
        format!("=?UTF-8?B?{}?=", base64(text.as_bytes()))
    }
}

/// Standard base64 with padding (RFC 4648).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                let index = usize::try_from((n >> shift) & 0x3f).unwrap_or(0);
                out.push(char::from(ALPHABET.get(index).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

// Configuration: the `ntfy:` kind of a receiver entry.

/// `ntfy:` receiver settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNtfy {
    /// The topic's URL (`https://ntfy.sh/my-topic`, or a server of your own); required.
    pub url: Option<Text>,
    /// Access token, only as a `${ENV_NAME}` reference; absent: see `token_file`.
    pub token: Option<Text>,
    /// File holding the access token; absent with `token`: no `Authorization`.
    pub token_file: Option<Text>,
    /// Bound on one request, from `1s` to `5m`; absent: `10s`.
    pub timeout: Option<Text>,
}

/// `ntfy:` receiver settings. `Debug` shows the URL's origin only (a topic's name is as
/// good as a password on a public server) and never the token.
#[derive(Clone, PartialEq)]
pub struct NtfyConfig {
    /// The topic's URL.
    pub url: String,
    /// Access token, sent as `Authorization: Bearer`.
    pub token: Option<Secret>,
    /// Bound on one request.
    pub timeout: Duration,
}

impl std::fmt::Debug for NtfyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtfyConfig")
            .field("url", &redact_url(&self.url))
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The `ntfy` receiver kind.
#[derive(Debug)]
pub struct NtfyKind;

impl super::Integration for NtfyKind {
    const KEY: &'static str = "ntfy";
    const EXAMPLE: &'static str = r#"  - name: push
    ntfy: {url: "https://ntfy.sh/my-topic", token_file: /etc/lookout/ntfy-token}"#;
    type Raw = RawNtfy;
    type Config = NtfyConfig;

    fn check(raw: &Spanned<RawNtfy>, base: &str, c: &mut Checker<'_>) -> Option<NtfyConfig> {
        let at = &raw.referenced;
        let raw = &raw.value;
        let url = c
            .required(base, at, "url", raw.url.as_ref(), "the topic's URL, such as https://ntfy.sh/my-topic")
            .and_then(|text| {
                let path = format!("{base}.url");
                let url = c.http_url(&path, text)?;
                let has_topic = reqwest::Url::parse(&url)
                    .ok()
                    .and_then(|u| u.path_segments().and_then(|mut s| s.next_back().map(str::to_string)))
                    .is_some_and(|topic| !topic.is_empty());
                if has_topic {
                    Some(url)
                } else {
                    c.report(
                        &path,
                        Some(&text.referenced),
                        "names no topic: the URL ends with the topic, as in https://ntfy.sh/my-topic",
                    );
                    None
                }
            });
        let token = optional_secret(
            c,
            base,
            ("token", raw.token.as_ref()),
            raw.token_file.as_ref(),
            visible_ascii,
        );
        let timeout = receiver_timeout(c, base, raw.timeout.as_ref(), DEFAULT_NTFY_TIMEOUT);
        Some(NtfyConfig {
            url: url?,
            token: token.ok()?,
            timeout: timeout?,
        })
    }

    fn build(name: &str, config: &NtfyConfig) -> Result<std::sync::Arc<dyn Receiver>, String> {
        Ok(std::sync::Arc::new(NtfyReceiver::new(name, config)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::webhook::tests::{
        Files, alert, check_kind, message, provider, response, serve,
    };

    #[test]
    fn priority_tags_and_text_follow_the_message() {
        let m = message(
            vec![
                alert("HostCpuHigh", "web-1", Status::Firing, Severity::Critical),
                alert("DiskFull", "web-1", Status::Resolved, Severity::Warning),
            ],
            false,
        );
        assert_eq!(
            publish(&m),
            Publish {
                title: "[FIRING:1] 2 alerts on web-1".into(),
                priority: 5,
                tags: vec!["rotating_light"],
                body: "[critical] HostCpuHigh on web-1: HostCpuHigh on web-1\n[resolved] DiskFull on web-1: DiskFull on web-1".into(),
            }
        );
        // (alerts, expected priority and tags)
        let rows: [(Vec<_>, bool, u8, Vec<&str>); 3] = [
            (
                vec![alert("X", "h", Status::Firing, Severity::Warning)],
                false,
                3,
                vec!["warning"],
            ),
            (
                vec![alert("X", "h", Status::Resolved, Severity::Critical)],
                false,
                3,
                vec!["white_check_mark"],
            ),
            (
                vec![alert("X", "h", Status::Firing, Severity::Warning)],
                true,
                3,
                vec!["warning", "test_tube"],
            ),
        ];
        for (alerts, test, priority, tags) in rows {
            let p = publish(&message(alerts, test));
            assert_eq!((p.priority, p.tags), (priority, tags), "{}", p.title);
        }
        let mut digest = m.clone();
        digest.folded = 3;
        assert!(
            publish(&digest).body.ends_with(
                "(digest: 3 more messages folded in by the rate limit, all listed above)"
            )
        );
    }

    #[test]
    fn the_text_stays_within_ntfys_message_size() {
        let alerts: Vec<_> = (0..100)
            .map(|i| {
                let mut a = alert(&format!("A{i}"), "h", Status::Firing, Severity::Warning);
                a.annotations.insert("summary".into(), "é".repeat(100));
                a
            })
            .collect();
        let p = publish(&message(alerts, false));
        assert!(p.body.len() <= MAX_BODY, "{}", p.body.len());
        let shown = p
            .body
            .lines()
            .filter(|l| l.starts_with("[warning]"))
            .count();
        assert!(
            p.body
                .ends_with(&format!("… and {} more alerts", 100 - shown)),
            "{}",
            p.body
        );
        let mut huge = alert("Big", "h", Status::Firing, Severity::Warning);
        huge.annotations.insert("summary".into(), "é".repeat(5000));
        let p = publish(&message(vec![huge], false));
        assert!(
            p.body.len() <= MAX_BODY
                && p.body.starts_with("[warning] Big on h: éé")
                && p.body.ends_with('…')
        );
    }

    #[test]
    fn non_ascii_titles_are_rfc_2047_encoded() {
        assert_eq!(
            header_text("[FIRING:1] X on web-1"),
            "[FIRING:1] X on web-1"
        );
        assert_eq!(header_text("café"), "=?UTF-8?B?Y2Fmw6k=?=");
        // RFC 4648's examples.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn ntfy_errors_are_classified() {
        let refusal = |status: u16, retry_after: Option<u64>, body: &str| Refusal {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            retry_after: retry_after.map(Duration::from_secs),
            body: body.as_bytes().to_vec(),
        };
        let limited = classify(&refusal(
            429,
            Some(4),
            r#"{"code":42901,"http":429,"error":"limit reached: too many requests"}"#,
        ));
        assert_eq!(
            limited,
            SendError::RetryAfter(
                "HTTP 429 Too Many Requests: limit reached: too many requests (code 42901)".into(),
                Duration::from_secs(4)
            )
        );
        assert_eq!(
            classify(&refusal(429, None, "")),
            SendError::Retryable("HTTP 429 Too Many Requests".into())
        );
        let forbidden = classify(&refusal(
            403,
            None,
            r#"{"code":40301,"http":403,"error":"forbidden"}"#,
        ));
        assert_eq!(
            forbidden,
            SendError::Permanent("HTTP 403 Forbidden: forbidden (code 40301)".into())
        );
        assert!(classify(&refusal(500, None, "")).is_retryable());
    }

    #[tokio::test]
    async fn publishes_plain_text_with_ntfys_headers() {
        provider();
        let (url, mut rx) = serve(response(200, "", r#"{"id":"x"}"#)).await;
        let topic = url.replace("/hook", "/alerts-1");
        let cfg = NtfyConfig {
            url: topic,
            token: Some(Secret::new("tk_s3cret")),
            timeout: Duration::from_secs(5),
        };
        let r = NtfyReceiver::new("push", &cfg).unwrap();
        let mut a = alert("DiskFull", "wéb-1", Status::Firing, Severity::Critical);
        a.annotations
            .insert("summary".into(), "/data at 97%".into());
        r.send(&message(vec![a], false)).await.unwrap();
        let c = rx.recv().await.unwrap();
        assert!(c.head.starts_with("POST /alerts-1 HTTP/1.1"), "{}", c.head);
        let head = c.head.to_ascii_lowercase();
        for want in [
            "content-type: text/plain; charset=utf-8",
            "priority: 5",
            "tags: rotating_light",
            "authorization: bearer tk_s3cret",
            &format!(
                "title: =?utf-8?b?{}?=",
                base64("[FIRING:1] DiskFull on wéb-1".as_bytes()).to_ascii_lowercase()
            ),
        ] {
            assert!(head.contains(want), "{want}: {head}");
        }
        assert_eq!(
            String::from_utf8_lossy(&c.body),
            "[critical] DiskFull on wéb-1: /data at 97%"
        );
        for shown in [format!("{r:?}"), format!("{cfg:?}")] {
            assert!(
                !shown.contains("s3cret") && !shown.contains("alerts-1"),
                "{shown}"
            );
        }
    }

    #[test]
    fn settings_are_checked() {
        let files = Files::new(&[("token", "tk_abc\n"), ("spaced", "tk abc\n")]);
        let (config, problems) =
            check_kind::<NtfyKind>("{url: 'https://ntfy.sh/ops', token_file: token}", &files.0);
        assert!(problems.is_empty(), "{problems:?}");
        let config = config.unwrap();
        assert_eq!(config.token.as_ref().map(Secret::expose), Some("tk_abc"));
        assert_eq!(config.timeout, DEFAULT_NTFY_TIMEOUT);
        let (config, problems) = check_kind::<NtfyKind>(
            "{url: 'http://127.0.0.1:8080/ops', token: '${HOOK_TOKEN}'}",
            &files.0,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            config.unwrap().token.as_ref().map(Secret::expose),
            Some("tok")
        );
        // (settings, expected problems)
        let rows: &[(&str, &[&str])] = &[
            ("{}", &["r.ntfy: `url` is required"]),
            ("{url: 'https://ntfy.sh/'}", &["r.ntfy.url: names no topic"]),
            ("{url: 'https://ntfy.sh'}", &["r.ntfy.url: names no topic"]),
            (
                "{url: 'mailto:x@y'}",
                &["r.ntfy.url: must be http or https"],
            ),
            (
                "{url: 'https://ntfy.sh/a', token: 'tk_literal'}",
                &["r.ntfy.token: secrets are not written in the configuration"],
            ),
            (
                "{url: 'https://ntfy.sh/a', token_file: spaced}",
                &["r.ntfy.token_file: must be visible ASCII"],
            ),
            (
                "{url: 'https://ntfy.sh/a', timeout: 1h}",
                &["r.ntfy.timeout: 1h is out of range"],
            ),
            (
                "{token: '${NOPE}', timeout: 1ms}",
                &[
                    "r.ntfy: `url` is required",
                    "r.ntfy.token: environment variable NOPE is not set",
                    "r.ntfy.timeout:",
                ],
            ),
        ];
        for (yaml, expected) in rows {
            let (config, problems) = check_kind::<NtfyKind>(yaml, &files.0);
            assert!(config.is_none(), "{yaml}");
            assert_eq!(problems.len(), expected.len(), "{yaml}: {problems:?}");
            for (got, want) in problems.iter().zip(expected.iter()) {
                assert!(got.starts_with(want), "{yaml}: {got}");
                assert!(
                    !got.contains("tk_literal") && !got.contains("tk abc"),
                    "{got}"
                );
            }
        }
    }
}
