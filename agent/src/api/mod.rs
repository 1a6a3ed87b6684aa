//! The HTTP server: `/metrics`, health and readiness, the JSON API, reload.
//!
//! Every error answer is JSON `{"error": "..."}` with a 4xx/5xx status that says what went
//! wrong; no request can crash or block the agent (handlers only take short locks).

pub mod exposition;
pub mod ingest;
pub mod notify;
pub mod rules;
pub mod status;

use std::sync::Arc;

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::watch;

use crate::state::State;

/// An error answer: a status and a message, sent as JSON `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What is wrong, for the caller.
    pub message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

/// The router over the shared state.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status::status))
        .route("/api/v1/alerts", get(rules::alerts))
        .route("/api/v1/rules", get(rules::rules))
        .route("/api/v1/scalability", get(rules::scalability))
        .route("/api/v1/outbox", get(notify::outbox))
        .route("/api/v1/observations", post(ingest::observations))
        .route("/api/v1/test-alert", post(notify::test_alert))
        .route("/-/reload", post(reload))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Serves `router` on `listener` until `stop` turns true; in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        })
        .await?;
    Ok(())
}

async fn metrics(AxumState(state): AxumState<Arc<State>>) -> Response {
    let host = state.hostname();
    let body = exposition::render(&state.store(), &host);
    ([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], body).into_response()
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(AxumState(state): AxumState<Arc<State>>) -> Response {
    let waiting = state.not_ready();
    if waiting.is_empty() {
        axum::Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "starting", "waiting_for": waiting })),
        )
            .into_response()
    }
}

async fn reload(AxumState(state): AxumState<Arc<State>>, headers: HeaderMap) -> Response {
    if let Err(denied) = authorize(&state, &headers) {
        return denied.into_response();
    }
    match state.request_reload().await {
        Ok(()) => axum::Json(json!({ "status": "reloaded" })).into_response(),
        Err(problems) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({ "error": "invalid configuration; the running one stays", "problems": problems })),
        )
            .into_response(),
    }
}

/// Checks `Authorization: Bearer <token>` when `agent.api_token_file` is set.
pub fn authorize(state: &State, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = state.api_token() else {
        return Ok(());
    };
    let expected = expected.map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing bearer token (Authorization: Bearer <token>)",
        )),
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong bearer token",
        )),
    }
}

/// Compares without an early exit, so timing does not reveal how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

#[cfg(test)]
mod props;
