//! lookout: a per-host observability and monitoring agent.
//!
//! Data flows one way (DESIGN section 1):
//! [`collect`] (collectors, scheduler) -> [`store`] (latest values, bounded windows) ->
//! [`api`] (`/metrics`, JSON API). Configuration comes from [`config`]; the command line
//! lives in [`cli`] and the long-running agent in [`agent`].

pub mod agent;
pub mod api;
pub mod catalogue;
pub mod cli;
pub mod clock;
pub mod collect;
pub mod config;
pub mod notify;
pub mod rules;
pub mod store;
pub mod text;
