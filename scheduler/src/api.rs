//! JSON API (`/api/v1/tasks`) and the health and readiness probes.

use std::sync::Arc;

use poem::handler;
use poem::http::StatusCode;
use poem::web::{Data, Json, Path, Query};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::server::AppState;
use crate::store::{TaskDetail, TaskQuery, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
use crate::task::{Task, TaskStatus};

/// Query parameters of `GET /api/v1/tasks`, parsed by [`parse_list_query`].
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    status: Option<String>,
    limit: Option<String>,
}

/// Body of `GET /api/v1/tasks`.
#[derive(Debug, Serialize)]
pub struct TaskList {
    /// Newest `opened_at` first.
    pub tasks: Vec<Task>,
}

/// Converts query parameters into a [`TaskQuery`]. A `limit` above
/// [`MAX_LIST_LIMIT`] is lowered to it; an unknown status or a limit that is
/// not a positive integer gives 400 `invalid_query`.
pub fn parse_list_query(params: &ListParams) -> Result<TaskQuery, ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(text) => Some(TaskStatus::parse(text).ok_or_else(|| {
            invalid_query(format!(
                "status {:?} is not one of: open, completed",
                shorten(text)
            ))
        })?),
    };
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIST_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if limit > 0 => limit.min(MAX_LIST_LIMIT),
            _ => {
                return Err(invalid_query(format!(
                    "limit {:?} is not an integer from 1 to {MAX_LIST_LIMIT}",
                    shorten(text)
                )))
            }
        },
    };
    Ok(TaskQuery { status, limit })
}

fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

fn invalid_query(detail: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", detail)
}

/// Lists tasks (`GET /api/v1/tasks?status=open&limit=100`).
#[handler]
pub async fn list_tasks(
    Query(params): Query<ListParams>,
    Data(state): Data<&Arc<AppState>>,
) -> poem::Result<Json<TaskList>> {
    let query = parse_list_query(&params)?;
    let tasks = state
        .run_store(move |store| store.list_tasks(&query))
        .await?;
    Ok(Json(TaskList { tasks }))
}

/// Returns one task with its history (`GET /api/v1/tasks/:id`).
#[handler]
pub async fn get_task(
    Path(id): Path<String>,
    Data(state): Data<&Arc<AppState>>,
) -> poem::Result<Json<TaskDetail>> {
    let task_id: i64 = id.parse().map_err(|_| ApiError::task_not_found(&id))?;
    let detail = state.run_store(move |store| store.task(task_id)).await?;
    match detail {
        Some(detail) => Ok(Json(detail)),
        None => Err(ApiError::task_not_found(&id).into()),
    }
}

/// Liveness probe (`GET /healthz`): the process serves HTTP.
#[handler]
pub fn healthz() -> &'static str {
    "ok"
}

/// Readiness probe (`GET /readyz`): 200 when the task store responds to a query,
/// otherwise 503.
#[handler]
pub async fn readyz(Data(state): Data<&Arc<AppState>>) -> poem::Result<&'static str> {
    state.run_store(|store| store.ping()).await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the task store does not answer",
        )
    })?;
    Ok("ready")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(status: Option<&str>, limit: Option<&str>) -> ListParams {
        ListParams {
            status: status.map(str::to_owned),
            limit: limit.map(str::to_owned),
        }
    }

    #[test]
    fn defaults_and_clamping() {
        let query = parse_list_query(&params(None, None)).unwrap();
        assert_eq!(query, TaskQuery::default());
        let query = parse_list_query(&params(Some("open"), Some("5000"))).unwrap();
        assert_eq!(query.status, Some(TaskStatus::Open));
        assert_eq!(query.limit, MAX_LIST_LIMIT);
    }

    #[test]
    fn invalid_values_are_named() {
        let error = parse_list_query(&params(Some("done"), None)).unwrap_err();
        assert_eq!(error.code, "invalid_query");
        assert!(error.detail.contains("\"done\""), "{}", error.detail);
        for limit in ["0", "-1", "ten"] {
            let error = parse_list_query(&params(None, Some(limit))).unwrap_err();
            assert!(error.detail.contains(limit), "{}", error.detail);
        }
    }
}
