//! The `email` receiver: one SMTP message per [`Message`], plain text and HTML.
//!
//! [`EmailReceiver::new`] checks the addresses and prepares lettre's async transport
//! (`starttls` -> required STARTTLS, `implicit` -> TLS from the first byte, `none` -> plain,
//! for a local relay). The transport itself is built on the first send, inside the Tokio
//! runtime, because lettre's connection pool spawns a task when it is built.
//!
//! [`render`] turns a [`Message`] into a lettre message: the subject
//! (`[CRITICAL] HostCpuHigh on web-1`, a digest subject for several alerts), a
//! `multipart/alternative` body, a `Message-ID` derived from the message id (a retry after a
//! crash is recognizably the same mail) and an `X-Lookout-Idempotency-Key` header. It is
//! pure, so tests check the exact mail without a server.
//!
//! Failures are classified with lettre's error API: 4xx replies, timeouts, connection and
//! TLS errors are retryable; 5xx replies (bad recipient, authentication refused) and client
//! errors (no STARTTLS offered, no usable auth mechanism) are permanent. lettre's own
//! timeout bounds only the connection, so the whole send is wrapped in
//! [`tokio::time::timeout`].

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::{AsyncSmtpTransport, AsyncSmtpTransportBuilder};
use lettre::{AsyncTransport, Tokio1Executor};

use super::{AlertPayload, Message, Receiver, SendError, rfc3339};
use crate::rules::engine::Status;
use crate::rules::state::Kind;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{MAX_RECEIVER_TIMEOUT, MIN_RECEIVER_TIMEOUT};
use crate::config::check::SecretOutcome;
use crate::config::{Checker, Text};

/// Header carrying [`Message::id`], for receivers that deduplicate.
pub const IDEMPOTENCY_HEADER: &str = "X-Lookout-Idempotency-Key";

/// Delivers messages by SMTP.
pub struct EmailReceiver {
    name: String,
    host: String,
    port: u16,
    tls: SmtpTls,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
    builder: AsyncSmtpTransportBuilder,
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

impl std::fmt::Debug for EmailReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the builder: it holds the credentials.
        f.debug_struct("EmailReceiver")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EmailReceiver {
    /// Checks `cfg` and prepares the SMTP transport. Fails on an address lettre cannot
    /// parse or TLS parameters it cannot build; the message names the receiver.
    pub fn new(name: &str, cfg: &EmailConfig) -> Result<Self, String> {
        let fail = |what: String| format!("email receiver {name:?}: {what}");
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| fail(format!("invalid from {:?}: {e}", cfg.from)))?;
        let to = cfg
            .to
            .iter()
            .map(|t| {
                t.parse::<Mailbox>()
                    .map_err(|e| fail(format!("invalid to {t:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(fail("no recipient".into()));
        }
        let builder = match cfg.tls {
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
                .map_err(|e| fail(format!("TLS setup for {}: {e}", cfg.host)))?,
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host)
                .map_err(|e| fail(format!("TLS setup for {}: {e}", cfg.host)))?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
        };
        let mut builder = builder.port(cfg.port).timeout(Some(cfg.timeout));
        if let Some(user) = &cfg.username {
            let password = cfg
                .password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(EmailReceiver {
            name: name.to_string(),
            host: cfg.host.clone(),
            port: cfg.port,
            tls: cfg.tls,
            from,
            to,
            timeout: cfg.timeout,
            builder,
            transport: OnceLock::new(),
        })
    }

    async fn deliver(&self, message: &Message) -> Result<(), SendError> {
        let mail = render(message, &self.from, &self.to).map_err(SendError::Permanent)?;
        let transport = self
            .transport
            .get_or_init(|| self.builder.clone().build::<Tokio1Executor>());
        let target = format!("SMTP {}:{}", self.host, self.port);
        match tokio::time::timeout(self.timeout, transport.send(mail)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&target, &e)),
            Err(_) => Err(SendError::Retryable(format!(
                "{target}: no answer within {}",
                crate::config::units::format_duration(self.timeout)
            ))),
        }
    }
}

super::receiver_delivering!(EmailReceiver, "email");

/// Most characters of an SMTP error (the server's reply text included) kept in the outbox
/// and logs.
pub const ERROR_CHARS: usize = 200;

/// Whether an SMTP failure is worth retrying: 5xx replies and client-side errors (no
/// STARTTLS offered, no usable auth mechanism, a malformed message) cannot get better by
/// themselves; 4xx replies, timeouts, connection, network and TLS errors can.
///
/// The text quotes the server's reply, which lettre reads whole (up to its own bound of
/// 100,000 bytes, 1,000 a line): only its first [`ERROR_CHARS`] characters are kept.
fn classify(target: &str, error: &lettre::transport::smtp::Error) -> SendError {
    let full = error.to_string();
    let mut text = format!("{target}: ");
    text.extend(full.chars().take(ERROR_CHARS));
    if full.chars().nth(ERROR_CHARS).is_some() {
        text.push_str("...");
    }
    if error.is_permanent() || error.is_client() {
        SendError::Permanent(text)
    } else {
        // is_transient(), is_timeout(), is_tls(), connection and network errors, and
        // replies that could not be parsed (a relay restarting mid-answer).
        SendError::Retryable(text)
    }
}

/// Builds the mail for `message`.
pub fn render(
    message: &Message,
    from: &Mailbox,
    to: &[Mailbox],
) -> Result<lettre::Message, String> {
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .subject(subject(message))
        .message_id(Some(message_id(&message.id, from.email.domain())))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(IDEMPOTENCY_HEADER),
            message.id.clone(),
        ));
    if let Ok(ms) = u64::try_from(message.created_ms) {
        // The creation time, not the send time: a retry is the same mail.
        builder = builder.date(UNIX_EPOCH + Duration::from_millis(ms));
    } else {
        builder = builder.date(SystemTime::now());
    }
    for mailbox in to {
        builder = builder.to(mailbox.clone());
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            text_body(message),
            html_body(message),
        ))
        .map_err(|e| format!("cannot build the mail: {e}"))
}

/// `<lookout.{id}@{domain}>`, with the id reduced to characters a Message-ID allows.
fn message_id(id: &str, domain: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("<lookout.{clean}@{domain}>")
}

/// The subject: `[TEST] ` for a fire drill, then `[RESOLVED]` or the worst severity in
/// upper case, then `Alert on host` for one alert or `N alerts on host` / `on K hosts` for
/// several, then ` (+N folded)` when the rate limit folded notifications in.
pub fn subject(message: &Message) -> String {
    let mut out = String::new();
    if message.test {
        out.push_str("[TEST] ");
    }
    let tag = match (message.status(), message.severity()) {
        (Status::Resolved, Some(_)) => "RESOLVED".to_string(),
        (_, Some(severity)) => severity.as_str().to_ascii_uppercase(),
        (_, None) => "NOTICE".to_string(),
    };
    let _ = write!(out, "[{tag}] ");
    let hosts: BTreeSet<&str> = message
        .alerts
        .iter()
        .filter_map(|a| a.labels.get("host").map(String::as_str))
        .collect();
    let on = match hosts.len() {
        0 => String::new(),
        1 => hosts
            .iter()
            .next()
            .map_or_else(String::new, |h| format!(" on {h}")),
        n => format!(" on {n} hosts"),
    };
    match message.alerts.as_slice() {
        [] if message.test => out.push_str("lookout test notification"),
        [] => out.push_str("lookout notifications"),
        [one] => {
            let _ = write!(out, "{}{on}", one.alert);
        }
        many => {
            let _ = write!(out, "{} alerts{on}", many.len());
        }
    }
    if message.folded > 0 {
        let _ = write!(out, " (+{} folded)", message.folded);
    }
    // Labels come from the outside: no line breaks in a header.
    out.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn status_text(alert: &AlertPayload) -> &'static str {
    match (alert.status, alert.kind) {
        (Status::Resolved, _) => "RESOLVED",
        (Status::Firing, Kind::Escalated) => "FIRING (escalated)",
        (Status::Firing, Kind::DeEscalated) => "FIRING (de-escalated)",
        (Status::Firing, Kind::Repeat) => "FIRING (still)",
        (Status::Firing, _) => "FIRING",
    }
}

/// The rows shown for one alert, in order: (field, value).
fn rows(alert: &AlertPayload) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("Status", status_text(alert).to_string()),
        ("Severity", alert.severity.as_str().to_string()),
    ];
    for (key, field) in [("summary", "Summary"), ("description", "Description")] {
        if let Some(text) = alert.annotations.get(key) {
            rows.push((field, text.clone()));
        }
    }
    if let Some(value) = alert.value {
        rows.push(("Value", format!("{value}")));
    }
    rows.push(("Since", rfc3339(alert.starts_at)));
    if let Some(end) = alert.ends_at {
        rows.push(("Resolved at", rfc3339(end)));
    }
    let labels: Vec<String> = alert
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    rows.push(("Labels", labels.join(", ")));
    for (key, text) in &alert.annotations {
        if key != "summary" && key != "description" {
            rows.push(("Annotation", format!("{key}: {text}")));
        }
    }
    rows.push(("Fingerprint", alert.fingerprint.clone()));
    rows
}

fn folded_note(folded: u32) -> String {
    format!(
        "This is a digest: the rate limit folded {folded} more message(s) into it; every alert they carried is listed here."
    )
}

const TEST_NOTE: &str =
    "This is a test notification (lookout notify test): nothing is wrong, no alert is firing.";

/// The plain-text part.
pub fn text_body(message: &Message) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", subject(message));
    if message.test {
        let _ = writeln!(out, "{TEST_NOTE}\n");
    }
    for alert in &message.alerts {
        let _ = writeln!(out, "{}", alert.alert);
        for (field, value) in rows(alert) {
            let _ = writeln!(out, "  {:<12} {value}", format!("{field}:"));
        }
        out.push('\n');
    }
    if message.folded > 0 {
        let _ = writeln!(out, "{}\n", folded_note(message.folded));
    }
    let _ = writeln!(
        out,
        "-- \nlookout, receiver {}, message {}",
        message.receiver, message.id
    );
    out
}

/// The HTML part; every value is escaped.
pub fn html_body(message: &Message) -> String {
    let mut out = String::from("<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif\">\n");
    let _ = writeln!(out, "<h2>{}</h2>", escape(&subject(message)));
    if message.test {
        let _ = writeln!(out, "<p><strong>{}</strong></p>", escape(TEST_NOTE));
    }
    for alert in &message.alerts {
        let _ = writeln!(out, "<h3>{}</h3>", escape(&alert.alert));
        out.push_str("<table cellpadding=\"3\">\n");
        for (field, value) in rows(alert) {
            let _ = writeln!(
                out,
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                escape(field),
                escape(&value)
            );
        }
        out.push_str("</table>\n");
    }
    if message.folded > 0 {
        let _ = writeln!(out, "<p>{}</p>", escape(&folded_note(message.folded)));
    }
    let _ = writeln!(
        out,
        "<p style=\"color:#777\">lookout, receiver {}, message {}</p>\n</body></html>",
        escape(&message.receiver),
        escape(&message.id)
    );
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

// Configuration: the `email:` kind of a receiver entry.

/// Default `email.timeout`.
pub const DEFAULT_EMAIL_TIMEOUT: Duration = Duration::from_secs(30);

/// `email:` receiver settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    /// Relay as `host:port` (`[::1]:25` for IPv6); absent: a problem.
    pub smarthost: Option<Text>,
    /// `starttls`, `implicit` or `none` (local relays only); absent: `starttls`.
    pub tls: Option<Text>,
    /// Login user; absent: no authentication.
    pub username: Option<Text>,
    /// Login password, only as a `${ENV_NAME}` reference; absent: see `password_file`.
    pub password: Option<Text>,
    /// File holding the login password (trailing newline trimmed), absolute or relative to
    /// the configuration file's directory; absent: see `password`.
    pub password_file: Option<Text>,
    /// Sender mailbox; absent: a problem.
    pub from: Option<Text>,
    /// Recipient mailboxes; absent (or empty): a problem.
    pub to: Option<Spanned<Vec<Text>>>,
    /// Bound on connecting and sending one message, from `1s` to `5m`; absent: `30s`.
    pub timeout: Option<Text>,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required, not opportunistic).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// No TLS (a local relay only).
    None,
}

/// `email:` receiver settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    /// Relay host name.
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// Connection security.
    pub tls: SmtpTls,
    /// Login user; authentication only when set.
    pub username: Option<String>,
    /// Login password (from `password_file` or `${ENV}`).
    pub password: Option<crate::config::secret::Secret>,
    /// Sender mailbox (`lookout@example.com` or `Lookout <lookout@example.com>`).
    pub from: String,
    /// Recipient mailboxes; at least one.
    pub to: Vec<String>,
    /// Bound on connecting and sending one message.
    pub timeout: Duration,
}

/// The `email` receiver kind.
#[derive(Debug)]
pub struct EmailKind;

impl super::Integration for EmailKind {
    const KEY: &'static str = "email";
    const EXAMPLE: &'static str = r#"  - name: oncall
    email: {smarthost: "smtp.example.com:587", tls: starttls, username: alerts,
            password_file: /etc/lookout/smtp-password, from: lookout@example.com,
            to: [ops@example.com]}"#;
    type Raw = RawEmail;
    type Config = EmailConfig;

    fn check(raw: &Spanned<RawEmail>, base: &str, c: &mut Checker<'_>) -> Option<EmailConfig> {
        let at = &raw.referenced;
        let raw = &raw.value;
        let mut valid = true;
        let smarthost = match c.required(base, at, "smarthost", raw.smarthost.as_ref(), "host:port")
        {
            None => None,
            Some(text) => match parse_host_port(&text.value) {
                Ok(pair) => Some(pair),
                Err(why) => {
                    c.report(&format!("{base}.smarthost"), Some(&text.referenced), why);
                    None
                }
            },
        };
        let tls = match &raw.tls {
            None => SmtpTls::StartTls,
            Some(text) => match text.value.as_str() {
                "starttls" => SmtpTls::StartTls,
                "implicit" => SmtpTls::Implicit,
                "none" => SmtpTls::None,
                other => {
                    c.report(
                        &format!("{base}.tls"),
                        Some(&text.referenced),
                        format!("unknown TLS mode {other:?}: expected starttls, implicit or none"),
                    );
                    valid = false;
                    SmtpTls::StartTls
                }
            },
        };
        let username = match &raw.username {
            Some(text) if text.value.trim().is_empty() => {
                c.report(
                    &format!("{base}.username"),
                    Some(&text.referenced),
                    "must not be empty (remove the key for no authentication)",
                );
                valid = false;
                None
            }
            other => other.as_ref().map(|t| t.value.clone()),
        };
        let password = c.secret(
            base,
            ("password", raw.password.as_ref()),
            ("password_file", raw.password_file.as_ref()),
        );
        let password = match password {
            SecretOutcome::Invalid => {
                valid = false;
                None
            }
            SecretOutcome::Absent => None,
            SecretOutcome::Given(secret, given_at) => {
                if raw.username.is_none() {
                    c.report(&given_at.0, Some(given_at.1), "a password needs `username`");
                    valid = false;
                }
                Some(secret)
            }
        };
        if let Some(text) = &raw.username
            && raw.password.is_none()
            && raw.password_file.is_none()
        {
            c.report(
                &format!("{base}.username"),
                Some(&text.referenced),
                "a username needs `password_file` or `password: ${ENV_NAME}`",
            );
            valid = false;
        }
        let from = c
            .required(
                base,
                at,
                "from",
                raw.from.as_ref(),
                "a mailbox such as lookout@example.com",
            )
            .and_then(|text| mailbox(c, &format!("{base}.from"), text));
        let mut to = Vec::new();
        match c.required_list(
            base,
            at,
            "to",
            raw.to.as_ref(),
            "a list of mailboxes",
            "must list at least one recipient",
        ) {
            None => valid = false,
            Some(list) => {
                for (i, text) in list.iter().enumerate() {
                    match mailbox(c, &format!("{base}.to[{i}]"), text) {
                        Some(m) => to.push(m),
                        None => valid = false,
                    }
                }
            }
        }
        let timeout = c.duration(
            &format!("{base}.timeout"),
            raw.timeout.as_ref(),
            DEFAULT_EMAIL_TIMEOUT,
            MIN_RECEIVER_TIMEOUT,
            Some(MAX_RECEIVER_TIMEOUT),
        );
        let ((host, port), from, timeout) = (smarthost?, from?, timeout?);
        valid.then_some(EmailConfig {
            host,
            port,
            tls,
            username,
            password,
            from,
            to,
            timeout,
        })
    }

    fn build(name: &str, config: &EmailConfig) -> Result<std::sync::Arc<dyn Receiver>, String> {
        Ok(std::sync::Arc::new(EmailReceiver::new(name, config)?))
    }
}

/// A mailbox (`a@b.c` or `Name <a@b.c>`) as written, if lettre parses it.
fn mailbox(c: &mut Checker<'_>, path: &str, text: &Text) -> Option<String> {
    match text.value.parse::<lettre::message::Mailbox>() {
        Ok(_) => Some(text.value.clone()),
        Err(e) => {
            c.report(
                path,
                Some(&text.referenced),
                format!("invalid mailbox {:?}: {e}", text.value),
            );
            None
        }
    }
}

/// Parses `host:port` (`[::1]:25` for an IPv6 address); the port is required.
pub fn parse_host_port(text: &str) -> Result<(String, u16), String> {
    let invalid = |why: &str| {
        format!(
            "invalid smarthost {text:?}: {why} (expected host:port such as smtp.example.com:587)"
        )
    };
    if text.contains("://") {
        return Err(invalid(
            "not a host name or address (write host:port, no scheme)",
        ));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid("`[` without `]`"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| invalid("missing port"))?;
        (host, port)
    } else {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| invalid("missing port"))?;
        if host.contains(':') {
            return Err(invalid("write an IPv6 address in brackets, as [::1]:25"));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(invalid("missing host"));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "/@?#".contains(c))
    {
        return Err(invalid("not a host name or address"));
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok((host.to_string(), p)),
        _ => Err(invalid("port must be 1-65535")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::notify::Receiver;

    #[test]
    fn smarthosts() {
        // (text, expected host and port, or a message part)
        type Expected = Result<(&'static str, u16), &'static str>;
        let rows: &[(&str, Expected)] = &[
            // name and port
            ("smtp.example.com:587", Ok(("smtp.example.com", 587))),
            // IPv4
            ("127.0.0.1:25", Ok(("127.0.0.1", 25))),
            // IPv6 in brackets
            ("[::1]:2525", Ok(("::1", 2525))),
            // the port is required
            ("smtp.example.com", Err("missing port")),
            // port zero
            ("h:0", Err("port must be 1-65535")),
            // port too large
            ("h:70000", Err("port must be 1-65535")),
            // bare IPv6
            ("::1:25", Err("in brackets")),
            // no host
            (":25", Err("missing host")),
            // a URL is not a host
            ("smtp://h:25", Err("not a host name")),
        ];
        for (text, expected) in rows {
            match (parse_host_port(text), expected) {
                (Ok((h, p)), Ok((wh, wp))) => assert_eq!((h.as_str(), p), (*wh, *wp), "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, _) => panic!("{text}: {got:?}"),
            }
        }
    }
    use crate::rules::model::Severity;

    /// The webhook tests' alert, with what these tests check: the host label alone, a
    /// description, the value 0.95 and a start on a whole second.
    fn alert(name: &str, host: &str, severity: Severity, status: Status) -> AlertPayload {
        let mut a = crate::notify::webhook::tests::alert(name, host, status, severity);
        a.labels = BTreeMap::from([("host".to_string(), host.to_string())]);
        a.annotations.insert(
            "description".to_string(),
            "CPU above 90% for 5m".to_string(),
        );
        a.value = Some(0.95);
        a.starts_at = 1_700_000_000_000;
        a.fingerprint = "0123456789abcdef".into();
        a
    }

    fn message(alerts: Vec<AlertPayload>) -> Message {
        Message {
            id: "m-42".into(),
            receiver: "oncall".into(),
            group_key: "{}".into(),
            created_ms: 1_700_000_000_000,
            alerts,
            folded: 0,
            test: false,
        }
    }

    use Severity::{Critical, Warning};
    use Status::{Firing, Resolved};

    #[test]
    fn subjects() {
        let cpu = |host, sev, st| alert("HostCpuHigh", host, sev, st);
        let rows: Vec<(Message, &str)> = vec![
            // one firing critical alert
            (
                message(vec![cpu("web-1", Critical, Firing)]),
                "[CRITICAL] HostCpuHigh on web-1",
            ),
            // one firing warning
            (
                message(vec![cpu("web-1", Warning, Firing)]),
                "[WARNING] HostCpuHigh on web-1",
            ),
            // resolved
            (
                message(vec![cpu("web-1", Critical, Resolved)]),
                "[RESOLVED] HostCpuHigh on web-1",
            ),
            // digest on one host: worst firing severity wins
            (
                message(vec![
                    cpu("web-1", Warning, Firing),
                    alert("HostMemoryHigh", "web-1", Critical, Firing),
                    alert("HostDiskFull", "web-1", Warning, Firing),
                ]),
                "[CRITICAL] 3 alerts on web-1",
            ),
            // digest over two hosts; a resolved critical does not count as critical
            (
                message(vec![
                    cpu("web-1", Warning, Firing),
                    cpu("web-2", Critical, Resolved),
                ]),
                "[WARNING] 2 alerts on 2 hosts",
            ),
            // all resolved digest
            (
                message(vec![
                    cpu("web-1", Warning, Resolved),
                    cpu("web-2", Critical, Resolved),
                ]),
                "[RESOLVED] 2 alerts on 2 hosts",
            ),
            // fire drill
            (
                Message {
                    test: true,
                    ..message(vec![cpu("web-1", Critical, Firing)])
                },
                "[TEST] [CRITICAL] HostCpuHigh on web-1",
            ),
            // fire drill without alerts
            (
                Message {
                    test: true,
                    ..message(vec![])
                },
                "[TEST] [NOTICE] lookout test notification",
            ),
            // rate limit folded notifications in
            (
                Message {
                    folded: 4,
                    ..message(vec![cpu("web-1", Critical, Firing)])
                },
                "[CRITICAL] HostCpuHigh on web-1 (+4 folded)",
            ),
            // no host label at all
            (
                message(vec![AlertPayload {
                    labels: BTreeMap::new(),
                    ..cpu("x", Critical, Firing)
                }]),
                "[CRITICAL] HostCpuHigh",
            ),
            // a line break in a label never reaches the header
            (
                message(vec![cpu("web\r\n1", Critical, Firing)]),
                "[CRITICAL] HostCpuHigh on web  1",
            ),
        ];
        for (message, expected) in rows {
            assert_eq!(subject(&message), expected);
        }
    }

    #[test]
    fn bodies_list_every_field_and_escape_html() {
        let mut a = alert("HostCpuHigh", "web-1", Critical, Firing);
        a.annotations
            .insert("summary".into(), "CPU <b>95%</b> & rising".into());
        let m = Message {
            folded: 2,
            ..message(vec![a])
        };
        let text = text_body(&m);
        for want in [
            "[CRITICAL] HostCpuHigh on web-1 (+2 folded)",
            "Status:      FIRING",
            "Severity:    critical",
            "Summary:     CPU <b>95%</b> & rising",
            "Description: CPU above 90% for 5m",
            "Value:       0.95",
            "Since:       2023-11-14T22:13:20.000Z",
            "Labels:      host=web-1",
            "the rate limit folded 2 more message(s) into it",
            "message m-42",
        ] {
            assert!(text.contains(want), "{want:?} in:\n{text}");
        }
        let html = html_body(&m);
        assert!(
            html.contains("CPU &lt;b&gt;95%&lt;/b&gt; &amp; rising"),
            "{html}"
        );
        assert!(!html.contains("<b>95%"), "{html}");
        assert!(html.contains("<th align=\"left\">Description</th><td>CPU above 90% for 5m</td>"));

        let from: Mailbox = "Lookout <lookout@example.com>".parse().unwrap();
        let to: Mailbox = "ops@example.com".parse().unwrap();
        let mail = render(&m, &from, &[to]).unwrap();
        let formatted = String::from_utf8(mail.formatted()).unwrap();
        for want in [
            "Subject: [CRITICAL] HostCpuHigh on web-1 (+2 folded)",
            "From: Lookout <lookout@example.com>",
            "To: ops@example.com",
            "Message-ID: <lookout.m-42@example.com>",
            "X-Lookout-Idempotency-Key: m-42",
            "Content-Type: multipart/alternative",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Type: text/html; charset=utf-8",
            "Date: Tue, 14 Nov 2023 22:13:20",
        ] {
            assert!(formatted.contains(want), "{want:?} in:\n{formatted}");
        }
    }

    #[test]
    fn message_ids_are_stable_and_clean() {
        // (message id, expected header value)
        let rows = [
            // plain
            ("abc-1", "<lookout.abc-1@example.com>"),
            // characters a Message-ID cannot hold
            ("a b<c>@d", "<lookout.a-b-c--d@example.com>"),
        ];
        for (id, expected) in rows {
            assert_eq!(message_id(id, "example.com"), expected);
        }
    }

    #[test]
    fn new_rejects_bad_addresses_and_builds_outside_a_runtime() {
        let mut cfg = EmailConfig {
            host: "127.0.0.1".into(),
            port: 25,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "lookout@example.com".into(),
            to: vec!["ops@example.com".into()],
            timeout: Duration::from_secs(5),
        };
        // No Tokio runtime here: building must not spawn anything.
        let receiver = EmailReceiver::new("oncall", &cfg).unwrap();
        assert_eq!(receiver.kind(), "email");
        assert_eq!(receiver.name(), "oncall");
        for tls in [SmtpTls::StartTls, SmtpTls::Implicit] {
            cfg.tls = tls;
            EmailReceiver::new("oncall", &cfg).unwrap();
        }
        cfg.to = vec!["not an address".into()];
        let err = EmailReceiver::new("oncall", &cfg).unwrap_err();
        assert!(
            err.contains("\"oncall\"") && err.contains("not an address"),
            "{err}"
        );
    }
}
