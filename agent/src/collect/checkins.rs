//! Check-ins: dead-man's switches for cron jobs and workers (`collect.checkins`).
//!
//! A job reports to the agent over HTTP (`/api/v1/checkins/<name>` on success,
//! `.../start` when it starts, `.../fail` when it failed; see `api::checkins`), and the
//! agent says when a report did not come in time:
//!
//! - `every: 24h, grace: 1h`: late when no report (success or failure) came within
//!   every + grace of the last one;
//! - `schedule: "0 3 * * *"` (cron, in `timezone`, UTC by default), `grace: 1h`: late when
//!   the schedule came due after the last report and grace has passed since, without a
//!   new report (the time zone's daylight saving changes included, [`crate::schedule`]).
//!
//! A check-in never heard from counts from when it was first configured: a new one is not
//! late before one interval (or its first due time) plus grace has passed. A `/fail`
//! report makes it failed until the next success; `/start` only times the run
//! (`lookout_checkin_duration_seconds`) and does not count as a report, so a job that
//! starts and hangs is still late.
//!
//! [`Checkins`] is the shared aggregate: the HTTP handlers [`record`](Checkins::record)
//! reports, and one export task ([`export`]) writes the samples to the store at once after
//! each report and at the exact moment a check-in turns late (else every
//! [`REFRESH`]), so the rules see a missed check-in within one evaluation. The times are
//! saved in `data_dir/checkins.json` after every change, so a restart neither forgets a job
//! that never came nor takes an old report for a missing one.
//!
//! Times are kept on the agent's timeline ([`crate::clock`]): a step of the wall clock
//! neither makes a check-in late nor hides one. Cron schedules and the saved file use the
//! wall clock (the timeline plus the clock's offset at that moment).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use tokio::sync::{Notify, watch};

use super::scheduler::{Sink, record};
use super::{Context, Job, Kind, Sample};
use crate::catalogue;
use crate::clock::Clock;
use crate::config::{Checker, Section, Text};
use crate::schedule::Cron;

/// The collector name of the export (status API, `lookout_collector_up`).
pub const NAME: &str = "checkins";

/// How often the samples are written again when nothing changes.
pub const REFRESH: Duration = Duration::from_secs(10);

/// File name of the saved times inside `data_dir`.
pub const FILE_NAME: &str = "checkins.json";

/// Default `grace` of a check-in.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(300);

/// Shortest `every` and `grace`.
pub const MIN_PERIOD: Duration = Duration::from_secs(1);

/// Longest `every` and `grace`: a year and a day.
pub const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);

/// Format version of the saved file.
const VERSION: u64 = 1;

/// When a check-in is expected.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// At most this long after the last report.
    Every(Duration),
    /// At the times of a cron schedule.
    Schedule(Cron),
}

/// One checked entry of `collect.checkins`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckinConfig {
    /// Unique name: the `checkin` label and the URL's last segment.
    pub name: String,
    /// When a report is expected.
    pub expect: Expect,
    /// How long after that a report may still come before the check-in is late.
    pub grace: Duration,
}

/// What a job reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// It ran and succeeded.
    Success,
    /// It started (optional: times the run).
    Start,
    /// It ran and failed.
    Failure,
}

impl Report {
    /// How the answer names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Report::Success => "success",
            Report::Start => "start",
            Report::Failure => "failure",
        }
    }
}

/// What the agent knows of one check-in, in ms on the timeline (on the wall clock in the
/// saved file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Track {
    /// When it was first configured: what a check-in never heard from counts from.
    since: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_success: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_failure: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_start: Option<i64>,
    /// Whether the last report was a failure.
    #[serde(default)]
    failed: bool,
    /// Start to end of the last timed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_duration_ms: Option<i64>,
}

impl Track {
    /// The last report of either kind, or when the check-in was configured.
    fn last_report(&self) -> i64 {
        self.since
            .max(self.last_success.unwrap_or(i64::MIN))
            .max(self.last_failure.unwrap_or(i64::MIN))
    }

    fn shifted(self, by: i64) -> Track {
        let s = |t: Option<i64>| t.map(|t| t.saturating_add(by));
        Track {
            since: self.since.saturating_add(by),
            last_success: s(self.last_success),
            last_failure: s(self.last_failure),
            last_start: s(self.last_start),
            ..self
        }
    }
}

/// Where a check-in stands at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// No report came in time.
    pub late: bool,
    /// The last report was a failure.
    pub failed: bool,
    /// When it turns (or turned) late without a new report, on the timeline; `None` when
    /// it never will (a schedule past the years handled).
    pub deadline: Option<i64>,
}

/// The saved file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedFile {
    version: u64,
    checkins: BTreeMap<String, Track>,
}

#[derive(Debug, Default)]
struct Inner {
    configs: Vec<CheckinConfig>,
    tracks: BTreeMap<String, Track>,
    /// Changed since the last save.
    dirty: bool,
    /// `data_dir/checkins.json`, once the agent has one.
    file: Option<PathBuf>,
    /// Why the last save failed, until one succeeds.
    save_error: Option<String>,
}

/// The check-ins and what each last reported. Every call takes one short lock.
#[derive(Debug, Default)]
pub struct Checkins {
    inner: Mutex<Inner>,
    changed: Notify,
}

/// A report for a name that is not configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown;

impl Checkins {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves `Inner` consistent, so a poisoned lock still holds valid data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the times saved in `data_dir` and saves there from now on. A missing file is a
    /// first start; an unreadable one is moved aside (`checkins.json.corrupt-<unix seconds>`)
    /// and logged, and the check-ins count from now.
    pub fn open(&self, data_dir: &Path, clock: &dyn Clock) {
        let path = data_dir.join(FILE_NAME);
        let loaded = match fs::read_to_string(&path) {
            Ok(text) => match serde_json::from_str::<SavedFile>(&text) {
                Ok(file) if file.version == VERSION => Some(file.checkins),
                Ok(file) => {
                    aside(&path, &format!("unsupported version {}", file.version));
                    None
                }
                Err(e) => {
                    aside(&path, &e.to_string());
                    None
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "check-in times not read; the check-ins count from now");
                None
            }
        };
        let mut inner = self.lock();
        if let Some(saved) = loaded {
            // Saved on the wall clock; kept on the timeline.
            let offset = clock.wall_offset();
            for (name, track) in saved {
                inner
                    .tracks
                    .entry(name)
                    .or_insert(track.shifted(offset.saturating_neg()));
            }
        }
        inner.file = Some(path);
    }

    /// Applies the configured check-ins at `clock`'s now: new names count from now, names
    /// no longer configured are forgotten.
    pub fn configure(&self, configs: &[CheckinConfig], clock: &dyn Clock) {
        let now = clock.now();
        let mut inner = self.lock();
        let before = inner.tracks.len();
        inner
            .tracks
            .retain(|name, _| configs.iter().any(|c| c.name == *name));
        let mut changed = inner.tracks.len() != before;
        for config in configs {
            if !inner.tracks.contains_key(&config.name) {
                inner.tracks.insert(
                    config.name.clone(),
                    Track {
                        since: now,
                        ..Track::default()
                    },
                );
                changed = true;
            }
        }
        inner.configs = configs.to_vec();
        if changed {
            inner.dirty = true;
        }
        drop(inner);
        self.changed.notify_one();
    }

    /// Records `report` of check-in `name` at `clock`'s now.
    pub fn record(&self, name: &str, report: Report, clock: &dyn Clock) -> Result<(), Unknown> {
        let now = clock.now();
        let mut inner = self.lock();
        if !inner.configs.iter().any(|c| c.name == name) {
            return Err(Unknown);
        }
        let track = inner.tracks.entry(name.to_string()).or_insert(Track {
            since: now,
            ..Track::default()
        });
        let ended = |track: &mut Track| {
            // A start since the last report began this run.
            if let Some(start) = track.last_start
                && start >= track.last_report()
            {
                track.last_duration_ms = Some(now.saturating_sub(start));
            }
        };
        match report {
            Report::Start => track.last_start = Some(now),
            Report::Success => {
                ended(track);
                track.last_success = Some(now);
                track.failed = false;
            }
            Report::Failure => {
                ended(track);
                track.last_failure = Some(now);
                track.failed = true;
            }
        }
        inner.dirty = true;
        drop(inner);
        self.changed.notify_one();
        Ok(())
    }

    /// Where check-in `name` stands at `clock`'s now; `None` when it is not configured.
    pub fn standing(&self, name: &str, clock: &dyn Clock) -> Option<Standing> {
        let inner = self.lock();
        let config = inner.configs.iter().find(|c| c.name == name)?;
        let track = inner.tracks.get(name).copied().unwrap_or_default();
        Some(standing(config, &track, clock.now(), clock.wall_offset()))
    }

    /// Every sample at `clock`'s now, and when the next check-in turns late (timeline ms).
    pub fn samples(&self, clock: &dyn Clock) -> (Vec<Sample>, Option<i64>) {
        let (now, offset) = (clock.now(), clock.wall_offset());
        let inner = self.lock();
        let mut out = Vec::with_capacity(inner.configs.len() * 5);
        let mut next: Option<i64> = None;
        for config in &inner.configs {
            let track = inner.tracks.get(&config.name).copied().unwrap_or_default();
            let s = standing(config, &track, now, offset);
            if !s.late
                && let Some(deadline) = s.deadline
            {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
            let flag = |metric, on: bool| {
                Sample::with_labels(
                    metric,
                    [("checkin", config.name.clone())],
                    if on { 1.0 } else { 0.0 },
                )
            };
            out.push(flag(&catalogue::CHECKIN_UP, !s.late && !s.failed));
            out.push(flag(&catalogue::CHECKIN_LATE, s.late));
            out.push(flag(&catalogue::CHECKIN_FAILED, s.failed));
            if let Some(at) = track.last_success {
                out.push(Sample::with_labels(
                    &catalogue::CHECKIN_LAST_TIMESTAMP_SECONDS,
                    [("checkin", config.name.clone())],
                    at.saturating_add(offset) as f64 / 1000.0,
                ));
            }
            if let Some(ms) = track.last_duration_ms {
                out.push(Sample::with_labels(
                    &catalogue::CHECKIN_DURATION_SECONDS,
                    [("checkin", config.name.clone())],
                    ms as f64 / 1000.0,
                ));
            }
        }
        (out, next)
    }

    /// Saves the times when they changed since the last save (blocking: fsyncs). A failure
    /// is logged once, until a save succeeds, and tried again at the next call.
    pub fn save_if_changed(&self, clock: &dyn Clock) {
        let (path, json) = {
            let mut inner = self.lock();
            let Some(path) = inner.file.clone().filter(|_| inner.dirty) else {
                return;
            };
            let offset = clock.wall_offset();
            let file = SavedFile {
                version: VERSION,
                checkins: inner
                    .tracks
                    .iter()
                    .map(|(name, track)| (name.clone(), track.shifted(offset)))
                    .collect(),
            };
            let Ok(json) = serde_json::to_vec_pretty(&file) else {
                return;
            };
            inner.dirty = false;
            (path, json)
        };
        let outcome = crate::durable::write_atomic(&path, &json);
        let mut inner = self.lock();
        match outcome {
            Ok(()) => {
                if let Some(was) = inner.save_error.take() {
                    tracing::info!(was = %was, "check-in times saved again");
                }
            }
            Err(e) => {
                inner.dirty = true;
                let why = format!("{}: {e}", path.display());
                if inner.save_error.is_none() {
                    tracing::error!(error = %why, "cannot save the check-in times; kept in memory and saved again within 10 s");
                }
                inner.save_error = Some(why);
            }
        }
    }

    /// Waits until a report or a new configuration comes.
    async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// Where a check-in with `config` and `track` stands at `now` (timeline ms), the wall
/// clock `offset` ms ahead of the timeline.
fn standing(config: &CheckinConfig, track: &Track, now: i64, offset: i64) -> Standing {
    let last = track.last_report();
    let grace = millis(config.grace);
    let deadline = match &config.expect {
        Expect::Every(every) => Some(last.saturating_add(millis(*every)).saturating_add(grace)),
        Expect::Schedule(cron) => cron
            .next(last.saturating_add(offset))
            .map(|due| due.saturating_sub(offset).saturating_add(grace)),
    };
    Standing {
        late: deadline.is_some_and(|d| now >= d),
        failed: track.failed,
        deadline,
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Moves an unreadable saved file aside, saying why.
fn aside(path: &Path, why: &str) {
    let secs = crate::clock::wall_millis() / 1000;
    match crate::quarantine::move_aside(path, secs) {
        Ok(to) => {
            tracing::error!(path = %path.display(), moved_to = %to.display(), error = %why, "check-in times unreadable: moved aside; the check-ins count from now")
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %why, move_error = %e, "check-in times unreadable and not moved aside; the check-ins count from now")
        }
    }
}

/// Writes the check-ins' samples to `sink` under [`NAME`] until `stop`: at once, after
/// every report or new configuration, at the moment a check-in turns late, and every
/// [`REFRESH`] otherwise; saves the times after each change.
pub async fn export<S: Sink>(
    checkins: Arc<Checkins>,
    sink: Arc<S>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let started = Instant::now();
        let (samples, next) = checkins.samples(clock.as_ref());
        record(sink.as_ref(), NAME, Ok(samples), started.elapsed());
        {
            let (checkins, clock) = (checkins.clone(), clock.clone());
            let _ =
                tokio::task::spawn_blocking(move || checkins.save_if_changed(clock.as_ref())).await;
        }
        let refresh = millis(REFRESH);
        // One ms past the deadline: it is late from the deadline on.
        let wait = next.map_or(refresh, |at| {
            at.saturating_sub(clock.now())
                .saturating_add(1)
                .clamp(1, refresh)
        });
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())) => {}
            _ = checkins.changed() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
}

// The `collect.checkins` section.

/// One entry of `collect.checkins` as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheckin {
    /// Unique name: letters, digits, `.`, `_`, `-`; required.
    pub name: Option<Text>,
    /// Longest time between two reports; exactly one of `every` and `schedule`.
    pub every: Option<Text>,
    /// Cron expression of when the job runs; exactly one of `every` and `schedule`.
    pub schedule: Option<Text>,
    /// Time zone of `schedule`; absent: UTC.
    pub timezone: Option<Text>,
    /// How long past when it is expected a report may still come; absent: `5m`.
    pub grace: Option<Text>,
}

/// The `collect.checkins` section.
#[derive(Debug)]
pub struct CheckinsSection;

impl Section for CheckinsSection {
    type Raw = Vec<Spanned<RawCheckin>>;
    type Value = Vec<CheckinConfig>;
    const DEFAULTS: &'static str = DEFAULTS_YAML;

    fn check(list: &Self::Raw, path: &str, c: &mut Checker<'_>) -> Vec<CheckinConfig> {
        c.named_entries(
            path,
            list,
            "check-in",
            |raw: &RawCheckin| raw.name.as_ref(),
            check_entry,
        )
    }
}

impl Kind for CheckinsSection {
    /// Configures the shared aggregate only: its export is one task the agent starts
    /// beside the collectors ([`export`]), not a polled collector.
    fn build(value: &Vec<CheckinConfig>, context: &Context) -> Vec<Job> {
        context
            .checkins
            .configure(value, &crate::clock::AgentTimeline);
        Vec::new()
    }
}

/// Whether `name` can be a check-in's name (a URL path segment as written).
fn check_name(name: &str) -> Result<(), String> {
    if name.len() > 128 {
        return Err("is longer than 128 characters".into());
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "{name:?} has {c:?}: a check-in name is letters, digits, '.', '_' and '-' (it is the last part of its URL)"
        )),
        None => Ok(()),
    }
}

fn check_entry(
    c: &mut Checker<'_>,
    base: &str,
    item: &Spanned<RawCheckin>,
    name: Option<String>,
) -> Option<CheckinConfig> {
    let raw = &item.value;
    let mut valid = true;
    if let (Some(n), Some(text)) = (&name, &raw.name)
        && let Err(why) = check_name(n)
    {
        c.report(&format!("{base}.name"), Some(&text.referenced), why);
        valid = false;
    }
    let period = |c: &mut Checker<'_>, key: &str, text: Option<&Text>, default: Duration| {
        c.duration(
            &format!("{base}.{key}"),
            text,
            default,
            MIN_PERIOD,
            Some(MAX_PERIOD),
        )
    };
    let expect = match (&raw.every, &raw.schedule) {
        (Some(every), None) => {
            if let Some(tz) = &raw.timezone {
                c.report(
                    &format!("{base}.timezone"),
                    Some(&tz.referenced),
                    "applies to a `schedule` only; `every` counts from the last report",
                );
                valid = false;
            }
            period(c, "every", Some(every), DEFAULT_GRACE).map(Expect::Every)
        }
        (None, Some(schedule)) => {
            let tz = raw.timezone.as_ref().map_or("", |t| t.value.as_str());
            match Cron::parse(&schedule.value, tz) {
                Ok(cron) => Some(Expect::Schedule(cron)),
                Err(why) => {
                    let (key, at) = match &raw.timezone {
                        Some(t) if why.starts_with("unknown time zone") => ("timezone", t),
                        _ => ("schedule", schedule),
                    };
                    c.report(&format!("{base}.{key}"), Some(&at.referenced), why);
                    None
                }
            }
        }
        (Some(_), Some(schedule)) => {
            c.report(
                &format!("{base}.schedule"),
                Some(&schedule.referenced),
                "set either `every` or `schedule`, not both",
            );
            None
        }
        (None, None) => {
            let removed =
                c.removed(&format!("{base}.every")) || c.removed(&format!("{base}.schedule"));
            if !removed {
                c.report(
                    base,
                    Some(&item.referenced),
                    "`every` or `schedule` is required (every: 24h, or schedule: \"0 3 * * *\")",
                );
            }
            None
        }
    };
    let grace = period(c, "grace", raw.grace.as_ref(), DEFAULT_GRACE);
    let (name, expect, grace) = (name?, expect?, grace?);
    valid.then_some(CheckinConfig {
        name,
        expect,
        grace,
    })
}

/// `lookout config default`'s text for this section.
const DEFAULTS_YAML: &str = r#"# Check-ins of cron jobs and workers (lookout_checkin_*), one entry each. Empty: none.
# A job reports to /api/v1/checkins/<name> (GET or POST; /start and /fail too), with
# the API token when one is set. Every key of an entry:
#   - name: backup                   # required, unique; letters, digits, . _ -
#     every: 24h                     # late when no report comes within every + grace
#     schedule: "0 3 * * *"          # or: a cron schedule (instead of every), late when
#                                    # no report comes by its due time + grace
#     timezone: Europe/Berlin        # of the schedule; left out: UTC
#     grace: 5m                      # past every or the due time; 1s to 366d
checkins: []
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check_section;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// A timeline the test moves, its wall clock `offset` ms ahead.
    #[derive(Debug, Default)]
    struct TestClock {
        now: AtomicI64,
        offset: AtomicI64,
    }

    impl TestClock {
        fn at(now: i64) -> Self {
            let clock = TestClock::default();
            clock.now.store(now, Ordering::SeqCst);
            clock
        }

        fn pass(&self, ms: i64) {
            self.now.fetch_add(ms, Ordering::SeqCst);
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> i64 {
            self.now.load(Ordering::SeqCst)
        }

        fn wall_offset(&self) -> i64 {
            self.offset.load(Ordering::SeqCst)
        }
    }

    const T0: i64 = 1_780_000_000_000;
    const S: i64 = 1000;
    const H: i64 = 3600 * S;

    fn every(name: &str, every_s: u64, grace_s: u64) -> CheckinConfig {
        CheckinConfig {
            name: name.into(),
            expect: Expect::Every(Duration::from_secs(every_s)),
            grace: Duration::from_secs(grace_s),
        }
    }

    fn value(samples: &[Sample], metric: &catalogue::Metric, name: &str) -> Option<f64> {
        samples
            .iter()
            .find(|s| s.metric.name == metric.name && s.labels == [("checkin", name.to_string())])
            .map(|s| s.value)
    }

    /// (up, late, failed) of `name` now.
    fn flags(checkins: &Checkins, clock: &TestClock, name: &str) -> (f64, f64, f64) {
        let (s, _) = checkins.samples(clock);
        (
            value(&s, &catalogue::CHECKIN_UP, name).unwrap(),
            value(&s, &catalogue::CHECKIN_LATE, name).unwrap(),
            value(&s, &catalogue::CHECKIN_FAILED, name).unwrap(),
        )
    }

    const UP: (f64, f64, f64) = (1.0, 0.0, 0.0);
    const LATE: (f64, f64, f64) = (0.0, 1.0, 0.0);
    const FAILED: (f64, f64, f64) = (0.0, 0.0, 1.0);

    #[test]
    fn every_counts_from_the_last_report_and_from_configuration_before_the_first() {
        let clock = TestClock::at(T0);
        let checkins = Checkins::default();
        checkins.configure(&[every("backup", 24 * 3600, 3600)], &clock);
        // Never heard from: counts from its configuration, late after every + grace.
        clock.pass(25 * H - 1);
        assert_eq!(flags(&checkins, &clock, "backup"), UP);
        let (_, next) = checkins.samples(&clock);
        assert_eq!(next, Some(T0 + 25 * H), "turns late then");
        clock.pass(1);
        assert_eq!(flags(&checkins, &clock, "backup"), LATE);
        assert_eq!(checkins.samples(&clock).1, None, "late until a report");
        // A success puts it right; the next deadline counts from it.
        checkins.record("backup", Report::Success, &clock).unwrap();
        assert_eq!(flags(&checkins, &clock, "backup"), UP);
        let (s, next) = checkins.samples(&clock);
        assert_eq!(next, Some(T0 + 50 * H));
        assert_eq!(
            value(&s, &catalogue::CHECKIN_LAST_TIMESTAMP_SECONDS, "backup"),
            Some((T0 + 25 * H) as f64 / 1000.0)
        );
        // A start does not count as a report: a job that starts and hangs is late.
        clock.pass(24 * H);
        checkins.record("backup", Report::Start, &clock).unwrap();
        clock.pass(H);
        assert_eq!(flags(&checkins, &clock, "backup"), LATE);
        // Unknown names are refused.
        assert_eq!(
            checkins.record("nope", Report::Success, &clock),
            Err(Unknown)
        );
        assert!(checkins.standing("backup", &clock).is_some());
        assert_eq!(checkins.standing("nope", &clock), None);
    }

    #[test]
    fn a_failure_fails_until_the_next_success_and_counts_as_a_report() {
        let clock = TestClock::at(T0);
        let checkins = Checkins::default();
        checkins.configure(&[every("sync", 60, 10)], &clock);
        clock.pass(30 * S);
        checkins.record("sync", Report::Start, &clock).unwrap();
        clock.pass(5 * S);
        checkins.record("sync", Report::Failure, &clock).unwrap();
        assert_eq!(flags(&checkins, &clock, "sync"), FAILED);
        let (s, next) = checkins.samples(&clock);
        assert_eq!(
            value(&s, &catalogue::CHECKIN_DURATION_SECONDS, "sync"),
            Some(5.0)
        );
        assert_eq!(
            value(&s, &catalogue::CHECKIN_LAST_TIMESTAMP_SECONDS, "sync"),
            None
        );
        // The failure was a report: late 70 s after it, failed meanwhile.
        assert_eq!(next, Some(T0 + 35 * S + 70 * S));
        clock.pass(70 * S);
        assert_eq!(flags(&checkins, &clock, "sync"), (0.0, 1.0, 1.0));
        checkins.record("sync", Report::Success, &clock).unwrap();
        assert_eq!(flags(&checkins, &clock, "sync"), UP);
        // No start before this success: the duration stays the last timed run's.
        let (s, _) = checkins.samples(&clock);
        assert_eq!(
            value(&s, &catalogue::CHECKIN_DURATION_SECONDS, "sync"),
            Some(5.0)
        );
    }

    #[test]
    fn a_schedule_is_late_after_its_due_time_and_grace() {
        // 2026-03-28T12:00:00Z, the day before Europe/Berlin moves to summer time.
        let noon = crate::clock::parse_rfc3339("2026-03-28T12:00:00Z").unwrap();
        let clock = TestClock::at(noon);
        let checkins = Checkins::default();
        let config = CheckinConfig {
            name: "backup".into(),
            expect: Expect::Schedule(Cron::parse("30 2 * * *", "Europe/Berlin").unwrap()),
            grace: Duration::from_secs(3600),
        };
        checkins.configure(std::slice::from_ref(&config), &clock);
        // 02:30 does not exist on the 29th: due at 03:00 CEST (01:00Z), late at 02:00Z.
        let due = crate::clock::parse_rfc3339("2026-03-29T01:00:00Z").unwrap();
        let (_, next) = checkins.samples(&clock);
        assert_eq!(next, Some(due + H));
        // It reports at 03:10 CEST: fine until the next day's 02:30 CEST + 1h.
        clock.now.store(due + 10 * 60 * S, Ordering::SeqCst);
        checkins.record("backup", Report::Success, &clock).unwrap();
        let next_due = crate::clock::parse_rfc3339("2026-03-30T00:30:00Z").unwrap();
        assert_eq!(checkins.samples(&clock).1, Some(next_due + H));
        clock.now.store(next_due + H - 1, Ordering::SeqCst);
        assert_eq!(flags(&checkins, &clock, "backup"), UP);
        clock.pass(1);
        assert_eq!(flags(&checkins, &clock, "backup"), LATE);
        // A wall clock an hour ahead of the timeline: due times are read on the wall clock.
        clock.offset.store(H, Ordering::SeqCst);
        clock.now.store(next_due + H - 1 - H, Ordering::SeqCst);
        assert_eq!(flags(&checkins, &clock, "backup"), UP);
        assert_eq!(
            checkins.standing("backup", &clock).map(|s| s.deadline),
            Some(Some(next_due))
        );
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "lookout-checkins-{tag}-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_times_survive_a_restart() {
        let dir = scratch("restart");
        let clock = TestClock::at(T0);
        let configs = [every("backup", 24 * 3600, 3600), every("never", 3600, 60)];
        let first = Checkins::default();
        first.open(&dir, &clock);
        first.configure(&configs, &clock);
        clock.pass(10 * H);
        first.record("backup", Report::Success, &clock).unwrap();
        // The wall clock was stepped 5 s forward meanwhile: the file holds wall-clock times.
        clock.offset.store(5 * S, Ordering::SeqCst);
        first.save_if_changed(&clock);
        assert!(dir.join(FILE_NAME).is_file());

        // The agent restarts 20 minutes later: its new timeline starts at the wall clock.
        clock.pass(20 * 60 * S);
        let restarted = TestClock::at(clock.now() + 5 * S);
        let second = Checkins::default();
        second.open(&dir, &restarted);
        second.configure(&configs, &restarted);
        // `backup` reported 20 minutes ago: not late, its deadline where it was (on the
        // wall clock).
        assert_eq!(flags(&second, &restarted, "backup"), UP);
        assert_eq!(
            second.standing("backup", &restarted).unwrap().deadline,
            Some(T0 + 10 * H + 25 * H + 5 * S)
        );
        // `never` never came: still counted from its first configuration, so late now.
        assert_eq!(flags(&second, &restarted, "never"), LATE);
        // A check-in added now counts from now.
        let mut more = configs.to_vec();
        more.push(every("new", 3600, 60));
        second.configure(&more, &restarted);
        assert_eq!(flags(&second, &restarted, "new"), UP);
        // A corrupt file is moved aside; every check-in counts from now.
        fs::write(dir.join(FILE_NAME), "{not json").unwrap();
        let third = Checkins::default();
        third.open(&dir, &restarted);
        third.configure(&configs, &restarted);
        assert_eq!(flags(&third, &restarted, "never"), UP);
        assert!(fs::read_dir(&dir).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("checkins.json.corrupt-")
        }));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_no_longer_configured_are_forgotten() {
        let clock = TestClock::at(T0);
        let checkins = Checkins::default();
        checkins.configure(&[every("a", 60, 10), every("b", 60, 10)], &clock);
        checkins.configure(&[every("a", 60, 10)], &clock);
        let (s, _) = checkins.samples(&clock);
        assert!(s.iter().all(|x| x.labels[0].1 == "a"), "{s:?}");
        assert_eq!(checkins.record("b", Report::Success, &clock), Err(Unknown));
    }

    /// A store and run statuses, as the agent's state keeps them.
    #[derive(Default)]
    struct TestSink {
        store: std::sync::RwLock<crate::store::Store>,
        runs: Mutex<u64>,
    }

    impl Sink for TestSink {
        fn store_mut(&self) -> std::sync::RwLockWriteGuard<'_, crate::store::Store> {
            self.store.write().unwrap()
        }

        fn record_status(
            &self,
            _: &str,
            f: &mut dyn FnMut(&mut super::super::scheduler::RunStatus),
        ) {
            let mut status = super::super::scheduler::RunStatus::default();
            f(&mut status);
            *self.runs.lock().unwrap() += 1;
        }
    }

    /// The export on paused time: the late flag is written at the deadline, not at the
    /// next refresh, and a report is written at once.
    #[tokio::test(start_paused = true)]
    async fn the_export_writes_a_missed_check_in_at_its_deadline() {
        let origin = tokio::time::Instant::now();
        /// The timeline is paused Tokio time.
        struct Paused(tokio::time::Instant);
        impl Clock for Paused {
            fn now(&self) -> i64 {
                T0 + self.0.elapsed().as_millis() as i64
            }
            fn wall_offset(&self) -> i64 {
                0
            }
        }
        let clock: Arc<dyn Clock> = Arc::new(Paused(origin));
        let checkins = Arc::new(Checkins::default());
        checkins.configure(&[every("job", 3, 1)], clock.as_ref());
        let sink = Arc::new(TestSink::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(export(
            checkins.clone(),
            sink.clone(),
            clock.clone(),
            stopped,
        ));
        let late = |sink: &TestSink| {
            sink.store
                .read()
                .unwrap()
                .latest(catalogue::CHECKIN_LATE.name, &[("checkin", "job".into())])
        };
        tokio::time::sleep(Duration::from_millis(3_990)).await;
        assert_eq!(late(&sink), Some(0.0));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            late(&sink),
            Some(1.0),
            "late at 4 s, not at the next refresh"
        );
        checkins
            .record("job", Report::Success, clock.as_ref())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(late(&sink), Some(0.0), "a report is written at once");
        stop.send(true).unwrap();
        task.await.unwrap();
        assert!(*sink.runs.lock().unwrap() >= 3);
    }

    #[test]
    fn the_section_checks_every_key() {
        let ok = check_section::<CheckinsSection>(
            "- {name: backup, every: 24h, grace: 1h}\n- {name: nightly.report, schedule: \"0 3 * * *\", timezone: Europe/Berlin}\n",
            "collect.checkins",
        )
        .unwrap();
        assert_eq!(ok[0], every("backup", 24 * 3600, 3600));
        assert_eq!(ok[1].grace, DEFAULT_GRACE);
        match &ok[1].expect {
            Expect::Schedule(cron) => {
                assert_eq!(
                    (cron.expression(), cron.timezone()),
                    ("0 3 * * *", "Europe/Berlin")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(CheckinsSection::builtin().is_empty());

        let cases = [
            (
                "- {name: a}\n",
                "collect.checkins[0]: `every` or `schedule` is required",
            ),
            (
                "- {name: a, every: 1h, schedule: \"@daily\"}\n",
                "collect.checkins[0].schedule: set either `every` or `schedule`, not both",
            ),
            (
                "- {name: a, every: 1h, timezone: UTC}\n",
                "collect.checkins[0].timezone: applies to a `schedule` only",
            ),
            (
                "- {name: a, schedule: \"0 3 * *\"}\n",
                "collect.checkins[0].schedule: cron expression \"0 3 * *\" has 4 field(s)",
            ),
            (
                "- {name: a, schedule: \"0 3 * * *\", timezone: Mars/Olympus}\n",
                "collect.checkins[0].timezone: unknown time zone \"Mars/Olympus\"",
            ),
            (
                "- {name: a, every: 0s}\n",
                "collect.checkins[0].every: 0s is out of range",
            ),
            (
                "- {name: a, every: 1h, grace: 2y}\n",
                "collect.checkins[0].grace:",
            ),
            (
                "- {name: a/b, every: 1h}\n",
                "collect.checkins[0].name: \"a/b\" has '/'",
            ),
            (
                "- {name: a, every: 1h}\n- {name: a, every: 2h}\n",
                "collect.checkins[1].name: duplicate check-in name \"a\"",
            ),
        ];
        for (text, expected) in cases {
            let problems = check_section::<CheckinsSection>(text, "collect.checkins")
                .expect_err(text)
                .0;
            let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
            assert!(
                all.iter().any(|p| p.contains(expected)),
                "{text}: expected {expected:?} in {all:#?}"
            );
        }
    }
}
