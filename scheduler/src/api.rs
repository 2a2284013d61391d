//! JSON API (`/api/v1/tasks`) and the health and readiness probes.

use std::sync::Arc;

use poem::handler;
use poem::http::StatusCode;
use poem::web::{Data, Json, Path, Query};
use serde::Serialize;

use crate::error::ApiError;
use crate::listing::ListParams;
use crate::server::AppState;
use crate::store::TaskDetail;
use crate::task::Task;

/// Body of `GET /api/v1/tasks`.
#[derive(Debug, Serialize)]
pub struct TaskList {
    /// The requested page, in the requested order (newest first by default).
    pub tasks: Vec<Task>,
    /// Number of tasks matching the filters, on all pages.
    pub total: u64,
}

/// Lists tasks (`GET /api/v1/tasks?status=open&site=plant-1&sort=severity&limit=50&page=2`).
#[handler]
pub async fn list_tasks(
    Query(params): Query<ListParams>,
    Data(state): Data<&Arc<AppState>>,
) -> poem::Result<Json<TaskList>> {
    let query = params.to_query()?;
    let (tasks, total) = state
        .run_store(move |store| Ok((store.list_tasks(&query)?, store.count_matching(&query)?)))
        .await?;
    Ok(Json(TaskList { tasks, total }))
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
