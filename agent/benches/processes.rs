//! One run of the processes collector over the live `/proc` with 2,000 more processes than
//! the host runs (budget: under 20 ms per run on a 2-core host).
//!
//! The bench starts 2,000 sleeping processes: 1,980 `sleep 600` and 20 of a copy of
//! `sleep` named `lookout-bench-worker` (a name longer than the 15 bytes the kernel keeps,
//! so matching it needs the first argument), all killed at the end. Two groups are
//! configured: one by program name (the 20 workers), one by a command line pattern (10 of
//! the sleeps, `sleep 600.5`); the top lists hold 10 processes each. Measured:
//! - `processes/run/2 groups + top 10`: one steady run (the collector has seen every
//!   process before, as it has on every run but the first);
//! - `processes/run/2 groups + 1,990 members in a third`: the same with a third group holding every
//!   sleep, whose members' fd directories and limits are read on every run;
//! - `processes/first run`: a new collector's first run, which reads every command line
//!   once.
//!
//! Run with `cargo bench -p lookout --bench processes`.

// Benchmarks are test code: a broken setup should stop them loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lookout::collect::processes::{ProcessesCollector, ProcessesSection, Top};
use lookout::collect::{Collector, ProcFs};
use lookout::config::check_section;

/// Processes started.
const PROCESSES: usize = 2000;
/// Of which copies of `sleep` named [`WORKER`].
const WORKERS: usize = 20;
/// Of which `sleep 600.5`.
const MARKED: usize = 10;
const WORKER: &str = "lookout-bench-worker";

/// The started processes, killed on drop.
struct Sleepers {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Sleepers {
    fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("lookout-bench-processes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let worker = dir.join(WORKER);
        let sleep = ["/usr/bin/sleep", "/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sleep");
        std::fs::copy(sleep, &worker).unwrap();
        let mut children = Vec::with_capacity(PROCESSES);
        for i in 0..PROCESSES {
            let (program, arg) = if i < WORKERS {
                (worker.as_path(), "600")
            } else if i < WORKERS + MARKED {
                (Path::new(sleep), "600.5")
            } else {
                (Path::new(sleep), "600")
            };
            children.push(
                Command::new(program)
                    .arg(arg)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("process {i}: {e}")),
            );
        }
        Sleepers { children, dir }
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn collector(groups: &str) -> ProcessesCollector {
    let config = check_section::<ProcessesSection>(
        &format!("top: 10\ngroups:\n{groups}"),
        "collect.processes",
    )
    .unwrap();
    let top = Arc::new(Top::new());
    top.configure(true, config.top, config.schedule.interval);
    ProcessesCollector::new(ProcFs::new(Path::new("/proc")), "/".into(), &config, top)
}

const TWO_GROUPS: &str = "  - {name: workers, match: {exe: lookout-bench-worker}}\n  - {name: marked, match: {cmdline: '(^|/)sleep 600\\.5$'}}\n";

fn processes(c: &mut Criterion) {
    let sleepers = Sleepers::start();
    let listed = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref().is_ok_and(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
        })
        .count();
    println!(
        "{listed} processes on the host, {} of them started by the bench",
        sleepers.children.len()
    );

    let mut group = c.benchmark_group("processes");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(10));

    // Check the figures once: the groups find their members.
    let mut two = collector(TWO_GROUPS);
    let start = Instant::now();
    let samples = two.collect(start).unwrap();
    let count = |name: &str| {
        samples
            .iter()
            .find(|s| s.metric.name == "lookout_process_group_members" && s.labels[0].1 == name)
            .map(|s| s.value)
    };
    assert_eq!(count("workers"), Some(WORKERS as f64));
    assert_eq!(count("marked"), Some(MARKED as f64));

    let mut n = 0u64;
    group.bench_function("run/2 groups + top 10", |b| {
        b.iter(|| {
            n += 1;
            two.collect(start + Duration::from_secs(n)).unwrap()
        })
    });

    let mut all = collector(&format!(
        "{TWO_GROUPS}  - {{name: all, match: {{exe: sleep}}}}\n"
    ));
    all.collect(start).unwrap();
    let mut n = 0u64;
    group.bench_function("run/2 groups + 1,990 members in a third", |b| {
        b.iter(|| {
            n += 1;
            all.collect(start + Duration::from_secs(n)).unwrap()
        })
    });

    group.sample_size(10);
    group.bench_function("first run", |b| {
        b.iter_batched(
            || collector(TWO_GROUPS),
            |mut fresh| fresh.collect(start).unwrap(),
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
    drop(sleepers);
}

criterion_group!(benches, processes);
criterion_main!(benches);
