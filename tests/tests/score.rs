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
    let expected = 100.0 - 2.0 * (SESSIONS as f64 - 20.0) - (JOBS as f64 - 10.0);
    let score = agent.wait_for(Duration::from_secs(10), |m| {
        lookout_tests::find(m, "lookout_scalability_score", &[])
            .map(|s| s.value)
            .filter(|v| *v == expected)
    });
    assert_eq!(score, 85.0);
    let doc = agent.json("/api/v1/scalability");
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
    assert_eq!(component("sessions")["input"], SESSIONS as f64, "{doc}");
    assert_eq!(component("sessions")["penalty"], 10.0);
    assert_eq!(component("background_tasks")["input"], JOBS as f64);
    assert_eq!(component("background_tasks")["penalty"], 5.0);
    assert_eq!(component("health")["penalty"], 0.0);

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
