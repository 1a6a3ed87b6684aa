//! The one connection to a PostgreSQL target, shared by its collector and its races.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::config::{PostgresTarget, TlsMode};
use super::stats::Rows;
use super::tls::MakeRustls;
use crate::config::secret::redact_urls_in;

/// `application_name` of the agent's connections, as `pg_stat_activity` shows them.
pub const APPLICATION_NAME: &str = "lookout";

/// The connection to one target: made on first use, kept, and made again after it broke.
///
/// The session is read-only (`default_transaction_read_only`), and the server cancels any
/// statement of it that runs past the target's timeout (`statement_timeout`), so a lookup
/// that the agent gave up on does not keep running there.
pub struct PgLink {
    target: PostgresTarget,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
}

impl std::fmt::Debug for PgLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLink")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PgLink {
    /// A link to `target`; nothing connects before the first use.
    pub fn new(target: PostgresTarget) -> Self {
        PgLink {
            target,
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// The target this link connects to.
    pub fn target(&self) -> &PostgresTarget {
        &self.target
    }

    /// The open connection, connecting first when there is none (or it closed), by
    /// `deadline`. Callers racing for it wait for one connect: never two connections.
    pub async fn client(&self, deadline: Instant) -> Result<Arc<Client>, String> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        *slot = None;
        let client = match tokio::time::timeout_at(deadline, self.connect()).await {
            Ok(result) => Arc::new(result?),
            Err(_) => return Err(format!("connect: no answer within {:?}", self.timeout())),
        };
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Drops the connection (after a timeout: it may be stuck), so the next use connects
    /// afresh. A query running elsewhere on it finishes or fails first.
    pub async fn reset(&self) {
        *self.client.lock().await = None;
    }

    fn timeout(&self) -> Duration {
        self.target.schedule.timeout
    }

    async fn connect(&self) -> Result<Client, String> {
        let mut config = tokio_postgres::Config::from_str(&self.target.url).map_err(|e| {
            format!(
                "invalid URL {}: {}",
                self.target.redacted_url(),
                describe(&e)
            )
        })?;
        if let Some(password) = &self.target.password {
            config.password(password.expose());
        }
        let timeout_ms = self.timeout().as_millis().max(1);
        config
            .application_name(APPLICATION_NAME)
            .connect_timeout(self.timeout())
            .keepalives(true)
            .options(format!(
                "-c default_transaction_read_only=on -c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}"
            ));
        let (client, connection) = match self.target.tls {
            TlsMode::Disable => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| describe(&e))?;
                (client, tokio::spawn(connection))
            }
            mode => {
                config.ssl_mode(if mode == TlsMode::Require {
                    tokio_postgres::config::SslMode::Require
                } else {
                    tokio_postgres::config::SslMode::Prefer
                });
                let ca = match &self.target.ca_file {
                    None => None,
                    Some(path) => Some(
                        std::fs::read(path)
                            .map_err(|e| format!("ca_file {}: {e}", path.display()))?,
                    ),
                };
                let tls = MakeRustls::new(ca.as_deref())?;
                let (client, connection) = config.connect(tls).await.map_err(|e| describe(&e))?;
                (client, tokio::spawn(connection))
            }
        };
        // The connection task ends when the client is dropped or the server goes away;
        // its error then shows through the next query.
        drop(connection);
        Ok(client)
    }

    /// Runs `sql` (simple protocol, one or more statements) on `client` by `deadline`:
    /// the rows of each statement, text values. A timeout drops the connection.
    pub async fn query(
        &self,
        client: &Client,
        what: &str,
        sql: &str,
        deadline: Instant,
    ) -> Result<Vec<Rows>, String> {
        match tokio::time::timeout_at(deadline, client.simple_query(sql)).await {
            Ok(Ok(messages)) => Ok(rows_of(messages)),
            Ok(Err(e)) => Err(format!("{what}: {}", describe(&e))),
            Err(_) => {
                self.reset().await;
                Err(format!("{what}: no answer within {:?}", self.timeout()))
            }
        }
    }
}

/// The rows of each statement of a simple-protocol answer.
fn rows_of(messages: Vec<SimpleQueryMessage>) -> Vec<Rows> {
    let mut answers: Vec<Rows> = Vec::new();
    let mut current: Rows = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::Row(row) => current.push(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            SimpleQueryMessage::CommandComplete(_) => answers.push(std::mem::take(&mut current)),
            _ => {}
        }
    }
    answers
}

/// A client error as an operator reads it: the server's own message for a database error
/// (`FATAL: password authentication failed for user "lookout"`), the cause otherwise
/// (`error connecting to server: Connection refused`). URLs in it are redacted.
pub fn describe(e: &tokio_postgres::Error) -> String {
    let text = if let Some(db) = e.as_db_error() {
        let mut text = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(hint) = db.hint() {
            text.push_str("; hint: ");
            text.push_str(hint);
        }
        text
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    };
    redact_urls_in(&text)
}
