//! The fleet example (`packaging/fleet/run.sh`, docs/fleet.md) with 3 agents, so that it
//! keeps working: 3 lookout agents post an always-firing alert to both members of a real
//! Alertmanager cluster (Debian `prometheus-alertmanager`), which must deliver each host's
//! alert to the webhook receiver exactly once, while a real Prometheus scrapes the agents and
//! evaluates their exported rules. The script does the checks and exits non-zero on any
//! failure; this test runs it on the binary under test and reads its summary table.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lookout_tests::{lookout_bin, require};

const AGENTS: usize = 3;
/// The script needs about 45 s; this only bounds a hang (its own waits add up to less).
const LIMIT: Duration = Duration::from_secs(240);
/// How long the script waits for the alerts to arrive (they take about 5 s once the cluster
/// is ready; its default, 120 s, is for big fleets).
const ALERT_DEADLINE_SECONDS: &str = "45";

/// The script, stopped on drop: SIGTERM (its trap stops everything it started), then SIGKILL
/// to its process group for anything left.
struct Script(Child);

impl Drop for Script {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

fn read_all(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// `host -> alerts received` from the script's summary table (`fleet-01      1  am-2`).
fn table(stdout: &str) -> BTreeMap<String, u64> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let host = words.next()?;
            let count = words.next()?.parse().ok()?;
            host.starts_with("fleet-")
                .then(|| (host.to_string(), count))
        })
        .collect()
}

#[test]
fn every_host_alert_reaches_the_receiver_exactly_once_through_the_alertmanager_cluster() {
    // The script checks these too (exit 2 with the install hint); failing here says it first.
    for (program, package) in [
        ("prometheus", "prometheus"),
        ("promtool", "prometheus"),
        ("prometheus-alertmanager", "prometheus-alertmanager"),
        ("amtool", "prometheus-alertmanager"),
        ("python3", "python3"),
        ("curl", "curl"),
        ("bash", "bash"),
    ] {
        require(program, package);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/fleet/run.sh");
    let mut child = Command::new("bash")
        .arg(&script)
        .arg(AGENTS.to_string())
        .env("LOOKOUT_BIN", lookout_bin())
        .env("FLEET_DEADLINE", ALERT_DEADLINE_SECONDS)
        .env_remove("FLEET_N")
        .env_remove("FLEET_KEEP")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", script.display()));
    let stdout = read_all(child.stdout.take().expect("stdout"));
    let stderr = read_all(child.stderr.take().expect("stderr"));
    let mut script_run = Script(child);

    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = script_run.0.try_wait().expect("wait for run.sh") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(script_run); // on a timeout: stops the script and everything it started
    let (stdout, stderr) = (
        stdout.join().expect("stdout"),
        stderr.join().expect("stderr"),
    );
    eprintln!("{stdout}{stderr}");
    let status = status.unwrap_or_else(|| panic!("run.sh did not finish within {LIMIT:?}"));
    assert!(
        status.success(),
        "run.sh failed ({status}):\n{stdout}\n{stderr}"
    );

    let expected: BTreeMap<String, u64> =
        (1..=AGENTS).map(|i| (format!("fleet-{i:02}"), 1)).collect();
    assert_eq!(table(&stdout), expected, "summary table:\n{stdout}");
    assert!(
        stdout.contains(&format!(
            "totals: agents {AGENTS}, alerts received {AGENTS}, duplicates 0, missing 0, unexpected hosts 0"
        )),
        "totals:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "Prometheus scrapes all {AGENTS} agents and evaluates the exported rules"
        )),
        "{stdout}"
    );
}
