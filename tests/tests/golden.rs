//! Golden `/metrics`: the host collectors run on the captured `/proc` fixtures (`t0`, then
//! `t1` one second later), the cgroup collector on the fake hybrid cgroup root
//! (`tests/fixtures/cgroup/roots/hybrid`), and the processes collector twice on its own
//! captured processes, through the store and the exposition, must render exactly
//! `tests/fixtures/golden/metrics.prom`, and promtool must accept that file.
//!
//! After an intended change of output, rewrite the file with
//! `LOOKOUT_BLESS=1 cargo test -p lookout-tests --test golden` and review the diff.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lookout::collect::filesystem::FixtureStatFs;
use lookout::collect::processes::ProcessesSection;
use lookout::collect::{Collector, Context, Kind};
use lookout::settings::Config;
use lookout::store::Store;
use lookout_tests::TempDir;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn point(link: &Path, snapshot: &str) {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(fixtures().join("proc").join(snapshot), link).unwrap();
}

/// The collectors the registry builds for a configuration reading the fixtures: the host
/// ones, TCP and cgroups (no Redis, probes or ingestion configured). The agent's own process
/// metrics are left out: they measure the test itself, not the fixtures; so is the
/// processes collector, which [`process_groups`] runs over its own fixtures.
fn fixture_collectors(proc_root: &Path) -> Vec<Box<dyn Collector>> {
    let mut config = Config::builtin();
    config.collect.tcp.ports = vec![6379, 8000];
    config.collect.ingest.enabled = false;
    config.collect.cgroups.root = fixtures().join("cgroup/roots/hybrid");
    let statfs = FixtureStatFs::load(fixtures().join("proc/statvfs.txt")).unwrap();
    let context = Context::new(proc_root, "/".into()).with_statfs(statfs);
    let jobs = config.collect.build(&context);
    let names: Vec<String> = jobs.iter().map(|j| j.name().to_string()).collect();
    jobs.into_iter()
        .map(|job| {
            job.blocking()
                .unwrap_or_else(|| panic!("a network collector in {names:?}"))
        })
        .filter(|c| c.name() != "process" && c.name() != "processes")
        .collect()
}

/// The processes collector over its captured processes (`fixtures/proc-processes`, see its
/// README), built by the registry with three groups: one by program name, one by command
/// line and with a memory limit, one whose pid file does not exist.
fn process_groups() -> Box<dyn Collector> {
    let mut config = Config::builtin();
    config.collect.processes = lookout::config::check_section::<ProcessesSection>(
        "top: 0\ngroups:\n  - {name: sleeper, match: {exe: lookout-long-sleeper-name}}\n  - {name: worker, match: {cmdline: 'capture_worker\\.py'}, max_memory: 64MiB}\n  - {name: missing, match: {pidfile: /nonexistent/lookout-golden.pid}}\n",
        "collect.processes",
    )
    .unwrap();
    let context = Context::new(&fixtures().join("proc-processes"), "/".into());
    let mut jobs = ProcessesSection::build(&config.collect.processes, &context);
    assert_eq!(jobs.len(), 1);
    jobs.pop().and_then(|j| j.blocking()).unwrap()
}

fn render_fixtures() -> String {
    let dir = TempDir::new("golden");
    let link = dir.path().join("proc");
    point(&link, "t0");
    let mut collectors = fixture_collectors(&link);
    assert_eq!(collectors.len(), 9, "the host collectors, tcp and cgroups");
    collectors.push(process_groups());
    let t0 = Instant::now();
    let mut store = Store::default();
    for c in &mut collectors {
        let samples = c
            .collect(t0)
            .unwrap_or_else(|e| panic!("{} on t0: {e}", c.name()));
        store.apply(c.name(), samples, 1_000);
    }
    point(&link, "t1");
    for c in &mut collectors {
        let samples = c
            .collect(t0 + Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("{} on t1: {e}", c.name()));
        store.apply(c.name(), samples, 2_000);
    }
    lookout::api::exposition::render(&store, "fixture-host")
}

#[test]
fn fixtures_render_the_golden_exposition() {
    let golden = fixtures().join("golden/metrics.prom");
    let text = render_fixtures();
    if std::env::var_os("LOOKOUT_BLESS").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&golden)
        .unwrap_or_else(|e| panic!("{}: {e} (create it with LOOKOUT_BLESS=1)", golden.display()));
    if text != expected {
        let diff: Vec<String> = expected
            .lines()
            .zip(text.lines())
            .filter(|(a, b)| a != b)
            .take(10)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!(
            "rendered exposition differs from {} ({} vs {} lines); first differences:\n{}\n\
             rerun with LOOKOUT_BLESS=1 if the change is intended",
            golden.display(),
            expected.lines().count(),
            text.lines().count(),
            diff.join("\n")
        );
    }
}

#[test]
fn the_golden_exposition_passes_promtool() {
    let text = std::fs::read_to_string(fixtures().join("golden/metrics.prom")).unwrap();
    lookout_tests::assert_promtool_accepts_metrics(&text);
}

#[test]
fn the_golden_exposition_has_every_host_metric_with_values_from_the_fixtures() {
    let samples = lookout_tests::parse_exposition(&render_fixtures());
    // Independent of the code: MemTotal from the fixture text, in kB.
    let meminfo = std::fs::read_to_string(fixtures().join("proc/t1/meminfo")).unwrap();
    let kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let total = lookout_tests::find(&samples, "lookout_memory_total_bytes", &[])
        .unwrap()
        .value;
    assert_eq!(total, kb * 1024.0);
    for name in [
        "lookout_cpu_usage_ratio",
        "lookout_disk_io_time_ratio",
        "lookout_network_receive_bytes_per_second",
        "lookout_filesystem_usage_ratio",
        "lookout_tcp_port_connections",
    ] {
        assert!(samples.iter().any(|s| s.name == name), "{name} missing");
    }
    // Independently of the parser: lines of t1's tcp tables whose local port is 8000 (0x1F40)
    // and whose state is 01 (established).
    let mut expected = 0;
    for table in ["t1/net/tcp", "t1/net/tcp6"] {
        let text = std::fs::read_to_string(fixtures().join("proc").join(table)).unwrap();
        expected += text
            .lines()
            .skip(1)
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f[1].ends_with(":1F40") && f[3] == "01"
            })
            .count();
    }
    assert!(
        expected > 0,
        "the fixture has established connections on 8000"
    );
    let est = lookout_tests::find(
        &samples,
        "lookout_tcp_port_connections",
        &[("port", "8000"), ("state", "established")],
    );
    assert_eq!(est.map(|s| s.value), Some(expected as f64));
}

#[test]
fn the_golden_exposition_has_the_cgroups_of_the_hybrid_root() {
    let samples = lookout_tests::parse_exposition(&render_fixtures());
    let root = fixtures().join("cgroup/roots/hybrid");
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap();
    // Independent of the code: usage minus the inactive file cache, from the fixture text.
    let nginx = "memory/system.slice/nginx.service";
    let usage: f64 = read(&format!("{nginx}/memory.usage_in_bytes"))
        .trim()
        .parse()
        .unwrap();
    let inactive: f64 = read(&format!("{nginx}/memory.stat"))
        .lines()
        .find_map(|l| l.strip_prefix("total_inactive_file "))
        .unwrap()
        .parse()
        .unwrap();
    let with = [
        ("cgroup", "system.slice/nginx.service"),
        ("unit", "nginx.service"),
    ];
    assert_eq!(
        lookout_tests::value(&samples, "lookout_cgroup_memory_bytes", &with),
        Some(usage - inactive)
    );
    // Two runs on the same files: no CPU used in between.
    assert_eq!(
        lookout_tests::value(&samples, "lookout_cgroup_cpu_usage_ratio", &with),
        Some(0.0)
    );
    // The cgroupfs Docker container: its id, and the OOM kill of its memory.oom_control.
    let id = "5b1e0c7f3a9d4e2b8c6a1f0e9d8c7b6a5f4e3d2c1b0a99887766554433221100";
    let docker = lookout_tests::find(
        &samples,
        "lookout_cgroup_oom_kills_total",
        &[("container_id", id)],
    )
    .expect("the container's OOM kills");
    assert_eq!(docker.labels["cgroup"], format!("docker/{id}"));
    assert_eq!(docker.value, 1.0);
    assert_eq!(
        lookout_tests::value(&samples, "lookout_cgroups_dropped", &[]),
        Some(0.0)
    );
}
