//! `GET /api/v1/silences` (every silence with its state, paged by id), `POST
//! /api/v1/silences` (create one; the API token) and `DELETE /api/v1/silences/<id>` (expire
//! one now; the API token). Created silences are saved to `data_dir` before the answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, page};
use crate::clock::wall_millis;
use crate::config::units::parse_duration;
use crate::notify::rfc3339;
use crate::rules::LabelSet;
use crate::rules::model::Severity;
use crate::rules::mute::silence::{self, MAX_SILENCES, Silence};
use crate::rules::mute::{FiringAlert, Muter, Reason};
use crate::state::State;
use crate::store::Millis;

/// Query of `GET /api/v1/silences`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SilencesQuery {
    /// Silences per page.
    limit: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
}

/// One silence as the API shows it.
fn view(s: &Silence, now: Millis, configured: bool) -> serde_json::Value {
    json!({
        "id": s.id,
        "matchers": s.matchers,
        "starts": rfc3339(s.starts_ms),
        "ends": rfc3339(s.ends_ms),
        "comment": s.comment,
        "created_by": s.created_by,
        "created": rfc3339(s.created_ms),
        "state": s.state(now).as_str(),
        "source": if configured { "config" } else { "api" },
    })
}

pub(crate) async fn list(
    AxumState(state): AxumState<Arc<State>>,
    Query(q): Query<SilencesQuery>,
) -> Response {
    let parsed = (|| -> Result<_, ApiError> {
        Ok((
            page::limit("limit", q.limit.as_deref(), page::DEFAULT_LIMIT, 1)?,
            page::after("after", "silences", q.after.as_deref())?,
        ))
    })();
    let (limit, after) = match parsed {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let now = wall_millis();
    let muter = state.muter();
    let mut all: Vec<(&Silence, bool)> = muter
        .configured
        .iter()
        .map(|s| (s, true))
        .chain(muter.created.iter().map(|s| (s, false)))
        .filter(|(s, _)| after.as_deref().is_none_or(|a| s.id.as_str() > a))
        .collect();
    all.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let (items, more) = page::take(all, limit);
    let next = page::next(&items, more, "silences", |(s, _)| s.id.clone());
    let silences: Vec<_> = items.iter().map(|(s, c)| view(s, now, *c)).collect();
    axum::Json(json!({ "silences": silences, "next": next })).into_response()
}

/// Body of `POST /api/v1/silences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSilence {
    /// `label: pattern` (whole-value regexes); `alert` is the alert name.
    matchers: BTreeMap<String, String>,
    /// RFC 3339; absent: now.
    starts: Option<String>,
    /// RFC 3339; one of `ends` and `duration`.
    ends: Option<String>,
    /// From `starts`, e.g. `2h`; one of `ends` and `duration`.
    duration: Option<String>,
    /// Why.
    #[serde(default)]
    comment: String,
    /// Who.
    #[serde(default)]
    created_by: String,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// The silence a body asks for, made at `now`.
fn silence_of(body: NewSilence, now: Millis) -> Result<Silence, ApiError> {
    let time = |name: &str, text: &str| {
        crate::clock::parse_rfc3339(text).ok_or_else(|| {
            bad(format!(
                "{name}: {text:?} is not an RFC 3339 time (2026-12-24T00:00:00Z)"
            ))
        })
    };
    let starts = match &body.starts {
        Some(text) => time("starts", text)?,
        None => now,
    };
    let ends = match (&body.ends, &body.duration) {
        (Some(text), None) => time("ends", text)?,
        (None, Some(text)) => {
            let d = parse_duration(text).map_err(|e| bad(format!("duration: {e}")))?;
            let ms = Millis::try_from(d.as_millis()).map_err(|_| bad("duration: too long"))?;
            starts.saturating_add(ms)
        }
        (Some(_), Some(_)) => return Err(bad("give ends or duration, not both")),
        (None, None) => return Err(bad("give ends (RFC 3339) or duration (such as 2h)")),
    };
    if ends <= now {
        return Err(bad("the silence would end in the past"));
    }
    Silence::new(
        silence::new_id(),
        body.matchers,
        starts,
        ends,
        body.comment,
        body.created_by,
        now,
    )
    .map_err(bad)
}

pub(crate) async fn create(
    AxumState(state): AxumState<Arc<State>>,
    body: Result<axum::Json<NewSilence>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let body = match body {
        Ok(axum::Json(body)) => body,
        Err(e) => return bad(format!("body: {}", e.body_text())).into_response(),
    };
    let now = wall_millis();
    let new = match silence_of(body, now) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let id = new.id.clone();
    let snapshot = {
        let mut muter = state.muter();
        silence::prune(&mut muter.created, now);
        if muter.configured.len() + muter.created.len() >= MAX_SILENCES {
            return ApiError::new(
                StatusCode::CONFLICT,
                format!("{MAX_SILENCES} silences are kept already: expire some first"),
            )
            .into_response();
        }
        muter.created.push(new);
        muter.snapshot()
    };
    // The live streams' alerts say what is silenced: tell them now, not at the next write.
    state.live().changed();
    let persisted = save(snapshot).await;
    tracing::info!(%id, "silence created");
    axum::Json(json!({ "id": id, "persisted": persisted.is_ok(), "error": persisted.err() }))
        .into_response()
}

pub(crate) async fn expire(
    AxumState(state): AxumState<Arc<State>>,
    Path(id): Path<String>,
) -> Response {
    let now = wall_millis();
    let snapshot = {
        let mut muter = state.muter();
        if muter.configured.iter().any(|s| s.id == id) {
            return ApiError::new(
                StatusCode::CONFLICT,
                format!("silence {id} is in the configuration file: remove it there and reload"),
            )
            .into_response();
        }
        let Some(s) = muter.created.iter_mut().find(|s| s.id == id) else {
            return ApiError::new(StatusCode::NOT_FOUND, format!("no silence {id}"))
                .into_response();
        };
        if s.ends_ms > now {
            s.ends_ms = now;
            s.starts_ms = s.starts_ms.min(now);
        }
        muter.snapshot()
    };
    state.live().changed();
    let persisted = save(snapshot).await;
    tracing::info!(%id, "silence expired");
    axum::Json(json!({ "id": id, "state": "expired", "persisted": persisted.is_ok(), "error": persisted.err() }))
        .into_response()
}

/// Writes a muter snapshot off the runtime; the error as the answer reports it.
async fn save(
    (dir, created, mute_state): (
        Option<std::path::PathBuf>,
        Vec<Silence>,
        crate::rules::mute::MuteState,
    ),
) -> Result<(), String> {
    let Some(dir) = dir else {
        return Ok(());
    };
    match tokio::task::spawn_blocking(move || silence::save(&dir, &created, &mute_state)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "silences not saved to data_dir; kept in memory");
            Err(format!("kept in memory only, not saved to data_dir: {e}"))
        }
        Err(e) => Err(format!("not saved: {e}")),
    }
}
/// Why the alert `alert{labels}` is not notified now, as `GET /api/v1/alerts` and the live
/// stream both give it: `silenced` (by a silence or a maintenance window), `inhibited` (by
/// a firing source alert) and `muted_by` (every reason). An alert without a severity yet
/// (pending) is muted by nothing.
pub(super) fn muting_fields(
    muter: &Muter,
    (alert, labels, severity): (&str, &LabelSet, Option<Severity>),
    firing: &[FiringAlert<'_>],
    now: Millis,
) -> serde_json::Map<String, serde_json::Value> {
    let muted = severity.map_or_else(Vec::new, |severity| {
        muter.reasons(alert, labels, severity, firing, now)
    });
    let inhibited = muted.iter().any(|r| matches!(r, Reason::Inhibition { .. }));
    let silenced = muted
        .iter()
        .any(|r| !matches!(r, Reason::Inhibition { .. }));
    let mut fields = serde_json::Map::new();
    fields.insert("silenced".into(), json!(silenced));
    fields.insert("inhibited".into(), json!(inhibited));
    fields.insert("muted_by".into(), json!(muted));
    fields
}
