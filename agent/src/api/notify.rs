//! `GET /api/v1/outbox` (pending and dead deliveries) and `POST /api/v1/test-alert` (fire
//! drill through the real receivers, each result reported).

use std::sync::Arc;

use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, authorize};
use crate::notify::dispatch;
use crate::state::State;

/// How many dead letters `GET /api/v1/outbox` lists.
const DEAD_LIMIT: usize = 100;

pub(crate) async fn outbox(AxumState(state): AxumState<Arc<State>>) -> Response {
    let Some((dispatcher, _)) = state.delivery() else {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "delivery is not running")
            .into_response();
    };
    let outbox = dispatcher.outbox().clone();
    let read = tokio::task::spawn_blocking(move || -> Result<serde_json::Value, String> {
        let pending = outbox.pending().map_err(|e| e.to_string())?;
        let dead = outbox.dead(DEAD_LIMIT).map_err(|e| e.to_string())?;
        Ok(json!({ "pending": pending, "dead": dead }))
    })
    .await;
    match read {
        Ok(Ok(doc)) => axum::Json(doc).into_response(),
        Ok(Err(e)) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("outbox: {e}")).into_response()
        }
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("outbox task: {e}"),
        )
        .into_response(),
    }
}

/// Query of `POST /api/v1/test-alert`.
#[derive(Debug, Deserialize)]
pub(crate) struct DrillQuery {
    /// Only this receiver; all when absent.
    receiver: Option<String>,
}

pub(crate) async fn test_alert(
    AxumState(state): AxumState<Arc<State>>,
    headers: HeaderMap,
    Query(q): Query<DrillQuery>,
) -> Response {
    if let Err(denied) = authorize(&state, &headers) {
        return denied.into_response();
    }
    let Some((_, config)) = state.delivery() else {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "delivery is not running")
            .into_response();
    };
    match dispatch::fire_drill(&config, &state.hostname(), q.receiver.as_deref()).await {
        Ok(results) => {
            let all_ok = results.iter().all(|r| r.ok);
            let status = if all_ok {
                StatusCode::OK
            } else {
                StatusCode::BAD_GATEWAY
            };
            (
                status,
                axum::Json(json!({ "ok": all_ok, "results": results })),
            )
                .into_response()
        }
        Err(e) if e.starts_with("no receiver named") => {
            ApiError::new(StatusCode::NOT_FOUND, e).into_response()
        }
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}
