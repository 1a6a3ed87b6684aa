//! Who may talk to the agent, through the real binary: `lookout check` refuses a listen
//! address beyond loopback without a token, and a running agent asks for the read token on
//! every GET but the probes and for the API token on every POST.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use lookout_tests::{Agent, TempDir, lookout};

/// `lookout check -c file`: exit code and standard error.
fn check(file: &Path) -> (Option<i32>, String) {
    let out = lookout()
        .arg("check")
        .arg("-c")
        .arg(file)
        .output()
        .expect("run lookout check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_refuses_a_listen_address_beyond_loopback_without_a_token_naming_both_keys() {
    let dir = TempDir::new("access-check");
    // (file content, the problem line after the file name; None: valid)
    let cases: &[(&str, Option<&str>)] = &[
        (
            "agent:\n  listen: 0.0.0.0:9469\n",
            Some(
                ":2:11: agent.listen: 0.0.0.0:9469 is not a loopback address: set agent.api_token_file so that POST requests need a token, or agent.allow_unauthenticated: true",
            ),
        ),
        (
            "# every address\nagent:\n  hostname: web-1\n  listen: '[::]:9469'\n  read_token_file: /etc/lookout/read-token\n",
            Some(
                ":4:11: agent.listen: [::]:9469 is not a loopback address: set agent.api_token_file",
            ),
        ),
        (
            "agent:\n  listen: 0.0.0.0:9469\n  api_token_file: /etc/lookout/api-token\n",
            None,
        ),
        (
            "agent:\n  listen: 0.0.0.0:9469\n  allow_unauthenticated: true\n",
            None,
        ),
        ("agent:\n  listen: 127.0.0.1:9469\n", None),
        ("agent:\n  listen: '[::1]:9469'\n", None),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case-{i}.yaml"));
        std::fs::write(&file, text).unwrap();
        let (code, stderr) = check(&file);
        match expected {
            Some(problem) => {
                assert_eq!(code, Some(1), "{text}\n{stderr}");
                let line = format!("{}{problem}", file.display());
                assert!(
                    stderr.contains(&line),
                    "{text}: expected {line:?} in:\n{stderr}"
                );
                assert!(stderr.contains("agent.allow_unauthenticated"), "{stderr}");
                assert_eq!(
                    stderr.matches(&file.display().to_string()).count(),
                    1,
                    "one problem only:\n{stderr}"
                );
            }
            None => assert_eq!(code, Some(0), "{text}\n{stderr}"),
        }
    }
}

/// One HTTP/1.1 request: status, the head (lower-cased header names) and the body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n{auth}\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn reads_need_the_read_token_writes_the_api_token_and_the_probes_stay_open() {
    let dir = TempDir::new("access-tokens");
    let read_file = dir.path().join("read-token");
    let api_file = dir.path().join("api-token");
    std::fs::write(&read_file, "read-s3cret\n").unwrap();
    std::fs::write(&api_file, "api-s3cret\n").unwrap();
    let agent = Agent::start_in(
        dir,
        &[],
        &format!(
            "  read_token_file: {}\n  api_token_file: {}\ncollect:\n  host: {{interval: 1s}}\n  tcp: {{interval: 1s}}\n",
            read_file.display(),
            api_file.display()
        ),
    );
    let addr = agent.addr;

    // The probes answer anyone (start_in waited for /readyz without a token).
    for path in ["/healthz", "/readyz"] {
        let (status, _, body) = request(addr, "GET", path, None);
        assert_eq!(status, 200, "{path}: {body}");
    }

    // /metrics: without, with a wrong, with the read token, with the API token.
    let (status, head, body) = request(addr, "GET", "/metrics", None);
    assert_eq!(status, 401, "{body}");
    assert!(head.contains("\r\nwww-authenticate: bearer"), "{head}");
    let error: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("missing bearer token"),
        "{body}"
    );
    let (status, head, body) = request(addr, "GET", "/metrics", Some("read-s3cre"));
    assert_eq!(status, 401, "{body}");
    assert!(head.contains("\r\nwww-authenticate: bearer"), "{head}");
    assert!(body.contains("wrong bearer token"), "{body}");
    let (status, _, body) = request(addr, "GET", "/metrics", Some("read-s3cret"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("lookout_build_info{host=\"test-host\""),
        "{body}"
    );
    let (status, _, _) = request(addr, "GET", "/metrics", Some("api-s3cret"));
    assert_eq!(status, 200, "the API token reads too");

    // The JSON API and unknown paths are reads like /metrics: nothing shows without a token.
    for path in [
        "/api/v1/status",
        "/api/v1/alerts",
        "/api/v1/processes/top",
        "/nope",
    ] {
        let (status, _, body) = request(addr, "GET", path, None);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(!body.contains("test-host"), "{path}: {body}");
    }
    let (status, _, body) = request(addr, "GET", "/api/v1/status", Some("read-s3cret"));
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = request(
        addr,
        "GET",
        "/api/v1/processes/top?by=memory",
        Some("read-s3cret"),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"by\":\"memory\""), "{body}");

    // The console's files hold no data: they load without a token, so that the page can ask
    // for it; the live stream it reads is a read like any other.
    for path in ["/", "/console/console.js"] {
        let (status, _, body) = request(addr, "GET", path, None);
        assert_eq!(status, 200, "{path}");
        assert!(!body.contains("test-host"), "{path}: {body}");
    }
    let (status, _, body) = request(addr, "GET", "/api/v1/stream", None);
    assert_eq!(status, 401, "{body}");

    // Writes: the read token is not enough; the API token is.
    let (status, head, body) = request(addr, "POST", "/-/reload", Some("read-s3cret"));
    assert_eq!(status, 401, "{body}");
    assert!(head.contains("\r\nwww-authenticate: bearer"), "{head}");
    let (status, _, body) = request(addr, "POST", "/-/reload", None);
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = request(addr, "POST", "/-/reload", Some("api-s3cret"));
    assert_eq!(status, 200, "{body}");

    // A rotated read token applies to the next request, without a reload.
    std::fs::write(&read_file, "read-rotated\n").unwrap();
    let (status, _, _) = request(addr, "GET", "/metrics", Some("read-s3cret"));
    assert_eq!(status, 401, "the old read token is refused");
    let (status, _, _) = request(addr, "GET", "/metrics", Some("read-rotated"));
    assert_eq!(status, 200);

    // No token ever reaches the log.
    let log = agent.log();
    for secret in ["read-s3cret", "api-s3cret", "read-rotated", "read-s3cre"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[test]
fn without_a_read_token_reads_stay_open_and_writes_still_need_the_api_token() {
    let dir = TempDir::new("access-api-only");
    let api_file = dir.path().join("api-token");
    std::fs::write(&api_file, "api-s3cret\n").unwrap();
    let agent = Agent::start_in(
        dir,
        &[],
        &format!("  api_token_file: {}\n", api_file.display()),
    );
    let (status, _, body) = request(agent.addr, "GET", "/metrics", None);
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = request(agent.addr, "POST", "/api/v1/test-alert", None);
    assert_eq!(status, 401, "{body}");
    // With the token the drill is queued in the outbox (202).
    let (status, _, body) = request(agent.addr, "POST", "/api/v1/test-alert", Some("api-s3cret"));
    assert_eq!(status, 202, "{body}");
}
