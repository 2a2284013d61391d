//! Errors of the scheduler service and of its HTTP endpoints.

use poem::error::ResponseError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use serde::Serialize;

use crate::config::ConfigError;
use crate::store::StoreError;

/// A failure to start the scheduler, or the error it stopped with.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("invalid scheduler configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("failed to open the task store: {0}")]
    Store(#[from] StoreError),
    #[error("failed to compile the page templates: {0}")]
    Template(#[source] tera::Error),
    #[error("failed to use the HTTP listener: {0}")]
    Listener(#[source] std::io::Error),
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("scheduler task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// An HTTP error sent as JSON `{"code": ..., "detail": ...}`.
///
/// `code` is stable for programs; `detail` is a sentence for people and
/// never contains internals such as SQL errors, which are logged instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
}

impl ApiError {
    /// Creates an error with `status`, a stable `code` and a readable
    /// `detail`.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// Creates the error for a storage failure. The caller logs the cause,
    /// which is not sent.
    pub fn storage() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_error",
            "the task store failed; retry later",
        )
    }

    /// Creates the error for a task id that does not exist.
    pub fn task_not_found(id: &str) -> Self {
        let shortened: String = id.chars().take(40).collect();
        Self::new(
            StatusCode::NOT_FOUND,
            "task_not_found",
            format!("task {shortened:?} does not exist"),
        )
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        let mut response = poem::web::Json(self).into_response();
        response.set_status(self.status);
        response
    }
}
