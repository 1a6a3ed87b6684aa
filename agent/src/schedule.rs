//! Cron schedules in a time zone: when a job is due (`collect.checkins[].schedule`).
//!
//! [`Cron::parse`] reads a five-field cron expression (minute, hour, day of month, month,
//! day of week, as crontab(5) writes them, with names such as `MON` or `JAN`, ranges, lists
//! and steps, the `@daily`-style nicknames, and croner's `L`, `W` and `#` extensions) in a
//! time zone of the system's database (`Europe/Berlin`; absent or `UTC`: UTC). Times go in
//! and come out as milliseconds since the Unix epoch, so nothing outside this file sees the
//! date-time library.
//!
//! The expression is matched against the local wall-clock time of the zone, and daylight
//! saving time is handled as cron daemons do: a time the clocks skip in spring (02:30 on
//! the night Europe/Berlin moves from 02:00 to 03:00) is not skipped but runs at the first
//! moment after the gap; a time the clocks repeat in autumn runs once, at its first pass.
//! Schedules that repeat every hour or more often (`*/15 * * * *`, `0 * * * *`) follow the
//! absolute time line through both changes.
//!
//! Parsing is croner's; time zones are jiff's, read from `/usr/share/zoneinfo` (Debian's
//! `tzdata`) rather than bundled into the binary.

use std::fmt;

use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The time zone of a schedule that names none.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// A parsed cron expression in a time zone.
#[derive(Clone)]
pub struct Cron {
    expression: String,
    timezone: String,
    /// Boxed: croner's parsed pattern is some 350 bytes.
    cron: Box<croner::Cron>,
    tz: TimeZone,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cron")
            .field("expression", &self.expression)
            .field("timezone", &self.timezone)
            .finish()
    }
}

impl PartialEq for Cron {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.timezone == other.timezone
    }
}

/// The time zone called `name` in the system's database (`UTC` needs none): what
/// [`Cron::parse`] reads its zone with, for other settings that name a zone.
pub fn timezone(name: &str) -> Result<TimeZone, String> {
    let name = name.trim();
    if name.is_empty() || name.eq_ignore_ascii_case(DEFAULT_TIMEZONE) {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|_| {
        format!(
            "unknown time zone {name:?}: not in the system's time zone database \
             (/usr/share/zoneinfo, package tzdata); use a name such as Europe/Berlin or UTC"
        )
    })
}

impl Cron {
    /// Parses `expression` (five fields: minute hour day-of-month month day-of-week, or a
    /// nickname such as `@daily`) in time zone `tz` (empty: UTC). The error says what is
    /// wrong, in one line.
    pub fn parse(expression: &str, tz: &str) -> Result<Cron, String> {
        let text = expression.trim();
        if text.is_empty() {
            return Err("empty cron expression: expected five fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * *\"".into());
        }
        let fields = text.split_whitespace().count();
        if !text.starts_with('@') && fields != 5 {
            return Err(format!(
                "cron expression {text:?} has {fields} field(s): expected five (minute hour day-of-month month day-of-week), e.g. \"0 3 * * *\""
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|e| format!("invalid cron expression {text:?}: {}", reason(&e)))?;
        let zone = timezone(tz)?;
        let parsed = Cron {
            expression: text.to_string(),
            timezone: if tz.trim().is_empty() {
                DEFAULT_TIMEZONE.to_string()
            } else {
                tz.trim().to_string()
            },
            cron: Box::new(cron),
            tz: zone,
        };
        // A day that never comes (`0 0 30 2 *`) parses, but no time is ever due.
        if parsed.next(REFERENCE_MS).is_none() {
            return Err(format!(
                "cron expression {text:?} never comes due (no such day in any year)"
            ));
        }
        Ok(parsed)
    }

    /// The expression as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone's name (`UTC` when none was given).
    pub fn timezone(&self) -> &str {
        &self.timezone
    }

    /// The first time the schedule is due strictly after `at` (ms since the epoch); `None`
    /// past the years the library handles.
    pub fn next(&self, at: i64) -> Option<i64> {
        // Due times fall on whole seconds: the next one after the second `at` falls in is
        // after `at` itself.
        let from = self.zoned(at.div_euclid(1000) * 1000)?;
        let due = self.cron.find_next_occurrence(&from, false).ok()?;
        Some(due.timestamp().as_millisecond())
    }

    /// The last time the schedule was due at or before `at` (ms since the epoch).
    pub fn previous(&self, at: i64) -> Option<i64> {
        let from = self.zoned(at.div_euclid(1000) * 1000)?;
        let due = self.cron.find_previous_occurrence(&from, true).ok()?;
        Some(due.timestamp().as_millisecond())
    }

    fn zoned(&self, ms: i64) -> Option<jiff::Zoned> {
        Timestamp::from_millisecond(ms)
            .ok()
            .map(|t| t.to_zoned(self.tz.clone()))
    }
}

/// 2000-01-01T00:00:00Z: where [`Cron::parse`] looks for a first due time (a leap year
/// begins the four years searched, so `29 2` is found).
const REFERENCE_MS: i64 = 946_684_800_000;

/// croner's message, without its enum wrapping.
fn reason(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError;
    match e {
        CronError::InvalidPattern(m)
        | CronError::IllegalCharacters(m)
        | CronError::ComponentError(m) => m.trim_end_matches('.').to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ms of an RFC 3339 time.
    fn t(text: &str) -> i64 {
        crate::clock::parse_rfc3339(text).unwrap_or_else(|| panic!("{text}"))
    }

    /// The next `n` due times after `from`, as UTC RFC 3339 text.
    fn upcoming(cron: &Cron, from: &str, n: usize) -> Vec<String> {
        let mut at = t(from);
        let mut out = Vec::new();
        for _ in 0..n {
            at = cron.next(at).unwrap();
            out.push(crate::notify::rfc3339(at).replace(".000Z", "Z"));
        }
        out
    }

    #[test]
    fn a_daily_schedule_in_utc() {
        let cron = Cron::parse("0 3 * * *", "").unwrap();
        assert_eq!(cron.timezone(), "UTC");
        assert_eq!(
            upcoming(&cron, "2026-05-01T02:59:59.999Z", 2),
            ["2026-05-01T03:00:00Z", "2026-05-02T03:00:00Z"]
        );
        // strictly after: at the due time itself, the next day's
        assert_eq!(
            cron.next(t("2026-05-01T03:00:00Z")),
            Some(t("2026-05-02T03:00:00Z"))
        );
        // at or before: the due time itself counts, half a second later too
        for at in ["2026-05-01T03:00:00Z", "2026-05-01T03:00:00.500Z"] {
            assert_eq!(
                cron.previous(t(at)),
                Some(t("2026-05-01T03:00:00Z")),
                "{at}"
            );
        }
        assert_eq!(
            cron.previous(t("2026-05-01T02:59:59Z")),
            Some(t("2026-04-30T03:00:00Z"))
        );
    }

    #[test]
    fn names_nicknames_and_steps() {
        let weekdays = Cron::parse("30 8 * * MON-FRI", "UTC").unwrap();
        // 2026-05-01 is a Friday
        assert_eq!(
            upcoming(&weekdays, "2026-05-01T09:00:00Z", 2),
            ["2026-05-04T08:30:00Z", "2026-05-05T08:30:00Z"]
        );
        let daily = Cron::parse("@daily", "").unwrap();
        assert_eq!(
            upcoming(&daily, "2026-05-01T12:00:00Z", 1),
            ["2026-05-02T00:00:00Z"]
        );
        let quarter = Cron::parse("*/15 * * * *", "").unwrap();
        assert_eq!(
            upcoming(&quarter, "2026-05-01T12:07:00Z", 2),
            ["2026-05-01T12:15:00Z", "2026-05-01T12:30:00Z"]
        );
        let leap = Cron::parse("0 0 29 2 *", "").unwrap();
        assert_eq!(
            upcoming(&leap, "2026-05-01T00:00:00Z", 1),
            ["2028-02-29T00:00:00Z"]
        );
    }

    /// Europe/Berlin moves from 02:00 CET to 03:00 CEST on 2026-03-29 and from 03:00 CEST
    /// back to 02:00 CET on 2026-10-25.
    #[test]
    fn daylight_saving_changes_in_europe_berlin() {
        let berlin = "Europe/Berlin";
        // 03:00 local every day: 02:00 UTC in winter, 01:00 UTC in summer.
        let three = Cron::parse("0 3 * * *", berlin).unwrap();
        assert_eq!(
            upcoming(&three, "2026-03-27T12:00:00Z", 3),
            [
                "2026-03-28T02:00:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-30T01:00:00Z"
            ]
        );
        assert_eq!(
            upcoming(&three, "2026-10-23T12:00:00Z", 3),
            [
                "2026-10-24T01:00:00Z",
                "2026-10-25T02:00:00Z",
                "2026-10-26T02:00:00Z"
            ]
        );
        // 02:30 local does not exist on 2026-03-29: it runs at the end of the gap (03:00
        // CEST), once, and the day after at 02:30 CEST again.
        let half_two = Cron::parse("30 2 * * *", berlin).unwrap();
        assert_eq!(
            upcoming(&half_two, "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
        );
        // 02:30 local happens twice on 2026-10-25 (CEST, then CET): it runs once, at the first.
        assert_eq!(
            upcoming(&half_two, "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
        // ... and looking back from the day after, the due time before that is the same one.
        assert_eq!(
            half_two.previous(t("2026-10-26T00:00:00Z")),
            Some(t("2026-10-25T00:30:00Z"))
        );
        // Hourly schedules follow the absolute time: no hour lost or doubled in the count.
        let hourly = Cron::parse("0 * * * *", berlin).unwrap();
        assert_eq!(
            upcoming(&hourly, "2026-10-24T23:30:00Z", 4),
            [
                "2026-10-25T00:00:00Z", // 02:00 CEST
                "2026-10-25T01:00:00Z", // 02:00 CET
                "2026-10-25T02:00:00Z", // 03:00 CET
                "2026-10-25T03:00:00Z"
            ]
        );
        assert_eq!(
            upcoming(&hourly, "2026-03-29T00:30:00Z", 2),
            ["2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"] // 03:00 and 04:00 CEST
        );
    }

    #[test]
    fn bad_expressions_and_zones_say_what_is_wrong() {
        let cases = [
            ("", "UTC", "empty cron expression"),
            ("0 3 * *", "UTC", "has 4 field(s): expected five"),
            ("0 0 3 * * *", "UTC", "has 6 field(s): expected five"),
            (
                "61 3 * * *",
                "UTC",
                "invalid cron expression \"61 3 * * *\"",
            ),
            ("0 3 * * FUNDAY", "UTC", "invalid cron expression"),
            ("0 0 30 2 *", "UTC", "never comes due"),
            (
                "0 3 * * *",
                "Europe/Berln",
                "unknown time zone \"Europe/Berln\"",
            ),
            ("0 3 * * *", "CEST+2", "unknown time zone"),
        ];
        for (expression, tz, expected) in cases {
            let err = Cron::parse(expression, tz).unwrap_err();
            assert!(err.contains(expected), "{expression:?} in {tz}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn zones_by_name() {
        assert_eq!(timezone("").unwrap(), TimeZone::UTC);
        assert_eq!(timezone("utc").unwrap(), TimeZone::UTC);
        assert!(timezone("America/New_York").is_ok());
        let cron = Cron::parse(" 0 3 * * * ", " Europe/Berlin ").unwrap();
        assert_eq!(
            (cron.expression(), cron.timezone()),
            ("0 3 * * *", "Europe/Berlin")
        );
    }
}
