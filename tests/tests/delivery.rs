//! Delivery through the running agent, against a real HTTP receiver in its own process:
//! an outage with the agent killed (SIGKILL) while the notification is queued, a permanent
//! 4xx, retries of 5xx until delivered, the fire drill through the outbox and the rate limit.
//!
//! Nothing here measures the machine's clock: the backoff, grouping, circuit-breaker and
//! rate-limit timing is tested on paused time beside the dispatcher
//! (`agent/src/notify/dispatch.rs`), and the alert latency is a benchmark
//! (`bench/alert_latency.sh`). "Nothing more is sent" is shown by the outbox: a message is
//! sent only while it is pending, and each send happens before its outcome is recorded.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use lookout_tests::{Agent, TempDir, free_port, http_receiver, received};

const RULES: &str = "groups:\n  - name: t\n    interval: 1s\n    rules:\n      - alert: LoadSeen\n        expr: lookout_load1\n        warning: \">= 0\"\n        summary: \"load {{ value }} on {{ host }}\"\n";

/// A config with one always-firing rule and one webhook receiver on `hook_port`.
fn start_agent(dir: TempDir, hook_port: u16, retry: &str) -> Agent {
    Agent::start_in(
        dir,
        &[("rules.yaml", RULES), ("hook-secret", "s3cret\n")],
        &format!(
            "collect:\n  host:\n    interval: 1s\n    timeout: 1s\n  tcp:\n    enabled: false\n\
             rules:\n  files: [rules.yaml]\n  evaluation_interval: 1s\n\
             notify:\n  group_wait: 0s\n  retry: {retry}\n\
             \x20 receivers:\n    - name: hook\n      webhook:\n        url: http://127.0.0.1:{hook_port}/hook\n        secret_file: hook-secret\n        timeout: 2s\n"
        ),
    )
}

fn metric(agent: &Agent, name: &str, with: &[(&str, &str)]) -> Option<f64> {
    lookout_tests::find(&agent.metrics(), name, with).map(|s| s.value)
}

#[test]
fn a_notification_queued_during_an_outage_survives_kill_9_and_arrives_once() {
    let dir = TempDir::new("outage");
    let out = dir.path().join("received.jsonl");
    let hook_port = free_port();
    // The receiver is down: the first attempts fail with a refused connection.
    let mut agent = start_agent(dir, hook_port, "{initial: 1s, max: 2s, jitter: false}");
    let mut queued_id = String::new();
    agent.wait_until(
        "a failed attempt recorded in the outbox",
        Duration::from_secs(15),
        || {
            let doc = agent.json("/api/v1/outbox");
            match doc["pending"].as_array().and_then(|p| p.first()) {
                Some(p) if p["attempts"].as_u64().unwrap_or(0) >= 1 => {
                    queued_id = p["message"]["id"].as_str().unwrap().to_string();
                    true
                }
                _ => false,
            }
        },
    );
    assert!(agent.log().contains("will retry"), "{}", agent.log());

    // The queue shows on /metrics too.
    let pending = agent.wait_for(Duration::from_secs(5), |m| {
        lookout_tests::find(m, "lookout_outbox_pending", &[])
            .map(|s| s.value)
            .filter(|v| *v >= 1.0)
    });
    assert_eq!(pending, 1.0);
    assert!(metric(&agent, "lookout_outbox_oldest_age_seconds", &[]).is_some_and(|age| age > 0.0));

    // Killed while the notification is queued; the receiver comes back; the agent restarts.
    agent.crash();
    let _receiver = http_receiver(hook_port, &out, "ok", Some("s3cret"));
    agent.start_again();
    wait_for_empty_outbox(&agent);
    // The restarted agent's first evaluation (the score appears with it) did not notify the
    // restored alert again: a duplicate would have been a new message.
    agent.wait_until(
        "the first evaluation after the restart",
        Duration::from_secs(15),
        || agent.get("/api/v1/scalability").0 == 200,
    );
    let history = agent.json("/api/v1/alerts?history=10");
    assert_eq!(history["history"], serde_json::json!([]), "{history}");

    let requests = received(&out);
    let keys: Vec<&str> = requests
        .iter()
        .map(|r| r["headers"]["idempotency-key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [queued_id.as_str()],
        "exactly the queued message, once: {requests:#?}"
    );
    let r = &requests[0];
    assert_eq!(r["signature_ok"], true, "HMAC checked by the receiver: {r}");
    let body: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "LoadSeen");
    assert_eq!(body["alerts"][0]["labels"]["host"], "test-host");
}

/// Waits until the outbox holds nothing pending: every message sent has its outcome
/// recorded, so every send there was is in the receiver's record.
fn wait_for_empty_outbox(agent: &Agent) {
    agent.wait_until(
        "nothing pending in the outbox",
        Duration::from_secs(20),
        || {
            agent.json("/api/v1/outbox")["pending"]
                .as_array()
                .unwrap()
                .is_empty()
        },
    );
}

#[test]
fn a_4xx_is_not_retried_and_lands_in_the_dead_letters() {
    let dir = TempDir::new("dead");
    let out = dir.path().join("received.jsonl");
    let hook_port = free_port();
    let _receiver = http_receiver(hook_port, &out, "400", None);
    let agent = start_agent(dir, hook_port, "{initial: 1s, max: 2s, jitter: false}");
    agent.wait_until("a dead letter", Duration::from_secs(15), || {
        !agent.json("/api/v1/outbox")["dead"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    // Dead and nothing pending: no send can follow, so the one request is all there is.
    let outbox = agent.json("/api/v1/outbox");
    assert!(outbox["pending"].as_array().unwrap().is_empty(), "{outbox}");
    assert_eq!(received(&out).len(), 1, "a 400 must not be retried");
    assert!(
        outbox["dead"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("400"),
        "{outbox}"
    );
    // The counters are exported at each evaluation: wait for the one after the dead letter.
    let m = agent.wait_for(Duration::from_secs(5), |m| {
        let dead = [("receiver", "hook"), ("result", "dead")];
        (lookout_tests::value(m, "lookout_notifications_total", &dead) == Some(1.0))
            .then(|| m.to_vec())
    });
    let retries = [("receiver", "hook"), ("result", "retry")];
    assert_eq!(
        lookout_tests::value(&m, "lookout_notifications_total", &retries),
        None
    );
}

#[test]
fn a_5xx_is_retried_until_delivered_under_one_idempotency_key() {
    let dir = TempDir::new("retry");
    let out = dir.path().join("received.jsonl");
    let hook_port = free_port();
    let _receiver = http_receiver(hook_port, &out, "503x2", None);
    let agent = start_agent(
        dir,
        hook_port,
        "{initial: 1s, max: 4s, multiplier: 2, jitter: false}",
    );
    agent.wait_until("delivered after two 503s", Duration::from_secs(20), || {
        received(&out).len() >= 3
    });
    wait_for_empty_outbox(&agent);
    let requests = received(&out);
    let statuses: Vec<u64> = requests
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [503, 503, 200], "nothing after the delivery");
    let keys: Vec<&str> = requests
        .iter()
        .map(|r| r["headers"]["idempotency-key"].as_str().unwrap())
        .collect();
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "retries keep the idempotency key: {keys:?}"
    );
    // The counters are exported at each evaluation: wait for the one after the delivery.
    let m = agent.wait_for(Duration::from_secs(5), |m| {
        let delivered = [("receiver", "hook"), ("result", "delivered")];
        (lookout_tests::value(m, "lookout_notifications_total", &delivered) == Some(1.0))
            .then(|| m.to_vec())
    });
    let retries = [("receiver", "hook"), ("result", "retry")];
    assert_eq!(
        lookout_tests::value(&m, "lookout_notifications_total", &retries),
        Some(2.0)
    );
}

#[test]
fn the_fire_drill_reports_from_the_cli_and_goes_through_the_outbox_from_the_api() {
    let dir = TempDir::new("drill");
    let out = dir.path().join("received.jsonl");
    let hook_port = free_port();
    let dead_port = free_port(); // nothing listens here
    let _receiver = http_receiver(hook_port, &out, "ok", None);
    let config = dir.path().join("lookout.yaml");
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            "agent:\n  hostname: drill-host\n  listen: 127.0.0.1:{port}\n  data_dir: {}\n\
             notify:\n  receivers:\n    - name: hook\n      webhook: {{url: \"http://127.0.0.1:{hook_port}/hook\", timeout: 2s}}\n\
             \x20   - name: down\n      webhook: {{url: \"http://127.0.0.1:{dead_port}/hook\", timeout: 2s}}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();

    // CLI: every receiver, one failing.
    let cli = lookout_tests::lookout()
        .args(["notify", "test", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(cli.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ok      hook (webhook)"), "{stdout}");
    assert!(
        stdout.contains("FAILED  down (webhook)") && stdout.contains("connection"),
        "{stdout}"
    );
    assert!(stdout.contains("1 passed, 1 failed"), "{stdout}");
    let drill = &received(&out)[0];
    let body: serde_json::Value = serde_json::from_str(drill["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "LookoutFireDrill");
    assert_eq!(body["alerts"][0]["labels"]["lookout_test"], "true");
    assert_eq!(body["alerts"][0]["labels"]["host"], "drill-host");

    // CLI: one receiver only; an unknown one is a usage error.
    let only = lookout_tests::lookout()
        .args(["notify", "test", "--receiver", "hook", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        only.status.success(),
        "{}",
        String::from_utf8_lossy(&only.stdout)
    );
    let unknown = lookout_tests::lookout()
        .args(["notify", "test", "--receiver", "nope", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("hook, down"));

    // API: the drill goes through the outbox: 202 with the message ids at once.
    let agent = Agent::start_with_config(&config, port, dir);
    let (status, headers, answer) = post_drill(&agent, "");
    assert_eq!(status, 202, "{answer}");
    assert!(!headers.contains_key("retry-after"), "{headers:?}");
    let doc: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let id_for = |name: &str| -> String {
        doc["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["receiver"] == name)
            .unwrap_or_else(|| panic!("no message for {name}: {doc}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (hook_id, down_id) = (id_for("hook"), id_for("down"));
    // The hook gets it with its id as Idempotency-Key, marked as a test.
    agent.wait_until("the API drill at the hook", Duration::from_secs(10), || {
        received(&out).len() == 3
    });
    let drill = &received(&out)[2];
    assert_eq!(drill["headers"]["idempotency-key"], hook_id.as_str());
    let body: serde_json::Value = serde_json::from_str(drill["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["alerts"][0]["labels"]["lookout_test"], "true");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "LookoutFireDrill");
    // The one that is down keeps it in the outbox and retries it, like any message.
    agent.wait_until("the down drill retried", Duration::from_secs(15), || {
        agent.json("/api/v1/outbox")["pending"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["message"]["id"] == down_id.as_str() && p["attempts"].as_u64() >= Some(1))
    });
    // A second drill within 10 s: 429, with when to come back.
    let (status, headers, answer) = post_drill(&agent, "?receiver=hook");
    assert_eq!(status, 429, "{answer}");
    let retry_after: u64 = headers["retry-after"].parse().unwrap();
    assert!((1..=10).contains(&retry_after), "{headers:?}");
    assert!(answer.contains("one fire drill per 10s"), "{answer}");
    // An unknown receiver is a 404, window or not.
    let (status, _, answer) = post_drill(&agent, "?receiver=nope");
    assert_eq!(status, 404, "{answer}");
    assert!(answer.contains("hook, down"), "{answer}");
}

/// POST `/api/v1/test-alert{query}`: status, headers (lower-case names) and body.
fn post_drill(agent: &Agent, query: &str) -> (u16, BTreeMap<String, String>, String) {
    let mut stream = TcpStream::connect(agent.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /api/v1/test-alert{query} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        agent.addr
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status.parse().unwrap(), headers, body.to_string())
}

/// The drill counts against the receiver's rate limit: with one message an hour allowed,
/// the drill takes the slot and the alert decided after it waits (the dispatcher says so).
/// The alert fires only once the test pushes the metric it watches, after the drill arrived.
#[test]
fn the_fire_drill_takes_a_slot_of_the_receivers_rate_limit() {
    let dir = TempDir::new("drill-limit");
    let out = dir.path().join("received.jsonl");
    let hook_port = free_port();
    let _receiver = http_receiver(hook_port, &out, "ok", None);
    let rules = "groups:\n  - name: t\n    interval: 1s\n    rules:\n      - alert: Pushed\n        expr: lookout_api_requests_total\n        warning: \">= 0\"\n        on_missing: keep\n";
    let agent = Agent::start_in(
        dir,
        &[("rules.yaml", rules)],
        &format!(
            "collect:\n  host: {{enabled: false}}\n  tcp: {{enabled: false}}\n  ingest: {{interval: 1s}}\n\
             rules:\n  files: [rules.yaml]\n  evaluation_interval: 1s\n\
             notify:\n  group_wait: 0s\n  rate_limit: {{max: 1, per: 1h}}\n  receivers:\n\
             \x20   - name: hook\n      webhook: {{url: \"http://127.0.0.1:{hook_port}/hook\"}}\n"
        ),
    );
    let (status, _, answer) = post_drill(&agent, "");
    assert_eq!(status, 202, "{answer}");
    agent.wait_until("the drill at the hook", Duration::from_secs(10), || {
        received(&out).len() == 1
    });
    let observation =
        r#"[{"route": "/x", "method": "GET", "status": 200, "duration_seconds": 0.1}]"#;
    let (status, answer) =
        lookout_tests::http(agent.addr, "POST", "/api/v1/observations", &[], observation).unwrap();
    assert_eq!(status, 200, "{answer}");
    agent.wait_until(
        "the alert held back by the rate limit",
        Duration::from_secs(15),
        || {
            agent
                .log()
                .lines()
                .any(|l| l.contains("rate limit reached") && l.contains("receiver=hook"))
        },
    );
    // Held, not sent: it waits in the outbox, never attempted, and the hook has the drill only.
    let outbox = agent.json("/api/v1/outbox");
    let pending = outbox["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{outbox}");
    assert_eq!(pending[0]["message"]["alerts"][0]["alert"], "Pushed");
    assert_eq!(pending[0]["attempts"], 0);
    assert_eq!(received(&out).len(), 1);
}

#[test]
fn send_resolved_false_keeps_resolves_from_one_receiver_only() {
    let dir = TempDir::new("resolved");
    let (all_out, firing_out) = (
        dir.path().join("all.jsonl"),
        dir.path().join("firing.jsonl"),
    );
    let (all_port, firing_port) = (free_port(), free_port());
    let _all = http_receiver(all_port, &all_out, "ok", None);
    let _firing = http_receiver(firing_port, &firing_out, "ok", None);
    let agent = Agent::start_in(
        dir,
        &[("rules.yaml", RULES)],
        &format!(
            "collect:\n  host:\n    interval: 1s\n    timeout: 1s\n  tcp:\n    enabled: false\n\
             rules:\n  files: [rules.yaml]\n  evaluation_interval: 1s\n\
             notify:\n  group_wait: 0s\n  receivers:\n\
             \x20   - name: all\n      webhook: {{url: \"http://127.0.0.1:{all_port}/\"}}\n\
             \x20   - name: firing-only\n      send_resolved: false\n      webhook: {{url: \"http://127.0.0.1:{firing_port}/\"}}\n"
        ),
    );
    agent.wait_until(
        "both receivers got the firing alert",
        Duration::from_secs(10),
        || received(&all_out).len() == 1 && received(&firing_out).len() == 1,
    );
    // Make the condition false: the alert resolves.
    std::fs::write(
        agent.dir.path().join("rules.yaml"),
        RULES.replace(">= 0", "< -1"),
    )
    .unwrap();
    let (status, body) = agent.reload(None);
    assert_eq!(status, 200, "{body}");
    agent.wait_until("the resolve reached `all`", Duration::from_secs(10), || {
        received(&all_out).len() == 2
    });
    // Both receivers' messages of one evaluation are written to the outbox together, before
    // either is sent: a resolve for `firing-only` would now be pending or already received.
    let outbox = agent.json("/api/v1/outbox");
    assert!(
        outbox["pending"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["message"]["receiver"] != "firing-only"),
        "{outbox}"
    );
    let status_of = |r: &serde_json::Value| {
        let body: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        body["status"].as_str().unwrap().to_string()
    };
    let all: Vec<String> = received(&all_out).iter().map(status_of).collect();
    let firing: Vec<String> = received(&firing_out).iter().map(status_of).collect();
    assert_eq!(all, ["firing", "resolved"]);
    assert_eq!(
        firing,
        ["firing"],
        "send_resolved: false must not get the resolve"
    );
}
