//! Messages the outbox could not write yet (the disk is full or read-only), kept in memory
//! until it can, oldest first.
//!
//! Bounded: up to [`MAX_HELD`] messages are kept as they are. Past that, a new message is
//! folded into the newest held message of the same receiver and kind (fire drill or not), the
//! way the rate limit folds a backlog into a digest: its alerts are added, `folded` counts
//! it, and an alert already in the digest with the same fingerprint and status is replaced
//! by its newer notification instead of being listed twice. Nothing is dropped, and memory
//! stays bounded: at most [`MAX_HELD`] messages plus, per receiver, one alert digest and one
//! fire-drill digest started past the bound, each listing at most two entries (firing and
//! resolved) per alert instance.

use std::collections::VecDeque;

use super::Message;
use crate::store::Millis;

/// Messages kept as they are before new ones are folded into digests.
pub const MAX_HELD: usize = 1000;

/// The messages waiting to be written, each with the time it was handed over.
#[derive(Debug, Default)]
pub struct Held {
    items: VecDeque<(Message, Millis)>,
}

impl Held {
    /// How many messages are held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// When the oldest held message was handed over.
    pub fn oldest(&self) -> Option<Millis> {
        self.items.iter().map(|(_, at)| *at).min()
    }

    /// The held messages with the time each was handed over, oldest first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &(Message, Millis)> {
        self.items.iter()
    }

    /// Forgets every held message (they have been written).
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Holds `message`, handed over at `now`. Past [`MAX_HELD`] it is folded into the newest
    /// held message of its receiver and kind when there is one; returns whether it was.
    pub fn push(&mut self, message: Message, now: Millis) -> bool {
        if self.items.len() >= MAX_HELD
            && let Some((digest, _)) = self
                .items
                .iter_mut()
                .rev()
                .find(|(m, _)| m.receiver == message.receiver && m.test == message.test)
        {
            fold(digest, message);
            return true;
        }
        self.items.push_back((message, now));
        false
    }
}

/// Merges `message` into `digest`: its alerts replace those of the same fingerprint and status
/// (in place) or are appended; `folded` counts it and what it had folded itself.
fn fold(digest: &mut Message, message: Message) {
    digest.folded = digest
        .folded
        .saturating_add(message.folded)
        .saturating_add(1);
    for alert in message.alerts {
        match digest
            .alerts
            .iter_mut()
            .find(|a| a.fingerprint == alert.fingerprint && a.status == alert.status)
        {
            Some(earlier) => *earlier = alert,
            None => digest.alerts.push(alert),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::AlertPayload;
    use crate::rules::engine::Status;
    use crate::rules::model::Severity;
    use crate::rules::state::Kind;

    fn alert(fingerprint: &str, status: Status, value: f64) -> AlertPayload {
        AlertPayload {
            alert: format!("A{fingerprint}"),
            status,
            kind: Kind::Firing,
            severity: Severity::Warning,
            labels: Default::default(),
            annotations: Default::default(),
            value: Some(value),
            starts_at: 0,
            ends_at: None,
            fingerprint: fingerprint.to_string(),
        }
    }

    fn msg(id: &str, receiver: &str, test: bool, alerts: Vec<AlertPayload>) -> Message {
        Message {
            id: id.to_string(),
            receiver: receiver.to_string(),
            group_key: String::new(),
            created_ms: 0,
            alerts,
            folded: 0,
            test,
        }
    }

    #[test]
    fn below_the_bound_every_message_is_kept_as_it_is() {
        let mut held = Held::default();
        for i in 0..MAX_HELD {
            let m = msg(
                &format!("m{i}"),
                "hook",
                false,
                vec![alert("f", Status::Firing, 1.0)],
            );
            assert!(!held.push(m, i64::try_from(i).unwrap() + 10));
        }
        assert_eq!(held.len(), MAX_HELD);
        assert_eq!(held.oldest(), Some(10));
        let first = held.iter().next().unwrap();
        assert_eq!((first.0.id.as_str(), first.1), ("m0", 10));
        held.clear();
        assert!(held.is_empty());
        assert_eq!(held.oldest(), None);
    }

    #[test]
    fn past_the_bound_messages_fold_into_the_newest_of_their_receiver_and_kind() {
        let mut held = Held::default();
        for i in 0..MAX_HELD - 2 {
            held.push(msg(&format!("h{i}"), "hook", false, Vec::new()), 0);
        }
        held.push(
            msg("m0", "mail", false, vec![alert("x", Status::Firing, 1.0)]),
            0,
        );
        held.push(
            msg(
                "h-last",
                "hook",
                false,
                vec![alert("a", Status::Firing, 1.0)],
            ),
            0,
        );
        assert_eq!(held.len(), MAX_HELD);
        // (message, folded?, held count after)
        let rows = [
            // the same alert firing again: replaces the digest's entry, not listed twice
            (
                msg("n1", "hook", false, vec![alert("a", Status::Firing, 2.0)]),
                true,
                MAX_HELD,
            ),
            // its resolve: a different status, listed beside it
            (
                msg("n2", "hook", false, vec![alert("a", Status::Resolved, 0.0)]),
                true,
                MAX_HELD,
            ),
            // another alert: appended
            (
                msg("n3", "hook", false, vec![alert("b", Status::Firing, 5.0)]),
                true,
                MAX_HELD,
            ),
            // mail's newest message is further back: found there
            (
                msg("n4", "mail", false, vec![alert("y", Status::Firing, 1.0)]),
                true,
                MAX_HELD,
            ),
            // no fire drill held for hook yet: kept beyond the bound, the next one folds in
            (msg("t1", "hook", true, Vec::new()), false, MAX_HELD + 1),
            (msg("t2", "hook", true, Vec::new()), true, MAX_HELD + 1),
            // a receiver with nothing held: kept beyond the bound too
            (msg("p1", "pager", false, Vec::new()), false, MAX_HELD + 2),
        ];
        for (i, (m, folded, len)) in rows.into_iter().enumerate() {
            assert_eq!(held.push(m, 0), folded, "row {i}");
            assert_eq!(held.len(), len, "row {i}");
        }
        let find = |id: &str| held.iter().find(|(m, _)| m.id == id).unwrap().0.clone();
        let digest = find("h-last");
        let entries: Vec<(&str, Status, Option<f64>)> = digest
            .alerts
            .iter()
            .map(|a| (a.fingerprint.as_str(), a.status, a.value))
            .collect();
        assert_eq!(
            entries,
            [
                ("a", Status::Firing, Some(2.0)),
                ("a", Status::Resolved, Some(0.0)),
                ("b", Status::Firing, Some(5.0)),
            ]
        );
        assert_eq!(digest.folded, 3);
        assert_eq!(find("m0").alerts.len(), 2);
        assert_eq!((find("t1").folded, find("m0").folded), (1, 1));
    }
}
