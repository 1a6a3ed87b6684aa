//! The outbox when things go wrong: a disk that refuses writes, a file that cannot be read.
//!
//! # When the disk refuses writes
//!
//! A full or read-only `data_dir` must not lose what the rules decided, nor stop anything
//! else. [`Outbox::enqueue_or_hold`] (what the dispatcher uses) keeps the messages it cannot
//! write in memory ([`crate::notify::held`], bounded), oldest first, and [`Outbox::flush_held`]
//! writes them out, in order and in one commit, once the disk accepts writes again: only then
//! are they sent, so "written before any send" still holds. Every failed write counts in
//! [`Outbox::write_errors`], and [`Outbox::health`] says what is wrong while it is (for
//! `/readyz`).
//!
//! After an I/O error redb refuses every further operation on the open database, so the
//! outbox closes it (releasing the file) and the next operation opens it again: that is how
//! it recovers once the disk is freed or writable again. The file lock is released while it
//! is closed.
//!
//! # A file that cannot be read
//!
//! At start-up, [`Outbox::open_or_quarantine`] moves a file that is not a readable outbox
//! (not a redb file, torn, an unknown layout, a record that does not decode) aside to
//! `outbox.redb.corrupt-<unix seconds>` ([`crate::quarantine`]), logs why, and starts with an
//! empty one. A file locked by another running agent is not corrupt: that is
//! [`OutboxError::Locked`], and the agent refuses to start.

use std::path::Path;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use super::{Outbox, OutboxError, Stats};
use crate::notify::Message;
use crate::store::Millis;

/// What became of messages handed to [`Outbox::enqueue_or_hold`].
#[derive(Debug)]
pub enum Hold {
    /// Written (with any held before them): these receivers have new messages.
    Written {
        /// Receivers to wake.
        receivers: Vec<String>,
    },
    /// Kept in memory: the disk refused the write.
    Held {
        /// Why.
        error: OutboxError,
        /// The receiver of each message folded into a held digest (past the bound).
        folded: Vec<String>,
    },
}

/// [`Outbox::open`], then every record read to be sure the file is readable, with a panic of
/// redb (which some damaged pages cause) turned into [`OutboxError::Corrupt`].
fn open_checked(path: &Path) -> Result<Outbox, OutboxError> {
    let attempt = std::panic::catch_unwind(|| {
        let outbox = Outbox::open(path)?;
        outbox.pending()?;
        outbox.dead(usize::MAX)?;
        Ok(outbox)
    });
    attempt.unwrap_or_else(|panic| {
        let detail = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".to_string());
        Err(OutboxError::Corrupt {
            path: path.to_path_buf(),
            operation: "open",
            key: "(file)".to_string(),
            detail: format!("reading it made the storage library fail: {detail}"),
        })
    })
}

impl OutboxError {
    /// Whether the file's content is unusable (as opposed to the file being unreachable or
    /// locked): what [`Outbox::open_or_quarantine`] moves aside.
    fn is_bad_content(&self) -> bool {
        match self {
            OutboxError::Corrupt { .. } | OutboxError::Schema { .. } => true,
            OutboxError::Storage { source, .. } => match source.as_ref() {
                redb::Error::Corrupted(_) | redb::Error::UpgradeRequired(_) => true,
                redb::Error::Io(e) => e.kind() == std::io::ErrorKind::InvalidData,
                _ => false,
            },
            OutboxError::Locked { .. } | OutboxError::Encode { .. } => false,
        }
    }
}

impl Outbox {
    /// How the agent opens its outbox at start-up; fails only when another process holds the
    /// file ([`OutboxError::Locked`]).
    ///
    /// - A file that is not a readable outbox (not a redb file, torn, another layout, a
    ///   record that does not decode; every record is read to be sure, and redb panicking on
    ///   a damaged page counts too) is moved
    ///   aside to `outbox.redb.corrupt-<unix seconds>` (`wall_secs`), logged with the reason,
    ///   and a new empty outbox is opened.
    /// - A file that cannot be opened for now (a read-only or full `data_dir`) gives a closed
    ///   outbox: notifications are held in memory, and every operation tries to open it again.
    pub fn open_or_quarantine(path: &Path, wall_secs: i64) -> Result<Outbox, OutboxError> {
        let err = match open_checked(path) {
            Ok(outbox) => return Ok(outbox),
            Err(e @ OutboxError::Locked { .. }) => return Err(e),
            Err(e) => e,
        };
        if err.is_bad_content() {
            match crate::quarantine::move_aside(path, wall_secs) {
                Ok(aside) => tracing::error!(
                    error = %err,
                    moved_to = %aside.display(),
                    "outbox unreadable: moved aside; starting with an empty outbox (the queued notifications in it are not sent)"
                ),
                Err(e) => {
                    tracing::error!(error = %err, move_error = %e, "outbox unreadable and it could not be moved aside");
                    return Ok(Outbox::closed(path, &err));
                }
            }
            return match Outbox::open(path) {
                Ok(outbox) => Ok(outbox),
                Err(e @ OutboxError::Locked { .. }) => Err(e),
                Err(e) => Ok(Outbox::closed(path, &e)),
            };
        }
        Ok(Outbox::closed(path, &err))
    }

    /// An outbox that could not be opened (`err`): it holds messages in memory and tries to
    /// open the file again at each operation.
    fn closed(path: &Path, err: &OutboxError) -> Outbox {
        tracing::error!(
            error = %err,
            "outbox cannot be opened now; notifications are kept in memory until it can"
        );
        let outbox = Outbox::with(path, None, Some(err.to_string()));
        outbox.write_errors.store(1, Ordering::Relaxed);
        outbox
    }

    /// Writes `messages` (handed over at `now`) behind those already held in memory, all in one
    /// durable commit. When the disk refuses, they are held in memory (see [`crate::notify::held`]
    /// for the bound) and [`Outbox::flush_held`] writes them later; nothing held is ever sent
    /// before it is written.
    pub fn enqueue_or_hold(&self, messages: Vec<Message>, now: Millis) -> Hold {
        let mut folded = Vec::new();
        {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            for message in messages {
                let receiver = message.receiver.clone();
                if held.push(message, now) {
                    folded.push(receiver);
                }
            }
        }
        if !folded.is_empty() {
            tracing::warn!(
                folded = folded.len(),
                bound = crate::notify::held::MAX_HELD,
                "outbox: too many notifications held in memory; new ones folded into a digest per receiver"
            );
        }
        match self.flush_held() {
            Ok(receivers) => Hold::Written { receivers },
            Err(error) => Hold::Held { error, folded },
        }
    }

    /// Writes the messages held in memory, in order, in one durable commit; returns the
    /// receivers that have new messages (none when nothing was held).
    pub fn flush_held(&self) -> Result<Vec<String>, OutboxError> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let recovering = self
            .fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        self.enqueue_at(held.iter().map(|(m, at)| (m, *at)))?;
        let mut receivers: Vec<String> = held.iter().map(|(m, _)| m.receiver.clone()).collect();
        receivers.sort_unstable();
        receivers.dedup();
        if recovering {
            tracing::info!(
                written = held.len(),
                "outbox: the notifications kept in memory are written out"
            );
        }
        held.clear();
        Ok(receivers)
    }

    /// Messages held in memory, not written yet.
    pub fn held(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Commits an empty write transaction: whether the disk takes a durable write now. Clears
    /// the fault when it does.
    pub fn probe(&self) -> Result<(), OutboxError> {
        self.write("probe", |_| Ok(()))
    }

    /// Failed writes since start (`lookout_outbox_write_errors_total`).
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    /// What is wrong, while something is: the last failure until a write succeeds, and the
    /// messages held in memory. `None` when the outbox works.
    pub fn health(&self) -> Option<String> {
        let fault = self
            .fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let held = self.held();
        match (held, fault) {
            (0, None) => None,
            (0, Some(fault)) => Some(fault),
            (n, fault) => Some(format!(
                "{n} notification(s) kept in memory until {} can be written: {}",
                self.path.display(),
                fault.as_deref().unwrap_or("not written yet")
            )),
        }
    }

    /// [`Outbox::stats`], or while the file cannot be read, the pending messages last read
    /// from it (and no dead letters) with those held in memory.
    pub fn stats_or_last_known(&self, now: Millis) -> Stats {
        self.stats(now).unwrap_or_else(|_| {
            let (on_disk, oldest) = *self
                .last_on_disk
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.with_held(on_disk, oldest, 0, now)
        })
    }

    pub(super) fn with_held(
        &self,
        on_disk: u64,
        oldest: Option<Millis>,
        dead: u64,
        now: Millis,
    ) -> Stats {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest = match (oldest, held.oldest()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Stats {
            pending: on_disk + held.len() as u64,
            // Lossy only beyond 2^53 ms (285,000 years).
            oldest_age_seconds: oldest
                .map_or(0.0, |t| now.saturating_sub(t).max(0) as f64 / 1000.0),
            dead,
        }
    }
}
