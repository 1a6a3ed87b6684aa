//! The agent's own process: resident memory, CPU time, and build information.
//!
//! Reads `/proc/self` of the proc filesystem the agent itself runs under (not the
//! configurable host proc root: in a container that would resolve to another process).

use std::time::Instant;

use procfs_core::FromRead;
use procfs_core::process::Stat;

use super::Schedule;
use super::{CollectError, Collector, Sample};
use crate::catalogue::{BUILD_INFO, PROCESS_CPU_SECONDS_TOTAL, PROCESS_RESIDENT_MEMORY_BYTES};

const SELF_STAT: &str = "/proc/self/stat";

/// Samples the agent's own RSS and CPU time.
#[derive(Debug)]
pub struct ProcessCollector {
    schedule: Schedule,
    ticks_per_second: f64,
    page_size: f64,
}

impl ProcessCollector {
    /// A collector on `schedule`.
    pub fn new(schedule: Schedule) -> Self {
        ProcessCollector {
            schedule,
            ticks_per_second: rustix::param::clock_ticks_per_second() as f64,
            page_size: rustix::param::page_size() as f64,
        }
    }

    /// Turns the bytes of `/proc/self/stat` into samples.
    pub fn parse(&self, bytes: &[u8]) -> Result<Vec<Sample>, String> {
        check_stat_shape(bytes)?;
        let stat = Stat::from_read(bytes).map_err(|e| e.to_string())?;
        let cpu = (stat.utime + stat.stime) as f64 / self.ticks_per_second;
        let rss = stat.rss as f64 * self.page_size;
        Ok(vec![
            Sample::new(&PROCESS_RESIDENT_MEMORY_BYTES, rss),
            Sample::new(&PROCESS_CPU_SECONDS_TOTAL, cpu),
            Sample::with_labels(
                &BUILD_INFO,
                [("version", env!("CARGO_PKG_VERSION").to_string())],
                1.0,
            ),
        ])
    }
}

/// Checks what `procfs_core`'s `Stat` slices without checking, so that it cannot panic:
/// `pid (comm) state ...`, with a character before the first `(` and something after the
/// last `)` and the space that follows it. It reports the other problems itself.
fn check_stat_shape(bytes: &[u8]) -> Result<(), String> {
    // The text exactly as `Stat::from_read` looks at it.
    let line = String::from_utf8_lossy(bytes);
    let text = line.trim();
    let (Some(open), Some(close)) = (text.find('('), text.rfind(')')) else {
        return Ok(());
    };
    let sliceable = open >= 1
        && close > open
        && text.get(..open - 1).is_some()
        && text.get(close + 2..).is_some();
    if sliceable {
        Ok(())
    } else {
        Err(format!(
            "expected `pid (comm) state ...`, found {:?}",
            text.chars().take(80).collect::<String>()
        ))
    }
}

impl Collector for ProcessCollector {
    fn name(&self) -> &str {
        "process"
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn collect(&mut self, _now: Instant) -> Result<Vec<Sample>, CollectError> {
        let bytes = std::fs::read(SELF_STAT).map_err(|source| CollectError::Read {
            path: SELF_STAT.to_string(),
            source,
        })?;
        self.parse(&bytes).map_err(|message| CollectError::Parse {
            path: SELF_STAT.to_string(),
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn collector() -> ProcessCollector {
        ProcessCollector::new(Schedule {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        })
    }

    /// This process's CPU seconds from `/proc/self/stat`, read independently of the parser
    /// (utime and stime, the 14th and 15th fields).
    fn own_cpu_seconds() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
        let after_comm: Vec<u64> = stat
            .rsplit_once(')')
            .expect("comm")
            .1
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|f| f.parse().expect("ticks"))
            .collect();
        (after_comm[0] + after_comm[1]) as f64 / rustix::param::clock_ticks_per_second() as f64
    }

    #[test]
    fn reads_its_own_rss_and_cpu() {
        // Some CPU time first, so that a reading of 0 cannot pass.
        let mut x = 0u64;
        while own_cpu_seconds() < 0.05 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        let cpu_before = own_cpu_seconds();
        let samples = collector().collect(Instant::now()).expect("own stat");
        let cpu_after = own_cpu_seconds();
        // Cross-check RSS against /proc/self/statm (resident pages), read independently.
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: f64 = statm
            .split_whitespace()
            .nth(1)
            .expect("field")
            .parse()
            .expect("number");
        let rss = samples[0].value;
        let expected = pages * rustix::param::page_size() as f64;
        assert!(
            (rss - expected).abs() / expected < 0.2,
            "rss {rss} vs statm {expected}"
        );
        let cpu = samples[1].value;
        assert!(
            (cpu_before..=cpu_after).contains(&cpu),
            "cpu {cpu} s, read {cpu_before} s before and {cpu_after} s after"
        );
    }

    #[test]
    fn a_garbled_stat_is_an_error_not_a_panic() {
        // Found by the property tests, each one a panic inside procfs-core: the line ending
        // at the closing parenthesis, `(` first, `)` before `(`, a multi-byte character
        // before `(` or after `)`.
        for bad in [
            &b""[..],
            b"12 (lookout",
            b"12 (lookout) R x y z",
            b"12 (lookout)",
            b"(lookout) R 1",
            b"12 )lookout( R 1",
            "12\u{e9}(lookout) R 1".as_bytes(),
            "12 (lookout)\u{e9}R 1".as_bytes(),
        ] {
            assert!(
                collector().parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
