//! The rule engine: evaluates rules over the store and decides notifications.
//!
//! [`Engine::evaluate`] is a pure function of (rules, store, instance states, now): for each
//! rule due at `now` it evaluates the expression, steps every instance (one per label set)
//! through [`state::step`], and returns the notifications decided. The agent's rules task
//! and `lookout test rules` drive the same code, one with the wall clock, the other with a
//! simulated one. Nothing here sends anything: delivery takes the returned notifications.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use std::hash::{Hash, Hasher};

use super::LabelSet;
use super::expr::{OutputLabels, SeriesIndex};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The alert is firing (new, escalated, de-escalated or a reminder).
    Firing,
    /// The alert has resolved.
    Resolved,
}

/// One notification decided by an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Recent notifications, oldest first, each with its sequence number (one more than the
    /// previous entry's: a stable key for paging).
    history: VecDeque<(u64, HistoryEntry)>,
    /// Whether anything worth persisting changed since [`Engine::take_dirty`].
    dirty: bool,
}

/// What persistence cares about in a state: phase, severity, last notification.
fn persisted_view(st: &InstanceState) -> (Phase, Option<Severity>, Option<Millis>) {
    (st.phase(), st.severity(), st.last_notified())
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
#[allow(clippy::too_many_arguments)]
fn step_instance(
    dirty: &mut bool,
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
                let before = persisted_view(&entry.state);
                if let Some(d) = state::step(conditions, &mut entry.state, value, now) {
                    decide(&entry.labels, d);
                }
                *dirty |= persisted_view(&entry.state) != before;
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
                *dirty = true;
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
            dirty: false,
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
        let mut index = SeriesIndex::default();
        for i in 0..self.rules.len() {
            let interval_ms = i64::try_from(self.rules[i].interval.as_millis()).unwrap_or(i64::MAX);
            // Due when a full interval has passed; 5% slack absorbs timer jitter.
            let due =
                self.last_eval[i].is_none_or(|last| now - last >= interval_ms - interval_ms / 20);
            if due {
                self.last_eval[i] = Some(now);
                self.evaluate_rule(i, store, &mut index, host, now, &mut out);
            }
        }
        for n in &out {
            if self.history.len() >= HISTORY_LIMIT {
                self.history.pop_front();
            }
            let seq = self
                .history
                .back()
                .map_or(0, |(seq, _)| seq.wrapping_add(1));
            self.history.push_back((seq, n.clone()));
        }
        out
    }

    fn evaluate_rule<'s>(
        &mut self,
        i: usize,
        store: &'s Store,
        index: &mut SeriesIndex<'s>,
        host: &str,
        now: Millis,
        out: &mut Vec<Notification>,
    ) {
        self.generation += 1;
        let generation = self.generation;
        let rule = &self.rules[i];
        let dirty = &mut self.dirty;
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
        rule.expr
            .for_each_indexed(store, Some(index), now, |expr, value| {
                yielded = true;
                let labels = InstanceLabels {
                    expr,
                    rule: &rule.labels,
                    host,
                };
                step_instance(
                    dirty,
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
            let before = persisted_view(&entry.state);
            if let Some(d) = state::step(&rule.conditions, &mut entry.state, None, now) {
                decide(&entry.labels, d);
            }
            *dirty |= persisted_view(&entry.state) != before;
        }
        // Inactive instances carry nothing worth keeping (the step that made them inactive
        // already set `dirty`).
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
                dirty,
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

    /// Whether an instance appeared, went away, or changed phase, severity or last
    /// notification since the last call; clears the flag. The caller saves states when true.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Asks for the next [`Engine::take_dirty`] to say true (a save failed; retry it).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
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
        self.history
            .iter()
            .rev()
            .take(n)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The kept notifications, newest first, each with its sequence number (larger is
    /// newer; stable while the entry is kept).
    pub fn history_numbered(&self) -> impl Iterator<Item = (u64, &HistoryEntry)> {
        self.history.iter().rev().map(|(seq, e)| (*seq, e))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::catalogue::LOAD1;
    use crate::collect::Sample;
    use crate::rules::load::{Defaults, parse_file};
    use crate::store::fs_usage as fs;

    fn engine(yaml: &str) -> Engine {
        let defaults = Defaults {
            evaluation_interval: Duration::from_secs(10),
            stale_after: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(3600),
        };
        let mut problems = Vec::new();
        let rules = parse_file(yaml, "t.yaml", &defaults, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        Engine::new(rules, Vec::new())
    }

    const FS_RULE: &str = "groups:\n  - name: g\n    rules:\n      - alert: Full\n        expr: lookout_filesystem_usage_ratio\n        warning: \"> 80%\"\n        labels: {team: infra}\n";

    #[test]
    fn one_instance_per_label_set_with_rule_labels_and_host() {
        let mut e = engine(FS_RULE);
        let mut store = Store::default();
        store.apply(
            "filesystem",
            vec![fs("/", 0.9), fs("/data", 0.95), fs("/boot", 0.1)],
            0,
        );
        let n = e.evaluate(&store, "web-1", 0);
        // Two breaching mounts fire (for: 0); the healthy one leaves no instance behind.
        assert_eq!(n.len(), 2);
        let mounts: Vec<&str> = n.iter().map(|n| n.labels["mountpoint"].as_str()).collect();
        assert_eq!(mounts, ["/", "/data"]);
        assert!(
            n.iter()
                .all(|n| n.labels["host"] == "web-1" && n.labels["team"] == "infra")
        );
        assert_eq!(e.active().len(), 2);
        assert!(e.take_dirty(), "new instances must be saved");
        // The same values again: no notification, nothing to save.
        assert!(e.evaluate(&store, "web-1", 10_000).is_empty());
        assert!(
            !e.take_dirty(),
            "an unchanged tick must not rewrite the state file"
        );
        // /data clears: resolved, and the state changed.
        store.apply(
            "filesystem",
            vec![fs("/", 0.9), fs("/data", 0.5), fs("/boot", 0.1)],
            20_000,
        );
        let n = e.evaluate(&store, "web-1", 20_000);
        assert_eq!(
            (n.len(), n[0].status, n[0].labels["mountpoint"].as_str()),
            (1, Status::Resolved, "/data")
        );
        assert!(e.take_dirty());
        assert_eq!(e.active().len(), 1);
    }

    #[test]
    fn no_data_fires_its_own_alert_and_resolves_when_data_returns() {
        let mut e = engine(
            "groups:\n  - name: g\n    rules:\n      - alert: Load\n        expr: lookout_load1\n        warning: \"> 100\"\n        on_missing: alert\n        for: 20s\n",
        );
        let mut store = Store::default();
        assert!(
            e.evaluate(&store, "h", 0).is_empty(),
            "pending for 20s first"
        );
        assert!(e.evaluate(&store, "h", 10_000).is_empty());
        let n = e.evaluate(&store, "h", 20_000);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].alert, "LoadNoData");
        assert_eq!(n[0].status, Status::Firing);
        assert!(n[0].summary.contains("no data"), "{}", n[0].summary);
        assert_eq!(
            e.firing()
                .map(|(a, _, _)| a.into_owned())
                .collect::<Vec<_>>(),
            ["LoadNoData"]
        );
        store.apply("load", vec![Sample::new(&LOAD1, 1.0)], 30_000);
        let n = e.evaluate(&store, "h", 30_000);
        assert_eq!(
            (n.len(), n[0].alert.as_str(), n[0].status),
            (1, "LoadNoData", Status::Resolved)
        );
    }

    #[test]
    fn a_restored_engine_continues_without_notifying_again() {
        let mut e = engine(FS_RULE);
        let mut store = Store::default();
        store.apply("filesystem", vec![fs("/", 0.9)], 0);
        assert_eq!(e.evaluate(&store, "h", 0).len(), 1);
        let snapshot = e.snapshot();
        let mut restarted = Engine::new(e.rules().to_vec(), snapshot);
        assert_eq!(restarted.active().len(), 1);
        assert!(
            restarted.evaluate(&store, "h", 10_000).is_empty(),
            "no second firing notification"
        );
        store.apply("filesystem", vec![fs("/", 0.1)], 20_000);
        let n = restarted.evaluate(&store, "h", 20_000);
        assert_eq!(
            (n.len(), n[0].status),
            (1, Status::Resolved),
            "the resolve is not lost"
        );
    }

    #[test]
    fn label_sets_with_the_same_fingerprint_keep_separate_states() {
        let mut e = engine(FS_RULE);
        let mut store = Store::default();
        store.apply("filesystem", vec![fs("/", 0.9)], 0);
        // Plant a different instance at the fingerprint "/" will use, as a collision would.
        let rule_labels = e.rules()[0].labels.clone();
        let series = [
            ("mountpoint", "/".to_string()),
            ("device", "/dev/vda".into()),
            ("fstype", "ext4".into()),
        ];
        let fp = InstanceLabels {
            expr: OutputLabels::Series(&series),
            rule: &rule_labels,
            host: "h",
        }
        .fingerprint();
        let other = LabelSet::from([("mountpoint".to_string(), "/elsewhere".to_string())]);
        let mut planted = InstanceState::default();
        let firing = Conditions {
            warning: Some(Threshold {
                op: Op::Gt,
                value: 0.0,
            }),
            ..e.rules()[0].conditions
        };
        state::step(&firing, &mut planted, Some(1.0), 0);
        e.instances[0].insert(
            fp,
            Entry {
                labels: other.clone(),
                state: planted,
                generation: 0,
            },
        );
        let n = e.evaluate(&store, "h", 0);
        // "/" fired as its own instance; the planted one went absent instead of being merged.
        assert!(
            n.iter()
                .any(|n| n.labels["mountpoint"] == "/" && n.status == Status::Firing),
            "{n:?}"
        );
        assert!(
            e.active().iter().any(|a| a.labels == other),
            "{:?}",
            e.active()
        );
        assert_eq!(e.active().len(), 2);
    }
}
