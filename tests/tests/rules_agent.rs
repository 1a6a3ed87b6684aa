//! Rules in the running agent: an alert fires through the log receiver, shows in the API and
//! on /metrics with the score, survives a restart without being notified again, and resolves
//! after a reload.

use std::time::Duration;

use lookout_tests::{Agent, TempDir, find, free_port};

const RULES: &str = "groups:\n  - name: t\n    interval: 1s\n    rules:\n      - alert: LoadSeen\n        expr: lookout_load1\n        warning: \">= 0\"\n        summary: \"load {{ value }} on {{ host }}\"\n        labels: {team: infra}\n";

const CONFIG: &str = "collect:\n  host:\n    interval: 1s\n    timeout: 1s\nrules:\n  files: [rules.yaml]\n  evaluation_interval: 1s\nnotify:\n  group_wait: 0s\n";

fn count(log: &str, needle: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("notification") && l.contains(needle))
        .count()
}

#[test]
fn an_alert_fires_persists_across_a_restart_and_resolves() {
    let mut agent = Agent::start_in(TempDir::new("rules"), &[("rules.yaml", RULES)], CONFIG);

    // Fires, through the log receiver, once.
    agent.wait_until("the firing notification", Duration::from_secs(10), || {
        count(&agent.log(), "status=\"firing\"") >= 1
    });
    let alerts = agent.json("/api/v1/alerts?history=5");
    let active = alerts["alerts"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{alerts}");
    assert_eq!(active[0]["alert"], "LoadSeen");
    assert_eq!(active[0]["state"], "firing");
    assert_eq!(active[0]["labels"]["host"], "test-host");
    assert_eq!(active[0]["labels"]["team"], "infra");
    assert_eq!(
        alerts["history"][0]["summary"]
            .as_str()
            .unwrap()
            .split(' ')
            .next_back(),
        Some("test-host")
    );

    // Exported with the score: a warning takes 15 points, no sessions or backlog configured.
    let m = agent.wait_for(Duration::from_secs(5), |m| {
        find(
            m,
            "lookout_alert_firing",
            &[
                ("alert", "LoadSeen"),
                ("severity", "warning"),
                ("team", "infra"),
            ],
        )
        .map(|_| m.to_vec())
    });
    assert_eq!(
        find(&m, "lookout_alerts", &[("severity", "warning")])
            .unwrap()
            .value,
        1.0
    );
    assert_eq!(find(&m, "lookout_health_status", &[]).unwrap().value, 1.0);
    assert_eq!(
        find(&m, "lookout_scalability_score", &[]).unwrap().value,
        85.0
    );
    assert_eq!(
        find(
            &m,
            "lookout_scalability_penalty",
            &[("component", "health")]
        )
        .unwrap()
        .value,
        15.0
    );
    let score = agent.json("/api/v1/scalability");
    assert_eq!(score["score"], 85.0);
    assert_eq!(score["grade"], "excellent");
    assert_eq!(score["components"].as_array().unwrap().len(), 3, "{score}");
    let rules_doc = agent.json("/api/v1/rules");
    let rule = &rules_doc["rules"][0];
    assert_eq!(rule["alert"], "LoadSeen");
    assert_eq!(rule["instances"][0]["state"], "firing", "{rules_doc}");
    let status = agent.json("/api/v1/status");
    assert_eq!(status["health"], "warning");

    // A restart restores the firing state: still firing, and the first evaluation after it
    // (the score appears with it) decides no notification.
    agent.restart();
    let alerts = agent.json("/api/v1/alerts");
    assert_eq!(
        alerts["alerts"][0]["state"], "firing",
        "restored at start: {alerts}"
    );
    agent.wait_until(
        "the first evaluation after the restart",
        Duration::from_secs(10),
        || agent.get("/api/v1/scalability").0 == 200,
    );
    let alerts = agent.json("/api/v1/alerts?history=5");
    assert_eq!(
        alerts["history"],
        serde_json::json!([]),
        "re-notified after restart: {alerts}"
    );
    assert_eq!(alerts["alerts"][0]["state"], "firing", "{alerts}");

    // A reload that makes the condition false resolves it, notified once.
    std::fs::write(
        agent.dir.path().join("rules.yaml"),
        RULES.replace(">= 0", "< -1"),
    )
    .unwrap();
    agent.signal("HUP");
    agent.wait_until("one resolved notification", Duration::from_secs(10), || {
        count(&agent.log(), "status=\"resolved\"") == 1
    });
    assert!(
        agent.json("/api/v1/alerts")["alerts"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // An invalid rule file is rejected with its problems; the running rules stay.
    std::fs::write(
        agent.dir.path().join("rules.yaml"),
        RULES.replace(">= 0", "over nine"),
    )
    .unwrap();
    let (status, body) = agent.reload(None);
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("rules.yaml") && body.contains("invalid threshold"),
        "{body}"
    );
    let rules_doc = agent.json("/api/v1/rules");
    assert_eq!(
        rules_doc["rules"][0]["conditions"]["warning"], "< -1",
        "{rules_doc}"
    );
}

/// A firing alert is notified once, not at every evaluation: by the time a second rule of
/// the same group with `for: 3s` fires, the first has been evaluated at least three more
/// times, and the history (every notification decided) holds it once.
#[test]
fn a_firing_alert_is_notified_once_not_at_every_evaluation() {
    let rules = format!(
        "{RULES}      - alert: Later\n        expr: lookout_load1\n        warning: \">= 0\"\n        for: 3s\n"
    );
    let agent = Agent::start_in(TempDir::new("once"), &[("rules.yaml", &rules)], CONFIG);
    let names = |doc: &serde_json::Value| -> Vec<String> {
        doc["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["alert"].as_str().unwrap().to_string())
            .collect()
    };
    agent.wait_until("Later fired", Duration::from_secs(20), || {
        names(&agent.json("/api/v1/alerts?history=50")).contains(&"Later".to_string())
    });
    let history = agent.json("/api/v1/alerts?history=50");
    // Newest first.
    assert_eq!(names(&history), ["Later", "LoadSeen"], "{history}");
}

#[test]
fn check_reports_rule_file_problems_with_file_and_line() {
    let dir = TempDir::new("rulecheck");
    std::fs::write(dir.path().join("bad.yaml"), "groups:\n  - name: t\n    rules:\n      - alert: X\n        expr: lookout_nope\n        warning: \"70%\"\n").unwrap();
    let config = dir.path().join("lookout.yaml");
    std::fs::write(&config, "rules:\n  files: [bad.yaml]\n").unwrap();
    let out = lookout_tests::lookout()
        .arg("check")
        .arg("-c")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let bad = dir.path().join("bad.yaml").display().to_string();
    assert!(
        stderr.contains(&format!("{bad}:5:15: groups[0].rules[0].expr:")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{bad}:6:18: groups[0].rules[0].warning:")),
        "{stderr}"
    );
}

/// A probe target that answers 200 after 1.5 s, so the probe's first round ends well after
/// the agent started.
const SLOW_SERVER: &str = r#"
import http.server, sys, time

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(1.5)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

/// The first evaluation waits for the collectors' first runs: a rule whose data is not
/// there yet at start-up (a slow probe) must not fire its NoData alert, though it would on
/// an empty store (`on_missing: alert`, `for: 0s`).
#[test]
fn start_up_does_not_fire_nodata_before_the_collectors_ran() {
    let python = lookout_tests::require("python3", "python3");
    let target = free_port();
    let _server = lookout_tests::Peer(
        std::process::Command::new(python)
            .args(["-c", SLOW_SERVER, &target.to_string()])
            .spawn()
            .expect("start the slow server"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", target)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "slow server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let agent = Agent::start_in(
        TempDir::new("nodata"),
        &[(
            "rules.yaml",
            "groups:\n  - name: t\n    rules:\n      - alert: ProbeDown\n        expr: lookout_probe_success\n        critical: \"< 1\"\n        on_missing: alert\n",
        )],
        &format!(
            "collect:\n  host: {{enabled: false}}\n  tcp: {{enabled: false}}\n  http_probes:\n    - {{name: slow, url: \"http://127.0.0.1:{target}/\", interval: 5s, timeout: 3s}}\nrules:\n  files: [rules.yaml]\n  evaluation_interval: 5s\nnotify:\n  group_wait: 0s\n"
        ),
    );
    // The first evaluation (the score appears with it) came after the probe's first round.
    agent.wait_until("the first evaluation", Duration::from_secs(15), || {
        agent.get("/api/v1/scalability").0 == 200
    });
    let alerts = agent.json("/api/v1/alerts?history=10");
    assert_eq!(alerts["alerts"], serde_json::json!([]), "{alerts}");
    assert_eq!(alerts["history"], serde_json::json!([]), "{alerts}");
    let m = agent.metrics();
    assert_eq!(
        lookout_tests::value(&m, "lookout_probe_success", &[("probe", "slow")]),
        Some(1.0)
    );
}
