//! Turns the raw tree ([`raw`](super::raw)) into the typed [`Config`], collecting every
//! problem instead of stopping at the first.
//!
//! Each problem names its key path (`collect.tcp.ports[2]`) and, when the value came from the
//! file, its line and column. The defaults live here, once: [`builtin`] is exactly what an
//! empty document validates to. [`parse_duration`] is the one duration syntax of the agent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde_saphyr::{Location, Spanned};

use super::raw::{RawAgent, RawCollect, RawConfig, RawHost, RawTcp, Text};
use super::yaml::Problem;
use super::{AgentConfig, CollectConfig, Config, HostConfig, Schedule, TcpConfig};

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

/// Path shown for a problem about the document as a whole.
pub const ROOT_PATH: &str = "<root>";

/// The built-in configuration: exactly what an empty document validates to.
pub fn builtin() -> Config {
    Checker::new("<builtin>", &[])
        .config(&RawConfig::default())
        .0
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
    let (config, problems) = Checker::new(file, neutralized).config(raw);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
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
}

impl<'a> Checker<'a> {
    fn new(file: &'a str, neutralized: &'a [String]) -> Self {
        Checker {
            file,
            neutralized,
            problems: Vec::new(),
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

    fn config(mut self, raw: &RawConfig) -> (Config, Vec<Problem>) {
        let agent = self.agent(raw.agent.as_ref().unwrap_or(&RawAgent::default()));
        let no_collect = RawCollect::default();
        let collect = raw.collect.as_ref().unwrap_or(&no_collect);
        let host = self.host(collect.host.as_ref().unwrap_or(&RawHost::default()));
        let tcp = self.tcp(collect.tcp.as_ref().unwrap_or(&RawTcp::default()));
        let config = Config {
            agent,
            collect: CollectConfig { host, tcp },
            source: None,
        };
        (config, self.problems)
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

    fn tcp(&mut self, raw: &RawTcp) -> TcpConfig {
        TcpConfig {
            enabled: raw.enabled.unwrap_or(true),
            schedule: self.schedule("collect.tcp", raw.interval.as_ref(), raw.timeout.as_ref()),
            ports: self.ports("collect.tcp.ports", raw.ports.as_deref()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let (_, problems) = Checker::new("t", &[]).config(&RawConfig::default());
        assert!(problems.is_empty(), "{problems:?}");
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
