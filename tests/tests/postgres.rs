//! The PostgreSQL collector against a real server from Debian's packages, started here in a
//! scratch directory on a free loopback port: connections by state, slow queries, the cache
//! hit ratio against `pg_stat_database` read directly, the server stopped and restarted
//! (PostgresDown delivered), a wrong password and an unreachable host, and the figures of
//! Debian's `prometheus-postgres-exporter` scraping the same server.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lookout_tests::postgres::{PgServer, SUPERUSER_PASSWORD};
use lookout_tests::{Agent, Peer, TempDir, free_port, http_receiver, received, require, value};

const MAIN: &[(&str, &str)] = &[("target", "main")];
const COLLECTOR: &str = "postgres:main";
const PASSWORD: &str = "lookout-test-pw";

/// Collectors other than the ones under test, off.
const QUIET: &str = "collect:\n  host: {enabled: false}\n  tcp: {enabled: false}\n  \
                     cgroups: {enabled: false}\n  processes: {enabled: false}\n";

/// A server with pg_stat_statements loaded, the `app` database and the agent's role.
fn server() -> PgServer {
    let pg = PgServer::start(&["shared_preload_libraries=pg_stat_statements"]);
    pg.create_monitor_role(PASSWORD);
    pg.psql("postgres", "CREATE DATABASE app");
    pg
}

/// An agent watching `pg` every second (unless `extra` says otherwise), with `extra` keys
/// on the target and `rest` after.
fn agent(pg: &PgServer, extra: &str, rest: &str) -> Agent {
    let interval = if extra.contains("interval:") {
        ""
    } else {
        ", interval: 1s"
    };
    Agent::start_in(
        TempDir::new("pg-agent"),
        &[("pgpass", &format!("{PASSWORD}\n"))],
        &format!(
            "{QUIET}  postgres:\n    - {{name: main, url: \"postgres://lookout@127.0.0.1:{}/app\", \
             password_file: pgpass, timeout: 1s{interval}{extra}}}\n{rest}",
            pg.port
        ),
    )
}

fn connections(agent: &Agent, state: &str) -> Option<f64> {
    value(
        &agent.metrics(),
        "lookout_postgres_connections",
        &[("target", "main"), ("state", state)],
    )
}

fn number(text: &str) -> f64 {
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn sessions_slow_queries_sizes_and_statements_follow_a_real_server() {
    let pg = server();
    pg.psql("app", "CREATE EXTENSION pg_stat_statements");
    let agent = agent(&pg, ", slow_query: 2s", "");
    agent.wait_for(Duration::from_secs(15), |m| {
        value(m, "lookout_postgres_up", MAIN).filter(|v| *v == 1.0)
    });
    let m = agent.metrics();
    let max = number(&pg.psql("postgres", "SHOW max_connections"));
    assert_eq!(
        value(&m, "lookout_postgres_max_connections", MAIN),
        Some(max)
    );
    assert!(value(&m, "lookout_postgres_ping_seconds", MAIN).is_some_and(|v| v > 0.0 && v < 1.0));
    let size = number(&pg.psql("postgres", "SELECT pg_database_size('app')"));
    let reported = value(
        &m,
        "lookout_postgres_database_size_bytes",
        &[("target", "main"), ("database", "app")],
    )
    .expect("size of app");
    assert!(
        (reported - size).abs() <= size * 0.05,
        "{reported} vs {size}"
    );
    assert_eq!(
        value(&m, "lookout_postgres_replication_lag_seconds", MAIN),
        None,
        "a primary has no replication lag"
    );
    assert_eq!(
        value(&m, "lookout_postgres_statements_available", MAIN),
        Some(1.0)
    );

    // N sessions held open: N more idle connections.
    agent.wait_for_runs_from_now(COLLECTOR);
    let idle_before = connections(&agent, "idle").expect("idle connections");
    let sessions: Vec<Peer> = (0..3).map(|_| pg.idle_session("app")).collect();
    agent.wait_for(Duration::from_secs(15), |_| {
        connections(&agent, "idle").filter(|n| *n == idle_before + 3.0)
    });
    let ratio = value(
        &agent.metrics(),
        "lookout_postgres_connections_usage_ratio",
        MAIN,
    )
    .expect("usage ratio");
    let total = number(&pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
    ));
    // The psql that counted is one more client than the agent saw.
    assert!(
        (ratio * max - (total - 1.0)).abs() <= 1.0,
        "ratio {ratio} x {max} vs {total} clients"
    );
    drop(sessions);
    agent.wait_for(Duration::from_secs(15), |_| {
        connections(&agent, "idle").filter(|n| *n == idle_before)
    });

    // A pg_sleep(5): one slow query (slow_query 2s), the longest at least 3 s.
    let sleeper = Peer(
        pg.psql_command("app")
            .args(["-c", "SELECT pg_sleep(5)"])
            .stdout(Stdio::null())
            .spawn()
            .expect("psql pg_sleep"),
    );
    let longest = agent.wait_for(Duration::from_secs(10), |m| {
        value(m, "lookout_postgres_longest_query_seconds", MAIN).filter(|v| *v >= 3.0)
    });
    assert!(longest < 10.0, "{longest}");
    assert_eq!(
        value(&agent.metrics(), "lookout_postgres_slow_queries", MAIN),
        Some(1.0)
    );
    drop(sleeper);
    agent.wait_for(Duration::from_secs(15), |m| {
        value(m, "lookout_postgres_slow_queries", MAIN).filter(|v| *v == 0.0)
    });

    // Statements of another role give an average query time: the pg_sleep(5) above made
    // one interval's 5 s; a steady run of 50 ms sleeps gives about 50 ms.
    let mut avg = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while avg.is_none() {
        assert!(
            Instant::now() < deadline,
            "no average of the 50 ms sleeps; log:\n{}",
            agent.log()
        );
        pg.psql("app", "SELECT pg_sleep(0.05)");
        avg = value(&agent.metrics(), "lookout_postgres_query_avg_seconds", MAIN)
            .filter(|a| *a < 1.0);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(avg.is_some_and(|a| (0.04..0.5).contains(&a)), "{avg:?}");

    // The agent holds one connection, read-only, named.
    let own = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lookout'",
    );
    assert_eq!(own, "1");
}

/// Reads the cluster's block counters directly: (hit, read).
fn blocks(pg: &PgServer) -> (f64, f64) {
    let row = pg.psql(
        "postgres",
        "SELECT sum(blks_hit), sum(blks_read) FROM pg_stat_database",
    );
    let (hit, read) = row.split_once('|').expect("two columns");
    (number(hit), number(read))
}

#[test]
fn the_cache_hit_ratio_matches_pg_stat_database_and_an_idle_database_has_none() {
    // Small shared buffers: a scan of a table ten times larger reads most of its blocks.
    let pg = PgServer::start(&["shared_buffers=1MB"]);
    pg.create_monitor_role(PASSWORD);
    pg.psql("postgres", "CREATE DATABASE app");
    pg.psql(
        "app",
        "CREATE TABLE big AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 60000) g; \
         CREATE TABLE medium AS SELECT g AS id, repeat('y', 20) AS pad FROM generate_series(1, 8000) g",
    );
    pg.psql("app", "VACUUM ANALYZE");
    let agent = agent(&pg, ", interval: 3s", "");
    agent.wait_for_runs_from_now(COLLECTOR);

    // Idle: the agent's own reads are too few for a ratio.
    for _ in 0..3 {
        let runs = agent.collector_runs(COLLECTOR);
        agent.wait_until("another run", Duration::from_secs(10), || {
            agent.collector_runs(COLLECTOR) > runs
        });
        assert_eq!(
            value(&agent.metrics(), "lookout_postgres_cache_hit_ratio", MAIN),
            None,
            "an idle database has no ratio"
        );
    }

    // A known mix, right after a run so that the next run's interval holds all of it:
    // scans of `big` (mostly reads: ten times the shared buffers) and of `medium` (hits:
    // it stays in them), large enough that the few blocks the psql sessions reading the
    // counters need themselves weigh less than 2%.
    let workload = "DO $$ BEGIN \
                    FOR i IN 1..8 LOOP PERFORM count(*) FROM big; END LOOP; \
                    FOR i IN 1..200 LOOP PERFORM count(*) FROM medium; END LOOP; END $$";
    let mut last = String::new();
    for _ in 0..5 {
        let runs = agent.collector_runs(COLLECTOR);
        agent.wait_until("a run", Duration::from_secs(10), || {
            agent.collector_runs(COLLECTOR) > runs
        });
        let before = blocks(&pg);
        pg.psql("app", workload);
        let after = blocks(&pg);
        let hit = after.0 - before.0;
        let read = after.1 - before.1;
        let expected = hit / (hit + read);
        agent.wait_until("the next run", Duration::from_secs(10), || {
            agent.collector_runs(COLLECTOR) > runs + 1
        });
        let ratio = value(&agent.metrics(), "lookout_postgres_cache_hit_ratio", MAIN);
        if let Some(ratio) = ratio
            && (ratio - expected).abs() < 0.02
        {
            assert!(
                (0.05..0.95).contains(&expected),
                "the workload mixes hits and reads: {expected}"
            );
            return;
        }
        last = format!("agent {ratio:?}, pg_stat_database {expected} ({hit} hit, {read} read)");
    }
    panic!("the ratio never matched: {last}; log:\n{}", agent.log());
}

#[test]
fn a_stopped_server_is_down_and_postgres_down_is_delivered_then_it_comes_back() {
    let mut pg = server();
    let hook_port = free_port();
    let out = TempDir::new("pg-hook");
    let hook_out = out.path().join("requests.jsonl");
    let _hook = http_receiver(hook_port, &hook_out, "ok", None);
    let agent = agent(
        &pg,
        "",
        &format!(
            "rules:\n  evaluation_interval: 1s\n\
             notify:\n  group_wait: 0s\n  receivers:\n    - name: hook\n      webhook: \
             {{url: \"http://127.0.0.1:{hook_port}/hook\", timeout: 2s}}\n"
        ),
    );
    agent.wait_for(Duration::from_secs(15), |m| {
        value(m, "lookout_postgres_up", MAIN).filter(|v| *v == 1.0)
    });

    pg.stop();
    agent.wait_for(Duration::from_secs(15), |m| {
        value(m, "lookout_postgres_up", MAIN).filter(|v| *v == 0.0)
    });
    let m = agent.metrics();
    assert_eq!(value(&m, "lookout_postgres_connections", MAIN), None);
    assert_eq!(
        value(&m, "lookout_collector_up", &[("collector", COLLECTOR)]),
        Some(1.0)
    );
    let status = agent.json("/api/v1/status");
    let error = status["collectors"][COLLECTOR]["target_error"]
        .as_str()
        .unwrap_or_else(|| panic!("no target_error in {status}"));
    assert!(error.contains(&format!("127.0.0.1:{}", pg.port)), "{error}");

    // PostgresDown (critical, for 30s) reaches the webhook.
    let deadline = Instant::now() + Duration::from_secs(60);
    let fired = |body: &serde_json::Value| {
        body.to_string().contains("PostgresDown") && body.to_string().contains("firing")
    };
    while !received(&hook_out).iter().any(|r| fired(&r["body"])) {
        assert!(
            Instant::now() < deadline,
            "PostgresDown was not delivered: {:?}; log:\n{}",
            received(&hook_out),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    pg.resume();
    agent.wait_for(Duration::from_secs(15), |m| {
        value(m, "lookout_postgres_up", MAIN).filter(|v| *v == 1.0)
    });
    let status = agent.json("/api/v1/status");
    assert!(
        status["collectors"][COLLECTOR]["target_error"].is_null(),
        "{status}"
    );
}

#[test]
fn a_wrong_password_and_an_unreachable_host_are_clear_errors() {
    let pg = server();
    let nobody = free_port();
    let agent = Agent::start_in(
        TempDir::new("pg-agent"),
        &[("wrong", "not-the-password\n")],
        &format!(
            "{QUIET}  postgres:\n\
             \x20   - {{name: wrong, url: \"postgres://lookout@127.0.0.1:{}/app\", password_file: wrong, interval: 1s, timeout: 1s}}\n\
             \x20   - {{name: gone, url: \"postgres://lookout@127.0.0.1:{nobody}/app\", interval: 1s, timeout: 1s}}\n",
            pg.port
        ),
    );
    let reason = |name: &str| -> String {
        let status = agent.json("/api/v1/status");
        status["collectors"][format!("postgres:{name}")]["target_error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    agent.wait_until("both errors in the status", Duration::from_secs(15), || {
        !reason("wrong").is_empty() && !reason("gone").is_empty()
    });
    let wrong = reason("wrong");
    assert!(
        wrong.contains("password authentication failed for user \"lookout\""),
        "{wrong}"
    );
    assert!(!wrong.contains("not-the-password"), "{wrong}");
    let gone = reason("gone");
    assert!(gone.contains("Connection refused"), "{gone}");
    let m = agent.metrics();
    for target in ["wrong", "gone"] {
        assert_eq!(
            value(&m, "lookout_postgres_up", &[("target", target)]),
            Some(0.0)
        );
    }
    let log = agent.log();
    assert!(log.contains("password authentication failed"), "{log}");
    assert!(log.contains("Connection refused"), "{log}");
    assert!(!log.contains("not-the-password"), "{log}");
}

/// Scrapes Debian's postgres_exporter once; `None` while it does not answer.
fn exporter_metrics(port: u16) -> Option<Vec<lookout_tests::MetricSample>> {
    let (status, body) = lookout_tests::http(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        "GET",
        "/metrics",
        &[],
        "",
    )
    .ok()?;
    (status == 200).then(|| lookout_tests::parse_exposition(&body))
}

#[test]
fn the_figures_agree_with_prometheus_postgres_exporter() {
    let exporter = require(
        "prometheus-postgres-exporter",
        "prometheus-postgres-exporter",
    );
    let pg = server();
    let sessions: Vec<Peer> = (0..2).map(|_| pg.idle_session("app")).collect();
    pg.psql(
        "app",
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g",
    );
    let port = free_port();
    let _exporter = Peer(
        Command::new(exporter)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .env(
                "DATA_SOURCE_NAME",
                format!(
                    "postgresql://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{}/postgres?sslmode=disable",
                    pg.port
                ),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-postgres-exporter"),
    );
    let agent = agent(&pg, "", "");
    let deadline = Instant::now() + Duration::from_secs(15);
    while exporter_metrics(port).is_none_or(|m| value(&m, "pg_up", &[]) != Some(1.0)) {
        assert!(
            Instant::now() < deadline,
            "postgres_exporter did not come up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Both now hold their connections: each sees the other's, idle between its reads, and
    // the two sessions. A read of one that overlaps the other's sees it active: again.
    let idle = |samples: &[lookout_tests::MetricSample]| -> f64 {
        samples
            .iter()
            .filter(|s| {
                s.name == "pg_stat_activity_count"
                    && s.labels.get("state").map(String::as_str) == Some("idle")
            })
            .map(|s| s.value)
            .sum()
    };
    let mut compared = Vec::new();
    let (theirs, ours) = loop {
        agent.wait_for_runs_from_now(COLLECTOR);
        let theirs = exporter_metrics(port).expect("postgres_exporter answers");
        let ours = agent.metrics();
        let our_idle = value(
            &ours,
            "lookout_postgres_connections",
            &[("target", "main"), ("state", "idle")],
        )
        .expect("our idle");
        if our_idle == idle(&theirs) {
            assert!(
                our_idle >= 3.0,
                "two sessions and the exporter's connection: {our_idle}"
            );
            break (theirs, ours);
        }
        compared.push((our_idle, idle(&theirs)));
        assert!(
            compared.len() < 5,
            "idle connections, ours and theirs: {compared:?}"
        );
    };

    // Database size: the same function, the same database.
    let their_size =
        value(&theirs, "pg_database_size_bytes", &[("datname", "app")]).expect("their size of app");
    let our_size = value(
        &ours,
        "lookout_postgres_database_size_bytes",
        &[("target", "main"), ("database", "app")],
    )
    .expect("our size of app");
    assert!(
        (our_size - their_size).abs() <= their_size * 0.02,
        "{our_size} vs {their_size}"
    );

    // Transactions: the exporter's per-database commits summed; both counters only grow,
    // so ours, read after theirs, is at least theirs and not far beyond.
    let their_commits: f64 = theirs
        .iter()
        .filter(|s| s.name == "pg_stat_database_xact_commit")
        .map(|s| s.value)
        .sum();
    let ours_after = agent.metrics();
    let our_commits = value(
        &ours_after,
        "lookout_postgres_transactions_total",
        &[("target", "main"), ("result", "commit")],
    )
    .expect("our commits");
    assert!(their_commits > 0.0);
    assert!(
        our_commits >= their_commits * 0.9 && our_commits <= their_commits * 1.5 + 100.0,
        "commits: ours {our_commits}, theirs {their_commits}"
    );
    let their_max = value(&theirs, "pg_settings_max_connections", &[]).expect("their max");
    assert_eq!(
        value(&ours_after, "lookout_postgres_max_connections", MAIN),
        Some(their_max)
    );
    drop(sessions);
}

#[test]
fn the_race_times_both_lookups_on_the_targets_own_connections() {
    let pg = server();
    pg.psql(
        "app",
        "CREATE TABLE reports (id int PRIMARY KEY, body text); \
         INSERT INTO reports SELECT g, repeat('r', 500) FROM generate_series(1, 5000) g; \
         CREATE VIEW report_totals AS SELECT count(*) AS n, sum(length(body)) AS size FROM reports",
    );
    pg.psql("app", "GRANT SELECT ON reports, report_totals TO lookout");
    let redis_port = free_port();
    let _redis = lookout_tests::redis_server(redis_port, &[]);
    lookout_tests::redis_commands(redis_port, "SET report:1 cached\n").expect("SET");
    let agent = Agent::start_in(
        TempDir::new("pg-agent"),
        &[("pgpass", PASSWORD)],
        &format!(
            "{QUIET}  redis:\n    - {{name: cache, url: \"redis://127.0.0.1:{redis_port}\", interval: 1s}}\n\
             \x20 postgres:\n    - {{name: main, url: \"postgres://lookout@127.0.0.1:{}/app\", password_file: pgpass, interval: 1s}}\n\
             \x20 races:\n    - {{name: report, interval: 1s, redis: {{target: cache, command: \"GET report:1\"}}, \
             postgres: {{target: main, query: \"SELECT n, size FROM report_totals\"}}}}\n",
            pg.port
        ),
    );
    let race = |source: &'static str| {
        move |m: &[lookout_tests::MetricSample]| {
            value(
                m,
                "lookout_race_duration_seconds",
                &[("race", "report"), ("source", source)],
            )
        }
    };
    let redis_seconds = agent.wait_for(Duration::from_secs(15), race("redis"));
    let postgres_seconds = agent.wait_for(Duration::from_secs(15), race("postgres"));
    assert!(
        redis_seconds > 0.0 && redis_seconds < 0.5,
        "{redis_seconds}"
    );
    assert!(
        postgres_seconds > 0.0 && postgres_seconds < 1.0,
        "{postgres_seconds}"
    );
    let speedup = agent.wait_for(Duration::from_secs(15), |m| {
        value(m, "lookout_race_speedup_ratio", &[("race", "report")])
    });
    assert!(
        speedup > 1.0,
        "the cache answers faster than a scan of 5,000 rows: {speedup}"
    );
    // One connection to each server, the collector's and the race's together.
    agent.wait_for_runs_from_now("race:report");
    let own = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lookout'",
    );
    assert_eq!(own, "1");
    let clients = lookout_tests::redis_commands(redis_port, "CLIENT LIST\n").expect("CLIENT LIST");
    assert_eq!(
        clients.lines().filter(|l| l.contains("addr=")).count(),
        2,
        "the agent's one connection and this CLIENT LIST: {clients}"
    );
}

#[test]
fn a_replica_reports_its_replication_lag() {
    let primary = server();
    primary.psql("app", "CREATE TABLE t AS SELECT 1 AS x");
    let replica = primary.replica();
    assert_eq!(replica.psql("postgres", "SELECT pg_is_in_recovery()"), "t");
    let agent = agent(&replica, "", "");
    let lag = agent.wait_for(Duration::from_secs(15), |m| {
        value(m, "lookout_postgres_replication_lag_seconds", MAIN)
    });
    // Caught up with what it received: 0, however long ago the last write was.
    assert!((0.0..5.0).contains(&lag), "{lag}");
    primary.psql("app", "INSERT INTO t VALUES (2)");
    agent.wait_for_runs_from_now(COLLECTOR);
    let m = agent.metrics();
    assert!(
        value(&m, "lookout_postgres_replication_lag_seconds", MAIN).is_some_and(|l| l < 5.0),
        "{m:?}"
    );
    assert_eq!(value(&m, "lookout_postgres_up", MAIN), Some(1.0));
}

/// Runs `openssl` with `args`; fails the test unless it succeeded.
fn openssl(args: &[&str]) {
    let out = Command::new(require("openssl", "openssl"))
        .args(args)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA (`<name>-ca.crt`) and, when `server`, a certificate for 127.0.0.1 signed by it with
/// its key (`server.crt`, `server.key`, readable by the server's user only), made in `dir`.
fn certificates(dir: &std::path::Path, name: &str, server: bool) {
    let path = |file: &str| dir.join(file).display().to_string();
    let (ca_key, ca_crt) = (
        path(&format!("{name}-ca.key")),
        path(&format!("{name}-ca.crt")),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
        "-keyout",
        &ca_key,
        "-out",
        &ca_crt,
    ]);
    if !server {
        return;
    }
    let ext = path("san.ext");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").expect("write san.ext");
    let (key, csr, crt) = (path("server.key"), path("server.csr"), path("server.crt"));
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &crt,
    ]);
    for file in [&key, &crt] {
        let _ = Command::new("chown").arg("postgres").arg(file).status();
        let _ = Command::new("chmod").arg("600").arg(file).status();
    }
}

#[test]
fn tls_prefer_encrypts_and_a_ca_file_checks_the_server() {
    let certs = TempDir::new("pg-certs");
    let _ = Command::new("chmod").arg("755").arg(certs.path()).status();
    certificates(certs.path(), "good", true);
    certificates(certs.path(), "other", false);
    let (key, cert) = (
        certs.path().join("server.key"),
        certs.path().join("server.crt"),
    );
    let (ca, other_ca) = (
        certs.path().join("good-ca.crt"),
        certs.path().join("other-ca.crt"),
    );
    let pg = PgServer::start(&[
        "ssl=on",
        &format!("ssl_cert_file={}", cert.display()),
        &format!("ssl_key_file={}", key.display()),
    ]);
    pg.create_monitor_role(PASSWORD);
    pg.psql("postgres", "CREATE DATABASE app");
    let url = format!("postgres://lookout@127.0.0.1:{}/app", pg.port);
    let agent = Agent::start_in(
        TempDir::new("pg-agent"),
        &[("pgpass", PASSWORD)],
        &format!(
            "{QUIET}  postgres:\n\
             \x20   - {{name: prefer, url: \"{url}\", password_file: pgpass, interval: 1s}}\n\
             \x20   - {{name: checked, url: \"{url}\", password_file: pgpass, interval: 1s, tls: require, ca_file: {}}}\n\
             \x20   - {{name: wrongca, url: \"{url}\", password_file: pgpass, interval: 1s, tls: require, ca_file: {}}}\n",
            ca.display(),
            other_ca.display()
        ),
    );
    for target in ["prefer", "checked"] {
        agent.wait_for(Duration::from_secs(15), |m| {
            value(m, "lookout_postgres_up", &[("target", target)]).filter(|v| *v == 1.0)
        });
    }
    // Both sessions are encrypted.
    let encrypted = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
         WHERE application_name = 'lookout' AND ssl",
    );
    assert_eq!(encrypted, "2");
    // A server whose certificate does not lead to the CA given is refused.
    agent.wait_until("the wrong CA refused", Duration::from_secs(15), || {
        let status = agent.json("/api/v1/status");
        status["collectors"]["postgres:wrongca"]["target_error"]
            .as_str()
            .is_some_and(|e| e.contains("TLS") || e.contains("certificate"))
    });
    assert_eq!(
        value(
            &agent.metrics(),
            "lookout_postgres_up",
            &[("target", "wrongca")]
        ),
        Some(0.0)
    );
}
