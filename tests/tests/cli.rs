//! The command line: exit codes and output of `check`, `config default`, `snapshot`, `run`.

use std::path::{Path, PathBuf};
use std::process::Command;

use lookout_tests::{TempDir, lookout, stdout_of_success, yaml_files};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    yaml_files(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/config")
            .join(kind),
    )
}

/// `lookout check -c file`.
fn check(file: &Path) -> Command {
    let mut command = lookout();
    command.arg("check").arg("-c").arg(file);
    command
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
        let out = check(&file).output().unwrap();
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
    let out = check(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = format!("{}:3:15: collect.host.interval:", file.display());
    assert!(stderr.contains(&line), "expected {line:?} in:\n{stderr}");
    assert!(stderr.contains("ten"), "{stderr}");
}

#[test]
fn check_accepts_valid_files_and_the_printed_default() {
    for file in fixtures("valid") {
        stdout_of_success(&mut check(&file));
    }
    let text = stdout_of_success(lookout().args(["config", "default"]));
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
    stdout_of_success(&mut check(&file));
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
    let text = stdout_of_success(
        lookout()
            .args(["snapshot", "--window", "500ms", "-c"])
            .arg(&file),
    );
    let samples = lookout_tests::parse_exposition(&text);
    let ratio = lookout_tests::find(
        &samples,
        "lookout_cpu_usage_ratio",
        &[("host", "snap-host")],
    );
    assert!(
        ratio.is_some_and(|s| (0.0..=1.0).contains(&s.value)),
        "{ratio:?}"
    );

    let json = stdout_of_success(
        lookout()
            .args(["snapshot", "--json", "--window", "200ms", "-c"])
            .arg(&file),
    );
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["host"], "snap-host");
    let values = doc["values"].as_array().unwrap();
    assert!(
        values
            .iter()
            .any(|v| v["metric"] == "lookout_memory_usage_ratio")
    );
    assert!(doc["errors"].as_object().unwrap().is_empty(), "{doc}");
}
