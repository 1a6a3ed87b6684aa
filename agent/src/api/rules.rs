//! `GET /api/v1/alerts`, `/api/v1/rules` and `/api/v1/scalability`.

use std::sync::Arc;

use axum::extract::{Query, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ApiError;
use crate::rules::LabelSet;
use crate::rules::engine::HISTORY_LIMIT;
use crate::rules::model::{Conditions, Threshold};
use crate::rules::state::Phase;
use crate::state::State;

/// Query of `GET /api/v1/alerts`.
#[derive(Debug, Deserialize)]
pub(crate) struct AlertsQuery {
    /// How many recent notifications to include, newest first.
    history: Option<String>,
}

pub(crate) async fn alerts(
    AxumState(state): AxumState<Arc<State>>,
    Query(q): Query<AlertsQuery>,
) -> Response {
    let history = match q.history.as_deref().map(str::parse::<usize>) {
        None => None,
        Some(Ok(n)) if n <= HISTORY_LIMIT => Some(n),
        Some(_) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("history must be a whole number from 0 to {HISTORY_LIMIT}"),
            )
            .into_response();
        }
    };
    let engine = state.engine();
    let mut doc = json!({ "alerts": engine.active() });
    if let Some(n) = history {
        doc["history"] = json!(engine.history(n));
    }
    axum::Json(doc).into_response()
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

pub(crate) async fn rules(
    AxumState(state): AxumState<Arc<State>>,
) -> axum::Json<serde_json::Value> {
    let engine = state.engine();
    let rules: Vec<_> = engine
        .rules()
        .iter()
        .map(|r| {
            let instances: Vec<InstanceView> = engine
                .instances_of(&r.alert)
                .into_iter()
                .map(|(labels, st)| InstanceView {
                    labels: labels.clone(),
                    state: st.phase(),
                    severity: st.severity(),
                    value: st.last_value(),
                    active_since: st.active_since(),
                    firing_since: st.firing_since(),
                })
                .collect();
            json!({
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
            })
        })
        .collect();
    axum::Json(json!({ "rules": rules }))
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
