//! What serde reads from the YAML file, before any checking.
//!
//! Every struct denies unknown keys, so a typo is an error instead of a silently ignored
//! setting. Every field is optional: absence (or `null`) means "use the default", and each
//! field's doc says what that default is. Values that need a semantic check (durations,
//! addresses, paths, patterns, ports, numbers) are kept as [`Spanned`] so that
//! [`validate`](super::validate) can report their line and column. Nothing here knows the
//! defaults themselves; they live in `validate`.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A string value with its position in the file.
pub type Text = Spanned<String>;

/// The whole file. An empty file (or one holding only comments) is no document at all and
/// reads as `None`, which means "all defaults".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `agent:`; absent: every agent default.
    pub agent: Option<RawAgent>,
    /// `collect:`; absent: every collector with its defaults.
    pub collect: Option<RawCollect>,
    /// `rules:`; absent: the built-in rule set, evaluated every `10s`.
    pub rules: Option<RawRules>,
    /// `scalability:`; absent: the seed formula of DESIGN section 7.
    pub scalability: Option<RawScalability>,
    /// `notify:`; absent: every notification default.
    pub notify: Option<RawNotify>,
}

/// `agent:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// Value of the `host` label; absent: `auto` (the kernel host name).
    pub hostname: Option<Text>,
    /// `IP:port` of the HTTP server; absent: `127.0.0.1:9469`.
    pub listen: Option<Text>,
    /// Absolute state directory; absent: chosen at start-up (`/var/lib/lookout` if
    /// writable, else a per-user directory).
    pub data_dir: Option<Text>,
    /// Absolute path of a file holding the API bearer token; absent: POST requests need no
    /// token.
    pub api_token_file: Option<Text>,
    /// Absolute path of the proc filesystem; absent: `/proc`.
    pub proc_root: Option<Text>,
    /// Absolute path under which mount points are resolved; absent: `/`.
    pub rootfs: Option<Text>,
}

/// `collect:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCollect {
    /// `collect.host`; absent: host collectors enabled with their defaults.
    pub host: Option<RawHost>,
    /// `collect.tcp`; absent: TCP collector enabled with its defaults.
    pub tcp: Option<RawTcp>,
    /// `collect.redis`; absent: no Redis/Valkey server is watched.
    pub redis: Option<Vec<Spanned<RawRedis>>>,
    /// `collect.http_probes`; absent: no HTTP endpoint is probed.
    pub http_probes: Option<Vec<Spanned<RawProbe>>>,
    /// `collect.ingest`; absent: ingestion enabled with its defaults.
    pub ingest: Option<RawIngest>,
}

/// `collect.ingest` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngest {
    /// Whether `POST /api/v1/observations` accepts data; absent: `true`.
    pub enabled: Option<bool>,
    /// How often the figures are exported; absent: `10s`.
    pub interval: Option<Text>,
    /// Largest body, a size such as `1MiB`, `512KiB` or `65536` (bytes); absent: `1MiB`.
    pub max_body: Option<Text>,
    /// Sliding window of the quantiles, average, error ratio and rate; absent: `1m`.
    pub window: Option<Text>,
    /// Distinct routes tracked; absent: 100.
    pub max_routes: Option<Spanned<i64>>,
    /// Requests a window needs before its quantiles, average and error ratio are
    /// reported; absent: 10.
    pub min_requests: Option<Spanned<i64>>,
}

/// `collect.host` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// Whether the host collectors run; absent: `true`.
    pub enabled: Option<bool>,
    /// Time between runs; absent: `10s`.
    pub interval: Option<Text>,
    /// Longest a run may take; absent: the smaller of `5s` and the interval.
    pub timeout: Option<Text>,
    /// Filesystem types never reported; absent: the built-in pseudo-filesystem list.
    /// A list given replaces that list.
    pub exclude_fstypes: Option<Vec<Text>>,
    /// Whole-mount-point patterns never reported; absent: the built-in list (`/proc`,
    /// `/sys`, container storage, ...). A list given replaces that list.
    pub exclude_mounts: Option<Vec<Text>>,
    /// Whole-name block device patterns never reported; absent: partitions and pseudo
    /// devices. A list given replaces that list.
    pub exclude_disks: Option<Vec<Text>>,
    /// Whole-name network interface patterns never reported; absent: none.
    pub exclude_interfaces: Option<Vec<Text>>,
}

/// `collect.tcp` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcp {
    /// Whether the TCP collector runs; absent: `true`.
    pub enabled: Option<bool>,
    /// Time between runs; absent: `10s`.
    pub interval: Option<Text>,
    /// Longest a run may take; absent: the smaller of `5s` and the interval.
    pub timeout: Option<Text>,
    /// Local ports counted per connection state; absent: none. Read as `i64` so that
    /// `0` and `70000` reach validation and are reported with their position.
    pub ports: Option<Vec<Spanned<i64>>>,
}

/// One `collect.redis` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// Unique name, the `target` label; absent: a problem.
    pub name: Option<Text>,
    /// `redis://`, `rediss://`, `valkey://` or `valkeys://` URL with an optional
    /// `user:password@`; absent: a problem.
    pub url: Option<Text>,
    /// File holding the password (trailing newline trimmed), absolute or relative to the
    /// configuration file's directory; absent: the URL's password, if any.
    pub password_file: Option<Text>,
    /// Time between checks; absent: `10s`.
    pub interval: Option<Text>,
    /// Bound of every command; absent: the smaller of `5s` and the interval.
    pub timeout: Option<Text>,
    /// Lists whose length is exported; absent: none.
    pub queues: Option<Vec<Text>>,
    /// Fewer lookups (hits + misses) in an interval: no hit ratio; absent: `10`.
    pub min_lookups: Option<Spanned<i64>>,
}

/// One `collect.http_probes` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    /// Unique name, the `probe` label; absent: a problem.
    pub name: Option<Text>,
    /// `http://` or `https://` URL; absent: a problem.
    pub url: Option<Text>,
    /// HTTP method; absent: `GET`.
    pub method: Option<Text>,
    /// Time between rounds; absent: `10s`.
    pub interval: Option<Text>,
    /// Bound of each attempt; absent: the smaller of `5s` and the interval.
    pub timeout: Option<Text>,
    /// Statuses counted as success; absent: `[200]`. Read as `i64` so that out-of-range
    /// values reach validation and are reported with their position.
    pub expect_status: Option<Vec<Spanned<i64>>>,
    /// Attempts per round; absent: `1`.
    pub attempts: Option<Spanned<i64>>,
}

/// `rules:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    /// Glob patterns of rule files, absolute or relative to the configuration file's
    /// directory; absent (or `[]`): the built-in default rule set. Only the pattern syntax
    /// is checked here; the rules loader reads the files.
    pub files: Option<Vec<Text>>,
    /// Time between rule evaluations (a group's own `interval` overrides it); absent: `10s`.
    pub evaluation_interval: Option<Text>,
    /// How long absent data keeps an alert's state (`on_missing: keep` / `alert`) before it
    /// resolves; absent: `5m`, or the evaluation interval if that is longer.
    pub stale_after: Option<Text>,
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
}

/// `notify.retry`: exponential backoff.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// First delay, at least `100ms`; absent: `1s`.
    pub initial: Option<Text>,
    /// Longest delay, at least `initial`; absent: `60s`.
    pub max: Option<Text>,
    /// Growth per attempt, at least 1; absent: 2.
    pub multiplier: Option<Spanned<f64>>,
    /// Randomize each delay; absent: `true`.
    pub jitter: Option<bool>,
    /// Age after which an undelivered message goes to the dead letters, at least `max`;
    /// absent: `24h`.
    pub give_up_after: Option<Text>,
}

/// `notify.circuit_breaker`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    /// Consecutive failures that open the circuit, at least 1; absent: 5.
    pub failures: Option<Spanned<i64>>,
    /// How long it stays open before one probe, at least `1s`; absent: `5m`.
    pub open_for: Option<Text>,
}

/// `notify.rate_limit`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Messages per receiver per window, at least 1; absent: 30.
    pub max: Option<Spanned<i64>>,
    /// The window, at least `1s`; absent: `1h`.
    pub per: Option<Text>,
}

/// One item of `notify.receivers`: a name and exactly one kind key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    /// Unique, non-empty name used by routes; absent: a problem.
    pub name: Option<Text>,
    /// Overrides `notify.send_resolved` for this receiver; absent: the section's value.
    pub send_resolved: Option<bool>,
    /// SMTP settings; absent: not an email receiver.
    pub email: Option<Spanned<RawEmail>>,
    /// Webhook settings; absent: not a webhook receiver.
    pub webhook: Option<Spanned<RawWebhook>>,
    /// Alertmanager settings; absent: not an Alertmanager receiver.
    pub alertmanager: Option<Spanned<RawAlertmanager>>,
    /// `log: {}`; absent (or `null`): not a log receiver.
    pub log: Option<Spanned<RawLog>>,
}

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
}

/// `alertmanager:` receiver settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertmanager {
    /// Base URLs of every Alertmanager of the cluster; absent (or empty): a problem.
    pub urls: Option<Spanned<Vec<Text>>>,
    /// Bound on one request, from `1s` to `5m`; absent: `10s`.
    pub timeout: Option<Text>,
    /// How often firing alerts are sent again, from `10s` to `5m`; absent: `1m`.
    pub resend_interval: Option<Text>,
}

/// `log: {}`: no settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {}

/// One item of `notify.route`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Labels that must equal these values; absent: no equality matcher.
    #[serde(rename = "match")]
    pub match_: Option<std::collections::BTreeMap<String, Text>>,
    /// Labels whose whole value must match these regexes; absent: no regex matcher.
    pub match_re: Option<std::collections::BTreeMap<String, Text>>,
    /// Receiver names; absent (or empty): a problem.
    pub receivers: Option<Spanned<Vec<Text>>>,
    /// Go on to the next route after this one matched; absent: `false`.
    #[serde(rename = "continue")]
    pub continue_: Option<bool>,
}

/// `scalability:` section (DESIGN section 7).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScalability {
    /// The concurrent-sessions term; absent: its defaults (established connections on the
    /// watched ports, 20 free, 2 points each, at most 50).
    pub sessions: Option<RawLoadTerm>,
    /// The background-backlog term; absent: its defaults (Redis queue lengths, 10 free,
    /// 1 point each, at most 20).
    pub background_tasks: Option<RawLoadTerm>,
    /// The alert-health term; absent: 15 points off for a warning, 30 for a critical.
    pub health: Option<RawHealth>,
    /// Lowest score of each grade; absent: 80 / 60 / 40.
    pub grades: Option<RawGrades>,
}

/// One load term of the score: `min(max_penalty, points_per_unit * max(0, value - free))`.
/// Each absent key takes the default of the term it belongs to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoadTerm {
    /// Expression over the store whose value is the load; absent: the term's default
    /// expression.
    pub expr: Option<Text>,
    /// Units before any penalty; absent: the term's default (20 sessions, 10 tasks).
    pub free: Option<Spanned<f64>>,
    /// Points off per unit above `free`; absent: the term's default (2, 1).
    pub points_per_unit: Option<Spanned<f64>>,
    /// Most points the term takes off; absent: the term's default (50, 20).
    pub max_penalty: Option<Spanned<f64>>,
}

/// `scalability.health`: points off by the worst firing alert's severity.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// Points off while the worst firing alert is a warning; absent: 15.
    pub warning: Option<Spanned<f64>>,
    /// Points off while any critical alert fires; absent: 30.
    pub critical: Option<Spanned<f64>>,
}

/// `scalability.grades`: the lowest score of each grade; below `moderate` is "poor".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrades {
    /// Lowest "excellent" score; absent: 80.
    pub excellent: Option<Spanned<f64>>,
    /// Lowest "good" score; absent: 60.
    pub good: Option<Spanned<f64>>,
    /// Lowest "moderate" score; absent: 40.
    pub moderate: Option<Spanned<f64>>,
}
