//! CPU time from `/proc/stat`.
//!
//! Reads the aggregate `cpu` line (ticks summed over all online CPUs) and counts the `cpuN`
//! lines. Emits `lookout_cpu_seconds_total{mode}` for user, nice, system, idle, iowait, irq,
//! softirq and steal (ticks / USER_HZ), `lookout_cpus`, and from the second run on
//! `lookout_cpu_usage_ratio`: the busy share of the ticks that passed since the last run.
//!
//! Kernel quirks handled here:
//! - `guest` and `guest_nice` are already included in `user` and `nice`, so they are neither
//!   exported nor added to the total (that would count guest time twice).
//! - Offline CPUs have no `cpuN` line and hot-plugging one changes the aggregate, so a counter
//!   can go backwards; `iowait` is documented as able to decrease too. When any counter went
//!   backwards, or no tick passed, the ratio is left out for that run instead of reporting a
//!   bogus value.
//!
//! Parsing uses `procfs_core::KernelStats`, which needs to know USER_HZ; [`TicksOnly`] supplies
//! it (the value only feeds procfs-core's own ms helpers, which we do not use).

use std::time::Instant;

use procfs_core::{FromBufReadSI, KernelStats, ProcError, ProcResult, SystemInfoInterface};

use super::Schedule;
use super::{CollectError, Collector, ProcFs, Sample};
use crate::catalogue::{CPU_SECONDS_TOTAL, CPU_USAGE_RATIO, CPUS};

const STAT: &str = "stat";

/// USER_HZ when the auxiliary vector does not say (it is 100 on every mainstream arch).
const DEFAULT_TICKS_PER_SECOND: u64 = 100;

/// Samples CPU time and utilisation from `/proc/stat`.
#[derive(Debug)]
pub struct CpuCollector {
    proc: ProcFs,
    schedule: Schedule,
    ticks_per_second: u64,
    /// Counters of the previous successful run, for the usage ratio.
    prev: Option<CpuTicks>,
}

/// The eight counted modes of the aggregate `cpu` line, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTicks {
    user: u64,
    nice: u64,
    system: u64,
    idle: u64,
    iowait: u64,
    irq: u64,
    softirq: u64,
    steal: u64,
}

impl CpuTicks {
    /// `(mode label, ticks)` in a fixed order.
    fn modes(&self) -> [(&'static str, u64); 8] {
        [
            ("user", self.user),
            ("nice", self.nice),
            ("system", self.system),
            ("idle", self.idle),
            ("iowait", self.iowait),
            ("irq", self.irq),
            ("softirq", self.softirq),
            ("steal", self.steal),
        ]
    }

    /// Busy share of the ticks between `prev` and `self`; `None` when no tick passed or a
    /// counter went backwards.
    fn usage_since(&self, prev: &CpuTicks) -> Option<f64> {
        let mut total = 0u64;
        for ((_, now), (_, before)) in self.modes().iter().zip(prev.modes().iter()) {
            total = total.checked_add(now.checked_sub(*before)?)?;
        }
        if total == 0 {
            return None;
        }
        // Both subtractions succeeded above, so these cannot underflow.
        let idle = self.idle.saturating_sub(prev.idle) + self.iowait.saturating_sub(prev.iowait);
        let busy = total.saturating_sub(idle);
        Some((busy as f64 / total as f64).clamp(0.0, 1.0))
    }
}

/// What one read of `/proc/stat` gives this collector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CpuStat {
    total: CpuTicks,
    /// Number of `cpuN` lines, i.e. online CPUs.
    cpus: usize,
}

/// The only system information `KernelStats` needs: USER_HZ.
#[derive(Debug, Clone, Copy)]
struct TicksOnly(u64);

impl SystemInfoInterface for TicksOnly {
    fn boot_time_secs(&self) -> ProcResult<u64> {
        Err(ProcError::Other(
            "boot time is not known to the cpu collector".into(),
        ))
    }
    fn ticks_per_second(&self) -> u64 {
        self.0
    }
    fn page_size(&self) -> u64 {
        rustix::param::page_size() as u64
    }
    fn is_little_endian(&self) -> bool {
        cfg!(target_endian = "little")
    }
}

/// Parses `/proc/stat` content.
fn parse_stat(bytes: &[u8], ticks_per_second: u64) -> Result<CpuStat, String> {
    let stats = KernelStats::from_buf_read(bytes, &TicksOnly(ticks_per_second))
        .map_err(super::procfs::procfs_core_message)?;
    let t = &stats.total;
    // Fields missing on kernels older than 2.6.11 count as zero.
    let total = CpuTicks {
        user: t.user,
        nice: t.nice,
        system: t.system,
        idle: t.idle,
        iowait: t.iowait.unwrap_or(0),
        irq: t.irq.unwrap_or(0),
        softirq: t.softirq.unwrap_or(0),
        steal: t.steal.unwrap_or(0),
    };
    Ok(CpuStat {
        total,
        cpus: stats.cpu_time.len(),
    })
}

impl CpuCollector {
    /// A collector reading `stat` under `proc`, run on `schedule`.
    pub fn new(proc: ProcFs, schedule: Schedule) -> Self {
        let ticks = rustix::param::clock_ticks_per_second();
        CpuCollector {
            proc,
            schedule,
            ticks_per_second: if ticks == 0 {
                DEFAULT_TICKS_PER_SECOND
            } else {
                ticks
            },
            prev: None,
        }
    }

    /// Builds the samples from one read of `/proc/stat`, updating the remembered counters.
    fn samples_from(&mut self, bytes: &[u8]) -> Result<Vec<Sample>, CollectError> {
        let stat =
            parse_stat(bytes, self.ticks_per_second).map_err(|e| self.proc.parse_error(STAT, e))?;
        let hz = self.ticks_per_second as f64;
        let mut out: Vec<Sample> = stat
            .total
            .modes()
            .iter()
            .map(|(mode, ticks)| {
                Sample::with_labels(
                    &CPU_SECONDS_TOTAL,
                    [("mode", (*mode).to_string())],
                    *ticks as f64 / hz,
                )
            })
            .collect();
        out.push(Sample::new(&CPUS, stat.cpus as f64));
        if let Some(ratio) = self.prev.and_then(|prev| stat.total.usage_since(&prev)) {
            out.push(Sample::new(&CPU_USAGE_RATIO, ratio));
        }
        self.prev = Some(stat.total);
        Ok(out)
    }
}

impl Collector for CpuCollector {
    fn name(&self) -> &str {
        "cpu"
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn collect(&mut self, _now: Instant) -> Result<Vec<Sample>, CollectError> {
        // The ratio is taken over ticks, which already measure the interval; `now` is unused.
        let bytes = self.proc.read(STAT)?;
        self.samples_from(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::procfs::fixture;
    use std::time::Duration;

    fn schedule() -> Schedule {
        Schedule {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }

    fn collector(proc: ProcFs) -> CpuCollector {
        let mut c = CpuCollector::new(proc, schedule());
        // Fixed so the expected seconds do not depend on the test host.
        c.ticks_per_second = 100;
        c
    }

    /// The numbers of the fixture's aggregate `cpu` line, read with plain string operations.
    fn cpu_line(dir: &str) -> Vec<u64> {
        let text = std::fs::read_to_string(fixture(dir).path("stat")).unwrap();
        let line = text.lines().find(|l| l.starts_with("cpu ")).unwrap();
        line.split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap())
            .collect()
    }

    fn value(samples: &[Sample], name: &str, label: Option<&str>) -> Option<f64> {
        samples
            .iter()
            .find(|s| {
                s.metric.name == name
                    && label.is_none_or(|l| s.labels.first().is_some_and(|(_, v)| v == l))
            })
            .map(|s| s.value)
    }

    /// A `/proc/stat` with the given aggregate counters and `cpus` per-CPU lines.
    fn stat_text(counters: &str, cpus: usize) -> String {
        let mut s = format!("cpu  {counters}\n");
        for i in 0..cpus {
            s.push_str(&format!("cpu{i} {counters}\n"));
        }
        s.push_str(
            "intr 1 0\nctxt 10\nbtime 1700000000\nprocesses 20\nprocs_running 1\nprocs_blocked 0\n",
        );
        s
    }

    #[test]
    fn first_run_on_fixture_reports_counters_and_count_but_no_ratio() {
        let mut c = collector(fixture("t0"));
        let samples = c.collect(Instant::now()).unwrap();
        let fields = cpu_line("t0");
        for (i, mode) in [
            "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
        ]
        .iter()
        .enumerate()
        {
            let got = value(&samples, "lookout_cpu_seconds_total", Some(mode)).unwrap();
            assert!(
                (got - fields[i] as f64 / 100.0).abs() < 1e-9,
                "{mode}: {got}"
            );
        }
        assert!(value(&samples, "lookout_cpu_seconds_total", Some("guest")).is_none());
        let text = std::fs::read_to_string(fixture("t0").path("stat")).unwrap();
        let cpus = text
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count();
        assert_eq!(value(&samples, "lookout_cpus", None), Some(cpus as f64));
        assert!(value(&samples, "lookout_cpu_usage_ratio", None).is_none());
    }

    #[test]
    fn second_run_on_fixtures_reports_the_busy_share_of_the_delta() {
        let mut c = collector(fixture("t0"));
        let t0 = Instant::now();
        c.collect(t0).unwrap();
        c.proc = fixture("t1");
        let samples = c.collect(t0 + Duration::from_secs(1)).unwrap();
        let (a, b) = (cpu_line("t0"), cpu_line("t1"));
        let d: Vec<f64> = (0..8).map(|i| b[i] as f64 - a[i] as f64).collect();
        let total: f64 = d.iter().sum();
        let expected = (total - d[3] - d[4]) / total;
        let got = value(&samples, "lookout_cpu_usage_ratio", None).unwrap();
        assert!((got - expected).abs() < 1e-9, "{got} vs {expected}");
        assert!(got > 0.0, "the fixture was captured under load");
    }

    #[test]
    fn guest_time_is_not_added_to_the_total() {
        let mut c = collector(fixture("t0"));
        c.samples_from(stat_text("100 0 0 100 0 0 0 0 0 0", 1).as_bytes())
            .unwrap();
        // 100 busy + 100 idle ticks; guest 50 is part of user already.
        let s = c
            .samples_from(stat_text("200 0 0 200 0 0 0 0 50 0", 1).as_bytes())
            .unwrap();
        assert_eq!(value(&s, "lookout_cpu_usage_ratio", None), Some(0.5));
    }

    #[test]
    fn iowait_counts_as_idle_and_irq_steal_as_busy() {
        let mut c = collector(fixture("t0"));
        c.samples_from(stat_text("0 0 0 0 0 0 0 0 0 0", 2).as_bytes())
            .unwrap();
        // user 10, idle 50, iowait 20, irq 5, softirq 5, steal 10: busy 30 of 100.
        let s = c
            .samples_from(stat_text("10 0 0 50 20 5 5 10 0 0", 2).as_bytes())
            .unwrap();
        assert_eq!(value(&s, "lookout_cpu_usage_ratio", None), Some(0.3));
        assert_eq!(value(&s, "lookout_cpus", None), Some(2.0));
    }

    #[test]
    fn no_ratio_when_no_tick_passed() {
        let mut c = collector(fixture("t0"));
        let text = stat_text("10 0 0 50 20 5 5 10 0 0", 1);
        c.samples_from(text.as_bytes()).unwrap();
        let s = c.samples_from(text.as_bytes()).unwrap();
        assert!(value(&s, "lookout_cpu_usage_ratio", None).is_none());
    }

    #[test]
    fn no_ratio_when_a_counter_goes_backwards_then_recovers() {
        let mut c = collector(fixture("t0"));
        c.samples_from(stat_text("1000 0 0 5000 0 0 0 0 0 0", 2).as_bytes())
            .unwrap();
        // A CPU went offline: the aggregate idle dropped.
        let s = c
            .samples_from(stat_text("1100 0 0 2600 0 0 0 0 0 0", 1).as_bytes())
            .unwrap();
        assert!(value(&s, "lookout_cpu_usage_ratio", None).is_none());
        // The next run measures from the new baseline.
        let s = c
            .samples_from(stat_text("1150 0 0 2650 0 0 0 0 0 0", 1).as_bytes())
            .unwrap();
        assert_eq!(value(&s, "lookout_cpu_usage_ratio", None), Some(0.5));
    }

    #[test]
    fn truncated_file_is_a_parse_error_naming_the_file() {
        let mut c = collector(fixture("malformed"));
        let err = c.collect(Instant::now()).unwrap_err();
        assert!(matches!(err, CollectError::Parse { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&fixture("malformed").path("stat").display().to_string()),
            "{msg}"
        );
        assert!(!msg.contains("procfs bug"), "{msg}");
    }

    #[test]
    fn garbage_counter_is_a_parse_error_naming_the_file() {
        let mut c = collector(fixture("t0"));
        let err = c
            .samples_from(stat_text("10 zero 0 50 0 0 0 0 0 0", 1).as_bytes())
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/stat: "), "{msg}");
        assert!(msg.contains("zero"), "{msg}");
        // A failed run leaves no baseline behind.
        assert!(c.prev.is_none());
    }

    #[test]
    fn missing_file_is_a_read_error_naming_the_file() {
        let mut c = collector(ProcFs::new(std::path::Path::new(
            "/nonexistent-lookout-proc",
        )));
        let err = c.collect(Instant::now()).unwrap_err();
        assert!(matches!(err, CollectError::Read { .. }), "{err:?}");
        assert!(
            err.to_string().contains("/nonexistent-lookout-proc/stat"),
            "{err}"
        );
    }

    #[test]
    fn live_host_smoke() {
        let mut c = CpuCollector::new(ProcFs::new(std::path::Path::new("/proc")), schedule());
        let s = c.collect(Instant::now()).unwrap();
        assert!(value(&s, "lookout_cpus", None).unwrap() >= 1.0);
    }
}
