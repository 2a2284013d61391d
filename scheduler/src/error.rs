//! Errors of the scheduler service and of its HTTP endpoints.

use poem::error::{
    MethodNotAllowedError, NotFoundError, ParsePathError, ParseQueryError, ResponseError,
};
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use serde::Serialize;

use crate::config::ConfigError;
use crate::methods::MethodNotAllowed;
use crate::store::StoreError;

/// A failure to start the scheduler, or the error it stopped with.
///
/// A start error keeps its cause as `source()` only, for a caller that
/// prints the chain. `Serve` and `Join` end a running scheduler, and callers
/// such as `floorwatch up` log those with `Display` only, so their message
/// includes the cause and `source()` returns `None`.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("invalid scheduler configuration")]
    Config(#[from] ConfigError),
    #[error("failed to open the task store")]
    Store(#[from] StoreError),
    #[error("failed to compile the page templates")]
    Template(#[source] tera::Error),
    #[error("failed to use the HTTP listener")]
    Listener(#[source] std::io::Error),
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("scheduler task failed: {0}")]
    Join(tokio::task::JoinError),
}

impl From<tokio::task::JoinError> for SchedulerError {
    fn from(error: tokio::task::JoinError) -> Self {
        SchedulerError::Join(error)
    }
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

/// Maximum length of a `detail` taken from a poem error, in characters.
const MAX_DETAIL_CHARS: usize = 200;

/// Converts an error of a JSON API route into the `{"code", "detail"}`
/// response. An [`ApiError`] is sent as it is. poem's own errors, from the
/// router and the extractors, get a code for their kind: `invalid_query`
/// for a query string that does not parse (such as a repeated `status`),
/// `invalid_path`, `route_not_found` and `method_not_allowed`. Any other
/// server error is logged and sent as `internal_error` without its text.
/// A 405 keeps the `Allow` header that [`MethodNotAllowed`] carries.
pub async fn json_error(error: poem::Error) -> Response {
    if error.is::<ApiError>() {
        return error.into_response();
    }
    if let Some(not_allowed) = error.downcast_ref::<MethodNotAllowed>() {
        let mut response = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this API route takes only {}", not_allowed.allow),
        )
        .as_response();
        not_allowed.set_allow(&mut response);
        return response;
    }
    let status = error.status();
    let (code, detail) = if let Some(query) = error.downcast_ref::<ParseQueryError>() {
        (
            "invalid_query",
            format!("the query string is invalid: {query}"),
        )
    } else if error.is::<ParsePathError>() {
        ("invalid_path", "the path parameters are invalid".to_owned())
    } else if error.is::<NotFoundError>() {
        ("route_not_found", "no API route has this path".to_owned())
    } else if error.is::<MethodNotAllowedError>() {
        (
            "method_not_allowed",
            "this API route does not accept this method".to_owned(),
        )
    } else if status.is_server_error() {
        tracing::error!(%error, %status, "API request failed");
        (
            "internal_error",
            "the request failed; retry later".to_owned(),
        )
    } else {
        ("invalid_request", error.to_string())
    };
    let detail: String = detail.chars().take(MAX_DETAIL_CHARS).collect();
    ApiError::new(status, code, detail).as_response()
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
