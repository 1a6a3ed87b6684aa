//! The Grafana dashboards under `dashboards/`.
//!
//! - Statically: every file parses as a current Grafana dashboard with the `datasource` and
//!   `host` variables; every panel has a description and queries `${datasource}`; every
//!   metric an expression names is in the catalogue (histograms only through `_bucket`,
//!   `_sum` or `_count`, counters and histogram series only inside `rate`/`increase`), and
//!   every selector filters on `host=~"$host"`; a panel whose single query shows a default
//!   rule's metric carries exactly that rule's warning and critical thresholds as its
//!   threshold steps, and every default rule has such a panel.
//! - Against real peers: a real Prometheus scrapes a real agent watching a real
//!   `redis-server`, probing its own `/healthz`, receiving pushed request timings and firing
//!   a rule, and every query of every panel must come back successful and non-empty.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use lookout::catalogue::{self, Kind, Metric};
use lookout::rules::model::{Op, Rule};
use lookout_tests::grafana::{
    Dashboard, GrafanaVars, all_panels, dashboards_dir, exprs, is_row, load_dashboards,
    panel_queries, substitute, title,
};
use lookout_tests::stack::{self, Stack, encode};
use serde_json::Value;

/// The dashboards that ship (host, cache, API, alerts & scalability); any other `*.json` is checked too.
const EXPECTED: &[&str] = &[
    "alerts.json",
    "api.json",
    "cache.json",
    "host-overview.json",
];

/// The selector filter every metric of every query must carry.
const HOST_FILTER: &str = r#"host=~"$host""#;

/// A metric named in an expression: the name and where it starts and ends.
#[derive(Debug)]
struct MetricRef<'a> {
    name: &'a str,
    start: usize,
    end: usize,
}

/// The identifiers of `expr` that name lookout's metrics (`lookout_*`, `process_*`), outside
/// string literals (so label values never count).
fn metric_refs(expr: &str) -> Vec<MetricRef<'_>> {
    let bytes = expr.as_bytes();
    let mut refs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if matches!(c, b'"' | b'\'' | b'`') {
            i = string_end(bytes, i);
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
            {
                i += 1;
            }
            let name = &expr[start..i];
            if name.starts_with("lookout_") || name.starts_with("process_") {
                refs.push(MetricRef {
                    name,
                    start,
                    end: i,
                });
            }
        } else {
            i += 1;
        }
    }
    refs
}

/// Index just past the string literal that opens at `open`.
fn string_end(bytes: &[u8], open: usize) -> usize {
    let quote = bytes[open];
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == b'\\' && quote != b'`' {
            i += 2;
        } else if bytes[i] == quote {
            return i + 1;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// The label matchers `{...}` right after a metric name, if any.
fn matchers_after(expr: &str, end: usize) -> Option<&str> {
    let rest = &expr[end..];
    let trimmed = rest.trim_start();
    if !trimmed.starts_with('{') {
        return None;
    }
    let open = end + (rest.len() - trimmed.len());
    let bytes = expr.as_bytes();
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' | b'`' => i = string_end(bytes, i),
            b'}' => return Some(&expr[open + 1..i]),
            _ => i += 1,
        }
    }
    None
}

/// The catalogue entry behind a series name: the metric itself, or the histogram a
/// `_bucket`/`_sum`/`_count` series belongs to.
fn resolve(name: &str) -> Result<&'static Metric, String> {
    if let Some(m) = catalogue::lookup(name) {
        if m.kind == Kind::Histogram {
            return Err(format!(
                "{name} is a histogram: Prometheus only has {name}_bucket, {name}_sum and {name}_count"
            ));
        }
        return Ok(m);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(m) = catalogue::lookup(base)
            && m.kind == Kind::Histogram
        {
            return Ok(m);
        }
    }
    Err(format!(
        "{name} is not in lookout::catalogue::ALL (agent/src/catalogue.rs)"
    ))
}

/// Problems of one query: unknown metrics, a missing host filter, a counter read raw.
fn check_expr(expr: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let refs = metric_refs(expr);
    if refs.is_empty() {
        problems.push("names no lookout metric".to_string());
    }
    for r in &refs {
        let metric = match resolve(r.name) {
            Ok(m) => m,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        match matchers_after(expr, r.end) {
            Some(m) if m.contains(HOST_FILTER) => {}
            _ => problems.push(format!("{} has no {HOST_FILTER} filter", r.name)),
        }
        // A counter's (or a histogram series') raw value only tells the time since the
        // source started: dashboards show its rate.
        if matches!(metric.kind, Kind::Counter | Kind::Histogram) {
            let before = expr[..r.start].trim_end();
            if !(before.ends_with("rate(") || before.ends_with("increase(")) {
                problems.push(format!(
                    "{} is a {}: use it inside rate(...) or increase(...)",
                    r.name,
                    metric.kind.as_str()
                ));
            }
        }
    }
    problems
}

/// The catalogue metrics (histogram series mapped to their histogram) a query reads.
fn base_metrics(expr: &str) -> BTreeSet<&'static str> {
    metric_refs(expr)
        .iter()
        .filter_map(|r| resolve(r.name).ok())
        .map(|m| m.name)
        .collect()
}

/// How a threshold step's colour reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warning,
    Critical,
}

fn level_of(color: &str) -> Option<Level> {
    let c = color.to_ascii_lowercase();
    if c.contains("green") || c == "#73bf69" {
        Some(Level::Ok)
    } else if c.contains("orange") || c.contains("yellow") || c == "#ff9830" || c == "#fade2a" {
        Some(Level::Warning)
    } else if c.contains("red") || c == "#f2495c" {
        Some(Level::Critical)
    } else {
        None
    }
}

/// One threshold step: `None` is the base step (Grafana's `"value": null`).
type Step = (Option<f64>, Level);

/// The default rules, loaded the way `lookout run` and `lookout check` load them without
/// `rules.files`: the embedded `rules/*.yaml`.
fn default_rules() -> Vec<Rule> {
    lookout::settings::Config::builtin()
        .load_rules()
        .unwrap_or_else(|e| panic!("the built-in rules do not load: {e:?}"))
}

/// The metric a rule shows as it is, if its expression is a plain selector (no function,
/// aggregation or scaling that would change what a panel of that metric draws).
fn rule_metric(rule: &Rule) -> Option<&'static str> {
    let names = rule.expr.metric_names();
    let [name] = names.as_slice() else {
        return None;
    };
    let metric = catalogue::lookup(name)?;
    let promql = rule.expr.to_promql();
    let plain = promql == metric.name
        || (promql.starts_with(&format!("{}{{", metric.name)) && promql.ends_with('}'));
    plain.then_some(metric.name)
}

/// The threshold steps a panel of `rule`'s metric must have: for `>`, green below the
/// warning value, orange from it, red from the critical one; for `<`, the other way round
/// (red below critical, orange below warning, green from the warning value up).
fn expected_steps(rule: &Rule) -> Result<Vec<Step>, String> {
    let c = &rule.conditions;
    let ops: Vec<Op> = [c.warning, c.critical]
        .iter()
        .flatten()
        .map(|t| t.op)
        .collect();
    let w = c.warning.map(|t| t.value);
    let cr = c.critical.map(|t| t.value);
    if ops.iter().all(|op| matches!(op, Op::Gt | Op::Ge)) {
        let mut steps = vec![(None, Level::Ok)];
        steps.extend(w.map(|v| (Some(v), Level::Warning)));
        steps.extend(cr.map(|v| (Some(v), Level::Critical)));
        Ok(steps)
    } else if ops.iter().all(|op| matches!(op, Op::Lt | Op::Le)) {
        Ok(match (w, cr) {
            (Some(w), Some(cr)) => vec![
                (None, Level::Critical),
                (Some(cr), Level::Warning),
                (Some(w), Level::Ok),
            ],
            (Some(w), None) => vec![(None, Level::Warning), (Some(w), Level::Ok)],
            (None, Some(cr)) => vec![(None, Level::Critical), (Some(cr), Level::Ok)],
            (None, None) => Vec::new(),
        })
    } else {
        Err(format!(
            "rule {} uses {:?}: an equality threshold has no colour steps",
            rule.alert, ops
        ))
    }
}

/// A panel's `fieldConfig.defaults.thresholds.steps`.
fn panel_steps(panel: &Value) -> Result<Vec<Step>, String> {
    let steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        .as_array()
        .ok_or("no fieldConfig.defaults.thresholds.steps")?;
    steps
        .iter()
        .map(|s| {
            let color = s["color"].as_str().unwrap_or("");
            let level =
                level_of(color).ok_or_else(|| format!("threshold colour {color:?} unknown"))?;
            match &s["value"] {
                Value::Null => Ok((None, level)),
                v => v
                    .as_f64()
                    .map(|v| (Some(v), level))
                    .ok_or_else(|| format!("threshold value {v} is not a number")),
            }
        })
        .collect()
}

fn same_steps(a: &[Step], b: &[Step]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((va, la), (vb, lb))| {
            la == lb
                && match (va, vb) {
                    (None, None) => true,
                    (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                    _ => false,
                }
        })
}

fn show_steps(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|(v, l)| match v {
            None => format!("base {l:?}"),
            Some(v) => format!("{v} {l:?}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn variable<'a>(dashboard: &'a Value, name: &str) -> Option<&'a Value> {
    dashboard["templating"]["list"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
}

/// Dashboard-level problems: schema, identity, tags, variables.
fn check_dashboard(d: &Dashboard, problems: &mut Vec<String>) {
    let j = &d.json;
    let mut bad = |msg: String| problems.push(format!("{}: {msg}", d.file));
    if j["schemaVersion"].as_u64().is_none_or(|v| v < 39) {
        bad(format!("schemaVersion {} < 39", j["schemaVersion"]));
    }
    if j["uid"].as_str().is_none_or(str::is_empty) {
        bad("no uid".into());
    }
    if j["title"].as_str().is_none_or(str::is_empty) {
        bad("no title".into());
    }
    if !j["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "lookout"))
    {
        bad("tags lack \"lookout\"".into());
    }
    match variable(j, "datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        Some(v) => bad(format!(
            "variable datasource must be type datasource, query prometheus: {v}"
        )),
        None => bad("no datasource variable".into()),
    }
    match variable(j, "host") {
        Some(v) => {
            let query = v["query"]["query"].as_str().or(v["query"].as_str());
            if v["type"] != "query"
                || query != Some("label_values(lookout_build_info, host)")
                || v["multi"] != true
                || v["includeAll"] != true
                || v["datasource"]["uid"] != "${datasource}"
            {
                bad(format!(
                    "variable host must be a multi-select query variable with All over \
                     label_values(lookout_build_info, host) on ${{datasource}}: {v}"
                ));
            }
        }
        None => bad("no host variable".into()),
    }
}

/// Panel-level problems: description, datasource, queries, unique titles and ids.
fn check_panels(d: &Dashboard, problems: &mut Vec<String>) {
    let mut titles = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for panel in all_panels(&d.json) {
        let t = title(panel);
        let mut bad = |msg: String| problems.push(format!("{} / {t}: {msg}", d.file));
        if !titles.insert(t) {
            bad("duplicate panel title".into());
        }
        if !ids.insert(panel["id"].as_u64()) {
            bad(format!("duplicate or missing panel id {}", panel["id"]));
        }
        if is_row(panel) {
            // A row is layout only: no description or query of its own.
            if panel["targets"].as_array().is_some_and(|t| !t.is_empty()) {
                bad("a row must not have queries".into());
            }
            continue;
        }
        if panel["description"]
            .as_str()
            .is_none_or(|s| s.trim().len() < 20)
        {
            bad("no description (what it shows, what to do when it is red)".into());
        }
        if panel["datasource"]["uid"] != "${datasource}" {
            bad(format!(
                "panel datasource must be ${{datasource}}, is {}",
                panel["datasource"]
            ));
        }
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        if targets.is_empty() {
            bad("no queries".into());
        }
        for target in targets {
            if target["datasource"]["uid"] != "${datasource}" {
                bad(format!(
                    "query {} datasource must be ${{datasource}}, is {}",
                    target["refId"], target["datasource"]
                ));
            }
            let expr = target["expr"].as_str().unwrap_or("");
            for p in check_expr(expr) {
                bad(format!("{p}\n    in: {expr}"));
            }
        }
    }
}

/// Threshold problems: a single-query panel of a rule's metric must carry that rule's
/// thresholds, and every default rule must have at least one such panel.
fn check_thresholds(dashboards: &[Dashboard], rules: &[Rule], problems: &mut Vec<String>) {
    let mut by_metric: BTreeMap<&str, Vec<&Rule>> = BTreeMap::new();
    for rule in rules {
        if let Some(m) = rule_metric(rule) {
            by_metric.entry(m).or_default().push(rule);
        }
    }
    let mut shown: BTreeSet<&str> = BTreeSet::new();
    for d in dashboards {
        for panel in all_panels(&d.json) {
            let t = title(panel);
            let [expr] = exprs(panel)[..] else {
                continue;
            };
            let metrics = base_metrics(expr);
            let mut matching = metrics.iter().filter_map(|m| by_metric.get(m));
            let (Some(rules_of_metric), None) = (matching.next(), matching.next()) else {
                continue;
            };
            let mut bad = |msg: String| problems.push(format!("{} / {t}: {msg}", d.file));
            if metrics.len() != 1 {
                bad(format!(
                    "mixes a rule's metric with others ({metrics:?}): its thresholds cannot apply"
                ));
                continue;
            }
            let [rule] = rules_of_metric[..] else {
                bad(format!(
                    "several default rules watch {metrics:?}; a panel cannot show both"
                ));
                continue;
            };
            let expected = match expected_steps(rule) {
                Ok(s) => s,
                Err(e) => {
                    bad(e);
                    continue;
                }
            };
            shown.insert(rule.alert.as_str());
            match panel_steps(panel) {
                Ok(actual) if same_steps(&actual, &expected) => {}
                Ok(actual) => bad(format!(
                    "threshold steps [{}] differ from rule {} ({}: warning {:?}, critical {:?}), \
                     expected [{}]",
                    show_steps(&actual),
                    rule.alert,
                    rule.file,
                    rule.conditions
                        .warning
                        .map(|t| format!("{} {}", t.op.as_str(), t.value)),
                    rule.conditions
                        .critical
                        .map(|t| format!("{} {}", t.op.as_str(), t.value)),
                    show_steps(&expected)
                )),
                Err(e) => bad(e),
            }
            if panel["type"] == "timeseries"
                && panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"]
                    .as_str()
                    .is_none_or(|m| m == "off")
            {
                bad(format!(
                    "shows rule {}'s thresholds but does not draw them (thresholdsStyle.mode)",
                    rule.alert
                ));
            }
        }
    }
    for rule in rules {
        if rule_metric(rule).is_some() && !shown.contains(rule.alert.as_str()) {
            problems.push(format!(
                "default rule {} ({}) has no panel: add a single-query panel of {} with its thresholds",
                rule.alert, rule.file, rule.expr_text
            ));
        }
    }
}

#[test]
fn dashboards_match_the_catalogue_and_the_default_rules() {
    let dashboards = load_dashboards();
    let files: Vec<&str> = dashboards.iter().map(|d| d.file.as_str()).collect();
    for want in EXPECTED {
        assert!(files.contains(want), "dashboards/{want} is missing");
    }
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for d in &dashboards {
        check_dashboard(d, &mut problems);
        check_panels(d, &mut problems);
        if !uids.insert(d.json["uid"].to_string()) {
            problems.push(format!("{}: uid {} used twice", d.file, d.json["uid"]));
        }
        if !titles.insert(d.json["title"].to_string()) {
            problems.push(format!("{}: title {} used twice", d.file, d.json["title"]));
        }
    }
    let rules = default_rules();
    assert!(!rules.is_empty(), "no default rules loaded");
    check_thresholds(&dashboards, &rules, &mut problems);
    assert!(
        problems.is_empty(),
        "{} dashboard problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_checks_catch_what_they_are_for() {
    // Each row: an expression and the problem check_expr must report (None: clean).
    let cases: &[(&str, Option<&str>)] = &[
        // A gauge with the host filter.
        (r#"lookout_load1{host=~"$host"}"#, None),
        // The catalogue says lookout_cpus, not lookout_cpu_count.
        (
            r#"lookout_cpu_count{host=~"$host"}"#,
            Some("not in lookout::catalogue"),
        ),
        // No host filter at all, or a different one.
        (r#"lookout_load1"#, Some("no host=~")),
        (r#"lookout_load1{host="web-1"}"#, Some("no host=~")),
        // Histogram series only exist with their suffixes, and only inside rate().
        (
            r#"histogram_quantile(0.9, sum by (le) (rate(lookout_api_request_duration_seconds_bucket{host=~"$host"}[5m])))"#,
            None,
        ),
        (
            r#"lookout_api_request_duration_seconds{host=~"$host"}"#,
            Some("is a histogram"),
        ),
        // _count of a gauge is no series.
        (
            r#"rate(lookout_load1_count{host=~"$host"}[5m])"#,
            Some("not in lookout::catalogue"),
        ),
        // A counter read raw.
        (
            r#"lookout_redis_evicted_keys_total{host=~"$host"}"#,
            Some("inside rate"),
        ),
        // Names inside label values are not metrics.
        (
            r#"lookout_collector_up{host=~"$host", collector="lookout_nothing"}"#,
            None,
        ),
        // The agent's own process metrics are in the catalogue.
        (
            r#"rate(process_cpu_seconds_total{host=~"$host"}[1m])"#,
            None,
        ),
    ];
    for (expr, want) in cases {
        let got = check_expr(expr);
        match want {
            None => assert!(got.is_empty(), "{expr}: unexpected {got:?}"),
            Some(w) => assert!(
                got.iter().any(|p| p.contains(w)),
                "{expr}: expected a problem containing {w:?}, got {got:?}"
            ),
        }
    }

    // Thresholds: the CPU rule wants green, 0.70 orange, 0.85 red; a panel with 0.80 fails.
    let rules = default_rules();
    let cpu = rules
        .iter()
        .find(|r| r.alert == "HostCpuHigh")
        .expect("HostCpuHigh");
    let expected = expected_steps(cpu).expect("steps");
    assert!(same_steps(
        &expected,
        &[
            (None, Level::Ok),
            (Some(0.70), Level::Warning),
            (Some(0.85), Level::Critical)
        ]
    ));
    let panel = serde_json::json!({"fieldConfig": {"defaults": {"thresholds": {"steps": [
        {"color": "green", "value": null}, {"color": "orange", "value": 0.8},
        {"color": "red", "value": 0.85}]}}}});
    assert!(!same_steps(&panel_steps(&panel).expect("steps"), &expected));
    // A "lower is worse" warning-only rule: orange below 0.80, green from it.
    let hit = rules
        .iter()
        .find(|r| r.alert == "RedisHitRatioLow")
        .expect("RedisHitRatioLow");
    assert!(same_steps(
        &expected_steps(hit).expect("steps"),
        &[(None, Level::Warning), (Some(0.80), Level::Ok)]
    ));
}

#[test]
fn provisioning_files_point_at_the_dashboards_and_prometheus() {
    let dir = dashboards_dir().join("provisioning");
    let provider = std::fs::read_to_string(dir.join("dashboards/lookout.yaml"))
        .expect("dashboards/provisioning/dashboards/lookout.yaml");
    for want in [
        "apiVersion: 1",
        "providers:",
        "type: file",
        "folder: lookout",
        "path: /var/lib/grafana/dashboards/lookout",
    ] {
        assert!(
            provider.contains(want),
            "dashboard provider lacks {want:?}:\n{provider}"
        );
    }
    let datasource = std::fs::read_to_string(dir.join("datasources/prometheus.yaml"))
        .expect("dashboards/provisioning/datasources/prometheus.yaml");
    for want in [
        "apiVersion: 1",
        "datasources:",
        "type: prometheus",
        "url: http://localhost:9090",
    ] {
        assert!(
            datasource.contains(want),
            "datasource provisioning lacks {want:?}:\n{datasource}"
        );
    }
}

// ---------------------------------------------------------------- against real peers

// ---------------------------------------------------------------- against real peers

/// Grafana's variables as they are for one selected host and a short time range.
const VARS: GrafanaVars = GrafanaVars {
    host: stack::HOST,
    rate_interval: "15s",
    interval: "5s",
    range: "1m",
};

#[test]
fn every_panel_query_answers_from_a_real_prometheus_scraping_a_real_agent() {
    let stack = Stack::start("");
    let (agent, prometheus) = (&stack.agent, &stack.prometheus);

    // The host variable's query, as Grafana asks it.
    let hosts = prometheus
        .api(&format!(
            "/api/v1/label/host/values?{}={}",
            encode("match[]"),
            encode("lookout_build_info")
        ))
        .expect("label values");
    assert!(
        hosts["data"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h == "test-host")),
        "label_values(lookout_build_info, host) lacks test-host: {hosts}"
    );

    // Every query of every panel, retried for a while: some series only appear after the
    // first evaluations (alerts, notifications) or the first Redis interval with traffic.
    let mut pending: Vec<(String, String, String)> = panel_queries()
        .into_iter()
        .map(|q| {
            let promql = substitute(&q.expr, &VARS);
            (q.panel, q.expr, promql)
        })
        .collect();
    let total = pending.len();
    assert!(total > 40, "only {total} panel queries found");
    let mut failures: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        failures.clear();
        pending.retain(|(panel, expr, promql)| {
            if promql.contains('$') {
                failures.push(format!(
                    "{panel}: {expr}\n    a variable is left after substitution: {promql}"
                ));
                return true;
            }
            match prometheus.query(promql) {
                Ok(_) => false,
                Err(answer) => {
                    failures.push(format!("{panel}: {promql}\n    answer: {answer}"));
                    true
                }
            }
        });
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        failures.is_empty(),
        "{} of {total} panel queries failed or came back empty:\n{}\nagent log:\n{}",
        failures.len(),
        failures.join("\n"),
        agent.log()
    );
}
