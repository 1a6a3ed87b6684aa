//! The console (`GET /`) in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver by `lookout_tests::browser`): it loads clean and
//! fast from the binary alone, shows what `/metrics` shows, follows an alert live, survives
//! the agent's restart without a reload, asks for the read token before it shows
//! anything, and silences an alert from its row (asking for the API token when the agent
//! wants it) and expires the silence from the Silences panel. `screenshots_for_the_readme`
//! (ignored) writes `docs/console-*.png`.
//!
//! The browser tests take turns (one Chromium at a time): on two cores, parallel browsers
//! would measure each other rather than the page.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lookout_tests::browser::Browser;
use lookout_tests::{
    Agent, MetricSample, TempDir, free_port, http, parse_exposition, redis_commands,
};
use serde_json::Value;

static ONE_BROWSER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// First paint budget on loopback.
const FIRST_PAINT_MS: f64 = 500.0;
/// The console's files together.
const SIZE_BUDGET: usize = 300 * 1024;

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_BROWSER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Opens the console of `agent`, marks the page (a reload would lose the mark) and waits
/// until the stream is live.
fn open(agent: &Agent, width: u32, height: u32) -> Browser {
    let browser = Browser::start(width, height);
    browser.goto(&format!("http://{}/", agent.addr));
    browser.eval("(window.__mark = 42)");
    browser.wait_for(
        "the stream live",
        Duration::from_secs(10),
        "document.querySelector('#conn').dataset.state === 'live'",
    );
    browser
}

/// The text of the first element whose `data-series` is `series` (or starts with it when it
/// ends with `,`), as `[series, text]`; null when there is none.
fn figure_js(series: &str) -> String {
    let op = if series.ends_with(',') { "^=" } else { "=" };
    let quoted = serde_json::to_string(series).expect("JSON string");
    format!(
        "(function () {{ const e = document.querySelector('[data-series{op}' + JSON.stringify({quoted}) + ']'); \
         return e ? [e.getAttribute('data-series'), e.textContent] : null; }})()"
    )
}

/// `12.3%` as 0.123.
fn percent(text: &str) -> f64 {
    text.trim()
        .strip_suffix('%')
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("not a percentage: {text:?}"))
        / 100.0
}

/// The `/metrics` sample the console names `key` (exposition syntax without `host`).
fn sample<'a>(m: &'a [MetricSample], key: &str) -> Option<&'a MetricSample> {
    let named = parse_exposition(&format!("{key} 0\n")).pop()?;
    m.iter().find(|s| {
        let mut labels = s.labels.clone();
        labels.remove("host");
        s.name == named.name && labels == named.labels
    })
}

/// Browser log entries at level SEVERE (console errors, failed loads, CSP refusals).
fn errors(browser: &Browser) -> Vec<Value> {
    browser
        .logs()
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect()
}

#[test]
fn the_page_loads_clean_fast_and_small_and_shows_what_metrics_shows() {
    let _turn = turn();
    let agent = Agent::start("collect:\n  host:\n    interval: 3s\n");
    let browser = open(&agent, 1280, 800);

    // First paint, from the Performance API.
    let paints = browser.eval(
        "performance.getEntriesByType('paint').map(function (e) { return [e.name, e.startTime]; })",
    );
    let first_paint = paints
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|p| p[0] == "first-contentful-paint")
                .or(a.first())
        })
        .and_then(|p| p[1].as_f64())
        .unwrap_or_else(|| panic!("no paint entry: {paints}"));
    println!("console first paint: {first_paint:.0} ms (budget {FIRST_PAINT_MS} ms)");
    assert!(
        first_paint < FIRST_PAINT_MS,
        "first paint {first_paint} ms: {paints}"
    );

    // Every file the page loads, measured: the page and each /console/ file it names.
    let (status, page) = agent.get("/");
    assert_eq!(status, 200);
    let mut total = page.len();
    let mut files = vec![format!("/ {} B", page.len())];
    for (i, _) in page.match_indices("\"/console/") {
        let path = &page[i + 1..];
        let path = &path[..path.find('"').expect("closing quote")];
        let (status, body) = agent.get(path);
        assert_eq!(status, 200, "{path}");
        total += body.len();
        files.push(format!("{path} {} B", body.len()));
    }
    println!(
        "console files: {total} B in all (budget {SIZE_BUDGET} B): {}",
        files.join(", ")
    );
    assert!(total < SIZE_BUDGET, "{total} B: {files:?}");

    // Every request went to the agent, and none failed.
    let resources = browser.eval(
        "performance.getEntriesByType('resource').map(function (e) { return [e.name, e.responseStatus || 0]; })",
    );
    let origin = format!("http://{}/", agent.addr);
    for r in resources.as_array().expect("resource entries") {
        let url = r[0].as_str().unwrap_or_default();
        assert!(url.starts_with(&origin), "a request left the agent: {r}");
        let status = r[1].as_u64().unwrap_or(0);
        assert!(status < 400, "a request failed: {r}");
    }

    // CPU, memory and the root filesystem equal /metrics at that moment (within the
    // rounding of their text, 0.1%): read /metrics, the page, /metrics again, and compare
    // when no collection came between the two reads.
    let root = agent
        .metrics()
        .iter()
        .find(|s| {
            s.name == "lookout_filesystem_usage_ratio"
                && s.labels.get("mountpoint").map(String::as_str) == Some("/")
        })
        .map(|_| "lookout_filesystem_usage_ratio{mountpoint=\"/\",")
        .unwrap_or("lookout_filesystem_usage_ratio{");
    let wanted = [
        "lookout_cpu_usage_ratio",
        "lookout_memory_usage_ratio",
        root,
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut compared = false;
    while !compared {
        assert!(Instant::now() < deadline, "no quiet moment to compare in");
        let before = agent.metrics();
        std::thread::sleep(Duration::from_millis(700));
        let shown: Vec<Value> = wanted.iter().map(|s| browser.eval(&figure_js(s))).collect();
        let after = agent.metrics();
        // Present on both (CPU needs two runs) and unchanged between them.
        let quiet = shown.iter().all(|f| {
            f[0].as_str().is_some_and(|key| {
                let b = sample(&before, key).map(|s| s.value);
                b.is_some() && b == sample(&after, key).map(|s| s.value)
            })
        });
        if !quiet {
            continue;
        }
        for f in &shown {
            let key = f[0].as_str().expect("data-series");
            let text = f[1].as_str().expect("text");
            let expected = sample(&before, key)
                .unwrap_or_else(|| panic!("{key} is not on /metrics"))
                .value;
            let diff = (percent(text) - expected).abs();
            println!("{key}: page {text}, /metrics {expected}");
            assert!(
                diff <= 0.0005 + 1e-9,
                "{key}: the page shows {text}, /metrics {expected}"
            );
        }
        compared = true;
    }
    let severe = errors(&browser);
    assert!(severe.is_empty(), "console errors: {severe:?}");
}

const DRILL_RULES: &str = "groups:\n  - name: console\n    interval: 1s\n    rules:\n      - alert: ConsoleDrill\n        expr: lookout_load1\n        warning: \"< -1\"\n        clear_for: 0s\n";

#[test]
fn an_alert_appears_within_2s_of_firing_and_goes_when_it_resolves_without_a_reload() {
    let _turn = turn();
    let agent = Agent::start_in(
        TempDir::new("console-alert"),
        &[("rules.yaml", DRILL_RULES)],
        "collect:\n  host:\n    interval: 1s\nrules:\n  files: [rules.yaml]\n  evaluation_interval: 1s\nnotify:\n  group_wait: 0s\n",
    );
    let browser = open(&agent, 1280, 800);
    let rules = agent.dir.path().join("rules.yaml");
    let alert = "document.querySelector('[data-alert=\"ConsoleDrill\"]')";

    // Fires: load1 >= 0 always holds.
    std::fs::write(&rules, DRILL_RULES.replace("< -1", ">= 0")).expect("rules");
    let (status, body) = agent.reload(None);
    assert_eq!(status, 200, "{body}");
    let reloaded = Instant::now();
    browser.wait_for(
        "the alert in the alerts panel",
        Duration::from_secs(2),
        &format!("{alert} && {alert}.dataset.state === 'firing'"),
    );
    println!(
        "alert shown {} ms after the reload that made it fire",
        reloaded.elapsed().as_millis()
    );
    let row = browser.eval(&format!(
        "[{alert}.dataset.severity, {alert}.textContent, document.querySelector('#health').textContent]"
    ));
    assert_eq!(row[0], "warning", "{row}");
    assert!(
        row[1].as_str().unwrap_or_default().contains("since"),
        "{row}"
    );
    assert!(
        row[2].as_str().unwrap_or_default().contains("warning"),
        "{row}"
    );

    // Resolves.
    std::fs::write(&rules, DRILL_RULES).expect("rules");
    let (status, body) = agent.reload(None);
    assert_eq!(status, 200, "{body}");
    browser.wait_for(
        "the alert gone from the alerts panel",
        Duration::from_secs(3),
        &format!("!{alert}"),
    );
    let same_page =
        browser.eval("[window.__mark, performance.getEntriesByType('navigation').length]");
    assert_eq!(same_page, serde_json::json!([42, 1]), "the page reloaded");
    let severe = errors(&browser);
    assert!(severe.is_empty(), "console errors: {severe:?}");
}

/// A process the test starts shows in the top processes by memory, with its pid, name and
/// resident memory, and its group in the groups table; the CPU order is the default.
#[test]
fn the_processes_panel_shows_a_process_the_test_started() {
    let _turn = turn();
    let python = lookout_tests::require("python3", "python3");
    // 48 MiB touched, then asleep; its name set to one no other process has.
    let mut child = std::process::Command::new(python)
        .args([
            "-c",
            "import time\nopen('/proc/self/comm', 'w').write('lk-console')\nb = bytearray(48 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('ready', flush=True)\ntime.sleep(600)\n",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start python3");
    let pid = child.id();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut ready,
    )
    .expect("ready");
    let _child = lookout_tests::Peer(child);
    let agent = Agent::start(
        "collect:\n  processes:\n    interval: 1s\n    top: 100\n    groups:\n      - {name: console-test, match: {exe: lk-console}}\n",
    );
    let browser = open(&agent, 1280, 800);
    let panel = "document.querySelector('[data-panel=\"processes\"]')";
    browser.wait_for(
        "the processes panel",
        Duration::from_secs(10),
        &format!("{panel} && !{panel}.hidden && {panel}.querySelector('[data-top]')"),
    );
    assert_eq!(
        browser.eval(&format!("{panel}.querySelector('[data-top]').dataset.top")),
        "cpu"
    );
    browser.eval(&format!(
        "({panel}.querySelector('button[data-by=\"memory\"]').click(), true)"
    ));
    let row = format!("{panel}.querySelector('tr[data-pid=\"{pid}\"]')");
    browser.wait_for(
        "the test's process in the top by memory",
        Duration::from_secs(10),
        &format!("{panel}.querySelector('[data-top]').dataset.top === 'memory' && {row}"),
    );
    let cells = browser.eval(&format!(
        "Array.from({row}.children).map(function (c) {{ return c.textContent; }})"
    ));
    println!("top processes row: {cells}");
    assert_eq!(cells[0], "lk-console", "{cells}");
    assert_eq!(cells[1], pid.to_string(), "{cells}");
    assert_eq!(cells[2], "root", "{cells}");
    let rss = cells[4].as_str().unwrap_or_default();
    let mib: f64 = rss
        .strip_suffix(" MiB")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("RSS {rss:?}"));
    assert!((48.0..80.0).contains(&mib), "{rss}");
    // Its group, up with one process.
    let group = browser.eval(&format!(
        "Array.from({panel}.querySelectorAll('tbody tr')).filter(function (r) {{ return r.querySelector('th').textContent === 'console-test'; }}).map(function (r) {{ return r.textContent; }})"
    ));
    assert!(
        group[0].as_str().is_some_and(|t| t.contains("up")),
        "{group}"
    );
    let severe = errors(&browser);
    assert!(severe.is_empty(), "console errors: {severe:?}");
}

#[test]
fn the_page_shows_disconnected_while_the_agent_is_down_and_recovers_by_itself() {
    let _turn = turn();
    let mut agent = Agent::start("collect:\n  host:\n    interval: 1s\n");
    let browser = open(&agent, 1280, 800);

    agent.signal("TERM");
    let status = agent.child.wait().expect("wait for the agent");
    assert!(status.success(), "{status:?}");
    let shown = browser.wait_for(
        "the disconnected state",
        Duration::from_secs(5),
        "document.querySelector('#conn').dataset.state === 'disconnected' && document.querySelector('#conn').textContent",
    );
    let text = shown.as_str().unwrap_or_default();
    assert!(
        text.starts_with("disconnected since ")
            && text.len() == "disconnected since HH:MM:SS".len(),
        "{text}"
    );

    agent.start_again();
    browser.wait_for(
        "live again",
        Duration::from_secs(10),
        "document.querySelector('#conn').dataset.state === 'live'",
    );
    browser.wait_for(
        "figures again",
        Duration::from_secs(5),
        &figure_js("lookout_cpu_usage_ratio"),
    );
    let same_page =
        browser.eval("[window.__mark, performance.getEntriesByType('navigation').length]");
    assert_eq!(same_page, serde_json::json!([42, 1]), "the page reloaded");
}

#[test]
fn with_a_read_token_the_page_asks_for_it_and_shows_nothing_before() {
    let _turn = turn();
    let dir = TempDir::new("console-token");
    let token_file = dir.path().join("read-token");
    std::fs::write(&token_file, "console-s3cret\n").expect("token file");
    let agent = Agent::start_in(
        dir,
        &[],
        &format!("  read_token_file: {}\n", token_file.display()),
    );
    let browser = Browser::start(1280, 800);
    browser.goto(&format!("http://{}/", agent.addr));
    browser.wait_for(
        "the token prompt",
        Duration::from_secs(5),
        "!document.querySelector('#token-prompt').hidden",
    );
    let shown = browser.eval(
        "[document.querySelectorAll('[data-series]').length, document.querySelector('#panels').hidden, \
         document.body.innerText.indexOf('test-host')]",
    );
    assert_eq!(
        shown,
        serde_json::json!([0, true, -1]),
        "data shown without the token"
    );

    // A wrong token is refused, the right one opens the console (and stays for the tab).
    let submit = |token: &str| {
        browser.eval(&format!(
            "(document.querySelector('#token').value = {}, document.querySelector('#token-form').requestSubmit(), true)",
            serde_json::to_string(token).expect("JSON")
        ));
    };
    submit("wrong");
    browser.wait_for(
        "the refusal",
        Duration::from_secs(5),
        "!document.querySelector('#token-error').hidden && !document.querySelector('#token-prompt').hidden",
    );
    submit("console-s3cret");
    browser.wait_for(
        "the console with data",
        Duration::from_secs(10),
        &figure_js("lookout_cpu_usage_ratio"),
    );
    assert_eq!(
        browser.eval("sessionStorage.getItem('lookout.read-token')"),
        "console-s3cret"
    );
    let log = agent.log();
    assert!(!log.contains("console-s3cret"), "the token in the log");
}

/// Writes `docs/console-1280.png` and `docs/console-390.png` from an agent with a Redis, a
/// probe that answers and one that does not, pushed timings and firing rules. Run by hand:
/// `cargo test -p lookout-tests --test console -- --ignored screenshots`.
#[test]
#[ignore = "writes the README's screenshots; run by hand"]
fn screenshots_for_the_readme() {
    let _turn = turn();
    let redis_port = free_port();
    let _redis = lookout_tests::redis_server(redis_port, &["--maxmemory", "64mb"]);
    let mut fill = String::new();
    for i in 0..400 {
        fill.push_str(&format!("SET user:{i} {}\r\n", "x".repeat(200)));
    }
    for i in 0..240 {
        fill.push_str(&format!("LPUSH celery job-{i}\r\n"));
    }
    fill.push_str("LPUSH mail m1\r\n");
    redis_commands(redis_port, &fill).expect("fill Redis");
    let port = free_port();
    let rules_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");
    let extra = "groups:\n  - name: shop\n    interval: 1s\n    rules:\n      - alert: CheckoutSlow\n        expr: lookout_api_latency_p95_seconds{route=\"/checkout\"}\n        warning: \"> 500ms\"\n        critical: \"> 1s\"\n        summary: checkout slow\n      - alert: CeleryBacklog\n        expr: lookout_redis_queue_length{queue=\"celery\"}\n        warning: \"> 100\"\n        for: 10m\n";
    let dir = TempDir::new("console-shots");
    std::fs::write(dir.path().join("shop.yaml"), extra).expect("rules");
    let config = format!(
        "agent:\n  hostname: web-1\n  listen: 127.0.0.1:{port}\n  data_dir: {}\ncollect:\n  host: {{interval: 2s}}\n  redis:\n    - {{name: cache, url: \"redis://127.0.0.1:{redis_port}\", interval: 2s, queues: [celery, mail]}}\n  http_probes:\n    - {{name: self-health, url: \"http://127.0.0.1:{port}/healthz\", interval: 2s}}\n    - {{name: billing-api, url: \"http://127.0.0.1:{}/health\", interval: 2s, timeout: 1s}}\n  ingest: {{interval: 2s}}\nrules:\n  files: [\"{rules_dir}/*.yaml\", shop.yaml]\n  evaluation_interval: 2s\n",
        dir.path().join("data").display(),
        free_port()
    );
    let config_path = dir.path().join("lookout.yaml");
    std::fs::write(&config_path, config).expect("config");
    let agent = Agent::start_with_config(&config_path, port, dir);

    // Application load for 2.5 minutes: pushed timings, and Redis lookups (hits and misses).
    let addr = agent.addr;
    let load = std::thread::spawn(move || {
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < Duration::from_secs(150) {
            let mut batch = Vec::new();
            for i in 0..120u64 {
                n += 1;
                let jitter = ((n * 7919) % 100) as f64 / 100.0;
                let (route, method, status, secs) = match i % 6 {
                    0 | 1 => ("/users/{id}", "GET", 200, 0.02 + 0.03 * jitter),
                    2 => ("/search", "GET", 200, 0.12 + 0.2 * jitter),
                    3 => (
                        "/checkout",
                        "POST",
                        if n.is_multiple_of(13) { 503 } else { 200 },
                        0.4 + 1.1 * jitter,
                    ),
                    4 => ("/orders", "POST", 201, 0.06 + 0.05 * jitter),
                    _ => ("/health", "GET", 200, 0.001 + 0.002 * jitter),
                };
                batch.push(format!(
                    "{{\"route\":\"{route}\",\"method\":\"{method}\",\"status\":{status},\"duration_seconds\":{secs}}}"
                ));
            }
            let _ = http(
                addr,
                "POST",
                "/api/v1/observations",
                &[("Content-Type", "application/json")],
                &format!("[{}]", batch.join(",")),
            );
            let mut lookups = String::new();
            for i in 0..300 {
                lookups.push_str(&format!("GET user:{}\r\n", (i * 7) % 460));
            }
            let _ = redis_commands(redis_port, &lookups);
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    // Enough history for the 5-minute charts to show a shape.
    std::thread::sleep(Duration::from_secs(120));
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs");
    for (width, height) in [(1280, 800), (390, 844)] {
        let browser = Browser::start(width, height);
        browser.goto(&format!("http://{}/", agent.addr));
        browser.eval("(localStorage.setItem('lookout.range', '300'), location.reload(), true)");
        browser.wait_for(
            "the stream live",
            Duration::from_secs(10),
            "document.querySelector('#conn') && document.querySelector('#conn').dataset.state === 'live'",
        );
        browser.wait_for(
            "the alerts",
            Duration::from_secs(20),
            "document.querySelector('[data-alert=\"CheckoutSlow\"]')",
        );
        std::thread::sleep(Duration::from_secs(3));
        let png = browser.screenshot();
        let path = format!("{docs}/console-{width}.png");
        std::fs::write(&path, &png).expect("write the screenshot");
        println!("{path}: {} bytes", png.len());
    }
    let _ = load.join();
}

/// A rule that fires at once and keeps firing (load1 is never negative).
const ALWAYS_FIRING: &str = "groups:\n  - name: console\n    interval: 1s\n    rules:\n      - alert: ConsoleDrill\n        expr: lookout_load1\n        warning: \">= 0\"\n";

const ALWAYS_FIRING_CONFIG: &str = "collect:\n  host:\n    interval: 1s\nrules:\n  files: [rules.yaml]\n  evaluation_interval: 1s\nnotify:\n  group_wait: 0s\n";

const DRILL_ROW: &str = "document.querySelector('[data-alert=\"ConsoleDrill\"]')";

/// The row's Silence button, clicked; waits for the form.
fn open_silence_form(browser: &Browser) {
    browser.eval(&format!(
        "({DRILL_ROW}.querySelector('button[data-silence-for]').click(), true)"
    ));
    browser.wait_for(
        "the Silence form",
        Duration::from_secs(2),
        "document.querySelector('#silence-dialog').open",
    );
}

/// The matchers in the form, as `[[label, pattern], ...]`.
const FORM_MATCHERS: &str = "Array.from(document.querySelectorAll('#silence-matchers .matcher')).map(function (r) { return [r.querySelector('.m-label').value, r.querySelector('.m-pattern').value]; })";

/// Sets the value of the input `selector` to `value`.
fn fill(browser: &Browser, selector: &str, value: &str) {
    browser.eval(&format!(
        "(document.querySelector({}).value = {}, true)",
        serde_json::to_string(selector).expect("JSON"),
        serde_json::to_string(value).expect("JSON")
    ));
}

/// Clicks the first element matching `selector`.
fn click(browser: &Browser, selector: &str) {
    let found = browser.eval(&format!(
        "(function () {{ const e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
        serde_json::to_string(selector).expect("JSON")
    ));
    assert_eq!(found, true, "nothing to click at {selector}");
}

/// GET `path` with `Authorization: Bearer <token>` when given; the JSON answer (200 only).
fn get_json(agent: &Agent, path: &str, token: Option<&str>) -> Value {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    let (status, body) =
        http(agent.addr, "GET", path, &headers, "").unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// The silence of `GET /api/v1/silences` whose comment is `comment`.
fn silence_with_comment(agent: &Agent, token: Option<&str>, comment: &str) -> Option<Value> {
    get_json(agent, "/api/v1/silences?limit=1000", token)["silences"]
        .as_array()
        .expect("silences")
        .iter()
        .find(|s| s["comment"] == comment)
        .cloned()
}

/// Console errors, less the network entries of answers the test asked for on purpose
/// (`allowed`: `(path part, status)`), which Chromium logs as failed loads.
fn errors_but(browser: &Browser, allowed: &[(&str, u16)]) -> Vec<Value> {
    errors(browser)
        .into_iter()
        .filter(|e| {
            let text = e["message"].as_str().unwrap_or_default();
            !allowed.iter().any(|(path, status)| {
                text.contains(path) && text.contains(&format!("status of {status}"))
            })
        })
        .collect()
}

/// For each element matching `selector`: its text, its contrast ratio against the nearest
/// opaque background, and whether it lies within the viewport's width.
fn legibility_js(selector: &str) -> String {
    let quoted = serde_json::to_string(selector).expect("JSON");
    format!(
        "(function () {{
           function rgba(c) {{ const n = c.match(/[\\d.]+/g).map(Number); if (n.length === 3) n.push(1); return n; }}
           function lum(c) {{ const v = c.slice(0, 3).map(function (x) {{ x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); }}); return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; }}
           return Array.from(document.querySelectorAll({quoted})).map(function (el) {{
             let bg = null;
             for (let e = el; e && !bg; e = e.parentElement) {{ const c = rgba(getComputedStyle(e).backgroundColor); if (c[3] === 1) bg = c; }}
             bg = bg || rgba(getComputedStyle(document.body).backgroundColor);
             const fg = rgba(getComputedStyle(el).color);
             const a = lum(fg), b = lum(bg);
             const r = el.getBoundingClientRect();
             return [el.textContent, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), r.left >= 0 && r.right <= innerWidth + 0.5];
           }});
         }})()"
    )
}

/// Every element matching one of `selectors` exists, reads at a contrast of 4.5:1 at least
/// and fits the viewport's width; the page does not scroll sideways.
fn assert_legible(browser: &Browser, selectors: &[&str], what: &str) {
    for selector in selectors {
        let found = browser.eval(&legibility_js(selector));
        let items = found.as_array().expect("elements");
        assert!(!items.is_empty(), "{what}: nothing matches {selector}");
        for item in items {
            let ratio = item[1].as_f64().unwrap_or(0.0);
            assert!(
                ratio >= 4.5,
                "{what}: {selector} {item} reads at {ratio:.2}:1"
            );
            assert_eq!(
                item[2], true,
                "{what}: {selector} {item} overflows the viewport"
            );
        }
    }
    let sideways =
        browser.eval("document.documentElement.scrollWidth - document.documentElement.clientWidth");
    assert!(
        sideways.as_f64().unwrap_or(1.0) <= 0.0,
        "{what}: the page scrolls sideways by {sideways} px"
    );
}

/// Silence from the alert's row: the form comes prefilled with the alert's matchers, shows
/// the server's refusal of a bad duration, and sends what it holds once edited; the row says
/// silenced within seconds, the API lists the silence with the form's matchers, the
/// Silences panel shows it, all legible on a phone in both themes; Expire ends it and the
/// badge goes.
#[test]
fn an_alert_silenced_from_its_row_shows_silenced_and_expires_from_the_silences_list() {
    let _turn = turn();
    let agent = Agent::start_in(
        TempDir::new("console-silence"),
        &[("rules.yaml", ALWAYS_FIRING)],
        ALWAYS_FIRING_CONFIG,
    );
    let browser = open(&agent, 1280, 800);
    browser.wait_for(
        "the alert firing",
        Duration::from_secs(5),
        &format!("{DRILL_ROW} && {DRILL_ROW}.dataset.state === 'firing'"),
    );
    assert_eq!(
        browser.eval(&format!(
            "[{DRILL_ROW}.hasAttribute('data-muted'), {DRILL_ROW}.querySelectorAll('.mute-badge').length, !!document.querySelector('[data-silence]')]"
        )),
        serde_json::json!([false, 0, false]),
        "muted before any silence"
    );

    open_silence_form(&browser);
    let prefilled = browser.eval(FORM_MATCHERS);
    println!("prefilled matchers: {prefilled}");
    let pairs = prefilled.as_array().expect("matchers");
    assert!(
        pairs.contains(&serde_json::json!(["alert", "ConsoleDrill"])),
        "{prefilled}"
    );
    assert!(
        pairs.contains(&serde_json::json!(["host", "test-host"])),
        "{prefilled}"
    );
    assert!(!pairs.iter().any(|p| p[0] == "severity"), "{prefilled}");
    assert_eq!(
        browser.eval(
            "[document.querySelector('#silence-duration').value, document.activeElement.id, \
             document.querySelector('#silence-durations button[aria-pressed=\"true\"]').textContent]"
        ),
        serde_json::json!(["2h", "silence-comment", "2h"]),
        "duration 2h by default, the focus in the form"
    );

    // A duration the agent refuses: its reason shows, the form stays.
    fill(&browser, "#silence-duration", "soon");
    click(&browser, "#silence-form button[type=submit]");
    let refusal = browser.wait_for(
        "the agent's refusal in the form",
        Duration::from_secs(3),
        "!document.querySelector('#silence-error').hidden && document.querySelector('#silence-error').textContent",
    );
    assert!(
        refusal.as_str().unwrap_or_default().contains("duration"),
        "{refusal}"
    );
    assert_eq!(
        browser.eval("document.querySelector('#silence-dialog').open"),
        true
    );
    assert!(
        silence_with_comment(&agent, None, "").is_none()
            && get_json(&agent, "/api/v1/silences", None)["silences"] == serde_json::json!([]),
        "a refused silence was made"
    );

    // Edited: the host as a pattern, 1h from the choices, a comment and an author.
    browser.eval(
        "(Array.from(document.querySelectorAll('#silence-matchers .matcher')).find(function (r) { return r.querySelector('.m-label').value === 'host'; }).querySelector('.m-pattern').value = 'test-h.*', true)",
    );
    click(&browser, "#silence-durations button[data-duration=\"1h\"]");
    fill(&browser, "#silence-comment", "console drill");
    fill(&browser, "#silence-author", "console-test");
    let sent = browser.eval(FORM_MATCHERS);
    click(&browser, "#silence-form button[type=submit]");
    let submitted = Instant::now();
    browser.wait_for(
        "the badge on the row",
        Duration::from_secs(3),
        &format!(
            "!document.querySelector('#silence-dialog').open && {DRILL_ROW} && {DRILL_ROW}.dataset.muted === 'silence' && \
             {DRILL_ROW}.querySelector('.mute-badge[data-by=\"silence\"]').textContent === 'silenced'"
        ),
    );
    println!(
        "silenced shown {} ms after the submit",
        submitted.elapsed().as_millis()
    );
    // The focus is back on the row's button, and stays there while the row is redrawn by
    // the stream's events (an evaluation a second).
    for when in ["after the form", "after 1.5 s of redraws"] {
        assert_eq!(
            browser.eval(&format!(
                "document.activeElement === {DRILL_ROW}.querySelector('button[data-silence-for]')"
            )),
            true,
            "the focus {when}"
        );
        std::thread::sleep(Duration::from_millis(1500));
    }

    // The API has it, with the form's matchers, for an hour.
    let silence = silence_with_comment(&agent, None, "console drill").expect("the silence");
    let id = silence["id"].as_str().expect("id").to_string();
    let expected: serde_json::Map<String, Value> = sent
        .as_array()
        .expect("matchers")
        .iter()
        .map(|p| (p[0].as_str().unwrap_or_default().to_string(), p[1].clone()))
        .collect();
    assert_eq!(silence["matchers"], Value::Object(expected), "{silence}");
    assert_eq!(silence["matchers"]["host"], "test-h.*", "{silence}");
    assert_eq!(
        (
            &silence["state"],
            &silence["source"],
            &silence["created_by"]
        ),
        (
            &serde_json::json!("active"),
            &serde_json::json!("api"),
            &serde_json::json!("console-test")
        ),
        "{silence}"
    );
    let length = browser.eval(&format!(
        "Date.parse({}) - Date.parse({})",
        silence["ends"], silence["starts"]
    ));
    assert_eq!(length.as_f64(), Some(3_600_000.0), "{silence}");
    let alerts = agent.json("/api/v1/alerts");
    let drill = alerts["alerts"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["alert"] == "ConsoleDrill"))
        .cloned()
        .expect("ConsoleDrill in /api/v1/alerts");
    assert_eq!(
        drill["muted_by"],
        serde_json::json!([{ "by": "silence", "id": id }]),
        "{drill}"
    );

    // The Silences panel lists it: matchers, when it ends (the time on hover), comment,
    // author, source, and an Expire button.
    let item =
        format!("document.querySelector('[data-panel=\"silences\"] li[data-silence=\"{id}\"]')");
    let shown = browser.wait_for(
        "the silence in the Silences panel",
        Duration::from_secs(3),
        &format!(
            "{item} && [{item}.dataset.state, {item}.textContent, {item}.querySelector('time[data-in]').title, !!{item}.querySelector('button[data-expire]')]"
        ),
    );
    println!("silences panel: {shown}");
    assert_eq!(shown[0], "active", "{shown}");
    let text = shown[1].as_str().unwrap_or_default();
    // An hour less the seconds since (the agent's clock as the page reckons it may be a
    // few milliseconds behind: then "1h 0m").
    assert!(
        text.contains("ends in 59m") || text.contains("ends in 1h 0m"),
        "{text:?}"
    );
    for part in [
        "alert=ConsoleDrill",
        "host=test-h.*",
        "console drill",
        "by console-test",
        "API",
    ] {
        assert!(text.contains(part), "{part:?} not in {text:?}");
    }
    assert!(
        shown[2].as_str().is_some_and(|t| !t.is_empty()),
        "no absolute time on hover: {shown}"
    );
    assert_eq!(shown[3], true, "{shown}");

    // Legible on a phone, in the dark theme and the light one; the form fits too.
    browser.viewport(390, 844);
    for scheme in ["dark", "light"] {
        browser.color_scheme(scheme);
        std::thread::sleep(Duration::from_millis(300));
        assert_legible(
            &browser,
            &[
                "[data-alert=\"ConsoleDrill\"] .mute-badge",
                "[data-alert=\"ConsoleDrill\"] button[data-silence-for]",
                "[data-panel=\"silences\"] button[data-expire]",
                "[data-panel=\"silences\"] .silence .when",
            ],
            &format!("390 px, {scheme}"),
        );
    }
    open_silence_form(&browser);
    let fits = browser.eval(
        "(function () { const r = document.querySelector('#silence-dialog').getBoundingClientRect(); return r.left >= 0 && r.right <= innerWidth; })()",
    );
    assert_eq!(fits, true, "the form is wider than a phone");
    assert_legible(
        &browser,
        &[
            "#silence-form .primary",
            "#silence-durations button[aria-pressed=\"true\"]",
            "#silence-form .m-pattern",
        ],
        "the form on a phone",
    );
    click(&browser, "#silence-form [data-close]");
    browser.wait_for(
        "the form closed",
        Duration::from_secs(2),
        "!document.querySelector('#silence-dialog').open",
    );
    assert!(
        get_json(&agent, "/api/v1/silences", None)["silences"]
            .as_array()
            .is_some_and(|s| s.len() == 1),
        "Cancel made a silence"
    );
    browser.viewport(1280, 800);

    // Expire: the badge goes, the silence is expired and leaves the active list.
    click(
        &browser,
        &format!("[data-panel=\"silences\"] button[data-expire=\"{id}\"]"),
    );
    browser.wait_for(
        "the badge gone",
        Duration::from_secs(3),
        &format!(
            "{DRILL_ROW} && !{DRILL_ROW}.hasAttribute('data-muted') && !{DRILL_ROW}.querySelector('.mute-badge')"
        ),
    );
    let after = silence_with_comment(&agent, None, "console drill").expect("still listed");
    assert_eq!(after["state"], "expired", "{after}");
    browser.wait_for(
        "the silence among the expired ones",
        Duration::from_secs(3),
        &format!(
            "!document.querySelector('[data-panel=\"silences\"] li[data-silence=\"{id}\"][data-state=\"active\"]') && \
             !!document.querySelector('[data-panel=\"silences\"] details.expired li[data-silence=\"{id}\"]')"
        ),
    );
    let severe = errors_but(&browser, &[("/api/v1/silences", 400)]);
    assert!(severe.is_empty(), "console errors: {severe:?}");
}

/// With both tokens configured: the page takes the read token, and the Silence form asks for
/// the API token on the agent's 401 (a wrong one refused, saying so), then succeeds with it;
/// the API token is kept in sessionStorage under its own key, nowhere else, and Expire uses
/// it without asking again.
#[test]
fn with_an_api_token_the_silence_form_asks_for_it_and_keeps_it_apart_from_the_read_token() {
    let _turn = turn();
    let dir = TempDir::new("console-api-token");
    let read_file = dir.path().join("read-token");
    let api_file = dir.path().join("api-token");
    std::fs::write(&read_file, "console-read\n").expect("read token file");
    std::fs::write(&api_file, "console-write\n").expect("API token file");
    let agent = Agent::start_in(
        dir,
        &[("rules.yaml", ALWAYS_FIRING)],
        &format!(
            "  read_token_file: {}\n  api_token_file: {}\n{ALWAYS_FIRING_CONFIG}",
            read_file.display(),
            api_file.display()
        ),
    );
    let browser = Browser::start(1280, 800);
    browser.goto(&format!("http://{}/", agent.addr));
    browser.wait_for(
        "the read token prompt",
        Duration::from_secs(5),
        "!document.querySelector('#token-prompt').hidden",
    );
    browser.eval(
        "(document.querySelector('#token').value = 'console-read', document.querySelector('#token-form').requestSubmit(), true)",
    );
    browser.wait_for(
        "the alert firing",
        Duration::from_secs(10),
        &format!("{DRILL_ROW} && {DRILL_ROW}.dataset.state === 'firing'"),
    );

    open_silence_form(&browser);
    fill(&browser, "#silence-comment", "needs the API token");
    click(&browser, "#silence-form button[type=submit]");
    browser.wait_for(
        "the API token asked for",
        Duration::from_secs(3),
        "document.querySelector('#api-token-dialog').open && document.activeElement.id === 'api-token'",
    );
    assert_eq!(
        browser.eval("document.querySelector('#api-token-error').hidden"),
        true,
        "a refusal shown before any token was given"
    );
    assert!(
        silence_with_comment(&agent, Some("console-read"), "needs the API token").is_none(),
        "made without the API token"
    );

    // The read token is not the API token: refused, and said so.
    let give = |token: &str| {
        browser.eval(&format!(
            "(document.querySelector('#api-token').value = {}, document.querySelector('#api-token-form').requestSubmit(), true)",
            serde_json::to_string(token).expect("JSON")
        ));
    };
    give("console-read");
    browser.wait_for(
        "the refusal",
        Duration::from_secs(3),
        "document.querySelector('#api-token-dialog').open && !document.querySelector('#api-token-error').hidden",
    );
    assert!(silence_with_comment(&agent, Some("console-read"), "needs the API token").is_none());

    give("console-write");
    browser.wait_for(
        "the row silenced",
        Duration::from_secs(5),
        &format!(
            "!document.querySelector('#api-token-dialog').open && !document.querySelector('#silence-dialog').open && \
             {DRILL_ROW} && {DRILL_ROW}.dataset.muted === 'silence'"
        ),
    );
    let silence = silence_with_comment(&agent, Some("console-read"), "needs the API token")
        .expect("the silence");
    assert_eq!(silence["state"], "active", "{silence}");
    assert_eq!(silence["matchers"]["alert"], "ConsoleDrill", "{silence}");
    let id = silence["id"].as_str().expect("id").to_string();

    // Where the tokens are: each under its own key in sessionStorage, never in localStorage
    // or the address, never in the agent's log.
    let kept = browser.eval(
        "[sessionStorage.getItem('lookout.read-token'), sessionStorage.getItem('lookout.api-token'), \
          JSON.stringify(Object.assign({}, localStorage)), location.href]",
    );
    assert_eq!(kept[0], "console-read", "{kept}");
    assert_eq!(kept[1], "console-write", "{kept}");
    for place in [&kept[2], &kept[3]] {
        let text = place.as_str().unwrap_or_default();
        assert!(
            !text.contains("console-write") && !text.contains("console-read"),
            "a token in {text:?}"
        );
    }

    // Expire with the kept token: no second prompt.
    let item = format!("[data-panel=\"silences\"] button[data-expire=\"{id}\"]");
    browser.wait_for(
        "the Expire button",
        Duration::from_secs(3),
        &format!(
            "document.querySelector({})",
            serde_json::to_string(&item).expect("JSON")
        ),
    );
    click(&browser, &item);
    browser.wait_for(
        "the badge gone",
        Duration::from_secs(3),
        &format!("{DRILL_ROW} && !{DRILL_ROW}.hasAttribute('data-muted')"),
    );
    assert_eq!(
        browser.eval("document.querySelector('#api-token-dialog').open"),
        false,
        "asked again"
    );
    let after = silence_with_comment(&agent, Some("console-read"), "needs the API token")
        .expect("still listed");
    assert_eq!(after["state"], "expired", "{after}");
    let log = agent.log();
    assert!(
        !log.contains("console-write") && !log.contains("console-read"),
        "a token in the log"
    );
    let severe = errors_but(
        &browser,
        &[("/api/v1/stream", 401), ("/api/v1/silences", 401)],
    );
    assert!(severe.is_empty(), "console errors: {severe:?}");
}
