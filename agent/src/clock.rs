//! The wall clock and the agent's timeline, read in one place, with no dependency on the rest
//! of the crate.
//!
//! - [`wall_millis`] is the wall clock: what a person or another system reads as the time.
//!   Use it for timestamps that leave the agent (file names, messages sent).
//! - [`now_millis`] is the agent's **timeline**: the wall clock read once, when the agent
//!   starts, advanced by the monotonic clock since. It never jumps: when the wall clock is
//!   stepped (an NTP correction, a hand-set date, a VM restored), the timeline carries on as
//!   if nothing happened. Everything that measures a duration runs on it: store windows,
//!   rules' `for` / `clear_for` / `stale_after` / repeat timers, grouping, retries, the
//!   circuit breaker, the rate limit. [`wall_offset_millis`] says how far the wall clock has
//!   moved away from the timeline since start-up (0 until it is stepped), to turn a time on
//!   the timeline into a wall-clock timestamp where one leaves the agent.
//!
//! The monotonic clock (`CLOCK_MONOTONIC`) follows NTP's gradual rate corrections like the
//! wall clock but no steps, so without steps the two stay equal. It stops while the host is
//! suspended: time spent suspended counts as a step, not as time that passed.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch now (the store's time, `store::Millis`); 0 for a clock
/// set before 1970, `i64::MAX` past the year 292 million.
pub fn wall_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Where a [`Timeline`] reads the time: the system's clocks in the agent, a scripted pair in
/// tests (a wall clock that jumps while the monotonic one runs on).
pub trait Source: Send + Sync {
    /// The wall clock, in ms since the epoch.
    fn wall(&self) -> i64;
    /// The monotonic clock: time since an origin of the source's choosing, never going back.
    fn mono(&self) -> Duration;
}

/// The system's clocks: [`wall_millis`] and [`Instant`].
#[derive(Debug)]
pub struct System {
    origin: Instant,
}

impl Source for System {
    fn wall(&self) -> i64 {
        wall_millis()
    }

    fn mono(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A continuous timeline over a [`Source`]: its wall clock when the timeline was made,
/// advanced by its monotonic clock since. See the module docs.
#[derive(Debug)]
pub struct Timeline<S = System> {
    source: S,
    wall0: i64,
    mono0: Duration,
}

impl<S: Source> Timeline<S> {
    /// A timeline starting now, at `source`'s wall-clock time.
    pub fn new(source: S) -> Self {
        let (wall0, mono0) = (source.wall(), source.mono());
        Timeline {
            source,
            wall0,
            mono0,
        }
    }

    /// The time on the timeline, in ms since the epoch.
    pub fn now(&self) -> i64 {
        let elapsed = self.source.mono().saturating_sub(self.mono0);
        self.wall0
            .saturating_add(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
    }

    /// How far the wall clock is ahead of the timeline (negative: behind), in ms: the sum of
    /// the steps it took since the timeline started.
    pub fn wall_offset(&self) -> i64 {
        self.source.wall().saturating_sub(self.now())
    }
}

/// A timeline as its users read it: the agent's ([`AgentTimeline`]), or in tests one over a
/// scripted [`Source`].
pub trait Clock: Send + Sync {
    /// The time on the timeline, in ms since the epoch.
    fn now(&self) -> i64;
    /// How far the wall clock is ahead of the timeline, in ms.
    fn wall_offset(&self) -> i64;
}

impl<S: Source> Clock for Timeline<S> {
    fn now(&self) -> i64 {
        Timeline::now(self)
    }

    fn wall_offset(&self) -> i64 {
        Timeline::wall_offset(self)
    }
}

/// The agent's timeline ([`now_millis`], [`wall_offset_millis`]) as a [`Clock`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentTimeline;

impl Clock for AgentTimeline {
    fn now(&self) -> i64 {
        now_millis()
    }

    fn wall_offset(&self) -> i64 {
        wall_offset_millis()
    }
}

/// The agent's timeline, started the first time it is read (at start-up).
fn timeline() -> &'static Timeline {
    static TIMELINE: OnceLock<Timeline> = OnceLock::new();
    TIMELINE.get_or_init(|| {
        Timeline::new(System {
            origin: Instant::now(),
        })
    })
}

/// The time on the agent's timeline, in ms since the epoch: continuous, whatever the wall
/// clock does. See the module docs.
pub fn now_millis() -> i64 {
    timeline().now()
}

/// How far the wall clock is ahead of the agent's timeline, in ms: add it to a time on the
/// timeline to get the wall-clock timestamp of that moment as the wall clock now reads.
pub fn wall_offset_millis() -> i64 {
    timeline().wall_offset()
}

/// Milliseconds since the epoch of an RFC 3339 time such as `2026-12-02T08:00:00Z` or
/// `2026-12-02T09:00:00.250+01:00`; `None` when `text` is not one.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then_some(())?;
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, s) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == i + 6 && b[i + 3] == b':' => {
            let minutes = num(i + 1, 2)? * 60 + num(i + 4, 2)?;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset * 60;
    Some(secs * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_to_their_instant() {
        for (text, ms) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2026-12-02T08:00:00Z", 1_796_198_400_000),
            ("2026-12-02T09:00:00.25+01:00", 1_796_198_400_250),
            ("2024-02-29T23:59:59.999-00:30", 1_709_252_999_999),
            ("1969-12-31T23:59:59Z", -1_000),
        ] {
            assert_eq!(parse_rfc3339(text), Some(ms), "{text}");
        }
        for bad in [
            "",
            "2026-12-02",
            "2026-13-02T00:00:00Z",
            "2026-12-02T00:00:00",
            "2026-12-02T00:00:00+1",
            "2026-12-02T00:00:00.Z",
            "x026-12-02T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
    use std::sync::Mutex;

    #[test]
    fn reads_the_wall_clock_in_milliseconds() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let ms = wall_millis();
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(i64::try_from(before.as_millis()).unwrap() <= ms, "{ms}");
        assert!(ms <= i64::try_from(after.as_millis()).unwrap(), "{ms}");
    }

    /// A wall clock and a monotonic clock the test moves by hand.
    #[derive(Default)]
    struct Scripted(Mutex<(i64, Duration)>);

    impl Scripted {
        /// Time passes: both clocks move on by `ms`.
        fn pass(&self, ms: u64) {
            let mut c = self.0.lock().unwrap();
            c.0 += i64::try_from(ms).unwrap();
            c.1 += Duration::from_millis(ms);
        }

        /// The wall clock is stepped by `ms`; the monotonic clock does not move.
        fn step(&self, ms: i64) {
            self.0.lock().unwrap().0 += ms;
        }
    }

    impl Source for &Scripted {
        fn wall(&self) -> i64 {
            self.0.lock().unwrap().0
        }

        fn mono(&self) -> Duration {
            self.0.lock().unwrap().1
        }
    }

    #[test]
    fn the_timeline_ignores_steps_of_the_wall_clock_and_measures_them() {
        const T0: i64 = 1_700_000_000_000;
        const HOUR: i64 = 3_600_000;
        let clocks = Scripted::default();
        clocks.step(T0);
        let line = Timeline::new(&clocks);
        // (what happens, timeline, wall offset) after each row
        let rows: [(&dyn Fn(), i64, i64); 6] = [
            (&|| {}, T0, 0),                           // starts at the wall clock
            (&|| clocks.pass(1_500), T0 + 1_500, 0),   // follows it while it is not stepped
            (&|| clocks.step(HOUR), T0 + 1_500, HOUR), // a step forward: no time passed
            (&|| clocks.pass(500), T0 + 2_000, HOUR),
            (&|| clocks.step(-2 * HOUR), T0 + 2_000, -HOUR), // then back, past where it was
            (&|| clocks.pass(1_000), T0 + 3_000, -HOUR),
        ];
        for (i, (event, now, offset)) in rows.into_iter().enumerate() {
            event();
            assert_eq!((line.now(), line.wall_offset()), (now, offset), "row {i}");
        }
    }

    #[test]
    fn the_agents_timeline_starts_at_the_wall_clock() {
        let offset = wall_offset_millis();
        // Nothing steps the clock of the test machine mid-test; reading the two clocks one
        // after the other can differ by a millisecond or so.
        assert!(offset.abs() < 1_000, "{offset}");
        assert!((now_millis() - wall_millis()).abs() < 1_000);
    }
}
