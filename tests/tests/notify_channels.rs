//! The chat and paging receivers (Telegram, Discord, ntfy, PagerDuty, Teams) and the
//! webhook's body template, through the running agent, against stand-ins of the services in
//! their own process (`tests/support/channel_stand_in.py`): each accepts only the request
//! shape its service documents and answers as it does, its error documents included.
//!
//! Each test fires an always-true rule, then resolves it by reloading the rule with an
//! impossible threshold, and reads what the stand-in received. The waits a service asks for
//! (Telegram's `retry_after`, Discord's `retry_after` and `Retry-After`, a 429's
//! `Retry-After`) are measured between the two requests the stand-in saw: the retry comes
//! no sooner than told, although the configured backoff is 1 s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lookout_tests::{Agent, Peer, TempDir, free_port, http_receiver, python_server, received};
use serde_json::Value;

const RULES: &str = "groups:\n  - name: t\n    interval: 1s\n    rules:\n      - alert: LoadSeen\n        expr: lookout_load1\n        warning: \">= 0\"\n        summary: \"load {{ value }} on {{ host }}\"\n";

const TELEGRAM_TOKEN: &str = "123456789:AAlkmark-tg-s3cret_token";
const DISCORD_PATH: &str = "/api/webhooks/1122334455/lkmark-discord-t0ken";
const NTFY_TOKEN: &str = "tk_lkmarkntfy";
const PD_KEY: &str = "R0UT1NGKEY0123456789abcdefLKMARK";
const PD_STRICT_KEY: &str = "STR1CTKEY00123456789abcdefLKMARK";
const TEAMS_PATH: &str =
    "/workflows/0a1b/triggers/manual/paths/invoke?api-version=1&sig=lkmark-teams-sig";

/// Starts the stand-in of `service` on a free port, recording to `out`, answering the
/// well-formed requests as `script` says (see the script's doc), knowing `expect`.
fn stand_in(service: &str, out: &Path, script: &str, expect: &[(&str, &str)]) -> (Peer, u16) {
    let port = free_port();
    let script_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/channel_stand_in.py");
    let mut args: Vec<String> = vec![
        script_path.display().to_string(),
        port.to_string(),
        out.display().to_string(),
        service.into(),
        script.into(),
    ];
    args.extend(expect.iter().map(|(k, v)| format!("{k}={v}")));
    let peer = python_server(&args, port, &format!("the {service} stand-in"));
    (peer, port)
}

/// An agent firing `LoadSeen` at once, delivering to `receivers` (YAML list items, indented
/// by four spaces) with a 1 s backoff, after writing `files` next to its configuration.
fn start(dir: TempDir, files: &[(&str, &str)], receivers: &str) -> Agent {
    let mut all = vec![("rules.yaml", RULES)];
    all.extend_from_slice(files);
    Agent::start_in(
        dir,
        &all,
        &format!(
            "collect:\n  host:\n    interval: 1s\n    timeout: 1s\n  tcp:\n    enabled: false\n\
             rules:\n  files: [rules.yaml]\n  evaluation_interval: 1s\n\
             notify:\n  group_wait: 0s\n  retry: {{initial: 1s, max: 1s, jitter: false}}\n  receivers:\n{receivers}"
        ),
    )
}

/// Makes `LoadSeen` impossible and reloads: the alert resolves at the next evaluation.
fn resolve(agent: &Agent) {
    std::fs::write(
        agent.dir.path().join("rules.yaml"),
        RULES.replace(">= 0", "< -1"),
    )
    .unwrap();
    let (status, body) = agent.reload(None);
    assert_eq!(status, 200, "{body}");
}

/// The requests the stand-in answered with `status`.
fn answered(out: &Path, status: u64) -> Vec<Value> {
    received(out)
        .into_iter()
        .filter(|r| r["status"] == status)
        .collect()
}

fn json_body(request: &Value) -> Value {
    serde_json::from_str(request["body"].as_str().unwrap()).unwrap()
}

/// Seconds between two requests, as the stand-in received them.
fn gap(first: &Value, second: &Value) -> f64 {
    second["t"].as_f64().unwrap() - first["t"].as_f64().unwrap()
}

/// Everything the agent shows that could leak a secret: its log, the outbox (pending and
/// dead letters), the status, the alerts and the metrics.
fn everything_shown(agent: &Agent) -> String {
    let mut text = agent.log();
    for path in [
        "/api/v1/outbox",
        "/api/v1/status",
        "/api/v1/alerts?history=10",
        "/metrics",
    ] {
        text.push_str(&agent.get(path).1);
    }
    text
}

fn assert_never_shown(agent: &Agent, secrets: &[&str]) {
    let shown = everything_shown(agent);
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} is shown:\n{shown}");
    }
}

fn dead_letters(agent: &Agent, receiver: &str) -> Vec<Value> {
    agent.json("/api/v1/outbox")["dead"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["message"]["receiver"] == receiver)
        .cloned()
        .collect()
}

#[test]
fn telegram_firing_then_resolved_a_429_waits_retry_after_and_a_wrong_chat_is_dead() {
    let dir = TempDir::new("telegram");
    let out = dir.path().join("telegram.jsonl");
    let (_tg, port) = stand_in(
        "telegram",
        &out,
        "429:3",
        &[("token", TELEGRAM_TOKEN), ("chat_id", "-100123")],
    );
    let token_file = format!("{TELEGRAM_TOKEN}\n");
    let agent = start(
        dir,
        &[("tg-token", &token_file)],
        &format!(
            "    - name: phone\n      telegram: {{bot_token_file: tg-token, chat_id: \"-100123\", api_url: \"http://127.0.0.1:{port}\", timeout: 2s}}\n\
             \x20   - name: wrong-chat\n      telegram: {{bot_token_file: tg-token, chat_id: \"-100999\", api_url: \"http://127.0.0.1:{port}/\", timeout: 2s}}\n"
        ),
    );
    // The first answer is a 429 asking for 3 s: the retry is pending with Telegram's words,
    // the endpoint redacted.
    agent.wait_until("the 429 recorded", Duration::from_secs(15), || {
        agent.json("/api/v1/outbox")["pending"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["message"]["receiver"] == "phone" && p["attempts"].as_u64() >= Some(1))
    });
    let outbox = agent.json("/api/v1/outbox");
    let pending = outbox["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["message"]["receiver"] == "phone")
        .unwrap()
        .clone();
    assert_eq!(
        pending["last_error"],
        format!(
            "http://127.0.0.1:{port}/<redacted>: HTTP 429 Too Many Requests: Too Many Requests: retry after 3"
        ),
        "{outbox}"
    );
    agent.wait_until(
        "the firing message delivered",
        Duration::from_secs(15),
        || answered(&out, 200).len() == 1,
    );
    let phone: Vec<Value> = received(&out)
        .into_iter()
        .filter(|r| json_body(r)["chat_id"] == -100123)
        .collect();
    assert_eq!(phone[0]["status"], 429);
    assert_eq!(phone[1]["status"], 200);
    let waited = gap(&phone[0], &phone[1]);
    assert!(
        waited >= 3.0,
        "retried {waited:.3} s after a 429 asking for 3 s"
    );
    let firing = json_body(&phone[1]);
    assert_eq!(
        phone[1]["path"],
        format!("/bot{TELEGRAM_TOKEN}/sendMessage")
    );
    assert_eq!(firing["parse_mode"], "HTML");
    assert_eq!(firing["disable_web_page_preview"], true);
    let text = firing["text"].as_str().unwrap();
    assert!(
        text.starts_with("🔥 <b>[FIRING:1] LoadSeen on test-host</b>\n• <b>warning</b> LoadSeen on test-host: load "),
        "{text}"
    );

    resolve(&agent);
    agent.wait_until("the resolved message", Duration::from_secs(15), || {
        answered(&out, 200).len() == 2
    });
    let resolved = json_body(&answered(&out, 200)[1]);
    assert_eq!(resolved["chat_id"], -100123);
    let text = resolved["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "✅ <b>[RESOLVED:1] LoadSeen on test-host</b>\n• <b>resolved</b> LoadSeen"
        ),
        "{text}"
    );

    // The wrong chat: Telegram's 400 is permanent, each message sent once and dead-lettered
    // with Telegram's description.
    agent.wait_until(
        "both wrong-chat messages dead",
        Duration::from_secs(10),
        || dead_letters(&agent, "wrong-chat").len() == 2,
    );
    let dead = dead_letters(&agent, "wrong-chat");
    for d in &dead {
        assert_eq!(
            d["reason"],
            format!(
                "http://127.0.0.1:{port}/<redacted>: HTTP 400 Bad Request: Bad Request: chat not found"
            ),
            "{d}"
        );
        assert_eq!(d["attempts"], 1, "{d}");
    }
    let wrong = received(&out)
        .into_iter()
        .filter(|r| json_body(r)["chat_id"] == -100999)
        .count();
    assert_eq!(wrong, 2, "a 400 must not be retried");
    assert_never_shown(&agent, &["lkmark-tg", TELEGRAM_TOKEN]);
}

#[test]
fn discord_firing_then_resolved_and_a_429_waits_as_long_as_discord_says() {
    let dir = TempDir::new("discord");
    let out = dir.path().join("discord.jsonl");
    let (_d, port) = stand_in("discord", &out, "429:1.5", &[("path", DISCORD_PATH)]);
    let url = format!("http://127.0.0.1:{port}{DISCORD_PATH}\n");
    let agent = start(
        dir,
        &[("discord-url", &url)],
        "    - name: chat\n      discord: {webhook_url_file: discord-url, timeout: 2s}\n",
    );
    agent.wait_until(
        "the firing message delivered",
        Duration::from_secs(15),
        || answered(&out, 200).len() == 1,
    );
    let requests = received(&out);
    assert_eq!(requests[0]["status"], 429);
    // Discord asked for 1.5 s in the body and 2 s (rounded up) in Retry-After: the longer.
    let waited = gap(&requests[0], &requests[1]);
    assert!(
        waited >= 2.0,
        "retried {waited:.3} s after a 429 asking for 1.5 s / 2 s"
    );
    assert_eq!(requests[1]["query"]["wait"], serde_json::json!(["true"]));
    let firing = json_body(&requests[1]);
    assert_eq!(firing["content"], "[FIRING:1] LoadSeen on test-host");
    assert_eq!(firing["allowed_mentions"], serde_json::json!({"parse": []}));
    let embed = &firing["embeds"][0];
    assert_eq!(embed["title"], "[FIRING] LoadSeen on test-host");
    assert_eq!(embed["color"], 0xF5_8A_07, "a warning is orange");
    assert!(
        embed["description"].as_str().unwrap().starts_with("load "),
        "{embed}"
    );

    resolve(&agent);
    agent.wait_until("the resolved message", Duration::from_secs(15), || {
        answered(&out, 200).len() == 2
    });
    let resolved = json_body(&answered(&out, 200)[1]);
    assert_eq!(resolved["content"], "[RESOLVED:1] LoadSeen on test-host");
    assert_eq!(
        resolved["embeds"][0]["title"],
        "[RESOLVED] LoadSeen on test-host"
    );
    assert_eq!(
        resolved["embeds"][0]["color"], 0x2E_B8_86,
        "resolved is green"
    );
    assert_never_shown(&agent, &["lkmark-discord"]);
}

#[test]
fn pagerduty_trigger_and_resolve_share_a_dedup_key_and_an_invalid_event_is_dead_at_once() {
    let dir = TempDir::new("pagerduty");
    let (out, strict_out) = (dir.path().join("pd.jsonl"), dir.path().join("strict.jsonl"));
    let (_pd, port) = stand_in("pagerduty", &out, "-", &[("routing_key", PD_KEY)]);
    let (_strict, strict_port) = stand_in(
        "pagerduty",
        &strict_out,
        "400",
        &[("routing_key", PD_STRICT_KEY)],
    );
    let (key, strict_key) = (format!("{PD_KEY}\n"), format!("{PD_STRICT_KEY}\n"));
    let agent = start(
        dir,
        &[("pd-key", &key), ("strict-key", &strict_key)],
        &format!(
            "    - name: pager\n      pagerduty: {{routing_key_file: pd-key, url: \"http://127.0.0.1:{port}/v2/enqueue\", timeout: 2s}}\n\
             \x20   - name: strict\n      pagerduty: {{routing_key_file: strict-key, url: \"http://127.0.0.1:{strict_port}/v2/enqueue\", timeout: 2s}}\n"
        ),
    );
    agent.wait_until("the trigger accepted", Duration::from_secs(15), || {
        answered(&out, 202).len() == 1
    });
    let trigger = json_body(&answered(&out, 202)[0]);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], PD_KEY);
    let payload = &trigger["payload"];
    assert!(
        payload["summary"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING] LoadSeen on test-host: load "),
        "{payload}"
    );
    assert_eq!(payload["source"], "test-host");
    assert_eq!(payload["severity"], "warning");
    assert_eq!(payload["custom_details"]["labels"]["alertname"], "LoadSeen");
    assert!(payload["timestamp"].as_str().unwrap().ends_with('Z'));

    // The strict service refuses the event as invalid: dead at once with PagerDuty's errors,
    // never retried.
    agent.wait_until("the invalid event dead", Duration::from_secs(10), || {
        !dead_letters(&agent, "strict").is_empty()
    });
    let dead = &dead_letters(&agent, "strict")[0];
    assert_eq!(
        dead["reason"],
        format!(
            "http://127.0.0.1:{strict_port}/<redacted>: HTTP 400 Bad Request: Event object is invalid: 'payload.custom_details' is rejected by this service's event rules"
        ),
        "{dead}"
    );
    assert_eq!(dead["attempts"], 1);
    assert_eq!(dead["message"]["alerts"][0]["alert"], "LoadSeen");

    resolve(&agent);
    agent.wait_until("the resolve accepted", Duration::from_secs(15), || {
        answered(&out, 202).len() == 2
    });
    let resolve_event = json_body(&answered(&out, 202)[1]);
    let keys: Vec<&String> = resolve_event.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["dedup_key", "event_action", "routing_key"]);
    assert_eq!(resolve_event["event_action"], "resolve");
    assert_eq!(
        resolve_event["dedup_key"], trigger["dedup_key"],
        "one incident: trigger and resolve share the key"
    );
    let dedup = trigger["dedup_key"].as_str().unwrap();
    assert!(
        dedup.len() == 16 && dedup.bytes().all(|b| b.is_ascii_hexdigit()),
        "{dedup}"
    );
    // The strict service got the trigger once (dead, not retried), then the resolve.
    agent.wait_until("the strict resolve", Duration::from_secs(10), || {
        received(&strict_out).len() == 2
    });
    let strict: Vec<(u64, String)> = received(&strict_out)
        .iter()
        .map(|r| {
            (
                r["status"].as_u64().unwrap(),
                json_body(r)["event_action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        strict,
        [(400, "trigger".to_string()), (202, "resolve".to_string())]
    );
    assert_never_shown(&agent, &["LKMARK"]);
}

#[test]
fn ntfy_firing_then_resolved_with_priority_tags_and_token_after_a_429() {
    let dir = TempDir::new("ntfy");
    let out = dir.path().join("ntfy.jsonl");
    let (_n, port) = stand_in(
        "ntfy",
        &out,
        "429:2",
        &[("topic", "lookout-alerts"), ("token", NTFY_TOKEN)],
    );
    let agent = start(
        dir,
        &[("ntfy-token", &format!("{NTFY_TOKEN}\n"))],
        &format!(
            "    - name: push\n      ntfy: {{url: \"http://127.0.0.1:{port}/lookout-alerts\", token_file: ntfy-token, timeout: 2s}}\n"
        ),
    );
    agent.wait_until(
        "the firing message delivered",
        Duration::from_secs(15),
        || answered(&out, 200).len() == 1,
    );
    let requests = received(&out);
    assert_eq!(requests[0]["status"], 429);
    let waited = gap(&requests[0], &requests[1]);
    assert!(waited >= 2.0, "retried {waited:.3} s after Retry-After: 2");
    let h = &requests[1]["headers"];
    assert_eq!(h["title"], "[FIRING:1] LoadSeen on test-host");
    assert_eq!(h["priority"], "3");
    assert_eq!(h["tags"], "warning");
    assert_eq!(h["authorization"], format!("Bearer {NTFY_TOKEN}"));
    assert!(
        requests[1]["body"]
            .as_str()
            .unwrap()
            .starts_with("[warning] LoadSeen on test-host: load "),
        "{}",
        requests[1]
    );

    resolve(&agent);
    agent.wait_until("the resolved message", Duration::from_secs(15), || {
        answered(&out, 200).len() == 2
    });
    let resolved = &answered(&out, 200)[1];
    assert_eq!(
        resolved["headers"]["title"],
        "[RESOLVED:1] LoadSeen on test-host"
    );
    assert_eq!(resolved["headers"]["tags"], "white_check_mark");
    assert_eq!(resolved["headers"]["priority"], "3");
    let answer: Value = serde_json::from_str(resolved["answer"].as_str().unwrap()).unwrap();
    assert_eq!(answer["event"], "message");
    assert_never_shown(&agent, &["lkmarkntfy"]);
}

#[test]
fn teams_firing_then_resolved_cards_and_a_429_waits_retry_after() {
    let dir = TempDir::new("teams");
    let out = dir.path().join("teams.jsonl");
    let (_t, port) = stand_in("teams", &out, "429:2", &[("path", TEAMS_PATH)]);
    let agent = start(
        dir,
        &[(
            "teams-url",
            &format!("http://127.0.0.1:{port}{TEAMS_PATH}\n"),
        )],
        "    - name: channel\n      teams: {webhook_url_file: teams-url, timeout: 2s}\n",
    );
    agent.wait_until("the firing card delivered", Duration::from_secs(15), || {
        answered(&out, 202).len() == 1
    });
    let requests = received(&out);
    assert_eq!(requests[0]["status"], 429);
    let waited = gap(&requests[0], &requests[1]);
    assert!(waited >= 2.0, "retried {waited:.3} s after Retry-After: 2");
    let card = |r: &Value| json_body(r)["attachments"][0]["content"]["body"].clone();
    let firing = card(&requests[1]);
    assert_eq!(firing[0]["text"], "[FIRING:1] LoadSeen on test-host");
    assert_eq!(firing[0]["color"], "Warning");

    resolve(&agent);
    agent.wait_until("the resolved card", Duration::from_secs(15), || {
        answered(&out, 202).len() == 2
    });
    let resolved = card(&answered(&out, 202)[1]);
    assert_eq!(resolved[0]["text"], "[RESOLVED:1] LoadSeen on test-host");
    assert_eq!(resolved[0]["color"], "Good");
    assert_never_shown(&agent, &["lkmark-teams"]);
}

#[test]
fn a_webhook_body_template_shapes_firing_and_resolved_bodies() {
    let dir = TempDir::new("template");
    let out = dir.path().join("hook.jsonl");
    let port = free_port();
    let _hook = http_receiver(port, &out, "ok", None);
    let template = r#"{"event": {{ status | tojson }}, "text": {{ title | tojson }}, "alerts": [{% for a in alerts %}{"name": {{ a.name | tojson }}, "fp": {{ a.fingerprint | tojson }}, "ended": {{ a.ends_at | tojson }}}{% if not loop.last %},{% endif %}{% endfor %}]}"#;
    let agent = start(
        dir,
        &[],
        &format!(
            "    - name: hook\n      webhook:\n        url: http://127.0.0.1:{port}/in\n        headers: {{X-Team: infra}}\n        content_type: application/vnd.lookout+json\n        body_template: '{}'\n",
            template.replace('\'', "''")
        ),
    );
    agent.wait_until("the firing body", Duration::from_secs(15), || {
        received(&out).len() == 1
    });
    resolve(&agent);
    agent.wait_until("the resolved body", Duration::from_secs(15), || {
        received(&out).len() == 2
    });
    let requests = received(&out);
    for r in &requests {
        assert_eq!(r["headers"]["content-type"], "application/vnd.lookout+json");
        assert_eq!(r["headers"]["x-team"], "infra");
    }
    let (firing, resolved) = (json_body(&requests[0]), json_body(&requests[1]));
    assert_eq!(firing["event"], "firing");
    assert_eq!(firing["text"], "[FIRING:1] LoadSeen on test-host");
    assert_eq!(firing["alerts"][0]["name"], "LoadSeen");
    assert_eq!(firing["alerts"][0]["ended"], Value::Null);
    assert_eq!(resolved["event"], "resolved");
    assert_eq!(resolved["alerts"][0]["fp"], firing["alerts"][0]["fp"]);
    assert!(
        resolved["alerts"][0]["ended"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

/// `lookout check` names each problem of the new settings with its key path, and never the
/// secret.
#[test]
fn check_reports_channel_settings_problems_by_key_path() {
    let dir = TempDir::new("channels-check");
    std::fs::write(dir.path().join("short-key"), "abc\n").unwrap();
    let config = dir.path().join("lookout.yaml");
    std::fs::write(
        &config,
        "notify:\n  receivers:\n\
         \x20   - name: phone\n      telegram: {bot_token: \"123:lkmark-inline\", chat_id: ops}\n\
         \x20   - name: chat\n      discord: {}\n\
         \x20   - name: push\n      ntfy: {url: \"https://ntfy.sh/\"}\n\
         \x20   - name: pager\n      pagerduty: {routing_key_file: short-key, url: \"ftp://x\"}\n\
         \x20   - name: hook\n      webhook: {url: \"http://h/\", body_template: \"{{ status \"}\n",
    )
    .unwrap();
    let out = lookout_tests::lookout()
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for want in [
        "notify.receivers[0].telegram.bot_token: secrets are not written in the configuration",
        "notify.receivers[0].telegram.chat_id: \"ops\" is not a chat id",
        "notify.receivers[1].discord: `webhook_url_file` or `webhook_url: ${ENV_NAME}` is required",
        "notify.receivers[2].ntfy.url: names no topic",
        "notify.receivers[3].pagerduty.routing_key_file: a routing key is 32 letters and digits",
        "notify.receivers[3].pagerduty.url: must be http or https",
        "notify.receivers[4].webhook.body_template: syntax error",
    ] {
        assert!(stderr.contains(want), "{want}:\n{stderr}");
    }
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("notify.receivers"))
            .count(),
        7,
        "{stderr}"
    );
    assert!(!stderr.contains("lkmark"), "{stderr}");
}
