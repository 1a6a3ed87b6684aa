//! Benchmarks of the agent's hot paths: one host collection tick over the captured `/proc`
//! fixtures, and rendering `/metrics` from a store of realistic and of large size.
//!
//! Run with `cargo bench -p lookout --bench host`.

// Benchmarks are test code: a missing fixture should stop them loudly.
#![allow(clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lookout::catalogue::FILESYSTEM_USAGE_RATIO;
use lookout::collect::filesystem::FixtureStatFs;
use lookout::collect::{Collector, Context, Sample};
use lookout::settings::Config;
use lookout::store::Store;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/proc")
}

/// The collectors the registry builds over the fixtures: the host ones and TCP, without
/// the agent's own process metrics (they read the bench's own `/proc/self`) and the
/// processes collector (its own bench, `processes`, runs it over live processes).
fn collectors() -> Vec<Box<dyn Collector>> {
    let mut config = Config::builtin();
    config.collect.tcp.ports = vec![6379, 8000];
    config.collect.ingest.enabled = false;
    // The cgroup collector reads the live /sys/fs/cgroup: benches/cgroups.rs measures it.
    config.collect.cgroups.enabled = false;
    let statfs = FixtureStatFs::load(fixtures().join("statvfs.txt"))
        .unwrap_or_else(|e| panic!("statvfs fixture: {e}"));
    let context = Context::new(&fixtures().join("t1"), "/".into()).with_statfs(statfs);
    let jobs = config.collect.build(&context).into_iter();
    jobs.filter_map(|job| job.blocking())
        .filter(|c| c.name() != "process" && c.name() != "processes")
        .collect()
}

fn host_tick(c: &mut Criterion) {
    let mut all = collectors();
    let start = Instant::now();
    let mut n = 0u32;
    let mut store = Store::default();
    c.bench_function("host tick: 8 collectors on fixtures into the store", |b| {
        b.iter(|| {
            n += 1;
            let now = start + Duration::from_secs(u64::from(n));
            for col in &mut all {
                if let Ok(samples) = col.collect(now) {
                    store.apply(col.name(), samples, i64::from(n) * 1000);
                }
            }
        })
    });
}

fn render(c: &mut Criterion) {
    let mut store = Store::default();
    let now = Instant::now();
    for (i, col) in collectors().iter_mut().enumerate() {
        let samples = col
            .collect(now + Duration::from_secs(i as u64))
            .unwrap_or_default();
        store.apply(col.name(), samples, 1000);
    }
    let series = store.len();
    c.bench_function(
        &format!("render /metrics: {series} series (this host)"),
        |b| b.iter(|| lookout::api::exposition::render(&store, "web-1")),
    );

    let mut big = Store::default();
    let samples = (0..1000)
        .map(|i| {
            Sample::with_labels(
                &FILESYSTEM_USAGE_RATIO,
                [
                    ("mountpoint", format!("/mnt/{i}")),
                    ("device", format!("/dev/sd{i}")),
                    ("fstype", "ext4".into()),
                ],
                f64::from(i) / 1000.0,
            )
        })
        .collect();
    big.apply("filesystem", samples, 1000);
    c.bench_function("render /metrics: 1000 series", |b| {
        b.iter(|| lookout::api::exposition::render(&big, "web-1"))
    });
}

criterion_group!(benches, host_tick, render);
criterion_main!(benches);
