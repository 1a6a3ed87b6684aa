//! Rule files: YAML groups -> validated [`Rule`]s, every problem with file, line and path.
//!
//! Rule files use the same YAML reading as the configuration (`config::yaml`): unknown keys
//! are errors, structural errors are recovered from so that one `lookout check` lists every
//! problem, and values are validated with their positions. Checks: the expression (the
//! PromQL subset, metric names against the catalogue), thresholds (`> 70%`, `< 2s`, both in
//! the same direction with critical the worse one), durations, `on_missing`, label names,
//! template syntax, and alert names unique across all loaded files.
//!
//! The default rule files under `rules/` are embedded in the binary ([`BUILTIN`]) and used
//! when the configuration names none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::LabelSet;
use super::config::RulesConfig;
use super::expr;
use super::model::{Conditions, OnMissing, Op, Rule, Threshold};
use super::template;
use crate::config::units::parse_duration;
use crate::config::yaml::{Parsed, parse_recovering, problem};
use crate::config::{Problem, Problems};

type Text = Spanned<String>;

/// The default rule files, embedded: `(name, YAML)`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("host.yaml", include_str!("../../../rules/host.yaml")),
    ("redis.yaml", include_str!("../../../rules/redis.yaml")),
    ("probe.yaml", include_str!("../../../rules/probe.yaml")),
    ("api.yaml", include_str!("../../../rules/api.yaml")),
    ("cgroups.yaml", include_str!("../../../rules/cgroups.yaml")),
    (
        "processes.yaml",
        include_str!("../../../rules/processes.yaml"),
    ),
    (
        "postgres.yaml",
        include_str!("../../../rules/postgres.yaml"),
    ),
    (
        "checkins.yaml",
        include_str!("../../../rules/checkins.yaml"),
    ),
];

/// Prefix of the built-in files' names in problems and in the API.
pub const BUILTIN_PREFIX: &str = "<built-in>/";

/// A rule file as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRuleFile {
    /// The rule groups. Absent: the file holds no rules.
    groups: Option<Vec<RawGroup>>,
}

/// One group of rules.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    /// Group name, unique within the file. Required.
    name: Option<Text>,
    /// Evaluation interval of the group. Absent: `rules.evaluation_interval`.
    interval: Option<Text>,
    /// The rules. Absent: an empty group.
    rules: Option<Vec<Spanned<RawRule>>>,
}

/// One rule.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    /// Alert name. Required.
    alert: Option<Text>,
    /// Expression in the PromQL subset. Required.
    expr: Option<Text>,
    /// Warning threshold (`> 70%`). Absent: no warning severity.
    warning: Option<Text>,
    /// Critical threshold. Absent: no critical severity.
    critical: Option<Text>,
    /// How long a breach must hold before firing. Absent: 0s.
    #[serde(rename = "for")]
    for_: Option<Text>,
    /// How far back past a threshold the value must go to clear it. Absent: 0.
    hysteresis: Option<Text>,
    /// How long the value must stay clear before resolving. Absent: 0s.
    clear_for: Option<Text>,
    /// keep | resolve | alert. Absent: keep.
    on_missing: Option<Text>,
    /// How long `keep` holds state without data. Absent: `rules.stale_after`.
    stale_after: Option<Text>,
    /// Extra labels. Absent: none.
    labels: Option<BTreeMap<String, Text>>,
    /// Summary template. Absent: a generic one.
    summary: Option<Text>,
    /// Description template. Absent: none.
    description: Option<Text>,
    /// Alerts this one explains while it fires (not notified meanwhile). Absent: none.
    inhibits: Option<Vec<Spanned<crate::rules::mute::config::RawInhibits>>>,
}

/// Values rules inherit from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// Group interval when a group sets none.
    pub evaluation_interval: Duration,
    /// `stale_after` when a rule sets none.
    pub stale_after: Duration,
    /// How often a firing alert is notified again.
    pub repeat_interval: Duration,
}

/// Loads the rules the `rules:` section names (its `files` globs, relative to the directory
/// of `source`, the configuration file), or the built-in set when it names none.
pub fn load(
    config: &RulesConfig,
    defaults: &Defaults,
    source: Option<&Path>,
) -> Result<Vec<Rule>, Problems> {
    if config.files.is_empty() {
        return load_builtin(defaults);
    }
    let base = source.and_then(Path::parent);
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for pattern in &config.files {
        let full = match base {
            Some(dir) if !Path::new(pattern).is_absolute() => {
                dir.join(pattern).display().to_string()
            }
            _ => pattern.clone(),
        };
        match glob::glob(&full) {
            Ok(paths) => {
                let mut matched = 0;
                for entry in paths {
                    match entry {
                        Ok(path) => {
                            matched += 1;
                            sources.push(path);
                        }
                        Err(e) => problems.push(file_problem(&full, format!("cannot read: {e}"))),
                    }
                }
                if matched == 0 {
                    problems.push(file_problem(
                        source
                            .map_or("<config>".into(), |p| p.display().to_string())
                            .as_str(),
                        format!("rules.files: {pattern:?} matches no file"),
                    ));
                }
            }
            Err(e) => problems.push(file_problem(&full, format!("invalid glob pattern: {e}"))),
        }
    }
    sources.sort();
    sources.dedup();
    let rules = load_paths(&sources, defaults, &mut problems);
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(Problems(problems))
    }
}

/// The built-in rule set.
pub fn load_builtin(defaults: &Defaults) -> Result<Vec<Rule>, Problems> {
    let mut problems = Vec::new();
    let mut rules = Vec::new();
    for (name, text) in BUILTIN {
        rules.extend(parse_file(
            text,
            &format!("{BUILTIN_PREFIX}{name}"),
            defaults,
            &mut problems,
        ));
    }
    check_unique(&rules, &mut problems);
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(Problems(problems))
    }
}

/// Reads and parses every file of `paths`, then checks names across them.
pub fn load_paths(
    paths: &[PathBuf],
    defaults: &Defaults,
    problems: &mut Vec<Problem>,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    for path in paths {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => rules.extend(parse_file(&text, &file, defaults, problems)),
            Err(e) => problems.push(file_problem(&file, format!("cannot read: {e}"))),
        }
    }
    check_unique(&rules, problems);
    rules
}

fn file_problem(file: &str, message: String) -> Problem {
    problem(file, None, "", message)
}

/// Parses one rule file; problems go to `problems`, valid rules are returned.
pub fn parse_file(
    text: &str,
    file: &str,
    defaults: &Defaults,
    problems: &mut Vec<Problem>,
) -> Vec<Rule> {
    let mut found = Vec::new();
    let parsed: Parsed<RawRuleFile> = parse_recovering(text, file, &mut found);
    let mut rules = Vec::new();
    if let Some(raw) = &parsed.raw {
        let mut semantic = Vec::new();
        let mut names: BTreeMap<String, u32> = BTreeMap::new();
        for (gi, group) in raw.groups.iter().flatten().enumerate() {
            let gpath = format!("groups[{gi}]");
            let mut v = Validator {
                file,
                problems: &mut semantic,
            };
            let name = match &group.name {
                Some(n) if !n.value.trim().is_empty() => {
                    if let Some(first) = names.insert(n.value.clone(), position(&n.referenced).0) {
                        v.at(
                            n,
                            &format!("{gpath}.name"),
                            format!("duplicate group name {:?} (first at line {first})", n.value),
                        );
                    }
                    n.value.clone()
                }
                Some(n) => {
                    v.at(n, &format!("{gpath}.name"), "must not be empty".into());
                    String::new()
                }
                None => {
                    v.path(&format!("{gpath}.name"), "a group needs a name".into());
                    String::new()
                }
            };
            let interval = match &group.interval {
                Some(t) => v.duration(t, &format!("{gpath}.interval"), Duration::from_secs(1)),
                None => Some(defaults.evaluation_interval),
            };
            for (ri, rule) in group.rules.iter().flatten().enumerate() {
                let rpath = format!("{gpath}.rules[{ri}]");
                if let Some(rule) = v.rule(rule, &rpath, &name, interval, defaults) {
                    rules.push(rule);
                }
            }
        }
        parsed.fix_paths(&mut semantic);
        found.extend(semantic);
    }
    if parsed.gave_up {
        found.push(file_problem(
            file,
            "stopped after too many structural problems; fix these and check again".into(),
        ));
    }
    found.sort_by_key(|p| (p.line.unwrap_or(0), p.column.unwrap_or(0)));
    let clean = found.is_empty();
    problems.extend(found);
    if clean { rules } else { Vec::new() }
}

/// Alert names must be unique across every loaded file (and `<alert>NoData` must not clash).
fn check_unique(rules: &[Rule], problems: &mut Vec<Problem>) {
    let mut seen: BTreeMap<String, &Rule> = BTreeMap::new();
    for rule in rules {
        let mut names = vec![rule.alert.clone()];
        if rule.conditions.on_missing == OnMissing::Alert {
            names.push(nodata_name(&rule.alert));
        }
        for name in names {
            if let Some(first) = seen.get(&name) {
                problems.push(problem(
                    &rule.file,
                    Some((rule.line, 1)),
                    "alert",
                    format!(
                        "alert {name:?} is also defined at {}:{}",
                        first.file, first.line
                    ),
                ));
            } else {
                seen.insert(name, rule);
            }
        }
    }
}

/// Name of the alert `on_missing: alert` fires when a rule's expression yields nothing.
pub fn nodata_name(alert: &str) -> String {
    format!("{alert}NoData")
}

struct Validator<'a> {
    file: &'a str,
    problems: &'a mut Vec<Problem>,
}

/// Line and column of a location, as problems carry them.
fn position(l: &serde_saphyr::Location) -> (u32, u32) {
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    (clamp(l.line()), clamp(l.column()))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Validator<'_> {
    fn at(&mut self, t: &Text, path: &str, message: String) {
        let at = position(&t.referenced);
        self.problems
            .push(problem(self.file, Some(at), path, message));
    }

    fn path(&mut self, path: &str, message: String) {
        self.problems.push(problem(self.file, None, path, message));
    }

    fn duration(&mut self, t: &Text, path: &str, min: Duration) -> Option<Duration> {
        match parse_duration(&t.value) {
            Ok(d) if d < min => {
                self.at(
                    t,
                    path,
                    format!(
                        "{} is too short: at least {}",
                        t.value,
                        crate::config::units::format_duration(min)
                    ),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.at(t, path, e);
                None
            }
        }
    }

    fn optional_duration(
        &mut self,
        t: &Option<Text>,
        path: &str,
        default: Duration,
    ) -> Option<Duration> {
        match t {
            Some(t) => self.duration(t, path, Duration::ZERO),
            None => Some(default),
        }
    }

    fn threshold(&mut self, t: &Option<Text>, path: &str) -> Result<Option<Threshold>, ()> {
        let Some(t) = t else { return Ok(None) };
        parse_threshold(&t.value)
            .map(Some)
            .map_err(|e| self.at(t, path, e))
    }

    fn rule(
        &mut self,
        raw: &Spanned<RawRule>,
        path: &str,
        group: &str,
        interval: Option<Duration>,
        defaults: &Defaults,
    ) -> Option<Rule> {
        let start = position(&raw.referenced);
        let line = start.0;
        let r = &raw.value;
        let before = self.problems.len();
        let alert = match &r.alert {
            Some(a) if is_identifier(&a.value) => a.value.clone(),
            Some(a) => {
                self.at(a, &format!("{path}.alert"), format!("{:?} is not a valid alert name: letters, digits and _ only, not starting with a digit", a.value));
                String::new()
            }
            None => {
                self.problems.push(problem(
                    self.file,
                    Some(start),
                    &format!("{path}.alert"),
                    "a rule needs an alert name".into(),
                ));
                String::new()
            }
        };
        let parsed_expr = match &r.expr {
            Some(e) => match expr::parse(&e.value) {
                Ok(parsed) => Some((parsed, e.value.clone())),
                Err(msg) => {
                    self.at(e, &format!("{path}.expr"), msg);
                    None
                }
            },
            None => {
                self.problems.push(problem(
                    self.file,
                    Some(start),
                    &format!("{path}.expr"),
                    "a rule needs an expr".into(),
                ));
                None
            }
        };
        let warning = self.threshold(&r.warning, &format!("{path}.warning"));
        let critical = self.threshold(&r.critical, &format!("{path}.critical"));
        if let (Ok(None), Ok(None)) = (&warning, &critical) {
            self.problems.push(problem(
                self.file,
                Some(start),
                path,
                "a rule needs warning, critical or both".into(),
            ));
        }
        if let (Ok(Some(w)), Ok(Some(c)), Some(ct)) = (&warning, &critical, &r.critical)
            && let Err(e) = check_order(w, c)
        {
            self.at(ct, &format!("{path}.critical"), e);
        }
        let for_ = self.optional_duration(&r.for_, &format!("{path}.for"), Duration::ZERO);
        let clear_for =
            self.optional_duration(&r.clear_for, &format!("{path}.clear_for"), Duration::ZERO);
        let stale_after = self.optional_duration(
            &r.stale_after,
            &format!("{path}.stale_after"),
            defaults.stale_after,
        );
        let hysteresis = match &r.hysteresis {
            Some(h) => match parse_quantity(&h.value) {
                Ok(v) if v >= 0.0 => Some(v),
                Ok(_) => {
                    self.at(
                        h,
                        &format!("{path}.hysteresis"),
                        "must not be negative".into(),
                    );
                    None
                }
                Err(e) => {
                    self.at(h, &format!("{path}.hysteresis"), e);
                    None
                }
            },
            None => Some(0.0),
        };
        let on_missing = match &r.on_missing {
            None => Some(OnMissing::Keep),
            Some(t) => match t.value.as_str() {
                "keep" => Some(OnMissing::Keep),
                "resolve" => Some(OnMissing::Resolve),
                "alert" => Some(OnMissing::Alert),
                other => {
                    self.at(
                        t,
                        &format!("{path}.on_missing"),
                        format!("{other:?} is not one of keep, resolve, alert"),
                    );
                    None
                }
            },
        };
        let mut labels = LabelSet::new();
        for (name, value) in r.labels.iter().flatten() {
            let lpath = format!("{path}.labels.{name}");
            if !is_identifier(name) || name.starts_with("__") {
                self.at(value, &lpath, format!("{name:?} is not a valid label name"));
            } else if matches!(name.as_str(), "alert" | "severity" | "alertname") {
                self.at(
                    value,
                    &lpath,
                    format!("label {name:?} is set by lookout and cannot be overridden"),
                );
            } else {
                labels.insert(name.clone(), value.value.clone());
            }
        }
        for (field, t) in [("summary", &r.summary), ("description", &r.description)] {
            if let Some(t) = t
                && let Err(e) = template::check(&t.value)
            {
                self.at(t, &format!("{path}.{field}"), format!("template: {e}"));
            }
        }
        let mut inhibits = Vec::new();
        for (i, item) in r.inhibits.iter().flatten().enumerate() {
            match crate::rules::mute::config::rule_inhibit(&alert, &item.value) {
                Ok(rule) => inhibits.push(rule),
                Err(e) => self.problems.push(problem(
                    self.file,
                    Some(position(&item.referenced)),
                    &format!("{path}.inhibits[{i}]"),
                    e,
                )),
            }
        }
        if self.problems.len() > before {
            return None;
        }
        let (expr, expr_text) = parsed_expr?;
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Some(Rule {
            alert,
            group: group.to_string(),
            interval: interval?,
            expr,
            expr_text,
            conditions: Conditions {
                warning: warning.ok()?,
                critical: critical.ok()?,
                for_ms: ms(for_?),
                hysteresis: hysteresis?,
                clear_for_ms: ms(clear_for?),
                on_missing: on_missing?,
                stale_after_ms: ms(stale_after?),
                repeat_interval_ms: ms(defaults.repeat_interval),
            },
            labels,
            summary: r.summary.as_ref().map(|t| t.value.clone()),
            description: r.description.as_ref().map(|t| t.value.clone()),
            inhibits,
            file: self.file.to_string(),
            line,
        })
    }
}

/// Parses `> 70%`, `<= 2s`, `!= 0`: an operator, then a number with an optional unit.
pub fn parse_threshold(text: &str) -> Result<Threshold, String> {
    let t = text.trim();
    let ops = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        (">", Op::Gt),
        ("<", Op::Lt),
    ];
    let Some((op, rest)) = ops
        .iter()
        .find_map(|(s, op)| t.strip_prefix(s).map(|rest| (*op, rest)))
    else {
        return Err(format!(
            "invalid threshold {text:?}: expected an operator (> >= < <= == !=) and a number, e.g. \"> 70%\""
        ));
    };
    let value = parse_quantity(rest).map_err(|e| format!("invalid threshold {text:?}: {e}"))?;
    Ok(Threshold { op, value })
}

/// Parses a number with an optional unit: `70%` -> 0.7, `500ms` -> 0.5, `2s`, `5m`, `1h`
/// (seconds), or a plain number (`0.7`, `1e6`).
pub fn parse_quantity(text: &str) -> Result<f64, String> {
    let t = text.trim();
    // (unit, multiplier, divisor): dividing keeps `70%` the double nearest 0.7.
    let units = [
        ("%", 1.0, 100.0),
        ("ms", 1.0, 1000.0),
        ("s", 1.0, 1.0),
        ("m", 60.0, 1.0),
        ("h", 3600.0, 1.0),
    ];
    let (number, mul, div) = units
        .iter()
        .find_map(|(u, mul, div)| t.strip_suffix(u).map(|n| (n.trim_end(), *mul, *div)))
        .unwrap_or((t, 1.0, 1.0));
    let v: f64 = number
        .parse()
        .map_err(|_| format!("{t:?} is not a number (units: %, ms, s, m, h)"))?;
    if !v.is_finite() {
        return Err(format!("{t:?} is not a finite number"));
    }
    Ok(v * mul / div)
}

/// Critical must be the worse side of warning, and both must compare the same way.
fn check_order(warning: &Threshold, critical: &Threshold) -> Result<(), String> {
    let up = |op: Op| matches!(op, Op::Gt | Op::Ge);
    let down = |op: Op| matches!(op, Op::Lt | Op::Le);
    if (up(warning.op) && down(critical.op)) || (down(warning.op) && up(critical.op)) {
        return Err(format!(
            "critical ({} {}) and warning ({} {}) compare in opposite directions",
            critical.op.as_str(),
            critical.value,
            warning.op.as_str(),
            warning.value
        ));
    }
    if up(warning.op) && critical.value < warning.value {
        return Err(format!(
            "critical ({} {}) is below warning ({} {}): for a \"greater than\" rule, critical must be the higher value",
            critical.op.as_str(),
            critical.value,
            warning.op.as_str(),
            warning.value
        ));
    }
    if down(warning.op) && critical.value > warning.value {
        return Err(format!(
            "critical ({} {}) is above warning ({} {}): for a \"less than\" rule, critical must be the lower value",
            critical.op.as_str(),
            critical.value,
            warning.op.as_str(),
            warning.value
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            evaluation_interval: Duration::from_secs(10),
            stale_after: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
        }
    }

    #[test]
    fn a_key_with_line_breaks_is_a_one_line_problem() {
        // Found by the property test: carriage returns in a key become line breaks.
        let mut problems = Vec::new();
        parse_file("{0\r\r*}a", "r.yaml", &defaults(), &mut problems);
        assert!(!problems.is_empty());
        for p in &problems {
            assert!(!p.message.contains('\n'), "{p}");
        }
    }

    fn problems_of(text: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let rules = parse_file(text, "r.yaml", &defaults(), &mut problems);
        if !problems.is_empty() {
            assert!(rules.is_empty(), "a file with problems yields no rules");
        }
        problems.iter().map(ToString::to_string).collect()
    }

    const RULE: &str =
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: lookout_load1\n";

    #[test]
    fn the_builtin_rules_load_and_carry_the_seed_thresholds() {
        let rules = load_builtin(&defaults()).unwrap();
        let cpu = rules.iter().find(|r| r.alert == "HostCpuHigh").unwrap();
        assert_eq!(
            cpu.conditions.warning,
            Some(Threshold {
                op: Op::Gt,
                value: 0.7
            })
        );
        assert_eq!(
            cpu.conditions.critical,
            Some(Threshold {
                op: Op::Gt,
                value: 0.85
            })
        );
        assert!((cpu.conditions.hysteresis - 0.05).abs() < 1e-12);
        assert_eq!(cpu.file, "<built-in>/host.yaml");
        assert_eq!(cpu.conditions.repeat_interval_ms, 4 * 3600 * 1000);
        for name in [
            "HostMemoryHigh",
            "HostFilesystemFull",
            "HostFilesystemInodesFull",
            "LookoutCollectorFailing",
        ] {
            assert!(rules.iter().any(|r| r.alert == name), "{name} missing");
        }
    }

    #[test]
    fn each_invalid_rule_is_reported_with_its_position_and_path() {
        // (rule body lines after `expr`, expected substring of the single problem)
        let rows = [
            (
                "        warning: \"70%\"\n",
                "r.yaml:6:18: groups[0].rules[0].warning: invalid threshold \"70%\": expected an operator",
            ),
            ("        warning: \"> lots\"\n", "not a number"),
            (
                "        warning: \"> 90%\"\n        critical: \"> 80%\"\n",
                "groups[0].rules[0].critical: critical (> 0.8) is below warning (> 0.9)",
            ),
            (
                "        warning: \"> 1\"\n        critical: \"< 0\"\n",
                "opposite directions",
            ),
            (
                "        warning: \"< 0.8\"\n        critical: \"< 0.9\"\n",
                "is above warning",
            ),
            (
                "        warning: \"> 1\"\n        for: soon\n",
                "groups[0].rules[0].for: invalid duration",
            ),
            (
                "        warning: \"> 1\"\n        on_missing: ignore\n",
                "\"ignore\" is not one of keep, resolve, alert",
            ),
            (
                "        warning: \"> 1\"\n        hysteresis: -5%\n",
                "must not be negative",
            ),
            (
                "        warning: \"> 1\"\n        labels: {severity: page}\n",
                "label \"severity\" is set by lookout",
            ),
            (
                "        warning: \"> 1\"\n        labels: {\"bad-name\": x}\n",
                "\"bad-name\" is not a valid label name",
            ),
            (
                "        warning: \"> 1\"\n        summary: \"{{ value \"\n",
                "groups[0].rules[0].summary: template:",
            ),
            (
                "        warning: \"> 1\"\n        severity: page\n",
                "unknown",
            ),
            ("", "a rule needs warning, critical or both"),
        ];
        for (body, expected) in rows {
            let problems = problems_of(&format!("{RULE}{body}"));
            assert_eq!(problems.len(), 1, "{body:?}: {problems:#?}");
            assert!(
                problems[0].contains(expected),
                "{body:?}: expected {expected:?} in {problems:#?}"
            );
        }
    }

    #[test]
    fn expression_errors_and_cross_file_duplicates_are_reported() {
        let problems = problems_of(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: lookout_nope\n        warning: \"> 1\"\n",
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("groups[0].rules[0].expr") && p.contains("lookout_nope")),
            "{problems:#?}"
        );

        let mut problems = Vec::new();
        let text = format!("{RULE}        warning: \"> 1\"\n");
        let mut rules = parse_file(&text, "a.yaml", &defaults(), &mut problems);
        rules.extend(parse_file(&text, "b.yaml", &defaults(), &mut problems));
        check_unique(&rules, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0]
                .to_string()
                .contains("alert \"A\" is also defined at a.yaml:4"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn several_problems_in_one_file_are_all_reported() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: lookout_load1\n        warning: \"70\"\n        fro: 1m\n      - alert: B\n        expr: lookout_load5\n        critical: \"> x\"\n";
        let problems = problems_of(text);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].contains(":6:")
                && problems[1].contains(":7:")
                && problems[2].contains(":10:"),
            "{problems:#?}"
        );
    }

    #[test]
    fn quantities_take_percent_and_duration_units() {
        // (text, value)
        let rows = [
            ("70%", 0.7),
            ("0.5", 0.5),
            ("500ms", 0.5),
            ("2s", 2.0),
            ("5m", 300.0),
            ("1e3", 1000.0),
            ("-1", -1.0),
        ];
        for (text, value) in rows {
            assert!(
                (parse_quantity(text).unwrap() - value).abs() < 1e-12,
                "{text}"
            );
        }
        assert!(parse_quantity("inf").is_err());
        assert_eq!(
            parse_threshold(">= 2s").unwrap(),
            Threshold {
                op: Op::Ge,
                value: 2.0
            }
        );
    }
}
