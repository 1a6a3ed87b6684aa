//! The cache-versus-database race: the same lookup timed against Redis and PostgreSQL each
//! interval, as `lookout_race_duration_seconds{source}` and `lookout_race_speedup_ratio`.
//!
//! One [`RaceCollector`] per `collect.races` entry, named `race:<name>`. It reads through
//! the links of the Redis and PostgreSQL targets it names ([`super::links`]): the same one
//! connection that their collectors use, connected before the clock starts, so what is
//! timed is the lookup alone, as the application sees it on a warm connection.
//!
//! **Read-only.** The Redis command must be one of [`READ_COMMANDS`]; the SQL must be a
//! single `SELECT` (or `WITH ... SELECT`) with no locking clause and no `INTO`
//! ([`check_select`]). Both are checked with the configuration (`lookout check`), and the
//! PostgreSQL session is read-only besides (`default_transaction_read_only`), so a function
//! called by the query cannot write either. Of the query's rows, the first
//! [`MAX_ROWS`] are read; the rest are not waited for.
//!
//! **Failure.** When a side fails, the other side's time is still reported, the ratio is
//! not, and the run is a [`CollectError::Target`] naming the side and why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::postgres::{PgLink, PostgresTarget};
use super::redis::{RedisLink, RedisTarget, bounded};
use super::{AsyncCollector, BoxFuture, CollectError, Context, Job, Kind, Sample, Schedule};
use crate::catalogue::{RACE_DURATION_SECONDS, RACE_SPEEDUP_RATIO};
use crate::config::{Checker, Section, Text};

/// Redis commands a race may time: lookups that change nothing.
pub const READ_COMMANDS: &[&str] = &[
    "GET",
    "MGET",
    "GETRANGE",
    "STRLEN",
    "EXISTS",
    "TYPE",
    "TTL",
    "PTTL",
    "HGET",
    "HMGET",
    "HGETALL",
    "HEXISTS",
    "HLEN",
    "HKEYS",
    "HVALS",
    "LRANGE",
    "LINDEX",
    "LLEN",
    "SMEMBERS",
    "SISMEMBER",
    "SCARD",
    "ZRANGE",
    "ZSCORE",
    "ZCARD",
    "ZRANK",
    "JSON.GET",
];

/// Rows of the race's query that are read; the rest are not waited for.
pub const MAX_ROWS: usize = 1000;

/// Longest Redis command or SQL text accepted.
const MAX_LOOKUP_BYTES: usize = 8192;

/// One race, checked, its targets resolved.
#[derive(Debug, Clone)]
pub struct Race {
    /// Unique name, the `race` label.
    pub name: String,
    /// Where it is in the configuration (`collect.races[2]`), for problems.
    pub path: String,
    /// When it runs; the timeout bounds both lookups together.
    pub schedule: Schedule,
    /// The Redis target, by name as written.
    pub redis_name: Text,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// The PostgreSQL target, by name as written.
    pub postgres_name: Text,
    /// The query.
    pub query: String,
    /// The Redis target named, once resolved ([`resolve`]).
    pub redis: Option<RedisTarget>,
    /// The PostgreSQL target named, once resolved ([`resolve`]).
    pub postgres: Option<PostgresTarget>,
}

/// The Redis side of a race as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedisSide {
    /// Name of a `collect.redis` target.
    pub target: Option<Text>,
    /// The lookup, e.g. `GET report:1`.
    pub command: Option<Text>,
}

/// The PostgreSQL side of a race as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgresSide {
    /// Name of a `collect.postgres` target.
    pub target: Option<Text>,
    /// The lookup, a single SELECT.
    pub query: Option<Text>,
}

/// One `collect.races` entry as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRace {
    /// Unique name; absent: a problem.
    pub name: Option<Text>,
    /// Time between runs; absent: `30s`.
    pub interval: Option<Text>,
    /// Bound of both lookups together; absent: min(5s, interval).
    pub timeout: Option<Text>,
    /// The Redis side; absent: a problem.
    pub redis: Option<Spanned<RawRedisSide>>,
    /// The PostgreSQL side; absent: a problem.
    pub postgres: Option<Spanned<RawPostgresSide>>,
}

/// Default interval of a race.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// The `collect.races` section.
#[derive(Debug)]
pub struct RacesSection;

impl Section for RacesSection {
    type Raw = Vec<Spanned<RawRace>>;
    type Value = Vec<Race>;
    const DEFAULTS: &'static str = DEFAULTS_YAML;

    fn check(list: &Self::Raw, path: &str, c: &mut Checker<'_>) -> Vec<Race> {
        c.named_entries(
            path,
            list,
            "race",
            |r: &RawRace| r.name.as_ref(),
            check_race,
        )
    }
}

impl Kind for RacesSection {
    fn build(races: &Vec<Race>, context: &Context) -> Vec<Job> {
        races
            .iter()
            .filter_map(|race| {
                let redis = context.links.redis(race.redis.as_ref()?);
                let postgres = context.links.postgres(race.postgres.as_ref()?);
                Some(Job::Async(Box::new(RaceCollector::new(
                    race.clone(),
                    redis,
                    postgres,
                ))))
            })
            .collect()
    }
}

fn check_race(
    c: &mut Checker<'_>,
    base: &str,
    item: &Spanned<RawRace>,
    name: Option<String>,
) -> Option<Race> {
    let raw = &item.value;
    let schedule = super::check_schedule_from(
        c,
        base,
        raw.interval.as_ref(),
        raw.timeout.as_ref(),
        DEFAULT_INTERVAL,
    );
    let redis_side = c.required(
        base,
        &item.referenced,
        "redis",
        raw.redis.as_ref(),
        "{target: NAME, command: \"GET key\"}",
    );
    let postgres_side = c.required(
        base,
        &item.referenced,
        "postgres",
        raw.postgres.as_ref(),
        "{target: NAME, query: \"SELECT ...\"}",
    );
    let mut redis = None;
    if let Some(side) = redis_side {
        let at = format!("{base}.redis");
        let target = c.required(
            &at,
            &side.referenced,
            "target",
            side.value.target.as_ref(),
            "a collect.redis name",
        );
        let command = c.required(
            &at,
            &side.referenced,
            "command",
            side.value.command.as_ref(),
            "\"GET key\"",
        );
        if let Some(text) = command {
            match parse_command(&text.value) {
                Ok(words) => redis = target.map(|t| (t.clone(), words)),
                Err(why) => c.report(&format!("{at}.command"), Some(&text.referenced), why),
            }
        }
    }
    let mut postgres = None;
    if let Some(side) = postgres_side {
        let at = format!("{base}.postgres");
        let target = c.required(
            &at,
            &side.referenced,
            "target",
            side.value.target.as_ref(),
            "a collect.postgres name",
        );
        let query = c.required(
            &at,
            &side.referenced,
            "query",
            side.value.query.as_ref(),
            "\"SELECT ...\"",
        );
        if let Some(text) = query {
            match check_select(&text.value) {
                Ok(()) => postgres = target.map(|t| (t.clone(), text.value.clone())),
                Err(why) => c.report(&format!("{at}.query"), Some(&text.referenced), why),
            }
        }
    }
    let (name, (redis_name, command), (postgres_name, query)) = (name?, redis?, postgres?);
    Some(Race {
        name,
        path: base.to_string(),
        schedule,
        redis_name,
        command,
        postgres_name,
        query,
        redis: None,
        postgres: None,
    })
}

/// Finds the targets each race names among the checked `collect.redis` and
/// `collect.postgres` entries; a name with no target is a problem at the race.
pub fn resolve(
    races: &mut [Race],
    redis: &[RedisTarget],
    postgres: &[PostgresTarget],
    c: &mut Checker<'_>,
) {
    for race in races.iter_mut() {
        race.redis = redis
            .iter()
            .find(|t| t.name == race.redis_name.value)
            .cloned();
        if race.redis.is_none() && !c.removed("collect.redis") {
            c.report(
                &format!("{}.redis.target", race.path),
                Some(&race.redis_name.referenced),
                format!(
                    "no Redis target named {:?} in collect.redis",
                    race.redis_name.value
                ),
            );
        }
        race.postgres = postgres
            .iter()
            .find(|t| t.name == race.postgres_name.value)
            .cloned();
        if race.postgres.is_none() && !c.removed("collect.postgres") {
            c.report(
                &format!("{}.postgres.target", race.path),
                Some(&race.postgres_name.referenced),
                format!(
                    "no PostgreSQL target named {:?} in collect.postgres",
                    race.postgres_name.value
                ),
            );
        }
    }
}

/// Splits a Redis command into words: spaces separate, `"..."` quotes (with `\"` and
/// `\\`), and the command must be one of [`READ_COMMANDS`] with at least one argument.
pub fn parse_command(text: &str) -> Result<Vec<String>, String> {
    if text.len() > MAX_LOOKUP_BYTES {
        return Err(format!("longer than {MAX_LOOKUP_BYTES} bytes"));
    }
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("a quote is not closed".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(escaped @ ('"' | '\\')) => word.push(escaped),
                        _ => return Err("only \\\" and \\\\ are escapes".into()),
                    },
                    Some(other) => word.push(other),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err("a quoted word must be followed by a space".into());
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '"' {
                    return Err("a quote inside a word".into());
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
    let Some(first) = words.first_mut() else {
        return Err("must not be empty".into());
    };
    *first = first.to_ascii_uppercase();
    if !READ_COMMANDS.contains(&first.as_str()) {
        return Err(format!(
            "{first} is not a read-only lookup; a race times one of {}",
            READ_COMMANDS.join(", ")
        ));
    }
    if words.len() < 2 {
        return Err(format!("{} needs a key", words[0]));
    }
    Ok(words)
}

/// Checks that `sql` is a single read-only query: it starts with `SELECT` or `WITH`
/// (comments and space before it allowed), holds no second statement (a `;` only at the
/// end), no `INTO`, no locking clause (`FOR UPDATE`, `FOR SHARE`, ...) and, in a `WITH`, no
/// `INSERT`, `UPDATE`, `DELETE` or `MERGE`. Quoted strings, quoted identifiers,
/// dollar-quoted strings and comments are skipped, so a word inside them does not count.
pub fn check_select(sql: &str) -> Result<(), String> {
    if sql.len() > MAX_LOOKUP_BYTES {
        return Err(format!("longer than {MAX_LOOKUP_BYTES} bytes"));
    }
    let words = sql_words(sql)?;
    let Some(first) = words.first() else {
        return Err("must not be empty".into());
    };
    if first != "SELECT" && first != "WITH" {
        return Err(format!(
            "must be a single SELECT (a race only reads), got {first}"
        ));
    }
    if let Some(at) = words.iter().position(|w| w == ";")
        && at + 1 != words.len()
    {
        return Err("must be a single statement: nothing may follow `;`".into());
    }
    for (i, word) in words.iter().enumerate() {
        let next = words.get(i + 1).map(String::as_str);
        let refused = match word.as_str() {
            "INTO" => Some("SELECT INTO creates a table"),
            "FOR" if matches!(next, Some("UPDATE" | "SHARE" | "NO" | "KEY")) => {
                Some("a locking clause (FOR UPDATE/SHARE) takes locks")
            }
            "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "TRUNCATE" | "COPY" => {
                Some("a race only reads")
            }
            _ => None,
        };
        if let Some(why) = refused {
            return Err(format!(
                "must be a read-only SELECT: {word} is refused ({why})"
            ));
        }
    }
    Ok(())
}

/// The upper-cased words and `;`s of `sql` outside strings, quoted identifiers and comments.
fn sql_words(sql: &str) -> Result<Vec<String>, String> {
    let bytes = sql.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = sql[i + 2..]
                    .find("*/")
                    .ok_or("a /* comment is not closed")?;
                i = i + 2 + end + 2;
            }
            b'\'' | b'"' => {
                // A doubled quote inside is an escaped one: skipping to each next quote
                // and starting again lands on the same end.
                let end = sql[i + 1..]
                    .find(b as char)
                    .ok_or("a quoted string or name is not closed")?;
                i = i + 1 + end + 1;
            }
            b'$' => {
                // $tag$ ... $tag$ (or a $1 parameter, which a race cannot have).
                let tag_end = sql[i + 1..].find('$').map(|n| i + 1 + n);
                match tag_end {
                    Some(end)
                        if sql[i + 1..end]
                            .bytes()
                            .all(|c| c.is_ascii_alphanumeric() || c == b'_')
                            && !sql[i + 1..end].starts_with(|c: char| c.is_ascii_digit()) =>
                    {
                        let tag = &sql[i..=end];
                        let close = sql[end + 1..]
                            .find(tag)
                            .ok_or("a dollar-quoted string is not closed")?;
                        i = end + 1 + close + tag.len();
                    }
                    _ => return Err("a race's query takes no parameters ($)".into()),
                }
            }
            b';' => {
                words.push(";".to_string());
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                words.push(sql[start..i].to_ascii_uppercase());
            }
            _ => i += 1,
        }
    }
    Ok(words)
}

/// Times one race.
pub struct RaceCollector {
    name: String,
    race: Race,
    redis: Arc<RedisLink>,
    postgres: Arc<PgLink>,
}

impl std::fmt::Debug for RaceCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaceCollector")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RaceCollector {
    /// A race reading through the targets' links.
    pub fn new(race: Race, redis: Arc<RedisLink>, postgres: Arc<PgLink>) -> Self {
        RaceCollector {
            name: format!("race:{}", race.name),
            race,
            redis,
            postgres,
        }
    }

    fn duration(&self, source: &str, seconds: f64) -> Sample {
        Sample::with_labels(
            &RACE_DURATION_SECONDS,
            [
                ("race", self.race.name.clone()),
                ("source", source.to_string()),
            ],
            seconds,
        )
    }

    /// The Redis lookup's time.
    async fn redis_side(&self, timeout: Duration) -> Result<f64, String> {
        let mut conn = self.redis.manager()?;
        let mut cmd = redis::cmd(&self.race.command[0]);
        for arg in &self.race.command[1..] {
            cmd.arg(arg);
        }
        // Connected first (the manager connects on its first command): the clock times
        // the lookup on a warm connection, as the application's own.
        let _: String = bounded(timeout, "PING", redis::cmd("PING").query_async(&mut conn)).await?;
        let started = Instant::now();
        let _: redis::Value =
            bounded(timeout, &self.race.command[0], cmd.query_async(&mut conn)).await?;
        Ok(started.elapsed().as_secs_f64())
    }

    /// The PostgreSQL lookup's time: until the last row (or the [`MAX_ROWS`]th) arrived.
    async fn postgres_side(&self, deadline: tokio::time::Instant) -> Result<f64, String> {
        let client = self.postgres.client(deadline).await?;
        let started = Instant::now();
        let lookup = async {
            let stream = client
                .simple_query_raw(&self.race.query)
                .await
                .map_err(|e| super::postgres::link::describe(&e))?;
            let mut stream = std::pin::pin!(stream);
            let mut rows = 0usize;
            while let Some(row) = stream.next().await {
                row.map_err(|e| super::postgres::link::describe(&e))?;
                rows += 1;
                if rows >= MAX_ROWS {
                    break;
                }
            }
            Ok::<_, String>(())
        };
        match tokio::time::timeout_at(deadline, lookup).await {
            Ok(result) => result?,
            Err(_) => {
                self.postgres.reset().await;
                return Err(format!("no answer within {:?}", self.race.schedule.timeout));
            }
        }
        Ok(started.elapsed().as_secs_f64())
    }
}

impl AsyncCollector for RaceCollector {
    fn name(&self) -> &str {
        &self.name
    }

    /// Both lookups under the race's timeout; the run's own bound a second later.
    fn schedule(&self) -> Schedule {
        Schedule {
            interval: self.race.schedule.interval,
            timeout: self.race.schedule.timeout + Duration::from_secs(1),
        }
    }

    fn collect<'a>(
        &'a mut self,
        _now: Instant,
    ) -> BoxFuture<'a, Result<Vec<Sample>, CollectError>> {
        Box::pin(async move {
            let timeout = self.race.schedule.timeout;
            let deadline = tokio::time::Instant::now() + timeout;
            let redis = match tokio::time::timeout_at(deadline, self.redis_side(timeout)).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            let postgres = self.postgres_side(deadline).await;
            let mut samples = Vec::with_capacity(3);
            let mut problems = Vec::new();
            match &redis {
                Ok(seconds) => samples.push(self.duration("redis", *seconds)),
                Err(why) => problems.push(format!("redis {}: {why}", self.race.redis_name.value)),
            }
            match &postgres {
                Ok(seconds) => samples.push(self.duration("postgres", *seconds)),
                Err(why) => {
                    problems.push(format!("postgres {}: {why}", self.race.postgres_name.value))
                }
            }
            if let (Ok(r), Ok(p)) = (redis, postgres) {
                if r > 0.0 {
                    samples.push(Sample::with_labels(
                        &RACE_SPEEDUP_RATIO,
                        [("race", self.race.name.clone())],
                        p / r,
                    ));
                }
                return Ok(samples);
            }
            let message = problems.join("; ");
            tracing::warn!(collector = %self.name, error = %message, "race lookup failed");
            Err(CollectError::Target { samples, message })
        })
    }
}

/// `lookout config default`'s text for this section.
const DEFAULTS_YAML: &str = r#"# Cache-versus-database races (lookout_race_*): the same lookup timed against a
# collect.redis target and a collect.postgres target, through their connections. Empty: none.
# Every key of an entry:
#   - name: report                       # required, unique; the `race` label
#     interval: 30s                      # from 1s to 1h
#     timeout: 5s                        # bounds both lookups; left out: min(5s, interval)
#     redis: {target: cache, command: "GET report:1"}    # a read-only command
#     postgres: {target: main, query: "SELECT body FROM reports WHERE id = 1"}
#                                        # a single SELECT; the first 1000 rows are read
races: []
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_commands_are_read_only_lookups() {
        assert_eq!(
            parse_command("get report:1").unwrap(),
            vec!["GET", "report:1"]
        );
        assert_eq!(
            parse_command(r#"HGET "user 1" "na\"me""#).unwrap(),
            vec!["HGET", "user 1", "na\"me"]
        );
        for (bad, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("SET k v", "not a read-only lookup"),
            ("FLUSHALL", "not a read-only lookup"),
            ("DEL k", "not a read-only lookup"),
            ("EVAL \"return 1\" 0", "not a read-only lookup"),
            ("GET", "needs a key"),
            ("GET \"open", "not closed"),
            ("GET a\"b", "quote inside"),
            ("GET \"a\"b", "followed by a space"),
            ("GET \"\\n\"", "escapes"),
        ] {
            let err = parse_command(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(parse_command(&format!("GET {}", "k".repeat(9000))).is_err());
    }

    #[test]
    fn only_single_selects_are_accepted() {
        for good in [
            "SELECT body FROM reports WHERE id = 1",
            "  -- the report\n select 1;",
            "/* a */ SELECT 'DELETE; INSERT', \"for\" FROM t",
            "WITH r AS (SELECT 1) SELECT * FROM r",
            "SELECT $x$ ; UPDATE $x$",
            "SELECT 'it''s' AS a",
            "SELECT updated_at, deleted FROM t ORDER BY 1 FOR READ ONLY",
        ] {
            assert_eq!(check_select(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("-- nothing", "empty"),
            ("UPDATE t SET a = 1", "single SELECT"),
            ("DELETE FROM t", "single SELECT"),
            ("SELECT 1; DROP TABLE t", "nothing may follow"),
            ("SELECT 1;;", "nothing may follow"),
            ("SELECT * INTO copy FROM t", "INTO"),
            ("SELECT * FROM t FOR UPDATE", "locking"),
            ("SELECT * FROM t FOR NO KEY UPDATE", "locking"),
            (
                "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
                "DELETE",
            ),
            ("SELECT 'open", "not closed"),
            ("SELECT /* open", "not closed"),
            ("SELECT $1", "parameters"),
            ("SELECT $a$ open", "not closed"),
            ("COPY t TO '/tmp/x'", "single SELECT"),
            ("EXPLAIN ANALYZE DELETE FROM t", "single SELECT"),
        ] {
            let err = check_select(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    fn load(yaml: &str) -> Result<crate::settings::Config, String> {
        crate::settings::load_str(yaml, "lookout.yaml").map_err(|p| {
            p.0.iter()
                .map(|p| format!("{}:{:?}: {}: {}\n", p.file, p.line, p.path, p.message))
                .collect()
        })
    }

    const TARGETS: &str = "collect:\n  redis:\n    - {name: cache, url: \"redis://127.0.0.1:6379\"}\n  \
                           postgres:\n    - {name: main, url: \"postgres://lookout@127.0.0.1:5432/app\"}\n";

    #[test]
    fn a_race_finds_its_targets_by_name() {
        let config = load(&format!(
            "{TARGETS}  races:\n    - {{name: report, redis: {{target: cache, command: \"GET report:1\"}}, \
             postgres: {{target: main, query: \"SELECT body FROM reports WHERE id = 1\"}}}}\n"
        ))
        .unwrap();
        let race = &config.collect.races[0];
        assert_eq!(race.schedule.interval, Duration::from_secs(30));
        assert_eq!(race.redis.as_ref().map(|t| t.name.as_str()), Some("cache"));
        assert_eq!(
            race.postgres.as_ref().map(|t| t.name.as_str()),
            Some("main")
        );
        let jobs = config.collect.build(&Context::new(
            std::path::Path::new("/proc"),
            std::path::PathBuf::from("/"),
        ));
        assert!(jobs.iter().any(|j| j.name() == "race:report"), "{jobs:?}");
    }

    #[test]
    fn unknown_targets_and_writes_are_problems_where_written() {
        let problems = load(&format!(
            "{TARGETS}  races:\n    - {{name: r, redis: {{target: nope, command: \"GET k\"}}, \
             postgres: {{target: gone, query: \"SELECT 1\"}}}}\n"
        ))
        .unwrap_err();
        assert!(
            problems.contains("collect.races[0].redis.target"),
            "{problems}"
        );
        assert!(
            problems.contains("no Redis target named \"nope\""),
            "{problems}"
        );
        assert!(
            problems.contains("no PostgreSQL target named \"gone\""),
            "{problems}"
        );
        assert!(
            problems.contains(":Some(7): "),
            "the line of the race: {problems}"
        );
        let problems = load(&format!(
            "{TARGETS}  races:\n    - {{name: r, redis: {{target: cache, command: \"SET k v\"}}, \
             postgres: {{target: main, query: \"DELETE FROM t\"}}}}\n"
        ))
        .unwrap_err();
        assert!(
            problems.contains("collect.races[0].redis.command"),
            "{problems}"
        );
        assert!(
            problems.contains("collect.races[0].postgres.query"),
            "{problems}"
        );
        let problems = load(&format!("{TARGETS}  races:\n    - {{name: r}}\n")).unwrap_err();
        assert!(problems.contains("`redis` is required"), "{problems}");
        assert!(problems.contains("`postgres` is required"), "{problems}");
    }
}
