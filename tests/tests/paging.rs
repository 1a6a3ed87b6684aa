//! Every list of the JSON API is paged (`?limit=&after=`, `next` in the answer), through the
//! real binary: walking each list a few items at a time returns every item exactly once,
//! the same items one big page holds; a bad limit or cursor is a 400 that says what is
//! wrong.
//!
//! The agent runs five always-true rules that fire two evaluations apart (`for` 0s to 8s),
//! so there are five active alerts, five notifications in the history, and, with
//! `group_wait: 0s`, five messages per receiver: five pending for a receiver that is down
//! and five dead letters from one that answers 400.

use std::collections::BTreeSet;
use std::time::Duration;

use lookout_tests::{Agent, TempDir, free_port, http_receiver};
use serde_json::Value;

const ALERTS: [&str; 5] = ["P0", "P1", "P2", "P3", "P4"];

fn rules() -> String {
    let mut text = String::from("groups:\n  - name: t\n    interval: 1s\n    rules:\n");
    for (i, name) in ALERTS.iter().enumerate() {
        text.push_str(&format!(
            "      - alert: {name}\n        expr: lookout_load1\n        warning: \">= 0\"\n        for: {}s\n",
            2 * i
        ));
    }
    text
}

fn start(dir: TempDir) -> (Agent, lookout_tests::Peer) {
    let rejecting_port = free_port();
    let rejecting = http_receiver(
        rejecting_port,
        &dir.path().join("rejected.jsonl"),
        "400",
        None,
    );
    let down_port = free_port(); // nothing listens here
    let agent = Agent::start_in(
        dir,
        &[("rules.yaml", &rules())],
        &format!(
            "collect:\n  host:\n    interval: 1s\n    timeout: 1s\n  tcp:\n    enabled: false\n\
             rules:\n  files: [rules.yaml]\n  evaluation_interval: 1s\n\
             notify:\n  group_wait: 0s\n  retry: {{initial: 1s, max: 2s, jitter: false}}\n  receivers:\n\
             \x20   - name: down\n      webhook: {{url: \"http://127.0.0.1:{down_port}/\", timeout: 1s}}\n\
             \x20   - name: rejecting\n      webhook: {{url: \"http://127.0.0.1:{rejecting_port}/\", timeout: 2s}}\n"
        ),
    );
    agent.wait_until(
        "every alert fired and every message queued",
        Duration::from_secs(30),
        || {
            let outbox = agent.json("/api/v1/outbox?limit=1000&dead_limit=1000");
            let history = agent.json("/api/v1/alerts?history=1000");
            outbox["pending"].as_array().unwrap().len() == 5
                && outbox["dead"].as_array().unwrap().len() == 5
                && history["history"].as_array().unwrap().len() == 5
        },
    );
    (agent, rejecting)
}

/// Walks the list `list` of `path` (which already has its `?`) `limit` at a time, following
/// `next_field` through `after_param`; every page holds at most `limit` items. Returns every
/// item and how many pages there were.
fn walk(
    agent: &Agent,
    path: &str,
    limit_param: &str,
    limit: usize,
    list: &str,
    next_field: &str,
    after_param: &str,
) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut url = format!("{path}&{limit_param}={limit}");
    loop {
        let doc = agent.json(&url);
        pages += 1;
        let page = collect_list(&doc[list]);
        assert!(page.len() <= limit, "{url}: {doc}");
        items.extend(page);
        match doc[next_field].as_str() {
            None => {
                assert!(doc[next_field].is_null(), "{url}: {doc}");
                return (items, pages);
            }
            Some(cursor) => url = format!("{path}&{limit_param}={limit}&{after_param}={cursor}"),
        }
        assert!(pages < 100, "{url}: no end");
    }
}

/// The items of a list: an array, or an object's entries (the collectors of the status).
fn collect_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| serde_json::json!({ "name": k, "value": v }))
            .collect(),
        other => panic!("not a list: {other}"),
    }
}

/// Each item once, in the walk as in one big page.
fn assert_same_once(walked: &[Value], whole: &[Value], key: impl Fn(&Value) -> String) {
    let keys: Vec<String> = walked.iter().map(&key).collect();
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "an item came twice: {keys:?}");
    let whole: BTreeSet<String> = whole.iter().map(&key).collect();
    assert_eq!(
        unique.into_iter().cloned().collect::<BTreeSet<_>>(),
        whole,
        "paged and whole lists differ"
    );
}

#[test]
fn every_list_pages_through_each_item_once() {
    let (agent, _rejecting) = start(TempDir::new("paging"));

    // Active alerts, ordered by alert then labels.
    let (alerts, pages) = walk(
        &agent,
        "/api/v1/alerts?",
        "limit",
        2,
        "alerts",
        "next",
        "after",
    );
    assert_eq!(pages, 3);
    let names: Vec<&str> = alerts
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    assert_eq!(names, ALERTS, "in order, each once");

    // The history, newest first: the alerts fired P0 first, so they come back reversed.
    let (history, pages) = walk(
        &agent,
        "/api/v1/alerts?limit=1",
        "history",
        2,
        "history",
        "history_next",
        "history_after",
    );
    assert_eq!(pages, 3);
    let names: Vec<&str> = history
        .iter()
        .map(|h| h["alert"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["P4", "P3", "P2", "P1", "P0"]);

    // Rules, by name, each with its instance.
    let (rules, pages) = walk(
        &agent,
        "/api/v1/rules?",
        "limit",
        2,
        "rules",
        "next",
        "after",
    );
    assert_eq!(pages, 3);
    let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert_eq!(names, ALERTS);
    for r in &rules {
        assert_eq!(r["instance_count"], 1, "{r}");
        assert_eq!(r["instances"].as_array().unwrap().len(), 1, "{r}");
    }

    // Pending messages (oldest first) and dead letters (newest first), each paged alone.
    let whole = agent.json("/api/v1/outbox?limit=1000&dead_limit=1000");
    let id = |v: &Value| v["message"]["id"].as_str().unwrap().to_string();
    let (pending, pages) = walk(
        &agent,
        "/api/v1/outbox?dead_limit=1",
        "limit",
        2,
        "pending",
        "next",
        "after",
    );
    assert_eq!(pages, 3);
    assert_same_once(&pending, whole["pending"].as_array().unwrap(), id);
    let (dead, pages) = walk(
        &agent,
        "/api/v1/outbox?limit=1",
        "dead_limit",
        2,
        "dead",
        "dead_next",
        "dead_after",
    );
    assert_eq!(pages, 3);
    assert_same_once(&dead, whole["dead"].as_array().unwrap(), id);
    let dead_times: Vec<i64> = dead
        .iter()
        .map(|d| d["dead_ms"].as_i64().unwrap())
        .collect();
    assert!(
        dead_times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {dead_times:?}"
    );

    // Collectors of the status, by name; each shows its values and their count.
    let whole = collect_list(&agent.json("/api/v1/status?limit=1000")["collectors"]);
    assert!(whole.len() >= 5, "{whole:?}");
    let (collectors, pages) = walk(
        &agent,
        "/api/v1/status?",
        "limit",
        2,
        "collectors",
        "next",
        "after",
    );
    // Two a page, or one when two would show more than 1,000 values.
    assert!(pages >= whole.len().div_ceil(2), "{pages}");
    assert_same_once(&collectors, &whole, |c| {
        c["name"].as_str().unwrap().to_string()
    });
    for c in &collectors {
        let shown = c["value"]["values"].as_array().unwrap().len() as u64;
        assert_eq!(c["value"]["value_count"].as_u64(), Some(shown), "{c}");
    }
}

#[test]
fn bad_limits_and_cursors_are_400_with_a_message() {
    let agent = Agent::start("collect:\n  tcp:\n    enabled: false\n");
    let foreign = agent.json("/api/v1/status?limit=1")["next"]
        .as_str()
        .expect("more than one collector")
        .to_string();
    // (path, what the message names)
    let rows = [
        (
            "/api/v1/alerts?limit=0",
            "limit must be a whole number from 1 to 1000",
        ),
        ("/api/v1/alerts?limit=1001", "limit must be"),
        (
            "/api/v1/alerts?history=1001",
            "history must be a whole number from 0 to 1000",
        ),
        (
            "/api/v1/alerts?after=zz",
            "after is not a cursor of this list",
        ),
        (
            "/api/v1/alerts?history=1&history_after=zz",
            "history_after is not a cursor",
        ),
        ("/api/v1/rules?limit=x", "limit must be"),
        ("/api/v1/rules?after=0", "after is not a cursor"),
        ("/api/v1/status?limit=-1", "limit must be"),
        ("/api/v1/outbox?dead_limit=0", "dead_limit must be"),
        ("/api/v1/outbox?after=00", "after is not a cursor"),
        ("/api/v1/outbox?dead_after=00", "dead_after is not a cursor"),
    ];
    for (path, message) in rows {
        let (status, body) = agent.get(path);
        assert_eq!(status, 400, "{path}: {body}");
        let doc: Value = serde_json::from_str(&body).unwrap();
        assert!(
            doc["error"].as_str().unwrap().contains(message),
            "{path}: {body}"
        );
    }
    // A cursor of one list is no cursor of another.
    for path in ["/api/v1/rules", "/api/v1/alerts", "/api/v1/outbox"] {
        let (status, body) = agent.get(&format!("{path}?after={foreign}"));
        assert_eq!(status, 400, "{path}: {body}");
    }
}
