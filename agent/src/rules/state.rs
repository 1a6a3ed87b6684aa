//! The per-instance alert state machine: a pure function of (conditions, state, value, now)
//! that returns the notification decision, if any.
//!
//! [`step`] is called once per evaluation of an alert instance with the instance's current
//! value (`None` when the expression yielded nothing for its label set). It never reads a
//! clock or does I/O, so the same inputs always give the same decisions, and a state that
//! was persisted and restored (see [`super::persist`]) continues exactly where it stopped.
//!
//! Phases: `inactive -> pending -> firing(warning|critical) -> inactive` (the move back to
//! inactive is the `resolved` notification).
//!
//! # Rules
//!
//! "Breached" is [`Threshold::breached`] (entering a severity), "holds" is
//! [`Threshold::holds`] with the rule's hysteresis (staying in a severity, or in the alert,
//! once entered). An absent threshold (a rule with only `warning` or only `critical`) is
//! never breached and never holds.
//!
//! 1. **Target severity.** With a value `v`, the target is critical if `critical` is
//!    breached, else warning if `warning` is breached, else none. An instance that already
//!    holds a severity `S` (pending or firing at `S`) keeps `S` as long as `S`'s threshold
//!    holds; it stays in the alert at all as long as *any* threshold holds.
//! 2. **Pending.** Inactive with a target -> pending at the target, `active_since = now`.
//!    While pending, breaching critical raises the pending severity to critical (the pending
//!    start is kept); a pending critical whose critical no longer holds drops back to
//!    warning (no notification: nothing was sent yet). When no threshold holds any more the
//!    instance goes back to inactive without a decision (pending abandoned). Once
//!    `now - pending start >= for` it fires at the current severity: [`Kind::Firing`],
//!    `firing_since = now`. With `for = 0` it fires in the step that breached.
//! 3. **Escalation.** Firing at warning: critical starts a timer when breached; the timer
//!    keeps running while critical *holds* (the same enter-on-breach, stay-on-hold rule as
//!    pending, so a value wiggling inside critical's hysteresis band does escalate) and
//!    resets when critical stops holding. After `for` (at once if 0): [`Kind::Escalated`],
//!    `previous = warning`.
//! 4. **De-escalation.** Firing at critical, critical no longer holds but warning does: a
//!    timer starts; after `clear_for` (at once if 0): [`Kind::DeEscalated`],
//!    `previous = critical`. Critical holding again resets the timer. The timer measures how
//!    long *critical* has been clear, so a value passing from "nothing holds" to "warning
//!    holds" keeps its de-escalation progress.
//! 5. **Resolve.** Firing and no threshold holds: a timer starts; after `clear_for` (at once
//!    if 0): [`Kind::Resolved`] (severity = the severity it had), state inactive. Any
//!    threshold holding resets that timer. Resolve wins over de-escalation in the same step.
//! 6. **Repeat.** While firing and no other decision was made in the step, if
//!    `now - last_notified >= repeat_interval`: [`Kind::Repeat`]. `repeat_interval <= 0`
//!    disables repeats (it never means "every evaluation"). Every decision sets
//!    `last_notified = now`, so there is at most one repeat per interval and never one
//!    decision per evaluation. Repeats continue while `keep` holds a firing state through
//!    absent data (the alert *is* still firing as far as anyone knows), with `value: None`.
//! 7. **Absent value.** `resolve` policy: firing -> [`Kind::Resolved`] at once (value
//!    `None`), pending -> inactive without a decision. `keep` / `alert`: the state is held
//!    and its condition timers are frozen: a pending instance does not fire, a clearing
//!    instance does not resolve or de-escalate, an escalating one does not escalate. When
//!    data returns, every running condition timer (pending, escalation, de-escalation,
//!    resolve) is shifted forward by the length of the gap (from the first absent
//!    evaluation to the return), so only observed time counts towards `for` and
//!    `clear_for`. Once `now - last_seen >= stale_after` (last_seen = the last step with a
//!    value) it resolves like `resolve` does. `alert` behaves like `keep` here; its
//!    `<alert>NoData` instance is the engine's business.
//!    A NaN value (an undefined ratio) counts as absent.
//! 8. **Restart.** The state is plain data ([`Serialize`]/[`Deserialize`]), persisted and
//!    restored as is: a firing instance restored after a restart notifies again only when
//!    its repeat interval has passed since `last_notified`, and a resolve that happens after
//!    the restart is notified because the restored state is still firing. Time the agent
//!    was down is not a data gap (no step saw absent data), so it counts towards running
//!    `for`/`clear_for` timers: `for` progress is not lost by a restart.
//!
//! Timer values are exposed ([`InstanceState::active_since`],
//! [`InstanceState::clearing_since`], [`InstanceState::escalating_since`]) so the API and
//! notifications can show *why* a notification is delayed (a hidden delay reads as a lost
//! alert). Time arithmetic saturates, so a clock that jumps never panics; a clock that goes
//! backwards only delays transitions.

use serde::{Deserialize, Serialize};

use super::model::{Conditions, OnMissing, Severity, Threshold};
use crate::store::Millis;

/// Where an alert instance is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// No threshold breached (or the alert resolved).
    Inactive,
    /// A threshold is breached but not yet for `for`.
    Pending,
    /// Firing at a severity.
    Firing,
}

impl Phase {
    /// `inactive`, `pending` or `firing`, as it is serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Inactive => "inactive",
            Phase::Pending => "pending",
            Phase::Firing => "firing",
        }
    }
}

/// What a notification says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The alert started firing.
    Firing,
    /// Warning -> critical.
    Escalated,
    /// Critical -> warning.
    DeEscalated,
    /// Still firing, `repeat_interval` after the last notification.
    Repeat,
    /// The alert stopped firing.
    Resolved,
}

/// A notification to send, returned by [`step`].
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What happened.
    pub kind: Kind,
    /// The new severity; for [`Kind::Resolved`] the severity the alert had.
    pub severity: Severity,
    /// The severity before an escalation or de-escalation; `None` for the other kinds.
    pub previous: Option<Severity>,
    /// When the alert started firing.
    pub since: Millis,
    /// The value in this step; `None` when the decision was made on absent data.
    pub value: Option<f64>,
}

/// The persisted state of one alert instance. Construct with [`InstanceState::new`]; only
/// [`step`] changes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceState {
    /// Current phase.
    phase: Phase,
    /// Pending or firing severity; `None` when inactive.
    severity: Option<Severity>,
    /// When the current pending/firing episode began (never shifted).
    active_since: Option<Millis>,
    /// When the instance started firing.
    firing_since: Option<Millis>,
    /// Anchor of the `for` timer while pending (shifted past data gaps).
    pending_timer: Option<Millis>,
    /// Anchor of the escalation timer (firing warning, critical breached).
    escalate_timer: Option<Millis>,
    /// Anchor of the de-escalation timer (firing critical, critical not holding).
    below_timer: Option<Millis>,
    /// Anchor of the resolve timer (firing, no threshold holding).
    clear_timer: Option<Millis>,
    /// Last value seen.
    last_value: Option<f64>,
    /// Last step with a value.
    last_seen: Option<Millis>,
    /// First step of the current data gap, while the state is held through one.
    missing_since: Option<Millis>,
    /// Last decision.
    last_notified: Option<Millis>,
}

impl Default for InstanceState {
    fn default() -> Self {
        InstanceState {
            phase: Phase::Inactive,
            severity: None,
            active_since: None,
            firing_since: None,
            pending_timer: None,
            escalate_timer: None,
            below_timer: None,
            clear_timer: None,
            last_value: None,
            last_seen: None,
            missing_since: None,
            last_notified: None,
        }
    }
}

impl InstanceState {
    /// An inactive instance that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The firing or pending severity; `None` when inactive.
    pub fn severity(&self) -> Option<Severity> {
        self.severity
    }

    /// When the instance started firing; `None` unless firing.
    pub fn firing_since(&self) -> Option<Millis> {
        self.firing_since
    }

    /// When the current episode began: the pending start (equal to the firing start when
    /// `for` is 0); `None` when inactive.
    pub fn active_since(&self) -> Option<Millis> {
        self.active_since
    }

    /// The last value seen (kept through absent data).
    pub fn last_value(&self) -> Option<f64> {
        self.last_value
    }

    /// The last time a value was present.
    pub fn last_seen(&self) -> Option<Millis> {
        self.last_seen
    }

    /// The last time a decision (notification) was made.
    pub fn last_notified(&self) -> Option<Millis> {
        self.last_notified
    }

    /// While firing and clearing: since when the condition has been clear (the earlier of
    /// the resolve and de-escalation timers), to show why a resolve is not sent yet.
    pub fn clearing_since(&self) -> Option<Millis> {
        match (self.clear_timer, self.below_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// While firing at warning: since when critical has been breached (escalation pending).
    pub fn escalating_since(&self) -> Option<Millis> {
        self.escalate_timer
    }

    /// Whether the state is being held through absent data.
    pub fn data_missing(&self) -> bool {
        self.missing_since.is_some()
    }

    /// The same state with every time moved by `by` ms: from the agent's timeline to the wall
    /// clock before it is saved (see `crate::clock`), so the timers carry on across a restart
    /// whatever steps the wall clock took while the agent ran.
    pub fn shifted(mut self, by: Millis) -> Self {
        for t in [
            &mut self.active_since,
            &mut self.firing_since,
            &mut self.pending_timer,
            &mut self.escalate_timer,
            &mut self.below_timer,
            &mut self.clear_timer,
            &mut self.last_seen,
            &mut self.missing_since,
            &mut self.last_notified,
        ] {
            *t = t.map(|t| t.saturating_add(by));
        }
        self
    }

    fn reset_to_inactive(&mut self) {
        self.phase = Phase::Inactive;
        self.severity = None;
        self.active_since = None;
        self.firing_since = None;
        self.pending_timer = None;
        self.clear_condition_timers();
        self.missing_since = None;
    }

    fn clear_condition_timers(&mut self) {
        self.escalate_timer = None;
        self.below_timer = None;
        self.clear_timer = None;
    }

    /// Records a decision: every decision sets `last_notified`.
    fn decide(
        &mut self,
        kind: Kind,
        severity: Severity,
        previous: Option<Severity>,
        value: Option<f64>,
        now: Millis,
    ) -> Decision {
        self.last_notified = Some(now);
        Decision {
            kind,
            severity,
            previous,
            since: self.firing_since.unwrap_or(now),
            value,
        }
    }

    /// Moves a firing instance from the severity `from` to `to` (an escalation or a
    /// de-escalation, `kind`) on the value `value`.
    fn change_severity(
        &mut self,
        kind: Kind,
        from: Severity,
        to: Severity,
        value: f64,
        now: Millis,
    ) -> Decision {
        self.severity = Some(to);
        self.clear_condition_timers();
        self.decide(kind, to, Some(from), Some(value), now)
    }

    /// Resolves a firing instance (decision) or abandons a pending one (none).
    fn resolve(&mut self, value: Option<f64>, now: Millis) -> Option<Decision> {
        let decision = match (self.phase, self.severity) {
            (Phase::Firing, Some(sev)) => Some(self.decide(Kind::Resolved, sev, None, value, now)),
            _ => None,
        };
        self.reset_to_inactive();
        decision
    }
}

/// Whether a timer started at `since` has run for at least `duration` at `now`.
fn elapsed(since: Option<Millis>, duration: i64, now: Millis) -> bool {
    since.is_some_and(|t| now.saturating_sub(t) >= duration)
}

/// The evaluation of one value against the thresholds.
#[derive(Debug, Clone, Copy)]
struct Eval {
    crit_breached: bool,
    crit_holds: bool,
    warn_breached: bool,
    warn_holds: bool,
}

impl Eval {
    fn new(c: &Conditions, v: f64) -> Self {
        let breached = |t: Option<Threshold>| t.is_some_and(|t| t.breached(v));
        // A breach always holds, whatever the hysteresis.
        let holds =
            |t: Option<Threshold>| t.is_some_and(|t| t.breached(v) || t.holds(v, c.hysteresis));
        Eval {
            crit_breached: breached(c.critical),
            crit_holds: holds(c.critical),
            warn_breached: breached(c.warning),
            warn_holds: holds(c.warning),
        }
    }

    fn target(self) -> Option<Severity> {
        if self.crit_breached {
            Some(Severity::Critical)
        } else if self.warn_breached {
            Some(Severity::Warning)
        } else {
            None
        }
    }

    fn any_holds(self) -> bool {
        self.crit_holds || self.warn_holds
    }
}

/// Advances one alert instance by one evaluation and returns the notification to send, if
/// any. `value` is the instance's value at `now`, `None` when absent. See the module doc
/// for the rules.
pub fn step(
    c: &Conditions,
    state: &mut InstanceState,
    value: Option<f64>,
    now: Millis,
) -> Option<Decision> {
    // NaN is "undefined" (0/0 on an idle cache), not a value below every threshold: treating
    // it as one would resolve a firing alert and re-fire it on the next real value.
    match value.filter(|v| !v.is_nan()) {
        Some(v) => step_present(c, state, v, now),
        None => step_absent(c, state, now),
    }
}

fn step_absent(c: &Conditions, state: &mut InstanceState, now: Millis) -> Option<Decision> {
    if state.phase == Phase::Inactive {
        return None;
    }
    match c.on_missing {
        OnMissing::Resolve => state.resolve(None, now),
        OnMissing::Keep | OnMissing::Alert => {
            if state.missing_since.is_none() {
                state.missing_since = Some(now);
            }
            // An active instance has always seen a value; fall back to its start anyway.
            let seen = state.last_seen.or(state.active_since);
            if elapsed(seen, c.stale_after_ms, now) {
                return state.resolve(None, now);
            }
            repeat(c, state, None, now)
        }
    }
}

fn step_present(
    c: &Conditions,
    state: &mut InstanceState,
    v: f64,
    now: Millis,
) -> Option<Decision> {
    // Data is back after a held gap: the gap does not count towards any condition timer.
    if let Some(gap_start) = state.missing_since.take() {
        let gap = now.saturating_sub(gap_start).max(0);
        for timer in [
            &mut state.pending_timer,
            &mut state.escalate_timer,
            &mut state.below_timer,
            &mut state.clear_timer,
        ] {
            if let Some(t) = timer.as_mut() {
                *t = t.saturating_add(gap);
            }
        }
    }
    state.last_value = Some(v);
    state.last_seen = Some(now);
    let e = Eval::new(c, v);

    if state.phase == Phase::Inactive {
        let target = e.target()?;
        state.phase = Phase::Pending;
        state.severity = Some(target);
        state.active_since = Some(now);
        state.pending_timer = Some(now);
        // Falls through to the pending rules, so `for = 0` fires in this step.
    }

    match (state.phase, state.severity) {
        (Phase::Pending, Some(sev)) => step_pending(c, state, e, sev, v, now),
        (Phase::Firing, Some(sev)) => step_firing(c, state, e, sev, v, now),
        // Inactive was handled above; an active phase without a severity cannot be built by
        // `step`, but a hand-edited state file could hold one: start over.
        _ => {
            state.reset_to_inactive();
            None
        }
    }
}

fn step_pending(
    c: &Conditions,
    state: &mut InstanceState,
    e: Eval,
    sev: Severity,
    v: f64,
    now: Millis,
) -> Option<Decision> {
    if !e.any_holds() {
        state.reset_to_inactive();
        return None;
    }
    let sev = if e.crit_breached {
        Severity::Critical
    } else if sev == Severity::Critical && !e.crit_holds {
        Severity::Warning
    } else {
        sev
    };
    state.severity = Some(sev);
    if elapsed(state.pending_timer, c.for_ms, now) {
        state.phase = Phase::Firing;
        state.firing_since = Some(now);
        state.pending_timer = None;
        state.clear_condition_timers();
        return Some(state.decide(Kind::Firing, sev, None, Some(v), now));
    }
    None
}

fn step_firing(
    c: &Conditions,
    state: &mut InstanceState,
    e: Eval,
    sev: Severity,
    v: f64,
    now: Millis,
) -> Option<Decision> {
    // Resolve: no threshold holds for `clear_for`.
    if e.any_holds() {
        state.clear_timer = None;
    } else {
        state.clear_timer.get_or_insert(now);
        if elapsed(state.clear_timer, c.clear_for_ms, now) {
            return state.resolve(Some(v), now);
        }
    }

    match sev {
        Severity::Warning => {
            // Escalation: critical entered, then held, for `for`.
            if e.crit_holds && (state.escalate_timer.is_some() || e.crit_breached) {
                state.escalate_timer.get_or_insert(now);
                if elapsed(state.escalate_timer, c.for_ms, now) {
                    return Some(state.change_severity(
                        Kind::Escalated,
                        Severity::Warning,
                        Severity::Critical,
                        v,
                        now,
                    ));
                }
            } else {
                state.escalate_timer = None;
            }
        }
        Severity::Critical => {
            // De-escalation: critical clear for `clear_for` while warning holds.
            if e.crit_holds {
                state.below_timer = None;
            } else {
                state.below_timer.get_or_insert(now);
                if e.warn_holds && elapsed(state.below_timer, c.clear_for_ms, now) {
                    return Some(state.change_severity(
                        Kind::DeEscalated,
                        Severity::Critical,
                        Severity::Warning,
                        v,
                        now,
                    ));
                }
            }
        }
    }
    repeat(c, state, Some(v), now)
}

/// A reminder when firing and `repeat_interval` has passed since the last notification.
fn repeat(
    c: &Conditions,
    state: &mut InstanceState,
    value: Option<f64>,
    now: Millis,
) -> Option<Decision> {
    if c.repeat_interval_ms <= 0 || state.phase != Phase::Firing {
        return None;
    }
    let sev = state.severity?;
    let last = state.last_notified.or(state.firing_since);
    if last.is_none() || elapsed(last, c.repeat_interval_ms, now) {
        return Some(state.decide(Kind::Repeat, sev, None, value, now));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::model::Op;

    const fn secs(s: i64) -> Millis {
        s * 1000
    }

    /// warning > 0.70, critical > 0.85, everything else off; rows override what they test.
    fn base() -> Conditions {
        Conditions {
            warning: Some(Threshold {
                op: Op::Gt,
                value: 0.70,
            }),
            critical: Some(Threshold {
                op: Op::Gt,
                value: 0.85,
            }),
            for_ms: 0,
            hysteresis: 0.0,
            clear_for_ms: 0,
            on_missing: OnMissing::Keep,
            stale_after_ms: secs(300),
            repeat_interval_ms: secs(3600),
        }
    }

    fn with(f: impl FnOnce(&mut Conditions)) -> Conditions {
        let mut c = base();
        f(&mut c);
        c
    }

    use Kind::{DeEscalated, Escalated, Firing, Repeat, Resolved};
    use Severity::{Critical, Warning};

    /// One table row: conditions, `(seconds, value)` steps, expected `(seconds, kind,
    /// severity)` decisions, final phase and severity.
    struct Row {
        name: &'static str,
        c: Conditions,
        steps: Vec<(i64, Option<f64>)>,
        want: Vec<(i64, Kind, Severity)>,
        phase: Phase,
        severity: Option<Severity>,
    }

    /// The rows of [`rows`], each on a line after the comment saying what it shows:
    /// `name | conditions | steps | decisions | final phase [and severity]`.
    /// - Conditions change `base()`: `for=`, `clear_for=` and `repeat=` in seconds, `hyst=`,
    ///   `on_missing=`, and `warning=-` or `critical=-` for no such threshold; `-` is none.
    /// - Steps are `seconds:value`, the value `-` for no data, or `start/every:v,v,...` for a
    ///   value every `every` seconds from `start`, `v*n` standing for `n` times `v`.
    /// - Decisions are `seconds kind severity`, comma-separated; `-` is none.
    const TABLE: &str = r#"
    # for: breached at 0, still at 30, fires at 60 (>= for).
    pending then firing | for=60 | 0:0.75 30:0.75 60:0.75 | 60 firing warning | firing warning
    # for: a dip at 30 abandons pending silently; the new pending from 40 is 50 s old at 90.
    pending abandoned | for=60 | 0:0.75 30:0.5 40:0.75 90:0.75 | - | pending warning
    # for = 0 fires in the step that breaches.
    for 0 fires at once | - | 0:0.75 | 0 firing warning | firing warning
    # Rising to critical while pending keeps the pending start: fires critical at 60.
    pending rises to critical | for=60 | 0:0.75 30:0.9 60:0.9 | 60 firing critical | firing critical
    # Pending critical falling into the warning band fires warning, start kept.
    pending critical falls to warning | for=60 | 0:0.9 30:0.8 60:0.8 | 60 firing warning | firing warning
    # Pending survives a value inside the hysteresis band (0.68 > 0.65).
    pending held by hysteresis | for=60 hyst=0.05 | 0:0.72 30:0.68 60:0.72 | 60 firing warning | firing warning
    # Hysteresis: wiggling inside (0.65, 0.70] does not resolve; 0.64 (past the bound) does.
    hysteresis band then clear bound | hyst=0.05 | 0:0.72 10:0.68 20:0.72 30:0.66 40:0.64 | 0 firing warning, 40 resolved warning | inactive
    # clear_for: dips at 10 and 30 are reset by 20 and 40; clear from 50 resolves at 110.
    clear_for brief dips | clear_for=60 | 0:0.75 10:0.5 20:0.75 30:0.5 40:0.75 50:0.5 100:0.5 110:0.5 | 0 firing warning, 110 resolved warning | inactive
    # Escalation without for: at once.
    escalation immediate | - | 0:0.75 10:0.9 | 0 firing warning, 10 escalated critical | firing critical
    # Escalation with for 60: the dip at 110 resets it; critical from 120 escalates at 180.
    escalation with for | for=60 | 0:0.75 60:0.75 70:0.9 100:0.9 110:0.8 120:0.9 170:0.9 180:0.9 | 60 firing warning, 180 escalated critical | firing critical
    # Escalation timer, once started by a breach, is held by critical's hysteresis band.
    escalation held by hysteresis | for=30 hyst=0.05 | 0:0.75 30:0.75 40:0.9 50:0.84 70:0.86 | 30 firing warning, 70 escalated critical | firing critical
    # De-escalation after clear_for 30: critical at 20 resets the timer started at 10.
    de-escalation with clear_for | clear_for=30 | 0:0.9 10:0.8 20:0.9 30:0.8 50:0.8 60:0.8 | 0 firing critical, 60 deescalated warning | firing warning
    # De-escalation with clear_for 0: at once.
    de-escalation immediate | - | 0:0.9 10:0.8 | 0 firing critical, 10 deescalated warning | firing warning
    # Critical straight to nothing resolves (no de-escalation notice first).
    critical resolves directly | - | 0:0.9 10:0.1 | 0 firing critical, 10 resolved critical | inactive
    # Nothing holds at 10, warning at 20: resolve timer resets, critical clear since 10.
    de-escalation progress kept through clear | clear_for=30 | 0:0.9 10:0.1 20:0.75 40:0.75 | 0 firing critical, 40 deescalated warning | firing warning
    # Only a critical threshold: the warning band means resolved.
    critical only | warning=- | 0:0.9 10:0.8 | 0 firing critical, 10 resolved critical | inactive
    # Only a warning threshold: never escalates.
    warning only | critical=- | 0:0.99 10:0.99 | 0 firing warning | firing warning
    # keep: absent data holds firing until stale_after (300 s after last seen at 0).
    keep holds then stale resolves | - | 0:0.75 10:- 100:- 290:- 300:- | 0 firing warning, 300 resolved warning | inactive
    # keep: data back before stale: no notification at all.
    keep gap then data returns | - | 0:0.75 10:- 200:- 210:0.75 | 0 firing warning | firing warning
    # keep freezes the clear timer: clear 10..20 + 210..260 = 60 s of observed clear.
    keep freezes clear_for | clear_for=60 | 0:0.75 10:0.5 20:- 200:- 210:0.5 250:0.5 260:0.5 | 0 firing warning, 260 resolved warning | inactive
    # keep: absent data does not make a pending instance fire; 0..10 + 110..160 = 60 s.
    keep pending does not fire on absence | for=60 | 0:0.75 10:- 100:- 110:0.75 150:0.75 160:0.75 | 160 firing warning | firing warning
    # keep: a pending instance gone stale goes inactive silently.
    keep pending stale | for=60 | 0:0.75 10:- 300:- | - | inactive
    # resolve: absent data resolves a firing instance at once.
    resolve policy firing | on_missing=resolve | 0:0.75 10:- | 0 firing warning, 10 resolved warning | inactive
    # resolve: pending dropped at 10; a new pending from 20 is only 50 s old at 70.
    resolve policy pending | on_missing=resolve for=60 | 0:0.75 10:- 20:0.75 70:0.75 | - | pending warning
    # NaN is absent, not "below the threshold": keep holds the firing state.
    nan is absent | - | 0:0.75 10:nan 20:0.75 | 0 firing warning | firing warning
    # alert: per instance like keep.
    alert policy like keep | on_missing=alert | 0:0.75 10:- 290:- 300:- | 0 firing warning, 300 resolved warning | inactive
    # repeat 60 s, evaluated every 10 s for 130 s: exactly one repeat per interval.
    repeat once per interval | repeat=60 | 0/10:0.75*14 | 0 firing warning, 60 repeat warning, 120 repeat warning | firing warning
    # repeat_interval 0 disables repeats (never one per evaluation).
    repeat disabled | repeat=0 | 0/10:0.75*10 | 0 firing warning | firing warning
    # An escalation is a notification: the next repeat counts from it.
    repeat counts from escalation | repeat=60 | 0:0.75 30:0.9 60:0.9 90:0.9 | 0 firing warning, 30 escalated critical, 90 repeat critical | firing critical
    # A firing state held through a gap is still reminded (value None), then stale resolves.
    repeat while held | repeat=60 | 0:0.75 30:- 60:- 90:- 300:- | 0 firing warning, 60 repeat warning, 300 resolved warning | inactive
    # flapping across 0.70 inside the hysteresis band notifies once.
    flapping with hysteresis | hyst=0.05 | 0/10:0.71,0.69,0.72,0.68,0.71,0.69,0.73,0.67,0.71,0.69 | 0 firing warning | firing warning
    # flapping without hysteresis but with clear_for 30 notifies once.
    flapping with clear_for | clear_for=30 | 0/10:0.71,0.69,0.71,0.69,0.71,0.69,0.71,0.69,0.71,0.69 | 0 firing warning | firing warning
    # flapping with for 30 and no band never fires at all.
    flapping with for | for=30 | 0/10:0.71,0.69,0.71,0.69,0.71,0.69,0.71,0.69 | - | inactive
    # flapping across critical's line inside its band: one escalation, no de-escalation.
    flapping around critical | hyst=0.05 | 0/10:0.75,0.86,0.84,0.86,0.83,0.86,0.84 | 0 firing warning, 10 escalated critical | firing critical
    "#;

    /// A phase, kind, severity or on_missing policy by its serialized name.
    fn named<T: serde::de::DeserializeOwned>(name: &str) -> T {
        serde_json::from_value(serde_json::Value::from(name))
            .unwrap_or_else(|e| panic!("{name:?}: {e}"))
    }

    fn conditions(spec: &str) -> Conditions {
        let mut c = base();
        for change in spec.split_whitespace().filter(|s| *s != "-") {
            let (key, value) = change.split_once('=').unwrap();
            match key {
                "for" => c.for_ms = secs(value.parse().unwrap()),
                "clear_for" => c.clear_for_ms = secs(value.parse().unwrap()),
                "repeat" => c.repeat_interval_ms = secs(value.parse().unwrap()),
                "hyst" => c.hysteresis = value.parse().unwrap(),
                "on_missing" => c.on_missing = named(value),
                "warning" if value == "-" => c.warning = None,
                "critical" if value == "-" => c.critical = None,
                _ => panic!("unknown condition {change:?}"),
            }
        }
        c
    }

    fn steps(spec: &str) -> Vec<(i64, Option<f64>)> {
        let value = |v: &str| (v != "-").then(|| v.parse::<f64>().unwrap());
        let mut out = Vec::new();
        for step in spec.split_whitespace() {
            let (at, values) = step.split_once(':').unwrap();
            let Some((start, every)) = at.split_once('/') else {
                out.push((at.parse().unwrap(), value(values)));
                continue;
            };
            let (start, every): (i64, i64) = (start.parse().unwrap(), every.parse().unwrap());
            let values = values.split(',').flat_map(|v| match v.split_once('*') {
                Some((v, n)) => vec![v; n.parse().unwrap()],
                None => vec![v],
            });
            for (i, v) in values.enumerate() {
                out.push((start + every * i as i64, value(v)));
            }
        }
        out
    }

    fn decisions(spec: &str) -> Vec<(i64, Kind, Severity)> {
        spec.split(", ")
            .filter(|d| *d != "-")
            .map(|d| match d.split(' ').collect::<Vec<_>>()[..] {
                [at, kind, severity] => (at.parse().unwrap(), named(kind), named(severity)),
                _ => panic!("bad decision {d:?}"),
            })
            .collect()
    }

    fn rows() -> Vec<Row> {
        TABLE
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| match line.split(" | ").collect::<Vec<_>>()[..] {
                [name, c, s, want, end] => {
                    let (phase, severity) = match end.split_once(' ') {
                        Some((phase, severity)) => (named(phase), Some(named(severity))),
                        None => (named(end), None),
                    };
                    Row {
                        name,
                        c: conditions(c),
                        steps: steps(s),
                        want: decisions(want),
                        phase,
                        severity,
                    }
                }
                _ => panic!("bad row {line:?}"),
            })
            .collect()
    }

    /// Runs steps from `state`, returning each decision with the step time.
    fn run(
        c: &Conditions,
        state: &mut InstanceState,
        steps: &[(i64, Option<f64>)],
    ) -> Vec<(Millis, Decision)> {
        let mut out = Vec::new();
        for &(t, v) in steps {
            if let Some(d) = step(c, state, v, secs(t)) {
                out.push((secs(t), d));
            }
        }
        out
    }

    #[test]
    fn table() {
        for r in rows() {
            let mut state = InstanceState::new();
            let got: Vec<(i64, Kind, Severity)> = run(&r.c, &mut state, &r.steps)
                .into_iter()
                .map(|(t, d)| (t / 1000, d.kind, d.severity))
                .collect();
            assert_eq!(got, r.want, "{}: decisions", r.name);
            assert_eq!(state.phase(), r.phase, "{}: final phase", r.name);
            assert_eq!(state.severity(), r.severity, "{}: final severity", r.name);
        }
    }

    /// serialize the state after every step of every row, restore it with serde_json
    /// and continue: the decisions and the final state are the same as without a restart.
    #[test]
    fn restart_at_every_step_of_every_row() {
        let mut seen_phases = Vec::new();
        for r in rows() {
            let mut straight = InstanceState::new();
            let want = run(&r.c, &mut straight, &r.steps);
            for k in 0..=r.steps.len() {
                let (before, after) = r.steps.split_at(k);
                let mut state = InstanceState::new();
                let mut got = run(&r.c, &mut state, before);
                seen_phases.push((state.phase(), state.data_missing()));
                let json = serde_json::to_string(&state).unwrap();
                let mut restored: InstanceState = serde_json::from_str(&json).unwrap();
                assert_eq!(restored, state, "{} split {k}: round trip", r.name);
                got.extend(run(&r.c, &mut restored, after));
                assert_eq!(got, want, "{} split {k}: decisions", r.name);
                assert_eq!(restored, straight, "{} split {k}: final state", r.name);
            }
        }
        // The splits cover a restart in each state.
        for s in [
            (Phase::Inactive, false),
            (Phase::Pending, false),
            (Phase::Pending, true),
            (Phase::Firing, false),
            (Phase::Firing, true),
        ] {
            assert!(seen_phases.contains(&s), "no restart in {s:?}");
        }
    }

    /// a firing instance restored after a restart does not notify again before its
    /// repeat interval, and a resolve after the restart is notified.
    #[test]
    fn restart_firing_neither_renotifies_nor_loses_resolve() {
        let c = with(|c| c.repeat_interval_ms = secs(3600));
        let mut state = InstanceState::new();
        assert_eq!(
            step(&c, &mut state, Some(0.9), secs(0)).map(|d| d.kind),
            Some(Firing)
        );
        let json = serde_json::to_string(&state).unwrap();
        assert!(json.contains(r#""phase":"firing""#), "{json}");
        assert!(json.contains(r#""last_notified":0"#), "{json}");

        // First evaluation after a restart 10 minutes later: nothing.
        let mut restored: InstanceState = serde_json::from_str(&json).unwrap();
        assert_eq!(step(&c, &mut restored, Some(0.9), secs(600)), None);
        assert_eq!(step(&c, &mut restored, Some(0.9), secs(3599)), None);
        assert_eq!(
            step(&c, &mut restored, Some(0.9), secs(3600)).map(|d| d.kind),
            Some(Repeat)
        );

        // Resolved after a restart: notified, with the original firing start.
        let mut restored: InstanceState = serde_json::from_str(&json).unwrap();
        let d = step(&c, &mut restored, Some(0.1), secs(600));
        assert_eq!(
            d,
            Some(Decision {
                kind: Resolved,
                severity: Critical,
                previous: None,
                since: 0,
                value: Some(0.1),
            })
        );
    }

    #[test]
    fn decisions_carry_previous_since_and_value() {
        let c = with(|c| c.for_ms = secs(60));
        let mut s = InstanceState::new();
        assert_eq!(step(&c, &mut s, Some(0.75), secs(0)), None);
        assert_eq!(s.active_since(), Some(0));
        assert_eq!(s.firing_since(), None);
        let fired = step(&c, &mut s, Some(0.75), secs(60));
        assert_eq!(
            fired,
            Some(Decision {
                kind: Firing,
                severity: Warning,
                previous: None,
                since: secs(60),
                value: Some(0.75)
            })
        );
        assert_eq!(s.active_since(), Some(0), "episode start kept");
        assert_eq!(step(&c, &mut s, Some(0.9), secs(70)), None);
        assert_eq!(s.escalating_since(), Some(secs(70)));
        let esc = step(&c, &mut s, Some(0.9), secs(130));
        assert_eq!(
            esc,
            Some(Decision {
                kind: Escalated,
                severity: Critical,
                previous: Some(Warning),
                since: secs(60),
                value: Some(0.9),
            })
        );
        assert_eq!(s.last_notified(), Some(secs(130)));
        let de = step(&c, &mut s, Some(0.8), secs(140));
        assert_eq!(
            de.map(|d| (d.kind, d.previous)),
            Some((DeEscalated, Some(Critical)))
        );
        assert_eq!(step(&c, &mut s, None, secs(150)), None);
        assert!(s.data_missing());
        assert_eq!(s.last_value(), Some(0.8));
        assert_eq!(s.last_seen(), Some(secs(140)));
    }

    /// The clear timer is visible while a resolve waits for clear_for.
    #[test]
    fn clearing_since_exposes_the_delay() {
        let c = with(|c| c.clear_for_ms = secs(60));
        let mut s = InstanceState::new();
        step(&c, &mut s, Some(0.9), 0);
        assert_eq!(s.clearing_since(), None);
        step(&c, &mut s, Some(0.1), secs(10));
        assert_eq!(s.clearing_since(), Some(secs(10)));
        step(&c, &mut s, Some(0.9), secs(20));
        assert_eq!(s.clearing_since(), None);
    }

    /// Threshold operators other than `>`: a "below" rule (cache hit ratio < 0.8) with
    /// hysteresis clears only past 0.85.
    #[test]
    fn below_threshold_with_hysteresis() {
        let c = Conditions {
            warning: Some(Threshold {
                op: Op::Lt,
                value: 0.80,
            }),
            critical: None,
            hysteresis: 0.05,
            ..base()
        };
        let mut s = InstanceState::new();
        let kinds: Vec<Option<Kind>> = [0.79, 0.83, 0.84, 0.86]
            .iter()
            .enumerate()
            .map(|(i, v)| step(&c, &mut s, Some(*v), secs(i as i64 * 10)).map(|d| d.kind))
            .collect();
        assert_eq!(kinds, vec![Some(Firing), None, None, Some(Resolved)]);
    }

    /// An old or hand-written state file with missing fields still loads.
    #[test]
    fn state_deserializes_with_missing_fields() {
        let s: InstanceState =
            serde_json::from_str(r#"{"phase":"pending","severity":"warning"}"#).unwrap();
        assert_eq!(s.phase(), Phase::Pending);
        let mut s: InstanceState = serde_json::from_str(r#"{"phase":"firing"}"#).unwrap();
        // A firing phase without a severity cannot be continued: it starts over.
        assert_eq!(step(&base(), &mut s, Some(0.1), 0), None);
        assert_eq!(s.phase(), Phase::Inactive);
    }
}
