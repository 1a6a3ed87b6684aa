//! HTTP(S) webhook receiver: formats a [`Message`] as Alertmanager webhook v4 JSON (or Slack
//! incoming-webhook JSON) and POSTs it, signed when a secret is configured.
//!
//! Flow: [`WebhookReceiver::send`] renders the body once ([`alertmanager_v4`] or [`slack`]),
//! signs those exact bytes (`X-Lookout-Signature: sha256=<hex HMAC-SHA256>`), POSTs them with the
//! message id as `Idempotency-Key`, and turns the outcome into a [`SendError`] the dispatcher
//! can act on (STYLE habit 7):
//!
//! | outcome                                   | result                   |
//! |-------------------------------------------|--------------------------|
//! | 2xx                                       | `Ok`                     |
//! | 5xx, 429, 408                             | `Retryable`              |
//! | timeout, refused/reset connection, DNS    | `Retryable`              |
//! | other 4xx, 3xx that was not followed      | `Permanent`              |
//! | invalid URL, header or secret             | `Permanent`              |
//!
//! Redirects: only 307/308 to the same scheme, host and port are followed (at most
//! [`MAX_REDIRECTS`]): they keep the method and the body, and extra headers (which may carry
//! credentials) never go to another host. 301/302/303 would turn the POST into a body-less GET,
//! so they are not followed and count as permanent.
//!
//! Nothing here logs or returns header values, the secret, or the URL's path, query or
//! userinfo (Slack-style webhook URLs carry a token in their path): errors name the URL
//! redacted to `scheme://host:port/<redacted>` ([`redact_url`]), the status, the failure kind
//! and at most [`EXCERPT_CHARS`] characters of the response body. Of that body at most
//! [`EXCERPT_READ_BYTES`] are kept (one chunk at a time, never the whole body); the rest is
//! not read and the connection is dropped. reqwest's errors are stripped of their URL.
//!
//! The HTTP helpers (`http_client`, `post`) are shared with the Alertmanager receiver.

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{AlertPayload, Message, Receiver, SendError, rfc3339};
use crate::rules::LabelSet;
use crate::rules::engine::Status;
use crate::rules::model::Severity;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{MAX_RECEIVER_TIMEOUT, MIN_RECEIVER_TIMEOUT};
use crate::config::check::SecretOutcome;
use crate::config::secret::{Secret, interpolate_env, redact_url};
use crate::config::{Checker, Text};

/// Most redirects (307/308, same origin) followed for one delivery.
pub const MAX_REDIRECTS: usize = 3;

/// Most characters of a response body quoted in an error.
pub const EXCERPT_CHARS: usize = 200;

/// Most bytes of an error response's body kept to quote from (4 per character at worst).
pub const EXCERPT_READ_BYTES: usize = EXCERPT_CHARS * 4;

/// Alertmanager's `endsAt` for an alert that has not ended (Go's zero `time.Time`).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Label added to every alert of a fire drill (`lookout notify test`).
pub const TEST_LABEL: &str = "lookout_test";

/// Header carrying the HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "x-lookout-signature";

/// `User-Agent` of every delivery.
pub const USER_AGENT: &str = concat!("lookout/", env!("CARGO_PKG_VERSION"));

/// Delivers messages to one webhook URL.
pub struct WebhookReceiver {
    name: String,
    url: reqwest::Url,
    format: WebhookFormat,
    /// `body_template`: replaces `format` when set.
    template: Option<String>,
    /// `Content-Type` of the body.
    content_type: String,
    secret: Option<super::Secret>,
    /// Configured extra headers, validated once, values marked sensitive.
    headers: HeaderMap,
    client: reqwest::Client,
}

impl WebhookReceiver {
    /// Builds the receiver and its HTTP client (bounded by `cfg.timeout`). Fails on a URL that
    /// is not `http(s)://`, an invalid extra header, or a client that cannot be built.
    pub fn new(name: &str, cfg: &WebhookConfig) -> Result<Self, String> {
        let url = parse_url(&cfg.url).map_err(|e| format!("webhook `{name}`: {e}"))?;
        let mut headers = HeaderMap::new();
        for (key, value) in &cfg.headers {
            let header = HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| format!("webhook `{name}`: invalid header name `{key}`"))?;
            // The value is a secret (often an Authorization): never echo it.
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| format!("webhook `{name}`: invalid value for header `{key}`"))?;
            value.set_sensitive(true);
            headers.append(header, value);
        }
        if let Some(secret) = &cfg.secret {
            signature(secret.expose().as_bytes(), b"")
                .map_err(|e| format!("webhook `{name}`: {e}"))?;
        }
        let content_type = cfg.content_type.clone().unwrap_or_else(|| JSON.to_string());
        HeaderValue::from_str(&content_type)
            .map_err(|_| format!("webhook `{name}`: invalid content_type"))?;
        if let Some(template) = &cfg.body_template {
            check_body_template(template, &content_type)
                .map_err(|e| format!("webhook `{name}`: body_template: {e}"))?;
        }
        let client = http_client(cfg.timeout).map_err(|e| format!("webhook `{name}`: {e}"))?;
        Ok(WebhookReceiver {
            name: name.to_string(),
            url,
            format: cfg.format,
            template: cfg.body_template.clone(),
            content_type,
            secret: cfg.secret.clone(),
            headers,
            client,
        })
    }

    /// The exact body bytes sent for `message`. A `body_template` that fails to render is a
    /// permanent error (it would fail the same way on every retry).
    pub fn body(&self, message: &Message) -> Result<Vec<u8>, SendError> {
        if let Some(template) = &self.template {
            return render_body(template, message)
                .map(String::into_bytes)
                .map_err(|e| SendError::Permanent(format!("body_template: {e}")));
        }
        let value = match self.format {
            WebhookFormat::Alertmanager => alertmanager_v4(message),
            WebhookFormat::Slack => slack(message),
        };
        serde_json::to_vec(&value)
            .map_err(|e| SendError::Permanent(format!("encoding the body: {e}")))
    }

    async fn deliver(&self, message: &Message) -> Result<(), SendError> {
        let body = self.body(message)?;
        // Extra headers first, so they cannot replace the protocol headers set after them.
        let mut headers = self.headers.clone();
        let idempotency = HeaderValue::from_str(&message.id)
            .map_err(|_| SendError::Permanent("message id is not a valid header value".into()))?;
        headers.insert(HeaderName::from_static("idempotency-key"), idempotency);
        if let Some(secret) = &self.secret {
            let sig = signature(secret.expose().as_bytes(), &body).map_err(SendError::Permanent)?;
            let value = HeaderValue::from_str(&format!("sha256={sig}")).map_err(|_| {
                SendError::Permanent("signature is not a valid header value".into())
            })?;
            headers.insert(HeaderName::from_static(SIGNATURE_HEADER), value);
        }
        let answer = exchange(
            &self.client,
            self.url.clone(),
            headers,
            body,
            &self.content_type,
        )
        .await
        .and_then(|answer| match answer {
            Answer::Accepted => Ok(()),
            Answer::Refused(refusal) => Err(refusal.into_error()),
        });
        answer.map_err(|e| {
            // Which endpoint failed, without what may be a token (path, query, userinfo).
            let at = redact_url(self.url.as_str());
            e.map_text(|t| format!("{at}: {t}"))
        })
    }
}

impl std::fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL path may be a token and header values are secrets: show neither.
        f.debug_struct("WebhookReceiver")
            .field("name", &self.name)
            .field("origin", &origin(&self.url))
            .field("format", &self.format)
            .field("template", &self.template.is_some())
            .field("content_type", &self.content_type)
            .field("signed", &self.secret.is_some())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

super::receiver_delivering!(WebhookReceiver, "webhook");

/// `sha256=` value of `X-Lookout-Signature`: lowercase hex HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> Result<String, String> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).map_err(|_| "invalid HMAC key".to_string())?;
    mac.update(body);
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// `firing` or `resolved`, as Alertmanager spells them.
pub(crate) fn status_str(status: Status) -> &'static str {
    match status {
        Status::Firing => "firing",
        Status::Resolved => "resolved",
    }
}

/// The labels an alert carries on the wire: its instance labels plus `alertname`, `severity`
/// and, for a fire drill, `lookout_test="true"`.
pub fn wire_labels(alert: &AlertPayload, test: bool) -> LabelSet {
    let mut labels = alert.labels.clone();
    labels.insert("alertname".into(), alert.alert.clone());
    labels.insert("severity".into(), alert.severity.as_str().into());
    if test {
        labels.insert(TEST_LABEL.into(), "true".into());
    }
    labels
}

fn common(maps: &[BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let mut iter = maps.iter();
    let Some(first) = iter.next() else {
        return BTreeMap::new();
    };
    let mut out = first.clone();
    for m in iter {
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

/// Alertmanager webhook v4 JSON for `message`, so receivers written for Alertmanager accept it
/// unchanged.
///
/// Choices where lookout has no exact equivalent:
/// - `groupLabels`: the common labels restricted to `alertname` (empty when the alerts have
///   different names); the group's own key is in `groupKey`.
/// - `truncatedAlerts`: always 0. A rate-limit digest lists every alert it folded in, so
///   none is left out (Alertmanager's meaning of the field); the digest says how many
///   messages it merged in its `lookoutFolded` field.
/// - `externalURL` and `generatorURL`: empty strings (the agent has no public UI URL).
/// - `endsAt` while firing: `0001-01-01T00:00:00Z`, as Alertmanager sends.
pub fn alertmanager_v4(message: &Message) -> Value {
    let labels: Vec<LabelSet> = message
        .alerts
        .iter()
        .map(|a| wire_labels(a, message.test))
        .collect();
    let annotations: Vec<BTreeMap<String, String>> = message
        .alerts
        .iter()
        .map(|a| a.annotations.clone())
        .collect();
    let common_labels = common(&labels);
    let group_labels: LabelSet = common_labels
        .iter()
        .filter(|(k, _)| k.as_str() == "alertname")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let alerts: Vec<Value> = message
        .alerts
        .iter()
        .zip(&labels)
        .map(|(a, l)| {
            json!({
                "status": status_str(a.status),
                "labels": l,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": a.ends_at.map_or_else(|| ZERO_TIME.to_string(), rfc3339),
                "generatorURL": "",
                "fingerprint": a.fingerprint,
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": message.group_key,
        "truncatedAlerts": 0,
        "lookoutFolded": message.folded,
        "status": status_str(message.status()),
        "receiver": message.receiver,
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common(&annotations),
        "externalURL": "",
        "alerts": alerts,
    })
}

/// Slack attachment colour: red for critical, yellow for warning, green once resolved.
fn slack_color(message: &Message) -> &'static str {
    match (message.status(), message.severity()) {
        (Status::Resolved, _) => "#2eb886",
        (Status::Firing, Some(Severity::Critical)) => "#d00000",
        (Status::Firing, _) => "#f2c744",
    }
}

/// Title shared by the Slack text and attachment: `[FIRING:2] HostCpuHigh on web-1` (the name
/// and host only when every alert shares them; `[TEST]` first for a fire drill).
pub fn title(message: &Message) -> String {
    let status = message.status();
    let count = message.alerts.iter().filter(|a| a.status == status).count();
    let common = message.common_labels();
    let first_name = message.alerts.first().map(|a| a.alert.as_str());
    let same_name = message
        .alerts
        .iter()
        .all(|a| Some(a.alert.as_str()) == first_name);
    let mut out = String::new();
    if message.test {
        out.push_str("[TEST] ");
    }
    out.push_str(&format!("[{}:{count}]", status_str(status).to_uppercase()));
    match first_name {
        Some(name) if same_name => {
            out.push(' ');
            out.push_str(name);
        }
        _ => out.push_str(&format!(" {} alerts", message.alerts.len())),
    }
    if let Some(host) = common.get("host") {
        out.push_str(" on ");
        out.push_str(host);
    }
    out
}

/// What a one-line listing says of an alert: its `summary`, else its `description`, else its
/// value (`value 97.5`), else nothing.
pub fn alert_detail(a: &AlertPayload) -> String {
    a.annotations
        .get("summary")
        .or_else(|| a.annotations.get("description"))
        .cloned()
        .or_else(|| a.value.map(|v| format!("value {v}")))
        .unwrap_or_default()
}

/// Slack incoming-webhook JSON: a coloured attachment titled like the email subject, one line
/// per alert (`summary`, else `description`, else the value).
pub fn slack(message: &Message) -> Value {
    let title = title(message);
    let mut lines: Vec<String> = message
        .alerts
        .iter()
        .map(|a| {
            let host = a
                .labels
                .get("host")
                .map(|h| format!(" on {h}"))
                .unwrap_or_default();
            let detail = alert_detail(a);
            let state = match a.status {
                Status::Firing => a.severity.as_str(),
                Status::Resolved => "resolved",
            };
            format!("• [{state}] {}{host}: {detail}", a.alert)
        })
        .collect();
    if message.folded > 0 {
        lines.push(format!(
            "(digest: {} more messages folded in by the rate limit, all listed above)",
            message.folded
        ));
    }
    json!({
        "text": title,
        "attachments": [{
            "color": slack_color(message),
            "title": title,
            "text": lines.join("\n"),
        }],
    })
}

// ---------------------------------------------------------------------------------------------
// `body_template`: a minijinja template rendering the whole body.

/// The default `Content-Type`.
const JSON: &str = "application/json";

/// What a body template sees: the message, as [`template_context`] describes it.
fn template_environment() -> &'static minijinja::Environment<'static> {
    static ENV: std::sync::OnceLock<minijinja::Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        // An absent label or annotation renders empty, as in rule templates.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env
    })
}

/// The variables of a body template, for `message`:
///
/// - `status` (`firing` when any alert fires, else `resolved`), `severity` (the worst among
///   firing alerts, else among all), `title` (`[FIRING:2] HostCpuHigh on web-1`), `receiver`,
///   `group_key`, `id` (the `Idempotency-Key`), `test` (a fire drill), `folded` (messages a
///   rate-limit digest merged in), `created_at`, `common_labels`, `common_annotations`;
/// - `alerts`, each with `name`, `status`, `severity`, `kind` (`firing`, `escalated`,
///   `deescalated`, `repeat`, `resolved`), `labels` (with `alertname` and `severity`),
///   `annotations`, `value` (a number or none), `fingerprint`, `starts_at` and `ends_at`
///   (RFC 3339; `ends_at` none while firing), `summary` (the one-line detail).
pub fn template_context(message: &Message) -> Value {
    let alerts: Vec<Value> = message
        .alerts
        .iter()
        .map(|a| {
            json!({
                "name": a.alert,
                "status": status_str(a.status),
                "severity": a.severity.as_str(),
                "kind": a.kind,
                "labels": wire_labels(a, message.test),
                "annotations": a.annotations,
                "value": a.value,
                "fingerprint": a.fingerprint,
                "starts_at": rfc3339(a.starts_at),
                "ends_at": a.ends_at.map(rfc3339),
                "summary": alert_detail(a),
            })
        })
        .collect();
    json!({
        "status": status_str(message.status()),
        "severity": message.severity().map(Severity::as_str),
        "title": title(message),
        "receiver": message.receiver,
        "group_key": message.group_key,
        "id": message.id,
        "test": message.test,
        "folded": message.folded,
        "created_at": rfc3339(message.created_ms),
        "common_labels": message.common_labels(),
        "common_annotations": message.common_annotations(),
        "alerts": alerts,
    })
}

/// `body_template` rendered for `message`; the error says what went wrong and where.
pub fn render_body(template: &str, message: &Message) -> Result<String, String> {
    let ctx = minijinja::Value::from(minijinja::value::Serde(template_context(message)));
    template_environment()
        .render_str(template, ctx)
        .map_err(|e| template_error(&e))
}

/// A minijinja error in one line: its kind, detail and line in the template.
fn template_error(e: &minijinja::Error) -> String {
    let mut text = e.kind().to_string();
    if let Some(detail) = e.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    if let Some(line) = e.line() {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

/// Whether `content_type` says JSON (`application/json`, `application/*+json`).
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == JSON || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A message like those a template will see (a firing and a resolved alert, labels and
/// annotations), to try a template on when the configuration is checked.
fn sample_message() -> Message {
    let alert = |name: &str, status: Status| {
        let labels = LabelSet::from([
            ("host".to_string(), "web-1".to_string()),
            ("mountpoint".to_string(), "/data".to_string()),
        ]);
        AlertPayload {
            alert: name.into(),
            status,
            kind: match status {
                Status::Firing => crate::rules::state::Kind::Firing,
                Status::Resolved => crate::rules::state::Kind::Resolved,
            },
            severity: Severity::Critical,
            fingerprint: super::fingerprint(name, &labels),
            labels,
            annotations: BTreeMap::from([
                ("summary".to_string(), format!("{name} on web-1")),
                ("description".to_string(), "over the threshold".to_string()),
            ]),
            value: Some(0.97),
            starts_at: 1_700_000_000_000,
            ends_at: (status == Status::Resolved).then_some(1_700_000_600_000),
        }
    };
    Message {
        id: "sample".into(),
        receiver: "sample".into(),
        group_key: "{}:{}".into(),
        created_ms: 1_700_000_600_000,
        alerts: vec![
            alert("HostDiskFull", Status::Firing),
            alert("HostCpuHigh", Status::Resolved),
        ],
        folded: 0,
        test: false,
    }
}

/// Checks a body template: it parses, renders a sample message, and, for a JSON content
/// type, renders valid JSON (strings belong in `{{ x | tojson }}`, which quotes and escapes).
pub fn check_body_template(template: &str, content_type: &str) -> Result<(), String> {
    template_environment()
        .template_from_str(template)
        .map_err(|e| template_error(&e))?;
    let body = render_body(template, &sample_message())
        .map_err(|e| format!("fails on a sample message: {e}"))?;
    if is_json(content_type)
        && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&body)
    {
        return Err(format!(
            "renders invalid JSON for a sample message ({e}); quote values with `| tojson`, or set content_type"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers shared with the other HTTP receivers.

/// Parses an `http(s)://` URL.
pub(crate) fn parse_url(url: &str) -> Result<reqwest::Url, String> {
    // The URL itself may hold a token: name only what is wrong with it.
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(format!("URL scheme must be http or https, not `{other}`")),
    }
}

/// `scheme://host:port` of a URL: safe to name in errors (no path, query or credentials).
pub(crate) fn origin(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// One HTTP client for a receiver: total timeout `timeout`, redirects limited to 307/308 on the
/// same origin (see the module docs).
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    // reqwest panics at build time without a process-wide rustls provider; `main` installs
    // ring first thing, this only covers callers that did not (tests, tools).
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .last()
            .is_some_and(|prev| origin(prev) == origin(attempt.url()));
        let keeps_body = matches!(attempt.status().as_u16(), 307 | 308);
        if same_origin && keeps_body && attempt.previous().len() <= MAX_REDIRECTS {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(policy)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| format!("building the HTTP client: {}", describe(&e)))
}

/// What a response status means for the delivery (STYLE habit 7).
pub(crate) fn classify_status(status: u16) -> Result<(), Retry> {
    match status {
        200..=299 => Ok(()),
        // Server trouble, rate limiting, and the server giving up waiting for us: try again.
        500..=599 | 429 | 408 => Err(Retry::Yes),
        // Other 4xx: the request itself is wrong; a 3xx here was not followed (see module docs).
        _ => Err(Retry::No),
    }
}

/// Whether a failure is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    Yes,
    No,
}

/// POSTs `body` as JSON with `headers` and classifies the outcome ([`Refusal::into_error`]:
/// a retryable answer's `Retry-After` is passed on). Errors never contain the URL or header
/// values.
pub(crate) async fn post(
    client: &reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<(), SendError> {
    match exchange(client, url, headers, body, "application/json").await? {
        Answer::Accepted => Ok(()),
        Answer::Refused(refusal) => Err(refusal.into_error()),
    }
}

/// What an endpoint answered to a POST that reached it.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A 2xx.
    Accepted,
    /// Anything else: the receiver decides what it means (services answer in their own way).
    Refused(Refusal),
}

/// An answer other than 2xx: its status, its `Retry-After`, and the start of its body.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The status.
    pub(crate) status: reqwest::StatusCode,
    /// `Retry-After` (seconds or an HTTP date) as a wait from when the answer came.
    pub(crate) retry_after: Option<Duration>,
    /// At most [`EXCERPT_READ_BYTES`] of the body (services' error documents are shorter).
    pub(crate) body: Vec<u8>,
}

impl Refusal {
    /// At most [`EXCERPT_CHARS`] characters of the body, whitespace collapsed.
    pub(crate) fn excerpt(&self) -> String {
        collapse(&String::from_utf8_lossy(&self.body))
    }

    /// `HTTP 503 Service Unavailable: <excerpt>` (without the `:` part when the body is empty).
    pub(crate) fn describe(&self) -> String {
        self.describe_with(&self.excerpt())
    }

    /// `HTTP <status>: <what>`, `what` cut to [`EXCERPT_CHARS`] characters.
    pub(crate) fn describe_with(&self, what: &str) -> String {
        let what = collapse(what);
        if what.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            format!("HTTP {}: {what}", self.status)
        }
    }

    /// The default verdict ([`classify_status`]) with [`describe`](Self::describe)'s text;
    /// a retryable one keeps the `Retry-After`.
    pub(crate) fn into_error(self) -> SendError {
        let text = self.describe();
        self.verdict(text, None)
    }

    /// [`classify_status`]'s verdict with `text`; a retryable one waits for the longer of
    /// the `Retry-After` header and `asked` (a wait the body gave).
    pub(crate) fn verdict(&self, text: String, asked: Option<Duration>) -> SendError {
        match classify_status(self.status.as_u16()) {
            Ok(()) | Err(Retry::Yes) => SendError::retry(text, longest(self.retry_after, asked)),
            Err(Retry::No) => SendError::Permanent(text),
        }
    }
}

/// The longer of two optional waits.
pub(crate) fn longest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// POSTs `body` as `content_type` with `headers`: `Accepted` on a 2xx, else the refusal;
/// `Err` when no answer came (timeouts and connection trouble retry, see
/// [`transport_error`]). Errors never contain the URL or header values.
pub(crate) async fn exchange(
    client: &reqwest::Client,
    url: reqwest::Url,
    mut headers: HeaderMap,
    body: Vec<u8>,
    content_type: &str,
) -> Result<Answer, SendError> {
    let content_type = HeaderValue::from_str(content_type)
        .map_err(|_| SendError::Permanent("invalid content type".into()))?;
    headers.insert(reqwest::header::CONTENT_TYPE, content_type);
    let response = match client.post(url).headers(headers).body(body).send().await {
        Ok(r) => r,
        Err(e) => return Err(transport_error(&e.without_url())),
    };
    let status = response.status();
    if status.is_success() {
        return Ok(Answer::Accepted);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
    Ok(Answer::Refused(Refusal {
        status,
        retry_after,
        body: read_start(response).await,
    }))
}

/// A `Retry-After` value as a wait from `now`: delay-seconds (a non-negative number; a
/// fraction is kept, as some services send one) or an HTTP date (a date already past is no
/// wait). `None` when it is neither.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = value.parse().ok()?;
        // Beyond any sane wait (the dispatcher caps it anyway): the longest Duration.
        return Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A wait given in a service's JSON body as seconds (`retry_after: 5` or `1.5`): `None` when
/// absent, negative or not a number.
pub(crate) fn seconds_value(v: &Value) -> Option<Duration> {
    v.as_f64()
        .filter(|s| *s >= 0.0)
        .map(|s| Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX))
}

/// A failure before any response: timeouts and connection trouble retry, a request that
/// cannot even be built does not.
fn transport_error(e: &reqwest::Error) -> SendError {
    let text = describe(e);
    if e.is_builder() {
        SendError::Permanent(text)
    } else {
        // Connect errors, resets, DNS, broken bodies: the network may be better next time.
        SendError::Retryable(text)
    }
}

/// The error and its causes, without the URL.
fn describe(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut current: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = current {
        let s = err.to_string();
        if !parts.iter().any(|p: &String| p.contains(&s)) {
            parts.push(s);
        }
        current = err.source();
    }
    // The top-level reqwest message names the URL: drop it, keep the kind.
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_builder() {
        "invalid request"
    } else {
        "request failed"
    };
    let causes: Vec<&str> = parts.iter().skip(1).map(String::as_str).collect();
    if causes.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", causes.join(": "))
    }
}

/// At most [`EXCERPT_READ_BYTES`] of the response body. Reads chunk by chunk; the rest of
/// the body is never read (dropping the response closes its connection), and the client
/// timeout bounds the wait.
async fn read_start(mut response: reqwest::Response) -> Vec<u8> {
    let mut raw = Vec::new();
    while raw.len() < EXCERPT_READ_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = EXCERPT_READ_BYTES - raw.len();
                raw.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
            }
            Ok(None) | Err(_) => break,
        }
    }
    raw
}

/// At most [`EXCERPT_CHARS`] characters of `text`, whitespace collapsed.
fn collapse(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(EXCERPT_CHARS).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::secret::Secret;
    use crate::notify::Receiver;
    use crate::rules::state::Kind;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    pub(crate) fn provider() {
        // Ignore the error: another test may have installed it first.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    pub(crate) fn alert(
        name: &str,
        host: &str,
        status: Status,
        severity: Severity,
    ) -> AlertPayload {
        let labels = LabelSet::from([
            ("host".to_string(), host.to_string()),
            ("cpu".to_string(), "total".to_string()),
        ]);
        AlertPayload {
            alert: name.into(),
            status,
            kind: if status == Status::Firing {
                Kind::Firing
            } else {
                Kind::Resolved
            },
            severity,
            fingerprint: crate::notify::fingerprint(name, &labels),
            labels,
            annotations: BTreeMap::from([("summary".to_string(), format!("{name} on {host}"))]),
            value: Some(97.5),
            starts_at: 1_700_000_000_123,
            ends_at: (status == Status::Resolved).then_some(1_700_000_600_000),
        }
    }

    /// Checks one receiver kind's settings written as `yaml` (a flow mapping), in a
    /// configuration file in `dir` (for relative `*_file` keys), with the test environment
    /// (`HOOK_TOKEN`, `EMPTY`, ...). The problems, rendered.
    pub(crate) fn check_kind<K: crate::notify::Integration>(
        yaml: &str,
        dir: &std::path::Path,
    ) -> (Option<K::Config>, Vec<String>) {
        let raw: Spanned<K::Raw> = serde_saphyr::from_str(yaml).unwrap();
        let file = dir.join("t.yaml").display().to_string();
        let mut c = Checker::new(&file, &[]).with_env(crate::config::secret::fake_env);
        let config = K::check(&raw, &format!("r.{}", K::KEY), &mut c);
        let problems = c
            .into_problems()
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        (config, problems)
    }

    /// A scratch directory holding `files` (name, content), removed on drop.
    pub(crate) struct Files(pub(crate) std::path::PathBuf);

    impl Files {
        pub(crate) fn new(files: &[(&str, &str)]) -> Files {
            let dir = std::env::temp_dir().join(format!(
                "lookout-kind-{}-{:016x}",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            for (name, content) in files {
                std::fs::write(dir.join(name), content).unwrap();
            }
            Files(dir)
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) fn message(alerts: Vec<AlertPayload>, test: bool) -> Message {
        Message {
            id: "msg-0001".into(),
            receiver: "hooks".into(),
            group_key: "{}:{alertname=\"HostCpuHigh\"}".into(),
            created_ms: 1_700_000_000_500,
            alerts,
            folded: 0,
            test,
        }
    }

    fn config(url: &str, secret: Option<&str>, timeout: Duration) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            format: WebhookFormat::Alertmanager,
            secret: secret.map(Secret::new),
            headers: vec![("X-Api-Key".into(), Secret::new("key-123"))],
            timeout,
            body_template: None,
            content_type: None,
        }
    }

    fn receiver(url: &str, secret: Option<&str>) -> WebhookReceiver {
        provider();
        WebhookReceiver::new("hooks", &config(url, secret, Duration::from_secs(5))).unwrap()
    }

    #[test]
    fn firing_payload_is_alertmanager_v4() {
        let m = message(
            vec![
                alert("HostCpuHigh", "web-1", Status::Firing, Severity::Critical),
                alert("HostCpuHigh", "web-1", Status::Resolved, Severity::Warning),
            ],
            false,
        );
        let v: Value =
            serde_json::from_slice(&receiver("http://127.0.0.1:1/", None).body(&m).unwrap())
                .unwrap();
        assert_eq!(v["version"], "4");
        assert_eq!(v["groupKey"], m.group_key);
        assert_eq!(v["truncatedAlerts"], 0);
        assert_eq!(v["status"], "firing");
        assert_eq!(v["receiver"], "hooks");
        assert_eq!(v["externalURL"], "");
        assert_eq!(v["groupLabels"], json!({"alertname": "HostCpuHigh"}));
        // Severity differs between the two alerts, so it is not common.
        assert_eq!(
            v["commonLabels"],
            json!({"alertname": "HostCpuHigh", "cpu": "total", "host": "web-1"})
        );
        assert_eq!(
            v["commonAnnotations"],
            json!({"summary": "HostCpuHigh on web-1"})
        );
        let a = &v["alerts"][0];
        assert_eq!(a["status"], "firing");
        assert_eq!(
            a["labels"],
            json!({"alertname": "HostCpuHigh", "cpu": "total", "host": "web-1", "severity": "critical"})
        );
        assert_eq!(a["startsAt"], "2023-11-14T22:13:20.123Z");
        assert_eq!(a["endsAt"], ZERO_TIME);
        assert_eq!(a["generatorURL"], "");
        assert_eq!(a["fingerprint"], m.alerts[0].fingerprint);
        assert_eq!(v["alerts"][1]["status"], "resolved");
        assert_eq!(v["alerts"][1]["endsAt"], "2023-11-14T22:23:20.000Z");
    }

    #[test]
    fn resolved_and_test_payloads() {
        let m = message(
            vec![alert(
                "DiskFull",
                "db-1",
                Status::Resolved,
                Severity::Warning,
            )],
            false,
        );
        let v = alertmanager_v4(&m);
        assert_eq!(v["status"], "resolved");
        assert_eq!(v["alerts"][0]["endsAt"], "2023-11-14T22:23:20.000Z");
        assert_eq!(v["commonLabels"]["severity"], "warning");
        assert!(v["alerts"][0]["labels"].get(TEST_LABEL).is_none());

        let t = message(
            vec![alert("DiskFull", "db-1", Status::Firing, Severity::Warning)],
            true,
        );
        let v = alertmanager_v4(&t);
        assert_eq!(v["alerts"][0]["labels"][TEST_LABEL], "true");
        assert_eq!(v["commonLabels"][TEST_LABEL], "true");

        let mixed = message(
            vec![
                alert("DiskFull", "db-1", Status::Firing, Severity::Warning),
                alert("HostCpuHigh", "db-1", Status::Firing, Severity::Warning),
            ],
            false,
        );
        // Different names: no group label.
        assert_eq!(alertmanager_v4(&mixed)["groupLabels"], json!({}));
    }

    #[test]
    fn slack_payload() {
        let m = message(
            vec![
                alert("HostCpuHigh", "web-1", Status::Firing, Severity::Critical),
                alert("HostCpuHigh", "web-1", Status::Firing, Severity::Warning),
            ],
            false,
        );
        let v = slack(&m);
        assert_eq!(
            v["attachments"][0]["title"],
            "[FIRING:2] HostCpuHigh on web-1"
        );
        assert_eq!(v["attachments"][0]["color"], "#d00000");
        assert_eq!(v["text"], "[FIRING:2] HostCpuHigh on web-1");
        let text = v["attachments"][0]["text"].as_str().unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.starts_with("• [critical] HostCpuHigh on web-1: HostCpuHigh on web-1"),
            "{text}"
        );

        let warn = message(
            vec![alert("X", "a", Status::Firing, Severity::Warning)],
            true,
        );
        assert_eq!(slack(&warn)["attachments"][0]["color"], "#f2c744");
        assert_eq!(slack(&warn)["text"], "[TEST] [FIRING:1] X on a");
        let ok = message(
            vec![alert("X", "a", Status::Resolved, Severity::Critical)],
            false,
        );
        assert_eq!(slack(&ok)["attachments"][0]["color"], "#2eb886");
        assert_eq!(slack(&ok)["text"], "[RESOLVED:1] X on a");
    }

    #[test]
    fn signature_matches_an_independent_hmac() {
        let key = b"s3cret";
        let body = br#"{"version":"4"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(body);
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(signature(key, body).unwrap(), expected);
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?").unwrap(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn status_classification() {
        use Retry::{No, Yes};
        let rows: [(u16, Result<(), Retry>); 12] = [
            (200, Ok(())),   // plain success
            (202, Ok(())),   // accepted for later processing is still delivered
            (204, Ok(())),   // no content
            (500, Err(Yes)), // server bug: may pass next time
            (502, Err(Yes)), // proxy in front of the receiver is down
            (503, Err(Yes)), // overloaded or restarting
            (429, Err(Yes)), // rate limited: back off and retry
            (408, Err(Yes)), // server timed out waiting for the request
            (400, Err(No)),  // our payload is rejected: resending the same bytes cannot help
            (401, Err(No)),  // bad credentials: needs a config change
            (404, Err(No)),  // wrong URL
            (302, Err(No)),  // redirect not followed (would drop the POST body)
        ];
        for (status, expected) in rows {
            assert_eq!(classify_status(status), expected, "{status}");
        }
    }

    /// One captured request: head (request line + headers) and body.
    #[derive(Debug)]
    pub(crate) struct Captured {
        pub(crate) head: String,
        pub(crate) body: Vec<u8>,
    }

    /// Serves `response` to every connection on a fresh loopback port, capturing requests.
    pub(crate) async fn serve(
        response: String,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<Captured>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let response = response.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let Some(captured) = read_request(&mut sock).await else {
                        return;
                    };
                    let _ = tx.send(captured);
                    let _ = sock.write_all(response.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        (format!("http://{addr}/hook"), rx)
    }

    pub(crate) async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Captured> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < end + 4 + len {
                    let n = sock.read(&mut chunk).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                return Some(Captured {
                    head,
                    body: buf[end + 4..end + 4 + len].to_vec(),
                });
            }
            let n = sock.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub(crate) fn response(status: u16, extra: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
            body.len()
        )
    }

    fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    #[tokio::test]
    async fn sends_headers_and_a_verifiable_signature() {
        let (url, mut rx) = serve(response(200, "", "ok")).await;
        let r = receiver(&url, Some("s3cret"));
        let m = message(
            vec![alert(
                "HostCpuHigh",
                "web-1",
                Status::Firing,
                Severity::Critical,
            )],
            false,
        );
        r.send(&m).await.unwrap();
        let c = rx.recv().await.unwrap();
        assert!(c.head.starts_with("POST /hook HTTP/1.1"), "{}", c.head);
        assert_eq!(header(&c.head, "content-type"), Some("application/json"));
        assert_eq!(header(&c.head, "idempotency-key"), Some("msg-0001"));
        assert_eq!(header(&c.head, "user-agent"), Some(USER_AGENT));
        assert_eq!(header(&c.head, "x-api-key"), Some("key-123"));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(&c.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            header(&c.head, "x-lookout-signature"),
            Some(expected.as_str())
        );
        assert_eq!(c.body, r.body(&m).unwrap());
        // No secret: no signature header.
        let unsigned = receiver(&url, None);
        unsigned.send(&m).await.unwrap();
        let c = rx.recv().await.unwrap();
        assert_eq!(header(&c.head, "x-lookout-signature"), None);
    }

    #[tokio::test]
    async fn classifies_live_responses() {
        let m = message(
            vec![alert("X", "a", Status::Firing, Severity::Warning)],
            false,
        );
        let long = "e".repeat(1000);
        // (status, extra headers, body, expected retryable?; None = Ok)
        let rows: Vec<(u16, &str, &str, Option<bool>)> = vec![
            (200, "", "ok", None),                                       // delivered
            (204, "", "", None),                                         // delivered, no body
            (500, "", "boom", Some(true)),                               // server error: retry
            (503, "", &long, Some(true)), // overloaded: retry, excerpt capped
            (429, "Retry-After: 1\r\n", "slow down", Some(true)), // rate limited: retry
            (408, "", "", Some(true)),    // request timeout: retry
            (400, "", "bad payload", Some(false)), // rejected payload: permanent
            (403, "", "forbidden", Some(false)), // auth: permanent
            (302, "Location: http://127.0.0.2:9/\r\n", "", Some(false)), // redirect elsewhere: not followed
            (301, "Location: /other\r\n", "", Some(false)), // 301 would drop the body: not followed
        ];
        for (status, extra, body, expected) in rows {
            let (url, _rx) = serve(response(status, extra, body)).await;
            let got = receiver(&url, None).send(&m).await;
            match (expected, &got) {
                (None, Ok(())) => {}
                (Some(true), Err(SendError::Retryable(text) | SendError::RetryAfter(text, _)))
                | (Some(false), Err(SendError::Permanent(text))) => {
                    assert!(text.contains(&status.to_string()), "{status}: {text}");
                    // The endpoint, the status and the excerpt: nothing unbounded.
                    assert!(
                        text.chars().count() <= url.len() + EXCERPT_CHARS + 40,
                        "{status}: {text}"
                    );
                    // The endpoint is named by its origin; its path may be a token.
                    let origin = url.trim_end_matches("/hook");
                    assert!(
                        text.starts_with(&format!("{origin}/<redacted>: HTTP ")),
                        "{status}: {text}"
                    );
                    assert!(!text.contains("/hook"), "URL path leaked: {text}");
                }
                _ => panic!("{status}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[tokio::test]
    async fn an_endless_error_body_is_quoted_in_a_bounded_excerpt() {
        // Answers 500 with a chunked body that never ends; reports what it wrote once the
        // client went away (it stops at 256 MiB so a client reading it all cannot take the
        // machine's memory).
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut written) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let _ = read_request(&mut sock).await;
            let head = "HTTP/1.1 500 X\r\ntransfer-encoding: chunked\r\n\r\n";
            let chunk = format!(
                "4000\r\n{}\r\n",
                "oops ".repeat(0x4000 / 5 + 1).get(..0x4000).unwrap()
            );
            let mut n = 0usize;
            if sock.write_all(head.as_bytes()).await.is_ok() {
                while n < 256 << 20 && sock.write_all(chunk.as_bytes()).await.is_ok() {
                    n += chunk.len();
                }
            }
            let _ = tx.send(n);
        });
        let m = message(
            vec![alert("X", "a", Status::Firing, Severity::Warning)],
            false,
        );
        let got = receiver(&format!("http://{addr}/hook"), None)
            .send(&m)
            .await;
        let Err(SendError::Retryable(text)) = got else {
            panic!("{got:?}");
        };
        assert!(text.contains("HTTP 500") && text.contains("oops"), "{text}");
        assert!(text.chars().count() <= EXCERPT_CHARS + 80, "{text}");
        let sent = written.recv().await.unwrap();
        assert!(sent < 32 << 20, "the body was read on: {sent} bytes sent");
    }

    #[test]
    fn config_debug_shows_the_url_redacted() {
        let cfg = config(
            "https://hooks.slack.com/services/T0/B0/tok3n",
            Some("hmac-key"),
            Duration::from_secs(1),
        );
        let debug = format!("{cfg:?}");
        assert!(
            debug.contains("https://hooks.slack.com/<redacted>")
                && !debug.contains("tok3n")
                && !debug.contains("hmac-key")
                && !debug.contains("key-123"),
            "{debug}"
        );
    }

    #[tokio::test]
    async fn follows_same_origin_307() {
        // First request is redirected to /final on the same server, which accepts it.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Some(c) = read_request(&mut sock).await else {
                        return;
                    };
                    let reply = if c.head.starts_with("POST /final") && !c.body.is_empty() {
                        response(200, "", "")
                    } else {
                        response(307, "Location: /final\r\n", "")
                    };
                    let _ = sock.write_all(reply.as_bytes()).await;
                });
            }
        });
        let m = message(
            vec![alert("X", "a", Status::Firing, Severity::Warning)],
            false,
        );
        receiver(&format!("http://{addr}/hook"), None)
            .send(&m)
            .await
            .unwrap();
    }

    /// On paused time: the send ends exactly when the configured timeout runs out, however
    /// slow the machine.
    #[tokio::test(start_paused = true)]
    async fn timeout_is_retryable() {
        // Accepts connections and never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        provider();
        let r = WebhookReceiver::new(
            "hooks",
            &config(&format!("http://{addr}/"), None, Duration::from_millis(200)),
        )
        .unwrap();
        let m = message(
            vec![alert("X", "a", Status::Firing, Severity::Warning)],
            false,
        );
        let started = tokio::time::Instant::now();
        let got = r.send(&m).await;
        assert!(
            matches!(&got, Err(SendError::Retryable(t)) if t.starts_with(&format!("http://{addr}/: timeout"))),
            "{got:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test]
    async fn connection_refused_is_retryable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let r = receiver(&format!("http://127.0.0.1:{port}/"), None);
        let m = message(
            vec![alert("X", "a", Status::Firing, Severity::Warning)],
            false,
        );
        let got = r.send(&m).await;
        assert!(matches!(&got, Err(SendError::Retryable(_))), "{got:?}");
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        // (header value, expected wait)
        let rows: &[(&str, Option<Duration>)] = &[
            ("120", Some(Duration::from_secs(120))),    // delay-seconds
            (" 5 ", Some(Duration::from_secs(5))),      // surrounding space
            ("1.5", Some(Duration::from_millis(1500))), // a fraction, as some services send
            ("0", Some(Duration::ZERO)),                // at once
            (
                "Sun, 06 Nov 1994 08:50:37 GMT",
                Some(Duration::from_secs(60)),
            ), // IMF-fixdate, a minute on
            (
                "Sunday, 06-Nov-94 08:49:47 GMT",
                Some(Duration::from_secs(10)),
            ), // RFC 850
            ("Sun Nov  6 08:49:57 1994", Some(Duration::from_secs(20))), // asctime
            ("Sun, 06 Nov 1994 08:00:00 GMT", Some(Duration::ZERO)), // already past: no wait
            ("99999999999999999999999", Some(Duration::MAX)), // absurd: the longest (capped later)
            ("-5", None),                               // negative
            ("soon", None),                             // neither
            ("", None),
            ("1.2.3", None),
        ];
        for (value, expected) in rows {
            assert_eq!(parse_retry_after(value, now), *expected, "{value:?}");
        }
    }

    #[tokio::test]
    async fn a_retry_after_header_is_passed_on_for_retryable_answers_only() {
        let m = message(
            vec![alert("X", "a", Status::Firing, Severity::Warning)],
            false,
        );
        // (status, Retry-After, retryable?, expected wait)
        let rows: &[(u16, &str, bool, Option<u64>)] = &[
            (429, "7", true, Some(7)),   // rate limited: wait as told
            (503, "30", true, Some(30)), // overloaded, with a hint: wait as told
            (503, "", true, None),       // no hint: the backoff
            (400, "7", false, None),     // permanent: a hint changes nothing
        ];
        for (status, after, retryable, wait) in rows {
            let extra = if after.is_empty() {
                String::new()
            } else {
                format!("Retry-After: {after}\r\n")
            };
            let (url, _rx) = serve(response(*status, &extra, "busy")).await;
            let got = receiver(&url, None).send(&m).await.unwrap_err();
            assert_eq!(got.is_retryable(), *retryable, "{status}: {got:?}");
            assert_eq!(got.retry_after(), wait.map(Duration::from_secs), "{status}");
            assert!(got.text().contains(&status.to_string()), "{got:?}");
        }
    }

    /// A message with a firing and a resolved alert whose summary needs JSON escaping.
    fn templated() -> Message {
        let mut firing = alert("DiskFull", "db-1", Status::Firing, Severity::Critical);
        firing
            .annotations
            .insert("summary".into(), "disk \"/data\" at 97%".into());
        message(
            vec![
                firing,
                alert("HostCpuHigh", "db-1", Status::Resolved, Severity::Warning),
            ],
            false,
        )
    }

    #[test]
    fn a_body_template_renders_the_message() {
        let template = r#"{"state": {{ status | tojson }}, "n": {{ alerts | length }}, "items": [{% for a in alerts %}{"name": {{ a.name | tojson }}, "text": {{ a.annotations.summary | tojson }}, "sev": "{{ a.severity }}", "host": "{{ a.labels.host }}", "fp": "{{ a.fingerprint }}", "end": {{ a.ends_at | tojson }}, "v": {{ a.value }}}{% if not loop.last %}, {% endif %}{% endfor %}], "team": "{{ common_labels.team }}"}"#;
        check_body_template(template, JSON).unwrap();
        let m = templated();
        let body = render_body(template, &m).unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            json!({
                "state": "firing",
                "n": 2,
                "items": [
                    {"name": "DiskFull", "text": "disk \"/data\" at 97%", "sev": "critical", "host": "db-1",
                     "fp": m.alerts[0].fingerprint, "end": null, "v": 97.5},
                    {"name": "HostCpuHigh", "text": "HostCpuHigh on db-1", "sev": "warning", "host": "db-1",
                     "fp": m.alerts[1].fingerprint, "end": "2023-11-14T22:23:20.000Z", "v": 97.5},
                ],
                // An absent label renders empty.
                "team": "",
            })
        );
        // The other variables.
        let all = "{{ title }}|{{ severity }}|{{ receiver }}|{{ id }}|{{ test | tojson }}|{{ folded }}|{{ created_at }}|{{ alerts[1].status }}|{{ alerts[1].kind }}|{{ alerts[0].labels.alertname }}|{{ alerts[0].starts_at }}|{{ alerts[1].summary }}";
        assert_eq!(
            render_body(all, &m).unwrap(),
            "[FIRING:1] 2 alerts on db-1|critical|hooks|msg-0001|false|0|2023-11-14T22:13:20.500Z|resolved|resolved|DiskFull|2023-11-14T22:13:20.123Z|HostCpuHigh on db-1"
        );
    }

    #[test]
    fn body_template_problems_are_caught_at_check_time() {
        // (template, content type, expected problem)
        let rows = [
            ("{{ status ", JSON, "syntax error"),            // unclosed
            ("{% for a in alerts %}", JSON, "syntax error"), // unclosed block
            (
                "{{ status | nosuchfilter }}",
                "text/plain",
                "unknown filter",
            ), // fails to render
            (r#"{"text": "{{ status }}"#, JSON, "invalid JSON"), // broken JSON
            ("{{ title }}", JSON, "invalid JSON"),           // not quoted
            ("{{ title }}", "application/vnd.x+json", "invalid JSON"), // a +json type is JSON too
        ];
        for (template, content_type, expected) in rows {
            let err = check_body_template(template, content_type).unwrap_err();
            assert!(err.contains(expected), "{template}: {err}");
        }
        // Plain text need not be JSON.
        check_body_template("{{ title }}: {{ alerts[0].summary }}", "text/plain").unwrap();
        check_body_template(
            r#"{"t": {{ title | tojson }}}"#,
            "application/json; charset=utf-8",
        )
        .unwrap();
    }

    #[tokio::test]
    async fn a_templated_body_goes_out_with_its_content_type() {
        let (url, mut rx) = serve(response(200, "", "")).await;
        let mut cfg = config(&url, Some("k"), Duration::from_secs(5));
        cfg.body_template = Some("{{ title }}".into());
        cfg.content_type = Some("text/plain; charset=utf-8".into());
        let r = WebhookReceiver::new("hooks", &cfg).unwrap();
        r.send(&templated()).await.unwrap();
        let c = rx.recv().await.unwrap();
        assert_eq!(c.body, b"[FIRING:1] 2 alerts on db-1");
        let head = c.head.to_ascii_lowercase();
        assert!(
            head.contains("content-type: text/plain; charset=utf-8"),
            "{head}"
        );
        // Signed over the rendered bytes.
        let sig = signature(b"k", &c.body).unwrap();
        assert!(
            head.contains(&format!("x-lookout-signature: sha256={sig}")),
            "{head}"
        );
        // A template that only fails at send time is permanent.
        // (The sample message of the check has two alerts; this one three.)
        cfg.body_template = Some(
            "{% if alerts | length > 2 %}{{ 1 // (alerts | length - 3) }}{% endif %}ok".into(),
        );
        let r = WebhookReceiver::new("hooks", &cfg).unwrap();
        let mut three = templated();
        three.alerts.push(three.alerts[0].clone());
        let got = r.send(&three).await;
        assert!(
            matches!(&got, Err(SendError::Permanent(t)) if t.starts_with("body_template: ")),
            "{got:?}"
        );
    }

    #[test]
    fn media_types() {
        for ok in [
            "application/json",
            "text/plain; charset=utf-8",
            "application/vnd.api+json",
        ] {
            assert!(is_media_type(ok), "{ok}");
        }
        for bad in [
            "json",
            "text/",
            "/plain",
            "text/plain; charset",
            "text/pla in",
            "text/plain\n",
        ] {
            assert!(!is_media_type(bad), "{bad:?}");
        }
    }

    #[test]
    fn truncation_counts_utf16_and_never_splits_a_character() {
        assert_eq!(truncate_utf16("hello", 5), "hello");
        assert_eq!(truncate_utf16("hello!", 5), "hell…");
        // An emoji is two UTF-16 units: it does not fit in the last unit before the ellipsis.
        assert_eq!(truncate_utf16("ab🔥cd", 4), "ab…");
        assert_eq!(utf16_len(&truncate_utf16(&"é".repeat(300), 256)), 256);
    }

    #[test]
    fn rejects_bad_config_without_echoing_secrets() {
        provider();
        let mut cfg = config("ftp://x/", None, Duration::from_secs(1));
        assert!(
            WebhookReceiver::new("h", &cfg)
                .unwrap_err()
                .contains("scheme")
        );
        cfg.url = "http://x/".into();
        cfg.headers = vec![("X-Token".into(), Secret::new("bad\nvalue"))];
        let err = WebhookReceiver::new("h", &cfg).unwrap_err();
        assert!(err.contains("X-Token") && !err.contains("bad"), "{err}");
        cfg.headers = vec![("X-Token".into(), Secret::new("hunter2"))];
        let r = WebhookReceiver::new("h", &cfg).unwrap();
        assert!(!format!("{r:?}").contains("hunter2"));
        assert_eq!(r.kind(), "webhook");
        assert_eq!(r.name(), "h");
    }
}

// Configuration: the `webhook:` kind of a receiver entry.

/// Default `webhook.timeout`.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers a webhook sets itself; a configured header may not replace them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "idempotency-key",
    "x-lookout-signature",
];

/// `webhook:` receiver settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// `http://` or `https://` URL; absent: a problem.
    pub url: Option<Text>,
    /// `alertmanager` (webhook v4 JSON) or `slack`; absent: `alertmanager`.
    pub format: Option<Text>,
    /// HMAC key, only as a `${ENV_NAME}` reference; absent: see `secret_file`.
    pub secret: Option<Text>,
    /// File holding the HMAC key (trailing newline trimmed), absolute or relative to the
    /// configuration file's directory; absent with `secret`: requests are not signed.
    pub secret_file: Option<Text>,
    /// Extra request headers; values literal or with `${ENV_NAME}` references; absent: none.
    pub headers: Option<std::collections::BTreeMap<String, Text>>,
    /// Bound on one request, from `1s` to `5m`; absent: `10s`.
    pub timeout: Option<Text>,
    /// A minijinja template rendering the whole body (instead of `format`); absent: `format`.
    pub body_template: Option<Text>,
    /// `Content-Type` of a `body_template`'s body; absent: `application/json`.
    pub content_type: Option<Text>,
}

/// Body format of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// Alertmanager webhook v4 JSON.
    Alertmanager,
    /// Slack incoming-webhook JSON.
    Slack,
}

/// `webhook:` receiver settings. `Debug` shows the URL redacted ([`redact_url`]): its path
/// may be a token.
#[derive(Clone, PartialEq)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Body format.
    pub format: WebhookFormat,
    /// HMAC-SHA256 key for `X-Lookout-Signature`; none: unsigned.
    pub secret: Option<crate::config::secret::Secret>,
    /// Extra headers (values may be secrets, e.g. an `Authorization`).
    pub headers: Vec<(String, crate::config::secret::Secret)>,
    /// Bound on one request.
    pub timeout: Duration,
    /// A minijinja template rendering the whole body; replaces `format`.
    pub body_template: Option<String>,
    /// `Content-Type` of the body; `None`: `application/json`.
    pub content_type: Option<String>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redact_url(&self.url))
            .field("format", &self.format)
            .field("secret", &self.secret)
            .field("headers", &self.headers)
            .field("timeout", &self.timeout)
            .field("body_template", &self.body_template)
            .field("content_type", &self.content_type)
            .finish()
    }
}

/// The `webhook` receiver kind.
#[derive(Debug)]
pub struct WebhookKind;

impl super::Integration for WebhookKind {
    const KEY: &'static str = "webhook";
    const EXAMPLE: &'static str = r#"  - name: chat
    webhook: {url: "https://hooks.example.com/x", secret_file: /etc/lookout/hook-secret}"#;
    type Raw = RawWebhook;
    type Config = WebhookConfig;

    fn check(raw: &Spanned<RawWebhook>, base: &str, c: &mut Checker<'_>) -> Option<WebhookConfig> {
        let at = &raw.referenced;
        let raw = &raw.value;
        let mut valid = true;
        let url = c
            .required(base, at, "url", raw.url.as_ref(), "")
            .and_then(|text| c.http_url(&format!("{base}.url"), text));
        let format = match &raw.format {
            None => WebhookFormat::Alertmanager,
            Some(text) => match text.value.as_str() {
                "alertmanager" => WebhookFormat::Alertmanager,
                "slack" => WebhookFormat::Slack,
                other => {
                    c.report(
                        &format!("{base}.format"),
                        Some(&text.referenced),
                        format!("unknown format {other:?}: expected alertmanager or slack"),
                    );
                    valid = false;
                    WebhookFormat::Alertmanager
                }
            },
        };
        let secret = match c.secret(
            base,
            ("secret", raw.secret.as_ref()),
            ("secret_file", raw.secret_file.as_ref()),
        ) {
            SecretOutcome::Invalid => {
                valid = false;
                None
            }
            SecretOutcome::Absent => None,
            SecretOutcome::Given(secret, _) => Some(secret),
        };
        let mut headers = Vec::new();
        for (name, value) in raw.headers.iter().flatten() {
            let path = format!("{base}.headers.{name}");
            let at = Some(&value.referenced);
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                c.report(&path, at, format!("invalid header name {name:?}"));
                valid = false;
                continue;
            }
            if RESERVED_HEADERS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
            {
                c.report(
                    &path,
                    at,
                    format!("header {name:?} is set by lookout itself"),
                );
                valid = false;
                continue;
            }
            match interpolate_env(&value.value, c.env()) {
                // The value may hold a secret: the message never shows it.
                Ok(resolved) if reqwest::header::HeaderValue::from_str(&resolved).is_err() => {
                    c.report(
                        &path,
                        at,
                        "not a valid header value (control characters or non-ASCII bytes)",
                    );
                    valid = false;
                }
                Ok(resolved) => headers.push((name.clone(), Secret::new(resolved))),
                Err(why) => {
                    c.report(&path, at, why);
                    valid = false;
                }
            }
        }
        let timeout = c.duration(
            &format!("{base}.timeout"),
            raw.timeout.as_ref(),
            DEFAULT_WEBHOOK_TIMEOUT,
            MIN_RECEIVER_TIMEOUT,
            Some(MAX_RECEIVER_TIMEOUT),
        );
        let content_type = match &raw.content_type {
            None => None,
            Some(text) => {
                let path = format!("{base}.content_type");
                let at = Some(&text.referenced);
                if raw.body_template.is_none() {
                    c.report(
                        &path,
                        at,
                        "only with body_template (format's bodies are JSON)",
                    );
                    valid = false;
                } else if !is_media_type(&text.value) {
                    c.report(
                        &path,
                        at,
                        format!(
                            "{:?} is not a media type (type/subtype, such as text/plain; charset=utf-8)",
                            text.value
                        ),
                    );
                    valid = false;
                }
                Some(text.value.clone())
            }
        };
        let body_template = match &raw.body_template {
            None => None,
            Some(text) => {
                let path = format!("{base}.body_template");
                if let Some(f) = &raw.format {
                    c.report(
                        &format!("{base}.format"),
                        Some(&f.referenced),
                        "set either `format` or `body_template`, not both",
                    );
                    valid = false;
                } else if let Err(why) =
                    check_body_template(&text.value, content_type.as_deref().unwrap_or(JSON))
                {
                    c.report(&path, Some(&text.referenced), why);
                    valid = false;
                }
                Some(text.value.clone())
            }
        };
        let (url, timeout) = (url?, timeout?);
        valid.then_some(WebhookConfig {
            url,
            format,
            secret,
            headers,
            timeout,
            body_template,
            content_type,
        })
    }

    fn build(name: &str, config: &WebhookConfig) -> Result<std::sync::Arc<dyn Receiver>, String> {
        Ok(std::sync::Arc::new(WebhookReceiver::new(name, config)?))
    }
}

/// Whether `text` is a media type a `Content-Type` can carry: `type/subtype` of token
/// characters, then optional `; name=value` parameters, all visible ASCII.
fn is_media_type(text: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    token(kind)
        && token(subtype)
        && HeaderValue::from_str(text).is_ok()
        && parts.all(|p| {
            p.split_once('=')
                .is_some_and(|(n, v)| token(n.trim()) && !v.trim().is_empty())
        })
}

// Configuration helpers shared by the receiver kinds of the chat and paging services.

/// A required secret of the receiver entry `base` (written at `at`): `key: ${ENV_NAME}` or
/// `key_file: path` ([`Checker::secret`]); its value is then checked by `check`, whose
/// message must not repeat it. `None` when absent or invalid, every problem reported.
pub(crate) fn required_secret(
    c: &mut Checker<'_>,
    base: &str,
    at: &serde_saphyr::Location,
    (key, inline): (&str, Option<&Text>),
    file: Option<&Text>,
    check: impl Fn(&str) -> Result<(), String>,
) -> Option<Secret> {
    let file_key = format!("{key}_file");
    match c.secret(base, (key, inline), (&file_key, file)) {
        SecretOutcome::Absent => {
            if !c.removed(&format!("{base}.{key}")) && !c.removed(&format!("{base}.{file_key}")) {
                c.report(
                    base,
                    Some(at),
                    format!("`{file_key}` or `{key}: ${{ENV_NAME}}` is required"),
                );
            }
            None
        }
        SecretOutcome::Invalid => None,
        SecretOutcome::Given(secret, (path, at)) => match check(secret.expose()) {
            Ok(()) => Some(secret),
            Err(why) => {
                c.report(&path, Some(at), why);
                None
            }
        },
    }
}

/// An optional secret (`key: ${ENV_NAME}` or `key_file`): `Ok(None)` when absent, `Err(())`
/// when invalid (reported).
pub(crate) fn optional_secret(
    c: &mut Checker<'_>,
    base: &str,
    (key, inline): (&str, Option<&Text>),
    file: Option<&Text>,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<Option<Secret>, ()> {
    let file_key = format!("{key}_file");
    match c.secret(base, (key, inline), (&file_key, file)) {
        SecretOutcome::Absent => Ok(None),
        SecretOutcome::Invalid => Err(()),
        SecretOutcome::Given(secret, (path, at)) => match check(secret.expose()) {
            Ok(()) => Ok(Some(secret)),
            Err(why) => {
                c.report(&path, Some(at), why);
                Err(())
            }
        },
    }
}

/// Checks a URL that is a secret (a webhook URL carrying its token): `http(s)://` with a
/// host. The message never repeats the URL.
pub(crate) fn secret_http_url(value: &str) -> Result<(), String> {
    match reqwest::Url::parse(value) {
        // The parser's message names what is wrong, not the URL.
        Err(e) => Err(format!("not a valid URL: {e}")),
        Ok(url) if !matches!(url.scheme(), "http" | "https") => Err(format!(
            "must be an http or https URL, got {:?}",
            url.scheme()
        )),
        Ok(url) if url.host_str().is_none_or(str::is_empty) => Err("URL has no host".into()),
        Ok(_) => Ok(()),
    }
}

/// A secret usable in a header value or URL path: not empty, visible ASCII only. The message
/// never repeats it.
pub(crate) fn visible_ascii(value: &str) -> Result<(), String> {
    if value.is_empty() {
        Err("is empty".into())
    } else if value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("must be visible ASCII characters only (no spaces or line breaks)".into())
    }
}

/// An optional service URL (`api_url`, `url`): checked, else `default`.
pub(crate) fn service_url(
    c: &mut Checker<'_>,
    path: &str,
    given: Option<&Text>,
    default: &str,
) -> Option<String> {
    match given {
        None => Some(default.to_string()),
        Some(text) => c.http_url(path, text),
    }
}

/// A receiver's `timeout`: from `1s` to `5m`, `default` when absent.
pub(crate) fn receiver_timeout(
    c: &mut Checker<'_>,
    base: &str,
    given: Option<&Text>,
    default: Duration,
) -> Option<Duration> {
    c.duration(
        &format!("{base}.timeout"),
        given,
        default,
        MIN_RECEIVER_TIMEOUT,
        Some(MAX_RECEIVER_TIMEOUT),
    )
}

/// `text` cut to at most `max` UTF-16 code units (what chat services count), ending with `…`
/// when cut. Never splits a character.
pub fn truncate_utf16(text: &str, max: usize) -> String {
    if text.encode_utf16().count() <= max {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 1; // the ellipsis
    for ch in text.chars() {
        used += ch.len_utf16();
        if used > max {
            break;
        }
        out.push(ch);
    }
    out.push('…');
    out
}

/// Length of `text` in UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Settings of a receiver reached at one secret URL and nothing else (Discord's and
/// Teams' incoming webhooks, whose URL carries the token or signature).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretUrl {
    /// The webhook URL, only as a `${ENV_NAME}` reference; absent: see `webhook_url_file`.
    pub webhook_url: Option<Text>,
    /// File holding the webhook URL; one of the two is required.
    pub webhook_url_file: Option<Text>,
    /// Bound on one request, from `1s` to `5m`; absent: the kind's default.
    pub timeout: Option<Text>,
}

/// [`RawSecretUrl`] checked. `Debug` shows the URL's origin only.
#[derive(Clone, PartialEq)]
pub struct SecretUrlConfig {
    /// The webhook URL (an `http` one only for tests or a proxy).
    pub webhook_url: Secret,
    /// Bound on one request.
    pub timeout: Duration,
}

impl std::fmt::Debug for SecretUrlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretUrlConfig")
            .field("webhook_url", &redact_url(self.webhook_url.expose()))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SecretUrlConfig {
    /// Checks the settings of the receiver entry `base`; `None` with every problem
    /// reported.
    pub(crate) fn check(
        raw: &Spanned<RawSecretUrl>,
        base: &str,
        c: &mut Checker<'_>,
        default_timeout: Duration,
    ) -> Option<SecretUrlConfig> {
        let at = &raw.referenced;
        let raw = &raw.value;
        let webhook_url = required_secret(
            c,
            base,
            at,
            ("webhook_url", raw.webhook_url.as_ref()),
            raw.webhook_url_file.as_ref(),
            secret_http_url,
        );
        let timeout = receiver_timeout(c, base, raw.timeout.as_ref(), default_timeout);
        Some(SecretUrlConfig {
            webhook_url: webhook_url?,
            timeout: timeout?,
        })
    }
}
