//! Property tests of the collectors' parsers of `/proc` files, cgroup files and Redis `INFO`:
//! random bytes and the captured fixtures (`tests/fixtures/proc`,
//! `tests/fixtures/proc-processes`, `tests/fixtures/cgroup`, `tests/fixtures/redis`) mutated
//! line by line and field by field. Collectors that read files run twice on a scratch proc
//! root (the second run takes the rate and ratio paths): no panic, every value they report
//! is a finite number, and a refusal is a parse error naming the file's full path (the
//! cgroup collector never refuses a file: it leaves its value out).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;

use super::cgroups::parse as cgroup_parse;
use super::cgroups::tree::CgroupGlob;
use super::cgroups::{CgroupsCollector, CgroupsConfig};
use super::cpu::CpuCollector;
use super::disk::DiskCollector;
use super::filesystem::{parse_mountinfo, select_mounts};
use super::load::LoadCollector;
use super::memory::MemoryCollector;
use super::network::NetworkCollector;
use super::process::ProcessCollector;
use super::processes::parse as processes;
use super::processes::{ProcessesCollector, ProcessesSection, Top};
use super::procfs::{ScratchProc, test_schedule, whole_names};
use super::redis::parse_info;
use super::system::SystemCollector;
use super::tcp::{TcpCounts, count_sockets, parse_diag_dump};
use super::{CollectError, Collector, ProcFs};
use crate::config::Section;
use crate::props::{self, timed};

fn fixture_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures"))
}

/// The captured versions of `rel` under `tests/fixtures/proc/{t0,t1}`.
fn captured(rel: &str) -> Vec<Vec<u8>> {
    let found: Vec<Vec<u8>> = ["t0", "t1"]
        .iter()
        .filter_map(|t| std::fs::read(fixture_dir().join("proc").join(t).join(rel)).ok())
        .collect();
    assert!(!found.is_empty(), "no fixture for {rel}");
    found
}

// ---------------------------------------------------------------------------------------
// Edits of proc files

/// A token to put where a field was: numbers of every size and sign, odd spellings,
/// separators, bytes that are not UTF-8.
fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        any::<f64>().prop_map(|f| f.to_string().into_bytes()),
        Just(b"18446744073709551616".to_vec()),
        Just(b"340282366920938463463374607431768211456".to_vec()),
        prop::sample::select(vec![
            "",
            "-",
            "0",
            "-0",
            "nan",
            "inf",
            "1e308",
            "0x10",
            "kB",
            "MB",
            ":",
            "cpu",
            "cpu0",
            "intr",
            "lo:",
            "-",
            "shared:1",
            "\\040",
            "\\",
            "00000000:1F90",
            "0A",
            "ZZ",
            "0100007F:1F90",
            "\t",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        "[ -~]{0,12}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..8),
    ]
}

/// One edit of a proc file.
#[derive(Debug, Clone)]
enum Edit {
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    /// Replaces a whitespace-separated field of a line.
    Field(Index, Index, Vec<u8>),
    /// Deletes a field of a line.
    DeleteField(Index, Index),
    InsertLine(Index, Vec<u8>),
    Truncate(Index),
    /// Sets one byte.
    Byte(Index, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => any::<Index>().prop_map(Edit::DeleteLine),
        1 => any::<Index>().prop_map(Edit::DuplicateLine),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        4 => (any::<Index>(), any::<Index>(), token()).prop_map(|(l, f, t)| Edit::Field(l, f, t)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(l, f)| Edit::DeleteField(l, f)),
        1 => (any::<Index>(), prop::collection::vec(token(), 0..6))
            .prop_map(|(i, t)| Edit::InsertLine(i, t.join(&b' '))),
        1 => any::<Index>().prop_map(Edit::Truncate),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Byte(i, b)),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 1..5)
}

/// The fields of `line` (split on spaces and tabs) and the separators between them, so
/// that a line can be put back together with one field changed.
fn split_fields(line: &[u8]) -> Vec<(bool, Vec<u8>)> {
    let mut parts: Vec<(bool, Vec<u8>)> = Vec::new();
    for &b in line {
        let field = b != b' ' && b != b'\t';
        match parts.last_mut() {
            Some((f, bytes)) if *f == field => bytes.push(b),
            _ => parts.push((field, vec![b])),
        }
    }
    parts
}

/// Replaces a field of a line of `lines` with `token`.
fn set_field(lines: &mut [Vec<u8>], line: &Index, field: &Index, token: &[u8]) {
    if lines.is_empty() {
        return;
    }
    let n = lines.len();
    let line = &mut lines[line.index(n)];
    let mut parts = split_fields(line);
    let fields: Vec<usize> = (0..parts.len()).filter(|&p| parts[p].0).collect();
    if fields.is_empty() {
        return;
    }
    parts[fields[field.index(fields.len())]].1 = token.to_vec();
    *line = parts.into_iter().flat_map(|(_, b)| b).collect();
}

fn apply(data: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    for edit in edits {
        let n = lines.len().max(1);
        match edit {
            Edit::DeleteLine(i) => {
                if lines.len() > 1 {
                    lines.remove(i.index(n));
                }
            }
            Edit::DuplicateLine(i) => {
                let at = i.index(n).min(lines.len().saturating_sub(1));
                if let Some(line) = lines.get(at).cloned() {
                    lines.insert(at, line);
                }
            }
            Edit::SwapLines(a, b) => lines.swap(a.index(n), b.index(n)),
            Edit::Field(l, f, token) => set_field(&mut lines, l, f, token),
            Edit::DeleteField(l, f) => set_field(&mut lines, l, f, &[]),
            Edit::InsertLine(i, line) => lines.insert(i.index(n), line.clone()),
            Edit::Truncate(i) => {
                let mut all = lines.join(&b'\n');
                all.truncate(i.index(all.len() + 1));
                lines = all.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            }
            Edit::Byte(i, b) => {
                let mut all = lines.join(&b'\n');
                if !all.is_empty() {
                    let at = i.index(all.len());
                    all[at] = *b;
                }
                lines = all.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            }
        }
    }
    lines.join(&b'\n')
}

/// Mutated captures of `rel`, or random bytes.
fn content(rel: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (prop::sample::select(captured(rel)), edits()).prop_map(|(d, e)| apply(&d, &e)),
        1 => prop::collection::vec(any::<u8>(), 0..400),
        1 => prop::collection::vec(token(), 0..40).prop_map(|t| t.join(&b' ')),
    ]
}

// ---------------------------------------------------------------------------------------
// Collectors on a scratch proc root

/// Runs a collector of `rel` twice on a scratch root, the captured `t0` file then `data`
/// (one second later): each run reports finite values or a parse error naming the file.
fn check_collector<C: Collector>(
    make: impl Fn(ProcFs) -> C,
    rel: &str,
    data: &[u8],
) -> Result<(), TestCaseError> {
    let scratch = ScratchProc::new("props");
    let mut collector = make(scratch.proc());
    let start = Instant::now();
    for (run, bytes) in [captured(rel).swap_remove(0), data.to_vec()]
        .iter()
        .enumerate()
    {
        scratch.write(rel, bytes);
        let now = start + Duration::from_secs(run as u64);
        match timed("collect", || collector.collect(now))? {
            Ok(samples) => {
                for s in &samples {
                    prop_assert!(
                        s.value.is_finite(),
                        "{} = {} from {:?}",
                        s.metric.name,
                        s.value,
                        String::from_utf8_lossy(bytes)
                    );
                }
            }
            Err(CollectError::Parse { path, message }) => {
                prop_assert_eq!(&path, &scratch.proc().path(rel).display().to_string());
                prop_assert!(!message.trim().is_empty());
                prop_assert!(!message.contains("procfs bug"), "{}", message);
            }
            Err(other) => prop_assert!(false, "not a parse error: {other}"),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(props::config(128))]

    #[test]
    fn cpu_reads_any_stat(data in content("stat")) {
        check_collector(|p| CpuCollector::new(p, test_schedule()), "stat", &data)?;
    }

    #[test]
    fn disk_reads_any_diskstats(data in content("diskstats")) {
        check_collector(|p| DiskCollector::new(p, test_schedule(), whole_names(&["loop\\d+"])), "diskstats", &data)?;
    }

    #[test]
    fn load_reads_any_loadavg(data in content("loadavg")) {
        check_collector(|p| LoadCollector::new(p, test_schedule()), "loadavg", &data)?;
    }

    #[test]
    fn memory_reads_any_meminfo(data in content("meminfo")) {
        check_collector(|p| MemoryCollector::new(p, test_schedule()), "meminfo", &data)?;
    }

    #[test]
    fn network_reads_any_net_dev(data in content("net/dev")) {
        check_collector(|p| NetworkCollector::new(p, test_schedule(), whole_names(&["veth.*"])), "net/dev", &data)?;
    }

    #[test]
    fn system_reads_any_uptime(data in content("uptime")) {
        check_collector(|p| SystemCollector::new(p, test_schedule()), "uptime", &data)?;
    }
}

// ---------------------------------------------------------------------------------------
// Pure parsers

/// `Err` messages of the line-based parsers start with the line they are about.
fn names_a_line(message: &str) -> bool {
    message
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
        .is_some_and(|(n, _)| n.parse::<usize>().is_ok_and(|n| n >= 1))
}

/// The live `/proc/self/stat`, the only capture of it that there is.
fn self_stat() -> Vec<Vec<u8>> {
    vec![std::fs::read("/proc/self/stat").unwrap()]
}

proptest! {
    #![proptest_config(props::config(128))]

    #[test]
    fn tcp_counts_any_proc_net_tcp(data in prop_oneof![content("net/tcp"), content("net/tcp6")]) {
        let mut counts = TcpCounts::new(&[8000, 6379]);
        if let Err(message) = timed("count_sockets", || count_sockets(&data, &mut counts))? {
            prop_assert!(names_a_line(&message), "{}", message);
        }
    }

    #[test]
    fn tcp_counts_any_sock_diag_dump(
        messages in prop::collection::vec(
            (0u32..80, prop_oneof![Just(2u16), Just(3), Just(20), Just(1), any::<u16>()], prop::collection::vec(any::<u8>(), 0..40)),
            0..6,
        ),
        cut in any::<Index>(),
    ) {
        // Netlink messages with random lengths, types and payloads, then cut anywhere.
        let mut buf = Vec::new();
        for (len, kind, payload) in &messages {
            buf.extend_from_slice(&len.to_ne_bytes());
            buf.extend_from_slice(&kind.to_ne_bytes());
            buf.extend_from_slice(&[0; 10]);
            buf.extend_from_slice(payload);
        }
        buf.truncate(cut.index(buf.len() + 1));
        let mut counts = TcpCounts::new(&[8000]);
        if let Err(message) = timed("parse_diag_dump", || parse_diag_dump(&buf, &mut counts))? {
            prop_assert!(!message.trim().is_empty());
        }
    }

    #[test]
    fn mountinfo_parses_any_content(
        data in prop_oneof![content("1/mountinfo")],
        excludes in prop::collection::vec("[a-z/.*()?|]{0,10}", 0..3),
    ) {
        match timed("parse_mountinfo", || parse_mountinfo(&data))? {
            Ok(mounts) => {
                let patterns: Vec<regex::Regex> = excludes
                    .iter()
                    .filter_map(|p| regex::Regex::new(&format!("^(?:{p})$")).ok())
                    .collect();
                let count = mounts.len();
                let selected = timed("select_mounts", || {
                    select_mounts(mounts, &["tmpfs".to_string()], &patterns)
                })?;
                prop_assert!(selected.len() <= count);
            }
            Err(message) => prop_assert!(names_a_line(&message), "{}", message),
        }
    }

    #[test]
    fn process_reads_any_self_stat(
        data in prop_oneof![
            4 => (prop::sample::select(self_stat()), edits()).prop_map(|(d, e)| apply(&d, &e)),
            1 => prop::collection::vec(any::<u8>(), 0..300),
        ],
    ) {
        let collector = ProcessCollector::new(test_schedule());
        match timed("process parse", || collector.parse(&data))? {
            Ok(samples) => {
                for s in &samples {
                    prop_assert!(s.value.is_finite(), "{} = {}", s.metric.name, s.value);
                }
            }
            Err(message) => prop_assert!(!message.trim().is_empty()),
        }
    }

    #[test]
    fn redis_info_parses_or_names_the_field(
        data in prop_oneof![
            4 => (prop::sample::select(redis_infos()), edits())
                .prop_map(|(d, e)| String::from_utf8_lossy(&apply(&d, &e)).into_owned()),
            1 => any::<String>(),
            1 => "([a-z_]{1,12}:[0-9a-z.]{0,8}\r?\n){0,30}",
        ],
    ) {
        if let Err(message) = timed("parse_info", || parse_info(&data))? {
            prop_assert!(
                message.starts_with("INFO has no `") || message.starts_with("INFO field `"),
                "does not name the field: {}",
                message
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// The processes collector

/// The captured `rel` of every process under `tests/fixtures/proc-processes` that has it
/// (`stat`, `status`, `limits`, `cmdline`), or the host-wide file `rel` there.
fn captured_processes(rel: &str) -> Vec<Vec<u8>> {
    let root = fixture_dir().join("proc-processes");
    let mut found: Vec<Vec<u8>> = ["1", "2", "26065", "26067", "26109"]
        .iter()
        .filter_map(|pid| std::fs::read(root.join(pid).join(rel)).ok())
        .collect();
    found.extend(std::fs::read(root.join(rel)));
    assert!(!found.is_empty(), "no fixture for {rel}");
    found
}

/// Mutated captures of a processes fixture `rel`, or random bytes.
fn processes_content(rel: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (prop::sample::select(captured_processes(rel)), edits()).prop_map(|(d, e)| apply(&d, &e)),
        1 => prop::collection::vec(any::<u8>(), 0..400),
        1 => prop::collection::vec(token(), 0..40).prop_map(|t| t.join(&b' ')),
    ]
}

proptest! {
    #![proptest_config(props::config(128))]

    #[test]
    fn processes_parsers_read_any_content(
        stat in processes_content("stat"),
        status in processes_content("status"),
        limits in processes_content("limits"),
        cmdline in processes_content("cmdline"),
        name in "[a-z() -]{0,20}",
    ) {
        if let Ok(fields) = timed("parse_stat", || processes::parse_stat(&stat))? {
            prop_assert!(fields.comm.len() <= stat.len());
            let comm = fields.comm.to_vec();
            timed("exe_matches", || processes::exe_matches(name.as_bytes(), &comm, &cmdline, Some(&stat)))?;
        } else if let Err(message) = processes::parse_stat(&stat) {
            prop_assert!(!message.trim().is_empty());
        }
        if let Err(message) = timed("parse_status_euid", || processes::parse_status_euid(&status))? {
            prop_assert!(!message.trim().is_empty());
        }
        if let Err(message) = timed("parse_limits_nofile", || processes::parse_limits_nofile(&limits))? {
            prop_assert!(!message.trim().is_empty());
        }
        let mut joined = String::new();
        timed("join_cmdline", || processes::join_cmdline(&cmdline, &mut joined))?;
        prop_assert!(!joined.contains('\0'));
        let shown = processes::shown_cmdline(&joined);
        prop_assert!(shown.chars().count() <= processes::SHOWN_CMDLINE_CHARS + 1);
        prop_assert!(!shown.chars().any(char::is_control), "{:?}", shown);
        prop_assert!(!processes::shown_comm(&stat).chars().any(char::is_control));
        for host in [&stat, &status] {
            if let Err(message) = timed("parse_host_stat", || processes::parse_host_stat(host))? {
                prop_assert!(!message.trim().is_empty());
            }
            if let Err(message) = timed("parse_uptime_ticks", || processes::parse_uptime_ticks(host, 100))? {
                prop_assert!(!message.trim().is_empty());
            }
            let _ = processes::parse_pidfile(host);
            let _ = processes::passwd_uid(host, &name);
            let _ = processes::passwd_name(host, 0);
        }
    }

    #[test]
    fn the_processes_collector_skips_odd_processes(
        stat in processes_content("stat"),
        status in processes_content("status"),
        limits in processes_content("limits"),
        cmdline in processes_content("cmdline"),
    ) {
        // Two processes: one as captured, one with the odd files. Whatever they hold, the
        // run succeeds (a process that cannot be read is skipped) with finite values.
        let scratch = ScratchProc::new("props-processes");
        let root = fixture_dir().join("proc-processes");
        for rel in ["stat", "uptime", "26067/stat", "26067/status", "26067/limits", "26067/cmdline"] {
            scratch.write(rel, &std::fs::read(root.join(rel)).unwrap());
        }
        for (file, data) in [("stat", &stat), ("status", &status), ("limits", &limits), ("cmdline", &cmdline)] {
            scratch.write(&format!("4242/{file}"), data);
        }
        let config = crate::config::check_section::<ProcessesSection>(
            "top: 5\ngroups:\n  - {name: a, match: {cmdline: worker, user: '0'}, max_memory: 1MiB}\n  - {name: b, match: {exe: lookout-long-sleeper-name}}\n",
            "collect.processes",
        )
        .unwrap();
        let top = std::sync::Arc::new(Top::new());
        top.configure(true, 5, config.schedule.interval);
        let mut collector = ProcessesCollector::new(scratch.proc(), scratch.proc().root().to_path_buf(), &config, top);
        let start = Instant::now();
        for run in 0..2 {
            let samples = timed("processes collect", || collector.collect(start + Duration::from_secs(run)))?;
            prop_assert!(samples.is_ok(), "{:?}", samples.err());
            for s in samples.unwrap_or_default() {
                prop_assert!(s.value.is_finite(), "{} = {}", s.metric.name, s.value);
            }
        }
    }

    #[test]
    fn the_processes_collector_names_an_odd_host_file(
        which in prop::sample::select(vec!["stat", "uptime"]),
        data in prop_oneof![processes_content("stat"), processes_content("uptime")],
    ) {
        let scratch = ScratchProc::new("props-processes-host");
        let root = fixture_dir().join("proc-processes");
        for rel in ["stat", "uptime", "26067/stat"] {
            scratch.write(rel, &std::fs::read(root.join(rel)).unwrap());
        }
        scratch.write(which, &data);
        let config = ProcessesSection::builtin();
        let mut collector = ProcessesCollector::new(scratch.proc(), scratch.proc().root().to_path_buf(), &config, std::sync::Arc::new(Top::new()));
        match timed("processes collect", || collector.collect(Instant::now()))? {
            Ok(samples) => prop_assert!(samples.iter().all(|s| s.value.is_finite())),
            Err(CollectError::Parse { path, message }) => {
                prop_assert_eq!(&path, &scratch.proc().path(which).display().to_string());
                prop_assert!(!message.trim().is_empty());
            }
            Err(other) => prop_assert!(false, "not a parse error: {other}"),
        }
    }
}

/// The captured `INFO` replies.
fn redis_infos() -> Vec<Vec<u8>> {
    ["info-master.txt", "info-replica.txt"]
        .iter()
        .map(|f| std::fs::read(fixture_dir().join("redis").join(f)).unwrap())
        .collect()
}

#[test]
fn fields_split_and_join_back() {
    let line = b"cpu  10 20\t30";
    let parts = split_fields(line);
    let fields: Vec<&[u8]> = parts
        .iter()
        .filter(|p| p.0)
        .map(|p| p.1.as_slice())
        .collect();
    assert_eq!(fields, [&b"cpu"[..], b"10", b"20", b"30"]);
    let joined: Vec<u8> = parts.into_iter().flat_map(|(_, b)| b).collect();
    assert_eq!(joined, line);
}

// ---------------------------------------------------------------------------------------
// cgroups

/// The captured and hand-written cgroup files named `file` (`tests/fixtures/cgroup`).
fn cgroup_files(file: &str) -> Vec<Vec<u8>> {
    let found: Vec<Vec<u8>> = [
        "captured/memory",
        "captured/memory-oom",
        "captured/memory-root",
        "captured/cpuacct",
        "captured/pids",
        "captured/unified",
        "captured/unified-root",
        "v2-memory/limited",
        "v2-memory/unlimited",
        "v2-memory/oom",
    ]
    .iter()
    .filter_map(|dir| std::fs::read(fixture_dir().join("cgroup").join(dir).join(file)).ok())
    .collect();
    assert!(!found.is_empty(), "no cgroup fixture {file}");
    found
}

/// Mutated cgroup files named one of `files`, or random bytes.
fn cgroup_content(files: &[&str]) -> impl Strategy<Value = Vec<u8>> {
    let captured: Vec<Vec<u8>> = files.iter().flat_map(|f| cgroup_files(f)).collect();
    prop_oneof![
        4 => (prop::sample::select(captured), edits()).prop_map(|(d, e)| apply(&d, &e)),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => prop::collection::vec(token(), 0..12).prop_map(|t| t.join(&b' ')),
    ]
}

proptest! {
    #![proptest_config(props::config(128))]

    #[test]
    fn cgroup_single_values_parse_or_say_why(
        data in cgroup_content(&[
            "cpuacct.usage",
            "memory.usage_in_bytes",
            "memory.current",
            "pids.current",
            "memory.limit_in_bytes",
            "memory.max",
        ]),
        page in prop_oneof![Just(0u64), Just(4096), Just(65536), any::<u64>()],
    ) {
        if let Err(message) = timed("single_number", || cgroup_parse::single_number(&data))? {
            prop_assert!(
                message.starts_with("empty") || message.starts_with("expected a whole number"),
                "{}",
                message
            );
        }
        match timed("memory_limit", || cgroup_parse::memory_limit(&data, page))? {
            Ok(Some(limit)) => prop_assert!(limit < cgroup_parse::unlimited_from(page)),
            Ok(None) => {}
            Err(message) => prop_assert!(!message.trim().is_empty()),
        }
    }

    #[test]
    fn cgroup_flat_keyed_files_parse_or_name_the_line(
        data in cgroup_content(&["memory.stat", "memory.events", "memory.oom_control", "cpu.stat"]),
        key in prop::sample::select(vec![
            "total_inactive_file", "inactive_file", "oom_kill", "usage_usec", "cache",
        ]),
    ) {
        if let Err(message) = timed("flat_keyed", || cgroup_parse::flat_keyed(&data, key))? {
            prop_assert!(names_a_line(&message), "{}", message);
            prop_assert!(message.contains(key), "{}", message);
        }
        let lines = timed("count_lines", || cgroup_parse::count_lines(&data))?;
        prop_assert!(lines <= data.len() as u64);
    }

    #[test]
    fn cgroup_collector_reads_any_files(
        stat in cgroup_content(&["memory.stat"]),
        usage in cgroup_content(&["memory.usage_in_bytes", "memory.current"]),
        limit in cgroup_content(&["memory.limit_in_bytes", "memory.max"]),
        cpu in cgroup_content(&["cpuacct.usage", "cpu.stat"]),
        procs in cgroup_content(&["cgroup.procs"]),
    ) {
        // A v1 cgroup in memory and cpuacct, run twice: the captured files, then these.
        let scratch = ScratchProc::new("props-cgroups");
        let config = CgroupsConfig {
            enabled: true,
            schedule: test_schedule(),
            root: scratch.proc().root().to_path_buf(),
            include: vec![CgroupGlob::new("*").unwrap()],
            exclude: Vec::new(),
            max_cgroups: 10,
        };
        let mut collector = CgroupsCollector::new(&config, super::procfs::fixture("t0"));
        let hierarchies = [("memory", "memory.usage_in_bytes"), ("cpuacct", "cpuacct.usage")];
        for (hierarchy, marker) in hierarchies {
            scratch.write(&format!("{hierarchy}/cgroup.procs"), b"");
            scratch.write(&format!("{hierarchy}/{marker}"), b"1\n");
        }
        let start = Instant::now();
        for (run, files) in [
            [
                cgroup_files("memory.stat").swap_remove(0),
                cgroup_files("memory.usage_in_bytes").swap_remove(0),
                cgroup_files("memory.limit_in_bytes").swap_remove(0),
                cgroup_files("cpuacct.usage").swap_remove(0),
                cgroup_files("cgroup.procs").swap_remove(0),
            ],
            [stat.clone(), usage.clone(), limit.clone(), cpu.clone(), procs.clone()],
        ]
        .iter()
        .enumerate()
        {
            let [stat, usage, limit, cpu, procs] = files;
            scratch.write("memory/x/memory.stat", stat);
            scratch.write("memory/x/memory.usage_in_bytes", usage);
            scratch.write("memory/x/memory.limit_in_bytes", limit);
            scratch.write("memory/x/memory.oom_control", stat);
            scratch.write("memory/x/cgroup.procs", procs);
            scratch.write("cpuacct/x/cpuacct.usage", cpu);
            let now = start + Duration::from_secs(run as u64 + 1);
            let samples = timed("cgroups collect", || collector.collect(now))?
                .map_err(|e| TestCaseError::fail(format!("the run failed: {e}")))?;
            for s in &samples {
                prop_assert!(
                    s.value.is_finite() && s.value >= 0.0,
                    "{} = {}",
                    s.metric.name,
                    s.value
                );
            }
        }
    }
}
