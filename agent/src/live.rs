//! What the live stream (`GET /api/v1/stream`, the console's) needs from the running agent:
//! a signal that the store changed, a bound on the streams open at once, and a signal that
//! the server is stopping so open streams end at once instead of holding the shutdown.
//!
//! The signal is a generation counter in a `tokio::sync::watch`: every write to the store
//! bumps it ([`Live::changed`], from `State::store_mut`), and each stream waits for it to
//! move. A watch keeps only the latest generation, so a stream that is busy (or a client that
//! reads slowly) sees one change however many happened meanwhile: nothing queues up.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// Most live streams open at once; a stream over the bound is refused with 503.
pub const MAX_STREAMS: usize = 32;

/// The change signal, the stream slots and the closing signal.
#[derive(Debug)]
pub struct Live {
    changes: watch::Sender<u64>,
    slots: Arc<Semaphore>,
    closing: watch::Sender<bool>,
}

impl Default for Live {
    fn default() -> Self {
        Live::new(MAX_STREAMS)
    }
}

impl Live {
    /// A signal with room for `max_streams` streams.
    pub fn new(max_streams: usize) -> Self {
        Live {
            changes: watch::Sender::new(0),
            slots: Arc::new(Semaphore::new(max_streams)),
            closing: watch::Sender::new(false),
        }
    }

    /// Tells every stream that the store changed (cheap: no allocation, no wait).
    pub fn changed(&self) {
        self.changes.send_modify(|generation| {
            *generation = generation.wrapping_add(1);
        });
    }

    /// A receiver of the change signal, to wait on with `changed()`.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A slot for one more stream, held while it is open; `None` when all are taken.
    pub fn try_open(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Streams open now.
    pub fn open_streams(&self, max_streams: usize) -> usize {
        max_streams.saturating_sub(self.slots.available_permits())
    }

    /// Ends every open stream and refuses new ones (the server is stopping).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A receiver that turns true when the server stops.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Whether the server is stopping.
    pub fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_stream_sees_one_change_however_many_happened() {
        let live = Live::new(2);
        let mut rx = live.subscribe();
        for _ in 0..1000 {
            live.changed();
        }
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), 1000);
        assert!(!rx.has_changed().unwrap(), "coalesced into one");
    }

    #[test]
    fn slots_are_bounded_and_come_back() {
        let live = Live::new(2);
        let a = live.try_open().unwrap();
        let _b = live.try_open().unwrap();
        assert!(live.try_open().is_none());
        assert_eq!(live.open_streams(2), 2);
        drop(a);
        assert!(live.try_open().is_some());
    }
}
