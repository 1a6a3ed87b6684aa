//! Tests of the whole configuration file: every section together, as `lookout check` reads
//! it: fixtures, the default file, structural recovery, cross-section problems.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::collect::host::{
    DEFAULT_EXCLUDE_DISKS, DEFAULT_EXCLUDE_FSTYPES, DEFAULT_EXCLUDE_MOUNTS,
};
use crate::collect::{DEFAULT_INTERVAL, DEFAULT_TIMEOUT, Schedule};
use crate::config::Problem;
use crate::config::secret::{Secret, fake_env};
use crate::config::yaml::MAX_RECOVERIES;
use crate::notify::config::ReceiverKind;
use crate::notify::email::{DEFAULT_EMAIL_TIMEOUT, SmtpTls};
use crate::notify::policy::RetryConfig;
use crate::notify::route::RouteConfig;
use crate::notify::webhook::WebhookFormat;
use crate::rules::config::DEFAULT_REPEAT_INTERVAL;
use crate::rules::score::{
    DEFAULT_BACKGROUND_TASKS, DEFAULT_GRADES, DEFAULT_HEALTH, DEFAULT_SESSIONS, Grades, HealthTerm,
};
use crate::settings::agent::DEFAULT_LISTEN;

// ---- checks of whole documents (sections and their defaults) ----

#[test]
fn builtin_defaults() {
    let config = Config::builtin();
    assert_eq!(config.agent.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.agent.proc_root, PathBuf::from("/proc"));
    assert_eq!(config.agent.rootfs, PathBuf::from("/"));
    assert!(!config.agent.hostname.is_empty());
    let schedule = Schedule {
        interval: DEFAULT_INTERVAL,
        timeout: DEFAULT_TIMEOUT,
    };
    assert_eq!(config.collect.host.schedule, schedule);
    assert_eq!(config.collect.tcp.schedule, schedule);
    assert_eq!(
        config.collect.host.exclude_fstypes.len(),
        DEFAULT_EXCLUDE_FSTYPES.len()
    );
    assert_eq!(
        config.collect.host.exclude_mounts.len(),
        DEFAULT_EXCLUDE_MOUNTS.len()
    );
    assert_eq!(
        config.collect.host.exclude_disks.len(),
        DEFAULT_EXCLUDE_DISKS.len()
    );
    assert!(config.collect.host.exclude_interfaces.is_empty());
    assert!(config.collect.tcp.ports.is_empty());
    // Every default pattern compiles: validating the empty tree reports nothing.
    let mut checker = Checker::new("t", &[]);
    let config = Config::check(&RawConfig::default(), &mut checker);
    let problems = checker.into_problems();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(config.is_some());
}

#[test]
fn builtin_rules_notify_scalability() {
    let config = Config::builtin();
    assert_eq!(
        config.rules,
        RulesConfig {
            files: Vec::new(),
            evaluation_interval: Duration::from_secs(10),
            stale_after: Duration::from_secs(300),
        }
    );
    assert_eq!(config.notify.repeat_interval, Duration::from_secs(4 * 3600));
    let s = &config.scalability;
    for (term, defaults) in [
        (&s.sessions, DEFAULT_SESSIONS),
        (&s.background_tasks, DEFAULT_BACKGROUND_TASKS),
    ] {
        assert_eq!(term.expr_text, defaults.expr);
        assert_eq!(
            (term.free, term.points_per_unit, term.max_penalty),
            (
                defaults.free,
                defaults.points_per_unit,
                defaults.max_penalty
            )
        );
    }
    assert_eq!(s.health, DEFAULT_HEALTH);
    assert_eq!(s.grades, DEFAULT_GRADES);
}

fn fixture(name: &str) -> Config {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/config/valid/"
    ))
    .join(name);
    load(&path).unwrap_or_else(|p| panic!("{name}: {:?}", p.0))
}

#[test]
fn full_fixture_rules_notify_scalability() {
    let config = fixture("full.yaml");
    assert_eq!(config.rules.files, ["../../../../rules/[a-z]*.yaml"]);
    assert_eq!(config.rules.evaluation_interval, Duration::from_secs(30));
    assert_eq!(config.rules.stale_after, Duration::from_secs(600));
    assert_eq!(config.notify.repeat_interval, Duration::from_secs(5400));
    let s = &config.scalability;
    assert_eq!(
        s.sessions.expr_text,
        r#"sum(lookout_tcp_port_connections{state="established",port="443"})"#
    );
    assert_eq!(
        (
            s.sessions.free,
            s.sessions.points_per_unit,
            s.sessions.max_penalty
        ),
        (100.0, 0.5, 40.0)
    );
    assert_eq!(
        s.background_tasks.expr_text,
        "max(lookout_redis_queue_length)"
    );
    assert_eq!(
        (
            s.background_tasks.free,
            s.background_tasks.points_per_unit,
            s.background_tasks.max_penalty
        ),
        (0.0, 2.5, 25.0)
    );
    assert_eq!(
        s.health,
        HealthTerm {
            warning: 10.0,
            critical: 35.0
        }
    );
    assert_eq!(
        s.grades,
        Grades {
            excellent: 90.0,
            good: 70.5,
            moderate: 0.0
        }
    );
}

#[test]
fn partial_sections_keep_their_own_defaults() {
    let config = fixture("scalability_partial.yaml");
    // stale_after left out follows a longer evaluation interval
    assert_eq!(config.rules.evaluation_interval, Duration::from_secs(600));
    assert_eq!(config.rules.stale_after, Duration::from_secs(600));
    assert_eq!(config.notify.repeat_interval, Duration::from_secs(60));
    let s = &config.scalability;
    assert_eq!(s.sessions.free, 5.0);
    assert_eq!(s.sessions.expr_text, DEFAULT_SESSIONS.expr);
    assert_eq!(s.sessions.max_penalty, DEFAULT_SESSIONS.max_penalty);
    assert_eq!(s.background_tasks.expr_text, DEFAULT_BACKGROUND_TASKS.expr);
    assert_eq!(s.background_tasks.free, DEFAULT_BACKGROUND_TASKS.free);
    assert_eq!(
        s.health,
        HealthTerm {
            warning: 15.0,
            critical: 15.0
        }
    );
    assert_eq!(s.grades.moderate, 0.0);
}

#[test]
fn scalability_cross_checks() {
    // (yaml, expected problems, each as "path: message start")
    let cases: &[(&str, &[&str])] = &[
        // critical given below the default warning: blamed on critical
        (
            "scalability:\n  health: {critical: 10}\n",
            &["2:22: scalability.health.critical: 10 is less than scalability.health.warning (15)"],
        ),
        // both given: blamed on critical
        (
            "scalability:\n  health: {warning: 20, critical: 10}\n",
            &["2:35: scalability.health.critical: 10 is less than"],
        ),
        // an excellent threshold below the default good: blamed on excellent
        (
            "scalability:\n  grades: {excellent: 50}\n",
            &["2:23: scalability.grades.excellent: 50 must be above scalability.grades.good (60)"],
        ),
        // equal grades are not strictly decreasing
        (
            "scalability:\n  grades: {good: 40}\n",
            &["2:18: scalability.grades.good: 40 must be above scalability.grades.moderate (40)"],
        ),
        // an invalid grade is not compared with its neighbours
        (
            "scalability:\n  grades: {good: -1, excellent: 10}\n",
            &["2:18: scalability.grades.good: must be at least 0, got -1"],
        ),
        // a grade removed by structural recovery is not compared either
        (
            "scalability:\n  grades: {good: [1], moderate: 70}\n",
            &["2:18: scalability.grades.good: expected a single value, found a list"],
        ),
        // an invalid evaluation interval is not compared with stale_after
        (
            "rules: {evaluation_interval: 0s, stale_after: 1s}\n",
            &["1:30: rules.evaluation_interval: 0s is out of range"],
        ),
        // a bad stale_after duration
        (
            "rules: {stale_after: soon}\n",
            &["1:22: rules.stale_after: invalid duration \"soon\""],
        ),
        // a bad repeat interval
        (
            "notify: {repeat_interval: 4 hours}\n",
            &["1:27: notify.repeat_interval: invalid duration \"4 hours\""],
        ),
        // a file list that is not a list
        (
            "rules: {files: '*.yaml'}\n",
            &["1:16: rules.files: expected a list, found \"*.yaml\""],
        ),
    ];
    for (yaml, expected) in cases {
        let problems = load_str(yaml, "t.yaml").expect_err(yaml).0;
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), expected.len(), "{yaml}: {lines:?}");
        for want in *expected {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("t.yaml:{want}"))),
                "{yaml}: want {want:?} in {lines:?}"
            );
        }
    }
}

#[test]
fn exposure_and_https_checks() {
    let tls = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/config/valid/tls"
    );
    // (yaml, expected problems, each as "line:column: path: message start")
    let cases: Vec<(String, Vec<&str>)> = vec![
        // every IPv4 address, no token: both ways out are named
        (
            "agent: {listen: 0.0.0.0:9469}\n".into(),
            vec![
                "1:17: agent.listen: 0.0.0.0:9469 is not a loopback address: set agent.api_token_file so that POST requests need a token, or agent.allow_unauthenticated: true",
            ],
        ),
        // every address, and one of the host's addresses
        (
            "agent:\n  listen: '[::]:9469'\n".into(),
            vec!["2:11: agent.listen: [::]:9469 is not a loopback address"],
        ),
        (
            "agent: {listen: 192.0.2.7:9469, read_token_file: /etc/lookout/read}\n".into(),
            vec!["1:17: agent.listen: 192.0.2.7:9469 is not a loopback address"],
        ),
        // a token, or the explicit choice, is enough
        (
            "agent: {listen: 0.0.0.0:9469, api_token_file: /etc/lookout/token}\n".into(),
            vec![],
        ),
        (
            "agent: {listen: 0.0.0.0:9469, allow_unauthenticated: true}\n".into(),
            vec![],
        ),
        // `false` is the default, said out loud
        (
            "agent: {listen: 0.0.0.0:9469, allow_unauthenticated: false}\n".into(),
            vec!["1:17: agent.listen: 0.0.0.0:9469 is not a loopback address"],
        ),
        // loopback, in every spelling, needs nothing
        ("agent: {listen: 127.0.0.2:9469}\n".into(), vec![]),
        ("agent: {listen: '[::1]:9469'}\n".into(), vec![]),
        (
            "agent: {listen: '[::ffff:127.0.0.1]:9469'}\n".into(),
            vec![],
        ),
        // an invalid address is reported once, as invalid
        (
            "agent: {listen: 'every:9469'}\n".into(),
            vec!["1:17: agent.listen: invalid address"],
        ),
        // a read token file is checked like the API one
        (
            "agent: {read_token_file: read-token}\n".into(),
            vec!["1:26: agent.read_token_file: must be an absolute path"],
        ),
        // HTTPS needs both files
        (
            "agent:\n  tls: {cert_file: /etc/lookout/cert.pem}\n".into(),
            vec!["2:20: agent.tls: `cert_file` is set but `key_file` is not"],
        ),
        (
            "agent:\n  tls: {key_file: /etc/lookout/key.pem}\n".into(),
            vec!["2:19: agent.tls: `key_file` is set but `cert_file` is not"],
        ),
        (
            "agent:\n  tls: {cert_file: null, key_file: null}\n".into(),
            vec![],
        ),
        // files that cannot be read, or are empty names
        (
            "agent:\n  tls: {cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem}\n"
                .into(),
            vec!["2:20: agent.tls.cert_file: cannot read /nonexistent/cert.pem"],
        ),
        (
            "agent:\n  tls: {cert_file: '', key_file: ' '}\n".into(),
            vec![
                "2:20: agent.tls.cert_file: must not be empty",
                "2:34: agent.tls.key_file: must not be empty",
            ],
        ),
        // the files swapped: no certificate where the chain belongs
        (
            format!("agent:\n  tls: {{cert_file: {tls}/key.pem, key_file: {tls}/cert.pem}}\n"),
            vec!["2:20: agent.tls.cert_file: "],
        ),
        // a key that is not the certificate's: blamed on the key
        (
            format!(
                "agent:\n  tls: {{cert_file: {tls}/cert.pem, key_file: {tls}/other-key.pem}}\n"
            ),
            vec!["agent.tls.key_file: the private key in"],
        ),
        // the pair that belongs together
        (
            format!("agent:\n  tls: {{cert_file: {tls}/cert.pem, key_file: {tls}/key.pem}}\n"),
            vec![],
        ),
    ];
    for (yaml, expected) in &cases {
        let lines = match load_str(yaml, "t.yaml") {
            Ok(_) => Vec::new(),
            Err(problems) => rendered(&problems),
        };
        assert_eq!(lines.len(), expected.len(), "{yaml}: {lines:?}");
        for want in expected {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("t.yaml:{want}"))
                        || (!want.starts_with(char::is_numeric) && l.contains(want))),
                "{yaml}: want {want:?} in {lines:?}"
            );
        }
    }
    // Both keys are named, so the reader knows both ways out.
    let problems = load_str("agent: {listen: 0.0.0.0:9469}\n", "t.yaml").expect_err("exposed");
    let line = problems.0[0].to_string();
    assert!(
        line.contains("agent.api_token_file") && line.contains("agent.allow_unauthenticated"),
        "{line}"
    );
}

/// Validates `yaml` with [`fake_env`] as the environment.
fn check_with_fake_env(yaml: &str) -> (Option<Config>, Vec<String>) {
    let raw: Option<RawConfig> = serde_saphyr::from_str(yaml).expect("parses");
    let mut checker = Checker::new("t.yaml", &[]).with_env(fake_env);
    let config = Config::check(&raw.unwrap_or_default(), &mut checker);
    let problems = checker.into_problems();
    (config, problems.iter().map(ToString::to_string).collect())
}

#[test]
fn builtin_notify_is_the_documented_default() {
    assert_eq!(
        Config::builtin().notify,
        NotifyConfig::defaults(DEFAULT_REPEAT_INTERVAL)
    );
    // The default file writes every notify key out.
    let raw: Option<RawConfig> = serde_saphyr::from_str(&default_yaml()).expect("parses");
    let notify = raw.and_then(|r| r.notify).expect("notify");
    let retry = notify.retry.expect("retry");
    let breaker = notify.circuit_breaker.expect("circuit_breaker");
    let rate = notify.rate_limit.expect("rate_limit");
    assert!(
        notify.group_wait.is_some()
            && notify.send_resolved.is_some()
            && notify.receivers.is_some()
            && notify.route.is_some()
    );
    assert!(
        retry.initial.is_some()
            && retry.max.is_some()
            && retry.multiplier.is_some()
            && retry.jitter.is_some()
            && retry.give_up_after.is_some()
    );
    assert!(breaker.failures.is_some() && breaker.open_for.is_some());
    assert!(rate.max.is_some() && rate.per.is_some());
}

#[test]
fn full_notify_fixture() {
    let n = fixture("notify.yaml").notify;
    assert_eq!(n.repeat_interval, Duration::from_secs(7200));
    assert_eq!(n.group_wait, Duration::from_secs(30));
    assert!(!n.send_resolved);
    assert_eq!(
        n.retry,
        RetryConfig {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(120),
            multiplier: 1.5,
            jitter: false,
            give_up_after: Duration::from_secs(12 * 3600),
        }
    );
    assert_eq!(n.circuit_breaker.failures, 3);
    assert_eq!(n.circuit_breaker.open_for, Duration::from_secs(60));
    assert_eq!(n.rate_limit.max, 10);
    assert_eq!(n.rate_limit.per, Duration::from_secs(1800));
    let names: Vec<&str> = n.receivers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["oncall", "chat", "am", "relay", "log"]);
    let Some(ReceiverKind::Email(email)) = n.receivers.first().map(|r| &r.kind) else {
        panic!("oncall is an email receiver");
    };
    assert_eq!(
        n.receivers.first().and_then(|r| r.send_resolved),
        Some(true)
    );
    assert_eq!((email.host.as_str(), email.port), ("smtp.example.com", 587));
    assert_eq!(email.tls, SmtpTls::StartTls);
    assert_eq!(email.username.as_deref(), Some("alerts"));
    // The file's trailing newline is trimmed.
    assert_eq!(
        email.password.as_ref().map(Secret::expose),
        Some("smtp-pass-fixture")
    );
    assert_eq!(email.to.len(), 2);
    assert_eq!(email.timeout, Duration::from_secs(20));
    let Some(ReceiverKind::Webhook(hook)) = n.receivers.get(1).map(|r| &r.kind) else {
        panic!("chat is a webhook");
    };
    assert_eq!(hook.format, WebhookFormat::Slack);
    assert_eq!(
        hook.secret.as_ref().map(Secret::expose),
        Some("hook-secret-fixture")
    );
    assert_eq!(hook.headers, [("X-Team".to_string(), Secret::new("infra"))]);
    let Some(ReceiverKind::Alertmanager(am)) = n.receivers.get(2).map(|r| &r.kind) else {
        panic!("am is an alertmanager receiver");
    };
    assert_eq!(am.urls.len(), 2);
    assert_eq!(am.resend_interval, Duration::from_secs(30));
    let Some(ReceiverKind::Email(relay)) = n.receivers.get(3).map(|r| &r.kind) else {
        panic!("relay is an email receiver");
    };
    assert_eq!(
        (relay.host.as_str(), relay.port, relay.tls),
        ("::1", 25, SmtpTls::None)
    );
    assert_eq!(relay.timeout, DEFAULT_EMAIL_TIMEOUT);
    assert_eq!(n.route.len(), 3);
    let first = n.route.first().expect("route 0");
    assert!(first.continue_);
    assert_eq!(first.receivers, ["oncall", "chat"]);
    let second = n.route.get(1).expect("route 1");
    assert_eq!(second.matchers.len(), 2);
    let labels = crate::rules::LabelSet::from([
        ("alertname".to_string(), "HostCpuHigh".to_string()),
        ("team".to_string(), "infra".to_string()),
    ]);
    assert!(second.matchers.iter().all(|m| m.matches(&labels)));
    let partial =
        crate::rules::LabelSet::from([("alertname".to_string(), "XHostCpuHigh".to_string())]);
    assert!(!second.matchers.iter().all(|m| m.matches(&partial)));
}

#[test]
fn receivers_without_route_get_one_route_to_all() {
    let yaml = "notify:\n  receivers:\n    - {name: a, log: {}}\n    - {name: b, alertmanager: {urls: ['http://am:9093']}}\n";
    let config = load_str(yaml, "t.yaml").expect("valid");
    assert_eq!(
        config.notify.route,
        [RouteConfig {
            matchers: Vec::new(),
            receivers: vec!["a".into(), "b".into()],
            continue_: false,
        }]
    );
}

#[test]
fn secrets_come_from_env_and_never_show() {
    let email = |password: &str| {
        format!(
            "notify:\n  receivers:\n    - name: m\n      email: {{smarthost: 'h:25', username: u, password: '{password}', from: a@b.c, to: [d@e.f]}}\n"
        )
    };
    // a ${ENV} reference is resolved
    let (config, problems) = check_with_fake_env(&email("${SMTP_PASSWORD}"));
    assert!(problems.is_empty(), "{problems:?}");
    let notify = config.expect("config").notify;
    let Some(ReceiverKind::Email(cfg)) = notify.receivers.first().map(|r| &r.kind) else {
        panic!("email receiver");
    };
    assert_eq!(
        cfg.password.as_ref().map(Secret::expose),
        Some("s3cret-from-env")
    );
    // (password as written, expected problem) — none may contain the value
    let rows: &[(&str, &str)] = &[
        // a literal password is refused without being repeated
        (
            "hunter2",
            "email.password: secrets are not written in the configuration",
        ),
        // an unset variable is named
        (
            "${NOPE}",
            "email.password: environment variable NOPE is not set",
        ),
        // an empty one too
        (
            "${EMPTY}",
            "email.password: environment variable EMPTY is empty",
        ),
        // a reference with text around it is not a whole reference
        (
            "x${SMTP_PASSWORD}",
            "secrets are not written in the configuration",
        ),
    ];
    for (password, expected) in rows {
        let (_, problems) = check_with_fake_env(&email(password));
        assert_eq!(problems.len(), 1, "{password}: {problems:?}");
        let line = problems.first().expect("one problem");
        assert!(line.contains(expected), "{line}");
        assert!(
            !line.contains("hunter2") && !line.contains("s3cret"),
            "{line}"
        );
    }
    // headers interpolate references anywhere in the value
    let yaml = "notify:\n  receivers:\n    - name: w\n      webhook: {url: 'https://h/x', headers: {Authorization: 'Bearer ${HOOK_TOKEN}'}}\n";
    let (config, problems) = check_with_fake_env(yaml);
    assert!(problems.is_empty(), "{problems:?}");
    let notify = config.expect("config").notify;
    let Some(ReceiverKind::Webhook(hook)) = notify.receivers.first().map(|r| &r.kind) else {
        panic!("webhook receiver");
    };
    assert_eq!(
        hook.headers,
        [("Authorization".to_string(), Secret::new("Bearer tok"))]
    );
}

// ---- reading files: recovery, fixtures, the default file ----

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/config/"
    ))
    .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn rendered(problems: &Problems) -> Vec<String> {
    problems.0.iter().map(ToString::to_string).collect()
}

#[test]
fn invalid_fixtures_report_every_expected_problem() {
    for path in fixtures("invalid") {
        let text = fs::read_to_string(&path).expect("read fixture");
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{}: no `# expect:` line",
            path.display()
        );
        let problems = load(&path).expect_err(&path.display().to_string());
        let lines = rendered(&problems);
        for want in &expected {
            assert!(
                lines.iter().any(|l| l.contains(want)),
                "{}: expected a problem containing {want:?}, got:\n{}",
                path.display(),
                lines.join("\n")
            );
        }
        assert_eq!(
            lines.len(),
            expected.len(),
            "{}: got:\n{}",
            path.display(),
            lines.join("\n")
        );
        for line in &lines {
            assert!(line.starts_with(&path.display().to_string()), "{line}");
            assert!(!line.contains('\n'), "{line}");
            // Fixtures write secrets as MARKER<n>: no problem may show one.
            assert!(!line.contains("MARKER"), "a secret is shown: {line}");
        }
    }
}

#[test]
fn valid_fixtures_load() {
    for path in fixtures("valid") {
        let config = load(&path)
            .unwrap_or_else(|p| panic!("{}:\n{}", path.display(), rendered(&p).join("\n")));
        assert_eq!(config.source.as_deref(), Some(path.as_path()));
    }
}

#[test]
fn full_fixture_values() {
    let path = fixtures("valid")
        .into_iter()
        .find(|p| p.ends_with("full.yaml"))
        .expect("full.yaml");
    let config = load(&path).expect("full.yaml is valid");
    let agent = &config.agent;
    assert_eq!(agent.hostname, "web-1.example.com");
    assert_eq!(agent.listen.to_string(), "0.0.0.0:9100");
    assert_eq!(agent.data_dir, Some(PathBuf::from("/srv/lookout")));
    assert_eq!(
        agent.api_token_file,
        Some(PathBuf::from("/etc/lookout/token"))
    );
    assert_eq!(
        agent.read_token_file,
        Some(PathBuf::from("/etc/lookout/read-token"))
    );
    assert!(agent.allow_unauthenticated);
    let tls = agent.tls.as_ref().expect("agent.tls");
    let dir = path.parent().expect("fixture dir");
    assert_eq!(tls.cert_file, dir.join("tls/cert.pem"));
    assert_eq!(tls.key_file, dir.join("tls/key.pem"));
    assert_eq!(tls.server.alpn_protocols, [b"http/1.1".to_vec()]);
    assert_eq!(agent.proc_root, PathBuf::from("/host/proc"));
    assert_eq!(agent.rootfs, PathBuf::from("/host/root"));
    let host = &config.collect.host;
    assert!(!host.enabled);
    assert_eq!(host.schedule.interval, std::time::Duration::from_secs(90));
    assert_eq!(host.schedule.timeout, std::time::Duration::from_secs(20));
    assert_eq!(host.exclude_fstypes, ["tmpfs", "overlay"]);
    let patterns = |list: &[regex::Regex]| {
        list.iter()
            .map(|r| r.as_str().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(patterns(&host.exclude_mounts), ["^(?:/mnt/scratch(/.*)?)$"]);
    assert_eq!(patterns(&host.exclude_disks), [r"^(?:loop\d+)$"]);
    assert_eq!(
        patterns(&host.exclude_interfaces),
        ["^(?:lo)$", "^(?:veth.*)$"]
    );
    let tcp = &config.collect.tcp;
    assert!(tcp.enabled);
    assert_eq!(tcp.schedule.interval, std::time::Duration::from_secs(30));
    // Timeout left out: the smaller of 5s and the interval.
    assert_eq!(tcp.schedule.timeout, std::time::Duration::from_secs(5));
    assert_eq!(tcp.ports, [80, 443, 8000]);
}

#[test]
fn empty_document_is_builtin() {
    for text in [
        // nothing at all
        "",
        // only a comment
        "# nothing\n",
        // explicit nulls
        "agent:\ncollect:\nrules:\nscalability:\nnotify:\n",
        // explicit nulls one level down
        "rules:\n  files:\nscalability:\n  sessions:\n  grades:\nnotify:\n  repeat_interval:\n",
        // an explicit document marker
        "---\n",
    ] {
        let config =
            load_str(text, "t.yaml").unwrap_or_else(|p| panic!("{text:?}: {:?}", rendered(&p)));
        assert_eq!(
            format!("{config:?}"),
            format!("{:?}", Config::builtin()),
            "{text:?}"
        );
    }
}

#[test]
fn default_yaml_is_builtin_and_complete() {
    let default_text = default_yaml();
    let config =
        load_str(&default_text, "default.yaml").unwrap_or_else(|p| panic!("{:?}", rendered(&p)));
    assert_eq!(format!("{config:?}"), format!("{:?}", Config::builtin()));
    // Every key is written out, so the file documents all of them.
    let raw: Option<RawConfig> = serde_saphyr::from_str(&default_text).expect("parses");
    let raw = raw.expect("a document");
    let agent = raw.agent.expect("agent");
    assert!(
        agent.hostname.is_some()
            && agent.listen.is_some()
            && agent.allow_unauthenticated.is_some()
            && agent.proc_root.is_some()
            && agent.rootfs.is_some()
    );
    assert!(agent.tls.is_some());
    let collect = raw.collect.expect("collect");
    let host = collect.host.expect("collect.host");
    assert!(host.enabled.is_some() && host.interval.is_some() && host.timeout.is_some());
    assert!(host.exclude_fstypes.is_some() && host.exclude_mounts.is_some());
    assert!(host.exclude_disks.is_some() && host.exclude_interfaces.is_some());
    let tcp = collect.tcp.expect("collect.tcp");
    assert!(
        tcp.enabled.is_some()
            && tcp.interval.is_some()
            && tcp.timeout.is_some()
            && tcp.ports.is_some()
    );
    let cgroups = collect.cgroups.expect("collect.cgroups");
    assert!(
        cgroups.enabled.is_some()
            && cgroups.interval.is_some()
            && cgroups.timeout.is_some()
            && cgroups.root.is_some()
            && cgroups.include.is_some()
            && cgroups.exclude.is_some()
            && cgroups.max_cgroups.is_some()
    );
    let processes = collect.processes.expect("collect.processes");
    assert!(
        processes.enabled.is_some()
            && processes.interval.is_some()
            && processes.timeout.is_some()
            && processes.groups.is_some()
            && processes.top.is_some()
    );
    let rules = raw.rules.expect("rules");
    assert!(
        rules.files.is_some() && rules.evaluation_interval.is_some() && rules.stale_after.is_some()
    );
    let scalability = raw.scalability.expect("scalability");
    for term in [scalability.sessions, scalability.background_tasks] {
        let term = term.expect("scalability load term");
        assert!(
            term.expr.is_some()
                && term.free.is_some()
                && term.points_per_unit.is_some()
                && term.max_penalty.is_some()
        );
    }
    let health = scalability.health.expect("scalability.health");
    assert!(health.warning.is_some() && health.critical.is_some());
    let grades = scalability.grades.expect("scalability.grades");
    assert!(grades.excellent.is_some() && grades.good.is_some() && grades.moderate.is_some());
    let notify = raw.notify.expect("notify");
    assert!(notify.repeat_interval.is_some());
    // The keys whose default is null are written as `key: null`.
    for key in [
        "  data_dir: null\n",
        "  api_token_file: null\n",
        "  read_token_file: null\n",
        "    cert_file: null\n",
        "    key_file: null\n",
    ] {
        assert!(default_text.contains(key), "{key}");
    }
}

#[test]
fn documentation_examples_load() {
    let doc = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    // Snippets that are whole configurations (not bare default lists).
    let configs: Vec<&String> = blocks
        .iter()
        .filter(|b| {
            ["agent:", "collect:", "rules:", "scalability:", "notify:"]
                .iter()
                .any(|section| b.starts_with(section))
        })
        .collect();
    assert!(configs.len() >= 4, "{}", configs.len());
    for block in &configs {
        load_str(block, "docs").unwrap_or_else(|p| panic!("{block}\n{}", rendered(&p).join("\n")));
    }
    let full = doc
        .split("## Full default file")
        .nth(1)
        .and_then(|rest| rest.split("```yaml\n").nth(1))
        .expect("full default block");
    let full = full.split("```").next().expect("block end");
    let config = load_str(full, "docs").expect("full default file loads");
    assert_eq!(format!("{config:?}"), format!("{:?}", Config::builtin()));
}

#[test]
fn problem_display() {
    let cases: &[(Option<u32>, &str)] = &[
        // with a position
        (Some(3), "f.yaml:3:7: collect.host.interval: bad"),
        // without one
        (None, "f.yaml: collect.host.interval: bad"),
    ];
    for (line, expected) in cases {
        let p = Problem {
            file: "f.yaml".into(),
            line: *line,
            column: line.map(|_| 7),
            path: "collect.host.interval".into(),
            message: "bad".into(),
        };
        assert_eq!(p.to_string(), *expected);
    }
}

#[test]
fn unreadable_file_is_one_problem() {
    let problems = load(Path::new("/nonexistent/lookout.yaml")).expect_err("missing file");
    let lines = rendered(&problems);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("/nonexistent/lookout.yaml: <root>: cannot read: "),
        "{}",
        lines[0]
    );
}

#[test]
fn recovery_never_panics_or_loops() {
    let deep_flow = format!("agent: {}{}", "[".repeat(2000), "]".repeat(2000));
    let deep_block: String = (0..200)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let many_typos: String = (0..150).map(|i| format!("typo{i}: 1\n")).collect();
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    let cases: Vec<(&str, String)> = vec![
        // unclosed flow sequence
        ("unclosed", "agent: [\n".into()),
        // lone brace
        ("brace", "{".into()),
        // tab indentation
        ("tab", "agent:\n\thostname: x\n".into()),
        // two documents
        ("two documents", "agent: {}\n---\ncollect: {}\n".into()),
        // alias to an undefined anchor
        ("undefined alias", "agent: *nothing\n".into()),
        // alias reused where a different type is expected
        ("alias", "agent: &a\n  hostname: x\ncollect: *a\n".into()),
        // a scalar document
        ("scalar document", "hello\n".into()),
        // very deep flow nesting
        ("deep flow", deep_flow),
        // very deep block nesting
        ("deep block", deep_block),
        // more typos than the recovery bound
        ("many typos", many_typos),
        // alias bomb
        ("bomb", bomb.into()),
        // a non-string key
        ("complex key", "? [a, b]\n: c\n".into()),
        // an item with an anchor that blanking cannot remove cleanly
        (
            "anchored item",
            "collect:\n  tcp:\n    ports:\n      - &p http\n".into(),
        ),
        // multi-byte characters before the error
        (
            "unicode",
            "agent:\n  hostname: \"héllo wörld\"\n  lïsten: x\n".into(),
        ),
        // Windows line ends
        (
            "crlf",
            "agent:\r\n  hostnme: x\r\n  listen: nope\r\n".into(),
        ),
    ];
    for (name, text) in &cases {
        let problems = load_str(text, "t.yaml").expect_err(name);
        assert!(!problems.0.is_empty(), "{name}");
        assert!(
            problems.0.len() <= MAX_RECOVERIES + 1 + 1,
            "{name}: {}",
            problems.0.len()
        );
        for line in rendered(&problems) {
            assert!(line.starts_with("t.yaml"), "{name}: {line}");
            assert!(!line.contains('\n'), "{name}: {line}");
        }
    }
}

#[test]
fn recovery_specific_outcomes() {
    let cases: &[(&str, &str, &[&str])] = &[
        // CRLF: the typo and the bad address are both found, at their positions
        (
            "crlf",
            "agent:\r\n  hostnme: x\r\n  listen: nope\r\n",
            &[
                "t.yaml:2:3: agent.hostnme: unknown key",
                "t.yaml:3:11: agent.listen: invalid address \"nope\"",
            ],
        ),
        // multi-byte characters: columns count characters
        (
            "unicode",
            "agent:\n  hostname: \"héllo wörld\"\n  lïsten: x\n",
            &["t.yaml:3:3: agent.lïsten: unknown key `lïsten`; did you mean `listen`?"],
        ),
        // the last entry of a flow mapping is removed with the comma before it
        (
            "flow last entry",
            "collect: {tcp: {ports: [80], prots: [1]}, host: {interval: x}}\n",
            &[
                "t.yaml:1:30: collect.tcp.prots: unknown key",
                "t.yaml:1:60: collect.host.interval: invalid duration \"x\"",
            ],
        ),
        // a wrong item in a block list, then a problem after it
        (
            "block item",
            "collect:\n  tcp:\n    ports:\n      - http\n      - 0\n",
            &[
                "t.yaml:4:9: collect.tcp.ports[0]: expected an integer, found \"http\"",
                "t.yaml:5:9: collect.tcp.ports[1]: port 0",
            ],
        ),
        // two documents: the second is the problem
        (
            "two documents",
            "agent: {}\n---\ncollect: {}\n",
            &["t.yaml:3:1: <root>: a configuration is one YAML document"],
        ),
        // a top-level typo with nothing close to suggest
        (
            "top-level typo",
            "typo: 1\n",
            &[
                "t.yaml:1:1: typo: unknown key `typo`; expected one of: agent, collect, rules, scalability, notify",
            ],
        ),
        // an interval removed by recovery is not compared with the timeout
        (
            "removed interval",
            "collect:\n  host:\n    interval: [1s]\n    timeout: 30s\n",
            &["t.yaml:3:15: collect.host.interval: expected a single value, found a list"],
        ),
    ];
    for (name, text, expected) in cases {
        let lines = rendered(&load_str(text, "t.yaml").expect_err(name));
        for want in *expected {
            assert!(
                lines.iter().any(|l| l.contains(want)),
                "{name}: want {want:?} in:\n{}",
                lines.join("\n")
            );
        }
        assert_eq!(lines.len(), expected.len(), "{name}:\n{}", lines.join("\n"));
    }
    let many: String = (0..150).map(|i| format!("typo{i}: 1\n")).collect();
    let lines = rendered(&load_str(&many, "t.yaml").expect_err("many"));
    assert_eq!(lines.len(), MAX_RECOVERIES + 1);
    assert!(
        lines[0].starts_with("t.yaml:1:1: typo0: unknown key"),
        "{}",
        lines[0]
    );
    let last = lines.last().expect("a last line");
    assert!(
        last.contains("stopped after 100 structural problems"),
        "{last}"
    );
}
