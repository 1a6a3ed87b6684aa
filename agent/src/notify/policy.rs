//! Delivery policies: retry backoff, give-up age, per-receiver circuit breaker and rate limit.
//!
//! Everything here is pure and takes the time as an argument (`now`, ms since the epoch) and
//! randomness as a number, so the dispatcher owns the clock and the random source and tests
//! are exact tables. The dispatcher asks, in order: is the receiver's circuit letting a send
//! through ([`Breaker::allow`]), does the rate limit have room ([`RateLimit::try_acquire`]),
//! then sends and records the outcome in the breaker and the outbox, with [`backoff`] giving
//! the next attempt time and [`give_up`] deciding when a message becomes a dead letter.
//!
//! Degenerate configuration values (a breaker opening after 0 failures, a rate limit of 0
//! messages) are treated as 1 rather than as "never send": a typo must not silence alerts.

use std::collections::VecDeque;
use std::time::Duration;

use crate::store::Millis;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::check::MIN_INTERVAL;
use crate::config::units::number_text;
use crate::config::{Checker, Text};

/// A duration as milliseconds, saturating instead of overflowing.
fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// Delay before the next attempt after `attempts` failed ones: `initial * multiplier^(attempts-1)`,
/// capped at `max`. With `cfg.jitter`, a value in `[d/2, d]` chosen by `random` (expected in
/// `0..=1`; out-of-range values are clamped, a non-finite one counts as 1).
///
/// `attempts` of 0 is treated as 1 (the first retry waits `initial`).
pub fn backoff(cfg: &RetryConfig, attempts: u32, random: f64) -> Duration {
    let max = cfg.max.as_secs_f64();
    let exponent = i32::try_from(attempts.saturating_sub(1)).unwrap_or(i32::MAX);
    let raw = cfg.initial.as_secs_f64() * cfg.multiplier.powi(exponent);
    // A huge exponent gives infinity, a bad multiplier NaN: both mean "as long as allowed".
    let capped = if raw.is_finite() {
        raw.clamp(0.0, max)
    } else {
        max
    };
    let secs = if cfg.jitter {
        let r = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            1.0
        };
        capped / 2.0 + r * (capped / 2.0)
    } else {
        capped
    };
    Duration::try_from_secs_f64(secs).unwrap_or(cfg.max)
}

/// Longest "not before" of a receiver ([`SendError::RetryAfter`](super::SendError)) that is
/// honoured: a receiver asking for more is tried again after this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Delay before the next attempt after `attempts` failed ones when the receiver may have said
/// how long to wait (`after`): the [`backoff`], or `after` (at most [`MAX_RETRY_AFTER`]) when
/// that is longer. A receiver's wait is never cut short by the backoff's `max`.
pub fn retry_delay(
    cfg: &RetryConfig,
    attempts: u32,
    random: f64,
    after: Option<Duration>,
) -> Duration {
    let delay = backoff(cfg, attempts, random);
    after.map_or(delay, |after| delay.max(after.min(MAX_RETRY_AFTER)))
}

/// Whether a message queued at `enqueued_ms` has waited `give_up_after` or longer at `now`,
/// and so goes to the dead letters instead of being retried.
pub fn give_up(cfg: &RetryConfig, enqueued_ms: Millis, now: Millis) -> bool {
    now.saturating_sub(enqueued_ms) >= millis(cfg.give_up_after)
}

/// What a [`Breaker`] currently does with sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Sends go through.
    Closed,
    /// Sends are refused until `until` (ms since the epoch).
    Open {
        /// When one probe may be let through.
        until: Millis,
    },
    /// One probe send may go through; its outcome closes or re-opens the circuit.
    HalfOpen,
}

/// Per-receiver circuit breaker: `failures` consecutive failures open it for `open_for`, then
/// one probe is let through (half-open); a success closes it, a failure opens it again.
#[derive(Debug, Clone)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: BreakerState,
    consecutive_failures: u32,
    /// Half-open: the one probe has been let through and its outcome is not recorded yet.
    probe_in_flight: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Self {
        Breaker {
            cfg,
            state: BreakerState::Closed,
            consecutive_failures: 0,
            probe_in_flight: false,
        }
    }

    /// Whether a send may go out at `now`. Moves an open circuit whose time is up to
    /// half-open, where it answers `true` exactly once until that probe's outcome is recorded.
    pub fn allow(&mut self, now: Millis) -> bool {
        if let BreakerState::Open { until } = self.state {
            if now < until {
                return false;
            }
            self.state = BreakerState::HalfOpen;
            self.probe_in_flight = false;
        }
        match self.state {
            BreakerState::Closed => true,
            BreakerState::HalfOpen if !self.probe_in_flight => {
                self.probe_in_flight = true;
                true
            }
            BreakerState::HalfOpen | BreakerState::Open { .. } => false,
        }
    }

    /// Records a send's outcome at `now`. A success closes the circuit and resets the count of
    /// consecutive failures; a failure counts, opens the circuit at the threshold, and re-opens
    /// it from half-open. A failure arriving while already open (a send that was in flight)
    /// does not extend the open period.
    pub fn record(&mut self, success: bool, now: Millis) {
        self.probe_in_flight = false;
        if success {
            self.consecutive_failures = 0;
            self.state = BreakerState::Closed;
            return;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let open = BreakerState::Open {
            until: now.saturating_add(millis(self.cfg.open_for)),
        };
        match self.state {
            BreakerState::HalfOpen => self.state = open,
            BreakerState::Closed if self.consecutive_failures >= self.cfg.failures.max(1) => {
                self.state = open;
            }
            BreakerState::Closed | BreakerState::Open { .. } => {}
        }
    }

    /// The state as of the last [`allow`](Self::allow) or [`record`](Self::record): an open
    /// circuit whose time is up still reports `Open` until `allow` is asked.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Failures in a row since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
}

/// Per-receiver rate limit: at most `max` sends in any window of `per` (a sliding window of
/// the send times, so no burst of `2 * max` across a window boundary).
#[derive(Debug, Clone)]
pub struct RateLimit {
    max: usize,
    per: Millis,
    /// Send times still inside the window, oldest first; never more than `max`.
    sent: VecDeque<Millis>,
}

impl RateLimit {
    /// An empty window.
    pub fn new(cfg: RateLimitConfig) -> Self {
        RateLimit {
            max: usize::try_from(cfg.max.max(1)).unwrap_or(usize::MAX),
            per: millis(cfg.per),
            sent: VecDeque::new(),
        }
    }

    /// Whether a send at `now` fits in the window; if so, it is counted.
    pub fn try_acquire(&mut self, now: Millis) -> bool {
        while let Some(&oldest) = self.sent.front() {
            if self.left_window(oldest, now) {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        if self.sent.len() < self.max {
            self.sent.push_back(now);
            true
        } else {
            false
        }
    }

    /// The earliest time at or after `now` when [`try_acquire`](Self::try_acquire) will
    /// succeed: `now` if there is room, else when the oldest send in the window leaves it.
    pub fn next_free_ms(&self, now: Millis) -> Millis {
        let in_window = self.sent.iter().filter(|&&t| !self.left_window(t, now));
        let Some(&oldest) = in_window.clone().next() else {
            return now;
        };
        if in_window.count() < self.max {
            now
        } else {
            oldest.saturating_add(self.per).max(now)
        }
    }

    /// A send at `t` no longer counts at `now` once `per` has passed.
    fn left_window(&self, t: Millis, now: Millis) -> bool {
        t.saturating_add(self.per) <= now
    }
}

// Configuration: `notify.retry`, `notify.circuit_breaker` and `notify.rate_limit`.

/// Shortest accepted `notify.retry.initial` and `notify.retry.max`.
pub const MIN_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Longest accepted `notify.retry.initial`.
pub const MAX_RETRY_INITIAL: Duration = Duration::from_secs(3600);
/// Shortest accepted `notify.retry.give_up_after`.
pub const MIN_GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// `notify.retry`: exponential backoff.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// First delay, at least `100ms`; absent: `1s`.
    pub initial: Option<Text>,
    /// Longest delay, at least `initial`; absent: `60s`.
    pub max: Option<Text>,
    /// Growth per attempt, at least 1; absent: 2.
    pub multiplier: Option<Spanned<f64>>,
    /// Randomize each delay; absent: `true`.
    pub jitter: Option<bool>,
    /// Age after which an undelivered message goes to the dead letters, at least `max`;
    /// absent: `24h`.
    pub give_up_after: Option<Text>,
}

/// `notify.circuit_breaker`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    /// Consecutive failures that open the circuit, at least 1; absent: 5.
    pub failures: Option<Spanned<i64>>,
    /// How long it stays open before one probe, at least `1s`; absent: `5m`.
    pub open_for: Option<Text>,
}

/// `notify.rate_limit`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Messages per receiver per window, at least 1; absent: 30.
    pub max: Option<Spanned<i64>>,
    /// The window, at least `1s`; absent: `1h`.
    pub per: Option<Text>,
}

/// `notify.retry`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Growth per attempt.
    pub multiplier: f64,
    /// Randomize each delay (full jitter between half and the whole delay).
    pub jitter: bool,
    /// A message not delivered this long after it was queued goes to the dead letters.
    pub give_up_after: Duration,
}

/// `notify.circuit_breaker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// How long it stays open before one probe is let through.
    pub open_for: Duration,
}

/// `notify.rate_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Messages per receiver per `per`.
    pub max: u32,
    /// The window.
    pub per: Duration,
}

/// Checks `notify.retry` (`path`); absent keys take `defaults`.
pub fn check_retry(
    c: &mut Checker<'_>,
    path: &str,
    raw: &RawRetry,
    defaults: RetryConfig,
) -> RetryConfig {
    let initial_path = &format!("{path}.initial");
    let max_path = &format!("{path}.max");
    let give_up_path = &format!("{path}.give_up_after");
    let initial = c.duration(
        initial_path,
        raw.initial.as_ref(),
        defaults.initial,
        MIN_RETRY_DELAY,
        Some(MAX_RETRY_INITIAL),
    );
    let max = c.duration(
        max_path,
        raw.max.as_ref(),
        defaults.max,
        MIN_RETRY_DELAY,
        None,
    );
    let give_up_after = c.duration(
        give_up_path,
        raw.give_up_after.as_ref(),
        defaults.give_up_after,
        MIN_GIVE_UP_AFTER,
        None,
    );
    c.not_shorter(
        (initial_path, initial, raw.initial.as_ref()),
        (max_path, max, raw.max.as_ref()),
    );
    c.not_shorter(
        (max_path, max, raw.max.as_ref()),
        (give_up_path, give_up_after, raw.give_up_after.as_ref()),
    );
    let multiplier = match &raw.multiplier {
        None => defaults.multiplier,
        Some(m) if m.value.is_finite() && m.value >= 1.0 => m.value,
        Some(m) => {
            c.report(
                &format!("{path}.multiplier"),
                Some(&m.referenced),
                format!(
                    "must be a finite number of at least 1, got {}",
                    number_text(m.value)
                ),
            );
            defaults.multiplier
        }
    };
    RetryConfig {
        initial: initial.unwrap_or(defaults.initial),
        max: max.unwrap_or(defaults.max),
        multiplier,
        jitter: raw.jitter.unwrap_or(defaults.jitter),
        give_up_after: give_up_after.unwrap_or(defaults.give_up_after),
    }
}

/// Checks `notify.circuit_breaker` (`path`); absent keys take `defaults`.
pub fn check_breaker(
    c: &mut Checker<'_>,
    path: &str,
    raw: &RawBreaker,
    defaults: BreakerConfig,
) -> BreakerConfig {
    BreakerConfig {
        failures: c.count_u32(
            &format!("{path}.failures"),
            raw.failures.as_ref(),
            defaults.failures,
        ),
        open_for: c
            .duration(
                &format!("{path}.open_for"),
                raw.open_for.as_ref(),
                defaults.open_for,
                MIN_INTERVAL,
                None,
            )
            .unwrap_or(defaults.open_for),
    }
}

/// Checks `notify.rate_limit` (`path`); absent keys take `defaults`.
pub fn check_rate_limit(
    c: &mut Checker<'_>,
    path: &str,
    raw: &RawRateLimit,
    defaults: RateLimitConfig,
) -> RateLimitConfig {
    RateLimitConfig {
        max: c.count_u32(&format!("{path}.max"), raw.max.as_ref(), defaults.max),
        per: c
            .duration(
                &format!("{path}.per"),
                raw.per.as_ref(),
                defaults.per,
                MIN_INTERVAL,
                None,
            )
            .unwrap_or(defaults.per),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(jitter: bool) -> RetryConfig {
        RetryConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter,
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cfg = retry(false);
        // (attempts, expected delay)
        let rows = [
            (0, 1.0),         // no attempt yet: treated as the first retry
            (1, 1.0),         // first retry waits `initial`
            (2, 2.0),         // x2
            (3, 4.0),         // x2
            (4, 8.0),         // x2
            (5, 16.0),        // x2
            (6, 32.0),        // x2
            (7, 60.0),        // 64 s capped at max
            (8, 60.0),        // stays at the cap
            (1_000, 60.0),    // 2^999 overflows to infinity: capped, no panic
            (u32::MAX, 60.0), // exponent beyond i32: capped, no panic
        ];
        for (attempts, expected) in rows {
            let got = backoff(&cfg, attempts, 0.3);
            assert_eq!(
                got,
                Duration::from_secs_f64(expected),
                "attempts {attempts}"
            );
        }
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_delay() {
        let cfg = retry(true);
        // (attempts, random, expected delay)
        let rows = [
            (1, 0.0, 0.5),           // random 0: half of 1 s
            (1, 1.0, 1.0),           // random 1: the whole 1 s
            (3, 0.0, 2.0),           // half of 4 s
            (3, 0.5, 3.0),           // three quarters of 4 s
            (3, 1.0, 4.0),           // the whole 4 s
            (9, 0.0, 30.0),          // half of the 60 s cap
            (9, 1.0, 60.0),          // the cap itself, never above
            (3, -2.0, 2.0),          // below range: clamped to 0
            (3, 7.0, 4.0),           // above range: clamped to 1
            (3, f64::NAN, 4.0),      // NaN: counts as 1, never a panic
            (3, f64::INFINITY, 4.0), // infinity: counts as 1
        ];
        for (attempts, random, expected) in rows {
            let got = backoff(&cfg, attempts, random);
            assert_eq!(
                got,
                Duration::from_secs_f64(expected),
                "attempts {attempts}, random {random}"
            );
        }
    }

    #[test]
    fn a_receivers_wait_lengthens_the_backoff_up_to_an_hour() {
        let cfg = retry(false);
        let secs = Duration::from_secs;
        // (attempts, receiver's wait, expected delay)
        let rows = [
            (1, None, secs(1)),          // no wait given: the backoff
            (1, Some(secs(5)), secs(5)), // longer than the backoff: honoured
            (
                1,
                Some(Duration::from_millis(1500)),
                Duration::from_millis(1500),
            ), // fractions kept
            (4, Some(secs(5)), secs(8)), // shorter than the backoff: the backoff
            (9, Some(secs(600)), secs(600)), // beyond retry.max (60 s): still honoured
            (1, Some(secs(86_400)), MAX_RETRY_AFTER), // a day: capped at an hour
            (1, Some(Duration::ZERO), secs(1)), // zero: the backoff
        ];
        for (attempts, after, expected) in rows {
            assert_eq!(
                retry_delay(&cfg, attempts, 0.0, after),
                expected,
                "attempts {attempts}, after {after:?}"
            );
        }
        // With jitter, the receiver's wait is a floor the randomness cannot go under.
        assert_eq!(retry_delay(&retry(true), 1, 0.0, Some(secs(5))), secs(5));
    }

    #[test]
    fn backoff_survives_bad_multipliers() {
        // (multiplier, attempts, expected) — validation should reject these, the policy must not panic
        let rows = [
            (f64::NAN, 3, 60.0), // NaN growth: the cap
            (-2.0, 2, 0.0),      // negative delay: clamped to 0
            (1.0, 50, 1.0),      // constant delay
        ];
        for (multiplier, attempts, expected) in rows {
            let cfg = RetryConfig {
                multiplier,
                ..retry(false)
            };
            assert_eq!(
                backoff(&cfg, attempts, 0.0),
                Duration::from_secs_f64(expected),
                "multiplier {multiplier}"
            );
        }
    }

    #[test]
    fn give_up_at_exactly_give_up_after() {
        let cfg = retry(false);
        let day = 24 * 3600 * 1000;
        let t0 = 1_700_000_000_000;
        // (now, expected)
        let rows = [
            (t0, false),           // just queued
            (t0 + day - 1, false), // one ms short of a day
            (t0 + day, true),      // exactly a day: give up
            (t0 + day + 1, true),  // past it
            (t0 - 5_000, false),   // clock went backwards: keep trying
            (Millis::MAX, true),   // no overflow
        ];
        for (now, expected) in rows {
            assert_eq!(give_up(&cfg, t0, now), expected, "now {now}");
        }
        assert!(
            !give_up(&cfg, Millis::MAX, Millis::MIN),
            "saturating subtraction"
        );
    }

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failures: 5,
            open_for: Duration::from_secs(300),
        })
    }

    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// `allow(now)` must answer this.
        Allow(Millis, bool),
        /// `record(success, now)`.
        Record(bool, Millis),
        /// `state()` must be this.
        State(BreakerState),
    }
    use Step::{Allow, Record, State};

    fn run(steps: &[Step]) {
        let mut b = breaker();
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Allow(now, expected) => assert_eq!(b.allow(now), expected, "step {i}: {step:?}"),
                Record(success, now) => b.record(success, now),
                State(expected) => assert_eq!(b.state(), expected, "step {i}: {step:?}"),
            }
        }
    }

    #[test]
    fn breaker_opens_after_five_failures_and_probes_once() {
        const OPEN: Millis = 300_000;
        run(&[
            State(BreakerState::Closed), // starts closed
            Allow(0, true),              // closed lets sends through
            Record(false, 1),            // failure 1
            Record(false, 2),            // failure 2
            Record(false, 3),            // failure 3
            Record(false, 4),            // failure 4
            Allow(4, true),              // still closed after 4
            Record(false, 10),           // failure 5: opens for 5 min from now
            State(BreakerState::Open { until: 10 + OPEN }),
            Allow(11, false),            // open rejects
            Allow(10 + OPEN - 1, false), // ... until the last ms
            Allow(10 + OPEN, true),      // time is up: half-open, one probe
            State(BreakerState::HalfOpen),
            Allow(10 + OPEN + 1, false), // a second send waits for the probe
            Allow(10 + OPEN + 2, false), // ... however often asked
            Record(true, 10 + OPEN + 3), // probe succeeded: closed
            State(BreakerState::Closed),
            Allow(10 + OPEN + 4, true), // and sends flow again
            Allow(10 + OPEN + 4, true),
        ]);
    }

    #[test]
    fn breaker_failed_probe_reopens() {
        const OPEN: Millis = 300_000;
        let mut steps: Vec<Step> = (0..5).map(|i| Record(false, i)).collect(); // opens at 4
        steps.extend([
            State(BreakerState::Open { until: 4 + OPEN }),
            Allow(4 + OPEN, true),   // half-open probe
            Record(false, 5 + OPEN), // probe failed: open again, from now
            State(BreakerState::Open {
                until: 5 + 2 * OPEN,
            }),
            Allow(5 + OPEN + 1, false), // rejected again
            Allow(5 + 2 * OPEN, true),  // next probe after another open_for
            Allow(5 + 2 * OPEN, false), // only one
            Record(true, 6 + 2 * OPEN), // success closes
            State(BreakerState::Closed),
            Record(false, 7 + 2 * OPEN), // one failure after closing does not open
            State(BreakerState::Closed),
        ]);
        run(&steps);
    }

    #[test]
    fn breaker_success_resets_the_consecutive_count() {
        run(&[
            Record(false, 1),            // 1
            Record(false, 2),            // 2
            Record(false, 3),            // 3
            Record(false, 4),            // 4
            Record(true, 5),             // success: back to 0
            Record(false, 6),            // 1
            Record(false, 7),            // 2
            Record(false, 8),            // 3
            Record(false, 9),            // 4
            State(BreakerState::Closed), // not 5 in a row: still closed
            Allow(10, true),
            Record(false, 10), // 5 in a row: open
            State(BreakerState::Open { until: 300_010 }),
            Record(false, 11), // a late failure does not extend it
            State(BreakerState::Open { until: 300_010 }),
        ]);
    }

    #[test]
    fn breaker_with_zero_failures_opens_on_the_first() {
        let mut b = Breaker::new(BreakerConfig {
            failures: 0,
            open_for: Duration::from_secs(1),
        });
        assert!(b.allow(0));
        b.record(false, 0);
        assert_eq!(b.state(), BreakerState::Open { until: 1_000 });
        assert_eq!(b.consecutive_failures(), 1);
    }

    #[test]
    fn rate_limit_thirty_per_hour() {
        let hour = 3_600_000;
        let mut rl = RateLimit::new(RateLimitConfig {
            max: 30,
            per: Duration::from_secs(3600),
        });
        let t0 = 1_700_000_000_000;
        // 30 sends, one a minute: all allowed
        for i in 0..30 {
            assert_eq!(
                rl.next_free_ms(t0 + i * 60_000),
                t0 + i * 60_000,
                "room before send {i}"
            );
            assert!(rl.try_acquire(t0 + i * 60_000), "send {i}");
        }
        let now = t0 + 30 * 60_000;
        // (now, expected try_acquire, expected next_free_ms before it)
        let rows = [
            (now, false, t0 + hour), // 31st refused; free when the first send leaves
            (t0 + hour - 1, false, t0 + hour), // one ms before the first leaves the window
            (t0 + hour, true, t0 + hour), // the first left: allowed again
            (t0 + hour + 1, false, t0 + hour + 60_000), // full again; next free when the second leaves
            (t0 + hour + 60_000, true, t0 + hour + 60_000), // the second left
        ];
        for (now, allowed, free) in rows {
            assert_eq!(rl.next_free_ms(now), free, "next_free_ms at {now}");
            assert_eq!(rl.try_acquire(now), allowed, "try_acquire at {now}");
        }
        // Much later, everything has left the window.
        assert_eq!(rl.next_free_ms(t0 + 10 * hour), t0 + 10 * hour);
        for i in 0..30 {
            assert!(
                rl.try_acquire(t0 + 10 * hour),
                "burst send {i} after a quiet window"
            );
        }
        assert!(!rl.try_acquire(t0 + 10 * hour));
    }

    #[test]
    fn rate_limit_of_zero_lets_one_through() {
        let mut rl = RateLimit::new(RateLimitConfig {
            max: 0,
            per: Duration::from_secs(10),
        });
        assert!(rl.try_acquire(0));
        assert!(!rl.try_acquire(1));
        assert_eq!(rl.next_free_ms(1), 10_000);
    }
}
