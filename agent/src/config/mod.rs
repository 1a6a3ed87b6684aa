//! Configuration: YAML -> raw serde structs -> validated, typed [`Config`].
//!
//! Two layers, as DESIGN section 3 and STYLE habit 6 describe:
//! - [`raw`]: what serde reads. `deny_unknown_fields` everywhere, every field optional and
//!   documented, values that need checking kept as spanned strings so their problems can be
//!   reported with a line and column.
//! - [`validate`]: turns the raw tree into [`Config`], collecting **every** problem with its
//!   key path (`collect.host.interval: invalid duration "ten"`) instead of stopping at the first.
//!
//! [`load`] is the one entry point: it reads a file, parses it and validates it.

pub mod raw;
pub mod validate;
pub mod yaml;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

pub use self::yaml::{DEFAULT_CONFIG_YAML, Problem, Problems, load, load_str};

/// Where the configuration lives when `-c` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/lookout/lookout.yaml";

/// The validated configuration the agent runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// `agent:` — identity, listen address, state directory, paths.
    pub agent: AgentConfig,
    /// `collect:` — what is sampled, and how often.
    pub collect: CollectConfig,
    /// `rules:` — where the rules come from and how often they run.
    pub rules: RulesConfig,
    /// `scalability:` — the score formula's numbers (DESIGN section 7).
    pub scalability: ScalabilityConfig,
    /// `notify:` — delivery settings.
    pub notify: NotifyConfig,
    /// The file this configuration was read from; `None` for built-in defaults.
    pub source: Option<PathBuf>,
}

/// `agent:` section.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Value of the `host` label on every sample (resolved from the kernel for `auto`).
    pub hostname: String,
    /// Address of the HTTP server (`/metrics`, API).
    pub listen: SocketAddr,
    /// State directory; `None` means "choose": `/var/lib/lookout` if writable, else a user dir.
    pub data_dir: Option<PathBuf>,
    /// When set, POST requests need `Authorization: Bearer <token from this file>`.
    pub api_token_file: Option<PathBuf>,
    /// Root of the proc filesystem to read (`/proc`; `/host/proc` in a container).
    pub proc_root: PathBuf,
    /// Root under which mount points are resolved for `statvfs` (`/`; `/host/root` in a container).
    pub rootfs: PathBuf,
}

/// `collect:` section.
#[derive(Debug, Clone)]
pub struct CollectConfig {
    /// `collect.host`.
    pub host: HostConfig,
    /// `collect.tcp`.
    pub tcp: TcpConfig,
    /// `collect.redis`: one entry per Redis/Valkey server watched (none by default).
    pub redis: Vec<RedisTarget>,
    /// `collect.http_probes`: one entry per HTTP(S) endpoint probed (none by default).
    pub http_probes: Vec<ProbeTarget>,
    /// `collect.ingest`: request timings pushed to `POST /api/v1/observations`.
    pub ingest: IngestConfig,
}

/// `collect.ingest`: request timings that applications push (DESIGN section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// Whether `POST /api/v1/observations` accepts data (else it answers 404).
    pub enabled: bool,
    /// How often the histograms and window figures are exported to the store.
    pub schedule: Schedule,
    /// Largest request body accepted, in bytes (larger: 413).
    pub max_body: u64,
    /// Length of the sliding window of the quantiles, average, error ratio and rate.
    pub window: Duration,
    /// Distinct routes tracked; observations of further routes count under `_overflow`.
    pub max_routes: usize,
    /// Requests a window needs before its quantiles, average and error ratio are reported.
    pub min_requests: u64,
}

/// When a collector runs and how long a run may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Time between runs.
    pub interval: Duration,
    /// Longest a run may take; never more than `interval`.
    pub timeout: Duration,
}

/// `collect.host`: CPU, load, memory, filesystems, disks, network, uptime, processes.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Whether the host collectors run at all.
    pub enabled: bool,
    /// Shared schedule of the host collectors.
    pub schedule: Schedule,
    /// Filesystem types never reported (exact names).
    pub exclude_fstypes: Vec<String>,
    /// Mount points never reported (each pattern matches the whole mount point).
    pub exclude_mounts: Vec<Regex>,
    /// Block devices never reported (whole-name patterns; partitions by default).
    pub exclude_disks: Vec<Regex>,
    /// Network interfaces never reported (whole-name patterns; none by default).
    pub exclude_interfaces: Vec<Regex>,
}

/// `collect.tcp`: TCP connection counts by state, host-wide and per configured local port.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// Whether the TCP collector runs.
    pub enabled: bool,
    /// Its schedule.
    pub schedule: Schedule,
    /// Local ports whose server-side connections are counted per state.
    pub ports: Vec<u16>,
}

/// One `collect.http_probes` entry: an HTTP(S) endpoint requested on an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    /// Unique name, the value of the `probe` label.
    pub name: String,
    /// `http://` or `https://` URL requested.
    pub url: String,
    /// HTTP method (upper case: `GET`, `HEAD`, `POST`, ...).
    pub method: String,
    /// Interval between rounds; `timeout` bounds each attempt, and
    /// `timeout * attempts <= interval`.
    pub schedule: Schedule,
    /// Statuses that count as success (each 100..=599).
    pub expect_status: Vec<u16>,
    /// Attempts per round (1..=5); a round succeeds if any attempt does.
    pub attempts: u32,
}

/// One `collect.redis` entry: a Redis or Valkey server to watch.
///
/// `Debug` shows the URL with its password replaced ([`RedisTarget::redacted_url`]) and
/// never the password read from `password_file`.
#[derive(Clone)]
pub struct RedisTarget {
    /// Unique name, the value of the `target` label.
    pub name: String,
    /// `redis://`, `rediss://`, `valkey://` or `valkeys://` URL, possibly with
    /// `user:password@`. Never log it as is: use [`RedisTarget::redacted_url`].
    pub url: String,
    /// Password read from `password_file`, used when the URL carries none.
    pub password: Option<crate::notify::Secret>,
    /// Interval between checks; the timeout bounds every command of a check.
    pub schedule: Schedule,
    /// Lists whose `LLEN` is exported as `lookout_redis_queue_length{queue}`.
    pub queues: Vec<String>,
    /// Fewer hits + misses than this in an interval: no hit ratio for it.
    pub min_lookups: u64,
}

impl RedisTarget {
    /// The URL with any password replaced by `***`, for logs and problems.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("name", &self.name)
            .field("url", &self.redacted_url())
            .field("password", &self.password)
            .field("schedule", &self.schedule)
            .field("queues", &self.queues)
            .field("min_lookups", &self.min_lookups)
            .finish()
    }
}

/// `url` with the password of its `user:password@` part replaced by `***`; unchanged when
/// it has none.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_string(),
    }
}

/// `rules:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesConfig {
    /// Glob patterns of rule files as written: absolute, or relative to the directory of
    /// [`Config::source`]. Empty: the built-in default rule set.
    pub files: Vec<String>,
    /// Time between evaluations of a group without its own `interval`.
    pub evaluation_interval: Duration,
    /// How long absent data keeps an alert's state (`on_missing: keep` / `alert`);
    /// never shorter than `evaluation_interval`.
    pub stale_after: Duration,
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

/// The kinds of receivers.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverKind {
    /// SMTP.
    Email(EmailConfig),
    /// An HTTP(S) webhook.
    Webhook(WebhookConfig),
    /// Alertmanager's API, every URL of a cluster.
    Alertmanager(AlertmanagerConfig),
    /// One structured log line per notification.
    Log,
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
    pub password: Option<crate::notify::Secret>,
    /// Sender mailbox (`lookout@example.com` or `Lookout <lookout@example.com>`).
    pub from: String,
    /// Recipient mailboxes; at least one.
    pub to: Vec<String>,
    /// Bound on connecting and sending one message.
    pub timeout: Duration,
}

/// Body format of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// Alertmanager webhook v4 JSON.
    Alertmanager,
    /// Slack incoming-webhook JSON.
    Slack,
}

/// `webhook:` receiver settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Body format.
    pub format: WebhookFormat,
    /// HMAC-SHA256 key for `X-Lookout-Signature`; none: unsigned.
    pub secret: Option<crate::notify::Secret>,
    /// Extra headers (values may be secrets, e.g. an `Authorization`).
    pub headers: Vec<(String, crate::notify::Secret)>,
    /// Bound on one request.
    pub timeout: Duration,
}

/// `alertmanager:` receiver settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerConfig {
    /// Base URLs of every Alertmanager of the cluster (`http://am-1:9093`).
    pub urls: Vec<String>,
    /// Bound on one request.
    pub timeout: Duration,
    /// How often firing alerts are sent again (Alertmanager forgets alerts not re-sent).
    pub resend_interval: Duration,
}

/// One route: which notifications go to which receivers.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Every matcher must hold on the notification's labels (`alertname` and `severity`
    /// included); none: matches everything.
    pub matchers: Vec<LabelMatcher>,
    /// Receiver names.
    pub receivers: Vec<String>,
    /// Go on to the next route after this one matched.
    pub continue_: bool,
}

impl PartialEq for RouteConfig {
    fn eq(&self, other: &Self) -> bool {
        self.matchers == other.matchers
            && self.receivers == other.receivers
            && self.continue_ == other.continue_
    }
}

/// A label matcher of a route.
#[derive(Debug, Clone)]
pub struct LabelMatcher {
    /// Label name.
    pub label: String,
    /// Equality or a whole-value regex, possibly negated.
    pub op: MatchOp,
}

impl PartialEq for LabelMatcher {
    fn eq(&self, other: &Self) -> bool {
        self.label == other.label && self.op == other.op
    }
}

/// How a route matcher compares.
#[derive(Debug, Clone)]
pub enum MatchOp {
    /// `label: value`.
    Equal(String),
    /// `label: value` under `match_re` (whole-value regex).
    Regex(Regex),
}

impl PartialEq for MatchOp {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (MatchOp::Equal(a), MatchOp::Equal(b)) => a == b,
            (MatchOp::Regex(a), MatchOp::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl LabelMatcher {
    /// Whether the matcher holds on `labels` (an absent label is the empty string).
    pub fn matches(&self, labels: &crate::rules::LabelSet) -> bool {
        let value = labels.get(&self.label).map_or("", String::as_str);
        match &self.op {
            MatchOp::Equal(v) => value == v,
            MatchOp::Regex(re) => re.is_match(value),
        }
    }
}

/// `notify.retry`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Growth per attempt.
    pub multiplier: f64,
    /// Randomize each delay (full jitter between half and the whole delay).
    pub jitter: bool,
    /// A message not delivered this long after it was queued goes to the dead letters.
    pub give_up_after: Duration,
}

/// `notify.circuit_breaker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// How long it stays open before one probe is let through.
    pub open_for: Duration,
}

/// `notify.rate_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Messages per receiver per `per`.
    pub max: u32,
    /// The window.
    pub per: Duration,
}

impl NotifyConfig {
    /// The defaults with the given repeat interval: alerts to the log, DESIGN's retry,
    /// breaker and rate limit.
    pub fn defaults(repeat_interval: Duration) -> Self {
        NotifyConfig {
            repeat_interval,
            receivers: vec![ReceiverConfig {
                name: "log".into(),
                send_resolved: None,
                kind: ReceiverKind::Log,
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
        }
    }
}

/// `scalability:` section: every number of the score formula.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalabilityConfig {
    /// Concurrent sessions.
    pub sessions: LoadTerm,
    /// Backlog of background jobs.
    pub background_tasks: LoadTerm,
    /// Points off by the worst firing severity.
    pub health: HealthTerm,
    /// Lowest score of each grade.
    pub grades: Grades,
}

/// A load term: `min(max_penalty, points_per_unit * max(0, value - free))`, where `value`
/// is what `expr` yields over the store. Every number is finite and `>= 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadTerm {
    /// The parsed expression.
    pub expr: crate::rules::expr::Expr,
    /// The expression as written, for explanations.
    pub expr_text: String,
    /// Units before any penalty.
    pub free: f64,
    /// Points off per unit above `free`.
    pub points_per_unit: f64,
    /// Most points this term takes off.
    pub max_penalty: f64,
}

/// Points off while the worst firing alert has a severity; `warning <= critical`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthTerm {
    /// Worst firing alert is a warning.
    pub warning: f64,
    /// A critical alert fires.
    pub critical: f64,
}

/// Lowest score of each grade, within 0..=100 and `excellent > good > moderate`;
/// below `moderate` is poor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grades {
    /// Lowest excellent score.
    pub excellent: f64,
    /// Lowest good score.
    pub good: f64,
    /// Lowest moderate score.
    pub moderate: f64,
}

impl Config {
    /// The built-in defaults: what `lookout run` uses without a config file.
    pub fn builtin() -> Config {
        validate::builtin()
    }
}

/// Whether a whole-name pattern list matches `name`.
pub fn matches_any(patterns: &[Regex], name: &str) -> bool {
    patterns.iter().any(|p| p.is_match(name))
}
