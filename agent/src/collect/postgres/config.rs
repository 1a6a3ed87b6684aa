//! The `collect.postgres` section: what the configuration file says about PostgreSQL
//! targets.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::super::{Context, Job, Schedule, Target, check_schedule_from};
use super::{PostgresCollector, tls::MakeRustls};
use crate::config::check::SecretOutcome;
use crate::config::secret::{Secret, redact_url};
use crate::config::{Checker, Text};

/// Default `interval` of a PostgreSQL target.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Default `slow_query`.
pub const DEFAULT_SLOW_QUERY: Duration = Duration::from_secs(5);
/// Default `min_blocks`.
pub const DEFAULT_MIN_BLOCKS: u64 = 100;

/// One `collect.postgres` entry as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    /// Unique name, the `target` label; absent: a problem.
    pub name: Option<Text>,
    /// `postgres://user@host:port/database`; absent: a problem.
    pub url: Option<Text>,
    /// `${ENV_NAME}` holding the password; absent: `password_file` or the URL's.
    pub password: Option<Text>,
    /// File holding the password; absent: `password` or the URL's.
    pub password_file: Option<Text>,
    /// Time between checks; absent: `30s`.
    pub interval: Option<Text>,
    /// Bound of a whole check (connect and every query); absent: min(5s, interval).
    pub timeout: Option<Text>,
    /// Queries active longer than this are slow; absent: `5s`.
    pub slow_query: Option<Text>,
    /// `disable`, `prefer` or `require`; absent: `prefer`.
    pub tls: Option<Text>,
    /// PEM certificates the server's must lead to; absent: not checked.
    pub ca_file: Option<Text>,
    /// Fewer blocks needed in an interval: no cache hit ratio; absent: `100`.
    pub min_blocks: Option<Spanned<i64>>,
}

/// Whether and how the connection is encrypted (libpq's `sslmode` of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, plain otherwise.
    Prefer,
    /// TLS or no connection.
    Require,
}

/// One `collect.postgres` entry: a PostgreSQL server to watch.
///
/// `Debug` shows the URL redacted and never the password.
#[derive(Clone)]
pub struct PostgresTarget {
    /// Unique name, the value of the `target` label.
    pub name: String,
    /// `postgres://` or `postgresql://` URL; never log it as is ([`Self::redacted_url`]).
    pub url: String,
    /// Password from `password` or `password_file`, used when the URL carries none.
    pub password: Option<Secret>,
    /// Interval between checks; the timeout bounds a whole check.
    pub schedule: Schedule,
    /// Active longer than this: a slow query.
    pub slow_query: Duration,
    /// TLS mode.
    pub tls: TlsMode,
    /// Certificates the server's is checked against; `None`: encrypted, not checked.
    pub ca_file: Option<PathBuf>,
    /// Fewer blocks needed in an interval: no cache hit ratio for it.
    pub min_blocks: u64,
}

impl PostgresTarget {
    /// `scheme://host:port` of the URL, the rest redacted, for logs and problems.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("name", &self.name)
            .field("url", &self.redacted_url())
            .field("password", &self.password)
            .field("schedule", &self.schedule)
            .field("slow_query", &self.slow_query)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("min_blocks", &self.min_blocks)
            .finish()
    }
}

impl Target for PostgresTarget {
    type Raw = RawPostgres;
    const WHAT: &'static str = "PostgreSQL target";
    const DEFAULTS: &'static str = DEFAULTS_YAML;

    fn name(raw: &RawPostgres) -> Option<&Text> {
        raw.name.as_ref()
    }

    fn check(
        c: &mut Checker<'_>,
        base: &str,
        item: &Spanned<RawPostgres>,
        name: Option<String>,
    ) -> Option<PostgresTarget> {
        let raw = &item.value;
        let mut valid = true;
        let url = c.required_url(
            base,
            item,
            raw.url.as_ref(),
            "postgres://user@host:port/database",
            check_postgres_url,
        );
        let password = match c.url_password(
            base,
            url.as_deref(),
            raw.password.as_ref(),
            raw.password_file.as_ref(),
        ) {
            SecretOutcome::Given(secret, _) => Some(secret),
            SecretOutcome::Absent => None,
            SecretOutcome::Invalid => {
                valid = false;
                None
            }
        };
        let schedule = check_schedule_from(
            c,
            base,
            raw.interval.as_ref(),
            raw.timeout.as_ref(),
            DEFAULT_INTERVAL,
        );
        let slow_query = c
            .duration(
                &format!("{base}.slow_query"),
                raw.slow_query.as_ref(),
                DEFAULT_SLOW_QUERY,
                Duration::from_millis(100),
                Some(Duration::from_secs(86_400)),
            )
            .unwrap_or(DEFAULT_SLOW_QUERY);
        let tls = match raw.tls.as_ref().map(|t| (t.value.as_str(), t)) {
            None | Some(("prefer", _)) => TlsMode::Prefer,
            Some(("disable", _)) => TlsMode::Disable,
            Some(("require", _)) => TlsMode::Require,
            Some((other, text)) => {
                c.report(
                    &format!("{base}.tls"),
                    Some(&text.referenced),
                    format!("must be disable, prefer or require, got {other:?}"),
                );
                valid = false;
                TlsMode::Prefer
            }
        };
        let ca_file = match &raw.ca_file {
            None => None,
            Some(text) => {
                let path = format!("{base}.ca_file");
                let file = c.relative_to_config(&text.value);
                let problem = if tls == TlsMode::Disable {
                    Some("is of no use with `tls: disable`".to_string())
                } else {
                    match std::fs::read(&file) {
                        Err(e) => Some(format!("cannot read {}: {e}", file.display())),
                        Ok(pem) => MakeRustls::new(Some(&pem))
                            .err()
                            .map(|e| format!("{}: {e}", file.display())),
                    }
                };
                if let Some(problem) = problem {
                    c.report(&path, Some(&text.referenced), problem);
                    valid = false;
                }
                Some(file)
            }
        };
        let min_blocks = c.count(
            &format!("{base}.min_blocks"),
            raw.min_blocks.as_ref(),
            DEFAULT_MIN_BLOCKS,
            1..=u64::MAX,
        );
        match (name, url, valid) {
            (Some(name), Some(url), true) => Some(PostgresTarget {
                name,
                url,
                password,
                schedule,
                slow_query,
                tls,
                ca_file,
                min_blocks,
            }),
            _ => None,
        }
    }

    fn collector(&self, context: &Context) -> Job {
        Job::Async(Box::new(PostgresCollector::new(
            context.links.postgres(self),
        )))
    }
}

/// Checks a `collect.postgres` URL: `postgres://` or `postgresql://`, readable by the
/// client, with a host, and no `sslmode` (the `tls` key says that). Problems never show a
/// password.
pub fn check_postgres_url(text: &str) -> Result<(), String> {
    let Some((scheme, _)) = text.split_once("://") else {
        return Err(format!(
            "must be a postgres:// URL, got {:?}",
            redact_url(text)
        ));
    };
    if scheme != "postgres" && scheme != "postgresql" {
        return Err(format!(
            "must be postgres:// or postgresql://, got {scheme:?}"
        ));
    }
    let config = tokio_postgres::Config::from_str(text)
        .map_err(|e| format!("invalid URL {}: {e}", redact_url(text)))?;
    if config.get_hosts().is_empty() {
        return Err("URL has no host".into());
    }
    if text.contains("sslmode=") {
        return Err("set TLS with the target's `tls` key, not `sslmode` in the URL".into());
    }
    Ok(())
}

/// `lookout config default`'s text for this section.
const DEFAULTS_YAML: &str = r#"# PostgreSQL servers to watch (lookout_postgres_*), one entry each. Empty: none.
# The agent keeps one connection per server, read-only, and its role needs pg_monitor:
#   CREATE ROLE lookout LOGIN PASSWORD '...' IN ROLE pg_monitor;
# Every key of an entry:
#   - name: main                           # required, unique; the `target` label
#     url: "postgres://lookout@127.0.0.1:5432/app"   # required; postgres:// or
#                                          # postgresql://, optional user:password@
#     password: "${PGPASSWORD}"            # or password_file: FILE (not both, and not
#     password_file: null                  # with a password in the URL)
#     interval: 30s                        # from 1s to 1h
#     timeout: 5s                          # bounds a whole check; left out: min(5s, interval)
#     slow_query: 5s                       # queries active longer than this are slow
#     tls: prefer                          # disable | prefer | require, as libpq's sslmode
#     ca_file: null                        # PEM CA: the server's certificate and host name
#                                          # are checked (else encrypted, not checked)
#     min_blocks: 100                      # fewer blocks needed in an interval: no hit ratio
postgres: []
"#;
