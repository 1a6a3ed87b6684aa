//! What the processes collector remembers between runs, and the accounting of a group from
//! one run to the next: a CPU counter that never goes down when a member exits, restarts,
//! and the ratios over the interval. Pure: the time of a run and what it saw are given, so
//! tests run it on made-up instants.

use std::collections::HashMap;
use std::time::Instant;

/// A command name (`comm`, at most 15 bytes) kept without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Comm {
    bytes: [u8; 16],
    len: u8,
}

impl Comm {
    /// The first 16 bytes of `name` (the kernel gives at most 15).
    pub fn new(name: &[u8]) -> Self {
        let mut bytes = [0u8; 16];
        let len = name.len().min(bytes.len());
        if let (Some(to), Some(from)) = (bytes.get_mut(..len), name.get(..len)) {
            to.copy_from_slice(from);
        }
        Comm {
            bytes,
            len: u8::try_from(len).unwrap_or(0),
        }
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

/// A set of group indexes below 128 (the configuration allows 100 groups), in two words
/// rather than a `u128` so that records holding one stay 8-byte aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupSet([u64; 2]);

impl GroupSet {
    /// With group `i` (ignored from 128 on).
    pub fn insert(&mut self, i: usize) {
        if let Some(word) = self.0.get_mut(i / 64) {
            *word |= 1 << (i % 64);
        }
    }

    /// Whether group `i` is in.
    pub fn contains(&self, i: usize) -> bool {
        self.0
            .get(i / 64)
            .is_some_and(|word| word & (1 << (i % 64)) != 0)
    }
}

/// What the collector remembers of one pid from the runs that saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Start time in ticks after boot: with the pid, who the process is.
    pub start: u64,
    /// Command name when its groups were matched: a change means the process executed
    /// another program (same pid and start time), so it is matched again.
    pub comm: Comm,
    /// The last run that saw it.
    pub generation: u32,
    /// User and system CPU ticks then.
    pub cpu: u64,
    /// The groups whose program name and command line match (the parts that do not
    /// change while the process runs one program); `None`: not matched yet.
    pub matched: Option<GroupSet>,
}

/// Everything the collector carries from one run to the next; handed from one collector to
/// the next across a reload (see `Top::carry`), so counters continue.
#[derive(Debug, Default)]
pub struct Tracker {
    /// The previous run: when it ran and the host's uptime in ticks then.
    pub previous: Option<(Instant, u64)>,
    /// Every pid the last run saw.
    pub seen: HashMap<u32, Seen>,
    /// Number of the current run (wrapping).
    pub generation: u32,
    /// Each group's state, by name.
    pub groups: HashMap<String, GroupState>,
}

impl Tracker {
    /// Forgets what was matched with another configuration's groups (kept: CPU times and
    /// the groups' counters).
    pub fn forget_matches(&mut self) {
        for seen in self.seen.values_mut() {
            seen.matched = None;
        }
    }
}

/// One member of a group in one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Member {
    /// Its pid.
    pub pid: u32,
    /// Start time, ticks after boot.
    pub start: u64,
    /// User and system CPU ticks so far.
    pub cpu: u64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// Threads.
    pub threads: u64,
    /// Entries of its fd directory; `None` when it could not be read.
    pub fds: Option<u64>,
    /// Soft open files limit; `None` when unlimited or unreadable.
    pub fd_limit: Option<u64>,
}

/// The host and clock facts of one run.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// When it runs.
    pub now: Instant,
    /// Host uptime in ticks, read at its start.
    pub uptime_ticks: u64,
    /// Boot time, unix seconds.
    pub boot_time: u64,
    /// Online CPUs.
    pub cpus: u32,
    /// Clock ticks per second (`USER_HZ`).
    pub ticks_per_second: u64,
    /// The previous run's time and uptime ticks; `None` on the first.
    pub previous: Option<(Instant, u64)>,
}

impl Run {
    /// CPU ticks as a share of the whole host's CPU time since the previous run (`None` on
    /// the first run, or when no time passed).
    pub fn cpu_ratio(&self, ticks: u64) -> Option<f64> {
        let (before, _) = self.previous?;
        let elapsed = self.now.saturating_duration_since(before).as_secs_f64();
        let capacity = elapsed * f64::from(self.cpus.max(1));
        (capacity > 0.0).then(|| ticks as f64 / self.ticks_per_second.max(1) as f64 / capacity)
    }

    /// Whether a process that started `start` ticks after boot started after the previous
    /// run began (so the previous run could not have seen it).
    pub fn started_since_previous(&self, start: u64) -> bool {
        self.previous.is_some_and(|(_, uptime)| start >= uptime)
    }
}

/// A group's counters and last members.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupState {
    /// Whether a run has accounted for this group before.
    accounted: bool,
    /// Members of the last run: pid, start ticks, CPU ticks; sorted by pid.
    members: Vec<(u32, u64, u64)>,
    /// CPU ticks of members, accumulated.
    cpu_ticks: u64,
    /// Restarts counted.
    restarts: u64,
    /// Members that went away and were not replaced yet.
    pending_departures: u64,
}

/// What one run exports of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Members.
    pub count: u64,
    /// Whether `count >= min_count`.
    pub up: bool,
    /// Members' resident memory together.
    pub rss_bytes: u64,
    /// CPU seconds accumulated.
    pub cpu_seconds: f64,
    /// Restarts counted.
    pub restarts: u64,
    /// Share of the host's CPU over the interval (from the second run on).
    pub cpu_ratio: Option<f64>,
    /// Threads of the members (with members only).
    pub threads: Option<u64>,
    /// Open fds of the members whose fd directory could be read.
    pub open_fds: Option<u64>,
    /// Highest open fds / soft limit of a member.
    pub fd_ratio: Option<f64>,
    /// Unix seconds the oldest member started.
    pub oldest_start: Option<f64>,
    /// Resident memory / `max_memory`.
    pub memory_ratio: Option<f64>,
}

impl GroupState {
    /// Accounts for the group's `members` in `run` (sorted by pid or not) and returns what
    /// to export.
    ///
    /// CPU: a member the last run saw adds what it used since; a new member adds all of its
    /// CPU time when it started after the previous run, and nothing before its first
    /// sighting otherwise (it ran before it matched, or the agent just started). What a
    /// member used between the last run and its exit is not seen. Restarts: every member
    /// that went away is a departure; every new member cancels one outstanding departure
    /// and counts a restart (so one killed in one run and started again two runs later
    /// counts once).
    pub fn observe(
        &mut self,
        members: &mut [Member],
        run: &Run,
        min_count: u64,
        max_memory: Option<u64>,
    ) -> Figures {
        members.sort_unstable_by_key(|m| m.pid);
        let mut delta = 0u64;
        let mut arrived = 0u64;
        let mut kept = 0u64;
        for m in members.iter() {
            let before = self
                .members
                .binary_search_by_key(&m.pid, |e| e.0)
                .ok()
                .and_then(|i| self.members.get(i))
                .filter(|e| e.1 == m.start);
            match before {
                Some(&(_, _, cpu)) => {
                    kept += 1;
                    delta = delta.saturating_add(m.cpu.saturating_sub(cpu));
                }
                None => {
                    arrived += 1;
                    if run.started_since_previous(m.start) {
                        delta = delta.saturating_add(m.cpu);
                    }
                }
            }
        }
        let departed = (self.members.len() as u64).saturating_sub(kept);
        let cpu_ratio = if self.accounted {
            self.pending_departures = self.pending_departures.saturating_add(departed);
            let restarted = arrived.min(self.pending_departures);
            self.restarts += restarted;
            self.pending_departures -= restarted;
            run.cpu_ratio(delta)
        } else {
            None
        };
        self.accounted = true;
        self.cpu_ticks = self.cpu_ticks.saturating_add(delta);
        self.members.clear();
        self.members
            .extend(members.iter().map(|m| (m.pid, m.start, m.cpu)));

        let count = members.len() as u64;
        // Saturating sums: the kernel's figures are trusted to be sane, not to be small.
        let total = |values: &mut dyn Iterator<Item = u64>| values.fold(0u64, u64::saturating_add);
        let rss_bytes = total(&mut members.iter().map(|m| m.rss_bytes));
        let any = count > 0;
        let readable_fds: Vec<u64> = members.iter().filter_map(|m| m.fds).collect();
        let fd_ratio = members
            .iter()
            .filter_map(|m| match (m.fds, m.fd_limit) {
                (Some(fds), Some(limit)) if limit > 0 => Some(fds as f64 / limit as f64),
                _ => None,
            })
            .reduce(f64::max);
        let tps = run.ticks_per_second.max(1);
        Figures {
            count,
            up: count >= min_count,
            rss_bytes,
            cpu_seconds: self.cpu_ticks as f64 / tps as f64,
            restarts: self.restarts,
            cpu_ratio: cpu_ratio.filter(|_| any),
            threads: any.then(|| total(&mut members.iter().map(|m| m.threads))),
            open_fds: (!readable_fds.is_empty()).then(|| total(&mut readable_fds.iter().copied())),
            fd_ratio,
            oldest_start: members
                .iter()
                .map(|m| m.start)
                .min()
                .map(|start| run.boot_time as f64 + start as f64 / tps as f64),
            memory_ratio: max_memory
                .filter(|_| any)
                .map(|max| rss_bytes as f64 / max as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HZ: u64 = 100;

    /// Run `n` of a collector running every 10 s from `t0`, uptime 1000 s at the first.
    fn run(t0: Instant, n: u64) -> Run {
        let at = |k: u64| (t0 + Duration::from_secs(10 * k), (1000 + 10 * k) * HZ);
        Run {
            now: at(n).0,
            uptime_ticks: at(n).1,
            boot_time: 1_700_000_000,
            cpus: 4,
            ticks_per_second: HZ,
            previous: n.checked_sub(1).map(at),
        }
    }

    fn member(pid: u32, start_s: u64, cpu_s: f64) -> Member {
        Member {
            pid,
            start: start_s * HZ,
            cpu: (cpu_s * HZ as f64).round() as u64,
            rss_bytes: 1 << 20,
            threads: 2,
            fds: Some(10),
            fd_limit: Some(1024),
        }
    }

    #[test]
    fn the_cpu_counter_never_goes_down_when_a_member_exits() {
        let t0 = Instant::now();
        let mut g = GroupState::default();
        // First run: two members that ran before; nothing counted before their first sighting.
        let f = g.observe(
            &mut [member(10, 5, 50.0), member(11, 6, 30.0)],
            &run(t0, 0),
            1,
            None,
        );
        assert_eq!((f.cpu_seconds, f.cpu_ratio, f.count), (0.0, None, 2));
        // Second run: +4 s and +2 s over 10 s on 4 CPUs: 6 / 40.
        let f = g.observe(
            &mut [member(10, 5, 54.0), member(11, 6, 32.0)],
            &run(t0, 1),
            1,
            None,
        );
        assert_eq!(f.cpu_seconds, 6.0);
        assert!((f.cpu_ratio.unwrap() - 0.15).abs() < 1e-12, "{f:?}");
        // The busy member exits: the counter stays (what it used since the last run is lost).
        let f = g.observe(&mut [member(11, 6, 33.0)], &run(t0, 2), 1, None);
        assert_eq!(f.cpu_seconds, 7.0);
        assert!((f.cpu_ratio.unwrap() - 1.0 / 40.0).abs() < 1e-12);
        // A new member started after the previous run (uptime 1020 s then): all of its CPU.
        let f = g.observe(
            &mut [member(11, 6, 33.0), member(12, 1025, 3.0)],
            &run(t0, 3),
            1,
            None,
        );
        assert_eq!(f.cpu_seconds, 10.0);
        // A process that ran before but matches only now (another program executed by
        // it, a pid file naming it): from its first sighting only.
        let f = g.observe(
            &mut [
                member(11, 6, 33.0),
                member(12, 1025, 3.0),
                member(13, 7, 500.0),
            ],
            &run(t0, 4),
            1,
            None,
        );
        assert_eq!(f.cpu_seconds, 10.0);
        // A pid reused by another process (another start time) is a new member.
        let f = g.observe(
            &mut [member(11, 6, 33.0), member(12, 1045, 0.5)],
            &run(t0, 5),
            1,
            None,
        );
        assert_eq!(f.cpu_seconds, 10.5);
        // A counter that would go backwards for one member (not possible for one process,
        // but never trusted) adds nothing.
        let f = g.observe(&mut [member(11, 6, 1.0)], &run(t0, 6), 1, None);
        assert_eq!(f.cpu_seconds, 10.5);
    }

    #[test]
    fn restarts_count_departures_matched_by_arrivals() {
        let t0 = Instant::now();
        let mut g = GroupState::default();
        let rows: &[(&[u32], u64, &str)] = &[
            // the first members are not restarts
            (&[1, 2], 0, "start"),
            (&[1, 2], 0, "steady"),
            // killed in one run...
            (&[1], 0, "2 killed"),
            (&[1], 0, "still down"),
            // ...started again two runs later: one restart
            (&[1, 3], 1, "3 replaces 2"),
            // killed and replaced between two runs
            (&[1, 4], 2, "4 replaces 3"),
            // a scale-up with nothing outstanding is not a restart
            (&[1, 4, 5], 2, "5 added"),
            // two go, one comes back: one restart, one departure outstanding
            (&[1, 6], 3, "6 replaces 4 or 5"),
            (&[1, 6, 7], 4, "7 replaces the other"),
            (&[], 4, "all gone"),
            (&[8, 9, 10], 7, "three back"),
        ];
        for (n, (pids, restarts, why)) in rows.iter().enumerate() {
            let mut members: Vec<Member> = pids.iter().map(|p| member(*p, 5, 1.0)).collect();
            let f = g.observe(&mut members, &run(t0, n as u64), 1, None);
            assert_eq!(f.restarts, *restarts, "{why}");
            assert_eq!(f.count, pids.len() as u64, "{why}");
        }
    }

    #[test]
    fn figures_of_members_and_of_an_empty_group() {
        let t0 = Instant::now();
        let mut g = GroupState::default();
        let mut a = member(10, 50, 1.0);
        a.fds = Some(900);
        let mut b = member(11, 20, 1.0);
        b.rss_bytes = 3 << 20;
        b.fd_limit = None;
        let mut c = member(12, 30, 1.0);
        c.fds = None;
        let f = g.observe(&mut [a, b, c], &run(t0, 0), 2, Some(10 << 20));
        assert_eq!((f.count, f.up, f.rss_bytes), (3, true, 5 << 20));
        assert_eq!(f.threads, Some(6));
        // c's fds could not be read: the sum of the others; b has no limit
        assert_eq!(f.open_fds, Some(910));
        assert!((f.fd_ratio.unwrap() - 900.0 / 1024.0).abs() < 1e-12);
        assert_eq!(f.oldest_start, Some(1_700_000_020.0));
        assert_eq!(f.memory_ratio, Some(0.5));

        // Nobody: count 0 and down; no ratio, threads, fds or start time.
        let f = g.observe(&mut [], &run(t0, 1), 2, Some(10 << 20));
        assert_eq!((f.count, f.up, f.rss_bytes), (0, false, 0));
        assert_eq!(
            (
                f.cpu_ratio,
                f.threads,
                f.open_fds,
                f.fd_ratio,
                f.oldest_start,
                f.memory_ratio
            ),
            (None, None, None, None, None, None)
        );
        // min_count 0: never down
        let f = g.observe(&mut [], &run(t0, 2), 0, None);
        assert!(f.up);
    }

    #[test]
    fn ratios_need_elapsed_time() {
        let t0 = Instant::now();
        let mut r = run(t0, 1);
        assert_eq!(r.cpu_ratio(100), Some(1.0 / 40.0));
        r.previous = Some((r.now, 0));
        assert_eq!(r.cpu_ratio(100), None, "no time passed");
        r.previous = None;
        assert_eq!(r.cpu_ratio(100), None, "first run");
        assert!(!r.started_since_previous(u64::MAX));
    }

    #[test]
    fn group_sets() {
        let mut set = GroupSet::default();
        for i in [0, 63, 64, 99, 127, 128, 500] {
            set.insert(i);
        }
        for i in [0, 63, 64, 99, 127] {
            assert!(set.contains(i), "{i}");
        }
        for i in [1, 62, 65, 100, 128, 500] {
            assert!(!set.contains(i), "{i}");
        }
        // what the collector keeps per process stays small
        assert!(std::mem::size_of::<(u32, Seen)>() <= 72);
    }

    #[test]
    fn comm_holds_up_to_16_bytes() {
        assert_eq!(Comm::new(b"nginx").as_bytes(), b"nginx");
        assert_eq!(Comm::new(&[b'x'; 40]).as_bytes(), &[b'x'; 16]);
        assert_eq!(Comm::new(b"").as_bytes(), b"");
    }
}
