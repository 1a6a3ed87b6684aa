//! The webhook receiver against a real, separate HTTP server (Python's `http.server`): the body
//! is Alertmanager webhook v4 JSON, `Idempotency-Key` is the message id, and Python's own
//! `hmac` module verifies `X-Lookout-Signature` over the bytes it received.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lookout::notify::webhook::WebhookReceiver;
use lookout::notify::webhook::{WebhookConfig, WebhookFormat};
use lookout::notify::{AlertPayload, Message, Receiver, Secret, SendError, fingerprint};
use lookout::rules::engine::Status;
use lookout::rules::model::Severity;
use lookout::rules::state::Kind;
use lookout_tests::{TempDir, require};

const SECRET: &str = "t0p-s3cret-key";

/// Records every request as `req-N.json` (path, lower-cased headers, body, and whether the
/// signature matched an HMAC computed here), then answers 200, or NNN for `/status/NNN`.
const SERVER: &str = r#"
import hashlib, hmac, http.server, json, os, sys
secret = os.environ["HOOK_SECRET"].encode()
out = sys.argv[1]
count = [0]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        got = self.headers.get("X-Lookout-Signature", "")
        count[0] += 1
        record = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8"),
            "signature_ok": hmac.compare_digest(got, want),
        }
        tmp = os.path.join(out, "tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(out, "req-%d.json" % count[0]))
        status = int(self.path.rsplit("/", 1)[1]) if self.path.startswith("/status/") else 200
        reply = b"busy, try later" if status != 200 else b"ok"
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// The Python server, killed on drop.
struct PyServer {
    child: Child,
    port: u16,
}

impl PyServer {
    fn start(out: &Path) -> PyServer {
        let python = require("python3", "python3");
        let mut child = Command::new(python)
            .arg("-c")
            .arg(SERVER)
            .arg(out)
            .env("HOOK_SECRET", SECRET)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn python3");
        // The server prints its port once it listens.
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("python server did not print a port: {line:?}")
        });
        PyServer { child, port }
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alert(name: &str, status: Status, severity: Severity) -> AlertPayload {
    let labels = BTreeMap::from([
        ("host".to_string(), "web-1".to_string()),
        ("cpu".to_string(), "total".to_string()),
    ]);
    AlertPayload {
        alert: name.into(),
        status,
        kind: Kind::Firing,
        severity,
        fingerprint: fingerprint(name, &labels),
        labels,
        annotations: BTreeMap::from([("summary".to_string(), "CPU at 97%".to_string())]),
        value: Some(97.0),
        starts_at: 1_700_000_000_000,
        ends_at: (status == Status::Resolved).then_some(1_700_000_300_000),
    }
}

fn record(dir: &Path, n: usize) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(format!("req-{n}.json"))).expect("request record");
    serde_json::from_str(&text).expect("record json")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn webhook_delivery_is_v4_signed_and_idempotent() {
    // No rustls provider installed here on purpose: `WebhookReceiver::new` installs ring when
    // none is (the agent's `main` installs it first thing).
    let dir = TempDir::new("webhook");
    let server = PyServer::start(dir.path());
    let cfg = WebhookConfig {
        url: format!("http://127.0.0.1:{}/hook", server.port),
        format: WebhookFormat::Alertmanager,
        secret: Some(Secret::new(SECRET)),
        headers: vec![("Authorization".into(), Secret::new("Bearer abc"))],
        timeout: Duration::from_secs(5),
        body_template: None,
        content_type: None,
    };
    let receiver = WebhookReceiver::new("ops-hook", &cfg).expect("receiver");
    let message = Message {
        id: "01JTESTMESSAGEID-7".into(),
        receiver: "ops-hook".into(),
        group_key: "{}:{alertname=\"HostCpuHigh\"}".into(),
        created_ms: 1_700_000_001_000,
        alerts: vec![
            alert("HostCpuHigh", Status::Firing, Severity::Critical),
            alert("HostCpuHigh", Status::Resolved, Severity::Warning),
        ],
        folded: 0,
        test: false,
    };
    let rt = runtime();
    rt.block_on(receiver.send(&message)).expect("delivered");

    let rec = record(dir.path(), 1);
    assert_eq!(rec["path"], "/hook");
    assert_eq!(rec["signature_ok"], true, "python's hmac disagrees: {rec}");
    let h = &rec["headers"];
    assert_eq!(h["idempotency-key"], message.id.as_str());
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["authorization"], "Bearer abc");
    assert!(
        h["user-agent"]
            .as_str()
            .is_some_and(|ua| ua.starts_with("lookout/")),
        "{h}"
    );

    let body: serde_json::Value =
        serde_json::from_str(rec["body"].as_str().expect("body")).expect("body json");
    assert_eq!(body["version"], "4");
    assert_eq!(body["groupKey"], message.group_key.as_str());
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "ops-hook");
    assert_eq!(body["truncatedAlerts"], 0);
    assert_eq!(body["externalURL"], "");
    assert_eq!(body["groupLabels"]["alertname"], "HostCpuHigh");
    assert_eq!(body["commonLabels"]["host"], "web-1");
    assert_eq!(body["commonAnnotations"]["summary"], "CPU at 97%");
    let alerts = body["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["labels"]["alertname"], "HostCpuHigh");
    assert_eq!(alerts[0]["labels"]["severity"], "critical");
    assert_eq!(alerts[0]["startsAt"], "2023-11-14T22:13:20.000Z");
    assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        alerts[0]["fingerprint"],
        message.alerts[0].fingerprint.as_str()
    );
    assert_eq!(alerts[1]["status"], "resolved");
    assert_eq!(alerts[1]["endsAt"], "2023-11-14T22:18:20.000Z");

    // The same message again (a retry) carries the same key and the same signed bytes.
    rt.block_on(receiver.send(&message))
        .expect("delivered again");
    let again = record(dir.path(), 2);
    assert_eq!(again["headers"]["idempotency-key"], message.id.as_str());
    assert_eq!(again["body"], rec["body"]);
    assert_eq!(again["signature_ok"], true);

    // A 503 from the real server is retryable and quotes its body.
    let busy = WebhookReceiver::new(
        "ops-hook",
        &WebhookConfig {
            url: format!("http://127.0.0.1:{}/status/503", server.port),
            ..cfg
        },
    )
    .expect("receiver");
    match rt.block_on(busy.send(&message)) {
        Err(SendError::Retryable(text)) => {
            assert!(
                text.contains("503") && text.contains("busy, try later"),
                "{text}"
            )
        }
        other => panic!("expected retryable, got {other:?}"),
    }
}
