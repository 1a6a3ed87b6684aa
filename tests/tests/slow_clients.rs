//! Slow and idle clients cannot starve the real binary: with 1,000 connections held open
//! that send nothing or half a request line (slowloris), `/metrics` still answers within a
//! second each time, and the agent closes the idle ones after its header read timeout.

use std::collections::HashSet;
use std::io::Read;
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use lookout::api::server::HEADER_READ_TIMEOUT;
use lookout_tests::{Agent, TempDir, http};

const IDLE: usize = 1000;

/// The soft open-file limit of process `pid` (`/proc/<pid>/limits`).
fn open_file_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    line.split_whitespace()
        .nth(3)
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

/// This test holds 1,000 sockets: raise its own soft limit first if it is lower (util-linux
/// `prlimit`, as far as the hard limit allows).
fn make_room_for(sockets: u64) {
    let me = std::process::id();
    let wanted = sockets + 256;
    if open_file_limit(me) < wanted {
        let _ = Command::new("prlimit")
            .arg(format!("--pid={me}"))
            .arg(format!("--nofile={wanted}:"))
            .status();
    }
    assert!(
        open_file_limit(me) >= wanted,
        "this test needs {wanted} open files (ulimit -n), and the hard limit does not allow it"
    );
}

/// How many connections to `port` process `pid` has accepted and holds: its sockets
/// (`/proc/<pid>/fd`) that `/proc/net/tcp` shows established on that local port. A
/// connection still in the kernel's listen queue is no socket of the process yet.
fn accepted(pid: u32, port: u16) -> usize {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the agent's fd directory")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let local = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .expect("/proc/net/tcp")
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            fields.len() > 9
                && fields[1].ends_with(&local)
                && fields[3] == "01"
                && inodes.contains(fields[9])
        })
        .count()
}

/// `ss -ltn` for the agent's port: Recv-Q is how many connections wait to be accepted.
fn listen_queue(port: u16) -> String {
    Command::new("ss")
        .args(["-ltn", &format!("sport = :{port}")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("(ss: {e})"))
}

#[test]
fn a_thousand_idle_connections_do_not_stop_metrics_from_answering() {
    make_room_for(IDLE as u64);
    let agent = Agent::start_in(TempDir::new("slow-clients"), &[], "");
    let pid = agent.child.id();
    let port = agent.addr.port();

    // Half send nothing at all, half stop in the middle of the request line.
    let opened = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut stream = TcpStream::connect(agent.addr)
            .unwrap_or_else(|e| panic!("connection {i}: {e}; log:\n{}", agent.log()));
        if i % 2 == 1 {
            stream.write_all(b"GET /metr").unwrap();
        }
        idle.push(stream);
    }
    // The agent accepted them all: they are its sockets, not just the kernel's queue.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = accepted(pid, port);
        if seen >= IDLE {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent accepted {seen} of {IDLE} connections; the listen queue:\n{}\nlog:\n{}",
            listen_queue(port),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    for round in 0..10 {
        let started = Instant::now();
        let (status, body) = http(agent.addr, "GET", "/metrics", &[], "")
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let took = started.elapsed();
        assert_eq!(status, 200, "round {round}: {body}");
        assert!(body.contains("lookout_build_info"), "round {round}");
        assert!(
            took < Duration::from_secs(1),
            "round {round}: /metrics took {took:?} beside {IDLE} idle connections"
        );
    }
    // ... and the idle ones were all still open meanwhile.
    let held = accepted(pid, port);
    let elapsed = opened.elapsed();
    assert!(
        elapsed < HEADER_READ_TIMEOUT,
        "the machine was too slow to check within the header read timeout ({elapsed:?})"
    );
    assert!(
        held >= IDLE,
        "the agent holds {held} of the {IDLE} idle connections"
    );

    // The agent closes each idle connection once the header read timeout has passed.
    let deadline = opened + HEADER_READ_TIMEOUT + Duration::from_secs(10);
    for (i, stream) in idle.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 512];
        let closed = loop {
            match stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        assert!(
            closed,
            "idle connection {i} still open {:?} after it was opened",
            opened.elapsed()
        );
    }
    assert!(
        opened.elapsed() >= HEADER_READ_TIMEOUT,
        "closed before the header read timeout"
    );
    agent.wait_until(
        "the agent letting go of the idle connections",
        Duration::from_secs(5),
        || accepted(pid, port) == 0,
    );
}
