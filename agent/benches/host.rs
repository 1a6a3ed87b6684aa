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
use lookout::collect::filesystem::{FilesystemCollector, FixtureStatFs};
use lookout::collect::{Collector, ProcFs, Sample, cpu, disk, load, memory, network, system, tcp};
use lookout::config::Config;
use lookout::store::Store;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/proc")
}

fn collectors() -> Vec<Box<dyn Collector>> {
    let mut config = Config::builtin();
    config.collect.tcp.ports = vec![6379, 8000];
    let proc = ProcFs::new(&fixtures().join("t1"));
    let host = &config.collect.host;
    let statfs = FixtureStatFs::load(fixtures().join("statvfs.txt"))
        .unwrap_or_else(|e| panic!("statvfs fixture: {e}"));
    vec![
        Box::new(cpu::CpuCollector::new(proc.clone(), host.schedule)),
        Box::new(load::LoadCollector::new(proc.clone(), host.schedule)),
        Box::new(memory::MemoryCollector::new(proc.clone(), host.schedule)),
        Box::new(FilesystemCollector::new(proc.clone(), "/".into(), host).with_statfs(statfs)),
        Box::new(disk::DiskCollector::new(proc.clone(), host)),
        Box::new(network::NetworkCollector::new(proc.clone(), host)),
        Box::new(system::SystemCollector::new(proc.clone(), host.schedule)),
        Box::new(tcp::TcpCollector::new(proc, &config.collect.tcp)),
    ]
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
