//! One run of the cgroup collector over 200 matching cgroups of this host.
//!
//! The bench makes 200 empty cgroups `lookout-bench-<pid>-<i>`, and times one `collect` (the
//! discovery under `/sys/fs/cgroup`, the walk, the reads, the samples):
//! - `cgroups/unified/200`: in the unified (v2) hierarchy only, as on a pure v2 host whose
//!   only controllers are CPU (`cpu.stat` and `cgroup.procs` per cgroup);
//! - `cgroups/v1+unified/200`: in the v1 `memory`, `cpuacct` and `pids` hierarchies and the
//!   unified one, merged into 200 cgroups (eight files per cgroup: a hybrid host).
//!
//! Needs root and the cgroup layout of a hybrid host (`/sys/fs/cgroup/unified`); the cgroups
//! are removed at the end. Run with `cargo bench -p lookout --bench cgroups`.

// Benchmarks are test code: a broken setup should stop them loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use lookout::collect::{Collector, Context, Job};
use lookout::settings::Config;

const COUNT: usize = 200;
const ROOT: &str = "/sys/fs/cgroup";

/// The cgroups made for a bench, removed on drop.
struct Cgroups(Vec<PathBuf>);

impl Cgroups {
    /// `COUNT` cgroups named `lookout-bench-<pid>-<i>` in each of `hierarchies`.
    fn new(hierarchies: &[&str]) -> Cgroups {
        let mut made = Cgroups(Vec::new());
        for h in hierarchies {
            let dir = Path::new(ROOT).join(h);
            assert!(
                dir.join("cgroup.procs").exists(),
                "{} is not a cgroup hierarchy: this bench needs a hybrid host (v1 memory, cpuacct, pids and the unified hierarchy at {ROOT}/unified) and root",
                dir.display()
            );
            for i in 0..COUNT {
                let cgroup = dir.join(format!("lookout-bench-{}-{i:03}", std::process::id()));
                std::fs::create_dir(&cgroup)
                    .unwrap_or_else(|e| panic!("mkdir {} (root?): {e}", cgroup.display()));
                made.0.push(cgroup);
            }
        }
        made
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        // Empty cgroups: nothing keeps them, so removing them does not fail.
        for dir in &self.0 {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The cgroup collector the registry builds for `include: [lookout-bench-*]`.
fn collector() -> Box<dyn Collector> {
    let mut config = Config::builtin();
    config.collect.cgroups.include =
        vec![lookout::collect::cgroups::tree::CgroupGlob::new("lookout-bench-*").unwrap()];
    let context = Context::new(Path::new("/proc"), "/".into());
    config
        .collect
        .build(&context)
        .into_iter()
        .filter_map(Job::blocking)
        .find(|c| c.name() == "cgroups")
        .expect("the cgroups collector")
}

fn bench(c: &mut Criterion, name: &str, hierarchies: &[&str]) {
    let _cgroups = Cgroups::new(hierarchies);
    let mut collector = collector();
    let samples = collector.collect(Instant::now()).unwrap();
    let cgroups = samples
        .iter()
        .filter(|s| s.metric.name == "lookout_cgroup_pids")
        .count();
    assert_eq!(cgroups, COUNT, "every bench cgroup collected");
    c.bench_function(&format!("cgroups/{name}/{COUNT}"), |b| {
        b.iter(|| collector.collect(Instant::now()).unwrap())
    });
}

fn cgroups(c: &mut Criterion) {
    bench(c, "unified", &["unified"]);
    bench(c, "v1+unified", &["memory", "cpuacct", "pids", "unified"]);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = cgroups
}
criterion_main!(benches);
