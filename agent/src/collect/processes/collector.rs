//! The processes collector: one pass over the proc root per run.
//!
//! Cost is what matters here: a host runs thousands of processes and the pass repeats on
//! every interval. So:
//! - the root is listed with `getdents` into a buffer kept between runs, and each
//!   `<pid>/stat` is read with one `openat` + `read` into another (no path is allocated,
//!   nothing is parsed but the fields used);
//! - the command line (and, for a program name of 15 bytes or more, the executable link)
//!   is read only when a group needs it, once per process: which groups a process's name
//!   and command line match is remembered per pid with its start time and command name
//!   (an `exec` changes the name; a reused pid has another start time);
//! - `status` (the user), the `fd` directory and `limits` are read for group candidates
//!   and members only, and for the processes the top lists show;
//! - what is kept per process between runs is one small record (start time, name, CPU
//!   ticks, matched groups); per run, one record per process in a vector reused from run to
//!   run.
//!
//! A process that exits while it is read is skipped without a word: that is normal.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rustix::fd::OwnedFd;
use rustix::fs::{CWD, FileType, Mode, OFlags, RawDir, openat, readlinkat_raw};
use rustix::io::Errno;

use super::config::{GroupConfig, PASSWD, ProcessesConfig, UserMatch};
use super::parse::{
    exe_is_ambiguous, exe_matches, join_cmdline, parse_host_stat, parse_limits_nofile,
    parse_pidfile, parse_stat, parse_status_euid, parse_uptime_ticks, passwd_name, passwd_uid,
    shown_cmdline, shown_comm,
};
use super::top::{Top, TopLists, TopProcess};
use super::track::{Comm, Figures, GroupSet, Member, Run, Seen, Tracker};
use crate::catalogue::{
    PROCESS_GROUP_CPU_SECONDS_TOTAL, PROCESS_GROUP_CPU_USAGE_RATIO, PROCESS_GROUP_FD_USAGE_RATIO,
    PROCESS_GROUP_MEMBERS, PROCESS_GROUP_MEMORY_USAGE_RATIO,
    PROCESS_GROUP_OLDEST_START_TIME_SECONDS, PROCESS_GROUP_OPEN_FDS,
    PROCESS_GROUP_RESIDENT_MEMORY_BYTES, PROCESS_GROUP_RESTARTS_TOTAL, PROCESS_GROUP_THREADS,
    PROCESS_GROUP_UP,
};
use crate::collect::{CollectError, Collector, ProcFs, Sample, Schedule};

/// Most bytes of `<pid>/stat` read (a line of about 300).
const STAT_LIMIT: usize = 4096;
/// Most bytes of a command line read for matching; `cmdline` patterns see this much.
pub const CMDLINE_LIMIT: usize = 4096;
/// Most bytes of a command line read for the top lists (they show 200 characters).
const SHOWN_CMDLINE_LIMIT: usize = 1024;
/// Most bytes of `status` and `limits` read (about 1.5 KiB each).
const SMALL_FILE_LIMIT: usize = 8192;
/// Size of the `getdents` buffers.
const DIR_BUFFER: usize = 32 * 1024;

/// One process as this run saw it.
#[derive(Debug, Clone, Copy)]
struct Proc {
    pid: u32,
    start: u64,
    cpu: u64,
    rss_pages: u64,
    threads: u64,
    comm: Comm,
    /// CPU ticks since the previous run: `None` when not known (first sighting of a
    /// process that ran before, or the first run).
    cpu_delta: Option<u64>,
    /// Groups whose program name and command line match.
    matched: GroupSet,
    /// Effective uid, once read this run: `Some(None)` when it could not be.
    euid: Option<Option<u32>>,
}

/// A group as the collector runs it.
#[derive(Debug)]
struct Group {
    config: GroupConfig,
    /// The uid `user` names; `None` with `user` given: unknown, nothing matches.
    uid: Option<u32>,
    /// The pid its pid file held at the start of this run.
    pid_now: Option<u32>,
}

/// The passwd file of the configured root, read again when it changes.
#[derive(Debug)]
struct Passwd {
    path: PathBuf,
    text: Vec<u8>,
    stamp: Option<(Option<SystemTime>, u64)>,
}

impl Passwd {
    fn refresh(&mut self) {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()));
        if stamp == self.stamp {
            return;
        }
        self.text = super::config::read_passwd(&self.path).unwrap_or_default();
        self.stamp = stamp;
    }
}

/// Buffers kept between runs.
#[derive(Debug)]
struct Buffers {
    dir: Vec<u8>,
    fd_dir: Vec<u8>,
    file: Vec<u8>,
    path: String,
    cmdline: String,
    link: Vec<u8>,
}

/// Watches the configured process groups and keeps the top processes.
#[derive(Debug)]
pub struct ProcessesCollector {
    proc: ProcFs,
    rootfs: PathBuf,
    schedule: Schedule,
    groups: Vec<Group>,
    top: usize,
    shared: Arc<Top>,
    tracker: Tracker,
    procs: Vec<Proc>,
    members: Vec<Member>,
    order: Vec<usize>,
    buffers: Buffers,
    passwd: Passwd,
    ticks_per_second: u64,
    page_size: u64,
}

impl Drop for ProcessesCollector {
    /// Leaves what it remembers to the collector a reload builds next.
    fn drop(&mut self) {
        self.shared.carry(std::mem::take(&mut self.tracker));
    }
}

/// Whether `e` means the process is gone (or going): skip it.
fn vanished(e: Errno) -> bool {
    e == Errno::NOENT || e == Errno::SRCH
}

/// Reads `path` under `dir` into `buf` (cleared first), at most `limit` bytes.
///
/// A read that returns less than the room it was given ends the file: proc files fill
/// what they are asked for (and regular files come short only at their end), so the usual
/// extra read that returns 0 is saved, one system call per process and file.
fn read_at(dir: &OwnedFd, path: &str, buf: &mut Vec<u8>, limit: usize) -> Result<(), Errno> {
    buf.clear();
    let fd = openat(dir, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    while buf.len() < limit {
        if buf.capacity() == buf.len() {
            buf.reserve((limit - buf.len()).min(buf.len().max(1024)));
        }
        let room = buf.capacity() - buf.len();
        match rustix::io::read(&fd, rustix::buffer::spare_capacity(buf)) {
            Ok(n) if n < room => break,
            Ok(_) => {}
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(limit);
    Ok(())
}

/// `statfs`'s type of a proc filesystem.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Open file descriptors of the process whose fd directory is `path` under `dir`. On a
/// proc filesystem (`procfs`) since Linux 6.2, the size `stat` gives that directory is the
/// count: one system call however many descriptors. A size of 0 (an older kernel, or
/// really none), or another filesystem (fixtures), is counted by listing.
fn count_fds(dir: &OwnedFd, path: &str, procfs: bool, buf: &mut Vec<u8>) -> Option<u64> {
    if !procfs {
        return count_entries(dir, path, buf);
    }
    match rustix::fs::statat(dir, path, rustix::fs::AtFlags::empty()) {
        Ok(st) if st.st_size > 0 => u64::try_from(st.st_size).ok(),
        Ok(_) => count_entries(dir, path, buf),
        Err(_) => None,
    }
}

/// Entries of the directory `path` under `dir` (`.` and `..` left out), listed into `buf`.
fn count_entries(dir: &OwnedFd, path: &str, buf: &mut Vec<u8>) -> Option<u64> {
    let fd = openat(
        dir,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    buf.clear();
    let mut entries = RawDir::new(fd, buf.spare_capacity_mut());
    let mut n = 0u64;
    while let Some(entry) = entries.next() {
        let entry = entry.ok()?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            n += 1;
        }
    }
    Some(n)
}

/// A pid from a directory name under the proc root.
fn pid_of(name: &[u8]) -> Option<u32> {
    if name.is_empty() || name.len() > 10 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// `<pid>/<file>` into `path`.
fn pid_path<'p>(path: &'p mut String, pid: u32, file: &str) -> &'p str {
    use std::fmt::Write as _;
    path.clear();
    let _ = write!(path, "{pid}/{file}");
    path
}

/// The pid in the pid file `file`, read under `rootfs`: `None` when it cannot be read or
/// holds no pid (the group then has no member).
fn read_pidfile(rootfs: &Path, file: &Path) -> Option<u32> {
    use std::io::Read;
    let path = rootfs.join(file.strip_prefix("/").unwrap_or(file));
    let mut text = Vec::new();
    match std::fs::File::open(&path).and_then(|f| f.take(64).read_to_end(&mut text)) {
        Ok(_) => parse_pidfile(&text)
            .map_err(|why| tracing::debug!(pidfile = %path.display(), %why, "no pid"))
            .ok(),
        Err(error) => {
            tracing::debug!(pidfile = %path.display(), %error, "pid file not read");
            None
        }
    }
}

impl ProcessesCollector {
    /// A collector of `config`'s groups and top lists over the proc root `proc`, with pid
    /// files and the passwd file read under `rootfs`; it publishes its top lists to
    /// `shared`, and continues from what a collector it replaces left there.
    pub fn new(proc: ProcFs, rootfs: PathBuf, config: &ProcessesConfig, shared: Arc<Top>) -> Self {
        let passwd_path = rootfs.join(PASSWD);
        let mut passwd_text: Option<Vec<u8>> = None;
        let groups = config
            .groups
            .iter()
            .map(|g| {
                let uid = match &g.user {
                    None => None,
                    Some(UserMatch::Uid(uid)) => Some(*uid),
                    Some(UserMatch::Name(name)) => {
                        let text = passwd_text.get_or_insert_with(|| {
                            super::config::read_passwd(&passwd_path).unwrap_or_default()
                        });
                        let uid = passwd_uid(text, name);
                        if uid.is_none() {
                            tracing::warn!(group = %g.name, user = %name, passwd = %passwd_path.display(), "unknown user: the group has no member");
                        }
                        uid
                    }
                };
                Group {
                    config: g.clone(),
                    uid,
                    pid_now: None,
                }
            })
            .collect();
        let mut tracker = shared.take_carry().unwrap_or_default();
        tracker.forget_matches();
        tracker
            .groups
            .retain(|name, _| config.groups.iter().any(|g| g.name == *name));
        ProcessesCollector {
            proc,
            rootfs,
            schedule: config.schedule,
            groups,
            top: config.top,
            shared,
            tracker,
            procs: Vec::new(),
            members: Vec::new(),
            order: Vec::new(),
            buffers: Buffers {
                dir: Vec::with_capacity(DIR_BUFFER),
                fd_dir: Vec::with_capacity(DIR_BUFFER),
                file: Vec::with_capacity(STAT_LIMIT),
                path: String::with_capacity(32),
                cmdline: String::new(),
                link: vec![0; 4096],
            },
            passwd: Passwd {
                path: passwd_path,
                text: Vec::new(),
                stamp: None,
            },
            ticks_per_second: rustix::param::clock_ticks_per_second(),
            page_size: rustix::param::page_size() as u64,
        }
    }

    /// The groups whose program name and command line match the process `pid` named
    /// `comm`; `None` when that is not known yet, so the next run asks again: it vanished
    /// while its files were read, or it is in the middle of an `exec` (a user process's
    /// command line is empty until the new program's arguments are in place;
    /// `blank_is_final` says it stays empty: a kernel thread, a zombie).
    fn match_static(
        &mut self,
        dir: &OwnedFd,
        pid: u32,
        comm: &[u8],
        blank_is_final: bool,
    ) -> Option<GroupSet> {
        let needs_cmdline = self.groups.iter().any(|g| {
            g.config.cmdline.is_some()
                || g.config
                    .exe
                    .as_ref()
                    .is_some_and(|e| exe_is_ambiguous(e.as_bytes(), comm))
        });
        let buffers = &mut self.buffers;
        if needs_cmdline {
            let path = pid_path(&mut buffers.path, pid, "cmdline");
            if read_at(dir, path, &mut buffers.file, CMDLINE_LIMIT).is_err() {
                return None;
            }
            if buffers.file.is_empty() && !blank_is_final {
                return None;
            }
            join_cmdline(&buffers.file, &mut buffers.cmdline);
        } else {
            buffers.file.clear();
            buffers.cmdline.clear();
        }
        let mut link: Option<Option<usize>> = None;
        let mut bits = GroupSet::default();
        for (i, group) in self.groups.iter().enumerate() {
            if let Some(exe) = &group.config.exe {
                let name = exe.as_bytes();
                let ok = if exe_is_ambiguous(name, comm) {
                    exe_matches(name, comm, &buffers.file, None) || {
                        let len = *link.get_or_insert_with(|| {
                            let path = pid_path(&mut buffers.path, pid, "exe");
                            readlinkat_raw(dir, path, &mut buffers.link[..]).ok()
                        });
                        let target = len.and_then(|n| buffers.link.get(..n));
                        exe_matches(name, comm, b"", target)
                    }
                } else {
                    name == comm
                };
                if !ok {
                    continue;
                }
            }
            if let Some(re) = &group.config.cmdline
                && !re.is_match(&buffers.cmdline)
            {
                continue;
            }
            bits.insert(i);
        }
        Some(bits)
    }

    /// Lists the proc root and reads every process's `stat` into `self.procs`.
    fn scan(&mut self, dir: &OwnedFd, run: &Run) -> Result<(), CollectError> {
        self.procs.clear();
        let generation = self.tracker.generation;
        let mut listing = std::mem::take(&mut self.buffers.dir);
        listing.clear();
        let mut failed: Option<Errno> = None;
        let mut malformed = 0u32;
        {
            let mut entries = RawDir::new(dir, listing.spare_capacity_mut());
            while let Some(entry) = entries.next() {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                };
                if !matches!(entry.file_type(), FileType::Directory | FileType::Unknown) {
                    continue;
                }
                let Some(pid) = pid_of(entry.file_name().to_bytes()) else {
                    continue;
                };
                let path = pid_path(&mut self.buffers.path, pid, "stat");
                if read_at(dir, path, &mut self.buffers.file, STAT_LIMIT).is_err() {
                    // Gone, or (another user's, hidepid) not ours to read.
                    continue;
                }
                let Ok(stat) = parse_stat(&self.buffers.file) else {
                    malformed += 1;
                    continue;
                };
                let (start, cpu, comm) = (stat.start_ticks, stat.cpu_ticks, Comm::new(stat.comm));
                let blank_is_final = stat.kernel_thread || stat.state == b'Z';
                let (rss_pages, threads) = (stat.rss_pages, stat.threads);
                let known = self
                    .tracker
                    .seen
                    .get(&pid)
                    .copied()
                    .filter(|s| s.start == start);
                let cpu_delta = match known {
                    Some(s) if s.generation.wrapping_add(1) == generation => {
                        Some(cpu.saturating_sub(s.cpu))
                    }
                    Some(_) => None,
                    None => run.started_since_previous(start).then_some(cpu),
                };
                let matched = match known.and_then(|s| s.matched.filter(|_| s.comm == comm)) {
                    Some(bits) => Some(bits),
                    None if self.groups.is_empty() => Some(GroupSet::default()),
                    None => self.match_static(dir, pid, comm.as_bytes(), blank_is_final),
                };
                self.tracker.seen.insert(
                    pid,
                    Seen {
                        start,
                        comm,
                        generation,
                        cpu,
                        matched,
                    },
                );
                self.procs.push(Proc {
                    pid,
                    start,
                    cpu,
                    rss_pages,
                    threads,
                    comm,
                    cpu_delta,
                    matched: matched.unwrap_or_default(),
                    euid: None,
                });
            }
        }
        self.buffers.dir = listing;
        if malformed > 0 {
            tracing::debug!(
                processes = malformed,
                "processes whose stat did not parse were skipped"
            );
        }
        match failed {
            Some(e) => Err(CollectError::Read {
                path: self.proc.root().display().to_string(),
                source: e.into(),
            }),
            None => Ok(()),
        }
    }

    /// The effective uid of `self.procs[index]`, read once per run.
    fn euid(&mut self, dir: &OwnedFd, index: usize) -> Option<u32> {
        let p = self.procs.get(index)?;
        if let Some(known) = p.euid {
            return known;
        }
        let pid = p.pid;
        let path = pid_path(&mut self.buffers.path, pid, "status");
        let euid = read_at(dir, path, &mut self.buffers.file, SMALL_FILE_LIMIT)
            .ok()
            .and_then(|()| parse_status_euid(&self.buffers.file).ok());
        if let Some(p) = self.procs.get_mut(index) {
            p.euid = Some(euid);
        }
        euid
    }

    /// The members of group `g` this run; `procfs`: `dir` is a proc filesystem.
    fn members_of(&mut self, dir: &OwnedFd, procfs: bool, g: usize) {
        self.members.clear();
        let Some(group) = self.groups.get(g) else {
            return;
        };
        let (pidfile, pid_now) = (group.config.pidfile.is_some(), group.pid_now);
        let user = group.config.user.as_ref().map(|_| group.uid);
        for i in 0..self.procs.len() {
            let Some(p) = self.procs.get(i).copied() else {
                break;
            };
            if !p.matched.contains(g) || (pidfile && pid_now != Some(p.pid)) {
                continue;
            }
            if let Some(uid) = user
                && (uid.is_none() || self.euid(dir, i) != uid)
            {
                continue;
            }
            let fds = count_fds(
                dir,
                pid_path(&mut self.buffers.path, p.pid, "fd"),
                procfs,
                &mut self.buffers.fd_dir,
            );
            let path = pid_path(&mut self.buffers.path, p.pid, "limits");
            let fd_limit = read_at(dir, path, &mut self.buffers.file, SMALL_FILE_LIMIT)
                .ok()
                .and_then(|()| parse_limits_nofile(&self.buffers.file).ok())
                .flatten();
            self.members.push(Member {
                pid: p.pid,
                start: p.start,
                cpu: p.cpu,
                rss_bytes: p.rss_pages.saturating_mul(self.page_size),
                threads: p.threads,
                fds,
                fd_limit,
            });
        }
    }

    /// The top lists of this run.
    fn top_lists(&mut self, dir: &OwnedFd, run: &Run) -> TopLists {
        let n = self.top;
        let mut lists = TopLists {
            at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            interval_seconds: self.schedule.interval.as_secs_f64(),
            by_cpu: Vec::with_capacity(n),
            by_memory: Vec::with_capacity(n),
        };
        if n == 0 {
            return lists;
        }
        self.passwd.refresh();
        // By memory: the n largest, largest first (ties: lower pid first).
        let procs = &self.procs;
        let by_memory = |a: &usize, b: &usize| {
            let (x, y) = (procs.get(*a), procs.get(*b));
            let key = |p: Option<&Proc>| p.map_or((0, 0), |p| (p.rss_pages, u32::MAX - p.pid));
            key(y).cmp(&key(x))
        };
        self.order.clear();
        self.order.extend(0..procs.len());
        if self.order.len() > n {
            self.order.select_nth_unstable_by(n - 1, by_memory);
            self.order.truncate(n);
        }
        self.order.sort_unstable_by(by_memory);
        let chosen_by_memory: Vec<usize> = self.order.clone();
        // By CPU: among the processes whose use over the interval is known.
        let by_cpu = |a: &usize, b: &usize| {
            let (x, y) = (procs.get(*a), procs.get(*b));
            let key = |p: Option<&Proc>| {
                p.map_or((0, 0, 0), |p| {
                    (p.cpu_delta.unwrap_or(0), p.rss_pages, u32::MAX - p.pid)
                })
            };
            key(y).cmp(&key(x))
        };
        self.order.clear();
        self.order.extend(
            procs
                .iter()
                .enumerate()
                .filter(|(_, p)| p.cpu_delta.is_some())
                .map(|(i, _)| i),
        );
        if self.order.len() > n {
            self.order.select_nth_unstable_by(n - 1, by_cpu);
            self.order.truncate(n);
        }
        self.order.sort_unstable_by(by_cpu);
        let chosen_by_cpu: Vec<usize> = self.order.clone();
        for (indexes, by_cpu) in [(chosen_by_cpu, true), (chosen_by_memory, false)] {
            for i in indexes {
                let known = lists
                    .by_cpu
                    .iter()
                    .find(|t| self.procs.get(i).is_some_and(|p| p.pid == t.pid))
                    .cloned();
                let entry = match known {
                    Some(entry) => Some(entry),
                    None => self.top_process(dir, run, i),
                };
                let Some(entry) = entry else { continue };
                if by_cpu {
                    lists.by_cpu.push(entry);
                } else {
                    lists.by_memory.push(entry);
                }
            }
        }
        lists
    }

    /// The top-list entry of `self.procs[index]`; `None` when it vanished meanwhile.
    fn top_process(&mut self, dir: &OwnedFd, run: &Run, index: usize) -> Option<TopProcess> {
        let p = *self.procs.get(index)?;
        let path = pid_path(&mut self.buffers.path, p.pid, "cmdline");
        match read_at(dir, path, &mut self.buffers.file, SHOWN_CMDLINE_LIMIT) {
            Err(e) if vanished(e) => return None,
            Err(_) => self.buffers.file.clear(),
            Ok(()) => {}
        }
        join_cmdline(&self.buffers.file, &mut self.buffers.cmdline);
        let cmdline = shown_cmdline(&self.buffers.cmdline);
        let user = match self.euid(dir, index) {
            Some(uid) => {
                passwd_name(&self.passwd.text, uid).map_or_else(|| uid.to_string(), str::to_string)
            }
            None => String::new(),
        };
        Some(TopProcess {
            pid: p.pid,
            name: shown_comm(p.comm.as_bytes()),
            user,
            cmdline,
            cpu_ratio: p.cpu_delta.and_then(|d| run.cpu_ratio(d)),
            rss_bytes: p.rss_pages.saturating_mul(self.page_size),
        })
    }

    /// The samples of one group's figures.
    fn group_samples(name: &str, f: &Figures, out: &mut Vec<Sample>) {
        let label = || [("group", name.to_string())];
        let mut push = |metric, value: f64| out.push(Sample::with_labels(metric, label(), value));
        push(&PROCESS_GROUP_MEMBERS, f.count as f64);
        push(&PROCESS_GROUP_UP, if f.up { 1.0 } else { 0.0 });
        push(&PROCESS_GROUP_RESIDENT_MEMORY_BYTES, f.rss_bytes as f64);
        push(&PROCESS_GROUP_CPU_SECONDS_TOTAL, f.cpu_seconds);
        push(&PROCESS_GROUP_RESTARTS_TOTAL, f.restarts as f64);
        let optional = [
            (&PROCESS_GROUP_CPU_USAGE_RATIO, f.cpu_ratio),
            (&PROCESS_GROUP_THREADS, f.threads.map(|t| t as f64)),
            (&PROCESS_GROUP_OPEN_FDS, f.open_fds.map(|n| n as f64)),
            (&PROCESS_GROUP_FD_USAGE_RATIO, f.fd_ratio),
            (&PROCESS_GROUP_OLDEST_START_TIME_SECONDS, f.oldest_start),
            (&PROCESS_GROUP_MEMORY_USAGE_RATIO, f.memory_ratio),
        ];
        for (metric, value) in optional {
            if let Some(value) = value {
                push(metric, value);
            }
        }
    }
}

impl Collector for ProcessesCollector {
    fn name(&self) -> &str {
        "processes"
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn collect(&mut self, now: Instant) -> Result<Vec<Sample>, CollectError> {
        let uptime_ticks = parse_uptime_ticks(&self.proc.read("uptime")?, self.ticks_per_second)
            .map_err(|m| self.proc.parse_error("uptime", m))?;
        let host = parse_host_stat(&self.proc.read("stat")?)
            .map_err(|m| self.proc.parse_error("stat", m))?;
        let root = self.proc.root();
        let dir = openat(
            CWD,
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| CollectError::Read {
            path: root.display().to_string(),
            source: e.into(),
        })?;
        let procfs = rustix::fs::fstatfs(&dir).is_ok_and(|fs| fs.f_type == PROC_SUPER_MAGIC);
        let run = Run {
            now,
            uptime_ticks,
            boot_time: host.boot_time,
            cpus: host.cpus,
            ticks_per_second: self.ticks_per_second,
            previous: self.tracker.previous,
        };
        for group in &mut self.groups {
            group.pid_now = group
                .config
                .pidfile
                .as_deref()
                .and_then(|file| read_pidfile(&self.rootfs, file));
        }
        self.tracker.generation = self.tracker.generation.wrapping_add(1);
        self.scan(&dir, &run)?;

        let mut samples = Vec::with_capacity(self.groups.len() * 11);
        for g in 0..self.groups.len() {
            self.members_of(&dir, procfs, g);
            let Some(group) = self.groups.get(g) else {
                break;
            };
            let config = &group.config;
            let state = match self.tracker.groups.get_mut(&config.name) {
                Some(state) => state,
                None => self.tracker.groups.entry(config.name.clone()).or_default(),
            };
            let figures =
                state.observe(&mut self.members, &run, config.min_count, config.max_memory);
            Self::group_samples(&config.name, &figures, &mut samples);
        }
        if self.top > 0 {
            let lists = self.top_lists(&dir, &run);
            self.shared.publish(lists);
        }
        let generation = self.tracker.generation;
        self.tracker.seen.retain(|_, s| s.generation == generation);
        self.tracker.previous = Some((now, uptime_ticks));
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_keeps_about_a_hundred_bytes_per_process() {
        // docs/performance.md counts on it
        assert!(std::mem::size_of::<Proc>() <= 96);
    }
}
