//! `GET /api/v1/processes/top?by=cpu|memory&n=10`: the top processes by CPU over the
//! processes collector's last interval, or by resident memory, as its last run saw them.

use std::sync::Arc;

use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use crate::collect::processes::{TopLists, TopView};
use crate::state::State;

/// Query of `GET /api/v1/processes/top`.
#[derive(Debug, Deserialize)]
pub(crate) struct TopQuery {
    /// `cpu` (the default) or `memory`.
    by: Option<String>,
    /// How many, from 1 to `collect.processes.top` (the default).
    n: Option<String>,
}

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// CPU over the last interval.
    Cpu,
    /// Resident memory.
    Memory,
}

impl By {
    fn as_str(self) -> &'static str {
        match self {
            By::Cpu => "cpu",
            By::Memory => "memory",
        }
    }
}

/// The list `by` of `lists`, at most `n`, as the endpoint answers it.
pub fn list_json(lists: &TopLists, by: By, n: usize) -> Value {
    let list = match by {
        By::Cpu => &lists.by_cpu,
        By::Memory => &lists.by_memory,
    };
    json!({
        "by": by.as_str(),
        "interval_seconds": lists.interval_seconds,
        "at": lists.at,
        "processes": list.iter().take(n).collect::<Vec<_>>(),
    })
}

/// The answer to `by` and `n` (as given) over `view`.
pub fn answer(view: TopView, by: Option<&str>, n: Option<&str>) -> Result<Value, ApiError> {
    let by = match by {
        None | Some("cpu") => By::Cpu,
        Some("memory") => By::Memory,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("by must be cpu or memory, got {other:?}"),
            ));
        }
    };
    let (lists, limit) = match view {
        TopView::Off(why) => return Err(ApiError::new(StatusCode::NOT_FOUND, why)),
        TopView::Waiting => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the processes collector has not finished a run yet; try again after its interval",
            ));
        }
        TopView::Lists(lists, limit) => (lists, limit),
    };
    let n = match n {
        None => limit,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=limit).contains(&n) => n,
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "n must be a whole number from 1 to {limit} (collect.processes.top), got {text:?}"
                    ),
                ));
            }
        },
    };
    Ok(list_json(&lists, by, n))
}

pub(crate) async fn top(
    AxumState(state): AxumState<Arc<State>>,
    Query(q): Query<TopQuery>,
) -> Response {
    match answer(state.processes().view(), q.by.as_deref(), q.n.as_deref()) {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => {
            let waiting = e.status == StatusCode::SERVICE_UNAVAILABLE;
            let mut response = e.into_response();
            if waiting {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::processes::TopProcess;
    use crate::collect::processes::top::{OFF_COLLECTOR, OFF_TOP};

    fn lists() -> TopLists {
        let p = |pid: u32, cpu: f64, rss: u64| TopProcess {
            pid,
            name: format!("p{pid}"),
            user: "root".into(),
            cmdline: format!("/bin/p{pid} --x"),
            cpu_ratio: Some(cpu),
            rss_bytes: rss,
        };
        TopLists {
            at: 1_800_000_000,
            interval_seconds: 10.0,
            by_cpu: vec![p(1, 0.5, 10), p(2, 0.25, 30), p(3, 0.0, 20)],
            by_memory: vec![p(2, 0.25, 30), p(3, 0.0, 20), p(1, 0.5, 10)],
        }
    }

    #[test]
    fn lists_by_cpu_and_by_memory() {
        let view = || TopView::Lists(lists(), 3);
        let body = answer(view(), None, None).unwrap();
        assert_eq!(body["by"], "cpu");
        assert_eq!(body["interval_seconds"], 10.0);
        assert_eq!(body["at"], 1_800_000_000u64);
        let pids: Vec<u64> = body["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pid"].as_u64().unwrap())
            .collect();
        assert_eq!(pids, [1, 2, 3]);
        assert_eq!(
            body["processes"][0],
            json!({"pid": 1, "name": "p1", "user": "root", "cmdline": "/bin/p1 --x", "cpu_ratio": 0.5, "rss_bytes": 10})
        );
        let body = answer(view(), Some("memory"), Some("2")).unwrap();
        assert_eq!(body["by"], "memory");
        assert_eq!(body["processes"].as_array().unwrap().len(), 2);
        assert_eq!(body["processes"][0]["pid"], 2);
    }

    #[test]
    fn bad_parameters_and_the_states_without_lists() {
        let view = || TopView::Lists(lists(), 3);
        let rows: &[(Option<&str>, Option<&str>, StatusCode, &str)] = &[
            (
                Some("disk"),
                None,
                StatusCode::BAD_REQUEST,
                "by must be cpu or memory, got \"disk\"",
            ),
            (
                Some("CPU"),
                None,
                StatusCode::BAD_REQUEST,
                "by must be cpu or memory",
            ),
            (
                None,
                Some("0"),
                StatusCode::BAD_REQUEST,
                "n must be a whole number from 1 to 3",
            ),
            (
                None,
                Some("4"),
                StatusCode::BAD_REQUEST,
                "from 1 to 3 (collect.processes.top), got \"4\"",
            ),
            (None, Some("-1"), StatusCode::BAD_REQUEST, "n must be"),
            (None, Some("two"), StatusCode::BAD_REQUEST, "n must be"),
            (None, Some(""), StatusCode::BAD_REQUEST, "n must be"),
        ];
        for (by, n, status, message) in rows {
            let e = answer(view(), *by, *n).unwrap_err();
            assert_eq!(e.status, *status, "{by:?} {n:?}");
            assert!(e.message.contains(message), "{by:?} {n:?}: {}", e.message);
        }
        let e = answer(TopView::Off(OFF_TOP), None, None).unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (StatusCode::NOT_FOUND, OFF_TOP)
        );
        assert!(e.message.contains("collect.processes.top"));
        let e = answer(TopView::Off(OFF_COLLECTOR), None, None).unwrap_err();
        assert!(e.message.contains("collect.processes.enabled"));
        let e = answer(TopView::Waiting, None, None).unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        // a bad `by` is a 400 whatever the state
        let e = answer(TopView::Waiting, Some("x"), None).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
