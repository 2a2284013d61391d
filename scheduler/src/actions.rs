//! Technician actions over the JSON API
//! (`POST /api/v1/tasks/:id/{acknowledge,start,reassign,complete}`) and the
//! step that the API and the HTML forms share.

use std::sync::Arc;

use chrono::Utc;
use floorwatch_protocol::Id;
use poem::http::StatusCode;
use poem::web::{Data, Json, Path};
use poem::{handler, Body, Request};
use serde::Deserialize;

use crate::error::ApiError;
use crate::lifecycle::{Action, ActionError};
use crate::server::AppState;
use crate::store::ActionOutcome;
use crate::task::Task;

/// Body of `POST /api/v1/tasks/:id/reassign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReassignBody {
    assignee: String,
}

/// Maximum size of an action's JSON body.
const MAX_ACTION_BODY_BYTES: usize = 4096;

/// Builds the action named `name`; `assignee` is required for `reassign`
/// and must be an identifier as it is, without surrounding whitespace.
pub fn parse_action(name: &str, assignee: Option<&str>) -> Result<Action, ApiError> {
    match name {
        "acknowledge" => Ok(Action::Acknowledge),
        "start" => Ok(Action::Start),
        "complete" => Ok(Action::Complete),
        "reassign" => {
            let assignee = Id::parse(assignee.unwrap_or_default()).map_err(|_| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_assignee",
                    "reassign needs `assignee`: the id of a roster technician",
                )
            })?;
            Ok(Action::Reassign { assignee })
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_action",
            "the action is not one of: acknowledge, start, reassign, complete",
        )),
    }
}

/// Applies `action` by `actor` to the task with id text `id`, logs it and
/// announces the change to live pages.
pub async fn perform(
    state: &Arc<AppState>,
    id: &str,
    action: Action,
    actor: String,
) -> Result<Task, ApiError> {
    let task_id: i64 = id.parse().map_err(|_| ApiError::task_not_found(id))?;
    let roster = state.roster.ids();
    let name = action.name();
    let by = actor.clone();
    let outcome = state
        .run_store(move |store| store.apply_action(task_id, &action, &by, &roster, Utc::now()))
        .await?;
    match outcome {
        ActionOutcome::NotFound => Err(ApiError::task_not_found(id)),
        ActionOutcome::Rejected(error) => {
            tracing::info!(task_id, action = name, actor, %error, "task action rejected");
            Err(action_error(&error))
        }
        ActionOutcome::Applied(task) => {
            tracing::info!(task_id, action = name, actor, status = %task.status, assignee = task.assignee, "task action applied");
            state.live.announce(task_id);
            Ok(*task)
        }
    }
}

fn action_error(error: &ActionError) -> ApiError {
    let (status, code) = match error {
        ActionError::NotAllowed { .. } => (StatusCode::CONFLICT, "action_not_allowed"),
        ActionError::SameAssignee { .. } => (StatusCode::CONFLICT, "already_assigned"),
        ActionError::UnknownTechnician { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, "unknown_technician")
        }
    };
    ApiError::new(status, code, error.to_string())
}

/// Performs an action over the API. Requires a bearer token, or a session
/// cookie with the CSRF token in `x-csrf-token`.
#[handler]
pub async fn api_action(
    request: &Request,
    Path((id, name)): Path<(String, String)>,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
) -> poem::Result<Json<Task>> {
    let actor = state.auth.api_actor(request)?;
    let bytes = body
        .into_bytes_limit(MAX_ACTION_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("an action body is at most {MAX_ACTION_BODY_BYTES} bytes"),
            )
        })?;
    let assignee = if name == "reassign" {
        let parsed: ReassignBody = serde_json::from_slice(&bytes).map_err(|error| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("reassign needs a JSON body {{\"assignee\": \"ID\"}}: {error}"),
            )
        })?;
        Some(parsed.assignee)
    } else {
        None
    };
    let action = parse_action(&name, assignee.as_deref())?;
    Ok(Json(perform(state, &id, action, actor).await?))
}
