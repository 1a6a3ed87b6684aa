//! The one connection to each Redis and PostgreSQL target, shared.
//!
//! A target's collector and every race that names the target talk to the server through the
//! same [`RedisLink`] or [`PgLink`]: one connection per target, whatever reads it, so the
//! agent is never the client that exhausts a server's `max_connections` or `maxclients`.
//! Links are made on first request, keyed by target name, when the collectors are built.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::postgres::{PgLink, PostgresTarget};
use super::redis::{RedisLink, RedisTarget};

/// The links of one build of the collectors.
#[derive(Debug, Default)]
pub struct Links {
    redis: Mutex<HashMap<String, Arc<RedisLink>>>,
    postgres: Mutex<HashMap<String, Arc<PgLink>>>,
}

impl Links {
    /// The link to Redis `target`, made on first request.
    pub fn redis(&self, target: &RedisTarget) -> Arc<RedisLink> {
        let mut links = self.redis.lock().unwrap_or_else(PoisonError::into_inner);
        links
            .entry(target.name.clone())
            .or_insert_with(|| Arc::new(RedisLink::new(target.clone())))
            .clone()
    }

    /// The link to PostgreSQL `target`, made on first request.
    pub fn postgres(&self, target: &PostgresTarget) -> Arc<PgLink> {
        let mut links = self.postgres.lock().unwrap_or_else(PoisonError::into_inner);
        links
            .entry(target.name.clone())
            .or_insert_with(|| Arc::new(PgLink::new(target.clone())))
            .clone()
    }
}
