//! What one PostgreSQL check asks, and the pure reading of the answers.
//!
//! A check is two simple-protocol round trips: [`batch_sql`] (five statements: the server,
//! connections by state, long-running queries, database totals, database sizes) and, when
//! the extension is installed, [`statements_sql`]. The simple protocol answers in text, so
//! every answer is a list of rows of optional strings ([`Rows`]) and everything here is a
//! pure function over them, tested on answers captured from a real server
//! (`tests/fixtures/postgres/`). A missing row, a missing column or a value that does not
//! parse is an error naming the statement and the column, never a panic or a silent zero.
//!
//! **Versions.** The statements work unchanged on PostgreSQL 12 to 17 (`backend_type`,
//! the shared-objects row of `pg_stat_database` with no `datname`, the replay functions all
//! exist since 10 or 12); pg_stat_statements named its execution time `total_time` before
//! 13 and `total_exec_time` since ([`statements_sql`]).
//!
//! **Deltas.** The cache hit ratio and the average query time are over the interval, from
//! the difference of two readings of cumulative counters ([`hit_ratio`], [`query_avg`]).
//! They are undefined (absent, never 0, negative or above 1) on the first reading, when the
//! server restarted or its statistics were reset in between, and when too little happened.

use std::fmt::Write as _;
use std::time::Duration;

/// One statement's answer: rows of columns, `None` for SQL NULL.
pub type Rows = Vec<Vec<Option<String>>>;

/// Statements of [`batch_sql`], in order, as errors name them.
const BATCH_NAMES: [&str; 5] = [
    "server",
    "pg_stat_activity",
    "active queries",
    "pg_stat_database",
    "database sizes",
];

/// Largest number of databases whose size is read.
pub const MAX_DATABASES: usize = 1000;

/// The statements of one check, sent as one simple-protocol query. `slow_query` is written
/// into the text as a number of seconds (the simple protocol takes no parameters).
pub fn batch_sql(slow_query: Duration) -> String {
    let mut sql = String::with_capacity(1400);
    sql.push_str(
        "SELECT current_setting('server_version_num'), current_setting('max_connections'), \
         pg_is_in_recovery(), extract(epoch FROM pg_postmaster_start_time()), \
         CASE WHEN NOT pg_is_in_recovery() THEN NULL \
              WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
              ELSE greatest(0, extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())) END, \
         EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements');\n",
    );
    sql.push_str(
        "SELECT state, count(*) FROM pg_stat_activity \
         WHERE backend_type = 'client backend' GROUP BY state;\n",
    );
    let _ = write!(
        sql,
        "SELECT count(*) FILTER (WHERE clock_timestamp() - query_start > make_interval(secs => {:.3})), \
         coalesce(max(extract(epoch FROM clock_timestamp() - query_start)), 0) \
         FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend' \
         AND pid <> pg_backend_pid();",
        slow_query.as_secs_f64()
    );
    sql.push('\n');
    sql.push_str(
        "SELECT coalesce(sum(xact_commit), 0), coalesce(sum(xact_rollback), 0), \
         coalesce(sum(blks_read), 0), coalesce(sum(blks_hit), 0), coalesce(sum(deadlocks), 0), \
         max(extract(epoch FROM stats_reset)) FROM pg_stat_database;\n",
    );
    let _ = write!(
        sql,
        "SELECT datname, CASE WHEN has_database_privilege(oid, 'CONNECT') \
         OR pg_has_role('pg_read_all_stats', 'MEMBER') THEN pg_database_size(oid) END \
         FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname LIMIT {MAX_DATABASES};"
    );
    sql
}

/// The pg_stat_statements totals of every role but the agent's own (its own statements
/// would be most of an idle server's). `version` is `server_version_num`.
pub fn statements_sql(version: u32) -> &'static str {
    if version < 130_000 {
        "SELECT coalesce(sum(calls), 0), coalesce(sum(total_time), 0) FROM pg_stat_statements \
         WHERE userid <> (SELECT oid FROM pg_roles WHERE rolname = current_user)"
    } else {
        "SELECT coalesce(sum(calls), 0), coalesce(sum(total_exec_time), 0) FROM pg_stat_statements \
         WHERE userid <> (SELECT oid FROM pg_roles WHERE rolname = current_user)"
    }
}

/// The connection states of `pg_stat_activity`, as label values, in the order they are
/// exported (each always, 0 when none).
pub const STATES: [(&str, &str); 6] = [
    ("active", "active"),
    ("idle", "idle"),
    ("idle in transaction", "idle_in_transaction"),
    (
        "idle in transaction (aborted)",
        "idle_in_transaction_aborted",
    ),
    ("fastpath function call", "fastpath"),
    ("disabled", "disabled"),
];

/// Label of connections whose state the agent's role may not see (no `pg_monitor`), or a
/// state newer than this list; exported only when there are some.
pub const STATE_UNKNOWN: &str = "unknown";

/// Cumulative counters summed over every database, and what tells a reset.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    /// `pg_postmaster_start_time()`, seconds: changes when the server restarts.
    pub started: f64,
    /// The latest `stats_reset` of any database, seconds; `None` when none was ever reset.
    pub stats_reset: Option<f64>,
    /// Transactions committed.
    pub commits: u64,
    /// Transactions rolled back.
    pub rollbacks: u64,
    /// Blocks read from outside shared buffers.
    pub blocks_read: u64,
    /// Blocks found in shared buffers.
    pub blocks_hit: u64,
    /// Deadlocks detected.
    pub deadlocks: u64,
}

/// One reading of [`batch_sql`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// `server_version_num`, e.g. 150018.
    pub version: u32,
    /// `max_connections`.
    pub max_connections: u64,
    /// Replay lag in seconds on a replica; `None` on a primary.
    pub replication_lag: Option<f64>,
    /// Whether pg_stat_statements is installed in the connected database.
    pub statements_installed: bool,
    /// Client connections by state label ([`STATES`] order, then [`STATE_UNKNOWN`] if any).
    pub connections: Vec<(&'static str, u64)>,
    /// Active queries running longer than `slow_query`.
    pub slow_queries: u64,
    /// How long the longest active query has run, seconds (0 when none).
    pub longest_query: f64,
    /// The counters.
    pub totals: Totals,
    /// Size of each database, by name; `None` where the role may not measure it.
    pub sizes: Vec<(String, Option<u64>)>,
}

impl Reading {
    /// Client connections, every state together.
    pub fn total_connections(&self) -> u64 {
        self.connections.iter().map(|(_, n)| n).sum()
    }
}

/// Reads the answers of [`batch_sql`], one [`Rows`] per statement.
pub fn parse_batch(answers: &[Rows]) -> Result<Reading, String> {
    if answers.len() != BATCH_NAMES.len() {
        return Err(format!(
            "expected {} answers, got {}",
            BATCH_NAMES.len(),
            answers.len()
        ));
    }
    let server = Row::one(&answers[0], BATCH_NAMES[0])?;
    let version = server.number::<u32>(0, "server_version_num")?;
    let max_connections = server.number::<u64>(1, "max_connections")?;
    let in_recovery = server.boolean(2, "pg_is_in_recovery")?;
    let started = server.number::<f64>(3, "pg_postmaster_start_time")?;
    let replication_lag = server.optional::<f64>(4, "replication lag")?;
    let statements_installed = server.boolean(5, "pg_stat_statements installed")?;
    if in_recovery != replication_lag.is_some() {
        return Err(format!(
            "server: replication lag {replication_lag:?} does not match pg_is_in_recovery {in_recovery}"
        ));
    }

    let mut counts = [0u64; STATES.len()];
    let mut unknown = 0u64;
    for cells in &answers[1] {
        let row = Row::new(cells, BATCH_NAMES[1]);
        let state = row.text(0);
        let count = row.number::<u64>(1, "count")?;
        match state.and_then(|s| STATES.iter().position(|(name, _)| *name == s)) {
            Some(i) => counts[i] = counts[i].saturating_add(count),
            None => unknown = unknown.saturating_add(count),
        }
    }
    let mut connections: Vec<(&'static str, u64)> = STATES
        .iter()
        .zip(counts)
        .map(|((_, label), n)| (*label, n))
        .collect();
    if unknown > 0 {
        connections.push((STATE_UNKNOWN, unknown));
    }

    let active = Row::one(&answers[2], BATCH_NAMES[2])?;
    let slow_queries = active.number::<u64>(0, "slow count")?;
    let longest_query = active.number::<f64>(1, "longest")?.max(0.0);

    let db = Row::one(&answers[3], BATCH_NAMES[3])?;
    let totals = Totals {
        started,
        commits: db.number(0, "xact_commit")?,
        rollbacks: db.number(1, "xact_rollback")?,
        blocks_read: db.number(2, "blks_read")?,
        blocks_hit: db.number(3, "blks_hit")?,
        deadlocks: db.number(4, "deadlocks")?,
        stats_reset: db.optional(5, "stats_reset")?,
    };

    let mut sizes = Vec::with_capacity(answers[4].len().min(MAX_DATABASES));
    for cells in answers[4].iter().take(MAX_DATABASES) {
        let row = Row::new(cells, BATCH_NAMES[4]);
        let name = row
            .text(0)
            .ok_or_else(|| format!("{}: a database without a name", BATCH_NAMES[4]))?;
        sizes.push((name.to_string(), row.optional::<u64>(1, "size")?));
    }
    Ok(Reading {
        version,
        max_connections,
        replication_lag,
        statements_installed,
        connections,
        slow_queries,
        longest_query,
        totals,
        sizes,
    })
}

/// pg_stat_statements totals: statements run, and their execution time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Statements {
    /// Calls, summed.
    pub calls: u64,
    /// Execution time, summed, milliseconds.
    pub time_ms: f64,
}

/// Reads the answer of [`statements_sql`].
pub fn parse_statements(rows: &Rows) -> Result<Statements, String> {
    let row = Row::one(rows, "pg_stat_statements")?;
    Ok(Statements {
        // `sum(calls)` is numeric: a whole number, written without a fraction.
        calls: row.number(0, "calls")?,
        time_ms: row.number::<f64>(1, "execution time")?.max(0.0),
    })
}

/// Blocks found in shared buffers / blocks needed between two readings, or `None` when
/// undefined: another server start, a statistics reset, a counter that went backwards, or
/// fewer than `min_blocks` blocks needed (an idle database has no ratio).
pub fn hit_ratio(previous: &Totals, current: &Totals, min_blocks: u64) -> Option<f64> {
    if !same_epoch(previous, current) {
        return None;
    }
    let hit = current.blocks_hit.checked_sub(previous.blocks_hit)?;
    let read = current.blocks_read.checked_sub(previous.blocks_read)?;
    let needed = hit.checked_add(read)?;
    if needed == 0 || needed < min_blocks {
        return None;
    }
    Some(hit as f64 / needed as f64)
}

/// Whether two readings count from the same start: the same server start and statistics
/// reset, no transaction counter gone backwards.
pub fn same_epoch(previous: &Totals, current: &Totals) -> bool {
    previous.started == current.started
        && previous.stats_reset == current.stats_reset
        && current.commits >= previous.commits
        && current.rollbacks >= previous.rollbacks
}

/// Average execution time in seconds of the statements run between two readings, or
/// `None` when none ran or the totals went backwards (`pg_stat_statements_reset()`, entries
/// evicted).
pub fn query_avg(previous: &Statements, current: &Statements) -> Option<f64> {
    let calls = current.calls.checked_sub(previous.calls)?;
    let time = current.time_ms - previous.time_ms;
    if calls == 0 || time.is_nan() || time < 0.0 {
        return None;
    }
    Some(time / 1000.0 / calls as f64)
}

/// One row of an answer, for typed access with errors naming the statement and column.
struct Row<'a> {
    cells: &'a [Option<String>],
    statement: &'a str,
}

impl<'a> Row<'a> {
    fn new(cells: &'a [Option<String>], statement: &'a str) -> Self {
        Row { cells, statement }
    }

    /// The one row of a statement that answers exactly one.
    fn one(rows: &'a Rows, statement: &'a str) -> Result<Self, String> {
        match rows.as_slice() {
            [row] => Ok(Row::new(row, statement)),
            other => Err(format!(
                "{statement}: expected one row, got {}",
                other.len()
            )),
        }
    }

    fn text(&self, column: usize) -> Option<&'a str> {
        self.cells.get(column).and_then(|c| c.as_deref())
    }

    fn optional<T: std::str::FromStr>(&self, column: usize, what: &str) -> Result<Option<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        if column >= self.cells.len() {
            return Err(format!("{}: no column {column} ({what})", self.statement));
        }
        match self.text(column) {
            None => Ok(None),
            Some(text) => parse_number::<T>(text)
                .map(Some)
                .map_err(|e| format!("{}: {what} {text:?} is not a number: {e}", self.statement)),
        }
    }

    fn number<T: std::str::FromStr>(&self, column: usize, what: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        self.optional(column, what)?
            .ok_or_else(|| format!("{}: {what} is NULL", self.statement))
    }

    fn boolean(&self, column: usize, what: &str) -> Result<bool, String> {
        match self.text(column) {
            Some("t") => Ok(true),
            Some("f") => Ok(false),
            other => Err(format!(
                "{}: {what} is {other:?}, not a boolean",
                self.statement
            )),
        }
    }
}

/// Parses a number as the server writes it; a whole `numeric` may come as `12.0000`.
fn parse_number<T: std::str::FromStr>(text: &str) -> Result<T, T::Err> {
    match text.parse::<T>() {
        Ok(v) => Ok(v),
        Err(e) => match text.split_once('.') {
            Some((whole, fraction)) if fraction.bytes().all(|b| b == b'0') => whole.parse::<T>(),
            _ => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A captured answer: one statement per block separated by a blank line, one row per
    /// line, columns separated by tabs, `\N` for NULL (`psql -At` with `\pset null`).
    pub(crate) fn answers(text: &str) -> Vec<Rows> {
        text.trim_end_matches('\n')
            .split("\n\n")
            .map(|block| {
                block
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(|line| {
                        line.split('\t')
                            .map(|c| (c != "\\N").then(|| c.to_string()))
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    fn fixture(name: &str) -> String {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/postgres")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn reads_a_captured_primary() {
        let reading = parse_batch(&answers(&fixture("batch-primary-15.txt"))).unwrap();
        assert_eq!(reading.version / 10_000, 15);
        assert_eq!(reading.max_connections, 100);
        assert_eq!(reading.replication_lag, None);
        assert!(!reading.statements_installed);
        let idle = reading.connections.iter().find(|(s, _)| *s == "idle");
        assert_eq!(idle, Some(&("idle", 6)));
        assert_eq!(reading.total_connections(), 8);
        assert_eq!(reading.slow_queries, 1);
        assert!(reading.longest_query > 3.0);
        assert!(reading.totals.blocks_hit > reading.totals.blocks_read);
        assert!(reading.totals.commits > 0);
        assert!(
            reading
                .sizes
                .iter()
                .any(|(name, size)| name == "postgres" && size.is_some())
        );
    }

    #[test]
    fn reads_a_captured_replica_and_statements() {
        let reading = parse_batch(&answers(&fixture("batch-replica-15.txt"))).unwrap();
        assert!(reading.replication_lag.is_some_and(|lag| lag >= 0.0));
        assert!(reading.statements_installed);
        let statements = parse_statements(&answers(&fixture("statements-15.txt"))[0]).unwrap();
        assert!(statements.calls > 0 && statements.time_ms > 0.0);
    }

    #[test]
    fn every_state_is_exported_and_unknown_only_when_some() {
        let mut a = answers(&fixture("batch-primary-15.txt"));
        let labels: Vec<&str> = parse_batch(&a)
            .unwrap()
            .connections
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(labels, STATES.iter().map(|(_, l)| *l).collect::<Vec<_>>());
        // A role without pg_monitor sees other roles' sessions with no state.
        a[1].push(vec![None, Some("4".into())]);
        a[1].push(vec![Some("a state of the future".into()), Some("1".into())]);
        let reading = parse_batch(&a).unwrap();
        assert_eq!(reading.connections.last(), Some(&(STATE_UNKNOWN, 5)));
    }

    #[test]
    fn bad_answers_are_errors_naming_what() {
        let good = answers(&fixture("batch-primary-15.txt"));
        let mut short = good.clone();
        short.pop();
        assert!(
            parse_batch(&short)
                .unwrap_err()
                .contains("expected 5 answers")
        );
        let mut no_row = good.clone();
        no_row[3].clear();
        assert!(
            parse_batch(&no_row)
                .unwrap_err()
                .contains("pg_stat_database")
        );
        let mut bad = good.clone();
        bad[0][0][1] = Some("lots".into());
        assert!(parse_batch(&bad).unwrap_err().contains("max_connections"));
        let mut null = good.clone();
        null[3][0][0] = None;
        assert!(
            parse_batch(&null)
                .unwrap_err()
                .contains("xact_commit is NULL")
        );
        let mut narrow = good.clone();
        narrow[2][0].truncate(1);
        assert!(parse_batch(&narrow).unwrap_err().contains("no column 1"));
        let mut lag = good;
        lag[0][0][4] = Some("2".into());
        assert!(parse_batch(&lag).unwrap_err().contains("pg_is_in_recovery"));
        for garbage in [vec![], vec![vec![]; 5], vec![vec![vec![None; 9]]; 5]] {
            assert!(parse_batch(&garbage).is_err());
        }
        assert!(parse_statements(&vec![]).is_err());
        assert!(parse_statements(&vec![vec![Some("x".into()), Some("1".into())]]).is_err());
    }

    #[test]
    fn numerics_with_zero_fractions_are_whole() {
        assert_eq!(parse_number::<u64>("12.0000"), Ok(12));
        assert!(parse_number::<u64>("12.5").is_err());
        assert_eq!(parse_number::<f64>("1.5"), Ok(1.5));
    }

    fn totals(hit: u64, read: u64, commits: u64) -> Totals {
        Totals {
            started: 1000.0,
            stats_reset: None,
            commits,
            rollbacks: 0,
            blocks_read: read,
            blocks_hit: hit,
            deadlocks: 0,
        }
    }

    #[test]
    fn hit_ratio_over_the_interval_with_min_blocks() {
        let a = totals(10_000, 10_000, 5);
        let b = totals(10_900, 10_100, 6);
        assert_eq!(hit_ratio(&a, &b, 100), Some(0.9));
        assert_eq!(hit_ratio(&a, &b, 1001), None);
        // Idle: no ratio, even with no floor.
        assert_eq!(hit_ratio(&a, &a, 0), None);
        let c = totals(10_050, 10_000, 6);
        assert_eq!(hit_ratio(&a, &c, 100), None);
    }

    #[test]
    fn hit_ratio_is_undefined_across_restarts_and_resets() {
        let a = totals(10_000, 10_000, 5);
        let mut restarted = totals(20_000, 10_500, 9);
        restarted.started = 2000.0;
        assert_eq!(hit_ratio(&a, &restarted, 1), None);
        let mut reset = totals(20_000, 10_500, 9);
        reset.stats_reset = Some(1500.0);
        assert_eq!(hit_ratio(&a, &reset, 1), None);
        assert_eq!(hit_ratio(&a, &totals(500, 100, 9), 1), None);
        assert_eq!(hit_ratio(&a, &totals(20_000, 10_500, 4), 1), None);
    }

    #[test]
    fn query_avg_over_the_interval() {
        let a = Statements {
            calls: 100,
            time_ms: 1000.0,
        };
        let b = Statements {
            calls: 110,
            time_ms: 1050.0,
        };
        assert_eq!(query_avg(&a, &b), Some(0.005));
        assert_eq!(query_avg(&a, &a), None);
        assert_eq!(query_avg(&b, &a), None);
        let reset = Statements {
            calls: 120,
            time_ms: 10.0,
        };
        assert_eq!(query_avg(&b, &reset), None);
    }

    #[test]
    fn statements_sql_follows_the_version() {
        assert!(statements_sql(120_017).contains("total_time"));
        assert!(!statements_sql(120_017).contains("total_exec_time"));
        assert!(statements_sql(130_000).contains("total_exec_time"));
        assert!(statements_sql(170_002).contains("total_exec_time"));
        assert!(batch_sql(Duration::from_millis(1500)).contains("secs => 1.500"));
    }
}
