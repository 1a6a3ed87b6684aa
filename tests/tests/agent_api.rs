//! The HTTP API and the agent's lifecycle, through the real binary on loopback.

use std::time::{Duration, Instant};

use lookout_tests::{Agent, find, http};

const FAST: &str = "collect:\n  host:\n    interval: 1s\n    timeout: 1s\n  tcp:\n    interval: 1s\n    timeout: 1s\n";

#[test]
fn health_readiness_and_status_answer_json() {
    let agent = Agent::start(FAST);
    let (status, body) = agent.get("/healthz");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"],
        "ok"
    );

    let (status, body) = agent.get("/readyz");
    assert_eq!(status, 200, "{body}");

    let (status, body) = agent.get("/api/v1/status");
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["host"], "test-host");
    assert_eq!(doc["ready"], true);
    let collectors = doc["collectors"].as_object().unwrap();
    for name in [
        "cpu",
        "load",
        "memory",
        "filesystem",
        "disk",
        "network",
        "system",
        "tcp",
        "process",
        "processes",
    ] {
        let c = &collectors[name];
        assert!(c["runs"].as_u64().unwrap() >= 1, "{name}: {c}");
        assert_eq!(c["up"], true, "{name}: {c}");
    }
    let memory = collectors["memory"]["values"].as_array().unwrap();
    assert!(
        memory
            .iter()
            .any(|v| v["metric"] == "lookout_memory_total_bytes"
                && v["value"].as_f64().unwrap() > 0.0)
    );
}

#[test]
fn unknown_paths_and_methods_get_json_errors() {
    let agent = Agent::start(FAST);
    let (status, body) = agent.get("/nope");
    assert_eq!(status, 404);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(doc["error"].as_str().unwrap().contains("/nope"), "{body}");

    let (status, body) = http(agent.addr, "DELETE", "/metrics", &[], "").unwrap();
    assert_eq!(status, 405);
    assert!(body.contains("DELETE"), "{body}");
}

#[test]
fn sighup_with_an_invalid_file_keeps_the_running_config_and_a_valid_one_applies() {
    let agent = Agent::start(FAST);
    let config_path = agent.dir.path().join("lookout.yaml");
    let original = std::fs::read_to_string(&config_path).unwrap();

    std::fs::write(&config_path, format!("{original}    bogus_key: 1\n")).unwrap();
    agent.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !agent.log().contains("reload rejected") {
        assert!(
            Instant::now() < deadline,
            "no rejection logged:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(agent.log().contains("bogus_key"), "{}", agent.log());
    // Still serving, on the old configuration.
    assert_eq!(agent.get("/healthz").0, 200);
    assert!(find(&agent.metrics(), "lookout_load1", &[("host", "test-host")]).is_some());

    // A valid change (a new host label) applies without a restart.
    std::fs::write(
        &config_path,
        original.replace("hostname: test-host", "hostname: renamed-host"),
    )
    .unwrap();
    agent.signal("HUP");
    agent.wait_for(Duration::from_secs(10), |m| {
        find(m, "lookout_load1", &[("host", "renamed-host")]).map(|_| ())
    });
}

#[test]
fn post_reload_needs_the_token_when_one_is_configured() {
    let dir = lookout_tests::TempDir::new("token");
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let agent = Agent::start(FAST);
    let config_path = agent.dir.path().join("lookout.yaml");
    let with_token = std::fs::read_to_string(&config_path).unwrap().replacen(
        "agent:\n",
        &format!("agent:\n  api_token_file: {}\n", token.display()),
        1,
    );
    std::fs::write(&config_path, with_token).unwrap();
    let (status, body) = agent.reload(None);
    assert_eq!(status, 200, "no token needed before the reload: {body}");

    let (status, body) = agent.reload(None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("missing bearer token"), "{body}");
    let (status, _) = agent.reload(Some("wrong"));
    assert_eq!(status, 401);
    let (status, body) = agent.reload(Some("s3cret"));
    assert_eq!(status, 200, "{body}");
    assert!(
        !agent.log().contains("s3cret"),
        "the token must never be logged"
    );

    // An invalid file over HTTP: 422 with every problem, and the agent keeps running.
    std::fs::write(
        &config_path,
        "agent:\n  listen: nowhere\ncollect:\n  host:\n    interval: ten\n",
    )
    .unwrap();
    let (status, body) = agent.reload(Some("s3cret"));
    assert_eq!(status, 422, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["problems"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(agent.get("/healthz").0, 200);
}

#[test]
fn sigterm_stops_the_agent_cleanly() {
    let mut agent = Agent::start(FAST);
    agent.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}\n{}", agent.log());
    assert!(agent.log().contains("stopped"), "{}", agent.log());
}

#[test]
fn a_reload_that_disables_a_collector_retires_its_series() {
    let agent = Agent::start(FAST);
    agent.wait_for(Duration::from_secs(5), |m| {
        find(m, "lookout_tcp_connections", &[]).map(|_| ())
    });
    let config_path = agent.dir.path().join("lookout.yaml");
    let text = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        text.replace("  tcp:\n", "  tcp:\n    enabled: false\n"),
    )
    .unwrap();
    let (status, body) = agent.reload(None);
    assert_eq!(status, 200, "{body}");

    let m = agent.metrics();
    assert!(
        find(&m, "lookout_tcp_connections", &[]).is_none(),
        "tcp series outlived their collector"
    );
    assert!(find(&m, "lookout_collector_up", &[("collector", "tcp")]).is_none());
    assert!(
        find(&m, "lookout_load1", &[]).is_some(),
        "the other collectors run on"
    );
    let (_, body) = agent.get("/api/v1/status");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(doc["collectors"].get("tcp").is_none(), "{doc}");
    assert_eq!(doc["ready"], true);
}

/// The agent runs with glibc's malloc arenas capped at one and fixed mmap and trim
/// thresholds (it executes itself again with them), keeping its process id; a setting made
/// by the user is left alone, and the others are still added.
#[test]
fn the_agent_runs_with_its_malloc_settings_unless_told_otherwise() {
    let environ = |agent: &Agent| -> Vec<String> {
        let raw = std::fs::read(format!("/proc/{}/environ", agent.child.id()))
            .expect("read the agent's environment");
        raw.split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    };
    let agent = Agent::start("");
    for setting in [
        "MALLOC_ARENA_MAX=1",
        "MALLOC_MMAP_THRESHOLD_=131072",
        "MALLOC_TRIM_THRESHOLD_=262144",
    ] {
        assert!(
            environ(&agent).contains(&setting.to_string()),
            "the agent's environment lacks {setting}: {:?}",
            environ(&agent)
        );
    }
    // Set by the user: left as it is (read once the agent serves, after any re-execution).
    drop(agent);
    let dir = lookout_tests::TempDir::new("arenas");
    let port = lookout_tests::free_port();
    let config = dir.path().join("lookout.yaml");
    std::fs::write(
        &config,
        format!(
            "agent:\n  listen: 127.0.0.1:{port}\n  data_dir: {}\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write config");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = lookout_tests::lookout()
        .args(["run", "-c"])
        .arg(&config)
        .env("MALLOC_ARENA_MAX", "4")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start lookout");
    lookout_tests::poll_until(
        "the agent serving /readyz",
        Duration::from_secs(30),
        || matches!(http(addr, "GET", "/readyz", &[], ""), Ok((200, _))),
        String::new,
    );
    let raw = std::fs::read(format!("/proc/{}/environ", child.id())).expect("environ");
    let _ = child.kill();
    let _ = child.wait();
    let env: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(env.contains(&"MALLOC_ARENA_MAX=4".to_string()), "{env:?}");
    assert!(!env.contains(&"MALLOC_ARENA_MAX=1".to_string()), "{env:?}");
    assert!(
        env.contains(&"MALLOC_MMAP_THRESHOLD_=131072".to_string()),
        "{env:?}"
    );
}
