//! Check-ins through the real binary: a job reporting in time keeps its check-in quiet, one
//! that stops is `CheckinMissed` within seconds, a `/fail` is `CheckinFailed`; unknown names
//! are 404; with an API token a report without it is refused; the times survive a restart.

use std::time::{Duration, Instant};

use lookout_tests::{Agent, TempDir, http, value};
use serde_json::Value;

/// No collectors but the check-ins; the built-in rules, evaluated every second.
const QUIET: &str =
    "collect:\n  host: {enabled: false}\n  tcp: {enabled: false}\n  ingest: {enabled: false}\n";
const RULES: &str = "rules:\n  evaluation_interval: 1s\n";

/// `method` on `/api/v1/checkins/<tail>` with `headers`: the status and the JSON answer.
fn report(agent: &Agent, method: &str, tail: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let path = format!("/api/v1/checkins/{tail}");
    let (status, body) = http(agent.addr, method, &path, headers, "")
        .unwrap_or_else(|e| panic!("{method} {path}: {e}; log:\n{}", agent.log()));
    let doc = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{method} {path}: {status} is not JSON ({e}): {body}"));
    (status, doc)
}

/// Reports `tail` and expects it recorded as `recorded`.
fn recorded(agent: &Agent, method: &str, tail: &str, recorded: &str) {
    let (status, doc) = report(agent, method, tail, &[]);
    assert_eq!(status, 200, "{method} {tail}: {doc}");
    assert_eq!(doc["recorded"], recorded, "{doc}");
}

/// The alerts firing now, as (alert, checkin).
fn firing(agent: &Agent) -> Vec<(String, String)> {
    agent.json("/api/v1/alerts")["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["state"] == "firing")
        .map(|a| {
            (
                a["alert"].as_str().unwrap_or("").to_string(),
                a["labels"]["checkin"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Every notification decided so far about a check-in: (alert, status, checkin).
fn decided(agent: &Agent) -> Vec<(String, String, String)> {
    agent.json("/api/v1/alerts?history=1000")["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|n| {
            n["alert"]
                .as_str()
                .is_some_and(|a| a.starts_with("Checkin"))
        })
        .map(|n| {
            (
                n["alert"].as_str().unwrap_or("").to_string(),
                n["status"].as_str().unwrap_or("").to_string(),
                n["labels"]["checkin"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn checkin_value(agent: &Agent, name: &str, checkin: &str) -> Option<f64> {
    value(&agent.metrics(), name, &[("checkin", checkin)])
}

fn pair(alert: &str, checkin: &str) -> (String, String) {
    (alert.to_string(), checkin.to_string())
}

/// Polls until `alert` fires for `checkin`; how long that took.
fn wait_firing(agent: &Agent, alert: &str, checkin: &str, limit: Duration) -> Duration {
    let from = Instant::now();
    agent.wait_until(&format!("{alert} {checkin} firing"), limit, || {
        firing(agent).contains(&pair(alert, checkin))
    });
    from.elapsed()
}

#[test]
fn regular_reports_keep_a_check_in_quiet_a_stop_fires_missed_and_a_failure_fires_failed() {
    let agent = Agent::start(&format!(
        "{QUIET}  checkins:\n    - {{name: job, every: 3s, grace: 1s}}\n    - {{name: nightly, schedule: \"0 3 * * *\", timezone: Europe/Berlin, grace: 1h}}\n{RULES}"
    ));
    // Reports every second for 8 s (twice every + grace), by POST and by GET, some runs
    // timed with /start.
    for i in 0..8 {
        if i % 2 == 0 {
            recorded(&agent, "POST", "job/start", "start");
        }
        recorded(
            &agent,
            if i % 3 == 0 { "GET" } else { "POST" },
            "job",
            "success",
        );
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(
            firing(&agent),
            Vec::<(String, String)>::new(),
            "after {i} s"
        );
    }
    let m = agent.metrics();
    assert_eq!(
        value(&m, "lookout_checkin_up", &[("checkin", "job")]),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "lookout_checkin_late", &[("checkin", "job")]),
        Some(0.0)
    );
    assert_eq!(
        value(&m, "lookout_checkin_failed", &[("checkin", "job")]),
        Some(0.0)
    );
    let last = value(
        &m,
        "lookout_checkin_last_timestamp_seconds",
        &[("checkin", "job")],
    )
    .expect("the last success's time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last).abs() < 3.0, "{last} vs {now}");
    assert!(
        value(
            &m,
            "lookout_checkin_duration_seconds",
            &[("checkin", "job")]
        )
        .is_some(),
        "a run timed from /start"
    );
    // A schedule never reported to is not late before its first due time + grace.
    assert_eq!(
        value(&m, "lookout_checkin_up", &[("checkin", "nightly")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "lookout_checkin_last_timestamp_seconds",
            &[("checkin", "nightly")]
        ),
        None
    );

    // The reports stop: the next one, due a second after this last one, never comes.
    // Missed once every + grace has passed since the last report (4 s), at the next rule
    // evaluation: within 5 s of the stop.
    recorded(&agent, "POST", "job", "success");
    let took = wait_firing(&agent, "CheckinMissed", "job", Duration::from_secs(10));
    let since_stop = took.saturating_sub(Duration::from_secs(1));
    assert!(
        since_stop <= Duration::from_secs(5),
        "CheckinMissed {since_stop:?} after the reports stopped ({took:?} after the last)"
    );
    assert!(
        took >= Duration::from_millis(3_900),
        "not before every + grace: {took:?}"
    );
    let m = agent.metrics();
    assert_eq!(
        value(&m, "lookout_checkin_up", &[("checkin", "job")]),
        Some(0.0)
    );
    assert_eq!(
        value(&m, "lookout_checkin_late", &[("checkin", "job")]),
        Some(1.0)
    );

    // A failure is a report (no longer missed) and fails the check-in.
    recorded(&agent, "GET", "job/fail", "failure");
    wait_firing(&agent, "CheckinFailed", "job", Duration::from_secs(3));
    agent.wait_until("CheckinMissed resolved", Duration::from_secs(3), || {
        !firing(&agent).contains(&pair("CheckinMissed", "job"))
    });
    // The next success puts it right.
    recorded(&agent, "POST", "job", "success");
    agent.wait_until("nothing firing", Duration::from_secs(3), || {
        firing(&agent).is_empty()
    });
    let expected: Vec<(String, String, String)> = [
        ("CheckinMissed", "firing"),
        ("CheckinFailed", "firing"),
        ("CheckinMissed", "resolved"),
        ("CheckinFailed", "resolved"),
    ]
    .iter()
    .map(|(a, s)| (a.to_string(), s.to_string(), "job".to_string()))
    .collect();
    let mut got = decided(&agent);
    got.reverse(); // newest first in the API
    // The failure's firing and the missed one's resolve come from one evaluation: either order.
    got[1..3].sort();
    let mut want = expected.clone();
    want[1..3].sort();
    assert_eq!(got, want);

    // An unknown name: 404, saying so; nothing recorded.
    for tail in ["nope", "nope/start", "nope/fail"] {
        let (status, doc) = report(&agent, "POST", tail, &[]);
        assert_eq!(status, 404, "{tail}: {doc}");
        assert!(
            doc["error"]
                .as_str()
                .is_some_and(|e| e.contains("no check-in named \"nope\"")),
            "{doc}"
        );
    }
    let (status, _) = report(&agent, "POST", "job/other", &[]);
    assert_eq!(status, 404);
    let (status, doc) = report(&agent, "PUT", "job", &[]);
    assert_eq!(status, 405, "{doc}");
}

#[test]
fn with_an_api_token_a_report_without_it_is_refused() {
    let dir = TempDir::new("checkin-token");
    let (api, read) = (dir.path().join("api-token"), dir.path().join("read-token"));
    std::fs::write(&api, "s3cret\n").unwrap();
    std::fs::write(&read, "reader\n").unwrap();
    let agent = Agent::start_in(
        dir,
        &[],
        &format!(
            "  api_token_file: {}\n  read_token_file: {}\n{QUIET}  checkins:\n    - {{name: backup, every: 24h, grace: 1h}}\n",
            api.display(),
            read.display()
        ),
    );
    // (method, headers, expected status)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16);
    let cases: [Case; 6] = [
        ("POST", &[], 401),
        ("GET", &[], 401),
        ("GET", &[("Authorization", "Bearer nope")], 401),
        // the read token only reads: a GET to a check-in reports
        ("GET", &[("Authorization", "Bearer reader")], 401),
        ("GET", &[("Authorization", "Bearer s3cret")], 200),
        ("POST", &[("Authorization", "Bearer s3cret")], 200),
    ];
    for (method, headers, expected) in cases {
        let (status, doc) = report(&agent, method, "backup", headers);
        assert_eq!(status, expected, "{method} {headers:?}: {doc}");
    }
    let (status, doc) = report(&agent, "POST", "backup/fail", &[]);
    assert_eq!(status, 401, "{doc}");
    let m = {
        let (status, body) = http(
            agent.addr,
            "GET",
            "/metrics",
            &[("Authorization", "Bearer reader")],
            "",
        )
        .unwrap();
        assert_eq!(status, 200);
        lookout_tests::parse_exposition(&body)
    };
    assert_eq!(
        value(&m, "lookout_checkin_failed", &[("checkin", "backup")]),
        Some(0.0),
        "the refused /fail recorded nothing"
    );
}

#[test]
fn the_times_survive_a_restart() {
    let mut agent = Agent::start(&format!(
        "{QUIET}  checkins:\n    - {{name: daily, every: 24h, grace: 1h}}\n    - {{name: never, every: 5s, grace: 1s}}\n{RULES}"
    ));
    let started = Instant::now();
    recorded(&agent, "POST", "daily", "success");
    let before = checkin_value(&agent, "lookout_checkin_last_timestamp_seconds", "daily")
        .expect("the report's time");
    // 3 s in, the agent restarts.
    std::thread::sleep(Duration::from_secs(3));
    agent.restart();
    let after = checkin_value(&agent, "lookout_checkin_last_timestamp_seconds", "daily")
        .expect("the report's time after the restart");
    // Kept on the agent's timeline, saved on the wall clock: the same to the millisecond.
    assert!(
        (after - before).abs() <= 0.002,
        "the last success survives the restart: {before} then {after}"
    );
    assert_eq!(
        checkin_value(&agent, "lookout_checkin_up", "daily"),
        Some(1.0),
        "an old report is no missing one"
    );
    // `never` never reported: it still counts from its first configuration, before the
    // restart, so it is missed about 6 s after the first start (every + grace), not 6 s
    // after the restart (9 s or more).
    wait_firing(&agent, "CheckinMissed", "never", Duration::from_secs(15));
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(8_500),
        "missed {took:?} after the first start"
    );
    let saved = std::fs::read_to_string(agent.dir.path().join("data/checkins.json"))
        .expect("data_dir/checkins.json");
    assert!(
        saved.contains("\"daily\"") && saved.contains("\"never\""),
        "{saved}"
    );
}

#[test]
fn the_readme_crontab_line_reports_success_and_failure() {
    let curl = lookout_tests::require("curl", "curl");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let line = readme
        .split("```crontab\n")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("a crontab block in the README");
    // The five schedule fields, then the command cron runs.
    let command = line
        .splitn(6, ' ')
        .nth(5)
        .expect("a command after the schedule");
    assert!(command.contains("/usr/local/bin/backup"), "{command}");
    let agent = Agent::start(&format!(
        "{QUIET}  checkins:\n    - {{name: backup, schedule: \"0 3 * * *\", grace: 1h}}\n"
    ));
    let run = |job: &str| {
        let script = command
            .replace("/usr/local/bin/backup", job)
            .replace("127.0.0.1:9469", &agent.addr.to_string())
            .replace("curl ", &format!("{} ", curl.display()));
        assert_ne!(script, command);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("run sh");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The job succeeds: a success is recorded.
    let answer = run("true");
    assert!(answer.contains("\"recorded\":\"success\""), "{answer}");
    agent.wait_for(Duration::from_secs(5), |m| {
        value(
            m,
            "lookout_checkin_last_timestamp_seconds",
            &[("checkin", "backup")],
        )
        .is_some()
        .then_some(())
    });
    // The job fails: a failure is recorded, and CheckinFailed fires.
    let answer = run("false");
    assert!(answer.contains("\"recorded\":\"failure\""), "{answer}");
    agent.wait_for(Duration::from_secs(5), |m| {
        (value(m, "lookout_checkin_failed", &[("checkin", "backup")]) == Some(1.0)).then_some(())
    });
}
