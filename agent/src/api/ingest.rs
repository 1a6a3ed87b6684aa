//! `POST /api/v1/observations`: applications push their request timings.
//!
//! The body is a JSON array of `{"route", "method", "status", "duration_seconds"}`. A batch
//! is taken whole or not at all: any bad observation refuses the batch with every problem
//! listed (up to [`MAX_PROBLEMS`]), so a client never has to guess which part was counted.
//!
//! | answer | when |
//! |---|---|
//! | 200 `{"accepted": n, "overflow": m}` | counted; `m` of them under route `_overflow` |
//! | 400 | not JSON, or cut short |
//! | 401 | `agent.api_token_file` is set and the bearer token is missing or wrong |
//! | 404 | `collect.ingest.enabled: false` |
//! | 413 | body over `collect.ingest.max_body` |
//! | 422 | JSON, but not an array of valid observations (which one, which field, why) |
//!
//! The fast path deserializes straight into borrowed structs; only a batch that fails to
//! deserialize is read a second time, as untyped JSON, to say exactly which field of which
//! observation is wrong.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, authorize};
use crate::collect::ingest::{OVERFLOW_ROUTE, Observation, Rejection, method_label};
use crate::config::units::{format_size, is_http_method};
use crate::state::State;

/// Problems listed in one 422 answer at most (the count of the rest is given).
pub const MAX_PROBLEMS: usize = 10;
/// Longest route accepted, in bytes.
pub const MAX_ROUTE_LEN: usize = 256;
/// Longest method accepted, in bytes.
pub const MAX_METHOD_LEN: usize = 32;

/// One observation as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObservation<'a> {
    #[serde(borrow)]
    route: Cow<'a, str>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    status: i64,
    duration_seconds: f64,
}

/// The handler.
pub async fn observations(
    AxumState(state): AxumState<Arc<State>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ingest = state.ingest();
    let Some(max_body) = ingest.max_body() else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "ingestion is disabled (collect.ingest.enabled: false)",
        )
        .into_response();
    };
    let refuse = |why: Rejection, status: StatusCode, message: String| {
        ingest.reject(why);
        ApiError::new(status, message).into_response()
    };
    if let Err(denied) = authorize(&state, &headers) {
        if denied.status == StatusCode::UNAUTHORIZED {
            ingest.reject(Rejection::Unauthorized);
        }
        return denied.into_response();
    }
    let too_large = |size: String| {
        format!(
            "body of {size} is over collect.ingest.max_body ({}); send smaller batches",
            format_size(max_body)
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > max_body) {
        return refuse(
            Rejection::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            too_large(format!("{len} bytes")),
        );
    }
    let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return refuse(
                Rejection::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                too_large("more bytes".into()),
            );
        }
        Err(e) => {
            return refuse(
                Rejection::Malformed,
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            );
        }
    };
    match parse(&bytes) {
        Ok(batch) => {
            let overflow = ingest.record(&batch, Instant::now());
            axum::Json(json!({ "accepted": batch.len(), "overflow": overflow })).into_response()
        }
        Err(BatchError::Malformed(message)) => {
            refuse(Rejection::Malformed, StatusCode::BAD_REQUEST, message)
        }
        Err(BatchError::Invalid(problems)) => {
            ingest.reject(Rejection::Invalid);
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({ "error": summary(&problems), "problems": problems })),
            )
                .into_response()
        }
    }
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Not JSON (400): the parser's message with line and column.
    Malformed(String),
    /// JSON, but wrong (422): one line per problem, `[index].field: why`.
    Invalid(Vec<String>),
}

fn summary(problems: &[String]) -> String {
    let first = problems.first().map(String::as_str).unwrap_or("invalid");
    match problems.len() {
        0 | 1 => format!("invalid observation {first}"),
        n => format!("{n} problems in the batch, first: {first}"),
    }
}

/// Parses and validates a body: every observation, or every problem found.
pub fn parse(body: &[u8]) -> Result<Vec<Observation<'_>>, BatchError> {
    let raw: Vec<RawObservation<'_>> = match serde_json::from_slice(body) {
        Ok(raw) => raw,
        Err(e) if e.is_data() => return Err(describe_shape(body, &e)),
        Err(e) => return Err(malformed(&e)),
    };
    let mut batch = Vec::with_capacity(raw.len());
    let mut problems = Problems::default();
    for (i, r) in raw.into_iter().enumerate() {
        if let Some(obs) = check(i, r, &mut problems) {
            batch.push(obs);
        }
    }
    if problems.list.is_empty() {
        Ok(batch)
    } else {
        Err(BatchError::Invalid(problems.finish()))
    }
}

fn malformed(e: &serde_json::Error) -> BatchError {
    BatchError::Malformed(format!(
        "malformed JSON: {e}; expected an array of {{\"route\", \"method\", \"status\", \"duration_seconds\"}}"
    ))
}

/// Problems found so far, the first [`MAX_PROBLEMS`] kept.
#[derive(Debug, Default)]
struct Problems {
    list: Vec<String>,
    more: usize,
}

impl Problems {
    fn add(&mut self, index: Option<usize>, field: &str, why: impl std::fmt::Display) {
        if self.list.len() >= MAX_PROBLEMS {
            self.more += 1;
            return;
        }
        self.list.push(match index {
            Some(i) if field.is_empty() => format!("[{i}]: {why}"),
            Some(i) => format!("[{i}].{field}: {why}"),
            None => why.to_string(),
        });
    }

    fn finish(mut self) -> Vec<String> {
        if self.more > 0 {
            self.list.push(format!("... and {} more", self.more));
        }
        self.list
    }
}

/// Checks the values of observation `i`; `None` (with problems added) when one is bad.
fn check<'a>(
    i: usize,
    raw: RawObservation<'a>,
    problems: &mut Problems,
) -> Option<Observation<'a>> {
    let before = problems.list.len() + problems.more;
    let route: &str = &raw.route;
    if route.trim().is_empty() {
        problems.add(Some(i), "route", "must not be empty");
    } else if route.len() > MAX_ROUTE_LEN {
        problems.add(
            Some(i),
            "route",
            format!(
                "is {} bytes long, over {MAX_ROUTE_LEN}: send the route template (/users/{{id}}), not the path",
                route.len()
            ),
        );
    } else if route.chars().any(char::is_control) {
        problems.add(Some(i), "route", "must not contain control characters");
    } else if route == OVERFLOW_ROUTE {
        problems.add(
            Some(i),
            "route",
            format!("{OVERFLOW_ROUTE:?} is reserved for routes over collect.ingest.max_routes"),
        );
    }
    let method: &str = &raw.method;
    if method.len() > MAX_METHOD_LEN || !is_http_method(method) {
        problems.add(
            Some(i),
            "method",
            format!("{method:?} is not an HTTP method (a token of 1 to {MAX_METHOD_LEN} letters, e.g. GET)"),
        );
    }
    let status = u16::try_from(raw.status)
        .ok()
        .filter(|s| (100..=599).contains(s));
    if status.is_none() {
        problems.add(
            Some(i),
            "status",
            format!("{} is not an HTTP status (100 to 599)", raw.status),
        );
    }
    let duration = raw.duration_seconds;
    if !(duration.is_finite() && duration >= 0.0) {
        problems.add(
            Some(i),
            "duration_seconds",
            format!("{duration} is not a duration: must be a number of seconds >= 0"),
        );
    }
    if problems.list.len() + problems.more > before {
        return None;
    }
    Some(Observation {
        method: method_label(method),
        route: raw.route,
        status: status?,
        duration,
    })
}

/// Whether a JSON value is of the kind a field expects.
type IsKind = fn(&Value) -> bool;

/// The fields of an observation, as [`RawObservation`] reads them: name, what is expected,
/// and whether a JSON value is that.
const FIELDS: [(&str, &str, IsKind); 4] = [
    ("route", "a string", Value::is_string),
    ("method", "a string", Value::is_string),
    ("status", "an integer", |v| v.is_i64() || v.is_u64()),
    ("duration_seconds", "a number", Value::is_number),
];

/// Says what is wrong with a body that is JSON but did not deserialize (`typed` is that
/// error): not an array, or which fields of which observations are missing, unknown or of
/// the wrong type. A body that is not JSON at all (the typed parse may stop at a type error
/// before the syntax error) is malformed.
fn describe_shape(body: &[u8], typed: &serde_json::Error) -> BatchError {
    let mut problems = Problems::default();
    let items = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(other) => {
            problems.add(
                None,
                "",
                format!(
                    "expected a JSON array of observations, got {}",
                    kind(&other)
                ),
            );
            return BatchError::Invalid(problems.finish());
        }
        Err(e) => return malformed(&e),
    };
    for (i, item) in items.iter().enumerate() {
        let Value::Object(fields) = item else {
            problems.add(
                Some(i),
                "",
                format!("expected an object, got {}", kind(item)),
            );
            continue;
        };
        for (field, want, ok) in FIELDS {
            match fields.get(field) {
                None => problems.add(Some(i), field, "missing"),
                // An integer, but past what `status` reads.
                Some(Value::Number(n)) if field == "status" && n.is_u64() && !n.is_i64() => {
                    problems.add(
                        Some(i),
                        field,
                        format!("{n} is not an HTTP status (100 to 599)"),
                    );
                }
                Some(v) if !ok(v) => {
                    problems.add(Some(i), field, format!("expected {want}, got {}", kind(v)));
                }
                Some(_) => {}
            }
        }
        for field in fields.keys() {
            if !FIELDS.iter().any(|(name, _, _)| name == field) {
                problems.add(
                    Some(i),
                    field,
                    "unknown field (expected route, method, status, duration_seconds)",
                );
            }
        }
    }
    if problems.list.is_empty() {
        // What a JSON value cannot show (a field given twice): the typed parser's own
        // message, which ends with the line and column.
        problems.add(None, "", typed);
    }
    BatchError::Invalid(problems.finish())
}

/// How a JSON value is named in messages, with the value when it is short.
fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.len() <= 40 => format!("string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(body: &str) -> Vec<String> {
        match parse(body.as_bytes()) {
            Err(BatchError::Invalid(problems)) => problems,
            other => panic!("expected 422 problems for {body}, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_batch_parses_with_escapes_and_normalised_methods() {
        let body = r#"[{"route":"/users/{id}","method":"get","status":200,"duration_seconds":0.25},
                       {"route":"/a\"b","method":"PROPFIND","status":599,"duration_seconds":0}]"#;
        let batch = parse(body.as_bytes()).unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(
            (
                &*batch[0].route,
                batch[0].method,
                batch[0].status,
                batch[0].duration
            ),
            ("/users/{id}", "GET", 200, 0.25)
        );
        assert_eq!((&*batch[1].route, batch[1].method), ("/a\"b", "OTHER"));
        assert!(parse(b"[]").unwrap().is_empty());
    }

    #[test]
    fn malformed_json_is_a_400_with_its_position() {
        for body in ["", "[{", "{\"route\": }", "not json"] {
            match parse(body.as_bytes()) {
                Err(BatchError::Malformed(m)) => {
                    assert!(m.contains("malformed JSON") && m.contains("line"), "{m}");
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn each_bad_field_is_named_with_its_index() {
        let p = invalid(
            r#"[{"route":"/","method":"GET","status":200,"duration_seconds":0.1},
                {"route":"/","method":"GET","status":200,"duration_seconds":-1}]"#,
        );
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("[1].duration_seconds: -1 is not a duration"),
            "{p:?}"
        );

        let p = invalid(r#"[{"route":"","method":"GE T","status":700,"duration_seconds":1}]"#);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("[0].route: must not be empty"));
        assert!(p[1].starts_with("[0].method: \"GE T\" is not an HTTP method"));
        assert!(p[2].starts_with("[0].status: 700 is not an HTTP status"));

        let p =
            invalid(r#"[{"route":"_overflow","method":"GET","status":200,"duration_seconds":1}]"#);
        assert!(p[0].contains("reserved"), "{p:?}");
        let long = "x".repeat(MAX_ROUTE_LEN + 1);
        let p = invalid(&format!(
            r#"[{{"route":"{long}","method":"GET","status":200,"duration_seconds":1}}]"#
        ));
        assert!(p[0].contains("route template"), "{p:?}");
    }

    #[test]
    fn wrong_shapes_and_types_are_explained() {
        let p = invalid(r#"{"route":"/","method":"GET","status":200,"duration_seconds":1}"#);
        assert_eq!(p, ["expected a JSON array of observations, got an object"]);
        let p = invalid(
            r#"[{"route":"/","method":"GET","status":"200","duration_seconds":1},
                {"route":"/","status":200,"duration_seconds":"fast","at":3},
                42]"#,
        );
        assert_eq!(
            p,
            [
                "[0].status: expected an integer, got string \"200\"",
                "[1].method: missing",
                "[1].duration_seconds: expected a number, got string \"fast\"",
                "[1].at: unknown field (expected route, method, status, duration_seconds)",
                "[2]: expected an object, got number 42",
            ]
        );
    }

    /// Found by the property tests: a field given twice, or a status past `i64`, was
    /// refused with "the batch does not match the observation format", saying neither
    /// which observation nor where.
    #[test]
    fn a_repeated_field_or_a_huge_status_says_where() {
        let p = invalid(
            r#"[{"route":"/","method":"GET","status":200,"duration_seconds":1},
                {"route":"/","method":"GET","method":"PUT","status":200,"duration_seconds":1}]"#,
        );
        assert_eq!(p, ["duplicate field `method` at line 2 column 52"]);
        let p = invalid(
            r#"[{"route":"/","method":"GET","status":18446744073709551615,"duration_seconds":1}]"#,
        );
        assert_eq!(
            p,
            ["[0].status: 18446744073709551615 is not an HTTP status (100 to 599)"]
        );
    }

    #[test]
    fn problems_are_capped() {
        let one = r#"{"route":"/","method":"GET","status":200,"duration_seconds":-1}"#;
        let body = format!("[{}]", vec![one; 25].join(","));
        let p = invalid(&body);
        assert_eq!(p.len(), MAX_PROBLEMS + 1);
        assert_eq!(p.last().unwrap(), "... and 15 more");
    }
}
