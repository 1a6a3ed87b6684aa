//! HTTPS (`agent.tls`) through the real binary: certificates made by the `openssl` command
//! (Debian's `openssl`, a test peer; nothing links OpenSSL), a `curl` that trusts only the
//! certificate under test, rotation by reload, and a broken new pair rejected while the old
//! one keeps serving. `lookout check` reports each problem of a pair at its key.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use lookout_tests::{TempDir, free_port, http, lookout, require};

/// Makes a self-signed certificate for 127.0.0.1 and its key: `<name>.crt`, `<name>.key`.
fn make_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let openssl = require("openssl", "openssl");
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=lookout test {name}"),
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// `curl` over HTTPS to the agent, trusting `ca` only: its output and exit status.
fn curl(port: u16, ca: &Path, method: &str, path: &str, token: Option<&str>) -> Output {
    let mut cmd = Command::new(require("curl", "curl"));
    cmd.args(["--silent", "--show-error", "--max-time", "10"])
        .arg("--cacert")
        .arg(ca)
        .args(["--request", method])
        .args(["--write-out", "\n%{http_code}"]);
    if let Some(token) = token {
        cmd.args(["--header", &format!("Authorization: Bearer {token}")]);
    }
    cmd.arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl")
}

/// Status and body of a `curl` that completed; fails the test otherwise.
fn answer(out: &Output) -> (u16, String) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl failed ({}): {}{text}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, code) = text.rsplit_once('\n').expect("the status line");
    (code.trim().parse().expect("a status"), body.to_string())
}

/// The agent on HTTPS, killed on drop.
struct HttpsAgent {
    child: Child,
    dir: TempDir,
}

impl HttpsAgent {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Polls until `ok` holds, for up to 15 s.
    fn wait_until(&self, what: &str, ok: impl FnMut() -> bool) {
        lookout_tests::poll_until(what, Duration::from_secs(15), ok, || self.log());
    }
}

impl Drop for HttpsAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_serves_the_pair_a_reload_rotates_it_and_a_broken_pair_changes_nothing() {
    let dir = TempDir::new("https");
    let (a_cert, a_key) = make_pair(dir.path(), "a");
    let (b_cert, b_key) = make_pair(dir.path(), "b");
    let (c_cert, _) = make_pair(dir.path(), "c");
    // The files the configuration names (relative to it), replaced to rotate.
    let (served_cert, served_key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(&a_cert, &served_cert).unwrap();
    std::fs::copy(&a_key, &served_key).unwrap();
    let token = dir.path().join("api-token");
    std::fs::write(&token, "api-s3cret\n").unwrap();
    let port = free_port();
    let config = dir.path().join("lookout.yaml");
    std::fs::write(
        &config,
        format!(
            "agent:\n  hostname: test-host\n  listen: 127.0.0.1:{port}\n  data_dir: {}\n  api_token_file: {}\n  tls: {{cert_file: tls.crt, key_file: tls.key}}\n",
            dir.path().join("data").display(),
            token.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let child = lookout()
        .arg("run")
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn lookout");
    let agent = HttpsAgent { child, dir };
    agent.wait_until("ready over HTTPS with certificate a", || {
        let out = curl(port, &a_cert, "GET", "/readyz", None);
        out.status.success() && answer(&out).0 == 200
    });

    // HTTPS only: a plain HTTP request gets no HTTP answer.
    let plain = http(([127, 0, 0, 1], port).into(), "GET", "/healthz", &[], "");
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    // The certificate is a's: a client that trusts only b refuses it (curl: 60, peer
    // certificate cannot be authenticated).
    let (status, body) = answer(&curl(port, &a_cert, "GET", "/metrics", None));
    assert_eq!(status, 200);
    assert!(
        body.contains("lookout_build_info{host=\"test-host\""),
        "{body}"
    );
    assert_eq!(
        curl(port, &b_cert, "GET", "/metrics", None).status.code(),
        Some(60)
    );

    // Rotation: the files now hold b; SIGHUP re-reads them.
    std::fs::copy(&b_key, &served_key).unwrap();
    std::fs::copy(&b_cert, &served_cert).unwrap();
    agent.signal("HUP");
    agent.wait_until("certificate b served after SIGHUP", || {
        curl(port, &b_cert, "GET", "/healthz", None)
            .status
            .success()
    });
    assert_eq!(
        curl(port, &a_cert, "GET", "/healthz", None).status.code(),
        Some(60)
    );

    // A broken pair (c's certificate, b's key): the reload is refused with the problem at
    // key_file, and b keeps serving.
    std::fs::copy(&c_cert, &served_cert).unwrap();
    let (status, body) = answer(&curl(
        port,
        &b_cert,
        "POST",
        "/-/reload",
        Some("api-s3cret"),
    ));
    assert_eq!(status, 422, "{body}");
    let refusal: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let problems = refusal["problems"].to_string();
    assert!(
        problems.contains("agent.tls.key_file") && problems.contains("does not belong"),
        "{body}"
    );
    let (status, _) = answer(&curl(port, &b_cert, "GET", "/metrics", None));
    assert_eq!(status, 200, "the running pair keeps serving");
    assert_eq!(
        curl(port, &c_cert, "GET", "/metrics", None).status.code(),
        Some(60)
    );
    // SIGHUP with the same broken pair: rejected and logged, b still served.
    agent.signal("HUP");
    agent.wait_until("the second rejection logged", || {
        agent.log().matches("reload rejected").count() >= 2
    });
    assert!(
        curl(port, &b_cert, "GET", "/healthz", None)
            .status
            .success()
    );

    // The POST above needed the token over HTTPS too.
    let (status, _) = answer(&curl(port, &b_cert, "POST", "/-/reload", None));
    assert_eq!(status, 401);
}

#[test]
fn check_reports_each_problem_of_a_pair_at_its_key() {
    let dir = TempDir::new("https-check");
    let (a_cert, a_key) = make_pair(dir.path(), "a");
    let (_, b_key) = make_pair(dir.path(), "b");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    // (the agent section's tls lines, the expected problem after the file name)
    let cases: Vec<(String, String)> = vec![
        (
            format!(
                "  tls:\n    cert_file: {}\n    key_file: {}\n",
                a_cert.display(),
                b_key.display()
            ),
            format!(
                ":4:15: agent.tls.key_file: the private key in {} does not belong to the first certificate of {}",
                b_key.display(),
                a_cert.display()
            ),
        ),
        (
            format!("  tls:\n    cert_file: {}\n", a_cert.display()),
            ":3:16: agent.tls: `cert_file` is set but `key_file` is not".to_string(),
        ),
        (
            format!("  tls:\n    key_file: {}\n", a_key.display()),
            ":3:15: agent.tls: `key_file` is set but `cert_file` is not".to_string(),
        ),
        (
            format!(
                "  tls:\n    cert_file: junk.pem\n    key_file: {}\n",
                a_key.display()
            ),
            format!(
                ":3:16: agent.tls.cert_file: {} holds no PEM certificate",
                junk.display()
            ),
        ),
        (
            format!(
                "  tls:\n    cert_file: {}\n    key_file: missing.key\n",
                a_cert.display()
            ),
            format!(
                ":4:15: agent.tls.key_file: cannot read {}",
                dir.path().join("missing.key").display()
            ),
        ),
    ];
    for (i, (tls, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case-{i}.yaml"));
        std::fs::write(&file, format!("agent:\n{tls}")).unwrap();
        let out = lookout()
            .arg("check")
            .arg("-c")
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{tls}\n{stderr}");
        let line = format!("{}{expected}", file.display());
        assert!(stderr.contains(&line), "expected {line:?} in:\n{stderr}");
    }
    // The pair that belongs together passes.
    let file = dir.path().join("good.yaml");
    std::fs::write(
        &file,
        format!(
            "agent:\n  tls: {{cert_file: {}, key_file: {}}}\n",
            a_cert.display(),
            a_key.display()
        ),
    )
    .unwrap();
    let out = lookout()
        .arg("check")
        .arg("-c")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
