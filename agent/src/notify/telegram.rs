//! Telegram receiver: one Bot API `sendMessage` per message, HTML-formatted.
//!
//! Flow: [`TelegramReceiver::send`] renders the message once ([`text`], then [`body`]) and
//! POSTs it as JSON to `<api_url>/bot<token>/sendMessage`. The bot token is part of that
//! URL's path, so the URL is never shown: errors name `<api_url's origin>/<redacted>`, and any
//! text that could still carry the token has it replaced by `<redacted>` ([`scrub`]).
//!
//! Telegram answers errors as `{"ok": false, "error_code": 429, "description": "...",
//! "parameters": {"retry_after": 5}}`:
//!
//! | answer                                     | result                                          |
//! |--------------------------------------------|-------------------------------------------------|
//! | 2xx                                        | `Ok`                                            |
//! | 429                                        | `RetryAfter`: no sooner than `retry_after` (or `Retry-After`) |
//! | 400, 401, 403, 404 (chat not found, bad token, bot blocked) | `Permanent`, with Telegram's description |
//! | 5xx, timeouts, connection trouble          | `Retryable`                                     |
//!
//! A group that became a supergroup answers 400 with `migrate_to_chat_id`: the error says
//! which `chat_id` to configure instead.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use serde_saphyr::Spanned;

use super::webhook::{
    Answer, Refusal, alert_detail, exchange, http_client, parse_url, receiver_timeout,
    required_secret, seconds_value, service_url, title, utf16_len,
};
use super::{Message, Receiver, SendError};
use crate::config::secret::{Secret, redact_url};
use crate::config::{Checker, Text};
use crate::rules::engine::Status;

/// Default `telegram.api_url`.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";
/// Default `telegram.timeout`.
pub const DEFAULT_TELEGRAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest text of one message (Telegram counts UTF-16 code units after entity parsing).
pub const MAX_TEXT: usize = 4096;
/// Longest detail shown for one alert, so one long summary cannot crowd the others out.
const MAX_DETAIL: usize = 1000;

/// Delivers messages to one Telegram chat through a bot.
pub struct TelegramReceiver {
    name: String,
    /// `<api_url>/bot<token>/sendMessage`: holds the token, never shown.
    url: reqwest::Url,
    /// The token, to scrub from any text.
    token: Secret,
    chat_id: String,
    client: reqwest::Client,
}

impl TelegramReceiver {
    /// Builds the receiver and its HTTP client. Fails on an `api_url` that is not
    /// `http(s)://`; the message never shows the token.
    pub fn new(name: &str, cfg: &TelegramConfig) -> Result<Self, String> {
        let url = parse_url(&format!(
            "{}/bot{}/sendMessage",
            cfg.api_url.trim_end_matches('/'),
            cfg.bot_token.expose()
        ))
        .map_err(|e| scrub(&format!("telegram `{name}`: {e}"), &cfg.bot_token))?;
        let client = http_client(cfg.timeout).map_err(|e| format!("telegram `{name}`: {e}"))?;
        Ok(TelegramReceiver {
            name: name.to_string(),
            url,
            token: cfg.bot_token.clone(),
            chat_id: cfg.chat_id.clone(),
            client,
        })
    }

    async fn deliver(&self, message: &Message) -> Result<(), SendError> {
        let body = serde_json::to_vec(&body(message, &self.chat_id))
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
            e.map_text(|t| scrub(&format!("{at}: {t}"), &self.token))
        })
    }
}

impl std::fmt::Debug for TelegramReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramReceiver")
            .field("name", &self.name)
            .field("url", &redact_url(self.url.as_str()))
            .field("chat_id", &self.chat_id)
            .finish()
    }
}

super::receiver_delivering!(TelegramReceiver, "telegram");

/// `text` with every occurrence of the token replaced by `<redacted>`.
pub fn scrub(text: &str, token: &Secret) -> String {
    if token.expose().is_empty() {
        text.to_string()
    } else {
        text.replace(token.expose(), "<redacted>")
    }
}

/// Telegram's error document (`{"ok": false, "error_code": ..., "description": ...,
/// "parameters": {...}}`).
#[derive(Debug, Default, Deserialize)]
struct ErrorDoc {
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
}

/// What a refused `sendMessage` means (the table in the module docs).
fn classify(refusal: &Refusal) -> SendError {
    let doc: ErrorDoc = serde_json::from_slice(&refusal.body).unwrap_or_default();
    let parameters = doc.parameters.unwrap_or(Value::Null);
    let retry_after = seconds_value(&parameters["retry_after"]);
    let mut what = doc.description.unwrap_or_else(|| refusal.excerpt());
    if let Some(to) = parameters["migrate_to_chat_id"].as_i64() {
        what = format!("{what} (the group is now the supergroup {to}: set chat_id to it)");
    }
    let text = refusal.describe_with(&what);
    match refusal.status.as_u16() {
        400 | 401 | 403 | 404 => SendError::Permanent(text),
        _ => refusal.verdict(text, retry_after),
    }
}

/// `text` with `&`, `<` and `>` escaped, as Telegram's HTML parse mode requires.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(ch),
        }
    }
    out
}

/// The HTML text of `message`: a bold title (`🔥 [FIRING:2] HostCpuHigh on web-1`, or ✅ with
/// `[RESOLVED:1]`), then one line per alert (`• critical HostCpuHigh on web-1: CPU at 97%`,
/// `• resolved ...`). At most [`MAX_TEXT`] characters: alerts that do not fit are counted
/// in a last line (`… and 3 more alerts`).
pub fn text(message: &Message) -> String {
    let icon = match message.status() {
        Status::Firing => "🔥",
        Status::Resolved => "✅",
    };
    let head = format!("{icon} <b>{}</b>", escape_html(&title(message)));
    // Visible length (tags do not count; escapes count as the one character they show).
    let mut visible = utf16_len(&format!("{icon} {}", title(message)));
    let mut lines = vec![head];
    let footer = (message.folded > 0).then(|| {
        format!(
            "(digest: {} more messages folded in by the rate limit, all listed above)",
            message.folded
        )
    });
    // Room kept for the "more" line and the footer.
    let reserve = 40 + footer.as_deref().map_or(0, |f| utf16_len(f) + 1);
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
        let detail = super::webhook::truncate_utf16(&alert_detail(a), MAX_DETAIL);
        let plain_rest = format!("{}{host}: {detail}", a.alert);
        let line_len = utf16_len(&format!("\n• {state} {plain_rest}"));
        if visible + line_len + reserve > MAX_TEXT {
            let left = message.alerts.len() - i;
            lines.push(format!("… and {left} more alerts"));
            break;
        }
        visible += line_len;
        lines.push(format!("• <b>{state}</b> {}", escape_html(&plain_rest)));
    }
    if let Some(footer) = footer {
        lines.push(format!("<i>{}</i>", escape_html(&footer)));
    }
    lines.join("\n")
}

/// The `sendMessage` JSON for `message` to `chat_id` (a number when it is one, else the
/// `@channel` name as a string).
pub fn body(message: &Message, chat_id: &str) -> Value {
    let chat: Value = chat_id
        .parse::<i64>()
        .map_or_else(|_| json!(chat_id), |id| json!(id));
    json!({
        "chat_id": chat,
        "text": text(message),
        "parse_mode": "HTML",
        "disable_web_page_preview": true,
    })
}

// Configuration: the `telegram:` kind of a receiver entry.

/// `telegram:` receiver settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelegram {
    /// The bot's token, only as a `${ENV_NAME}` reference; absent: see `bot_token_file`.
    pub bot_token: Option<Text>,
    /// File holding the bot's token; one of the two is required.
    pub bot_token_file: Option<Text>,
    /// The chat: a numeric id (`"-1001234567890"`) or a public channel (`@name`); required.
    pub chat_id: Option<Text>,
    /// Bot API base URL; absent: `https://api.telegram.org`.
    pub api_url: Option<Text>,
    /// Bound on one request, from `1s` to `5m`; absent: `10s`.
    pub timeout: Option<Text>,
}

/// `telegram:` receiver settings. `Debug` never shows the token.
#[derive(Clone, PartialEq)]
pub struct TelegramConfig {
    /// The bot's token (`123456:ABC-...`).
    pub bot_token: Secret,
    /// The chat's id or `@channel`.
    pub chat_id: String,
    /// Bot API base URL.
    pub api_url: String,
    /// Bound on one request.
    pub timeout: Duration,
}

impl std::fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("bot_token", &self.bot_token)
            .field("chat_id", &self.chat_id)
            .field("api_url", &redact_url(&self.api_url))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Whether `token` has the shape BotFather gives (`<digits>:<letters, digits, - and _>`).
/// The message never repeats it.
fn bot_token_shape(token: &str) -> Result<(), String> {
    let ok = token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if ok {
        Ok(())
    } else {
        Err("does not look like a bot token (`<bot id>:<secret>` as @BotFather gives it, letters, digits, - and _ only)".into())
    }
}

/// Whether `id` is a chat id Telegram accepts: an integer (groups and channels are
/// negative) or a public `@channelusername`.
fn chat_id_shape(id: &str) -> Result<(), String> {
    let numeric = id.strip_prefix('-').unwrap_or(id);
    let is_number = !numeric.is_empty() && numeric.bytes().all(|b| b.is_ascii_digit());
    let is_channel = id.strip_prefix('@').is_some_and(|n| {
        (4..=32).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    if is_number || is_channel {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a chat id: a number such as -1001234567890, or @channelname"
        ))
    }
}

/// The `telegram` receiver kind.
#[derive(Debug)]
pub struct TelegramKind;

impl super::Integration for TelegramKind {
    const KEY: &'static str = "telegram";
    const EXAMPLE: &'static str = r#"  - name: phone
    telegram: {bot_token_file: /etc/lookout/telegram-token, chat_id: "-1001234567890"}"#;
    type Raw = RawTelegram;
    type Config = TelegramConfig;

    fn check(
        raw: &Spanned<RawTelegram>,
        base: &str,
        c: &mut Checker<'_>,
    ) -> Option<TelegramConfig> {
        let at = &raw.referenced;
        let raw = &raw.value;
        let bot_token = required_secret(
            c,
            base,
            at,
            ("bot_token", raw.bot_token.as_ref()),
            raw.bot_token_file.as_ref(),
            bot_token_shape,
        );
        let chat_id = c
            .required(
                base,
                at,
                "chat_id",
                raw.chat_id.as_ref(),
                "a chat id such as \"-1001234567890\", or @channelname",
            )
            .and_then(|text| match chat_id_shape(text.value.trim()) {
                Ok(()) => Some(text.value.trim().to_string()),
                Err(why) => {
                    c.report(&format!("{base}.chat_id"), Some(&text.referenced), why);
                    None
                }
            });
        let api_url = service_url(
            c,
            &format!("{base}.api_url"),
            raw.api_url.as_ref(),
            DEFAULT_API_URL,
        );
        let timeout = receiver_timeout(c, base, raw.timeout.as_ref(), DEFAULT_TELEGRAM_TIMEOUT);
        Some(TelegramConfig {
            bot_token: bot_token?,
            chat_id: chat_id?,
            api_url: api_url?,
            timeout: timeout?,
        })
    }

    fn build(name: &str, config: &TelegramConfig) -> Result<std::sync::Arc<dyn Receiver>, String> {
        Ok(std::sync::Arc::new(TelegramReceiver::new(name, config)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::webhook::tests::{alert, message, provider, response, serve};
    use crate::rules::model::Severity;

    const TOKEN: &str = "123456:AAF-secret_tok3n";

    fn config(api_url: &str) -> TelegramConfig {
        TelegramConfig {
            bot_token: Secret::new(TOKEN),
            chat_id: "-100123".into(),
            api_url: api_url.into(),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn firing_and_resolved_texts_are_escaped_html() {
        let mut a = alert("DiskFull", "db<1>", Status::Firing, Severity::Critical);
        a.annotations
            .insert("summary".into(), "/data & /logs > 90% <b>".into());
        let m = message(vec![a], false);
        let t = text(&m);
        assert_eq!(
            t,
            "🔥 <b>[FIRING:1] DiskFull on db&lt;1&gt;</b>\n• <b>critical</b> DiskFull on db&lt;1&gt;: /data &amp; /logs &gt; 90% &lt;b&gt;"
        );
        let ok = message(
            vec![alert(
                "DiskFull",
                "db-1",
                Status::Resolved,
                Severity::Critical,
            )],
            false,
        );
        assert_eq!(
            text(&ok),
            "✅ <b>[RESOLVED:1] DiskFull on db-1</b>\n• <b>resolved</b> DiskFull on db-1: DiskFull on db-1"
        );
        let drill = message(
            vec![alert("X", "h", Status::Firing, Severity::Warning)],
            true,
        );
        assert!(text(&drill).starts_with("🔥 <b>[TEST] [FIRING:1] X on h</b>"));
        let mut digest = ok.clone();
        digest.folded = 2;
        assert!(
            text(&digest).ends_with(
                "\n<i>(digest: 2 more messages folded in by the rate limit, all listed above)</i>"
            ),
            "{}",
            text(&digest)
        );
    }

    #[test]
    fn the_body_is_send_message_json() {
        let m = message(
            vec![alert("X", "h", Status::Firing, Severity::Warning)],
            false,
        );
        let v = body(&m, "-100123");
        assert_eq!(v["chat_id"], json!(-100123));
        assert_eq!(v["parse_mode"], "HTML");
        assert_eq!(v["disable_web_page_preview"], true);
        assert_eq!(v["text"], text(&m));
        assert_eq!(body(&m, "@ops_room")["chat_id"], "@ops_room");
    }

    #[test]
    fn a_long_message_is_cut_at_whole_alerts_within_the_limit() {
        let alerts: Vec<_> = (0..200)
            .map(|i| {
                let mut a = alert(&format!("A{i}"), "h", Status::Firing, Severity::Warning);
                a.annotations.insert("summary".into(), "&".repeat(60));
                a
            })
            .collect();
        let t = text(&message(alerts, false));
        // The visible text: tags dropped, each escape one character.
        let visible = t
            .replace("<b>", "")
            .replace("</b>", "")
            .replace("&amp;", "&");
        assert!(utf16_len(&visible) <= MAX_TEXT, "{}", utf16_len(&visible));
        let shown = t.lines().filter(|l| l.starts_with("• ")).count();
        assert!(shown > 40 && shown < 200, "{shown}");
        assert!(
            t.ends_with(&format!("… and {} more alerts", 200 - shown)),
            "{t}"
        );
        // One enormous summary is cut, not the whole message.
        let mut huge = alert("Big", "h", Status::Firing, Severity::Warning);
        huge.annotations
            .insert("summary".into(), "x".repeat(10_000));
        let t = text(&message(vec![huge], false));
        assert!(
            t.contains("• <b>warning</b> Big on h: xxx") && t.ends_with('…'),
            "{t}"
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
    fn telegram_errors_are_classified() {
        let too_many = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5","parameters":{"retry_after":5}}"#;
        let got = classify(&refusal(429, None, too_many));
        assert_eq!(
            got,
            SendError::RetryAfter(
                "HTTP 429 Too Many Requests: Too Many Requests: retry after 5".into(),
                Duration::from_secs(5)
            )
        );
        // A Retry-After header longer than the body's wait wins.
        assert_eq!(
            classify(&refusal(429, Some(9), too_many)).retry_after(),
            Some(Duration::from_secs(9))
        );
        // (status, body, expected permanent?)
        let rows = [
            (
                400,
                r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
                true,
            ),
            (
                401,
                r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
                true,
            ),
            (
                403,
                r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#,
                true,
            ),
            (
                404,
                r#"{"ok":false,"error_code":404,"description":"Not Found"}"#,
                true,
            ),
            (502, "<html>Bad Gateway</html>", false),
        ];
        for (status, body, permanent) in rows {
            let got = classify(&refusal(status, None, body));
            assert_eq!(!got.is_retryable(), permanent, "{status}: {got:?}");
            assert!(got.text().starts_with(&format!("HTTP {status}")), "{got:?}");
        }
        let text = classify(&refusal(
            400,
            None,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
        ))
        .text()
        .to_string();
        assert_eq!(text, "HTTP 400 Bad Request: Bad Request: chat not found");
        let moved = r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234}}"#;
        let got = classify(&refusal(400, None, moved));
        assert!(
            matches!(&got, SendError::Permanent(t) if t.contains("set chat_id to it") && t.contains("-1001234")),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn posts_to_send_message_and_never_shows_the_token() {
        provider();
        let (url, mut rx) = serve(response(200, "", r#"{"ok":true,"result":{}}"#)).await;
        let api = url.trim_end_matches("/hook");
        let r = TelegramReceiver::new("phone", &config(api)).unwrap();
        let m = message(
            vec![alert("X", "h", Status::Firing, Severity::Warning)],
            false,
        );
        r.send(&m).await.unwrap();
        let c = rx.recv().await.unwrap();
        assert!(
            c.head
                .starts_with(&format!("POST /bot{TOKEN}/sendMessage HTTP/1.1")),
            "{}",
            c.head
        );
        assert!(
            c.head
                .to_ascii_lowercase()
                .contains("content-type: application/json")
        );
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(v, body(&m, "-100123"));

        // Refused: the error names the origin only.
        let (url, _rx) = serve(response(
            401,
            "",
            r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
        ))
        .await;
        let api = url.trim_end_matches("/hook");
        let r = TelegramReceiver::new("phone", &config(api)).unwrap();
        let got = r.send(&m).await.unwrap_err();
        assert_eq!(
            got,
            SendError::Permanent(format!(
                "{api}/<redacted>: HTTP 401 Unauthorized: Unauthorized"
            ))
        );
        // Nothing listening: retryable, and still no token.
        let r = TelegramReceiver::new("phone", &config("http://127.0.0.1:1")).unwrap();
        let got = r.send(&m).await.unwrap_err();
        assert!(
            got.is_retryable() && !got.text().contains("secret_tok3n"),
            "{got:?}"
        );
        for shown in [format!("{r:?}"), format!("{:?}", config(api))] {
            assert!(!shown.contains("secret_tok3n"), "{shown}");
        }
        assert_eq!(r.kind(), "telegram");
    }

    #[test]
    fn scrub_removes_the_token_wherever_it_is() {
        let token = Secret::new(TOKEN);
        assert_eq!(
            scrub(&format!("GET /bot{TOKEN}/x: {TOKEN}"), &token),
            "GET /bot<redacted>/x: <redacted>"
        );
    }

    #[test]
    fn settings_are_checked_and_problems_never_show_the_token() {
        use crate::notify::webhook::tests::{Files, check_kind};
        let files = Files::new(&[("token", &format!("{TOKEN}\n")), ("bad", "not a token\n")]);
        let (config, problems) = check_kind::<TelegramKind>(
            r#"{bot_token_file: token, chat_id: "-100123", api_url: "http://127.0.0.1:9/tg/", timeout: 3s}"#,
            &files.0,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let config = config.unwrap();
        assert_eq!(config.bot_token.expose(), TOKEN);
        assert_eq!(
            (
                config.chat_id.as_str(),
                config.api_url.as_str(),
                config.timeout
            ),
            ("-100123", "http://127.0.0.1:9/tg/", Duration::from_secs(3))
        );
        let (config, problems) = check_kind::<TelegramKind>(
            r#"{bot_token_file: token, chat_id: "@ops_room"}"#,
            &files.0,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.unwrap().api_url, DEFAULT_API_URL);
        // (settings, expected problems)
        let rows: &[(&str, &[&str])] = &[
            (
                "{chat_id: '1'}",
                &["r.telegram: `bot_token_file` or `bot_token: ${ENV_NAME}` is required"],
            ),
            (
                "{bot_token: '123:abc', chat_id: '1'}",
                &["r.telegram.bot_token: secrets are not written in the configuration"],
            ),
            (
                "{bot_token: '${NOPE}', chat_id: '1'}",
                &["r.telegram.bot_token: environment variable NOPE is not set"],
            ),
            (
                "{bot_token: '${HOOK_TOKEN}', chat_id: '1'}",
                &["r.telegram.bot_token: does not look like a bot token"],
            ),
            (
                "{bot_token_file: bad, chat_id: '1'}",
                &["r.telegram.bot_token_file: does not look like a bot token"],
            ),
            (
                "{bot_token_file: token, bot_token: '${HOOK_TOKEN}', chat_id: '1'}",
                &[
                    "r.telegram.bot_token_file: set either `bot_token` or `bot_token_file`, not both",
                ],
            ),
            (
                "{bot_token_file: missing, chat_id: '1'}",
                &["r.telegram.bot_token_file: cannot read"],
            ),
            (
                "{bot_token_file: token}",
                &["r.telegram: `chat_id` is required"],
            ),
            (
                "{bot_token_file: token, chat_id: 'ops'}",
                &["r.telegram.chat_id: \"ops\" is not a chat id"],
            ),
            (
                "{bot_token_file: token, chat_id: '1', api_url: 'ftp://x'}",
                &["r.telegram.api_url: must be http or https"],
            ),
            (
                "{bot_token_file: token, chat_id: '1', timeout: 10m}",
                &["r.telegram.timeout: 10m is out of range"],
            ),
            // every problem at once
            (
                "{chat_id: 'x', api_url: 'nope', timeout: 0s}",
                &[
                    "r.telegram: `bot_token_file`",
                    "r.telegram.chat_id:",
                    "r.telegram.api_url:",
                    "r.telegram.timeout:",
                ],
            ),
        ];
        for (yaml, expected) in rows {
            let (config, problems) = check_kind::<TelegramKind>(yaml, &files.0);
            assert!(config.is_none(), "{yaml}");
            assert_eq!(problems.len(), expected.len(), "{yaml}: {problems:?}");
            for (got, want) in problems.iter().zip(expected.iter()) {
                assert!(got.starts_with(want), "{yaml}: {got}");
                assert!(
                    !got.contains("tok3n")
                        && !got.contains("not a token")
                        && !got.contains(": tok"),
                    "{got}"
                );
            }
        }
    }

    #[test]
    fn token_and_chat_id_shapes() {
        assert!(bot_token_shape(TOKEN).is_ok());
        for bad in ["", "nocolon", ":abc", "12:", "12:ab c", "ab:cd", "12:ab/cd"] {
            let err = bot_token_shape(bad).unwrap_err();
            assert!(bad.is_empty() || !err.contains(bad), "{err}");
        }
        for ok in ["-1001234567890", "42", "@ops_room"] {
            assert!(chat_id_shape(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-", "12a", "@ab", "@bad-name", "ops"] {
            assert!(chat_id_shape(bad).is_err(), "{bad:?}");
        }
    }
}
