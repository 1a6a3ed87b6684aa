//! The section, the discovery and the collector on the fake roots of
//! `tests/fixtures/cgroup/roots` (built by `make-roots.sh` from files captured on this host,
//! see the README there), and on scratch copies of them edited between runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::tree::{CgroupGlob, Hierarchy, Version, discover, walk};
use super::*;
use crate::collect::procfs::{ScratchProc, fixture, test_schedule, value_of};
use crate::config::check_section;

const DOCKER: &str = "5b1e0c7f3a9d4e2b8c6a1f0e9d8c7b6a5f4e3d2c1b0a99887766554433221100";
const CONTAINER: &str = "9c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f";

fn roots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cgroup/roots")
}

fn globs(texts: &[&str]) -> Vec<CgroupGlob> {
    texts.iter().map(|t| CgroupGlob::new(t).unwrap()).collect()
}

fn config(root: &Path, include: &[&str], max_cgroups: usize) -> CgroupsConfig {
    CgroupsConfig {
        enabled: true,
        schedule: test_schedule(),
        root: root.to_path_buf(),
        include: globs(include),
        exclude: Vec::new(),
        max_cgroups,
    }
}

/// A collector over `root` with the default globs, counting the 2 CPUs of the `t0` fixture.
fn collector(root: &Path) -> CgroupsCollector {
    CgroupsCollector::new(&config(root, DEFAULT_INCLUDE, 500), fixture("t0"))
}

/// The value of `metric` for cgroup `path`, if exported.
fn value(samples: &[Sample], metric: &str, path: &str) -> Option<f64> {
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s.metric.name == metric && s.labels[0].1 == path)
        .map(|s| s.value)
        .collect();
    assert!(found.len() <= 1, "{metric} {path}: {found:?}");
    found.first().copied()
}

/// The cgroup paths of the samples, each once, in order.
fn paths(samples: &[Sample]) -> Vec<String> {
    let mut p: Vec<String> = samples
        .iter()
        .filter(|s| !s.labels.is_empty())
        .map(|s| s.labels[0].1.clone())
        .collect();
    p.dedup();
    p
}

/// Copies the fixture root `name` (symlinks as symlinks) into a scratch directory.
fn scratch_copy(name: &str) -> ScratchProc {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), target)
                    .unwrap();
            } else if kind.is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let scratch = ScratchProc::new(&format!("cgroups-{name}"));
    copy(&roots().join(name), scratch.proc().root());
    scratch
}

// ---------------------------------------------------------------------------------------
// The section

#[test]
fn defaults_when_absent() {
    let c = CgroupsSection::builtin();
    assert!(c.enabled);
    assert_eq!(c.root, PathBuf::from("/sys/fs/cgroup"));
    assert_eq!(c.schedule.interval, Duration::from_secs(10));
    let include: Vec<&str> = c.include.iter().map(CgroupGlob::as_str).collect();
    assert_eq!(include, DEFAULT_INCLUDE);
    assert!(c.exclude.is_empty());
    assert_eq!(c.max_cgroups, 500);
}

#[test]
fn section_reads_every_key() {
    let c = check_section::<CgroupsSection>(
        "{enabled: false, interval: 1s, timeout: 500ms, root: /host/sys/fs/cgroup, \
         include: ['lookout-test-*', 'a/**'], exclude: ['a/b'], max_cgroups: 3}\n",
        "collect.cgroups",
    )
    .unwrap();
    assert!(!c.enabled);
    assert_eq!(c.schedule.interval, Duration::from_secs(1));
    assert_eq!(c.schedule.timeout, Duration::from_millis(500));
    assert_eq!(c.root, PathBuf::from("/host/sys/fs/cgroup"));
    assert_eq!(format!("{:?}", c.include), r#"["lookout-test-*", "a/**"]"#);
    assert_eq!(format!("{:?}", c.exclude), r#"["a/b"]"#);
    assert_eq!(c.max_cgroups, 3);
    // `[]` includes nothing
    let c = check_section::<CgroupsSection>("include: []\n", "collect.cgroups").unwrap();
    assert!(c.include.is_empty());
}

#[test]
fn section_reports_every_problem_with_its_path() {
    let problems = check_section::<CgroupsSection>(
        "root: sys/fs/cgroup\n\
         include: ['ok/*', 'a/[b', '/system.slice/*.service', 'a**', '', 'a//b', 'x/']\n\
         exclude: ['[z-a]']\n\
         max_cgroups: 0\n\
         interval: 0s\n",
        "collect.cgroups",
    )
    .unwrap_err();
    let got: Vec<(String, String)> = problems
        .0
        .iter()
        .map(|p| (p.path.clone(), p.message.clone()))
        .collect();
    let expected: &[(&str, &str)] = &[
        ("collect.cgroups.root", "must be an absolute path"),
        (
            "collect.cgroups.max_cgroups",
            "0 is out of range: must be between 1 and 10000",
        ),
        ("collect.cgroups.interval", "out of range"),
        ("collect.cgroups.include[1]", "invalid glob \"a/[b\""),
        ("collect.cgroups.include[2]", "starts with `/`"),
        (
            "collect.cgroups.include[3]",
            "`**` must be a whole path component",
        ),
        ("collect.cgroups.include[4]", "must not be empty"),
        ("collect.cgroups.include[5]", "empty path component"),
        ("collect.cgroups.include[6]", "empty path component"),
        ("collect.cgroups.exclude[0]", "range z-a is reversed"),
    ];
    for (path, message) in expected {
        assert!(
            got.iter().any(|(p, m)| p == path && m.contains(message)),
            "no {path}: {message} in {got:#?}"
        );
    }
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    // every problem has a position in the file
    assert!(problems.0.iter().all(|p| p.line.is_some()), "{problems:?}");
}

#[test]
fn disabled_builds_nothing() {
    let context = crate::collect::Context::new(Path::new("/proc"), "/".into());
    let mut c = config(&roots().join("v2"), DEFAULT_INCLUDE, 500);
    assert_eq!(CgroupsSection::build(&c, &context).len(), 1);
    c.enabled = false;
    assert!(CgroupsSection::build(&c, &context).is_empty());
}

// ---------------------------------------------------------------------------------------
// Globs

#[test]
fn globs_match_paths_component_by_component() {
    let rows: &[(&str, &str, bool)] = &[
        // `*` stays within a component
        ("system.slice/*.service", "system.slice/nginx.service", true),
        (
            "system.slice/*.service",
            "system.slice/a/nginx.service",
            false,
        ),
        ("docker/*", "docker/abc", true),
        ("docker/*", "docker/abc/def", false),
        ("docker/*", "docker", false),
        // `**` crosses components; after a name it needs one more below
        ("kubepods*/**", "kubepods/burstable/pod1/abc", true),
        (
            "kubepods*/**",
            "kubepods.slice/kubepods-besteffort.slice",
            true,
        ),
        ("kubepods*/**", "kubepods.slice", false),
        ("**/*.scope", "init.scope", true),
        (
            "**/*.scope",
            "user.slice/user-0.slice/session-1.scope",
            true,
        ),
        ("a/**/b", "a/b", true),
        ("a/**/b", "a/x/y/b", true),
        // classes, `?`, and case
        ("lookout-test-[0-9]*", "lookout-test-12", true),
        ("lookout-test-?", "lookout-test-1", true),
        ("lookout-test-?", "lookout-test-12", false),
        ("Docker/*", "docker/abc", false),
    ];
    for (glob, path, want) in rows {
        assert_eq!(
            CgroupGlob::new(glob).unwrap().matches(path),
            *want,
            "{glob} {path}"
        );
    }
}

#[test]
fn globs_prune_only_subtrees_that_cannot_match() {
    let rows: &[(&str, &str, bool)] = &[
        // the parent of a match may hold it
        ("system.slice/*.service", "system.slice", true),
        // a match itself has nothing more below
        (
            "system.slice/*.service",
            "system.slice/nginx.service",
            false,
        ),
        // another top-level directory cannot
        ("system.slice/*.service", "user.slice", false),
        // `**` may match anything below
        ("kubepods*/**", "kubepods.slice", true),
        ("kubepods*/**", "kubepods.slice/a/b/c", true),
        ("kubepods*/**", "docker", false),
        ("**/*.scope", "anything/at/all", true),
        ("lookout-test-*", "lookout-test-1", false),
        ("lookout-test-*", "memory", false),
    ];
    for (glob, dir, want) in rows {
        let g = CgroupGlob::new(glob).unwrap();
        assert_eq!(g.may_match_below(dir), *want, "{glob} below {dir}");
    }
    // Checked against the matcher: for every path of the v2 fixture, if a path below a
    // directory matches, the directory was not pruned.
    let v2 = roots().join("v2");
    let h = discover(&v2).unwrap();
    let all = walk(&h, &globs(&["**"]), &[]);
    for glob in [
        "system.slice/*.service",
        "kubepods*/**",
        "**/*.scope",
        "*/*/*",
    ] {
        let g = CgroupGlob::new(glob).unwrap();
        for path in all.paths.keys().filter(|p| g.matches(p)) {
            let mut dir = path.as_str();
            while let Some((parent, _)) = dir.rsplit_once('/') {
                assert!(
                    g.may_match_below(parent),
                    "{glob}: {parent} pruned, {path} matches"
                );
                dir = parent;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Discovery

fn summary(h: &[Hierarchy]) -> Vec<(String, Version, bool, bool, bool)> {
    h.iter()
        .map(|h| (h.name.clone(), h.version, h.memory, h.cpuacct, h.pids))
        .collect()
}

#[test]
fn discovers_v1_hierarchies_by_their_files() {
    // cpu, blkio, devices... hold nothing this collector reads: not walked
    assert_eq!(
        summary(&discover(&roots().join("v1")).unwrap()),
        [
            ("cpuacct".into(), Version::V1, false, true, false),
            ("memory".into(), Version::V1, true, false, false),
            // its root has no pids.current: found by the name
            ("pids".into(), Version::V1, false, false, true),
        ]
    );
}

#[test]
fn discovers_hybrid_through_symlinks_once() {
    // `cpu` and `cpuacct` are symlinks to `cpu,cpuacct`: the hierarchy counts once, under
    // the first name in order
    let h = discover(&roots().join("hybrid")).unwrap();
    assert_eq!(
        summary(&h),
        [
            ("cpu".into(), Version::V1, false, true, false),
            ("memory".into(), Version::V1, true, false, false),
            ("pids".into(), Version::V1, false, false, true),
            // its root lists only hugetlb: no memory or pids file is looked for
            ("unified".into(), Version::V2, false, false, false),
        ]
    );
    assert_eq!(h[3].dir, roots().join("hybrid/unified"));
}

#[test]
fn discovers_pure_v2_at_the_root() {
    let h = discover(&roots().join("v2")).unwrap();
    // memory and pids are among the controllers its root lists
    assert_eq!(
        summary(&h),
        [(String::new(), Version::V2, true, false, true)]
    );
    assert_eq!(h[0].dir, roots().join("v2"));
}

#[test]
fn a_root_without_hierarchies_is_an_error() {
    let empty = ScratchProc::new("cgroups-empty");
    std::fs::create_dir_all(empty.proc().path("not-a-cgroup")).unwrap();
    let err = discover(empty.proc().root()).unwrap_err();
    assert!(err.contains("no cgroup hierarchy under"), "{err}");
    let err = discover(Path::new("/nonexistent-lookout-cgroup")).unwrap_err();
    assert!(err.contains("reading /nonexistent-lookout-cgroup"), "{err}");
    // and the collector's run fails with it
    let err = collector(Path::new("/nonexistent-lookout-cgroup"))
        .collect(Instant::now())
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent-lookout-cgroup"),
        "{err}"
    );
}

#[test]
fn walk_merges_hierarchies_and_honours_exclude() {
    let h = discover(&roots().join("hybrid")).unwrap();
    let found = walk(&h, &globs(DEFAULT_INCLUDE), &[]);
    let docker = format!("docker/{DOCKER}");
    let got: Vec<(&str, u32)> = found.paths.iter().map(|(p, m)| (p.as_str(), *m)).collect();
    // bits: 0 cpu,cpuacct, 1 memory, 2 pids, 3 unified
    assert_eq!(
        got,
        [
            (docker.as_str(), 0b1011),
            ("system.slice/cron.service", 0b1000),
            ("system.slice/nginx.service", 0b1111),
        ]
    );
    assert!(!found.truncated && found.unreadable.is_empty());
    let found = walk(
        &h,
        &globs(DEFAULT_INCLUDE),
        &globs(&["docker/*", "*/cron.*"]),
    );
    assert_eq!(
        found.paths.keys().collect::<Vec<_>>(),
        ["system.slice/nginx.service"]
    );
}

// ---------------------------------------------------------------------------------------
// The collector

#[test]
fn v1_values_from_three_hierarchies() {
    let samples = collector(&roots().join("v1"))
        .collect(Instant::now())
        .unwrap();
    let nginx = "system.slice/nginx.service";
    let cron = "system.slice/cron.service";
    let docker = format!("docker/{DOCKER}");
    assert_eq!(paths(&samples), [docker.as_str(), cron, nginx]);
    // nginx.service: the captured process
    assert_eq!(
        value(&samples, "lookout_cgroup_cpu_seconds_total", nginx),
        Some(1.146752014)
    );
    assert_eq!(
        value(&samples, "lookout_cgroup_memory_bytes", nginx),
        Some((80_998_400 - 16_785_408) as f64)
    );
    assert_eq!(
        value(&samples, "lookout_cgroup_memory_limit_bytes", nginx),
        Some(134_217_728.0)
    );
    assert_eq!(
        value(&samples, "lookout_cgroup_memory_usage_ratio", nginx),
        Some(64_212_992.0 / 134_217_728.0)
    );
    assert_eq!(
        value(&samples, "lookout_cgroup_oom_kills_total", nginx),
        Some(0.0)
    );
    // pids.current: the process, its thread and its child
    assert_eq!(value(&samples, "lookout_cgroup_pids", nginx), Some(3.0));
    // no ratio on the first run
    assert_eq!(
        value(&samples, "lookout_cgroup_cpu_usage_ratio", nginx),
        None
    );
    // cron.service: no limit, so no limit series and no ratio; not in the pids hierarchy,
    // so its processes are counted
    assert_eq!(
        value(&samples, "lookout_cgroup_memory_bytes", cron),
        Some(64_212_992.0)
    );
    assert_eq!(
        value(&samples, "lookout_cgroup_memory_limit_bytes", cron),
        None
    );
    assert_eq!(
        value(&samples, "lookout_cgroup_memory_usage_ratio", cron),
        None
    );
    assert_eq!(value(&samples, "lookout_cgroup_pids", cron), Some(2.0));
    // the container the OOM killer emptied
    assert_eq!(
        value(&samples, "lookout_cgroup_oom_kills_total", &docker),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "lookout_cgroup_memory_limit_bytes", &docker),
        Some(33_554_432.0)
    );
    assert_eq!(value(&samples, "lookout_cgroup_pids", &docker), Some(0.0));
    // labels
    let labels = |path: &str| {
        samples
            .iter()
            .find(|s| s.labels.first().is_some_and(|l| l.1 == path))
            .unwrap()
            .labels
            .clone()
    };
    assert_eq!(
        labels(nginx),
        [
            ("cgroup", nginx.to_string()),
            ("unit", "nginx.service".to_string()),
            ("container_id", String::new())
        ]
    );
    assert_eq!(
        labels(&docker),
        [
            ("cgroup", docker.clone()),
            ("unit", String::new()),
            ("container_id", DOCKER.to_string())
        ]
    );
    // nothing dropped, said once at the end
    assert_eq!(
        samples.last().map(|s| (s.metric.name, s.value)),
        Some(("lookout_cgroups_dropped", 0.0))
    );
}

#[test]
fn hybrid_prefers_v1_and_falls_back_to_unified() {
    let samples = collector(&roots().join("hybrid"))
        .collect(Instant::now())
        .unwrap();
    let docker = format!("docker/{DOCKER}");
    // nginx.service is in both: CPU from cpuacct (ns), not cpu.stat (µs); tasks from pids
    let nginx = "system.slice/nginx.service";
    assert_eq!(
        value(&samples, "lookout_cgroup_cpu_seconds_total", nginx),
        Some(1.146752014)
    );
    assert_eq!(value(&samples, "lookout_cgroup_pids", nginx), Some(3.0));
    assert_eq!(
        value(&samples, "lookout_cgroup_memory_bytes", nginx),
        Some(64_212_992.0)
    );
    // the container: CPU from cpuacct although unified has a cpu.stat; not in pids, so
    // the processes of the unified cgroup are counted (none)
    assert_eq!(
        value(&samples, "lookout_cgroup_cpu_seconds_total", &docker),
        Some(2.5)
    );
    assert_eq!(value(&samples, "lookout_cgroup_pids", &docker), Some(0.0));
    // cron.service is only in unified, which has no memory controller: CPU and processes
    let cron = "system.slice/cron.service";
    assert_eq!(
        value(&samples, "lookout_cgroup_cpu_seconds_total", cron),
        Some(0.25)
    );
    assert_eq!(value(&samples, "lookout_cgroup_pids", cron), Some(1.0));
    assert_eq!(value(&samples, "lookout_cgroup_memory_bytes", cron), None);
    assert_eq!(
        value(&samples, "lookout_cgroup_oom_kills_total", cron),
        None
    );
}

#[test]
fn pure_v2_values() {
    let samples = collector(&roots().join("v2"))
        .collect(Instant::now())
        .unwrap();
    let pod = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8c7a6c2e_1b0c_4c8e_9a6a_0e2c1d3f4a5b.slice";
    let container = format!("{pod}/cri-containerd-{CONTAINER}.scope");
    // kubepods.slice itself is not below `kubepods*/`; the docker scope, user and init
    // cgroups match no default glob
    assert_eq!(
        paths(&samples),
        [
            "kubepods.slice/kubepods-burstable.slice",
            pod,
            container.as_str(),
            "system.slice/cron.service",
            "system.slice/nginx.service",
        ]
    );
    let nginx = "system.slice/nginx.service";
    assert_eq!(
        value(&samples, "lookout_cgroup_cpu_seconds_total", nginx),
        Some(1.146752)
    );
    assert_eq!(
        value(&samples, "lookout_cgroup_memory_bytes", nginx),
        Some((80_998_400 - 16_785_408) as f64)
    );
    assert_eq!(
        value(&samples, "lookout_cgroup_memory_limit_bytes", nginx),
        Some(134_217_728.0)
    );
    assert_eq!(value(&samples, "lookout_cgroup_pids", nginx), Some(3.0));
    // memory.max `max`: no limit series
    let cron = "system.slice/cron.service";
    assert_eq!(
        value(&samples, "lookout_cgroup_memory_bytes", cron),
        Some((23_461_888 - 4_096_000) as f64)
    );
    assert_eq!(
        value(&samples, "lookout_cgroup_memory_limit_bytes", cron),
        None
    );
    assert_eq!(value(&samples, "lookout_cgroup_pids", cron), Some(7.0));
    let labels = &samples
        .iter()
        .find(|s| s.labels[0].1 == container)
        .unwrap()
        .labels;
    assert_eq!(labels[1].1, format!("cri-containerd-{CONTAINER}.scope"));
    assert_eq!(labels[2].1, CONTAINER);

    // the Docker scope with another include: memory.events says one OOM kill
    let mut c = CgroupsCollector::new(
        &config(&roots().join("v2"), &["system.slice/docker-*.scope"], 500),
        fixture("t0"),
    );
    let samples = c.collect(Instant::now()).unwrap();
    let scope = format!("system.slice/docker-{DOCKER}.scope");
    assert_eq!(
        value(&samples, "lookout_cgroup_oom_kills_total", &scope),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "lookout_cgroup_memory_limit_bytes", &scope),
        Some(33_554_432.0)
    );
}

#[test]
fn cpu_ratio_over_made_up_instants() {
    let scratch = scratch_copy("v1");
    let mut c = collector(scratch.proc().root());
    let nginx = "system.slice/nginx.service";
    let usage = "cpuacct/system.slice/nginx.service/cpuacct.usage";
    let t0 = Instant::now();
    scratch.write(usage, b"1000000000\n");
    let first = c.collect(t0).unwrap();
    assert_eq!(value(&first, "lookout_cgroup_cpu_usage_ratio", nginx), None);
    // 1.5 CPU seconds in 2 s on 2 CPUs: 0.375 of the host
    scratch.write(usage, b"2500000000\n");
    let second = c.collect(t0 + Duration::from_secs(2)).unwrap();
    assert_eq!(
        value(&second, "lookout_cgroup_cpu_usage_ratio", nginx),
        Some(0.375)
    );
    // the counter went back (the cgroup was created again): no ratio this time
    scratch.write(usage, b"100000000\n");
    let third = c.collect(t0 + Duration::from_secs(4)).unwrap();
    assert_eq!(value(&third, "lookout_cgroup_cpu_usage_ratio", nginx), None);
    assert_eq!(
        value(&third, "lookout_cgroup_cpu_seconds_total", nginx),
        Some(0.1)
    );
    // and from there on again; more than the host can give is clamped to 1
    scratch.write(usage, b"100000000000\n");
    let fourth = c.collect(t0 + Duration::from_secs(5)).unwrap();
    assert_eq!(
        value(&fourth, "lookout_cgroup_cpu_usage_ratio", nginx),
        Some(1.0)
    );
    // no time passed: no ratio
    let fifth = c.collect(t0 + Duration::from_secs(5)).unwrap();
    assert_eq!(value(&fifth, "lookout_cgroup_cpu_usage_ratio", nginx), None);
}

#[test]
fn cpu_usage_ratio_table() {
    let rows: &[(f64, f64, f64, u64, Option<f64>)] = &[
        // one CPU of four, fully busy for 10 s
        (0.0, 10.0, 10.0, 4, Some(0.25)),
        // idle
        (5.0, 5.0, 10.0, 4, Some(0.0)),
        // the counter went back
        (5.0, 4.0, 10.0, 4, None),
        // no time, or no CPU
        (0.0, 1.0, 0.0, 4, None),
        (0.0, 1.0, 1.0, 0, None),
        // above the host's capacity (counters read at slightly different moments)
        (0.0, 2.1, 1.0, 2, Some(1.0)),
    ];
    for (before, now, seconds, cpus, want) in rows {
        assert_eq!(
            cpu_usage_ratio(*before, *now, *seconds, *cpus),
            *want,
            "{before} -> {now} in {seconds}s on {cpus}"
        );
    }
}

#[test]
fn max_cgroups_keeps_the_first_in_path_order() {
    let mut c = CgroupsCollector::new(&config(&roots().join("v2"), &["**"], 3), fixture("t0"));
    let samples = c.collect(Instant::now()).unwrap();
    // 12 cgroups match `**`; the first 3 in path order are kept
    assert_eq!(
        paths(&samples),
        [
            "init.scope",
            "kubepods.slice",
            "kubepods.slice/kubepods-burstable.slice",
        ]
    );
    assert_eq!(value_of(&samples, "lookout_cgroups_dropped"), 9.0);
    assert_eq!(c.dropped, 9);
    // raising the bound: nothing dropped
    c.config.max_cgroups = 100;
    let samples = c.collect(Instant::now()).unwrap();
    // the 12 less user.slice and user.slice/user-0.slice, which hold no file to read
    assert_eq!(paths(&samples).len(), 10);
    assert_eq!(value_of(&samples, "lookout_cgroups_dropped"), 0.0);
    assert_eq!(c.dropped, 0);
}

#[test]
fn vanished_and_odd_cgroups_are_skipped_not_fatal() {
    let scratch = scratch_copy("v1");
    let root = scratch.proc().root().to_path_buf();
    let mut c = collector(&root);
    let nginx = "system.slice/nginx.service";
    let cron = "system.slice/cron.service";
    // cron.service vanishes from every hierarchy; it is simply not there
    for h in ["cpuacct", "memory"] {
        std::fs::remove_dir_all(root.join(h).join(cron)).unwrap();
    }
    // nginx's memory.stat lacks the inactive file line, its usage is garbage in cpuacct,
    // and its limit file is a directory (unreadable as a file)
    scratch.write(
        "memory/system.slice/nginx.service/memory.stat",
        b"cache 1\n",
    );
    scratch.write(
        "cpuacct/system.slice/nginx.service/cpuacct.usage",
        b"lots\n",
    );
    let limit = root.join("memory/system.slice/nginx.service/memory.limit_in_bytes");
    std::fs::remove_file(&limit).unwrap();
    std::fs::create_dir(&limit).unwrap();
    let samples = c.collect(Instant::now()).unwrap();
    assert!(!paths(&samples).contains(&cron.to_string()));
    assert_eq!(
        value(&samples, "lookout_cgroup_cpu_seconds_total", nginx),
        None
    );
    assert_eq!(value(&samples, "lookout_cgroup_memory_bytes", nginx), None);
    // what did read is still there
    assert_eq!(value(&samples, "lookout_cgroup_pids", nginx), Some(3.0));
    assert_eq!(
        value(&samples, "lookout_cgroup_oom_kills_total", nginx),
        Some(0.0)
    );
    assert!(c.warned, "the first problem is logged as a warning");
    // the problems were taken by the run
    assert_eq!(c.reader.take_problems().1, 0);
    // a problem names its file
    let mut reader = tree::Reader::new(4096);
    let h = discover(&root).unwrap();
    let found = walk(&h, &globs(&[nginx]), &[]);
    reader.read(&h, nginx, found.paths[nginx]);
    let (messages, count) = reader.take_problems();
    assert_eq!(count, 3, "{messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("cpuacct.usage: expected a whole number, found \"lots\"")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("memory.stat: no `total_inactive_file` line")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("memory.limit_in_bytes: Is a directory")),
        "{messages:?}"
    );
}

#[test]
fn walk_is_bounded_in_depth() {
    let scratch = ScratchProc::new("cgroups-deep");
    scratch.write("cgroup.controllers", b"");
    let mut rel = String::new();
    for i in 0..20 {
        rel.push_str(&format!("d{i}/"));
        scratch.write(&format!("{rel}cpu.stat"), b"usage_usec 1\n");
    }
    let h = discover(scratch.proc().root()).unwrap();
    let found = walk(&h, &globs(&["**"]), &[]);
    assert_eq!(found.paths.len(), tree::MAX_DEPTH);
    assert!(
        found
            .paths
            .keys()
            .all(|p| p.split('/').count() <= tree::MAX_DEPTH)
    );
}
