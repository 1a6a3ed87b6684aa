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

/// `lookout_cpus > 0` holds on every host: fires at once, and with `for: 5m` is pending
/// after one evaluation; `lookout_cpus < 0` can never hold.
const SNAPSHOT_RULES: &str = "groups:
  - name: snapshot
    rules:
      - alert: CpusPresent
        expr: lookout_cpus
        warning: \"> 0\"
      - alert: CpusPresentFor5m
        expr: lookout_cpus
        warning: \"> 0\"
        for: 5m
      - alert: CpusNegative
        expr: lookout_cpus
        critical: \"< 0\"
";

#[test]
fn snapshot_evaluates_the_rules_once_and_prints_alerts_and_score() {
    let dir = TempDir::new("snap-rules");
    std::fs::write(dir.path().join("rules.yaml"), SNAPSHOT_RULES).unwrap();
    let file = dir.path().join("c.yaml");
    let config = "agent:\n  hostname: snap-host\nrules:\n  files: [rules.yaml]\n";
    std::fs::write(&file, config).unwrap();
    let snapshot = |extra: &[&str]| {
        stdout_of_success(
            lookout()
                .args(["snapshot", "--window", "200ms", "-c"])
                .arg(&file)
                .args(extra),
        )
    };

    // Text: the values as exposition, the alerts and the score as comments after them.
    let text = snapshot(&[]);
    let alerts: Vec<Vec<&str>> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# alert "))
        .map(|l| l.split(' ').collect())
        .collect();
    assert_eq!(alerts.len(), 2, "{text}");
    for (alert, state) in [("CpusPresent", "firing"), ("CpusPresentFor5m", "pending")] {
        let line = alerts.iter().find(|a| a[0] == alert).expect(alert);
        assert_eq!(
            line[1..4],
            ["warning", state, "{host=\"snap-host\"}"],
            "{text}"
        );
        assert!(line[4].parse::<f64>().unwrap() >= 1.0, "{text}");
    }
    assert!(!text.contains("CpusNegative"), "{text}");
    let score: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("# score "))
        .expect("a score line")
        .split(' ')
        .collect();
    assert!(
        score[0]
            .parse::<f64>()
            .is_ok_and(|s| (0.0..=100.0).contains(&s)),
        "{text}"
    );
    assert!(
        ["excellent", "good", "moderate", "poor"].contains(&score[1]),
        "{text}"
    );
    // A warning fires, so the health component takes points off.
    let health_penalty = text
        .lines()
        .find_map(|l| l.strip_prefix("# score component health: penalty "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse::<f64>().ok());
    assert!(health_penalty.is_some_and(|p| p > 0.0), "{text}");
    let samples = lookout_tests::parse_exposition(&text);
    let firing = [("alert", "CpusPresent"), ("severity", "warning")];
    assert_eq!(
        lookout_tests::value(&samples, "lookout_alert_firing", &firing),
        Some(1.0)
    );

    // JSON: the same alert instances and the score with its grade and components.
    let doc: serde_json::Value = serde_json::from_str(&snapshot(&["--json"])).unwrap();
    let alerts = doc["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{doc}");
    for (alert, state) in [("CpusPresent", "firing"), ("CpusPresentFor5m", "pending")] {
        let a = alerts.iter().find(|a| a["alert"] == alert).expect(alert);
        assert_eq!(a["state"], state, "{a}");
        assert_eq!(a["severity"], "warning", "{a}");
        assert_eq!(a["labels"]["host"], "snap-host", "{a}");
        assert!(a["value"].as_f64().is_some_and(|v| v >= 1.0), "{a}");
    }
    let score = &doc["score"];
    assert!(
        score["score"]
            .as_f64()
            .is_some_and(|s| (0.0..=100.0).contains(&s)),
        "{score}"
    );
    assert!(score["grade"].is_string(), "{score}");
    let components: Vec<(&str, f64)> = score["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["penalty"].as_f64().unwrap()))
        .collect();
    assert_eq!(components.len(), 3, "{score}");
    assert!(
        components
            .iter()
            .any(|(name, penalty)| *name == "health" && *penalty > 0.0),
        "a warning fires: {score}"
    );
}
