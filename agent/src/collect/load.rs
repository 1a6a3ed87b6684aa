//! Load averages from `/proc/loadavg`.
//!
//! Emits `lookout_load1`, `lookout_load5` and `lookout_load15` from the first three fields
//! (`0.17 0.31 0.17 1/84 7087`); the runnable/total entities and the last PID are ignored.
//!
//! The parser is our own rather than `procfs_core::LoadAverage`, which stores the values as
//! `f32`: widened to `f64`, a load of `0.63` would be exported as `0.6299999952316284`.

use std::time::Instant;

use super::Schedule;
use super::{CollectError, Collector, ProcFs, Sample};
use crate::catalogue::{LOAD1, LOAD5, LOAD15};

const LOADAVG: &str = "loadavg";

/// Samples the 1, 5 and 15 minute load averages.
#[derive(Debug)]
pub struct LoadCollector {
    proc: ProcFs,
    schedule: Schedule,
}

/// The three load averages.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LoadAvg {
    one: f64,
    five: f64,
    fifteen: f64,
}

/// Parses `/proc/loadavg` content.
fn parse_loadavg(bytes: &[u8]) -> Result<LoadAvg, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut fields = text.split_whitespace();
    let mut next = |what: &str| -> Result<f64, String> {
        let field = fields
            .next()
            .ok_or_else(|| format!("missing the {what} load average"))?;
        match field.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(format!("invalid {what} load average {field:?}")),
        }
    };
    Ok(LoadAvg {
        one: next("1-minute")?,
        five: next("5-minute")?,
        fifteen: next("15-minute")?,
    })
}

impl LoadCollector {
    /// A collector reading `loadavg` under `proc`, run on `schedule`.
    pub fn new(proc: ProcFs, schedule: Schedule) -> Self {
        LoadCollector { proc, schedule }
    }
}

impl Collector for LoadCollector {
    fn name(&self) -> &str {
        "load"
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn collect(&mut self, _now: Instant) -> Result<Vec<Sample>, CollectError> {
        let bytes = self.proc.read(LOADAVG)?;
        let load = parse_loadavg(&bytes).map_err(|e| self.proc.parse_error(LOADAVG, e))?;
        Ok(vec![
            Sample::new(&LOAD1, load.one),
            Sample::new(&LOAD5, load.five),
            Sample::new(&LOAD15, load.fifteen),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::procfs::fixture;
    use std::path::Path;
    use std::time::Duration;

    fn collector(proc: ProcFs) -> LoadCollector {
        let schedule = Schedule {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        };
        LoadCollector::new(proc, schedule)
    }

    #[test]
    fn fixture_values_are_exported_exactly() {
        for dir in ["t0", "t1"] {
            let proc = fixture(dir);
            let text = std::fs::read_to_string(proc.path("loadavg")).unwrap();
            let expected: Vec<f64> = text
                .split(' ')
                .take(3)
                .map(|f| f.parse().unwrap())
                .collect();
            let samples = collector(proc).collect(Instant::now()).unwrap();
            let got: Vec<(&str, f64)> = samples.iter().map(|s| (s.metric.name, s.value)).collect();
            assert_eq!(
                got,
                vec![
                    ("lookout_load1", expected[0]),
                    ("lookout_load5", expected[1]),
                    ("lookout_load15", expected[2]),
                ],
                "{dir}"
            );
        }
    }

    #[test]
    fn two_decimals_survive_unchanged() {
        let load = parse_loadavg(b"0.63 12.07 100.10 3/4280 2496732\n").unwrap();
        assert_eq!((load.one, load.five, load.fifteen), (0.63, 12.07, 100.10));
    }

    #[test]
    fn bad_content_is_rejected() {
        // (content, part of the expected message)
        let cases: &[(&[u8], &str)] = &[
            (b"", "missing the 1-minute"),             // empty file
            (b"0.10 0.20\n", "missing the 15-minute"), // truncated
            (
                b"0.10 abc 0.30 1/2 3\n",
                "invalid 5-minute load average \"abc\"",
            ),
            (b"NaN 0.20 0.30 1/2 3\n", "invalid 1-minute"), // parses as f64 but is no load
            (b"-1 0.20 0.30 1/2 3\n", "invalid 1-minute"),
            (b"\xff\xfe", "not UTF-8"),
        ];
        for (content, want) in cases {
            let err = parse_loadavg(content).unwrap_err();
            assert!(err.contains(want), "{content:?}: {err}");
        }
    }

    #[test]
    fn errors_name_the_file() {
        crate::collect::procfs::assert_errors_name_the_file(collector, "loadavg");
    }

    #[test]
    fn live_host_smoke() {
        let samples = collector(ProcFs::new(Path::new("/proc")))
            .collect(Instant::now())
            .unwrap();
        assert_eq!(samples.len(), 3);
    }
}
