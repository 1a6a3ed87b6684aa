//! Grouping: notifications for one receiver decided within `group_wait` go out as one
//! message, so an incident that trips ten alerts at once pages once.
//!
//! Pure, with time passed in: [`Grouper::add`] starts or extends a receiver's batch,
//! [`Grouper::due`] hands out the batches whose wait is over. With `group_wait: 0s` every
//! batch is due at once (one message per evaluation and receiver).

use std::collections::BTreeMap;

use super::{AlertPayload, Message};
use crate::store::Millis;

/// Batches waiting for their `group_wait` to pass.
#[derive(Debug)]
pub struct Grouper {
    group_wait_ms: Millis,
    batches: BTreeMap<String, Batch>,
    seq: u64,
    instance: String,
}

#[derive(Debug)]
struct Batch {
    first_ms: Millis,
    alerts: Vec<AlertPayload>,
    test: bool,
}

impl Grouper {
    /// A grouper with the given wait. `instance` makes message ids unique across agent runs
    /// (a random tag chosen at start).
    pub fn new(group_wait_ms: Millis, instance: String) -> Self {
        Grouper {
            group_wait_ms,
            batches: BTreeMap::new(),
            seq: 0,
            instance,
        }
    }

    /// Adds `alert` to `receiver`'s batch (starting one at `now` if none is open). A test
    /// alert never shares a message with real ones.
    pub fn add(&mut self, receiver: &str, alert: AlertPayload, test: bool, now: Millis) {
        let key = if test {
            format!("{receiver}\u{0}test")
        } else {
            receiver.to_string()
        };
        let batch = self.batches.entry(key).or_insert_with(|| Batch {
            first_ms: now,
            alerts: Vec::new(),
            test,
        });
        batch.alerts.push(alert);
    }

    /// When the next batch is due, if any is open.
    pub fn next_due(&self) -> Option<Millis> {
        self.batches
            .values()
            .map(|b| b.first_ms + self.group_wait_ms)
            .min()
    }

    /// The messages whose wait is over at `now`.
    pub fn due(&mut self, now: Millis) -> Vec<Message> {
        let wait = self.group_wait_ms;
        let ready: Vec<String> = self
            .batches
            .iter()
            .filter(|(_, b)| b.first_ms + wait <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let batches: Vec<(String, Batch)> = ready
            .into_iter()
            .filter_map(|k| self.batches.remove(&k).map(|b| (k, b)))
            .collect();
        batches
            .into_iter()
            .map(|(key, batch)| self.message(&key, batch, now))
            .collect()
    }

    /// Every open batch, now (at shutdown: queued in the outbox rather than lost).
    pub fn flush(&mut self, now: Millis) -> Vec<Message> {
        let all = std::mem::take(&mut self.batches);
        all.into_iter()
            .map(|(key, batch)| self.message(&key, batch, now))
            .collect()
    }

    fn message(&mut self, key: &str, batch: Batch, now: Millis) -> Message {
        self.seq += 1;
        let receiver = key.split('\u{0}').next().unwrap_or(key).to_string();
        let mut names: Vec<&str> = batch.alerts.iter().map(|a| a.alert.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let group_key = format!(
            "{{}}/{{receiver=\"{receiver}\"}}:{{alertname=~\"{}\"}}",
            names.join("|")
        );
        Message {
            id: format!("{}-{}-{}", self.instance, now, self.seq),
            receiver,
            group_key,
            created_ms: now,
            alerts: batch.alerts,
            folded: 0,
            test: batch.test,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::LabelSet;
    use crate::rules::engine::Status;
    use crate::rules::model::Severity;
    use crate::rules::state::Kind;

    fn alert(name: &str) -> AlertPayload {
        AlertPayload {
            alert: name.into(),
            status: Status::Firing,
            kind: Kind::Firing,
            severity: Severity::Warning,
            labels: LabelSet::new(),
            annotations: Default::default(),
            value: Some(1.0),
            starts_at: 0,
            ends_at: None,
            fingerprint: name.into(),
        }
    }

    #[test]
    fn alerts_within_group_wait_go_out_as_one_message_per_receiver() {
        let mut g = Grouper::new(10_000, "run1".into());
        g.add("chat", alert("A"), false, 0);
        g.add("chat", alert("B"), false, 4_000);
        g.add("mail", alert("A"), false, 4_000);
        assert_eq!(g.next_due(), Some(10_000));
        assert!(g.due(9_999).is_empty(), "nothing before the wait is over");
        let chat = g.due(10_000);
        assert_eq!(chat.len(), 1);
        assert_eq!(
            (chat[0].receiver.as_str(), chat[0].alerts.len()),
            ("chat", 2)
        );
        assert_eq!(g.next_due(), Some(14_000));
        let mail = g.due(14_000);
        assert_eq!(
            (mail[0].receiver.as_str(), mail[0].alerts.len()),
            ("mail", 1)
        );
        assert_ne!(chat[0].id, mail[0].id, "ids are unique");
        assert!(g.next_due().is_none());
    }

    #[test]
    fn zero_wait_is_immediate_and_tests_never_mix_with_real_alerts() {
        let mut g = Grouper::new(0, "run1".into());
        g.add("chat", alert("A"), false, 5);
        g.add("chat", alert("Drill"), true, 5);
        let mut out = g.due(5);
        out.sort_by_key(|m| m.test);
        assert_eq!(out.len(), 2);
        assert!(!out[0].test && out[1].test);
        assert_eq!(out[1].receiver, "chat");
        g.add("chat", alert("C"), false, 7);
        assert_eq!(g.flush(7).len(), 1, "flush hands out open batches");
    }
}
