//! The compressed history on a day of real host series: bytes per point, fill rate, and the
//! time to decode a day of one series.
//!
//! Run with `cargo bench -p lookout --bench history`; the figures are printed in a table
//! at the end (after Criterion's own measurements of the fill and of one decode), with the
//! bytes per point of each metric family.
//!
//! How the figures are obtained:
//!
//! - **Host traces at 10 s**: real captures of this agent's `/metrics` (a release build of
//!   lookout 0.1.0 with the default configuration) on a 2-CPU VM, scraped every 10 s by a
//!   Python loop, keeping the host families (CPU, load, memory, swap, filesystem, disk,
//!   network, TCP connections, processes, uptime, collector durations and status, the
//!   agent's own process: 92 series) with their values as scraped
//!   (`benches/data/host_trace.py` made them from the scrapes):
//!   `host-10s.trace`, 45 minutes at moderate load (CPU 45 % busy on average, load 1.4),
//!   and `host-10s-busy.trace`, 16 minutes while the machine was building Rust (CPU 83 %,
//!   load 3.0; its scrapes are late by more, so its timestamps cost more).
//!   Each is replayed until every series has a day of points (8,640): the scrape times'
//!   real gaps, repeated; gauges repeated as they are; counters continued across
//!   repetitions by adding, in their own decimal digits, what they grew over the trace, so
//!   they stay monotonic short decimals as a real counter would. Points go in scrape by
//!   scrape, one per series, as the store would push them.
//! - **Bytes per point**: the sum of `SeriesHistory::bytes()` (every allocation as malloc
//!   sizes it, the block lists included) over the points held.
//! - **Fill rate**: points pushed per second of wall time while filling the day, the best
//!   of five fills (the histogram model: the time spent in `push` only).
//! - **Decode**: `points(first, last)` of the whole day of one series into a reused vector,
//!   the best of 20 runs per series; the median series and the slowest one.
//! - **Histogram model at 1 s**: 20 histograms of 15 buckets (300 series of cumulative
//!   integer counts), each fed by its own request rate (0.2 to 100 requests a second,
//!   log-spaced, ±50 % over the day) with log-normal latencies, at 1 s for a day (86,400
//!   points a series), with the moderate trace's timing jitter. A model, not a capture.

// Benchmarks are test code: a missing fixture should stop them loudly.
#![allow(clippy::panic)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use lookout::history::{Millis, SeriesHistory};

const DAY_MS: Millis = 24 * 3600 * 1000;

/// One series of the trace.
struct Column {
    name: String,
    counter: bool,
    /// Value text of each scrape, `None` where the series was absent.
    values: Vec<Option<String>>,
}

/// The host trace: scrape times (unix ms) and the series.
struct Trace {
    times: Vec<Millis>,
    columns: Vec<Column>,
}

/// The trace of 45 minutes at moderate load (CPU 45 % busy on average, load 1.4).
const TRACE: &str = "host-10s.trace";
/// The trace of 16 minutes while the machine was busy building (CPU 83 %, load 3.0).
const BUSY_TRACE: &str = "host-10s-busy.trace";

fn load_trace(file: &str) -> Trace {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("benches/data")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut columns: Vec<Column> = Vec::new();
    let mut times = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(rest) = line.strip_prefix("series ") {
            let (kind, name) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad series line {line:?}"));
            columns.push(Column {
                name: name.to_string(),
                counter: kind == "counter",
                values: Vec::new(),
            });
            continue;
        }
        let mut fields = line.split(' ');
        let dt: Millis = fields
            .next()
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("bad time in {line:?}"));
        times.push(times.last().map_or(dt, |t| t + dt));
        for (c, field) in columns.iter_mut().zip(fields.by_ref()) {
            let value = match field {
                "-" => None,
                "=" => c.values.last().cloned().flatten(),
                v => Some(v.to_string()),
            };
            c.values.push(value);
        }
        assert!(fields.next().is_none(), "more fields than series: {line:?}");
    }
    assert!(columns.iter().all(|c| c.values.len() == times.len()));
    Trace { times, columns }
}

/// A decimal value text as an integer and its number of decimals (`6910.74` -> 691074, 2).
fn decimal(text: &str) -> Option<(i64, u32)> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = format!("{int}{frac}");
    Some((digits.parse().ok()?, u32::try_from(frac.len()).ok()?))
}

/// Every series' values over a day: the trace repeated until `points` scrapes, counters
/// continued monotonically. Also the scrape times.
fn replay(trace: &Trace, points: usize) -> (Vec<Millis>, Vec<Vec<Option<f64>>>) {
    let len = trace.times.len();
    let mut times = Vec::with_capacity(points);
    let mut t = trace.times[0];
    for i in 0..points {
        if i > 0 {
            let j = i % len;
            t += if j == 0 {
                10_000
            } else {
                trace.times[j] - trace.times[j - 1]
            };
        }
        times.push(t);
    }
    let columns = trace
        .columns
        .iter()
        .map(|c| {
            let k = c
                .values
                .iter()
                .flatten()
                .filter_map(|v| decimal(v).map(|d| d.1))
                .max()
                .unwrap_or(0);
            let scaled = |v: &str| decimal(v).map(|(n, d)| n * 10i64.pow(k - d));
            let present: Vec<&String> = c.values.iter().flatten().collect();
            let growth = match (present.first(), present.last()) {
                (Some(a), Some(b)) if c.counter => scaled(b).zip(scaled(a)).map(|(b, a)| b - a),
                _ => None,
            };
            (0..points)
                .map(|i| {
                    let text = c.values[i % len].as_deref()?;
                    let rep = (i / len) as i64;
                    match (growth, scaled(text)) {
                        // n / 10^k: the nearest f64 to the decimal, as parsing its text gives.
                        (Some(g), Some(n)) => Some((n + rep * g) as f64 / 10f64.powi(k as i32)),
                        _ => Some(text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"))),
                    }
                })
                .collect()
        })
        .collect();
    (times, columns)
}

/// Fills one history per series, scrape by scrape; the time the pushes took.
fn fill(times: &[Millis], columns: &[Vec<Option<f64>>]) -> (Vec<SeriesHistory>, Duration) {
    let mut histories = vec![SeriesHistory::new(); columns.len()];
    let start = Instant::now();
    for (i, &t) in times.iter().enumerate() {
        for (h, c) in histories.iter_mut().zip(columns) {
            if let Some(v) = c[i] {
                h.push(t, v);
            }
        }
    }
    (histories, start.elapsed())
}

/// The best of 20 decodes of the whole of `h`.
fn decode_time(h: &SeriesHistory, out: &mut Vec<(Millis, f64)>) -> Duration {
    (0..20)
        .map(|_| {
            out.clear();
            let start = Instant::now();
            h.points(Millis::MIN, Millis::MAX, out);
            black_box(&out);
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// The figures of one case.
struct Figures {
    case: String,
    series: usize,
    points: usize,
    bytes: usize,
    fill_rate: f64,
    decode_median: Duration,
    decode_max: Duration,
    points_per_series: usize,
}

fn figures(case: &str, histories: &[SeriesHistory], fill_time: Duration) -> Figures {
    let points: usize = histories.iter().map(SeriesHistory::len).sum();
    let bytes = histories.iter().map(SeriesHistory::bytes).sum();
    let mut out = Vec::new();
    let mut decodes: Vec<Duration> = histories.iter().map(|h| decode_time(h, &mut out)).collect();
    decodes.sort();
    Figures {
        case: case.to_string(),
        series: histories.len(),
        points,
        bytes,
        fill_rate: points as f64 / fill_time.as_secs_f64(),
        decode_median: decodes[decodes.len() / 2],
        decode_max: decodes[decodes.len() - 1],
        points_per_series: histories.iter().map(SeriesHistory::len).max().unwrap_or(0),
    }
}

/// Bytes and points of each metric family.
type Families = BTreeMap<String, (usize, usize)>;

/// The host case: a day of a trace, the best of five fills.
fn host(case: &str, file: &str) -> (Figures, Families) {
    let trace = load_trace(file);
    let (times, columns) = replay(&trace, (DAY_MS / 10_000) as usize);
    let mut best = Duration::MAX;
    let mut histories = Vec::new();
    for _ in 0..5 {
        let (h, took) = fill(&times, &columns);
        best = best.min(took);
        histories = h;
    }
    let mut families = Families::new();
    for (c, h) in trace.columns.iter().zip(&histories) {
        let family = c.name.split('{').next().unwrap_or(&c.name).to_string();
        let e = families.entry(family).or_default();
        e.0 += h.bytes();
        e.1 += h.len();
    }
    (figures(case, &histories, best), families)
}

/// The loaded case: 20 histograms of 15 buckets at 1 s for a day.
fn histograms() -> Figures {
    const HISTOGRAMS: usize = 20;
    const BOUNDS: [f64; 14] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    let seconds = (DAY_MS / 1000) as usize;
    // The host trace's timing jitter (each scrape's offset from its 10 s grid), reused.
    let trace = load_trace(TRACE);
    let base = trace.times[0];
    let jitter: Vec<Millis> = trace
        .times
        .iter()
        .enumerate()
        .map(|(i, t)| (t - base) - i as Millis * 10_000)
        .collect();
    let low = jitter.iter().min().copied().unwrap_or(0);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut histories = vec![SeriesHistory::new(); HISTOGRAMS * (BOUNDS.len() + 1)];
    let mut cumulative = vec![0u64; histories.len()];
    let mut buckets = [0u64; BOUNDS.len() + 1];
    let mut pushing = Duration::ZERO;
    for s in 0..seconds {
        let t = base + s as Millis * 1000 + jitter[s % jitter.len()] - low;
        let phase = (s as f64 / seconds as f64 * std::f64::consts::TAU).sin();
        for h in 0..HISTOGRAMS {
            let rate = 0.2 * 500f64.powf(h as f64 / (HISTOGRAMS - 1) as f64) * (1.0 + 0.5 * phase);
            let median = 0.005 * 40f64.powf(h as f64 / (HISTOGRAMS - 1) as f64);
            // Poisson arrivals within the second.
            let mut n = 0;
            let mut at = -rng.f64().max(f64::MIN_POSITIVE).ln() / rate;
            while at < 1.0 {
                n += 1;
                at += -rng.f64().max(f64::MIN_POSITIVE).ln() / rate;
            }
            buckets.fill(0);
            for _ in 0..n {
                // Log-normal latency (sigma 1) by Box-Muller.
                let z = (-2.0 * rng.f64().max(f64::MIN_POSITIVE).ln()).sqrt()
                    * (std::f64::consts::TAU * rng.f64()).cos();
                let latency = median * z.exp();
                buckets[BOUNDS.partition_point(|&b| b < latency)] += 1;
            }
            let series = &mut cumulative[h * buckets.len()..(h + 1) * buckets.len()];
            let mut sum = 0;
            for (c, b) in series.iter_mut().zip(buckets) {
                sum += b;
                *c += sum;
            }
        }
        let start = Instant::now();
        for (h, &c) in histories.iter_mut().zip(&cumulative) {
            h.push(t, c as f64);
        }
        pushing += start.elapsed();
    }
    figures("histogram model at 1 s", &histories, pushing)
}

fn bench(c: &mut Criterion) {
    let trace = load_trace(TRACE);
    let (times, columns) = replay(&trace, (DAY_MS / 10_000) as usize);
    let mut group = c.benchmark_group("history");
    group.sample_size(10);
    let points: usize = columns.iter().flatten().flatten().count();
    group.bench_function(
        format!(
            "fill 24 h of {} host series at 10 s ({points} points)",
            columns.len()
        ),
        |b| b.iter(|| black_box(fill(&times, &columns))),
    );
    let (histories, _) = fill(&times, &columns);
    let biggest = histories
        .iter()
        .max_by_key(|h| h.bytes())
        .unwrap_or_else(|| panic!("no series"));
    let mut out = Vec::new();
    group.bench_function(
        format!(
            "decode 24 h of the largest host series ({} points)",
            biggest.len()
        ),
        |b| {
            b.iter(|| {
                out.clear();
                biggest.points(Millis::MIN, Millis::MAX, &mut out);
                black_box(&out);
            })
        },
    );
    group.finish();
}

fn millis(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn print_table(rows: &[Figures], families: &[(&str, Families)]) {
    println!();
    println!("history: a day of points, figures (how they are obtained: benches/history.rs)");
    println!(
        "{:<30} {:>7} {:>12} {:>13} {:>9} {:>14}   decode 24 h of one series: median / slowest",
        "case", "series", "points", "bytes", "bytes/pt", "fill points/s",
    );
    for f in rows {
        println!(
            "{:<30} {:>7} {:>12} {:>13} {:>9.3} {:>14.0}   {} / {} ({} points)",
            f.case,
            f.series,
            f.points,
            f.bytes,
            f.bytes as f64 / f.points as f64,
            f.fill_rate,
            millis(f.decode_median),
            millis(f.decode_max),
            f.points_per_series
        );
    }
    println!();
    println!(
        "host traces by metric family, bytes/pt (share of the trace's bytes), most expensive first:"
    );
    print!("  {:<44}", "family");
    for (case, _) in families {
        print!(" {case:>22}");
    }
    println!();
    let per_point = |f: &Families, name: &str| {
        f.get(name).map_or(0.0, |(bytes, points)| {
            *bytes as f64 / (*points).max(1) as f64
        })
    };
    let mut names: Vec<&String> = families.iter().flat_map(|(_, f)| f.keys()).collect();
    names.sort();
    names.dedup();
    names.sort_by(|a, b| {
        let cost = |n: &str| families.iter().map(|(_, f)| per_point(f, n)).sum::<f64>();
        cost(b).total_cmp(&cost(a))
    });
    for name in names {
        print!("  {name:<44}");
        for (_, f) in families {
            let total: usize = f.values().map(|v| v.0).sum();
            let bytes = f.get(name).map_or(0, |v| v.0);
            print!(
                " {:>12.3} ({:>5.1} %)",
                per_point(f, name),
                bytes as f64 * 100.0 / total.max(1) as f64
            );
        }
        println!();
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let (moderate, families) = host("host trace at 10 s", TRACE);
    let (busy, busy_families) = host("busy host trace at 10 s", BUSY_TRACE);
    let rows = [moderate, busy, histograms()];
    print_table(&rows, &[("trace", families), ("busy trace", busy_families)]);
}
