//! Faults, through the real binary: a full `data_dir`, a read-only one, corrupt state and
//! outbox files, a wall clock stepped forwards and backwards, a storm of SIGHUPs, and the
//! heartbeat while `data_dir` is full. In each, the agent stays up, `/metrics` keeps
//! answering, the fault is reported (`/readyz`, metrics, log, the heartbeat's failure URL),
//! and nothing that fired is lost once the fault goes away.
//!
//! The `data_dir` faults use a small tmpfs mounted for the test (`mount -t tmpfs`), so these
//! tests must run as root (they do in CI and in `scripts/test.sh`'s usual setting); as another
//! user they fail saying so. The clock test runs the agent under libfaketime (Debian package
//! `faketime`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lookout_tests::{Agent, TempDir, free_port, http, http_receiver, received, value};

/// The default `collect.host.exclude_fstypes` without `tmpfs`, so the test's tmpfs is
/// reported.
const FSTYPES: &str = "[autofs, binfmt_misc, bpf, cgroup, cgroup2, configfs, debugfs, devpts, devtmpfs, efivarfs, fusectl, fuse.lxcfs, hugetlbfs, iso9660, mqueue, nsfs, overlay, proc, procfs, pstore, ramfs, rpc_pipefs, securityfs, selinuxfs, squashfs, erofs, sysfs, tracefs, nfsd]";

/// An always-firing rule, evaluated every second.
const LOAD_SEEN: &str = "groups:\n  - name: t\n    interval: 1s\n    rules:\n      - alert: LoadSeen\n        expr: lookout_load1\n        warning: \">= 0\"\n";

/// Fails the test unless it runs as root (mounting a tmpfs needs it).
fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "this test mounts a tmpfs for the agent's data_dir and must run as root (uid {uid:?}); \
         run it as root, as CI does: sudo -E cargo test -p lookout-tests --test faults"
    );
}

/// Runs `mount` with `args`; `Err` with what it printed when it fails.
fn mount(args: &[&str]) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .output()
        .map_err(|e| format!("mount {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A tmpfs mounted on a scratch directory, unmounted on drop.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        require_root();
        let dir = TempDir::new("tmpfs");
        let point = dir.path().to_str().expect("UTF-8 path").to_string();
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            &point,
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts it with `options` (`ro`, `rw`). The kernel refuses `ro` while a file on it is
    /// open for writing; this tries again for up to 10 s and fails the test, with `why`,
    /// if it never succeeds.
    fn remount(&self, options: &str, why: &str) {
        let point = self.path().to_str().expect("UTF-8 path");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match mount(&["-o", &format!("remount,{options}"), point]) {
                Ok(()) => return,
                Err(e) => assert!(Instant::now() < deadline, "{why}: {e}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let point = self.path().to_string_lossy().into_owned();
        if Command::new("umount")
            .arg(&point)
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
        // Something still holds it (a test that failed half-way): detach it anyway.
        let _ = Command::new("umount").args(["-l", &point]).status();
    }
}

/// Writes a file at `path` until the filesystem has not one byte left; returns its size.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let mut written = 0u64;
    for chunk in [64 * 1024, 1] {
        let bytes = vec![0xa5u8; chunk];
        loop {
            match file.write(&bytes) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    file.sync_all().expect("fsync the filler");
    written
}

/// The configuration text of an agent listening on `port` with `data_dir`, followed by
/// `rest`.
fn config(port: u16, data_dir: &Path, rest: &str) -> String {
    format!(
        "agent:\n  hostname: test-host\n  listen: 127.0.0.1:{port}\n  data_dir: {}\n{rest}",
        data_dir.display()
    )
}

/// `collect`, `rules` and `notify` sections: host collectors every second (with `extra`
/// keys), the rules in `rules.yaml`, and one webhook receiver on `hook_port`.
fn sections(hook_port: u16, host_extra: &str, notify_extra: &str) -> String {
    format!(
        "collect:\n  host:\n    interval: 1s\n    timeout: 1s\n{host_extra}  tcp:\n    enabled: false\n\
         rules:\n  files: [rules.yaml]\n  evaluation_interval: 1s\n\
         notify:\n  group_wait: 0s\n  retry: {{initial: 1s, max: 2s, jitter: false}}\n{notify_extra}\
         \x20 receivers:\n    - name: hook\n      webhook:\n        url: http://127.0.0.1:{hook_port}/hook\n        timeout: 2s\n"
    )
}

/// Starts `lookout run` in `dir` on `config_text` (written to `dir/lookout.yaml`) with
/// `files` beside it and `env` set, and waits until it answers `/healthz` (not `/readyz`:
/// some of these agents are meant to start degraded).
fn start(
    dir: TempDir,
    port: u16,
    config_text: &str,
    files: &[(&str, &str)],
    env: &[(&str, &str)],
) -> Agent {
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).expect("write a file of the agent");
    }
    let config_path = dir.path().join("lookout.yaml");
    std::fs::write(&config_path, config_text).expect("write config");
    let child = spawn(&config_path, dir.path(), env);
    let mut agent = Agent {
        child,
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        dir,
        config_path,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http(agent.addr, "GET", "/healthz", &[], "").is_ok_and(|(s, _)| s == 200) {
        assert_alive(&mut agent);
        assert!(
            Instant::now() < deadline,
            "the agent does not answer /healthz within 30 s; log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    agent
}

fn spawn(config_path: &Path, dir: &Path, env: &[(&str, &str)]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))
        .expect("log file");
    lookout_tests::lookout()
        .arg("run")
        .arg("-c")
        .arg(config_path)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn lookout")
}

/// `/readyz`: its status and JSON answer.
fn readyz(agent: &Agent) -> (u16, serde_json::Value) {
    let (status, body) = agent.get("/readyz");
    let doc = serde_json::from_str(&body).unwrap_or_else(|e| panic!("/readyz: {e}: {body}"));
    (status, doc)
}

/// The degraded reasons `/readyz` gives now (empty unless it answers 503 `degraded`).
fn degraded_reasons(agent: &Agent) -> Vec<String> {
    match readyz(agent) {
        (503, doc) if doc["status"] == "degraded" => doc["reasons"]
            .as_array()
            .unwrap_or_else(|| panic!("reasons: {doc}"))
            .iter()
            .map(|r| r.as_str().expect("a reason is a string").to_string())
            .collect(),
        _ => Vec::new(),
    }
}

fn metric(agent: &Agent, name: &str) -> Option<f64> {
    value(&agent.metrics(), name, &[])
}

/// Every (alertname, status) the webhook receiver got, in the order received.
fn events(out: &Path) -> Vec<(String, String)> {
    let mut events = Vec::new();
    for request in received(out) {
        let body: serde_json::Value =
            serde_json::from_str(request["body"].as_str().expect("body")).expect("JSON body");
        for alert in body["alerts"].as_array().expect("alerts") {
            events.push((
                alert["labels"]["alertname"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                alert["status"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    events
}

fn event(alert: &str, status: &str) -> (String, String) {
    (alert.to_string(), status.to_string())
}

/// Asserts the agent process is still running.
fn assert_alive(agent: &mut Agent) {
    let status = agent.child.try_wait().expect("try_wait");
    assert!(
        status.is_none(),
        "the agent exited ({status:?}):\n{}",
        agent.log()
    );
}

/// Waits until `lookout_outbox_pending` is `n` (delivery metrics are exported at each
/// evaluation, so they show a change at the next one); returns the exposition then.
fn wait_for_pending(agent: &Agent, n: f64) -> Vec<lookout_tests::MetricSample> {
    agent.wait_for(Duration::from_secs(10), |m| {
        (value(m, "lookout_outbox_pending", &[]) == Some(n)).then(|| m.to_vec())
    })
}

/// Waits until nothing is pending in the outbox (`lookout_outbox_pending` 0: every message
/// written and sent has its outcome recorded, so every send there was is in the receiver's
/// record).
fn wait_for_nothing_pending(agent: &Agent) {
    agent.wait_for(Duration::from_secs(30), |m| {
        (value(m, "lookout_outbox_pending", &[]) == Some(0.0)).then_some(())
    });
}

#[test]
fn a_full_data_dir_then_a_read_only_one_loses_nothing_that_fired() {
    let tmpfs = Tmpfs::mount("4m");
    let data = tmpfs.path().to_path_buf();
    let dir = TempDir::new("full");
    let out = dir.path().join("received.jsonl");
    let hook_port = free_port();
    let _receiver = http_receiver(hook_port, &out, "ok", None);
    // Fires when the data_dir is full, resolves when it is not.
    let rules = format!(
        "groups:\n  - name: t\n    interval: 1s\n    rules:\n      - alert: DataDirFull\n        expr: 'lookout_filesystem_usage_ratio{{mountpoint=\"{}\"}}'\n        warning: \">= 0.99\"\n",
        data.display()
    );
    let port = free_port();
    let text = config(
        port,
        &data,
        &sections(hook_port, &format!("    exclude_fstypes: {FSTYPES}\n"), ""),
    );
    let mut agent = start(dir, port, &text, &[("rules.yaml", &rules)], &[]);
    agent.wait_until("ready", Duration::from_secs(30), || readyz(&agent).0 == 200);

    // Full to the last byte: the rule fires, the outbox cannot write its notification.
    let filler = data.join("filler");
    let size = fill(&filler);
    assert!(size > 0);
    wait_held_and_unsaved(&agent, &["outbox.redb", "No space left on device"]);
    // Delivery metrics are exported at each evaluation: the next one shows what is held.
    let m = wait_for_pending(&agent, 1.0);
    assert!(value(&m, "lookout_outbox_write_errors_total", &[]).is_some_and(|n| n >= 1.0));
    assert_eq!(
        value(&m, "lookout_alert_firing", &[("alert", "DataDirFull")]),
        Some(1.0),
        "rules go on"
    );
    let log = agent.log();
    assert!(
        log.contains("cannot write to the outbox; notifications kept in memory until it can"),
        "{log}"
    );
    assert!(log.contains("cannot save alert states"), "{log}");
    // Written before any send: nothing has gone out.
    assert_eq!(events(&out), Vec::<(String, String)>::new());

    // Read-only as well, while full. The kernel refuses this while a file on it is open for
    // writing: it succeeds because the agent closed the outbox after the failed write.
    tmpfs.remount("ro", "remount the full data_dir read-only");
    agent.wait_until(
        "/readyz names the read-only data_dir",
        Duration::from_secs(30),
        || {
            degraded_reasons(&agent)
                .iter()
                .any(|r| r.starts_with("1 notification(s)") && r.contains("Read-only file system"))
        },
    );
    assert_eq!(metric(&agent, "lookout_outbox_pending"), Some(1.0));
    assert_alive(&mut agent);

    // Writable, then freed: the notification is written and delivered, and the resolve follows.
    tmpfs.remount("rw", "remount the data_dir read-write");
    std::fs::remove_file(&filler).expect("remove the filler");
    agent.wait_until(
        "the firing notification, then its resolve, at the receiver",
        Duration::from_secs(30),
        || events(&out).len() >= 2,
    );
    assert_eq!(
        events(&out),
        [
            event("DataDirFull", "firing"),
            event("DataDirFull", "resolved")
        ]
    );
    agent.wait_until("/readyz ready again", Duration::from_secs(30), || {
        readyz(&agent).0 == 200
    });
    wait_for_nothing_pending(&agent);
    assert_eq!(
        events(&out).len(),
        2,
        "each notification once: {:?}",
        events(&out)
    );
    assert!(
        data.join("alerts.json").is_file(),
        "alert states saved again"
    );
    let log = agent.log();
    assert!(log.contains("outbox writable again"), "{log}");
    assert!(log.contains("alert states saved again"), "{log}");
    assert_alive(&mut agent);
}

#[test]
fn an_agent_started_on_a_read_only_data_dir_runs_degraded_then_catches_up() {
    let tmpfs = Tmpfs::mount("4m");
    let data = tmpfs.path().to_path_buf();
    tmpfs.remount("ro", "remount the empty data_dir read-only");
    let dir = TempDir::new("ro");
    let out = dir.path().join("received.jsonl");
    let hook_port = free_port();
    let _receiver = http_receiver(hook_port, &out, "ok", None);
    let port = free_port();
    let text = config(port, &data, &sections(hook_port, "", ""));
    let mut agent = start(dir, port, &text, &[("rules.yaml", LOAD_SEEN)], &[]);

    // Starts, collects, evaluates; the notification is kept in memory, the reason given.
    wait_held_and_unsaved(&agent, &["Read-only file system"]);
    let m = wait_for_pending(&agent, 1.0);
    assert!(value(&m, "lookout_outbox_write_errors_total", &[]).is_some_and(|n| n >= 1.0));
    assert!(
        value(&m, "lookout_load1", &[]).is_some(),
        "collection goes on"
    );
    let log = agent.log();
    assert!(
        log.contains("agent.data_dir cannot be written to now"),
        "{log}"
    );
    assert!(log.contains("outbox cannot be opened now"), "{log}");
    assert_eq!(events(&out), Vec::<(String, String)>::new());

    tmpfs.remount("rw", "remount the data_dir read-write");
    agent.wait_until(
        "the notification at the receiver",
        Duration::from_secs(30),
        || !events(&out).is_empty(),
    );
    agent.wait_until("/readyz ready", Duration::from_secs(30), || {
        readyz(&agent).0 == 200
    });
    wait_for_nothing_pending(&agent);
    assert_eq!(events(&out), [event("LoadSeen", "firing")]);
    assert!(data.join("outbox.redb").is_file());
    assert!(data.join("alerts.json").is_file());
    assert_alive(&mut agent);
}

/// Bytes that are no redb file: a pseudo-random sequence (xorshift), the same every run.
fn garbage(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The files in `dir` whose names start with `prefix`.
fn named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read data_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn corrupt_state_and_outbox_files_are_moved_aside_and_the_agent_starts_fresh() {
    let dir = TempDir::new("corrupt");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let state_bytes = b"{\"version\": 1, \"instances\": [{\"alert\": \"Lo".to_vec();
    let outbox_bytes = garbage(64 * 1024);
    std::fs::write(data.join("alerts.json"), &state_bytes).unwrap();
    std::fs::write(data.join("outbox.redb"), &outbox_bytes).unwrap();
    let out = dir.path().join("received.jsonl");
    let hook_port = free_port();
    let _receiver = http_receiver(hook_port, &out, "ok", None);
    let port = free_port();
    let text = config(port, &data, &sections(hook_port, "", ""));
    let mut agent = start(dir, port, &text, &[("rules.yaml", LOAD_SEEN)], &[]);
    agent.wait_until("ready", Duration::from_secs(30), || readyz(&agent).0 == 200);

    // Both moved aside, whole, under <name>.corrupt-<unix seconds>.
    for (name, bytes) in [
        ("alerts.json", &state_bytes),
        ("outbox.redb", &outbox_bytes),
    ] {
        let aside = named(&data, &format!("{name}.corrupt-"));
        assert_eq!(aside.len(), 1, "{name}: {aside:?}");
        let suffix = aside[0]
            .to_string_lossy()
            .rsplit('-')
            .next()
            .unwrap()
            .to_string();
        assert!(
            suffix.len() >= 10 && suffix.bytes().all(|b| b.is_ascii_digit()),
            "{name}: {aside:?}"
        );
        assert_eq!(
            &std::fs::read(&aside[0]).unwrap(),
            bytes,
            "{name} kept as it was"
        );
    }
    let log = agent.log();
    assert!(
        log.contains("alert states lost: the state file was moved aside")
            && log.contains("is corrupt"),
        "{log}"
    );
    assert!(
        log.contains("outbox unreadable: moved aside") && log.contains("Not a redb database"),
        "{log}"
    );

    // Fresh: it serves, fires, delivers, and saves.
    assert!(metric(&agent, "lookout_load1").is_some());
    agent.wait_until(
        "the notification at the receiver",
        Duration::from_secs(30),
        || !events(&out).is_empty(),
    );
    wait_for_nothing_pending(&agent);
    assert_eq!(events(&out), [event("LoadSeen", "firing")]);
    agent.wait_until("the alert states saved", Duration::from_secs(10), || {
        std::fs::read_to_string(data.join("alerts.json")).is_ok_and(|t| t.contains("LoadSeen"))
    });

    // A second agent on the same data_dir: the outbox is locked, which is no corruption. It
    // says so and exits 2, leaving the files alone.
    let second = TempDir::new("second");
    let second_config = second.path().join("lookout.yaml");
    std::fs::write(&second_config, config(free_port(), &data, "")).unwrap();
    let run = lookout_tests::lookout()
        .args(["run", "-c"])
        .arg(&second_config)
        .output()
        .expect("run a second agent");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("locked by another process") && stderr.contains("one agent per data_dir"),
        "{stderr}"
    );
    assert_eq!(named(&data, "outbox.redb.corrupt-").len(), 1);
    assert_alive(&mut agent);
    assert_eq!(agent.get("/metrics").0, 200);
}

/// libfaketime's preload library (Debian package `faketime`).
fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketime.so.1")])
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "libfaketime is not installed; this test needs it. Install it with \
             `apt-get install -y faketime`, or run `scripts/test.sh`, which installs every test peer."
        )
    })
}

/// Wall-clock ms now, by the test's own (unfaked) clock.
fn real_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The latest `last_run_ms` (wall clock) of the agent's collectors.
fn agent_wall_ms(agent: &Agent) -> i64 {
    let status = agent.json("/api/v1/status");
    status["collectors"]
        .as_object()
        .expect("collectors")
        .values()
        .filter_map(|c| c["last_run_ms"].as_i64())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_wall_clock_step_neither_fires_nor_resolves_anything() {
    let preload = libfaketime();
    let dir = TempDir::new("clock");
    let offset_file = dir.path().join("faketime");
    std::fs::write(&offset_file, "+0\n").unwrap();
    let out = dir.path().join("received.jsonl");
    let hook_port = free_port();
    let _receiver = http_receiver(hook_port, &out, "ok", None);
    // Firing fires at once and is notified again every 30 min; Pending fires after 10 min;
    // Canary fires for each route pushed to the agent: the test's marker, decided after a
    // step, behind anything a step would have decided.
    let rules = "groups:\n  - name: t\n    interval: 1s\n    rules:\n\
                 \x20     - alert: Firing\n        expr: lookout_load1\n        warning: \">= 0\"\n\
                 \x20     - alert: Pending\n        expr: lookout_load1\n        warning: \">= 0\"\n        for: 10m\n\
                 \x20     - alert: Canary\n        expr: lookout_api_requests_total\n        warning: \">= 1\"\n";
    let port = free_port();
    let text = config(
        port,
        &dir.path().join("data"),
        &sections(hook_port, "", "  repeat_interval: 30m\n").replace(
            "  tcp:\n    enabled: false\n",
            "  tcp:\n    enabled: false\n  ingest:\n    interval: 1s\n",
        ),
    );
    let offset = offset_file.to_str().expect("UTF-8 path").to_string();
    let preload = preload.to_str().expect("UTF-8 path").to_string();
    let env = [
        ("LD_PRELOAD", preload.as_str()),
        ("FAKETIME_TIMESTAMP_FILE", offset.as_str()),
        ("FAKETIME_NO_CACHE", "1"),
        // A step moves the wall clock only, as NTP does; the monotonic clock runs on.
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let mut agent = start(dir, port, &text, &[("rules.yaml", rules)], &env);
    agent.wait_until("ready", Duration::from_secs(30), || readyz(&agent).0 == 200);
    agent.wait_until("Firing notified", Duration::from_secs(30), || {
        events(&out).contains(&event("Firing", "firing"))
    });

    // (offset written, route of the canary pushed after it took effect)
    let steps = [
        ("+1h", "/after-forward"),
        ("+0", "/after-back"),
        ("-1h", "/behind"),
    ];
    let mut expected = vec![event("Firing", "firing")];
    for (step, route) in steps {
        std::fs::write(&offset_file, format!("{step}\n")).unwrap();
        // The agent's wall clock (the time its collectors last ran) shows the step.
        let shift: i64 = match step {
            "+1h" => 3_600_000,
            "-1h" => -3_600_000,
            _ => 0,
        };
        agent.wait_until(
            &format!("the agent's wall clock at {step}"),
            Duration::from_secs(30),
            || (agent_wall_ms(&agent) - (real_now_ms() + shift)).abs() < 5_000,
        );
        let body = format!(
            "[{{\"route\": \"{route}\", \"method\": \"GET\", \"status\": 200, \"duration_seconds\": 0.01}}]"
        );
        let (status, answer) = http(agent.addr, "POST", "/api/v1/observations", &[], &body)
            .expect("push an observation");
        assert_eq!(status, 200, "{answer}");
        expected.push(event("Canary", "firing"));
        // Messages to one receiver go out oldest first: once the canary is in, anything the
        // step made the rules decide, in the same evaluation or before, is in too.
        agent.wait_until(
            &format!("the canary for {route}"),
            Duration::from_secs(30),
            || events(&out).len() >= expected.len(),
        );
        wait_for_nothing_pending(&agent);
        assert_eq!(events(&out), expected, "after the step to {step}");
        assert_eq!(agent.get("/metrics").0, 200);
        assert_eq!(readyz(&agent).0, 200);
    }
    // Pending is still pending, Firing still firing: nothing resolved.
    let alerts = agent.json("/api/v1/alerts");
    let states: Vec<(String, String)> = alerts["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["alert"] != "Canary")
        .map(|a| {
            (
                a["alert"].as_str().unwrap_or("").to_string(),
                a["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [event("Firing", "firing"), event("Pending", "pending")],
        "{alerts}"
    );
    assert_alive(&mut agent);
}

#[test]
fn a_storm_of_sighups_ends_on_the_last_configuration_without_duplicates() {
    let dir = TempDir::new("sighup");
    let out = dir.path().join("received.jsonl");
    let hook_port = free_port();
    let _receiver = http_receiver(hook_port, &out, "ok", None);
    let port = free_port();
    let text = config(port, &dir.path().join("data"), &sections(hook_port, "", ""));
    /// The rules of generation `n`: LoadSeen fires throughout; Generation never fires and
    /// carries `n` in its summary, which `/api/v1/rules` shows.
    fn rules(n: usize) -> String {
        format!(
            "{LOAD_SEEN}      - alert: Generation\n        expr: lookout_load1\n        warning: \"< -1\"\n        summary: \"generation {n}\"\n"
        )
    }
    let mut agent = start(dir, port, &text, &[("rules.yaml", &rules(0))], &[]);
    agent.wait_until("ready", Duration::from_secs(30), || readyz(&agent).0 == 200);
    let rules_path = agent.dir.path().join("rules.yaml");

    // A scraper asks for /metrics as fast as it can while the signals come.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = {
        let (addr, stop) = (agent.addr, stop.clone());
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                answers.push(http(addr, "GET", "/metrics", &[], "").map(|(s, _)| s));
            }
            answers
        })
    };
    // One shell sends the signals (its `kill` is a builtin: no process started per signal,
    // so fifty fit in a second however busy the machine is), one per line it reads.
    let mut killer = Command::new("sh")
        .args([
            "-c",
            "while read -r _; do kill -HUP \"$1\" || exit 1; echo sent; done",
            "sh",
            &agent.child.id().to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start sh");
    let mut to_killer = killer.stdin.take().expect("stdin");
    let mut sent = std::io::BufRead::lines(std::io::BufReader::new(
        killer.stdout.take().expect("stdout"),
    ));
    let started = Instant::now();
    for n in 1..=50 {
        // Written whole, then renamed over the old file, as configuration tools do: a
        // reload reads whatever is there, and a file caught half-written (empty, say) is a
        // valid file without the firing rule, whose state would go with it.
        let next = rules_path.with_extension("yaml.new");
        std::fs::write(&next, rules(n)).expect("write the rules");
        std::fs::rename(&next, &rules_path).expect("rename the rules");
        writeln!(to_killer, "{n}").expect("ask for a SIGHUP");
        let line = sent.next().and_then(Result::ok);
        assert_eq!(line.as_deref(), Some("sent"), "SIGHUP {n}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = started.elapsed();
    drop(to_killer);
    assert!(killer.wait().expect("sh").success());
    assert!(took < Duration::from_secs(1), "50 SIGHUPs took {took:?}");

    agent.wait_until(
        "the last configuration in force",
        Duration::from_secs(30),
        || {
            let doc = agent.json("/api/v1/rules");
            doc["rules"].as_array().is_some_and(|rules| {
                rules
                    .iter()
                    .any(|r| r["alert"] == "Generation" && r["summary"] == "generation 50")
            })
        },
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answers = scraper.join().expect("scraper");
    assert!(answers.len() >= 10, "only {} scrapes", answers.len());
    let failed: Vec<_> = answers.iter().filter(|a| !matches!(a, Ok(200))).collect();
    assert!(
        failed.is_empty(),
        "{} of {} scrapes failed: {failed:?}",
        failed.len(),
        answers.len()
    );
    assert_alive(&mut agent);

    // Exactly one notification decided, and it went out once.
    agent.wait_until("LoadSeen notified", Duration::from_secs(30), || {
        !events(&out).is_empty()
    });
    wait_for_nothing_pending(&agent);
    let history = agent.json("/api/v1/alerts?history=100");
    let decided = history["history"].as_array().expect("history").len();
    assert_eq!(decided, 1, "{history}");
    assert_eq!(events(&out), [event("LoadSeen", "firing")]);
    assert_eq!(readyz(&agent).0, 200);
}

/// Waits until `/readyz` is degraded with the one notification kept in memory and the alert
/// states not saved: the memory reason holds every one of `why`, and the `alerts.json`
/// reason holds its last (the error itself).
fn wait_held_and_unsaved(agent: &Agent, why: &[&str]) {
    let error = why.last().copied().unwrap_or_default();
    agent.wait_until(
        "/readyz degraded: the notification kept in memory, the alert states not saved",
        Duration::from_secs(30),
        || {
            let reasons = degraded_reasons(agent);
            reasons.iter().any(|r| {
                r.starts_with("1 notification(s) kept in memory")
                    && why.iter().all(|w| r.contains(w))
            }) && reasons
                .iter()
                .any(|r| r.contains("alerts.json") && r.contains(error))
        },
    );
}

/// The heartbeat pings the receiver's `/ping/<secret>` (or `/ping/<secret>/fail`): the
/// paths of what it got so far, with their receive times.
fn pings(out: &Path) -> Vec<(f64, String)> {
    received(out)
        .iter()
        .filter(|r| r["method"] == "GET")
        .map(|r| {
            (
                r["t"].as_f64().expect("receive time"),
                r["path"].as_str().expect("path").to_string(),
            )
        })
        .collect()
}

#[test]
fn the_heartbeat_pings_every_interval_fails_while_the_outbox_cannot_write_and_recovers() {
    const OK: &str = "/ping/hb-5e3c7e7-uuid";
    const FAIL: &str = "/ping/hb-5e3c7e7-uuid/fail";
    let tmpfs = Tmpfs::mount("4m");
    let data = tmpfs.path().to_path_buf();
    let dir = TempDir::new("heartbeat");
    let out = dir.path().join("pings.jsonl");
    let ping_port = free_port();
    let mut receiver = http_receiver(ping_port, &out, "ok", None);
    let port = free_port();
    // No collectors but a check-in, whose /fail is the notification the full disk refuses;
    // the built-in rules every second; notifications to the log, through the outbox.
    let text = config(
        port,
        &data,
        &format!(
            "collect:\n  host: {{enabled: false}}\n  tcp: {{enabled: false}}\n  checkins:\n    - {{name: job, every: 1h, grace: 1h}}\n\
             rules:\n  evaluation_interval: 1s\n\
             notify:\n  group_wait: 0s\n  retry: {{initial: 1s, max: 2s, jitter: false}}\n\
             \x20 heartbeat: {{url: \"http://127.0.0.1:{ping_port}{OK}\", interval: 1s, timeout: 1s}}\n"
        ),
    );
    let mut agent = start(dir, port, &text, &[], &[]);
    agent.wait_until("ready", Duration::from_secs(30), || readyz(&agent).0 == 200);

    // Healthy: one GET of the URL a second.
    agent.wait_until("four pings", Duration::from_secs(10), || {
        pings(&out).len() >= 4
    });
    let healthy = pings(&out);
    assert!(healthy.iter().all(|(_, p)| p == OK), "{healthy:?}");
    for pair in healthy.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            (0.7..1.3).contains(&gap),
            "a ping every second: {healthy:?}"
        );
    }
    assert_eq!(metric(&agent, "lookout_heartbeat_healthy"), Some(1.0));
    let last = metric(&agent, "lookout_heartbeat_last_success_timestamp_seconds")
        .expect("the last ping's time");
    assert!((real_now_ms() as f64 / 1000.0 - last).abs() < 3.0, "{last}");

    // The disk fills, and a notification comes that the outbox cannot write: the failure URL.
    let filler = data.join("filler");
    assert!(fill(&filler) > 0);
    let (status, body) = http(agent.addr, "POST", "/api/v1/checkins/job/fail", &[], "")
        .expect("POST /api/v1/checkins/job/fail");
    assert_eq!(status, 200, "{body}");
    wait_held_and_unsaved(&agent, &["outbox.redb", "No space left on device"]);
    let before = pings(&out).len();
    agent.wait_until(
        "two pings of the failure URL",
        Duration::from_secs(10),
        || {
            pings(&out)[before..]
                .iter()
                .filter(|(_, p)| p == FAIL)
                .count()
                >= 2
        },
    );
    assert_eq!(metric(&agent, "lookout_heartbeat_healthy"), Some(0.0));

    // Freed: the notification is written, and the pings go to the URL again.
    std::fs::remove_file(&filler).expect("remove the filler");
    agent.wait_until("/readyz ready again", Duration::from_secs(30), || {
        readyz(&agent).0 == 200
    });
    let before = pings(&out).len();
    agent.wait_until(
        "two pings of the URL again",
        Duration::from_secs(10),
        || {
            let after = pings(&out);
            after.len() >= before + 2 && after[after.len() - 2..].iter().all(|(_, p)| p == OK)
        },
    );
    assert_eq!(metric(&agent, "lookout_heartbeat_healthy"), Some(1.0));
    let log = agent.log();
    assert!(
        log.contains("heartbeat: the pipeline is unhealthy; pinging the failure URL")
            && log.contains("No space left on device"),
        "{log}"
    );
    assert!(log.contains("heartbeat: the pipeline is healthy"), "{log}");

    // The heartbeat's receiver gone: counted and logged, without its secret; the agent goes on.
    let _ = receiver.0.kill();
    let _ = receiver.0.wait();
    agent.wait_until("failed pings counted", Duration::from_secs(10), || {
        metric(&agent, "lookout_heartbeat_failures_total").is_some_and(|n| n >= 2.0)
    });
    let log = agent.log();
    assert!(
        log.contains("heartbeat not delivered") && log.contains("http://127.0.0.1:"),
        "{log}"
    );
    assert!(
        !log.contains("hb-5e3c7e7-uuid"),
        "the URL's secret part is never logged:\n{log}"
    );
    assert_eq!(readyz(&agent).0, 200);
    assert_alive(&mut agent);
}
