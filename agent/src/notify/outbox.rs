//! The durable outbox: every [`Message`] is written here, fsynced, before any send, and leaves
//! only when its outcome is recorded (delivered, or moved to the dead letters). At-least-once
//! delivery that survives `kill -9` and reboots.
//!
//! # Why redb
//!
//! The outbox lives in `data_dir/outbox.redb` ([`FILE_NAME`]), a [redb] database, rather than a
//! log file of our own:
//! - **Crash-safe transactions**: a commit is durable when it returns (fsync on commit,
//!   `Durability::Immediate`, redb's default), and a batch of messages is one transaction:
//!   after a crash either all of it is there or none.
//! - **Torn writes** from a crash or power loss mid-commit are handled by redb's recovery on
//!   the next open (checksummed pages, the previous commit stays valid), not by us.
//! - **One writer** and a **file lock**: a second agent pointed at the same `data_dir` is
//!   refused with [`OutboxError::Locked`] instead of corrupting the queue.
//! - **Cost**: about 0.6 ms per durable commit on this class of host, far below the rate at
//!   which alerts are decided.
//!
//! An append-only log of our own would need a CRC per record to detect torn tails, a
//! compaction pass to drop delivered messages, an index to find the oldest message of one
//! receiver, and its own locking: all of which redb already has, tested.
//!
//! # Layout
//!
//! | table | key | value |
//! |---|---|---|
//! | `pending` | sequence number (`u64`, enqueue order) | [`Pending`] as JSON |
//! | `pending_by_id` | message id | sequence number |
//! | `pending_by_receiver` | (receiver, sequence number) | `()` |
//! | `dead` | dead-letter sequence number (`u64`) | [`Dead`] as JSON |
//! | `dead_by_id` | message id | dead-letter sequence number |
//! | `meta` | `schema`, `next_pending_seq`, `next_dead_seq` | `u64` |
//!
//! Sequence numbers only grow, so a receiver's oldest message is the first key of its range
//! in `pending_by_receiver`: strict per-receiver FIFO. Message ids (the `Idempotency-Key`) are
//! unique: enqueueing an id that is pending or a dead letter is a no-op. Dead letters are
//! bounded to the newest [`MAX_DEAD`]; older ones are dropped with a warning. Nothing pending
//! is ever dropped silently: a message leaves `pending` only through [`Outbox::record`],
//! [`Outbox::forget_receiver`] (both of which say where it went), or [`Outbox::fold_pending`],
//! which merges it into an older pending message of the same receiver (a rate-limit digest).
//!
//! All methods are synchronous and fsync on every write: async callers use `spawn_blocking`.
//! Times are passed in (`now`, on the agent's timeline), never read from a clock here.
//!
//! # Faults
//!
//! A full or read-only disk, an I/O error, a file that cannot be read at start-up: see
//! the `faults` module (`outbox/faults.rs`) for what the outbox does then.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use redb::{
    Database, DatabaseError, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::Message;
use super::held::Held;
use crate::store::Millis;

mod faults;
pub use faults::Hold;

/// The outbox file's name inside `data_dir`.
pub const FILE_NAME: &str = "outbox.redb";
/// Dead letters kept; older ones are dropped (with a warning) when more arrive.
pub const MAX_DEAD: u64 = 1000;
/// Reason given to the pending messages of a receiver removed from the configuration.
pub const REASON_RECEIVER_GONE: &str = "receiver no longer configured";
/// Layout version written in `meta`; an outbox written with another one is refused.
const SCHEMA: u64 = 1;

const PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("pending");
const PENDING_BY_ID: TableDefinition<&str, u64> = TableDefinition::new("pending_by_id");
const PENDING_BY_RECEIVER: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("pending_by_receiver");
const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("dead");
const DEAD_BY_ID: TableDefinition<&str, u64> = TableDefinition::new("dead_by_id");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const META_SCHEMA: &str = "schema";
const META_NEXT_PENDING: &str = "next_pending_seq";
const META_NEXT_DEAD: &str = "next_dead_seq";

/// A message waiting for delivery, with its retry state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The message as it will be sent.
    pub message: Message,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not to be sent before this time (ms since the epoch); the enqueue time at first.
    pub next_attempt_ms: Millis,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When it was written to the outbox (ms since the epoch).
    pub enqueued_ms: Millis,
}

/// A message that will not be delivered: a permanent error, given up after too long, or its
/// receiver removed. Visible in the API and metrics, never silently gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dead {
    /// The message.
    pub message: Message,
    /// Attempts made.
    pub attempts: u32,
    /// Why it was given up.
    pub reason: String,
    /// When it was given up (ms since the epoch).
    pub dead_ms: Millis,
}

/// The outcome of one delivery attempt, as recorded by the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent: the message leaves the outbox.
    Delivered,
    /// Failed, worth retrying at `next_attempt_ms`.
    Retry {
        /// When to try again (ms since the epoch).
        next_attempt_ms: Millis,
        /// What went wrong.
        error: String,
    },
    /// Failed for good (permanent error, or too old): moved to the dead letters.
    Dead {
        /// Why.
        reason: String,
    },
}

/// Counts for metrics and the API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Messages waiting for delivery.
    pub pending: u64,
    /// Age of the oldest pending message (0 when none).
    pub oldest_age_seconds: f64,
    /// Dead letters kept.
    pub dead: u64,
}

/// Why the outbox could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Another process (another agent on the same `data_dir`) holds the file.
    #[error(
        "outbox {}: locked by another process (is another lookout agent running with the same data_dir? one agent per data_dir)",
        .path.display()
    )]
    Locked {
        /// The outbox file.
        path: PathBuf,
    },
    /// redb failed (I/O, corruption it detected, ...).
    #[error("outbox {}: {operation}: {source}", .path.display())]
    Storage {
        /// The outbox file.
        path: PathBuf,
        /// What was being done (`open`, `enqueue`, `record`...).
        operation: &'static str,
        /// redb's error.
        source: Box<redb::Error>,
    },
    /// A stored record could not be decoded, or the tables disagree.
    #[error("outbox {}: {operation}: corrupt record {key}: {detail}", .path.display())]
    Corrupt {
        /// The outbox file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// Table and key of the record.
        key: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A message could not be encoded (not expected: messages are plain data).
    #[error("outbox {}: {operation}: encoding message {id}: {source}", .path.display())]
    Encode {
        /// The outbox file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The message id.
        id: String,
        /// The encoder's error.
        source: serde_json::Error,
    },
    /// The file was written by an agent with another outbox layout.
    #[error("outbox {}: layout version {found}, this agent reads version {SCHEMA}", .path.display())]
    Schema {
        /// The outbox file.
        path: PathBuf,
        /// The version found.
        found: u64,
    },
}

/// Failures inside a transaction, given their path and operation by [`Outbox::fail`].
#[derive(Debug)]
enum Fail {
    Locked,
    Redb(redb::Error),
    Corrupt {
        key: String,
        detail: String,
    },
    Encode {
        id: String,
        source: serde_json::Error,
    },
    Schema(u64),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Fail {
            fn from(e: $t) -> Self {
                Fail::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl Fail {
    /// An error after which redb refuses the open database until it is opened again.
    fn closes_the_database(&self) -> bool {
        matches!(
            self,
            Fail::Redb(
                redb::Error::Io(_)
                    | redb::Error::PreviousIo
                    | redb::Error::DatabaseClosed
                    | redb::Error::Corrupted(_)
            )
        )
    }
}

/// Opens (creating if needed) the database at `path` and creates every table: reading a
/// table that was never created is an error.
fn open_db(path: &Path) -> Result<Database, Fail> {
    let db = match Database::create(path) {
        Ok(db) => db,
        Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => {
            return Err(Fail::Locked);
        }
        Err(e) => return Err(Fail::Redb(e.into())),
    };
    let txn = db.begin_write()?;
    txn.open_table(PENDING)?;
    txn.open_table(PENDING_BY_ID)?;
    txn.open_table(PENDING_BY_RECEIVER)?;
    txn.open_table(DEAD)?;
    txn.open_table(DEAD_BY_ID)?;
    {
        let mut meta = txn.open_table(META)?;
        let found = meta.get(META_SCHEMA)?.map(|v| v.value());
        match found {
            None => {
                meta.insert(META_SCHEMA, SCHEMA)?;
            }
            Some(SCHEMA) => {}
            Some(other) => return Err(Fail::Schema(other)),
        }
    }
    txn.commit()?;
    Ok(db)
}

/// The durable outbox. See the module docs.
pub struct Outbox {
    /// `None` while closed after an I/O error (or never opened): the next operation opens it.
    db: RwLock<Option<Database>>,
    path: PathBuf,
    /// Messages not written yet because the disk refused them.
    held: Mutex<Held>,
    /// Failed writes since start.
    write_errors: AtomicU64,
    /// The last failure, until a write succeeds.
    fault: Mutex<Option<String>>,
    /// Pending messages on disk and the enqueue time of the oldest, as last read: what the
    /// metrics show while the file cannot be read.
    last_on_disk: Mutex<(u64, Option<Millis>)>,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// An outbox on `path` in the state given (opened or closed).
    fn with(path: &Path, db: Option<Database>, fault: Option<String>) -> Outbox {
        Outbox {
            db: RwLock::new(db),
            path: path.to_path_buf(),
            held: Mutex::new(Held::default()),
            write_errors: AtomicU64::new(0),
            fault: Mutex::new(fault),
            last_on_disk: Mutex::new((0, None)),
        }
    }

    /// Opens (creating if needed) the outbox file at `path`, normally
    /// `data_dir.join(FILE_NAME)`. After a crash, redb recovers the last durable commit here.
    /// A file held by another process fails at once with [`OutboxError::Locked`].
    pub fn open(path: &Path) -> Result<Outbox, OutboxError> {
        let outbox = Outbox::with(path, None, None);
        let db = open_db(path).map_err(|e| outbox.fail("open", e))?;
        *outbox.db.write().unwrap_or_else(PoisonError::into_inner) = Some(db);
        Ok(outbox)
    }

    /// The outbox file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds `messages` in order, all in one durable commit (nothing is written for an empty
    /// slice). A message whose id is already pending or a dead letter is skipped, so replaying
    /// a batch after a crash cannot queue duplicates.
    pub fn enqueue(&self, messages: &[Message], now: Millis) -> Result<(), OutboxError> {
        self.enqueue_at(messages.iter().map(|m| (m, now)))
    }

    /// [`Outbox::enqueue`], each message with its own enqueue time.
    fn enqueue_at<'m>(
        &self,
        messages: impl ExactSizeIterator<Item = (&'m Message, Millis)>,
    ) -> Result<(), OutboxError> {
        if messages.len() == 0 {
            return Ok(());
        }
        self.write("enqueue", |txn| {
            let mut pending = txn.open_table(PENDING)?;
            let mut by_id = txn.open_table(PENDING_BY_ID)?;
            let mut by_receiver = txn.open_table(PENDING_BY_RECEIVER)?;
            let dead_by_id = txn.open_table(DEAD_BY_ID)?;
            let mut meta = txn.open_table(META)?;
            let mut seq = meta.get(META_NEXT_PENDING)?.map_or(0, |v| v.value());
            for (message, now) in messages {
                let id = message.id.as_str();
                if by_id.get(id)?.is_some() || dead_by_id.get(id)?.is_some() {
                    tracing::debug!(id, receiver = %message.receiver, "outbox: message already queued, not queued again");
                    continue;
                }
                let record = Pending {
                    message: message.clone(),
                    attempts: 0,
                    next_attempt_ms: now,
                    last_error: None,
                    enqueued_ms: now,
                };
                pending.insert(seq, encode(&record, id)?.as_slice())?;
                by_id.insert(id, seq)?;
                by_receiver.insert((message.receiver.as_str(), seq), ())?;
                seq = seq.saturating_add(1);
            }
            meta.insert(META_NEXT_PENDING, seq)?;
            Ok(())
        })
    }

    /// The oldest pending message of `receiver`, due or not: delivery is strictly oldest first
    /// per receiver, so the dispatcher waits for its `next_attempt_ms`.
    pub fn next_for(&self, receiver: &str) -> Result<Option<Pending>, OutboxError> {
        self.read("next_for", |txn| {
            let by_receiver = txn.open_table(PENDING_BY_RECEIVER)?;
            let first = by_receiver
                .range((receiver, 0u64)..=(receiver, u64::MAX))?
                .next();
            let Some(entry) = first else {
                return Ok(None);
            };
            let (_, seq) = entry?.0.value();
            let pending = txn.open_table(PENDING)?;
            let record = load_pending(&pending, seq)?;
            Ok(Some(record))
        })
    }

    /// Records the outcome of an attempt to deliver message `id`, in one durable commit:
    /// delivered messages leave the outbox, retries count the attempt and keep their place in
    /// the queue, dead ones (attempt counted) move to the dead letters. An id that is not
    /// pending (already recorded, or its receiver forgotten meanwhile) is logged and ignored.
    pub fn record(&self, id: &str, outcome: Outcome, now: Millis) -> Result<(), OutboxError> {
        self.write("record", |txn| {
            let mut pending = txn.open_table(PENDING)?;
            let mut by_id = txn.open_table(PENDING_BY_ID)?;
            let Some(seq) = by_id.get(id)?.map(|v| v.value()) else {
                tracing::warn!(
                    id,
                    ?outcome,
                    "outbox: outcome for a message that is not pending, ignored"
                );
                return Ok(());
            };
            let mut record = load_pending(&pending, seq)?;
            match outcome {
                Outcome::Delivered => {
                    remove_pending(txn, &mut pending, &mut by_id, &record.message, seq)?;
                }
                Outcome::Retry {
                    next_attempt_ms,
                    error,
                } => {
                    record.attempts = record.attempts.saturating_add(1);
                    record.next_attempt_ms = next_attempt_ms;
                    record.last_error = Some(error);
                    pending.insert(seq, encode(&record, id)?.as_slice())?;
                }
                Outcome::Dead { reason } => {
                    remove_pending(txn, &mut pending, &mut by_id, &record.message, seq)?;
                    let dead = Dead {
                        attempts: record.attempts.saturating_add(1),
                        message: record.message,
                        reason,
                        dead_ms: now,
                    };
                    push_dead(txn, &[dead])?;
                }
            }
            Ok(())
        })
    }

    /// Every pending message, oldest first (for `GET /api/v1/outbox`).
    pub fn pending(&self) -> Result<Vec<Pending>, OutboxError> {
        self.read("list pending", |txn| {
            let pending = txn.open_table(PENDING)?;
            let mut out = Vec::new();
            for entry in pending.iter()? {
                let (k, v) = entry?;
                out.push(decode(v.value(), "pending", k.value())?);
            }
            Ok(out)
        })
    }

    /// Up to `limit` dead letters, newest first.
    pub fn dead(&self, limit: usize) -> Result<Vec<Dead>, OutboxError> {
        self.read("list dead letters", |txn| {
            let dead = txn.open_table(DEAD)?;
            let mut out = Vec::new();
            for entry in dead.iter()?.rev().take(limit) {
                let (k, v) = entry?;
                out.push(decode(v.value(), "dead", k.value())?);
            }
            Ok(out)
        })
    }

    /// Up to `limit` pending messages with their sequence numbers, oldest first, starting
    /// after sequence number `after` (from the start when `None`): one page of the queue.
    pub fn pending_page(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Pending)>, OutboxError> {
        self.read("list pending", |txn| {
            let pending = txn.open_table(PENDING)?;
            let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
            let mut out = Vec::new();
            for entry in pending
                .range((start, std::ops::Bound::Unbounded))?
                .take(limit)
            {
                let (k, v) = entry?;
                out.push((k.value(), decode(v.value(), "pending", k.value())?));
            }
            Ok(out)
        })
    }

    /// Up to `limit` dead letters with their sequence numbers, newest first, starting before
    /// sequence number `before` (from the newest when `None`): one page of the dead letters.
    pub fn dead_page(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Dead)>, OutboxError> {
        self.read("list dead letters", |txn| {
            let dead = txn.open_table(DEAD)?;
            let end = before.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
            let mut out = Vec::new();
            for entry in dead
                .range((std::ops::Bound::Unbounded, end))?
                .rev()
                .take(limit)
            {
                let (k, v) = entry?;
                out.push((k.value(), decode(v.value(), "dead", k.value())?));
            }
            Ok(out)
        })
    }

    /// Names of the receivers with at least one pending message, sorted.
    pub fn receivers_with_pending(&self) -> Result<Vec<String>, OutboxError> {
        self.read("list receivers", |txn| {
            let by_receiver = txn.open_table(PENDING_BY_RECEIVER)?;
            let mut out: Vec<String> = Vec::new();
            // Jump from one receiver's range to the next instead of walking every message.
            let mut next = by_receiver.first()?.map(|(k, _)| k.value().0.to_string());
            while let Some(receiver) = next {
                let after = (
                    std::ops::Bound::Excluded((receiver.as_str(), u64::MAX)),
                    std::ops::Bound::Unbounded,
                );
                next = match by_receiver.range(after)?.next() {
                    Some(entry) => Some(entry?.0.value().0.to_string()),
                    None => None,
                };
                out.push(receiver);
            }
            Ok(out)
        })
    }

    /// Counts and the age of the oldest pending message at `now`; messages held in memory
    /// count as pending.
    pub fn stats(&self, now: Millis) -> Result<Stats, OutboxError> {
        let (on_disk, oldest, dead) = self.read("stats", |txn| {
            let pending = txn.open_table(PENDING)?;
            let dead = txn.open_table(DEAD)?;
            let oldest = match pending.first()? {
                Some((k, v)) => {
                    let oldest: Pending = decode(v.value(), "pending", k.value())?;
                    Some(oldest.enqueued_ms)
                }
                None => None,
            };
            Ok((pending.len()?, oldest, dead.len()?))
        })?;
        *self
            .last_on_disk
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = (on_disk, oldest);
        Ok(self.with_held(on_disk, oldest, dead, now))
    }

    /// Moves every pending message of `receiver` (removed from the configuration) to the dead
    /// letters with reason [`REASON_RECEIVER_GONE`], in one durable commit. Returns how many.
    pub fn forget_receiver(&self, receiver: &str, now: Millis) -> Result<usize, OutboxError> {
        let moved = self.write("forget receiver", |txn| {
            let mut pending = txn.open_table(PENDING)?;
            let mut by_id = txn.open_table(PENDING_BY_ID)?;
            let seqs = receiver_seqs(txn, receiver)?;
            let mut dead = Vec::with_capacity(seqs.len());
            for seq in seqs {
                let record = load_pending(&pending, seq)?;
                remove_pending(txn, &mut pending, &mut by_id, &record.message, seq)?;
                dead.push(Dead {
                    message: record.message,
                    attempts: record.attempts,
                    reason: REASON_RECEIVER_GONE.to_string(),
                    dead_ms: now,
                });
            }
            let moved = dead.len();
            push_dead(txn, &dead)?;
            Ok(moved)
        })?;
        if moved > 0 {
            tracing::warn!(
                receiver,
                moved,
                "outbox: receiver no longer configured, its pending messages are now dead letters"
            );
        }
        Ok(moved)
    }

    /// Folds the waiting messages of `receiver` into one digest, in one durable commit (the
    /// dispatcher calls it when the receiver's rate limit is reached: overflow folds into one
    /// digest, never dropped silently).
    ///
    /// The candidates are the receiver's pending messages that were never attempted
    /// (`attempts == 0`) and are not fire drills (`test`), in queue order. With two or more,
    /// every candidate after the first is merged into the first (the *digest*), which keeps its
    /// id, sequence number (its place in the queue), attempts, times and group key:
    /// - the merged messages' alerts are appended to the digest's, in queue order;
    /// - `folded` counts the messages merged in: the digest's `folded` grows by one per merged
    ///   message plus that message's own `folded` (so folding digests keeps the total);
    /// - the merged messages leave `pending` (they are part of the digest now: neither
    ///   delivered nor dead letters) and their ids are forgotten.
    ///
    /// A message already attempted is never changed, so a receiver deduplicating on
    /// `Idempotency-Key` cannot drop the alerts folded in; fire drills never mix with real
    /// alerts. Returns how many messages were merged, or `None` when there was nothing to fold
    /// (fewer than two candidates).
    pub fn fold_pending(&self, receiver: &str) -> Result<Option<usize>, OutboxError> {
        self.write("fold", |txn| {
            let mut pending = txn.open_table(PENDING)?;
            let mut by_id = txn.open_table(PENDING_BY_ID)?;
            let seqs = receiver_seqs(txn, receiver)?;
            let mut digest: Option<(u64, Pending)> = None;
            let mut merged = 0usize;
            for seq in seqs {
                let record = load_pending(&pending, seq)?;
                if record.message.test || record.attempts > 0 {
                    continue;
                }
                match &mut digest {
                    None => digest = Some((seq, record)),
                    Some((_, into)) => {
                        remove_pending(txn, &mut pending, &mut by_id, &record.message, seq)?;
                        let message = record.message;
                        into.message.folded = into
                            .message
                            .folded
                            .saturating_add(message.folded)
                            .saturating_add(1);
                        into.message.alerts.extend(message.alerts);
                        merged += 1;
                    }
                }
            }
            match digest {
                Some((seq, into)) if merged > 0 => {
                    pending.insert(seq, encode(&into, &into.message.id)?.as_slice())?;
                    Ok(Some(merged))
                }
                _ => Ok(None),
            }
        })
    }

    /// Runs `f` on the open database, opening it first if it is closed; closes it after an
    /// error that redb does not recover from while open (see the module docs).
    fn with_db<T>(&self, f: impl FnOnce(&Database) -> Result<T, Fail>) -> Result<T, Fail> {
        let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(db) = guard.as_ref() {
            let out = f(db);
            drop(guard);
            if out.as_ref().is_err_and(Fail::closes_the_database) {
                *self.db.write().unwrap_or_else(PoisonError::into_inner) = None;
            }
            return out;
        }
        drop(guard);
        let mut guard = self.db.write().unwrap_or_else(PoisonError::into_inner);
        let db = match guard.take() {
            Some(db) => db,
            None => {
                let db = open_db(&self.path)?;
                tracing::info!(path = %self.path.display(), "outbox opened again");
                db
            }
        };
        let out = f(&db);
        if !out.as_ref().is_err_and(Fail::closes_the_database) {
            *guard = Some(db);
        }
        out
    }

    /// Runs `f` in a write transaction and commits it durably; on error nothing is written.
    /// Counts a failure in [`Outbox::write_errors`] and records it as the fault; a success
    /// clears the fault.
    fn write<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&WriteTransaction) -> Result<T, Fail>,
    ) -> Result<T, OutboxError> {
        let result = self
            .with_db(|db| {
                let txn = db.begin_write()?;
                let out = f(&txn)?;
                txn.commit()?;
                Ok(out)
            })
            .map_err(|e| self.fail(operation, e));
        match &result {
            Ok(_) => {
                if self.set_fault(None) {
                    tracing::info!(path = %self.path.display(), "outbox writable again");
                }
            }
            Err(e) => {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
                self.set_fault(Some(e.to_string()));
            }
        }
        result
    }

    /// Runs `f` in a read transaction (a consistent snapshot). A failure is recorded as the
    /// fault (a successful read does not clear it: only a write shows the disk is usable).
    fn read<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&ReadTransaction) -> Result<T, Fail>,
    ) -> Result<T, OutboxError> {
        let result = self
            .with_db(|db| {
                let txn = db.begin_read()?;
                f(&txn)
            })
            .map_err(|e| self.fail(operation, e));
        if let Err(e) = &result {
            self.set_fault(Some(e.to_string()));
        }
        result
    }

    /// Sets or clears the fault; returns whether that changed whether there is one. The
    /// start of a fault is logged here, once.
    fn set_fault(&self, fault: Option<String>) -> bool {
        let mut current = self.fault.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = current.is_some() != fault.is_some();
        if changed && let Some(e) = &fault {
            tracing::error!(error = %e, "outbox cannot be used; notifications not yet written are kept in memory");
        }
        *current = fault;
        changed
    }

    fn fail(&self, operation: &'static str, e: Fail) -> OutboxError {
        let path = self.path.clone();
        match e {
            Fail::Locked => OutboxError::Locked { path },
            Fail::Redb(source) => OutboxError::Storage {
                path,
                operation,
                source: Box::new(source),
            },
            Fail::Corrupt { key, detail } => OutboxError::Corrupt {
                path,
                operation,
                key,
                detail,
            },
            Fail::Encode { id, source } => OutboxError::Encode {
                path,
                operation,
                id,
                source,
            },
            Fail::Schema(found) => OutboxError::Schema { path, found },
        }
    }
}

fn encode<T: Serialize>(record: &T, id: &str) -> Result<Vec<u8>, Fail> {
    serde_json::to_vec(record).map_err(|source| Fail::Encode {
        id: id.to_string(),
        source,
    })
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], table: &str, key: u64) -> Result<T, Fail> {
    serde_json::from_slice(bytes).map_err(|e| Fail::Corrupt {
        key: format!("{table}[{key}]"),
        detail: e.to_string(),
    })
}

fn load_pending(
    pending: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
) -> Result<Pending, Fail> {
    match pending.get(seq)? {
        Some(v) => decode(v.value(), "pending", seq),
        None => Err(Fail::Corrupt {
            key: format!("pending[{seq}]"),
            detail: "indexed but missing".to_string(),
        }),
    }
}

/// Removes one pending message from all three pending tables.
fn remove_pending(
    txn: &WriteTransaction,
    pending: &mut redb::Table<u64, &'static [u8]>,
    by_id: &mut redb::Table<&'static str, u64>,
    message: &Message,
    seq: u64,
) -> Result<(), Fail> {
    pending.remove(seq)?;
    by_id.remove(message.id.as_str())?;
    txn.open_table(PENDING_BY_RECEIVER)?
        .remove((message.receiver.as_str(), seq))?;
    Ok(())
}

/// Appends dead letters, then drops the oldest beyond [`MAX_DEAD`] with a warning.
/// The sequence numbers of `receiver`'s pending messages, oldest first.
fn receiver_seqs(txn: &WriteTransaction, receiver: &str) -> Result<Vec<u64>, Fail> {
    let by_receiver = txn.open_table(PENDING_BY_RECEIVER)?;
    let mut seqs = Vec::new();
    for entry in by_receiver.range((receiver, 0u64)..=(receiver, u64::MAX))? {
        seqs.push(entry?.0.value().1);
    }
    Ok(seqs)
}

fn push_dead(txn: &WriteTransaction, letters: &[Dead]) -> Result<(), Fail> {
    if letters.is_empty() {
        return Ok(());
    }
    let mut dead = txn.open_table(DEAD)?;
    let mut dead_by_id = txn.open_table(DEAD_BY_ID)?;
    let mut meta = txn.open_table(META)?;
    let mut seq = meta.get(META_NEXT_DEAD)?.map_or(0, |v| v.value());
    for letter in letters {
        let id = letter.message.id.as_str();
        tracing::warn!(
            id,
            receiver = %letter.message.receiver,
            attempts = letter.attempts,
            reason = %letter.reason,
            "outbox: message moved to the dead letters"
        );
        dead.insert(seq, encode(letter, id)?.as_slice())?;
        dead_by_id.insert(id, seq)?;
        seq = seq.saturating_add(1);
    }
    meta.insert(META_NEXT_DEAD, seq)?;

    let mut dropped = 0u64;
    while dead.len()? > MAX_DEAD {
        if dead.pop_first()?.is_none() {
            break;
        }
        dropped += 1;
    }
    if dropped > 0 {
        let first_kept = dead.first()?.map_or(seq, |(k, _)| k.value());
        dead_by_id.retain(|_, s| s >= first_kept)?;
        tracing::warn!(
            dropped,
            kept = MAX_DEAD,
            "outbox: dead-letter list full, oldest dead letters dropped"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let dir = std::env::temp_dir().join(format!(
                "lookout-outbox-{name}-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn file(&self) -> PathBuf {
            self.0.join(FILE_NAME)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A new outbox in a scratch directory named after `name`, removed with the directory.
    fn open(name: &str) -> (TempDir, Outbox) {
        let dir = TempDir::new(name);
        let ob = Outbox::open(&dir.file()).unwrap();
        (dir, ob)
    }

    /// [`open`], holding `messages` enqueued at `T0`.
    fn open_with(name: &str, messages: &[Message]) -> (TempDir, Outbox) {
        let (dir, ob) = open(name);
        ob.enqueue(messages, T0).unwrap();
        (dir, ob)
    }

    /// Records a failed attempt of `id` at `now`, to be tried again at `next_attempt_ms`.
    fn record_retry(ob: &Outbox, id: &str, next_attempt_ms: Millis, error: &str, now: Millis) {
        let retry = Outcome::Retry {
            next_attempt_ms,
            error: error.into(),
        };
        ob.record(id, retry, now).unwrap();
    }

    /// A permanent failure.
    fn dead(reason: &str) -> Outcome {
        Outcome::Dead {
            reason: reason.into(),
        }
    }

    fn msg(id: &str, receiver: &str) -> Message {
        Message {
            id: id.to_string(),
            receiver: receiver.to_string(),
            group_key: "{}:{alertname=\"X\"}".to_string(),
            created_ms: 1_000,
            alerts: Vec::new(),
            folded: 0,
            test: false,
        }
    }

    fn ids(pending: &[Pending]) -> Vec<&str> {
        pending.iter().map(|p| p.message.id.as_str()).collect()
    }

    const T0: Millis = 1_700_000_000_000;

    #[test]
    fn outbox_can_be_shared_with_blocking_tasks() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Outbox>();
    }

    #[test]
    fn pages_of_pending_and_dead_list_each_message_once() {
        let messages: Vec<Message> = (0..7).map(|i| msg(&format!("m{i}"), "hook")).collect();
        let (_dir, ob) = open_with("pages", &messages);
        for i in [1, 3, 4] {
            ob.record(&format!("m{i}"), dead("no"), T0 + i).unwrap();
        }
        // Pending, oldest first, three at a time.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = ob.pending_page(after, 3).unwrap();
            assert!(page.len() <= 3);
            let Some((last, _)) = page.last() else { break };
            after = Some(*last);
            seen.extend(page.into_iter().map(|(_, p)| p.message.id));
        }
        assert_eq!(seen, ["m0", "m2", "m5", "m6"]);
        // Dead letters, newest first, two at a time.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = ob.dead_page(before, 2).unwrap();
            let Some((last, _)) = page.last() else { break };
            before = Some(*last);
            seen.extend(page.into_iter().map(|(_, d)| d.message.id));
        }
        assert_eq!(seen, ["m4", "m3", "m1"]);
    }

    #[test]
    fn fifo_per_receiver_across_receivers() {
        let (_dir, ob) = open("fifo");
        assert_eq!(ob.next_for("mail").unwrap(), None);
        ob.enqueue(
            &[msg("a1", "mail"), msg("b1", "hook"), msg("a2", "mail")],
            T0,
        )
        .unwrap();
        ob.enqueue(&[msg("b2", "hook"), msg("a3", "mail")], T0 + 10)
            .unwrap();
        // A receiver whose name sorts between the others and is a prefix of one.
        ob.enqueue(&[msg("c1", "mai")], T0 + 20).unwrap();

        let first = ob.next_for("mail").unwrap().unwrap();
        assert_eq!(first.message, msg("a1", "mail"));
        assert_eq!(
            (first.attempts, first.next_attempt_ms, first.enqueued_ms),
            (0, T0, T0)
        );
        assert_eq!(first.last_error, None);
        assert_eq!(ob.next_for("hook").unwrap().unwrap().message.id, "b1");
        assert_eq!(ob.next_for("mai").unwrap().unwrap().message.id, "c1");
        assert_eq!(ob.next_for("nobody").unwrap(), None);
        assert_eq!(
            ids(&ob.pending().unwrap()),
            ["a1", "b1", "a2", "b2", "a3", "c1"]
        );
        assert_eq!(
            ob.receivers_with_pending().unwrap(),
            ["hook", "mai", "mail"]
        );

        // Delivering in order walks each receiver's queue independently.
        ob.record("a1", Outcome::Delivered, T0 + 30).unwrap();
        assert_eq!(ob.next_for("mail").unwrap().unwrap().message.id, "a2");
        assert_eq!(ob.next_for("hook").unwrap().unwrap().message.id, "b1");
        ob.record("a2", Outcome::Delivered, T0 + 31).unwrap();
        ob.record("a3", Outcome::Delivered, T0 + 32).unwrap();
        assert_eq!(ob.next_for("mail").unwrap(), None);
        assert_eq!(ob.receivers_with_pending().unwrap(), ["hook", "mai"]);
        assert_eq!(ids(&ob.pending().unwrap()), ["b1", "b2", "c1"]);
    }

    #[test]
    fn record_each_outcome() {
        let (_dir, ob) = open_with(
            "record",
            &[msg("m1", "hook"), msg("m2", "hook"), msg("m3", "hook")],
        );

        // Retry: counted, rescheduled, keeps its place at the head of the queue.
        record_retry(&ob, "m1", T0 + 1_000, "503 Service Unavailable", T0 + 5);
        let head = ob.next_for("hook").unwrap().unwrap();
        assert_eq!(head.message.id, "m1");
        assert_eq!(head.attempts, 1);
        assert_eq!(head.next_attempt_ms, T0 + 1_000);
        assert_eq!(head.last_error.as_deref(), Some("503 Service Unavailable"));
        assert_eq!(head.enqueued_ms, T0);
        record_retry(&ob, "m1", T0 + 3_000, "timeout", T0 + 1_000);
        assert_eq!(ob.next_for("hook").unwrap().unwrap().attempts, 2);

        // Dead: the failed attempt counts, it leaves the queue for the dead letters.
        ob.record("m1", dead("400 Bad Request (permanent)"), T0 + 3_000)
            .unwrap();
        assert_eq!(ob.next_for("hook").unwrap().unwrap().message.id, "m2");
        let letters = ob.dead(10).unwrap();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].message, msg("m1", "hook"));
        assert_eq!(letters[0].attempts, 3);
        assert_eq!(letters[0].reason, "400 Bad Request (permanent)");
        assert_eq!(letters[0].dead_ms, T0 + 3_000);

        // Delivered: gone.
        ob.record("m2", Outcome::Delivered, T0 + 4_000).unwrap();
        assert_eq!(ids(&ob.pending().unwrap()), ["m3"]);

        // Outcomes for ids not pending are ignored, nothing else changes.
        ob.record("m2", Outcome::Delivered, T0 + 5_000).unwrap();
        ob.record("m1", Outcome::Delivered, T0 + 5_000).unwrap();
        ob.record("nope", dead("x"), T0 + 5_000).unwrap();
        assert_eq!(ids(&ob.pending().unwrap()), ["m3"]);
        assert_eq!(ob.dead(10).unwrap().len(), 1);
    }

    #[test]
    fn enqueue_is_idempotent_on_id() {
        let (_dir, ob) = open_with("idem", &[msg("m1", "hook"), msg("m2", "hook")]);
        // Replay of the same batch, plus one new message and a duplicate inside the batch.
        ob.enqueue(
            &[
                msg("m1", "hook"),
                msg("m2", "hook"),
                msg("m3", "hook"),
                msg("m3", "hook"),
            ],
            T0 + 50,
        )
        .unwrap();
        let pending = ob.pending().unwrap();
        assert_eq!(ids(&pending), ["m1", "m2", "m3"]);
        assert_eq!(
            pending[0].enqueued_ms, T0,
            "the original is kept, not replaced"
        );
        // A dead letter is not queued again either.
        ob.record("m1", dead("404"), T0 + 60).unwrap();
        ob.enqueue(&[msg("m1", "hook")], T0 + 70).unwrap();
        assert_eq!(ids(&ob.pending().unwrap()), ["m2", "m3"]);
        // An empty batch writes nothing and is fine.
        ob.enqueue(&[], T0 + 80).unwrap();
        assert_eq!(ob.stats(T0 + 80).unwrap().pending, 2);
    }

    #[test]
    fn pending_survive_close_and_reopen_in_order() {
        let dir = TempDir::new("reopen");
        {
            let ob = Outbox::open(&dir.file()).unwrap();
            ob.enqueue(&[msg("m1", "a"), msg("m2", "b"), msg("m3", "a")], T0)
                .unwrap();
            record_retry(&ob, "m1", T0 + 2_000, "connection refused", T0 + 1);
            ob.record("m2", dead("403"), T0 + 2).unwrap();
        }
        let ob = Outbox::open(&dir.file()).unwrap();
        let pending = ob.pending().unwrap();
        assert_eq!(ids(&pending), ["m1", "m3"]);
        assert_eq!(pending[0].attempts, 1);
        assert_eq!(pending[0].last_error.as_deref(), Some("connection refused"));
        assert_eq!(ob.dead(10).unwrap()[0].message.id, "m2");
        // Sequence numbers continue after the reopen: new messages queue behind the old.
        ob.enqueue(&[msg("m4", "a")], T0 + 3).unwrap();
        ob.record("m1", Outcome::Delivered, T0 + 4).unwrap();
        assert_eq!(ob.next_for("a").unwrap().unwrap().message.id, "m3");
        assert_eq!(ids(&ob.pending().unwrap()), ["m3", "m4"]);
    }

    #[test]
    fn second_open_of_a_locked_file_fails_fast() {
        let dir = TempDir::new("lock");
        let path = dir.file();
        let first = Outbox::open(&path).unwrap();
        let (tx, rx) = mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Outbox::open(&p).map(|_| ()));
        });
        let second = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("second open hung");
        match second {
            Err(e @ OutboxError::Locked { .. }) => {
                let text = e.to_string();
                assert!(text.contains("another lookout agent"), "{text}");
                assert!(text.contains(&path.display().to_string()), "{text}");
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        // The first handle still works, and once closed the file opens again.
        first.enqueue(&[msg("m1", "a")], T0).unwrap();
        drop(first);
        assert_eq!(
            ids(&Outbox::open(&path).unwrap().pending().unwrap()),
            ["m1"]
        );
    }

    /// The files in `dir` whose names start with `prefix`.
    fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn an_unreadable_file_is_moved_aside_and_the_outbox_starts_empty() {
        // A real outbox holding two messages, to damage in several ways.
        let good = {
            let (dir, ob) = open_with("good", &[msg("m1", "a"), msg("m2", "a")]);
            drop(ob);
            std::fs::read(dir.file()).unwrap()
        };
        let mut flipped = good.clone();
        for b in &mut flipped[4096..8192] {
            *b ^= 0xff;
        }
        let random: Vec<u8> = (0..100_000).map(|_| fastrand::u8(..)).collect();
        // (what, content): none of them is a readable outbox
        let rows: [(&str, Vec<u8>); 4] = [
            ("text", b"this is not a redb file".to_vec()),
            ("random bytes", random),
            ("torn: the first half only", good[..good.len() / 2].to_vec()),
            ("pages damaged (redb panics reading them)", flipped),
        ];
        for (what, content) in rows {
            let dir = TempDir::new("aside");
            std::fs::write(dir.file(), &content).unwrap();
            let ob = Outbox::open_or_quarantine(&dir.file(), 1_700_000_000).unwrap();
            let aside = files_starting(&dir.0, "outbox.redb.corrupt-1700000000");
            assert_eq!(aside.len(), 1, "{what}");
            assert_eq!(
                std::fs::read(&aside[0]).unwrap(),
                content,
                "{what}: kept as it was"
            );
            // A fresh outbox in its place, working.
            assert!(ob.pending().unwrap().is_empty(), "{what}");
            ob.enqueue(&[msg("n1", "a")], T0).unwrap();
            assert_eq!(ids(&ob.pending().unwrap()), ["n1"], "{what}");
            assert_eq!(ob.health(), None, "{what}");
        }
        // A readable one is opened as it is, nothing moved.
        let dir = TempDir::new("readable");
        std::fs::write(dir.file(), &good).unwrap();
        let ob = Outbox::open_or_quarantine(&dir.file(), 1_700_000_000).unwrap();
        assert_eq!(ids(&ob.pending().unwrap()), ["m1", "m2"]);
        assert!(files_starting(&dir.0, "outbox.redb.corrupt").is_empty());
    }

    #[test]
    fn a_file_locked_by_another_agent_is_not_moved_aside() {
        let dir = TempDir::new("locked-aside");
        let first = Outbox::open(&dir.file()).unwrap();
        first.enqueue(&[msg("m1", "a")], T0).unwrap();
        let (tx, rx) = mpsc::channel();
        let path = dir.file();
        std::thread::spawn(move || {
            let _ = tx.send(Outbox::open_or_quarantine(&path, 1).map(|_| ()));
        });
        let second = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert!(
            matches!(second, Err(OutboxError::Locked { .. })),
            "{second:?}"
        );
        assert!(files_starting(&dir.0, "outbox.redb.corrupt").is_empty());
        assert_eq!(ids(&first.pending().unwrap()), ["m1"]);
    }

    #[test]
    fn what_cannot_be_written_is_held_in_memory_then_written_in_order() {
        let dir = TempDir::new("held");
        // The outbox's directory is missing: every write fails, as on a full or read-only
        // disk, until it is there.
        let missing = dir.0.join("not-yet");
        let path = missing.join(FILE_NAME);
        let ob = Outbox::open_or_quarantine(&path, 1).unwrap();
        let fault = ob.health().unwrap();
        assert!(fault.contains(&path.display().to_string()), "{fault}");
        assert_eq!(ob.write_errors(), 1);

        // (messages handed over, at): held, in order, counted as pending
        for (batch, at) in [
            (vec![msg("m1", "a"), msg("m2", "b")], T0),
            (vec![msg("m3", "a")], T0 + 1_000),
        ] {
            match ob.enqueue_or_hold(batch, at) {
                Hold::Held { error, folded } => {
                    assert!(
                        error.to_string().contains(&path.display().to_string()),
                        "{error}"
                    );
                    assert!(folded.is_empty());
                }
                other => panic!("expected Held, got {other:?}"),
            }
        }
        assert_eq!(ob.held(), 3);
        assert_eq!(ob.write_errors(), 3);
        let health = ob.health().unwrap();
        assert!(
            health.starts_with("3 notification(s) kept in memory"),
            "{health}"
        );
        let stats = ob.stats_or_last_known(T0 + 5_000);
        assert_eq!((stats.pending, stats.oldest_age_seconds), (3, 5.0));
        assert!(
            ob.next_for("a").is_err(),
            "nothing to read: the file is not there"
        );
        assert!(matches!(ob.flush_held(), Err(OutboxError::Storage { .. })));
        assert_eq!(ob.held(), 3);

        // The disk accepts writes again: written in one commit, with their own times.
        std::fs::create_dir(&missing).unwrap();
        assert_eq!(ob.flush_held().unwrap(), ["a", "b"]);
        assert_eq!(ob.held(), 0);
        assert_eq!(ob.health(), None);
        let pending = ob.pending().unwrap();
        assert_eq!(ids(&pending), ["m1", "m2", "m3"]);
        let times: Vec<Millis> = pending.iter().map(|p| p.enqueued_ms).collect();
        assert_eq!(times, [T0, T0, T0 + 1_000]);
        assert_eq!(ob.stats(T0 + 5_000).unwrap().pending, 3);
        // Then business as usual: a new message goes straight to the file.
        assert!(matches!(
            ob.enqueue_or_hold(vec![msg("m4", "c")], T0 + 6_000),
            Hold::Written { receivers } if receivers == ["c"]
        ));
        assert_eq!(ob.flush_held().unwrap(), Vec::<String>::new());
        assert_eq!(ob.write_errors(), 4, "counted failures stay counted");
    }

    #[test]
    fn a_fault_seen_by_a_read_lasts_until_a_write_succeeds() {
        let dir = TempDir::new("probe");
        let missing = dir.0.join("later");
        let ob = Outbox::open_or_quarantine(&missing.join(FILE_NAME), 1).unwrap();
        assert!(ob.stats(T0).is_err());
        assert!(ob.probe().is_err());
        assert!(ob.health().is_some());
        std::fs::create_dir(&missing).unwrap();
        // A read succeeds, but only a write shows the disk takes writes again.
        assert_eq!(ob.stats(T0).unwrap().pending, 0);
        assert!(ob.health().is_some());
        ob.probe().unwrap();
        assert_eq!(ob.health(), None);
    }

    #[test]
    fn a_file_that_is_not_an_outbox_is_an_error_naming_it() {
        let dir = TempDir::new("garbage");
        std::fs::write(
            dir.file(),
            b"this is not a redb file, just some text that is long enough",
        )
        .unwrap();
        let err = Outbox::open(&dir.file()).unwrap_err();
        assert!(err.to_string().contains(FILE_NAME), "{err}");
    }

    #[test]
    fn dead_letters_are_bounded_newest_kept() {
        let (_dir, ob) = open("dead");
        let batch: Vec<Message> = (0..1_005).map(|i| msg(&format!("m{i}"), "old")).collect();
        ob.enqueue(&batch, T0).unwrap();
        assert_eq!(ob.forget_receiver("old", T0 + 1).unwrap(), 1_005);
        let stats = ob.stats(T0 + 1).unwrap();
        assert_eq!((stats.pending, stats.dead), (0, MAX_DEAD));
        let newest = ob.dead(3).unwrap();
        assert_eq!(
            newest
                .iter()
                .map(|d| d.message.id.as_str())
                .collect::<Vec<_>>(),
            ["m1004", "m1003", "m1002"]
        );
        let all = ob.dead(usize::MAX).unwrap();
        assert_eq!(all.len(), 1_000);
        assert_eq!(all.last().unwrap().message.id, "m5", "m0..m4 were dropped");
        // One more dead letter drops one more old one.
        ob.enqueue(&[msg("x", "hook")], T0 + 2).unwrap();
        ob.record("x", dead("410"), T0 + 3).unwrap();
        let all = ob.dead(usize::MAX).unwrap();
        assert_eq!((all.len(), all[0].message.id.as_str()), (1_000, "x"));
        assert_eq!(all.last().unwrap().message.id, "m6");
        // A dropped id is forgotten (may be queued again), a kept one is not.
        ob.enqueue(&[msg("m0", "hook"), msg("m6", "hook")], T0 + 4)
            .unwrap();
        assert_eq!(ids(&ob.pending().unwrap()), ["m0"]);
    }

    #[test]
    fn stats_ages() {
        let (_dir, ob) = open("stats");
        // (now, pending, oldest age s, dead) after each step
        assert_eq!(
            ob.stats(T0).unwrap(),
            Stats {
                pending: 0,
                oldest_age_seconds: 0.0,
                dead: 0
            }
        );
        ob.enqueue(&[msg("m1", "a")], T0).unwrap();
        ob.enqueue(&[msg("m2", "b")], T0 + 5_000).unwrap();
        let s = ob.stats(T0 + 12_500).unwrap();
        assert_eq!((s.pending, s.oldest_age_seconds, s.dead), (2, 12.5, 0));
        ob.record("m1", dead("400"), T0 + 13_000).unwrap();
        let s = ob.stats(T0 + 13_000).unwrap();
        assert_eq!((s.pending, s.oldest_age_seconds, s.dead), (1, 8.0, 1)); // now m2 is the oldest
        // A clock behind the enqueue time gives age 0, never negative.
        assert_eq!(ob.stats(T0).unwrap().oldest_age_seconds, 0.0);
    }

    #[test]
    fn forget_receiver_turns_its_pending_into_dead_letters() {
        let (_dir, ob) = open_with(
            "forget",
            &[msg("a1", "gone"), msg("b1", "kept"), msg("a2", "gone")],
        );
        record_retry(&ob, "a1", T0 + 1_000, "timeout", T0 + 1);
        assert_eq!(ob.forget_receiver("gone", T0 + 2).unwrap(), 2);
        assert_eq!(ob.forget_receiver("gone", T0 + 3).unwrap(), 0);
        assert_eq!(ob.forget_receiver("never-existed", T0 + 3).unwrap(), 0);
        assert_eq!(ids(&ob.pending().unwrap()), ["b1"]);
        assert_eq!(ob.receivers_with_pending().unwrap(), ["kept"]);
        let dead = ob.dead(10).unwrap();
        let rows: Vec<(&str, u32, &str, Millis)> = dead
            .iter()
            .map(|d| {
                (
                    d.message.id.as_str(),
                    d.attempts,
                    d.reason.as_str(),
                    d.dead_ms,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("a2", 0, REASON_RECEIVER_GONE, T0 + 2), // newest first
                ("a1", 1, REASON_RECEIVER_GONE, T0 + 2), // keeps its attempt count
            ]
        );
    }

    /// A message for `receiver` whose alerts are named `alerts`.
    fn msg_alerts(id: &str, receiver: &str, alerts: &[&str]) -> Message {
        let mut m = msg(id, receiver);
        m.alerts = alerts
            .iter()
            .map(|name| super::super::AlertPayload {
                alert: (*name).to_string(),
                status: crate::rules::engine::Status::Firing,
                kind: crate::rules::state::Kind::Firing,
                severity: crate::rules::model::Severity::Warning,
                labels: Default::default(),
                annotations: Default::default(),
                value: None,
                starts_at: T0,
                ends_at: None,
                fingerprint: (*name).to_string(),
            })
            .collect();
        m
    }

    fn alert_names(p: &Pending) -> Vec<&str> {
        p.message.alerts.iter().map(|a| a.alert.as_str()).collect()
    }

    #[test]
    fn fold_pending_merges_a_receivers_backlog_into_its_oldest_message() {
        let dir = TempDir::new("fold");
        {
            let ob = Outbox::open(&dir.file()).unwrap();
            // Nothing, then one message: nothing to fold, nothing changes.
            assert_eq!(ob.fold_pending("hook").unwrap(), None);
            ob.enqueue(&[msg_alerts("h1", "hook", &["A"])], T0).unwrap();
            assert_eq!(ob.fold_pending("hook").unwrap(), None);
            assert_eq!(ob.next_for("hook").unwrap().unwrap().message.folded, 0);

            let mut earlier_digest = msg_alerts("h3", "hook", &["C"]);
            earlier_digest.folded = 2;
            let mut drill = msg_alerts("t1", "hook", &["Drill"]);
            drill.test = true;
            ob.enqueue(
                &[
                    msg_alerts("h2", "hook", &["B1", "B2"]),
                    msg_alerts("m1", "mail", &["X"]),
                    earlier_digest,
                    drill,
                    msg_alerts("m2", "mail", &["Y"]),
                    msg_alerts("h4", "hook", &["D"]),
                ],
                T0 + 10,
            )
            .unwrap();
            assert_eq!(ob.fold_pending("hook").unwrap(), Some(3));

            let pending = ob.pending().unwrap();
            assert_eq!(ids(&pending), ["h1", "m1", "t1", "m2"]);
            let digest = ob.next_for("hook").unwrap().unwrap();
            assert_eq!(digest.message.id, "h1", "the oldest message's id is kept");
            assert_eq!(alert_names(&digest), ["A", "B1", "B2", "C", "D"]);
            assert_eq!(
                digest.message.folded, 5,
                "3 messages, one carrying 2 already"
            );
            assert_eq!(
                (digest.attempts, digest.next_attempt_ms, digest.enqueued_ms),
                (0, T0, T0)
            );
            // Other receivers are untouched; nothing went to the dead letters.
            assert_eq!(ob.next_for("mail").unwrap().unwrap().message.id, "m1");
            assert_eq!(alert_names(&pending[3]), ["Y"]);
            assert!(ob.dead(10).unwrap().is_empty());
            // Merged ids are forgotten: delivering one is ignored.
            ob.record("h2", Outcome::Delivered, T0 + 20).unwrap();
            assert_eq!(ob.stats(T0 + 20).unwrap().pending, 4);
        }
        // Durable: the digest and its place in the queue survive a reopen.
        let ob = Outbox::open(&dir.file()).unwrap();
        assert_eq!(ids(&ob.pending().unwrap()), ["h1", "m1", "t1", "m2"]);
        let digest = ob.next_for("hook").unwrap().unwrap();
        assert_eq!(alert_names(&digest), ["A", "B1", "B2", "C", "D"]);
        assert_eq!(digest.message.folded, 5);
        // Only the drill is left besides the digest: nothing more to fold.
        assert_eq!(ob.fold_pending("hook").unwrap(), None);
    }

    #[test]
    fn fold_pending_never_changes_a_message_already_attempted() {
        let (_dir, ob) = open_with(
            "fold-attempted",
            &[
                msg_alerts("h1", "hook", &["A"]),
                msg_alerts("h2", "hook", &["B"]),
                msg_alerts("h3", "hook", &["C"]),
            ],
        );
        record_retry(&ob, "h1", T0 + 1_000, "timeout", T0 + 1);
        assert_eq!(ob.fold_pending("hook").unwrap(), Some(1));
        let pending = ob.pending().unwrap();
        assert_eq!(ids(&pending), ["h1", "h2"]);
        assert_eq!(
            (alert_names(&pending[0]), pending[0].message.folded),
            (vec!["A"], 0)
        );
        assert_eq!(
            (alert_names(&pending[1]), pending[1].message.folded),
            (vec!["B", "C"], 1)
        );
    }

    /// Set in the child process of [`kill_9_loses_no_committed_message`]: the outbox file
    /// it writes to until the parent kills it.
    const CRASH_ENV: &str = "LOOKOUT_OUTBOX_CRASH_FILE";
    /// Messages per commit in the crash test: a batch is all there or not at all.
    const BATCH: usize = 3;

    /// The child process of [`kill_9_loses_no_committed_message`]: enqueues batches until
    /// it is killed, printing `committed k` after batch k is durable.
    fn crash_writer(file: &str) -> ! {
        let round = std::env::var("LOOKOUT_OUTBOX_CRASH_ROUND").unwrap();
        let ob = Outbox::open(Path::new(file)).unwrap();
        let mut out = std::io::stdout().lock();
        for k in 0..1_000_000usize {
            let batch: Vec<Message> = (0..BATCH)
                .map(|j| msg(&format!("r{round}-{k}-{j}"), "hook"))
                .collect();
            ob.enqueue(&batch, T0).unwrap();
            writeln!(out, "committed {k}").unwrap();
            out.flush().unwrap();
        }
        panic!("the crash writer was never killed");
    }

    /// Runs itself again as a child process (the test binary, this test only, with
    /// [`CRASH_ENV`] set) that writes to the outbox, kills it with SIGKILL mid-way, and
    /// checks that every batch the child reported committed is there, whole, in order.
    #[test]
    fn kill_9_loses_no_committed_message() {
        if let Ok(file) = std::env::var(CRASH_ENV) {
            crash_writer(&file);
        }
        let dir = TempDir::new("crash");
        let exe = std::env::current_exe().unwrap();
        let mut expected: Vec<String> = Vec::new();
        for (round, kill_after) in [(0, 25usize), (1, 40), (2, 10)] {
            let mut child = Command::new(&exe)
                .args([
                    "--exact",
                    "notify::outbox::tests::kill_9_loses_no_committed_message",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CRASH_ENV, dir.file())
                .env("LOOKOUT_OUTBOX_CRASH_ROUND", round.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let mut lines = BufReader::new(stdout).lines();
            let mut last: Option<usize> = None;
            for line in lines.by_ref() {
                let line = line.unwrap();
                if let Some(k) = line.strip_prefix("committed ") {
                    let k: usize = k.trim().parse().unwrap();
                    last = Some(k);
                    if k + 1 == kill_after {
                        // While the writer lives, its file is refused to anyone else.
                        assert!(matches!(
                            Outbox::open(&dir.file()),
                            Err(OutboxError::Locked { .. })
                        ));
                        child.kill().unwrap(); // SIGKILL, mid-way through the next commits
                        break;
                    }
                }
            }
            // Lines already in the pipe were committed before the kill too.
            for line in lines {
                if let Some(k) = line.unwrap().strip_prefix("committed ") {
                    last = Some(k.trim().parse().unwrap());
                }
            }
            let status = child.wait().unwrap();
            assert!(!status.success(), "the writer was killed, not finished");
            let last = last.expect("the child never committed; did it run?");
            assert!(last + 1 >= kill_after);

            let ob = Outbox::open(&dir.file()).unwrap();
            let pending = ob.pending().unwrap();
            let got = ids(&pending);
            // Every reported batch is there, in order, after the earlier rounds' messages.
            let reported: Vec<String> = (0..=last)
                .flat_map(|k| (0..BATCH).map(move |j| format!("r{round}-{k}-{j}")))
                .collect();
            expected.extend(reported);
            assert!(
                got.len() >= expected.len(),
                "round {round}: lost messages: {} < {}",
                got.len(),
                expected.len()
            );
            assert_eq!(got[..expected.len()], expected[..], "round {round}");
            // Anything beyond is whole batches committed after the last line we read.
            let extra = &got[expected.len()..];
            assert_eq!(
                extra.len() % BATCH,
                0,
                "round {round}: a torn batch: {extra:?}"
            );
            for (i, id) in extra.iter().enumerate() {
                let k = last + 1 + i / BATCH;
                assert_eq!(*id, format!("r{round}-{k}-{}", i % BATCH));
            }
            expected.extend(extra.iter().map(|s| s.to_string()));
            println!(
                "crash round {round}: {} batches reported, {} extra, {} pending",
                last + 1,
                extra.len() / BATCH,
                got.len()
            );
        }
    }
}
