//! Block device I/O from `/proc/diskstats`.
//!
//! For every device whose name matches none of `collect.host.exclude_disks`, emits
//! `lookout_disk_read_bytes_total{device}` and `lookout_disk_written_bytes_total{device}`,
//! and from the second run on `lookout_disk_io_time_ratio{device}`: the milliseconds the
//! device spent doing I/O (field 10, `io_ticks`) over the milliseconds elapsed, 0..1.
//!
//! Kernel quirks: diskstats counts sectors of 512 bytes whatever the device's real sector
//! size. `io_ticks` is kept in 32 bits on many kernels and wraps after ~49 days of busy time;
//! a device that is removed and re-added starts from zero. Either way the counter goes
//! backwards, and that device's ratio is left out for the run. Lines are parsed one by one
//! with `procfs_core::DiskStat::from_line`, so an error can name its line.

use std::collections::HashMap;
use std::time::Instant;

use procfs_core::DiskStat;
use regex::Regex;

use super::Schedule;
use super::procfs::{PreviousRun, procfs_core_message};
use super::{CollectError, Collector, ProcFs, Sample};
use crate::catalogue::{DISK_IO_TIME_RATIO, DISK_READ_BYTES_TOTAL, DISK_WRITTEN_BYTES_TOTAL};
use crate::config::units as config;

const DISKSTATS: &str = "diskstats";

/// Size of a diskstats sector, fixed by the kernel ABI.
const SECTOR_BYTES: f64 = 512.0;

/// Samples per-device read/write volume and busy time.
#[derive(Debug)]
pub struct DiskCollector {
    proc: ProcFs,
    schedule: Schedule,
    exclude: Vec<Regex>,
    /// Milliseconds each device spent doing I/O (`io_ticks`) as of the previous successful
    /// run, for the busy ratio.
    prev: PreviousRun<u64>,
}

/// Parses `/proc/diskstats` content, in file order.
fn parse_diskstats(bytes: &[u8]) -> Result<Vec<DiskStat>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            DiskStat::from_line(line)
                .map_err(|e| format!("line {}: {}", index + 1, procfs_core_message(e)))
        })
        .collect()
}

impl DiskCollector {
    /// A collector reading `diskstats` under `proc`, with the schedule and device exclusions
    /// of `host`.
    pub fn new(proc: ProcFs, schedule: Schedule, exclude: Vec<Regex>) -> Self {
        DiskCollector {
            proc,
            schedule,
            exclude,
            prev: PreviousRun::default(),
        }
    }

    /// Builds the samples from one read of `/proc/diskstats` taken at `now`, updating the
    /// remembered counters (devices that disappeared are forgotten).
    fn samples_from(&mut self, bytes: &[u8], now: Instant) -> Result<Vec<Sample>, CollectError> {
        let stats = parse_diskstats(bytes).map_err(|e| self.proc.parse_error(DISKSTATS, e))?;
        let mut io_ticks = HashMap::new();
        let mut out = Vec::new();
        for disk in stats
            .into_iter()
            .filter(|d| !config::matches_any(&self.exclude, &d.name))
        {
            let device = || [("device", disk.name.clone())];
            out.push(Sample::with_labels(
                &DISK_READ_BYTES_TOTAL,
                device(),
                disk.sectors_read as f64 * SECTOR_BYTES,
            ));
            out.push(Sample::with_labels(
                &DISK_WRITTEN_BYTES_TOTAL,
                device(),
                disk.sectors_written as f64 * SECTOR_BYTES,
            ));
            if let Some((secs, before)) = self.prev.before(now, &disk.name)
                && let Some(busy_ms) = disk.time_in_progress.checked_sub(*before)
            {
                let ratio = (busy_ms as f64 / (secs * 1000.0)).clamp(0.0, 1.0);
                out.push(Sample::with_labels(&DISK_IO_TIME_RATIO, device(), ratio));
            }
            io_ticks.insert(disk.name, disk.time_in_progress);
        }
        self.prev.replace(now, io_ticks);
        Ok(out)
    }
}

impl Collector for DiskCollector {
    fn name(&self) -> &str {
        "disk"
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn collect(&mut self, now: Instant) -> Result<Vec<Sample>, CollectError> {
        let bytes = self.proc.read(DISKSTATS)?;
        self.samples_from(&bytes, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::procfs::{
        device_value as value, devices, fixture, test_schedule, whole_names,
    };
    use std::path::Path;
    use std::time::Duration;

    /// Fields of the fixture's diskstats line for `device`, read with plain string operations.
    fn fields(dir: &str, device: &str) -> Vec<u64> {
        let text = std::fs::read_to_string(fixture(dir).path("diskstats")).unwrap();
        let line = text
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(device))
            .unwrap();
        line.split_whitespace()
            .skip(3)
            .map(|f| f.parse().unwrap())
            .collect()
    }

    /// One diskstats line for `name` with the given sectors read/written and io_ticks.
    fn line(name: &str, read: u64, written: u64, io_ms: u64) -> String {
        format!(" 254 0 {name} 1 0 {read} 0 1 0 {written} 0 0 {io_ms} 0\n")
    }

    #[test]
    fn fixtures_give_bytes_then_busy_ratio() {
        let mut c = DiskCollector::new(
            fixture("t0"),
            test_schedule(),
            whole_names(&["loop\\d+", "zram\\d+"]),
        );
        let t0 = Instant::now();
        let first = c.collect(t0).unwrap();
        assert_eq!(devices(&first), ["vda"]);
        let f0 = fields("t0", "vda");
        // Fields after the name: reads, merged, sectors read, ms reading, writes, merged, sectors written, ...
        assert_eq!(
            value(&first, "lookout_disk_read_bytes_total", "vda"),
            Some(f0[2] as f64 * 512.0)
        );
        assert_eq!(
            value(&first, "lookout_disk_written_bytes_total", "vda"),
            Some(f0[6] as f64 * 512.0)
        );
        assert_eq!(value(&first, "lookout_disk_io_time_ratio", "vda"), None);

        c.proc = fixture("t1");
        let second = c.collect(t0 + Duration::from_secs(1)).unwrap();
        let f1 = fields("t1", "vda");
        assert!(f1[6] > f0[6], "the fixture was captured while writing");
        assert_eq!(
            value(&second, "lookout_disk_written_bytes_total", "vda"),
            Some(f1[6] as f64 * 512.0)
        );
        let expected = (f1[9] - f0[9]) as f64 / 1000.0;
        assert_eq!(
            value(&second, "lookout_disk_io_time_ratio", "vda"),
            Some(expected)
        );
    }

    #[test]
    fn every_device_is_reported_without_exclusions() {
        let mut c = DiskCollector::new(fixture("t0"), test_schedule(), whole_names(&[]));
        let samples = c.collect(Instant::now()).unwrap();
        let text = std::fs::read_to_string(fixture("t0").path("diskstats")).unwrap();
        let names: Vec<&str> = text
            .lines()
            .map(|l| l.split_whitespace().nth(2).unwrap())
            .collect();
        assert_eq!(devices(&samples), names);
    }

    #[test]
    fn exclusions_match_whole_names() {
        let text = [
            line("sda", 0, 0, 0),
            line("sda1", 0, 0, 0),
            line("nvme0n1", 0, 0, 0),
        ]
        .concat();
        let mut c = DiskCollector::new(
            fixture("t0"),
            test_schedule(),
            whole_names(&["sd[a-z]+\\d+"]),
        );
        let samples = c.samples_from(text.as_bytes(), Instant::now()).unwrap();
        assert_eq!(devices(&samples), ["sda", "nvme0n1"]);
    }

    #[test]
    fn ratio_edge_cases() {
        let t0 = Instant::now();
        // (io_ticks before, after, elapsed, expected ratio; comment says why)
        let cases = [
            (1000, 1250, Duration::from_secs(1), Some(0.25)), // plain
            (1000, 3000, Duration::from_secs(1), Some(1.0)), // more busy ms than elapsed (rounding): clamped
            (5000, 10, Duration::from_secs(1), None), // counter went backwards (wrap, re-added device)
            (1000, 1000, Duration::ZERO, None),       // no time elapsed
            (1000, 1000, Duration::from_secs(1), Some(0.0)), // idle
        ];
        for (before, after, elapsed, want) in cases {
            let mut c = DiskCollector::new(fixture("t0"), test_schedule(), whole_names(&[]));
            c.samples_from(line("vda", 0, 0, before).as_bytes(), t0)
                .unwrap();
            let s = c
                .samples_from(line("vda", 0, 0, after).as_bytes(), t0 + elapsed)
                .unwrap();
            assert_eq!(
                value(&s, "lookout_disk_io_time_ratio", "vda"),
                want,
                "{before} -> {after} in {elapsed:?}"
            );
        }
    }

    #[test]
    fn devices_that_disappear_are_forgotten() {
        let t0 = Instant::now();
        let mut c = DiskCollector::new(fixture("t0"), test_schedule(), whole_names(&[]));
        c.samples_from(
            [line("sda", 0, 0, 100), line("sdb", 0, 0, 100)]
                .concat()
                .as_bytes(),
            t0,
        )
        .unwrap();
        let s = c
            .samples_from(
                line("sda", 0, 0, 200).as_bytes(),
                t0 + Duration::from_secs(1),
            )
            .unwrap();
        assert_eq!(devices(&s), ["sda"]);
        assert!(!c.prev.remembers("sdb"));
        // sdb comes back: a first sighting again, so no ratio against its old counter.
        let s = c
            .samples_from(
                line("sdb", 0, 0, 150).as_bytes(),
                t0 + Duration::from_secs(2),
            )
            .unwrap();
        assert_eq!(value(&s, "lookout_disk_io_time_ratio", "sdb"), None);
    }

    #[test]
    fn bad_content_is_rejected_with_its_line() {
        // (content, part of the expected message)
        let cases: &[(&str, &str)] = &[
            (" 254 0 vda 1 2 3\n", "line 1: a line or field is missing"), // truncated
            (
                " 254 0 vda 1 0 3 0 1 0 3 0 0 1 0\n 8 0 sda x 0 3 0 1 0 3 0 0 1 0\n",
                "line 2: malformed field",
            ),
            ("garbage\n", "line 1"),
        ];
        for (content, want) in cases {
            let err = parse_diskstats(content.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{content:?}: {err}");
        }
        assert!(
            parse_diskstats(b"\n").unwrap().is_empty(),
            "a blank line is no device"
        );
    }

    #[test]
    fn errors_name_the_file() {
        crate::collect::procfs::assert_errors_name_the_file(
            |proc| DiskCollector::new(proc, test_schedule(), whole_names(&[])),
            "diskstats",
        );
    }

    #[test]
    fn live_host_smoke() {
        let mut c = DiskCollector::new(
            ProcFs::new(Path::new("/proc")),
            test_schedule(),
            whole_names(&[]),
        );
        c.collect(Instant::now()).unwrap();
    }
}
