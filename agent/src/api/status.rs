//! `GET /api/v1/status`: the latest values by collector, and each collector's run status.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State as AxumState;
use serde::Serialize;

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
    /// The collector's present series.
    pub values: Vec<Value>,
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
    /// Collectors by name.
    pub collectors: BTreeMap<String, CollectorStatus>,
}

/// Builds the status document from the shared state.
pub fn build(state: &State) -> Status {
    let mut collectors: BTreeMap<String, CollectorStatus> = state
        .status()
        .into_iter()
        .map(|(name, run)| {
            (
                name,
                CollectorStatus {
                    run,
                    values: Vec::new(),
                },
            )
        })
        .collect();
    for (key, series) in state.store().present() {
        if let Some(c) = collectors.get_mut(&*series.owner) {
            c.values.push(Value {
                metric: key.name,
                labels: key.labels.iter().map(|(k, v)| (*k, v.clone())).collect(),
                value: series.latest.1,
            });
        }
    }
    Status {
        host: state.hostname(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.uptime_seconds(),
        ready: collectors.values().all(|c| c.run.runs > 0),
        health: state.engine().health(),
        score: state.score(),
        collectors,
    }
}

pub(crate) async fn status(AxumState(state): AxumState<Arc<State>>) -> axum::Json<Status> {
    axum::Json(build(&state))
}
