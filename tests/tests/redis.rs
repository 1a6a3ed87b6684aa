//! The Redis collector against a real `redis-server`: known traffic gives the known hit
//! ratio, an idle interval gives none, `CONFIG RESETSTAT` never gives a value outside 0..1,
//! queue lengths follow `RPUSH`/`LPOP`, and stopping / restarting the server flips `up`.

use std::time::{Duration, Instant};

use lookout_tests::{Agent, find, free_port, redis_commands, redis_server, value};

/// Runs the commands (one per line) on one connection; returns once all have run.
fn cli(port: u16, commands: &str) {
    redis_commands(port, commands).expect("redis commands");
}

const CACHE: &[(&str, &str)] = &[("target", "cache")];
const COLLECTOR: &str = "redis:cache";

/// Known traffic, 30 hits and 10 misses in one burst, gives the ratio 0.75 for the interval
/// that saw it. A burst may straddle two runs (two partial ratios): try again.
fn known_traffic_gives_its_ratio(agent: &Agent, port: u16) {
    let mut ratio = None;
    for _ in 0..5 {
        cli(port, &known_traffic());
        let deadline = Instant::now() + Duration::from_millis(2500);
        while Instant::now() < deadline && ratio.is_none() {
            ratio = value(&agent.metrics(), "lookout_redis_hit_ratio", CACHE)
                .filter(|r| (r - 0.75).abs() < 0.01);
            std::thread::sleep(Duration::from_millis(100));
        }
        if ratio.is_some() {
            return;
        }
    }
    panic!("no hit ratio of 0.75; log:\n{}", agent.log());
}

/// 30 hits and 10 misses, plus commands that are no lookups.
fn known_traffic() -> String {
    let mut s = String::from("SET k v\nPING\nDBSIZE\n");
    for _ in 0..30 {
        s.push_str("GET k\n");
    }
    for _ in 0..10 {
        s.push_str("GET missing\n");
    }
    s.push_str("SET k2 v\nINCR counter\n");
    s
}

#[test]
fn redis_metrics_follow_a_real_server() {
    let port = free_port();
    let mut redis = redis_server(port, &[]);
    let agent = Agent::start(&format!(
        "collect:\n  redis:\n    - {{name: cache, url: \"redis://127.0.0.1:{port}\", interval: 1s, timeout: 1s, queues: [jobs]}}\n  host:\n    enabled: false\n  tcp:\n    enabled: false\n"
    ));

    // Up, with the role label.
    agent.wait_for(Duration::from_secs(10), |m| {
        value(
            m,
            "lookout_redis_up",
            &[("target", "cache"), ("role", "master")],
        )
        .filter(|v| *v == 1.0)
    });
    let m = agent.metrics();
    assert!(value(&m, "lookout_redis_ping_seconds", CACHE).is_some_and(|v| v > 0.0 && v < 1.0));
    assert!(value(&m, "lookout_redis_memory_used_bytes", CACHE).is_some_and(|v| v > 0.0));
    assert_eq!(
        value(&m, "lookout_redis_memory_max_bytes", CACHE),
        Some(0.0)
    );
    assert_eq!(
        value(&m, "lookout_redis_memory_usage_ratio", CACHE),
        None,
        "maxmemory 0"
    );
    assert!(value(&m, "lookout_redis_connected_clients", CACHE).is_some_and(|v| v >= 1.0));

    // Idle intervals: no hit ratio at all.
    agent.wait_for_runs_from_now(COLLECTOR);
    assert_eq!(
        value(&agent.metrics(), "lookout_redis_hit_ratio", CACHE),
        None,
        "an idle cache has no ratio"
    );

    known_traffic_gives_its_ratio(&agent, port);
    let m = agent.metrics();
    assert!(value(&m, "lookout_redis_keyspace_hits_total", CACHE).is_some_and(|v| v >= 30.0));
    assert!(value(&m, "lookout_redis_keyspace_misses_total", CACHE).is_some_and(|v| v >= 10.0));
    assert!(value(&m, "lookout_redis_commands_processed_total", CACHE).is_some_and(|v| v > 40.0));
    assert!(value(&m, "lookout_redis_evicted_keys_total", CACHE).is_some());

    // And it disappears again once idle.
    agent.wait_for(Duration::from_secs(5), |m| {
        value(m, "lookout_redis_hit_ratio", CACHE)
            .is_none()
            .then_some(())
    });

    // CONFIG RESETSTAT mid-run, with traffic around it: never a value outside 0..1.
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut round = 0;
    while Instant::now() < deadline {
        let mut cmds = known_traffic();
        if round % 2 == 0 {
            cmds.push_str("CONFIG RESETSTAT\n");
            cmds.push_str(&"GET k\n".repeat(5));
        }
        cli(port, &cmds);
        if let Some(r) = value(&agent.metrics(), "lookout_redis_hit_ratio", CACHE) {
            assert!(
                (0.0..=1.0).contains(&r),
                "hit ratio {r} after CONFIG RESETSTAT"
            );
        }
        round += 1;
        std::thread::sleep(Duration::from_millis(150));
    }
    // After the resets, a clean interval has its ratio again.
    known_traffic_gives_its_ratio(&agent, port);

    // Queue length: RPUSH 3, LPOP 1 -> 2.
    cli(port, "RPUSH jobs a b c\nLPOP jobs\n");
    agent.wait_for(Duration::from_secs(5), |m| {
        value(
            m,
            "lookout_redis_queue_length",
            &[("target", "cache"), ("queue", "jobs")],
        )
        .filter(|v| *v == 2.0)
    });

    // Stop the server: the runs that start after it report up 0, and only `up` remains.
    drop(redis);
    agent.wait_for_runs_from_now(COLLECTOR);
    let m = agent.metrics();
    assert_eq!(value(&m, "lookout_redis_up", CACHE), Some(0.0), "{m:?}");
    assert_eq!(value(&m, "lookout_redis_ping_seconds", CACHE), None);
    assert_eq!(value(&m, "lookout_redis_queue_length", CACHE), None);
    // The rest of the agent is undisturbed: the HTTP server answered, and keeps doing so.
    assert!(find(&m, "lookout_build_info", &[]).is_some());

    // Restart on the same port: back to 1.
    redis = redis_server(port, &[]);
    agent.wait_for(Duration::from_secs(10), |m| {
        value(
            m,
            "lookout_redis_up",
            &[("target", "cache"), ("role", "master")],
        )
        .filter(|v| *v == 1.0)
    });
    drop(redis);
}
