//! Redis / Valkey: availability, latency, keyspace hit ratio, memory, clients and queue
//! lengths of one `collect.redis` target, as `lookout_redis_*`.
//!
//! One [`RedisCollector`] per configured target, named `redis:<name>`. It holds one
//! [`redis::aio::ConnectionManager`], created on the first run (not at start-up, so a Redis
//! that is down when the agent starts is no start-up error). The manager reconnects after a
//! failed command; its own retries are limited to one attempt per command so that a down
//! server costs one connection attempt per interval, never a busy loop. Every command
//! (`PING`, one `LLEN` per queue, `INFO`) is bounded by the target's `timeout` with
//! [`tokio::time::timeout`].
//!
//! The `INFO` reply is read by the pure [`parse_info`]; a missing field is an error naming
//! it, never a panic or a silent zero.
//!
//! **Bounded replies.** The `redis` crate reads each reply whole before handing it over, and
//! offers no size limit; what bounds a reply is the command's `timeout` (a server streaming
//! an endless reply is cut off there). On top of that the collector refuses an `INFO` reply
//! over [`MAX_INFO_BYTES`] (a real one is about 5 KiB) before parsing it, and a `PING` reply
//! other than `PONG`; `LLEN` replies are integers.
//!
//! **Hit ratio.** `keyspace_hits` / `keyspace_misses` are cumulative since start or the last
//! `CONFIG RESETSTAT`, so a lifetime ratio hides a current collapse. The ratio is
//! computed from the deltas since the previous successful run: `Δhits / (Δhits + Δmisses)`,
//! and only when
//! - there was a previous successful run (the first run and the run after a failure have
//!   none: the interval is unknown),
//! - the server is the same one (`run_id` unchanged) and no counter went backwards
//!   (`total_commands_processed`, hits, misses): a restart or `CONFIG RESETSTAT` gives no
//!   ratio for that run, never one outside 0..1,
//! - the collector's own lookups are taken out (each `LLEN` of a queue counts as a hit or a
//!   miss in Redis; they run before `INFO`, so they fall in the window they are known for),
//! - `Δhits + Δmisses >= min_lookups`: an idle cache has no ratio (absent, not 0 or 1).
//!
//! **Failure.** When a run fails (cannot connect, timeout, unreadable `INFO`), the collector
//! still returns `Ok` holding **only** `lookout_redis_up 0`, so that the series exists and
//! `RedisDown` can fire; the error is logged with the URL redacted to
//! `scheme://host:port` ([`redact_url`]: a password in the URL never shows). The
//! `role` label of that sample is the last role seen, or `unknown` if the server was never
//! reached.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::IntoConnectionInfo;
use redis::aio::ConnectionManager;

use super::{AsyncCollector, BoxFuture, CollectError, Sample};
use crate::catalogue::{
    Metric, REDIS_COMMANDS_PROCESSED_TOTAL, REDIS_CONNECTED_CLIENTS, REDIS_EVICTED_KEYS_TOTAL,
    REDIS_HIT_RATIO, REDIS_KEYSPACE_HITS_TOTAL, REDIS_KEYSPACE_MISSES_TOTAL,
    REDIS_MEMORY_MAX_BYTES, REDIS_MEMORY_USAGE_RATIO, REDIS_MEMORY_USED_BYTES, REDIS_PING_SECONDS,
    REDIS_QUEUE_LENGTH, REDIS_UP,
};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Job, Schedule, Target, check_schedule};
use crate::config::check::SecretOutcome;
use crate::config::secret::{redact_url, redact_urls_in};
use crate::config::units::check_label_value;
use crate::config::{Checker, Text};

/// `role` label before the server was ever reached.
pub const ROLE_UNKNOWN: &str = "unknown";

/// The fields of an `INFO` reply the collector uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// `run_id`: changes when the server restarts.
    pub run_id: String,
    /// `role`, as a label value: `master` or `replica` (INFO says `slave`).
    pub role: String,
    /// `keyspace_hits`.
    pub keyspace_hits: u64,
    /// `keyspace_misses`.
    pub keyspace_misses: u64,
    /// `used_memory`, bytes.
    pub used_memory: u64,
    /// `maxmemory`, bytes; 0 when unlimited.
    pub maxmemory: u64,
    /// `connected_clients`.
    pub connected_clients: u64,
    /// `evicted_keys`.
    pub evicted_keys: u64,
    /// `total_commands_processed`.
    pub total_commands_processed: u64,
}

/// Largest `INFO` reply parsed (256 KiB): a real one is about 5 KiB, even with 16 databases.
pub const MAX_INFO_BYTES: usize = 256 * 1024;

/// Parses the text of an `INFO` reply (`# Section` headers, `key:value` lines, CRLF or LF).
///
/// Every field of [`Info`] must be present; the error names the first missing or
/// unreadable one. A reply over [`MAX_INFO_BYTES`] is refused unread.
pub fn parse_info(text: &str) -> Result<Info, String> {
    if text.len() > MAX_INFO_BYTES {
        return Err(format!(
            "INFO reply is {} bytes; more than {MAX_INFO_BYTES} is not read",
            text.len()
        ));
    }
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            fields.entry(key).or_insert(value);
        }
    }
    let text_field = |name: &str| -> Result<String, String> {
        fields
            .get(name)
            .map(|v| v.trim().to_string())
            .ok_or_else(|| format!("INFO has no `{name}` field"))
    };
    let number = |name: &str| -> Result<u64, String> {
        let value = fields
            .get(name)
            .ok_or_else(|| format!("INFO has no `{name}` field"))?;
        value
            .trim()
            .parse::<u64>()
            .map_err(|e| format!("INFO field `{name}`: {value:?} is not a count: {e}"))
    };
    let role = match text_field("role")?.as_str() {
        "master" => "master".to_string(),
        "slave" | "replica" => "replica".to_string(),
        other => return Err(format!("INFO field `role`: unknown role {other:?}")),
    };
    Ok(Info {
        run_id: text_field("run_id")?,
        role,
        keyspace_hits: number("keyspace_hits")?,
        keyspace_misses: number("keyspace_misses")?,
        used_memory: number("used_memory")?,
        maxmemory: number("maxmemory")?,
        connected_clients: number("connected_clients")?,
        evicted_keys: number("evicted_keys")?,
        total_commands_processed: number("total_commands_processed")?,
    })
}

/// The windowed hit ratio between two `INFO` readings of the same target, or `None` when
/// it is undefined: another server (`run_id`), a counter that went backwards (restart,
/// `CONFIG RESETSTAT`), or fewer than `min_lookups` lookups in between.
///
/// `own` is `(hits, misses)` the collector itself caused in between (its `LLEN`s count as
/// keyspace lookups): they are taken out so that only the application's traffic counts.
pub fn hit_ratio(
    previous: &Info,
    current: &Info,
    own: (u64, u64),
    min_lookups: u64,
) -> Option<f64> {
    if previous.run_id != current.run_id
        || current.total_commands_processed < previous.total_commands_processed
    {
        return None;
    }
    let hits = current
        .keyspace_hits
        .checked_sub(previous.keyspace_hits)?
        .checked_sub(own.0)?;
    let misses = current
        .keyspace_misses
        .checked_sub(previous.keyspace_misses)?
        .checked_sub(own.1)?;
    let lookups = hits.checked_add(misses)?;
    if lookups == 0 || lookups < min_lookups {
        return None;
    }
    Some(hits as f64 / lookups as f64)
}

/// The one connection to a Redis target, shared by its collector and the races that use it
/// ([`super::links::Links`]). The manager is created on first use, not at start-up, so a
/// Redis that is down when the agent starts is no start-up error; it reconnects by itself.
pub struct RedisLink {
    target: RedisTarget,
    manager: std::sync::Mutex<Option<ConnectionManager>>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// A link to `target`; nothing connects before the first command.
    pub fn new(target: RedisTarget) -> Self {
        RedisLink {
            target,
            manager: std::sync::Mutex::new(None),
        }
    }

    /// The target this link connects to.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// The connection manager, created on first use. Every command through it is still
    /// bounded by the caller ([`bounded`]).
    pub fn manager(&self) -> Result<ConnectionManager, String> {
        let mut slot = self
            .manager
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(manager) = slot.as_ref() {
            return Ok(manager.clone());
        }
        let mut info = self
            .target
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("invalid URL {}: {e}", self.target.redacted_url()))?;
        if let Some(password) = &self.target.password {
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let timeout = self.target.schedule.timeout;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let manager =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| e.to_string())?;
        *slot = Some(manager.clone());
        Ok(manager)
    }
}

/// Watches one Redis/Valkey target.
pub struct RedisCollector {
    target: RedisTarget,
    name: String,
    link: std::sync::Arc<RedisLink>,
    /// The last successful reading, for the hit ratio; cleared by a failed run.
    previous: Option<Info>,
    /// The last role seen, for the `up 0` sample of a failed run.
    role: String,
}

impl std::fmt::Debug for RedisCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCollector")
            .field("target", &self.target)
            .field("role", &self.role)
            .finish()
    }
}

impl RedisCollector {
    /// A collector for the target of `link`; nothing connects before the first run.
    pub fn new(link: std::sync::Arc<RedisLink>) -> Self {
        let target = link.target().clone();
        RedisCollector {
            name: format!("redis:{}", target.name),
            target,
            link,
            previous: None,
            role: ROLE_UNKNOWN.to_string(),
        }
    }

    fn labels(&self, role: &str) -> [(&'static str, String); 2] {
        [
            ("target", self.target.name.clone()),
            ("role", role.to_string()),
        ]
    }

    fn sample(&self, metric: &'static Metric, role: &str, value: f64) -> Sample {
        Sample::with_labels(metric, self.labels(role), value)
    }

    /// One check; `Err` describes why it failed.
    async fn check(&mut self) -> Result<Vec<Sample>, String> {
        let mut conn = self.link.manager()?;
        let timeout = self.target.schedule.timeout;
        let started = Instant::now();
        let pong: String =
            bounded(timeout, "PING", redis::cmd("PING").query_async(&mut conn)).await?;
        let ping_seconds = started.elapsed().as_secs_f64();
        if pong != "PONG" {
            return Err(format!("PING answered {pong:?}"));
        }
        let mut lengths = Vec::with_capacity(self.target.queues.len());
        for queue in &self.target.queues {
            let len: u64 = bounded(
                timeout,
                "LLEN",
                redis::cmd("LLEN").arg(queue).query_async(&mut conn),
            )
            .await?;
            lengths.push((queue.clone(), len));
        }
        // After the LLENs, so that their own lookups fall in this run's window: a list
        // that exists (length > 0) is a hit, an absent one (empty lists do not exist) a miss.
        let own_hits = lengths.iter().filter(|(_, len)| *len > 0).count() as u64;
        let own = (own_hits, (lengths.len() as u64).saturating_sub(own_hits));
        let text: String =
            bounded(timeout, "INFO", redis::cmd("INFO").query_async(&mut conn)).await?;
        let info = parse_info(&text)?;

        let role = info.role.clone();
        let mut samples: Vec<Sample> = [
            (&REDIS_UP, 1.0),
            (&REDIS_PING_SECONDS, ping_seconds),
            (&REDIS_KEYSPACE_HITS_TOTAL, info.keyspace_hits as f64),
            (&REDIS_KEYSPACE_MISSES_TOTAL, info.keyspace_misses as f64),
            (&REDIS_MEMORY_USED_BYTES, info.used_memory as f64),
            (&REDIS_MEMORY_MAX_BYTES, info.maxmemory as f64),
            (&REDIS_CONNECTED_CLIENTS, info.connected_clients as f64),
            (&REDIS_EVICTED_KEYS_TOTAL, info.evicted_keys as f64),
            (
                &REDIS_COMMANDS_PROCESSED_TOTAL,
                info.total_commands_processed as f64,
            ),
        ]
        .into_iter()
        .map(|(metric, value)| self.sample(metric, &role, value))
        .collect();
        if info.maxmemory > 0 {
            samples.push(self.sample(
                &REDIS_MEMORY_USAGE_RATIO,
                &role,
                info.used_memory as f64 / info.maxmemory as f64,
            ));
        }
        if let Some(ratio) = self
            .previous
            .as_ref()
            .and_then(|p| hit_ratio(p, &info, own, self.target.min_lookups))
        {
            samples.push(self.sample(&REDIS_HIT_RATIO, &role, ratio));
        }
        for (queue, len) in lengths {
            samples.push(Sample::with_labels(
                &REDIS_QUEUE_LENGTH,
                [
                    ("target", self.target.name.clone()),
                    ("role", role.clone()),
                    ("queue", queue),
                ],
                len as f64,
            ));
        }
        self.role = role;
        self.previous = Some(info);
        Ok(samples)
    }
}

/// Runs one command under `timeout`, naming the command in the error.
pub async fn bounded<T>(
    timeout: Duration,
    what: &str,
    command: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, command).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {timeout:?}")),
    }
}

impl AsyncCollector for RedisCollector {
    fn name(&self) -> &str {
        &self.name
    }

    fn schedule(&self) -> Schedule {
        self.target.schedule
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
                        url = %self.target.redacted_url(),
                        error = %redact_urls_in(&why),
                        "Redis check failed"
                    );
                    self.previous = None;
                    let role = self.role.clone();
                    Err(CollectError::Target {
                        samples: vec![self.sample(&REDIS_UP, &role, 0.0)],
                        message: format!(
                            "{}: {}",
                            self.target.redacted_url(),
                            redact_urls_in(&why)
                        ),
                    })
                }
            }
        })
    }
}

// The `collect.redis` section: what the configuration file says about this collector.

/// Default `collect.redis[].min_lookups`.
pub const DEFAULT_MIN_LOOKUPS: u64 = 10;

/// One `collect.redis` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// Unique name, the `target` label; absent: a problem.
    pub name: Option<Text>,
    /// `redis://`, `rediss://`, `valkey://` or `valkeys://` URL with an optional
    /// `user:password@`; absent: a problem.
    pub url: Option<Text>,
    /// File holding the password (trailing newline trimmed), absolute or relative to the
    /// configuration file's directory; absent: the URL's password, if any.
    pub password_file: Option<Text>,
    /// Time between checks; absent: `10s`.
    pub interval: Option<Text>,
    /// Bound of every command; absent: the smaller of `5s` and the interval.
    pub timeout: Option<Text>,
    /// Lists whose length is exported; absent: none.
    pub queues: Option<Vec<Text>>,
    /// Fewer lookups (hits + misses) in an interval: no hit ratio; absent: `10`.
    pub min_lookups: Option<Spanned<i64>>,
}

/// One `collect.redis` entry: a Redis or Valkey server to watch.
///
/// `Debug` shows the URL redacted ([`RedisTarget::redacted_url`]) and never the password
/// read from `password_file`.
#[derive(Clone)]
pub struct RedisTarget {
    /// Unique name, the value of the `target` label.
    pub name: String,
    /// `redis://`, `rediss://`, `valkey://` or `valkeys://` URL, possibly with
    /// `user:password@`. Never log it as is: use [`RedisTarget::redacted_url`].
    pub url: String,
    /// Password read from `password_file`, used when the URL carries none.
    pub password: Option<crate::config::secret::Secret>,
    /// Interval between checks; the timeout bounds every command of a check.
    pub schedule: Schedule,
    /// Lists whose `LLEN` is exported as `lookout_redis_queue_length{queue}`.
    pub queues: Vec<String>,
    /// Fewer hits + misses than this in an interval: no hit ratio for it.
    pub min_lookups: u64,
}

impl RedisTarget {
    /// `scheme://host:port` of the URL, the rest (userinfo, database, query) replaced by
    /// `<redacted>` ([`redact_url`]), for logs and problems.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("name", &self.name)
            .field("url", &self.redacted_url())
            .field("password", &self.password)
            .field("schedule", &self.schedule)
            .field("queues", &self.queues)
            .field("min_lookups", &self.min_lookups)
            .finish()
    }
}

impl Target for RedisTarget {
    type Raw = RawRedis;
    const WHAT: &'static str = "Redis target";
    const DEFAULTS: &'static str = DEFAULTS_YAML;

    fn name(raw: &RawRedis) -> Option<&Text> {
        raw.name.as_ref()
    }

    fn check(
        c: &mut Checker<'_>,
        base: &str,
        item: &Spanned<RawRedis>,
        name: Option<String>,
    ) -> Option<RedisTarget> {
        let raw = &item.value;
        let mut valid = true;
        let url = c.required_url(
            base,
            item,
            raw.url.as_ref(),
            "redis://host:port",
            check_redis_url,
        );
        let password = match c.url_password(base, url.as_deref(), None, raw.password_file.as_ref())
        {
            SecretOutcome::Given(secret, _) => Some(secret),
            SecretOutcome::Absent => None,
            SecretOutcome::Invalid => {
                valid = false;
                None
            }
        };
        let schedule = check_schedule(c, base, raw.interval.as_ref(), raw.timeout.as_ref());
        let mut queues: Vec<String> = Vec::new();
        for (q, text) in raw.queues.iter().flatten().enumerate() {
            let path = format!("{base}.queues[{q}]");
            if text.value.is_empty() {
                c.report(&path, Some(&text.referenced), "must not be empty");
            } else if let Err(why) = check_label_value(&text.value) {
                c.report(&path, Some(&text.referenced), why);
            } else if let Some(first) = queues.iter().position(|n| *n == text.value) {
                c.report(
                    &path,
                    Some(&text.referenced),
                    format!(
                        "duplicate queue {:?} (already at {base}.queues[{first}])",
                        text.value
                    ),
                );
            } else {
                queues.push(text.value.clone());
                continue;
            }
            // Keep indexes aligned for duplicate messages.
            queues.push(String::new());
        }
        queues.retain(|q| !q.is_empty());
        let min_lookups = c.count(
            &format!("{base}.min_lookups"),
            raw.min_lookups.as_ref(),
            DEFAULT_MIN_LOOKUPS,
            1..=u64::MAX,
        );
        match (name, url, valid) {
            (Some(name), Some(url), true) => Some(RedisTarget {
                name,
                url,
                password,
                schedule,
                queues,
                min_lookups,
            }),
            _ => None,
        }
    }

    fn collector(&self, context: &super::Context) -> Job {
        Job::Async(Box::new(RedisCollector::new(context.links.redis(self))))
    }
}

/// Checks a `collect.redis` URL: a known scheme and a host. Problems never show a password.
pub fn check_redis_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("invalid URL {:?}: {e}", redact_url(text)))?;
    if !matches!(url.scheme(), "redis" | "rediss" | "valkey" | "valkeys") {
        return Err(format!(
            "must be redis://, rediss://, valkey:// or valkeys://, got {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("URL has no host".into());
    }
    Ok(())
}

/// `lookout config default`'s text for this section.
const DEFAULTS_YAML: &str = r#"# Redis / Valkey servers to watch (lookout_redis_*), one entry each. Empty: none.
# Every key of an entry:
#   - name: cache                    # required, unique; the `target` label
#     url: "redis://127.0.0.1:6379"  # required; redis://, rediss:// (TLS), valkey://,
#                                    # valkeys://; optional user:password@ and /db
#     password_file: null            # file holding the password instead (not with one
#                                    # in the URL); absolute or relative to this file
#     interval: 10s                  # from 1s to 1h
#     timeout: 2s                    # bounds every command; left out: min(5s, interval)
#     queues: [celery]               # lists whose LLEN is exported (queue label)
#     min_lookups: 10                # fewer hits+misses in an interval: no hit ratio
redis: []
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> String {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/redis")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn info(run_id: &str, hits: u64, misses: u64, commands: u64) -> Info {
        Info {
            run_id: run_id.into(),
            role: "master".into(),
            keyspace_hits: hits,
            keyspace_misses: misses,
            used_memory: 1,
            maxmemory: 0,
            connected_clients: 1,
            evicted_keys: 0,
            total_commands_processed: commands,
        }
    }

    #[test]
    fn parses_a_real_master_info() {
        let text = fixture("info-master.txt");
        assert!(text.contains("\r\n"), "fixture keeps the CRLF of the reply");
        let info = parse_info(&text).unwrap();
        assert_eq!(info.role, "master");
        assert_eq!(info.keyspace_hits, 1);
        assert_eq!(info.keyspace_misses, 1);
        assert_eq!(info.used_memory, 1_083_848);
        assert_eq!(info.maxmemory, 0);
        assert_eq!(info.connected_clients, 1);
        assert_eq!(info.evicted_keys, 0);
        assert_eq!(info.total_commands_processed, 7);
        assert_eq!(info.run_id, "29fc4fdf635b1d5c25006e8b5186f39d7c012838");
    }

    #[test]
    fn parses_a_real_replica_info_as_replica() {
        let info = parse_info(&fixture("info-replica.txt")).unwrap();
        assert_eq!(info.role, "replica");
        assert_eq!(info.keyspace_hits, 0);
        assert_eq!(info.used_memory, 917_088);
    }

    #[test]
    fn lf_only_replies_parse_too() {
        let text = fixture("info-master.txt").replace("\r\n", "\n");
        assert_eq!(parse_info(&text).unwrap().role, "master");
    }

    #[test]
    fn missing_or_bad_fields_are_named_errors() {
        let text = fixture("info-master.txt");
        for field in [
            "run_id",
            "role",
            "keyspace_hits",
            "keyspace_misses",
            "used_memory",
            "maxmemory",
            "connected_clients",
            "evicted_keys",
            "total_commands_processed",
        ] {
            let without: String = text
                .split_inclusive('\n')
                .filter(|l| !l.starts_with(&format!("{field}:")))
                .collect();
            let err = parse_info(&without).unwrap_err();
            assert!(err.contains(&format!("`{field}`")), "{field}: {err}");
        }
        let bad = text.replace("keyspace_hits:1\r", "keyspace_hits:-3\r");
        assert!(parse_info(&bad).unwrap_err().contains("keyspace_hits"));
        let odd_role = text.replace("role:master", "role:sentinel");
        assert!(parse_info(&odd_role).unwrap_err().contains("role"));
        // An oversized reply is refused, however well-formed.
        let huge = format!("{text}{}", "# padding\r\n".repeat(MAX_INFO_BYTES / 8));
        assert!(parse_info(&huge).unwrap_err().contains("bytes"));
        // Garbage never panics.
        for garbage in ["", ":", "\r\n\r\n", "# Server", "role", "role:master\r"] {
            assert!(parse_info(garbage).is_err());
        }
    }

    #[test]
    fn hit_ratio_from_deltas_with_min_lookups() {
        let a = info("r", 100, 100, 1000);
        // 30 hits, 10 misses since: 0.75, whatever the lifetime ratio.
        let b = info("r", 130, 110, 1050);
        assert_eq!(hit_ratio(&a, &b, (0, 0), 10), Some(0.75));
        // Fewer lookups than the guard: undefined.
        assert_eq!(hit_ratio(&a, &b, (0, 0), 41), None);
        // Idle: undefined even with a guard of 0.
        assert_eq!(hit_ratio(&a, &a, (0, 0), 0), None);
        // The collector's own LLEN lookups (2 hits, 1 miss) do not count.
        let c = info("r", 132, 111, 1060);
        assert_eq!(hit_ratio(&a, &c, (2, 1), 10), Some(0.75));
    }

    #[test]
    fn hit_ratio_is_undefined_across_resets() {
        let a = info("r", 100, 100, 1000);
        // CONFIG RESETSTAT: every counter restarts from 0.
        assert_eq!(hit_ratio(&a, &info("r", 30, 10, 5), (0, 0), 10), None);
        // Only one counter went backwards.
        assert_eq!(hit_ratio(&a, &info("r", 150, 90, 1100), (0, 0), 10), None);
        // A restart: another run_id, even if counters happen to be larger.
        assert_eq!(
            hit_ratio(&a, &info("other", 200, 150, 2000), (0, 0), 10),
            None
        );
    }

    #[test]
    fn hit_ratio_stays_within_0_and_1() {
        for (h, m) in [(0, 0), (0, 50), (50, 0), (7, 3), (u64::MAX / 4, 1)] {
            let a = info("r", 0, 0, 0);
            let b = info("r", h, m, 10);
            if let Some(r) = hit_ratio(&a, &b, (0, 0), 1) {
                assert!((0.0..=1.0).contains(&r), "{r}");
            }
        }
    }

    fn collector(target: RedisTarget) -> RedisCollector {
        RedisCollector::new(std::sync::Arc::new(RedisLink::new(target)))
    }

    fn target(url: &str) -> RedisTarget {
        RedisTarget {
            name: "cache".into(),
            url: url.into(),
            password: None,
            schedule: Schedule {
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(300),
            },
            queues: vec!["jobs".into()],
            min_lookups: 10,
        }
    }

    #[test]
    fn urls_are_redacted_for_logs() {
        use crate::config::secret::redact_url;
        assert_eq!(
            redact_url("redis://app:s3cret@10.0.0.1:6379/2"),
            "redis://<redacted>@10.0.0.1:6379/<redacted>"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        let mut t = target("redis://u:topsecret@127.0.0.1:1");
        t.password = Some(crate::config::secret::Secret::new("filesecret"));
        let debug = format!("{:?}", collector(t));
        assert!(
            !debug.contains("topsecret") && !debug.contains("filesecret"),
            "{debug}"
        );
    }

    #[tokio::test]
    async fn unreachable_server_gives_only_up_zero() {
        // A port nobody listens on: bind then drop.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = collector(target(&format!("redis://127.0.0.1:{port}")));
        assert_eq!(c.name(), "redis:cache");
        for _ in 0..2 {
            let Err(CollectError::Target { samples, message }) = c.collect(Instant::now()).await
            else {
                panic!("an unreachable server is a target failure");
            };
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert_eq!(samples.len(), 1);
            assert_eq!(samples[0].metric.name, "lookout_redis_up");
            assert_eq!(samples[0].value, 0.0);
            assert_eq!(
                samples[0].labels,
                vec![
                    ("target", "cache".to_string()),
                    ("role", ROLE_UNKNOWN.into())
                ]
            );
        }
    }
}
