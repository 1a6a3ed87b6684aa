//! The rule engine: evaluates rules over the store and decides notifications.
//!
//! [`Engine::evaluate`] is a pure function of (rules, store, instance states, now): for each
//! rule due at `now` it evaluates the expression, steps every instance (one per label set)
//! through [`state::step`], and returns the notifications decided. The agent's rules task
//! and `lookout test rules` drive the same code, one with the wall clock, the other with a
//! simulated one. Nothing here sends anything: delivery takes the returned notifications.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::LabelSet;
use super::load::nodata_name;
use super::model::{Conditions, OnMissing, Op, Rule, Severity, Threshold};
use super::persist::StoredInstance;
use super::score::Health;
use super::state::{self, InstanceState, Kind, Phase};
use super::template::{self, Context};
use crate::store::{Millis, Store};

/// How many transitions `GET /api/v1/alerts?history=N` can go back.
pub const HISTORY_LIMIT: usize = 1000;

/// Firing or resolved, as receivers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The alert is firing (new, escalated, de-escalated or a reminder).
    Firing,
    /// The alert has resolved.
    Resolved,
}

/// One notification decided by an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// Alert name.
    pub alert: String,
    /// Instance labels: expression labels, rule labels and `host`.
    pub labels: LabelSet,
    /// Firing or resolved.
    pub status: Status,
    /// Why it was sent.
    pub kind: Kind,
    /// Severity now (for `resolved`, the severity it had).
    pub severity: Severity,
    /// Severity before an escalation or de-escalation.
    pub previous: Option<Severity>,
    /// The value that decided it, if one was present.
    pub value: Option<f64>,
    /// The threshold of `severity`.
    pub threshold: Option<f64>,
    /// Rendered summary.
    pub summary: String,
    /// Rendered description.
    pub description: String,
    /// When the alert started firing.
    pub starts_at: Millis,
    /// When this notification was decided.
    pub at: Millis,
}

/// A transition, kept for `GET /api/v1/alerts?history=N`.
pub type HistoryEntry = Notification;

/// An instance as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveAlert {
    /// Alert name.
    pub alert: String,
    /// Instance labels.
    pub labels: LabelSet,
    /// `pending` or `firing`.
    pub state: Phase,
    /// Current (or pending) severity.
    pub severity: Option<Severity>,
    /// Since when it is pending or firing.
    pub active_since: Option<Millis>,
    /// Since when it is firing.
    pub firing_since: Option<Millis>,
    /// Last value seen.
    pub value: Option<f64>,
    /// When it was last notified.
    pub last_notified: Option<Millis>,
}

type Key = (String, LabelSet);

/// Rules, their instances' states and recent history.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    instances: BTreeMap<Key, InstanceState>,
    last_eval: Vec<Option<Millis>>,
    history: VecDeque<HistoryEntry>,
}

/// The conditions of a rule's `<alert>NoData` instance: value 1 while the expression yields
/// nothing, 0 otherwise; fires (warning) after the rule's `for`.
fn nodata_conditions(c: &Conditions) -> Conditions {
    Conditions {
        warning: Some(Threshold {
            op: Op::Gt,
            value: 0.5,
        }),
        critical: None,
        hysteresis: 0.0,
        on_missing: OnMissing::Resolve,
        ..*c
    }
}

impl Engine {
    /// An engine over `rules`, continuing from `restored` states (those of alerts that no
    /// longer exist are dropped).
    pub fn new(rules: Vec<Rule>, restored: Vec<StoredInstance>) -> Self {
        let mut names: Vec<String> = rules.iter().map(|r| r.alert.clone()).collect();
        names.extend(
            rules
                .iter()
                .filter(|r| r.conditions.on_missing == OnMissing::Alert)
                .map(|r| nodata_name(&r.alert)),
        );
        let instances = restored
            .into_iter()
            .filter(|s| names.contains(&s.alert) && s.state.phase() != Phase::Inactive)
            .map(|s| ((s.alert, s.labels), s.state))
            .collect();
        let last_eval = vec![None; rules.len()];
        Engine {
            rules,
            instances,
            last_eval,
            history: VecDeque::new(),
        }
    }

    /// Replaces the rules (on reload), keeping the states of alerts that still exist.
    pub fn replace_rules(&mut self, rules: Vec<Rule>) {
        let restored = self.snapshot();
        let history = std::mem::take(&mut self.history);
        *self = Engine::new(rules, restored);
        self.history = history;
    }

    /// The loaded rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Evaluates every rule due at `now`; returns the notifications decided.
    pub fn evaluate(&mut self, store: &Store, host: &str, now: Millis) -> Vec<Notification> {
        let mut out = Vec::new();
        for i in 0..self.rules.len() {
            let interval_ms = i64::try_from(self.rules[i].interval.as_millis()).unwrap_or(i64::MAX);
            // Due when a full interval has passed; 5% slack absorbs timer jitter.
            let due =
                self.last_eval[i].is_none_or(|last| now - last >= interval_ms - interval_ms / 20);
            if due {
                self.last_eval[i] = Some(now);
                self.evaluate_rule(i, store, host, now, &mut out);
            }
        }
        for n in &out {
            if self.history.len() >= HISTORY_LIMIT {
                self.history.pop_front();
            }
            self.history.push_back(n.clone());
        }
        out
    }

    fn evaluate_rule(
        &mut self,
        i: usize,
        store: &Store,
        host: &str,
        now: Millis,
        out: &mut Vec<Notification>,
    ) {
        let rule = &self.rules[i];
        let results = rule.expr.eval(store, now);
        let mut seen = std::collections::BTreeSet::new();
        for (mut labels, value) in results {
            labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            labels
                .entry("host".into())
                .or_insert_with(|| host.to_string());
            let key = (rule.alert.clone(), labels);
            let st = self.instances.entry(key.clone()).or_default();
            if let Some(d) = state::step(&rule.conditions, st, Some(value), now) {
                out.push(notification(
                    rule,
                    &rule.alert,
                    &key.1,
                    &rule.conditions,
                    d,
                    host,
                    now,
                ));
            }
            seen.insert(key);
        }
        // Instances of this rule that the expression no longer yields: absent data.
        let absent: Vec<Key> = self
            .instances
            .range((rule.alert.clone(), LabelSet::new())..)
            .take_while(|((alert, _), _)| *alert == rule.alert)
            .map(|(k, _)| k.clone())
            .filter(|k| !seen.contains(k))
            .collect();
        for key in absent {
            if let Some(st) = self.instances.get_mut(&key)
                && let Some(d) = state::step(&rule.conditions, st, None, now)
            {
                out.push(notification(
                    rule,
                    &rule.alert,
                    &key.1,
                    &rule.conditions,
                    d,
                    host,
                    now,
                ));
            }
        }
        if rule.conditions.on_missing == OnMissing::Alert {
            let conditions = nodata_conditions(&rule.conditions);
            let mut labels = rule.labels.clone();
            labels
                .entry("host".into())
                .or_insert_with(|| host.to_string());
            let name = nodata_name(&rule.alert);
            let key = (name.clone(), labels);
            let st = self.instances.entry(key.clone()).or_default();
            let value = if seen.is_empty() { 1.0 } else { 0.0 };
            if let Some(d) = state::step(&conditions, st, Some(value), now) {
                out.push(notification(rule, &name, &key.1, &conditions, d, host, now));
            }
        }
        // Inactive instances carry nothing worth keeping.
        self.instances.retain(|_, st| st.phase() != Phase::Inactive);
    }

    /// Every pending or firing instance, for persistence.
    pub fn snapshot(&self) -> Vec<StoredInstance> {
        self.instances
            .iter()
            .map(|((alert, labels), st)| StoredInstance {
                alert: alert.clone(),
                labels: labels.clone(),
                state: st.clone(),
            })
            .collect()
    }

    /// Pending and firing instances.
    pub fn active(&self) -> Vec<ActiveAlert> {
        self.instances
            .iter()
            .map(|((alert, labels), st)| ActiveAlert {
                alert: alert.clone(),
                labels: labels.clone(),
                state: st.phase(),
                severity: st.severity(),
                active_since: st.active_since(),
                firing_since: st.firing_since(),
                value: st.last_value(),
                last_notified: st.last_notified(),
            })
            .collect()
    }

    /// The last `n` notifications, newest first.
    pub fn history(&self, n: usize) -> Vec<HistoryEntry> {
        self.history.iter().rev().take(n).cloned().collect()
    }

    /// The worst severity firing now.
    pub fn health(&self) -> Health {
        self.instances
            .values()
            .filter(|st| st.phase() == Phase::Firing)
            .filter_map(InstanceState::severity)
            .max()
            .map_or(Health::Ok, |s| match s {
                Severity::Warning => Health::Warning,
                Severity::Critical => Health::Critical,
            })
    }

    /// Firing instances: (alert, labels, severity).
    pub fn firing(&self) -> impl Iterator<Item = (&str, &LabelSet, Severity)> {
        self.instances.iter().filter_map(|((alert, labels), st)| {
            (st.phase() == Phase::Firing).then_some(())?;
            Some((alert.as_str(), labels, st.severity()?))
        })
    }

    /// Instances of the rule named `alert` (and its NoData instance).
    pub fn instances_of<'a>(
        &'a self,
        alert: &'a str,
    ) -> impl Iterator<Item = (&'a LabelSet, &'a InstanceState)> + 'a {
        let nodata = nodata_name(alert);
        self.instances
            .iter()
            .filter(move |((a, _), _)| a == alert || *a == nodata)
            .map(|((_, labels), st)| (labels, st))
    }
}

fn notification(
    rule: &Rule,
    alert: &str,
    labels: &LabelSet,
    conditions: &Conditions,
    d: state::Decision,
    host: &str,
    now: Millis,
) -> Notification {
    let threshold = match d.severity {
        Severity::Warning => conditions.warning,
        Severity::Critical => conditions.critical,
    }
    .map(|t| t.value);
    let ctx = Context {
        alert,
        value: d.value,
        threshold,
        severity: Some(d.severity.as_str()),
        host,
        labels,
    };
    let nodata = alert != rule.alert;
    let summary = match (&rule.summary, nodata) {
        (Some(s), false) => template::render(s, &ctx),
        (_, true) => format!("{}: no data from `{}` on {host}", alert, rule.expr_text),
        (None, false) => format!(
            "{alert} {} on {host}{}",
            d.severity.as_str(),
            d.value.map(|v| format!(": {v}")).unwrap_or_default()
        ),
    };
    let description = match (&rule.description, nodata) {
        (Some(s), false) => template::render(s, &ctx),
        _ => String::new(),
    };
    Notification {
        alert: alert.to_string(),
        labels: labels.clone(),
        status: if d.kind == Kind::Resolved {
            Status::Resolved
        } else {
            Status::Firing
        },
        kind: d.kind,
        severity: d.severity,
        previous: d.previous,
        value: d.value,
        threshold,
        summary,
        description,
        starts_at: d.since,
        at: now,
    }
}
