//! Silences and inhibition through the real binary and a real webhook receiver: a silence
//! made with `lookout silence add` holds a firing alert's notification while the API still
//! lists the alert; expiring it while the alert fires delivers it; a silence survives a
//! restart; an inhibited alert waits while its source fires and is delivered once the
//! source resolves.

use std::path::Path;
use std::time::Duration;

use lookout_tests::{
    Agent, TempDir, free_port, http_receiver, lookout, received, stdout_of_success,
};
use serde_json::Value;

/// (alert, status) of every alert of every request the receiver got, in order.
fn delivered(out: &Path) -> Vec<(String, String)> {
    received(out)
        .iter()
        .flat_map(|r| {
            let body: Value =
                serde_json::from_str(r["body"].as_str().unwrap_or("{}")).unwrap_or(Value::Null);
            body["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|a| {
                    (
                        a["labels"]["alertname"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        a["status"].as_str().unwrap_or_default().to_string(),
                    )
                })
        })
        .collect()
}

fn config(hook_port: u16) -> String {
    format!(
        "collect:\n  host: {{interval: 1s, timeout: 1s}}\n  tcp: {{enabled: false}}\n  \
         cgroups: {{enabled: false}}\n  processes: {{enabled: false}}\n\
         rules:\n  files: [rules.yaml]\n  evaluation_interval: 1s\n\
         notify:\n  group_wait: 0s\n  retry: {{initial: 1s, max: 1s, jitter: false}}\n  \
         receivers:\n    - name: hook\n      webhook: {{url: \"http://127.0.0.1:{hook_port}/hook\", timeout: 2s}}\n"
    )
}

/// `lookout silence ...` against `agent`; its standard output.
fn silence(agent: &Agent, args: &[&str]) -> String {
    stdout_of_success(
        lookout()
            .arg("silence")
            .args(args)
            .args(["--url", &format!("http://{}", agent.addr)]),
    )
}

const DEPLOY: &str = "groups:\n  - name: t\n    interval: 1s\n    rules:\n      - alert: DeployNoise\n        expr: lookout_build_info\n        warning: \"> 0\"\n        for: 3s\n";

#[test]
fn a_silence_holds_a_firing_alert_until_it_is_expired_and_survives_a_restart() {
    let dir = TempDir::new("silences");
    let out = dir.path().join("hook.jsonl");
    let hook_port = free_port();
    let _hook = http_receiver(hook_port, &out, "ok", None);
    let mut agent = Agent::start_in(dir, &[("rules.yaml", DEPLOY)], &config(hook_port));
    let id = silence(
        &agent,
        &[
            "add",
            "--match",
            "alert=DeployNoise",
            "--for",
            "1h",
            "--comment",
            "deploy",
        ],
    );
    let id = id.trim().to_string();
    assert_eq!(id.len(), 16, "{id}");

    // The alert fires (after 3 s) and is listed, silenced; nothing is delivered.
    agent.wait_until(
        "DeployNoise firing and silenced",
        Duration::from_secs(15),
        || {
            let alerts = agent.json("/api/v1/alerts");
            alerts["alerts"].as_array().is_some_and(|a| {
                a.iter().any(|a| {
                    a["alert"] == "DeployNoise"
                        && a["state"] == "firing"
                        && a["silenced"] == true
                        && a["muted_by"][0]["id"] == id.as_str()
                })
            })
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(delivered(&out).is_empty(), "{:?}", delivered(&out));
    let listed = silence(&agent, &["list"]);
    assert!(
        listed.contains(&id) && listed.contains("active") && listed.contains("alert=DeployNoise"),
        "{listed}"
    );
    let metrics = agent.metrics();
    assert_eq!(
        lookout_tests::value(&metrics, "lookout_silences", &[("state", "active")]),
        Some(1.0)
    );

    // A restart keeps the silence, and the alert stays held.
    agent.restart();
    let listed = silence(&agent, &["list", "--json"]);
    let doc: Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(doc["silences"][0]["id"], id.as_str(), "{doc}");
    agent.wait_until(
        "DeployNoise firing again after the restart",
        Duration::from_secs(15),
        || {
            agent.json("/api/v1/alerts")["alerts"]
                .as_array()
                .is_some_and(|a| {
                    a.iter()
                        .any(|a| a["alert"] == "DeployNoise" && a["state"] == "firing")
                })
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(delivered(&out).is_empty(), "{:?}", delivered(&out));

    // Expired while the alert fires: delivered now.
    let expired = silence(&agent, &["expire", &id]);
    assert!(expired.contains("expired"), "{expired}");
    agent.wait_until("DeployNoise delivered", Duration::from_secs(10), || {
        delivered(&out).contains(&("DeployNoise".into(), "firing".into()))
    });
    assert_eq!(delivered(&out).len(), 1, "{:?}", delivered(&out));
    assert!(silence(&agent, &["list"]).contains("expired"));
}

#[test]
fn bad_silences_are_refused_with_the_reason() {
    let dir = TempDir::new("silences-bad");
    let agent = Agent::start_in(dir, &[("rules.yaml", DEPLOY)], &config(free_port()));
    let post = |body: &str| {
        lookout_tests::http(
            agent.addr,
            "POST",
            "/api/v1/silences",
            &[("Content-Type", "application/json")],
            body,
        )
        .expect("POST")
    };
    for (body, words) in [
        (
            "{\"matchers\": {}, \"duration\": \"1h\"}",
            "at least one matcher",
        ),
        (
            "{\"matchers\": {\"alert\": \"(\"}, \"duration\": \"1h\"}",
            "regular expression",
        ),
        ("{\"matchers\": {\"alert\": \"A\"}}", "ends"),
        (
            "{\"matchers\": {\"alert\": \"A\"}, \"ends\": \"yesterday\"}",
            "RFC 3339",
        ),
        (
            "{\"matchers\": {\"alert\": \"A\"}, \"ends\": \"2001-01-01T00:00:00Z\"}",
            "past",
        ),
        ("not json", "body"),
    ] {
        let (status, answer) = post(body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.contains(words), "{body}: {answer}");
    }
    let (status, answer) =
        lookout_tests::http(agent.addr, "DELETE", "/api/v1/silences/nope", &[], "")
            .expect("DELETE");
    assert_eq!(status, 404, "{answer}");
}

const INHIBIT: &str = "groups:\n  - name: t\n    interval: 1s\n    rules:\n      - alert: CacheDown\n        expr: lookout_build_info\n        critical: \"> THRESHOLD\"\n        inhibits:\n          - {target: {alert: \"Cache.+\"}}\n      - alert: CacheSlow\n        expr: lookout_build_info\n        warning: \"> 0\"\n        for: 2s\n";

#[test]
fn an_inhibited_alert_waits_while_its_source_fires_and_is_delivered_after() {
    let dir = TempDir::new("inhibit");
    let out = dir.path().join("hook.jsonl");
    let rules = dir.path().join("rules.yaml");
    let hook_port = free_port();
    let _hook = http_receiver(hook_port, &out, "ok", None);
    let agent = Agent::start_in(
        dir,
        &[("rules.yaml", &INHIBIT.replace("THRESHOLD", "0"))],
        &config(hook_port),
    );
    agent.wait_until("CacheDown delivered", Duration::from_secs(15), || {
        delivered(&out).contains(&("CacheDown".into(), "firing".into()))
    });
    agent.wait_until(
        "CacheSlow firing, inhibited",
        Duration::from_secs(15),
        || {
            agent.json("/api/v1/alerts")["alerts"]
                .as_array()
                .is_some_and(|a| {
                    a.iter().any(|a| {
                        a["alert"] == "CacheSlow"
                            && a["state"] == "firing"
                            && a["inhibited"] == true
                            && a["muted_by"][0]["source"] == "CacheDown"
                    })
                })
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !delivered(&out).iter().any(|(a, _)| a == "CacheSlow"),
        "{:?}",
        delivered(&out)
    );

    // The source resolves (its threshold is out of reach after a reload); CacheSlow, which
    // still fires, is delivered then.
    std::fs::write(&rules, INHIBIT.replace("THRESHOLD", "5")).expect("rewrite rules");
    let (status, body) = agent.reload(None);
    assert_eq!(status, 200, "{body}");
    agent.wait_until(
        "CacheSlow delivered after CacheDown resolved",
        Duration::from_secs(15),
        || delivered(&out).contains(&("CacheSlow".into(), "firing".into())),
    );
    let got = delivered(&out);
    let resolved = got
        .iter()
        .position(|d| *d == ("CacheDown".to_string(), "resolved".to_string()));
    let slow = got
        .iter()
        .position(|d| *d == ("CacheSlow".to_string(), "firing".to_string()));
    assert!(resolved.is_some() && resolved < slow, "{got:?}");
}

#[test]
fn a_maintenance_window_covering_now_holds_notifications_until_it_closes() {
    use std::time::{SystemTime, UNIX_EPOCH};
    let second = |t: SystemTime| t.duration_since(UNIX_EPOCH).expect("clock").as_secs() % 60;
    // The window opens at the start of this minute; leave it at least 12 s from now.
    if second(SystemTime::now()) > 40 {
        std::thread::sleep(Duration::from_secs(61 - second(SystemTime::now())));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let (minute, hour) = (now / 60 % 60, now / 3600 % 24);
    let closes_after = now % 60 + 12;
    let dir = TempDir::new("maintenance");
    let out = dir.path().join("hook.jsonl");
    let hook_port = free_port();
    let _hook = http_receiver(hook_port, &out, "ok", None);
    let rules = "groups:\n  - name: t\n    interval: 1s\n    rules:\n      - alert: BackupDiskBusy\n        expr: lookout_build_info\n        warning: \"> 0\"\n";
    let agent = Agent::start_in(
        dir,
        &[("rules.yaml", rules)],
        &format!(
            "{}  maintenance:\n    - {{name: backup, matchers: {{alert: \"Backup.*\"}}, schedule: \"{minute} {hour} * * *\", duration: {closes_after}s, timezone: UTC}}\n",
            config(hook_port)
        ),
    );
    agent.wait_until(
        "BackupDiskBusy firing, in maintenance",
        Duration::from_secs(10),
        || {
            agent.json("/api/v1/alerts")["alerts"]
                .as_array()
                .is_some_and(|a| {
                    a.iter().any(|a| {
                        a["alert"] == "BackupDiskBusy" && a["muted_by"][0]["name"] == "backup"
                    })
                })
        },
    );
    assert!(delivered(&out).is_empty(), "{:?}", delivered(&out));
    // The window closes: delivered within a couple of evaluations.
    agent.wait_until(
        "BackupDiskBusy delivered after the window",
        Duration::from_secs(25),
        || delivered(&out).contains(&("BackupDiskBusy".into(), "firing".into())),
    );
    let delivered_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(
        delivered_at >= now - now % 60 + closes_after,
        "delivered at {delivered_at}, the window closed at {}",
        now - now % 60 + closes_after
    );
}
