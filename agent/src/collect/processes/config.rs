//! The `collect.processes` section: what the configuration file says about the processes
//! collector (named groups, the top-N), checked with every problem's path.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::parse::passwd_uid;
use crate::collect::{Schedule, check_schedule};
use crate::config::units::{parse_size, regex_reason};
use crate::config::{Checker, Section, Text};

/// Most groups: each is matched against every process on every run.
pub const MAX_GROUPS: usize = 100;
/// Default `collect.processes.top`.
pub const DEFAULT_TOP: usize = 10;
/// Largest `collect.processes.top`.
pub const MAX_TOP: usize = 100;
/// Largest `min_count` of a group.
pub const MAX_MIN_COUNT: u64 = 1_000_000;
/// Longest program name `exe` accepts (a file name: `NAME_MAX`).
pub const MAX_EXE_LEN: usize = 255;
/// Where user names are looked up, under `agent.rootfs`.
pub const PASSWD: &str = "etc/passwd";
/// Largest passwd file read.
pub const MAX_PASSWD_BYTES: u64 = 4 << 20;

/// `collect.processes` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProcesses {
    /// Whether the processes collector runs; absent: `true`.
    pub enabled: Option<bool>,
    /// Time between runs; absent: `10s`.
    pub interval: Option<Text>,
    /// Longest a run may take; absent: the smaller of `5s` and the interval.
    pub timeout: Option<Text>,
    /// Named groups of processes, each exported with a `group` label; absent: none.
    pub groups: Option<Vec<Spanned<RawGroup>>>,
    /// Processes listed by CPU and by memory for the API and the console (0: none);
    /// absent: 10.
    pub top: Option<Spanned<i64>>,
}

/// One entry of `collect.processes.groups`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    /// The group's name, its `group` label; required, unique.
    pub name: Option<Text>,
    /// Which processes are members; required, with at least one key.
    #[serde(rename = "match")]
    pub matcher: Option<Spanned<RawMatch>>,
    /// Members needed for the group to be up; absent: 1.
    pub min_count: Option<Spanned<i64>>,
    /// Resident memory the members may use together, a size such as `500MiB`; absent: no
    /// memory ratio is exported.
    pub max_memory: Option<Text>,
}

/// `match` of a group: every key given must hold for a process to be a member.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// The program's name (`nginx`, not a path); absent: any program.
    pub exe: Option<Text>,
    /// A regular expression searched for in the command line (arguments joined by
    /// spaces); absent: any command line.
    pub cmdline: Option<Text>,
    /// A file holding the one member's pid, read on every run; absent: any pid.
    pub pidfile: Option<Text>,
    /// A user name or numeric uid the process runs as (its effective uid); absent: any.
    pub user: Option<Text>,
}

/// Whom a group's processes run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserMatch {
    /// This uid.
    Uid(u32),
    /// The uid of this name, not looked up yet ([`resolve_users`] does, with the
    /// configured root; the collector's build does otherwise).
    Name(String),
}

/// One checked group.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// The `group` label.
    pub name: String,
    /// Program name compared with the command name (and, when that is cut, the first
    /// argument and the executable).
    pub exe: Option<String>,
    /// Searched for in the command line.
    pub cmdline: Option<Regex>,
    /// File holding the one member's pid.
    pub pidfile: Option<PathBuf>,
    /// Effective user of the members.
    pub user: Option<UserMatch>,
    /// Members needed for `lookout_process_group_up` to be 1.
    pub min_count: u64,
    /// Bytes `lookout_process_group_memory_usage_ratio` divides by.
    pub max_memory: Option<u64>,
}

/// `collect.processes`: named process groups and the top-N.
#[derive(Debug, Clone)]
pub struct ProcessesConfig {
    /// Whether the collector runs at all.
    pub enabled: bool,
    /// Its schedule.
    pub schedule: Schedule,
    /// The groups, in file order.
    pub groups: Vec<GroupConfig>,
    /// How many processes the top-N lists hold (0: none kept).
    pub top: usize,
}

/// The `collect.processes` section.
#[derive(Debug)]
pub struct ProcessesSection;

impl Section for ProcessesSection {
    type Raw = RawProcesses;
    type Value = ProcessesConfig;

    const DEFAULTS: &'static str = DEFAULTS_YAML;

    fn check(raw: &RawProcesses, path: &str, c: &mut Checker<'_>) -> ProcessesConfig {
        let schedule = check_schedule(c, path, raw.interval.as_ref(), raw.timeout.as_ref());
        let groups_path = format!("{path}.groups");
        let list = raw.groups.as_deref().unwrap_or_default();
        if let Some(extra) = list.get(MAX_GROUPS) {
            c.report(
                &format!("{groups_path}[{MAX_GROUPS}]"),
                Some(&extra.referenced),
                format!(
                    "{} groups, more than {MAX_GROUPS}: each group is matched against every process on every run",
                    list.len()
                ),
            );
        }
        let groups = c.named_entries(
            &groups_path,
            list.get(..MAX_GROUPS).unwrap_or(list),
            "process group",
            |g: &RawGroup| g.name.as_ref(),
            check_group,
        );
        let top = c.count(
            &format!("{path}.top"),
            raw.top.as_ref(),
            DEFAULT_TOP as u64,
            0..=MAX_TOP as u64,
        );
        ProcessesConfig {
            enabled: raw.enabled.unwrap_or(true),
            schedule,
            groups,
            top: usize::try_from(top).unwrap_or(DEFAULT_TOP),
        }
    }
}

/// Whether `name` is made of letters, digits, `_`, `.` and `-` only.
fn is_group_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Checks one group whose name was checked (`None`: invalid, reported).
fn check_group(
    c: &mut Checker<'_>,
    base: &str,
    item: &Spanned<RawGroup>,
    name: Option<String>,
) -> Option<GroupConfig> {
    let raw = &item.value;
    let mut valid = name.is_some();
    if let (Some(name), Some(text)) = (&name, &raw.name)
        && !is_group_name(name)
    {
        c.report(
            &format!("{base}.name"),
            Some(&text.referenced),
            format!("{name:?}: use letters, digits, `_`, `.` and `-` only"),
        );
        valid = false;
    }
    let matcher = c.required(
        base,
        &item.referenced,
        "match",
        raw.matcher.as_ref(),
        "exe, cmdline, pidfile and/or user",
    );
    let mut group = GroupConfig {
        name: name.unwrap_or_default(),
        exe: None,
        cmdline: None,
        pidfile: None,
        user: None,
        min_count: c.count(
            &format!("{base}.min_count"),
            raw.min_count.as_ref(),
            1,
            0..=MAX_MIN_COUNT,
        ),
        max_memory: None,
    };
    if let Some(text) = &raw.max_memory {
        match parse_size(text.value.trim()) {
            Ok(0) => {
                c.report(
                    &format!("{base}.max_memory"),
                    Some(&text.referenced),
                    "must be more than 0 (remove the key for no memory ratio)",
                );
                valid = false;
            }
            Ok(bytes) => group.max_memory = Some(bytes),
            Err(why) => {
                c.report(&format!("{base}.max_memory"), Some(&text.referenced), why);
                valid = false;
            }
        }
    }
    let matcher = matcher?;
    let m = &matcher.value;
    let at = format!("{base}.match");
    if m.exe.is_none() && m.cmdline.is_none() && m.pidfile.is_none() && m.user.is_none() {
        c.report(
            &at,
            Some(&matcher.referenced),
            "give at least one of exe, cmdline, pidfile and user",
        );
        return None;
    }
    if let Some(text) = &m.exe {
        let exe = text.value.as_str();
        let why = if exe.is_empty() {
            Some("must not be empty".to_string())
        } else if exe.contains('/') {
            Some(format!(
                "{exe:?} is a path: give the program's name ({:?})",
                exe.rsplit('/').next().unwrap_or_default()
            ))
        } else if exe.len() > MAX_EXE_LEN || exe.chars().any(char::is_control) {
            Some(format!(
                "must be a file name: at most {MAX_EXE_LEN} bytes, no control characters"
            ))
        } else {
            None
        };
        match why {
            Some(why) => {
                c.report(&format!("{at}.exe"), Some(&text.referenced), why);
                valid = false;
            }
            None => group.exe = Some(exe.to_string()),
        }
    }
    if let Some(text) = &m.cmdline {
        let path = format!("{at}.cmdline");
        if text.value.is_empty() {
            c.report(&path, Some(&text.referenced), "must not be empty");
            valid = false;
        } else {
            match Regex::new(&text.value) {
                Ok(regex) => group.cmdline = Some(regex),
                Err(e) => {
                    c.report(
                        &path,
                        Some(&text.referenced),
                        format!("invalid regex {:?}: {}", text.value, regex_reason(&e)),
                    );
                    valid = false;
                }
            }
        }
    }
    if let Some(text) = &m.pidfile {
        let path = format!("{at}.pidfile");
        // Reported by `absolute_path` when it is not absolute.
        let file = c.absolute_path(&path, text);
        if file.is_absolute() {
            group.pidfile = Some(file);
        } else {
            valid = false;
        }
    }
    if let Some(text) = &m.user {
        match user_match(&text.value) {
            Ok(user) => group.user = Some(user),
            Err(why) => {
                c.report(&format!("{at}.user"), Some(&text.referenced), why);
                valid = false;
            }
        }
    }
    valid.then_some(group)
}

/// A `user` as written: a uid (all digits) or a user name.
fn user_match(text: &str) -> Result<UserMatch, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u32>()
            .map(UserMatch::Uid)
            .map_err(|_| format!("uid {text} is out of range"));
    }
    if text.is_empty()
        || text.len() > 256
        || text
            .chars()
            .any(|ch| ch == ':' || ch.is_whitespace() || ch.is_control())
    {
        return Err(format!(
            "{text:?} is neither a uid nor a user name (no spaces, `:` or control characters)"
        ));
    }
    Ok(UserMatch::Name(text.to_string()))
}

/// Looks the user names of `config`'s groups up in `etc/passwd` under `rootfs` (the
/// configured root: the host's files when the agent runs in a container), reporting a name
/// that is not there, or a passwd file that cannot be read, at the group's `match.user`
/// (positions from `raw`, the section as read; `path` is the section's key path). Uids
/// given as numbers need nothing.
pub fn resolve_users(
    config: &mut ProcessesConfig,
    raw: Option<&RawProcesses>,
    path: &str,
    rootfs: &Path,
    c: &mut Checker<'_>,
) {
    if !config
        .groups
        .iter()
        .any(|g| matches!(g.user, Some(UserMatch::Name(_))))
    {
        return;
    }
    let file = rootfs.join(PASSWD);
    let passwd = read_passwd(&file);
    let raw_groups = raw.and_then(|r| r.groups.as_deref()).unwrap_or_default();
    for group in &mut config.groups {
        let Some(UserMatch::Name(name)) = &group.user else {
            continue;
        };
        // The raw entry of this group: names are unique, so its name finds it.
        let found = raw_groups.iter().enumerate().find(|(_, g)| {
            g.value.name.as_ref().map(|n| n.value.as_str()) == Some(group.name.as_str())
        });
        let (index, at) = match found {
            Some((i, g)) => (
                i,
                g.value
                    .matcher
                    .as_ref()
                    .and_then(|m| m.value.user.as_ref())
                    .map(|u| &u.referenced),
            ),
            None => (0, None),
        };
        let key = format!("{path}.groups[{index}].match.user");
        match &passwd {
            Ok(text) => match passwd_uid(text, name) {
                Some(uid) => group.user = Some(UserMatch::Uid(uid)),
                None => c.report(
                    &key,
                    at,
                    format!(
                        "unknown user {name:?}: not in {} (give the numeric uid instead)",
                        file.display()
                    ),
                ),
            },
            Err(why) => c.report(
                &key,
                at,
                format!("cannot look user {name:?} up: {why} (give the numeric uid instead)"),
            ),
        }
    }
}

/// The passwd file at `file`, at most [`MAX_PASSWD_BYTES`].
pub fn read_passwd(file: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let opened = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut text = Vec::new();
    opened
        .take(MAX_PASSWD_BYTES)
        .read_to_end(&mut text)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(text)
}

/// `lookout config default`'s text for this section.
const DEFAULTS_YAML: &str = r#"# Named groups of processes (lookout_process_group_*) and the top processes by CPU and
# by memory (GET /api/v1/processes/top and the console; not on /metrics).
# Every key of a group:
#   - name: api                      # required, unique; the `group` label
#                                    # (letters, digits, _ . -)
#     match:                         # required; every key given must hold:
#       exe: uvicorn                 #   the program's name (not a path)
#       cmdline: "uvicorn .*app:main"  # regex searched in the arguments joined by spaces
#       pidfile: /run/api.pid        #   the one process whose pid the file holds
#       user: app                    #   user name or uid (effective uid)
#     min_count: 1                   # fewer members: lookout_process_group_up is 0
#     max_memory: 500MiB             # members' resident memory together may reach this
#                                    # (lookout_process_group_memory_usage_ratio);
#                                    # left out: no memory ratio
processes:
  # false: no group is watched and the top-N is off.
  enabled: true
  # Time between runs: from 1s to 1h.
  interval: 10s
  # Longest a run may take: more than 0, at most the interval.
  # Left out: the smaller of 5s and the interval.
  timeout: 5s
  # At most 100 groups.
  groups: []
  # Processes kept in each top list (by CPU, by memory), 0-100; 0 turns the lists off.
  top: 10
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check_section;

    fn check(text: &str) -> Result<ProcessesConfig, Vec<String>> {
        check_section::<ProcessesSection>(text, "collect.processes")
            .map_err(|p| p.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn builtin_defaults() {
        // `lookout config default` shows the same (settings' tests hold the whole file to
        // the built-in configuration).
        let builtin = ProcessesSection::builtin();
        assert!(builtin.enabled);
        assert_eq!((builtin.top, builtin.groups.len()), (DEFAULT_TOP, 0));
        assert_eq!(builtin.schedule.interval, crate::collect::DEFAULT_INTERVAL);
    }

    #[test]
    fn a_full_group() {
        let config = check(
            "interval: 1s\ntop: 0\ngroups:\n  - {name: api, match: {cmdline: \"uvicorn .*app:main\"}, min_count: 2, max_memory: 500MiB}\n  - name: worker.celery-1\n    match: {exe: celery, user: \"1000\", pidfile: /run/w.pid}\n",
        )
        .unwrap();
        assert_eq!(config.top, 0);
        let api = &config.groups[0];
        assert_eq!(api.name, "api");
        assert!(
            api.cmdline
                .as_ref()
                .unwrap()
                .is_match("python -m uvicorn x.app:main --port 8000")
        );
        assert_eq!((api.min_count, api.max_memory), (2, Some(500 << 20)));
        let worker = &config.groups[1];
        assert_eq!(worker.exe.as_deref(), Some("celery"));
        assert_eq!(worker.user, Some(UserMatch::Uid(1000)));
        assert_eq!(worker.pidfile, Some(PathBuf::from("/run/w.pid")));
        assert_eq!((worker.min_count, worker.max_memory), (1, None));
        // a user name is looked up later
        let named = check("groups:\n  - {name: w, match: {user: app}}\n").unwrap();
        assert_eq!(named.groups[0].user, Some(UserMatch::Name("app".into())));
        // a number written as YAML number
        let numeric = check("groups:\n  - {name: w, match: {user: 0}}\n").unwrap();
        assert_eq!(numeric.groups[0].user, Some(UserMatch::Uid(0)));
    }

    #[test]
    fn every_problem_with_its_path() {
        let problems = check(
            "top: 101\ngroups:\n  - {name: a, match: {cmdline: \"(unclosed\"}}\n  - {name: a, match: {exe: celery}}\n  - {name: \"b c\", match: {exe: /usr/bin/celery}}\n  - {name: d}\n  - {name: e, match: {}}\n  - {name: f, match: {pidfile: run/f.pid, user: \"a:b\"}, max_memory: 0}\n  - {name: g, match: {exe: x}, max_memory: 5XB, min_count: -1}\n",
        )
        .unwrap_err();
        let want = [
            "collect.processes.groups[0].match.cmdline: invalid regex \"(unclosed\": unclosed group",
            "collect.processes.groups[1].name: duplicate process group name \"a\" (already at collect.processes.groups[0])",
            "collect.processes.groups[2].name: \"b c\": use letters, digits, `_`, `.` and `-` only",
            "collect.processes.groups[2].match.exe: \"/usr/bin/celery\" is a path: give the program's name (\"celery\")",
            "collect.processes.groups[3]: `match` is required (exe, cmdline, pidfile and/or user)",
            "collect.processes.groups[4].match: give at least one of exe, cmdline, pidfile and user",
            "collect.processes.groups[5].max_memory: must be more than 0",
            "collect.processes.groups[5].match.pidfile: must be an absolute path, got \"run/f.pid\"",
            "collect.processes.groups[5].match.user: \"a:b\" is neither a uid nor a user name",
            "collect.processes.groups[6].min_count: -1 is out of range: must be between 0 and 1000000",
            "collect.processes.groups[6].max_memory: invalid size \"5XB\"",
            "collect.processes.top: 101 is out of range: must be between 0 and 100",
        ];
        for w in want {
            assert!(
                problems.iter().any(|p| p.contains(w)),
                "missing {w:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), want.len(), "{problems:#?}");
        // positions: the bad regex is on line 3
        let regex = problems
            .iter()
            .find(|p| p.contains("invalid regex"))
            .unwrap();
        assert!(regex.starts_with("collect.processes:3:"), "{regex}");
    }

    #[test]
    fn at_most_100_groups() {
        let mut text = String::from("groups:\n");
        for i in 0..=MAX_GROUPS {
            text.push_str(&format!("  - {{name: g{i}, match: {{exe: x}}}}\n"));
        }
        let problems = check(&text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("collect.processes.groups[100]: 101 groups, more than 100"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn user_names_are_looked_up_under_the_root() {
        let dir = std::env::temp_dir().join(format!("lookout-passwd-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        let text = "groups:\n  - {name: w, match: {user: app}}\n  - {name: n, match: {user: nosuch}}\n  - {name: u, match: {user: \"7\"}}\n";
        let raw: RawProcesses = serde_saphyr::from_str(text).unwrap();
        let mut checker = Checker::new("lookout.yaml", &[]);
        let mut config = ProcessesSection::check(&raw, "collect.processes", &mut checker);
        resolve_users(
            &mut config,
            Some(&raw),
            "collect.processes",
            &dir,
            &mut checker,
        );
        assert_eq!(config.groups[0].user, Some(UserMatch::Uid(1000)));
        assert_eq!(config.groups[2].user, Some(UserMatch::Uid(7)));
        let problems: Vec<String> = checker
            .into_problems()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("lookout.yaml:3:")
                && problems[0].contains(
                    "collect.processes.groups[1].match.user: unknown user \"nosuch\": not in "
                )
                && problems[0].contains("give the numeric uid instead"),
            "{}",
            problems[0]
        );
        // no passwd file: said so
        let mut checker = Checker::new("lookout.yaml", &[]);
        let mut config = ProcessesSection::check(&raw, "collect.processes", &mut checker);
        resolve_users(
            &mut config,
            Some(&raw),
            "collect.processes",
            &dir.join("none"),
            &mut checker,
        );
        let problems = checker.into_problems();
        assert_eq!(problems.len(), 2);
        assert!(
            problems[0].message.contains("cannot look user \"app\" up"),
            "{}",
            problems[0]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
