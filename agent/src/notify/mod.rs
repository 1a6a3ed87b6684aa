//! Delivery: routing, grouping, the durable outbox, retries, and one file per receiver kind.
//!
//! Data flows one way: the rule engine's notifications are routed to receivers
//! ([`route`]), grouped per receiver ([`group`]) into [`Message`]s, written to the
//! [`outbox`] (fsynced) before any send, and delivered oldest first per receiver by the
//! dispatcher, which applies the [`policy`] (backoff, circuit breaker, rate limit) and
//! records each outcome. Receivers say whether a failure is worth retrying
//! ([`SendError`]); nothing here decides *whether* to notify: that is the engine's job.

pub mod alertmanager;
pub mod config;
pub mod discord;
pub mod dispatch;
pub mod email;
pub mod group;
pub mod heartbeat;
pub mod held;
pub mod log;
pub mod ntfy;
pub mod outbox;
pub mod pagerduty;
pub mod policy;
pub mod route;
pub mod teams;
pub mod telegram;
pub mod webhook;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub use crate::config::secret::Secret;
use crate::rules::LabelSet;
use crate::rules::engine::Status;
use crate::rules::model::Severity;
use crate::rules::state::Kind;
use crate::store::Millis;

/// One alert inside a message, in the shape every receiver formats from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertPayload {
    /// Alert name.
    pub alert: String,
    /// Firing or resolved.
    pub status: Status,
    /// Why this notification was sent (firing, escalated, repeat, ...).
    pub kind: Kind,
    /// Severity (for resolved: the one it had).
    pub severity: Severity,
    /// Instance labels, `host` included (receivers add `alertname` and `severity` where their
    /// format expects them).
    pub labels: LabelSet,
    /// `summary`, `description`, and anything else worth showing.
    pub annotations: BTreeMap<String, String>,
    /// Value that decided the notification.
    pub value: Option<f64>,
    /// When the alert started firing (ms since the epoch).
    pub starts_at: Millis,
    /// When it resolved; `None` while firing.
    pub ends_at: Option<Millis>,
    /// Stable identity of the alert instance: hex of a hash of name and labels.
    pub fingerprint: String,
}

/// One delivery to one receiver: a group of alerts (or a digest, or a fire drill).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Unique and stable across retries and restarts: the `Idempotency-Key`.
    pub id: String,
    /// Receiver name.
    pub receiver: String,
    /// Grouping key (the labels the group shares), as in Alertmanager's `groupKey`.
    pub group_key: String,
    /// When the message was created (ms since the epoch).
    pub created_ms: Millis,
    /// The alerts, in the order they were decided.
    pub alerts: Vec<AlertPayload>,
    /// Messages the rate limit folded into this one (a digest); their alerts are listed in
    /// `alerts`, so nothing is left out.
    pub folded: u32,
    /// A fire drill (`lookout notify test`), not a real alert.
    pub test: bool,
}

impl Message {
    /// `firing` if any alert is firing, else `resolved` (Alertmanager's group status).
    pub fn status(&self) -> Status {
        if self.alerts.iter().any(|a| a.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        }
    }

    /// The worst severity among firing alerts, else among all.
    pub fn severity(&self) -> Option<Severity> {
        let firing = self
            .alerts
            .iter()
            .filter(|a| a.status == Status::Firing)
            .map(|a| a.severity)
            .max();
        firing.or_else(|| self.alerts.iter().map(|a| a.severity).max())
    }

    /// Labels every alert of the message shares (Alertmanager's `commonLabels`).
    pub fn common_labels(&self) -> LabelSet {
        common(self.alerts.iter().map(|a| &a.labels))
    }

    /// Annotations every alert of the message shares (`commonAnnotations`).
    pub fn common_annotations(&self) -> BTreeMap<String, String> {
        common(self.alerts.iter().map(|a| &a.annotations))
    }
}

fn common<'a>(
    mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut out = first.clone();
    for m in maps {
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

/// Why a send failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// A timeout, a refused connection, a 5xx or 429: try again later.
    #[error("{0} (will retry)")]
    Retryable(String),
    /// Retryable, and the receiver said when: not before this long from now (a 429's
    /// `Retry-After`, Telegram's `retry_after`). The dispatcher waits at least that long,
    /// up to [`policy::MAX_RETRY_AFTER`].
    #[error("{0} (will retry, not before {1:?})")]
    RetryAfter(String, std::time::Duration),
    /// A 4xx other than 429, a rejected address, a bad configuration: retrying cannot help.
    #[error("{0} (permanent)")]
    Permanent(String),
}

impl SendError {
    /// A retryable error, with the receiver's "not before" when it gave one.
    pub fn retry(text: String, after: Option<std::time::Duration>) -> SendError {
        match after {
            Some(after) => SendError::RetryAfter(text, after),
            None => SendError::Retryable(text),
        }
    }

    /// What went wrong, without the retry verdict.
    pub fn text(&self) -> &str {
        match self {
            SendError::Retryable(t) | SendError::RetryAfter(t, _) | SendError::Permanent(t) => t,
        }
    }

    /// Whether trying again can help.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, SendError::Permanent(_))
    }

    /// How long the receiver asked to wait before the next attempt, if it said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            SendError::RetryAfter(_, after) => Some(*after),
            SendError::Retryable(_) | SendError::Permanent(_) => None,
        }
    }

    /// The same verdict with the text changed by `f` (to say where it happened).
    pub fn map_text(self, f: impl FnOnce(String) -> String) -> SendError {
        match self {
            SendError::Retryable(t) => SendError::Retryable(f(t)),
            SendError::RetryAfter(t, after) => SendError::RetryAfter(f(t), after),
            SendError::Permanent(t) => SendError::Permanent(f(t)),
        }
    }
}

/// A boxed, sendable future (`async fn` in a trait is not object-safe on this toolchain).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that delivers messages: an SMTP relay, a webhook, an Alertmanager cluster, the
/// log. Implementations bound every network call with a timeout.
pub trait Receiver: Send + Sync {
    /// The receiver's configured name.
    fn name(&self) -> &str;
    /// The kind's key: `email`, `webhook`, `telegram`, ... or `log`.
    fn kind(&self) -> &'static str;
    /// Delivers one message. Must be idempotent for the same `message.id` where the protocol
    /// allows (webhooks send it as `Idempotency-Key`).
    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), SendError>>;
}

/// Shortest accepted receiver `timeout`.
pub const MIN_RECEIVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest accepted receiver `timeout`.
pub const MAX_RECEIVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// `impl Receiver` of kind `$kind` for `$receiver`, a type with a `name: String` field and
/// an inherent `async fn deliver(&self, &Message) -> Result<(), SendError>` (the email,
/// webhook and Alertmanager receivers).
macro_rules! receiver_delivering {
    ($receiver:ty, $kind:literal) => {
        impl $crate::notify::Receiver for $receiver {
            fn name(&self) -> &str {
                &self.name
            }

            fn kind(&self) -> &'static str {
                $kind
            }

            fn send<'a>(
                &'a self,
                message: &'a $crate::notify::Message,
            ) -> $crate::notify::BoxFuture<'a, Result<(), $crate::notify::SendError>> {
                Box::pin(self.deliver(message))
            }
        }
    };
}
pub(crate) use receiver_delivering;

/// A receiver kind (an integration: email, webhook, ...): the key that names it in a
/// receiver entry, its settings, and how a receiver is built from them.
pub trait Integration {
    /// The key of this kind in a receiver entry (`email`).
    const KEY: &'static str;
    /// One commented-out example entry, for the default file.
    const EXAMPLE: &'static str;
    /// What serde reads under the key.
    type Raw: serde::de::DeserializeOwned + std::fmt::Debug;
    /// The checked settings.
    type Config: Clone + std::fmt::Debug + PartialEq;
    /// Checks the settings under `base` (`notify.receivers[2].email`); `None` when invalid
    /// (every problem reported).
    fn check(
        raw: &serde_saphyr::Spanned<Self::Raw>,
        base: &str,
        c: &mut crate::config::Checker<'_>,
    ) -> Option<Self::Config>;
    /// Builds the receiver called `name`.
    fn build(name: &str, config: &Self::Config) -> Result<std::sync::Arc<dyn Receiver>, String>;
}

/// Fingerprint of an alert instance: stable hex of (name, labels). It is the rules'
/// (muting needs it too, and rules come before delivery).
pub use crate::rules::fingerprint;

/// RFC 3339 UTC time of `ms` since the epoch, as Alertmanager's payloads carry it.
pub fn rfc3339(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        // (ms since epoch, expected) — instants checked against `date -u -d @...`
        let rows = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"), // leap day of a century leap year
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        ];
        for (ms, expected) in rows {
            assert_eq!(rfc3339(ms), expected, "{ms}");
        }
    }

    #[test]
    fn fingerprints_are_stable_and_label_sensitive() {
        let a = LabelSet::from([("host".to_string(), "web-1".to_string())]);
        let b = LabelSet::from([("host".to_string(), "web-2".to_string())]);
        assert_eq!(fingerprint("X", &a), fingerprint("X", &a));
        assert_ne!(fingerprint("X", &a), fingerprint("X", &b));
        assert_ne!(fingerprint("X", &a), fingerprint("Y", &a));
        assert_eq!(fingerprint("X", &a).len(), 16);
    }
}
