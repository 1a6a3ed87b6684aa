//! The command line: exit codes and output of `check`, `config default`, `snapshot`, `run`.

use std::path::PathBuf;

use lookout_tests::{TempDir, lookout};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/config")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

#[test]
fn check_reports_every_problem_of_each_invalid_file_and_exits_1() {
    for file in fixtures("invalid") {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{}: no `# expect:` line",
            file.display()
        );
        let out = lookout()
            .arg("check")
            .arg("-c")
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}:\n{stderr}", file.display());
        let problems: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(&*file.to_string_lossy()))
            .collect();
        assert_eq!(
            problems.len(),
            expected.len(),
            "{}:\n{stderr}",
            file.display()
        );
        for e in expected {
            assert!(
                stderr.contains(e),
                "{}: expected {e:?} in:\n{stderr}",
                file.display()
            );
        }
    }
}

#[test]
fn problems_name_the_line_column_and_key_path() {
    let dir = TempDir::new("check");
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, "collect:\n  host:\n    interval: ten\n").unwrap();
    let out = lookout()
        .arg("check")
        .arg("-c")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = format!("{}:3:15: collect.host.interval:", file.display());
    assert!(stderr.contains(&line), "expected {line:?} in:\n{stderr}");
    assert!(stderr.contains("ten"), "{stderr}");
}

#[test]
fn check_accepts_valid_files_and_the_printed_default() {
    for file in fixtures("valid") {
        let out = lookout()
            .arg("check")
            .arg("-c")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = lookout().args(["config", "default"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
            > 10,
        "keys are commented"
    );
    let dir = TempDir::new("default");
    let file = dir.path().join("default.yaml");
    std::fs::write(&file, &text).unwrap();
    let out = lookout()
        .arg("check")
        .arg("-c")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_missing_file_and_usage_errors_exit_with_the_documented_codes() {
    let out = lookout()
        .args(["check", "-c", "/nonexistent/lookout.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/lookout.yaml"));

    let out = lookout()
        .args(["run", "-c", "/nonexistent/lookout.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "run cannot start without its config"
    );

    let out = lookout().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn snapshot_prints_current_values_as_text_and_json() {
    let dir = TempDir::new("snap");
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, "agent:\n  hostname: snap-host\n").unwrap();
    let out = lookout()
        .args(["snapshot", "--window", "500ms", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples = lookout_tests::parse_exposition(&String::from_utf8(out.stdout).unwrap());
    let ratio = lookout_tests::find(
        &samples,
        "lookout_cpu_usage_ratio",
        &[("host", "snap-host")],
    );
    assert!(
        ratio.is_some_and(|s| (0.0..=1.0).contains(&s.value)),
        "{ratio:?}"
    );

    let out = lookout()
        .args(["snapshot", "--json", "--window", "200ms", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["host"], "snap-host");
    let values = doc["values"].as_array().unwrap();
    assert!(
        values
            .iter()
            .any(|v| v["metric"] == "lookout_memory_usage_ratio")
    );
    assert!(doc["errors"].as_object().unwrap().is_empty(), "{doc}");
}
