//! The rule engine: evaluates rules over the store and decides notifications.
//!
//! [`Engine::evaluate`] is a pure function of (rules, store, instance states, now): for each
//! rule due at `now` it evaluates the expression, steps every instance (one per label set)
//! through [`state::step`], and returns the notifications decided. The agent's rules task
//! and `lookout test rules` drive the same code, one with the wall clock, the other with a
//! simulated one. Nothing here sends anything: delivery takes the returned notifications.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use std::hash::{Hash, Hasher};

use super::LabelSet;
use super::expr::OutputLabels;
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

/// An instance: its labels, state, and the evaluation that last saw its label set.
#[derive(Debug, Clone)]
struct Entry {
    labels: LabelSet,
    state: InstanceState,
    generation: u64,
}

/// Instances of one alert name, by label fingerprint (see [`InstanceLabels::fingerprint`]).
type Instances = HashMap<u64, Entry>;

/// The labels of an instance as the engine sees them, borrowed: the expression's labels,
/// overridden by the rule's labels, plus `host` unless one of them has it.
#[derive(Debug, Clone, Copy)]
struct InstanceLabels<'a> {
    expr: OutputLabels<'a>,
    rule: &'a LabelSet,
    host: &'a str,
}

/// Hash of one label pair; a label set's fingerprint is the wrapping sum over its pairs, so
/// it does not depend on the order the pairs come in.
fn pair_hash(name: &str, value: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    name.hash(&mut h);
    value.hash(&mut h);
    h.finish()
}

impl<'a> InstanceLabels<'a> {
    fn pairs(self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let rule = self.rule;
        let has_host = rule.contains_key("host") || self.expr.get("host").is_some();
        self.expr
            .pairs()
            .filter(move |(k, _)| !rule.contains_key(*k))
            .chain(rule.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .chain((!has_host).then_some(("host", self.host)))
    }

    fn fingerprint(self) -> u64 {
        self.pairs()
            .fold(0u64, |acc, (k, v)| acc.wrapping_add(pair_hash(k, v)))
    }

    /// Whether these are exactly the labels of `set`.
    fn matches(self, set: &LabelSet) -> bool {
        let mut n = 0;
        for (k, v) in self.pairs() {
            n += 1;
            if set.get(k).map(String::as_str) != Some(v) {
                return false;
            }
        }
        n == set.len()
    }

    fn to_label_set(self) -> LabelSet {
        self.pairs()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

fn set_fingerprint(set: &LabelSet) -> u64 {
    set.iter()
        .fold(0u64, |acc, (k, v)| acc.wrapping_add(pair_hash(k, v)))
}

/// Finds the entry whose labels `is_it` accepts, starting at fingerprint `fp`: `Ok(key)` if
/// found, `Err(free key)` if not. Two label sets with the same 64-bit fingerprint (about one
/// chance in 10^19 per pair) take consecutive keys, so they can never share a state.
fn probe(map: &Instances, mut fp: u64, is_it: impl Fn(&LabelSet) -> bool) -> Result<u64, u64> {
    loop {
        match map.get(&fp) {
            Some(e) if is_it(&e.labels) => return Ok(fp),
            Some(_) => fp = fp.wrapping_add(1),
            None => return Err(fp),
        }
    }
}

/// Rules, their instances' states and recent history.
///
/// Instances live in one hash map per rule (and one per rule for its NoData alert), keyed by
/// a fingerprint of their labels computed on borrowed data: a tick builds no label set for a
/// series whose instance exists or stays inactive, which is nearly all of them. An instance
/// the expression stopped yielding is found by its stale `generation`.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    instances: Vec<Instances>,
    nodata: Vec<Instances>,
    last_eval: Vec<Option<Millis>>,
    generation: u64,
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

/// Steps the instance with `labels` (a new one on a scratch state, kept only if it leaves
/// inactive) and hands any decision to `decide`.
fn step_instance(
    map: &mut Instances,
    labels: InstanceLabels<'_>,
    conditions: &Conditions,
    value: Option<f64>,
    generation: u64,
    now: Millis,
    decide: &mut impl FnMut(&LabelSet, state::Decision),
) {
    match probe(map, labels.fingerprint(), |set| labels.matches(set)) {
        Ok(key) => {
            if let Some(entry) = map.get_mut(&key) {
                entry.generation = generation;
                if let Some(d) = state::step(conditions, &mut entry.state, value, now) {
                    decide(&entry.labels, d);
                }
            }
        }
        Err(free) => {
            let mut st = InstanceState::default();
            let decision = state::step(conditions, &mut st, value, now);
            if decision.is_none() && st.phase() == Phase::Inactive {
                return;
            }
            let labels = labels.to_label_set();
            if let Some(d) = decision {
                decide(&labels, d);
            }
            if st.phase() != Phase::Inactive {
                map.insert(
                    free,
                    Entry {
                        labels,
                        state: st,
                        generation,
                    },
                );
            }
        }
    }
}

fn insert_restored(map: &mut Instances, labels: LabelSet, state: InstanceState) {
    if let Err(free) = probe(map, set_fingerprint(&labels), |set| *set == labels) {
        map.insert(
            free,
            Entry {
                labels,
                state,
                generation: 0,
            },
        );
    }
}

impl Engine {
    /// An engine over `rules`, continuing from `restored` states (those of alerts that no
    /// longer exist are dropped).
    pub fn new(rules: Vec<Rule>, restored: Vec<StoredInstance>) -> Self {
        let mut instances = vec![Instances::new(); rules.len()];
        let mut nodata = vec![Instances::new(); rules.len()];
        for s in restored {
            if s.state.phase() == Phase::Inactive {
                continue;
            }
            if let Some(i) = rules.iter().position(|r| r.alert == s.alert) {
                insert_restored(&mut instances[i], s.labels, s.state);
            } else if let Some(i) = rules.iter().position(|r| {
                r.conditions.on_missing == OnMissing::Alert && nodata_name(&r.alert) == s.alert
            }) {
                insert_restored(&mut nodata[i], s.labels, s.state);
            }
        }
        let last_eval = vec![None; rules.len()];
        Engine {
            rules,
            instances,
            nodata,
            last_eval,
            generation: 0,
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
        self.generation += 1;
        let generation = self.generation;
        let rule = &self.rules[i];
        let map = &mut self.instances[i];
        let mut decide = |labels: &LabelSet, d| {
            out.push(notification(
                rule,
                &rule.alert,
                labels,
                &rule.conditions,
                d,
                host,
                now,
            ))
        };
        let mut yielded = false;
        rule.expr.for_each(store, now, |expr, value| {
            yielded = true;
            let labels = InstanceLabels {
                expr,
                rule: &rule.labels,
                host,
            };
            step_instance(
                map,
                labels,
                &rule.conditions,
                Some(value),
                generation,
                now,
                &mut decide,
            );
        });
        // Instances the expression no longer yields: absent data.
        for entry in map.values_mut().filter(|e| e.generation != generation) {
            if let Some(d) = state::step(&rule.conditions, &mut entry.state, None, now) {
                decide(&entry.labels, d);
            }
        }
        // Inactive instances carry nothing worth keeping.
        map.retain(|_, e| e.state.phase() != Phase::Inactive);
        if rule.conditions.on_missing == OnMissing::Alert {
            let conditions = nodata_conditions(&rule.conditions);
            let name = nodata_name(&rule.alert);
            let none = LabelSet::new();
            let labels = InstanceLabels {
                expr: OutputLabels::Set(&none),
                rule: &rule.labels,
                host,
            };
            let value = if yielded { 0.0 } else { 1.0 };
            let map = &mut self.nodata[i];
            let mut decide = |labels: &LabelSet, d| {
                out.push(notification(rule, &name, labels, &conditions, d, host, now))
            };
            step_instance(
                map,
                labels,
                &conditions,
                Some(value),
                generation,
                now,
                &mut decide,
            );
            map.retain(|_, e| e.state.phase() != Phase::Inactive);
        }
    }

    /// Every instance as (alert, labels, state), ordered by alert then labels.
    fn all(&self) -> Vec<(String, &LabelSet, &InstanceState)> {
        let mut all: Vec<_> = self
            .rules
            .iter()
            .zip(self.instances.iter().zip(&self.nodata))
            .flat_map(|(rule, (own, nodata))| {
                let name = nodata_name(&rule.alert);
                own.values()
                    .map(move |e| (rule.alert.clone(), &e.labels, &e.state))
                    .chain(
                        nodata
                            .values()
                            .map(move |e| (name.clone(), &e.labels, &e.state)),
                    )
            })
            .collect();
        all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        all
    }

    /// Every pending or firing instance, for persistence.
    pub fn snapshot(&self) -> Vec<StoredInstance> {
        self.all()
            .into_iter()
            .map(|(alert, labels, st)| StoredInstance {
                alert,
                labels: labels.clone(),
                state: st.clone(),
            })
            .collect()
    }

    /// Pending and firing instances, ordered by alert then labels.
    pub fn active(&self) -> Vec<ActiveAlert> {
        self.all()
            .into_iter()
            .map(|(alert, labels, st)| ActiveAlert {
                alert,
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
        self.firing()
            .map(|(_, _, s)| s)
            .max()
            .map_or(Health::Ok, |s| match s {
                Severity::Warning => Health::Warning,
                Severity::Critical => Health::Critical,
            })
    }

    /// Firing instances: (alert, labels, severity); NoData instances under their own name.
    pub fn firing(&self) -> impl Iterator<Item = (Cow<'_, str>, &LabelSet, Severity)> {
        self.rules
            .iter()
            .zip(self.instances.iter().zip(&self.nodata))
            .flat_map(|(rule, (own, nodata))| {
                let own = own
                    .values()
                    .map(move |e| (Cow::Borrowed(rule.alert.as_str()), &e.labels, &e.state));
                let nodata = nodata
                    .values()
                    .map(move |e| (Cow::Owned(nodata_name(&rule.alert)), &e.labels, &e.state));
                own.chain(nodata)
            })
            .filter_map(|(alert, labels, st)| {
                (st.phase() == Phase::Firing).then_some(())?;
                Some((alert, labels, st.severity()?))
            })
    }

    /// Instances of the rule named `alert` (and its NoData instance), ordered by labels.
    pub fn instances_of(&self, alert: &str) -> Vec<(&LabelSet, &InstanceState)> {
        let Some(i) = self.rules.iter().position(|r| r.alert == alert) else {
            return Vec::new();
        };
        let mut all: Vec<_> = self.instances[i]
            .values()
            .chain(self.nodata[i].values())
            .map(|e| (&e.labels, &e.state))
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
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
