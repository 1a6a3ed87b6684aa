//! `GET /api/v1/alerts`, `/api/v1/rules` and `/api/v1/scalability`. The lists are paged
//! ([`super::page`]).

use std::sync::Arc;

use axum::extract::{Query, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::silences::muting_fields;
use super::{ApiError, page};
use crate::rules::LabelSet;
use crate::rules::engine::HISTORY_LIMIT;
use crate::rules::model::{Conditions, Threshold};
use crate::rules::state::Phase;
use crate::state::State;

/// Query of `GET /api/v1/alerts`: the active alerts' page, and the history's.
#[derive(Debug, Deserialize)]
pub(crate) struct AlertsQuery {
    /// Active alerts per page.
    limit: Option<String>,
    /// The `next` of the previous page of active alerts.
    after: Option<String>,
    /// Include the history: this many notifications per page, newest first (0 to 1000).
    history: Option<String>,
    /// The `history_next` of the previous page of the history.
    history_after: Option<String>,
}

/// The stable key of an active alert: its name and labels, as JSON.
fn alert_key(alert: &str, labels: &LabelSet) -> String {
    serde_json::to_string(&(alert, labels)).unwrap_or_default()
}

pub(crate) async fn alerts(
    AxumState(state): AxumState<Arc<State>>,
    Query(q): Query<AlertsQuery>,
) -> Response {
    match alerts_page(&state, &q) {
        Ok(doc) => axum::Json(doc).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Pending and firing instances ordered by alert then labels, paged by `limit`/`after`;
/// with `history` (or `history_after`), the notifications newest first, paged by
/// `history`/`history_after`.
fn alerts_page(state: &State, q: &AlertsQuery) -> Result<serde_json::Value, ApiError> {
    let limit = page::limit("limit", q.limit.as_deref(), page::DEFAULT_LIMIT, 1)?;
    let after: Option<(String, LabelSet)> =
        match page::after("after", "alerts", q.after.as_deref())? {
            None => None,
            Some(key) => Some(serde_json::from_str(&key).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "after is not a cursor of this list: pass the `next` of an earlier answer",
                )
            })?),
        };
    let with_history = q.history.is_some() || q.history_after.is_some();
    let history_limit = page::limit(
        "history",
        q.history.as_deref(),
        page::DEFAULT_LIMIT.min(HISTORY_LIMIT),
        0,
    )?;
    let history_after = page::after_number("history_after", "history", q.history_after.as_deref())?;

    let engine = state.engine();
    let mut active = engine.active();
    active.sort_by(|a, b| (&a.alert, &a.labels).cmp(&(&b.alert, &b.labels)));
    let past_cursor = active.into_iter().filter(|a| {
        after
            .as_ref()
            .is_none_or(|(alert, labels)| (&a.alert, &a.labels) > (alert, labels))
    });
    let (alerts, more) = page::take(past_cursor, limit);
    let next = page::next(&alerts, more, "alerts", |a| alert_key(&a.alert, &a.labels));
    // Why each is not notified now, if it is not: silences, maintenance, inhibition.
    let firing: Vec<_> = engine.firing().collect();
    let firing: Vec<_> = firing
        .iter()
        .map(|(a, l, s)| (a.as_ref(), *l, *s))
        .collect();
    let muter = state.muter();
    let now = crate::clock::wall_millis();
    let alerts: Vec<serde_json::Value> = alerts
        .iter()
        .map(|a| {
            let mut item = json!(a);
            if let serde_json::Value::Object(fields) = &mut item {
                fields.extend(muting_fields(
                    &muter,
                    (&a.alert, &a.labels, a.severity),
                    &firing,
                    now,
                ));
            }
            item
        })
        .collect();
    drop(muter);
    let mut doc = json!({ "alerts": alerts, "next": next });
    if with_history {
        let older = engine
            .history_numbered()
            .filter(|(seq, _)| history_after.is_none_or(|cursor| *seq < cursor));
        let (entries, more) = page::take(older, history_limit);
        let history_next = page::next(&entries, more, "history", |(seq, _)| seq.to_string());
        let entries: Vec<_> = entries.into_iter().map(|(_, e)| e).collect();
        doc["history"] = json!(entries);
        doc["history_next"] = json!(history_next);
    }
    Ok(doc)
}

/// An instance of a rule, as `/api/v1/rules` shows it.
#[derive(Debug, Serialize)]
struct InstanceView {
    labels: LabelSet,
    state: Phase,
    severity: Option<crate::rules::model::Severity>,
    value: Option<f64>,
    active_since: Option<i64>,
    firing_since: Option<i64>,
}

fn threshold(t: &Option<Threshold>) -> Option<String> {
    t.map(|t| format!("{} {}", t.op.as_str(), t.value))
}

fn conditions(c: &Conditions) -> serde_json::Value {
    json!({
        "warning": threshold(&c.warning),
        "critical": threshold(&c.critical),
        "for_seconds": c.for_ms as f64 / 1000.0,
        "hysteresis": c.hysteresis,
        "clear_for_seconds": c.clear_for_ms as f64 / 1000.0,
        "on_missing": c.on_missing,
        "stale_after_seconds": c.stale_after_ms as f64 / 1000.0,
        "repeat_interval_seconds": c.repeat_interval_ms as f64 / 1000.0,
    })
}

/// Query of `GET /api/v1/rules`.
#[derive(Debug, Deserialize)]
pub(crate) struct RulesQuery {
    /// Rules per page.
    limit: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
}

/// Every rule ordered by alert name, paged by `limit`/`after` (the cursor is the last
/// rule's name); each with its first [`page::MAX_NESTED`] instances (ordered by labels) and
/// `instance_count`, a page ending early rather than show more instances than that in all.
pub(crate) async fn rules(
    AxumState(state): AxumState<Arc<State>>,
    Query(q): Query<RulesQuery>,
) -> Response {
    let limit = match page::limit("limit", q.limit.as_deref(), page::DEFAULT_LIMIT, 1) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let after = match page::after("after", "rules", q.after.as_deref()) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let engine = state.engine();
    let mut ordered: Vec<_> = engine
        .rules()
        .iter()
        .filter(|r| after.as_deref().is_none_or(|name| r.alert.as_str() > name))
        .collect();
    ordered.sort_by(|a, b| a.alert.cmp(&b.alert));
    let mut rules = Vec::new();
    let mut names = Vec::new();
    let mut shown = 0usize;
    let mut more = false;
    for r in ordered {
        if rules.len() == limit {
            more = true;
            break;
        }
        let all = engine.instances_of(&r.alert);
        let count = all.len();
        let take = count.min(page::MAX_NESTED);
        if !rules.is_empty() && shown + take > page::MAX_NESTED {
            more = true;
            break;
        }
        shown += take;
        let instances: Vec<InstanceView> = all
            .into_iter()
            .take(take)
            .map(|(labels, st)| InstanceView {
                labels: labels.clone(),
                state: st.phase(),
                severity: st.severity(),
                value: st.last_value(),
                active_since: st.active_since(),
                firing_since: st.firing_since(),
            })
            .collect();
        names.push(r.alert.clone());
        rules.push(json!({
            "alert": r.alert,
            "group": r.group,
            "file": r.file,
            "line": r.line,
            "interval_seconds": r.interval.as_secs_f64(),
            "expr": r.expr_text,
            "conditions": conditions(&r.conditions),
            "labels": r.labels,
            "summary": r.summary,
            "instances": instances,
            "instance_count": count,
        }));
    }
    let next = page::next(&names, more, "rules", String::clone);
    axum::Json(json!({ "rules": rules, "next": next })).into_response()
}

pub(crate) async fn scalability(AxumState(state): AxumState<Arc<State>>) -> Response {
    match state.score() {
        Some(score) => axum::Json(score).into_response(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no rule evaluation has run yet; the score appears after the first one",
        )
        .into_response(),
    }
}
