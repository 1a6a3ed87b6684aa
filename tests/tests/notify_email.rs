//! The email receiver against a real SMTP server: aiosmtpd (Debian `python3-aiosmtpd`) on a
//! loopback port, run by a small controller script that writes every accepted mail to a
//! directory, so the test asserts on exactly what the server received. The script also
//! refuses two recipients, one with a 5xx and one with a 4xx reply, to check how failures
//! are classified.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lookout::notify::email::EmailReceiver;
use lookout::notify::email::{EmailConfig, SmtpTls};
use lookout::notify::{AlertPayload, Message, Receiver, SendError};
use lookout::rules::engine::Status;
use lookout::rules::model::Severity;
use lookout::rules::state::Kind;
use lookout_tests::{TempDir, free_port, python_with_aiosmtpd};

const SERVER: &str = r#"
import pathlib, sys, time
from aiosmtpd.controller import Controller

port, out = int(sys.argv[1]), pathlib.Path(sys.argv[2])

class Capture:
    count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        if address.startswith("later@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        Capture.count += 1
        n = Capture.count
        (out / f"{n}.envelope").write_text("\n".join([envelope.mail_from] + envelope.rcpt_tos))
        (out / f"{n}.tmp").write_bytes(envelope.original_content)
        (out / f"{n}.tmp").rename(out / f"{n}.eml")
        return "250 OK"

controller = Controller(Capture(), hostname="127.0.0.1", port=port)
controller.start()
(out / "ready").write_text("ok")
while True:
    time.sleep(3600)
"#;

/// aiosmtpd on a loopback port, killed on drop.
struct SmtpServer {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl SmtpServer {
    fn start() -> SmtpServer {
        let python = python_with_aiosmtpd();
        let dir = TempDir::new("smtp");
        let port = free_port();
        let child = Command::new(python)
            .args(["-c", SERVER, &port.to_string()])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let server = SmtpServer { child, port, dir };
        server.wait_for(&server.dir.path().join("ready"));
        server
    }

    fn wait_for(&self, file: &Path) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !file.exists() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not write {}",
                file.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `n`th mail received (1-based) and its envelope (sender, then recipients).
    fn mail(&self, n: usize) -> (String, Vec<String>) {
        let eml = self.dir.path().join(format!("{n}.eml"));
        self.wait_for(&eml);
        let text = std::fs::read_to_string(&eml).unwrap();
        let envelope = std::fs::read_to_string(self.dir.path().join(format!("{n}.envelope")))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        (text, envelope)
    }

    fn receiver(&self, to: &[&str]) -> EmailReceiver {
        EmailReceiver::new("oncall", &config(self.port, to)).unwrap()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local relay: no TLS, no authentication.
fn config(port: u16, to: &[&str]) -> EmailConfig {
    EmailConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "Lookout <lookout@example.com>".into(),
        to: to.iter().map(|t| t.to_string()).collect(),
        timeout: Duration::from_secs(10),
    }
}

fn cpu_alert() -> Message {
    Message {
        id: "01JCPU-web-1-42".into(),
        receiver: "oncall".into(),
        group_key: "{alertname=\"HostCpuHigh\"}".into(),
        created_ms: 1_700_000_000_000,
        alerts: vec![AlertPayload {
            alert: "HostCpuHigh".into(),
            status: Status::Firing,
            kind: Kind::Firing,
            severity: Severity::Critical,
            labels: [("host".to_string(), "web-1".to_string())].into(),
            annotations: [
                ("summary".to_string(), "CPU at 97% on web-1".to_string()),
                (
                    "description".to_string(),
                    "CPU usage <above> 90% & rising for 5m".to_string(),
                ),
            ]
            .into(),
            value: Some(0.97),
            starts_at: 1_700_000_000_000,
            ends_at: None,
            fingerprint: "0123456789abcdef".into(),
        }],
        folded: 0,
        test: false,
    }
}

/// The body of the `text/html` part, decoded when quoted-printable.
fn html_part(mail: &str) -> String {
    let mail = mail.replace("\r\n", "\n");
    let start = mail.find("Content-Type: text/html").expect("an HTML part");
    let part = &mail[start..];
    let (headers, body) = part.split_once("\n\n").expect("part headers end");
    let body = body.split("\n--").next().unwrap_or_default();
    if !headers.contains("quoted-printable") {
        return body.to_string();
    }
    // RFC 2045: `=` at a line end is a soft break, `=XX` a byte in hex.
    let joined = body.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_real_smtp_server_receives_text_and_html() {
    let server = SmtpServer::start();
    let receiver = server.receiver(&["ops@example.com", "On Call <oncall@example.com>"]);
    assert_eq!(receiver.kind(), "email");
    receiver.send(&cpu_alert()).await.unwrap();

    let (mail, envelope) = server.mail(1);
    assert_eq!(
        envelope,
        [
            "lookout@example.com",
            "ops@example.com",
            "oncall@example.com"
        ]
    );
    // The mail as received: headers, then both alternatives.
    for want in [
        "Subject: [CRITICAL] HostCpuHigh on web-1",
        "From: Lookout <lookout@example.com>",
        "To: ops@example.com, \"On Call\" <oncall@example.com>",
        "Message-ID: <lookout.01JCPU-web-1-42@example.com>",
        "X-Lookout-Idempotency-Key: 01JCPU-web-1-42",
        "Content-Type: multipart/alternative",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Type: text/html; charset=utf-8",
        // plain text part
        "  Summary:     CPU at 97% on web-1",
        "  Description: CPU usage <above> 90% & rising for 5m",
        "  Value:       0.97",
        "  Since:       2023-11-14T22:13:20.000Z",
    ] {
        assert!(mail.contains(want), "{want:?} not in:\n{mail}");
    }
    let plain = mail.find("text/plain").unwrap();
    let html = mail.find("text/html").unwrap();
    assert!(plain < html, "plain text first, HTML preferred last");
    // The HTML part, decoded from its transfer encoding: values are escaped.
    let html_part = html_part(&mail);
    for want in [
        "<h2>[CRITICAL] HostCpuHigh on web-1</h2>",
        "<td>CPU at 97% on web-1</td>",
        "<td>CPU usage &lt;above&gt; 90% &amp; rising for 5m</td>",
        "<td>host=web-1</td>",
    ] {
        assert!(html_part.contains(want), "{want:?} not in:\n{html_part}");
    }

    // A second message through the same (pooled) transport.
    let mut resolved = cpu_alert();
    resolved.id = "01JCPU-web-1-43".into();
    if let Some(a) = resolved.alerts.first_mut() {
        a.status = Status::Resolved;
        a.kind = Kind::Resolved;
        a.ends_at = Some(1_700_000_600_000);
    }
    receiver.send(&resolved).await.unwrap();
    let (mail, _) = server.mail(2);
    assert!(
        mail.contains("Subject: [RESOLVED] HostCpuHigh on web-1"),
        "{mail}"
    );
}

#[tokio::test]
async fn smtp_replies_are_classified() {
    let server = SmtpServer::start();
    // 550: the recipient does not exist; retrying cannot help.
    let err = server
        .receiver(&["nobody@example.com"])
        .send(&cpu_alert())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Permanent(m) if m.contains("550")),
        "{err:?}"
    );
    // 451: try again later.
    let err = server
        .receiver(&["later@example.com"])
        .send(&cpu_alert())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Retryable(m) if m.contains("451")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    // Nothing listens on a port that was just free.
    let receiver =
        EmailReceiver::new("oncall", &config(free_port(), &["ops@example.com"])).unwrap();
    let err = receiver.send(&cpu_alert()).await.unwrap_err();
    assert!(matches!(err, SendError::Retryable(_)), "{err:?}");
}
