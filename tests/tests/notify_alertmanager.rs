//! The Alertmanager receiver against a real Alertmanager (Debian `prometheus-alertmanager`,
//! clustering disabled): a firing message shows up as an active alert with our labels, and the
//! resolved message takes it out of the active list.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lookout::notify::alertmanager::AlertmanagerConfig;
use lookout::notify::alertmanager::AlertmanagerReceiver;
use lookout::notify::{AlertPayload, Message, Receiver, fingerprint};
use lookout::rules::engine::Status;
use lookout::rules::model::Severity;
use lookout::rules::state::Kind;
use lookout_tests::{TempDir, free_port, http, require};

const CONFIG: &str = "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n";

/// A running Alertmanager, killed on drop.
struct Alertmanager {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Alertmanager {
    fn start() -> Alertmanager {
        let bin = require("prometheus-alertmanager", "prometheus-alertmanager");
        let dir = TempDir::new("alertmanager");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, CONFIG).expect("write config");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("am.log")).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn alertmanager");
        let am = Alertmanager {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        am.wait_until(Duration::from_secs(30), "ready", || {
            matches!(http(am.addr, "GET", "/-/ready", &[], ""), Ok((200, _))).then_some(())
        });
        am
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("am.log")).unwrap_or_default()
    }

    /// Alerts Alertmanager lists as active.
    fn active_alerts(&self) -> Vec<serde_json::Value> {
        let (status, body) = http(self.addr, "GET", "/api/v2/alerts?active=true", &[], "")
            .unwrap_or_else(|e| panic!("GET alerts: {e}\n{}", self.log()));
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("alerts json");
        v.as_array()
            .expect("array")
            .iter()
            .filter(|a| a["status"]["state"] == "active")
            .cloned()
            .collect()
    }

    fn wait_until<T>(&self, limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager: {what} not within {limit:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn message(id: &str, alert: AlertPayload) -> Message {
    Message {
        id: id.into(),
        receiver: "am".into(),
        group_key: "{}:{alertname=\"LookoutItAlert\"}".into(),
        created_ms: now_ms(),
        alerts: vec![alert],
        folded: 0,
        test: false,
    }
}

/// A receiver posting to `urls`, and a runtime to drive it.
fn receiver(urls: Vec<String>) -> (AlertmanagerReceiver, tokio::runtime::Runtime) {
    let receiver = AlertmanagerReceiver::new(
        "am",
        &AlertmanagerConfig {
            urls,
            timeout: Duration::from_secs(5),
            resend_interval: Duration::from_secs(60),
        },
    )
    .expect("receiver");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    (receiver, rt)
}

fn ours(alert: &serde_json::Value, name: &str) -> bool {
    let l = &alert["labels"];
    l["alertname"] == name && l["host"] == "it-host-1" && l["severity"] == "critical"
}

#[test]
fn alertmanager_receives_and_resolves() {
    let am = Alertmanager::start();
    let (receiver, rt) = receiver(vec![format!("http://{}", am.addr)]);

    let name = format!("LookoutItAlert{}", std::process::id());
    let labels = BTreeMap::from([
        ("host".to_string(), "it-host-1".to_string()),
        ("mountpoint".to_string(), "/".to_string()),
    ]);
    let started = now_ms() - 60_000;
    let mut alert = AlertPayload {
        alert: name.clone(),
        status: Status::Firing,
        kind: Kind::Firing,
        severity: Severity::Critical,
        fingerprint: fingerprint(&name, &labels),
        labels,
        annotations: BTreeMap::from([("summary".to_string(), "disk almost full".to_string())]),
        value: Some(97.0),
        starts_at: started,
        ends_at: None,
    };

    rt.block_on(receiver.send(&message("m-1", alert.clone())))
        .expect("firing accepted");
    let listed = am.wait_until(Duration::from_secs(20), "firing alert listed", || {
        am.active_alerts().into_iter().find(|a| ours(a, &name))
    });
    assert_eq!(listed["labels"]["mountpoint"], "/");
    assert_eq!(listed["annotations"]["summary"], "disk almost full");
    assert_eq!(listed["status"]["state"], "active");

    alert.status = Status::Resolved;
    alert.kind = Kind::Resolved;
    alert.ends_at = Some(now_ms());
    rt.block_on(receiver.send(&message("m-2", alert)))
        .expect("resolved accepted");
    am.wait_until(Duration::from_secs(20), "resolved alert gone", || {
        (!am.active_alerts().iter().any(|a| ours(a, &name))).then_some(())
    });
}

/// A cluster with one dead member: the live member gets the alert and the send counts as
/// delivered (a dead member must not stop delivery). Escalating to critical leaves only the
/// critical alert active: the warning one is resolved, not left to expire.
#[test]
fn a_dead_member_does_not_stop_delivery_and_escalation_clears_the_warning() {
    let am = Alertmanager::start();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (receiver, rt) = receiver(vec![dead, format!("http://{}", am.addr)]);
    let name = format!("LookoutItEscalation{}", std::process::id());
    let labels = BTreeMap::from([("host".to_string(), "it-host-2".to_string())]);
    let mut alert = AlertPayload {
        alert: name.clone(),
        status: Status::Firing,
        kind: Kind::Firing,
        severity: Severity::Warning,
        fingerprint: fingerprint(&name, &labels),
        labels,
        annotations: BTreeMap::new(),
        value: Some(75.0),
        starts_at: now_ms() - 60_000,
        ends_at: None,
    };
    let severities = |am: &Alertmanager| -> Vec<String> {
        let mut s: Vec<String> = am
            .active_alerts()
            .iter()
            .filter(|a| a["labels"]["alertname"] == name.as_str())
            .map(|a| a["labels"]["severity"].as_str().unwrap_or("?").to_string())
            .collect();
        s.sort();
        s
    };

    rt.block_on(receiver.send(&message("e-1", alert.clone())))
        .expect("delivered through the live member");
    am.wait_until(Duration::from_secs(20), "warning listed", || {
        (severities(&am) == ["warning"]).then_some(())
    });

    alert.kind = Kind::Escalated;
    alert.severity = Severity::Critical;
    alert.value = Some(95.0);
    rt.block_on(receiver.send(&message("e-2", alert)))
        .expect("escalation delivered");
    am.wait_until(
        Duration::from_secs(20),
        "only the critical alert active",
        || (severities(&am) == ["critical"]).then_some(()),
    );
}
