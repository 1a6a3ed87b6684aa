//! Shared helpers of the integration tests: the `lookout` binary, free ports, an agent
//! started on a config, a small HTTP client, an exposition parser, peer programs, and a
//! headless browser ([`browser`]).
//!
//! The tests drive the real binary over real loopback HTTP. They need it built first
//! (`cargo build -p lookout`, which `scripts/test.sh` does); `LOOKOUT_BIN` overrides the path.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod browser;
pub mod grafana;
pub mod postgres;
pub mod stack;

/// Path of the `lookout` binary under test.
pub fn lookout_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LOOKOUT_BIN") {
        return PathBuf::from(p);
    }
    // Test executables live in target/<profile>/deps; the binary in target/<profile>.
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("lookout"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p lookout` (scripts/test.sh does), or set LOOKOUT_BIN",
        bin.display()
    );
    bin
}

/// A `Command` for the lookout binary.
pub fn lookout() -> Command {
    let mut cmd = Command::new(lookout_bin());
    cmd.env("LOOKOUT_LOG", "info");
    cmd
}

/// Runs `command` to its end and returns its standard output; fails the test, with the
/// command, its exit status and everything it printed, unless it succeeded.
pub fn stdout_of_success(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command:?} exited with {}:\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The `.yaml` files directly in `dir`, sorted; fails the test when there are none.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .yaml files in {}", dir.display());
    files
}

/// Fails the test, saying how to install `program`, when it is not on PATH.
pub fn require(program: &str, debian_package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{program}` is not installed; this test needs it. Install it with \
             `apt-get install -y {debian_package}`, or run `scripts/test.sh`, which installs every test peer."
        )
    })
}

/// A peer process killed on drop.
#[derive(Debug)]
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a real `redis-server` on loopback `port` without persistence, with `extra`
/// arguments (e.g. `["--maxmemory", "64mb"]`), and waits until it answers PING.
pub fn redis_server(port: u16, extra: &[&str]) -> Peer {
    let server = require("redis-server", "redis-server");
    let peer = Peer(
        Command::new(server)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis_commands(port, "PING\n").is_ok_and(|r| r.starts_with("+PONG")) {
        assert!(
            Instant::now() < deadline,
            "redis-server did not start on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    peer
}

/// Sends inline Redis commands (one per line) on a fresh connection, then `QUIT`, and
/// returns every reply: when it returns, the server has run them all.
pub fn redis_commands(port: u16, commands: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(commands.as_bytes())?;
    stream.write_all(b"QUIT\r\n")?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    Ok(out)
}

/// Runs `python3` with `args` as a server that will listen on loopback `port`, and waits
/// until it accepts connections; `what` names it in the failure message.
pub fn python_server<S: AsRef<std::ffi::OsStr>>(args: &[S], port: u16, what: &str) -> Peer {
    let peer = Peer(
        Command::new(require("python3", "python3"))
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}")),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    peer
}

/// Starts `tests/support/http_receiver.py` on `port`, recording to `out` (see its doc for
/// `mode`), and waits until it accepts connections.
pub fn http_receiver(port: u16, out: &Path, mode: &str, secret: Option<&str>) -> Peer {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/http_receiver.py");
    let mut args = vec![
        script.into_os_string(),
        port.to_string().into(),
        out.as_os_str().to_owned(),
        mode.into(),
    ];
    args.extend(secret.map(Into::into));
    python_server(&args, port, "the HTTP receiver")
}

/// The requests an [`http_receiver`] recorded so far.
pub fn received(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("receiver record"))
        .collect()
}

/// Runs the real `promtool check metrics` on `text` and fails the test, showing the
/// report and the text, unless it passes without a single lint.
pub fn assert_promtool_accepts_metrics(text: &str) {
    let promtool = require("promtool", "prometheus");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}\n---\n{text}"
    );
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory under the system temp dir.
    pub fn new(tag: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("lookout-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running agent, killed on drop.
#[derive(Debug)]
pub struct Agent {
    /// The child process.
    pub child: Child,
    /// Where its HTTP server listens.
    pub addr: SocketAddr,
    /// Its scratch directory (config, data dir, logs).
    pub dir: TempDir,
    /// The configuration file it runs on.
    pub config_path: PathBuf,
}

impl Agent {
    /// Starts `lookout run` on a config whose `agent:` section is filled in here (listen on a
    /// free port, data dir in a scratch dir, host label `test-host`), followed by `rest`
    /// (YAML for the other sections). Waits until `/readyz` answers 200.
    pub fn start(rest: &str) -> Agent {
        Agent::start_in(TempDir::new("agent"), &[], rest)
    }

    /// [`Agent::start`] in `dir`, after writing `files` (name, content) there: rule files,
    /// secrets, anything `rest` names by a path relative to the configuration.
    pub fn start_in(dir: TempDir, files: &[(&str, &str)], rest: &str) -> Agent {
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("write a file of the agent");
        }
        let port = free_port();
        let config = format!(
            "agent:\n  hostname: test-host\n  listen: 127.0.0.1:{port}\n  data_dir: {}\n{rest}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("lookout.yaml");
        std::fs::write(&config_path, config).expect("write config");
        Agent::start_with_config(&config_path, port, dir)
    }

    /// Starts `lookout run -c config_path`, expecting it on `port`.
    pub fn start_with_config(config_path: &Path, port: u16, dir: TempDir) -> Agent {
        let child = Agent::spawn(config_path, dir.path());
        let agent = Agent {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            config_path: config_path.to_path_buf(),
        };
        agent.wait_ready(Duration::from_secs(30));
        agent
    }

    fn spawn(config_path: &Path, dir: &Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.log"))
            .expect("log file");
        lookout()
            .arg("run")
            .arg("-c")
            .arg(config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lookout")
    }

    /// Stops the agent with SIGTERM, waits for it, and starts it again on the same
    /// configuration, data directory and port (its log continues in the same file).
    pub fn restart(&mut self) {
        self.signal("TERM");
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "agent exited with {status:?}:\n{}",
            self.log()
        );
        self.start_again();
    }

    /// Kills the agent with SIGKILL (no chance to save or drain anything).
    pub fn crash(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    /// Starts the agent again after [`Agent::crash`] or an exit.
    pub fn start_again(&mut self) {
        self.child = Agent::spawn(&self.config_path, self.dir.path());
        self.wait_ready(Duration::from_secs(30));
    }

    /// GET `path` and parse the JSON answer, expecting 200.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// POST `/-/reload`, with `Authorization: Bearer <token>` when `token` is given.
    pub fn reload(&self, token: Option<&str>) -> (u16, String) {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("Authorization", b.as_str()))
            .collect();
        http(self.addr, "POST", "/-/reload", &headers, "")
            .unwrap_or_else(|e| panic!("POST /-/reload: {e}; log:\n{}", self.log()))
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok((200, _)) = http(self.addr, "GET", "/readyz", &[], "") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "agent not ready within {limit:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET `path`, expecting an answer.
    pub fn get(&self, path: &str) -> (u16, String) {
        http(self.addr, "GET", path, &[], "")
            .unwrap_or_else(|e| panic!("GET {path}: {e}; log:\n{}", self.log()))
    }

    /// The current exposition, parsed.
    pub fn metrics(&self) -> Vec<MetricSample> {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        parse_exposition(&body)
    }

    /// Polls `/metrics` until `pick` returns a value, for up to `limit`.
    pub fn wait_for<T>(
        &self,
        limit: Duration,
        mut pick: impl FnMut(&[MetricSample]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = pick(&self.metrics()) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "condition not met within {limit:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls `ok` every 100 ms until it holds, for up to `limit`; on timeout fails the test
    /// naming `what`, with the agent's log.
    pub fn wait_until(&self, what: &str, limit: Duration, ok: impl FnMut() -> bool) {
        poll_until(what, limit, ok, || self.log());
    }

    /// How many runs collector `name` has completed (`/api/v1/status`).
    pub fn collector_runs(&self, name: &str) -> u64 {
        let status = self.json("/api/v1/status");
        status["collectors"][name]["runs"]
            .as_u64()
            .unwrap_or_else(|| panic!("no collector {name} in {status}"))
    }

    /// Waits until collector `name` has completed three more runs than when called. At
    /// least the last two started after the call, so what `/metrics` shows of it then, rates
    /// and ratios over the interval between those two included, was measured after the call.
    pub fn wait_for_runs_from_now(&self, name: &str) {
        let target = self.collector_runs(name) + 3;
        self.wait_until(
            &format!("three more runs of {name}"),
            Duration::from_secs(30),
            || self.collector_runs(name) >= target,
        );
    }

    /// Sends a signal to the agent.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One sample of a parsed exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    /// Metric name.
    pub name: String,
    /// Labels, `host` included.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// The first sample named `name` whose labels include every `(k, v)` of `with`.
pub fn find<'a>(
    samples: &'a [MetricSample],
    name: &str,
    with: &[(&str, &str)],
) -> Option<&'a MetricSample> {
    samples.iter().find(|s| {
        s.name == name
            && with
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// The value of the first sample [`find`] picks.
pub fn value(samples: &[MetricSample], name: &str, with: &[(&str, &str)]) -> Option<f64> {
    find(samples, name, with).map(|s| s.value)
}

/// Parses Prometheus text exposition (comments skipped; escapes in label values decoded).
pub fn parse_exposition(text: &str) -> Vec<MetricSample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name_labels, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match name_labels.split_once('{') {
            None => (name_labels.to_string(), BTreeMap::new()),
            Some((name, rest)) => (
                name.to_string(),
                parse_labels(rest.strip_suffix('}').expect("closing brace")),
            ),
        };
        out.push(MetricSample {
            name,
            labels,
            value,
        });
    }
    out
}

fn parse_labels(mut s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"").expect("label =\"");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => break,
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.to_string(), value);
        s = rest[end..].strip_prefix(',').unwrap_or(&rest[end..]);
    }
    labels
}

/// A minimal HTTP/1.1 request over loopback: returns status and body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    http_within(addr, method, path, headers, body, Duration::from_secs(10))
}

/// [`http`], waiting up to `limit` for the answer.
pub fn http_within(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    limit: Duration,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(limit))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let raw = read_answer(&mut stream)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {text:?}")))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

/// An answer's bytes: up to its `Content-Length` when it has one (a server may keep the
/// connection open despite `Connection: close`, as chromedriver does), else to the close.
fn read_answer(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head.lines().find_map(|l| {
                l.strip_prefix("content-length:")
                    .and_then(|n| n.trim().parse::<usize>().ok())
            });
            if let Some(length) = length
                && raw.len() >= end + 4 + length
            {
                raw.truncate(end + 4 + length);
                return Ok(raw);
            }
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// The Python interpreter that has aiosmtpd: the Debian package installs it for
/// `/usr/bin/python3`, which may not be the first `python3` on PATH.
pub fn python_with_aiosmtpd() -> PathBuf {
    for candidate in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "python3 cannot import aiosmtpd; this test needs a real SMTP server: \
         install with apt-get install -y python3-aiosmtpd"
    );
}

/// Polls `ok` every 100 ms until it holds; fails after `limit` naming `what`, with
/// `context()` (an agent's log) to show why.
pub fn poll_until(
    what: &str,
    limit: Duration,
    mut ok: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}; log:\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Online CPUs, counted from `/proc/stat` by the test (not by the agent).
pub fn online_cpus() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .expect("/proc/stat")
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count() as f64
}

/// CPU seconds (user + system) of process `pid` so far, read by the test from
/// `/proc/<pid>/stat`.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("comm")
        .1
        .split_whitespace()
        .collect();
    // after the comm: state is field 3, utime 14 and stime 15 (1-based over the line), in
    // clock ticks of USER_HZ, 100 on Linux
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_escapes() {
        let s = parse_exposition(
            "# HELP x y\nm{host=\"a\",mountpoint=\"/x \\\"q\\\" \\\\ \\n\"} 1.5\nn 2\n",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels["mountpoint"], "/x \"q\" \\ \n");
        assert_eq!(s[0].value, 1.5);
        assert_eq!(s[1].name, "n");
    }
}
