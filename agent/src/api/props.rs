//! Property tests of what the API reads and writes: ingestion bodies (`ingest::parse`) on
//! random bytes, on generated batches and on mutated ones; and the exposition
//! (`exposition::render`) of samples with arbitrary label values, which must parse back to
//! the same series and values (`tests/tests/properties.rs` has promtool check it too).

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

use super::exposition::render;
use super::ingest::{BatchError, MAX_PROBLEMS, parse};
use crate::catalogue::{self, Kind, Metric};
use crate::collect::ingest::method_label;
use crate::props::{self, timed};
use crate::sample::Sample;
use crate::store::Store;

// ---------------------------------------------------------------------------------------
// Ingestion bodies

/// A string biased towards what breaks JSON and routes: quotes, backslashes, control
/// characters, braces, long runs.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "/[a-z{}/_]{0,20}",
        any::<String>(),
        prop::collection::vec(any::<char>(), 0..20).prop_map(|c| c.into_iter().collect()),
        "[\"\\\\\n\t\u{0}{}\\[\\],: ]{0,10}",
        (250usize..300).prop_map(|n| "r".repeat(n)),
        Just("_overflow".to_string()),
    ]
}

/// A JSON value of any kind, small.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One observation as JSON text: usually the four fields with values of the right type
/// (valid or not), sometimes a field left out, repeated, added or of another type.
fn observation() -> impl Strategy<Value = String> {
    let field = |name: &'static str, value: BoxedStrategy<Value>| {
        prop_oneof![
            8 => value.prop_map(move |v| vec![(name.to_string(), v)]),
            1 => Just(Vec::new()),
            1 => json_value().prop_map(move |v| vec![(name.to_string(), v)]),
            1 => (json_value(), json_value())
                .prop_map(move |(a, b)| vec![(name.to_string(), a), (name.to_string(), b)]),
        ]
    };
    let method = prop_oneof![
        prop::sample::select(vec!["GET", "post", "PROPFIND", "", "GE T", "x-y_z"])
            .prop_map(String::from),
        text(),
    ];
    let status = prop_oneof![
        (100i64..600).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
    ];
    let duration = prop_oneof![
        (0.0f64..100.0).prop_map(|f| json!(f)),
        any::<f64>().prop_map(|f| json!(f)),
    ];
    (
        field("route", text().prop_map(Value::String).boxed()),
        field("method", method.prop_map(Value::String).boxed()),
        field("status", status.boxed()),
        field("duration_seconds", duration.boxed()),
        prop::collection::vec((text(), json_value()), 0..2),
    )
        .prop_map(|(route, method, status, duration, extra)| {
            let fields: Vec<String> = [route, method, status, duration, extra]
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{}:{v}", Value::String(k)))
                .collect();
            format!("{{{}}}", fields.join(","))
        })
}

/// A batch as JSON text: an array of observations, now and then another value among them.
fn batch() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![9 => observation(), 1 => json_value().prop_map(|v| v.to_string())],
        0..14,
    )
    .prop_map(|items| format!("[{}]", items.join(",")))
}

/// One byte-level edit of a body.
#[derive(Debug, Clone)]
enum ByteEdit {
    Delete(Index, usize),
    Duplicate(Index, usize),
    Insert(Index, String),
    Truncate(Index),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    let token = prop::sample::select(vec![
        ",",
        "[",
        "]",
        "{",
        "}",
        ":",
        "\"",
        "\\",
        "null",
        "true",
        "-",
        "1e999",
        "-0",
        "18446744073709551616",
        "9223372036854775808",
        "\"route\":",
        "\"status\":\"1\"",
        "\u{feff}",
        "\u{0}",
        " ",
        "\n",
    ]);
    prop_oneof![
        (any::<Index>(), 1usize..8).prop_map(|(i, n)| ByteEdit::Delete(i, n)),
        (any::<Index>(), 1usize..40).prop_map(|(i, n)| ByteEdit::Duplicate(i, n)),
        (any::<Index>(), token.prop_map(String::from)).prop_map(|(i, t)| ByteEdit::Insert(i, t)),
        any::<Index>().prop_map(ByteEdit::Truncate),
    ]
}

fn apply_bytes(body: &str, edits: &[ByteEdit]) -> Vec<u8> {
    let mut bytes = body.as_bytes().to_vec();
    for edit in edits {
        let n = bytes.len() + 1;
        match edit {
            ByteEdit::Delete(i, len) => {
                let at = i.index(n).min(bytes.len());
                bytes.drain(at..(at + len).min(bytes.len()));
            }
            ByteEdit::Duplicate(i, len) => {
                let at = i.index(n).min(bytes.len());
                let piece = bytes[at..(at + len).min(bytes.len())].to_vec();
                bytes.splice(at..at, piece);
            }
            ByteEdit::Insert(i, token) => {
                let at = i.index(n);
                bytes.splice(at..at, token.bytes());
            }
            ByteEdit::Truncate(i) => bytes.truncate(i.index(n)),
        }
    }
    bytes
}

/// Parses `body` within the time limit. A refusal says where: a malformed body its line
/// and column; an invalid one, for each problem, the observation (`[i]` or `[i].field`),
/// or it is about the whole body.
fn check_body(body: &[u8]) -> Result<(), TestCaseError> {
    let err = match timed("ingest::parse", || parse(body))? {
        Ok(batch) => {
            for obs in &batch {
                prop_assert!((100..=599).contains(&obs.status));
                prop_assert!(obs.duration.is_finite() && obs.duration >= 0.0);
                prop_assert!(!obs.route.trim().is_empty());
            }
            return Ok(());
        }
        Err(err) => err,
    };
    match &err {
        BatchError::Malformed(message) => {
            prop_assert!(
                message.starts_with("malformed JSON: ")
                    && message.contains(" line ")
                    && message.contains(" column "),
                "{message}"
            );
        }
        BatchError::Invalid(problems) => {
            prop_assert!(!problems.is_empty());
            prop_assert!(problems.len() <= MAX_PROBLEMS + 1, "{problems:?}");
            for p in problems {
                let observation = p.starts_with('[')
                    && p.find(']').is_some_and(|end| {
                        p[1..end].parse::<usize>().is_ok()
                            && (p[end + 1..].starts_with(": ") || p[end + 1..].starts_with('.'))
                    });
                let whole = p.starts_with("expected a JSON array of observations, got ")
                    || (p.starts_with("... and ") && p.ends_with(" more"))
                    || ends_with_position(p);
                prop_assert!(
                    observation || whole,
                    "does not say where: {p:?} in {problems:?}"
                );
            }
        }
    }
    Ok(())
}

/// Whether `message` ends with serde_json's ` at line L column C`.
fn ends_with_position(message: &str) -> bool {
    let Some((head, column)) = message.rsplit_once(" column ") else {
        return false;
    };
    let Some((_, line)) = head.rsplit_once(" at line ") else {
        return false;
    };
    line.parse::<u64>().is_ok() && column.parse::<u64>().is_ok()
}

proptest! {
    #![proptest_config(props::config(256))]

    #[test]
    fn random_bytes_are_refused_saying_where(body in prop::collection::vec(any::<u8>(), 0..300)) {
        check_body(&body)?;
    }

    #[test]
    fn generated_batches_are_counted_or_refused_saying_where(body in batch()) {
        check_body(body.as_bytes())?;
    }

    #[test]
    fn mutated_batches_are_counted_or_refused_saying_where(
        body in batch(),
        edits in prop::collection::vec(byte_edit(), 1..4),
    ) {
        check_body(&apply_bytes(&body, &edits))?;
    }

    #[test]
    fn valid_batches_are_counted_as_sent(
        batch in prop::collection::vec(
            (
                "/[a-z{}/_.-]{1,40}",
                prop::sample::select(vec!["GET", "get", "PoSt", "DELETE", "PROPFIND", "BREW"]),
                100u16..600,
                0.0f64..1e6,
            ),
            0..20,
        ),
    ) {
        let body = Value::Array(
            batch
                .iter()
                .map(|(r, m, s, d)| json!({"route": r, "method": m, "status": s, "duration_seconds": d}))
                .collect(),
        )
        .to_string();
        let parsed = parse(body.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(parsed.len(), batch.len());
        for (obs, (route, method, status, duration)) in parsed.iter().zip(&batch) {
            prop_assert_eq!(&*obs.route, route.as_str());
            prop_assert_eq!(obs.method, method_label(method));
            prop_assert_eq!(obs.status, *status);
            // serde_json reads numbers fast rather than exactly (no `float_roundtrip`):
            // the last of 17 digits may differ.
            prop_assert!((obs.duration - duration).abs() <= duration * 1e-15, "{} != {}", obs.duration, duration);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The exposition

/// A label value of any characters, often those the format escapes.
fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<char>(), 0..24).prop_map(|c| c.into_iter().collect()),
        "[\\\\\"\n{}=, a#\r\t]{0,16}",
    ]
}

/// One sample line of the text format, parsed strictly: the only escapes in label values
/// are `\\`, `\"` and `\n`, and nothing may follow the value.
type Line = (String, Vec<(String, String)>, f64);

fn parse_line(line: &str) -> Result<Line, String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .ok_or("no labels or value")?;
    let (name, rest) = line.split_at(name_end);
    let mut chars = rest.chars();
    let mut labels = Vec::new();
    if rest.starts_with('{') {
        chars.next();
        loop {
            let mut label = String::new();
            for c in chars.by_ref() {
                if c == '=' {
                    break;
                }
                if !(c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("bad label name character {c:?}"));
                }
                label.push(c);
            }
            if chars.next() != Some('"') {
                return Err(format!("label {label} has no opening quote"));
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")? {
                    '\\' => match chars.next() {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("invalid escape {other:?}")),
                    },
                    '"' => break,
                    '\n' => return Err("raw line break in a label value".into()),
                    c => value.push(c),
                }
            }
            labels.push((label, value));
            match chars.next() {
                Some(',') => {}
                Some('}') => break,
                other => return Err(format!("{other:?} after a label value")),
            }
        }
    }
    let value = chars
        .as_str()
        .strip_prefix(' ')
        .ok_or("no space before the value")?;
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok((name.to_string(), labels, value))
}

/// The catalogue metrics with labels, histograms aside (they are rendered in parts).
fn labelled_metrics() -> Vec<&'static Metric> {
    catalogue::ALL
        .iter()
        .copied()
        .filter(|m| !m.labels.is_empty() && m.kind != Kind::Histogram)
        .collect()
}

proptest! {
    #![proptest_config(props::config(128))]

    #[test]
    fn exposition_of_any_label_values_parses_back_the_same(
        host in label_value(),
        samples in prop::collection::vec(
            (prop::sample::select(labelled_metrics()), prop::collection::vec(label_value(), 4), any::<f64>()),
            1..12,
        ),
    ) {
        // One sample per series: the store keeps one value per metric and label set.
        let mut expected: BTreeMap<(String, Vec<(String, String)>), f64> = BTreeMap::new();
        let mut store_samples = Vec::new();
        for (metric, values, value) in samples {
            let labels: Vec<(&'static str, String)> =
                metric.labels.iter().copied().zip(values).collect();
            let mut all = vec![("host".to_string(), host.clone())];
            all.extend(labels.iter().map(|(k, v)| (k.to_string(), v.clone())));
            let key = (metric.name.to_string(), all);
            if expected.contains_key(&key) {
                continue;
            }
            expected.insert(key, value);
            store_samples.push(Sample::from_labels(metric, labels, value));
        }
        let mut store = Store::default();
        store.apply("props", store_samples, 1);
        let text = timed("render", || render(&store, &host))?;
        prop_assert!(text.ends_with('\n'));
        let mut got: BTreeMap<(String, Vec<(String, String)>), f64> = BTreeMap::new();
        for line in text.split('\n').filter(|l| !l.is_empty()) {
            if let Some(comment) = line.strip_prefix("# ") {
                prop_assert!(comment.starts_with("HELP ") || comment.starts_with("TYPE "), "{line:?}");
                continue;
            }
            let (name, labels, value) = parse_line(line)
                .map_err(|e| TestCaseError::fail(format!("{e} in {line:?}\n{text}")))?;
            prop_assert!(got.insert((name, labels), value).is_none(), "twice: {line:?}");
        }
        prop_assert_eq!(got.len(), expected.len(), "{}", text);
        for (key, want) in &expected {
            let have = got.get(key).copied();
            prop_assert!(
                have.is_some_and(|h| h == *want || (h.is_nan() && want.is_nan())),
                "{key:?}: want {want}, have {have:?}\n{text}"
            );
        }
    }
}
