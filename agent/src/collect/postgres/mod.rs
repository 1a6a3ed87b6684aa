//! PostgreSQL: availability, latency, connections, cache hit ratio, transactions, slow
//! queries, average query time, database sizes and replication lag of one
//! `collect.postgres` target, as `lookout_postgres_*`.
//!
//! One [`PostgresCollector`] per target, named `postgres:<name>`, reading through the
//! target's one [`PgLink`] (shared with the races that name it). A check is a `SELECT 1`
//! (the ping), one batch of five statements ([`stats::batch_sql`]) and, when installed,
//! one read of pg_stat_statements: three round trips, all under one deadline of the
//! target's `timeout` that also bounds the connect. What the answers mean is read by the
//! pure functions of [`stats`].
//!
//! **pg_stat_statements** is used when the extension is installed in the connected
//! database and loaded; otherwise `lookout_postgres_statements_available` is 0, the log
//! says why once (and again when it changes), and the average query time is absent: not an
//! error, and `up` stays 1.
//!
//! **Failure.** When a check fails (cannot connect, login refused, no answer in time, an
//! answer that does not read), the run reports only `lookout_postgres_up 0` as a
//! [`CollectError::Target`]: the series exists so that `PostgresDown` can fire, and the
//! status API shows the reason as the collector's `target_error`. The log says it too, the
//! URL redacted. The connection is made again on the next run.

pub mod config;
pub mod link;
pub mod stats;
pub mod tls;

use std::sync::Arc;
use std::time::Instant;

pub use self::config::{PostgresTarget, TlsMode};
pub use self::link::PgLink;
use self::stats::{Reading, Statements, Totals};
use super::{AsyncCollector, BoxFuture, CollectError, Sample, Schedule};
use crate::catalogue::{
    Metric, POSTGRES_CACHE_HIT_RATIO, POSTGRES_CONNECTIONS, POSTGRES_CONNECTIONS_USAGE_RATIO,
    POSTGRES_DATABASE_SIZE_BYTES, POSTGRES_DEADLOCKS_TOTAL, POSTGRES_LONGEST_QUERY_SECONDS,
    POSTGRES_MAX_CONNECTIONS, POSTGRES_PING_SECONDS, POSTGRES_QUERY_AVG_SECONDS,
    POSTGRES_REPLICATION_LAG_SECONDS, POSTGRES_SLOW_QUERIES, POSTGRES_STATEMENTS_AVAILABLE,
    POSTGRES_TRANSACTIONS_TOTAL, POSTGRES_UP,
};

/// Watches one PostgreSQL target.
pub struct PostgresCollector {
    name: String,
    link: Arc<PgLink>,
    /// The counters of the last successful check, for the hit ratio.
    previous: Option<Totals>,
    /// The pg_stat_statements totals of the last check that read them.
    statements: Option<Statements>,
    /// Why pg_stat_statements is not read (`None`: it is), as last logged.
    statements_absent: Option<Option<String>>,
}

impl std::fmt::Debug for PostgresCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCollector")
            .field("name", &self.name)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl PostgresCollector {
    /// A collector reading through `link`; nothing connects before the first run.
    pub fn new(link: Arc<PgLink>) -> Self {
        PostgresCollector {
            name: format!("postgres:{}", link.target().name),
            link,
            previous: None,
            statements: None,
            statements_absent: None,
        }
    }

    fn target(&self) -> &PostgresTarget {
        self.link.target()
    }

    fn sample(&self, metric: &'static Metric, value: f64) -> Sample {
        Sample::with_labels(metric, [("target", self.target().name.clone())], value)
    }

    fn labelled(
        &self,
        metric: &'static Metric,
        label: &'static str,
        value: String,
        v: f64,
    ) -> Sample {
        Sample::with_labels(
            metric,
            [("target", self.target().name.clone()), (label, value)],
            v,
        )
    }

    /// One check; `Err` says why it failed.
    async fn check(&mut self) -> Result<Vec<Sample>, String> {
        let deadline = tokio::time::Instant::now() + self.target().schedule.timeout;
        let client = self.link.client(deadline).await?;
        let started = Instant::now();
        self.link
            .query(&client, "SELECT 1", "SELECT 1", deadline)
            .await?;
        let ping = started.elapsed().as_secs_f64();
        let sql = stats::batch_sql(self.target().slow_query);
        let answers = self
            .link
            .query(&client, "statistics", &sql, deadline)
            .await?;
        let reading = stats::parse_batch(&answers).map_err(|e| format!("statistics: {e}"))?;
        let statements = if reading.statements_installed {
            let sql = stats::statements_sql(reading.version);
            match self
                .link
                .query(&client, "pg_stat_statements", sql, deadline)
                .await
            {
                Ok(answers) => match answers.first().map(stats::parse_statements) {
                    Some(Ok(s)) => Ok(s),
                    Some(Err(e)) => Err(e),
                    None => Err("pg_stat_statements: no answer".to_string()),
                },
                // Installed in the database but not loaded (shared_preload_libraries), or
                // not readable: stated, not a failure. A timeout is a failure, though.
                Err(e) if e.contains("no answer within") => return Err(e),
                Err(e) => Err(e),
            }
        } else {
            Err("pg_stat_statements is not installed in this database \
                 (CREATE EXTENSION pg_stat_statements, with it in shared_preload_libraries)"
                .to_string())
        };
        self.note_statements(statements.as_ref().err());
        Ok(self.samples(ping, &reading, statements.ok()))
    }

    /// Logs whether pg_stat_statements is read, the first time and when it changes.
    fn note_statements(&mut self, why: Option<&String>) {
        if self.statements_absent.as_ref().map(Option::as_ref) == Some(why) {
            return;
        }
        match why {
            None => tracing::info!(collector = %self.name, "reading pg_stat_statements"),
            Some(why) => tracing::info!(
                collector = %self.name,
                reason = %why,
                "no average query time: pg_stat_statements cannot be read"
            ),
        }
        self.statements_absent = Some(why.cloned());
    }

    fn samples(&mut self, ping: f64, r: &Reading, statements: Option<Statements>) -> Vec<Sample> {
        let total = r.total_connections();
        let mut samples = vec![
            self.sample(&POSTGRES_UP, 1.0),
            self.sample(&POSTGRES_PING_SECONDS, ping),
            self.sample(&POSTGRES_MAX_CONNECTIONS, r.max_connections as f64),
            self.sample(&POSTGRES_DEADLOCKS_TOTAL, r.totals.deadlocks as f64),
            self.sample(&POSTGRES_SLOW_QUERIES, r.slow_queries as f64),
            self.sample(&POSTGRES_LONGEST_QUERY_SECONDS, r.longest_query),
            self.sample(
                &POSTGRES_STATEMENTS_AVAILABLE,
                if statements.is_some() { 1.0 } else { 0.0 },
            ),
        ];
        if r.max_connections > 0 {
            samples.push(self.sample(
                &POSTGRES_CONNECTIONS_USAGE_RATIO,
                total as f64 / r.max_connections as f64,
            ));
        }
        for (state, n) in &r.connections {
            samples.push(self.labelled(
                &POSTGRES_CONNECTIONS,
                "state",
                (*state).to_string(),
                *n as f64,
            ));
        }
        for (result, n) in [
            ("commit", r.totals.commits),
            ("rollback", r.totals.rollbacks),
        ] {
            samples.push(self.labelled(
                &POSTGRES_TRANSACTIONS_TOTAL,
                "result",
                result.to_string(),
                n as f64,
            ));
        }
        for (database, size) in &r.sizes {
            if let Some(size) = size {
                samples.push(self.labelled(
                    &POSTGRES_DATABASE_SIZE_BYTES,
                    "database",
                    database.clone(),
                    *size as f64,
                ));
            }
        }
        if let Some(lag) = r.replication_lag {
            samples.push(self.sample(&POSTGRES_REPLICATION_LAG_SECONDS, lag));
        }
        if let Some(ratio) = self
            .previous
            .as_ref()
            .and_then(|p| stats::hit_ratio(p, &r.totals, self.target().min_blocks))
        {
            samples.push(self.sample(&POSTGRES_CACHE_HIT_RATIO, ratio));
        }
        // The average only between two readings of the same server and statistics.
        let same = self
            .previous
            .as_ref()
            .is_some_and(|p| stats::same_epoch(p, &r.totals));
        if let (Some(previous), Some(current), true) = (&self.statements, &statements, same)
            && let Some(avg) = stats::query_avg(previous, current)
        {
            samples.push(self.sample(&POSTGRES_QUERY_AVG_SECONDS, avg));
        }
        self.previous = Some(r.totals.clone());
        self.statements = statements;
        samples
    }
}

impl AsyncCollector for PostgresCollector {
    fn name(&self) -> &str {
        &self.name
    }

    /// The target's `timeout` bounds the check inside the run, so that a server that does
    /// not answer is reported down (`up` 0); the run's own bound is a second later, a
    /// backstop that is never reached first.
    fn schedule(&self) -> Schedule {
        let Schedule { interval, timeout } = self.target().schedule;
        Schedule {
            interval,
            timeout: timeout + std::time::Duration::from_secs(1),
        }
    }

    fn collect<'a>(
        &'a mut self,
        _now: Instant,
    ) -> BoxFuture<'a, Result<Vec<Sample>, CollectError>> {
        Box::pin(async move {
            match self.check().await {
                Ok(samples) => Ok(samples),
                Err(why) => {
                    tracing::warn!(
                        collector = %self.name,
                        url = %self.target().redacted_url(),
                        error = %why,
                        "PostgreSQL check failed"
                    );
                    self.previous = None;
                    self.statements = None;
                    Err(CollectError::Target {
                        samples: vec![self.sample(&POSTGRES_UP, 0.0)],
                        message: format!("{}: {why}", self.target().redacted_url()),
                    })
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
