//! `lookout test rules` on the shipped rule tests, a failing one, and
//! `lookout rules export` checked by the real `promtool check rules`.

use std::path::PathBuf;

use lookout_tests::{TempDir, lookout, require, stdout_of_success, yaml_files};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `lookout test rules` on a test file of `rules/host.yaml` whose text after
/// `rule_files: [...]` is `rest`; its exit code and standard output.
fn test_host_rules(rest: &str) -> (Option<i32>, String) {
    let dir = TempDir::new("ruletest");
    let file = dir.path().join("host_test.yaml");
    let header = format!("rule_files: [{}]", repo().join("rules/host.yaml").display());
    std::fs::write(&file, header + rest).unwrap();
    let out = lookout()
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn every_default_rule_has_passing_unit_tests() {
    let files = yaml_files(&repo().join("rules/tests"));
    let stdout = stdout_of_success(lookout().args(["test", "rules"]).args(&files));
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.ends_with("passed, 0 failed")),
        "{stdout}"
    );
    // Every default alert, of every shipped rule file, is exercised by some test.
    let defaults: String = yaml_files(&repo().join("rules"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        defaults.contains("- alert: ApiLatencyHigh"),
        "rules/*.yaml read"
    );
    let tests: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for alert in defaults
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alert: {alert}")),
            "{alert} has no rule test"
        );
    }
}

#[test]
fn a_wrong_expectation_fails_with_a_readable_diff() {
    let (status, stdout) = test_host_rules(
        "\ntests:\n  - name: cpu at 90% is critical, not warning\n    input_series:\n      - series: 'lookout_cpu_usage_ratio{host=\"web-1\"}'\n        values: '0.9x30'\n    expect:\n      - at: 3m\n        alerts: [{alert: HostCpuHigh, severity: warning}]\n",
    );
    assert_eq!(status, Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL cpu at 90% is critical, not warning"),
        "{stdout}"
    );
    assert!(
        stdout.contains("- HostCpuHigh") && stdout.contains("warning"),
        "{stdout}"
    );
    assert!(
        stdout.contains("+ HostCpuHigh{host=\"web-1\"} critical firing"),
        "{stdout}"
    );
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
}

#[test]
fn exported_rules_pass_promtool() {
    let promtool = require("promtool", "prometheus");
    let dir = TempDir::new("export");
    // The built-in rules, and a config's own rules with labels, `<` and on_missing: alert.
    std::fs::write(
        dir.path().join("custom.yaml"),
        "groups:\n  - name: custom\n    rules:\n      - alert: LowHeadroom\n        expr: min by (mountpoint) (lookout_filesystem_avail_bytes) / 1073741824\n        warning: \"< 10\"\n        critical: \"< 2\"\n        hysteresis: 1\n        on_missing: alert\n        labels: {team: \"storage \\\"core\\\"\"}\n        summary: \"{{ labels.mountpoint }} has {{ value }} GiB left\"\n",
    )
    .unwrap();
    let config = dir.path().join("lookout.yaml");
    std::fs::write(&config, "rules:\n  files: [custom.yaml]\n").unwrap();
    for args in [vec![], vec!["-c".to_string(), config.display().to_string()]] {
        let rules = stdout_of_success(
            lookout()
                .args(["rules", "export", "--format", "prometheus"])
                .args(&args),
        );
        let exported = dir.path().join("exported.yaml");
        std::fs::write(&exported, &rules).unwrap();
        let check = std::process::Command::new(&promtool)
            .args(["check", "rules"])
            .arg(&exported)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&check.stdout);
        assert!(
            check.status.success(),
            "{report}{}\n---\n{rules}",
            String::from_utf8_lossy(&check.stderr),
        );
        assert!(report.contains("SUCCESS"), "{report}");
    }
}

#[test]
fn the_rule_test_example_in_the_docs_passes() {
    let doc = std::fs::read_to_string(repo().join("docs/rules.md")).unwrap();
    let body = doc
        .split("rule_files: [../host.yaml]")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/rules.md has the example rule test");
    let tests = body.matches("  - name: ").count();
    assert!(tests >= 2, "the example has its tests: {body}");
    let (status, stdout) = test_host_rules(body);
    assert!(
        status == Some(0) && stdout.contains(&format!("{tests} passed, 0 failed")),
        "{stdout}"
    );
}
