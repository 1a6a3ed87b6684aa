//! The scalability score end to end: N established connections on a watched port and M
//! jobs queued in a real Redis give the formula's score.

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use lookout_tests::{Agent, TempDir, free_port, redis_commands, redis_server};

/// One Redis command (inline); its reply.
fn redis(port: u16, command: &str) -> String {
    redis_commands(port, &format!("{command}\n")).expect("redis command")
}

#[test]
fn sessions_and_queued_jobs_give_the_formulas_score() {
    const SESSIONS: usize = 25; // 5 above the free 20, 2 points each: -10
    const JOBS: usize = 15; // 5 above the free 10, 1 point each: -5
    let redis_port = free_port();
    let _redis = redis_server(redis_port, &[]);
    for i in 0..JOBS {
        assert!(redis(redis_port, &format!("RPUSH jobs {i}")).starts_with(':'));
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app_port = listener.local_addr().unwrap().port();
    let clients: Vec<TcpStream> = (0..SESSIONS)
        .map(|_| TcpStream::connect(("127.0.0.1", app_port)).unwrap())
        .collect();
    let servers: Vec<TcpStream> = (0..SESSIONS)
        .map(|_| listener.accept().unwrap().0)
        .collect();

    // No rules: health stays ok, so only the two load terms count.
    let agent = Agent::start_in(
        TempDir::new("score"),
        &[("none.yaml", "groups: []\n")],
        &format!(
            "collect:\n  host:\n    enabled: false\n  tcp:\n    interval: 1s\n    timeout: 1s\n    ports: [{app_port}]\n\
             \x20 redis:\n    - {{name: queue, url: \"redis://127.0.0.1:{redis_port}\", interval: 1s, timeout: 1s, queues: [jobs]}}\n\
             rules:\n  files: [none.yaml]\n  evaluation_interval: 1s\n"
        ),
    );
    // Wait for an evaluation that saw both loads, then check what it made of them.
    let input = |doc: &serde_json::Value, name: &str| {
        doc["components"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == name))
            .and_then(|c| c["input"].as_f64())
    };
    let mut doc = serde_json::Value::Null;
    agent.wait_until(
        "an evaluation with both loads",
        Duration::from_secs(10),
        || {
            let (status, body) = agent.get("/api/v1/scalability");
            doc = serde_json::from_str(&body).unwrap_or_default();
            status == 200
                && input(&doc, "sessions") == Some(SESSIONS as f64)
                && input(&doc, "background_tasks") == Some(JOBS as f64)
        },
    );
    assert_eq!(doc["score"], 85.0, "{doc}");
    assert_eq!(doc["grade"], "excellent");
    let component = |name: &str| {
        doc["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(component("sessions")["penalty"], 10.0, "{doc}");
    assert_eq!(component("background_tasks")["penalty"], 5.0, "{doc}");
    assert_eq!(component("health")["penalty"], 0.0, "{doc}");
    // /metrics exports the same score (from this evaluation or a later one, same loads).
    assert_eq!(
        lookout_tests::value(&agent.metrics(), "lookout_scalability_score", &[]),
        Some(85.0)
    );

    // Load goes away: the score follows.
    drop(clients);
    drop(servers);
    for _ in 0..JOBS {
        redis(redis_port, "LPOP jobs");
    }
    agent.wait_for(Duration::from_secs(10), |m| {
        lookout_tests::find(m, "lookout_scalability_score", &[])
            .map(|s| s.value)
            .filter(|v| *v == 100.0)
    });
}
