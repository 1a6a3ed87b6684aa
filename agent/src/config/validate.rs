//! Turns the raw tree ([`raw`](super::raw)) into the typed [`Config`], collecting every
//! problem instead of stopping at the first.
//!
//! Each problem names its key path (`collect.tcp.ports[2]`) and, when the value came from the
//! file, its line and column. The defaults live here, once: [`builtin`] is exactly what an
//! empty document validates to. [`parse_duration`] is the one duration syntax of the agent.
//!
//! The `scalability` expressions are parsed with [`crate::rules::expr::parse`]; its error is
//! reported at the expression's position. `rules.files` patterns are only checked for glob
//! syntax ([`check_glob`]); the rules loader expands them and reads the files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde_saphyr::{Location, Spanned};

use super::raw::{
    RawAgent, RawAlertmanager, RawBreaker, RawCollect, RawConfig, RawEmail, RawGrades, RawHealth,
    RawHost, RawIngest, RawLoadTerm, RawNotify, RawProbe, RawRateLimit, RawReceiver, RawRedis,
    RawRetry, RawRoute, RawRules, RawScalability, RawTcp, RawWebhook, Text,
};
use super::yaml::Problem;
use super::{
    AgentConfig, AlertmanagerConfig, BreakerConfig, CollectConfig, Config, EmailConfig, Grades,
    HealthTerm, HostConfig, IngestConfig, LabelMatcher, LoadTerm, MatchOp, NotifyConfig,
    ProbeTarget, RateLimitConfig, ReceiverConfig, ReceiverKind, RedisTarget, RetryConfig,
    RouteConfig, RulesConfig, ScalabilityConfig, Schedule, SmtpTls, TcpConfig, WebhookConfig,
    WebhookFormat,
};
use crate::notify::Secret;
use crate::rules::expr;

/// `agent.hostname` value that means "ask the kernel".
pub const HOSTNAME_AUTO: &str = "auto";
/// Default `agent.listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9469";
/// Default `agent.proc_root`.
pub const DEFAULT_PROC_ROOT: &str = "/proc";
/// Default `agent.rootfs`.
pub const DEFAULT_ROOTFS: &str = "/";
/// Default `interval` of every collector.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default `timeout` of every collector, capped by its interval.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest accepted collector interval.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest accepted collector interval.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// Longest accepted `agent.hostname`, in bytes.
pub const MAX_HOSTNAME_LEN: usize = 255;

/// Default `collect.host.exclude_fstypes`: pseudo, virtual and read-only image filesystems.
pub const DEFAULT_EXCLUDE_FSTYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "fuse.lxcfs",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "erofs",
    "sysfs",
    "tracefs",
    "tmpfs",
    "nfsd",
];

/// Default `collect.host.exclude_mounts`: kernel trees, per-user runtime dirs, container
/// and snap storage.
pub const DEFAULT_EXCLUDE_MOUNTS: &[&str] = &[
    "/dev(/.*)?",
    "/proc(/.*)?",
    "/sys(/.*)?",
    "/run/credentials/.*",
    "/run/user/.*",
    "/var/lib/docker/.+",
    "/var/lib/containers/storage/.+",
    "/var/lib/kubelet/.+",
    "/snap/.+",
];

/// Default `collect.host.exclude_disks`: RAM, loop, floppy and zram devices, and partitions
/// (whole disks are reported, their partitions would count the same IO twice).
pub const DEFAULT_EXCLUDE_DISKS: &[&str] = &[
    r"(ram|loop|fd|zram)\d+",
    r"(h|s|v|xv)d[a-z]+\d+",
    r"nvme\d+n\d+p\d+",
    r"mmcblk\d+p\d+",
];

/// Default `collect.host.exclude_interfaces`: none (`lo` is reported).
pub const DEFAULT_EXCLUDE_INTERFACES: &[&str] = &[];

/// Default `collect.http_probes[].expect_status`.
pub const DEFAULT_EXPECT_STATUS: &[u16] = &[200];
/// Most `collect.http_probes[].attempts` per round.
pub const MAX_PROBE_ATTEMPTS: u32 = 5;

/// Default `collect.ingest.max_body`: 1 MiB.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;
/// Largest `collect.ingest.max_body`: 64 MiB (a body is held in memory while parsed).
pub const MAX_MAX_BODY: u64 = 64 << 20;
/// Default `collect.ingest.window`.
pub const DEFAULT_INGEST_WINDOW: Duration = Duration::from_secs(60);
/// Default `collect.ingest.max_routes`.
pub const DEFAULT_MAX_ROUTES: usize = 100;
/// Largest `collect.ingest.max_routes`: each route costs a few KiB and several series.
pub const MAX_MAX_ROUTES: usize = 10_000;
/// Default `collect.ingest.min_requests`.
pub const DEFAULT_MIN_REQUESTS: u64 = 10;
/// Default `collect.redis[].min_lookups`.
pub const DEFAULT_MIN_LOOKUPS: u64 = 10;

/// Default `rules.evaluation_interval`.
pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(10);
/// Default `rules.stale_after`; raised to the evaluation interval when that is longer.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(5 * 60);
/// Default `notify.repeat_interval`.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
/// Shortest accepted `notify.repeat_interval`.
pub const MIN_REPEAT_INTERVAL: Duration = Duration::from_secs(60);
/// Longest accepted `notify.group_wait`.
pub const MAX_GROUP_WAIT: Duration = Duration::from_secs(600);
/// Shortest accepted `notify.retry.initial` and `notify.retry.max`.
pub const MIN_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Longest accepted `notify.retry.initial`.
pub const MAX_RETRY_INITIAL: Duration = Duration::from_secs(3600);
/// Shortest accepted `notify.retry.give_up_after`.
pub const MIN_GIVE_UP_AFTER: Duration = Duration::from_secs(60);
/// Shortest accepted receiver `timeout`.
pub const MIN_RECEIVER_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest accepted receiver `timeout`.
pub const MAX_RECEIVER_TIMEOUT: Duration = Duration::from_secs(300);
/// Default `email.timeout`.
pub const DEFAULT_EMAIL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `webhook.timeout`.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `alertmanager.timeout`.
pub const DEFAULT_ALERTMANAGER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `alertmanager.resend_interval`.
pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest accepted `alertmanager.resend_interval`.
pub const MIN_RESEND_INTERVAL: Duration = Duration::from_secs(10);
/// Longest accepted `alertmanager.resend_interval` (Alertmanager's default
/// `resolve_timeout`: an alert not re-sent within it resolves on its own).
pub const MAX_RESEND_INTERVAL: Duration = Duration::from_secs(300);

/// The defaults of one scalability load term.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadTermDefaults {
    /// Expression text.
    pub expr: &'static str,
    /// Units before any penalty.
    pub free: f64,
    /// Points off per unit above `free`.
    pub points_per_unit: f64,
    /// Most points the term takes off.
    pub max_penalty: f64,
}

/// Default `scalability.sessions`: established connections on the watched ports.
pub const DEFAULT_SESSIONS: LoadTermDefaults = LoadTermDefaults {
    expr: r#"sum(lookout_tcp_port_connections{state="established"})"#,
    free: 20.0,
    points_per_unit: 2.0,
    max_penalty: 50.0,
};
/// Default `scalability.background_tasks`: the length of every watched Redis queue.
pub const DEFAULT_BACKGROUND_TASKS: LoadTermDefaults = LoadTermDefaults {
    expr: "sum(lookout_redis_queue_length)",
    free: 10.0,
    points_per_unit: 1.0,
    max_penalty: 20.0,
};
/// Default `scalability.health`.
pub const DEFAULT_HEALTH: HealthTerm = HealthTerm {
    warning: 15.0,
    critical: 30.0,
};
/// Default `scalability.grades`.
pub const DEFAULT_GRADES: Grades = Grades {
    excellent: 80.0,
    good: 60.0,
    moderate: 40.0,
};

/// Path shown for a problem about the document as a whole.
pub const ROOT_PATH: &str = "<root>";

/// The built-in configuration: exactly what an empty document validates to.
///
/// The one way this can fail is the expression parser rejecting a built-in scalability
/// expression, a bug that the `builtin_defaults` test catches. There is no configuration to
/// run on then: it is logged and the process exits with status 2 (fatal start-up error)
/// rather than panicking.
pub fn builtin() -> Config {
    match Checker::new("<builtin>", &[]).config(&RawConfig::default()) {
        (Some(config), _) => config,
        (None, problems) => {
            for problem in &problems {
                tracing::error!(%problem, "built-in configuration is invalid");
            }
            std::process::exit(2)
        }
    }
}

/// Validates a raw tree read from `file`.
///
/// `neutralized` lists the key paths that structural recovery removed from the document
/// (see [`yaml`](super::yaml)); checks comparing a key with a removed one are skipped, since
/// the removed key's default is not what the user wrote.
pub fn validate(
    raw: &RawConfig,
    file: &str,
    neutralized: &[String],
) -> Result<Config, Vec<Problem>> {
    match Checker::new(file, neutralized).config(raw) {
        (Some(config), problems) if problems.is_empty() => Ok(config),
        (_, problems) => Err(problems),
    }
}

/// Parses a duration: one or more `<integer><unit>` parts, units `ms`, `s`, `m`, `h`, `d`
/// from largest to smallest, each at most once (`500ms`, `10s`, `1m30s`, `1d12h`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const UNITS: &[(&str, u64)] = &[
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    const HINT: &str =
        "expected a number followed by a unit (ms, s, m, h, d), e.g. 500ms, 10s, 5m, 1m30s";
    let invalid = |why: &str| format!("invalid duration {text:?}: {why}");
    if text.is_empty() {
        return Err(invalid(HINT));
    }
    let mut total: u64 = 0;
    // Index into UNITS of the previous part's unit: each next unit must be smaller.
    let mut previous: Option<usize> = None;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        if number.is_empty() {
            return Err(invalid(HINT));
        }
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(invalid(match next.chars().next() {
                None => "missing unit (ms, s, m, h, d)",
                Some('.') | Some(',') => {
                    "fractions are not supported: use a smaller unit (1500ms, not 1.5s)"
                }
                Some(_) => HINT,
            }));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(invalid(&format!(
                "unknown unit {unit:?} (use ms, s, m, h, d)"
            )));
        };
        if previous.is_some_and(|p| p >= index) {
            return Err(invalid(
                "units must go from largest to smallest, each at most once (1m30s)",
            ));
        }
        previous = Some(index);
        let millis_per_unit = UNITS.get(index).map_or(1, |(_, ms)| *ms);
        total = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(millis_per_unit))
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| invalid("too large"))?;
        rest = next;
    }
    Ok(Duration::from_millis(total))
}

/// Parses a size in bytes: a whole number with an optional unit, `B`, `KB`/`MB`/`GB`
/// (powers of 1000) or `KiB`/`MiB`/`GiB` (powers of 1024): `65536`, `512KiB`, `1MiB`, `2MB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    const UNITS: &[(&str, u64)] = &[
        ("", 1),
        ("B", 1),
        ("KB", 1000),
        ("MB", 1000 * 1000),
        ("GB", 1000 * 1000 * 1000),
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
    ];
    let invalid = |why: &str| format!("invalid size {text:?}: {why}");
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let unit = unit.trim_start();
    if number.is_empty() {
        return Err(invalid(
            "expected a whole number of bytes with an optional unit, e.g. 65536, 512KiB, 1MiB",
        ));
    }
    let Some((_, factor)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(invalid(&format!(
            "unknown unit {unit:?} (use B, KB, MB, GB, KiB, MiB, GiB)"
        )));
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(*factor))
        .ok_or_else(|| invalid("too large"))
}

/// Formats a size the way [`parse_size`] reads it, in the largest binary unit that divides it.
pub fn format_size(bytes: u64) -> String {
    for (unit, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

/// Formats a duration the way [`parse_duration`] reads it (`1m30s`, `500ms`, `0s`).
pub fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

/// Compiles a pattern that must match a whole name (`^(?:pattern)$`).
pub fn compile_whole_name(pattern: &str) -> Result<Regex, String> {
    let describe = |e: regex::Error| format!("invalid regex {pattern:?}: {}", regex_reason(&e));
    // Compiling the pattern alone first reports errors against what the user wrote, not
    // against the anchored wrapper.
    Regex::new(pattern).map_err(describe)?;
    Regex::new(&format!("^(?:{pattern})$")).map_err(describe)
}

/// The one-line reason of a regex error (its `Display` is a multi-line snippet).
fn regex_reason(error: &regex::Error) -> String {
    match error {
        regex::Error::CompiledTooBig(limit) => format!("compiled pattern exceeds {limit} bytes"),
        other => {
            let text = other.to_string();
            text.lines()
                .find_map(|line| line.strip_prefix("error: "))
                .map_or_else(
                    || text.split_whitespace().collect::<Vec<_>>().join(" "),
                    str::to_string,
                )
        }
    }
}

/// Checks the syntax of a glob pattern of file paths: `*` and `?` (within one path
/// component), `**` (any number of directories; it must be a whole component, as in
/// `rules/**/*.yaml`) and character classes `[abc]`, `[a-z]`, `[!abc]` (a `]` right after
/// the opening `[` or `[!` is literal). There is no backslash escape: write `[*]` for a
/// literal `*`.
pub fn check_glob(pattern: &str) -> Result<(), String> {
    let invalid = |why: String| Err(format!("invalid glob {pattern:?}: {why}"));
    if pattern.is_empty() {
        return invalid("empty pattern".into());
    }
    if pattern
        .split('/')
        .any(|component| component.contains("**") && component != "**")
    {
        return invalid("`**` must be a whole path component, as in rules/**/*.yaml".into());
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        i += 1;
        if c != '[' {
            continue;
        }
        // 1-based position of the `[`, for messages.
        let open = i;
        if chars.get(i) == Some(&'!') {
            i += 1;
        }
        // A `]` right after `[` or `[!` is a literal member, not the end.
        let members_start = i;
        let close = chars
            .iter()
            .enumerate()
            .skip(members_start + 1)
            .find(|(_, d)| **d == ']')
            .map(|(index, _)| index);
        let Some(close) = close else {
            return invalid(format!("`[` at character {open} is never closed by `]`"));
        };
        let members = chars.get(members_start..close).unwrap_or_default();
        if members.contains(&'/') {
            return invalid(format!(
                "the class opened at character {open} contains `/`, which it can never match"
            ));
        }
        // Ranges `a-z`; a `-` first or last in the class is a literal.
        let mut j = 0;
        while let Some(&low) = members.get(j) {
            match (members.get(j + 1), members.get(j + 2)) {
                (Some('-'), Some(&high)) => {
                    if low > high {
                        return invalid(format!(
                            "range {low}-{high} is reversed (write {high}-{low})"
                        ));
                    }
                    j += 3;
                }
                _ => j += 1,
            }
        }
        i = close + 1;
    }
    Ok(())
}

/// The `host` label value for a kernel host name: the name itself, or `localhost` when the
/// kernel has none (`(none)` is what an unset UTS name reads as).
pub fn hostname_from_kernel(nodename: &str) -> String {
    if nodename.is_empty() || nodename == "(none)" || check_label_value(nodename).is_err() {
        "localhost".into()
    } else {
        nodename.into()
    }
}

/// Why `value` cannot be a label value, if it cannot.
fn check_label_value(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if value.len() > MAX_HOSTNAME_LEN {
        return Err(format!("must be at most {MAX_HOSTNAME_LEN} bytes"));
    }
    Ok(())
}

/// Line and column of a spanned value; `None` when serde-saphyr did not know them.
fn position(location: &Location) -> (Option<u32>, Option<u32>) {
    let line = u32::try_from(location.line()).ok().filter(|l| *l > 0);
    let column = u32::try_from(location.column()).ok().filter(|c| *c > 0);
    match (line, column) {
        (Some(l), Some(c)) => (Some(l), Some(c)),
        _ => (None, None),
    }
}

/// Collects problems while building the typed configuration.
struct Checker<'a> {
    file: &'a str,
    neutralized: &'a [String],
    problems: Vec<Problem>,
    /// Where `${ENV_NAME}` references are resolved.
    env: EnvLookup,
}

impl<'a> Checker<'a> {
    fn new(file: &'a str, neutralized: &'a [String]) -> Self {
        Checker {
            file,
            neutralized,
            problems: Vec::new(),
            env: process_env,
        }
    }

    fn report(&mut self, path: &str, at: Option<&Location>, message: impl Into<String>) {
        let (line, column) = at.map_or((None, None), position);
        self.problems.push(Problem {
            file: self.file.to_string(),
            line,
            column,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// The typed configuration (`None` only when a scalability expression, given or
    /// built-in, did not parse: then a problem says so) and every problem found.
    fn config(mut self, raw: &RawConfig) -> (Option<Config>, Vec<Problem>) {
        let agent = self.agent(raw.agent.as_ref().unwrap_or(&RawAgent::default()));
        let no_collect = RawCollect::default();
        let collect = raw.collect.as_ref().unwrap_or(&no_collect);
        let host = self.host(collect.host.as_ref().unwrap_or(&RawHost::default()));
        let tcp = self.tcp(collect.tcp.as_ref().unwrap_or(&RawTcp::default()));
        let redis = self.redis(collect.redis.as_deref().unwrap_or_default());
        let http_probes = self.http_probes(collect.http_probes.as_deref().unwrap_or_default());
        let ingest = self.ingest(collect.ingest.as_ref().unwrap_or(&RawIngest::default()));
        let rules = self.rules(raw.rules.as_ref().unwrap_or(&RawRules::default()));
        let scalability = self.scalability(
            raw.scalability
                .as_ref()
                .unwrap_or(&RawScalability::default()),
        );
        let notify = self.notify(raw.notify.as_ref().unwrap_or(&RawNotify::default()));
        let config = scalability.map(|scalability| Config {
            agent,
            collect: CollectConfig {
                host,
                tcp,
                redis,
                http_probes,
                ingest,
            },
            rules,
            scalability,
            notify,
            source: None,
        });
        (config, self.problems)
    }

    /// Whether structural recovery removed `path` (or a section holding it) from the
    /// document: its default is then not what the user wrote, so it is compared with nothing.
    fn removed(&self, path: &str) -> bool {
        self.neutralized.iter().any(|n| {
            path == n
                || path
                    .strip_prefix(n.as_str())
                    .is_some_and(|r| r.starts_with('.'))
        })
    }

    fn rules(&mut self, raw: &RawRules) -> RulesConfig {
        let files = self.globs("rules.files", raw.files.as_deref());
        let interval_path = "rules.evaluation_interval";
        let checked_interval = self.duration(
            interval_path,
            raw.evaluation_interval.as_ref(),
            DEFAULT_EVALUATION_INTERVAL,
            MIN_INTERVAL,
            Some(MAX_INTERVAL),
        );
        let evaluation_interval = checked_interval.unwrap_or(DEFAULT_EVALUATION_INTERVAL);
        let default_stale = DEFAULT_STALE_AFTER.max(evaluation_interval);
        let stale_after = match &raw.stale_after {
            None => default_stale,
            Some(text) => match parse_duration(&text.value) {
                Ok(d) => {
                    let interval_removed = self.removed(interval_path);
                    if let Some(limit) = checked_interval.filter(|i| d < *i && !interval_removed) {
                        self.report(
                            "rules.stale_after",
                            Some(&text.referenced),
                            format!(
                                "{} is shorter than rules.evaluation_interval ({}): data would count as missing between two evaluations",
                                text.value,
                                format_duration(limit)
                            ),
                        );
                    }
                    d
                }
                Err(why) => {
                    self.report("rules.stale_after", Some(&text.referenced), why);
                    default_stale
                }
            },
        };
        RulesConfig {
            files,
            evaluation_interval,
            stale_after,
        }
    }

    fn notify(&mut self, raw: &RawNotify) -> NotifyConfig {
        let defaults = NotifyConfig::defaults(DEFAULT_REPEAT_INTERVAL);
        let repeat_interval = self
            .duration(
                "notify.repeat_interval",
                raw.repeat_interval.as_ref(),
                DEFAULT_REPEAT_INTERVAL,
                MIN_REPEAT_INTERVAL,
                None,
            )
            .unwrap_or(DEFAULT_REPEAT_INTERVAL);
        let group_wait = self
            .duration(
                "notify.group_wait",
                raw.group_wait.as_ref(),
                defaults.group_wait,
                Duration::ZERO,
                Some(MAX_GROUP_WAIT),
            )
            .unwrap_or(defaults.group_wait);
        let retry = self.retry(
            raw.retry.as_ref().unwrap_or(&RawRetry::default()),
            defaults.retry,
        );
        let circuit_breaker = self.breaker(
            raw.circuit_breaker
                .as_ref()
                .unwrap_or(&RawBreaker::default()),
            defaults.circuit_breaker,
        );
        let rate_limit = self.rate_limit(
            raw.rate_limit.as_ref().unwrap_or(&RawRateLimit::default()),
            defaults.rate_limit,
        );
        let (receivers, known) = match &raw.receivers {
            None => {
                let names = defaults.receivers.iter().map(|r| r.name.clone()).collect();
                (defaults.receivers, names)
            }
            Some(list) => self.receivers(list),
        };
        let route = match &raw.route {
            None => vec![RouteConfig {
                matchers: Vec::new(),
                receivers: receivers.iter().map(|r| r.name.clone()).collect(),
                continue_: false,
            }],
            Some(list) => self.routes(list, &known),
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
        }
    }

    /// Whether structural recovery removed `prefix` or anything below it (keys or items).
    fn removed_under(&self, prefix: &str) -> bool {
        self.neutralized.iter().any(|n| {
            n.strip_prefix(prefix)
                .is_some_and(|r| r.is_empty() || r.starts_with('.') || r.starts_with('['))
        })
    }

    fn retry(&mut self, raw: &RawRetry, defaults: RetryConfig) -> RetryConfig {
        let initial_path = "notify.retry.initial";
        let max_path = "notify.retry.max";
        let give_up_path = "notify.retry.give_up_after";
        let initial = self.duration(
            initial_path,
            raw.initial.as_ref(),
            defaults.initial,
            MIN_RETRY_DELAY,
            Some(MAX_RETRY_INITIAL),
        );
        let max = self.duration(
            max_path,
            raw.max.as_ref(),
            defaults.max,
            MIN_RETRY_DELAY,
            None,
        );
        let give_up_after = self.duration(
            give_up_path,
            raw.give_up_after.as_ref(),
            defaults.give_up_after,
            MIN_GIVE_UP_AFTER,
            None,
        );
        self.not_shorter(
            (initial_path, initial, raw.initial.as_ref()),
            (max_path, max, raw.max.as_ref()),
        );
        self.not_shorter(
            (max_path, max, raw.max.as_ref()),
            (give_up_path, give_up_after, raw.give_up_after.as_ref()),
        );
        let multiplier = match &raw.multiplier {
            None => defaults.multiplier,
            Some(m) if m.value.is_finite() && m.value >= 1.0 => m.value,
            Some(m) => {
                self.report(
                    "notify.retry.multiplier",
                    Some(&m.referenced),
                    format!(
                        "must be a finite number of at least 1, got {}",
                        number_text(m.value)
                    ),
                );
                defaults.multiplier
            }
        };
        RetryConfig {
            initial: initial.unwrap_or(defaults.initial),
            max: max.unwrap_or(defaults.max),
            multiplier,
            jitter: raw.jitter.unwrap_or(defaults.jitter),
            give_up_after: give_up_after.unwrap_or(defaults.give_up_after),
        }
    }

    /// Reports when the `long` duration is shorter than the `short` one (both valid and
    /// neither removed). The problem goes to `long` when it was written, else to `short`.
    fn not_shorter(
        &mut self,
        short: (&str, Option<Duration>, Option<&Text>),
        long: (&str, Option<Duration>, Option<&Text>),
    ) {
        let ((short_path, short_value, short_text), (long_path, long_value, long_text)) =
            (short, long);
        let (Some(s), Some(l)) = (short_value, long_value) else {
            return;
        };
        if l >= s || self.removed(short_path) || self.removed(long_path) {
            return;
        }
        let (s, l) = (format_duration(s), format_duration(l));
        if let Some(text) = long_text {
            self.report(
                long_path,
                Some(&text.referenced),
                format!("{l} is shorter than {short_path} ({s})"),
            );
        } else if let Some(text) = short_text {
            self.report(
                short_path,
                Some(&text.referenced),
                format!("{s} is longer than {long_path} ({l})"),
            );
        }
    }

    fn breaker(&mut self, raw: &RawBreaker, defaults: BreakerConfig) -> BreakerConfig {
        BreakerConfig {
            failures: self.count_u32(
                "notify.circuit_breaker.failures",
                raw.failures.as_ref(),
                defaults.failures,
            ),
            open_for: self
                .duration(
                    "notify.circuit_breaker.open_for",
                    raw.open_for.as_ref(),
                    defaults.open_for,
                    MIN_INTERVAL,
                    None,
                )
                .unwrap_or(defaults.open_for),
        }
    }

    fn rate_limit(&mut self, raw: &RawRateLimit, defaults: RateLimitConfig) -> RateLimitConfig {
        RateLimitConfig {
            max: self.count_u32("notify.rate_limit.max", raw.max.as_ref(), defaults.max),
            per: self
                .duration(
                    "notify.rate_limit.per",
                    raw.per.as_ref(),
                    defaults.per,
                    MIN_INTERVAL,
                    None,
                )
                .unwrap_or(defaults.per),
        }
    }

    /// A count of at least 1 that fits a `u32`: `default` when absent or invalid (reported).
    fn count_u32(&mut self, path: &str, given: Option<&Spanned<i64>>, default: u32) -> u32 {
        let n = self.count(path, given, u64::from(default), 1..=u64::from(u32::MAX));
        u32::try_from(n).unwrap_or(default)
    }

    /// The receivers, and every name given (valid receivers or not), for route checks.
    fn receivers(
        &mut self,
        list: &Spanned<Vec<Spanned<RawReceiver>>>,
    ) -> (Vec<ReceiverConfig>, Vec<String>) {
        if list.value.is_empty() && !self.removed_under("notify.receivers") {
            self.report(
                "notify.receivers",
                Some(&list.referenced),
                "must list at least one receiver (remove the key for the default `log` receiver)",
            );
        }
        let mut receivers = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (i, item) in list.value.iter().enumerate() {
            let base = format!("notify.receivers[{i}]");
            let raw = &item.value;
            let name = match &raw.name {
                None => {
                    if !self.removed(&format!("{base}.name")) {
                        self.report(&base, Some(&item.referenced), "`name` is required");
                    }
                    None
                }
                Some(name) if name.value.trim().is_empty() => {
                    self.report(
                        &format!("{base}.name"),
                        Some(&name.referenced),
                        "must not be empty",
                    );
                    None
                }
                Some(name) => match names.iter().position(|n| *n == name.value) {
                    Some(first) => {
                        self.report(
                            &format!("{base}.name"),
                            Some(&name.referenced),
                            format!(
                                "duplicate receiver name {:?} (already at notify.receivers[{first}])",
                                name.value
                            ),
                        );
                        None
                    }
                    None => Some(name.value.clone()),
                },
            };
            // Keep indexes aligned with the list for duplicate messages.
            names.push(name.clone().unwrap_or_default());
            let label = name
                .as_deref()
                .map_or_else(|| format!("receiver {i}"), |n| format!("receiver {n:?}"));
            let kinds: Vec<&str> = [
                raw.email.as_ref().map(|_| "email"),
                raw.webhook.as_ref().map(|_| "webhook"),
                raw.alertmanager.as_ref().map(|_| "alertmanager"),
                raw.log.as_ref().map(|_| "log"),
            ]
            .into_iter()
            .flatten()
            .collect();
            let kind = match kinds.as_slice() {
                [_] => {
                    if let Some(email) = &raw.email {
                        self.email(&format!("{base}.email"), email)
                            .map(ReceiverKind::Email)
                    } else if let Some(webhook) = &raw.webhook {
                        self.webhook(&format!("{base}.webhook"), webhook)
                            .map(ReceiverKind::Webhook)
                    } else if let Some(am) = &raw.alertmanager {
                        self.alertmanager(&format!("{base}.alertmanager"), am)
                            .map(ReceiverKind::Alertmanager)
                    } else {
                        Some(ReceiverKind::Log)
                    }
                }
                [] => {
                    let kind_removed = ["email", "webhook", "alertmanager", "log"]
                        .iter()
                        .any(|k| self.removed_under(&format!("{base}.{k}")));
                    if !kind_removed {
                        self.report(
                            &base,
                            Some(&item.referenced),
                            format!(
                                "{label} has no kind: add exactly one of `email`, `webhook`, `alertmanager`, `log` (write `log: {{}}` for the log)"
                            ),
                        );
                    }
                    None
                }
                several => {
                    self.report(
                        &base,
                        Some(&item.referenced),
                        format!(
                            "{label} has several kinds ({}): exactly one of `email`, `webhook`, `alertmanager`, `log` per receiver",
                            several.join(", ")
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

    fn email(&mut self, base: &str, raw: &Spanned<RawEmail>) -> Option<EmailConfig> {
        let at = &raw.referenced;
        let raw = &raw.value;
        let mut valid = true;
        let smarthost = match &raw.smarthost {
            None => {
                if !self.removed(&format!("{base}.smarthost")) {
                    self.report(base, Some(at), "`smarthost` is required (host:port)");
                }
                None
            }
            Some(text) => match parse_host_port(&text.value) {
                Ok(pair) => Some(pair),
                Err(why) => {
                    self.report(&format!("{base}.smarthost"), Some(&text.referenced), why);
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
                    self.report(
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
                self.report(
                    &format!("{base}.username"),
                    Some(&text.referenced),
                    "must not be empty (remove the key for no authentication)",
                );
                valid = false;
                None
            }
            other => other.as_ref().map(|t| t.value.clone()),
        };
        let password = self.secret(
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
                    self.report(&given_at.0, Some(given_at.1), "a password needs `username`");
                    valid = false;
                }
                Some(secret)
            }
        };
        if let Some(text) = &raw.username
            && raw.password.is_none()
            && raw.password_file.is_none()
        {
            self.report(
                &format!("{base}.username"),
                Some(&text.referenced),
                "a username needs `password_file` or `password: ${ENV_NAME}`",
            );
            valid = false;
        }
        let from = match &raw.from {
            None => {
                if !self.removed(&format!("{base}.from")) {
                    self.report(
                        base,
                        Some(at),
                        "`from` is required (a mailbox such as lookout@example.com)",
                    );
                }
                None
            }
            Some(text) => self.mailbox(&format!("{base}.from"), text),
        };
        let mut to = Vec::new();
        match &raw.to {
            None => {
                if !self.removed(&format!("{base}.to")) {
                    self.report(base, Some(at), "`to` is required (a list of mailboxes)");
                }
                valid = false;
            }
            Some(list) => {
                if list.value.is_empty() && !self.removed_under(&format!("{base}.to")) {
                    self.report(
                        &format!("{base}.to"),
                        Some(&list.referenced),
                        "must list at least one recipient",
                    );
                    valid = false;
                }
                for (i, text) in list.value.iter().enumerate() {
                    match self.mailbox(&format!("{base}.to[{i}]"), text) {
                        Some(m) => to.push(m),
                        None => valid = false,
                    }
                }
            }
        }
        let timeout = self.duration(
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

    /// A mailbox (`a@b.c` or `Name <a@b.c>`) as written, if lettre parses it.
    fn mailbox(&mut self, path: &str, text: &Text) -> Option<String> {
        match text.value.parse::<lettre::message::Mailbox>() {
            Ok(_) => Some(text.value.clone()),
            Err(e) => {
                self.report(
                    path,
                    Some(&text.referenced),
                    format!("invalid mailbox {:?}: {e}", text.value),
                );
                None
            }
        }
    }

    fn webhook(&mut self, base: &str, raw: &Spanned<RawWebhook>) -> Option<WebhookConfig> {
        let at = &raw.referenced;
        let raw = &raw.value;
        let mut valid = true;
        let url = match &raw.url {
            None => {
                if !self.removed(&format!("{base}.url")) {
                    self.report(base, Some(at), "`url` is required");
                }
                None
            }
            Some(text) => self.http_url(&format!("{base}.url"), text),
        };
        let format = match &raw.format {
            None => WebhookFormat::Alertmanager,
            Some(text) => match text.value.as_str() {
                "alertmanager" => WebhookFormat::Alertmanager,
                "slack" => WebhookFormat::Slack,
                other => {
                    self.report(
                        &format!("{base}.format"),
                        Some(&text.referenced),
                        format!("unknown format {other:?}: expected alertmanager or slack"),
                    );
                    valid = false;
                    WebhookFormat::Alertmanager
                }
            },
        };
        let secret = match self.secret(
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
                self.report(&path, at, format!("invalid header name {name:?}"));
                valid = false;
                continue;
            }
            if RESERVED_HEADERS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
            {
                self.report(
                    &path,
                    at,
                    format!("header {name:?} is set by lookout itself"),
                );
                valid = false;
                continue;
            }
            match interpolate_env(&value.value, self.env) {
                // The value may hold a secret: the message never shows it.
                Ok(resolved) if reqwest::header::HeaderValue::from_str(&resolved).is_err() => {
                    self.report(
                        &path,
                        at,
                        "not a valid header value (control characters or non-ASCII bytes)",
                    );
                    valid = false;
                }
                Ok(resolved) => headers.push((name.clone(), Secret::new(resolved))),
                Err(why) => {
                    self.report(&path, at, why);
                    valid = false;
                }
            }
        }
        let timeout = self.duration(
            &format!("{base}.timeout"),
            raw.timeout.as_ref(),
            DEFAULT_WEBHOOK_TIMEOUT,
            MIN_RECEIVER_TIMEOUT,
            Some(MAX_RECEIVER_TIMEOUT),
        );
        let (url, timeout) = (url?, timeout?);
        valid.then_some(WebhookConfig {
            url,
            format,
            secret,
            headers,
            timeout,
        })
    }

    fn alertmanager(
        &mut self,
        base: &str,
        raw: &Spanned<RawAlertmanager>,
    ) -> Option<AlertmanagerConfig> {
        let at = &raw.referenced;
        let raw = &raw.value;
        let mut valid = true;
        let mut urls: Vec<String> = Vec::new();
        match &raw.urls {
            None => {
                if !self.removed(&format!("{base}.urls")) {
                    self.report(
                        base,
                        Some(at),
                        "`urls` is required (every Alertmanager of the cluster)",
                    );
                }
                valid = false;
            }
            Some(list) => {
                if list.value.is_empty() && !self.removed_under(&format!("{base}.urls")) {
                    self.report(
                        &format!("{base}.urls"),
                        Some(&list.referenced),
                        "must list at least one URL",
                    );
                    valid = false;
                }
                for (i, text) in list.value.iter().enumerate() {
                    let path = format!("{base}.urls[{i}]");
                    match self.http_url(&path, text) {
                        Some(url) if urls.contains(&url) => {
                            self.report(&path, Some(&text.referenced), "duplicate URL");
                            valid = false;
                        }
                        Some(url) => urls.push(url),
                        None => valid = false,
                    }
                }
            }
        }
        let timeout = self.duration(
            &format!("{base}.timeout"),
            raw.timeout.as_ref(),
            DEFAULT_ALERTMANAGER_TIMEOUT,
            MIN_RECEIVER_TIMEOUT,
            Some(MAX_RECEIVER_TIMEOUT),
        );
        let resend_interval = self.duration(
            &format!("{base}.resend_interval"),
            raw.resend_interval.as_ref(),
            DEFAULT_RESEND_INTERVAL,
            MIN_RESEND_INTERVAL,
            Some(MAX_RESEND_INTERVAL),
        );
        let (timeout, resend_interval) = (timeout?, resend_interval?);
        valid.then_some(AlertmanagerConfig {
            urls,
            timeout,
            resend_interval,
        })
    }

    /// An `http://` or `https://` URL with a host. Messages never repeat the URL: it may
    /// carry credentials or a token.
    fn http_url(&mut self, path: &str, text: &Text) -> Option<String> {
        let why = match reqwest::Url::parse(&text.value) {
            Err(e) => format!("invalid URL: {e}"),
            Ok(url) if !matches!(url.scheme(), "http" | "https") => {
                format!("must be http or https, got {:?}", url.scheme())
            }
            Ok(url) if url.host_str().is_none_or(str::is_empty) => "URL has no host".into(),
            Ok(_) => return Some(text.value.clone()),
        };
        self.report(path, Some(&text.referenced), why);
        None
    }

    /// A secret given inline (`key: ${ENV_NAME}`) or in a file (`file_key: path`).
    /// Problems name the variable or the file, never the value.
    fn secret<'t>(
        &mut self,
        base: &str,
        inline: (&str, Option<&'t Text>),
        file: (&str, Option<&'t Text>),
    ) -> SecretOutcome<'t> {
        let ((inline_key, inline), (file_key, file)) = (inline, file);
        match (inline, file) {
            (None, None) => SecretOutcome::Absent,
            (Some(_), Some(f)) => {
                self.report(
                    &format!("{base}.{file_key}"),
                    Some(&f.referenced),
                    format!("set either `{inline_key}` or `{file_key}`, not both"),
                );
                SecretOutcome::Invalid
            }
            (Some(text), None) => {
                let path = format!("{base}.{inline_key}");
                let outcome = match env_reference(&text.value) {
                    None => Err(format!(
                        "secrets are not written in the configuration: use `{inline_key}: ${{ENV_NAME}}` or `{file_key}`"
                    )),
                    Some(name) => env_value(name, self.env),
                };
                match outcome {
                    Ok(value) => SecretOutcome::Given(Secret::new(value), (path, &text.referenced)),
                    Err(why) => {
                        self.report(&path, Some(&text.referenced), why);
                        SecretOutcome::Invalid
                    }
                }
            }
            (None, Some(text)) => {
                let path = format!("{base}.{file_key}");
                if text.value.trim().is_empty() {
                    self.report(&path, Some(&text.referenced), "must not be empty");
                    return SecretOutcome::Invalid;
                }
                let resolved = self.relative_to_config(&text.value);
                match read_secret_file(&resolved) {
                    Ok(value) => SecretOutcome::Given(Secret::new(value), (path, &text.referenced)),
                    Err(why) => {
                        self.report(&path, Some(&text.referenced), why);
                        SecretOutcome::Invalid
                    }
                }
            }
        }
    }

    /// `path` as written when absolute, else relative to the configuration file's directory.
    fn relative_to_config(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            return path.to_path_buf();
        }
        match Path::new(self.file).parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    fn routes(
        &mut self,
        list: &Spanned<Vec<Spanned<RawRoute>>>,
        known: &[String],
    ) -> Vec<RouteConfig> {
        if list.value.is_empty() && !self.removed_under("notify.route") {
            self.report(
                "notify.route",
                Some(&list.referenced),
                "must list at least one route: notifications would go nowhere (remove the key to send everything to every receiver)",
            );
        }
        // A receiver removed by structural recovery is not in `known`: names are not
        // checked then, since the user did write it.
        let names_complete = !self.removed_under("notify.receivers");
        let mut routes = Vec::new();
        for (i, item) in list.value.iter().enumerate() {
            let base = format!("notify.route[{i}]");
            let raw = &item.value;
            let mut valid = true;
            let mut matchers = Vec::new();
            for (label, value) in raw.match_.iter().flatten() {
                let path = format!("{base}.match.{label}");
                if let Err(why) = check_label_name(label) {
                    self.report(&path, Some(&value.referenced), why);
                    valid = false;
                    continue;
                }
                matchers.push(LabelMatcher {
                    label: label.clone(),
                    op: MatchOp::Equal(value.value.clone()),
                });
            }
            for (label, value) in raw.match_re.iter().flatten() {
                let path = format!("{base}.match_re.{label}");
                let compiled =
                    check_label_name(label).and_then(|()| compile_whole_name(&value.value));
                match compiled {
                    Ok(regex) => matchers.push(LabelMatcher {
                        label: label.clone(),
                        op: MatchOp::Regex(regex),
                    }),
                    Err(why) => {
                        self.report(&path, Some(&value.referenced), why);
                        valid = false;
                    }
                }
            }
            let mut receivers: Vec<String> = Vec::new();
            match &raw.receivers {
                None => {
                    if !self.removed(&format!("{base}.receivers")) {
                        self.report(
                            &base,
                            Some(&item.referenced),
                            "`receivers` is required (the names of the receivers this route sends to)",
                        );
                    }
                    valid = false;
                }
                Some(names) => {
                    if names.value.is_empty() && !self.removed_under(&format!("{base}.receivers")) {
                        self.report(
                            &format!("{base}.receivers"),
                            Some(&names.referenced),
                            "must list at least one receiver",
                        );
                        valid = false;
                    }
                    for (j, name) in names.value.iter().enumerate() {
                        let path = format!("{base}.receivers[{j}]");
                        if receivers.contains(&name.value) {
                            self.report(
                                &path,
                                Some(&name.referenced),
                                format!("receiver {:?} is listed twice", name.value),
                            );
                            valid = false;
                        } else if names_complete && !known.contains(&name.value) {
                            self.report(
                                &path,
                                Some(&name.referenced),
                                format!(
                                    "unknown receiver {:?} (receivers: {})",
                                    name.value,
                                    known.join(", ")
                                ),
                            );
                            valid = false;
                        } else {
                            receivers.push(name.value.clone());
                        }
                    }
                }
            }
            if valid {
                routes.push(RouteConfig {
                    matchers,
                    receivers,
                    continue_: raw.continue_.unwrap_or(false),
                });
            }
        }
        routes
    }

    /// A duration within `min..=max`: `default` when absent, `None` when invalid (reported).
    fn duration(
        &mut self,
        path: &str,
        given: Option<&Text>,
        default: Duration,
        min: Duration,
        max: Option<Duration>,
    ) -> Option<Duration> {
        let Some(text) = given else {
            return Some(default);
        };
        let message = match (parse_duration(&text.value), max) {
            (Err(why), _) => why,
            (Ok(d), Some(max)) if d < min || d > max => format!(
                "{} is out of range: must be between {} and {}",
                text.value,
                format_duration(min),
                format_duration(max)
            ),
            (Ok(d), None) if d < min => format!(
                "{} is too short: must be at least {}",
                text.value,
                format_duration(min)
            ),
            (Ok(d), _) => return Some(d),
        };
        self.report(path, Some(&text.referenced), message);
        None
    }

    /// A list of file glob patterns, kept as written.
    fn globs(&mut self, path: &str, given: Option<&[Text]>) -> Vec<String> {
        let mut globs = Vec::new();
        for (i, glob) in given.unwrap_or_default().iter().enumerate() {
            let outcome = if glob.value.trim().is_empty() {
                Err("must not be empty".to_string())
            } else {
                check_glob(&glob.value)
            };
            match outcome {
                Ok(()) => globs.push(glob.value.clone()),
                Err(why) => self.report(&format!("{path}[{i}]"), Some(&glob.referenced), why),
            }
        }
        globs
    }

    fn scalability(&mut self, raw: &RawScalability) -> Option<ScalabilityConfig> {
        let sessions = self.load_term(
            "scalability.sessions",
            raw.sessions.as_ref().unwrap_or(&RawLoadTerm::default()),
            &DEFAULT_SESSIONS,
        );
        let background_tasks = self.load_term(
            "scalability.background_tasks",
            raw.background_tasks
                .as_ref()
                .unwrap_or(&RawLoadTerm::default()),
            &DEFAULT_BACKGROUND_TASKS,
        );
        let health = self.health(raw.health.as_ref().unwrap_or(&RawHealth::default()));
        let grades = self.grades(raw.grades.as_ref().unwrap_or(&RawGrades::default()));
        Some(ScalabilityConfig {
            sessions: sessions?,
            background_tasks: background_tasks?,
            health,
            grades,
        })
    }

    /// A load term; `None` only when neither the given nor the default expression parses.
    fn load_term(
        &mut self,
        section: &str,
        raw: &RawLoadTerm,
        defaults: &LoadTermDefaults,
    ) -> Option<LoadTerm> {
        let free = self.number(&format!("{section}.free"), raw.free.as_ref(), defaults.free);
        let points_per_unit = self.number(
            &format!("{section}.points_per_unit"),
            raw.points_per_unit.as_ref(),
            defaults.points_per_unit,
        );
        let max_penalty = self.number(
            &format!("{section}.max_penalty"),
            raw.max_penalty.as_ref(),
            defaults.max_penalty,
        );
        let path = format!("{section}.expr");
        let given = match &raw.expr {
            None => None,
            Some(text) if text.value.trim().is_empty() => {
                self.report(
                    &path,
                    Some(&text.referenced),
                    "must not be empty (remove the key for the default)",
                );
                None
            }
            Some(text) => match expr::parse(&text.value) {
                Ok(parsed) => Some((parsed, text.value.clone())),
                Err(why) => {
                    self.report(&path, Some(&text.referenced), why);
                    None
                }
            },
        };
        let (expr, expr_text) = match given {
            Some(pair) => pair,
            None => match expr::parse(defaults.expr) {
                Ok(parsed) => (parsed, defaults.expr.to_string()),
                Err(why) => {
                    self.report(
                        &path,
                        None,
                        format!(
                            "the built-in expression {:?} does not parse: {why}",
                            defaults.expr
                        ),
                    );
                    return None;
                }
            },
        };
        Some(LoadTerm {
            expr,
            expr_text,
            free: free.value,
            points_per_unit: points_per_unit.value,
            max_penalty: max_penalty.value,
        })
    }

    fn health(&mut self, raw: &RawHealth) -> HealthTerm {
        let warning_path = "scalability.health.warning";
        let critical_path = "scalability.health.critical";
        let warning = self.number(warning_path, raw.warning.as_ref(), DEFAULT_HEALTH.warning);
        let critical = self.number(
            critical_path,
            raw.critical.as_ref(),
            DEFAULT_HEALTH.critical,
        );
        let comparable = warning.valid
            && critical.valid
            && !self.removed(warning_path)
            && !self.removed(critical_path);
        if comparable && warning.value > critical.value {
            const WHY: &str = "a critical alert must cost at least as many points as a warning";
            let (w, c) = (number_text(warning.value), number_text(critical.value));
            // The problem goes to `critical` when it was written in the file.
            if critical.at.is_some() {
                self.report(
                    critical_path,
                    critical.at,
                    format!("{c} is less than {warning_path} ({w}): {WHY}"),
                );
            } else {
                self.report(
                    warning_path,
                    warning.at,
                    format!("{w} is more than {critical_path} ({c}): {WHY}"),
                );
            }
        }
        HealthTerm {
            warning: warning.value,
            critical: critical.value,
        }
    }

    fn grades(&mut self, raw: &RawGrades) -> Grades {
        let paths = [
            "scalability.grades.excellent",
            "scalability.grades.good",
            "scalability.grades.moderate",
        ];
        let [excellent_path, good_path, moderate_path] = paths;
        let excellent = self.grade(
            excellent_path,
            raw.excellent.as_ref(),
            DEFAULT_GRADES.excellent,
        );
        let good = self.grade(good_path, raw.good.as_ref(), DEFAULT_GRADES.good);
        let moderate = self.grade(
            moderate_path,
            raw.moderate.as_ref(),
            DEFAULT_GRADES.moderate,
        );
        self.decreasing((excellent_path, &excellent), (good_path, &good));
        self.decreasing((good_path, &good), (moderate_path, &moderate));
        Grades {
            excellent: excellent.value,
            good: good.value,
            moderate: moderate.value,
        }
    }

    /// A grade threshold: a number within 0..=100.
    fn grade<'r>(
        &mut self,
        path: &str,
        given: Option<&'r Spanned<f64>>,
        default: f64,
    ) -> Number<'r> {
        let mut number = self.number(path, given, default);
        if number.valid && number.value > 100.0 {
            self.report(
                path,
                number.at,
                format!(
                    "{} is out of range: must be between 0 and 100",
                    number_text(number.value)
                ),
            );
            number = Number {
                value: default,
                valid: false,
                ..number
            };
        }
        number
    }

    /// Reports when the higher grade's threshold is not above the lower one's. The problem
    /// goes to the lower grade when it was written in the file, else to the higher one.
    fn decreasing(&mut self, high: (&str, &Number<'_>), low: (&str, &Number<'_>)) {
        let ((high_path, high), (low_path, low)) = (high, low);
        let comparable =
            high.valid && low.valid && !self.removed(high_path) && !self.removed(low_path);
        if !comparable || high.value > low.value {
            return;
        }
        let (h, l) = (number_text(high.value), number_text(low.value));
        const WHY: &str = "grades must go down from excellent to good to moderate";
        if low.at.is_some() {
            self.report(
                low_path,
                low.at,
                format!("{l} must be below {high_path} ({h}): {WHY}"),
            );
        } else {
            self.report(
                high_path,
                high.at,
                format!("{h} must be above {low_path} ({l}): {WHY}"),
            );
        }
    }

    /// A number that must be finite and `>= 0`; `default` when absent or invalid.
    fn number<'r>(
        &mut self,
        path: &str,
        given: Option<&'r Spanned<f64>>,
        default: f64,
    ) -> Number<'r> {
        let Some(spanned) = given else {
            return Number {
                value: default,
                valid: true,
                at: None,
            };
        };
        let at = Some(&spanned.referenced);
        let value = spanned.value;
        let why = if !value.is_finite() {
            format!("must be a finite number, got {value}")
        } else if value < 0.0 {
            format!("must be at least 0, got {}", number_text(value))
        } else {
            return Number {
                value,
                valid: true,
                at,
            };
        };
        self.report(path, at, why);
        Number {
            value: default,
            valid: false,
            at,
        }
    }

    fn agent(&mut self, raw: &RawAgent) -> AgentConfig {
        let hostname = match &raw.hostname {
            Some(name) if name.value != HOSTNAME_AUTO => match check_label_value(&name.value) {
                Ok(()) => name.value.clone(),
                Err(why) => {
                    self.report("agent.hostname", Some(&name.referenced), why);
                    String::new()
                }
            },
            _ => {
                let uname = rustix::system::uname();
                hostname_from_kernel(&uname.nodename().to_string_lossy())
            }
        };
        let listen = match &raw.listen {
            Some(text) => match text.value.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.report(
                        "agent.listen",
                        Some(&text.referenced),
                        format!(
                            "invalid address {:?}: expected IP:port such as 127.0.0.1:9469, 0.0.0.0:9469 or [::1]:9469 (host names are not resolved)",
                            text.value
                        ),
                    );
                    None
                }
            },
            None => None,
        };
        AgentConfig {
            hostname,
            listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9469))),
            data_dir: raw
                .data_dir
                .as_ref()
                .map(|p| self.absolute_path("agent.data_dir", p)),
            api_token_file: raw
                .api_token_file
                .as_ref()
                .map(|p| self.absolute_path("agent.api_token_file", p)),
            proc_root: raw.proc_root.as_ref().map_or_else(
                || PathBuf::from(DEFAULT_PROC_ROOT),
                |p| self.absolute_path("agent.proc_root", p),
            ),
            rootfs: raw.rootfs.as_ref().map_or_else(
                || PathBuf::from(DEFAULT_ROOTFS),
                |p| self.absolute_path("agent.rootfs", p),
            ),
        }
    }

    fn absolute_path(&mut self, path: &str, text: &Text) -> PathBuf {
        if text.value.is_empty() {
            self.report(
                path,
                Some(&text.referenced),
                "must not be empty (remove the key for the default)",
            );
        } else if !Path::new(&text.value).is_absolute() {
            self.report(
                path,
                Some(&text.referenced),
                format!("must be an absolute path, got {:?}", text.value),
            );
        }
        PathBuf::from(&text.value)
    }

    fn host(&mut self, raw: &RawHost) -> HostConfig {
        HostConfig {
            enabled: raw.enabled.unwrap_or(true),
            schedule: self.schedule("collect.host", raw.interval.as_ref(), raw.timeout.as_ref()),
            exclude_fstypes: self.names(
                "collect.host.exclude_fstypes",
                raw.exclude_fstypes.as_deref(),
                DEFAULT_EXCLUDE_FSTYPES,
            ),
            exclude_mounts: self.patterns(
                "collect.host.exclude_mounts",
                raw.exclude_mounts.as_deref(),
                DEFAULT_EXCLUDE_MOUNTS,
            ),
            exclude_disks: self.patterns(
                "collect.host.exclude_disks",
                raw.exclude_disks.as_deref(),
                DEFAULT_EXCLUDE_DISKS,
            ),
            exclude_interfaces: self.patterns(
                "collect.host.exclude_interfaces",
                raw.exclude_interfaces.as_deref(),
                DEFAULT_EXCLUDE_INTERFACES,
            ),
        }
    }

    fn ingest(&mut self, raw: &RawIngest) -> IngestConfig {
        const SECTION: &str = "collect.ingest";
        let max_body = match &raw.max_body {
            None => DEFAULT_MAX_BODY,
            Some(text) => match parse_size(text.value.trim()) {
                Ok(n) if (1..=MAX_MAX_BODY).contains(&n) => n,
                Ok(_) => {
                    self.report(
                        &format!("{SECTION}.max_body"),
                        Some(&text.referenced),
                        format!(
                            "{} is out of range: must be between 1B and {}",
                            text.value,
                            format_size(MAX_MAX_BODY)
                        ),
                    );
                    DEFAULT_MAX_BODY
                }
                Err(why) => {
                    self.report(&format!("{SECTION}.max_body"), Some(&text.referenced), why);
                    DEFAULT_MAX_BODY
                }
            },
        };
        let window = self
            .duration(
                &format!("{SECTION}.window"),
                raw.window.as_ref(),
                DEFAULT_INGEST_WINDOW,
                Duration::from_secs(10),
                Some(Duration::from_secs(3600)),
            )
            .unwrap_or(DEFAULT_INGEST_WINDOW);
        let max_routes = self
            .count(
                &format!("{SECTION}.max_routes"),
                raw.max_routes.as_ref(),
                DEFAULT_MAX_ROUTES as u64,
                1..=MAX_MAX_ROUTES as u64,
            )
            .try_into()
            .unwrap_or(DEFAULT_MAX_ROUTES);
        let min_requests = self.count(
            &format!("{SECTION}.min_requests"),
            raw.min_requests.as_ref(),
            DEFAULT_MIN_REQUESTS,
            1..=1_000_000,
        );
        IngestConfig {
            enabled: raw.enabled.unwrap_or(true),
            schedule: self.schedule(SECTION, raw.interval.as_ref(), None),
            max_body,
            window,
            max_routes,
            min_requests,
        }
    }

    /// A whole number within `range` (no upper bound when it ends at `u64::MAX`): `default`
    /// when absent or invalid (reported).
    fn count(
        &mut self,
        path: &str,
        given: Option<&Spanned<i64>>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        let Some(n) = given else {
            return default;
        };
        match u64::try_from(n.value) {
            Ok(v) if range.contains(&v) => v,
            _ => {
                let bound = if *range.end() == u64::MAX {
                    format!("at least {}", range.start())
                } else {
                    format!("between {} and {}", range.start(), range.end())
                };
                self.report(
                    path,
                    Some(&n.referenced),
                    format!("{} is out of range: must be {bound}", n.value),
                );
                default
            }
        }
    }

    fn tcp(&mut self, raw: &RawTcp) -> TcpConfig {
        TcpConfig {
            enabled: raw.enabled.unwrap_or(true),
            schedule: self.schedule("collect.tcp", raw.interval.as_ref(), raw.timeout.as_ref()),
            ports: self.ports("collect.tcp.ports", raw.ports.as_deref()),
        }
    }

    /// The `name` of list entry `base`: required, non-empty, a valid label value, and unique
    /// among `names` (which gets this entry's name, empty when invalid, to stay aligned with
    /// the list). `what` names the kind of entry in the duplicate message.
    fn entry_name<T>(
        &mut self,
        base: &str,
        item: &Spanned<T>,
        name: Option<&Text>,
        names: &mut Vec<String>,
        what: &str,
    ) -> Option<String> {
        let valid = match name {
            None => {
                if !self.removed(&format!("{base}.name")) {
                    self.report(base, Some(&item.referenced), "`name` is required");
                }
                None
            }
            Some(name) => {
                let path = format!("{base}.name");
                if let Err(why) = check_label_value(&name.value) {
                    self.report(&path, Some(&name.referenced), why);
                    None
                } else if name.value.trim().is_empty() {
                    self.report(&path, Some(&name.referenced), "must not be empty");
                    None
                } else if let Some(first) = names.iter().position(|n| *n == name.value) {
                    // `base` is `list[i]`; the duplicate message points at `list[first]`.
                    let list = base.rsplit_once('[').map_or(base, |(list, _)| list);
                    self.report(
                        &path,
                        Some(&name.referenced),
                        format!(
                            "duplicate {what} name {:?} (already at {list}[{first}])",
                            name.value
                        ),
                    );
                    None
                } else {
                    Some(name.value.clone())
                }
            }
        };
        names.push(valid.clone().unwrap_or_default());
        valid
    }

    /// The required `url` of list entry `base`, checked by `check`; `hint` shows its form.
    fn required_url<T>(
        &mut self,
        base: &str,
        item: &Spanned<T>,
        url: Option<&Text>,
        hint: &str,
        check: fn(&str) -> Result<(), String>,
    ) -> Option<String> {
        match url {
            None => {
                if !self.removed(&format!("{base}.url")) {
                    self.report(
                        base,
                        Some(&item.referenced),
                        format!("`url` is required ({hint})"),
                    );
                }
                None
            }
            Some(text) => match check(&text.value) {
                Ok(()) => Some(text.value.clone()),
                Err(why) => {
                    self.report(&format!("{base}.url"), Some(&text.referenced), why);
                    None
                }
            },
        }
    }

    fn redis(&mut self, list: &[Spanned<RawRedis>]) -> Vec<RedisTarget> {
        let mut targets = Vec::new();
        // Name of each entry (empty when invalid), aligned with the list for duplicates.
        let mut names: Vec<String> = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let base = format!("collect.redis[{i}]");
            let raw = &item.value;
            let mut valid = true;
            let name = self.entry_name(&base, item, raw.name.as_ref(), &mut names, "Redis target");
            let url = self.required_url(
                &base,
                item,
                raw.url.as_ref(),
                "redis://host:port",
                check_redis_url,
            );
            let password = match &raw.password_file {
                None => None,
                Some(text) => {
                    let path = format!("{base}.password_file");
                    if url.as_deref().is_some_and(url_has_password) {
                        self.report(
                            &path,
                            Some(&text.referenced),
                            "the URL already carries a password: set it in one place only",
                        );
                        valid = false;
                        None
                    } else {
                        match self.secret(&base, ("password", None), ("password_file", Some(text)))
                        {
                            SecretOutcome::Given(secret, _) => Some(secret),
                            SecretOutcome::Absent => None,
                            SecretOutcome::Invalid => {
                                valid = false;
                                None
                            }
                        }
                    }
                }
            };
            let schedule = self.schedule(&base, raw.interval.as_ref(), raw.timeout.as_ref());
            let mut queues: Vec<String> = Vec::new();
            for (q, text) in raw.queues.iter().flatten().enumerate() {
                let path = format!("{base}.queues[{q}]");
                if text.value.is_empty() {
                    self.report(&path, Some(&text.referenced), "must not be empty");
                } else if let Err(why) = check_label_value(&text.value) {
                    self.report(&path, Some(&text.referenced), why);
                } else if let Some(first) = queues.iter().position(|n| *n == text.value) {
                    self.report(
                        &path,
                        Some(&text.referenced),
                        format!(
                            "duplicate queue {:?} (already at {base}.queues[{first}])",
                            text.value
                        ),
                    );
                } else {
                    queues.push(text.value.clone());
                    continue;
                }
                // Keep indexes aligned for duplicate messages.
                queues.push(String::new());
            }
            queues.retain(|q| !q.is_empty());
            let min_lookups = self.count(
                &format!("{base}.min_lookups"),
                raw.min_lookups.as_ref(),
                DEFAULT_MIN_LOOKUPS,
                1..=u64::MAX,
            );
            if let (Some(name), Some(url), true) = (name, url, valid) {
                targets.push(RedisTarget {
                    name,
                    url,
                    password,
                    schedule,
                    queues,
                    min_lookups,
                });
            }
        }
        targets
    }

    fn http_probes(&mut self, list: &[Spanned<RawProbe>]) -> Vec<ProbeTarget> {
        let mut targets = Vec::new();
        // Name of each entry (empty when invalid), aligned with the list for duplicates.
        let mut names: Vec<String> = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let base = format!("collect.http_probes[{i}]");
            let raw = &item.value;
            let mut valid = true;
            let name = self.entry_name(&base, item, raw.name.as_ref(), &mut names, "probe");
            let url = self.required_url(
                &base,
                item,
                raw.url.as_ref(),
                "http://host:port/path",
                check_probe_url,
            );
            let method = match &raw.method {
                None => "GET".to_string(),
                Some(text) => match check_http_method(&text.value) {
                    Ok(m) => m,
                    Err(why) => {
                        self.report(&format!("{base}.method"), Some(&text.referenced), why);
                        valid = false;
                        String::new()
                    }
                },
            };
            let schedule = self.schedule(&base, raw.interval.as_ref(), raw.timeout.as_ref());
            let expect_status = match &raw.expect_status {
                None => DEFAULT_EXPECT_STATUS.to_vec(),
                Some(list) => {
                    let mut statuses = Vec::with_capacity(list.len());
                    if list.is_empty() {
                        self.report(
                            &format!("{base}.expect_status"),
                            Some(&item.referenced),
                            "must list at least one status",
                        );
                        valid = false;
                    }
                    for (s, n) in list.iter().enumerate() {
                        match u16::try_from(n.value) {
                            Ok(v) if (100..=599).contains(&v) => statuses.push(v),
                            _ => {
                                self.report(
                                    &format!("{base}.expect_status[{s}]"),
                                    Some(&n.referenced),
                                    format!(
                                        "{} is out of range: must be between 100 and 599",
                                        n.value
                                    ),
                                );
                                valid = false;
                            }
                        }
                    }
                    statuses
                }
            };
            let attempts = match &raw.attempts {
                None => 1,
                Some(n) => match u32::try_from(n.value) {
                    Ok(v) if (1..=MAX_PROBE_ATTEMPTS).contains(&v) => v,
                    _ => {
                        self.report(
                            &format!("{base}.attempts"),
                            Some(&n.referenced),
                            format!(
                                "{} is out of range: must be between 1 and {MAX_PROBE_ATTEMPTS}",
                                n.value
                            ),
                        );
                        valid = false;
                        1
                    }
                },
            };
            // The whole round (every attempt at its timeout) must end before the next one.
            // A timeout alone longer than the interval is already reported by `schedule`.
            let round = schedule.timeout.saturating_mul(attempts);
            if attempts > 1
                && schedule.timeout <= schedule.interval
                && round > schedule.interval
                && !self.removed(&format!("{base}.interval"))
            {
                let at = raw
                    .attempts
                    .as_ref()
                    .map(|n| &n.referenced)
                    .unwrap_or(&item.referenced);
                self.report(
                    &format!("{base}.attempts"),
                    Some(at),
                    format!(
                        "{attempts} attempts of up to {} each take longer than the interval ({}): a round must end before the next starts",
                        format_duration(schedule.timeout),
                        format_duration(schedule.interval)
                    ),
                );
                valid = false;
            }
            if let (Some(name), Some(url), true) = (name, url, valid) {
                targets.push(ProbeTarget {
                    name,
                    url,
                    method,
                    schedule,
                    expect_status,
                    attempts,
                });
            }
        }
        targets
    }

    fn schedule(
        &mut self,
        section: &str,
        interval: Option<&Text>,
        timeout: Option<&Text>,
    ) -> Schedule {
        let interval_path = format!("{section}.interval");
        let timeout_path = format!("{section}.timeout");
        // `None` when the given interval is invalid: nothing to compare the timeout with.
        let checked_interval = match interval {
            None => Some(DEFAULT_INTERVAL),
            Some(text) => match parse_duration(&text.value) {
                Ok(d) if d < MIN_INTERVAL || d > MAX_INTERVAL => {
                    self.report(
                        &interval_path,
                        Some(&text.referenced),
                        format!(
                            "{} is out of range: must be between {} and {}",
                            text.value,
                            format_duration(MIN_INTERVAL),
                            format_duration(MAX_INTERVAL)
                        ),
                    );
                    None
                }
                Ok(d) => Some(d),
                Err(why) => {
                    self.report(&interval_path, Some(&text.referenced), why);
                    None
                }
            },
        };
        let interval_value = checked_interval.unwrap_or(DEFAULT_INTERVAL);
        let timeout_value = match timeout {
            None => DEFAULT_TIMEOUT.min(interval_value),
            Some(text) => match parse_duration(&text.value) {
                Ok(d) if d.is_zero() => {
                    self.report(
                        &timeout_path,
                        Some(&text.referenced),
                        "must be greater than 0",
                    );
                    d
                }
                Ok(d) => {
                    let interval_removed = self.neutralized.contains(&interval_path);
                    if let Some(limit) = checked_interval.filter(|i| d > *i && !interval_removed) {
                        self.report(
                            &timeout_path,
                            Some(&text.referenced),
                            format!(
                                "{} is longer than the interval ({}): a run must end before the next starts",
                                text.value,
                                format_duration(limit)
                            ),
                        );
                    }
                    d
                }
                Err(why) => {
                    self.report(&timeout_path, Some(&text.referenced), why);
                    DEFAULT_TIMEOUT.min(interval_value)
                }
            },
        };
        Schedule {
            interval: interval_value,
            timeout: timeout_value,
        }
    }

    /// A list of exact names; a list given replaces `defaults`.
    fn names(&mut self, path: &str, given: Option<&[Text]>, defaults: &[&str]) -> Vec<String> {
        let Some(given) = given else {
            return defaults.iter().map(|s| s.to_string()).collect();
        };
        let mut names = Vec::with_capacity(given.len());
        for (i, name) in given.iter().enumerate() {
            if name.value.trim().is_empty() {
                self.report(
                    &format!("{path}[{i}]"),
                    Some(&name.referenced),
                    "must not be empty",
                );
            } else {
                names.push(name.value.clone());
            }
        }
        names
    }

    /// A list of whole-name patterns; a list given replaces `defaults`.
    fn patterns(&mut self, path: &str, given: Option<&[Text]>, defaults: &[&str]) -> Vec<Regex> {
        let sources: Vec<(String, Option<&Location>)> = match given {
            Some(list) => list
                .iter()
                .map(|t| (t.value.clone(), Some(&t.referenced)))
                .collect(),
            None => defaults.iter().map(|s| (s.to_string(), None)).collect(),
        };
        let mut compiled = Vec::with_capacity(sources.len());
        for (i, (pattern, at)) in sources.into_iter().enumerate() {
            match compile_whole_name(&pattern) {
                Ok(regex) => compiled.push(regex),
                Err(why) => self.report(&format!("{path}[{i}]"), at, why),
            }
        }
        compiled
    }

    fn ports(&mut self, path: &str, given: Option<&[Spanned<i64>]>) -> Vec<u16> {
        let mut ports: Vec<u16> = Vec::new();
        // Index in the list where each accepted port first appeared, for duplicate messages.
        let mut first_index: Vec<usize> = Vec::new();
        for (i, port) in given.unwrap_or_default().iter().enumerate() {
            let item = format!("{path}[{i}]");
            match u16::try_from(port.value).ok().filter(|p| *p != 0) {
                None => self.report(
                    &item,
                    Some(&port.referenced),
                    format!("port {} is out of range 1-65535", port.value),
                ),
                Some(p) => match ports.iter().position(|q| *q == p) {
                    Some(seen) => {
                        let first = first_index.get(seen).copied().unwrap_or(seen);
                        self.report(
                            &item,
                            Some(&port.referenced),
                            format!("duplicate port {p} (already at {path}[{first}])"),
                        );
                    }
                    None => {
                        ports.push(p);
                        first_index.push(i);
                    }
                },
            }
        }
        ports
    }
}

/// How a secret key pair turned out.
enum SecretOutcome<'t> {
    /// Neither key given.
    Absent,
    /// Given but unusable (reported).
    Invalid,
    /// The value, with the key path and position it came from.
    Given(Secret, (String, &'t Location)),
}

/// Looks up an environment variable (injected so tests need not change the environment).
type EnvLookup = fn(&str) -> Result<String, std::env::VarError>;

/// Checks a `collect.redis` URL: a known scheme and a host. Problems never show a password.
pub fn check_redis_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("invalid URL {:?}: {e}", super::redact_url(text)))?;
    if !matches!(url.scheme(), "redis" | "rediss" | "valkey" | "valkeys") {
        return Err(format!(
            "must be redis://, rediss://, valkey:// or valkeys://, got {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("URL has no host".into());
    }
    Ok(())
}

/// Checks a `collect.http_probes` URL: `http` or `https` and a host.
pub fn check_probe_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("invalid URL {:?}: {e}", super::redact_url(text)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must be http:// or https://, got {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("URL has no host".into());
    }
    Ok(())
}

/// Checks an HTTP method name (a token, such as `GET` or `POST`) and returns it upper-cased.
pub fn check_http_method(text: &str) -> Result<String, String> {
    let upper = text.trim().to_ascii_uppercase();
    if upper.is_empty() {
        return Err("must not be empty".into());
    }
    if !is_http_method(&upper) {
        return Err(format!(
            "{text:?} is not an HTTP method (GET, HEAD, POST, ...)"
        ));
    }
    Ok(upper)
}

/// Whether `text` looks like an HTTP method name: letters, `-` and `_`, any case.
pub fn is_http_method(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
}

/// Whether a URL carries a `user:password@` (or `:password@`) part.
fn url_has_password(text: &str) -> bool {
    reqwest::Url::parse(text).is_ok_and(|u| u.password().is_some())
}

fn process_env(name: &str) -> Result<String, std::env::VarError> {
    std::env::var(name)
}

/// Headers a webhook sets itself; a configured header may not replace them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "idempotency-key",
    "x-lookout-signature",
];

/// Largest secret file read, in bytes.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Whether `name` is an environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The variable name of a value that is exactly one `${ENV_NAME}` reference.
pub fn env_reference(text: &str) -> Option<&str> {
    text.strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .filter(|name| is_env_name(name))
}

/// The value of an environment variable; problems name the variable, never a value.
fn env_value(name: &str, env: EnvLookup) -> Result<String, String> {
    match env(name) {
        Ok(value) if value.is_empty() => Err(format!("environment variable {name} is empty")),
        Ok(value) => Ok(value),
        Err(std::env::VarError::NotPresent) => {
            Err(format!("environment variable {name} is not set"))
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("environment variable {name} is not valid UTF-8"))
        }
    }
}

/// Replaces every `${ENV_NAME}` in `text` with the variable's value. Every `${` must open
/// a well-formed reference; a `$` not followed by `{` is literal.
pub fn interpolate_env(text: &str, env: EnvLookup) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let inner = after.get(2..).unwrap_or_default();
        let Some(end) = inner.find('}') else {
            return Err("`${` without a closing `}`".into());
        };
        let name = inner.get(..end).unwrap_or_default();
        if !is_env_name(name) {
            return Err(format!(
                "invalid environment variable reference {:?}: expected ${{ENV_NAME}}",
                format!("${{{name}}}")
            ));
        }
        out.push_str(&env_value(name, env)?);
        rest = inner.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads a secret file: at most [`MAX_SECRET_BYTES`], trailing line breaks trimmed, not
/// empty. Problems name the file, never its content.
pub fn read_secret_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("cannot read {shown}: not a regular file"));
    }
    if meta.len() > MAX_SECRET_BYTES {
        return Err(format!(
            "{shown} is {} bytes; a secret file holds at most {MAX_SECRET_BYTES}",
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => format!("{shown} is not valid UTF-8"),
        _ => format!("cannot read {shown}: {e}"),
    })?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    Ok(value.to_string())
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

/// Why `name` cannot be a label name (`[a-zA-Z_][a-zA-Z0-9_]*`), if it cannot.
fn check_label_name(name: &str) -> Result<(), String> {
    if is_env_name(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid label name {name:?}: letters, digits and `_`, not starting with a digit"
        ))
    }
}

/// A checked number, with where it was written.
#[derive(Debug, Clone, Copy)]
struct Number<'r> {
    /// The value, or the default when absent or invalid.
    value: f64,
    /// Whether the value is usable in comparisons (absent, or given and valid).
    valid: bool,
    /// Position of the value in the file; `None` when absent.
    at: Option<&'r Location>,
}

/// A number as people write it: `20`, `2.5`, `0.33` (at most two decimals).
pub fn number_text(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_size_table() {
        for (text, want) in [
            ("65536", Ok(65536)),
            ("1MiB", Ok(1 << 20)),
            ("512 KiB", Ok(512 << 10)),
            ("2MB", Ok(2_000_000)),
            ("10B", Ok(10)),
            ("1GiB", Ok(1 << 30)),
        ] {
            assert_eq!(parse_size(text), want, "{text}");
        }
        for text in ["", "MiB", "1.5MiB", "1mib", "-1", "99999999999999999999GiB"] {
            assert!(parse_size(text).is_err(), "{text} should be refused");
        }
        for n in [1, 1023, 1024, 3 << 20, 1 << 30] {
            assert_eq!(parse_size(&format_size(n)), Ok(n));
        }
    }

    #[test]
    fn ingest_section_reads_sizes_as_numbers_or_with_units() {
        let config = crate::config::load_str(
            "collect:\n  ingest: {max_body: 65536, window: 5m, max_routes: 7, min_requests: 1}\n",
            "t.yaml",
        )
        .expect("valid");
        let ingest = config.collect.ingest;
        assert_eq!(
            (
                ingest.max_body,
                ingest.window,
                ingest.max_routes,
                ingest.min_requests
            ),
            (65536, Duration::from_secs(300), 7, 1)
        );
        let problems = crate::config::load_str("collect:\n  ingest: {max_body: 65MiB}\n", "t.yaml")
            .expect_err("over the limit")
            .0;
        assert_eq!(
            problems[0].to_string(),
            "t.yaml:2:22: collect.ingest.max_body: 65MiB is out of range: must be between 1B and 64MiB"
        );
        let defaults = Config::builtin().collect.ingest;
        assert_eq!(
            (
                defaults.enabled,
                defaults.max_body,
                defaults.window,
                defaults.max_routes
            ),
            (
                true,
                DEFAULT_MAX_BODY,
                DEFAULT_INGEST_WINDOW,
                DEFAULT_MAX_ROUTES
            )
        );
    }

    #[test]
    fn parse_duration_table() {
        let ok: &[(&str, u64)] = &[
            // milliseconds alone
            ("500ms", 500),
            // plain seconds
            ("10s", 10_000),
            // minutes
            ("5m", 300_000),
            // hours
            ("1h", 3_600_000),
            // days
            ("1d", 86_400_000),
            // combination, largest unit first
            ("1m30s", 90_000),
            // every unit at once
            ("1d2h3m4s5ms", 93_784_005),
            // zero is a valid duration; range checks are the caller's
            ("0s", 0),
            // leading zeros are just digits
            ("010s", 10_000),
        ];
        for (text, millis) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(*millis)),
                "{text}"
            );
        }
        let bad: &[(&str, &str)] = &[
            // empty
            ("", "expected a number followed by a unit"),
            // a word
            ("ten", "expected a number followed by a unit"),
            // bare number
            ("10", "missing unit"),
            // unknown unit
            ("10x", "unknown unit \"x\""),
            // units longer than ours
            ("10sec", "unknown unit \"sec\""),
            // fractions
            ("1.5s", "fractions are not supported"),
            // smaller unit first
            ("30s1m", "largest to smallest"),
            // repeated unit
            ("1s1s", "largest to smallest"),
            // negative
            ("-5s", "expected a number followed by a unit"),
            // inner space
            ("1m 30s", "expected a number followed by a unit"),
            // surrounding space is not trimmed
            (" 10s", "expected a number followed by a unit"),
            // overflow of u64 milliseconds
            ("99999999999999999999d", "too large"),
        ];
        for (text, expected) in bad {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
            assert!(
                err.starts_with(&format!("invalid duration {text:?}")),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn format_duration_round_trips() {
        for text in [
            // milliseconds
            "500ms",
            // seconds
            "10s",
            // mixed
            "1m30s",
            // every unit
            "1d2h3m4s5ms",
            // zero
            "0s",
        ] {
            let parsed = parse_duration(text).expect(text);
            assert_eq!(format_duration(parsed), text);
        }
    }

    #[test]
    fn whole_name_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            // exact
            ("lo", "lo", true),
            // anchored at the end: no prefix match
            ("lo", "lo0", false),
            // anchored at the start
            ("lo", "xlo", false),
            // alternation stays inside the group
            ("a|b", "ab", false),
            // default disk pattern: a partition
            (r"(h|s|v|xv)d[a-z]+\d+", "sda1", true),
            // default disk pattern: the whole disk stays
            (r"(h|s|v|xv)d[a-z]+\d+", "sda", false),
            // default mount pattern: the root of /proc
            ("/proc(/.*)?", "/proc", true),
            // ... and below it, but not a sibling
            ("/proc(/.*)?", "/processes", false),
        ];
        for (pattern, name, matches) in cases {
            let regex = compile_whole_name(pattern).expect(pattern);
            assert_eq!(regex.is_match(name), *matches, "{pattern} vs {name}");
        }
        let err = compile_whole_name("(sd").expect_err("unclosed group");
        assert!(err.starts_with("invalid regex \"(sd\": "), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn builtin_defaults() {
        let config = builtin();
        assert_eq!(config.agent.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.agent.proc_root, PathBuf::from("/proc"));
        assert_eq!(config.agent.rootfs, PathBuf::from("/"));
        assert!(!config.agent.hostname.is_empty());
        let schedule = Schedule {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
        };
        assert_eq!(config.collect.host.schedule, schedule);
        assert_eq!(config.collect.tcp.schedule, schedule);
        assert_eq!(
            config.collect.host.exclude_fstypes.len(),
            DEFAULT_EXCLUDE_FSTYPES.len()
        );
        assert_eq!(
            config.collect.host.exclude_mounts.len(),
            DEFAULT_EXCLUDE_MOUNTS.len()
        );
        assert_eq!(
            config.collect.host.exclude_disks.len(),
            DEFAULT_EXCLUDE_DISKS.len()
        );
        assert!(config.collect.host.exclude_interfaces.is_empty());
        assert!(config.collect.tcp.ports.is_empty());
        // Every default pattern compiles: validating the empty tree reports nothing.
        let (config, problems) = Checker::new("t", &[]).config(&RawConfig::default());
        assert!(problems.is_empty(), "{problems:?}");
        assert!(config.is_some());
    }

    #[test]
    fn glob_syntax() {
        let ok = [
            // plain absolute path
            "/etc/lookout/rules/host.yaml",
            // relative, with a star
            "rules/*.yaml",
            // recursive wildcard as a whole component
            "rules/**/*.yaml",
            // recursive wildcard at the end
            "rules/**",
            // character class, range, negation
            "rules/[a-z]*[!~].yaml",
            // `]` first in a class is a literal
            "rules/[]x].yaml",
            // `-` last in a class is a literal
            "rules/[a-].yaml",
            // a lone `]` outside a class is a literal
            "rules/a].yaml",
            // literal star written as a class
            "rules/[*].yaml",
        ];
        for pattern in ok {
            assert_eq!(check_glob(pattern), Ok(()), "{pattern}");
        }
        let bad: &[(&str, &str)] = &[
            // empty
            ("", "empty pattern"),
            // unclosed class
            ("rules/[ab.yaml", "`[` at character 7 is never closed"),
            // `[]` alone: the `]` is a member, so still unclosed
            ("rules/[].yaml", "never closed"),
            // reversed range
            ("rules/[z-a].yaml", "range z-a is reversed"),
            // `**` glued to a name
            ("rules/**.yaml", "`**` must be a whole path component"),
            // `**` glued in front
            ("a**/x", "`**` must be a whole path component"),
            // a class spanning a separator
            ("rules/[a/b]", "contains `/`"),
        ];
        for (pattern, expected) in bad {
            let err = check_glob(pattern).expect_err(pattern);
            assert!(err.contains(expected), "{pattern}: {err}");
            assert!(
                err.starts_with(&format!("invalid glob {pattern:?}: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn number_texts() {
        let cases: &[(f64, &str)] = &[
            // integer
            (20.0, "20"),
            // zero
            (0.0, "0"),
            // negative zero
            (-0.0, "0"),
            // one decimal
            (2.5, "2.5"),
            // rounded to two decimals
            (0.333, "0.33"),
            // float noise hidden
            (0.1 + 0.2, "0.3"),
            // negative
            (-1.0, "-1"),
        ];
        for (value, expected) in cases {
            assert_eq!(number_text(*value), *expected, "{value}");
        }
    }

    #[test]
    fn builtin_rules_notify_scalability() {
        let config = builtin();
        assert_eq!(
            config.rules,
            RulesConfig {
                files: Vec::new(),
                evaluation_interval: Duration::from_secs(10),
                stale_after: Duration::from_secs(300),
            }
        );
        assert_eq!(config.notify.repeat_interval, Duration::from_secs(4 * 3600));
        let s = &config.scalability;
        for (term, defaults) in [
            (&s.sessions, DEFAULT_SESSIONS),
            (&s.background_tasks, DEFAULT_BACKGROUND_TASKS),
        ] {
            assert_eq!(term.expr_text, defaults.expr);
            assert_eq!(
                (term.free, term.points_per_unit, term.max_penalty),
                (
                    defaults.free,
                    defaults.points_per_unit,
                    defaults.max_penalty
                )
            );
        }
        assert_eq!(s.health, DEFAULT_HEALTH);
        assert_eq!(s.grades, DEFAULT_GRADES);
    }

    fn fixture(name: &str) -> Config {
        let path = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/config/valid/"
        ))
        .join(name);
        crate::config::load(&path).unwrap_or_else(|p| panic!("{name}: {:?}", p.0))
    }

    #[test]
    fn full_fixture_rules_notify_scalability() {
        let config = fixture("full.yaml");
        assert_eq!(config.rules.files, ["../../../../rules/[a-z]*.yaml"]);
        assert_eq!(config.rules.evaluation_interval, Duration::from_secs(30));
        assert_eq!(config.rules.stale_after, Duration::from_secs(600));
        assert_eq!(config.notify.repeat_interval, Duration::from_secs(5400));
        let s = &config.scalability;
        assert_eq!(
            s.sessions.expr_text,
            r#"sum(lookout_tcp_port_connections{state="established",port="443"})"#
        );
        assert_eq!(
            (
                s.sessions.free,
                s.sessions.points_per_unit,
                s.sessions.max_penalty
            ),
            (100.0, 0.5, 40.0)
        );
        assert_eq!(
            s.background_tasks.expr_text,
            "max(lookout_redis_queue_length)"
        );
        assert_eq!(
            (
                s.background_tasks.free,
                s.background_tasks.points_per_unit,
                s.background_tasks.max_penalty
            ),
            (0.0, 2.5, 25.0)
        );
        assert_eq!(
            s.health,
            HealthTerm {
                warning: 10.0,
                critical: 35.0
            }
        );
        assert_eq!(
            s.grades,
            Grades {
                excellent: 90.0,
                good: 70.5,
                moderate: 0.0
            }
        );
    }

    #[test]
    fn partial_sections_keep_their_own_defaults() {
        let config = fixture("scalability_partial.yaml");
        // stale_after left out follows a longer evaluation interval
        assert_eq!(config.rules.evaluation_interval, Duration::from_secs(600));
        assert_eq!(config.rules.stale_after, Duration::from_secs(600));
        assert_eq!(config.notify.repeat_interval, Duration::from_secs(60));
        let s = &config.scalability;
        assert_eq!(s.sessions.free, 5.0);
        assert_eq!(s.sessions.expr_text, DEFAULT_SESSIONS.expr);
        assert_eq!(s.sessions.max_penalty, DEFAULT_SESSIONS.max_penalty);
        assert_eq!(s.background_tasks.expr_text, DEFAULT_BACKGROUND_TASKS.expr);
        assert_eq!(s.background_tasks.free, DEFAULT_BACKGROUND_TASKS.free);
        assert_eq!(
            s.health,
            HealthTerm {
                warning: 15.0,
                critical: 15.0
            }
        );
        assert_eq!(s.grades.moderate, 0.0);
    }

    #[test]
    fn scalability_cross_checks() {
        // (yaml, expected problems, each as "path: message start")
        let cases: &[(&str, &[&str])] = &[
            // critical given below the default warning: blamed on critical
            (
                "scalability:\n  health: {critical: 10}\n",
                &[
                    "2:22: scalability.health.critical: 10 is less than scalability.health.warning (15)",
                ],
            ),
            // both given: blamed on critical
            (
                "scalability:\n  health: {warning: 20, critical: 10}\n",
                &["2:35: scalability.health.critical: 10 is less than"],
            ),
            // an excellent threshold below the default good: blamed on excellent
            (
                "scalability:\n  grades: {excellent: 50}\n",
                &[
                    "2:23: scalability.grades.excellent: 50 must be above scalability.grades.good (60)",
                ],
            ),
            // equal grades are not strictly decreasing
            (
                "scalability:\n  grades: {good: 40}\n",
                &[
                    "2:18: scalability.grades.good: 40 must be above scalability.grades.moderate (40)",
                ],
            ),
            // an invalid grade is not compared with its neighbours
            (
                "scalability:\n  grades: {good: -1, excellent: 10}\n",
                &["2:18: scalability.grades.good: must be at least 0, got -1"],
            ),
            // a grade removed by structural recovery is not compared either
            (
                "scalability:\n  grades: {good: [1], moderate: 70}\n",
                &["2:18: scalability.grades.good: expected a single value, found a list"],
            ),
            // an invalid evaluation interval is not compared with stale_after
            (
                "rules: {evaluation_interval: 0s, stale_after: 1s}\n",
                &["1:30: rules.evaluation_interval: 0s is out of range"],
            ),
            // a bad stale_after duration
            (
                "rules: {stale_after: soon}\n",
                &["1:22: rules.stale_after: invalid duration \"soon\""],
            ),
            // a bad repeat interval
            (
                "notify: {repeat_interval: 4 hours}\n",
                &["1:27: notify.repeat_interval: invalid duration \"4 hours\""],
            ),
            // a file list that is not a list
            (
                "rules: {files: '*.yaml'}\n",
                &["1:16: rules.files: expected a list, found \"*.yaml\""],
            ),
        ];
        for (yaml, expected) in cases {
            let problems = crate::config::load_str(yaml, "t.yaml").expect_err(yaml).0;
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            assert_eq!(lines.len(), expected.len(), "{yaml}: {lines:?}");
            for want in *expected {
                assert!(
                    lines
                        .iter()
                        .any(|l| l.starts_with(&format!("t.yaml:{want}"))),
                    "{yaml}: want {want:?} in {lines:?}"
                );
            }
        }
    }

    fn fake_env(name: &str) -> Result<String, std::env::VarError> {
        match name {
            "SMTP_PASSWORD" => Ok("s3cret-from-env".into()),
            "HOOK_TOKEN" => Ok("tok".into()),
            "EMPTY" => Ok(String::new()),
            _ => Err(std::env::VarError::NotPresent),
        }
    }

    /// Validates `yaml` with [`fake_env`] as the environment.
    fn check_with_fake_env(yaml: &str) -> (Option<Config>, Vec<String>) {
        let raw: Option<RawConfig> = serde_saphyr::from_str(yaml).expect("parses");
        let mut checker = Checker::new("t.yaml", &[]);
        checker.env = fake_env;
        let (config, problems) = checker.config(&raw.unwrap_or_default());
        (config, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn builtin_notify_is_the_documented_default() {
        assert_eq!(
            builtin().notify,
            NotifyConfig::defaults(DEFAULT_REPEAT_INTERVAL)
        );
        // default.yaml writes every notify key out.
        let raw: Option<RawConfig> =
            serde_saphyr::from_str(super::super::DEFAULT_CONFIG_YAML).expect("parses");
        let notify = raw.and_then(|r| r.notify).expect("notify");
        let retry = notify.retry.expect("retry");
        let breaker = notify.circuit_breaker.expect("circuit_breaker");
        let rate = notify.rate_limit.expect("rate_limit");
        assert!(
            notify.group_wait.is_some()
                && notify.send_resolved.is_some()
                && notify.receivers.is_some()
                && notify.route.is_some()
        );
        assert!(
            retry.initial.is_some()
                && retry.max.is_some()
                && retry.multiplier.is_some()
                && retry.jitter.is_some()
                && retry.give_up_after.is_some()
        );
        assert!(breaker.failures.is_some() && breaker.open_for.is_some());
        assert!(rate.max.is_some() && rate.per.is_some());
    }

    #[test]
    fn full_notify_fixture() {
        let n = fixture("notify.yaml").notify;
        assert_eq!(n.repeat_interval, Duration::from_secs(7200));
        assert_eq!(n.group_wait, Duration::from_secs(30));
        assert!(!n.send_resolved);
        assert_eq!(
            n.retry,
            RetryConfig {
                initial: Duration::from_secs(2),
                max: Duration::from_secs(120),
                multiplier: 1.5,
                jitter: false,
                give_up_after: Duration::from_secs(12 * 3600),
            }
        );
        assert_eq!(n.circuit_breaker.failures, 3);
        assert_eq!(n.circuit_breaker.open_for, Duration::from_secs(60));
        assert_eq!(n.rate_limit.max, 10);
        assert_eq!(n.rate_limit.per, Duration::from_secs(1800));
        let names: Vec<&str> = n.receivers.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["oncall", "chat", "am", "relay", "log"]);
        let Some(ReceiverKind::Email(email)) = n.receivers.first().map(|r| &r.kind) else {
            panic!("oncall is an email receiver");
        };
        assert_eq!(
            n.receivers.first().and_then(|r| r.send_resolved),
            Some(true)
        );
        assert_eq!((email.host.as_str(), email.port), ("smtp.example.com", 587));
        assert_eq!(email.tls, SmtpTls::StartTls);
        assert_eq!(email.username.as_deref(), Some("alerts"));
        // The file's trailing newline is trimmed.
        assert_eq!(
            email.password.as_ref().map(Secret::expose),
            Some("smtp-pass-fixture")
        );
        assert_eq!(email.to.len(), 2);
        assert_eq!(email.timeout, Duration::from_secs(20));
        let Some(ReceiverKind::Webhook(hook)) = n.receivers.get(1).map(|r| &r.kind) else {
            panic!("chat is a webhook");
        };
        assert_eq!(hook.format, WebhookFormat::Slack);
        assert_eq!(
            hook.secret.as_ref().map(Secret::expose),
            Some("hook-secret-fixture")
        );
        assert_eq!(hook.headers, [("X-Team".to_string(), Secret::new("infra"))]);
        let Some(ReceiverKind::Alertmanager(am)) = n.receivers.get(2).map(|r| &r.kind) else {
            panic!("am is an alertmanager receiver");
        };
        assert_eq!(am.urls.len(), 2);
        assert_eq!(am.resend_interval, Duration::from_secs(30));
        let Some(ReceiverKind::Email(relay)) = n.receivers.get(3).map(|r| &r.kind) else {
            panic!("relay is an email receiver");
        };
        assert_eq!(
            (relay.host.as_str(), relay.port, relay.tls),
            ("::1", 25, SmtpTls::None)
        );
        assert_eq!(relay.timeout, DEFAULT_EMAIL_TIMEOUT);
        assert_eq!(n.route.len(), 3);
        let first = n.route.first().expect("route 0");
        assert!(first.continue_);
        assert_eq!(first.receivers, ["oncall", "chat"]);
        let second = n.route.get(1).expect("route 1");
        assert_eq!(second.matchers.len(), 2);
        let labels = crate::rules::LabelSet::from([
            ("alertname".to_string(), "HostCpuHigh".to_string()),
            ("team".to_string(), "infra".to_string()),
        ]);
        assert!(second.matchers.iter().all(|m| m.matches(&labels)));
        let partial =
            crate::rules::LabelSet::from([("alertname".to_string(), "XHostCpuHigh".to_string())]);
        assert!(!second.matchers.iter().all(|m| m.matches(&partial)));
    }

    #[test]
    fn receivers_without_route_get_one_route_to_all() {
        let yaml = "notify:\n  receivers:\n    - {name: a, log: {}}\n    - {name: b, alertmanager: {urls: ['http://am:9093']}}\n";
        let config = crate::config::load_str(yaml, "t.yaml").expect("valid");
        assert_eq!(
            config.notify.route,
            [RouteConfig {
                matchers: Vec::new(),
                receivers: vec!["a".into(), "b".into()],
                continue_: false,
            }]
        );
    }

    #[test]
    fn secrets_come_from_env_and_never_show() {
        let email = |password: &str| {
            format!(
                "notify:\n  receivers:\n    - name: m\n      email: {{smarthost: 'h:25', username: u, password: '{password}', from: a@b.c, to: [d@e.f]}}\n"
            )
        };
        // a ${ENV} reference is resolved
        let (config, problems) = check_with_fake_env(&email("${SMTP_PASSWORD}"));
        assert!(problems.is_empty(), "{problems:?}");
        let notify = config.expect("config").notify;
        let Some(ReceiverKind::Email(cfg)) = notify.receivers.first().map(|r| &r.kind) else {
            panic!("email receiver");
        };
        assert_eq!(
            cfg.password.as_ref().map(Secret::expose),
            Some("s3cret-from-env")
        );
        // (password as written, expected problem) — none may contain the value
        let rows: &[(&str, &str)] = &[
            // a literal password is refused without being repeated
            (
                "hunter2",
                "email.password: secrets are not written in the configuration",
            ),
            // an unset variable is named
            (
                "${NOPE}",
                "email.password: environment variable NOPE is not set",
            ),
            // an empty one too
            (
                "${EMPTY}",
                "email.password: environment variable EMPTY is empty",
            ),
            // a reference with text around it is not a whole reference
            (
                "x${SMTP_PASSWORD}",
                "secrets are not written in the configuration",
            ),
        ];
        for (password, expected) in rows {
            let (_, problems) = check_with_fake_env(&email(password));
            assert_eq!(problems.len(), 1, "{password}: {problems:?}");
            let line = problems.first().expect("one problem");
            assert!(line.contains(expected), "{line}");
            assert!(
                !line.contains("hunter2") && !line.contains("s3cret"),
                "{line}"
            );
        }
        // headers interpolate references anywhere in the value
        let yaml = "notify:\n  receivers:\n    - name: w\n      webhook: {url: 'https://h/x', headers: {Authorization: 'Bearer ${HOOK_TOKEN}'}}\n";
        let (config, problems) = check_with_fake_env(yaml);
        assert!(problems.is_empty(), "{problems:?}");
        let notify = config.expect("config").notify;
        let Some(ReceiverKind::Webhook(hook)) = notify.receivers.first().map(|r| &r.kind) else {
            panic!("webhook receiver");
        };
        assert_eq!(
            hook.headers,
            [("Authorization".to_string(), Secret::new("Bearer tok"))]
        );
    }

    #[test]
    fn secret_files_are_read_trimmed_and_checked() {
        let dir = std::env::temp_dir().join(format!("lookout-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("good");
        std::fs::write(&good, "pa55\r\n").expect("write");
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").expect("write");
        assert_eq!(read_secret_file(&good), Ok("pa55".to_string()));
        let err = read_secret_file(&empty).expect_err("empty");
        assert!(err.ends_with("empty") && err.contains("/empty"), "{err}");
        let err = read_secret_file(&dir.join("missing")).expect_err("missing");
        assert!(
            err.starts_with("cannot read ") && err.contains("missing"),
            "{err}"
        );
        let err = read_secret_file(&dir).expect_err("a directory");
        assert!(err.contains("not a regular file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn env_interpolation() {
        // (text, expected)
        let rows: &[(&str, Result<&str, &str>)] = &[
            // no reference
            ("plain", Ok("plain")),
            // a lone dollar is literal
            ("$5", Ok("$5")),
            // one reference inside text
            ("Bearer ${HOOK_TOKEN}", Ok("Bearer tok")),
            // two references
            ("${HOOK_TOKEN}:${HOOK_TOKEN}", Ok("tok:tok")),
            // unset
            ("${NOPE}", Err("environment variable NOPE is not set")),
            // unclosed
            ("${HOOK_TOKEN", Err("without a closing")),
            // not a name
            (
                "${1X}",
                Err("invalid environment variable reference \"${1X}\""),
            ),
        ];
        for (text, expected) in rows {
            match (interpolate_env(text, fake_env), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, _) => panic!("{text}: {got:?}"),
            }
        }
        assert_eq!(env_reference("${A_1}"), Some("A_1"));
        assert_eq!(env_reference("${}"), None);
        assert_eq!(env_reference("$A"), None);
    }

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

    #[test]
    fn kernel_hostname() {
        let cases: &[(&str, &str)] = &[
            // ordinary name
            ("web-1", "web-1"),
            // FQDN kept as is
            ("web-1.example.com", "web-1.example.com"),
            // empty UTS name
            ("", "localhost"),
            // what an unset UTS name reads as
            ("(none)", "localhost"),
            // control character
            ("bad\tname", "localhost"),
        ];
        for (kernel, expected) in cases {
            assert_eq!(hostname_from_kernel(kernel), *expected, "{kernel:?}");
        }
    }

    #[test]
    fn timeout_defaults_to_interval_when_shorter() {
        let yaml = "collect:\n  host:\n    interval: 2s\n";
        let config = crate::config::load_str(yaml, "t.yaml").expect("valid");
        assert_eq!(
            config.collect.host.schedule,
            Schedule {
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(2)
            }
        );
    }
}
