//! The cgroup collector on this host's real cgroups: each test makes cgroups of its own
//! (`lookout-test-<what>-<pid>-<n>`) under the v1 `memory`, `cpuacct` and `pids`
//! hierarchies or the unified one at `/sys/fs/cgroup/unified`, moves processes it spawns
//! into them by writing their pids to `cgroup.procs`, and checks what a real agent
//! (interval 1s, root `/sys/fs/cgroup`, include `lookout-test-*`) exports against the load it
//! made. A guard kills the processes and removes the cgroups at the end, failed test or not.
//!
//! They need root and that layout (v1 controllers with a v2 hierarchy at
//! `/sys/fs/cgroup/unified`, as `mount | grep cgroup` shows): without either they fail,
//! saying which. The CPU tests take a lock so that their busy loops never share the CPUs.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use lookout_tests::{Agent, MetricSample, find, online_cpus, process_cpu_seconds, value};

static SERIAL_CPU: Mutex<()> = Mutex::new(());

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The agent: the cgroup collector every second over the test cgroups, host and TCP off.
const CONFIG: &str = "collect:\n  host: {enabled: false}\n  tcp: {enabled: false}\n  \
                      cgroups:\n    interval: 1s\n    timeout: 1s\n    root: /sys/fs/cgroup\n    \
                      include: ['lookout-test-*']\n";

/// A Python process that says `ok` once started, then does what it is told on stdin, one
/// command a line, answering `ok` when done: `alloc N` (allocate and touch N MiB, kept),
/// `free`, `spin` (answer, then spin one CPU for ever).
const WORKER: &str = r#"
import sys
print("ok", flush=True)
held = None
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "alloc":
        n = int(cmd[1]) << 20
        held = bytearray(n)
        for i in range(0, n, 4096):
            held[i] = 1
    elif cmd[0] == "free":
        held = None
    elif cmd[0] == "spin":
        print("ok", flush=True)
        while True:
            pass
    print("ok", flush=True)
"#;

/// Fails the test unless it runs as root.
fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .expect("Uid line");
    assert_eq!(
        euid, "0",
        "these tests create cgroups under {CGROUP_ROOT} and move processes into them: \
         run them as root"
    );
}

/// The hierarchy `name` under `/sys/fs/cgroup`; fails the test, saying what is missing,
/// unless it is there and holds `marker`.
fn hierarchy(name: &str, marker: &str) -> PathBuf {
    let dir = Path::new(CGROUP_ROOT).join(name);
    assert!(
        dir.join(marker).exists(),
        "{} has no {marker}: these tests need the cgroup v1 memory, cpuacct and pids \
         hierarchies and the v2 one at {CGROUP_ROOT}/unified (a hybrid host; see \
         `mount | grep cgroup`)",
        dir.display()
    );
    dir
}

/// Where each hierarchy a test uses is, checked.
fn dir_of(h: &str) -> PathBuf {
    match h {
        "memory" => hierarchy(h, "memory.usage_in_bytes"),
        "cpuacct" => hierarchy(h, "cpuacct.usage"),
        "pids" => hierarchy(h, "cgroup.procs"),
        "unified" => hierarchy(h, "cgroup.controllers"),
        other => panic!("no hierarchy {other} in these tests"),
    }
}

/// A worker process: its stdin for commands and its stdout for answers.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    /// Sends `command` and waits for its `ok`; `false` when the worker died instead.
    fn tell(&mut self, command: &str) -> bool {
        writeln!(self.stdin, "{command}").expect("write to the worker");
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).expect("read the worker");
        match answer.trim() {
            "ok" => true,
            "" => false,
            other => panic!("worker answered {other:?} to {command}"),
        }
    }
}

/// The Python interpreter itself, not a wrapper such as a pyenv shim: a wrapper's own
/// child processes would use CPU in the cgroup that the worker's figures do not count.
fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let out = Command::new(lookout_tests::require("python3", "python3"))
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .expect("run python3");
            assert!(out.status.success(), "python3 -c: {out:?}");
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        })
        .clone()
}

/// Cgroups of one name in several hierarchies, and the workers put in them; the workers
/// are killed and the cgroups removed on drop.
struct TestCgroup {
    name: String,
    dirs: Vec<PathBuf>,
    workers: Vec<Worker>,
}

impl TestCgroup {
    /// A new cgroup `lookout-test-<what>-<pid>-<n>` in each of `hierarchies`.
    fn new(what: &str, hierarchies: &[&str]) -> TestCgroup {
        require_root();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("lookout-test-{what}-{}-{n}", std::process::id());
        let mut cgroup = TestCgroup {
            name,
            dirs: Vec::new(),
            workers: Vec::new(),
        };
        for h in hierarchies {
            let dir = dir_of(h).join(&cgroup.name);
            std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            cgroup.dirs.push(dir);
        }
        cgroup
    }

    /// Writes `value` to `file` of the cgroup in `hierarchy`.
    fn set(&self, hierarchy: &str, file: &str, value: &str) {
        let dir = dir_of(hierarchy).join(&self.name);
        let path = dir.join(file);
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Starts a worker and, once it is up, moves it into the cgroup in every hierarchy (what
    /// its start-up used stays where it ran); returns its index.
    fn spawn(&mut self) -> usize {
        let mut child = Command::new(python())
            .args(["-c", WORKER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let pid = child.id().to_string();
        let mut worker = Worker {
            child,
            stdin,
            stdout,
        };
        let mut started = String::new();
        worker
            .stdout
            .read_line(&mut started)
            .expect("read the worker");
        assert_eq!(started.trim(), "ok", "the worker did not start");
        self.workers.push(worker);
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, &pid).unwrap_or_else(|e| panic!("{}: {e}", procs.display()));
        }
        self.workers.len() - 1
    }

    fn worker(&mut self, index: usize) -> &mut Worker {
        &mut self.workers[index]
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
        for dir in &self.dirs {
            // A killed process leaves its cgroup a moment after wait() returns.
            let mut tries = 0;
            while let Err(e) = std::fs::remove_dir(dir) {
                tries += 1;
                if tries > 100 {
                    eprintln!("could not remove {}: {e}", dir.display());
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The value of `metric` for cgroup `name`.
fn of(m: &[MetricSample], metric: &str, name: &str) -> Option<f64> {
    value(m, metric, &[("cgroup", name)])
}

const MIB: f64 = 1024.0 * 1024.0;

#[test]
fn memory_follows_a_process_holding_60_mib() {
    let mut cg = TestCgroup::new("mem", &["memory", "cpuacct", "pids"]);
    let w = cg.spawn();
    let agent = Agent::start(CONFIG);
    let name = cg.name.clone();

    // Idle, the interpreter's pages stay charged where it started: little here.
    let before = agent.wait_for(Duration::from_secs(10), |m| {
        of(m, "lookout_cgroup_memory_bytes", &name)
    });
    assert!(before < 8.0 * MIB, "an idle worker shows {before} bytes");

    assert!(cg.worker(w).tell("alloc 60"));
    let held = agent.wait_for(Duration::from_secs(10), |m| {
        of(m, "lookout_cgroup_memory_bytes", &name).filter(|b| *b >= 60.0 * MIB)
    });
    assert!(
        held < 70.0 * MIB,
        "a worker holding 60 MiB shows {} MiB",
        held / MIB
    );
    let m = agent.metrics();
    // one task, in the three hierarchies merged into one cgroup; no limit
    assert_eq!(of(&m, "lookout_cgroup_pids", &name), Some(1.0));
    assert!(of(&m, "lookout_cgroup_cpu_seconds_total", &name).is_some());
    assert_eq!(of(&m, "lookout_cgroup_memory_limit_bytes", &name), None);
    assert_eq!(of(&m, "lookout_cgroup_memory_usage_ratio", &name), None);
    assert_eq!(of(&m, "lookout_cgroup_oom_kills_total", &name), Some(0.0));
    let sample = find(&m, "lookout_cgroup_memory_bytes", &[("cgroup", &name)]).unwrap();
    assert_eq!(sample.labels["unit"], "");
    assert_eq!(sample.labels["container_id"], "");
    assert_eq!(value(&m, "lookout_cgroups_dropped", &[]), Some(0.0));

    // and it goes back down when the memory is freed
    assert!(cg.worker(w).tell("free"));
    agent.wait_for(Duration::from_secs(10), |m| {
        of(m, "lookout_cgroup_memory_bytes", &name).filter(|b| *b < 8.0 * MIB)
    });
}

#[test]
fn a_memory_limit_gives_the_usage_ratio() {
    let mut cg = TestCgroup::new("limit", &["memory"]);
    cg.set(
        "memory",
        "memory.limit_in_bytes",
        &(128u64 << 20).to_string(),
    );
    let w = cg.spawn();
    assert!(cg.worker(w).tell("alloc 60"));
    let agent = Agent::start(CONFIG);
    let name = cg.name.clone();
    let (bytes, limit, ratio) = agent.wait_for(Duration::from_secs(10), |m| {
        Some((
            of(m, "lookout_cgroup_memory_bytes", &name)?,
            of(m, "lookout_cgroup_memory_limit_bytes", &name)?,
            of(m, "lookout_cgroup_memory_usage_ratio", &name)?,
        ))
    });
    assert_eq!(limit, 128.0 * MIB);
    assert!(
        (ratio - bytes / limit).abs() < 1e-12,
        "{ratio} vs {bytes}/{limit}"
    );
    assert!(
        (0.46..0.55).contains(&ratio),
        "60 MiB of 128 MiB gives a ratio of {ratio}"
    );
    // only the memory hierarchy holds it: no CPU figure, the processes counted
    let m = agent.metrics();
    assert_eq!(of(&m, "lookout_cgroup_cpu_seconds_total", &name), None);
    assert_eq!(of(&m, "lookout_cgroup_pids", &name), Some(1.0));
}

#[test]
fn an_oom_kill_raises_the_counter() {
    let mut cg = TestCgroup::new("oom", &["memory"]);
    cg.set(
        "memory",
        "memory.limit_in_bytes",
        &(32u64 << 20).to_string(),
    );
    let w = cg.spawn();
    let agent = Agent::start(CONFIG);
    let name = cg.name.clone();
    agent.wait_for(Duration::from_secs(10), |m| {
        of(m, "lookout_cgroup_oom_kills_total", &name).filter(|k| *k == 0.0)
    });

    // 200 MiB in a 32 MiB cgroup without swap: the OOM killer takes the worker
    assert!(!cg.worker(w).tell("alloc 200"), "the worker survived");
    let status = cg.worker(w).child.wait().expect("wait");
    assert_eq!(status.signal(), Some(9), "the worker ended with {status:?}");
    let kills = agent.wait_for(Duration::from_secs(10), |m| {
        of(m, "lookout_cgroup_oom_kills_total", &name).filter(|k| *k >= 1.0)
    });
    assert_eq!(kills, 1.0);
    // the cgroup is still there, empty
    agent.wait_for(Duration::from_secs(10), |m| {
        of(m, "lookout_cgroup_pids", &name).filter(|p| *p == 0.0)
    });
}

#[test]
fn cpu_follows_a_busy_loop() {
    let _serial = SERIAL_CPU.lock().unwrap_or_else(|e| e.into_inner());
    let mut cg = TestCgroup::new("cpu", &["cpuacct", "memory"]);
    let w = cg.spawn();
    let agent = Agent::start(CONFIG);
    let name = cg.name.clone();
    let cpus = online_cpus();
    let idle = agent.wait_for(Duration::from_secs(10), |m| {
        of(m, "lookout_cgroup_cpu_usage_ratio", &name)
    });
    assert!(idle < 0.05 / cpus, "an idle worker uses {idle} of the host");

    assert!(cg.worker(w).tell("spin"));
    agent.wait_for_runs_from_now("cgroups");
    let m = agent.metrics();
    let pid = cg.workers[w].child.id();
    let own = process_cpu_seconds(pid);
    let ratio = of(&m, "lookout_cgroup_cpu_usage_ratio", &name).expect("ratio");
    let seconds = of(&m, "lookout_cgroup_cpu_seconds_total", &name).expect("seconds");
    // one spinning CPU of `cpus`; other work on the host may take a little of it
    assert!(
        ratio > 0.6 / cpus && ratio <= 1.05 / cpus,
        "one busy CPU of {cpus} gives a ratio of {ratio}"
    );
    // cpuacct counts what the process used since it was moved (its start-up is not in
    // it), at the agent's last run, before `own` was read
    assert!(
        seconds <= own + 0.05 && seconds > own - 2.0,
        "cgroup {seconds} s, process {own} s"
    );
}

#[test]
fn unified_hierarchy_cpu_and_processes_follow() {
    let _serial = SERIAL_CPU.lock().unwrap_or_else(|e| e.into_inner());
    let mut cg = TestCgroup::new("v2", &["unified"]);
    let busy = cg.spawn();
    cg.spawn();
    cg.spawn();
    let agent = Agent::start(CONFIG);
    let name = cg.name.clone();
    let cpus = online_cpus();
    // no pids controller in the unified hierarchy here: the processes are counted
    agent.wait_for(Duration::from_secs(10), |m| {
        of(m, "lookout_cgroup_pids", &name).filter(|p| *p == 3.0)
    });

    assert!(cg.worker(busy).tell("spin"));
    agent.wait_for_runs_from_now("cgroups");
    let m = agent.metrics();
    let own = process_cpu_seconds(cg.workers[busy].child.id());
    let ratio = of(&m, "lookout_cgroup_cpu_usage_ratio", &name).expect("ratio");
    let seconds = of(&m, "lookout_cgroup_cpu_seconds_total", &name).expect("seconds");
    assert!(
        ratio > 0.6 / cpus && ratio <= 1.05 / cpus,
        "one busy CPU of {cpus} gives a ratio of {ratio}"
    );
    // cpu.stat counts the three processes since they were moved; the two idle ones add
    // next to nothing
    assert!(
        seconds <= own + 0.1 && seconds > own - 2.0,
        "cgroup {seconds} s, busy process {own} s"
    );
    // the memory controller is bound to v1 here: no memory figures from the unified cgroup
    assert_eq!(of(&m, "lookout_cgroup_memory_bytes", &name), None);

    // a worker gone is a process less
    let mut gone = cg.workers.pop().expect("a worker");
    gone.child.kill().expect("kill");
    gone.child.wait().expect("wait");
    agent.wait_for(Duration::from_secs(10), |m| {
        of(m, "lookout_cgroup_pids", &name).filter(|p| *p == 2.0)
    });
}
