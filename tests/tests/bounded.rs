//! Every read of a peer's reply is bounded, through the real binary: a probe target that
//! streams an endless body and a webhook receiver that answers an endless error body. Each
//! peer is a small server in the test that writes as fast as the agent reads and reports
//! how much it wrote before the agent dropped the connection (it stops by itself at
//! 256 MiB, so an agent that reads everything cannot take the machine's memory).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_tests::{Agent, value};

/// Where a server stops writing when the client reads on.
const SERVER_CAP: usize = 256 << 20;

/// What the sockets can hold besides what the agent read: loopback buffers are a few MiB.
const SOCKET_SLACK: usize = 32 << 20;

/// A loopback HTTP server answering `status` with a chunked body of `text` repeated, endless
/// once `endless` is set (before: one chunk). Records the bytes of body written per
/// connection, once each connection is over.
struct Streamer {
    port: u16,
    endless: Arc<AtomicBool>,
    written: Arc<Mutex<Vec<usize>>>,
}

impl Streamer {
    fn start(status: u16, text: &'static str) -> Streamer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let endless = Arc::new(AtomicBool::new(false));
        let written = Arc::new(Mutex::new(Vec::new()));
        let (flag, record) = (endless.clone(), written.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (flag, record) = (flag.clone(), record.clone());
                std::thread::spawn(move || serve(stream, status, text, &flag, &record));
            }
        });
        Streamer {
            port,
            endless,
            written,
        }
    }

    /// The bytes written on each connection that is over, endless ones only.
    fn endless_connections(&self) -> Vec<usize> {
        self.written.lock().unwrap().clone()
    }
}

fn serve(
    mut stream: TcpStream,
    status: u16,
    text: &str,
    endless: &AtomicBool,
    record: &Mutex<Vec<usize>>,
) {
    // The request: its head, then its body by Content-Length.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let body_len = loop {
        let Ok(n) = stream.read(&mut chunk) else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            break end + 4 + len;
        }
    };
    while buf.len() < body_len {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let piece = text.repeat(16 * 1024 / text.len());
    let frame = format!("{:x}\r\n{piece}\r\n", piece.len());
    let head =
        format!("HTTP/1.1 {status} X\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n");
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    if !endless.load(Ordering::SeqCst) {
        let _ = stream.write_all(frame.as_bytes());
        let _ = stream.write_all(b"0\r\n\r\n");
        return;
    }
    let mut written = 0;
    while written < SERVER_CAP && stream.write_all(frame.as_bytes()).is_ok() {
        written += frame.len();
    }
    record.lock().unwrap().push(written);
}

/// `VmRSS` and `VmHWM` (peak) of process `pid`, in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"));
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap();
        kib * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn a_probe_of_an_endless_body_ends_within_its_timeout_and_memory_stays_flat() {
    let server = Streamer::start(200, "stream ");
    let agent = Agent::start(&format!(
        "collect:\n  host: {{enabled: false}}\n  tcp: {{enabled: false}}\n\
         \x20 http_probes:\n    - name: stream\n      url: \"http://127.0.0.1:{}/stream\"\n      interval: 1s\n      timeout: 800ms\n",
        server.port
    ));
    // A few rounds of short bodies first: the agent's memory at work, before any endless one.
    agent.wait_until("the probe's first run", Duration::from_secs(10), || {
        agent.json("/api/v1/status")["collectors"]["probe:stream"]["runs"].as_u64() >= Some(1)
    });
    agent.wait_for_runs_from_now("probe:stream");
    let (rss_before, peak_before) = memory(agent.child.id());

    server.endless.store(true, Ordering::SeqCst);
    agent.wait_until(
        "five endless bodies probed",
        Duration::from_secs(30),
        || server.endless_connections().len() >= 5,
    );
    agent.wait_for_runs_from_now("probe:stream");
    let (rss_after, peak_after) = memory(agent.child.id());

    // Memory: neither the resident set nor its peak grew by more than a few MiB.
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    assert!(
        peak_after < peak_before + (16 << 20),
        "peak RSS {:.1} -> {:.1} MiB",
        mib(peak_before),
        mib(peak_after)
    );
    assert!(
        rss_after < rss_before + (16 << 20),
        "RSS {:.1} -> {:.1} MiB",
        mib(rss_before),
        mib(rss_after)
    );
    // Each connection was dropped after the bound: the server wrote little of its 256 MiB.
    for written in server.endless_connections() {
        assert!(
            written < SOCKET_SLACK,
            "{written} bytes written before the agent let go"
        );
    }
    // Succeeded on its status, long before the timeout.
    let m = agent.metrics();
    let probe = [("probe", "stream")];
    assert_eq!(value(&m, "lookout_probe_success", &probe), Some(1.0));
    assert_eq!(
        value(&m, "lookout_probe_http_status_code", &probe),
        Some(200.0)
    );
    let took = value(&m, "lookout_probe_duration_seconds", &probe).unwrap();
    assert!(took < 0.8, "the attempt took {took}s");
}

#[test]
fn a_receivers_endless_error_body_is_logged_as_a_bounded_excerpt() {
    let server = Streamer::start(500, "upstream exploded ");
    server.endless.store(true, Ordering::SeqCst);
    let dir = lookout_tests::TempDir::new("bounded-receiver");
    let rules = "groups:\n  - name: t\n    interval: 1s\n    rules:\n      - alert: LoadSeen\n        expr: lookout_load1\n        warning: \">= 0\"\n";
    let agent = Agent::start_in(
        dir,
        &[("rules.yaml", rules)],
        &format!(
            "collect:\n  host:\n    interval: 1s\n    timeout: 1s\n  tcp:\n    enabled: false\n\
             rules:\n  files: [rules.yaml]\n  evaluation_interval: 1s\n\
             notify:\n  group_wait: 0s\n  retry: {{initial: 1s, max: 2s, jitter: false}}\n  receivers:\n\
             \x20   - name: hook\n      webhook: {{url: \"http://127.0.0.1:{}/hook/path\", timeout: 5s}}\n",
            server.port
        ),
    );
    agent.wait_until("a failed delivery logged", Duration::from_secs(20), || {
        agent.log().contains("delivery failed; will retry")
    });
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("delivery failed; will retry"))
        .unwrap();
    // The status and the start of the body, never the body: one short line.
    assert!(
        line.contains("HTTP 500") && line.contains("upstream exploded"),
        "{line}"
    );
    assert!(line.len() < 1000, "{} bytes: {line}", line.len());
    // The endpoint by its origin only.
    assert!(
        line.contains(&format!("http://127.0.0.1:{}/<redacted>", server.port)),
        "{line}"
    );
    assert!(!line.contains("/hook/path"), "{line}");
    // The outbox keeps the same bounded text (recorded just after the log line is written).
    let mut error = String::new();
    agent.wait_until(
        "the failure recorded in the outbox",
        Duration::from_secs(10),
        || {
            let outbox = agent.json("/api/v1/outbox");
            match outbox["pending"][0]["last_error"].as_str() {
                Some(e) => {
                    error = e.to_string();
                    true
                }
                None => false,
            }
        },
    );
    assert!(error.contains("HTTP 500") && error.len() < 400, "{error}");
    // The agent stopped reading after the excerpt and dropped the connection.
    agent.wait_until("the first connection over", Duration::from_secs(10), || {
        !server.endless_connections().is_empty()
    });
    for written in server.endless_connections() {
        assert!(
            written < SOCKET_SLACK,
            "{written} bytes written before the agent let go"
        );
    }
}
