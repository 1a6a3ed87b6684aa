//! `GET /api/v1/status`: the latest values by collector, and each collector's run status.
//! Collectors are paged by name ([`super::page`]): `?limit=&after=`, `next` in the answer;
//! each shows at most [`page::MAX_NESTED`] values beside `value_count`, and a page ends early
//! rather than show more values than that in all.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State as AxumState};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiError, page};
use crate::collect::scheduler::RunStatus;
use crate::state::State;

/// One present series in the status answer.
#[derive(Debug, Serialize)]
pub struct Value {
    /// Metric name.
    pub metric: &'static str,
    /// Label values (without `host`).
    pub labels: BTreeMap<&'static str, String>,
    /// Latest value.
    pub value: f64,
}

/// A collector with its run status and its latest values.
#[derive(Debug, Serialize)]
pub struct CollectorStatus {
    /// Run bookkeeping.
    #[serde(flatten)]
    pub run: RunStatus,
    /// The collector's present series (the first [`page::MAX_NESTED`], by metric and labels).
    pub values: Vec<Value>,
    /// How many present series the collector has.
    pub value_count: usize,
}

/// The whole status document.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The `host` label.
    pub host: String,
    /// Agent version.
    pub version: &'static str,
    /// Seconds since the agent started.
    pub uptime_seconds: f64,
    /// Whether every collector has completed a run.
    pub ready: bool,
    /// Worst firing severity.
    pub health: crate::rules::score::Health,
    /// The scalability score of the last evaluation.
    pub score: Option<crate::rules::score::Score>,
    /// One page of the collectors, by name.
    pub collectors: BTreeMap<String, CollectorStatus>,
    /// The cursor of the next page of collectors; `None` on the last.
    pub next: Option<String>,
}

/// Query of `GET /api/v1/status`.
#[derive(Debug, Default, Deserialize)]
pub struct StatusQuery {
    /// Collectors per page.
    pub limit: Option<String>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

/// Builds one page of the status document from the shared state.
pub fn build(state: &State, q: &StatusQuery) -> Result<Status, ApiError> {
    let limit = page::limit("limit", q.limit.as_deref(), page::DEFAULT_LIMIT, 1)?;
    let after = page::after("after", "collectors", q.after.as_deref())?;
    let runs = state.status();
    let ready = runs.values().all(|run| run.runs > 0);
    let mut collectors: BTreeMap<String, CollectorStatus> = runs
        .into_iter()
        .filter(|(name, _)| after.as_deref().is_none_or(|a| name.as_str() > a))
        .map(|(name, run)| {
            (
                name,
                CollectorStatus {
                    run,
                    values: Vec::new(),
                    value_count: 0,
                },
            )
        })
        .collect();
    for (key, series) in state.store().present() {
        if let Some(c) = collectors.get_mut(&*series.owner) {
            c.value_count += 1;
            if c.values.len() < page::MAX_NESTED {
                c.values.push(Value {
                    metric: key.name,
                    labels: key.labels.iter().map(|(k, v)| (*k, v.clone())).collect(),
                    value: series.latest.1,
                });
            }
        }
    }
    // The page: `limit` collectors, fewer when their values would pass MAX_NESTED.
    let mut shown = 0usize;
    let mut kept = 0usize;
    for c in collectors.values() {
        if kept == limit || (kept > 0 && shown + c.values.len() > page::MAX_NESTED) {
            break;
        }
        shown += c.values.len();
        kept += 1;
    }
    let more = collectors.len() > kept;
    let collectors: BTreeMap<String, CollectorStatus> = collectors.into_iter().take(kept).collect();
    let next = page::next(
        &collectors.keys().collect::<Vec<_>>(),
        more,
        "collectors",
        |name| name.to_string(),
    );
    Ok(Status {
        host: state.hostname(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.uptime_seconds(),
        ready,
        health: state.engine().health(),
        score: state.score(),
        collectors,
        next,
    })
}

pub(crate) async fn status(
    AxumState(state): AxumState<Arc<State>>,
    Query(q): Query<StatusQuery>,
) -> Response {
    match build(&state, &q) {
        Ok(doc) => axum::Json(doc).into_response(),
        Err(e) => e.into_response(),
    }
}
