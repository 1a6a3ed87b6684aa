//! Rule unit tests (`lookout test rules`): promtool-style YAML files that
//! feed series into a store on a simulated clock, run the real [`Engine`] over them and
//! compare the alerts, the scalability score and the notifications with expectations.
//!
//! # File format
//!
//! ```yaml
//! rule_files: [../host.yaml]          # the rules under test, relative to this file (globs allowed)
//! evaluation_interval: 10s            # optional, default 10s: how often the engine evaluates
//! repeat_interval: 4h                 # optional, default 4h (notify.repeat_interval)
//! tests:
//!   - name: flapping around the threshold notifies once
//!     interval: 10s                   # optional: time between input values; default evaluation_interval
//!     host: web-1                     # optional; else the `host` label of the input series; else "test-host"
//!     input_series:
//!       - series: 'lookout_cpu_usage_ratio{host="web-1"}'
//!         values: '0.5 0.72x8 0.68 0.72x3 0.5x20'
//!     expect:
//!       - at: 2m                      # relative to the start of the test
//!         alerts: [{alert: HostCpuHigh, severity: warning, state: firing, labels: {host: web-1}}]
//!       - at: 5m
//!         alerts: []                  # nothing firing; leave `alerts` out to compare only the score
//!         score: 100                  # optional: the scalability score at that time
//!     expect_notifications:           # optional: the exact ordered list over the whole test
//!       - {alert: HostCpuHigh, status: firing, severity: warning}
//!       - {alert: HostCpuHigh, status: resolved}
//!     silences:                       # optional: held as the agent holds them; offsets
//!       - {matchers: {alert: HostCpuHigh}, starts: 0s, ends: 3m}
//!     inhibit:                        # optional, besides the rules' own `inhibits`
//!       - {source: {alert: A}, target: {alert: B}, equal: [host]}
//! ```
//!
//! `expect_notifications` lists what is *sent*: silences, inhibitions (the test's and the
//! rules' own) hold notifications back and release them exactly as the agent does.
//!
//! Unknown keys are errors.
//!
//! # Input values: promtool's expanding notation
//!
//! Space-separated items: `a` a number (`1`, `-2`, `0.5`, `1e3`); `_` one missing sample;
//! `stale` a stale marker (the series is missing until a value comes); `axN` the value `a`
//! `N+1` times (`1x3` is `1 1 1 1`); `a+bxN` is `a, a+b, ..., a+N*b` (`N+1` values), `a-bxN`
//! likewise decreasing; `_xN` is `N+1` missing samples. The `k`-th value is the sample at
//! `k * interval`; past its last value a series is missing.
//!
//! # Series
//!
//! `metric{label="value",...}`: the metric must be in the catalogue and every one of its
//! labels must be given (and no other, but `host`). `host` is not stored: it sets the
//! test's host name, so all series of a test must agree on it.
//!
//! # Simulation
//!
//! The clock starts at [`EPOCH_MS`]. At every `interval` step each series' value is applied
//! to a [`Store`] (each series is its own owner, so a missing value makes only that series
//! absent); at every `evaluation_interval` step the engine evaluates. Expectations at `at`
//! are checked after everything due at that time happened.
//!
//! # Matching
//!
//! An expected alert or notification matches when every field it lists matches (labels: the
//! listed ones are a subset of the actual ones); counts must be equal. Alerts are compared
//! among those whose state is `firing` or any state an expected alert of that `expect`
//! entry lists (`state: pending` makes pending alerts count); an expected alert without
//! `state` means `firing`. Notifications are compared in order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::LabelSet;
use super::config::RulesSection;
use super::engine::{ActiveAlert, Engine, Notification, Status};
use super::load::{Defaults, load_paths};
use super::model::{Rule, Severity};
use super::score::{ScalabilityConfig, ScalabilitySection};
use super::state::{Kind, Phase};
use super::values::MAX_VALUES;
pub use super::values::{Input, expand};
use crate::catalogue::{self, Metric};
use crate::config::Section;
use crate::config::units::{format_duration, parse_duration};
use crate::sample::{Labels, Sample};
use crate::store::{Millis, Retention, Store};

/// Where the simulated clock starts (ms since the Unix epoch), so timestamps look real.
pub const EPOCH_MS: Millis = 1_700_000_000_000;

/// Most points in time one test may simulate (input steps and evaluations), which bounds
/// its run time and memory: a day at one-second steps is 86,400.
const MAX_STEPS: Millis = 1_000_000;

/// The result of one test file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReport {
    /// Tests whose expectations all held.
    pub passed: usize,
    /// Tests with at least one expectation that did not hold.
    pub failed: usize,
    /// `PASS name` / `FAIL name` lines, each failure followed by an indented diff.
    pub text: String,
}

// ---------------------------------------------------------------------------------------
// The file as serde reads it.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    rule_files: Vec<String>,
    evaluation_interval: Option<String>,
    repeat_interval: Option<String>,
    #[serde(default)]
    tests: Vec<RawTest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: String,
    interval: Option<String>,
    host: Option<String>,
    #[serde(default)]
    input_series: Vec<RawSeries>,
    #[serde(default)]
    expect: Vec<RawExpect>,
    expect_notifications: Option<Vec<ExpectedNotification>>,
    /// Silences during the test: matchers and offsets from its start.
    #[serde(default)]
    silences: Vec<super::mute::config::RawTestSilence>,
    /// Inhibition rules besides the rules' own `inhibits`.
    #[serde(default)]
    inhibit: Vec<super::mute::config::RawTestInhibit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    series: String,
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    at: String,
    alerts: Option<Vec<ExpectedAlert>>,
    score: Option<f64>,
}

/// `pending` or `firing` in an expected alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StateName {
    Pending,
    Firing,
}

impl StateName {
    fn as_str(self) -> &'static str {
        match self {
            StateName::Pending => "pending",
            StateName::Firing => "firing",
        }
    }

    fn of(phase: Phase) -> Option<StateName> {
        match phase {
            Phase::Pending => Some(StateName::Pending),
            Phase::Firing => Some(StateName::Firing),
            Phase::Inactive => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedAlert {
    alert: Option<String>,
    severity: Option<Severity>,
    state: Option<StateName>,
    labels: Option<BTreeMap<String, String>>,
}

/// `firing` or `resolved` in an expected notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StatusName {
    Firing,
    Resolved,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedNotification {
    alert: Option<String>,
    status: Option<StatusName>,
    severity: Option<Severity>,
    kind: Option<Kind>,
    labels: Option<BTreeMap<String, String>>,
}

// ---------------------------------------------------------------------------------------
// Checked tests.

#[derive(Debug)]
struct Series {
    metric: &'static Metric,
    labels: Labels,
    values: Vec<Input>,
}

#[derive(Debug)]
struct Expect {
    at: Millis,
    at_text: String,
    alerts: Option<Vec<ExpectedAlert>>,
    score: Option<f64>,
}

#[derive(Debug)]
struct Test {
    name: String,
    interval: Millis,
    host: String,
    series: Vec<Series>,
    expect: Vec<Expect>,
    notifications: Option<Vec<ExpectedNotification>>,
    /// The test's silences, on the simulated clock.
    silences: Vec<super::mute::silence::Silence>,
    /// The test's own inhibition rules.
    inhibit: Vec<super::mute::inhibit::InhibitRule>,
}

/// Runs every test of the file at `path`. `Err` is a file-level problem (unreadable file,
/// bad YAML, rule file problems, bad series or values), with one problem per line.
pub fn run_file(path: &Path) -> Result<FileReport, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    // Without the source snippet: the error stays one line, naming the file and position.
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let raw: RawFile =
        serde_saphyr::from_str_with_options(&text, options).map_err(|e| format!("{file}: {e}"))?;
    let duration =
        |what: &str, text: &Option<String>, default: Duration| -> Result<Duration, String> {
            match text {
                None => Ok(default),
                Some(t) => parse_duration(t).map_err(|e| format!("{file}: {what}: {e}")),
            }
        };
    let Some(scalability) = ScalabilitySection::builtin() else {
        return Err(format!(
            "{file}: the built-in scalability formula does not parse"
        ));
    };
    let evaluation_interval = duration(
        "evaluation_interval",
        &raw.evaluation_interval,
        Duration::from_secs(10),
    )?;
    if evaluation_interval.is_zero() {
        return Err(format!("{file}: evaluation_interval: must be more than 0s"));
    }
    let repeat_interval = duration(
        "repeat_interval",
        &raw.repeat_interval,
        Duration::from_secs(4 * 3600),
    )?;
    let defaults = Defaults {
        evaluation_interval,
        stale_after: RulesSection::builtin().stale_after,
        repeat_interval,
    };

    let base = path.parent().unwrap_or_else(|| Path::new(""));
    let paths = rule_paths(&file, base, &raw.rule_files)?;
    let mut problems = Vec::new();
    let rules = load_paths(&paths, &defaults, &mut problems);
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(lines.join("\n"));
    }

    let eval_ms = millis(evaluation_interval);
    let tests = raw
        .tests
        .into_iter()
        .map(|t| check_test(t, eval_ms))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{file}: {e}"))?;

    let mut report = FileReport::default();
    for test in &tests {
        let diff = run_test(test, &rules, eval_ms, &scalability);
        if diff.is_empty() {
            report.passed += 1;
            let _ = writeln!(report.text, "PASS {}", test.name);
        } else {
            report.failed += 1;
            let _ = writeln!(report.text, "FAIL {}", test.name);
            report.text.push_str(&diff);
        }
    }
    Ok(report)
}

fn rule_paths(file: &str, base: &Path, patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    if patterns.is_empty() {
        return Err(format!("{file}: rule_files: names no file"));
    }
    let mut paths = Vec::new();
    for pattern in patterns {
        let full = base.join(pattern);
        if pattern.contains(['*', '?', '[']) {
            let text = full.display().to_string();
            let matched =
                glob::glob(&text).map_err(|e| format!("{file}: rule_files: {pattern:?}: {e}"))?;
            let before = paths.len();
            for entry in matched {
                paths.push(entry.map_err(|e| format!("{file}: rule_files: {pattern:?}: {e}"))?);
            }
            if paths.len() == before {
                return Err(format!("{file}: rule_files: {pattern:?} matches no file"));
            }
        } else {
            paths.push(full);
        }
    }
    Ok(paths)
}

fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

fn check_test(raw: RawTest, eval_ms: Millis) -> Result<Test, String> {
    let name = raw.name;
    let at_test = |msg: String| format!("test {name:?}: {msg}");
    let interval = match &raw.interval {
        None => eval_ms,
        Some(t) => millis(parse_duration(t).map_err(|e| at_test(format!("interval: {e}")))?),
    };
    if interval <= 0 {
        return Err(at_test("interval: must be more than 0s".into()));
    }
    let mut host_label: Option<String> = None;
    let mut series: Vec<Series> = Vec::new();
    let mut total_values = 0usize;
    for s in &raw.input_series {
        let at_series = |msg: String| at_test(format!("series {:?}: {msg}", s.series));
        let (metric, labels, host) = parse_series(&s.series).map_err(at_series)?;
        if let Some(h) = host {
            match &host_label {
                Some(prev) if *prev != h => {
                    return Err(at_series(format!(
                        "host {h:?} differs from {prev:?} of an earlier series"
                    )));
                }
                _ => host_label = Some(h),
            }
        }
        if series
            .iter()
            .any(|o| o.metric.name == metric.name && o.labels == labels)
        {
            return Err(at_series("given twice".into()));
        }
        let values = expand(&s.values).map_err(at_series)?;
        total_values = total_values.saturating_add(values.len());
        if total_values > MAX_VALUES {
            return Err(at_series(format!(
                "the test's series expand past {MAX_VALUES} values"
            )));
        }
        series.push(Series {
            metric,
            labels,
            values,
        });
    }
    let host = raw
        .host
        .or(host_label)
        .unwrap_or_else(|| "test-host".into());
    let mut expect = Vec::new();
    for (i, e) in raw.expect.into_iter().enumerate() {
        let at =
            millis(parse_duration(&e.at).map_err(|err| at_test(format!("expect[{i}].at: {err}")))?);
        expect.push(Expect {
            at,
            at_text: e.at,
            alerts: e.alerts,
            score: e.score,
        });
    }
    let (silences, inhibit) =
        super::mute::config::test_mutes(raw.silences, raw.inhibit, EPOCH_MS).map_err(at_test)?;
    let test = Test {
        name,
        interval,
        host,
        series,
        expect,
        notifications: raw.expect_notifications,
        silences,
        inhibit,
    };
    let show = |ms: Millis| format_duration(Duration::from_millis(ms.unsigned_abs()));
    let end = test.end();
    let steps = (end / test.interval).saturating_add(end / eval_ms.max(1));
    if steps > MAX_STEPS {
        return Err(format!(
            "test {:?}: simulates about {steps} points in time (until {}, inputs every {}, \
             evaluations every {}); at most {MAX_STEPS}: use longer intervals or a shorter test",
            test.name,
            show(end),
            show(test.interval),
            show(eval_ms),
        ));
    }
    Ok(test)
}

impl Test {
    /// The last point in time simulated, from the start: the last input or expectation.
    fn end(&self) -> Millis {
        let values = self.series.iter().map(|s| s.values.len()).max();
        let last = Millis::try_from(values.unwrap_or(0).saturating_sub(1)).unwrap_or(Millis::MAX);
        let last_expect = self.expect.iter().map(|e| e.at).max().unwrap_or(0);
        last_expect.max(last.saturating_mul(self.interval))
    }
}

/// A series selector: the metric, its labels in catalogue order, the `host` label if given.
type ParsedSeries = (&'static Metric, Labels, Option<String>);

/// Parses `metric{label="v",...}`: the catalogue metric, its labels in catalogue order and
/// the `host` label if given.
fn parse_series(text: &str) -> Result<ParsedSeries, String> {
    let text = text.trim();
    let (name, rest) = match text.find('{') {
        Some(i) => (text.get(..i).unwrap_or(""), text.get(i..).unwrap_or("")),
        None => (text, ""),
    };
    let name = name.trim();
    let metric = catalogue::lookup(name).ok_or_else(|| format!("unknown metric {name:?}"))?;
    let mut given: BTreeMap<String, String> = BTreeMap::new();
    if !rest.is_empty() {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| "expected `{label=\"value\",...}` after the metric name".to_string())?;
        for (k, v) in parse_matchers(inner)? {
            if given.insert(k.clone(), v).is_some() {
                return Err(format!("label {k:?} given twice"));
            }
        }
    }
    let host = given.remove("host");
    let mut labels = Vec::with_capacity(metric.labels.len());
    for &l in metric.labels {
        match given.remove(l) {
            Some(v) => labels.push((l, v)),
            None => {
                return Err(format!(
                    "missing label {l:?} (labels of {}: {})",
                    metric.name,
                    metric.labels.join(", ")
                ));
            }
        }
    }
    if let Some(k) = given.keys().next() {
        let known = if metric.labels.is_empty() {
            "none but host".to_string()
        } else {
            metric.labels.join(", ") + ", host"
        };
        return Err(format!(
            "{} has no label {k:?} (labels: {known})",
            metric.name
        ));
    }
    Ok((metric, labels, host))
}

/// `label="v", label2="v2"` -> pairs; `\"` and `\\` escapes inside values.
fn parse_matchers(inner: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                key.push(c);
                chars.next();
            } else {
                break;
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if key.is_empty() || chars.next() != Some('=') {
            return Err(format!("expected `label=\"value\"` in {{{inner}}}"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('"') {
            return Err(format!("value of label {key:?} must be double-quoted"));
        }
        let mut value = String::new();
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(e) => value.push(e),
                    None => break,
                },
                '"' => {
                    closed = true;
                    break;
                }
                c => value.push(c),
            }
        }
        if !closed {
            return Err(format!("unterminated value of label {key:?}"));
        }
        out.push((key, value));
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(c) => return Err(format!("unexpected {c:?} after a label value")),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Running.

/// A notification with the time it was decided, relative to the start.
type Noted = (Millis, Notification);

fn run_test(
    test: &Test,
    rules: &[Rule],
    eval_ms: Millis,
    scalability: &ScalabilityConfig,
) -> String {
    let mut engine = Engine::new(rules.to_vec(), vec![]);
    // Silences and inhibition, as the agent applies them between the engine and delivery.
    let mut muter = super::mute::Muter::default();
    muter.configure(&test.silences, &[], &test.inhibit, rules);
    let mut store = Store::new(Retention {
        keep_ms: 3_600_000,
        max_points: 10_000,
    });
    let end = test.end();

    let mut times: BTreeSet<Millis> = BTreeSet::new();
    let mut t = 0;
    while t <= end {
        times.insert(t);
        t = t.saturating_add(test.interval);
    }
    let mut t = 0;
    while t <= end {
        times.insert(t);
        t = t.saturating_add(eval_ms);
    }
    times.extend(test.expect.iter().map(|e| e.at));

    let mut notes: Vec<Noted> = Vec::new();
    let mut diff = String::new();
    for &rel in &times {
        let now = EPOCH_MS.saturating_add(rel);
        if rel % test.interval == 0 {
            let k = usize::try_from(rel / test.interval).unwrap_or(usize::MAX);
            for (i, s) in test.series.iter().enumerate() {
                let owner = format!("test:{i}");
                let mut samples = Vec::new();
                match s.values.get(k) {
                    Some(Input::Value(v)) => {
                        samples.push(Sample::from_labels(s.metric, s.labels.clone(), *v));
                    }
                    // A stale marker, like a missing sample, leaves the series absent.
                    Some(Input::Stale | Input::Missing) | None => {}
                }
                store.apply(&owner, samples, now);
            }
        }
        if rel % eval_ms == 0 {
            let host = test.host.as_str();
            let decided = engine.evaluate(&store, host, now);
            let firing: Vec<_> = engine.firing().collect();
            let firing: Vec<_> = firing
                .iter()
                .map(|(a, l, s)| (a.as_ref(), *l, *s))
                .collect();
            notes.extend(
                muter
                    .filter(decided, &firing, now, now)
                    .into_iter()
                    .map(|n| (rel, n)),
            );
        }
        for e in test.expect.iter().filter(|e| e.at == rel) {
            if let Some(expected) = &e.alerts {
                check_alerts(&e.at_text, expected, &engine.active(), &mut diff);
            }
            if let Some(want) = e.score {
                // The same computation the agent runs.
                let got = super::metrics::score(scalability, &store, engine.health(), now);
                if (got.score - want).abs() > 1e-9 {
                    let _ = writeln!(diff, "  at {}: score", e.at_text);
                    let _ = writeln!(diff, "    - {}", fmt_num(want));
                    let explain: Vec<String> = got
                        .components
                        .iter()
                        .filter(|c| c.penalty != 0.0)
                        .map(|c| format!("{} -{}", c.name, fmt_num(c.penalty)))
                        .collect();
                    let explain = if explain.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", explain.join(", "))
                    };
                    let _ = writeln!(diff, "    + {}{explain}", fmt_num(got.score));
                }
            }
        }
    }
    if let Some(expected) = &test.notifications {
        check_notifications(expected, &notes, &mut diff);
    }
    diff
}

fn check_alerts(at: &str, expected: &[ExpectedAlert], active: &[ActiveAlert], diff: &mut String) {
    let mut states = BTreeSet::from([StateName::Firing]);
    states.extend(expected.iter().filter_map(|e| e.state));
    let actual: Vec<&ActiveAlert> = active
        .iter()
        .filter(|a| StateName::of(a.state).is_some_and(|s| states.contains(&s)))
        .collect();
    let pairs = matching(
        expected.len(),
        actual.len(),
        |i, j| matches!((expected.get(i), actual.get(j)), (Some(e), Some(a)) if alert_matches(e, a)),
    );
    let matched = pairs.iter().filter(|p| p.is_some()).count();
    if matched == expected.len() && matched == actual.len() {
        return;
    }
    let which = states
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join("/");
    let _ = writeln!(
        diff,
        "  at {at}: {which} alerts: expected {}, got {}",
        expected.len(),
        actual.len()
    );
    let used: BTreeSet<usize> = pairs.iter().flatten().copied().collect();
    for (i, e) in expected.iter().enumerate() {
        let mark = if pairs.get(i).copied().flatten().is_some() {
            ' '
        } else {
            '-'
        };
        let _ = writeln!(diff, "    {mark} {}", fmt_expected_alert(e));
    }
    for (j, a) in actual.iter().enumerate() {
        if !used.contains(&j) {
            let _ = writeln!(diff, "    + {}", fmt_alert(a));
        }
    }
}

/// A maximum matching of expected `0..n` to actual `0..m` (Kuhn's algorithm): for each
/// expected index, the actual index it is matched with.
fn matching(n: usize, m: usize, ok: impl Fn(usize, usize) -> bool) -> Vec<Option<usize>> {
    fn augment(
        i: usize,
        m: usize,
        ok: &dyn Fn(usize, usize) -> bool,
        seen: &mut [bool],
        owner: &mut [Option<usize>],
    ) -> bool {
        for j in 0..m {
            if !ok(i, j) || seen.get(j).copied().unwrap_or(true) {
                continue;
            }
            if let Some(s) = seen.get_mut(j) {
                *s = true;
            }
            let current = owner.get(j).copied().flatten();
            if current.is_none_or(|other| augment(other, m, ok, seen, owner)) {
                if let Some(o) = owner.get_mut(j) {
                    *o = Some(i);
                }
                return true;
            }
        }
        false
    }
    let mut owner: Vec<Option<usize>> = vec![None; m];
    for i in 0..n {
        let mut seen = vec![false; m];
        augment(i, m, &ok, &mut seen, &mut owner);
    }
    let mut out = vec![None; n];
    for (j, o) in owner.iter().enumerate() {
        if let Some(slot) = o.and_then(|i| out.get_mut(i)) {
            *slot = Some(j);
        }
    }
    out
}

fn labels_match(expected: &Option<BTreeMap<String, String>>, actual: &LabelSet) -> bool {
    expected
        .as_ref()
        .is_none_or(|want| want.iter().all(|(k, v)| actual.get(k) == Some(v)))
}

fn alert_matches(e: &ExpectedAlert, a: &ActiveAlert) -> bool {
    e.alert.as_ref().is_none_or(|n| *n == a.alert)
        && e.severity.is_none_or(|s| a.severity == Some(s))
        && StateName::of(a.state) == Some(e.state.unwrap_or(StateName::Firing))
        && labels_match(&e.labels, &a.labels)
}

fn notification_matches(e: &ExpectedNotification, n: &Notification) -> bool {
    let status = match n.status {
        Status::Firing => StatusName::Firing,
        Status::Resolved => StatusName::Resolved,
    };
    e.alert.as_ref().is_none_or(|a| *a == n.alert)
        && e.status.is_none_or(|s| s == status)
        && e.severity.is_none_or(|s| s == n.severity)
        && e.kind.is_none_or(|k| k == n.kind)
        && labels_match(&e.labels, &n.labels)
}

fn check_notifications(expected: &[ExpectedNotification], notes: &[Noted], diff: &mut String) {
    let n = expected.len();
    let m = notes.len();
    let ok = |i: usize, j: usize| matches!((expected.get(i), notes.get(j)), (Some(e), Some((_, a))) if notification_matches(e, a));
    if n == m && (0..n).all(|i| ok(i, i)) {
        return;
    }
    // Longest common subsequence, for an aligned diff.
    let width = m + 1;
    let mut lcs = vec![0usize; (n + 1) * width];
    let cell = |lcs: &[usize], i: usize, j: usize| lcs.get(i * width + j).copied().unwrap_or(0);
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let v = if ok(i, j) {
                cell(&lcs, i + 1, j + 1) + 1
            } else {
                cell(&lcs, i + 1, j).max(cell(&lcs, i, j + 1))
            };
            if let Some(c) = lcs.get_mut(i * width + j) {
                *c = v;
            }
        }
    }
    let time_width = notes
        .iter()
        .map(|(t, _)| fmt_ms(*t).len())
        .max()
        .unwrap_or(0);
    let blank = " ".repeat(time_width);
    let _ = writeln!(diff, "  notifications: expected {n}, got {m}");
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        let exp = expected.get(i);
        let act = notes.get(j);
        match (exp, act) {
            (Some(_), Some((t, a))) if ok(i, j) => {
                let _ = writeln!(
                    diff,
                    "      {:>time_width$} {}",
                    fmt_ms(*t),
                    fmt_notification(a)
                );
                i += 1;
                j += 1;
            }
            (Some(e), Some(_)) if cell(&lcs, i + 1, j) >= cell(&lcs, i, j + 1) => {
                let _ = writeln!(diff, "    - {blank} {}", fmt_expected_notification(e));
                i += 1;
            }
            (Some(e), None) => {
                let _ = writeln!(diff, "    - {blank} {}", fmt_expected_notification(e));
                i += 1;
            }
            (_, Some((t, a))) => {
                let _ = writeln!(
                    diff,
                    "    + {:>time_width$} {}",
                    fmt_ms(*t),
                    fmt_notification(a)
                );
                j += 1;
            }
            (None, None) => break,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rendering.

fn fmt_labels<'a>(labels: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let parts: Vec<String> = labels.map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(","))
}

fn fmt_alert(a: &ActiveAlert) -> String {
    format!(
        "{}{} {} {}",
        a.alert,
        fmt_labels(a.labels.iter()),
        a.severity.map_or("-", Severity::as_str),
        StateName::of(a.state).map_or("inactive", StateName::as_str)
    )
}

fn fmt_expected_alert(e: &ExpectedAlert) -> String {
    format!(
        "{}{} {} {}",
        e.alert.as_deref().unwrap_or("*"),
        e.labels
            .as_ref()
            .map(|l| fmt_labels(l.iter()))
            .unwrap_or_default(),
        e.severity.map_or("*", Severity::as_str),
        e.state.unwrap_or(StateName::Firing).as_str()
    )
}

fn kind_str(k: Kind) -> &'static str {
    match k {
        Kind::Firing => "firing",
        Kind::Escalated => "escalated",
        Kind::DeEscalated => "deescalated",
        Kind::Repeat => "repeat",
        Kind::Resolved => "resolved",
    }
}

fn fmt_notification(n: &Notification) -> String {
    let status = match n.status {
        Status::Firing => "firing",
        Status::Resolved => "resolved",
    };
    let mut s = format!(
        "{}{} {status} {}",
        n.alert,
        fmt_labels(n.labels.iter()),
        n.severity.as_str()
    );
    if !matches!(n.kind, Kind::Firing | Kind::Resolved) {
        let _ = write!(s, " ({})", kind_str(n.kind));
    }
    s
}

fn fmt_expected_notification(e: &ExpectedNotification) -> String {
    let status = match e.status {
        Some(StatusName::Firing) => "firing",
        Some(StatusName::Resolved) => "resolved",
        None => "*",
    };
    let mut s = format!(
        "{}{} {status} {}",
        e.alert.as_deref().unwrap_or("*"),
        e.labels
            .as_ref()
            .map(|l| fmt_labels(l.iter()))
            .unwrap_or_default(),
        e.severity.map_or("*", Severity::as_str)
    );
    if let Some(k) = e.kind {
        let _ = write!(s, " ({})", kind_str(k));
    }
    s
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// `1m50s`, `0s`, `2h`, `1500ms`.
fn fmt_ms(ms: Millis) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    if rest < 0 {
        out.push('-');
        rest = rest.saturating_neg();
    }
    for (unit, size) in [("h", 3_600_000), ("m", 60_000)] {
        if rest >= size {
            let _ = write!(out, "{}{unit}", rest / size);
            rest %= size;
        }
    }
    if rest > 0 {
        if rest % 1000 == 0 {
            let _ = write!(out, "{}s", rest / 1000);
        } else {
            let _ = write!(out, "{}ms", rest);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use Input::{Missing as M, Stale as S, Value as V};

    fn shipped_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/tests")
    }

    /// Writes `text` as a test file in a fresh temp directory; returns its path.
    fn temp_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "lookout-rules-testing-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn host_rules() -> String {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../rules/host.yaml")
            .display()
            .to_string()
    }

    #[test]
    fn expanding_notation_follows_promtool() {
        let table: &[(&str, Vec<Input>)] = &[
            ("", vec![]),
            ("1", vec![V(1.0)]),
            ("-2 0.5 1e3 +4", vec![V(-2.0), V(0.5), V(1000.0), V(4.0)]),
            ("1x3", vec![V(1.0), V(1.0), V(1.0), V(1.0)]),
            ("7x0", vec![V(7.0)]),
            ("1+1x3", vec![V(1.0), V(2.0), V(3.0), V(4.0)]),
            ("10-2x2", vec![V(10.0), V(8.0), V(6.0)]),
            ("-1+1x2", vec![V(-1.0), V(0.0), V(1.0)]),
            ("-1--1x1", vec![V(-1.0), V(0.0)]),
            ("1e1+1e0x1", vec![V(10.0), V(11.0)]),
            ("1e-1x1", vec![V(0.1), V(0.1)]),
            ("_", vec![M]),
            ("_x2", vec![M, M, M]),
            ("stale", vec![S]),
            ("1 _ stale 2", vec![V(1.0), M, S, V(2.0)]),
            (
                "  0.5   0.72x1 \n 0.68 ",
                vec![V(0.5), V(0.72), V(0.72), V(0.68)],
            ),
        ];
        for (text, want) in table {
            assert_eq!(&expand(text).unwrap(), want, "{text:?}");
        }
        for bad in [
            "abc",
            "1x",
            "1xa",
            "1x-1",
            "x3",
            "1+x2",
            "1+bx2",
            "1*2x3",
            "stalex2",
            "_+1x2",
            "1x99999999",
        ] {
            let err = expand(&format!("1 {bad} 2")).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn series_selectors_are_checked_against_the_catalogue() {
        let (m, labels, host) = parse_series(r#"lookout_filesystem_usage_ratio{fstype="ext4", mountpoint="/", device="/dev/sda1",host="h"}"#).unwrap();
        assert_eq!(m.name, "lookout_filesystem_usage_ratio");
        assert_eq!(
            labels,
            vec![
                ("mountpoint", "/".to_string()),
                ("device", "/dev/sda1".to_string()),
                ("fstype", "ext4".to_string())
            ]
        );
        assert_eq!(host.as_deref(), Some("h"));
        let (_, labels, host) = parse_series("lookout_cpu_usage_ratio").unwrap();
        assert!(labels.is_empty() && host.is_none());
        for (bad, why) in [
            ("lookout_nope", "unknown metric"),
            (r#"lookout_cpu_usage_ratio{mode="x"}"#, "no label \"mode\""),
            (r#"lookout_collector_up{}"#, "missing label \"collector\""),
            (r#"lookout_collector_up{collector=cpu}"#, "double-quoted"),
            (r#"lookout_collector_up{collector="cpu""#, "expected"),
            (
                r#"lookout_collector_up{collector="cpu",collector="x"}"#,
                "twice",
            ),
        ] {
            let err = parse_series(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn shipped_test_files_pass() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(shipped_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        assert!(!files.is_empty());
        for f in files {
            let report = run_file(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert_eq!(report.failed, 0, "{}:\n{}", f.display(), report.text);
            assert!(report.passed > 0, "{}", f.display());
        }
    }

    #[test]
    fn wrong_expectations_fail_with_a_diff() {
        let text = format!(
            r#"
rule_files: [{rules:?}]
tests:
  - name: wrong severity and notifications
    input_series:
      - series: 'lookout_cpu_usage_ratio{{host="web-1"}}'
        values: '0.5 0.75x15 0.5x10'
    expect:
      - at: 2m10s
        alerts: [{{alert: HostCpuHigh, severity: critical, labels: {{host: web-1}}}}]
        score: 100
      - at: 3m50s
        alerts: []
    expect_notifications:
      - {{alert: HostCpuHigh, status: firing, severity: critical}}
      - {{alert: HostCpuHigh, status: resolved}}
  - name: right
    input_series:
      - series: 'lookout_cpu_usage_ratio'
        values: '0.5x5'
    expect:
      - at: 50s
        alerts: []
    expect_notifications: []
"#,
            rules = host_rules()
        );
        let report = run_file(&temp_file("wrong", &text)).unwrap();
        assert_eq!((report.passed, report.failed), (1, 1), "{}", report.text);
        let t = &report.text;
        for line in [
            "FAIL wrong severity and notifications",
            "  at 2m10s: firing alerts: expected 1, got 1",
            r#"    - HostCpuHigh{host="web-1"} critical firing"#,
            r#"    + HostCpuHigh{host="web-1"} warning firing"#,
            "  at 2m10s: score",
            "    - 100",
            "    + 85 (health -15)",
            "  notifications: expected 2, got 2",
            "    -       HostCpuHigh firing critical",
            r#"    + 2m10s HostCpuHigh{host="web-1"} firing warning"#,
            r#"      3m50s HostCpuHigh{host="web-1"} resolved warning"#,
            "PASS right",
        ] {
            assert!(
                t.lines().any(|l| l == line),
                "missing line {line:?} in:\n{t}"
            );
        }
    }

    #[test]
    fn pending_alerts_are_compared_when_asked_for() {
        let text = format!(
            r#"
rule_files: [{rules:?}]
tests:
  - name: pending
    input_series:
      - series: 'lookout_cpu_usage_ratio'
        values: '0.5 0.75x5'
    expect:
      - at: 30s
        alerts: []
      - at: 40s
        alerts: [{{alert: HostCpuHigh, state: firing}}]
"#,
            rules = host_rules()
        );
        let report = run_file(&temp_file("pending", &text)).unwrap();
        assert_eq!(report.failed, 1, "{}", report.text);
        assert!(
            report.text.contains(r#"    - HostCpuHigh * firing"#),
            "{}",
            report.text
        );
        assert!(!report.text.contains("at 30s"), "{}", report.text);
        let fixed = text.replace("state: firing", "state: pending, labels: {host: test-host}");
        let report = run_file(&temp_file("pending-fixed", &fixed)).unwrap();
        assert_eq!((report.passed, report.failed), (1, 0), "{}", report.text);
    }

    #[test]
    fn file_level_problems_are_errors() {
        let rules = host_rules();
        let bad_token = format!(
            "rule_files: [{rules:?}]\ntests:\n  - name: t1\n    input_series:\n      - series: lookout_cpu_usage_ratio\n        values: '1 2 3y'\n"
        );
        let err = run_file(&temp_file("token", &bad_token)).unwrap_err();
        assert!(
            err.contains("\"t1\"")
                && err.contains("lookout_cpu_usage_ratio")
                && err.contains("\"3y\""),
            "{err}"
        );

        let unknown_key =
            format!("rule_files: [{rules:?}]\ntests:\n  - name: t1\n    inputs: []\n");
        assert!(run_file(&temp_file("key", &unknown_key)).is_err());

        let missing_rules = "rule_files: [nope.yaml]\ntests: []\n";
        let err = run_file(&temp_file("rules", missing_rules)).unwrap_err();
        assert!(err.contains("nope.yaml"), "{err}");

        let two_hosts = format!(
            "rule_files: [{rules:?}]\ntests:\n  - name: t1\n    input_series:\n      - series: 'lookout_cpu_usage_ratio{{host=\"a\"}}'\n        values: '1'\n      - series: 'lookout_memory_usage_ratio{{host=\"b\"}}'\n        values: '1'\n"
        );
        let err = run_file(&temp_file("hosts", &two_hosts)).unwrap_err();
        assert!(err.contains("host \"b\" differs"), "{err}");
    }

    /// Found by the property tests: YAML errors came with a source snippet naming
    /// `<input>` on further lines.
    #[test]
    fn yaml_errors_are_one_line_naming_the_file_and_position() {
        let rules = host_rules();
        let text = format!("rule_files: [{rules:?}]\ntests:\n  - name: t1\n    bogus: 1\n");
        let path = temp_file("snippet", &text);
        let err = run_file(&path).unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.ends_with("at line 4, column 5"), "{err}");
    }

    /// Found by the property tests: `interval: 1ms` with an expectation at `100d` built a
    /// set of billions of points in time, and series of a million values each added up
    /// without bound; both ran out of memory instead of failing.
    #[test]
    fn a_test_too_large_to_simulate_is_an_error() {
        let rules = host_rules();
        let text = format!(
            "rule_files: [{rules:?}]\ntests:\n  - name: long\n    interval: 1ms\n    input_series:\n      - series: lookout_load1\n        values: '1'\n    expect:\n      - at: 100d\n"
        );
        let started = std::time::Instant::now();
        let err = run_file(&temp_file("steps", &text)).unwrap_err();
        assert!(
            err.contains("test \"long\": simulates about 8640864000 points in time")
                && err.contains("until 100d, inputs every 1ms, evaluations every 10s")
                && err.contains("at most 1000000"),
            "{err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));

        let series: String = ["lookout_load1", "lookout_load5"]
            .iter()
            .map(|s| format!("      - series: {s}\n        values: '1x600000'\n"))
            .collect();
        let text =
            format!("rule_files: [{rules:?}]\ntests:\n  - name: wide\n    input_series:\n{series}");
        let err = run_file(&temp_file("values", &text)).unwrap_err();
        assert!(
            err.contains("series \"lookout_load5\": the test's series expand past 1000000"),
            "{err}"
        );
    }

    #[test]
    fn durations_render_compactly() {
        assert_eq!(fmt_ms(0), "0s");
        assert_eq!(fmt_ms(110_000), "1m50s");
        assert_eq!(fmt_ms(7_200_000), "2h");
        assert_eq!(fmt_ms(3_661_500), "1h1m1500ms");
    }
}
