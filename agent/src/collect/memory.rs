//! Memory and swap from `/proc/meminfo`.
//!
//! Emits `lookout_memory_total_bytes` (MemTotal), `lookout_memory_available_bytes`
//! (MemAvailable), `lookout_memory_usage_ratio` (1 - available/total) and
//! `lookout_swap_usage_ratio` ((SwapTotal - SwapFree) / SwapTotal, 0 without swap).
//!
//! Kernel quirks: values are printed in `kB` that are really KiB. MemAvailable only exists
//! since Linux 3.14; before that, available is estimated as MemFree + Buffers + Cached, the
//! figure `free` showed then.
//!
//! The parser is our own: `procfs_core::Meminfo` panics on a key that is not ASCII (it slices
//! off the colon by byte) and on a `kB` value too large for bytes in a u64, and it insists on
//! fields this collector does not need. Ours reads only the keys it needs, so a new or odd
//! line elsewhere in the file cannot fail the collector.

use std::time::Instant;

use super::Schedule;
use super::{CollectError, Collector, ProcFs, Sample};
use crate::catalogue::{
    MEMORY_AVAILABLE_BYTES, MEMORY_TOTAL_BYTES, MEMORY_USAGE_RATIO, SWAP_USAGE_RATIO,
};

const MEMINFO: &str = "meminfo";

/// Samples memory and swap usage.
#[derive(Debug)]
pub struct MemoryCollector {
    proc: ProcFs,
    schedule: Schedule,
}

/// The `/proc/meminfo` fields this collector uses, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MemInfo {
    total: u64,
    /// MemAvailable, or its pre-3.14 estimate.
    available: u64,
    swap_total: u64,
    swap_free: u64,
}

impl MemInfo {
    fn usage_ratio(&self) -> f64 {
        // total is never 0 (checked by the parser).
        (1.0 - self.available as f64 / self.total as f64).clamp(0.0, 1.0)
    }

    fn swap_usage_ratio(&self) -> f64 {
        if self.swap_total == 0 {
            return 0.0;
        }
        (self.swap_total.saturating_sub(self.swap_free) as f64 / self.swap_total as f64)
            .clamp(0.0, 1.0)
    }
}

/// Parses `/proc/meminfo` content.
fn parse_meminfo(bytes: &[u8]) -> Result<MemInfo, String> {
    const KEYS: [&str; 7] = [
        "MemTotal",
        "MemFree",
        "MemAvailable",
        "Buffers",
        "Cached",
        "SwapTotal",
        "SwapFree",
    ];
    let mut values: [Option<u64>; 7] = [None; 7];
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = index + 1;
        // Lines we do not use are not even decoded: only the keys we need must be well formed.
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, rest) = line.split_at(colon);
        let Some((key, slot)) = KEYS
            .iter()
            .zip(values.iter_mut())
            .find(|(k, _)| k.as_bytes() == name)
        else {
            continue;
        };
        let rest = String::from_utf8_lossy(rest.get(1..).unwrap_or_default());
        let mut fields = rest.split_whitespace();
        let number = fields
            .next()
            .ok_or_else(|| format!("line {line_no}: {key} has no value"))?;
        let number: u64 = number
            .parse()
            .map_err(|_| format!("line {line_no}: invalid {key} value {number:?}"))?;
        let bytes = match fields.next() {
            Some("kB") => number
                .checked_mul(1024)
                .ok_or_else(|| format!("line {line_no}: {key} value {number} kB overflows"))?,
            None => number,
            Some(unit) => return Err(format!("line {line_no}: unknown unit {unit:?} for {key}")),
        };
        *slot = Some(bytes);
    }
    let [
        total,
        free,
        available,
        buffers,
        cached,
        swap_total,
        swap_free,
    ] = values;
    let required = |v: Option<u64>, key: &str| v.ok_or_else(|| format!("{key} is missing"));
    let total = required(total, "MemTotal")?;
    if total == 0 {
        return Err("MemTotal is 0".to_string());
    }
    let available = match available {
        Some(available) => available,
        None => required(free, "MemFree")?
            .saturating_add(required(buffers, "Buffers (needed without MemAvailable)")?)
            .saturating_add(required(cached, "Cached (needed without MemAvailable)")?),
    };
    Ok(MemInfo {
        total,
        available,
        swap_total: required(swap_total, "SwapTotal")?,
        swap_free: required(swap_free, "SwapFree")?,
    })
}

impl MemoryCollector {
    /// A collector reading `meminfo` under `proc`, run on `schedule`.
    pub fn new(proc: ProcFs, schedule: Schedule) -> Self {
        MemoryCollector { proc, schedule }
    }
}

impl Collector for MemoryCollector {
    fn name(&self) -> &str {
        "memory"
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn collect(&mut self, _now: Instant) -> Result<Vec<Sample>, CollectError> {
        let bytes = self.proc.read(MEMINFO)?;
        let mem = parse_meminfo(&bytes).map_err(|e| self.proc.parse_error(MEMINFO, e))?;
        Ok(vec![
            Sample::new(&MEMORY_TOTAL_BYTES, mem.total as f64),
            Sample::new(&MEMORY_AVAILABLE_BYTES, mem.available as f64),
            Sample::new(&MEMORY_USAGE_RATIO, mem.usage_ratio()),
            Sample::new(&SWAP_USAGE_RATIO, mem.swap_usage_ratio()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::procfs::{fixture, test_schedule, value_of as value};
    use std::path::Path;

    fn collector(proc: ProcFs) -> MemoryCollector {
        MemoryCollector::new(proc, test_schedule())
    }

    /// The kB number on the fixture's `key:` line, read with plain string operations.
    fn kib(text: &str, key: &str) -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<f64>()
            .unwrap()
    }

    #[test]
    fn fixture_values_are_bytes_and_ratios() {
        for dir in ["t0", "t1"] {
            let proc = fixture(dir);
            let text = std::fs::read_to_string(proc.path("meminfo")).unwrap();
            let samples = collector(proc).collect(Instant::now()).unwrap();
            let (total, avail) = (
                kib(&text, "MemTotal") * 1024.0,
                kib(&text, "MemAvailable") * 1024.0,
            );
            assert_eq!(value(&samples, "lookout_memory_total_bytes"), total);
            assert_eq!(value(&samples, "lookout_memory_available_bytes"), avail);
            assert!(
                (value(&samples, "lookout_memory_usage_ratio") - (1.0 - avail / total)).abs()
                    < 1e-12
            );
            let (swap_total, swap_free) = (kib(&text, "SwapTotal"), kib(&text, "SwapFree"));
            let swap = if swap_total == 0.0 {
                0.0
            } else {
                (swap_total - swap_free) / swap_total
            };
            assert_eq!(value(&samples, "lookout_swap_usage_ratio"), swap);
        }
    }

    #[test]
    fn swap_ratio_with_swap_in_use() {
        let m = parse_meminfo(
            b"MemTotal: 1000 kB\nMemAvailable: 250 kB\nSwapTotal: 400 kB\nSwapFree: 300 kB\n",
        )
        .unwrap();
        assert_eq!(m.usage_ratio(), 0.75);
        assert_eq!(m.swap_usage_ratio(), 0.25);
    }

    #[test]
    fn available_falls_back_to_free_buffers_cached_before_3_14() {
        let text = b"MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n";
        let m = parse_meminfo(text).unwrap();
        assert_eq!(m.available, 400 * 1024);
        assert!((m.usage_ratio() - 0.6).abs() < 1e-12);
        assert_eq!(m.swap_usage_ratio(), 0.0);
    }

    #[test]
    fn odd_lines_we_do_not_use_are_ignored() {
        let text = "MemTotal: 1000 kB\nMemAvailable: 500 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\nDémo: x y z\ngarbage\nHugePages_Total: 0\n";
        assert_eq!(
            parse_meminfo(text.as_bytes()).unwrap().available,
            500 * 1024
        );
    }

    #[test]
    fn bad_content_is_rejected() {
        // (content, part of the expected message)
        let cases: &[(&str, &str)] = &[
            ("", "MemTotal is missing"), // empty file
            (
                "MemTotal: 1000 kB\nMemAvailable: 500 kB\n",
                "SwapTotal is missing",
            ), // truncated
            (
                "MemTotal: 1000 kB\nMemFree: 1 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
                "Buffers",
            ), // no MemAvailable, no fallback
            (
                "MemTotal: lots kB\n",
                "line 1: invalid MemTotal value \"lots\"",
            ),
            ("MemTotal:\n", "line 1: MemTotal has no value"),
            (
                "MemTotal: 0 kB\nMemAvailable: 0 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
                "MemTotal is 0",
            ),
            ("MemTotal: 1 MB\n", "unknown unit \"MB\""),
            ("MemTotal: 18446744073709551615 kB\n", "overflows"),
        ];
        for (content, want) in cases {
            let err = parse_meminfo(content.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{content:?}: {err}");
        }
    }

    #[test]
    fn errors_name_the_file() {
        crate::collect::procfs::assert_errors_name_the_file(collector, "meminfo");
    }

    #[test]
    fn live_host_smoke() {
        let samples = collector(ProcFs::new(Path::new("/proc")))
            .collect(Instant::now())
            .unwrap();
        assert!(value(&samples, "lookout_memory_total_bytes") > 0.0);
    }
}
