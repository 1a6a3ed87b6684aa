//! The processes collector over the captured fixture root (`tests/fixtures/proc-processes`,
//! see its README) and over real processes this test starts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::collect::procfs::ScratchProc;
use crate::collect::{CollectError, Collector, ProcFs, Sample};
use crate::config::check_section;

fn fixture_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/proc-processes")
}

fn config(yaml: &str) -> ProcessesConfig {
    check_section::<ProcessesSection>(yaml, "collect.processes").unwrap_or_else(|p| {
        panic!(
            "{:?}",
            p.0.iter().map(ToString::to_string).collect::<Vec<_>>()
        )
    })
}

/// A root directory of its own (passwd, pid files), removed on drop.
struct Root(PathBuf);

impl Root {
    fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("lookout-root-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::create_dir_all(dir.join("run")).unwrap();
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        )
        .unwrap();
        Root(dir)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn value(samples: &[Sample], metric: &str, group: &str) -> Option<f64> {
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s.metric.name == metric && s.labels == [("group", group.to_string())])
        .map(|s| s.value)
        .collect();
    assert!(found.len() <= 1, "{metric} {group}: {found:?}");
    found.first().copied()
}

/// Field `n` (1-based) of a captured stat, split independently of the parser.
fn stat_field(pid: u32, n: usize) -> u64 {
    let text = std::fs::read_to_string(fixture_root().join(format!("{pid}/stat"))).unwrap();
    text.rsplit_once(") ")
        .unwrap()
        .1
        .split(' ')
        .nth(n - 3)
        .unwrap()
        .parse()
        .unwrap()
}

fn page() -> f64 {
    rustix::param::page_size() as f64
}

fn hz() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

const FIXTURE_GROUPS: &str = "interval: 10s\ntop: 3\ngroups:
  - {name: sleeper, match: {exe: lookout-long-sleeper-name}}
  - {name: other, match: {exe: lookout-long-sleeper-other}}
  - {name: worker, match: {cmdline: 'capture_worker\\.py .*--flag=1'}, max_memory: 40MiB}
  - {name: py, match: {exe: py (worker) x}}
  - {name: nobody, match: {user: '65534'}}
  - {name: root-sleeper, match: {exe: lookout-long-sleeper-name, user: '0'}}
  - {name: by-pidfile, match: {pidfile: /run/worker.pid}, min_count: 1}
  - {name: stale-pidfile, match: {pidfile: /run/none.pid}}
  - {name: kthreadd, match: {exe: kthreadd}, min_count: 2}
";

#[test]
fn groups_over_the_captured_processes() {
    let root = Root::new("fixture");
    std::fs::write(root.0.join("run/worker.pid"), "26067\n").unwrap();
    let top = Arc::new(Top::new());
    let cfg = config(FIXTURE_GROUPS);
    top.configure(cfg.enabled, cfg.top, cfg.schedule.interval);
    let mut c = ProcessesCollector::new(
        ProcFs::new(&fixture_root()),
        root.0.clone(),
        &cfg,
        top.clone(),
    );
    let t0 = Instant::now();
    let first = c.collect(t0).unwrap();
    let count = |s: &[Sample], g: &str| value(s, "lookout_process_group_members", g);
    let rows = [
        // a name longer than comm's 15 bytes, confirmed by argv[0]
        ("sleeper", 1.0),
        // same first 15 bytes, another program
        ("other", 0.0),
        // the worker's command line; its zombie child has none
        ("worker", 1.0),
        // a command name with spaces and parentheses: the worker and its zombie
        ("py", 2.0),
        ("nobody", 1.0),
        ("root-sleeper", 0.0),
        ("by-pidfile", 1.0),
        ("stale-pidfile", 0.0),
        ("kthreadd", 1.0),
    ];
    for (group, n) in rows {
        assert_eq!(count(&first, group), Some(n), "{group}");
    }
    let up = |g| value(&first, "lookout_process_group_up", g);
    assert_eq!(
        (up("worker"), up("other"), up("kthreadd")),
        (Some(1.0), Some(0.0), Some(0.0))
    );

    // The worker's figures, from the captured files.
    let rss = stat_field(26067, 24) as f64 * page();
    assert_eq!(
        value(
            &first,
            "lookout_process_group_resident_memory_bytes",
            "worker"
        ),
        Some(rss)
    );
    assert_eq!(
        value(&first, "lookout_process_group_memory_usage_ratio", "worker"),
        Some(rss / (40 << 20) as f64)
    );
    assert_eq!(
        value(&first, "lookout_process_group_threads", "worker"),
        Some(1.0)
    );
    // fd/ holds 25 entries; the soft limit is 1024
    assert_eq!(
        value(&first, "lookout_process_group_open_fds", "worker"),
        Some(25.0)
    );
    assert_eq!(
        value(&first, "lookout_process_group_fd_usage_ratio", "worker"),
        Some(25.0 / 1024.0)
    );
    let start = 1_796_188_751.0 + stat_field(26067, 22) as f64 / hz();
    assert_eq!(
        value(
            &first,
            "lookout_process_group_oldest_start_time_seconds",
            "worker"
        ),
        Some(start)
    );
    // the first run: counters at 0, no CPU ratio yet
    assert_eq!(
        value(&first, "lookout_process_group_cpu_seconds_total", "worker"),
        Some(0.0)
    );
    assert_eq!(
        value(&first, "lookout_process_group_restarts_total", "worker"),
        Some(0.0)
    );
    assert_eq!(
        value(&first, "lookout_process_group_cpu_usage_ratio", "worker"),
        None
    );
    // the sleeper has no fd directory in the fixture: no fd figures, not an error
    assert_eq!(
        value(&first, "lookout_process_group_open_fds", "sleeper"),
        None
    );
    assert_eq!(
        value(&first, "lookout_process_group_fd_usage_ratio", "sleeper"),
        None
    );
    // an empty group: count, up, memory and the counters only
    let names: Vec<&str> = first
        .iter()
        .filter(|s| s.labels[0].1 == "other")
        .map(|s| s.metric.name)
        .collect();
    assert_eq!(
        names,
        [
            "lookout_process_group_members",
            "lookout_process_group_up",
            "lookout_process_group_resident_memory_bytes",
            "lookout_process_group_cpu_seconds_total",
            "lookout_process_group_restarts_total",
        ]
    );

    // The second run (the same files): nothing used, a ratio of 0.
    let second = c.collect(t0 + Duration::from_secs(10)).unwrap();
    assert_eq!(
        value(&second, "lookout_process_group_cpu_usage_ratio", "worker"),
        Some(0.0)
    );
    assert_eq!(
        value(&second, "lookout_process_group_cpu_usage_ratio", "other"),
        None
    );

    // Top lists: by memory, the three largest, largest first.
    let TopView::Lists(lists, 3) = top.view() else {
        panic!("{:?}", top.view())
    };
    let pids: Vec<u32> = lists.by_memory.iter().map(|p| p.pid).collect();
    assert_eq!(pids, [26067, 1, 26065]);
    let worker = &lists.by_memory[0];
    assert_eq!(worker.name, "py (worker) x");
    assert_eq!(worker.user, "root");
    assert_eq!(
        worker.cmdline,
        "/root/.pyenv/versions/3.11.7/bin/python3 /tmp/capture_worker.py /tmp/capture-zombie an arg with spaces --flag=1"
    );
    assert_eq!(worker.rss_bytes as f64, rss);
    assert_eq!(worker.cpu_ratio, Some(0.0));
    assert_eq!(
        lists.by_memory[2].user, "nobody",
        "a name from the root's passwd"
    );
    assert_eq!(lists.interval_seconds, 10.0);
    // By CPU: every process used 0 over the interval; ties go by memory.
    let pids: Vec<u32> = lists.by_cpu.iter().map(|p| p.pid).collect();
    assert_eq!(pids, [26067, 1, 26065]);
}

#[test]
fn odd_proc_contents_are_skipped_or_named() {
    let dir = ScratchProc::new("processes-odd");
    let root = Root::new("odd");
    let copy = |rel: &str| {
        dir.write(rel, &std::fs::read(fixture_root().join(rel)).unwrap());
    };
    copy("stat");
    copy("uptime");
    copy("26067/stat");
    copy("26067/cmdline");
    // a process gone between the listing and its stat
    dir.write("31/cmdline", b"");
    // a stat that does not parse
    dir.write("32/stat", b"32 (x");
    // not a pid
    dir.write("self7/stat", b"");
    let cfg = config("groups:\n  - {name: w, match: {cmdline: capture_worker}}\n");
    let mut c = ProcessesCollector::new(dir.proc(), root.0.clone(), &cfg, Arc::new(Top::new()));
    let samples = c.collect(Instant::now()).unwrap();
    assert_eq!(
        value(&samples, "lookout_process_group_members", "w"),
        Some(1.0)
    );

    // The host-wide files are needed: an error naming the file.
    std::fs::write(dir.proc().path("stat"), b"cpu0 1\n").unwrap();
    match c.collect(Instant::now()) {
        Err(CollectError::Parse { path, message }) => {
            assert!(path.ends_with("/stat"), "{path}");
            assert!(message.contains("btime"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(dir.proc().path("uptime")).unwrap();
    match c.collect(Instant::now()) {
        Err(CollectError::Read { path, .. }) => assert!(path.ends_with("/uptime"), "{path}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_process_caught_in_exec_is_matched_on_the_next_run() {
    // Between `exec` replacing the memory and laying out the new arguments, a process's
    // command line reads empty: it is not yet known, not "matches nothing".
    let dir = ScratchProc::new("processes-exec");
    let root = Root::new("exec");
    for rel in ["stat", "uptime", "26067/stat", "2/stat"] {
        dir.write(rel, &std::fs::read(fixture_root().join(rel)).unwrap());
    }
    dir.write("26067/cmdline", b"");
    // A kernel thread's command line stays empty: read once, not on every run.
    dir.write("2/cmdline", b"");
    let cfg = config(
        "groups:\n  - {name: w, match: {cmdline: capture_worker}}\n  - {name: blank, match: {cmdline: '^$'}}\n",
    );
    let mut c = ProcessesCollector::new(dir.proc(), root.0.clone(), &cfg, Arc::new(Top::new()));
    let t0 = Instant::now();
    let members = |s: &[Sample]| {
        (
            value(s, "lookout_process_group_members", "w"),
            value(s, "lookout_process_group_members", "blank"),
        )
    };
    // The process in exec is in no group yet (not even the blank one); the kernel thread is.
    assert_eq!(members(&c.collect(t0).unwrap()), (Some(0.0), Some(1.0)));
    dir.write(
        "26067/cmdline",
        &std::fs::read(fixture_root().join("26067/cmdline")).unwrap(),
    );
    // Were the kernel thread's command line read again, it would now fail and leave it out.
    std::fs::remove_file(dir.proc().path("2/cmdline")).unwrap();
    let s = c.collect(t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(members(&s), (Some(1.0), Some(1.0)));
}

/// `n` real processes whose command line holds `marker`, each killed on drop.
struct Sleepers(Vec<Child>);

impl Sleepers {
    fn start(marker: &str, n: usize) -> Self {
        let mut s = Sleepers(Vec::new());
        for _ in 0..n {
            s.add(marker);
        }
        s
    }

    fn add(&mut self, marker: &str) {
        // `sleep` reads a fraction: the marker makes the command line unique to this test.
        let child = Command::new("sleep").arg(marker).spawn().unwrap();
        // `spawn` returns once `exec` has begun; the command line and name are set a moment
        // later. The runs below expect the process in its group, so wait for them.
        let proc = PathBuf::from(format!("/proc/{}", child.id()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read(proc.join("comm")).unwrap_or_default() != b"sleep\n"
            || std::fs::read(proc.join("cmdline"))
                .unwrap_or_default()
                .is_empty()
        {
            assert!(Instant::now() < deadline, "sleep {marker} never started");
            std::thread::yield_now();
        }
        self.0.push(child);
    }

    fn kill_one(&mut self) {
        let mut child = self.0.remove(0);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn real_processes_leave_and_come_back() {
    let marker = format!("600.{}1", std::process::id());
    let mut sleepers = Sleepers::start(&marker, 3);
    let root = Root::new("live");
    let cfg = config(&format!(
        "top: 5\ngroups:\n  - {{name: s, match: {{exe: sleep, cmdline: '^sleep {}$'}}, min_count: 3}}\n",
        marker.replace('.', "\\.")
    ));
    let top = Arc::new(Top::new());
    top.configure(true, 5, cfg.schedule.interval);
    let mut c = ProcessesCollector::new(
        ProcFs::new(Path::new("/proc")),
        root.0.clone(),
        &cfg,
        top.clone(),
    );
    let t0 = Instant::now();
    let at = |k: u64| t0 + Duration::from_secs(k);
    let figures = |s: &[Sample]| {
        (
            value(s, "lookout_process_group_members", "s"),
            value(s, "lookout_process_group_up", "s"),
            value(s, "lookout_process_group_restarts_total", "s"),
        )
    };
    assert_eq!(
        figures(&c.collect(at(0)).unwrap()),
        (Some(3.0), Some(1.0), Some(0.0))
    );
    sleepers.kill_one();
    assert_eq!(
        figures(&c.collect(at(1)).unwrap()),
        (Some(2.0), Some(0.0), Some(0.0))
    );
    sleepers.add(&marker);
    let s = c.collect(at(2)).unwrap();
    assert_eq!(figures(&s), (Some(3.0), Some(1.0), Some(1.0)));
    assert!(value(&s, "lookout_process_group_cpu_usage_ratio", "s").is_some());
    let TopView::Lists(lists, 5) = top.view() else {
        panic!("{:?}", top.view())
    };
    assert_eq!(lists.by_memory.len(), 5);
    assert!(
        lists.by_cpu.len() <= 5 && !lists.by_cpu.is_empty(),
        "{lists:?}"
    );

    // A reload builds another collector: it continues from what this one left.
    drop(c);
    let mut c = ProcessesCollector::new(
        ProcFs::new(Path::new("/proc")),
        root.0.clone(),
        &cfg,
        top.clone(),
    );
    sleepers.kill_one();
    sleepers.add(&marker);
    let s = c.collect(at(3)).unwrap();
    assert_eq!(figures(&s), (Some(3.0), Some(1.0), Some(2.0)));
    assert!(
        value(&s, "lookout_process_group_cpu_usage_ratio", "s").is_some(),
        "a ratio at once: the previous run is known"
    );
}
