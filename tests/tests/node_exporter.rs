//! Cross-check against the real node_exporter: both read the same kernel, so the same
//! quantities must agree (exactly for static ones, closely for moving ones).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lookout_tests::{Agent, MetricSample, find, free_port, http, parse_exposition, require};

struct NodeExporter(Child);

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scrape_node_exporter(port: u16) -> Vec<MetricSample> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, body)) = http(addr, "GET", "/metrics", &[], "") {
            return parse_exposition(&body);
        }
        assert!(
            Instant::now() < deadline,
            "node_exporter did not answer on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn host_values_agree_with_node_exporter() {
    let bin = require("prometheus-node-exporter", "prometheus-node-exporter");
    let port = free_port();
    let _node = NodeExporter(
        Command::new(bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Debian's build leaves out `lo` by default; lookout reports every interface.
            .arg("--collector.netdev.device-exclude=^$")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let agent = Agent::start("collect:\n  host:\n    interval: 1s\n    timeout: 1s\n");
    let ours = agent.wait_for(Duration::from_secs(5), |m| {
        find(m, "lookout_cpu_usage_ratio", &[]).map(|_| m.to_vec())
    });
    let theirs = scrape_node_exporter(port);
    let v = |m: &[MetricSample], name: &str, with: &[(&str, &str)]| {
        find(m, name, with)
            .map(|s| s.value)
            .unwrap_or_else(|| panic!("{name} {with:?} missing"))
    };

    // Static quantities: exactly equal.
    assert_eq!(
        v(&ours, "lookout_memory_total_bytes", &[]),
        v(&theirs, "node_memory_MemTotal_bytes", &[])
    );
    assert_eq!(
        v(
            &ours,
            "lookout_filesystem_size_bytes",
            &[("mountpoint", "/")]
        ),
        v(
            &theirs,
            "node_filesystem_size_bytes",
            &[("mountpoint", "/")]
        )
    );
    let cpus = theirs
        .iter()
        .filter(|s| s.name == "node_cpu_seconds_total" && s.labels["mode"] == "idle")
        .count();
    assert_eq!(v(&ours, "lookout_cpus", &[]), cpus as f64);

    // Moving quantities, read a moment apart: close.
    let close = |a: f64, b: f64, tolerance: f64, what: &str| {
        assert!(
            (a - b).abs() <= tolerance,
            "{what}: lookout {a} vs node_exporter {b}"
        );
    };
    close(
        v(&ours, "lookout_memory_available_bytes", &[]),
        v(&theirs, "node_memory_MemAvailable_bytes", &[]),
        64.0 * 1024.0 * 1024.0,
        "available memory",
    );
    close(
        v(&ours, "lookout_load15", &[]),
        v(&theirs, "node_load15", &[]),
        0.1,
        "load15",
    );
    let node_user: f64 = theirs
        .iter()
        .filter(|s| s.name == "node_cpu_seconds_total" && s.labels["mode"] == "user")
        .map(|s| s.value)
        .sum();
    close(
        v(&ours, "lookout_cpu_seconds_total", &[("mode", "user")]),
        node_user,
        5.0,
        "user CPU seconds",
    );
    close(
        v(
            &ours,
            "lookout_network_transmit_bytes_total",
            &[("device", "lo")],
        ),
        v(
            &theirs,
            "node_network_transmit_bytes_total",
            &[("device", "lo")],
        ),
        4.0 * 1024.0 * 1024.0,
        "lo transmit bytes",
    );
    close(
        v(&ours, "lookout_uptime_seconds", &[]),
        {
            let boot = v(&theirs, "node_boot_time_seconds", &[]);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            now - boot
        },
        5.0,
        "uptime",
    );
}
