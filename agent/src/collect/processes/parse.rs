//! Pure parsers of the per-process files the processes collector reads: `<pid>/stat`,
//! `<pid>/status` (the user ids), `<pid>/limits` (the open files limit), `<pid>/cmdline`,
//! and the host-wide `stat` (boot time, online CPUs) and `uptime`, plus pid files and
//! `/etc/passwd`.
//!
//! Each takes the bytes of one file and allocates nothing proportional to its size: they
//! run for every process on every run.

/// Longest `comm` the kernel keeps (`TASK_COMM_LEN` - 1).
pub const COMM_LEN: usize = 15;

/// The fields of `<pid>/stat` the collector uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFields<'a> {
    /// Field 1: the process id.
    pub pid: u32,
    /// Field 2 without its parentheses: the executable name, cut by the kernel to 15 bytes
    /// (the process may change it).
    pub comm: &'a [u8],
    /// Field 3: `R`, `S`, `D`, `Z`...
    pub state: u8,
    /// Field 9 holds `PF_KTHREAD`: a kernel thread, whose command line is always empty.
    pub kernel_thread: bool,
    /// Fields 14 and 15: user and system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Field 20: threads.
    pub threads: u64,
    /// Field 22: when the process started, in clock ticks after boot.
    pub start_ticks: u64,
    /// Field 24: resident set size, in pages.
    pub rss_pages: u64,
}

/// A decimal number of `text` (digits only, no sign); `None` if empty, not all digits, or
/// over `u64`.
fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &d| {
        if d.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// A decimal that may carry a minus sign (the kernel prints some `long` fields signed);
/// negative values read as 0.
fn decimal_or_negative(text: &[u8]) -> Option<u64> {
    match text.strip_prefix(b"-") {
        Some(rest) => decimal(rest).map(|_| 0),
        None => decimal(text),
    }
}

/// The `flags` bit of a kernel thread (`include/linux/sched.h`).
const PF_KTHREAD: u64 = 0x0020_0000;

/// Parses `<pid>/stat`: `pid (comm) state ppid ...`. The command name may hold spaces and
/// parentheses, so it runs from the first `(` to the last `)`; the fields after it are
/// counted from there (field 3 is the first after `) `).
pub fn parse_stat(bytes: &[u8]) -> Result<StatFields<'_>, String> {
    let open = bytes
        .iter()
        .position(|&b| b == b'(')
        .ok_or("no `(` opening the command name")?;
    let close = bytes
        .iter()
        .rposition(|&b| b == b')')
        .filter(|c| *c > open)
        .ok_or("no `)` closing the command name")?;
    let pid = bytes
        .get(..open)
        .map(<[u8]>::trim_ascii)
        .and_then(decimal)
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| {
            format!(
                "bad pid {:?}",
                String::from_utf8_lossy(bytes.get(..open.min(24)).unwrap_or_default())
            )
        })?;
    let comm = bytes.get(open + 1..close).unwrap_or_default();
    let rest = bytes.get(close + 1..).unwrap_or_default();
    // Field n (1-based, n >= 3) is at index n - 3 of what follows the command name.
    let mut fields = rest
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty());
    let state = match fields.next() {
        Some([s]) => *s,
        Some(other) => {
            return Err(format!(
                "bad state {:?}",
                String::from_utf8_lossy(other.get(..other.len().min(16)).unwrap_or_default())
            ));
        }
        None => return Err("the line ends after the command name".into()),
    };
    // The next field `fields` gives is field `at`.
    let mut at = 4;
    let mut field = |n: usize, name: &str, signed: bool| -> Result<u64, String> {
        let mut value = None;
        while at <= n {
            value = fields.next();
            at += 1;
        }
        let text = value.ok_or_else(|| format!("field {n} ({name}) missing"))?;
        let parsed = if signed {
            decimal_or_negative(text)
        } else {
            decimal(text)
        };
        parsed.ok_or_else(|| {
            format!(
                "field {n} ({name}) is not a number: {:?}",
                String::from_utf8_lossy(text.get(..text.len().min(24)).unwrap_or_default())
            )
        })
    };
    let flags = field(9, "flags", false)?;
    let utime = field(14, "utime", false)?;
    let stime = field(15, "stime", false)?;
    let threads = field(20, "num_threads", true)?;
    let start_ticks = field(22, "starttime", false)?;
    let rss_pages = field(24, "rss", true)?;
    Ok(StatFields {
        pid,
        comm,
        state,
        kernel_thread: flags & PF_KTHREAD != 0,
        cpu_ticks: utime.saturating_add(stime),
        threads,
        start_ticks,
        rss_pages,
    })
}

/// The effective user id of `<pid>/status` (the second number of its `Uid:` line: real,
/// effective, saved, filesystem), the one `ps -o user` shows.
pub fn parse_status_euid(bytes: &[u8]) -> Result<u32, String> {
    let line = bytes
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Uid:"))
        .ok_or("no `Uid:` line")?;
    let mut ids = line
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty());
    let _real = ids.next();
    ids.next()
        .and_then(decimal)
        .and_then(|u| u32::try_from(u).ok())
        .ok_or_else(|| {
            format!(
                "bad `Uid:` line {:?}",
                String::from_utf8_lossy(line.get(..line.len().min(64)).unwrap_or_default())
            )
        })
}

/// The soft `Max open files` limit of `<pid>/limits`; `None` when it is `unlimited`.
pub fn parse_limits_nofile(bytes: &[u8]) -> Result<Option<u64>, String> {
    let line = bytes
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Max open files"))
        .ok_or("no `Max open files` line")?;
    let soft = line
        .split(u8::is_ascii_whitespace)
        .find(|f| !f.is_empty())
        .ok_or("`Max open files` has no value")?;
    if soft == b"unlimited" {
        return Ok(None);
    }
    decimal(soft).map(Some).ok_or_else(|| {
        format!(
            "bad `Max open files` soft limit {:?}",
            String::from_utf8_lossy(soft.get(..soft.len().min(24)).unwrap_or_default())
        )
    })
}

/// The arguments of `<pid>/cmdline` (NUL-separated, usually NUL-terminated) joined by
/// spaces into `out`, which is cleared first; invalid UTF-8 is replaced. Empty for kernel
/// threads and zombies.
pub fn join_cmdline(bytes: &[u8], out: &mut String) {
    out.clear();
    let trimmed = match bytes.iter().rposition(|&b| b != 0) {
        Some(last) => bytes.get(..=last).unwrap_or_default(),
        None => return,
    };
    for chunk in trimmed.utf8_chunks() {
        for c in chunk.valid().chars() {
            out.push(if c == '\0' { ' ' } else { c });
        }
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

/// The base name of the first argument of `<pid>/cmdline` (`/usr/bin/python3` ->
/// `python3`); empty when there is none.
pub fn argv0_basename(cmdline: &[u8]) -> &[u8] {
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    basename(argv0)
}

/// What follows the last `/` of `path` (all of it when there is none).
pub fn basename(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => path.get(slash + 1..).unwrap_or_default(),
        None => path,
    }
}

/// The base name of the target of a `<pid>/exe` link, without the ` (deleted)` the kernel
/// appends once the file was replaced (an upgrade while the program runs).
pub fn exe_basename(target: &[u8]) -> &[u8] {
    basename(target.strip_suffix(b" (deleted)").unwrap_or(target))
}

/// Whether a process named `comm` (its `stat` command name) with the command line `cmdline`
/// and executable link `exe` (`None`: not read, or unreadable) runs the program `name`.
///
/// A name of less than 15 bytes must equal `comm`. The kernel cuts `comm` to 15 bytes, so
/// a longer name whose first 15 bytes are `comm` is confirmed by the base name of the
/// first argument or of the executable.
pub fn exe_matches(name: &[u8], comm: &[u8], cmdline: &[u8], exe: Option<&[u8]>) -> bool {
    if name.len() < COMM_LEN {
        return comm == name;
    }
    if name.get(..COMM_LEN) != Some(comm) {
        return false;
    }
    argv0_basename(cmdline) == name || exe.is_some_and(|e| exe_basename(e) == name)
}

/// Whether `exe_matches` needs the command line or the executable link for `name`, given
/// `comm`: only when the name is too long for `comm` to tell and `comm` is its start.
pub fn exe_is_ambiguous(name: &[u8], comm: &[u8]) -> bool {
    name.len() >= COMM_LEN && name.get(..COMM_LEN) == Some(comm)
}

/// The pid a pid file holds: a positive decimal on its first line, spaces around it
/// allowed.
pub fn parse_pidfile(bytes: &[u8]) -> Result<u32, String> {
    let line = bytes
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    decimal(line)
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            format!(
                "expected a process id, found {:?}",
                String::from_utf8_lossy(line.get(..line.len().min(32)).unwrap_or_default())
            )
        })
}

/// What the collector needs of the host-wide `stat`: boot time and online CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostStat {
    /// `btime`: boot time, unix seconds.
    pub boot_time: u64,
    /// Number of `cpuN` lines: online CPUs.
    pub cpus: u32,
}

/// Parses the host-wide `stat`: its `btime` line and the count of `cpuN` lines.
pub fn parse_host_stat(bytes: &[u8]) -> Result<HostStat, String> {
    let mut boot_time = None;
    let mut cpus = 0u32;
    for line in bytes.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"cpu") {
            if rest.first().is_some_and(u8::is_ascii_digit) {
                cpus = cpus.saturating_add(1);
            }
        } else if let Some(rest) = line.strip_prefix(b"btime ") {
            boot_time = Some(decimal(rest.trim_ascii()).ok_or_else(|| {
                format!(
                    "bad btime {:?}",
                    String::from_utf8_lossy(rest.get(..rest.len().min(24)).unwrap_or_default())
                )
            })?);
        }
    }
    let boot_time = boot_time.ok_or("no `btime` line")?;
    if cpus == 0 {
        return Err("no `cpuN` line".into());
    }
    Ok(HostStat { boot_time, cpus })
}

/// The first number of `uptime` (seconds since boot, two decimals) in clock ticks at
/// `ticks_per_second`.
pub fn parse_uptime_ticks(bytes: &[u8], ticks_per_second: u64) -> Result<u64, String> {
    let first = bytes
        .split(u8::is_ascii_whitespace)
        .find(|f| !f.is_empty())
        .ok_or("empty")?;
    let bad = || {
        format!(
            "bad uptime {:?}",
            String::from_utf8_lossy(first.get(..first.len().min(24)).unwrap_or_default())
        )
    };
    let (whole, fraction) = match first.iter().position(|&b| b == b'.') {
        Some(dot) => (
            first.get(..dot).unwrap_or_default(),
            first.get(dot + 1..).unwrap_or_default(),
        ),
        None => (first, &b""[..]),
    };
    let seconds = decimal(whole).ok_or_else(bad)?;
    // Hundredths: the kernel prints two decimals.
    let hundredths = match fraction {
        [] => 0,
        [d] => decimal(&[*d]).ok_or_else(bad)? * 10,
        [d, e, ..] => decimal(&[*d, *e]).ok_or_else(bad)?,
    };
    seconds
        .checked_mul(ticks_per_second)
        .and_then(|t| t.checked_add(hundredths * ticks_per_second / 100))
        .ok_or_else(bad)
}

/// The uid of user `name` in a passwd file (`name:x:uid:gid:...`).
pub fn passwd_uid(passwd: &[u8], name: &str) -> Option<u32> {
    passwd.split(|&b| b == b'\n').find_map(|line| {
        let mut f = line.split(|&b| b == b':');
        if f.next()? != name.as_bytes() {
            return None;
        }
        let _password = f.next()?;
        decimal(f.next()?).and_then(|u| u32::try_from(u).ok())
    })
}

/// The name of the first user with `uid` in a passwd file.
pub fn passwd_name(passwd: &[u8], uid: u32) -> Option<&str> {
    passwd.split(|&b| b == b'\n').find_map(|line| {
        let mut f = line.split(|&b| b == b':');
        let name = f.next()?;
        let _password = f.next()?;
        let id = decimal(f.next()?)?;
        (id == u64::from(uid) && !name.is_empty())
            .then(|| std::str::from_utf8(name).ok())
            .flatten()
    })
}

/// Most characters of a command line shown by the top-N.
pub const SHOWN_CMDLINE_CHARS: usize = 200;

/// A command line (arguments joined by spaces) as the top-N shows it: control characters
/// escaped (`\n`, `\t`, `\u{1b}`), so that it fits one line of a table, and at most
/// [`SHOWN_CMDLINE_CHARS`] characters so written, then `…` when it was cut.
pub fn shown_cmdline(joined: &str) -> String {
    let mut out = String::with_capacity(joined.len().min(SHOWN_CMDLINE_CHARS * 2));
    let mut shown = 0;
    for c in joined.chars() {
        let width = if c.is_control() {
            c.escape_debug().count()
        } else {
            1
        };
        if shown + width > SHOWN_CMDLINE_CHARS {
            out.push('…');
            break;
        }
        shown += width;
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// A command name (`comm`) as text: invalid UTF-8 replaced, control characters escaped.
pub fn shown_comm(comm: &[u8]) -> String {
    let mut out = String::with_capacity(comm.len());
    for chunk in comm.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_debug());
            } else {
                out.push(c);
            }
        }
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! Fixtures: `tests/fixtures/proc-processes/`, captured on this host (see its README):
    //! pid 1 (the init of the VM), 2 (`kthreadd`, a kernel thread), 26065 (a copy of
    //! `sleep` named `lookout-long-sleeper-name`, run as `nobody`), 26067 (Python with its
    //! command name set to `py (worker) x`, 8 MiB touched, 20 extra open files, open files
    //! limited to 1024:4096) and 26109 (its exited, unreaped child: a zombie).
    use super::*;
    use std::path::PathBuf;

    fn fixture(rel: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/proc-processes")
            .join(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Field `n` (1-based) of a stat line, split independently of the parser: after the
    /// last `)`, field 3 first.
    fn field(stat: &[u8], n: usize) -> u64 {
        let text = String::from_utf8(stat.to_vec()).unwrap();
        let after = text.rsplit_once(") ").unwrap().1;
        after.split(' ').nth(n - 3).unwrap().parse().unwrap()
    }

    #[test]
    fn stat_of_captured_processes() {
        for (pid, comm, state, kernel_thread) in [
            (1, "process_api", b'S', false),
            (2, "kthreadd", b'S', true),
            (26065, "lookout-long-sl", b'S', false),
            (26067, "py (worker) x", b'S', false),
            (26109, "py (worker) x", b'Z', false),
        ] {
            let bytes = fixture(&format!("{pid}/stat"));
            let s = parse_stat(&bytes).unwrap_or_else(|e| panic!("{pid}: {e}"));
            assert_eq!(s.pid, pid);
            assert_eq!(s.comm, comm.as_bytes(), "{pid}");
            assert_eq!(s.state, state, "{pid}");
            assert_eq!(s.kernel_thread, kernel_thread, "{pid}");
            assert_eq!(s.cpu_ticks, field(&bytes, 14) + field(&bytes, 15), "{pid}");
            assert_eq!(s.threads, field(&bytes, 20), "{pid}");
            assert_eq!(s.start_ticks, field(&bytes, 22), "{pid}");
            assert_eq!(s.rss_pages, field(&bytes, 24), "{pid}");
        }
        // The Python process: 5437 resident pages (VmRSS in its status says 21792 kB, read
        // a moment later), one thread; the zombie holds no memory.
        let py = fixture("26067/stat");
        let s = parse_stat(&py).unwrap();
        assert_eq!((s.rss_pages, s.threads), (5437, 1));
        let zombie = fixture("26109/stat");
        assert_eq!(parse_stat(&zombie).unwrap().rss_pages, 0);
    }

    #[test]
    fn stat_edge_cases() {
        let tail = " S 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 2 0 500 1000 -5 18446744073709551615";
        // a command name that is only `)` and spaces
        let line = format!("9 () ) ){tail}");
        let s = parse_stat(line.as_bytes()).unwrap();
        assert_eq!(s.comm, b") ) ");
        assert_eq!((s.cpu_ticks, s.threads, s.start_ticks), (10, 2, 500));
        // a negative rss reads as 0
        assert_eq!(s.rss_pages, 0);
        // an empty command name; no trailing newline or one
        let line = format!("9 (){tail}\n");
        assert_eq!(parse_stat(line.as_bytes()).unwrap().comm, b"");
        let errors: &[(String, &str)] = &[
            (String::new(), "no `(`"),
            ("9 (x".into(), "no `)`"),
            ("9 )x( S".into(), "no `)`"),
            (format!("x9 (a){tail}"), "bad pid"),
            (format!("99999999999 (a){tail}"), "bad pid"),
            ("9 (a)".into(), "ends after the command name"),
            ("9 (a) SS 1".into(), "bad state"),
            (
                "9 (a) S 1 1 1 0 -1 0 0 0 0 0 7".into(),
                "field 15 (stime) missing",
            ),
            (
                "9 (a) S 1 1 1 0 -1 0 0 0 0 0 x 3".into(),
                "field 14 (utime) is not a number",
            ),
            (
                format!("9 (a){}", tail.replace(" 500 ", " -500 ")),
                "field 22 (starttime)",
            ),
        ];
        for (line, want) in errors {
            let err = parse_stat(line.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{line:?}: {err}");
        }
        // invalid UTF-8 in the name is kept as bytes
        let mut raw = b"9 (\xff\xfe)".to_vec();
        raw.extend_from_slice(tail.as_bytes());
        assert_eq!(parse_stat(&raw).unwrap().comm, b"\xff\xfe");
    }

    #[test]
    fn status_limits_and_cmdline_of_captured_processes() {
        assert_eq!(parse_status_euid(&fixture("1/status")), Ok(0));
        assert_eq!(parse_status_euid(&fixture("26065/status")), Ok(65534));
        assert_eq!(parse_status_euid(&fixture("26109/status")), Ok(0));
        assert_eq!(parse_limits_nofile(&fixture("1/limits")), Ok(Some(65536)));
        assert_eq!(
            parse_limits_nofile(&fixture("26067/limits")),
            Ok(Some(1024))
        );
        assert_eq!(
            parse_limits_nofile(&fixture("26065/limits")),
            Ok(Some(20000))
        );

        let mut joined = String::new();
        join_cmdline(&fixture("26067/cmdline"), &mut joined);
        assert_eq!(
            joined,
            "/root/.pyenv/versions/3.11.7/bin/python3 /tmp/capture_worker.py \
             /tmp/capture-zombie an arg with spaces --flag=1"
        );
        join_cmdline(&fixture("2/cmdline"), &mut joined);
        assert_eq!(joined, "", "a kernel thread has no command line");
        assert_eq!(argv0_basename(&fixture("26067/cmdline")), b"python3");
        assert_eq!(
            argv0_basename(&fixture("26065/cmdline")),
            b"lookout-long-sleeper-name"
        );
        assert_eq!(argv0_basename(&fixture("26109/cmdline")), b"");
    }

    #[test]
    fn status_and_limits_edge_cases() {
        assert_eq!(
            parse_status_euid(b"Name:\tx\nUid:\t1000\t33\t33\t33\n"),
            Ok(33)
        );
        assert!(
            parse_status_euid(b"Name:\tx\n")
                .unwrap_err()
                .contains("no `Uid:`")
        );
        assert!(
            parse_status_euid(b"Uid:\t1000\n")
                .unwrap_err()
                .contains("bad `Uid:`")
        );
        assert!(parse_status_euid(b"Uid:\t1 x 1 1\n").is_err());
        assert_eq!(
            parse_limits_nofile(
                b"Max open files            unlimited            unlimited            files\n"
            ),
            Ok(None)
        );
        assert!(parse_limits_nofile(b"Max processes 10 10\n").is_err());
        assert!(
            parse_limits_nofile(b"Max open files\n")
                .unwrap_err()
                .contains("no value")
        );
        assert!(parse_limits_nofile(b"Max open files  lots  lots files\n").is_err());
    }

    #[test]
    fn cmdline_edge_cases() {
        let mut out = String::from("stale");
        // no trailing NUL (a process that rewrote its arguments), empty arguments kept
        join_cmdline(b"nginx: worker process", &mut out);
        assert_eq!(out, "nginx: worker process");
        join_cmdline(b"a\0\0b\0\0\0", &mut out);
        assert_eq!(out, "a  b");
        join_cmdline(b"\0\0", &mut out);
        assert_eq!(out, "");
        join_cmdline(b"caf\xc3\xa9 \xff\0x", &mut out);
        assert_eq!(out, "caf\u{e9} \u{fffd} x");
        assert_eq!(argv0_basename(b"celery\0worker"), b"celery");
        assert_eq!(argv0_basename(b"/usr/bin/"), b"");
        assert_eq!(exe_basename(b"/usr/sbin/nginx (deleted)"), b"nginx");
        assert_eq!(exe_basename(b"/opt/a b/run"), b"run");
    }

    #[test]
    fn exe_names_short_and_cut() {
        let long = b"lookout-long-sleeper-name";
        let comm = b"lookout-long-sl";
        let cmdline = fixture("26065/cmdline");
        // short names compare with comm only
        assert!(exe_matches(b"kthreadd", b"kthreadd", b"", None));
        assert!(!exe_matches(b"kthread", b"kthreadd", b"", None));
        assert!(!exe_is_ambiguous(b"kthreadd", b"kthreadd"));
        // a long name: comm is its start, argv[0] or the executable confirms it
        assert!(exe_is_ambiguous(long, comm));
        assert!(exe_matches(long, comm, &cmdline, None));
        assert!(exe_matches(
            long,
            comm,
            b"",
            Some(b"/tmp/lookout-long-sleeper-name")
        ));
        assert!(exe_matches(
            long,
            comm,
            b"sleep\x00600\x00",
            Some(b"/tmp/lookout-long-sleeper-name (deleted)")
        ));
        // ... but not when neither does: another program starting with the same 15 bytes
        assert!(!exe_matches(
            long,
            comm,
            b"/tmp/lookout-long-sleeper-other\0",
            Some(b"/tmp/lookout-long-sleeper-other")
        ));
        // exactly 15 bytes: comm may be a longer name cut, so it needs confirming too
        assert!(exe_is_ambiguous(comm, comm));
        assert!(exe_matches(comm, comm, b"/opt/lookout-long-sl\0x", None));
        assert!(!exe_matches(comm, comm, &cmdline, None));
        // a long name whose start is not comm
        assert!(!exe_is_ambiguous(long, b"sleep"));
        assert!(!exe_matches(long, b"sleep", &cmdline, None));
    }

    #[test]
    fn pidfiles() {
        assert_eq!(parse_pidfile(b"1234\n"), Ok(1234));
        assert_eq!(parse_pidfile(b"  77  \nrest"), Ok(77));
        for bad in [&b""[..], b"\n", b"0\n", b"-5", b"12a", b"99999999999"] {
            assert!(parse_pidfile(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_stat_and_uptime() {
        let stat = parse_host_stat(&fixture("stat")).unwrap();
        assert_eq!(
            stat,
            HostStat {
                boot_time: 1796188751,
                cpus: 2
            }
        );
        assert!(
            parse_host_stat(b"cpu  1 2 3\ncpu0 1 2 3\n")
                .unwrap_err()
                .contains("btime")
        );
        assert!(parse_host_stat(b"btime 5\n").unwrap_err().contains("cpuN"));
        assert!(
            parse_host_stat(b"cpu0 1\nbtime x\n")
                .unwrap_err()
                .contains("bad btime")
        );

        // "22270.48 17935.51"
        assert_eq!(parse_uptime_ticks(&fixture("uptime"), 100), Ok(2_227_048));
        assert_eq!(parse_uptime_ticks(b"5.5 1\n", 100), Ok(550));
        assert_eq!(parse_uptime_ticks(b"5 1\n", 1000), Ok(5000));
        assert_eq!(parse_uptime_ticks(b"5.123 1\n", 100), Ok(512));
        for bad in [&b""[..], b"x 1", b"-1.00 2", b"1.x0 1"] {
            assert!(parse_uptime_ticks(bad, 100).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwd_lookups() {
        let passwd = b"root:x:0:0:root:/root:/bin/bash\n# comment\n\nnobody:x:65534:65534::/:/x\nbroken\napp:x:1000:1000::/home/app:/bin/sh\nalias:x:1000:1000::/:/bin/sh\n";
        assert_eq!(passwd_uid(passwd, "app"), Some(1000));
        assert_eq!(passwd_uid(passwd, "root"), Some(0));
        assert_eq!(passwd_uid(passwd, "nobod"), None);
        assert_eq!(passwd_uid(passwd, "broken"), None);
        assert_eq!(passwd_name(passwd, 65534), Some("nobody"));
        assert_eq!(passwd_name(passwd, 1000), Some("app"), "the first of two");
        assert_eq!(passwd_name(passwd, 7), None);
    }

    #[test]
    fn shown_text() {
        assert_eq!(shown_cmdline("a\nb\tc\u{1b}[0m"), "a\\nb\\tc\\u{1b}[0m");
        let long = "x".repeat(250);
        let shown = shown_cmdline(&long);
        assert_eq!(shown.chars().count(), SHOWN_CMDLINE_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(shown_cmdline(&"é".repeat(200)).chars().count(), 200);
        // escapes count as what they show
        let shown = shown_cmdline(&"\u{1b}".repeat(100));
        assert_eq!(shown, format!("{}…", "\\u{1b}".repeat(33)));
        assert_eq!(shown_comm(b"py (worker) x"), "py (worker) x");
        assert_eq!(shown_comm(b"a\nb\xff"), "a\\nb\u{fffd}");
    }
}
