//! The top processes by CPU and by memory, shared between the processes collector (which
//! writes them after each run) and the HTTP API and live stream (which read them). Not on
//! `/metrics`: a pid and a command line per series would be unbounded.
//!
//! It also carries the collector's memory across a reload ([`Top::carry`]), so that the
//! groups' counters continue instead of starting again from 0.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use super::track::Tracker;

/// One process of a top list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopProcess {
    /// Its pid.
    pub pid: u32,
    /// Its command name (`comm`, at most 15 bytes).
    pub name: String,
    /// Its effective user: the name from the passwd file when found, else the uid.
    pub user: String,
    /// Its arguments joined by spaces, at most 200 characters, control characters escaped.
    pub cmdline: String,
    /// Its share of the whole host's CPU over the last interval (`null`: not measured yet,
    /// the collector's first run).
    pub cpu_ratio: Option<f64>,
    /// Its resident memory in bytes.
    pub rss_bytes: u64,
}

/// The lists one run made.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TopLists {
    /// When the run was, unix seconds.
    pub at: u64,
    /// The collector's interval, in seconds.
    pub interval_seconds: f64,
    /// By CPU over the last interval, highest first (empty after the first run only).
    pub by_cpu: Vec<TopProcess>,
    /// By resident memory, highest first.
    pub by_memory: Vec<TopProcess>,
}

/// What the API can say about the top processes.
#[derive(Debug, Clone, PartialEq)]
pub enum TopView {
    /// Turned off; the text says how to turn it on.
    Off(&'static str),
    /// On, but no run has finished yet.
    Waiting,
    /// The lists of the last run, and how many processes each may hold.
    Lists(TopLists, usize),
}

/// Why the lists are off when the collector is.
pub const OFF_COLLECTOR: &str = "the processes collector is off (collect.processes.enabled: false): set it to true to list the top processes";
/// Why the lists are off when `top` is 0.
pub const OFF_TOP: &str = "the top processes are off (collect.processes.top: 0): set collect.processes.top to a number from 1 to 100 to list them";

#[derive(Debug, Default)]
struct Inner {
    /// How many processes a list holds; `None` while off.
    limit: Option<usize>,
    /// Why the lists are off; `None` while on.
    off: Option<&'static str>,
    interval: Duration,
    lists: Option<TopLists>,
}

/// The shared top lists. Every call takes one short lock.
#[derive(Debug, Default)]
pub struct Top {
    inner: Mutex<Inner>,
    carry: Mutex<Option<Tracker>>,
}

impl Top {
    /// Off until configured.
    pub fn new() -> Self {
        Top {
            inner: Mutex::new(Inner {
                limit: None,
                off: Some(OFF_COLLECTOR),
                interval: Duration::ZERO,
                lists: None,
            }),
            carry: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves `Inner` consistent, so a poisoned lock still holds valid data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a configuration (start-up and reload): the collector on or off, how many
    /// processes a list holds (0: off), and the interval. Lists of a longer limit are cut.
    pub fn configure(&self, enabled: bool, top: usize, interval: Duration) {
        let mut inner = self.lock();
        inner.interval = interval;
        inner.off = if !enabled {
            Some(OFF_COLLECTOR)
        } else if top == 0 {
            Some(OFF_TOP)
        } else {
            None
        };
        if inner.off.is_some() {
            inner.limit = None;
            inner.lists = None;
            return;
        }
        inner.limit = Some(top);
        if let Some(lists) = inner.lists.as_mut() {
            lists.by_cpu.truncate(top);
            lists.by_memory.truncate(top);
            lists.interval_seconds = interval.as_secs_f64();
        }
    }

    /// Replaces the lists with those of a run (ignored while off).
    pub fn publish(&self, lists: TopLists) {
        let mut inner = self.lock();
        if inner.off.is_none() {
            inner.lists = Some(lists);
        }
    }

    /// The lists now.
    pub fn view(&self) -> TopView {
        let inner = self.lock();
        match (inner.off, inner.limit, &inner.lists) {
            (Some(why), _, _) => TopView::Off(why),
            (None, Some(limit), Some(lists)) => TopView::Lists(lists.clone(), limit),
            _ => TopView::Waiting,
        }
    }

    /// The collector's memory left by the collector a reload replaced (taken: `None` the
    /// second time).
    pub fn take_carry(&self) -> Option<Tracker> {
        self.carry.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Leaves a collector's memory for the next one.
    pub fn carry(&self, tracker: Tracker) {
        *self.carry.lock().unwrap_or_else(|e| e.into_inner()) = Some(tracker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32) -> TopProcess {
        TopProcess {
            pid,
            name: "x".into(),
            user: "root".into(),
            cmdline: "x".into(),
            cpu_ratio: None,
            rss_bytes: 1,
        }
    }

    #[test]
    fn off_until_configured_then_lists_after_a_run() {
        let top = Top::new();
        assert_eq!(top.view(), TopView::Off(OFF_COLLECTOR));
        top.configure(true, 0, Duration::from_secs(10));
        assert_eq!(top.view(), TopView::Off(OFF_TOP));
        top.publish(TopLists::default());
        assert_eq!(top.view(), TopView::Off(OFF_TOP), "nothing kept while off");
        top.configure(true, 3, Duration::from_secs(10));
        assert_eq!(top.view(), TopView::Waiting);
        let lists = TopLists {
            at: 5,
            interval_seconds: 10.0,
            by_cpu: (1..=3).map(process).collect(),
            by_memory: (1..=3).map(process).collect(),
        };
        top.publish(lists.clone());
        assert_eq!(top.view(), TopView::Lists(lists, 3));
        // a reload to a shorter list cuts the lists at once
        top.configure(true, 2, Duration::from_secs(5));
        match top.view() {
            TopView::Lists(l, 2) => {
                assert_eq!(
                    (l.by_cpu.len(), l.by_memory.len(), l.interval_seconds),
                    (2, 2, 5.0)
                );
            }
            other => panic!("{other:?}"),
        }
        top.configure(false, 2, Duration::from_secs(5));
        assert_eq!(top.view(), TopView::Off(OFF_COLLECTOR));
    }

    #[test]
    fn the_carry_is_taken_once() {
        let top = Top::new();
        assert!(top.take_carry().is_none());
        top.carry(Tracker {
            generation: 7,
            ..Tracker::default()
        });
        assert_eq!(top.take_carry().map(|t| t.generation), Some(7));
        assert!(top.take_carry().is_none());
    }
}
