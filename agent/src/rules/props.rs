//! Property tests of the rules' parsers: rule files (`load::parse_file`) from the shipped
//! rule files, mutated line by line, and random documents of their keys; expressions
//! (`expr::parse`) on random text, on mutated shipped expressions, and generated valid ones
//! that must print back as PromQL meaning the same; rule-test files (`testing::run_file`)
//! from the shipped rule tests, mutated.

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;

use super::expr;
use super::load::{BUILTIN, BUILTIN_PREFIX, Defaults, load_builtin, parse_file};
use super::testing::run_file;
use crate::catalogue::{self, Kind, Metric};
use crate::props::{
    self, Scratch, apply, apply_noop, assert_located, document, edits, keys_of, noop, render,
    timed, yamlish_text,
};

fn defaults() -> Defaults {
    Defaults {
        evaluation_interval: Duration::from_secs(10),
        stale_after: Duration::from_secs(300),
        repeat_interval: Duration::from_secs(4 * 3600),
    }
}

/// `(file, text)` of every shipped rule file.
fn rule_files() -> Vec<(String, String)> {
    BUILTIN
        .iter()
        .map(|(name, text)| (format!("{BUILTIN_PREFIX}{name}"), text.to_string()))
        .collect()
}

/// The keys of every shipped rule file.
fn rule_keys() -> Vec<String> {
    keys_of(
        &BUILTIN
            .iter()
            .map(|(_, t)| *t)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Parses one rule file within the time limit; when it has problems, they must say where.
fn check_rule_file(text: &str, file: &str) -> Result<(), TestCaseError> {
    let mut problems = Vec::new();
    let rules = timed("parse_file", || {
        parse_file(text, file, &defaults(), &mut problems)
    })?;
    if !problems.is_empty() {
        prop_assert!(rules.is_empty(), "rules returned beside problems");
        assert_located(&problems, file, text)?;
    }
    Ok(())
}

/// The rules of a file as compared across edits that change nothing: everything but the
/// line each starts on.
fn rules_without_lines(text: &str, file: &str) -> Result<String, TestCaseError> {
    let mut problems = Vec::new();
    let mut rules = parse_file(text, file, &defaults(), &mut problems);
    prop_assert!(problems.is_empty(), "{text}\n{problems:#?}");
    rules.iter_mut().for_each(|r| r.line = 0);
    Ok(format!("{rules:?}"))
}

proptest! {
    #![proptest_config(props::config(128))]

    #[test]
    fn mutated_rule_files_are_loaded_or_located(
        (file, text) in prop::sample::select(rule_files()),
        edits in edits(rule_keys()),
    ) {
        check_rule_file(&apply(&text, &edits), &file)?;
    }

    #[test]
    fn random_rule_documents_are_loaded_or_located(doc in document(rule_keys())) {
        check_rule_file(&render(&doc), "random.yaml")?;
    }

    #[test]
    fn random_text_as_a_rule_file_is_loaded_or_located(text in yamlish_text()) {
        check_rule_file(&text, "random.yaml")?;
    }

    #[test]
    fn rule_file_edits_that_change_nothing_change_nothing(
        (file, text) in prop::sample::select(rule_files()),
        noop in noop(),
    ) {
        let edited = apply_noop(&text, &noop);
        prop_assert_eq!(
            rules_without_lines(&text, &file)?,
            rules_without_lines(&edited, &file)?
        );
    }
}

// ---------------------------------------------------------------------------------------
// Expressions

/// The expressions of the shipped rules and the built-in scalability terms.
fn shipped_exprs() -> Vec<String> {
    let mut exprs: Vec<String> = load_builtin(&defaults())
        .unwrap()
        .into_iter()
        .map(|r| r.expr_text)
        .collect();
    exprs.push(r#"sum(lookout_tcp_port_connections{state="established"})"#.into());
    exprs.push("sum(lookout_redis_queue_length)".into());
    exprs
}

/// Pieces of PromQL, valid and not, that random expressions are made of.
fn token() -> impl Strategy<Value = String> {
    let names: Vec<String> = catalogue::ALL.iter().map(|m| m.name.to_string()).collect();
    prop_oneof![
        prop::sample::select(names),
        prop::sample::select(vec![
            "(",
            ")",
            "{",
            "}",
            "[",
            "]",
            ",",
            "=",
            "!=",
            "=~",
            "!~",
            "\"",
            "'",
            "`",
            "*",
            "/",
            "+",
            "-",
            "^",
            "%",
            "==",
            ">",
            "and",
            "or",
            "unless",
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "bool",
            "offset",
            "@",
            "start()",
            "sum",
            "avg",
            "min",
            "max",
            "count",
            "topk",
            "rate",
            "increase",
            "avg_over_time",
            "last_over_time",
            "histogram_quantile",
            "abs",
            "5m",
            "1h",
            "0s",
            "2h",
            "1ms",
            "[5m:1m]",
            "host",
            "device",
            "mode",
            "__name__",
            "NaN",
            "Inf",
            "+Inf",
            "1e308",
            "0x10",
            "#",
            "\\",
        ])
        .prop_map(String::from),
        any::<f64>().prop_map(|f| f.to_string()),
        "\"[^\"\\\\]{0,10}\"",
        "[a-z_]{1,8}",
    ]
}

/// One character-level edit of an expression.
#[derive(Debug, Clone)]
enum CharEdit {
    Delete(Index, usize),
    Duplicate(Index, usize),
    Insert(Index, String),
    Truncate(Index),
}

fn char_edit() -> impl Strategy<Value = CharEdit> {
    prop_oneof![
        (any::<Index>(), 1usize..6).prop_map(|(i, n)| CharEdit::Delete(i, n)),
        (any::<Index>(), 1usize..12).prop_map(|(i, n)| CharEdit::Duplicate(i, n)),
        (any::<Index>(), token()).prop_map(|(i, t)| CharEdit::Insert(i, t)),
        (any::<Index>(), "\\PC").prop_map(|(i, t)| CharEdit::Insert(i, t)),
        any::<Index>().prop_map(CharEdit::Truncate),
    ]
}

fn apply_chars(text: &str, edits: &[CharEdit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let n = chars.len() + 1;
        match edit {
            CharEdit::Delete(i, len) => {
                let at = i.index(n).min(chars.len());
                chars.drain(at..(at + len).min(chars.len()));
            }
            CharEdit::Duplicate(i, len) => {
                let at = i.index(n).min(chars.len());
                let piece: Vec<char> = chars[at..(at + len).min(chars.len())].to_vec();
                chars.splice(at..at, piece);
            }
            CharEdit::Insert(i, s) => {
                let at = i.index(n);
                chars.splice(at..at, s.chars());
            }
            CharEdit::Truncate(i) => chars.truncate(i.index(n)),
        }
    }
    chars.into_iter().collect()
}

/// Parses `text` within the time limit; an error must say something, on one line.
fn check_expr(text: &str) -> Result<(), TestCaseError> {
    if let Err(message) = timed("expr::parse", || expr::parse(text))? {
        prop_assert!(!message.trim().is_empty(), "empty error for {text:?}");
    }
    Ok(())
}

/// A label value as a PromQL double-quoted string.
fn promql_string(value: &str) -> String {
    let mut out = String::from('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A valid expression of the subset, as text: a catalogue metric (not a histogram) with
/// matchers of arbitrary values on its labels, maybe in a range function, maybe
/// aggregated by some of its labels, maybe scaled by numbers.
fn valid_expr() -> impl Strategy<Value = String> {
    let metrics: Vec<&'static Metric> = catalogue::ALL
        .iter()
        .copied()
        .filter(|m| m.kind != Kind::Histogram)
        .collect();
    (
        prop::sample::select(metrics),
        prop::collection::vec((any::<Index>(), 0usize..4, any::<String>()), 0..4),
        (any::<bool>(), any::<Index>(), 1u64..=3_600_000),
        (
            any::<bool>(),
            0usize..5,
            prop::collection::vec(any::<Index>(), 0..3),
        ),
        prop::collection::vec((any::<bool>(), any::<f64>()), 0..3),
    )
        .prop_map(
            |(metric, matchers, (ranged, func, range_ms), (aggregated, op, by), scales)| {
                let mut labels: Vec<&str> = metric.labels.to_vec();
                labels.push("host");
                let matchers: Vec<String> = matchers
                    .iter()
                    .map(|(label, op, value)| {
                        let label = labels[label.index(labels.len())];
                        match op {
                            0 => format!("{label}={}", promql_string(value)),
                            1 => format!("{label}!={}", promql_string(value)),
                            2 => format!("{label}=~{}", promql_string(&regex::escape(value))),
                            _ => format!("{label}!~{}", promql_string(&regex::escape(value))),
                        }
                    })
                    .collect();
                let mut text = format!("{}{{{}}}", metric.name, matchers.join(", "));
                if ranged {
                    let funcs: &[&str] = if metric.kind == Kind::Counter {
                        &[
                            "rate",
                            "increase",
                            "avg_over_time",
                            "min_over_time",
                            "max_over_time",
                            "last_over_time",
                        ]
                    } else {
                        &[
                            "avg_over_time",
                            "min_over_time",
                            "max_over_time",
                            "last_over_time",
                        ]
                    };
                    text = format!("{}({text}[{range_ms}ms])", funcs[func.index(funcs.len())]);
                }
                if aggregated {
                    let ops = ["sum", "avg", "min", "max", "count"];
                    let by: Vec<&str> = by.iter().map(|i| labels[i.index(labels.len())]).collect();
                    text = format!("{} by ({}) ({text})", ops[op % ops.len()], by.join(", "));
                }
                for (mul, by) in scales {
                    let by = if by.is_nan() {
                        "NaN".to_string()
                    } else if by.is_infinite() {
                        if by > 0.0 { "+Inf" } else { "-Inf" }.to_string()
                    } else {
                        format!("{by}")
                    };
                    text = format!("({text}) {} {by}", if mul { "*" } else { "/" });
                }
                text
            },
        )
}

proptest! {
    #![proptest_config(props::config(256))]

    #[test]
    fn random_expressions_parse_or_say_why(
        tokens in prop::collection::vec((token(), prop::sample::select(vec!["", " "])), 0..16),
    ) {
        let text: String = tokens.iter().map(|(t, s)| format!("{t}{s}")).collect();
        check_expr(&text)?;
    }

    #[test]
    fn random_text_as_an_expression_parses_or_says_why(text in "\\PC{0,120}") {
        check_expr(&text)?;
    }

    #[test]
    fn deeply_nested_expressions_parse_or_say_why(
        (open, close) in prop::sample::select(vec![
            ("-", ""), ("(", ")"), ("sum(", ")"), ("", " * 2"), ("(", ") / 2"),
            ("", " or lookout_load1"), ("abs(", ")"), ("{", "}"), ("[", "]"),
        ]),
        depth in 0usize..6000,
    ) {
        check_expr(&format!("{}lookout_load1{}", open.repeat(depth), close.repeat(depth)))?;
    }

    #[test]
    fn mutated_shipped_expressions_parse_or_say_why(
        text in prop::sample::select(shipped_exprs()),
        edits in prop::collection::vec(char_edit(), 1..4),
    ) {
        check_expr(&apply_chars(&text, &edits))?;
    }

    #[test]
    fn valid_expressions_print_back_as_promql_of_the_same_meaning(text in valid_expr()) {
        let parsed = expr::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let printed = parsed.to_promql();
        let again = expr::parse(&printed)
            .map_err(|e| TestCaseError::fail(format!("{text}\nprinted {printed}: {e}")))?;
        prop_assert_eq!(&parsed, &again, "{} printed as {}", text, printed);
        prop_assert_eq!(printed.clone(), again.to_promql());
    }
}

// ---------------------------------------------------------------------------------------
// Rule-test files

/// `(name, text)` of every shipped rule-test file.
fn rule_test_files() -> Vec<(String, String)> {
    let dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/tests"));
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no rule tests in {}", dir.display());
    files
}

/// A scratch copy of `rules/`: the rule files at its top, rule tests go in `tests/`.
fn rules_dir() -> Scratch {
    let scratch = Scratch::new("rule-tests");
    for (name, text) in BUILTIN {
        scratch.write(name, text.as_bytes());
    }
    scratch
}

proptest! {
    // A rule-test file simulates hours of evaluations: tens of milliseconds a case.
    #![proptest_config(props::config(64))]

    #[test]
    fn mutated_rule_tests_run_or_name_the_file(
        (name, text) in prop::sample::select(rule_test_files()),
        edits in edits(keys_of(&rule_test_files().into_iter().map(|(_, t)| t).collect::<Vec<_>>().join("\n"))),
    ) {
        let dir = rules_dir();
        let mutated = apply(&text, &edits);
        let path = dir.write(&format!("tests/{name}"), mutated.as_bytes());
        check_rule_test(&dir, &path)?;
    }

    #[test]
    fn generated_rule_tests_run_or_name_the_file(
        evaluation_interval in duration(),
        interval in duration(),
        values in prop::collection::vec(values_item(), 0..6),
        at in prop::collection::vec(duration(), 0..3),
    ) {
        let dir = rules_dir();
        let mut expect: String = at
            .iter()
            .map(|at| format!("\n      - at: {at}\n        alerts: []"))
            .collect();
        if expect.is_empty() {
            expect = " []".into();
        }
        let text = format!(
            "rule_files: [../host.yaml]\n\
             evaluation_interval: {evaluation_interval}\n\
             tests:\n\
             \x20 - name: generated\n\
             \x20   interval: {interval}\n\
             \x20   input_series:\n\
             \x20     - series: 'lookout_cpu_usage_ratio{{host=\"h\"}}'\n\
             \x20       values: '{}'\n\
             \x20   expect:{expect}\n",
            values.join(" ")
        );
        let path = dir.write("tests/generated.yaml", text.as_bytes());
        check_rule_test(&dir, &path)?;
    }
}

/// A duration as rule tests write them, from a millisecond to years.
fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[0-9]{1,4}(ms|s|m|h)",
        3 => "[0-9]{1,6}(ms|s|m|h|d)",
        1 => "[0-9]{1,3}[a-z]{0,2}",
        1 => "[0-9]{1,2}h[0-9]{1,2}m",
    ]
}

/// One item of promtool's expanding notation, repeat counts up to ten million.
fn values_item() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,3}(\\.[0-9]{1,2})?",
        Just("_".to_string()),
        Just("stale".to_string()),
        "[0-9]{1,2}x[0-9]{1,8}",
        "[0-9]{1,2}[+-][0-9]{1,2}x[0-9]{1,8}",
        "_x[0-9]{1,8}",
        "[0-9a-z+_.-]{1,8}",
    ]
}

/// Runs the rule-test file `path` under `dir` within the time limit; an error names a file
/// of `dir` on every line.
fn check_rule_test(dir: &Scratch, path: &std::path::Path) -> Result<(), TestCaseError> {
    if let Err(message) = timed("run_file", || run_file(path))? {
        prop_assert!(!message.trim().is_empty(), "an empty error");
        let root = dir.path().display().to_string();
        for line in message.lines() {
            prop_assert!(line.starts_with(&root), "does not name a file: {}", line);
        }
    }
    Ok(())
}
