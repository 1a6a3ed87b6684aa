//! `GET /api/v1/outbox` (pending and dead deliveries, paged) and `POST /api/v1/test-alert`
//! (the fire drill, queued in the outbox for every receiver, at most once per 10 s).

use std::sync::Arc;

use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, authorize, page};
use crate::clock::wall_millis;
use crate::notify::dispatch;
use crate::state::State;

/// Query of `GET /api/v1/outbox`: a page of the pending messages and one of the dead
/// letters.
#[derive(Debug, Deserialize)]
pub(crate) struct OutboxQuery {
    /// Pending messages per page.
    limit: Option<String>,
    /// The `next` of the previous page of pending messages.
    after: Option<String>,
    /// Dead letters per page.
    dead_limit: Option<String>,
    /// The `dead_next` of the previous page of dead letters.
    dead_after: Option<String>,
}

/// Pending messages oldest first (`limit`/`after`, `next`) and dead letters newest first
/// (`dead_limit`/`dead_after`, `dead_next`), each paged by its sequence number in the outbox.
pub(crate) async fn outbox(
    AxumState(state): AxumState<Arc<State>>,
    Query(q): Query<OutboxQuery>,
) -> Response {
    let parsed = (|| -> Result<_, ApiError> {
        Ok((
            page::limit("limit", q.limit.as_deref(), page::DEFAULT_LIMIT, 1)?,
            page::after_number("after", "pending", q.after.as_deref())?,
            page::limit(
                "dead_limit",
                q.dead_limit.as_deref(),
                page::DEFAULT_LIMIT,
                1,
            )?,
            page::after_number("dead_after", "dead", q.dead_after.as_deref())?,
        ))
    })();
    let (limit, after, dead_limit, dead_after) = match parsed {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some((dispatcher, _)) = state.delivery() else {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "delivery is not running")
            .into_response();
    };
    let outbox = dispatcher.outbox().clone();
    let read = tokio::task::spawn_blocking(move || -> Result<serde_json::Value, String> {
        // One more than the page: whether another page follows.
        let pending = outbox
            .pending_page(after, limit + 1)
            .map_err(|e| e.to_string())?;
        let dead = outbox
            .dead_page(dead_after, dead_limit + 1)
            .map_err(|e| e.to_string())?;
        let (pending, more) = page::take(pending, limit);
        let next = page::next(&pending, more, "pending", |(seq, _)| seq.to_string());
        let (dead, dead_more) = page::take(dead, dead_limit);
        let dead_next = page::next(&dead, dead_more, "dead", |(seq, _)| seq.to_string());
        let pending: Vec<_> = pending.into_iter().map(|(_, p)| p).collect();
        let dead: Vec<_> = dead.into_iter().map(|(_, d)| d).collect();
        Ok(json!({ "pending": pending, "next": next, "dead": dead, "dead_next": dead_next }))
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

/// The fire drill: one test message per receiver (or the one named), written to the outbox
/// and delivered from there like any message (retry, circuit breaker, rate limit, dead
/// letters). Answers 202 with the message ids, each the `Idempotency-Key` its receiver
/// gets; 429 with `Retry-After` within [`dispatch::DRILL_WINDOW`] of the previous drill.
pub(crate) async fn test_alert(
    AxumState(state): AxumState<Arc<State>>,
    headers: HeaderMap,
    Query(q): Query<DrillQuery>,
) -> Response {
    if let Err(denied) = authorize(&state, &headers) {
        return denied.into_response();
    }
    let Some((dispatcher, config)) = state.delivery() else {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "delivery is not running")
            .into_response();
    };
    let now = wall_millis();
    let messages =
        match dispatch::drill_messages(&config, &state.hostname(), q.receiver.as_deref(), now) {
            Ok(m) => m,
            Err(e) => return ApiError::new(StatusCode::NOT_FOUND, e).into_response(),
        };
    let gate = state.drill_gate();
    if let Err(wait) = gate.try_start() {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut answer = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "one fire drill per {}s: try again in {secs}s",
                dispatch::DRILL_WINDOW.as_secs()
            ),
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
            answer.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return answer;
    }
    let queued: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| json!({ "receiver": m.receiver, "id": m.id }))
        .collect();
    match dispatcher.enqueue(messages, now).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "status": "queued", "messages": queued })),
        )
            .into_response(),
        Err(e) => {
            gate.cancel();
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot queue the fire drill: {e}"),
            )
            .into_response()
        }
    }
}
