//! The query API in the shape of Prometheus's HTTP API, so that Grafana's Prometheus data
//! source and other tools read the agent's history directly: `/api/v1/query`,
//! `/api/v1/query_range`, `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`,
//! `/api/v1/metadata` and `/api/v1/status/buildinfo`, by GET (parameters in the URL) or POST
//! (a form body, as Grafana sends them).
//!
//! Answers are `{"status":"success","data":...}`; a bad request is a 400 with
//! `{"status":"error","errorType":"bad_data","error":"..."}`. Every query is bounded before it
//! runs (its text, its steps, its time span, the points it may read and give), and at most
//! [`CONCURRENT`] run at once, so no request can make the agent grow or stall.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State as AxumState};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::catalogue::{self, Kind};
use crate::clock::parse_rfc3339;
use crate::config::units::parse_duration;
use crate::query::ast::Node;
use crate::query::live::selects;
use crate::query::recorded::{self, Answer};
use crate::query::value::series_label;
use crate::query::{self, parse};
use crate::sample::LabelSet;
use crate::state::State;
use crate::store::{Millis, SeriesKey, Store};

/// Largest form body a POST may carry.
const MAX_BODY: usize = 64 * 1024;
/// Most queries evaluated at once; others wait their turn.
pub const CONCURRENT: usize = 2;
/// Latest time accepted: the year 3000.
const MAX_TIME_MS: Millis = 32_503_680_000_000;

/// A refused request: 400 with Prometheus's error shape.
#[derive(Debug)]
struct BadData(String);

impl IntoResponse for BadData {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "status": "error",
            "errorType": "bad_data",
            "error": self.0,
        });
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    }
}

/// The request's parameters: the URL's, then (POST) the form body's.
async fn params(request: Request) -> Result<Vec<(String, String)>, BadData> {
    let (parts, body) = request.into_parts();
    let mut out: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    if parts.method == Method::POST {
        let bytes = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| BadData(format!("request body larger than {MAX_BODY} bytes")))?;
        out.extend(form_urlencoded::parse(&bytes).into_owned());
    }
    Ok(out)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A time as Prometheus takes it: Unix seconds (fractions allowed) or RFC 3339.
fn parse_time(name: &str, text: &str) -> Result<Millis, BadData> {
    let bad = || {
        BadData(format!(
            "invalid parameter \"{name}\": cannot parse \"{text}\" to a valid timestamp"
        ))
    };
    let ms = match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() => (secs * 1000.0).round(),
        Ok(_) => return Err(bad()),
        Err(_) => parse_rfc3339(text).ok_or_else(bad)? as f64,
    };
    if !(0.0..=MAX_TIME_MS as f64).contains(&ms) {
        return Err(BadData(format!(
            "invalid parameter \"{name}\": {text} is out of range (1970 to 3000)"
        )));
    }
    Ok(ms as Millis)
}

/// A step or duration: seconds (fractions allowed) or a duration such as `15s` or `1m30s`.
fn parse_step(text: &str) -> Result<Millis, BadData> {
    let ms = match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() => (secs * 1000.0).round(),
        Ok(_) => f64::NAN,
        Err(_) => parse_duration(text).map_or(f64::NAN, |d| d.as_millis() as f64),
    };
    if ms.is_nan() {
        return Err(BadData(format!(
            "invalid parameter \"step\": cannot parse \"{text}\" to a valid duration"
        )));
    }
    if ms <= 0.0 {
        return Err(BadData(
            "zero or negative query resolution step widths are not accepted; try a positive number"
                .into(),
        ));
    }
    Ok(ms.min(recorded::MAX_SPAN_MS as f64) as Millis)
}

fn required<'a>(params: &'a [(String, String)], name: &str) -> Result<&'a str, BadData> {
    param(params, name).ok_or_else(|| BadData(format!("missing parameter \"{name}\"")))
}

fn parse_query(text: &str) -> Result<query::Expr, BadData> {
    parse(text).map_err(|e| BadData(format!("invalid parameter \"query\": {e}")))
}

/// Runs `work` on a blocking thread, at most [`CONCURRENT`] at once.
async fn bounded<T: Send + 'static>(
    state: &Arc<State>,
    work: impl FnOnce(&Store, &str) -> T + Send + 'static,
) -> Result<T, Response> {
    static PERMITS: Semaphore = Semaphore::const_new(CONCURRENT);
    let _permit = PERMITS
        .acquire()
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE.into_response())?;
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let host = state.hostname();
        let store = state.store();
        work(&store, &host)
    })
    .await
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn success(data: &str) -> Response {
    let mut body = String::with_capacity(data.len() + 32);
    body.push_str(r#"{"status":"success","data":"#);
    body.push_str(data);
    body.push('}');
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

/// `GET|POST /api/v1/query`.
pub async fn instant(AxumState(state): AxumState<Arc<State>>, request: Request) -> Response {
    let params = match params(request).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let prepared = (|| {
        let expr = parse_query(required(&params, "query")?)?;
        let t = match param(&params, "time") {
            Some(t) => parse_time("time", t)?,
            None => crate::clock::now_millis(),
        };
        Ok::<_, BadData>((expr, t))
    })();
    let (expr, t) = match prepared {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let answer = bounded(&state, move |store, host| {
        recorded::instant(store, host, &expr, t)
    })
    .await;
    match answer {
        Ok(Ok(answer)) => success(&render(&answer, t)),
        Ok(Err(why)) => BadData(why).into_response(),
        Err(response) => response,
    }
}

/// `GET|POST /api/v1/query_range`.
pub async fn range(AxumState(state): AxumState<Arc<State>>, request: Request) -> Response {
    let params = match params(request).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let prepared = (|| {
        let expr = parse_query(required(&params, "query")?)?;
        let start = parse_time("start", required(&params, "start")?)?;
        let end = parse_time("end", required(&params, "end")?)?;
        let step = parse_step(required(&params, "step")?)?;
        recorded::check_range(start, end, step).map_err(BadData)?;
        Ok::<_, BadData>((expr, start, end, step))
    })();
    let (expr, start, end, step) = match prepared {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let answer = bounded(&state, move |store, host| {
        recorded::range(store, host, &expr, start, end, step)
    })
    .await;
    match answer {
        Ok(Ok(answer)) => success(&render(&answer, end)),
        Ok(Err(why)) => BadData(why).into_response(),
        Err(response) => response,
    }
}

/// JSON of `s`, quoted and escaped.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

fn push_labels(out: &mut String, labels: &LabelSet) {
    out.push('{');
    push_list(out, labels, |out, (k, v)| {
        out.push_str(&quoted(k));
        out.push(':');
        out.push_str(&quoted(v));
    });
    out.push('}');
}

/// `[<unix seconds>,"<value>"]` as Prometheus writes a point.
fn push_point(out: &mut String, t: Millis, v: f64) {
    out.push('[');
    if t % 1000 == 0 {
        let _ = write!(out, "{}", t / 1000);
    } else {
        let _ = write!(out, "{}", t as f64 / 1000.0);
    }
    out.push_str(",\"");
    out.push_str(&query::ast::display_number(v));
    out.push_str("\"]");
}

/// `items` written by `push`, separated by commas.
fn push_list<T>(
    out: &mut String,
    items: impl IntoIterator<Item = T>,
    mut push: impl FnMut(&mut String, T),
) {
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push(out, item);
    }
}

/// `{"metric":{...},"<field>":...}`, the value written by `value`.
fn push_series(out: &mut String, labels: &LabelSet, field: &str, value: impl FnOnce(&mut String)) {
    out.push_str(r#"{"metric":"#);
    push_labels(out, labels);
    let _ = write!(out, r#","{field}":"#);
    value(out);
    out.push('}');
}

/// The `data` of an answer.
fn render(answer: &Answer, t: Millis) -> String {
    let mut out = String::new();
    match answer {
        Answer::Scalar(v) => {
            out.push_str(r#"{"resultType":"scalar","result":"#);
            push_point(&mut out, t, *v);
            out.push('}');
        }
        Answer::Vector(elems) => {
            out.push_str(r#"{"resultType":"vector","result":["#);
            push_list(&mut out, elems, |out, (labels, v)| {
                push_series(out, labels, "value", |out| push_point(out, t, *v));
            });
            out.push_str("]}");
        }
        Answer::Matrix(series) => {
            out.push_str(r#"{"resultType":"matrix","result":["#);
            push_list(&mut out, series, |out, (labels, points)| {
                push_series(out, labels, "values", |out| {
                    out.push('[');
                    push_list(out, points, |out, (t, v)| push_point(out, *t, *v));
                    out.push(']');
                });
            });
            out.push_str("]}");
        }
    }
    out
}

/// The selectors of the `match[]` parameters (none given: `None`).
fn matchers(params: &[(String, String)]) -> Result<Option<Vec<query::Expr>>, BadData> {
    let given: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| v.as_str())
        .collect();
    if given.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(given.len());
    for text in given {
        let expr =
            parse(text).map_err(|e| BadData(format!("invalid parameter \"match[]\": {e}")))?;
        if !matches!(expr.root, Node::Vector(_)) {
            return Err(BadData(format!(
                "invalid parameter \"match[]\": \"{text}\" is not a series selector"
            )));
        }
        out.push(expr);
    }
    Ok(Some(out))
}

/// The optional `start`/`end` of a listing: every time when absent.
fn span(params: &[(String, String)]) -> Result<(Millis, Millis), BadData> {
    let start = param(params, "start")
        .map(|t| parse_time("start", t))
        .transpose()?;
    let end = param(params, "end")
        .map(|t| parse_time("end", t))
        .transpose()?;
    Ok((start.unwrap_or(Millis::MIN), end.unwrap_or(Millis::MAX)))
}

/// Calls `f` with every series that `selectors` (all series when `None`) select and that
/// has data between `start` and `end`.
fn listed<'s>(
    store: &'s Store,
    host: &'s str,
    selectors: Option<&[query::Expr]>,
    (start, end): (Millis, Millis),
    mut f: impl FnMut(&'s SeriesKey),
) {
    let in_span = |series: &crate::store::Series| {
        let latest = if series.present {
            Some(series.latest.0)
        } else {
            series.history.last().map(|p| p.0)
        };
        let oldest = series.history.oldest().or(latest);
        matches!((oldest, latest), (Some(o), Some(l)) if o <= end && l >= start)
    };
    for (key, series) in store.all() {
        let wanted = match selectors {
            None => true,
            Some(sels) => sels.iter().any(|e| match &e.root {
                Node::Vector(sel) => selects(sel, key, Some(host)),
                _ => false,
            }),
        };
        if wanted && in_span(series) {
            f(key);
        }
    }
}

/// The `match[]` selectors (`required`: at least one) and the span of a listing request.
async fn listing(request: Request, required: bool) -> Result<Listing, BadData> {
    let params = params(request).await?;
    let selectors = matchers(&params)?;
    if required && selectors.is_none() {
        return Err(BadData("no match[] parameter provided".into()));
    }
    Ok((selectors, span(&params)?))
}

/// What a listing selects: `match[]` selectors (`None`: every series) and a time span.
type Listing = (Option<Vec<query::Expr>>, (Millis, Millis));

/// Answers a listing: `add` puts what each listed series contributes into a sorted set,
/// `render` writes the set as the answer's data.
async fn answer_listing<T: Ord + Send + 'static>(
    state: &Arc<State>,
    listing: Result<Listing, BadData>,
    add: impl Fn(&SeriesKey, &str, &mut BTreeSet<T>) + Send + 'static,
    render: fn(&BTreeSet<T>) -> String,
) -> Response {
    let (selectors, span) = match listing {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let data = bounded(state, move |store, host| {
        let mut set = BTreeSet::new();
        listed(store, host, selectors.as_deref(), span, |key| {
            add(key, host, &mut set)
        });
        render(&set)
    })
    .await;
    match data {
        Ok(data) => success(&data),
        Err(response) => response,
    }
}

/// `GET|POST /api/v1/series`.
pub async fn series(AxumState(state): AxumState<Arc<State>>, request: Request) -> Response {
    let add = |key: &SeriesKey, host: &str, sets: &mut BTreeSet<LabelSet>| {
        sets.insert(labels_of(key, host));
    };
    let render = |sets: &BTreeSet<LabelSet>| {
        let mut out = String::from("[");
        push_list(&mut out, sets, push_labels);
        out.push(']');
        out
    };
    answer_listing(&state, listing(request, true).await, add, render).await
}

/// Every label of a stored series as exported, the name included.
fn labels_of(key: &SeriesKey, host: &str) -> LabelSet {
    crate::query::value::ElemLabels::Series { key, name: true }.to_set(Some(host))
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(AxumState(state): AxumState<Arc<State>>, request: Request) -> Response {
    let add = |key: &SeriesKey, host: &str, names: &mut BTreeSet<String>| {
        names.extend(labels_of(key, host).into_keys());
    };
    answer_listing(&state, listing(request, false).await, add, string_list).await
}

/// `GET /api/v1/label/<name>/values`.
pub async fn label_values(
    AxumState(state): AxumState<Arc<State>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let add = move |key: &SeriesKey, host: &str, values: &mut BTreeSet<String>| {
        let v = series_label(key, Some(host), &name);
        if !v.is_empty() {
            values.insert(v.into_owned());
        }
    };
    answer_listing(&state, listing(request, false).await, add, string_list).await
}

fn string_list(items: &BTreeSet<String>) -> String {
    let mut out = String::from("[");
    push_list(&mut out, items, |out, item| out.push_str(&quoted(item)));
    out.push(']');
    out
}

/// `GET /api/v1/metadata`: type and help of every metric of the catalogue (or `metric`'s).
pub async fn metadata(request: Request) -> Response {
    let params = match params(request).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let only = param(&params, "metric");
    let mut out = String::from("{");
    let mut first = true;
    for m in catalogue::ALL
        .iter()
        .filter(|m| only.is_none_or(|n| n == m.name))
    {
        if !first {
            out.push(',');
        }
        first = false;
        let kind = match m.kind {
            Kind::Histogram => "histogram",
            other => other.as_str(),
        };
        let _ = write!(
            out,
            r#"{}:[{{"type":{},"help":{},"unit":""}}]"#,
            quoted(m.name),
            quoted(kind),
            quoted(m.help)
        );
    }
    out.push('}');
    success(&out)
}

/// `GET /api/v1/status/buildinfo`.
pub async fn buildinfo() -> Response {
    let data = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "application": "lookout",
    });
    success(&data.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_steps_parse_as_prometheus_takes_them() {
        assert_eq!(parse_time("time", "1733130000").unwrap(), 1_733_130_000_000);
        assert_eq!(
            parse_time("time", "1733130000.25").unwrap(),
            1_733_130_000_250
        );
        assert_eq!(
            parse_time("time", "2026-12-02T08:00:00Z").unwrap(),
            1_796_198_400_000
        );
        for bad in ["x", "NaN", "-5", "1e20", "2026-12-02"] {
            assert!(parse_time("time", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_step("15").unwrap(), 15_000);
        assert_eq!(parse_step("0.5").unwrap(), 500);
        assert_eq!(parse_step("1m30s").unwrap(), 90_000);
        for bad in ["0", "-1", "x", "inf"] {
            assert!(parse_step(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_rendered_as_prometheus_writes_them() {
        let labels: LabelSet = [("__name__".to_string(), "x".to_string())].into();
        let v = render(&Answer::Vector(vec![(labels.clone(), 0.5)]), 1_000);
        assert_eq!(
            v,
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"x"},"value":[1,"0.5"]}]}"#
        );
        let m = render(
            &Answer::Matrix(vec![(
                labels,
                vec![(1_500, f64::INFINITY), (2_500, f64::NAN)],
            )]),
            0,
        );
        assert_eq!(
            m,
            r#"{"resultType":"matrix","result":[{"metric":{"__name__":"x"},"values":[[1.5,"+Inf"],[2.5,"NaN"]]}]}"#
        );
        assert_eq!(
            render(&Answer::Scalar(2.0), 3_000),
            r#"{"resultType":"scalar","result":[3,"2"]}"#
        );
    }
}
