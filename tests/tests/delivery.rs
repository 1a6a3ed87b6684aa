//! Delivery through the running agent, against a real HTTP receiver in its own process:
//! an outage with the agent killed (SIGKILL) while the notification is queued, a permanent
//! 4xx, retries of 5xx with backoff, and the alert latency from evaluation to receipt.

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
    agent.wait_until(
        "the queued notification delivered",
        Duration::from_secs(15),
        || !received(&out).is_empty(),
    );
    // Long enough for a duplicate to show up, if there were one (repeat_interval is 4h).
    std::thread::sleep(Duration::from_secs(3));

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
    assert!(
        agent.json("/api/v1/outbox")["pending"]
            .as_array()
            .unwrap()
            .is_empty()
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
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(received(&out).len(), 1, "a 400 must not be retried");
    let outbox = agent.json("/api/v1/outbox");
    assert!(
        outbox["dead"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("400"),
        "{outbox}"
    );
    assert!(outbox["pending"].as_array().unwrap().is_empty());
    assert_eq!(
        metric(
            &agent,
            "lookout_notifications_total",
            &[("receiver", "hook"), ("result", "dead")]
        ),
        Some(1.0)
    );
}

#[test]
fn a_5xx_is_retried_with_backoff_until_delivered_and_latency_is_within_budget() {
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
    let requests = received(&out);
    let t: Vec<f64> = requests.iter().map(|r| r["t"].as_f64().unwrap()).collect();
    let statuses: Vec<u64> = requests
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [503, 503, 200]);
    let keys: Vec<&str> = requests
        .iter()
        .map(|r| r["headers"]["idempotency-key"].as_str().unwrap())
        .collect();
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "retries keep the idempotency key: {keys:?}"
    );
    // Backoff without jitter: 1s, then 2s (the worker's own overhead on top).
    let (gap1, gap2) = (t[1] - t[0], t[2] - t[1]);
    assert!(
        (0.9..1.8).contains(&gap1),
        "first retry after {gap1:.2}s, expected about 1s"
    );
    assert!(
        (1.9..2.8).contains(&gap2),
        "second retry after {gap2:.2}s, expected about 2s"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(received(&out).len(), 3, "nothing after the delivery");
    assert_eq!(
        metric(
            &agent,
            "lookout_notifications_total",
            &[("receiver", "hook"), ("result", "retry")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &agent,
            "lookout_notifications_total",
            &[("receiver", "hook"), ("result", "delivered")]
        ),
        Some(1.0)
    );

    // Alert latency: from the evaluation that fired (startsAt) to the first receipt.
    let body: serde_json::Value =
        serde_json::from_str(requests[0]["body"].as_str().unwrap()).unwrap();
    let starts_at = body["alerts"][0]["startsAt"].as_str().unwrap();
    let fired = parse_rfc3339(starts_at);
    let latency_ms = (t[0] - fired) * 1000.0;
    eprintln!("alert latency, evaluation -> webhook receipt (group_wait 0s): {latency_ms:.1} ms");
    // DESIGN budget: one evaluation interval (1s here) + 200 ms, from the threshold crossing.
    assert!(
        (0.0..1200.0).contains(&latency_ms),
        "latency {latency_ms:.1} ms"
    );
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS.mmmZ` (what the payload carries).
fn parse_rfc3339(s: &str) -> f64 {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", s, "+%s.%N"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn the_fire_drill_reports_each_receiver_from_the_cli_and_the_api() {
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

    // API: the same drill through a running agent.
    let agent = Agent::start_with_config(&config, port, dir);
    let (status, answer) =
        lookout_tests::http(agent.addr, "POST", "/api/v1/test-alert", &[], "").unwrap();
    assert_eq!(status, 502, "{answer}");
    let doc: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(
        results
            .iter()
            .any(|r| r["receiver"] == "hook" && r["ok"] == true),
        "{doc}"
    );
    assert!(
        results
            .iter()
            .any(|r| r["receiver"] == "down" && r["ok"] == false),
        "{doc}"
    );
    let (status, _) = lookout_tests::http(
        agent.addr,
        "POST",
        "/api/v1/test-alert?receiver=hook",
        &[],
        "",
    )
    .unwrap();
    assert_eq!(status, 200);
    let (status, _) = lookout_tests::http(
        agent.addr,
        "POST",
        "/api/v1/test-alert?receiver=nope",
        &[],
        "",
    )
    .unwrap();
    assert_eq!(status, 404);
    assert_eq!(
        received(&out).len(),
        4,
        "two CLI drills and two API drills reached the hook"
    );
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
    std::thread::sleep(Duration::from_secs(2));
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
