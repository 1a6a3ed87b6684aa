//! The real stack the dashboard tests run against: a real `redis-server` and a real
//! PostgreSQL (a primary with pg_stat_statements, and a streaming replica) with traffic, a
//! real agent watching them (every collector at 1 s, racing a lookup against both, probing
//! its own `/healthz`, receiving pushed request timings, firing a rule delivered to the log
//! receiver, watching itself as a process group) and a real Prometheus scraping the agent
//! every second.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::postgres::PgServer;
use crate::{Agent, Peer, TempDir, free_port, http, redis_commands, redis_server, require};

/// The `host` label of the stack's agent.
pub const HOST: &str = "test-host";

/// Background traffic while the test runs: cache lookups (30 hits, 10 misses per 200 ms,
/// so the hit ratio is defined every interval), a scan of the `reports` table per 200 ms on
/// one held PostgreSQL session (a few hundred blocks: the buffer cache hit ratio and the
/// average query time are defined every interval) and a batch of request timings every
/// second (a 5xx among them, so the error figures exist). Stops on drop.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    /// Starts the traffic against Redis on `redis_port`, PostgreSQL through `psql` (a
    /// session reading SQL from its standard input) and the agent at `agent` (request
    /// timings and a check-in's report).
    pub fn start(redis_port: u16, mut psql: std::process::Child, agent: SocketAddr) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            use std::io::Write as _;
            let mut sql = psql.stdin.take();
            let lookups = "GET dash:hit\r\n".repeat(30) + &"GET dash:miss\r\n".repeat(10);
            let batch = serde_json::json!([
                {"route": "/users/{id}", "method": "GET", "status": 200, "duration_seconds": 0.05},
                {"route": "/users/{id}", "method": "GET", "status": 200, "duration_seconds": 0.12},
                {"route": "/users/{id}", "method": "GET", "status": 503, "duration_seconds": 0.4},
                {"route": "/search", "method": "POST", "status": 201, "duration_seconds": 1.3},
                {"route": "/search", "method": "POST", "status": 404, "duration_seconds": 0.02},
            ])
            .to_string();
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                // Errors only leave panels empty, which the tests then report.
                let _ = redis_commands(redis_port, &lookups);
                if let Some(stdin) = sql.as_mut()
                    && stdin
                        .write_all(b"SELECT count(*), max(length(body)) FROM reports;\n")
                        .and_then(|()| stdin.flush())
                        .is_err()
                {
                    sql = None;
                }
                if n.is_multiple_of(5) {
                    let _ = http(
                        agent,
                        "POST",
                        "/api/v1/observations",
                        &[("Content-Type", "application/json")],
                        &batch,
                    );
                }
                // One report: the time since it then grows the same for the agent and a
                // Prometheus scraping it (reports every second would be sampled apart).
                if n == 0 {
                    let _ = http(agent, "POST", "/api/v1/checkins/stack-job", &[], "");
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            drop(sql);
            let _ = psql.kill();
            let _ = psql.wait();
        });
        Traffic {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Percent-encodes a query string value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `key=value&...`, each value percent-encoded: a query string or a form body.
pub fn form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Sends a request to a Prometheus HTTP API (Prometheus's or the agent's) at `addr` and
/// parses the JSON answer: `Ok((status, json))`, or why there is no JSON answer.
pub fn api_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, Value), String> {
    let (status, text) = http(addr, method, path, headers, body).map_err(|e| e.to_string())?;
    serde_json::from_str(&text)
        .map(|json| (status, json))
        .map_err(|e| format!("HTTP {status}, not JSON ({e}): {text}"))
}

/// Now, in Unix seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// A running Prometheus scraping one target every second.
pub struct Prometheus {
    _peer: Peer,
    /// Where its HTTP API listens.
    pub addr: SocketAddr,
    /// When it was started, in Unix seconds.
    pub started_at: f64,
    dir: TempDir,
}

impl Prometheus {
    /// Starts `binary` scraping `target` every second (job `lookout`).
    pub fn start(binary: &Path, target: SocketAddr) -> Prometheus {
        Prometheus::start_labelled(binary, target, None)
    }

    /// [`Prometheus::start`] with an external label `replica: <replica>`. Prometheus
    /// derives each target's scrape offset within the interval from its external labels,
    /// so two servers with different replicas scrape the same target at different moments.
    pub fn start_labelled(binary: &Path, target: SocketAddr, replica: Option<&str>) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let port = free_port();
        let config = dir.path().join("prometheus.yml");
        let external = replica
            .map(|r| format!("  external_labels: {{replica: '{r}'}}\n"))
            .unwrap_or_default();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n{external}\
                 scrape_configs:\n  - job_name: lookout\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let started_at = unix_now();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus {
            _peer: Peer(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            started_at,
            dir,
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path; the parsed answer, or why there is none.
    pub fn api(&self, path: &str) -> Result<Value, String> {
        api_request(self.addr, "GET", path, &[], "").map(|(_, json)| json)
    }

    /// An instant query; Ok(answer) when it succeeded with a non-empty result.
    pub fn query(&self, promql: &str) -> Result<Value, String> {
        let answer = self.api(&format!("/api/v1/query?query={}", encode(promql)))?;
        let non_empty = answer["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty());
        if answer["status"] == "success" && non_empty {
            Ok(answer)
        } else {
            Err(answer.to_string())
        }
    }

    /// The value of the first series an instant query returns, if any.
    pub fn query_value(&self, promql: &str) -> Option<f64> {
        self.query(promql).ok().and_then(|a| {
            a["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
        })
    }

    /// How many samples of the agent's `lookout_build_info` it holds from the last `window`
    /// (a PromQL duration): how many times it scraped the agent in that time.
    pub fn scrapes(&self, window: &str) -> f64 {
        self.query_value(&format!(
            r#"count_over_time(lookout_build_info{{host="{HOST}"}}[{window}])"#
        ))
        .unwrap_or(0.0)
    }
}

/// The whole stack; everything is stopped on drop.
pub struct Stack {
    /// The background traffic.
    pub traffic: Traffic,
    /// The Prometheus scraping the agent.
    pub prometheus: Prometheus,
    /// The agent, `host` label [`HOST`].
    pub agent: Agent,
    /// The port of the Redis the agent watches.
    pub redis_port: u16,
    _redis: Peer,
    /// The PostgreSQL primary (target `main`) and its replica (target `replica`).
    _postgres: (PgServer, PgServer),
    /// The cgroups the agent runs in (removed after the agent stopped: fields drop in order).
    _cgroup: StackCgroup,
}

/// A memory cgroup with a limit and a cpuacct cgroup under this host's cgroup v1
/// hierarchies, named `lookout-test-stack-<pid>-<n>`, that the stack's agent is moved into so
/// that the cgroup panels have a service to show (the agent includes `lookout-test-stack-*`).
/// Needs root, like the cgroup tests. Removed on drop, once the agent has gone.
struct StackCgroup {
    dirs: Vec<PathBuf>,
}

const STACK_CGROUP_ROOT: &str = "/sys/fs/cgroup";

impl StackCgroup {
    fn create() -> (StackCgroup, String) {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "lookout-test-stack-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut dirs = Vec::new();
        for hierarchy in ["memory", "cpuacct"] {
            let dir = Path::new(STACK_CGROUP_ROOT).join(hierarchy).join(&name);
            std::fs::create_dir(&dir).unwrap_or_else(|e| {
                panic!(
                    "cannot create the cgroup {} for the dashboard stack ({e}): the tests run as \
                     root on a host with the cgroup v1 memory and cpuacct hierarchies",
                    dir.display()
                )
            });
            dirs.push(dir);
        }
        std::fs::write(dirs[0].join("memory.limit_in_bytes"), "1073741824")
            .expect("set the stack cgroup's memory limit");
        (StackCgroup { dirs }, name)
    }

    fn enter(&self, pid: u32) {
        for dir in &self.dirs {
            std::fs::write(dir.join("cgroup.procs"), pid.to_string())
                .unwrap_or_else(|e| panic!("move the agent into {}: {e}", dir.display()));
        }
    }
}

impl Drop for StackCgroup {
    fn drop(&mut self) {
        for dir in &self.dirs {
            // The agent has been killed by now; its exit may take a moment to empty the cgroup.
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Stack {
    /// Starts Redis, the agent (with `extra` YAML appended to its configuration: top-level
    /// sections the test needs beyond the common ones), the traffic and Prometheus, and
    /// waits until Prometheus has scraped the agent 5 times.
    pub fn start(extra: &str) -> Stack {
        let prometheus_bin = require("prometheus", "prometheus");
        let redis_port = free_port();
        // A maxmemory, so that the memory ratio exists.
        let redis = redis_server(redis_port, &["--maxmemory", "64mb"]);
        redis_commands(redis_port, "SET dash:hit v\r\nRPUSH jobs a b c\r\n").expect("seed redis");

        let (primary, replica) = postgres();

        let (cgroup, cgroup_name) = StackCgroup::create();
        let agent = start_agent(
            redis_port,
            (primary.port, replica.port),
            &cgroup_name,
            extra,
        );
        cgroup.enter(agent.child.id());
        let psql = primary
            .psql_command("app")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start psql");
        let traffic = Traffic::start(redis_port, psql, agent.addr);
        let prometheus = Prometheus::start(&prometheus_bin, agent.addr);

        // A few scrapes, so that rate() over 15 s has points to work with.
        let deadline = Instant::now() + Duration::from_secs(30);
        while prometheus.scrapes("1m") < 5.0 {
            assert!(
                Instant::now() < deadline,
                "Prometheus did not scrape the agent 5 times within 30 s; targets: {:?}\n\
                 prometheus log:\n{}\nagent log:\n{}",
                prometheus.api("/api/v1/targets"),
                prometheus.log(),
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        Stack {
            traffic,
            prometheus,
            agent,
            redis_port,
            _redis: redis,
            _postgres: (primary, replica),
            _cgroup: cgroup,
        }
    }
}

/// A PostgreSQL primary with pg_stat_statements (installed in `app`, holding `reports`,
/// readable by the agent's role) and a streaming replica of it.
fn postgres() -> (PgServer, PgServer) {
    let primary = PgServer::start(&["shared_preload_libraries=pg_stat_statements"]);
    primary.create_monitor_role(POSTGRES_PASSWORD);
    primary.psql("postgres", "CREATE DATABASE app");
    primary.psql(
        "app",
        "CREATE EXTENSION pg_stat_statements; \
         CREATE TABLE reports (id int PRIMARY KEY, body text); \
         INSERT INTO reports SELECT g, repeat('r', 500) FROM generate_series(1, 2000) g; \
         GRANT SELECT ON reports TO lookout",
    );
    let replica = primary.replica();
    (primary, replica)
}

/// The password of the agent's PostgreSQL role.
const POSTGRES_PASSWORD: &str = "stack-pg";

/// The agent: every collector at 1 s, the default rules plus one that always fires (so the
/// alert panels have an alert), notifications to the log receiver (so delivery results
/// exist), a probe of its own /healthz, the Redis port watched by the TCP collector (the
/// agent's own connection is established there), the PostgreSQL primary and replica, a race
/// between Redis and the primary, itself as a process group, the cgroup it runs in, and a
/// check-in the traffic reports to.
fn start_agent(redis_port: u16, pg_ports: (u16, u16), cgroup: &str, extra: &str) -> Agent {
    let dir = TempDir::new("dashboards-agent");
    let port = free_port();
    let rules_file = dir.path().join("always-firing.yaml");
    std::fs::write(
        &rules_file,
        "groups:\n  - name: dashboards-test\n    rules:\n      - alert: DashboardTestAlwaysFiring\n        \
         expr: lookout_build_info\n        warning: \"> 0\"\n        \
         summary: \"always firing, so that the alert panels have something to show\"\n",
    )
    .expect("write rules");
    let default_rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/*.yaml");
    let pgpass = dir.path().join("pgpass");
    std::fs::write(&pgpass, POSTGRES_PASSWORD).expect("write pgpass");
    let config = format!(
        "agent:\n  hostname: {HOST}\n  listen: 127.0.0.1:{port}\n  data_dir: {data}\n\
         collect:\n\
         \x20 host: {{interval: 1s}}\n\
         \x20 tcp: {{interval: 1s, ports: [{redis_port}]}}\n\
         \x20 redis:\n\
         \x20   - {{name: cache, url: \"redis://127.0.0.1:{redis_port}\", interval: 1s, timeout: 1s, queues: [jobs]}}\n\
         \x20 postgres:\n\
         \x20   - {{name: main, url: \"postgres://lookout@127.0.0.1:{primary}/app\", password_file: {pgpass}, interval: 1s, timeout: 1s}}\n\
         \x20   - {{name: replica, url: \"postgres://lookout@127.0.0.1:{replica}/app\", password_file: {pgpass}, interval: 1s, timeout: 1s}}\n\
         \x20 races:\n\
         \x20   - {{name: report, interval: 1s, redis: {{target: cache, command: \"GET dash:hit\"}}, postgres: {{target: main, query: \"SELECT body FROM reports WHERE id = 7\"}}}}\n\
         \x20 http_probes:\n\
         \x20   - {{name: self, url: \"http://127.0.0.1:{port}/healthz\", interval: 1s, timeout: 500ms}}\n\
         \x20 ingest: {{interval: 1s, min_requests: 1}}\n\
         \x20 checkins: [{{name: stack-job, every: 1h, grace: 1h}}]\n\
         \x20 processes:\n\
         \x20   interval: 1s\n\
         \x20   groups: [{{name: agent, match: {{exe: lookout}}, max_memory: 256MiB}}]\n\
         \x20 cgroups: {{interval: 1s, include: ['{cgroup}']}}\n\
         rules:\n\
         \x20 evaluation_interval: 1s\n\
         \x20 files: ['{default_rules}', '{rules_file}']\n\
         notify:\n\
         \x20 group_wait: 0s\n\
         \x20 receivers: [{{name: log, log: {{}}}}]\n\
         {extra}",
        data = dir.path().join("data").display(),
        primary = pg_ports.0,
        replica = pg_ports.1,
        pgpass = pgpass.display(),
        default_rules = default_rules.display(),
        rules_file = rules_file.display(),
    );
    let config_path = dir.path().join("lookout.yaml");
    std::fs::write(&config_path, config).expect("write config");
    Agent::start_with_config(&config_path, port, dir)
}
