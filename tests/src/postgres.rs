//! A real PostgreSQL server from Debian's packages, in a scratch directory on a free
//! loopback port, for the tests; and `psql` to talk to it.
//!
//! PostgreSQL refuses to run as root: when the tests run as root, the server and `initdb`
//! run as the `postgres` system user that Debian's package creates (through `setpriv`,
//! which runs the program in its own process, so that signals reach the server itself).
//! Every login needs a password (SCRAM); the superuser is `postgres` with [`SUPERUSER_PASSWORD`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TempDir, free_port};

/// The superuser's password.
pub const SUPERUSER_PASSWORD: &str = "test-superuser";

/// The directory of the newest installed server's programs (`/usr/lib/postgresql/N/bin`);
/// fails the test, saying how to install it, when there is none.
pub fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server is installed (/usr/lib/postgresql/N/bin/postgres); this test \
             needs one. Install it with `apt-get install -y postgresql`, or run \
             `scripts/test.sh`, which installs every test peer."
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A server program run as the user PostgreSQL accepts (`postgres` when we are root).
fn server_command(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new(crate::require("setpriv", "util-linux"));
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// A scratch directory the server's user owns.
fn server_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    if is_root() {
        let out = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .output()
            .expect("chown");
        assert!(
            out.status.success(),
            "chown: {out:?} (is the `postgres` user there? `apt-get install -y postgresql` creates it)"
        );
    }
    dir
}

/// Runs a server tool to its end; fails the test, with what it printed, unless it succeeded.
fn run_tool(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running server, stopped (fast shutdown) and removed on drop.
#[derive(Debug)]
pub struct PgServer {
    /// Its loopback port.
    pub port: u16,
    dir: TempDir,
    settings: Vec<String>,
    child: Option<Child>,
}

impl PgServer {
    /// `initdb` in a scratch directory and start it on a free port, with `settings`
    /// (`name=value`, e.g. `shared_preload_libraries=pg_stat_statements`).
    pub fn start(settings: &[&str]) -> PgServer {
        let bin = bin_dir();
        let dir = server_dir("postgres");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).expect("write pwfile");
        if is_root() {
            let _ = Command::new("chown").arg("postgres").arg(&pwfile).status();
        }
        run_tool(
            server_command(&bin.join("initdb"))
                .arg("-D")
                .arg(dir.path().join("data"))
                .args([
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ])
                .arg(format!("--pwfile={}", pwfile.display())),
            "initdb",
        );
        let mut server = PgServer {
            port: free_port(),
            dir,
            settings: settings.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.resume();
        server
    }

    /// A streaming replica of this server (`pg_basebackup -R`), started on its own port.
    pub fn replica(&self) -> PgServer {
        let dir = server_dir("postgres-replica");
        run_tool(
            server_command(&bin_dir().join("pg_basebackup"))
                .arg("-D")
                .arg(dir.path().join("data"))
                .args([
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                ])
                .args(["-p", &self.port.to_string()])
                .env("PGPASSWORD", SUPERUSER_PASSWORD),
            "pg_basebackup",
        );
        let mut replica = PgServer {
            port: free_port(),
            dir,
            settings: self.settings.clone(),
            child: None,
        };
        replica.resume();
        replica
    }

    /// Starts the server again (after [`PgServer::stop`]) on the same port and data.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let bin = bin_dir();
        let mut cmd = server_command(&bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
        for setting in &self.settings {
            cmd.args(["-c", setting]);
        }
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.try_psql("postgres", "SELECT 1").is_err() {
            assert!(
                Instant::now() < deadline,
                "postgres did not start on {}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (fast shutdown: sessions are ended) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A `psql` command as the superuser on `database`, unaligned, tuples only.
    pub fn psql_command(&self, database: &str) -> Command {
        let mut cmd = Command::new(crate::require("psql", "postgresql-client"));
        cmd.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-h",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            database,
        ])
        .env("PGPASSWORD", SUPERUSER_PASSWORD)
        .env("PGCONNECT_TIMEOUT", "5");
        cmd
    }

    fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = self
            .psql_command(database)
            .args(["-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs `sql` on `database` as the superuser and returns its output (rows of
    /// `|`-separated values); fails the test on an error.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.try_psql(database, sql)
            .unwrap_or_else(|e| panic!("psql {sql:?}: {e}"))
    }

    /// A session held open (idle) until the child is dropped or killed.
    pub fn idle_session(&self, database: &str) -> crate::Peer {
        let child = self
            .psql_command(database)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start psql");
        crate::Peer(child)
    }

    /// Creates the agent's role `lookout` with `password`, in `pg_monitor`, as the
    /// documentation tells operators to.
    pub fn create_monitor_role(&self, password: &str) {
        self.psql(
            "postgres",
            &format!("CREATE ROLE lookout LOGIN PASSWORD '{password}' IN ROLE pg_monitor"),
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
