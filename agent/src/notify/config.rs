//! `notify:`: how notifications are delivered, and the receiver registry.
//!
//! The section's own keys (repeat, grouping, retry, breaker, rate limit, routes) are checked
//! here with the policy's and the router's checks; each receiver entry names exactly one
//! kind, and each kind (email, webhook, alertmanager, log, ...) owns its settings in its own
//! file by implementing [`Integration`](super::Integration). Adding a receiver kind is that file plus one line in
//! [`kinds!`] below: the raw entry, the checked [`ReceiverKind`], the "exactly one of"
//! messages, the default file's examples and the receiver builder all follow from it.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::policy::{
    BreakerConfig, RateLimitConfig, RawBreaker, RawRateLimit, RawRetry, RetryConfig, check_breaker,
    check_rate_limit, check_retry,
};
use super::route::{RawRoute, RouteConfig, check_routes};
use super::{Integration, Receiver};
use crate::config::{Checker, Section, Text};
use crate::rules::config::DEFAULT_REPEAT_INTERVAL;

/// Shortest accepted `notify.repeat_interval`.
pub const MIN_REPEAT_INTERVAL: Duration = Duration::from_secs(60);
/// Longest accepted `notify.group_wait`.
pub const MAX_GROUP_WAIT: Duration = Duration::from_secs(600);
/// The receiver registry: `key => Variant(kind type)`, one line per kind.
macro_rules! kinds {
    ($($key:ident => $variant:ident($kind:ty),)*) => {
        /// One item of `notify.receivers`: a name and exactly one kind key.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawReceiver {
            /// Unique, non-empty name used by routes; absent: a problem.
            pub name: Option<Text>,
            /// Overrides `notify.send_resolved` for this receiver; absent: the section's value.
            pub send_resolved: Option<bool>,
            $(
                #[doc = concat!("`", stringify!($key), ":` settings; absent: not this kind.")]
                pub $key: Option<Spanned<<$kind as Integration>::Raw>>,
            )*
        }

        /// A receiver's kind with its checked settings.
        #[derive(Debug, Clone, PartialEq)]
        pub enum ReceiverKind {
            $(
                #[doc = concat!("`", stringify!($key), ":`.")]
                $variant(<$kind as Integration>::Config),
            )*
        }

        /// The kind keys, in registry order.
        pub const KEYS: &[&str] = &[$(<$kind as Integration>::KEY,)*];

        /// The kind keys an entry gives.
        fn given_kinds(raw: &RawReceiver) -> Vec<&'static str> {
            let mut given = Vec::new();
            $(if raw.$key.is_some() {
                given.push(<$kind as Integration>::KEY);
            })*
            given
        }

        /// One example entry per kind, for the default file.
        fn examples() -> Vec<&'static str> {
            vec![$(<$kind as Integration>::EXAMPLE,)*]
        }

        impl ReceiverKind {
            /// The kind's key (`email`).
            pub fn key(&self) -> &'static str {
                match self {
                    $(ReceiverKind::$variant(_) => <$kind as Integration>::KEY,)*
                }
            }

            /// Checks the (first) kind an entry gives, under `base` (the entry's path).
            fn check(raw: &RawReceiver, base: &str, c: &mut Checker<'_>) -> Option<ReceiverKind> {
                $(if let Some(settings) = &raw.$key {
                    let path = format!("{base}.{}", <$kind as Integration>::KEY);
                    return <$kind as Integration>::check(settings, &path, c).map(ReceiverKind::$variant);
                })*
                None
            }

            /// Builds the receiver called `name`.
            pub fn build(&self, name: &str) -> Result<Arc<dyn Receiver>, String> {
                match self {
                    $(ReceiverKind::$variant(config) => <$kind as Integration>::build(name, config),)*
                }
                .map_err(|e| format!("receiver {name}: {e}"))
            }
        }
    };
}

kinds! {
    email => Email(super::email::EmailKind),
    webhook => Webhook(super::webhook::WebhookKind),
    alertmanager => Alertmanager(super::alertmanager::AlertmanagerKind),
    log => Log(super::log::LogKind),
    telegram => Telegram(super::telegram::TelegramKind),
    discord => Discord(super::discord::DiscordKind),
    ntfy => Ntfy(super::ntfy::NtfyKind),
    pagerduty => PagerDuty(super::pagerduty::PagerDutyKind),
    teams => Teams(super::teams::TeamsKind),
}

/// The kind keys as messages list them: `` `email`, `webhook`, ... ``.
fn key_list() -> String {
    KEYS.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `notify:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// How often a still-firing alert is notified again; absent: `4h`.
    pub repeat_interval: Option<Text>,
    /// Window in which notifications for one receiver are grouped into one message, from
    /// `0s` to `10m`; absent: `10s`.
    pub group_wait: Option<Text>,
    /// Whether resolved notifications are sent; absent: `true`.
    pub send_resolved: Option<bool>,
    /// Backoff between delivery attempts; absent: every retry default.
    pub retry: Option<RawRetry>,
    /// Per-receiver circuit breaker; absent: its defaults.
    pub circuit_breaker: Option<RawBreaker>,
    /// Per-receiver rate limit; absent: its defaults.
    pub rate_limit: Option<RawRateLimit>,
    /// Where notifications can go; absent: one `log` receiver named `log`. A list given
    /// must not be empty.
    pub receivers: Option<Spanned<Vec<Spanned<RawReceiver>>>>,
    /// Routes, first match wins; absent: one route to every receiver. A list given must
    /// not be empty.
    pub route: Option<Spanned<Vec<Spanned<RawRoute>>>>,
    /// Fixed silences; absent: none (more come and go through the API).
    pub silences: Option<Vec<Spanned<crate::rules::mute::config::RawSilence>>>,
    /// Inhibition rules; absent: none (besides the rules' own `inhibits`).
    pub inhibit: Option<Vec<Spanned<crate::rules::mute::config::RawInhibit>>>,
    /// Recurring maintenance windows; absent: none.
    pub maintenance: Option<Vec<Spanned<crate::rules::mute::config::RawMaintenance>>>,
    /// A dead-man's switch for the agent itself; absent: none.
    pub heartbeat: Option<Spanned<super::heartbeat::RawHeartbeat>>,
}

/// `notify:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    /// How often a still-firing alert is notified again.
    pub repeat_interval: Duration,
    /// Where notifications can go. Absent in YAML: one `log` receiver named `log`.
    pub receivers: Vec<ReceiverConfig>,
    /// Routes, first match wins (`continue` falls through). Absent in YAML: one route sending
    /// everything to every configured receiver.
    pub route: Vec<RouteConfig>,
    /// Notifications for one receiver decided within this window go out as one message.
    pub group_wait: Duration,
    /// Whether resolved notifications are sent (per receiver it can be turned off).
    pub send_resolved: bool,
    /// Retry with exponential backoff.
    pub retry: RetryConfig,
    /// Per-receiver circuit breaker.
    pub circuit_breaker: BreakerConfig,
    /// Per-receiver rate limit; overflow is folded into one digest, never dropped.
    pub rate_limit: RateLimitConfig,
    /// Fixed silences.
    pub silences: Vec<crate::rules::mute::silence::Silence>,
    /// Inhibition rules of the configuration.
    pub inhibit: Vec<crate::rules::mute::inhibit::InhibitRule>,
    /// Maintenance windows.
    pub maintenance: Vec<crate::rules::mute::MaintenanceWindow>,
    /// Pings a URL every interval while the pipeline is healthy; `None`: no heartbeat.
    pub heartbeat: Option<super::heartbeat::HeartbeatConfig>,
}

/// One receiver: a name and where it delivers.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    /// Unique name, used by routes and in metrics.
    pub name: String,
    /// Overrides `notify.send_resolved` for this receiver.
    pub send_resolved: Option<bool>,
    /// The kind and its settings.
    pub kind: ReceiverKind,
}

impl NotifyConfig {
    /// The defaults with the given repeat interval: alerts to the log, the documented retry,
    /// breaker and rate limit.
    pub fn defaults(repeat_interval: Duration) -> Self {
        NotifyConfig {
            repeat_interval,
            receivers: vec![ReceiverConfig {
                name: "log".into(),
                send_resolved: None,
                kind: ReceiverKind::Log(super::log::LogConfig),
            }],
            route: vec![RouteConfig {
                matchers: Vec::new(),
                receivers: vec!["log".into()],
                continue_: false,
            }],
            group_wait: Duration::from_secs(10),
            send_resolved: true,
            retry: RetryConfig {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
                multiplier: 2.0,
                jitter: true,
                give_up_after: Duration::from_secs(24 * 3600),
            },
            circuit_breaker: BreakerConfig {
                failures: 5,
                open_for: Duration::from_secs(300),
            },
            rate_limit: RateLimitConfig {
                max: 30,
                per: Duration::from_secs(3600),
            },
            silences: Vec::new(),
            inhibit: Vec::new(),
            maintenance: Vec::new(),
            heartbeat: None,
        }
    }
}

/// The `notify:` section.
#[derive(Debug)]
pub struct NotifySection;

impl Section for NotifySection {
    type Raw = RawNotify;
    type Value = NotifyConfig;

    /// The parts around the receivers' examples; [`defaults_yaml`](Self::defaults_yaml)
    /// puts them together with the examples of every registered kind.
    const DEFAULTS: &'static str = DEFAULTS_HEAD;

    fn defaults_yaml() -> String {
        let examples: Vec<String> = examples()
            .iter()
            .filter(|e| !e.is_empty())
            .flat_map(|e| e.lines())
            .map(|line| format!("  #   {}\n", line.strip_prefix("  ").unwrap_or(line)))
            .collect();
        format!(
            "{DEFAULTS_HEAD}  # Where notifications can go: a list of {{name, send_resolved (optional), and exactly one\n  # of {}}}.\n  # Secrets come from *_file keys or ${{ENV_NAME}} references, never written here.\n  # Examples (docs/configuration.md has every key):\n{}{DEFAULTS_TAIL}",
            KEYS.join(", "),
            examples.concat()
        )
    }

    fn check(raw: &RawNotify, path: &str, c: &mut Checker<'_>) -> NotifyConfig {
        check_notify(c, path, raw)
    }
}

fn check_notify(c: &mut Checker<'_>, path: &str, raw: &RawNotify) -> NotifyConfig {
    let defaults = NotifyConfig::defaults(DEFAULT_REPEAT_INTERVAL);
    let repeat_interval = c
        .duration(
            &format!("{path}.repeat_interval"),
            raw.repeat_interval.as_ref(),
            DEFAULT_REPEAT_INTERVAL,
            MIN_REPEAT_INTERVAL,
            None,
        )
        .unwrap_or(DEFAULT_REPEAT_INTERVAL);
    let group_wait = c
        .duration(
            &format!("{path}.group_wait"),
            raw.group_wait.as_ref(),
            defaults.group_wait,
            Duration::ZERO,
            Some(MAX_GROUP_WAIT),
        )
        .unwrap_or(defaults.group_wait);
    let retry = check_retry(
        c,
        &format!("{path}.retry"),
        raw.retry.as_ref().unwrap_or(&RawRetry::default()),
        defaults.retry,
    );
    let circuit_breaker = check_breaker(
        c,
        &format!("{path}.circuit_breaker"),
        raw.circuit_breaker
            .as_ref()
            .unwrap_or(&RawBreaker::default()),
        defaults.circuit_breaker,
    );
    let rate_limit = check_rate_limit(
        c,
        &format!("{path}.rate_limit"),
        raw.rate_limit.as_ref().unwrap_or(&RawRateLimit::default()),
        defaults.rate_limit,
    );
    let receivers_path = format!("{path}.receivers");
    let (receivers, known) = match &raw.receivers {
        None => {
            let names = defaults.receivers.iter().map(|r| r.name.clone()).collect();
            (defaults.receivers, names)
        }
        Some(list) => check_receivers(c, &receivers_path, list),
    };
    let route = match &raw.route {
        None => vec![RouteConfig {
            matchers: Vec::new(),
            receivers: receivers.iter().map(|r| r.name.clone()).collect(),
            continue_: false,
        }],
        Some(list) => check_routes(c, &format!("{path}.route"), list, &known, &receivers_path),
    };
    NotifyConfig {
        repeat_interval,
        receivers,
        route,
        group_wait,
        send_resolved: raw.send_resolved.unwrap_or(defaults.send_resolved),
        retry,
        circuit_breaker,
        rate_limit,
        silences: crate::rules::mute::config::check_silences(
            c,
            &format!("{path}.silences"),
            raw.silences.as_deref().unwrap_or_default(),
        ),
        inhibit: crate::rules::mute::config::check_inhibit(
            c,
            &format!("{path}.inhibit"),
            raw.inhibit.as_deref().unwrap_or_default(),
        ),
        maintenance: crate::rules::mute::config::check_maintenance(
            c,
            &format!("{path}.maintenance"),
            raw.maintenance.as_deref().unwrap_or_default(),
        ),
        heartbeat: raw
            .heartbeat
            .as_ref()
            .and_then(|h| super::heartbeat::check(c, &format!("{path}.heartbeat"), h)),
    }
}

/// The receivers, and every name given (valid receivers or not), for route checks.
fn check_receivers(
    c: &mut Checker<'_>,
    path: &str,
    list: &Spanned<Vec<Spanned<RawReceiver>>>,
) -> (Vec<ReceiverConfig>, Vec<String>) {
    if list.value.is_empty() && !c.removed_under(path) {
        c.report(
            path,
            Some(&list.referenced),
            "must list at least one receiver (remove the key for the default `log` receiver)",
        );
    }
    let mut receivers = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, item) in list.value.iter().enumerate() {
        let base = format!("{path}[{i}]");
        let raw = &item.value;
        // Receiver names are the `receiver` label of the delivery metrics.
        let name = c.entry_name(&base, item, raw.name.as_ref(), &mut names, "receiver");
        let label = name
            .as_deref()
            .map_or_else(|| format!("receiver {i}"), |n| format!("receiver {n:?}"));
        let given = given_kinds(raw);
        let kind = match given.as_slice() {
            [_] => ReceiverKind::check(raw, &base, c),
            [] => {
                let kind_removed = KEYS.iter().any(|k| c.removed_under(&format!("{base}.{k}")));
                if !kind_removed {
                    c.report(
                        &base,
                        Some(&item.referenced),
                        format!(
                            "{label} has no kind: add exactly one of {} (write `log: {{}}` for the log)",
                            key_list()
                        ),
                    );
                }
                None
            }
            several => {
                c.report(
                    &base,
                    Some(&item.referenced),
                    format!(
                        "{label} has several kinds ({}): exactly one of {} per receiver",
                        several.join(", "),
                        key_list()
                    ),
                );
                None
            }
        };
        if let (Some(name), Some(kind)) = (name, kind) {
            receivers.push(ReceiverConfig {
                name,
                send_resolved: raw.send_resolved,
                kind,
            });
        }
    }
    names.retain(|n| !n.is_empty());
    (receivers, names)
}

/// `lookout config default`'s text for this section, before the receivers' description.
const DEFAULTS_HEAD: &str = r#"notify:
  # How often a still-firing alert is notified again: at least 1m.
  repeat_interval: 4h
  # Notifications for one receiver decided within this window go out as one message:
  # from 0s (no grouping) to 10m.
  group_wait: 10s
  # Whether resolved notifications are sent (a receiver's own send_resolved overrides it).
  send_resolved: true
  # Delivery retries: delays grow from initial by multiplier up to max (jitter: each delay
  # randomized between half and all of it). A message still undelivered give_up_after
  # after it was queued goes to the dead letters (visible in the API and metrics).
  # initial from 100ms to 1h; max at least initial; multiplier at least 1;
  # give_up_after at least 1m and at least max.
  retry:
    initial: 1s
    max: 60s
    multiplier: 2
    jitter: true
    give_up_after: 24h
  # Per receiver: after `failures` consecutive failures (at least 1), nothing is sent for
  # open_for (at least 1s), then one message probes the receiver.
  circuit_breaker:
    failures: 5
    open_for: 5m
  # Per receiver: at most `max` messages (at least 1) per `per` (at least 1s). What is
  # over the limit is folded into one digest, never dropped.
  rate_limit:
    max: 30
    per: 1h
  # A dead-man's switch for the agent itself: GET url every interval while the rules are
  # evaluated on time and data_dir takes writes, fail_url (default: url + /fail) when not.
  # Left out: none. Example:
  #   heartbeat: {url: "https://hc-ping.com/<uuid>", interval: 1m, timeout: 10s}
"#;

/// `lookout config default`'s text for this section, from the receivers on.
const DEFAULTS_TAIL: &str = r#"  receivers:
    - name: log
      log: {}
  # Which notifications go to which receivers; the first matching route wins unless it
  # says `continue: true`. match: labels equal to values; match_re: whole-value regexes
  # (alertname and severity are labels too). A route without matchers matches everything.
  # Left out: one route to every receiver. Example:
  #   - {match: {severity: critical}, receivers: [oncall, chat], continue: true}
  #   - {match_re: {alertname: "Host.*"}, receivers: [chat]}
  route:
    - receivers: [log]
  # Fixed silences: matching alerts are evaluated and shown but not notified between
  # starts and ends (RFC 3339). Matchers are label: regex (whole value); `alert` is the
  # alert's name. More come and go with `lookout silence` / the API. Example:
  #   - {matchers: {alert: HostCpuHigh, host: web-1}, starts: 2026-12-24T00:00:00Z,
  #      ends: 2026-12-26T00:00:00Z, comment: holidays}
  silences: []
  # Inhibition (Alertmanager's shape): while a source alert fires, target alerts with the
  # same `equal` labels are not notified. The built-in rules carry their own. Example:
  #   - {source: {alert: RedisDown}, target: {alert: "Redis.+"}, equal: [target]}
  inhibit: []
  # Recurring maintenance windows: from each time the cron schedule is due (in the time
  # zone, daylight saving handled), for duration, matching alerts wait. Example:
  #   - {name: nightly-backup, matchers: {alert: "HostDisk.*"}, schedule: "0 2 * * *",
  #      duration: 1h, timezone: Europe/Berlin}
  maintenance: []
"#;
