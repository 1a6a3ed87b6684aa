//! Uptime and process count.
//!
//! Emits `lookout_uptime_seconds` from the first field of `/proc/uptime` (parsed with
//! `procfs_core::Uptime`) and `lookout_processes`: the directories directly under the proc
//! root whose names are all digits, one per process (thread groups; threads live below them
//! in `task/` and are not counted). A process that exits while the directory is listed is
//! simply not counted.

use std::time::Instant;

use procfs_core::{FromRead, Uptime};

use super::Schedule;
use super::procfs::procfs_core_message;
use super::{CollectError, Collector, ProcFs, Sample};
use crate::catalogue::{PROCESSES, UPTIME_SECONDS};

const UPTIME: &str = "uptime";

/// Samples host uptime and the number of processes.
#[derive(Debug)]
pub struct SystemCollector {
    proc: ProcFs,
    schedule: Schedule,
}

/// Parses `/proc/uptime` content into seconds since boot.
fn parse_uptime(bytes: &[u8]) -> Result<f64, String> {
    let uptime = Uptime::from_read(bytes).map_err(procfs_core_message)?;
    if uptime.uptime.is_finite() && uptime.uptime >= 0.0 {
        Ok(uptime.uptime)
    } else {
        Err(format!("invalid uptime {}", uptime.uptime))
    }
}

/// Whether a directory name under the proc root is a process ID.
fn is_pid(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

impl SystemCollector {
    /// A collector reading `uptime` and listing the root of `proc`, run on `schedule`.
    pub fn new(proc: ProcFs, schedule: Schedule) -> Self {
        SystemCollector { proc, schedule }
    }

    /// Counts the process directories under the proc root.
    fn count_processes(&self) -> Result<usize, CollectError> {
        let root = self.proc.root();
        let read_error = |source| CollectError::Read {
            path: root.display().to_string(),
            source,
        };
        let mut count = 0;
        for entry in std::fs::read_dir(root).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            // On procfs the type comes with the listing (no extra stat), so this is cheap.
            if is_pid(&entry.file_name()) && entry.file_type().is_ok_and(|t| t.is_dir()) {
                count += 1;
            }
        }
        Ok(count)
    }
}

impl Collector for SystemCollector {
    fn name(&self) -> &str {
        "system"
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn collect(&mut self, _now: Instant) -> Result<Vec<Sample>, CollectError> {
        let bytes = self.proc.read(UPTIME)?;
        let uptime = parse_uptime(&bytes).map_err(|e| self.proc.parse_error(UPTIME, e))?;
        let processes = self.count_processes()?;
        Ok(vec![
            Sample::new(&UPTIME_SECONDS, uptime),
            Sample::new(&PROCESSES, processes as f64),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::procfs::{fixture, test_schedule, value_of as value};
    use std::path::Path;

    fn collector(proc: ProcFs) -> SystemCollector {
        SystemCollector::new(proc, test_schedule())
    }

    #[test]
    fn fixture_uptime_and_process_directories() {
        for dir in ["t0", "t1"] {
            let proc = fixture(dir);
            let text = std::fs::read_to_string(proc.path("uptime")).unwrap();
            let uptime: f64 = text.split(' ').next().unwrap().parse().unwrap();
            // Only the numbered directories count, not `net/` or the files beside them.
            let pids = std::fs::read_dir(proc.root())
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| {
                    e.path().is_dir() && e.file_name().to_str().unwrap().parse::<u32>().is_ok()
                })
                .count();
            assert!(pids >= 3, "{dir}: the fixture has process directories");
            let samples = collector(proc).collect(Instant::now()).unwrap();
            assert_eq!(value(&samples, "lookout_uptime_seconds"), uptime, "{dir}");
            assert_eq!(value(&samples, "lookout_processes"), pids as f64, "{dir}");
        }
    }

    #[test]
    fn only_all_digit_names_are_processes() {
        // (name, is a PID)
        let cases = [
            ("1", true),
            ("4194304", true),
            ("self", false),
            ("thread-self", false),
            ("12abc", false),
            ("", false),
            ("-1", false),
            ("١٢", false), // non-ASCII digits
        ];
        for (name, want) in cases {
            assert_eq!(is_pid(std::ffi::OsStr::new(name)), want, "{name:?}");
        }
    }

    #[test]
    fn bad_uptime_is_rejected() {
        // (content, part of the expected message)
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty string"),
            (b"12.5\n", "missing"), // truncated: no idle field
            (b"abc 1.0\n", "malformed"),
            (b"NaN 1.0\n", "invalid uptime"),
            (b"-5 1.0\n", "invalid uptime"),
        ];
        for (content, want) in cases {
            let err = parse_uptime(content).unwrap_err();
            assert!(err.contains(want), "{content:?}: {err}");
        }
    }

    #[test]
    fn errors_name_the_file() {
        crate::collect::procfs::assert_errors_name_the_file(collector, "uptime");
    }

    #[test]
    fn unlistable_root_is_a_read_error_naming_it() {
        // A file where the proc root should be cannot be listed.
        let root = fixture("t0").path("uptime");
        let c = collector(ProcFs::new(&root));
        let err = c.count_processes().unwrap_err();
        assert!(matches!(err, CollectError::Read { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&root.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn live_host_smoke() {
        let samples = collector(ProcFs::new(Path::new("/proc")))
            .collect(Instant::now())
            .unwrap();
        assert!(value(&samples, "lookout_processes") >= 1.0);
        assert!(value(&samples, "lookout_uptime_seconds") > 0.0);
    }
}
