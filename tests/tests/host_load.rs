//! Real load on this host, and the agent's numbers following it.
//!
//! Each test makes load the agent can see (busy cores, an allocation, loopback traffic,
//! connections, disk usage) and checks the exported value against the load it made or
//! against an independent program (`df`). They take a lock so they never overlap, since
//! one test's load would disturb another's reading.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lookout_tests::{Agent, MetricSample, require, value};

static SERIAL: Mutex<()> = Mutex::new(());

const FAST: &str = "collect:\n  host:\n    interval: 1s\n    timeout: 1s\n";

#[test]
fn busy_cores_raise_cpu_usage() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let agent = Agent::start(FAST);
    let cpus = agent.wait_for(Duration::from_secs(5), |m| value(m, "lookout_cpus", &[])) as usize;
    let stop = AtomicBool::new(false);
    let busy = std::thread::scope(|s| {
        for _ in 0..cpus {
            s.spawn(|| {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            });
        }
        // The ratio of an interval entirely under load.
        agent.wait_for_runs_from_now("cpu");
        let busy = agent.metrics();
        stop.store(true, Ordering::Relaxed);
        busy
    });
    let ratio = value(&busy, "lookout_cpu_usage_ratio", &[]).expect("ratio present");
    assert!(
        ratio >= 0.8,
        "every core busy, yet lookout_cpu_usage_ratio = {ratio}"
    );
    assert!(ratio <= 1.0, "ratio above 1: {ratio}");

    // And it falls back when the load stops (the wait fails the test if it does not).
    agent.wait_for(Duration::from_secs(10), |m| {
        value(m, "lookout_cpu_usage_ratio", &[])
            .filter(|r| *r < ratio - 0.3)
            .map(|_| ())
    });
}

#[test]
fn a_large_allocation_raises_memory_usage_by_about_its_size() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const SIZE: usize = 2 << 30; // 2 GiB, well above the noise of a quiet test machine
    let agent = Agent::start(FAST);
    let read = |m: &[MetricSample]| {
        Some((
            value(m, "lookout_memory_available_bytes", &[])?,
            value(m, "lookout_memory_usage_ratio", &[])?,
            value(m, "lookout_memory_total_bytes", &[])?,
        ))
    };
    agent.wait_for_runs_from_now("memory");
    let (before, ratio_before, total) = agent.wait_for(Duration::from_secs(5), read);
    assert!(
        total > SIZE as f64 * 2.0,
        "host too small for this test: {total} bytes"
    );

    let mut block = vec![0u8; SIZE];
    // Touch every page so the kernel really backs it.
    for page in block.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(&block);
    agent.wait_for_runs_from_now("memory");
    let (after, ratio_after, _) = agent.wait_for(Duration::from_secs(5), read);
    drop(block);

    let dropped = before - after;
    let expected = SIZE as f64;
    assert!(
        (dropped - expected).abs() < expected * 0.2,
        "allocating {expected} bytes moved MemAvailable by {dropped}"
    );
    let ratio_delta = ratio_after - ratio_before;
    assert!(
        (ratio_delta - expected / total).abs() < 0.2 * expected / total,
        "usage ratio moved by {ratio_delta}, expected about {}",
        expected / total
    );
}

#[test]
fn bytes_over_loopback_raise_lo_counters() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const BYTES: usize = 64 << 20;
    let agent = Agent::start(FAST);
    let rx = |m: &[MetricSample]| {
        value(
            m,
            "lookout_network_receive_bytes_total",
            &[("device", "lo")],
        )
    };
    let tx = |m: &[MetricSample]| {
        value(
            m,
            "lookout_network_transmit_bytes_total",
            &[("device", "lo")],
        )
    };
    let start = agent.wait_for(Duration::from_secs(5), |m| Some((rx(m)?, tx(m)?)));

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut sink = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            match conn.read(&mut sink).unwrap() {
                0 => break total,
                n => total += n,
            }
        }
    });
    let mut conn = TcpStream::connect(addr).unwrap();
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..(BYTES >> 20) {
        conn.write_all(&chunk).unwrap();
    }
    drop(conn);
    assert_eq!(reader.join().unwrap(), BYTES);

    let (rx_end, tx_end) = agent.wait_for(Duration::from_secs(5), |m| {
        let (r, t) = (rx(m)?, tx(m)?);
        (r - start.0 >= BYTES as f64).then_some((r, t))
    });
    // Headers and the test's own scrapes add a little; nothing else should add much.
    let grown = rx_end - start.0;
    assert!(
        grown < BYTES as f64 * 1.5,
        "lo grew by {grown} for {BYTES} bytes sent"
    );
    assert!(
        tx_end - start.1 >= BYTES as f64,
        "lo transmit grew by {}",
        tx_end - start.1
    );
    // The per-second rate saw the burst in some interval.
    let rate = value(
        &agent.metrics(),
        "lookout_network_receive_bytes_per_second",
        &[("device", "lo")],
    );
    assert!(rate.is_some(), "rate of lo missing");
}

#[test]
fn open_connections_to_a_watched_port_show_as_established() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 9;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let agent = Agent::start(&format!(
        "collect:\n  tcp:\n    interval: 1s\n    timeout: 1s\n    ports: [{port}]\n"
    ));
    let port_label = port.to_string();
    let established = |m: &[MetricSample]| {
        value(
            m,
            "lookout_tcp_port_connections",
            &[("port", &port_label), ("state", "established")],
        )
    };
    assert_eq!(agent.wait_for(Duration::from_secs(5), established), 0.0);

    let clients: Vec<TcpStream> = (0..N)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let servers: Vec<TcpStream> = (0..N).map(|_| listener.accept().unwrap().0).collect();
    agent.wait_for(Duration::from_secs(5), |m| {
        established(m).filter(|v| *v == N as f64)
    });
    let listen = value(
        &agent.metrics(),
        "lookout_tcp_port_connections",
        &[("port", &port_label), ("state", "listen")],
    );
    assert_eq!(listen, Some(1.0));

    drop(clients);
    drop(servers);
    agent.wait_for(Duration::from_secs(5), |m| {
        established(m).filter(|v| *v == 0.0)
    });
}

#[test]
fn filesystem_usage_matches_df() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let df = require("df", "coreutils");
    let agent = Agent::start(FAST);
    let exported = agent.wait_for(Duration::from_secs(5), |m| {
        let usage = value(m, "lookout_filesystem_usage_ratio", &[("mountpoint", "/")])?;
        let avail = value(m, "lookout_filesystem_avail_bytes", &[("mountpoint", "/")])?;
        let size = value(m, "lookout_filesystem_size_bytes", &[("mountpoint", "/")])?;
        Some((usage, avail, size))
    });
    let out = std::process::Command::new(df)
        .args(["-B1", "--output=size,used,avail", "/"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let nums: Vec<f64> = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let (size, used, avail) = (nums[0], nums[1], nums[2]);
    let df_ratio = used / (used + avail);
    assert!(
        (exported.0 - df_ratio).abs() < 0.005,
        "lookout says {} used on /, df says {df_ratio}",
        exported.0
    );
    assert!(
        (exported.2 - size).abs() / size < 0.001,
        "size {} vs df {size}",
        exported.2
    );
    // Available space moves as other processes write; allow 1% of the size.
    assert!(
        (exported.1 - avail).abs() < size * 0.01,
        "avail {} vs df {avail}",
        exported.1
    );
}
