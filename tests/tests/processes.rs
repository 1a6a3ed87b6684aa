//! Process groups and the top processes in the real agent, over real processes the tests
//! start: memory, CPU, a rule firing when a group's process is killed, restarts, open file
//! limits, and `GET /api/v1/processes/top`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lookout_tests::{
    Agent, MetricSample, Peer, TempDir, online_cpus, process_cpu_seconds, require, value,
};

/// Starts `python3 -c code marker` and waits for the line it prints when ready.
fn python(code: &str, marker: &str) -> Peer {
    let mut child = Command::new(require("python3", "python3"))
        .args(["-c", code, marker])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    assert_eq!(line.trim(), "ready", "{marker}");
    Peer(child)
}

/// 60 MiB allocated and touched, then asleep.
const HOLD_60_MIB: &str = "import time\nb = bytearray(60 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('ready', flush=True)\ntime.sleep(600)\n";

/// A busy loop.
const BUSY: &str = "print('ready', flush=True)\nwhile True: pass\n";

/// Open files limited to 1024, `/dev/null` opened 900 times, then asleep.
const FILES_900: &str = "import resource, time\nresource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))\nfiles = [open('/dev/null') for _ in range(900)]\nprint('ready', flush=True)\ntime.sleep(600)\n";

/// A marker unique to this test run, for command line patterns.
fn marker(what: &str) -> String {
    format!("lookout-test-{what}-{}", std::process::id())
}

fn group_value(m: &[MetricSample], name: &str, group: &str) -> Option<f64> {
    value(m, name, &[("group", group)])
}

/// CPU ticks (user + system) of `pid`, read from /proc independently of the agent.
const RULES: &str = "groups:\n  - name: processes\n    interval: 1s\n    rules:\n      - alert: ProcessGroupDown\n        expr: lookout_process_group_up\n        critical: \"< 1\"\n        for: 2s\n";

#[test]
fn memory_cpu_a_rule_on_a_killed_process_and_its_restart() {
    let mem = marker("mem");
    let busy = marker("busy");
    let _holder = python(HOLD_60_MIB, &mem);
    let mut looping = python(BUSY, &busy);
    let config = format!(
        "collect:\n  processes:\n    interval: 1s\n    top: 100\n    groups:\n      - {{name: mem, match: {{cmdline: '{mem}'}}, max_memory: 120MiB}}\n      - {{name: busy, match: {{cmdline: '{busy}'}}}}\nrules:\n  files: [rules.yaml]\n  evaluation_interval: 1s\nnotify:\n  group_wait: 0s\n"
    );
    let agent = Agent::start_in(TempDir::new("processes"), &[("rules.yaml", RULES)], &config);

    // About 60 MiB in the memory group (Python itself adds a few MiB).
    let rss = agent.wait_for(Duration::from_secs(10), |m| {
        group_value(m, "lookout_process_group_resident_memory_bytes", "mem")
    });
    let mib = rss / (1 << 20) as f64;
    println!("60 MiB holder: {mib:.1} MiB resident");
    assert!((60.0..80.0).contains(&mib), "{mib} MiB");
    let m = agent.metrics();
    assert_eq!(
        group_value(&m, "lookout_process_group_members", "mem"),
        Some(1.0)
    );
    assert_eq!(
        group_value(&m, "lookout_process_group_up", "mem"),
        Some(1.0)
    );
    let ratio = group_value(&m, "lookout_process_group_memory_usage_ratio", "mem").unwrap();
    assert!((ratio - rss / (120 << 20) as f64).abs() < 0.05, "{ratio}");

    // The busy loop: about one core's worth of the host, as much as it really got.
    let pid = looping.0.id();
    agent.wait_for_runs_from_now("processes");
    let (cpu0, at0, own0) = (
        group_value(
            &agent.metrics(),
            "lookout_process_group_cpu_seconds_total",
            "busy",
        )
        .unwrap(),
        Instant::now(),
        process_cpu_seconds(pid),
    );
    let mut ratios = Vec::new();
    while at0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1000));
        ratios.extend(group_value(
            &agent.metrics(),
            "lookout_process_group_cpu_usage_ratio",
            "busy",
        ));
    }
    let (cpu1, own1) = (
        group_value(
            &agent.metrics(),
            "lookout_process_group_cpu_seconds_total",
            "busy",
        )
        .unwrap(),
        process_cpu_seconds(pid),
    );
    let elapsed = at0.elapsed().as_secs_f64();
    let own_share = (own1 - own0) / elapsed / online_cpus();
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    println!(
        "busy loop: agent ratio {mean:.3} (runs {ratios:?}), measured share {own_share:.3}, one core {:.3}; counter +{:.2} s, process +{:.2} s",
        1.0 / online_cpus(),
        cpu1 - cpu0,
        own1 - own0
    );
    assert!(
        mean <= 1.0 / online_cpus() * 1.1,
        "{mean}: more than one core"
    );
    assert!(
        mean >= 0.25 / online_cpus(),
        "{mean}: far less than one core"
    );
    assert!(
        (mean - own_share).abs() <= 0.1,
        "agent {mean}, measured {own_share}"
    );
    assert!(
        ((cpu1 - cpu0) - (own1 - own0)).abs() <= 1.5,
        "counter +{} s, process +{} s",
        cpu1 - cpu0,
        own1 - own0
    );

    // Killed: count 0, up 0, and the rule fires through the agent.
    looping.0.kill().unwrap();
    looping.0.wait().unwrap();
    agent.wait_for(Duration::from_secs(10), |m| {
        (group_value(m, "lookout_process_group_members", "busy") == Some(0.0)).then_some(())
    });
    let m = agent.metrics();
    assert_eq!(
        group_value(&m, "lookout_process_group_up", "busy"),
        Some(0.0)
    );
    assert_eq!(
        group_value(&m, "lookout_process_group_cpu_usage_ratio", "busy"),
        None
    );
    let after_kill = group_value(&m, "lookout_process_group_cpu_seconds_total", "busy").unwrap();
    assert!(
        after_kill >= cpu1,
        "the counter went down: {after_kill} < {cpu1}"
    );
    let firing = |agent: &Agent| {
        agent.json("/api/v1/alerts")["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| {
                a["alert"] == "ProcessGroupDown"
                    && a["labels"]["group"] == "busy"
                    && a["state"] == "firing"
            })
    };
    agent.wait_until(
        "ProcessGroupDown firing for busy",
        Duration::from_secs(15),
        || firing(&agent),
    );
    let alerts = agent.json("/api/v1/alerts");
    let down: Vec<&serde_json::Value> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["alert"] == "ProcessGroupDown")
        .collect();
    assert_eq!(down.len(), 1, "only busy is down: {alerts}");
    assert_eq!(down[0]["severity"], "critical", "{alerts}");

    // Started again: one restart, up, resolved.
    let _again = python(BUSY, &busy);
    agent.wait_for(Duration::from_secs(10), |m| {
        (group_value(m, "lookout_process_group_up", "busy") == Some(1.0)).then_some(())
    });
    let m = agent.metrics();
    assert_eq!(
        group_value(&m, "lookout_process_group_restarts_total", "busy"),
        Some(1.0)
    );
    assert_eq!(
        group_value(&m, "lookout_process_group_restarts_total", "mem"),
        Some(0.0)
    );
    agent.wait_until("ProcessGroupDown resolved", Duration::from_secs(15), || {
        !firing(&agent)
    });

    // A reload builds the collectors again: the counters carry on from where they were.
    let before = group_value(
        &agent.metrics(),
        "lookout_process_group_cpu_seconds_total",
        "busy",
    )
    .unwrap();
    let (status, body) = agent.reload(None);
    assert_eq!(status, 200, "{body}");
    agent.wait_for_runs_from_now("processes");
    let m = agent.metrics();
    assert_eq!(
        group_value(&m, "lookout_process_group_restarts_total", "busy"),
        Some(1.0)
    );
    let after = group_value(&m, "lookout_process_group_cpu_seconds_total", "busy").unwrap();
    assert!(
        after > before,
        "the CPU counter after a reload: {after}, before: {before}"
    );

    // The top processes by memory list the holder.
    let top = agent.json("/api/v1/processes/top?by=memory");
    assert_eq!(top["by"], "memory");
    assert_eq!(top["interval_seconds"], 1.0);
    let holder = top["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == _holder.0.id())
        .unwrap_or_else(|| panic!("the holder is not listed: {top}"));
    assert!(
        holder["cmdline"].as_str().unwrap().contains(&mem),
        "{holder}"
    );
    assert_eq!(holder["user"], "root");
    let listed = holder["rss_bytes"].as_f64().unwrap() / (1 << 20) as f64;
    assert!((60.0..80.0).contains(&listed), "{holder}");
    let sizes: Vec<f64> = top["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rss_bytes"].as_f64().unwrap())
        .collect();
    assert!(
        sizes.windows(2).all(|w| w[0] >= w[1]),
        "largest first: {sizes:?}"
    );
    let by_cpu = agent.json("/api/v1/processes/top?n=3");
    assert_eq!(by_cpu["by"], "cpu");
    assert_eq!(by_cpu["processes"].as_array().unwrap().len(), 3, "{by_cpu}");
    for bad in ["by=disk", "n=0", "n=101", "n=x"] {
        let (status, body) = agent.get(&format!("/api/v1/processes/top?{bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("\"error\""), "{body}");
    }
}

#[test]
fn open_files_against_their_limit() {
    let files = marker("files");
    let _holder = python(FILES_900, &files);
    let agent = Agent::start(&format!(
        "collect:\n  processes:\n    interval: 1s\n    top: 0\n    groups:\n      - {{name: files, match: {{cmdline: '{files}', user: root}}}}\n"
    ));
    let ratio = agent.wait_for(Duration::from_secs(10), |m| {
        group_value(m, "lookout_process_group_fd_usage_ratio", "files")
    });
    let open = group_value(&agent.metrics(), "lookout_process_group_open_fds", "files").unwrap();
    println!("900 files of 1024: {open} open, ratio {ratio:.4}");
    // 900 files, stdin/out/err and the pipe's end: 903 to 905 of 1024
    assert!((903.0..=910.0).contains(&open), "{open}");
    assert!(
        (ratio - open / 1024.0).abs() < 1e-9 && (0.88..0.89).contains(&ratio),
        "{ratio}"
    );

    // `top: 0` turns the lists off: a 404 saying how to turn them on.
    let (status, body) = agent.get("/api/v1/processes/top");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("collect.processes.top"), "{body}");
}

#[test]
fn a_disabled_collector_exports_nothing_and_says_how_to_enable_it() {
    let agent = Agent::start(
        "collect:\n  processes:\n    enabled: false\n    groups:\n      - {name: init, match: {pidfile: /nonexistent.pid}}\n",
    );
    let m = agent.metrics();
    assert!(
        !m.iter()
            .any(|s| s.name.starts_with("lookout_process_group_")),
        "exported while disabled"
    );
    let (status, body) = agent.get("/api/v1/processes/top");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("collect.processes.enabled"), "{body}");
    let status = agent.json("/api/v1/status");
    assert!(status["collectors"].get("processes").is_none(), "{status}");
}
