//! `notify.silences` and `notify.inhibit`: fixed silences and inhibition rules in the
//! configuration file, and the `inhibits:` of a rule.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::inhibit::InhibitRule;
use super::silence::Silence;
use crate::config::{Checker, Text};

/// One `notify.silences` entry as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSilence {
    /// `label: pattern`; required.
    pub matchers: Option<BTreeMap<String, String>>,
    /// RFC 3339 start; required.
    pub starts: Option<Text>,
    /// RFC 3339 end; required.
    pub ends: Option<Text>,
    /// Why.
    pub comment: Option<Text>,
    /// Who.
    pub created_by: Option<Text>,
}

/// One `notify.maintenance` entry as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaintenance {
    /// Unique name; required.
    pub name: Option<Text>,
    /// `label: pattern`; required.
    pub matchers: Option<BTreeMap<String, String>>,
    /// Cron expression of when the window opens; required.
    pub schedule: Option<Text>,
    /// How long it stays open; required.
    pub duration: Option<Text>,
    /// Time zone of the schedule (`Europe/Berlin`); absent: UTC.
    pub timezone: Option<Text>,
}

/// Longest maintenance window (a week).
pub const MAX_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Checks `notify.maintenance`.
pub fn check_maintenance(
    c: &mut Checker<'_>,
    path: &str,
    list: &[Spanned<RawMaintenance>],
) -> Vec<super::MaintenanceWindow> {
    let mut names: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let base = format!("{path}[{i}]");
        let raw = &item.value;
        let name = c.entry_name(
            &base,
            item,
            raw.name.as_ref(),
            &mut names,
            "maintenance window",
        );
        let matchers = c
            .required(
                &base,
                &item.referenced,
                "matchers",
                raw.matchers.as_ref(),
                "{alert: NAME}",
            )
            .and_then(|m| match super::matchers::Matchers::parse(m, false) {
                Ok(m) => Some(m),
                Err(e) => {
                    c.report(&format!("{base}.matchers"), Some(&item.referenced), e);
                    None
                }
            });
        let tz = raw
            .timezone
            .as_ref()
            .map(|t| t.value.as_str())
            .unwrap_or("");
        let schedule = c
            .required(
                &base,
                &item.referenced,
                "schedule",
                raw.schedule.as_ref(),
                "a cron expression such as \"0 2 * * *\"",
            )
            .and_then(|text| match crate::schedule::Cron::parse(&text.value, tz) {
                Ok(cron) => Some(cron),
                Err(e) => {
                    let (key, at) = match (&raw.timezone, e.contains("time zone")) {
                        (Some(t), true) => ("timezone", &t.referenced),
                        _ => ("schedule", &text.referenced),
                    };
                    c.report(&format!("{base}.{key}"), Some(at), e);
                    None
                }
            });
        let duration = c
            .required(
                &base,
                &item.referenced,
                "duration",
                raw.duration.as_ref(),
                "such as 1h",
            )
            .and_then(|d| {
                c.duration(
                    &format!("{base}.duration"),
                    Some(d),
                    MAX_WINDOW,
                    std::time::Duration::from_secs(1),
                    Some(MAX_WINDOW),
                )
            });
        if let (Some(name), Some(matchers), Some(schedule), Some(duration)) =
            (name, matchers, schedule, duration)
        {
            out.push(super::MaintenanceWindow {
                name,
                matchers,
                schedule,
                duration_ms: crate::store::Millis::try_from(duration.as_millis())
                    .unwrap_or(crate::store::Millis::MAX),
            });
        }
    }
    out
}

/// One `notify.inhibit` entry as serde reads it (Alertmanager's `inhibit_rules` shape).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInhibit {
    /// Matchers of the alerts that inhibit; required.
    pub source: Option<BTreeMap<String, String>>,
    /// Matchers of the alerts inhibited; required.
    pub target: Option<BTreeMap<String, String>>,
    /// Labels that must be equal on both; absent: none.
    pub equal: Option<Vec<String>>,
}

/// One entry of a rule's `inhibits:`: what this rule's alert explains while it fires.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInhibits {
    /// Matchers of the alerts inhibited; required.
    pub target: Option<BTreeMap<String, String>>,
    /// Labels that must be equal on both; absent: none.
    pub equal: Option<Vec<String>>,
}

/// Checks `notify.silences` (ids `cfg-0`, `cfg-1`, ... in order).
pub fn check_silences(
    c: &mut Checker<'_>,
    path: &str,
    list: &[Spanned<RawSilence>],
) -> Vec<Silence> {
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let base = format!("{path}[{i}]");
        let raw = &item.value;
        let matchers = c.required(
            &base,
            &item.referenced,
            "matchers",
            raw.matchers.as_ref(),
            "{alert: NAME}",
        );
        let time = |key: &str, text: Option<&Text>, c: &mut Checker<'_>| {
            let text = c.required(&base, &item.referenced, key, text, "an RFC 3339 time")?;
            let parsed = crate::clock::parse_rfc3339(&text.value);
            if parsed.is_none() {
                c.report(
                    &format!("{base}.{key}"),
                    Some(&text.referenced),
                    format!(
                        "{:?} is not an RFC 3339 time (2026-12-24T00:00:00Z)",
                        text.value
                    ),
                );
            }
            parsed
        };
        let starts = time("starts", raw.starts.as_ref(), c);
        let ends = time("ends", raw.ends.as_ref(), c);
        let (Some(matchers), Some(starts), Some(ends)) = (matchers, starts, ends) else {
            continue;
        };
        let text = |t: &Option<Text>| t.as_ref().map(|t| t.value.clone()).unwrap_or_default();
        match Silence::new(
            format!("cfg-{i}"),
            matchers.clone(),
            starts,
            ends,
            text(&raw.comment),
            text(&raw.created_by),
            starts,
        ) {
            Ok(silence) => out.push(silence),
            Err(why) => c.report(&base, Some(&item.referenced), why),
        }
    }
    out
}

/// Checks `notify.inhibit`.
pub fn check_inhibit(
    c: &mut Checker<'_>,
    path: &str,
    list: &[Spanned<RawInhibit>],
) -> Vec<InhibitRule> {
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let base = format!("{path}[{i}]");
        let raw = &item.value;
        let source = c.required(
            &base,
            &item.referenced,
            "source",
            raw.source.as_ref(),
            "{alert: NAME}",
        );
        let target = c.required(
            &base,
            &item.referenced,
            "target",
            raw.target.as_ref(),
            "{alert: NAME}",
        );
        let (Some(source), Some(target)) = (source, target) else {
            continue;
        };
        match check_equal(raw.equal.as_deref())
            .and_then(|equal| InhibitRule::new(source, target, equal))
        {
            Ok(rule) => out.push(rule),
            Err(why) => c.report(&base, Some(&item.referenced), why),
        }
    }
    out
}

/// The inhibition rule of one entry of a rule's `inhibits:`, the rule's own alert its source.
pub fn rule_inhibit(alert: &str, raw: &RawInhibits) -> Result<InhibitRule, String> {
    let source = BTreeMap::from([("alert".to_string(), regex::escape(alert))]);
    let target = raw
        .target
        .as_ref()
        .ok_or("`target` is required ({alert: NAME})")?;
    InhibitRule::new(&source, target, check_equal(raw.equal.as_deref())?)
}

fn check_equal(equal: Option<&[String]>) -> Result<Vec<String>, String> {
    let equal = equal.unwrap_or_default();
    if equal.iter().any(|l| l.trim().is_empty()) {
        return Err("equal: a label name must not be empty".into());
    }
    Ok(equal.to_vec())
}

/// A silence of a rule test: `{matchers: {alert: A}, starts: 1m, ends: 5m}`, offsets from
/// the start of the test (`starts` absent: from the start).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTestSilence {
    matchers: BTreeMap<String, String>,
    #[serde(default)]
    starts: Option<String>,
    ends: String,
}

/// An inhibition rule of a rule test, as in `notify.inhibit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTestInhibit {
    source: BTreeMap<String, String>,
    target: BTreeMap<String, String>,
    #[serde(default)]
    equal: Vec<String>,
}

/// The silences (on the simulated clock starting at `epoch`) and inhibition rules of a
/// rule test; the error names the entry.
pub fn test_mutes(
    silences: Vec<RawTestSilence>,
    inhibit: Vec<RawTestInhibit>,
    epoch: crate::store::Millis,
) -> Result<(Vec<Silence>, Vec<InhibitRule>), String> {
    let mut out = Vec::new();
    for (i, raw) in silences.into_iter().enumerate() {
        let offset = |what: &str, text: &str| {
            crate::config::units::parse_duration(text)
                .map(|d| {
                    epoch.saturating_add(
                        crate::store::Millis::try_from(d.as_millis())
                            .unwrap_or(crate::store::Millis::MAX),
                    )
                })
                .map_err(|e| format!("silences[{i}].{what}: {e}"))
        };
        let starts = match &raw.starts {
            Some(t) => offset("starts", t)?,
            None => epoch,
        };
        let ends = offset("ends", &raw.ends)?;
        let silence = Silence::new(
            format!("test-{i}"),
            raw.matchers,
            starts,
            ends,
            String::new(),
            String::new(),
            epoch,
        )
        .map_err(|e| format!("silences[{i}]: {e}"))?;
        out.push(silence);
    }
    let mut rules = Vec::new();
    for (i, r) in inhibit.into_iter().enumerate() {
        rules.push(
            InhibitRule::new(&r.source, &r.target, r.equal)
                .map_err(|e| format!("inhibit[{i}]: {e}"))?,
        );
    }
    Ok((out, rules))
}
