//! lookout: a per-host observability and monitoring agent.
//!
//! Data flows one way: [`collect`] (collectors, scheduler) -> [`store`] (latest values,
//! bounded windows) -> [`rules`] (alert states, score) -> [`notify`] (routing, outbox,
//! receivers); [`api`] serves what the store and the rules hold. Shared types sit below their
//! users: [`catalogue`] (metric names), [`sample`] (samples and labels), [`config`] (the
//! configuration machinery), [`clock`], [`live`], [`quarantine`], [`schedule`] and [`text`]
//! (small shared helpers); [`history`] (a compressed day of points per series, its memory cap, its
//! snapshots) sits below the store. Each feature
//! owns its configuration section; [`settings`] puts the file together, [`state`] is what
//! the running tasks share, and [`agent`] runs them.
//! `docs/architecture.md` draws the whole map.

pub mod agent;
pub mod api;
pub mod archive;
pub mod catalogue;
pub mod cli;
pub mod clock;
pub mod collect;
pub mod config;
pub mod durable;
pub mod history;
pub mod live;
pub mod notify;
#[cfg(test)]
pub(crate) mod props;
pub mod quarantine;
pub mod query;
pub mod rules;
pub mod sample;
pub mod schedule;
pub mod settings;
pub mod state;
pub mod store;
pub mod text;
