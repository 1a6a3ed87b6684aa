//! The query API's evaluation over a day of history: `query_range` over 24 h at a 10 s step
//! (8,640 steps) of one host series, as a gauge and as a rate, and an instant query, on a
//! store filled with a day of the captured host trace at 10 s (`benches/support/day.rs`).
//! The budget is 5 ms for the range query of one series.
//!
//! Run with `cargo bench -p lookout --bench query`.

// Benchmarks are test code: a missing fixture should stop them loudly.
#![allow(clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lookout::query::recorded::{self, Answer};

#[path = "support/day.rs"]
mod day;

const END: i64 = 1_800_000_000_000;
const DAY_MS: i64 = 24 * 3_600_000;

fn query_range(c: &mut Criterion) {
    let store = day::fill(24, END);
    let mut group = c.benchmark_group("query");
    for text in [
        "lookout_cpu_usage_ratio",
        r#"rate(lookout_cpu_seconds_total{mode="user"}[1m])"#,
        "lookout_load1 / on (host) lookout_cpus",
    ] {
        let expr = lookout::query::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        match recorded::range(&store, "bench", &expr, END - DAY_MS, END, 10_000) {
            Ok(Answer::Matrix(m)) if m.len() == 1 && m[0].1.len() > 8_000 => {}
            other => panic!("{text}: not one series of a day: {other:?}"),
        }
        group.bench_function(format!("query_range 24 h at 10 s: {text}"), |b| {
            b.iter(|| {
                black_box(recorded::range(
                    &store,
                    "bench",
                    &expr,
                    END - DAY_MS,
                    END,
                    10_000,
                ))
            })
        });
    }
    let expr = lookout::query::parse("sum by (host, mode) (rate(lookout_cpu_seconds_total[5m]))")
        .unwrap_or_else(|e| panic!("{e}"));
    match recorded::instant(&store, "bench", &expr, END) {
        Ok(Answer::Vector(v)) if v.len() > 1 => {}
        other => panic!("instant: not one value per mode: {other:?}"),
    }
    group.bench_function("instant: sum by (mode) of rates over 5m", |b| {
        b.iter(|| black_box(recorded::instant(&store, "bench", &expr, END)))
    });
    group.finish();
}

criterion_group!(benches, query_range);
criterion_main!(benches);
