//! Pushed request timings through the real binary: known distributions come back as their
//! quantiles, error ratio and counts on `/metrics`; routes over the cap are counted as
//! overflow; every kind of bad input gets its status and message and leaves the agent
//! healthy; a disabled endpoint answers 404.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use lookout_tests::{Agent, assert_promtool_accepts_metrics, find, http, value};
use serde_json::{Value, json};

const PATH: &str = "/api/v1/observations";

/// Collectors off but ingestion, exported every second.
const QUIET: &str = "collect:\n  host: {enabled: false}\n  tcp: {enabled: false}\n";

fn post(agent: &Agent, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let (status, text) = http(agent.addr, "POST", PATH, headers, body)
        .unwrap_or_else(|e| panic!("POST {PATH}: {e}; log:\n{}", agent.log()));
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("answer {status} is not JSON ({e}): {text}"));
    (status, json)
}

/// The exact `q` quantile of `values` (nearest rank).
fn exact_quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn observations(route: &str, method: &str, timings: &[(u16, f64)]) -> Vec<Value> {
    timings
        .iter()
        .map(|(status, d)| {
            json!({"route": route, "method": method, "status": status, "duration_seconds": d})
        })
        .collect()
}

#[test]
fn known_distributions_come_back_as_their_quantiles_error_ratio_and_counts() {
    let agent = Agent::start(&format!(
        "{QUIET}  ingest: {{interval: 1s, max_routes: 3}}\n"
    ));
    // A uniform 1 ms .. 1 s with every 20th request a 503, and a bimodal 20 ms / 3 s.
    let uniform: Vec<(u16, f64)> = (1..=1000)
        .map(|i| (if i % 20 == 0 { 503 } else { 200 }, f64::from(i) / 1000.0))
        .collect();
    let bimodal: Vec<(u16, f64)> = (0..500)
        .map(|i| (201, if i % 10 == 0 { 3.0 } else { 0.02 }))
        .collect();
    let mut batch = observations("/users/{id}", "get", &uniform);
    batch.extend(observations("/search", "POST", &bimodal));
    // Sent in two requests: batches add up.
    let (first, second) = batch.split_at(700);
    for part in [first, second] {
        let (status, answer) = post(&agent, &[], &Value::from(part.to_vec()).to_string());
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["accepted"], part.len());
        assert_eq!(answer["overflow"], 0);
    }

    let users = [("route", "/users/{id}"), ("method", "GET")];
    let search = [("route", "/search"), ("method", "POST")];
    let metrics = agent.wait_for(Duration::from_secs(10), |m| {
        let both = value(m, "lookout_api_request_duration_seconds_count", &users) == Some(1000.0)
            && value(m, "lookout_api_request_duration_seconds_count", &search) == Some(500.0);
        both.then(|| m.to_vec())
    });
    for (labels, timings) in [(&users, &uniform), (&search, &bimodal)] {
        let durations: Vec<f64> = timings.iter().map(|(_, d)| *d).collect();
        for (metric, q) in [
            ("lookout_api_latency_p50_seconds", 0.5),
            ("lookout_api_latency_p95_seconds", 0.95),
            ("lookout_api_latency_p99_seconds", 0.99),
        ] {
            let got = value(&metrics, metric, labels.as_slice())
                .unwrap_or_else(|| panic!("{metric} {labels:?} missing"));
            let want = exact_quantile(&durations, q);
            assert!(
                (got - want).abs() <= 0.05 * want,
                "{metric} {labels:?}: {got}, exact {want}"
            );
        }
        let mean = durations.iter().sum::<f64>() / durations.len() as f64;
        let avg = value(
            &metrics,
            "lookout_api_latency_avg_seconds",
            labels.as_slice(),
        )
        .unwrap();
        assert!((avg - mean).abs() < 1e-9, "avg {avg} vs {mean}");
        let errors = timings.iter().filter(|(s, _)| *s >= 500).count() as f64;
        let ratio = value(&metrics, "lookout_api_error_ratio", labels.as_slice()).unwrap();
        assert_eq!(ratio, errors / timings.len() as f64, "{labels:?}");
        // Every request is in the window, and the window is younger than a minute.
        let rate = value(
            &metrics,
            "lookout_api_requests_per_second",
            labels.as_slice(),
        )
        .unwrap();
        assert!(rate >= timings.len() as f64 / 60.0, "{labels:?}: {rate}/s");
        // The cumulative histogram holds the exact counts per bucket.
        for le in ["0.05", "0.5", "2.5", "+Inf"] {
            let bound = le.parse::<f64>().unwrap_or(f64::INFINITY);
            let at_most = durations.iter().filter(|d| **d <= bound).count() as f64;
            let mut with = labels.to_vec();
            with.push(("le", le));
            assert_eq!(
                value(
                    &metrics,
                    "lookout_api_request_duration_seconds_bucket",
                    &with
                ),
                Some(at_most),
                "{labels:?} le={le}"
            );
        }
    }
    let class = |c| {
        value(
            &metrics,
            "lookout_api_requests_total",
            &[users[0], users[1], ("status_class", c)],
        )
    };
    assert_eq!((class("2xx"), class("5xx")), (Some(950.0), Some(50.0)));

    // Two more routes fit the cap of 3; the next two are counted as overflow.
    let extra: Vec<Value> = ["/a", "/b", "/c"]
        .iter()
        .flat_map(|r| observations(r, "GET", &[(500, 0.1), (500, 0.1)]))
        .collect();
    let (status, answer) = post(&agent, &[], &Value::from(extra).to_string());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["overflow"], 4, "{answer}");
    let metrics = agent.wait_for(Duration::from_secs(10), |m| {
        (value(m, "lookout_ingest_route_overflow_total", &[]) == Some(4.0)).then(|| m.to_vec())
    });
    let overflow = [("route", "_overflow"), ("method", "GET")];
    assert_eq!(
        value(
            &metrics,
            "lookout_api_request_duration_seconds_count",
            &overflow
        ),
        Some(4.0)
    );
    assert!(find(&metrics, "lookout_api_requests_total", &[("route", "/c")]).is_none());
    let (_, text) = agent.get("/metrics");
    assert_promtool_accepts_metrics(&text);
}

#[test]
fn bad_input_gets_its_status_and_message_and_the_agent_stays_healthy() {
    let dir = lookout_tests::TempDir::new("ingest-token");
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let agent = Agent::start(&format!(
        "  api_token_file: {}\n{QUIET}  ingest: {{interval: 1s, max_body: 4KiB}}\n",
        token.display()
    ));
    let auth = [("Authorization", "Bearer s3cret")];
    let good = r#"[{"route":"/","method":"GET","status":200,"duration_seconds":0.1}]"#;

    // Headers, body, expected status, expected words of the error.
    type Case<'a> = (&'a [(&'a str, &'a str)], String, u16, &'a str);
    let cases: &[Case] = &[
        (&[], good.into(), 401, "missing bearer token"),
        (
            &[("Authorization", "Bearer nope")],
            good.into(),
            401,
            "wrong bearer token",
        ),
        (&auth, "[{\"route\": ".into(), 400, "malformed JSON"),
        (&auth, "route=/&status=200".into(), 400, "malformed JSON"),
        (
            &auth,
            format!("[{}]", vec![good.trim_matches(['[', ']']); 80].join(",")),
            413,
            "over collect.ingest.max_body (4KiB)",
        ),
        (
            &auth,
            r#"[{"route":"/","method":"GET","status":200,"duration_seconds":-0.5}]"#.into(),
            422,
            "[0].duration_seconds: -0.5 is not a duration",
        ),
        (
            &auth,
            r#"[{"route":"/","method":"GET","status":999,"duration_seconds":1}]"#.into(),
            422,
            "[0].status: 999 is not an HTTP status",
        ),
        (
            &auth,
            r#"{"route":"/","method":"GET","status":200,"duration_seconds":1}"#.into(),
            422,
            "expected a JSON array of observations, got an object",
        ),
        (
            &auth,
            r#"[{"route":"/","status":200,"duration_seconds":"1s"}]"#.into(),
            422,
            "[0].method: missing",
        ),
    ];
    for (headers, body, want_status, want_message) in cases {
        let (status, answer) = post(&agent, headers, body);
        let error = answer["error"].as_str().unwrap_or_default();
        assert_eq!(status, *want_status, "{body}: {answer}");
        assert!(
            error.contains(want_message),
            "{body}: expected {want_message:?} in {answer}"
        );
    }
    // A 422 lists every problem, not only the first.
    let (_, answer) = post(
        &agent,
        &auth,
        r#"[{"route":"","method":"G T","status":99,"duration_seconds":-1}]"#,
    );
    assert_eq!(
        answer["problems"].as_array().map(Vec::len),
        Some(4),
        "{answer}"
    );

    // A chunked body (no Content-Length) over the limit is cut off at the limit.
    let mut stream = TcpStream::connect(agent.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let chunk = "x".repeat(1024);
    let mut request = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer s3cret\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        agent.addr
    );
    for _ in 0..8 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Nothing of the refused batches was counted; a good batch still is; the agent is fine.
    let (status, answer) = post(&agent, &auth, good);
    assert_eq!((status, &answer["accepted"]), (200, &json!(1)), "{answer}");
    let metrics = agent.wait_for(Duration::from_secs(10), |m| {
        (value(
            m,
            "lookout_api_request_duration_seconds_count",
            &[("route", "/")],
        ) == Some(1.0))
        .then(|| m.to_vec())
    });
    for (reason, n) in [
        ("unauthorized", 2.0),
        ("malformed", 2.0),
        ("too_large", 2.0),
        ("invalid", 5.0),
    ] {
        assert_eq!(
            value(
                &metrics,
                "lookout_ingest_rejected_total",
                &[("reason", reason)]
            ),
            Some(n),
            "{reason}"
        );
    }
    assert_eq!(agent.get("/healthz").0, 200);
    assert!(!agent.log().contains("panicked"), "{}", agent.log());
}

#[test]
fn a_disabled_endpoint_answers_404_and_exports_nothing() {
    let agent = Agent::start(&format!("{QUIET}  ingest: {{enabled: false}}\n"));
    let (status, answer) = post(
        &agent,
        &[],
        r#"[{"route":"/","method":"GET","status":200,"duration_seconds":0.1}]"#,
    );
    assert_eq!(status, 404);
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("collect.ingest.enabled"),
        "{answer}"
    );
    let metrics = agent.metrics();
    assert!(find(&metrics, "lookout_ingest_rejected_total", &[]).is_none());
    assert!(find(&metrics, "lookout_collector_up", &[("collector", "ingest")]).is_none());
}

#[test]
fn the_readme_python_client_reports_a_request() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme
        .find("```python\n")
        .expect("a python block in the README")
        + 10;
    let end = start
        + readme[start..]
            .find("\n```")
            .expect("end of the python block");
    let agent = Agent::start(&format!("{QUIET}  ingest: {{interval: 1s}}\n"));
    let script = readme[start..end].replace("127.0.0.1:9469", &agent.addr.to_string());
    assert_ne!(
        script,
        &readme[start..end],
        "the example must post to the default address"
    );
    let python = lookout_tests::require("python3", "python3");
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(&script)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "README example failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let labels = [
        ("route", "/users/{id}"),
        ("method", "GET"),
        ("status_class", "2xx"),
    ];
    agent.wait_for(Duration::from_secs(10), |m| {
        (value(m, "lookout_api_requests_total", &labels) == Some(1.0)).then_some(())
    });
}
