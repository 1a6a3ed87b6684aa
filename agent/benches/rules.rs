//! One rule-evaluation tick with 10,000 alert instances.
//!
//! The store holds 10,000 filesystem series (100 devices x 100 mounts), half of them above
//! the warning threshold, so each tick steps 5,000 firing instances and 5,000 that stay
//! inactive. Two shapes: one rule over all 10,000 series, and 100 rules each selecting one
//! device's 100 series (the tick groups the series by device once, for all 100). Run with
//! `cargo bench -p lookout --bench rules`.

// Benchmarks are test code: a broken setup should stop them loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use lookout::catalogue::FILESYSTEM_USAGE_RATIO;
use lookout::collect::Sample;
use lookout::rules::engine::Engine;
use lookout::rules::load::{Defaults, parse_file};
use lookout::store::Store;

fn store() -> Store {
    let mut store = Store::default();
    let samples = (0..10_000)
        .map(|i| {
            Sample::with_labels(
                &FILESYSTEM_USAGE_RATIO,
                [
                    ("mountpoint", format!("/mnt/{i}")),
                    ("device", format!("/dev/d{}", i / 100)),
                    ("fstype", "ext4".into()),
                ],
                if i % 2 == 0 { 0.9 } else { 0.5 },
            )
        })
        .collect();
    store.apply("filesystem", samples, 0);
    store
}

fn engine(rules_yaml: &str) -> Engine {
    let defaults = Defaults {
        evaluation_interval: Duration::from_secs(10),
        stale_after: Duration::from_secs(300),
        repeat_interval: Duration::from_secs(4 * 3600),
    };
    let mut problems = Vec::new();
    let rules = parse_file(rules_yaml, "bench.yaml", &defaults, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    Engine::new(rules, Vec::new())
}

fn tick(c: &mut Criterion, name: &str, rules_yaml: &str) {
    let store = store();
    let mut engine = engine(rules_yaml);
    let mut now = 0i64;
    // Warm up to the steady state: half the instances firing.
    engine.evaluate(&store, "bench", now);
    let firing = engine.firing().count();
    assert_eq!(firing, 5_000, "steady state");
    c.bench_function(name, |b| {
        b.iter(|| {
            now += 10_000;
            engine.evaluate(&store, "bench", now)
        })
    });
}

fn one_rule(c: &mut Criterion) {
    let yaml = "groups:\n  - name: fs\n    rules:\n      - alert: FsFull\n        expr: lookout_filesystem_usage_ratio\n        warning: \"> 80%\"\n        critical: \"> 95%\"\n        hysteresis: 2%\n        summary: \"{{ labels.mountpoint }} at {{ value | percent }}\"\n";
    tick(c, "evaluate: 1 rule x 10,000 instances", yaml);
}

fn hundred_rules(c: &mut Criterion) {
    let mut yaml = String::from("groups:\n  - name: fs\n    rules:\n");
    for d in 0..100 {
        yaml.push_str(&format!(
            "      - alert: FsFull{d}\n        expr: lookout_filesystem_usage_ratio{{device=\"/dev/d{d}\"}}\n        warning: \"> 80%\"\n        hysteresis: 2%\n"
        ));
    }
    tick(c, "evaluate: 100 rules x 100 instances", &yaml);
}

criterion_group!(benches, one_rule, hundred_rules);
criterion_main!(benches);
