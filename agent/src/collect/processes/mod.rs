//! Processes: named process groups (`lookout_process_group_*`) and the top processes by CPU
//! and by memory (shared with the HTTP API and the live stream, not on `/metrics`).
//!
//! A group is a set of processes picked by their program name, command line, pid file and
//! user ([`config`]); each run lists the proc root once and exports per group its member
//! count and whether it reaches `min_count`, resident memory, CPU (a counter that never goes
//! down when a member exits, and the share of the host over the interval), threads, open
//! files and the highest use of an open files limit, restarts and the oldest member's start
//! time ([`track`]). The same pass ranks every process by CPU over the interval and by
//! resident memory for the top lists ([`top`]). How the pass stays cheap over thousands of
//! processes is [`collector`]'s; the parsers are in [`parse`].

pub mod collector;
pub mod config;
pub mod parse;
pub mod top;
pub mod track;

pub use self::collector::ProcessesCollector;
pub use self::config::{ProcessesConfig, ProcessesSection, RawProcesses, resolve_users};
pub use self::top::{Top, TopLists, TopProcess, TopView};

use crate::collect::{Context, Job, Kind};

impl Kind for ProcessesSection {
    fn build(value: &ProcessesConfig, context: &Context) -> Vec<Job> {
        context
            .processes
            .configure(value.enabled, value.top, value.schedule.interval);
        if value.enabled {
            vec![Job::Blocking(Box::new(ProcessesCollector::new(
                context.proc.clone(),
                context.rootfs.clone(),
                value,
                context.processes.clone(),
            )))]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests;
