//! The agent's in-memory history and its query API, through the real binary:
//!
//! - a restart (SIGTERM, start again on the same `data_dir`) keeps the history: a range
//!   query across the restart returns, unchanged, every point it returned before, and the
//!   `lookout_history_*` metrics say so;
//! - a corrupt history file is moved aside as `<name>.corrupt-<unix seconds>` and the agent
//!   starts fresh and serves;
//! - bad queries get a 400 with Prometheus's error shape, fast, and do not grow the agent's
//!   memory;
//! - with `agent.read_token_file` set, the query API needs the read token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lookout_tests::stack::{form, unix_now};
use lookout_tests::{Agent, MetricSample, TempDir, http, poll_until, value};
use serde_json::Value;

/// The history section of every agent here.
fn history(persist: bool) -> String {
    format!("history:\n  retention: 1h\n  max_memory: 8MiB\n  persist: {persist}\n")
}

/// `max_memory` above.
const MAX_MEMORY: f64 = 8.0 * 1024.0 * 1024.0;

/// The series the restart test follows: it changes all the time, so its points say which
/// collection they came from.
const FOLLOWED: &str = r#"lookout_memory_available_bytes{host="test-host"}"#;

/// GET `path` with `params`; the status and the parsed answer (fails the test on no JSON).
fn get(agent: &Agent, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let path = format!("{path}?{}", form(params));
    let (status, body) = agent.get(&path);
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {path}: HTTP {status}, not JSON ({e}): {body}"));
    (status, json)
}

/// The points of the single series a range query of [`FOLLOWED`] returns, at 1 s steps
/// from `start` to `end`: timestamp (seconds) to the value as the agent wrote it.
fn followed_points(agent: &Agent, start: i64, end: i64) -> BTreeMap<i64, String> {
    let (start, end) = (start.to_string(), end.to_string());
    let params = [
        ("query", FOLLOWED),
        ("start", &start),
        ("end", &end),
        ("step", "1"),
    ];
    let (status, json) = get(agent, "/api/v1/query_range", &params);
    assert!(
        status == 200 && json["status"] == "success" && json["data"]["resultType"] == "matrix",
        "query_range {params:?}: HTTP {status}: {json}\nlog:\n{}",
        agent.log()
    );
    let result = json["data"]["result"].as_array().expect("result array");
    assert_eq!(
        result.len(),
        1,
        "one series expected for {FOLLOWED}: {json}"
    );
    result[0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|p| {
            let t = p[0].as_f64().unwrap_or_else(|| panic!("bad point {p}"));
            let v = p[1].as_str().unwrap_or_else(|| panic!("bad point {p}"));
            (t.round() as i64, v.to_string())
        })
        .collect()
}

#[test]
fn a_restart_keeps_the_history() {
    let first_start = unix_now();
    let mut agent = Agent::start(&format!(
        "{}collect:\n  host: {{interval: 1s}}\n",
        history(true)
    ));
    agent.wait_until(
        "10 runs of the memory collector",
        Duration::from_secs(30),
        || agent.collector_runs("memory") >= 10,
    );
    let start = first_start.ceil() as i64;
    // A second back, so that no collection stamped before the end is still being stored.
    let before_end = (unix_now() - 1.0).floor() as i64;
    let before = followed_points(&agent, start, before_end);
    assert!(
        before.len() >= 5,
        "only {} points of {FOLLOWED} after 10 collections: {before:?}",
        before.len()
    );

    let stopped = unix_now();
    agent.restart();
    agent.wait_until(
        "3 runs of the memory collector after the restart",
        Duration::from_secs(30),
        || agent.collector_runs("memory") >= 3,
    );
    let after_end = unix_now().floor() as i64;
    let after = followed_points(&agent, start, after_end);

    // Every point from before is still there, with the same value.
    let lost: Vec<String> = before
        .iter()
        .filter(|(t, v)| after.get(t) != Some(v))
        .map(|(t, v)| format!("t={t}: {v} before the restart, {:?} after", after.get(t)))
        .collect();
    assert!(
        lost.is_empty(),
        "the restart lost or changed {} of {} points of {FOLLOWED} from before it:\n{}\n\
         after the restart the range {start}..{after_end} answers {after:?}\nlog:\n{}",
        lost.len(),
        before.len(),
        lost.join("\n"),
        agent.log()
    );
    // And the collections after it are added: raw samples counted in a window that
    // starts after the restart (a lookback could show old points at new steps).
    let since = (unix_now() - stopped).floor() as i64;
    let count = format!("count_over_time({FOLLOWED}[{since}s])");
    let (status, json) = get(&agent, "/api/v1/query", &[("query", &count)]);
    let newer = json["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok());
    assert!(
        status == 200 && newer.is_some_and(|n| n >= 2.0),
        "{count}: expected the 2 or more collections since the restart, got HTTP {status}: {json}"
    );

    // The history's own metrics.
    let (samples, [series, bytes, oldest]) = history_metrics(&agent);
    let exported = samples.len() as f64;
    assert!(
        series >= exported / 2.0 && series <= exported * 3.0 + 10.0,
        "lookout_history_series {series}: implausible beside the {exported} series /metrics exports"
    );
    assert!(
        bytes > 0.0 && bytes <= MAX_MEMORY,
        "lookout_history_bytes {bytes}: not within (0, max_memory {MAX_MEMORY}]"
    );
    assert!(
        oldest >= first_start.floor() - 1.0 && oldest < stopped,
        "lookout_history_oldest_timestamp_seconds {oldest}: the oldest point should be from \
         the first run, which started at {first_start} and stopped at {stopped}"
    );
}

/// The `lookout_history_*` metrics of `/metrics` once all three are there and above 0
/// (the agent may update them a few seconds after a start): the whole exposition, and
/// the series, bytes and oldest timestamp.
fn history_metrics(agent: &Agent) -> (Vec<MetricSample>, [f64; 3]) {
    const NAMES: [&str; 3] = [
        "lookout_history_series",
        "lookout_history_bytes",
        "lookout_history_oldest_timestamp_seconds",
    ];
    let mut last = Vec::new();
    poll_until(
        "lookout_history_series, _bytes and _oldest_timestamp_seconds above 0 on /metrics",
        Duration::from_secs(15),
        || {
            last = agent.metrics();
            NAMES
                .iter()
                .all(|n| value(&last, n, &[("host", "test-host")]).is_some_and(|v| v > 0.0))
        },
        || {
            let shown: Vec<String> = NAMES
                .iter()
                .map(|n| format!("{n}: {:?}", value(&agent.metrics(), n, &[])))
                .collect();
            format!("{}\nlog:\n{}", shown.join("\n"), agent.log())
        },
    );
    let values = NAMES.map(|n| value(&last, n, &[]).unwrap_or_default());
    (last, values)
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path.strip_prefix(dir).expect("under dir").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Stops the agent with SIGTERM and waits for a clean exit.
fn stop(agent: &mut Agent) {
    agent.signal("TERM");
    let status = agent.child.wait().expect("wait for the agent");
    assert!(
        status.success(),
        "agent exited with {status:?}:\n{}",
        agent.log()
    );
}

/// Rewrites the agent's configuration with `history` in place of the old history section.
fn set_history(agent: &Agent, old: &str, new: &str) {
    let config = std::fs::read_to_string(&agent.config_path).expect("read config");
    assert!(config.contains(old), "{old:?} not in:\n{config}");
    std::fs::write(&agent.config_path, config.replace(old, new)).expect("write config");
}

#[test]
fn a_corrupt_history_file_is_moved_aside_and_the_agent_starts_fresh() {
    // Which file is the history's: the one a clean shutdown leaves in data_dir with
    // persist: true and not with persist: false (the outbox and alert states are in both).
    let mut agent = Agent::start(&format!(
        "{}collect:\n  host: {{interval: 1s}}\n",
        history(false)
    ));
    let data = agent.dir.path().join("data");
    agent.wait_until("2 memory runs", Duration::from_secs(30), || {
        agent.collector_runs("memory") >= 2
    });
    stop(&mut agent);
    let without = files_under(&data);
    set_history(&agent, &history(false), &history(true));
    agent.start_again();
    agent.wait_until("2 memory runs", Duration::from_secs(30), || {
        agent.collector_runs("memory") >= 2
    });
    stop(&mut agent);
    let with = files_under(&data);
    let new: Vec<&PathBuf> = with.iter().filter(|f| !without.contains(f)).collect();
    let [history_file] = new[..] else {
        panic!(
            "expected one history file in data_dir after a clean shutdown with persist: true, \
             found {new:?} (without persist: {without:?}; with: {with:?})"
        );
    };
    let path = data.join(history_file);

    let garbage: Vec<u8> = b"not a lookout history snapshot\n"
        .iter()
        .copied()
        .chain((0u32..4096).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8))
        .collect();
    std::fs::write(&path, &garbage).expect("corrupt the history file");
    let before = unix_now().floor() as i64;
    agent.start_again();
    let after = unix_now().ceil() as i64;

    let name = path
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let dir = path.parent().expect("a directory");
    let aside: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .expect("read the history file's directory")
        .map(|e| e.expect("directory entry").path())
        .filter_map(|p| {
            let file = p.file_name()?.to_str()?;
            let secs = file.strip_prefix(&format!("{name}.corrupt-"))?;
            Some((secs.parse().ok()?, p.clone()))
        })
        .collect();
    let [(secs, moved)] = &aside[..] else {
        panic!(
            "expected one {name}.corrupt-<unix seconds> beside {}, found {aside:?} in {:?}\nlog:\n{}",
            path.display(),
            files_under(dir),
            agent.log()
        );
    };
    assert!(
        (before - 1..=after + 1).contains(secs),
        "{} is stamped {secs}, the agent started between {before} and {after}",
        moved.display()
    );
    assert_eq!(
        std::fs::read(moved).expect("read the moved file"),
        garbage,
        "{} does not hold what the corrupt file held",
        moved.display()
    );

    // It serves, from a fresh history.
    agent.wait_until(
        "lookout_build_info in the query API",
        Duration::from_secs(30),
        || {
            let (status, json) = get(&agent, "/api/v1/query", &[("query", "lookout_build_info")]);
            status == 200
                && json["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
        },
    );
    let (_, [_, _, oldest]) = history_metrics(&agent);
    assert!(
        oldest >= (before - 1) as f64,
        "the history's oldest point {oldest} predates the start at {before}: it was not fresh"
    );
}

/// One bad request: what it is, the method, the path and the form or query string.
struct Bad {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    params: Vec<(&'static str, String)>,
}

impl Bad {
    fn get(what: &'static str, path: &'static str, params: &[(&'static str, String)]) -> Bad {
        Bad {
            what,
            method: "GET",
            path,
            params: params.to_vec(),
        }
    }

    /// Sends it; the status, the body and the wall time from connect to the last byte.
    fn send(&self, agent: &Agent) -> (u16, String, Duration) {
        let params: Vec<(&str, &str)> = self.params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let encoded = form(&params);
        let began = Instant::now();
        let answer = if self.method == "GET" {
            http(
                agent.addr,
                "GET",
                &format!("{}?{encoded}", self.path),
                &[],
                "",
            )
        } else {
            let headers = [("Content-Type", "application/x-www-form-urlencoded")];
            http(agent.addr, "POST", self.path, &headers, &encoded)
        };
        let took = began.elapsed();
        let (status, body) =
            answer.unwrap_or_else(|e| panic!("{}: {e}\nlog:\n{}", self.what, agent.log()));
        (status, body, took)
    }
}

/// The bad queries, `now` the current Unix second.
fn bad_queries(now: i64) -> Vec<Bad> {
    let now_s = now.to_string();
    let day_ago = (now - 86_400).to_string();
    let ten_years_ago = (now - 10 * 365 * 86_400).to_string();
    let q = |s: &str| s.to_string();
    let mut cases = vec![
        Bad::get(
            "a syntax error",
            "/api/v1/query",
            &[("query", q("sum(lookout_load1"))],
        ),
        Bad::get(
            "an unknown function",
            "/api/v1/query",
            &[("query", q("no_such_function(lookout_load1)"))],
        ),
        // 3,650 steps, under the step limit: the span itself must be refused.
        Bad::get(
            "a range of 10 years",
            "/api/v1/query_range",
            &[
                ("query", q("lookout_load1")),
                ("start", ten_years_ago),
                ("end", now_s.clone()),
                ("step", q("86400")),
            ],
        ),
        Bad::get(
            "step=0.001 over a day",
            "/api/v1/query_range",
            &[
                ("query", q("lookout_load1")),
                ("start", day_ago.clone()),
                ("end", now_s.clone()),
                ("step", q("0.001")),
            ],
        ),
        Bad::get(
            "a [10y] range selector",
            "/api/v1/query",
            &[("query", q("rate(lookout_cpu_seconds_total[10y])"))],
        ),
        Bad::get(
            "a non-numeric time",
            "/api/v1/query",
            &[("query", q("lookout_load1")), ("time", q("yesterday"))],
        ),
    ];
    // The same through POST forms, as Grafana sends them.
    let posted: Vec<Bad> = cases
        .iter()
        .filter(|b| matches!(b.what, "a syntax error" | "step=0.001 over a day"))
        .map(|b| Bad {
            what: if b.what == "a syntax error" {
                "a syntax error (POST)"
            } else {
                "step=0.001 over a day (POST)"
            },
            method: "POST",
            path: b.path,
            params: b.params.clone(),
        })
        .collect();
    cases.extend(posted);
    cases
}

/// What is wrong with the answer to a bad query, if anything: it must be a 400 with
/// `{"status":"error","errorType":"bad_data","error":"<message>"}`.
fn refusal_problem(status: u16, body: &str) -> Option<String> {
    let json: Value = match serde_json::from_str(body) {
        Ok(j) => j,
        Err(e) => return Some(format!("HTTP {status}, not JSON ({e}): {body}")),
    };
    let message = json["error"].as_str().unwrap_or("");
    let ok = status == 400
        && json["status"] == "error"
        && json["errorType"] == "bad_data"
        && !message.trim().is_empty();
    (!ok).then(|| format!("HTTP {status}: {body}"))
}

/// The agent's resident memory, from /proc/<pid>/status.
fn rss_bytes(agent: &Agent) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.child.id()))
        .expect("read /proc/<pid>/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"));
    kib * 1024
}

/// Each bad query is sent 3 times: every answer must be the refusal, and the median time
/// within 100 ms (the median, so that one scheduling hiccup of a loaded machine does not
/// fail it, while an agent that evaluates before refusing does, every time). Then, after a
/// warm-up of 60 (buffers, pools, lazily built tables), 500 more must not grow the agent's
/// RSS by more than 2 MiB: what one bad query leaves behind, if anything, times 500, shows
/// well above the allocator's noise.
#[test]
fn bad_queries_are_refused_fast_and_leave_nothing_behind() {
    // Collection once a minute, so that the history barely grows while RSS is measured.
    let agent = Agent::start(&format!(
        "{}collect:\n  host: {{interval: 60s}}\n  tcp: {{interval: 60s}}\n",
        history(false)
    ));
    let cases = bad_queries(unix_now().floor() as i64);
    let mut problems = Vec::new();
    let mut report = Vec::new();
    for case in &cases {
        let mut times = Vec::new();
        for _ in 0..3 {
            let (status, body, took) = case.send(&agent);
            if let Some(p) = refusal_problem(status, &body) {
                problems.push(format!("{}: {p}", case.what));
            }
            times.push(took);
        }
        times.sort();
        report.push(format!("{}: {:?}", case.what, times));
        if times[1] > Duration::from_millis(100) {
            problems.push(format!(
                "{}: refused in {:?} (median of {times:?}), more than 100 ms",
                case.what, times[1]
            ));
        }
    }
    println!("bad queries, times of 3 tries each:\n{}", report.join("\n"));
    assert!(
        problems.is_empty(),
        "bad queries not refused as Prometheus does (400, status error, errorType bad_data, a \
         message), or slowly:\n{}\nlog:\n{}",
        problems.join("\n"),
        agent.log()
    );

    let mut send_many = |n: usize| {
        for i in 0..n {
            let case = &cases[i % cases.len()];
            let (status, body, _) = case.send(&agent);
            if let Some(p) = refusal_problem(status, &body) {
                problems.push(format!("{} (#{i}): {p}", case.what));
            }
        }
    };
    send_many(60);
    let before = rss_bytes(&agent);
    send_many(500);
    let after = rss_bytes(&agent);
    println!("RSS before 500 bad queries {before} B, after {after} B");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        after <= before + 2 * 1024 * 1024,
        "500 bad queries grew the agent's RSS from {before} to {after} bytes (+{} KiB), more \
         than the 2 MiB allowed",
        (after - before) / 1024
    );
}

#[test]
fn the_query_api_needs_the_read_token_when_one_is_set() {
    let dir = TempDir::new("history-token");
    let token_file = dir.path().join("read-token");
    let agent = Agent::start_in(
        dir,
        &[("read-token", "read-s3cret\n")],
        &format!(
            "  read_token_file: {}\n{}collect:\n  host: {{interval: 1s}}\n",
            token_file.display(),
            history(false)
        ),
    );
    let good = [("Authorization", "Bearer read-s3cret")];
    let wrong = [("Authorization", "Bearer nope")];
    // Let the history have a point, so that the queries answer with data.
    poll_until(
        "lookout_build_info in the query API",
        Duration::from_secs(30),
        || {
            http(
                agent.addr,
                "GET",
                "/api/v1/query?query=lookout_build_info",
                &good,
                "",
            )
            .is_ok_and(|(s, b)| s == 200 && b.contains("lookout_build_info"))
        },
        || agent.log(),
    );
    let now = unix_now().floor() as i64;
    let range = form(&[
        ("query", "lookout_build_info"),
        ("start", &(now - 60).to_string()),
        ("end", &now.to_string()),
        ("step", "5"),
    ]);
    let query = form(&[("query", "lookout_build_info")]);
    let requests: Vec<(&str, String, &str)> = vec![
        ("GET", format!("/api/v1/query?{query}"), ""),
        ("POST", "/api/v1/query".to_string(), query.as_str()),
        ("GET", format!("/api/v1/query_range?{range}"), ""),
        (
            "GET",
            format!(
                "/api/v1/series?{}",
                form(&[("match[]", "lookout_build_info")])
            ),
            "",
        ),
        ("GET", "/api/v1/labels".to_string(), ""),
        (
            "GET",
            format!(
                "/api/v1/label/host/values?{}",
                form(&[("match[]", "lookout_build_info")])
            ),
            "",
        ),
        ("GET", "/api/v1/metadata".to_string(), ""),
        ("GET", "/api/v1/status/buildinfo".to_string(), ""),
    ];
    let mut problems = Vec::new();
    for (method, path, body) in &requests {
        for (who, headers, want) in [
            ("no token", &[][..], 401),
            ("a wrong token", &wrong[..], 401),
            ("the read token", &good[..], 200),
        ] {
            let mut headers = headers.to_vec();
            if *method == "POST" {
                headers.push(("Content-Type", "application/x-www-form-urlencoded"));
            }
            match http(agent.addr, method, path, &headers, body) {
                Ok((status, _)) if status == want => {}
                Ok((status, text)) => problems.push(format!(
                    "{method} {path} with {who}: HTTP {status}, expected {want}: {text}"
                )),
                Err(e) => problems.push(format!("{method} {path} with {who}: {e}")),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nlog:\n{}",
        problems.join("\n"),
        agent.log()
    );
}
