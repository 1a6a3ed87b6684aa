//! The `log` receiver: one structured log line per alert of a message (target
//! `lookout::notify`; JSON with `--log-format json`). It cannot fail.

use super::{BoxFuture, Message, Receiver, SendError};
use crate::rules::engine::Status;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::Checker;

/// Writes notifications to the agent's log.
#[derive(Debug)]
pub struct LogReceiver {
    name: String,
}

impl LogReceiver {
    /// A log receiver called `name`.
    pub fn new(name: &str) -> Self {
        LogReceiver {
            name: name.to_string(),
        }
    }
}

/// Logs one message, a line per alert.
pub fn log_message(receiver: &str, message: &Message) {
    for a in &message.alerts {
        let labels = serde_json::to_string(&a.labels).unwrap_or_default();
        let value = a.value.map(|v| v.to_string()).unwrap_or_default();
        let summary = a.annotations.get("summary").map_or("", String::as_str);
        // The same fields at warn while firing, at info once resolved (tracing fixes the
        // level of each call site).
        macro_rules! notification {
            ($level:ident, $status:literal) => {
                tracing::$level!(
                    target: "lookout::notify",
                    receiver, alert = %a.alert, status = $status, kind = ?a.kind,
                    severity = a.severity.as_str(), labels = %labels, value = %value,
                    summary = %summary, test = message.test, id = %message.id,
                    "notification"
                )
            };
        }
        match a.status {
            Status::Firing => notification!(warn, "firing"),
            Status::Resolved => notification!(info, "resolved"),
        }
    }
    if message.folded > 0 {
        tracing::warn!(target: "lookout::notify", receiver, folded = message.folded, id = %message.id, "notifications folded by the rate limit");
    }
}

impl Receiver for LogReceiver {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "log"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), SendError>> {
        log_message(&self.name, message);
        Box::pin(std::future::ready(Ok(())))
    }
}

// Configuration: the `log:` kind of a receiver entry (`log: {}`, no settings).

/// `log: {}`: no settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {}

/// The `log` receiver's settings: none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogConfig;

/// The `log` receiver kind.
#[derive(Debug)]
pub struct LogKind;

impl super::Integration for LogKind {
    const KEY: &'static str = "log";
    /// None: the default file shows the log receiver as the default value itself.
    const EXAMPLE: &'static str = "";
    type Raw = RawLog;
    type Config = LogConfig;

    fn check(_: &Spanned<RawLog>, _: &str, _: &mut Checker<'_>) -> Option<LogConfig> {
        Some(LogConfig)
    }

    fn build(name: &str, _: &LogConfig) -> Result<std::sync::Arc<dyn Receiver>, String> {
        Ok(std::sync::Arc::new(LogReceiver::new(name)))
    }
}
