//! Packaging (`packaging/`, `docs/install.md`): the Debian package cargo-deb builds, the
//! systemd unit, the container image's Dockerfile and configuration, and the Kubernetes
//! manifests.
//!
//! The .deb is built once per test run, with `cargo deb --no-build --profile dev`: it
//! packages the debug binary the suite has already built (`scripts/test.sh` builds it before
//! the tests). The package's layout, control files and maintainer scripts do not depend on
//! the profile (`target/release/` in the assets is cargo-deb's placeholder for whichever
//! profile is packaged), while a release build (fat LTO, one codegen unit) would add about
//! three and a half minutes on two cores for the same checks. cargo-deb warns that the dev
//! profile is meant for testing only; `scripts/test.sh` installs the version this was
//! written against.
//!
//! No Docker engine or Kubernetes cluster is needed: the Dockerfile and the manifests are
//! checked statically (they parse, every file the image build copies exists, the pieces
//! agree with each other), and their agent configurations pass `lookout check`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use lookout_tests::{TempDir, lookout_bin, require};
use serde_json::Value;

/// The repository root (the workspace, and the Docker build context).
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `cmd`, failing the test with its output unless it exits 0.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The default rule files, `rules/*.yaml` (not their tests in `rules/tests/`), by file name.
fn default_rule_files() -> BTreeMap<String, PathBuf> {
    let dir = repo().join("rules");
    let files: BTreeMap<String, PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    assert!(!files.is_empty(), "no rule files in {}", dir.display());
    files
}

/// `lookout check -c config`: its "ok" line, or the test fails with every problem.
fn check_ok(bin: &Path, config: &Path) -> String {
    let out = run(Command::new(bin).arg("check").arg("-c").arg(config));
    stdout(&out).trim().to_string()
}

/// How many rules `lookout check` reports on its "ok, N rules" line.
fn rule_count(ok_line: &str) -> usize {
    ok_line
        .rsplit_once("ok, ")
        .and_then(|(_, rest)| rest.strip_suffix(" rules"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rule count in {ok_line:?}"))
}

/// How many rules the binary has built in (what an empty configuration loads).
fn built_in_rule_count() -> usize {
    let dir = TempDir::new("packaging-empty");
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "").unwrap();
    rule_count(&check_ok(&lookout_bin(), &empty))
}

/// Every document of a YAML file as JSON, read by Debian's PyYAML, whose YAML 1.1 reading
/// (`yes` is a boolean, `0755` octal) is the one kubectl's parser shares.
fn yaml_documents(path: &Path) -> Vec<Value> {
    const SCRIPT: &str = "import json, sys, yaml\n\
        with open(sys.argv[1]) as f:\n    docs = list(yaml.safe_load_all(f))\n\
        print(json.dumps(docs, default=str))";
    let python = Path::new("/usr/bin/python3");
    assert!(
        python.exists(),
        "/usr/bin/python3 is not installed; this test needs it. Install it with \
         `apt-get install -y python3-yaml`, or run `scripts/test.sh`."
    );
    let out = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(path)
        .output()
        .expect("run /usr/bin/python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'yaml'"),
        "Debian's python3 has no yaml module; this test needs it. Install it with \
         `apt-get install -y python3-yaml`, or run `scripts/test.sh`."
    );
    assert!(
        out.status.success(),
        "{} is not valid YAML:\n{stderr}",
        path.display()
    );
    serde_json::from_slice(&out.stdout).expect("python's JSON")
}

/// The one document of a YAML file.
fn yaml_document(path: &Path) -> Value {
    let mut docs = yaml_documents(path);
    assert_eq!(docs.len(), 1, "{}: expected one document", path.display());
    docs.remove(0)
}

/// Whether a packaged agent configuration listens beyond loopback; if it does, it must
/// ask for both tokens (the API token for POSTs, the read token for what Prometheus and
/// anyone else reads), from absolute paths. None may ship `allow_unauthenticated: true`.
fn exposed_with_tokens(config: &Value, what: &str) -> bool {
    assert_ne!(
        config.pointer("/agent/allow_unauthenticated"),
        Some(&Value::Bool(true)),
        "{what}: a packaged configuration never allows unauthenticated access"
    );
    let listen = config
        .pointer("/agent/listen")
        .and_then(Value::as_str)
        .unwrap_or(lookout::settings::agent::DEFAULT_LISTEN);
    let addr: std::net::SocketAddr = listen
        .parse()
        .unwrap_or_else(|e| panic!("{what}: agent.listen {listen:?}: {e}"));
    if lookout::settings::agent::is_loopback(addr.ip()) {
        return false;
    }
    for key in ["api_token_file", "read_token_file"] {
        let file = config
            .pointer(&format!("/agent/{key}"))
            .and_then(Value::as_str);
        assert!(
            file.is_some_and(|f| f.starts_with('/')),
            "{what}: listens on {listen} without agent.{key}"
        );
    }
    true
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v:#}"))
}

// ---------------------------------------------------------------------------------------
// The Debian package
// ---------------------------------------------------------------------------------------

/// The .deb, built once for every test of this file (a test that needs it first builds it;
/// the others wait). Kept under the target directory, one directory per test process.
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(build_deb)
}

fn build_deb() -> PathBuf {
    require("dpkg-deb", "dpkg");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let version = Command::new(&cargo).args(["deb", "--version"]).output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "cargo-deb is not installed; this test needs it. Install it with \
         `cargo install cargo-deb --locked --version 3.8.0`, or run `scripts/test.sh`."
    );
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    remove_stale_deb_dirs(&tmp);
    let out_dir = tmp.join(format!("packaging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let started = Instant::now();
    run(Command::new(&cargo)
        .current_dir(repo())
        .args(["deb", "-p", "lookout", "--no-build", "--profile", "dev"])
        .arg("-o")
        .arg(&out_dir));
    eprintln!("cargo deb: {:.1} s", started.elapsed().as_secs_f64());
    let debs: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "cargo deb made {debs:?}");
    debs.into_iter().next().unwrap()
}

/// Removes the package directories of earlier test processes that are gone.
fn remove_stale_deb_dirs(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("packaging-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// One line of `dpkg-deb --contents`: mode string and path (without the leading `.`).
fn deb_contents(deb: &Path) -> BTreeMap<String, String> {
    let out = run(Command::new("dpkg-deb").arg("--contents").arg(deb));
    stdout(&out)
        .lines()
        .map(|line| {
            let mode = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            let path = line
                .split_once(" ./")
                .map(|(_, p)| format!("/{p}"))
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            (path.trim_end_matches('/').to_string(), mode)
        })
        .collect()
}

/// The package's data extracted into `dir` (`dpkg-deb -x`), and its control files into
/// `dir/DEBIAN` (`dpkg-deb -e`).
fn extract(deb: &Path, dir: &Path) {
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir));
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(deb)
        .arg(dir.join("DEBIAN")));
}

#[test]
fn deb_holds_the_binary_unit_config_default_rules_and_docs() {
    let deb = deb();
    let contents = deb_contents(deb);
    let mode = |path: &str| {
        contents
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{contents:#?}"))
            .as_str()
    };
    assert_eq!(mode("/usr/bin/lookout"), "-rwxr-xr-x");
    assert_eq!(
        mode("/usr/lib/systemd/system/lookout.service"),
        "-rw-r--r--"
    );
    assert_eq!(mode("/etc/lookout/lookout.yaml"), "-rw-r--r--");
    assert_eq!(mode("/usr/share/doc/lookout/README.md"), "-rw-r--r--");
    assert_eq!(mode("/usr/share/doc/lookout/install.md"), "-rw-r--r--");
    assert_eq!(mode("/usr/share/doc/lookout/copyright"), "-rw-r--r--");
    let rules = default_rule_files();
    let packaged_rules: BTreeSet<String> = contents
        .keys()
        .filter_map(|p| p.strip_prefix("/etc/lookout/rules/"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        packaged_rules,
        rules.keys().cloned().collect::<BTreeSet<_>>(),
        "/etc/lookout/rules/ must hold exactly the default rules (rules/*.yaml, not rules/tests)"
    );

    // The files are the repository's, unchanged.
    let dir = TempDir::new("packaging-deb");
    extract(deb, dir.path());
    let same = |packaged: &str, source: PathBuf| {
        assert_eq!(
            read(&dir.path().join(packaged)),
            read(&source),
            "{packaged} differs from {}",
            source.display()
        );
    };
    same(
        "usr/lib/systemd/system/lookout.service",
        repo().join("packaging/systemd/lookout.service"),
    );
    same(
        "etc/lookout/lookout.yaml",
        repo().join("packaging/lookout.yaml"),
    );
    same("usr/share/doc/lookout/README.md", repo().join("README.md"));
    for (name, source) in &rules {
        same(&format!("etc/lookout/rules/{name}"), source.clone());
    }

    // Control fields.
    let field = |name: &str| {
        let out = run(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name));
        stdout(&out).trim().to_string()
    };
    assert_eq!(field("Package"), "lookout");
    assert_eq!(field("Section"), "admin");
    assert!(
        field("Version").starts_with(env!("CARGO_PKG_VERSION")),
        "{}",
        field("Version")
    );
    let depends = field("Depends");
    assert!(
        depends.contains("libc6") && depends.contains("adduser"),
        "Depends: {depends}"
    );
    assert!(!field("Maintainer").is_empty());
}

#[test]
fn deb_config_and_rules_are_conffiles_and_the_maintainer_scripts_are_complete() {
    let dir = TempDir::new("packaging-ctl");
    extract(deb(), dir.path());
    let control = dir.path().join("DEBIAN");

    let conffiles: BTreeSet<String> = read(&control.join("conffiles"))
        .lines()
        .map(str::to_string)
        .collect();
    let mut expected: BTreeSet<String> = default_rule_files()
        .keys()
        .map(|name| format!("/etc/lookout/rules/{name}"))
        .collect();
    expected.insert("/etc/lookout/lookout.yaml".into());
    assert_eq!(
        conffiles, expected,
        "dpkg must keep edited configuration and rules on upgrade"
    );

    let script = |name: &str| -> String {
        let path = control.join(name);
        let text = read(&path);
        let mode = std::fs::metadata(&path).unwrap();
        assert!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o111 != 0,
            "{name} is not executable"
        );
        run(Command::new("sh").arg("-n").arg(&path));
        assert!(
            !text.contains("#DEBHELPER#"),
            "{name}: the debhelper token was not replaced"
        );
        text
    };

    // postinst: the user and the state directory first, then cargo-deb's systemd snippets
    // (exactly once: a second copy of the token, e.g. in a comment, would be replaced too).
    let postinst = script("postinst");
    let user = postinst
        .find("adduser --system")
        .expect("postinst creates the system user");
    assert!(
        postinst.contains("getent passwd lookout"),
        "idempotent user creation"
    );
    let state = postinst
        .find("/var/lib/lookout")
        .expect("postinst prepares the state directory");
    assert!(
        postinst.contains("lookout check -c"),
        "postinst checks the configuration"
    );
    assert_eq!(
        postinst
            .matches("deb-systemd-helper enable lookout.service")
            .count(),
        1,
        "{postinst}"
    );
    assert_eq!(
        postinst
            .matches("deb-systemd-invoke $_dh_action lookout.service")
            .count(),
        1,
        "{postinst}"
    );
    let enable = postinst.find("deb-systemd-helper enable").unwrap();
    assert!(
        user < enable && state < enable,
        "the service must be enabled and started after its user exists:\n{postinst}"
    );

    let prerm = script("prerm");
    assert!(
        prerm.contains("deb-systemd-invoke stop lookout.service"),
        "{prerm}"
    );

    let postrm = script("postrm");
    assert!(
        postrm.contains("deb-systemd-helper purge lookout.service"),
        "{postrm}"
    );
    let purge = postrm.find("purge)").expect("postrm handles purge");
    let remove_state = postrm
        .find("rm -rf /var/lib/lookout")
        .expect("postrm removes the state on purge");
    assert!(
        purge < remove_state,
        "the state may be removed on purge only:\n{postrm}"
    );
}

#[test]
fn packaged_binary_accepts_the_packaged_config_and_rules() {
    let dir = TempDir::new("packaging-check");
    extract(deb(), dir.path());
    let root = dir.path();
    let bin = root.join("usr/bin/lookout");

    let config = yaml_document(&root.join("etc/lookout/lookout.yaml"));
    assert_eq!(str_at(&config, "/agent/data_dir"), "/var/lib/lookout");
    assert!(
        !exposed_with_tokens(&config, "the packaged lookout.yaml"),
        "the package listens on loopback only"
    );
    assert_eq!(
        config.pointer("/rules/files"),
        Some(&serde_json::json!(["/etc/lookout/rules/*.yaml"])),
        "the packaged config must load the packaged rules"
    );

    // The config names /etc/lookout/rules, which is not installed here: point a copy at
    // the extracted rules instead.
    let text = read(&root.join("etc/lookout/lookout.yaml"));
    let rules_dir = root.join("etc/lookout/rules");
    let relocated = text.replace("/etc/lookout/rules/", &format!("{}/", rules_dir.display()));
    let copy = root.join("lookout-relocated.yaml");
    std::fs::write(&copy, relocated).unwrap();
    let ok = check_ok(&bin, &copy);
    // Every packaged rule file was loaded: as many rules as the binary has built in (the
    // same files, embedded).
    assert_eq!(rule_count(&ok), built_in_rule_count(), "{ok}");

    // And every rule file on its own.
    for name in default_rule_files().keys() {
        let one = root.join(format!("one-{name}"));
        std::fs::write(
            &one,
            format!("rules:\n  files: ['{}']\n", rules_dir.join(name).display()),
        )
        .unwrap();
        check_ok(&bin, &one);
    }
}

// ---------------------------------------------------------------------------------------
// The systemd unit
// ---------------------------------------------------------------------------------------

/// The unit, with `/usr/bin/lookout` replaced by the binary under test. `systemd-analyze
/// verify` insists that every Exec*= program exists and is executable, and the tests must
/// not install anything into /usr/bin; only that path differs from the packaged file.
fn unit_for_verify(dir: &Path) -> PathBuf {
    let unit = read(&repo().join("packaging/systemd/lookout.service"));
    assert!(unit.contains("/usr/bin/lookout "), "{unit}");
    let copy = dir.join("lookout.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/lookout", &lookout_bin().display().to_string()),
    )
    .unwrap();
    copy
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let analyze = require("systemd-analyze", "systemd");
    let dir = TempDir::new("packaging-unit");
    let unit = unit_for_verify(dir.path());
    let out = run(Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&unit));
    // verify exits 0 on unknown keys and unparsable values, and only says so: any word
    // from it is a failure.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.trim().is_empty(), "systemd-analyze verify:\n{said}");
}

/// The overall exposure a `systemd-analyze security` report ends with
/// (`→ Overall exposure level for lookout.service: 1.4 OK 🙂`).
fn overall_exposure(report: &str) -> Option<f64> {
    report.lines().find_map(|line| {
        let (_, rest) = line.split_once("Overall exposure level for ")?;
        rest.split_once(": ")?
            .1
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// The settings of a `systemd-analyze security` report that add to the exposure (the `✗`
/// rows), worst first, each as `0.5 PrivateNetwork= (Service has access to the host's
/// network)`.
fn exposed_settings(report: &str) -> Vec<String> {
    let mut rows: Vec<(f64, String)> = report
        .lines()
        .filter_map(|line| {
            let row = line.trim_start().strip_prefix('✗')?.trim();
            let (rest, exposure) = row.rsplit_once(char::is_whitespace)?;
            let exposure: f64 = exposure.parse().ok()?;
            let (name, description) = rest.trim().split_once(char::is_whitespace)?;
            Some((
                exposure,
                format!("{exposure} {name} ({})", description.trim()),
            ))
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    rows.into_iter().map(|(_, row)| row).collect()
}

#[test]
fn systemd_unit_exposure_is_at_most_1_5() {
    let analyze = require("systemd-analyze", "systemd");
    let dir = TempDir::new("packaging-security");
    let unit = unit_for_verify(dir.path());
    // systemd's own score of the hardening as a whole: 0 best, 10 worst; up to 1.5 is
    // "OK". `--offline` reads the file alone, with no running systemd; `--threshold` (in
    // tenths) makes it exit non-zero above the limit, and the report says by how much.
    let out = Command::new(&analyze)
        .args(["security", "--offline=true", "--threshold=15", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", analyze.display()));
    let report = String::from_utf8_lossy(&out.stdout);
    let exposure = overall_exposure(&report);
    let worst = exposed_settings(&report);
    assert!(
        out.status.success() && exposure.is_some_and(|e| e <= 1.5),
        "systemd-analyze security: overall exposure {exposure:?}, above 1.5 (exit {}). The \
         settings that add to it, worst first:\n  {}\n{}",
        out.status,
        worst.join("\n  "),
        String::from_utf8_lossy(&out.stderr)
    );
    // The report was read, not just its exit status: the rows that add up to the score.
    assert!(
        worst.iter().any(|row| row.contains("PrivateNetwork=")),
        "no exposed settings read from:\n{report}"
    );
}

/// `Key=value` settings of a unit file, every value of repeated keys, by key.
fn unit_settings(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut settings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') || line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
        settings
            .entry(key.trim().to_string())
            .or_default()
            .push(value.trim().to_string());
    }
    settings
}

#[test]
fn systemd_unit_runs_unprivileged_and_leaves_the_agent_what_it_reads() {
    let unit = unit_settings(&read(&repo().join("packaging/systemd/lookout.service")));
    let one = |key: &str| -> &str {
        match unit.get(key).map(Vec::as_slice) {
            Some([value]) => value,
            other => panic!("{key}: expected one value, found {other:?}"),
        }
    };
    for (key, value) in [
        ("User", "lookout"),
        (
            "ExecStartPre",
            "/usr/bin/lookout check -c /etc/lookout/lookout.yaml",
        ),
        (
            "ExecStart",
            "/usr/bin/lookout run -c /etc/lookout/lookout.yaml",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        // The packaged config's data_dir is the StateDirectory.
        ("StateDirectory", "lookout"),
        ("NoNewPrivileges", "yes"),
        ("PrivateUsers", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictRealtime", "yes"),
        ("SystemCallArchitectures", "native"),
    ] {
        assert_eq!(one(key), value, "{key}");
    }
    let config = yaml_document(&repo().join("packaging/lookout.yaml"));
    assert_eq!(str_at(&config, "/agent/data_dir"), "/var/lib/lookout");
    assert!(
        unit["SystemCallFilter"].contains(&"@system-service".to_string()),
        "{:?}",
        unit["SystemCallFilter"]
    );
    assert!(one("MemoryMax").ends_with('M'), "a MemoryMax= cap");
    // Room for the HTTP server's connection bound and everything else the agent opens.
    let open_files: u64 = one("LimitNOFILE").parse().expect("LimitNOFILE= a number");
    let needed = lookout::api::server::MAX_CONNECTIONS as u64 + lookout::api::server::RESERVED_FDS;
    assert!(open_files >= needed, "LimitNOFILE={open_files} < {needed}");

    // What would make the agent report wrong values or nothing (the unit's comments say
    // why): a placeholder over /home for statvfs(), hidden /proc entries, no netlink.
    assert_eq!(one("ProtectHome"), "read-only");
    assert!(
        unit.get("ProtectProc")
            .is_none_or(|v| v.iter().all(|p| p == "default")),
        "ProtectProc would hide /proc/1/mountinfo and other users' processes"
    );
    assert!(
        unit.get("ProcSubset")
            .is_none_or(|v| v.iter().all(|p| p == "all")),
        "ProcSubset=pid would hide /proc/stat, /proc/meminfo, ..."
    );
    let families: BTreeSet<&str> = one("RestrictAddressFamilies").split(' ').collect();
    for family in ["AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"] {
        assert!(
            families.contains(family),
            "RestrictAddressFamilies: {family}"
        );
    }
    assert!(!unit.contains_key("DynamicUser"), "a package-created user");
}

// ---------------------------------------------------------------------------------------
// Docker
// ---------------------------------------------------------------------------------------

/// One Dockerfile instruction: keyword (upper case), its flags (`--from=builder`) and the
/// rest of the line, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    flags: BTreeMap<String, String>,
    args: String,
}

fn dockerfile(path: &Path) -> Vec<Instruction> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in read(path).lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (keyword, mut rest) = line.split_once(' ').unwrap_or((&line, ""));
            let mut flags = BTreeMap::new();
            while let Some(flag) = rest.trim_start().strip_prefix("--") {
                let (word, after) = flag.split_once(' ').unwrap_or((flag, ""));
                let (name, value) = word.split_once('=').unwrap_or((word, ""));
                flags.insert(name.to_string(), value.to_string());
                rest = after;
            }
            Instruction {
                keyword: keyword.to_uppercase(),
                flags,
                args: rest.trim().to_string(),
            }
        })
        .collect()
}

/// The words of a shell-form or JSON-form (exec form) argument list.
fn words(args: &str) -> Vec<String> {
    if args.starts_with('[') {
        serde_json::from_str(args).unwrap_or_else(|e| panic!("{args}: {e}"))
    } else {
        args.split_whitespace().map(str::to_string).collect()
    }
}

/// Replaces `${NAME}` with the default of `ARG NAME=default`.
fn expand(text: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (name, value) in args {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}

/// The `include_str!`/`include_bytes!` files of the agent's sources, relative to the
/// repository root.
fn agent_includes() -> Vec<String> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|x| x == "rs") {
                found.push(path);
            }
        }
    }
    let root = repo();
    let mut sources = Vec::new();
    walk(&root.join("agent/src"), &mut sources);
    let mut includes = BTreeSet::new();
    for source in sources {
        let text = read(&source);
        for marker in ["include_str!(\"", "include_bytes!(\""] {
            for (at, _) in text.match_indices(marker) {
                let rest = &text[at + marker.len()..];
                let rel = &rest[..rest.find('"').unwrap()];
                let path = source.parent().unwrap().join(rel);
                let path = std::fs::canonicalize(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let rel = path.strip_prefix(&root).unwrap();
                includes.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    assert!(!includes.is_empty(), "the default rules are embedded");
    includes.into_iter().collect()
}

/// `cargo metadata --no-deps` of the workspace at `root`: its members with their targets
/// and declared dependencies, read from the manifests alone. (Without `--no-deps` cargo
/// reads the manifest of every crate of Cargo.lock, for every platform, so offline it
/// needs all of them in the local cargo cache, which a machine that only built for itself
/// does not have.)
fn workspace_metadata(root: &Path) -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = run(Command::new(cargo)
        .current_dir(root)
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml")));
    serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON")
}

/// Every target of every member of `metadata`, as (package, kind, name), with its source
/// file relative to `root`.
fn workspace_targets(metadata: &Value, root: &Path) -> BTreeMap<(String, String, String), PathBuf> {
    let root = std::fs::canonicalize(root).unwrap();
    let mut targets = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("package name");
        for target in package["targets"].as_array().expect("targets") {
            let src = PathBuf::from(target["src_path"].as_str().expect("src_path"));
            let src = src
                .strip_prefix(&root)
                .unwrap_or_else(|_| panic!("{}: outside {}", src.display(), root.display()));
            for kind in target["kind"].as_array().expect("target kinds") {
                targets.insert(
                    (
                        name.to_string(),
                        kind.as_str().unwrap().to_string(),
                        target["name"].as_str().unwrap().to_string(),
                    ),
                    src.to_path_buf(),
                );
            }
        }
    }
    targets
}

/// One `[[package]]` of a Cargo.lock.
#[derive(Debug, Clone)]
struct Locked {
    name: String,
    version: String,
    /// None for a path package (a workspace member).
    source: Option<String>,
    /// "name", or "name version" (with " (source)" when that is ambiguous too).
    dependencies: Vec<String>,
}

fn cargo_lock(text: &str) -> Vec<Locked> {
    fn quoted(value: &str) -> String {
        value
            .trim()
            .trim_end_matches(',')
            .trim_matches('"')
            .to_string()
    }
    let mut packages = Vec::new();
    let mut current: Option<Locked> = None;
    let mut in_dependencies = false;
    for line in text.lines() {
        if line.starts_with('[') {
            packages.extend(current.take());
            in_dependencies = false;
            if line == "[[package]]" {
                current = Some(Locked {
                    name: String::new(),
                    version: String::new(),
                    source: None,
                    dependencies: Vec::new(),
                });
            }
            continue;
        }
        let Some(package) = current.as_mut() else {
            continue;
        };
        if in_dependencies {
            if line.trim() == "]" {
                in_dependencies = false;
            } else {
                package.dependencies.push(quoted(line));
            }
        } else if let Some((key, value)) = line.split_once(" = ") {
            match key {
                "name" => package.name = quoted(value),
                "version" => package.version = quoted(value),
                "source" => package.source = Some(quoted(value)),
                "dependencies" => in_dependencies = value.trim() == "[",
                _ => {}
            }
        }
    }
    packages.extend(current);
    packages
}

/// Whether a Cargo version requirement (`^1.2`, `~0.3.1`, `=1.0.0`, `>=1, <2`, `*`)
/// accepts `version`.
fn requirement_accepts(requirement: &str, version: &str) -> bool {
    fn parts(v: &str) -> Vec<u64> {
        v.split(['-', '+'])
            .next()
            .unwrap_or("")
            .split('.')
            .map(|p| p.parse().unwrap_or_else(|_| panic!("version {v}")))
            .collect()
    }
    let have = parts(version);
    let have = [have[0], have[1], have[2]];
    requirement.split(',').map(str::trim).all(|comparator| {
        if comparator == "*" {
            return true;
        }
        let at = comparator
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or_else(|| panic!("requirement {requirement}"));
        let (op, want) = comparator.split_at(at);
        let want = parts(want);
        let low = [0, 1, 2].map(|i| want.get(i).copied().unwrap_or(0));
        // The exclusive upper bound of a caret or tilde requirement.
        let bump = |i: usize| {
            let mut high = [0; 3];
            high[..i].copy_from_slice(&low[..i]);
            high[i] = low[i] + 1;
            high
        };
        match op.trim() {
            "" | "^" => {
                let first = (0..want.len())
                    .find(|&i| low[i] != 0)
                    .unwrap_or(want.len() - 1);
                have >= low && have < bump(first)
            }
            "~" => have >= low && have < bump(if want.len() == 1 { 0 } else { 1 }),
            "=" => (0..want.len()).all(|i| have[i] == low[i]),
            ">=" => have >= low,
            ">" => have > low,
            "<=" => have <= low,
            "<" => have < low,
            other => panic!("requirement operator {other:?} in {requirement}"),
        }
    })
}

/// What keeps `cargo build --locked` from using `lock` for the workspace of `metadata`:
/// the path packages of the lock must be exactly the members, each at its version, and
/// each member's entry must name every dependency its manifest declares (every kind,
/// every platform: Cargo.lock covers them all) at a version the requirement accepts.
fn lock_problems(metadata: &Value, lock: &[Locked]) -> Vec<String> {
    let mut problems = Vec::new();
    let members = metadata["packages"].as_array().expect("packages");
    let member_names: BTreeSet<&str> = members
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let path_packages: BTreeSet<&str> = lock
        .iter()
        .filter(|p| p.source.is_none())
        .map(|p| p.name.as_str())
        .collect();
    if path_packages != member_names {
        problems.push(format!(
            "locked path packages {path_packages:?}, members {member_names:?}"
        ));
    }
    for member in members {
        let name = member["name"].as_str().unwrap();
        let version = member["version"].as_str().unwrap();
        let Some(entry) = lock.iter().find(|p| p.name == name && p.source.is_none()) else {
            continue;
        };
        if entry.version != version {
            problems.push(format!("{name} {version} is locked as {}", entry.version));
        }
        for dependency in member["dependencies"].as_array().expect("dependencies") {
            let dep = dependency["name"].as_str().unwrap();
            let requirement = dependency["req"].as_str().unwrap();
            let Some(line) = entry
                .dependencies
                .iter()
                .find(|l| l.split(' ').next() == Some(dep))
            else {
                problems.push(format!(
                    "{name}: its dependency {dep} is not in its lock entry"
                ));
                continue;
            };
            let candidates: Vec<&Locked> = lock
                .iter()
                .filter(|p| p.name == dep && line.split(' ').nth(1).is_none_or(|v| v == p.version))
                .collect();
            match candidates[..] {
                [locked] if requirement_accepts(requirement, &locked.version) => {}
                [locked] => problems.push(format!(
                    "{name}: {dep} {requirement} is locked at {}",
                    locked.version
                )),
                _ => problems.push(format!(
                    "{name}: {line:?} names {} lock entries",
                    candidates.len()
                )),
            }
        }
    }
    problems
}

#[test]
fn lock_check_accepts_the_lock_and_rejects_stale_ones() {
    let root = repo();
    let metadata = workspace_metadata(&root);
    let lock = cargo_lock(&read(&root.join("Cargo.lock")));
    assert_eq!(lock_problems(&metadata, &lock), Vec::<String>::new());

    // A dependency the manifest declares but the lock does not list.
    let mut missing = lock.clone();
    let entry = missing.iter_mut().find(|p| p.name == "lookout").unwrap();
    entry.dependencies.retain(|d| d != "anyhow");
    assert_eq!(
        lock_problems(&metadata, &missing),
        ["lookout: its dependency anyhow is not in its lock entry"]
    );
    // A locked version the requirement does not accept (a raised requirement).
    let mut old = lock.clone();
    let tokio = old.iter_mut().find(|p| p.name == "tokio").unwrap();
    tokio.version = "1.0.0".into();
    let problems = lock_problems(&metadata, &old);
    for member in ["lookout", "lookout-tests"] {
        assert!(
            problems.contains(&format!("{member}: tokio ^1.54 is locked at 1.0.0")),
            "{problems:?}"
        );
    }
    assert!(problems.iter().all(|p| p.contains("tokio")), "{problems:?}");
    // A member the lock does not know.
    let mut renamed = lock.clone();
    renamed
        .iter_mut()
        .find(|p| p.name == "lookout-tests")
        .unwrap()
        .name = "other".into();
    assert!(lock_problems(&metadata, &renamed)[0].starts_with("locked path packages"));

    for (requirement, version, accepts) in [
        ("^1.0.104", "1.0.104", true),
        ("^1.0.104", "1.9.0", true),
        ("^1.0.104", "1.0.103", false),
        ("^1.0.104", "2.0.0", false),
        ("^0.3.3", "0.3.9", true),
        ("^0.3.3", "0.4.0", false),
        ("^0.0.3", "0.0.4", false),
        ("~1.2.3", "1.2.9", true),
        ("~1.2.3", "1.3.0", false),
        ("=1.2.3", "1.2.3", true),
        ("=1.2.3", "1.2.4", false),
        (">=1.2, <1.5", "1.4.9", true),
        (">=1.2, <1.5", "1.5.0", false),
        ("*", "7.0.0", true),
    ] {
        assert_eq!(
            requirement_accepts(requirement, version),
            accepts,
            "{requirement} {version}"
        );
    }
}

#[test]
fn dockerfile_copies_what_the_build_needs_and_runs_the_checked_config() {
    let root = repo();
    let steps = dockerfile(&root.join("packaging/docker/Dockerfile"));
    let ignore = read(&root.join(".dockerignore"));
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for must in ["target", ".git"] {
        assert!(
            ignored.contains(&must),
            ".dockerignore must leave out {must}/"
        );
    }

    // ARG defaults, stages, and the build context the builder stage sees.
    let mut args = BTreeMap::new();
    let mut stage = 0;
    let context = TempDir::new("packaging-context");
    let mut workdir = String::from("/");
    let mut final_copies = BTreeMap::new();
    let (mut entrypoint, mut cmd, mut user) = (None, None, None);
    for step in &steps {
        match step.keyword.as_str() {
            "ARG" => {
                if let Some((name, value)) = step.args.split_once('=') {
                    args.insert(name.to_string(), value.to_string());
                }
            }
            "FROM" => {
                stage += 1;
                let image = expand(step.args.split_whitespace().next().unwrap(), &args);
                if stage == 1 {
                    // The toolchain of the workspace's rust-version, on bookworm.
                    let manifest = read(&root.join("Cargo.toml"));
                    let rust_version = manifest
                        .lines()
                        .find_map(|l| l.strip_prefix("rust-version = "))
                        .map(|v| v.trim_matches('"'))
                        .expect("workspace rust-version");
                    assert_eq!(image, format!("rust:{rust_version}-bookworm"));
                } else {
                    assert!(
                        image.contains("bookworm"),
                        "runtime {image}: the builder's glibc"
                    );
                }
            }
            "WORKDIR" => workdir = step.args.clone(),
            "COPY" if step.flags.contains_key("from") => {}
            "COPY" => {
                let mut words = words(&expand(&step.args, &args));
                let dest = words.pop().expect("COPY destination");
                for source in &words {
                    assert!(
                        !source.contains(['*', '?', '[']),
                        "{source}: name files, no patterns"
                    );
                    let path = root.join(source);
                    assert!(
                        path.exists(),
                        "the Dockerfile copies {source}, which is not in the repository"
                    );
                    let source = source.trim_start_matches("./").trim_end_matches('/');
                    assert!(
                        !ignored
                            .iter()
                            .any(|i| source == *i || source.starts_with(&format!("{i}/"))),
                        "{source} is left out of the build context by .dockerignore"
                    );
                    if stage == 1 {
                        // Lay the builder's files out as WORKDIR would have them.
                        assert_eq!(workdir, "/src", "the builder works in /src");
                        let dest_dir = context.path().join(dest.trim_start_matches("./"));
                        let target = if path.is_dir() || dest.ends_with('/') {
                            if path.is_dir() {
                                dest_dir
                            } else {
                                dest_dir.join(path.file_name().unwrap())
                            }
                        } else {
                            dest_dir
                        };
                        copy_tree(&path, &target);
                    } else {
                        final_copies.insert(dest.clone(), source.to_string());
                    }
                }
            }
            "ENTRYPOINT" => entrypoint = Some(words(&step.args)),
            "CMD" => cmd = Some(words(&step.args)),
            "USER" => user = Some(expand(&step.args, &args)),
            _ => {}
        }
    }
    assert_eq!(stage, 2, "a builder stage and a runtime stage");

    // What the builder copied is enough to load the workspace (both members, and every
    // library, binary and bench target of the repository's manifests; the integration tests
    // are left out on purpose), with a Cargo.lock that `cargo build --locked` accepts, and
    // holds every file the agent embeds (the rules).
    let metadata = workspace_metadata(context.path());
    let built = |targets: BTreeMap<(String, String, String), PathBuf>| {
        targets
            .into_iter()
            .filter(|((_, kind, _), _)| kind != "test")
            .collect::<BTreeMap<_, _>>()
    };
    let targets = built(workspace_targets(&metadata, context.path()));
    assert_eq!(
        targets,
        built(workspace_targets(&workspace_metadata(&root), &root)),
        "the workspace the builder sees has other targets than the repository's"
    );
    assert!(
        targets.keys().any(|(_, kind, _)| kind == "bench"),
        "the agent's benches: {targets:?}"
    );
    for source in targets.values() {
        assert!(
            context.path().join(source).is_file(),
            "the builder stage does not copy {}",
            source.display()
        );
    }
    let lock = context.path().join("Cargo.lock");
    assert!(lock.is_file(), "the builder stage does not copy Cargo.lock");
    let problems = lock_problems(&metadata, &cargo_lock(&read(&lock)));
    assert!(problems.is_empty(), "Cargo.lock: {problems:#?}");
    for include in agent_includes() {
        assert!(
            context.path().join(&include).exists(),
            "the agent embeds {include}, which the Dockerfile's builder stage does not copy"
        );
    }

    // The runtime: the agent as entry point, on the container config, as a non-root user.
    assert_eq!(
        entrypoint.as_deref(),
        Some(&["/usr/bin/lookout".to_string()][..])
    );
    let cmd = cmd.expect("CMD");
    assert_eq!(cmd[..2], ["run", "-c"]);
    let config_source = final_copies
        .get(&cmd[2])
        .unwrap_or_else(|| panic!("CMD reads {}, which no COPY provides", cmd[2]));
    let user = user.expect("USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("USER {user}: a numeric user"));
    assert_ne!(uid, 0, "the image must not run as root");

    // The container config: valid, and reading the host through the documented mounts.
    let config_path = root.join(config_source);
    check_ok(&lookout_bin(), &config_path);
    let config = yaml_document(&config_path);
    assert_eq!(str_at(&config, "/agent/proc_root"), "/host/proc");
    assert_eq!(str_at(&config, "/agent/rootfs"), "/host/root");
    assert_eq!(str_at(&config, "/agent/listen"), "0.0.0.0:9469");
    assert_eq!(str_at(&config, "/agent/data_dir"), "/var/lib/lookout");
    // Exposed, so both tokens, from the secrets directory the documented run mounts.
    assert!(exposed_with_tokens(
        &config,
        "packaging/docker/lookout.yaml"
    ));
    for key in ["api_token_file", "read_token_file"] {
        let file = str_at(&config, &format!("/agent/{key}"));
        assert!(file.starts_with("/run/secrets/"), "agent.{key}: {file}");
    }
    let docs = read(&root.join("docs/install.md"));
    let dockerfile_text = read(&root.join("packaging/docker/Dockerfile"));
    assert!(
        dockerfile_text.contains(":/run/secrets:ro"),
        "the Dockerfile's run example mounts the tokens"
    );
    for mount in [
        "-v /proc:/host/proc:ro",
        "-v /:/host/root:ro,rslave",
        ":/run/secrets:ro",
        "--net=host",
    ] {
        assert!(
            docs.contains(mount),
            "docs/install.md: `docker run ... {mount}`"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------------------

/// Every manifest of packaging/kubernetes by kind, after checking that each file parses
/// and that kustomization.yaml lists exactly the others.
fn kubernetes_manifests() -> BTreeMap<String, Value> {
    let dir = repo().join("packaging/kubernetes");
    let kustomization = yaml_document(&dir.join("kustomization.yaml"));
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("kustomization resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "kustomization.yaml resources");
    assert_eq!(str_at(&kustomization, "/namespace"), "lookout");

    let mut by_kind = BTreeMap::new();
    for file in &present {
        for doc in yaml_documents(&dir.join(file)) {
            assert!(doc["apiVersion"].is_string(), "{file}: apiVersion");
            let kind = str_at(&doc, "/kind").to_string();
            assert!(str_at(&doc, "/metadata/name").len() > 1, "{file}: name");
            assert!(
                by_kind.insert(kind.clone(), doc).is_none(),
                "{file}: a second {kind}"
            );
        }
    }
    by_kind
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == name))
        .unwrap_or_else(|| panic!("no {name:?} in {list:#}"))
}

#[test]
fn kubernetes_manifests_parse_and_fit_together() {
    let manifests = kubernetes_manifests();
    for kind in ["Namespace", "ConfigMap", "DaemonSet", "Service"] {
        assert!(manifests.contains_key(kind), "no {kind}");
    }
    let ds = &manifests["DaemonSet"];
    let pod = &ds["spec"]["template"];
    let spec = &pod["spec"];
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"],
        pod["metadata"]["labels"]
    );
    assert_eq!(spec["hostNetwork"], true, "the node's network namespace");

    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let agent = &containers[0];
    let security = &agent["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(
        security["capabilities"]["add"].is_null(),
        "no capability added"
    );
    assert!(agent["resources"]["requests"].is_object() && agent["resources"]["limits"].is_object());

    // The image's user (Dockerfile USER) is the pod's, and the one the init container
    // gives the state directory to.
    let uid = security["runAsUser"].as_u64().expect("runAsUser");
    let dockerfile = read(&repo().join("packaging/docker/Dockerfile"));
    assert!(
        dockerfile.contains(&format!("ARG LOOKOUT_UID={uid}")),
        "the Dockerfile's user is {uid}"
    );
    let init = named(&spec["initContainers"], "state-dir-owner");
    assert!(
        init["command"]
            .to_string()
            .contains(&format!("chown {uid}:{uid}")),
        "{init:#}"
    );

    // Probes and scraping on the agent's port.
    let port = named(&agent["ports"], "metrics");
    let port_number = port["containerPort"].as_u64().unwrap();
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(agent[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(agent[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], port_number.to_string());
    let service = &manifests["Service"];
    assert_eq!(service["spec"]["selector"], pod["metadata"]["labels"]);
    let service_port = named(&service["spec"]["ports"], "metrics");
    assert_eq!(service_port["targetPort"], "metrics");

    // Mounts: the host read-only, the state directory on the node, the config from the
    // ConfigMap, at the paths the ConfigMap's lookout.yaml names.
    let mounts = &agent["volumeMounts"];
    let volumes = &spec["volumes"];
    let host_mount = |volume: &str, host_path: &str| -> String {
        let mount = named(mounts, volume);
        assert_eq!(
            named(volumes, volume)["hostPath"]["path"],
            host_path,
            "volume {volume}"
        );
        str_at(mount, "/mountPath").to_string()
    };
    let proc_mount = host_mount("proc", "/proc");
    let root_mount = host_mount("root", "/");
    let state_mount = host_mount("state", "/var/lib/lookout");
    assert_eq!(named(mounts, "proc")["readOnly"], true);
    assert_eq!(named(mounts, "root")["readOnly"], true);
    assert_eq!(named(mounts, "root")["mountPropagation"], "HostToContainer");
    assert_ne!(named(mounts, "state")["readOnly"], true);

    let configmap = &manifests["ConfigMap"];
    let config_volume = named(volumes, "config");
    assert_eq!(
        config_volume["configMap"]["name"],
        configmap["metadata"]["name"]
    );
    let config_dir = str_at(named(mounts, "config"), "/mountPath");
    let args: Vec<&str> = agent["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[..2], ["run", "-c"]);
    let key = args[2]
        .strip_prefix(&format!("{config_dir}/"))
        .unwrap_or_else(|| panic!("{} is not in the ConfigMap mount {config_dir}", args[2]));

    // The ConfigMap's lookout.yaml: valid, and consistent with the pod.
    let text = configmap["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("the ConfigMap has no {key}"));
    let dir = TempDir::new("packaging-k8s");
    let config_path = dir.path().join(key);
    std::fs::write(&config_path, text).unwrap();
    check_ok(&lookout_bin(), &config_path);
    let config = yaml_document(&config_path);
    assert_eq!(str_at(&config, "/agent/proc_root"), proc_mount);
    assert_eq!(str_at(&config, "/agent/rootfs"), root_mount);
    assert_eq!(str_at(&config, "/agent/data_dir"), state_mount);
    assert_eq!(
        str_at(&config, "/agent/listen"),
        format!("0.0.0.0:{port_number}")
    );
    // Exposed on every node, so both tokens, from the Secret the pod mounts; the probes
    // need none (/healthz and /readyz are open).
    assert!(exposed_with_tokens(&config, "the ConfigMap's lookout.yaml"));
    let tokens = named(mounts, "tokens");
    assert_eq!(tokens["readOnly"], true);
    let secret = &named(volumes, "tokens")["secret"];
    let token_dir = str_at(tokens, "/mountPath");
    let items = secret["items"].as_array().expect("the Secret's items");
    for key in ["api_token_file", "read_token_file"] {
        let file = str_at(&config, &format!("/agent/{key}"));
        let name = file
            .strip_prefix(&format!("{token_dir}/"))
            .unwrap_or_else(|| panic!("agent.{key} {file} is not in the Secret mount {token_dir}"));
        assert!(
            items.iter().any(|i| i["path"] == name),
            "agent.{key}: the Secret volume has no item {name}: {secret:#}"
        );
    }
    let secret_name = str_at(secret, "/secretName");
    let docs = read(&repo().join("docs/install.md"));
    assert!(
        docs.contains(&format!("create secret generic {secret_name}")),
        "docs/install.md: how to create the Secret {secret_name}"
    );
}

#[test]
fn the_fleet_example_sends_the_read_token_its_agents_ask_for() {
    let dir = repo().join("packaging/fleet");
    let prometheus = yaml_document(&dir.join("prometheus.yml"));
    let job = named_job(&prometheus["scrape_configs"], "lookout");
    let credentials = str_at(job, "/authorization/credentials_file");
    let script = read(&dir.join("run.sh"));
    assert!(
        script.contains(&format!("$RUN/prometheus/{credentials}")),
        "run.sh writes {credentials} next to prometheus.yml"
    );
    for key in ["api_token_file", "read_token_file"] {
        assert!(script.contains(key), "run.sh gives every agent agent.{key}");
    }
    // On a real host the agents listen on every address, with both tokens.
    let shared = read(&dir.join("lookout.yaml"));
    for line in [
        "listen: 0.0.0.0:9469",
        "api_token_file:",
        "read_token_file:",
    ] {
        assert!(
            shared.contains(line),
            "lookout.yaml's real-host example: {line}"
        );
    }
}

fn named_job<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["job_name"] == name))
        .unwrap_or_else(|| panic!("no job {name:?} in {list:#}"))
}

#[test]
fn install_doc_names_the_commands_that_exist() {
    let docs = read(&repo().join("docs/install.md"));
    for needle in [
        "cargo deb -p lookout",
        "apt install ./target/debian/lookout_",
        "systemctl reload lookout",
        "kubectl apply -k packaging/kubernetes",
        "docker build -f packaging/docker/Dockerfile",
    ] {
        assert!(docs.contains(needle), "docs/install.md: {needle}");
    }
}
