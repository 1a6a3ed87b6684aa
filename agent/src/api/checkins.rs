//! `/api/v1/checkins/<name>`: cron jobs and workers report to their check-in
//! (`collect.checkins`).
//!
//! | request | records |
//! |---|---|
//! | `GET` or `POST /api/v1/checkins/<name>` | a success |
//! | `GET` or `POST /api/v1/checkins/<name>/start` | the job started (optional: times the run) |
//! | `GET` or `POST /api/v1/checkins/<name>/fail` | a failure |
//!
//! GET is accepted too, so that a crontab line or a shell one-liner can use any HTTP
//! client; both need the API token when one is set (`agent.api_token_file`), as every write
//! does ([`super::access`]). A request body is ignored.
//!
//! | answer | when |
//! |---|---|
//! | 200 `{"checkin": name, "recorded": "success" \| "start" \| "failure"}` | recorded |
//! | 401 | the API token is set and the bearer token is missing or wrong |
//! | 404 `{"error": ...}` | no check-in of that name is configured |

use std::sync::Arc;

use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiError;
use crate::clock::AgentTimeline;
use crate::collect::checkins::{Report, Unknown};
use crate::state::State;

/// The path every check-in's URL starts with.
pub const PREFIX: &str = "/api/v1/checkins/";

/// `/api/v1/checkins/{name}`: a success.
pub async fn success(state: AxumState<Arc<State>>, name: Path<String>) -> Response {
    report(state, name, Report::Success)
}

/// `/api/v1/checkins/{name}/start`.
pub async fn start(state: AxumState<Arc<State>>, name: Path<String>) -> Response {
    report(state, name, Report::Start)
}

/// `/api/v1/checkins/{name}/fail`.
pub async fn fail(state: AxumState<Arc<State>>, name: Path<String>) -> Response {
    report(state, name, Report::Failure)
}

fn report(
    AxumState(state): AxumState<Arc<State>>,
    Path(name): Path<String>,
    what: Report,
) -> Response {
    match state.checkins().record(&name, what, &AgentTimeline) {
        Ok(()) => axum::Json(json!({ "checkin": name, "recorded": what.as_str() })).into_response(),
        Err(Unknown) => ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no check-in named {name:?}: add it to collect.checkins"),
        )
        .into_response(),
    }
}
