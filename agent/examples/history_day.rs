//! Writes a day (or `HOURS`) of history of this machine's host series, as the agent would
//! have recorded it, into `OUT` (the `data_dir/history.bin` format), ending now: the captured
//! 10-second trace replayed through the store (`benches/support/day.rs`), so that an agent
//! can be started on a full day of history. `bench/compare.sh` uses it to measure the
//! agent's memory with 24 h loaded.
//!
//! Usage: `cargo run --release --example history_day -- OUT [HOURS]`

// An example is a tool run by hand or by a bench script: a bad argument stops it loudly.
#![allow(clippy::panic, clippy::expect_used, clippy::print_stderr)]

use std::path::PathBuf;

#[path = "../benches/support/day.rs"]
mod day;

fn main() {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().expect("usage: history_day OUT [HOURS]"));
    let hours: i64 = args
        .next()
        .map_or(24, |h| h.parse().expect("HOURS: a number"));
    let store = day::fill(hours, lookout::clock::wall_millis());
    let stats = store.history_stats();
    let bytes = lookout::archive::snapshot(&store);
    lookout::history::persist::save(&out, &bytes).expect("write the snapshot");
    eprintln!(
        "{}: {} series over {hours} h, history {} bytes in memory, snapshot {} bytes",
        out.display(),
        stats.series,
        stats.bytes,
        bytes.len()
    );
}
