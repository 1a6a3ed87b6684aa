//! Writes a day (or `HOURS`) of history of this machine's host series as the agent would
//! have recorded it, into `OUT` (the `data_dir/history.bin` format): the captured 10-second
//! trace `agent/benches/data/host-10s.trace` (real scrapes of an agent on the development
//! machine) is replayed through the store, again and again, counters carried on from where
//! the previous round ended, so that the agent can be started on a full day of history.
//! `bench/compare.py --history` uses it to measure the agent's memory with 24 h loaded.
//!
//! Usage: `cargo run --release --example history_day -- OUT [HOURS]`

// An example is a tool run by hand or by a bench script: a bad argument stops it loudly.
#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::print_stderr
)]

use std::path::PathBuf;

use lookout::catalogue::{self, Kind};
use lookout::history::config::HistoryConfig;
use lookout::history::persist;
use lookout::sample::{Part, Sample};
use lookout::store::{HistoryLimits, Store};

/// One series of the trace: its metric, labels, and value text per scrape.
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

fn main() {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().expect("usage: history_day OUT [HOURS]"));
    let hours: i64 = args
        .next()
        .map_or(24, |h| h.parse().expect("HOURS: a number"));
    let trace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/data/host-10s.trace");
    let text = std::fs::read_to_string(&trace).expect("read the trace");
    let mut columns: Vec<Option<Column>> = Vec::new();
    let mut times: Vec<i64> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(rest) = line.strip_prefix("series ") {
            let name = rest.split_once(' ').expect("series KIND NAME").1;
            columns.push(sample(name).map(|sample| Column {
                sample,
                values: Vec::new(),
            }));
            continue;
        }
        let mut fields = line.split(' ');
        let dt: i64 = fields.next().and_then(|f| f.parse().ok()).expect("time");
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
    let columns: Vec<Column> = columns.into_iter().flatten().collect();
    let config = HistoryConfig::default();
    let mut store = Store::default();
    store.set_history(Some(HistoryLimits {
        retention_ms: hours * 3_600_000,
        max_bytes: usize::try_from(config.max_memory).expect("fits"),
    }));
    let scrapes = usize::try_from(hours * 360).expect("fits");
    let round = times.len();
    let span = times[round - 1] - times[0] + 10_000;
    // The day ends now, so that an agent started on it keeps all of it.
    let rounds = i64::try_from(scrapes.div_ceil(round)).expect("fits");
    let start = lookout::clock::wall_millis() - span * rounds;
    for i in 0..scrapes {
        let (r, k) = (i / round, i % round);
        let at = start + span * i64::try_from(r).expect("fits") + (times[k] - times[0]);
        let mut samples = Vec::with_capacity(columns.len());
        for c in &columns {
            let Some(v) = c.values[k] else { continue };
            let mut s = c.sample.clone();
            s.value = if s.metric.kind == Kind::Counter {
                // Carried on from where the previous rounds ended.
                let end = c
                    .values
                    .iter()
                    .rev()
                    .flatten()
                    .next()
                    .copied()
                    .unwrap_or(0.0);
                let first = c.values.iter().flatten().next().copied().unwrap_or(0.0);
                v + (end - first) * r as f64
            } else {
                v
            };
            samples.push(s);
        }
        store.apply("trace", samples, at);
    }
    let stats = store.history_stats();
    let bytes = lookout::archive::snapshot(&store);
    persist::save(&out, &bytes).expect("write the snapshot");
    eprintln!(
        "{}: {} series, {} scrapes over {hours} h, history {} bytes in memory, snapshot {} bytes",
        out.display(),
        stats.series,
        scrapes,
        stats.bytes,
        bytes.len()
    );
}
