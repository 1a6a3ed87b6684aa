//! A day (or more) of this machine's host series, as the agent would have recorded them:
//! the captured 10-second trace `benches/data/host-10s.trace` (real scrapes of an agent)
//! replayed through a store with history, again and again, counters carried on from where
//! the previous round ended, the last point at `end`. Shared by `examples/history_day.rs`
//! (which writes it as a snapshot) and `benches/query.rs`.

use std::path::PathBuf;

use lookout::catalogue::{self, Kind};
use lookout::history::config::HistoryConfig;
use lookout::sample::{Part, Sample};
use lookout::store::{HistoryLimits, Store};

/// One series of the trace: its sample (metric and labels) and value per scrape.
struct Column {
    sample: Sample,
    values: Vec<Option<f64>>,
}

/// `name{a="b",c="d"}` as a sample of a catalogue metric (value 0).
fn sample(text: &str) -> Option<Sample> {
    let (name, labels) = match text.split_once('{') {
        Some((name, rest)) => (name, rest.trim_end_matches('}')),
        None => (text, ""),
    };
    let metric = catalogue::lookup(name).filter(|m| m.kind != Kind::Histogram)?;
    let mut pairs = Vec::new();
    for pair in labels.split("\",").filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once("=\"")?;
        let k = metric.labels.iter().copied().find(|l| *l == k)?;
        pairs.push((k, v.trim_end_matches('"').to_string()));
    }
    Some(Sample {
        metric,
        labels: pairs,
        part: Part::Value,
        value: 0.0,
    })
}

/// The scrape times (ms) and the columns of the trace.
fn load() -> (Vec<i64>, Vec<Column>) {
    let trace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/data/host-10s.trace");
    let text =
        std::fs::read_to_string(&trace).unwrap_or_else(|e| panic!("{}: {e}", trace.display()));
    let mut columns: Vec<Option<Column>> = Vec::new();
    let mut times: Vec<i64> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(rest) = line.strip_prefix("series ") {
            let name = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad series line {line:?}"))
                .1;
            columns.push(sample(name).map(|sample| Column {
                sample,
                values: Vec::new(),
            }));
            continue;
        }
        let mut fields = line.split(' ');
        let dt: i64 = fields
            .next()
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("bad time in {line:?}"));
        times.push(times.last().map_or(dt, |t| t + dt));
        for (column, field) in columns.iter_mut().zip(fields) {
            let Some(c) = column else { continue };
            let value = match field {
                "-" => None,
                "=" => c.values.last().copied().flatten(),
                v => v.parse().ok(),
            };
            c.values.push(value);
        }
    }
    (times, columns.into_iter().flatten().collect())
}

/// A store holding `hours` of the trace's series in its history (the default memory cap),
/// the last scrape at `end` (ms).
pub fn fill(hours: i64, end: i64) -> Store {
    let (times, columns) = load();
    let mut store = Store::default();
    store.set_history(Some(HistoryLimits {
        retention_ms: hours * 3_600_000,
        max_bytes: usize::try_from(HistoryConfig::default().max_memory).unwrap_or(usize::MAX),
    }));
    let scrapes = usize::try_from(hours * 360).unwrap_or(0);
    let round = times.len();
    let span = times[round - 1] - times[0] + 10_000;
    // Scrape i is at start + offset(i); the last one at `end`.
    let offset =
        |i: usize| span * i64::try_from(i / round).unwrap_or(0) + (times[i % round] - times[0]);
    let start = end - offset(scrapes - 1);
    for i in 0..scrapes {
        let (r, k) = (i / round, i % round);
        let at = start + offset(i);
        let mut samples = Vec::with_capacity(columns.len());
        for c in &columns {
            let Some(v) = c.values[k] else { continue };
            let mut s = c.sample.clone();
            s.value = if s.metric.kind == Kind::Counter {
                // Carried on from where the previous rounds ended.
                let last = c
                    .values
                    .iter()
                    .rev()
                    .flatten()
                    .next()
                    .copied()
                    .unwrap_or(0.0);
                let first = c.values.iter().flatten().next().copied().unwrap_or(0.0);
                v + (last - first) * r as f64
            } else {
                v
            };
            samples.push(s);
        }
        store.apply("trace", samples, at);
    }
    store
}
