//! Muting: silences, maintenance windows and inhibition, between the rule engine and
//! delivery.
//!
//! The engine evaluates every rule and decides every notification as always; the
//! [`Muter`] then holds back those of alerts that are muted *now*:
//! - **silenced**: a silence ([`silence`]) whose matchers match the alert is active;
//! - **in maintenance**: a maintenance window ([`MaintenanceWindow`]) covering now matches it;
//! - **inhibited**: an inhibition rule ([`inhibit`]) has a firing *source* alert that
//!   explains it (Redis down explains its hit ratio alert).
//!
//! A muted alert is still evaluated, listed by the API with why it is muted, and exported
//! (`lookout_alert_firing`); only its notifications wait. The rules of what waits:
//! - a firing notification (new, escalated, reminder) of a muted alert is **held**: the
//!   latest is kept, one per alert instance;
//! - once the alert is no longer muted and still fires, the held notification is
//!   **released** (sent as a new firing one) at the next evaluation: a silence that ends
//!   or is deleted, a window that closes, a source that resolves;
//! - a resolve is sent when the firing was delivered (a receiver is never left with an
//!   open alert), even while muted; an alert that fired and resolved while muted sends
//!   nothing at all.
//!
//! Everything here is a pure function of the notifications, the firing alerts and the
//! wall-clock time it is given, so the agent and `lookout test rules` run the same code.

pub mod config;
pub mod inhibit;
pub mod matchers;
pub mod silence;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use self::inhibit::InhibitRule;
use self::matchers::Matchers;
use self::silence::Silence;
use crate::rules::engine::{Notification, Status};
use crate::rules::model::Severity;
use crate::rules::state::Kind;
use crate::rules::{LabelSet, fingerprint};
use crate::store::Millis;

/// Why an alert is muted now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "lowercase")]
pub enum Reason {
    /// An active silence, by id.
    Silence {
        /// The silence's id.
        id: String,
    },
    /// A maintenance window covering now, by name.
    Maintenance {
        /// The window's name.
        name: String,
    },
    /// A firing alert that explains this one.
    Inhibition {
        /// The source alert's name.
        source: String,
    },
}

/// A recurring window during which matching alerts are not notified: from each time its
/// cron schedule is due (in its time zone), for `duration_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    /// Its name.
    pub name: String,
    /// The alerts it mutes.
    pub matchers: Matchers,
    /// When it opens.
    pub schedule: crate::schedule::Cron,
    /// How long it stays open (ms).
    pub duration_ms: Millis,
}

impl MaintenanceWindow {
    /// Whether the window is open at wall-clock `now` (ms): the last opening at or
    /// before `now` was less than `duration_ms` ago.
    pub fn covers(&self, now: Millis) -> bool {
        self.schedule
            .previous(now)
            .is_some_and(|opened| now < opened.saturating_add(self.duration_ms))
    }
}

/// A notification held back while its alert is muted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// The latest firing notification decided for the alert while muted.
    pub notification: Notification,
    /// Whether a firing notification of this alert was delivered before it was muted.
    pub delivered_before: bool,
}

/// What muting remembers across evaluations (and restarts: [`silence::MuteFile`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MuteState {
    /// Held notifications, by alert fingerprint.
    pub held: BTreeMap<String, Held>,
    /// Alerts whose firing notification was delivered and not yet resolved, by
    /// fingerprint, with the severity delivered last.
    pub delivered: BTreeMap<String, Severity>,
}

/// Silences, maintenance windows and inhibition rules, and what they hold back.
#[derive(Debug, Default)]
pub struct Muter {
    /// Silences of the configuration file (`notify.silences`).
    pub configured: Vec<Silence>,
    /// Silences created through the API, persisted.
    pub created: Vec<Silence>,
    /// Maintenance windows.
    pub windows: Vec<MaintenanceWindow>,
    /// Inhibition rules: the configuration's and the rules' own.
    pub inhibit: Vec<InhibitRule>,
    /// What is held and what was delivered.
    pub state: MuteState,
    /// Where [`silence::MuteFile`] is kept; `None`: nowhere (tests).
    pub data_dir: Option<std::path::PathBuf>,
}

/// A firing alert as inhibition sees it: name, labels, severity.
pub type FiringAlert<'a> = (&'a str, &'a LabelSet, Severity);

impl Muter {
    /// Why the alert `alert` with `labels` and `severity` is muted at wall-clock `now`
    /// (ms), given the alerts firing now; empty when it is not.
    pub fn reasons(
        &self,
        alert: &str,
        labels: &LabelSet,
        severity: Severity,
        firing: &[FiringAlert<'_>],
        now: Millis,
    ) -> Vec<Reason> {
        let sev = severity_str(severity);
        let mut out: Vec<Reason> = self
            .configured
            .iter()
            .chain(&self.created)
            .filter(|s| s.is_active(now) && s.compiled.matches(alert, labels, sev))
            .map(|s| Reason::Silence { id: s.id.clone() })
            .collect();
        out.extend(
            self.windows
                .iter()
                .filter(|w| w.matchers.matches(alert, labels, sev) && w.covers(now))
                .map(|w| Reason::Maintenance {
                    name: w.name.clone(),
                }),
        );
        let mut sources: Vec<&str> = self
            .inhibit
            .iter()
            .filter_map(|rule| rule.inhibited_by(alert, labels, sev, firing))
            .collect();
        sources.sort_unstable();
        sources.dedup();
        out.extend(sources.into_iter().map(|source| Reason::Inhibition {
            source: source.to_string(),
        }));
        out
    }

    /// The notifications of one evaluation that are sent now, in order: those of alerts
    /// not muted, the resolves of delivered alerts, and held notifications released
    /// because their alert is no longer muted and still fires. `firing` is every alert
    /// firing after the evaluation; `now` the wall-clock time (ms) silences and windows are
    /// judged at; `at` the evaluation's time on the notifications' own timeline, which a
    /// released notification takes.
    pub fn filter(
        &mut self,
        notifications: Vec<Notification>,
        firing: &[FiringAlert<'_>],
        now: Millis,
        at: Millis,
    ) -> Vec<Notification> {
        let mut out = Vec::with_capacity(notifications.len());
        for n in notifications {
            let fp = fingerprint(&n.alert, &n.labels);
            match n.status {
                Status::Firing => {
                    if self
                        .reasons(&n.alert, &n.labels, n.severity, firing, now)
                        .is_empty()
                    {
                        self.state.held.remove(&fp);
                        self.state.delivered.insert(fp, n.severity);
                        out.push(n);
                    } else {
                        let delivered_before = self.state.delivered.contains_key(&fp);
                        self.state.held.insert(
                            fp,
                            Held {
                                notification: n,
                                delivered_before,
                            },
                        );
                    }
                }
                Status::Resolved => {
                    let held = self.state.held.remove(&fp);
                    let delivered = self.state.delivered.remove(&fp).is_some();
                    // Never delivered (fired and resolved while muted): nothing to close.
                    if held.is_some_and(|h| !h.delivered_before) && !delivered {
                        continue;
                    }
                    out.push(n);
                }
            }
        }
        out.extend(self.release(firing, now, at));
        out
    }

    /// Held notifications whose alert fires and is no longer muted, as firing ones decided
    /// `now`; held ones of alerts that no longer fire (their rule was removed) are dropped.
    fn release(
        &mut self,
        firing: &[FiringAlert<'_>],
        now: Millis,
        at: Millis,
    ) -> Vec<Notification> {
        let firing_now: BTreeSet<String> = firing
            .iter()
            .map(|(alert, labels, _)| fingerprint(alert, labels))
            .collect();
        let mut released = Vec::new();
        let held = std::mem::take(&mut self.state.held);
        for (fp, h) in held {
            if !firing_now.contains(&fp) {
                continue;
            }
            let n = &h.notification;
            if !self
                .reasons(&n.alert, &n.labels, n.severity, firing, now)
                .is_empty()
            {
                self.state.held.insert(fp, h);
                continue;
            }
            let mut n = h.notification;
            match self.state.delivered.get(&fp).copied() {
                // The receiver knows it fires at this severity: a reminder held back is not
                // worth a page.
                Some(known) if known == n.severity => continue,
                // It knows an older severity: tell it the change.
                Some(known) => {
                    n.kind = if n.severity > known {
                        Kind::Escalated
                    } else {
                        Kind::DeEscalated
                    };
                    n.previous = Some(known);
                }
                None => {
                    n.kind = Kind::Firing;
                    n.previous = None;
                }
            }
            n.at = at;
            self.state.delivered.insert(fp, n.severity);
            released.push(n);
        }
        released
    }

    /// Takes the configuration's silences and inhibition rules, and the rules' own
    /// `inhibits` (at start and on every reload; created silences and what is held stay).
    pub fn configure(
        &mut self,
        silences: &[Silence],
        windows: &[MaintenanceWindow],
        inhibit: &[InhibitRule],
        rules: &[crate::rules::model::Rule],
    ) {
        self.configured = silences.to_vec();
        self.windows = windows.to_vec();
        self.inhibit = inhibit
            .iter()
            .chain(rules.iter().flat_map(|r| &r.inhibits))
            .cloned()
            .collect();
    }

    /// A copy of what [`silence::save`] writes, to write it off the lock.
    pub fn snapshot(&self) -> (Option<std::path::PathBuf>, Vec<Silence>, MuteState) {
        (
            self.data_dir.clone(),
            self.created.clone(),
            self.state.clone(),
        )
    }

    /// How many silences are pending, active and expired at `now`.
    pub fn counts(&self, now: Millis) -> [(silence::SilenceState, usize); 3] {
        use silence::SilenceState::{Active, Expired, Pending};
        let mut counts = [(Pending, 0), (Active, 0), (Expired, 0)];
        for s in self.silences() {
            let state = s.state(now);
            if let Some(c) = counts.iter_mut().find(|(st, _)| *st == state) {
                c.1 += 1;
            }
        }
        counts
    }

    /// Every silence, configured ones first.
    pub fn silences(&self) -> impl Iterator<Item = &Silence> {
        self.configured.iter().chain(&self.created)
    }
}

/// A severity as matchers see it.
pub fn severity_str(severity: Severity) -> &'static str {
    match severity {
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

#[cfg(test)]
mod tests;
