//! HTTP probes through the real binary against a Python HTTP server: a 200 succeeds, a 500
//! and a response slower than the timeout fail (the latter with status 0), a closed port
//! fails, and the attempt-duration histogram keeps growing.

use std::time::Duration;

use lookout_tests::{Agent, MetricSample, Peer, find, free_port, python_server};

/// `/ok` answers 200, `/fail` 500, `/slow` 200 after 2 s; one thread per request.
const SERVER: &str = r#"
import http.server, sys, time

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(2)
            code = 200
        elif self.path == "/ok":
            code = 200
        elif self.path == "/fail":
            code = 500
        else:
            code = 404
        body = b"probe target\n"
        try:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

fn start_server(port: u16) -> Peer {
    python_server(
        &["-c", SERVER, &port.to_string()],
        port,
        "the Python HTTP server",
    )
}

fn value(m: &[MetricSample], name: &str, probe: &str) -> Option<f64> {
    lookout_tests::value(m, name, &[("probe", probe)])
}

#[test]
fn probes_report_success_status_and_duration() {
    let port = free_port();
    let _server = start_server(port);
    let closed = free_port();
    let probe = |name: &str, url: String| {
        format!("    - {{name: {name}, url: \"{url}\", interval: 1s, timeout: 500ms}}\n")
    };
    let config = format!(
        "collect:\n  host:\n    enabled: false\n  tcp:\n    enabled: false\n  http_probes:\n{}{}{}{}",
        probe("ok", format!("http://127.0.0.1:{port}/ok")),
        probe("fail", format!("http://127.0.0.1:{port}/fail")),
        probe("slow", format!("http://127.0.0.1:{port}/slow")),
        probe("closed", format!("http://127.0.0.1:{closed}/")),
    );
    let agent = Agent::start(&config);
    let limit = Duration::from_secs(20);

    // Every probe has run at least once.
    let first_count = agent.wait_for(limit, |m| {
        let all_ran = ["ok", "fail", "slow", "closed"]
            .iter()
            .all(|p| value(m, "lookout_probe_success", p).is_some());
        let count = value(m, "lookout_probe_duration_seconds_hist_count", "ok")?;
        all_ran.then_some(count)
    });

    let m = agent.metrics();
    let ok = |name| value(&m, name, "ok");
    assert_eq!(ok("lookout_probe_success"), Some(1.0), "{m:?}");
    assert_eq!(ok("lookout_probe_http_status_code"), Some(200.0));
    assert_eq!(ok("lookout_probe_attempts_failed_total"), Some(0.0));
    assert!(ok("lookout_probe_duration_seconds").is_some_and(|d| d > 0.0 && d < 0.5));

    assert_eq!(value(&m, "lookout_probe_success", "fail"), Some(0.0));
    assert_eq!(
        value(&m, "lookout_probe_http_status_code", "fail"),
        Some(500.0)
    );
    assert!(
        value(&m, "lookout_probe_attempts_failed_total", "fail").is_some_and(|n| n >= 1.0),
        "{m:?}"
    );

    assert_eq!(value(&m, "lookout_probe_success", "slow"), Some(0.0));
    assert_eq!(
        value(&m, "lookout_probe_http_status_code", "slow"),
        Some(0.0)
    );
    assert!(
        value(&m, "lookout_probe_duration_seconds", "slow").is_some_and(|d| d >= 0.4),
        "{m:?}"
    );

    assert_eq!(value(&m, "lookout_probe_success", "closed"), Some(0.0));
    assert_eq!(
        value(&m, "lookout_probe_http_status_code", "closed"),
        Some(0.0)
    );

    // A failing probe is data: its collector is up.
    assert_eq!(
        find(&m, "lookout_collector_up", &[("collector", "probe:fail")]).map(|s| s.value),
        Some(1.0),
        "{m:?}"
    );

    // The histogram counts every attempt: it keeps growing, and its +Inf bucket equals the
    // count.
    let later = agent.wait_for(limit, |m| {
        value(m, "lookout_probe_duration_seconds_hist_count", "ok")
            .filter(|c| *c >= first_count + 2.0)
    });
    let m = agent.metrics();
    let count = value(&m, "lookout_probe_duration_seconds_hist_count", "ok");
    assert!(
        count.is_some_and(|c| c >= later),
        "a count never goes down: {m:?}"
    );
    let inf = find(
        &m,
        "lookout_probe_duration_seconds_hist_bucket",
        &[("probe", "ok"), ("le", "+Inf")],
    )
    .map(|s| s.value);
    assert_eq!(count, inf, "{m:?}");
    let slow_count = value(&m, "lookout_probe_duration_seconds_hist_count", "slow");
    let slow_failed = value(&m, "lookout_probe_attempts_failed_total", "slow");
    assert!(slow_count.is_some_and(|c| c >= 1.0));
    assert!(slow_failed.is_some_and(|f| f >= 1.0));
}
