//! The HTTP server: `/metrics`, health and readiness, the JSON API, reload.
//!
//! Every error answer is JSON `{"error": "..."}` with a 4xx/5xx status that says what went
//! wrong; no request can crash or block the agent (handlers only take short locks).
//!
//! Who may do what is decided for every request before it reaches a handler ([`guard`]):
//! `GET /healthz` and `GET /readyz` are open, and so are the console's files (`GET /` and
//! `/console/...`: they hold no data, and the page must load to ask for the token); every
//! other GET needs the read token when
//! `agent.read_token_file` is set (the API token is accepted too); every other method, and
//! any request to a check-in (`/api/v1/checkins/...`), needs the API token when
//! `agent.api_token_file` is set. Connections, HTTPS and the bounds on
//! slow clients are [`server`]'s.

pub mod checkins;
pub mod console;
pub mod exposition;
pub mod ingest;
pub mod notify;
pub mod page;
pub mod processes;
pub mod query;
pub mod rules;
pub mod server;
pub mod silences;
pub mod status;
pub mod stream;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::collect::ingest::Rejection;
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
        let mut response =
            (self.status, axum::Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"lookout\""),
            );
        }
        response
    }
}

/// The router over the shared state.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/", get(console::index))
        .route("/console/{file}", get(console::asset))
        .route("/api/v1/stream", get(stream::stream))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status::status))
        .route("/api/v1/alerts", get(rules::alerts))
        .route("/api/v1/rules", get(rules::rules))
        .route("/api/v1/scalability", get(rules::scalability))
        .route("/api/v1/outbox", get(notify::outbox))
        .route("/api/v1/processes/top", get(processes::top))
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route("/api/v1/series", get(query::series).post(query::series))
        .route("/api/v1/labels", get(query::labels).post(query::labels))
        .route("/api/v1/label/{name}/values", get(query::label_values))
        .route("/api/v1/metadata", get(query::metadata))
        .route("/api/v1/status/buildinfo", get(query::buildinfo))
        .route("/api/v1/observations", post(ingest::observations))
        .route(
            "/api/v1/checkins/{name}",
            get(checkins::success).post(checkins::success),
        )
        .route(
            "/api/v1/checkins/{name}/start",
            get(checkins::start).post(checkins::start),
        )
        .route(
            "/api/v1/checkins/{name}/fail",
            get(checkins::fail).post(checkins::fail),
        )
        .route("/api/v1/test-alert", post(notify::test_alert))
        .route(
            "/api/v1/silences",
            get(silences::list).post(silences::create),
        )
        .route("/api/v1/silences/{id}", delete(silences::expire))
        .route("/-/reload", post(reload))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serves `router` on `listener` until `stop` turns true; in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let limits = server::Limits::for_this_process();
    tracing::info!(
        max_connections = limits.max_connections,
        header_read_timeout = ?limits.header_read_timeout,
        tls = state.tls().is_some(),
        "HTTP server ready"
    );
    let app = router(state.clone());
    // Live streams end as soon as the server stops, so none holds the shutdown.
    let mut stopping = stop.clone();
    let streams = state.clone();
    tokio::spawn(async move {
        let _ = stopping.wait_for(|stop| *stop).await;
        streams.live().close();
    });
    server::serve(listener, app, move || state.tls(), limits, stop).await;
    Ok(())
}

/// Paths any client may GET without a token: the liveness and readiness probes.
pub const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Path of the ingestion endpoint, whose refusals are counted by reason.
const OBSERVATIONS_PATH: &str = "/api/v1/observations";

/// What a request must show before it reaches its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nothing: the health and readiness probes, and the console's files.
    Open,
    /// The read token, when one is configured (or the API token).
    Read,
    /// The API token, when one is configured.
    Write,
}

/// Paths whose POST only reads: queries sent as a form body, as Grafana sends them.
pub const READ_BY_POST: [&str; 4] = [
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/series",
    "/api/v1/labels",
];

/// The access `method` on `path` needs: GET and HEAD read (and POST to the query paths),
/// every other method writes. Reading the probes or the console's files needs nothing. A
/// check-in writes whatever its method (a crontab line may GET it).
pub fn access(method: &Method, path: &str) -> Access {
    if path.starts_with(checkins::PREFIX) {
        return Access::Write;
    }
    let reads = method == Method::GET
        || method == Method::HEAD
        || (method == Method::POST && READ_BY_POST.contains(&path));
    if reads {
        if OPEN_PATHS.contains(&path) || console::is_console_path(path) {
            Access::Open
        } else {
            Access::Read
        }
    } else {
        Access::Write
    }
}

/// The middleware in front of every route (and the fallbacks): a request without the token
/// its access needs gets 401, with `WWW-Authenticate: Bearer`.
async fn guard(AxumState(state): AxumState<Arc<State>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let outcome = match access(request.method(), path) {
        Access::Open => Ok(()),
        Access::Read => authorize_read(&state, request.headers()),
        Access::Write => authorize(&state, request.headers()),
    };
    match outcome {
        Ok(()) => next.run(request).await,
        Err(denied) => {
            if denied.status == StatusCode::UNAUTHORIZED && path == OBSERVATIONS_PATH {
                state.ingest().reject(Rejection::Unauthorized);
            }
            denied.into_response()
        }
    }
}

async fn metrics(AxumState(state): AxumState<Arc<State>>) -> Response {
    let host = state.hostname();
    let body = exposition::render(&state.store(), &host);
    ([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], body).into_response()
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// 200 `ready`; 503 `starting` (collectors that have not run yet) or 503 `degraded` (what
/// the agent cannot write to `data_dir` and keeps in memory, see [`State::degraded`]).
async fn readyz(AxumState(state): AxumState<Arc<State>>) -> Response {
    let waiting = state.not_ready();
    if !waiting.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "starting", "waiting_for": waiting })),
        )
            .into_response();
    }
    let reasons = state.degraded();
    if reasons.is_empty() {
        axum::Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "degraded", "reasons": reasons })),
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

/// Checks `Authorization: Bearer <token>` against the API token when
/// `agent.api_token_file` is set.
pub fn authorize(state: &State, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = state.api_token() else {
        return Ok(());
    };
    check_bearer(headers, &[expected])
}

/// Checks `Authorization: Bearer <token>` against the read token, or the API token, when
/// `agent.read_token_file` is set.
pub fn authorize_read(state: &State, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(read) = state.read_token() else {
        return Ok(());
    };
    let mut accepted = vec![read];
    accepted.extend(state.api_token());
    check_bearer(headers, &accepted)
}

/// Whether the bearer token of `headers` is one of `accepted`: 401 when it is missing or
/// none matches, 503 when none matches and a token file could not be read.
fn check_bearer(headers: &HeaderMap, accepted: &[Result<String, String>]) -> Result<(), ApiError> {
    let given = bearer(headers);
    if let Some(token) = given
        && accepted
            .iter()
            .flatten()
            .any(|expected| tokens_match(token, expected))
    {
        return Ok(());
    }
    if let Some(Err(why)) = accepted.iter().find(|t| t.is_err()) {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why.clone()));
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        match given {
            None => "missing bearer token (Authorization: Bearer <token>)",
            Some(_) => "wrong bearer token",
        },
    ))
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compares the SHA-256 digests without an early exit, so that timing reveals neither how
/// much of a token matched nor its length.
fn tokens_match(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
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
mod tests {
    use super::*;

    #[test]
    fn reads_writes_and_the_open_probes() {
        let cases: &[(Method, &str, Access)] = &[
            // the probes stay open for the kubelet and load balancers
            (Method::GET, "/healthz", Access::Open),
            (Method::GET, "/readyz", Access::Open),
            (Method::HEAD, "/readyz", Access::Open),
            // everything else that reads
            (Method::GET, "/metrics", Access::Read),
            (Method::HEAD, "/metrics", Access::Read),
            (Method::GET, "/api/v1/status", Access::Read),
            (Method::GET, "/api/v1/processes/top", Access::Read),
            (Method::POST, "/api/v1/processes/top", Access::Write),
            (Method::GET, "/no/such/page", Access::Read),
            // the console's files hold no data: the page must load to ask for the token
            (Method::GET, "/", Access::Open),
            (Method::HEAD, "/", Access::Open),
            (Method::GET, "/console/console.js", Access::Open),
            (Method::GET, "/console/no-such-file", Access::Open),
            // ... every data request it makes needs the token, the live stream included
            (Method::GET, "/api/v1/stream", Access::Read),
            (Method::GET, "/api/v1/query_range", Access::Read),
            (Method::GET, "/consolex", Access::Read),
            (Method::GET, "//", Access::Read),
            (Method::POST, "/", Access::Write),
            (Method::POST, "/console/console.js", Access::Write),
            // queries sent as form bodies, as Grafana sends them, only read
            (Method::POST, "/api/v1/query", Access::Read),
            (Method::POST, "/api/v1/query_range", Access::Read),
            (Method::POST, "/api/v1/series", Access::Read),
            (Method::POST, "/api/v1/labels", Access::Read),
            (Method::PUT, "/api/v1/query", Access::Write),
            // a probe path is open to reads only
            (Method::POST, "/healthz", Access::Write),
            // everything that is not a read writes
            (Method::POST, "/-/reload", Access::Write),
            (Method::POST, "/api/v1/observations", Access::Write),
            // a check-in reports, even by GET (crontab lines)
            (Method::GET, "/api/v1/checkins/backup", Access::Write),
            (Method::HEAD, "/api/v1/checkins/backup/start", Access::Write),
            (Method::POST, "/api/v1/checkins/backup/fail", Access::Write),
            (Method::GET, "/api/v1/checkinsx", Access::Read),
            (Method::DELETE, "/api/v1/outbox", Access::Write),
            (Method::PUT, "/metrics", Access::Write),
            (Method::OPTIONS, "/metrics", Access::Write),
        ];
        for (method, path, expected) in cases {
            assert_eq!(access(method, path), *expected, "{method} {path}");
        }
    }

    #[test]
    fn bearer_tokens_are_checked_against_every_accepted_one() {
        let ok = |t: &str| Ok::<String, String>(t.to_string());
        let unreadable = || Err::<String, String>("read token file: cannot read /x".to_string());
        // (Authorization header, accepted tokens, expected status; None: allowed)
        type Case = (
            Option<&'static str>,
            Vec<Result<String, String>>,
            Option<StatusCode>,
        );
        let cases: Vec<Case> = vec![
            // the right token
            (Some("Bearer s3cret"), vec![ok("s3cret")], None),
            // the scheme in any case, spaces around the token
            (Some("bearer  s3cret "), vec![ok("s3cret")], None),
            // any of the accepted ones (the read token, then the API token)
            (Some("Bearer api"), vec![ok("read"), ok("api")], None),
            // missing, empty, another scheme, wrong, a prefix, longer
            (None, vec![ok("s3cret")], Some(StatusCode::UNAUTHORIZED)),
            (
                Some("Bearer "),
                vec![ok("s3cret")],
                Some(StatusCode::UNAUTHORIZED),
            ),
            (
                Some("Basic czNjcmV0"),
                vec![ok("s3cret")],
                Some(StatusCode::UNAUTHORIZED),
            ),
            (
                Some("Bearer wrong"),
                vec![ok("s3cret")],
                Some(StatusCode::UNAUTHORIZED),
            ),
            (
                Some("Bearer s3cre"),
                vec![ok("s3cret")],
                Some(StatusCode::UNAUTHORIZED),
            ),
            (
                Some("Bearer s3crets"),
                vec![ok("s3cret")],
                Some(StatusCode::UNAUTHORIZED),
            ),
            // an unreadable token file: the agent cannot tell, and says so
            (
                Some("Bearer s3cret"),
                vec![unreadable()],
                Some(StatusCode::SERVICE_UNAVAILABLE),
            ),
            (
                None,
                vec![unreadable()],
                Some(StatusCode::SERVICE_UNAVAILABLE),
            ),
            // ... unless the other accepted token matches
            (Some("Bearer api"), vec![unreadable(), ok("api")], None),
        ];
        for (given, accepted, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(value) = given {
                headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            }
            let outcome = check_bearer(&headers, &accepted).err().map(|e| e.status);
            assert_eq!(outcome, expected, "{given:?} against {accepted:?}");
        }
    }

    #[test]
    fn a_401_says_how_to_authenticate() {
        let response =
            ApiError::new(StatusCode::UNAUTHORIZED, "wrong bearer token").into_response();
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer realm=\"lookout\""
        );
        let response = ApiError::new(StatusCode::NOT_FOUND, "no").into_response();
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}

#[cfg(test)]
mod props;
